//! The embedded engine as a [`KeyService`]: GenerateDataKey (AES_256),
//! Encrypt, Decrypt and ReEncrypt on an in-process `kms_engine::Engine`.

use crate::keys::{DataKeyBytes, GeneratedDataKey, KeyService, PublicKeyInfo, SecretVec, to_key};
use kms_engine::{
    DecryptRequest, EncryptRequest, EncryptionContext, Engine, GenerateDataKeyRequest,
    GetPublicKeyRequest, KmsError, Principal, ReEncryptRequest, SecretBytes,
};
use std::sync::Arc;
use zeroize::Zeroizing;

impl KeyService for Arc<Engine> {
    fn refresh(&self) -> Result<(), KmsError> {
        self.refresh_now()
    }

    fn sync_audit(&self) -> Result<(), KmsError> {
        Engine::sync_audit(self)
    }

    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let resp = Engine::generate_data_key(
            self,
            caller,
            GenerateDataKeyRequest {
                key_id: key_id.to_string(),
                encryption_context: ctx.clone(),
                key_spec: Some("AES_256".to_string()),
                number_of_bytes: None,
                grant_tokens: None,
            },
        )?;
        Ok(GeneratedDataKey {
            plaintext: to_key(resp.plaintext.as_slice())?,
            wrapped: resp.ciphertext_blob,
        })
    }

    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        plaintext: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let resp = Engine::encrypt(
            self,
            caller,
            EncryptRequest {
                key_id: key_id.to_string(),
                plaintext: SecretBytes::new(plaintext.to_vec()),
                encryption_context: ctx.clone(),
                encryption_algorithm: None,
                grant_tokens: None,
            },
        )?;
        Ok(resp.ciphertext_blob)
    }

    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        let resp = Engine::decrypt(
            self,
            caller,
            DecryptRequest {
                ciphertext_blob: wrapped.to_vec(),
                encryption_context: ctx.clone(),
                key_id: None,
                encryption_algorithm: None,
                grant_tokens: None,
            },
        )?;
        to_key(resp.plaintext.as_slice())
    }

    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        // ReEncrypt to the key that wrapped the blob: the engine names it.
        let key_id = self.wrapping_key_id(wrapped)?;
        let resp = Engine::re_encrypt(
            self,
            caller,
            ReEncryptRequest {
                ciphertext_blob: wrapped.to_vec(),
                source_encryption_context: old_ctx.clone(),
                source_key_id: None,
                destination_key_id: key_id,
                destination_encryption_context: new_ctx.clone(),
                source_encryption_algorithm: None,
                destination_encryption_algorithm: None,
                grant_tokens: None,
            },
        )?;
        Ok(resp.ciphertext_blob)
    }

    fn reencrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        let resp = Engine::re_encrypt(
            self,
            caller,
            ReEncryptRequest {
                ciphertext_blob: wrapped.to_vec(),
                source_encryption_context: ctx.clone(),
                source_key_id: None,
                destination_key_id: dest_key.to_string(),
                destination_encryption_context: ctx.clone(),
                source_encryption_algorithm: None,
                destination_encryption_algorithm: None,
                grant_tokens: None,
            },
        )?;
        Ok(resp.ciphertext_blob)
    }

    fn get_public_key(&self, caller: &Principal, key_id: &str) -> Result<PublicKeyInfo, KmsError> {
        let resp = Engine::get_public_key(
            self,
            caller,
            GetPublicKeyRequest {
                key_id: key_id.to_string(),
                grant_tokens: None,
            },
        )?;
        Ok(PublicKeyInfo {
            key_id: resp.key_id,
            public_key: resp.public_key,
            key_spec: resp.key_spec,
            key_usage: resp.key_usage,
            encryption_algorithms: resp.encryption_algorithms.unwrap_or_default(),
        })
    }

    fn decrypt_asymmetric(
        &self,
        caller: &Principal,
        key_id: &str,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<SecretVec, KmsError> {
        let resp = Engine::decrypt(
            self,
            caller,
            DecryptRequest {
                ciphertext_blob: ciphertext.to_vec(),
                encryption_context: EncryptionContext::new(),
                key_id: Some(key_id.to_string()),
                encryption_algorithm: Some(algorithm.to_string()),
                grant_tokens: None,
            },
        )?;
        Ok(Zeroizing::new(resp.plaintext.as_slice().to_vec()))
    }
}
