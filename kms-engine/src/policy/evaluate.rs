//! Policy evaluation: default deny, any matching Deny wins, otherwise an
//! Allow from the key policy or from a grant is required.

use super::{Effect, Policy, Statement};
use crate::context::EncryptionContext;
use crate::grant::{Grant, GrantOperation};
use crate::principal::Principal;
use std::fmt;

/// Everything a decision may look at. Borrowed, so the engine builds one per
/// call without copying.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    pub principal: &'a Principal,
    /// The permission asked for: `"Decrypt"` or `"kms:Decrypt"`. ReEncrypt
    /// asks for `ReEncryptFrom` on the source key and `ReEncryptTo` on the
    /// destination key.
    pub action: &'a str,
    pub resource_arn: &'a str,
    pub key_id: &'a str,
    /// The request's encryption context, if it has one.
    pub encryption_context: Option<&'a EncryptionContext>,
    /// CreateGrant only: the operations the new grant would allow.
    pub grant_operations: Option<&'a [GrantOperation]>,
    /// CreateGrant only.
    pub grantee_principal: Option<&'a str>,
    /// CreateGrant only.
    pub retiring_principal: Option<&'a str>,
    /// The alias the caller named the key by, if any.
    pub request_alias: Option<&'a str>,
    pub key_spec: Option<&'a str>,
    pub key_usage: Option<&'a str>,
    pub encryption_algorithm: Option<&'a str>,
    /// `kms:KeyOrigin` (`AWS_KMS` or `EXTERNAL`).
    pub key_origin: Option<&'a str>,
    /// Sign and Verify.
    pub signing_algorithm: Option<&'a str>,
    /// GenerateMac and VerifyMac.
    pub mac_algorithm: Option<&'a str>,
    /// DeriveSharedSecret.
    pub key_agreement_algorithm: Option<&'a str>,
    /// Sign and Verify: `RAW` or `DIGEST`.
    pub message_type: Option<&'a str>,
    /// GenerateDataKeyPair(WithoutPlaintext).
    pub data_key_pair_spec: Option<&'a str>,
    /// GetParametersForImport: `kms:WrappingAlgorithm`.
    pub wrapping_algorithm: Option<&'a str>,
    /// GetParametersForImport: `kms:WrappingKeySpec`.
    pub wrapping_key_spec: Option<&'a str>,
    /// ImportKeyMaterial: `kms:ExpirationModel`.
    pub expiration_model: Option<&'a str>,
    /// ImportKeyMaterial: `kms:ValidTo` (Unix seconds; absent for material
    /// that does not expire).
    pub valid_to: Option<i64>,
    /// PutKeyPolicy/CreateKey only.
    pub bypass_policy_lockout_safety_check: Option<bool>,
    /// For `aws:CurrentTime` / `aws:EpochTime`.
    pub now_unix: i64,
}

impl<'a> RequestContext<'a> {
    /// A context with only the required fields set.
    pub fn new(
        principal: &'a Principal,
        action: &'a str,
        resource_arn: &'a str,
        key_id: &'a str,
        now_unix: i64,
    ) -> Self {
        RequestContext {
            principal,
            action,
            resource_arn,
            key_id,
            encryption_context: None,
            grant_operations: None,
            grantee_principal: None,
            retiring_principal: None,
            request_alias: None,
            key_spec: None,
            key_usage: None,
            encryption_algorithm: None,
            key_origin: None,
            signing_algorithm: None,
            mac_algorithm: None,
            key_agreement_algorithm: None,
            message_type: None,
            data_key_pair_spec: None,
            wrapping_algorithm: None,
            wrapping_key_spec: None,
            expiration_model: None,
            valid_to: None,
            bypass_policy_lockout_safety_check: None,
            now_unix,
        }
    }

    /// Sets the encryption context.
    pub fn with_encryption_context(mut self, ctx: &'a EncryptionContext) -> Self {
        self.encryption_context = Some(ctx);
        self
    }
}

/// A statement named in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    pub index: usize,
    pub sid: Option<String>,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "Statement[{}] (Sid {sid:?})", self.index),
            None => write!(f, "Statement[{}]", self.index),
        }
    }
}

/// What decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionReason {
    /// A Deny statement matched.
    ExplicitDeny(StatementRef),
    /// An Allow statement matched (and no Deny did).
    PolicyAllow(StatementRef),
    /// A grant allowed it (and no Deny statement matched).
    GrantAllow { grant_id: String },
    /// Nothing allowed it.
    ImplicitDeny,
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionReason::ExplicitDeny(s) => write!(f, "explicitly denied by {s}"),
            DecisionReason::PolicyAllow(s) => write!(f, "allowed by {s}"),
            DecisionReason::GrantAllow { grant_id } => write!(f, "allowed by grant {grant_id}"),
            DecisionReason::ImplicitDeny => f.write_str("no statement allowed it (implicit deny)"),
        }
    }
}

/// The outcome of evaluating a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: DecisionReason,
}

impl Decision {
    fn allow(reason: DecisionReason) -> Self {
        Decision {
            allowed: true,
            reason,
        }
    }
    fn deny(reason: DecisionReason) -> Self {
        Decision {
            allowed: false,
            reason,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "ALLOW" } else { "DENY" };
        write!(f, "{verdict}: {}", self.reason)
    }
}

/// Why a statement does or does not apply to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Yes,
    PrincipalMismatch,
    ActionMismatch,
    ResourceMismatch,
    /// The condition at this index (in `Statement::conditions`) is false.
    ConditionFalse(usize),
}

/// Whether `s` applies to `ctx`, checking the cheap parts first.
pub(super) fn applies(s: &Statement, ctx: &RequestContext<'_>) -> Applies {
    if !s.action_matches(ctx.action) {
        return Applies::ActionMismatch;
    }
    if !s.principals.covers(ctx.principal, s.effect) {
        return Applies::PrincipalMismatch;
    }
    if !s.resource_matches(ctx.resource_arn, ctx.key_id) {
        return Applies::ResourceMismatch;
    }
    match s.conditions.iter().position(|c| !c.holds(ctx)) {
        Some(i) => Applies::ConditionFalse(i),
        None => Applies::Yes,
    }
}

/// Evaluates the key policy alone (no grants).
pub fn evaluate(policy: &Policy, ctx: &RequestContext<'_>) -> Decision {
    evaluate_with_grants(policy, &[], ctx)
}

/// Evaluates the key policy and the key's grants: a matching Deny statement
/// wins; otherwise the first matching Allow statement, then the first grant
/// that allows the action, decides; otherwise implicit deny.
pub fn evaluate_with_grants(
    policy: &Policy,
    grants: &[Grant],
    ctx: &RequestContext<'_>,
) -> Decision {
    let mut allow: Option<&Statement> = None;
    for s in &policy.statements {
        if applies(s, ctx) != Applies::Yes {
            continue;
        }
        match s.effect {
            Effect::Deny => return Decision::deny(DecisionReason::ExplicitDeny(s.reference())),
            Effect::Allow => {
                allow.get_or_insert(s);
            }
        }
    }
    if let Some(s) = allow {
        return Decision::allow(DecisionReason::PolicyAllow(s.reference()));
    }
    if let Some(op) = GrantOperation::from_action(ctx.action)
        && let Some(g) = grants
            .iter()
            .find(|g| g.key_id == ctx.key_id && g.allows(ctx.principal, op, ctx.encryption_context))
    {
        return Decision::allow(DecisionReason::GrantAllow {
            grant_id: g.grant_id.clone(),
        });
    }
    Decision::deny(DecisionReason::ImplicitDeny)
}
