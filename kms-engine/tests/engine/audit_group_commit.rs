//! Group commit of the fdatasync-per-record trail: concurrent appenders share
//! flushes, every acknowledged record is in the trail (also after the writer
//! process is killed mid-way), and the chain verifies.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::audit_support;

use audit_support::*;
use kms_engine::audit::query::{self, Filter};
use kms_engine::audit::{SyncMode, TrailOptions, verify};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn every_record() -> TrailOptions {
    TrailOptions {
        sync: SyncMode::EveryRecord,
        max_segment_bytes: 16_000,
        digest_every_records: 40,
        ..options()
    }
}

#[test]
fn concurrent_appenders_all_acknowledged_records_present_after_reopen() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = open(&dir, every_record());
    let acked: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u64)
            .map(|th| {
                let trail = &trail;
                s.spawn(move || {
                    (0..40u64)
                        .map(|i| {
                            let id = th * 1000 + i;
                            (trail.append(&event(id)).unwrap(), id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let flushes = trail.group_flushes();
    assert!((1..=320).contains(&flushes), "{flushes} flushes");
    drop(trail);

    // Reopened, the chain continues after the acknowledged records.
    let trail = open(&dir, every_record());
    let next = trail.append(&event(999_999)).unwrap();
    trail.close().unwrap();
    assert_eq!(next, 321);

    let r = verify(&dir, &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.records, 321);
    assert!(r.segments > 1, "{r:?}");
    let seqs: BTreeSet<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(seqs, (1..=320).collect::<BTreeSet<u64>>());
    let stored = query::show(&dir, &Filter::default()).unwrap();
    for (seq, id) in &acked {
        let rec = stored
            .iter()
            .find(|s| s.record["sequenceNumber"].as_u64() == Some(*seq))
            .unwrap_or_else(|| panic!("record {seq} missing"));
        assert_eq!(rec.record["requestID"], format!("req-{id}"));
    }
}

const CHILD_ENV: &str = "KMSFS_AUDIT_GROUP_CHILD_DIR";

/// Not a test on its own: the writer process of
/// `killed_writer_loses_no_acknowledged_record`, which runs it with
/// `--ignored` and `CHILD_ENV` set (run alone it fails rather than pass
/// without doing anything). Appends from 4 threads forever, printing each
/// acknowledged sequence number.
#[test]
#[ignore = "run as a child process by killed_writer_loses_no_acknowledged_record"]
fn child_group_writer_process() {
    let dir = std::env::var(CHILD_ENV).expect("started without its parent test's directory");
    let trail = open(std::path::Path::new(&dir), every_record());
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let (trail, out) = (&trail, &out);
            s.spawn(move || {
                for i in 0.. {
                    let seq = trail.append(&event(th * 1_000_000 + i)).unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {seq}").unwrap();
                    o.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn killed_writer_loses_no_acknowledged_record() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "audit_group_commit::child_group_writer_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 150 {
        let line = lines.next().expect("writer exited early").unwrap();
        if let Some(n) = line.strip_prefix("ACK ") {
            acked.push(n.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Acknowledgements still in the pipe count too.
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("ACK ") {
            acked.push(n.parse::<u64>().unwrap());
        }
    }

    // The next writer repairs any torn tail and continues the chain.
    let trail = open(&dir, every_record());
    trail.append(&event(7)).unwrap();
    trail.close().unwrap();
    let r = verify(&dir, &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    let stored: BTreeSet<u64> = query::show(&dir, &Filter::default())
        .unwrap()
        .iter()
        .filter_map(|s| s.record["sequenceNumber"].as_u64())
        .collect();
    for seq in &acked {
        assert!(stored.contains(seq), "acknowledged record {seq} lost");
    }
    assert_eq!(stored.len() as u64, r.records);
}
