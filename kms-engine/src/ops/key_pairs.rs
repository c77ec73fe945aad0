//! GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh
//! asymmetric key pair whose PKCS#8 private key is returned encrypted under
//! a symmetric key (and in plaintext, for the first).

use crate::asym::generate_key_pair;
use crate::context::EncryptionContext;
use crate::engine::{Algorithms, Engine};
use crate::keyspec::data_key_pair_spec;
use crate::ops::{
    check_dry_run, grants::check_tokens, require_enabled, require_symmetric, validate_context,
};
use crate::wire::{SecretBytes, b64};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyPairRequest {
    pub key_id: String,
    pub key_pair_spec: String,
    #[serde(default)]
    pub encryption_context: EncryptionContext,
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
pub struct GenerateDataKeyPairResponse {
    /// The PKCS#8 private key sealed under the KMS key and context (a
    /// ciphertext blob Decrypt opens).
    #[serde(with = "b64")]
    pub private_key_ciphertext_blob: Vec<u8>,
    /// The PKCS#8 private key (absent from ...WithoutPlaintext).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub private_key_plaintext: Option<SecretBytes>,
    /// DER SubjectPublicKeyInfo.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    /// The KMS key's ARN.
    pub key_id: String,
    pub key_pair_spec: String,
}

impl Engine {
    fn generate_data_key_pair_inner(
        &self,
        caller: &Principal,
        op: &str,
        req: &GenerateDataKeyPairRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        self.audited(caller, op, |a| {
            a.context(&req.encryption_context);
            check_tokens(req.grant_tokens.as_ref())?;
            validate_context(&req.encryption_context)?;
            let spec = data_key_pair_spec(&req.key_pair_spec)?;
            if req.recipient.is_some() {
                return Err(KmsError::UnsupportedOperation(
                    "Recipient (Nitro Enclaves attestation) is not supported by this engine".into(),
                ));
            }
            a.request_parameters = Some(serde_json::json!({"keyPairSpec": spec.as_str()}));
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            let algorithms = Algorithms {
                encryption: Some(crate::wire::SYMMETRIC_DEFAULT),
                data_key_pair_spec: Some(spec.as_str()),
                ..Algorithms::default()
            };
            self.authorize_with(
                caller,
                &format!("kms:{op}"),
                k,
                Some(&req.encryption_context),
                Some(&req.key_id),
                &algorithms,
            )?;
            require_enabled(k)?;
            require_symmetric(k, op)?;
            check_dry_run(req.dry_run)?;
            let (private, public) = generate_key_pair(spec)?;
            let blob = Self::seal_under(&snap, k, private.bytes(), &req.encryption_context)?;
            Ok(GenerateDataKeyPairResponse {
                private_key_ciphertext_blob: blob,
                private_key_plaintext: with_plaintext.then(|| SecretBytes::from(private.bytes())),
                public_key: public,
                key_id: k.arn(),
                key_pair_spec: spec.as_str().into(),
            })
        })
    }

    /// GenerateDataKeyPair: the key pair with its private key in plaintext
    /// and sealed under the KMS key.
    pub fn generate_data_key_pair(
        &self,
        caller: &Principal,
        req: GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        self.generate_data_key_pair_inner(caller, "GenerateDataKeyPair", &req, true)
    }

    /// GenerateDataKeyPairWithoutPlaintext: the public key and the sealed
    /// private key only.
    pub fn generate_data_key_pair_without_plaintext(
        &self,
        caller: &Principal,
        req: GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        self.generate_data_key_pair_inner(
            caller,
            "GenerateDataKeyPairWithoutPlaintext",
            &req,
            false,
        )
    }
}
