//! DeriveSharedSecret: ECDH between a KEY_AGREEMENT key's private key and a
//! peer's public key.

use crate::asym::is_spki;
use crate::engine::{Algorithms, Engine};
use crate::keyspec::{ECDH, KeyUsage};
use crate::ops::{check_dry_run, grants::check_tokens, require_enabled, require_usage};
use crate::wire::{SecretBytes, b64};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Largest public key accepted (AWS's PublicKeyType: 8192 bytes).
pub const MAX_PUBLIC_KEY: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretRequest {
    pub key_id: String,
    pub key_agreement_algorithm: String,
    /// The peer's public key, DER SubjectPublicKeyInfo.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Nitro Enclaves attestation (AWS): not supported here.
    #[serde(default)]
    pub recipient: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretResponse {
    /// The key ARN.
    pub key_id: String,
    /// The raw ECDH shared secret (the x coordinate).
    pub shared_secret: SecretBytes,
    pub key_agreement_algorithm: String,
    pub key_origin: String,
}

impl Engine {
    /// DeriveSharedSecret: the ECDH shared secret of the key and a peer
    /// public key of the same curve (else ValidationException).
    pub fn derive_shared_secret(
        &self,
        caller: &Principal,
        req: DeriveSharedSecretRequest,
    ) -> Result<DeriveSharedSecretResponse, KmsError> {
        self.audited(caller, "DeriveSharedSecret", |a| {
            check_tokens(req.grant_tokens.as_ref())?;
            if req.key_agreement_algorithm != ECDH {
                return Err(KmsError::Validation(format!(
                    "1 validation error detected: Value '{}' at 'keyAgreementAlgorithm' failed \
                     to satisfy constraint: Member must satisfy enum value set: [ECDH]",
                    req.key_agreement_algorithm
                )));
            }
            if req.recipient.is_some() {
                return Err(KmsError::UnsupportedOperation(
                    "Recipient (Nitro Enclaves attestation) is not supported by this engine".into(),
                ));
            }
            if req.public_key.is_empty() || req.public_key.len() > MAX_PUBLIC_KEY {
                return Err(KmsError::Validation(format!(
                    "PublicKey must be 1 to {MAX_PUBLIC_KEY} bytes"
                )));
            }
            a.request_parameters = Some(serde_json::json!({"keyAgreementAlgorithm": ECDH}));
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            let algorithms = Algorithms {
                key_agreement: Some(ECDH),
                ..Algorithms::default()
            };
            self.authorize_with(
                caller,
                "kms:DeriveSharedSecret",
                k,
                None,
                Some(&req.key_id),
                &algorithms,
            )?;
            require_enabled(k)?;
            require_usage(k, KeyUsage::KeyAgreement, "DeriveSharedSecret")?;
            check_dry_run(req.dry_run)?;
            let bad_key = || {
                KmsError::Validation(format!(
                    "PublicKey is not a DER-encoded SubjectPublicKeyInfo of a {} public key",
                    k.spec.as_str()
                ))
            };
            if !is_spki(&req.public_key) {
                return Err(bad_key());
            }
            let secret = snap
                .loaded(k)?
                .agree(&req.public_key)?
                .ok_or_else(bad_key)?;
            Ok(DeriveSharedSecretResponse {
                key_id: k.arn(),
                shared_secret: SecretBytes::from(secret),
                key_agreement_algorithm: ECDH.into(),
                key_origin: k.origin.as_str().into(),
            })
        })
    }
}
