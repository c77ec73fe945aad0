//! Rename: re-wraps the data key of every regular file that changes path
//! (ReEncrypt, as the caller) under a journal, `kmsfs.journal` in the
//! cipher root, so that a crash half-way is rolled forward (backing rename
//! done) or back (not done) at the next mount. The order of the steps, the
//! journal's byte format and the recovery table are in `docs/file-format.md`,
//! section "Rename journal".

use super::Core;
use super::errno::{FsError, FsResult};
use super::fault::{RenameStage, crash_point};
use super::inode::{NodeRef, PlainPath};
use crate::format::{FileHeader, HEADER_LEN};
use crate::keys::KeyService;
use crate::names::BackingName;
use crate::volume::{JOURNAL_FILE_NAME, META_FILE_MODE, Volume, write_atomic};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fuser::{RenameFlags, Request};
use kms_engine::safe_fs::Dir;
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    entries: Vec<JournalEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    /// Backing path after the rename, relative to the cipher root,
    /// base64url of its bytes.
    path: String,
    /// The file id, base64url.
    file_id: String,
    /// The new header, base64url.
    header: String,
}

/// A symlink created under a temporary name (see [`Core::prepare_link`]);
/// removed on drop unless placed, with its long-link target file.
struct TempLink {
    dir: Dir,
    name: std::ffi::OsString,
    placed: bool,
    /// The long-link target file written for the copy (in its directory).
    new_file: Option<PathBuf>,
    /// The moved symlink's own long-link target file, in the directory it
    /// leaves: removed once the copy is in place.
    old_file: Option<PathBuf>,
}

impl TempLink {
    /// Renames the temporary symlink to `name` in its directory.
    fn place(&mut self, name: &OsStr, noreplace: bool) -> std::io::Result<()> {
        self.dir.rename(&self.name, &self.dir, name, noreplace)?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for TempLink {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.dir.remove(&self.name);
            if let Some(f) = &self.new_file {
                let _ = fs::remove_file(f);
            }
        }
    }
}

/// The re-encrypted copies of the symlinks a rename moves across
/// directories: the source's (in the destination directory) and, for an
/// exchange, the destination's (in the source directory).
#[derive(Default)]
struct MovedLinks {
    src: Option<TempLink>,
    dst: Option<TempLink>,
}

/// One file whose key is re-wrapped.
struct Rewrap {
    new_backing: PathBuf,
    header: FileHeader,
}

fn rel(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    URL_SAFE_NO_PAD.encode(r.as_os_str().as_bytes())
}

fn write_journal(root: &Path, rewraps: &[Rewrap]) -> FsResult<()> {
    let mut entries = Vec::with_capacity(rewraps.len());
    for r in rewraps {
        let bytes = r.header.encode().map_err(FsError::internal)?;
        entries.push(JournalEntry {
            path: rel(root, &r.new_backing),
            file_id: URL_SAFE_NO_PAD.encode(r.header.file_id.as_bytes()),
            header: URL_SAFE_NO_PAD.encode(bytes),
        });
    }
    let j = Journal {
        version: JOURNAL_VERSION,
        entries,
    };
    let bytes = serde_json::to_vec(&j).map_err(FsError::internal)?;
    // A full disk fails here, before anything moved, and leaves no temp
    // file behind. A journal that did get renamed into place names only
    // headers that match, so the next mount's recovery of it is harmless.
    write_atomic(&root.join(JOURNAL_FILE_NAME), &bytes, META_FILE_MODE)?;
    Ok(())
}

fn remove_journal(root: &Path) -> FsResult<()> {
    match fs::remove_file(root.join(JOURNAL_FILE_NAME)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    fs::File::open(root)?.sync_all()?;
    Ok(())
}

/// Writes `header` at offset 0 of `path` if the file there has `file_id`.
/// Returns whether it wrote.
fn apply_header(path: &Path, file_id: &[u8], header: &[u8]) -> FsResult<bool> {
    // Reading the header is no read of the file: its access time stays.
    let f = match crate::volume::open_quietly(path, true) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut cur = [0u8; HEADER_LEN];
    match f.read_exact_at(&mut cur, 0) {
        Ok(()) => {}
        // Shorter than a header: not the file the journal names.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        // A read error must stop recovery (the journal is kept for the next
        // mount), not count as "nothing to do" and lose the new header.
        Err(e) => return Err(e.into()),
    }
    match FileHeader::decode(&cur) {
        Ok(h) if h.file_id.as_bytes().as_slice() == file_id => {}
        _ => return Ok(false),
    }
    // Everything but the format version: a file converted to the current
    // format (truncated to zero bytes) after the rename read its header
    // keeps its new version.
    let v = crate::format::VERSION_OFFSET as usize;
    crate::volume::keeping_times(&f, || {
        f.write_all_at(&header[..v], 0)?;
        f.write_all_at(&header[v + 2..], (v + 2) as u64)
    })?;
    f.sync_data()?;
    Ok(true)
}

/// The backing path of a journal entry's `rel` bytes, only when it is a
/// plain relative path below `root` (no `..`, no root, not empty): a
/// tampered journal must not make recovery write headers outside the volume.
fn journal_target(root: &Path, rel: &[u8]) -> Option<PathBuf> {
    let rel = Path::new(OsStr::from_bytes(rel));
    let mut comps = rel.components().peekable();
    comps.peek()?;
    comps
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then(|| root.join(rel))
}

/// Rolls a pending rename journal forward (see the module docs).
pub fn recover_journal(vol: &Volume) -> FsResult<()> {
    let jpath = vol.root.join(JOURNAL_FILE_NAME);
    let read = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&jpath)
        .and_then(|mut f| {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).map(|_| b)
        });
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Not written by kmsfs (it writes a regular file): planted in the
        // cipher directory, never followed.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            log::warn!("{JOURNAL_FILE_NAME} is a symbolic link, not a journal: removed");
            return remove_journal(&vol.root);
        }
        Err(e) => return Err(e.into()),
    };
    let j: Journal = match serde_json::from_slice(&bytes) {
        Ok(j) => j,
        Err(e) => {
            // A journal that is not complete was never acted on (it is
            // written atomically): the rename did not start.
            log::warn!("ignoring unreadable rename journal: {e}");
            return remove_journal(&vol.root);
        }
    };
    if j.version != JOURNAL_VERSION {
        return Err(FsError::tampered(
            JOURNAL_FILE_NAME,
            format!("unknown journal version {}", j.version),
        ));
    }
    let mut applied = 0usize;
    for e in &j.entries {
        let (Ok(p), Ok(id), Ok(h)) = (
            URL_SAFE_NO_PAD.decode(&e.path),
            URL_SAFE_NO_PAD.decode(&e.file_id),
            URL_SAFE_NO_PAD.decode(&e.header),
        ) else {
            log::warn!("skipping malformed journal entry");
            continue;
        };
        if h.len() != HEADER_LEN {
            continue;
        }
        let Some(path) = journal_target(&vol.root, &p) else {
            log::warn!("skipping journal entry with a path outside the volume");
            continue;
        };
        if apply_header(&path, &id, &h)? {
            applied += 1;
        }
    }
    log::warn!(
        "completed an interrupted rename: {applied} of {} headers rewritten",
        j.entries.len()
    );
    remove_journal(&vol.root)
}

impl Core {
    /// Every regular file beneath backing dir `dir` (plaintext `plain`).
    fn collect_files(
        &self,
        dir: &Path,
        plain: &PlainPath,
        out: &mut Vec<(PathBuf, PlainPath)>,
    ) -> FsResult<()> {
        let pdisp = plain.display();
        let iv = self.dir_iv_at(dir, &pdisp)?;
        // Listing the moved tree is no read of it: access times stay.
        for (backing_name, ft) in crate::volume::list_dir_quietly(dir)? {
            let Some(name) = self.decode_entry(dir, &pdisp, &iv, &backing_name) else {
                continue;
            };
            let child_plain = plain.child(&name);
            if ft == rustix::fs::FileType::Directory {
                self.collect_files(&dir.join(&backing_name), &child_plain, out)?;
            } else if ft == rustix::fs::FileType::RegularFile {
                out.push((dir.join(&backing_name), child_plain));
            }
        }
        Ok(())
    }

    /// ReEncrypts the key of the file at `backing` from `old` to `new`;
    /// the resulting header goes to `new_backing`. Files whose header does
    /// not decode are left alone (they do not open anyway).
    fn rewrap_one(
        &self,
        req: &Request,
        backing: &Path,
        old: &PlainPath,
        new: &PlainPath,
        new_backing: PathBuf,
        out: &mut Vec<Rewrap>,
    ) -> FsResult<()> {
        // Reading the header is no read of the file: its access time stays.
        let f = crate::volume::open_quietly(backing, false)?;
        let mut hdr = [0u8; HEADER_LEN];
        let header = match f
            .read_exact_at(&mut hdr, 0)
            .ok()
            .map(|_| FileHeader::decode(&hdr))
        {
            Some(Ok(h)) => h,
            _ => {
                log::warn!("{}: bad header, moved without re-wrap", old.display());
                return Ok(());
            }
        };
        let caller = self.caller(req).principal().clone();
        let to = self.file_context(new);
        let wrapped = super::with_file_context(&self.vol.config.volume_id, old, |from| {
            self.keys
                .rewrap_data_key(&caller, &header.wrapped_dek, from, &to)
        })
        .map_err(|e| {
            log::info!("{}: ReEncrypt refused: {e}", old.display());
            FsError::Kms(e)
        })?;
        let header = header.rewrapped(wrapped).map_err(FsError::internal)?;
        out.push(Rewrap {
            new_backing,
            header,
        });
        Ok(())
    }

    /// Re-wraps for everything at `from` (backing `from_b`) moving to `to`
    /// (backing `to_b`).
    fn plan_move(
        &self,
        req: &Request,
        from: &PlainPath,
        from_b: &Path,
        to: &PlainPath,
        to_b: &Path,
        out: &mut Vec<Rewrap>,
    ) -> FsResult<()> {
        let meta = fs::symlink_metadata(from_b)?;
        if meta.is_file() {
            return self.rewrap_one(req, from_b, from, to, to_b.to_path_buf(), out);
        }
        if meta.is_dir() {
            let mut files = Vec::new();
            self.collect_files(from_b, from, &mut files)?;
            for (b, p) in files {
                let rest_b = b.strip_prefix(from_b).map_err(|_| FsError::Stale)?;
                let rest_p = &p.as_bytes()[from.as_bytes().len()..];
                let mut np = to.as_bytes().to_vec();
                np.extend_from_slice(rest_p);
                self.rewrap_one(
                    req,
                    &b,
                    &p,
                    &PlainPath::from_bytes(np),
                    to_b.join(rest_b),
                    out,
                )?;
            }
        }
        Ok(())
    }

    /// The symlink at `backing` (in directory `from`) with its target
    /// re-encrypted for directory `to`'s IV, created under a temporary
    /// name in `to`'s backing directory with the same owner; None when the
    /// stored target does not change (same IV, plaintext names).
    fn prepare_link(
        &self,
        backing: &Path,
        from: &NodeRef,
        to: &NodeRef,
    ) -> FsResult<Option<TempLink>> {
        if from.ino == to.ino || !self.vol.encrypted_names() {
            return Ok(None);
        }
        if self.dir_iv(from)? == self.dir_iv(to)? {
            return Ok(None);
        }
        let target = match self.read_link_target(backing) {
            Ok(t) => t,
            // Like a file whose header does not decode: it does not read
            // anyway, so it moves as it is.
            Err(FsError::Name(e)) => {
                log::warn!(
                    "{}: bad symlink target ({e}), moved as it is",
                    backing.display()
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let old_file = self.long_link_file(backing);
        let stored = self.encode_link_target(to, &target)?;
        let new_file =
            crate::names::is_long_link_name(stored.as_bytes()).then(|| to.backing.join(&stored));
        let made = fs::symlink_metadata(backing).and_then(|meta| {
            let dir = Dir::open(&to.backing)?;
            let name = dir.symlink_temp(&stored)?;
            Ok((meta, dir, name))
        });
        let (meta, dir, name) = match made {
            Ok(m) => m,
            Err(e) => {
                self.remove_long_link_file(new_file);
                return Err(e.into());
            }
        };
        let link = TempLink {
            dir,
            name,
            placed: false,
            new_file,
            old_file,
        };
        use std::os::unix::fs::MetadataExt;
        rustix::fs::chownat(
            &link.dir,
            &link.name,
            Some(rustix::fs::Uid::from_raw(meta.uid())),
            Some(rustix::fs::Gid::from_raw(meta.gid())),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        // The copy is the same symlink moved: its times are the old one's.
        rustix::fs::utimensat(
            &link.dir,
            &link.name,
            &crate::volume::times_of(&meta),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(Some(link))
    }

    /// Step 3 of a rename: the backing rename, with a moved symlink's
    /// re-encrypted copy (prepared before anything changed) taking the
    /// place of the old one. A plain move of a symlink becomes "rename the
    /// copy over the destination, then remove the source", so a failure or
    /// a crash leaves the old symlink readable (at worst next to the new
    /// one), never a symlink whose target does not decrypt.
    fn move_entries(
        &self,
        src: (&Path, &BackingName),
        dst: (&Path, &BackingName),
        links: &mut MovedLinks,
        rflags: rustix::fs::RenameFlags,
    ) -> FsResult<()> {
        use rustix::fs::RenameFlags as F;
        let name_of = |bn: &BackingName| OsStr::from_bytes(bn.name()).to_os_string();
        if !rflags.intersects(F::EXCHANGE | F::WHITEOUT)
            && let Some(link) = links.src.as_mut()
        {
            link.place(&name_of(dst.1), rflags.contains(F::NOREPLACE))?;
            fs::remove_file(src.0)?;
            return Ok(());
        }
        rustix::fs::renameat_with(rustix::fs::CWD, src.0, rustix::fs::CWD, dst.0, rflags)?;
        // After an exchange (or a whiteout rename) each old symlink sits in
        // the other directory, where its copy replaces it.
        if let Some(link) = links.src.as_mut() {
            link.place(&name_of(dst.1), false)?;
        }
        if let Some(link) = links.dst.as_mut() {
            link.place(&name_of(src.1), false)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rename(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.check_writable()?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        // RENAME_WHITEOUT (overlayfs): the backing rename leaves the
        // whiteout, a 0/0 character device, at the source's backing name,
        // which decodes to the source's name; its long-name side file stays.
        let whiteout = flags.contains(RenameFlags::RENAME_WHITEOUT);
        if whiteout && exchange {
            return Err(FsError::InvalidArgument);
        }
        let _paths = self.paths_exclusive()?;
        let sdir = self.node(parent)?;
        let ddir = self.node(newparent)?;
        let (src_b, src_bn) = self.child_backing(&sdir, name)?;
        let (dst_b, dst_bn) = self.child_backing(&ddir, newname)?;
        let src_p = sdir.plain.child(name);
        let dst_p = ddir.plain.child(newname);
        let smeta = fs::symlink_metadata(&src_b).map_err(super::dir::not_found)?;
        let dmeta = match fs::symlink_metadata(&dst_b) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if src_b == dst_b {
            return Ok(());
        }
        if exchange && dmeta.is_none() {
            return Err(FsError::NotFound);
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && dmeta.is_some() {
            return Err(FsError::Exists);
        }
        // Replacing an empty directory: its kmsfs files are dropped just
        // before the backing rename, once every ReEncrypt has succeeded, so
        // that a refused rename leaves the target directory intact.
        let mut clear_dst = false;
        if !exchange && let Some(dm) = &dmeta {
            match (smeta.is_dir(), dm.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) => {
                    for ent in fs::read_dir(&dst_b)? {
                        let ent = ent?;
                        if crate::names::classify_backing_name(ent.file_name().as_bytes())
                            != crate::names::BackingKind::Reserved
                        {
                            return Err(FsError::NotEmpty);
                        }
                    }
                    clear_dst = true;
                }
                (false, false) => {}
            }
        }
        // What `fstat` on a descriptor still open on a replaced target says.
        let replaced = match (&dmeta, exchange) {
            (Some(dm), false) => {
                let known = self.table().ino_of(&dst_p);
                known.map(|ino| self.attr_from(ino, &dst_b, dm))
            }
            _ => None,
        };
        // A replaced symlink's long-link target file goes with it.
        let replaced_link = match &dmeta {
            Some(dm) if !exchange && dm.file_type().is_symlink() => self.long_link_file(&dst_b),
            _ => None,
        };
        // 1. ReEncrypt; symlinks moving to another directory get a copy
        // with their target re-encrypted for it (a full disk fails here,
        // before anything moved).
        let mut links = MovedLinks::default();
        if smeta.file_type().is_symlink() {
            links.src = self.prepare_link(&src_b, &sdir, &ddir)?;
        }
        if exchange && dmeta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
            links.dst = self.prepare_link(&dst_b, &ddir, &sdir)?;
        }
        // New files' keys still being wrapped under the old paths first.
        self.settle_keys_below(&src_p)?;
        if exchange {
            self.settle_keys_below(&dst_p)?;
        }
        let mut rewraps = Vec::new();
        self.plan_move(req, &src_p, &src_b, &dst_p, &dst_b, &mut rewraps)?;
        if exchange {
            self.plan_move(req, &dst_p, &dst_b, &src_p, &src_b, &mut rewraps)?;
        }
        let root = self.vol.root.clone();
        // 2. Journal.
        if !rewraps.is_empty() {
            write_journal(&root, &rewraps)?;
        }
        // 3. The backing rename (and the new long-name side file first).
        let new_side = !exchange && self.write_side_file(&ddir.backing, &dst_bn)?;
        if !rewraps.is_empty() {
            crash_point(RenameStage::BeforeBackingRename);
        }
        if clear_dst {
            for ent in fs::read_dir(&dst_b)? {
                fs::remove_file(ent?.path())?;
            }
        }
        let mut rflags = rustix::fs::RenameFlags::empty();
        if exchange {
            rflags |= rustix::fs::RenameFlags::EXCHANGE;
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            rflags |= rustix::fs::RenameFlags::NOREPLACE;
        }
        if whiteout {
            rflags |= rustix::fs::RenameFlags::WHITEOUT;
        }
        if let Err(e) = self.move_entries((&src_b, &src_bn), (&dst_b, &dst_bn), &mut links, rflags)
        {
            if !rewraps.is_empty() {
                remove_journal(&root)?;
            }
            if new_side {
                self.remove_side_file(&ddir.backing, &dst_bn);
            }
            return Err(e);
        }
        // 4. New headers.
        for (done, r) in rewraps.iter().enumerate() {
            crash_point(RenameStage::HeadersRewritten(done));
            let bytes = r.header.encode().map_err(FsError::internal)?;
            apply_header(&r.new_backing, r.header.file_id.as_bytes(), &bytes)?;
        }
        // 5. Done.
        if !rewraps.is_empty() {
            remove_journal(&root)?;
        }
        if !exchange && !whiteout {
            self.remove_side_file(&sdir.backing, &src_bn);
        }
        // Long-link target files no symlink names any more.
        self.remove_long_link_file(replaced_link);
        for link in [links.src.take(), links.dst.take()].into_iter().flatten() {
            self.remove_long_link_file(link.old_file.clone());
        }
        let mut t = self.table();
        if exchange {
            t.exchanged(&src_p, &src_b, &dst_p, &dst_b);
        } else {
            t.renamed(&src_p, &dst_p, &dst_b, replaced);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_header_reports_read_errors() {
        let d = tempfile::tempdir().unwrap();
        let short = d.path().join("short");
        fs::write(&short, b"tiny").unwrap();
        assert!(!apply_header(&short, &[0; 16], &[0; HEADER_LEN]).unwrap());
        assert!(!apply_header(&d.path().join("missing"), &[0; 16], &[0; HEADER_LEN]).unwrap());
        // Reading offset 0 of our own address space fails with EIO.
        let err =
            apply_header(Path::new("/proc/self/mem"), &[0; 16], &[0; HEADER_LEN]).unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::EIO);
    }

    #[test]
    fn journal_paths_stay_below_the_root() {
        let root = Path::new("/cipher");
        assert_eq!(
            journal_target(root, b"a/b"),
            Some(PathBuf::from("/cipher/a/b"))
        );
        // What write_journal records decodes back to the same path.
        let p = root.join(OsStr::from_bytes(b"d/\xffname"));
        let enc = URL_SAFE_NO_PAD.decode(rel(root, &p)).unwrap();
        assert_eq!(journal_target(root, &enc), Some(p));
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../other-volume/file",
            b"a/../../b",
            b"./",
            b".",
        ] {
            assert_eq!(journal_target(root, bad), None, "{bad:?}");
        }
    }
}
