//! The fixed-size header at the start of every regular backing file: magic,
//! format version, flags, the file id and the wrapped data key.
//!
//! ```text
//! offset len  field
//!      0   4  magic "KMSF"
//!      4   2  format version, u16 BE (2; 1 is still read)
//!      6   2  flags, u16 BE (0; any other value is refused)
//!      8  16  file id (random)
//!     24   2  wrapped DEK length n, u16 BE (1..=102)
//!     26   n  wrapped DEK (the key service's ciphertext blob)
//!   26+n   .  zero padding up to 128 bytes (nonzero padding is refused)
//! ```
//!
//! A file whose data key is still being wrapped by the key service
//! ([`crate::keys::wrap`]) has the *key-pending* header: flags
//! [`FLAG_KEY_PENDING`], wrapped length 0, no wrapped key. It is replaced by
//! the final header once the service answered; found on disk later (the
//! mount stopped first), it decodes as [`HeaderError::KeyPending`]: the
//! content can never be decrypted.

use crate::crypto::{self, CryptoError};

/// Size of the header in bytes; content block 0 starts right after it.
pub const HEADER_LEN: usize = 128;
/// The four magic bytes at offset 0.
pub const HEADER_MAGIC: [u8; 4] = *b"KMSF";
/// The header (and content) format version written by this code for new
/// files: version 2, whose content blocks carry an end mark (see
/// `crate::content::BlockMark`).
pub const HEADER_FORMAT_VERSION: u16 = 2;
/// The first format version: no end mark, no holes. Still read and written
/// in place; a file converts to the current version when it is truncated to
/// zero bytes.
pub const HEADER_FORMAT_V1: u16 = 1;
/// Offset of the format version in the header.
pub const VERSION_OFFSET: u64 = 4;
/// Length of a file id.
pub const FILE_ID_LEN: usize = 16;
/// Offset of the wrapped data key in the header.
const WRAPPED_OFFSET: usize = 26;
/// The longest wrapped data key that fits into the header.
pub const MAX_WRAPPED_DEK_LEN: usize = HEADER_LEN - WRAPPED_OFFSET;
/// Header flag of a file whose data key is not wrapped yet (with wrapped
/// length 0); the only flag there is.
pub const FLAG_KEY_PENDING: u16 = 0x0001;

/// A file's random 16-byte identity, bound into every content block's
/// associated data so that blocks cannot move between files.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FileId(pub [u8; FILE_ID_LEN]);

impl FileId {
    /// A fresh random file id.
    pub fn random() -> Result<Self, CryptoError> {
        Ok(Self(crypto::random_array()?))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; FILE_ID_LEN] {
        &self.0
    }
}

/// Why a header could not be decoded or encoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes (the backing file is truncated).
    #[error("file header truncated: {len} of {HEADER_LEN} bytes")]
    Truncated { len: usize },
    /// The first four bytes are not "KMSF".
    #[error("not a kmsfs file: bad header magic")]
    BadMagic,
    /// A header version this code does not know.
    #[error(
        "unsupported file header version {found} (this build supports {HEADER_FORMAT_V1} and \
         {HEADER_FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u16 },
    /// The flags field is not zero.
    #[error("unknown file header flags {flags:#06x}")]
    UnknownFlags { flags: u16 },
    /// The wrapped data key is empty or longer than [`MAX_WRAPPED_DEK_LEN`].
    #[error("wrapped data key length {len} out of range 1..={MAX_WRAPPED_DEK_LEN}")]
    WrappedKeyLength { len: usize },
    /// The padding after the wrapped key is not all zero.
    #[error("file header padding is not zero")]
    NonZeroPadding,
    /// The key-pending header: the mount that created the file stopped
    /// before the key service wrapped its data key, so nothing can decrypt
    /// its content.
    #[error(
        "the file's data key was never wrapped (the mount that created it stopped before the \
         key service answered): its content cannot be decrypted"
    )]
    KeyPending,
}

/// A decoded file header.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FileHeader {
    /// Header format version: [`HEADER_FORMAT_V1`] or [`HEADER_FORMAT_VERSION`].
    pub version: u16,
    /// The file's id.
    pub file_id: FileId,
    /// The data key as wrapped by the key service (not secret by itself).
    pub wrapped_dek: Vec<u8>,
}

impl FileHeader {
    /// A current-version header for `file_id` and `wrapped_dek`; checks the
    /// wrapped key fits.
    pub fn new(file_id: FileId, wrapped_dek: Vec<u8>) -> Result<Self, HeaderError> {
        check_wrapped_len(wrapped_dek.len())?;
        Ok(Self {
            version: HEADER_FORMAT_VERSION,
            file_id,
            wrapped_dek,
        })
    }

    /// The same header (same version and file id) with another wrapped
    /// data key: what a rename writes.
    pub fn rewrapped(&self, wrapped_dek: Vec<u8>) -> Result<Self, HeaderError> {
        check_wrapped_len(wrapped_dek.len())?;
        Ok(Self {
            version: self.version,
            file_id: self.file_id,
            wrapped_dek,
        })
    }

    /// Encodes the header into exactly [`HEADER_LEN`] bytes.
    pub fn encode(&self) -> Result<[u8; HEADER_LEN], HeaderError> {
        let len = self.wrapped_dek.len();
        check_wrapped_len(len)?;
        if !is_known_version(self.version) {
            return Err(HeaderError::UnsupportedVersion {
                found: self.version,
            });
        }
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&HEADER_MAGIC);
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        // out[6..8]: flags, zero.
        out[8..24].copy_from_slice(&self.file_id.0);
        // `len` <= MAX_WRAPPED_DEK_LEN (102), so it fits in a u16.
        out[24..26].copy_from_slice(&(len as u16).to_be_bytes());
        out[WRAPPED_OFFSET..WRAPPED_OFFSET + len].copy_from_slice(&self.wrapped_dek);
        Ok(out)
    }

    /// Decodes the first [`HEADER_LEN`] bytes of `bytes` (more bytes, such
    /// as the start of content, are ignored). Strict: wrong magic, unknown
    /// version, nonzero flags, a wrapped key that does not fit or nonzero
    /// padding are all refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let Some(b) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderError::Truncated { len: bytes.len() });
        };
        if b[0..4] != HEADER_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16::from_be_bytes([b[4], b[5]]);
        if !is_known_version(version) {
            return Err(HeaderError::UnsupportedVersion { found: version });
        }
        let flags = u16::from_be_bytes([b[6], b[7]]);
        let len = usize::from(u16::from_be_bytes([b[24], b[25]]));
        if flags == FLAG_KEY_PENDING && len == 0 {
            if b[WRAPPED_OFFSET..].iter().any(|x| *x != 0) {
                return Err(HeaderError::NonZeroPadding);
            }
            return Err(HeaderError::KeyPending);
        }
        if flags != 0 {
            return Err(HeaderError::UnknownFlags { flags });
        }
        let mut id = [0u8; FILE_ID_LEN];
        id.copy_from_slice(&b[8..24]);
        check_wrapped_len(len)?;
        let end = WRAPPED_OFFSET + len;
        if b[end..].iter().any(|x| *x != 0) {
            return Err(HeaderError::NonZeroPadding);
        }
        Ok(Self {
            version,
            file_id: FileId(id),
            wrapped_dek: b[WRAPPED_OFFSET..end].to_vec(),
        })
    }
}

/// The key-pending header of a new file (see the module documentation):
/// the current version, `file_id`, [`FLAG_KEY_PENDING`], no wrapped key.
pub fn key_pending_header(file_id: FileId) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..4].copy_from_slice(&HEADER_MAGIC);
    out[4..6].copy_from_slice(&HEADER_FORMAT_VERSION.to_be_bytes());
    out[6..8].copy_from_slice(&FLAG_KEY_PENDING.to_be_bytes());
    out[8..24].copy_from_slice(&file_id.0);
    out
}

/// The file id of a header that decodes, or of a key-pending one (whose
/// file already has an identity, for its extended attributes).
pub fn file_id_of(bytes: &[u8]) -> Result<FileId, HeaderError> {
    match FileHeader::decode(bytes) {
        Ok(h) => Ok(h.file_id),
        Err(HeaderError::KeyPending) => {
            let mut id = [0u8; FILE_ID_LEN];
            id.copy_from_slice(&bytes[8..24]);
            Ok(FileId(id))
        }
        Err(e) => Err(e),
    }
}

fn is_known_version(v: u16) -> bool {
    v == HEADER_FORMAT_V1 || v == HEADER_FORMAT_VERSION
}

fn check_wrapped_len(len: usize) -> Result<(), HeaderError> {
    if len == 0 || len > MAX_WRAPPED_DEK_LEN {
        return Err(HeaderError::WrappedKeyLength { len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FileHeader {
        FileHeader::new(FileId([0x11; 16]), vec![0xAB, 0xCD, 0xEF]).unwrap()
    }

    /// Pins the header layout: any change here is an on-disk format change.
    #[test]
    fn known_answer_header() {
        let bytes = sample().encode().unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"KMSF");
        expected.extend_from_slice(&[0x00, 0x02, 0x00, 0x00]);
        expected.extend_from_slice(&[0x11; 16]);
        expected.extend_from_slice(&[0x00, 0x03, 0xAB, 0xCD, 0xEF]);
        expected.resize(HEADER_LEN, 0);
        assert_eq!(bytes.to_vec(), expected);
        assert_eq!(FileHeader::decode(&bytes).unwrap(), sample());
    }

    /// Version 1 headers still decode, re-encode byte for byte, and keep
    /// their version through a re-wrap (a rename of an old file).
    #[test]
    fn version_1_still_decodes() {
        let mut bytes = sample().encode().unwrap();
        bytes[5] = 1;
        let h = FileHeader::decode(&bytes).unwrap();
        assert_eq!(h.version, HEADER_FORMAT_V1);
        assert_eq!(h.encode().unwrap(), bytes);
        let r = h.rewrapped(vec![1, 2]).unwrap();
        assert_eq!(r.version, HEADER_FORMAT_V1);
        assert_eq!(r.file_id, h.file_id);
        assert_eq!(r.wrapped_dek, vec![1, 2]);
    }

    #[test]
    fn decode_ignores_trailing_content() {
        let mut bytes = sample().encode().unwrap().to_vec();
        bytes.extend_from_slice(&[9; 50]);
        assert_eq!(FileHeader::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn fail_truncated() {
        let bytes = sample().encode().unwrap();
        assert_eq!(
            FileHeader::decode(&bytes[..127]),
            Err(HeaderError::Truncated { len: 127 })
        );
        assert_eq!(
            FileHeader::decode(&[]),
            Err(HeaderError::Truncated { len: 0 })
        );
    }

    #[test]
    fn fail_bad_magic() {
        let mut bytes = sample().encode().unwrap();
        bytes[0] = b'k';
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::BadMagic));
    }

    #[test]
    fn fail_unknown_version() {
        let mut bytes = sample().encode().unwrap();
        bytes[5] = 3;
        assert_eq!(
            FileHeader::decode(&bytes),
            Err(HeaderError::UnsupportedVersion { found: 3 })
        );
        bytes[5] = 0;
        assert_eq!(
            FileHeader::decode(&bytes),
            Err(HeaderError::UnsupportedVersion { found: 0 })
        );
    }

    #[test]
    fn fail_flags() {
        let mut bytes = sample().encode().unwrap();
        bytes[7] = 1;
        assert_eq!(
            FileHeader::decode(&bytes),
            Err(HeaderError::UnknownFlags { flags: 1 })
        );
    }

    /// Pins the key-pending header; it never decodes as a usable header,
    /// its file id is still read, and any other bit set is refused.
    #[test]
    fn key_pending_header_known_answer() {
        let bytes = key_pending_header(FileId([0x22; 16]));
        let mut expected = Vec::new();
        expected.extend_from_slice(b"KMSF");
        expected.extend_from_slice(&[0x00, 0x02, 0x00, 0x01]);
        expected.extend_from_slice(&[0x22; 16]);
        expected.resize(HEADER_LEN, 0);
        assert_eq!(bytes.to_vec(), expected);
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::KeyPending));
        assert_eq!(file_id_of(&bytes), Ok(FileId([0x22; 16])));
        let mut padded = bytes;
        padded[127] = 1;
        assert_eq!(
            FileHeader::decode(&padded),
            Err(HeaderError::NonZeroPadding)
        );
        let mut other_flag = bytes;
        other_flag[7] = 3;
        assert_eq!(
            FileHeader::decode(&other_flag),
            Err(HeaderError::UnknownFlags { flags: 3 })
        );
        assert_eq!(
            file_id_of(&other_flag[..]),
            Err(HeaderError::UnknownFlags { flags: 3 })
        );
    }

    #[test]
    fn fail_wrapped_len() {
        let mut bytes = sample().encode().unwrap();
        bytes[24..26].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            FileHeader::decode(&bytes),
            Err(HeaderError::WrappedKeyLength { len: 0 })
        );
        bytes[24..26].copy_from_slice(&103u16.to_be_bytes());
        assert_eq!(
            FileHeader::decode(&bytes),
            Err(HeaderError::WrappedKeyLength { len: 103 })
        );
        assert_eq!(
            FileHeader::new(FileId([0; 16]), vec![1; 103]),
            Err(HeaderError::WrappedKeyLength { len: 103 })
        );
        assert!(FileHeader::new(FileId([0; 16]), vec![1; MAX_WRAPPED_DEK_LEN]).is_ok());
    }

    #[test]
    fn fail_nonzero_padding() {
        let mut bytes = sample().encode().unwrap();
        bytes[HEADER_LEN - 1] = 1;
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NonZeroPadding));
        let mut bytes = sample().encode().unwrap();
        bytes[WRAPPED_OFFSET + 3] = 1;
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NonZeroPadding));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(FileId::random().unwrap(), FileId::random().unwrap());
    }

    proptest! {
        #[test]
        fn round_trip(id in any::<[u8; 16]>(), wrapped in proptest::collection::vec(any::<u8>(), 1..=MAX_WRAPPED_DEK_LEN)) {
            let h = FileHeader::new(FileId(id), wrapped).unwrap();
            let bytes = h.encode().unwrap();
            prop_assert_eq!(FileHeader::decode(&bytes).unwrap(), h);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(h) = FileHeader::decode(&bytes) {
                prop_assert_eq!(&h.encode().unwrap()[..], &bytes[..HEADER_LEN]);
            }
        }
    }
}
