//! The AWS-KMS-compatible HTTPS endpoint: AWS JSON 1.1 (`POST /`,
//! `X-Amz-Target: TrentService.<Operation>`) over HTTP/1.1 keep-alive and
//! rustls, so that boto3, the aws CLI and the AWS SDKs use the engine by
//! changing only their endpoint URL. Every request is authenticated (see
//! [`auth`]) before any operation, throttled per principal, and ends in
//! [`crate::Engine::dispatch_from`] with the principal of the access key that
//! signed it; the audit record carries that access key id and the client's
//! address.
//!
//! [`protocol`] is the wire format without I/O, [`tls`] the certificates,
//! [`throttle`] the rate limit, `server` the listener and connections.

pub mod auth;
pub mod protocol;
mod server;
pub mod sigv4;
pub mod throttle;
pub mod tls;

pub use auth::{AuthRefusal, Authenticated, Authenticator, RequestParts};
pub use server::{Endpoint, check_plain};
pub use sigv4::SigV4Authenticator;
pub use throttle::RateLimit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Why the endpoint cannot start.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Plain HTTP was asked for on an address other hosts can reach.
    #[error(
        "plain HTTP is served only on a loopback address (127.0.0.1, ::1), not on {0}; use TLS"
    )]
    PlainNotLoopback(SocketAddr),
    /// A certificate or key that cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{context}: {message}")]
    Io { context: String, message: String },
}

impl HttpError {
    pub(crate) fn io(context: impl Into<String>, e: &std::io::Error) -> HttpError {
        HttpError::Io {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Limits on what one client may take from the endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest request body (AWS KMS requests are a few KiB: a policy is at
    /// most 32 KiB, a plaintext 4 KiB); larger is HTTP 413.
    pub max_body: usize,
    /// Largest request head (request line and headers); larger is HTTP 431.
    pub max_header_bytes: usize,
    /// Time to send a request head; also how long a keep-alive connection
    /// may idle between requests.
    pub header_timeout: Duration,
    /// Time to send a request body once its head arrived.
    pub body_timeout: Duration,
    /// Time to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Requests per second per principal (ThrottlingException beyond).
    pub rate: Option<RateLimit>,
    /// At shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 1 << 20,
            max_header_bytes: 16 << 10,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            rate: Some(RateLimit::per_second(DEFAULT_RATE_PER_PRINCIPAL)),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Default requests per second per principal: above what the engine serves
/// on a small machine, so that it bounds one runaway client among many
/// rather than a benchmark.
pub const DEFAULT_RATE_PER_PRINCIPAL: u32 = 50_000;

/// An endpoint running on its own thread and runtime (tests, tools); the
/// daemon runs [`Endpoint::serve`] on its own runtime instead.
#[derive(Debug)]
pub struct RunningEndpoint {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), HttpError>>>,
}

impl RunningEndpoint {
    /// Binds `addr` (port 0: any free port) and serves `endpoint` on a new
    /// thread with a runtime of `workers` threads.
    pub fn start(
        endpoint: Endpoint,
        addr: SocketAddr,
        workers: usize,
    ) -> Result<RunningEndpoint, HttpError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()
            .map_err(|e| HttpError::io("starting the runtime", &e))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| HttpError::io(format!("binding {addr}"), &e))?;
        let local = listener
            .local_addr()
            .map_err(|e| HttpError::io("reading the listening address", &e))?;
        server::check_plain(endpoint.has_tls(), local)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kms-https".into())
            .spawn(move || {
                rt.block_on(Arc::new(endpoint).serve(listener, async {
                    let _ = rx.await;
                }))
            })
            .map_err(|e| HttpError::io("starting the endpoint thread", &e))?;
        Ok(RunningEndpoint {
            addr: local,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for in-flight requests, joins the thread.
    pub fn stop(mut self) -> Result<(), HttpError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), HttpError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(HttpError::Io {
                context: "the endpoint thread".into(),
                message: "panicked".into(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        let lo: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8443".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        assert!(server::check_plain(false, lo).is_ok());
        assert!(server::check_plain(false, lo6).is_ok());
        let e = server::check_plain(false, any).unwrap_err();
        assert!(e.to_string().contains("only on a loopback address"), "{e}");
        assert!(server::check_plain(true, any).is_ok());
    }
}
