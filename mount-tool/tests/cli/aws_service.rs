//! An AWS-KMS-compatible service for tests: `moto_server` (PyPI
//! `moto[server]`) on a random loopback port, behind a fault-injecting TCP
//! proxy that forwards, refuses connections (a stopped service), answers
//! every request with a canned HTTP response (throttling, 5xx, garbage, a
//! refusal), or forwards with an added delay.
//!
//! moto missing is a test failure, not a skip: `.ci/run` installs it.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Credentials moto accepts (any); the region the tests use.
pub(crate) const AWS_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing-secret-never-recorded"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// A running moto_server, killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub(crate) port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    pub(crate) fn start() -> Moto {
        let probe = Command::new("python3")
            .args(["-c", "import moto.server, boto3"])
            .output()
            .unwrap_or_else(|e| panic!("python3 is needed for the AWS KMS tests: {e}"));
        assert!(
            probe.status.success(),
            "moto[server] and boto3 are needed for the AWS KMS tests (.ci/run installs them): {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a boto3 KMS call against moto: `script` sees `kms` (a client)
    /// and `sys.argv[1:]` = `args`; its standard output is returned.
    pub(crate) fn boto3(&self, script: &str, args: &[&str]) -> String {
        let prelude = format!(
            "import boto3, sys\nkms = boto3.client('kms', endpoint_url='{}', \
             region_name='us-east-1', aws_access_key_id='testing', \
             aws_secret_access_key='testing')\n",
            self.url()
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(prelude + script)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A new symmetric key's id.
    pub(crate) fn create_key(&self) -> String {
        self.boto3("print(kms.create_key()['KeyMetadata']['KeyId'])", &[])
            .trim()
            .to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does with connections.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// Pass bytes both ways, each way delayed by this much per read.
    Forward(Duration),
    /// Nobody listens: connections are refused.
    Refuse,
    /// Every request gets this response (status, body).
    Answer(u16, String),
}

/// A TCP proxy in front of the service on `upstream`.
pub(crate) struct FaultProxy {
    pub(crate) port: u16,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    pub(crate) fn start(upstream: u16) -> FaultProxy {
        let port = free_port();
        let proxy = FaultProxy {
            port,
            mode: Arc::new(Mutex::new(Mode::Forward(Duration::ZERO))),
            conns: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, conns, stop) = (proxy.mode.clone(), proxy.conns.clone(), proxy.stop.clone());
        std::thread::spawn(move || accept_loop(port, upstream, &mode, &conns, &stop));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the proxy did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        proxy
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switches mode and cuts every open connection (clients reconnect
    /// into the new mode).
    pub(crate) fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Let the accept loop drop or take up its listener.
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.set(Mode::Refuse);
    }
}

fn accept_loop(
    port: u16,
    upstream: u16,
    mode: &Mutex<Mode>,
    conns: &Arc<Mutex<Vec<TcpStream>>>,
    stop: &AtomicBool,
) {
    let mut listener: Option<TcpListener> = None;
    while !stop.load(Ordering::Relaxed) {
        let current = mode.lock().unwrap().clone();
        if matches!(current, Mode::Refuse) {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener.insert(l)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match l.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).unwrap();
                conns.lock().unwrap().push(client.try_clone().unwrap());
                std::thread::spawn(move || serve(client, upstream, current));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve(client: TcpStream, upstream: u16, mode: Mode) {
    match mode {
        Mode::Refuse => {}
        Mode::Forward(delay) => {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pipe(c2, s2, delay));
            pipe(server, client, delay);
        }
        Mode::Answer(status, body) => answer(client, status, &body),
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Reads each HTTP request on `c` (headers, then Content-Length bytes)
/// and answers it with `status` and `body`.
fn answer(mut c: TcpStream, status: u16, body: &str) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while pending.len() < end + 4 + len {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        pending.drain(..end + 4 + len);
        let response = format!(
            "HTTP/1.1 {status} Canned\r\nContent-Type: application/x-amz-json-1.1\r\n\
             x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if c.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
