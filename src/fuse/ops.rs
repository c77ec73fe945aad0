//! The `fuser::Filesystem` implementation: unpacks each request, calls the
//! matching [`Core`](super::Core) operation and replies; errors become errno through
//! [`FsError::errno`](super::errno::FsError::errno) only.

use super::errno::FsError;
use super::status::Op;
use super::unsupported::Unsupported;
use super::{KmsFs, MAX_WRITE, TTL};
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek,
    ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

fn log_err(op: &str, e: &FsError) -> Errno {
    let errno = e.errno();
    match e {
        FsError::Io(_) | FsError::Tampered { .. } => log::debug!("{op}: {e}"),
        _ => log::trace!("{op}: {e}"),
    }
    errno
}

impl Filesystem for KmsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let mut want = super::init_capabilities();
        if self.core.opts.writeback_cache && self.core.write_only.is_none() {
            want |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        // POSIX ACLs (see `acl`): the kernel enforces them and leaves the
        // umask to kmsfs, which applies it unless a default ACL is there.
        let acl = InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK;
        let want = if self.core.acls_enabled()
            && !self.core.opts.no_xattr
            && config.capabilities().contains(acl)
        {
            want | acl
        } else {
            self.core.posix_acl.store(false, Ordering::Release);
            want
        };
        let granted = want & config.capabilities();
        let _ = config.add_capabilities(granted);
        let writeback = granted.contains(InitFlags::FUSE_WRITEBACK_CACHE);
        self.core
            .writeback_cache
            .store(writeback, Ordering::Release);
        if self.core.opts.writeback_cache && !writeback {
            log::warn!("the kernel offers no writeback cache: writes go through as without it");
        }
        log::debug!(
            "POSIX ACLs {}",
            if self.core.acls_enabled() {
                "on"
            } else {
                "off"
            }
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _t = self.core.op_counters.start(Op::Lookup);
        match self.core.lookup(parent.0, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(log_err("lookup", &e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _t = self.core.op_counters.start(Op::Forget);
        self.core.table().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _t = self.core.op_counters.start(Op::Getattr);
        match self.core.getattr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(log_err("getattr", &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
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
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _t = self.core.op_counters.start(Op::Setattr);
        match self.core.setattr(
            req,
            ino.0,
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh.map(|f| f.0),
        ) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(log_err("setattr", &e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _t = self.core.op_counters.start(Op::Readlink);
        match self.core.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(log_err("readlink", &e)),
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
        let _t = self.core.op_counters.start(Op::Mknod);
        match self.core.mknod(req, parent.0, name, mode, umask, rdev) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(log_err("mknod", &e)),
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
        let _t = self.core.op_counters.start(Op::Mkdir);
        match self.core.mkdir(req, parent.0, name, mode, umask) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(log_err("mkdir", &e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.core.op_counters.start(Op::Unlink);
        match self.core.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("unlink", &e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.core.op_counters.start(Op::Rmdir);
        match self.core.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("rmdir", &e)),
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
        let _t = self.core.op_counters.start(Op::Symlink);
        match self.core.symlink(req, parent.0, link_name, target) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(log_err("symlink", &e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _t = self.core.op_counters.start(Op::Rename);
        match self
            .core
            .rename(req, parent.0, name, newparent.0, newname, flags)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("rename", &e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _t = self.core.op_counters.start(Op::Link);
        match self.core.link() {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(log_err("link", &e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _t = self.core.op_counters.start(Op::Open);
        match self.core.open(req, ino.0, flags.0) {
            Ok((fh, f)) => reply.opened(FileHandle(fh), f),
            Err(e) => reply.error(log_err("open", &e)),
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
        let _t = self.core.op_counters.start(Op::Read);
        match self.core.read(fh.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(log_err("read", &e)),
        }
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
        let _t = self.core.op_counters.start(Op::Write);
        let kill_suidgid = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.core.write(fh.0, offset, data, kill_suidgid) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(log_err("write", &e)),
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
        let _t = self.core.op_counters.start(Op::Flush);
        // Writes go straight to the backing file: nothing is buffered here.
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
        let _t = self.core.op_counters.start(Op::Release);
        self.core.release(fh.0);
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
        let _t = self.core.op_counters.start(Op::Fsync);
        match self.core.fsync(fh.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("fsync", &e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _t = self.core.op_counters.start(Op::Opendir);
        match self.core.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(log_err("opendir", &e)),
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
        let _t = self.core.op_counters.start(Op::Readdir);
        let entries = match self
            .core
            .dir_handle(fh.0)
            .and_then(|h| self.core.dir_entries(ino.0, &h))
        {
            Ok(e) => e,
            Err(e) => return reply.error(log_err("readdir", &e)),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
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
        let _t = self.core.op_counters.start(Op::Readdirplus);
        // Each entry is registered under the directory's current path.
        let _paths = match self.core.paths_shared() {
            Ok(g) => g,
            Err(e) => return reply.error(log_err("readdirplus", &e)),
        };
        let listed = self
            .core
            .dir_handle(fh.0)
            .and_then(|h| self.core.dir_entries(ino.0, &h))
            .and_then(|entries| Ok((entries, self.core.node(ino.0)?)));
        let (entries, dir) = match listed {
            Ok(x) => x,
            Err(e) => return reply.error(log_err("readdirplus", &e)),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            let next = (i + 1) as u64;
            let name = &e.name;
            // The kernel takes no lookup reference for "." and "..".
            let dots = e.backing.is_none();
            let attr = match &e.backing {
                None => self.core.getattr(ino.0),
                Some(b) => self.core.lookup_backing(&dir, name, dir.backing.join(b)),
            };
            let attr = match attr {
                Ok(a) => a,
                // Gone since opendir (or unreadable): leave it out, as a
                // fresh readdir would.
                Err(_) => continue,
            };
            if reply.add(attr.ino, next, name, &TTL, &attr, Generation(0)) {
                // Not sent: give back the lookup reference just taken.
                if !dots {
                    self.core.table().forget(attr.ino.0, 1);
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
        let _t = self.core.op_counters.start(Op::Releasedir);
        self.core.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _t = self.core.op_counters.start(Op::Fsyncdir);
        match self.core.fsyncdir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("fsyncdir", &e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _t = self.core.op_counters.start(Op::Statfs);
        match self.core.statfs() {
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
            Err(e) => reply.error(log_err("statfs", &e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _t = self.core.op_counters.start(Op::Setxattr);
        if self.core.opts.no_xattr {
            return reply.error(Errno::ENOSYS);
        }
        let caller = self.core.caller(req);
        match self.core.setxattr(&caller, ino.0, name, value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("setxattr", &e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _t = self.core.op_counters.start(Op::Getxattr);
        if self.core.opts.no_xattr {
            return reply.error(Errno::ENOSYS);
        }
        match self.core.getxattr(req.uid(), ino.0, name) {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(log_err("getxattr", &e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _t = self.core.op_counters.start(Op::Listxattr);
        if self.core.opts.no_xattr {
            return reply.error(Errno::ENOSYS);
        }
        match self.core.listxattr(req.uid(), ino.0) {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(log_err("listxattr", &e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.core.op_counters.start(Op::Removexattr);
        if self.core.opts.no_xattr {
            return reply.error(Errno::ENOSYS);
        }
        match self.core.removexattr(req.uid(), ino.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("removexattr", &e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let _t = self.core.op_counters.start(Op::Access);
        // Only sent without default_permissions (see `perm`).
        match self.core.access(req, ino.0, mask.bits() as u32) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("access", &e)),
        }
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
        let _t = self.core.op_counters.start(Op::Create);
        match self
            .core
            .create_file(req, parent.0, name, mode, umask, Some(flags))
        {
            Ok((attr, Some(fh))) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Ok((_, None)) => reply.error(Errno::EIO),
            Err(e) => reply.error(log_err("create", &e)),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let _t = self.core.op_counters.start(Op::Lseek);
        match self.core.lseek(fh.0, offset, whence) {
            Ok(at) => reply.offset(at),
            Err(e) => reply.error(log_err("lseek", &e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _t = self.core.op_counters.start(Op::Fallocate);
        match self.core.fallocate(fh.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("fallocate", &e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _t = self.core.op_counters.start(Op::CopyFileRange);
        match self
            .core
            .copy_file_range(fh_in.0, offset_in, fh_out.0, offset_out, len, flags.bits())
        {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(log_err("copy_file_range", &e)),
        }
    }

    // With --no-xattr the four xattr requests above answer ENOSYS: the
    // kernel then fails every later one with EOPNOTSUPP itself, without a
    // round trip (it remembers ENOSYS per request type for the connection).

    // Requests kmsfs does not serve: answered without fuser's warning per
    // request, each kind logged once (see `unsupported`).

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(
            self.core
                .unsupported
                .answer(Unsupported::Ioctl, format_args!("cmd {cmd:#x}")),
        );
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(
            self.core
                .unsupported
                .answer(Unsupported::Poll, format_args!("events {events:?}")),
        );
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(
            self.core
                .unsupported
                .answer(Unsupported::Getlk, format_args!("")),
        );
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(
            self.core
                .unsupported
                .answer(Unsupported::Setlk, format_args!("")),
        );
    }

    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(
            self.core
                .unsupported
                .answer(Unsupported::Bmap, format_args!("")),
        );
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(u32::try_from(v.len()).unwrap_or(u32::MAX));
    } else if v.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}
