//! `kmsfs kms change-root-key` on the real binary: passphrase -> key file ->
//! passphrase with every key and ciphertext kept, the old secret refused
//! (exit 3) after each change, a wrong current secret or a bad new one
//! changing nothing, and the change in the audit trail without secrets.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// An engine directory and the files holding secrets.
struct Env {
    tmp: tempfile::TempDir,
    engine: PathBuf,
}

/// Which secret a command gives as the current one.
enum Secret<'a> {
    Passphrase(&'a Path),
    Key(&'a Path),
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let env = Env {
            engine: tmp.path().join("engine"),
            tmp,
        };
        let pass = env.file("old.pass", b"old passphrase\n");
        let out = env.run(
            Secret::Passphrase(&pass),
            &[
                "init-engine",
                "--kdf-memory-kib",
                "8",
                "--kdf-iterations",
                "1",
            ],
        );
        assert_ok(&out);
        env
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `kmsfs --engine DIR --passphrase-file|--key-file F kms ARGS`, no
    /// terminal, nothing inherited from the environment.
    fn run(&self, secret: Secret<'_>, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
            c.env_remove(var);
        }
        c.arg("--engine").arg(&self.engine);
        match secret {
            Secret::Passphrase(p) => c.arg("--passphrase-file").arg(p),
            Secret::Key(p) => c.arg("--key-file").arg(p),
        };
        c.arg("kms")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn json(&self, secret: Secret<'_>, args: &[&str]) -> Value {
        let out = self.run(secret, args);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn store(&self) -> Vec<u8> {
        std::fs::read(self.engine.join("engine.store")).unwrap()
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The exit code and the one line of stderr of a failed command.
fn one_line_failure(out: &Output) -> (i32, String) {
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    (out.status.code().unwrap(), err)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Everything `list-keys`, `list-aliases` and `describe-key` report.
fn listing<'a>(env: &Env, secret: impl Fn() -> Secret<'a>, key: &str) -> Value {
    serde_json::json!({
        "keys": env.json(secret(), &["list-keys"]),
        "aliases": env.json(secret(), &["list-aliases"]),
        "key": env.json(secret(), &["describe-key", "--key-id", key]),
    })
}

#[test]
fn passphrase_to_key_file_and_back_keeps_every_key_and_ciphertext() {
    let env = Env::new();
    let (old, new) = (
        &env.file("old.pass", b"old passphrase\n"),
        &env.file("new.pass", b"new passphrase\n"),
    );
    let third = &env.file("third.pass", b"third one\n");
    let key = &env.file("root.key", &[0x42; 32]);
    let key_id = env.json(Secret::Passphrase(old), &["create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ok(&env.run(
        Secret::Passphrase(old),
        &[
            "create-alias",
            "--alias-name",
            "alias/keep",
            "--target-key-id",
            &key_id,
        ],
    ));
    let plain = env.file("plain", b"a secret before the change");
    let enc = env.json(
        Secret::Passphrase(old),
        &[
            "encrypt",
            "--key-id",
            "alias/keep",
            "--plaintext",
            &format!("fileb://{}", s(&plain)),
            "--encryption-context",
            "purpose=test",
        ],
    );
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(enc["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    let blob_file = env.file("blob", &blob);
    let decrypts = |secret: Secret<'_>| {
        let out = env.json(
            secret,
            &[
                "decrypt",
                "--ciphertext-blob",
                &format!("fileb://{}", s(&blob_file)),
                "--encryption-context",
                "purpose=test",
            ],
        );
        let got = base64::engine::general_purpose::STANDARD
            .decode(out["Plaintext"].as_str().unwrap())
            .unwrap();
        assert_eq!(got, b"a secret before the change");
    };
    let before = listing(&env, || Secret::Passphrase(old), &key_id);

    // Passphrase -> passphrase.
    let out = env.json(
        Secret::Passphrase(old),
        &[
            "change-root-key",
            "--new-passphrase-file",
            s(new),
            "--kdf-memory-kib",
            "8",
            "--kdf-iterations",
            "1",
        ],
    );
    assert_eq!(out["RootKeySource"], "passphrase");
    assert_eq!(out["FormatVersion"], 6);
    assert_eq!(out["ConvertedFromFormat1"], false);
    let (code, err) = one_line_failure(&env.run(Secret::Passphrase(old), &["list-keys"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("IncorrectPassphraseException"), "{err}");
    assert_eq!(listing(&env, || Secret::Passphrase(new), &key_id), before);
    decrypts(Secret::Passphrase(new));

    // Passphrase -> key file.
    let out = env.run(
        Secret::Passphrase(new),
        &[
            "change-root-key",
            "--new-key-file",
            s(key),
            "--output",
            "text",
        ],
    );
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("new key file"), "{text}");
    assert_eq!(
        one_line_failure(&env.run(Secret::Passphrase(new), &["list-keys"])).0,
        3
    );
    assert_eq!(listing(&env, || Secret::Key(key), &key_id), before);
    decrypts(Secret::Key(key));

    // Key file -> passphrase.
    let out = env.json(
        Secret::Key(key),
        &[
            "change-root-key",
            "--new-passphrase-file",
            s(third),
            "--kdf-memory-kib",
            "16",
        ],
    );
    assert_eq!(out["RootKeySource"], "passphrase");
    assert_eq!(&env.store()[10..14], &[0, 0, 0, 16]);
    assert_eq!(
        one_line_failure(&env.run(Secret::Key(key), &["list-keys"])).0,
        3
    );
    assert_eq!(listing(&env, || Secret::Passphrase(third), &key_id), before);
    decrypts(Secret::Passphrase(third));

    // Three changes in the audit trail, none with a secret in it.
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
    let out = c
        .env_remove("KMSFS_ENGINE")
        .arg("--engine")
        .arg(&env.engine)
        .args(["audit", "show", "--event", "ChangeRootKey"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let shown = String::from_utf8(out.stdout).unwrap();
    let records: Vec<Value> = shown
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{shown}");
    assert_eq!(
        records[1]["requestParameters"]["NewRootKeySource"],
        "key-file"
    );
    for secret in ["old passphrase", "new passphrase", "third one"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn wrong_current_secret_or_bad_new_one_changes_nothing() {
    let env = Env::new();
    let old = env.file("old.pass", b"old passphrase\n");
    let wrong = env.file("wrong.pass", b"wrong passphrase\n");
    let new = env.file("new.pass", b"new passphrase\n");
    let short_key = env.file("short.key", &[1; 31]);
    let key = env.file("root.key", &[1; 32]);
    let before = env.store();

    // Wrong current passphrase: exit 3, one line, nothing written.
    let (code, err) = one_line_failure(&env.run(
        Secret::Passphrase(&wrong),
        &["change-root-key", "--new-passphrase-file", s(&new)],
    ));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("IncorrectPassphraseException"), "{err}");
    assert!(!err.contains("wrong passphrase"), "{err}");
    // A key file given where the store wants a passphrase: the same.
    let (code, _) = one_line_failure(&env.run(
        Secret::Key(&key),
        &["change-root-key", "--new-passphrase-file", s(&new)],
    ));
    assert_eq!(code, 3);
    // A new key file of the wrong size.
    let (code, err) = one_line_failure(&env.run(
        Secret::Passphrase(&old),
        &["change-root-key", "--new-key-file", s(&short_key)],
    ));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("31 bytes"), "{err}");
    // Usage mistakes: an Argon2id cost with a key file, two new secrets, no
    // new secret and no terminal to ask for one, an absurd cost.
    let usage: [&[&str]; 4] = [
        &[
            "change-root-key",
            "--new-key-file",
            s(&key),
            "--kdf-iterations",
            "2",
        ],
        &[
            "change-root-key",
            "--new-key-file",
            s(&key),
            "--new-passphrase-file",
            s(&new),
        ],
        &["change-root-key"],
        &[
            "change-root-key",
            "--new-passphrase-file",
            s(&new),
            "--kdf-iterations",
            "100000",
        ],
    ];
    for args in usage {
        let out = env.run(Secret::Passphrase(&old), args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.store(), before);
    assert_ok(&env.run(Secret::Passphrase(&old), &["list-keys"]));
    assert_eq!(
        one_line_failure(&env.run(Secret::Passphrase(&new), &["list-keys"])).0,
        3
    );
}
