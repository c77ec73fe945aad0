//! The engine store on a full disk: a write that does not fit fails with a
//! clear error that keeps the OS error (ENOSPC), leaves the old store and no
//! temp files behind, and works again once space is freed.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use common::*;
use kms_engine::audit::NullSink;
use kms_engine::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Unmounts the tmpfs even if the test fails.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn small_disk(at: &Path, size: &str) -> Unmount {
    std::fs::create_dir(at).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(st.success(), "this test needs root to mount a tmpfs");
    Unmount(at.to_path_buf())
}

/// Writes a filler file until the disk is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = [0x5Au8; 4096];
    for _ in 0..100_000 {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e:?}");
            return path;
        }
    }
    panic!("the small disk never filled up");
}

/// ENOSPC, without a libc dependency: the kind std gives that errno.
fn is_enospc(raw: Option<i32>) -> bool {
    raw.is_some_and(|n| {
        std::io::Error::from_raw_os_error(n).kind() == std::io::ErrorKind::StorageFull
    })
}

fn open(dir: &Path, clock: &ManualClock) -> Result<Engine, KmsError> {
    Engine::open(
        dir,
        passphrase("correct horse"),
        Arc::new(clock.clone()),
        Arc::new(NullSink),
    )
}

fn key_ids(e: &Engine) -> Vec<String> {
    let mut ids: Vec<String> = e
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    ids.sort();
    ids
}

fn debris(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "engine.store" && n != "engine.lock" && n != "key-usage")
        .collect()
}

#[test]
fn create_key_on_a_full_disk_fails_clearly_and_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    let _guard = small_disk(&mnt, "256k");
    let dir = mnt.join("engine");
    let clock = ManualClock::new(T0);
    let engine = Engine::create(
        &dir,
        passphrase("correct horse"),
        KdfParams::insecure_for_tests(),
        Arc::new(clock.clone()),
        Arc::new(NullSink),
    )
    .unwrap();
    let mut keys: Vec<String> = (0..3)
        .map(|_| {
            engine
                .create_key(&alice(), CreateKeyRequest::default())
                .unwrap()
                .key_metadata
                .key_id
        })
        .collect();
    keys.sort();
    let store_before = std::fs::read(dir.join("engine.store")).unwrap();

    let filler = fill(&mnt);
    let err = engine
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap_err();
    assert_eq!(err.exception_name(), "KMSInternalException", "{err}");
    assert!(is_enospc(err.raw_os_error()), "{err:?}");
    assert!(
        matches!(&err, KmsError::Io { kind, .. } if *kind == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert!(err.message().contains("engine store"), "{err}");
    // A second try fails the same way; nothing of either is left behind.
    let again = engine
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap_err();
    assert!(is_enospc(again.raw_os_error()), "{again:?}");
    assert_eq!(debris(&dir), Vec::<String>::new());
    assert_eq!(
        std::fs::read(dir.join("engine.store")).unwrap(),
        store_before
    );

    // The running engine and a fresh open both still see exactly the old keys.
    assert_eq!(key_ids(&engine), keys);
    let reopened = open(&dir, &clock).unwrap();
    assert_eq!(key_ids(&reopened), keys);
    drop(reopened);
    // Keys still work for crypto (no store write needed).
    let ctx = EncryptionContext::new();
    let blob = engine
        .encrypt(
            &alice(),
            EncryptRequest {
                key_id: keys[0].clone(),
                plaintext: SecretBytes::from(&b"still here"[..]),
                encryption_context: ctx.clone(),
                encryption_algorithm: None,
                grant_tokens: None,
            },
        )
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        engine
            .decrypt(
                &alice(),
                DecryptRequest {
                    ciphertext_blob: blob,
                    encryption_context: ctx,
                    key_id: None,
                    encryption_algorithm: None,
                    grant_tokens: None,
                },
            )
            .unwrap()
            .plaintext
            .as_slice(),
        b"still here"
    );

    // Room again: CreateKey works and the new key persists.
    std::fs::remove_file(&filler).unwrap();
    let new = engine
        .create_key(&alice(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    keys.push(new);
    keys.sort();
    assert_eq!(key_ids(&engine), keys);
    assert_eq!(key_ids(&open(&dir, &clock).unwrap()), keys);
    assert_eq!(debris(&dir), Vec::<String>::new());
}
