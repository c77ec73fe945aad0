//! The file trail on real files: rotation, reopening, crash debris,
//! concurrent writer processes, write failures, batched sync, background
//! digests and queries.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::audit_support;

use audit_support::*;
use kms_engine::KmsError;
use kms_engine::audit::query::{self, Filter, Follower};
use kms_engine::audit::{AuditError, AuditSink, FileAuditTrail, SyncMode, TrailOptions, verify};
use std::process::Command;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

#[test]
fn segments_rotate_by_size_and_are_named_by_first_sequence() {
    let t = tempfile::tempdir().unwrap();
    let trail = open(
        t.path(),
        TrailOptions {
            max_segment_bytes: 2000,
            ..options()
        },
    );
    for i in 1..=25 {
        trail.append(&event(i)).unwrap();
    }
    drop(trail);
    let segs = segments(t.path());
    assert!(segs.len() >= 5, "{segs:?}");
    let mut max_record = 0;
    for seg in &segs {
        let lines = read_lines(seg);
        let first = parse(&lines[0])["sequenceNumber"].as_u64().unwrap();
        assert_eq!(file_name(seg), format!("segment-{first:020}.jsonl"));
        for l in &lines {
            max_record = max_record.max(l.len() as u64 + 1);
        }
        // A segment is closed once it reaches the size: at most one record past it.
        assert!(std::fs::metadata(seg).unwrap().len() < 2000 + max_record);
    }
    assert!(verify(t.path(), &public_key()).unwrap().is_valid());
}

#[test]
fn reopened_trail_continues_the_chain_and_seals_on_close() {
    let t = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let trail = open(t.path(), options());
        for i in 1..=4 {
            assert_eq!(trail.append(&event(i)).unwrap(), round * 4 + i);
        }
        // Dropping writes the final digest.
    }
    let r = verify(t.path(), &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!((r.records, r.digests, r.unsealed_records), (12, 3, 0));
    let pem = std::fs::read_to_string(t.path().join("public-key")).unwrap();
    assert_eq!(
        kms_engine::audit::PublicKey::parse(&pem).unwrap(),
        public_key()
    );
}

#[test]
fn a_trail_signed_by_another_key_is_refused() {
    let t = tempfile::tempdir().unwrap();
    drop(open(t.path(), options()));
    let err = FileAuditTrail::open(t.path(), Zeroizing::new([9u8; 32]), options()).unwrap_err();
    assert!(matches!(err, AuditError::ForeignTrail { .. }), "{err}");
}

#[test]
fn torn_final_line_is_removed_by_the_next_writer() {
    let t = tempfile::tempdir().unwrap();
    let trail = open(t.path(), options());
    for i in 1..=3 {
        trail.append(&event(i)).unwrap();
    }
    std::mem::forget(trail);
    let seg = segments(t.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(b"{\"eventVersion\":\"1.0");
    std::fs::write(&seg, &bytes).unwrap();
    let r = verify(t.path(), &public_key()).unwrap();
    assert!(
        r.is_valid(),
        "a torn, unacknowledged write is not tampering"
    );
    assert!(r.torn_tail.is_some());
    let trail = open(t.path(), options());
    assert_eq!(trail.append(&event(4)).unwrap(), 4);
    drop(trail);
    let r = verify(t.path(), &public_key()).unwrap();
    assert!(r.is_valid() && r.torn_tail.is_none(), "{r:?}");
    assert_eq!(r.records, 4);
}

const CHILD_ENV: &str = "KMSFS_AUDIT_TEST_CHILD_DIR";

/// Not a test on its own: the body of each writer process of
/// `two_processes_append_one_chain`, which runs it with `--ignored` and
/// `CHILD_ENV` set (run alone it fails rather than pass without doing
/// anything). Prints `WROTE <n>` once its appends are done.
#[test]
#[ignore = "run as a child process by two_processes_append_one_chain"]
fn child_writer_process() {
    let dir = std::env::var(CHILD_ENV).expect("started without its parent test's directory");
    let trail = open(
        std::path::Path::new(&dir),
        TrailOptions {
            max_segment_bytes: 8000,
            digest_every_records: 25,
            ..options()
        },
    );
    std::thread::scope(|s| {
        for th in 0..2u64 {
            let trail = &trail;
            s.spawn(move || {
                for i in 0..60 {
                    trail.append(&event(th * 1000 + i)).unwrap();
                }
            });
        }
    });
    println!("WROTE 120");
}

#[test]
fn two_processes_append_one_chain() {
    let t = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "audit_trail::child_writer_process",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, t.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        // The child test really ran (a filter that matches nothing passes too).
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("WROTE 120"), "{stdout}");
    }
    let r = verify(t.path(), &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.records, 240);
    assert_eq!(r.unsealed_records, 0);
    assert!(r.segments > 1 && r.digests >= 9, "{r:?}");
    // Every request id (each process writes the same 120) appears once per process.
    let all = query::show(t.path(), &Filter::default()).unwrap();
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for s in &all {
        *counts
            .entry(s.record["requestID"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 120);
    assert!(counts.values().all(|c| *c == 2), "{counts:?}");
}

#[test]
fn audit_dir_that_is_a_file_cannot_be_opened() {
    let t = tempfile::tempdir().unwrap();
    let not_dir = t.path().join("audit");
    std::fs::write(&not_dir, b"x").unwrap();
    let err = FileAuditTrail::open(&not_dir, Zeroizing::new(SEED), options()).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err}");
}

#[test]
fn removed_audit_dir_makes_record_fail() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = open(
        &dir,
        TrailOptions {
            max_segment_bytes: 1,
            ..options()
        },
    );
    trail.record(&event(1)).unwrap();
    // The directory is replaced by a file: the next segment cannot be created.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"x").unwrap();
    let err = trail.record(&event(2)).unwrap_err();
    assert!(matches!(err, KmsError::Internal(_)), "{err}");
    std::mem::forget(trail);
}

/// Unmounts the tmpfs even if the test fails.
struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_makes_record_fail_and_leaves_a_valid_trail() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(st.success(), "this test needs root to mount a tmpfs");
    let _guard = Unmount(mnt.clone());
    let dir = mnt.join("audit");
    let trail = open(&dir, options());
    let mut written = 0u64;
    let err = loop {
        match trail.record(&event(written + 1)) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 10_000, "64 KiB never filled up");
    };
    assert!(matches!(err, KmsError::Internal(_)), "{err}");
    assert!(written > 10);
    std::mem::forget(trail);
    // Every acknowledged record is intact; the failed one left nothing behind.
    let r = verify(&dir, &public_key()).unwrap();
    assert_eq!(r.last_sequence, written, "{r:?}");
    assert!(r.is_valid(), "{r:?}");
}

#[test]
fn batched_sync_trail_verifies() {
    let t = tempfile::tempdir().unwrap();
    let trail = open(
        t.path(),
        TrailOptions {
            sync: SyncMode::Batched {
                max_records: 8,
                max_delay: Duration::from_millis(50),
            },
            max_segment_bytes: 3000,
            ..options()
        },
    );
    for i in 1..=30 {
        trail.append(&event(i)).unwrap();
    }
    trail.close().unwrap();
    let r = verify(t.path(), &public_key()).unwrap();
    assert!(
        r.is_valid() && r.records == 30 && r.unsealed_records == 0,
        "{r:?}"
    );
}

/// A trail flushing in batches of `max_records` or after `max_delay`.
fn batched(
    dir: &std::path::Path,
    max_records: u32,
    max_delay: Duration,
    background: bool,
) -> FileAuditTrail {
    let sync = SyncMode::Batched {
        max_records,
        max_delay,
    };
    open(
        dir,
        TrailOptions {
            sync,
            background,
            ..options()
        },
    )
}

/// `sync` flushes a batch that is not due yet (what an fsync on a mount
/// with `--audit-flush-ms` asks before it reports a file durable), is free
/// when an earlier flush covered every record (an fsync-heavy program pays
/// no fdatasync of the trail per fsync), and when every record is synced
/// on its own.
#[test]
fn sync_flushes_a_pending_batch_at_once() {
    let t = tempfile::tempdir().unwrap();
    let trail = batched(t.path(), 1000, Duration::from_secs(3600), false);
    for i in 1..=3 {
        trail.append(&event(i)).unwrap();
    }
    assert_eq!(trail.batch_flushes(), 0, "nothing due yet");
    trail.sync().unwrap();
    assert_eq!(trail.batch_flushes(), 1);
    trail.sync().unwrap();
    assert_eq!(trail.batch_flushes(), 1, "nothing appended since");
    trail.append(&event(4)).unwrap();
    AuditSink::sync(&trail).unwrap();
    assert_eq!(trail.batch_flushes(), 2, "the sink's sync is the trail's");
    AuditSink::sync(&trail).unwrap();
    assert_eq!(trail.batch_flushes(), 2);
    // A due batch flushed by the append itself covers what came before.
    let t3 = tempfile::tempdir().unwrap();
    let small = batched(t3.path(), 2, Duration::from_secs(3600), false);
    small.append(&event(1)).unwrap();
    small.append(&event(2)).unwrap();
    assert_eq!(small.batch_flushes(), 1, "the second record made it due");
    small.sync().unwrap();
    assert_eq!(small.batch_flushes(), 1);
    small.append(&event(3)).unwrap();
    small.sync().unwrap();
    assert_eq!(small.batch_flushes(), 2);

    let t2 = tempfile::tempdir().unwrap();
    let every = open(t2.path(), options());
    every.append(&event(1)).unwrap();
    let flushes = every.group_flushes();
    every.sync().unwrap();
    assert_eq!(every.group_flushes(), flushes);
    assert_eq!(every.batch_flushes(), 0);
}

/// The background thread's timed flush of a batch counts as covering its
/// records: a `sync` after it flushes nothing.
#[test]
fn sync_after_the_background_flush_is_free() {
    let t = tempfile::tempdir().unwrap();
    let trail = batched(t.path(), 1000, Duration::from_millis(20), true);
    trail.append(&event(1)).unwrap();
    // Wait (bounded) for the timed flush; no assertion on how long it took.
    let deadline = Instant::now() + Duration::from_secs(30);
    while trail.batch_flushes() == 0 {
        assert!(Instant::now() < deadline, "no background flush in 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    trail.sync().unwrap();
    assert_eq!(trail.batch_flushes(), 1);
}

#[test]
fn background_thread_seals_an_idle_trail() {
    let t = tempfile::tempdir().unwrap();
    let trail = open(
        t.path(),
        TrailOptions {
            background: true,
            digest_every: Duration::from_millis(100),
            ..TrailOptions::default()
        },
    );
    trail.append(&event(1)).unwrap();
    // Wait (bounded) for the digest; no assertion on how long it took.
    let deadline = Instant::now() + Duration::from_secs(30);
    while digests(t.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no digest written by the background thread"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = verify(t.path(), &public_key()).unwrap();
    assert!(r.is_valid() && r.sealed_through == 1, "{r:?}");
    drop(trail);
}

#[test]
fn show_filters_and_follower_sees_new_records() {
    let t = tempfile::tempdir().unwrap();
    let trail = open(
        t.path(),
        TrailOptions {
            max_segment_bytes: 1500,
            ..options()
        },
    );
    for i in 1..=20 {
        trail.append(&event(i)).unwrap();
    }
    let f = |f: Filter| query::show(t.path(), &f).unwrap().len();
    assert_eq!(f(Filter::default()), 20);
    assert_eq!(
        f(Filter {
            errors_only: true,
            ..Filter::default()
        }),
        4
    );
    assert_eq!(
        f(Filter {
            principal: Some("uid:1001".into()),
            ..Filter::default()
        }),
        10
    );
    assert_eq!(
        f(Filter {
            event_name: Some("GenerateDataKey".into()),
            ..Filter::default()
        }),
        6
    );
    assert_eq!(
        f(Filter {
            key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
            ..Filter::default()
        }),
        20
    );
    assert_eq!(
        f(Filter {
            key_id: Some("other".into()),
            ..Filter::default()
        }),
        0
    );
    // event(i) is at 10:00:i
    assert_eq!(
        f(Filter {
            since: Some(query::parse_time("2026-03-01T10:00:05Z").unwrap()),
            until: Some(query::parse_time("2026-03-01T10:00:09Z").unwrap()),
            ..Filter::default()
        }),
        5
    );
    assert!(query::parse_time("yesterday").is_err());
    let tail = query::tail(t.path(), 3).unwrap();
    assert_eq!(tail.len(), 3);
    assert!(tail[0].to_text().contains("#18 "), "{}", tail[0].to_text());

    let mut follower = Follower::from_end(t.path()).unwrap();
    assert!(follower.poll().unwrap().is_empty());
    for i in 21..=30 {
        trail.append(&event(i)).unwrap();
    }
    let seqs: Vec<u64> = follower
        .poll()
        .unwrap()
        .iter()
        .map(|r| r.record["sequenceNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
}

/// Audit files are 0600 in a 0700 directory whatever the umask, and stay
/// so at every open; a symlink planted at the next segment's name makes
/// the append fail without following it.
#[test]
fn audit_files_are_private_and_planted_symlinks_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let check_private = || {
        assert_eq!(mode(&dir), 0o700);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    };
    let trail = open(&dir, options());
    trail.append(&event(1)).unwrap();
    drop(trail);
    check_private();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seg = segments(&dir).remove(0);
    std::fs::set_permissions(&seg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let trail = open(&dir, options());
    trail.append(&event(2)).unwrap();
    drop(trail);
    check_private();

    // The next segment (rotation after every record) is a planted symlink.
    let victim = t.path().join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    let trail = open(
        &dir,
        TrailOptions {
            max_segment_bytes: 1,
            ..options()
        },
    );
    assert_eq!(trail.append(&event(3)).unwrap(), 3);
    let next = dir.join(kms_engine::audit::segment::segment_name(4));
    std::os::unix::fs::symlink(&victim, &next).unwrap();
    trail.append(&event(4)).unwrap_err();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    drop(trail);
    std::fs::remove_file(&next).unwrap();
    let trail = open(&dir, options());
    trail.append(&event(4)).unwrap();
    drop(trail);
    check_private();
    assert!(verify(&dir, &public_key()).unwrap().is_valid());
}

/// A record of a call made on behalf of another principal carries
/// `userIdentity.invokedBy` inside the hash chain: the trail verifies, a
/// record without it is byte-for-byte what older builds wrote (the other
/// tests' trails), `audit show --principal` finds it under the client too,
/// and editing the client breaks verification.
#[test]
fn invoked_by_is_chained_shown_and_found() {
    let t = tempfile::tempdir().unwrap();
    let trail = open(t.path(), options());
    for i in 1..=4 {
        let mut ev = event(i);
        if i == 2 {
            ev.principal = "uid:54322".into();
            ev.invoked_by = Some("uid:54321".into());
        }
        trail.append(&ev).unwrap();
    }
    trail.close().unwrap();
    assert!(verify(t.path(), &public_key()).unwrap().is_valid());
    let by_client = query::show(
        t.path(),
        &Filter {
            principal: Some("uid:54321".into()),
            ..Filter::default()
        },
    )
    .unwrap();
    assert_eq!(by_client.len(), 1);
    assert!(by_client[0].line.contains(
        r#""userIdentity":{"invokedBy":"uid:54321","principal":"uid:54322","type":"LocalUser"}"#
    ));
    assert!(
        by_client[0].to_text().contains(" uid:54322 via uid:54321 "),
        "{}",
        by_client[0].to_text()
    );
    let plain = query::show(t.path(), &Filter::default()).unwrap();
    assert!(!plain[0].line.contains("invokedBy"));
    // The client is covered by the record's hash.
    let seg = segments(t.path()).remove(0);
    let text = std::fs::read_to_string(&seg).unwrap();
    std::fs::write(&seg, text.replace("uid:54321", "uid:54320")).unwrap();
    assert!(!verify(t.path(), &public_key()).unwrap().is_valid());
}
