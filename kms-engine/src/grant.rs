//! Grants: delegated, revocable permissions on one key for one grantee,
//! optionally constrained by the request's encryption context.
//!
//! Modeled on AWS KMS grants (CreateGrant, RetireGrant, RevokeGrant), with one
//! documented extension, [`GrantConstraints::kmsfs_path_prefix`], because a
//! grant per file path is impractical for a directory tree.
//!
//! Rules implemented here (the engine applies them):
//! - a grant allows an operation when the caller is the grantee, the
//!   operation is in the grant's list and, for operations that take an
//!   encryption context, every constraint holds;
//! - constraint keys compare case-insensitively and values case-sensitively,
//!   as AWS does for grant constraints;
//! - a grant may be retired by its retiring principal, or by its grantee when
//!   the grant includes `RetireGrant`; the engine also lets anyone whom the
//!   key policy allows `kms:RetireGrant` (the key's owner) retire it; revoking
//!   is decided by the key policy alone (`kms:RevokeGrant`);
//! - a grant token names its grant and takes effect at once.

use crate::context::EncryptionContext;
use crate::error::KmsError;
use crate::principal::Principal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The encryption-context key that carries a file's path in kmsfs.
pub const KMSFS_PATH_KEY: &str = "kmsfs:path";

/// An operation a grant can allow (AWS's `GrantOperation` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GrantOperation {
    Decrypt,
    Encrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    ReEncryptFrom,
    ReEncryptTo,
    Sign,
    Verify,
    GetPublicKey,
    CreateGrant,
    RetireGrant,
    DescribeKey,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
}

impl GrantOperation {
    /// Every operation, in AWS's documented order.
    pub const ALL: [GrantOperation; 17] = [
        GrantOperation::Decrypt,
        GrantOperation::Encrypt,
        GrantOperation::GenerateDataKey,
        GrantOperation::GenerateDataKeyWithoutPlaintext,
        GrantOperation::ReEncryptFrom,
        GrantOperation::ReEncryptTo,
        GrantOperation::Sign,
        GrantOperation::Verify,
        GrantOperation::GetPublicKey,
        GrantOperation::CreateGrant,
        GrantOperation::RetireGrant,
        GrantOperation::DescribeKey,
        GrantOperation::GenerateDataKeyPair,
        GrantOperation::GenerateDataKeyPairWithoutPlaintext,
        GrantOperation::GenerateMac,
        GrantOperation::VerifyMac,
        GrantOperation::DeriveSharedSecret,
    ];

    /// The AWS name, e.g. `"GenerateDataKey"`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantOperation::Decrypt => "Decrypt",
            GrantOperation::Encrypt => "Encrypt",
            GrantOperation::GenerateDataKey => "GenerateDataKey",
            GrantOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            GrantOperation::ReEncryptFrom => "ReEncryptFrom",
            GrantOperation::ReEncryptTo => "ReEncryptTo",
            GrantOperation::Sign => "Sign",
            GrantOperation::Verify => "Verify",
            GrantOperation::GetPublicKey => "GetPublicKey",
            GrantOperation::CreateGrant => "CreateGrant",
            GrantOperation::RetireGrant => "RetireGrant",
            GrantOperation::DescribeKey => "DescribeKey",
            GrantOperation::GenerateDataKeyPair => "GenerateDataKeyPair",
            GrantOperation::GenerateDataKeyPairWithoutPlaintext => {
                "GenerateDataKeyPairWithoutPlaintext"
            }
            GrantOperation::GenerateMac => "GenerateMac",
            GrantOperation::VerifyMac => "VerifyMac",
            GrantOperation::DeriveSharedSecret => "DeriveSharedSecret",
        }
    }

    /// The grant operation that covers a policy action (`"Decrypt"` or
    /// `"kms:Decrypt"`); `None` for actions no grant can allow (e.g.
    /// `PutKeyPolicy`, `RevokeGrant`).
    pub fn from_action(action: &str) -> Option<Self> {
        let name = strip_kms_prefix(action);
        GrantOperation::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(name))
    }

    /// True for the operations that take an encryption context, the only
    /// ones grant constraints apply to (as in AWS).
    pub fn uses_encryption_context(self) -> bool {
        matches!(
            self,
            GrantOperation::Decrypt
                | GrantOperation::Encrypt
                | GrantOperation::GenerateDataKey
                | GrantOperation::GenerateDataKeyWithoutPlaintext
                | GrantOperation::ReEncryptFrom
                | GrantOperation::ReEncryptTo
                | GrantOperation::GenerateDataKeyPair
                | GrantOperation::GenerateDataKeyPairWithoutPlaintext
        )
    }
}

impl fmt::Display for GrantOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantOperation {
    type Err = KmsError;
    /// Parses an AWS operation name, exactly as AWS spells it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantOperation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| {
                KmsError::Validation(format!(
                    "unknown grant operation {s:?}; valid operations: {}",
                    GrantOperation::ALL.map(|o| o.as_str()).join(", ")
                ))
            })
    }
}

fn strip_kms_prefix(action: &str) -> &str {
    match action.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("kms:") => &action[4..],
        _ => action,
    }
}

/// Conditions on the request's encryption context under which a grant
/// applies. Every constraint that is set must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantConstraints {
    /// The request's context must contain exactly these pairs.
    pub encryption_context_equals: Option<EncryptionContext>,
    /// The request's context must contain at least these pairs.
    pub encryption_context_subset: Option<EncryptionContext>,
    /// kmsfs extension: the request's `kmsfs:path` must equal this prefix or
    /// lie below it (start with the prefix followed by `/`). A trailing `/`
    /// on the prefix is ignored, so `/shared` and `/shared/` both match
    /// `/shared` and `/shared/a`, never `/shared2`; `/` matches every path.
    pub kmsfs_path_prefix: Option<String>,
}

impl GrantConstraints {
    /// Rejects constraints that could never be meant: an empty constraint
    /// map, a path prefix that is not absolute or has `.`/`..`/empty
    /// components.
    pub fn validate(&self) -> Result<(), KmsError> {
        for (name, map) in [
            ("EncryptionContextEquals", &self.encryption_context_equals),
            ("EncryptionContextSubset", &self.encryption_context_subset),
        ] {
            if map.as_ref().is_some_and(|m| m.is_empty()) {
                return Err(KmsError::Validation(format!(
                    "Constraints.{name} must contain at least one pair"
                )));
            }
        }
        if let Some(prefix) = &self.kmsfs_path_prefix {
            let trimmed = prefix.trim_end_matches('/');
            if !prefix.starts_with('/')
                || trimmed
                    .split('/')
                    .skip(1)
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(KmsError::Validation(format!(
                    "Constraints.KmsfsPathPrefix {prefix:?} must be an absolute path without \
                     empty, '.' or '..' components"
                )));
            }
        }
        Ok(())
    }

    /// True when every set constraint holds for the request's context
    /// (`None` = no context given, which only satisfies no constraint).
    pub fn allow(&self, ctx: Option<&EncryptionContext>) -> bool {
        let empty = EncryptionContext::new();
        let ctx = ctx.unwrap_or(&empty);
        if let Some(eq) = &self.encryption_context_equals
            && !(eq.len() == ctx.len() && contains_all(ctx, eq))
        {
            return false;
        }
        if let Some(sub) = &self.encryption_context_subset
            && !contains_all(ctx, sub)
        {
            return false;
        }
        if let Some(prefix) = &self.kmsfs_path_prefix {
            let Some(path) = lookup_ci(ctx, KMSFS_PATH_KEY) else {
                return false;
            };
            if !path_under(path, prefix) {
                return false;
            }
        }
        true
    }

    /// True when `self` is at least as strict as `parent`: every context
    /// this allows, the parent allows too (used when a grantee creates a
    /// grant through a grant that includes `CreateGrant`).
    pub fn at_least_as_strict_as(&self, parent: &GrantConstraints) -> bool {
        // An Equals constraint fixes the context; otherwise compare piecewise.
        if let Some(pe) = &parent.encryption_context_equals
            && self.encryption_context_equals.as_ref() != Some(pe)
        {
            return false;
        }
        if let Some(ps) = &parent.encryption_context_subset {
            let covered = self
                .encryption_context_subset
                .as_ref()
                .is_some_and(|s| contains_all(s, ps))
                || self
                    .encryption_context_equals
                    .as_ref()
                    .is_some_and(|e| contains_all(e, ps));
            if !covered {
                return false;
            }
        }
        if let Some(pp) = &parent.kmsfs_path_prefix {
            match &self.kmsfs_path_prefix {
                Some(cp) if path_under(cp.trim_end_matches('/'), pp) || cp == pp => {}
                _ => return false,
            }
        }
        true
    }
}

/// Context lookup with a case-insensitive key (exact match preferred).
fn lookup_ci<'a>(ctx: &'a EncryptionContext, key: &str) -> Option<&'a str> {
    ctx.get(key).map(String::as_str).or_else(|| {
        ctx.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    })
}

/// Every pair of `required` is in `ctx` (key case-insensitive, value exact).
fn contains_all(ctx: &EncryptionContext, required: &EncryptionContext) -> bool {
    required
        .iter()
        .all(|(k, v)| lookup_ci(ctx, k) == Some(v.as_str()))
}

/// `path` equals `prefix` or lies below it. A path with a `.` or `..`
/// component never matches, so no path can climb out of the prefix.
pub fn path_under(path: &str, prefix: &str) -> bool {
    if path.split('/').any(|c| c == "." || c == "..") {
        return false;
    }
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A grant on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// 64 hex digits, unique in the engine.
    pub grant_id: String,
    /// The token returned when the grant was created.
    pub grant_token: String,
    pub key_id: String,
    /// The friendly name that makes CreateGrant retries idempotent.
    pub name: Option<String>,
    /// Who receives the permissions: `uid:N`, `user:NAME`, `gid:N` or
    /// `group:NAME`.
    pub grantee_principal: String,
    /// Who may retire the grant (same forms).
    pub retiring_principal: Option<String>,
    pub operations: Vec<GrantOperation>,
    pub constraints: Option<GrantConstraints>,
    /// The principal that created the grant (`Principal`'s display form).
    pub issuing_principal: String,
    /// Creation time, Unix seconds.
    pub creation_date: i64,
}

/// What a CreateGrant call asks for; also what makes two calls "the same"
/// for the idempotent Name rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub key_id: String,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    pub operations: Vec<GrantOperation>,
    pub constraints: Option<GrantConstraints>,
    pub name: Option<String>,
}

impl GrantRequest {
    /// Checks the request's own shape: a non-empty operation list, principal
    /// ids in a form a policy can name, a sensible Name, valid constraints.
    pub fn validate(&self) -> Result<(), KmsError> {
        if self.operations.is_empty() {
            return Err(KmsError::Validation(
                "Operations must name at least one grant operation".into(),
            ));
        }
        validate_principal_id("GranteePrincipal", &self.grantee_principal)?;
        if let Some(r) = &self.retiring_principal {
            validate_principal_id("RetiringPrincipal", r)?;
        }
        if let Some(n) = &self.name {
            let ok = !n.is_empty()
                && n.len() <= 256
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c));
            if !ok {
                return Err(KmsError::Validation(format!(
                    "Name {n:?} must be 1 to 256 characters of a-z, A-Z, 0-9, ':', '/', '_' or '-'"
                )));
            }
        }
        if let Some(c) = &self.constraints {
            c.validate()?;
        }
        Ok(())
    }

    /// Builds the grant with fresh random id and token.
    pub fn into_grant(self, issuer: &Principal, now_unix: i64) -> Result<Grant, KmsError> {
        self.validate()?;
        let grant_id = new_grant_id()?;
        let grant_token = new_grant_token(&grant_id)?;
        let mut operations = self.operations;
        operations.sort();
        operations.dedup();
        Ok(Grant {
            grant_id,
            grant_token,
            key_id: self.key_id,
            name: self.name,
            grantee_principal: self.grantee_principal,
            retiring_principal: self.retiring_principal,
            operations,
            constraints: self.constraints,
            issuing_principal: issuer.to_string(),
            creation_date: now_unix,
        })
    }
}

/// A grant id or retiring/grantee principal must be a local identity form.
fn validate_principal_id(field: &str, id: &str) -> Result<(), KmsError> {
    crate::policy::PrincipalId::parse(id)
        .ok()
        .filter(|p| !matches!(p, crate::policy::PrincipalId::Any))
        .map(|_| ())
        .ok_or_else(|| {
            KmsError::Validation(format!(
                "{field} {id:?} must be one of uid:N, user:NAME, gid:N, group:NAME"
            ))
        })
}

fn principal_is(caller: &Principal, id: &str) -> bool {
    crate::policy::PrincipalId::parse(id).is_ok_and(|p| p.matches(caller))
}

impl Grant {
    /// True when `caller` is this grant's grantee.
    pub fn is_grantee(&self, caller: &Principal) -> bool {
        principal_is(caller, &self.grantee_principal)
    }

    /// True when this grant lets `caller` perform `operation` on its key with
    /// the request's encryption context.
    pub fn allows(
        &self,
        caller: &Principal,
        operation: GrantOperation,
        ctx: Option<&EncryptionContext>,
    ) -> bool {
        self.operations.contains(&operation)
            && self.is_grantee(caller)
            && (!operation.uses_encryption_context()
                || self.constraints.as_ref().is_none_or(|c| c.allow(ctx)))
    }

    /// Why `caller` may retire this grant, if it may (the key-policy route
    /// for the key's owner is checked by the engine).
    pub fn retire_authority(&self, caller: &Principal) -> Option<RetireAuthority> {
        if self
            .retiring_principal
            .as_deref()
            .is_some_and(|r| principal_is(caller, r))
        {
            Some(RetireAuthority::RetiringPrincipal)
        } else if self.operations.contains(&GrantOperation::RetireGrant) && self.is_grantee(caller)
        {
            Some(RetireAuthority::Grantee)
        } else {
            None
        }
    }

    /// True when `caller`, holding this grant with `CreateGrant`, may create
    /// a grant for `operations` under `constraints`: the new grant may not
    /// allow more than this one (AWS's rule for grants made from grants).
    pub fn allows_child_grant(
        &self,
        caller: &Principal,
        operations: &[GrantOperation],
        constraints: Option<&GrantConstraints>,
    ) -> bool {
        if !self.allows(caller, GrantOperation::CreateGrant, None)
            || !operations.iter().all(|o| self.operations.contains(o))
        {
            return false;
        }
        match (&self.constraints, constraints) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(c)) => c.at_least_as_strict_as(p),
        }
    }

    /// True when `req` is a retry of the request that created this grant
    /// (same key, Name, grantee, retiring principal, operations and
    /// constraints). Only named requests are ever retries.
    pub fn is_retry_of(&self, req: &GrantRequest) -> bool {
        let mut ops = req.operations.clone();
        ops.sort();
        ops.dedup();
        req.name.is_some()
            && self.name == req.name
            && self.key_id == req.key_id
            && self.grantee_principal == req.grantee_principal
            && self.retiring_principal == req.retiring_principal
            && self.operations == ops
            && self.constraints == req.constraints
    }
}

/// Which rule lets a caller retire a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireAuthority {
    RetiringPrincipal,
    Grantee,
}

const TOKEN_VERSION: u8 = 1;
const TOKEN_NONCE_LEN: usize = 16;

fn random_bytes<const N: usize>() -> Result<[u8; N], KmsError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| KmsError::Internal("random number generator failed".into()))?;
    Ok(b)
}

/// A fresh grant id: 64 lowercase hex digits.
pub fn new_grant_id() -> Result<String, KmsError> {
    let b: [u8; 32] = random_bytes()?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A fresh token for `grant_id`. Tokens are not secrets (as in AWS, a token
/// only lets the grantee use a grant it already holds); each call yields a
/// different token for the same grant.
pub fn new_grant_token(grant_id: &str) -> Result<String, KmsError> {
    let id = hex_decode(grant_id)
        .ok_or_else(|| KmsError::InvalidGrantId(format!("{grant_id:?} is not a grant id")))?;
    let nonce: [u8; TOKEN_NONCE_LEN] = random_bytes()?;
    let mut raw = Vec::with_capacity(1 + id.len() + TOKEN_NONCE_LEN);
    raw.push(TOKEN_VERSION);
    raw.extend_from_slice(&id);
    raw.extend_from_slice(&nonce);
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

/// The grant id a token names, or InvalidGrantTokenException.
pub fn grant_id_from_token(token: &str) -> Result<String, KmsError> {
    let bad = || KmsError::InvalidGrantToken("the grant token is not valid".into());
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    if raw.len() != 1 + 32 + TOKEN_NONCE_LEN || raw[0] != TOKEN_VERSION {
        return Err(bad());
    }
    Ok(raw[1..33].iter().map(|x| format!("{x:02x}")).collect())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
