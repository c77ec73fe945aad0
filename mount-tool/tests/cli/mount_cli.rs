//! `kmsfs init`, `kmsfs mount` (in the background), `kmsfs unmount` and
//! `kmsfs mount --init` on the real binary and a real FUSE mount, with the
//! mount process's engine calls checked in `kmsfs audit show` and
//! `kmsfs audit verify`. Every mount is unmounted by a guard, also when a
//! test fails.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const PASSPHRASE: &str = "mount cli passphrase";

pub(crate) struct Env {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) engine: PathBuf,
    pub(crate) pass: PathBuf,
    pub(crate) cipher: PathBuf,
    pub(crate) mnt: PathBuf,
}

impl Env {
    pub(crate) fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let pass = tmp.path().join("passphrase");
        std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
        Env {
            engine: tmp.path().join("engine"),
            cipher: tmp.path().join("cipher"),
            mnt: tmp.path().join("mnt"),
            pass,
            tmp,
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
            c.env_remove(var);
        }
        c.arg("--engine")
            .arg(&self.engine)
            .arg("--passphrase-file")
            .arg(&self.pass)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// An engine store with a cheap Argon2id cost and a volume in `cipher`;
    /// returns `kmsfs init`'s output.
    pub(crate) fn init_volume(&self) -> String {
        self.ok(&[
            "kms",
            "init-engine",
            "--kdf-memory-kib",
            "8",
            "--kdf-iterations",
            "1",
        ]);
        self.ok(&["init", Env::s(&self.cipher)])
    }

    /// `init_volume`, then a background mount on `mnt` (canonicalized);
    /// the guard unmounts it on drop.
    pub(crate) fn mounted(&self) -> (PathBuf, MountGuard) {
        self.init_volume();
        std::fs::create_dir(&self.mnt).unwrap();
        let mnt = std::fs::canonicalize(&self.mnt).unwrap();
        let guard = MountGuard::new(&mnt);
        self.ok(&["mount", Env::s(&self.cipher), Env::s(&mnt)]);
        (mnt, guard)
    }

    pub(crate) fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }
}

/// Unmounts `mnt` on drop (also when the test panics) and waits for the
/// background mount process to exit, so that its audit trail is closed.
pub(crate) struct MountGuard {
    mnt: PathBuf,
}

impl MountGuard {
    pub(crate) fn new(mnt: &Path) -> MountGuard {
        MountGuard {
            mnt: mnt.to_path_buf(),
        }
    }

    /// Waits until no `kmsfs mount` process serves this mount point.
    pub(crate) fn wait_for_mount_process(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while mount_process_alive(&self.mnt) {
            assert!(
                Instant::now() < deadline,
                "the mount process did not exit after unmount"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if kmsfs::fuse::status::is_mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
        }
        if kmsfs::fuse::status::is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Whether a process whose command line names `mnt` and `--foreground` runs.
fn mount_process_alive(mnt: &Path) -> bool {
    let needle = mnt.to_str().unwrap();
    std::fs::read_dir("/proc").unwrap().any(|e| {
        // Processes come and go while this runs.
        let Ok(e) = e else { return false };
        let p = e.path();
        let Ok(cmdline) = std::fs::read(p.join("cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.contains(&needle.as_bytes()) && args.contains(&&b"--foreground"[..])
    })
}

fn records(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The audit trail holds a GenerateDataKey under the context of `path`.
fn assert_generate_data_key_for(env: &Env, path: &str) {
    let gdk = records(&env.ok(&["audit", "show", "--event", "GenerateDataKey"]));
    assert!(
        gdk.iter()
            .any(|r| r["requestParameters"]["encryptionContext"]["kmsfs:path"] == path),
        "no GenerateDataKey for {path}: {gdk:#?}"
    );
}

fn assert_verifies(env: &Env) {
    let v = env.ok(&["audit", "verify", "--output", "text"]);
    assert!(v.trim_end().ends_with("valid"), "{v}");
}

#[test]
fn mount_process_audits_the_calls_it_makes_for_the_filesystem() {
    let env = Env::new();
    let init: Value = serde_json::from_str(&env.init_volume()).unwrap();
    let volume_id = init["volume_id"].as_str().unwrap().to_string();
    let key_id = init["key_id"].as_str().unwrap().to_string();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();

    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    assert!(kmsfs::fuse::status::is_mounted(&mnt));
    std::fs::create_dir(mnt.join("docs")).unwrap();
    let content = b"written through the mount\n".repeat(300);
    std::fs::write(mnt.join("docs/report.txt"), &content).unwrap();
    assert_eq!(std::fs::read(mnt.join("docs/report.txt")).unwrap(), content);
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    assert!(!kmsfs::fuse::status::is_mounted(&mnt));

    let gdk = records(&env.ok(&["audit", "show", "--event", "GenerateDataKey"]));
    let rec = gdk
        .iter()
        .find(|r| r["requestParameters"]["encryptionContext"]["kmsfs:path"] == "/docs/report.txt")
        .unwrap_or_else(|| panic!("no GenerateDataKey for /docs/report.txt in {gdk:#?}"));
    assert_eq!(
        rec["requestParameters"]["encryptionContext"]["kmsfs:volume"],
        volume_id.as_str()
    );
    assert_eq!(
        rec["resources"][0]["ARN"],
        format!("arn:aws:kms:local:000000000000:key/{key_id}")
    );
    // Made for the FUSE caller: this test process, named as the resolver
    // names it (`user:NAME` when the uid has an account).
    assert_eq!(
        rec["userIdentity"]["principal"],
        kms_engine::Principal::current_process().to_string()
    );
    assert!(rec.get("errorCode").is_none(), "{rec}");
    // Opening the volume unwrapped its names key: audited too.
    let decrypts = records(&env.ok(&["audit", "show", "--event", "Decrypt"]));
    assert!(!decrypts.is_empty());
    assert_verifies(&env);
}

#[test]
fn mount_init_sets_everything_up_in_one_command() {
    let env = Env::new();
    // Neither the engine store, nor the cipher dir, nor the mount point exist.
    let mnt = env.tmp.path().join("mnt-new");
    let guard = MountGuard::new(&mnt);
    let args = [
        "mount",
        "--init",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
        Env::s(&env.cipher),
        Env::s(&mnt),
    ];
    let out = env.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("created the engine store"), "{err}");
    assert!(err.contains("created volume"), "{err}");
    assert!(env.engine.join("engine.store").is_file());
    assert!(env.cipher.join("kmsfs.conf").is_file());
    let mnt = std::fs::canonicalize(&mnt).unwrap();
    assert!(kmsfs::fuse::status::is_mounted(&mnt));
    std::fs::write(mnt.join("hello.txt"), b"hello").unwrap();
    assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello");
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    // Run again: everything exists, so it only mounts; the file is there.
    let store = std::fs::read(env.engine.join("engine.store")).unwrap();
    let conf = std::fs::read(env.cipher.join("kmsfs.conf")).unwrap();
    let out = env.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("created"), "{err}");
    assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello");
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    assert_eq!(std::fs::read(env.cipher.join("kmsfs.conf")).unwrap(), conf);
    assert_eq!(
        std::fs::read(env.engine.join("engine.store"))
            .unwrap()
            .len(),
        store.len()
    );
    assert_generate_data_key_for(&env, "/hello.txt");
    assert_verifies(&env);
}

#[test]
fn mount_init_refuses_a_non_empty_directory_without_a_volume() {
    let env = Env::new();
    std::fs::create_dir(&env.cipher).unwrap();
    std::fs::write(env.cipher.join("precious.txt"), b"keep me").unwrap();
    let mnt = env.tmp.path().join("mnt-refused");
    let _guard = MountGuard::new(&mnt);
    let out = env.run(&[
        "mount",
        "--init",
        "--kdf-memory-kib",
        "8",
        Env::s(&env.cipher),
        Env::s(&mnt),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not empty"), "{err}");
    // Nothing was created: no engine store, no mount point, the file untouched.
    assert!(!env.engine.exists());
    assert!(!mnt.exists());
    assert_eq!(
        std::fs::read(env.cipher.join("precious.txt")).unwrap(),
        b"keep me"
    );
}

/// `--audit-flush-ms`: a mount whose audit trail flushes in batches still
/// records every open (with `--reauth-secs 0`, one Decrypt per open) and
/// leaves a trail that verifies.
#[test]
fn batched_audit_mount_records_every_open_and_verifies() {
    let env = Env::new();
    let guard = MountGuard::new(&env.mnt);
    env.ok(&[
        "mount",
        "--init",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
        "--reauth-secs",
        "0",
        "--audit-flush-ms",
        "20",
        Env::s(&env.cipher),
        Env::s(&env.mnt),
    ]);
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    for i in 0..5 {
        std::fs::write(mnt.join(format!("f{i}")), b"x").unwrap();
    }
    let opens = 20;
    for _ in 0..opens / 5 {
        for i in 0..5 {
            assert_eq!(std::fs::read(mnt.join(format!("f{i}"))).unwrap(), b"x");
        }
    }
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    drop(guard);

    let decrypts: Vec<Value> = records(&env.ok(&["audit", "show", "--event", "Decrypt"]))
        .into_iter()
        .filter(|r| {
            r["requestParameters"]["encryptionContext"]["kmsfs:path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/f"))
        })
        .collect();
    // The cache is off: each open of an existing file asked the engine.
    assert!(decrypts.len() >= opens, "{} Decrypts", decrypts.len());
    assert_verifies(&env);
}

#[test]
fn fail_audit_flush_ms_must_be_a_number() {
    let env = Env::new();
    let out = env.run(&[
        "mount",
        "--audit-flush-ms",
        "soon",
        "/nonexistent-c",
        "/nonexistent-m",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audit-flush-ms"));
}

/// A background mount whose passphrase is wrong exits with the code for a
/// wrong passphrase (3), as a foreground mount does, prints the engine's one
/// line, mounts nothing and leaves the store as it was.
#[test]
fn background_mount_with_a_wrong_passphrase_exits_3() {
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let _guard = MountGuard::new(&env.mnt);
    let store = std::fs::read(env.engine.join("engine.store")).unwrap();
    std::fs::write(&env.pass, "not the passphrase\n").unwrap();
    for extra in [&[][..], &["--foreground"][..]] {
        let mut args = vec!["mount", Env::s(&env.cipher), Env::s(&env.mnt)];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.to_lowercase().contains("passphrase"), "{args:?}: {err}");
        assert!(!kmsfs::fuse::status::is_mounted(&env.mnt));
    }
    assert_eq!(
        std::fs::read(env.engine.join("engine.store")).unwrap(),
        store
    );
}

/// A running mount keeps working when the engine's root key changes under
/// it: its engine holds the store key, not the passphrase. After the change
/// (and another process's write to the store under the new header) it
/// still makes new files; a remount needs the new passphrase.
#[test]
fn a_running_mount_survives_a_root_key_change() {
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    std::fs::write(mnt.join("before.txt"), b"written before the change").unwrap();

    let new_pass = env.tmp.path().join("new-passphrase");
    std::fs::write(&new_pass, "the new engine passphrase\n").unwrap();
    env.ok(&[
        "kms",
        "change-root-key",
        "--new-passphrase-file",
        Env::s(&new_pass),
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
    ]);
    // The old passphrase (env.pass) no longer opens the store.
    assert_eq!(env.run(&["kms", "list-keys"]).status.code(), Some(3));
    std::fs::copy(&new_pass, &env.pass).unwrap();
    // Another process writes the store under the new header.
    env.ok(&["kms", "create-key"]);
    // Let the mount's engine pass its refresh interval (1 s), so that its
    // next call re-reads the store from disk.
    std::thread::sleep(Duration::from_millis(1200));
    let content = b"written after the change\n".repeat(100);
    std::fs::write(mnt.join("after.txt"), &content).unwrap();
    assert_eq!(std::fs::read(mnt.join("after.txt")).unwrap(), content);
    assert_eq!(
        std::fs::read(mnt.join("before.txt")).unwrap(),
        b"written before the change"
    );
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();

    // Remounted with the new passphrase: both files are there.
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    assert_eq!(std::fs::read(mnt.join("after.txt")).unwrap(), content);
    assert_eq!(
        std::fs::read(mnt.join("before.txt")).unwrap(),
        b"written before the change"
    );
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    // The mount's calls after the change were audited like the others.
    assert_generate_data_key_for(&env, "/after.txt");
    assert_verifies(&env);
}

/// The mount process holds data keys and the engine's keys in memory: it
/// runs with core dumps off (RLIMIT_CORE 0), as every `kmsfs` command does;
/// and it may hold a backing file per open file, so its open-file limit is
/// raised to the hard limit (started here with a soft limit of 256).
#[test]
fn mount_process_limits() {
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -n 256 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_kmsfs"))
        .arg("--engine")
        .arg(&env.engine)
        .arg("--passphrase-file")
        .arg(&env.pass)
        .args(["mount", Env::s(&env.cipher), Env::s(&mnt)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The status file is written once a second from when the mount serves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let status: Value = serde_json::from_str(&env.ok(&["status"])).unwrap();
        let pid = status["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountpoint"] == Env::s(&mnt))
            .and_then(|m| m["status"]["pid"].as_u64());
        match pid {
            Some(pid) => break pid,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("the mount is not listed with its pid: {status}"),
        }
    };
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limit = |name: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        let rest = line[name.len()..].split_whitespace();
        rest.take(2).map(str::to_owned).collect()
    };
    assert_eq!(limit("Max core file size"), ["0", "0"], "{limits}");
    let files = limit("Max open files");
    assert_eq!(files[0], files[1], "{limits}");
    assert_ne!(files[0], "256", "{limits}");
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
}

/// The audit path setting is kept in the engine store: a mount started after
/// `audit paths hmac` writes no plaintext path (and no encrypted name) into
/// the trail, and `audit show --path` still finds the file's records.
#[test]
fn a_mount_follows_the_stored_audit_path_setting() {
    let env = Env::new();
    env.init_volume();
    env.ok(&["audit", "paths", "hmac"]);
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    env.ok(&["mount", Env::s(&env.cipher), Env::s(&mnt)]);
    std::fs::create_dir(mnt.join("payroll")).unwrap();
    std::fs::write(mnt.join("payroll/bonus-list.txt"), b"names\n").unwrap();
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    for entry in std::fs::read_dir(env.engine.join("audit")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"payroll"),
            "a path reached the audit trail"
        );
    }
    let found = records(&env.ok(&["audit", "show", "--path", "/payroll/bonus-list.txt"]));
    assert!(
        found.iter().any(|r| r["eventName"] == "GenerateDataKey"),
        "{found:#?}"
    );
    assert!(found.iter().all(|r| {
        let p = &r["requestParameters"]["encryptionContext"]["kmsfs:path"];
        p.as_str().is_some_and(|s| s.starts_with("hmac-sha256:"))
    }));
    assert_verifies(&env);
}

/// The `findmnt` SOURCE and FSTYPE of the mount at `mnt`.
fn findmnt(mnt: &Path) -> String {
    let out = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE,FSTYPE", "--mountpoint"])
        .arg(mnt)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn two_volumes_show_their_cipher_directory_and_type_fuse_kmsfs() {
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    // A second volume of the same engine, with a space in both paths.
    let cipher2 = env.tmp.path().join("cipher two");
    let mnt2 = env.tmp.path().join("mnt two");
    std::fs::create_dir(&mnt2).unwrap();
    env.ok(&["init", Env::s(&cipher2)]);
    let guard2 = MountGuard::new(&mnt2);
    env.ok(&["mount", Env::s(&cipher2), Env::s(&mnt2)]);
    let cipher = std::fs::canonicalize(&env.cipher).unwrap();
    let shown = findmnt(&mnt);
    assert_eq!(shown, format!("{} fuse.kmsfs", cipher.display()));
    assert_eq!(findmnt(&mnt2), format!("{} fuse.kmsfs", cipher2.display()));
    // status lists both, with their sources.
    let v: Value = serde_json::from_str(&env.ok(&["--output", "json", "status"])).unwrap();
    let mut listed: Vec<(String, String)> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountpoint"].as_str().unwrap().to_string(),
                m["source"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(mp, _)| mp.starts_with(Env::s(env.tmp.path())))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (Env::s(&mnt).to_string(), Env::s(&cipher).to_string()),
            (Env::s(&mnt2).to_string(), Env::s(&cipher2).to_string()),
        ]
    );
    // unmount finds a mount by its mount point, whatever its source.
    env.ok(&["unmount", Env::s(&mnt2)]);
    guard2.wait_for_mount_process();
    assert!(!kmsfs::fuse::status::is_mounted(&mnt2));
    assert!(kmsfs::fuse::status::is_mounted(&mnt));
    std::fs::write(mnt.join("f"), b"still served").unwrap();
    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
}

/// The background mount's runtime directory (here `KMSFS_RUNTIME_DIR`,
/// as predictable as `/tmp/kmsfs-<uid>`): symlinks planted at the log's
/// and the status file's names are replaced, never followed, and a
/// directory owned by another user is refused before anything is written.
#[test]
fn background_mount_never_writes_through_its_runtime_directory() {
    use std::os::unix::fs::{MetadataExt, symlink};
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let run_dir = env.tmp.path().join("run");
    let victim = env.tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let status_name = kmsfs::fuse::status::status_file_for(&mnt);
    let status_name = status_name.file_name().unwrap();
    let log_name = Path::new(status_name).with_extension("log");
    let mount = || {
        Command::new(env!("CARGO_BIN_EXE_kmsfs"))
            .env("KMSFS_RUNTIME_DIR", &run_dir)
            .arg("--engine")
            .arg(&env.engine)
            .arg("--passphrase-file")
            .arg(&env.pass)
            .args(["mount", Env::s(&env.cipher), Env::s(&mnt)])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // Another user's directory: refused with one line naming it.
    std::fs::create_dir(&run_dir).unwrap();
    std::os::unix::fs::chown(&run_dir, Some(4242), None).unwrap();
    let out = mount();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("owned by uid 4242"), "{err}");
    assert!(!kmsfs::fuse::status::is_mounted(&mnt));
    std::fs::remove_dir(&run_dir).unwrap();

    // Our own directory, group-writable, with symlinks at both names.
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(
        &run_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    symlink(&victim, run_dir.join(status_name)).unwrap();
    symlink(&victim, run_dir.join(&log_name)).unwrap();
    let guard = MountGuard::new(&mnt);
    let out = mount();
    assert!(out.status.success(), "{out:?}");
    assert!(kmsfs::fuse::status::is_mounted(&mnt));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::metadata(&run_dir).unwrap().mode() & 0o777, 0o700);
    // The mount process writes its status file once a second from when it
    // serves: it may not have replaced the planted symlink yet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::symlink_metadata(run_dir.join(status_name)).is_ok_and(|m| m.is_symlink())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for name in [Path::new(status_name), log_name.as_path()] {
        let m = std::fs::symlink_metadata(run_dir.join(name)).unwrap();
        assert!(m.is_file(), "{}", name.display());
        assert_eq!(m.mode() & 0o777, 0o600, "{}", name.display());
    }
    drop(guard);
}
