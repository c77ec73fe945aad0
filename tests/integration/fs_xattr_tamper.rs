//! Tampering with encrypted xattrs in the backing directory, on a real kmsfs
//! mount: a value copied to another file or directory, or altered, reads as
//! EIO (never the copied plaintext) and leaves the mount working; a rename
//! keeps attributes readable.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, backing_files};
use kmsfs::format::NamesMode;
use rustix::fs::XattrFlags;
use rustix::io::Errno;
use std::fs;
use std::path::{Path, PathBuf};

/// Every backing file and directory below `dir` (not kmsfs's own files).
fn backing_entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("kmsfs.") {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(backing_entries(&e.path()));
        }
        out.push(e.path());
    }
    out
}

/// The kmsfs-encrypted xattrs (backing name, stored value) of a backing path.
fn stored_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut list = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap();
    list[..n]
        .split(|b| *b == 0)
        .filter(|s| s.starts_with(b"user.kmsfs."))
        .map(|s| {
            let name = String::from_utf8(s.to_vec()).unwrap();
            let mut buf = vec![0u8; 65536];
            let n = rustix::fs::lgetxattr(p, name.as_str(), &mut buf[..]).unwrap();
            buf.truncate(n);
            (name, buf)
        })
        .collect()
}

/// The one backing entry that carries a kmsfs xattr, with that xattr.
fn the_backing_with_xattr(cipher: &Path) -> (PathBuf, String, Vec<u8>) {
    let mut found: Vec<(PathBuf, String, Vec<u8>)> = backing_entries(cipher)
        .into_iter()
        .flat_map(|p| {
            stored_xattrs(&p)
                .into_iter()
                .map(move |(n, v)| (p.clone(), n, v))
        })
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one stored xattr");
    found.pop().unwrap()
}

/// Backing entries without any kmsfs xattr, files and directories apart.
fn backing_without_xattr(cipher: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    backing_entries(cipher)
        .into_iter()
        .filter(|p| stored_xattrs(p).is_empty())
        .partition(|p| p.is_file())
}

fn get(p: &Path, name: &str) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::getxattr(p, name, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

fn set(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(p, name, value, XattrFlags::empty()).unwrap();
}

fn list(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::listxattr(p, &mut buf[..]).unwrap();
    let mut names: Vec<String> = buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    names.sort();
    names
}

/// Copies one stored xattr onto a backing path as it is.
fn plant(target: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(target, name, value, XattrFlags::empty()).unwrap();
}

#[test]
fn file_xattr_copied_to_another_file_or_a_directory_gives_eio() {
    for names in [NamesMode::Encrypted, NamesMode::Plaintext] {
        let fx = Fixture::new(4096, names);
        let m = fx.mount();
        fs::write(m.path("x"), b"file x").unwrap();
        set(&m.path("x"), "user.a", b"x-secret");
        fs::write(m.path("y"), b"file y").unwrap();
        fs::create_dir(m.path("d")).unwrap();
        // Read y's and d's (empty) attributes first, so the mount has their
        // ids cached when the planted copies arrive.
        assert_eq!(get(&m.path("y"), "user.a"), Err(Errno::NODATA));
        assert_eq!(get(&m.path("d"), "user.a"), Err(Errno::NODATA));

        let (_, name, value) = the_backing_with_xattr(&fx.cipher);
        let (files, dirs) = backing_without_xattr(&fx.cipher);
        assert_eq!((files.len(), dirs.len()), (1, 1), "{names:?}");
        plant(&files[0], &name, &value);
        plant(&dirs[0], &name, &value);

        for victim in ["y", "d"] {
            let p = m.path(victim);
            assert_eq!(get(&p, "user.a"), Err(Errno::IO), "{names:?} {victim}");
            // The name decrypts (names are not bound to objects), the value
            // never does; listing does not fail and does not hurt the mount.
            assert_eq!(list(&p), ["user.a"]);
            assert_eq!(get(&p, "user.a"), Err(Errno::IO));
        }
        // The original still reads, the mount still serves content.
        assert_eq!(get(&m.path("x"), "user.a").unwrap(), b"x-secret");
        assert_eq!(fs::read(m.path("y")).unwrap(), b"file y");
        // The victim can overwrite the planted value with its own.
        set(&m.path("y"), "user.a", b"y-own");
        assert_eq!(get(&m.path("y"), "user.a").unwrap(), b"y-own");
        m.unmount();

        // After a remount (nothing cached) the copy still fails.
        let m = fx.mount();
        assert_eq!(get(&m.path("d"), "user.a"), Err(Errno::IO));
        assert_eq!(get(&m.path("x"), "user.a").unwrap(), b"x-secret");
        m.unmount();
    }
}

#[test]
fn dir_xattr_copied_to_another_dir_or_a_file_gives_eio() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::create_dir(m.path("d")).unwrap();
    set(&m.path("d"), "user.a", b"d-secret");
    fs::create_dir(m.path("e")).unwrap();
    fs::write(m.path("e/f"), b"in e").unwrap();

    let (_, name, value) = the_backing_with_xattr(&fx.cipher);
    let (files, dirs) = backing_without_xattr(&fx.cipher);
    assert_eq!((files.len(), dirs.len()), (1, 1));
    plant(&dirs[0], &name, &value);
    plant(&files[0], &name, &value);

    for victim in ["e", "e/f"] {
        assert_eq!(get(&m.path(victim), "user.a"), Err(Errno::IO), "{victim}");
        assert_eq!(list(&m.path(victim)), ["user.a"]);
    }
    assert_eq!(get(&m.path("d"), "user.a").unwrap(), b"d-secret");
    assert_eq!(fs::read(m.path("e/f")).unwrap(), b"in e");
    m.unmount();
}

#[test]
fn altered_or_truncated_value_gives_eio() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("x"), b"").unwrap();
    set(&m.path("x"), "user.a", b"a value of some length");
    let (backing, name, value) = the_backing_with_xattr(&fx.cipher);
    // Version byte, nonce, ciphertext, tag: one flipped bit anywhere.
    for i in [0, 1, 13, 20, value.len() - 1] {
        let mut bad = value.clone();
        bad[i] ^= 0x01;
        plant(&backing, &name, &bad);
        assert_eq!(get(&m.path("x"), "user.a"), Err(Errno::IO), "byte {i}");
    }
    // Truncated, empty, and the unversioned v1 layout (no leading byte).
    for bad in [&value[..20], &[][..], &value[1..]] {
        plant(&backing, &name, bad);
        assert_eq!(get(&m.path("x"), "user.a"), Err(Errno::IO));
    }
    plant(&backing, &name, &value);
    assert_eq!(
        get(&m.path("x"), "user.a").unwrap(),
        b"a value of some length"
    );
    m.unmount();
}

#[test]
fn xattrs_read_after_renames_and_remount() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("x"), b"x").unwrap();
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("d/sub/f"), b"f").unwrap();
    set(&m.path("x"), "user.a", b"on x");
    set(&m.path("d"), "user.a", b"on d");
    set(&m.path("d/sub/f"), "user.a", b"on f");

    fs::rename(m.path("x"), m.path("x2")).unwrap();
    fs::rename(m.path("x2"), m.path("d/sub/x3")).unwrap();
    fs::rename(m.path("d"), m.path("d2")).unwrap();
    let check = |m: &common::Mounted| {
        assert_eq!(get(&m.path("d2/sub/x3"), "user.a").unwrap(), b"on x");
        assert_eq!(get(&m.path("d2"), "user.a").unwrap(), b"on d");
        assert_eq!(get(&m.path("d2/sub/f"), "user.a").unwrap(), b"on f");
    };
    check(&m);
    m.unmount();
    // Fresh mount: ids are read from the renamed backing objects.
    let m = fx.mount();
    check(&m);
    // Rename over an existing file: the survivor's attributes come along.
    fs::write(m.path("victim"), b"v").unwrap();
    set(&m.path("victim"), "user.a", b"on victim");
    fs::rename(m.path("d2/sub/x3"), m.path("victim")).unwrap();
    assert_eq!(get(&m.path("victim"), "user.a").unwrap(), b"on x");
    m.unmount();
    assert_eq!(backing_files(&fx.cipher).len(), 2);
}

#[test]
fn user_xattrs_on_symlinks_are_refused() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("t"), b"t").unwrap();
    std::os::unix::fs::symlink("t", m.path("l")).unwrap();
    let p = m.path("l");
    assert!(rustix::fs::lsetxattr(&p, "user.a", b"1", XattrFlags::empty()).is_err());
    let mut buf = [0u8; 16];
    assert!(rustix::fs::lgetxattr(&p, "user.a", &mut buf[..]).is_err());
    // Through the link, the target's attributes work as usual.
    set(&p, "user.a", b"target");
    assert_eq!(get(&m.path("t"), "user.a").unwrap(), b"target");
    m.unmount();
}
