//! POSIX ACLs and `trusted.*` attributes on a real `--allow-other` mount,
//! used by root and by the test accounts through `setfacl`/`getfacl` and
//! python's xattr calls: the kernel enforces an ACL kmsfs stores, a chmod
//! changes the ACL's mask, a new entry inherits its directory's default
//! ACL and the umask applies only without one, `trusted.*` is root's, and
//! none of it shows in the backing directory in plaintext.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::fs_identity::{ALICE, BOB, STAFF, accounts, root_or_skip};

use common::{Fixture, Mounted, have};
use kmsfs::format::NamesMode;
use kmsfs::fuse::FsOptions;
use kmsfs::keys::KeyService;
use kmsfs::volume::Volume;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

/// Runs `cmd args` as `user` (a login's groups), or as root for `None`,
/// from `/`.
fn run(user: Option<&str>, cmd: &str, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    match user {
        Some(u) => c.args(["--reuid", u, "--regid", u, "--init-groups"]),
        None => c.args(["--reuid", "0"]),
    };
    c.args(["--", cmd])
        .args(args)
        .current_dir("/")
        .output()
        .unwrap()
}

/// `sh -c script` as `user` (or root); the script's stdout, or a panic.
fn sh(user: Option<&str>, script: &str) -> String {
    let out = run(user, "sh", &["-c", script]);
    assert!(
        out.status.success(),
        "{user:?}: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `user` can read `p`.
fn can_read(user: &str, p: &Path) -> bool {
    let out = run(Some(user), "cat", &[p.to_str().unwrap()]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Permission denied"), "{user} cat: {err}");
    }
    out.status.success()
}

/// `getfacl -c` (no header) of `p`, as root.
fn getfacl(args: &str, p: &Path) -> String {
    sh(None, &format!("getfacl -cp {args} '{}'", p.display()))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// A python xattr call as `user`: prints the value, the list, or the
/// errno name.
fn py_xattr(user: &str, call: &str) -> String {
    let script = format!(
        "import os, errno\ntry:\n    r = {call}\n    print(r)\nexcept OSError as e:\n    print(errno.errorcode[e.errno])"
    );
    let out = run(Some(user), "/usr/bin/python3", &["-c", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The backing xattr names and values of every file below `dir`, as text.
fn backing_xattrs(dir: &Path) -> String {
    let out = Command::new("getfattr")
        .args(["-R", "-d", "-m", "-", "-e", "text"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup() -> Option<(Fixture, Mounted)> {
    if !root_or_skip("fs_acl") || !have("setfacl") || !have("getfattr") {
        eprintln!("SKIP fs_acl: needs root, setfacl (acl) and getfattr (attr)");
        return None;
    }
    accounts();
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    fx.allow_everyone_file_access();
    let m = fx.mount();
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o755)).unwrap();
    Some((fx, m))
}

#[test]
fn trusted_xattrs_are_root_only_and_stored_encrypted() {
    let Some((fx, m)) = setup() else { return };
    let f = m.path("f");
    fs::write(&f, b"x").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
    let p = f.display();
    sh(None, &format!("setfattr -n trusted.colour -v marone '{p}'"));
    sh(None, &format!("setfattr -n user.colour -v beige '{p}'"));
    let root_sees = sh(None, &format!("getfattr -d -m - '{p}'"));
    assert!(
        root_sees.contains("trusted.colour=\"marone\""),
        "{root_sees}"
    );
    assert!(root_sees.contains("user.colour=\"beige\""), "{root_sees}");
    // Others: not listed, ENODATA to read, EPERM to write or remove.
    let call = |c: &str| py_xattr(ALICE, &c.replace("P", &format!("'{p}'")));
    assert_eq!(call("os.listxattr(P)"), "['user.colour']");
    assert_eq!(call("os.getxattr(P, 'trusted.colour')"), "ENODATA");
    assert_eq!(call("os.setxattr(P, 'trusted.x', b'1')"), "EPERM");
    assert_eq!(call("os.removexattr(P, 'trusted.colour')"), "EPERM");
    assert_eq!(call("os.getxattr(P, 'user.colour')"), "b'beige'");
    // Remove and replace as root; a large value (generic/403).
    let big = "a".repeat(512);
    sh(None, &format!("setfattr -n trusted.big -v {big} '{p}'"));
    sh(None, &format!("setfattr -x trusted.big '{p}'"));
    let out = run(None, "getfattr", &["-n", "trusted.big", &p.to_string()]);
    assert!(!out.status.success());
    // At rest: names and values encrypted, no namespace visible.
    let at_rest = backing_xattrs(&fx.cipher);
    for plain in ["trusted", "colour", "marone", "beige"] {
        assert!(!at_rest.contains(plain), "{plain} in {at_rest}");
    }
    // Kept across a remount.
    m.unmount();
    let m = fx.mount();
    let again = sh(
        None,
        &format!("getfattr -n trusted.colour '{}'", m.path("f").display()),
    );
    assert!(again.contains("marone"), "{again}");
    m.unmount();
    fsck_clean(&fx);
}

/// `kmsfs fsck` of the volume finds no problem (every stored attribute
/// name decrypts and every value opens).
fn fsck_clean(fx: &Fixture) {
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let vol = Volume::open(&fx.cipher, &ks, &common::root()).unwrap();
    let report = kmsfs::fsck::check(&vol, ks.as_ref(), &common::root()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn acls_are_enforced_follow_chmod_and_are_inherited() {
    let Some((fx, m)) = setup() else { return };
    let f = m.path("f");
    fs::write(&f, b"secret\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!can_read(ALICE, &f));
    // A named user entry: the kernel lets alice in, not bob.
    sh(None, &format!("setfacl -m u:{ALICE}:r '{}'", f.display()));
    assert!(can_read(ALICE, &f));
    assert!(!can_read(BOB, &f));
    assert_eq!(mode(&f), 0o640, "the group bits show the mask");
    let acl = getfacl("", &f);
    assert!(acl.contains(&format!("user:{ALICE}:r--")), "{acl}");
    assert!(acl.contains("mask::r--"), "{acl}");
    // chmod sets the mask: alice's entry is no longer effective.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(getfacl("", &f).contains("mask::---"));
    assert!(!can_read(ALICE, &f));
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(can_read(ALICE, &f));
    // An ACL that says no more than a mode is only a mode.
    sh(None, &format!("setfacl -b '{}'", f.display()));
    assert!(!can_read(ALICE, &f));
    assert!(!getfacl("", &f).contains("mask"));

    // Default ACL: inherited by files and directories, umask ignored.
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    sh(
        None,
        &format!("setfacl -d -m u:{BOB}:rwx '{}'", d.display()),
    );
    sh(
        None,
        &format!(
            "umask 077; echo hi > '{0}/new'; mkdir '{0}/sub'",
            d.display()
        ),
    );
    let new = d.join("new");
    assert_eq!(
        mode(&new),
        0o664,
        "0666 masked by the default ACL, no umask"
    );
    assert!(getfacl("", &new).contains(&format!("user:{BOB}:rwx\t#effective:rw-")));
    assert!(can_read(BOB, &new));
    let sub = d.join("sub");
    assert!(getfacl("-d", &sub).contains(&format!("user:{BOB}:rwx")));
    // Without a default ACL the umask applies.
    sh(
        None,
        &format!("umask 027; touch '{}'", m.path("plain").display()),
    );
    assert_eq!(mode(&m.path("plain")), 0o640);

    // A test user manages the ACL of her own file; bob cannot.
    let w = m.path("w");
    fs::create_dir(&w).unwrap();
    fs::set_permissions(&w, fs::Permissions::from_mode(0o1777)).unwrap();
    let hers = w.join("hers");
    sh(
        Some(ALICE),
        &format!(
            "umask 077; echo mine > '{0}'; setfacl -m u:{BOB}:r '{0}'",
            hers.display()
        ),
    );
    assert!(can_read(BOB, &hers));
    let out = run(
        Some(BOB),
        "setfacl",
        &["-m", &format!("u:{BOB}:rw"), hers.to_str().unwrap()],
    );
    assert!(!out.status.success(), "bob changed alice's ACL");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));

    // Kept across a remount; nothing readable at rest.
    m.unmount();
    let at_rest = backing_xattrs(&fx.cipher);
    assert!(!at_rest.contains("posix_acl"), "{at_rest}");
    let m = fx.mount();
    assert!(can_read(BOB, &m.path("w/hers")));
    assert!(getfacl("-d", &m.path("d")).contains(&format!("user:{BOB}:rwx")));
    m.unmount();
    fsck_clean(&fx);

    // A single-user mount has no ACLs (no default_permissions).
    let m = fx.mount_with(FsOptions::default(), false);
    let out = run(
        None,
        "setfacl",
        &["-m", "u:0:r", m.path("f").to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not supported"));
    m.unmount();
}

/// A setfacl that rewrites the mode drops set-group-id when its caller is
/// neither root nor in the file's group, primary or supplementary (as
/// Linux does; xfstests generic/375), for files and directories.
#[test]
fn setfacl_outside_the_files_group_drops_set_group_id() {
    let Some((fx, m)) = setup() else { return };
    let w = m.path("w");
    fs::create_dir(&w).unwrap();
    fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
    // (group, alice is in it, directory)
    let cases = [
        (ALICE, true, false),
        (STAFF, true, false),
        (BOB, false, false),
        (ALICE, true, true),
        (BOB, false, true),
    ];
    for (i, &(group, member, dir)) in cases.iter().enumerate() {
        let p = w.join(format!("e{i}"));
        if dir {
            fs::create_dir(&p).unwrap();
        } else {
            fs::write(&p, b"x").unwrap();
        }
        let p = p.display();
        sh(
            None,
            &format!("chown {ALICE}:{group} '{p}'; chmod 2755 '{p}'"),
        );
        sh(
            Some(ALICE),
            &format!("setfacl -m u::rwx,g::rwx,o::rwx '{p}'"),
        );
        let want = if member { 0o2777 } else { 0o777 };
        let what = format!("{group} {}", if dir { "dir" } else { "file" });
        assert_eq!(mode(Path::new(&p.to_string())), want, "{what}");
        // Root keeps it, in any group.
        sh(
            None,
            &format!("chmod 2755 '{p}'; setfacl -m u::rwx,g::rwx,o::rwx '{p}'"),
        );
        assert_eq!(mode(Path::new(&p.to_string())), 0o2777, "{what}, by root");
    }
    m.unmount();
    fsck_clean(&fx);
}
