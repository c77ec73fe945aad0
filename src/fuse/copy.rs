//! copy_file_range: copies a byte range between two open files of the mount
//! (or within one) by decrypting blocks of the source and encrypting them
//! into the destination through the ordinary block path ([`BlockIo`](super::blockio::BlockIo)), so
//! the copy gets the destination's own key and file id, never the source's
//! ciphertext.
//!
//! The kernel has already refused what the system call refuses (flags other
//! than 0, overlapping ranges of one file, an append-only destination); the
//! checks are repeated here so that a request that gets through anyway is
//! refused the same way. The copy stops at the source's end of file and
//! copies at most [`MAX_COPY`] bytes per request: a short copy is allowed,
//! and the caller (cp, the C library) asks again for the rest.

use super::errno::{FsError, FsResult};
use super::{Core, OpenFile};
use std::sync::Arc;

/// Largest range one request copies (and holds the files locked for).
pub const MAX_COPY: u64 = 64 << 20;
/// Bytes decrypted and re-encrypted per step.
const CHUNK: u64 = 1 << 20;

impl Core {
    /// Copies up to `len` bytes from `off_in` of handle `fh_in` to `off_out`
    /// of handle `fh_out`; returns how many were copied (0 at the source's
    /// end of file).
    pub(crate) fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u64,
    ) -> FsResult<u32> {
        self.check_writable()?;
        if flags != 0 {
            return Err(FsError::InvalidArgument);
        }
        let (src, dst) = (self.file_handle(fh_in)?, self.file_handle(fh_out)?);
        if !src.readable {
            return Err(FsError::Denied);
        }
        if dst.append {
            // As the system call: an O_APPEND destination is EBADF.
            return Err(std::io::Error::from_raw_os_error(libc::EBADF).into());
        }
        let len = len.min(MAX_COPY);
        let end_in = off_in.checked_add(len).ok_or(FsError::InvalidArgument)?;
        off_out.checked_add(len).ok_or(FsError::TooBig)?;
        let same = Arc::ptr_eq(&src.state, &dst.state);
        if same && off_out < end_in && off_in < off_out.saturating_add(len) {
            return Err(FsError::InvalidArgument);
        }
        // One lock per file, taken in inode order, so that copies in both
        // directions between two files cannot deadlock.
        let copied = if same {
            let _g = dst.state.io.write().map_err(|_| FsError::Stale)?;
            self.copy_locked(&src, off_in, &dst, off_out, len)?
        } else if src.ino < dst.ino {
            let _r = src.state.io.read().map_err(|_| FsError::Stale)?;
            let _w = dst.state.io.write().map_err(|_| FsError::Stale)?;
            self.copy_locked(&src, off_in, &dst, off_out, len)?
        } else {
            let _w = dst.state.io.write().map_err(|_| FsError::Stale)?;
            let _r = src.state.io.read().map_err(|_| FsError::Stale)?;
            self.copy_locked(&src, off_in, &dst, off_out, len)?
        };
        u32::try_from(copied).map_err(|_| FsError::InvalidArgument)
    }

    /// The copy itself, with both files locked.
    fn copy_locked(
        &self,
        src: &OpenFile,
        off_in: u64,
        dst: &OpenFile,
        off_out: u64,
        len: u64,
    ) -> FsResult<u64> {
        let src_path = || self.path_of(src.ino);
        let dst_path = || self.path_of(dst.ino);
        let from = src.io(&src_path);
        let to = dst.io(&dst_path);
        let (size_in, _) = from.sizes()?;
        let len = len.min(size_in.saturating_sub(off_in));
        let mut done = 0;
        while done < len {
            let data = from.read(off_in + done, CHUNK.min(len - done))?;
            if data.is_empty() {
                break;
            }
            to.write(off_out + done, &data)?;
            done += data.len() as u64;
        }
        Ok(done)
    }
}
