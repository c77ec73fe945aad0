//! The engine's whole persistent state (keys, aliases, tombstones, the audit
//! signing seed) and the time-driven changes applied to it: automatic
//! rotations that fell due and deletion windows that passed.

use crate::KmsError;
use crate::access_key::AccessKeyRecord;
use crate::audit::paths::AuditPathMode;
use crate::grant::Grant;
use crate::ids::{KeyId, KeyRef, alias_arn, parse_key_ref};
use crate::key::{
    AliasRecord, KeyMaterial, KeyRecord, KeyState, KeyVersion, Material, RotationType,
};
use crate::keyspec::{KeyOrigin, KeySpec, KeyUsage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroizing;

/// Everything the store seals (store format 6). Encoded with postcard (not
/// self-describing: any field change needs a new store format version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Incremented on every write; tells a reader which copy is newer.
    pub generation: u64,
    /// Seed for the audit trail's signing key, generated at create.
    pub audit_seed: KeyMaterial,
    pub keys: BTreeMap<KeyId, KeyRecord>,
    /// By full alias name (`alias/NAME`).
    pub aliases: BTreeMap<String, AliasRecord>,
    /// Keys destroyed after their deletion window: ids only, no material.
    pub destroyed: BTreeSet<KeyId>,
    /// Grants per key, in creation order.
    pub grants: BTreeMap<KeyId, Vec<Grant>>,
    /// How audit records carry file paths (format 3).
    pub audit_paths: AuditPathMode,
    /// The key of the `hmac` path mode, made when that mode is first chosen
    /// and kept afterwards, so records of every hmac period stay searchable
    /// (format 3).
    pub audit_path_key: Option<KeyMaterial>,
    /// Access keys for the HTTPS endpoint, by id, secrets included
    /// (format 4).
    pub access_keys: BTreeMap<String, AccessKeyRecord>,
}

/// A key version of store formats 1 to 4: always a symmetric key.
#[derive(Deserialize)]
struct KeyVersionV4 {
    version: u32,
    created: i64,
    rotation_type: Option<RotationType>,
    material: KeyMaterial,
}

/// A key of store formats 1 to 4: [`KeyRecord`] without spec, usage and
/// origin (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT, AWS_KMS).
#[derive(Deserialize)]
struct KeyRecordV4 {
    id: KeyId,
    created: i64,
    description: String,
    state: KeyState,
    deletion_date: Option<i64>,
    pending_window_days: Option<u32>,
    tags: BTreeMap<String, String>,
    policy: String,
    rotation_period_days: Option<u32>,
    next_rotation: Option<i64>,
    versions: Vec<KeyVersionV4>,
}

impl From<KeyRecordV4> for KeyRecord {
    fn from(k: KeyRecordV4) -> KeyRecord {
        KeyRecord {
            id: k.id,
            created: k.created,
            description: k.description,
            state: k.state,
            deletion_date: k.deletion_date,
            pending_window_days: k.pending_window_days,
            tags: k.tags,
            policy: k.policy,
            rotation_period_days: k.rotation_period_days,
            next_rotation: k.next_rotation,
            versions: k
                .versions
                .into_iter()
                .map(|v| KeyVersion {
                    version: v.version,
                    created: v.created,
                    rotation_type: v.rotation_type,
                    material: Material::Symmetric(v.material),
                })
                .collect(),
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            origin: KeyOrigin::AwsKms,
            import: None,
        }
    }
}

fn convert_keys<K: Into<KeyRecord>>(keys: BTreeMap<KeyId, K>) -> BTreeMap<KeyId, KeyRecord> {
    keys.into_iter().map(|(id, k)| (id, k.into())).collect()
}

/// A key of store format 5: [`KeyRecord`] without the import record (no
/// key had imported material).
#[derive(Deserialize)]
struct KeyRecordV5 {
    id: KeyId,
    created: i64,
    description: String,
    state: KeyState,
    deletion_date: Option<i64>,
    pending_window_days: Option<u32>,
    tags: BTreeMap<String, String>,
    policy: String,
    rotation_period_days: Option<u32>,
    next_rotation: Option<i64>,
    versions: Vec<KeyVersion>,
    spec: KeySpec,
    usage: KeyUsage,
    origin: KeyOrigin,
}

impl From<KeyRecordV5> for KeyRecord {
    fn from(k: KeyRecordV5) -> KeyRecord {
        KeyRecord {
            id: k.id,
            created: k.created,
            description: k.description,
            state: k.state,
            deletion_date: k.deletion_date,
            pending_window_days: k.pending_window_days,
            tags: k.tags,
            policy: k.policy,
            rotation_period_days: k.rotation_period_days,
            next_rotation: k.next_rotation,
            versions: k.versions,
            spec: k.spec,
            usage: k.usage,
            origin: k.origin,
            import: None,
        }
    }
}

/// The state of store format 5: [`State`] with format-5 keys.
#[derive(Deserialize)]
struct StateV5 {
    generation: u64,
    audit_seed: KeyMaterial,
    keys: BTreeMap<KeyId, KeyRecordV5>,
    aliases: BTreeMap<String, AliasRecord>,
    destroyed: BTreeSet<KeyId>,
    grants: BTreeMap<KeyId, Vec<Grant>>,
    audit_paths: AuditPathMode,
    audit_path_key: Option<KeyMaterial>,
    access_keys: BTreeMap<String, AccessKeyRecord>,
}

impl From<StateV5> for State {
    fn from(s: StateV5) -> State {
        State {
            generation: s.generation,
            audit_seed: s.audit_seed,
            keys: convert_keys(s.keys),
            aliases: s.aliases,
            destroyed: s.destroyed,
            grants: s.grants,
            audit_paths: s.audit_paths,
            audit_path_key: s.audit_path_key,
            access_keys: s.access_keys,
        }
    }
}

/// The state of store format 4: [`State`] with format-4 keys.
#[derive(Deserialize)]
struct StateV4 {
    generation: u64,
    audit_seed: KeyMaterial,
    keys: BTreeMap<KeyId, KeyRecordV4>,
    aliases: BTreeMap<String, AliasRecord>,
    destroyed: BTreeSet<KeyId>,
    grants: BTreeMap<KeyId, Vec<Grant>>,
    audit_paths: AuditPathMode,
    audit_path_key: Option<KeyMaterial>,
    access_keys: BTreeMap<String, AccessKeyRecord>,
}

impl From<StateV4> for State {
    fn from(s: StateV4) -> State {
        State {
            generation: s.generation,
            audit_seed: s.audit_seed,
            keys: convert_keys(s.keys),
            aliases: s.aliases,
            destroyed: s.destroyed,
            grants: s.grants,
            audit_paths: s.audit_paths,
            audit_path_key: s.audit_path_key,
            access_keys: s.access_keys,
        }
    }
}

/// The state of store format 3: format 4's without access keys.
#[derive(Deserialize)]
struct StateV3 {
    generation: u64,
    audit_seed: KeyMaterial,
    keys: BTreeMap<KeyId, KeyRecordV4>,
    aliases: BTreeMap<String, AliasRecord>,
    destroyed: BTreeSet<KeyId>,
    grants: BTreeMap<KeyId, Vec<Grant>>,
    audit_paths: AuditPathMode,
    audit_path_key: Option<KeyMaterial>,
}

impl From<StateV3> for State {
    fn from(s: StateV3) -> State {
        State {
            generation: s.generation,
            audit_seed: s.audit_seed,
            keys: convert_keys(s.keys),
            aliases: s.aliases,
            destroyed: s.destroyed,
            grants: s.grants,
            audit_paths: s.audit_paths,
            audit_path_key: s.audit_path_key,
            access_keys: BTreeMap::new(),
        }
    }
}

/// The state of store formats 1 and 2: format 3's without the audit path
/// settings (which read as plain, without a key).
#[derive(Deserialize)]
struct StateV2 {
    generation: u64,
    audit_seed: KeyMaterial,
    keys: BTreeMap<KeyId, KeyRecordV4>,
    aliases: BTreeMap<String, AliasRecord>,
    destroyed: BTreeSet<KeyId>,
    grants: BTreeMap<KeyId, Vec<Grant>>,
}

impl From<StateV2> for State {
    fn from(s: StateV2) -> State {
        State {
            generation: s.generation,
            audit_seed: s.audit_seed,
            keys: convert_keys(s.keys),
            aliases: s.aliases,
            destroyed: s.destroyed,
            grants: s.grants,
            audit_paths: AuditPathMode::Plain,
            audit_path_key: None,
            access_keys: BTreeMap::new(),
        }
    }
}

impl State {
    pub fn new() -> Result<State, KmsError> {
        Ok(State {
            generation: 0,
            audit_seed: KeyMaterial::generate()?,
            keys: BTreeMap::new(),
            aliases: BTreeMap::new(),
            destroyed: BTreeSet::new(),
            grants: BTreeMap::new(),
            audit_paths: AuditPathMode::Plain,
            audit_path_key: None,
            access_keys: BTreeMap::new(),
        })
    }

    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        postcard::to_allocvec(self)
            .map(Zeroizing::new)
            .map_err(|e| KmsError::Internal(format!("cannot encode engine state: {e}")))
    }

    /// Decodes the state of a store of format `version` (1 and 2: without
    /// the audit path settings; 3: without access keys; 1 to 4: keys
    /// without spec, usage and origin; 1 to 5: keys without an import
    /// record). Trailing bytes are refused.
    pub fn decode(bytes: &[u8], version: u8) -> Result<State, KmsError> {
        let bad = |e: postcard::Error| {
            KmsError::StoreCorrupted(format!("cannot decode engine state: {e}"))
        };
        let (state, rest) = if version >= crate::store::format::STORE_VERSION {
            postcard::take_from_bytes::<State>(bytes).map_err(bad)?
        } else if version == crate::store::format::STORE_VERSION_5 {
            let (old, rest) = postcard::take_from_bytes::<StateV5>(bytes).map_err(bad)?;
            (State::from(old), rest)
        } else if version == crate::store::format::STORE_VERSION_4 {
            let (old, rest) = postcard::take_from_bytes::<StateV4>(bytes).map_err(bad)?;
            (State::from(old), rest)
        } else if version == crate::store::format::STORE_VERSION_3 {
            let (old, rest) = postcard::take_from_bytes::<StateV3>(bytes).map_err(bad)?;
            (State::from(old), rest)
        } else {
            let (old, rest) = postcard::take_from_bytes::<StateV2>(bytes).map_err(bad)?;
            (State::from(old), rest)
        };
        if !rest.is_empty() {
            return Err(KmsError::StoreCorrupted(format!(
                "cannot decode engine state: {} bytes after its end",
                rest.len()
            )));
        }
        Ok(state)
    }

    /// The id named by a key id, key ARN, alias name or alias ARN.
    pub fn resolve_id(&self, key_id: &str) -> Result<KeyId, KmsError> {
        match parse_key_ref(key_id)? {
            KeyRef::Id(id) => {
                if self.keys.contains_key(&id) {
                    Ok(id)
                } else {
                    Err(KmsError::NotFound(format!(
                        "Key '{}' does not exist",
                        id.arn()
                    )))
                }
            }
            KeyRef::Alias(name) => {
                let a = self.aliases.get(&name).ok_or_else(|| {
                    KmsError::NotFound(format!("Alias '{}' is not found.", alias_arn(&name)))
                })?;
                if self.keys.contains_key(&a.target) {
                    Ok(a.target)
                } else {
                    Err(KmsError::NotFound(format!(
                        "Key '{}' does not exist",
                        a.target.arn()
                    )))
                }
            }
        }
    }

    /// The key named by `key_id` (any accepted form).
    pub fn resolve(&self, key_id: &str) -> Result<&KeyRecord, KmsError> {
        let id = self.resolve_id(key_id)?;
        self.keys
            .get(&id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{}' does not exist", id.arn())))
    }

    /// Mutable form of [`State::resolve`].
    pub fn resolve_mut(&mut self, key_id: &str) -> Result<&mut KeyRecord, KmsError> {
        let id = self.resolve_id(key_id)?;
        self.keys
            .get_mut(&id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{}' does not exist", id.arn())))
    }

    /// The earliest time at which [`State::apply_due`] has something to do.
    pub fn next_due(&self) -> Option<i64> {
        self.keys
            .values()
            .flat_map(|k| {
                let state_due = match k.state {
                    KeyState::PendingDeletion => k.deletion_date,
                    KeyState::Enabled => k.next_rotation,
                    KeyState::Disabled | KeyState::PendingImport => None,
                };
                let expiry = k.expiration().and_then(|e| e.valid_to());
                [state_due, expiry]
            })
            .flatten()
            .min()
    }

    /// Carries out what is due at `now`: destroys keys whose deletion window
    /// passed (with their aliases), deletes imported key material whose
    /// ValidTo passed (the key turns PendingImport) and rotates enabled keys
    /// whose automatic rotation fell due. Returns whether anything changed.
    pub fn apply_due(&mut self, now: i64) -> Result<bool, KmsError> {
        let mut changed = false;
        let expired: Vec<KeyId> = self
            .keys
            .values()
            .filter(|k| {
                k.state == KeyState::PendingDeletion && k.deletion_date.is_some_and(|d| d <= now)
            })
            .map(|k| k.id)
            .collect();
        for id in expired {
            self.keys.remove(&id);
            self.aliases.retain(|_, a| a.target != id);
            self.grants.remove(&id);
            self.destroyed.insert(id);
            changed = true;
        }
        for k in self.keys.values_mut() {
            if k.expiration()
                .and_then(|e| e.valid_to())
                .is_some_and(|t| t <= now)
            {
                remove_imported_material(k);
                changed = true;
            }
        }
        for k in self.keys.values_mut() {
            if k.state != KeyState::Enabled {
                continue;
            }
            let (Some(due), Some(period)) = (k.next_rotation, k.rotation_period_days) else {
                continue;
            };
            if due <= now {
                add_version(k, now, RotationType::Automatic)?;
                k.next_rotation = Some(now + i64::from(period) * 86_400);
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// Deletes an EXTERNAL key's imported material (DeleteImportedKeyMaterial,
/// or its ValidTo passed): the key keeps its import record (so only the
/// same material can come back) and turns PendingImport, unless it is
/// PendingDeletion, which it stays.
pub fn remove_imported_material(k: &mut KeyRecord) {
    k.versions.clear();
    if let Some(i) = k.import.as_mut() {
        i.expiration = None;
    }
    if k.state != KeyState::PendingDeletion {
        k.state = KeyState::PendingImport;
    }
}

/// Appends a fresh key version.
pub fn add_version(k: &mut KeyRecord, now: i64, how: RotationType) -> Result<(), KmsError> {
    let next = k
        .versions
        .last()
        .map(|v| v.version.saturating_add(1))
        .unwrap_or(1);
    k.versions.push(KeyVersion {
        version: next,
        created: now,
        rotation_type: Some(how),
        material: Material::Symmetric(KeyMaterial::generate()?),
    });
    Ok(())
}
