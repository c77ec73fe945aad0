//! A no-crypto passthrough filesystem: the FUSE ceiling kmsfs is measured
//! against in `benches/vs_gocryptfs.sh`.
//!
//! It runs on fuser with kmsfs's own session settings, taken from the kmsfs
//! library so that they cannot drift apart: [`kmsfs::fuse::mount_config`]
//! (threads, clone_fd, mount options), [`kmsfs::fuse::init_capabilities`]
//! (READDIRPLUS, parallel dirops, ...), `MAX_WRITE` and max_readahead, and
//! the same entry and attribute timeouts ([`kmsfs::fuse::TTL`]). Every
//! request is forwarded to the backing directory with the plainest system
//! calls (lstat, openat, pread/pwrite, mkdir, unlink, ...): no names or
//! contents are transformed, nothing is cached beyond what the kernel
//! caches. What is left between kmsfs and this filesystem is kmsfs's own
//! cost; what is left between this and the backing tmpfs is FUSE's.
//!
//! Inodes: a backing inode `b` is FUSE inode `b + 1` (the backing root is
//! 1), so numbers are stable without a table of them; the paths of the
//! inodes the kernel holds are kept, with their lookup counts, like a
//! path-based passthrough (libfuse's `passthrough.c`) does. New entries are
//! given to the caller (fchown), as kmsfs does. Permissions are not checked
//! (a benchmark mounts it as root, for root).
//!
//! Run as root:
//! `passthrough_fs [--stats FILE] [--allow-other] [--no-xattr] [--writeback-cache] SOURCE MOUNTPOINT`
//! serves in the foreground until unmounted (`umount MOUNTPOINT`).
//! With `--stats FILE` the request counters (count and service time per
//! operation, the same counters as `kmsfs status`) are written to FILE as
//! JSON (`{"requests": {...}}`) once a second. `--no-xattr` answers xattr
//! requests ENOSYS, as `kmsfs mount --no-xattr` does (the kernel then stops
//! sending them); `--writeback-cache` asks for the kernel's writeback cache,
//! as `kmsfs mount --writeback-cache` does.

// A benchmark binary: a failed setup is a failed run, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use kmsfs::fuse::attr::{kind_of, time, timespec};
use kmsfs::fuse::status::{Op, OpCounters};
use kmsfs::fuse::{MAX_WRITE, TTL};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// An inode the kernel holds: its backing path and lookup count.
struct Node {
    path: PathBuf,
    lookups: u64,
}

/// An open directory: its entries, read at the first readdir.
type Listing = Arc<Vec<(u64, FileType, OsString)>>;

struct Passthrough {
    root_ino: u64,
    nodes: Mutex<HashMap<u64, Node>>,
    files: RwLock<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Option<Listing>>>,
    next_fh: AtomicU64,
    counters: Arc<OpCounters>,
    /// `--no-xattr`: xattr requests answered ENOSYS, as kmsfs's option.
    no_xattr: bool,
    /// `--writeback-cache`: the kernel's writeback cache, as kmsfs's option
    /// (the kernel then places O_APPEND writes: no O_APPEND on the backing
    /// file, whose pwrites would ignore the offset).
    writeback_cache: bool,
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Passthrough {
    fn new(source: &Path) -> Self {
        let root_ino = fs::metadata(source).expect("source directory").ino();
        let mut nodes = HashMap::new();
        nodes.insert(
            1,
            Node {
                path: source.to_path_buf(),
                lookups: 1,
            },
        );
        Passthrough {
            root_ino,
            nodes: Mutex::new(nodes),
            files: RwLock::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            counters: Arc::new(OpCounters::default()),
            no_xattr: false,
            writeback_cache: false,
        }
    }

    fn fuse_ino(&self, backing: u64) -> u64 {
        if backing == self.root_ino {
            1
        } else {
            backing + 1
        }
    }

    fn attr(&self, m: &Metadata) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.fuse_ino(m.ino())),
            size: m.len(),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: time(m.ctime(), m.ctime_nsec()),
            kind: kind_of(m.file_type()),
            perm: (m.mode() & 0o7777) as u16,
            nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
            uid: m.uid(),
            gid: m.gid(),
            rdev: u32::try_from(m.rdev()).unwrap_or(0),
            blksize: 4096,
            flags: 0,
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.nodes
            .lock()
            .unwrap()
            .get(&ino.0)
            .map(|n| n.path.clone())
            .ok_or(Errno::ESTALE)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// Records one kernel lookup of the entry at `path`.
    fn remember(&self, path: PathBuf, m: &Metadata) -> FileAttr {
        let attr = self.attr(m);
        let mut nodes = self.nodes.lock().unwrap();
        let n = nodes.entry(attr.ino.0).or_insert(Node {
            path: PathBuf::new(),
            lookups: 0,
        });
        n.path = path;
        n.lookups += 1;
        attr
    }

    fn entry_at(&self, path: PathBuf) -> Result<FileAttr, Errno> {
        let m = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        Ok(self.remember(path, &m))
    }

    /// A new entry belongs to the caller.
    fn new_entry(&self, req: &Request, path: PathBuf) -> Result<FileAttr, Errno> {
        std::os::unix::fs::lchown(&path, Some(req.uid()), Some(req.gid()))
            .map_err(|e| errno(&e))?;
        self.entry_at(path)
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.files
            .read()
            .unwrap()
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    fn register(&self, f: File) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.write().unwrap().insert(fh, Arc::new(f));
        fh
    }

    fn open_file(path: &Path, flags: i32) -> std::io::Result<File> {
        let acc = flags & libc::O_ACCMODE;
        OpenOptions::new()
            .read(true)
            .write(acc != libc::O_RDONLY)
            .custom_flags(libc::O_NOFOLLOW | (flags & libc::O_TRUNC))
            .open(path)
            .or_else(|e| {
                if acc == libc::O_RDONLY {
                    Err(e)
                } else {
                    OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW | (flags & libc::O_TRUNC))
                        .open(path)
                }
            })
    }

    fn listing(&self, ino: INodeNo, fh: FileHandle) -> Result<Listing, Errno> {
        if let Some(Some(l)) = self.dirs.lock().unwrap().get(&fh.0) {
            return Ok(l.clone());
        }
        let path = self.path(ino)?;
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for e in fs::read_dir(&path).map_err(|e| errno(&e))? {
            let e = e.map_err(|e| errno(&e))?;
            let kind = e.file_type().map(kind_of).unwrap_or(FileType::RegularFile);
            entries.push((self.fuse_ino(e.ino()), kind, e.file_name()));
        }
        let l = Arc::new(entries);
        self.dirs.lock().unwrap().insert(fh.0, Some(l.clone()));
        Ok(l)
    }

    fn rebase(&self, from: &Path, to: &Path) {
        let mut nodes = self.nodes.lock().unwrap();
        for n in nodes.values_mut() {
            if let Ok(rest) = n.path.strip_prefix(from) {
                n.path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the arguments of FUSE SETATTR
    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let path = self.path(ino)?;
        let io = |r: std::io::Result<()>| r.map_err(|e| errno(&e));
        if let Some(size) = size {
            match fh.and_then(|f| self.handle(f).ok()) {
                Some(f) => io(f.set_len(size))?,
                None => io(OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size)))?,
            }
        }
        if uid.is_some() || gid.is_some() {
            io(std::os::unix::fs::lchown(&path, uid, gid))?;
        }
        if let Some(mode) = mode {
            io(
                rustix::fs::chmod(&path, rustix::fs::Mode::from_raw_mode(mode & 0o7777))
                    .map_err(Into::into),
            )?;
        }
        if atime.is_some() || mtime.is_some() {
            let times = rustix::fs::Timestamps {
                last_access: timespec(atime),
                last_modification: timespec(mtime),
            };
            io(rustix::fs::utimensat(
                rustix::fs::CWD,
                &path,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(Into::into))?;
        }
        let m = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        Ok(self.attr(&m))
    }
}

impl Filesystem for Passthrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let mut want = kmsfs::fuse::init_capabilities();
        if self.writeback_cache {
            want |= fuser::InitFlags::FUSE_WRITEBACK_CACHE;
        }
        let want = want & config.capabilities();
        let _ = config.add_capabilities(want);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _t = self.counters.start(Op::Lookup);
        match self.child(parent, name).and_then(|p| self.entry_at(p)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _t = self.counters.start(Op::Forget);
        if ino.0 == 1 {
            return;
        }
        let mut nodes = self.nodes.lock().unwrap();
        if let Some(n) = nodes.get_mut(&ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
            if n.lookups == 0 {
                nodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let _t = self.counters.start(Op::Getattr);
        let m = match fh.and_then(|f| self.handle(f).ok()) {
            Some(f) => f.metadata(),
            None => match self.path(ino) {
                Ok(p) => fs::symlink_metadata(p),
                Err(e) => return reply.error(e),
            },
        };
        match m {
            Ok(m) => reply.attr(&TTL, &self.attr(&m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _t = self.counters.start(Op::Setattr);
        match self.do_setattr(ino, mode, uid, gid, size, atime, mtime, fh) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _t = self.counters.start(Op::Readlink);
        match self.path(ino).map(fs::read_link) {
            Ok(Ok(t)) => reply.data(t.as_os_str().as_bytes()),
            Ok(Err(e)) => reply.error(errno(&e)),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _t = self.counters.start(Op::Mknod);
        let r = self.child(parent, name).and_then(|p| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &p,
                rustix::fs::FileType::from_raw_mode(mode),
                rustix::fs::Mode::from_raw_mode(mode & !umask & 0o7777),
                u64::from(rdev),
            )
            .map_err(|e| Errno::from_i32(e.raw_os_error()))?;
            self.new_entry(req, p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _t = self.counters.start(Op::Mkdir);
        let r = self.child(parent, name).and_then(|p| {
            fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&p)
                .map_err(|e| errno(&e))?;
            self.new_entry(req, p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.counters.start(Op::Unlink);
        match self.child(parent, name).map(fs::remove_file) {
            Ok(Ok(())) => reply.ok(),
            Ok(Err(e)) => reply.error(errno(&e)),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.counters.start(Op::Rmdir);
        match self.child(parent, name).map(fs::remove_dir) {
            Ok(Ok(())) => reply.ok(),
            Ok(Err(e)) => reply.error(errno(&e)),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _t = self.counters.start(Op::Symlink);
        let r = self.child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p).map_err(|e| errno(&e))?;
            self.new_entry(req, p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _t = self.counters.start(Op::Rename);
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let r = self.child(parent, name).and_then(|from| {
            let to = self.child(newparent, newname)?;
            fs::rename(&from, &to).map_err(|e| errno(&e))?;
            self.rebase(&from, &to);
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _t = self.counters.start(Op::Open);
        match self.path(ino).map(|p| Self::open_file(&p, flags.0)) {
            Ok(Ok(f)) => reply.opened(FileHandle(self.register(f)), FopenFlags::empty()),
            Ok(Err(e)) => reply.error(errno(&e)),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _t = self.counters.start(Op::Read);
        let f = match self.handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..done]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _t = self.counters.start(Op::Write);
        let r = self.handle(fh).and_then(|f| {
            // FUSE_HANDLE_KILLPRIV_V2, as kmsfs serves it.
            if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
                let mode = f.metadata().map_err(|e| errno(&e))?.mode();
                if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
                    let m = rustix::fs::Mode::from_raw_mode(
                        mode & !(libc::S_ISUID | libc::S_ISGID) & 0o7777,
                    );
                    rustix::fs::fchmod(&*f, m).map_err(|e| Errno::from_i32(e.raw_os_error()))?;
                }
            }
            f.write_all_at(data, offset).map_err(|e| errno(&e))
        });
        match r {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _t = self.counters.start(Op::Flush);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _t = self.counters.start(Op::Release);
        self.files.write().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _t = self.counters.start(Op::Fsync);
        let r = self.handle(fh).and_then(|f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(|e| errno(&e))
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _t = self.counters.start(Op::Opendir);
        // Checked here, as kmsfs does (it opens the backing directory).
        let r = self
            .path(ino)
            .and_then(|p| fs::metadata(p).map_err(|e| errno(&e)));
        match r {
            Ok(m) if m.is_dir() => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.dirs.lock().unwrap().insert(fh, None);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _t = self.counters.start(Op::Readdir);
        let entries = match self.listing(ino, fh) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(start) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _t = self.counters.start(Op::Readdirplus);
        let (entries, dir) = match self.listing(ino, fh).and_then(|l| Ok((l, self.path(ino)?))) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (_, _, name)) in entries.iter().enumerate().skip(start) {
            let dots = name == "." || name == "..";
            let path = if dots { dir.clone() } else { dir.join(name) };
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue;
            };
            let attr = if dots {
                self.attr(&m)
            } else {
                self.remember(path, &m)
            };
            if reply.add(attr.ino, (i + 1) as u64, name, &TTL, &attr, Generation(0)) {
                if !dots {
                    self.forget(_req, attr.ino, 1);
                }
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _t = self.counters.start(Op::Releasedir);
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let _t = self.counters.start(Op::Statfs);
        match self
            .path(ino)
            .and_then(|p| rustix::fs::statvfs(&p).map_err(|e| Errno::from_i32(e.raw_os_error())))
        {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                u32::try_from(s.f_bsize).unwrap_or(4096),
                255,
                u32::try_from(s.f_frsize).unwrap_or(4096),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _t = self.counters.start(Op::Getxattr);
        if self.no_xattr {
            return reply.error(Errno::ENOSYS);
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; size as usize];
        match rustix::fs::lgetxattr(&path, name, &mut buf) {
            Ok(n) if size == 0 => reply.size(u32::try_from(n).unwrap_or(u32::MAX)),
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(Errno::from_i32(e.raw_os_error())),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _t = self.counters.start(Op::Listxattr);
        if self.no_xattr {
            return reply.error(Errno::ENOSYS);
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; size as usize];
        match rustix::fs::llistxattr(&path, &mut buf) {
            Ok(n) if size == 0 => reply.size(u32::try_from(n).unwrap_or(u32::MAX)),
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(Errno::from_i32(e.raw_os_error())),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let _t = self.counters.start(Op::Access);
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _t = self.counters.start(Op::Create);
        let r = self.child(parent, name).and_then(|p| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(mode & !umask & 0o7777)
                .custom_flags(if self.writeback_cache {
                    0
                } else {
                    flags & libc::O_APPEND
                })
                .open(&p)
                .map_err(|e| errno(&e))?;
            std::os::unix::fs::fchown(&f, Some(req.uid()), Some(req.gid()))
                .map_err(|e| errno(&e))?;
            let m = f.metadata().map_err(|e| errno(&e))?;
            let attr = self.remember(p, &m);
            Ok((attr, self.register(f)))
        });
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }
}

/// Writes the request counters to `path` once a second.
fn write_stats(counters: Arc<OpCounters>, path: PathBuf) {
    let tmp = path.with_extension("tmp");
    loop {
        let json = serde_json::json!({ "requests": counters.snapshot() });
        if fs::write(&tmp, json.to_string()).is_ok() {
            let _ = fs::rename(&tmp, &path);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut stats = None;
    let mut allow_other = false;
    let mut no_xattr = false;
    let mut writeback_cache = false;
    let mut paths = Vec::new();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--stats") => stats = Some(PathBuf::from(args.next().expect("--stats FILE"))),
            Some("--allow-other") => allow_other = true,
            Some("--no-xattr") => no_xattr = true,
            Some("--writeback-cache") => writeback_cache = true,
            // `cargo bench` passes --bench to every bench binary.
            Some("--bench") => {}
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let [source, mountpoint] = <[PathBuf; 2]>::try_from(paths).unwrap_or_else(|_| {
        eprintln!(
            "usage: passthrough_fs [--stats FILE] [--allow-other] [--no-xattr] \
             [--writeback-cache] SOURCE MOUNTPOINT"
        );
        std::process::exit(2)
    });
    let source = fs::canonicalize(source).expect("source directory");
    let mut fs = Passthrough::new(&source);
    fs.no_xattr = no_xattr;
    fs.writeback_cache = writeback_cache;
    if let Some(path) = stats {
        let counters = fs.counters.clone();
        std::thread::spawn(move || write_stats(counters, path));
    }
    let mut cfg = kmsfs::fuse::mount_config(false, allow_other);
    cfg.mount_options.extend([
        fuser::MountOption::FSName(source.display().to_string()),
        fuser::MountOption::Subtype("passthrough".into()),
    ]);
    // Serves until unmounted (`umount`/`fusermount3 -u`).
    let session = fuser::Session::new(fs, &mountpoint, &cfg).expect("mounting");
    session.run().expect("serving");
}
