//! `lseek(SEEK_DATA | SEEK_HOLE)` on one backing file, at block
//! granularity, answering as tmpfs and ext4 do: ENXIO at or past the end
//! and for `SEEK_DATA` in a trailing hole, the end of the file as the hole
//! after the last data.
//!
//! A block before the last is a hole when its stored bytes are all zero
//! (docs/file-format.md, "Holes"). Most holes show as holes of the backing
//! file: a stored range that meets one is a hole. A one-block hole between
//! two data blocks can lie entirely in backing pages its neighbours
//! allocated (a stored block is 28 bytes longer than a page); such a block
//! is told by its all-zero nonce, which no sealed block has. The last block
//! is a hole when the file may hold holes and its plaintext is all zeros
//! (what a truncate up leaves). Format-1 files and format-2 files whose end
//! mark allows no holes are data throughout.

use super::BlockIo;
use crate::crypto::NONCE_LEN;
use crate::format::HEADER_LEN;
use crate::fuse::errno::{FsError, FsResult};
use std::os::unix::fs::FileExt;

/// Where `lseek` looks: the next data or the next hole.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Seek {
    Data,
    Hole,
}

impl BlockIo<'_> {
    /// `lseek(SEEK_DATA | SEEK_HOLE)` from plaintext `offset`.
    pub fn seek(&self, offset: u64, what: Seek) -> FsResult<u64> {
        let (size, cipher_size) = self.sizes()?;
        if offset >= size {
            return Err(FsError::NoSuchOffset);
        }
        let dense = match what {
            Seek::Data => offset,
            Seek::Hole => size,
        };
        if self.v1() {
            return Ok(dense);
        }
        let eb = self.end_block(size)?;
        if !eb.sparse {
            return Ok(dense);
        }
        let last = eb.index;
        let tail_is_hole = eb.plain.iter().all(|&x| x == 0);
        let b = self.b();
        let first = offset / b;
        let at = |j: u64| offset.max(j * b);
        match what {
            Seek::Data => match self.next_data(first, last)? {
                Some(j) => Ok(at(j)),
                None if tail_is_hole => Err(FsError::NoSuchOffset),
                None => Ok(at(last)),
            },
            Seek::Hole => match self.next_hole(first, last, cipher_size)? {
                Some(j) => Ok(at(j)),
                None if tail_is_hole => Ok(at(last)),
                None => Ok(size),
            },
        }
    }

    /// The first data block in `from .. last` (the last block excluded).
    fn next_data(&self, from: u64, last: u64) -> FsResult<Option<u64>> {
        let layout = self.layout();
        let mut i = from;
        while i < last {
            let Some(data) = self.backing_seek(layout.block_cipher_offset(i), Seek::Data)? else {
                return Ok(None);
            };
            // The page holding `data` may begin in the stored range of the
            // hole before a data block: that block is checked, not assumed.
            let j = self.block_at(data).max(i);
            if j >= last {
                return Ok(None);
            }
            if !self.is_hole(j)? {
                return Ok(Some(j));
            }
            i = j + 1;
        }
        Ok(None)
    }

    /// The first hole block in `from .. last` (the last block excluded).
    fn next_hole(&self, from: u64, last: u64, cipher_size: u64) -> FsResult<Option<u64>> {
        if from >= last {
            return Ok(None);
        }
        let start = self.layout().block_cipher_offset(from);
        let hole = self.backing_seek(start, Seek::Hole)?.unwrap_or(cipher_size);
        // Blocks before the one the backing hole starts in lie in backing
        // data: only a one-block hole sharing its neighbours' pages can be
        // among them.
        let j = self.block_at(hole).max(from);
        for k in from..j.min(last) {
            if self.zero_nonce(k)? {
                return Ok(Some(k));
            }
        }
        Ok((j < last).then_some(j))
    }

    /// Whether block `j` (not the last) is a hole: its stored range meets
    /// a hole of the backing file, or its nonce is all zeros.
    fn is_hole(&self, j: u64) -> FsResult<bool> {
        let layout = self.layout();
        let start = layout.block_cipher_offset(j);
        let end = layout.block_cipher_offset(j + 1);
        match self.backing_seek(start, Seek::Hole)? {
            Some(h) if h < end => Ok(true),
            _ => self.zero_nonce(j),
        }
    }

    /// Whether the first bytes of block `j`'s stored range (its nonce) are
    /// all zero.
    fn zero_nonce(&self, j: u64) -> FsResult<bool> {
        let mut nonce = [0u8; NONCE_LEN];
        self.file
            .read_exact_at(&mut nonce, self.layout().block_cipher_offset(j))?;
        Ok(nonce.iter().all(|&x| x == 0))
    }

    /// The block whose stored range holds backing offset `c` (past the
    /// header).
    fn block_at(&self, c: u64) -> u64 {
        c.saturating_sub(HEADER_LEN as u64) / self.layout().stored_block_size()
    }

    /// `lseek` on the backing file; `None` for ENXIO (nothing after).
    fn backing_seek(&self, at: u64, what: Seek) -> FsResult<Option<u64>> {
        use rustix::fs::{SeekFrom, seek};
        let from = match what {
            Seek::Data => SeekFrom::Data(at),
            Seek::Hole => SeekFrom::Hole(at),
        };
        match seek(self.file, from) {
            Ok(p) => Ok(Some(p)),
            Err(e) if e == rustix::io::Errno::NXIO => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
