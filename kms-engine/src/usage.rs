//! Key last usage (GetKeyLastUsage): when, and by which cryptographic
//! operation, each key was last used successfully.
//!
//! Recording a use must not cost a store write or any I/O on the call's
//! path (Encrypt and Decrypt never write the store), so uses are kept in
//! memory; a thread of the engine merges them into the file `key-usage` in
//! the store directory every [`FLUSH_INTERVAL`] while there are any, and
//! the engine merges the rest when dropped; readers merge the file with
//! their own unflushed uses. Like AWS's, the answer is eventually
//! consistent: another process's use shows within about
//! [`FLUSH_INTERVAL`]. The file holds no secret
//! (key ids, operation names, times and audit request ids, as the audit
//! trail does); it is written atomically, mode 0600, under the store's
//! writer lock so that concurrent processes merge rather than overwrite.

use crate::ids::KeyId;
use crate::store::StoreFiles;
use crate::{Clock, KmsError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The file in the store directory.
pub const USAGE_FILE: &str = "key-usage";
/// How often the flusher thread merges this engine's uses into the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Largest usage file read (a few hundred bytes per key).
const MAX_FILE: u64 = 64 << 20;

/// The operations AWS tracks (`KeyLastUsageTrackingOperation`).
pub const TRACKED_OPERATIONS: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
];

/// One key's last successful cryptographic use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUse {
    pub operation: String,
    /// Unix seconds.
    pub time: i64,
    /// The `requestID` of the call's audit record.
    pub request_id: String,
    /// Its `eventID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// The `key-usage` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct UsageFile {
    /// When this store began tracking (the file's creation).
    tracking_start: i64,
    keys: BTreeMap<String, LastUse>,
}

type Uses = Mutex<BTreeMap<KeyId, LastUse>>;

/// In-memory uses of one engine plus the file they are merged into.
#[derive(Debug, Default)]
pub(crate) struct UsageTracker {
    pending: Arc<Uses>,
    flusher_started: AtomicBool,
}

fn merge(into: &mut BTreeMap<String, LastUse>, id: String, u: LastUse) {
    match into.get(&id) {
        Some(old) if old.time > u.time => {}
        _ => {
            into.insert(id, u);
        }
    }
}

/// The file's bytes (not through a symlink, at most `max`).
fn read_limited(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other("the key usage file is too large"));
    }
    Ok(bytes)
}

fn read_file(files: &StoreFiles) -> Result<Option<UsageFile>, KmsError> {
    let path = files.dir().join(USAGE_FILE);
    let bytes = match read_limited(&path, MAX_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KmsError::io("reading the key usage file", &e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| KmsError::Internal(format!("the key usage file does not parse: {e}")))
}

fn write_file(files: &StoreFiles, f: &UsageFile) -> Result<(), KmsError> {
    let bytes = serde_json::to_vec(f)
        .map_err(|e| KmsError::Internal(format!("cannot encode key usage: {e}")))?;
    files
        .dir_handle()
        .write_atomic(OsStr::new(USAGE_FILE), &bytes, 0o600)
        .map_err(|e| KmsError::io("writing the key usage file", &e))
}

fn lock_uses(p: &Uses) -> Result<std::sync::MutexGuard<'_, BTreeMap<KeyId, LastUse>>, KmsError> {
    p.lock()
        .map_err(|_| KmsError::Internal("key usage lock poisoned".into()))
}

/// Merges `pending`'s uses into the file under the store's writer lock.
fn flush_into(files: &StoreFiles, pending: &Uses, now: i64) -> Result<(), KmsError> {
    let uses = std::mem::take(&mut *lock_uses(pending)?);
    if uses.is_empty() {
        return Ok(());
    }
    let merged = (|| {
        let _lock = files.lock()?;
        let mut f = read_file(files)?.unwrap_or(UsageFile {
            tracking_start: now,
            keys: BTreeMap::new(),
        });
        for (id, u) in &uses {
            merge(&mut f.keys, id.to_string(), u.clone());
        }
        write_file(files, &f)
    })();
    if merged.is_err() {
        // Keep them for the next try (newer uses recorded meanwhile win).
        let mut p = lock_uses(pending)?;
        for (id, u) in uses {
            p.entry(id).or_insert(u);
        }
    }
    merged
}

/// The flusher: every [`FLUSH_INTERVAL`] merges the engine's uses into the
/// file (through its own descriptor of the lock file), until the engine is
/// gone.
fn flusher(pending: Weak<Uses>, dir: PathBuf, clock: Arc<dyn Clock>) {
    let mut files: Option<StoreFiles> = None;
    loop {
        std::thread::sleep(FLUSH_INTERVAL);
        let Some(p) = pending.upgrade() else {
            return;
        };
        if lock_uses(&p).map(|u| u.is_empty()).unwrap_or(true) {
            continue;
        }
        if files.is_none() {
            match StoreFiles::open_dir(&dir, false) {
                Ok(f) => files = Some(f),
                Err(e) => {
                    log::warn!("key usage not written: {e}");
                    continue;
                }
            }
        }
        if let Some(f) = &files
            && let Err(e) = flush_into(f, &p, clock.now_unix())
        {
            log::warn!("key usage not written: {e}");
        }
    }
}

impl UsageTracker {
    /// Starts tracking in a store without a usage file (a new store, or
    /// the first open by a build that tracks): tracking starts `now`.
    pub fn start(&self, files: &StoreFiles, now: i64) -> Result<(), KmsError> {
        let _lock = files.lock()?;
        if read_file(files)?.is_none() {
            write_file(
                files,
                &UsageFile {
                    tracking_start: now,
                    keys: BTreeMap::new(),
                },
            )?;
        }
        Ok(())
    }

    /// Notes a successful use of `keys` (memory only; the first use starts
    /// the engine's flusher thread).
    pub fn record(
        &self,
        files: &StoreFiles,
        clock: &Arc<dyn Clock>,
        keys: &[KeyId],
        use_: &LastUse,
    ) -> Result<(), KmsError> {
        {
            let mut p = lock_uses(&self.pending)?;
            for id in keys {
                p.insert(*id, use_.clone());
            }
        }
        if !self.flusher_started.swap(true, Ordering::AcqRel) {
            let (weak, dir, clock) = (
                Arc::downgrade(&self.pending),
                files.dir().to_path_buf(),
                clock.clone(),
            );
            if let Err(e) = std::thread::Builder::new()
                .name("kms-key-usage".into())
                .spawn(move || flusher(weak, dir, clock))
            {
                // Uses are still written when the engine is dropped.
                log::warn!("key usage flusher not started: {e}");
            }
        }
        Ok(())
    }

    /// Merges this engine's unflushed uses into the file.
    pub fn flush(&self, files: &StoreFiles, now: i64) -> Result<(), KmsError> {
        flush_into(files, &self.pending, now)
    }

    /// The tracking start and `id`'s last use: the file merged with this
    /// engine's unflushed uses.
    pub fn last_use(
        &self,
        files: &StoreFiles,
        id: KeyId,
        now: i64,
    ) -> Result<(i64, Option<LastUse>), KmsError> {
        let f = read_file(files)?;
        let tracking_start = f.as_ref().map_or(now, |f| f.tracking_start);
        let mut keys = f.map(|f| f.keys).unwrap_or_default();
        if let Some(u) = lock_uses(&self.pending)?.get(&id) {
            merge(&mut keys, id.to_string(), u.clone());
        }
        Ok((tracking_start, keys.remove(&id.to_string())))
    }
}
