//! File content encryption: the block layout math (plaintext size <-> backing
//! size, offsets, block ranges) and sealing/opening of individual blocks.
//!
//! A backing file is the 128-byte header followed by blocks; block `i` holds
//! plaintext bytes `i*B .. (i+1)*B` (B = the volume block size) as
//! `nonce(12) || ciphertext || tag(16)`, sealed with AES-256-GCM-SIV under
//! the file's data key, associated data = header version || file id || `i`
//! (|| end mark, format 2). Only the last block may be short; in format 2 it
//! always exists (an empty file holds an empty one) and carries the end
//! mark, and a middle block may be a hole (all zero bytes) when the end
//! mark allows it. See `docs/file-format.md`.

mod cipher;
mod layout;

pub use cipher::{AAD_LEN, BlockMark, ContentCipher, Opened};
pub use layout::{BLOCK_OVERHEAD, BlockLayout, BlockSpan, BlockSpans};

use crate::crypto::CryptoError;

/// Why content could not be laid out, sealed or opened. Every variant except
/// [`ContentError::Crypto`] and [`ContentError::OutputTooSmall`] means the
/// backing file is damaged or was tampered with; the filesystem answers EIO.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ContentError {
    /// Block size not a power of two in 512..=65536.
    #[error("invalid block size {size}")]
    InvalidBlockSize { size: u64 },
    /// The backing file is shorter than the header (but not empty).
    #[error("backing file of {cipher_size} bytes is shorter than the file header")]
    TruncatedHeader { cipher_size: u64 },
    /// The backing file ends inside a block's nonce/tag overhead: truncated mid-block.
    #[error("backing file of {cipher_size} bytes is truncated inside block {block}")]
    TruncatedBlock { block: u64, cipher_size: u64 },
    /// A format-2 file without its end block: cut down to its header.
    #[error("backing file of {cipher_size} bytes has no end mark (truncated)")]
    MissingEnd { cipher_size: u64 },
    /// A stored block (or a plaintext block to seal) has an impossible length.
    #[error("block {block} has invalid length {len}")]
    BlockLength { block: u64, len: usize },
    /// A block failed authentication: flipped bytes, or a block from another
    /// file, offset or volume.
    #[error("block {block} failed authentication (tampered or misplaced)")]
    Tampered { block: u64 },
    /// The caller's output buffer is too small.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    OutputTooSmall { need: usize, have: usize },
    /// The crypto backend failed (random generator).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
