//! SigV4 over real HTTPS with the endpoint's own authenticator
//! ([`SigV4Authenticator`]) and access keys the engine issued: boto3 and
//! the aws CLI sign with them; a wrong secret, a changed body, a changed
//! signed header, an old date, a deactivated key, an unknown key id, a
//! session token and no signature are each refused with AWS's exception,
//! audited, and run no operation; two keys for two users under one key
//! policy: one allowed, one denied. Skipped, saying so, only where boto3 or
//! the CLI is missing (CI installs both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::aws_clients::have_python_clients;
use crate::common::*;
use kms_engine::service::http::{Limits, SigV4Authenticator};
use kms_engine::*;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;

fn root() -> Principal {
    Principal::from_ids(0, 0, vec![])
}

/// A new access key for `principal`: (id, secret).
fn access_key(engine: &Engine, principal: &str) -> (String, String) {
    let r = engine
        .dispatch(&root(), "CreateAccessKey", json!({"Principal": principal}))
        .unwrap();
    let k = &r["AccessKey"];
    (
        k["AccessKeyId"].as_str().unwrap().to_string(),
        k["SecretAccessKey"].as_str().unwrap().to_string(),
    )
}

#[test]
fn boto3_signatures_are_verified_and_refusals_run_nothing() {
    if let Err(why) = have_python_clients() {
        eprintln!("skipped: {why}");
        return;
    }
    let srv = Server::start_with(true, Limits::default(), |engine| {
        Arc::new(SigV4Authenticator::new(engine))
    });
    let engine = &srv.engine;
    let key = engine
        .create_key(&root(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "app", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:user/nobody"},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}
        ]
    });
    engine
        .dispatch(
            &root(),
            "PutKeyPolicy",
            json!({"KeyId": key, "PolicyName": "default", "Policy": policy.to_string()}),
        )
        .unwrap();
    let (admin, admin_secret) = access_key(engine, "uid:0");
    let (allowed, allowed_secret) = access_key(engine, "arn:aws:iam::111122223333:user/nobody");
    let (denied, denied_secret) = access_key(engine, "user:daemon");
    let (inactive, inactive_secret) = access_key(engine, "uid:0");
    engine
        .dispatch(
            &root(),
            "UpdateAccessKey",
            json!({"AccessKeyId": inactive, "Status": "Inactive"}),
        )
        .unwrap();
    let before = srv.events().len();

    let cert = srv.cert.as_ref().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/sigv4_clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(srv.url())
        .arg(&cert.cert_path)
        .arg(&key)
        .args([&admin, &admin_secret, &allowed, &allowed_secret])
        .args([&denied, &denied_secret, &inactive, &inactive_secret])
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("11 passed, 0 failed"), "{stdout}");

    let events: Vec<_> = srv.events().into_iter().skip(before).collect();
    // Every refusal audited as anonymous, with AWS's exception, the key id
    // the request claimed and the source address.
    let refused = |code: &str| -> Vec<Option<String>> {
        events
            .iter()
            .filter(|e| e.error_code.as_deref() == Some(code))
            .inspect(|e| {
                assert_eq!(e.principal, "anonymous", "{e:?}");
                assert_eq!(e.source_ip_address.as_deref(), Some("127.0.0.1"));
            })
            .map(|e| e.access_key_id.clone())
            .collect()
    };
    let a = Some(admin.clone());
    // Wrong secret, changed body, changed header, old date; the CLI's wrong secret.
    assert_eq!(
        refused("InvalidSignatureException"),
        vec![a.clone(), a.clone(), a.clone(), a.clone(), a.clone()]
    );
    let i = Some(inactive.clone());
    let u = Some("AKIAAAAAAAAAAAAAAAAA".to_string());
    // Deactivated, unknown, session token; the CLI's deactivated key.
    assert_eq!(
        refused("UnrecognizedClientException"),
        vec![i.clone(), u, a.clone(), i]
    );
    assert_eq!(refused("MissingAuthenticationTokenException"), vec![None]);
    // The changed X-Amz-Target is what the refusal names; nothing ran.
    let tampered: Vec<_> = events
        .iter()
        .filter(|e| e.event_name == "ScheduleKeyDeletion")
        .collect();
    assert_eq!(tampered.len(), 1, "{tampered:?}");
    assert_eq!(
        tampered[0].error_code.as_deref(),
        Some("InvalidSignatureException")
    );
    assert!(
        events
            .iter()
            .filter(|e| e.event_name == "CreateKey")
            .all(|e| e.error_code.is_some()),
        "a refused CreateKey ran"
    );
    let keys = engine.dispatch(&root(), "ListKeys", json!({})).unwrap();
    assert_eq!(keys["Keys"].as_array().unwrap().len(), 1, "{keys}");
    let d = engine
        .dispatch(&root(), "DescribeKey", json!({"KeyId": key}))
        .unwrap();
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled");
    // The two principals under one policy: nobody's calls ran as nobody,
    // daemon's were denied by the policy (authenticated, then refused).
    let by = |akid: &str| -> Vec<(String, Option<String>)> {
        events
            .iter()
            .filter(|e| e.access_key_id.as_deref() == Some(akid))
            .map(|e| (e.event_name.clone(), e.error_code.clone()))
            .collect()
    };
    assert_eq!(
        by(&allowed),
        vec![("Encrypt".into(), None), ("Decrypt".into(), None)]
    );
    let denied_calls = by(&denied);
    assert_eq!(denied_calls.len(), 2, "{denied_calls:?}");
    assert!(
        denied_calls
            .iter()
            .all(|(_, c)| c.as_deref() == Some("AccessDeniedException"))
    );
    for e in events
        .iter()
        .filter(|e| e.access_key_id.as_deref() == Some(&*denied))
    {
        assert_eq!(e.principal, "user:daemon");
    }
    // No secret in any record.
    let all = serde_json::to_string(&events).unwrap();
    for s in [&admin_secret, &allowed_secret, &denied_secret] {
        assert!(!all.contains(s.as_str()));
    }
    // The accepted keys' last use is recorded; the refused inactive key's is not.
    let list = engine
        .dispatch(&root(), "ListAccessKeys", json!({}))
        .unwrap();
    let used = |id: &str| -> Value {
        list["AccessKeyMetadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["AccessKeyId"] == id)
            .unwrap()
            .get("LastUsedDate")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(used(&allowed).is_i64());
    assert!(used(&denied).is_i64());
    assert_eq!(used(&inactive), Value::Null);
}
