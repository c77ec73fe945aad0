//! Extended attributes: the `user.` and `trusted.` namespaces and the POSIX
//! ACLs (`system.posix_acl_*`, on mounts with ACLs, see `acl`), each
//! attribute stored as a backing `user.kmsfs.*` xattr with an encrypted
//! name (deterministic; the namespace is inside it, so the backing file
//! does not show which namespace an attribute is in) and an encrypted value
//! bound to that name and to its object (the file id of a regular file, the
//! IV of a directory), so a value copied to another file, directory or name
//! gives EIO. `trusted.*` is root's: others get ENODATA reading it, EPERM
//! writing it, and do not see it listed (as the kernel and ext4 do). Byte
//! formats and key derivation: `docs/file-format.md`, section "Extended
//! attributes".

use super::Core;
use super::errno::{FsError, FsResult};
use super::inode::NodeRef;
use super::perm::Caller;
use crate::crypto::{NONCE_LEN, SivKey, TAG_LEN, derive_key, random_array};
use crate::format::{FILE_ID_LEN, HEADER_LEN};
use crate::names::DIRIV_LEN;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

const USER_PREFIX: &[u8] = b"user.";
const TRUSTED_PREFIX: &[u8] = b"trusted.";
/// Associated data of a `user.` name's encryption (the name after `user.`).
const USER_NAME_AAD: &[u8] = b"xattr-name";
/// Associated data of any other name's encryption (the whole name).
const FULL_NAME_AAD: &[u8] = b"xattr-full-name";
const BACKING_PREFIX: &str = "user.kmsfs.";
/// Linux limit on an xattr name.
const XATTR_NAME_MAX: usize = 255;
/// First byte of every stored value: the value format version. Version 1
/// (no version byte, bound to the name only) is refused.
pub const VALUE_VERSION: u8 = 2;
/// Opens the associated data of every value.
const VALUE_AAD_LABEL: &[u8] = b"kmsfs-xattr-v2";
/// Bytes a stored value takes beyond the plaintext value.
pub const VALUE_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// The namespaces kmsfs stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    User,
    /// Root only.
    Trusted,
    /// `system.posix_acl_access` and `system.posix_acl_default`.
    Acl,
}

impl Namespace {
    /// The namespace of attribute `name`, `None` for names kmsfs does not
    /// store (`security.*`, other `system.*`, and bare prefixes).
    pub(crate) fn of(name: &[u8]) -> Option<Namespace> {
        if name == super::acl::ACCESS || name == super::acl::DEFAULT {
            return Some(Namespace::Acl);
        }
        match name {
            n if n.len() > USER_PREFIX.len() && n.starts_with(USER_PREFIX) => Some(Namespace::User),
            n if n.len() > TRUSTED_PREFIX.len() && n.starts_with(TRUSTED_PREFIX) => {
                Some(Namespace::Trusted)
            }
            _ => None,
        }
    }
}

/// What an attribute belongs to, as bound into its value's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrObject {
    /// A regular file, by the file id in its header.
    File([u8; FILE_ID_LEN]),
    /// A directory, by its name IV (`kmsfs.diriv`; all zero in
    /// plaintext-names volumes, which have no IV files).
    Dir([u8; DIRIV_LEN]),
}

impl XattrObject {
    /// The kind byte in the associated data.
    fn kind(&self) -> u8 {
        match self {
            XattrObject::File(_) => 0x01,
            XattrObject::Dir(_) => 0x02,
        }
    }

    fn id(&self) -> &[u8] {
        match self {
            XattrObject::File(id) => id,
            XattrObject::Dir(iv) => iv,
        }
    }
}

/// The associated data of a value: label || kind || object id || backing name.
fn value_aad(obj: &XattrObject, backing_name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(VALUE_AAD_LABEL.len() + 1 + 16 + backing_name.len());
    aad.extend_from_slice(VALUE_AAD_LABEL);
    aad.push(obj.kind());
    aad.extend_from_slice(obj.id());
    aad.extend_from_slice(backing_name.as_bytes());
    aad
}

/// The two xattr keys.
pub struct XattrCipher {
    name_key: SivKey,
    value_key: SivKey,
}

impl std::fmt::Debug for XattrCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XattrCipher(<redacted>)")
    }
}

impl XattrCipher {
    pub fn new(names_key: &[u8; 32]) -> FsResult<Self> {
        let nk = derive_key(names_key, b"kmsfs xattr name").map_err(FsError::internal)?;
        let vk = derive_key(names_key, b"kmsfs xattr value").map_err(FsError::internal)?;
        Ok(XattrCipher {
            name_key: SivKey::new(&nk).map_err(FsError::internal)?,
            value_key: SivKey::new(&vk).map_err(FsError::internal)?,
        })
    }

    /// The backing name of attribute `name` (with its namespace prefix):
    /// a `user.` name's rest is sealed under [`USER_NAME_AAD`], any other
    /// stored name whole under [`FULL_NAME_AAD`].
    fn backing_name(&self, name: &[u8]) -> FsResult<String> {
        let (plain, aad) = match Namespace::of(name) {
            Some(Namespace::User) => (&name[USER_PREFIX.len()..], USER_NAME_AAD),
            Some(_) => (name, FULL_NAME_AAD),
            None if name == USER_PREFIX || name == TRUSTED_PREFIX => {
                return Err(FsError::InvalidArgument);
            }
            None => return Err(FsError::Unsupported),
        };
        let mut ct = plain.to_vec();
        let tag = self
            .name_key
            .seal_in_place(&[0; NONCE_LEN], aad, &mut ct)
            .map_err(FsError::internal)?;
        ct.extend_from_slice(&tag);
        let out = format!("{BACKING_PREFIX}{}", URL_SAFE_NO_PAD.encode(&ct));
        if out.len() > XATTR_NAME_MAX {
            return Err(FsError::Range);
        }
        Ok(out)
    }

    fn plain_name(&self, backing: &[u8]) -> Option<Vec<u8>> {
        let b64 = backing.strip_prefix(BACKING_PREFIX.as_bytes())?;
        let raw = URL_SAFE_NO_PAD.decode(b64).ok()?;
        if raw.len() <= TAG_LEN {
            return None;
        }
        let (ct, tag) = raw.split_at(raw.len() - TAG_LEN);
        let mut out = vec![0u8; ct.len()];
        let open = |aad: &[u8], out: &mut [u8]| {
            self.name_key
                .open_out_of_place(&[0; NONCE_LEN], aad, ct, tag, out)
                .is_ok()
        };
        if open(USER_NAME_AAD, &mut out) {
            let mut name = USER_PREFIX.to_vec();
            name.extend_from_slice(&out);
            return Some(name);
        }
        // A whole name must be one of the other stored namespaces.
        (open(FULL_NAME_AAD, &mut out) && Namespace::of(&out).is_some_and(|n| n != Namespace::User))
            .then_some(out)
    }

    fn seal_value(&self, obj: &XattrObject, backing_name: &str, value: &[u8]) -> FsResult<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = random_array().map_err(FsError::internal)?;
        self.seal_value_with_nonce(obj, backing_name, value, &nonce)
    }

    fn seal_value_with_nonce(
        &self,
        obj: &XattrObject,
        backing_name: &str,
        value: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> FsResult<Vec<u8>> {
        let mut ct = value.to_vec();
        let tag = self
            .value_key
            .seal_in_place(nonce, &value_aad(obj, backing_name), &mut ct)
            .map_err(FsError::internal)?;
        let mut out = Vec::with_capacity(VALUE_OVERHEAD + value.len());
        out.push(VALUE_VERSION);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn open_value(
        &self,
        obj: &XattrObject,
        backing_name: &str,
        stored: &[u8],
        path: &str,
    ) -> FsResult<Vec<u8>> {
        let fail = |what: &str| {
            log::warn!("{path}: {what}");
            FsError::tampered(path, what)
        };
        if stored.len() < VALUE_OVERHEAD {
            return Err(fail("xattr value truncated"));
        }
        let (version, rest) = stored.split_at(1);
        if version[0] != VALUE_VERSION {
            return Err(fail("xattr value has an unknown format version"));
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut nonce_arr = [0u8; NONCE_LEN];
        nonce_arr.copy_from_slice(nonce);
        let mut out = vec![0u8; ct.len()];
        self.value_key
            .open_out_of_place(
                &nonce_arr,
                &value_aad(obj, backing_name),
                ct,
                tag,
                &mut out,
            )
            .map_err(|_| fail("xattr value failed authentication (altered, or copied from another name, file or directory)"))?;
        Ok(out)
    }
}

/// An attribute that fails [`XattrCipher::check_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadXattr {
    /// Its name in the backing store.
    pub stored: String,
    /// Its plaintext name when that decrypts, else the backing name.
    pub name: String,
    /// What is wrong.
    pub what: String,
}

impl XattrCipher {
    /// Checks every kmsfs user attribute of the backing file or directory
    /// `backing`, which stands for `obj` (for `kmsfs fsck`): every backing
    /// `user.kmsfs.*` name must decrypt and every value open under its name
    /// and object. Returns how many attributes were checked and, for each
    /// that fails, its backing name, its name (plaintext when it decrypts,
    /// else the backing name) and what is wrong. Other attributes (not kmsfs's) are ignored.
    pub fn check_all(
        &self,
        backing: &Path,
        obj: &XattrObject,
    ) -> std::io::Result<(usize, Vec<BadXattr>)> {
        let to_io = |e: FsError| match e {
            FsError::Io(io) => io,
            e => std::io::Error::other(e.to_string()),
        };
        let list = read_growing(4096, |b| rustix::fs::llistxattr(backing, b)).map_err(to_io)?;
        let mut checked = 0;
        let mut bad = Vec::new();
        for raw in list.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            if !raw.starts_with(BACKING_PREFIX.as_bytes()) {
                continue;
            }
            checked += 1;
            let bname = String::from_utf8_lossy(raw).into_owned();
            let Some(plain) = self.plain_name(raw) else {
                bad.push(BadXattr {
                    stored: bname.clone(),
                    name: bname,
                    what: "attribute name does not decrypt".to_string(),
                });
                continue;
            };
            let plain = String::from_utf8_lossy(&plain).into_owned();
            let what = match read_xattr(backing, &bname) {
                Ok(stored) => match self.open_value(obj, &bname, &stored, &plain) {
                    Ok(_) => continue,
                    Err(FsError::Tampered { what, .. }) => what,
                    Err(e) => e.to_string(),
                },
                Err(e) => format!("cannot read the attribute: {e}"),
            };
            bad.push(BadXattr {
                stored: bname,
                name: plain,
                what,
            });
        }
        Ok((checked, bad))
    }
}

/// What [`XattrCipher::rekey_all`] found (and did) on one object.
#[derive(Debug, Default)]
pub struct XattrRekey {
    /// Attributes sealed under the old names key (moved, unless checking).
    pub moved: usize,
    /// Attributes already sealed under the new names key.
    pub current: usize,
    /// Attributes that open under neither key.
    pub bad: Vec<BadXattr>,
}

impl XattrCipher {
    /// `kmsfs rekey --names` for the attributes of `backing` (standing for
    /// `obj`), `self` being the new key and `old` the old one: every
    /// `user.kmsfs.*` attribute whose name decrypts under `old` and whose
    /// value opens is sealed again under `self` (new backing name, new
    /// value, set with no flags so a copy set by an interrupted run is
    /// overwritten), then the old one removed; never the other way round,
    /// so a kill leaves the attribute under one key or both, never neither.
    /// With `check_only`, nothing is written.
    pub fn rekey_all(
        &self,
        old: &XattrCipher,
        backing: &Path,
        obj: &XattrObject,
        check_only: bool,
    ) -> std::io::Result<XattrRekey> {
        let to_io = |e: FsError| match e {
            FsError::Io(io) => io,
            e => std::io::Error::other(e.to_string()),
        };
        let list = read_growing(4096, |b| rustix::fs::llistxattr(backing, b)).map_err(to_io)?;
        let mut out = XattrRekey::default();
        for raw in list.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            if !raw.starts_with(BACKING_PREFIX.as_bytes()) {
                continue;
            }
            if self.plain_name(raw).is_some() {
                out.current += 1;
                continue;
            }
            let bname = String::from_utf8_lossy(raw).into_owned();
            let Some(plain) = old.plain_name(raw) else {
                out.bad.push(BadXattr {
                    stored: bname.clone(),
                    name: bname,
                    what: "attribute name does not decrypt under the old or the new names key"
                        .into(),
                });
                continue;
            };
            let shown = String::from_utf8_lossy(&plain).into_owned();
            let value = match read_xattr(backing, &bname)
                .and_then(|stored| old.open_value(obj, &bname, &stored, &shown))
            {
                Ok(v) => zeroize::Zeroizing::new(v),
                Err(e) => {
                    let what = match e {
                        FsError::Tampered { what, .. } => what,
                        e => e.to_string(),
                    };
                    out.bad.push(BadXattr {
                        stored: bname,
                        name: shown,
                        what,
                    });
                    continue;
                }
            };
            out.moved += 1;
            if check_only {
                continue;
            }
            let new_name = self.backing_name(&plain).map_err(to_io)?;
            let sealed = self.seal_value(obj, &new_name, &value).map_err(to_io)?;
            rustix::fs::lsetxattr(
                backing,
                new_name.as_str(),
                &sealed,
                rustix::fs::XattrFlags::empty(),
            )?;
            match rustix::fs::lremovexattr(backing, bname.as_str()) {
                Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

impl Core {
    /// The object `node` stands for, or `None` for kinds that carry no user
    /// attributes (Linux refuses `user.*` on symlinks and special files).
    /// The file id and the directory IV are cached in the inode state, so
    /// only the first call per inode reads the backing directory; both stay
    /// valid across renames.
    fn xattr_object(&self, node: &NodeRef) -> FsResult<Option<XattrObject>> {
        if let Some(id) = *node.state.file_id.lock().map_err(|_| FsError::Stale)? {
            return Ok(Some(XattrObject::File(id)));
        }
        if let Some(iv) = *node.state.dir_iv.lock().map_err(|_| FsError::Stale)? {
            return Ok(Some(XattrObject::Dir(iv)));
        }
        let ft = std::fs::symlink_metadata(&node.backing)?.file_type();
        if ft.is_dir() {
            return Ok(Some(XattrObject::Dir(self.dir_iv(node)?.0)));
        }
        if !ft.is_file() {
            return Ok(None);
        }
        let id = read_file_id(&node.backing, &node.plain.display())?;
        *node.state.file_id.lock().map_err(|_| FsError::Stale)? = Some(id);
        Ok(Some(XattrObject::File(id)))
    }

    /// setxattr by `caller`.
    pub(crate) fn setxattr(
        &self,
        caller: &Caller,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        self.check_writable()?;
        match Namespace::of(name.as_bytes()) {
            Some(Namespace::Trusted) if caller.uid != 0 => return Err(FsError::NotPermitted),
            Some(Namespace::Acl) => {
                if !self.acls_enabled() {
                    return Err(FsError::Unsupported);
                }
                return self.set_acl(caller, ino, name.as_bytes(), value, flags);
            }
            _ => {}
        }
        let node = self.node(ino)?;
        self.store_xattr(&node, name.as_bytes(), value, flags)
    }

    /// Seals and stores attribute `name` of `node` (no permission check:
    /// callers decide).
    pub(crate) fn store_xattr(
        &self,
        node: &NodeRef,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        let bname = self.xattrs.backing_name(name)?;
        let Some(obj) = self.xattr_object(node)? else {
            return Err(FsError::Unsupported);
        };
        let sealed = self.xattrs.seal_value(&obj, &bname, value)?;
        let mut xf = rustix::fs::XattrFlags::empty();
        if flags & libc::XATTR_CREATE != 0 {
            xf |= rustix::fs::XattrFlags::CREATE;
        }
        if flags & libc::XATTR_REPLACE != 0 {
            xf |= rustix::fs::XattrFlags::REPLACE;
        }
        rustix::fs::lsetxattr(&node.backing, bname.as_str(), &sealed, xf)?;
        Ok(())
    }

    /// getxattr by a caller with uid `uid`.
    pub(crate) fn getxattr(&self, uid: u32, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        // The kernel's security.*/system.* probes (ls asks two per file)
        // are answered before touching the inode table or the backing file.
        match Namespace::of(name.as_bytes()) {
            None => return Err(FsError::NoAttribute),
            Some(Namespace::Trusted) if uid != 0 => return Err(FsError::NoAttribute),
            Some(Namespace::Acl) if !self.acls_enabled() => return Err(FsError::NoAttribute),
            _ => {}
        }
        let node = self.node(ino)?;
        self.load_xattr(&node, name.as_bytes())
    }

    /// Reads and opens attribute `name` of `node` (no permission check).
    pub(crate) fn load_xattr(&self, node: &NodeRef, name: &[u8]) -> FsResult<Vec<u8>> {
        let bname = self.xattrs.backing_name(name)?;
        let stored = read_xattr(&node.backing, &bname)?;
        let Some(obj) = self.xattr_object(node)? else {
            return Err(FsError::NoAttribute);
        };
        self.xattrs
            .open_value(&obj, &bname, &stored, &node.plain.display())
    }

    /// listxattr by a caller with uid `uid`: `trusted.*` names only for
    /// root, ACL names only on mounts with ACLs.
    pub(crate) fn listxattr(&self, uid: u32, ino: u64) -> FsResult<Vec<u8>> {
        let node = self.node(ino)?;
        let buf = read_growing(4096, |b| rustix::fs::llistxattr(&node.backing, b))?;
        let mut out = Vec::new();
        for raw in buf.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            let Some(name) = self.xattrs.plain_name(raw) else {
                continue;
            };
            let shown = match Namespace::of(&name) {
                Some(Namespace::Trusted) => uid == 0,
                Some(Namespace::Acl) => self.acls_enabled(),
                _ => true,
            };
            if shown {
                out.extend_from_slice(&name);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// removexattr by a caller with uid `uid`.
    pub(crate) fn removexattr(&self, uid: u32, ino: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        match Namespace::of(name.as_bytes()) {
            None => return Err(FsError::NoAttribute),
            Some(Namespace::Trusted) if uid != 0 => return Err(FsError::NotPermitted),
            Some(Namespace::Acl) if !self.acls_enabled() => return Err(FsError::Unsupported),
            _ => {}
        }
        let node = self.node(ino)?;
        self.remove_stored_xattr(&node, name.as_bytes())
    }

    /// Removes attribute `name` of `node` (no permission check).
    pub(crate) fn remove_stored_xattr(&self, node: &NodeRef, name: &[u8]) -> FsResult<()> {
        let bname = self.xattrs.backing_name(name)?;
        rustix::fs::lremovexattr(&node.backing, bname.as_str()).map_err(|e| {
            if e == rustix::io::Errno::NODATA {
                FsError::NoAttribute
            } else {
                e.into()
            }
        })
    }
}

/// The file id in the header of the backing regular file `backing`; a
/// missing or malformed header is tampering (EIO).
pub(crate) fn read_file_id(backing: &Path, path: &str) -> FsResult<[u8; FILE_ID_LEN]> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(backing)?;
    let mut hdr = [0u8; HEADER_LEN];
    match file.read_exact_at(&mut hdr, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            log::warn!("{path}: file header truncated");
            return Err(FsError::tampered(path, "file header truncated"));
        }
        Err(e) => return Err(e.into()),
    }
    // A new file whose key is still being wrapped has its id already.
    let file_id = crate::format::header::file_id_of(&hdr).map_err(|e| {
        log::warn!("{path}: bad file header: {e}");
        FsError::tampered(path, e.to_string())
    })?;
    Ok(*file_id.as_bytes())
}

fn read_xattr(path: &std::path::Path, name: &str) -> FsResult<Vec<u8>> {
    read_growing(256, |b| rustix::fs::lgetxattr(path, name, b)).map_err(|e| match e {
        FsError::Io(io) if io.raw_os_error() == Some(libc::ENODATA) => FsError::NoAttribute,
        e => e,
    })
}

/// Calls a size-returning xattr syscall with a buffer that starts at
/// `initial` bytes and grows while the call reports ERANGE (the attribute
/// may grow between the size query and the read).
fn read_growing(
    initial: usize,
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> FsResult<Vec<u8>> {
    let mut buf = vec![0u8; initial];
    loop {
        match call(&mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = call(&mut [])?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_growing_retries_on_erange() {
        let value: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut calls = 0;
        let got = read_growing(16, |b| {
            calls += 1;
            if b.is_empty() {
                return Ok(value.len());
            }
            if b.len() < value.len() {
                return Err(rustix::io::Errno::RANGE);
            }
            b[..value.len()].copy_from_slice(&value);
            Ok(value.len())
        })
        .unwrap();
        assert_eq!(got, value);
        assert_eq!(calls, 3);
        let err = read_growing(16, |_| Err(rustix::io::Errno::NODATA)).unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::NO_XATTR);
        let err = read_xattr(std::path::Path::new("/nonexistent-kmsfs"), "user.x").unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::ENOENT);
    }

    fn cipher() -> XattrCipher {
        XattrCipher::new(&[7u8; 32]).unwrap()
    }

    const FILE_A: XattrObject = XattrObject::File([1; 16]);
    const FILE_B: XattrObject = XattrObject::File([2; 16]);
    const DIR_A: XattrObject = XattrObject::Dir([1; 16]);

    #[test]
    fn value_aad_layout_is_pinned() {
        let aad = value_aad(&XattrObject::Dir([0xab; 16]), "user.kmsfs.X");
        let mut want = b"kmsfs-xattr-v2".to_vec();
        want.push(0x02);
        want.extend_from_slice(&[0xab; 16]);
        want.extend_from_slice(b"user.kmsfs.X");
        assert_eq!(aad, want);
        assert_eq!(value_aad(&FILE_A, "")[14], 0x01);
    }

    #[test]
    fn value_known_answer() {
        let c = cipher();
        let bname = c.backing_name(b"user.a").unwrap();
        let sealed = c
            .seal_value_with_nonce(&FILE_A, &bname, b"blue", &[9; NONCE_LEN])
            .unwrap();
        assert_eq!(sealed.len(), 4 + VALUE_OVERHEAD);
        assert_eq!(
            (bname.as_str(), hex(&sealed).as_str()),
            (KAT_NAME, KAT_VALUE),
            "the xattr format changed: bump VALUE_VERSION and docs/file-format.md"
        );
    }

    // Cross-checked against an independent implementation of this section of
    // docs/file-format.md (Python `cryptography`: HKDF-SHA256, AESGCMSIV).
    const KAT_NAME: &str = "user.kmsfs.H6tiBiwffwchmP9c71frN6o";
    const KAT_VALUE: &str = "020909090909090909090909092df6f4376314803f4f500a6e4d08540a74a41002";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn value_round_trips_and_is_bound_to_object_kind_and_name() {
        let c = cipher();
        let bname = c.backing_name(b"user.a").unwrap();
        let other = c.backing_name(b"user.b").unwrap();
        let sealed = c.seal_value(&FILE_A, &bname, b"blue").unwrap();
        assert_eq!(
            c.open_value(&FILE_A, &bname, &sealed, "/x").unwrap(),
            b"blue"
        );
        for (obj, name) in [(&FILE_B, &bname), (&DIR_A, &bname), (&FILE_A, &other)] {
            let e = c.open_value(obj, name, &sealed, "/x").unwrap_err();
            assert!(matches!(e, FsError::Tampered { .. }), "{e}");
            assert_eq!(e.errno(), fuser::Errno::EIO);
        }
    }

    #[test]
    fn fail_flipped_truncated_and_old_format_values() {
        let c = cipher();
        let bname = c.backing_name(b"user.a").unwrap();
        let sealed = c.seal_value(&DIR_A, &bname, b"value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                c.open_value(&DIR_A, &bname, &bad, "/d").is_err(),
                "byte {i}"
            );
        }
        assert!(
            c.open_value(&DIR_A, &bname, &sealed[..VALUE_OVERHEAD - 1], "/d")
                .is_err()
        );
        // Version 1: nonce || ct || tag with no version byte.
        assert!(c.open_value(&DIR_A, &bname, &sealed[1..], "/d").is_err());
        let mut v3 = sealed.clone();
        v3[0] = 3;
        assert!(c.open_value(&DIR_A, &bname, &v3, "/d").is_err());
    }

    #[test]
    fn fail_file_id_of_truncated_or_garbage_header() {
        let d = tempfile::tempdir().unwrap();
        let short = d.path().join("short");
        std::fs::write(&short, [0u8; 10]).unwrap();
        let e = read_file_id(&short, "/short").unwrap_err();
        assert_eq!(e.errno(), fuser::Errno::EIO);
        let junk = d.path().join("junk");
        std::fs::write(&junk, [0x5au8; HEADER_LEN]).unwrap();
        let e = read_file_id(&junk, "/junk").unwrap_err();
        assert_eq!(e.errno(), fuser::Errno::EIO);
    }
}
