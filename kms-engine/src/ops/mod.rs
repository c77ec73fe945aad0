//! Engine operations, one file per family, each with AWS KMS request and
//! response shapes, plus [`Engine::dispatch`](crate::Engine::dispatch) by
//! AWS operation name.

pub mod access_keys;
pub mod aliases;
pub mod audit_settings;
pub mod crypto;
pub mod datakeys;
pub mod dispatch;
pub mod grants;
pub mod keys;
pub mod kmsfs;
pub mod lifecycle;
pub mod policies;
pub mod random;
pub mod root_key;
pub mod rotation;
pub mod store_anchor;
pub mod tags;

use crate::KmsError;
use crate::context::EncryptionContext;
use crate::key::{KeyRecord, KeyState};

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
/// (Disabled -> DisabledException, PendingDeletion -> KMSInvalidStateException).
pub(crate) fn require_enabled(k: &KeyRecord) -> Result<(), KmsError> {
    match k.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", k.arn()))),
        KeyState::PendingDeletion => Err(pending(k)),
    }
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
