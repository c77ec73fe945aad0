//! Size changes and holes on one backing file: truncate up and down (and
//! to zero, which converts a format-1 file to format 2), punching and
//! zeroing ranges and allocation.

use super::{BlockIo, EndBlock, ZERO_CHUNK};
use crate::content::BlockMark;
use crate::format::{HEADER_FORMAT_VERSION, HEADER_LEN, VERSION_OFFSET};
use crate::fuse::errno::{FsError, FsResult};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use zeroize::Zeroizing;

impl BlockIo<'_> {
    /// Sets the plaintext size to `new_size`: zero converts the file to
    /// format 2; growing a format-2 file leaves a hole and writes only the
    /// new last block; a size beyond the format's limit is EFBIG, and
    /// nothing is written then.
    pub fn truncate(&self, new_size: u64) -> FsResult<()> {
        self.tail.clear();
        if new_size > self.layout().max_plain_size() {
            return Err(FsError::TooBig);
        }
        let (size, cipher_size) = self.sizes()?;
        if new_size == 0 {
            return if size == 0 && !self.v1() {
                Ok(())
            } else {
                self.make_empty()
            };
        }
        if new_size == size {
            return Ok(());
        }
        if new_size > size {
            if self.v1() {
                // Dense: the zeros are written, as format 1 has no holes.
                return self.write_v1(new_size, &[], size, new_size);
            }
            // Only the new last block (or the old one, grown) is written.
            let at = size.max(self.last_index(new_size) * self.b());
            let zeros = Zeroizing::new(vec![0u8; (new_size - at) as usize]);
            return self.write_v2(at, &zeros, size, cipher_size, new_size);
        }
        self.shrink(size, new_size)
    }

    /// Empties the file: the header and, in format 2, the empty end block.
    /// A format-1 file is converted: only the version field of the header
    /// changes (a rename writing the header concurrently keeps it, see
    /// `rename::apply_header`), after the end block is in place.
    fn make_empty(&self) -> FsResult<()> {
        let empty = self
            .cipher
            .seal_block(0, BlockMark::Last { sparse: false }, &[])
            .map_err(|e| self.damaged(e))?;
        self.file.set_len(HEADER_LEN as u64)?;
        self.file.write_all_at(&empty, HEADER_LEN as u64)?;
        if self.v1() {
            self.file
                .write_all_at(&HEADER_FORMAT_VERSION.to_be_bytes(), VERSION_OFFSET)?;
            self.version.store(HEADER_FORMAT_VERSION, Ordering::Release);
            log::debug!("{}: converted to content format 2", (self.path)());
        }
        Ok(())
    }

    /// Shrinks a non-empty file to `new_size` (> 0): the block that becomes
    /// the last is sealed again, cut and with the end mark, then the
    /// backing file is cut after it.
    fn shrink(&self, size: u64, new_size: u64) -> FsResult<()> {
        let layout = self.layout();
        let b = self.b();
        let idx = self.last_index(new_size);
        let len = (new_size - idx * b) as usize;
        if self.v1() && len == b as usize {
            self.file.set_len(layout.cipher_size(new_size))?;
            return Ok(());
        }
        let eb = self.end_block(size)?;
        let mut plain = Zeroizing::new(vec![0u8; len]);
        if idx == eb.index {
            plain.copy_from_slice(&eb.plain[..len]);
        } else {
            let mut full = Zeroizing::new(vec![0u8; b as usize]);
            let mut stored = Vec::new();
            self.read_block_into(idx, size, &mut Some(eb.sparse), &mut stored, &mut full)?;
            plain.copy_from_slice(&full[..len]);
        }
        let mark = BlockMark::at(self.version(), idx, idx, eb.sparse);
        let sealed = self
            .cipher
            .seal_block(idx, mark, &plain)
            .map_err(|e| self.damaged(e))?;
        let at = layout.block_cipher_offset(idx);
        // The block may be a hole: reserve it so a full disk fails cleanly.
        self.reserve(at, sealed.len() as u64)?;
        self.file.write_all_at(&sealed, at)?;
        self.file.set_len(layout.cipher_size(new_size))?;
        Ok(())
    }

    /// Zeroes plaintext bytes `offset .. offset + len` inside the file
    /// (FALLOC_FL_PUNCH_HOLE, and the first step of ZERO_RANGE): whole
    /// blocks before the last become holes in the backing file (the end
    /// mark first says the file may hold holes); partial blocks and the
    /// last block are written as sealed zeros. A format-1 file gets sealed
    /// zeros throughout.
    pub fn punch(&self, offset: u64, len: u64) -> FsResult<()> {
        self.tail.clear();
        let (size, _) = self.sizes()?;
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(());
        }
        let b = self.b();
        let first_whole = offset.div_ceil(b);
        let end_whole = (end / b).min(self.last_index(size));
        if self.v1() || first_whole >= end_whole {
            return self.write_zeros(offset, end);
        }
        let eb = self.end_block(size)?;
        if !eb.sparse {
            self.mark_sparse(&eb)?;
        }
        let layout = self.layout();
        let from = layout.block_cipher_offset(first_whole);
        let to = layout.block_cipher_offset(end_whole);
        self.punch_backing(from, to - from)?;
        self.write_zeros(offset, first_whole * b)?;
        self.write_zeros(end_whole * b, end)
    }

    /// Seals the last block again with the end mark that allows holes.
    fn mark_sparse(&self, eb: &EndBlock) -> FsResult<()> {
        let sealed = self
            .cipher
            .seal_block(eb.index, BlockMark::Last { sparse: true }, &eb.plain)
            .map_err(|e| self.damaged(e))?;
        self.file
            .write_all_at(&sealed, self.layout().block_cipher_offset(eb.index))?;
        Ok(())
    }

    /// Makes backing bytes `from .. from + len` a hole; where the backing
    /// filesystem cannot punch, they are written as zeros (which read the
    /// same).
    pub(super) fn punch_backing(&self, from: u64, len: u64) -> FsResult<()> {
        use rustix::fs::{FallocateFlags, fallocate};
        use rustix::io::Errno;
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match fallocate(self.file, flags, from, len) {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => {
                let zeros = vec![0u8; ZERO_CHUNK as usize];
                let mut at = from;
                while at < from + len {
                    let n = (from + len - at).min(ZERO_CHUNK) as usize;
                    self.file.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes sealed zeros over plaintext bytes `from .. to`, in pieces.
    fn write_zeros(&self, from: u64, to: u64) -> FsResult<()> {
        let zeros = vec![0u8; ZERO_CHUNK as usize];
        let mut at = from;
        while at < to {
            let n = (to - at).min(ZERO_CHUNK) as usize;
            self.write(at, &zeros[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    /// Reserves backing space for plaintext bytes `offset .. offset + len`
    /// (fallocate mode 0 and KEEP_SIZE, and the last step of ZERO_RANGE);
    /// unless `keep_size`, grows the file to cover them. Reserved space in
    /// a hole still reads as zeros (the filesystem's unwritten extents), so
    /// holes stay holes.
    pub fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> FsResult<()> {
        self.tail.clear();
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.layout().max_plain_size())
            .ok_or(FsError::TooBig)?;
        let layout = self.layout();
        let from = layout.block_cipher_offset(offset / self.b());
        let to = layout.cipher_size(end);
        self.reserve(from, to.saturating_sub(from))?;
        let (size, _) = self.sizes()?;
        if !keep_size && end > size {
            self.truncate(end)?;
        }
        Ok(())
    }

    /// FALLOC_FL_ZERO_RANGE: zeroes the range (holes where whole blocks
    /// are), grows the file over it unless `keep_size`, and reserves its
    /// backing space.
    pub fn zero_range(&self, offset: u64, len: u64, keep_size: bool) -> FsResult<()> {
        self.tail.clear();
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.layout().max_plain_size())
            .ok_or(FsError::TooBig)?;
        self.punch(offset, len)?;
        self.allocate(offset, end - offset, keep_size)
    }
}
