//! Basic POSIX behaviour on a real kmsfs mount: files, directories, names,
//! symlinks, fifos, xattrs, rename forms, hard links refused.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, backing_files};
use kmsfs::format::NamesMode;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

#[test]
fn create_write_read_list_remove() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("hello.txt"), b"hello world").unwrap();
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello world");
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/inner"), vec![7u8; 10_000]).unwrap();
    let mut names: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "hello.txt"]);
    assert_eq!(fs::metadata(m.path("dir/inner")).unwrap().len(), 10_000);
    // Only ciphertext on disk: no plaintext name, no plaintext content.
    let files = backing_files(&fx.cipher);
    assert_eq!(files.len(), 2);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.contains("hello") && !name.contains("inner"), "{name}");
        let bytes = fs::read(f).unwrap();
        assert!(!bytes.windows(5).any(|w| w == b"hello"));
        assert!(!bytes.windows(64).any(|w| w.iter().all(|b| *b == 7)));
    }
    fs::remove_file(m.path("dir/inner")).unwrap();
    fs::remove_dir(m.path("dir")).unwrap();
    fs::remove_file(m.path("hello.txt")).unwrap();
    assert_eq!(fs::read_dir(&m.mnt).unwrap().count(), 0);
    // Survives a remount.
    fs::write(m.path("persist"), b"still here").unwrap();
    m.unmount();
    let m = fx.mount();
    assert_eq!(fs::read(m.path("persist")).unwrap(), b"still here");
}

#[test]
fn open_flags_append_trunc_excl() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let p = m.path("f");
    fs::write(&p, b"abc").unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"def").unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"abcdef");
    let f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"");
    let e = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
}

#[test]
fn holes_read_as_zeros_and_truncate() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let p = m.path("sparse");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    f.seek(SeekFrom::Start(10_000)).unwrap();
    f.write_all(b"X").unwrap();
    f.sync_all().unwrap();
    let mut all = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 10_001);
    assert!(all[..10_000].iter().all(|b| *b == 0));
    f.set_len(5000).unwrap();
    f.set_len(9000).unwrap();
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 9000);
    assert!(got.iter().all(|b| *b == 0));
}

#[test]
fn long_and_non_utf8_names() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let long = "L".repeat(255);
    fs::write(m.path(&long), b"long").unwrap();
    let raw = OsStr::from_bytes(b"caf\xe9-\xff\xfe");
    fs::write(m.mnt.join(raw), b"raw").unwrap();
    fs::create_dir(m.path(&"d".repeat(200))).unwrap();
    let mut names: Vec<Vec<u8>> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    let mut want = vec![
        long.as_bytes().to_vec(),
        raw.as_bytes().to_vec(),
        "d".repeat(200).into_bytes(),
    ];
    want.sort();
    assert_eq!(names, want);
    assert_eq!(fs::read(m.path(&long)).unwrap(), b"long");
    assert_eq!(fs::read(m.mnt.join(raw)).unwrap(), b"raw");
    fs::rename(m.path(&long), m.path(&"M".repeat(254))).unwrap();
    assert_eq!(fs::read(m.path(&"M".repeat(254))).unwrap(), b"long");
    assert!(
        fs::write(m.path(&"x".repeat(256)), b"").is_err(),
        "names over 255 bytes are refused"
    );
}

#[test]
fn symlinks_fifos_and_hard_links() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("target"), b"t").unwrap();
    std::os::unix::fs::symlink("target", m.path("link")).unwrap();
    assert_eq!(
        fs::read_link(m.path("link")).unwrap().to_str(),
        Some("target")
    );
    assert_eq!(fs::read(m.path("link")).unwrap(), b"t");
    assert_eq!(fs::symlink_metadata(m.path("link")).unwrap().len(), 6);
    // A symlink moved to another directory still resolves.
    fs::create_dir(m.path("sub")).unwrap();
    fs::rename(m.path("link"), m.path("sub/link")).unwrap();
    assert_eq!(
        fs::read_link(m.path("sub/link")).unwrap().to_str(),
        Some("target")
    );
    let st = std::process::Command::new("mkfifo")
        .arg(m.path("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        fs::symlink_metadata(m.path("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let e = fs::hard_link(m.path("target"), m.path("hard")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn xattrs_are_stored_encrypted() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let p = m.path("x");
    fs::write(&p, b"").unwrap();
    let set = |name: &str, val: &str| {
        std::process::Command::new("setfattr")
            .args(["-n", name, "-v", val])
            .arg(&p)
            .status()
            .map(|s| s.success())
    };
    if set("user.colour", "blue").is_err() {
        eprintln!("setfattr not installed: using xattr syscalls via rustix only");
    }
    rustix::fs::setxattr(
        &p,
        "user.secret",
        b"hunter2",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(&p, "user.secret", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"hunter2");
    let mut list = [0u8; 256];
    let n = rustix::fs::listxattr(&p, &mut list[..]).unwrap();
    let names: Vec<&[u8]> = list[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .collect();
    assert!(names.contains(&&b"user.secret"[..]));
    // The backing file carries neither the name nor the value in the clear.
    let backing = backing_files(&fx.cipher).pop().unwrap();
    let n = rustix::fs::listxattr(&backing, &mut list[..]).unwrap();
    assert!(!list[..n].windows(6).any(|w| w == b"secret"));
    rustix::fs::removexattr(&p, "user.secret").unwrap();
    assert_eq!(
        rustix::fs::getxattr(&p, "user.secret", &mut buf[..]).unwrap_err(),
        rustix::io::Errno::NODATA
    );
    // Namespaces kmsfs does not store are refused (trusted.* and ACLs:
    // fs_acl).
    assert_eq!(
        rustix::fs::setxattr(&p, "security.x", b"1", rustix::fs::XattrFlags::empty()),
        Err(rustix::io::Errno::OPNOTSUPP)
    );
}

#[test]
fn permissions_and_ownership() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    // This test is about the kernel's POSIX checks: let every local user use
    // the key for file data, so the key policy is not what decides.
    fx.allow_everyone_file_access();
    let m = fx.mount();
    let p = m.path("private");
    fs::write(&p, b"secret").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
    // Another user may not read a 0600 root file (kernel permission check).
    let out = std::process::Command::new("cat")
        .arg(&p)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new("cat")
        .arg(&p)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"secret");
    // Files another user creates belong to them.
    fs::create_dir(m.path("shared")).unwrap();
    fs::set_permissions(m.path("shared"), fs::Permissions::from_mode(0o777)).unwrap();
    let st = std::process::Command::new("touch")
        .arg(m.path("shared/mine"))
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(fs::metadata(m.path("shared/mine")).unwrap().uid(), 65534);
}

use std::os::unix::process::CommandExt;

#[test]
fn unlinked_open_file_stays_usable() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.path("tmp"))
        .unwrap();
    f.write_all(b"0123456789").unwrap();
    fs::remove_file(m.path("tmp")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 10);
    f.set_len(4).unwrap();
    f.set_permissions(fs::Permissions::from_mode(0o640))
        .unwrap();
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "0123");
    assert!(!m.path("tmp").exists());
}

/// A read-only bind mount over a directory, removed on drop.
struct RoBind(std::path::PathBuf);

impl RoBind {
    fn new(dir: &std::path::Path) -> Option<RoBind> {
        let run = |args: &[&OsStr]| {
            std::process::Command::new("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !run(&[OsStr::new("--bind"), dir.as_os_str(), dir.as_os_str()]) {
            return None;
        }
        let guard = RoBind(dir.to_path_buf());
        run(&[
            OsStr::new("-o"),
            OsStr::new("remount,bind,ro"),
            dir.as_os_str(),
        ])
        .then_some(guard)
    }
}

impl Drop for RoBind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Reading must not need a writable backing file: a read-only open of a
/// file on a read-only backing filesystem (or of a mode 0444 backing file
/// when not running as root) once failed with EROFS/EACCES because the
/// backing file was always opened read-write.
#[test]
fn read_only_open_of_a_read_only_backing_file() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    {
        let m = fx.mount();
        fs::write(m.path("f"), b"on read-only media").unwrap();
        m.unmount();
    }
    let Some(_ro) = RoBind::new(&fx.cipher) else {
        eprintln!("skipping: cannot make a read-only bind mount here");
        return;
    };
    assert!(
        fs::OpenOptions::new()
            .write(true)
            .open(backing_files(&fx.cipher)[0].clone())
            .is_err()
    );
    let m = fx.mount();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"on read-only media");
    let err = fs::OpenOptions::new()
        .append(true)
        .open(m.path("f"))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    m.unmount();
}

/// A cold listing (fresh mount, so every entry comes from READDIRPLUS with
/// the backing names read at the first readdir) reports every entry with
/// the right type, size and inode number — long, non-UTF-8, directory,
/// symlink and fifo entries included — and a directory handle opened
/// before the directory is removed still fails cleanly.
#[test]
fn cold_listing_reports_every_entry_with_its_attributes() {
    use std::os::unix::fs::DirEntryExt;
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let mut want: Vec<(Vec<u8>, &str, u64)> = Vec::new();
    {
        let m = fx.mount();
        fs::create_dir(m.path("d")).unwrap();
        for i in 0..60u64 {
            let name = format!("f{i:03}");
            fs::write(m.path(&format!("d/{name}")), vec![7u8; (i * 37) as usize]).unwrap();
            want.push((name.into_bytes(), "file", i * 37));
        }
        for i in 0..3u64 {
            let name = format!("{i}{}", "L".repeat(230));
            fs::write(m.path(&format!("d/{name}")), vec![1u8; i as usize + 1]).unwrap();
            want.push((name.into_bytes(), "file", i + 1));
        }
        let raw: &[u8] = b"caf\xe9-\xff";
        fs::write(m.path("d").join(OsStr::from_bytes(raw)), b"raw").unwrap();
        want.push((raw.to_vec(), "file", 3));
        fs::create_dir(m.path("d/sub")).unwrap();
        want.push((b"sub".to_vec(), "dir", 0));
        std::os::unix::fs::symlink("f001", m.path("d/link")).unwrap();
        want.push((b"link".to_vec(), "symlink", 4));
        rustix::fs::mknodat(
            rustix::fs::CWD,
            m.path("d/pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        want.push((b"pipe".to_vec(), "fifo", 0));
        m.unmount();
    }
    want.sort();
    let m = fx.mount();
    let mut got = Vec::new();
    for e in fs::read_dir(m.path("d")).unwrap() {
        let e = e.unwrap();
        let meta = fs::symlink_metadata(e.path()).unwrap();
        assert_eq!(
            e.ino(),
            meta.ino(),
            "{:?}: readdir and stat inode",
            e.path()
        );
        let t = e.file_type().unwrap();
        let kind = if t.is_dir() {
            "dir"
        } else if t.is_symlink() {
            "symlink"
        } else if t.is_fifo() {
            "fifo"
        } else {
            assert!(t.is_file());
            "file"
        };
        assert_eq!(kind == "dir", meta.is_dir());
        let size = if kind == "dir" { 0 } else { meta.len() };
        got.push((e.file_name().as_bytes().to_vec(), kind, size));
    }
    got.sort();
    assert_eq!(got, want);

    // A handle opened on a directory that is then removed.
    fs::create_dir(m.path("gone")).unwrap();
    let listing = fs::read_dir(m.path("gone")).unwrap();
    fs::remove_dir(m.path("gone")).unwrap();
    let rest: Vec<_> = listing.collect();
    assert!(
        rest.iter().all(|e| e.is_err()),
        "a removed directory lists no entry: {rest:?}"
    );
}

/// `rm -rf` removes entries at the backing paths their nodes hold (no name
/// encryption for what the kernel looked up), also after the directories
/// above them were renamed, and takes long names' side files and every
/// directory's own files with them: nothing is left in the cipher tree.
#[test]
fn remove_tree_after_renames_leaves_nothing_behind() {
    fn every_entry(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                every_entry(&p, out);
            }
            out.push(p);
        }
    }
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let mut before = Vec::new();
    every_entry(&fx.cipher, &mut before);
    let long = "L".repeat(240);
    fs::create_dir_all(m.path(&format!("a/{long}/c"))).unwrap();
    for dir in ["a", &format!("a/{long}"), &format!("a/{long}/c")] {
        fs::write(m.path(&format!("{dir}/short")), b"s").unwrap();
        fs::write(m.path(&format!("{dir}/{}", "N".repeat(200))), b"n").unwrap();
        std::os::unix::fs::symlink("short", m.path(&format!("{dir}/link"))).unwrap();
    }
    // Every node known to the kernel, then the tree moved twice.
    let _ = fs::read_dir(m.path(&format!("a/{long}/c")))
        .unwrap()
        .count();
    fs::rename(m.path("a"), m.path("b")).unwrap();
    fs::rename(m.path(&format!("b/{long}")), m.path("b/moved")).unwrap();
    assert_eq!(fs::read(m.path("b/moved/c/short")).unwrap(), b"s");
    fs::remove_file(m.path("b/moved/short")).unwrap();
    assert!(!m.path("b/moved/short").exists());
    fs::remove_dir_all(m.path("b")).unwrap();
    assert!(fs::read_dir(&m.mnt).unwrap().next().is_none());
    let mut after = Vec::new();
    every_entry(&fx.cipher, &mut after);
    assert_eq!(after, before);
}
