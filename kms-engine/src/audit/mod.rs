//! The audit trail: one record per engine call, allowed or denied.
//!
//! [`AuditSink`] is what the engine reports to. [`FileAuditTrail`] is the
//! tamper-evident sink: hash-chained CloudTrail-shaped JSON lines in
//! size-rotated segments, sealed by Ed25519-signed digests; [`verify()`] checks
//! a trail and names its first bad record; [`query`] reads it back.

pub mod chain;
pub mod deferred;
pub mod digest;
pub mod durable;
pub mod error;
mod group;
pub mod paths;
pub mod query;
pub mod record;
pub mod segment;
pub mod trail;
pub mod verify;

pub use deferred::DeferredTrail;
pub use digest::{PublicKey, StoreAnchor};
pub use durable::{Unflushed, deferring};
pub use error::AuditError;
pub use paths::AuditPathMode;
pub use trail::{FileAuditTrail, SyncMode, TrailOptions};
pub use verify::{Anchor, BadRecord, VerifyOptions, VerifyReport, verify, verify_with};

use crate::context::EncryptionContext;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// One engine call, shaped like a CloudTrail KMS record. Never carries a
/// plaintext, a data key or a passphrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// RFC 3339 UTC time of the call.
    pub event_time: String,
    /// The AWS operation name, e.g. `"Decrypt"`.
    pub event_name: String,
    /// The caller, e.g. `"uid:1000"` or `"user:alice"`.
    pub principal: String,
    /// The client that made the call on behalf of `principal` (a mount for
    /// one of its FUSE callers), e.g. `"uid:1000"`; `None` for a direct
    /// call. Written as `userIdentity.invokedBy`, only when present, so
    /// records without it are byte-for-byte what older builds wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    /// The key id the call used, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<EncryptionContext>,
    /// A unique id for the call.
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Further request details (non-secret parameters), AWS field names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<serde_json::Value>,
    /// The access key that signed the call (HTTPS endpoint), as
    /// CloudTrail's `userIdentity.accessKeyId`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_key_id: Option<String>,
    /// The client's network address (HTTPS endpoint), as CloudTrail's
    /// `sourceIPAddress`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_ip_address: Option<String>,
    /// The record's `eventID` when the caller chose it (the engine does,
    /// so that GetKeyLastUsage can name the record); None: the trail makes
    /// one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_id: Option<String>,
}

/// Where the engine reports calls. If `record` fails, the operation fails:
/// no key is ever used unaudited.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    fn record(&self, event: &AuditEvent) -> Result<(), crate::KmsError>;

    /// Records `event` after the engine wrote its store as `store`: a sink
    /// that can anchors the store's generation outside the store before it
    /// returns (the file trail seals the record with a digest carrying it),
    /// so that a later open notices a rollback across this change.
    fn record_anchored(
        &self,
        event: &AuditEvent,
        _store: &StoreAnchor,
    ) -> Result<(), crate::KmsError> {
        self.record(event)
    }

    /// Makes every record recorded so far durable (a sink that flushes in
    /// batches flushes now; one that syncs each record has nothing to do).
    fn sync(&self) -> Result<(), crate::KmsError> {
        Ok(())
    }
}

/// A sink that discards records (for tools that must not audit, e.g. benches).
#[derive(Debug, Default)]
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, _event: &AuditEvent) -> Result<(), crate::KmsError> {
        Ok(())
    }
}

/// A sink that keeps records in memory (tests).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent) -> Result<(), crate::KmsError> {
        self.events
            .lock()
            .map_err(|_| crate::KmsError::Internal("audit sink poisoned".into()))?
            .push(event.clone());
        Ok(())
    }
}
