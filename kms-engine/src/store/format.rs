//! The sealed store file (format v1): a plaintext header (KDF parameters,
//! salt, key check value, nonce) followed by the postcard-encoded state
//! sealed with AES-256-GCM-SIV under a key derived from the root key.
//! See "Engine store" in `docs/file-format.md`.

use super::root::{KdfParams, RootKind};
use crate::KmsError;
use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 8] = b"KMSFSENG";
pub const STORE_VERSION: u8 = 1;
/// Header length; the header is the AAD of the sealed state.
pub const HEADER_LEN: usize = 8 + 1 + 1 + 12 + 16 + 32 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// The fixed part of the header (everything but the nonce), constant for
/// the life of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHeader {
    pub kind: RootKind,
    /// Zero for key-file stores.
    pub kdf: KdfParams,
    /// Zero for key-file stores.
    pub salt: [u8; 16],
    pub check: [u8; 32],
}

impl StoreHeader {
    fn encode(&self, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8] = STORE_VERSION;
        h[9] = self.kind as u8;
        h[10..14].copy_from_slice(&self.kdf.m_cost_kib.to_be_bytes());
        h[14..18].copy_from_slice(&self.kdf.t_cost.to_be_bytes());
        h[18..22].copy_from_slice(&self.kdf.p_cost.to_be_bytes());
        h[22..38].copy_from_slice(&self.salt);
        h[38..70].copy_from_slice(&self.check);
        h[70..82].copy_from_slice(nonce);
        h
    }

    /// Parses the header of a store file.
    pub fn decode(file: &[u8]) -> Result<StoreHeader, KmsError> {
        if file.len() < HEADER_LEN + TAG_LEN {
            return Err(KmsError::StoreCorrupted("store file is truncated".into()));
        }
        if &file[0..8] != MAGIC {
            return Err(KmsError::StoreCorrupted("not a kmsfs engine store".into()));
        }
        if file[8] != STORE_VERSION {
            return Err(KmsError::StoreCorrupted(format!(
                "unsupported store format version {}",
                file[8]
            )));
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
        let mut check = [0u8; 32];
        check.copy_from_slice(&file[38..70]);
        let kdf = KdfParams {
            m_cost_kib: u32_at(10),
            t_cost: u32_at(14),
            p_cost: u32_at(18),
        };
        if kind == RootKind::Passphrase {
            kdf.validate().map_err(KmsError::StoreCorrupted)?;
        }
        Ok(StoreHeader {
            kind,
            kdf,
            salt,
            check,
        })
    }

    /// True when `check` (from a candidate root key) matches, in constant time.
    pub fn check_matches(&self, check: &[u8; 32]) -> bool {
        verify_slices_are_equal(&self.check, check).is_ok()
    }
}

fn seal_key(seal: &[u8; 32]) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM_SIV, seal)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::Internal("cannot build store key".into()))
}

/// Seals `plain` (the encoded state) into a complete store file.
pub fn seal_file(header: &StoreHeader, seal: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| KmsError::Internal("random source failed".into()))?;
    let h = header.encode(&nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&h);
    out.extend_from_slice(plain);
    let tag = seal_key(seal)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&h[..]),
            &mut out[HEADER_LEN..],
        )
        .map_err(|_| KmsError::Internal("sealing the store failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a store file whose header was checked against the root key.
pub fn open_file(seal: &[u8; 32], file: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    if file.len() < HEADER_LEN + TAG_LEN {
        return Err(KmsError::StoreCorrupted("store file is truncated".into()));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&file[70..82]);
    let tag_at = file.len() - TAG_LEN;
    let mut buf = Zeroizing::new(file[HEADER_LEN..tag_at].to_vec());
    seal_key(seal)?
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&file[..HEADER_LEN]),
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
