//! Key records: a KMS key's metadata, state, rotation schedule and every
//! version of its key material, plus aliases.

use crate::ids::KeyId;
use crate::keyspec::{KeyOrigin, KeySpec, KeyUsage};
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

/// Secret bytes of any length kept in the store (a PKCS#8 private key, an
/// HMAC key); zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDer(pub Zeroizing<Vec<u8>>);

impl SecretDer {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDer(<redacted>)")
    }
}

impl Serialize for SecretDer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_slice())
    }
}

impl<'de> Deserialize<'de> for SecretDer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretDer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("secret key bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SecretDer, E> {
                Ok(SecretDer(Zeroizing::new(v.to_vec())))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// One version's key material, by kind (new kinds go at the end: the
/// variant index is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Material {
    /// A SYMMETRIC_DEFAULT key's 256-bit AES key.
    Symmetric(KeyMaterial),
    /// An asymmetric key's private key, PKCS#8 DER.
    Private(SecretDer),
    /// An HMAC key (28, 32, 48 or 64 bytes).
    Hmac(SecretDer),
}

impl Material {
    /// The AES key of a symmetric version.
    pub fn symmetric(&self) -> Option<&KeyMaterial> {
        match self {
            Material::Symmetric(k) => Some(k),
            _ => None,
        }
    }
}

/// The AWS key states this engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    /// An EXTERNAL key without key material (never imported, deleted or
    /// expired): store format 6.
    PendingImport,
}

impl KeyState {
    /// The AWS name, e.g. `"PendingDeletion"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
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
    pub material: Material,
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
    /// Every version, oldest first. Asymmetric and HMAC keys have exactly
    /// one (AWS does not rotate them). Empty only for an EXTERNAL key
    /// without its material (state PendingImport, or PendingDeletion
    /// after the material went).
    pub versions: Vec<KeyVersion>,
    /// What the key is (store format 5; older stores' keys are
    /// SYMMETRIC_DEFAULT).
    pub spec: KeySpec,
    pub usage: KeyUsage,
    /// Where its material came from.
    pub origin: KeyOrigin,
    /// EXTERNAL keys: what was imported (store format 6; None until the
    /// first import and for AWS_KMS keys).
    pub import: Option<ImportRecord>,
}

/// What an EXTERNAL key keeps about its imported material, also while the
/// material itself is absent (deleted or expired), so that only the same
/// material can be imported again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// HMAC-SHA256 keyed by the material over the key id (see
    /// `ops::import::material_id`): identifies the material without
    /// revealing it; hex, it is AWS's `KeyMaterialId`.
    pub material_id: [u8; 32],
    /// The expiration of the material in place (None while it is absent).
    pub expiration: Option<Expiration>,
}

/// How imported key material expires (AWS `ExpirationModel` and `ValidTo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// KEY_MATERIAL_DOES_NOT_EXPIRE.
    Never,
    /// KEY_MATERIAL_EXPIRES at this Unix time: the material is deleted and
    /// the key turns PendingImport.
    At(i64),
}

impl Expiration {
    /// The AWS `ExpirationModel` name.
    pub fn model(self) -> &'static str {
        match self {
            Expiration::Never => KEY_MATERIAL_DOES_NOT_EXPIRE,
            Expiration::At(_) => KEY_MATERIAL_EXPIRES,
        }
    }

    pub fn valid_to(self) -> Option<i64> {
        match self {
            Expiration::Never => None,
            Expiration::At(t) => Some(t),
        }
    }
}

pub const KEY_MATERIAL_EXPIRES: &str = "KEY_MATERIAL_EXPIRES";
pub const KEY_MATERIAL_DOES_NOT_EXPIRE: &str = "KEY_MATERIAL_DOES_NOT_EXPIRE";

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

    /// Whether the key has key material (false only for an EXTERNAL key
    /// whose material was never imported, was deleted or expired).
    pub fn has_material(&self) -> bool {
        !self.versions.is_empty()
    }

    /// The expiration of the imported material in place, if any.
    pub fn expiration(&self) -> Option<Expiration> {
        self.import.as_ref().and_then(|i| i.expiration)
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
