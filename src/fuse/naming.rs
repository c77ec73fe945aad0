//! Name handling against the backing directory: directory IVs (cached per
//! inode), plaintext name -> backing name (with long-name side files),
//! backing entry -> plaintext name, and symlink targets.

use super::Core;
use super::errno::{FsError, FsResult};
use super::inode::NodeRef;
use crate::format::NamesMode;
use crate::names::{BackingKind, BackingName, DirIv, classify_backing_name};
use crate::volume::{META_FILE_MODE, read_dir_iv, read_small_file, write_atomic};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The IV used in plaintext-names volumes, which have no IV files (names
/// and symlink targets are stored as they are).
const NO_IV: DirIv = DirIv([0; 16]);

impl Core {
    fn plaintext_names(&self) -> bool {
        self.vol.config.names_mode == NamesMode::Plaintext
    }

    /// The IV of directory `dir`.
    pub(crate) fn dir_iv(&self, dir: &NodeRef) -> FsResult<DirIv> {
        if self.plaintext_names() {
            return Ok(NO_IV);
        }
        let mut cached = dir.state.dir_iv.lock().map_err(|_| FsError::Stale)?;
        if let Some(iv) = *cached {
            return Ok(DirIv(iv));
        }
        let iv = self.dir_iv_at(&dir.backing, &dir.plain.display())?;
        *cached = Some(iv.0);
        Ok(iv)
    }

    /// Reads the IV file of the backing directory `dir`.
    pub(crate) fn dir_iv_at(&self, dir: &Path, plain: &str) -> FsResult<DirIv> {
        if self.plaintext_names() {
            return Ok(NO_IV);
        }
        match read_dir_iv(dir) {
            Ok(iv) => Ok(DirIv(iv)),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                log::warn!("{plain}: directory IV file is damaged");
                Err(FsError::tampered(plain, "directory IV file is damaged"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The backing name of `name` in directory `dir`.
    pub(crate) fn encode_name(&self, dir: &NodeRef, name: &OsStr) -> FsResult<BackingName> {
        let iv = self.dir_iv(dir)?;
        Ok(self.vol.names.encode_name(&iv, name.as_bytes())?)
    }

    /// The backing path of `name` in `dir`, and its backing name.
    pub(crate) fn child_backing(
        &self,
        dir: &NodeRef,
        name: &OsStr,
    ) -> FsResult<(PathBuf, BackingName)> {
        let bn = self.encode_name(dir, name)?;
        Ok((dir.backing.join(OsStr::from_bytes(bn.name())), bn))
    }

    /// Writes the side file of a long name (no-op for short names, and
    /// for a side file that already holds the name, so a rename over an
    /// existing long name needs no space). Returns whether it wrote one.
    pub(crate) fn write_side_file(&self, dir_backing: &Path, bn: &BackingName) -> FsResult<bool> {
        let BackingName::Long {
            side_file, encoded, ..
        } = bn
        else {
            return Ok(false);
        };
        let path = dir_backing.join(side_file);
        if read_small_file(&path, crate::names::MAX_SIDE_FILE_LEN)
            .is_ok_and(|cur| cur == encoded.as_bytes())
        {
            return Ok(false);
        }
        write_atomic(&path, encoded.as_bytes(), META_FILE_MODE)?;
        Ok(true)
    }

    /// Removes the side file of a long name (no-op for short names).
    pub(crate) fn remove_side_file(&self, dir_backing: &Path, bn: &BackingName) {
        if let BackingName::Long { side_file, .. } = bn
            && let Err(e) = std::fs::remove_file(dir_backing.join(side_file))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("removing long-name side file {side_file}: {e}");
        }
    }

    /// The plaintext name of backing entry `entry` in backing directory
    /// `dir_backing`; None for kmsfs's own files and (with a warning) for
    /// names that do not decrypt.
    pub(crate) fn decode_entry(
        &self,
        dir_backing: &Path,
        dir_plain: &str,
        iv: &DirIv,
        entry: &OsStr,
    ) -> Option<OsString> {
        let raw = entry.as_bytes();
        let res = match classify_backing_name(raw) {
            BackingKind::Regular => self.vol.names.decode_name(iv, raw),
            BackingKind::LongName => match read_small_file(
                &dir_backing.join(crate::names::side_file_name(&String::from_utf8_lossy(raw))),
                crate::names::MAX_SIDE_FILE_LEN,
            ) {
                Ok(side) => self.vol.names.decode_long_name(iv, raw, &side),
                Err(e) => {
                    log::warn!("{dir_plain}: long name without side file ({e})");
                    return None;
                }
            },
            BackingKind::LongNameSide | BackingKind::Reserved => return None,
        };
        match res {
            Ok(name) => Some(OsString::from_vec(name)),
            Err(e) => {
                log::warn!(
                    "{dir_plain}: skipping backing entry {}: {e}",
                    entry.to_string_lossy()
                );
                None
            }
        }
    }

    /// The stored form of a symlink target in directory `dir`: what the
    /// backing symlink's target is. A target whose encoding is longer than
    /// a backing symlink holds is written to a long-link target file in
    /// `dir` first, which the returned name points to (remove it with
    /// [`Self::remove_long_link_file`] if the symlink is not made).
    pub(crate) fn encode_link_target(&self, dir: &NodeRef, target: &[u8]) -> FsResult<OsString> {
        if self.plaintext_names() {
            return Ok(OsString::from_vec(target.to_vec()));
        }
        let iv = self.dir_iv(dir)?;
        let encoded = self.vol.names.encrypt_symlink(&iv, target)?;
        if encoded.len() <= crate::names::MAX_INLINE_LINK_LEN {
            return Ok(OsString::from(encoded));
        }
        let name = crate::names::long_link_name(&encoded);
        write_atomic(&dir.backing.join(&name), encoded.as_bytes(), META_FILE_MODE)?;
        Ok(OsString::from(name))
    }

    /// The long-link target file of the backing symlink at `backing`, if
    /// it has one (encrypted names only; None for anything else).
    pub(crate) fn long_link_file(&self, backing: &Path) -> Option<PathBuf> {
        if self.plaintext_names() {
            return None;
        }
        let stored = std::fs::read_link(backing).ok()?;
        crate::names::is_long_link_name(stored.as_os_str().as_bytes())
            .then(|| backing.parent().unwrap_or(Path::new("/")).join(stored))
    }

    /// Removes a long-link target file found by [`Self::long_link_file`]
    /// once its symlink is gone (a failure leaves an unused file, logged).
    pub(crate) fn remove_long_link_file(&self, file: Option<PathBuf>) {
        if let Some(f) = file
            && let Err(e) = std::fs::remove_file(&f)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("removing long-link target file {}: {e}", f.display());
        }
    }

    /// The plaintext target of the backing symlink at `backing`.
    pub(crate) fn read_link_target(&self, backing: &Path) -> FsResult<Vec<u8>> {
        let stored = std::fs::read_link(backing)?.into_os_string().into_vec();
        if self.plaintext_names() {
            return Ok(stored);
        }
        let dir = backing.parent().unwrap_or(Path::new("/"));
        let plain = backing.display().to_string();
        let iv = self.dir_iv_at(dir, &plain)?;
        let stored = crate::volume::stored_link_target(dir, stored).inspect_err(|e| {
            if e.raw_os_error() == Some(libc::EIO) {
                log::warn!("symlink {plain}: long-link target file is damaged");
            }
        })?;
        self.vol.names.decrypt_symlink(&iv, &stored).map_err(|e| {
            log::warn!("symlink {plain}: {e}");
            FsError::from(e)
        })
    }
}
