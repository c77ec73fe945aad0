//! CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.
//!
//! Who may do what (see also [`crate::grant`]):
//! - CreateGrant: the key policy allows `kms:CreateGrant` (conditions may use
//!   `kms:GrantOperations`, `kms:GranteePrincipal`, `kms:RetiringPrincipal`),
//!   or the caller holds a grant with `CreateGrant` whose operations and
//!   constraints cover the new grant; a Deny statement always wins.
//! - RetireGrant: the grant's retiring principal, its grantee when the grant
//!   includes `RetireGrant`, or whoever the key policy allows `kms:RetireGrant`.
//! - RevokeGrant: whoever the key policy allows `kms:RevokeGrant`.
//! - ListRetirableGrants: only the retiring principal itself (there is no key
//!   whose policy could decide it).
//!
//! Grants take effect at once: the store is the single source of truth, so
//! a grant token is valid as soon as CreateGrant returns.

use crate::EncryptionContext;
use crate::engine::{Engine, access_denied};
use crate::grant::{
    Grant, GrantConstraints, GrantOperation, GrantRequest, grant_id_from_token, new_grant_token,
};
use crate::ids::KeyId;
use crate::ops::keys::EmptyResponse;
use crate::ops::require_not_pending;
use crate::policy::{DecisionReason, PrincipalId, RequestContext, evaluate};
use crate::wire::{page, page_limit};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Most grants one key may carry.
pub const MAX_GRANTS_PER_KEY: usize = 10_000;

/// AWS `GrantConstraints`, plus the kmsfs extension `KmsfsPathPrefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GrantConstraintsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_equals: Option<EncryptionContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_subset: Option<EncryptionContext>,
    /// kmsfs extension: `kmsfs:path` must equal this prefix or lie below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kmsfs_path_prefix: Option<String>,
}

impl From<GrantConstraintsWire> for GrantConstraints {
    fn from(w: GrantConstraintsWire) -> Self {
        GrantConstraints {
            encryption_context_equals: w.encryption_context_equals,
            encryption_context_subset: w.encryption_context_subset,
            kmsfs_path_prefix: w.kmsfs_path_prefix,
        }
    }
}

impl From<&GrantConstraints> for GrantConstraintsWire {
    fn from(c: &GrantConstraints) -> Self {
        GrantConstraintsWire {
            encryption_context_equals: c.encryption_context_equals.clone(),
            encryption_context_subset: c.encryption_context_subset.clone(),
            kmsfs_path_prefix: c.kmsfs_path_prefix.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGrantRequest {
    pub key_id: String,
    pub grantee_principal: String,
    #[serde(default)]
    pub retiring_principal: Option<String>,
    pub operations: Vec<GrantOperation>,
    #[serde(default)]
    pub constraints: Option<GrantConstraintsWire>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGrantResponse {
    pub grant_token: String,
    pub grant_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGrantsRequest {
    pub key_id: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub marker: Option<String>,
    #[serde(default)]
    pub grant_id: Option<String>,
    #[serde(default)]
    pub grantee_principal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRetirableGrantsRequest {
    pub retiring_principal: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub marker: Option<String>,
}

/// AWS `GrantListEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GrantListEntry {
    pub key_id: String,
    pub grant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unix seconds.
    pub creation_date: i64,
    pub grantee_principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
    /// The principal that created the grant.
    pub issuing_account: String,
    pub operations: Vec<GrantOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<GrantConstraintsWire>,
}

impl GrantListEntry {
    fn of(g: &Grant) -> Self {
        let arn = KeyId::parse(&g.key_id).map_or_else(|| g.key_id.clone(), |id| id.arn());
        GrantListEntry {
            key_id: arn,
            grant_id: g.grant_id.clone(),
            name: g.name.clone(),
            creation_date: g.creation_date,
            grantee_principal: g.grantee_principal.clone(),
            retiring_principal: g.retiring_principal.clone(),
            issuing_account: g.issuing_principal.clone(),
            operations: g.operations.clone(),
            constraints: g.constraints.as_ref().map(GrantConstraintsWire::from),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGrantsResponse {
    pub grants: Vec<GrantListEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RetireGrantRequest {
    pub grant_token: Option<String>,
    pub key_id: Option<String>,
    pub grant_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokeGrantRequest {
    pub key_id: String,
    pub grant_id: String,
}

/// Refuses a malformed grant token (InvalidGrantTokenException), as every
/// operation that takes `GrantTokens` does. The engine's grants take effect
/// at once, so a well-formed token adds no authority: the grant itself is
/// what the authorization looks at.
pub(crate) fn check_tokens(tokens: Option<&Vec<String>>) -> Result<(), KmsError> {
    for t in tokens.into_iter().flatten() {
        grant_id_from_token(t)?;
    }
    Ok(())
}

fn check_grant_id(id: &str) -> Result<(), KmsError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(KmsError::InvalidGrantId(format!(
            "{id:?} is not a valid grant id"
        )))
    }
}

fn not_found(grant_id: &str) -> KmsError {
    KmsError::NotFound(format!("Grant ID {grant_id} not found"))
}

fn page_of(
    mut grants: Vec<GrantListEntry>,
    marker: Option<&str>,
    limit: Option<u32>,
) -> Result<ListGrantsResponse, KmsError> {
    let limit = page_limit(limit)?;
    grants.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
    let (grants, next_marker, truncated) = page(&grants, marker, limit, |g| g.grant_id.clone())?;
    Ok(ListGrantsResponse {
        grants,
        next_marker,
        truncated,
    })
}

/// AWS refuses a grant for an operation the key cannot perform (Sign on a
/// symmetric key, GenerateDataKey on an asymmetric one) with
/// ValidationException.
fn check_operations_fit(k: &crate::key::KeyRecord, ops: &[GrantOperation]) -> Result<(), KmsError> {
    use crate::keyspec::KeyUsage as U;
    use GrantOperation as G;
    for &op in ops {
        let fits = match op {
            G::CreateGrant | G::RetireGrant | G::DescribeKey => true,
            G::Encrypt | G::Decrypt | G::ReEncryptFrom | G::ReEncryptTo => {
                k.usage == U::EncryptDecrypt
            }
            G::GenerateDataKey
            | G::GenerateDataKeyWithoutPlaintext
            | G::GenerateDataKeyPair
            | G::GenerateDataKeyPairWithoutPlaintext => k.spec.is_symmetric(),
            G::Sign | G::Verify => k.usage == U::SignVerify,
            G::GetPublicKey => k.spec.is_asymmetric(),
            G::GenerateMac | G::VerifyMac => k.usage == U::GenerateVerifyMac,
            G::DeriveSharedSecret => k.usage == U::KeyAgreement,
        };
        if !fits {
            return Err(KmsError::Validation(format!(
                "Grant operation {} is not valid for a key with KeySpec {} and KeyUsage {}",
                op.as_str(),
                k.spec.as_str(),
                k.usage.as_str()
            )));
        }
    }
    Ok(())
}

impl Engine {
    /// CreateGrant. A retry with the same Name and parameters returns the
    /// existing grant's id (with a fresh token) instead of a new grant.
    pub fn create_grant(
        &self,
        caller: &Principal,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        self.audited(caller, "CreateGrant", |a| {
            a.request_parameters = Some(serde_json::json!({
                "granteePrincipal": req.grantee_principal,
                "retiringPrincipal": req.retiring_principal,
                "operations": req.operations,
                "constraints": req.constraints,
                "name": req.name,
            }));
            check_tokens(req.grant_tokens.as_ref())?;
            self.mutate(|st, now| {
                let k = st.resolve(&req.key_id)?;
                a.key(k);
                let greq = GrantRequest {
                    key_id: k.id.to_string(),
                    grantee_principal: req.grantee_principal.clone(),
                    retiring_principal: req.retiring_principal.clone(),
                    operations: req.operations.clone(),
                    constraints: req.constraints.clone().map(GrantConstraints::from),
                    name: req.name.clone(),
                };
                greq.validate()?;
                let (arn, id, kid) = (k.arn(), k.id.to_string(), k.id);
                let mut rc = RequestContext::new(caller, "kms:CreateGrant", &arn, &id, now);
                rc.grant_operations = Some(&greq.operations);
                rc.grantee_principal = Some(&greq.grantee_principal);
                rc.retiring_principal = greq.retiring_principal.as_deref();
                rc.key_spec = Some(k.spec.as_str());
                rc.key_usage = Some(k.usage.as_str());
                rc.key_origin = Some(k.origin.as_str());
                // The policy alone first; a grant may stand in for an Allow
                // only if it covers the new grant.
                let snap = self.current()?;
                let policy = snap.policy_of(k)?;
                let d = evaluate(&policy, &rc);
                let via_grant = !matches!(d.reason, DecisionReason::ExplicitDeny(_))
                    && snap.grants_of(k).iter().any(|g| {
                        g.allows_child_grant(caller, &greq.operations, greq.constraints.as_ref())
                    });
                if !d.allowed && !via_grant {
                    return Err(access_denied(&rc, &d));
                }
                require_not_pending(k)?;
                check_operations_fit(k, &greq.operations)?;
                let grants = st.grants.entry(kid).or_default();
                if let Some(g) = grants.iter().find(|g| g.is_retry_of(&greq)) {
                    return Ok(CreateGrantResponse {
                        grant_token: new_grant_token(&g.grant_id)?,
                        grant_id: g.grant_id.clone(),
                    });
                }
                if grants.len() >= MAX_GRANTS_PER_KEY {
                    return Err(KmsError::LimitExceeded(format!(
                        "{arn} already has {MAX_GRANTS_PER_KEY} grants"
                    )));
                }
                let g = greq.into_grant(caller, now)?;
                let resp = CreateGrantResponse {
                    grant_token: g.grant_token.clone(),
                    grant_id: g.grant_id.clone(),
                };
                grants.push(g);
                Ok(resp)
            })
        })
    }

    /// ListGrants on one key, optionally filtered by GrantId or grantee.
    pub fn list_grants(
        &self,
        caller: &Principal,
        req: ListGrantsRequest,
    ) -> Result<ListGrantsResponse, KmsError> {
        self.audited(caller, "ListGrants", |a| {
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:ListGrants", k, None)?;
            let grants = snap
                .grants_of(k)
                .iter()
                .filter(|g| req.grant_id.as_ref().is_none_or(|id| &g.grant_id == id))
                .filter(|g| {
                    req.grantee_principal
                        .as_ref()
                        .is_none_or(|p| &g.grantee_principal == p)
                })
                .map(GrantListEntry::of)
                .collect();
            page_of(grants, req.marker.as_deref(), req.limit)
        })
    }

    /// ListRetirableGrants: every grant, on any key, whose retiring principal
    /// is `RetiringPrincipal`; the caller must be that principal.
    pub fn list_retirable_grants(
        &self,
        caller: &Principal,
        req: ListRetirableGrantsRequest,
    ) -> Result<ListGrantsResponse, KmsError> {
        self.audited(caller, "ListRetirableGrants", |_| {
            let who = PrincipalId::parse(&req.retiring_principal).map_err(KmsError::Validation)?;
            if matches!(who, PrincipalId::Any) || !who.matches(caller) {
                return Err(KmsError::AccessDenied(format!(
                    "User: {caller} is not authorized to perform: kms:ListRetirableGrants for \
                     {}: only that principal may list its retirable grants",
                    req.retiring_principal
                )));
            }
            let snap = self.read_snapshot()?;
            let grants = snap
                .state
                .grants
                .values()
                .flatten()
                .filter(|g| g.retiring_principal.as_deref() == Some(&req.retiring_principal))
                .map(GrantListEntry::of)
                .collect();
            page_of(grants, req.marker.as_deref(), req.limit)
        })
    }

    /// RetireGrant, by GrantToken or by KeyId + GrantId.
    pub fn retire_grant(
        &self,
        caller: &Principal,
        req: RetireGrantRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "RetireGrant", |a| {
            let grant_id = match (&req.grant_token, &req.grant_id) {
                (Some(t), given) => {
                    let id = grant_id_from_token(t)?;
                    if given.as_ref().is_some_and(|g| g != &id) {
                        return Err(KmsError::InvalidGrantToken(
                            "the grant token names a different grant than GrantId".into(),
                        ));
                    }
                    id
                }
                (None, Some(id)) if req.key_id.is_some() => {
                    check_grant_id(id)?;
                    id.clone()
                }
                _ => {
                    return Err(KmsError::Validation(
                        "identify the grant by GrantToken, or by KeyId and GrantId".into(),
                    ));
                }
            };
            a.request_parameters = Some(serde_json::json!({"grantId": grant_id}));
            self.mutate(|st, now| {
                let kid = match &req.key_id {
                    Some(key) => st.resolve_id(key)?,
                    None => *st
                        .grants
                        .iter()
                        .find(|(_, gs)| gs.iter().any(|g| g.grant_id == grant_id))
                        .map(|(kid, _)| kid)
                        .ok_or_else(|| not_found(&grant_id))?,
                };
                let k = st.keys.get(&kid).ok_or_else(|| not_found(&grant_id))?;
                a.key(k);
                let g = st
                    .grants
                    .get(&kid)
                    .and_then(|gs| gs.iter().find(|g| g.grant_id == grant_id))
                    .ok_or_else(|| not_found(&grant_id))?;
                let (arn, id) = (k.arn(), k.id.to_string());
                let rc = RequestContext::new(caller, "kms:RetireGrant", &arn, &id, now);
                let policy = self.current()?.policy_of(k)?;
                let d = evaluate(&policy, &rc);
                let denied = matches!(d.reason, DecisionReason::ExplicitDeny(_));
                if denied || (!d.allowed && g.retire_authority(caller).is_none()) {
                    return Err(access_denied(&rc, &d));
                }
                if let Some(gs) = st.grants.get_mut(&kid) {
                    gs.retain(|g| g.grant_id != grant_id);
                }
                Ok(EmptyResponse {})
            })
        })
    }

    /// RevokeGrant: the key policy must allow `kms:RevokeGrant`.
    pub fn revoke_grant(
        &self,
        caller: &Principal,
        req: RevokeGrantRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "RevokeGrant", |a| {
            a.request_parameters = Some(serde_json::json!({"grantId": req.grant_id}));
            check_grant_id(&req.grant_id)?;
            self.mutate(|st, _| {
                let k = st.resolve(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:RevokeGrant", k, None)?;
                let kid = k.id;
                let gs = st.grants.entry(kid).or_default();
                let before = gs.len();
                gs.retain(|g| g.grant_id != req.grant_id);
                if gs.len() == before {
                    return Err(not_found(&req.grant_id));
                }
                Ok(EmptyResponse {})
            })
        })
    }
}
