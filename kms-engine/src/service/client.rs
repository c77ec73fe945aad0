//! The blocking client of the engine daemon: one type for the CLI and the
//! filesystem, implementing [`Transport`].
//!
//! One connection is shared by every thread: a caller writes its request
//! frame under a writer lock and waits for its own response, so many calls
//! are in flight at once and may complete in any order. There is no reader
//! thread: a waiting caller reads responses itself while no other caller
//! does, hands the others' to them by request id, and leaves the reading
//! to one of them once it has its own (a lone caller pays no thread
//! switch). Every call has a timeout
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
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// Set (under the lock) once the connection broke, with why: no new
    /// waiters, and every waiter fails with it.
    dead: Option<String>,
    /// A caller is reading responses (at most one at a time).
    reading: bool,
    /// Callers waiting for their response; each sleeps on its own condvar.
    waiting: HashMap<u64, Arc<Condvar>>,
    /// Responses read for a caller that has not taken them yet.
    done: HashMap<u64, Reply>,
}

/// One connection to the daemon.
#[derive(Debug)]
struct Conn {
    writer: Mutex<UnixStream>,
    /// The read side, used by the caller that holds `Pending::reading`.
    reader: Mutex<BufReader<DontWait>>,
    pending: Mutex<Pending>,
}

impl Drop for Conn {
    fn drop(&mut self) {
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
            && lock(&c.pending).dead.is_none()
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
        let conn = Arc::new(Conn {
            writer: Mutex::new(stream),
            reader: Mutex::new(BufReader::with_capacity(64 * 1024, DontWait(read))),
            pending: Mutex::new(Pending::default()),
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one request and waits for its response. A connection found
    /// broken when sending (the daemon restarted or closed it while idle)
    /// is replaced once: nothing of the request reached the daemon.
    fn round_trip(&self, req: &Request) -> Reply {
        let deadline = Instant::now() + self.config.call_timeout;
        let frame = req
            .encode()
            .map_err(|e| KmsError::Validation(e.to_string()))?;
        let mut retried = false;
        loop {
            let conn = self.connection()?;
            let cv = register(&conn, req.id)
                .ok_or_else(|| unavailable(&self.path, "connection closed"))?;
            let sent = lock(&conn.writer).write_all(&frame);
            match sent {
                Ok(()) => return self.wait(&conn, req.id, &cv, deadline),
                Err(e) => {
                    let nothing_else = {
                        let mut p = lock(&conn.pending);
                        p.waiting.remove(&req.id);
                        p.waiting.is_empty()
                    };
                    mark_dead(&conn, "connection broke");
                    let closed = matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    );
                    if closed && nothing_else && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(unavailable(&self.path, format!("sending failed: {e}")));
                }
            }
        }
    }

    /// Waits for response `id`: reads responses itself (handing others'
    /// to their callers) while nobody else does, else sleeps until the
    /// reader hands it over or leaves the reading to it.
    fn wait(&self, conn: &Conn, id: u64, cv: &Condvar, deadline: Instant) -> Reply {
        let mut p = lock(&conn.pending);
        loop {
            if let Some(r) = p.done.remove(&id) {
                p.waiting.remove(&id);
                return r;
            }
            if let Some(why) = p.dead.clone() {
                p.waiting.remove(&id);
                return Err(unavailable(&self.path, why));
            }
            let now = Instant::now();
            if now >= deadline {
                p.waiting.remove(&id);
                pass_reading(&p);
                return Err(unavailable(
                    &self.path,
                    format!("no response within {:?}", self.config.call_timeout),
                ));
            }
            if p.reading {
                p = cv
                    .wait_timeout(p, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            p.reading = true;
            drop(p);
            let read = read_response(&mut lock(&conn.reader), deadline);
            p = lock(&conn.pending);
            p.reading = false;
            match read {
                Ok(Some(resp)) if resp.id() == 0 => {
                    // The server refused a frame of ours and closes.
                    let why = match resp.into_result() {
                        Err(e) => format!("the engine refused a request frame: {}", e.message()),
                        Ok(_) => "the engine sent an unsolicited response".to_string(),
                    };
                    drop(p);
                    mark_dead(conn, &why);
                    p = lock(&conn.pending);
                }
                Ok(Some(resp)) if resp.id() == id => {
                    p.waiting.remove(&id);
                    pass_reading(&p);
                    return resp.into_result();
                }
                Ok(Some(resp)) => {
                    // Another caller's (or one that gave up: dropped).
                    let rid = resp.id();
                    if let Some(other) = p.waiting.get(&rid) {
                        other.notify_one();
                        p.done.insert(rid, resp.into_result());
                    }
                }
                Ok(None) => {} // Nothing before the deadline: re-checked above.
                Err(why) => {
                    drop(p);
                    mark_dead(conn, &why);
                    p = lock(&conn.pending);
                }
            }
        }
    }
}

/// Lets one waiting caller take over the reading (the reader is done).
fn pass_reading(p: &Pending) {
    if !p.reading
        && let Some(next) = p.waiting.iter().find(|(id, _)| !p.done.contains_key(id))
    {
        next.1.notify_one();
    }
}

fn register(conn: &Conn, id: u64) -> Option<Arc<Condvar>> {
    let mut p = lock(&conn.pending);
    if p.dead.is_some() {
        return None;
    }
    let cv = Arc::new(Condvar::new());
    p.waiting.insert(id, cv.clone());
    Some(cv)
}

/// Marks a connection broken and wakes every call waiting on it (they fail
/// with `why`).
fn mark_dead(conn: &Conn, why: &str) {
    let mut p = lock(&conn.pending);
    if p.dead.is_none() {
        p.dead = Some(why.to_string());
    }
    for cv in p.waiting.values() {
        cv.notify_one();
    }
    drop(p);
    if let Ok(w) = conn.writer.lock() {
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
}

/// The read side of the connection: reads never block (`MSG_DONTWAIT`);
/// a reader waits in [`wait_readable`] instead.
///
/// Why not a blocking read with a timeout: a Unix socket wakes everyone
/// waiting on it each time the peer takes data from it ("room to write"),
/// so a caller blocked in `read` for its answer was woken for nothing when
/// the daemon read the request, and paid a `setsockopt` per call for the
/// timeout. `poll` for input sleeps through those wake-ups and carries
/// the timeout itself.
#[derive(Debug)]
struct DontWait(UnixStream);

impl Read for DontWait {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        rustix::net::recv(&self.0, buf, rustix::net::RecvFlags::DONTWAIT)
            .map(|(n, _)| n)
            .map_err(Into::into)
    }
}

/// Waits until the connection has input (or end of file, or an error) or
/// `deadline` passes; false on the deadline.
fn wait_readable(rd: &DontWait, deadline: Instant) -> Result<bool, String> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&rd.0, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => {} // Timed out: the deadline is checked above.
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("connection failed: {e}")),
        }
    }
}

/// Reads one response, waiting at most until `deadline` for it to start:
/// `Ok(None)` when none started by then. A response cut off, malformed or
/// stalling midway breaks the connection (`Err` with why).
fn read_response(
    rd: &mut BufReader<DontWait>,
    deadline: Instant,
) -> Result<Option<Response>, String> {
    if rd.buffer().is_empty() {
        if !wait_readable(rd.get_ref(), deadline)? {
            return Ok(None);
        }
        match rd.fill_buf() {
            Ok([]) => return Err("connection closed".to_string()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(None);
            }
            Err(_) => return Err("connection closed".to_string()),
        }
    }
    let mut prefix = [0u8; LEN_PREFIX];
    read_full(rd, &mut prefix, deadline)?;
    let len = frame::frame_len(prefix, frame::MAX_FRAME_LEN)
        .map_err(|e| format!("engine protocol error: {e}"))?;
    let mut buf = vec![0u8; len];
    read_full(rd, &mut buf, deadline)?;
    Response::decode(&buf)
        .map(Some)
        .map_err(|e| format!("engine protocol error: {e}"))
}

/// Fills `buf` from a response that has started, by `deadline`.
fn read_full(
    rd: &mut BufReader<DontWait>,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), String> {
    let mut off = 0;
    while off < buf.len() {
        match rd.read(&mut buf[off..]) {
            Ok(0) => return Err("connection closed mid-response".to_string()),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !wait_readable(rd.get_ref(), deadline)? {
                    return Err("the engine stopped sending mid-response".to_string());
                }
            }
            Err(_) => return Err("connection closed mid-response".to_string()),
        }
    }
    Ok(())
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
