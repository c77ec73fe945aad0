//! Fuzz target `policy_wildcard`: see `kmsfs_fuzz::checks::policy_wildcard` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::policy_wildcard(data));
