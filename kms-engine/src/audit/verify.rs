//! Verification of a trail: the hash chain, the signed digests, and the
//! links between them. Names the first bad record.
//!
//! What is checked, in sequence order: every segment starts where the one
//! before ended; every line is canonical JSON whose `sequenceNumber` follows
//! the previous one, whose `previousHash` is the previous record's `hash` and
//! whose `hash` matches its content; every record covered by a digest has the
//! hash prefix the digest lists; `lastDigestSequence` names the newest digest
//! before the record (so a removed digest is noticed by the records written
//! after it); digests are signed by the given key, chain to each other without
//! gaps, and every sequence a digest covers exists (so a cut-off tail is
//! noticed). See docs/file-format.md for what remains possible.

use super::chain::{self, GENESIS_HASH, canonical_json};
use super::digest::{Digest, PublicKey, StoreAnchor, hash_prefix};
use super::error::AuditError;
use super::record::RecordView;
use super::segment::{self, RawLine};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A digest a verifier remembered from an earlier run: the trail must still
/// contain it, so it cannot have been cut back before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    pub end_sequence: u64,
    pub digest_hash: String,
}

impl Anchor {
    /// Parses `SEQ:HASH`.
    pub fn parse(s: &str) -> Option<Anchor> {
        let (seq, hash) = s.split_once(':')?;
        Some(Anchor {
            end_sequence: seq.parse().ok()?,
            digest_hash: hash.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.end_sequence, self.digest_hash)
    }
}

/// Options of [`verify_with`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub anchor: Option<Anchor>,
}

/// The first thing found wrong, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BadRecord {
    /// The segment (or digest) file.
    pub file: PathBuf,
    /// 1-based line in the segment, when the problem is one line.
    pub line: Option<usize>,
    /// The sequence number concerned.
    pub sequence: Option<u64>,
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.file.file_name().map_or_else(
            || self.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        write!(f, "{name}")?;
        if let Some(l) = self.line {
            write!(f, " line {l}")?;
        }
        if let Some(s) = self.sequence {
            write!(f, " (sequence {s})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub segments: usize,
    pub digests: usize,
    /// Records read and found good (up to the first bad one).
    pub records: u64,
    /// Sequence number of the last good record.
    pub last_sequence: u64,
    /// End sequence of the last valid digest.
    pub sealed_through: u64,
    /// Good records after the last valid digest: these could be cut off
    /// without a trace (see docs).
    pub unsealed_records: u64,
    /// The newest valid digest, to remember and pass back as an anchor.
    pub last_digest: Option<Anchor>,
    /// The newest engine-store generation the valid digests anchor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_anchor: Option<StoreAnchor>,
    pub public_key_fingerprint: String,
    /// A final unterminated line (a write torn by a crash, never acknowledged).
    pub torn_tail: Option<BadRecord>,
    /// The first bad record, or None when the trail is valid.
    pub first_bad: Option<BadRecord>,
}

impl VerifyReport {
    pub fn is_valid(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Verifies the trail in `dir` against `public_key`.
pub fn verify(dir: &Path, public_key: &PublicKey) -> Result<VerifyReport, AuditError> {
    verify_with(dir, public_key, &VerifyOptions::default())
}

struct GoodDigest {
    digest: Digest,
    hash: String,
    prefixes: Vec<[u8; 8]>,
}

/// Where a problem sits in sequence order, to pick the first one.
fn first_of(a: Option<BadRecord>, b: Option<BadRecord>) -> Option<BadRecord> {
    match (a, b) {
        (Some(a), Some(b)) => {
            if b.sequence.unwrap_or(u64::MAX) < a.sequence.unwrap_or(u64::MAX) {
                Some(b)
            } else {
                Some(a)
            }
        }
        (a, b) => a.or(b),
    }
}

/// [`verify`] with options (an anchor from an earlier run).
pub fn verify_with(
    dir: &Path,
    public_key: &PublicKey,
    opts: &VerifyOptions,
) -> Result<VerifyReport, AuditError> {
    let listing = segment::list(dir)?;
    let mut report = VerifyReport {
        segments: listing.segments.len(),
        digests: listing.digests.len(),
        public_key_fingerprint: public_key.fingerprint(),
        ..VerifyReport::default()
    };
    let (good, digest_problem) = check_digests(dir, &listing.digests, public_key)?;
    let existing_digests: Vec<u64> = listing.digests.iter().map(|d| d.0).collect();
    let by_end: BTreeMap<u64, &GoodDigest> = good
        .iter()
        .map(|g| (g.digest.digest_end_sequence, g))
        .collect();

    let record_problem = walk_records(
        &listing.segments,
        &existing_digests,
        &good,
        &by_end,
        &mut report,
    )?;

    let mut cut_problem = None;
    if let Some(last) = good.last() {
        let end = last.digest.digest_end_sequence;
        if end > report.last_sequence && record_problem.is_none() {
            let file = listing
                .segments
                .last()
                .map_or_else(|| dir.to_path_buf(), |s| s.1.clone());
            cut_problem = Some(BadRecord {
                file,
                line: None,
                sequence: Some(report.last_sequence + 1),
                reason: format!(
                    "records {}..={end} are missing: {} vouches for them (trail cut off)",
                    report.last_sequence + 1,
                    segment::digest_name(end)
                ),
            });
        }
        report.sealed_through = end.min(report.last_sequence);
        report.store_anchor = good.iter().rev().find_map(|g| g.digest.store_anchor());
        report.last_digest = Some(Anchor {
            end_sequence: end,
            digest_hash: last.hash.clone(),
        });
    }
    report.unsealed_records = report.last_sequence - report.sealed_through;

    let mut anchor_problem = None;
    if let Some(a) = &opts.anchor {
        let ok = by_end
            .get(&a.end_sequence)
            .is_some_and(|g| g.hash == a.digest_hash);
        if !ok {
            anchor_problem = Some(BadRecord {
                file: dir.join(segment::digest_name(a.end_sequence)),
                line: None,
                sequence: Some(a.end_sequence),
                reason: format!(
                    "the anchor digest {a} is not in the trail (trail cut back or replaced)"
                ),
            });
        }
    }
    report.first_bad = first_of(
        first_of(first_of(record_problem, digest_problem), cut_problem),
        anchor_problem,
    );
    Ok(report)
}

/// Checks the digest chain; returns the good digests (up to the first bad one)
/// and the first problem.
fn check_digests(
    dir: &Path,
    digests: &[(u64, PathBuf)],
    key: &PublicKey,
) -> Result<(Vec<GoodDigest>, Option<BadRecord>), AuditError> {
    let mut good: Vec<GoodDigest> = Vec::new();
    let (mut prev_end, mut prev_hash) = (0u64, GENESIS_HASH.to_string());
    let mut prev_store: Option<u64> = None;
    for (end, path) in digests {
        let bad = |seq: u64, reason: String| BadRecord {
            file: path.clone(),
            line: None,
            sequence: Some(seq),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| AuditError::io("read", path, e))?;
        let d: Digest = match serde_json::from_slice(&bytes) {
            Ok(d) => d,
            Err(e) => {
                return Ok((
                    good,
                    Some(bad(prev_end + 1, format!("digest is not valid JSON: {e}"))),
                ));
            }
        };
        let start = d.digest_start_sequence;
        if d.public_key_fingerprint != key.fingerprint() || !d.signature_valid(key) {
            return Ok((
                good,
                Some(bad(
                    start.min(prev_end + 1),
                    "digest signature is not valid for this public key (forged or edited digest)"
                        .into(),
                )),
            ));
        }
        if d.to_canonical_json().as_bytes() != bytes.as_slice() {
            return Ok((
                good,
                Some(bad(
                    start,
                    "digest file is not in canonical form (edited)".into(),
                )),
            ));
        }
        if d.digest_end_sequence != *end {
            return Ok((
                good,
                Some(bad(
                    start,
                    format!(
                        "file name says end {end}, digest says {}",
                        d.digest_end_sequence
                    ),
                )),
            ));
        }
        if d.previous_digest_sequence != prev_end || start != prev_end + 1 {
            let missing = dir.join(segment::digest_name(d.previous_digest_sequence));
            return Ok((
                good,
                Some(BadRecord {
                    file: missing,
                    line: None,
                    sequence: Some(prev_end + 1),
                    reason: format!(
                        "digest missing: {} chains to a digest ending at {}, the previous digest present ends at {prev_end} (digest removed)",
                        segment::digest_name(*end),
                        d.previous_digest_sequence
                    ),
                }),
            ));
        }
        if d.previous_digest_hash != prev_hash {
            return Ok((
                good,
                Some(bad(
                    start,
                    format!(
                        "previousDigestHash does not match {} (digest replaced)",
                        segment::digest_name(prev_end)
                    ),
                )),
            ));
        }
        let prefixes = match d.hash_prefixes() {
            Some(p)
                if start <= d.digest_end_sequence
                    && p.len() as u64 == d.digest_end_sequence - start + 1 =>
            {
                p
            }
            _ => {
                return Ok((
                    good,
                    Some(bad(
                        start,
                        "digest's record hash list does not match its range".into(),
                    )),
                ));
            }
        };
        // Each digest carries the newest anchor it knew of, so the anchored
        // store generation never goes back.
        if let (Some(before), Some(now)) = (prev_store, d.store_generation)
            && now < before
        {
            return Ok((
                good,
                Some(bad(
                    start,
                    format!(
                        "digest anchors store generation {now}, older than the {before} \
                         anchored before it"
                    ),
                )),
            ));
        }
        prev_store = d.store_generation.or(prev_store);
        prev_end = d.digest_end_sequence;
        prev_hash = chain::sha256_hex(&bytes);
        good.push(GoodDigest {
            hash: prev_hash.clone(),
            digest: d,
            prefixes,
        });
    }
    Ok((good, None))
}

/// The store anchor of the newest digest in `dir` that is validly signed by
/// `key` (older digests are skipped past one that is not, with a warning);
/// None when there is no such digest or it anchors nothing (version 1.0).
/// Reads one digest file in the common case: what an engine open checks.
pub fn newest_store_anchor(dir: &Path, key: &PublicKey) -> Result<Option<StoreAnchor>, AuditError> {
    let listing = segment::list(dir)?;
    for (_, path) in listing.digests.iter().rev() {
        let bytes = std::fs::read(path).map_err(|e| AuditError::io("read", path, e))?;
        match serde_json::from_slice::<Digest>(&bytes) {
            Ok(d) if d.signature_valid(key) => return Ok(d.store_anchor()),
            _ => log::warn!(
                "audit digest {} is not validly signed; looking for the store anchor in an \
                 older one (`kmsfs audit verify` names what is wrong)",
                path.display()
            ),
        }
    }
    Ok(None)
}

/// The last two good records (for naming an inserted one).
#[derive(Clone)]
struct Seen {
    file: PathBuf,
    line: usize,
    seq: u64,
    hash: String,
}

fn walk_records(
    segments: &[(u64, PathBuf)],
    existing_digests: &[u64],
    good: &[GoodDigest],
    by_end: &BTreeMap<u64, &GoodDigest>,
    report: &mut VerifyReport,
) -> Result<Option<BadRecord>, AuditError> {
    let mut expected = 1u64;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut last: Option<Seen> = None;
    let mut before_last: Option<Seen> = None;
    for (si, (first, path)) in segments.iter().enumerate() {
        let lines = segment::read_lines(path)?;
        let is_last_segment = si + 1 == segments.len();
        let bad = |line: Option<usize>, seq: Option<u64>, reason: String| BadRecord {
            file: path.clone(),
            line,
            sequence: seq,
            reason,
        };
        if lines.is_empty() {
            if is_last_segment {
                continue;
            }
            return Ok(Some(bad(None, Some(*first), "empty segment".into())));
        }
        if *first != expected {
            let reason = if *first > expected {
                format!(
                    "segment starts at {first} but the previous record is {} (records {expected}..{first} removed)",
                    expected - 1
                )
            } else {
                format!("segment starts at {first}, which the previous segment already holds")
            };
            return Ok(Some(bad(Some(1), Some(expected), reason)));
        }
        for (li, raw) in lines.iter().enumerate() {
            let RawLine {
                line_no,
                text,
                terminated,
            } = raw;
            if !terminated {
                if is_last_segment && li + 1 == lines.len() {
                    report.torn_tail = Some(bad(
                        Some(*line_no),
                        Some(expected),
                        "unterminated final line (a write torn by a crash)".into(),
                    ));
                    break;
                }
                return Ok(Some(bad(
                    Some(*line_no),
                    Some(expected),
                    "unterminated line".into(),
                )));
            }
            let rec: Map<String, Value> = match serde_json::from_str(text) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(Some(bad(
                        Some(*line_no),
                        Some(expected),
                        format!("not a JSON record: {e}"),
                    )));
                }
            };
            let Some(seq) = rec.sequence() else {
                return Ok(Some(bad(
                    Some(*line_no),
                    Some(expected),
                    "no sequenceNumber".into(),
                )));
            };
            let rec_prev = rec
                .str_at(&["previousHash"])
                .unwrap_or_default()
                .to_string();
            let rec_hash = rec.str_at(&["hash"]).unwrap_or_default().to_string();
            if seq != expected || rec_prev != prev_hash {
                // Does this record link to the one before the previous line?
                // Then the previous line was inserted.
                if let (Some(l), Some(b)) = (&last, &before_last)
                    && seq == b.seq + 1
                    && rec_prev == b.hash
                {
                    return Ok(Some(BadRecord {
                        file: l.file.clone(),
                        line: Some(l.line),
                        sequence: Some(l.seq),
                        reason: format!(
                            "inserted record: the record after it (sequence {seq}) links to sequence {}",
                            b.seq
                        ),
                    }));
                }
                let reason = if seq > expected {
                    format!(
                        "expected sequence {expected}, found {seq}: records {expected}..{seq} removed or reordered"
                    )
                } else if seq < expected {
                    format!(
                        "expected sequence {expected}, found {seq}: reordered or duplicated record"
                    )
                } else {
                    format!(
                        "previousHash does not match the hash of record {} (the record before it was changed or replaced)",
                        expected - 1
                    )
                };
                return Ok(Some(bad(Some(*line_no), Some(seq), reason)));
            }
            let computed = chain::record_hash(&rec);
            if computed != rec_hash {
                return Ok(Some(bad(
                    Some(*line_no),
                    Some(seq),
                    "hash does not match the record's content (record edited)".into(),
                )));
            }
            if canonical_json(&Value::Object(rec.clone())) != *text {
                return Ok(Some(bad(
                    Some(*line_no),
                    Some(seq),
                    "record is not in canonical form (edited)".into(),
                )));
            }
            // Digest coverage: the digest lists this record's hash prefix.
            if let Some(g) = good.iter().find(|g| {
                g.digest.digest_start_sequence <= seq && seq <= g.digest.digest_end_sequence
            }) {
                let idx =
                    usize::try_from(seq - g.digest.digest_start_sequence).unwrap_or(usize::MAX);
                if g.prefixes.get(idx) != Some(&hash_prefix(&computed)) {
                    return Ok(Some(bad(
                        Some(*line_no),
                        Some(seq),
                        format!(
                            "record differs from the one {} signed (records rewritten)",
                            segment::digest_name(g.digest.digest_end_sequence)
                        ),
                    )));
                }
                if seq == g.digest.digest_end_sequence && g.digest.last_hash != computed {
                    return Ok(Some(bad(
                        Some(*line_no),
                        Some(seq),
                        format!(
                            "hash differs from lastHash of {}",
                            segment::digest_name(seq)
                        ),
                    )));
                }
            }
            // lastDigestSequence must name the newest digest before this record.
            let want_ld = existing_digests
                .iter()
                .rev()
                .find(|d| **d < seq)
                .copied()
                .unwrap_or(0);
            let ld = rec.get("lastDigestSequence").and_then(Value::as_u64);
            if ld != Some(want_ld) {
                let reason = match ld {
                    Some(n) if n > want_ld && n < seq && !by_end.contains_key(&n) => format!(
                        "record names {} as the newest digest before it, which is missing (digest removed)",
                        segment::digest_name(n)
                    ),
                    Some(n) => format!(
                        "lastDigestSequence is {n}, the newest digest before this record ends at {want_ld}"
                    ),
                    None => "no lastDigestSequence".into(),
                };
                return Ok(Some(bad(Some(*line_no), Some(seq), reason)));
            }
            before_last = last.take();
            last = Some(Seen {
                file: path.clone(),
                line: *line_no,
                seq,
                hash: rec_hash.clone(),
            });
            report.records += 1;
            report.last_sequence = seq;
            expected = seq + 1;
            prev_hash = rec_hash;
        }
    }
    Ok(None)
}
