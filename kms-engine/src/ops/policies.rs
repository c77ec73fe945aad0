//! PutKeyPolicy, GetKeyPolicy, ListKeyPolicies. A key has one policy, named
//! `default`.

use crate::EncryptionContext;
use crate::engine::Engine;
use crate::ops::keys::EmptyResponse;
use crate::ops::require_not_pending;
use crate::policy::{
    DEFAULT_POLICY_NAME, Explanation, Policy, RequestContext, check_lockout, explain,
};
use crate::wire::{SYMMETRIC_DEFAULT, page_limit};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutKeyPolicyRequest {
    pub key_id: String,
    /// Only `default` (the default when absent).
    #[serde(default)]
    pub policy_name: Option<String>,
    pub policy: String,
    #[serde(default)]
    pub bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyRequest {
    pub key_id: String,
    #[serde(default)]
    pub policy_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyResponse {
    pub policy: String,
    pub policy_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesRequest {
    pub key_id: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesResponse {
    pub policy_names: Vec<String>,
    pub truncated: bool,
}

fn check_policy_name(name: Option<&str>) -> Result<(), KmsError> {
    match name {
        None | Some(DEFAULT_POLICY_NAME) => Ok(()),
        Some(other) => Err(KmsError::NotFound(format!(
            "key policy {other:?} does not exist; a key has one policy, named \
             \"{DEFAULT_POLICY_NAME}\""
        ))),
    }
}

impl Engine {
    /// PutKeyPolicy: replaces the key's policy after validating it and, unless
    /// bypassed, checking that the caller could still change it afterwards.
    pub fn put_key_policy(
        &self,
        caller: &Principal,
        req: PutKeyPolicyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "PutKeyPolicy", |a| {
            a.request_parameters = Some(serde_json::json!({
                "policyName": req.policy_name.as_deref().unwrap_or(DEFAULT_POLICY_NAME),
                "bypassPolicyLockoutSafetyCheck":
                    req.bypass_policy_lockout_safety_check.unwrap_or(false),
            }));
            check_policy_name(req.policy_name.as_deref())?;
            let bypass = req.bypass_policy_lockout_safety_check.unwrap_or(false);
            self.mutate(|st, now| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                let (arn, id) = (k.arn(), k.id.to_string());
                let mut rc = RequestContext::new(caller, "kms:PutKeyPolicy", &arn, &id, now);
                rc.bypass_policy_lockout_safety_check = Some(bypass);
                rc.key_spec = Some(SYMMETRIC_DEFAULT);
                rc.key_usage = Some("ENCRYPT_DECRYPT");
                self.authorize_request(k, &rc)?;
                require_not_pending(k)?;
                let parsed = Policy::parse(&req.policy)?;
                if !bypass {
                    check_lockout(&parsed, caller, &arn, &id, now)?;
                }
                k.policy = req.policy.clone();
                Ok(EmptyResponse {})
            })
        })
    }

    /// GetKeyPolicy: the policy document as stored.
    pub fn get_key_policy(
        &self,
        caller: &Principal,
        req: GetKeyPolicyRequest,
    ) -> Result<GetKeyPolicyResponse, KmsError> {
        self.audited(caller, "GetKeyPolicy", |a| {
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:GetKeyPolicy", k, None)?;
            check_policy_name(req.policy_name.as_deref())?;
            Ok(GetKeyPolicyResponse {
                policy: k.policy.clone(),
                policy_name: DEFAULT_POLICY_NAME.into(),
            })
        })
    }

    /// ListKeyPolicies: always `["default"]`.
    pub fn list_key_policies(
        &self,
        caller: &Principal,
        req: ListKeyPoliciesRequest,
    ) -> Result<ListKeyPoliciesResponse, KmsError> {
        self.audited(caller, "ListKeyPolicies", |a| {
            page_limit(req.limit)?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:ListKeyPolicies", k, None)?;
            let names = match req.marker.as_deref() {
                Some(m) if m >= DEFAULT_POLICY_NAME => Vec::new(),
                _ => vec![DEFAULT_POLICY_NAME.to_string()],
            };
            Ok(ListKeyPoliciesResponse {
                policy_names: names,
                truncated: false,
            })
        })
    }

    /// Explains how the key's policy and grants decide `action` (e.g.
    /// `"kms:Decrypt"`) for `principal` with `ctx`, without performing it
    /// (`kmsfs policy check`). Not an AWS operation and not audited: it uses
    /// no key and reveals only what GetKeyPolicy and ListGrants would.
    pub fn explain_access(
        &self,
        key_id: &str,
        principal: &Principal,
        action: &str,
        ctx: Option<&EncryptionContext>,
    ) -> Result<Explanation, KmsError> {
        let snap = self.read_snapshot()?;
        let k = snap.resolve(key_id)?;
        let (arn, id) = (k.arn(), k.id.to_string());
        let mut rc = RequestContext::new(principal, action, &arn, &id, self.clock.now_unix());
        rc.encryption_context = ctx;
        rc.key_spec = Some(SYMMETRIC_DEFAULT);
        rc.key_usage = Some("ENCRYPT_DECRYPT");
        if ctx.is_some() {
            rc.encryption_algorithm = Some(SYMMETRIC_DEFAULT);
        }
        let policy = snap.policy_of(k)?;
        Ok(explain(&policy, snap.grants_of(k), &rc))
    }
}
