//! Encrypt, Decrypt and ReEncrypt under a symmetric key, with the
//! encryption context bound as associated data.

use crate::blob::{self, BlobHeader};
use crate::context::EncryptionContext;
use crate::engine::{AuditInfo, Engine, Snapshot};
use crate::key::KeyRecord;
use crate::ops::{grants::check_tokens, require_enabled, validate_context};
use crate::wire::{SYMMETRIC_DEFAULT, SecretBytes, b64, check_algorithm};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Largest plaintext Encrypt accepts (AWS: 4096 bytes).
pub const MAX_PLAINTEXT: usize = 4096;
/// Largest ciphertext blob accepted (AWS: 6144 bytes).
pub const MAX_CIPHERTEXT: usize = 6144;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptRequest {
    pub key_id: String,
    pub plaintext: SecretBytes,
    #[serde(default)]
    pub encryption_context: EncryptionContext,
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptResponse {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    /// The key ARN.
    pub key_id: String,
    pub encryption_algorithm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptRequest {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    #[serde(default)]
    pub encryption_context: EncryptionContext,
    /// Optional: the blob names its key; if given it must match.
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptResponse {
    /// The key ARN.
    pub key_id: String,
    pub plaintext: SecretBytes,
    pub encryption_algorithm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptRequest {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    #[serde(default)]
    pub source_encryption_context: EncryptionContext,
    #[serde(default)]
    pub source_key_id: Option<String>,
    pub destination_key_id: String,
    #[serde(default)]
    pub destination_encryption_context: EncryptionContext,
    #[serde(default)]
    pub source_encryption_algorithm: Option<String>,
    #[serde(default)]
    pub destination_encryption_algorithm: Option<String>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptResponse {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    /// The source key ARN.
    pub source_key_id: String,
    /// The destination key ARN.
    pub key_id: String,
    pub source_encryption_algorithm: String,
    pub destination_encryption_algorithm: String,
}

/// What [`Engine::open_blob`] opens, and under which action.
pub(crate) struct OpenBlob<'a> {
    pub action: &'a str,
    pub ciphertext: &'a [u8],
    pub ctx: &'a EncryptionContext,
    pub expected_key: Option<&'a str>,
}

impl Engine {
    /// Seals `plaintext` under the newest version of `k` (the caller checked
    /// state and authorization).
    pub(crate) fn seal_under(
        snap: &Snapshot,
        k: &KeyRecord,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let v = k
            .current_version()
            .ok_or_else(|| KmsError::Internal(format!("key {} has no material", k.id)))?;
        let cipher = snap.cipher(k.id, v.version).ok_or_else(|| {
            KmsError::Internal(format!("key {} version {} not loaded", k.id, v.version))
        })?;
        blob::seal(
            cipher,
            BlobHeader {
                key_id: k.id,
                key_version: v.version,
            },
            plaintext,
            ctx,
        )
    }

    /// Opens `ciphertext` (checking the optional expected key, key state and
    /// authorization for `action`); returns the key and the plaintext.
    pub(crate) fn open_blob<'s>(
        &self,
        snap: &'s Snapshot,
        caller: &Principal,
        a: &mut AuditInfo,
        req: OpenBlob<'_>,
    ) -> Result<(&'s KeyRecord, Zeroizing<Vec<u8>>), KmsError> {
        let OpenBlob {
            action,
            ciphertext,
            ctx,
            expected_key,
        } = req;
        validate_context(ctx)?;
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
            return Err(KmsError::Validation(format!(
                "CiphertextBlob must be 1 to {MAX_CIPHERTEXT} bytes"
            )));
        }
        let header = blob::parse_header(ciphertext)?;
        if let Some(expected) = expected_key {
            let want = snap.resolve(expected)?;
            if want.id != header.key_id {
                a.key(want);
                return Err(KmsError::IncorrectKey(
                    "The key ID in the request does not identify a KMS key that can perform this operation.".into(),
                ));
            }
        }
        let Some(k) = snap.state.keys.get(&header.key_id) else {
            if snap.state.destroyed.contains(&header.key_id) {
                a.key_id = Some(header.key_id.to_string());
                return Err(KmsError::NotFound(format!(
                    "Key '{}' has been deleted",
                    header.key_id.arn()
                )));
            }
            return Err(KmsError::InvalidCiphertext(
                "the ciphertext refers to a key this engine does not have".into(),
            ));
        };
        a.key(k);
        self.authorize(caller, action, k, Some(ctx))?;
        require_enabled(k)?;
        let cipher = snap.cipher(k.id, header.key_version).ok_or_else(|| {
            KmsError::InvalidCiphertext("the ciphertext names an unknown key version".into())
        })?;
        let plain = blob::open(cipher, ciphertext, ctx)?;
        Ok((k, plain))
    }

    /// Encrypt: 1–4096 bytes under the key's newest version.
    pub fn encrypt(
        &self,
        caller: &Principal,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        self.audited(caller, "Encrypt", |a| {
            a.context(&req.encryption_context);
            check_algorithm(req.encryption_algorithm.as_deref())?;
            check_tokens(req.grant_tokens.as_ref())?;
            validate_context(&req.encryption_context)?;
            let n = req.plaintext.len();
            if n == 0 || n > MAX_PLAINTEXT {
                return Err(KmsError::Validation(format!(
                    "Plaintext must be 1 to {MAX_PLAINTEXT} bytes, got {n}"
                )));
            }
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize_as_requested(
                caller,
                "kms:Encrypt",
                k,
                Some(&req.encryption_context),
                Some(&req.key_id),
            )?;
            require_enabled(k)?;
            let blob =
                Self::seal_under(&snap, k, req.plaintext.as_slice(), &req.encryption_context)?;
            Ok(EncryptResponse {
                ciphertext_blob: blob,
                key_id: k.arn(),
                encryption_algorithm: SYMMETRIC_DEFAULT.into(),
            })
        })
    }

    /// Decrypt: the blob names its key and version; `KeyId` is optional and,
    /// when given, must name the same key (else IncorrectKeyException).
    pub fn decrypt(
        &self,
        caller: &Principal,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        self.audited(caller, "Decrypt", |a| {
            a.context(&req.encryption_context);
            check_algorithm(req.encryption_algorithm.as_deref())?;
            check_tokens(req.grant_tokens.as_ref())?;
            let snap = self.read_snapshot()?;
            let (k, plain) = self.open_blob(
                &snap,
                caller,
                a,
                OpenBlob {
                    action: "kms:Decrypt",
                    ciphertext: &req.ciphertext_blob,
                    ctx: &req.encryption_context,
                    expected_key: req.key_id.as_deref(),
                },
            )?;
            Ok(DecryptResponse {
                key_id: k.arn(),
                plaintext: SecretBytes::from(plain),
                encryption_algorithm: SYMMETRIC_DEFAULT.into(),
            })
        })
    }

    /// ReEncrypt: decrypts under the source (checked as `kms:ReEncryptFrom`)
    /// and encrypts under the destination key and context (checked as
    /// `kms:ReEncryptTo`); the plaintext never leaves the engine.
    pub fn re_encrypt(
        &self,
        caller: &Principal,
        req: ReEncryptRequest,
    ) -> Result<ReEncryptResponse, KmsError> {
        self.audited(caller, "ReEncrypt", |a| {
            a.context(&req.destination_encryption_context);
            a.request_parameters = Some(serde_json::json!({
                "sourceEncryptionContext": req.source_encryption_context,
                "destinationEncryptionContext": req.destination_encryption_context,
                "destinationKeyId": req.destination_key_id,
            }));
            check_algorithm(req.source_encryption_algorithm.as_deref())?;
            check_algorithm(req.destination_encryption_algorithm.as_deref())?;
            check_tokens(req.grant_tokens.as_ref())?;
            validate_context(&req.destination_encryption_context)?;
            let snap = self.read_snapshot()?;
            let (src, plain) = self.open_blob(
                &snap,
                caller,
                a,
                OpenBlob {
                    action: "kms:ReEncryptFrom",
                    ciphertext: &req.ciphertext_blob,
                    ctx: &req.source_encryption_context,
                    expected_key: req.source_key_id.as_deref(),
                },
            )?;
            let dst = snap.resolve(&req.destination_key_id)?;
            a.key(dst);
            self.authorize_as_requested(
                caller,
                "kms:ReEncryptTo",
                dst,
                Some(&req.destination_encryption_context),
                Some(&req.destination_key_id),
            )?;
            require_enabled(dst)?;
            let blob = Self::seal_under(&snap, dst, &plain, &req.destination_encryption_context)?;
            Ok(ReEncryptResponse {
                ciphertext_blob: blob,
                source_key_id: src.arn(),
                key_id: dst.arn(),
                source_encryption_algorithm: SYMMETRIC_DEFAULT.into(),
                destination_encryption_algorithm: SYMMETRIC_DEFAULT.into(),
            })
        })
    }
}
