//! Reading records back: filters for `kmsfs audit show` and a follower for
//! `kmsfs audit tail --follow`.

use super::error::AuditError;
use super::record::RecordView;
use super::segment;
use serde_json::{Map, Value};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A record as read from a segment: the parsed object and the line as stored.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub record: Map<String, Value>,
    pub line: String,
}

impl StoredRecord {
    fn parse(line: &str) -> Option<StoredRecord> {
        let record = serde_json::from_str::<Map<String, Value>>(line).ok()?;
        Some(StoredRecord {
            record,
            line: line.to_string(),
        })
    }

    /// One human-readable line: time, sequence, event, principal (with
    /// `via CLIENT` for a call made on its behalf), key, outcome.
    pub fn to_text(&self) -> String {
        let r = &self.record;
        let s = |p: &[&str]| r.str_at(p).unwrap_or("-").to_string();
        let who = match r.str_at(&["userIdentity", "invokedBy"]) {
            Some(client) => format!("{} via {client}", s(&["userIdentity", "principal"])),
            None => s(&["userIdentity", "principal"]),
        };
        let outcome = match r.str_at(&["errorCode"]) {
            Some(code) => code.to_string(),
            None => "OK".to_string(),
        };
        let ctx = r
            .get("requestParameters")
            .and_then(|p| p.get("encryptionContext"))
            .map_or_else(|| "-".to_string(), Value::to_string);
        format!(
            "{} #{} {} {} key={} {} ctx={} req={}",
            s(&["eventTime"]),
            r.sequence().unwrap_or(0),
            s(&["eventName"]),
            who,
            s(&["requestParameters", "keyId"]),
            outcome,
            ctx,
            s(&["requestID"])
        )
    }
}

/// Filters for `audit show`; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Matches `requestParameters.keyId` or the end of a resource ARN.
    pub key_id: Option<String>,
    pub principal: Option<String>,
    /// Other names of `principal` (`uid:N` for `user:NAME` and back); a
    /// record naming any of them matches too.
    pub principal_aliases: Vec<String>,
    pub event_name: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub errors_only: bool,
    /// Matches a record with a `kmsfs:path` value (in any encryption context
    /// of its request) equal to one of these: a path and its hmac forms
    /// ([`crate::Engine::audit_path_forms`]).
    pub path_forms: Option<Vec<String>>,
}

/// Parses an RFC 3339 time (for `--since` / `--until`).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, AuditError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| AuditError::Time(s.to_string()))
}

impl Filter {
    pub fn matches(&self, r: &Map<String, Value>) -> bool {
        if let Some(k) = &self.key_id {
            let in_params = r.str_at(&["requestParameters", "keyId"]) == Some(k.as_str());
            let in_resources = r
                .get("resources")
                .and_then(Value::as_array)
                .is_some_and(|rs| {
                    rs.iter().any(|x| {
                        x.get("ARN")
                            .and_then(Value::as_str)
                            .is_some_and(|a| a == k || a.ends_with(&format!("/{k}")))
                    })
                });
            if !in_params && !in_resources {
                return false;
            }
        }
        if let Some(p) = &self.principal {
            // The caller, or the client that called on its behalf.
            let recorded = r.str_at(&["userIdentity", "principal"]);
            let client = r.str_at(&["userIdentity", "invokedBy"]);
            let named = |n: &String| recorded == Some(n.as_str()) || client == Some(n.as_str());
            if !named(p) && !self.principal_aliases.iter().any(named) {
                return false;
            }
        }
        if let Some(e) = &self.event_name
            && r.str_at(&["eventName"]) != Some(e.as_str())
        {
            return false;
        }
        if self.errors_only && r.get("errorCode").is_none_or(Value::is_null) {
            return false;
        }
        if let Some(forms) = &self.path_forms
            && !super::paths::record_has_path(r, forms)
        {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = r.str_at(&["eventTime"]).and_then(|t| parse_time(t).ok()) else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }
}

/// Every complete record in the trail, in order, that matches `filter`.
/// Lines that are not JSON objects are skipped (`audit verify` reports them).
pub fn show(dir: &Path, filter: &Filter) -> Result<Vec<StoredRecord>, AuditError> {
    let mut out = Vec::new();
    for (_, path) in segment::list(dir)?.segments {
        for raw in segment::read_lines(&path)? {
            if !raw.terminated {
                continue;
            }
            if let Some(r) = StoredRecord::parse(&raw.text)
                && filter.matches(&r.record)
            {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// The last `n` records.
pub fn tail(dir: &Path, n: usize) -> Result<Vec<StoredRecord>, AuditError> {
    let all = show(dir, &Filter::default())?;
    let skip = all.len().saturating_sub(n);
    Ok(all.into_iter().skip(skip).collect())
}

/// Reads records appended after a starting point, across segment rotations.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    /// Current segment (first sequence) and the offset read up to.
    pos: Option<(u64, u64)>,
}

impl Follower {
    /// A follower that will return only records appended from now on.
    pub fn from_end(dir: &Path) -> Result<Follower, AuditError> {
        let listing = segment::list(dir)?;
        let pos = match listing.segments.last() {
            Some((first, path)) => {
                let len = std::fs::metadata(path)
                    .map_err(|e| AuditError::io("stat", path, e))?
                    .len();
                Some((*first, len))
            }
            None => None,
        };
        Ok(Follower {
            dir: dir.to_path_buf(),
            pos,
        })
    }

    /// Complete records appended since the last call.
    pub fn poll(&mut self) -> Result<Vec<StoredRecord>, AuditError> {
        let listing = segment::list(&self.dir)?;
        let mut out = Vec::new();
        for (first, path) in &listing.segments {
            let offset = match self.pos {
                Some((cur, _)) if *first < cur => continue,
                Some((cur, off)) if *first == cur => off,
                _ => 0,
            };
            let mut f = std::fs::File::open(path).map_err(|e| AuditError::io("open", path, e))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| AuditError::io("seek", path, e))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)
                .map_err(|e| AuditError::io("read", path, e))?;
            // Only up to the last newline: a line being written is left for later.
            let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            for line in buf[..complete].split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                if let Some(r) = StoredRecord::parse(&String::from_utf8_lossy(line)) {
                    out.push(r);
                }
            }
            self.pos = Some((*first, offset + complete as u64));
        }
        Ok(out)
    }
}
