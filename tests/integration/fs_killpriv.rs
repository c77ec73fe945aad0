//! Set-user-id and set-group-id bits on a kmsfs mount negotiated with
//! FUSE_HANDLE_KILLPRIV_V2: kmsfs itself must drop them when an
//! unprivileged caller writes to or truncates a file, as Linux does, and
//! keep them for root.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Fixture;
use kmsfs::format::NamesMode;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// An unprivileged uid with no entry needed in /etc/passwd.
const UID: u32 = 4242;

/// Runs `sh -c script` as [`UID`] with `$1` = `p`.
fn as_user(script: &str, p: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(p)
        .current_dir("/")
        .uid(UID)
        .gid(UID)
        .output()
        .unwrap()
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn unprivileged_write_and_truncate_drop_suid_and_sgid_root_keeps_them() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    fx.allow_everyone_file_access();
    // Other uids must reach the mountpoint inside the temp dir.
    fs::set_permissions(fx.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let m = fx.mount();
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o755)).unwrap();

    let f = m.path("prog");
    fs::write(&f, b"#!/bin/sh\n").unwrap();
    // Group-executable: set-group-id means "run as group", and goes too.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6777)).unwrap();
    assert_eq!(mode_of(&f), 0o6777);

    // Root writes: CAP_FSETID keeps both bits.
    fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .and_then(|mut h| std::io::Write::write_all(&mut h, b"echo root\n"))
        .unwrap();
    assert_eq!(mode_of(&f), 0o6777);

    // An unprivileged write drops both.
    let out = as_user(r#"printf 'echo user\n' >> "$1""#, &f);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode_of(&f), 0o0777);
    assert_eq!(
        fs::read(&f).unwrap(),
        b"#!/bin/sh\necho root\necho user\n".to_vec()
    );

    // An unprivileged truncate drops them as well.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6777)).unwrap();
    let out = as_user(r#"truncate -s 3 "$1""#, &f);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode_of(&f), 0o0777);
    assert_eq!(fs::read(&f).unwrap(), b"#!/".to_vec());

    // Set-group-id without group execute (mandatory-locking mark) stays.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6766)).unwrap();
    let out = as_user(r#"printf x >> "$1""#, &f);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode_of(&f), 0o2766);
    m.unmount();
}
