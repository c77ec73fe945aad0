//! Every op records exactly one audit event, success or failure, without
//! secrets; a failing sink fails the op.

use crate::common;
use common::*;
use kms_engine::audit::{AuditEvent, AuditSink};
use kms_engine::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn one_event_per_call_success_and_failure() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[("kmsfs:path", "/secret-report.txt")]);
    let blob = f.encrypt(&k, b"TOPSECRETPLAINTEXT", &c).unwrap();
    let _ = f.decrypt(&blob, &ctx(&[("kmsfs:path", "/other")]), None);
    let dk = f
        .engine
        .generate_data_key(
            &alice(),
            GenerateDataKeyRequest {
                key_id: k.clone(),
                encryption_context: c.clone(),
                key_spec: Some("AES_256".into()),
                number_of_bytes: None,
                grant_tokens: None,
            },
        )
        .unwrap();
    let _ = f
        .engine
        .dispatch(&alice(), "Decrypt", serde_json::json!({"Bogus": 1}));
    let ev = f.sink.events();
    let names: Vec<&str> = ev.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CreateKey",
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "Decrypt"
        ]
    );
    assert!(ev.iter().all(|e| e.principal == "uid:1000"));
    assert!(
        ev[..4]
            .iter()
            .all(|e| e.key_id.as_deref() == Some(k.as_str()))
    );
    assert_eq!(ev[1].encryption_context.as_ref(), Some(&c));
    assert_eq!(ev[1].error_code, None);
    assert_eq!(
        ev[2].error_code.as_deref(),
        Some("InvalidCiphertextException")
    );
    assert!(ev[2].error_message.is_some());
    assert_eq!(ev[4].error_code.as_deref(), Some("ValidationException"));
    assert_eq!(ev[0].event_time, "2023-11-14T22:13:20Z");
    let mut ids: Vec<&str> = ev.iter().map(|e| e.request_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ev.len());
    let all = serde_json::to_string(&ev).unwrap();
    assert!(!all.contains("TOPSECRETPLAINTEXT"));
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    assert!(!all.contains(&b64(dk.plaintext.as_slice())));
    assert!(!all.contains(&b64(b"TOPSECRETPLAINTEXT")));
}

#[derive(Debug, Default)]
struct FailingSink(AtomicBool);

impl AuditSink for FailingSink {
    fn record(&self, _e: &AuditEvent) -> Result<(), KmsError> {
        if self.0.load(Ordering::SeqCst) {
            Err(KmsError::Internal("audit disk full".into()))
        } else {
            Ok(())
        }
    }
}

#[test]
fn failing_sink_fails_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FailingSink::default());
    let e = Engine::create(
        &dir.path().join("e"),
        passphrase("p"),
        KdfParams::insecure_for_tests(),
        Arc::new(ManualClock::new(T0)),
        sink.clone(),
    )
    .unwrap();
    let k = e
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    sink.0.store(true, Ordering::SeqCst);
    let r = e.generate_data_key(
        &alice(),
        GenerateDataKeyRequest {
            key_id: k.clone(),
            encryption_context: Default::default(),
            key_spec: Some("AES_256".into()),
            number_of_bytes: None,
            grant_tokens: None,
        },
    );
    assert_eq!(r.unwrap_err(), KmsError::Internal("audit disk full".into()));
    assert!(
        e.dispatch(
            &alice(),
            "GenerateRandom",
            serde_json::json!({"NumberOfBytes": 4})
        )
        .is_err()
    );
}
