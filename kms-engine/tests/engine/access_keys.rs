//! Access keys: created, listed, deactivated and deleted by administrators
//! only, secrets sealed in the store and never audited; SigV4 requests
//! signed with them authenticate as the principal they name, and policies
//! written with IAM user ARNs name that principal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::common::*;
use kms_engine::engine::CallOrigin;
use kms_engine::service::http::{
    AuthRefusal, Authenticated, Authenticator, RequestParts, SigV4Authenticator,
};
use kms_engine::*;
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

const REGION: &str = "us-east-1";

fn root() -> Principal {
    Principal::from_ids(0, 0, vec![])
}

fn create(f: &Fixture, principal: &str) -> (String, String) {
    let r = f
        .engine
        .dispatch(&root(), "CreateAccessKey", json!({"Principal": principal}))
        .unwrap();
    let k = &r["AccessKey"];
    (
        k["AccessKeyId"].as_str().unwrap().to_string(),
        k["SecretAccessKey"].as_str().unwrap().to_string(),
    )
}

/// A KMS request as an AWS SDK signs it (the `aws-sigv4` signer, its
/// default settings) at `at`.
struct Signed {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn sign(akid: &str, secret: &str, at: i64, op: &str, body: &Value) -> Signed {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let body = serde_json::to_vec(body).unwrap();
    let mut headers = vec![
        ("host".to_string(), "127.0.0.1:4443".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("x-amz-target".to_string(), format!("TrentService.{op}")),
    ];
    let identity = aws_credential_types::Credentials::new(akid, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("kms")
        .time(UNIX_EPOCH + Duration::from_secs(at as u64))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        "https://127.0.0.1:4443/",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (n, v) in instructions.headers() {
        headers.push((n.to_string(), v.to_string()));
    }
    headers.push(("user-agent".to_string(), "test".to_string()));
    Signed {
        headers: headers
            .into_iter()
            .map(|(n, v)| (n, v.into_bytes()))
            .collect(),
        body,
    }
}

/// The endpoint's authenticator over the fixture's engine (shared through
/// an `Arc` of a second engine on the same store: what the daemon holds).
fn authenticate(f: &Fixture, s: &Signed) -> Result<Authenticated, AuthRefusal> {
    let engine = std::sync::Arc::new(
        Engine::open(
            &f.engine_dir(),
            passphrase("correct horse"),
            std::sync::Arc::new(f.clock.clone()),
            f.sink.clone(),
        )
        .unwrap(),
    );
    let auth = SigV4Authenticator::for_region(engine, REGION);
    let mut headers = hyper::HeaderMap::new();
    for (n, v) in &s.headers {
        headers.append(
            hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    auth.authenticate(&RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &s.body,
    })
}

fn origin(a: &Authenticated) -> CallOrigin {
    CallOrigin {
        access_key_id: Some(a.access_key_id.clone()),
        source_address: Some("127.0.0.1".into()),
    }
}

#[test]
fn created_keys_authenticate_as_their_principal_and_are_audited() {
    let f = fixture();
    let (id, secret) = create(&f, "user:nobody");
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    let s = sign(
        &id,
        &secret,
        T0,
        "GenerateRandom",
        &json!({"NumberOfBytes": 8}),
    );
    let ok = authenticate(&f, &s).unwrap();
    assert_eq!(ok.access_key_id, id);
    assert_eq!(ok.principal.uid, 65534);
    assert_eq!(ok.principal.user_name.as_deref(), Some("nobody"));
    // The endpoint runs the call from the key's origin: audited with both.
    f.engine
        .dispatch_from(
            &ok.principal,
            &origin(&ok),
            "GenerateRandom",
            json!({"NumberOfBytes": 8}),
        )
        .unwrap();
    let ev = f.sink.events();
    let last = ev.last().unwrap();
    assert_eq!(last.event_name, "GenerateRandom");
    assert_eq!(last.principal, "user:nobody");
    assert_eq!(last.access_key_id.as_deref(), Some(&*id));
    assert_eq!(last.source_ip_address.as_deref(), Some("127.0.0.1"));
    // The secret is in no audit record and not in the store file's bytes.
    let all = serde_json::to_string(&ev).unwrap();
    assert!(!all.contains(&secret));
    let raw = std::fs::read(f.engine_dir().join("engine.store")).unwrap();
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert_eq!(raw[8], 6);
    // Listed without the secret, with its last use (to the hour).
    let list = f
        .engine
        .dispatch(&root(), "ListAccessKeys", json!({}))
        .unwrap();
    assert!(!list.to_string().contains(&secret));
    let m = &list["AccessKeyMetadata"][0];
    assert_eq!(m["AccessKeyId"], json!(id));
    assert_eq!(m["Principal"], "user:nobody");
    assert_eq!(m["Status"], "Active");
    assert_eq!(m["CreateDate"], T0);
    assert_eq!(m["LastUsedDate"], T0 - T0 % 3600);
    // The key survives a reopen.
    let again = f.reopen().unwrap();
    // A second use within the hour writes nothing.
    let before = std::fs::read(f.engine_dir().join("engine.store")).unwrap();
    f.clock.advance_secs(600);
    authenticate(&f, &sign(&id, &secret, T0 + 600, "ListKeys", &json!({}))).unwrap();
    assert_eq!(
        std::fs::read(f.engine_dir().join("engine.store")).unwrap(),
        before
    );
    let l2 = again
        .dispatch(&root(), "ListAccessKeys", json!({}))
        .unwrap();
    assert_eq!(l2["AccessKeyMetadata"], list["AccessKeyMetadata"]);
}

#[test]
fn refusals_name_the_aws_exception_and_the_claimed_key() {
    let f = fixture();
    let (id, secret) = create(&f, "uid:0");
    let body = json!({"NumberOfBytes": 8});
    // A wrong secret.
    let s = sign(
        &id,
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        T0,
        "GenerateRandom",
        &body,
    );
    let e = authenticate(&f, &s).unwrap_err();
    assert_eq!(e.exception, "InvalidSignatureException");
    assert_eq!(e.access_key_id.as_deref(), Some(&*id));
    // An old date.
    let s = sign(&id, &secret, T0 - 3600, "GenerateRandom", &body);
    let e = authenticate(&f, &s).unwrap_err();
    assert!(e.message.starts_with("Signature expired: "), "{e:?}");
    // Another region than the endpoint's.
    let s = sign(&id, &secret, T0, "GenerateRandom", &body);
    let other =
        SigV4Authenticator::for_region(std::sync::Arc::new(f.reopen().unwrap()), "eu-west-1");
    let mut headers = hyper::HeaderMap::new();
    for (n, v) in &s.headers {
        headers.append(
            hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &s.body,
    };
    assert_eq!(
        other.authenticate(&parts).unwrap_err().exception,
        "InvalidSignatureException"
    );
    // An unknown key.
    let s = sign("AKIAAAAAAAAAAAAAAAAA", &secret, T0, "GenerateRandom", &body);
    let e = authenticate(&f, &s).unwrap_err();
    assert_eq!(e.exception, "UnrecognizedClientException");
    assert_eq!(e.access_key_id.as_deref(), Some("AKIAAAAAAAAAAAAAAAAA"));
    // No signature at all.
    let mut s = sign(&id, &secret, T0, "GenerateRandom", &body);
    s.headers.retain(|(n, _)| n != "authorization");
    let e = authenticate(&f, &s).unwrap_err();
    assert_eq!(e.exception, "MissingAuthenticationTokenException");
    assert_eq!(e.access_key_id, None);
}

#[test]
fn deactivated_and_deleted_keys_authenticate_nothing() {
    let f = fixture();
    let (id, secret) = create(&f, "user:nobody");
    let body = json!({});
    let s = sign(&id, &secret, T0, "ListKeys", &body);
    authenticate(&f, &s).unwrap();
    f.engine
        .dispatch(
            &root(),
            "UpdateAccessKey",
            json!({"AccessKeyId": id, "Status": "Inactive"}),
        )
        .unwrap();
    let e = authenticate(&f, &s).unwrap_err();
    assert_eq!(e.exception, "UnrecognizedClientException");
    assert_eq!(
        e.message,
        "The security token included in the request is invalid."
    );
    let l = f
        .engine
        .dispatch(&root(), "ListAccessKeys", json!({}))
        .unwrap();
    assert_eq!(l["AccessKeyMetadata"][0]["Status"], "Inactive");
    // Active again (rotation: a new key, the old one deactivated, then deleted).
    f.engine
        .dispatch(
            &root(),
            "UpdateAccessKey",
            json!({"AccessKeyId": id, "Status": "Active"}),
        )
        .unwrap();
    authenticate(&f, &s).unwrap();
    f.engine
        .dispatch(&root(), "DeleteAccessKey", json!({"AccessKeyId": id}))
        .unwrap();
    let e = authenticate(&f, &s).unwrap_err();
    assert_eq!(e.exception, "UnrecognizedClientException");
    let e = f
        .engine
        .dispatch(&root(), "DeleteAccessKey", json!({"AccessKeyId": id}))
        .unwrap_err();
    assert_eq!(e.exception_name(), "NotFoundException");
    let e = f
        .engine
        .dispatch(
            &root(),
            "UpdateAccessKey",
            json!({"AccessKeyId": id, "Status": "Paused"}),
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
}

#[test]
fn only_administrators_manage_access_keys() {
    let f = fixture();
    // The tests run as root, which owns the store: uid 1000 is no admin.
    let e = f
        .engine
        .dispatch(
            &alice(),
            "CreateAccessKey",
            json!({"Principal": "uid:1000"}),
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "AccessDeniedException");
    let (id, _) = create(&f, "uid:1000");
    for (op, req) in [
        ("ListAccessKeys", json!({})),
        (
            "UpdateAccessKey",
            json!({"AccessKeyId": id, "Status": "Inactive"}),
        ),
        ("DeleteAccessKey", json!({"AccessKeyId": id})),
    ] {
        let e = f.engine.dispatch(&alice(), op, req).unwrap_err();
        assert_eq!(e.exception_name(), "AccessDeniedException", "{op}");
    }
    let ev = f.sink.events();
    let denied = ev
        .iter()
        .filter(|e| e.error_code.as_deref() == Some("AccessDeniedException"))
        .count();
    assert_eq!(denied, 4);
    // Unknown principals and bad forms are refused at creation.
    let e = f
        .engine
        .dispatch(
            &root(),
            "CreateAccessKey",
            json!({"Principal": "user:no-such-user-x"}),
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "NotFoundException");
    let e = f
        .engine
        .dispatch(
            &root(),
            "CreateAccessKey",
            json!({"Principal": "group:staff"}),
        )
        .unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
    // An IAM user ARN is stored as the user it names.
    let r = f
        .engine
        .dispatch(
            &root(),
            "CreateAccessKey",
            json!({"Principal": "arn:aws:iam::111122223333:user/nobody"}),
        )
        .unwrap();
    assert_eq!(r["AccessKey"]["Principal"], "user:nobody");
    let l = f
        .engine
        .dispatch(
            &root(),
            "ListAccessKeys",
            json!({"Principal": "user:nobody"}),
        )
        .unwrap();
    assert_eq!(l["AccessKeyMetadata"].as_array().unwrap().len(), 1);
}

/// Two access keys, two principals, one policy naming one of them by IAM
/// user ARN: that one may decrypt, the other may not.
#[test]
fn a_policy_naming_an_iam_user_arn_allows_that_keys_principal_only() {
    let f = fixture();
    let key = f
        .engine
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
    f.engine
        .dispatch(
            &root(),
            "PutKeyPolicy",
            json!({"KeyId": key, "PolicyName": "default", "Policy": policy.to_string()}),
        )
        .unwrap();
    let (app_id, app_secret) = create(&f, "user:nobody");
    let (other_id, other_secret) = create(&f, "user:daemon");
    let req = json!({"KeyId": key, "Plaintext": "aGVsbG8="});
    let app = authenticate(&f, &sign(&app_id, &app_secret, T0, "Encrypt", &req)).unwrap();
    f.engine
        .dispatch(&app.principal, "Encrypt", req.clone())
        .unwrap();
    let other = authenticate(&f, &sign(&other_id, &other_secret, T0, "Encrypt", &req)).unwrap();
    let e = f
        .engine
        .dispatch(&other.principal, "Encrypt", req)
        .unwrap_err();
    assert_eq!(e.exception_name(), "AccessDeniedException");
}
