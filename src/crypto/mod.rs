//! Cryptographic primitives for the filesystem, all over `aws-lc-rs`:
//! AES-256-GCM-SIV with caller-chosen nonces, random bytes, HKDF, HMAC, SHA-256,
//! RSA-OAEP encryption under a public key.
//!
//! Higher layers ([`crate::content`], [`crate::names`]) build their formats on
//! these helpers and never touch `aws-lc-rs` directly.

mod aead;
mod kdf;
mod random;
mod rsa;

pub use aead::{NONCE_LEN, SivKey, TAG_LEN};
pub use kdf::{HmacSha256, KEY_LEN, derive_key, sha256};
pub use random::{Nonces, fill_random, nonces, random_array, random_nonce};
pub use rsa::RsaOaepPublicKey;

/// A failure inside the crypto backend. Authentication failures of sealed
/// data are reported by [`SivKey`] as [`CryptoError::OpenFailed`]; the layers
/// above turn that into their own, more specific error (a tampered block, a
/// name from another directory ...).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The backend rejected a key (wrong length).
    #[error("the crypto backend rejected a key")]
    KeyRejected,
    /// Sealing failed (buffer sizes wrong or the backend failed).
    #[error("sealing failed")]
    SealFailed,
    /// The ciphertext, its tag or its associated data do not authenticate.
    #[error("authentication of sealed data failed")]
    OpenFailed,
    /// Key derivation failed.
    #[error("key derivation failed")]
    KdfFailed,
}
