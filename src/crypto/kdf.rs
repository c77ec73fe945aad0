//! Key derivation and hashing: HKDF-SHA256, HMAC-SHA256 and SHA-256.

use aws_lc_rs::{digest, hkdf, hmac};
use zeroize::Zeroizing;

use super::CryptoError;

/// Length of every symmetric key in kmsfs (AES-256 and HMAC-SHA256 keys).
pub const KEY_LEN: usize = 32;

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

/// HKDF-SHA256 with an empty salt: derives a 32-byte key from `ikm` for the
/// purpose named by `info`. Distinct `info` strings give independent keys.
pub fn derive_key(ikm: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, Len32)
        .map_err(|_| CryptoError::KdfFailed)?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    okm.fill(out.as_mut()).map_err(|_| CryptoError::KdfFailed)?;
    Ok(out)
}

/// An HMAC-SHA256 key with its HMAC state prepared once, for a key that
/// signs on every call (aws-lc wipes the state when dropped).
pub struct HmacSha256(hmac::Key);

impl std::fmt::Debug for HmacSha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha256(<redacted>)")
    }
}

impl HmacSha256 {
    pub fn new(key: &[u8]) -> Self {
        HmacSha256(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_rfc4231_case2() {
        let tag = HmacSha256::new(b"Jefe").sign(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn derived_keys_depend_on_info() {
        let a = derive_key(&[7u8; 32], b"a").unwrap();
        let b = derive_key(&[7u8; 32], b"b").unwrap();
        assert_ne!(*a, *b);
        assert_eq!(*a, *derive_key(&[7u8; 32], b"a").unwrap());
    }

    #[test]
    fn hkdf_rfc5869_case3_prefix() {
        // RFC 5869 test case 3: IKM = 0x0b * 22, salt and info empty.
        let okm = derive_key(&[0x0b; 22], b"").unwrap();
        assert_eq!(
            hex(okm.as_ref()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }
}
