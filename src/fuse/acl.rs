//! POSIX ACLs in the kernel's xattr form (`system.posix_acl_access` and
//! `system.posix_acl_default`): parsing and encoding, and the three rules
//! a filesystem applies itself when FUSE_POSIX_ACL hands enforcement to the
//! kernel: an access ACL equivalent to a mode is only a mode, a chmod
//! rewrites the ACL's owner, mask (or group) and other entries, and a new
//! entry inherits its directory's default ACL masked by the create mode.
//! The same arithmetic as Linux's `fs/posix_acl.c`. ACLs are stored like
//! any other attribute (encrypted, see `xattr`), and only on
//! `--allow-other` mounts: FUSE_POSIX_ACL turns on the kernel's
//! `default_permissions`, which single-user mounts go without (see `perm`).

use super::Core;
use super::errno::{FsError, FsResult};
use super::inode::NodeRef;
use super::perm::Caller;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;

/// The xattr form's version field.
const VERSION: u32 = 2;
const HEADER_LEN: usize = 4;
const ENTRY_LEN: usize = 8;

/// Entry tags.
pub const USER_OBJ: u16 = 0x01;
pub const USER: u16 = 0x02;
pub const GROUP_OBJ: u16 = 0x04;
pub const GROUP: u16 = 0x08;
pub const MASK: u16 = 0x10;
pub const OTHER: u16 = 0x20;

/// The access ACL's attribute name.
pub const ACCESS: &[u8] = b"system.posix_acl_access";
/// A directory's default ACL's attribute name.
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

/// One ACL entry: tag, permission bits (rwx), id (for USER and GROUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// An ACL, its entries in the xattr's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl(pub Vec<Entry>);

impl Acl {
    /// Parses the xattr form; anything malformed is EINVAL.
    pub fn parse(value: &[u8]) -> FsResult<Acl> {
        if value.len() < HEADER_LEN || !(value.len() - HEADER_LEN).is_multiple_of(ENTRY_LEN) {
            return Err(FsError::InvalidArgument);
        }
        let (head, body) = value.split_at(HEADER_LEN);
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != VERSION {
            return Err(FsError::InvalidArgument);
        }
        let entries = body
            .chunks_exact(ENTRY_LEN)
            .map(|e| Entry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect::<Vec<_>>();
        let known = [USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER];
        if entries
            .iter()
            .any(|e| !known.contains(&e.tag) || e.perm & !7 != 0)
        {
            return Err(FsError::InvalidArgument);
        }
        Ok(Acl(entries))
    }

    /// The xattr form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + ENTRY_LEN * self.0.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            out.extend_from_slice(&e.tag.to_le_bytes());
            out.extend_from_slice(&e.perm.to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }

    /// The permission bits (0o777) the ACL gives the owner, the group
    /// class (the mask, else the owning group) and others, and whether the
    /// ACL says no more than that mode (`posix_acl_equiv_mode`).
    pub fn mode(&self) -> (u32, bool) {
        let mut mode = 0u32;
        let mut equiv = true;
        let mut group = 0u32;
        let mut mask = None;
        for e in &self.0 {
            let p = u32::from(e.perm & 7);
            match e.tag {
                USER_OBJ => mode |= p << 6,
                GROUP_OBJ => group = p,
                OTHER => mode |= p,
                MASK => {
                    mask = Some(p);
                    equiv = false;
                }
                _ => equiv = false,
            }
        }
        (mode | (mask.unwrap_or(group) << 3), equiv)
    }

    /// A chmod to `mode`: the owner, mask (or, without one, owning group)
    /// and other entries take the new bits (`posix_acl_chmod`).
    pub fn chmod(&mut self, mode: u32) {
        let has_mask = self.0.iter().any(|e| e.tag == MASK);
        for e in &mut self.0 {
            match e.tag {
                USER_OBJ => e.perm = ((mode >> 6) & 7) as u16,
                MASK => e.perm = ((mode >> 3) & 7) as u16,
                GROUP_OBJ if !has_mask => e.perm = ((mode >> 3) & 7) as u16,
                OTHER => e.perm = (mode & 7) as u16,
                _ => {}
            }
        }
    }

    /// A new entry created with `mode` under a directory whose default ACL
    /// is `self` (`posix_acl_create_masq`): the ACL's owner, mask (or
    /// group) and other entries are masked by the mode and the mode by
    /// them. Returns the new access ACL, its mode bits (0o777), and
    /// whether the ACL says more than the mode (then it is stored).
    pub fn create_masq(&self, mode: u32) -> (Acl, u32, bool) {
        let mut acl = self.clone();
        let mut mode = mode & 0o777;
        let mut not_equiv = false;
        let has_mask = acl.0.iter().any(|e| e.tag == MASK);
        for e in &mut acl.0 {
            let p = u32::from(e.perm);
            match e.tag {
                USER_OBJ => {
                    let p = p & (mode >> 6);
                    e.perm = p as u16;
                    mode &= (p << 6) | !0o700;
                }
                USER | GROUP => not_equiv = true,
                OTHER => {
                    let p = p & mode;
                    e.perm = p as u16;
                    mode &= p | !0o007;
                }
                MASK => {
                    not_equiv = true;
                    let p = p & (mode >> 3);
                    e.perm = p as u16;
                    mode &= (p << 3) | !0o070;
                }
                GROUP_OBJ if !has_mask => {
                    let p = p & (mode >> 3);
                    e.perm = p as u16;
                    mode &= (p << 3) | !0o070;
                }
                _ => {}
            }
        }
        (acl, mode & 0o777, not_equiv)
    }
}

/// The mode bits of a new entry and the ACLs it inherits from its
/// directory's default ACL.
#[derive(Debug)]
pub(crate) struct NewMode {
    /// Permission and special bits (0o7777).
    pub perm: u32,
    /// The access ACL to store, when it says more than `perm`.
    access: Option<Acl>,
    /// The default ACL a new directory inherits.
    default: Option<Acl>,
}

impl Core {
    /// POSIX ACLs are on: an `--allow-other` mount whose kernel accepted
    /// FUSE_POSIX_ACL (set by `mount::mount`, cleared by INIT otherwise).
    pub(crate) fn acls_enabled(&self) -> bool {
        self.posix_acl.load(Ordering::Acquire)
    }

    /// The mode of an entry of `dir` created with `mode` and `umask`: with
    /// ACLs on and a default ACL on `dir`, that ACL masked by the mode
    /// (the umask is not applied, as POSIX.1e says); otherwise the mode
    /// without the umask (with ACLs on the kernel leaves the umask to the
    /// filesystem: FUSE_DONT_MASK).
    pub(crate) fn new_mode(
        &self,
        dir: &NodeRef,
        mode: u32,
        umask: u32,
        is_dir: bool,
    ) -> FsResult<NewMode> {
        let plain = NewMode {
            perm: mode & !umask & 0o7777,
            access: None,
            default: None,
        };
        if !self.acls_enabled() {
            return Ok(plain);
        }
        let default = match self.load_xattr(dir, DEFAULT) {
            Ok(v) => Acl::parse(&v)?,
            Err(FsError::NoAttribute) => return Ok(plain),
            Err(e) => return Err(e),
        };
        let (access, bits, store) = default.create_masq(mode);
        Ok(NewMode {
            perm: (mode & 0o7000) | bits,
            access: store.then_some(access),
            default: is_dir.then_some(default),
        })
    }

    /// Stores the ACLs `new` says the created `node` inherits.
    pub(crate) fn inherit_acls(&self, node: &NodeRef, new: &NewMode) -> FsResult<()> {
        if let Some(acl) = &new.access {
            self.store_xattr(node, ACCESS, &acl.encode(), 0)?;
        }
        if let Some(acl) = &new.default {
            self.store_xattr(node, DEFAULT, &acl.encode(), 0)?;
        }
        Ok(())
    }

    /// setxattr of an ACL (the kernel checked ownership, the ACL's
    /// validity, and that a default ACL goes on a directory). An access
    /// ACL sets the mode's owner, group-class and other bits; one that says
    /// no more than those bits is not stored. As on Linux, the
    /// set-group-id bit goes when `caller` is neither root nor in the
    /// file's group (groups that cannot be read count as not in it).
    pub(crate) fn set_acl(
        &self,
        caller: &Caller,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        let node = self.node(ino)?;
        let acl = Acl::parse(value)?;
        let meta = std::fs::symlink_metadata(&node.backing)?;
        if meta.file_type().is_symlink() {
            return Err(FsError::Unsupported);
        }
        if name == DEFAULT {
            return self.store_xattr(&node, DEFAULT, value, flags);
        }
        let (bits, equiv) = acl.mode();
        if equiv {
            match self.remove_stored_xattr(&node, ACCESS) {
                Ok(()) | Err(FsError::NoAttribute) => {}
                Err(e) => return Err(e),
            }
        } else {
            self.store_xattr(&node, ACCESS, value, flags)?;
        }
        let mut mode = (meta.mode() & 0o7000) | bits;
        if caller.uid != 0 && caller.in_group(meta.gid()) != Some(true) {
            mode &= !0o2000;
        }
        rustix::fs::chmod(&node.backing, rustix::fs::Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// After a chmod of `node` to `mode`: its access ACL (if any) takes
    /// the new owner, mask and other bits. (An unlinked open file's ACL
    /// is out of reach of any new access and stays.)
    pub(crate) fn chmod_acl(&self, node: &NodeRef, mode: u32) -> FsResult<()> {
        if !self.acls_enabled() || !node.linked {
            return Ok(());
        }
        let mut acl = match self.load_xattr(node, ACCESS) {
            Ok(v) => Acl::parse(&v)?,
            Err(FsError::NoAttribute | FsError::Unsupported) => return Ok(()),
            Err(e) => return Err(e),
        };
        acl.chmod(mode);
        self.store_xattr(node, ACCESS, &acl.encode(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u16, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    fn named() -> Acl {
        Acl(vec![
            e(USER_OBJ, 7, u32::MAX),
            e(USER, 6, 1001),
            e(GROUP_OBJ, 5, u32::MAX),
            e(MASK, 7, u32::MAX),
            e(OTHER, 4, u32::MAX),
        ])
    }

    #[test]
    fn round_trips_and_refuses_malformed_values() {
        let acl = named();
        let bytes = acl.encode();
        assert_eq!(bytes.len(), 4 + 5 * 8);
        assert_eq!(&bytes[..6], &[2, 0, 0, 0, 1, 0]);
        assert_eq!(Acl::parse(&bytes).unwrap(), acl);
        for bad in [
            &bytes[..3],
            &bytes[..11],
            &[1, 0, 0, 0][..],
            &[2, 0, 0, 0, 0x40, 0, 7, 0, 0, 0, 0, 0][..],
            &[2, 0, 0, 0, 0x01, 0, 8, 0, 0, 0, 0, 0][..],
        ] {
            assert!(Acl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mode_chmod_and_create_follow_linux() {
        assert_eq!(named().mode(), (0o774, false));
        let minimal = Acl(vec![e(USER_OBJ, 6, 0), e(GROUP_OBJ, 4, 0), e(OTHER, 0, 0)]);
        assert_eq!(minimal.mode(), (0o640, true));
        let mut acl = named();
        acl.chmod(0o750);
        assert_eq!(acl.mode(), (0o750, false));
        // The named entry and the owning group are untouched; the mask is.
        assert_eq!(acl.0[1].perm, 6);
        assert_eq!(acl.0[2].perm, 5);
        assert_eq!(acl.0[3].perm, 5);
        // create 0666 under default u::rwx,u:1001:rw-,g::r-x,m::rwx,o::r--
        let (made, mode, store) = named().create_masq(0o666);
        assert_eq!((mode, store), (0o664, true));
        assert_eq!(made.mode(), (0o664, false));
        // A minimal default ACL only masks the mode (no ACL stored).
        let (_, mode, store) = minimal.create_masq(0o777);
        assert_eq!((mode, store), (0o640, false));
    }
}
