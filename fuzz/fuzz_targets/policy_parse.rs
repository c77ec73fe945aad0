//! Fuzz target `policy_parse`: see `kmsfs_fuzz::checks::policy_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::policy_parse(data));
