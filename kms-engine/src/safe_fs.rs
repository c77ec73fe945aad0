//! Every file kmsfs creates goes through here: the cipher directory is
//! writable by the attacker of the threat model, and the fallback runtime
//! directory has a predictable name, so a name there may already be a
//! planted symlink, FIFO or file.
//!
//! A [`Dir`] is an opened directory; every operation is relative to its
//! descriptor (`openat`, `renameat`, `unlinkat`, `symlinkat`), so a
//! directory swapped after it was opened does not redirect a write. New
//! files are created under a random temporary name ([`TEMP_PREFIX`] + 16
//! hex digits) with `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, get their mode
//! with `fchmod` (whatever the umask), are written and fsynced, and are
//! renamed over the final name (which replaces a symlink planted there
//! instead of following it); then the directory is fsynced. A failed write
//! removes its temporary file, so a full disk leaves the old file as it was.
//!
//! Private directories (the engine store, the audit trail, the runtime
//! state directory) are opened with [`Dir::open_private`]: created 0700
//! when missing, refused unless owned by the effective user, and put back
//! to 0700 when group or others have any access.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

/// Names of temporary files start with this (followed by 16 hex digits).
/// `kmsfs.` names are reserved in the cipher directory, so a temporary
/// file never shows up on the mount.
pub const TEMP_PREFIX: &str = "kmsfs.tmp-";

/// How often a random temporary name is drawn again after EEXIST.
const TEMP_ATTEMPTS: usize = 8;

/// A directory that is not private to this user.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}; refusing to use it", path.display())]
pub struct NotPrivate {
    pub path: PathBuf,
    pub why: String,
}

/// An opened directory; files are created, replaced and removed relative
/// to it.
#[derive(Debug)]
pub struct Dir {
    fd: File,
    path: PathBuf,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn io(e: rustix::io::Errno) -> std::io::Error {
    e.into()
}

/// `name` as a single path component (no `/`, not empty, not `.`/`..`).
fn component(name: &OsStr) -> std::io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a single file name", name.to_string_lossy()),
        ));
    }
    Ok(name)
}

fn temp_name() -> std::io::Result<OsString> {
    let mut r = [0u8; 8];
    aws_lc_rs::rand::fill(&mut r).map_err(|_| std::io::Error::other("random source failed"))?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(OsString::from(format!("{TEMP_PREFIX}{hex}")))
}

/// Whether `name` is a temporary name of [`Dir::write_atomic`] and friends.
pub fn is_temp_name(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX.as_bytes())
        .is_some_and(|h| h.len() == 16 && h.iter().all(u8::is_ascii_hexdigit))
}

impl Dir {
    /// Opens `path` as a directory; a symlink as its last component is not
    /// followed (ELOOP/ENOTDIR).
    pub fn open(path: &Path) -> std::io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(Dir {
            fd: File::from(fd),
            path: path.to_path_buf(),
        })
    }

    /// Opens a directory that must be private to the effective user,
    /// creating it (and missing parents) with mode 0700 when `create`.
    /// Refused with [`NotPrivate`] (as `PermissionDenied`) when it is a
    /// symlink, not a directory, or owned by someone else; group or other
    /// access is removed (mode 0700) with a warning.
    pub fn open_private(path: &Path, create: bool) -> std::io::Result<Dir> {
        let refuse = |why: String| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                NotPrivate {
                    path: path.to_path_buf(),
                    why,
                },
            )
        };
        if create {
            match std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
            {
                Ok(()) => {}
                // A symlink or a file in the way: named below.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let dir = match Dir::open(path) {
            Ok(d) => d,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let what = match std::fs::symlink_metadata(path) {
                    Ok(m) if m.file_type().is_symlink() => "a symbolic link",
                    _ => "not a directory",
                };
                return Err(refuse(format!("it is {what}")));
            }
            Err(e) => return Err(e),
        };
        let m = dir.fd.metadata()?;
        let euid = rustix::process::geteuid().as_raw();
        if m.uid() != euid {
            return Err(refuse(format!(
                "it is owned by uid {}, not by this user (uid {euid})",
                m.uid()
            )));
        }
        if m.mode() & 0o077 != 0 {
            log::warn!(
                "{}: mode {:o} gave access to other users; set to 0700",
                path.display(),
                m.mode() & 0o7777
            );
            dir.fd
                .set_permissions(std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(dir)
    }

    /// The path this directory was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsync of the directory (makes renames and creations in it durable).
    pub fn sync(&self) -> std::io::Result<()> {
        self.fd.sync_all()
    }

    /// A new, empty file under a random temporary name, mode `mode`.
    fn create_temp(&self, mode: u32) -> std::io::Result<(OsString, File)> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for _ in 0..TEMP_ATTEMPTS {
            let name = temp_name()?;
            match rustix::fs::openat(&self.fd, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    let f = File::from(fd);
                    if let Err(e) = f.set_permissions(std::fs::Permissions::from_mode(mode)) {
                        drop(f);
                        let _ = self.remove(&name);
                        return Err(e);
                    }
                    return Ok((name, f));
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
    }

    /// Writes `bytes` to a new temporary file of mode `mode` and fsyncs
    /// it; the caller renames it into place or removes it.
    fn write_temp(&self, bytes: &[u8], mode: u32) -> std::io::Result<OsString> {
        let (tmp, mut f) = self.create_temp(mode)?;
        if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
            drop(f);
            let _ = self.remove(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// Replaces `name` with a file holding `bytes`, mode `mode`, atomically
    /// and durably: either the whole new file or the old state (also on
    /// ENOSPC/EDQUOT, which leave no temporary file behind).
    pub fn write_atomic(&self, name: &OsStr, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        let name = component(name)?;
        let tmp = self.write_temp(bytes, mode)?;
        if let Err(e) = rustix::fs::renameat(&self.fd, &tmp, &self.fd, name) {
            let _ = self.remove(&tmp);
            return Err(e.into());
        }
        self.sync()
    }

    /// Creates `name` holding `bytes`, mode `mode`, atomically and
    /// durably; fails with `AlreadyExists` when anything (a symlink too)
    /// has that name.
    pub fn write_new(&self, name: &OsStr, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        let name = component(name)?;
        let tmp = self.write_temp(bytes, mode)?;
        let placed =
            match rustix::fs::renameat_with(&self.fd, &tmp, &self.fd, name, RenameFlags::NOREPLACE)
            {
                // A backing filesystem without RENAME_NOREPLACE: link(2) does
                // not replace either.
                Err(rustix::io::Errno::INVAL) => {
                    rustix::fs::linkat(&self.fd, &tmp, &self.fd, name, AtFlags::empty())
                        .and_then(|()| rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty()))
                }
                r => r,
            };
        if let Err(e) = placed {
            let _ = self.remove(&tmp);
            return Err(e.into());
        }
        self.sync()
    }

    /// A new empty file at `name` (mode `mode`, open for writing) that
    /// replaces whatever had that name, a planted symlink included.
    pub fn create_replacing(&self, name: &OsStr, mode: u32) -> std::io::Result<File> {
        let name = component(name)?;
        let (tmp, f) = self.create_temp(mode)?;
        if let Err(e) = rustix::fs::renameat(&self.fd, &tmp, &self.fd, name) {
            let _ = self.remove(&tmp);
            return Err(e.into());
        }
        self.sync()?;
        Ok(f)
    }

    /// Opens `name` for reading and writing (appending with `append`),
    /// creating it with mode `mode` when missing: for files that keep their
    /// name (lock files, audit segments) in a private directory. A symlink,
    /// FIFO or other non-regular file there is refused; an existing file
    /// with more permissions than `mode` is put back to `mode`.
    pub fn open_or_create(&self, name: &OsStr, mode: u32, append: bool) -> std::io::Result<File> {
        let name = component(name)?;
        let mut flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        if append {
            flags |= OFlags::APPEND;
        }
        let fd: OwnedFd =
            rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode)).map_err(io)?;
        let f = File::from(fd);
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a regular file", self.path.join(name).display()),
            ));
        }
        if m.mode() & 0o7777 & !mode != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        // O_NONBLOCK only guarded the open against a FIFO.
        let keep = if append {
            OFlags::APPEND
        } else {
            OFlags::empty()
        };
        rustix::fs::fcntl_setfl(&f, keep).map_err(io)?;
        Ok(f)
    }

    /// Creates a symlink to `target` under a random temporary name and
    /// returns that name; the caller renames it into place or removes it.
    pub fn symlink_temp(&self, target: &OsStr) -> std::io::Result<OsString> {
        for _ in 0..TEMP_ATTEMPTS {
            let name = temp_name()?;
            match rustix::fs::symlinkat(target, &self.fd, &name) {
                Ok(()) => return Ok(name),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
    }

    /// Renames `from` in this directory to `to` in `to_dir` (`noreplace`:
    /// fail with EEXIST instead of replacing).
    pub fn rename(
        &self,
        from: &OsStr,
        to_dir: &Dir,
        to: &OsStr,
        noreplace: bool,
    ) -> std::io::Result<()> {
        let flags = if noreplace {
            RenameFlags::NOREPLACE
        } else {
            RenameFlags::empty()
        };
        rustix::fs::renameat_with(
            &self.fd,
            component(from)?,
            &to_dir.fd,
            component(to)?,
            flags,
        )
        .map_err(io)
    }

    /// Removes the file (not directory) `name`.
    pub fn remove(&self, name: &OsStr) -> std::io::Result<()> {
        rustix::fs::unlinkat(&self.fd, component(name)?, AtFlags::empty()).map_err(io)
    }

    /// Removes every temporary file a killed writer left in this directory.
    pub fn remove_temps(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        for ent in std::fs::read_dir(&self.path)? {
            let ent = ent?;
            if is_temp_name(ent.file_name().as_bytes()) && self.remove(&ent.file_name()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// [`Dir::write_atomic`] of `path`'s file name in its parent directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let (dir, name) = split(path)?;
    Dir::open(dir)?.write_atomic(name, bytes, mode)
}

/// `path`'s parent directory and file name.
pub fn split(path: &Path) -> std::io::Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => Ok((
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            },
            n,
        )),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: no file name", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn temps_in(dir: &Path) -> Vec<OsString> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| is_temp_name(n.as_bytes()))
            .collect()
    }

    /// A symlink planted at the final name is replaced, never followed;
    /// one at the old fixed temp name is ignored; the mode is exact.
    #[test]
    fn write_atomic_replaces_a_planted_symlink_and_sets_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let sub = d.path().join("cipher");
        std::fs::create_dir(&sub).unwrap();
        symlink(&victim, sub.join("name")).unwrap();
        symlink(&victim, sub.join("name.tmp")).unwrap();
        let dir = Dir::open(&sub).unwrap();
        dir.write_atomic(OsStr::new("name"), b"new", 0o640).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let m = std::fs::symlink_metadata(sub.join("name")).unwrap();
        assert!(m.is_file());
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read(sub.join("name")).unwrap(), b"new");
        assert!(temps_in(&sub).is_empty());
    }

    /// A failed rename (a directory has the name) leaves no temp file.
    #[test]
    fn a_failed_write_leaves_the_old_state_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("busy")).unwrap();
        std::fs::write(d.path().join("busy/x"), b"x").unwrap();
        let dir = Dir::open(d.path()).unwrap();
        dir.write_atomic(OsStr::new("busy"), b"new", 0o600)
            .unwrap_err();
        assert!(d.path().join("busy/x").exists());
        assert!(temps_in(d.path()).is_empty());
        assert!(dir.write_atomic(OsStr::new("a/b"), b"", 0o600).is_err());
    }

    #[test]
    fn write_new_refuses_any_existing_name_even_a_dangling_symlink() {
        let d = tempfile::tempdir().unwrap();
        symlink(d.path().join("nowhere"), d.path().join("iv")).unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let e = dir.write_new(OsStr::new("iv"), b"1", 0o444).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(!d.path().join("nowhere").exists());
        dir.write_new(OsStr::new("fresh"), b"1", 0o444).unwrap();
        let m = std::fs::metadata(d.path().join("fresh")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o444);
        assert!(temps_in(d.path()).is_empty());
    }

    #[test]
    fn create_replacing_gives_a_fresh_private_file() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        symlink(&victim, d.path().join("x.log")).unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let mut f = dir.create_replacing(OsStr::new("x.log"), 0o600).unwrap();
        f.write_all(b"log line").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(d.path().join("x.log")).unwrap(), b"log line");
    }

    #[test]
    fn open_or_create_refuses_symlinks_and_fifos_and_tightens_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        symlink(&victim, d.path().join("lock")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let dir = Dir::open(d.path()).unwrap();
        assert!(
            dir.open_or_create(OsStr::new("lock"), 0o600, false)
                .is_err()
        );
        assert!(dir.open_or_create(OsStr::new("fifo"), 0o600, true).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        std::fs::write(d.path().join("seg"), b"a").unwrap();
        std::fs::set_permissions(d.path().join("seg"), PermissionsExt::from_mode(0o644)).unwrap();
        let mut f = dir.open_or_create(OsStr::new("seg"), 0o600, true).unwrap();
        f.write_all(b"b").unwrap();
        assert_eq!(std::fs::read(d.path().join("seg")).unwrap(), b"ab");
        let m = std::fs::metadata(d.path().join("seg")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
    }

    #[test]
    fn private_dirs_are_created_0700_fixed_when_loose_and_refused_when_foreign() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        Dir::open_private(&p, true).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o777)).unwrap();
        Dir::open_private(&p, false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
        // A symlink to a private directory is refused, not followed.
        let link = d.path().join("link");
        symlink(&p, &link).unwrap();
        let e = Dir::open_private(&link, true).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let file = d.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let e = Dir::open_private(&file, false).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(Dir::open_private(&d.path().join("missing"), false).is_err());
        // Owned by someone else (needs root to chown).
        if rustix::process::geteuid().is_root() {
            let other = d.path().join("other");
            std::fs::create_dir(&other).unwrap();
            std::os::unix::fs::chown(&other, Some(4242), None).unwrap();
            let e = Dir::open_private(&other, true).unwrap_err();
            assert!(e.to_string().contains("owned by uid 4242"), "{e}");
        }
    }

    #[test]
    fn symlink_temps_and_renames_stay_in_their_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::create_dir(d.path().join("b")).unwrap();
        let a = Dir::open(&d.path().join("a")).unwrap();
        let b = Dir::open(&d.path().join("b")).unwrap();
        let t = b.symlink_temp(OsStr::new("target")).unwrap();
        assert!(is_temp_name(t.as_bytes()));
        std::fs::write(d.path().join("a/f"), b"f").unwrap();
        std::fs::write(d.path().join("b/g"), b"g").unwrap();
        let e = a
            .rename(OsStr::new("f"), &b, OsStr::new("g"), true)
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        a.rename(OsStr::new("f"), &b, OsStr::new("g"), false)
            .unwrap();
        assert_eq!(std::fs::read(d.path().join("b/g")).unwrap(), b"f");
        assert_eq!(b.remove_temps().unwrap(), 1);
        assert!(!is_temp_name(b"kmsfs.tmp-xyz"));
    }
}
