//! SigV4 over real HTTPS with the endpoint's own authenticator
//! ([`SigV4Authenticator`]) and access keys the engine issued: boto3 and
//! the aws CLI sign with them; a wrong secret, a changed body, a changed
//! signed header, an old date, a deactivated key, an unknown key id, a
//! session token and no signature are each refused with AWS's exception,
//! audited, and run no operation; two keys for two users under one key
//! policy: one allowed, one denied (skipped, saying so, only where boto3 or
//! the CLI is missing; CI installs both). Without Python, requests signed
//! in Rust and malformed `Authorization` headers over raw HTTP.
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

/// A KMS request signed now by the AWS SDK's signer (`aws-sigv4`), as raw
/// HTTP/1.1 header lines and body; `edit` may change the body after signing.
fn signed_raw(
    akid: &str,
    secret: &str,
    op: &str,
    body: &str,
    edit: &dyn Fn(&str) -> String,
) -> Vec<u8> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let mut headers = vec![
        ("host".to_string(), "localhost".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("x-amz-target".to_string(), format!("TrentService.{op}")),
    ];
    let identity = aws_credential_types::Credentials::new(akid, secret, None, None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("local")
        .name("kms")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        "http://localhost/",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (n, v) in instructions.headers() {
        headers.push((n.to_string(), v.to_string()));
    }
    let body = edit(body);
    let mut out = String::from("POST / HTTP/1.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// Without Python: requests signed in Rust over raw HTTP, and malformed
/// `Authorization` headers, each answered as AWS answers (status, `__type`,
/// `x-amzn-ErrorType`), audited, and running nothing.
#[test]
fn raw_requests_are_verified_and_malformed_ones_are_incomplete() {
    let srv = Server::start_with(false, Limits::default(), |engine| {
        Arc::new(SigV4Authenticator::new(engine))
    });
    let (id, secret) = access_key(&srv.engine, "uid:0");
    let same = |b: &str| b.to_string();
    let mut c = Conn::open(srv.addr());
    c.send_raw(&signed_raw(&id, &secret, "ListKeys", "{}", &same));
    let ok = c.read_reply().unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let refused = |c: &mut Conn, bytes: Vec<u8>, want: &str| {
        c.send_raw(&bytes);
        let r = c.read_reply().unwrap();
        assert_eq!((r.status, r.error_type().as_str()), (400, want), "{r:?}");
        assert_eq!(r.header("x-amzn-errortype"), Some(want));
        r
    };
    // The body changed after signing (same length).
    let body = r#"{"Description":"AAAA"}"#;
    let r = refused(
        &mut c,
        signed_raw(&id, &secret, "CreateKey", body, &|b| {
            b.replace("AAAA", "BBBB")
        }),
        "InvalidSignatureException",
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature")
    );
    // Malformed Authorization headers, and a signature without X-Amz-Date.
    let plain = |auth: &str, date: bool| {
        let date = if date {
            "X-Amz-Date: 20260101T000000Z\r\n"
        } else {
            ""
        };
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.CreateKey\r\n\
             Content-Type: application/x-amz-json-1.1\r\n{date}Authorization: {auth}\r\n\
             Content-Length: 2\r\n\r\n{{}}"
        )
        .into_bytes()
    };
    for auth in [
        format!("AWS4-HMAC-SHA256 Credential={id}/20260101/local/kms"),
        format!(
            "AWS4-HMAC-SHA512 Credential={id}/20260101/local/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
            "0".repeat(64)
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={id}/20260101/local/kms/aws4_request, SignedHeaders=host;x-amz-date"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={id}/20260101/local/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=xyz"
        ),
    ] {
        refused(&mut c, plain(&auth, true), "IncompleteSignatureException");
    }
    let full = format!(
        "AWS4-HMAC-SHA256 Credential={id}/20260101/local/kms/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    refused(&mut c, plain(&full, false), "IncompleteSignatureException");
    // Scoped to another service: InvalidSignatureException.
    refused(
        &mut c,
        plain(&full.replace("/kms/", "/s3/"), true),
        "InvalidSignatureException",
    );
    // Every refusal audited as anonymous; no CreateKey ran.
    let ev = srv.events();
    let creates: Vec<_> = ev.iter().filter(|e| e.event_name == "CreateKey").collect();
    assert_eq!(creates.len(), 7, "{creates:?}");
    assert!(
        creates
            .iter()
            .all(|e| e.principal == "anonymous" && e.error_code.is_some())
    );
    let keys = srv.engine.dispatch(&root(), "ListKeys", json!({})).unwrap();
    assert_eq!(keys["Keys"], json!([]));
}
