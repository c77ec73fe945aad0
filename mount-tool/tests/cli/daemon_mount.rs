//! `kmsfs mount` as a client of a real engine daemon: the mount runs as a
//! user who cannot read the store and holds neither it nor its secret; a
//! daemon killed under it turns new opens into EIO (one log line) while
//! open files keep working, and the mount recovers by itself when the
//! daemon is back; an `--allow-other` mount gets data keys for its callers
//! only where the key lets the mount act on their behalf.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::daemon::Daemon;
use crate::engine_env::EngineEnv;
use crate::mount_cli::MountGuard;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSPHRASE: &str = "daemon mount passphrase";
/// The account the unprivileged mount runs as (fusermount3 wants a name).
const MOUNT_USER: &str = "kmsfst-mount";
/// FUSE callers of the `--allow-other` mount.
const UID_ALLOWED: u32 = 1001;
const UID_DENIED: u32 = 1002;

/// A store, its daemon, and a cipher dir, mount point and runtime dir.
struct Setup {
    d: Daemon,
    env: EngineEnv,
    cipher: PathBuf,
    mnt: PathBuf,
    runtime: PathBuf,
}

impl Setup {
    /// The daemon runs as root; `owner` gets the cipher dir, mount point
    /// and runtime dir.
    fn new(owner: u32) -> Setup {
        let env = EngineEnv::new(PASSPHRASE);
        std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = Daemon::start(&env.engine, &env.pass, &env.path("run/engine.sock"));
        let [cipher, mnt, runtime] = ["cipher", "mnt", "runtime"].map(|n| env.path(n));
        for dir in [&cipher, &mnt, &runtime] {
            std::fs::create_dir(dir).unwrap();
            std::os::unix::fs::chown(dir, Some(owner), Some(owner)).unwrap();
        }
        std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mnt = std::fs::canonicalize(&mnt).unwrap();
        Setup {
            d,
            env,
            cipher,
            mnt,
            runtime,
        }
    }

    /// `kmsfs ARGS` as `uid`, with KMSFS_KMS naming the daemon when
    /// `name_engine` (else only a volume's recorded engine can).
    fn kmsfs_with(&self, uid: u32, args: &[&str], name_engine: bool) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in [
            "KMSFS_ENGINE",
            "KMSFS_PASSPHRASE_FILE",
            "KMSFS_KEY_FILE",
            "KMSFS_KMS",
        ] {
            c.env_remove(var);
        }
        if name_engine {
            c.env("KMSFS_KMS", self.d.url());
        }
        c.env("XDG_RUNTIME_DIR", &self.runtime)
            .env("HOME", "/nonexistent")
            .uid(uid)
            .gid(uid)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn kmsfs_ok(&self, uid: u32, args: &[&str]) -> String {
        self.ok(uid, args, true)
    }

    fn ok(&self, uid: u32, args: &[&str], name_engine: bool) -> String {
        let out = self.kmsfs_with(uid, args, name_engine);
        assert!(
            out.status.success(),
            "{args:?} as {uid} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kmsfs init` through the daemon and a background `kmsfs mount`
    /// (reauth 0: every open asks the engine) as `uid`, with `extra` mount
    /// options. The mount is given no engine: the volume recorded it.
    fn mount(&self, uid: u32, extra: &[&str]) -> MountGuard {
        let cipher = self.cipher.to_str().unwrap();
        self.kmsfs_ok(uid, &["init", cipher]);
        let conf = std::fs::read_to_string(self.cipher.join("kmsfs.conf")).unwrap();
        assert!(conf.contains(&self.d.url()), "{conf}");
        let guard = MountGuard::new(&self.mnt);
        let mut args = vec!["mount", cipher, self.mnt.to_str().unwrap()];
        args.extend_from_slice(&["--reauth-secs", "0"]);
        args.extend_from_slice(extra);
        self.ok(uid, &args, false);
        guard
    }

    fn file(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// The mount's log (the background mount process's standard error).
    fn mount_log(&self) -> String {
        let mut text = String::new();
        // $XDG_RUNTIME_DIR/kmsfs, as for every mount.
        for e in std::fs::read_dir(self.runtime.join("kmsfs")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                text.push_str(&std::fs::read_to_string(p).unwrap());
            }
        }
        text
    }
}

/// `sh -c SCRIPT sh ARGS...` as `uid`.
fn sh(uid: u32, script: &str, args: &[&Path]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The pid of the `kmsfs mount --foreground` process serving `mnt`.
fn mount_pid(mnt: &Path) -> u32 {
    let needle = mnt.to_str().unwrap();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&b"--foreground".as_slice()) && args.contains(&needle.as_bytes()) {
            return pid;
        }
    }
    panic!("no mount process for {}", mnt.display());
}

/// The uid of system account `name`, created (no home, no login) when
/// missing; useradd's 9 means another test process created it first.
fn system_account(name: &str) -> u32 {
    let id = || Command::new("id").args(["-u", name]).output().unwrap();
    let out = id();
    if !out.status.success() {
        let st = Command::new("useradd")
            .args(["--system", "-M", "-U", "-s", "/usr/sbin/nologin", name])
            .status()
            .unwrap();
        assert!(st.success() || st.code() == Some(9), "useradd {name}: {st}");
    }
    stdout(&id()).trim().parse().unwrap()
}

/// Runs `f` (which mounts as `uid` and waits until the mount serves)
/// with `uid` allowed to open /dev/fuse: where the device is closed to
/// other users (0600, as in many containers; fusermount3 opens it as the
/// calling user) an ACL entry grants it for that time only, under a lock
/// so that concurrent runs of this test do not take it away from each
/// other. A running mount keeps the descriptors it opened.
fn with_dev_fuse_for<T>(uid: u32, f: impl FnOnce() -> T) -> T {
    use std::os::unix::fs::MetadataExt;
    let open_to_others = std::fs::metadata("/dev/fuse").is_ok_and(|m| m.mode() & 0o006 == 0o006);
    if open_to_others {
        return f();
    }
    let lock = std::env::temp_dir().join("kmsfs-test-dev-fuse.lock");
    let lock = std::fs::File::create(lock).unwrap();
    lock.lock().unwrap();
    let out = Command::new("setfacl")
        .args(["-m", &format!("u:{uid}:rw"), "/dev/fuse"])
        .output()
        .unwrap();
    assert!(out.status.success(), "setfacl: {}", stderr(&out));
    let _revoke = AclGrant(uid);
    f()
}

/// Removes `uid`'s ACL entry from /dev/fuse when dropped.
struct AclGrant(u32);

impl Drop for AclGrant {
    fn drop(&mut self) {
        let _ = Command::new("setfacl")
            .args(["-x", &format!("u:{}", self.0), "/dev/fuse"])
            .status();
    }
}

#[test]
fn a_mount_over_the_daemon_holds_no_store_and_survives_a_daemon_kill() {
    // The mount runs as an unprivileged user who cannot read the store.
    let uid = system_account(MOUNT_USER);
    let mut s = Setup::new(uid);
    let guard = with_dev_fuse_for(uid, || {
        let guard = s.mount(uid, &[]);
        let ls = sh(uid, r#"ls -a "$1""#, &[&s.mnt]);
        assert!(ls.status.success(), "{}", stderr(&ls));
        guard
    });
    let pid = mount_pid(&s.mnt);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(uid.to_string().as_str())
    );
    // No descriptor of the mount process points into the engine directory.
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert!(!target.starts_with(&s.env.engine), "{}", target.display());
    }
    let store = s.env.engine.join("engine.store");
    let cat = sh(uid, r#"cat "$1""#, &[&store]);
    assert!(!cat.status.success(), "the mount's user can read the store");
    assert!(
        stderr(&cat).contains("Permission denied"),
        "{}",
        stderr(&cat)
    );

    let (a, b) = (s.file("a"), s.file("b"));
    let w = sh(uid, r#"echo hello > "$1" && echo world > "$2""#, &[&a, &b]);
    assert!(w.status.success(), "{}", stderr(&w));

    // A reader that opens `a` now and reads it when told (a line on stdin).
    let mut reader = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<"$1" && echo opened && read go && cat <&3"#)
        .arg("sh")
        .arg(&a)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(reader.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "opened\n");

    s.d.kill9();
    // New opens fail with EIO, at once (no hang), twice in one episode.
    for _ in 0..2 {
        let r = sh(uid, r#"cat "$1""#, &[&b]);
        assert!(
            !r.status.success(),
            "opened {} without the engine",
            b.display()
        );
        assert!(stderr(&r).contains("Input/output error"), "{}", stderr(&r));
    }
    // The file opened before keeps working.
    writeln!(reader.stdin.take().unwrap(), "go").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(reader.wait().unwrap().success());
    assert_eq!(rest, "hello\n");

    // The daemon back: the mount recovers without a remount.
    s.d.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = sh(uid, r#"cat "$1""#, &[&b]);
        if r.status.success() {
            assert_eq!(stdout(&r), "world\n");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", stderr(&r));
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = s.mount_log();
    assert_eq!(log.matches("engine is unreachable").count(), 1, "{log}");
    assert_eq!(log.matches("reachable again").count(), 1, "{log}");
    // The user unmounts it (fusermount3 mounted it) and the process ends.
    let mnt = s.mnt.to_str().unwrap().to_string();
    s.ok(uid, &["unmount", &mnt], false);
    guard.wait_for_mount_process();
    assert!(!kmsfs::fuse::status::is_mounted(&s.mnt));
}

#[test]
fn on_behalf_of_needs_the_mounts_permission_on_the_key() {
    let s = Setup::new(0);
    let _guard = s.mount(0, &["--allow-other"]);
    let f = s.file("shared.txt");
    std::fs::write(&f, "for the allowed user\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let key = s.kmsfs_ok(0, &["kms", "list-keys", "--output", "text"]);
    let key = key.split('\t').nth(2).unwrap().trim().to_string();
    let put = |mount_may_act_for_others: bool| {
        let mut statements = vec![
            json!({"Sid": "Mount", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
                   "Action": "kms:*", "Resource": "*"}),
            json!({"Sid": "Reader", "Effect": "Allow",
                   "Principal": {"AWS": format!("uid:{UID_ALLOWED}")},
                   "Action": ["kms:Decrypt"], "Resource": "*"}),
        ];
        if !mount_may_act_for_others {
            statements.push(json!({"Sid": "NoProxy", "Effect": "Deny",
                "Principal": {"AWS": "uid:0"}, "Action": "kms:CallOnBehalfOf", "Resource": "*"}));
        }
        let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
        s.kmsfs_ok(
            0,
            &[
                "kms",
                "put-key-policy",
                "--key-id",
                &key,
                "--policy",
                &policy,
            ],
        );
    };
    put(true);
    let r = sh(UID_ALLOWED, r#"cat "$1""#, &[&f]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(stdout(&r), "for the allowed user\n");
    let r = sh(UID_DENIED, r#"cat "$1""#, &[&f]);
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    // The audit record names the caller and the mount that asked for it.
    let shown = s.env.ok(&[
        "audit",
        "show",
        "--principal",
        &format!("uid:{UID_ALLOWED}"),
        "--event",
        "Decrypt",
    ]);
    let rec: serde_json::Value = serde_json::from_str(shown.lines().next().unwrap()).unwrap();
    assert!(
        rec["userIdentity"]["invokedBy"]
            .as_str()
            .unwrap()
            .ends_with(":0")
            || rec["userIdentity"]["invokedBy"] == "user:root",
        "{rec}"
    );
    // Without kms:CallOnBehalfOf for the mount, the allowed user is
    // refused too (at the next open: reauth 0), and the refusal audited.
    put(false);
    let r = sh(UID_ALLOWED, r#"cat "$1""#, &[&f]);
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    let denied = s.env.ok(&[
        "audit",
        "show",
        "--principal",
        &format!("uid:{UID_ALLOWED}"),
        "--errors-only",
    ]);
    assert!(denied.contains("kms:CallOnBehalfOf"), "{denied}");
    // The mount's own user needs no such permission for itself.
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "for the allowed user\n"
    );
}

/// `kmsfs kms ARGS` as root through the daemon; the JSON answer.
fn kms_json(s: &Setup, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["kms"];
    all.extend_from_slice(args);
    serde_json::from_str(&s.kmsfs_ok(0, &all)).unwrap()
}

fn put_policy(s: &Setup, key: &str, statements: serde_json::Value) {
    let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    s.kmsfs_ok(
        0,
        &[
            "kms",
            "put-key-policy",
            "--key-id",
            key,
            "--policy",
            &policy,
        ],
    );
}

#[test]
fn a_write_only_volume_over_the_daemon_is_read_only_by_who_may_decrypt() {
    // The writer: an unprivileged mount whose key policies give it the
    // names key (purpose names only) and the RSA key's public half, not
    // Decrypt with the RSA key. Root, the reader, may do everything.
    let uid = system_account(MOUNT_USER);
    let s = Setup::new(uid);
    let master = kms_json(&s, &["create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let rsa = kms_json(
        &s,
        &[
            "create-key",
            "--key-spec",
            "RSA_3072",
            "--key-usage",
            "ENCRYPT_DECRYPT",
        ],
    )["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let writer = format!("uid:{uid}");
    put_policy(
        &s,
        &master,
        json!([
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "WriterDescribe", "Effect": "Allow", "Principal": {"AWS": writer},
             "Action": "kms:DescribeKey", "Resource": "*"},
            {"Sid": "WriterNames", "Effect": "Allow", "Principal": {"AWS": writer},
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:kmsfs:purpose": "names"}}}
        ]),
    );
    put_policy(
        &s,
        &rsa,
        json!([
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Writer", "Effect": "Allow", "Principal": {"AWS": writer},
             "Action": ["kms:GetPublicKey", "kms:DescribeKey"], "Resource": "*"}
        ]),
    );
    let cipher = s.cipher.to_str().unwrap().to_string();
    let mnt = s.mnt.to_str().unwrap().to_string();
    s.kmsfs_ok(
        uid,
        &[
            "init",
            &cipher,
            "--key-id",
            &master,
            "--write-only-key",
            &rsa,
        ],
    );
    let guard = with_dev_fuse_for(uid, || {
        let guard = MountGuard::new(&s.mnt);
        s.ok(uid, &["mount", &cipher, &mnt], false);
        guard
    });
    let report = s.file("report.txt");
    let w = sh(
        uid,
        r#"printf 'quarterly numbers\n' > "$1" && printf 'more\n' >> "$1" && ls "$2""#,
        &[&report, &s.mnt],
    );
    assert!(w.status.success(), "{}", stderr(&w));
    assert_eq!(stdout(&w), "report.txt\n");
    let r = sh(uid, r#"cat "$1""#, &[&report]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    s.ok(uid, &["unmount", &mnt], false);
    guard.wait_for_mount_process();
    // The refusal is audited: the writer's Decrypt with the RSA key.
    let denied = s
        .env
        .ok(&["audit", "show", "--principal", &writer, "--errors-only"]);
    let rec: serde_json::Value = serde_json::from_str(denied.lines().next().unwrap()).unwrap();
    assert_eq!(rec["eventName"], "Decrypt", "{denied}");
    assert_eq!(rec["errorCode"], "AccessDeniedException", "{denied}");
    assert_eq!(rec["resources"][0]["ARN"], rsa.as_str(), "{denied}");

    // The reader: root's mount over the same daemon (the runtime directory
    // becomes root's: a mount refuses one owned by another user).
    for e in walk(&s.runtime) {
        std::os::unix::fs::lchown(&e, Some(0), Some(0)).unwrap();
    }
    let guard = MountGuard::new(&s.mnt);
    s.ok(0, &["mount", &cipher, &mnt, "--read-only"], false);
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "quarterly numbers\nmore\n"
    );
    s.ok(0, &["unmount", &mnt], false);
    guard.wait_for_mount_process();
}

/// `dir` and everything below it.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}
