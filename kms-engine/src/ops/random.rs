//! GenerateRandom.

use crate::engine::Engine;
use crate::wire::SecretBytes;
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Largest `NumberOfBytes` (AWS: 1024).
pub const MAX_RANDOM_BYTES: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomRequest {
    pub number_of_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomResponse {
    pub plaintext: SecretBytes,
}

/// `n` random bytes from aws-lc-rs.
pub(crate) fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(v.as_mut_slice())
        .map_err(|_| KmsError::Internal("random source failed".into()))?;
    Ok(v)
}

impl Engine {
    /// GenerateRandom: 1–1024 random bytes.
    pub fn generate_random(
        &self,
        caller: &Principal,
        req: GenerateRandomRequest,
    ) -> Result<GenerateRandomResponse, KmsError> {
        self.audited(caller, "GenerateRandom", |_| {
            let n = req.number_of_bytes;
            if !(1..=MAX_RANDOM_BYTES).contains(&n) {
                return Err(KmsError::Validation(format!(
                    "NumberOfBytes must be between 1 and {MAX_RANDOM_BYTES}, got {n}"
                )));
            }
            Ok(GenerateRandomResponse {
                plaintext: SecretBytes::from(random_bytes(n as usize)?),
            })
        })
    }
}
