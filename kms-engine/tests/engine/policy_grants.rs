//! Key policies and grants through the real engine: deny-overrides, the
//! lockout check, path-prefix grants for a second uid, revoke, retire,
//! idempotent names, persistence and the audit records of denials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use kms_engine::grant::GrantOperation as G;
use kms_engine::*;
use serde_json::json;

fn bob() -> Principal {
    Principal::from_ids(1001, 1001, vec![])
}

fn carol() -> Principal {
    Principal::from_ids(1002, 1002, vec![])
}

fn gdk(
    f: &Fixture,
    who: &Principal,
    key: &str,
    path: &str,
) -> Result<GenerateDataKeyResponse, KmsError> {
    f.engine.generate_data_key(
        who,
        GenerateDataKeyRequest {
            key_id: key.into(),
            encryption_context: ctx(&[("kmsfs:volume", "v1"), ("kmsfs:path", path)]),
            key_spec: Some("AES_256".into()),
            number_of_bytes: None,
            grant_tokens: None,
        },
    )
}

fn decrypt_as(f: &Fixture, who: &Principal, blob: &[u8], path: &str) -> Result<(), KmsError> {
    f.engine
        .decrypt(
            who,
            DecryptRequest {
                ciphertext_blob: blob.to_vec(),
                encryption_context: ctx(&[("kmsfs:volume", "v1"), ("kmsfs:path", path)]),
                key_id: None,
                encryption_algorithm: None,
                grant_tokens: None,
            },
        )
        .map(|_| ())
}

fn put_policy(
    f: &Fixture,
    who: &Principal,
    key: &str,
    doc: &serde_json::Value,
    bypass: bool,
) -> Result<(), KmsError> {
    f.engine
        .put_key_policy(
            who,
            PutKeyPolicyRequest {
                key_id: key.into(),
                policy_name: None,
                policy: doc.to_string(),
                bypass_policy_lockout_safety_check: Some(bypass),
            },
        )
        .map(|_| ())
}

fn shared_policy() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:1000"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "BobShared", "Effect": "Allow", "Principal": {"AWS": "uid:1001"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}},
        {"Sid": "NoHR", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}}
    ]})
}

fn denied(r: Result<impl std::fmt::Debug, KmsError>) -> String {
    match r {
        Err(e @ KmsError::AccessDenied(_)) => e.message(),
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}

#[test]
fn default_policy_lets_only_the_creator_in() {
    let f = fixture();
    let key = f.new_key();
    assert!(gdk(&f, &alice(), &key, "/a").is_ok());
    let msg = denied(gdk(&f, &bob(), &key, "/a"));
    assert!(msg.starts_with("User: uid:1001 is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:local:000000000000:key/"), "{msg}");
    assert!(msg.ends_with("because no resource-based policy allows the action (no statement allowed it (implicit deny))"), "{msg}");
}

#[test]
fn deny_overrides_through_the_engine() {
    let f = fixture();
    let key = f.new_key();
    put_policy(&f, &alice(), &key, &shared_policy(), false).unwrap();
    let shared = gdk(&f, &alice(), &key, "/shared/a")
        .unwrap()
        .ciphertext_blob;
    let hr = gdk(&f, &alice(), &key, "/hr/pay").unwrap().ciphertext_blob;
    let other = gdk(&f, &alice(), &key, "/other/x").unwrap().ciphertext_blob;
    // bob: allowed under /shared only
    decrypt_as(&f, &bob(), &shared, "/shared/a").unwrap();
    assert!(gdk(&f, &bob(), &key, "/shared/new").is_ok());
    let msg = denied(decrypt_as(&f, &bob(), &other, "/other/x"));
    assert!(msg.contains("implicit deny"), "{msg}");
    // alice has kms:* but the Deny wins
    let msg = denied(decrypt_as(&f, &alice(), &hr, "/hr/pay"));
    assert!(msg.contains("with an explicit deny in a resource-based policy (explicitly denied by Statement[2] (Sid \"NoHR\"))"), "{msg}");
    decrypt_as(&f, &alice(), &other, "/other/x").unwrap();
    // each denial is audited with its error code
    let events = f.sink.events();
    let denials: Vec<_> = events
        .iter()
        .filter(|e| e.error_code.as_deref() == Some("AccessDeniedException"))
        .collect();
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[1].event_name, "Decrypt");
    assert_eq!(denials[1].principal, "uid:1000");
    assert_eq!(denials[1].key_id.as_deref(), Some(key.as_str()));
}

#[test]
fn put_get_list_key_policy_and_lockout() {
    let f = fixture();
    let key = f.new_key();
    // only someone the policy allows may change it
    denied(put_policy(&f, &bob(), &key, &shared_policy(), false));
    // malformed documents are refused with the place of the defect
    let bad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*",
        "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": {"x": 1}}}}]});
    let e = put_policy(&f, &alice(), &key, &bad, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MalformedPolicyDocumentException: Statement[0].Condition.StringLike: value must be a string or list of strings, got an object (key \"kms:EncryptionContext:kmsfs:path\")"
    );
    // a policy that would lock the caller out is refused ...
    let bob_only = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "uid:1001"}, "Action": "kms:*", "Resource": "*"}]});
    let e = put_policy(&f, &alice(), &key, &bob_only, false).unwrap_err();
    assert_eq!(e.exception_name(), "MalformedPolicyDocumentException");
    assert!(
        e.message()
            .contains("will not allow you (uid:1000) to update the key policy"),
        "{e}"
    );
    // ... and nothing changed
    let got = f
        .engine
        .get_key_policy(
            &alice(),
            GetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: None,
            },
        )
        .unwrap();
    assert_eq!(got.policy_name, "default");
    assert!(got.policy.contains("uid:1000"));
    let listed = f
        .engine
        .list_key_policies(
            &alice(),
            ListKeyPoliciesRequest {
                key_id: key.clone(),
                limit: None,
                marker: None,
            },
        )
        .unwrap();
    assert_eq!(listed.policy_names, ["default"]);
    let e = f
        .engine
        .get_key_policy(
            &alice(),
            GetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: Some("other".into()),
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "NotFoundException");
    // with the bypass it goes through, and alice is out
    put_policy(&f, &alice(), &key, &bob_only, true).unwrap();
    denied(f.engine.get_key_policy(
        &alice(),
        GetKeyPolicyRequest {
            key_id: key.clone(),
            policy_name: None,
        },
    ));
    let got = f
        .engine
        .get_key_policy(
            &bob(),
            GetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: None,
            },
        )
        .unwrap();
    assert_eq!(got.policy, bob_only.to_string());
    // the policy survives a reopen
    let reopened = f.reopen().unwrap();
    denied(reopened.get_key_policy(
        &alice(),
        GetKeyPolicyRequest {
            key_id: key.clone(),
            policy_name: None,
        },
    ));
}

#[test]
fn create_key_with_policy_runs_the_lockout_check() {
    let f = fixture();
    let locked = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "uid:1001"}, "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    let mut req = CreateKeyRequest {
        policy: Some(locked),
        ..Default::default()
    };
    let e = f.engine.create_key(&alice(), req.clone()).unwrap_err();
    assert_eq!(e.exception_name(), "MalformedPolicyDocumentException");
    req.bypass_policy_lockout_safety_check = Some(true);
    let k = f
        .engine
        .create_key(&alice(), req)
        .unwrap()
        .key_metadata
        .key_id;
    assert!(gdk(&f, &bob(), &k, "/x").is_ok());
    let e = f
        .engine
        .create_key(
            &alice(),
            CreateKeyRequest {
                policy: Some("{}".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MalformedPolicyDocumentException: Version: missing; use \"2012-10-17\""
    );
}

fn prefix_grant(grantee: &str, prefix: &str, ops: &[G]) -> CreateGrantRequest {
    CreateGrantRequest {
        key_id: String::new(),
        grantee_principal: grantee.into(),
        retiring_principal: None,
        operations: ops.to_vec(),
        constraints: Some(GrantConstraintsWire {
            kmsfs_path_prefix: Some(prefix.into()),
            ..Default::default()
        }),
        grant_tokens: None,
        name: None,
    }
}

fn list(f: &Fixture, key: &str) -> Vec<GrantListEntry> {
    f.engine
        .list_grants(
            &alice(),
            ListGrantsRequest {
                key_id: key.into(),
                limit: None,
                marker: None,
                grant_id: None,
                grantee_principal: None,
            },
        )
        .unwrap()
        .grants
}

#[test]
fn prefix_grant_lets_a_second_uid_decrypt_until_revoked() {
    let f = fixture();
    let key = f.new_key();
    let inside = gdk(&f, &alice(), &key, "/projects/x/a.txt")
        .unwrap()
        .ciphertext_blob;
    let outside = gdk(&f, &alice(), &key, "/projects/y/a.txt")
        .unwrap()
        .ciphertext_blob;
    denied(decrypt_as(&f, &bob(), &inside, "/projects/x/a.txt"));
    let g = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1001", "/projects/x/", &[G::Decrypt])
            },
        )
        .unwrap();
    // effective at once
    decrypt_as(&f, &bob(), &inside, "/projects/x/a.txt").unwrap();
    denied(decrypt_as(&f, &bob(), &outside, "/projects/y/a.txt"));
    denied(gdk(&f, &bob(), &key, "/projects/x/new"));
    let grants = list(&f, &key);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant_id, g.grant_id);
    assert_eq!(grants[0].grantee_principal, "uid:1001");
    assert_eq!(grants[0].issuing_account, "uid:1000");
    // persisted
    let reopened = f.reopen().unwrap();
    assert!(
        reopened
            .decrypt(
                &bob(),
                DecryptRequest {
                    ciphertext_blob: inside.clone(),
                    encryption_context: ctx(&[
                        ("kmsfs:volume", "v1"),
                        ("kmsfs:path", "/projects/x/a.txt")
                    ]),
                    key_id: None,
                    encryption_algorithm: None,
                    grant_tokens: Some(vec![g.grant_token.clone()]),
                }
            )
            .is_ok()
    );
    // bob cannot revoke; alice can
    denied(f.engine.revoke_grant(
        &bob(),
        RevokeGrantRequest {
            key_id: key.clone(),
            grant_id: g.grant_id.clone(),
        },
    ));
    f.engine
        .revoke_grant(
            &alice(),
            RevokeGrantRequest {
                key_id: key.clone(),
                grant_id: g.grant_id.clone(),
            },
        )
        .unwrap();
    denied(decrypt_as(&f, &bob(), &inside, "/projects/x/a.txt"));
    assert!(list(&f, &key).is_empty());
    let e = f
        .engine
        .revoke_grant(
            &alice(),
            RevokeGrantRequest {
                key_id: key.clone(),
                grant_id: g.grant_id.clone(),
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "NotFoundException");
    let e = f
        .engine
        .revoke_grant(
            &alice(),
            RevokeGrantRequest {
                key_id: key.clone(),
                grant_id: "nope".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "InvalidGrantIdException");
}

#[test]
fn deny_statement_beats_a_grant() {
    let f = fixture();
    let key = f.new_key();
    put_policy(&f, &alice(), &key, &shared_policy(), false).unwrap();
    let hr = gdk(&f, &alice(), &key, "/hr/pay").unwrap().ciphertext_blob;
    f.engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1001", "/", &[G::Decrypt])
            },
        )
        .unwrap();
    let msg = denied(decrypt_as(&f, &bob(), &hr, "/hr/pay"));
    assert!(msg.contains("Sid \"NoHR\""), "{msg}");
}

#[test]
fn idempotent_name_and_tokens() {
    let f = fixture();
    let key = f.new_key();
    let req = CreateGrantRequest {
        key_id: key.clone(),
        name: Some("backup".into()),
        ..prefix_grant("uid:1001", "/b", &[G::Decrypt])
    };
    let a = f.engine.create_grant(&alice(), req.clone()).unwrap();
    let b = f.engine.create_grant(&alice(), req.clone()).unwrap();
    assert_eq!(a.grant_id, b.grant_id);
    assert_ne!(a.grant_token, b.grant_token);
    assert_eq!(list(&f, &key).len(), 1);
    // same name, other parameters: a new grant (as in AWS)
    let c = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                operations: vec![G::Encrypt],
                ..req.clone()
            },
        )
        .unwrap();
    assert_ne!(c.grant_id, a.grant_id);
    assert_eq!(list(&f, &key).len(), 2);
    // a malformed token is refused
    let e = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                grant_tokens: Some(vec!["junk".into()]),
                ..req
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "InvalidGrantTokenException");
}

#[test]
fn retire_rules() {
    let f = fixture();
    let key = f.new_key();
    let mut req = CreateGrantRequest {
        key_id: key.clone(),
        ..prefix_grant("uid:1001", "/p", &[G::Decrypt])
    };
    req.retiring_principal = Some("uid:1002".into());
    let g = f.engine.create_grant(&alice(), req.clone()).unwrap();
    // the grantee without RetireGrant may not retire it
    denied(f.engine.retire_grant(
        &bob(),
        RetireGrantRequest {
            grant_token: Some(g.grant_token.clone()),
            ..Default::default()
        },
    ));
    // the retiring principal lists and retires it
    let mine = f
        .engine
        .list_retirable_grants(
            &carol(),
            ListRetirableGrantsRequest {
                retiring_principal: "uid:1002".into(),
                limit: None,
                marker: None,
            },
        )
        .unwrap();
    assert_eq!(mine.grants.len(), 1);
    denied(f.engine.list_retirable_grants(
        &bob(),
        ListRetirableGrantsRequest {
            retiring_principal: "uid:1002".into(),
            limit: None,
            marker: None,
        },
    ));
    f.engine
        .retire_grant(
            &carol(),
            RetireGrantRequest {
                grant_token: Some(g.grant_token.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(list(&f, &key).is_empty());
    let e = f
        .engine
        .retire_grant(
            &carol(),
            RetireGrantRequest {
                grant_token: Some(g.grant_token),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "NotFoundException");
    // a grantee holding RetireGrant may retire by KeyId + GrantId
    let g2 = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                operations: vec![G::Decrypt, G::RetireGrant],
                retiring_principal: None,
                ..req.clone()
            },
        )
        .unwrap();
    f.engine
        .retire_grant(
            &bob(),
            RetireGrantRequest {
                key_id: Some(key.clone()),
                grant_id: Some(g2.grant_id),
                grant_token: None,
            },
        )
        .unwrap();
    // the key's owner (policy allows kms:RetireGrant) may retire any grant
    let g3 = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                retiring_principal: None,
                ..req
            },
        )
        .unwrap();
    f.engine
        .retire_grant(
            &alice(),
            RetireGrantRequest {
                key_id: Some(key.clone()),
                grant_id: Some(g3.grant_id),
                grant_token: None,
            },
        )
        .unwrap();
    let e = f
        .engine
        .retire_grant(
            &alice(),
            RetireGrantRequest {
                grant_id: Some("ab".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
}

#[test]
fn create_grant_authorization() {
    let f = fixture();
    let key = f.new_key();
    // bob has no right to create grants
    denied(f.engine.create_grant(
        &bob(),
        CreateGrantRequest {
            key_id: key.clone(),
            ..prefix_grant("uid:1002", "/p", &[G::Decrypt])
        },
    ));
    // a grant with CreateGrant lets bob delegate within it, never beyond
    f.engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1001", "/p", &[G::Decrypt, G::CreateGrant])
            },
        )
        .unwrap();
    f.engine
        .create_grant(
            &bob(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1002", "/p/sub", &[G::Decrypt])
            },
        )
        .unwrap();
    denied(f.engine.create_grant(
        &bob(),
        CreateGrantRequest {
            key_id: key.clone(),
            ..prefix_grant("uid:1002", "/", &[G::Decrypt])
        },
    ));
    denied(f.engine.create_grant(
        &bob(),
        CreateGrantRequest {
            key_id: key.clone(),
            ..prefix_grant("uid:1002", "/p", &[G::Encrypt])
        },
    ));
    // kms:GrantOperations in the policy limits what may be granted
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "uid:1000"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "uid:1002"}, "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "DescribeKey"]},
                       "StringLike": {"kms:GranteePrincipal": "uid:*"}}}]});
    put_policy(&f, &alice(), &key, &policy, false).unwrap();
    f.engine
        .create_grant(
            &carol(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1003", "/q", &[G::Decrypt])
            },
        )
        .unwrap();
    let msg = denied(f.engine.create_grant(
        &carol(),
        CreateGrantRequest {
            key_id: key.clone(),
            ..prefix_grant("uid:1003", "/q", &[G::Decrypt, G::Encrypt])
        },
    ));
    assert!(msg.contains("kms:CreateGrant"), "{msg}");
    // invalid requests
    let e = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("*", "/q", &[G::Decrypt])
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
    let e = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:5", "relative", &[G::Decrypt])
            },
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
}

#[test]
fn dispatch_speaks_aws_json() {
    let f = fixture();
    let key = f.new_key();
    let resp = f
        .engine
        .dispatch(&alice(), "CreateGrant", json!({
            "KeyId": key, "GranteePrincipal": "uid:1001", "Operations": ["Decrypt", "GenerateDataKey"],
            "Constraints": {"KmsfsPathPrefix": "/shared", "EncryptionContextSubset": {"kmsfs:volume": "v1"}},
            "Name": "n1"
        }))
        .unwrap();
    let id = resp["GrantId"].as_str().unwrap().to_string();
    assert!(resp["GrantToken"].is_string());
    let listed = f
        .engine
        .dispatch(&alice(), "ListGrants", json!({"KeyId": key}))
        .unwrap();
    assert_eq!(listed["Truncated"], json!(false));
    let g = &listed["Grants"][0];
    assert_eq!(g["GrantId"], json!(id));
    assert_eq!(g["Operations"], json!(["Decrypt", "GenerateDataKey"]));
    assert_eq!(
        g["Constraints"],
        json!({"EncryptionContextSubset": {"kmsfs:volume": "v1"}, "KmsfsPathPrefix": "/shared"})
    );
    assert_eq!(g["Name"], json!("n1"));
    let e = f
        .engine
        .dispatch(
            &alice(),
            "CreateGrant",
            json!({"KeyId": key, "GranteePrincipal": "uid:1", "Operations": ["Fly"]}),
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
    let pol = f
        .engine
        .dispatch(
            &alice(),
            "GetKeyPolicy",
            json!({"KeyId": key, "PolicyName": "default"}),
        )
        .unwrap();
    assert!(pol["Policy"].as_str().unwrap().contains("2012-10-17"));
    f.engine
        .dispatch(
            &alice(),
            "PutKeyPolicy",
            json!({"KeyId": key, "Policy": shared_policy().to_string()}),
        )
        .unwrap();
    assert_eq!(
        f.engine
            .dispatch(&alice(), "ListKeyPolicies", json!({"KeyId": key}))
            .unwrap()["PolicyNames"],
        json!(["default"])
    );
    f.engine
        .dispatch(
            &alice(),
            "RevokeGrant",
            json!({"KeyId": key, "GrantId": id}),
        )
        .unwrap();
}

#[test]
fn explain_access_names_the_decider() {
    let f = fixture();
    let key = f.new_key();
    put_policy(&f, &alice(), &key, &shared_policy(), false).unwrap();
    let g = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1001", "/p", &[G::Decrypt])
            },
        )
        .unwrap();
    let c = ctx(&[("kmsfs:path", "/p/x")]);
    let e = f
        .engine
        .explain_access(&key, &bob(), "kms:Decrypt", Some(&c))
        .unwrap();
    assert!(e.decision.allowed);
    assert_eq!(
        e.decision.reason.to_string(),
        format!("allowed by grant {}", g.grant_id)
    );
    let c = ctx(&[("kmsfs:path", "/hr/x")]);
    let e = f
        .engine
        .explain_access(&key, &alice(), "Decrypt", Some(&c))
        .unwrap();
    assert_eq!(
        e.decision.to_string(),
        "DENY: explicitly denied by Statement[2] (Sid \"NoHR\")"
    );
}

#[test]
fn request_alias_condition_sees_the_alias_the_caller_named() {
    let f = fixture();
    let key = f.new_key();
    f.engine
        .create_alias(
            &alice(),
            CreateAliasRequest {
                alias_name: "alias/finance".into(),
                target_key_id: key.clone(),
            },
        )
        .unwrap();
    // Bob may use the key only when he names it by alias/finance.
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:1000"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "ByAlias", "Effect": "Allow", "Principal": {"AWS": "uid:1001"},
         "Action": ["kms:GenerateDataKey", "kms:DescribeKey"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:RequestAlias": "alias/finance"}}}
    ]});
    put_policy(&f, &alice(), &key, &doc, false).unwrap();
    assert!(gdk(&f, &bob(), "alias/finance", "/a").is_ok());
    let alias_arn = "arn:aws:kms:local:000000000000:alias/finance";
    assert!(gdk(&f, &bob(), alias_arn, "/a").is_ok());
    let msg = denied(gdk(&f, &bob(), &key, "/a"));
    assert!(msg.contains("implicit deny"), "{msg}");
    let describe = |id: &str| {
        f.engine.describe_key(
            &bob(),
            DescribeKeyRequest {
                key_id: id.into(),
                grant_tokens: None,
            },
        )
    };
    assert!(describe("alias/finance").is_ok());
    denied(describe(&key));
}

/// Every operation that takes `GrantTokens` refuses a malformed token with
/// InvalidGrantTokenException (and audits the refusal), and accepts the
/// token CreateGrant returned.
#[test]
fn every_operation_with_grant_tokens_checks_them() {
    let f = fixture();
    let key = f.new_key();
    let g = f
        .engine
        .create_grant(
            &alice(),
            CreateGrantRequest {
                key_id: key.clone(),
                ..prefix_grant("uid:1001", "/b", &[G::Decrypt])
            },
        )
        .unwrap();
    let c = json!({"kmsfs:volume": "v1", "kmsfs:path": "/b/x"});
    let blob = f
        .engine
        .dispatch(
            &alice(),
            "Encrypt",
            json!({"KeyId": key, "Plaintext": "AAEC", "EncryptionContext": c}),
        )
        .unwrap()["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_string();
    let requests = [
        ("DescribeKey", json!({"KeyId": key})),
        (
            "Encrypt",
            json!({"KeyId": key, "Plaintext": "AAEC", "EncryptionContext": c}),
        ),
        (
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": c}),
        ),
        (
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "SourceEncryptionContext": c,
                   "DestinationKeyId": key, "DestinationEncryptionContext": c}),
        ),
        (
            "GenerateDataKey",
            json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": c}),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": c}),
        ),
    ];
    for (op, req) in requests {
        let mut bad = req.clone();
        bad["GrantTokens"] = json!([g.grant_token, "junk"]);
        let before = f.sink.events().len();
        let e = f.engine.dispatch(&alice(), op, bad).unwrap_err();
        assert_eq!(e.exception_name(), "InvalidGrantTokenException", "{op}");
        let events = f.sink.events();
        assert_eq!(events.len(), before + 1, "{op}: the refusal is audited");
        assert_eq!(
            events[before].error_code.as_deref(),
            Some("InvalidGrantTokenException"),
            "{op}"
        );
        let mut good = req;
        good["GrantTokens"] = json!([g.grant_token]);
        f.engine
            .dispatch(&alice(), op, good)
            .unwrap_or_else(|e| panic!("{op} with a real token: {e}"));
    }
}
