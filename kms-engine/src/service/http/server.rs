//! The listener: TCP (with TLS unless plain HTTP was asked for on a
//! loopback address), HTTP/1.1 with keep-alive through hyper, one task per
//! connection, every request authenticated, throttled per principal and
//! run through [`Engine::dispatch_from`]: on the connection's task for the
//! calls answered from memory (see `service/inline.rs`), on a blocking
//! thread for the others.

use super::auth::{Authenticator, RequestParts};
use super::protocol::{CONTENT_TYPE_JSON_11, ErrorReply, operation_of, parse_body};
use super::throttle::Throttle;
use super::{HttpError, Limits};
use crate::Engine;
use crate::engine::CallOrigin;
use crate::ids::new_request_id;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The HTTPS endpoint: an engine, an authenticator, TLS and limits.
pub struct Endpoint {
    engine: Arc<Engine>,
    auth: Arc<dyn Authenticator>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    throttle: Option<Throttle>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub(super) fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint serving `engine`; `tls: None` is plain HTTP, which
    /// [`Endpoint::serve`] accepts only on a loopback address.
    pub fn new(
        engine: Arc<Engine>,
        auth: Arc<dyn Authenticator>,
        tls: Option<Arc<ServerConfig>>,
        limits: Limits,
    ) -> Endpoint {
        Endpoint {
            engine,
            auth,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            throttle: limits.rate.map(Throttle::new),
            limits,
        }
    }

    /// Serves connections from `listener` until `shutdown` completes, then
    /// stops accepting, lets every connection finish the request it is
    /// in (up to [`Limits::shutdown_grace`]) and returns.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), HttpError> {
        let local = listener
            .local_addr()
            .map_err(|e| HttpError::io("reading the listening address", &e))?;
        check_plain(self.tls.is_some(), local)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: wait a moment, keep serving.
                        log::warn!("https: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            while conns.try_join_next().is_some() {}
            let ep = self.clone();
            let stop = stop_rx.clone();
            conns.spawn(async move {
                ep.connection(stream, peer, stop).await;
                drop(permit);
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(self.limits.shutdown_grace, drain)
            .await
            .is_err()
        {
            conns.abort_all();
        }
        Ok(())
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        match self.tls.clone() {
            Some(acceptor) => {
                let hs =
                    tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(stream));
                // A client that never finishes its handshake does not hold
                // up a shutdown.
                let mut stopping = stop.clone();
                let hs = tokio::select! {
                    r = hs => r,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                match hs {
                    Ok(Ok(tls)) => self.http(TokioIo::new(tls), peer, stop).await,
                    Ok(Err(e)) => log::debug!("https: TLS handshake with {peer} failed: {e}"),
                    Err(_) => log::debug!("https: TLS handshake with {peer} timed out"),
                }
            }
            None => self.http(TokioIo::new(stream), peer, stop).await,
        }
    }

    async fn http<IO>(self: Arc<Self>, io: IO, peer: SocketAddr, mut stop: watch::Receiver<bool>)
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let ep = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let ep = ep.clone();
            async move { Ok::<_, Infallible>(ep.handle(req, peer).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            // Also the keep-alive idle limit: the timer runs while the
            // connection waits for the next request's head.
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(self.limits.max_header_bytes.max(8192));
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        if *stop.borrow() {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        log::debug!("https: connection from {peer}: {e}");
                    }
                    return;
                }
                changed = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    if changed.is_err() {
                        // The server is gone: finish this connection alone.
                        let _ = conn.as_mut().await;
                        return;
                    }
                }
            }
        }
    }

    /// One request: every response carries `x-amzn-RequestId`.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let request_id =
            new_request_id().unwrap_or_else(|_| "00000000-0000-4000-8000-000000000000".into());
        let (reply, close) = match self.clone().run(req, peer).await {
            Ok(body) => (Ok(body), false),
            Err((e, close)) => (Err(e), close),
        };
        let mut resp = match reply {
            Ok(body) => Response::new(Full::new(Bytes::from(body))),
            Err(e) => {
                let mut r = Response::new(Full::new(Bytes::from(e.body())));
                *r.status_mut() = e.status;
                if let Ok(v) = HeaderValue::from_str(e.exception) {
                    r.headers_mut().insert("x-amzn-errortype", v);
                }
                r
            }
        };
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON_11));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amzn-requestid", v);
        }
        if close {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// The response body of a request, or its error and whether the
    /// connection should close (a body that was not read to its end).
    async fn run(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Vec<u8>, (ErrorReply, bool)> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limits.max_body as u64) {
            return Err((too_large(self.limits.max_body), true));
        }
        let read = tokio::time::timeout(
            self.limits.body_timeout,
            Limited::new(body, self.limits.max_body).collect(),
        );
        let body = match read.await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err((too_large(self.limits.max_body), true));
            }
            Ok(Err(e)) => {
                return Err((
                    ErrorReply::client(
                        "SerializationException",
                        format!("cannot read the request body: {e}"),
                    ),
                    true,
                ));
            }
            Err(_) => {
                let e = ErrorReply {
                    status: StatusCode::REQUEST_TIMEOUT,
                    exception: "RequestTimeoutException",
                    message: "the request body did not arrive in time".into(),
                };
                return Err((e, true));
            }
        };
        let op = operation_of(&parts.method, parts.uri.path(), &parts.headers)
            .map_err(|e| (e, false))?;
        if crate::service::inline::runs_inline(&self.engine, op) {
            // Answered from memory: on this thread, the answer waiting
            // (without blocking it) for the audit record's flush.
            let signed = RequestParts {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
            };
            let (reply, unflushed) =
                crate::audit::deferring(|| self.authorized_call(op, &signed, peer));
            if let Err(e) = unflushed.wait().await {
                return Err((ErrorReply::of(&e), false));
            }
            return reply.map_err(|e| (e, false));
        }
        let ep = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let signed = RequestParts {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
            };
            ep.authorized_call(op, &signed, peer)
        });
        match work.await {
            Ok(r) => r.map_err(|e| (e, false)),
            Err(_) => Err((
                ErrorReply::of(&crate::KmsError::Internal(
                    "the request's worker failed".into(),
                )),
                true,
            )),
        }
    }

    /// Authenticates, throttles and runs one operation (blocking).
    fn authorized_call(
        &self,
        op: &str,
        req: &RequestParts<'_>,
        peer: SocketAddr,
    ) -> Result<Vec<u8>, ErrorReply> {
        let source = peer.ip().to_string();
        let who = match self.auth.authenticate(req) {
            Ok(a) => a,
            Err(refusal) => {
                let origin = CallOrigin {
                    access_key_id: refusal.access_key_id.clone(),
                    source_address: Some(source),
                };
                let reply = ErrorReply::client(refusal.exception, refusal.message);
                if let Err(e) =
                    self.engine
                        .audit_refused(&origin, op, reply.exception, &reply.message)
                {
                    return Err(ErrorReply::of(&e));
                }
                return Err(reply);
            }
        };
        if let Some(t) = &self.throttle
            && !t.admit(&who.principal.to_string(), Instant::now())
        {
            return Err(ErrorReply::throttled());
        }
        let request = parse_body(req.body)?;
        let origin = CallOrigin {
            access_key_id: Some(who.access_key_id),
            source_address: Some(source),
        };
        let resp = self
            .engine
            .dispatch_from(&who.principal, &origin, op, request)
            .map_err(|e| ErrorReply::of(&e))?;
        serde_json::to_vec(&resp).map_err(|e| {
            ErrorReply::of(&crate::KmsError::Internal(format!(
                "cannot encode the {op} response: {e}"
            )))
        })
    }
}

fn too_large(max: usize) -> ErrorReply {
    ErrorReply {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        exception: "ValidationException",
        message: format!("the request body is larger than {max} bytes"),
    }
}

/// Plain HTTP only on a loopback address: `tls` false and `addr` not
/// loopback is [`HttpError::PlainNotLoopback`].
pub fn check_plain(tls: bool, addr: SocketAddr) -> Result<(), HttpError> {
    if tls || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(HttpError::PlainNotLoopback(addr))
    }
}
