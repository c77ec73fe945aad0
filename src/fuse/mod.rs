//! The FUSE adaptor: a multi-threaded fuser session over a backing
//! directory, split by operation family (`dir`, `file`, `copy`, `rename`,
//! `link`, `xattr`, `unsupported`), with one inode table (`inode`), one
//! error-to-errno mapping (`errno`) and the block I/O engine (`blockio`).

pub mod acl;
pub mod attr;
pub mod blockio;
pub mod control;
pub mod copy;
pub mod dir;
pub mod errno;
pub mod fault;
pub mod file;
pub mod inode;
pub mod link;
pub mod mount;
pub mod naming;
pub mod ops;
pub mod pending;
pub mod perm;
pub mod rename;
pub mod stale;
pub mod status;
pub mod unsupported;
pub mod xattr;

use crate::content::ContentCipher;
use crate::keys::KeyService;
use crate::keys::cache::{CacheConfig, CachingKeyService};
use crate::keys::write_only::WriteOnlyKeys;
use crate::volume::Volume;
use errno::{FsError, FsResult};
use inode::{InodeState, InodeTable, NodeRef, PlainPath};
use kms_engine::{EncryptionContext, KmsError, Principal};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// How long the kernel may cache attributes and entries.
pub const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel sends in one request.
pub const MAX_WRITE: u32 = 1 << 20;

/// Context key naming the volume.
pub const CTX_VOLUME: &str = "kmsfs:volume";
/// Context key naming the file's plaintext path.
pub const CTX_PATH: &str = "kmsfs:path";

/// Mount-time options of the filesystem itself.
#[derive(Debug, Clone, Default)]
pub struct FsOptions {
    pub read_only: bool,
    pub cache: CacheConfig,
    /// New files' data keys wrapped in the background with these limits
    /// ([`crate::keys::wrap`]); `None`: GenerateDataKey in `create`.
    pub background_wrap: Option<crate::keys::wrap::WrapLimits>,
    /// No extended attributes (`--no-xattr`): every xattr request is
    /// answered ENOSYS, which the kernel remembers for the whole mount, so
    /// the `security.capability` lookups before writes and chowns and the
    /// `security.selinux`/`system.posix_acl_*` lookups of `ls -l` never
    /// leave the kernel. No POSIX ACLs either.
    pub no_xattr: bool,
    /// The kernel's writeback cache (`--writeback-cache`): writes gather
    /// in the page cache and reach kmsfs as few large WRITEs (tar -x: one
    /// per small file instead of ~3.5); the kernel keeps size and mtime
    /// while it holds dirty pages and handles O_APPEND itself. Costs: data
    /// written and not yet flushed is lost with the mount process (kill -9)
    /// as with a power failure, and a size another host gives a file is not
    /// seen while this mount caches it. Not on write-only volumes (the
    /// kernel reads a page before writing part of it).
    pub writeback_cache: bool,
}

/// An open regular file.
pub(crate) struct OpenFile {
    pub ino: u64,
    pub file: File,
    pub cipher: ContentCipher,
    pub append: bool,
    pub state: Arc<InodeState>,
    /// Whether reads may use the key: false for a handle of a write-only
    /// volume whose key did not come from the service's Decrypt for the
    /// caller (a new file's, or one opened for writing only); a read
    /// through it is EACCES.
    pub readable: bool,
}

impl OpenFile {
    /// Block I/O on this handle's backing file; the caller holds the
    /// inode's `io` lock.
    pub(crate) fn io<'a>(&'a self, path: blockio::PathFn<'a>) -> blockio::BlockIo<'a> {
        blockio::BlockIo {
            file: &self.file,
            cipher: &self.cipher,
            path,
            version: &self.state.content_version,
            tail: &self.state.tail,
        }
    }
}

/// An open directory. The backing directory is opened at opendir, so that
/// opendir reports a missing or unreadable directory; its entries are read
/// and their names decrypted at the first readdir (`rm -rf` opens every
/// directory twice and reads only one of the two).
pub(crate) struct DirHandle {
    pub listing: Mutex<dir::Listing>,
}

/// One entry of a directory listing.
pub(crate) struct DirEntry {
    pub ino: u64,
    pub kind: fuser::FileType,
    pub name: OsString,
    /// The entry's name in the backing directory (None for `.` and `..`),
    /// so that READDIRPLUS need not encrypt the name again.
    pub backing: Option<OsString>,
}

/// Everything the operations share. The fuser [`KmsFs`] wraps it in an
/// `Arc` so that the mount command can read status while mounted.
pub struct Core {
    pub(crate) vol: Volume,
    pub(crate) keys: Arc<CachingKeyService<Arc<dyn KeyService>>>,
    /// A write-only volume's key layer (also inside `keys`): new files'
    /// keys and opens for writing go to it directly.
    pub(crate) write_only: Option<Arc<WriteOnlyKeys>>,
    /// New files' keys being wrapped in the background.
    pub(crate) pending: pending::PendingKeys,
    pub(crate) table: Mutex<InodeTable>,
    pub(crate) files: RwLock<HashMap<u64, Arc<OpenFile>>>,
    pub(crate) dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
    /// Keeps plaintext paths stable while an operation binds one to a
    /// backing entry or a data key. Renames (which move paths and re-wrap
    /// keys, and share the one journal file) hold it exclusively; creates,
    /// opens, lookups and removals hold it shared from reading their
    /// parent's path until the table and the backing directory agree again.
    /// So a file created in `/d` while `/d` is renamed is created wholly
    /// before the rename's re-wrap walk (and re-wrapped by it) or wholly
    /// after it (under the new path), never bound to the old path below
    /// the new name.
    path_lock: RwLock<()>,
    pub(crate) opts: FsOptions,
    pub(crate) xattrs: xattr::XattrCipher,
    /// POSIX ACLs are on (see `acl`): wanted on `--allow-other` mounts,
    /// kept when the kernel accepts FUSE_POSIX_ACL.
    pub(crate) posix_acl: AtomicBool,
    /// The kernel took FUSE_WRITEBACK_CACHE at INIT (asked for with
    /// `--writeback-cache`; not on write-only volumes, not when the kernel
    /// lacks it): it then places O_APPEND writes itself.
    pub(crate) writeback_cache: AtomicBool,
    /// Sizes of the write requests served (for `kmsfs status`).
    pub(crate) write_counters: status::WriteCounters,
    /// FUSE requests served, by operation (for `kmsfs status`).
    pub(crate) op_counters: status::OpCounters,
    /// Which unsupported requests were logged already (each kind once).
    pub(crate) unsupported: unsupported::UnsupportedLog,
    /// Callers' supplementary groups, briefly (see [`perm::GroupsCache`]).
    pub(crate) groups: Arc<perm::GroupsCache>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("vol", &self.vol).finish()
    }
}

impl Core {
    /// Builds the filesystem over an open volume. Completes a pending rename
    /// journal first (roll forward).
    pub fn new(vol: Volume, keys: Arc<dyn KeyService>, mut opts: FsOptions) -> FsResult<Core> {
        if crate::rewrap::names::pending(&vol.root) {
            // Some names are under the new names key, some under the old.
            return Err(FsError::Io(std::io::Error::other(
                "a names rekey is pending (kmsfs.rekey-names): finish it with kmsfs rekey \
                 --names first",
            )));
        }
        rename::recover_journal(&vol)?;
        let table = InodeTable::new(&vol.root);
        let xattrs = xattr::XattrCipher::new(vol.names_key())?;
        let (keys, write_only) = match &vol.config.write_only_key {
            Some(key_id) => {
                let wo = Arc::new(WriteOnlyKeys::new(
                    keys,
                    &vol.root,
                    &vol.config.volume_id,
                    key_id,
                    opts.cache.reauth_interval,
                ));
                if !opts.read_only {
                    wo.load_public_key(&Principal::current_process())?;
                }
                // New keys are wrapped locally: nothing to do in the background.
                opts.background_wrap = None;
                (wo.clone() as Arc<dyn KeyService>, Some(wo))
            }
            None => (keys, None),
        };
        let groups = Arc::new(perm::GroupsCache::new(opts.cache.reauth_interval));
        let keys = Arc::new(CachingKeyService::new(keys, opts.cache));
        let pending = pending::PendingKeys::start(keys.clone(), opts.background_wrap)?;
        Ok(Core {
            xattrs,
            posix_acl: AtomicBool::new(false),
            writeback_cache: AtomicBool::new(false),
            keys,
            write_only,
            pending,
            vol,
            table: Mutex::new(table),
            files: RwLock::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            path_lock: RwLock::new(()),
            write_counters: status::WriteCounters::default(),
            op_counters: status::OpCounters::default(),
            unsupported: unsupported::UnsupportedLog::default(),
            groups,
            opts,
        })
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, InodeTable> {
        match self.table.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Shared hold on the paths (see `path_lock`): taken before reading a
    /// parent's path, held until the operation is done with it. Never
    /// taken twice by one thread (a waiting rename would deadlock it).
    pub(crate) fn paths_shared(&self) -> FsResult<RwLockReadGuard<'_, ()>> {
        self.path_lock.read().map_err(|_| FsError::Stale)
    }

    /// Exclusive hold on the paths, for a rename.
    pub(crate) fn paths_exclusive(&self) -> FsResult<RwLockWriteGuard<'_, ()>> {
        self.path_lock.write().map_err(|_| FsError::Stale)
    }

    /// The caller of `req`, its supplementary groups read at most once per
    /// short interval (see [`perm::GroupsCache`]).
    pub(crate) fn caller(&self, req: &fuser::Request) -> perm::Caller {
        perm::Caller::cached(req, &self.groups)
    }

    pub(crate) fn node(&self, ino: u64) -> FsResult<NodeRef> {
        self.table().get(ino).ok_or(FsError::Stale)
    }

    pub(crate) fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn file_handle(&self, fh: u64) -> FsResult<Arc<OpenFile>> {
        let files = self.files.read().map_err(|_| FsError::Stale)?;
        files.get(&fh).cloned().ok_or(FsError::Stale)
    }

    pub(crate) fn check_writable(&self) -> FsResult<()> {
        if self.opts.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The encryption context binding a data key to `path`.
    pub fn file_context(&self, path: &PlainPath) -> EncryptionContext {
        file_context(&self.vol.config.volume_id, path)
    }

    /// Wraps the new files' keys still pending and stops the workers: what
    /// the mount does when it ends, before its process exits.
    pub fn finish_pending_keys(&self) {
        self.pending.shutdown();
    }

    /// A status snapshot for `kmsfs status`.
    pub fn status(&self, mountpoint: &Path) -> status::StatusReport {
        let open_files = self.files.read().map(|f| f.len() as u64).unwrap_or(0);
        status::StatusReport {
            pid: std::process::id(),
            started: stale::process_started(std::process::id()),
            mountpoint: mountpoint.to_path_buf(),
            cipherdir: self.vol.root.clone(),
            volume_id: self.vol.config.volume_id.clone(),
            key_id: self.vol.config.master_key_id.clone(),
            read_only: self.opts.read_only,
            open_files,
            known_inodes: self.table().len() as u64,
            cache: self.keys.stats(),
            service: self.keys.service_stats(),
            wraps: self.pending.stats(),
            writes: self.write_counters.snapshot(),
            requests: self.op_counters.snapshot(),
            key_versions: Vec::new(),
            write_only: self.write_only.as_ref().map(|wo| status::WriteOnlyStatus {
                key_id: wo.key_id().to_string(),
                slot: wo
                    .own_slot_id()
                    .map(|id| crate::keys::write_only::slot_file_name(&id)),
            }),
        }
    }
}

/// The encryption context for a file of `volume_id` at `path`.
pub fn file_context(volume_id: &str, path: &PlainPath) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    ctx.insert(CTX_VOLUME.to_string(), volume_id.to_string());
    ctx.insert(CTX_PATH.to_string(), path.context_string());
    ctx
}

/// Runs `op` (an engine call that unwraps a file's data key) with the
/// file's encryption context; for a non-UTF-8 path whose data key was
/// wrapped under the context string of earlier versions
/// ([`PlainPath::legacy_context_string`]), and only when the first call
/// failed as InvalidCiphertext (authorized, but the key does not open under
/// this context), once more with that legacy context. A Deny on the path
/// applies to the first call, so it covers old files too.
pub fn with_file_context<T>(
    volume_id: &str,
    path: &PlainPath,
    mut op: impl FnMut(&EncryptionContext) -> Result<T, KmsError>,
) -> Result<T, KmsError> {
    let first = op(&file_context(volume_id, path));
    match (first, path.legacy_context_string()) {
        (Err(KmsError::InvalidCiphertext(m)), Some(legacy)) => {
            let mut ctx = file_context(volume_id, path);
            ctx.insert(CTX_PATH.to_string(), legacy);
            op(&ctx).map_err(|_| KmsError::InvalidCiphertext(m))
        }
        (r, _) => r,
    }
}

/// The fuser filesystem: a thin shell that replies with [`Core`]'s results.
#[derive(Debug, Clone)]
pub struct KmsFs {
    pub core: Arc<Core>,
}

impl KmsFs {
    pub fn new(core: Core) -> Self {
        KmsFs {
            core: Arc::new(core),
        }
    }
}

/// The FUSE capabilities kmsfs asks for at INIT (those the kernel offers are
/// taken; POSIX ACLs are added on mounts that have them, see `acl`). Public
/// so that the no-crypto passthrough of `benches/` runs with the same.
pub fn init_capabilities() -> fuser::InitFlags {
    fuser::InitFlags::FUSE_BIG_WRITES
        | fuser::InitFlags::FUSE_ASYNC_READ
        | fuser::InitFlags::FUSE_MAX_PAGES
        | fuser::InitFlags::FUSE_PARALLEL_DIROPS
        | fuser::InitFlags::FUSE_AUTO_INVAL_DATA
        // READDIRPLUS returns each entry with its attributes, so `ls -l`
        // and `find` need no LOOKUP round trip per entry; AUTO lets the
        // kernel fall back to plain READDIR when attributes go unused.
        | fuser::InitFlags::FUSE_DO_READDIRPLUS
        | fuser::InitFlags::FUSE_READDIRPLUS_AUTO
        // kmsfs clears set-user-id/set-group-id itself (write with
        // FUSE_WRITE_KILL_SUIDGID, truncate by a non-root caller; chown
        // of the backing file clears them in the backing kernel). The
        // kernel then marks inodes S_NOSEC and stops asking for
        // `security.capability` before every WRITE, and stops sending a
        // GETATTR before every chown and truncate.
        | fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2
}

/// The fuser session configuration kmsfs mounts with (through
/// [`mount::mount`], which adds the source and type).
pub fn mount_config(read_only: bool, allow_other: bool) -> fuser::Config {
    let mut cfg = fuser::Config::default();
    // The source and type are set by `mount::mount`.
    cfg.mount_options = vec![
        fuser::MountOption::NoAtime,
        if read_only {
            fuser::MountOption::RO
        } else {
            fuser::MountOption::RW
        },
    ];
    if allow_other {
        // Other users: the kernel checks permissions on every access, also
        // on cached lookups that never reach kmsfs. Without it the kernel
        // admits only the mount owner, and kmsfs and the backing
        // filesystem (acting as that same owner) check (see `perm`); that
        // saves a parent-directory GETATTR after every create and unlink.
        cfg.mount_options
            .push(fuser::MountOption::DefaultPermissions);
        cfg.acl = fuser::SessionACL::All;
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    cfg.n_threads = Some(cpus.max(2));
    cfg.clone_fd = true;
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unwrap that opens only under `accept` and records every context
    /// string it was asked with.
    fn unwrap_under<'a>(
        accept: &'a str,
        deny: Option<&'a str>,
        seen: &'a mut Vec<String>,
    ) -> impl FnMut(&EncryptionContext) -> Result<u8, KmsError> + 'a {
        move |ctx| {
            let p = ctx[CTX_PATH].clone();
            seen.push(p.clone());
            if deny == Some(p.as_str()) {
                Err(KmsError::AccessDenied("denied".into()))
            } else if p == accept {
                Ok(7)
            } else {
                Err(KmsError::InvalidCiphertext("no".into()))
            }
        }
    }

    #[test]
    fn legacy_context_is_tried_only_for_non_utf8_keys_that_do_not_open() {
        let raw = PlainPath::from_bytes(b"/s/\xff".to_vec());
        let mut seen = Vec::new();
        // A file written under the old scheme opens, after one miss.
        let r = with_file_context("v", &raw, unwrap_under("base64url:L3Mv_w", None, &mut seen));
        assert_eq!(r, Ok(7));
        assert_eq!(seen, ["/s/\0ff", "base64url:L3Mv_w"]);
        // A refusal under the current context is final: no second try.
        seen.clear();
        let r = with_file_context(
            "v",
            &raw,
            unwrap_under("base64url:L3Mv_w", Some("/s/\0ff"), &mut seen),
        );
        assert!(matches!(r, Err(KmsError::AccessDenied(_))));
        assert_eq!(seen, ["/s/\0ff"]);
        // A key that opens under neither reports the current context's error.
        seen.clear();
        let r = with_file_context("v", &raw, unwrap_under("other", None, &mut seen));
        assert_eq!(r, Err(KmsError::InvalidCiphertext("no".into())));
        // A UTF-8 path has one context only.
        seen.clear();
        let utf8 = PlainPath::from_bytes(b"/s/a".to_vec());
        let r = with_file_context("v", &utf8, unwrap_under("x", None, &mut seen));
        assert!(r.is_err());
        assert_eq!(seen, ["/s/a"]);
    }
}
