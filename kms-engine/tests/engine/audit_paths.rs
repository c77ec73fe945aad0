//! The audit path modes on real trail files: in `hmac` and `omit` mode no
//! byte of a path reaches the audit directory (contexts, ReEncrypt's source
//! and destination, grant constraints, denial messages); `hmac` records are
//! found by path with the store's key; the mode is kept in the store, so a
//! second engine on it applies it; `verify` passes across mode changes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::common::{T0, alice, passphrase};
use kms_engine::audit::query::{self, Filter};
use kms_engine::audit::{AuditPathMode, DeferredTrail, TrailOptions, verify};
use kms_engine::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const PLAN: &str = "/secret/plan.txt";

fn open(dir: &Path, create: bool) -> (Engine, Arc<DeferredTrail>) {
    let opts = TrailOptions {
        background: false,
        digest_every_records: 3,
        ..TrailOptions::default()
    };
    let sink = Arc::new(DeferredTrail::new(dir.join("audit"), opts));
    let clock = Arc::new(ManualClock::new(T0));
    let e = if create {
        Engine::create(
            dir,
            passphrase("p"),
            KdfParams::insecure_for_tests(),
            clock,
            sink.clone(),
        )
    } else {
        Engine::open(dir, passphrase("p"), clock, sink.clone())
    }
    .unwrap();
    sink.attach_seed(e.audit_signing_seed().unwrap()).unwrap();
    (e, sink)
}

fn ctx(path: &str) -> Value {
    json!({"kmsfs:path": path, "kmsfs:volume": "vol-1"})
}

/// Calls that carry paths in every place a record can: a data key, a denied
/// decrypt, a ReEncrypt between two paths, a grant with a path prefix.
fn calls_with_paths(e: &Engine, key: &str) {
    let who = alice();
    let gdk = e
        .dispatch(
            &who,
            "GenerateDataKey",
            json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx(PLAN)}),
        )
        .unwrap();
    let blob = gdk["CiphertextBlob"].clone();
    let bob = Principal::from_ids(2000, 2000, vec![]);
    let denied = e.dispatch(
        &bob,
        "Decrypt",
        json!({"CiphertextBlob": blob, "EncryptionContext": ctx(PLAN)}),
    );
    assert!(
        matches!(denied, Err(KmsError::AccessDenied(_))),
        "{denied:?}"
    );
    e.dispatch(
        &who,
        "ReEncrypt",
        json!({"CiphertextBlob": blob, "SourceEncryptionContext": ctx(PLAN),
               "DestinationKeyId": key, "DestinationEncryptionContext": ctx("/secret/moved.txt")}),
    )
    .unwrap();
    e.dispatch(
        &who,
        "CreateGrant",
        json!({"KeyId": key, "GranteePrincipal": "uid:2000", "Operations": ["Decrypt"],
               "Constraints": {"KmsfsPathPrefix": "/secret"}}),
    )
    .unwrap();
    e.dispatch(
        &who,
        "GenerateDataKey",
        json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx("/other/x")}),
    )
    .unwrap();
}

/// Every byte of every file in the audit directory.
fn trail_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.join("audit")).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn found(dir: &Path, forms: Vec<String>) -> Vec<String> {
    let filter = Filter {
        path_forms: Some(forms),
        ..Filter::default()
    };
    query::show(&dir.join("audit"), &filter)
        .unwrap()
        .iter()
        .map(|r| r.record["eventName"].as_str().unwrap().to_string())
        .collect()
}

fn new_key(e: &Engine) -> String {
    e.dispatch(&alice(), "CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn hmac_records_hold_no_path_and_are_found_by_path() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let (e, _sink) = open(&dir, true);
    let key = new_key(&e);
    let change = e
        .set_audit_path_mode(&alice(), AuditPathMode::Hmac)
        .unwrap();
    assert_eq!(change.previous, AuditPathMode::Plain);
    calls_with_paths(&e, &key);
    let bytes = trail_bytes(&dir);
    assert!(!contains(&bytes, "/secret"), "a path reached the trail");
    assert!(!contains(&bytes, "/other"), "a path reached the trail");
    assert!(contains(&bytes, "hmac-sha256:"));
    let forms = e.audit_path_forms(PLAN).unwrap();
    assert_eq!(forms.len(), 2);
    // The data key, the denied decrypt, the ReEncrypt from it.
    assert_eq!(
        found(&dir, forms),
        ["GenerateDataKey", "Decrypt", "ReEncrypt"]
    );
    assert_eq!(
        found(&dir, e.audit_path_forms("/other/x").unwrap()),
        ["GenerateDataKey"]
    );
    // Without the key the plaintext path finds nothing.
    assert!(found(&dir, vec![PLAN.to_string()]).is_empty());

    // Another engine on the store (another process) applies the same mode
    // with the same key.
    drop(e);
    let (again, _s) = open(&dir, false);
    assert_eq!(again.audit_path_mode().unwrap(), AuditPathMode::Hmac);
    again
        .dispatch(
            &alice(),
            "GenerateDataKey",
            json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx(PLAN)}),
        )
        .unwrap();
    assert!(!contains(&trail_bytes(&dir), "/secret"));
    assert_eq!(found(&dir, again.audit_path_forms(PLAN).unwrap()).len(), 4);
}

#[test]
fn omit_records_hold_no_path_at_all() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let (e, _sink) = open(&dir, true);
    let key = new_key(&e);
    e.set_audit_path_mode(&alice(), AuditPathMode::Omit)
        .unwrap();
    calls_with_paths(&e, &key);
    let bytes = trail_bytes(&dir);
    assert!(!contains(&bytes, "/secret") && !contains(&bytes, "/other"));
    assert!(!contains(&bytes, "kmsfs:path") && !contains(&bytes, "hmac-sha256:"));
    // The rest of the context is kept.
    assert!(contains(&bytes, "vol-1"));
    assert!(found(&dir, e.audit_path_forms(PLAN).unwrap()).is_empty());
}

#[test]
fn verify_passes_across_mode_changes_and_each_period_keeps_its_form() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let (e, sink) = open(&dir, true);
    let public_key = sink.trail().unwrap().export_public_key();
    let key = new_key(&e);
    let gdk = |path: &str| {
        e.dispatch(
            &alice(),
            "GenerateDataKey",
            json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx(path)}),
        )
        .unwrap();
    };
    gdk("/plain-period");
    e.set_audit_path_mode(&alice(), AuditPathMode::Hmac)
        .unwrap();
    gdk("/hmac-period");
    e.set_audit_path_mode(&alice(), AuditPathMode::Omit)
        .unwrap();
    gdk("/omit-period");
    e.set_audit_path_mode(&alice(), AuditPathMode::Hmac)
        .unwrap();
    gdk("/plain-period");
    drop(e);
    drop(sink);
    let bytes = trail_bytes(&dir);
    assert!(contains(&bytes, "/plain-period"));
    assert!(!contains(&bytes, "/hmac-period") && !contains(&bytes, "/omit-period"));
    let report = verify(&dir.join("audit"), &public_key).unwrap();
    assert!(report.is_valid(), "{:?}", report.first_bad);
    let changes = query::show(
        &dir.join("audit"),
        &Filter {
            event_name: Some("UpdateAuditPathMode".into()),
            ..Filter::default()
        },
    )
    .unwrap();
    assert_eq!(changes.len(), 3);
    // The plaintext record of the plain period and the hmac one after the
    // key was kept across omit are both found by path.
    let (e, _s) = open(&dir, false);
    assert_eq!(
        found(&dir, e.audit_path_forms("/plain-period").unwrap()).len(),
        2
    );
    assert_eq!(
        found(&dir, e.audit_path_forms("/hmac-period").unwrap()).len(),
        1
    );
}
