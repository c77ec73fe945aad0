//! Engine store rollback: every store write is anchored (generation and file
//! hash) in a signed digest of the audit trail at once, and an open of an
//! older `engine.store` copy is refused, or accepted on request and audited.
//! Real store and trail files on disk; no engine is closed cleanly before a
//! rollback unless the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::common::{T0, alice, passphrase};
use kms_engine::audit::query::{self, Filter};
use kms_engine::audit::{DeferredTrail, TrailOptions, verify};
use kms_engine::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Opened {
    engine: Engine,
    sink: Arc<DeferredTrail>,
}

fn options() -> TrailOptions {
    TrailOptions {
        background: false,
        // Never due by count or time: only store writes seal.
        digest_every_records: 1_000_000,
        digest_every: std::time::Duration::from_secs(3600),
        ..TrailOptions::default()
    }
}

fn create(dir: &Path) -> Opened {
    let sink = Arc::new(DeferredTrail::new(dir.join("audit"), options()));
    let engine = Engine::create(
        dir,
        passphrase("p"),
        KdfParams::insecure_for_tests(),
        Arc::new(ManualClock::new(T0)),
        sink.clone(),
    )
    .unwrap();
    sink.attach_seed(engine.audit_signing_seed().unwrap())
        .unwrap();
    Opened { engine, sink }
}

/// Opens the store as the CLI does: trail attached, then the anchor check.
fn open_checked(dir: &Path, accept: bool) -> Result<(Opened, AnchorCheck), KmsError> {
    let sink = Arc::new(DeferredTrail::new(dir.join("audit"), options()));
    let engine = Engine::open(
        dir,
        passphrase("p"),
        Arc::new(ManualClock::new(T0)),
        sink.clone(),
    )?;
    sink.attach_seed(engine.audit_signing_seed()?)?;
    let anchored = sink.trail().unwrap().newest_store_anchor()?;
    let check = engine.check_store_anchor(&alice(), anchored.as_ref(), accept)?;
    Ok((Opened { engine, sink }, check))
}

/// Drops an engine the way a killed process leaves it: no final digest.
fn kill(o: Opened) {
    std::mem::forget(o.sink);
    std::mem::forget(o.engine);
}

fn store(dir: &Path) -> PathBuf {
    dir.join("engine.store")
}

fn call(e: &Engine, op: &str, req: serde_json::Value) -> serde_json::Value {
    e.dispatch(&alice(), op, req).unwrap()
}

/// A key with a grant for uid 2000, and the grant's id.
fn key_with_grant(e: &Engine) -> (String, String) {
    let key = call(e, "CreateKey", json!({}))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let grant = call(
        e,
        "CreateGrant",
        json!({"KeyId": key, "GranteePrincipal": "uid:2000", "Operations": ["Decrypt"]}),
    )["GrantId"]
        .as_str()
        .unwrap()
        .to_string();
    (key, grant)
}

#[test]
fn an_older_store_copy_is_refused_after_a_revoke_or_a_disable() {
    type Change = fn(&Engine, &str, &str);
    let changes: [(&str, Change); 3] = [
        ("RevokeGrant", |e, k, g| {
            call(e, "RevokeGrant", json!({"KeyId": k, "GrantId": g}));
        }),
        ("DisableKey", |e, k, _| {
            call(e, "DisableKey", json!({"KeyId": k}));
        }),
        ("PutKeyPolicy", |e, k, _| {
            let policy = json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": "uid:1000"},
                "Action": "kms:*", "Resource": "*"}]});
            call(
                e,
                "PutKeyPolicy",
                json!({"KeyId": k, "PolicyName": "default", "Policy": policy.to_string()}),
            );
        }),
    ];
    for (name, change) in changes {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("engine");
        let o = create(&dir);
        let (key, grant) = key_with_grant(&o.engine);
        let old_gen = o.engine.store_anchor().unwrap().generation;
        let old_copy = std::fs::read(store(&dir)).unwrap();
        change(&o.engine, &key, &grant);
        let new_gen = o.engine.store_anchor().unwrap().generation;
        assert!(new_gen > old_gen, "{name}");
        // Killed right after the change: only the write's own digest anchors it.
        kill(o);
        std::fs::write(store(&dir), &old_copy).unwrap();
        let err = open_checked(&dir, false).map(|_| ()).unwrap_err();
        let KmsError::StoreRolledBack(msg) = &err else {
            panic!("{name}: {err:?}");
        };
        assert!(
            msg.contains(&format!("generation {old_gen}"))
                && msg.contains(&format!("generation {new_gen}")),
            "{name}: {msg}"
        );
        // Nothing was written: the old copy is still there as it was.
        assert_eq!(std::fs::read(store(&dir)).unwrap(), old_copy, "{name}");
    }
}

#[test]
fn an_accepted_rollback_is_written_past_the_anchor_and_audited() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let o = create(&dir);
    let (key, grant) = key_with_grant(&o.engine);
    let old_copy = std::fs::read(store(&dir)).unwrap();
    call(
        &o.engine,
        "RevokeGrant",
        json!({"KeyId": key, "GrantId": grant}),
    );
    let anchored = o.engine.store_anchor().unwrap().generation;
    let public_key = o.sink.trail().unwrap().export_public_key();
    drop(o);
    std::fs::write(store(&dir), &old_copy).unwrap();
    assert!(open_checked(&dir, false).is_err());

    let (o, check) = open_checked(&dir, true).unwrap();
    let AnchorCheck::RollbackAccepted {
        anchored_generation,
        now_generation,
        ..
    } = check
    else {
        panic!("{check:?}");
    };
    assert_eq!(anchored_generation, anchored);
    assert!(now_generation > anchored);
    // The restored copy's grant is back: that is what was accepted.
    let grants = call(&o.engine, "ListGrants", json!({"KeyId": key}));
    assert_eq!(grants["Grants"].as_array().unwrap().len(), 1);
    drop(o);

    let accepted = query::show(
        &dir.join("audit"),
        &Filter {
            event_name: Some("AcceptStoreRollback".into()),
            ..Filter::default()
        },
    )
    .unwrap();
    assert_eq!(accepted.len(), 1);
    let params = &accepted[0].record["requestParameters"];
    assert_eq!(params["anchoredGeneration"], anchored);
    // Opens without the flag from now on, and the trail verifies.
    let (_, check) = open_checked(&dir, false).unwrap();
    assert_eq!(check, AnchorCheck::Current);
    let report = verify(&dir.join("audit"), &public_key).unwrap();
    assert!(report.is_valid(), "{:?}", report.first_bad);
    assert_eq!(
        report.store_anchor.map(|a| a.generation),
        Some(now_generation)
    );
}

#[test]
fn every_store_write_is_anchored_before_the_call_returns() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let o = create(&dir);
    let trail = o.sink.trail().unwrap();
    let (key, _) = key_with_grant(&o.engine);
    for op in ["DisableKey", "EnableKey", "EnableKeyRotation"] {
        call(&o.engine, op, json!({"KeyId": key}));
        assert_eq!(
            trail.newest_store_anchor().unwrap(),
            Some(o.engine.store_anchor().unwrap()),
            "{op}"
        );
    }
    // A read-only call writes no digest.
    let digests = || {
        std::fs::read_dir(dir.join("audit"))
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name().to_string_lossy().starts_with("digest-")
            })
            .count()
    };
    let before = digests();
    call(&o.engine, "DescribeKey", json!({"KeyId": key}));
    assert_eq!(digests(), before);
}

#[test]
fn a_rollback_under_a_running_engine_refuses_its_writes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let o = create(&dir);
    let (key, _) = key_with_grant(&o.engine);
    let old_copy = std::fs::read(store(&dir)).unwrap();
    call(&o.engine, "DisableKey", json!({"KeyId": key}));
    std::fs::write(store(&dir), &old_copy).unwrap();
    let err = o
        .engine
        .dispatch(&alice(), "CreateKey", json!({}))
        .unwrap_err();
    assert!(matches!(err, KmsError::StoreRolledBack(_)), "{err:?}");
    // Reads keep the newer state this engine has: the key stays disabled.
    let d = call(&o.engine, "DescribeKey", json!({"KeyId": key}));
    assert_eq!(d["KeyMetadata"]["KeyState"], "Disabled");
    assert_eq!(std::fs::read(store(&dir)).unwrap(), old_copy);
}

#[test]
fn a_trail_without_anchors_opens_and_gets_one() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("engine");
    let o = create(&dir);
    drop(o);
    // A trail from before anchors: no digest at all yet.
    let (o, check) = open_checked(&dir, false).unwrap();
    assert_eq!(check, AnchorCheck::NoAnchor);
    call(&o.engine, "CreateKey", json!({}));
    let anchor = o.sink.trail().unwrap().newest_store_anchor().unwrap();
    assert_eq!(anchor, Some(o.engine.store_anchor().unwrap()));
}
