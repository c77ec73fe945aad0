//! A real engine daemon (`kmsfs engine serve`, the built binary) for the
//! tests: started on a socket in the test's temporary directory, waited for
//! through `--ready-fd 1`, and stopped when dropped (SIGTERM, then SIGKILL
//! after 10 s), also when a test panics.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running daemon over `engine`, unsealed with the passphrase file `pass`.
pub struct Daemon {
    child: Option<Child>,
    pub engine: PathBuf,
    pub pass: PathBuf,
    pub socket: PathBuf,
    /// Options added to `engine serve`.
    extra: Vec<String>,
    /// A soft limit on open files to start the daemon with (`prlimit`).
    soft_nofile: Option<u64>,
}

/// Why a daemon did not start: its exit code and standard error.
#[derive(Debug)]
pub struct StartFailure {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Daemon {
    /// Starts a daemon on `socket` (mode 0666: any uid may connect; key
    /// policies decide) and waits until it serves.
    pub fn start(engine: &Path, pass: &Path, socket: &Path) -> Daemon {
        Daemon::try_start(engine, pass, socket, &[]).unwrap_or_else(|f| {
            panic!(
                "the engine daemon did not start ({:?}): {}",
                f.code, f.stderr
            )
        })
    }

    /// Starts a daemon with `extra` options; its failure when it exits first.
    pub fn try_start(
        engine: &Path,
        pass: &Path,
        socket: &Path,
        extra: &[&str],
    ) -> Result<Daemon, StartFailure> {
        let mut d = Daemon {
            child: None,
            engine: engine.to_path_buf(),
            pass: pass.to_path_buf(),
            socket: socket.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            soft_nofile: None,
        };
        d.spawn()?;
        Ok(d)
    }

    /// Starts a daemon whose soft limit on open files is `soft` when it
    /// starts (as systemd's default of 1024).
    pub fn start_with_soft_nofile(engine: &Path, pass: &Path, socket: &Path, soft: u64) -> Daemon {
        let mut d = Daemon {
            child: None,
            engine: engine.to_path_buf(),
            pass: pass.to_path_buf(),
            socket: socket.to_path_buf(),
            extra: Vec::new(),
            soft_nofile: Some(soft),
        };
        d.spawn().unwrap_or_else(|f| {
            panic!(
                "the engine daemon did not start ({:?}): {}",
                f.code, f.stderr
            )
        });
        d
    }

    /// Beside the socket's directory, which the daemon makes itself.
    fn stderr_path(&self) -> PathBuf {
        let name = self.socket.file_name().unwrap().to_str().unwrap();
        let dir = self.socket.parent().unwrap();
        dir.with_file_name(format!("{name}.stderr"))
    }

    fn spawn(&mut self) -> Result<(), StartFailure> {
        let stderr = std::fs::File::create(self.stderr_path()).unwrap();
        // prlimit runs the daemon in its own process (exec).
        let mut c = match self.soft_nofile {
            Some(soft) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={soft}:"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_kmsfs"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_kmsfs")),
        };
        for var in [
            "KMSFS_ENGINE",
            "KMSFS_PASSPHRASE_FILE",
            "KMSFS_KEY_FILE",
            "KMSFS_KMS",
            "NOTIFY_SOCKET",
            "CREDENTIALS_DIRECTORY",
        ] {
            c.env_remove(var);
        }
        c.arg("--engine")
            .arg(&self.engine)
            .arg("--passphrase-file")
            .arg(&self.pass)
            .args(["engine", "serve", "--socket"])
            .arg(&self.socket)
            .args(["--socket-mode", "0666", "--ready-fd", "1"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = c.spawn().unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        if line == "READY=1\n" {
            self.child = Some(child);
            return Ok(());
        }
        let status = child.wait().unwrap();
        Err(StartFailure {
            code: status.code(),
            stderr: std::fs::read_to_string(self.stderr_path()).unwrap_or_default(),
        })
    }

    /// `unix://SOCKET`, for `--kms` and `KMSFS_KMS`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// What the daemon wrote on standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The AWS KMS endpoint of a daemon started with `--http`, as clients
    /// reach it: `https://localhost:PORT` (the name the engine's
    /// self-signed certificate carries), from the line it printed.
    pub fn endpoint_url(&self) -> String {
        let err = self.stderr();
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("kmsfs: AWS KMS endpoint on "))
            .unwrap_or_else(|| panic!("no endpoint line in: {err}"));
        let url = line.split(' ').next().unwrap();
        let (scheme, addr) = url.split_once("://").unwrap();
        let port = addr.rsplit(':').next().unwrap();
        format!("{scheme}://localhost:{port}")
    }

    /// The engine's self-signed certificate: the CA bundle of its clients.
    pub fn ca_path(&self) -> PathBuf {
        self.engine.join("https-cert.pem")
    }

    /// `kmsfs ARGS` through this daemon (`KMSFS_KMS`), as this process's
    /// user, with no engine directory or secret.
    pub fn kmsfs(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
            c.env_remove(var);
        }
        c.env("KMSFS_KMS", self.url())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A new access key for `principal` (`kmsfs kms create-access-key`):
    /// its id and secret.
    pub fn create_access_key(&self, principal: &str) -> (String, String) {
        let out = self.kmsfs(&["kms", "create-access-key", "--principal", principal]);
        assert!(
            out.status.success(),
            "create-access-key failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let key = &v["AccessKey"];
        (
            key["AccessKeyId"].as_str().unwrap().to_string(),
            key["SecretAccessKey"].as_str().unwrap().to_string(),
        )
    }

    /// SIGKILL: the daemon dies without cleaning up (its socket file stays).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().unwrap();
        let pid = Pid::from_raw(i32::try_from(c.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        c.wait().unwrap()
    }

    /// Starts the daemon again on the same store and socket.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a stopped daemon");
        self.spawn().unwrap_or_else(|f| {
            panic!(
                "the engine daemon did not restart ({:?}): {}",
                f.code, f.stderr
            )
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
