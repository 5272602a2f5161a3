#![no_main]
//! Fuzz target: the `wal` decoder (see `kevo::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| kevo::fuzzing::run("wal", data));
