#![no_main]
//! Fuzz target: the `write_batch` decoder (see `kevo::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| kevo::fuzzing::run("write_batch", data));
