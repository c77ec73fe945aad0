//! RSA-OAEP encryption under a public key (RSAES_OAEP_SHA_256 in AWS KMS's
//! terms: OAEP with SHA-256 and MGF1-SHA-256, empty label), for the
//! write-only volumes' slot keys (`crate::keys::write_only`).

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};

use super::CryptoError;

/// An RSA public key, ready to encrypt with RSAES_OAEP_SHA_256.
pub struct RsaOaepPublicKey {
    key: OaepPublicEncryptingKey,
}

impl std::fmt::Debug for RsaOaepPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaOaepPublicKey")
            .field("bits", &(self.key.key_size_bits()))
            .finish()
    }
}

impl RsaOaepPublicKey {
    /// Loads a DER SubjectPublicKeyInfo (what GetPublicKey returns).
    pub fn from_der(spki: &[u8]) -> Result<Self, CryptoError> {
        let public = PublicEncryptingKey::from_der(spki).map_err(|_| CryptoError::KeyRejected)?;
        let key = OaepPublicEncryptingKey::new(public).map_err(|_| CryptoError::KeyRejected)?;
        Ok(Self { key })
    }

    /// The ciphertext length: the modulus size in bytes.
    pub fn ciphertext_len(&self) -> usize {
        self.key.ciphertext_size()
    }

    /// RSAES-OAEP-SHA-256 encryption of `plaintext` (random padding).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = vec![0u8; self.key.ciphertext_size()];
        let n = self
            .key
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
            .map_err(|_| CryptoError::SealFailed)?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};

    #[test]
    fn encrypts_what_the_private_key_decrypts() {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let spki = private.public_key().as_der().unwrap();
        let public = RsaOaepPublicKey::from_der(spki.as_ref()).unwrap();
        assert_eq!(public.ciphertext_len(), 256);
        let ct = public.encrypt(b"a slot key and its binding").unwrap();
        assert_eq!(ct.len(), 256);
        let private = OaepPrivateDecryptingKey::new(private).unwrap();
        let mut out = vec![0u8; 256];
        let pt = private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &ct, &mut out, None)
            .unwrap();
        assert_eq!(pt, b"a slot key and its binding");
        assert!(RsaOaepPublicKey::from_der(b"not a key").is_err());
    }
}
