//! `kmsfs.conf` authentication on the real binary: `kmsfs mount` and
//! `kmsfs fsck` refuse an edited config with one line on standard error and
//! exit code 6, mount nothing and write nothing, so an edited names mode
//! never gets a name stored in clear; a format-1 config mounts with a
//! warning line and `kmsfs upgrade-config` binds it.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::mount_cli::{Env, MountGuard};
use kms_engine::audit::NullSink;
use kms_engine::{Engine, RootKeySource, SystemClock};
use kmsfs::format::{CONFIG_FILE_NAME, VolumeConfig};
use kmsfs::keys::KeyService;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

const MISMATCH: &str = "kmsfs.conf does not match this volume (was it edited?)";

fn config(env: &Env) -> Value {
    serde_json::from_slice(&std::fs::read(env.cipher.join(CONFIG_FILE_NAME)).unwrap()).unwrap()
}

fn write_config(env: &Env, v: &Value) {
    std::fs::write(
        env.cipher.join(CONFIG_FILE_NAME),
        serde_json::to_vec_pretty(v).unwrap(),
    )
    .unwrap();
}

/// Every name below `dir`, relative to it.
fn names(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.insert(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            for n in names(&e.path()) {
                out.insert(format!("{}/{n}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Asserts that `args` fails with exit code 6 and exactly one line on
/// standard error naming the mismatch.
fn assert_refused(env: &Env, args: &[&str], what: &str) {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{what}: {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {args:?}: {err}");
    assert!(err.starts_with("kmsfs: "), "{what}: {err}");
    assert!(err.contains(MISMATCH), "{what}: {args:?}: {err}");
}

/// Each edit an attacker who can write the cipher directory would make (the
/// names mode flipped to plaintext with the root IV removed, another master
/// key, another volume id, another block size) is refused by a background
/// mount, a foreground mount and fsck, with one line and exit 6; nothing
/// is mounted and no byte of the cipher directory changes. Put back, the
/// config mounts and names are stored encrypted.
#[test]
fn mount_and_fsck_refuse_an_edited_config_with_one_line() {
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    let original = std::fs::read(env.cipher.join(CONFIG_FILE_NAME)).unwrap();
    let cfg = config(&env);
    let meta: Value = serde_json::from_str(&env.ok(&["kms", "create-key"])).unwrap();
    let other_key = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let iv = env.cipher.join("kmsfs.diriv");
    let iv_bytes = std::fs::read(&iv).unwrap();

    let mut flipped = cfg.clone();
    flipped["names_mode"] = json!("plaintext");
    flipped["feature_flags"] = json!([]);
    let edits: Vec<(&str, Value, bool)> = vec![
        ("names_mode", flipped.clone(), false),
        ("names_mode without root IV", flipped, true),
        (
            "master_key_id",
            edited(&cfg, "master_key_id", json!(other_key)),
            false,
        ),
        (
            "volume_id",
            edited(
                &cfg,
                "volume_id",
                json!("0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b"),
            ),
            false,
        ),
        ("block_size", edited(&cfg, "block_size", json!(1024)), false),
    ];
    for (what, config, remove_iv) in edits {
        write_config(&env, &config);
        if remove_iv {
            std::fs::remove_file(&iv).unwrap();
        }
        let before = names(&env.cipher);
        let (c, m) = (Env::s(&env.cipher), Env::s(&mnt));
        assert_refused(&env, &["mount", c, m], what);
        assert_refused(&env, &["mount", c, m, "--foreground"], what);
        assert_refused(&env, &["fsck", c], what);
        assert!(!kmsfs::fuse::status::is_mounted(&mnt), "{what}");
        assert_eq!(names(&env.cipher), before, "{what}");
        if remove_iv {
            std::fs::write(&iv, &iv_bytes).unwrap();
        }
    }

    std::fs::write(env.cipher.join(CONFIG_FILE_NAME), &original).unwrap();
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    std::fs::write(mnt.join("plain-name-secret"), b"x").unwrap();
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    let stored = names(&env.cipher);
    assert!(
        stored.iter().all(|n| !n.contains("plain-name-secret")),
        "{stored:?}"
    );
    env.ok(&["fsck", Env::s(&env.cipher)]);
}

fn edited(cfg: &Value, field: &str, value: Value) -> Value {
    let mut v = cfg.clone();
    v[field] = value;
    v
}

/// Rewrites the config as format 1 (a volume made before format 2), with
/// the names key re-wrapped under format 1's context by the engine itself.
fn downgrade_to_format_1(env: &Env) {
    let engine = Arc::new(
        Engine::open(
            &env.engine,
            RootKeySource::Passphrase(zeroize::Zeroizing::new(crate::mount_cli::PASSPHRASE.into())),
            Arc::new(SystemClock),
            Arc::new(NullSink),
        )
        .unwrap(),
    );
    let path = env.cipher.join(CONFIG_FILE_NAME);
    let v2 = VolumeConfig::decode(&std::fs::read(&path).unwrap()).unwrap();
    let mut v1 = VolumeConfig {
        format_version: 1,
        ..v2.clone()
    };
    v1.wrapped_names_key = engine
        .rewrap_data_key(
            &kms_engine::Principal::current_process(),
            &v2.wrapped_names_key,
            &v2.names_key_context(),
            &v1.names_key_context(),
        )
        .unwrap();
    std::fs::write(&path, v1.encode().unwrap()).unwrap();
}

/// A format-1 config mounts and checks with one warning line on standard
/// error (exit 0); `kmsfs upgrade-config` binds it (format 2, same names
/// key: the file written before still reads), after which the warning is
/// gone and an edit is refused.
#[test]
fn a_format_1_config_warns_and_upgrade_config_binds_it() {
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    std::fs::write(mnt.join("before"), b"written under format 2").unwrap();
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    downgrade_to_format_1(&env);
    let (c, m) = (Env::s(&env.cipher), Env::s(&mnt));

    for args in [&["mount", c, m][..], &["fsck", c][..]] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("is format 1 and not authenticated"), "{err}");
        assert!(err.contains("kmsfs upgrade-config"), "{err}");
        if args[0] == "mount" {
            assert_eq!(
                std::fs::read(mnt.join("before")).unwrap(),
                b"written under format 2"
            );
            env.ok(&["unmount", m]);
            guard.wait_for_mount_process();
        }
    }

    let text = env.ok(&["upgrade-config", c, "--output", "text"]);
    assert!(text.contains("from format 1 to 2"), "{text}");
    assert_eq!(config(&env)["format_version"], 2);
    let again = env.ok(&["upgrade-config", c, "--output", "text"]);
    assert!(again.contains("nothing to do"), "{again}");

    let out = env.run(&["mount", c, m]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(mnt.join("before")).unwrap(),
        b"written under format 2"
    );
    env.ok(&["unmount", m]);
    guard.wait_for_mount_process();
    write_config(&env, &edited(&config(&env), "created_unix_secs", json!(0)));
    assert_refused(&env, &["fsck", c], "created_unix_secs");
}
