//! Fuzz target `names`: see `kmsfs_fuzz::checks::names` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::names(data));
