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

/// Content I/O for one open backing file.
pub struct BlockIo<'a> {
    pub file: &'a File,
    pub cipher: &'a ContentCipher,
    /// The plaintext path, for error messages and log lines.
    pub path: &'a str,
}

impl std::fmt::Debug for BlockIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIo").field("path", &self.path).finish()
    }
}

impl BlockIo<'_> {
    fn damaged(&self, e: ContentError) -> FsError {
        match e {
            ContentError::Crypto(c) => FsError::Io(std::io::Error::other(c)),
            other => {
                log::warn!("{}: {other}", self.path);
                FsError::tampered(self.path, other.to_string())
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
                self.path,
                "content shorter than its size",
            ));
        }
        plain.truncate(skip + want);
        plain.drain(..skip);
        Ok(plain)
    }

    /// Writes `data` at `offset`; a gap past the end reads as zeros.
    pub fn write(&self, offset: u64, data: &[u8]) -> FsResult<()> {
        let (size, _) = self.sizes()?;
        if offset > size.saturating_add(EXTEND_CHUNK) {
            self.extend(offset)?;
        }
        self.write_small(offset, data)
    }

    /// Grows the file to `new_size` with zeros, in bounded pieces.
    fn extend(&self, new_size: u64) -> FsResult<()> {
        loop {
            let (size, _) = self.sizes()?;
            if size >= new_size {
                return Ok(());
            }
            let step = (new_size - size).min(EXTEND_CHUNK);
            let zeros = vec![0u8; step as usize];
            self.write_small(size, &zeros)?;
        }
    }

    /// One read-modify-write covering `[min(offset, size), offset + len)`.
    fn write_small(&self, offset: u64, data: &[u8]) -> FsResult<()> {
        let (size, cipher_size) = self.sizes()?;
        let b = self.b();
        let lo = offset.min(size);
        let hi = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::TooBig)?;
        if hi <= lo {
            return Ok(());
        }
        let first = lo / b;
        let first_start = first * b;
        let mut plain: Vec<u8> = Vec::with_capacity((hi - first_start + b) as usize);
        let mut first_block: Option<Vec<u8>> = None;
        if lo > first_start {
            // Keep the existing head of the first block.
            let blk = self.read_blocks(first, first + 1, cipher_size)?;
            let keep = ((lo - first_start) as usize).min(blk.len());
            plain.extend_from_slice(&blk[..keep]);
            first_block = Some(blk);
        }
        plain.resize((offset - first_start) as usize, 0);
        plain.extend_from_slice(data);
        if hi < size && !hi.is_multiple_of(b) {
            // Keep the existing tail of the last block.
            let idx = hi / b;
            let blk = match first_block {
                Some(blk) if idx == first => blk,
                _ => self.read_blocks(idx, idx + 1, cipher_size)?,
            };
            let from = (hi - idx * b) as usize;
            if blk.len() > from {
                plain.extend_from_slice(&blk[from..]);
            }
        }
        let mut sealed = Vec::with_capacity(
            plain.len() + plain.len().div_ceil(b as usize) * crate::content::BLOCK_OVERHEAD,
        );
        self.cipher
            .seal_blocks_append(first, &plain, &mut sealed)
            .map_err(|e| self.damaged(e))?;
        self.file
            .write_all_at(&sealed, self.cipher.layout().block_cipher_offset(first))?;
        Ok(())
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
