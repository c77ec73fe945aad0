//! The sealed store file. Formats 6 (written), 5, 4, 3 and 2 (read,
//! converted at the first write): a plaintext header (KDF parameters, salt, the store key
//! wrapped under the root key, nonce) followed by the postcard-encoded state
//! sealed with AES-256-GCM-SIV under the store key; format 3's state adds
//! the audit path settings, format 4's the access keys, format 5's each
//! key's spec, usage and origin (asymmetric and HMAC key material), format
//! 6's the PendingImport state, keys without material and each EXTERNAL
//! key's import record. Format 1 (read,
//! converted at the first write): the state sealed under a key derived from
//! the root key, with a key check value. See "Engine store" in
//! `docs/file-format.md`.

use super::root::{self, KdfParams, RootKind};
use crate::KmsError;
use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use std::fmt;
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 8] = b"KMSFSENG";
/// The format every write produces.
pub const STORE_VERSION: u8 = 6;
/// Format 5: format 6's layout, with keys without an import record (no
/// imported key material). Still read, never written by the engine.
pub const STORE_VERSION_5: u8 = 5;
/// Format 4: format 6's layout, with keys without spec, usage and origin
/// (all symmetric). Still read, never written by the engine.
pub const STORE_VERSION_4: u8 = 4;
/// Format 3: format 6's layout, with a state without access keys. Still
/// read, never written by the engine.
pub const STORE_VERSION_3: u8 = 3;
/// Format 2: format 6's layout, with a state without the audit path
/// settings. Still read, never written by the engine.
pub const STORE_VERSION_2: u8 = 2;
/// The first format: still read, never written by the engine.
pub const STORE_VERSION_1: u8 = 1;
/// Header length of format 1; the header is the AAD of the sealed state.
pub const V1_HEADER_LEN: usize = ROOT_PARAMS_LEN + 32 + NONCE_LEN;
/// Header length of formats 2 to 6; the header is the AAD of the sealed state.
pub const HEADER_LEN: usize = ROOT_PARAMS_LEN + NONCE_LEN + WRAPPED_LEN + NONCE_LEN;
/// Bytes 0..38 of both formats: magic, version, root kind, KDF parameters,
/// salt. In format 2 they are the AAD of the wrapped store key.
pub const ROOT_PARAMS_LEN: usize = 8 + 1 + 1 + 12 + 16;
const TAG_LEN: usize = 16;
/// The wrapped store key: 32 bytes of ciphertext and the 16-byte tag.
pub const WRAPPED_LEN: usize = 32 + TAG_LEN;

/// How the root key is obtained from the secret: the part of the header a
/// root-key change replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootParams {
    pub kind: RootKind,
    /// Zero for key-file stores.
    pub kdf: KdfParams,
    /// Zero for key-file stores.
    pub salt: [u8; 16],
}

impl RootParams {
    /// Parameters for a new root key of `kind`: a fresh random salt and
    /// `kdf` for a passphrase (validated), zeros for a key file.
    pub fn fresh(kind: RootKind, kdf: KdfParams) -> Result<RootParams, KmsError> {
        match kind {
            RootKind::Passphrase => {
                kdf.validate().map_err(KmsError::Validation)?;
                let mut salt = [0u8; 16];
                aws_lc_rs::rand::fill(&mut salt)
                    .map_err(|_| KmsError::Internal("random source failed".into()))?;
                Ok(RootParams { kind, kdf, salt })
            }
            RootKind::KeyFile => Ok(RootParams {
                kind,
                kdf: KdfParams {
                    m_cost_kib: 0,
                    t_cost: 0,
                    p_cost: 0,
                },
                salt: [0u8; 16],
            }),
        }
    }

    /// Bytes 0..38 of a header of format `version`.
    fn encode(&self, version: u8) -> [u8; ROOT_PARAMS_LEN] {
        let mut h = [0u8; ROOT_PARAMS_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8] = version;
        h[9] = self.kind as u8;
        h[10..14].copy_from_slice(&self.kdf.m_cost_kib.to_be_bytes());
        h[14..18].copy_from_slice(&self.kdf.t_cost.to_be_bytes());
        h[18..22].copy_from_slice(&self.kdf.p_cost.to_be_bytes());
        h[22..38].copy_from_slice(&self.salt);
        h
    }
}

/// The store key wrapped under the root key (format 2): nonce, then
/// AES-256-GCM-SIV ciphertext and tag.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WrappedStoreKey {
    pub nonce: [u8; NONCE_LEN],
    pub sealed: [u8; WRAPPED_LEN],
}

impl fmt::Debug for WrappedStoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrappedStoreKey(..)")
    }
}

/// The header of a store file without the state nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHeader {
    /// Format 1: the state is sealed under a key derived from the root key;
    /// `check` tells a wrong root key apart from a damaged store.
    V1 { root: RootParams, check: [u8; 32] },
    /// Formats 2 to 6 (`version`): the state is sealed under the store
    /// key, which is wrapped under the root key.
    Wrapped {
        version: u8,
        root: RootParams,
        wrapped: WrappedStoreKey,
    },
}

fn aead_key(key: &[u8; 32], what: &str) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM_SIV, key)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::Internal(format!("cannot build the {what}")))
}

fn random_nonce() -> Result<[u8; NONCE_LEN], KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| KmsError::Internal("random source failed".into()))?;
    Ok(nonce)
}

impl StoreHeader {
    /// A header of the current format holding `store_key` wrapped under
    /// `root_key` (the key `root` gives), with a random nonce.
    pub fn wrap(
        root: RootParams,
        root_key: &[u8; 32],
        store_key: &[u8; 32],
    ) -> Result<StoreHeader, KmsError> {
        Self::wrap_with_nonce(STORE_VERSION, root, root_key, store_key, random_nonce()?)
    }

    /// [`StoreHeader::wrap`] for format `version` (2 to 6) with a given
    /// nonce; for the known-answer tests.
    pub fn wrap_with_nonce(
        version: u8,
        root: RootParams,
        root_key: &[u8; 32],
        store_key: &[u8; 32],
        nonce: [u8; NONCE_LEN],
    ) -> Result<StoreHeader, KmsError> {
        let wrap_key = root::wrap_key(root_key);
        let aad = root.encode(version);
        let mut sealed = [0u8; WRAPPED_LEN];
        sealed[..32].copy_from_slice(store_key);
        let tag = aead_key(&wrap_key, "store key wrapping key")?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut sealed[..32],
            )
            .map_err(|_| KmsError::Internal("wrapping the store key failed".into()))?;
        sealed[32..].copy_from_slice(tag.as_ref());
        Ok(StoreHeader::Wrapped {
            version,
            root,
            wrapped: WrappedStoreKey { nonce, sealed },
        })
    }

    /// How the root key of this store is obtained.
    pub fn root(&self) -> &RootParams {
        match self {
            StoreHeader::V1 { root, .. } | StoreHeader::Wrapped { root, .. } => root,
        }
    }

    /// The format version byte.
    pub fn version(&self) -> u8 {
        match self {
            StoreHeader::V1 { .. } => STORE_VERSION_1,
            StoreHeader::Wrapped { version, .. } => *version,
        }
    }

    /// Length of the whole header, state nonce included.
    pub fn len(&self) -> usize {
        match self {
            StoreHeader::V1 { .. } => V1_HEADER_LEN,
            StoreHeader::Wrapped { .. } => HEADER_LEN,
        }
    }

    /// Never true: a header has a fixed, nonzero length.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The header's bytes with the state nonce `nonce`.
    fn encode(&self, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let mut h = Vec::with_capacity(self.len());
        h.extend_from_slice(&self.root().encode(self.version()));
        match self {
            StoreHeader::V1 { check, .. } => h.extend_from_slice(check),
            StoreHeader::Wrapped { wrapped, .. } => {
                h.extend_from_slice(&wrapped.nonce);
                h.extend_from_slice(&wrapped.sealed);
            }
        }
        h.extend_from_slice(nonce);
        h
    }

    /// Parses the header of a store file of format 1 to 5.
    pub fn decode(file: &[u8]) -> Result<StoreHeader, KmsError> {
        if file.len() < ROOT_PARAMS_LEN {
            return Err(KmsError::StoreCorrupted("store file is truncated".into()));
        }
        if &file[0..8] != MAGIC {
            return Err(KmsError::StoreCorrupted("not a kmsfs engine store".into()));
        }
        let header_len = match file[8] {
            STORE_VERSION_1 => V1_HEADER_LEN,
            STORE_VERSION_2 | STORE_VERSION_3 | STORE_VERSION_4 | STORE_VERSION_5
            | STORE_VERSION => HEADER_LEN,
            v => {
                return Err(KmsError::StoreCorrupted(format!(
                    "unsupported store format version {v}"
                )));
            }
        };
        if file.len() < header_len + TAG_LEN {
            return Err(KmsError::StoreCorrupted("store file is truncated".into()));
        }
        let kind = match file[9] {
            1 => RootKind::Passphrase,
            2 => RootKind::KeyFile,
            k => {
                return Err(KmsError::StoreCorrupted(format!(
                    "unknown root key kind {k}"
                )));
            }
        };
        let u32_at =
            |i: usize| u32::from_be_bytes([file[i], file[i + 1], file[i + 2], file[i + 3]]);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&file[22..38]);
        let kdf = KdfParams {
            m_cost_kib: u32_at(10),
            t_cost: u32_at(14),
            p_cost: u32_at(18),
        };
        if kind == RootKind::Passphrase {
            kdf.validate().map_err(KmsError::StoreCorrupted)?;
        }
        let root = RootParams { kind, kdf, salt };
        if file[8] == STORE_VERSION_1 {
            let mut check = [0u8; 32];
            check.copy_from_slice(&file[38..70]);
            return Ok(StoreHeader::V1 { root, check });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&file[38..50]);
        let mut sealed = [0u8; WRAPPED_LEN];
        sealed.copy_from_slice(&file[50..98]);
        Ok(StoreHeader::Wrapped {
            version: file[8],
            root,
            wrapped: WrappedStoreKey { nonce, sealed },
        })
    }

    /// The store key, from the root key this header's [`RootParams`] give:
    /// formats 2 to 5 unwrap it, format 1 derives it (its sealing key). A root
    /// key that does not fit (the wrap fails to authenticate, or the key
    /// check value differs) gives `WrongPassphrase`.
    pub fn unlock(&self, root_key: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        match self {
            StoreHeader::V1 { check, .. } => {
                let derived = root::derive(root_key);
                verify_slices_are_equal(check, &derived.check)
                    .map_err(|_| KmsError::WrongPassphrase)?;
                Ok(derived.seal)
            }
            StoreHeader::Wrapped {
                version,
                root,
                wrapped,
            } => {
                let wrap_key = root::wrap_key(root_key);
                let aad = root.encode(*version);
                let mut buf = Zeroizing::new(wrapped.sealed);
                let (ct, tag) = buf.split_at_mut(32);
                aead_key(&wrap_key, "store key wrapping key")?
                    .open_in_place_separate_tag(
                        Nonce::assume_unique_for_key(wrapped.nonce),
                        Aad::from(&aad[..]),
                        tag,
                        ct,
                    )
                    .map_err(|_| KmsError::WrongPassphrase)?;
                let mut key = Zeroizing::new([0u8; 32]);
                key.copy_from_slice(ct);
                Ok(key)
            }
        }
    }
}

/// Seals `plain` (the encoded state) under `store_key` into a complete store
/// file with `header` (of either format) and a random nonce.
pub fn seal_file(
    header: &StoreHeader,
    store_key: &[u8; 32],
    plain: &[u8],
) -> Result<Vec<u8>, KmsError> {
    seal_file_with_nonce(header, store_key, plain, random_nonce()?)
}

/// [`seal_file`] with a given nonce; for the known-answer test.
pub fn seal_file_with_nonce(
    header: &StoreHeader,
    store_key: &[u8; 32],
    plain: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, KmsError> {
    let h = header.encode(&nonce);
    let mut out = Vec::with_capacity(h.len() + plain.len() + TAG_LEN);
    out.extend_from_slice(&h);
    out.extend_from_slice(plain);
    let tag = aead_key(store_key, "store key")?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&h[..]),
            &mut out[h.len()..],
        )
        .map_err(|_| KmsError::Internal("sealing the store failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a store file (of either format) with its store key. The whole
/// header is authenticated, so a header changed by anyone without the store
/// key is refused.
pub fn open_file(store_key: &[u8; 32], file: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let header_len = StoreHeader::decode(file)?.len();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&file[header_len - NONCE_LEN..header_len]);
    let tag_at = file.len() - TAG_LEN;
    let mut buf = Zeroizing::new(file[header_len..tag_at].to_vec());
    aead_key(store_key, "store key")?
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&file[..header_len]),
            &file[tag_at..],
            buf.as_mut_slice(),
        )
        .map_err(|_| {
            KmsError::StoreCorrupted(
                "store contents fail authentication (corrupted or tampered)".into(),
            )
        })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kat_root() -> RootParams {
        RootParams {
            kind: RootKind::Passphrase,
            kdf: KdfParams {
                m_cost_kib: 8,
                t_cost: 1,
                p_cost: 1,
            },
            salt: [0x5a; 16],
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Format 2, byte by byte (docs/file-format.md "Engine store"; cross-
    /// checked with Python `cryptography`'s `AESGCMSIV` and `hmac`): root
    /// key 32 x 0x11, store key 32 x 0x22, wrap nonce 12 x 0x33, state
    /// nonce 12 x 0x44, state "kmsfs".
    #[test]
    fn known_answer_v2() {
        let root_key = [0x11; 32];
        let store_key = [0x22; 32];
        let h =
            StoreHeader::wrap_with_nonce(2, kat_root(), &root_key, &store_key, [0x33; 12]).unwrap();
        let file = seal_file_with_nonce(&h, &store_key, b"kmsfs", [0x44; 12]).unwrap();
        assert_eq!(hex(&file), KAT_V2_HEX);
        assert_eq!(file.len(), HEADER_LEN + 5 + TAG_LEN);
        let back = StoreHeader::decode(&file).unwrap();
        assert_eq!(back, h);
        assert_eq!(*back.unlock(&root_key).unwrap(), store_key);
        assert_eq!(&*open_file(&store_key, &file).unwrap(), b"kmsfs");
    }

    /// Format 3: format 2's layout with version byte 3, which is part of the
    /// wrap's associated data (cross-checked as for format 2).
    #[test]
    fn known_answer_v3() {
        let root_key = [0x11; 32];
        let store_key = [0x22; 32];
        let h =
            StoreHeader::wrap_with_nonce(3, kat_root(), &root_key, &store_key, [0x33; 12]).unwrap();
        let file = seal_file_with_nonce(&h, &store_key, b"kmsfs", [0x44; 12]).unwrap();
        let want = KAT_V2_HEX
            .replacen("4b4d534653454e4702", "4b4d534653454e4703", 1)
            .replace(KAT_V2_WRAPPED, KAT_V3_WRAPPED)
            .replace(KAT_V2_STATE, KAT_V3_STATE);
        assert_eq!(hex(&file), want);
        let back = StoreHeader::decode(&file).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.version(), STORE_VERSION_3);
        assert_eq!(*back.unlock(&root_key).unwrap(), store_key);
        assert_eq!(&*open_file(&store_key, &file).unwrap(), b"kmsfs");
        // The same bytes with version byte 2 do not unwrap.
        let mut as_v2 = file.clone();
        as_v2[8] = 2;
        let h2 = StoreHeader::decode(&as_v2).unwrap();
        assert_eq!(h2.unlock(&root_key).unwrap_err(), KmsError::WrongPassphrase);
    }

    /// Format 4: the same layout with version byte 4 (access keys in the
    /// state), cross-checked with Python `cryptography`'s `AESGCMSIV` and
    /// `hmac` as for format 2.
    #[test]
    fn known_answer_v4() {
        let root_key = [0x11; 32];
        let store_key = [0x22; 32];
        let h =
            StoreHeader::wrap_with_nonce(4, kat_root(), &root_key, &store_key, [0x33; 12]).unwrap();
        let file = seal_file_with_nonce(&h, &store_key, b"kmsfs", [0x44; 12]).unwrap();
        let want = KAT_V2_HEX
            .replacen("4b4d534653454e4702", "4b4d534653454e4704", 1)
            .replace(KAT_V2_WRAPPED, KAT_V4_WRAPPED)
            .replace(KAT_V2_STATE, KAT_V4_STATE);
        assert_eq!(hex(&file), want);
        let back = StoreHeader::decode(&file).unwrap();
        assert_eq!(back.version(), STORE_VERSION_4);
        assert_eq!(*back.unlock(&root_key).unwrap(), store_key);
        assert_eq!(&*open_file(&store_key, &file).unwrap(), b"kmsfs");
        // The same bytes as format 3 do not unwrap.
        let mut as_v3 = file.clone();
        as_v3[8] = 3;
        let h3 = StoreHeader::decode(&as_v3).unwrap();
        assert_eq!(h3.unlock(&root_key).unwrap_err(), KmsError::WrongPassphrase);
    }

    /// Format 5: the same layout with version byte 5 (key specs, usages
    /// and origins in the state), cross-checked with Python
    /// `cryptography`'s `AESGCMSIV` and `hmac` as for format 2.
    #[test]
    fn known_answer_v5() {
        let root_key = [0x11; 32];
        let store_key = [0x22; 32];
        let h =
            StoreHeader::wrap_with_nonce(5, kat_root(), &root_key, &store_key, [0x33; 12]).unwrap();
        let file = seal_file_with_nonce(&h, &store_key, b"kmsfs", [0x44; 12]).unwrap();
        let want = KAT_V2_HEX
            .replacen("4b4d534653454e4702", "4b4d534653454e4705", 1)
            .replace(KAT_V2_WRAPPED, KAT_V5_WRAPPED)
            .replace(KAT_V2_STATE, KAT_V5_STATE);
        assert_eq!(hex(&file), want);
        let back = StoreHeader::decode(&file).unwrap();
        assert_eq!(back.version(), STORE_VERSION_5);
        assert_eq!(*back.unlock(&root_key).unwrap(), store_key);
        assert_eq!(&*open_file(&store_key, &file).unwrap(), b"kmsfs");
        // The same bytes as format 4 do not unwrap.
        let mut as_v4 = file.clone();
        as_v4[8] = 4;
        let h4 = StoreHeader::decode(&as_v4).unwrap();
        assert_eq!(h4.unlock(&root_key).unwrap_err(), KmsError::WrongPassphrase);
    }

    /// Format 6: the same layout with version byte 6 (PendingImport keys
    /// and import records in the state), cross-checked with Python
    /// `cryptography`'s `AESGCMSIV` and `hmac` as for format 2.
    #[test]
    fn known_answer_v6() {
        let root_key = [0x11; 32];
        let store_key = [0x22; 32];
        let h =
            StoreHeader::wrap_with_nonce(6, kat_root(), &root_key, &store_key, [0x33; 12]).unwrap();
        let file = seal_file_with_nonce(&h, &store_key, b"kmsfs", [0x44; 12]).unwrap();
        let want = KAT_V2_HEX
            .replacen("4b4d534653454e4702", "4b4d534653454e4706", 1)
            .replace(KAT_V2_WRAPPED, KAT_V6_WRAPPED)
            .replace(KAT_V2_STATE, KAT_V6_STATE);
        assert_eq!(hex(&file), want);
        let back = StoreHeader::decode(&file).unwrap();
        assert_eq!(back.version(), STORE_VERSION);
        assert_eq!(*back.unlock(&root_key).unwrap(), store_key);
        assert_eq!(&*open_file(&store_key, &file).unwrap(), b"kmsfs");
        // The same bytes as format 5 do not unwrap.
        let mut as_v5 = file.clone();
        as_v5[8] = 5;
        let h5 = StoreHeader::decode(&as_v5).unwrap();
        assert_eq!(h5.unlock(&root_key).unwrap_err(), KmsError::WrongPassphrase);
    }

    const KAT_V6_WRAPPED: &str = concat!(
        "1f4c6b4983e546ec11d5ad6d6a3871d54a62d2cba029971d68c15ce2b5472158",
        "b9934fede1dffa4fd1d1cc33521fca26",
    );
    const KAT_V6_STATE: &str = "dd81b23d36603ea7e2207dfc0966f76942f27d7377";

    const KAT_V5_WRAPPED: &str = concat!(
        "a737a74d96ccbbc0a8f2b3fcf568517cce0bc0dc8f0c0ddaed769dbfe032eb27",
        "e3f0abf01d39e6b810c6d6b4559b0df3",
    );
    const KAT_V5_STATE: &str = "7d97cc2b2ee8db88d8a7349d6ee432c5a8b7e20e2d";

    const KAT_V4_WRAPPED: &str = concat!(
        "f58352dc06c40850fb8f8b2b84a000dbd3bb075f71f31e64db3a4a55198577c5",
        "551c0cfa1de05b87b832493901bca4ca",
    );
    const KAT_V4_STATE: &str = "3b008ff623083db7185a9be917c96b5aef8b05c5ea";

    const KAT_V2_WRAPPED: &str = concat!(
        "46d6c3cf33297eb3f72fc5d906638803cb3b900b811799b467b3ec0e27aff242",
        "cdf727e2875eeabc4c392e838aa5f9c1",
    );
    const KAT_V2_STATE: &str = "04e2f184f82207cd5630ef5bf51db88fe06aafd574";
    const KAT_V3_WRAPPED: &str = concat!(
        "c9e871eaddfee75323ca9881f467eaa984c6cb14e36c5f72e97ae47c36121ad0",
        "3db5474f82f34633ea6dc4a867f32732",
    );
    const KAT_V3_STATE: &str = "18501ba5563fbae5d84fff24e17bbc06f18b39e2a1";

    const KAT_V2_HEX: &str = concat!(
        "4b4d534653454e47", // magic
        "02",               // version
        "01",               // passphrase
        "00000008",
        "00000001",
        "00000001",                         // m, t, p
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // salt
        "333333333333333333333333",         // wrap nonce
        // wrapped store key: ciphertext, tag
        "46d6c3cf33297eb3f72fc5d906638803cb3b900b811799b467b3ec0e27aff242",
        "cdf727e2875eeabc4c392e838aa5f9c1",
        "444444444444444444444444",         // state nonce
        "04e2f184f8",                       // sealed state
        "2207cd5630ef5bf51db88fe06aafd574", // tag
    );

    /// Format 1 as the engine wrote it before format 2 (the frozen stores in
    /// tests/vectors are the real thing; this pins the layout).
    #[test]
    fn known_answer_v1() {
        let root_key = [0x11; 32];
        let derived = root::derive(&root_key);
        let h = StoreHeader::V1 {
            root: kat_root(),
            check: derived.check,
        };
        let file = seal_file_with_nonce(&h, &derived.seal, b"kmsfs", [0x44; 12]).unwrap();
        assert_eq!(file.len(), V1_HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(&file[8..10], &[1, 1]);
        assert_eq!(&file[38..70], &derived.check);
        assert_eq!(StoreHeader::decode(&file).unwrap(), h);
        assert_eq!(*h.unlock(&root_key).unwrap(), *derived.seal);
        assert_eq!(&*open_file(&derived.seal, &file).unwrap(), b"kmsfs");
    }

    /// A wrong root key is WrongPassphrase; any changed header byte either
    /// fails to decode, fails the wrap (WrongPassphrase) or fails the state
    /// (StoreCorrupted): never opens.
    #[test]
    fn wrong_root_and_changed_bytes_are_refused() {
        let root_key = [0x11; 32];
        let store_key = [0x22; 32];
        let h = StoreHeader::wrap(kat_root(), &root_key, &store_key).unwrap();
        assert_eq!(
            h.unlock(&[0x12; 32]).unwrap_err(),
            KmsError::WrongPassphrase
        );
        let file = seal_file(&h, &store_key, b"state").unwrap();
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            let unlocked = StoreHeader::decode(&bad).and_then(|h| h.unlock(&root_key));
            let opened = unlocked.and_then(|k| open_file(&k, &bad));
            assert!(opened.is_err(), "byte {i} changed and the store opened");
            // A process holding the store key authenticates the whole header.
            assert!(open_file(&store_key, &bad).is_err(), "byte {i}");
        }
    }
}
