//! End-to-end tests of the `kmsfs` binary, one module per area, linked into
//! one test binary (see the root crate's `tests/integration/main.rs` for why).
//! Run one area with `cargo test -p mount-tool --test cli kms_cli::`.

mod access_keys_cli;
mod admin_cli;
mod asymmetric_cli;
mod audit_cli;
mod audit_e2e;
mod audit_paths_cli;
mod aws_mount;
mod aws_service;
mod config_cli;
mod daemon;
mod daemon_activation;
mod daemon_bad_input;
mod daemon_cli;
mod daemon_http;
mod daemon_kill;
mod daemon_mount;
mod engine_env;
mod fsck_cli;
mod fstab_cli;
mod import_cli;
mod kms_cli;
mod mount_cli;
mod query_cli;
mod rekey_names_cli;
mod repair_cli;
mod rewrap_cli;
mod root_key_cli;
mod store_rollback_cli;
mod write_only_cli;
