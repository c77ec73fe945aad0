//! Fuzz target `volume_config`: see `kmsfs_fuzz::checks::volume_config` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz::checks::volume_config(data));
