//! Encrypt, Decrypt and ReEncrypt under a symmetric key, with the
//! encryption context bound as associated data.

use crate::blob::{self, BlobHeader};
use crate::context::EncryptionContext;
use crate::engine::Algorithms;
use crate::engine::{AuditInfo, Engine, Snapshot};
use crate::key::KeyRecord;
use crate::keyspec::KeyUsage;
use crate::keyspec::{RsaEncryption, encryption_algorithm_for};
use crate::ops::{grants::check_tokens, require_enabled, require_usage, validate_context};
use crate::wire::{SYMMETRIC_DEFAULT, SecretBytes, b64};
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

/// An encryption under a key the caller named.
struct Sealing<'a> {
    action: &'a str,
    op: &'a str,
    key: &'a KeyRecord,
    requested: &'a str,
    algorithm: Option<&'a str>,
    ctx: &'a EncryptionContext,
}

/// A decryption as Decrypt or ReEncrypt asks for it.
struct Opening<'a> {
    action: &'a str,
    op: &'a str,
    ciphertext: &'a [u8],
    ctx: &'a EncryptionContext,
    key_id: Option<&'a str>,
    algorithm: Option<&'a str>,
}

/// AWS binds an encryption context only with symmetric keys; one given
/// with an RSA key is refused rather than silently not bound.
fn no_context_for_rsa(ctx: &EncryptionContext) -> Result<(), KmsError> {
    if ctx.is_empty() {
        return Ok(());
    }
    Err(KmsError::Validation(
        "EncryptionContext is supported only with symmetric encryption KMS keys".into(),
    ))
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
        crate::ops::require_symmetric(k, "this operation")?;
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

    /// Encrypt: 1–4096 bytes under a symmetric key's newest version, or
    /// RSA-OAEP under an RSA key's public key (up to AWS's limit for the key
    /// size and algorithm; no encryption context).
    pub fn encrypt(
        &self,
        caller: &Principal,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        self.audited(caller, "Encrypt", |a| {
            a.context(&req.encryption_context);
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
            let (blob, alg) = self.encrypt_under(
                &snap,
                caller,
                Sealing {
                    action: "kms:Encrypt",
                    op: "Encrypt",
                    key: k,
                    requested: &req.key_id,
                    algorithm: req.encryption_algorithm.as_deref(),
                    ctx: &req.encryption_context,
                },
                req.plaintext.as_slice(),
            )?;
            Ok(EncryptResponse {
                ciphertext_blob: blob,
                key_id: k.arn(),
                encryption_algorithm: alg.into(),
            })
        })
    }

    /// Authorizes and encrypts `plaintext` under `s.key`: a symmetric blob
    /// or an RSA-OAEP ciphertext. Returns the ciphertext and the algorithm.
    fn encrypt_under(
        &self,
        snap: &Snapshot,
        caller: &Principal,
        s: Sealing<'_>,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, &'static str), KmsError> {
        let name = s.algorithm.unwrap_or(SYMMETRIC_DEFAULT);
        let algorithms = Algorithms {
            encryption: Some(name),
            ..Algorithms::default()
        };
        let ctx = (s.key.spec.is_symmetric() || !s.ctx.is_empty()).then_some(s.ctx);
        self.authorize_with(caller, s.action, s.key, ctx, Some(s.requested), &algorithms)?;
        require_enabled(s.key)?;
        require_usage(s.key, KeyUsage::EncryptDecrypt, s.op)?;
        match encryption_algorithm_for(s.key.spec, s.algorithm)? {
            None => Ok((
                Self::seal_under(snap, s.key, plaintext, s.ctx)?,
                SYMMETRIC_DEFAULT,
            )),
            Some(alg) => {
                no_context_for_rsa(s.ctx)?;
                let modulus = s.key.spec.rsa_modulus_len().unwrap_or(0);
                let max = alg.max_plaintext(modulus);
                if plaintext.len() > max {
                    return Err(KmsError::Validation(format!(
                        "Plaintext is {} bytes; {} with {} takes at most {max} bytes",
                        plaintext.len(),
                        s.key.spec.as_str(),
                        alg.as_str()
                    )));
                }
                let ct = snap.loaded(s.key)?.rsa_encrypt(alg, plaintext)?;
                Ok((ct, alg.as_str()))
            }
        }
    }

    /// Decrypts an RSA-OAEP ciphertext with the RSA key `k` (the caller
    /// named it by `KeyId`): authorization, state and algorithm checked.
    fn rsa_open(
        &self,
        snap: &Snapshot,
        caller: &Principal,
        s: Sealing<'_>,
        ciphertext: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, RsaEncryption), KmsError> {
        let name = s.algorithm.unwrap_or(SYMMETRIC_DEFAULT);
        let algorithms = Algorithms {
            encryption: Some(name),
            ..Algorithms::default()
        };
        let ctx = (!s.ctx.is_empty()).then_some(s.ctx);
        self.authorize_with(caller, s.action, s.key, ctx, Some(s.requested), &algorithms)?;
        require_enabled(s.key)?;
        require_usage(s.key, KeyUsage::EncryptDecrypt, s.op)?;
        let Some(alg) = encryption_algorithm_for(s.key.spec, s.algorithm)? else {
            return Err(KmsError::Internal(
                "an RSA key without an RSA algorithm".into(),
            ));
        };
        no_context_for_rsa(s.ctx)?;
        if ciphertext.len() != s.key.spec.rsa_modulus_len().unwrap_or(0) {
            return Err(KmsError::InvalidCiphertext(
                "the ciphertext is not one RSA block of this key's size".into(),
            ));
        }
        let plain = snap.loaded(s.key)?.rsa_decrypt(alg, ciphertext)?;
        Ok((plain, alg))
    }

    /// Decrypt: the blob names its key and version; `KeyId` is optional and,
    /// when given, must name the same key (else IncorrectKeyException). With
    /// an RSA key (`KeyId` required, as in AWS) the ciphertext is RSA-OAEP.
    pub fn decrypt(
        &self,
        caller: &Principal,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        self.audited(caller, "Decrypt", |a| {
            a.context(&req.encryption_context);
            check_tokens(req.grant_tokens.as_ref())?;
            let snap = self.read_snapshot()?;
            let (k, plain, alg) = self.open_any(
                &snap,
                caller,
                a,
                Opening {
                    action: "kms:Decrypt",
                    op: "Decrypt",
                    ciphertext: &req.ciphertext_blob,
                    ctx: &req.encryption_context,
                    key_id: req.key_id.as_deref(),
                    algorithm: req.encryption_algorithm.as_deref(),
                },
            )?;
            Ok(DecryptResponse {
                key_id: k.arn(),
                plaintext: SecretBytes::from(plain),
                encryption_algorithm: alg.into(),
            })
        })
    }

    /// Opens a symmetric blob or, when `key_id` names an RSA key, an
    /// RSA-OAEP ciphertext; returns the key, the plaintext and the
    /// algorithm.
    fn open_any<'s>(
        &self,
        snap: &'s Snapshot,
        caller: &Principal,
        a: &mut AuditInfo,
        o: Opening<'_>,
    ) -> Result<(&'s KeyRecord, Zeroizing<Vec<u8>>, &'static str), KmsError> {
        if let Some(id) = o.key_id {
            let k = snap.resolve(id)?;
            if !k.spec.is_symmetric() {
                a.key(k);
                if o.ciphertext.is_empty() || o.ciphertext.len() > MAX_CIPHERTEXT {
                    return Err(KmsError::Validation(format!(
                        "CiphertextBlob must be 1 to {MAX_CIPHERTEXT} bytes"
                    )));
                }
                let (plain, alg) = self.rsa_open(
                    snap,
                    caller,
                    Sealing {
                        action: o.action,
                        op: o.op,
                        key: k,
                        requested: id,
                        algorithm: o.algorithm,
                        ctx: o.ctx,
                    },
                    o.ciphertext,
                )?;
                return Ok((k, plain, alg.as_str()));
            }
        }
        if let Some(alg) = o.algorithm.filter(|a| *a != SYMMETRIC_DEFAULT) {
            // A symmetric blob asked to open with an RSA algorithm.
            encryption_algorithm_for(crate::keyspec::KeySpec::SymmetricDefault, Some(alg))?;
        }
        let (k, plain) = self.open_blob(
            snap,
            caller,
            a,
            OpenBlob {
                action: o.action,
                ciphertext: o.ciphertext,
                ctx: o.ctx,
                expected_key: o.key_id,
            },
        )?;
        Ok((k, plain, SYMMETRIC_DEFAULT))
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
            check_tokens(req.grant_tokens.as_ref())?;
            validate_context(&req.destination_encryption_context)?;
            let snap = self.read_snapshot()?;
            let (src, plain, src_alg) = self.open_any(
                &snap,
                caller,
                a,
                Opening {
                    action: "kms:ReEncryptFrom",
                    op: "ReEncrypt",
                    ciphertext: &req.ciphertext_blob,
                    ctx: &req.source_encryption_context,
                    key_id: req.source_key_id.as_deref(),
                    algorithm: req.source_encryption_algorithm.as_deref(),
                },
            )?;
            let dst = snap.resolve(&req.destination_key_id)?;
            a.key(dst);
            let (blob, dst_alg) = self.encrypt_under(
                &snap,
                caller,
                Sealing {
                    action: "kms:ReEncryptTo",
                    op: "ReEncrypt",
                    key: dst,
                    requested: &req.destination_key_id,
                    algorithm: req.destination_encryption_algorithm.as_deref(),
                    ctx: &req.destination_encryption_context,
                },
                &plain,
            )?;
            Ok(ReEncryptResponse {
                ciphertext_blob: blob,
                source_key_id: src.arn(),
                key_id: dst.arn(),
                source_encryption_algorithm: src_alg.into(),
                destination_encryption_algorithm: dst_alg.into(),
            })
        })
    }
}
