//! Who may use a store: an engine daemon (`kmsfs engine serve`) holds it
//! alone, and every other process that opens it embedded (a CLI command, an
//! embedded mount) holds it together with the others. One `flock` on
//! `<engine dir>/engine.holder`: shared for an embedded user, exclusive for
//! a daemon, both taken without waiting, so a second daemon, or an embedded
//! writer next to a daemon, is refused at once instead of blocking or
//! writing the store behind the daemon's back. The short per-write lock
//! (`engine.lock`, [`super::StoreFiles::lock`]) is unchanged.
//!
//! A daemon writes who it is (pid and socket) into the file after taking
//! the lock, so that a refused process can say where to go instead. The
//! lock ends with the process (the kernel drops it with the descriptor), so
//! a killed daemon leaves nothing to clean up.

use crate::safe_fs::Dir;
use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Name of the holder lock file inside the engine directory.
pub const HOLDER_FILE: &str = "engine.holder";

/// How a process holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// An embedded user: many at once, never next to a daemon.
    Shared,
    /// A daemon: alone.
    Exclusive,
}

/// Why the store could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// A daemon serves the store; `owner` is what it wrote about itself
    /// (`pid N socket PATH`), empty when it had not written it yet.
    #[error("the engine store in {dir} is served by an engine daemon{}", owner_suffix(.owner))]
    Served { dir: String, owner: String },
    /// Another process uses the store embedded (only a daemon sees this).
    #[error(
        "the engine store in {dir} is in use by another kmsfs process (an embedded mount or \
         command): stop it first, then start the daemon"
    )]
    InUse { dir: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn owner_suffix(owner: &str) -> String {
    if owner.is_empty() {
        String::new()
    } else {
        format!(" ({owner})")
    }
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StoreHold {
    file: File,
}

impl StoreHold {
    /// Records who holds the store (a daemon's `pid N socket PATH`), for
    /// the message a refused process prints.
    pub fn describe_owner(&mut self, text: &str) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }
}

/// Takes the holder lock of the store in `dir` as `kind`, without waiting.
pub fn hold(dir: &Path, kind: HoldKind) -> Result<StoreHold, HoldError> {
    let io = |context: &str| {
        let context = format!("{context} in {}", dir.display());
        move |source| HoldError::Io { context, source }
    };
    let d = Dir::open_private(dir, false).map_err(io("opening the engine directory"))?;
    let mut file = d
        .open_or_create(OsStr::new(HOLDER_FILE), 0o600, false)
        .map_err(io("opening the engine holder file"))?;
    let taken = match kind {
        HoldKind::Shared => file.try_lock_shared(),
        HoldKind::Exclusive => file.try_lock(),
    };
    match taken {
        Ok(()) => Ok(StoreHold { file }),
        Err(TryLockError::WouldBlock) => Err(busy(dir, kind, &mut file)),
        Err(TryLockError::Error(e)) => Err(io("locking the engine holder file")(e)),
    }
}

/// The refusal for a held store: a daemon holds it when a shared lock is
/// refused, or when the file names one (a daemon asking while another
/// daemon serves).
fn busy(dir: &Path, kind: HoldKind, file: &mut File) -> HoldError {
    let mut owner = String::new();
    // Best effort: what the daemon wrote about itself, bounded.
    let _ignored = Read::by_ref(file).take(4096).read_to_string(&mut owner);
    let owner = owner.trim().to_string();
    let dir = dir.display().to_string();
    if kind == HoldKind::Shared || !owner.is_empty() {
        HoldError::Served { dir, owner }
    } else {
        HoldError::InUse { dir }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_daemon_excludes_embedded_users_and_other_daemons() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("engine");
        std::fs::create_dir(&dir).unwrap();
        let a = hold(&dir, HoldKind::Shared).unwrap();
        let b = hold(&dir, HoldKind::Shared).unwrap();
        assert!(matches!(
            hold(&dir, HoldKind::Exclusive),
            Err(HoldError::InUse { .. })
        ));
        drop((a, b));
        let mut d = hold(&dir, HoldKind::Exclusive).unwrap();
        d.describe_owner("pid 42 socket /run/x.sock").unwrap();
        let e = hold(&dir, HoldKind::Shared).unwrap_err();
        assert!(e.to_string().contains("(pid 42 socket /run/x.sock)"), "{e}");
        assert!(matches!(
            hold(&dir, HoldKind::Exclusive),
            Err(HoldError::Served { .. })
        ));
        drop(d);
        hold(&dir, HoldKind::Shared).unwrap();
    }
}
