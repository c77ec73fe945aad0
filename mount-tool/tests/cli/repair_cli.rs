//! `kmsfs fsck --repair` on the real binary: every kind of damage the fsck
//! tests make (and the recoverable cases: an IV or a side file left under
//! another name, an empty directory without IV, a pending journal) is
//! repaired or moved unchanged into the quarantine with a report; fsck is
//! clean afterwards, the mount works and every recoverable file reads back.
//! A quarantined file moved back is as broken as before (repair never makes
//! damaged ciphertext authenticate); a mounted volume is refused.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::fsck_cli::{cipher_size, find_by_size, fsck_json, lxattrs, problems, set_xattr, walk};
use super::mount_cli::{Env, MountGuard};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn rel(env: &Env, p: &Path) -> String {
    format!(
        "cipherdir:/{}",
        p.strip_prefix(&env.cipher).unwrap().display()
    )
}

fn flip_byte(p: &Path, at: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
}

/// Every long-name side file below `root`.
fn side_files(root: &Path) -> Vec<PathBuf> {
    let mut sides = Vec::new();
    walk(root, &mut |p, _| {
        let n = p.file_name().unwrap().to_str().unwrap();
        if n.starts_with("kmsfs.longname.") && n.ends_with(".name") {
            sides.push(p.to_path_buf());
        }
    });
    sides
}

#[test]
fn repair_fixes_or_quarantines_each_kind_of_damage() {
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    // Clean content that must come through unchanged.
    let clean: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one-block", data(4096)),
        ("multi.bin", data(3 * 4096 + 100)),
        ("dir/sub/nested.txt", data(2000)),
    ];
    std::fs::create_dir_all(mnt.join("dir/sub")).unwrap();
    for (p, d) in &clean {
        std::fs::write(mnt.join(p), d).unwrap();
    }
    // Files to damage, each with a size of its own.
    std::fs::write(mnt.join("small.txt"), data(100)).unwrap();
    set_xattr(&mnt.join("small.txt"), "user.color", b"blue");
    let long = "L".repeat(150);
    std::fs::write(mnt.join("dir").join(&long), data(3000)).unwrap();
    std::os::unix::fs::symlink("small.txt", mnt.join("link")).unwrap();
    for (name, n) in [
        ("flip.bin", 10000),
        ("trunc.bin", 9000),
        ("swap-a", 5000),
        ("swap-b", 6000),
        ("mover", 777),
        ("badname.txt", 555),
        ("jfile", 1234),
    ] {
        std::fs::write(mnt.join(name), data(n)).unwrap();
    }
    for d in ["dir2", "noiv", "empty-dir", "bakiv", "dirL"] {
        std::fs::create_dir(mnt.join(d)).unwrap();
    }
    std::fs::write(mnt.join("dir2/victim"), data(333)).unwrap();
    std::fs::write(mnt.join("noiv/inner.txt"), data(444)).unwrap();
    std::fs::write(mnt.join("bakiv/kept"), data(4321)).unwrap();
    let long2 = "M".repeat(160);
    std::fs::write(mnt.join("dirL").join(&long2), data(2345)).unwrap();

    // A mounted volume is refused.
    let out = env.run(&["fsck", "--repair", Env::s(&env.cipher)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unmount it first"));
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    let sides_before = side_files(&env.cipher);
    assert_eq!(sides_before.len(), 2);

    // The damage of fsck_cli, backing path by backing path.
    let flip = find_by_size(&env.cipher, cipher_size(10000));
    flip_byte(&flip, 128 + 4124 + 50);
    let trunc = find_by_size(&env.cipher, cipher_size(9000));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&trunc)
        .unwrap()
        .set_len(128 + 2 * 4124 + 10)
        .unwrap();
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
    let mover = find_by_size(&env.cipher, cipher_size(777));
    let victim = find_by_size(&env.cipher, cipher_size(333));
    std::fs::rename(&mover, &victim).unwrap();
    let noiv_file = find_by_size(&env.cipher, cipher_size(444));
    let noiv_dir = noiv_file.parent().unwrap().to_path_buf();
    std::fs::remove_file(noiv_dir.join("kmsfs.diriv")).unwrap();
    let bad = find_by_size(&env.cipher, cipher_size(555));
    let mut name = bad.file_name().unwrap().as_bytes().to_vec();
    name[5] = if name[5] == b'A' { b'B' } else { b'A' };
    let bad_name = String::from_utf8(name).unwrap();
    std::fs::rename(&bad, env.cipher.join(&bad_name)).unwrap();
    std::fs::write(env.cipher.join("kmsfs.bogus"), b"x").unwrap();
    std::fs::write(env.cipher.join("notes.txt"), b"mine").unwrap();
    std::fs::write(env.cipher.join("kmsfs.tmp-0123456789abcdef"), b"debris").unwrap();
    let small = find_by_size(&env.cipher, cipher_size(100));
    let (xname, mut xval) = lxattrs(&small)
        .into_iter()
        .find(|(n, _)| n.starts_with(b"user.kmsfs."))
        .unwrap();
    *xval.last_mut().unwrap() ^= 0x01;
    set_xattr(&small, std::str::from_utf8(&xname).unwrap(), &xval);
    let mut links = Vec::new();
    walk(&env.cipher, &mut |p, m| {
        if m.is_symlink() {
            links.push(p.to_path_buf());
        }
    });
    std::fs::remove_file(&links[0]).unwrap();
    std::os::unix::fs::symlink("A".repeat(60), &links[0]).unwrap();
    // The side file of dir/LLL... is lost; that of dirL/MMM... was renamed
    // (as a sync tool does with a conflict): recoverable.
    let kept = find_by_size(&env.cipher, cipher_size(4321));
    let long2_file = find_by_size(&env.cipher, cipher_size(2345));
    let (lost_side, renamed_side): (Vec<_>, Vec<_>) = sides_before
        .iter()
        .partition(|s| s.parent() != long2_file.parent());
    std::fs::remove_file(lost_side[0]).unwrap();
    let long_entry = lost_side[0].with_extension("");
    std::fs::rename(
        renamed_side[0],
        renamed_side[0].with_extension("name.sync-conflict"),
    )
    .unwrap();
    // bakiv's IV kept under another name; empty-dir has none at all.
    let bakiv_dir = kept.parent().unwrap().to_path_buf();
    std::fs::rename(
        bakiv_dir.join("kmsfs.diriv"),
        bakiv_dir.join("kmsfs.diriv.bak"),
    )
    .unwrap();
    let mut empty_dirs = Vec::new();
    walk(&env.cipher, &mut |p, m| {
        if m.is_dir()
            && std::fs::read_dir(p).unwrap().count() == 1
            && p.join("kmsfs.diriv").exists()
        {
            empty_dirs.push(p.to_path_buf());
        }
    });
    assert_eq!(empty_dirs.len(), 1, "{empty_dirs:?}");
    std::fs::remove_file(empty_dirs[0].join("kmsfs.diriv")).unwrap();
    // A rename journal left by a crash after its backing rename: its entry
    // names jfile with the header it already has.
    let jfile = find_by_size(&env.cipher, cipher_size(1234));
    let header = std::fs::read(&jfile).unwrap()[..128].to_vec();
    let journal = serde_json::json!({"version": 1, "entries": [{
        "path": URL_SAFE_NO_PAD.encode(jfile.strip_prefix(&env.cipher).unwrap().as_os_str().as_bytes()),
        "file_id": URL_SAFE_NO_PAD.encode(&header[8..24]),
        "header": URL_SAFE_NO_PAD.encode(&header),
    }]});
    std::fs::write(env.cipher.join("kmsfs.journal"), journal.to_string()).unwrap();

    let (code, report, _) = fsck_json(&env);
    assert_eq!(code, Some(6));
    let found = problems(&report).len();
    assert!(found >= 17, "{report:#}");
    // What is moved must arrive unchanged: the damaged bytes, by backing path.
    let mut damaged: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    walk(&env.cipher, &mut |p, m| {
        if m.is_file() {
            damaged.insert(rel(&env, p), std::fs::read(p).unwrap());
        }
    });
    let flip_bytes = std::fs::read(&flip).unwrap();

    let out = env.run(&["fsck", "--repair", "--output", "json", Env::s(&env.cipher)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rep: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(0), "{rep:#}\n{stderr}");
    assert_eq!(rep["problems_found"], found, "{rep:#}");
    assert_eq!(rep["after"]["problems"], serde_json::json!([]), "{rep:#}");
    let actions = rep["actions"].as_array().unwrap();
    let action = |path: &str, kind: &str| -> &Value {
        let hits: Vec<_> = actions
            .iter()
            .filter(|a| a["path"] == path && a["kind"] == kind)
            .collect();
        assert_eq!(hits.len(), 1, "{path} {kind}: {rep:#}");
        hits[0]
    };
    for p in [
        "/flip.bin",
        "/trunc.bin",
        "/swap-a",
        "/swap-b",
        "/dir2/victim",
    ] {
        let a = action(p, "content");
        assert!(
            a["done"].as_str().unwrap().starts_with("quarantined"),
            "{a}"
        );
        // Moved unchanged.
        let q = env.cipher.join(
            a["quarantined_as"]
                .as_str()
                .unwrap()
                .strip_prefix("cipherdir:/")
                .unwrap(),
        );
        assert_eq!(
            &std::fs::read(&q).unwrap(),
            damaged.get(a["backing"].as_str().unwrap()).unwrap(),
            "{p}"
        );
    }
    for (p, kind) in [
        (format!("cipherdir:/{bad_name}"), "name"),
        ("cipherdir:/notes.txt".to_string(), "name"),
        ("cipherdir:/kmsfs.bogus".to_string(), "stray"),
        ("cipherdir:/kmsfs.tmp-0123456789abcdef".to_string(), "stray"),
        ("/link".to_string(), "symlink"),
        (rel(&env, &long_entry), "long_name_side"),
        (rel(&env, &noiv_file), "name"),
    ] {
        let a = action(&p, kind);
        assert!(a["quarantined_as"].is_string(), "{a}");
    }
    assert!(
        action("/noiv", "dir_iv")["done"]
            .as_str()
            .unwrap()
            .contains("recreated; no copy of the old IV"),
        "{rep:#}"
    );
    assert!(
        action("/empty-dir", "dir_iv")["done"]
            .as_str()
            .unwrap()
            .contains("holds no names, so nothing is lost")
    );
    assert!(
        action("/bakiv", "dir_iv")["done"]
            .as_str()
            .unwrap()
            .contains("restored from kmsfs.diriv.bak, which decrypts 1 names")
    );
    let side = action(&rel(&env, &long2_file), "long_name_side");
    assert!(
        side["done"]
            .as_str()
            .unwrap()
            .contains("side file restored from")
    );
    assert!(side["quarantined_as"].is_null());
    let x = action("/small.txt", "xattr");
    let xq = x["quarantined_as"].as_str().unwrap();
    assert!(xq.ends_with(".xattr"), "{x}");
    assert_eq!(
        std::fs::read(env.cipher.join(xq.strip_prefix("cipherdir:/").unwrap())).unwrap(),
        xval
    );
    assert!(
        action("/", "journal")["done"]
            .as_str()
            .unwrap()
            .starts_with("recovered")
    );
    assert!(!env.cipher.join("kmsfs.journal").exists());
    // The reports beside the items.
    let qdir = env.cipher.join(
        rep["quarantine"]
            .as_str()
            .unwrap()
            .strip_prefix("cipherdir:/")
            .unwrap(),
    );
    assert!(qdir.starts_with(env.cipher.join("kmsfs.quarantine")));
    let saved: Value =
        serde_json::from_slice(&std::fs::read(qdir.join("report.json")).unwrap()).unwrap();
    assert_eq!(saved["actions"], rep["actions"]);
    let txt = std::fs::read_to_string(qdir.join("report.txt")).unwrap();
    assert!(
        txt.contains("/flip.bin: 1 of 3 blocks fail authentication"),
        "{txt}"
    );
    assert!(txt.trim_end().ends_with(&format!(
        "quarantine: {}",
        rep["quarantine"].as_str().unwrap()
    )));

    // Clean now, and the text form of a second repair says nothing to do.
    let (code, report, stderr) = fsck_json(&env);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    let again = env.ok(&["fsck", "--repair", Env::s(&env.cipher)]);
    assert_eq!(
        again,
        "0 problems found, 0 repair actions, 0 problems left\n"
    );

    // The mount: everything recoverable reads back; the quarantine is not
    // visible; what was quarantined is gone from its place.
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    for (p, d) in &clean {
        assert_eq!(&std::fs::read(mnt.join(p)).unwrap(), d, "{p}");
    }
    assert_eq!(std::fs::read(mnt.join("bakiv/kept")).unwrap(), data(4321));
    assert_eq!(
        std::fs::read(mnt.join("dirL").join(&long2)).unwrap(),
        data(2345)
    );
    assert_eq!(std::fs::read(mnt.join("jfile")).unwrap(), data(1234));
    assert_eq!(std::fs::read(mnt.join("small.txt")).unwrap(), data(100));
    assert!(lxattrs(&mnt.join("small.txt")).is_empty());
    std::fs::write(mnt.join("empty-dir/new"), b"works").unwrap();
    std::fs::write(mnt.join("noiv/new"), b"works").unwrap();
    let mut root: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    root.sort();
    assert_eq!(
        root,
        [
            "bakiv",
            "dir",
            "dir2",
            "dirL",
            "empty",
            "empty-dir",
            "jfile",
            "multi.bin",
            "noiv",
            "one-block",
            "small.txt"
        ]
    );
    assert_eq!(std::fs::read_dir(mnt.join("dir2")).unwrap().count(), 0);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    // A quarantined file put back is exactly as broken as before.
    let fq = action("/flip.bin", "content")["quarantined_as"]
        .as_str()
        .unwrap()
        .strip_prefix("cipherdir:/")
        .unwrap()
        .to_string();
    std::fs::rename(env.cipher.join(&fq), &flip).unwrap();
    assert_eq!(std::fs::read(&flip).unwrap(), flip_bytes);
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let err = std::fs::read(mnt.join("flip.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    let (code, report, _) = fsck_json(&env);
    assert_eq!(code, Some(6));
    assert_eq!(problems(&report).len(), 1, "{report:#}");
}

/// The damage of the content tests (fs_sparse, fsck_cli's plaintext-names
/// volume): a foreign file, a flipped tag, a file cut at a block boundary,
/// one cut down to its header, a zeroed block in a file without holes.
#[test]
fn repair_quarantines_cut_and_zeroed_files_in_a_plaintext_names_volume() {
    let env = Env::new();
    env.ok(&[
        "kms",
        "init-engine",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
    ]);
    let init: Value =
        serde_json::from_str(&env.ok(&["init", "--plaintext-names", Env::s(&env.cipher)])).unwrap();
    let key = init["key_id"].as_str().unwrap().to_string();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    std::fs::create_dir(mnt.join("d")).unwrap();
    for (name, n) in [
        ("d/ok.txt", 5000),
        ("d/tag.bin", 5001),
        ("d/cut.bin", 3 * 4096 + 10),
        ("d/header-only.bin", 700),
        ("d/zeroed.bin", 3 * 4096 + 20),
    ] {
        std::fs::write(mnt.join(name), data(n)).unwrap();
    }
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    let d = env.cipher.join("d");
    std::fs::write(d.join("notes.txt"), b"plain text, not kmsfs\n".repeat(10)).unwrap();
    flip_byte(&d.join("tag.bin"), 128 + 4124 - 1);
    let set_len = |p: &Path, n: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(n)
            .unwrap()
    };
    set_len(&d.join("cut.bin"), 128 + 3 * 4124);
    set_len(&d.join("header-only.bin"), 128);
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("zeroed.bin"))
        .unwrap()
        .write_all_at(&[0u8; 4124], 128 + 4124)
        .unwrap();
    let (code, report, _) = fsck_json(&env);
    assert_eq!(code, Some(6));
    let all = problems(&report);
    assert_eq!(all.len(), 5, "{all:#?}");

    // A data key the key service refuses is not damage: repair leaves the
    // file where it is and says so (exit 6), and still repairs the rest.
    let policy = |deny: bool| {
        let mut st = vec![serde_json::json!({"Sid": "All", "Effect": "Allow",
            "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"})];
        if deny {
            st.push(serde_json::json!({"Sid": "NoOk", "Effect": "Deny",
                "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/d/ok.txt"}}}));
        }
        let p = serde_json::json!({"Version": "2012-10-17", "Statement": st}).to_string();
        env.ok(&["kms", "put-key-policy", "--key-id", &key, "--policy", &p]);
    };
    policy(true);
    let ok_before = std::fs::read(d.join("ok.txt")).unwrap();
    let out = env.run(&["fsck", "--repair", "--json", Env::s(&env.cipher)]);
    assert_eq!(out.status.code(), Some(6));
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    let left = problems(&rep["after"]);
    assert_eq!(left.len(), 1, "{rep:#}");
    assert_eq!(left[0].0, "/d/ok.txt");
    assert!(left[0].1.contains("AccessDeniedException"), "{left:?}");
    assert_eq!(rep["after"]["problems"][0]["kind"], "key_access");
    assert_eq!(rep["actions"].as_array().unwrap().len(), 5, "{rep:#}");
    assert_eq!(std::fs::read(d.join("ok.txt")).unwrap(), ok_before);
    policy(false);
    // The damage was dealt with in that run: a new repair has nothing to do.
    let out = env.run(&["fsck", "--repair", Env::s(&env.cipher)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0 problems found, 0 repair actions, 0 problems left\n"
    );
    // The first run's report in the quarantine: the five moved there, the
    // refused file not repaired.
    let q = std::fs::read_dir(env.cipher.join("kmsfs.quarantine"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(q.join("report.txt")).unwrap();
    assert!(
        text.contains("/d/ok.txt: data key cannot be unwrapped") && text.contains("(not repaired)"),
        "{text}"
    );
    for p in [
        "/d/notes.txt",
        "/d/tag.bin",
        "/d/cut.bin",
        "/d/header-only.bin",
        "/d/zeroed.bin",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{p}: "))),
            "{p}: {text}"
        );
    }
    assert_eq!(
        text.matches(" -> cipherdir:/kmsfs.quarantine/").count(),
        5,
        "{text}"
    );
    assert!(
        text.contains("6 problems found, 5 repair actions, 1 problems left; quarantine: "),
        "{text}"
    );
    let (code, report, _) = fsck_json(&env);
    assert_eq!(code, Some(0), "{report:#}");
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    assert_eq!(std::fs::read(mnt.join("d/ok.txt")).unwrap(), data(5000));
    let names: Vec<_> = std::fs::read_dir(mnt.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ok.txt"]);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
}

/// On a terminal fsck draws a progress bar (files checked of the files in
/// the cipher directory) on standard error; without one it draws none.
#[test]
fn fsck_shows_a_progress_bar_on_a_terminal_only() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: script(1) from util-linux is not installed");
        return;
    }
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    for i in 0..20 {
        std::fs::write(mnt.join(format!("f{i}")), data(100 + i)).unwrap();
    }
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    let cmdline = format!(
        "{} --engine {} --passphrase-file {} fsck {}",
        env!("CARGO_BIN_EXE_kmsfs"),
        Env::s(&env.engine),
        Env::s(&env.pass),
        Env::s(&env.cipher)
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env_remove("KMSFS_ENGINE")
        .env_remove("KMSFS_PASSPHRASE_FILE")
        .env_remove("KMSFS_KEY_FILE")
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("/20 files"), "{tty}");
    assert!(tty.contains("checked 20 files"), "{tty}");
    let plain = env.run(&["fsck", Env::s(&env.cipher)]);
    assert!(plain.status.success());
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(!stderr.contains("files"), "{stderr}");
}
