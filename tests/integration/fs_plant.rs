//! Symlinks planted in the cipher directory (which the threat model lets an
//! attacker write) at every name kmsfs writes there: the rename journal,
//! long-name side files, and the fixed temporary names older versions used.
//! kmsfs must never write through them; the victim file stays untouched and
//! the operation either works or fails cleanly.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Fixture;
use kmsfs::format::NamesMode;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

/// A file outside the volume that a root mount must never write.
fn victim(fx: &Fixture) -> PathBuf {
    let v = fx.tmp.path().join("victim");
    fs::write(&v, b"precious").unwrap();
    v
}

fn assert_untouched(v: &Path) {
    assert_eq!(fs::read(v).unwrap(), b"precious", "the victim was written");
}

/// The regular file kmsfs left at `p`, with mode 0600.
fn assert_private_file(p: &Path) {
    let m = fs::symlink_metadata(p).unwrap();
    assert!(m.is_file(), "{}: not a regular file", p.display());
    assert_eq!(m.mode() & 0o777, 0o600, "{}", p.display());
}

#[test]
fn planted_journal_symlinks_are_never_followed() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let v = victim(&fx);
    let m = fx.mount();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), b"inside").unwrap();
    // The journal's final name and the fixed temp name of older versions.
    let journal = fx.cipher.join("kmsfs.journal");
    symlink(&v, &journal).unwrap();
    symlink(&v, fx.cipher.join("kmsfs.journal.tmp")).unwrap();
    // A directory rename writes the journal (its file needs a re-wrap).
    fs::rename(m.path("d"), m.path("e")).unwrap();
    assert_untouched(&v);
    assert_eq!(fs::read(m.path("e/f")).unwrap(), b"inside");
    // The journal replaced the planted link and was removed when done.
    assert!(fs::symlink_metadata(&journal).is_err());
    m.unmount();

    // A symlink at the journal's name at mount is not read through: it is
    // dropped, and the mount works.
    fs::write(&v, br#"{"version":1,"entries":[]}"#).unwrap();
    symlink(&v, &journal).unwrap();
    let m = fx.mount();
    assert_eq!(fs::read(&v).unwrap(), br#"{"version":1,"entries":[]}"#);
    assert!(fs::symlink_metadata(&journal).is_err());
    assert_eq!(fs::read(m.path("e/f")).unwrap(), b"inside");
}

#[test]
fn planted_side_file_symlinks_are_never_followed() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let v = victim(&fx);
    let m = fx.mount();
    let long = "N".repeat(240);
    // Learn the side file's backing name, then free it again.
    fs::write(m.path(&long), b"first").unwrap();
    let side: Vec<_> = fs::read_dir(&fx.cipher)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("kmsfs.longname.") && n.ends_with(".name"))
        .collect();
    assert_eq!(side.len(), 1, "{side:?}");
    let side = fx.cipher.join(&side[0]);
    fs::remove_file(m.path(&long)).unwrap();
    assert!(fs::symlink_metadata(&side).is_err());

    // Final name and the old fixed temp name point at the victim.
    symlink(&v, &side).unwrap();
    let mut old_tmp = side.clone().into_os_string();
    old_tmp.push(".tmp");
    symlink(&v, &old_tmp).unwrap();
    // Create, mkdir and rename to the long name all write the side file.
    fs::write(m.path(&long), b"second").unwrap();
    assert_untouched(&v);
    assert_private_file(&side);
    assert_eq!(fs::read(m.path(&long)).unwrap(), b"second");
    fs::remove_file(m.path(&long)).unwrap();

    symlink(&v, &side).unwrap();
    fs::create_dir(m.path(&long)).unwrap();
    assert_untouched(&v);
    assert_private_file(&side);
    fs::remove_dir(m.path(&long)).unwrap();

    symlink(&v, &side).unwrap();
    fs::write(m.path("short"), b"renamed").unwrap();
    fs::rename(m.path("short"), m.path(&long)).unwrap();
    assert_untouched(&v);
    assert_private_file(&side);
    assert_eq!(fs::read(m.path(&long)).unwrap(), b"renamed");
    // The old temp name was never used: the planted link is still there.
    assert!(
        fs::symlink_metadata(&old_tmp)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// The temporary names kmsfs writes now are random and created with
/// O_EXCL|O_NOFOLLOW; a leftover one (a writer killed mid-write) is hidden
/// from the mount and named by fsck.
#[test]
fn leftover_temp_files_are_hidden_and_reported_by_fsck() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("f"), b"x").unwrap();
    fs::write(fx.cipher.join("kmsfs.tmp-0123456789abcdef"), b"debris").unwrap();
    let names: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["f"]);
    m.unmount();
    let ks: std::sync::Arc<dyn kmsfs::keys::KeyService> = std::sync::Arc::new(fx.engine.clone());
    let vol = kmsfs::volume::Volume::open(&fx.cipher, &ks, &common::root()).unwrap();
    let report = kmsfs::fsck::check(&vol, ks.as_ref(), &common::root()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].what.contains("leftover temporary file"),
        "{:?}",
        report.problems
    );
}

/// chown and utimes alone are done at the backing path without a stat
/// first: they must still never follow a symlink, neither one made through
/// the mount nor one an attacker put in place of a file's backing entry,
/// and an unlinked but open file still takes them through its handle.
#[test]
fn owner_and_times_never_follow_symlinks_and_reach_unlinked_open_files() {
    use std::os::unix::fs::lchown;
    use std::time::{Duration, SystemTime};
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let v = victim(&fx);
    let (vuid, vmtime) = {
        let m = fs::metadata(&v).unwrap();
        (m.uid(), m.mtime())
    };
    let victim_unchanged = || {
        let m = fs::metadata(&v).unwrap();
        assert_eq!((m.uid(), m.mtime()), (vuid, vmtime), "the victim changed");
        assert_untouched(&v);
    };
    let set_times = |p: &Path, t: SystemTime| {
        let ts = rustix::fs::Timespec {
            tv_sec: t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
    };
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let m = fx.mount();

    // A symlink made through the mount to the victim: the link changes.
    symlink(&v, m.path("link")).unwrap();
    lchown(m.path("link"), Some(65534), Some(65534)).unwrap();
    set_times(&m.path("link"), old).unwrap();
    let l = fs::symlink_metadata(m.path("link")).unwrap();
    assert_eq!((l.uid(), l.mtime()), (65534, 1_000_000_000));
    victim_unchanged();

    // A file whose backing entry an attacker replaced by a symlink to the
    // victim: the link (what is there now) changes, never the victim.
    fs::write(m.path("f"), b"data").unwrap();
    let before: Vec<_> = common::backing_files(&fx.cipher);
    assert_eq!(before.len(), 1, "{before:?}");
    fs::remove_file(&before[0]).unwrap();
    symlink(&v, &before[0]).unwrap();
    let _ = lchown(m.path("f"), Some(65534), Some(65534));
    let _ = set_times(&m.path("f"), old);
    victim_unchanged();
    fs::remove_file(&before[0]).unwrap();

    // Unlinked but open: fchown and futimens reach the open file.
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.path("g"))
        .unwrap();
    fs::remove_file(m.path("g")).unwrap();
    std::os::unix::fs::fchown(&f, Some(65534), Some(65534)).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(old).set_accessed(old))
        .unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(
        (st.uid(), st.gid(), st.mtime()),
        (65534, 65534, 1_000_000_000)
    );
    victim_unchanged();
}
