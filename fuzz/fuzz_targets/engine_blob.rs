//! Fuzz target `engine_blob`: see `kmsfs_fuzz::checks::engine_blob` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::engine_blob(data));
