//! Tamper tests: every kind of edit to a trail is detected by `verify`, which
//! names the first bad record.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::audit_support;

use audit_support::*;
use kms_engine::audit::{
    Anchor, BadRecord, TrailOptions, VerifyOptions, VerifyReport, verify, verify_with,
};
use serde_json::Value;
use std::path::Path;

fn check(dir: &Path) -> VerifyReport {
    verify(dir, &public_key()).unwrap()
}

fn first_bad(dir: &Path) -> BadRecord {
    let r = check(dir);
    let shown = format!("{r:?}");
    r.first_bad
        .unwrap_or_else(|| panic!("tampering not detected: {shown}"))
}

#[test]
fn untouched_trail_is_valid() {
    let (_t, dir) = standard_trail(30);
    let r = check(&dir);
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.records, 30);
    assert_eq!(r.last_sequence, 30);
    assert_eq!(r.sealed_through, 30);
    assert_eq!(r.unsealed_records, 0);
    assert_eq!(r.digests, 3);
    assert!(r.segments >= 4, "{r:?}");
    assert_eq!(r.last_digest.as_ref().unwrap().end_sequence, 30);
}

#[test]
fn edited_field_is_named() {
    let (_t, dir) = standard_trail(30);
    let (seg, idx) = locate(&dir, 5);
    let mut lines = read_lines(&seg);
    lines[idx] = lines[idx].replace("\"uid:1001\"", "\"uid:0\"");
    write_lines(&seg, &lines);
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(5));
    assert_eq!(bad.line, Some(idx + 1));
    assert_eq!(bad.file, seg);
    assert!(bad.reason.contains("hash does not match"), "{bad}");
}

#[test]
fn edit_with_every_later_hash_recomputed_is_named() {
    let (_t, dir) = standard_trail(30);
    // The forger edits record 12 and re-chains everything after it.
    let mut prev: Option<String> = None;
    for seg in segments(&dir) {
        let mut lines = read_lines(&seg);
        for line in lines.iter_mut() {
            let mut rec = parse(line);
            let seq = rec["sequenceNumber"].as_u64().unwrap();
            if seq == 12 {
                rec.insert("eventName".into(), Value::String("Encrypt".into()));
            }
            if seq >= 12 {
                if let Some(p) = &prev {
                    rec.insert("previousHash".into(), Value::String(p.clone()));
                }
                let (l, h) = reseal(rec);
                *line = l;
                prev = Some(h);
            } else {
                prev = Some(rec["hash"].as_str().unwrap().to_string());
            }
        }
        write_lines(&seg, &lines);
    }
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(12), "{bad}");
    assert!(bad.reason.contains("signed"), "{bad}");
}

#[test]
fn deleted_line_is_named() {
    let (_t, dir) = standard_trail(30);
    let (seg, idx) = locate(&dir, 5);
    let mut lines = read_lines(&seg);
    lines.remove(idx);
    write_lines(&seg, &lines);
    let bad = first_bad(&dir);
    assert_eq!(bad.file, seg);
    assert_eq!(bad.line, Some(idx + 1));
    assert_eq!(bad.sequence, Some(6));
    assert!(bad.reason.contains("removed"), "{bad}");
}

/// Inserts after record `after` a forged record that takes its place in the
/// chain, with a correctly recomputed hash.
fn insert_forged(dir: &Path, after: u64) -> (std::path::PathBuf, usize) {
    let (seg, idx) = locate(dir, after);
    let mut lines = read_lines(&seg);
    let prev = parse(&lines[idx]);
    let mut forged = prev.clone();
    forged.insert("sequenceNumber".into(), Value::from(after + 1));
    forged.insert("previousHash".into(), prev["hash"].clone());
    forged.insert(
        "eventName".into(),
        Value::String("ScheduleKeyDeletion".into()),
    );
    let (line, _) = reseal(forged);
    lines.insert(idx + 1, line);
    write_lines(&seg, &lines);
    (seg, idx + 2)
}

#[test]
fn inserted_forged_line_is_named() {
    let (_t, dir) = standard_trail(30);
    let (seg, line) = insert_forged(&dir, 4);
    let bad = first_bad(&dir);
    assert_eq!(
        (bad.file.clone(), bad.line, bad.sequence),
        (seg, Some(line), Some(5)),
        "{bad}"
    );
}

#[test]
fn inserted_forged_line_after_the_last_digest_is_named() {
    // No digest covers the forged line: the chain alone must name it.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = open(
        &dir,
        TrailOptions {
            digest_every_records: 1000,
            ..options()
        },
    );
    for i in 1..=8 {
        trail.append(&event(i)).unwrap();
    }
    drop(trail);
    let trail = open(
        &dir,
        TrailOptions {
            digest_every_records: 1000,
            ..options()
        },
    );
    for i in 9..=12 {
        trail.append(&event(i)).unwrap();
    }
    std::mem::forget(trail); // no final digest: records 9..12 unsealed
    let (seg, line) = insert_forged(&dir, 10);
    let bad = first_bad(&dir);
    assert_eq!(
        (bad.file.clone(), bad.line, bad.sequence),
        (seg, Some(line), Some(11)),
        "{bad}"
    );
    assert!(bad.reason.contains("inserted"), "{bad}");
}

#[test]
fn swapped_lines_are_named() {
    let (_t, dir) = standard_trail(30);
    let (seg, idx) = locate(&dir, 5);
    let (seg6, idx6) = locate(&dir, 6);
    assert_eq!(seg, seg6, "test setup: 5 and 6 in one segment");
    let mut lines = read_lines(&seg);
    lines.swap(idx, idx6);
    write_lines(&seg, &lines);
    let bad = first_bad(&dir);
    assert_eq!((bad.line, bad.sequence), (Some(idx + 1), Some(6)), "{bad}");
    assert!(bad.reason.contains("expected sequence 5"), "{bad}");
}

#[test]
fn removed_last_segment_is_detected() {
    let (_t, dir) = standard_trail(30);
    let segs = segments(&dir);
    let last = segs.last().unwrap();
    let first_missing = parse(&read_lines(last)[0])["sequenceNumber"]
        .as_u64()
        .unwrap();
    std::fs::remove_file(last).unwrap();
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(first_missing), "{bad}");
    assert!(bad.reason.contains("cut off"), "{bad}");
}

#[test]
fn lines_cut_from_the_end_are_detected() {
    let (_t, dir) = standard_trail(30);
    let segs = segments(&dir);
    let last = segs.last().unwrap();
    let mut lines = read_lines(last);
    assert!(lines.len() >= 3);
    lines.truncate(lines.len() - 2);
    write_lines(last, &lines);
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(29), "{bad}");
    assert!(bad.reason.contains("cut off"), "{bad}");
}

#[test]
fn forged_digest_is_detected() {
    let (_t, dir) = standard_trail(30);
    let d = &digests(&dir)[1];
    // Re-sign an edited digest with another key (same fingerprint field).
    let mut digest: kms_engine::audit::digest::Digest =
        serde_json::from_slice(&std::fs::read(d).unwrap()).unwrap();
    let fp = digest.public_key_fingerprint.clone();
    digest.digest_end_sequence = 19;
    let other =
        kms_engine::audit::digest::SigningKey::from_seed(&zeroize::Zeroizing::new([1u8; 32]))
            .unwrap();
    other.sign(&mut digest);
    digest.public_key_fingerprint = fp;
    std::fs::write(d, digest.to_canonical_json()).unwrap();
    let bad = first_bad(&dir);
    assert_eq!(bad.file, *d);
    assert_eq!(bad.sequence, Some(11), "{bad}");
    assert!(bad.reason.contains("signature"), "{bad}");
}

#[test]
fn verify_against_another_public_key_fails() {
    let (_t, dir) = standard_trail(12);
    let other =
        kms_engine::audit::digest::SigningKey::from_seed(&zeroize::Zeroizing::new([1u8; 32]))
            .unwrap();
    let r = verify(&dir, &other.public_key()).unwrap();
    assert!(r.first_bad.unwrap().reason.contains("signature"));
}

#[test]
fn removed_middle_digest_is_detected() {
    let (_t, dir) = standard_trail(30);
    let d = digests(&dir);
    std::fs::remove_file(&d[1]).unwrap();
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(11), "{bad}");
    assert_eq!(file_name(&bad.file), "digest-00000000000000000020.json");
    assert!(bad.reason.contains("digest removed"), "{bad}");
}

#[test]
fn removed_last_digest_is_detected_by_later_records() {
    let (_t, dir) = standard_trail(30);
    let trail = open(&dir, options());
    for i in 31..=33 {
        trail.append(&event(i)).unwrap();
    }
    std::mem::forget(trail); // leave 31..33 unsealed
    std::fs::remove_file(digests(&dir).last().unwrap()).unwrap();
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(31), "{bad}");
    assert!(bad.reason.contains("digest removed"), "{bad}");
}

#[test]
fn unsealed_records_are_reported() {
    let (_t, dir) = standard_trail(30);
    let trail = open(&dir, options());
    for i in 31..=33 {
        trail.append(&event(i)).unwrap();
    }
    std::mem::forget(trail);
    let r = check(&dir);
    assert!(r.is_valid(), "{r:?}");
    assert_eq!((r.sealed_through, r.unsealed_records), (30, 3));
}

#[test]
fn cut_back_to_an_earlier_digest_needs_an_anchor() {
    // The documented limit: cutting the trail back to an earlier digest and
    // removing every later digest leaves a consistent trail. An anchor from
    // an earlier verification catches it.
    let (_t, dir) = standard_trail(30);
    let before = check(&dir);
    let anchor: Anchor = before.last_digest.clone().unwrap();
    std::fs::remove_file(digests(&dir).last().unwrap()).unwrap();
    let mut kept = 0;
    for seg in segments(&dir) {
        let lines: Vec<String> = read_lines(&seg)
            .into_iter()
            .filter(|l| parse(l)["sequenceNumber"].as_u64().unwrap() <= 20)
            .collect();
        kept += lines.len();
        if lines.is_empty() {
            std::fs::remove_file(&seg).unwrap();
        } else {
            write_lines(&seg, &lines);
        }
    }
    assert_eq!(kept, 20);
    assert!(check(&dir).is_valid());
    let r = verify_with(
        &dir,
        &public_key(),
        &VerifyOptions {
            anchor: Some(anchor.clone()),
        },
    )
    .unwrap();
    let bad = r.first_bad.unwrap();
    assert_eq!(bad.sequence, Some(30));
    assert!(bad.reason.contains("anchor"), "{bad}");
    assert_eq!(Anchor::parse(&anchor.to_string()), Some(anchor));
}

#[test]
fn reformatted_record_is_detected() {
    let (_t, dir) = standard_trail(12);
    let (seg, idx) = locate(&dir, 3);
    let mut lines = read_lines(&seg);
    // Same content, other member order: not canonical.
    let v: Value = serde_json::from_str(&lines[idx]).unwrap();
    lines[idx] = serde_json::to_string_pretty(&v).unwrap().replace('\n', "");
    write_lines(&seg, &lines);
    let bad = first_bad(&dir);
    assert_eq!(bad.sequence, Some(3), "{bad}");
}
