//! Fuzz target `sigv4_verify`: see `kmsfs_fuzz::checks::sigv4_verify` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::sigv4_verify(data));
