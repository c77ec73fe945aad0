//! The filesystem's view of the key service: generate, unwrap and re-wrap
//! per-file data keys, always on behalf of a caller.

use kms_engine::{EncryptionContext, KmsError, Principal};
use zeroize::Zeroizing;

/// A 256-bit data key in plaintext; zeroized on drop, never printed.
pub type DataKeyBytes = Zeroizing<[u8; 32]>;

/// A data key from a service's response: exactly 32 bytes, or the
/// response is refused (a service answering with another length is broken
/// or not the one the volume was made with).
pub(crate) fn to_key(bytes: &[u8]) -> Result<DataKeyBytes, KmsError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        KmsError::InvalidCiphertext(format!(
            "expected a 32-byte data key, got {} bytes",
            bytes.len()
        ))
    })?;
    Ok(DataKeyBytes::new(arr))
}

/// A freshly generated data key: the plaintext and its wrapped form.
pub struct GeneratedDataKey {
    pub plaintext: DataKeyBytes,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for GeneratedDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedDataKey")
            .field("plaintext", &"<redacted>")
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// An asymmetric key's public half, as GetPublicKey returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The key as the service names it (its ARN).
    pub key_id: String,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// `RSA_2048` ...
    pub key_spec: String,
    /// `ENCRYPT_DECRYPT` ...
    pub key_usage: String,
    /// The encryption algorithms the key supports (empty for other usages).
    pub encryption_algorithms: Vec<String>,
}

/// A plaintext of any length from a service (an asymmetric Decrypt);
/// zeroized on drop.
pub type SecretVec = Zeroizing<Vec<u8>>;

/// Calls to a remote key service, for `kmsfs status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStats {
    /// Calls made (each may take several attempts).
    pub requests: u64,
    /// Calls that failed in the end (refusals included).
    pub errors: u64,
    /// Attempts after the first (throttled, 5xx, timeout, connection).
    pub retries: u64,
    /// Attempts the service refused with ThrottlingException.
    pub throttles: u64,
}

/// What the filesystem needs from a KMS. The embedded engine implements it;
/// a remote engine will too.
pub trait KeyService: Send + Sync {
    /// GenerateDataKey (AES_256) under `key_id` with `ctx`.
    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError>;

    /// Decrypt a wrapped data key under `ctx`.
    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError>;

    /// ReEncrypt a wrapped data key from `old_ctx` to `new_ctx` (same key id).
    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError>;

    /// The id of the master key that wrapped `wrapped`, as the blob names
    /// it (the engine blob's header; see docs/file-format.md). Authentic
    /// only once the blob has been decrypted, since the header is part of
    /// the blob's associated data.
    fn wrapping_key_id(&self, wrapped: &[u8]) -> Result<String, KmsError> {
        Ok(kms_engine::blob::parse_header(wrapped)?.key_id.to_string())
    }

    /// Counters of calls to a remote service; `None` for one that keeps none.
    fn service_stats(&self) -> Option<ServiceStats> {
        None
    }

    /// Catches up with key changes another process made (an embedded store
    /// written by `kmsfs kms` while a mount reads it, normally noticed
    /// within a second); a remote service is always current.
    fn refresh(&self) -> Result<(), KmsError> {
        Ok(())
    }

    /// Whether the last call found the service unreachable (new files then
    /// wait for their key, so that creating fails with EIO at once).
    fn unreachable(&self) -> bool {
        false
    }

    /// Makes the audit records of the calls made so far durable, before a
    /// file whose key they account for is reported durable (fsync): an
    /// embedded engine flushing its trail in batches (`--audit-flush-ms`)
    /// flushes now. A service in another process keeps its own trail.
    fn sync_audit(&self) -> Result<(), KmsError> {
        Ok(())
    }

    /// ReEncrypt `wrapped` (under `ctx`) to the newest version of
    /// `dest_key`, under the same context: what `kmsfs rewrap` does to every
    /// file. The data key itself does not change.
    fn reencrypt_data_key(
        &self,
        _caller: &Principal,
        _wrapped: &[u8],
        _ctx: &EncryptionContext,
        _dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        Err(KmsError::UnsupportedOperation(
            "this key service cannot re-encrypt to another key".into(),
        ))
    }

    /// Encrypt a data key under `key_id` with `ctx`: how `kmsfs migrate`
    /// moves a data key unwrapped by another service to this one, and how
    /// a key the mount made for a new file is wrapped (`keys::wrap`).
    fn encrypt_data_key(
        &self,
        _caller: &Principal,
        _key_id: &str,
        _key: &DataKeyBytes,
        _ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        Err(KmsError::UnsupportedOperation(
            "this key service cannot encrypt a data key".into(),
        ))
    }

    /// GetPublicKey of `key_id`: how a write-only volume's mount learns
    /// the RSA key it wraps new files' keys for (`keys::write_only`).
    fn get_public_key(
        &self,
        _caller: &Principal,
        _key_id: &str,
    ) -> Result<PublicKeyInfo, KmsError> {
        Err(KmsError::UnsupportedOperation(
            "this key service has no GetPublicKey".into(),
        ))
    }

    /// Decrypt of an RSA-OAEP `ciphertext` with the asymmetric key
    /// `key_id` and `algorithm` (AWS's EncryptionAlgorithm, e.g.
    /// `RSAES_OAEP_SHA_256`); no encryption context (RSA has none).
    fn decrypt_asymmetric(
        &self,
        _caller: &Principal,
        _key_id: &str,
        _ciphertext: &[u8],
        _algorithm: &str,
    ) -> Result<SecretVec, KmsError> {
        Err(KmsError::UnsupportedOperation(
            "this key service cannot decrypt with an asymmetric key".into(),
        ))
    }
}

pub mod aws;
pub mod cache;
pub mod embedded;
pub mod outage;
pub mod remote;
pub mod wrap;
pub mod write_only;

impl KeyService for std::sync::Arc<dyn KeyService> {
    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        (**self).generate_data_key(caller, key_id, ctx)
    }

    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        (**self).decrypt_data_key(caller, wrapped, ctx)
    }

    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        (**self).rewrap_data_key(caller, wrapped, old_ctx, new_ctx)
    }

    fn wrapping_key_id(&self, wrapped: &[u8]) -> Result<String, KmsError> {
        (**self).wrapping_key_id(wrapped)
    }

    fn service_stats(&self) -> Option<ServiceStats> {
        (**self).service_stats()
    }

    fn refresh(&self) -> Result<(), KmsError> {
        (**self).refresh()
    }

    fn sync_audit(&self) -> Result<(), KmsError> {
        (**self).sync_audit()
    }

    fn unreachable(&self) -> bool {
        (**self).unreachable()
    }

    fn reencrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        (**self).reencrypt_data_key(caller, wrapped, ctx, dest_key)
    }

    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        key: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        (**self).encrypt_data_key(caller, key_id, key, ctx)
    }

    fn get_public_key(&self, caller: &Principal, key_id: &str) -> Result<PublicKeyInfo, KmsError> {
        (**self).get_public_key(caller, key_id)
    }

    fn decrypt_asymmetric(
        &self,
        caller: &Principal,
        key_id: &str,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<SecretVec, KmsError> {
        (**self).decrypt_asymmetric(caller, key_id, ciphertext, algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_is_exactly_32_bytes() {
        assert_eq!(
            *to_key(&[7; 32])
                .map_err(|e| e.to_string())
                .unwrap_or_default(),
            [7; 32]
        );
        for len in [0, 16, 31, 33, 64] {
            let e = to_key(&vec![1; len]).err();
            assert!(
                matches!(e, Some(KmsError::InvalidCiphertext(_))),
                "{len}: {e:?}"
            );
        }
    }
}
