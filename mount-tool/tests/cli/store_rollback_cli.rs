//! Engine store rollback on the real binary: an `engine.store` copied before
//! a grant was revoked, or a key disabled, and put back afterwards is
//! refused with one line naming both generations (exit 6); opened once with
//! `--accept-store-rollback` it is written past the anchor, the acceptance
//! is in the audit trail, and the trail still verifies.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::PathBuf;

use crate::engine_env::EngineEnv as Env;

impl Env {
    fn store(&self) -> PathBuf {
        self.engine.join("engine.store")
    }
}

/// Runs `change` on a new key with a grant; puts the store copied before it
/// back; the next command must exit 6 with one line naming both generations.
fn refused_after(change: &str) -> (Env, String, Vec<u8>) {
    let env = Env::new("rollback test");
    let key = env.json(&["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let grant = env.json(&[
        "kms",
        "create-grant",
        "--key-id",
        &key,
        "--grantee-principal",
        "uid:2000",
        "--operations",
        "Decrypt",
    ])["GrantId"]
        .as_str()
        .unwrap()
        .to_string();
    let old_copy = std::fs::read(env.store()).unwrap();
    match change {
        "revoke-grant" => env.ok(&[
            "kms",
            "revoke-grant",
            "--key-id",
            &key,
            "--grant-id",
            &grant,
        ]),
        "disable-key" => env.ok(&["kms", "disable-key", "--key-id", &key]),
        other => panic!("{other}"),
    };
    std::fs::write(env.store(), &old_copy).unwrap();
    let out = env.run(&["kms", "list-keys"]);
    assert_eq!(out.status.code(), Some(6), "{change}: {out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{change}: {stderr}");
    for want in [
        "kmsfs: ",
        "engine.store is generation ",
        "older than generation ",
        "(StoreRolledBackException)",
        "--accept-store-rollback",
    ] {
        assert!(stderr.contains(want), "{change}: no {want:?} in {stderr}");
    }
    assert_eq!(std::fs::read(env.store()).unwrap(), old_copy);
    (env, key, old_copy)
}

#[test]
fn an_older_store_is_refused_after_revoke_grant() {
    refused_after("revoke-grant");
}

#[test]
fn an_older_store_is_refused_after_disable_key_and_accepted_on_request() {
    let (env, key, _) = refused_after("disable-key");
    let out = env.run(&[
        "--accept-store-rollback",
        "kms",
        "describe-key",
        "--key-id",
        &key,
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("accepted an engine store rollback"),
        "{stderr}"
    );
    // The restored copy is what is in force now: the key is enabled again.
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled");
    // From now on it opens without the flag.
    env.ok(&["kms", "list-keys"]);
    let shown = env.ok(&["audit", "show", "--event", "AcceptStoreRollback"]);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 1, "{shown}");
    let rec: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        rec["requestParameters"]["anchoredGeneration"]
            .as_u64()
            .unwrap()
            > 0
    );
    env.ok(&["audit", "verify"]);
}
