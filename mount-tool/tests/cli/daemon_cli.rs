//! `kmsfs engine serve` as a real process: it holds its store alone (a
//! second daemon and embedded commands are refused with one line), replaces
//! a dead daemon's socket, answers every request it ran before stopping on
//! SIGTERM, and serves several uids under one key policy, the kernel naming
//! each caller (processes that cannot read the store).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::daemon::Daemon;
use crate::engine_env::EngineEnv;
use kms_engine::KmsError;
use kms_engine::service::{Client, Transport};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PASSPHRASE: &str = "daemon cli passphrase";
/// Unprivileged uids (no account needed).
const UID_ALLOWED: u32 = 1001;
const UID_DENIED: u32 = 1002;

/// An engine store, its daemon on `<tmp>/run/engine.sock`, and the temp
/// dir open for other uids to reach the socket (the store stays 0700).
fn served() -> (EngineEnv, Daemon) {
    let env = EngineEnv::new(PASSPHRASE);
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start(&env.engine, &env.pass, &env.path("run/engine.sock"));
    (env, d)
}

/// `kmsfs ARGS` through the daemon only (no engine directory, no secret),
/// as `uid` when given.
fn via(d: &Daemon, uid: Option<u32>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
    for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
        c.env_remove(var);
    }
    c.env("KMSFS_KMS", d.url()).env("HOME", "/nonexistent");
    if let Some(uid) = uid {
        c.uid(uid).gid(uid);
    }
    c.args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_second_daemon_and_embedded_commands_are_refused_in_one_line() {
    let (env, mut d) = served();
    // A second daemon on the same store, on another socket.
    let other = env.path("run/other.sock");
    let f = Daemon::try_start(&env.engine, &env.pass, &other, &[])
        .err()
        .expect("a second daemon on the same store must be refused");
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("served by an engine daemon"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains(&d.url()), "{}", f.stderr);
    assert!(!other.exists(), "the refused daemon left a socket");
    // An embedded command on the store: refused, pointing at the daemon.
    let out = env.run(&["kms", "list-keys"]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("--kms {}", d.url())), "{err}");
    // Another store's daemon on this socket: refused while it lives.
    let env2 = EngineEnv::new(PASSPHRASE);
    let f = Daemon::try_start(&env2.engine, &env2.pass, &d.socket, &[])
        .err()
        .expect("a live socket must not be taken over");
    assert!(f.stderr.contains("already listens"), "{}", f.stderr);
    // Killed, the daemon leaves its socket file: the next one replaces it.
    d.kill9();
    assert!(d.socket.exists());
    d.restart();
    ok_json(via(&d, None, &["kms", "list-keys"]));
    // Stopped cleanly: exit 0, socket gone, the store opens embedded again.
    assert!(d.terminate().success(), "{}", d.stderr());
    assert!(!d.socket.exists());
    ok_json(env.run(&["kms", "list-keys"]));
}

#[test]
fn sigterm_answers_every_request_the_daemon_ran() {
    let (env, mut d) = served();
    let client = Arc::new(Client::connect(&d.socket).unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (client, answered) = (client.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let req = json!({"Description": format!("t{t} k{i}")});
                    match client.call("CreateKey", req, None) {
                        Ok(_) => answered.fetch_add(1, Ordering::SeqCst),
                        Err(KmsError::Unavailable(_)) => return,
                        Err(e) => panic!("CreateKey failed: {e}"),
                    };
                }
            })
        })
        .collect();
    // Store writes (each fsynced) keep several creations in flight.
    while answered.load(Ordering::SeqCst) < 20 {
        std::thread::yield_now();
    }
    let status = d.terminate();
    for t in threads {
        t.join().unwrap();
    }
    assert!(status.success(), "{status:?}: {}", d.stderr());
    assert!(d.stderr().contains("finishing the requests in flight"));
    // Every key in the store is one whose creation was answered: none ran
    // with its response dropped.
    let keys: Value = serde_json::from_str(&env.ok(&["kms", "list-keys"])).unwrap();
    let n = keys["Keys"].as_array().unwrap().len();
    assert_eq!(n, answered.load(Ordering::SeqCst));
    env.ok(&["audit", "verify"]);
}

#[test]
fn two_uids_one_policy_the_kernel_names_each_caller() {
    let (env, d) = served();
    let key = ok_json(via(&d, None, &["kms", "create-key"]))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "user", "Effect": "Allow", "Principal": {"AWS": format!("uid:{UID_ALLOWED}")},
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*"}
        ]
    });
    ok_json(via(
        &d,
        None,
        &[
            "kms",
            "put-key-policy",
            "--key-id",
            &key,
            "--policy",
            &policy.to_string(),
        ],
    ));
    let gen_args = [
        "kms",
        "generate-data-key",
        "--key-id",
        &key,
        "--key-spec",
        "AES_256",
    ];
    // The allowed uid gets a data key, without any access to the store.
    let store = env.engine.join("engine.store");
    let cat = Command::new("cat")
        .arg(&store)
        .uid(UID_ALLOWED)
        .gid(UID_ALLOWED)
        .output()
        .unwrap();
    assert!(
        !cat.status.success(),
        "uid {UID_ALLOWED} can read the store"
    );
    let dk = ok_json(via(&d, Some(UID_ALLOWED), &gen_args));
    assert_eq!(
        dk["KeyId"].as_str().unwrap().rsplit('/').next(),
        Some(key.as_str())
    );
    // The other uid is denied: exit 4, one line, AccessDeniedException.
    let out = via(&d, Some(UID_DENIED), &gen_args);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(err.contains(&format!("uid:{UID_DENIED}")), "{err}");
    // A client cannot claim to be someone else: the audit trail names the
    // kernel's uid for each call.
    let denied = env.ok(&[
        "audit",
        "show",
        "--principal",
        &format!("uid:{UID_DENIED}"),
        "--errors-only",
    ]);
    assert_eq!(denied.lines().count(), 1, "{denied}");
    let allowed = env.ok(&[
        "audit",
        "show",
        "--principal",
        &format!("uid:{UID_ALLOWED}"),
        "--event",
        "GenerateDataKey",
    ]);
    assert_eq!(allowed.lines().count(), 1, "{allowed}");
    // `policy check` gives the same explanation through the daemon.
    let check = [
        "policy",
        "check",
        "--key-id",
        &key,
        "--principal",
        "uid:1002",
        "--action",
        "kms:Decrypt",
        "--output",
        "text",
    ];
    let through = via(&d, None, &check);
    assert!(through.status.success());
    let text = String::from_utf8(through.stdout).unwrap();
    assert!(text.contains("DENY"), "{text}");
    // ... and is refused to a caller who may not read the key's policy.
    let out = via(&d, Some(UID_ALLOWED), &check);
    assert_eq!(out.status.code(), Some(4));
}

/// Stops a daemon started with `--background` (its pid from the store's
/// holder file) when dropped.
struct BackgroundDaemon(Option<i32>);

impl Drop for BackgroundDaemon {
    fn drop(&mut self) {
        let Some(pid) = self.0 else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..500 {
            if nix::sys::signal::kill(pid, None).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn background_returns_once_serving_and_reports_a_failed_start() {
    let env = EngineEnv::new(PASSPHRASE);
    let socket = env.path("run/engine.sock");
    let serve = |extra: &[(&str, &std::path::Path)], pass: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in [
            "KMSFS_ENGINE",
            "KMSFS_PASSPHRASE_FILE",
            "KMSFS_KEY_FILE",
            "KMSFS_KMS",
        ] {
            c.env_remove(var);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c.arg("--engine").arg(&env.engine);
        if pass {
            c.arg("--passphrase-file").arg(&env.pass);
        }
        c.args(["engine", "serve", "--background", "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A wrong secret: the command exits with the daemon's code and line.
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let out = serve(&[("KMSFS_PASSPHRASE_FILE", &wrong)], false);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("IncorrectPassphraseException"), "{err}");
    // The secret as a systemd credential; the command returns once the
    // socket answers.
    let creds = env.path("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(&env.pass, creds.join("kmsfs-engine-passphrase")).unwrap();
    let out = serve(&[("CREDENTIALS_DIRECTORY", &creds)], false);
    let holder = std::fs::read_to_string(env.engine.join("engine.holder")).unwrap_or_default();
    let _stop = BackgroundDaemon(
        holder
            .strip_prefix("pid ")
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok()),
    );
    assert!(out.status.success(), "{out:?}");
    let client = Client::connect(&socket).unwrap();
    let keys = client.call("ListKeys", json!({}), None).unwrap();
    assert_eq!(keys["Keys"], json!([]));
    let log = std::fs::read_to_string(socket.with_extension("log")).unwrap();
    assert!(log.contains("serving"), "{log}");
}
