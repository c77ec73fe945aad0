//! A write-only volume frozen in `tests/vectors/volume_write_only` (engine
//! store with its RSA key, cipher directory with two slots: the files of a
//! first mount, and a second mount's file and a rename), so that a change to
//! the slot-wrapped key, the slot file or the binding is caught: it mounts,
//! every file reads as written, its headers and slot files have the
//! documented layout, fsck finds nothing, and a ciphertext moved to another
//! path is EIO.

// Test code: panicking on a broken fixture is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{Fixture, root};
use kms_engine::CreateKeyRequest;
use kmsfs::format::{HEADER_LEN, NamesMode};
use kmsfs::fuse::FsOptions;
use kmsfs::keys::KeyService;
use kmsfs::keys::write_only::{SLOT_DIR_NAME, WRAPPED_KEY_LEN};
use kmsfs::volume::{self, InitOptions, Volume};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FROZEN_ROOT_KEY: [u8; 32] = [0x5b; 32];

fn frozen_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/volume_write_only")
}

/// (path, contents) of the frozen volume's files once both mounts wrote.
fn frozen_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "notes.txt".into(),
            b"written by a host that cannot read it\n".to_vec(),
        ),
        (
            "dir/data.bin".into(),
            (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect(),
        ),
        ("empty".into(), Vec::new()),
        ("dir/moved.txt".into(), b"renamed by its writer\n".to_vec()),
        (
            "second.txt".into(),
            b"written by the second mount\n".to_vec(),
        ),
    ]
}

/// The engine of `engine_dir` (a copy of the frozen one), opened with the
/// frozen root key.
fn open_engine(engine_dir: &Path) -> Arc<kms_engine::Engine> {
    Arc::new(
        kms_engine::Engine::open(
            engine_dir,
            kms_engine::RootKeySource::Key(zeroize::Zeroizing::new(FROZEN_ROOT_KEY)),
            Arc::new(kms_engine::SystemClock),
            Arc::new(kms_engine::audit::NullSink),
        )
        .unwrap(),
    )
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
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    Fixture {
        cipher: tmp.path().join("cipher"),
        mnt,
        engine: open_engine(&engine_dir),
        engine_dir,
        key_id: String::from_utf8(fs::read(frozen_dir().join("key_id")).unwrap()).unwrap(),
        tmp,
    }
}

/// Regular backing files under `dir` (kmsfs's own names left out).
fn backing_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kmsfs.")
        {
            continue;
        }
        if p.is_dir() {
            backing_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn frozen_write_only_volume_reads_and_keeps_its_layout() {
    let fx = frozen_fixture();
    let conf: serde_json::Value =
        serde_json::from_slice(&fs::read(fx.cipher.join("kmsfs.conf")).unwrap()).unwrap();
    let rsa = conf["write_only_key"].as_str().unwrap().to_string();
    {
        let m = fx.mount_with(
            FsOptions {
                read_only: true,
                ..FsOptions::default()
            },
            true,
        );
        for (path, data) in frozen_files() {
            assert_eq!(fs::read(m.path(&path)).unwrap(), data, "{path}");
        }
    }
    // Every header carries an 81-byte slot-wrapped key naming one of the
    // two slot files, and every slot file is an RSA-3072 ciphertext.
    let mut files = Vec::new();
    backing_files(&fx.cipher, &mut files);
    assert_eq!(files.len(), frozen_files().len());
    let mut slots = std::collections::BTreeSet::new();
    for f in &files {
        let h = fs::read(f).unwrap();
        assert_eq!(&h[24..26], &(WRAPPED_KEY_LEN as u16).to_be_bytes());
        assert_eq!(&h[26..31], b"KMWO\x01", "{}", f.display());
        assert!(h[26 + WRAPPED_KEY_LEN..HEADER_LEN].iter().all(|b| *b == 0));
        slots.insert(h[31..47].to_vec());
    }
    assert_eq!(slots.len(), 2, "two mounts wrote: two slots");
    for id in &slots {
        let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let slot = fs::read(fx.cipher.join(SLOT_DIR_NAME).join(name)).unwrap();
        assert_eq!(&slot[..5], b"KMWS\x01");
        assert_eq!(&slot[5..21], id.as_slice());
        assert_eq!(&slot[21..23], &384u16.to_be_bytes());
        assert_eq!(slot.len(), 23 + 384);
    }
    // fsck reads every file through its slot.
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let vol = Volume::open(&fx.cipher, &ks, &root()).unwrap();
    assert_eq!(vol.config.write_only_key.as_deref(), Some(rsa.as_str()));
    let report = kmsfs::fsck::check(&vol, &ks, &root()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.files, frozen_files().len() as u64);
    // A ciphertext copied over another file's: EIO there, the original
    // still reads.
    let by_size = |n: u64| {
        files
            .iter()
            .find(|f| fs::metadata(f).unwrap().len() == n)
            .unwrap()
            .clone()
    };
    let notes = by_size(128 + 28 + 38);
    let second = by_size(128 + 28 + 28);
    fs::copy(&notes, &second).unwrap();
    let m = fx.mount();
    let e = fs::read(m.path("second.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_eq!(fs::read(m.path("notes.txt")).unwrap(), frozen_files()[0].1);
}

/// Writes tests/vectors/volume_write_only (run by hand, once, when the
/// frozen volume must be made again: `cargo test --test integration
/// fs_write_only::write_frozen_write_only_volume -- --ignored`).
#[test]
#[ignore = "writes the frozen volume into the source tree; run by hand"]
fn write_frozen_write_only_volume() {
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
    let rsa = CreateKeyRequest {
        key_spec: Some("RSA_3072".into()),
        key_usage: Some("ENCRYPT_DECRYPT".into()),
        ..CreateKeyRequest::default()
    };
    let rsa = engine.create_key(&root(), rsa).unwrap().key_metadata.key_id;
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
            write_only_key: Some(rsa),
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
    let files = frozen_files();
    {
        let m = fx.mount();
        fs::create_dir(m.path("dir")).unwrap();
        for (path, data) in &files[..3] {
            fs::write(m.path(path), data).unwrap();
        }
        fs::write(m.path("before.txt"), &files[3].1).unwrap();
        fs::rename(m.path("before.txt"), m.path(&files[3].0)).unwrap();
    }
    {
        let m = fx.mount();
        fs::write(m.path(&files[4].0), &files[4].1).unwrap();
    }
    let _ = fs::remove_file(fx.engine_dir.join("engine.lock"));
    fs::write(out.join("key_id"), key_id).unwrap();
}
