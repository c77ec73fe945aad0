//! Block-level content I/O on one backing file: read, write at any offset
//! (read-modify-write of partial blocks, gaps filled with sealed zeros),
//! truncate up and down. Callers hold the inode's lock.
//!
//! Holes are not sparse: a gap is written as encrypted zero blocks, so every
//! block in a file authenticates and an attacker cannot make a zeroed block
//! read as zeros.

use crate::content::{ContentCipher, ContentError};
use crate::fuse::errno::{FsError, FsResult};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Largest amount of plaintext sealed in one piece while extending a file.
const EXTEND_CHUNK: u64 = 1 << 20;

/// Per-thread buffers of the write path, reused across requests so that a
/// write allocates nothing once a thread has served one write of its size.
#[derive(Default)]
struct Scratch {
    /// The sealed blocks of one write, written with one pwrite.
    out: Vec<u8>,
    /// One plaintext block being assembled (partial blocks only); wiped
    /// after every write so no plaintext outlives the request.
    block: Vec<u8>,
    /// One stored block read back for read-modify-write.
    stored: Vec<u8>,
}

/// Zeroes a plaintext buffer when dropped (also on an early `?` return).
struct WipeOnDrop<'a>(&'a mut [u8]);

impl Drop for WipeOnDrop<'_> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.0);
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The plaintext path of the file, computed only when a log line or error
/// needs it (the hot path never builds it).
pub type PathFn<'a> = &'a dyn Fn() -> String;

/// Content I/O for one open backing file.
pub struct BlockIo<'a> {
    pub file: &'a File,
    pub cipher: &'a ContentCipher,
    /// The plaintext path, for error messages and log lines.
    pub path: PathFn<'a>,
}

impl std::fmt::Debug for BlockIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIo")
            .field("path", &(self.path)())
            .finish()
    }
}

impl BlockIo<'_> {
    fn damaged(&self, e: ContentError) -> FsError {
        match e {
            ContentError::Crypto(c) => FsError::internal(c),
            other => {
                let path = (self.path)();
                log::warn!("{path}: {other}");
                FsError::tampered(path, other.to_string())
            }
        }
    }

    /// (plaintext size, backing size).
    pub fn sizes(&self) -> FsResult<(u64, u64)> {
        let cipher_size = self.file.metadata()?.len();
        let plain = self
            .cipher
            .layout()
            .plain_size(cipher_size)
            .map_err(|e| self.damaged(e))?;
        Ok((plain, cipher_size))
    }

    fn b(&self) -> u64 {
        u64::from(self.cipher.layout().block_size())
    }

    /// Reads and opens blocks `first..end_block` (plaintext ends at `size`).
    fn read_blocks(&self, first: u64, end_block: u64, cipher_size: u64) -> FsResult<Vec<u8>> {
        let layout = self.cipher.layout();
        let start = layout.block_cipher_offset(first);
        let end = layout.block_cipher_offset(end_block).min(cipher_size);
        if end <= start {
            return Ok(Vec::new());
        }
        let len = usize::try_from(end - start).map_err(|_| FsError::TooBig)?;
        let mut stored = vec![0u8; len];
        self.file.read_exact_at(&mut stored, start)?;
        let mut plain = Vec::with_capacity(len);
        self.cipher
            .open_blocks_append(first, &stored, &mut plain)
            .map_err(|e| self.damaged(e))?;
        Ok(plain)
    }

    /// Reads up to `len` plaintext bytes at `offset`.
    pub fn read(&self, offset: u64, len: u64) -> FsResult<Vec<u8>> {
        let (size, cipher_size) = self.sizes()?;
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(offset.saturating_add(len));
        let b = self.b();
        let first = offset / b;
        let end_block = end.div_ceil(b);
        let mut plain = self.read_blocks(first, end_block, cipher_size)?;
        let skip = usize::try_from(offset - first * b).map_err(|_| FsError::TooBig)?;
        let want = usize::try_from(end - offset).map_err(|_| FsError::TooBig)?;
        if plain.len() < skip + want {
            return Err(FsError::tampered(
                (self.path)(),
                "content shorter than its size",
            ));
        }
        plain.truncate(skip + want);
        plain.drain(..skip);
        Ok(plain)
    }

    /// Writes `data` at `offset`; a gap past the end reads as zeros.
    pub fn write(&self, offset: u64, data: &[u8]) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let (mut size, _) = self.sizes()?;
        if offset > size.saturating_add(EXTEND_CHUNK) {
            self.extend(offset)?;
            size = self.sizes()?.0;
        }
        self.write_at(offset, data, size)
    }

    /// Grows the file to `new_size` with zeros, in bounded pieces.
    fn extend(&self, new_size: u64) -> FsResult<()> {
        let zeros = vec![0u8; EXTEND_CHUNK as usize];
        loop {
            let (size, _) = self.sizes()?;
            if size >= new_size {
                return Ok(());
            }
            let step = (new_size - size).min(EXTEND_CHUNK) as usize;
            self.write_at(size, &zeros[..step], size)?;
        }
    }

    /// Reads and opens existing block `index` into `block` (plaintext
    /// length `len`), using `stored` as the read buffer.
    fn read_block_into(
        &self,
        index: u64,
        len: usize,
        stored: &mut Vec<u8>,
        block: &mut [u8],
    ) -> FsResult<()> {
        let slen = len + crate::content::BLOCK_OVERHEAD;
        if stored.len() < slen {
            stored.resize(slen, 0);
        }
        self.file.read_exact_at(
            &mut stored[..slen],
            self.cipher.layout().block_cipher_offset(index),
        )?;
        self.cipher
            .open_block_into(index, &stored[..slen], block)
            .map_err(|e| self.damaged(e))?;
        Ok(())
    }

    /// Writes non-empty `data` at `offset` into a file of plaintext `size`:
    /// blocks wholly covered by `data` are sealed
    /// straight from it; the (at most two) partial blocks, and the old last
    /// block when the file grows, are read, merged and resealed. Every
    /// sealed block goes into one per-thread buffer and to the backing file
    /// in one pwrite.
    fn write_at(&self, offset: u64, data: &[u8], size: u64) -> FsResult<()> {
        let layout = self.cipher.layout();
        let b = self.b();
        let hi = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::TooBig)?;
        let lo = offset.min(size);
        let new_size = size.max(hi);
        let first = lo / b;
        let end_block = hi.div_ceil(b);
        let start = layout.block_cipher_offset(first);
        let stored_end = layout
            .block_cipher_offset(end_block)
            .min(layout.cipher_size(new_size));
        let out_len = usize::try_from(stored_end - start).map_err(|_| FsError::TooBig)?;
        SCRATCH.with(|s| -> FsResult<()> {
            let mut s = s.borrow_mut();
            let Scratch { out, block, stored } = &mut *s;
            if out.len() < out_len {
                out.resize(out_len, 0);
            }
            if block.len() < b as usize {
                block.resize(b as usize, 0);
            }
            // Whatever happens below, the plaintext block is wiped on return.
            let wipe = WipeOnDrop(&mut block[..b as usize]);
            let block = &mut *wipe.0;
            let mut pos = 0usize;
            for idx in first..end_block {
                let bstart = idx * b;
                let blen = (new_size - bstart).min(b) as usize;
                let bend = bstart + blen as u64;
                let sealed = if bstart >= offset && bend <= hi {
                    let from = (bstart - offset) as usize;
                    self.cipher
                        .seal_block_into(idx, &data[from..from + blen], &mut out[pos..])
                } else {
                    let blk = &mut block[..blen];
                    let old_len = size.saturating_sub(bstart).min(b) as usize;
                    if old_len > 0 {
                        self.read_block_into(idx, old_len, stored, &mut blk[..old_len])?;
                    }
                    blk[old_len..].fill(0);
                    let cs = bstart.max(offset);
                    let ce = bend.min(hi);
                    if ce > cs {
                        blk[(cs - bstart) as usize..(ce - bstart) as usize]
                            .copy_from_slice(&data[(cs - offset) as usize..(ce - offset) as usize]);
                    }
                    self.cipher.seal_block_into(idx, blk, &mut out[pos..])
                };
                pos += sealed.map_err(|e| self.damaged(e))?;
            }
            // Growing the file: reserve the new space first, so that a full
            // disk fails before any byte is written (a torn write would leave
            // a partial sealed block at the end, unreadable, and could tear the
            // old last block that the caller was already told is written).
            let old_cipher = layout.cipher_size(size);
            let end = start + pos as u64;
            if end > old_cipher {
                self.reserve(old_cipher, end - old_cipher)?;
            }
            if let Err(e) = self.file.write_all_at(&out[..pos], start) {
                if end > old_cipher {
                    // Best effort: drop a torn tail so the size stays valid.
                    let _ = self.file.set_len(old_cipher);
                }
                return Err(e.into());
            }
            Ok(())
        })
    }

    /// Allocates `len` backing bytes from `from` without changing the file
    /// size. ENOSPC/EDQUOT come back as they are; a backing filesystem
    /// without fallocate is not an error (the write then reports it).
    fn reserve(&self, from: u64, len: u64) -> FsResult<()> {
        use rustix::fs::{FallocateFlags, fallocate};
        use rustix::io::Errno;
        match fallocate(self.file, FallocateFlags::KEEP_SIZE, from, len) {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the plaintext size to `new_size`.
    pub fn truncate(&self, new_size: u64) -> FsResult<()> {
        let (size, cipher_size) = self.sizes()?;
        if new_size == size {
            return Ok(());
        }
        if new_size > size {
            return self.extend(new_size);
        }
        let layout = self.cipher.layout();
        let b = self.b();
        if !new_size.is_multiple_of(b) {
            let idx = new_size / b;
            let mut blk = self.read_blocks(idx, idx + 1, cipher_size)?;
            blk.truncate((new_size - idx * b) as usize);
            let sealed = self
                .cipher
                .seal_block(idx, &blk)
                .map_err(|e| self.damaged(e))?;
            self.file
                .write_all_at(&sealed, layout.block_cipher_offset(idx))?;
        }
        self.file.set_len(layout.cipher_size(new_size))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FileId, HEADER_LEN};

    /// A partial-block write assembles plaintext in the per-thread scratch
    /// block; nothing of it may stay there after the request.
    #[test]
    fn partial_block_write_leaves_no_plaintext_in_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.write_all_at(&[0u8; HEADER_LEN], 0).unwrap();
        let cipher = ContentCipher::new(&[7; 32], FileId([1; 16]), 4096).unwrap();
        let io = BlockIo {
            file: &file,
            cipher: &cipher,
            path: &|| "/f".to_string(),
        };
        io.write(0, &[0xAA; 5000]).unwrap();
        // Read-modify-write of both blocks: old plaintext and new bytes merged.
        io.write(10, &[0xBB; 4200]).unwrap();
        let mut want = vec![0xAA; 5000];
        want[10..4210].fill(0xBB);
        assert_eq!(io.read(0, 10_000).unwrap(), want);
        SCRATCH.with(|s| {
            let s = s.borrow();
            assert!(s.block.len() >= 4096);
            assert!(s.block.iter().all(|b| *b == 0), "plaintext left in scratch");
        });
    }
}
