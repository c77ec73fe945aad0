//! The filesystem's error type and the one place that maps errors to errno.

use crate::names::NameError;
use fuser::Errno;
use kms_engine::KmsError;
use std::io;
use thiserror::Error;

/// Everything a filesystem operation can fail with.
#[derive(Debug, Error)]
pub enum FsError {
    /// A system call on the backing directory failed.
    #[error("backing I/O: {0}")]
    Io(#[from] io::Error),
    /// The key service refused or failed.
    #[error("key service: {0}")]
    Kms(#[from] KmsError),
    /// Ciphertext, a header or a name failed authentication or is malformed.
    #[error("{path}: tampered or corrupted ({what})")]
    Tampered { path: String, what: String },
    #[error("no such inode or handle")]
    Stale,
    #[error("no such entry")]
    NotFound,
    #[error("entry exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    /// The name is reserved for kmsfs's own files, or empty, or contains '/'.
    #[error("invalid or reserved name")]
    InvalidName,
    #[error("name too long")]
    NameTooLong,
    /// Hard links: one data key cannot be bound to two paths.
    #[error("hard links are refused: a data key is bound to one path")]
    HardLinkRefused,
    /// Only root may do this (the `trusted.` xattr namespace).
    #[error("operation not permitted")]
    NotPermitted,
    /// POSIX file permissions refuse the caller this access.
    #[error("permission denied")]
    Denied,
    /// The volume is mounted read-only.
    #[error("read-only volume")]
    ReadOnly,
    /// An argument the filesystem does not accept (offsets, flags, modes).
    #[error("invalid argument")]
    InvalidArgument,
    /// A rename of a directory into its own subtree.
    #[error("cannot move a directory into itself")]
    IntoItself,
    #[error("operation not supported")]
    Unsupported,
    /// The xattr does not exist.
    #[error("no such attribute")]
    NoAttribute,
    /// Caller's buffer is too small.
    #[error("result does not fit the caller's buffer")]
    Range,
    #[error("file too large")]
    TooBig,
    /// `lseek(SEEK_DATA | SEEK_HOLE)` from a negative offset, at or past
    /// the end, or for data in a trailing hole.
    #[error("no data or hole at or after the offset")]
    NoSuchOffset,
    /// A name the name transform refuses or cannot decrypt.
    #[error("name: {0}")]
    Name(#[from] NameError),
}

impl FsError {
    pub fn tampered(path: impl Into<String>, what: impl Into<String>) -> Self {
        FsError::Tampered {
            path: path.into(),
            what: what.into(),
        }
    }

    /// A failure inside kmsfs itself (random source, cipher setup, an
    /// encoding that cannot fail on valid input): EIO.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        FsError::Io(io::Error::other(e))
    }

    /// The errno for this error.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::Io(e) => match e.raw_os_error() {
                Some(n) => Errno::from_i32(n),
                None => Errno::EIO,
            },
            FsError::Kms(e) => kms_errno(e),
            FsError::Tampered { .. } => Errno::EIO,
            FsError::Stale => Errno::ESTALE,
            FsError::NotFound => Errno::ENOENT,
            FsError::Exists => Errno::EEXIST,
            FsError::NotEmpty => Errno::ENOTEMPTY,
            FsError::NotDir => Errno::ENOTDIR,
            FsError::IsDir => Errno::EISDIR,
            FsError::InvalidName => Errno::EINVAL,
            FsError::NameTooLong => Errno::ENAMETOOLONG,
            FsError::HardLinkRefused | FsError::NotPermitted => Errno::EPERM,
            FsError::ReadOnly => Errno::EROFS,
            FsError::Denied => Errno::EACCES,
            FsError::InvalidArgument | FsError::IntoItself => Errno::EINVAL,
            FsError::Unsupported => Errno::EOPNOTSUPP,
            FsError::NoAttribute => Errno::NO_XATTR,
            FsError::Range => Errno::ERANGE,
            FsError::TooBig => Errno::EFBIG,
            FsError::NoSuchOffset => Errno::ENXIO,
            FsError::Name(e) => match e {
                NameError::InvalidName => Errno::EINVAL,
                NameError::NameTooLong { .. } | NameError::LongNamesOff => Errno::ENAMETOOLONG,
                NameError::Reserved => Errno::EPERM,
                NameError::SymlinkTargetLength { len: 0 } => Errno::ENOENT,
                NameError::SymlinkTargetLength { .. } => Errno::ENAMETOOLONG,
                NameError::Crypto(_) => Errno::EIO,
                // Undecryptable or mismatching stored names: tampering.
                _ => Errno::EIO,
            },
        }
    }
}

/// Engine exceptions as errno: refusals are EACCES, a wrapped key that does
/// not open under this path's context is EIO (the file was moved or
/// tampered with), an unreachable engine is EIO. An engine whose own store
/// hit a full disk, a quota or a read-only filesystem passes that errno on,
/// so the application sees the condition it can act on.
fn kms_errno(e: &KmsError) -> Errno {
    match e {
        KmsError::Io {
            raw_os_error: Some(n),
            ..
        } if [libc::ENOSPC, libc::EDQUOT, libc::EROFS].contains(n) => Errno::from_i32(*n),
        KmsError::AccessDenied(_)
        | KmsError::Disabled(_)
        | KmsError::InvalidState(_)
        | KmsError::NotFound(_)
        | KmsError::InvalidKeyUsage(_)
        | KmsError::IncorrectKey(_) => Errno::EACCES,
        _ => Errno::EIO,
    }
}

impl From<rustix::io::Errno> for FsError {
    fn from(e: rustix::io::Errno) -> Self {
        FsError::Io(io::Error::from_raw_os_error(e.raw_os_error()))
    }
}

/// Shorthand for filesystem results.
pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        assert_eq!(FsError::tampered("/a", "tag").errno(), Errno::EIO);
        assert_eq!(FsError::HardLinkRefused.errno(), Errno::EPERM);
        assert_eq!(
            FsError::internal(crate::crypto::CryptoError::SealFailed).errno(),
            Errno::EIO
        );
        assert_eq!(
            FsError::Io(io::Error::from_raw_os_error(libc::ENOSPC)).errno(),
            Errno::ENOSPC
        );
        assert_eq!(
            FsError::Kms(KmsError::Disabled("k".into())).errno(),
            Errno::EACCES
        );
        assert_eq!(
            FsError::Kms(KmsError::InvalidCiphertext("x".into())).errno(),
            Errno::EIO
        );
    }

    /// A full disk, quota or read-only filesystem under the engine's store
    /// reaches the application as itself; other engine I/O errors are EIO.
    #[test]
    fn engine_store_io_errors_keep_their_errno() {
        let kms_io = |n| {
            FsError::Kms(KmsError::io(
                "writing the engine store",
                &io::Error::from_raw_os_error(n),
            ))
            .errno()
        };
        assert_eq!(kms_io(libc::ENOSPC), Errno::ENOSPC);
        assert_eq!(kms_io(libc::EDQUOT), Errno::EDQUOT);
        assert_eq!(kms_io(libc::EROFS), Errno::EROFS);
        assert_eq!(kms_io(libc::EACCES), Errno::EIO);
        assert_eq!(kms_io(libc::EBADF), Errno::EIO);
        let no_os = KmsError::io("x", &io::Error::other("not from the OS"));
        assert_eq!(FsError::Kms(no_os).errno(), Errno::EIO);
        assert_eq!(
            FsError::Kms(KmsError::Internal("x".into())).errno(),
            Errno::EIO
        );
    }
}
