//! `kmsfs fsck --repair`: puts an unmounted volume back into a state the
//! filesystem and `fsck` accept, without ever deleting or rewriting data.
//!
//! - A pending rename journal is recovered exactly as a mount recovers it
//!   (rolled forward where the backing rename happened, back where not).
//! - A missing or damaged `kmsfs.diriv` is restored from a copy left in the
//!   directory (any 16-byte file there that decrypts a name of it, e.g. one
//!   a sync tool renamed); with no such copy a fresh IV is written, and the
//!   names encrypted under the lost one are quarantined in the next pass.
//! - A long name without its side file gets it back from a copy in the
//!   directory whose content hashes to the long name (and decrypts).
//! - Everything else that does not decrypt or authenticate (names, symlink
//!   targets, file headers, data keys, blocks, sizes, stored attributes) and
//!   every stray file is moved, unchanged, into the quarantine directory
//!   `CIPHERDIR/kmsfs.quarantine/repair-<time>/`, with `report.json` and
//!   `report.txt` naming each item's original place and what was wrong.
//!
//! Nothing is decrypted into the quarantine and no damaged byte is ever
//! made to authenticate: a quarantined file is the damaged backing file
//! itself, and moving it back gives the same error as before. Problems that
//! are not damage (a data key the key service refuses, an I/O error) are
//! left alone and reported.

use crate::fsck::{self, Kind, Problem, QUARANTINE_DIR_NAME, Report};
use crate::keys::KeyService;
use crate::names::{
    BackingKind, DIRIV_FILE_NAME, DIRIV_LEN, DirIv, LONG_NAME_SUFFIX, MAX_SIDE_FILE_LEN,
    classify_backing_name, is_long_link_name, long_backing_name, side_file_name,
};
use crate::volume::{
    DIRIV_FILE_MODE, JOURNAL_FILE_NAME, META_FILE_MODE, Volume, create_dir_iv, read_small_file,
    write_atomic,
};
use kms_engine::Principal;
use serde::Serialize;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How many check-and-repair passes at most (a fresh IV exposes names in a
/// second pass; nothing needs more than three).
const MAX_PASSES: usize = 5;

/// One thing repair did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Action {
    /// The plaintext path, or `cipherdir:/...` (as in fsck's report).
    pub path: String,
    /// The backing path, relative to the cipher directory.
    pub backing: String,
    /// The problem, as fsck reported it.
    pub problem: String,
    pub kind: Kind,
    /// What was done.
    pub done: String,
    /// Where the item now is, relative to the cipher directory, when it was
    /// quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined_as: Option<String>,
}

/// The outcome of a repair.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// Problems the first check found (a pending journal counts as one).
    pub problems_found: usize,
    pub actions: Vec<Action>,
    /// The quarantine directory of this run, relative to the cipher
    /// directory, when anything was moved there.
    pub quarantine: Option<String>,
    /// The check after repair: its problems are what repair left (key
    /// service refusals, I/O errors, anything it could not move).
    pub after: Report,
}

/// Repairs the unmounted volume `vol` (see the module docs), unwrapping
/// data keys as `caller`; `progress` sees each check pass's report grow.
pub fn repair(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
    progress: &mut dyn FnMut(&Report),
) -> std::io::Result<RepairReport> {
    let mut r = Repairer {
        root: vol.root.clone(),
        vol,
        quarantine: None,
        items: 0,
        actions: Vec::new(),
        moved: BTreeSet::new(),
        changed: false,
    };
    for job in [
        crate::rewrap::journal::REWRAP_JOURNAL_NAME,
        crate::rewrap::MIGRATE_STATE_NAME,
        crate::rewrap::names::NAMES_STATE_NAME,
    ] {
        if fs::symlink_metadata(vol.root.join(job)).is_ok() {
            // Headers a rewrap or migration left torn (or moved to the new
            // service) are finished by running it again, not quarantined.
            return Err(std::io::Error::other(format!(
                "an interrupted kmsfs rewrap, migrate or rekey --names is pending ({job}): run \
                 it again to finish it before repairing"
            )));
        }
    }
    let mut problems_found = 0;
    if fs::symlink_metadata(vol.root.join(JOURNAL_FILE_NAME)).is_ok() {
        problems_found += 1;
        let done = match crate::fuse::rename::recover_journal(vol) {
            Ok(()) => "recovered as a mount does: headers of the files the interrupted rename \
                       had moved rewritten for their new paths, the others untouched; journal \
                       removed"
                .to_string(),
            Err(e) => format!("not recovered: {e}"),
        };
        r.actions.push(Action {
            path: "/".into(),
            backing: format!("cipherdir:/{JOURNAL_FILE_NAME}"),
            problem: "an interrupted rename is pending".into(),
            kind: Kind::Journal,
            done,
            quarantined_as: None,
        });
    }
    let mut first = true;
    for _ in 0..MAX_PASSES {
        let report = fsck::check_with_progress(vol, keys, caller, Some(&mut *progress))?;
        if first {
            problems_found += report.problems.len();
            first = false;
        }
        if !r.pass(report.problems)? {
            break;
        }
    }
    let after = fsck::check_with_progress(vol, keys, caller, Some(&mut *progress))?;
    let quarantine = r.quarantine.as_ref().map(|q| r.rel(q));
    let report = RepairReport {
        problems_found,
        actions: r.actions,
        quarantine,
        after,
    };
    if let Some(q) = &r.quarantine {
        write_reports(q, &report)?;
    }
    Ok(report)
}

struct Repairer<'a> {
    root: PathBuf,
    vol: &'a Volume,
    /// This run's quarantine directory, made at the first item.
    quarantine: Option<PathBuf>,
    items: u32,
    actions: Vec<Action>,
    /// Backing paths moved away in this pass: problems below them are gone.
    moved: BTreeSet<PathBuf>,
    /// Whether this pass changed the cipher directory (else repair stops:
    /// what failed once fails again).
    changed: bool,
}

impl Repairer<'_> {
    fn rel(&self, p: &Path) -> String {
        let r = p.strip_prefix(&self.root).unwrap_or(p);
        format!("cipherdir:/{}", r.display())
    }

    /// Acts on one check's problems; returns whether anything changed
    /// (then the volume is checked again).
    fn pass(&mut self, mut problems: Vec<Problem>) -> std::io::Result<bool> {
        self.moved.clear();
        self.changed = false;
        // A new or restored IV changes what the names of its directory
        // decrypt to: fix IVs alone, then look again.
        if problems.iter().any(|p| p.kind == Kind::DirIv) {
            for p in problems.iter().filter(|p| p.kind == Kind::DirIv) {
                self.dir_iv(p)?;
            }
            return Ok(self.changed);
        }
        problems.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then_with(|| a.backing_path.cmp(&b.backing_path))
        });
        for p in &problems {
            if self.is_gone(&p.backing_path) {
                continue;
            }
            match p.kind {
                Kind::LongNameSide => self.long_name_side(p)?,
                Kind::Name | Kind::Stray | Kind::Symlink | Kind::Content => {
                    self.quarantine_entry(p, "")?
                }
                Kind::Xattr => self.xattr(p)?,
                Kind::Journal | Kind::DirIv | Kind::KeyAccess | Kind::Io => {}
            }
        }
        Ok(self.changed)
    }

    /// Whether `p` was moved in this pass (itself or an ancestor), or is
    /// gone from the cipher directory.
    fn is_gone(&self, p: &Path) -> bool {
        self.moved.iter().any(|m| p.starts_with(m)) || fs::symlink_metadata(p).is_err()
    }

    fn action(&mut self, p: &Problem, done: String, quarantined_as: Option<String>) {
        self.actions.push(Action {
            path: p.path.clone(),
            backing: p.backing.clone(),
            problem: p.what.clone(),
            kind: p.kind,
            done,
            quarantined_as,
        });
    }

    /// This run's quarantine directory, made on first use (0700, in the
    /// cipher root, never shown by a mount).
    fn quarantine_dir(&mut self) -> std::io::Result<PathBuf> {
        if let Some(q) = &self.quarantine {
            return Ok(q.clone());
        }
        let top = self.root.join(QUARANTINE_DIR_NAME);
        match fs::create_dir(&top) {
            Ok(()) => fs::set_permissions(&top, fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut n = 0u32;
        let q = loop {
            let name = if n == 0 {
                format!("repair-{secs}")
            } else {
                format!("repair-{secs}-{n}")
            };
            let q = top.join(name);
            match fs::create_dir(&q) {
                Ok(()) => break q,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        };
        fs::set_permissions(&q, fs::Permissions::from_mode(0o700))?;
        fs::File::open(&top)?.sync_all()?;
        self.quarantine = Some(q.clone());
        Ok(q)
    }

    /// Moves `path` (a file, directory or symlink) into the quarantine as
    /// item NNNN (plus `suffix`); returns its new path. A rename: never a
    /// copy, so nothing is lost even when it fails half-way.
    fn move_to_quarantine(&mut self, path: &Path, suffix: &str) -> std::io::Result<PathBuf> {
        let q = self.quarantine_dir()?;
        self.items += 1;
        let to = q.join(format!("{:04}{suffix}", self.items));
        fs::rename(path, &to)?;
        self.changed = true;
        self.moved.insert(path.to_path_buf());
        if let Some(parent) = path.parent() {
            fs::File::open(parent)?.sync_all()?;
        }
        fs::File::open(&q)?.sync_all()?;
        Ok(to)
    }

    /// Quarantines the entry of problem `p` with its long-name side file
    /// and its long-link target file.
    fn quarantine_entry(&mut self, p: &Problem, why: &str) -> std::io::Result<()> {
        let path = p.backing_path.clone();
        let companions = companions(&path);
        let done = match self.move_to_quarantine(&path, "") {
            Ok(to) => {
                let mut extra = Vec::new();
                for (c, suffix) in companions {
                    if fs::symlink_metadata(&c).is_ok() {
                        match self.move_to_quarantine(&c, "") {
                            Ok(cto) => extra.push(format!("{} as {}", suffix, self.rel(&cto))),
                            Err(e) => extra.push(format!("{suffix} not moved: {e}")),
                        }
                    }
                }
                let mut done = format!("quarantined{why}");
                if !extra.is_empty() {
                    done.push_str(&format!(" (with its {})", extra.join(", ")));
                }
                let rel = self.rel(&to);
                self.action(p, done, Some(rel));
                return Ok(());
            }
            Err(e) => format!("not moved: {e}"),
        };
        self.action(p, done, None);
        Ok(())
    }

    /// A missing or damaged directory IV: restored from a copy in the
    /// directory, else recreated.
    fn dir_iv(&mut self, p: &Problem) -> std::io::Result<()> {
        let dir = p.backing_path.clone();
        let iv_path = dir.join(DIRIV_FILE_NAME);
        let entries = list(&dir)?;
        let copy = entries.iter().find_map(|name| {
            if name.as_bytes() == DIRIV_FILE_NAME.as_bytes() {
                return None;
            }
            let bytes = read_small_file(&dir.join(name), DIRIV_LEN).ok()?;
            let iv = DirIv(<[u8; DIRIV_LEN]>::try_from(bytes.as_slice()).ok()?);
            let n = names_decrypting(self.vol, &dir, &entries, &iv);
            (n > 0).then(|| (name.clone(), n))
        });
        let mut done = Vec::new();
        if fs::symlink_metadata(&iv_path).is_ok() {
            let to = self.move_to_quarantine(&iv_path, ".diriv")?;
            done.push(format!(
                "damaged kmsfs.diriv quarantined as {}",
                self.rel(&to)
            ));
        }
        match copy {
            Some((name, n)) => {
                fs::rename(dir.join(&name), &iv_path)?;
                fs::set_permissions(&iv_path, fs::Permissions::from_mode(DIRIV_FILE_MODE))?;
                fs::File::open(&dir)?.sync_all()?;
                done.push(format!(
                    "restored from {}, which decrypts {n} names here",
                    name.to_string_lossy()
                ));
            }
            None => {
                create_dir_iv(&dir)?;
                let names = entries
                    .iter()
                    .filter(|n| classify_backing_name(n.as_bytes()) != BackingKind::Reserved)
                    .filter(|n| classify_backing_name(n.as_bytes()) != BackingKind::LongNameSide)
                    .count();
                done.push(if names == 0 {
                    "recreated (the directory holds no names, so nothing is lost)".to_string()
                } else {
                    format!(
                        "recreated; no copy of the old IV was found, so the {names} names \
                         encrypted under it cannot be decrypted and are quarantined"
                    )
                });
            }
        }
        self.changed = true;
        self.action(p, done.join("; "), None);
        Ok(())
    }

    /// A long name without a readable side file: the side file restored
    /// from a copy in the directory, else the entry quarantined.
    fn long_name_side(&mut self, p: &Problem) -> std::io::Result<()> {
        let entry = p.backing_path.clone();
        let (Some(dir), Some(name)) = (entry.parent(), entry.file_name()) else {
            return Ok(());
        };
        let name = name.to_string_lossy().into_owned();
        let side = dir.join(side_file_name(&name));
        let iv = crate::volume::read_dir_iv(dir).ok().map(DirIv);
        let copy = list(dir)?.into_iter().find(|c| {
            let path = dir.join(c);
            if path == entry || path == side {
                return false;
            }
            let Ok(bytes) = read_small_file(&path, MAX_SIDE_FILE_LEN) else {
                return false;
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return false;
            };
            long_backing_name(text) == name
                && iv.is_some_and(|iv| {
                    self.vol
                        .names
                        .decode_long_name(&iv, name.as_bytes(), &bytes)
                        .is_ok()
                })
        });
        let Some(copy) = copy else {
            return self.quarantine_entry(p, ": its side file is lost, so its name is unknown");
        };
        let mut done = Vec::new();
        if fs::symlink_metadata(&side).is_ok() {
            let to = self.move_to_quarantine(&side, LONG_NAME_SUFFIX)?;
            done.push(format!(
                "unreadable side file quarantined as {}",
                self.rel(&to)
            ));
        }
        fs::rename(dir.join(&copy), &side)?;
        fs::set_permissions(&side, fs::Permissions::from_mode(META_FILE_MODE))?;
        fs::File::open(dir)?.sync_all()?;
        done.push(format!(
            "side file restored from {}, whose content is this long name",
            copy.to_string_lossy()
        ));
        self.changed = true;
        self.action(p, done.join("; "), None);
        Ok(())
    }

    /// A stored attribute that does not authenticate: its value saved in
    /// the quarantine, then removed from the backing object. An access ACL
    /// (or an attribute whose name is unreadable, which may be one) leaves
    /// the mode deciding alone, and the mode's group bits would then grant
    /// what the ACL's mask limited: the group and other bits are cleared.
    fn xattr(&mut self, p: &Problem) -> std::io::Result<()> {
        let Some(stored) = p.xattr.clone() else {
            return Ok(());
        };
        let path = p.backing_path.clone();
        let value = match read_xattr(&path, &stored) {
            Ok(v) => v,
            Err(e) => {
                self.action(p, format!("not moved: cannot read it: {e}"), None);
                return Ok(());
            }
        };
        let q = self.quarantine_dir()?;
        self.items += 1;
        let to = q.join(format!("{:04}.xattr", self.items));
        write_atomic(&to, &value, META_FILE_MODE)?;
        rustix::fs::lremovexattr(&path, stored.as_str()).map_err(std::io::Error::from)?;
        self.changed = true;
        let acl_like =
            p.what.starts_with("xattr system.posix_acl_access:") || p.what.contains(&stored);
        let mut done = format!("value (attribute {stored}) saved and removed from the file");
        let meta = fs::symlink_metadata(&path)?;
        if acl_like && !meta.file_type().is_symlink() {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & !0o077))?;
                done.push_str(&format!(
                    "; it was (or may have been) an access ACL: mode {:o} -> {:o}, so the \
                     loss of the ACL grants nobody more access; set it again through the mount",
                    mode,
                    mode & !0o077
                ));
            }
        }
        let rel = self.rel(&to);
        self.action(p, done, Some(rel));
        Ok(())
    }
}

/// The files that belong to backing entry `path`: a long name's side file,
/// a symlink's long-link target file.
fn companions(path: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return out;
    };
    if classify_backing_name(name.as_bytes()) == BackingKind::LongName {
        out.push((
            dir.join(side_file_name(&name.to_string_lossy())),
            "side file",
        ));
    }
    if let Ok(target) = fs::read_link(path)
        && is_long_link_name(target.as_os_str().as_bytes())
    {
        out.push((dir.join(target), "long-link target file"));
    }
    out
}

/// The names in `dir`, sorted.
fn list(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut v: Vec<OsString> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    v.sort();
    Ok(v)
}

/// How many of `entries` (names in `dir`) decrypt under `iv`.
fn names_decrypting(vol: &Volume, dir: &Path, entries: &[OsString], iv: &DirIv) -> usize {
    entries
        .iter()
        .filter(|n| {
            let raw = n.as_bytes();
            match classify_backing_name(raw) {
                BackingKind::Regular => vol.names.decode_name(iv, raw).is_ok(),
                BackingKind::LongName => {
                    let side = dir.join(side_file_name(&n.to_string_lossy()));
                    read_small_file(&side, MAX_SIDE_FILE_LEN)
                        .is_ok_and(|s| vol.names.decode_long_name(iv, raw, &s).is_ok())
                }
                _ => false,
            }
        })
        .count()
}

fn read_xattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).map_err(std::io::Error::from)?;
    buf.truncate(n);
    Ok(buf)
}

/// `report.json` and `report.txt` in the quarantine directory `q`.
fn write_reports(q: &Path, report: &RepairReport) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    write_atomic(&q.join("report.json"), &json, META_FILE_MODE)?;
    write_atomic(
        &q.join("report.txt"),
        report_text(report).as_bytes(),
        META_FILE_MODE,
    )
}

/// The report for people: one line per action, then what is left.
pub fn report_text(report: &RepairReport) -> String {
    let mut s = String::new();
    for a in &report.actions {
        s.push_str(&format!("{}: {}\n    {}", a.path, a.problem, a.done));
        if let Some(q) = &a.quarantined_as {
            s.push_str(&format!(" -> {q}"));
        }
        s.push_str(&format!(" (was {})\n", a.backing));
    }
    for p in &report.after.problems {
        s.push_str(&format!("{}: {} (not repaired)\n", p.path, p.what));
    }
    s.push_str(&format!(
        "{} problems found, {} repair actions, {} problems left",
        report.problems_found,
        report.actions.len(),
        report.after.problems.len()
    ));
    if let Some(q) = &report.quarantine {
        s.push_str(&format!("; quarantine: {q}"));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companions_of_a_long_name() {
        let dir = tempfile::tempdir().unwrap();
        let long = long_backing_name(&"A".repeat(200));
        let c = companions(&dir.path().join(&long));
        assert_eq!(
            c,
            vec![(dir.path().join(side_file_name(&long)), "side file")]
        );
        assert!(companions(&dir.path().join("plain")).is_empty());
    }
}
