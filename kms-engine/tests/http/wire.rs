//! The AWS JSON 1.1 wire protocol over raw HTTP/1.1: targets, content
//! types, bodies, errors as AWS sends them, and the audit record of a call.

use crate::common::*;
use kms_engine::service::http::Limits;

#[test]
fn a_call_runs_for_the_access_keys_principal_and_is_audited_with_its_origin() {
    let srv = Server::plain(Limits::default());
    let mut c = Conn::open(srv.addr());
    let r = c.call(ALICE_KEY, "CreateKey", r#"{"Description":"web"}"#);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(r.header("x-amzn-requestid").map(str::len), Some(36));
    let meta = &r.json()["KeyMetadata"];
    let key_id = meta["KeyId"].as_str().unwrap().to_string();
    assert_eq!(
        meta["Arn"],
        format!("arn:aws:kms:local:000000000000:key/{key_id}")
    );
    assert!(meta["CreationDate"].is_number());
    // Same connection (keep-alive): the creator may use the key, bob may not.
    let enc = c.call(
        ALICE_KEY,
        "Encrypt",
        &format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGk="}}"#),
    );
    assert_eq!(enc.status, 200);
    let denied = c.call(
        BOB_KEY,
        "Encrypt",
        &format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGk="}}"#),
    );
    assert_eq!(
        (denied.status, denied.error_type().as_str()),
        (400, "AccessDeniedException")
    );
    assert_eq!(
        denied.header("x-amzn-errortype"),
        Some("AccessDeniedException")
    );
    assert!(
        denied.json()["message"]
            .as_str()
            .unwrap()
            .contains("user:bob")
    );
    let ev = srv.events();
    let create = ev.iter().find(|e| e.event_name == "CreateKey").unwrap();
    assert_eq!(create.principal, "user:alice");
    assert_eq!(create.access_key_id.as_deref(), Some(ALICE_KEY));
    assert_eq!(create.source_ip_address.as_deref(), Some("127.0.0.1"));
    let refused = ev.iter().find(|e| e.principal == "user:bob").unwrap();
    assert_eq!(refused.error_code.as_deref(), Some("AccessDeniedException"));
    assert_eq!(refused.access_key_id.as_deref(), Some(BOB_KEY));
}

#[test]
fn unauthenticated_requests_reach_no_operation_and_are_audited() {
    let srv = Server::plain(Limits::default());
    let mut c = Conn::open(srv.addr());
    c.send_raw(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.CreateKey\r\n\
          Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}",
    );
    let r = c.read_reply().unwrap();
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "MissingAuthenticationTokenException")
    );
    let r = c.call("AKIAUNKNOWN000000000", "CreateKey", "{}");
    assert_eq!(r.error_type(), "UnrecognizedClientException");
    let ev = srv.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(
        ev.iter()
            .all(|e| e.principal == "anonymous" && e.event_name == "CreateKey")
    );
    assert_eq!(ev[1].access_key_id.as_deref(), Some("AKIAUNKNOWN000000000"));
    assert_eq!(
        ev[1].error_code.as_deref(),
        Some("UnrecognizedClientException")
    );
    // No key was created.
    let list = c.call(ALICE_KEY, "ListKeys", "{}");
    assert_eq!(list.json()["Keys"], serde_json::json!([]));
}

#[test]
fn refusals_before_the_operation_are_aws_errors() {
    let srv = Server::plain(Limits::default());
    let mut c = Conn::open(srv.addr());
    let auth = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential={ALICE_KEY}/20260101/local/kms/aws4_request, SignedHeaders=host, Signature=00\r\n"
    );
    let cases: Vec<(String, u16, &str)> = vec![
        // Unknown and missing targets.
        (
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Frobnicate\r\nContent-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: 2\r\n\r\n{{}}"
            ),
            400,
            "UnknownOperationException",
        ),
        (
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: 2\r\n\r\n{{}}"
            ),
            400,
            "UnknownOperationException",
        ),
        // An AWS operation the engine does not have.
        (
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ReplicateKey\r\nContent-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: 2\r\n\r\n{{}}"
            ),
            400,
            "UnsupportedOperationException",
        ),
        // Wrong content type, method, path.
        (
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Type: application/json\r\n{auth}Content-Length: 2\r\n\r\n{{}}"
            ),
            400,
            "SerializationException",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\n{auth}\r\n"
            ),
            405,
            "UnknownOperationException",
        ),
        (
            format!(
                "POST /keys HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: 2\r\n\r\n{{}}"
            ),
            404,
            "UnknownOperationException",
        ),
    ];
    for (req, status, exc) in cases {
        c.send_raw(req.as_bytes());
        let r = c.read_reply().unwrap();
        assert_eq!((r.status, r.error_type().as_str()), (status, exc), "{req}");
        assert_eq!(r.header("x-amzn-errortype"), Some(exc));
        assert!(r.header("x-amzn-requestid").is_some());
    }
    // None of them ran an operation.
    assert!(srv.events().is_empty(), "{:?}", srv.events());
}

#[test]
fn malformed_json_and_wrong_types() {
    let srv = Server::plain(Limits::default());
    let mut c = Conn::open(srv.addr());
    for body in ["{", "[1,2]", "{\"KeyId\": }", "\u{0}"] {
        let r = c.call(ALICE_KEY, "DescribeKey", body);
        assert_eq!(
            (r.status, r.error_type().as_str()),
            (400, "SerializationException"),
            "{body}"
        );
    }
    let cases = [
        ("DescribeKey", r#"{"KeyId": 5}"#),
        ("DescribeKey", r#"{}"#),
        (
            "Encrypt",
            r#"{"KeyId":"alias/x","Plaintext":"not base64!"}"#,
        ),
        ("ListKeys", r#"{"Limit":"ten"}"#),
        ("ListKeys", r#"{"Limit":0}"#),
    ];
    for (op, body) in cases {
        let r = c.call(ALICE_KEY, op, body);
        assert_eq!(
            (r.status, r.error_type().as_str()),
            (400, "ValidationException"),
            "{op} {body}"
        );
        // A plaintext never comes back in a message.
        assert!(
            !String::from_utf8_lossy(&r.body).contains("not base64"),
            "{op} {body}"
        );
    }
    let r = c.call(ALICE_KEY, "DescribeKey", r#"{"KeyId":"alias/nope"}"#);
    assert_eq!(r.error_type(), "NotFoundException");
    // The connection is still good.
    assert_eq!(c.call(ALICE_KEY, "ListKeys", "").status, 200);
}

#[test]
fn every_engine_operation_is_served() {
    let srv = Server::plain(Limits::default());
    let mut c = Conn::open(srv.addr());
    for op in kms_engine::ops::dispatch::OPERATIONS {
        let r = c.call(ALICE_KEY, op, r#"{"KeyId":"alias/missing"}"#);
        let t = if r.status == 200 {
            String::new()
        } else {
            r.error_type()
        };
        assert!(
            !matches!(
                t.as_str(),
                "UnknownOperationException"
                    | "UnsupportedOperationException"
                    | "SerializationException"
            ),
            "{op}: {t}"
        );
    }
}
