//! `kmsfs rewrap`, `kmsfs rekey` and `kmsfs migrate` on the real binary:
//! volumes of a few thousand files written through a real FUSE mount, the
//! jobs killed with SIGKILL at random points and run again, every header
//! checked in the cipher directory, every file read back through a new
//! mount, a tampered file reported and skipped.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::daemon::Daemon;
use super::mount_cli::{Env, MountGuard};
use kmsfs::format::FileHeader;
use kmsfs::rewrap::{KeyVersion, blob_key_version};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The content of file `i`: a few hundred bytes, some files several blocks.
fn content(i: usize) -> Vec<u8> {
    let n = if i.is_multiple_of(97) {
        3 * 4096 + i
    } else {
        40 + i % 300
    };
    (0..n).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

/// Writes `n` files in 20 directories through the mount; returns their
/// plaintext paths (relative) and contents.
fn fill(mnt: &Path, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for d in 0..20 {
        std::fs::create_dir(mnt.join(format!("dir{d}"))).unwrap();
    }
    for i in 0..n {
        let rel = format!("dir{}/file-{i}", i % 20);
        let data = content(i);
        std::fs::write(mnt.join(&rel), &data).unwrap();
        files.insert(rel, data);
    }
    files
}

/// Mounts the volume, checks every file reads back as written, unmounts.
fn check_contents(env: &Env, files: &BTreeMap<String, Vec<u8>>, extra: &[&str]) {
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    let mut args = extra.to_vec();
    args.extend(["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    env.ok(&args);
    for (rel, data) in files {
        let got = std::fs::read(mnt.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == *data, "{rel} reads back different");
    }
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
}

/// Every regular backing file's header (kmsfs's own files aside).
fn headers(root: &Path) -> BTreeMap<PathBuf, FileHeader> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let name = e.file_name();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && !name.as_bytes().starts_with(b"kmsfs.") {
                let f = std::fs::File::open(e.path()).unwrap();
                let mut h = [0u8; 128];
                f.read_exact_at(&mut h, 0).unwrap();
                out.insert(e.path(), FileHeader::decode(&h).unwrap());
            }
        }
    }
    out
}

/// The key versions of every header, counted.
/// The modification time (seconds, nanoseconds) of every backing file.
fn mtimes(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    headers(root)
        .into_keys()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            (p, (m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

fn versions(root: &Path) -> BTreeMap<(String, u32), usize> {
    let mut out = BTreeMap::new();
    for h in headers(root).values() {
        let KeyVersion { key_id, version } = blob_key_version(&h.wrapped_dek).unwrap();
        *out.entry((key_id, version)).or_default() += 1;
    }
    out
}

/// Runs `kmsfs ARGS` (the env's engine) and kills it with SIGKILL after
/// `ms` milliseconds if it is still running; whether it was killed.
fn run_and_kill(env: &Env, args: &[&str], ms: u64) -> bool {
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
    std::thread::sleep(Duration::from_millis(ms));
    let killed = c.try_wait().unwrap().is_none();
    if killed {
        c.kill().unwrap();
    }
    c.wait().unwrap();
    killed
}

/// A pseudo-random delay in `lo..hi` ms (no rand crate in the tests).
fn delay(seed: u64, lo: u64, hi: u64) -> u64 {
    let x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add((std::process::id() as u64).wrapping_mul(1442695040888963407));
    lo + (x >> 33) % (hi - lo)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn key_of(init_out: &str) -> String {
    json(init_out)["key_id"].as_str().unwrap().to_string()
}

#[test]
fn rewrap_survives_kill_9_skips_a_tampered_file_and_every_file_reads_back() {
    let env = Env::new();
    let key = key_of(&env.init_volume());
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let mut files = fill(&mnt, 2000);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    let mut before = mtimes(&env.cipher);
    env.ok(&["kms", "rotate-key-on-demand", "--key-id", &key]);
    let report = json(&String::from_utf8_lossy(
        &env.run(&["fsck", Env::s(&env.cipher), "--json"]).stdout,
    ));
    assert_eq!(report["key_versions"]["older_versions"], 2000, "{report:#}");
    assert_eq!(report["key_versions"]["newest"], 0);

    // A tampered file: one byte of its wrapped key's ciphertext flipped.
    let all = headers(&env.cipher);
    let tampered = all.keys().nth(777).unwrap().clone();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tampered)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 26 + 40).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], 26 + 40).unwrap();
    drop(f);

    // Killed at random points, small batches so that kills land mid-batch.
    let args = [
        "rewrap",
        Env::s(&env.cipher),
        "--batch",
        "50",
        "--threads",
        "4",
    ];
    let mut kills = 0;
    for round in 0..4 {
        if run_and_kill(&env, &args, delay(round, 200, 900)) {
            kills += 1;
        }
    }
    assert!(
        kills > 0,
        "no run was killed: the volume is too small to test this"
    );
    let out = env.run(&[&args[..], &["--output", "json"]].concat());
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(6), "{summary:#}");
    assert_eq!(summary["skipped"], 1, "{summary:#}");
    assert_eq!(summary["files"], 2000);
    assert_eq!(summary["key_version"], 2);
    let problems = summary["problems"].as_array().unwrap();
    assert!(
        problems[0]["what"]
            .as_str()
            .unwrap()
            .contains("does not unwrap"),
        "{summary:#}"
    );
    let bad_rel = problems[0]["path"]
        .as_str()
        .unwrap()
        .trim_start_matches('/');
    assert!(files.remove(bad_rel).is_some(), "{bad_rel}");
    assert!(!env.cipher.join("kmsfs.rewrap").exists());

    // Every header but the tampered one names version 2, and no file's
    // modification time moved (its content did not change).
    before.remove(&tampered);
    let mut after = mtimes(&env.cipher);
    after.remove(&tampered);
    assert!(before == after, "rewrap changed modification times");
    let v = versions(&env.cipher);
    assert_eq!(v.get(&(key.clone(), 2)), Some(&1999), "{v:?}");
    assert_eq!(v.values().sum::<usize>(), 2000, "{v:?}");
    let fsck = json(&String::from_utf8_lossy(
        &env.run(&["fsck", Env::s(&env.cipher), "--json"]).stdout,
    ));
    assert_eq!(fsck["key_versions"]["newest"], 1999, "{fsck:#}");
    assert_eq!(fsck["problems"].as_array().unwrap().len(), 1, "{fsck:#}");
    check_contents(&env, &files, &[]);

    // To another key: the config names it, every header too.
    let other = json(&env.ok(&["kms", "create-key"]))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(&tampered).unwrap();
    let s = json(&env.ok(&["rewrap", Env::s(&env.cipher), "--to-key", &other]));
    assert_eq!(s["changed"], 1999, "{s:#}");
    let conf = json(&std::fs::read_to_string(env.cipher.join("kmsfs.conf")).unwrap());
    assert_eq!(conf["master_key_id"], other.as_str());
    assert_eq!(versions(&env.cipher).get(&(other, 1)), Some(&1999));
    check_contents(&env, &files, &[]);
}

#[test]
fn rekey_survives_kill_9_and_migrate_goes_to_the_daemon_and_back() {
    let env = Env::new();
    let key = key_of(&env.init_volume());
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let files = fill(&mnt, 1000);
    std::fs::write(mnt.join("dir3/sparse"), b"").unwrap();
    let sparse = std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("dir3/sparse"))
        .unwrap();
    sparse.write_all_at(b"tail", 5 * 4096).unwrap();
    drop(sparse);
    let mut files = files;
    let mut sp = vec![0u8; 5 * 4096];
    sp.extend_from_slice(b"tail");
    files.insert("dir3/sparse".into(), sp);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    let before = headers(&env.cipher);

    // --path: only the files below it.
    let s = json(&env.ok(&["rekey", Env::s(&env.cipher), "--path", "/dir5"]));
    assert_eq!(s["changed"], 50, "{s:#}");
    let args = ["rekey", Env::s(&env.cipher), "--batch", "20"];
    for round in 0..3 {
        run_and_kill(&env, &args, delay(round + 10, 200, 700));
    }
    let s = json(&env.ok(&args));
    assert_eq!(s["skipped"], 0, "{s:#}");
    assert!(!env.cipher.join("kmsfs.rekey").exists());
    // Every file has a new data key: same file id, another wrapped key.
    let after = headers(&env.cipher);
    assert_eq!(after.len(), before.len());
    for (p, h) in &after {
        let old = &before[p];
        assert_eq!(h.file_id, old.file_id, "{}", p.display());
        assert_ne!(h.wrapped_dek, old.wrapped_dek, "{}", p.display());
    }
    let fsck = json(&String::from_utf8_lossy(
        &env.run(&["fsck", Env::s(&env.cipher), "--json"]).stdout,
    ));
    assert_eq!(fsck["problems"], Value::Array(vec![]), "{fsck:#}");
    check_contents(&env, &files, &[]);

    // To an engine daemon with its own store, and back.
    let engine2 = env.tmp.path().join("engine2");
    let init2 = Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .args(["--engine", Env::s(&engine2), "--passphrase-file"])
        .arg(&env.pass)
        .args([
            "kms",
            "init-engine",
            "--kdf-memory-kib",
            "8",
            "--kdf-iterations",
            "1",
        ])
        .output()
        .unwrap();
    assert!(init2.status.success());
    let sockdir = env.tmp.path().join("sock");
    std::fs::create_dir(&sockdir).unwrap();
    let daemon = Daemon::start(&engine2, &env.pass, &sockdir.join("engine.sock"));
    let out = daemon.kmsfs(&["kms", "create-key"]);
    let dkey = json(&String::from_utf8_lossy(&out.stdout))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let url = daemon.url();
    let s = json(&env.ok(&[
        "migrate",
        Env::s(&env.cipher),
        "--kms",
        &url,
        "--to-key",
        &dkey,
    ]));
    assert_eq!(s["changed"], 1001, "{s:#}");
    let conf = json(&std::fs::read_to_string(env.cipher.join("kmsfs.conf")).unwrap());
    assert_eq!(conf["kms"], url.as_str());
    assert_eq!(conf["master_key_id"], dkey.as_str());
    assert_eq!(versions(&env.cipher).get(&(dkey.clone(), 1)), Some(&1001));
    // The mount follows the daemon the volume records.
    check_contents(&env, &files, &[]);

    let s = json(&env.ok(&[
        "migrate",
        Env::s(&env.cipher),
        "--to-embedded",
        "--to-key",
        &key,
    ]));
    assert_eq!(s["changed"], 1001, "{s:#}");
    let conf = json(&std::fs::read_to_string(env.cipher.join("kmsfs.conf")).unwrap());
    assert!(conf.get("kms").is_none(), "{conf:#}");
    assert_eq!(versions(&env.cipher).get(&(key, 1)), Some(&1001));
    drop(daemon);
    check_contents(&env, &files, &[]);
}

#[test]
fn rewrap_of_a_mounted_volume_goes_through_the_mount_while_readers_and_renames_run() {
    let env = Env::new();
    let key = key_of(&env.init_volume());
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let files = fill(&mnt, 1000);
    env.ok(&["kms", "rotate-key-on-demand", "--key-id", &key]);
    // A file held open across the rewrap, read before and after.
    let held = std::fs::File::open(mnt.join("dir0/file-0")).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (reads, renames) = std::thread::scope(|sc| {
        let reader = sc.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (rel, data) in files.iter().step_by(7) {
                    if rel.starts_with("dir19/") {
                        continue; // renamed meanwhile
                    }
                    let got = std::fs::read(mnt.join(rel)).unwrap();
                    assert!(got == *data, "{rel} read back different during the rewrap");
                    n += 1;
                }
            }
            n
        });
        let renamer = sc.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b) = if n.is_multiple_of(2) {
                    ("dir19", "dir19-moved")
                } else {
                    ("dir19-moved", "dir19")
                };
                std::fs::rename(mnt.join(a), mnt.join(b)).unwrap();
                n += 1;
            }
            if n % 2 == 1 {
                std::fs::rename(mnt.join("dir19-moved"), mnt.join("dir19")).unwrap();
            }
            n
        });
        let out = env.run(&["rewrap", Env::s(&env.cipher), "--batch", "100"]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let s = json(&String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "{s:#} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(s["skipped"], 0, "{s:#}");
        (reader.join().unwrap(), renamer.join().unwrap())
    });
    assert!(reads > 0 && renames > 0, "reads {reads}, renames {renames}");
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut &held, &mut buf).unwrap();
    assert_eq!(buf, files["dir0/file-0"]);
    drop(held);
    // Done: a second run changes nothing, every header names version 2.
    let s = json(&env.ok(&["rewrap", Env::s(&env.cipher)]));
    assert_eq!(s["changed"], 0, "{s:#}");
    assert_eq!(
        versions(&env.cipher).get(&(key.clone(), 2)),
        Some(&1000),
        "{:?}",
        versions(&env.cipher)
    );
    // `kmsfs status` counts the files by key version (recounted after the
    // rewrap, within a few seconds).
    let mut seen = Value::Null;
    for _ in 0..100 {
        let st = json(&env.ok(&["status"]));
        seen = st["mounts"][0]["status"]["key_versions"].clone();
        if seen == serde_json::json!([{"key_id": key, "version": 2, "files": 1000}]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        seen,
        serde_json::json!([{"key_id": key, "version": 2, "files": 1000}])
    );
    // --to-key needs the volume unmounted.
    let out = env.run(&["rewrap", Env::s(&env.cipher), "--to-key", "alias/x"]);
    assert_eq!(out.status.code(), Some(2));
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    check_contents(&env, &files, &[]);
}

/// A new volume with `n` files written through a mount, unmounted again
/// (its mount process gone); the mount point and the files.
fn unmounted_volume(n: usize) -> (Env, PathBuf, BTreeMap<String, Vec<u8>>) {
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let files = fill(&mnt, n);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    (env, mnt, files)
}

/// A file whose content was tampered with is reported and left as it is;
/// the run goes on and rekeys every other file.
#[test]
fn rekey_reports_and_skips_a_tampered_file_and_goes_on() {
    let (env, _mnt, mut files) = unmounted_volume(300);
    let before = headers(&env.cipher);
    // One byte of the first content block of one file flipped.
    let tampered = before.keys().nth(123).unwrap().clone();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tampered)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 128 + 20).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], 128 + 20).unwrap();
    drop(f);
    let tampered_bytes = std::fs::read(&tampered).unwrap();

    let out = env.run(&[
        "rekey",
        Env::s(&env.cipher),
        "--batch",
        "50",
        "--output",
        "json",
    ]);
    let s = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(6), "{s:#}");
    assert_eq!(s["files"], 300, "{s:#}");
    assert_eq!(s["skipped"], 1, "{s:#}");
    assert_eq!(s["changed"], 299, "{s:#}");
    let problems = s["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{s:#}");
    assert!(
        problems[0]["what"]
            .as_str()
            .unwrap()
            .contains("fails authentication"),
        "{s:#}"
    );
    let bad_rel = problems[0]["path"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    assert!(files.remove(&bad_rel).is_some(), "{bad_rel}");
    // The tampered file is left exactly as it was; every other file has a
    // new data key and reads back.
    assert_eq!(std::fs::read(&tampered).unwrap(), tampered_bytes);
    let after = headers(&env.cipher);
    for (p, h) in &after {
        if *p != tampered {
            assert_ne!(h.wrapped_dek, before[p].wrapped_dek, "{}", p.display());
        }
    }
    assert!(!env.cipher.join("kmsfs.rekey").exists());
    check_contents(&env, &files, &[]);
}

/// Holds `flock(1)`'s lock on `dir` (shared or exclusive) until dropped
/// (flock's child `sleep` holds it too: the whole process group is killed).
struct FlockHolder(std::process::Child);

impl FlockHolder {
    fn new(dir: &Path, mode: &str) -> FlockHolder {
        use std::os::unix::process::CommandExt;
        // Killed by drop, also when the wait below fails.
        let holder = FlockHolder(
            Command::new("flock")
                .args([mode, Env::s(dir), "sleep", "120"])
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        // Held once a non-blocking exclusive attempt fails.
        for _ in 0..200 {
            let free = Command::new("flock")
                .args(["-n", "-x", Env::s(dir), "true"])
                .status()
                .unwrap()
                .success();
            if !free {
                return holder;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("flock {mode} {} never held the lock", dir.display());
    }
}

impl Drop for FlockHolder {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// The cipher directory's lock: an offline job refuses a volume whose
/// mount is still starting (a mount takes its shared lock before it shows
/// in /proc/mounts: played by `flock -s`), a mount refuses a volume an
/// offline job holds (`flock -x`), both after waiting a while, and neither
/// changes anything; once the lock is free both work.
#[test]
fn offline_jobs_and_mounts_exclude_each_other_through_the_cipher_directory_lock() {
    let (env, mnt, files) = unmounted_volume(30);
    let before = headers(&env.cipher);

    let starting_mount = FlockHolder::new(&env.cipher, "-s");
    for job in [
        &["rekey", Env::s(&env.cipher)][..],
        &["fsck", Env::s(&env.cipher), "--repair"],
    ] {
        let out = env.run(job);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{job:?}: {err}");
        assert!(
            err.contains("in use by a mount that is starting"),
            "{job:?}: {err}"
        );
    }
    // A plain fsck only reads: it shares the lock with mounts.
    env.ok(&["fsck", Env::s(&env.cipher)]);
    drop(starting_mount);
    assert_eq!(headers(&env.cipher), before);

    let offline_job = FlockHolder::new(&env.cipher, "-x");
    // Unmounts should the refusal below fail.
    let _guard = MountGuard::new(&mnt);
    let out = env.run(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("in use by an offline kmsfs job"), "{err}");
    assert!(!kmsfs::fuse::status::is_mounted(&mnt));
    drop(offline_job);

    env.ok(&["rewrap", Env::s(&env.cipher)]);
    check_contents(&env, &files, &[]);
}
