//! The feature flags of the volume config: which flags each config format
//! version knows, which ones a volume must carry, and the typed
//! [`Features`] they decode to. Every flag of the current format selects
//! behaviour; an unknown flag is refused so that an old build never
//! misreads a volume written by a newer one.

use super::config::{ConfigError, NamesMode};

/// Long encrypted names are hashed, with a `.name` side file (format 1 and
/// 2). Without it a name whose encrypted form would exceed 255 bytes is
/// refused with ENAMETOOLONG and a `kmsfs.longname.*` entry is not a name.
pub const FLAG_LONG_NAMES: &str = "long-names";

/// Format 1's flags that describe what every format-1 volume is (there is
/// no alternative to choose): content blocks sealed with AES-256-GCM-SIV,
/// data keys bound to `{"kmsfs:volume", "kmsfs:path"}`, a `kmsfs.diriv` in
/// every directory. A format-1 config must carry the first two, and
/// `dir-iv` when its names are encrypted; format 2 has none of them (its
/// version number says it).
pub const V1_CONTENT: &str = "content-aes256-gcm-siv";
/// See [`V1_CONTENT`].
pub const V1_PATH_BOUND: &str = "path-bound-data-keys";
/// See [`V1_CONTENT`].
pub const V1_DIR_IV: &str = "dir-iv";

/// Flags a format-1 config may name.
const V1_FLAGS: &[&str] = &[V1_CONTENT, V1_PATH_BOUND, V1_DIR_IV, FLAG_LONG_NAMES];
/// Flags a format-2 config may name.
const V2_FLAGS: &[&str] = &[FLAG_LONG_NAMES];

/// What the feature flags select.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Features {
    /// [`FLAG_LONG_NAMES`].
    pub long_names: bool,
}

impl Features {
    /// The features of a new volume: long names when names are encrypted.
    pub fn for_new_volume(names_mode: NamesMode) -> Self {
        Self {
            long_names: names_mode == NamesMode::Encrypted,
        }
    }

    /// The flag list written for config format `version`, in canonical
    /// order (the order of this module's tables).
    pub fn flags(&self, version: u32) -> Vec<String> {
        let mut out: Vec<&str> = if version == 1 {
            vec![V1_CONTENT, V1_PATH_BOUND, V1_DIR_IV]
        } else {
            Vec::new()
        };
        if self.long_names {
            out.push(FLAG_LONG_NAMES);
        }
        out.into_iter().map(str::to_string).collect()
    }

    /// Decodes the flag list of a format-`version` config: an unknown or
    /// repeated flag is refused, so is a missing required one (format 1) or
    /// one that cannot apply (format 2: long names with plaintext names).
    pub fn from_flags(
        version: u32,
        flags: &[String],
        names_mode: NamesMode,
    ) -> Result<Self, ConfigError> {
        check_known(version, flags)?;
        let has = |f: &str| flags.iter().any(|x| x == f);
        if version == 1 {
            let mut required = vec![V1_CONTENT, V1_PATH_BOUND];
            if names_mode == NamesMode::Encrypted {
                required.push(V1_DIR_IV);
            }
            if let Some(flag) = required.into_iter().find(|f| !has(f)) {
                return Err(ConfigError::MissingFeatureFlag {
                    flag: flag.to_string(),
                });
            }
        } else if has(FLAG_LONG_NAMES) && names_mode == NamesMode::Plaintext {
            return Err(ConfigError::FlagNeedsEncryptedNames {
                flag: FLAG_LONG_NAMES.to_string(),
            });
        }
        Ok(Self {
            long_names: has(FLAG_LONG_NAMES),
        })
    }

    /// The features a format-1 volume keeps when its config is upgraded to
    /// format 2 (long names only mean something with encrypted names).
    pub fn upgraded(&self, names_mode: NamesMode) -> Self {
        Self {
            long_names: self.long_names && names_mode == NamesMode::Encrypted,
        }
    }
}

/// Refuses a flag that format `version` does not know, and a repeated one.
pub fn check_known(version: u32, flags: &[String]) -> Result<(), ConfigError> {
    let known = if version == 1 { V1_FLAGS } else { V2_FLAGS };
    for (i, flag) in flags.iter().enumerate() {
        if !known.contains(&flag.as_str()) {
            return Err(ConfigError::UnknownFeatureFlag { flag: flag.clone() });
        }
        if flags[..i].contains(flag) {
            return Err(ConfigError::DuplicateFeatureFlag { flag: flag.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_flag_round_trips_and_selects() {
        for version in [1, 2] {
            for long_names in [false, true] {
                let f = Features { long_names };
                let back = Features::from_flags(version, &f.flags(version), NamesMode::Encrypted);
                assert_eq!(back.unwrap(), f, "format {version}");
            }
        }
        assert_eq!(
            Features::for_new_volume(NamesMode::Encrypted).flags(2),
            ["long-names"]
        );
        assert!(
            Features::for_new_volume(NamesMode::Plaintext)
                .flags(2)
                .is_empty()
        );
    }

    #[test]
    fn fail_format_1_flags_in_format_2() {
        for flag in [V1_CONTENT, V1_PATH_BOUND, V1_DIR_IV] {
            let err = Features::from_flags(2, &strings(&[flag]), NamesMode::Encrypted);
            assert!(
                matches!(&err, Err(ConfigError::UnknownFeatureFlag { flag: f }) if f == flag),
                "{err:?}"
            );
        }
    }

    #[test]
    fn fail_format_1_without_a_required_flag() {
        let err = Features::from_flags(
            1,
            &strings(&[V1_PATH_BOUND, V1_DIR_IV]),
            NamesMode::Encrypted,
        );
        assert!(
            matches!(&err, Err(ConfigError::MissingFeatureFlag { flag }) if flag == V1_CONTENT)
        );
        let err = Features::from_flags(
            1,
            &strings(&[V1_CONTENT, V1_PATH_BOUND]),
            NamesMode::Encrypted,
        );
        assert!(matches!(&err, Err(ConfigError::MissingFeatureFlag { flag }) if flag == V1_DIR_IV));
        // A plaintext-names volume has no directory IVs to promise.
        let ok = Features::from_flags(
            1,
            &strings(&[V1_CONTENT, V1_PATH_BOUND]),
            NamesMode::Plaintext,
        );
        assert_eq!(ok.unwrap(), Features { long_names: false });
    }

    #[test]
    fn fail_long_names_with_plaintext_names_in_format_2() {
        let err = Features::from_flags(2, &strings(&[FLAG_LONG_NAMES]), NamesMode::Plaintext);
        assert!(matches!(
            err,
            Err(ConfigError::FlagNeedsEncryptedNames { .. })
        ));
        let v1 = Features::from_flags(1, &strings(V1_FLAGS), NamesMode::Plaintext).unwrap();
        assert!(v1.long_names);
        assert!(!v1.upgraded(NamesMode::Plaintext).long_names);
        assert!(v1.upgraded(NamesMode::Encrypted).long_names);
    }
}
