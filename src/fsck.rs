//! `kmsfs fsck`: checks an unmounted volume end to end and reports every
//! problem, changing nothing. Every check uses the decoders the filesystem
//! uses (names, long names, symlink targets, file headers, content blocks,
//! xattrs); data keys are unwrapped through the key service under each
//! file's path context, exactly as a mount would.

use crate::content::{BlockLayout, BlockMark, ContentCipher, ContentError, Opened};
use crate::format::{CONFIG_FILE_NAME, FileHeader, HEADER_FORMAT_V1, HEADER_LEN};
use crate::fuse::inode::PlainPath;
use crate::fuse::with_file_context;
use crate::fuse::xattr::{XattrCipher, XattrObject};
use crate::keys::KeyService;
use crate::names::{
    BackingKind, DIRIV_FILE_NAME, DirIv, JOURNAL_FILE_NAME, LONG_NAME_SUFFIX, MAX_SIDE_FILE_LEN,
    classify_backing_name, side_file_name,
};
use crate::volume::{Volume, read_dir_iv, read_small_file};
use kms_engine::Principal;
use serde::Serialize;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The directory in the cipher root where `fsck --repair` moves what it
/// cannot repair (never listed by a mount, never checked by fsck).
pub const QUARANTINE_DIR_NAME: &str = "kmsfs.quarantine";

/// How many failing block indices a problem line lists before "...".
const MAX_LISTED_BLOCKS: usize = 8;

/// One problem found.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Problem {
    /// The plaintext path when the names leading to it decrypt, else the
    /// backing path (relative to the cipher directory, starting with
    /// `cipherdir:`)
    pub path: String,
    /// The backing path, relative to the cipher directory.
    pub backing: String,
    /// What is wrong.
    pub what: String,
    /// The kind of damage, which decides what `--repair` does with it.
    pub kind: Kind,
    /// The backing path itself (for `--repair`).
    #[serde(skip)]
    pub backing_path: std::path::PathBuf,
    /// For [`Kind::Xattr`]: the attribute's name in the backing store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xattr: Option<String>,
}

/// Kinds of problems, by what `kmsfs fsck --repair` can do about them
/// (see `crate::repair`).
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A pending rename journal: finished (or rolled back) by recovery.
    Journal,
    /// A missing or damaged `kmsfs.diriv`.
    DirIv,
    /// A long name whose side file is missing or unreadable.
    LongNameSide,
    /// A name (or long name) that does not decrypt.
    Name,
    /// A stray file: a leftover temporary file, an unknown `kmsfs.*` name,
    /// a side file without its entry.
    Stray,
    /// A symlink whose target does not decrypt.
    Symlink,
    /// A regular file whose size, header, data key or blocks are damaged.
    Content,
    /// A stored attribute that does not decrypt or authenticate.
    Xattr,
    /// The key service refused or failed to unwrap a data key: not damage.
    KeyAccess,
    /// An I/O error reading the backing directory: not damage as such.
    Io,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Special files (FIFOs, sockets, devices made through the mount).
    pub other: u64,
    pub xattrs: u64,
    /// Regular files still in content format 1 (no end mark: a cut at a
    /// block boundary is not detectable in them); each converts to format
    /// 2 when truncated to zero bytes.
    pub old_format_files: u64,
    /// Files whose end mark says they may contain holes.
    pub sparse_files: u64,
    /// A rename journal is pending (`kmsfs.journal`): mount once to finish it.
    pub journal_pending: bool,
    /// Files by the key version their data key is wrapped under: the newest
    /// version of the volume's key, older ones (`kmsfs rewrap` re-wraps
    /// them), other keys. `None` when the key service's blobs do not name
    /// versions (AWS KMS) or the newest version could not be learnt.
    pub key_versions: Option<crate::rewrap::VersionCount>,
    pub problems: Vec<Problem>,
}

struct Checker<'a, 'p> {
    vol: &'a Volume,
    /// The newest version of the volume's key, for `key_versions`.
    newest: Option<crate::rewrap::KeyVersion>,
    keys: &'a dyn KeyService,
    /// A write-only volume's files are unwrapped through their slot.
    slots: Option<crate::keys::write_only::SlotReader>,
    caller: &'a Principal,
    layout: BlockLayout,
    xattrs: XattrCipher,
    report: Report,
    progress: Option<&'p mut dyn FnMut(&Report)>,
}

/// Checks the (unmounted) volume `vol`, unwrapping data keys as `caller`.
/// Reads only: no byte of the cipher directory changes.
pub fn check(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
) -> Result<Report, std::io::Error> {
    check_with_progress(vol, keys, caller, None)
}

/// [`check`], calling `progress` with the report so far after each file.
pub fn check_with_progress(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
    progress: Option<&mut dyn FnMut(&Report)>,
) -> Result<Report, std::io::Error> {
    let layout = BlockLayout::new(vol.block_size()).map_err(std::io::Error::other)?;
    let xattrs =
        XattrCipher::new(vol.names_key()).map_err(|e| std::io::Error::other(e.to_string()))?;
    // A write-only volume's files are not under the master key: no
    // versions to count. Each slot is asked for once per run.
    let slots = vol.config.write_only_key.as_ref().map(|key| {
        crate::keys::write_only::SlotReader::new(
            &vol.root,
            &vol.config.volume_id,
            key,
            std::time::Duration::from_secs(24 * 3600),
        )
    });
    let newest = match slots {
        Some(_) => None,
        None => crate::rewrap::newest_version(vol, keys, caller),
    };
    let mut c = Checker {
        newest,
        vol,
        keys,
        slots,
        caller,
        layout,
        xattrs,
        report: Report::default(),
        progress,
    };
    if fs::symlink_metadata(vol.root.join(JOURNAL_FILE_NAME)).is_ok() {
        c.report.journal_pending = true;
        c.problem(
            Kind::Journal,
            "/".into(),
            &vol.root.join(JOURNAL_FILE_NAME),
            "an interrupted rename is pending (kmsfs.journal): mount the volume once to \
             finish it; until then the files it names may be reported as not unwrapping",
        );
    }
    if fs::symlink_metadata(vol.root.join(crate::rewrap::MIGRATE_STATE_NAME)).is_ok() {
        c.problem(
            Kind::KeyAccess,
            "/".into(),
            &vol.root.join(crate::rewrap::MIGRATE_STATE_NAME),
            "a migration to another key service is pending (kmsfs.migrate): run kmsfs \
             migrate again to finish it; until then files already moved are reported as not \
             unwrapping",
        );
    }
    if crate::rewrap::names::pending(&vol.root) {
        c.problem(
            Kind::KeyAccess,
            "/".into(),
            &vol.root.join(crate::rewrap::names::NAMES_STATE_NAME),
            "a names rekey is pending (kmsfs.rekey-names): run kmsfs rekey --names again to \
             finish it; until then names already under the new names key are reported as not \
             decrypting",
        );
    }
    c.report.key_versions = c.newest.as_ref().map(|_| Default::default());
    c.dir(&vol.root.clone(), Some(&PlainPath::root()))?;
    // Plaintext paths first, in order, then backing paths (a stable sort
    // keeps the journal line first among the root's).
    c.report.problems.sort_by(|a, b| {
        a.path
            .starts_with('/')
            .cmp(&b.path.starts_with('/'))
            .reverse()
            .then(a.path.cmp(&b.path))
    });
    Ok(c.report)
}

impl Checker<'_, '_> {
    fn rel(&self, backing: &Path) -> String {
        let r = backing.strip_prefix(&self.vol.root).unwrap_or(backing);
        format!("cipherdir:/{}", r.display())
    }

    fn problem(&mut self, kind: Kind, path: String, backing: &Path, what: impl Into<String>) {
        self.report.problems.push(Problem {
            path,
            backing: self.rel(backing),
            what: what.into(),
            kind,
            backing_path: backing.to_path_buf(),
            xattr: None,
        });
    }

    /// The path to print: the plaintext path, or the backing one.
    fn shown(&self, plain: Option<&PlainPath>, backing: &Path) -> String {
        match plain {
            Some(p) => String::from_utf8_lossy(p.as_bytes()).into_owned(),
            None => self.rel(backing),
        }
    }

    /// Checks backing directory `dir` (plaintext `plain`, `None` when its
    /// name or an ancestor's does not decrypt) and everything beneath.
    fn dir(&mut self, dir: &Path, plain: Option<&PlainPath>) -> std::io::Result<()> {
        self.report.dirs += 1;
        let shown = self.shown(plain, dir);
        let iv = if self.vol.encrypted_names() {
            match read_dir_iv(dir) {
                Ok(iv) => Some(DirIv(iv)),
                Err(e) => {
                    let what = if e.kind() == std::io::ErrorKind::NotFound {
                        "directory IV file kmsfs.diriv is missing".to_string()
                    } else {
                        format!("directory IV file kmsfs.diriv is damaged ({e})")
                    };
                    self.problem(
                        Kind::DirIv,
                        shown.clone(),
                        dir,
                        format!("{what}: no name in this directory can be decrypted"),
                    );
                    None
                }
            }
        } else {
            Some(DirIv([0; 16]))
        };
        self.object_xattrs(&shown, dir, iv.map(|iv| XattrObject::Dir(iv.0)));
        let mut entries: Vec<_> = match crate::volume::list_dir_quietly(dir) {
            Ok(entries) => entries.into_iter().map(|(name, _)| name).collect(),
            Err(e) => {
                self.problem(
                    Kind::Io,
                    shown,
                    dir,
                    format!("cannot list the directory: {e}"),
                );
                return Ok(());
            }
        };
        entries.sort();
        let is_root = dir == self.vol.root;
        for name in entries {
            let raw = name.as_bytes();
            let backing = dir.join(&name);
            let child_plain = match classify_backing_name(raw) {
                BackingKind::Reserved => {
                    let known = raw == DIRIV_FILE_NAME.as_bytes()
                        || crate::names::is_long_link_name(raw)
                        || (is_root
                            && (raw == CONFIG_FILE_NAME.as_bytes()
                                || raw == JOURNAL_FILE_NAME.as_bytes()
                                || raw == QUARANTINE_DIR_NAME.as_bytes()
                                || raw == crate::keys::write_only::SLOT_DIR_NAME.as_bytes()
                                || crate::rewrap::is_job_file(raw)));
                    if kms_engine::safe_fs::is_temp_name(raw) {
                        self.problem(
                            Kind::Stray,
                            self.rel(&backing),
                            &backing,
                            "leftover temporary file of an interrupted write (safe to remove)",
                        );
                    } else if !known {
                        self.problem(
                            Kind::Stray,
                            self.rel(&backing),
                            &backing,
                            "stray file: not a kmsfs file (unknown kmsfs.* name)",
                        );
                    }
                    continue;
                }
                BackingKind::LongNameSide => {
                    let entry = &raw[..raw.len() - LONG_NAME_SUFFIX.len()];
                    if fs::symlink_metadata(dir.join(OsStr::from_bytes(entry))).is_err() {
                        self.problem(
                            Kind::Stray,
                            self.rel(&backing),
                            &backing,
                            "stray long-name side file: its entry is missing",
                        );
                    }
                    continue;
                }
                BackingKind::LongName => {
                    let side = dir.join(side_file_name(&String::from_utf8_lossy(raw)));
                    match (iv, read_small_file(&side, MAX_SIDE_FILE_LEN)) {
                        (None, _) => None,
                        (Some(_), Err(e)) => {
                            self.problem(
                                Kind::LongNameSide,
                                self.rel(&backing),
                                &backing,
                                format!("long name without a readable side file ({e})"),
                            );
                            None
                        }
                        (Some(iv), Ok(s)) => match self.vol.names.decode_long_name(&iv, raw, &s) {
                            Ok(n) => plain.map(|p| p.child(OsStr::from_bytes(&n))),
                            Err(e) => {
                                self.problem(
                                    Kind::Name,
                                    self.rel(&backing),
                                    &backing,
                                    format!("long name does not decrypt: {e}"),
                                );
                                None
                            }
                        },
                    }
                }
                BackingKind::Regular => match iv {
                    None => None,
                    Some(iv) => match self.vol.names.decode_name(&iv, raw) {
                        Ok(n) => plain.map(|p| p.child(OsStr::from_bytes(&n))),
                        Err(e) => {
                            self.problem(
                                Kind::Name,
                                self.rel(&backing),
                                &backing,
                                format!(
                                    "name does not decrypt ({e}): a damaged name, or a stray \
                                     file that is not kmsfs's"
                                ),
                            );
                            None
                        }
                    },
                },
            };
            self.entry(&backing, child_plain.as_ref(), iv)?;
        }
        Ok(())
    }

    /// Checks one entry by its type.
    fn entry(
        &mut self,
        backing: &Path,
        plain: Option<&PlainPath>,
        dir_iv: Option<DirIv>,
    ) -> std::io::Result<()> {
        let shown = self.shown(plain, backing);
        let ft = match fs::symlink_metadata(backing) {
            Ok(m) => m.file_type(),
            Err(e) => {
                self.problem(Kind::Io, shown, backing, format!("cannot stat: {e}"));
                return Ok(());
            }
        };
        if ft.is_dir() {
            return self.dir(backing, plain);
        }
        if ft.is_symlink() {
            self.report.symlinks += 1;
            if let (true, Some(iv)) = (self.vol.encrypted_names(), dir_iv) {
                let dir = backing.parent().unwrap_or(Path::new("/"));
                let stored = fs::read_link(backing)
                    .map(|t| std::os::unix::ffi::OsStringExt::into_vec(t.into_os_string()))
                    .and_then(|t| crate::volume::stored_link_target(dir, t));
                match stored {
                    Ok(t) => {
                        if let Err(e) = self.vol.names.decrypt_symlink(&iv, &t) {
                            self.problem(
                                Kind::Symlink,
                                shown,
                                backing,
                                format!("symlink target does not decrypt: {e}"),
                            );
                        }
                    }
                    Err(e) => self.problem(
                        Kind::Symlink,
                        shown,
                        backing,
                        format!("cannot read the link or its long-link target file: {e}"),
                    ),
                }
            }
            return Ok(());
        }
        if ft.is_file() {
            self.report.files += 1;
            // A file whose name (or a parent's) does not decrypt was reported
            // as such; without its path its data key cannot be checked, and a
            // stray file that is not kmsfs's would only add noise.
            if plain.is_some() {
                self.file(backing, plain, &shown);
            }
            if let Some(p) = self.progress.as_mut() {
                p(&self.report);
            }
            return Ok(());
        }
        self.report.other += 1;
        Ok(())
    }

    /// The kmsfs attributes of `backing`, standing for `obj`.
    fn object_xattrs(&mut self, shown: &str, backing: &Path, obj: Option<XattrObject>) {
        let Some(obj) = obj else { return };
        match self.xattrs.check_all(backing, &obj) {
            Ok((n, bad)) => {
                self.report.xattrs += n as u64;
                for crate::fuse::xattr::BadXattr { stored, name, what } in bad {
                    self.problem(
                        Kind::Xattr,
                        shown.to_string(),
                        backing,
                        format!("xattr {name}: {what}"),
                    );
                    if let Some(p) = self.report.problems.last_mut() {
                        p.xattr = Some(stored);
                    }
                }
            }
            Err(e) => self.problem(
                Kind::Io,
                shown.to_string(),
                backing,
                format!("cannot list the attributes: {e}"),
            ),
        }
    }

    /// Checks a regular file: size, header, data key, every block, xattrs.
    fn file(&mut self, backing: &Path, plain: Option<&PlainPath>, shown: &str) {
        // A check is no read of the file: its access time stays.
        let f = match crate::volume::open_quietly(backing, false) {
            Ok(f) => f,
            Err(e) => {
                self.problem(Kind::Io, shown.into(), backing, format!("cannot open: {e}"));
                return;
            }
        };
        let cipher_size = match f.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                self.problem(Kind::Io, shown.into(), backing, format!("cannot stat: {e}"));
                return;
            }
        };
        if cipher_size == 0 {
            // Created, no header written yet: an empty file.
            return;
        }
        // Blocks that are whole enough to check, and the plaintext size.
        let mut cut_mid_block = false;
        let plain_size = match self.layout.plain_size(cipher_size) {
            Ok(n) => n,
            Err(ContentError::TruncatedBlock { block, .. }) => {
                cut_mid_block = true;
                self.problem(
                    Kind::Content,
                    shown.into(),
                    backing,
                    format!(
                        "backing file of {cipher_size} bytes is truncated inside block \
                         {block}: the end of the file is lost"
                    ),
                );
                block * u64::from(self.layout.block_size())
            }
            Err(e) => {
                self.problem(Kind::Content, shown.into(), backing, e.to_string());
                return;
            }
        };
        let mut hdr = [0u8; HEADER_LEN];
        if let Err(e) = f.read_exact_at(&mut hdr, 0) {
            self.problem(
                Kind::Io,
                shown.into(),
                backing,
                format!("cannot read the header: {e}"),
            );
            return;
        }
        let header = match FileHeader::decode(&hdr) {
            Ok(h) => h,
            Err(e @ crate::format::header::HeaderError::KeyPending) => {
                self.problem(
                    Kind::Content,
                    shown.into(),
                    backing,
                    format!("{e}; the file can only be deleted"),
                );
                return;
            }
            Err(e) => {
                self.problem(
                    Kind::Content,
                    shown.into(),
                    backing,
                    format!("bad file header: {e}"),
                );
                return;
            }
        };
        if header.version == HEADER_FORMAT_V1 {
            self.report.old_format_files += 1;
        }
        if let (Some(newest), Some(count)) = (&self.newest, &mut self.report.key_versions) {
            count.add(
                crate::rewrap::blob_key_version(&header.wrapped_dek).as_ref(),
                newest,
            );
        }
        if !cut_mid_block && let Err(e) = self.layout.check_size(header.version, cipher_size) {
            let what = match e {
                ContentError::MissingEnd { .. } => "no end mark: the file was cut down to its \
                    header (its content is lost)"
                    .to_string(),
                other => other.to_string(),
            };
            self.problem(Kind::Content, shown.into(), backing, what);
            return;
        }
        self.object_xattrs(shown, backing, Some(XattrObject::File(header.file_id.0)));
        let Some(plain) = plain else { return };
        let dek =
            match with_file_context(&self.vol.config.volume_id, plain, |ctx| match &self.slots {
                Some(slots) if crate::keys::write_only::is_slot_wrapped(&header.wrapped_dek) => {
                    slots.decrypt_data_key(self.keys, self.caller, &header.wrapped_dek, ctx)
                }
                _ => self
                    .keys
                    .decrypt_data_key(self.caller, &header.wrapped_dek, ctx),
            }) {
                Ok(k) => k,
                Err(e) => {
                    let kind = match e {
                        kms_engine::KmsError::InvalidCiphertext(_) => Kind::Content,
                        // Refused or unreachable: not damage; repair leaves it.
                        _ => Kind::KeyAccess,
                    };
                    let what = match e {
                        kms_engine::KmsError::InvalidCiphertext(_) => format!(
                            "data key does not unwrap under this path ({} ({})): the file was \
                         moved or copied here from another path, or its header was \
                         swapped or damaged",
                            e.message(),
                            e.exception_name()
                        ),
                        _ => format!(
                            "data key cannot be unwrapped: {} ({})",
                            e.message(),
                            e.exception_name()
                        ),
                    };
                    self.problem(kind, shown.into(), backing, what);
                    return;
                }
            };
        let cipher = match ContentCipher::new(&dek, header.file_id, self.layout.block_size()) {
            Ok(c) => c,
            Err(e) => {
                self.problem(Kind::Content, shown.into(), backing, e.to_string());
                return;
            }
        };
        let scan = match self.scan_blocks(&f, &cipher, header.version, plain_size) {
            Ok(scan) => scan,
            Err(e) => {
                self.problem(Kind::Io, shown.into(), backing, format!("read error: {e}"));
                return;
            }
        };
        self.report_scan(shown, backing, &scan, !cut_mid_block);
    }

    /// Problems from the blocks of one file.
    fn report_scan(&mut self, shown: &str, backing: &Path, scan: &BlockScan, check_end: bool) {
        if !scan.bad.is_empty() {
            self.problem(
                Kind::Content,
                shown.into(),
                backing,
                format!(
                    "{} of {} blocks fail authentication (damaged or tampered): block {}",
                    scan.bad.len(),
                    scan.blocks,
                    list_blocks(&scan.bad)
                ),
            );
        }
        if scan.end_unmarked && check_end {
            self.problem(
                Kind::Content,
                shown.into(),
                backing,
                format!(
                    "the last block (block {}) has no end mark: whole blocks were cut off the \
                     end of the file",
                    scan.blocks - 1
                ),
            );
        }
        match scan.end {
            Some(true) => self.report.sparse_files += 1,
            Some(false) if !scan.holes.is_empty() => self.problem(
                Kind::Content,
                shown.into(),
                backing,
                format!(
                    "{} all-zero blocks in a file without holes (zeroed, not written by kmsfs): \
                     block {}",
                    scan.holes.len(),
                    list_blocks(&scan.holes)
                ),
            ),
            _ => {}
        }
    }

    /// Opens every block of `f` by the rules of content format `version`.
    fn scan_blocks(
        &self,
        f: &File,
        cipher: &ContentCipher,
        version: u16,
        plain_size: u64,
    ) -> std::io::Result<BlockScan> {
        let v1 = version == HEADER_FORMAT_V1;
        let mut blocks = self.layout.block_count(plain_size);
        if !v1 {
            // An empty format-2 file holds its empty end block.
            blocks = blocks.max(1);
        }
        let mut scan = BlockScan {
            blocks,
            ..BlockScan::default()
        };
        let last = blocks.saturating_sub(1);
        let mut stored = vec![0u8; self.layout.stored_block_size() as usize];
        let mut out = vec![0u8; self.layout.block_size() as usize];
        for i in 0..blocks {
            let len = BlockLayout::stored_len(self.layout.block_plain_len(i, plain_size));
            let buf = &mut stored[..len];
            f.read_exact_at(buf, self.layout.block_cipher_offset(i))?;
            match cipher.open_at(version, i, last, buf, &mut out) {
                Ok(Opened::Data { sparse, .. }) => scan.end = scan.end.or(sparse),
                Ok(Opened::Hole { .. }) => scan.holes.push(i),
                Err(_) if i == last && !v1 => {
                    if cipher
                        .open_block_into(i, BlockMark::Middle, buf, &mut out)
                        .is_ok()
                    {
                        scan.end_unmarked = true;
                    } else {
                        scan.bad.push(i);
                    }
                }
                Err(_) => scan.bad.push(i),
            }
        }
        Ok(scan)
    }
}

/// What the blocks of one file turned out to be.
#[derive(Debug, Default)]
struct BlockScan {
    /// Blocks the file has (an empty format-2 file: 1, its end block).
    blocks: u64,
    /// Blocks that do not authenticate.
    bad: Vec<u64>,
    /// All-zero blocks before the last (holes).
    holes: Vec<u64>,
    /// The end mark of the last block: whether it allows holes.
    end: Option<bool>,
    /// The last block opens, but as a middle block: blocks were cut off.
    end_unmarked: bool,
}

/// "1, 5, 9" with at most [`MAX_LISTED_BLOCKS`] entries, then "...".
fn list_blocks(blocks: &[u64]) -> String {
    let mut list: Vec<String> = blocks
        .iter()
        .take(MAX_LISTED_BLOCKS)
        .map(u64::to_string)
        .collect();
    if blocks.len() > MAX_LISTED_BLOCKS {
        list.push("...".into());
    }
    list.join(", ")
}
