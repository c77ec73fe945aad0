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
