//! Store format versions: the frozen format-1 to format-5 stores in
//! `tests/vectors` (written by the engine before formats 2 to 6) open with
//! everything in them, keep their format while only read, and become format
//! 6 at the first write — an ordinary change or a root-key change — while
//! engines that opened them in the older format keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::common;
use common::*;
use kms_engine::audit::NullSink;
use kms_engine::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

struct Frozen {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    expected: Value,
    secret: fn() -> RootKeySource,
}

fn v1_passphrase() -> RootKeySource {
    passphrase("v1 vector passphrase")
}

fn v1_key() -> RootKeySource {
    RootKeySource::Key(Zeroizing::new([0x11; 32]))
}

/// A copy of the frozen store `name` in a temporary directory.
fn frozen(name: &str, secret: fn() -> RootKeySource) -> Frozen {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("engine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        vectors.join(name).join("engine.store"),
        dir.join("engine.store"),
    )
    .unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(vectors.join(format!("{name}.json"))).unwrap())
            .unwrap();
    Frozen {
        _tmp: tmp,
        dir,
        expected,
        secret,
    }
}

fn both() -> [Frozen; 2] {
    [
        frozen("store-v1-passphrase", v1_passphrase),
        frozen("store-v1-keyfile", v1_key),
    ]
}

fn open_at(dir: &Path, root: RootKeySource) -> Result<Engine, KmsError> {
    Engine::open(
        dir,
        root,
        Arc::new(ManualClock::new(T0)),
        Arc::new(NullSink),
    )
}

fn version(dir: &Path) -> u8 {
    std::fs::read(dir.join("engine.store")).unwrap()[8]
}

/// The frozen data key decrypts to its frozen plaintext in `e`.
fn assert_data_key(f: &Frozen, e: &Engine) {
    let dk = &f.expected["data_key"];
    let r = e
        .dispatch(
            &alice(),
            "Decrypt",
            json!({"CiphertextBlob": dk["ciphertext"], "EncryptionContext": dk["context"]}),
        )
        .unwrap();
    assert_eq!(r["Plaintext"], dk["plaintext"]);
}

fn key_count(e: &Engine) -> usize {
    e.list_keys(&alice(), ListKeysRequest::default())
        .unwrap()
        .keys
        .len()
}

#[test]
fn frozen_v1_stores_open_with_everything_and_stay_v1_when_only_read() {
    for f in both() {
        let before = std::fs::read(f.dir.join("engine.store")).unwrap();
        let e = open_at(&f.dir, (f.secret)()).unwrap();
        assert_eq!(inventory(&e), f.expected["inventory"]);
        assert_data_key(&f, &e);
        drop(e);
        assert_eq!(std::fs::read(f.dir.join("engine.store")).unwrap(), before);
        let wrong = match (f.secret)() {
            RootKeySource::Passphrase(_) => passphrase("not it"),
            _ => RootKeySource::Key(Zeroizing::new([0x12; 32])),
        };
        assert_eq!(
            open_at(&f.dir, wrong).unwrap_err(),
            KmsError::WrongPassphrase
        );
    }
}

/// Conversion at the first ordinary write: the same secret opens the
/// converted store; an engine opened on format 1 before keeps reading and
/// writing it.
#[test]
fn frozen_v1_stores_convert_at_the_first_write() {
    for f in both() {
        let writer = open_at(&f.dir, (f.secret)()).unwrap();
        let other = open_at(&f.dir, (f.secret)()).unwrap();
        other.set_refresh_interval(Duration::ZERO);
        assert_eq!(version(&f.dir), 1);
        let k = writer
            .create_key(&alice(), CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        assert_eq!(version(&f.dir), 6);
        // The other format-1 engine reads the converted store and writes it.
        assert_eq!(key_count(&other), 3);
        assert_data_key(&f, &other);
        other
            .create_key(&alice(), CreateKeyRequest::default())
            .unwrap();
        assert_eq!(version(&f.dir), 6);
        let e = open_at(&f.dir, (f.secret)()).unwrap();
        assert_eq!(key_count(&e), 4);
        assert!(
            e.list_keys(&alice(), ListKeysRequest::default())
                .unwrap()
                .keys
                .iter()
                .any(|x| x.key_id == k)
        );
        assert_data_key(&f, &e);
        // What was in the frozen store is unchanged.
        let inv = inventory(&e);
        for key in f.expected["inventory"]["keys"].as_array().unwrap() {
            assert!(inv["keys"].as_array().unwrap().contains(key));
        }
        assert_eq!(inv["aliases"], f.expected["inventory"]["aliases"]);
    }
}

/// Conversion at a root-key change: only the new secret opens the store
/// afterwards; an engine opened on format 1 before keeps working.
#[test]
fn frozen_v1_stores_convert_at_a_root_key_change() {
    for f in both() {
        let admin = open_at(&f.dir, (f.secret)()).unwrap();
        let mount = open_at(&f.dir, (f.secret)()).unwrap();
        mount.set_refresh_interval(Duration::ZERO);
        let r = admin
            .change_root_key(
                &alice(),
                ChangeRootKeyRequest {
                    current: (f.secret)(),
                    new: passphrase("after v1"),
                    kdf: KdfParams::insecure_for_tests(),
                },
            )
            .unwrap();
        assert!(r.converted_from_v1);
        assert_eq!(r.format_version, 6);
        assert_eq!(version(&f.dir), 6);
        assert_eq!(
            open_at(&f.dir, (f.secret)()).unwrap_err(),
            KmsError::WrongPassphrase
        );
        let e = open_at(&f.dir, passphrase("after v1")).unwrap();
        assert_eq!(inventory(&e), f.expected["inventory"]);
        assert_data_key(&f, &e);
        // The mount, opened on format 1 with the old secret, goes on.
        assert_data_key(&f, &mount);
        let k = mount
            .create_key(&alice(), CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        let e = open_at(&f.dir, passphrase("after v1")).unwrap();
        assert!(
            e.list_keys(&alice(), ListKeysRequest::default())
                .unwrap()
                .keys
                .iter()
                .any(|x| x.key_id == k)
        );
        // A second change on the converted store works like on any other.
        e.change_root_key(
            &alice(),
            ChangeRootKeyRequest {
                current: passphrase("after v1"),
                new: RootKeySource::Key(Zeroizing::new([3; 32])),
                kdf: KdfParams::insecure_for_tests(),
            },
        )
        .unwrap();
        assert_eq!(key_count(&mount), 3);
        assert_eq!(
            key_count(&open_at(&f.dir, RootKeySource::Key(Zeroizing::new([3; 32]))).unwrap()),
            3
        );
    }
}

/// New stores are format 6 from the start.
#[test]
fn new_stores_are_format_6() {
    let f = fixture();
    assert_eq!(version(&f.engine_dir()), 6);
    let raw = std::fs::read(f.engine_dir().join("engine.store")).unwrap();
    // magic, version, kind, KDF, salt, wrap nonce + wrapped key + tag,
    // state nonce, then the sealed state and its tag.
    assert_eq!(&raw[..10], b"KMSFSENG\x06\x01");
    assert!(raw.len() > 110 + 16);
}

/// The frozen format-2 store (format 1's passphrase store converted by a
/// root-key change to the same passphrase, commit db29e25): opens with
/// everything in it and plain audit paths, stays format 2 while only read,
/// becomes format 5 at the first write, and an engine that opened it as
/// format 2 keeps reading and writing.
#[test]
fn frozen_v2_store_opens_and_converts_at_the_first_write() {
    let f = frozen("store-v2-passphrase", v1_passphrase);
    let before = std::fs::read(f.dir.join("engine.store")).unwrap();
    assert_eq!(before[8], 2);
    let e = open_at(&f.dir, (f.secret)()).unwrap();
    let other = open_at(&f.dir, (f.secret)()).unwrap();
    other.set_refresh_interval(Duration::ZERO);
    assert_eq!(inventory(&e), f.expected["inventory"]);
    assert_data_key(&f, &e);
    assert_eq!(
        e.audit_path_mode().unwrap(),
        kms_engine::audit::AuditPathMode::Plain
    );
    assert_eq!(std::fs::read(f.dir.join("engine.store")).unwrap(), before);
    e.set_audit_path_mode(&alice(), kms_engine::audit::AuditPathMode::Hmac)
        .unwrap();
    assert_eq!(version(&f.dir), 6);
    // The format-2 engine writes the converted store (and so reads it).
    other
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap();
    assert_eq!(
        other.audit_path_mode().unwrap(),
        kms_engine::audit::AuditPathMode::Hmac
    );
    let again = open_at(&f.dir, (f.secret)()).unwrap();
    assert_eq!(key_count(&again), 3);
    assert_data_key(&f, &again);
    assert_eq!(
        again.audit_path_mode().unwrap(),
        kms_engine::audit::AuditPathMode::Hmac
    );
}

/// The frozen format-3 store (`store-v2-passphrase` converted by a root-key
/// change to the same passphrase and cost at commit 03cd41f, then set to
/// hmac audit paths): opens with everything in it, its hmac audit path mode
/// and no access keys, stays format 3 while only read, and becomes format 5
/// at the first write (an access key created), keeping all of it.
#[test]
fn frozen_v3_store_opens_and_converts_at_the_first_write() {
    let root = Principal::from_ids(0, 0, vec![]);
    let f = frozen("store-v3-passphrase", v1_passphrase);
    let before = std::fs::read(f.dir.join("engine.store")).unwrap();
    assert_eq!(before[8], 3);
    let e = open_at(&f.dir, (f.secret)()).unwrap();
    assert_eq!(inventory(&e), f.expected["inventory"]);
    assert_data_key(&f, &e);
    let hmac = kms_engine::audit::AuditPathMode::Hmac;
    assert_eq!(e.audit_path_mode().unwrap(), hmac);
    let none = e.dispatch(&root, "ListAccessKeys", json!({})).unwrap();
    assert_eq!(none["AccessKeyMetadata"], json!([]));
    assert_eq!(std::fs::read(f.dir.join("engine.store")).unwrap(), before);
    let made = e
        .dispatch(&root, "CreateAccessKey", json!({"Principal": "uid:0"}))
        .unwrap();
    assert_eq!(version(&f.dir), 6);
    let again = open_at(&f.dir, (f.secret)()).unwrap();
    assert_eq!(inventory(&again), f.expected["inventory"]);
    assert_data_key(&f, &again);
    assert_eq!(again.audit_path_mode().unwrap(), hmac);
    let listed = again.dispatch(&root, "ListAccessKeys", json!({})).unwrap();
    assert_eq!(
        listed["AccessKeyMetadata"][0]["AccessKeyId"],
        made["AccessKey"]["AccessKeyId"]
    );
}

/// The frozen format-4 store (`store-v3-passphrase` converted by a root-key
/// change to the same passphrase and cost at commit 5babd43, then given an
/// access key for uid:1000): opens with everything in it (its keys read as
/// SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT, AWS_KMS), stays format 4 while only
/// read, and becomes format 5 at the first write (an asymmetric key
/// created), keeping all of it.
#[test]
fn frozen_v4_store_opens_and_converts_at_the_first_write() {
    let root = Principal::from_ids(0, 0, vec![]);
    let f = frozen("store-v4-passphrase", v1_passphrase);
    let before = std::fs::read(f.dir.join("engine.store")).unwrap();
    assert_eq!(before[8], 4);
    let e = open_at(&f.dir, (f.secret)()).unwrap();
    assert_eq!(inventory(&e), f.expected["inventory"]);
    assert_data_key(&f, &e);
    let keys = e.dispatch(&root, "ListAccessKeys", json!({})).unwrap();
    assert_eq!(
        keys["AccessKeyMetadata"][0]["AccessKeyId"],
        "AKIABV24XVMNI2EYHEJV"
    );
    assert_eq!(std::fs::read(f.dir.join("engine.store")).unwrap(), before);
    let made = e
        .dispatch(
            &alice(),
            "CreateKey",
            json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
        )
        .unwrap();
    let id = made["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    assert_eq!(version(&f.dir), 6);
    let again = open_at(&f.dir, (f.secret)()).unwrap();
    let mut inv = inventory(&again);
    // The inventory now has the new key too; the old ones are unchanged.
    let keys = inv["keys"].as_array_mut().unwrap();
    keys.retain(|k| k["describe"]["KeyMetadata"]["KeyId"] != id.as_str());
    assert_eq!(inv, f.expected["inventory"]);
    assert_data_key(&f, &again);
    let keys = again.dispatch(&root, "ListAccessKeys", json!({})).unwrap();
    assert_eq!(
        keys["AccessKeyMetadata"][0]["AccessKeyId"],
        "AKIABV24XVMNI2EYHEJV"
    );
    let sig = again
        .dispatch(
            &alice(),
            "Sign",
            json!({"KeyId": id, "Message": "bQ==", "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .unwrap();
    assert!(sig["Signature"].is_string());
}

/// The frozen format-5 store (`store-v4-passphrase` converted by a
/// root-key change to the same passphrase and cost at commit 6b1341c, then
/// given an ECC_NIST_P256 signing key and an HMAC_256 key): opens with
/// everything in it (no key has an import record), stays format 5 while
/// only read, and becomes format 6 at the first write (an EXTERNAL key
/// created), keeping all of it; its asymmetric and HMAC keys still work.
#[test]
fn frozen_v5_store_opens_and_converts_at_the_first_write() {
    let f = frozen("store-v5-passphrase", v1_passphrase);
    let before = std::fs::read(f.dir.join("engine.store")).unwrap();
    assert_eq!(before[8], 5);
    let e = open_at(&f.dir, (f.secret)()).unwrap();
    assert_eq!(inventory(&e), f.expected["inventory"]);
    assert_data_key(&f, &e);
    assert_eq!(std::fs::read(f.dir.join("engine.store")).unwrap(), before);
    let made = e
        .dispatch(&alice(), "CreateKey", json!({"Origin": "EXTERNAL"}))
        .unwrap();
    let id = made["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    assert_eq!(made["KeyMetadata"]["KeyState"], "PendingImport");
    assert_eq!(version(&f.dir), 6);
    let again = open_at(&f.dir, (f.secret)()).unwrap();
    let mut inv = inventory(&again);
    let keys = inv["keys"].as_array_mut().unwrap();
    let external = keys
        .iter()
        .find(|k| k["describe"]["KeyMetadata"]["KeyId"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        external["describe"]["KeyMetadata"]["KeyState"],
        "PendingImport"
    );
    keys.retain(|k| k["describe"]["KeyMetadata"]["KeyId"] != id.as_str());
    assert_eq!(inv, f.expected["inventory"]);
    assert_data_key(&f, &again);
    for k in f.expected["inventory"]["keys"].as_array().unwrap() {
        let m = &k["describe"]["KeyMetadata"];
        let kid = m["KeyId"].as_str().unwrap();
        match m["KeySpec"].as_str().unwrap() {
            "ECC_NIST_P256" => {
                let sig = again
                    .dispatch(
                        &alice(),
                        "Sign",
                        json!({"KeyId": kid, "Message": "bQ==", "SigningAlgorithm": "ECDSA_SHA_256"}),
                    )
                    .unwrap();
                assert!(sig["Signature"].is_string());
            }
            "HMAC_256" => {
                let mac = again
                    .dispatch(
                        &alice(),
                        "GenerateMac",
                        json!({"KeyId": kid, "Message": "bQ==", "MacAlgorithm": "HMAC_SHA_256"}),
                    )
                    .unwrap();
                assert!(mac["Mac"].is_string());
            }
            _ => {}
        }
    }
}
