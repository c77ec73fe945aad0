//! Directory operations: lookup, opendir/readdir, mkdir, rmdir, unlink,
//! statfs, fsyncdir.

use super::errno::{FsError, FsResult};
use super::inode::{NodeRef, PlainPath};
use super::{Core, DirEntry, DirHandle};
use crate::names::BackingName;
use crate::volume::create_dir_iv;
use fuser::{FileAttr, FileType, Request};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

/// Where an open directory's listing stands.
pub(crate) enum Listing {
    /// Opened, not read yet: the backing directory's descriptor.
    Opened(OwnedFd),
    /// Read at the first readdir; later readdirs page through it.
    Read(Arc<Vec<DirEntry>>),
    /// Reading it failed with this errno (every later readdir says so too).
    Failed(i32),
}

/// fuser's file type for a directory entry's `d_type`; None when the
/// backing filesystem does not say (`DT_UNKNOWN`).
fn kind_of_dirent(t: rustix::fs::FileType) -> Option<FileType> {
    use rustix::fs::FileType as T;
    Some(match t {
        T::Directory => FileType::Directory,
        T::Symlink => FileType::Symlink,
        T::Fifo => FileType::NamedPipe,
        T::Socket => FileType::Socket,
        T::CharacterDevice => FileType::CharDevice,
        T::BlockDevice => FileType::BlockDevice,
        T::RegularFile => FileType::RegularFile,
        T::Unknown => return None,
    })
}

/// Owner of a new entry: the caller, with the parent's group when the
/// parent is set-group-id (as POSIX file systems do). Returns (uid, gid,
/// parent is setgid).
pub(crate) fn new_owner(req: &Request, parent_backing: &Path) -> FsResult<(u32, u32, bool)> {
    let pm = fs::metadata(parent_backing)?;
    let sgid = pm.mode() & libc::S_ISGID != 0;
    let gid = if sgid { pm.gid() } else { req.gid() };
    Ok((req.uid(), gid, sgid))
}

impl Core {
    /// The node of `name` in `parent` if the backing entry exists: records
    /// a kernel lookup.
    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<FileAttr> {
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let (backing, _) = self.child_backing(&dir, name)?;
        self.lookup_backing(&dir, name, backing)
    }

    /// [`Self::lookup`] of `name` in `dir` whose backing path is known (from
    /// a directory listing): no name encryption.
    pub(crate) fn lookup_backing(
        &self,
        dir: &NodeRef,
        name: &OsStr,
        backing: std::path::PathBuf,
    ) -> FsResult<FileAttr> {
        let meta = match fs::symlink_metadata(&backing) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FsError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let node = self
            .table()
            .lookup(dir.plain.child(name), backing, meta.ino());
        let attr = self.attr_from(node.ino, &node.backing, &meta);
        let _ = node.state.kind.set(attr.kind);
        Ok(attr)
    }

    /// Registers a freshly created entry with the kernel (one lookup).
    pub(crate) fn entry_created(
        &self,
        dir: &NodeRef,
        name: &OsStr,
        backing: std::path::PathBuf,
    ) -> FsResult<(NodeRef, FileAttr)> {
        let meta = fs::symlink_metadata(&backing)?;
        Ok(self.entry_made(dir, name, backing, &meta))
    }

    /// [`Self::entry_created`] with the new entry's metadata already at
    /// hand (from its open descriptor).
    pub(crate) fn entry_made(
        &self,
        dir: &NodeRef,
        name: &OsStr,
        backing: std::path::PathBuf,
        meta: &fs::Metadata,
    ) -> (NodeRef, FileAttr) {
        let node = self
            .table()
            .lookup(dir.plain.child(name), backing, meta.ino());
        let attr = self.attr_from(node.ino, &node.backing, meta);
        let _ = node.state.kind.set(attr.kind);
        (node, attr)
    }

    /// Opens the backing directory (errors such as ENOENT, ENOTDIR or
    /// EACCES come from here); the entries are read at the first readdir.
    pub(crate) fn opendir(&self, ino: u64) -> FsResult<u64> {
        let dir = self.node(ino)?;
        // A damaged directory IV fails the opendir, not a later readdir.
        self.dir_iv(&dir)?;
        let fd = rustix::fs::open(
            &dir.backing,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(std::io::Error::from)?;
        let fh = self.new_fh();
        self.dirs.lock().map_err(|_| FsError::Stale)?.insert(
            fh,
            Arc::new(DirHandle {
                listing: std::sync::Mutex::new(Listing::Opened(fd)),
            }),
        );
        Ok(fh)
    }

    /// The listing of open directory `h` (of inode `ino`), read on first use.
    pub(crate) fn dir_entries(&self, ino: u64, h: &DirHandle) -> FsResult<Arc<Vec<DirEntry>>> {
        let mut listing = h.listing.lock().map_err(|_| FsError::Stale)?;
        let fd = match std::mem::replace(&mut *listing, Listing::Failed(libc::EIO)) {
            Listing::Read(entries) => {
                *listing = Listing::Read(entries.clone());
                return Ok(entries);
            }
            Listing::Failed(errno) => {
                *listing = Listing::Failed(errno);
                return Err(std::io::Error::from_raw_os_error(errno).into());
            }
            Listing::Opened(fd) => fd,
        };
        match self.read_listing(ino, fd) {
            Ok(entries) => {
                let entries = Arc::new(entries);
                *listing = Listing::Read(entries.clone());
                Ok(entries)
            }
            Err(e) => {
                if let FsError::Io(io) = &e {
                    *listing = Listing::Failed(io.raw_os_error().unwrap_or(libc::EIO));
                }
                Err(e)
            }
        }
    }

    /// Reads the backing directory `fd` of inode `ino` and decrypts its names.
    fn read_listing(&self, ino: u64, fd: OwnedFd) -> FsResult<Vec<DirEntry>> {
        let dir = self.node(ino)?;
        let iv = self.dir_iv(&dir)?;
        let plain = dir.plain.display();
        let dot = |name: &str| DirEntry {
            ino,
            kind: FileType::Directory,
            name: OsString::from(name),
            backing: None,
        };
        let mut entries = vec![dot("."), dot("..")];
        let mut stream = rustix::fs::Dir::new(fd).map_err(std::io::Error::from)?;
        while let Some(ent) = stream.read() {
            let ent = ent.map_err(std::io::Error::from)?;
            let raw = OsStr::from_bytes(ent.file_name().to_bytes());
            if raw == "." || raw == ".." {
                continue;
            }
            let Some(name) = self.decode_entry(&dir.backing, &plain, &iv, raw) else {
                continue;
            };
            let kind = match kind_of_dirent(ent.file_type()) {
                Some(k) => k,
                None => fs::symlink_metadata(dir.backing.join(raw))
                    .map(|m| super::attr::kind_of(m.file_type()))
                    .unwrap_or(FileType::RegularFile),
            };
            let child = dir.plain.child(&name);
            let child_ino = {
                let t = self.table();
                t.ino_of(&child)
                    .or_else(|| t.ino_of_backing(ent.ino()))
                    .unwrap_or(ent.ino() | (1 << 63))
            };
            entries.push(DirEntry {
                ino: child_ino,
                kind,
                name,
                backing: Some(raw.to_os_string()),
            });
        }
        Ok(entries)
    }

    pub(crate) fn dir_handle(&self, fh: u64) -> FsResult<Arc<DirHandle>> {
        self.dirs
            .lock()
            .map_err(|_| FsError::Stale)?
            .get(&fh)
            .cloned()
            .ok_or(FsError::Stale)
    }

    pub(crate) fn releasedir(&self, fh: u64) {
        if let Ok(mut d) = self.dirs.lock() {
            d.remove(&fh);
        }
    }

    pub(crate) fn mkdir(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let _dir_guard = dir.state.io.read().map_err(|_| FsError::Stale)?;
        let (backing, bn) = self.child_backing(&dir, name)?;
        let (uid, gid, sgid) = new_owner(req, &dir.backing)?;
        let new_mode = self.new_mode(&dir, mode, umask, true)?;
        let mut perm = new_mode.perm;
        if sgid {
            perm |= libc::S_ISGID;
        }
        // Created owner-writable so the IV file can be written, then chmod.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&backing)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    FsError::Exists
                } else {
                    e.into()
                }
            })?;
        let finish = || -> FsResult<()> {
            if self.vol.encrypted_names() {
                create_dir_iv(&backing)?;
            }
            self.write_side_file(&dir.backing, &bn)?;
            // Through a descriptor: a directory swapped for a symlink in
            // the meantime is refused (ELOOP), never followed.
            let made = kms_engine::safe_fs::Dir::open(&backing)?;
            std::os::unix::fs::fchown(&made, Some(uid), Some(gid))?;
            rustix::fs::fchmod(&made, rustix::fs::Mode::from_raw_mode(perm))?;
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = fs::remove_dir_all(&backing);
            self.remove_side_file(&dir.backing, &bn);
            return Err(e);
        }
        let (node, attr) = self.entry_created(&dir, name, backing)?;
        self.inherit_acls(&node, &new_mode)?;
        Ok(attr)
    }

    /// The entry `name` (at `plain`) of `dir` about to be removed: its node
    /// when the kernel knows it, and its backing path. The kernel looks an
    /// entry up before it removes it (`rm -rf` works from a listing), so
    /// the path comes from the node without encrypting the name again; a
    /// long name is encrypted, and its backing name returned for its side
    /// file.
    fn removal_target(
        &self,
        dir: &NodeRef,
        plain: &PlainPath,
        name: &OsStr,
    ) -> FsResult<(Option<NodeRef>, std::path::PathBuf, Option<BackingName>)> {
        let known = {
            let t = self.table();
            t.ino_of(plain).and_then(|i| t.get(i))
        };
        let (backing, bn) = match &known {
            Some(n) if n.linked && short_entry_in(&n.backing, &dir.backing) => {
                (n.backing.clone(), None)
            }
            _ => {
                let (backing, bn) = self.child_backing(dir, name)?;
                (backing, Some(bn))
            }
        };
        Ok((known, backing, bn))
    }

    /// The entries of backing directory `backing`, all of them kmsfs's own
    /// (its IV, long-name side files of nothing): NotEmpty when it holds
    /// anything else.
    fn own_entries_only(&self, backing: &Path) -> FsResult<Vec<OsString>> {
        let mut own = Vec::new();
        for ent in fs::read_dir(backing)? {
            let name = ent?.file_name();
            if crate::names::classify_backing_name(name.as_bytes())
                != crate::names::BackingKind::Reserved
            {
                return Err(FsError::NotEmpty);
            }
            own.push(name);
        }
        Ok(own)
    }

    pub(crate) fn rmdir(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let _dir_guard = dir.state.io.read().map_err(|_| FsError::Stale)?;
        let plain = dir.plain.child(name);
        let (victim, backing, bn) = self.removal_target(&dir, &plain, name)?;
        let meta = fs::symlink_metadata(&backing).map_err(not_found)?;
        if !meta.is_dir() {
            return Err(FsError::NotDir);
        }
        // Hold the victim's lock so no entry is created in it meanwhile.
        let _victim_guard = match &victim {
            Some(v) => Some(v.state.io.write().map_err(|_| FsError::Stale)?),
            None => None,
        };
        let own = self.own_entries_only(&backing)?;
        // Remove kmsfs's own files, then the directory; on failure put the
        // IV back so the directory stays readable.
        let iv = if self.vol.encrypted_names() {
            // A missing or damaged IV does not stop removing the directory.
            let cached = victim
                .as_ref()
                .and_then(|v| v.state.dir_iv.lock().ok().and_then(|iv| *iv));
            cached
                .or_else(|| crate::volume::read_dir_iv(&backing).ok())
                .map(crate::names::DirIv)
        } else {
            None
        };
        let cleared = || -> FsResult<()> {
            for name in &own {
                fs::remove_file(backing.join(name))?;
            }
            fs::remove_dir(&backing)?;
            Ok(())
        };
        if let Err(e) = cleared() {
            if let Some(iv) = iv
                && let Err(re) = restore_dir_iv(&backing, &iv)
            {
                log::warn!(
                    "{}: rmdir failed and the directory IV could not be put back: {re}",
                    plain.display()
                );
            }
            return Err(e);
        }
        if let Some(bn) = &bn {
            self.remove_side_file(&dir.backing, bn);
        }
        let attr = victim
            .as_ref()
            .map(|v| self.attr_from(v.ino, &backing, &meta));
        self.table().unlinked(&plain, attr);
        Ok(())
    }

    pub(crate) fn unlink(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let _dir_guard = dir.state.io.read().map_err(|_| FsError::Stale)?;
        let plain = dir.plain.child(name);
        let (known, backing, bn) = self.removal_target(&dir, &plain, name)?;
        // No stat first: unlink(2) itself fails with EISDIR on a directory
        // and ENOENT on a missing entry. A symlink's long target goes too;
        // an entry the kernel looked up as something else has none.
        let known_kind = known.and_then(|n| n.state.kind.get().copied());
        let long_file = match known_kind {
            Some(k) if k != FileType::Symlink => None,
            _ => self.long_link_file(&backing),
        };
        fs::remove_file(&backing).map_err(not_found)?;
        if let Some(bn) = &bn {
            self.remove_side_file(&dir.backing, bn);
        }
        self.remove_long_link_file(long_file);
        // An open handle still has the file (see `getattr`).
        self.table().unlinked(&plain, None);
        Ok(())
    }

    pub(crate) fn statfs(&self) -> FsResult<rustix::fs::StatVfs> {
        Ok(rustix::fs::statvfs(&self.vol.root)?)
    }

    pub(crate) fn fsyncdir(&self, ino: u64) -> FsResult<()> {
        let dir = self.node(ino)?;
        self.sync_audit(&|| dir.plain.display())?;
        fs::File::open(&dir.backing)?.sync_all()?;
        Ok(())
    }
}

/// Puts directory IV `iv` back into `dir` after a failed rmdir, as
/// [`create_dir_iv`] writes it (read-only, synced); a no-op when it is
/// still there.
fn restore_dir_iv(dir: &Path, iv: &crate::names::DirIv) -> std::io::Result<()> {
    match crate::volume::write_dir_iv(dir, iv.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Whether backing path `entry` is an entry of `dir_backing` with a
/// short (not hashed long) name.
fn short_entry_in(entry: &Path, dir_backing: &Path) -> bool {
    entry.parent() == Some(dir_backing)
        && entry.file_name().is_some_and(|n| {
            !n.as_bytes()
                .starts_with(crate::names::LONG_NAME_PREFIX.as_bytes())
        })
}

/// Maps a missing backing entry to ENOENT.
pub(crate) fn not_found(e: std::io::Error) -> FsError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FsError::NotFound
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn restored_dir_iv_reads_back_read_only() {
        let d = tempfile::tempdir().unwrap();
        let iv = create_dir_iv(d.path()).unwrap();
        let path = d.path().join(crate::names::DIRIV_FILE_NAME);
        // Still there: left alone.
        restore_dir_iv(d.path(), &crate::names::DirIv(iv)).unwrap();
        fs::remove_file(&path).unwrap();
        restore_dir_iv(d.path(), &crate::names::DirIv(iv)).unwrap();
        assert_eq!(crate::volume::read_dir_iv(d.path()).unwrap(), iv);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
        // A failure is reported, not swallowed.
        assert!(restore_dir_iv(&d.path().join("gone"), &crate::names::DirIv(iv)).is_err());
    }
}
