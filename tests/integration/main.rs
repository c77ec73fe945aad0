//! The root crate's integration tests, one module per area, linked into one
//! test binary: thirty separately linked binaries filled a CI disk, and most
//! of their link time was the same dependencies again. Run one area with
//! `cargo test --test integration fs_tamper::`.

mod common;

mod format_vectors;
mod fs_acl;
mod fs_basic;
mod fs_config;
mod fs_corners;
mod fs_crash;
mod fs_fulldisk;
mod fs_identity;
mod fs_keys;
mod fs_killpriv;
mod fs_model;
mod fs_new_keys;
mod fs_ops_misc;
mod fs_permissions;
mod fs_plant;
mod fs_policy;
mod fs_programs;
mod fs_rename;
mod fs_rename_crash;
mod fs_rename_race;
mod fs_seek;
mod fs_sparse;
mod fs_tamper;
mod fs_write_only;
mod fs_xattr_tamper;
mod fuzz_regressions;
