//! Access keys: the credentials AWS clients sign requests with (SigV4) on
//! the engine's HTTPS endpoint. Each maps to one local principal, named as
//! `kmsfs kms --principal` names one (`user:NAME` or `uid:N`), which key
//! policies and grants then name as they name any local caller.
//!
//! Ids look like AWS's (`AKIA` and 16 characters of `A-Z2-7`, 20 in all);
//! secrets are 40 characters of base64 (30 random bytes), as AWS's are.
//! Both live only in the sealed engine store; the secret is shown once, by
//! CreateAccessKey.

use crate::KmsError;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// Prefix of every access key id (AWS's prefix for long-term keys).
pub const ACCESS_KEY_ID_PREFIX: &str = "AKIA";
/// Length of an access key id.
pub const ACCESS_KEY_ID_LEN: usize = 20;
/// Length of a secret access key.
pub const SECRET_LEN: usize = 40;
/// Most access keys one principal may have (AWS IAM allows two per user,
/// enough to rotate; the engine allows a few more for several hosts).
pub const MAX_KEYS_PER_PRINCIPAL: usize = 8;
/// Last-used times are kept to this precision: a request writes the store
/// at most once per key and period (AWS IAM also reports them coarsely).
pub const LAST_USED_GRANULARITY_SECS: i64 = 3600;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A secret access key: zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeySecret(pub Zeroizing<String>);

impl AccessKeySecret {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKeySecret(<redacted>)")
    }
}

impl Serialize for AccessKeySecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccessKeySecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| AccessKeySecret(Zeroizing::new(s)))
    }
}

/// IAM's access key statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKeyStatus {
    Active,
    Inactive,
}

impl AccessKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKeyStatus::Active => "Active",
            AccessKeyStatus::Inactive => "Inactive",
        }
    }

    /// `Active` or `Inactive` (AWS's spelling; case-sensitive as in IAM).
    pub fn parse(s: &str) -> Result<AccessKeyStatus, KmsError> {
        match s {
            "Active" => Ok(AccessKeyStatus::Active),
            "Inactive" => Ok(AccessKeyStatus::Inactive),
            other => Err(KmsError::Validation(format!(
                "Status must be Active or Inactive, not {other:?}"
            ))),
        }
    }
}

/// One access key as the store keeps it (store format 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub id: String,
    pub secret: AccessKeySecret,
    /// The principal spec (`user:NAME` or `uid:N`) requests act as.
    pub principal: String,
    pub status: AccessKeyStatus,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds, to [`LAST_USED_GRANULARITY_SECS`]; `None` if never used.
    pub last_used: Option<i64>,
}

impl AccessKeyRecord {
    /// A new Active key for `principal` with a fresh id and secret.
    pub fn generate(principal: &str, now: i64) -> Result<AccessKeyRecord, KmsError> {
        let mut raw = Zeroizing::new([0u8; 30 + 16]);
        aws_lc_rs::rand::fill(raw.as_mut())
            .map_err(|_| KmsError::Internal("random source failed".into()))?;
        let (secret_bytes, id_bytes) = raw.split_at(30);
        let mut id = String::with_capacity(ACCESS_KEY_ID_LEN);
        id.push_str(ACCESS_KEY_ID_PREFIX);
        id.extend(
            id_bytes
                .iter()
                .map(|b| char::from(BASE32[usize::from(b & 31)])),
        );
        let secret = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(secret_bytes));
        Ok(AccessKeyRecord {
            id,
            secret: AccessKeySecret(secret),
            principal: principal.to_string(),
            status: AccessKeyStatus::Active,
            created: now,
            last_used: None,
        })
    }
}

/// Whether `id` has the form of an access key id this engine issues.
pub fn is_access_key_id(id: &str) -> bool {
    id.len() == ACCESS_KEY_ID_LEN
        && id.starts_with(ACCESS_KEY_ID_PREFIX)
        && id.bytes().all(|b| BASE32.contains(&b))
}

/// The local principal spec an `arn:aws:iam::ACCOUNT:user/NAME` names
/// (`user:NAME`), so that policies written for AWS name local users; `None`
/// for anything else.
pub fn iam_user_arn_spec(s: &str) -> Option<String> {
    let rest = s.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("user/")?;
    // IAM user paths (`user/division/NAME`) name the last segment.
    let name = name.rsplit('/').next()?;
    let ok = !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ':');
    ok.then(|| format!("user:{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_aws_shapes_and_differ() {
        let a = AccessKeyRecord::generate("user:alice", 7).unwrap();
        let b = AccessKeyRecord::generate("user:alice", 7).unwrap();
        assert!(is_access_key_id(&a.id), "{}", a.id);
        assert_eq!(a.secret.as_str().len(), SECRET_LEN);
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.status, AccessKeyStatus::Active);
        assert!(!format!("{a:?}").contains(a.secret.as_str()));
        assert!(!is_access_key_id("AKIAIOSFODNN7EXAMPL"));
        assert!(!is_access_key_id("ASIAIOSFODNN7EXAMPLE"));
        assert!(!is_access_key_id("AKIAIOSFODNN7EXAMPL1"));
    }

    #[test]
    fn status_parses_aws_spelling_only() {
        assert_eq!(
            AccessKeyStatus::parse("Inactive").unwrap(),
            AccessKeyStatus::Inactive
        );
        assert!(AccessKeyStatus::parse("inactive").is_err());
    }

    #[test]
    fn iam_user_arns_name_local_users() {
        assert_eq!(
            iam_user_arn_spec("arn:aws:iam::123456789012:user/alice").as_deref(),
            Some("user:alice")
        );
        assert_eq!(
            iam_user_arn_spec("arn:aws:iam::000000000000:user/ops/bob").as_deref(),
            Some("user:bob")
        );
        for bad in [
            "arn:aws:iam::123456789012:role/alice",
            "arn:aws:iam:::user/alice",
            "arn:aws:iam::12a:user/alice",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:sts::123456789012:user/alice",
            "user:alice",
        ] {
            assert_eq!(iam_user_arn_spec(bad), None, "{bad}");
        }
    }
}
