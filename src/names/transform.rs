//! The volume's name transform: plaintext name component <-> backing name,
//! in either names mode, with long-name handling.

use super::{
    BackingKind, DirIv, LONG_NAME_MAX, NameError, NamesCipher, classify_backing_name, is_long,
    is_reserved, long_backing_name, side_file_name, validate_name,
};
use crate::crypto::KEY_LEN;
use crate::format::NamesMode;

/// Where a plaintext name lives in the backing directory.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BackingName {
    /// The backing entry has this name (encrypted or, in plaintext mode, the name itself).
    Short(Vec<u8>),
    /// A long name: the entry is `name`, and `side_file` holds `encoded`.
    Long {
        /// The hashed backing name `kmsfs.longname.<hash>`.
        name: String,
        /// The side file's name, `<name>.name`.
        side_file: String,
        /// The full encoded name, the side file's contents.
        encoded: String,
    },
}

impl BackingName {
    /// The backing directory entry name.
    pub fn name(&self) -> &[u8] {
        match self {
            Self::Short(n) => n,
            Self::Long { name, .. } => name.as_bytes(),
        }
    }

    /// Whether this is a long name with a side file.
    pub fn is_long(&self) -> bool {
        matches!(self, Self::Long { .. })
    }
}

/// Name transform of one volume: the names mode plus the names cipher
/// (symlink targets are encrypted in both modes).
#[derive(Debug)]
pub struct NameTransform {
    mode: NamesMode,
    cipher: NamesCipher,
    /// Feature flag `long-names`: long encrypted names are hashed into
    /// side files; without it they are refused.
    long_names: bool,
}

impl NameTransform {
    /// A transform for `mode` using the volume's 32-byte names key.
    pub fn new(names_key: &[u8; KEY_LEN], mode: NamesMode) -> Result<Self, NameError> {
        Ok(Self {
            mode,
            cipher: NamesCipher::new(names_key)?,
            long_names: true,
        })
    }

    /// With `long_names` false (a volume without the `long-names` feature
    /// flag), a name whose encrypted form is too long for one backing name
    /// is refused with [`NameError::LongNamesOff`] (ENAMETOOLONG), and a
    /// hashed backing name does not decode.
    pub fn with_long_names(mut self, long_names: bool) -> Self {
        self.long_names = long_names;
        self
    }

    /// The names mode.
    pub fn mode(&self) -> NamesMode {
        self.mode
    }

    /// The underlying names cipher.
    pub fn cipher(&self) -> &NamesCipher {
        &self.cipher
    }

    /// The backing name of plaintext component `name` in the directory with
    /// IV `dir_iv`. Invalid names are refused; in plaintext mode names
    /// starting with `kmsfs.` are refused with [`NameError::Reserved`].
    pub fn encode_name(&self, dir_iv: &DirIv, name: &[u8]) -> Result<BackingName, NameError> {
        validate_name(name)?;
        match self.mode {
            NamesMode::Plaintext => {
                if is_reserved(name) {
                    return Err(NameError::Reserved);
                }
                Ok(BackingName::Short(name.to_vec()))
            }
            NamesMode::Encrypted => {
                let encoded = self.cipher.encrypt_name(dir_iv, name)?;
                if is_long(&encoded) && !self.long_names {
                    return Err(NameError::LongNamesOff);
                }
                if is_long(&encoded) {
                    let long = long_backing_name(&encoded);
                    Ok(BackingName::Long {
                        side_file: side_file_name(&long),
                        name: long,
                        encoded,
                    })
                } else {
                    Ok(BackingName::Short(encoded.into_bytes()))
                }
            }
        }
    }

    /// Decodes a backing entry of kind [`BackingKind::Regular`] (see
    /// [`classify_backing_name`]); reserved names give [`NameError::Reserved`].
    pub fn decode_name(&self, dir_iv: &DirIv, backing: &[u8]) -> Result<Vec<u8>, NameError> {
        if classify_backing_name(backing) != BackingKind::Regular {
            return Err(NameError::Reserved);
        }
        match self.mode {
            NamesMode::Plaintext => {
                validate_name(backing)?;
                Ok(backing.to_vec())
            }
            // An encoding this long is only ever stored hashed, behind a
            // side file: as a short entry it is planted, and refusing it
            // keeps decoding canonical (a decoded name encodes back to the
            // same backing name).
            NamesMode::Encrypted if backing.len() > LONG_NAME_MAX => {
                Err(NameError::LongNameMismatch)
            }
            NamesMode::Encrypted => self.cipher.decrypt_name(dir_iv, backing),
        }
    }

    /// Decodes a backing entry of kind [`BackingKind::LongName`] given the
    /// contents of its side file; checks that the side file hashes to the
    /// entry's name, so side files cannot be swapped.
    pub fn decode_long_name(
        &self,
        dir_iv: &DirIv,
        backing: &[u8],
        side_file_contents: &[u8],
    ) -> Result<Vec<u8>, NameError> {
        if self.mode == NamesMode::Plaintext
            || classify_backing_name(backing) != BackingKind::LongName
        {
            return Err(NameError::Reserved);
        }
        if !self.long_names {
            return Err(NameError::LongNamesOff);
        }
        let encoded = std::str::from_utf8(side_file_contents).map_err(|_| NameError::NotBase64)?;
        if !is_long(encoded) || long_backing_name(encoded).as_bytes() != backing {
            return Err(NameError::LongNameMismatch);
        }
        self.cipher.decrypt_name(dir_iv, encoded.as_bytes())
    }

    /// Encrypts a symlink target (both modes); see [`NamesCipher::encrypt_symlink`].
    pub fn encrypt_symlink(&self, dir_iv: &DirIv, target: &[u8]) -> Result<String, NameError> {
        self.cipher.encrypt_symlink(dir_iv, target)
    }

    /// Decrypts a backing symlink target; see [`NamesCipher::decrypt_symlink`].
    pub fn decrypt_symlink(&self, dir_iv: &DirIv, stored: &[u8]) -> Result<Vec<u8>, NameError> {
        self.cipher.decrypt_symlink(dir_iv, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MAX_SHORT_PLAIN_NAME_LEN, NAME_MAX};
    use super::*;
    use proptest::prelude::*;

    const IV: DirIv = DirIv([0x44; 16]);

    fn enc() -> NameTransform {
        NameTransform::new(&[0x33; 32], NamesMode::Encrypted).unwrap()
    }
    fn plain() -> NameTransform {
        NameTransform::new(&[0x33; 32], NamesMode::Plaintext).unwrap()
    }

    /// A long name's full encoding planted as a short backing entry is
    /// refused: it would decode to a name whose own backing name is the
    /// hashed one, so the entry could be listed but not looked up.
    #[test]
    fn long_encoding_as_short_entry_is_refused() {
        let long = [b'a'; MAX_SHORT_PLAIN_NAME_LEN + 1];
        let Ok(BackingName::Long { encoded, .. }) = enc().encode_name(&IV, &long) else {
            panic!("not a long name");
        };
        assert!(encoded.len() <= NAME_MAX, "fits in one backing name");
        assert_eq!(
            enc().decode_name(&IV, encoded.as_bytes()),
            Err(NameError::LongNameMismatch)
        );
    }

    /// Without the long-names feature a name too long for one backing
    /// name is refused (ENAMETOOLONG) instead of hashed, and a hashed
    /// backing name written with the feature does not decode.
    #[test]
    fn long_names_off_refuses_long_names() {
        let off = enc().with_long_names(false);
        let short = [b'a'; MAX_SHORT_PLAIN_NAME_LEN];
        assert_eq!(off.encode_name(&IV, &short), enc().encode_name(&IV, &short));
        let long = [b'a'; MAX_SHORT_PLAIN_NAME_LEN + 1];
        assert_eq!(off.encode_name(&IV, &long), Err(NameError::LongNamesOff));
        let Ok(BackingName::Long { name, encoded, .. }) = enc().encode_name(&IV, &long) else {
            panic!("not a long name");
        };
        assert_eq!(
            enc().decode_long_name(&IV, name.as_bytes(), encoded.as_bytes()),
            Ok(long.to_vec())
        );
        assert_eq!(
            off.decode_long_name(&IV, name.as_bytes(), encoded.as_bytes()),
            Err(NameError::LongNamesOff)
        );
    }

    #[test]
    fn short_long_boundary() {
        let t = enc();
        let short = t
            .encode_name(&IV, &[b'a'; MAX_SHORT_PLAIN_NAME_LEN])
            .unwrap();
        assert!(!short.is_long());
        assert_eq!(short.name().len(), 175);
        let long = t
            .encode_name(&IV, &[b'a'; MAX_SHORT_PLAIN_NAME_LEN + 1])
            .unwrap();
        let BackingName::Long {
            name,
            side_file,
            encoded,
        } = &long
        else {
            panic!("expected a long name");
        };
        assert_eq!(encoded.len(), 176);
        assert_eq!(side_file, &format!("{name}.name"));
        assert_eq!(
            t.decode_long_name(&IV, name.as_bytes(), encoded.as_bytes())
                .unwrap(),
            vec![b'a'; MAX_SHORT_PLAIN_NAME_LEN + 1]
        );
        // A side file from another long name is refused.
        let other = t.encode_name(&IV, &[b'b'; 200]).unwrap();
        let BackingName::Long {
            encoded: other_enc, ..
        } = other
        else {
            panic!()
        };
        assert_eq!(
            t.decode_long_name(&IV, name.as_bytes(), other_enc.as_bytes()),
            Err(NameError::LongNameMismatch)
        );
        // A long name is not decodable as a regular one.
        assert_eq!(
            t.decode_name(&IV, name.as_bytes()),
            Err(NameError::Reserved)
        );
    }

    #[test]
    fn plaintext_mode() {
        let t = plain();
        assert_eq!(
            t.encode_name(&IV, b"a name").unwrap(),
            BackingName::Short(b"a name".to_vec())
        );
        assert_eq!(t.encode_name(&IV, b"kmsfs.conf"), Err(NameError::Reserved));
        assert_eq!(t.encode_name(&IV, b"kmsfs.x"), Err(NameError::Reserved));
        assert!(t.encode_name(&IV, b"kmsfs").is_ok());
        assert_eq!(t.decode_name(&IV, b"\xff\xfe").unwrap(), b"\xff\xfe");
        assert_eq!(t.decode_name(&IV, b"kmsfs.diriv"), Err(NameError::Reserved));
        let long = [b'x'; 255];
        assert_eq!(t.encode_name(&IV, &long).unwrap().name(), &long[..]);
        let s = t.encrypt_symlink(&IV, b"target").unwrap();
        assert_ne!(s.as_bytes(), b"target");
        assert_eq!(t.decrypt_symlink(&IV, s.as_bytes()).unwrap(), b"target");
    }

    #[test]
    fn encrypted_names_never_look_reserved() {
        let t = enc();
        for name in [&b"kmsfs.conf"[..], b"kmsfs.diriv", b"a"] {
            let b = t.encode_name(&IV, name).unwrap();
            assert_eq!(classify_backing_name(b.name()), BackingKind::Regular);
            assert_eq!(t.decode_name(&IV, b.name()).unwrap(), name);
        }
    }

    proptest! {
        #[test]
        fn round_trip_any_name(name in proptest::collection::vec(1u8..=255, 1..=255)) {
            prop_assume!(!name.contains(&b'/') && name != b"." && name != b"..");
            let t = enc();
            match t.encode_name(&IV, &name).unwrap() {
                BackingName::Short(b) => {
                    prop_assert!(b.len() <= 175);
                    prop_assert!(name.len() <= MAX_SHORT_PLAIN_NAME_LEN);
                    prop_assert_eq!(t.decode_name(&IV, &b).unwrap(), name);
                }
                BackingName::Long { name: n, side_file, encoded } => {
                    prop_assert!(name.len() > MAX_SHORT_PLAIN_NAME_LEN);
                    prop_assert!(side_file.len() <= 255);
                    prop_assert_eq!(classify_backing_name(n.as_bytes()), BackingKind::LongName);
                    prop_assert_eq!(t.decode_long_name(&IV, n.as_bytes(), encoded.as_bytes()).unwrap(), name);
                }
            }
        }
    }
}
