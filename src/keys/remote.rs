//! The filesystem's [`KeyService`] over any [`Transport`] (an engine
//! daemon's socket, later an HTTPS endpoint): GenerateDataKey (AES_256),
//! Decrypt and ReEncrypt as AWS JSON requests. The process using it holds
//! no master key, no store secret and no store file.
//!
//! The transport's own principal is the process (the kernel tells the
//! daemon who it is). A call for another principal, a FUSE caller of an
//! `--allow-other` mount, names it as `on_behalf_of`: the engine accepts
//! that only when the process may act for others on the key, and audits
//! both. A call for the process itself names nobody.
//!
//! When the engine cannot be reached (`KMSUnavailableException`: the daemon
//! stopped, a call timed out), the call fails at once (the filesystem
//! answers EIO) and one log line says so for the whole episode; the next
//! call that gets through logs one line that the engine is back. The
//! transport reconnects by itself.

use crate::keys::outage::OutageLog;
use crate::keys::{DataKeyBytes, GeneratedDataKey, KeyService, PublicKeyInfo, SecretVec, to_key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_engine::service::Transport;
use kms_engine::{EncryptionContext, KmsError, Principal};
use serde_json::{Value, json};
use std::sync::Arc;
use zeroize::Zeroizing;

/// A [`KeyService`] that sends each call through a [`Transport`].
pub struct TransportKeys {
    transport: Arc<dyn Transport>,
    /// Who the transport's own principal is (this process), so that a call
    /// for it is not sent on behalf of anyone.
    me: Principal,
    /// One log line per episode of the engine being unreachable.
    outage: OutageLog,
}

impl std::fmt::Debug for TransportKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportKeys")
            .field("me", &self.me.to_string())
            .finish_non_exhaustive()
    }
}

impl TransportKeys {
    /// Calls through `transport`, whose own principal is this process.
    pub fn new(transport: Arc<dyn Transport>) -> TransportKeys {
        TransportKeys {
            transport,
            me: Principal::current_process(),
            outage: OutageLog::new("the key engine"),
        }
    }

    /// `None` for this process itself (same uid, gid and groups), else the
    /// caller to act for.
    fn on_behalf_of<'a>(&self, caller: &'a Principal) -> Option<&'a Principal> {
        let same_groups = || {
            let norm = |p: &Principal| {
                let mut g: Vec<u32> = p.groups.iter().copied().filter(|g| *g != p.gid).collect();
                g.sort_unstable();
                g.dedup();
                g
            };
            norm(caller) == norm(&self.me)
        };
        if caller.uid == self.me.uid && caller.gid == self.me.gid && same_groups() {
            None
        } else {
            Some(caller)
        }
    }

    fn call(&self, op: &str, request: Value, caller: &Principal) -> Result<Value, KmsError> {
        let result = self.transport.call(op, request, self.on_behalf_of(caller));
        self.outage.observe(&result);
        result
    }
}

/// The base64 field `name` of a response, decoded; the text is wiped.
fn bytes_field(resp: &mut Value, op: &str, name: &str) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let missing = || KmsError::Internal(format!("the engine's {op} response has no {name}"));
    let text = match resp.get_mut(name).map(Value::take) {
        Some(Value::String(s)) => Zeroizing::new(s),
        _ => return Err(missing()),
    };
    B64.decode(text.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| KmsError::Internal(format!("the engine's {op} response has a bad {name}")))
}

impl KeyService for TransportKeys {
    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let op = "GenerateDataKey";
        let request = json!({"KeyId": key_id, "EncryptionContext": ctx, "KeySpec": "AES_256"});
        let mut resp = self.call(op, request, caller)?;
        let plaintext = to_key(&bytes_field(&mut resp, op, "Plaintext")?)?;
        let wrapped = bytes_field(&mut resp, op, "CiphertextBlob")?.to_vec();
        Ok(GeneratedDataKey { plaintext, wrapped })
    }

    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        let op = "Decrypt";
        let request = json!({"CiphertextBlob": B64.encode(wrapped), "EncryptionContext": ctx});
        let mut resp = self.call(op, request, caller)?;
        to_key(&bytes_field(&mut resp, op, "Plaintext")?)
    }

    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let op = "ReEncrypt";
        // ReEncrypt to the key that wrapped the blob: the blob names it.
        let request = json!({
            "CiphertextBlob": B64.encode(wrapped),
            "SourceEncryptionContext": old_ctx,
            "DestinationKeyId": self.wrapping_key_id(wrapped)?,
            "DestinationEncryptionContext": new_ctx,
        });
        let mut resp = self.call(op, request, caller)?;
        Ok(bytes_field(&mut resp, op, "CiphertextBlob")?.to_vec())
    }

    fn reencrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        let op = "ReEncrypt";
        let request = json!({
            "CiphertextBlob": B64.encode(wrapped),
            "SourceEncryptionContext": ctx,
            "DestinationKeyId": dest_key,
            "DestinationEncryptionContext": ctx,
        });
        let mut resp = self.call(op, request, caller)?;
        Ok(bytes_field(&mut resp, op, "CiphertextBlob")?.to_vec())
    }

    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        key: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let op = "Encrypt";
        let plaintext = Zeroizing::new(B64.encode(key.as_slice()));
        let request = json!({
            "KeyId": key_id,
            "Plaintext": plaintext.as_str(),
            "EncryptionContext": ctx,
        });
        let mut resp = self.call(op, request, caller)?;
        Ok(bytes_field(&mut resp, op, "CiphertextBlob")?.to_vec())
    }

    fn unreachable(&self) -> bool {
        self.outage.is_down()
    }

    fn get_public_key(&self, caller: &Principal, key_id: &str) -> Result<PublicKeyInfo, KmsError> {
        let op = "GetPublicKey";
        let mut resp = self.call(op, json!({"KeyId": key_id}), caller)?;
        let public_key = bytes_field(&mut resp, op, "PublicKey")?.to_vec();
        let text = |name: &str| resp.get(name).and_then(Value::as_str).map(str::to_string);
        let missing = |name: &str| KmsError::Internal(format!("the {op} response has no {name}"));
        let encryption_algorithms = resp
            .get("EncryptionAlgorithms")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(PublicKeyInfo {
            key_id: text("KeyId").ok_or_else(|| missing("KeyId"))?,
            public_key,
            key_spec: text("KeySpec").ok_or_else(|| missing("KeySpec"))?,
            key_usage: text("KeyUsage").ok_or_else(|| missing("KeyUsage"))?,
            encryption_algorithms,
        })
    }

    fn decrypt_asymmetric(
        &self,
        caller: &Principal,
        key_id: &str,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<SecretVec, KmsError> {
        let op = "Decrypt";
        let request = json!({
            "CiphertextBlob": B64.encode(ciphertext),
            "KeyId": key_id,
            "EncryptionAlgorithm": algorithm,
        });
        let mut resp = self.call(op, request, caller)?;
        bytes_field(&mut resp, op, "Plaintext")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kms_engine::audit::MemorySink;
    use kms_engine::{Engine, KdfParams, ManualClock, RootKeySource};

    /// The engine as a transport that records who each call was for.
    struct Recording {
        engine: Engine,
        seen: std::sync::Mutex<Vec<Option<u32>>>,
    }

    impl Transport for Recording {
        fn call(&self, op: &str, req: Value, obo: Option<&Principal>) -> Result<Value, KmsError> {
            self.seen.lock().unwrap().push(obo.map(|p| p.uid));
            self.engine.call(op, req, obo)
        }
    }

    #[test]
    fn round_trips_through_json_and_names_other_callers_only() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::create(
            tmp.path(),
            RootKeySource::Key(Zeroizing::new([1; 32])),
            KdfParams::default(),
            Arc::new(ManualClock::new(1_700_000_000)),
            Arc::new(MemorySink::default()),
        )
        .unwrap();
        let me = Principal::current_process();
        let key = engine
            .create_key(&me, kms_engine::CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        let rec = Arc::new(Recording {
            engine,
            seen: Default::default(),
        });
        let ks = TransportKeys::new(rec.clone());
        let mut ctx = EncryptionContext::new();
        ctx.insert("kmsfs:path".into(), "/a".into());
        let g = ks.generate_data_key(&me, &key, &ctx).unwrap();
        assert_eq!(
            *ks.decrypt_data_key(&me, &g.wrapped, &ctx).unwrap(),
            *g.plaintext
        );
        let mut ctx2 = EncryptionContext::new();
        ctx2.insert("kmsfs:path".into(), "/b".into());
        let w2 = ks.rewrap_data_key(&me, &g.wrapped, &ctx, &ctx2).unwrap();
        assert_eq!(*ks.decrypt_data_key(&me, &w2, &ctx2).unwrap(), *g.plaintext);
        assert!(ks.decrypt_data_key(&me, &w2, &ctx).is_err());
        // Another user is named; the default policy lets only the creator in.
        let other = Principal::from_ids(me.uid + 4242, 4242, vec![]);
        let e = ks.decrypt_data_key(&other, &w2, &ctx2).unwrap_err();
        assert!(matches!(e, KmsError::AccessDenied(_)), "{e:?}");
        let seen = rec.seen.lock().unwrap().clone();
        assert_eq!(seen[..5], [None, None, None, None, None]);
        assert_eq!(seen[5], Some(me.uid + 4242));
    }
}
