//! `kmsfs audit paths` and `kmsfs audit show --path` on the real binary:
//! the setting is kept in the engine store, so every later process follows
//! it; in hmac and omit mode no byte of a path reaches the audit directory;
//! `show --path` finds exactly the records of a path in hmac mode (and says
//! when it cannot); `audit verify` passes across mode changes.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::Path;

use crate::engine_env::EngineEnv as Env;

const PASSPHRASE: &str = "paths test";

impl Env {
    /// A data key for `path` under `key`.
    fn gdk(&self, key: &str, path: &str) {
        let ctx = format!(r#"{{"kmsfs:path":"{path}","kmsfs:volume":"vol-1"}}"#);
        self.ok(&[
            "kms",
            "generate-data-key",
            "--key-id",
            key,
            "--key-spec",
            "AES_256",
            "--encryption-context",
            &ctx,
        ]);
    }

    /// The `eventName`s `audit show --path PATH` prints.
    fn show_path(&self, secret: bool, path: &str) -> (Vec<String>, String) {
        let out = self.run_with(&["audit", "show", "--path", path], secret);
        assert!(out.status.success(), "{out:?}");
        let names = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let r: Value = serde_json::from_str(l).unwrap();
                r["eventName"].as_str().unwrap().to_string()
            })
            .collect();
        (names, String::from_utf8(out.stderr).unwrap())
    }
}

/// Whether any file of the audit directory holds `needle`.
fn trail_holds(engine: &Path, needle: &str) -> bool {
    std::fs::read_dir(engine.join("audit")).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[test]
fn hmac_mode_persists_hides_paths_and_show_path_finds_them() {
    let env = Env::new(PASSPHRASE);
    assert_eq!(env.json(&["audit", "paths"])["AuditPaths"], "plain");
    let key = env.json(&["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    env.gdk(&key, "/before/plain.txt");
    let set = env.json(&["audit", "paths", "hmac"]);
    assert_eq!(
        (set["AuditPaths"].as_str(), set["Previous"].as_str()),
        (Some("hmac"), Some("plain"))
    );
    // Later processes follow the stored setting.
    assert_eq!(env.json(&["audit", "paths"])["AuditPaths"], "hmac");
    env.gdk(&key, "/secret/plan.txt");
    env.gdk(&key, "/secret/plan.txt");
    env.gdk(&key, "/secret/other.txt");
    assert!(!trail_holds(&env.engine, "/secret"));
    assert!(trail_holds(&env.engine, "/before/plain.txt"));

    let (found, _) = env.show_path(true, "/secret/plan.txt");
    assert_eq!(found, ["GenerateDataKey", "GenerateDataKey"]);
    let (found, _) = env.show_path(true, "/secret/other.txt");
    assert_eq!(found.len(), 1);
    // Records of the plain period are found too.
    let (found, _) = env.show_path(true, "/before/plain.txt");
    assert_eq!(found.len(), 1);
    // Without the store's secret: plaintext only, and it says so.
    let (found, warning) = env.show_path(false, "/secret/plan.txt");
    assert!(found.is_empty());
    assert!(warning.contains("hmac mode are not found"), "{warning}");

    env.json(&["audit", "paths", "omit"]);
    env.gdk(&key, "/secret/omitted.txt");
    assert!(!trail_holds(&env.engine, "/secret"));
    let (found, warning) = env.show_path(true, "/secret/omitted.txt");
    assert!(found.is_empty());
    assert!(warning.contains("setting is omit"), "{warning}");
    env.ok(&["audit", "verify"]);

    let out = env.run(&["audit", "paths", "sha1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn init_engine_sets_the_audit_path_mode_from_the_start() {
    let env = Env::bare(PASSPHRASE);
    let made: Value = serde_json::from_str(&env.init_engine(&["--audit-paths", "omit"])).unwrap();
    assert_eq!(made["AuditPaths"], "omit");
    assert_eq!(env.json(&["audit", "paths"])["AuditPaths"], "omit");
    let key = env.json(&["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    env.gdk(&key, "/from/the/start.txt");
    assert!(!trail_holds(&env.engine, "/from/the"));
    assert!(!trail_holds(&env.engine, "kmsfs:path"));
}
