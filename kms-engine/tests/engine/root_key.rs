//! ChangeRootKey: the old secret stops opening the store and the new one
//! opens it with everything in it, across passphrases and key files; an
//! engine opened before the change keeps reading and writing; a wrong
//! current secret changes nothing; the call is audited without secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::common;
use common::*;
use kms_engine::audit::NullSink;
use kms_engine::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

fn key(b: u8) -> RootKeySource {
    RootKeySource::Key(Zeroizing::new([b; 32]))
}

fn open_at(dir: &Path, root: RootKeySource) -> Result<Engine, KmsError> {
    Engine::open(
        dir,
        root,
        Arc::new(ManualClock::new(T0)),
        Arc::new(NullSink),
    )
}

fn change(
    e: &Engine,
    current: RootKeySource,
    new: RootKeySource,
) -> Result<ChangeRootKeyResponse, KmsError> {
    e.change_root_key(
        &alice(),
        ChangeRootKeyRequest {
            current,
            new,
            kdf: KdfParams::insecure_for_tests(),
        },
    )
}

/// Keys, an alias, a grant, a custom policy, a second key version, and a
/// data key (ciphertext, plaintext) generated under the first key.
fn populate(e: &Engine) -> (Value, Vec<u8>) {
    let who = alice();
    let call = |op: &str, req: Value| e.dispatch(&who, op, req).unwrap();
    let k1 = call("CreateKey", json!({"Description": "first"}))["KeyMetadata"]["KeyId"].clone();
    let k2 = call("CreateKey", json!({}))["KeyMetadata"]["KeyId"].clone();
    call(
        "CreateAlias",
        json!({"AliasName": "alias/root-change", "TargetKeyId": k1}),
    );
    call(
        "CreateGrant",
        json!({"KeyId": k1, "GranteePrincipal": "uid:2000", "Operations": ["Decrypt"]}),
    );
    call("RotateKeyOnDemand", json!({"KeyId": k1}));
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Owner",
        "Effect": "Allow", "Principal": {"AWS": "uid:1000"}, "Action": "kms:*",
        "Resource": "*"}]});
    call(
        "PutKeyPolicy",
        json!({"KeyId": k2, "PolicyName": "default", "Policy": policy.to_string()}),
    );
    let dk = call(
        "GenerateDataKey",
        json!({"KeyId": "alias/root-change", "KeySpec": "AES_256",
               "EncryptionContext": {"kmsfs:volume": "v"}}),
    );
    use base64::Engine as _;
    let plain = base64::engine::general_purpose::STANDARD
        .decode(dk["Plaintext"].as_str().unwrap())
        .unwrap();
    (dk["CiphertextBlob"].clone(), plain)
}

/// The data key `blob` decrypts to `plain` in `e`.
fn assert_decrypts(e: &Engine, blob: &Value, plain: &[u8]) {
    let r = e
        .dispatch(
            &alice(),
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": {"kmsfs:volume": "v"}}),
        )
        .unwrap();
    use base64::Engine as _;
    let got = base64::engine::general_purpose::STANDARD
        .decode(r["Plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, plain);
}

fn new_key_id(e: &Engine) -> String {
    e.create_key(&alice(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id
}

fn store_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("engine.store")).unwrap()
}

#[test]
fn old_secret_is_refused_and_new_one_opens_everything() {
    let f = fixture();
    let dir = f.engine_dir();
    let (blob, plain) = populate(&f.engine);
    let before = inventory(&f.engine);
    let r = change(
        &f.engine,
        passphrase("correct horse"),
        passphrase("new horse"),
    )
    .unwrap();
    assert_eq!(
        r,
        ChangeRootKeyResponse {
            root_key_source: "passphrase",
            format_version: 6,
            converted_from_v1: false,
        }
    );
    assert_eq!(
        open_at(&dir, passphrase("correct horse")).unwrap_err(),
        KmsError::WrongPassphrase
    );
    let e = open_at(&dir, passphrase("new horse")).unwrap();
    assert_eq!(inventory(&e), before);
    assert_decrypts(&e, &blob, &plain);
    assert_eq!(
        *e.audit_signing_seed().unwrap(),
        *f.engine.audit_signing_seed().unwrap()
    );
    // The engine that made the change keeps working, and so does a new one.
    new_key_id(&f.engine);
    new_key_id(&e);
    assert_eq!(
        inventory(&open_at(&dir, passphrase("new horse")).unwrap())["keys"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn passphrase_to_key_file_and_back() {
    let f = fixture();
    let dir = f.engine_dir();
    let (blob, plain) = populate(&f.engine);
    let before = inventory(&f.engine);
    let kf = f.dir.path().join("root.key");
    std::fs::write(&kf, [0x42; 32]).unwrap();

    let r = change(
        &f.engine,
        passphrase("correct horse"),
        RootKeySource::KeyFile(kf.clone()),
    )
    .unwrap();
    assert_eq!(r.root_key_source, "key-file");
    let raw = store_bytes(&dir);
    assert_eq!(raw[8], 6, "format version");
    assert_eq!(raw[9], 2, "root kind: key file");
    assert_eq!(
        &raw[10..38],
        &[0u8; 28],
        "no KDF parameters or salt for a key file"
    );
    assert_eq!(
        open_at(&dir, passphrase("correct horse")).unwrap_err(),
        KmsError::WrongPassphrase
    );
    // The key file's bytes, from the file or from memory, open it.
    let e = open_at(&dir, RootKeySource::KeyFile(kf.clone())).unwrap();
    assert_eq!(inventory(&e), before);
    let e = open_at(&dir, key(0x42)).unwrap();
    assert_decrypts(&e, &blob, &plain);

    // Back to a passphrase, with its own Argon2id cost in the header.
    let kdf = KdfParams {
        m_cost_kib: 16,
        t_cost: 2,
        p_cost: 1,
    };
    let r = e
        .change_root_key(
            &alice(),
            ChangeRootKeyRequest {
                current: key(0x42),
                new: passphrase("back to words"),
                kdf,
            },
        )
        .unwrap();
    assert_eq!(r.root_key_source, "passphrase");
    let raw = store_bytes(&dir);
    assert_eq!(raw[9], 1, "root kind: passphrase");
    assert_eq!(&raw[10..22], &[0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 1]);
    assert_ne!(&raw[22..38], &[0u8; 16], "a fresh salt");
    assert_eq!(
        open_at(&dir, key(0x42)).unwrap_err(),
        KmsError::WrongPassphrase
    );
    assert_eq!(
        open_at(&dir, RootKeySource::KeyFile(kf)).unwrap_err(),
        KmsError::WrongPassphrase
    );
    let e = open_at(&dir, passphrase("back to words")).unwrap();
    assert_eq!(inventory(&e), before);
    assert_decrypts(&e, &blob, &plain);
}

/// The same passphrase again gets a new salt: a new root key.
#[test]
fn same_passphrase_again_gets_a_fresh_salt() {
    let f = fixture();
    let dir = f.engine_dir();
    let before = store_bytes(&dir);
    change(
        &f.engine,
        passphrase("correct horse"),
        passphrase("correct horse"),
    )
    .unwrap();
    let after = store_bytes(&dir);
    assert_ne!(before[22..38], after[22..38]);
    assert!(f.reopen().is_ok());
}

/// A running mount's engine (opened before the change, never given the new
/// secret) keeps reading the store and writing it; its writes open with the
/// new secret, and it follows a second change too.
#[test]
fn an_engine_opened_before_the_change_keeps_reading_and_writing() {
    let f = fixture();
    let dir = f.engine_dir();
    let (blob, plain) = populate(&f.engine);
    let mount = f.reopen().unwrap();
    mount.set_refresh_interval(Duration::ZERO);
    let admin = f.reopen().unwrap();

    change(&admin, passphrase("correct horse"), passphrase("second")).unwrap();
    // Another process's change after the root-key change: the mount sees it
    // (it re-reads the store under the new header with the store key).
    let by_admin = new_key_id(&admin);
    let seen = mount
        .describe_key(
            &alice(),
            DescribeKeyRequest {
                key_id: by_admin.clone(),
                grant_tokens: None,
            },
        )
        .unwrap();
    assert_eq!(seen.key_metadata.key_id, by_admin);
    assert_decrypts(&mount, &blob, &plain);
    // The mount writes: a key created in it opens with the new secret only.
    let by_mount = new_key_id(&mount);
    let fresh = open_at(&dir, passphrase("second")).unwrap();
    let ids: Vec<String> = fresh
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert!(
        ids.contains(&by_mount) && ids.contains(&by_admin),
        "{ids:?}"
    );
    assert_eq!(
        open_at(&dir, passphrase("correct horse")).unwrap_err(),
        KmsError::WrongPassphrase
    );

    // A second change (to a key file), made while the mount's snapshot is
    // stale: its next write reloads first and keeps the new header.
    mount.set_refresh_interval(Duration::from_secs(3600));
    change(&fresh, passphrase("second"), key(7)).unwrap();
    let later = new_key_id(&mount);
    assert_eq!(
        open_at(&dir, passphrase("second")).unwrap_err(),
        KmsError::WrongPassphrase
    );
    let e = open_at(&dir, key(7)).unwrap();
    let n = e
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap()
        .keys;
    assert!(n.iter().any(|k| k.key_id == later));
    assert_eq!(n.len(), 5);
    // The original engine, two changes behind, still works too.
    new_key_id(&f.engine);
    assert_eq!(
        inventory(&open_at(&dir, key(7)).unwrap()),
        inventory(&f.engine)
    );
}

#[test]
fn a_wrong_current_secret_changes_nothing() {
    let f = fixture();
    let dir = f.engine_dir();
    populate(&f.engine);
    let path = dir.join("engine.store");
    let bytes = store_bytes(&dir);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let wrong = [
        passphrase("wrong horse"),
        key(1),
        RootKeySource::KeyFile(f.dir.path().join("missing.key")),
    ];
    for current in wrong {
        let what = format!("{current:?}");
        let e = change(&f.engine, current, passphrase("new")).unwrap_err();
        assert!(
            matches!(e, KmsError::WrongPassphrase | KmsError::Validation(_)),
            "{what}: {e:?}"
        );
        assert!(!e.to_string().contains("wrong horse"));
    }
    // An invalid new Argon2id cost is refused before anything is written.
    let e = f
        .engine
        .change_root_key(
            &alice(),
            ChangeRootKeyRequest {
                current: passphrase("correct horse"),
                new: passphrase("new"),
                kdf: KdfParams {
                    m_cost_kib: 8,
                    t_cost: 1_000,
                    p_cost: 1,
                },
            },
        )
        .unwrap_err();
    assert!(matches!(e, KmsError::Validation(_)), "{e:?}");
    assert_eq!(store_bytes(&dir), bytes);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert!(f.reopen().is_ok());
    assert_eq!(
        open_at(&dir, passphrase("new")).unwrap_err(),
        KmsError::WrongPassphrase
    );
}

#[test]
fn the_change_is_audited_without_secrets() {
    let f = fixture();
    change(
        &f.engine,
        passphrase("wrong horse"),
        passphrase("s3cret-new"),
    )
    .unwrap_err();
    change(
        &f.engine,
        passphrase("correct horse"),
        passphrase("s3cret-new"),
    )
    .unwrap();
    change(&f.engine, passphrase("s3cret-new"), key(0x99)).unwrap();
    let events: Vec<_> = f
        .sink
        .events()
        .into_iter()
        .filter(|e| e.event_name == "ChangeRootKey")
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0].error_code.as_deref(),
        Some("IncorrectPassphraseException")
    );
    assert_eq!(events[1].error_code, None);
    assert_eq!(events[1].principal, alice().to_string());
    assert_eq!(
        events[1].request_parameters,
        Some(json!({"NewRootKeySource": "passphrase", "KdfMemoryKiB": 8,
                    "KdfIterations": 1, "KdfLanes": 1}))
    );
    assert_eq!(
        events[2].request_parameters,
        Some(json!({"NewRootKeySource": "key-file"}))
    );
    let all = serde_json::to_string(&events).unwrap();
    for secret in ["wrong horse", "correct horse", "s3cret-new", "153, 153"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    let dbg = format!(
        "{:?}",
        ChangeRootKeyRequest {
            current: passphrase("correct horse"),
            new: key(0x99),
            kdf: KdfParams::default(),
        }
    );
    assert!(
        !dbg.contains("correct horse") && !dbg.contains("153"),
        "{dbg}"
    );
}
