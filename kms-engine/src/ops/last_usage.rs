//! GetKeyLastUsage: when, and by which cryptographic operation, a key was
//! last used successfully (see [`crate::usage`] for how uses are kept).

use crate::engine::Engine;
use crate::ids::{KeyRef, parse_key_ref};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageRequest {
    pub key_id: String,
}

/// AWS `KeyLastUsageData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyLastUsageData {
    /// The operation, e.g. `Decrypt`.
    pub operation: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// The `requestID` of the call's audit record.
    pub kms_request_id: String,
    /// The `eventID` of the call's audit record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cloud_trail_event_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageResponse {
    /// The key id.
    pub key_id: String,
    /// Absent when the key was not used since tracking began.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_last_usage: Option<KeyLastUsageData>,
    /// When tracking began for this key: the later of the key's creation
    /// and the store's first open by a build that tracks.
    pub tracking_start_date: i64,
    pub key_creation_date: i64,
}

impl Engine {
    /// GetKeyLastUsage (any key state; key id or ARN, not aliases, as AWS).
    pub fn get_key_last_usage(
        &self,
        caller: &Principal,
        req: GetKeyLastUsageRequest,
    ) -> Result<GetKeyLastUsageResponse, KmsError> {
        self.audited(caller, "GetKeyLastUsage", |a| {
            if let KeyRef::Alias(_) = parse_key_ref(&req.key_id)? {
                return Err(KmsError::Validation(
                    "GetKeyLastUsage takes a key id or key ARN; alias names are not supported"
                        .into(),
                ));
            }
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:GetKeyLastUsage", k, None)?;
            let (start, last) = self
                .usage
                .last_use(&self.files, k.id, self.clock.now_unix())?;
            Ok(GetKeyLastUsageResponse {
                key_id: k.id.to_string(),
                key_last_usage: last.map(|u| KeyLastUsageData {
                    operation: u.operation,
                    timestamp: u.time,
                    kms_request_id: u.request_id,
                    cloud_trail_event_id: u.event_id,
                }),
                tracking_start_date: start.max(k.created),
                key_creation_date: k.created,
            })
        })
    }
}
