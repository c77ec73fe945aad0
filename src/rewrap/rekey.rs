//! `kmsfs rekey`: a new data key and re-encrypted content for every file.
//!
//! Per file, old or new, never neither: the new ciphertext (same file id
//! and format version, a new data key from GenerateDataKey under the file's
//! path, every block opened and sealed again with the same end mark, holes
//! kept as holes) goes to `kmsfs.tmp-<random>` in the same directory, gets
//! the old file's owner, mode, timestamps and stored attributes (bound to
//! the file id, which does not change), is fsynced and renamed over the old
//! file. Done files are appended to `kmsfs.rekey` in the cipher root, synced
//! once per batch (after their directories), so that a run killed at any
//! point resumes after them; a file rekeyed but not yet listed is rekeyed
//! once more. The list is removed when a run finishes; the temporary
//! files of a killed run are removed by the next one. A file that does not
//! open (tampered, moved, damaged) is reported and left as it is.

use super::walk::{VolumeFile, file_problem};
use super::{Progress, RunOptions, Summary};
use crate::content::{BlockLayout, BlockMark, ContentCipher};
use crate::format::{FileHeader, HEADER_FORMAT_V1, HEADER_LEN};
use crate::fsck::Kind;
use crate::fuse::{file_context, with_file_context};
use crate::keys::KeyService;
use crate::volume::Volume;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kms_engine::{KmsError, Principal};
use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The list of files a run finished, in the cipher root.
pub const REKEY_LIST_NAME: &str = "kmsfs.rekey";

fn rel(root: &Path, p: &Path) -> String {
    URL_SAFE_NO_PAD.encode(p.strip_prefix(root).unwrap_or(p).as_os_str().as_bytes())
}

fn load_done(root: &Path) -> std::io::Result<HashSet<String>> {
    match fs::read_to_string(root.join(REKEY_LIST_NAME)) {
        // A line torn by a crash names no file: it matches nothing.
        Ok(text) => Ok(text.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    }
}

/// Why one file was not rekeyed.
struct Failed(String);

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Self {
        Failed(format!("I/O error: {e}"))
    }
}

impl From<KmsError> for Failed {
    fn from(e: KmsError) -> Self {
        Failed(format!(
            "data key: {} ({}); skipped",
            e.message(),
            e.exception_name()
        ))
    }
}

/// Rekeys `files` of `vol` (see the module docs).
pub fn run(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
    files: &[VolumeFile],
    opts: RunOptions,
    progress: &mut dyn FnMut(&Progress),
) -> std::io::Result<Summary> {
    let started = Instant::now();
    let root = vol.root.as_path();
    let done = load_done(root)?;
    // Temporary files of a run killed mid-file (the volume is unmounted,
    // so no one else is writing one).
    let dirs: BTreeSet<&Path> = files.iter().filter_map(|f| f.backing.parent()).collect();
    for d in dirs {
        kms_engine::safe_fs::Dir::open(d)?.remove_temps()?;
    }
    let mut list = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::volume::META_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(root.join(REKEY_LIST_NAME))?;
    let mut p = Progress {
        files_total: files.len() as u64,
        bytes_total: files.iter().map(|f| f.cipher_size).sum(),
        ..Progress::default()
    };
    let mut s = Summary::default();
    progress(&p);
    for batch in files.chunks(opts.batch.max(1)) {
        let results = parallel(batch, opts.threads.max(1), |f| {
            if done.contains(&rel(root, &f.backing)) {
                return Ok(false);
            }
            rekey_file(vol, keys, caller, f)
        });
        let mut dirs = BTreeSet::new();
        let mut lines = String::new();
        for (f, r) in batch.iter().zip(results) {
            match r {
                Ok(false) => s.current += 1,
                Ok(true) => {
                    s.changed += 1;
                    dirs.insert(f.backing.parent().unwrap_or(root).to_path_buf());
                    lines.push_str(&rel(root, &f.backing));
                    lines.push('\n');
                }
                Err(Failed(what)) => {
                    s.skipped += 1;
                    let path = f.plain.display();
                    s.problems
                        .push(file_problem(root, path, &f.backing, what, Kind::Content));
                }
            }
        }
        for d in &dirs {
            File::open(d)?.sync_all()?;
        }
        if !lines.is_empty() {
            list.write_all(lines.as_bytes())?;
            list.sync_data()?;
        }
        p.files_done += batch.len() as u64;
        p.bytes_done += batch.iter().map(|f| f.cipher_size).sum::<u64>();
        progress(&p);
    }
    drop(list);
    fs::remove_file(root.join(REKEY_LIST_NAME))?;
    File::open(root)?.sync_all()?;
    s.files = files.len() as u64;
    s.bytes = p.bytes_total;
    s.seconds = started.elapsed().as_secs_f64();
    s.files_per_second = if s.seconds > 0.0 {
        s.files as f64 / s.seconds
    } else {
        0.0
    };
    Ok(s)
}

/// `work` over `items` on `threads` threads, results in order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..threads.min(items.len()).max(1))
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(it) = items.get(i) else { break };
                        mine.push((i, work(it)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// A temporary file in `dir`, removed on drop unless kept.
struct Temp {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Temp {
    fn create(dir: &Path) -> std::io::Result<Temp> {
        loop {
            let r: [u8; 8] = crate::crypto::random_array().map_err(std::io::Error::other)?;
            let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
            let path = dir.join(OsString::from(format!("kmsfs.tmp-{hex}")));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Temp {
                        path,
                        file,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Rekeys one file; `Ok(true)` when it was replaced.
fn rekey_file(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
    f: &VolumeFile,
) -> Result<bool, Failed> {
    let old = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&f.backing)?;
    let meta = old.metadata()?;
    if !meta.is_file() {
        return Err(Failed("not a regular file any more; skipped".into()));
    }
    let size = meta.len();
    if size == 0 {
        // No header yet: no data key to replace.
        return Ok(false);
    }
    let mut raw = [0u8; HEADER_LEN];
    old.read_exact_at(&mut raw, 0)
        .map_err(|_| Failed("backing file shorter than a header; skipped".into()))?;
    let header =
        FileHeader::decode(&raw).map_err(|e| Failed(format!("bad file header: {e}; skipped")))?;
    let layout = BlockLayout::new(vol.block_size()).map_err(|e| Failed(e.to_string()))?;
    layout
        .check_size(header.version, size)
        .map_err(|e| Failed(format!("{e}; skipped")))?;
    let volume_id = &vol.config.volume_id;
    let dek = with_file_context(volume_id, &f.plain, |ctx| {
        keys.decrypt_data_key(caller, &header.wrapped_dek, ctx)
    })?;
    let fresh = keys.generate_data_key(
        caller,
        &vol.config.master_key_id,
        &file_context(volume_id, &f.plain),
    )?;
    vol.check_new_data_key(keys, &fresh.wrapped)
        .map_err(|e| Failed(format!("{e}; skipped")))?;
    let bs = vol.block_size();
    let from = ContentCipher::new(&dek, header.file_id, bs).map_err(|e| Failed(e.to_string()))?;
    let to = ContentCipher::new(&fresh.plaintext, header.file_id, bs)
        .map_err(|e| Failed(e.to_string()))?;
    let new_header = FileHeader {
        version: header.version,
        file_id: header.file_id,
        wrapped_dek: fresh.wrapped,
    }
    .encode()
    .map_err(|e| Failed(e.to_string()))?;
    let dir = f.backing.parent().unwrap_or(&vol.root);
    let mut tmp = Temp::create(dir)?;
    tmp.file.write_all_at(&new_header, 0)?;
    reseal_blocks(&old, &tmp.file, size, header.version, layout, &from, &to)?;
    tmp.file.set_len(size)?;
    copy_metadata(&old, &tmp.file, &meta)?;
    tmp.file.sync_all()?;
    fs::rename(&tmp.path, &f.backing)?;
    tmp.keep = true;
    Ok(true)
}

/// Every stored block of `old` opened with `from` and sealed with `to`
/// under the same mark into `new`; all-zero middle blocks (holes) skipped.
fn reseal_blocks(
    old: &File,
    new: &File,
    size: u64,
    version: u16,
    layout: BlockLayout,
    from: &ContentCipher,
    to: &ContentCipher,
) -> Result<(), Failed> {
    let stored = layout.stored_block_size();
    let count = (size - HEADER_LEN as u64).div_ceil(stored);
    let mut buf = vec![0u8; stored as usize];
    let mut plain = zeroize::Zeroizing::new(vec![0u8; layout.block_size() as usize]);
    for i in 0..count {
        let off = HEADER_LEN as u64 + i * stored;
        let len = stored.min(size - off) as usize;
        let block = &mut buf[..len];
        old.read_exact_at(block, off)?;
        let marks: &[BlockMark] = if version == HEADER_FORMAT_V1 {
            &[BlockMark::V1]
        } else if i + 1 == count {
            &[
                BlockMark::Last { sparse: false },
                BlockMark::Last { sparse: true },
            ]
        } else {
            &[
                BlockMark::Middle,
                BlockMark::Last { sparse: false },
                BlockMark::Last { sparse: true },
            ]
        };
        let opened = marks.iter().find_map(|m| {
            from.open_block_into(i, *m, block, &mut plain)
                .ok()
                .map(|n| (*m, n))
        });
        match opened {
            Some((mark, n)) => {
                let sealed = to
                    .seal_block(i, mark, &plain[..n])
                    .map_err(|e| Failed(e.to_string()))?;
                new.write_all_at(&sealed, off)?;
            }
            None if i + 1 < count
                && version != HEADER_FORMAT_V1
                && block.iter().all(|b| *b == 0) => {}
            None => {
                return Err(Failed(format!(
                    "block {i} fails authentication (damaged or tampered); skipped"
                )));
            }
        }
    }
    Ok(())
}

/// Owner, mode, timestamps and stored attributes of `old` onto `new`.
fn copy_metadata(old: &File, new: &File, meta: &fs::Metadata) -> std::io::Result<()> {
    use rustix::fs::{Gid, Uid};
    // As root the owner is kept; otherwise the files are this user's.
    let _ = rustix::fs::fchown(
        new,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
    );
    new.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::flistxattr(old, &mut names[..])?;
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::OsStr::from_bytes(name);
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::fgetxattr(old, name, &mut value[..])?;
        rustix::fs::fsetxattr(new, name, &value[..len], rustix::fs::XattrFlags::empty())?;
    }
    rustix::fs::futimens(new, &crate::volume::times_of(meta))?;
    Ok(())
}
