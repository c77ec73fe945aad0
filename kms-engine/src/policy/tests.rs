//! Table-driven tests of policy parsing, conditions and evaluation.

use super::*;
use crate::context::{EncryptionContext, context_from};
use crate::grant::{Grant, GrantConstraints, GrantOperation, GrantRequest};
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
    }
}

fn bob() -> Principal {
    Principal {
        uid: 1001,
        gid: 1001,
        groups: vec![60],
        user_name: Some("bob".into()),
        group_names: vec!["bob".into(), "other".into()],
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

#[test]
fn condition_operators_table() {
    use GrantOperation as G;
    let dept = |v: &str| req().ec(&[("dept", v)]);
    let path = |v: &str| req().ec(&[("kmsfs:path", v), ("kmsfs:volume", "v1")]);
    let keys = |ks: &[&str]| {
        let pairs: Vec<(&str, &str)> = ks.iter().map(|k| (*k, "x")).collect();
        req().ec(&pairs)
    };
    let mut bypass_true = req();
    bypass_true.bypass = Some(true);
    let mut bypass_false = req();
    bypass_false.bypass = Some(false);
    let mut grantee = req().action("CreateGrant");
    grantee.grantee = Some("uid:1001");
    grantee.retiring = Some("uid:1000");
    let mut alias = req();
    alias.alias = Some("alias/finance");
    let mut spec = req();
    spec.key_spec = Some("SYMMETRIC_DEFAULT");
    spec.algorithm = Some("SYMMETRIC_DEFAULT");

    let cases: Vec<(&str, Value, Req, bool)> = vec![
        // String family
        (
            "StringEquals match",
            json!({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}),
            dept("finance"),
            true,
        ),
        (
            "StringEquals value is case-sensitive",
            json!({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}),
            dept("Finance"),
            false,
        ),
        (
            "StringEquals values are OR",
            json!({"StringEquals": {"kms:EncryptionContext:dept": ["hr", "finance"]}}),
            dept("finance"),
            true,
        ),
        (
            "StringEquals missing key",
            json!({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}),
            req(),
            false,
        ),
        (
            "StringEquals missing key, other context",
            json!({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}),
            req().ec(&[("x", "finance")]),
            false,
        ),
        (
            "StringNotEquals differs",
            json!({"StringNotEquals": {"kms:EncryptionContext:dept": "finance"}}),
            dept("hr"),
            true,
        ),
        (
            "StringNotEquals equal",
            json!({"StringNotEquals": {"kms:EncryptionContext:dept": "finance"}}),
            dept("finance"),
            false,
        ),
        (
            "StringNotEquals missing key is true",
            json!({"StringNotEquals": {"kms:EncryptionContext:dept": "finance"}}),
            req(),
            true,
        ),
        (
            "StringNotEquals is none-of",
            json!({"StringNotEquals": {"kms:EncryptionContext:dept": ["hr", "finance"]}}),
            dept("hr"),
            false,
        ),
        (
            "StringEqualsIgnoreCase",
            json!({"StringEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}),
            dept("Finance"),
            true,
        ),
        (
            "StringEqualsIgnoreCase differs",
            json!({"StringEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}),
            dept("hr"),
            false,
        ),
        (
            "StringEqualsIgnoreCase missing",
            json!({"StringEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}),
            req(),
            false,
        ),
        (
            "StringNotEqualsIgnoreCase equal",
            json!({"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}),
            dept("finance"),
            false,
        ),
        (
            "StringNotEqualsIgnoreCase differs",
            json!({"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}),
            dept("hr"),
            true,
        ),
        (
            "StringNotEqualsIgnoreCase missing",
            json!({"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}),
            req(),
            true,
        ),
        (
            "StringLike under prefix",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            path("/shared/a/b.txt"),
            true,
        ),
        (
            "StringLike outside prefix",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            path("/hr/x"),
            false,
        ),
        (
            "StringLike prefix itself",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            path("/shared"),
            false,
        ),
        (
            "StringLike is case-sensitive",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            path("/Shared/x"),
            false,
        ),
        (
            "StringLike missing",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            req(),
            false,
        ),
        (
            "StringLike ?",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/?.txt"}}),
            path("/shared/a.txt"),
            true,
        ),
        (
            "StringLike ? is one char",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/?.txt"}}),
            path("/shared/ab.txt"),
            false,
        ),
        (
            "StringLike values OR",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": ["/a/*", "/shared/*"]}}),
            path("/shared/x"),
            true,
        ),
        (
            "StringNotLike inside",
            json!({"StringNotLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}),
            path("/hr/x"),
            false,
        ),
        (
            "StringNotLike outside",
            json!({"StringNotLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}),
            path("/shared/x"),
            true,
        ),
        (
            "StringNotLike missing is true",
            json!({"StringNotLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}),
            req(),
            true,
        ),
        (
            "StringNotLike none-of",
            json!({"StringNotLike": {"kms:EncryptionContext:kmsfs:path": ["/hr/*", "/fin/*"]}}),
            path("/fin/x"),
            false,
        ),
        (
            "condition key name is case-insensitive",
            json!({"StringLike": {"KMS:ENCRYPTIONCONTEXT:kmsfs:path": "/shared/*"}}),
            path("/shared/x"),
            true,
        ),
        (
            "context key part is case-insensitive",
            json!({"StringEquals": {"kms:EncryptionContext:DEPT": "finance"}}),
            dept("finance"),
            true,
        ),
        // Numeric family (kms:CallerUid = 1000)
        (
            "NumericEquals",
            json!({"NumericEquals": {"kms:CallerUid": "1000"}}),
            req(),
            true,
        ),
        (
            "NumericEquals JSON number",
            json!({"NumericEquals": {"kms:CallerUid": 1000}}),
            req(),
            true,
        ),
        (
            "NumericEquals other",
            json!({"NumericEquals": {"kms:CallerUid": 1001}}),
            req(),
            false,
        ),
        (
            "NumericEquals values OR",
            json!({"NumericEquals": {"kms:CallerUid": [5, 1000]}}),
            req(),
            true,
        ),
        (
            "NumericNotEquals equal",
            json!({"NumericNotEquals": {"kms:CallerUid": 1000}}),
            req(),
            false,
        ),
        (
            "NumericNotEquals differs",
            json!({"NumericNotEquals": {"kms:CallerUid": 1001}}),
            req(),
            true,
        ),
        (
            "NumericLessThan true",
            json!({"NumericLessThan": {"kms:CallerUid": 1001}}),
            req(),
            true,
        ),
        (
            "NumericLessThan equal",
            json!({"NumericLessThan": {"kms:CallerUid": 1000}}),
            req(),
            false,
        ),
        (
            "NumericLessThanEquals equal",
            json!({"NumericLessThanEquals": {"kms:CallerUid": 1000}}),
            req(),
            true,
        ),
        (
            "NumericLessThanEquals less",
            json!({"NumericLessThanEquals": {"kms:CallerUid": 999}}),
            req(),
            false,
        ),
        (
            "NumericGreaterThan true",
            json!({"NumericGreaterThan": {"kms:CallerUid": 999}}),
            req(),
            true,
        ),
        (
            "NumericGreaterThan equal",
            json!({"NumericGreaterThan": {"kms:CallerUid": 1000}}),
            req(),
            false,
        ),
        (
            "NumericGreaterThanEquals equal",
            json!({"NumericGreaterThanEquals": {"kms:CallerUid": 1000}}),
            req(),
            true,
        ),
        (
            "NumericGreaterThanEquals more",
            json!({"NumericGreaterThanEquals": {"kms:CallerUid": 1001}}),
            req(),
            false,
        ),
        (
            "NumericEquals decimal",
            json!({"NumericEquals": {"kms:EncryptionContext:n": 1.5}}),
            req().ec(&[("n", "1.50")]),
            true,
        ),
        (
            "Numeric on non-number context value",
            json!({"NumericEquals": {"kms:EncryptionContext:n": 1}}),
            req().ec(&[("n", "abc")]),
            false,
        ),
        (
            "NumericLessThan missing",
            json!({"NumericLessThan": {"kms:EncryptionContext:n": 1}}),
            req(),
            false,
        ),
        (
            "NumericNotEquals missing is true",
            json!({"NumericNotEquals": {"kms:EncryptionContext:n": 1}}),
            req(),
            true,
        ),
        (
            "NumericLessThan on aws:EpochTime",
            json!({"NumericLessThan": {"aws:EpochTime": NOW + 1}}),
            req(),
            true,
        ),
        (
            "kms:CallerGid",
            json!({"NumericEquals": {"kms:CallerGid": 1000}}),
            req(),
            true,
        ),
        // Date family (now = 2025-06-15T15:06:40Z)
        (
            "DateLessThan future",
            json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
            req(),
            true,
        ),
        (
            "DateLessThan past",
            json!({"DateLessThan": {"aws:CurrentTime": "2020-01-01"}}),
            req(),
            false,
        ),
        (
            "DateGreaterThan past",
            json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}),
            req(),
            true,
        ),
        (
            "DateGreaterThan future",
            json!({"DateGreaterThan": {"aws:CurrentTime": "2030-01-01"}}),
            req(),
            false,
        ),
        (
            "DateEquals ISO",
            json!({"DateEquals": {"aws:CurrentTime": "2025-06-15T15:06:40Z"}}),
            req(),
            true,
        ),
        (
            "DateEquals ISO with offset",
            json!({"DateEquals": {"aws:CurrentTime": "2025-06-15T17:06:40+02:00"}}),
            req(),
            true,
        ),
        (
            "DateEquals epoch",
            json!({"DateEquals": {"aws:EpochTime": NOW.to_string()}}),
            req(),
            true,
        ),
        (
            "DateEquals epoch number",
            json!({"DateEquals": {"aws:CurrentTime": NOW}}),
            req(),
            true,
        ),
        (
            "DateNotEquals equal",
            json!({"DateNotEquals": {"aws:CurrentTime": "2025-06-15T15:06:40Z"}}),
            req(),
            false,
        ),
        (
            "DateNotEquals differs",
            json!({"DateNotEquals": {"aws:CurrentTime": "2025-06-15"}}),
            req(),
            true,
        ),
        (
            "DateLessThanEquals equal",
            json!({"DateLessThanEquals": {"aws:CurrentTime": NOW}}),
            req(),
            true,
        ),
        (
            "DateLessThanEquals before",
            json!({"DateLessThanEquals": {"aws:CurrentTime": NOW - 1}}),
            req(),
            false,
        ),
        (
            "DateGreaterThanEquals equal",
            json!({"DateGreaterThanEquals": {"aws:CurrentTime": NOW}}),
            req(),
            true,
        ),
        (
            "DateGreaterThanEquals after",
            json!({"DateGreaterThanEquals": {"aws:CurrentTime": NOW + 1}}),
            req(),
            false,
        ),
        (
            "Date on context value",
            json!({"DateGreaterThan": {"kms:EncryptionContext:expires": "2025-01-01"}}),
            req().ec(&[("expires", "2026-01-01T00:00:00Z")]),
            true,
        ),
        (
            "Date on non-date context value",
            json!({"DateGreaterThan": {"kms:EncryptionContext:expires": "2025-01-01"}}),
            req().ec(&[("expires", "soon")]),
            false,
        ),
        (
            "DateNotEquals missing is true",
            json!({"DateNotEquals": {"kms:EncryptionContext:expires": "2025-01-01"}}),
            req(),
            true,
        ),
        (
            "StringLike on aws:CurrentTime text",
            json!({"StringLike": {"aws:CurrentTime": "2025-06-15T*"}}),
            req(),
            true,
        ),
        // Bool
        (
            "Bool true",
            json!({"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}),
            bypass_true.clone(),
            true,
        ),
        (
            "Bool JSON true",
            json!({"Bool": {"kms:BypassPolicyLockoutSafetyCheck": true}}),
            bypass_true.clone(),
            true,
        ),
        (
            "Bool false value",
            json!({"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}),
            bypass_false.clone(),
            false,
        ),
        (
            "Bool matches false",
            json!({"Bool": {"kms:BypassPolicyLockoutSafetyCheck": false}}),
            bypass_false.clone(),
            true,
        ),
        (
            "Bool missing",
            json!({"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}),
            req(),
            false,
        ),
        (
            "Bool on context text, case-insensitive",
            json!({"Bool": {"kms:EncryptionContext:flag": "true"}}),
            req().ec(&[("flag", "TRUE")]),
            true,
        ),
        (
            "Bool on non-bool context text",
            json!({"Bool": {"kms:EncryptionContext:flag": "true"}}),
            req().ec(&[("flag", "yes")]),
            false,
        ),
        // Null
        (
            "Null true, key absent",
            json!({"Null": {"kms:EncryptionContext:dept": "true"}}),
            req(),
            true,
        ),
        (
            "Null true, key present",
            json!({"Null": {"kms:EncryptionContext:dept": "true"}}),
            dept("x"),
            false,
        ),
        (
            "Null false, key present",
            json!({"Null": {"kms:EncryptionContext:dept": "false"}}),
            dept("x"),
            true,
        ),
        (
            "Null false, key absent",
            json!({"Null": {"kms:EncryptionContext:dept": false}}),
            req(),
            false,
        ),
        (
            "Null on empty multi-valued key",
            json!({"Null": {"kms:EncryptionContextKeys": "true"}}),
            req().ec(&[]),
            true,
        ),
        (
            "Null on present multi-valued key",
            json!({"Null": {"kms:EncryptionContextKeys": "true"}}),
            dept("x"),
            false,
        ),
        // IfExists
        (
            "StringEqualsIfExists absent",
            json!({"StringEqualsIfExists": {"kms:EncryptionContext:dept": "finance"}}),
            req(),
            true,
        ),
        (
            "StringEqualsIfExists present, equal",
            json!({"StringEqualsIfExists": {"kms:EncryptionContext:dept": "finance"}}),
            dept("finance"),
            true,
        ),
        (
            "StringEqualsIfExists present, differs",
            json!({"StringEqualsIfExists": {"kms:EncryptionContext:dept": "finance"}}),
            dept("hr"),
            false,
        ),
        (
            "StringNotEqualsIfExists present, equal",
            json!({"StringNotEqualsIfExists": {"kms:EncryptionContext:dept": "finance"}}),
            dept("finance"),
            false,
        ),
        (
            "StringLikeIfExists absent",
            json!({"StringLikeIfExists": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            req(),
            true,
        ),
        (
            "StringLikeIfExists present outside",
            json!({"StringLikeIfExists": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}),
            path("/hr/x"),
            false,
        ),
        (
            "NumericLessThanIfExists absent",
            json!({"NumericLessThanIfExists": {"kms:EncryptionContext:n": 5}}),
            req(),
            true,
        ),
        (
            "NumericLessThanIfExists present",
            json!({"NumericLessThanIfExists": {"kms:EncryptionContext:n": 5}}),
            req().ec(&[("n", "7")]),
            false,
        ),
        (
            "DateLessThanIfExists absent",
            json!({"DateLessThanIfExists": {"kms:EncryptionContext:d": "2020-01-01"}}),
            req(),
            true,
        ),
        (
            "BoolIfExists absent",
            json!({"BoolIfExists": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}),
            req(),
            true,
        ),
        (
            "StringEqualsIgnoreCaseIfExists absent",
            json!({"StringEqualsIgnoreCaseIfExists": {"kms:RequestAlias": "x"}}),
            req(),
            true,
        ),
        // Set qualifiers on multi-valued keys
        (
            "ForAnyValue: one listed",
            json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "kmsfs:path"}}),
            keys(&["kmsfs:path", "kmsfs:volume"]),
            true,
        ),
        (
            "ForAnyValue: none listed",
            json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "x"}}),
            keys(&["kmsfs:path"]),
            false,
        ),
        (
            "ForAnyValue: no context is false",
            json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "x"}}),
            req(),
            false,
        ),
        (
            "ForAnyValue: empty context is false",
            json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "x"}}),
            req().ec(&[]),
            false,
        ),
        (
            "ForAnyValue IfExists: no context is true",
            json!({"ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "x"}}),
            req(),
            true,
        ),
        (
            "ForAnyValue:StringNotEquals, all excluded",
            json!({"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": "a"}}),
            keys(&["a"]),
            false,
        ),
        (
            "ForAnyValue:StringNotEquals, one other",
            json!({"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": "a"}}),
            keys(&["a", "b"]),
            true,
        ),
        (
            "ForAnyValue:StringLike",
            json!({"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "kmsfs:*"}}),
            keys(&["a", "kmsfs:path"]),
            true,
        ),
        (
            "ForAllValues: all listed",
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["kmsfs:path", "kmsfs:volume"]}}),
            keys(&["kmsfs:path", "kmsfs:volume"]),
            true,
        ),
        (
            "ForAllValues: subset listed",
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["kmsfs:path", "kmsfs:volume"]}}),
            keys(&["kmsfs:path"]),
            true,
        ),
        (
            "ForAllValues: one not listed",
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["kmsfs:path", "kmsfs:volume"]}}),
            keys(&["kmsfs:path", "other"]),
            false,
        ),
        (
            "ForAllValues: no context is true",
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "x"}}),
            req(),
            true,
        ),
        (
            "ForAllValues: empty context is true",
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "x"}}),
            req().ec(&[]),
            true,
        ),
        (
            "ForAllValues:StringNotEquals none forbidden",
            json!({"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": "secret"}}),
            keys(&["a", "b"]),
            true,
        ),
        (
            "ForAllValues:StringNotEquals one forbidden",
            json!({"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": "secret"}}),
            keys(&["a", "secret"]),
            false,
        ),
        (
            "ForAllValues:StringLike",
            json!({"ForAllValues:StringLike": {"kms:EncryptionContextKeys": "kmsfs:*"}}),
            keys(&["kmsfs:path", "kmsfs:volume"]),
            true,
        ),
        (
            "ForAllValues:StringEqualsIgnoreCase",
            json!({"ForAllValues:StringEqualsIgnoreCase": {"kms:EncryptionContextKeys": "KMSFS:PATH"}}),
            keys(&["kmsfs:path"]),
            true,
        ),
        (
            "GrantOperations ForAllValues within",
            json!({"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]}}),
            req().action("CreateGrant").ops(&[G::Decrypt]),
            true,
        ),
        (
            "GrantOperations ForAllValues beyond",
            json!({"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]}}),
            req()
                .action("CreateGrant")
                .ops(&[G::Decrypt, G::CreateGrant]),
            false,
        ),
        (
            "GrantOperations ForAnyValue",
            json!({"ForAnyValue:StringEquals": {"kms:GrantOperations": "CreateGrant"}}),
            req()
                .action("CreateGrant")
                .ops(&[G::Decrypt, G::CreateGrant]),
            true,
        ),
        (
            "set qualifier on single-valued key",
            json!({"ForAnyValue:StringEquals": {"kms:CallerUid": "1000"}}),
            req(),
            true,
        ),
        (
            "multi-valued key without qualifier is any-of",
            json!({"StringEquals": {"kms:EncryptionContextKeys": "dept"}}),
            keys(&["x", "dept"]),
            true,
        ),
        (
            "multi-valued key, negated, without qualifier",
            json!({"StringNotEquals": {"kms:EncryptionContextKeys": "dept"}}),
            keys(&["x", "dept"]),
            false,
        ),
        // Other keys
        (
            "kms:GranteePrincipal",
            json!({"StringEquals": {"kms:GranteePrincipal": "uid:1001"}}),
            grantee.clone(),
            true,
        ),
        (
            "kms:GranteePrincipal missing",
            json!({"StringEquals": {"kms:GranteePrincipal": "uid:1001"}}),
            req(),
            false,
        ),
        (
            "kms:RetiringPrincipal",
            json!({"StringEquals": {"kms:RetiringPrincipal": "uid:1000"}}),
            grantee,
            true,
        ),
        (
            "kms:RequestAlias",
            json!({"StringEquals": {"kms:RequestAlias": "alias/finance"}}),
            alias.clone(),
            true,
        ),
        (
            "kms:RequestAlias other",
            json!({"StringEquals": {"kms:RequestAlias": "alias/hr"}}),
            alias,
            false,
        ),
        (
            "kms:RequestAlias missing",
            json!({"StringLike": {"kms:RequestAlias": "alias/*"}}),
            req(),
            false,
        ),
        (
            "kms:KeySpec",
            json!({"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}),
            spec.clone(),
            true,
        ),
        (
            "kms:EncryptionAlgorithm",
            json!({"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}),
            spec,
            true,
        ),
        (
            "kms:CallerUid as string",
            json!({"StringEquals": {"kms:CallerUid": "1000"}}),
            req(),
            true,
        ),
        // AND across keys and operators
        (
            "two keys, both hold",
            json!({"StringEquals": {"kms:EncryptionContext:kmsfs:volume": "v1", "kms:EncryptionContext:kmsfs:path": "/shared/a"}}),
            path("/shared/a"),
            true,
        ),
        (
            "two keys, one fails",
            json!({"StringEquals": {"kms:EncryptionContext:kmsfs:volume": "v2", "kms:EncryptionContext:kmsfs:path": "/shared/a"}}),
            path("/shared/a"),
            false,
        ),
        (
            "two operators, both hold",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}, "NumericEquals": {"kms:CallerUid": 1000}}),
            path("/shared/a"),
            true,
        ),
        (
            "two operators, one fails",
            json!({"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}, "NumericEquals": {"kms:CallerUid": 1001}}),
            path("/shared/a"),
            false,
        ),
        ("empty condition block", json!({}), req(), true),
    ];
    let mut failures = Vec::new();
    for (name, cond, r, want) in &cases {
        if cond_holds(cond, r) != *want {
            failures.push(format!("{name}: expected {want} for {cond}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases.len() > 100);
}

#[test]
fn principal_forms_table() {
    let cases: &[(Value, bool, bool)] = &[
        // (Principal element, alice matches, bob matches)
        (json!("*"), true, true),
        (json!({"AWS": "*"}), true, true),
        (json!({"AWS": "uid:1000"}), true, false),
        (json!({"AWS": "user:alice"}), true, false),
        (json!({"AWS": "gid:1000"}), true, false),
        (json!({"AWS": "gid:50"}), true, false),
        (json!({"AWS": "group:staff"}), true, false),
        (json!({"AWS": "group:other"}), false, true),
        (json!({"AWS": ["uid:1000", "group:other"]}), true, true),
        (json!({"AWS": ["uid:7", "user:carol"]}), false, false),
    ];
    for (p, a, b) in cases {
        let pol = policy(
            json!([{"Effect": "Allow", "Principal": p, "Action": "kms:Decrypt", "Resource": "*"}]),
        );
        assert_eq!(evaluate(&pol, &req().ctx()).allowed, *a, "alice vs {p}");
        assert_eq!(
            evaluate(&pol, &req().who(bob()).ctx()).allowed,
            *b,
            "bob vs {p}"
        );
        let not = policy(json!([
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "NotPrincipal": p, "Action": "kms:*", "Resource": "*"}
        ]));
        assert_eq!(
            evaluate(&not, &req().ctx()).allowed,
            *a,
            "NotPrincipal alice vs {p}"
        );
        assert_eq!(
            evaluate(&not, &req().who(bob()).ctx()).allowed,
            *b,
            "NotPrincipal bob vs {p}"
        );
    }
}

#[test]
fn principal_id_agrees_with_principal_matches() {
    let ids = [
        "uid:1000",
        "uid:1001",
        "gid:1000",
        "gid:50",
        "gid:60",
        "user:alice",
        "user:bob",
        "group:staff",
        "group:other",
        "group:alice",
        "user:carol",
        "gid:0",
    ];
    for p in [
        alice(),
        bob(),
        Principal::from_ids(0, 0, vec![]),
        Principal::from_ids(5, 6, vec![50]),
    ] {
        for id in ids {
            let parsed = PrincipalId::parse(id).unwrap();
            assert_eq!(parsed.matches(&p), p.matches(id), "{id} vs {p:?}");
            assert_eq!(parsed.to_string(), id);
        }
    }
}

#[test]
fn action_wildcards_table() {
    let cases: &[(Value, &str, bool)] = &[
        (json!("kms:*"), "Decrypt", true),
        (json!("*"), "PutKeyPolicy", true),
        (json!("kms:Decrypt"), "Decrypt", true),
        (json!("kms:Decrypt"), "kms:Decrypt", true),
        (json!("kms:decrypt"), "Decrypt", true),
        (json!("KMS:DECRYPT"), "Decrypt", true),
        (json!("kms:Decrypt"), "Encrypt", false),
        (json!("kms:Decrypt"), "DecryptX", false),
        (json!("kms:Re*"), "ReEncryptFrom", true),
        (json!("kms:ReEncrypt*"), "ReEncryptTo", true),
        (
            json!("kms:GenerateDataKey*"),
            "GenerateDataKeyWithoutPlaintext",
            true,
        ),
        (json!("kms:GenerateDataKey*"), "Decrypt", false),
        (json!("kms:?ncrypt"), "Encrypt", true),
        (json!("kms:?ncrypt"), "Decrypt", false),
        (json!("kms:*Grant*"), "ListRetirableGrants", true),
        (json!(["kms:Encrypt", "kms:Decrypt"]), "Decrypt", true),
        (json!(["kms:Encrypt", "kms:Describe*"]), "Decrypt", false),
    ];
    for (a, action, want) in cases {
        let pol =
            policy(json!([{"Effect": "Allow", "Principal": "*", "Action": a, "Resource": "*"}]));
        assert_eq!(
            evaluate(&pol, &req().action(action).ctx()).allowed,
            *want,
            "{a} vs {action}"
        );
        let not =
            policy(json!([{"Effect": "Allow", "Principal": "*", "NotAction": a, "Resource": "*"}]));
        assert_eq!(
            evaluate(&not, &req().action(action).ctx()).allowed,
            !*want,
            "NotAction {a} vs {action}"
        );
    }
}

#[test]
fn resource_table() {
    let cases: &[(Option<Value>, bool)] = &[
        (None, true),
        (Some(json!("*")), true),
        (Some(json!(ARN)), true),
        (Some(json!(KEY)), true),
        (Some(json!("arn:aws:kms:*:*:key/*")), true),
        (Some(json!("arn:aws:kms:local:000000000000:key/k?")), true),
        (
            Some(json!("arn:aws:kms:local:000000000000:key/other")),
            false,
        ),
        (Some(json!("arn:aws:kms:local:000000000000:key/K1")), false),
        (Some(json!(["arn:x", ARN])), true),
    ];
    for (r, want) in cases {
        let mut s = json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*"});
        if let Some(r) = r {
            s["Resource"] = r.clone();
        }
        let pol = policy(json!([s]));
        assert_eq!(
            evaluate(&pol, &req().ctx()).allowed,
            *want,
            "Resource {r:?}"
        );
        if let Some(r) = r {
            let not = policy(
                json!([{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "NotResource": r}]),
            );
            assert_eq!(
                evaluate(&not, &req().ctx()).allowed,
                !*want,
                "NotResource {r}"
            );
        }
    }
}

fn shared_policy() -> Policy {
    policy(json!([
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:0"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "ReadShared", "Effect": "Allow", "Principal": {"AWS": "uid:1000"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}},
        {"Sid": "NoHR", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}}
    ]))
}

#[test]
fn deny_overrides_and_reasons() {
    let p = shared_policy();
    let root = Principal::from_ids(0, 0, vec![]);
    let shared = req().ec(&[("kmsfs:path", "/shared/a")]);
    let d = evaluate(&p, &shared.ctx());
    assert!(d.allowed);
    assert_eq!(
        d.reason.to_string(),
        "allowed by Statement[1] (Sid \"ReadShared\")"
    );
    let other = req().ec(&[("kmsfs:path", "/other/x")]);
    let d = evaluate(&p, &other.ctx());
    assert!(!d.allowed);
    assert_eq!(
        d.reason.to_string(),
        "no statement allowed it (implicit deny)"
    );
    let hr = req().ec(&[("kmsfs:path", "/hr/x")]);
    let d = evaluate(&p, &hr.ctx());
    assert!(!d.allowed);
    assert_eq!(
        d.reason.to_string(),
        "explicitly denied by Statement[2] (Sid \"NoHR\")"
    );
    // root is allowed kms:* but the Deny wins
    let d = evaluate(&p, &hr.clone().who(root.clone()).ctx());
    assert!(!d.allowed);
    assert_eq!(
        d.reason.to_string(),
        "explicitly denied by Statement[2] (Sid \"NoHR\")"
    );
    assert_eq!(
        d.to_string(),
        "DENY: explicitly denied by Statement[2] (Sid \"NoHR\")"
    );
    // deny wins whatever the order
    let mut reversed = p.clone();
    reversed.statements.reverse();
    assert!(!evaluate(&reversed, &hr.clone().who(root.clone()).ctx()).allowed);
    // no context: the StringLike is false, so alice is not allowed
    assert!(!evaluate(&p, &req().ctx()).allowed);
    // Encrypt is not in ReadShared
    assert!(!evaluate(&p, &shared.clone().action("Encrypt").ctx()).allowed);
    // statement without Sid is named by index
    let q =
        policy(json!([{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]));
    assert_eq!(
        evaluate(&q, &req().ctx()).reason.to_string(),
        "allowed by Statement[0]"
    );
    // empty statement list: implicit deny
    let e = policy(json!([]));
    assert_eq!(
        evaluate(&e, &req().ctx()).reason,
        DecisionReason::ImplicitDeny
    );
    // single statement object instead of a list
    let single = Policy::parse(
        &json!({"Version": "2012-10-17", "Statement":
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}})
        .to_string(),
    )
    .unwrap();
    assert!(evaluate(&single, &req().ctx()).allowed);
}

fn grant_for(
    grantee: &str,
    ops: &[GrantOperation],
    constraints: Option<GrantConstraints>,
) -> Grant {
    GrantRequest {
        key_id: KEY.into(),
        grantee_principal: grantee.into(),
        retiring_principal: None,
        operations: ops.to_vec(),
        constraints,
        name: None,
    }
    .into_grant(&Principal::from_ids(0, 0, vec![]), NOW)
    .unwrap()
}

#[test]
fn grants_allow_but_never_override_deny() {
    let p = shared_policy();
    let g = grant_for(
        "uid:1001",
        &[GrantOperation::Decrypt],
        Some(GrantConstraints {
            kmsfs_path_prefix: Some("/projects/x".into()),
            ..Default::default()
        }),
    );
    let grants = vec![g.clone()];
    let ok = req().who(bob()).ec(&[("kmsfs:path", "/projects/x/a")]);
    let d = evaluate_with_grants(&p, &grants, &ok.ctx());
    assert!(d.allowed);
    assert_eq!(
        d.reason,
        DecisionReason::GrantAllow {
            grant_id: g.grant_id.clone()
        }
    );
    assert_eq!(
        d.reason.to_string(),
        format!("allowed by grant {}", g.grant_id)
    );
    // without grants: implicit deny
    assert!(!evaluate(&p, &ok.ctx()).allowed);
    // outside the prefix
    let out = req().who(bob()).ec(&[("kmsfs:path", "/projects/y/a")]);
    assert!(!evaluate_with_grants(&p, &grants, &out.ctx()).allowed);
    // operation not granted
    assert!(!evaluate_with_grants(&p, &grants, &ok.clone().action("Encrypt").ctx()).allowed);
    // not the grantee
    assert!(!evaluate_with_grants(&p, &grants, &ok.clone().who(alice()).ctx()).allowed);
    // a grant on another key does not count
    let mut other = g.clone();
    other.key_id = "k2".into();
    assert!(!evaluate_with_grants(&p, &[other], &ok.ctx()).allowed);
    // a Deny statement beats the grant
    let everywhere = grant_for("uid:1001", &[GrantOperation::Decrypt], None);
    let hr = req().who(bob()).ec(&[("kmsfs:path", "/hr/x")]);
    let d = evaluate_with_grants(&p, &[everywhere], &hr.ctx());
    assert!(!d.allowed);
    assert!(matches!(d.reason, DecisionReason::ExplicitDeny(_)));
    // actions no grant can give
    let all = grant_for("uid:1001", &GrantOperation::ALL, None);
    assert!(
        !evaluate_with_grants(&p, &[all], &req().who(bob()).action("PutKeyPolicy").ctx()).allowed
    );
}

#[test]
fn explanation_names_each_statement_and_grant() {
    let p = shared_policy();
    let g = grant_for("uid:1001", &[GrantOperation::Encrypt], None);
    let r = req().ec(&[("kmsfs:path", "/hr/x")]);
    let e = explain(&p, &[g], &r.ctx());
    assert!(!e.decision.allowed);
    let outcomes: Vec<String> = e.statements.iter().map(|t| t.outcome.to_string()).collect();
    assert_eq!(
        outcomes,
        [
            "principal does not match",
            "condition StringLike on kms:EncryptionContext:kmsfs:path is false",
            "applies"
        ]
    );
    assert_eq!(e.grants[0].outcome, "operation not granted");
    let text = e.to_string();
    assert!(
        text.starts_with("DENY: explicitly denied by Statement[2] (Sid \"NoHR\")\n"),
        "{text}"
    );
    let j = e.to_json();
    assert_eq!(j["Allowed"], json!(false));
    assert_eq!(j["DecidedBy"]["Sid"], json!("NoHR"));
    assert_eq!(j["Statements"].as_array().map(Vec::len), Some(3));
}

#[test]
fn lockout_check() {
    let p = shared_policy();
    let root = Principal::from_ids(0, 0, vec![]);
    assert!(check_lockout(&p, &root, ARN, KEY, NOW).is_ok());
    let e = check_lockout(&p, &alice(), ARN, KEY, NOW).unwrap_err();
    assert_eq!(e.exception_name(), "MalformedPolicyDocumentException");
    assert_eq!(
        e.message(),
        "the new key policy will not allow you (user:alice) to update the key policy in the \
         future (no statement allowed it (implicit deny)); add a statement that allows \
         kms:PutKeyPolicy for you, or pass --bypass-policy-lockout-safety-check if this is \
         intended"
    );
    // an explicit Deny of PutKeyPolicy locks out even an admin
    let deny = policy(json!([
        {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
        {"Sid": "Freeze", "Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy", "Resource": "*"}
    ]));
    let e = check_lockout(&deny, &root, ARN, KEY, NOW).unwrap_err();
    assert!(
        e.message()
            .contains("explicitly denied by Statement[1] (Sid \"Freeze\")"),
        "{e}"
    );
    // via group membership
    let staff = policy(
        json!([{"Effect": "Allow", "Principal": {"AWS": "group:staff"}, "Action": "kms:PutKeyPolicy", "Resource": "*"}]),
    );
    assert!(check_lockout(&staff, &alice(), ARN, KEY, NOW).is_ok());
    assert!(check_lockout(&staff, &bob(), ARN, KEY, NOW).is_err());
}

#[test]
fn default_policy_gives_creator_full_control() {
    let doc = default_policy(&alice());
    let p = Policy::parse(&doc).unwrap();
    for action in [
        "Decrypt",
        "PutKeyPolicy",
        "CreateGrant",
        "ScheduleKeyDeletion",
    ] {
        assert!(
            evaluate(&p, &req().action(action).ctx()).allowed,
            "{action}"
        );
        assert!(
            !evaluate(&p, &req().who(bob()).action(action).ctx()).allowed,
            "{action}"
        );
    }
    assert!(check_lockout(&p, &alice(), ARN, KEY, NOW).is_ok());
}

fn malformed(document: &str) -> String {
    match Policy::parse(document) {
        Err(KmsError::MalformedPolicyDocument(m)) => m,
        other => panic!("expected MalformedPolicyDocument for {document}, got {other:?}"),
    }
}

fn stmt(extra: Value) -> Value {
    let mut s = json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
    if let (Value::Object(base), Value::Object(add)) = (&mut s, extra) {
        for (k, v) in add {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
    s
}

#[test]
fn malformed_documents_table() {
    let ok = stmt(json!({}));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "top-level list",
            "[]".into(),
            "policy must be a JSON object, got a list",
        ),
        (
            "no Version",
            json!({"Statement": []}).to_string(),
            "Version: missing; use \"2012-10-17\"",
        ),
        (
            "old Version",
            json!({"Version": "2008-10-17", "Statement": []}).to_string(),
            "Version: unsupported policy version \"2008-10-17\"; use \"2012-10-17\"",
        ),
        (
            "Version number",
            json!({"Version": 2012, "Statement": []}).to_string(),
            "Version: must be the string \"2012-10-17\", got a number",
        ),
        (
            "unknown element",
            json!({"Version": "2012-10-17", "Statements": []}).to_string(),
            "Statements: unknown policy element (expected Version, Id, Statement)",
        ),
        (
            "Id not string",
            json!({"Version": "2012-10-17", "Id": 1, "Statement": []}).to_string(),
            "Id: must be a string, got a number",
        ),
        (
            "no Statement",
            json!({"Version": "2012-10-17"}).to_string(),
            "Statement: missing",
        ),
        (
            "Statement string",
            json!({"Version": "2012-10-17", "Statement": "x"}).to_string(),
            "Statement: must be an object or a list of objects, got a string",
        ),
        (
            "Statement item number",
            doc(json!([ok.clone(), 3])),
            "Statement[1]: must be an object, got a number",
        ),
        (
            "no Effect",
            doc(json!([stmt(json!({"Effect": null}))])),
            "Statement[0]: missing Effect",
        ),
        (
            "unknown Effect",
            doc(json!([stmt(json!({"Effect": "Permit"}))])),
            "Statement[0].Effect: unknown effect \"Permit\"; use \"Allow\" or \"Deny\"",
        ),
        (
            "Effect lower case",
            doc(json!([stmt(json!({"Effect": "allow"}))])),
            "Statement[0].Effect: unknown effect \"allow\"; use \"Allow\" or \"Deny\"",
        ),
        (
            "Effect list",
            doc(json!([stmt(json!({"Effect": ["Allow"]}))])),
            "Statement[0].Effect: must be \"Allow\" or \"Deny\", got a list",
        ),
        (
            "no Action",
            doc(json!([stmt(json!({"Action": null}))])),
            "Statement[0]: missing Action (or NotAction)",
        ),
        (
            "Action and NotAction",
            doc(json!([stmt(json!({"NotAction": "kms:Decrypt"}))])),
            "Statement[0]: has both Action and NotAction; use one",
        ),
        (
            "other service action",
            doc(json!([stmt(
                json!({"Action": ["kms:Decrypt", "s3:GetObject"]})
            )])),
            "Statement[0].Action[1]: action \"s3:GetObject\" must be \"*\" or \"kms:NAME\" (wildcards * and ? allowed)",
        ),
        (
            "bare kms:",
            doc(json!([stmt(json!({"Action": "kms:"}))])),
            "Statement[0].Action[0]: action \"kms:\" must be \"*\" or \"kms:NAME\" (wildcards * and ? allowed)",
        ),
        (
            "empty Action list",
            doc(json!([stmt(json!({"Action": []}))])),
            "Statement[0].Action: list must not be empty",
        ),
        (
            "Action item number",
            doc(json!([stmt(json!({"Action": [1]}))])),
            "Statement[0].Action[0]: must be a string, got a number",
        ),
        (
            "Action object",
            doc(json!([stmt(json!({"Action": {"a": 1}}))])),
            "Statement[0].Action: must be a string or list of strings, got an object",
        ),
        (
            "no Principal",
            doc(json!([stmt(json!({"Principal": null}))])),
            "Statement[0]: missing Principal (or NotPrincipal)",
        ),
        (
            "Principal and NotPrincipal",
            doc(json!([stmt(json!({"NotPrincipal": "*"}))])),
            "Statement[0]: has both Principal and NotPrincipal; use one",
        ),
        (
            "bare principal string",
            doc(json!([stmt(json!({"Principal": "uid:1000"}))])),
            "Statement[0].Principal: \"uid:1000\" is not a valid principal; use \"*\" or {\"AWS\": [\"uid:N\", ...]}",
        ),
        (
            "bad uid",
            doc(json!([stmt(json!({"Principal": {"AWS": "uid:abc"}}))])),
            "Statement[0].Principal.AWS: principal \"uid:abc\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\"",
        ),
        (
            "bad list entry",
            doc(json!([stmt(
                json!({"Principal": {"AWS": ["uid:1", "root"]}})
            )])),
            "Statement[0].Principal.AWS[1]: principal \"root\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\"",
        ),
        (
            "AWS account ARN",
            doc(json!([stmt(
                json!({"Principal": {"AWS": "arn:aws:iam::111122223333:root"}})
            )])),
            "Statement[0].Principal.AWS: principal \"arn:aws:iam::111122223333:root\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\"",
        ),
        (
            "empty user name",
            doc(json!([stmt(
                json!({"NotPrincipal": {"AWS": "user:"}, "Principal": null})
            )])),
            "Statement[0].NotPrincipal.AWS: principal \"user:\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\"",
        ),
        (
            "service principal",
            doc(json!([stmt(json!({"Principal": {"Service": "x"}}))])),
            "Statement[0].Principal.Service: unsupported principal type; local principals go under \"AWS\"",
        ),
        (
            "principal number",
            doc(json!([stmt(json!({"Principal": 5}))])),
            "Statement[0].Principal: must be \"*\" or {\"AWS\": id or list of ids}, got a number",
        ),
        (
            "empty principal object",
            doc(json!([stmt(json!({"Principal": {}}))])),
            "Statement[0].Principal: must name principals under \"AWS\"",
        ),
        (
            "empty Resource",
            doc(json!([stmt(json!({"Resource": [""]}))])),
            "Statement[0].Resource[0]: resource must not be empty",
        ),
        (
            "Resource and NotResource",
            doc(json!([stmt(json!({"NotResource": "*"}))])),
            "Statement[0]: has both Resource and NotResource; use one",
        ),
        (
            "Sid number",
            doc(json!([stmt(json!({"Sid": 1}))])),
            "Statement[0].Sid: must be a string, got a number",
        ),
        (
            "duplicate Sid",
            doc(json!([
                stmt(json!({"Sid": "A"})),
                stmt(json!({"Sid": "A"}))
            ])),
            "Statement[1].Sid: duplicate Sid \"A\" (also in Statement[0])",
        ),
        (
            "typo in element",
            doc(json!([stmt(json!({"Efect": "Allow"}))])),
            "Statement[0].Efect: unknown statement element (expected Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition)",
        ),
        (
            "Condition string",
            doc(json!([stmt(json!({"Condition": "x"}))])),
            "Statement[0].Condition: must be an object of {Operator: {Key: value}}, got a string",
        ),
        (
            "unknown operator",
            doc(json!([stmt(
                json!({"Condition": {"StringEqual": {"kms:CallerUid": "1"}}})
            )])),
            "Statement[0].Condition: unknown condition operator \"StringEqual\"",
        ),
        (
            "operator case",
            doc(json!([stmt(
                json!({"Condition": {"stringequals": {"kms:CallerUid": "1"}}})
            )])),
            "Statement[0].Condition: unknown condition operator \"stringequals\"",
        ),
        (
            "unknown qualifier",
            doc(json!([stmt(
                json!({"Condition": {"ForSomeValues:StringEquals": {"kms:CallerUid": "1"}}})
            )])),
            "Statement[0].Condition: unknown condition operator \"ForSomeValues:StringEquals\"",
        ),
        (
            "NullIfExists",
            doc(json!([stmt(
                json!({"Condition": {"NullIfExists": {"kms:CallerUid": "true"}}})
            )])),
            "Statement[0].Condition: NullIfExists is not a valid operator: Null already tests existence",
        ),
        (
            "ForAnyValue:Null",
            doc(json!([stmt(
                json!({"Condition": {"ForAnyValue:Null": {"kms:CallerUid": "true"}}})
            )])),
            "Statement[0].Condition: \"ForAnyValue:Null\": the ForAnyValue/ForAllValues qualifiers cannot be used with Null",
        ),
        (
            "operator value not object",
            doc(json!([stmt(json!({"Condition": {"StringEquals": ["a"]}}))])),
            "Statement[0].Condition.StringEquals: must be an object of {Key: value}, got a list",
        ),
        (
            "operator with no key",
            doc(json!([stmt(json!({"Condition": {"StringEquals": {}}}))])),
            "Statement[0].Condition.StringEquals: names no condition key",
        ),
        (
            "value is an object",
            doc(json!([
                ok.clone(),
                stmt(
                    json!({"Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": {"a": "b"}}}})
                )
            ])),
            "Statement[1].Condition.StringLike: value must be a string or list of strings, got an object (key \"kms:EncryptionContext:kmsfs:path\")",
        ),
        (
            "value is null",
            doc(json!([stmt(
                json!({"Condition": {"StringLike": {"kms:RequestAlias": null}}})
            )])),
            "Statement[0].Condition.StringLike: value must be a string or list of strings, got null (key \"kms:RequestAlias\")",
        ),
        (
            "nested list",
            doc(json!([stmt(
                json!({"Condition": {"StringLike": {"kms:RequestAlias": [["a"]]}}})
            )])),
            "Statement[0].Condition.StringLike: value must be a string or list of strings, got a list (key \"kms:RequestAlias\")",
        ),
        (
            "empty value list",
            doc(json!([stmt(
                json!({"Condition": {"StringLike": {"kms:RequestAlias": []}}})
            )])),
            "Statement[0].Condition.StringLike: value list for key \"kms:RequestAlias\" must not be empty",
        ),
        (
            "not a number",
            doc(json!([stmt(
                json!({"Condition": {"NumericLessThan": {"kms:CallerUid": "abc"}}})
            )])),
            "Statement[0].Condition.NumericLessThan: \"abc\" is not a number (key \"kms:CallerUid\")",
        ),
        (
            "not a date",
            doc(json!([stmt(
                json!({"Condition": {"DateLessThan": {"aws:CurrentTime": "yesterday"}}})
            )])),
            "Statement[0].Condition.DateLessThan: \"yesterday\" is not a date (ISO 8601 such as 2026-01-31T12:00:00Z or 2026-01-31, or epoch seconds) (key \"aws:CurrentTime\")",
        ),
        (
            "not a bool",
            doc(json!([stmt(
                json!({"Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "yes"}}})
            )])),
            "Statement[0].Condition.Bool: \"yes\" is not \"true\" or \"false\" (key \"kms:BypassPolicyLockoutSafetyCheck\")",
        ),
        (
            "Null value not bool",
            doc(json!([stmt(
                json!({"Condition": {"Null": {"kms:RequestAlias": "maybe"}}})
            )])),
            "Statement[0].Condition.Null: \"maybe\" is not \"true\" or \"false\" (key \"kms:RequestAlias\")",
        ),
        (
            "empty context key",
            doc(json!([stmt(
                json!({"Condition": {"StringEquals": {"kms:EncryptionContext:": "x"}}})
            )])),
            "Statement[0].Condition.StringEquals: condition key \"kms:EncryptionContext:\" names no encryption context key",
        ),
    ];
    for (name, document, want) in &cases {
        assert_eq!(malformed(document), *want, "case {name}");
    }
    // Messages that embed a long list or parser detail: check the start.
    let unknown_key = malformed(&doc(json!([stmt(
        json!({"Condition": {"StringEquals": {"kms:Foo": "x"}}})
    )])));
    assert!(unknown_key.starts_with("Statement[0].Condition.StringEquals: unknown condition key \"kms:Foo\"; supported: kms:EncryptionContext:KEY"), "{unknown_key}");
    let not_json = malformed("{\"Version\": ");
    assert!(
        not_json.starts_with("policy is not valid JSON: "),
        "{not_json}"
    );
    let big = doc(json!([stmt(json!({"Sid": "x".repeat(MAX_POLICY_BYTES)}))]));
    assert_eq!(
        malformed(&big),
        format!("policy is {} bytes; the limit is 32768 bytes", big.len())
    );
    // exactly at the limit is fine
    let base = doc(json!([stmt(json!({"Sid": ""}))]));
    let at_limit = doc(json!([stmt(
        json!({"Sid": "x".repeat(MAX_POLICY_BYTES - base.len())})
    )]));
    assert_eq!(at_limit.len(), MAX_POLICY_BYTES);
    assert!(Policy::parse(&at_limit).is_ok());
    // Display carries the AWS exception name
    let e = Policy::parse("[]").unwrap_err();
    assert_eq!(
        e.to_string(),
        "MalformedPolicyDocumentException: policy must be a JSON object, got a list"
    );
}

#[test]
fn accepts_the_documented_forms() {
    let p = policy(json!([
        {"Sid": "with spaces allowed", "Effect": "Allow", "Principal": {"AWS": ["uid:1", "user:x", "gid:2", "group:y"]},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": ["*"],
         "Condition": {
            "ForAllValues:StringLikeIfExists": {"kms:EncryptionContextKeys": ["kmsfs:*"]},
            "ForAnyValue:StringNotEqualsIgnoreCase": {"kms:GrantOperations": "CreateGrant"},
            "DateGreaterThanEquals": {"aws:CurrentTime": ["2024-01-01T00:00:00.123Z", 1700000000, "2024-02-29"]},
            "NumericGreaterThan": {"kms:CallerUid": -1.5},
            "Bool": {"kms:BypassPolicyLockoutSafetyCheck": [true, "FALSE"]}
         }}
    ]));
    assert_eq!(p.statements[0].conditions.len(), 5);
    assert_eq!(p.statements[0].effect, Effect::Allow);
    assert_eq!(p.version, POLICY_VERSION);
}
