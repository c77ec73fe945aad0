//! File-name handling: encryption of path components and symlink targets
//! with the volume names key, the per-directory IV, long names, and the
//! reserved `kmsfs.*` backing names that are never shown to users.
//!
//! Names are bytes (`&[u8]`, from `OsStr::as_bytes`), never assumed UTF-8.

mod cipher;
mod longname;
mod transform;

pub use cipher::{MAX_SYMLINK_TARGET_LEN, NamesCipher};
pub use longname::{
    BackingKind, LONG_LINK_PREFIX, LONG_NAME_MAX, LONG_NAME_PREFIX, LONG_NAME_SUFFIX,
    MAX_INLINE_LINK_LEN, MAX_LONG_LINK_FILE_LEN, MAX_SHORT_PLAIN_NAME_LEN, MAX_SIDE_FILE_LEN,
    classify_backing_name, is_long, is_long_link_name, long_backing_name, long_link_name,
    side_file_name,
};
pub use transform::{BackingName, NameTransform};

use crate::crypto::{self, CryptoError};

/// Every backing name starting with this prefix belongs to kmsfs.
pub const RESERVED_PREFIX: &[u8] = b"kmsfs.";
/// The per-directory IV file, present in every backing directory (root included).
pub const DIRIV_FILE_NAME: &str = "kmsfs.diriv";
/// The volume config file in the cipher directory root.
pub const CONFIG_FILE_NAME: &str = crate::format::CONFIG_FILE_NAME;
/// The rename journal in the cipher directory root.
pub const JOURNAL_FILE_NAME: &str = "kmsfs.journal";
/// Longest plaintext name component (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Length of a directory IV.
pub const DIRIV_LEN: usize = 16;

/// Why a name could not be encrypted, decrypted or accepted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty, ".", "..", or containing '/' or NUL.
    #[error("invalid file name")]
    InvalidName,
    /// Longer than [`NAME_MAX`] bytes.
    #[error("file name of {len} bytes is longer than {NAME_MAX}")]
    NameTooLong { len: usize },
    /// A name starting with `kmsfs.` in plaintext-names mode (reserved for
    /// the filesystem's own files); the filesystem answers EPERM.
    #[error("names starting with \"kmsfs.\" are reserved")]
    Reserved,
    /// The backing name is not canonical unpadded base64url.
    #[error("backing name is not valid base64url")]
    NotBase64,
    /// The decoded backing name is too short to hold nonce, tag and a byte.
    #[error("backing name is too short")]
    TooShort,
    /// The backing name does not authenticate under this directory's IV
    /// (tampered, or moved from another directory).
    #[error("backing name failed authentication (tampered or from another directory)")]
    AuthFailed,
    /// A name too long for one backing name, or a hashed backing name, in
    /// a volume without the `long-names` feature flag.
    #[error("long names are off in this volume (no long-names feature flag)")]
    LongNamesOff,
    /// A long-name side file does not match the hashed backing name.
    #[error("long-name side file does not match its backing name")]
    LongNameMismatch,
    /// A `kmsfs.diriv` file that is not exactly 16 bytes.
    #[error("directory IV file has {len} bytes, expected {DIRIV_LEN}")]
    BadDirIv { len: usize },
    /// A symlink target that is empty or too long once encrypted.
    #[error("symlink target of {len} bytes is empty or too long")]
    SymlinkTargetLength { len: usize },
    /// The crypto backend failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// A directory's random 16-byte IV (contents of its `kmsfs.diriv` file),
/// the associated data of every name in that directory.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DirIv(pub [u8; DIRIV_LEN]);

impl DirIv {
    /// A fresh random IV for a new directory.
    pub fn random() -> Result<Self, CryptoError> {
        Ok(Self(crypto::random_array()?))
    }

    /// Parses the contents of a `kmsfs.diriv` file (exactly 16 bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, NameError> {
        <[u8; DIRIV_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| NameError::BadDirIv { len: bytes.len() })
    }

    /// The bytes to store in `kmsfs.diriv`.
    pub fn as_bytes(&self) -> &[u8; DIRIV_LEN] {
        &self.0
    }
}

/// Checks a plaintext name component: not empty, not "." or "..", no '/'
/// or NUL, at most [`NAME_MAX`] bytes.
pub fn validate_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.iter().any(|b| *b == b'/' || *b == 0)
    {
        return Err(NameError::InvalidName);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::NameTooLong { len: name.len() });
    }
    Ok(())
}

/// Whether a backing name belongs to kmsfs (starts with `kmsfs.`). Such
/// names are never listed to users as they are (long names are listed
/// after decoding; see [`classify_backing_name`]).
pub fn is_reserved(name: &[u8]) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert_eq!(validate_name(bad), Err(NameError::InvalidName), "{bad:?}");
        }
        assert_eq!(
            validate_name(&[b'a'; 256]),
            Err(NameError::NameTooLong { len: 256 })
        );
        for good in [&b"a"[..], b"...", b".hidden", &[0xff, 0xfe], &[b'x'; 255]] {
            assert_eq!(validate_name(good), Ok(()));
        }
    }

    #[test]
    fn dir_iv() {
        let iv = DirIv::random().unwrap();
        assert_eq!(DirIv::decode(iv.as_bytes()), Ok(iv));
        assert_ne!(DirIv::random().unwrap(), iv);
        assert_eq!(
            DirIv::decode(&[0; 15]),
            Err(NameError::BadDirIv { len: 15 })
        );
        assert_eq!(
            DirIv::decode(&[0; 17]),
            Err(NameError::BadDirIv { len: 17 })
        );
    }

    #[test]
    fn reserved() {
        assert!(is_reserved(b"kmsfs.conf"));
        assert!(is_reserved(DIRIV_FILE_NAME.as_bytes()));
        assert!(is_reserved(JOURNAL_FILE_NAME.as_bytes()));
        assert!(is_reserved(b"kmsfs."));
        assert!(!is_reserved(b"kmsfs"));
        assert!(!is_reserved(b"Kmsfs.conf"));
    }
}
