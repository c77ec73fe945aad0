//! `kmsfs rekey --names` on the real binary: a volume of a few thousand
//! files in nested directories, long names, symlinks (long targets too)
//! and stored attributes, written through a real FUSE mount; the rekey
//! killed with SIGKILL at random points of its names pass and run again;
//! a mount refused while it is pending; every cipher name changed, every
//! file, link and attribute read back identical through a new mount, fsck
//! clean.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::mount_cli::{Env, MountGuard};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STATE: &str = "kmsfs.rekey-names";

/// What the volume holds, by plaintext path relative to the root.
#[derive(Default, Debug, PartialEq)]
struct Tree {
    files: BTreeMap<String, Vec<u8>>,
    links: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn long_name(tag: &str, i: usize) -> String {
    // 150 bytes: over the 103 whose encryption fits in one backing name.
    format!(
        "{tag}-{i}-{}",
        "n".repeat(150 - tag.len() - 2 - i.to_string().len())
    )
}

/// Writes the test tree through the mount at `mnt`: `n` files over 3
/// levels of directories (one of them with a long name), every 40th file
/// with a long name, symlinks (every 10th with a target too long for a
/// backing symlink, some with long names), attributes on files and dirs.
fn build(mnt: &Path, n: usize) -> Tree {
    let mut t = Tree::default();
    let mut dirs = Vec::new();
    for a in 0..6 {
        let da = if a == 5 {
            long_name("dir", a)
        } else {
            format!("a{a}")
        };
        for b in 0..4 {
            for c in 0..3 {
                let rel = format!("{da}/b{b}/c{c}");
                std::fs::create_dir_all(mnt.join(&rel)).unwrap();
                t.dirs.insert(da.clone());
                t.dirs.insert(format!("{da}/b{b}"));
                t.dirs.insert(rel.clone());
                dirs.push(rel);
            }
        }
    }
    for i in 0..n {
        let d = &dirs[i % dirs.len()];
        let name = if i % 40 == 7 {
            long_name("file", i)
        } else {
            format!("file-{i}")
        };
        let rel = format!("{d}/{name}");
        let data: Vec<u8> = (0..(30 + i % 500))
            .map(|j| ((i * 13 + j * 5) % 251) as u8)
            .collect();
        std::fs::write(mnt.join(&rel), &data).unwrap();
        t.files.insert(rel, data);
    }
    std::fs::write(mnt.join("empty"), b"").unwrap();
    t.files.insert("empty".into(), Vec::new());
    for i in 0..120 {
        let d = &dirs[(i * 7) % dirs.len()];
        let name = if i % 9 == 4 {
            long_name("link", i)
        } else {
            format!("link-{i}")
        };
        let target = if i % 10 == 3 {
            format!("../{}", "t/".repeat(1700)).into_bytes()
        } else {
            format!("../b0/c0/file-{i}").into_bytes()
        };
        let rel = format!("{d}/{name}");
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), mnt.join(&rel)).unwrap();
        t.links.insert(rel, target);
    }
    for (x, rel) in t
        .files
        .keys()
        .step_by(37)
        .chain(t.dirs.iter().step_by(5))
        .enumerate()
    {
        let value = format!("value of {rel}").into_bytes();
        let name = format!("user.note{}", x % 3);
        rustix::fs::setxattr(
            mnt.join(rel),
            name.as_str(),
            &value,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        t.xattrs.insert(format!("{rel}\0{name}"), value);
    }
    t
}

/// Reads the whole tree back through the mount at `mnt`.
fn read_back(mnt: &Path) -> Tree {
    let mut t = Tree::default();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(mnt.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().unwrap();
            let p = mnt.join(&r);
            if ft.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                assert!(
                    t.links
                        .insert(r, target.as_os_str().as_bytes().to_vec())
                        .is_none()
                );
                continue;
            }
            let mut names = vec![0u8; 4096];
            let n = rustix::fs::listxattr(&p, &mut names[..]).unwrap();
            for x in names[..n].split(|b| *b == 0).filter(|x| !x.is_empty()) {
                let x = std::str::from_utf8(x).unwrap();
                let mut v = vec![0u8; 4096];
                let len = rustix::fs::getxattr(&p, x, &mut v[..]).unwrap();
                t.xattrs.insert(format!("{r}\0{x}"), v[..len].to_vec());
            }
            if ft.is_dir() {
                t.dirs.insert(r.clone());
                stack.push(r);
            } else {
                let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{r}: {e}"));
                assert!(t.files.insert(r, data).is_none());
            }
        }
    }
    t
}

/// Mounts the volume, reads the tree back, unmounts.
fn mounted_tree(env: &Env) -> Tree {
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let t = read_back(&mnt);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    t
}

/// Every backing entry name below the cipher root (kmsfs's own files
/// but hashed long names left out), with its directory depth.
fn cipher_names(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().as_bytes().to_vec();
            let own = name.starts_with(b"kmsfs.") && !name.starts_with(b"kmsfs.longname.");
            if e.file_type().unwrap().is_dir() && !own {
                stack.push(e.path());
            }
            if !own {
                out.insert(name);
            }
        }
    }
    out
}

/// Long-link target files and long-name side files below the cipher root.
fn side_files(root: &Path) -> (usize, usize) {
    let (mut links, mut sides) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().as_bytes().to_vec();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if name.starts_with(b"kmsfs.longlink.") {
                links += 1;
            } else if name.starts_with(b"kmsfs.longname.") && name.ends_with(b".name") {
                sides += 1;
            }
        }
    }
    (links, sides)
}

/// Starts `kmsfs ARGS`, waits until the names pass has begun (the state
/// file is there) or the process ended, then `ms` more milliseconds, and
/// kills it with SIGKILL if it still runs; whether it was killed.
fn kill_in_names_pass(env: &Env, args: &[&str], ms: u64) -> bool {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .arg("--engine")
        .arg(&env.engine)
        .arg("--passphrase-file")
        .arg(&env.pass)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !env.cipher.join(STATE).exists() && c.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "rekey --names did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(ms));
    let killed = c.try_wait().unwrap().is_none();
    if killed {
        c.kill().unwrap();
    }
    c.wait().unwrap();
    killed
}

/// A pseudo-random number in `lo..hi` (no rand crate in the tests).
fn random(seed: u64, lo: u64, hi: u64) -> u64 {
    let x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add((std::process::id() as u64).wrapping_mul(1442695040888963407))
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64,
        );
    lo + (x >> 33) % (hi - lo)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn wrapped_names_key(env: &Env) -> String {
    let conf = json(&std::fs::read_to_string(env.cipher.join("kmsfs.conf")).unwrap());
    conf["wrapped_names_key"].as_str().unwrap().to_string()
}

fn assert_fsck_clean(env: &Env) {
    let out = env.run(&["fsck", Env::s(&env.cipher), "--json"]);
    let fsck = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(fsck["problems"], Value::Array(vec![]), "{fsck:#}");
    assert!(out.status.success(), "{fsck:#}");
}

#[test]
fn rekey_names_survives_kill_9_refuses_mounts_while_pending_and_changes_every_name() {
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let tree = build(&mnt, 3000);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    assert_eq!(mounted_tree(&env), tree, "the tree does not read back");
    let names0 = cipher_names(&env.cipher);
    let key0 = wrapped_names_key(&env);
    let sides0 = side_files(&env.cipher);
    assert_eq!(sides0.0, 12, "long-link target files");

    // Uninterrupted: contents and names.
    let s = json(&env.ok(&["rekey", Env::s(&env.cipher), "--names", "--output", "json"]));
    assert_eq!(s["skipped"], 0, "{s:#}");
    assert_eq!(s["changed"], tree.files.len(), "{s:#}");
    let n = &s["names"];
    let entries = tree.files.len() + tree.links.len() + tree.dirs.len();
    assert_eq!(n["entries"], entries, "{s:#}");
    assert_eq!(n["renamed"], entries, "{s:#}");
    assert_eq!(n["switched"], true, "{s:#}");
    assert_eq!(n["symlinks"], tree.links.len(), "{s:#}");
    assert_eq!(n["xattrs"], tree.xattrs.len(), "{s:#}");
    assert!(n["long_names"].as_u64().unwrap() >= 80, "{s:#}");
    assert!(!env.cipher.join(STATE).exists());
    let names1 = cipher_names(&env.cipher);
    assert_eq!(names1.len(), names0.len());
    let kept: Vec<_> = names0.intersection(&names1).collect();
    assert!(kept.is_empty(), "cipher names unchanged: {kept:?}");
    let key1 = wrapped_names_key(&env);
    assert_ne!(key1, key0);
    assert_fsck_clean(&env);
    assert_eq!(mounted_tree(&env), tree, "after rekey --names");

    // Killed at random points of the names pass, run again.
    let args = ["rekey", Env::s(&env.cipher), "--names", "--batch", "200"];
    let mut pending_seen = 0;
    let mut mixed_seen = 0;
    // The names of the last finished rekey.
    let mut before = names1.clone();
    // Up to 12 rounds, until 4 kills landed in the names pass; a run that
    // finished before its kill halves the range of delays.
    let mut hi = 600;
    for round in 0..12 {
        if pending_seen >= 4 && mixed_seen >= 2 {
            break;
        }
        let killed = kill_in_names_pass(&env, &args, random(round, 0, hi));
        if !env.cipher.join(STATE).exists() {
            before = cipher_names(&env.cipher);
            if !killed {
                hi = (hi / 2).max(20);
            }
            continue;
        }
        if killed {
            pending_seen += 1;
            let now = cipher_names(&env.cipher);
            let old = now.intersection(&before).count();
            eprintln!(
                "round {round}: killed with {old} of {} names under the old key",
                now.len()
            );
            if old > 0 && old < now.len() {
                mixed_seen += 1;
            }
            // A mount refuses the volume, and says why.
            let out = env.run(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
            assert!(
                !out.status.success(),
                "mounted while a names rekey is pending"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("names rekey"), "{err}");
            assert!(!kmsfs::fuse::status::is_mounted(&mnt));
            // So do the other jobs.
            let out = env.run(&["rewrap", Env::s(&env.cipher)]);
            assert!(!out.status.success());
        }
    }
    assert!(
        pending_seen >= 3 && mixed_seen >= 1,
        "only {pending_seen} kills landed in the names pass ({mixed_seen} with names under \
         both keys): too fast to test this"
    );
    let s = json(&env.ok(&[&args[..], &["--output", "json"]].concat()));
    assert_eq!(s["skipped"], 0, "{s:#}");
    assert_eq!(s["names"]["switched"], true, "{s:#}");
    assert!(!env.cipher.join(STATE).exists());
    // No name survived from before the first rekey, nothing lost or
    // left over: the same number of entries.
    let names2 = cipher_names(&env.cipher);
    assert_eq!(names2.len(), names0.len());
    assert!(names0.is_disjoint(&names2));
    assert_ne!(wrapped_names_key(&env), key1);
    // No side file or long-link target file left over or missing.
    assert_eq!(side_files(&env.cipher), sides0);
    assert_fsck_clean(&env);
    assert_eq!(mounted_tree(&env), tree, "after the kills");
}

/// A volume whose names do not all decrypt is refused before anything
/// changes (fsck --repair first).
#[test]
fn rekey_names_refuses_a_volume_with_a_damaged_name_and_changes_nothing() {
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let tree = build(&mnt, 50);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    // A planted entry whose name is not an encryption under this volume.
    let planted: PathBuf = env
        .cipher
        .join("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    std::fs::write(&planted, b"x").unwrap();
    let names0 = cipher_names(&env.cipher);
    let key0 = wrapped_names_key(&env);
    let out = env.run(&["rekey", Env::s(&env.cipher), "--names"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fsck --repair"), "{err}");
    assert_eq!(cipher_names(&env.cipher), names0);
    assert_eq!(wrapped_names_key(&env), key0);
    assert!(!env.cipher.join(STATE).exists());
    assert!(!env.cipher.join("kmsfs.rekey").exists());
    std::fs::remove_file(&planted).unwrap();
    assert_eq!(mounted_tree(&env), tree);
}
