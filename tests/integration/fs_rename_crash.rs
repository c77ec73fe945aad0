//! A directory rename interrupted by a crash, on the real `kmsfs` binary:
//! the mount process is started with the debug-build crash point
//! `KMSFS_FAULT_RENAME` (see `kmsfs::fuse::fault`), aborts part-way through
//! a rename, and the next mount completes (or drops) the rename journal.
//!
//! - crash after the backing rename and N of the header rewrites: rolled
//!   forward; every file reads back at its new path, the old path is gone;
//! - crash after the journal was written but before the backing rename:
//!   rolled back; every file reads back at its old path, the new path does
//!   not exist.
//!
//! In both cases the journal is removed at the next mount.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Fixture, force_unmount, is_mounted, kmsfs_bin};
use kmsfs::format::NamesMode;
use kmsfs::fuse::fault::FAULT_ENV;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const JOURNAL: &str = "kmsfs.journal";

/// Builds the `kmsfs` binary (a no-op when it is up to date) so that the
/// crash point below is surely compiled in.
fn fresh_kmsfs_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", "mount-tool"])
        .status()
        .unwrap();
    assert!(st.success(), "building the kmsfs binary failed");
    kmsfs_bin()
}

/// `kmsfs mount --foreground` with the crash point `fault`; killed and
/// unmounted on drop.
struct FaultyMount {
    child: Child,
    mnt: PathBuf,
}

impl FaultyMount {
    fn start(fx: &Fixture, fault: &str) -> FaultyMount {
        let child = Command::new(fresh_kmsfs_bin())
            .env(FAULT_ENV, fault)
            .args(fx.engine_args())
            .arg("mount")
            .arg("--foreground")
            .arg(&fx.cipher)
            .arg(&fx.mnt)
            .spawn()
            .unwrap();
        let mut fm = FaultyMount {
            child,
            mnt: fs::canonicalize(&fx.mnt).unwrap(),
        };
        let start = Instant::now();
        while !is_mounted(&fm.mnt) {
            if let Ok(Some(st)) = fm.child.try_wait() {
                panic!("kmsfs mount exited early: {st}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fm
    }

    /// Waits for the mount process to die of SIGABRT, then clears the dead mount.
    fn expect_crash(&mut self) {
        let start = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the crash point was not reached"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            st.signal(),
            Some(libc::SIGABRT),
            "mount process should abort at the crash point, got {st}"
        );
        force_unmount(&self.mnt);
    }
}

impl Drop for FaultyMount {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        force_unmount(&self.mnt);
    }
}

/// The files of the test tree, relative to the renamed directory, and their
/// contents (several sizes, one name long enough for a side file).
fn tree() -> Vec<(String, Vec<u8>)> {
    let long = "l".repeat(200);
    [
        "a".to_string(),
        "mid/b".to_string(),
        "mid/deep/c".to_string(),
        "mid/deep/d".to_string(),
        format!("mid/{long}"),
        "empty".to_string(),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, p)| {
        let len = [5000usize, 1, 4096, 70_000, 300, 0][i];
        let data = (0..len)
            .map(|k| (k as u32).wrapping_mul(7).wrapping_add(i as u32) as u8)
            .collect();
        (p, data)
    })
    .collect()
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("top/mid/deep")).unwrap();
    for (p, data) in tree() {
        fs::write(root.join("top").join(&p), &data).unwrap();
    }
    std::os::unix::fs::symlink("../a", root.join("top/mid/link")).unwrap();
    fs::create_dir(root.join("other")).unwrap();
}

/// Checks that the tree reads back intact under `dir` of a mount.
fn check_tree(dir: &Path) {
    for (p, data) in tree() {
        let got = fs::read(dir.join(&p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(got == data, "{p}: content differs after recovery");
    }
    assert_eq!(
        fs::read_link(dir.join("mid/link")).unwrap().as_os_str(),
        "../a"
    );
}

/// The journal's entries: backing path -> header bytes.
fn read_journal(cipher: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let j: serde_json::Value =
        serde_json::from_slice(&fs::read(cipher.join(JOURNAL)).unwrap()).unwrap();
    assert_eq!(j["version"], 1);
    j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let p = URL_SAFE_NO_PAD.decode(e["path"].as_str().unwrap()).unwrap();
            let h = URL_SAFE_NO_PAD
                .decode(e["header"].as_str().unwrap())
                .unwrap();
            (cipher.join(std::ffi::OsStr::from_bytes(&p)), h)
        })
        .collect()
}

/// Every content file below `dir` in the backing directory, long-name
/// files included (kmsfs's own files and long-name side files excluded).
fn content_files(dir: &Path) -> Vec<PathBuf> {
    use kmsfs::names::{BackingKind, classify_backing_name};
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(content_files(&e.path()));
        } else if ft.is_file()
            && matches!(
                classify_backing_name(e.file_name().as_bytes()),
                BackingKind::Regular | BackingKind::LongName
            )
        {
            out.push(e.path());
        }
    }
    out
}

fn header_of(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap()[..128].to_vec()
}

/// Crash after the backing rename and `done` header rewrites: the next
/// mount rolls the rename forward.
fn crash_after_headers(done: usize) {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let mut fm = FaultyMount::start(&fx, &done.to_string());
    make_tree(&fm.mnt);
    let before: Vec<PathBuf> = content_files(&fx.cipher);
    let regular = tree().len();
    assert_eq!(before.len(), regular);
    let err = fs::rename(fm.mnt.join("top"), fm.mnt.join("other/moved"));
    assert!(err.is_err(), "the rename must not complete");
    fm.expect_crash();
    drop(fm);

    // The state a crash leaves: journal present, backing rename done, exactly
    // `done` of the files carry their new header.
    let journal = read_journal(&fx.cipher);
    assert_eq!(journal.len(), regular, "one journal entry per file");
    for p in &before {
        assert!(!p.exists(), "{} should have moved", p.display());
    }
    let rewritten = journal.iter().filter(|(p, h)| header_of(p) == **h).count();
    assert_eq!(rewritten, done, "headers rewritten before the crash");

    let m = fx.mount();
    assert!(
        !fx.cipher.join(JOURNAL).exists(),
        "journal removed at mount"
    );
    for (p, h) in &journal {
        assert!(header_of(p) == *h, "{}: header rolled forward", p.display());
    }
    check_tree(&m.path("other/moved"));
    assert!(!m.path("top").exists(), "old path must be gone");
    let mut names: Vec<_> = fs::read_dir(m.path("other"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["moved"]);
    // Still consistent after one more remount (cold key cache).
    m.unmount();
    let m = fx.mount();
    check_tree(&m.path("other/moved"));
    // And the tree can be renamed again.
    fs::rename(m.path("other/moved"), m.path("back")).unwrap();
    check_tree(&m.path("back"));
}

#[test]
fn dir_rename_crash_after_some_headers_rolls_forward() {
    crash_after_headers(2);
}

#[test]
fn dir_rename_crash_right_after_backing_rename_rolls_forward() {
    crash_after_headers(0);
}

#[test]
fn dir_rename_crash_before_backing_rename_rolls_back() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let mut fm = FaultyMount::start(&fx, "before-rename");
    make_tree(&fm.mnt);
    let before: BTreeMap<PathBuf, Vec<u8>> = content_files(&fx.cipher)
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let err = fs::rename(fm.mnt.join("top"), fm.mnt.join("other/moved"));
    assert!(err.is_err(), "the rename must not complete");
    fm.expect_crash();
    drop(fm);

    // Journal on disk, nothing renamed, no file changed.
    let journal = read_journal(&fx.cipher);
    assert_eq!(journal.len(), tree().len());
    for p in journal.keys() {
        assert!(!p.exists(), "{} must not exist yet", p.display());
    }
    for (p, bytes) in &before {
        assert!(fs::read(p).unwrap() == *bytes, "{} changed", p.display());
    }

    let m = fx.mount();
    assert!(
        !fx.cipher.join(JOURNAL).exists(),
        "journal removed at mount"
    );
    for (p, bytes) in &before {
        assert!(fs::read(p).unwrap() == *bytes, "{} changed", p.display());
    }
    check_tree(&m.path("top"));
    assert!(!m.path("other/moved").exists(), "the rename did not happen");
    assert_eq!(fs::read_dir(m.path("other")).unwrap().count(), 0);
    // The rename can be done now, and sticks.
    fs::rename(m.path("top"), m.path("other/moved")).unwrap();
    m.unmount();
    let m = fx.mount();
    check_tree(&m.path("other/moved"));
    assert!(!m.path("top").exists());
}
