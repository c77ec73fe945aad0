//! A running HTTPS (or loopback plain HTTP) endpoint over a fresh engine,
//! with two access keys (alice, bob), and a raw HTTP/1.1 client.
#![allow(dead_code)] // each test uses a different subset
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use kms_engine::audit::{AuditEvent, MemorySink};
use kms_engine::service::http::tls::{self, ServerCert};
use kms_engine::service::http::{
    AuthRefusal, Authenticated, Authenticator, Endpoint, Limits, RequestParts, RunningEndpoint,
};
use kms_engine::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub const ALICE_KEY: &str = "AKIAKMSFSALICE000001";
pub const ALICE_SECRET: &str = "alice/secret/0000000000000000000000000000";
pub const BOB_KEY: &str = "AKIAKMSFSBOB00000002";
pub const BOB_SECRET: &str = "bob/secret/000000000000000000000000000000";

pub fn alice() -> Principal {
    let mut p = Principal::from_ids(5001, 5001, vec![]);
    p.user_name = Some("alice".into());
    p
}

pub fn bob() -> Principal {
    let mut p = Principal::from_ids(5002, 5002, vec![]);
    p.user_name = Some("bob".into());
    p
}

/// For the wire and limits tests, which write requests by hand: accepts
/// the access key id named in `Authorization`'s `Credential=` without
/// checking the signature. `sigv4.rs` tests the real verifier
/// ([`kms_engine::service::http::SigV4Authenticator`]).
pub struct CredentialOnly;

impl Authenticator for CredentialOnly {
    fn authenticate(&self, req: &RequestParts<'_>) -> Result<Authenticated, AuthRefusal> {
        let header = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthRefusal {
                exception: "MissingAuthenticationTokenException",
                message: "Missing Authentication Token".into(),
                access_key_id: None,
            })?;
        let akid = header
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .unwrap_or("")
            .to_string();
        let principal = match akid.as_str() {
            ALICE_KEY => alice(),
            BOB_KEY => bob(),
            _ => {
                return Err(AuthRefusal {
                    exception: "UnrecognizedClientException",
                    message: "The security token included in the request is invalid.".into(),
                    access_key_id: Some(akid),
                });
            }
        };
        Ok(Authenticated {
            access_key_id: akid,
            principal,
        })
    }
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub sink: Arc<MemorySink>,
    pub engine: Arc<Engine>,
    pub cert: Option<ServerCert>,
    pub running: Option<RunningEndpoint>,
}

pub fn passphrase() -> RootKeySource {
    RootKeySource::Passphrase(Zeroizing::new("correct horse".to_string()))
}

impl Server {
    /// HTTPS with the engine's self-signed certificate.
    pub fn https() -> Server {
        Server::start(true, Limits::default())
    }

    /// Plain HTTP on 127.0.0.1 with `limits`.
    pub fn plain(limits: Limits) -> Server {
        Server::start(false, limits)
    }

    pub fn start(with_tls: bool, limits: Limits) -> Server {
        Server::start_with(with_tls, limits, |_| Arc::new(CredentialOnly))
    }

    /// HTTPS with the engine's self-signed certificate, authenticating
    /// with the authenticator `auth` makes for the engine.
    pub fn start_with(
        with_tls: bool,
        limits: Limits,
        auth: impl FnOnce(Arc<Engine>) -> Arc<dyn Authenticator>,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(MemorySink::default());
        let engine = Arc::new(
            Engine::create(
                &dir.path().join("engine"),
                passphrase(),
                KdfParams::insecure_for_tests(),
                Arc::new(SystemClock),
                sink.clone(),
            )
            .unwrap(),
        );
        let cert = with_tls.then(|| tls::self_signed(&dir.path().join("engine"), &[]).unwrap());
        let endpoint = Endpoint::new(
            engine.clone(),
            auth(engine.clone()),
            cert.as_ref().map(|c| c.config.clone()),
            limits,
        );
        let running = RunningEndpoint::start(endpoint, "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        Server {
            dir,
            sink,
            engine,
            cert,
            running: Some(running),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().addr()
    }

    pub fn url(&self) -> String {
        let scheme = if self.cert.is_some() { "https" } else { "http" };
        format!("{scheme}://localhost:{}", self.addr().port())
    }

    pub fn events(&self) -> Vec<AuditEvent> {
        self.sink.events()
    }

    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().unwrap();
        }
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// `__type` of an error body.
    pub fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or("").to_string()
    }
}

/// One connection speaking HTTP/1.1.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// A signed-looking KMS call as `akid`.
    pub fn call(&mut self, akid: &str, op: &str, body: &str) -> Reply {
        let req = kms_request(akid, op, body);
        self.send_raw(&req);
        self.read_reply().unwrap()
    }

    /// Reads one response; `None` when the server closed the connection.
    pub fn read_reply(&mut self) -> Option<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body).ok()?;
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    /// True when the server closed the connection (EOF before any byte).
    pub fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// The bytes of a KMS request with an `Authorization` naming `akid`.
pub fn kms_request(akid: &str, op: &str, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.{op}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={akid}/20260101/local/kms/aws4_request, \
         SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
