//! Lists the regular files of a volume with their plaintext paths (the
//! names decrypted as a mount would), for the volume-wide key jobs.

use crate::fsck::{Kind, Problem};
use crate::fuse::inode::PlainPath;
use crate::names::{BackingKind, DirIv, MAX_SIDE_FILE_LEN, classify_backing_name, side_file_name};
use crate::volume::{Volume, read_dir_iv, read_small_file};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One regular file of a volume.
#[derive(Debug, Clone)]
pub struct VolumeFile {
    /// Its backing path.
    pub backing: PathBuf,
    /// Its plaintext path (the `kmsfs:path` of its data key).
    pub plain: PlainPath,
    /// The backing file's size when listed.
    pub cipher_size: u64,
}

/// What [`walk`] found.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<VolumeFile>,
    /// Entries whose name (or a parent's) does not decrypt, unreadable
    /// directories: reported, and left alone by the jobs.
    pub problems: Vec<Problem>,
}

/// The path to show for a backing path: `cipherdir:/rel`.
pub(crate) fn backing_display(root: &Path, backing: &Path) -> String {
    let r = backing.strip_prefix(root).unwrap_or(backing);
    format!("cipherdir:/{}", r.display())
}

/// Lists every regular file of `vol` whose plaintext path is `prefix` or
/// lies below it (`None`: every file), in backing-directory order.
pub fn walk(vol: &Volume, prefix: Option<&PlainPath>) -> Listing {
    let mut out = Listing::default();
    let mut stack = vec![(vol.root.clone(), PlainPath::root())];
    while let Some((dir, plain)) = stack.pop() {
        walk_dir(vol, &dir, &plain, prefix, &mut stack, &mut out);
    }
    out
}

fn problem(out: &mut Listing, root: &Path, path: String, backing: &Path, what: String) {
    out.problems
        .push(file_problem(root, path, backing, what, Kind::Name));
}

/// A problem about `backing` (plaintext path `path`).
pub(crate) fn file_problem(
    root: &Path,
    path: String,
    backing: &Path,
    what: String,
    kind: Kind,
) -> Problem {
    Problem {
        path,
        backing: backing_display(root, backing),
        what,
        kind,
        backing_path: backing.to_path_buf(),
        xattr: None,
    }
}

/// Whether anything below directory `dir` can be within `prefix`.
fn may_hold(dir: &PlainPath, prefix: Option<&PlainPath>) -> bool {
    prefix.is_none_or(|p| dir.is_within(p) || p.is_within(dir))
}

fn walk_dir(
    vol: &Volume,
    dir: &Path,
    plain: &PlainPath,
    prefix: Option<&PlainPath>,
    stack: &mut Vec<(PathBuf, PlainPath)>,
    out: &mut Listing,
) {
    let root = vol.root.as_path();
    let iv = if vol.encrypted_names() {
        match read_dir_iv(dir) {
            Ok(iv) => DirIv(iv),
            Err(e) => {
                let what = format!("directory IV kmsfs.diriv unreadable ({e}): skipped");
                problem(out, root, plain.display(), dir, what);
                return;
            }
        }
    } else {
        DirIv([0; 16])
    };
    let mut names: Vec<_> = match crate::volume::list_dir_quietly(dir) {
        Ok(entries) => entries.into_iter().map(|(name, _)| name).collect(),
        Err(e) => {
            let what = format!("cannot list the directory: {e}");
            problem(out, root, plain.display(), dir, what);
            return;
        }
    };
    names.sort();
    for name in names {
        let raw = name.as_bytes();
        let backing = dir.join(&name);
        let decoded = match classify_backing_name(raw) {
            BackingKind::Reserved | BackingKind::LongNameSide => continue,
            BackingKind::LongName => {
                let side = dir.join(side_file_name(&String::from_utf8_lossy(raw)));
                read_small_file(&side, MAX_SIDE_FILE_LEN)
                    .map_err(|e| format!("long name without a readable side file ({e})"))
                    .and_then(|s| {
                        vol.names
                            .decode_long_name(&iv, raw, &s)
                            .map_err(|e| format!("long name does not decrypt: {e}"))
                    })
            }
            BackingKind::Regular => vol
                .names
                .decode_name(&iv, raw)
                .map_err(|e| format!("name does not decrypt: {e}")),
        };
        let child = match decoded {
            Ok(n) => plain.child(OsStr::from_bytes(&n)),
            Err(what) => {
                let shown = backing_display(root, &backing);
                problem(out, root, shown, &backing, format!("{what}: skipped"));
                continue;
            }
        };
        let meta = match fs::symlink_metadata(&backing) {
            Ok(m) => m,
            Err(e) => {
                problem(
                    out,
                    root,
                    child.display(),
                    &backing,
                    format!("cannot stat: {e}"),
                );
                continue;
            }
        };
        if meta.is_dir() {
            if may_hold(&child, prefix) {
                stack.push((backing, child));
            }
        } else if meta.is_file() && prefix.is_none_or(|p| child.is_within(p)) {
            out.files.push(VolumeFile {
                backing,
                plain: child,
                cipher_size: meta.len(),
            });
        }
    }
}
