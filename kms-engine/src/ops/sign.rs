//! GetPublicKey, Sign and Verify with asymmetric keys (RSA, ECDSA, Ed25519,
//! ML-DSA), AWS's shapes, limits and errors.

use crate::asym::MessageKind;
use crate::engine::{Algorithms, Engine};
use crate::keyspec::{KeyUsage, SigningAlgorithm, signing_algorithms};
use crate::ops::keys::AlgorithmLists;
use crate::ops::{check_dry_run, grants::check_tokens, require_enabled, require_usage};
use crate::wire::{SecretBytes, b64};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Largest Sign/Verify message (AWS: 4096 bytes).
pub const MAX_MESSAGE: usize = 4096;
/// Largest signature Verify accepts (AWS's CiphertextType: 6144 bytes).
pub const MAX_SIGNATURE: usize = 6144;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPublicKeyRequest {
    pub key_id: String,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPublicKeyResponse {
    /// The key ARN.
    pub key_id: String,
    /// DER SubjectPublicKeyInfo.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    pub customer_master_key_spec: String,
    pub key_spec: String,
    pub key_usage: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encryption_algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signing_algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_agreement_algorithms: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignRequest {
    pub key_id: String,
    /// The message or its digest: secret-like input, never logged.
    pub message: SecretBytes,
    #[serde(default)]
    pub message_type: Option<String>,
    pub signing_algorithm: String,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignResponse {
    /// The key ARN.
    pub key_id: String,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    pub signing_algorithm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyRequest {
    pub key_id: String,
    pub message: SecretBytes,
    #[serde(default)]
    pub message_type: Option<String>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    pub signing_algorithm: String,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyResponse {
    /// The key ARN.
    pub key_id: String,
    /// Always true: an invalid signature is KMSInvalidSignatureException.
    pub signature_valid: bool,
    pub signing_algorithm: String,
}

/// `MessageType`: RAW (default) or DIGEST; EXTERNAL_MU (ML-DSA's external
/// mu) is AWS's and not implemented here.
fn message_kind(t: Option<&str>) -> Result<(MessageKind, &'static str), KmsError> {
    match t {
        None | Some("RAW") => Ok((MessageKind::Raw, "RAW")),
        Some("DIGEST") => Ok((MessageKind::Digest, "DIGEST")),
        Some("EXTERNAL_MU") => Err(KmsError::UnsupportedOperation(
            "MessageType EXTERNAL_MU is not supported by this engine".into(),
        )),
        Some(other) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'messageType' failed to satisfy \
             constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]"
        ))),
    }
}

/// The checks Sign and Verify share, in order: message size, algorithm
/// name, then (with the key) usage, algorithm for the key spec, and a
/// digest's length.
fn check_message(msg: &[u8]) -> Result<(), KmsError> {
    if msg.is_empty() || msg.len() > MAX_MESSAGE {
        return Err(KmsError::Validation(format!(
            "Message must be 1 to {MAX_MESSAGE} bytes, got {}",
            msg.len()
        )));
    }
    Ok(())
}

fn check_key_algorithm(
    k: &crate::key::KeyRecord,
    alg: SigningAlgorithm,
    kind: MessageKind,
    msg: &[u8],
) -> Result<(), KmsError> {
    if !signing_algorithms(k.spec).contains(&alg) {
        return Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {} is incompatible with key spec {}.",
            alg.as_str(),
            k.spec.as_str()
        )));
    }
    if kind == MessageKind::Digest {
        match alg.digest_len() {
            Some(n) if n == msg.len() => {}
            Some(n) => {
                return Err(KmsError::Validation(format!(
                    "Digest is invalid length for algorithm {}: {} bytes, it must be {n}",
                    alg.as_str(),
                    msg.len()
                )));
            }
            None => {
                return Err(KmsError::InvalidKeyUsage(format!(
                    "MessageType DIGEST is incompatible with algorithm {}.",
                    alg.as_str()
                )));
            }
        }
    }
    Ok(())
}

fn sign_params(alg: &str, message_type: &str) -> serde_json::Value {
    serde_json::json!({"signingAlgorithm": alg, "messageType": message_type})
}

impl Engine {
    /// GetPublicKey: the DER SubjectPublicKeyInfo of an asymmetric key and
    /// what it may be used for. A symmetric or HMAC key is
    /// UnsupportedOperationException.
    pub fn get_public_key(
        &self,
        caller: &Principal,
        req: GetPublicKeyRequest,
    ) -> Result<GetPublicKeyResponse, KmsError> {
        self.audited(caller, "GetPublicKey", |a| {
            check_tokens(req.grant_tokens.as_ref())?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize_as_requested(caller, "kms:GetPublicKey", k, None, Some(&req.key_id))?;
            require_enabled(k)?;
            if !k.spec.is_asymmetric() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} key spec is {}, which has no public key.",
                    k.arn(),
                    k.spec.as_str()
                )));
            }
            let l = AlgorithmLists::of(k);
            Ok(GetPublicKeyResponse {
                key_id: k.arn(),
                public_key: snap.loaded(k)?.public.clone(),
                customer_master_key_spec: k.spec.as_str().into(),
                key_spec: k.spec.as_str().into(),
                key_usage: k.usage.as_str().into(),
                encryption_algorithms: l.encryption,
                signing_algorithms: l.signing,
                key_agreement_algorithms: l.key_agreement,
            })
        })
    }

    /// Sign: a signature of a message (RAW) or of its digest (DIGEST).
    pub fn sign(&self, caller: &Principal, req: SignRequest) -> Result<SignResponse, KmsError> {
        self.audited(caller, "Sign", |a| {
            check_tokens(req.grant_tokens.as_ref())?;
            check_message(req.message.as_slice())?;
            let (kind, kind_name) = message_kind(req.message_type.as_deref())?;
            let alg = SigningAlgorithm::parse(&req.signing_algorithm)?;
            a.request_parameters = Some(sign_params(alg.as_str(), kind_name));
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            let algorithms = Algorithms {
                signing: Some(alg.as_str()),
                message_type: Some(kind_name),
                ..Algorithms::default()
            };
            self.authorize_with(caller, "kms:Sign", k, None, Some(&req.key_id), &algorithms)?;
            require_enabled(k)?;
            require_usage(k, KeyUsage::SignVerify, "Sign")?;
            check_key_algorithm(k, alg, kind, req.message.as_slice())?;
            check_dry_run(req.dry_run)?;
            let signature = snap
                .loaded(k)?
                .sign(k.spec, alg, req.message.as_slice(), kind)?;
            Ok(SignResponse {
                key_id: k.arn(),
                signature,
                signing_algorithm: alg.as_str().into(),
            })
        })
    }

    /// Verify: a valid signature answers SignatureValid true; an invalid
    /// one is KMSInvalidSignatureException, as in AWS.
    pub fn verify(
        &self,
        caller: &Principal,
        req: VerifyRequest,
    ) -> Result<VerifyResponse, KmsError> {
        self.audited(caller, "Verify", |a| {
            check_tokens(req.grant_tokens.as_ref())?;
            check_message(req.message.as_slice())?;
            if req.signature.is_empty() || req.signature.len() > MAX_SIGNATURE {
                return Err(KmsError::Validation(format!(
                    "Signature must be 1 to {MAX_SIGNATURE} bytes"
                )));
            }
            let (kind, kind_name) = message_kind(req.message_type.as_deref())?;
            let alg = SigningAlgorithm::parse(&req.signing_algorithm)?;
            a.request_parameters = Some(sign_params(alg.as_str(), kind_name));
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            let algorithms = Algorithms {
                signing: Some(alg.as_str()),
                message_type: Some(kind_name),
                ..Algorithms::default()
            };
            self.authorize_with(
                caller,
                "kms:Verify",
                k,
                None,
                Some(&req.key_id),
                &algorithms,
            )?;
            require_enabled(k)?;
            require_usage(k, KeyUsage::SignVerify, "Verify")?;
            check_key_algorithm(k, alg, kind, req.message.as_slice())?;
            check_dry_run(req.dry_run)?;
            let ok = snap.loaded(k)?.verify(
                k.spec,
                alg,
                req.message.as_slice(),
                kind,
                &req.signature,
            )?;
            if !ok {
                return Err(KmsError::InvalidSignature(
                    "the signature does not verify with this key, algorithm and message".into(),
                ));
            }
            Ok(VerifyResponse {
                key_id: k.arn(),
                signature_valid: true,
                signing_algorithm: alg.as_str().into(),
            })
        })
    }
}
