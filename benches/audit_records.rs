//! Audit records per second: fdatasync per record (the default) and batched,
//! one writer thread and four, on the file system of the temp directory.
//! Prints the median of 5 runs, the CPU time of the process per record
//! (median and lowest of the runs: the CPU an append costs, which a busy
//! machine inflates less than the rate), and for fdatasync per record how
//! many records shared one flush (group commit). `cargo bench --bench audit_records`
//! (`BENCH_DIR` picks the file system, default the current directory; an
//! argument runs only the cases whose name contains it, e.g. `-- batched`).

// A benchmark: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use kms_engine::audit::{AuditEvent, FileAuditTrail, SyncMode, TrailOptions};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_time: "2026-03-01T10:00:00Z".into(),
        event_name: "Decrypt".into(),
        principal: "uid:1000".into(),
        invoked_by: None,
        key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        encryption_context: Some(kms_engine::context::context_from([
            ("kmsfs:volume", "vol-1"),
            ("kmsfs:path", "/finance/2026/q1/report.txt"),
        ])),
        request_id: format!("req-{i}"),
        error_code: None,
        error_message: None,
        request_parameters: None,
        access_key_id: None,
        source_ip_address: None,
        event_id: None,
    }
}

/// CPU time of the whole process (every thread, user + system).
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Records per second, records per group-commit flush, CPU µs per record.
fn run(sync: SyncMode, threads: u64, per_thread: u64) -> (f64, f64, f64) {
    let dir =
        tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    let trail = FileAuditTrail::open(
        dir.path(),
        Zeroizing::new([1u8; 32]),
        TrailOptions {
            sync,
            ..TrailOptions::default()
        },
    )
    .unwrap();
    let events: Vec<AuditEvent> = (0..threads * per_thread).map(event).collect();
    let cpu0 = process_cpu();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let trail = &trail;
            let events = &events;
            s.spawn(move || {
                for i in 0..per_thread {
                    trail
                        .append(&events[(t * per_thread + i) as usize])
                        .unwrap();
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu() - cpu0;
    let flushes = trail.group_flushes();
    drop(trail);
    let n = (threads * per_thread) as f64;
    (
        n / secs,
        n / flushes.max(1) as f64,
        cpu.as_secs_f64() * 1e6 / n,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let batched = SyncMode::Batched {
        max_records: 256,
        max_delay: Duration::from_millis(50),
    };
    let cases: [(&str, SyncMode, u64, u64); 4] = [
        (
            "fdatasync per record, 1 thread ",
            SyncMode::EveryRecord,
            1,
            2000,
        ),
        (
            "fdatasync per record, 4 threads",
            SyncMode::EveryRecord,
            4,
            500,
        ),
        ("batched (256 / 50 ms), 1 thread ", batched, 1, 20000),
        ("batched (256 / 50 ms), 4 threads", batched, 4, 5000),
    ];
    // An optional argument picks the cases whose name contains it.
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    for (name, sync, threads, n) in cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let runs: Vec<(f64, f64, f64)> = (0..5).map(|_| run(sync, threads, n)).collect();
        let rate = median(runs.iter().map(|r| r.0).collect());
        let cpu = median(runs.iter().map(|r| r.2).collect());
        let cpu_min = runs.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
        print!(
            "audit records/s, {name}: median {rate:>9.0}, CPU µs/record {cpu:>5.2} (lowest {cpu_min:.2})"
        );
        if sync == SyncMode::EveryRecord {
            let per = median(runs.iter().map(|r| r.1).collect());
            print!("  ({per:.2} records per fdatasync)");
        }
        println!();
    }
}
