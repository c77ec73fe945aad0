//! Long names: an encoded name longer than [`LONG_NAME_MAX`] bytes is stored
//! under a hashed backing name, `kmsfs.longname.<base64url(sha256(encoded))>`,
//! with the full encoded name in the side file `<hashed name>.name`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::is_reserved;
use crate::crypto::{self, NONCE_LEN, TAG_LEN};

/// Encoded names longer than this many bytes become long names.
pub const LONG_NAME_MAX: usize = 175;
/// Prefix of a hashed long backing name.
pub const LONG_NAME_PREFIX: &str = "kmsfs.longname.";
/// Suffix of a long name's side file.
pub const LONG_NAME_SUFFIX: &str = ".name";
/// Length of base64url(sha256(..)) without padding.
const HASH_B64_LEN: usize = 43;
/// Prefix of a long-link target file, and of the backing symlink target
/// naming it: `kmsfs.longlink.<base64url(sha256(encoded target))>`.
pub const LONG_LINK_PREFIX: &str = "kmsfs.longlink.";
/// Longest encoded symlink target a backing symlink holds (PATH_MAX less
/// the NUL); longer ones go to a long-link target file.
pub const MAX_INLINE_LINK_LEN: usize = 4095;
/// Size of the encoding of the longest symlink target (5,498 bytes): a
/// longer long-link target file is tampering and is not read further.
pub const MAX_LONG_LINK_FILE_LEN: usize =
    b64_len(super::MAX_SYMLINK_TARGET_LEN + NONCE_LEN + TAG_LEN);

/// Length of unpadded base64 for `n` raw bytes.
const fn b64_len(n: usize) -> usize {
    (4 * n).div_ceil(3)
}

/// The longest plaintext name (bytes) whose encrypted form still fits in
/// [`LONG_NAME_MAX`] bytes: 103.
pub const MAX_SHORT_PLAIN_NAME_LEN: usize = {
    let mut n = 0;
    while b64_len(n + 1 + NONCE_LEN + TAG_LEN) <= LONG_NAME_MAX {
        n += 1;
    }
    n
};

/// The longest valid side-file content: the encoded form of a
/// [`NAME_MAX`](super::NAME_MAX)-byte name (378 bytes). A longer side file
/// is tampering and is not read further.
pub const MAX_SIDE_FILE_LEN: usize = b64_len(super::NAME_MAX + NONCE_LEN + TAG_LEN);

/// What a backing directory entry is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackingKind {
    /// An ordinary (encrypted or plaintext) name: decode it.
    Regular,
    /// A hashed long name: read its side file to decode it.
    LongName,
    /// A long name's side file: never listed.
    LongNameSide,
    /// Another `kmsfs.*` file (config, dir IV, journal ...): never listed.
    Reserved,
}

/// Whether an encoded name needs long-name handling.
pub fn is_long(encoded: &str) -> bool {
    encoded.len() > LONG_NAME_MAX
}

/// The hashed backing name of a long encoded name (58 bytes).
pub fn long_backing_name(encoded: &str) -> String {
    let digest = crypto::sha256(encoded.as_bytes());
    let mut out = String::with_capacity(LONG_NAME_PREFIX.len() + HASH_B64_LEN);
    out.push_str(LONG_NAME_PREFIX);
    URL_SAFE_NO_PAD.encode_string(digest, &mut out);
    out
}

/// The name of the long-link target file holding the encoded symlink
/// target `encoded` (58 bytes); the backing symlink's target is this name.
pub fn long_link_name(encoded: &str) -> String {
    let digest = crypto::sha256(encoded.as_bytes());
    let mut out = String::with_capacity(LONG_LINK_PREFIX.len() + HASH_B64_LEN);
    out.push_str(LONG_LINK_PREFIX);
    URL_SAFE_NO_PAD.encode_string(digest, &mut out);
    out
}

/// Whether a backing symlink's target (or a backing entry) names a
/// long-link target file. An inline encoded target never does: base64url
/// has no `.`.
pub fn is_long_link_name(name: &[u8]) -> bool {
    name.strip_prefix(LONG_LINK_PREFIX.as_bytes())
        .is_some_and(is_hash)
}

/// The side-file name of a hashed long backing name (63 bytes).
pub fn side_file_name(long_backing: &str) -> String {
    format!("{long_backing}{LONG_NAME_SUFFIX}")
}

fn is_hash(b: &[u8]) -> bool {
    b.len() == HASH_B64_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// Classifies a backing directory entry name (see [`BackingKind`]).
pub fn classify_backing_name(name: &[u8]) -> BackingKind {
    if !is_reserved(name) {
        return BackingKind::Regular;
    }
    let Some(rest) = name.strip_prefix(LONG_NAME_PREFIX.as_bytes()) else {
        return BackingKind::Reserved;
    };
    if is_hash(rest) {
        return BackingKind::LongName;
    }
    match rest.strip_suffix(LONG_NAME_SUFFIX.as_bytes()) {
        Some(h) if is_hash(h) => BackingKind::LongNameSide,
        _ => BackingKind::Reserved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_name_limit() {
        assert_eq!(MAX_SHORT_PLAIN_NAME_LEN, 103);
        assert_eq!(b64_len(103 + 28), 175);
        assert_eq!(b64_len(104 + 28), 176);
        assert_eq!(MAX_SIDE_FILE_LEN, 378);
    }

    #[test]
    fn long_names() {
        let enc = "A".repeat(176);
        assert!(is_long(&enc));
        assert!(!is_long(&enc[..175]));
        let long = long_backing_name(&enc);
        assert_eq!(long.len(), 58);
        assert!(long.starts_with("kmsfs.longname."));
        assert_eq!(long, long_backing_name(&enc));
        assert_ne!(long, long_backing_name(&enc[..176 - 1]));
        let side = side_file_name(&long);
        assert_eq!(side.len(), 63);
        assert_eq!(
            classify_backing_name(long.as_bytes()),
            BackingKind::LongName
        );
        assert_eq!(
            classify_backing_name(side.as_bytes()),
            BackingKind::LongNameSide
        );
        // sha256("") in base64url pins the hash encoding.
        assert_eq!(
            long_backing_name(""),
            "kmsfs.longname.47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn long_links() {
        assert_eq!(MAX_LONG_LINK_FILE_LEN, 5498);
        let name = long_link_name("abc");
        assert_eq!(name.len(), 58);
        assert!(is_long_link_name(name.as_bytes()));
        assert!(!is_long_link_name(b"kmsfs.longlink."));
        assert!(!is_long_link_name(b"kmsfs.longlink.../../etc/passwd"));
        assert!(!is_long_link_name(b"abc"));
        // Never listed, and cleared with an empty directory.
        assert_eq!(
            classify_backing_name(name.as_bytes()),
            BackingKind::Reserved
        );
    }

    #[test]
    fn classify() {
        assert_eq!(classify_backing_name(b"abc"), BackingKind::Regular);
        assert_eq!(classify_backing_name(b"kmsfs"), BackingKind::Regular);
        assert_eq!(classify_backing_name(b"kmsfs.conf"), BackingKind::Reserved);
        assert_eq!(classify_backing_name(b"kmsfs.diriv"), BackingKind::Reserved);
        assert_eq!(
            classify_backing_name(b"kmsfs.journal"),
            BackingKind::Reserved
        );
        assert_eq!(
            classify_backing_name(b"kmsfs.longname."),
            BackingKind::Reserved
        );
        assert_eq!(
            classify_backing_name(b"kmsfs.longname.abc"),
            BackingKind::Reserved
        );
        assert_eq!(
            classify_backing_name(b"kmsfs.longname.abc.name"),
            BackingKind::Reserved
        );
    }
}
