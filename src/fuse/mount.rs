//! Mounting a volume: the mount's source is the cipher directory and its
//! type `fuse.kmsfs` ([`MOUNT_TYPE`]), so that `df`, `findmnt` and `umount`
//! tell volumes apart and kmsfs finds its own mounts by type and mount point.
//!
//! As root, kmsfs opens `/dev/fuse` and calls mount(2) itself (fuser's own
//! mount always uses the type `fuse`); otherwise `fusermount3` mounts, with
//! the `fsname` and `subtype` options, which gives the same result.

use super::{KmsFs, mount_config};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The subtype of every kmsfs mount.
pub const SUBTYPE: &str = "kmsfs";
/// The filesystem type /proc/mounts shows for a kmsfs mount.
pub const MOUNT_TYPE: &str = "fuse.kmsfs";

/// How a volume is mounted.
#[derive(Debug, Clone)]
pub struct MountSpec {
    /// The cipher directory: the mount's source.
    pub cipherdir: PathBuf,
    pub mountpoint: PathBuf,
    pub read_only: bool,
    pub allow_other: bool,
}

/// A mounted session, not yet serving. `own_mount`: the mount point when
/// kmsfs mounted it itself (fuser then does not unmount it).
#[derive(Debug)]
pub struct Mounted {
    pub session: fuser::Session<KmsFs>,
    own_mount: Option<PathBuf>,
}

/// A session served by a background thread; unmounted by
/// [`Background::umount_and_join`].
#[derive(Debug)]
pub struct Background {
    session: Option<fuser::BackgroundSession>,
    own_mount: Option<PathBuf>,
}

/// Mounts `fs` as `spec` says.
pub fn mount(fs: KmsFs, spec: &MountSpec) -> io::Result<Mounted> {
    let cfg = mount_config(spec.read_only, spec.allow_other);
    // POSIX ACLs come with the kernel's default_permissions, which only
    // --allow-other mounts have; INIT keeps this when the kernel agrees.
    fs.core
        .posix_acl
        .store(spec.allow_other, std::sync::atomic::Ordering::Release);
    if !rustix::process::geteuid().is_root() {
        let mut cfg = cfg;
        cfg.mount_options.extend([
            fuser::MountOption::FSName(fusermount_escape(&spec.cipherdir)),
            fuser::MountOption::Subtype(SUBTYPE.to_string()),
        ]);
        let session = fuser::Session::new(fs, &spec.mountpoint, &cfg)?;
        return Ok(Mounted {
            session,
            own_mount: None,
        });
    }
    let dev = rustix::fs::open(
        "/dev/fuse",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    mount_dev_fuse(&dev, spec)?;
    let acl = cfg.acl;
    match fuser::Session::from_fd(fs, dev, acl, cfg) {
        Ok(session) => Ok(Mounted {
            session,
            own_mount: Some(spec.mountpoint.clone()),
        }),
        Err(e) => {
            let _ = rustix::mount::unmount(&spec.mountpoint, rustix::mount::UnmountFlags::DETACH);
            Err(e)
        }
    }
}

/// mount(2) of the open `/dev/fuse` `dev` at the mount point.
fn mount_dev_fuse(dev: &OwnedFd, spec: &MountSpec) -> io::Result<()> {
    use rustix::mount::MountFlags;
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        dev.as_raw_fd(),
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    );
    if spec.allow_other {
        // As in `mount_config`: the kernel checks permissions for others.
        data.push_str(",default_permissions,allow_other");
    }
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME;
    if spec.read_only {
        flags |= MountFlags::RDONLY;
    }
    let data = std::ffi::CString::new(data).map_err(io::Error::other)?;
    rustix::mount::mount(
        spec.cipherdir.as_os_str(),
        &spec.mountpoint,
        MOUNT_TYPE,
        flags,
        data.as_c_str(),
    )?;
    Ok(())
}

/// `fusermount3 -o` splits options at commas and unescapes backslashes.
fn fusermount_escape(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if c == ',' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Mounted {
    /// Serves requests until the mount goes away; unmounts a mount kmsfs
    /// made itself when serving stops for another reason.
    pub fn run(self) -> io::Result<()> {
        let res = self.session.run();
        if let Some(mp) = &self.own_mount
            && super::status::is_mounted(mp)
        {
            let _ = rustix::mount::unmount(mp, rustix::mount::UnmountFlags::DETACH);
        }
        res
    }

    /// Serves requests in a background thread.
    pub fn spawn(self) -> io::Result<Background> {
        Ok(Background {
            session: Some(self.session.spawn()?),
            own_mount: self.own_mount,
        })
    }
}

impl Background {
    /// Unmounts and waits for the serving thread to end.
    pub fn umount_and_join(mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match self.own_mount.take() {
            Some(mp) => {
                rustix::mount::unmount(&mp, rustix::mount::UnmountFlags::empty())?;
                session.join()
            }
            None => session.umount_and_join(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.session.is_some()
            && let Some(mp) = &self.own_mount
        {
            // Without it the serving thread would wait for requests forever.
            let _ = rustix::mount::unmount(mp, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusermount_options_escape_commas_and_backslashes() {
        assert_eq!(fusermount_escape(Path::new("/a,b\\c d")), "/a\\,b\\\\c d");
    }
}
