//! Signed digests that seal the hash chain, and the Ed25519 key that signs them.
//!
//! A digest file `digest-<end seq, 20 digits>.json` states that the records
//! `digestStartSequence..=digestEndSequence` exist and that the last of them
//! has hash `lastHash`. Digests form their own chain (`previousDigestHash` is
//! the SHA-256 of the canonical JSON of the previous digest, signature
//! included), and each is signed with Ed25519 over the canonical JSON of the
//! digest without `signature`. `recordHashPrefixes` (base64 of the first 8
//! bytes of every covered record's hash, in order) lets a verifier name the
//! first bad record even when an attacker recomputed every hash after it.

use super::chain::{GENESIS_HASH, canonical_json, hex, sha256_hex};
use super::error::AuditError;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

/// `digestVersion` of a digest without a store anchor (as written before
/// anchors existed).
pub const DIGEST_VERSION: &str = "1.0";
/// `digestVersion` of a digest carrying a store anchor (`storeGeneration`,
/// `storeSha256`): every digest this build writes once it knows one.
pub const DIGEST_VERSION_ANCHORED: &str = "1.1";
/// Bytes of each record hash kept in `recordHashPrefixes`.
pub const HASH_PREFIX_LEN: usize = 8;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One digest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Digest {
    pub digest_version: String,
    pub digest_start_sequence: u64,
    pub digest_end_sequence: u64,
    /// `hash` of record `digest_end_sequence`.
    pub last_hash: String,
    /// End sequence of the previous digest (0 for the first).
    pub previous_digest_sequence: u64,
    /// SHA-256 of the previous digest's canonical JSON ([`GENESIS_HASH`] for the first).
    pub previous_digest_hash: String,
    /// RFC 3339 UTC.
    pub digest_time: String,
    pub public_key_fingerprint: String,
    pub signature_algorithm: String,
    /// Base64 of the first [`HASH_PREFIX_LEN`] bytes of each covered record's hash.
    pub record_hash_prefixes: String,
    /// Base64 Ed25519 signature over [`Digest::signed_bytes`].
    pub signature: String,
    /// The newest engine-store generation anchored so far (absent in
    /// digests of version 1.0). See [`StoreAnchor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_generation: Option<u64>,
    /// Lower-case hex SHA-256 of the `engine.store` file of that generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_sha256: Option<String>,
}

/// An engine store's generation and the SHA-256 of its file, as the engine
/// anchors it outside the store: in the signed digests of its audit trail.
/// An open of a store older than the newest anchor is a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreAnchor {
    pub generation: u64,
    /// Lower-case hex SHA-256 of the store file.
    pub sha256: String,
}

impl StoreAnchor {
    /// The anchor of the store file `bytes` holding generation `generation`.
    pub fn of_file(generation: u64, bytes: &[u8]) -> StoreAnchor {
        StoreAnchor {
            generation,
            sha256: sha256_hex(bytes),
        }
    }

    /// The newer of two anchors (the first on a tie).
    pub fn newest(a: Option<StoreAnchor>, b: Option<StoreAnchor>) -> Option<StoreAnchor> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.generation > a.generation { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

impl Digest {
    /// The bytes the signature covers: canonical JSON without `signature`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = self.to_value();
        if let Value::Object(m) = &mut v {
            m.remove("signature");
        }
        canonical_json(&v).into_bytes()
    }

    /// The digest's own hash (what the next digest's `previousDigestHash` holds).
    pub fn digest_hash(&self) -> String {
        sha256_hex(canonical_json(&self.to_value()).as_bytes())
    }

    /// The canonical JSON of the whole digest (the file's contents).
    pub fn to_canonical_json(&self) -> String {
        canonical_json(&self.to_value())
    }

    fn to_value(&self) -> Value {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks the signature with `key`.
    pub fn signature_valid(&self, key: &PublicKey) -> bool {
        let Ok(sig) = B64.decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&signature::ED25519, key.raw)
            .verify(&self.signed_bytes(), &sig)
            .is_ok()
    }

    /// The store anchor this digest carries, if any.
    pub fn store_anchor(&self) -> Option<StoreAnchor> {
        Some(StoreAnchor {
            generation: self.store_generation?,
            sha256: self.store_sha256.clone()?,
        })
    }

    /// Sets the store anchor (and the digest version that carries one).
    pub fn set_store_anchor(&mut self, anchor: Option<&StoreAnchor>) {
        if let Some(a) = anchor {
            self.digest_version = DIGEST_VERSION_ANCHORED.into();
            self.store_generation = Some(a.generation);
            self.store_sha256 = Some(a.sha256.clone());
        }
    }

    /// The covered record hash prefixes, decoded.
    pub fn hash_prefixes(&self) -> Option<Vec<[u8; HASH_PREFIX_LEN]>> {
        let bytes = B64.decode(&self.record_hash_prefixes).ok()?;
        if bytes.len() % HASH_PREFIX_LEN != 0 {
            return None;
        }
        Some(
            bytes
                .chunks_exact(HASH_PREFIX_LEN)
                .map(|c| {
                    let mut a = [0u8; HASH_PREFIX_LEN];
                    a.copy_from_slice(c);
                    a
                })
                .collect(),
        )
    }
}

/// The first [`HASH_PREFIX_LEN`] bytes of a hex record hash (zeros if malformed).
pub fn hash_prefix(hash_hex: &str) -> [u8; HASH_PREFIX_LEN] {
    let mut out = [0u8; HASH_PREFIX_LEN];
    let b = hash_hex.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        let hi = b.get(2 * i).and_then(|c| char::from(*c).to_digit(16));
        let lo = b.get(2 * i + 1).and_then(|c| char::from(*c).to_digit(16));
        if let (Some(hi), Some(lo)) = (hi, lo) {
            *o = u8::try_from(hi * 16 + lo).unwrap_or(0);
        }
    }
    out
}

/// The previous digest's link values for the first digest.
pub fn genesis_link() -> (u64, String) {
    (0, GENESIS_HASH.to_string())
}

/// An Ed25519 public key (raw 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    pub raw: [u8; 32],
}

impl PublicKey {
    /// Lower-case hex SHA-256 of the raw key.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.raw)
    }

    /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), as OpenSSL writes it.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(der)
        )
    }

    /// Base64 of the raw 32-byte key.
    pub fn to_base64(&self) -> String {
        B64.encode(self.raw)
    }

    /// Parses a PEM SubjectPublicKeyInfo, base64 of the raw key or of the
    /// DER SubjectPublicKeyInfo, or 64 hex digits.
    pub fn parse(text: &str) -> Result<PublicKey, AuditError> {
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----"))
            .collect();
        if body.len() == 64 && body.bytes().all(|c| c.is_ascii_hexdigit()) {
            let p = hash_prefix_full(&body);
            return Ok(PublicKey { raw: p });
        }
        let bytes = B64
            .decode(body.as_bytes())
            .map_err(|e| AuditError::PublicKeyFormat(format!("not base64/PEM: {e}")))?;
        let raw: &[u8] = if bytes.len() == 32 {
            &bytes
        } else if bytes.len() == 44 && bytes[..12] == SPKI_ED25519_PREFIX {
            &bytes[12..]
        } else {
            return Err(AuditError::PublicKeyFormat(format!(
                "{} bytes, expected a 32-byte key or an Ed25519 SubjectPublicKeyInfo",
                bytes.len()
            )));
        };
        let mut a = [0u8; 32];
        a.copy_from_slice(raw);
        Ok(PublicKey { raw: a })
    }
}

fn hash_prefix_full(hex_str: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let b = hex_str.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        let hi = char::from(b[2 * i]).to_digit(16).unwrap_or(0);
        let lo = char::from(b[2 * i + 1]).to_digit(16).unwrap_or(0);
        *o = u8::try_from(hi * 16 + lo).unwrap_or(0);
    }
    out
}

/// The trail's signing key, derived from the 32-byte seed the engine keeps sealed.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("seed", &"<redacted>")
            .field("public_key_fingerprint", &self.public.fingerprint())
            .finish()
    }
}

impl SigningKey {
    pub fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Result<SigningKey, AuditError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed[..]).map_err(|_| AuditError::SigningKey)?;
        let mut raw = [0u8; 32];
        let pk = pair.public_key().as_ref();
        if pk.len() != 32 {
            return Err(AuditError::SigningKey);
        }
        raw.copy_from_slice(pk);
        Ok(SigningKey {
            pair,
            public: PublicKey { raw },
        })
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Fills in `public_key_fingerprint`, `signature_algorithm` and `signature`.
    pub fn sign(&self, digest: &mut Digest) {
        digest.public_key_fingerprint = self.public.fingerprint();
        digest.signature_algorithm = "Ed25519".into();
        digest.signature = String::new();
        let sig = self.pair.sign(&digest.signed_bytes());
        digest.signature = B64.encode(sig.as_ref());
    }
}

/// Base64 of concatenated record hash prefixes.
pub fn encode_prefixes(prefixes: &[[u8; HASH_PREFIX_LEN]]) -> String {
    B64.encode(prefixes.concat())
}

/// `hex` re-exported for digest-related callers.
pub fn to_hex(bytes: &[u8]) -> String {
    hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed(&Zeroizing::new([7u8; 32])).unwrap()
    }

    fn digest() -> Digest {
        Digest {
            digest_version: DIGEST_VERSION.into(),
            digest_start_sequence: 1,
            digest_end_sequence: 2,
            last_hash: "ab".repeat(32),
            previous_digest_sequence: 0,
            previous_digest_hash: GENESIS_HASH.into(),
            digest_time: "2026-01-01T00:00:00Z".into(),
            public_key_fingerprint: String::new(),
            signature_algorithm: String::new(),
            record_hash_prefixes: encode_prefixes(&[[1; 8], [2; 8]]),
            signature: String::new(),
            store_generation: None,
            store_sha256: None,
        }
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let k = key();
        let mut d = digest();
        k.sign(&mut d);
        assert!(d.signature_valid(&k.public_key()));
        let parsed: Digest = serde_json::from_str(&d.to_canonical_json()).unwrap();
        assert!(parsed.signature_valid(&k.public_key()));
        let mut forged = d.clone();
        forged.digest_end_sequence = 3;
        assert!(!forged.signature_valid(&k.public_key()));
        let other = SigningKey::from_seed(&Zeroizing::new([8u8; 32])).unwrap();
        assert!(!d.signature_valid(&other.public_key()));
        assert_eq!(d.hash_prefixes().unwrap(), vec![[1; 8], [2; 8]]);
    }

    #[test]
    fn public_key_formats_parse_back() {
        let pk = key().public_key();
        assert_eq!(PublicKey::parse(&pk.to_pem()).unwrap(), pk);
        assert_eq!(PublicKey::parse(&pk.to_base64()).unwrap(), pk);
        assert_eq!(PublicKey::parse(&hex(&pk.raw)).unwrap(), pk);
        assert!(PublicKey::parse("not a key").is_err());
        assert!(!format!("{:?}", key()).contains("7, 7"));
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1: pins the seed -> public key derivation.
        let seed: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let k = SigningKey::from_seed(&Zeroizing::new(seed)).unwrap();
        assert_eq!(
            hex(&k.public_key().raw),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }
}
