//! Key state changes: EnableKey, DisableKey, ScheduleKeyDeletion,
//! CancelKeyDeletion.

use crate::engine::Engine;
use crate::key::KeyState;
use crate::ops::keys::EmptyResponse;
use crate::ops::require_not_pending;
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Request naming one key (EnableKey, DisableKey, CancelKeyDeletion ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdRequest {
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionRequest {
    pub key_id: String,
    #[serde(default)]
    pub pending_window_in_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionResponse {
    /// The key ARN.
    pub key_id: String,
    /// Unix seconds.
    pub deletion_date: i64,
    pub key_state: String,
    pub pending_window_in_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelKeyDeletionResponse {
    /// The key ARN.
    pub key_id: String,
}

impl Engine {
    /// EnableKey (Enabled or Disabled keys).
    pub fn enable_key(
        &self,
        caller: &Principal,
        req: KeyIdRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.set_enabled(
            caller,
            "EnableKey",
            "kms:EnableKey",
            &req.key_id,
            KeyState::Enabled,
        )
    }

    /// DisableKey (Enabled or Disabled keys).
    pub fn disable_key(
        &self,
        caller: &Principal,
        req: KeyIdRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.set_enabled(
            caller,
            "DisableKey",
            "kms:DisableKey",
            &req.key_id,
            KeyState::Disabled,
        )
    }

    fn set_enabled(
        &self,
        caller: &Principal,
        op: &str,
        action: &str,
        key_id: &str,
        to: KeyState,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, op, |a| {
            self.mutate(|st, _| {
                let k = st.resolve_mut(key_id)?;
                a.key(k);
                self.authorize(caller, action, k, None)?;
                require_not_pending(k)?;
                // A key without its imported material is neither enabled
                // nor disabled until ImportKeyMaterial (AWS's key state table).
                if k.state == KeyState::PendingImport {
                    return Err(crate::ops::pending_import(k));
                }
                k.state = to;
                Ok(EmptyResponse {})
            })
        })
    }

    /// ScheduleKeyDeletion: PendingWindowInDays 7–30 (default 30).
    pub fn schedule_key_deletion(
        &self,
        caller: &Principal,
        req: ScheduleKeyDeletionRequest,
    ) -> Result<ScheduleKeyDeletionResponse, KmsError> {
        self.audited(caller, "ScheduleKeyDeletion", |a| {
            let days = req.pending_window_in_days.unwrap_or(30);
            if !(7..=30).contains(&days) {
                return Err(KmsError::Validation(format!(
                    "PendingWindowInDays must be between 7 and 30, got {days}"
                )));
            }
            a.request_parameters = Some(serde_json::json!({ "pendingWindowInDays": days }));
            self.mutate(|st, now| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:ScheduleKeyDeletion", k, None)?;
                require_not_pending(k)?;
                let when = now + i64::from(days) * 86_400;
                k.state = KeyState::PendingDeletion;
                k.deletion_date = Some(when);
                k.pending_window_days = Some(days);
                Ok(ScheduleKeyDeletionResponse {
                    key_id: k.arn(),
                    deletion_date: when,
                    key_state: KeyState::PendingDeletion.as_str().into(),
                    pending_window_in_days: days,
                })
            })
        })
    }

    /// CancelKeyDeletion: the key returns to Disabled (PendingImport for an
    /// EXTERNAL key whose material is gone).
    pub fn cancel_key_deletion(
        &self,
        caller: &Principal,
        req: KeyIdRequest,
    ) -> Result<CancelKeyDeletionResponse, KmsError> {
        self.audited(caller, "CancelKeyDeletion", |a| {
            self.mutate(|st, _| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:CancelKeyDeletion", k, None)?;
                if k.state != KeyState::PendingDeletion {
                    return Err(KmsError::InvalidState(format!(
                        "{} is not pending deletion.",
                        k.arn()
                    )));
                }
                k.state = if k.has_material() {
                    KeyState::Disabled
                } else {
                    KeyState::PendingImport
                };
                k.deletion_date = None;
                k.pending_window_days = None;
                Ok(CancelKeyDeletionResponse { key_id: k.arn() })
            })
        })
    }
}
