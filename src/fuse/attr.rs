//! Attributes: FUSE `FileAttr` from the backing file's metadata (plaintext
//! size from the backing size; symlink size from the decrypted target),
//! getattr and setattr (chmod, chown, truncate, utimens).

use super::errno::{FsError, FsResult};
use super::inode::NodeRef;
use super::{Core, OpenFile};
use crate::content::BlockLayout;
use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `stat` time (seconds, nanoseconds) as a `SystemTime`, also before 1970.
pub fn time(secs: i64, nsecs: i64) -> SystemTime {
    let ns = u32::try_from(nsecs).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), ns)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(u64::from(ns))
    }
}

/// The FUSE file type of a backing file type.
pub fn kind_of(ft: std::fs::FileType) -> FileType {
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

impl Core {
    /// Attributes of the node at `backing` with metadata `meta`.
    pub(crate) fn attr_from(&self, ino: u64, backing: &Path, meta: &Metadata) -> FileAttr {
        let kind = kind_of(meta.file_type());
        let size = match kind {
            FileType::RegularFile => match BlockLayout::new(self.vol.block_size()) {
                // A damaged file still stats; reads of the damaged part give EIO.
                Ok(l) => l
                    .plain_size(meta.len())
                    .unwrap_or_else(|_| lenient_plain_size(&l, meta.len())),
                Err(_) => 0,
            },
            FileType::Symlink => self
                .read_link_target(backing)
                .map(|t| t.len() as u64)
                .unwrap_or(meta.len()),
            _ => meta.len(),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: u32::try_from(meta.rdev()).unwrap_or(0),
            blksize: self.vol.block_size(),
            flags: 0,
        }
    }

    pub(crate) fn getattr(&self, ino: u64) -> FsResult<FileAttr> {
        let node = self.node(ino)?;
        if !node.linked {
            return self.orphan_attr(&node);
        }
        let meta = match std::fs::symlink_metadata(&node.backing) {
            Ok(m) => m,
            // Unlinked while open: the open handle still has the file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match self.any_handle_of(ino) {
                Some(h) => h.file.metadata()?,
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        Ok(self.attr_from(ino, &node.backing, &meta))
    }

    /// Attributes of a removed node (unlinked, or replaced by a rename):
    /// from an open handle when there is one, else as it was when removed;
    /// its link count is 0 (`fstat` after `unlink` or a rename over it).
    /// Its old paths name something else now and are not looked at.
    fn orphan_attr(&self, node: &NodeRef) -> FsResult<FileAttr> {
        let attr = match self.any_handle_of(node.ino) {
            Some(h) => self.attr_from(node.ino, &node.backing, &h.file.metadata()?),
            None => node.orphan_attr.ok_or(FsError::NotFound)?,
        };
        Ok(FileAttr { nlink: 0, ..attr })
    }

    /// The node's most recently opened handle, if it is still open (see
    /// `InodeState::last_fh`).
    fn open_handle(&self, node: &NodeRef) -> Option<std::sync::Arc<OpenFile>> {
        let fh = node
            .state
            .last_fh
            .load(std::sync::atomic::Ordering::Acquire);
        if fh == 0 {
            return None;
        }
        let files = self.files.read().ok()?;
        files.get(&fh).filter(|h| h.ino == node.ino).cloned()
    }

    /// Some open handle of `ino`, if any.
    fn any_handle_of(&self, ino: u64) -> Option<std::sync::Arc<OpenFile>> {
        let files = self.files.read().ok()?;
        files.values().find(|h| h.ino == ino).cloned()
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn setattr(
        &self,
        req: &fuser::Request,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<u64>,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let node = self.node(ino)?;
        // A file open here (`tar -x` sets times, owner and mode through its
        // descriptor before closing it) is changed through that handle:
        // no walk of the backing path.
        if size.is_none()
            && let Some(h) = self.open_handle(&node)
        {
            self.owner_mode_times(&node, Some(&h.file), uid, gid, mode, atime, mtime)?;
            return Ok(self.attr_from(ino, &node.backing, &h.file.metadata()?));
        }
        // Owner and times alone (most of what `tar -x` and `cp -p` ask) are
        // changed at the path without looking at it first: lchown and
        // utimensat(AT_SYMLINK_NOFOLLOW) never follow a symlink, and no
        // size or mode check applies. Only a path that is gone takes the
        // general way below (an unlinked but open file's handle).
        if node.linked && size.is_none() && mode.is_none() {
            let _times = times_guard(&node, atime.or(mtime).is_some())?;
            match set_owner_times(&node.backing, None, uid, gid, atime, mtime) {
                Err(FsError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => {
                    r?;
                    return self.getattr(ino);
                }
            }
        }
        // An unlinked but open file is changed through its handle; a
        // removed node's old path names something else.
        let at_path = if node.linked {
            std::fs::symlink_metadata(&node.backing)
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        };
        let (meta, fd) = match at_path {
            Ok(m) => (m, None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match self.any_handle_of(ino) {
                Some(h) => (h.file.metadata()?, Some(h)),
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        if let Some(size) = size {
            if meta.is_dir() {
                return Err(FsError::IsDir);
            }
            if !meta.is_file() {
                return Err(FsError::InvalidArgument);
            }
            self.truncate(req, &node, size, fh.or(fd.as_ref().map(|_| u64::MAX)))?;
            // FUSE_HANDLE_KILLPRIV_V2: a truncate by an unprivileged caller
            // drops set-user-id/set-group-id (the backing truncate, done
            // by the mount process, would not). An explicit mode wins.
            if mode.is_none() && req.uid() != 0 {
                match &fd {
                    Some(h) => drop_suidgid(&h.file, meta.mode())?,
                    None => {
                        let f = std::fs::OpenOptions::new()
                            .read(true)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(&node.backing)?;
                        drop_suidgid(&f, meta.mode())?;
                    }
                }
            }
        }
        // A symlink has no mode of its own.
        let mode = mode.filter(|_| !meta.file_type().is_symlink());
        let file = fd.as_ref().map(|h| &h.file);
        self.owner_mode_times(&node, file, uid, gid, mode, atime, mtime)?;
        self.getattr(ino)
    }

    /// Sets what a setattr asks besides the size: the owner, then the mode
    /// (a chown clears set-user-id), then the times; through the open
    /// backing `file` when given, else at the node's path.
    #[allow(clippy::too_many_arguments)]
    fn owner_mode_times(
        &self,
        node: &NodeRef,
        file: Option<&std::fs::File>,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> FsResult<()> {
        set_owner_times(&node.backing, file, uid, gid, None, None)?;
        if let Some(mode) = mode {
            let m = rustix::fs::Mode::from_raw_mode(mode & 0o7777);
            match file {
                Some(f) => rustix::fs::fchmod(f, m)?,
                None => rustix::fs::chmod(&node.backing, m)?,
            }
            self.chmod_acl(node, mode)?;
        }
        let _times = times_guard(node, atime.or(mtime).is_some())?;
        set_owner_times(&node.backing, file, None, None, atime, mtime)
    }

    /// Truncates a regular file, through an open handle when the kernel
    /// gave one, else by opening it (Decrypt as the caller).
    fn truncate(
        &self,
        req: &fuser::Request,
        node: &NodeRef,
        size: u64,
        fh: Option<u64>,
    ) -> FsResult<()> {
        let handle: std::sync::Arc<OpenFile> = match fh.and_then(|f| self.file_handle(f).ok()) {
            Some(h) if h.ino == node.ino => h,
            _ => match self.any_handle_of(node.ino) {
                // Another open handle of the file already has its key.
                Some(h) if fh.is_some() => h,
                _ => {
                    // Opened at the node's current path, under that path.
                    let _paths = self.paths_shared()?;
                    let node = self.node(node.ino)?;
                    std::sync::Arc::new(self.open_backing(req, &node, true, None)?)
                }
            },
        };
        let _guard = handle.state.io.write().map_err(|_| FsError::Stale)?;
        handle.io(&|| node.plain.display()).truncate(size)
    }
}

/// Times are set under the node's content lock (shared), so that they
/// come after a write in progress (which sets mtime), and a header written
/// once a new file's key is wrapped (which puts the times back as it found
/// them, under the lock exclusive) does not undo them.
fn times_guard(
    node: &super::inode::NodeRef,
    setting_times: bool,
) -> FsResult<Option<std::sync::RwLockReadGuard<'_, ()>>> {
    if !setting_times {
        return Ok(None);
    }
    node.state.io.read().map(Some).map_err(|_| FsError::Stale)
}

/// Sets the owner (`uid`, `gid`) and times of a node through its open
/// backing `file` when given, else at `path` without following a symlink;
/// the owner first (as chown then utimens would). Nothing asked, nothing
/// done.
fn set_owner_times(
    path: &Path,
    file: Option<&std::fs::File>,
    uid: Option<u32>,
    gid: Option<u32>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
) -> FsResult<()> {
    if uid.is_some() || gid.is_some() {
        match file {
            Some(f) => std::os::unix::fs::fchown(f, uid, gid)?,
            None => std::os::unix::fs::lchown(path, uid, gid)?,
        }
    }
    if atime.is_some() || mtime.is_some() {
        let times = rustix::fs::Timestamps {
            last_access: timespec(atime),
            last_modification: timespec(mtime),
        };
        match file {
            Some(f) => rustix::fs::futimens(f, &times)?,
            None => rustix::fs::utimensat(
                rustix::fs::CWD,
                path,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )?,
        }
    }
    Ok(())
}

/// A SETATTR time as `utimensat` takes it: omitted, now, or the time the
/// caller gave, also before 1970.
///
/// fuser 0.18 decodes a time before 1970, sent by the kernel as seconds
/// `-S` and nanoseconds `n` (meaning `-S + n`), as `-(S + n)`
/// (`system_time_from_time`, marked TODO there); the inverse of that is
/// taken here so that `touch -d 1969-12-31T23:59:58.75Z` stores .75, not
/// .25 a second earlier. `fs_ops_misc` sets such times through a mount
/// and reads them back, so a fuser that decodes them right shows up there.
pub fn timespec(t: Option<TimeOrNow>) -> rustix::fs::Timespec {
    let (tv_sec, tv_nsec) = match t {
        None => (0, rustix::fs::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, rustix::fs::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                i64::from(d.subsec_nanos()),
            ),
            Err(e) => {
                let d = e.duration();
                (
                    -i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    i64::from(d.subsec_nanos()),
                )
            }
        },
    };
    rustix::fs::Timespec { tv_sec, tv_nsec }
}

/// Clears set-user-id, and set-group-id when group-executable (without
/// group execute it marks mandatory locking and stays), on the open
/// backing file `file` whose mode is `mode`; no syscall when neither is set.
pub(crate) fn drop_suidgid(file: &std::fs::File, mode: u32) -> FsResult<()> {
    let mut kill = libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        kill |= libc::S_ISGID;
    }
    if mode & kill != 0 {
        rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(mode & !kill & 0o7777))?;
    }
    Ok(())
}

/// The plaintext size of a damaged backing file: whole blocks only.
fn lenient_plain_size(l: &BlockLayout, cipher_size: u64) -> u64 {
    let header = crate::format::HEADER_LEN as u64;
    let body = cipher_size.saturating_sub(header);
    (body / l.stored_block_size()) * u64::from(l.block_size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn setattr_times_convert_for_utimensat_undoing_fusers_decoding_before_1970() {
        let ts = |t| {
            let t = timespec(t);
            (t.tv_sec, t.tv_nsec)
        };
        assert_eq!(ts(None), (0, rustix::fs::UTIME_OMIT));
        assert_eq!(ts(Some(TimeOrNow::Now)), (0, rustix::fs::UTIME_NOW));
        let at = |t| Some(TimeOrNow::SpecificTime(t));
        assert_eq!(
            ts(at(UNIX_EPOCH + Duration::new(1_700_000_000, 250))),
            (1_700_000_000, 250)
        );
        assert_eq!(
            ts(at(UNIX_EPOCH - Duration::from_secs(86_400))),
            (-86_400, 0)
        );
        // The kernel's (-2 s, 750 ms), 1.25 s before the epoch, reaches us
        // from fuser as 2.75 s before it.
        assert_eq!(
            ts(at(UNIX_EPOCH - Duration::from_millis(2_750))),
            (-2, 750_000_000)
        );
    }
}
