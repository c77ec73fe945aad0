//! Key identifiers: UUID v4 key ids, ARNs, alias names, and request ids.

use crate::KmsError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The region ARNs carry unless [`set_arn_scope`] chose another.
pub const DEFAULT_REGION: &str = "local";
/// The account id ARNs and key metadata carry unless [`set_arn_scope`]
/// chose another.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// `arn:aws:kms:REGION:ACCOUNT:` and ACCOUNT, once chosen.
static SCOPE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Sets the region and account id of every ARN this process shows and
/// accepts (`arn:aws:kms:REGION:ACCOUNT:key/ID`), as AWS clients expect
/// them: for the whole process, once, before the first ARN is made (the
/// daemon does it at start). Setting the same scope again is accepted.
pub fn set_arn_scope(region: &str, account_id: &str) -> Result<(), KmsError> {
    let region_ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(KmsError::Validation(format!(
            "region {region:?} must be 1 to 32 lower-case letters, digits and '-'"
        )));
    }
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KmsError::Validation(format!(
            "account id {account_id:?} must be 12 digits"
        )));
    }
    let want = (
        format!("arn:aws:kms:{region}:{account_id}:"),
        account_id.to_string(),
    );
    let got = SCOPE.get_or_init(|| want.clone());
    if *got == want {
        Ok(())
    } else {
        Err(KmsError::Validation(format!(
            "ARNs are already {}..., set before {region}/{account_id}",
            got.0
        )))
    }
}

fn scope() -> &'static (String, String) {
    SCOPE.get_or_init(|| {
        (
            format!("arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT_ID}:"),
            DEFAULT_ACCOUNT_ID.to_string(),
        )
    })
}

/// `arn:aws:kms:REGION:ACCOUNT:`, the prefix of every ARN of this process
/// (`arn:aws:kms:local:000000000000:` unless [`set_arn_scope`] chose).
pub fn arn_prefix() -> &'static str {
    &scope().0
}

/// The account id of key metadata (`AWSAccountId`).
pub fn account_id() -> &'static str {
    &scope().1
}

/// A key id: 16 raw UUID (v4) bytes; shown as the hyphenated lowercase form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// A fresh random UUID v4.
    pub fn generate() -> Result<KeyId, KmsError> {
        Ok(KeyId(random_uuid_bytes()?))
    }

    /// Parses the hyphenated UUID form (case-insensitive).
    pub fn parse(s: &str) -> Option<KeyId> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            let hi = hex_val(b[i])?;
            let lo = hex_val(*b.get(i + 1)?)?;
            out[n] = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        Some(KeyId(out))
    }

    /// `arn:aws:kms:REGION:ACCOUNT:key/<id>` ([`arn_prefix`]).
    pub fn arn(&self) -> String {
        key_arn(&self.to_string())
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut o = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                o += 1;
            }
            out[o] = HEX[usize::from(byte >> 4)];
            out[o + 1] = HEX[usize::from(byte & 0x0f)];
            o += 2;
        }
        // Only ASCII hex digits and '-' were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// `arn:aws:kms:REGION:ACCOUNT:key/<id>`: the one place a key ARN is
/// made (key metadata, policy evaluation, audit records).
pub fn key_arn(key_id: &str) -> String {
    format!("{}key/{key_id}", arn_prefix())
}

/// `arn:aws:kms:REGION:ACCOUNT:alias/<name>` for `alias/<name>`.
pub fn alias_arn(alias_name: &str) -> String {
    format!("{}{alias_name}", arn_prefix())
}

/// What a `KeyId` request parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Id(KeyId),
    /// A full alias name, `alias/NAME`.
    Alias(String),
}

/// Parses a key id, key ARN, `alias/NAME` or alias ARN.
pub fn parse_key_ref(s: &str) -> Result<KeyRef, KmsError> {
    if s.is_empty() || s.len() > 2048 {
        return Err(KmsError::Validation(
            "KeyId must be 1 to 2048 characters".into(),
        ));
    }
    if let Some(rest) = s.strip_prefix(arn_prefix()) {
        if let Some(id) = rest.strip_prefix("key/") {
            return KeyId::parse(id)
                .map(KeyRef::Id)
                .ok_or_else(|| KmsError::NotFound(format!("Invalid keyId {s}")));
        }
        if rest.starts_with("alias/") {
            return Ok(KeyRef::Alias(rest.to_string()));
        }
        return Err(KmsError::InvalidArn(format!("invalid ARN {s}")));
    }
    if s.starts_with("arn:") {
        return Err(KmsError::NotFound(format!(
            "ARN {s} does not belong to this engine"
        )));
    }
    if s.starts_with("alias/") {
        return Ok(KeyRef::Alias(s.to_string()));
    }
    KeyId::parse(s)
        .map(KeyRef::Id)
        .ok_or_else(|| KmsError::NotFound(format!("Invalid keyId {s}")))
}

/// 16 random bytes with the UUID v4 version and variant bits set.
pub fn random_uuid_bytes() -> Result<[u8; 16], KmsError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| KmsError::Internal("random source failed".into()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// 16 random bytes with the UUID v4 version and variant bits set, drawn
/// from aws-lc-rs in batches per thread: for ids that must be unique, not
/// secret (request and audit event ids), keeping the per-call cost of the
/// random source (one `RAND_bytes` with its fork checks and DRBG update)
/// off the hot path.
pub fn pooled_uuid_bytes() -> Result<[u8; 16], KmsError> {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<([u8; 1024], usize)> = const { RefCell::new(([0u8; 1024], 1024)) };
    }
    let mut b = POOL.with(|p| -> Result<[u8; 16], KmsError> {
        let mut p = p.borrow_mut();
        if p.1 + 16 > p.0.len() {
            aws_lc_rs::rand::fill(&mut p.0)
                .map_err(|_| KmsError::Internal("random source failed".into()))?;
            p.1 = 0;
        }
        let mut out = [0u8; 16];
        let at = p.1;
        out.copy_from_slice(&p.0[at..at + 16]);
        p.0[at..at + 16].fill(0);
        p.1 += 16;
        Ok(out)
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// A fresh request id (UUID v4 string) for audit records, from
/// [`pooled_uuid_bytes`].
pub fn new_request_id() -> Result<String, KmsError> {
    Ok(KeyId(pooled_uuid_bytes()?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trip_and_refs() {
        let id = KeyId::generate().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_eq!(KeyId::parse(&s), Some(id));
        assert_eq!(KeyId::parse(&s.to_uppercase()), Some(id));
        assert_eq!(parse_key_ref(&id.arn()).unwrap(), KeyRef::Id(id));
        assert_eq!(
            parse_key_ref("alias/x").unwrap(),
            KeyRef::Alias("alias/x".into())
        );
        assert_eq!(
            parse_key_ref(&alias_arn("alias/x")).unwrap(),
            KeyRef::Alias("alias/x".into())
        );
        assert!(matches!(parse_key_ref("nope"), Err(KmsError::NotFound(_))));
        assert!(matches!(parse_key_ref(""), Err(KmsError::Validation(_))));
    }

    #[test]
    fn arn_scope_is_checked_and_set_once() {
        assert!(set_arn_scope("US-EAST-1", "111122223333").is_err());
        assert!(set_arn_scope("us-east-1", "1111").is_err());
        // This process (the unit tests) keeps the default scope.
        assert!(set_arn_scope(DEFAULT_REGION, DEFAULT_ACCOUNT_ID).is_ok());
        assert!(set_arn_scope("us-east-1", "111122223333").is_err());
        assert_eq!(arn_prefix(), "arn:aws:kms:local:000000000000:");
        assert_eq!(account_id(), DEFAULT_ACCOUNT_ID);
    }
}
