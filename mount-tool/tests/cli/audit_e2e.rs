//! The audit trail end to end, on the real binary: every `kmsfs kms` call
//! lands in `<engine>/audit` as a record naming the key's real ARN, a denied
//! call shows in `kmsfs audit show --errors-only`, `kmsfs audit verify`
//! passes, no secret reaches the trail, and an unwritable trail makes key
//! use fail while the store stays unchanged.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PASSPHRASE: &str = "audit e2e passphrase 7f3a";
const PLAINTEXT: &[u8] = b"the quarterly numbers: 4711 (do not leak this)";

use crate::engine_env::EngineEnv as Env;

impl Env {
    fn audit_dir(&self) -> PathBuf {
        self.engine.join("audit")
    }

    /// Every regular file below `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            } else if p.is_dir() {
                out.extend(Env::snapshot(&p));
            }
        }
        out
    }
}

fn fileb(p: &Path) -> String {
    format!("fileb://{}", p.display())
}

/// JSON lines of `kmsfs audit show ...`.
fn records(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn kms_calls_are_audited_verified_and_leak_no_secret() {
    let env = Env::new(PASSPHRASE);
    let meta = env.json(&["kms", "create-key", "--description", "e2e"]);
    let key = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let arn = meta["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("arn:aws:kms:local:000000000000:key/{key}"));

    // Encrypt a known plaintext, decrypt it back.
    let pt_file = env.path("plain.bin");
    std::fs::write(&pt_file, PLAINTEXT).unwrap();
    let enc = env.json(&[
        "kms",
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        &fileb(&pt_file),
        "--encryption-context",
        "kmsfs:path=/finance/q3.txt",
    ]);
    let ct_file = env.path("ct.bin");
    let ct = B64.decode(enc["CiphertextBlob"].as_str().unwrap()).unwrap();
    std::fs::write(&ct_file, &ct).unwrap();
    let dec = env.json(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &fileb(&ct_file),
        "--encryption-context",
        "kmsfs:path=/finance/q3.txt",
    ]);
    assert_eq!(
        B64.decode(dec["Plaintext"].as_str().unwrap()).unwrap(),
        PLAINTEXT
    );

    // A data key: its plaintext must never reach the trail.
    let dk = env.json(&[
        "kms",
        "generate-data-key",
        "--key-id",
        &key,
        "--key-spec",
        "AES_256",
        "--encryption-context",
        "kmsfs:path=/finance/q4.txt",
    ]);
    let data_key_b64 = dk["Plaintext"].as_str().unwrap().to_string();
    let data_key = B64.decode(&data_key_b64).unwrap();
    assert_eq!(data_key.len(), 32);

    // Deny Decrypt (only) to everyone; administration stays allowed.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": "kms:Decrypt", "Resource": "*"}
        ]
    })
    .to_string();
    env.ok(&[
        "kms",
        "put-key-policy",
        "--key-id",
        &key,
        "--policy-name",
        "default",
        "--policy",
        &policy,
    ]);
    let out = env.run(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &fileb(&ct_file),
        "--encryption-context",
        "kmsfs:path=/finance/q3.txt",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The denied call is in the trail, with the key's real ARN.
    let errors = records(&env.ok(&["audit", "show", "--errors-only"]));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let denied = &errors[0];
    assert_eq!(denied["eventName"], "Decrypt");
    assert_eq!(denied["errorCode"], "AccessDeniedException");
    assert_eq!(denied["resources"][0]["ARN"], arn.as_str());
    assert_eq!(
        denied["requestParameters"]["encryptionContext"]["kmsfs:path"],
        "/finance/q3.txt"
    );
    // Every call is there, allowed or denied, in order.
    let all = records(&env.ok(&["audit", "show", "--key-id", &key]));
    let names: Vec<&str> = all
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CreateKey",
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "PutKeyPolicy",
            "Decrypt"
        ]
    );
    for r in &all {
        assert_eq!(r["resources"][0]["ARN"], arn.as_str(), "{r}");
    }

    // The trail verifies, against the key derived from the engine store...
    let v = env.ok(&["audit", "verify", "--output", "text"]);
    assert!(v.trim_end().ends_with("valid"), "{v}");
    let exported = env.ok(&["audit", "export-public-key", "--output", "text"]);
    assert!(
        exported.starts_with("-----BEGIN PUBLIC KEY-----"),
        "{exported}"
    );
    let pk = env.path("audit.pem");
    std::fs::write(&pk, &exported).unwrap();
    // ... and against the exported key, without the passphrase.
    let out = env.run_with(
        &["audit", "verify", "--public-key", pk.to_str().unwrap()],
        false,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No secret in any file of the trail.
    let pt_b64 = B64.encode(PLAINTEXT);
    let secrets: [(&str, &[u8]); 5] = [
        ("plaintext", PLAINTEXT),
        ("plaintext base64", pt_b64.as_bytes()),
        ("data key", &data_key),
        ("data key base64", data_key_b64.as_bytes()),
        ("passphrase", PASSPHRASE.as_bytes()),
    ];
    let files = Env::snapshot(&env.audit_dir());
    assert!(files.len() >= 3, "{:?}", files.keys());
    for (path, bytes) in &files {
        for (what, secret) in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{what} found in {}",
                path.display()
            );
        }
    }
}

#[test]
fn an_unwritable_audit_trail_stops_key_use_and_changes_nothing() {
    let env = Env::new(PASSPHRASE);
    let meta = env.json(&["kms", "create-key"]);
    let key = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    // Replace the trail directory by a regular file.
    std::fs::remove_dir_all(env.audit_dir()).unwrap();
    std::fs::write(env.audit_dir(), b"not a directory").unwrap();
    let before = Env::snapshot(&env.engine);

    for args in [
        &["kms", "encrypt", "--key-id", &key, "--plaintext", "hello"][..],
        &["kms", "create-key"],
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            &key,
            "--key-spec",
            "AES_256",
        ],
    ] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded unaudited");
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains("cannot write the audit trail in"), "{err}");
        assert!(
            err.contains(&env.audit_dir().display().to_string()),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(Env::snapshot(&env.engine), before);
}
