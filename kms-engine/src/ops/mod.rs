//! Engine operations, one file per family, each with AWS KMS request and
//! response shapes, plus [`Engine::dispatch`](crate::Engine::dispatch) by
//! AWS operation name.

pub mod access_keys;
pub mod agreement;
pub mod aliases;
pub mod audit_settings;
pub mod crypto;
pub mod datakeys;
pub mod dispatch;
pub mod grants;
pub mod import;
pub mod key_pairs;
pub mod keys;
pub mod kmsfs;
pub mod last_usage;
pub mod lifecycle;
pub mod mac;
pub mod policies;
pub mod random;
pub mod root_key;
pub mod rotation;
pub mod sign;
pub mod store_anchor;
pub mod tags;

use crate::KmsError;
use crate::context::EncryptionContext;
use crate::key::{KeyRecord, KeyState};
use crate::keyspec::KeyUsage;

/// Maximum total size of an encryption context (keys + values, bytes).
pub const MAX_CONTEXT_BYTES: usize = 8192;

/// Checks an encryption context against the engine's limits.
pub(crate) fn validate_context(ctx: &EncryptionContext) -> Result<(), KmsError> {
    let mut total = 0usize;
    for (k, v) in ctx {
        if k.is_empty() {
            return Err(KmsError::Validation(
                "encryption context keys must not be empty".into(),
            ));
        }
        total += k.len() + v.len();
    }
    if total > MAX_CONTEXT_BYTES {
        return Err(KmsError::Validation(format!(
            "encryption context is {total} bytes, the limit is {MAX_CONTEXT_BYTES}"
        )));
    }
    Ok(())
}

/// Gate for cryptographic ops and rotation changes: Enabled only
/// (Disabled -> DisabledException, PendingDeletion and PendingImport ->
/// KMSInvalidStateException).
pub(crate) fn require_enabled(k: &KeyRecord) -> Result<(), KmsError> {
    match k.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", k.arn()))),
        KeyState::PendingDeletion => Err(pending(k)),
        KeyState::PendingImport => Err(pending_import(k)),
    }
}

/// KMSInvalidStateException for a key without its imported material.
pub(crate) fn pending_import(k: &KeyRecord) -> KmsError {
    KmsError::InvalidState(format!("{} is pending import.", k.arn()))
}

/// Gate for management ops allowed on Enabled and Disabled keys.
pub(crate) fn require_not_pending(k: &KeyRecord) -> Result<(), KmsError> {
    match k.state {
        KeyState::PendingDeletion => Err(pending(k)),
        _ => Ok(()),
    }
}

fn pending(k: &KeyRecord) -> KmsError {
    KmsError::InvalidState(format!("{} is pending deletion.", k.arn()))
}

/// Gate for an operation that needs keys of `usage`: another usage is
/// InvalidKeyUsageException in AWS's words.
pub(crate) fn require_usage(k: &KeyRecord, usage: KeyUsage, op: &str) -> Result<(), KmsError> {
    if k.usage == usage {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {op}.",
        k.arn(),
        k.usage.as_str()
    )))
}

/// Gate for the operations that wrap under a symmetric key (GenerateDataKey*,
/// ReEncrypt's destination when symmetric, GenerateDataKeyPair*).
pub(crate) fn require_symmetric(k: &KeyRecord, op: &str) -> Result<(), KmsError> {
    require_usage(k, KeyUsage::EncryptDecrypt, op)?;
    if k.spec.is_symmetric() {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} key spec is {} which is not valid for {op}.",
        k.arn(),
        k.spec.as_str()
    )))
}

/// Checks a `GrantTokens` list and `DryRun` (not supported: refused
/// rather than running the operation for real).
pub(crate) fn check_dry_run(dry_run: Option<bool>) -> Result<(), KmsError> {
    if dry_run == Some(true) {
        return Err(KmsError::UnsupportedOperation(
            "DryRun is not supported by this engine".into(),
        ));
    }
    Ok(())
}
