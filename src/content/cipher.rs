//! Sealing and opening of content blocks under a file's data key, and the
//! rules by which a block of a format-2 file must authenticate: the last
//! block carries the end mark, a middle block may be a hole.

use super::{BLOCK_OVERHEAD, BlockLayout, ContentError};
use crate::crypto::{self, NONCE_LEN, SivKey, TAG_LEN};
use crate::format::{FILE_ID_LEN, FileId, HEADER_FORMAT_V1, HEADER_FORMAT_VERSION};

/// Longest associated data of a block: version (2) || file id (16) ||
/// index (8) || end mark (1, format 2 only).
pub const AAD_LEN: usize = 2 + FILE_ID_LEN + 8 + 1;

/// End-mark byte of a format-2 block that is not the last one.
const MARK_MIDDLE: u8 = 0x00;
/// End-mark byte of the last block of a file without holes.
const MARK_LAST_DENSE: u8 = 0x01;
/// End-mark byte of the last block of a file that may contain holes.
const MARK_LAST_SPARSE: u8 = 0x03;

/// How a block is bound to its place in its file, beyond file id and index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockMark {
    /// Format 1: no end mark (associated data version 1 || file id || index).
    V1,
    /// Format 2, a block before the last one.
    Middle,
    /// Format 2, the last block. `sparse`: the file may contain holes (an
    /// all-zero stored block before the last reads as zeros); without it an
    /// all-zero block is tampering.
    Last { sparse: bool },
}

impl BlockMark {
    /// The mark of block `index` in a file of format `version` whose last
    /// block is `last`.
    pub fn at(version: u16, index: u64, last: u64, sparse: bool) -> Self {
        if version == HEADER_FORMAT_V1 {
            BlockMark::V1
        } else if index == last {
            BlockMark::Last { sparse }
        } else {
            BlockMark::Middle
        }
    }
}

/// What a stored block turned out to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opened {
    /// Authenticated data of this many plaintext bytes. `sparse` is known
    /// when the block was opened as the file's last block (format 2).
    Data { len: usize, sparse: Option<bool> },
    /// A format-2 middle block whose stored bytes are all zero: zeros if the
    /// file's last block says it may contain holes, tampering otherwise.
    /// The caller must check that; the output buffer is zeroed.
    Hole { len: usize },
}

/// The content cipher of one open file: the data key expanded once, the file
/// id and the block layout. `Send + Sync`; share it between threads. The
/// format version is an argument of every call (it is the file's, and a
/// file converts from version 1 when truncated to zero bytes).
pub struct ContentCipher {
    key: SivKey,
    file_id: FileId,
    layout: BlockLayout,
}

impl std::fmt::Debug for ContentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentCipher")
            .field("key", &"<redacted>")
            .field("layout", &self.layout)
            .finish()
    }
}

impl ContentCipher {
    /// Prepares the cipher for a file with data key `dek`, id `file_id` and
    /// plaintext block size `block_size`.
    pub fn new(dek: &[u8; 32], file_id: FileId, block_size: u32) -> Result<Self, ContentError> {
        let layout = BlockLayout::new(block_size)?;
        let key = SivKey::new(dek)?;
        Ok(Self {
            key,
            file_id,
            layout,
        })
    }

    /// The block layout.
    pub fn layout(&self) -> BlockLayout {
        self.layout
    }

    /// The associated data of block `index` with `mark`, and its length.
    fn aad(&self, index: u64, mark: BlockMark) -> ([u8; AAD_LEN], usize) {
        let mut aad = [0u8; AAD_LEN];
        let version = match mark {
            BlockMark::V1 => HEADER_FORMAT_V1,
            _ => HEADER_FORMAT_VERSION,
        };
        aad[..2].copy_from_slice(&version.to_be_bytes());
        aad[2..2 + FILE_ID_LEN].copy_from_slice(self.file_id.as_bytes());
        aad[2 + FILE_ID_LEN..AAD_LEN - 1].copy_from_slice(&index.to_be_bytes());
        let byte = match mark {
            BlockMark::V1 => return (aad, AAD_LEN - 1),
            BlockMark::Middle => MARK_MIDDLE,
            BlockMark::Last { sparse: false } => MARK_LAST_DENSE,
            BlockMark::Last { sparse: true } => MARK_LAST_SPARSE,
        };
        aad[AAD_LEN - 1] = byte;
        (aad, AAD_LEN)
    }

    /// Plaintext lengths a block may have: 1..=B; 0 only for the last block
    /// of an empty format-2 file (block 0, which holds just the end mark).
    fn check_plain_len(&self, index: u64, mark: BlockMark, len: usize) -> Result<(), ContentError> {
        let empty_ok = index == 0 && matches!(mark, BlockMark::Last { .. });
        if (len == 0 && !empty_ok) || len > self.layout.block_size() as usize {
            return Err(ContentError::BlockLength { block: index, len });
        }
        Ok(())
    }

    /// Seals plaintext block `index` (1..=B bytes) into the front of `out`
    /// with a fresh random nonce; returns the stored length (`plain.len() + 28`).
    pub fn seal_block_into(
        &self,
        index: u64,
        mark: BlockMark,
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        self.seal_block_from(&mut crypto::nonces()?, index, mark, plain, out)
    }

    /// [`Self::seal_block_into`] drawing the nonce from `nonces` (one fork
    /// check for a run of blocks; see [`crypto::nonces`]).
    pub fn seal_block_from(
        &self,
        nonces: &mut crypto::Nonces,
        index: u64,
        mark: BlockMark,
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        let nonce: [u8; NONCE_LEN] = nonces.draw()?;
        self.seal_block_with_nonce(index, mark, &nonce, plain, out)
    }

    /// Like [`Self::seal_block_into`] with a caller-chosen nonce. Only for
    /// known-answer tests: reusing a nonce for different data weakens the
    /// ciphertext (GCM-SIV then reveals equality of plaintexts).
    pub(crate) fn seal_block_with_nonce(
        &self,
        index: u64,
        mark: BlockMark,
        nonce: &[u8; NONCE_LEN],
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        self.check_plain_len(index, mark, plain.len())?;
        let need = plain.len() + BLOCK_OVERHEAD;
        let have = out.len();
        let Some(out) = out.get_mut(..need) else {
            return Err(ContentError::OutputTooSmall { need, have });
        };
        let (nonce_out, rest) = out.split_at_mut(NONCE_LEN);
        let (ct, tag) = rest.split_at_mut(plain.len());
        let tag: &mut [u8; TAG_LEN] = tag
            .try_into()
            .map_err(|_| ContentError::OutputTooSmall { need, have })?;
        nonce_out.copy_from_slice(nonce);
        let (aad, alen) = self.aad(index, mark);
        self.key
            .seal_out_of_place(nonce, &aad[..alen], plain, ct, tag)?;
        Ok(need)
    }

    /// Seals plaintext block `index` into a new vector.
    pub fn seal_block(
        &self,
        index: u64,
        mark: BlockMark,
        plain: &[u8],
    ) -> Result<Vec<u8>, ContentError> {
        self.check_plain_len(index, mark, plain.len())?;
        let mut out = vec![0u8; plain.len() + BLOCK_OVERHEAD];
        self.seal_block_into(index, mark, plain, &mut out)?;
        Ok(out)
    }

    /// Seals consecutive format-1 blocks `first_index, first_index+1, ...`
    /// from `plain` (cut into B-byte pieces, the last may be short) and
    /// appends them to `out`, ready to be written at
    /// [`BlockLayout::block_cipher_offset`]`(first_index)`.
    pub fn seal_blocks_append_v1(
        &self,
        first_index: u64,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ContentError> {
        let b = self.layout.block_size() as usize;
        let start = out.len();
        let blocks = plain.len().div_ceil(b);
        out.resize(start + plain.len() + blocks * BLOCK_OVERHEAD, 0);
        let mut pos = start;
        let mut nonces = crypto::nonces()?;
        for (i, chunk) in plain.chunks(b).enumerate() {
            let idx = first_index + i as u64;
            match self.seal_block_from(&mut nonces, idx, BlockMark::V1, chunk, &mut out[pos..]) {
                Ok(n) => pos += n,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Opens stored block `index` (`nonce || ct || tag`) sealed with `mark`
    /// into the front of `out`; returns the plaintext length. Any
    /// modification of the stored bytes, a block from another index or
    /// file, or another mark gives [`ContentError::Tampered`]; `out` then
    /// holds no plaintext.
    pub fn open_block_into(
        &self,
        index: u64,
        mark: BlockMark,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        let len = stored.len();
        let min = if matches!(mark, BlockMark::Last { .. }) && index == 0 {
            BLOCK_OVERHEAD
        } else {
            BLOCK_OVERHEAD + 1
        };
        if len < min || len > self.layout.stored_block_size() as usize {
            return Err(ContentError::BlockLength { block: index, len });
        }
        let plain_len = len - BLOCK_OVERHEAD;
        let have = out.len();
        let Some(out) = out.get_mut(..plain_len) else {
            return Err(ContentError::OutputTooSmall {
                need: plain_len,
                have,
            });
        };
        let (nonce, rest) = stored.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(plain_len);
        let nonce: &[u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| ContentError::BlockLength { block: index, len })?;
        let (aad, alen) = self.aad(index, mark);
        self.key
            .open_out_of_place(nonce, &aad[..alen], ct, tag, out)
            .map_err(|_| ContentError::Tampered { block: index })?;
        Ok(plain_len)
    }

    /// Opens stored block `index` sealed with `mark` into a new vector.
    pub fn open_block(
        &self,
        index: u64,
        mark: BlockMark,
        stored: &[u8],
    ) -> Result<Vec<u8>, ContentError> {
        let mut out = vec![0u8; stored.len().saturating_sub(BLOCK_OVERHEAD)];
        let n = self.open_block_into(index, mark, stored, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Opens block `index` of a file of format `version` whose last block
    /// is `last`, by the rules of that format:
    ///
    /// - format 1: every block with [`BlockMark::V1`];
    /// - format 2, the last block: with the end mark, dense or sparse (the
    ///   result says which); an all-zero or unmarked block is tampering, so
    ///   a file cut at a block boundary does not open;
    /// - format 2, a middle block: full length, without the end mark, or
    ///   with it (a block that was last until an append that a crash
    ///   interrupted before the block was sealed again), or all zero bytes
    ///   ([`Opened::Hole`], for the caller to check against the last block).
    pub fn open_at(
        &self,
        version: u16,
        index: u64,
        last: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<Opened, ContentError> {
        if version == HEADER_FORMAT_V1 {
            let len = self.open_block_into(index, BlockMark::V1, stored, out)?;
            return Ok(Opened::Data { len, sparse: None });
        }
        if index == last {
            for sparse in [false, true] {
                if let Ok(len) =
                    self.open_block_into(index, BlockMark::Last { sparse }, stored, out)
                {
                    return Ok(Opened::Data {
                        len,
                        sparse: Some(sparse),
                    });
                }
            }
            return Err(ContentError::Tampered { block: index });
        }
        let full = self.layout.stored_block_size() as usize;
        if stored.len() != full {
            return Err(ContentError::BlockLength {
                block: index,
                len: stored.len(),
            });
        }
        let marks = [
            BlockMark::Middle,
            BlockMark::Last { sparse: false },
            BlockMark::Last { sparse: true },
        ];
        for mark in marks {
            if let Ok(len) = self.open_block_into(index, mark, stored, out) {
                return Ok(Opened::Data { len, sparse: None });
            }
        }
        if stored.iter().all(|b| *b == 0) {
            let len = self.layout.block_size() as usize;
            if let Some(o) = out.get_mut(..len) {
                o.fill(0);
            }
            return Ok(Opened::Hole { len });
        }
        Err(ContentError::Tampered { block: index })
    }

    /// Opens consecutive format-1 stored blocks starting at `first_index`
    /// (as read from [`BlockLayout::block_cipher_offset`]`(first_index)`;
    /// every block but the last must be full) and appends the plaintext to
    /// `out`. On error `out` is restored to its old length.
    pub fn open_blocks_append_v1(
        &self,
        first_index: u64,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ContentError> {
        let s = self.layout.stored_block_size() as usize;
        let start = out.len();
        let blocks = stored.len().div_ceil(s);
        out.resize(
            start + stored.len().saturating_sub(blocks * BLOCK_OVERHEAD),
            0,
        );
        let mut pos = start;
        for (i, chunk) in stored.chunks(s).enumerate() {
            let idx = first_index + i as u64;
            match self.open_block_into(idx, BlockMark::V1, chunk, &mut out[pos..]) {
                Ok(n) => pos += n,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        out.truncate(pos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V1: BlockMark = BlockMark::V1;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn cipher() -> ContentCipher {
        ContentCipher::new(&[0x42; 32], FileId([0x11; 16]), 4096).unwrap()
    }

    /// Pins the block format: key 0x42*32, file id 0x11*16, block 3,
    /// nonce 0x07*12, plaintext "kmsfs block".
    #[test]
    fn known_answer_block() {
        let c = cipher();
        let mut out = [0u8; 11 + 28];
        let n = c
            .seal_block_with_nonce(3, V1, &[7; 12], b"kmsfs block", &mut out)
            .unwrap();
        assert_eq!(n, 39);
        assert_eq!(&out[..12], &[7; 12]);
        assert_eq!(hex(&out), KAT_BLOCK);
        assert_eq!(c.open_block(3, V1, &out).unwrap(), b"kmsfs block");
        // The associated data is exactly version || file id || index.
        let mut aad = vec![0, 1];
        aad.extend_from_slice(&[0x11; 16]);
        aad.extend_from_slice(&3u64.to_be_bytes());
        let (a, n) = c.aad(3, V1);
        assert_eq!(a[..n].to_vec(), aad);
    }

    /// Pins the format-2 block: the same inputs as `known_answer_block`,
    /// sealed as the last block of a dense file; the associated data is
    /// version 2 || file id || index || end mark 0x01.
    #[test]
    fn known_answer_block_v2() {
        let c = cipher();
        let mut out = [0u8; 11 + 28];
        let last = BlockMark::Last { sparse: false };
        c.seal_block_with_nonce(3, last, &[7; 12], b"kmsfs block", &mut out)
            .unwrap();
        assert_eq!(hex(&out), KAT_BLOCK_V2);
        let mut aad = vec![0, 2];
        aad.extend_from_slice(&[0x11; 16]);
        aad.extend_from_slice(&3u64.to_be_bytes());
        aad.push(0x01);
        let (a, n) = c.aad(3, last);
        assert_eq!(a[..n].to_vec(), aad);
        assert_eq!(c.open_block(3, last, &out).unwrap(), b"kmsfs block");
        // Another mark, or format 1, does not open it.
        for other in [
            BlockMark::Middle,
            BlockMark::Last { sparse: true },
            BlockMark::V1,
        ] {
            assert_eq!(
                c.open_block(3, other, &out),
                Err(ContentError::Tampered { block: 3 })
            );
        }
    }

    const KAT_BLOCK_V2: &str =
        "070707070707070707070707893007bb304bc96e574bd99ce6bef51ede8d066132e75ec6783a30";

    /// The end mark decides how a format-2 block opens at its place.
    #[test]
    fn open_at_rules() {
        let c = cipher();
        let full = vec![0x5A; 4096];
        let mut out = vec![0u8; 4096];
        let mid = c.seal_block(1, BlockMark::Middle, &full).unwrap();
        let last = c
            .seal_block(1, BlockMark::Last { sparse: true }, &full)
            .unwrap();
        let zeros = vec![0u8; 4124];
        // A middle block opens as a middle block, not as the last.
        assert_eq!(
            c.open_at(2, 1, 5, &mid, &mut out),
            Ok(Opened::Data {
                len: 4096,
                sparse: None
            })
        );
        assert_eq!(
            c.open_at(2, 1, 1, &mid, &mut out),
            Err(ContentError::Tampered { block: 1 })
        );
        // A last block opens as the last (saying sparse) and, after an
        // interrupted append, as a middle block.
        assert_eq!(
            c.open_at(2, 1, 1, &last, &mut out),
            Ok(Opened::Data {
                len: 4096,
                sparse: Some(true)
            })
        );
        assert!(matches!(
            c.open_at(2, 1, 3, &last, &mut out),
            Ok(Opened::Data { len: 4096, .. })
        ));
        // All zeros: a hole candidate in the middle, tampering at the end,
        // and never in format 1.
        assert_eq!(
            c.open_at(2, 1, 3, &zeros, &mut out),
            Ok(Opened::Hole { len: 4096 })
        );
        assert!(out.iter().all(|b| *b == 0));
        assert_eq!(
            c.open_at(2, 1, 1, &zeros, &mut out),
            Err(ContentError::Tampered { block: 1 })
        );
        assert!(c.open_at(1, 1, 3, &zeros, &mut out).is_err());
        // A short middle block is malformed.
        assert!(c.open_at(2, 1, 3, &mid[..100], &mut out).is_err());
        // The empty last block of an empty file.
        let empty = c
            .seal_block(0, BlockMark::Last { sparse: false }, b"")
            .unwrap();
        assert_eq!(empty.len(), 28);
        assert_eq!(
            c.open_at(2, 0, 0, &empty, &mut out),
            Ok(Opened::Data {
                len: 0,
                sparse: Some(false)
            })
        );
        assert!(
            c.seal_block(1, BlockMark::Last { sparse: false }, b"")
                .is_err()
        );
        assert!(c.seal_block(0, BlockMark::Middle, b"").is_err());
    }

    const KAT_BLOCK: &str =
        "0707070707070707070707076ef313aca6ae4dc19718f71178cb662e3bccd4a851ad5b81a40acb";

    #[test]
    fn round_trip_and_random_nonces() {
        let c = cipher();
        let a = c.seal_block(0, V1, b"same").unwrap();
        let b = c.seal_block(0, V1, b"same").unwrap();
        assert_ne!(a, b, "nonces must be random per write");
        assert_eq!(c.open_block(0, V1, &a).unwrap(), b"same");
        assert_eq!(c.open_block(0, V1, &b).unwrap(), b"same");
        let full = vec![0xA5; 4096];
        let s = c.seal_block(9, V1, &full).unwrap();
        assert_eq!(s.len(), 4124);
        assert_eq!(c.open_block(9, V1, &s).unwrap(), full);
    }

    #[test]
    fn fail_bad_plain_lengths() {
        let c = cipher();
        assert_eq!(
            c.seal_block(0, V1, b""),
            Err(ContentError::BlockLength { block: 0, len: 0 })
        );
        assert_eq!(
            c.seal_block(1, V1, &[0; 4097]),
            Err(ContentError::BlockLength {
                block: 1,
                len: 4097
            })
        );
        let mut small = [0u8; 30];
        assert_eq!(
            c.seal_block_into(0, V1, b"abc", &mut small),
            Err(ContentError::OutputTooSmall { need: 31, have: 30 })
        );
    }

    #[test]
    fn fail_every_flipped_byte() {
        let c = cipher();
        let plain: Vec<u8> = (0..100u8).collect();
        let stored = c.seal_block(5, V1, &plain).unwrap();
        for i in 0..stored.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = stored.clone();
                bad[i] ^= bit;
                assert_eq!(
                    c.open_block(5, V1, &bad),
                    Err(ContentError::Tampered { block: 5 }),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn fail_moved_block() {
        let c = cipher();
        let stored = c.seal_block(5, V1, b"data").unwrap();
        assert_eq!(
            c.open_block(6, V1, &stored),
            Err(ContentError::Tampered { block: 6 })
        );
        assert_eq!(
            c.open_block(5 + (1 << 32), V1, &stored),
            Err(ContentError::Tampered {
                block: 5 + (1 << 32)
            })
        );
        let other_file = ContentCipher::new(&[0x42; 32], FileId([0x12; 16]), 4096).unwrap();
        assert_eq!(
            other_file.open_block(5, V1, &stored),
            Err(ContentError::Tampered { block: 5 })
        );
        let other_key = ContentCipher::new(&[0x43; 32], FileId([0x11; 16]), 4096).unwrap();
        assert_eq!(
            other_key.open_block(5, V1, &stored),
            Err(ContentError::Tampered { block: 5 })
        );
    }

    #[test]
    fn fail_truncated_or_extended_block() {
        let c = cipher();
        let stored = c.seal_block(0, V1, b"0123456789").unwrap();
        for cut in 0..stored.len() {
            let r = c.open_block(0, V1, &stored[..cut]);
            assert!(
                matches!(
                    r,
                    Err(ContentError::Tampered { block: 0 })
                        | Err(ContentError::BlockLength { block: 0, .. })
                ),
                "cut {cut}: {r:?}"
            );
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert_eq!(
            c.open_block(0, V1, &longer),
            Err(ContentError::Tampered { block: 0 })
        );
        let too_long = vec![0u8; 4125];
        assert_eq!(
            c.open_block(0, V1, &too_long),
            Err(ContentError::BlockLength {
                block: 0,
                len: 4125
            })
        );
    }

    #[test]
    fn multi_block_helpers() {
        let c = ContentCipher::new(&[1; 32], FileId([2; 16]), 512).unwrap();
        let plain: Vec<u8> = (0..1300u32).map(|i| i as u8).collect();
        let mut stored = vec![0xEE];
        c.seal_blocks_append_v1(4, &plain, &mut stored).unwrap();
        assert_eq!(stored.len() as u64, 1 + c.layout().cipher_size(1300) - 128);
        let mut back = vec![0xDD];
        c.open_blocks_append_v1(4, &stored[1..], &mut back).unwrap();
        assert_eq!(&back[1..], &plain[..]);
        // Single-block opens agree with the multi-block layout.
        assert_eq!(
            c.open_block(5, V1, &stored[1 + 540..1 + 1080]).unwrap(),
            &plain[512..1024]
        );
        // Wrong start index fails and leaves `back` unchanged.
        let mut back = vec![0xDD];
        assert_eq!(
            c.open_blocks_append_v1(3, &stored[1..], &mut back),
            Err(ContentError::Tampered { block: 3 })
        );
        assert_eq!(back, vec![0xDD]);
        // Swapping two stored blocks fails.
        let mut swapped = stored[1..].to_vec();
        let (a, b) = swapped.split_at_mut(540);
        a.swap_with_slice(&mut b[..540]);
        assert!(
            c.open_blocks_append_v1(4, &swapped, &mut Vec::new())
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(index in any::<u64>(), plain in proptest::collection::vec(any::<u8>(), 1..=4096)) {
            let c = cipher();
            let stored = c.seal_block(index, V1, &plain).unwrap();
            prop_assert_eq!(stored.len(), plain.len() + 28);
            prop_assert_eq!(c.open_block(index, V1, &stored).unwrap(), plain);
        }
    }
}
