//! Shared code of the kmsfs fuzz targets: the checks themselves live in
//! [`checks`] so that `tests/integration/fuzz_regressions.rs` in the root crate can replay
//! the corpora and regression inputs with plain `cargo test` (it includes the
//! same file with `#[path]`).

pub mod checks;
