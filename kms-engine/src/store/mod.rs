//! The engine store on disk: one sealed state file written atomically
//! (temp file, fsync, rename, directory fsync, through [`crate::safe_fs`])
//! and a lock file that serializes writers across processes.

pub mod format;
pub mod holder;
pub mod root;

use crate::KmsError;
use crate::safe_fs::Dir;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Name of the sealed state file inside the engine directory.
pub const STATE_FILE: &str = "engine.store";
/// Name of the lock file inside the engine directory.
pub const LOCK_FILE: &str = "engine.lock";
/// Temp files of the store written before [`crate::safe_fs`] existed.
const OLD_TMP_PREFIX: &str = "engine.store.tmp-";

/// Identity of the state file on disk, to notice another process's write
/// with one `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Fingerprint {
    fn of(m: &std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// The files of one store and the process-local side of the writer lock.
#[derive(Debug)]
pub struct StoreFiles {
    dir: Dir,
    state_path: PathBuf,
    lock: Mutex<File>,
}

/// Holds the exclusive writer lock (in-process mutex + `flock` on the lock
/// file) until dropped.
#[derive(Debug)]
pub struct WriteLock<'a> {
    file: MutexGuard<'a, File>,
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        // Closing the descriptor would also release it; unlocking now keeps the
        // lock short. An unlock failure leaves it held until the process exits.
        let _ = self.file.unlock();
    }
}

impl StoreFiles {
    /// Opens (creating if needed) the engine directory and its lock file.
    /// The directory must be private to this user ([`Dir::open_private`]:
    /// owned by the effective user; group and other access is removed at
    /// every open, not only at creation).
    pub fn open_dir(dir: &Path, create_dir: bool) -> Result<StoreFiles, KmsError> {
        let opened = match Dir::open_private(dir, create_dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KmsError::StoreNotFound(format!(
                    "no engine store directory at {}",
                    dir.display()
                )));
            }
            Err(e) => return Err(KmsError::io("opening the engine directory", &e)),
        };
        if !create_dir && !dir.join(STATE_FILE).exists() {
            return Err(KmsError::StoreNotFound(format!(
                "no engine store in {}",
                dir.display()
            )));
        }
        let lock = opened
            .open_or_create(OsStr::new(LOCK_FILE), 0o600, false)
            .map_err(|e| KmsError::io("opening the engine lock file", &e))?;
        Ok(StoreFiles {
            dir: opened,
            state_path: dir.join(STATE_FILE),
            lock: Mutex::new(lock),
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The opened store directory (for the engine's other files).
    pub(crate) fn dir_handle(&self) -> &Dir {
        &self.dir
    }

    /// Takes the exclusive writer lock (blocks until free).
    pub fn lock(&self) -> Result<WriteLock<'_>, KmsError> {
        let file = self
            .lock
            .lock()
            .map_err(|_| KmsError::Internal("store lock poisoned".into()))?;
        file.lock()
            .map_err(|e| KmsError::io("locking the engine store", &e))?;
        Ok(WriteLock { file })
    }

    pub fn exists(&self) -> bool {
        self.state_path.exists()
    }

    /// `stat` of the state file.
    pub fn fingerprint(&self) -> Result<Fingerprint, KmsError> {
        let m = std::fs::metadata(&self.state_path)
            .map_err(|e| KmsError::io("reading the engine store's metadata", &e))?;
        Ok(Fingerprint::of(&m))
    }

    /// Reads the whole state file with its fingerprint (taken from the same
    /// open descriptor, so the pair is consistent).
    pub fn read(&self) -> Result<(Vec<u8>, Fingerprint), KmsError> {
        let mut f = File::open(&self.state_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KmsError::StoreNotFound(format!("no engine store in {}", self.dir().display()))
            } else {
                KmsError::io("opening the engine store", &e)
            }
        })?;
        let read_err = |e: std::io::Error| KmsError::io("reading the engine store", &e);
        let m = f.metadata().map_err(read_err)?;
        let mut bytes = Vec::with_capacity(usize::try_from(m.len()).unwrap_or(0));
        std::io::Read::read_to_end(&mut f, &mut bytes).map_err(read_err)?;
        Ok((bytes, Fingerprint::of(&m)))
    }

    /// Replaces the state file atomically ([`Dir::write_atomic`], mode
    /// 0600); the caller holds the write lock. On failure (a full disk
    /// too) the old store stays as it was and no temp file is left.
    pub fn write_atomic(
        &self,
        _lock: &WriteLock<'_>,
        bytes: &[u8],
    ) -> Result<Fingerprint, KmsError> {
        self.dir
            .write_atomic(OsStr::new(STATE_FILE), bytes, 0o600)
            .map_err(|e| KmsError::io("writing the engine store", &e))?;
        self.fingerprint()
    }

    /// Removes temp files left by a writer that was killed mid-write. The
    /// caller holds the write lock, so no live writer owns one.
    pub fn remove_stale_temps(&self, _lock: &WriteLock<'_>) -> Result<(), KmsError> {
        self.dir
            .remove_temps()
            .map_err(|e| KmsError::io("listing the engine directory", &e))?;
        // Temp files of versions before the shared helper.
        let list_err = |e: std::io::Error| KmsError::io("listing the engine directory", &e);
        for entry in std::fs::read_dir(self.dir.path()).map_err(list_err)? {
            let name = entry.map_err(list_err)?.file_name();
            if name.as_bytes().starts_with(OLD_TMP_PREFIX.as_bytes()) {
                let _ = self.dir.remove(&name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read` and `fingerprint` describe the same file the same way, and a
    /// replacement by `write_atomic` is noticed.
    #[test]
    fn fingerprints_agree_and_notice_a_replacement() {
        let d = tempfile::tempdir().unwrap();
        let files = StoreFiles::open_dir(&d.path().join("engine"), true).unwrap();
        let lock = files.lock().unwrap();
        let written = files.write_atomic(&lock, b"first").unwrap();
        let (bytes, read_fp) = files.read().unwrap();
        assert_eq!(bytes, b"first");
        assert_eq!(read_fp, written);
        assert_eq!(files.fingerprint().unwrap(), written);
        let again = files.write_atomic(&lock, b"second").unwrap();
        assert_ne!(again, written);
        assert_eq!(files.read().unwrap().1, again);
    }
}
