//! Who checks POSIX permissions on a real mount: a mount without
//! `--allow-other` drops the kernel's `default_permissions` (no GETATTR of
//! the parent after each create/unlink), so the kernel must still admit
//! only the mount owner, and kmsfs answers `access(2)` and the execute
//! check itself; an `--allow-other` mount keeps the kernel's checks for
//! every user, also on cached lookups that never reach kmsfs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Fixture;
use kmsfs::format::NamesMode;
use kmsfs::fuse::FsOptions;
use rustix::fs::Access;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

const NOBODY: u32 = 65534;

fn fixture() -> Fixture {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    // Other uids must reach the mountpoint inside the temp dir.
    fs::set_permissions(fx.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&fx.mnt, fs::Permissions::from_mode(0o755)).unwrap();
    fx
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `sh -c script` as `uid` (gid = uid) with `p` as `$1`.
fn as_uid(uid: u32, script: &str, p: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(p)
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap()
}

fn assert_denied(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what}: succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{what}: {err}");
}

fn access(p: &Path, a: Access) -> rustix::io::Result<()> {
    rustix::fs::access(p, a)
}

#[test]
fn single_user_mount_answers_access_and_exec_like_the_kernel() {
    let fx = fixture();
    let m = fx.mount_with(FsOptions::default(), false);
    let file = m.path("f");
    let dir = m.path("d");
    fs::write(&file, b"data").unwrap();
    fs::create_dir(&dir).unwrap();

    // Root (this test) may read and write anything, and search any directory.
    chmod(&file, 0o000);
    chmod(&dir, 0o000);
    access(&file, Access::READ_OK | Access::WRITE_OK).unwrap();
    access(&file, Access::EXISTS).unwrap();
    access(&dir, Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK).unwrap();
    fs::write(dir.join("inside"), b"x").unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"data");
    // ...but not execute a file without any execute bit.
    assert_eq!(
        access(&file, Access::EXEC_OK),
        Err(rustix::io::Errno::ACCESS)
    );
    chmod(&file, 0o644);
    assert_eq!(
        access(&file, Access::EXEC_OK),
        Err(rustix::io::Errno::ACCESS)
    );
    fs::write(&file, b"#!/bin/sh\nexit 7\n").unwrap();
    let err = Command::new(&file).status().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    // One execute bit (any class) is enough for root.
    chmod(&file, 0o010);
    access(&file, Access::EXEC_OK).unwrap();
    assert_eq!(Command::new(&file).status().unwrap().code(), Some(7));
    // A missing entry is ENOENT, not EACCES.
    assert_eq!(
        access(&m.path("missing"), Access::EXISTS),
        Err(rustix::io::Errno::NOENT)
    );
    m.unmount();
}

#[test]
fn single_user_mount_admits_only_its_owner() {
    let fx = fixture();
    let m = fx.mount_with(FsOptions::default(), false);
    let file = m.path("open");
    fs::write(&file, b"for everyone").unwrap();
    chmod(&file, 0o666);
    chmod(&m.path(""), 0o777);
    // Mode bits would allow it; the kernel refuses every other uid because
    // kmsfs checks permissions for the mount owner only.
    assert_denied(&as_uid(NOBODY, r#"cat "$1""#, &file), "cat as nobody");
    assert_denied(&as_uid(NOBODY, r#"ls "$1""#, &m.path("")), "ls as nobody");
    assert_eq!(fs::read(&file).unwrap(), b"for everyone");
    m.unmount();
}

#[test]
fn allow_other_mount_keeps_the_kernel_checks() {
    let fx = fixture();
    fx.allow_everyone_file_access();
    let m = fx.mount_with(FsOptions::default(), true);
    chmod(&m.path(""), 0o755);
    let dir = m.path("private");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), b"secret").unwrap();
    chmod(&dir.join("f"), 0o644);
    chmod(&dir, 0o700);
    // Root looks the file up, so the kernel has the dentry cached: a later
    // lookup by another uid does not reach kmsfs, only the kernel checks it.
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"secret");
    assert_denied(
        &as_uid(NOBODY, r#"cat "$1/f""#, &dir),
        "cat through 0700 dir",
    );
    let out = as_uid(NOBODY, r#"cd "$1" && echo inside"#, &dir);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "cd into 0700 dir"
    );
    // Readable file, but no write permission for others.
    let open = m.path("open");
    fs::write(&open, b"read me").unwrap();
    chmod(&open, 0o644);
    let out = as_uid(NOBODY, r#"cat "$1""#, &open);
    assert!(out.status.success(), "cat 0644 as nobody");
    assert_eq!(out.stdout, b"read me");
    assert_denied(
        &as_uid(NOBODY, r#"echo x >> "$1""#, &open),
        "append as nobody",
    );
    assert_denied(
        &as_uid(NOBODY, r#"rm -f "$1""#, &open),
        "unlink in 0755 dir",
    );
    assert_eq!(fs::read(&open).unwrap(), b"read me");
    m.unmount();
}
