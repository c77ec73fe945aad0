//! The volume config is bound to the volume: an edit to any field of a
//! format-2 `kmsfs.conf` makes the volume refuse to open with one clear
//! error; a format-1 config still mounts (with what checks it allows) and is
//! upgraded by `Volume::upgrade_config`; a master key that is not the one
//! that wrapped the names key never gets a file; the `long-names` feature
//! flag selects behaviour on a real mount.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, root};
use kms_engine::{CreateAliasRequest, CreateKeyRequest, UpdateAliasRequest};
use kmsfs::format::{CONFIG_FILE_NAME, NamesMode, VolumeConfig};
use kmsfs::keys::KeyService;
use kmsfs::names::MAX_SHORT_PLAIN_NAME_LEN;
use kmsfs::volume::{self, DIRIV_FILE_NAME, InitOptions, Volume, VolumeError};
use serde_json::{Value, json};
use std::fs;
use std::sync::Arc;

fn keys(fx: &Fixture) -> Arc<dyn KeyService> {
    Arc::new(fx.engine.clone())
}

fn open(fx: &Fixture) -> Result<Volume, VolumeError> {
    Volume::open(&fx.cipher, &keys(fx), &root())
}

fn config_json(fx: &Fixture) -> Value {
    serde_json::from_slice(&fs::read(fx.cipher.join(CONFIG_FILE_NAME)).unwrap()).unwrap()
}

fn write_config_json(fx: &Fixture, v: &Value) {
    fs::write(
        fx.cipher.join(CONFIG_FILE_NAME),
        serde_json::to_vec_pretty(v).unwrap(),
    )
    .unwrap();
}

fn new_key(fx: &Fixture) -> String {
    fx.engine
        .create_key(&root(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id
}

/// Asserts that opening the volume is refused as an edited config.
fn assert_mismatch(fx: &Fixture, what: &str) {
    match open(fx) {
        Err(e @ VolumeError::ConfigMismatch { .. }) => {
            let line = e.to_string();
            assert!(
                line.contains("kmsfs.conf does not match this volume (was it edited?)"),
                "{what}: {line}"
            );
            assert_eq!(line.lines().count(), 1, "{what}: {line}");
        }
        other => panic!("{what}: expected a config mismatch, got {other:?}"),
    }
}

/// Rewrites the volume's config as format 1, the names key re-wrapped
/// under the format-1 context: a volume as a kmsfs before format 2 made it.
fn downgrade_to_format_1(fx: &Fixture) {
    let path = fx.cipher.join(CONFIG_FILE_NAME);
    let v2 = VolumeConfig::decode(&fs::read(&path).unwrap()).unwrap();
    let mut v1 = VolumeConfig {
        format_version: 1,
        ..v2.clone()
    };
    v1.wrapped_names_key = keys(fx)
        .rewrap_data_key(
            &root(),
            &v2.wrapped_names_key,
            &v2.names_key_context(),
            &v1.names_key_context(),
        )
        .unwrap();
    fs::write(&path, v1.encode().unwrap()).unwrap();
}

/// Every field of a format-2 config is bound: changing any of them (as an
/// attacker who can write the cipher directory would, keeping the config
/// well-formed) makes the open fail with one line; the original opens again.
#[test]
fn fail_every_edit_of_a_bound_field() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let original = fs::read(fx.cipher.join(CONFIG_FILE_NAME)).unwrap();
    let cfg = config_json(&fx);
    assert_eq!(cfg["format_version"], 2);
    let other_key = new_key(&fx);
    let edits: Vec<(&str, Value)> = vec![
        ("master_key_id", json!(other_key)),
        ("volume_id", json!("0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b")),
        ("block_size", json!(8192)),
        ("block_size", json!(65536)),
        ("created_unix_secs", json!(1)),
        ("feature_flags", json!([])),
    ];
    for (field, value) in edits {
        let mut edited = cfg.clone();
        edited[field] = value;
        write_config_json(&fx, &edited);
        assert_mismatch(&fx, field);
    }
    // A downgrade to format 1 (no digest) with format 1's flags.
    let mut edited = cfg.clone();
    edited["format_version"] = json!(1);
    edited["feature_flags"] = json!([
        "content-aes256-gcm-siv",
        "path-bound-data-keys",
        "dir-iv",
        "long-names"
    ]);
    write_config_json(&fx, &edited);
    assert_mismatch(&fx, "format_version");
    // The names mode flipped, with the root IV left in place and removed.
    let mut edited = cfg.clone();
    edited["names_mode"] = json!("plaintext");
    edited["feature_flags"] = json!([]);
    write_config_json(&fx, &edited);
    assert_mismatch(&fx, "names_mode");
    let iv_path = fx.cipher.join(DIRIV_FILE_NAME);
    let iv = fs::read(&iv_path).unwrap();
    fs::remove_file(&iv_path).unwrap();
    assert_mismatch(&fx, "names_mode without the root IV");
    fs::write(&iv_path, iv).unwrap();

    fs::write(fx.cipher.join(CONFIG_FILE_NAME), &original).unwrap();
    open(&fx).unwrap();
}

/// A format-1 volume opens and mounts as before; `upgrade_config` binds its
/// config (same names key, so every name and file still reads), after which
/// the same edits are refused.
#[test]
fn format_1_volume_mounts_and_upgrades() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    {
        let m = fx.mount();
        fs::create_dir(m.path("dir")).unwrap();
        fs::write(m.path("dir/file"), b"written before").unwrap();
        fs::write(m.path(&"L".repeat(200)), b"long name").unwrap();
    }
    downgrade_to_format_1(&fx);
    let mut vol = open(&fx).unwrap();
    assert!(!vol.config.is_authenticated());
    {
        let m = fx.mount();
        assert_eq!(fs::read(m.path("dir/file")).unwrap(), b"written before");
        assert_eq!(fs::read(m.path(&"L".repeat(200))).unwrap(), b"long name");
        fs::write(m.path("dir/second"), b"under format 1").unwrap();
    }
    assert!(vol.upgrade_config(&keys(&fx), &root()).unwrap());
    assert!(!vol.upgrade_config(&keys(&fx), &root()).unwrap());
    let cfg = config_json(&fx);
    assert_eq!(cfg["format_version"], 2);
    assert_eq!(cfg["feature_flags"], json!(["long-names"]));
    {
        let m = fx.mount();
        assert_eq!(fs::read(m.path("dir/file")).unwrap(), b"written before");
        assert_eq!(fs::read(m.path("dir/second")).unwrap(), b"under format 1");
        assert_eq!(fs::read(m.path(&"L".repeat(200))).unwrap(), b"long name");
    }
    let mut edited = cfg.clone();
    edited["block_size"] = json!(8192);
    write_config_json(&fx, &edited);
    assert_mismatch(&fx, "block_size after the upgrade");
}

/// What a format-1 config cannot prove it can still be checked against:
/// its master key id against the key that wrapped the names key, and its
/// names mode against the root directory's IV.
#[test]
fn fail_format_1_edits_that_contradict_the_volume() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    downgrade_to_format_1(&fx);
    let cfg = config_json(&fx);
    let mut edited = cfg.clone();
    edited["master_key_id"] = json!(new_key(&fx));
    write_config_json(&fx, &edited);
    assert_mismatch(&fx, "master_key_id");
    let mut edited = cfg.clone();
    edited["names_mode"] = json!("plaintext");
    write_config_json(&fx, &edited);
    assert_mismatch(&fx, "names_mode");
    write_config_json(&fx, &cfg);
    open(&fx).unwrap();
}

/// A master key named by an alias is checked on every new data key: once
/// the alias names another key than the one that wrapped the names key,
/// creating a file fails (EIO) and nothing is written under the other key,
/// while existing files still read.
#[test]
fn a_new_file_is_never_keyed_under_another_master_key() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    fx.engine
        .create_alias(
            &root(),
            CreateAliasRequest {
                alias_name: "alias/vol".into(),
                target_key_id: fx.key_id.clone(),
            },
        )
        .unwrap();
    downgrade_to_format_1(&fx);
    let mut cfg = config_json(&fx);
    cfg["master_key_id"] = json!("alias/vol");
    write_config_json(&fx, &cfg);
    {
        let m = fx.mount();
        fs::write(m.path("kept"), b"under the volume's key").unwrap();
    }
    let other = new_key(&fx);
    fx.engine
        .update_alias(
            &root(),
            UpdateAliasRequest {
                alias_name: "alias/vol".into(),
                target_key_id: other,
            },
        )
        .unwrap();
    let m = fx.mount();
    let before = common::backing_files(&fx.cipher);
    let err = fs::write(m.path("new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(common::backing_files(&fx.cipher), before);
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"under the volume's key");
}

/// Without the `long-names` feature flag a name too long for one backing
/// name is refused with ENAMETOOLONG and no side file is written; with it
/// (the default) the same name works.
#[test]
fn the_long_names_flag_selects_long_name_storage() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    fs::remove_dir_all(&fx.cipher).unwrap();
    fs::create_dir(&fx.cipher).unwrap();
    let cfg = volume::init(
        &fx.cipher,
        &fx.engine,
        &root(),
        &InitOptions {
            master_key_id: fx.key_id.clone(),
            block_size: 4096,
            names_mode: NamesMode::Encrypted,
            long_names: false,
            kms: None,
            write_only_key: None,
        },
    )
    .unwrap();
    assert!(cfg.features.flags(2).is_empty());
    assert_eq!(config_json(&fx)["feature_flags"], json!([]));
    let m = fx.mount();
    let longest_short = "s".repeat(MAX_SHORT_PLAIN_NAME_LEN);
    let long = "L".repeat(MAX_SHORT_PLAIN_NAME_LEN + 1);
    let err = fs::write(m.path(&long), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG), "{err}");
    fs::write(m.path(&longest_short), b"short enough").unwrap();
    assert!(fs::read_dir(&fx.cipher).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("kmsfs.longname")
    }));
    assert_eq!(fs::read(m.path(&longest_short)).unwrap(), b"short enough");
}

/// The root key of the frozen format-1 volume's engine store (a raw key,
/// so that opening it costs no Argon2id).
const FROZEN_ROOT_KEY: [u8; 32] = [0x5a; 32];

/// What the frozen volume holds: (path, contents) of regular files.
fn frozen_files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("hello.txt".into(), b"hello from format 1\n".to_vec()),
        (
            "dir/nested.bin".into(),
            (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ),
        (format!("dir/{}", "L".repeat(200)), b"a long name".to_vec()),
        ("empty".into(), Vec::new()),
    ]
}

fn frozen_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/volume_v1")
}

/// A fixture over copies of the frozen engine store and cipher directory.
fn frozen_fixture() -> Fixture {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(frozen_dir().join("engine"))
        .arg(frozen_dir().join("cipher"))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let engine_dir = tmp.path().join("engine");
    fs::set_permissions(&engine_dir, fs::Permissions::from_mode(0o700)).unwrap();
    for e in fs::read_dir(&engine_dir).unwrap() {
        fs::set_permissions(e.unwrap().path(), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let engine = Arc::new(
        kms_engine::Engine::open(
            &engine_dir,
            kms_engine::RootKeySource::Key(zeroize::Zeroizing::new(FROZEN_ROOT_KEY)),
            Arc::new(kms_engine::SystemClock),
            Arc::new(kms_engine::audit::NullSink),
        )
        .unwrap(),
    );
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let key_id = String::from_utf8(fs::read(frozen_dir().join("key_id")).unwrap()).unwrap();
    Fixture {
        cipher: tmp.path().join("cipher"),
        mnt,
        engine_dir,
        engine,
        key_id,
        tmp,
    }
}

/// A volume written by kmsfs before config format 2 (frozen in
/// tests/vectors/volume_v1: engine store and cipher directory) still opens
/// and mounts, every file, name and symlink reads as written, a new file can
/// be added, and after `upgrade_config` it all still reads.
#[test]
fn frozen_format_1_volume_mounts_and_upgrades() {
    let fx = frozen_fixture();
    let conf = config_json(&fx);
    assert_eq!(conf["format_version"], 1, "the frozen volume is format 1");
    let check = |fx: &Fixture| {
        let m = fx.mount();
        for (path, data) in frozen_files() {
            assert_eq!(fs::read(m.path(&path)).unwrap(), data, "{path}");
        }
        assert_eq!(
            fs::read_link(m.path("link")).unwrap(),
            std::path::Path::new("hello.txt")
        );
        assert_eq!(fs::read(m.path("link")).unwrap(), b"hello from format 1\n");
        let mut names: Vec<String> = fs::read_dir(m.path("dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [&"L".repeat(200), "nested.bin"]);
        m
    };
    let mut vol = open(&fx).unwrap();
    assert!(!vol.config.is_authenticated());
    {
        let m = check(&fx);
        fs::write(m.path("added"), b"added under format 1").unwrap();
    }
    assert!(vol.upgrade_config(&keys(&fx), &root()).unwrap());
    assert_eq!(config_json(&fx)["format_version"], 2);
    let report = kmsfs::fsck::check(&vol, &keys(&fx), &root()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.files, report.symlinks), (5, 1));
    let m = check(&fx);
    assert_eq!(fs::read(m.path("added")).unwrap(), b"added under format 1");
}

/// Writes tests/vectors/volume_v1 (run by hand, once, when the frozen
/// volume must be made again: `cargo test --test integration
/// fs_config::write_frozen_format_1_volume -- --ignored`).
#[test]
#[ignore = "writes the frozen volume into the source tree; run by hand"]
fn write_frozen_format_1_volume() {
    let out = frozen_dir();
    assert!(!out.exists(), "{} exists; remove it first", out.display());
    let engine_dir = out.join("engine");
    let engine = Arc::new(
        kms_engine::Engine::create(
            &engine_dir,
            kms_engine::RootKeySource::Key(zeroize::Zeroizing::new(FROZEN_ROOT_KEY)),
            kms_engine::KdfParams::insecure_for_tests(),
            Arc::new(kms_engine::SystemClock),
            Arc::new(kms_engine::audit::NullSink),
        )
        .unwrap(),
    );
    let key_id = engine
        .create_key(&root(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let cipher = out.join("cipher");
    fs::create_dir(&cipher).unwrap();
    volume::init(
        &cipher,
        &engine,
        &root(),
        &InitOptions {
            master_key_id: key_id.clone(),
            block_size: 4096,
            names_mode: NamesMode::Encrypted,
            long_names: true,
            kms: None,
            write_only_key: None,
        },
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let fx = Fixture {
        tmp,
        cipher,
        mnt,
        engine_dir,
        engine,
        key_id: key_id.clone(),
    };
    {
        let m = fx.mount();
        fs::create_dir(m.path("dir")).unwrap();
        for (path, data) in frozen_files() {
            fs::write(m.path(&path), data).unwrap();
        }
        std::os::unix::fs::symlink("hello.txt", m.path("link")).unwrap();
    }
    downgrade_to_format_1(&fx);
    let _ = fs::remove_file(fx.engine_dir.join("engine.lock"));
    fs::write(out.join("key_id"), key_id).unwrap();
}
