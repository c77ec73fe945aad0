//! The rewrap journal, `kmsfs.rewrap` in the cipher root: the old headers
//! of the batch of files whose wrapped data keys are being replaced, written
//! (and synced) before the first of them is touched and replaced by the next
//! batch's once the batch is synced. A run that finds one after a crash
//! puts an old header back into every listed file whose header no longer
//! decodes, and into a listed file whose new key does not unwrap (a torn
//! write); every other listed file keeps what it has, which is a complete
//! old or new header. See `docs/file-format.md`, "Rewrap journal".

use crate::format::{FileHeader, HEADER_LEN};
use crate::volume::{META_FILE_MODE, write_atomic};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The journal's file name in the cipher root.
pub const REWRAP_JOURNAL_NAME: &str = "kmsfs.rewrap";
const VERSION: u32 = 1;
/// Offset of the part of the header a rewrap writes: the wrapped key's
/// length, the wrapped key and the padding (magic, version, flags and file
/// id are never written, so a version conversion by a mount is kept).
pub const WRAPPED_PART: usize = 24;

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// Backing path relative to the cipher root, base64url of its bytes.
    path: String,
    /// The old header, base64url of its 128 bytes.
    old: String,
}

/// Old headers by backing path, as read back from a journal.
pub type OldHeaders = HashMap<PathBuf, [u8; HEADER_LEN]>;

fn rel(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    URL_SAFE_NO_PAD.encode(r.as_os_str().as_bytes())
}

/// The backing path of an entry, only when it stays below the root.
fn target(root: &Path, rel: &[u8]) -> Option<PathBuf> {
    let p = Path::new(std::ffi::OsStr::from_bytes(rel));
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| root.join(p))
}

/// Writes the journal for a batch: `(backing path, old header)` pairs.
pub fn write(root: &Path, batch: &[(PathBuf, [u8; HEADER_LEN])]) -> std::io::Result<()> {
    let j = Journal {
        version: VERSION,
        entries: batch
            .iter()
            .map(|(p, h)| Entry {
                path: rel(root, p),
                old: URL_SAFE_NO_PAD.encode(h),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&j).map_err(std::io::Error::other)?;
    write_atomic(&root.join(REWRAP_JOURNAL_NAME), &bytes, META_FILE_MODE)
}

/// Removes the journal (the run finished) and syncs the root.
pub fn remove(root: &Path) -> std::io::Result<()> {
    match fs::remove_file(root.join(REWRAP_JOURNAL_NAME)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    fs::File::open(root)?.sync_all()
}

/// Reads a pending journal (empty when there is none; an unreadable one
/// was never complete, so nothing was written under it) and puts the old
/// header back into every listed file whose header does not decode.
/// Returns the old headers, for files whose new key turns out not to
/// unwrap.
pub fn recover(root: &Path) -> std::io::Result<OldHeaders> {
    let path = root.join(REWRAP_JOURNAL_NAME);
    let bytes = match crate::volume::read_small_file(&path, 64 << 20) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OldHeaders::new()),
        Err(e) => return Err(e),
    };
    let Ok(j) = serde_json::from_slice::<Journal>(&bytes) else {
        log::warn!("ignoring an unreadable {REWRAP_JOURNAL_NAME}");
        return Ok(OldHeaders::new());
    };
    if j.version != VERSION {
        return Err(std::io::Error::other(format!(
            "{REWRAP_JOURNAL_NAME}: unknown journal version {}",
            j.version
        )));
    }
    let mut out = OldHeaders::new();
    for e in j.entries {
        let (Ok(p), Ok(old)) = (
            URL_SAFE_NO_PAD.decode(&e.path),
            URL_SAFE_NO_PAD.decode(&e.old),
        ) else {
            continue;
        };
        let (Some(p), Ok(old)) = (target(root, &p), <[u8; HEADER_LEN]>::try_from(old)) else {
            continue;
        };
        let Ok(old_header) = FileHeader::decode(&old) else {
            continue;
        };
        match read_header(&p) {
            Ok(Some(now)) if FileHeader::decode(&now).is_err() => {
                restore(&p, &now, &old_header, &old)?;
            }
            _ => {}
        }
        out.insert(p, old);
    }
    Ok(out)
}

/// Puts `old` back into `path` when the file still has the old header's
/// file id (`now` is what it holds); returns whether it wrote.
pub fn restore(
    path: &Path,
    now: &[u8; HEADER_LEN],
    old_header: &FileHeader,
    old: &[u8; HEADER_LEN],
) -> std::io::Result<bool> {
    if now[8..WRAPPED_PART] != old_header.file_id.0 {
        return Ok(false);
    }
    let f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    f.write_all_at(&old[WRAPPED_PART..], WRAPPED_PART as u64)?;
    f.sync_data()?;
    log::warn!(
        "{}: header torn by an interrupted rewrap: old header put back",
        path.display()
    );
    Ok(true)
}

/// The first 128 bytes of a regular file (`None`: shorter, or not a
/// regular file).
pub fn read_header(path: &Path) -> std::io::Result<Option<[u8; HEADER_LEN]>> {
    // Not a read of the file: its access time stays (a mount counts every
    // header at start and every 10 minutes).
    let f = crate::volume::open_quietly(path, false)?;
    if !f.metadata()?.is_file() {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_LEN];
    match f.read_exact_at(&mut h, 0) {
        Ok(()) => Ok(Some(h)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_headers_leaves_the_access_time() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("AAAAAAAAAAAAAAAAAAAAAA");
        fs::write(&f, [0u8; HEADER_LEN + 10]).unwrap();
        // 1960, as xfstests generic/258 sets it: older than a day and than
        // the change time, so a relatime filesystem would update it on read.
        let old = rustix::fs::Timespec {
            tv_sec: -315_619_200,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: old,
            last_modification: old,
        };
        rustix::fs::utimensat(rustix::fs::CWD, &f, &times, rustix::fs::AtFlags::empty()).unwrap();
        assert!(read_header(&f).unwrap().is_some());
        // The count a mount makes at start walks the same way.
        super::super::files_by_version(d.path());
        assert_eq!(fs::metadata(&f).unwrap().atime(), -315_619_200);
    }

    #[test]
    fn entries_stay_below_the_root() {
        let root = Path::new("/r");
        assert_eq!(target(root, b"a/b"), Some(PathBuf::from("/r/a/b")));
        for bad in [&b"../x"[..], b"/etc/passwd", b"a/../../x", b"", b"./a"] {
            assert_eq!(target(root, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_torn_header_is_put_back_and_a_whole_one_kept() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let old = FileHeader::new(crate::format::FileId([7; 16]), vec![1; 81])
            .unwrap()
            .encode()
            .unwrap();
        let new = FileHeader::new(crate::format::FileId([7; 16]), vec![2; 81])
            .unwrap()
            .encode()
            .unwrap();
        let (torn, whole) = (root.join("torn"), root.join("whole"));
        let mut t = new;
        t[110] = 9; // nonzero padding: does not decode
        fs::write(&torn, [&t[..], b"content"].concat()).unwrap();
        fs::write(&whole, [&new[..], b"content"].concat()).unwrap();
        write(root, &[(torn.clone(), old), (whole.clone(), old)]).unwrap();
        let olds = recover(root).unwrap();
        assert_eq!(olds.len(), 2);
        assert_eq!(fs::read(&torn).unwrap(), [&old[..], b"content"].concat());
        assert_eq!(fs::read(&whole).unwrap(), [&new[..], b"content"].concat());
        remove(root).unwrap();
        assert!(recover(root).unwrap().is_empty());
    }
}
