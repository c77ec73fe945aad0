//! Explaining a decision: for each statement and grant, whether it applied
//! and, if not, the first reason why not. Used by `kmsfs policy check`.

use super::evaluate::{
    Applies, Decision, RequestContext, StatementRef, applies, evaluate_with_grants,
};
use super::{Effect, Policy};
use crate::grant::{Grant, GrantOperation};
use serde_json::{Value, json};
use std::fmt;

/// Whether one statement applied to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementOutcome {
    Applies,
    PrincipalMismatch,
    ActionMismatch,
    ResourceMismatch,
    /// The first condition that is false, as written in the policy.
    ConditionFalse {
        operator: String,
        key: String,
    },
}

impl fmt::Display for StatementOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatementOutcome::Applies => f.write_str("applies"),
            StatementOutcome::PrincipalMismatch => f.write_str("principal does not match"),
            StatementOutcome::ActionMismatch => f.write_str("action does not match"),
            StatementOutcome::ResourceMismatch => f.write_str("resource does not match"),
            StatementOutcome::ConditionFalse { operator, key } => {
                write!(f, "condition {operator} on {key} is false")
            }
        }
    }
}

/// One statement's part in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementTrace {
    pub statement: StatementRef,
    pub effect: Effect,
    pub outcome: StatementOutcome,
}

/// One grant's part in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTrace {
    pub grant_id: String,
    pub name: Option<String>,
    pub grantee_principal: String,
    /// `"allows"` or why the grant does not apply.
    pub outcome: &'static str,
}

/// A decision with the reasoning behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    pub statements: Vec<StatementTrace>,
    pub grants: Vec<GrantTrace>,
}

/// Evaluates like [`evaluate_with_grants`] and records every statement's and
/// grant's outcome.
pub fn explain(policy: &Policy, grants: &[Grant], ctx: &RequestContext<'_>) -> Explanation {
    let decision = evaluate_with_grants(policy, grants, ctx);
    let statements = policy
        .statements
        .iter()
        .map(|s| StatementTrace {
            statement: s.reference(),
            effect: s.effect,
            outcome: match applies(s, ctx) {
                Applies::Yes => StatementOutcome::Applies,
                Applies::PrincipalMismatch => StatementOutcome::PrincipalMismatch,
                Applies::ActionMismatch => StatementOutcome::ActionMismatch,
                Applies::ResourceMismatch => StatementOutcome::ResourceMismatch,
                Applies::ConditionFalse(i) => StatementOutcome::ConditionFalse {
                    operator: s.conditions[i].operator_name.clone(),
                    key: s.conditions[i].key_name.clone(),
                },
            },
        })
        .collect();
    let op = GrantOperation::from_action(ctx.action);
    let grants = grants
        .iter()
        .filter(|g| g.key_id == ctx.key_id)
        .map(|g| GrantTrace {
            grant_id: g.grant_id.clone(),
            name: g.name.clone(),
            grantee_principal: g.grantee_principal.clone(),
            outcome: match op {
                None => "no grant can allow this action",
                Some(op) if !g.operations.contains(&op) => "operation not granted",
                Some(_) if !g.is_grantee(ctx.principal) => "caller is not the grantee",
                Some(op) if g.allows(ctx.principal, op, ctx.encryption_context) => "allows",
                Some(_) => "constraints not met by the encryption context",
            },
        })
        .collect();
    Explanation {
        decision,
        statements,
        grants,
    }
}

impl Explanation {
    /// JSON form for `--output json`.
    pub fn to_json(&self) -> Value {
        let reason = &self.decision.reason;
        json!({
            "Allowed": self.decision.allowed,
            "Reason": reason.to_string(),
            "DecidedBy": match reason {
                super::DecisionReason::ExplicitDeny(s) | super::DecisionReason::PolicyAllow(s) =>
                    json!({"Statement": s.index, "Sid": s.sid}),
                super::DecisionReason::GrantAllow { grant_id } => json!({"GrantId": grant_id}),
                super::DecisionReason::ImplicitDeny => Value::Null,
            },
            "Statements": self.statements.iter().map(|t| json!({
                "Statement": t.statement.index,
                "Sid": t.statement.sid,
                "Effect": t.effect.to_string(),
                "Outcome": t.outcome.to_string(),
            })).collect::<Vec<_>>(),
            "Grants": self.grants.iter().map(|g| json!({
                "GrantId": g.grant_id,
                "Name": g.name,
                "GranteePrincipal": g.grantee_principal,
                "Outcome": g.outcome,
            })).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.decision)?;
        for t in &self.statements {
            writeln!(f, "  {} {}: {}", t.effect, t.statement, t.outcome)?;
        }
        for g in &self.grants {
            writeln!(
                f,
                "  grant {} (grantee {}): {}",
                g.grant_id, g.grantee_principal, g.outcome
            )?;
        }
        Ok(())
    }
}
