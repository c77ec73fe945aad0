//! Key policies: AWS's key-policy JSON grammar, parsed strictly, and its
//! evaluation (default deny, explicit deny wins, an allow from the policy or
//! a grant is required), with local identities as principals.
//!
//! Principals are written in AWS's shape and name local identities:
//! `"Principal": "*"` or `{"AWS": ["uid:1000", "user:alice", "gid:50",
//! "group:staff"]}`. Actions are `kms:NAME` with `*`/`?` wildcards matched
//! case-insensitively; resources are `*`, key ARNs (wildcards allowed) or a
//! bare key id. Conditions follow IAM's semantics (see [`condition`]).
//!
//! Two deliberate strictnesses beyond AWS, both to turn silent mistakes into
//! errors: an unknown condition key is refused (in AWS it would silently
//! never match, which flips negated operators to true), and a statement must
//! have a Principal or NotPrincipal.

pub mod condition;
mod evaluate;
mod explain;
mod lockout;
mod parse;
pub mod wildcard;

#[cfg(test)]
mod tests;

pub use condition::{ConditionClause, ConditionKey};
pub use evaluate::{
    Decision, DecisionReason, RequestContext, StatementRef, evaluate, evaluate_with_grants,
};
pub use explain::{Explanation, GrantTrace, StatementOutcome, StatementTrace, explain};
pub use lockout::check_lockout;

use crate::error::KmsError;
use crate::principal::Principal;
use std::fmt;

/// Largest accepted policy document, in bytes (AWS's limit).
pub const MAX_POLICY_BYTES: usize = 32 * 1024;
/// The only policy language version accepted.
pub const POLICY_VERSION: &str = "2012-10-17";
/// A key has exactly one policy, named `default` (as in AWS).
pub const DEFAULT_POLICY_NAME: &str = "default";

/// A parsed, validated key policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates a policy document; any defect is a
    /// MalformedPolicyDocumentException naming what is wrong and where.
    pub fn parse(document: &str) -> Result<Policy, KmsError> {
        parse::parse_policy(document)
    }
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// One local identity named in a policy or grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalId {
    /// `*`: every caller.
    Any,
    Uid(u32),
    Gid(u32),
    User(String),
    Group(String),
}

impl PrincipalId {
    /// Parses `*`, `uid:N`, `gid:N`, `user:NAME` or `group:NAME`; an IAM
    /// user ARN `arn:aws:iam::ACCOUNT:user/NAME` (any account, any path)
    /// names the local user NAME, as `user:NAME` does, so that a policy
    /// written for AWS names the user an access key maps to.
    pub fn parse(s: &str) -> Result<PrincipalId, String> {
        if s == "*" {
            return Ok(PrincipalId::Any);
        }
        if let Some(spec) = crate::access_key::iam_user_arn_spec(s) {
            return Ok(PrincipalId::User(spec["user:".len()..].to_string()));
        }
        let bad = || {
            format!(
                "principal {s:?} is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \
                 \"group:NAME\", \"arn:aws:iam::ACCOUNT:user/NAME\""
            )
        };
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let name_ok = !rest.is_empty()
            && rest
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != ':');
        match kind {
            "uid" => rest.parse().map(PrincipalId::Uid).map_err(|_| bad()),
            "gid" => rest.parse().map(PrincipalId::Gid).map_err(|_| bad()),
            "user" if name_ok => Ok(PrincipalId::User(rest.to_string())),
            "group" if name_ok => Ok(PrincipalId::Group(rest.to_string())),
            _ => Err(bad()),
        }
    }

    /// Whether this id names `p`: [`Match::Unknown`] when it could only
    /// through a part of `p` the resolver could not determine (its groups,
    /// a group's name, its user name).
    pub fn test(&self, p: &Principal) -> Match {
        let u = &p.unresolved;
        let (hit, undecided) = match self {
            PrincipalId::Any => (true, false),
            PrincipalId::Uid(uid) => (p.uid == *uid, false),
            PrincipalId::Gid(g) => (p.gid == *g || p.groups.contains(g), u.groups),
            PrincipalId::User(n) => (p.user_name.as_deref() == Some(n.as_str()), u.user_name),
            PrincipalId::Group(n) => (
                p.group_names.iter().any(|g| g == n),
                u.groups || u.group_names,
            ),
        };
        match (hit, undecided) {
            (true, _) => Match::Yes,
            (false, true) => Match::Unknown,
            (false, false) => Match::No,
        }
    }

    /// True when this id certainly names `p` (what an allow needs); the
    /// same answer as [`Principal::matches`] on the id's string form for a
    /// fully resolved principal.
    pub fn matches(&self, p: &Principal) -> bool {
        self.test(p) == Match::Yes
    }
}

/// Whether a principal id (or list) names a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    /// It would depend on something about the caller that could not be
    /// determined (unreadable groups): an Allow does not apply, a Deny
    /// does (fail closed).
    Unknown,
}

impl Match {
    fn negate(self) -> Match {
        match self {
            Match::Yes => Match::No,
            Match::No => Match::Yes,
            Match::Unknown => Match::Unknown,
        }
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalId::Any => f.write_str("*"),
            PrincipalId::Uid(u) => write!(f, "uid:{u}"),
            PrincipalId::Gid(g) => write!(f, "gid:{g}"),
            PrincipalId::User(n) => write!(f, "user:{n}"),
            PrincipalId::Group(n) => write!(f, "group:{n}"),
        }
    }
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    Principal(Vec<PrincipalId>),
    NotPrincipal(Vec<PrincipalId>),
}

impl Principals {
    /// Whether the Principal (any id names `p`) or NotPrincipal (no id
    /// names `p`) element covers `p`.
    pub fn test(&self, p: &Principal) -> Match {
        let ids = match self {
            Principals::Principal(ids) | Principals::NotPrincipal(ids) => ids,
        };
        let mut any = Match::No;
        for id in ids {
            match id.test(p) {
                Match::Yes => {
                    any = Match::Yes;
                    break;
                }
                Match::Unknown => any = Match::Unknown,
                Match::No => {}
            }
        }
        match self {
            Principals::Principal(_) => any,
            Principals::NotPrincipal(_) => any.negate(),
        }
    }

    /// True when a statement with `effect` applies to `p` as far as its
    /// principals go: certainly covered for an Allow, possibly covered for
    /// a Deny (fail closed when `p` is not fully resolved).
    pub fn covers(&self, p: &Principal, effect: Effect) -> bool {
        match self.test(p) {
            Match::Yes => true,
            Match::No => false,
            Match::Unknown => effect == Effect::Deny,
        }
    }
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: a list of patterns,
/// possibly negated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns {
    pub negated: bool,
    pub patterns: Vec<String>,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Position in the document's Statement list (0-based).
    pub index: usize,
    pub sid: Option<String>,
    pub effect: Effect,
    pub principals: Principals,
    pub actions: Patterns,
    /// `None` when the statement has no Resource: it then covers the key
    /// the policy is attached to, like `"Resource": "*"`.
    pub resources: Option<Patterns>,
    /// All must hold (AND).
    pub conditions: Vec<ConditionClause>,
}

impl Statement {
    /// A reference for decisions: index and Sid.
    pub fn reference(&self) -> StatementRef {
        StatementRef {
            index: self.index,
            sid: self.sid.clone(),
        }
    }

    /// True when the statement's Action/NotAction covers `action`
    /// (`"Decrypt"` or `"kms:Decrypt"`).
    pub fn action_matches(&self, action: &str) -> bool {
        let name = action
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("kms:"))
            .map_or(action, |_| &action[4..]);
        let hit = self.actions.patterns.iter().any(|p| {
            p == "*"
                || p.get(..4)
                    .is_some_and(|pre| pre.eq_ignore_ascii_case("kms:"))
                    && wildcard::matches_ignore_ascii_case(&p[4..], name)
        });
        hit != self.actions.negated
    }

    /// True when the statement's Resource/NotResource covers the key.
    pub fn resource_matches(&self, resource_arn: &str, key_id: &str) -> bool {
        let Some(r) = &self.resources else {
            return true;
        };
        let hit = r
            .patterns
            .iter()
            .any(|p| p == key_id || wildcard::matches(p, resource_arn));
        hit != r.negated
    }
}
