//! `kmsfs unmount MOUNTPOINT`: detach a kmsfs mount.

use crate::exit::CliError;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct UnmountArgs {
    /// The mount point
    pub mountpoint: PathBuf,
    /// Detach even if busy (lazy unmount)
    #[arg(long)]
    pub lazy: bool,
}

pub fn run(args: UnmountArgs) -> Result<(), CliError> {
    let mp = match std::fs::canonicalize(&args.mountpoint) {
        Ok(p) => p,
        // A dead FUSE mount (its process was killed) cannot be resolved:
        // take the path as given, made absolute.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => std::path::absolute(&args.mountpoint)
            .map_err(|e| CliError::io(format!("{}", args.mountpoint.display()), e))?,
        Err(e) => return Err(CliError::io(format!("{}", args.mountpoint.display()), e)),
    };
    if !kmsfs::fuse::status::is_mounted(&mp) {
        return Err(CliError::Mount(format!(
            "{} is not a kmsfs mount",
            mp.display()
        )));
    }
    let flags = if args.lazy {
        nix::mount::MntFlags::MNT_DETACH
    } else {
        nix::mount::MntFlags::empty()
    };
    match nix::mount::umount2(&mp, flags) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            // Not root: the setuid helper unmounts FUSE mounts owned by the caller.
            let mut cmd = std::process::Command::new("fusermount3");
            cmd.arg("-u");
            if args.lazy {
                cmd.arg("-z");
            }
            let status = cmd
                .arg(&mp)
                .status()
                .map_err(|e| CliError::io("running fusermount3", e))?;
            if status.success() {
                Ok(())
            } else {
                Err(CliError::Mount(format!(
                    "fusermount3 -u {} failed ({status})",
                    mp.display()
                )))
            }
        }
        Err(e) => Err(CliError::Mount(format!(
            "unmounting {} failed: {e}",
            mp.display()
        ))),
    }
}
