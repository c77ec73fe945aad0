//! Exit codes, documented in README.md ("Exit codes"), and the CLI's error type.

use kms_engine::KmsError;
use thiserror::Error;

pub const SUCCESS: i32 = 0;
/// The operation ran and failed (an engine exception not listed below).
pub const OPERATION_FAILED: i32 = 1;
/// A mistake on the command line (clap also exits with 2).
pub const USAGE: i32 = 2;
/// Wrong passphrase or key file, or no way to get one.
pub const AUTHENTICATION: i32 = 3;
/// The key policy or grants deny the call.
pub const ACCESS_DENIED: i32 = 4;
/// A key, alias, grant, store or volume does not exist.
pub const NOT_FOUND: i32 = 5;
/// An I/O error or a corrupted store or volume.
pub const IO: i32 = 6;
/// Mounting or unmounting failed.
pub const MOUNT: i32 = 7;

/// Every way a `kmsfs` command fails. Printed as one line.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("{}", kms_line(.0))]
    Kms(#[from] KmsError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Mount(String),
}

fn kms_line(e: &KmsError) -> String {
    format!("{} ({})", e.message(), e.exception_name())
}

impl CliError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Kms(e) => match e {
                KmsError::WrongPassphrase => AUTHENTICATION,
                KmsError::AccessDenied(_) => ACCESS_DENIED,
                KmsError::NotFound(_) | KmsError::StoreNotFound(_) => NOT_FOUND,
                KmsError::StoreCorrupted(_) | KmsError::Internal(_) => IO,
                KmsError::Validation(_) => USAGE,
                _ => OPERATION_FAILED,
            },
            CliError::Usage(_) => USAGE,
            CliError::Io { .. } => IO,
            CliError::Mount(_) => MOUNT,
        }
    }
}
