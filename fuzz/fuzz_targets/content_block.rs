//! Fuzz target `content_block`: see `kmsfs_fuzz::checks::content_block` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::content_block(data));
