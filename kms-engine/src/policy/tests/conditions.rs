//! Every condition operator, qualifier and IfExists form, table-driven.

use super::*;
use serde_json::{Value, json};

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

/// `kms:ValidTo` (ImportKeyMaterial) is a timestamp: Numeric operators
/// compare epoch seconds, Date operators dates; absent (material that does
/// not expire) it fails a plain operator and passes an IfExists one.
#[test]
fn valid_to_is_a_timestamp() {
    let mut expiring = req().action("ImportKeyMaterial");
    expiring.valid_to = Some(1_800_000_000);
    let never = req().action("ImportKeyMaterial");
    let cases = [
        (
            json!({"NumericLessThanEquals": {"kms:ValidTo": "1800000000"}}),
            &expiring,
            true,
        ),
        (
            json!({"NumericLessThan": {"kms:ValidTo": "1800000000"}}),
            &expiring,
            false,
        ),
        (
            json!({"DateLessThan": {"kms:ValidTo": "2027-01-16T00:00:00Z"}}),
            &expiring,
            true,
        ),
        (
            json!({"DateGreaterThan": {"kms:ValidTo": "2027-01-16T00:00:00Z"}}),
            &expiring,
            false,
        ),
        (
            json!({"NumericLessThanEquals": {"kms:ValidTo": "1800000000"}}),
            &never,
            false,
        ),
        (
            json!({"NumericLessThanEqualsIfExists": {"kms:ValidTo": "1"}}),
            &never,
            true,
        ),
        (json!({"Null": {"kms:ValidTo": "true"}}), &never, true),
    ];
    for (c, r, want) in cases {
        assert_eq!(cond_holds(&c, r), want, "{c}");
    }
}
