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

use super::frame::{self, FrameError, LEN_PREFIX, Request, Response};
use super::{inline, on_behalf};
use crate::{Engine, KmsError, Principal, Resolver};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

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

/// One connection: reads requests, runs each on the blocking pool, and
/// hands the encoded responses to its writer task.
async fn connection(
    shared: Arc<Shared>,
    stream: UnixStream,
    _conn: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let principal = match peer_principal(&stream).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            log::warn!("engine socket: no peer credentials: {e}; closing");
            return;
        }
    };
    let cfg = &shared.config;
    let (rd, wr) = stream.into_split();
    // Unbounded, but each queued frame holds an in-flight slot (or, for the
    // answers batched below, was read from the connection's buffer).
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(write_loop(wr, rx, cfg.read_timeout));
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    let mut rd = BufReader::new(rd);
    // Answers of inline calls, written once no further request is buffered.
    let mut out: Vec<u8> = Vec::new();
    loop {
        if !out.is_empty() && rd.buffer().is_empty() {
            let _ = tx.send(std::mem::take(&mut out));
        }
        let slot = tokio::select! {
            _ = stop.changed() => break,
            s = in_flight.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let frame = tokio::select! {
            _ = stop.changed() => break,
            f = read_frame(&mut rd, cfg, &in_flight) => f,
        };
        let request = match frame {
            Ok(Some(bytes)) => Request::decode(&bytes),
            Ok(None) => break,
            Err(ReadError::Frame(e)) => Err(e),
            Err(ReadError::Closed) => break,
        };
        match request {
            Ok(req) if inline::runs_inline(&shared.engine, &req.operation) => {
                run_inline(&shared.engine, &principal, req, &tx, slot, &mut out);
            }
            Ok(req) => dispatch(&shared, &principal, req, tx.clone(), slot).await,
            Err(e) => {
                // A frame that cannot be decoded: say why (request id 0),
                // then close; the stream may be out of step.
                log::info!("engine socket: {principal}: bad frame: {e}");
                let resp = Response::Error {
                    id: 0,
                    exception: "SerializationException".into(),
                    message: e.to_string(),
                };
                out.extend(resp.encode().unwrap_or_default());
                break;
            }
        }
    }
    if !out.is_empty() {
        let _ = tx.send(out);
    }
    // Let the requests in flight finish, then the writer flush them.
    let all = u32::try_from(cfg.max_in_flight.max(1)).unwrap_or(u32::MAX);
    let _ = in_flight.acquire_many(all).await;
    drop(tx);
    let _ = writer.await;
}

/// Why no frame was read.
enum ReadError {
    /// The frame is malformed (too large, too short): answer, then close.
    Frame(FrameError),
    /// The peer closed mid-frame, timed out, or the read failed: close.
    Closed,
}

/// Reads one frame's bytes (after the length prefix). `Ok(None)`: the peer
/// closed cleanly between frames, or stayed idle past the idle timeout
/// with nothing in flight.
async fn read_frame(
    rd: &mut BufReader<OwnedReadHalf>,
    cfg: &ServerConfig,
    in_flight: &Semaphore,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut prefix = [0u8; LEN_PREFIX];
    // The first byte may be long in coming; once it is here, the frame
    // must follow within the read timeout.
    loop {
        match tokio::time::timeout(cfg.idle_timeout, rd.read(&mut prefix[..1])).await {
            Ok(Ok(0)) => return Ok(None),
            Ok(Ok(_)) => break,
            Ok(Err(_)) => return Err(ReadError::Closed),
            Err(_) => {
                // Idle: close unless requests are still running (the one
                // permit missing is the slot this read holds).
                if in_flight.available_permits() + 1 >= cfg.max_in_flight.max(1) {
                    return Ok(None);
                }
            }
        }
    }
    let rest = async {
        rd.read_exact(&mut prefix[1..]).await?;
        let len = match frame::frame_len(prefix, cfg.max_frame_len) {
            Ok(len) => len,
            Err(e) => return Ok(Err(e)),
        };
        let mut buf = vec![0u8; len];
        rd.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(Ok(buf))
    };
    match tokio::time::timeout(cfg.read_timeout, rest).await {
        Ok(Ok(Ok(buf))) => Ok(Some(buf)),
        Ok(Ok(Err(e))) => Err(ReadError::Frame(e)),
        Ok(Err(_)) | Err(_) => Err(ReadError::Closed),
    }
}

/// The encoded response to request `id`.
fn encode(id: u64, result: Result<serde_json::Value, KmsError>) -> Vec<u8> {
    Response::from_result(id, result)
        .encode()
        .or_else(|e| Response::from_result(id, Err(KmsError::Internal(e.to_string()))).encode())
        .unwrap_or_default()
}

/// Runs one request on this thread. Its response joins `out` when no
/// audit record waits for a flush, else it goes to the writer once the
/// record is durable (or as the flush's error when that failed); `slot` is
/// held until then.
fn run_inline(
    engine: &Engine,
    principal: &Principal,
    req: Request,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    slot: OwnedSemaphorePermit,
    out: &mut Vec<u8>,
) {
    let id = req.id;
    let (result, unflushed) = crate::audit::deferring(|| run(engine, principal, req));
    if unflushed.is_empty() {
        out.extend(encode(id, result));
        return;
    }
    let frame = encode(id, result);
    let tx = tx.clone();
    unflushed.then(move |durable| {
        let frame = match durable {
            Ok(()) => frame,
            Err(e) => encode(id, Err(e)),
        };
        // Fails only when the connection is gone: the call is done and
        // audited either way.
        let _ = tx.send(frame);
        drop(slot);
    });
}

/// Runs one request on the blocking pool; its response goes to the writer.
/// `slot` (the connection's in-flight permit) is held until the response
/// is queued.
async fn dispatch(
    shared: &Arc<Shared>,
    principal: &Arc<Principal>,
    req: Request,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    slot: OwnedSemaphorePermit,
) {
    let Ok(call) = shared.calls.clone().acquire_owned().await else {
        return;
    };
    let engine = shared.engine.clone();
    let principal = principal.clone();
    tokio::task::spawn_blocking(move || {
        let id = req.id;
        let result = run(&engine, &principal, req);
        drop(call);
        // Fails only when the connection is gone: the call is done and
        // audited either way.
        let _ = tx.send(encode(id, result));
        drop(slot);
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

/// Writes queued response frames, several per system call when they queue
/// up; stops when the connection's reader is done and every response is
/// written, or when a write fails or takes longer than `timeout`.
async fn write_loop(
    wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    timeout: Duration,
) {
    let mut wr = BufWriter::new(wr);
    while let Some(first) = rx.recv().await {
        let batch = async {
            wr.write_all(&first).await?;
            while let Ok(more) = rx.try_recv() {
                wr.write_all(&more).await?;
            }
            wr.flush().await
        };
        match tokio::time::timeout(timeout, batch).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = wr.shutdown().await;
}
