//! Trail files on disk: names of segments and digests, listing them, and
//! reading lines back (including the last line, cheaply, from the end).

use super::error::AuditError;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Name of the lock file all writers take an exclusive lock on.
pub const LOCK_FILE: &str = "lock";
/// Name of the file holding the trail's public key (PEM).
pub const PUBLIC_KEY_FILE: &str = "public-key";

/// `segment-<first seq, 20 digits>.jsonl`
pub fn segment_name(first_seq: u64) -> String {
    format!("segment-{first_seq:020}.jsonl")
}

/// `digest-<end seq, 20 digits>.json`
pub fn digest_name(end_seq: u64) -> String {
    format!("digest-{end_seq:020}.json")
}

fn parse_numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The trail's files, sorted by sequence number.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    /// (first sequence, path)
    pub segments: Vec<(u64, PathBuf)>,
    /// (end sequence, path)
    pub digests: Vec<(u64, PathBuf)>,
}

/// Lists segments and digests in `dir` (other names are ignored).
pub fn list(dir: &Path) -> Result<Listing, AuditError> {
    let mut l = Listing::default();
    let rd = std::fs::read_dir(dir).map_err(|e| AuditError::io("list", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| AuditError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = parse_numbered(name, "segment-", ".jsonl") {
            l.segments.push((n, entry.path()));
        } else if let Some(n) = parse_numbered(name, "digest-", ".json") {
            l.digests.push((n, entry.path()));
        }
    }
    l.segments.sort();
    l.digests.sort();
    Ok(l)
}

/// The last line of a file, read from the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastLine {
    /// The file is empty.
    Empty,
    /// The last complete line (without its newline), and the file offset just
    /// after that newline. Bytes after that offset are a torn, unterminated write.
    Complete { line: String, end: u64 },
    /// The file has bytes but no newline at all.
    OnlyTorn,
}

/// Reads the last complete line of `path` by scanning backwards.
pub fn last_line(path: &Path) -> Result<LastLine, AuditError> {
    let mut f = File::open(path).map_err(|e| AuditError::io("open", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| AuditError::io("stat", path, e))?
        .len();
    if len == 0 {
        return Ok(LastLine::Empty);
    }
    const CHUNK: u64 = 8192;
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    // Offset just after the last '\n' in the file, once found.
    let mut last_nl: Option<u64> = None;
    loop {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(pos - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start))
            .map_err(|e| AuditError::io("seek", path, e))?;
        f.read_exact(&mut chunk)
            .map_err(|e| AuditError::io("read", path, e))?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        pos = start;
        // Positions of newlines within buf (buf starts at file offset `pos`).
        let nls: Vec<usize> = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        if last_nl.is_none()
            && let Some(&i) = nls.last()
        {
            last_nl = Some(pos + i as u64 + 1);
        }
        if let Some(end) = last_nl {
            let end_in_buf = usize::try_from(end - pos).unwrap_or(0);
            // The line runs from the newline before `end - 1` (or the file start).
            let prev = buf[..end_in_buf - 1].iter().rposition(|b| *b == b'\n');
            if prev.is_some() || pos == 0 {
                let from = prev.map_or(0, |p| p + 1);
                let line = String::from_utf8_lossy(&buf[from..end_in_buf - 1]).into_owned();
                return Ok(LastLine::Complete { line, end });
            }
        } else if pos == 0 {
            return Ok(LastLine::OnlyTorn);
        }
        if pos == 0 {
            return Ok(LastLine::OnlyTorn);
        }
    }
}

/// One line of a segment as read back.
#[derive(Debug, Clone)]
pub struct RawLine {
    /// 1-based line number in its segment.
    pub line_no: usize,
    pub text: String,
    /// False for a final line without a newline (a torn write).
    pub terminated: bool,
}

/// Reads every line of a segment.
pub fn read_lines(path: &Path) -> Result<Vec<RawLine>, AuditError> {
    let f = File::open(path).map_err(|e| AuditError::io("open", path, e))?;
    let mut r = BufReader::new(f);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|e| AuditError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        let terminated = buf.last() == Some(&b'\n');
        if terminated {
            buf.pop();
        }
        out.push(RawLine {
            line_no: out.len() + 1,
            text: String::from_utf8_lossy(&buf).into_owned(),
            terminated,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(1), "segment-00000000000000000001.jsonl");
        assert_eq!(
            parse_numbered(&segment_name(42), "segment-", ".jsonl"),
            Some(42)
        );
        assert_eq!(parse_numbered(&digest_name(7), "digest-", ".json"), Some(7));
        assert_eq!(
            parse_numbered("segment-1.jsonl", "segment-", ".jsonl"),
            None
        );
    }

    #[test]
    fn last_line_finds_line_across_chunks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let long = "x".repeat(20_000);
        std::fs::write(&p, format!("a\n{long}\n")).unwrap();
        assert_eq!(
            last_line(&p).unwrap(),
            LastLine::Complete {
                line: long.clone(),
                end: 20_003
            }
        );
        std::fs::write(&p, format!("a\n{long}\ntorn")).unwrap();
        assert_eq!(
            last_line(&p).unwrap(),
            LastLine::Complete {
                line: long,
                end: 20_003
            }
        );
        std::fs::write(&p, "one\n").unwrap();
        assert_eq!(
            last_line(&p).unwrap(),
            LastLine::Complete {
                line: "one".into(),
                end: 4
            }
        );
        std::fs::write(&p, "torn").unwrap();
        assert_eq!(last_line(&p).unwrap(), LastLine::OnlyTorn);
        std::fs::write(&p, "").unwrap();
        assert_eq!(last_line(&p).unwrap(), LastLine::Empty);
    }
}
