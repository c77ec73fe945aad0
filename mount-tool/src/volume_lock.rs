//! Who is using a volume: a mount holds a shared `flock` on its cipher
//! directory for as long as it serves; an offline job that changes the
//! volume (rewrap, rekey, migrate, `fsck --repair`, upgrade-config) holds
//! an exclusive one; a read-only check (`fsck`) a shared one. A conflicting
//! holder is waited for up to [`WAIT`] (a mount process still wrapping its
//! last new files' keys for a moment after `kmsfs unmount` returned), then
//! refused: a mount started while a job runs, or a job started while a
//! mount comes up (before it shows in /proc/mounts), fails with one line
//! instead of racing the other. The lock is on the directory itself: no
//! file is added to the volume.
//!
//! Where the backing filesystem has no `flock` (some network filesystems
//! answer ENOLCK or EOPNOTSUPP), the lock is skipped with a warning and the
//! /proc/mounts check (`fsck::refuse_if_mounted`) is all that guards.

use crate::exit::CliError;
use rustix::fs::FlockOperation;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a conflicting holder is waited for before refusing.
pub const WAIT: Duration = Duration::from_secs(10);

/// Held while it lives; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct VolumeLock {
    _dir: Option<File>,
}

/// What takes the lock, for the lock mode and the refusal's wording.
#[derive(Debug, Clone, Copy)]
pub enum User<'a> {
    /// A mount: shared with other mounts (several hosts, or read-only
    /// mounts), refused while a job runs.
    Mount,
    /// A job that only reads (`fsck`): shared.
    Reader(&'a str),
    /// A job that changes the volume: exclusive.
    Job(&'a str),
}

impl VolumeLock {
    /// Takes the lock on `cipherdir` for `user`, or refuses with one line.
    pub fn take(cipherdir: &Path, user: User<'_>) -> Result<VolumeLock, CliError> {
        VolumeLock::take_within(cipherdir, user, WAIT)
    }

    fn take_within(
        cipherdir: &Path,
        user: User<'_>,
        wait: Duration,
    ) -> Result<VolumeLock, CliError> {
        let dir =
            File::open(cipherdir).map_err(|e| CliError::io(cipherdir.display().to_string(), e))?;
        let op = match user {
            User::Job(_) => FlockOperation::NonBlockingLockExclusive,
            User::Mount | User::Reader(_) => FlockOperation::NonBlockingLockShared,
        };
        let deadline = Instant::now() + wait;
        let mut res = rustix::fs::flock(&dir, op);
        while res == Err(rustix::io::Errno::WOULDBLOCK) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            res = rustix::fs::flock(&dir, op);
        }
        match res {
            Ok(()) => Ok(VolumeLock { _dir: Some(dir) }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(CliError::Usage(match user {
                User::Mount => format!(
                    "{} is in use by an offline kmsfs job (rewrap, rekey, migrate, fsck \
                     --repair or upgrade-config): mount it when that job has finished",
                    cipherdir.display()
                ),
                User::Reader(what) | User::Job(what) => format!(
                    "{} is in use by a mount that is starting or by another kmsfs job: \
                     {what} works on an unmounted volume that nothing else uses",
                    cipherdir.display()
                ),
            })),
            Err(e) => {
                log::warn!(
                    "{}: cannot lock the cipher directory ({e}); nothing but the list of \
                     mounts guards against a mount and an offline job at once",
                    cipherdir.display()
                );
                Ok(VolumeLock { _dir: None })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(d: &Path, user: User<'_>) -> Result<VolumeLock, CliError> {
        VolumeLock::take_within(d, user, Duration::ZERO)
    }

    #[test]
    fn mounts_share_jobs_exclude() {
        let d = tempfile::tempdir().unwrap();
        let m1 = take(d.path(), User::Mount).unwrap();
        let m2 = take(d.path(), User::Mount).unwrap();
        let r = take(d.path(), User::Reader("fsck")).unwrap();
        let e = take(d.path(), User::Job("rekey")).unwrap_err();
        assert!(
            e.to_string().contains("rekey works on an unmounted volume"),
            "{e}"
        );
        drop((m1, m2, r));
        let job = take(d.path(), User::Job("rekey")).unwrap();
        let e = take(d.path(), User::Mount).unwrap_err();
        assert!(
            e.to_string().contains("in use by an offline kmsfs job"),
            "{e}"
        );
        assert!(take(d.path(), User::Job("rewrap")).is_err());
        assert!(take(d.path(), User::Reader("fsck")).is_err());
        drop(job);
        take(d.path(), User::Mount).unwrap();
    }

    #[test]
    fn a_holder_that_lets_go_soon_is_waited_for() {
        let d = tempfile::tempdir().unwrap();
        let mount = take(d.path(), User::Mount).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(mount);
        });
        VolumeLock::take_within(d.path(), User::Job("rewrap"), Duration::from_secs(20)).unwrap();
        t.join().unwrap();
    }
}
