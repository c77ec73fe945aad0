//! Fuzz target `audit_verify`: see `kmsfs_fuzz::checks::audit_verify` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::audit_verify(data));
