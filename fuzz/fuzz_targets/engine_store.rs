//! Fuzz target `engine_store`: see `kmsfs_fuzz::checks::engine_store` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::engine_store(data));
