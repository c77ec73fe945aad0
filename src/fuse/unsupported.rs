//! FUSE requests kmsfs does not serve. fuser's default for each logs a
//! warning on every request (an fsstress run sent 22,772 ioctls); kmsfs
//! answers them with the errno the kernel expects and logs each kind once
//! per mount.

use std::sync::atomic::{AtomicBool, Ordering};

/// A kind of request kmsfs answers without serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// ioctl on a file: ENOTTY, as a file without ioctls gives.
    Ioctl,
    /// poll: ENOSYS, after which the kernel stops asking and reports the
    /// file always ready, as for a regular file.
    Poll,
    /// POSIX locks: only sent if kmsfs asked for FUSE_POSIX_LOCKS, which it
    /// does not (the kernel keeps locks locally).
    Getlk,
    Setlk,
    /// bmap: only for block-device mounts.
    Bmap,
}

impl Unsupported {
    const ALL: [Unsupported; 5] = [
        Unsupported::Ioctl,
        Unsupported::Poll,
        Unsupported::Getlk,
        Unsupported::Setlk,
        Unsupported::Bmap,
    ];

    /// The FUSE name of the request.
    pub fn name(self) -> &'static str {
        match self {
            Unsupported::Ioctl => "ioctl",
            Unsupported::Poll => "poll",
            Unsupported::Getlk => "getlk",
            Unsupported::Setlk => "setlk",
            Unsupported::Bmap => "bmap",
        }
    }

    /// The errno kmsfs answers with.
    pub fn errno(self) -> fuser::Errno {
        match self {
            Unsupported::Ioctl => fuser::Errno::ENOTTY,
            _ => fuser::Errno::ENOSYS,
        }
    }
}

/// One flag per [`Unsupported`] kind: set when it was logged.
#[derive(Debug, Default)]
pub struct UnsupportedLog {
    seen: [AtomicBool; Unsupported::ALL.len()],
}

impl UnsupportedLog {
    /// Logs the first request of `kind` (later ones silently) and returns
    /// the errno to answer with.
    pub fn answer(&self, kind: Unsupported, detail: std::fmt::Arguments<'_>) -> fuser::Errno {
        let errno = kind.errno();
        if !self.seen[kind as usize].swap(true, Ordering::Relaxed) {
            log::warn!(
                "{} requests are not supported (first: {detail}); answering {}, \
                 further ones are not logged",
                kind.name(),
                std::io::Error::from_raw_os_error(errno.code())
            );
        }
        errno
    }

    /// Whether a request of `kind` was answered (and logged) already.
    pub fn seen(&self, kind: Unsupported) -> bool {
        self.seen[kind as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_marked_once_and_has_its_errno() {
        let log = UnsupportedLog::default();
        for (i, k) in Unsupported::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert!(!log.seen(*k));
        }
        assert_eq!(
            log.answer(Unsupported::Ioctl, format_args!("cmd 1")),
            fuser::Errno::ENOTTY
        );
        assert!(log.seen(Unsupported::Ioctl) && !log.seen(Unsupported::Poll));
        assert_eq!(
            log.answer(Unsupported::Poll, format_args!("")),
            fuser::Errno::ENOSYS
        );
        assert!(log.seen(Unsupported::Poll));
    }
}
