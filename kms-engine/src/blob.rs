//! The engine ciphertext blob (format v1): version, key id, key version,
//! nonce, AES-256-GCM-SIV sealed bytes. See `docs/file-format.md`.
//!
//! ```text
//! offset  size  field
//! 0       1     format version = 0x01
//! 1       16    key id (raw UUID bytes)
//! 17      4     key version (u32 BE)
//! 21      12    nonce
//! 33      n     ciphertext (n = plaintext length)
//! 33+n    16    GCM-SIV tag
//! ```
//! AAD = bytes 0..21 of the blob || canonical_encoding(encryption context).

use crate::KmsError;
use crate::context::{EncryptionContext, canonical_encoding};
use crate::ids::KeyId;
use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Format version byte of blobs written by this engine.
pub const BLOB_VERSION: u8 = 0x01;
/// Bytes before the ciphertext: version, key id, key version, nonce.
pub const HEADER_LEN: usize = 1 + 16 + 4 + NONCE_LEN;
/// Bytes of the header bound as associated data (version, key id, key version).
pub const BOUND_HEADER_LEN: usize = 1 + 16 + 4;
pub const TAG_LEN: usize = 16;
/// Total overhead over the plaintext length.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The parsed header of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: KeyId,
    pub key_version: u32,
}

/// Reads the header, checking version and minimum length. Any malformed
/// blob is an `InvalidCiphertext`.
pub fn parse_header(blob: &[u8]) -> Result<BlobHeader, KmsError> {
    if blob.len() < OVERHEAD + 1 {
        return Err(invalid());
    }
    if blob[0] != BLOB_VERSION {
        return Err(invalid());
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&blob[1..17]);
    let mut ver = [0u8; 4];
    ver.copy_from_slice(&blob[17..21]);
    Ok(BlobHeader {
        key_id: KeyId(id),
        key_version: u32::from_be_bytes(ver),
    })
}

fn invalid() -> KmsError {
    KmsError::InvalidCiphertext(
        "the ciphertext is invalid or does not match its encryption context".into(),
    )
}

/// An AES-256-GCM-SIV key ready for use (precomputed once per key version).
pub fn aead_key(material: &[u8; 32]) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM_SIV, material)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::Internal("cannot build AES-256-GCM-SIV key".into()))
}

fn aad(header: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let enc = canonical_encoding(ctx);
    let mut a = Vec::with_capacity(BOUND_HEADER_LEN + enc.len());
    a.extend_from_slice(&header[..BOUND_HEADER_LEN]);
    a.extend_from_slice(&enc);
    a
}

/// Seals `plaintext` with a fresh random nonce.
pub fn seal(
    key: &LessSafeKey,
    header: BlobHeader,
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| KmsError::Internal("random source failed".into()))?;
    seal_with_nonce(key, header, nonce, plaintext, ctx)
}

/// Seals with a given nonce. Only [`seal`] (random nonce) is used for real
/// ciphertexts; this exists for the known-answer test.
pub(crate) fn seal_with_nonce(
    key: &LessSafeKey,
    header: BlobHeader,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(BLOB_VERSION);
    out.extend_from_slice(&header.key_id.0);
    out.extend_from_slice(&header.key_version.to_be_bytes());
    out.extend_from_slice(&nonce);
    let aad = aad(&out, ctx);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[HEADER_LEN..],
        )
        .map_err(|_| KmsError::Internal("sealing failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a blob whose header was already parsed and whose key was looked up.
pub fn open(
    key: &LessSafeKey,
    blob: &[u8],
    ctx: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    if blob.len() < OVERHEAD + 1 {
        return Err(invalid());
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[BOUND_HEADER_LEN..HEADER_LEN]);
    let aad = aad(blob, ctx);
    let tag_at = blob.len() - TAG_LEN;
    let mut buf = Zeroizing::new(blob[HEADER_LEN..tag_at].to_vec());
    key.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &blob[tag_at..],
        buf.as_mut_slice(),
    )
    .map_err(|_| invalid())?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::context_from;

    fn kat_key() -> LessSafeKey {
        let mut m = [0u8; 32];
        for (i, b) in m.iter_mut().enumerate() {
            *b = i as u8;
        }
        aead_key(&m).unwrap()
    }

    fn kat_header() -> BlobHeader {
        BlobHeader {
            key_id: KeyId::parse("00112233-4455-4677-8899-aabbccddeeff").unwrap(),
            key_version: 2,
        }
    }

    #[test]
    fn known_answer() {
        let ctx = context_from([("kmsfs:path", "/a")]);
        let blob =
            seal_with_nonce(&kat_key(), kat_header(), [0xa5; 12], &[0x42; 32], &ctx).unwrap();
        let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(blob.len(), 81);
        assert_eq!(hex, KAT_HEX);
        assert_eq!(&*open(&kat_key(), &blob, &ctx).unwrap(), &[0x42; 32]);
    }

    const KAT_HEX: &str = concat!(
        "01",
        "00112233445546778899aabbccddeeff",
        "00000002",
        "a5a5a5a5a5a5a5a5a5a5a5a5",
        "1cd8bbf067fbf837cd9ccb0094f593889256962f76f73ec2963acb1d420a9fcd",
        "fd1eabf95619e957ea6b3428fdfd2329"
    );

    #[test]
    fn every_flipped_byte_fails() {
        let ctx = context_from([("a", "b")]);
        let blob = seal(&kat_key(), kat_header(), b"hello", &ctx).unwrap();
        for i in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = blob.clone();
                t[i] ^= bit;
                let r = parse_header(&t).and_then(|_| open(&kat_key(), &t, &ctx));
                assert!(matches!(r, Err(KmsError::InvalidCiphertext(_))), "byte {i}");
            }
        }
    }

    #[test]
    fn context_is_bound() {
        let key = kat_key();
        let a = context_from([("ab", "c")]);
        let b = context_from([("a", "bc")]);
        let blob = seal(&key, kat_header(), b"x", &a).unwrap();
        assert!(open(&key, &blob, &a).is_ok());
        assert!(matches!(
            open(&key, &blob, &b),
            Err(KmsError::InvalidCiphertext(_))
        ));
        assert!(open(&key, &blob, &EncryptionContext::new()).is_err());
    }
}
