//! GenerateDataKey and GenerateDataKeyWithoutPlaintext.

use crate::context::EncryptionContext;
use crate::engine::Engine;
use crate::ops::{
    grants::check_tokens, random::random_bytes, require_enabled, require_symmetric,
    validate_context,
};
use crate::wire::{SecretBytes, b64};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Largest `NumberOfBytes` (AWS: 1024).
pub const MAX_DATA_KEY_BYTES: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyRequest {
    pub key_id: String,
    #[serde(default)]
    pub encryption_context: EncryptionContext,
    /// `AES_256` or `AES_128`; exactly one of this and `NumberOfBytes`.
    #[serde(default)]
    pub key_spec: Option<String>,
    #[serde(default)]
    pub number_of_bytes: Option<u32>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyResponse {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    pub plaintext: SecretBytes,
    /// The key ARN.
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyWithoutPlaintextResponse {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    /// The key ARN.
    pub key_id: String,
}

/// The requested data key length in bytes.
fn data_key_len(req: &GenerateDataKeyRequest) -> Result<usize, KmsError> {
    match (req.key_spec.as_deref(), req.number_of_bytes) {
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(other), None) => Err(KmsError::Validation(format!(
            "KeySpec must be AES_256 or AES_128, got {other}"
        ))),
        (None, Some(n @ 1..=MAX_DATA_KEY_BYTES)) => Ok(n as usize),
        (None, Some(n)) => Err(KmsError::Validation(format!(
            "NumberOfBytes must be between 1 and {MAX_DATA_KEY_BYTES}, got {n}"
        ))),
        (Some(_), Some(_)) => Err(KmsError::Validation(
            "specify either KeySpec or NumberOfBytes, not both".into(),
        )),
        (None, None) => Err(KmsError::Validation(
            "specify KeySpec or NumberOfBytes".into(),
        )),
    }
}

impl Engine {
    fn generate_data_key_inner(
        &self,
        caller: &Principal,
        op: &str,
        action: &str,
        req: &GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        self.audited(caller, op, |a| {
            a.context(&req.encryption_context);
            let len = data_key_len(req)?;
            check_tokens(req.grant_tokens.as_ref())?;
            validate_context(&req.encryption_context)?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize_as_requested(
                caller,
                action,
                k,
                Some(&req.encryption_context),
                Some(&req.key_id),
            )?;
            require_enabled(k)?;
            require_symmetric(k, op)?;
            let plain = random_bytes(len)?;
            let blob = Self::seal_under(&snap, k, &plain, &req.encryption_context)?;
            Ok(GenerateDataKeyResponse {
                ciphertext_blob: blob,
                plaintext: SecretBytes::from(plain),
                key_id: k.arn(),
            })
        })
    }

    /// GenerateDataKey: a random data key, in plaintext and wrapped.
    pub fn generate_data_key(
        &self,
        caller: &Principal,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        self.generate_data_key_inner(caller, "GenerateDataKey", "kms:GenerateDataKey", &req)
    }

    /// GenerateDataKeyWithoutPlaintext: only the wrapped data key.
    pub fn generate_data_key_without_plaintext(
        &self,
        caller: &Principal,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyWithoutPlaintextResponse, KmsError> {
        let r = self.generate_data_key_inner(
            caller,
            "GenerateDataKeyWithoutPlaintext",
            "kms:GenerateDataKeyWithoutPlaintext",
            &req,
        )?;
        Ok(GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: r.ciphertext_blob,
            key_id: r.key_id,
        })
    }
}
