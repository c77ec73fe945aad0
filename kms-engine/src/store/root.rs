//! Where the store's root key comes from: a passphrase stretched with
//! Argon2id (parameters kept in the store header) or a 32-byte key file.

use crate::KmsError;
use aws_lc_rs::hmac;
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The secret that opens an engine store.
pub enum RootKeySource {
    /// A passphrase, stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// A file holding exactly 32 raw key bytes.
    KeyFile(PathBuf),
    /// 32 raw key bytes already in memory (e.g. read from a key file by the caller).
    Key(Zeroizing<[u8; 32]>),
}

impl fmt::Debug for RootKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootKeySource::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            RootKeySource::KeyFile(p) => f.debug_tuple("KeyFile").field(p).finish(),
            RootKeySource::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

/// Argon2id cost parameters (kept in the store header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// Production parameters: 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// The largest costs a store may ask for: 4 GiB of memory, 64 passes,
    /// 16 lanes. The header is read before anything is authenticated, so a
    /// tampered header must not be able to make `open` exhaust memory or hang.
    pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    pub const MAX_T_COST: u32 = 64;
    pub const MAX_P_COST: u32 = 16;

    /// Checks the parameters are within what Argon2id accepts and within the
    /// caps above; the message names the offending parameter.
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, v: u32, min: u32, max: u32| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!("Argon2id {name} {v} is outside {min}..={max}"))
            }
        };
        check("lanes", self.p_cost, 1, Self::MAX_P_COST)?;
        check("passes", self.t_cost, 1, Self::MAX_T_COST)?;
        // Argon2 needs at least 8 KiB per lane; p_cost is capped above.
        check(
            "memory (KiB)",
            self.m_cost_kib,
            8 * self.p_cost,
            Self::MAX_M_COST_KIB,
        )
    }

    /// Tiny parameters so tests run fast. Never use for a real store.
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }
}

/// How the root key of a store is obtained (header field `root kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    Passphrase = 1,
    KeyFile = 2,
}

/// Reads a key file: exactly 32 bytes.
pub fn read_key_file(path: &std::path::Path) -> Result<Zeroizing<[u8; 32]>, KmsError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        KmsError::Validation(format!("cannot read key file {}: {e}", path.display()))
    })?);
    if bytes.len() != 32 {
        return Err(KmsError::Validation(format!(
            "key file {} must hold exactly 32 bytes, it holds {}",
            path.display(),
            bytes.len()
        )));
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&bytes);
    Ok(k)
}

/// Kind of root key a source gives.
pub fn kind_of(src: &RootKeySource) -> RootKind {
    match src {
        RootKeySource::Passphrase(_) => RootKind::Passphrase,
        RootKeySource::KeyFile(_) | RootKeySource::Key(_) => RootKind::KeyFile,
    }
}

/// Derives the 32-byte root key. For a passphrase, Argon2id(passphrase, salt, params).
pub fn root_key(
    src: &RootKeySource,
    params: KdfParams,
    salt: &[u8; 16],
) -> Result<Zeroizing<[u8; 32]>, KmsError> {
    match src {
        RootKeySource::Passphrase(p) => {
            let a2params =
                argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
                    .map_err(|e| {
                        KmsError::Validation(format!("invalid Argon2id parameters: {e}"))
                    })?;
            let a2 = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                a2params,
            );
            let mut out = Zeroizing::new([0u8; 32]);
            a2.hash_password_into(p.as_bytes(), salt, out.as_mut())
                .map_err(|e| KmsError::Internal(format!("Argon2id failed: {e}")))?;
            Ok(out)
        }
        RootKeySource::KeyFile(path) => read_key_file(path),
        RootKeySource::Key(k) => Ok(k.clone()),
    }
}

/// The keys a format-1 store derives from the root key: the store sealing
/// key and the key check value (both HMAC-SHA256(root, label)). The sealing
/// key is also the store key of a store converted from format 1.
pub struct DerivedKeys {
    pub seal: Zeroizing<[u8; 32]>,
    pub check: [u8; 32],
}

impl fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKeys(<redacted>)")
    }
}

pub const SEAL_LABEL: &[u8] = b"kmsfs-engine store seal v1";
pub const CHECK_LABEL: &[u8] = b"kmsfs-engine key check v1";
pub const WRAP_LABEL: &[u8] = b"kmsfs-engine store key wrap v2";

pub fn derive(root: &[u8; 32]) -> DerivedKeys {
    let k = hmac::Key::new(hmac::HMAC_SHA256, root);
    let mut seal = Zeroizing::new([0u8; 32]);
    seal.copy_from_slice(hmac::sign(&k, SEAL_LABEL).as_ref());
    let mut check = [0u8; 32];
    check.copy_from_slice(hmac::sign(&k, CHECK_LABEL).as_ref());
    DerivedKeys { seal, check }
}

/// The key that wraps the store key in a format-2 header:
/// HMAC-SHA256(root, `WRAP_LABEL`).
pub fn wrap_key(root: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, root);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(hmac::sign(&k, WRAP_LABEL).as_ref());
    out
}
