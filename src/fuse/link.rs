//! Symlinks (targets encrypted with the directory's IV), readlink, mknod
//! (fifos, sockets, devices; regular files get a header and data key) and
//! hard links (refused: a data key is bound to one path).

use super::Core;
use super::dir::new_owner;
use super::errno::{FsError, FsResult};
use fuser::{FileAttr, Request};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl Core {
    pub(crate) fn symlink(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let _dir_guard = dir.state.io.read().map_err(|_| FsError::Stale)?;
        let (backing, bn) = self.child_backing(&dir, name)?;
        let stored = self.encode_link_target(&dir, target.as_os_str().as_bytes())?;
        // A long target's file, written by encode_link_target.
        let long_file = (self.vol.encrypted_names()
            && crate::names::is_long_link_name(stored.as_bytes()))
        .then(|| dir.backing.join(&stored));
        let made = new_owner(req, &dir.backing).and_then(|owner| {
            std::os::unix::fs::symlink(&stored, &backing).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    FsError::Exists
                } else {
                    e.into()
                }
            })?;
            Ok(owner)
        });
        let (uid, gid, _) = match made {
            Ok(owner) => owner,
            Err(e) => {
                self.remove_long_link_file(long_file);
                return Err(e);
            }
        };
        let finish = || -> FsResult<()> {
            self.write_side_file(&dir.backing, &bn)?;
            std::os::unix::fs::lchown(&backing, Some(uid), Some(gid))?;
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = std::fs::remove_file(&backing);
            self.remove_side_file(&dir.backing, &bn);
            self.remove_long_link_file(long_file);
            return Err(e);
        }
        Ok(self.entry_created(&dir, name, backing)?.1)
    }

    pub(crate) fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let node = self.node(ino)?;
        self.read_link_target(&node.backing).map_err(|e| {
            if matches!(e, FsError::Name(_)) {
                log::warn!("{}: symlink target does not decrypt", node.plain.display());
            }
            e
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mknod(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> FsResult<FileAttr> {
        let kind = mode & libc::S_IFMT;
        if kind == libc::S_IFREG || kind == 0 {
            return Ok(self.create_file(req, parent, name, mode, umask, None)?.0);
        }
        self.check_writable()?;
        let file_type = match kind {
            libc::S_IFIFO => rustix::fs::FileType::Fifo,
            libc::S_IFSOCK => rustix::fs::FileType::Socket,
            libc::S_IFCHR => rustix::fs::FileType::CharacterDevice,
            libc::S_IFBLK => rustix::fs::FileType::BlockDevice,
            _ => return Err(FsError::InvalidArgument),
        };
        let _paths = self.paths_shared()?;
        let dir = self.node(parent)?;
        let _dir_guard = dir.state.io.read().map_err(|_| FsError::Stale)?;
        let (backing, bn) = self.child_backing(&dir, name)?;
        let (uid, gid, _) = new_owner(req, &dir.backing)?;
        // Special files carry no attributes here: a default ACL only
        // masks their mode.
        let perm = self.new_mode(&dir, mode, umask, false)?.perm;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &backing,
            file_type,
            rustix::fs::Mode::from_raw_mode(perm),
            u64::from(rdev),
        )
        .map_err(|e| {
            if e == rustix::io::Errno::EXIST {
                FsError::Exists
            } else {
                e.into()
            }
        })?;
        let finish = || -> FsResult<()> {
            self.write_side_file(&dir.backing, &bn)?;
            std::os::unix::fs::lchown(&backing, Some(uid), Some(gid))?;
            rustix::fs::chmod(&backing, rustix::fs::Mode::from_raw_mode(perm))?;
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = std::fs::remove_file(&backing);
            self.remove_side_file(&dir.backing, &bn);
            return Err(e);
        }
        Ok(self.entry_created(&dir, name, backing)?.1)
    }

    pub(crate) fn link(&self) -> FsResult<FileAttr> {
        Err(FsError::HardLinkRefused)
    }
}
