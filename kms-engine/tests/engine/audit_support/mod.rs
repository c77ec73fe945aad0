//! Helpers shared by the audit integration tests.
// Test-only helpers: a failed unwrap is a failed test; not every test uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use kms_engine::audit::{AuditEvent, FileAuditTrail, PublicKey, SyncMode, TrailOptions};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

pub const SEED: [u8; 32] = [42u8; 32];

pub fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_time: format!("2026-03-01T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        event_name: if i.is_multiple_of(3) {
            "GenerateDataKey"
        } else {
            "Decrypt"
        }
        .into(),
        principal: format!("uid:{}", 1000 + i % 2),
        invoked_by: None,
        key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        encryption_context: Some(kms_engine::context::context_from([
            ("kmsfs:volume", "vol-1"),
            ("kmsfs:path", "/finance/report.txt"),
        ])),
        request_id: format!("req-{i}"),
        error_code: i
            .is_multiple_of(5)
            .then(|| "AccessDeniedException".to_string()),
        error_message: i.is_multiple_of(5).then(|| "not allowed".to_string()),
        request_parameters: None,
        access_key_id: None,
        source_ip_address: None,
        event_id: None,
    }
}

pub fn options() -> TrailOptions {
    TrailOptions {
        background: false,
        ..TrailOptions::default()
    }
}

pub fn open(dir: &Path, opts: TrailOptions) -> FileAuditTrail {
    FileAuditTrail::open(dir, Zeroizing::new(SEED), opts).unwrap()
}

pub fn public_key() -> PublicKey {
    let t = tempfile::tempdir().unwrap();
    open(t.path(), options()).export_public_key()
}

/// A trail of `n` records, a digest every 10, segments of about 7 records.
pub fn standard_trail(n: u64) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let trail = open(
        &dir,
        TrailOptions {
            max_segment_bytes: 4000,
            digest_every_records: 10,
            digest_every: Duration::from_secs(3600),
            sync: SyncMode::EveryRecord,
            ..options()
        },
    );
    for i in 1..=n {
        trail.append(&event(i)).unwrap();
    }
    trail.close().unwrap();
    (t, dir)
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    kms_engine::audit::segment::list(dir)
        .unwrap()
        .segments
        .into_iter()
        .map(|s| s.1)
        .collect()
}

pub fn digests(dir: &Path) -> Vec<PathBuf> {
    kms_engine::audit::segment::list(dir)
        .unwrap()
        .digests
        .into_iter()
        .map(|s| s.1)
        .collect()
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    if !lines.is_empty() {
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

pub fn parse(line: &str) -> Map<String, Value> {
    serde_json::from_str(line).unwrap()
}

/// Re-serializes a record with a correctly recomputed hash (what a forger does).
pub fn reseal(rec: Map<String, Value>) -> (String, String) {
    kms_engine::audit::chain::seal(rec)
}

/// Finds (segment path, 0-based line index) of a sequence number.
pub fn locate(dir: &Path, seq: u64) -> (PathBuf, usize) {
    for seg in segments(dir) {
        for (i, l) in read_lines(&seg).iter().enumerate() {
            if parse(l)["sequenceNumber"].as_u64() == Some(seq) {
                return (seg, i);
            }
        }
    }
    panic!("sequence {seq} not found");
}

pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}
