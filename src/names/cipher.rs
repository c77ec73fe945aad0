//! Deterministic encryption of name components (an SIV construction over
//! HMAC-SHA256 and AES-256-GCM-SIV) and randomized encryption of symlink
//! targets, both under keys derived from the volume names key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{DirIv, NameError, validate_name};
use crate::crypto::{self, KEY_LEN, NONCE_LEN, SivKey, TAG_LEN};

/// HKDF info for the synthetic-nonce MAC key.
const INFO_MAC: &[u8] = b"kmsfs v1 names mac";
/// HKDF info for the name/symlink encryption key.
const INFO_ENC: &[u8] = b"kmsfs v1 names enc";
/// Associated-data prefix of symlink targets.
const SYMLINK_AAD_PREFIX: &[u8] = b"symlink";

/// Longest plaintext symlink target: PATH_MAX less the terminating NUL,
/// what Linux accepts. An encoding (base64url of nonce || target || tag)
/// longer than a backing symlink holds is stored in a long-link target file
/// (see [`super::long_link_name`]).
pub const MAX_SYMLINK_TARGET_LEN: usize = 4095;

/// The names cipher of a volume: keys derived once from the names key.
pub struct NamesCipher {
    /// The synthetic-nonce MAC key.
    mac: crypto::HmacSha256,
    enc: SivKey,
}

impl std::fmt::Debug for NamesCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NamesCipher(<redacted>)")
    }
}

impl NamesCipher {
    /// Derives the MAC and encryption keys from the 32-byte names key with
    /// HKDF-SHA256 (distinct info strings).
    pub fn new(names_key: &[u8; KEY_LEN]) -> Result<Self, NameError> {
        let mac_key = crypto::derive_key(names_key, INFO_MAC)?;
        let enc_key = crypto::derive_key(names_key, INFO_ENC)?;
        Ok(Self {
            mac: crypto::HmacSha256::new(mac_key.as_ref()),
            enc: SivKey::new(&enc_key)?,
        })
    }

    fn synthetic_nonce(&self, dir_iv: &DirIv, name: &[u8]) -> [u8; NONCE_LEN] {
        let mac = self.mac.sign(&[dir_iv.as_bytes(), name]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&mac[..NONCE_LEN]);
        nonce
    }

    /// Encrypts one name component for the directory with IV `dir_iv`:
    /// base64url(nonce || ct || tag), deterministic (same name, same
    /// directory, same output). The result may need long-name handling.
    pub fn encrypt_name(&self, dir_iv: &DirIv, name: &[u8]) -> Result<String, NameError> {
        validate_name(name)?;
        let nonce = self.synthetic_nonce(dir_iv, name);
        self.seal_encode(&nonce, dir_iv.as_bytes(), name)
    }

    /// base64url(nonce || AES-256-GCM-SIV(plain, aad) || tag).
    fn seal_encode(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<String, NameError> {
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        buf.extend_from_slice(nonce);
        buf.extend_from_slice(plain);
        let tag = self.enc.seal_in_place(nonce, aad, &mut buf[NONCE_LEN..])?;
        buf.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(&buf))
    }

    /// The inverse of [`Self::seal_encode`]: the nonce and the plaintext.
    fn decode_open(
        &self,
        encoded: &[u8],
        aad: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), NameError> {
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| NameError::NotBase64)?;
        if raw.len() <= NONCE_LEN + TAG_LEN {
            return Err(NameError::TooShort);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| NameError::TooShort)?;
        let mut plain = vec![0u8; ct.len()];
        self.enc
            .open_out_of_place(&nonce, aad, ct, tag, &mut plain)
            .map_err(|_| NameError::AuthFailed)?;
        Ok((nonce, plain))
    }

    /// Decrypts an encoded name (a short backing name, or the contents of a
    /// long name's side file) in the directory with IV `dir_iv`.
    pub fn decrypt_name(&self, dir_iv: &DirIv, encoded: &[u8]) -> Result<Vec<u8>, NameError> {
        let (nonce, plain) = self.decode_open(encoded, dir_iv.as_bytes())?;
        let expected = self.synthetic_nonce(dir_iv, &plain);
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &nonce)
            .map_err(|_| NameError::AuthFailed)?;
        validate_name(&plain)?;
        Ok(plain)
    }

    fn symlink_aad(dir_iv: &DirIv) -> [u8; 7 + 16] {
        let mut aad = [0u8; 7 + 16];
        aad[..7].copy_from_slice(SYMLINK_AAD_PREFIX);
        aad[7..].copy_from_slice(dir_iv.as_bytes());
        aad
    }

    /// Encrypts a symlink target (any non-empty bytes up to
    /// [`MAX_SYMLINK_TARGET_LEN`]) with a random nonce, aad = "symlink" ||
    /// dir IV of the directory holding the link; returns base64url text to
    /// store as the backing symlink's target (or, when longer than
    /// [`MAX_INLINE_LINK_LEN`](super::MAX_INLINE_LINK_LEN), in a long-link
    /// target file).
    pub fn encrypt_symlink(&self, dir_iv: &DirIv, target: &[u8]) -> Result<String, NameError> {
        let nonce: [u8; NONCE_LEN] = crypto::random_array()?;
        self.encrypt_symlink_with_nonce(dir_iv, &nonce, target)
    }

    pub(crate) fn encrypt_symlink_with_nonce(
        &self,
        dir_iv: &DirIv,
        nonce: &[u8; NONCE_LEN],
        target: &[u8],
    ) -> Result<String, NameError> {
        if target.is_empty() || target.len() > MAX_SYMLINK_TARGET_LEN {
            return Err(NameError::SymlinkTargetLength { len: target.len() });
        }
        self.seal_encode(nonce, &Self::symlink_aad(dir_iv), target)
    }

    /// Decrypts a backing symlink target written by [`Self::encrypt_symlink`].
    pub fn decrypt_symlink(&self, dir_iv: &DirIv, stored: &[u8]) -> Result<Vec<u8>, NameError> {
        let (_, plain) = self.decode_open(stored, &Self::symlink_aad(dir_iv))?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nc() -> NamesCipher {
        NamesCipher::new(&[0x33; 32]).unwrap()
    }
    const IV: DirIv = DirIv([0x44; 16]);
    const IV2: DirIv = DirIv([0x45; 16]);

    /// Pins name encryption: names key 0x33*32, dir IV 0x44*16.
    #[test]
    fn known_answer_name() {
        let enc = nc().encrypt_name(&IV, b"hello.txt").unwrap();
        assert_eq!(enc, KAT_NAME);
        assert_eq!(
            nc().decrypt_name(&IV, enc.as_bytes()).unwrap(),
            b"hello.txt"
        );
    }
    const KAT_NAME: &str = "pJqAsbMOzfh1huhAIaJVBRUT6p-8P5tRV1m3bzsLPH2NYCoIcQ";

    /// Pins symlink encryption with a fixed nonce 0x07*12.
    #[test]
    fn known_answer_symlink() {
        let enc = nc()
            .encrypt_symlink_with_nonce(&IV, &[7; 12], b"../target")
            .unwrap();
        assert_eq!(enc, KAT_SYMLINK);
        assert_eq!(
            nc().decrypt_symlink(&IV, enc.as_bytes()).unwrap(),
            b"../target"
        );
    }
    const KAT_SYMLINK: &str = "BwcHBwcHBwcHBwcHKBGHeWluMK1a3a9phXvPw5oCkAkNHRR6QQ";

    #[test]
    fn deterministic_per_directory() {
        let c = nc();
        let a = c.encrypt_name(&IV, b"x").unwrap();
        assert_eq!(a, c.encrypt_name(&IV, b"x").unwrap());
        assert_ne!(a, c.encrypt_name(&IV2, b"x").unwrap());
        assert_ne!(a, c.encrypt_name(&IV, b"y").unwrap());
        assert!(!a.contains('.') && !a.contains('/') && !a.contains('='));
    }

    #[test]
    fn fail_name_from_other_directory() {
        let c = nc();
        let a = c.encrypt_name(&IV, b"secret").unwrap();
        assert_eq!(
            c.decrypt_name(&IV2, a.as_bytes()),
            Err(NameError::AuthFailed)
        );
        let other_key = NamesCipher::new(&[0x34; 32]).unwrap();
        assert_eq!(
            other_key.decrypt_name(&IV, a.as_bytes()),
            Err(NameError::AuthFailed)
        );
    }

    #[test]
    fn fail_tampered_names() {
        let c = nc();
        let a = c.encrypt_name(&IV, b"secret").unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&a).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let bad = URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(
                c.decrypt_name(&IV, bad.as_bytes()),
                Err(NameError::AuthFailed),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        assert_eq!(c.decrypt_name(&IV, b"abc"), Err(NameError::TooShort));
        assert_eq!(
            c.decrypt_name(&IV, b"not base64!"),
            Err(NameError::NotBase64)
        );
        let padded = format!("{a}=");
        assert_eq!(
            c.decrypt_name(&IV, padded.as_bytes()),
            Err(NameError::NotBase64)
        );
    }

    /// A valid GCM-SIV ciphertext under a nonce that is not the synthetic
    /// one (e.g. a symlink blob used as a name) is refused.
    #[test]
    fn fail_non_synthetic_nonce() {
        let c = nc();
        let mut buf = vec![9u8; 12];
        buf.extend_from_slice(b"name");
        let tag = c
            .enc
            .seal_in_place(&[9; 12], IV.as_bytes(), &mut buf[12..])
            .unwrap();
        buf.extend_from_slice(&tag);
        let enc = URL_SAFE_NO_PAD.encode(&buf);
        assert_eq!(
            c.decrypt_name(&IV, enc.as_bytes()),
            Err(NameError::AuthFailed)
        );
    }

    #[test]
    fn refuses_invalid_plain_names() {
        let c = nc();
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert_eq!(c.encrypt_name(&IV, bad), Err(NameError::InvalidName));
        }
    }

    #[test]
    fn symlinks() {
        let c = nc();
        let a = c.encrypt_symlink(&IV, b"/etc/passwd").unwrap();
        let b = c.encrypt_symlink(&IV, b"/etc/passwd").unwrap();
        assert_ne!(a, b);
        assert_eq!(
            c.decrypt_symlink(&IV, a.as_bytes()).unwrap(),
            b"/etc/passwd"
        );
        assert_eq!(
            c.decrypt_symlink(&IV2, a.as_bytes()),
            Err(NameError::AuthFailed)
        );
        // A symlink blob is not a valid name and vice versa.
        assert!(c.decrypt_name(&IV, a.as_bytes()).is_err());
        let n = c
            .encrypt_name(&IV, b"/etc/passwd".split(|b| *b == b'/').nth(2).unwrap())
            .unwrap();
        assert_eq!(
            c.decrypt_symlink(&IV, n.as_bytes()),
            Err(NameError::AuthFailed)
        );
        assert_eq!(
            c.encrypt_symlink(&IV, b""),
            Err(NameError::SymlinkTargetLength { len: 0 })
        );
        let longest = vec![b'a'; MAX_SYMLINK_TARGET_LEN];
        let enc = c.encrypt_symlink(&IV, &longest).unwrap();
        assert_eq!(enc.len(), super::super::MAX_LONG_LINK_FILE_LEN);
        assert_eq!(c.decrypt_symlink(&IV, enc.as_bytes()).unwrap(), longest);
        // The longest target whose encoding a backing symlink still holds.
        let inline = c.encrypt_symlink(&IV, &[b'a'; 3043]).unwrap();
        assert!(inline.len() <= super::super::MAX_INLINE_LINK_LEN);
        let long = c.encrypt_symlink(&IV, &[b'a'; 3044]).unwrap();
        assert!(long.len() > super::super::MAX_INLINE_LINK_LEN);
        assert!(
            c.encrypt_symlink(&IV, &[b'a'; MAX_SYMLINK_TARGET_LEN + 1])
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn name_round_trip(name in proptest::collection::vec(1u8..=255, 1..=255), iv in any::<[u8; 16]>()) {
            let iv = DirIv(iv);
            let c = nc();
            match c.encrypt_name(&iv, &name) {
                Ok(enc) => prop_assert_eq!(c.decrypt_name(&iv, enc.as_bytes()).unwrap(), name),
                Err(e) => {
                    prop_assert_eq!(e, NameError::InvalidName);
                    prop_assert!(name.contains(&b'/') || name == b"." || name == b"..");
                }
            }
        }

        #[test]
        fn symlink_round_trip(target in proptest::collection::vec(any::<u8>(), 1..1000)) {
            let c = nc();
            let enc = c.encrypt_symlink(&IV, &target).unwrap();
            prop_assert_eq!(c.decrypt_symlink(&IV, enc.as_bytes()).unwrap(), target);
        }

        #[test]
        fn decrypt_never_panics(s in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = nc().decrypt_name(&IV, &s);
            let _ = nc().decrypt_symlink(&IV, &s);
        }
    }
}
