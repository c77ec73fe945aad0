//! Every rename form on a real mount: re-wrapping of data keys for the new
//! path (checked after a remount, i.e. with a cold key cache), rename over,
//! RENAME_NOREPLACE, RENAME_EXCHANGE, directory trees, and journal recovery.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, backing_files};
use kmsfs::format::NamesMode;
use std::fs;

fn renameat2(
    from: &std::path::Path,
    to: &std::path::Path,
    flags: rustix::fs::RenameFlags,
) -> rustix::io::Result<()> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags)
}

#[test]
fn file_rename_rewraps_for_new_path() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("b")).unwrap();
    fs::write(m.path("a/f"), b"content of f").unwrap();
    let before = fs::read(&backing_files(&fx.cipher)[0]).unwrap();
    fs::rename(m.path("a/f"), m.path("b/g")).unwrap();
    let after = fs::read(&backing_files(&fx.cipher)[0]).unwrap();
    assert_ne!(before[..128], after[..128], "header re-wrapped");
    assert_eq!(before[128..], after[128..], "content untouched");
    assert!(!m.path("a/f").exists());
    m.unmount();
    let m = fx.mount();
    assert_eq!(fs::read(m.path("b/g")).unwrap(), b"content of f");
    assert!(!fx.cipher.join("kmsfs.journal").exists());
}

#[test]
fn rename_over_noreplace_and_exchange() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("x"), b"xxx").unwrap();
    fs::write(m.path("y"), b"yyyy").unwrap();
    // NOREPLACE refuses an existing target.
    let e = renameat2(
        &m.path("x"),
        &m.path("y"),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .unwrap_err();
    assert_eq!(e, rustix::io::Errno::EXIST);
    renameat2(
        &m.path("x"),
        &m.path("z"),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .unwrap();
    // EXCHANGE swaps.
    renameat2(
        &m.path("z"),
        &m.path("y"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read(m.path("y")).unwrap(), b"xxx");
    assert_eq!(fs::read(m.path("z")).unwrap(), b"yyyy");
    // Rename over an existing file replaces it.
    fs::rename(m.path("z"), m.path("y")).unwrap();
    assert_eq!(fs::read(m.path("y")).unwrap(), b"yyyy");
    assert!(!m.path("z").exists());
    // An editor-style save: write temp, rename over.
    fs::write(m.path("doc"), b"v1").unwrap();
    fs::write(m.path(".doc.swp"), b"v2").unwrap();
    fs::rename(m.path(".doc.swp"), m.path("doc")).unwrap();
    // Directories: exchange a dir and a file; rename over an empty dir.
    fs::create_dir(m.path("d1")).unwrap();
    fs::write(m.path("d1/in"), b"inside").unwrap();
    renameat2(
        &m.path("d1"),
        &m.path("doc"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read(m.path("doc/in")).unwrap(), b"inside");
    assert_eq!(fs::read(m.path("d1")).unwrap(), b"v2");
    fs::create_dir(m.path("empty")).unwrap();
    fs::rename(m.path("doc"), m.path("empty")).unwrap();
    fs::create_dir(m.path("full")).unwrap();
    fs::write(m.path("full/x"), b"").unwrap();
    let e = fs::rename(m.path("empty"), m.path("full")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    m.unmount();
    let m = fx.mount();
    assert_eq!(fs::read(m.path("y")).unwrap(), b"yyyy");
    assert_eq!(fs::read(m.path("d1")).unwrap(), b"v2");
    assert_eq!(fs::read(m.path("empty/in")).unwrap(), b"inside");
}

#[test]
fn directory_rename_rewraps_the_tree() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::create_dir_all(m.path("top/mid/deep")).unwrap();
    for (i, p) in ["top/a", "top/mid/b", "top/mid/deep/c", "top/mid/deep/d"]
        .iter()
        .enumerate()
    {
        fs::write(m.path(p), format!("file {i}")).unwrap();
    }
    std::os::unix::fs::symlink("../a", m.path("top/mid/link")).unwrap();
    fs::create_dir(m.path("other")).unwrap();
    fs::rename(m.path("top"), m.path("other/moved")).unwrap();
    m.unmount();
    let m = fx.mount();
    for (i, p) in ["a", "mid/b", "mid/deep/c", "mid/deep/d"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            fs::read_to_string(m.path(&format!("other/moved/{p}"))).unwrap(),
            format!("file {i}")
        );
    }
    assert_eq!(
        fs::read_link(m.path("other/moved/mid/link"))
            .unwrap()
            .to_str(),
        Some("../a")
    );
    assert!(!m.path("top").exists());
}

#[test]
fn ciphertext_moved_in_backing_dir_does_not_decrypt() {
    let fx = Fixture::new(4096, NamesMode::Plaintext);
    let m = fx.mount();
    fs::write(m.path("one"), b"first").unwrap();
    fs::write(m.path("two"), b"second").unwrap();
    m.unmount();
    // Plaintext names: the backing names are the plain ones.
    fs::copy(fx.cipher.join("one"), fx.cipher.join("two")).unwrap();
    fs::rename(fx.cipher.join("one"), fx.cipher.join("three")).unwrap();
    let m = fx.mount();
    for p in ["two", "three"] {
        let e = fs::read(m.path(p)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{p}");
    }
}

/// A rename gives the moved files new headers (their keys re-wrapped for
/// the new paths) but changes no content: their access and modification
/// times stay as they were, for a file renamed within a directory and into
/// another one, for every file below a renamed directory (however deep),
/// and for a symlink (its mtime); only the change time moves, as POSIX has it
/// (`make`, `rsync` and backups go by mtime).
#[test]
fn rename_keeps_the_access_and_modification_times_of_what_it_moves() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, SystemTime};
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::create_dir_all(m.path("a/deep/er")).unwrap();
    fs::create_dir(m.path("b")).unwrap();
    for p in ["a/f", "a/deep/g", "a/deep/er/h"] {
        fs::write(m.path(p), p.as_bytes()).unwrap();
    }
    std::os::unix::fs::symlink("f", m.path("a/l")).unwrap();
    let then = SystemTime::UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789);
    let times = fs::FileTimes::new().set_accessed(then).set_modified(then);
    for p in ["a/f", "a/deep/g", "a/deep/er/h"] {
        fs::File::options()
            .write(true)
            .open(m.path(p))
            .unwrap()
            .set_times(times)
            .unwrap();
    }
    let ts = rustix::fs::Timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 123_456_789,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        m.path("a/l"),
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    fs::rename(m.path("a/f"), m.path("a/f2")).unwrap();
    fs::rename(m.path("a/f2"), m.path("b/f3")).unwrap();
    fs::rename(m.path("a/l"), m.path("b/l")).unwrap();
    fs::rename(m.path("a"), m.path("b/a")).unwrap();
    let check = |when: &str| {
        for (p, content) in [
            ("b/f3", "a/f"),
            ("b/a/deep/g", "a/deep/g"),
            ("b/a/deep/er/h", "a/deep/er/h"),
            ("b/l", ""),
        ] {
            let md = fs::symlink_metadata(m.path(p)).unwrap();
            assert_eq!(
                (md.mtime(), md.mtime_nsec()),
                (1_000_000_000, 123_456_789),
                "{p} {when}"
            );
            // A symlink's atime moves whenever kmsfs reads its stored
            // target (for its size), as reading any symlink moves it.
            if !content.is_empty() {
                assert_eq!(
                    (md.atime(), md.atime_nsec()),
                    (1_000_000_000, 123_456_789),
                    "{p} {when}"
                );
            }
            assert!(md.ctime() > 1_000_000_000, "{p}: the change time moves");
            if !content.is_empty() {
                assert_eq!(fs::read(m.path(p)).unwrap(), content.as_bytes());
            }
        }
    };
    check("after the renames");
    m.unmount();
    let m2 = fx.mount();
    let m = &m2;
    for p in ["b/f3", "b/a/deep/g", "b/a/deep/er/h"] {
        let md = fs::metadata(m.path(p)).unwrap();
        assert_eq!(
            (md.mtime(), md.mtime_nsec()),
            (1_000_000_000, 123_456_789),
            "{p}"
        );
    }
    m2.unmount();
}
