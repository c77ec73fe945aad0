//! CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey (IAM's
//! names and shapes, with `Principal` where IAM has `UserName`): the access
//! keys AWS clients sign HTTPS requests with; and the lookup SigV4
//! verification uses ([`AccessKeyLookup`] for the engine).
//!
//! Who may manage access keys: the engine's administrators, which are root
//! (uid 0) and the owner of the engine store directory (who can open the
//! store anyway). An access key holds no more power than the principal it
//! names, but it lets a remote client act as that principal, so issuing one
//! is an administrator's act, like adding an account.

use crate::access_key::{
    AccessKeyRecord, AccessKeySecret, AccessKeyStatus, LAST_USED_GRANULARITY_SECS,
    MAX_KEYS_PER_PRINCIPAL, iam_user_arn_spec,
};
use crate::engine::Engine;
use crate::identity::{IdentityError, Resolver};
use crate::ops::keys::EmptyResponse;
use crate::service::http::sigv4::{AccessKeyCredential, AccessKeyLookup};
use crate::wire::page;
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyRequest {
    /// `user:NAME`, `uid:N` or `arn:aws:iam::ACCOUNT:user/NAME`.
    pub principal: String,
}

/// The new key, with its secret: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: AccessKeySecret,
    pub status: String,
    pub principal: String,
    /// Unix seconds.
    pub create_date: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyResponse {
    pub access_key: NewAccessKey,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListAccessKeysRequest {
    /// Only this principal's keys (any accepted form).
    pub principal: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

/// One key of ListAccessKeys: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyMetadata {
    pub access_key_id: String,
    pub status: String,
    pub principal: String,
    /// Unix seconds.
    pub create_date: i64,
    /// Unix seconds, to the hour; absent if never used.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_used_date: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysResponse {
    pub access_key_metadata: Vec<AccessKeyMetadata>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccessKeyRequest {
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAccessKeyRequest {
    pub access_key_id: String,
}

/// The principal spec `s` names, normalized (`arn:aws:iam::ACCOUNT:user/NAME`
/// becomes `user:NAME`); only `user:NAME` and `uid:N` are accepted.
pub fn normalize_principal_spec(s: &str) -> Result<String, KmsError> {
    if let Some(spec) = iam_user_arn_spec(s) {
        return Ok(spec);
    }
    let bad = || {
        KmsError::Validation(format!(
            "Principal must be user:NAME, uid:N or arn:aws:iam::ACCOUNT:user/NAME, not {s:?}"
        ))
    };
    match s.split_once(':') {
        Some(("uid", n)) => n
            .parse::<u32>()
            .map(|u| format!("uid:{u}"))
            .map_err(|_| bad()),
        Some(("user", n))
            if !n.is_empty()
                && n.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != ':') =>
        {
            Ok(s.to_string())
        }
        _ => Err(bad()),
    }
}

fn metadata(r: &AccessKeyRecord) -> AccessKeyMetadata {
    AccessKeyMetadata {
        access_key_id: r.id.clone(),
        status: r.status.as_str().into(),
        principal: r.principal.clone(),
        create_date: r.created,
        last_used_date: r.last_used,
    }
}

fn no_such_key(id: &str) -> KmsError {
    KmsError::NotFound(format!("The Access Key with id {id} cannot be found."))
}

impl Engine {
    /// Whether `p` is an engine administrator: root or the owner of the
    /// store directory.
    fn is_admin(&self, p: &Principal) -> Result<bool, KmsError> {
        if p.uid == 0 {
            return Ok(true);
        }
        let owner = std::fs::metadata(self.dir())
            .map_err(|e| KmsError::io("reading the engine directory's owner", &e))?
            .uid();
        Ok(p.uid == owner)
    }

    /// AccessDenied unless `caller` (and, for an on-behalf-of call, the
    /// client that made it) is an administrator.
    fn require_admin(&self, caller: &Principal, action: &str) -> Result<(), KmsError> {
        let client_ok = match &caller.invoked_by {
            Some(c) => self.is_admin(c)?,
            None => true,
        };
        if client_ok && self.is_admin(caller)? {
            return Ok(());
        }
        Err(KmsError::AccessDenied(format!(
            "User: {caller} is not authorized to perform: {action}: access keys are managed \
             by root and the owner of the engine store only"
        )))
    }

    /// CreateAccessKey: a new Active key for a principal that exists in the
    /// account database. The response holds the secret; it is never shown
    /// again (nor audited).
    pub fn create_access_key(
        &self,
        caller: &Principal,
        req: CreateAccessKeyRequest,
    ) -> Result<CreateAccessKeyResponse, KmsError> {
        self.audited(caller, "CreateAccessKey", |a| {
            a.request_parameters = Some(json!({"principal": req.principal}));
            self.require_admin(caller, "iam:CreateAccessKey")?;
            let spec = normalize_principal_spec(&req.principal)?;
            Resolver::system()
                .principal_for_spec(&spec)
                .map_err(|e| match e {
                    IdentityError::NoSuchUser(_) => KmsError::NotFound(e.to_string()),
                    IdentityError::BadSpec(_) => KmsError::Validation(e.to_string()),
                    IdentityError::Lookup { .. } => KmsError::Internal(e.to_string()),
                })?;
            let rec = self.mutate(|st, now| {
                let held = st
                    .access_keys
                    .values()
                    .filter(|k| k.principal == spec)
                    .count();
                if held >= MAX_KEYS_PER_PRINCIPAL {
                    return Err(KmsError::LimitExceeded(format!(
                        "{spec} already has {held} access keys, the most one principal may \
                         have; delete one first"
                    )));
                }
                let rec = AccessKeyRecord::generate(&spec, now)?;
                if st.access_keys.contains_key(&rec.id) {
                    return Err(KmsError::Internal("access key id collision".into()));
                }
                st.access_keys.insert(rec.id.clone(), rec.clone());
                Ok(rec)
            })?;
            a.request_parameters = Some(json!({"principal": spec, "accessKeyId": rec.id}));
            Ok(CreateAccessKeyResponse {
                access_key: NewAccessKey {
                    access_key_id: rec.id,
                    secret_access_key: rec.secret,
                    status: rec.status.as_str().into(),
                    principal: rec.principal,
                    create_date: rec.created,
                },
            })
        })
    }

    /// ListAccessKeys, by id, optionally of one principal; never a secret.
    pub fn list_access_keys(
        &self,
        caller: &Principal,
        req: ListAccessKeysRequest,
    ) -> Result<ListAccessKeysResponse, KmsError> {
        self.audited(caller, "ListAccessKeys", |a| {
            if let Some(p) = &req.principal {
                a.request_parameters = Some(json!({"principal": p}));
            }
            self.require_admin(caller, "iam:ListAccessKeys")?;
            let want = req
                .principal
                .as_deref()
                .map(normalize_principal_spec)
                .transpose()?;
            let limit = crate::wire::page_limit(req.max_items)?;
            let snap = self.read_snapshot()?;
            let all: Vec<AccessKeyMetadata> = snap
                .state
                .access_keys
                .values()
                .filter(|k| want.as_ref().is_none_or(|w| *w == k.principal))
                .map(metadata)
                .collect();
            let (keys, marker, is_truncated) = page(&all, req.marker.as_deref(), limit, |k| {
                k.access_key_id.clone()
            })?;
            Ok(ListAccessKeysResponse {
                access_key_metadata: keys,
                is_truncated,
                marker,
            })
        })
    }

    /// UpdateAccessKey: Active or Inactive. An Inactive key authenticates
    /// nothing (UnrecognizedClientException) until made Active again.
    pub fn update_access_key(
        &self,
        caller: &Principal,
        req: UpdateAccessKeyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "UpdateAccessKey", |a| {
            a.request_parameters =
                Some(json!({"accessKeyId": req.access_key_id, "status": req.status}));
            self.require_admin(caller, "iam:UpdateAccessKey")?;
            let status = AccessKeyStatus::parse(&req.status)?;
            self.mutate(|st, _| {
                let k = st
                    .access_keys
                    .get_mut(&req.access_key_id)
                    .ok_or_else(|| no_such_key(&req.access_key_id))?;
                k.status = status;
                Ok(EmptyResponse {})
            })
        })
    }

    /// DeleteAccessKey: the key and its secret are gone from the store.
    pub fn delete_access_key(
        &self,
        caller: &Principal,
        req: DeleteAccessKeyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "DeleteAccessKey", |a| {
            a.request_parameters = Some(json!({"accessKeyId": req.access_key_id}));
            self.require_admin(caller, "iam:DeleteAccessKey")?;
            self.mutate(|st, _| {
                st.access_keys
                    .remove(&req.access_key_id)
                    .map(|_| EmptyResponse {})
                    .ok_or_else(|| no_such_key(&req.access_key_id))
            })
        })
    }

    /// Sets the key's last-used time when the stored one is older than
    /// [`LAST_USED_GRANULARITY_SECS`] (at most one store write per key and
    /// hour). Best effort: a failed write is logged, the request goes on.
    pub(crate) fn note_access_key_use(&self, id: &str, now: i64) {
        let stale = match self.current() {
            Ok(s) => s.state.access_keys.get(id).is_some_and(|k| {
                k.last_used
                    .is_none_or(|t| now.saturating_sub(t) >= LAST_USED_GRANULARITY_SECS)
            }),
            Err(_) => false,
        };
        if !stale {
            return;
        }
        let r = self.mutate(|st, now| {
            if let Some(k) = st.access_keys.get_mut(id) {
                k.last_used = Some(now - now.rem_euclid(LAST_USED_GRANULARITY_SECS));
            }
            Ok(())
        });
        if let Err(e) = r {
            log::warn!("access key {id}: cannot record its last use: {e}");
        }
    }
}

/// The engine's access keys, for [`crate::service::http::sigv4::verify`]: the principal a key
/// names is resolved now, through the engine's one identity resolver; a key
/// whose user no longer exists authenticates nothing.
impl AccessKeyLookup for Engine {
    fn access_key(&self, id: &str) -> Result<Option<AccessKeyCredential>, KmsError> {
        let snap = self.read_snapshot()?;
        let Some(rec) = snap.state.access_keys.get(id) else {
            return Ok(None);
        };
        let principal = match Resolver::system().principal_for_spec(&rec.principal) {
            Ok(p) => p,
            Err(IdentityError::NoSuchUser(u)) => {
                log::warn!("access key {id} names {u:?}, who no longer exists; refused");
                return Ok(None);
            }
            Err(e) => return Err(KmsError::Internal(e.to_string())),
        };
        Ok(Some(AccessKeyCredential {
            secret: Zeroizing::new(rec.secret.as_str().to_string()),
            active: rec.status == AccessKeyStatus::Active,
            principal,
        }))
    }
}
