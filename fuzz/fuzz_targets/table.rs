#![no_main]
//! Fuzz target: the `table` decoder (see `kevo::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| kevo::fuzzing::run("table", data));
