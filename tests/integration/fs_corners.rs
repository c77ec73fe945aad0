//! POSIX corners on a real mount: what `fstat` reports for a file or
//! directory that is still open after a rename replaced it or it was
//! removed (xfstests generic/035).

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Fixture;
use kmsfs::format::NamesMode;
use std::fs;
use std::io::{Read, Seek, Write};

fn nlink_of(f: &fs::File) -> u64 {
    rustix::fs::fstat(f).unwrap().st_nlink
}

#[test]
fn fstat_of_a_replaced_or_removed_open_file_reports_no_links() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    // A file replaced by a rename over it.
    fs::write(m.path("old"), b"the replaced file").unwrap();
    fs::write(m.path("new"), b"the file that replaces it, longer").unwrap();
    let mut open = fs::File::open(m.path("old")).unwrap();
    assert_eq!(nlink_of(&open), 1);
    fs::rename(m.path("new"), m.path("old")).unwrap();
    let st = rustix::fs::fstat(&open).unwrap();
    assert_eq!(st.st_nlink, 0, "fstat after rename over");
    assert_eq!(
        st.st_size, 17,
        "size of the replaced file, not of its successor"
    );
    let mut got = String::new();
    open.read_to_string(&mut got).unwrap();
    assert_eq!(got, "the replaced file");
    // The name now stats as the new file, with one link.
    let now = fs::metadata(m.path("old")).unwrap();
    assert_eq!(now.len(), 33);
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&now), 1);
    drop(open);

    // An unlinked file, open for writing, after a new file took its name.
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("gone"))
        .unwrap();
    f.write_all(b"12345").unwrap();
    fs::remove_file(m.path("gone")).unwrap();
    fs::write(m.path("gone"), b"a different file").unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert_eq!((st.st_nlink, st.st_size), (0, 5));
    // Changes through the open descriptor reach the unlinked file only.
    f.set_len(2).unwrap();
    rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(0o640)).unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert_eq!((st.st_nlink, st.st_size, st.st_mode & 0o777), (0, 2, 0o640));
    f.rewind().unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"12");
    assert_eq!(fs::read(m.path("gone")).unwrap(), b"a different file");
    let successor = fs::metadata(m.path("gone")).unwrap();
    assert_ne!(
        std::os::unix::fs::PermissionsExt::mode(&successor.permissions()) & 0o777,
        0o640,
        "the chmod reached the file that took the name"
    );
    drop(f);

    // A directory replaced by a rename over it.
    fs::create_dir(m.path("d1")).unwrap();
    fs::write(m.path("d1/inside"), b"x").unwrap();
    fs::create_dir(m.path("d2")).unwrap();
    let d = fs::File::open(m.path("d2")).unwrap();
    assert_eq!(nlink_of(&d), 2);
    fs::rename(m.path("d1"), m.path("d2")).unwrap();
    let st = rustix::fs::fstat(&d).unwrap();
    assert_eq!(st.st_nlink, 0, "fstat of a directory replaced by rename");
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFDIR);
    assert_eq!(fs::read(m.path("d2/inside")).unwrap(), b"x");
    drop(d);

    // A removed directory still open.
    fs::create_dir(m.path("e")).unwrap();
    let e = fs::File::open(m.path("e")).unwrap();
    fs::remove_dir(m.path("e")).unwrap();
    fs::create_dir(m.path("e")).unwrap();
    assert_eq!(nlink_of(&e), 0, "fstat of a removed directory");
    drop(e);
    m.unmount();
}

/// The long-link target files below `dir` in the backing directory.
fn long_link_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(long_link_files(&e.path()));
        } else if e
            .file_name()
            .to_string_lossy()
            .starts_with("kmsfs.longlink.")
        {
            out.push(e.path());
        }
    }
    out
}

fn fsck_problems(fx: &Fixture) -> Vec<kmsfs::fsck::Problem> {
    use kmsfs::keys::KeyService;
    let ks: std::sync::Arc<dyn KeyService> = std::sync::Arc::new(fx.engine.clone());
    let vol = kmsfs::volume::Volume::open(&fx.cipher, &ks, &common::root()).unwrap();
    kmsfs::fsck::check(&vol, ks.as_ref(), &common::root())
        .unwrap()
        .problems
}

/// A target of `len` bytes made of path components.
fn long_target(len: usize, tag: u8) -> String {
    let mut t = String::from("/");
    while t.len() < len {
        t.push(char::from(b'a' + tag % 26));
        if t.len() % 200 == 0 {
            t.push('/');
        }
    }
    t.truncate(len);
    t
}

#[test]
fn symlink_targets_up_to_path_max() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let max = long_target(4095, 0);
    let inline = long_target(3043, 1);
    let just_long = long_target(3044, 2);
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("b")).unwrap();
    for (name, t) in [
        ("a/max", &max),
        ("a/inline", &inline),
        ("a/just", &just_long),
    ] {
        std::os::unix::fs::symlink(t, m.path(name)).unwrap();
        assert_eq!(fs::read_link(m.path(name)).unwrap().to_str().unwrap(), t);
        let st = fs::symlink_metadata(m.path(name)).unwrap();
        assert_eq!(st.len() as usize, t.len(), "{name}: lstat size");
    }
    // Two of them needed a target file; the 3,043-byte one fits.
    assert_eq!(long_link_files(&fx.cipher).len(), 2);
    // PATH_MAX: the kernel refuses longer targets itself.
    let e = std::os::unix::fs::symlink(long_target(4096, 3), m.path("a/over")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    // Moved to another directory (re-encrypted for its IV), renamed in
    // place, and renamed over another long link (whose file goes).
    fs::rename(m.path("a/max"), m.path("b/max")).unwrap();
    fs::rename(m.path("b/max"), m.path("b/max2")).unwrap();
    fs::rename(m.path("a/just"), m.path("b/just")).unwrap();
    std::os::unix::fs::symlink(long_target(4000, 4), m.path("b/other")).unwrap();
    fs::rename(m.path("b/just"), m.path("b/other")).unwrap();
    // Both files now sit in b's backing directory.
    let files = long_link_files(&fx.cipher);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].parent(), files[1].parent());
    assert_ne!(files[0].parent(), Some(fx.cipher.as_path()));
    m.unmount();
    assert!(fsck_problems(&fx).is_empty(), "{:?}", fsck_problems(&fx));

    let m = fx.mount();
    assert_eq!(
        fs::read_link(m.path("b/max2")).unwrap().to_str().unwrap(),
        max
    );
    assert_eq!(
        fs::read_link(m.path("b/other")).unwrap().to_str().unwrap(),
        just_long
    );
    assert_eq!(
        fs::read_link(m.path("a/inline")).unwrap().to_str().unwrap(),
        inline
    );
    // Exchanged across directories, then removed: no target file is left.
    std::os::unix::fs::symlink(long_target(3500, 5), m.path("a/x")).unwrap();
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        m.path("a/x"),
        rustix::fs::CWD,
        m.path("b/max2"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read_link(m.path("a/x")).unwrap().to_str().unwrap(), max);
    assert_eq!(
        fs::read_link(m.path("b/max2")).unwrap().to_str().unwrap(),
        long_target(3500, 5)
    );
    for name in ["a/x", "b/max2", "b/other", "a/inline"] {
        fs::remove_file(m.path(name)).unwrap();
    }
    assert_eq!(
        long_link_files(&fx.cipher),
        Vec::<std::path::PathBuf>::new()
    );
    fs::remove_dir(m.path("a")).unwrap();
    m.unmount();
    assert!(fsck_problems(&fx).is_empty(), "{:?}", fsck_problems(&fx));
}

#[test]
fn a_damaged_long_symlink_target_file_is_eio_and_reported() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    std::os::unix::fs::symlink(long_target(4095, 6), m.path("l")).unwrap();
    m.unmount();
    let files = long_link_files(&fx.cipher);
    assert_eq!(files.len(), 1);
    let mut bytes = fs::read(&files[0]).unwrap();
    bytes[100] ^= 1;
    fs::write(&files[0], bytes).unwrap();
    let m = fx.mount();
    let e = fs::read_link(m.path("l")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    m.unmount();
    let problems = fsck_problems(&fx);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].what.contains("long-link"), "{problems:?}");
}

#[test]
fn plaintext_names_volumes_store_targets_up_to_path_max_as_they_are() {
    let fx = Fixture::new(4096, NamesMode::Plaintext);
    let m = fx.mount();
    let max = long_target(4095, 7);
    std::os::unix::fs::symlink(&max, m.path("l")).unwrap();
    assert_eq!(fs::read_link(m.path("l")).unwrap().to_str().unwrap(), max);
    assert_eq!(
        fs::read_link(fx.cipher.join("l"))
            .unwrap()
            .to_str()
            .unwrap(),
        max
    );
    m.unmount();
    assert!(fsck_problems(&fx).is_empty());
}
