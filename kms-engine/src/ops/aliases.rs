//! CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use crate::engine::Engine;
use crate::ids::alias_arn;
use crate::key::AliasRecord;
use crate::ops::keys::EmptyResponse;
use crate::ops::require_not_pending;
use crate::wire::{page, page_limit};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Reserved prefix for AWS managed keys.
pub const RESERVED_PREFIX: &str = "alias/aws/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAliasRequest {
    pub alias_name: String,
    pub target_key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAliasRequest {
    pub alias_name: String,
    pub target_key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAliasRequest {
    pub alias_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListAliasesRequest {
    pub key_id: Option<String>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
}

/// One entry of ListAliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasListEntry {
    pub alias_name: String,
    pub alias_arn: String,
    pub target_key_id: String,
    pub creation_date: i64,
    pub last_updated_date: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesResponse {
    pub aliases: Vec<AliasListEntry>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

/// Checks an alias name: `alias/` + 1.. of `[A-Za-z0-9/_-]`, at most 256
/// characters, not under `alias/aws/`.
pub fn validate_alias_name(name: &str) -> Result<(), KmsError> {
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(KmsError::Validation(format!(
            "alias name {name:?} must begin with alias/"
        )));
    };
    if rest.is_empty()
        || name.len() > 256
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    {
        return Err(KmsError::Validation(format!(
            "alias name {name:?} must be alias/ followed by 1 to 250 of A-Z a-z 0-9 / _ -"
        )));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(KmsError::InvalidAliasName(format!(
            "the alias prefix {RESERVED_PREFIX} is reserved for AWS managed keys"
        )));
    }
    Ok(())
}

fn entry(a: &AliasRecord) -> AliasListEntry {
    AliasListEntry {
        alias_name: a.name.clone(),
        alias_arn: alias_arn(&a.name),
        target_key_id: a.target.to_string(),
        creation_date: a.created,
        last_updated_date: a.updated,
    }
}

fn target_id(target: &str) -> Result<&str, KmsError> {
    if target.starts_with("alias/") || target.contains(":alias/") {
        return Err(KmsError::Validation(
            "TargetKeyId must be a key id or key ARN, not an alias".into(),
        ));
    }
    Ok(target)
}

impl Engine {
    /// CreateAlias: the target must be Enabled or Disabled.
    pub fn create_alias(
        &self,
        caller: &Principal,
        req: CreateAliasRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "CreateAlias", |a| {
            a.request_parameters = Some(serde_json::json!({ "aliasName": req.alias_name }));
            validate_alias_name(&req.alias_name)?;
            self.mutate(|st, now| {
                let k = st.resolve(target_id(&req.target_key_id)?)?;
                a.key(k);
                self.authorize(caller, "kms:CreateAlias", k, None)?;
                require_not_pending(k)?;
                let target = k.id;
                if st.aliases.contains_key(&req.alias_name) {
                    return Err(KmsError::AlreadyExists(format!(
                        "An alias with the name {} already exists",
                        alias_arn(&req.alias_name)
                    )));
                }
                st.aliases.insert(
                    req.alias_name.clone(),
                    AliasRecord {
                        name: req.alias_name.clone(),
                        target,
                        created: now,
                        updated: now,
                    },
                );
                Ok(EmptyResponse {})
            })
        })
    }

    /// UpdateAlias: points an existing alias at another key.
    pub fn update_alias(
        &self,
        caller: &Principal,
        req: UpdateAliasRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "UpdateAlias", |a| {
            a.request_parameters = Some(serde_json::json!({ "aliasName": req.alias_name }));
            validate_alias_name(&req.alias_name)?;
            self.mutate(|st, now| {
                let old = st
                    .aliases
                    .get(&req.alias_name)
                    .ok_or_else(|| {
                        KmsError::NotFound(format!(
                            "Alias '{}' is not found.",
                            alias_arn(&req.alias_name)
                        ))
                    })?
                    .target;
                if let Some(old_key) = st.keys.get(&old) {
                    self.authorize(caller, "kms:UpdateAlias", old_key, None)?;
                }
                let k = st.resolve(target_id(&req.target_key_id)?)?;
                a.key(k);
                self.authorize(caller, "kms:UpdateAlias", k, None)?;
                require_not_pending(k)?;
                let target = k.id;
                if let Some(al) = st.aliases.get_mut(&req.alias_name) {
                    al.target = target;
                    al.updated = now;
                }
                Ok(EmptyResponse {})
            })
        })
    }

    /// DeleteAlias (allowed whatever the target's state).
    pub fn delete_alias(
        &self,
        caller: &Principal,
        req: DeleteAliasRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "DeleteAlias", |a| {
            a.request_parameters = Some(serde_json::json!({ "aliasName": req.alias_name }));
            if !req.alias_name.starts_with("alias/") {
                return Err(KmsError::Validation(
                    "alias name must begin with alias/".into(),
                ));
            }
            if req.alias_name.starts_with(RESERVED_PREFIX) {
                return Err(KmsError::InvalidAliasName(format!(
                    "the alias prefix {RESERVED_PREFIX} is reserved for AWS managed keys"
                )));
            }
            self.mutate(|st, _| {
                let target = st
                    .aliases
                    .get(&req.alias_name)
                    .ok_or_else(|| {
                        KmsError::NotFound(format!(
                            "Alias '{}' is not found.",
                            alias_arn(&req.alias_name)
                        ))
                    })?
                    .target;
                if let Some(k) = st.keys.get(&target) {
                    a.key(k);
                    self.authorize(caller, "kms:DeleteAlias", k, None)?;
                }
                st.aliases.remove(&req.alias_name);
                Ok(EmptyResponse {})
            })
        })
    }

    /// ListAliases, optionally only those of one key, paged by alias name.
    pub fn list_aliases(
        &self,
        caller: &Principal,
        req: ListAliasesRequest,
    ) -> Result<ListAliasesResponse, KmsError> {
        self.audited(caller, "ListAliases", |a| {
            let limit = page_limit(req.limit)?;
            let snap = self.read_snapshot()?;
            let filter = match &req.key_id {
                Some(id) => {
                    let k = snap.resolve(id)?;
                    a.key(k);
                    Some(k.id)
                }
                None => None,
            };
            let all: Vec<AliasListEntry> = snap
                .state
                .aliases
                .values()
                .filter(|al| filter.is_none_or(|f| al.target == f))
                .map(entry)
                .collect();
            let (aliases, next_marker, truncated) =
                page(&all, req.marker.as_deref(), limit, |e| e.alias_name.clone())?;
            Ok(ListAliasesResponse {
                aliases,
                next_marker,
                truncated,
            })
        })
    }
}
