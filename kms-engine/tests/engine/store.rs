//! The sealed store: root keys, wrong passphrase, corruption, permissions,
//! persistence, and seeing another engine instance's changes.

use crate::common;
use common::*;
use kms_engine::audit::NullSink;
use kms_engine::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

fn open_with(f: &Fixture, root: RootKeySource) -> Result<Engine, KmsError> {
    Engine::open(
        &f.engine_dir(),
        root,
        Arc::new(f.clock.clone()),
        Arc::new(NullSink),
    )
}

#[test]
fn wrong_passphrase_is_clear_and_changes_nothing() {
    let f = fixture();
    f.new_key();
    let path = f.engine_dir().join("engine.store");
    let before = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let e = open_with(&f, passphrase("wrong horse")).unwrap_err();
    assert_eq!(e, KmsError::WrongPassphrase);
    assert!(!e.to_string().contains("wrong horse"));
    let e = open_with(&f, RootKeySource::Key(Zeroizing::new([0u8; 32]))).unwrap_err();
    assert_eq!(e, KmsError::WrongPassphrase);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_eq!(
        f.reopen()
            .unwrap()
            .list_keys(&alice(), ListKeysRequest::default())
            .unwrap()
            .keys
            .len(),
        1
    );
}

#[test]
fn corrupted_store_is_told_apart_from_wrong_passphrase() {
    let f = fixture();
    f.new_key();
    let path = f.engine_dir().join("engine.store");
    let good = std::fs::read(&path).unwrap();
    // Flip a byte of the sealed body: right passphrase, damaged store.
    let mut bad = good.clone();
    let last = bad.len() - 20;
    bad[last] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(f.reopen(), Err(KmsError::StoreCorrupted(_))));
    // Truncated / not a store.
    std::fs::write(&path, &good[..40]).unwrap();
    assert!(matches!(f.reopen(), Err(KmsError::StoreCorrupted(_))));
    std::fs::write(&path, b"hello world, this is not an engine store at all, no no no no no no no no no no no no no no no").unwrap();
    assert!(matches!(f.reopen(), Err(KmsError::StoreCorrupted(_))));
    // A header asking Argon2id for absurd costs (read before anything is
    // authenticated) is refused instead of exhausting memory or hanging.
    for (at, what) in [(10, "memory"), (14, "passes"), (18, "lanes")] {
        let mut bad = good.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        std::fs::write(&path, &bad).unwrap();
        match f.reopen() {
            Err(KmsError::StoreCorrupted(msg)) => assert!(msg.contains(what), "{msg}"),
            other => panic!("{what}: expected StoreCorrupted, got {other:?}"),
        }
    }
    std::fs::write(&path, &good).unwrap();
    assert!(f.reopen().is_ok());
}

#[test]
fn absurd_kdf_params_are_refused_at_create() {
    let dir = tempfile::tempdir().unwrap();
    let r = Engine::create(
        &dir.path().join("e"),
        RootKeySource::Passphrase(Zeroizing::new("pw".into())),
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1_000,
            p_cost: 1,
        },
        Arc::new(SystemClock),
        Arc::new(NullSink),
    );
    assert!(matches!(r, Err(KmsError::Validation(_))), "{r:?}");
}

#[test]
fn key_file_roots() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("root.key");
    std::fs::write(&kf, [7u8; 31]).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
    let e = Engine::create(
        &dir.path().join("e"),
        RootKeySource::KeyFile(kf.clone()),
        KdfParams::default(),
        clock.clone(),
        Arc::new(NullSink),
    )
    .unwrap_err();
    assert!(e.to_string().contains("exactly 32 bytes"), "{e}");
    std::fs::write(&kf, [7u8; 32]).unwrap();
    let e = Engine::create(
        &dir.path().join("e"),
        RootKeySource::KeyFile(kf.clone()),
        KdfParams::default(),
        clock.clone(),
        Arc::new(NullSink),
    )
    .unwrap();
    let id = e
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    drop(e);
    let e = Engine::open(
        &dir.path().join("e"),
        RootKeySource::Key(Zeroizing::new([7u8; 32])),
        clock.clone(),
        Arc::new(NullSink),
    )
    .unwrap();
    assert_eq!(
        e.list_keys(&alice(), ListKeysRequest::default())
            .unwrap()
            .keys[0]
            .key_id,
        id
    );
    // A passphrase never opens a key-file store.
    let e = Engine::open(
        &dir.path().join("e"),
        passphrase("x"),
        clock,
        Arc::new(NullSink),
    )
    .unwrap_err();
    assert_eq!(e, KmsError::WrongPassphrase);
}

#[test]
fn create_twice_and_open_missing() {
    let f = fixture();
    let e = Engine::create(
        &f.engine_dir(),
        passphrase("other"),
        KdfParams::insecure_for_tests(),
        Arc::new(f.clock.clone()),
        Arc::new(NullSink),
    )
    .unwrap_err();
    assert!(matches!(e, KmsError::AlreadyExists(_)));
    assert!(f.reopen().is_ok());
    let e = Engine::open(
        &f.dir.path().join("nothing"),
        passphrase("x"),
        Arc::new(f.clock.clone()),
        Arc::new(NullSink),
    )
    .unwrap_err();
    assert!(matches!(e, KmsError::StoreNotFound(_)));
}

#[test]
fn files_are_private() {
    let f = fixture();
    f.new_key();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.engine_dir()), 0o700);
    assert_eq!(mode(&f.engine_dir().join("engine.store")), 0o600);
    assert_eq!(mode(&f.engine_dir().join("engine.lock")), 0o600);
    assert_eq!(mode(&f.engine_dir().join("key-usage")), 0o600);
    let mut names: Vec<String> = std::fs::read_dir(f.engine_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["engine.lock", "engine.store", "key-usage"]);
}

/// The engine directory is kept private at every open, not only at
/// creation: a loosened mode is put back to 0700, a directory of another
/// user or a symlink in its place is refused with one clear line, and a
/// symlink planted at the lock file's name is refused, never followed.
#[test]
fn the_engine_directory_is_checked_at_every_open() {
    let f = fixture();
    f.new_key();
    let dir = f.engine_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    f.reopen().unwrap();
    assert_eq!(mode(&dir), 0o700);

    let victim = f.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::remove_file(dir.join("engine.lock")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("engine.lock")).unwrap();
    let e = f.reopen().unwrap_err();
    assert!(e.to_string().contains("engine lock file"), "{e}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    std::fs::remove_file(dir.join("engine.lock")).unwrap();

    let link = f.dir.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let e = Engine::open(
        &link,
        passphrase("correct horse"),
        Arc::new(f.clock.clone()),
        Arc::new(NullSink),
    )
    .unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");

    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
        let e = f.reopen().unwrap_err();
        assert!(e.to_string().contains("owned by uid 4242"), "{e}");
        std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
    }
    f.reopen().unwrap();
}

#[test]
fn production_kdf_params_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let e = Engine::create(
        &dir.path().join("e"),
        passphrase("pw"),
        KdfParams::default(),
        clock.clone(),
        Arc::new(NullSink),
    )
    .unwrap();
    let seed = e.audit_signing_seed().unwrap();
    drop(e);
    let raw = std::fs::read(dir.path().join("e/engine.store")).unwrap();
    assert_eq!(&raw[10..22], &[0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1]);
    let e = Engine::open(
        &dir.path().join("e"),
        passphrase("pw"),
        clock,
        Arc::new(NullSink),
    )
    .unwrap();
    assert_eq!(*e.audit_signing_seed().unwrap(), *seed);
    assert_ne!(*seed, [0u8; 32]);
}

#[test]
fn debug_output_is_redacted() {
    let f = fixture();
    let dbg = format!("{:?} {:?}", f.engine, passphrase("hunter2"));
    assert!(!dbg.contains("hunter2"));
    assert!(dbg.contains("redacted"));
}

#[test]
fn second_instance_sees_changes_after_refresh() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[]);
    // Instance B plays "the CLI in another process".
    let b = f.reopen().unwrap();
    // A re-checks the disk on every read-only op.
    f.engine.set_refresh_interval(Duration::ZERO);
    f.encrypt(&k, b"x", &c).unwrap();
    b.disable_key(&alice(), KeyIdRequest { key_id: k.clone() })
        .unwrap();
    assert!(matches!(
        f.encrypt(&k, b"x", &c),
        Err(KmsError::Disabled(_))
    ));
    // With a long interval, A keeps using its snapshot until the next check.
    f.engine.set_refresh_interval(Duration::from_secs(3600));
    b.enable_key(&alice(), KeyIdRequest { key_id: k.clone() })
        .unwrap();
    assert!(matches!(
        f.encrypt(&k, b"x", &c),
        Err(KmsError::Disabled(_))
    ));
    // refresh_now reads B's change at once, whatever the interval.
    f.engine.refresh_now().unwrap();
    assert!(f.encrypt(&k, b"x", &c).is_ok());
    b.disable_key(&alice(), KeyIdRequest { key_id: k.clone() })
        .unwrap();
    f.engine.refresh_now().unwrap();
    assert!(matches!(
        f.encrypt(&k, b"x", &c),
        Err(KmsError::Disabled(_))
    ));
    b.enable_key(&alice(), KeyIdRequest { key_id: k.clone() })
        .unwrap();
    // A write in A reloads first, so B's change is never lost.
    let k2 = f.new_key();
    assert!(f.encrypt(&k, b"x", &c).is_ok());
    let k3 = b
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let k4 = f.new_key();
    let mut all: Vec<String> = f
        .reopen()
        .unwrap()
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    all.sort();
    let mut want = vec![k, k2, k3, k4];
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn concurrent_threads_share_one_engine() {
    let f = fixture();
    let k = f.new_key();
    let engine = &f.engine;
    std::thread::scope(|s| {
        for t in 0..4 {
            let k = k.clone();
            s.spawn(move || {
                for i in 0..20 {
                    if i % 5 == 0 {
                        engine
                            .create_key(
                                &alice(),
                                CreateKeyRequest {
                                    description: Some(format!("t{t}")),
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                    }
                    let c = ctx(&[("t", &t.to_string())]);
                    let blob = engine
                        .encrypt(
                            &alice(),
                            EncryptRequest {
                                key_id: k.clone(),
                                plaintext: SecretBytes::from(&b"abc"[..]),
                                encryption_context: c.clone(),
                                encryption_algorithm: None,
                                grant_tokens: None,
                            },
                        )
                        .unwrap()
                        .ciphertext_blob;
                    let pt = engine
                        .decrypt(
                            &alice(),
                            DecryptRequest {
                                ciphertext_blob: blob,
                                encryption_context: c,
                                key_id: None,
                                encryption_algorithm: None,
                                grant_tokens: None,
                            },
                        )
                        .unwrap();
                    assert_eq!(pt.plaintext.as_slice(), b"abc");
                }
            });
        }
    });
    assert_eq!(
        f.reopen()
            .unwrap()
            .list_keys(&alice(), ListKeysRequest::default())
            .unwrap()
            .keys
            .len(),
        17
    );
}
