//! Extended attributes: only the `user.` namespace, each attribute stored
//! as a backing xattr with an encrypted name (deterministic) and an
//! encrypted value bound to that name. Byte formats and key derivation:
//! `docs/file-format.md`, section "Extended attributes".

use super::Core;
use super::errno::{FsError, FsResult};
use crate::crypto::{NONCE_LEN, SivKey, TAG_LEN, derive_key, random_array};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

const USER_PREFIX: &[u8] = b"user.";
const BACKING_PREFIX: &str = "user.kmsfs.";
/// Linux limit on an xattr name.
const XATTR_NAME_MAX: usize = 255;

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

    /// The backing name of user attribute `name` (which includes `user.`).
    fn backing_name(&self, name: &[u8]) -> FsResult<String> {
        let Some(rest) = name.strip_prefix(USER_PREFIX) else {
            return Err(FsError::Unsupported);
        };
        if rest.is_empty() {
            return Err(FsError::InvalidArgument);
        }
        let mut ct = rest.to_vec();
        let tag = self
            .name_key
            .seal_in_place(&[0; NONCE_LEN], b"xattr-name", &mut ct)
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
        self.name_key
            .open_out_of_place(&[0; NONCE_LEN], b"xattr-name", ct, tag, &mut out)
            .ok()?;
        let mut name = USER_PREFIX.to_vec();
        name.extend_from_slice(&out);
        Some(name)
    }

    fn seal_value(&self, backing_name: &str, value: &[u8]) -> FsResult<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = random_array().map_err(FsError::internal)?;
        let mut out = nonce.to_vec();
        let mut ct = value.to_vec();
        let tag = self
            .value_key
            .seal_in_place(&nonce, backing_name.as_bytes(), &mut ct)
            .map_err(FsError::internal)?;
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn open_value(&self, backing_name: &str, stored: &[u8], path: &str) -> FsResult<Vec<u8>> {
        if stored.len() < NONCE_LEN + TAG_LEN {
            log::warn!("{path}: xattr value truncated");
            return Err(FsError::tampered(path, "xattr value truncated"));
        }
        let (nonce, rest) = stored.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut nonce_arr = [0u8; NONCE_LEN];
        nonce_arr.copy_from_slice(nonce);
        let mut out = vec![0u8; ct.len()];
        self.value_key
            .open_out_of_place(&nonce_arr, backing_name.as_bytes(), ct, tag, &mut out)
            .map_err(|_| {
                log::warn!("{path}: xattr value failed authentication");
                FsError::tampered(path, "xattr value failed authentication")
            })?;
        Ok(out)
    }
}

impl Core {
    pub(crate) fn setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        self.check_writable()?;
        let node = self.node(ino)?;
        let bname = self.xattrs.backing_name(name.as_bytes())?;
        let sealed = self.xattrs.seal_value(&bname, value)?;
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

    pub(crate) fn getxattr(&self, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        let node = self.node(ino)?;
        let bname = match self.xattrs.backing_name(name.as_bytes()) {
            Ok(n) => n,
            Err(FsError::Unsupported) => return Err(FsError::NoAttribute),
            Err(e) => return Err(e),
        };
        let stored = read_xattr(&node.backing, &bname)?;
        self.xattrs
            .open_value(&bname, &stored, &node.plain.display())
    }

    pub(crate) fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let node = self.node(ino)?;
        let buf = read_growing(4096, |b| rustix::fs::llistxattr(&node.backing, b))?;
        let mut out = Vec::new();
        for raw in buf.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            if let Some(name) = self.xattrs.plain_name(raw) {
                out.extend_from_slice(&name);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub(crate) fn removexattr(&self, ino: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let node = self.node(ino)?;
        let bname = match self.xattrs.backing_name(name.as_bytes()) {
            Ok(n) => n,
            Err(FsError::Unsupported) => return Err(FsError::NoAttribute),
            Err(e) => return Err(e),
        };
        rustix::fs::lremovexattr(&node.backing, bname.as_str())?;
        Ok(())
    }
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
}
