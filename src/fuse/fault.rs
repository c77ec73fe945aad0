//! Test-only crash points for the rename journal: in debug builds, the
//! `KMSFS_FAULT_RENAME` environment variable of the mount process makes a
//! rename abort the process part-way, leaving the on-disk state a real
//! crash would (release builds ignore it; the checks compile away).
//!
//! - `before-rename`: abort after the journal is written, before the
//!   backing rename;
//! - `N` (a number): abort after the backing rename and `N` header rewrites.

/// The environment variable read by [`crash_point`].
pub const FAULT_ENV: &str = "KMSFS_FAULT_RENAME";

/// Where in a rename a crash point sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameStage {
    /// The journal is on disk; nothing was renamed yet.
    BeforeBackingRename,
    /// The backing rename is done and this many headers were rewritten.
    HeadersRewritten(usize),
}

/// Aborts the process (as a crash would: no unwinding, no cleanup) when
/// [`FAULT_ENV`] names `stage`. A no-op in release builds.
pub fn crash_point(stage: RenameStage) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(v) = std::env::var_os(FAULT_ENV) else {
        return;
    };
    let hit = match (v.to_str(), stage) {
        (Some("before-rename"), RenameStage::BeforeBackingRename) => true,
        (Some(n), RenameStage::HeadersRewritten(done)) => n.parse::<usize>().ok() == Some(done),
        _ => false,
    };
    if hit {
        log::error!("{FAULT_ENV}: simulated crash at {stage:?}");
        std::process::abort();
    }
}
