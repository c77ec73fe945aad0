//! Errors of the audit trail: writing, reading, signing and key handling.

use std::path::PathBuf;
use thiserror::Error;

/// Why an audit-trail operation failed. Never carries secret material.
#[derive(Debug, Error)]
pub enum AuditError {
    /// A file-system call on the trail failed (unwritable directory, disk full ...).
    #[error("audit trail I/O: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The newest record of the trail (the chain head) cannot be read back.
    #[error("audit trail head unreadable in {}: {reason}", path.display())]
    BadHead { path: PathBuf, reason: String },
    /// The signing seed was rejected by the Ed25519 implementation.
    #[error("audit signing key rejected")]
    SigningKey,
    /// The public key in `<dir>/public-key` belongs to another signing key.
    #[error("audit trail {} was signed by another key (fingerprint {found}, this engine's is {expected})", dir.display())]
    ForeignTrail {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    /// A public key file or string could not be parsed.
    #[error("not an Ed25519 public key: {0}")]
    PublicKeyFormat(String),
    /// A time could not be formatted or parsed.
    #[error("bad time {0:?}: expected RFC 3339")]
    Time(String),
    /// The background sealing thread could not be started.
    #[error("cannot start the audit digest thread: {0}")]
    Thread(std::io::Error),
}

impl AuditError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<AuditError> for crate::KmsError {
    fn from(e: AuditError) -> Self {
        crate::KmsError::Internal(format!("audit record not written: {e}"))
    }
}
