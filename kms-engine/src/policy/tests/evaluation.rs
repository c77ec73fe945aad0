//! Principals, actions, resources, deny-overrides, grants, explanations,
//! the lockout check and the default policy.

use super::*;
use serde_json::{Value, json};

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
    let doc = crate::key::default_policy("uid:1000");
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
