//! GenerateMac and VerifyMac with HMAC keys.

use crate::engine::{Algorithms, Engine};
use crate::keyspec::{KeyUsage, check_mac_algorithm};
use crate::ops::{check_dry_run, grants::check_tokens, require_enabled, require_usage};
use crate::wire::{SecretBytes, b64};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Largest message (AWS: 4096 bytes).
pub const MAX_MAC_MESSAGE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacRequest {
    pub key_id: String,
    pub message: SecretBytes,
    pub mac_algorithm: String,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacResponse {
    #[serde(with = "b64")]
    pub mac: Vec<u8>,
    pub mac_algorithm: String,
    /// The key ARN.
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacRequest {
    pub key_id: String,
    pub message: SecretBytes,
    pub mac_algorithm: String,
    #[serde(with = "b64")]
    pub mac: Vec<u8>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacResponse {
    /// The key ARN.
    pub key_id: String,
    /// Always true: a MAC that does not verify is KMSInvalidMacException.
    pub mac_valid: bool,
    pub mac_algorithm: String,
}

impl Engine {
    /// The checks GenerateMac and VerifyMac share; returns the loaded key
    /// and the key's ARN.
    fn mac_key(
        &self,
        caller: &Principal,
        a: &mut crate::engine::AuditInfo,
        (op, action): (&str, &str),
        req: (&str, &SecretBytes, &str, Option<&Vec<String>>, Option<bool>),
    ) -> Result<(std::sync::Arc<crate::asym::Loaded>, String), KmsError> {
        let (key_id, message, mac_algorithm, tokens, dry_run) = req;
        check_tokens(tokens)?;
        if message.is_empty() || message.len() > MAX_MAC_MESSAGE {
            return Err(KmsError::Validation(format!(
                "Message must be 1 to {MAX_MAC_MESSAGE} bytes, got {}",
                message.len()
            )));
        }
        a.request_parameters = Some(serde_json::json!({"macAlgorithm": mac_algorithm}));
        let snap = self.read_snapshot()?;
        let k = snap.resolve(key_id)?;
        a.key(k);
        let algorithms = Algorithms {
            mac: Some(mac_algorithm),
            ..Algorithms::default()
        };
        self.authorize_with(caller, action, k, None, Some(key_id), &algorithms)?;
        require_enabled(k)?;
        require_usage(k, KeyUsage::GenerateVerifyMac, op)?;
        check_mac_algorithm(k.spec, mac_algorithm)?;
        check_dry_run(dry_run)?;
        Ok((snap.loaded(k)?.clone(), k.arn()))
    }

    /// GenerateMac: the HMAC of a message of 1 to 4096 bytes.
    pub fn generate_mac(
        &self,
        caller: &Principal,
        req: GenerateMacRequest,
    ) -> Result<GenerateMacResponse, KmsError> {
        self.audited(caller, "GenerateMac", |a| {
            let (key, arn) = self.mac_key(
                caller,
                a,
                ("GenerateMac", "kms:GenerateMac"),
                (
                    &req.key_id,
                    &req.message,
                    &req.mac_algorithm,
                    req.grant_tokens.as_ref(),
                    req.dry_run,
                ),
            )?;
            Ok(GenerateMacResponse {
                mac: key.mac(req.message.as_slice())?,
                mac_algorithm: req.mac_algorithm.clone(),
                key_id: arn,
            })
        })
    }

    /// VerifyMac: MacValid true, or KMSInvalidMacException.
    pub fn verify_mac(
        &self,
        caller: &Principal,
        req: VerifyMacRequest,
    ) -> Result<VerifyMacResponse, KmsError> {
        self.audited(caller, "VerifyMac", |a| {
            let (key, arn) = self.mac_key(
                caller,
                a,
                ("VerifyMac", "kms:VerifyMac"),
                (
                    &req.key_id,
                    &req.message,
                    &req.mac_algorithm,
                    req.grant_tokens.as_ref(),
                    req.dry_run,
                ),
            )?;
            if !key.verify_mac(req.message.as_slice(), &req.mac)? {
                return Err(KmsError::InvalidMac(
                    "the MAC does not verify with this key, algorithm and message".into(),
                ));
            }
            Ok(VerifyMacResponse {
                key_id: arn,
                mac_valid: true,
                mac_algorithm: req.mac_algorithm.clone(),
            })
        })
    }
}
