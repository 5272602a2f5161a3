#![no_main]
//! Fuzz target: the `version_edit` decoder (see `kevo::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| kevo::fuzzing::run("version_edit", data));
