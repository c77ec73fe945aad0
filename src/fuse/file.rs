//! Regular files: create, open (Decrypt of the data key through the cache,
//! as the caller), read, write, flush, release, fsync, fallocate, lseek.

use super::blockio::Seek;
use super::dir::new_owner;
use super::errno::{FsError, FsResult};
use super::inode::NodeRef;
use super::pending::NewKey;
use super::{Core, OpenFile};
use crate::content::{BlockMark, ContentCipher};
use crate::format::FileId;
use crate::keys::KeyService;
use fuser::{FileAttr, FopenFlags, Request};
use kms_engine::KmsError;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// fallocate mode bits kmsfs implements (linux/falloc.h).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

impl Core {
    fn principal(&self, req: &Request) -> kms_engine::Principal {
        self.caller(req).principal().clone()
    }

    /// Logs and converts a key-service failure on `path`.
    fn kms_failure(&self, path: &str, op: &str, e: KmsError) -> FsError {
        match &e {
            KmsError::InvalidCiphertext(_) | KmsError::IncorrectKey(_) => {
                log::warn!("{path}: {op}: data key does not open under this path: {e}");
                FsError::tampered(path, format!("{op}: {e}"))
            }
            _ => {
                log::info!("{path}: {op} refused: {e}");
                FsError::Kms(e)
            }
        }
    }

    /// Opens the backing file of `node` and unwraps its data key as the
    /// caller.
    ///
    /// With `open_flags`, the caller's access to the opened file is checked
    /// for them ([`Core::check_open`]) before the engine is asked for the
    /// data key, so a POSIX refusal costs no (audited) Decrypt.
    pub(crate) fn open_backing(
        &self,
        req: &Request,
        node: &NodeRef,
        write: bool,
        open_flags: Option<i32>,
    ) -> FsResult<OpenFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(write && !self.opts.read_only)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&node.backing)?;
        // One caller for the access check and the engine call: its
        // supplementary groups are read from /proc at most once.
        let caller = self.caller(req);
        // With POSIX ACLs the kernel's check (default_permissions, ACL
        // included) is the one that decides: the mode alone would refuse
        // what an ACL entry grants.
        if let Some(flags) = open_flags
            && !self.acls_enabled()
        {
            self.check_open(&caller, &file, flags)?;
        }
        let path = node.plain.display();
        // A new file's key still being wrapped is waited for before the
        // inode's lock is taken (its creator may be writing meanwhile).
        self.await_key_of(&file, &|| path.clone())?;
        // Under the inode's lock, so that the version recorded for every
        // handle is not one a conversion (truncate to zero) just replaced.
        let io_guard = node.state.io.read().map_err(|_| FsError::Stale)?;
        let header = self.read_header(&file, &path)?;
        node.state
            .content_version
            .store(header.version, std::sync::atomic::Ordering::Release);
        drop(io_guard);
        // On a write-only volume an open without read access (or a
        // truncate) takes the key this mount still holds for a file it
        // created; every read access asks the service.
        let write_only = self
            .write_only
            .as_ref()
            .filter(|_| open_flags.is_none_or(|f| f & libc::O_ACCMODE == libc::O_WRONLY));
        let dek =
            super::with_file_context(
                &self.vol.config.volume_id,
                &node.plain,
                |ctx| match write_only {
                    Some(wo) => wo.decrypt_for_write(caller.principal(), &header.wrapped_dek, ctx),
                    None => {
                        self.keys
                            .decrypt_data_key(caller.principal(), &header.wrapped_dek, ctx)
                    }
                },
            )
            .map_err(|e| self.kms_failure(&path, "Decrypt", e))?;
        let cipher = ContentCipher::new(&dek, header.file_id, self.vol.block_size())
            .map_err(FsError::internal)?;
        let of = OpenFile {
            ino: node.ino,
            file,
            cipher,
            append: false,
            state: node.state.clone(),
            readable: write_only.is_none(),
        };
        {
            // An empty file is never read by the kernel: check its end mark
            // here, so that a file cut down to its header gives EIO.
            let _g = node.state.io.read().map_err(|_| FsError::Stale)?;
            of.io(&|| node.plain.display()).check_if_empty()?;
        }
        Ok(of)
    }

    fn register(&self, mut of: OpenFile, append: bool) -> FsResult<u64> {
        // With the writeback cache the kernel places O_APPEND writes itself
        // and writes back pages through any handle: offsets are as sent.
        of.append = append && !self.writeback_cache.load(Ordering::Acquire);
        let fh = self.new_fh();
        of.state.last_fh.store(fh, Ordering::Release);
        // Close-to-open: what another host wrote since is read again.
        of.state.tail.clear();
        self.files
            .write()
            .map_err(|_| FsError::Stale)?
            .insert(fh, Arc::new(of));
        Ok(fh)
    }

    /// Creates a regular file with a fresh data key bound to its path.
    /// Returns the new file's attributes and, when `open`, a handle.
    pub(crate) fn create_file(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: Option<i32>,
    ) -> FsResult<(FileAttr, Option<u64>)> {
        self.check_writable()?;
        // The key is bound to the path read here: no rename in between.
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let _dir_guard = dir.state.io.read().map_err(|_| FsError::Stale)?;
        let (backing, bn) = self.child_backing(&dir, name)?;
        let (uid, gid, _) = new_owner(req, &dir.backing)?;
        let new_mode = self.new_mode(&dir, mode, umask, false)?;
        let plain = dir.plain.child(name);
        let path = plain.display();
        let caller = self.principal(req);
        // The key: made here and wrapped once the file exists (see
        // `keys::wrap`), or from GenerateDataKey now.
        let key = if let Some(wo) = &self.write_only {
            // Wrapped locally for the volume's RSA key: no service call.
            let ctx = self.file_context(&plain);
            NewKey::Generated(
                wo.generate_data_key(&caller, &self.vol.config.master_key_id, &ctx)
                    .map_err(|e| self.kms_failure(&path, "GenerateDataKey", e))?,
            )
        } else if self.wraps_in_background() {
            self.local_data_key()?
        } else {
            let ctx = self.file_context(&plain);
            let generated = self
                .keys
                .generate_data_key(&caller, &self.vol.config.master_key_id, &ctx)
                .map_err(|e| self.kms_failure(&path, "GenerateDataKey", e))?;
            self.vol
                .check_new_data_key(&*self.keys, &generated.wrapped)
                .map_err(|e| {
                    log::error!("{path}: not created: {e}");
                    FsError::internal(e)
                })?;
            NewKey::Generated(generated)
        };
        let file_id = FileId::random().map_err(FsError::internal)?;
        let header = key.header(file_id)?;
        let cipher = ContentCipher::new(key.plaintext(), file_id, self.vol.block_size())
            .map_err(FsError::internal)?;
        // A new file is format 2: the header, then the empty end block.
        let end = cipher
            .seal_block(0, BlockMark::Last { sparse: false }, &[])
            .map_err(FsError::internal)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&backing)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    FsError::Exists
                } else {
                    e.into()
                }
            })?;
        // The inode, for a header written in the background (see
        // `wrap_new_key`): set once the kernel knows the file.
        let node_slot = Arc::new(std::sync::OnceLock::new());
        let finish = || -> FsResult<()> {
            let mut first = header.to_vec();
            first.extend_from_slice(&end);
            file.write_all_at(&first, 0)?;
            self.write_side_file(&dir.backing, &bn)?;
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(new_mode.perm))?;
            if let NewKey::Local(dek) = &key {
                self.wrap_new_key(
                    &file,
                    &plain,
                    file_id,
                    dek,
                    caller.clone(),
                    node_slot.clone(),
                )
                .map_err(|e| match e {
                    FsError::Kms(e) => self.kms_failure(&path, "Encrypt", e),
                    e => e,
                })?;
            }
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = std::fs::remove_file(&backing);
            self.remove_side_file(&dir.backing, &bn);
            return Err(e);
        }
        let readable = self.new_file_readable(&caller, &key, &plain, flags);
        let (node, attr) = self.entry_made(&dir, name, backing, &file.metadata()?);
        let _ = node_slot.set(node.state.clone());
        self.inherit_acls(&node, &new_mode)?;
        node.state.content_version.store(
            crate::format::HEADER_FORMAT_VERSION,
            std::sync::atomic::Ordering::Release,
        );
        let fh = match flags {
            Some(flags) => Some(self.register(
                OpenFile {
                    ino: node.ino,
                    file,
                    cipher,
                    append: false,
                    state: node.state.clone(),
                    readable,
                },
                flags & libc::O_APPEND != 0,
            )?),
            None => None,
        };
        Ok((attr, fh))
    }

    /// Whether the handle of a file just created may read: always, but on
    /// a write-only volume only when it was opened with read access and
    /// the service gives the caller the key (Decrypt of this mount's slot,
    /// once per principal and re-authorization interval).
    fn new_file_readable(
        &self,
        caller: &kms_engine::Principal,
        key: &NewKey,
        plain: &super::inode::PlainPath,
        flags: Option<i32>,
    ) -> bool {
        if self.write_only.is_none() {
            return true;
        }
        let (Some(flags), NewKey::Generated(g)) = (flags, key) else {
            return false;
        };
        if flags & libc::O_ACCMODE == libc::O_WRONLY {
            return false;
        }
        let ctx = self.file_context(plain);
        match self.keys.decrypt_data_key(caller, &g.wrapped, &ctx) {
            Ok(_) => true,
            Err(e) => {
                log::info!(
                    "{}: created write-only, the caller may not read it: {e}",
                    plain.display()
                );
                false
            }
        }
    }

    pub(crate) fn open(&self, req: &Request, ino: u64, flags: i32) -> FsResult<(u64, FopenFlags)> {
        let acc = flags & libc::O_ACCMODE;
        let wants_write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        if wants_write {
            self.check_writable()?;
        }
        // The header is read from the file at the path read here, and its
        // key unwrapped under that path: no rename in between.
        let paths = self.paths_shared()?;
        let node = self.node(ino)?;
        if !node.linked {
            // Its path names another file now (or none).
            return Err(FsError::NotFound);
        }
        // Open the backing file writable when allowed: a write-only handle
        // still reads for read-modify-write. A read-only open must still
        // work when the backing file is not writable (mode 0444 such as git
        // objects, or a read-only backing filesystem).
        let of = match self.open_backing(req, &node, true, Some(flags)) {
            Err(FsError::Io(e))
                if !wants_write
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EACCES | libc::EPERM | libc::EROFS)
                    ) =>
            {
                self.open_backing(req, &node, false, Some(flags))?
            }
            r => r?,
        };
        drop(paths);
        if flags & libc::O_TRUNC != 0 && wants_write {
            let _g = node.state.io.write().map_err(|_| FsError::Stale)?;
            of.io(&|| node.plain.display()).truncate(0)?;
        }
        let mut fopen = FopenFlags::empty();
        let stamp = cache_stamp(&of.file);
        if let (Ok(mut last), Some(now)) = (node.state.cache_stamp.lock(), stamp) {
            if *last == Some(now) {
                fopen |= FopenFlags::FOPEN_KEEP_CACHE;
            }
            *last = Some(now);
        }
        let fh = self.register(of, flags & libc::O_APPEND != 0)?;
        Ok((fh, fopen))
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = self.file_handle(fh)?;
        if !h.readable {
            return Err(FsError::Denied);
        }
        let _g = h.state.io.read().map_err(|_| FsError::Stale)?;
        h.io(&|| self.path_of(h.ino)).read(offset, u64::from(size))
    }

    /// Writes `data` at `offset`. `kill_suidgid`: the kernel asks for the
    /// set-user-id and set-group-id bits to go (FUSE_HANDLE_KILLPRIV_V2), as
    /// a write by someone else than a privileged caller does on Linux.
    pub(crate) fn write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        kill_suidgid: bool,
    ) -> FsResult<u32> {
        self.check_writable()?;
        self.write_counters.record(data.len());
        let h = self.file_handle(fh)?;
        let _g = h.state.io.write().map_err(|_| FsError::Stale)?;
        if kill_suidgid {
            super::attr::drop_suidgid(&h.file, h.file.metadata()?.mode())?;
        }
        let path = || self.path_of(h.ino);
        let io = h.io(&path);
        let offset = if h.append { io.sizes()?.0 } else { offset };
        io.write(offset, data)?;
        u32::try_from(data.len()).map_err(|_| FsError::InvalidArgument)
    }

    pub(crate) fn release(&self, fh: u64) {
        let Some(h) = self.files.write().ok().and_then(|mut f| f.remove(&fh)) else {
            return;
        };
        h.state.tail.clear();
        let _ = h
            .state
            .last_fh
            .compare_exchange(fh, 0, Ordering::AcqRel, Ordering::Acquire);
        if let (Ok(mut last), Some(now)) = (h.state.cache_stamp.lock(), cache_stamp(&h.file)) {
            *last = Some(now);
        }
    }

    pub(crate) fn fsync(&self, fh: u64, datasync: bool) -> FsResult<()> {
        let h = self.file_handle(fh)?;
        // Never durable without its wrapped key, nor before the audit
        // records of its key's uses (a trail flushed in batches).
        self.await_key_of(&h.file, &|| self.path_of(h.ino))?;
        self.sync_audit(&|| self.path_of(h.ino))?;
        if datasync {
            h.file.sync_data()?;
        } else {
            h.file.sync_all()?;
        }
        Ok(())
    }

    /// Makes the key service's audit records durable before an fsync
    /// reports data durable (`KeyService::sync_audit`).
    pub(crate) fn sync_audit(&self, path: &dyn Fn() -> String) -> FsResult<()> {
        self.keys.sync_audit().map_err(|e| {
            log::error!("{}: fsync: the audit trail was not synced: {e}", path());
            FsError::Kms(e)
        })
    }

    /// fallocate: mode 0 and KEEP_SIZE reserve backing space (mode 0 also
    /// grows the file), PUNCH_HOLE|KEEP_SIZE makes holes, ZERO_RANGE zeroes
    /// (and grows without KEEP_SIZE). Other modes: EOPNOTSUPP.
    pub(crate) fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        self.check_writable()?;
        let h = self.file_handle(fh)?;
        let _g = h.state.io.write().map_err(|_| FsError::Stale)?;
        let path = || self.path_of(h.ino);
        let io = h.io(&path);
        let keep = mode & FALLOC_FL_KEEP_SIZE != 0;
        match mode & !FALLOC_FL_KEEP_SIZE {
            0 => io.allocate(offset, length, keep),
            FALLOC_FL_PUNCH_HOLE if keep => io.punch(offset, length),
            FALLOC_FL_ZERO_RANGE => io.zero_range(offset, length, keep),
            _ => Err(FsError::Unsupported),
        }
    }

    /// lseek with SEEK_DATA or SEEK_HOLE (the kernel answers the others).
    pub(crate) fn lseek(&self, fh: u64, offset: i64, whence: i32) -> FsResult<i64> {
        let h = self.file_handle(fh)?;
        let what = match whence {
            libc::SEEK_DATA => Seek::Data,
            libc::SEEK_HOLE => Seek::Hole,
            _ => return Err(FsError::InvalidArgument),
        };
        // A negative offset is past no data and no hole: ENXIO, as on
        // ext4 and tmpfs.
        let offset = u64::try_from(offset).map_err(|_| FsError::NoSuchOffset)?;
        let _g = h.state.io.read().map_err(|_| FsError::Stale)?;
        let at = h.io(&|| self.path_of(h.ino)).seek(offset, what)?;
        i64::try_from(at).map_err(|_| FsError::TooBig)
    }

    /// The current plaintext path of `ino` for log lines.
    pub(crate) fn path_of(&self, ino: u64) -> String {
        self.table()
            .get(ino)
            .map(|n| n.plain.display())
            .unwrap_or_else(|| format!("<inode {ino}>"))
    }
}

/// (mtime, size) of the backing file, to decide about keeping the page cache.
fn cache_stamp(f: &File) -> Option<(SystemTime, u64)> {
    let m = f.metadata().ok()?;
    Some((m.modified().ok()?, m.len()))
}
