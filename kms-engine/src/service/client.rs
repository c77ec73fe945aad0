//! The blocking client of the engine daemon: one type for the CLI and the
//! filesystem, implementing [`Transport`].
//!
//! One connection is shared by every thread: a caller writes its request
//! frame under a writer lock and waits for its own response, which a reader
//! thread hands over by request id, so many calls are in flight at once and
//! may complete in any order. Every call has a timeout
//! ([`ClientConfig::call_timeout`]); no call waits longer. A connection
//! that breaks (the daemon stopped or restarted) fails the calls in flight
//! with [`KmsError::Unavailable`]; the next call connects again, so a
//! client outlives daemon restarts. While the daemon is down, calls fail at
//! once with [`KmsError::Unavailable`].

use super::Transport;
use super::frame::{self, LEN_PREFIX, OnBehalfOf, Request, Response};
use crate::{KmsError, Principal};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Timeouts of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for a connection to the socket.
    pub connect_timeout: Duration,
    /// Longest wait for one call's response, sending included.
    pub call_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
        }
    }
}

type Reply = Result<Value, KmsError>;

/// The calls waiting on one connection, by request id.
#[derive(Debug, Default)]
struct Pending {
    /// Set (under the lock) once the connection broke: no new waiters.
    dead: bool,
    waiting: HashMap<u64, SyncSender<Reply>>,
}

/// One connection to the daemon.
#[derive(Debug)]
struct Conn {
    writer: Mutex<UnixStream>,
    pending: Arc<Mutex<Pending>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Ends the reader thread (it sees end of file).
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A client of the engine daemon on a Unix socket; `Send + Sync`, share it
/// between threads (see the module documentation).
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    config: ClientConfig,
    conn: Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking caller cannot leave these maps inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(path: &Path, what: impl std::fmt::Display) -> KmsError {
    KmsError::Unavailable(format!("engine at {}: {what}", path.display()))
}

impl Client {
    /// Connects to the daemon listening on `path` with default timeouts.
    pub fn connect(path: impl Into<PathBuf>) -> Result<Client, KmsError> {
        Client::connect_with(path, ClientConfig::default())
    }

    /// Connects to the daemon listening on `path`. Fails with
    /// [`KmsError::Unavailable`] when nothing listens there.
    pub fn connect_with(
        path: impl Into<PathBuf>,
        config: ClientConfig,
    ) -> Result<Client, KmsError> {
        let client = Client {
            path: path.into(),
            config,
            conn: Mutex::new(None),
            next_id: AtomicU64::new(1),
        };
        client.connection()?;
        Ok(client)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The live connection, made anew when there is none or it broke.
    fn connection(&self) -> Result<Arc<Conn>, KmsError> {
        let mut slot = lock(&self.conn);
        if let Some(c) = slot.as_ref()
            && !lock(&c.pending).dead
        {
            return Ok(c.clone());
        }
        *slot = None;
        let stream = connect_unix(&self.path, self.config.connect_timeout)
            .map_err(|e| unavailable(&self.path, format!("cannot connect: {e}")))?;
        let read = stream.try_clone().map_err(|e| unavailable(&self.path, e))?;
        stream
            .set_write_timeout(Some(self.config.call_timeout))
            .map_err(|e| unavailable(&self.path, e))?;
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader_pending = pending.clone();
        let path = self.path.clone();
        std::thread::Builder::new()
            .name("kms-client-rx".into())
            .spawn(move || read_loop(read, &reader_pending, &path))
            .map_err(|e| unavailable(&self.path, format!("cannot start reader: {e}")))?;
        let conn = Arc::new(Conn {
            writer: Mutex::new(stream),
            pending,
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one request and waits for its response.
    fn round_trip(&self, req: &Request) -> Reply {
        let deadline = Instant::now() + self.config.call_timeout;
        let frame = req
            .encode()
            .map_err(|e| KmsError::Validation(e.to_string()))?;
        let conn = self.connection()?;
        let rx =
            register(&conn, req.id).ok_or_else(|| unavailable(&self.path, "connection closed"))?;
        let sent = lock(&conn.writer).write_all(&frame);
        if let Err(e) = sent {
            forget(&conn, req.id);
            mark_dead(&conn.pending, &self.path, "connection broke");
            return Err(unavailable(&self.path, format!("sending failed: {e}")));
        }
        wait(&rx, deadline).unwrap_or_else(|| {
            forget(&conn, req.id);
            Err(unavailable(
                &self.path,
                format!("no response within {:?}", self.config.call_timeout),
            ))
        })
    }
}

fn register(conn: &Conn, id: u64) -> Option<Receiver<Reply>> {
    let (tx, rx) = sync_channel(1);
    let mut p = lock(&conn.pending);
    if p.dead {
        return None;
    }
    p.waiting.insert(id, tx);
    Some(rx)
}

fn forget(conn: &Conn, id: u64) {
    lock(&conn.pending).waiting.remove(&id);
}

fn wait(rx: &Receiver<Reply>, deadline: Instant) -> Option<Reply> {
    let left = deadline.saturating_duration_since(Instant::now());
    rx.recv_timeout(left).ok()
}

/// Marks a connection broken and fails every call waiting on it.
fn mark_dead(pending: &Mutex<Pending>, path: &Path, why: &str) {
    let mut p = lock(pending);
    p.dead = true;
    for (_, tx) in p.waiting.drain() {
        let _ = tx.try_send(Err(unavailable(path, why)));
    }
}

/// The reader thread: hands each response to its caller until the
/// connection breaks.
fn read_loop(stream: UnixStream, pending: &Mutex<Pending>, path: &Path) {
    let mut rd = BufReader::with_capacity(64 * 1024, stream);
    let why = loop {
        let mut prefix = [0u8; LEN_PREFIX];
        if rd.read_exact(&mut prefix).is_err() {
            break "connection closed".to_string();
        }
        let len = match frame::frame_len(prefix, frame::MAX_FRAME_LEN) {
            Ok(len) => len,
            Err(e) => break format!("engine protocol error: {e}"),
        };
        let mut buf = vec![0u8; len];
        if rd.read_exact(&mut buf).is_err() {
            break "connection closed mid-response".to_string();
        }
        let resp = match Response::decode(&buf) {
            Ok(r) => r,
            Err(e) => break format!("engine protocol error: {e}"),
        };
        if resp.id() == 0 {
            // The server refused a frame of ours and closes.
            break match resp.into_result() {
                Err(e) => format!("the engine refused a request frame: {}", e.message()),
                Ok(_) => "the engine sent an unsolicited response".to_string(),
            };
        }
        let tx = lock(pending).waiting.remove(&resp.id());
        if let Some(tx) = tx {
            let _ = tx.try_send(resp.into_result());
        }
    };
    mark_dead(pending, path, &why);
}

/// Connects to the socket at `path`, waiting at most `timeout` for room in
/// the listen backlog (a full backlog makes a non-blocking connect fail
/// with `EAGAIN` instead of waiting).
fn connect_unix(path: &Path, timeout: Duration) -> std::io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path)?;
    let deadline = Instant::now() + timeout;
    loop {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => {
                rustix::io::ioctl_fionbio(&fd, false)?;
                return Ok(UnixStream::from(fd));
            }
            Err(rustix::io::Errno::AGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Transport for Client {
    fn call(
        &self,
        operation: &str,
        request: Value,
        on_behalf_of: Option<&Principal>,
    ) -> Result<Value, KmsError> {
        let req = Request {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            operation: operation.to_string(),
            on_behalf_of: on_behalf_of.map(|p| OnBehalfOf {
                uid: p.uid,
                gid: p.gid,
                groups: p.groups.clone(),
            }),
            body: request,
        };
        self.round_trip(&req)
    }
}
