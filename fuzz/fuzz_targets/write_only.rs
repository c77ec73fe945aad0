//! Fuzz target `write_only`: see `kmsfs_fuzz::checks::write_only` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::write_only(data));
