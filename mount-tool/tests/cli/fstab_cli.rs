//! Boot integration through mount(8): `/sbin/mount.fuse.kmsfs` and
//! `/sbin/mount.kmsfs` (symlinks to the kmsfs binary, placed for the test
//! and removed after it) let `mount -T FSTAB -a` mount an fstab line of type
//! `fuse.kmsfs`, and `mount -t fuse.kmsfs ... -o ...` mount directly; the
//! mount is used, unmounted with umount(8), and bad options are refused.
//! The real /etc/fstab is never touched.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::mount_cli::{Env, MountGuard};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The helper symlinks in /sbin (where mount(8) looks for `mount.TYPE`),
/// held under a lock so two test processes never share them; removed on
/// drop. `None` when a helper that is not this build's is installed there.
struct Helpers {
    links: Vec<PathBuf>,
    _lock: std::fs::File,
}

impl Helpers {
    fn install() -> Option<Helpers> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("kmsfs-mount-helper-test.lock"))
            .unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_kmsfs"));
        let mut links = Vec::new();
        for name in ["mount.fuse.kmsfs", "mount.kmsfs"] {
            let link = Path::new("/sbin").join(name);
            match std::fs::read_link(&link) {
                Ok(t) if t == exe => {}
                Ok(_) => return None,
                Err(_) if link.exists() => return None,
                Err(_) => std::os::unix::fs::symlink(&exe, &link).unwrap(),
            }
            links.push(link);
        }
        Some(Helpers { links, _lock: lock })
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = std::fs::remove_file(l);
        }
    }
}

fn mount_cmd(args: &[&str]) -> Output {
    Command::new("mount").args(args).output().unwrap()
}

fn umount(mnt: &Path, guard: &MountGuard) {
    let out = Command::new("umount").arg(mnt).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    guard.wait_for_mount_process();
    assert!(!kmsfs::fuse::status::is_mounted(mnt));
}

/// The options of `mnt` in /proc/self/mounts.
fn mount_options(mnt: &Path) -> String {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap();
    kmsfs::fuse::status::kmsfs_mounts(&text)
        .into_iter()
        .find(|m| m.mountpoint == mnt)
        .map(|m| m.options)
        .unwrap_or_default()
}

#[test]
fn fstab_line_and_mount_t_fuse_kmsfs_through_mount8() {
    let Some(_helpers) = Helpers::install() else {
        eprintln!("skipped: another mount.kmsfs is installed in /sbin");
        return;
    };
    let env = Env::new();
    env.init_volume();
    std::fs::create_dir(&env.mnt).unwrap();
    let cipher = std::fs::canonicalize(&env.cipher).unwrap();
    let mnt = std::fs::canonicalize(&env.mnt).unwrap();
    let guard = MountGuard::new(&mnt);
    let fstab = env.tmp.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# a test fstab\n{} {} fuse.kmsfs defaults,passphrase_file={},engine={},allow_other,\
             _netdev,nofail,x-systemd.device-timeout=10s 0 0\n",
            cipher.display(),
            mnt.display(),
            env.pass.display(),
            env.engine.display()
        ),
    )
    .unwrap();

    // mount -a with the test fstab: mounted, usable, allow_other applied.
    let out = mount_cmd(&["-T", Env::s(&fstab), "-a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kmsfs::fuse::status::is_mounted(&mnt));
    assert!(
        mount_options(&mnt).contains("allow_other"),
        "{}",
        mount_options(&mnt)
    );
    std::fs::write(mnt.join("boot.txt"), b"mounted at boot").unwrap();
    assert_eq!(
        std::fs::read(mnt.join("boot.txt")).unwrap(),
        b"mounted at boot"
    );
    // A second mount -a sees it mounted and does nothing.
    let out = mount_cmd(&["-T", Env::s(&fstab), "-a"]);
    assert!(out.status.success());
    umount(&mnt, &guard);

    // mount -t fuse.kmsfs with -o, read-only this time.
    let opts = format!(
        "ro,passphrase_file={},engine={}",
        env.pass.display(),
        env.engine.display()
    );
    let out = mount_cmd(&[
        "-t",
        "fuse.kmsfs",
        Env::s(&cipher),
        Env::s(&mnt),
        "-o",
        &opts,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(mnt.join("boot.txt")).unwrap(),
        b"mounted at boot"
    );
    let err = std::fs::write(mnt.join("other.txt"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    umount(&mnt, &guard);

    // -t kmsfs finds mount.kmsfs; a mistake in the options is refused and
    // mounts nothing.
    let out = mount_cmd(&[
        "-t",
        "kmsfs",
        Env::s(&cipher),
        Env::s(&mnt),
        "-o",
        &format!("{opts},bogus=1"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown mount option \"bogus=1\""),
        "{stderr}"
    );
    assert!(!kmsfs::fuse::status::is_mounted(&mnt));
    let out = mount_cmd(&["-t", "kmsfs", Env::s(&cipher), Env::s(&mnt), "-o", &opts]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kmsfs::fuse::status::is_mounted(&mnt));
    umount(&mnt, &guard);
    // A wrong passphrase file: mount(8) passes kmsfs's exit code on.
    let bad = env.tmp.path().join("bad-pass");
    std::fs::write(&bad, "wrong\n").unwrap();
    let out = mount_cmd(&[
        "-t",
        "fuse.kmsfs",
        Env::s(&cipher),
        Env::s(&mnt),
        "-o",
        &format!(
            "passphrase_file={},engine={}",
            bad.display(),
            env.engine.display()
        ),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!kmsfs::fuse::status::is_mounted(&mnt));
}
