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

/// Records appended inside `deferring` are written at once but not waited
/// for: each call's callback runs only after a flush that covers it, one
/// flush covering the records of many callers.
#[test]
fn deferred_records_are_acknowledged_after_a_flush_covering_them() {
    use kms_engine::audit::deferring;
    use std::sync::Arc;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = Arc::new(open(&dir, every_record()));
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64, bool)>();
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let (trail, tx) = (trail.clone(), tx.clone());
            s.spawn(move || {
                for i in 0..50u64 {
                    let before = trail.group_flushes();
                    let (seq, unflushed) = deferring(|| trail.append(&event(th * 100 + i)));
                    let seq = seq.unwrap();
                    assert!(!unflushed.is_empty());
                    let (tx, trail2) = (tx.clone(), trail.clone());
                    unflushed.then(move |r| {
                        // A flush ended after the record was written.
                        let after = trail2.group_flushes();
                        tx.send((seq, after - before, r.is_ok())).unwrap();
                    });
                }
            });
        }
    });
    drop(tx);
    let acks: Vec<(u64, u64, bool)> = rx.iter().collect();
    assert_eq!(acks.len(), 200);
    assert!(acks.iter().all(|(_, flushes, ok)| *ok && *flushes >= 1));
    let seqs: BTreeSet<u64> = acks.iter().map(|a| a.0).collect();
    assert_eq!(seqs, (1..=200).collect::<BTreeSet<u64>>());
    let flushes = trail.group_flushes();
    assert!(flushes <= 200, "{flushes} flushes");
    drop(trail);
    let r = verify(&dir, &public_key()).unwrap();
    assert!(r.is_valid() && r.records == 200, "{r:?}");
}

/// Outside `deferring` nothing changes: `append` returns with the record
/// durable, nothing left to wait for; inside it a batched trail (which
/// never waits for a flush) leaves nothing either.
#[test]
fn only_a_flush_per_record_trail_defers() {
    use kms_engine::audit::deferring;
    let t = tempfile::tempdir().unwrap();
    let trail = open(&t.path().join("a"), every_record());
    let before = trail.group_flushes();
    trail.append(&event(1)).unwrap();
    assert_eq!(trail.group_flushes(), before + 1);
    let batched = open(
        &t.path().join("b"),
        TrailOptions {
            sync: SyncMode::Batched {
                max_records: 10,
                max_delay: std::time::Duration::from_secs(1),
            },
            ..options()
        },
    );
    let (seq, unflushed) = deferring(|| batched.append(&event(2)));
    assert_eq!(seq.unwrap(), 1);
    assert!(unflushed.is_empty());
    // Nested scopes keep their own records.
    let ((inner, outer_seq), outer) = deferring(|| {
        let s = trail.append(&event(3)).unwrap();
        (deferring(|| trail.append(&event(4)).unwrap()), s)
    });
    assert_eq!(outer_seq, 2);
    assert_eq!(inner.0, 3);
    assert!(!inner.1.is_empty() && !outer.is_empty());
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    inner.1.then(move |r| tx.send(r.is_ok()).unwrap());
    outer.then(move |r| tx2.send(r.is_ok()).unwrap());
    assert_eq!(rx.iter().take(2).collect::<Vec<_>>(), [true, true]);
}

/// A trail closed while callbacks wait answers them all (the flusher
/// thread finishes its work before it stops), and the chain verifies.
#[test]
fn closing_the_trail_answers_every_waiting_call() {
    use kms_engine::audit::deferring;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = open(&dir, every_record());
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..100 {
        let (seq, unflushed) = deferring(|| trail.append(&event(i)));
        let (seq, tx) = (seq.unwrap(), tx.clone());
        unflushed.then(move |r| tx.send((seq, r.is_ok())).unwrap());
    }
    trail.close().unwrap();
    drop(tx);
    let acks: Vec<(u64, bool)> = rx.iter().collect();
    assert_eq!(acks.len(), 100);
    assert!(acks.iter().all(|a| a.1));
    let r = verify(&dir, &public_key()).unwrap();
    assert!(
        r.is_valid() && r.records == 100 && r.unsealed_records == 0,
        "{r:?}"
    );
}

/// With the background thread, a digest due by count is written by that
/// thread, not by the appender (signing and fsyncs off the caller's path);
/// the trail verifies and is sealed once the thread has run.
#[test]
fn a_digest_due_by_count_is_written_by_the_background_thread() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = open(
        &dir,
        TrailOptions {
            background: true,
            ..every_record()
        },
    );
    for i in 0..40 {
        trail.append(&event(i)).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = verify(&dir, &public_key()).unwrap();
        assert!(r.is_valid(), "{r:?}");
        if r.sealed_through == 40 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no digest: {r:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(trail);
}
