//! Key last usage (GetKeyLastUsage): when, and by which cryptographic
//! operation, each key was last used successfully.
//!
//! Recording a use must not cost a store write (Encrypt and Decrypt never
//! write the store), so uses are kept in memory and merged into the file
//! `key-usage` in the store directory at most every [`FLUSH_INTERVAL`] and
//! when the engine is dropped; readers merge the file with their own
//! unflushed uses. Like AWS's, the answer is eventually consistent: another
//! process's use shows once that process flushed. The file holds no secret
//! (key ids, operation names, times and audit request ids, as the audit
//! trail does); it is written atomically, mode 0600, under the store's
//! writer lock so that concurrent processes merge rather than overwrite.

use crate::KmsError;
use crate::ids::KeyId;
use crate::store::StoreFiles;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The file in the store directory.
pub const USAGE_FILE: &str = "key-usage";
/// Longest time a use stays only in memory while the engine runs.
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
}

/// The `key-usage` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct UsageFile {
    /// When this store began tracking (the file's creation).
    tracking_start: i64,
    keys: BTreeMap<String, LastUse>,
}

#[derive(Debug, Default)]
struct Pending {
    uses: BTreeMap<KeyId, LastUse>,
    last_flush: Option<Instant>,
}

/// In-memory uses of one engine plus the file they are merged into.
#[derive(Debug, Default)]
pub(crate) struct UsageTracker {
    pending: Mutex<Pending>,
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

    /// Notes a successful use of `keys`; flushes when the last flush is
    /// older than [`FLUSH_INTERVAL`].
    pub fn record(
        &self,
        files: &StoreFiles,
        keys: &[KeyId],
        use_: &LastUse,
        now: i64,
    ) -> Result<(), KmsError> {
        let due = {
            let mut p = self
                .pending
                .lock()
                .map_err(|_| KmsError::Internal("key usage lock poisoned".into()))?;
            for id in keys {
                p.uses.insert(*id, use_.clone());
            }
            let due = p.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_INTERVAL);
            if p.last_flush.is_none() {
                // The first use only starts the interval: a burst of calls
                // right after open costs one write, not two.
                p.last_flush = Some(Instant::now());
                false
            } else {
                due
            }
        };
        if due {
            self.flush(files, now)?;
        }
        Ok(())
    }

    /// Merges this engine's unflushed uses into the file.
    pub fn flush(&self, files: &StoreFiles, now: i64) -> Result<(), KmsError> {
        let mut p = self
            .pending
            .lock()
            .map_err(|_| KmsError::Internal("key usage lock poisoned".into()))?;
        p.last_flush = Some(Instant::now());
        if p.uses.is_empty() {
            return Ok(());
        }
        let _lock = files.lock()?;
        let mut f = read_file(files)?.unwrap_or(UsageFile {
            tracking_start: now,
            keys: BTreeMap::new(),
        });
        for (id, u) in std::mem::take(&mut p.uses) {
            merge(&mut f.keys, id.to_string(), u);
        }
        write_file(files, &f)
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
        let p = self
            .pending
            .lock()
            .map_err(|_| KmsError::Internal("key usage lock poisoned".into()))?;
        if let Some(u) = p.uses.get(&id) {
            merge(&mut keys, id.to_string(), u.clone());
        }
        Ok((tracking_start, keys.remove(&id.to_string())))
    }
}
