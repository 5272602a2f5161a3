#![no_main]
//! Fuzz target: the `options_file` decoder (see `kevo::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| kevo::fuzzing::run("options_file", data));
