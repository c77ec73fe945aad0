//! Block layout math: where plaintext bytes live in the backing file, and the
//! plaintext size implied by a backing file size. Pure integer arithmetic.

use std::ops::Range;

use super::ContentError;
use crate::crypto::{NONCE_LEN, TAG_LEN};
use crate::format::{HEADER_FORMAT_V1, HEADER_LEN, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};

/// Bytes a stored block adds to its plaintext: nonce (12) + tag (16).
pub const BLOCK_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const HEADER: u64 = HEADER_LEN as u64;
const OVERHEAD: u64 = BLOCK_OVERHEAD as u64;

/// The block geometry of a volume (plaintext block size B).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockLayout {
    block_size: u32,
}

/// The part of one block touched by a plaintext byte range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockSpan {
    /// Block index.
    pub index: u64,
    /// Offset of the range's first byte inside this block.
    pub start: usize,
    /// Number of bytes of the range inside this block.
    pub len: usize,
}

impl BlockSpan {
    /// Whether the span covers the whole block of size `block_size`.
    pub fn is_full(&self, block_size: u32) -> bool {
        self.start == 0 && self.len == block_size as usize
    }
}

impl BlockLayout {
    /// Layout for plaintext block size `block_size` (a power of two in 512..=65536).
    pub fn new(block_size: u32) -> Result<Self, ContentError> {
        if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        {
            return Err(ContentError::InvalidBlockSize {
                size: u64::from(block_size),
            });
        }
        Ok(Self { block_size })
    }

    /// Plaintext block size B.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    fn b(&self) -> u64 {
        u64::from(self.block_size)
    }

    /// Stored size of a full block: B + 28.
    pub fn stored_block_size(&self) -> u64 {
        self.b() + OVERHEAD
    }

    /// Stored size of a block holding `plain_len` bytes: `plain_len + 28`.
    pub fn stored_len(plain_len: usize) -> usize {
        plain_len + BLOCK_OVERHEAD
    }

    /// Backing file size of a file of format `version` and `plain_size`
    /// bytes: as [`Self::cipher_size`], except that an empty format-2 file
    /// holds its end mark, an empty block 0 of 28 bytes (156 in all).
    pub fn file_cipher_size(&self, version: u16, plain_size: u64) -> u64 {
        if plain_size == 0 && version != HEADER_FORMAT_V1 {
            HEADER + OVERHEAD
        } else {
            self.cipher_size(plain_size)
        }
    }

    /// The largest plaintext size whose backing size still fits in an
    /// `off_t` (i64): beyond it a size is refused with EFBIG before
    /// anything is written. About 2^63 × B / (B + 28).
    pub fn max_plain_size(&self) -> u64 {
        let body = i64::MAX.unsigned_abs() - HEADER;
        let full = body / self.stored_block_size();
        let rem = body % self.stored_block_size();
        full * self.b() + rem.saturating_sub(OVERHEAD)
    }

    /// Checks that a backing size is one a file of format `version` can
    /// have: format 1 has no 156-byte form, and a format-2 file of only a
    /// header (128 bytes) has lost its end mark.
    pub fn check_size(&self, version: u16, cipher_size: u64) -> Result<u64, ContentError> {
        let n = self.plain_size(cipher_size)?;
        let v1 = version == HEADER_FORMAT_V1;
        if v1 && cipher_size == HEADER + OVERHEAD {
            return Err(ContentError::TruncatedBlock {
                block: 0,
                cipher_size,
            });
        }
        if !v1 && cipher_size <= HEADER {
            return Err(ContentError::MissingEnd { cipher_size });
        }
        Ok(n)
    }

    /// Backing file size for a plaintext size (header included), format 1
    /// (and format 2 for every size but 0). Saturates at `u64::MAX` for
    /// absurd sizes.
    pub fn cipher_size(&self, plain_size: u64) -> u64 {
        let full = plain_size / self.b();
        let rem = plain_size % self.b();
        let partial = if rem > 0 { rem + OVERHEAD } else { 0 };
        full.saturating_mul(self.stored_block_size())
            .saturating_add(HEADER)
            .saturating_add(partial)
    }

    /// Plaintext size of a backing file of `cipher_size` bytes, whatever its
    /// format version (so that `stat` needs no read). A size of 0 (no
    /// header yet), 128 (a format-1 header) and 156 (a format-2 header and
    /// the empty end block) are empty files. A backing file shorter than
    /// the header, or ending within the first 28 bytes of any other block
    /// (so the block cannot hold even one byte), is damaged. Whether the
    /// size fits the file's version is [`Self::check_size`].
    pub fn plain_size(&self, cipher_size: u64) -> Result<u64, ContentError> {
        if cipher_size == 0 {
            return Ok(0);
        }
        if cipher_size < HEADER {
            return Err(ContentError::TruncatedHeader { cipher_size });
        }
        let body = cipher_size - HEADER;
        let full = body / self.stored_block_size();
        let rem = body % self.stored_block_size();
        if rem == 0 {
            return Ok(full * self.b());
        }
        if full == 0 && rem == OVERHEAD {
            return Ok(0);
        }
        if rem <= OVERHEAD {
            return Err(ContentError::TruncatedBlock {
                block: full,
                cipher_size,
            });
        }
        Ok(full * self.b() + rem - OVERHEAD)
    }

    /// Number of blocks a file of `plain_size` bytes has.
    pub fn block_count(&self, plain_size: u64) -> u64 {
        plain_size.div_ceil(self.b())
    }

    /// Index of the block holding plaintext byte `offset`.
    pub fn block_index(&self, offset: u64) -> u64 {
        offset / self.b()
    }

    /// Plaintext offset of the first byte of block `index`.
    pub fn block_plain_offset(&self, index: u64) -> u64 {
        index.saturating_mul(self.b())
    }

    /// Backing-file offset of block `index` (after the header).
    pub fn block_cipher_offset(&self, index: u64) -> u64 {
        index
            .saturating_mul(self.stored_block_size())
            .saturating_add(HEADER)
    }

    /// Plaintext length of block `index` in a file of `plain_size` bytes
    /// (0 when the block lies past the end).
    pub fn block_plain_len(&self, index: u64, plain_size: u64) -> usize {
        let start = self.block_plain_offset(index);
        // Bounded by B <= 65536, so the cast is lossless.
        plain_size.saturating_sub(start).min(self.b()) as usize
    }

    /// The block indices touched by plaintext bytes `offset .. offset+len`
    /// (empty when `len` is 0).
    pub fn block_range(&self, offset: u64, len: u64) -> Range<u64> {
        let first = offset / self.b();
        if len == 0 {
            return first..first;
        }
        let last = offset.saturating_add(len - 1) / self.b();
        first..last + 1
    }

    /// The per-block pieces of plaintext bytes `offset .. offset+len`, in order.
    pub fn spans(&self, offset: u64, len: u64) -> BlockSpans {
        BlockSpans {
            block_size: self.b(),
            offset,
            end: offset.saturating_add(len),
        }
    }
}

/// Iterator over the [`BlockSpan`]s of a byte range; see [`BlockLayout::spans`].
#[derive(Clone, Debug)]
pub struct BlockSpans {
    block_size: u64,
    offset: u64,
    end: u64,
}

impl Iterator for BlockSpans {
    type Item = BlockSpan;

    fn next(&mut self) -> Option<BlockSpan> {
        if self.offset >= self.end {
            return None;
        }
        let index = self.offset / self.block_size;
        let start = self.offset % self.block_size;
        let len = (self.block_size - start).min(self.end - self.offset);
        self.offset += len;
        // start and len are < B <= 65536: lossless casts.
        Some(BlockSpan {
            index,
            start: start as usize,
            len: len as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(b: u32) -> BlockLayout {
        BlockLayout::new(b).unwrap()
    }

    #[test]
    fn rejects_bad_block_sizes() {
        for b in [0, 1, 256, 4095, 131072, 3 << 10] {
            assert_eq!(
                BlockLayout::new(b),
                Err(ContentError::InvalidBlockSize { size: u64::from(b) })
            );
        }
    }

    /// The worked sizes quoted in docs/file-format.md.
    #[test]
    fn worked_sizes() {
        let x = l(4096);
        assert_eq!(x.cipher_size(0), 128);
        assert_eq!(x.cipher_size(1), 157);
        assert_eq!(x.cipher_size(4095), 128 + 4095 + 28);
        assert_eq!(x.cipher_size(4096), 4252);
        assert_eq!(x.cipher_size(4097), 4252 + 29);
        assert_eq!(x.cipher_size(1 << 20), 128 + 256 * 4124);
        assert_eq!(x.cipher_size(1 << 30), 128 + 262_144 * 4124);
    }

    #[test]
    fn plain_size_edges() {
        let x = l(4096);
        assert_eq!(x.plain_size(0), Ok(0));
        assert_eq!(x.plain_size(128), Ok(0));
        assert_eq!(
            x.plain_size(127),
            Err(ContentError::TruncatedHeader { cipher_size: 127 })
        );
        assert_eq!(
            x.plain_size(1),
            Err(ContentError::TruncatedHeader { cipher_size: 1 })
        );
        assert_eq!(x.plain_size(156), Ok(0));
        assert_eq!(x.check_size(2, 156), Ok(0));
        assert!(matches!(
            x.check_size(1, 156),
            Err(ContentError::TruncatedBlock { .. })
        ));
        assert_eq!(x.check_size(1, 128), Ok(0));
        assert_eq!(
            x.check_size(2, 128),
            Err(ContentError::MissingEnd { cipher_size: 128 })
        );
        assert_eq!(x.file_cipher_size(2, 0), 156);
        assert_eq!(x.file_cipher_size(1, 0), 128);
        assert_eq!(x.file_cipher_size(2, 5), x.cipher_size(5));
        for bad in 129..=155 {
            assert_eq!(
                x.plain_size(bad),
                Err(ContentError::TruncatedBlock {
                    block: 0,
                    cipher_size: bad
                })
            );
        }
        assert_eq!(x.plain_size(157), Ok(1));
        assert_eq!(x.plain_size(4252), Ok(4096));
        assert!(matches!(
            x.plain_size(4252 + 28),
            Err(ContentError::TruncatedBlock { block: 1, .. })
        ));
        assert!(matches!(
            x.plain_size(4252 + 28),
            Err(ContentError::TruncatedBlock { block: 1, .. })
        ));
        assert_eq!(x.plain_size(4252 + 29), Ok(4097));
    }

    #[test]
    fn ranges_and_offsets() {
        let x = l(4096);
        assert_eq!(x.block_range(0, 0), 0..0);
        assert_eq!(x.block_range(5000, 0), 1..1);
        assert_eq!(x.block_range(0, 1), 0..1);
        assert_eq!(x.block_range(0, 4096), 0..1);
        assert_eq!(x.block_range(0, 4097), 0..2);
        assert_eq!(x.block_range(4095, 2), 0..2);
        assert_eq!(x.block_range(4096, 4096), 1..2);
        assert_eq!(x.block_cipher_offset(0), 128);
        assert_eq!(x.block_cipher_offset(2), 128 + 2 * 4124);
        assert_eq!(x.block_plain_len(0, 5000), 4096);
        assert_eq!(x.block_plain_len(1, 5000), 904);
        assert_eq!(x.block_plain_len(2, 5000), 0);
        assert_eq!(x.block_count(0), 0);
        assert_eq!(x.block_count(4096), 1);
        assert_eq!(x.block_count(4097), 2);
        let spans: Vec<_> = x.spans(4000, 5000).collect();
        assert_eq!(
            spans,
            vec![
                BlockSpan {
                    index: 0,
                    start: 4000,
                    len: 96
                },
                BlockSpan {
                    index: 1,
                    start: 0,
                    len: 4096
                },
                BlockSpan {
                    index: 2,
                    start: 0,
                    len: 808
                },
            ]
        );
        assert!(spans[1].is_full(4096));
        assert!(!spans[0].is_full(4096));
    }

    /// The largest size maps to a backing size that fits an i64, one
    /// more byte does not.
    #[test]
    fn max_plain_size_fits_off_t() {
        for s in 9..=16 {
            let x = l(1 << s);
            let m = x.max_plain_size();
            assert!(x.cipher_size(m) <= i64::MAX as u64, "B = {}", 1 << s);
            assert!(x.cipher_size(m + 1) > i64::MAX as u64, "B = {}", 1 << s);
        }
        assert!(l(4096).max_plain_size() > 9_000_000_000_000_000_000);
    }

    fn any_layout() -> impl Strategy<Value = BlockLayout> {
        (9u32..=16).prop_map(|s| l(1 << s))
    }

    proptest! {
        #[test]
        fn size_round_trip(x in any_layout(), n in 0u64..(1 << 48)) {
            let c = x.cipher_size(n);
            prop_assert_eq!(x.plain_size(c), Ok(n));
            prop_assert!(c >= n + 128);
        }

        #[test]
        fn size_round_trip_small(x in any_layout(), n in 0u64..300_000) {
            prop_assert_eq!(x.plain_size(x.cipher_size(n)), Ok(n));
            // cipher_size is strictly increasing.
            prop_assert!(x.cipher_size(n + 1) > x.cipher_size(n));
        }

        #[test]
        fn every_valid_cipher_size_comes_from_a_plain_size(x in any_layout(), c in 0u64..(1 << 40)) {
            if let Ok(n) = x.plain_size(c) {
                prop_assert!(c == 0 || x.cipher_size(n) == c || x.file_cipher_size(2, n) == c);
            }
        }

        #[test]
        fn spans_cover_range(x in any_layout(), off in 0u64..(1 << 40), len in 0u64..300_000) {
            let spans: Vec<_> = x.spans(off, len).collect();
            let r = x.block_range(off, len);
            prop_assert_eq!(spans.len() as u64, r.end - r.start);
            let mut pos = off;
            for (s, idx) in spans.iter().zip(r) {
                prop_assert_eq!(s.index, idx);
                prop_assert_eq!(x.block_plain_offset(s.index) + s.start as u64, pos);
                prop_assert!(s.len > 0 && s.start + s.len <= x.block_size() as usize);
                pos += s.len as u64;
            }
            prop_assert_eq!(pos, off + len);
        }
    }
}
