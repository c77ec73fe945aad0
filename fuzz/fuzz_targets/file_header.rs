//! Fuzz target `file_header`: see `kmsfs_fuzz::checks::file_header` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::file_header(data));
