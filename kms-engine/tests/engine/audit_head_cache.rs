//! The chain head a writer caches between appends: another writer's digest
//! or rotation, which leave the cached segment untouched, is still noticed
//! (through the change counter in `<dir>/lock`), so the chain stays valid.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::audit_support;

use audit_support::*;
use kms_engine::audit::query::{self, Filter};
use kms_engine::audit::{TrailOptions, verify};

fn last_digest_of(dir: &std::path::Path, seq: u64) -> u64 {
    query::show(dir, &Filter::default())
        .unwrap()
        .iter()
        .find(|s| s.record["sequenceNumber"].as_u64() == Some(seq))
        .unwrap()
        .record["lastDigestSequence"]
        .as_u64()
        .unwrap()
}

#[test]
fn digest_by_another_writer_is_named_by_the_next_record() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let a = open(&dir, options());
    for i in 1..=3 {
        a.append(&event(i)).unwrap();
    }
    // Another handle (its own lock file description, as another process
    // has) seals without appending: the segment A cached is unchanged.
    let b = open(&dir, options());
    assert_eq!(b.seal().unwrap(), Some(3));
    drop(b);
    assert_eq!(a.append(&event(4)).unwrap(), 4);
    assert_eq!(last_digest_of(&dir, 4), 3);
    a.close().unwrap();
    let r = verify(&dir, &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.records, 4);
}

#[test]
fn rotation_by_a_writer_with_a_smaller_segment_limit_is_followed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let a = open(&dir, options());
    a.append(&event(1)).unwrap();
    a.append(&event(2)).unwrap();
    // B starts a new segment although A's is far from A's limit.
    let b = open(
        &dir,
        TrailOptions {
            max_segment_bytes: 1,
            ..options()
        },
    );
    assert_eq!(b.append(&event(3)).unwrap(), 3);
    std::mem::forget(b);
    // A appends after B's record, in B's segment, not after its own.
    assert_eq!(a.append(&event(4)).unwrap(), 4);
    a.close().unwrap();
    let r = verify(&dir, &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!((r.records, r.segments), (4, 2), "{r:?}");
}

/// Appends by another writer to the segment this one caches (noticed by
/// its size, read without asking for the file's times) and segments
/// removed under their names (no link left) are both followed.
#[test]
fn appends_by_another_writer_and_a_removed_segment_are_noticed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let a = open(&dir, options());
    let b = open(&dir, options());
    for i in 0..10u64 {
        let w = if i % 3 == 0 { &b } else { &a };
        assert_eq!(w.append(&event(i)).unwrap(), i + 1);
    }
    drop(b);
    let r = verify(&dir, &public_key()).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.records, 10);
    // Every segment and digest removed: A starts a new chain instead of
    // going on after a head no longer on disk.
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("segment-") || name.starts_with("digest-") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert_eq!(a.append(&event(11)).unwrap(), 1);
    a.close().unwrap();
}
