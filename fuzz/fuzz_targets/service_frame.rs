//! Fuzz target `service_frame`: see `kmsfs_fuzz::checks::service_frame` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::service_frame(data));
