//! Key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations. Due automatic rotations are applied
//! by the engine itself (see `State::apply_due`).

use crate::engine::Engine;
use crate::key::RotationType;
use crate::ops::keys::EmptyResponse;
use crate::ops::require_enabled;
use crate::state::add_version;
use crate::wire::{page, page_limit};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

pub const DEFAULT_ROTATION_DAYS: u32 = 365;
pub const MIN_ROTATION_DAYS: u32 = 90;
pub const MAX_ROTATION_DAYS: u32 = 2560;
/// Most on-demand rotations per key (AWS: 10).
pub const MAX_ON_DEMAND_ROTATIONS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnableKeyRotationRequest {
    pub key_id: String,
    #[serde(default)]
    pub rotation_period_in_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyRotationStatusResponse {
    pub key_rotation_enabled: bool,
    /// The key ARN.
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rotation_period_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_rotation_date: Option<i64>,
    /// Set while an on-demand rotation is in progress; rotations here are
    /// instantaneous, so always absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_demand_rotation_start_date: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateKeyOnDemandResponse {
    /// The key id.
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsRequest {
    pub key_id: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub marker: Option<String>,
}

/// One completed rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEntry {
    pub key_id: String,
    pub rotation_date: i64,
    /// `AUTOMATIC` or `ON_DEMAND`.
    pub rotation_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsResponse {
    pub rotations: Vec<RotationEntry>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

/// AWS rotates only symmetric encryption keys: the rotation operations on an
/// asymmetric or HMAC key are UnsupportedOperationException.
fn require_rotatable(k: &crate::key::KeyRecord) -> Result<(), KmsError> {
    if k.spec.is_symmetric() {
        return Ok(());
    }
    Err(KmsError::UnsupportedOperation(format!(
        "{} key spec is {}: only symmetric encryption KMS keys can be rotated.",
        k.arn(),
        k.spec.as_str()
    )))
}

/// Rotating a key with imported material: AWS never rotates it
/// automatically (EnableKeyRotation is UnsupportedOperationException), and
/// rotates it on demand only into new key material imported beforehand
/// (several materials per key, 2025), which this engine does not keep: so
/// RotateKeyOnDemand is UnsupportedOperationException too.
fn refuse_external(k: &crate::key::KeyRecord, op: &str) -> Result<(), KmsError> {
    if k.origin != crate::keyspec::KeyOrigin::External {
        return Ok(());
    }
    Err(KmsError::UnsupportedOperation(format!(
        "{} has imported key material (origin EXTERNAL): {op} is not supported for it.",
        k.arn()
    )))
}

impl Engine {
    /// EnableKeyRotation: RotationPeriodInDays 90–2560 (default 365). The
    /// first automatic rotation falls due one period from now; changing the
    /// period of an enabled schedule keeps its anchor (the last rotation).
    pub fn enable_key_rotation(
        &self,
        caller: &Principal,
        req: EnableKeyRotationRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "EnableKeyRotation", |a| {
            let days = req.rotation_period_in_days.unwrap_or(DEFAULT_ROTATION_DAYS);
            if !(MIN_ROTATION_DAYS..=MAX_ROTATION_DAYS).contains(&days) {
                return Err(KmsError::Validation(format!(
                    "RotationPeriodInDays must be between {MIN_ROTATION_DAYS} and {MAX_ROTATION_DAYS}, got {days}"
                )));
            }
            a.request_parameters = Some(serde_json::json!({ "rotationPeriodInDays": days }));
            self.mutate(|st, now| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:EnableKeyRotation", k, None)?;
                require_rotatable(k)?;
                refuse_external(k, "automatic key rotation")?;
                require_enabled(k)?;
                let anchor = match (k.next_rotation, k.rotation_period_days) {
                    (Some(next), Some(old)) => next - i64::from(old) * 86_400,
                    _ => now,
                };
                k.rotation_period_days = Some(days);
                k.next_rotation = Some(anchor + i64::from(days) * 86_400);
                Ok(EmptyResponse {})
            })
        })
    }

    /// DisableKeyRotation.
    pub fn disable_key_rotation(
        &self,
        caller: &Principal,
        req: crate::ops::lifecycle::KeyIdRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "DisableKeyRotation", |a| {
            self.mutate(|st, _| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:DisableKeyRotation", k, None)?;
                require_rotatable(k)?;
                require_enabled(k)?;
                k.rotation_period_days = None;
                k.next_rotation = None;
                Ok(EmptyResponse {})
            })
        })
    }

    /// GetKeyRotationStatus (any key state).
    pub fn get_key_rotation_status(
        &self,
        caller: &Principal,
        req: crate::ops::lifecycle::KeyIdRequest,
    ) -> Result<GetKeyRotationStatusResponse, KmsError> {
        self.audited(caller, "GetKeyRotationStatus", |a| {
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:GetKeyRotationStatus", k, None)?;
            require_rotatable(k)?;
            Ok(GetKeyRotationStatusResponse {
                key_rotation_enabled: k.rotation_period_days.is_some(),
                key_id: k.arn(),
                rotation_period_in_days: k.rotation_period_days,
                next_rotation_date: k.next_rotation,
                on_demand_rotation_start_date: None,
            })
        })
    }

    /// RotateKeyOnDemand: a new key version now (at most 10 per key); the
    /// automatic schedule is unchanged.
    pub fn rotate_key_on_demand(
        &self,
        caller: &Principal,
        req: crate::ops::lifecycle::KeyIdRequest,
    ) -> Result<RotateKeyOnDemandResponse, KmsError> {
        self.audited(caller, "RotateKeyOnDemand", |a| {
            self.mutate(|st, now| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:RotateKeyOnDemand", k, None)?;
                require_rotatable(k)?;
                refuse_external(k, "RotateKeyOnDemand")?;
                require_enabled(k)?;
                if k.on_demand_rotations() >= MAX_ON_DEMAND_ROTATIONS {
                    return Err(KmsError::LimitExceeded(format!(
                        "{} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations",
                        k.arn()
                    )));
                }
                add_version(k, now, RotationType::OnDemand)?;
                Ok(RotateKeyOnDemandResponse {
                    key_id: k.id.to_string(),
                })
            })
        })
    }

    /// ListKeyRotations (any key state), oldest first; paged by version.
    pub fn list_key_rotations(
        &self,
        caller: &Principal,
        req: ListKeyRotationsRequest,
    ) -> Result<ListKeyRotationsResponse, KmsError> {
        self.audited(caller, "ListKeyRotations", |a| {
            let limit = page_limit(req.limit)?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:ListKeyRotations", k, None)?;
            require_rotatable(k)?;
            let all: Vec<(u32, RotationEntry)> = k
                .versions
                .iter()
                .filter_map(|v| {
                    v.rotation_type.map(|t| {
                        (
                            v.version,
                            RotationEntry {
                                key_id: k.arn(),
                                rotation_date: v.created,
                                rotation_type: t.as_str().into(),
                            },
                        )
                    })
                })
                .collect();
            // Markers are zero-padded version numbers so they sort as strings.
            let (page_items, next_marker, truncated) =
                page(&all, req.marker.as_deref(), limit, |(v, _)| {
                    format!("{v:010}")
                })?;
            Ok(ListKeyRotationsResponse {
                rotations: page_items.into_iter().map(|(_, e)| e).collect(),
                next_marker,
                truncated,
            })
        })
    }
}
