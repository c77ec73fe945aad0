//! kms-engine's integration tests, one module per area, linked into one test
//! binary (see the root crate's `tests/integration/main.rs` for why). Run one
//! area with `cargo test -p kms-engine --test engine store::`.

mod audit_support;
mod common;
mod service_support;

mod access_keys;
mod aliases_tags;
mod asymmetric;
mod audit_events;
mod audit_group_commit;
mod audit_head_cache;
mod audit_paths;
mod audit_tamper;
mod audit_trail;
mod crypto_ops;
mod import;
mod key_states;
mod openssl_interop;
mod policy_grants;
mod processes;
mod root_key;
mod service_client;
mod service_server;
mod store;
mod store_formats;
mod store_fulldisk;
mod store_rollback;
