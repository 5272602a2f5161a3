#![no_main]
//! Fuzz target: the `filter` decoder (see `kevo::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| kevo::fuzzing::run("filter", data));
