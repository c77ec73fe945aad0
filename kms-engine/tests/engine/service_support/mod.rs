//! A real engine daemon for the service tests: [`serve`] on a socket in a
//! temp dir, on its own tokio runtime, stopped (gracefully) on drop; an
//! audit sink that can hold calls to make them slow; and child processes
//! of this test binary that call the daemon as another uid.
#![allow(dead_code)] // each test module uses a different subset
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use kms_engine::audit::{AuditEvent, AuditSink, MemorySink};
use kms_engine::service::{ServerConfig, serve};
use kms_engine::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// A memory sink whose `record` can be held at a gate (a slow call).
#[derive(Debug, Default)]
pub struct GateSink {
    pub inner: MemorySink,
    closed: Mutex<bool>,
    cv: Condvar,
    /// Calls that reached `record` (held or not).
    pub entered: AtomicUsize,
    /// When set, only records of this event are held at the gate.
    pub only: Mutex<Option<&'static str>>,
}

impl GateSink {
    pub fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }
    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.cv.notify_all();
    }
    /// Waits until `n` calls reached the sink.
    pub fn wait_entered(&self, n: usize) {
        wait_until(|| self.entered.load(Ordering::SeqCst) >= n);
    }
    pub fn events(&self) -> Vec<AuditEvent> {
        self.inner.events()
    }
}

impl AuditSink for GateSink {
    fn record(&self, event: &AuditEvent) -> Result<(), KmsError> {
        if let Some(only) = *self.only.lock().unwrap()
            && event.event_name != only
        {
            return self.inner.record(event);
        }
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.cv.wait(closed).unwrap();
        }
        drop(closed);
        self.inner.record(event)
    }
}

/// Polls `f` every 10 ms for up to 30 s.
pub fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("condition not reached within 30 s");
}

/// An engine store plus a daemon serving it.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub sink: Arc<GateSink>,
    pub socket: PathBuf,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

pub fn new_engine(dir: &Path, sink: Arc<GateSink>) -> Arc<Engine> {
    Arc::new(
        Engine::create(
            &dir.join("engine"),
            RootKeySource::Key(Zeroizing::new([7u8; 32])),
            KdfParams::insecure_for_tests(),
            Arc::new(SystemClock),
            sink,
        )
        .unwrap(),
    )
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(ServerConfig::default())
    }

    pub fn start_with(config: ServerConfig) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        // Other uids reach the socket (the tests' policies decide).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sink = Arc::new(GateSink::default());
        let engine = new_engine(dir.path(), sink.clone());
        let socket = dir.path().join("engine.sock");
        let mut d = Daemon {
            dir,
            engine,
            sink,
            socket,
            rt: None,
            stop: None,
            done: None,
        };
        d.restart(config);
        d
    }

    /// Serves again on the same socket path (after [`Daemon::stop`]).
    pub fn restart(&mut self, config: ServerConfig) {
        let _ = std::fs::remove_file(&self.socket);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(async { tokio::net::UnixListener::bind(&self.socket) })
            .unwrap();
        std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let engine = self.engine.clone();
        let done = rt.spawn(serve(engine, listener, config, async {
            let _ = rx.await;
        }));
        self.rt = Some(rt);
        self.stop = Some(tx);
        self.done = Some(done);
    }

    /// Asks the server to shut down (returns at once).
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts the server down and waits for `serve` to return.
    pub fn stop(&mut self) {
        self.begin_stop();
        if let (Some(rt), Some(done)) = (self.rt.take(), self.done.take()) {
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(30), done).await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// Whether `serve` has returned.
    pub fn finished(&self) -> bool {
        self.done.as_ref().is_none_or(|d| d.is_finished())
    }

    /// Waits for `serve` to return after [`Daemon::begin_stop`].
    pub fn join(&mut self) {
        self.stop();
    }

    /// A key created by root through the embedded engine, with `policy`
    /// statements appended to a root-may-do-anything statement.
    pub fn key_with(&self, extra: Vec<Value>) -> String {
        let root = Principal::current_process();
        let id = self
            .engine
            .create_key(&root, CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        let mut statements = vec![json!({
            "Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
            "Action": "kms:*", "Resource": "*"
        })];
        statements.extend(extra);
        let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
        self.engine
            .dispatch(
                &root,
                "PutKeyPolicy",
                json!({"KeyId": id, "PolicyName": "default", "Policy": policy}),
            )
            .unwrap();
        id
    }

    /// The audit events of `operation`.
    pub fn events_of(&self, operation: &str) -> Vec<AuditEvent> {
        self.sink
            .events()
            .into_iter()
            .filter(|e| e.event_name == operation)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sink.open();
        self.stop();
    }
}

/// One call a child process makes: operation, request, optional
/// on-behalf-of `[uid, gid]`.
pub fn call_spec(op: &str, req: Value, obo: Option<(u32, u32)>) -> Value {
    json!({"op": op, "req": req, "obo": obo.map(|(u, g)| json!([u, g]))})
}

/// Runs `calls` from a child process of this test binary running as
/// `uid`/`gid` with supplementary `groups` (`setpriv`), one client
/// connection; returns each call's outcome: the response, or
/// `{"error": EXCEPTION}`.
pub fn calls_as(uid: u32, gid: u32, groups: &[u32], socket: &Path, calls: &[Value]) -> Vec<Value> {
    let exe = std::env::current_exe().unwrap();
    let groups_arg = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        format!("--groups={}", list.join(","))
    };
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            groups_arg,
        ])
        .arg(exe)
        .args([
            "--exact",
            "service_client::child_caller",
            "--ignored",
            "--nocapture",
            "-q",
        ])
        .env("KMS_SERVICE_SOCKET", socket)
        .env("KMS_SERVICE_CALLS", Value::from(calls.to_vec()).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
