//! Key records: a KMS key's metadata, state, rotation schedule and every
//! version of its key material, plus aliases.

use crate::ids::KeyId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// 256 bits of secret key material; zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(pub Zeroizing<[u8; 32]>);

impl KeyMaterial {
    /// Fresh random material from aws-lc-rs.
    pub fn generate() -> Result<KeyMaterial, crate::KmsError> {
        let mut m = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(m.as_mut())
            .map_err(|_| crate::KmsError::Internal("random source failed".into()))?;
        Ok(KeyMaterial(m))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

impl Serialize for KeyMaterial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_ref())
    }
}

impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyMaterial;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes of key material")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<KeyMaterial, E> {
                let mut m = Zeroizing::new([0u8; 32]);
                if v.len() != 32 {
                    return Err(E::invalid_length(v.len(), &self));
                }
                m.copy_from_slice(v);
                Ok(KeyMaterial(m))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The AWS key states this engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    /// The AWS name, e.g. `"PendingDeletion"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// How a key version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationType {
    Automatic,
    OnDemand,
}

impl RotationType {
    pub fn as_str(&self) -> &'static str {
        match self {
            RotationType::Automatic => "AUTOMATIC",
            RotationType::OnDemand => "ON_DEMAND",
        }
    }
}

/// One version of a key's material. Version 1 is the material made at
/// CreateKey; each rotation appends the next number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersion {
    pub version: u32,
    pub created: i64,
    /// `None` for the original material.
    pub rotation_type: Option<RotationType>,
    pub material: KeyMaterial,
}

/// A KMS key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub created: i64,
    pub description: String,
    pub state: KeyState,
    /// When a PendingDeletion key is destroyed.
    pub deletion_date: Option<i64>,
    pub pending_window_days: Option<u32>,
    pub tags: BTreeMap<String, String>,
    /// The key policy document (JSON).
    pub policy: String,
    /// Automatic rotation period when automatic rotation is enabled.
    pub rotation_period_days: Option<u32>,
    /// When the next automatic rotation falls due (set while enabled).
    pub next_rotation: Option<i64>,
    /// Every version, oldest first; never empty.
    pub versions: Vec<KeyVersion>,
}

impl KeyRecord {
    /// The newest version (used for new ciphertexts).
    pub fn current_version(&self) -> Option<&KeyVersion> {
        self.versions.last()
    }

    pub fn version(&self, v: u32) -> Option<&KeyVersion> {
        self.versions.iter().find(|kv| kv.version == v)
    }

    pub fn arn(&self) -> String {
        self.id.arn()
    }

    /// Number of on-demand rotations done so far.
    pub fn on_demand_rotations(&self) -> usize {
        self.versions
            .iter()
            .filter(|v| v.rotation_type == Some(RotationType::OnDemand))
            .count()
    }
}

/// An alias pointing at a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The full name, `alias/NAME`.
    pub name: String,
    pub target: KeyId,
    pub created: i64,
    pub updated: i64,
}

/// The AWS-shaped default key policy: the creating principal may do `kms:*`.
pub fn default_policy(creator: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": [creator]},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}
