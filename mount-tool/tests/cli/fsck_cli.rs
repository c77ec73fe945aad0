//! `kmsfs fsck` on the real binary: a volume filled through a real FUSE
//! mount checks clean with the right counts; then each kind of damage made
//! in the backing directory is reported with its path and a non-zero exit,
//! and fsck changes no byte of the cipher directory.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::mount_cli::{Env, MountGuard};
use serde_json::Value;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Backing size of a file of `n` plaintext bytes with 4096-byte blocks.
pub(crate) fn cipher_size(n: u64) -> u64 {
    let rem = n % 4096;
    128 + (n / 4096) * 4124 + if rem > 0 { rem + 28 } else { 0 }
}

/// The one backing regular file below `root` of `size` bytes.
pub(crate) fn find_by_size(root: &Path, size: u64) -> PathBuf {
    let mut found = Vec::new();
    walk(root, &mut |p, m| {
        if m.is_file() && m.len() == size {
            found.push(p.to_path_buf());
        }
    });
    assert_eq!(found.len(), 1, "backing files of {size} bytes: {found:?}");
    found.pop().unwrap()
}

pub(crate) fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).unwrap();
        f(&p, &m);
        if m.is_dir() {
            walk(&p, f);
        }
    }
}

pub(crate) fn lxattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        let n = rustix::fs::lgetxattr(p, cn.as_c_str(), &mut val[..]).unwrap();
        val.truncate(n);
        out.push((name.to_vec(), val));
    }
    out
}

/// A hash of the whole tree: every path, its type and mode, the contents of
/// files, the targets of symlinks and every xattr.
pub(crate) fn tree_hash(root: &Path) -> [u8; 32] {
    use std::os::unix::fs::PermissionsExt;
    let mut all = Vec::new();
    walk(root, &mut |p, m| {
        all.extend_from_slice(p.strip_prefix(root).unwrap().as_os_str().as_bytes());
        all.push(0);
        all.extend_from_slice(&m.permissions().mode().to_be_bytes());
        if m.is_file() {
            all.extend_from_slice(&std::fs::read(p).unwrap());
        } else if m.is_symlink() {
            all.extend_from_slice(std::fs::read_link(p).unwrap().as_os_str().as_bytes());
        }
        for (n, v) in lxattrs(p) {
            all.extend_from_slice(&n);
            all.extend_from_slice(&v);
        }
        all.push(0);
    });
    kmsfs::crypto::sha256(&all)
}

pub(crate) fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(p, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

pub(crate) fn fsck_json(env: &Env) -> (Option<i32>, Value, String) {
    let out = env.run(&["fsck", Env::s(&env.cipher), "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The problems of a report as (path, what) pairs.
pub(crate) fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["what"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Asserts that exactly one problem is about `path` and it contains `what`.
pub(crate) fn assert_problem(all: &[(String, String)], path: &str, what: &str) {
    let hits: Vec<_> = all.iter().filter(|(p, _)| p == path).collect();
    assert_eq!(hits.len(), 1, "problems for {path}: {all:#?}");
    assert!(
        hits[0].1.contains(what),
        "{path}: {} lacks {what:?}",
        hits[0].1
    );
}

#[test]
fn fsck_finds_a_clean_volume_clean_and_reports_each_kind_of_damage() {
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    let data = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 % 251) as u8).collect() };
    // Clean content: several sizes, dirs, a long name, a symlink, an xattr.
    std::fs::write(mnt.join("empty"), b"").unwrap();
    std::fs::write(mnt.join("small.txt"), data(100)).unwrap();
    std::fs::write(mnt.join("one-block"), data(4096)).unwrap();
    std::fs::write(mnt.join("multi.bin"), data(3 * 4096 + 100)).unwrap();
    std::fs::create_dir_all(mnt.join("dir/sub")).unwrap();
    std::fs::write(mnt.join("dir/sub/nested.txt"), data(2000)).unwrap();
    let long = "L".repeat(150);
    std::fs::write(mnt.join("dir").join(&long), data(3000)).unwrap();
    std::os::unix::fs::symlink("small.txt", mnt.join("link")).unwrap();
    set_xattr(&mnt.join("small.txt"), "user.color", b"blue");
    set_xattr(&mnt.join("dir"), "user.tag", b"d");
    // Files to damage later, each with a size of its own.
    std::fs::write(mnt.join("flip.bin"), data(10000)).unwrap();
    std::fs::write(mnt.join("trunc.bin"), data(9000)).unwrap();
    std::fs::write(mnt.join("swap-a"), data(5000)).unwrap();
    std::fs::write(mnt.join("swap-b"), data(6000)).unwrap();
    std::fs::write(mnt.join("mover"), data(777)).unwrap();
    std::fs::create_dir(mnt.join("dir2")).unwrap();
    std::fs::write(mnt.join("dir2/victim"), data(333)).unwrap();
    std::fs::create_dir(mnt.join("noiv")).unwrap();
    std::fs::write(mnt.join("noiv/inner.txt"), data(444)).unwrap();
    std::fs::write(mnt.join("badname.txt"), data(555)).unwrap();
    // A mounted volume is refused: it would change under the check.
    let out = env.run(&["fsck", Env::s(&env.cipher)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unmount it first"), "{stderr}");
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    let before = tree_hash(&env.cipher);
    let (code, report, stderr) = fsck_json(&env);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(problems(&report), vec![]);
    assert_eq!(report["files"], 14, "{report:#}");
    assert_eq!(report["dirs"], 5, "{report:#}");
    assert_eq!(report["symlinks"], 1, "{report:#}");
    assert_eq!(report["xattrs"], 2, "{report:#}");
    assert_eq!(report["journal_pending"], false);
    // The text form: only the summary line.
    let text = env.ok(&["fsck", Env::s(&env.cipher)]);
    assert_eq!(
        text,
        "checked 14 files, 5 directories, 1 symlinks, 0 other, 2 xattrs: 0 problems\n"
    );
    assert_eq!(tree_hash(&env.cipher), before);

    // A flipped byte in block 1 of 3.
    let flip = find_by_size(&env.cipher, cipher_size(10000));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&flip)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 128 + 4124 + 50).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], 128 + 4124 + 50).unwrap();
    drop(f);
    // Truncated inside the last block's nonce.
    let trunc = find_by_size(&env.cipher, cipher_size(9000));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&trunc)
        .unwrap()
        .set_len(128 + 2 * 4124 + 10)
        .unwrap();
    // Headers swapped between two files.
    let (a, b) = (
        find_by_size(&env.cipher, cipher_size(5000)),
        find_by_size(&env.cipher, cipher_size(6000)),
    );
    let (ha, hb) = (
        std::fs::read(&a).unwrap()[..128].to_vec(),
        std::fs::read(&b).unwrap()[..128].to_vec(),
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&a)
        .unwrap()
        .write_all_at(&hb, 0)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .write_all_at(&ha, 0)
        .unwrap();
    // A file moved into another directory, under a name valid there.
    let mover = find_by_size(&env.cipher, cipher_size(777));
    let victim = find_by_size(&env.cipher, cipher_size(333));
    std::fs::rename(&mover, &victim).unwrap();
    // A deleted directory IV.
    let noiv_dir = find_by_size(&env.cipher, cipher_size(444))
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::remove_file(noiv_dir.join("kmsfs.diriv")).unwrap();
    // A corrupted name: one base64url character changed.
    let bad = find_by_size(&env.cipher, cipher_size(555));
    let mut name = bad.file_name().unwrap().as_bytes().to_vec();
    name[5] = if name[5] == b'A' { b'B' } else { b'A' };
    let bad_name = String::from_utf8(name).unwrap();
    std::fs::rename(&bad, env.cipher.join(&bad_name)).unwrap();
    // Stray files: one looking like kmsfs's, one not at all.
    std::fs::write(env.cipher.join("kmsfs.bogus"), b"x").unwrap();
    std::fs::write(env.cipher.join("notes.txt"), b"mine").unwrap();

    // An xattr value with a flipped byte.
    let small = find_by_size(&env.cipher, cipher_size(100));
    let (xname, mut xval) = lxattrs(&small)
        .into_iter()
        .find(|(n, _)| n.starts_with(b"user.kmsfs."))
        .unwrap();
    *xval.last_mut().unwrap() ^= 0x01;
    set_xattr(&small, std::str::from_utf8(&xname).unwrap(), &xval);
    // A symlink whose stored target is not kmsfs's.
    let mut links = Vec::new();
    walk(&env.cipher, &mut |p, m| {
        if m.is_symlink() {
            links.push(p.to_path_buf());
        }
    });
    assert_eq!(links.len(), 1);
    std::fs::remove_file(&links[0]).unwrap();
    std::os::unix::fs::symlink("A".repeat(60), &links[0]).unwrap();
    // A long name whose side file is gone.
    let mut sides = Vec::new();
    walk(&env.cipher, &mut |p, _| {
        let n = p.file_name().unwrap().to_str().unwrap();
        if n.starts_with("kmsfs.longname.") && n.ends_with(".name") {
            sides.push(p.to_path_buf());
        }
    });
    assert_eq!(sides.len(), 1);
    std::fs::remove_file(&sides[0]).unwrap();
    let long_entry = sides[0].with_extension("");
    let long_shown = format!(
        "cipherdir:/{}",
        long_entry.strip_prefix(&env.cipher).unwrap().display()
    );

    let before = tree_hash(&env.cipher);
    let (code, report, stderr) = fsck_json(&env);
    assert_eq!(code, Some(6), "{report:#}\n{stderr}");
    assert!(stderr.contains("problem"), "{stderr}");
    let all = problems(&report);
    assert_problem(&all, "/flip.bin", "1 of 3 blocks fail authentication");
    assert_problem(&all, "/flip.bin", "block 1");
    assert_problem(&all, "/trunc.bin", "truncated inside block 2");
    assert_problem(&all, "/swap-a", "does not unwrap under this path");
    assert_problem(&all, "/swap-b", "does not unwrap under this path");
    assert_problem(&all, "/dir2/victim", "does not unwrap under this path");
    assert_problem(&all, "/noiv", "kmsfs.diriv is missing");
    assert_problem(
        &all,
        &format!("cipherdir:/{bad_name}"),
        "name does not decrypt",
    );
    assert_problem(&all, "cipherdir:/kmsfs.bogus", "stray file");
    assert_problem(&all, "cipherdir:/notes.txt", "name does not decrypt");
    assert_problem(
        &all,
        "/small.txt",
        "xattr user.color: xattr value failed authentication",
    );
    assert_problem(&all, "/link", "symlink target does not decrypt");
    assert_problem(&all, &long_shown, "long name without a readable side file");
    assert_eq!(all.len(), 12, "{all:#?}");
    // The clean files stay clean.
    for p in [
        "/multi.bin",
        "/one-block",
        "/dir",
        "/dir/sub/nested.txt",
        "/empty",
    ] {
        assert!(all.iter().all(|(q, _)| q != p), "{p}: {all:#?}");
    }
    // The text form: one line per problem, then the summary.
    let out = env.run(&["fsck", Env::s(&env.cipher)]);
    assert_eq!(out.status.code(), Some(6));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("/trunc.bin: ") && l.contains("truncated")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 13, "{text}");
    assert!(text.trim_end().ends_with(": 12 problems"), "{text}");
    assert_eq!(
        tree_hash(&env.cipher),
        before,
        "fsck changed the cipher dir"
    );

    // A pending rename journal is reported.
    std::fs::write(env.cipher.join("kmsfs.journal"), b"{}").unwrap();
    let (code, report, _) = fsck_json(&env);
    assert_eq!(code, Some(6));
    assert_eq!(report["journal_pending"], true);
    assert_problem(&problems(&report), "/", "mount the volume once");
    std::fs::remove_file(env.cipher.join("kmsfs.journal")).unwrap();

    // A wrong passphrase exits 3, as for every command.
    std::fs::write(&env.pass, "not the passphrase\n").unwrap();
    let out = env.run(&["fsck", Env::s(&env.cipher)]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn fsck_checks_a_plaintext_names_volume() {
    let env = Env::new();
    env.ok(&[
        "kms",
        "init-engine",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
    ]);
    env.ok(&["init", "--plaintext-names", Env::s(&env.cipher)]);
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    std::fs::create_dir(mnt.join("d")).unwrap();
    std::fs::write(mnt.join("d/a.txt"), vec![7u8; 5000]).unwrap();
    std::os::unix::fs::symlink("d/a.txt", mnt.join("ln")).unwrap();
    set_xattr(&mnt.join("d"), "user.k", b"v");
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    let (code, report, stderr) = fsck_json(&env);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["files"], 1);
    assert_eq!(report["dirs"], 2);
    assert_eq!(report["symlinks"], 1);
    assert_eq!(report["xattrs"], 1);

    // A foreign file has no kmsfs header; a flipped tag byte fails block 0.
    std::fs::write(
        env.cipher.join("d/notes.txt"),
        b"plain text, not kmsfs\n".repeat(10),
    )
    .unwrap();
    let a = env.cipher.join("d/a.txt");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&a)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 128 + 4124 - 1).unwrap();
    f.write_all_at(&[b[0] ^ 0x80], 128 + 4124 - 1).unwrap();
    drop(f);
    let before = tree_hash(&env.cipher);
    let (code, report, _) = fsck_json(&env);
    assert_eq!(code, Some(6));
    let all = problems(&report);
    assert_problem(&all, "/d/notes.txt", "bad file header: not a kmsfs file");
    assert_problem(&all, "/d/a.txt", "1 of 2 blocks fail authentication");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(tree_hash(&env.cipher), before);
}
