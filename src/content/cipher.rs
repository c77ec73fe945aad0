//! Sealing and opening of content blocks under a file's data key.

use super::{BLOCK_OVERHEAD, BlockLayout, ContentError};
use crate::crypto::{self, NONCE_LEN, SivKey, TAG_LEN};
use crate::format::{FILE_ID_LEN, FileId, HEADER_FORMAT_VERSION};

/// Length of a block's associated data: version (2) || file id (16) || index (8).
pub const AAD_LEN: usize = 2 + FILE_ID_LEN + 8;

/// The content cipher of one open file: the data key expanded once, the file
/// id and the block layout. `Send + Sync`; share it between threads.
pub struct ContentCipher {
    key: SivKey,
    aad_prefix: [u8; 2 + FILE_ID_LEN],
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
        let mut aad_prefix = [0u8; 2 + FILE_ID_LEN];
        aad_prefix[..2].copy_from_slice(&HEADER_FORMAT_VERSION.to_be_bytes());
        aad_prefix[2..].copy_from_slice(file_id.as_bytes());
        Ok(Self {
            key,
            aad_prefix,
            layout,
        })
    }

    /// The block layout.
    pub fn layout(&self) -> BlockLayout {
        self.layout
    }

    fn aad(&self, index: u64) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[..2 + FILE_ID_LEN].copy_from_slice(&self.aad_prefix);
        aad[2 + FILE_ID_LEN..].copy_from_slice(&index.to_be_bytes());
        aad
    }

    fn check_plain_len(&self, index: u64, len: usize) -> Result<(), ContentError> {
        if len == 0 || len > self.layout.block_size() as usize {
            return Err(ContentError::BlockLength { block: index, len });
        }
        Ok(())
    }

    /// Seals plaintext block `index` (1..=B bytes) into the front of `out`
    /// with a fresh random nonce; returns the stored length (`plain.len() + 28`).
    pub fn seal_block_into(
        &self,
        index: u64,
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        let nonce: [u8; NONCE_LEN] = crypto::random_nonce()?;
        self.seal_block_with_nonce(index, &nonce, plain, out)
    }

    /// Like [`Self::seal_block_into`] with a caller-chosen nonce. Only for
    /// known-answer tests: reusing a nonce for different data weakens the
    /// ciphertext (GCM-SIV then reveals equality of plaintexts).
    pub(crate) fn seal_block_with_nonce(
        &self,
        index: u64,
        nonce: &[u8; NONCE_LEN],
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        self.check_plain_len(index, plain.len())?;
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
        self.key
            .seal_out_of_place(nonce, &self.aad(index), plain, ct, tag)?;
        Ok(need)
    }

    /// Seals plaintext block `index` and appends the stored bytes to `out`.
    pub fn seal_block_append(
        &self,
        index: u64,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ContentError> {
        self.check_plain_len(index, plain.len())?;
        let start = out.len();
        out.resize(start + plain.len() + BLOCK_OVERHEAD, 0);
        match self.seal_block_into(index, plain, &mut out[start..]) {
            Ok(_) => Ok(()),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Seals plaintext block `index` into a new vector.
    pub fn seal_block(&self, index: u64, plain: &[u8]) -> Result<Vec<u8>, ContentError> {
        let mut out = Vec::with_capacity(plain.len() + BLOCK_OVERHEAD);
        self.seal_block_append(index, plain, &mut out)?;
        Ok(out)
    }

    /// Seals consecutive blocks `first_index, first_index+1, ...` from
    /// `plain` (cut into B-byte pieces, the last may be short) and appends
    /// them to `out`, ready to be written at
    /// [`BlockLayout::block_cipher_offset`]`(first_index)`.
    pub fn seal_blocks_append(
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
        for (i, chunk) in plain.chunks(b).enumerate() {
            match self.seal_block_into(first_index + i as u64, chunk, &mut out[pos..]) {
                Ok(n) => pos += n,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Opens stored block `index` (`nonce || ct || tag`) into the front of
    /// `out`; returns the plaintext length. Any modification of the stored
    /// bytes, or a block from another index or file, gives
    /// [`ContentError::Tampered`]; `out` then holds no plaintext.
    pub fn open_block_into(
        &self,
        index: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        let len = stored.len();
        if len <= BLOCK_OVERHEAD || len > self.layout.stored_block_size() as usize {
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
        self.key
            .open_out_of_place(nonce, &self.aad(index), ct, tag, out)
            .map_err(|_| ContentError::Tampered { block: index })?;
        Ok(plain_len)
    }

    /// Opens stored block `index` into a new vector.
    pub fn open_block(&self, index: u64, stored: &[u8]) -> Result<Vec<u8>, ContentError> {
        let mut out = vec![0u8; stored.len().saturating_sub(BLOCK_OVERHEAD)];
        let n = self.open_block_into(index, stored, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Opens consecutive stored blocks starting at `first_index` (as read
    /// from [`BlockLayout::block_cipher_offset`]`(first_index)`; every block
    /// but the last must be full) and appends the plaintext to `out`. On
    /// error `out` is restored to its old length.
    pub fn open_blocks_append(
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
            match self.open_block_into(first_index + i as u64, chunk, &mut out[pos..]) {
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
            .seal_block_with_nonce(3, &[7; 12], b"kmsfs block", &mut out)
            .unwrap();
        assert_eq!(n, 39);
        assert_eq!(&out[..12], &[7; 12]);
        assert_eq!(hex(&out), KAT_BLOCK);
        assert_eq!(c.open_block(3, &out).unwrap(), b"kmsfs block");
        // The associated data is exactly version || file id || index.
        let mut aad = vec![0, 1];
        aad.extend_from_slice(&[0x11; 16]);
        aad.extend_from_slice(&3u64.to_be_bytes());
        assert_eq!(c.aad(3).to_vec(), aad);
    }

    const KAT_BLOCK: &str =
        "0707070707070707070707076ef313aca6ae4dc19718f71178cb662e3bccd4a851ad5b81a40acb";

    #[test]
    fn round_trip_and_random_nonces() {
        let c = cipher();
        let a = c.seal_block(0, b"same").unwrap();
        let b = c.seal_block(0, b"same").unwrap();
        assert_ne!(a, b, "nonces must be random per write");
        assert_eq!(c.open_block(0, &a).unwrap(), b"same");
        assert_eq!(c.open_block(0, &b).unwrap(), b"same");
        let full = vec![0xA5; 4096];
        let s = c.seal_block(9, &full).unwrap();
        assert_eq!(s.len(), 4124);
        assert_eq!(c.open_block(9, &s).unwrap(), full);
    }

    #[test]
    fn fail_bad_plain_lengths() {
        let c = cipher();
        assert_eq!(
            c.seal_block(0, b""),
            Err(ContentError::BlockLength { block: 0, len: 0 })
        );
        assert_eq!(
            c.seal_block(1, &[0; 4097]),
            Err(ContentError::BlockLength {
                block: 1,
                len: 4097
            })
        );
        let mut small = [0u8; 30];
        assert_eq!(
            c.seal_block_into(0, b"abc", &mut small),
            Err(ContentError::OutputTooSmall { need: 31, have: 30 })
        );
    }

    #[test]
    fn fail_every_flipped_byte() {
        let c = cipher();
        let plain: Vec<u8> = (0..100u8).collect();
        let stored = c.seal_block(5, &plain).unwrap();
        for i in 0..stored.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = stored.clone();
                bad[i] ^= bit;
                assert_eq!(
                    c.open_block(5, &bad),
                    Err(ContentError::Tampered { block: 5 }),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn fail_moved_block() {
        let c = cipher();
        let stored = c.seal_block(5, b"data").unwrap();
        assert_eq!(
            c.open_block(6, &stored),
            Err(ContentError::Tampered { block: 6 })
        );
        assert_eq!(
            c.open_block(5 + (1 << 32), &stored),
            Err(ContentError::Tampered {
                block: 5 + (1 << 32)
            })
        );
        let other_file = ContentCipher::new(&[0x42; 32], FileId([0x12; 16]), 4096).unwrap();
        assert_eq!(
            other_file.open_block(5, &stored),
            Err(ContentError::Tampered { block: 5 })
        );
        let other_key = ContentCipher::new(&[0x43; 32], FileId([0x11; 16]), 4096).unwrap();
        assert_eq!(
            other_key.open_block(5, &stored),
            Err(ContentError::Tampered { block: 5 })
        );
    }

    #[test]
    fn fail_truncated_or_extended_block() {
        let c = cipher();
        let stored = c.seal_block(0, b"0123456789").unwrap();
        for cut in 0..stored.len() {
            let r = c.open_block(0, &stored[..cut]);
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
            c.open_block(0, &longer),
            Err(ContentError::Tampered { block: 0 })
        );
        let too_long = vec![0u8; 4125];
        assert_eq!(
            c.open_block(0, &too_long),
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
        c.seal_blocks_append(4, &plain, &mut stored).unwrap();
        assert_eq!(stored.len() as u64, 1 + c.layout().cipher_size(1300) - 128);
        let mut back = vec![0xDD];
        c.open_blocks_append(4, &stored[1..], &mut back).unwrap();
        assert_eq!(&back[1..], &plain[..]);
        // Single-block opens agree with the multi-block layout.
        assert_eq!(
            c.open_block(5, &stored[1 + 540..1 + 1080]).unwrap(),
            &plain[512..1024]
        );
        // Wrong start index fails and leaves `back` unchanged.
        let mut back = vec![0xDD];
        assert_eq!(
            c.open_blocks_append(3, &stored[1..], &mut back),
            Err(ContentError::Tampered { block: 3 })
        );
        assert_eq!(back, vec![0xDD]);
        // Swapping two stored blocks fails.
        let mut swapped = stored[1..].to_vec();
        let (a, b) = swapped.split_at_mut(540);
        a.swap_with_slice(&mut b[..540]);
        assert!(c.open_blocks_append(4, &swapped, &mut Vec::new()).is_err());
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(index in any::<u64>(), plain in proptest::collection::vec(any::<u8>(), 1..=4096)) {
            let c = cipher();
            let stored = c.seal_block(index, &plain).unwrap();
            prop_assert_eq!(stored.len(), plain.len() + 28);
            prop_assert_eq!(c.open_block(index, &stored).unwrap(), plain);
        }
    }
}
