//! The engine daemon's server: serves an [`Engine`] on a Unix socket with
//! the framing of [`super::frame`] (see `docs/engine-protocol.md`).
//!
//! Who a connection is comes from the kernel: SO_PEERCRED gives the peer's
//! uid, gid and pid when it connected; the supplementary groups are read
//! from `/proc/PID/status` (only while that pid still has the same
//! effective uid), else taken from the account database; names are
//! resolved by [`Resolver::system`], as everywhere else policies are
//! evaluated. Nothing in a frame changes who the client is: a request may
//! only *name* another principal through the on-behalf-of rules of
//! [`super::on_behalf`].
//!
//! Calls answered from memory (Decrypt, Encrypt, GenerateDataKey ...; see
//! `service/inline.rs`) run on the connection's task; their audit record is
//! written at once and the answer waits for its flush without blocking the
//! thread (the trail's group commit answers every call it covered). Their
//! answers are written together when no further request is buffered.
//! Other engine calls run on tokio's blocking pool (at most
//! [`ServerConfig::max_calls`] at once), so a slow call (a store write and
//! its fsync) never stalls the reactor or another connection. Each
//! connection may have [`ServerConfig::max_in_flight`] requests in flight;
//! past that the server stops reading from it until one completes. A frame
//! once started must arrive within [`ServerConfig::read_timeout`]; a
//! connection with nothing in flight is closed after
//! [`ServerConfig::idle_timeout`]; connections beyond
//! [`ServerConfig::max_connections`] are closed as soon as accepted.
//! A client that disconnects with requests in flight loses only the
//! responses: each call runs to completion (store and audit trail intact).

use super::frame::{self, LEN_PREFIX, Request, Response};
use super::{inline, on_behalf};
use crate::{Engine, KmsError, Principal, Resolver};
use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

/// Limits and timeouts of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; more are closed when accepted.
    pub max_connections: usize,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// Largest request frame accepted (at most [`frame::MAX_FRAME_LEN`]).
    pub max_frame_len: usize,
    /// Engine calls running at once over all connections.
    pub max_calls: usize,
    /// Time for the rest of a frame to arrive once its first byte has,
    /// and for a response to be written.
    pub read_timeout: Duration,
    /// A connection with nothing in flight and nothing received for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// At shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 4096,
            max_in_flight: 64,
            max_frame_len: frame::MAX_FRAME_LEN,
            max_calls: 64,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// State shared by every connection of one server.
#[derive(Debug)]
struct Shared {
    engine: Arc<Engine>,
    config: ServerConfig,
    calls: Arc<Semaphore>,
}

/// Serves `engine` on `listener` until `shutdown` completes; then stops
/// accepting, stops reading new requests, lets the requests in flight
/// finish and their responses be written (for at most
/// [`ServerConfig::shutdown_grace`]) and returns. Must run inside a tokio
/// runtime with I/O and time enabled.
pub async fn serve(
    engine: Arc<Engine>,
    listener: UnixListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = config.max_connections.max(1);
    let conns = Arc::new(Semaphore::new(max_connections));
    let shared = Arc::new(Shared {
        calls: Arc::new(Semaphore::new(config.max_calls.max(1))),
        engine,
        config,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match conns.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(connection(shared.clone(), stream, permit, stop_rx.clone()));
                    }
                    Err(_) => {
                        log::warn!("engine socket: {max_connections} connections open; closing a new one");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    log::warn!("engine socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(shared.config.shutdown_grace, conns.acquire_many(all)).await;
    if drained.is_err() {
        log::warn!(
            "engine socket: requests still in flight after {:?}; stopping anyway",
            shared.config.shutdown_grace
        );
    }
}

/// The principal of a connected peer, from the kernel; the account
/// database lookups run on the blocking pool.
async fn peer_principal(stream: &UnixStream) -> std::io::Result<Principal> {
    let cred = stream.peer_cred()?;
    let (uid, gid) = (cred.uid(), cred.gid());
    let pid = cred.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    tokio::task::spawn_blocking(move || {
        let groups = crate::principal::process_groups(pid, Some(uid));
        Resolver::system().principal(uid, gid, groups.as_deref())
    })
    .await
    .map_err(std::io::Error::other)
}

/// One connection: reads requests, runs the calls answered from memory
/// on this task and the others on the blocking pool, and writes the
/// answers. See [`Conn`].
async fn connection(
    shared: Arc<Shared>,
    stream: UnixStream,
    _conn: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    let principal = match peer_principal(&stream).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            log::warn!("engine socket: no peer credentials: {e}; closing");
            return;
        }
    };
    let conn = match Conn::new(stream) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("engine socket: {principal}: cannot serve the connection: {e}; closing");
            return;
        }
    };
    conn.run(&shared, &principal, stop).await;
}

/// Bytes read from the socket at a time (at least).
const READ_CHUNK: usize = 64 * 1024;
/// Answers waiting to be written beyond which no more requests are read
/// (a client that sends without reading its answers is not buffered for
/// without bound).
const OUT_LIMIT: usize = 256 * 1024;

/// The state of one connection, served by one task.
///
/// The socket is watched for readability only: a Unix socket signals
/// "writable" to its watchers every time the peer reads, and a watcher for
/// both would wake a parked runtime thread for nothing after every answer.
/// Answers are written with a non-blocking `send` from this task; only
/// when the socket's buffer is full does a second registration wait for
/// room (see [`Conn::wait_writable`]). The timeouts are checked by one timer
/// re-armed only when it fires or a nearer deadline appears, not one
/// timer per request.
struct Conn {
    fd: AsyncFd<OwnedFd>,
    /// Bytes read and not yet decoded (at most one partial frame once the
    /// complete ones are taken).
    buf: ReadBuf,
    /// Encoded answers not yet written.
    out: Vec<u8>,
    /// Answers of calls finished elsewhere (blocking pool, audit flushes).
    tx: mpsc::UnboundedSender<Vec<u8>>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Calls running elsewhere whose answer has not come back on `rx`.
    in_flight: usize,
    /// When bytes were last read or written.
    last_activity: Instant,
    /// When the partial frame in `buf` started (reading).
    frame_started: Option<Instant>,
    /// Since when `out` waits for room in the socket's buffer.
    write_blocked: Option<Instant>,
    /// Stop reading: the peer closed, a bad frame, or a shutdown.
    reading_done: bool,
}

/// Why the connection is being closed early.
enum Close {
    /// The peer is gone or too slow: nothing more can be written.
    Now,
}

impl Conn {
    fn new(stream: UnixStream) -> std::io::Result<Conn> {
        let fd: OwnedFd = stream.into_std()?.into();
        let fd = register(fd, Interest::READABLE)?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Conn {
            fd,
            buf: ReadBuf::default(),
            out: Vec::new(),
            tx,
            rx,
            in_flight: 0,
            last_activity: Instant::now(),
            frame_started: None,
            write_blocked: None,
            reading_done: false,
        })
    }

    async fn run(
        mut self,
        shared: &Arc<Shared>,
        principal: &Arc<Principal>,
        mut stop: watch::Receiver<bool>,
    ) {
        let cfg = &shared.config;
        let max_in_flight = cfg.max_in_flight.max(1);
        let timer = tokio::time::sleep(cfg.idle_timeout);
        tokio::pin!(timer);
        let mut stopping = *stop.borrow();
        loop {
            if stopping {
                self.reading_done = true;
            }
            // Decode and run what is buffered (within the in-flight limit).
            if !self.reading_done && self.in_flight < max_in_flight && self.out.len() < OUT_LIMIT {
                self.take_frames(shared, principal, max_in_flight).await;
            }
            // Answers finished elsewhere.
            while let Ok(frame) = self.rx.try_recv() {
                self.in_flight -= 1;
                self.out.extend_from_slice(&frame);
            }
            if !self.out.is_empty() && self.write_blocked.is_none() && self.send().is_err() {
                return;
            }
            if self.reading_done && self.in_flight == 0 && self.out.is_empty() {
                break;
            }
            // The nearest deadline, and whether it has passed.
            let now = Instant::now();
            match self.deadline(cfg, max_in_flight) {
                Some(d) if d <= now => {
                    // A blocked write timed out: the peer is gone or stuck.
                    if self.write_blocked.is_some() {
                        return;
                    }
                    // A partial frame or an idle connection timed out.
                    self.reading_done = true;
                    continue;
                }
                Some(d) if d < timer.deadline() => timer.as_mut().reset(d),
                _ => {}
            }
            let can_read =
                !self.reading_done && self.in_flight < max_in_flight && self.out.len() < OUT_LIMIT;
            let writing = self.write_blocked.is_some();
            tokio::select! {
                biased;
                changed = stop.changed(), if !stopping => {
                    // An error: the server is gone; stop the same way.
                    let _ = changed;
                    stopping = true;
                }
                frame = self.rx.recv() => {
                    // Never None: this task holds a sender.
                    if let Some(frame) = frame {
                        self.in_flight -= 1;
                        self.out.extend_from_slice(&frame);
                    }
                }
                r = self.fd.readable(), if can_read => match r {
                    Ok(mut guard) => {
                        if let Err(Close::Now) = Self::read_into(&mut guard, &mut self.buf, &mut self.reading_done) {
                            return;
                        }
                        self.last_activity = Instant::now();
                    }
                    Err(_) => return,
                },
                w = Self::wait_writable(self.fd.get_ref()), if writing => match w {
                    Ok(()) => self.write_blocked = None,
                    Err(_) => return,
                },
                () = &mut timer => {
                    // Re-armed far away; the deadlines are re-checked above.
                    timer.as_mut().reset(Instant::now() + cfg.idle_timeout);
                }
            }
        }
        // Every answer is written: end the stream so that the client sees
        // the close at once.
        let _ = rustix::net::shutdown(self.fd.get_ref(), rustix::net::Shutdown::Write);
    }

    /// One read into `buf` (non-blocking). Sets `done` at end of file.
    fn read_into(
        guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>,
        buf: &mut ReadBuf,
        done: &mut bool,
    ) -> Result<(), Close> {
        let spare = buf.spare();
        let want = spare.len();
        if want == 0 {
            // Never with a frame in progress (room is made for it).
            return Ok(());
        }
        match guard.try_io(|fd| {
            rustix::net::recv(fd.get_ref(), spare, rustix::net::RecvFlags::DONTWAIT)
                .map_err(std::io::Error::from)
        }) {
            Ok(Ok((n, _))) => {
                if n == 0 {
                    *done = true;
                    return Ok(());
                }
                buf.len += n;
                if n < want {
                    // The socket had no more: wait for the next edge
                    // instead of reading again to find it empty.
                    guard.clear_ready();
                }
                Ok(())
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Ok(Err(_)) => Err(Close::Now),
            // Would block: readiness was cleared; wait again.
            Err(_) => Ok(()),
        }
    }

    /// Decodes the complete frames in `buf` and runs them: answers of
    /// inline calls go to `out`, the others are counted in flight. A bad
    /// frame is answered (request id 0) and ends the reading.
    async fn take_frames(
        &mut self,
        shared: &Arc<Shared>,
        principal: &Arc<Principal>,
        max_in_flight: usize,
    ) {
        let cfg = &shared.config;
        let mut pos = 0;
        while self.in_flight < max_in_flight && !self.reading_done {
            let rest = &self.buf.data()[pos..];
            if rest.len() < LEN_PREFIX {
                break;
            }
            let prefix = [rest[0], rest[1], rest[2], rest[3]];
            let request = match frame::frame_len(prefix, cfg.max_frame_len) {
                Ok(len) if rest.len() < LEN_PREFIX + len => {
                    // Room for the whole frame once it comes.
                    self.buf.room_for(pos, LEN_PREFIX + len);
                    break;
                }
                Ok(len) => {
                    let req = Request::decode(&rest[LEN_PREFIX..LEN_PREFIX + len]);
                    pos += LEN_PREFIX + len;
                    req
                }
                Err(e) => Err(e),
            };
            match request {
                Ok(req) if inline::runs_inline(&shared.engine, &req.operation) => {
                    self.run_inline(&shared.engine, principal, req);
                }
                Ok(req) => {
                    self.in_flight += 1;
                    dispatch(shared, principal, req, self.tx.clone()).await;
                }
                Err(e) => {
                    // A frame that cannot be decoded: say why (request id
                    // 0), then close; the stream may be out of step.
                    log::info!("engine socket: {principal}: bad frame: {e}");
                    let resp = Response::Error {
                        id: 0,
                        exception: "SerializationException".into(),
                        message: e.to_string(),
                    };
                    self.out.extend(resp.encode().unwrap_or_default());
                    self.reading_done = true;
                }
            }
        }
        if pos > 0 {
            self.buf.consume(pos);
            self.frame_started = None;
        }
        if self.buf.is_empty() || self.in_flight >= max_in_flight {
            self.frame_started = None;
        } else if self.frame_started.is_none() {
            self.frame_started = Some(Instant::now());
        }
    }

    /// Runs one request on this thread. Its answer joins `out` when no
    /// audit record waits for a flush, else it comes back on `rx` once the
    /// record is durable (or as the flush's error when that failed).
    fn run_inline(&mut self, engine: &Engine, principal: &Principal, req: Request) {
        let id = req.id;
        let (result, unflushed) = crate::audit::deferring(|| run(engine, principal, req));
        if unflushed.is_empty() {
            encode_into(id, result, &mut self.out);
            return;
        }
        let frame = encode(id, result);
        self.in_flight += 1;
        let answer = Answer::new(id, self.tx.clone());
        unflushed.then(move |durable| match durable {
            Ok(()) => answer.send(frame),
            Err(e) => answer.send(encode(id, Err(e))),
        });
    }

    /// Writes as much of `out` as the socket takes now; sets
    /// `write_blocked` when it takes no more. `Err`: the peer is gone.
    fn send(&mut self) -> Result<(), Close> {
        let mut sent = 0;
        while sent < self.out.len() {
            match rustix::net::send(
                self.fd.get_ref(),
                &self.out[sent..],
                rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    self.write_blocked = Some(Instant::now());
                    break;
                }
                Err(_) => return Err(Close::Now),
            }
        }
        self.out.drain(..sent);
        if sent > 0 {
            self.last_activity = Instant::now();
        }
        Ok(())
    }

    /// Waits until the socket has room for writing, through a registration
    /// of its own (a duplicate descriptor) that lives only while waiting.
    async fn wait_writable(fd: &OwnedFd) -> std::io::Result<()> {
        let w = register(fd.try_clone()?, Interest::WRITABLE)?;
        let mut guard = w.writable().await?;
        guard.retain_ready();
        Ok(())
    }

    /// The nearest deadline among: the partial frame's read timeout, the
    /// blocked write's timeout, and the idle timeout (nothing in flight).
    fn deadline(&self, cfg: &ServerConfig, max_in_flight: usize) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut nearer = |t: Instant| d = Some(d.map_or(t, |d| d.min(t)));
        if let Some(t) = self.write_blocked {
            nearer(t + cfg.read_timeout);
        }
        if !self.reading_done && self.in_flight < max_in_flight {
            match self.frame_started {
                Some(t) => nearer(t + cfg.read_timeout),
                None if self.in_flight == 0 && self.out.is_empty() => {
                    nearer(self.last_activity + cfg.idle_timeout)
                }
                None => {}
            }
        }
        d
    }
}

/// Registers `fd` (non-blocking) with the runtime for `interest` only.
///
/// tokio deprecated the safe constructor because a type whose `AsRawFd`
/// may name another descriptor later could make the registration outlive
/// it; an `OwnedFd` moved into the `AsyncFd` is closed only when the
/// `AsyncFd` drops (after deregistering), the sound case.
#[allow(deprecated)]
fn register(fd: OwnedFd, interest: Interest) -> std::io::Result<AsyncFd<OwnedFd>> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    AsyncFd::with_interest(fd, interest)
}

/// A connection's read buffer: bytes `..len` are read and not yet
/// consumed. Allocated once (zeroed), grown only for a frame larger than
/// it.
struct ReadBuf {
    bytes: Vec<u8>,
    len: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf {
            bytes: vec![0; READ_CHUNK],
            len: 0,
        }
    }
}

impl ReadBuf {
    fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free room to read into (compacted first when little is left).
    fn spare(&mut self) -> &mut [u8] {
        if self.bytes.len() - self.len < READ_CHUNK / 4 && self.bytes.len() < 2 * READ_CHUNK {
            self.bytes.resize(2 * READ_CHUNK, 0);
        }
        &mut self.bytes[self.len..]
    }

    /// Drops the first `n` bytes.
    fn consume(&mut self, n: usize) {
        self.bytes.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Makes room for a frame of `total` bytes starting at `pos`.
    fn room_for(&mut self, pos: usize, total: usize) {
        if self.bytes.len() < pos + total {
            self.bytes.resize((pos + total).max(READ_CHUNK), 0);
        }
    }
}

/// The answer to one call running elsewhere: sent once on the
/// connection's channel; if dropped unsent (the call panicked) an
/// internal error is sent instead, so the connection's count of calls in
/// flight stays exact.
struct Answer {
    id: u64,
    tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

impl Answer {
    fn new(id: u64, tx: mpsc::UnboundedSender<Vec<u8>>) -> Answer {
        Answer { id, tx: Some(tx) }
    }

    fn send(mut self, frame: Vec<u8>) {
        if let Some(tx) = self.tx.take() {
            // Fails only when the connection is gone: the call is done
            // and audited either way.
            let _ = tx.send(frame);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let e = KmsError::Internal("the call ended without an answer".into());
            let _ = tx.send(encode(self.id, Err(e)));
        }
    }
}

/// The encoded response to request `id`.
fn encode(id: u64, result: Result<serde_json::Value, KmsError>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(id, result, &mut out);
    out
}

/// Appends the encoded response to request `id` to `out`.
fn encode_into(id: u64, result: Result<serde_json::Value, KmsError>, out: &mut Vec<u8>) {
    let frame = Response::from_result(id, result)
        .encode()
        .or_else(|e| Response::from_result(id, Err(KmsError::Internal(e.to_string()))).encode())
        .unwrap_or_default();
    out.extend_from_slice(&frame);
}

/// Runs one request on the blocking pool; its answer comes back on `tx`.
async fn dispatch(
    shared: &Arc<Shared>,
    principal: &Arc<Principal>,
    req: Request,
    tx: mpsc::UnboundedSender<Vec<u8>>,
) {
    let answer = Answer::new(req.id, tx);
    let Ok(call) = shared.calls.clone().acquire_owned().await else {
        return;
    };
    let engine = shared.engine.clone();
    let principal = principal.clone();
    tokio::task::spawn_blocking(move || {
        let id = req.id;
        let result = run(&engine, &principal, req);
        drop(call);
        answer.send(encode(id, result));
    });
}

/// The engine call a request asks for, as `principal`.
fn run(
    engine: &Engine,
    principal: &Principal,
    req: Request,
) -> Result<serde_json::Value, KmsError> {
    let on_behalf_of = req
        .on_behalf_of
        .map(|o| Resolver::system().principal(o.uid, o.gid, Some(&o.groups)));
    on_behalf::call(engine, principal, on_behalf_of, &req.operation, req.body)
}
