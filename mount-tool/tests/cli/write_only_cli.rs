//! Write-only volumes on the real binary and real FUSE mounts
//! (`kmsfs init --write-only-key RSA_KEY`): a mount whose principal the RSA
//! key's policy denies Decrypt creates, appends to and renames its own new
//! files but reads none (EACCES), not even after a remount; a mount allowed
//! to Decrypt reads everything byte for byte; a ciphertext moved to another
//! path, a changed wrapped key or a changed slot file give EIO; fsck checks
//! the volume and rewrap refuses it.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::fsck_cli::{fsck_json, problems};
use crate::mount_cli::{Env, MountGuard};
use serde_json::{Value, json};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

/// An engine with an RSA_2048 ENCRYPT_DECRYPT key and a write-only volume
/// for it in `cipher`; returns the volume's config as `init` printed it.
fn write_only_volume(env: &Env) -> Value {
    env.ok(&[
        "kms",
        "init-engine",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
    ]);
    let key: Value = serde_json::from_str(&env.ok(&[
        "kms",
        "create-key",
        "--key-spec",
        "RSA_2048",
        "--key-usage",
        "ENCRYPT_DECRYPT",
    ]))
    .unwrap();
    let rsa = key["KeyMetadata"]["KeyId"].as_str().unwrap();
    serde_json::from_str(&env.ok(&["init", Env::s(&env.cipher), "--write-only-key", rsa])).unwrap()
}

/// The RSA key's policy: everything allowed, and Decrypt denied to
/// everyone while `deny_decrypt`.
fn put_policy(env: &Env, rsa: &str, deny_decrypt: bool) {
    let mut statements = vec![json!({"Sid": "All", "Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"})];
    if deny_decrypt {
        statements.push(json!({"Sid": "WriteOnly", "Effect": "Deny",
            "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}));
    }
    let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    env.ok(&[
        "kms",
        "put-key-policy",
        "--key-id",
        rsa,
        "--policy-name",
        "default",
        "--policy",
        &policy,
    ]);
}

fn mount(env: &Env, mnt: &Path) -> MountGuard {
    let guard = MountGuard::new(mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(mnt)]);
    guard
}

fn unmount(env: &Env, mnt: &Path, guard: MountGuard) {
    env.ok(&["unmount", Env::s(mnt)]);
    guard.wait_for_mount_process();
}

fn append(p: &Path, data: &[u8]) -> std::io::Result<()> {
    OpenOptions::new().append(true).open(p)?.write_all(data)
}

/// The backing file in the cipher root whose size is `size`.
fn backing_of_size(cipher: &Path, size: u64) -> PathBuf {
    let hits: Vec<PathBuf> = fs::read_dir(cipher)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && fs::metadata(p).unwrap().len() == size)
        .collect();
    assert_eq!(hits.len(), 1, "backing files of {size} bytes: {hits:?}");
    hits.into_iter().next().unwrap()
}

/// Backing size of a format-2 file of `n` plaintext bytes (4 KiB blocks).
fn cipher_size(n: u64) -> u64 {
    let (q, r) = (n / 4096, n % 4096);
    128 + q * 4124 + if r > 0 { r + 28 } else { 0 } + if n == 0 { 28 } else { 0 }
}

#[test]
fn a_write_only_mount_writes_what_only_a_decrypting_mount_reads() {
    let env = Env::new();
    let init = write_only_volume(&env);
    let rsa = init["write_only_key"].as_str().unwrap().to_string();
    assert!(rsa.starts_with("arn:aws:kms:"), "{init}");
    let conf = fs::read_to_string(env.cipher.join("kmsfs.conf")).unwrap();
    assert!(
        conf.contains(&format!("\"write_only_key\": \"{rsa}\"")),
        "{conf}"
    );
    put_policy(&env, &rsa, true);
    fs::create_dir(&env.mnt).unwrap();
    let mnt = fs::canonicalize(&env.mnt).unwrap();

    // The writing mount: Decrypt with the RSA key is denied to it.
    let guard = mount(&env, &mnt);
    let small = b"first line\n".to_vec();
    let big: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(mnt.join("small.txt"), &small).unwrap();
    fs::write(mnt.join("big.bin"), &big).unwrap();
    fs::create_dir(mnt.join("sub")).unwrap();
    fs::write(mnt.join("sub/c.txt"), b"in a directory\n").unwrap();
    // Its own files: appended to (the last block is read back inside the
    // mount) and renamed (re-bound to the new path) without the service.
    append(&mnt.join("small.txt"), b"appended\n").unwrap();
    fs::rename(mnt.join("sub/c.txt"), mnt.join("sub/d.txt")).unwrap();
    // Names stay readable to the writer; contents do not.
    let mut names: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin", "small.txt", "sub"]);
    assert_eq!(
        fs::metadata(mnt.join("big.bin")).unwrap().len(),
        big.len() as u64
    );
    for f in ["small.txt", "big.bin", "sub/d.txt"] {
        assert_eq!(errno(fs::read(mnt.join(f))), libc::EACCES, "{f}");
        assert_eq!(
            errno(OpenOptions::new().read(true).write(true).open(mnt.join(f))),
            libc::EACCES,
            "{f}"
        );
    }
    // A file created for reading and writing: written, never read.
    let mut rw = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(mnt.join("rw.txt"))
        .unwrap();
    rw.write_all(b"created O_RDWR\n").unwrap();
    drop(rw);
    let status = env.ok(&["status", "--output", "text"]);
    assert!(
        status.contains("write-only:") && status.contains(&rsa),
        "{status}"
    );
    let slots: Vec<PathBuf> = fs::read_dir(env.cipher.join("kmsfs.writers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(slots.len(), 1);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&env.cipher.join("kmsfs.writers")), 0o755);
    assert_eq!(mode(&slots[0]), 0o644);
    unmount(&env, &mnt, guard);

    // Remounted, still denied: the earlier files are another mount's now.
    let guard = mount(&env, &mnt);
    assert_eq!(errno(append(&mnt.join("small.txt"), b"x")), libc::EACCES);
    assert_eq!(
        errno(fs::rename(mnt.join("big.bin"), mnt.join("big2.bin"))),
        libc::EACCES
    );
    assert_eq!(
        errno(fs::write(mnt.join("sub/d.txt"), b"over")),
        libc::EACCES
    );
    fs::write(mnt.join("second.txt"), b"from the second mount\n").unwrap();
    assert_eq!(errno(fs::read(mnt.join("second.txt"))), libc::EACCES);
    unmount(&env, &mnt, guard);
    assert_eq!(
        fs::read_dir(env.cipher.join("kmsfs.writers"))
            .unwrap()
            .count(),
        2
    );

    // fsck as a principal denied Decrypt: every file is a key-access
    // problem, none is called damaged.
    let (code, report, err) = fsck_json(&env);
    assert_ne!(code, Some(0), "{err}");
    let all = problems(&report);
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(
        all.iter()
            .all(|(_, what)| what.contains("AccessDeniedException")),
        "{all:#?}"
    );

    // A mount allowed to Decrypt reads everything as written.
    put_policy(&env, &rsa, false);
    let (code, report, err) = fsck_json(&env);
    assert_eq!(code, Some(0), "{report:#} {err}");
    let guard = mount(&env, &mnt);
    assert_eq!(
        fs::read(mnt.join("small.txt")).unwrap(),
        b"first line\nappended\n"
    );
    assert_eq!(fs::read(mnt.join("big.bin")).unwrap(), big);
    assert_eq!(
        fs::read(mnt.join("sub/d.txt")).unwrap(),
        b"in a directory\n"
    );
    assert_eq!(fs::read(mnt.join("rw.txt")).unwrap(), b"created O_RDWR\n");
    assert_eq!(
        fs::read(mnt.join("second.txt")).unwrap(),
        b"from the second mount\n"
    );
    // Its own new files it reads too, also through the handle that
    // created them, and it renames any file.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(mnt.join("reader.txt"))
        .unwrap();
    f.write_all(b"by the reader\n").unwrap();
    let mut back = [0u8; 14];
    f.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back, b"by the reader\n");
    drop(f);
    assert_eq!(
        fs::read(mnt.join("reader.txt")).unwrap(),
        b"by the reader\n"
    );
    fs::rename(mnt.join("second.txt"), mnt.join("sub/second.txt")).unwrap();
    assert_eq!(
        fs::read(mnt.join("sub/second.txt")).unwrap(),
        b"from the second mount\n"
    );
    unmount(&env, &mnt, guard);

    // rewrap, rekey and migrate do not apply, and say so.
    for job in ["rewrap", "rekey", "migrate"] {
        let out = env.run(&[job, Env::s(&env.cipher)]);
        assert_eq!(out.status.code(), Some(2), "{job}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("write-only volume") && err.contains(&format!("{job} does not apply")),
            "{err}"
        );
    }

    // A ciphertext moved to another path, a changed wrapped key and a
    // changed slot file: EIO, and fsck names each.
    let small_b = backing_of_size(&env.cipher, cipher_size(20));
    let big_b = backing_of_size(&env.cipher, cipher_size(big.len() as u64));
    let rw_b = backing_of_size(&env.cipher, cipher_size(15));
    fs::copy(&big_b, &rw_b).unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&small_b)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, 26 + 40).unwrap();
    f.write_all_at(&[byte[0] ^ 1], 26 + 40).unwrap();
    drop(f);
    let mut slots: Vec<PathBuf> = fs::read_dir(env.cipher.join("kmsfs.writers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    slots.sort();
    let guard = mount(&env, &mnt);
    assert_eq!(fs::read(mnt.join("big.bin")).unwrap(), big);
    assert_eq!(errno(fs::read(mnt.join("rw.txt"))), libc::EIO);
    assert_eq!(errno(fs::read(mnt.join("small.txt"))), libc::EIO);
    unmount(&env, &mnt, guard);
    let (code, report, _) = fsck_json(&env);
    assert_ne!(code, Some(0));
    let all = problems(&report);
    let paths: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/rw.txt", "/small.txt"], "{all:#?}");
    // Every slot file changed in its RSA ciphertext: nothing of the slot
    // opens (the service refuses the ciphertext).
    for slot in &slots {
        let bytes = fs::read(slot).unwrap();
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        fs::write(slot, &bad).unwrap();
    }
    let guard = mount(&env, &mnt);
    let e = fs::read(mnt.join("sub/d.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_ne!(e.kind(), ErrorKind::PermissionDenied);
    unmount(&env, &mnt, guard);
}

#[test]
fn only_an_rsa_encrypt_decrypt_key_makes_a_write_only_volume() {
    let env = Env::new();
    env.ok(&[
        "kms",
        "init-engine",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
    ]);
    let key_of = |args: &[&str]| -> String {
        let v: Value = serde_json::from_str(&env.ok(args)).unwrap();
        v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
    };
    let symmetric = key_of(&["kms", "create-key"]);
    let signing = key_of(&[
        "kms",
        "create-key",
        "--key-spec",
        "RSA_2048",
        "--key-usage",
        "SIGN_VERIFY",
    ]);
    for key in [&symmetric, &signing] {
        let out = env.run(&["init", Env::s(&env.cipher), "--write-only-key", key]);
        assert!(!out.status.success(), "{key}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("public key") || err.contains("ENCRYPT_DECRYPT"),
            "{err}"
        );
        // Nothing was written.
        assert_eq!(fs::read_dir(&env.cipher).unwrap().count(), 0, "{err}");
    }
}

/// `--writeback-cache` on a write-only volume is refused before mounting,
/// with the reason (the kernel reads a page before writing part of it,
/// which a write-only mount cannot serve); nothing is mounted.
#[test]
fn writeback_cache_is_refused_on_a_write_only_volume() {
    let env = Env::new();
    write_only_volume(&env);
    fs::create_dir(&env.mnt).unwrap();
    let out = env.run(&[
        "mount",
        "--writeback-cache",
        Env::s(&env.cipher),
        Env::s(&env.mnt),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--writeback-cache") && err.contains("write-only volume"),
        "{err}"
    );
    assert!(!kmsfs::fuse::status::is_mounted(&env.mnt));
}
