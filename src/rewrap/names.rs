//! `kmsfs rekey --names`: a new names key, with every encrypted name, long
//! name side file, symlink target and stored attribute sealed again under
//! it. Design, crash states and resume: `docs/file-format.md`, section
//! "Names rekey".
//!
//! In short: the new names key is generated and recorded (wrapped, inside
//! the config it will make) in `kmsfs.rekey-names` before anything moves;
//! a mount refuses the volume while that file is there. Then every
//! directory, top down, is converted entry by entry with single atomic
//! steps (a symlink's target replaced by rename of a new symlink over it,
//! then the entry renamed from its old-key to its new-key backing name,
//! the new side file of a long name written before and the old one
//! removed after). Every name is under one of the two keys at any time;
//! which one is told by trial: names are authenticated, so a name opens
//! under exactly one of them. A run after a kill walks the whole volume
//! again and converts what is still under the old key. Once a pass ends
//! with nothing left under the old key, the backing filesystem is synced
//! and `kmsfs.conf` is replaced (atomically) by the config with the new
//! wrapped names key; then the state file goes.

use super::Progress;
use super::walk::file_problem;
use crate::format::VolumeConfig;
use crate::fsck::{Kind, Problem};
use crate::fuse::inode::PlainPath;
use crate::fuse::xattr::{XattrCipher, XattrObject, read_file_id};
use crate::keys::{DataKeyBytes, KeyService};
use crate::names::{
    BackingKind, BackingName, DirIv, MAX_INLINE_LINK_LEN, MAX_SIDE_FILE_LEN, NameTransform,
    classify_backing_name, is_long_link_name, long_link_name, side_file_name,
};
use crate::volume::{META_FILE_MODE, Volume, VolumeError, read_dir_iv, read_small_file};
use kms_engine::Principal;
use kms_engine::safe_fs::Dir;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The pending names rekey in the cipher root: the config with the new
/// wrapped names key, recorded before the first name moves and put in
/// place once every name has; a mount refuses the volume while it is there.
pub const NAMES_STATE_NAME: &str = "kmsfs.rekey-names";
const STATE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    /// The new `kmsfs.conf`, as it will be written.
    config: String,
}

/// Whether a names rekey is pending on the volume at `root`.
pub fn pending(root: &Path) -> bool {
    fs::symlink_metadata(root.join(NAMES_STATE_NAME)).is_ok()
}

/// What a names rekey did (or, checking, found).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamesSummary {
    /// Directories walked (the root included).
    pub dirs: u64,
    /// Directory entries (files, directories, symlinks, others).
    pub entries: u64,
    /// Entries renamed to their new-key name by this run.
    pub renamed: u64,
    /// Entries found under the new key already (an interrupted run's; in
    /// a plaintext-names volume no name is encrypted, so none).
    pub current: u64,
    /// Of the entries, long names (side files rewritten).
    pub long_names: u64,
    /// Symlink targets sealed again by this run.
    pub symlinks: u64,
    /// Stored attributes sealed again by this run.
    pub xattrs: u64,
    /// Whether this run finished a pending (interrupted) names rekey.
    pub resumed: bool,
    /// Whether the volume is now under the new names key.
    pub switched: bool,
}

/// The two keys of a names rekey.
struct Keys {
    old: NameTransform,
    new: NameTransform,
    old_x: XattrCipher,
    new_x: XattrCipher,
    encrypted: bool,
}

fn transform(key: &DataKeyBytes, config: &VolumeConfig) -> Result<NameTransform, VolumeError> {
    Ok(NameTransform::new(key, config.names_mode)?.with_long_names(config.features.long_names))
}

fn xattr_cipher(key: &DataKeyBytes) -> std::io::Result<XattrCipher> {
    XattrCipher::new(key).map_err(|e| std::io::Error::other(e.to_string()))
}

fn state_io(root: &Path) -> impl Fn(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: root.join(NAMES_STATE_NAME),
        source,
    }
}

/// The new config of a pending names rekey (`None`: none is pending),
/// checked: only the wrapped names key differs from the volume's config,
/// and it unwraps under the key the volume is bound to. Returns it with
/// the unwrapped new key.
fn read_state(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
) -> Result<Option<(VolumeConfig, DataKeyBytes)>, VolumeError> {
    let root = vol.root.as_path();
    let bytes = match read_small_file(&root.join(NAMES_STATE_NAME), 1 << 20) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_io(root)(e)),
    };
    let st: State = serde_json::from_slice(&bytes)
        .map_err(|e| state_io(root)(std::io::Error::other(format!("unreadable: {e}"))))?;
    if st.version != STATE_VERSION {
        return Err(state_io(root)(std::io::Error::other(format!(
            "unknown version {}",
            st.version
        ))));
    }
    let up = VolumeConfig::decode(st.config.as_bytes())?;
    Ok(Some(checked_new_key(vol, keys, caller, up)?))
}

fn checked_new_key(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
    up: VolumeConfig,
) -> Result<(VolumeConfig, DataKeyBytes), VolumeError> {
    if up.names_key_context() != vol.config.names_key_context() {
        return Err(VolumeError::ConfigMismatch {
            root: vol.root.clone(),
            why: format!("{NAMES_STATE_NAME} records a config for another volume or settings"),
        });
    }
    let key = keys.decrypt_data_key(caller, &up.wrapped_names_key, &up.names_key_context())?;
    vol.check_new_data_key(keys, &up.wrapped_names_key)?;
    Ok((up, key))
}

/// Generates the new names key and records it in [`NAMES_STATE_NAME`]
/// (atomically, synced) before anything is renamed.
fn start(
    vol: &Volume,
    keys: &dyn KeyService,
    caller: &Principal,
) -> Result<(VolumeConfig, DataKeyBytes), VolumeError> {
    let root = vol.root.as_path();
    if !vol.config.is_authenticated() {
        return Err(VolumeError::ConfigMismatch {
            root: root.to_path_buf(),
            why: "a format-1 config cannot get a new names key: run kmsfs upgrade-config first"
                .into(),
        });
    }
    let mut up = vol.config.clone();
    let generated =
        keys.generate_data_key(caller, &vol.config.master_key_id, &up.names_key_context())?;
    up.wrapped_names_key = generated.wrapped;
    let checked = checked_new_key(vol, keys, caller, up)?;
    let st = State {
        version: STATE_VERSION,
        config: String::from_utf8_lossy(&checked.0.encode()?).into_owned(),
    };
    let text = serde_json::to_vec(&st).map_err(|e| state_io(root)(std::io::Error::other(e)))?;
    crate::volume::write_atomic(&root.join(NAMES_STATE_NAME), &text, META_FILE_MODE)
        .map_err(state_io(root))?;
    Ok(checked)
}

/// The names rekey of `vol`: finishes a pending one, or starts one.
/// Without `check_only`, converts every name and, when nothing is left
/// under the old key, switches the volume to the new key. With
/// `check_only`, reads the volume under its current key only and reports
/// what would stop a names rekey (nothing is written). Problems (names,
/// symlink targets or attributes that open under neither key, unreadable
/// directory IVs) are returned; while there are any the key is not
/// switched and the rekey stays pending.
pub fn run(
    vol: &mut Volume,
    keys: &dyn KeyService,
    caller: &Principal,
    check_only: bool,
    progress: &mut dyn FnMut(&Progress),
) -> std::io::Result<(NamesSummary, Vec<Problem>)> {
    let vio = |e: VolumeError| std::io::Error::other(e.to_string());
    let root = vol.root.clone();
    let old_x = xattr_cipher(vol.names_key())?;
    let state = if check_only {
        None
    } else {
        read_state(vol, keys, caller).map_err(vio)?
    };
    let resumed = state.is_some();
    let state = match state {
        Some(s) => s,
        None => {
            // Read everything under the current key first: a volume with
            // names that do not open is refused before anything changes.
            let same = Keys {
                old: transform(vol.names_key(), &vol.config).map_err(vio)?,
                new: transform(vol.names_key(), &vol.config).map_err(vio)?,
                old_x: xattr_cipher(vol.names_key())?,
                new_x: xattr_cipher(vol.names_key())?,
                encrypted: vol.encrypted_names(),
            };
            let mut w = Walker::new(&root, &same, true, progress);
            w.walk()?;
            if check_only || !w.problems.is_empty() {
                return Ok((w.summary, w.problems));
            }
            start(vol, keys, caller).map_err(vio)?
        }
    };
    let (up, new_key) = state;
    if *new_key == **vol.names_key() {
        // Killed after the switch, before the state file went.
        finish(&root)?;
        let summary = NamesSummary {
            resumed,
            switched: true,
            ..NamesSummary::default()
        };
        return Ok((summary, Vec::new()));
    }
    let ks = Keys {
        old: transform(vol.names_key(), &vol.config).map_err(vio)?,
        new: transform(&new_key, &vol.config).map_err(vio)?,
        old_x,
        new_x: xattr_cipher(&new_key)?,
        encrypted: vol.encrypted_names(),
    };
    // A pass that counts, then the pass that converts.
    let total = {
        let mut w = Walker::new(&root, &ks, true, progress);
        w.walk()?;
        w.summary.entries
    };
    let mut w = Walker::new(&root, &ks, false, progress);
    w.progress.files_total = total;
    (w.report)(&w.progress);
    w.walk()?;
    w.progress.files_done = w.progress.files_total.max(w.progress.files_done);
    (w.report)(&w.progress);
    let (mut summary, problems) = (w.summary, w.problems);
    summary.resumed = resumed;
    if problems.is_empty() {
        rustix::fs::syncfs(fs::File::open(&root)?)?;
        vol.switch_names_key(keys, caller, up).map_err(vio)?;
        finish(&root)?;
        summary.switched = true;
    }
    Ok((summary, problems))
}

/// Removes the state file (the new config is in place) and syncs the root.
fn finish(root: &Path) -> std::io::Result<()> {
    match fs::remove_file(root.join(NAMES_STATE_NAME)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::File::open(root)?.sync_all()
}

struct Walker<'a> {
    root: &'a Path,
    keys: &'a Keys,
    check_only: bool,
    summary: NamesSummary,
    problems: Vec<Problem>,
    progress: Progress,
    report: &'a mut dyn FnMut(&Progress),
    last: Instant,
}

/// One decoded entry of a directory.
struct Entry {
    /// Its backing name now.
    name: OsString,
    plain: Vec<u8>,
    /// Under the new key already.
    is_new: bool,
}

impl<'a> Walker<'a> {
    fn new(
        root: &'a Path,
        keys: &'a Keys,
        check_only: bool,
        report: &'a mut dyn FnMut(&Progress),
    ) -> Walker<'a> {
        Walker {
            root,
            keys,
            check_only,
            summary: NamesSummary::default(),
            problems: Vec::new(),
            progress: Progress::default(),
            report,
            last: Instant::now(),
        }
    }

    fn problem(&mut self, path: String, backing: &Path, what: String, kind: Kind) {
        self.problems
            .push(file_problem(self.root, path, backing, what, kind));
    }

    fn walk(&mut self) -> std::io::Result<()> {
        let mut stack = vec![(self.root.to_path_buf(), PlainPath::root())];
        while let Some((dir, plain)) = stack.pop() {
            self.dir(&dir, &plain, &mut stack)?;
        }
        Ok(())
    }

    fn tick(&mut self, n: u64) {
        self.progress.files_done += n;
        if !self.check_only && self.last.elapsed().as_millis() >= 200 {
            self.last = Instant::now();
            (self.report)(&self.progress);
        }
    }

    /// Decodes backing entry `raw` of `dir` under the new key, else the old.
    fn decode(&self, dir: &Path, iv: &DirIv, raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let k = self.keys;
        if !k.encrypted {
            return Ok((raw.to_vec(), true));
        }
        match classify_backing_name(raw) {
            BackingKind::LongName => {
                let side = dir.join(side_file_name(&String::from_utf8_lossy(raw)));
                let s = read_small_file(&side, MAX_SIDE_FILE_LEN)
                    .map_err(|e| format!("long name without a readable side file ({e})"))?;
                if let Ok(n) = k.new.decode_long_name(iv, raw, &s) {
                    return Ok((n, true));
                }
                k.old
                    .decode_long_name(iv, raw, &s)
                    .map(|n| (n, false))
                    .map_err(|e| format!("long name does not decrypt: {e}"))
            }
            _ => {
                if let Ok(n) = k.new.decode_name(iv, raw) {
                    return Ok((n, true));
                }
                k.old
                    .decode_name(iv, raw)
                    .map(|n| (n, false))
                    .map_err(|e| format!("name does not decrypt: {e}"))
            }
        }
    }

    fn dir(
        &mut self,
        dir: &Path,
        plain: &PlainPath,
        stack: &mut Vec<(PathBuf, PlainPath)>,
    ) -> std::io::Result<()> {
        self.summary.dirs += 1;
        let iv = if self.keys.encrypted {
            match read_dir_iv(dir) {
                Ok(iv) => DirIv(iv),
                Err(e) => {
                    let what = format!("directory IV kmsfs.diriv unreadable ({e})");
                    self.problem(plain.display(), dir, what, Kind::DirIv);
                    return Ok(());
                }
            }
        } else {
            DirIv([0; 16])
        };
        let d = Dir::open(dir)?;
        let times = fs::symlink_metadata(dir)?;
        if !self.check_only {
            d.remove_temps()?;
        }
        self.xattrs(plain.display(), dir, &XattrObject::Dir(iv.0));
        let mut names: Vec<OsString> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        let mut entries = Vec::new();
        for name in names {
            let raw = name.as_bytes();
            if !self.keys.encrypted && crate::names::is_reserved(raw) {
                continue;
            }
            match classify_backing_name(raw) {
                BackingKind::Reserved | BackingKind::LongNameSide => continue,
                BackingKind::LongName if !self.keys.encrypted => continue,
                _ => {}
            }
            match self.decode(dir, &iv, raw) {
                Ok((plain, is_new)) => entries.push(Entry {
                    name,
                    plain,
                    is_new,
                }),
                Err(what) => {
                    let backing = dir.join(&name);
                    let shown = super::walk::backing_display(self.root, &backing);
                    self.problem(shown, &backing, what, Kind::Name);
                }
            }
        }
        let mut changed = false;
        for e in entries {
            changed |= self.entry(&d, dir, &iv, plain, e, stack)?;
            self.tick(1);
        }
        if self.keys.encrypted && !self.check_only {
            self.remove_unused_long_links(&d, dir, &iv)?;
        }
        if changed {
            d.sync()?;
            // Renames in the directory changed its times; put them back.
            set_times(dir, &times, false);
        }
        Ok(())
    }

    /// Converts one entry; whether anything in `dir` changed.
    fn entry(
        &mut self,
        d: &Dir,
        dir: &Path,
        iv: &DirIv,
        parent: &PlainPath,
        e: Entry,
        stack: &mut Vec<(PathBuf, PlainPath)>,
    ) -> std::io::Result<bool> {
        self.summary.entries += 1;
        let child = parent.child(OsStr::from_bytes(&e.plain));
        let shown = child.display();
        let mut backing = dir.join(&e.name);
        let meta = fs::symlink_metadata(&backing)?;
        let mut changed = false;
        if self.keys.encrypted {
            let k = self.keys;
            let name_err = |e: crate::names::NameError| std::io::Error::other(e.to_string());
            let new_bn = k.new.encode_name(iv, &e.plain).map_err(name_err)?;
            let old_bn = k.old.encode_name(iv, &e.plain).map_err(name_err)?;
            if new_bn.is_long() {
                self.summary.long_names += 1;
            }
            if meta.file_type().is_symlink() {
                match self.symlink(d, dir, iv, &e.name, &meta) {
                    Ok(c) => changed |= c,
                    Err(what) => {
                        self.problem(shown, &backing, what, Kind::Symlink);
                        return Ok(changed);
                    }
                }
            }
            if e.is_new {
                self.summary.current += 1;
            } else {
                self.summary.renamed += 1;
                if !self.check_only {
                    if let BackingName::Long {
                        side_file, encoded, ..
                    } = &new_bn
                    {
                        d.write_atomic(OsStr::new(side_file), encoded.as_bytes(), META_FILE_MODE)?;
                    }
                    let to = OsStr::from_bytes(new_bn.name());
                    if let Err(err) = d.rename(&e.name, d, to, true) {
                        let what = format!(
                            "cannot rename to its new-key name {}: {err}",
                            String::from_utf8_lossy(new_bn.name())
                        );
                        self.problem(shown, &backing, what, Kind::Name);
                        return Ok(changed);
                    }
                    changed = true;
                    backing = dir.join(to);
                }
            }
            if !self.check_only
                && let BackingName::Long { side_file, .. } = &old_bn
            {
                match d.remove(OsStr::new(side_file)) {
                    Ok(()) => changed = true,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
        if meta.is_dir() {
            stack.push((backing, child));
        } else if meta.is_file() {
            self.file_xattrs(shown, &backing);
        }
        Ok(changed)
    }

    /// The attributes of regular file `backing` (only when it has kmsfs
    /// attributes is its header read).
    fn file_xattrs(&mut self, shown: String, backing: &Path) {
        let mut buf = vec![0u8; 64 * 1024];
        let Ok(n) = rustix::fs::llistxattr(backing, &mut buf[..]) else {
            return self.xattrs(shown, backing, &XattrObject::File([0; 16]));
        };
        let ours = buf[..n]
            .split(|b| *b == 0)
            .any(|a| a.starts_with(b"user.kmsfs."));
        if !ours {
            return;
        }
        match read_file_id(backing, &shown) {
            Ok(id) => self.xattrs(shown, backing, &XattrObject::File(id)),
            Err(e) => {
                let what = format!("has attributes but no readable file id: {e}");
                self.problem(shown, backing, what, Kind::Xattr);
            }
        }
    }

    fn xattrs(&mut self, shown: String, backing: &Path, obj: &XattrObject) {
        let k = self.keys;
        match k.new_x.rekey_all(&k.old_x, backing, obj, self.check_only) {
            Ok(r) => {
                self.summary.xattrs += r.moved as u64;
                for b in r.bad {
                    let what = format!("xattr {}: {}", b.name, b.what);
                    self.problem(shown.clone(), backing, what, Kind::Xattr);
                    if let Some(p) = self.problems.last_mut() {
                        p.xattr = Some(b.stored);
                    }
                }
            }
            Err(e) => {
                let what = format!("cannot move the attributes: {e}");
                self.problem(shown, backing, what, Kind::Io);
            }
        }
    }

    /// Seals the target of symlink `name` in `dir` under the new key when
    /// it is under the old one: a new symlink (owner and times of the old)
    /// renamed over it, a long target's file written first. Whether it
    /// changed; `Err`: the target opens under neither key.
    fn symlink(
        &mut self,
        d: &Dir,
        dir: &Path,
        iv: &DirIv,
        name: &OsStr,
        meta: &fs::Metadata,
    ) -> Result<bool, String> {
        let k = self.keys;
        let path = dir.join(name);
        let stored = fs::read_link(&path)
            .map_err(|e| format!("cannot read the link: {e}"))?
            .into_os_string()
            .into_vec();
        let encoded = crate::volume::stored_link_target(dir, stored)
            .map_err(|e| format!("long-link target file unreadable or damaged ({e})"))?;
        if k.new.decrypt_symlink(iv, &encoded).is_ok() {
            return Ok(false);
        }
        let target = zeroize::Zeroizing::new(
            k.old
                .decrypt_symlink(iv, &encoded)
                .map_err(|e| format!("symlink target does not decrypt: {e}"))?,
        );
        self.summary.symlinks += 1;
        if self.check_only {
            return Ok(false);
        }
        let io = |e: std::io::Error| format!("cannot write the new link: {e}");
        let enc = k
            .new
            .encrypt_symlink(iv, &target)
            .map_err(|e| e.to_string())?;
        let link = if enc.len() <= MAX_INLINE_LINK_LEN {
            OsString::from(enc)
        } else {
            let n = long_link_name(&enc);
            d.write_atomic(OsStr::new(&n), enc.as_bytes(), META_FILE_MODE)
                .map_err(io)?;
            OsString::from(n)
        };
        let tmp = d.symlink_temp(&link).map_err(io)?;
        let tmp_path = dir.join(&tmp);
        // As root the owner is kept; otherwise the links are this user's.
        let _ = rustix::fs::chownat(
            rustix::fs::CWD,
            &tmp_path,
            Some(rustix::fs::Uid::from_raw(meta.uid())),
            Some(rustix::fs::Gid::from_raw(meta.gid())),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
        set_times(&tmp_path, meta, true);
        if let Err(e) = d.rename(&tmp, d, name, false) {
            let _ = d.remove(&tmp);
            return Err(io(e));
        }
        Ok(true)
    }

    /// Removes the long-link target files of `dir` no symlink there names
    /// any more whose contents open under the old or the new key: the old
    /// targets of converted symlinks, and new ones an interrupted run wrote
    /// for a symlink it did not get to replace.
    fn remove_unused_long_links(&mut self, d: &Dir, dir: &Path, iv: &DirIv) -> std::io::Result<()> {
        let mut files = Vec::new();
        let mut used = HashSet::new();
        for e in fs::read_dir(dir)?.filter_map(Result::ok) {
            let name = e.file_name();
            if is_long_link_name(name.as_bytes()) {
                files.push(name);
            } else if e.file_type().is_ok_and(|t| t.is_symlink())
                && let Ok(t) = fs::read_link(e.path())
            {
                used.insert(t.into_os_string());
            }
        }
        for f in files {
            if used.contains(&f) {
                continue;
            }
            let Ok(enc) = read_small_file(&dir.join(&f), crate::names::MAX_LONG_LINK_FILE_LEN)
            else {
                continue;
            };
            let k = self.keys;
            let ours =
                k.old.decrypt_symlink(iv, &enc).is_ok() || k.new.decrypt_symlink(iv, &enc).is_ok();
            if ours {
                d.remove(&f)?;
            }
        }
        Ok(())
    }
}

/// Puts back the access and modification times of `meta` on `path`
/// (best effort: a failure leaves the times of the conversion).
fn set_times(path: &Path, meta: &fs::Metadata, nofollow: bool) {
    use rustix::fs::AtFlags;
    let flags = if nofollow {
        AtFlags::SYMLINK_NOFOLLOW
    } else {
        AtFlags::empty()
    };
    let _ = rustix::fs::utimensat(rustix::fs::CWD, path, &crate::volume::times_of(meta), flags);
}
