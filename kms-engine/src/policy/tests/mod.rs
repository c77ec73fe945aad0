//! Table-driven tests of policy parsing, conditions and evaluation; shared
//! fixtures live here.

mod conditions;
mod evaluation;
mod malformed;

use super::*;
use crate::context::{EncryptionContext, context_from};
use crate::grant::{Grant, GrantConstraints, GrantOperation, GrantRequest};
use crate::principal::Unresolved;
use serde_json::{Value, json};

const ARN: &str = "arn:aws:kms:local:000000000000:key/k1";
const KEY: &str = "k1";
/// 2025-06-15T15:06:40Z
const NOW: i64 = 1_750_000_000;

fn alice() -> Principal {
    Principal {
        uid: 1000,
        gid: 1000,
        groups: vec![50],
        user_name: Some("alice".into()),
        group_names: vec!["alice".into(), "staff".into()],
        unresolved: Unresolved::default(),
        invoked_by: None,
    }
}

fn bob() -> Principal {
    Principal {
        uid: 1001,
        gid: 1001,
        groups: vec![60],
        user_name: Some("bob".into()),
        group_names: vec!["bob".into(), "other".into()],
        unresolved: Unresolved::default(),
        invoked_by: None,
    }
}

/// An owned request, turned into a borrowed [`RequestContext`].
#[derive(Clone)]
struct Req {
    principal: Principal,
    action: &'static str,
    ec: Option<EncryptionContext>,
    grant_ops: Option<Vec<GrantOperation>>,
    grantee: Option<&'static str>,
    retiring: Option<&'static str>,
    alias: Option<&'static str>,
    key_spec: Option<&'static str>,
    algorithm: Option<&'static str>,
    bypass: Option<bool>,
    valid_to: Option<i64>,
}

fn req() -> Req {
    Req {
        principal: alice(),
        action: "Decrypt",
        ec: None,
        grant_ops: None,
        grantee: None,
        retiring: None,
        alias: None,
        key_spec: None,
        algorithm: None,
        bypass: None,
        valid_to: None,
    }
}

impl Req {
    fn ec(mut self, pairs: &[(&str, &str)]) -> Self {
        self.ec = Some(context_from(pairs.iter().copied()));
        self
    }
    fn who(mut self, p: Principal) -> Self {
        self.principal = p;
        self
    }
    fn action(mut self, a: &'static str) -> Self {
        self.action = a;
        self
    }
    fn ops(mut self, ops: &[GrantOperation]) -> Self {
        self.grant_ops = Some(ops.to_vec());
        self
    }
    fn ctx(&self) -> RequestContext<'_> {
        RequestContext {
            principal: &self.principal,
            action: self.action,
            resource_arn: ARN,
            key_id: KEY,
            encryption_context: self.ec.as_ref(),
            grant_operations: self.grant_ops.as_deref(),
            grantee_principal: self.grantee,
            retiring_principal: self.retiring,
            request_alias: self.alias,
            key_spec: self.key_spec,
            key_usage: None,
            encryption_algorithm: self.algorithm,
            key_origin: None,
            signing_algorithm: None,
            mac_algorithm: None,
            key_agreement_algorithm: None,
            message_type: None,
            data_key_pair_spec: None,
            wrapping_algorithm: None,
            wrapping_key_spec: None,
            expiration_model: None,
            valid_to: self.valid_to,
            bypass_policy_lockout_safety_check: self.bypass,
            now_unix: NOW,
        }
    }
}

fn doc(statements: Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn policy(statements: Value) -> Policy {
    Policy::parse(&doc(statements)).unwrap()
}

/// Whether a condition block holds, via an "Allow everything if" policy.
fn cond_holds(condition: &Value, r: &Req) -> bool {
    let p = policy(json!([{
        "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
        "Condition": condition
    }]));
    evaluate(&p, &r.ctx()).allowed
}
