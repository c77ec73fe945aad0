//! Check of the audit trail verifier over arbitrary segment and digest files.

use std::sync::Mutex;

use super::{FIXED_AUDIT_SEED, clear_dir, mode, scratch, write};
use kms_engine::audit::PublicKey;
use kms_engine::audit::chain;
use kms_engine::audit::digest::{Digest, SigningKey};
use kms_engine::audit::segment::{digest_name, segment_name};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

static AUDIT_DIR: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

/// Separator between the parts of an audit check input (0xff never occurs
/// in UTF-8, so it cannot appear inside a JSON line).
pub const AUDIT_PART_SEPARATOR: &[u8] = b"\xff\xfe";

fn audit_key() -> SigningKey {
    match SigningKey::from_seed(&Zeroizing::new(FIXED_AUDIT_SEED)) {
        Ok(k) => k,
        Err(e) => panic!("audit signing key: {e}"),
    }
}

/// Re-links the JSON lines of a segment into a valid hash chain starting
/// after `prev` (sets `previousHash`, recomputes `hash`, writes canonical
/// form); other lines and a torn tail are kept as they are.
fn relink(segment: &[u8], prev: &mut String) -> Vec<u8> {
    let mut out = Vec::with_capacity(segment.len());
    for line in segment.split_inclusive(|b| *b == b'\n') {
        let (body, nl) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        match serde_json::from_slice::<Map<String, Value>>(body) {
            Ok(mut rec) if nl => {
                rec.insert("previousHash".into(), Value::String(prev.clone()));
                let (text, hash) = chain::seal(rec);
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
                *prev = hash;
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

/// The audit trail verifier over arbitrary trail files. The input is parts
/// separated by [`AUDIT_PART_SEPARATOR`]: the first part's first byte holds
/// flags (bit 0: re-link segment lines into a valid hash chain; bit 1:
/// re-sign digests with the fixed key), the rest of it is the first segment
/// (starting at sequence 1). Later parts start with `S` + one byte (a
/// segment whose first sequence is that byte) or `D` (a digest, named by its
/// `digestEndSequence` when it parses, else by its position). `verify` must
/// not panic, and can only report a valid trail with records when the
/// input's chain was real or re-linked.
pub fn audit_verify(data: &[u8]) {
    let Some((flags, _)) = mode(data) else {
        return;
    };
    let relink_chain = flags & 1 != 0;
    let resign = flags & 2 != 0;
    let key = audit_key();
    let dir = scratch(&AUDIT_DIR);
    clear_dir(&dir);
    let mut prev = chain::GENESIS_HASH.to_string();
    let mut parts = split_parts(&data[1..]).into_iter();
    let write_segment = |first: u64, bytes: &[u8], prev: &mut String| {
        let bytes = if relink_chain {
            relink(bytes, prev)
        } else {
            bytes.to_vec()
        };
        write(&dir.join(segment_name(first)), &bytes);
    };
    if let Some(first) = parts.next() {
        write_segment(1, first, &mut prev);
    }
    for (i, part) in parts.enumerate() {
        match part.split_first() {
            Some((b'S', rest)) => {
                let (first, body) = match rest.split_first() {
                    Some((n, body)) => (u64::from(*n), body),
                    None => (0, rest),
                };
                write_segment(first, body, &mut prev);
            }
            Some((b'D', body)) => match serde_json::from_slice::<Digest>(body) {
                Ok(mut d) => {
                    let bytes = if resign {
                        key.sign(&mut d);
                        d.to_canonical_json().into_bytes()
                    } else {
                        body.to_vec()
                    };
                    write(&dir.join(digest_name(d.digest_end_sequence)), &bytes);
                }
                Err(_) => write(&dir.join(digest_name(i as u64 + 1)), body),
            },
            _ => {}
        }
    }
    let public: PublicKey = key.public_key();
    if let Ok(report) = kms_engine::audit::verify(&dir, &public) {
        assert!(report.sealed_through <= report.last_sequence);
        assert_eq!(
            report.unsealed_records,
            report.last_sequence - report.sealed_through
        );
    }
}

fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest
        .windows(AUDIT_PART_SEPARATOR.len())
        .position(|w| w == AUDIT_PART_SEPARATOR)
    {
        parts.push(&rest[..i]);
        rest = &rest[i + AUDIT_PART_SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}
