//! The engine through its Unix socket: Decrypt of a 32-byte data key (the
//! call every file open makes with the data-key cache off), ops/s with 1
//! and with 4 client connections (one thread each), 4 threads sharing one
//! connection, and p50/p99 latency at 1 connection. The daemon runs in this
//! process on a 2-worker tokio runtime; clients are real `Client`s on real
//! sockets. Each configuration is measured with the audit sink discarding
//! records (`NullSink`, as `engine_ops`) and with a real audit trail on
//! the temp dir's filesystem, flushed in batches (`--audit-flush-ms`) and
//! flushed before every answer (the daemon's default). Prints medians of
//! several runs, and the process's CPU time (clients and server: they
//! share this process) per call, less sensitive to a loaded machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failure aborts the run

use kms_engine::audit::{AuditSink, FileAuditTrail, NullSink, SyncMode, TrailOptions};
use kms_engine::service::{Client, ServerConfig, Transport, serve};
use kms_engine::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const RUNS: usize = 5;
const SECS: f64 = 2.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Bench {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    request: Value,
    _rt: tokio::runtime::Runtime,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn setup(sync: Option<SyncMode>) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKeySource::Key(Zeroizing::new([1u8; 32]));
    let sink: Arc<dyn AuditSink> = match sync {
        Some(sync) => {
            let opts = TrailOptions {
                sync,
                ..TrailOptions::default()
            };
            Arc::new(
                FileAuditTrail::open(dir.path().join("audit"), Zeroizing::new([9u8; 32]), opts)
                    .unwrap(),
            )
        }
        None => Arc::new(NullSink),
    };
    let engine = Engine::create(
        &dir.path().join("engine"),
        root,
        KdfParams::insecure_for_tests(),
        Arc::new(SystemClock),
        sink,
    )
    .unwrap();
    let me = Principal::current_process();
    let key = engine
        .create_key(&me, CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let ctx =
        json!({"kmsfs:volume": "0f6c1d2e-volume", "kmsfs:path": "/home/alice/docs/report.odt"});
    let gdk = engine
        .dispatch(
            &me,
            "GenerateDataKey",
            json!({"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx}),
        )
        .unwrap();
    let request = json!({"CiphertextBlob": gdk["CiphertextBlob"], "EncryptionContext": ctx});
    let socket = dir.path().join("engine.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kmsfs-engine")
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(async { tokio::net::UnixListener::bind(&socket) })
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(serve(
        Arc::new(engine),
        listener,
        ServerConfig::default(),
        async {
            let _ = rx.await;
        },
    ));
    Bench {
        _dir: dir,
        socket,
        request,
        _rt: rt,
        _stop: tx,
    }
}

fn decrypt(c: &Client, req: &Value) {
    let r = c.call("Decrypt", req.clone(), None).unwrap();
    assert_eq!(r["Plaintext"].as_str().map(str::len), Some(44));
}

/// utime + stime of a `stat` file's text, in µs (the kernel's USER_HZ =
/// 100 ticks per second).
fn stat_cpu_us(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses): state is
    // the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks * 10_000.0
}

/// CPU time (user + system) so far of this whole process, and of the
/// server's threads (the runtime's `kmsfs-engine` workers and the audit
/// trail's `kmsfs-audit-*` threads, which live as long as the server), in
/// µs. The clients' share is the difference.
fn cpu_us() -> (f64, f64) {
    let total = stat_cpu_us(&std::fs::read_to_string("/proc/self/stat").unwrap());
    let mut server = 0.0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) else {
            continue;
        };
        if comm.starts_with("kmsfs")
            && let Ok(stat) = std::fs::read_to_string(t.path().join("stat"))
        {
            server += stat_cpu_us(&stat);
        }
    }
    (total, server)
}

/// One measurement: ops/s, and CPU µs per call of the server and of the
/// clients.
struct Rate {
    ops: f64,
    server_us: f64,
    client_us: f64,
}

/// Ops/s of `threads` threads calling for SECS, each on its own client
/// (`shared` false) or all on one, and the CPU µs per call.
fn rate(b: &Bench, threads: usize, shared: bool) -> Rate {
    let one = Arc::new(Client::connect(&b.socket).unwrap());
    let clients: Vec<Arc<Client>> = (0..threads)
        .map(|_| {
            if shared {
                one.clone()
            } else {
                Arc::new(Client::connect(&b.socket).unwrap())
            }
        })
        .collect();
    for c in &clients {
        decrypt(c, &b.request);
    }
    let start = Instant::now();
    let cpu0 = cpu_us();
    let handles: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let req = b.request.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < SECS {
                    decrypt(&c, &req);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let ops = total as f64 / start.elapsed().as_secs_f64();
    let cpu1 = cpu_us();
    let n = total as f64;
    Rate {
        ops,
        server_us: (cpu1.1 - cpu0.1) / n,
        client_us: ((cpu1.0 - cpu0.0) - (cpu1.1 - cpu0.1)) / n,
    }
}

/// p50 and p99 latency in µs of sequential calls on one connection.
fn latency(b: &Bench) -> (f64, f64) {
    let c = Client::connect(&b.socket).unwrap();
    let mut lat: Vec<f64> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            decrypt(&c, &b.request);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

/// `ENGINE_SOCKET_SINKS`: which sinks to measure (comma-separated among
/// `null`, `batched`, `every`; default all); `ENGINE_SOCKET_RUNS`: runs per
/// configuration (default 5); `ENGINE_SOCKET_CONFIGS`: which client set-ups
/// (among `1`, `4`, `4shared`, `lat`; default all).
fn selected(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |v| v.split(',').any(|s| s == name))
}

fn main() {
    let runs: usize = std::env::var("ENGINE_SOCKET_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS);
    let batched = SyncMode::Batched {
        max_records: 256,
        max_delay: Duration::from_millis(10),
    };
    for (sync, key, sink) in [
        (None, "null", "NullSink"),
        (
            Some(batched),
            "batched",
            "audit trail, batched fdatasync (--audit-flush-ms 10)",
        ),
        (
            Some(SyncMode::EveryRecord),
            "every",
            "audit trail, fdatasync before each answer (default)",
        ),
    ] {
        if !selected("ENGINE_SOCKET_SINKS", key) {
            continue;
        }
        let b = setup(sync);
        println!(
            "engine_socket: Decrypt of a 32-byte data key, daemon in-process (2 tokio workers), {sink}; load average {}",
            load_average()
        );
        for (name, key, threads, shared) in [
            ("1 connection", "1", 1, false),
            ("4 connections", "4", 4, false),
            ("4 threads, 1 conn", "4shared", 4, true),
        ] {
            if !selected("ENGINE_SOCKET_CONFIGS", key) {
                continue;
            }
            let all: Vec<Rate> = (0..runs).map(|_| rate(&b, threads, shared)).collect();
            let rates: Vec<f64> = all.iter().map(|r| r.ops).collect();
            let min = rates.iter().copied().fold(f64::MAX, f64::min);
            let max = rates.iter().copied().fold(0.0, f64::max);
            println!(
                "  {name:<18} median {:>9.0} ops/s  (min {min:.0}, max {max:.0}; {runs} runs x {SECS} s)  CPU/call server {:.1} us, clients {:.1} us",
                median(rates),
                median(all.iter().map(|r| r.server_us).collect()),
                median(all.iter().map(|r| r.client_us).collect()),
            );
        }
        if selected("ENGINE_SOCKET_CONFIGS", "lat") {
            let (p50, p99): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| latency(&b)).unzip();
            println!(
                "  latency, 1 conn   p50 {:.1} us  p99 {:.1} us  (medians of {runs} runs x 20,000 calls)",
                median(p50),
                median(p99)
            );
        }
        println!("  load average after: {}", load_average());
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
