//! `kmsfs engine serve` socket-activated as systemd does it (sd_listen_fds:
//! the listening socket on descriptor 3, `LISTEN_PID` naming the daemon,
//! `LISTEN_FDS=1`): it serves on the socket it was given, leaves its mode
//! and the file alone (they are the .socket unit's), and refuses what is
//! not one listening Unix stream socket with one line. systemd is played by
//! python3, which binds the socket, puts it on descriptor 3 and execs the
//! daemon in its own process (so that `LISTEN_PID=os.getpid()` is right).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::engine_env::EngineEnv;
use std::io::BufRead;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const PASSPHRASE: &str = "activation passphrase";

/// python3 as systemd: FD3 is what goes on descriptor 3 ("socket" binds
/// and listens on SOCKET with mode 0660; "file" opens a regular file;
/// "two" passes two sockets), then execs `kmsfs ARGS...`.
const ACTIVATE: &str = r#"
import os, socket, sys
kind, path = sys.argv[1], sys.argv[2]
fds = 1
if kind in ("socket", "two"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    s.bind(path)
    os.umask(old)
    os.chmod(path, 0o660)
    s.listen(16)
    os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    if kind == "two":
        t = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        t.bind(path + ".2")
        t.listen(1)
        os.dup2(t.fileno(), 4)
        os.set_inheritable(4, True)
        fds = 2
else:
    f = open(path, "w")
    os.dup2(f.fileno(), 3)
    os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(fds))
os.execve(sys.argv[3], sys.argv[3:], env)
"#;

/// Starts the daemon under python's activation; the child (stdout piped:
/// `--ready-fd 1` writes READY=1 there).
fn activate(env: &EngineEnv, kind: &str, socket: &Path, extra: &[&str]) -> Child {
    let mut c = Command::new("python3");
    for var in [
        "KMSFS_ENGINE",
        "KMSFS_PASSPHRASE_FILE",
        "KMSFS_KEY_FILE",
        "KMSFS_KMS",
    ] {
        c.env_remove(var);
    }
    c.args(["-c", ACTIVATE, kind])
        .arg(socket)
        .arg(env!("CARGO_BIN_EXE_kmsfs"))
        .arg("--engine")
        .arg(&env.engine)
        .arg("--passphrase-file")
        .arg(&env.pass)
        .args(["engine", "serve", "--ready-fd", "1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first line the daemon wrote on its ready descriptor ("" if none).
fn ready_line(child: &mut Child) -> String {
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    let _ = std::io::BufReader::new(out).read_line(&mut line);
    line
}

/// Kills a child that is still running (a failed assertion must not leave
/// a daemon behind).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_socket_activated_daemon_serves_the_socket_systemd_made_and_leaves_it() {
    let env = EngineEnv::new(PASSPHRASE);
    let socket = env.path("engine.sock");
    let mut child = activate(&env, "socket", &socket, &[]);
    assert_eq!(ready_line(&mut child), "READY=1\n");
    let mut child = Reap(child);
    // Served: a call through the socket works.
    let url = format!("unix://{}", socket.display());
    let out = Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .env_remove("KMSFS_ENGINE")
        .env("KMSFS_KMS", &url)
        .args(["kms", "create-key", "--description", "activated"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The socket's mode is the unit's (0660 here), not --socket-mode's.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // SIGTERM: a clean stop that leaves systemd's socket file in place.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    // The key it made is in the store: the embedded engine lists it.
    let keys = env.json(&["kms", "list-keys"]);
    assert_eq!(keys["Keys"].as_array().unwrap().len(), 1, "{keys}");
}

#[test]
fn activation_with_another_socket_path_a_file_or_two_sockets_is_refused_in_one_line() {
    let env = EngineEnv::new(PASSPHRASE);
    let cases: [(&str, &str, &[&str], &str); 3] = [
        (
            "socket",
            "a.sock",
            &["--socket", "/elsewhere/engine.sock"],
            "differs from the socket systemd passed",
        ),
        ("file", "a-file", &[], "not a listening Unix stream socket"),
        ("two", "b.sock", &[], "LISTEN_FDS=2"),
    ];
    for (kind, name, extra, want) in cases {
        let mut child = activate(&env, kind, &env.path(name), extra);
        assert_eq!(ready_line(&mut child), "", "{kind}");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{kind}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{kind}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{kind}: {err}");
    }
    // Not for this process (LISTEN_PID of another): ignored, the daemon
    // binds --socket itself.
    let socket = env.path("own.sock");
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
    c.env_remove("KMSFS_KMS")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .arg("--engine")
        .arg(&env.engine)
        .arg("--passphrase-file")
        .arg(&env.pass)
        .args(["engine", "serve", "--ready-fd", "1", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    assert_eq!(ready_line(&mut child), "READY=1\n");
    let mut child = Reap(child);
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
    // Its own socket goes with it.
    assert!(!socket.exists());
}
