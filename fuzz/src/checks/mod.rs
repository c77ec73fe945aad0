//! The fuzz checks, one function per target: feed arbitrary bytes to a parser
//! of untrusted input and panic only when a property is broken (a panic inside
//! the parser is itself the finding). Used by the `cargo fuzz` targets in
//! `fuzz/fuzz_targets/` and, through `#[path]`, by the root crate's
//! `tests/integration/fuzz_regressions.rs`, which replays the corpora with `cargo test`.
//!
//! Several targets take a leading *mode* byte so that one target can both
//! feed raw bytes to a decoder (must be refused, never panic) and build a
//! valid encoding from the input (must round-trip).

mod audit;
mod engine;
mod fs;
mod policy;
mod service;
mod sigv4;
mod write_only;

pub use audit::{AUDIT_PART_SEPARATOR, audit_verify};
pub use engine::{engine_blob, engine_dispatch, engine_store};
pub use fs::{content_block, file_header, names, volume_config};
pub use policy::{policy_parse, policy_wildcard};
pub use service::service_frame;
pub use sigv4::sigv4_verify;
pub use write_only::write_only;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kms_engine::{ManualClock, Principal, RootKeySource};
use zeroize::Zeroizing;

/// The content data key every content check uses.
pub const FIXED_DEK: [u8; 32] = [0x42; 32];
/// The file id every content check uses.
pub const FIXED_FILE_ID: [u8; 16] = [0x11; 16];
/// The volume names key every names check uses.
pub const FIXED_NAMES_KEY: [u8; 32] = [0x33; 32];
/// The directory IV every names check uses.
pub const FIXED_DIR_IV: [u8; 16] = [0x44; 16];
/// The engine master key material the blob check opens with.
pub const FIXED_BLOB_KEY: [u8; 32] = [0x55; 32];
/// The store root key (key-file kind) the store check opens with.
pub const FIXED_ROOT_KEY: [u8; 32] = [0x66; 32];
/// The audit signing seed whose public key the audit check verifies against.
pub const FIXED_AUDIT_SEED: [u8; 32] = [0x77; 32];
/// Unix time of the manual clock of the engine checks.
pub const FIXED_NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Splits off the leading mode byte.
pub(crate) fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}

/// Reads a big-endian u64 from the first 8 bytes (zero-padded).
pub(crate) fn be_u64(data: &[u8]) -> (u64, &[u8]) {
    let n = data.len().min(8);
    let mut b = [0u8; 8];
    b[8 - n..].copy_from_slice(&data[..n]);
    (u64::from_be_bytes(b), &data[n..])
}

/// A block size 512..=65536 chosen by a byte.
pub(crate) fn block_size(b: u8) -> u32 {
    512 << (b % 8)
}

/// A fresh scratch directory for the checks that write files: under
/// `$KMSFS_FUZZ_SCRATCH` when set (`.ci/fuzz-smoke` points it at a directory
/// it removes afterwards; libFuzzer exits without running destructors, so a
/// process's scratch directories outlive it), else in tmpfs (`/dev/shm`)
/// when there is one (the store and audit checks write on every input, and
/// fsync on a real disk would make them crawl), else in the system temp dir.
pub(crate) fn scratch_dir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("kmsfs-fuzz-");
    let base = std::env::var_os("KMSFS_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()));
    let made = match base {
        Some(b) => builder.tempdir_in(b),
        None => builder.tempdir(),
    };
    match made {
        Ok(d) => d,
        Err(e) => panic!("cannot create a scratch directory: {e}"),
    }
}

/// Removes every entry of `dir` (not `dir` itself).
pub(crate) fn clear_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

pub(crate) fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
}

pub(crate) fn fixed_root() -> RootKeySource {
    RootKeySource::Key(Zeroizing::new(FIXED_ROOT_KEY))
}

pub(crate) fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(FIXED_NOW))
}

pub(crate) fn caller() -> Principal {
    Principal::from_ids(1000, 1000, vec![100])
}

/// One scratch directory per process for the checks that need files.
pub(crate) fn scratch(slot: &'static Mutex<Option<tempfile::TempDir>>) -> PathBuf {
    let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(scratch_dir).path().to_path_buf()
}
