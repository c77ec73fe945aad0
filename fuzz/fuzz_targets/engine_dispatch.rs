//! Fuzz target `engine_dispatch`: see `kmsfs_fuzz::checks::engine_dispatch` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::engine_dispatch(data));
