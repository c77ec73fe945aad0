//! A real `kmsfs engine serve` process against bad clients: 1,000 idle
//! connections to a daemon started with a soft limit of 512 open files,
//! a client process killed with requests in flight,
//! a client stopping mid-frame, and garbage on the socket. Each gets an
//! error or a closed connection, the daemon keeps serving the CLI, and the
//! store and the audit trail keep every call that ran.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::daemon::Daemon;
use crate::engine_env::EngineEnv;
use kms_engine::service::frame::{self, Request, Response};
use kms_engine::service::{Client, Transport};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSPHRASE: &str = "daemon bad input passphrase";

fn served() -> (EngineEnv, Daemon) {
    let env = EngineEnv::new(PASSPHRASE);
    let d = Daemon::start(&env.engine, &env.pass, &env.path("run/engine.sock"));
    (env, d)
}

/// `kmsfs --kms unix://SOCKET ARGS`.
fn via(d: &Daemon, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
    for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
        c.env_remove(var);
    }
    c.env("KMSFS_KMS", d.url())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn via_ok(d: &Daemon, args: &[&str]) -> String {
    let out = via(d, args);
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn key_count(d: &Daemon) -> usize {
    let keys: Value = serde_json::from_str(&via_ok(d, &["kms", "list-keys"])).unwrap();
    keys["Keys"].as_array().unwrap().len()
}

/// The audit records of `event` the daemon wrote (read from its trail
/// files, as an administrator does while it runs).
fn audited(env: &EngineEnv, event: &str) -> usize {
    env.ok(&["audit", "show", "--event", event]).lines().count()
}

fn list_keys(id: u64) -> Vec<u8> {
    Request {
        id,
        operation: "ListKeys".into(),
        on_behalf_of: None,
        body: json!({}),
    }
    .encode()
    .unwrap()
}

/// Reads one response frame (failing after 30 s instead of hanging);
/// `None` at end of file.
fn read_response(s: &mut UnixStream) -> Option<Response> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut prefix = [0u8; frame::LEN_PREFIX];
    s.read_exact(&mut prefix).ok()?;
    let len = frame::frame_len(prefix, frame::MAX_FRAME_LEN).unwrap();
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).unwrap();
    Some(Response::decode(&buf).unwrap())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raises this process's soft open-file limit to at least `n`.
fn raise_nofile(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < n {
        setrlimit(Resource::RLIMIT_NOFILE, n.min(hard), hard).unwrap();
    }
}

/// Started with a soft limit of 512 open files (below the connections it
/// must hold; systemd's default is 1,024), the daemon raises it.
#[test]
fn a_thousand_idle_connections_to_a_daemon_started_with_512_files() {
    let env = EngineEnv::new(PASSPHRASE);
    let socket = env.path("run/engine.sock");
    let d = Daemon::start_with_soft_nofile(&env.engine, &env.pass, &socket, 512);
    raise_nofile(4096);
    let idle: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    // Every one of them accepted: the last one is answered.
    let mut last = idle[999].try_clone().unwrap();
    last.write_all(&list_keys(9)).unwrap();
    assert_eq!(read_response(&mut last).unwrap().id(), 9);
    // And the CLI, a new client, is served.
    via_ok(&d, &["kms", "create-key"]);
    assert_eq!(key_count(&d), 1);
    let mut first = idle[0].try_clone().unwrap();
    first.write_all(&list_keys(3)).unwrap();
    assert_eq!(read_response(&mut first).unwrap().id(), 3);
}

#[test]
fn a_client_killed_with_requests_in_flight_loses_nothing() {
    let (env, mut d) = served();
    // 60 CreateKey requests (each a store write and an audit record) sent
    // at once by another process, killed as soon as they are written.
    let mut burst = Vec::new();
    for id in 1..=60u64 {
        let req = Request {
            id,
            operation: "CreateKey".into(),
            on_behalf_of: None,
            body: json!({"Description": format!("burst {id}")}),
        };
        burst.extend(req.encode().unwrap());
    }
    let burst_file = env.path("burst");
    std::fs::write(&burst_file, &burst).unwrap();
    let script = "import socket, sys, time\n\
                  s = socket.socket(socket.AF_UNIX)\n\
                  s.connect(sys.argv[1])\n\
                  s.sendall(open(sys.argv[2], 'rb').read())\n\
                  print('sent', flush=True)\n\
                  time.sleep(600)\n";
    let mut client = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&d.socket)
        .arg(&burst_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "sent\n");
    client.kill().unwrap();
    client.wait().unwrap();
    // Every request that reached the daemon runs to its end: 60 keys, 60
    // audit records, the trail intact, and others still served.
    wait_until("the 60 keys", || key_count(&d) == 60);
    assert_eq!(audited(&env, "CreateKey"), 60);
    let c = Client::connect(&d.socket).unwrap();
    c.call("ListKeys", json!({}), None).unwrap();
    // The trail verifies (the store is the daemon's while it runs).
    assert!(d.terminate().success());
    env.ok(&["audit", "verify"]);
}

#[test]
fn a_client_stopping_mid_frame_or_sending_garbage_hurts_no_one() {
    let (env, d) = served();
    let good = Request {
        id: 1,
        operation: "CreateKey".into(),
        on_behalf_of: None,
        body: json!({"Description": "never sent whole"}),
    }
    .encode()
    .unwrap();
    let mut half = UnixStream::connect(&d.socket).unwrap();
    half.write_all(&good[..good.len() / 2]).unwrap();
    // While it hangs mid-frame, the CLI is served.
    via_ok(&d, &["kms", "create-key", "--description", "served"]);
    // Garbage: an error naming the problem (request id 0), then closed.
    let mut junk = UnixStream::connect(&d.socket).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    match read_response(&mut junk) {
        Some(Response::Error {
            id: 0, exception, ..
        }) => {
            assert_eq!(exception, "SerializationException");
        }
        other => panic!("{other:?}"),
    }
    assert!(read_response(&mut junk).is_none());
    // The half frame never runs, also once its client gives up.
    drop(half);
    via_ok(&d, &["kms", "list-keys"]);
    assert_eq!(key_count(&d), 1);
    assert_eq!(audited(&env, "CreateKey"), 1);
}
