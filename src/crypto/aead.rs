//! AES-256-GCM-SIV with explicit nonces, prepared once per key.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};

use super::CryptoError;

/// Nonce length of AES-256-GCM-SIV.
pub const NONCE_LEN: usize = 12;
/// Tag length of AES-256-GCM-SIV.
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM-SIV key, expanded once and reused for many operations.
/// Cheap to share between threads (`Send + Sync`).
pub struct SivKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SivKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SivKey(<redacted>)")
    }
}

impl SivKey {
    /// Prepares `key` (32 bytes) for sealing and opening.
    pub fn new(key: &[u8; 32]) -> Result<Self, CryptoError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM_SIV, key).map_err(|_| CryptoError::KeyRejected)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts `plain` into `out_ct` (same length) and writes the tag into
    /// `out_tag`. `plain` is left untouched.
    pub fn seal_out_of_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plain: &[u8],
        out_ct: &mut [u8],
        out_tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        if out_ct.len() != plain.len() {
            return Err(CryptoError::SealFailed);
        }
        self.key
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                plain,
                out_ct,
                &[],
                out_tag,
            )
            .map_err(|_| CryptoError::SealFailed)
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| CryptoError::SealFailed)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `ct` (with its `tag`) into `out_plain` (same length).
    /// On failure `out_plain` is zeroed, so no unauthenticated bytes leak.
    pub fn open_out_of_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct: &[u8],
        tag: &[u8],
        out_plain: &mut [u8],
    ) -> Result<(), CryptoError> {
        if out_plain.len() != ct.len() || tag.len() != TAG_LEN {
            return Err(CryptoError::OpenFailed);
        }
        let res = self.key.open_separate_gather(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            ct,
            tag,
            out_plain,
        );
        if res.is_err() {
            out_plain.fill(0);
            return Err(CryptoError::OpenFailed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_in_place_agrees() {
        let k = SivKey::new(&[1u8; 32]).unwrap();
        let nonce = [2u8; NONCE_LEN];
        let plain = b"hello gcm-siv".to_vec();
        let mut ct = vec![0u8; plain.len()];
        let mut tag = [0u8; TAG_LEN];
        k.seal_out_of_place(&nonce, b"aad", &plain, &mut ct, &mut tag)
            .unwrap();
        let mut in_place = plain.clone();
        let tag2 = k.seal_in_place(&nonce, b"aad", &mut in_place).unwrap();
        assert_eq!(ct, in_place);
        assert_eq!(tag, tag2);
        let mut back = vec![0u8; ct.len()];
        k.open_out_of_place(&nonce, b"aad", &ct, &tag, &mut back)
            .unwrap();
        assert_eq!(back, plain);
        assert_eq!(
            k.open_out_of_place(&nonce, b"aaD", &ct, &tag, &mut back),
            Err(CryptoError::OpenFailed)
        );
        assert!(back.iter().all(|b| *b == 0));
    }

    /// RFC 8452 appendix C.2, AES-256-GCM-SIV, first vector with plaintext
    /// (8 bytes), no AAD.
    #[test]
    fn rfc8452_known_answer() {
        let mut key = [0u8; 32];
        key[0] = 1;
        let mut nonce = [0u8; 12];
        nonce[0] = 3;
        let plain = [1u8, 0, 0, 0, 0, 0, 0, 0];
        let k = SivKey::new(&key).unwrap();
        let mut ct = [0u8; 8];
        let mut tag = [0u8; 16];
        k.seal_out_of_place(&nonce, &[], &plain, &mut ct, &mut tag)
            .unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&ct), "c2ef328e5c71c83b");
        assert_eq!(hex(&tag), "843122130f7364b761e0b97427e3df28");
    }
}
