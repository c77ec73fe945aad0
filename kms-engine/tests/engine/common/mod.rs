//! Shared test helpers: a fresh engine in a temp dir with a manual clock.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use kms_engine::audit::MemorySink;
use kms_engine::*;
use std::sync::Arc;
use zeroize::Zeroizing;

pub const T0: i64 = 1_700_000_000;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub sink: Arc<MemorySink>,
    pub engine: Engine,
}

pub fn passphrase(p: &str) -> RootKeySource {
    RootKeySource::Passphrase(Zeroizing::new(p.to_string()))
}

pub fn alice() -> Principal {
    Principal::from_ids(1000, 1000, vec![])
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let sink = Arc::new(MemorySink::default());
    let engine = Engine::create(
        &dir.path().join("engine"),
        passphrase("correct horse"),
        KdfParams::insecure_for_tests(),
        Arc::new(clock.clone()),
        sink.clone(),
    )
    .unwrap();
    Fixture {
        dir,
        clock,
        sink,
        engine,
    }
}

impl Fixture {
    pub fn engine_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("engine")
    }

    pub fn reopen(&self) -> Result<Engine, KmsError> {
        Engine::open(
            &self.engine_dir(),
            passphrase("correct horse"),
            Arc::new(self.clock.clone()),
            Arc::new(audit::NullSink),
        )
    }

    pub fn new_key(&self) -> String {
        self.engine
            .create_key(&alice(), CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id
    }

    pub fn encrypt(
        &self,
        key: &str,
        pt: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.engine
            .encrypt(
                &alice(),
                EncryptRequest {
                    key_id: key.into(),
                    plaintext: SecretBytes::from(pt),
                    encryption_context: ctx.clone(),
                    encryption_algorithm: None,
                    grant_tokens: None,
                },
            )
            .map(|r| r.ciphertext_blob)
    }

    pub fn decrypt(
        &self,
        blob: &[u8],
        ctx: &EncryptionContext,
        key: Option<&str>,
    ) -> Result<Vec<u8>, KmsError> {
        self.engine
            .decrypt(
                &alice(),
                DecryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    encryption_context: ctx.clone(),
                    key_id: key.map(str::to_string),
                    encryption_algorithm: None,
                    grant_tokens: None,
                },
            )
            .map(|r| r.plaintext.as_slice().to_vec())
    }

    pub fn key_id_req(&self, key: &str) -> KeyIdRequest {
        KeyIdRequest { key_id: key.into() }
    }

    pub fn state_of(&self, key: &str) -> String {
        self.engine
            .describe_key(
                &alice(),
                DescribeKeyRequest {
                    key_id: key.into(),
                    grant_tokens: None,
                },
            )
            .unwrap()
            .key_metadata
            .key_state
    }
}

pub fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    kms_engine::context::context_from(pairs.iter().copied())
}

/// Everything a store holds that a caller can see, as one JSON value: every
/// key (DescribeKey, policy, grants, tags, rotation status, versions) and
/// every alias. Two stores with equal inventories hold the same keys,
/// aliases, grants and policies. Called as [`alice`], who created the keys.
pub fn inventory(e: &Engine) -> serde_json::Value {
    use serde_json::{Value, json};
    let who = alice();
    let call = |op: &str, req: Value| e.dispatch(&who, op, req).unwrap();
    // Rotation operations refuse asymmetric and HMAC keys: their error's
    // name stands in for the answer.
    let or_error = |op: &str, req: Value| {
        e.dispatch(&who, op, req)
            .unwrap_or_else(|err| json!(err.exception_name()))
    };
    let mut ids: Vec<String> = call("ListKeys", json!({"Limit": 1000}))["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let keys: Vec<Value> = ids
        .iter()
        .map(|id| {
            let k = json!({"KeyId": id});
            json!({
                "describe": call("DescribeKey", k.clone()),
                "policy": call("GetKeyPolicy", json!({"KeyId": id, "PolicyName": "default"})),
                "grants": call("ListGrants", k.clone()),
                "tags": call("ListResourceTags", k.clone()),
                "rotation": or_error("GetKeyRotationStatus", k.clone()),
                "versions": or_error("ListKeyRotations", k),
            })
        })
        .collect();
    json!({"keys": keys, "aliases": call("ListAliases", json!({}))})
}
