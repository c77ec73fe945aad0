//! Block-level content I/O on one backing file: read, write at any offset
//! (read-modify-write of partial blocks), size changes, holes and
//! `SEEK_DATA`/`SEEK_HOLE` (in `resize` and `seek`). Callers hold the inode's lock.
//!
//! Format 2 (every file created or truncated to zero since): the last block
//! always exists and carries the end mark, so a file cut at a block
//! boundary does not read; blocks a write or size change skips are holes in
//! the backing file (all zero bytes), which read as zeros only when the
//! last block's mark says the file may hold holes (see
//! `crate::content::BlockMark`). Growing a file writes the new blocks
//! first, then seals the old last block again without the mark, so the
//! mount dying between the two leaves a readable file.
//!
//! Format 1 (older files): no end mark and no holes; a gap is written as
//! sealed zeros, as before format 2.
//!
//! Every size change reserves the backing space it writes first (so a full
//! disk or a size beyond the backing filesystem's limit fails before any
//! byte changes), and a failed one puts the old last block and size back.

mod resize;
mod seek;

pub use seek::Seek;

use crate::content::{BlockLayout, BlockMark, ContentCipher, ContentError, Opened};
use crate::format::HEADER_FORMAT_V1;
use crate::fuse::errno::{FsError, FsResult};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU16, Ordering};
use zeroize::Zeroizing;

/// Largest amount of plaintext sealed in one piece while zero-filling.
const ZERO_CHUNK: u64 = 1 << 20;

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

/// The last block of a file as this mount last wrote it (its plaintext
/// and stored bytes), so that the next write that grows the file (`tar`
/// writes 10 KiB at a time, `cp` 128 KiB) neither reads nor opens it again.
/// One per inode (`InodeState::tail`), used under the inode's `io` lock.
///
/// Kept only while it is certainly the file's last block: it is taken
/// (emptied) by every write that uses it and put back by a write that
/// succeeded; it is used only when the backing file still has the size it
/// was written at; every other change of content (truncate, punch, zero
/// range, allocate, a format-1 write) empties it, and so do every open and
/// release of the file, so another host's change of the file is seen at
/// the next open (close-to-open, as the admin guide promises for several
/// hosts on one cipher directory). Plaintext is wiped when dropped.
#[derive(Default)]
pub struct TailCache(std::sync::Mutex<Option<Tail>>);

struct Tail {
    /// The backing file's size when this block was written.
    cipher_size: u64,
    block: EndBlock,
}

impl TailCache {
    /// Empties the cache.
    pub fn clear(&self) {
        if let Ok(mut t) = self.0.lock() {
            *t = None;
        }
    }

    /// The cached last block of a backing file of `cipher_size` bytes,
    /// taken out of the cache; `None` when empty or written at another size.
    fn take(&self, cipher_size: u64) -> Option<EndBlock> {
        let mut t = self.0.lock().ok()?;
        match t.take() {
            Some(tail) if tail.cipher_size == cipher_size => Some(tail.block),
            _ => None,
        }
    }

    fn put(&self, cipher_size: u64, block: EndBlock) {
        if let Ok(mut t) = self.0.lock() {
            *t = Some(Tail { cipher_size, block });
        }
    }
}

impl std::fmt::Debug for TailCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map(|t| t.is_some()).unwrap_or(false);
        f.debug_struct("TailCache").field("held", &held).finish()
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
    /// The file's content format version, shared by every handle of the
    /// inode (`InodeState::content_version`).
    pub version: &'a AtomicU16,
    /// The file's last block as last written (shared by every handle of
    /// the inode, `InodeState::tail`).
    pub tail: &'a TailCache,
}

impl std::fmt::Debug for BlockIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIo")
            .field("path", &(self.path)())
            .finish()
    }
}

/// The last block of a file, opened: what growing, shrinking and holes
/// need to know.
struct EndBlock {
    index: u64,
    /// The stored bytes as on disk, put back when a size change fails.
    stored: Vec<u8>,
    /// The plaintext (wiped on drop).
    plain: Zeroizing<Vec<u8>>,
    /// The end mark allows holes (format 2 only).
    sparse: bool,
}

/// What one batch of blocks written in one pwrite is made of.
struct Batch<'d> {
    /// Plaintext bytes `offset .. offset + data.len()` are replaced.
    offset: u64,
    data: &'d [u8],
    /// Plaintext size before and after.
    size: u64,
    new_size: u64,
    /// Blocks `first .. end` are sealed.
    first: u64,
    end: u64,
    /// The end mark of the new last block allows holes.
    sparse: bool,
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

    fn layout(&self) -> BlockLayout {
        self.cipher.layout()
    }

    fn b(&self) -> u64 {
        u64::from(self.cipher.layout().block_size())
    }

    /// The file's content format version.
    pub fn version(&self) -> u16 {
        self.version.load(Ordering::Acquire)
    }

    fn v1(&self) -> bool {
        self.version() == HEADER_FORMAT_V1
    }

    /// Index of the last block of a file of `size` bytes (block 0, the
    /// empty end block, for an empty format-2 file).
    fn last_index(&self, size: u64) -> u64 {
        size.saturating_sub(1) / self.b()
    }

    /// (plaintext size, backing size); a backing size the file's format
    /// cannot have is damage.
    pub fn sizes(&self) -> FsResult<(u64, u64)> {
        let cipher_size = self.file.metadata()?.len();
        let plain = self
            .layout()
            .check_size(self.version(), cipher_size)
            .map_err(|e| self.damaged(e))?;
        Ok((plain, cipher_size))
    }

    /// Reads and opens the last block of a file of `size` bytes; in format
    /// 2 it must carry the end mark.
    fn end_block(&self, size: u64) -> FsResult<EndBlock> {
        let layout = self.layout();
        let index = self.last_index(size);
        let len = layout.block_plain_len(index, size);
        if len == 0 && self.v1() {
            return Ok(EndBlock {
                index,
                stored: Vec::new(),
                plain: Zeroizing::new(Vec::new()),
                sparse: false,
            });
        }
        let mut stored = vec![0u8; BlockLayout::stored_len(len)];
        self.file
            .read_exact_at(&mut stored, layout.block_cipher_offset(index))?;
        let mut plain = Zeroizing::new(vec![0u8; len]);
        let opened = self
            .cipher
            .open_at(self.version(), index, index, &stored, &mut plain)
            .map_err(|e| self.damaged(e))?;
        let sparse = matches!(
            opened,
            Opened::Data {
                sparse: Some(true),
                ..
            }
        );
        Ok(EndBlock {
            index,
            stored,
            plain,
            sparse,
        })
    }

    /// Accepts a hole found in a file of `size` bytes if the end mark
    /// allows holes (`known`: the mark, when already read); else the
    /// all-zero block is tampering.
    fn confirm_hole(&self, known: &mut Option<bool>, size: u64, index: u64) -> FsResult<()> {
        let sparse = match *known {
            Some(s) => s,
            None => {
                let s = self.end_block(size)?.sparse;
                *known = Some(s);
                s
            }
        };
        if sparse {
            return Ok(());
        }
        let path = (self.path)();
        let what = format!("block {index} is all zeros in a file without holes");
        log::warn!("{path}: {what}");
        Err(FsError::tampered(path, what))
    }

    /// Checks the end block of an empty format-2 file (the kernel never
    /// reads an empty file, so this is where a file cut down to nothing
    /// is noticed). Cheap: only files of at most 156 backing bytes.
    pub fn check_if_empty(&self) -> FsResult<()> {
        if self.v1() {
            return Ok(());
        }
        let cipher_size = self.file.metadata()?.len();
        if cipher_size > self.layout().file_cipher_size(self.version(), 0) {
            return Ok(());
        }
        let (size, _) = self.sizes()?;
        self.end_block(size).map(|_| ())
    }

    /// Reads up to `len` plaintext bytes at `offset`.
    pub fn read(&self, offset: u64, len: u64) -> FsResult<Vec<u8>> {
        let (size, cipher_size) = self.sizes()?;
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let layout = self.layout();
        let end = size.min(offset.saturating_add(len));
        let b = self.b();
        let first = offset / b;
        let end_block = end.div_ceil(b);
        let last = self.last_index(size);
        let start = layout.block_cipher_offset(first);
        let stop = layout.block_cipher_offset(end_block).min(cipher_size);
        let slen = usize::try_from(stop - start).map_err(|_| FsError::TooBig)?;
        let mut stored = vec![0u8; slen];
        self.file.read_exact_at(&mut stored, start)?;
        let blocks = usize::try_from(end_block - first).map_err(|_| FsError::TooBig)?;
        let mut plain = vec![0u8; blocks * b as usize];
        let mut pos = 0usize;
        let mut sparse = None;
        let mut hole = None;
        let version = self.version();
        for (i, chunk) in stored
            .chunks(layout.stored_block_size() as usize)
            .enumerate()
        {
            let idx = first + i as u64;
            match self
                .cipher
                .open_at(version, idx, last, chunk, &mut plain[pos..])
                .map_err(|e| self.damaged(e))?
            {
                Opened::Data { len, sparse: s } => {
                    pos += len;
                    sparse = sparse.or(s);
                }
                Opened::Hole { len } => {
                    pos += len;
                    hole = hole.or(Some(idx));
                }
            }
        }
        if let Some(idx) = hole {
            self.confirm_hole(&mut sparse, size, idx)?;
        }
        let skip = usize::try_from(offset - first * b).map_err(|_| FsError::TooBig)?;
        let want = usize::try_from(end - offset).map_err(|_| FsError::TooBig)?;
        if pos < skip + want {
            return Err(FsError::tampered(
                (self.path)(),
                "content shorter than its size",
            ));
        }
        plain.truncate(skip + want);
        plain.drain(..skip);
        Ok(plain)
    }

    /// Writes `data` at `offset`; a gap past the end reads as zeros (a hole
    /// in format 2, sealed zeros in format 1).
    pub fn write(&self, offset: u64, data: &[u8]) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let hi = offset
            .checked_add(data.len() as u64)
            .filter(|h| *h <= self.layout().max_plain_size())
            .ok_or(FsError::TooBig)?;
        let (size, cipher_size) = self.sizes()?;
        if self.v1() {
            self.tail.clear();
            return self.write_v1(offset, data, size, hi);
        }
        self.write_v2(offset, data, size, cipher_size, hi)
    }

    /// Format 2 write: the blocks the data touches in one pwrite; when the
    /// file grows past its old last block, that block is first completed
    /// to a full block (still marked last), then sealed again unmarked
    /// after the new blocks are written (or, when it holds only zeros,
    /// punched to a hole). Blocks in between are holes.
    fn write_v2(
        &self,
        offset: u64,
        data: &[u8],
        size: u64,
        cipher_size: u64,
        hi: u64,
    ) -> FsResult<()> {
        let layout = self.layout();
        let b = self.b();
        let new_size = size.max(hi);
        let old_last = self.last_index(size);
        let first = offset / b;
        let end = hi.div_ceil(b);
        let grows = new_size > size;
        let end_blk = if grows || end > old_last {
            match self.tail.take(cipher_size) {
                Some(eb) => Some(eb),
                None => Some(self.end_block(size)?),
            }
        } else {
            None
        };
        // The old last block stays out of the batch and becomes a middle
        // block; an empty file's end block, or one of zeros only in a file
        // that may hold holes (what a truncate up or fallocate left),
        // becomes a hole, as those pages are holes on tmpfs or ext4. Zeros
        // written to a file without holes stay data, and its end mark
        // keeps refusing zeroed blocks.
        let detached = grows && first > old_last;
        let zero_end_to_hole = detached
            && end_blk
                .as_ref()
                .is_some_and(|e| (size == 0 || e.sparse) && e.plain.iter().all(|&x| x == 0));
        let sparse = end_blk.as_ref().is_some_and(|e| e.sparse)
            || (grows && first > old_last + 1)
            || zero_end_to_hole;
        let batch = Batch {
            offset,
            data,
            size,
            new_size,
            first,
            end,
            sparse,
        };
        let old_cipher = layout.file_cipher_size(self.version(), size);
        let start = layout.block_cipher_offset(first);
        let stop = layout
            .block_cipher_offset(end)
            .min(layout.cipher_size(new_size));
        let restore = |e: FsError| -> FsError {
            if let Some(eb) = &end_blk {
                self.restore(old_cipher, eb);
            }
            e
        };
        let mut resealed = false;
        if let (true, Some(eb)) = (detached, &end_blk) {
            let full = layout.block_cipher_offset(old_last + 1);
            self.reserve(old_cipher, full.saturating_sub(old_cipher))?;
            self.reserve(start, stop - start)?;
            if eb.plain.len() < b as usize {
                // Completed to a full block, still the last one.
                let mark = BlockMark::Last { sparse: eb.sparse };
                self.seal_full_at(eb, mark).map_err(restore)?;
                resealed = true;
            }
        } else {
            self.reserve(start, stop - start).map_err(restore)?;
        }
        let new_tail = match self.seal_and_write(&batch, end_blk.as_ref(), true) {
            Ok(t) => t,
            Err(e) => {
                return Err(if grows || resealed || end_blk.is_some() {
                    restore(e)
                } else {
                    e
                });
            }
        };
        if let (true, Some(eb)) = (zero_end_to_hole, &end_blk) {
            // The new last block is written: the old (all-zero) one's
            // stored range becomes a hole.
            let layout = self.layout();
            let at = layout.block_cipher_offset(eb.index);
            self.punch_backing(at, layout.stored_block_size())?;
        } else if let (true, Some(eb)) = (detached, &end_blk) {
            // The new last block is written: drop the old one's end mark.
            self.seal_full_at(eb, BlockMark::Middle)?;
        }
        if let Some(t) = new_tail {
            self.tail
                .put(layout.file_cipher_size(self.version(), new_size), t);
        }
        Ok(())
    }

    /// Seals the end block `eb`, completed with zeros to a full block, with
    /// `mark` and writes it in its place.
    fn seal_full_at(&self, eb: &EndBlock, mark: BlockMark) -> FsResult<()> {
        let b = self.b() as usize;
        let mut full = Zeroizing::new(vec![0u8; b]);
        full[..eb.plain.len()].copy_from_slice(&eb.plain);
        let sealed = self
            .cipher
            .seal_block(eb.index, mark, &full)
            .map_err(|e| self.damaged(e))?;
        self.file
            .write_all_at(&sealed, self.layout().block_cipher_offset(eb.index))?;
        Ok(())
    }

    /// Puts a failed size change back: the old last block's stored bytes
    /// and the old backing size. Best effort (logged): the caller reports
    /// the original error.
    fn restore(&self, old_cipher: u64, eb: &EndBlock) {
        let at = self.layout().block_cipher_offset(eb.index);
        let r = (|| -> std::io::Result<()> {
            self.file.set_len(old_cipher)?;
            if !eb.stored.is_empty() {
                self.file.write_all_at(&eb.stored, at)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            log::warn!(
                "{}: could not undo a failed size change: {e}",
                (self.path)()
            );
        }
    }

    /// Format 1 write (dense): a gap past the end is filled with sealed
    /// zeros first, its backing space reserved up front; on failure the old
    /// size and last block come back.
    fn write_v1(&self, offset: u64, data: &[u8], size: u64, hi: u64) -> FsResult<()> {
        if hi <= size {
            return self.v1_span(offset, data, size);
        }
        let layout = self.layout();
        let old_cipher = layout.cipher_size(size);
        let eb = self.end_block(size)?;
        self.reserve(old_cipher, layout.cipher_size(hi) - old_cipher)?;
        let r = (|| -> FsResult<()> {
            let mut cur = size;
            let zeros = vec![0u8; ZERO_CHUNK as usize];
            while cur < offset {
                let step = (offset - cur).min(ZERO_CHUNK) as usize;
                self.v1_span(cur, &zeros[..step], cur)?;
                cur += step as u64;
            }
            self.v1_span(offset, data, cur)
        })();
        if r.is_err() {
            self.restore(old_cipher, &eb);
        }
        r
    }

    /// One format-1 batch: `data` at `offset <= size`.
    fn v1_span(&self, offset: u64, data: &[u8], size: u64) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let b = self.b();
        let hi = offset + data.len() as u64;
        let batch = Batch {
            offset,
            data,
            size,
            new_size: size.max(hi),
            first: offset / b,
            end: hi.div_ceil(b),
            sparse: false,
        };
        self.seal_and_write(&batch, None, false).map(drop)
    }

    /// Reads and opens existing block `index` of a file of `size` bytes into
    /// `block` (its plaintext length), using `stored` as the read buffer; a
    /// hole reads as zeros if the end mark allows it (`sparse`).
    fn read_block_into(
        &self,
        index: u64,
        size: u64,
        sparse: &mut Option<bool>,
        stored: &mut Vec<u8>,
        block: &mut [u8],
    ) -> FsResult<()> {
        let slen = BlockLayout::stored_len(block.len());
        if stored.len() < slen {
            stored.resize(slen, 0);
        }
        self.file.read_exact_at(
            &mut stored[..slen],
            self.layout().block_cipher_offset(index),
        )?;
        let last = self.last_index(size);
        let opened = self
            .cipher
            .open_at(self.version(), index, last, &stored[..slen], block)
            .map_err(|e| self.damaged(e))?;
        if let Opened::Hole { .. } = opened {
            self.confirm_hole(sparse, size, index)?;
        }
        Ok(())
    }

    /// Seals blocks `batch.first .. batch.end` and writes them with one
    /// pwrite: blocks wholly covered by the data are sealed straight from
    /// it; partial ones are read (the old last block comes from `eb`),
    /// merged and sealed again. With `keep_tail`, returns the new last
    /// block when the batch wrote it (for [`TailCache`]).
    fn seal_and_write(
        &self,
        batch: &Batch<'_>,
        eb: Option<&EndBlock>,
        keep_tail: bool,
    ) -> FsResult<Option<EndBlock>> {
        let layout = self.layout();
        let b = self.b();
        let version = self.version();
        let Batch {
            offset,
            data,
            size,
            new_size,
            first,
            end,
            sparse,
        } = *batch;
        let hi = offset + data.len() as u64;
        let new_last = self.last_index(new_size);
        let start = layout.block_cipher_offset(first);
        let stored_end = layout
            .block_cipher_offset(end)
            .min(layout.cipher_size(new_size));
        let out_len = usize::try_from(stored_end - start).map_err(|_| FsError::TooBig)?;
        let mut old_sparse = eb.map(|e| e.sparse);
        SCRATCH.with(|s| -> FsResult<Option<EndBlock>> {
            // The new last block's plaintext and stored range, with `keep_tail`.
            let mut tail = None;
            let mut tail_stored = None;
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
            let mut nonces = crate::crypto::nonces().map_err(FsError::internal)?;
            for idx in first..end {
                let bstart = idx * b;
                let blen = (new_size - bstart).min(b) as usize;
                let bend = bstart + blen as u64;
                let mark = BlockMark::at(version, idx, new_last, sparse);
                let sealed = if bstart >= offset && bend <= hi {
                    let from = (bstart - offset) as usize;
                    if keep_tail && idx == new_last {
                        tail = Some(Zeroizing::new(data[from..from + blen].to_vec()));
                    }
                    self.cipher.seal_block_from(
                        &mut nonces,
                        idx,
                        mark,
                        &data[from..from + blen],
                        &mut out[pos..],
                    )
                } else {
                    let blk = &mut block[..blen];
                    let old_len = layout.block_plain_len(idx, size);
                    match eb {
                        Some(e) if e.index == idx => blk[..old_len].copy_from_slice(&e.plain),
                        _ if old_len > 0 => self.read_block_into(
                            idx,
                            size,
                            &mut old_sparse,
                            stored,
                            &mut blk[..old_len],
                        )?,
                        _ => {}
                    }
                    blk[old_len..].fill(0);
                    let cs = bstart.max(offset);
                    let ce = bend.min(hi);
                    if ce > cs {
                        blk[(cs - bstart) as usize..(ce - bstart) as usize]
                            .copy_from_slice(&data[(cs - offset) as usize..(ce - offset) as usize]);
                    }
                    if keep_tail && idx == new_last {
                        tail = Some(Zeroizing::new(blk.to_vec()));
                    }
                    self.cipher
                        .seal_block_from(&mut nonces, idx, mark, blk, &mut out[pos..])
                };
                let at = pos;
                pos += sealed.map_err(|e| self.damaged(e))?;
                if keep_tail && idx == new_last {
                    tail_stored = Some(at..pos);
                }
            }
            self.file.write_all_at(&out[..pos], start)?;
            Ok(match (tail, tail_stored) {
                (Some(plain), Some(range)) => Some(EndBlock {
                    index: new_last,
                    stored: out[range].to_vec(),
                    plain,
                    sparse,
                }),
                _ => None,
            })
        })
    }

    /// Allocates `len` backing bytes from `from` without changing the file
    /// size, so that a full disk (ENOSPC, EDQUOT) or a size beyond what the
    /// backing filesystem allows (EFBIG) fails before any byte is written.
    /// A backing filesystem without fallocate is not an error (the write
    /// then reports it, and the caller undoes what it did).
    fn reserve(&self, from: u64, len: u64) -> FsResult<()> {
        use rustix::fs::{FallocateFlags, fallocate};
        use rustix::io::Errno;
        if len == 0 {
            return Ok(());
        }
        match fallocate(self.file, FallocateFlags::KEEP_SIZE, from, len) {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => Ok(()),
            Err(e) if e == Errno::FBIG || (e == Errno::INVAL && from > i64::MAX as u64) => {
                Err(FsError::TooBig)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
