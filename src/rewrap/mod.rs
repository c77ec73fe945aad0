//! Volume-wide key jobs: `kmsfs rewrap` (every file's wrapped data key
//! re-encrypted under the newest version of the volume's key, or another
//! key), `kmsfs migrate` (every data key moved to another key service) and
//! `kmsfs rekey` (new data keys and re-encrypted content, [`rekey`]; a new
//! names key with every name re-encrypted, [`names`]).
//!
//! Rewrap and migrate replace only the wrapped key in each file's header
//! (bytes 24..128, the file id and version are never written), in batches:
//! the new wrapped keys of a batch are computed in parallel, the batch's old
//! headers are written to a journal ([`journal`]), the headers are written
//! in place, the backing filesystem is synced once (`syncfs`), and the next
//! batch's journal replaces this one. A kill at any point leaves every file
//! with its old or its new header (both open: the data key is the same);
//! the next run puts the old header back into a file whose write was torn
//! and goes on. Files already under the target are skipped, so a run
//! resumes where the last one stopped. A file whose header or data key does
//! not check out (tampered, moved, damaged) is reported and left alone.

pub mod journal;
pub mod names;
pub mod rekey;
pub mod walk;

use crate::format::{FileHeader, HEADER_LEN};
use crate::fsck::{Kind, Problem};
use crate::fuse::with_file_context;
use crate::keys::KeyService;
use journal::{OldHeaders, WRAPPED_PART};
use kms_engine::{KmsError, Principal};
use serde::Serialize;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
pub use walk::{Listing, VolumeFile, walk};

/// A master key and the version of it that wrapped a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyVersion {
    pub key_id: String,
    pub version: u32,
}

/// The key and version a wrapped key names, for blobs of this project's
/// engine (embedded, daemon or its HTTPS endpoint); `None` for a blob it
/// cannot read (another service's blobs are opaque).
pub fn blob_key_version(wrapped: &[u8]) -> Option<KeyVersion> {
    kms_engine::blob::parse_header(wrapped)
        .ok()
        .map(|h| KeyVersion {
            key_id: h.key_id.to_string(),
            version: h.key_version,
        })
}

/// How the work is split.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Threads asking the key service at once.
    pub threads: usize,
    /// Files per batch (one journal write and one `syncfs` per batch).
    pub batch: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 8,
            batch: 4096,
        }
    }
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Progress {
    pub files_done: u64,
    pub files_total: u64,
    /// Backing bytes of the files done (for rewrap: covered, not read).
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Regular files looked at.
    pub files: u64,
    /// Files changed by this run.
    pub changed: u64,
    /// Files already under the target (left as they were), empty files too.
    pub current: u64,
    /// Files reported and left alone.
    pub skipped: u64,
    /// Of those, the files that failed for a reason that may pass (the key
    /// service unreachable or refusing): a run again may finish them. The
    /// others are damaged or tampered (their key does not unwrap).
    pub retryable: u64,
    /// Backing bytes of the files looked at.
    pub bytes: u64,
    pub seconds: f64,
    pub files_per_second: f64,
    /// The key every file is now under, and its version (when the service
    /// names versions in its blobs).
    pub key_id: String,
    pub key_version: Option<u32>,
    pub problems: Vec<Problem>,
    /// `kmsfs rekey --names`: what the names rekey did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<names::NamesSummary>,
}

/// What a job does to one file's header.
pub trait HeaderJob: Sync {
    /// The new wrapped data key for `file`, whose header is `header`;
    /// `None` when the file is already under the target.
    fn new_wrapped(
        &self,
        file: &VolumeFile,
        header: &FileHeader,
    ) -> Result<Option<Vec<u8>>, KmsError>;
}

/// What one file came to before its header is written.
enum Step {
    Current,
    /// The old and the new header (boxed: two headers are large).
    Replace(Box<([u8; HEADER_LEN], [u8; HEADER_LEN])>),
    Failed {
        what: String,
        retryable: bool,
    },
}

fn failed(what: String) -> Step {
    Step::Failed {
        what,
        retryable: false,
    }
}

/// The job of `kmsfs rewrap`: ReEncrypt to the newest version of `dest_key`.
pub struct Rewrap<'a> {
    pub keys: &'a dyn KeyService,
    pub caller: &'a Principal,
    pub volume_id: String,
    /// The key to re-encrypt to (a key id or ARN).
    pub dest_key: String,
    /// Its newest version, when known: files under it are skipped.
    pub target: Option<KeyVersion>,
}

impl std::fmt::Debug for Rewrap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrap")
            .field("dest_key", &self.dest_key)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl HeaderJob for Rewrap<'_> {
    fn new_wrapped(
        &self,
        file: &VolumeFile,
        header: &FileHeader,
    ) -> Result<Option<Vec<u8>>, KmsError> {
        if self.target.is_some() && blob_key_version(&header.wrapped_dek) == self.target {
            return Ok(None);
        }
        with_file_context(&self.volume_id, &file.plain, |ctx| {
            self.keys
                .reencrypt_data_key(self.caller, &header.wrapped_dek, ctx, &self.dest_key)
        })
        .map(Some)
    }
}

/// The job of `kmsfs migrate`: Decrypt through the old service, Encrypt
/// the same data key under `dest_key` through the new one.
pub struct Migrate<'a> {
    pub from: &'a dyn KeyService,
    pub to: &'a dyn KeyService,
    pub caller: &'a Principal,
    pub volume_id: String,
    pub dest_key: String,
    /// The destination key as its blobs name it, when they can be read:
    /// files under it (any version) are done.
    pub dest_key_id: Option<String>,
}

impl std::fmt::Debug for Migrate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrate")
            .field("dest_key", &self.dest_key)
            .finish_non_exhaustive()
    }
}

impl HeaderJob for Migrate<'_> {
    fn new_wrapped(
        &self,
        file: &VolumeFile,
        header: &FileHeader,
    ) -> Result<Option<Vec<u8>>, KmsError> {
        let w = &header.wrapped_dek;
        match &self.dest_key_id {
            Some(id) => {
                if blob_key_version(w).is_some_and(|kv| kv.key_id == *id) {
                    return Ok(None);
                }
            }
            None => {
                // Opaque blobs: a file the new service opens is done.
                let done = with_file_context(&self.volume_id, &file.plain, |ctx| {
                    self.to.decrypt_data_key(self.caller, w, ctx)
                });
                if done.is_ok() {
                    return Ok(None);
                }
            }
        }
        let mut used_ctx = None;
        let dek = with_file_context(&self.volume_id, &file.plain, |ctx| {
            used_ctx = Some(ctx.clone());
            self.from.decrypt_data_key(self.caller, w, ctx)
        })?;
        let ctx = used_ctx.ok_or_else(|| KmsError::Internal("no context".into()))?;
        self.to
            .encrypt_data_key(self.caller, &self.dest_key, &dek, &ctx)
            .map(Some)
    }
}

/// Whether `name` is a file of a key job in the cipher root (the rewrap
/// journal, the rekey list, the migration state).
pub fn is_job_file(name: &[u8]) -> bool {
    [
        journal::REWRAP_JOURNAL_NAME,
        rekey::REKEY_LIST_NAME,
        MIGRATE_STATE_NAME,
        names::NAMES_STATE_NAME,
    ]
    .iter()
    .any(|n| n.as_bytes() == name)
}

/// The pending-migration state in the cipher root: the new `kmsfs.conf`
/// (names key wrapped by the new service), written before the first file
/// moves and put in place once every file has; a mount refuses the volume
/// while it is there.
pub const MIGRATE_STATE_NAME: &str = "kmsfs.migrate";

#[derive(Serialize, serde::Deserialize)]
struct MigrateState {
    version: u32,
    /// The new config, as it will be written.
    config: String,
}

/// The config of `vol` moved to `dest_key` on the service `dest` (recorded
/// as `dest_kms`): the one a pending migration recorded, or a new one,
/// recorded now. Checked through `dest` in both cases.
pub fn migrate_config(
    root: &Path,
    vol: &crate::volume::Volume,
    dest: &dyn KeyService,
    caller: &Principal,
    dest_key: &str,
    dest_kms: Option<String>,
) -> Result<crate::format::VolumeConfig, crate::volume::VolumeError> {
    use crate::volume::VolumeError;
    let path = root.join(MIGRATE_STATE_NAME);
    let io = |source| VolumeError::Io {
        path: path.clone(),
        source,
    };
    match crate::volume::read_small_file(&path, 1 << 20) {
        Ok(bytes) => {
            let st: MigrateState = serde_json::from_slice(&bytes)
                .map_err(|e| io(std::io::Error::other(format!("unreadable: {e}"))))?;
            let up = crate::format::VolumeConfig::decode(st.config.as_bytes())?;
            if up.kms != dest_kms {
                return Err(io(std::io::Error::other(format!(
                    "a migration to {} is pending: finish it first (kmsfs migrate with that                      service)",
                    up.kms.as_deref().unwrap_or("the embedded engine")
                ))));
            }
            vol.checked_config(dest, caller, &up)?;
            Ok(up)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !vol.config.is_authenticated() {
                return Err(VolumeError::ConfigMismatch {
                    root: root.to_path_buf(),
                    why: "a format-1 config cannot be migrated: run kmsfs upgrade-config first"
                        .into(),
                });
            }
            let mut up = vol.config.clone();
            up.master_key_id = dest_key.to_string();
            up.kms = dest_kms;
            up.wrapped_names_key =
                dest.encrypt_data_key(caller, dest_key, vol.names_key(), &up.names_key_context())?;
            let bytes = vol.checked_config(dest, caller, &up)?;
            let st = MigrateState {
                version: 1,
                config: String::from_utf8_lossy(&bytes).into_owned(),
            };
            let text = serde_json::to_vec(&st).map_err(|e| io(std::io::Error::other(e)))?;
            crate::volume::write_atomic(&path, &text, crate::volume::META_FILE_MODE).map_err(io)?;
            Ok(up)
        }
        Err(e) => Err(io(e)),
    }
}

/// Removes the migration state once the new config is in place.
pub fn finish_migration(root: &Path) -> std::io::Result<()> {
    std::fs::remove_file(root.join(MIGRATE_STATE_NAME))?;
    std::fs::File::open(root)?.sync_all()
}

/// Runs `job` over `files` of the volume at `root` (see the module docs).
/// `hold` is taken around each batch's header writes (a mount's path lock,
/// so that no rename re-wraps a file at the same time; nothing offline).
pub fn run<G>(
    root: &Path,
    files: &[VolumeFile],
    job: &dyn HeaderJob,
    opts: RunOptions,
    progress: &mut dyn FnMut(&Progress),
    hold: &dyn Fn() -> G,
) -> std::io::Result<Summary> {
    let started = Instant::now();
    let olds = journal::recover(root)?;
    let root_dir = std::fs::File::open(root)?;
    let mut p = Progress {
        files_total: files.len() as u64,
        bytes_total: files.iter().map(|f| f.cipher_size).sum(),
        ..Progress::default()
    };
    let mut s = Summary::default();
    progress(&p);
    for batch in files.chunks(opts.batch.max(1)) {
        let steps = compute(batch, job, &olds, opts.threads.max(1));
        let mut writes = Vec::new();
        for (f, step) in batch.iter().zip(steps) {
            match step {
                Step::Current => s.current += 1,
                Step::Failed { what, retryable } => {
                    s.skipped += 1;
                    s.retryable += u64::from(retryable);
                    let kind = if retryable {
                        Kind::KeyAccess
                    } else {
                        Kind::Content
                    };
                    let path = f.plain.display();
                    s.problems
                        .push(walk::file_problem(root, path, &f.backing, what, kind));
                }
                Step::Replace(h) => writes.push((f, h.0, h.1)),
            }
        }
        if !writes.is_empty() {
            let _held = hold();
            let entries: Vec<_> = writes
                .iter()
                .map(|(f, o, _)| (f.backing.clone(), *o))
                .collect();
            journal::write(root, &entries)?;
            for (f, old, new) in &writes {
                match write_header(&f.backing, old, new) {
                    Ok(true) => s.changed += 1,
                    Ok(false) => {
                        s.skipped += 1;
                        s.retryable += 1;
                        s.problems.push(walk::file_problem(
                            root,
                            f.plain.display(),
                            &f.backing,
                            "changed while it was being rewrapped: run again".into(),
                            Kind::Io,
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            rustix::fs::syncfs(&root_dir)?;
        }
        p.files_done += batch.len() as u64;
        p.bytes_done += batch.iter().map(|f| f.cipher_size).sum::<u64>();
        progress(&p);
    }
    journal::remove(root)?;
    s.files = files.len() as u64;
    s.bytes = p.bytes_total;
    s.seconds = started.elapsed().as_secs_f64();
    s.files_per_second = if s.seconds > 0.0 {
        s.files as f64 / s.seconds
    } else {
        0.0
    };
    Ok(s)
}

/// The steps of one batch, computed by `threads` threads.
fn compute(
    batch: &[VolumeFile],
    job: &dyn HeaderJob,
    olds: &OldHeaders,
    threads: usize,
) -> Vec<Step> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, Step)> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..threads.min(batch.len()).max(1))
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = batch.get(i) else { break };
                        mine.push((i, step(f, job, olds)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

fn kms_problem(e: &KmsError) -> String {
    match e {
        KmsError::InvalidCiphertext(_) => format!(
            "data key does not unwrap under this path ({} ({})): tampered, moved here from \
             another path, or damaged; skipped",
            e.message(),
            e.exception_name()
        ),
        _ => format!(
            "data key cannot be re-wrapped: {} ({}); skipped",
            e.message(),
            e.exception_name()
        ),
    }
}

/// What to do with one file.
fn step(f: &VolumeFile, job: &dyn HeaderJob, olds: &OldHeaders) -> Step {
    let raw = match journal::read_header(&f.backing) {
        Ok(Some(h)) => h,
        // Created but no header yet (or removed meanwhile): no data key.
        Ok(None) if f.cipher_size == 0 => return Step::Current,
        Ok(None) => return failed("backing file shorter than a header; skipped".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Step::Current,
        Err(e) => return failed(format!("cannot read the header: {e}; skipped")),
    };
    let header = match FileHeader::decode(&raw) {
        Ok(h) => h,
        Err(e @ crate::format::HeaderError::KeyPending) => {
            // A mount is still wrapping the new file's key (or stopped
            // before it did: then fsck reports the file).
            return Step::Failed {
                what: format!("{e}; skipped"),
                retryable: true,
            };
        }
        Err(e) => return failed(format!("bad file header: {e}; skipped")),
    };
    let result = match job.new_wrapped(f, &header) {
        Err(KmsError::InvalidCiphertext(m)) => match olds.get(&f.backing) {
            // A header torn by the run that crashed: back to the old one.
            Some(old) if *old != raw => match FileHeader::decode(old) {
                Ok(old_header) => match journal::restore(&f.backing, &raw, &old_header, old) {
                    Ok(true) => return step(f, job, &OldHeaders::new()),
                    _ => Err(KmsError::InvalidCiphertext(m)),
                },
                Err(_) => Err(KmsError::InvalidCiphertext(m)),
            },
            _ => Err(KmsError::InvalidCiphertext(m)),
        },
        r => r,
    };
    match result {
        Ok(None) => Step::Current,
        Ok(Some(w)) => match header.rewrapped(w).and_then(|h| h.encode()) {
            Ok(mut new) => {
                // Only the wrapped part is written: keep the rest as on disk.
                new[..WRAPPED_PART].copy_from_slice(&raw[..WRAPPED_PART]);
                Step::Replace(Box::new((raw, new)))
            }
            Err(e) => failed(format!("the new wrapped key does not fit: {e}; skipped")),
        },
        Err(e) => Step::Failed {
            what: kms_problem(&e),
            retryable: !matches!(
                e,
                KmsError::InvalidCiphertext(_) | KmsError::IncorrectKey(_)
            ),
        },
    }
}

/// Writes the wrapped part of `new` into `path` if its header is still
/// `old`; returns whether it wrote (false: the file changed or went away).
fn write_header(
    path: &Path,
    old: &[u8; HEADER_LEN],
    new: &[u8; HEADER_LEN],
) -> std::io::Result<bool> {
    // Reading the header is no read of the file: its access time stays.
    let f = match crate::volume::open_quietly(path, true) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut now = [0u8; HEADER_LEN];
    if f.read_exact_at(&mut now, 0).is_err() || now != *old {
        return Ok(false);
    }
    crate::volume::keeping_times(&f, || {
        f.write_all_at(&new[WRAPPED_PART..], WRAPPED_PART as u64)
    })?;
    Ok(true)
}

/// Files by the key their data key is wrapped under (headers only, nothing
/// decrypted): see `kmsfs fsck`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct VersionCount {
    /// Under the newest version of the volume's key.
    pub newest: u64,
    /// Under an older version of the volume's key.
    pub older_versions: u64,
    /// Under another key (a rewrap --to-key or migrate not finished).
    pub other_keys: u64,
}

impl VersionCount {
    /// Counts one data key (`None`: its blob names no version).
    pub fn add(&mut self, kv: Option<&KeyVersion>, newest: &KeyVersion) {
        match kv {
            Some(kv) if kv.key_id != newest.key_id => self.other_keys += 1,
            Some(kv) if kv.version < newest.version => self.older_versions += 1,
            Some(_) => self.newest += 1,
            None => self.other_keys += 1,
        }
    }
}

/// The newest version of the volume's key: the version the key service
/// wraps under now, learnt by re-wrapping the names key (the result is not
/// used). `None` when the service's blobs do not name versions.
pub fn newest_version(
    vol: &crate::volume::Volume,
    keys: &dyn KeyService,
    caller: &Principal,
) -> Option<KeyVersion> {
    let w = keys
        .reencrypt_data_key(
            caller,
            &vol.config.wrapped_names_key,
            &vol.config.names_key_context(),
            vol.bound_key_id(),
        )
        .ok()?;
    blob_key_version(&w).filter(|kv| kv.key_id == vol.bound_key_id())
}

/// How many files are under one version of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionFiles {
    pub key_id: String,
    pub version: u32,
    pub files: u64,
}

/// Counts the files of the volume at `root` by the key and version their
/// header's wrapped key names (every regular backing file with a header;
/// names are not decrypted, nothing is unwrapped, the key service is not
/// asked). Files whose blob names no version are left out.
pub fn files_by_version(root: &Path) -> Vec<VersionFiles> {
    use crate::names::{BackingKind, classify_backing_name};
    use std::collections::BTreeMap;
    use std::os::unix::ffi::OsStrExt;
    let mut counts: BTreeMap<(String, u32), u64> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // Not a read of the directories: their access times stay.
        let Ok(entries) = crate::volume::list_dir_quietly(&dir) else {
            continue;
        };
        for (name, ft) in entries {
            let raw = name.as_bytes();
            if ft == rustix::fs::FileType::Directory {
                if !crate::names::is_reserved(raw) {
                    stack.push(dir.join(&name));
                }
                continue;
            }
            let kmsfs_own = crate::names::is_reserved(raw)
                && !matches!(classify_backing_name(raw), BackingKind::LongName);
            if ft != rustix::fs::FileType::RegularFile || kmsfs_own {
                continue;
            }
            if let Ok(Some(h)) = journal::read_header(&dir.join(&name))
                && let Ok(h) = FileHeader::decode(&h)
                && let Some(kv) = blob_key_version(&h.wrapped_dek)
            {
                *counts.entry((kv.key_id, kv.version)).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .map(|((key_id, version), files)| VersionFiles {
            key_id,
            version,
            files,
        })
        .collect()
}
