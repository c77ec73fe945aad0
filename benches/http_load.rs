//! A keep-alive HTTP/1.1 load generator for `benches/http_decrypt.sh`: N
//! clients, each on its own connection (TLS when given a CA file), replay
//! one pre-signed request (raw bytes from a file: a SigV4 signature stays
//! valid for 15 minutes, so signing stays out of the measured loop) for a
//! fixed time and report requests/s and latency percentiles as one JSON
//! line. Every response must be HTTP 200, else the run fails. A server
//! that closes the connection after a response (`Connection: close`, as
//! moto_server's werkzeug does) is reconnected to, inside the next
//! request's latency, and the reconnections are counted.
//!
//! `http_load ADDR HOST CA|- REQUEST_FILE CLIENTS SECONDS`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failure aborts the run

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    host: String,
    ca: Option<String>,
    request: Vec<u8>,
    clients: usize,
    secs: f64,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if a.len() != 6 {
        eprintln!("usage: http_load ADDR HOST CA|- REQUEST_FILE CLIENTS SECONDS");
        std::process::exit(2);
    }
    Args {
        addr: a[0].clone(),
        host: a[1].clone(),
        ca: (a[2] != "-").then(|| a[2].clone()),
        request: std::fs::read(&a[3]).unwrap(),
        clients: a[4].parse().unwrap(),
        secs: a[5].parse().unwrap(),
    }
}

/// A connection, TLS or not.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a client (re)connects.
#[derive(Clone)]
struct Connector {
    addr: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl Connector {
    async fn connect(&self) -> Box<dyn Io> {
        let tcp = TcpStream::connect(&self.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        match &self.tls {
            Some((c, name)) => Box::new(c.connect(name.clone(), tcp).await.unwrap()),
            None => Box::new(tcp),
        }
    }
}

/// Reads one response (status line, headers, Content-Length body) into
/// `buf`; returns the status and whether the server closes the connection
/// after it (`Connection: close`). `buf` keeps bytes past the response.
async fn read_response<S: AsyncRead + Unpin + ?Sized>(s: &mut S, buf: &mut Vec<u8>) -> (u16, bool) {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            let status: u16 = head[9..12].parse().unwrap();
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let total = end + 4 + len;
            while buf.len() < total {
                fill(s, buf).await;
            }
            buf.drain(..total);
            return (status, close);
        }
        fill(s, buf).await;
    }
}

async fn fill<S: AsyncRead + Unpin + ?Sized>(s: &mut S, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16384];
    let n = s.read(&mut chunk).await.unwrap();
    assert!(n > 0, "the server closed the connection");
    buf.extend_from_slice(&chunk[..n]);
}

/// One client: requests until `deadline`, each latency in microseconds,
/// and how many times the server closed the connection (each reconnection
/// is part of the next request's latency, as for any client).
async fn client(
    conn: Connector,
    mut s: Box<dyn Io>,
    req: Arc<Vec<u8>>,
    deadline: Instant,
) -> (Vec<u32>, u64) {
    let mut lat = Vec::with_capacity(1 << 16);
    let mut buf = Vec::with_capacity(16384);
    let mut reconnects = 0;
    let mut closed = false;
    while Instant::now() < deadline {
        let t = Instant::now();
        if closed {
            s = conn.connect().await;
            buf.clear();
            reconnects += 1;
        }
        s.write_all(&req).await.unwrap();
        let (status, close) = read_response(&mut *s, &mut buf).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&buf));
        closed = close;
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    (lat, reconnects)
}

fn tls_connector(ca: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn main() {
    let a = args();
    // The client side gets one thread: the server under test has the rest.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (lat, reconnects) = rt.block_on(async {
        let req = Arc::new(a.request.clone());
        let conn = Connector {
            addr: a.addr.clone(),
            tls: a.ca.as_deref().map(|ca| {
                let name = ServerName::try_from(a.host.clone()).unwrap();
                (tls_connector(ca), name)
            }),
        };
        let mut streams = Vec::new();
        for _ in 0..a.clients {
            streams.push(conn.connect().await);
        }
        let start = Instant::now() + Duration::from_millis(200);
        let deadline = start + Duration::from_secs_f64(a.secs);
        let mut tasks = Vec::new();
        for s in streams {
            let (req, conn) = (req.clone(), conn.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                client(conn, s, req, deadline).await
            }));
        }
        let mut all = Vec::new();
        let mut reconnects = 0;
        for t in tasks {
            let (lat, r) = t.await.unwrap();
            all.extend(lat);
            reconnects += r;
        }
        (all, reconnects)
    });
    let mut lat = lat;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{{\"clients\":{},\"requests\":{},\"reconnects\":{},\"seconds\":{},\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{}}}",
        a.clients,
        lat.len(),
        reconnects,
        a.secs,
        lat.len() as f64 / a.secs,
        pct(0.50),
        pct(0.99)
    );
}
