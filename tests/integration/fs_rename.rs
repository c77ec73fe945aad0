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
