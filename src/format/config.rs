//! The volume config `kmsfs.conf`: a JSON document at the root of the cipher
//! directory that says how the volume is laid out and which master key and
//! wrapped names key it uses. Parsed strictly: an unknown field, an unknown
//! feature flag or an unknown version is refused with an error naming it.
//!
//! Format 2 is authenticated: the names key is wrapped under an encryption
//! context that holds a digest of every other field
//! ([`VolumeConfig::digest_input`]), so a config that was edited no longer
//! unwraps its names key and the volume does not open. Format 1 (no digest)
//! is still read, and upgraded by [`crate::volume::Volume::upgrade_config`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kms_engine::EncryptionContext;
use serde::{Deserialize, Serialize};

use super::features::{self, Features};
use crate::crypto::{self, CryptoError};

/// File name of the volume config in the cipher directory root.
pub const CONFIG_FILE_NAME: &str = "kmsfs.conf";
/// The config format version written by this code (authenticated).
pub const CONFIG_FORMAT_VERSION: u32 = 2;
/// The oldest config format version still read (unauthenticated).
pub const OLDEST_CONFIG_FORMAT_VERSION: u32 = 1;
/// Default plaintext block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Smallest allowed block size.
pub const MIN_BLOCK_SIZE: u32 = 512;
/// Largest allowed block size.
pub const MAX_BLOCK_SIZE: u32 = 65536;

/// Encryption-context key naming the volume.
pub const CONTEXT_VOLUME: &str = "kmsfs:volume";
/// Encryption-context key holding a file's path from the mount root.
pub const CONTEXT_PATH: &str = "kmsfs:path";
/// Encryption-context key naming the purpose of a volume-wide key.
pub const CONTEXT_PURPOSE: &str = "kmsfs:purpose";
/// Encryption-context key holding the config digest (format 2), lowercase hex.
pub const CONTEXT_CONFIG: &str = "kmsfs:config";
/// Purpose value for the names key.
pub const PURPOSE_NAMES: &str = "names";
/// The bytes that start the digest input of a format-2 config.
pub const DIGEST_LABEL: &[u8] = b"kmsfs.conf v2\0";

/// How the volume stores file names in the backing directory.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamesMode {
    /// Names encrypted with the names key (the default).
    Encrypted,
    /// Names stored as they are (`--plaintext-names`).
    Plaintext,
}

impl NamesMode {
    /// The JSON spelling, also used in the digest input.
    pub fn as_str(self) -> &'static str {
        match self {
            NamesMode::Encrypted => "encrypted",
            NamesMode::Plaintext => "plaintext",
        }
    }
}

/// Why a volume config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, not an object, a field missing or of the wrong type, or an
    /// unknown field.
    #[error("malformed volume config: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The `format_version` field is missing or not a number.
    #[error("volume config has no numeric format_version")]
    MissingVersion,
    /// A config format version this build does not know.
    #[error(
        "unsupported volume config format_version {found} (this build supports \
         {OLDEST_CONFIG_FORMAT_VERSION} to {CONFIG_FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u64 },
    /// A feature flag this build does not know (volume written by a newer kmsfs).
    #[error("volume uses unknown feature flag {flag:?}; upgrade kmsfs to mount it")]
    UnknownFeatureFlag { flag: String },
    /// The same feature flag twice.
    #[error("feature flag {flag:?} listed twice")]
    DuplicateFeatureFlag { flag: String },
    /// A format-1 config without a flag every format-1 volume this build
    /// reads carries.
    #[error("volume config lacks feature flag {flag:?}, which this build needs")]
    MissingFeatureFlag { flag: String },
    /// A flag that does not apply to a plaintext-names volume.
    #[error("feature flag {flag:?} needs encrypted names")]
    FlagNeedsEncryptedNames { flag: String },
    /// Block size not a power of two in 512..=65536.
    #[error(
        "invalid block size {size}: must be a power of two in {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}"
    )]
    InvalidBlockSize { size: u64 },
    /// `volume_id` is not a lowercase hyphenated UUID.
    #[error("invalid volume_id {value:?}: expected a UUID")]
    InvalidVolumeId { value: String },
    /// `master_key_id` is empty.
    #[error("master_key_id is empty")]
    EmptyMasterKeyId,
    /// `kms` is present and empty.
    #[error("kms (the volume's engine) is empty")]
    EmptyKms,
    /// `write_only_key` is present and empty.
    #[error("write_only_key (the RSA key of a write-only volume) is empty")]
    EmptyWriteOnlyKey,
    /// `wrapped_names_key` is not valid base64 or is empty.
    #[error("wrapped_names_key is not valid non-empty base64")]
    InvalidWrappedNamesKey,
    /// Random generation for a new volume id failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The decoded volume config.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VolumeConfig {
    /// [`OLDEST_CONFIG_FORMAT_VERSION`]`..=`[`CONFIG_FORMAT_VERSION`].
    pub format_version: u32,
    /// The volume's UUID, lowercase and hyphenated; part of every encryption context.
    pub volume_id: String,
    /// What the feature flags select.
    pub features: Features,
    /// Plaintext block size in bytes.
    pub block_size: u32,
    /// Names mode.
    pub names_mode: NamesMode,
    /// The master key (id or ARN or alias) data keys are generated under.
    pub master_key_id: String,
    /// The 32-byte names key as wrapped by the key service under
    /// [`VolumeConfig::names_key_context`].
    pub wrapped_names_key: Vec<u8>,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// The key engine the volume uses when none is named (`kmsfs mount`
    /// without `--kms`): an engine daemon's URL, `unix:///...`; `None` for
    /// the embedded engine. Bound by the digest when present.
    pub kms: Option<String>,
    /// A write-only volume's RSA key (its ARN as GetPublicKey named it):
    /// new files' data keys are wrapped for its public key
    /// (`crate::keys::write_only`); `None` for an ordinary volume. Bound
    /// by the digest when present.
    pub write_only_key: Option<String>,
}

/// The JSON shape, strict.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    format_version: u32,
    volume_id: String,
    feature_flags: Vec<String>,
    block_size: u64,
    names_mode: NamesMode,
    master_key_id: String,
    wrapped_names_key: String,
    created_unix_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    write_only_key: Option<String>,
}

impl VolumeConfig {
    /// A new (current format) config with a fresh random volume id and the
    /// features of a new volume.
    pub fn new(
        master_key_id: String,
        wrapped_names_key: Vec<u8>,
        block_size: u32,
        names_mode: NamesMode,
        created_unix_secs: u64,
    ) -> Result<Self, ConfigError> {
        let cfg = Self {
            format_version: CONFIG_FORMAT_VERSION,
            volume_id: new_volume_id()?,
            features: Features::for_new_volume(names_mode),
            block_size,
            names_mode,
            master_key_id,
            wrapped_names_key,
            created_unix_secs,
            kms: None,
            write_only_key: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Whether the config is bound to its names key (format 2 and later).
    pub fn is_authenticated(&self) -> bool {
        self.format_version >= 2
    }

    /// Checks every invariant the decoder checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(OLDEST_CONFIG_FORMAT_VERSION..=CONFIG_FORMAT_VERSION).contains(&self.format_version) {
            return Err(ConfigError::UnsupportedVersion {
                found: u64::from(self.format_version),
            });
        }
        let flags = self.features.flags(self.format_version);
        Features::from_flags(self.format_version, &flags, self.names_mode)?;
        validate_block_size(u64::from(self.block_size))?;
        if !is_uuid(&self.volume_id) {
            return Err(ConfigError::InvalidVolumeId {
                value: self.volume_id.clone(),
            });
        }
        if self.master_key_id.is_empty() {
            return Err(ConfigError::EmptyMasterKeyId);
        }
        if self.wrapped_names_key.is_empty() {
            return Err(ConfigError::InvalidWrappedNamesKey);
        }
        if self.kms.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::EmptyKms);
        }
        if self.write_only_key.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::EmptyWriteOnlyKey);
        }
        Ok(())
    }

    /// Encodes as pretty JSON with a trailing newline.
    pub fn encode(&self) -> Result<Vec<u8>, ConfigError> {
        self.validate()?;
        let raw = RawConfig {
            format_version: self.format_version,
            volume_id: self.volume_id.clone(),
            feature_flags: self.features.flags(self.format_version),
            block_size: u64::from(self.block_size),
            names_mode: self.names_mode,
            master_key_id: self.master_key_id.clone(),
            wrapped_names_key: STANDARD.encode(&self.wrapped_names_key),
            created_unix_secs: self.created_unix_secs,
            kms: self.kms.clone(),
            write_only_key: self.write_only_key.clone(),
        };
        let mut out = serde_json::to_vec_pretty(&raw).map_err(ConfigError::Malformed)?;
        out.push(b'\n');
        Ok(out)
    }

    /// Decodes strictly. The version and the feature flags are checked
    /// before the exact field set, so a config from a newer kmsfs is reported
    /// as such rather than as "unknown field".
    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(ConfigError::Malformed)?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or(ConfigError::MissingVersion)?;
        let version = u32::try_from(version)
            .ok()
            .filter(|v| (OLDEST_CONFIG_FORMAT_VERSION..=CONFIG_FORMAT_VERSION).contains(v))
            .ok_or(ConfigError::UnsupportedVersion { found: version })?;
        if let Some(flags) = value.get("feature_flags").and_then(|v| v.as_array()) {
            let flags: Vec<String> = flags
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            features::check_known(version, &flags)?;
        }
        let raw: RawConfig = serde_json::from_value(value).map_err(ConfigError::Malformed)?;
        let block_size = validate_block_size(raw.block_size)?;
        let wrapped_names_key = STANDARD
            .decode(raw.wrapped_names_key.as_bytes())
            .map_err(|_| ConfigError::InvalidWrappedNamesKey)?;
        let cfg = Self {
            format_version: raw.format_version,
            volume_id: raw.volume_id,
            features: Features::from_flags(version, &raw.feature_flags, raw.names_mode)?,
            block_size,
            names_mode: raw.names_mode,
            master_key_id: raw.master_key_id,
            wrapped_names_key,
            created_unix_secs: raw.created_unix_secs,
            kms: raw.kms,
            write_only_key: raw.write_only_key,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The bytes the config digest is taken of (format 2): [`DIGEST_LABEL`]
    /// followed by the canonical encoding (as for an encryption context) of
    /// every field but the wrapped names key, as strings: `block_size`,
    /// `created_unix_secs`, `feature_flags` (comma-separated, in canonical
    /// order), `format_version`, `master_key_id`, `names_mode`, `volume_id`,
    /// `kms` when the config records an engine, and `write_only_key` for a
    /// write-only volume.
    pub fn digest_input(&self) -> Vec<u8> {
        let mut fields = EncryptionContext::new();
        let mut put = |k: &str, v: String| fields.insert(k.to_string(), v);
        put("format_version", self.format_version.to_string());
        put("volume_id", self.volume_id.clone());
        put(
            "feature_flags",
            self.features.flags(self.format_version).join(","),
        );
        put("block_size", self.block_size.to_string());
        put("names_mode", self.names_mode.as_str().to_string());
        put("master_key_id", self.master_key_id.clone());
        put("created_unix_secs", self.created_unix_secs.to_string());
        if let Some(kms) = &self.kms {
            put("kms", kms.clone());
        }
        if let Some(key) = &self.write_only_key {
            put("write_only_key", key.clone());
        }
        let mut out = DIGEST_LABEL.to_vec();
        out.extend_from_slice(&kms_engine::context::canonical_encoding(&fields));
        out
    }

    /// SHA-256 of [`VolumeConfig::digest_input`], lowercase hex.
    pub fn digest_hex(&self) -> String {
        crypto::sha256(&self.digest_input())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The encryption context the names key is wrapped under: format 1
    /// `{"kmsfs:volume", "kmsfs:purpose": "names"}`; format 2 adds
    /// `"kmsfs:config": <digest_hex>`, which binds every field.
    pub fn names_key_context(&self) -> EncryptionContext {
        let mut ctx = names_key_context(&self.volume_id);
        if self.is_authenticated() {
            ctx.insert(CONTEXT_CONFIG.to_string(), self.digest_hex());
        }
        ctx
    }

    /// This config as format 2, with the features a format-1 volume keeps.
    /// The wrapped names key is left as it is: the caller re-wraps it under
    /// the new [`VolumeConfig::names_key_context`].
    pub fn upgraded(&self) -> Self {
        Self {
            format_version: CONFIG_FORMAT_VERSION,
            features: self.features.upgraded(self.names_mode),
            ..self.clone()
        }
    }
}

/// `{"kmsfs:volume": volume_id, "kmsfs:purpose": "names"}`: the encryption
/// context of a format-1 volume's names key (format 2 adds the digest).
pub fn names_key_context(volume_id: &str) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    ctx.insert(CONTEXT_VOLUME.to_string(), volume_id.to_string());
    ctx.insert(CONTEXT_PURPOSE.to_string(), PURPOSE_NAMES.to_string());
    ctx
}

/// Checks a block size: a power of two in
/// [`MIN_BLOCK_SIZE`]`..=`[`MAX_BLOCK_SIZE`].
pub fn validate_block_size(size: u64) -> Result<u32, ConfigError> {
    match u32::try_from(size) {
        Ok(s) if s.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&s) => Ok(s),
        _ => Err(ConfigError::InvalidBlockSize { size }),
    }
}

/// A random (version 4) UUID, lowercase and hyphenated.
fn new_volume_id() -> Result<String, CryptoError> {
    let mut b: [u8; 16] = crypto::random_array()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
  "format_version": 1,
  "volume_id": "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b",
  "feature_flags": [
    "content-aes256-gcm-siv",
    "path-bound-data-keys",
    "dir-iv",
    "long-names"
  ],
  "block_size": 4096,
  "names_mode": "encrypted",
  "master_key_id": "alias/kmsfs",
  "wrapped_names_key": "AQIDBA==",
  "created_unix_secs": 1700000000
}
"#;

    const SAMPLE_V2: &str = r#"{
  "format_version": 2,
  "volume_id": "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b",
  "feature_flags": [
    "long-names"
  ],
  "block_size": 4096,
  "names_mode": "encrypted",
  "master_key_id": "alias/kmsfs",
  "wrapped_names_key": "AQIDBA==",
  "created_unix_secs": 1700000000
}
"#;

    /// Computed with Python `hashlib` from the byte layout in
    /// docs/file-format.md (see tests/vectors/generate.py).
    const SAMPLE_V2_DIGEST: &str =
        "91cc1f413e9357238121232493a49fae75316e28acdc45a12d65f988539e359d";
    /// The same with `write_only_key` =
    /// `arn:aws:kms:local:000000000000:key/00112233-4455-4677-8899-aabbccddeeff`
    /// (Python `hashlib`, same layout).
    const SAMPLE_V2_WRITE_ONLY_DIGEST: &str =
        "bc80fc3af19d616177e15e495ad6b498df611702ee9ed6fffe2c7c24b1a998a9";

    fn sample() -> VolumeConfig {
        VolumeConfig::decode(SAMPLE.as_bytes()).unwrap()
    }

    fn sample_v2() -> VolumeConfig {
        VolumeConfig::decode(SAMPLE_V2.as_bytes()).unwrap()
    }

    #[test]
    fn known_answer_v2_digest() {
        let cfg = sample_v2();
        assert!(cfg.is_authenticated());
        assert!(cfg.features.long_names);
        assert_eq!(String::from_utf8(cfg.encode().unwrap()).unwrap(), SAMPLE_V2);
        assert_eq!(cfg.digest_hex(), SAMPLE_V2_DIGEST);
        let ctx = cfg.names_key_context();
        assert_eq!(ctx.len(), 3);
        assert_eq!(ctx["kmsfs:config"], SAMPLE_V2_DIGEST);
        assert_eq!(ctx["kmsfs:purpose"], "names");
        assert_eq!(ctx["kmsfs:volume"], cfg.volume_id);
    }

    /// Every field but the wrapped names key changes the digest, and so the
    /// names key's context: an edited config no longer unwraps its key.
    #[test]
    fn every_bound_field_changes_the_digest() {
        let base = sample_v2();
        let edits: Vec<(&str, VolumeConfig)> = vec![
            (
                "volume_id",
                VolumeConfig {
                    volume_id: "1f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b".into(),
                    ..base.clone()
                },
            ),
            (
                "features",
                VolumeConfig {
                    features: Features { long_names: false },
                    ..base.clone()
                },
            ),
            (
                "block_size",
                VolumeConfig {
                    block_size: 8192,
                    ..base.clone()
                },
            ),
            (
                "names_mode",
                VolumeConfig {
                    names_mode: NamesMode::Plaintext,
                    features: Features { long_names: false },
                    ..base.clone()
                },
            ),
            (
                "master_key_id",
                VolumeConfig {
                    master_key_id: "alias/other".into(),
                    ..base.clone()
                },
            ),
            (
                "created_unix_secs",
                VolumeConfig {
                    created_unix_secs: 1,
                    ..base.clone()
                },
            ),
            (
                "format_version",
                VolumeConfig {
                    format_version: 1,
                    ..base.clone()
                },
            ),
        ];
        for (what, cfg) in edits {
            cfg.validate().unwrap();
            assert_ne!(cfg.names_key_context(), base.names_key_context(), "{what}");
        }
        let rewrapped = VolumeConfig {
            wrapped_names_key: vec![7; 81],
            ..base.clone()
        };
        assert_eq!(rewrapped.names_key_context(), base.names_key_context());
    }

    #[test]
    fn upgrade_from_format_1() {
        let up = sample().upgraded();
        assert_eq!(up.format_version, 2);
        assert_eq!(up.features.flags(2), ["long-names"]);
        assert_eq!(up.volume_id, sample().volume_id);
        assert_eq!(up.names_key_context()["kmsfs:config"], up.digest_hex());
        let plain = modified("\"encrypted\"", "\"plaintext\"")
            .unwrap()
            .upgraded();
        assert!(plain.features.flags(2).is_empty());
        plain.validate().unwrap();
    }

    #[test]
    fn known_answer_decode_and_encode() {
        let cfg = sample();
        assert_eq!(cfg.volume_id, "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b");
        assert_eq!(cfg.block_size, 4096);
        assert_eq!(cfg.names_mode, NamesMode::Encrypted);
        assert_eq!(cfg.wrapped_names_key, vec![1, 2, 3, 4]);
        assert_eq!(cfg.created_unix_secs, 1_700_000_000);
        assert_eq!(String::from_utf8(cfg.encode().unwrap()).unwrap(), SAMPLE);
    }

    #[test]
    fn a_recorded_engine_is_bound_and_round_trips() {
        let base = sample_v2();
        let with = VolumeConfig {
            kms: Some("unix:///run/kmsfs/engine.sock".into()),
            ..base.clone()
        };
        // Absent, the field changes nothing (old digests stay valid).
        assert!(
            !String::from_utf8(base.encode().unwrap())
                .unwrap()
                .contains("kms\"")
        );
        assert_ne!(with.digest_hex(), base.digest_hex());
        let other = VolumeConfig {
            kms: Some("unix:///tmp/other.sock".into()),
            ..base.clone()
        };
        assert_ne!(with.digest_hex(), other.digest_hex());
        assert_eq!(VolumeConfig::decode(&with.encode().unwrap()).unwrap(), with);
        let empty = VolumeConfig {
            kms: Some(String::new()),
            ..base
        };
        assert!(matches!(empty.validate(), Err(ConfigError::EmptyKms)));
    }

    #[test]
    fn a_write_only_key_is_bound_and_round_trips() {
        let base = sample_v2();
        let with = VolumeConfig {
            write_only_key: Some(
                "arn:aws:kms:local:000000000000:key/00112233-4455-4677-8899-aabbccddeeff".into(),
            ),
            ..base.clone()
        };
        assert!(
            !String::from_utf8(base.encode().unwrap())
                .unwrap()
                .contains("write_only_key")
        );
        assert_ne!(with.names_key_context(), base.names_key_context());
        // Pinned with Python hashlib over the digest input of
        // docs/file-format.md (the sample plus the write_only_key pair).
        assert_eq!(with.digest_hex(), SAMPLE_V2_WRITE_ONLY_DIGEST);
        assert_eq!(VolumeConfig::decode(&with.encode().unwrap()).unwrap(), with);
        let empty = VolumeConfig {
            write_only_key: Some(String::new()),
            ..base
        };
        assert!(matches!(
            empty.validate(),
            Err(ConfigError::EmptyWriteOnlyKey)
        ));
    }

    #[test]
    fn new_round_trips() {
        let cfg =
            VolumeConfig::new("k1".into(), vec![9; 80], 8192, NamesMode::Plaintext, 42).unwrap();
        assert!(is_uuid(&cfg.volume_id), "{}", cfg.volume_id);
        assert_eq!(&cfg.volume_id[14..15], "4");
        let back = VolumeConfig::decode(&cfg.encode().unwrap()).unwrap();
        assert_eq!(back, cfg);
        let other = VolumeConfig::new("k1".into(), vec![9], 4096, NamesMode::Encrypted, 0).unwrap();
        assert_ne!(other.volume_id, cfg.volume_id);
    }

    #[test]
    fn names_context() {
        let ctx = sample().names_key_context();
        assert_eq!(ctx.len(), 2);
        assert_eq!(ctx["kmsfs:volume"], "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b");
        assert_eq!(ctx["kmsfs:purpose"], "names");
    }

    fn modified(from: &str, to: &str) -> Result<VolumeConfig, ConfigError> {
        assert!(SAMPLE.contains(from), "{from}");
        VolumeConfig::decode(SAMPLE.replacen(from, to, 1).as_bytes())
    }

    #[test]
    fn fail_unknown_feature_flag_named() {
        let err = modified("\"dir-iv\"", "\"dir-iv\", \"zstd-compression\"").unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownFeatureFlag { flag } if flag == "zstd-compression")
        );
        assert!(err.to_string().contains("zstd-compression"));
    }

    #[test]
    fn fail_duplicate_flag() {
        let err = modified("\"dir-iv\"", "\"dir-iv\", \"dir-iv\"").unwrap_err();
        assert!(matches!(err, ConfigError::DuplicateFeatureFlag { .. }));
    }

    #[test]
    fn fail_version() {
        let err = modified("\"format_version\": 1", "\"format_version\": 3").unwrap_err();
        assert!(matches!(err, ConfigError::UnsupportedVersion { found: 3 }));
        let err = modified("\"format_version\": 1", "\"format_version\": 0").unwrap_err();
        assert!(matches!(err, ConfigError::UnsupportedVersion { found: 0 }));
        let err = modified("\"format_version\": 1", "\"format_version\": 4294967298").unwrap_err();
        assert!(matches!(err, ConfigError::UnsupportedVersion { .. }));
        // A format-1 flag list under format 2 names the flag format 2 lacks.
        let err = modified("\"format_version\": 1", "\"format_version\": 2").unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownFeatureFlag { flag } if flag == "content-aes256-gcm-siv"),
            "{err}"
        );
        // A newer version with new fields is reported as a version problem.
        let err = modified(
            "\"format_version\": 1,",
            "\"format_version\": 7, \"new_field\": true,",
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnsupportedVersion { found: 7 }));
        let err = modified("\"format_version\": 1,", "").unwrap_err();
        assert!(matches!(err, ConfigError::MissingVersion));
        let err = modified("\"format_version\": 1", "\"format_version\": \"1\"").unwrap_err();
        assert!(matches!(err, ConfigError::MissingVersion));
    }

    #[test]
    fn fail_unknown_field() {
        let err = modified("\"block_size\"", "\"extra\": 1, \"block_size\"").unwrap_err();
        assert!(matches!(err, ConfigError::Malformed(_)));
        assert!(err.to_string().contains("extra"));
    }

    #[test]
    fn fail_missing_field() {
        let err = modified("\"names_mode\": \"encrypted\",", "").unwrap_err();
        assert!(matches!(err, ConfigError::Malformed(_)));
    }

    #[test]
    fn fail_block_sizes() {
        for bad in ["0", "256", "4095", "131072", "5000", "4294967296"] {
            let err = modified("4096", bad).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidBlockSize { .. }),
                "{bad}: {err}"
            );
        }
        for good in ["512", "1024", "65536"] {
            assert_eq!(modified("4096", good).unwrap().block_size.to_string(), good);
        }
    }

    #[test]
    fn fail_names_mode() {
        let err = modified("\"encrypted\"", "\"rot13\"").unwrap_err();
        assert!(matches!(err, ConfigError::Malformed(_)));
        assert_eq!(
            modified("\"encrypted\"", "\"plaintext\"")
                .unwrap()
                .names_mode,
            NamesMode::Plaintext
        );
    }

    #[test]
    fn fail_volume_id() {
        for bad in [
            "0F8E2A3C-5B7D-4E1F-9A2B-3C4D5E6F7A8B",
            "0f8e2a3c5b7d4e1f9a2b3c4d5e6f7a8b",
            "../etc",
        ] {
            let err = modified("0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b", bad).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidVolumeId { .. }), "{bad}");
        }
    }

    #[test]
    fn fail_master_key_and_names_key() {
        let err = modified("alias/kmsfs", "").unwrap_err();
        assert!(matches!(err, ConfigError::EmptyMasterKeyId));
        let err = modified("AQIDBA==", "not base64!").unwrap_err();
        assert!(matches!(err, ConfigError::InvalidWrappedNamesKey));
        let err = modified("AQIDBA==", "").unwrap_err();
        assert!(matches!(err, ConfigError::InvalidWrappedNamesKey));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = VolumeConfig::decode(&bytes);
        }

        #[test]
        fn decode_of_mutated_sample_is_valid_or_refused(pos in 0usize..SAMPLE.len(), byte in 0x20u8..0x7f) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            bytes[pos] = byte;
            if let Ok(cfg) = VolumeConfig::decode(&bytes) {
                cfg.validate().unwrap();
                proptest::prop_assert_eq!(VolumeConfig::decode(&cfg.encode().unwrap()).unwrap(), cfg);
            }
        }
    }

    #[test]
    fn fail_not_json() {
        assert!(matches!(
            VolumeConfig::decode(b"format_version = 1"),
            Err(ConfigError::Malformed(_))
        ));
        assert!(matches!(
            VolumeConfig::decode(b"[1]"),
            Err(ConfigError::MissingVersion)
        ));
    }
}
