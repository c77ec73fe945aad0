//! JSON wire helpers: base64 binary fields, a zeroizing redacted byte type
//! for plaintext fields, AWS-style tags, and request validation helpers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// `#[serde(with = "crate::wire::b64")]` for `Vec<u8>` fields (ciphertexts).
pub mod b64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("invalid base64 in a binary field"))
    }
}

/// Secret bytes (plaintexts, data keys): base64 in JSON, zeroized on drop,
/// `<redacted>` in Debug.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(pub Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(v: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(v))
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(v: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(v)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(v: &[u8]) -> Self {
        SecretBytes::new(v.to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let enc = Zeroizing::new(STANDARD.encode(self.0.as_slice()));
        s.serialize_str(&enc)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        STANDARD
            .decode(s.as_bytes())
            .map(SecretBytes::new)
            .map_err(|_| serde::de::Error::custom("invalid base64 in a binary field"))
    }
}

/// One tag, AWS shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub tag_key: String,
    pub tag_value: String,
}

/// `EncryptionAlgorithm` values: only `SYMMETRIC_DEFAULT` exists here.
pub const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

/// Checks an optional `EncryptionAlgorithm` request field.
pub fn check_algorithm(alg: Option<&str>) -> Result<(), crate::KmsError> {
    match alg {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => Err(crate::KmsError::InvalidKeyUsage(format!(
            "encryption algorithm {other} is not supported by a SYMMETRIC_DEFAULT key"
        ))),
    }
}

/// Paging: `Limit` 1..=1000 (default 100).
pub fn page_limit(limit: Option<u32>) -> Result<usize, crate::KmsError> {
    match limit {
        None => Ok(100),
        Some(l @ 1..=1000) => Ok(l as usize),
        Some(l) => Err(crate::KmsError::Validation(format!(
            "Limit must be between 1 and 1000, got {l}"
        ))),
    }
}

/// One page of `items` (already in order) after `marker` (exclusive): the
/// page, `NextMarker` and `Truncated`.
pub fn page<T: Clone, F: Fn(&T) -> String>(
    items: &[T],
    marker: Option<&str>,
    limit: usize,
    key: F,
) -> Result<(Vec<T>, Option<String>, bool), crate::KmsError> {
    let start = match marker {
        None => 0,
        Some(m) => {
            let pos = items
                .iter()
                .position(|i| key(i).as_str() > m)
                .unwrap_or(items.len());
            if m.is_empty() {
                return Err(crate::KmsError::Validation(
                    "Marker must not be empty".into(),
                ));
            }
            pos
        }
    };
    let end = (start + limit).min(items.len());
    let out = items[start..end].to_vec();
    let truncated = end < items.len();
    let next = if truncated {
        out.last().map(&key)
    } else {
        None
    };
    Ok((out, next, truncated))
}
