//! CreateKey, DescribeKey, ListKeys, UpdateKeyDescription.

use crate::asym::generate_material;
use crate::engine::Engine;
use crate::ids::KeyId;
use crate::key::{KeyRecord, KeyState, KeyVersion, default_policy};
use crate::keyspec::{
    ECDH, KeyOrigin, KeyUsage, encryption_algorithms, mac_algorithm, signing_algorithms,
    spec_and_usage,
};
use crate::ops::{grants::check_tokens, require_not_pending, tags::validate_tags};
use crate::policy::{Policy, check_lockout};
use crate::wire::{Tag, page, page_limit};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Maximum description length (AWS: 8192 characters).
pub const MAX_DESCRIPTION: usize = 8192;

/// AWS `KeyMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    pub key_id: String,
    pub arn: String,
    /// Unix seconds.
    pub creation_date: i64,
    pub enabled: bool,
    pub description: String,
    pub key_usage: String,
    pub key_state: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deletion_date: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_deletion_window_in_days: Option<u32>,
    pub origin: String,
    pub key_manager: String,
    pub customer_master_key_spec: String,
    pub key_spec: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encryption_algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signing_algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mac_algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_agreement_algorithms: Option<Vec<String>>,
    pub multi_region: bool,
    /// EXTERNAL keys with imported material: KEY_MATERIAL_EXPIRES or
    /// KEY_MATERIAL_DOES_NOT_EXPIRE.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expiration_model: Option<String>,
    /// When the imported material expires (Unix seconds), for
    /// KEY_MATERIAL_EXPIRES.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_to: Option<i64>,
}

/// The algorithm lists DescribeKey and GetPublicKey report for a key: one
/// of encryption, signing, MAC or key agreement algorithms, by its usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlgorithmLists {
    pub encryption: Option<Vec<String>>,
    pub signing: Option<Vec<String>>,
    pub mac: Option<Vec<String>>,
    pub key_agreement: Option<Vec<String>>,
}

impl AlgorithmLists {
    pub fn of(k: &KeyRecord) -> AlgorithmLists {
        let mut l = AlgorithmLists::default();
        match k.usage {
            KeyUsage::EncryptDecrypt => l.encryption = Some(encryption_algorithms(k.spec)),
            KeyUsage::SignVerify => {
                l.signing = Some(
                    signing_algorithms(k.spec)
                        .iter()
                        .map(|a| a.as_str().to_string())
                        .collect(),
                )
            }
            KeyUsage::GenerateVerifyMac => {
                l.mac = mac_algorithm(k.spec).map(|a| vec![a.to_string()])
            }
            KeyUsage::KeyAgreement => l.key_agreement = Some(vec![ECDH.to_string()]),
        }
        l
    }
}

impl KeyMetadata {
    pub fn of(k: &KeyRecord) -> KeyMetadata {
        let algorithms = AlgorithmLists::of(k);
        KeyMetadata {
            aws_account_id: crate::ids::account_id().into(),
            key_id: k.id.to_string(),
            arn: k.arn(),
            creation_date: k.created,
            enabled: k.state == KeyState::Enabled,
            description: k.description.clone(),
            key_usage: k.usage.as_str().into(),
            key_state: k.state.as_str().into(),
            deletion_date: k.deletion_date,
            pending_deletion_window_in_days: k.pending_window_days,
            origin: k.origin.as_str().into(),
            key_manager: "CUSTOMER".into(),
            customer_master_key_spec: k.spec.as_str().into(),
            key_spec: k.spec.as_str().into(),
            encryption_algorithms: algorithms.encryption,
            signing_algorithms: algorithms.signing,
            mac_algorithms: algorithms.mac,
            key_agreement_algorithms: algorithms.key_agreement,
            multi_region: false,
            expiration_model: k.expiration().map(|e| e.model().to_string()),
            valid_to: k.expiration().and_then(|e| e.valid_to()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateKeyRequest {
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub key_spec: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub origin: Option<String>,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
    pub tags: Option<Vec<Tag>>,
    pub multi_region: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyResponse {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeKeyRequest {
    pub key_id: String,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeKeyResponse {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListKeysRequest {
    pub limit: Option<u32>,
    pub marker: Option<String>,
}

/// One entry of ListKeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListEntry {
    pub key_id: String,
    pub key_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    pub keys: Vec<KeyListEntry>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateKeyDescriptionRequest {
    pub key_id: String,
    pub description: String,
}

/// UpdateKeyDescription returns an empty body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyResponse {}

/// The `Origin` of CreateKey: AWS_KMS (default) or EXTERNAL (no material
/// until ImportKeyMaterial); the custom key store origins are
/// UnsupportedOperationException, anything else ValidationException.
fn parse_origin(value: Option<&str>) -> Result<KeyOrigin, KmsError> {
    match value {
        None | Some("AWS_KMS") => Ok(KeyOrigin::AwsKms),
        Some("EXTERNAL") => Ok(KeyOrigin::External),
        Some(v @ ("AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE")) => Err(KmsError::UnsupportedOperation(
            format!("Origin {v} (custom key stores) is not supported by this engine"),
        )),
        Some(v) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{v}' at 'origin' failed to satisfy \
             constraint: Member must satisfy enum value set: [AWS_KMS, EXTERNAL, \
             AWS_CLOUDHSM, EXTERNAL_KEY_STORE]"
        ))),
    }
}

fn check_description(d: &str) -> Result<(), KmsError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(KmsError::Validation(format!(
            "Description must be at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

impl Engine {
    /// CreateKey: a new key of the requested spec and usage (default
    /// SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT); combinations AWS refuses are
    /// ValidationException. With Origin EXTERNAL the key has no material
    /// and is PendingImport until ImportKeyMaterial.
    pub fn create_key(
        &self,
        caller: &Principal,
        req: CreateKeyRequest,
    ) -> Result<CreateKeyResponse, KmsError> {
        self.audited(caller, "CreateKey", |a| {
            let (spec, usage) = spec_and_usage(
                req.key_spec.as_deref(),
                req.customer_master_key_spec.as_deref(),
                req.key_usage.as_deref(),
            )?;
            let origin = parse_origin(req.origin.as_deref())?;
            if req.multi_region == Some(true) {
                return Err(KmsError::UnsupportedOperation(
                    "multi-Region keys are not supported".into(),
                ));
            }
            let description = req.description.clone().unwrap_or_default();
            check_description(&description)?;
            let tags = req.tags.clone().unwrap_or_default();
            validate_tags(&tags)?;
            let id = KeyId::generate()?;
            let policy = match &req.policy {
                Some(p) => {
                    let parsed = Policy::parse(p)?;
                    if req.bypass_policy_lockout_safety_check != Some(true) {
                        check_lockout(
                            &parsed,
                            caller,
                            &id.arn(),
                            &id.to_string(),
                            self.clock.now_unix(),
                        )?;
                    }
                    p.clone()
                }
                None => default_policy(&format!("uid:{}", caller.uid)),
            };
            a.key_id = Some(id.to_string());
            let material = match origin {
                KeyOrigin::AwsKms => Some(generate_material(spec, usage)?),
                KeyOrigin::External => None,
            };
            self.mutate(|st, now| {
                let rec = KeyRecord {
                    id,
                    created: now,
                    description,
                    state: if material.is_some() {
                        KeyState::Enabled
                    } else {
                        KeyState::PendingImport
                    },
                    deletion_date: None,
                    pending_window_days: None,
                    tags: tags
                        .into_iter()
                        .map(|t| (t.tag_key, t.tag_value))
                        .collect::<BTreeMap<_, _>>(),
                    policy,
                    rotation_period_days: None,
                    next_rotation: None,
                    versions: material
                        .map(|material| KeyVersion {
                            version: 1,
                            created: now,
                            rotation_type: None,
                            material,
                        })
                        .into_iter()
                        .collect(),
                    spec,
                    usage,
                    origin,
                    import: None,
                };
                let meta = KeyMetadata::of(&rec);
                st.keys.insert(id, rec);
                Ok(CreateKeyResponse { key_metadata: meta })
            })
        })
    }

    /// DescribeKey (any key state).
    pub fn describe_key(
        &self,
        caller: &Principal,
        req: DescribeKeyRequest,
    ) -> Result<DescribeKeyResponse, KmsError> {
        self.audited(caller, "DescribeKey", |a| {
            check_tokens(req.grant_tokens.as_ref())?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize_as_requested(caller, "kms:DescribeKey", k, None, Some(&req.key_id))?;
            Ok(DescribeKeyResponse {
                key_metadata: KeyMetadata::of(k),
            })
        })
    }

    /// ListKeys, paged by key id.
    pub fn list_keys(
        &self,
        caller: &Principal,
        req: ListKeysRequest,
    ) -> Result<ListKeysResponse, KmsError> {
        self.audited(caller, "ListKeys", |_| {
            let limit = page_limit(req.limit)?;
            let snap = self.read_snapshot()?;
            let all: Vec<KeyListEntry> = snap
                .state
                .keys
                .values()
                .map(|k| KeyListEntry {
                    key_id: k.id.to_string(),
                    key_arn: k.arn(),
                })
                .collect();
            let (keys, next_marker, truncated) =
                page(&all, req.marker.as_deref(), limit, |e| e.key_id.clone())?;
            Ok(ListKeysResponse {
                keys,
                next_marker,
                truncated,
            })
        })
    }

    /// UpdateKeyDescription (Enabled or Disabled keys).
    pub fn update_key_description(
        &self,
        caller: &Principal,
        req: UpdateKeyDescriptionRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "UpdateKeyDescription", |a| {
            check_description(&req.description)?;
            self.mutate(|st, _| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:UpdateKeyDescription", k, None)?;
                require_not_pending(k)?;
                k.description = req.description.clone();
                Ok(EmptyResponse {})
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NullSink;
    use crate::{KdfParams, ManualClock, RootKeySource};
    use std::sync::Arc;

    #[test]
    fn default_policy_names_creator() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::create(
            &dir.path().join("e"),
            RootKeySource::Key(zeroize::Zeroizing::new([9u8; 32])),
            KdfParams::insecure_for_tests(),
            Arc::new(ManualClock::new(0)),
            Arc::new(NullSink),
        )
        .unwrap();
        let caller = Principal::from_ids(1234, 1234, vec![]);
        let id = e
            .create_key(&caller, CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        let snap = e.current().unwrap();
        let policy: serde_json::Value =
            serde_json::from_str(&snap.resolve(&id).unwrap().policy).unwrap();
        assert_eq!(policy["Statement"][0]["Principal"]["AWS"][0], "uid:1234");
        assert_eq!(policy["Statement"][0]["Action"], "kms:*");
    }
}
