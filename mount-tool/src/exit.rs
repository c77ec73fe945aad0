//! Exit codes, documented in README.md ("Exit codes"), and the CLI's error type.

use kms_engine::KmsError;
use std::path::PathBuf;
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
    /// The volume does not verify: its config was edited, names another
    /// master key, or its root IV is missing or damaged.
    #[error("{0}")]
    BadVolume(String),
    /// `kmsfs fsck` found problems in the volume (listed on standard output).
    #[error("fsck found {0} problem(s) in the volume")]
    FsckProblems(usize),
    /// `kmsfs rewrap`/`migrate`/`rekey` skipped files (listed in its output).
    #[error("{what} skipped {count} file(s) (listed in the output)")]
    JobProblems { what: String, count: usize },
    /// The background mount process exited before the mount appeared: its
    /// exit code and its error line are passed on, so a wrong passphrase
    /// exits 3 whether the mount runs in the foreground or not.
    #[error("{message}")]
    MountProcess { code: i32, message: String },
    /// No `--engine`, no `KMSFS_ENGINE` and no usable `XDG_DATA_HOME`/`HOME`.
    #[error("cannot find the engine directory: pass --engine DIR or set KMSFS_ENGINE")]
    NoEngineDir,
    #[error("no engine store at {}: create one with `kmsfs kms init-engine`", .0.display())]
    EngineNotFound(PathBuf),
    #[error("{} is not empty: an engine store (or something else) is already there", .0.display())]
    EngineExists(PathBuf),
    /// The engine daemon or key service `--kms`/`KMSFS_KMS` (or the
    /// volume) names cannot be reached.
    #[error("cannot reach {} at {url}: {reason}", unreachable_what(.url))]
    Unreachable { url: String, reason: String },
    /// The store is held by a daemon (or, for a daemon, by another user).
    #[error("{}", held_line(.0))]
    StoreHeld(kms_engine::store::holder::HoldError),
    #[error(
        "no passphrase: standard input is not a terminal to prompt on; \
         pass --passphrase-file FILE (or set KMSFS_PASSPHRASE_FILE) or --key-file FILE"
    )]
    NoPassphrase,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("the two passphrases do not match")]
    PassphraseMismatch,
    #[error("cannot use passphrase file {}: {reason}", path.display())]
    PassphraseFile { path: PathBuf, reason: String },
    #[error("cannot use key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    /// The engine store is older than the generation its audit trail
    /// anchors, and `--accept-store-rollback` was not given.
    #[error(
        "{0} (StoreRolledBackException); if it was restored from a backup on purpose, \
         open it once with --accept-store-rollback"
    )]
    StoreRolledBack(String),
    /// The audit trail cannot be opened for writing: the engine refuses to
    /// run rather than use a key unaudited.
    #[error(
        "cannot write the audit trail in {}: {source}; the engine is not used unaudited",
        dir.display()
    )]
    AuditTrail {
        dir: PathBuf,
        source: kms_engine::audit::AuditError,
    },
}

/// The refusal of a held store, with what to do instead.
/// What an unreachable `url` is: the engine daemon (a socket), else an
/// AWS-KMS-compatible key service.
fn unreachable_what(url: &str) -> &'static str {
    if url.starts_with("unix://") {
        "the engine daemon"
    } else {
        "the key service"
    }
}

fn held_line(e: &kms_engine::store::holder::HoldError) -> String {
    use kms_engine::store::holder::HoldError;
    match e {
        HoldError::Served { owner, .. } => {
            let url = match owner.split_once(" socket ") {
                Some((_, socket)) => format!("unix://{socket}"),
                None => "unix:///PATH/TO/engine.sock".into(),
            };
            format!("{e}: use it through the daemon (--kms {url} or KMSFS_KMS), or stop the daemon")
        }
        other => other.to_string(),
    }
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
                KmsError::StoreCorrupted(_)
                | KmsError::StoreRolledBack(_)
                | KmsError::Internal(_)
                | KmsError::Unavailable(_)
                | KmsError::Io { .. } => IO,
                KmsError::Validation(_) => USAGE,
                _ => OPERATION_FAILED,
            },
            CliError::Usage(_) | CliError::NoEngineDir => USAGE,
            CliError::Io { .. }
            | CliError::AuditTrail { .. }
            | CliError::StoreRolledBack(_)
            | CliError::FsckProblems(_)
            | CliError::JobProblems { .. }
            | CliError::BadVolume(_) => IO,
            CliError::Mount(_) => MOUNT,
            CliError::Unreachable { .. } | CliError::StoreHeld(_) => IO,
            CliError::MountProcess { code, .. } => {
                if (OPERATION_FAILED..=MOUNT).contains(code) {
                    *code
                } else {
                    MOUNT
                }
            }
            CliError::EngineNotFound(_) => NOT_FOUND,
            CliError::EngineExists(_) => OPERATION_FAILED,
            CliError::NoPassphrase
            | CliError::EmptyPassphrase
            | CliError::PassphraseMismatch
            | CliError::PassphraseFile { .. }
            | CliError::KeyFile { .. } => AUTHENTICATION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_url_is_named_for_what_it_is() {
        let e = |url: &str| {
            CliError::Unreachable {
                url: url.into(),
                reason: "refused".into(),
            }
            .to_string()
        };
        assert_eq!(
            e("unix:///run/kmsfs/engine.sock"),
            "cannot reach the engine daemon at unix:///run/kmsfs/engine.sock: refused"
        );
        assert_eq!(
            e("https://kms.example:8443/alias/x"),
            "cannot reach the key service at https://kms.example:8443/alias/x: refused"
        );
        assert_eq!(
            e("aws://eu-west-1/alias/x"),
            "cannot reach the key service at aws://eu-west-1/alias/x: refused"
        );
    }

    #[test]
    fn engine_errors_map_to_the_documented_codes() {
        let cases = [
            (KmsError::WrongPassphrase, AUTHENTICATION),
            (KmsError::AccessDenied("x".into()), ACCESS_DENIED),
            (KmsError::NotFound("x".into()), NOT_FOUND),
            (KmsError::StoreNotFound("x".into()), NOT_FOUND),
            (KmsError::StoreCorrupted("x".into()), IO),
            (KmsError::StoreRolledBack("x".into()), IO),
            (KmsError::Internal("x".into()), IO),
            (
                KmsError::io("x", &std::io::Error::from_raw_os_error(28)),
                IO,
            ),
            (KmsError::Validation("x".into()), USAGE),
            (KmsError::InvalidCiphertext("x".into()), OPERATION_FAILED),
            (KmsError::Disabled("x".into()), OPERATION_FAILED),
            (KmsError::InvalidState("x".into()), OPERATION_FAILED),
            (KmsError::AlreadyExists("x".into()), OPERATION_FAILED),
        ];
        for (e, code) in cases {
            assert_eq!(CliError::from(e.clone()).exit_code(), code, "{e}");
        }
    }

    #[test]
    fn engine_errors_print_message_then_exception_name() {
        let e = CliError::from(KmsError::NotFound("Invalid keyId k".into()));
        assert_eq!(e.to_string(), "Invalid keyId k (NotFoundException)");
    }

    #[test]
    fn cli_errors_map_to_the_documented_codes() {
        let p = PathBuf::from("/p");
        let cases = [
            (CliError::NoEngineDir, USAGE),
            (CliError::Usage("x".into()), USAGE),
            (CliError::EngineNotFound(p.clone()), NOT_FOUND),
            (CliError::EngineExists(p.clone()), OPERATION_FAILED),
            (CliError::NoPassphrase, AUTHENTICATION),
            (CliError::EmptyPassphrase, AUTHENTICATION),
            (CliError::PassphraseMismatch, AUTHENTICATION),
            (
                CliError::KeyFile {
                    path: p.clone(),
                    reason: "r".into(),
                },
                AUTHENTICATION,
            ),
            (
                CliError::PassphraseFile {
                    path: p,
                    reason: "r".into(),
                },
                AUTHENTICATION,
            ),
            (CliError::io("x", std::io::Error::other("boom")), IO),
            (CliError::FsckProblems(3), IO),
            (CliError::BadVolume("kmsfs.conf does not match".into()), IO),
            (
                CliError::MountProcess {
                    code: AUTHENTICATION,
                    message: "m".into(),
                },
                AUTHENTICATION,
            ),
            (
                CliError::MountProcess {
                    code: 101,
                    message: "m".into(),
                },
                MOUNT,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
        }
    }
}
