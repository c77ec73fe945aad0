//! Malformed documents, each with its exact error text.

use super::*;
use serde_json::{Value, json};

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
            "Statement[0].Principal.AWS: principal \"uid:abc\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\", \"arn:aws:iam::ACCOUNT:user/NAME\"",
        ),
        (
            "bad list entry",
            doc(json!([stmt(
                json!({"Principal": {"AWS": ["uid:1", "root"]}})
            )])),
            "Statement[0].Principal.AWS[1]: principal \"root\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\", \"arn:aws:iam::ACCOUNT:user/NAME\"",
        ),
        (
            "AWS account ARN",
            doc(json!([stmt(
                json!({"Principal": {"AWS": "arn:aws:iam::111122223333:root"}})
            )])),
            "Statement[0].Principal.AWS: principal \"arn:aws:iam::111122223333:root\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\", \"arn:aws:iam::ACCOUNT:user/NAME\"",
        ),
        (
            "empty user name",
            doc(json!([stmt(
                json!({"NotPrincipal": {"AWS": "user:"}, "Principal": null})
            )])),
            "Statement[0].NotPrincipal.AWS: principal \"user:\" is not one of \"*\", \"uid:N\", \"user:NAME\", \"gid:N\", \"group:NAME\", \"arn:aws:iam::ACCOUNT:user/NAME\"",
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
