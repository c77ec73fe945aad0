//! The CloudTrail-shaped JSON record written for one [`AuditEvent`].
//!
//! Shape (one line per record, canonical JSON, see [`super::chain`]):
//! `eventVersion`, `eventTime`, `eventSource` ("kmsfs"), `eventName`,
//! `eventType` ("AwsApiCall"), `userIdentity` {`type`, `principal`},
//! `requestParameters` {`keyId`, `encryptionContext`, further non-secret
//! parameters}, `responseElements` (always null), `requestID`, `eventID`,
//! `errorCode`/`errorMessage` (only on failure), `readOnly`, `resources`
//! [{`ARN`, `type`}], and the chain members `sequenceNumber`,
//! `lastDigestSequence`, `previousHash`, `hash`.

use super::AuditEvent;
use serde_json::{Map, Value, json};

/// `eventVersion` of the records this build writes.
pub const EVENT_VERSION: &str = "1.08";
/// `eventSource` of every record.
pub const EVENT_SOURCE: &str = "kmsfs";

/// Operations that change engine state; every other one is `readOnly`
/// (as CloudTrail marks Encrypt, Decrypt and GenerateDataKey read-only).
const MUTATING_PREFIXES: &[&str] = &[
    "Create",
    "Delete",
    "Put",
    "Update",
    "Enable",
    "Disable",
    "Schedule",
    "Cancel",
    "Tag",
    "Untag",
    "Retire",
    "Revoke",
    "Rotate",
    "Import",
    "Replicate",
    "Connect",
    "Disconnect",
];

/// Whether an operation name only reads state (CloudTrail's `readOnly`).
pub fn is_read_only(event_name: &str) -> bool {
    !MUTATING_PREFIXES.iter().any(|p| event_name.starts_with(p))
}

/// The resource ARN for a key id, alias name or ARN: the engine's own ARNs
/// (`arn:aws:kms:local:000000000000:key/<id>`), as key metadata shows them.
pub fn resource_for(key_id: &str) -> (String, &'static str) {
    if key_id.starts_with("arn:") {
        let ty = if key_id.contains(":alias/") {
            "AWS::KMS::Alias"
        } else {
            "AWS::KMS::Key"
        };
        (key_id.to_string(), ty)
    } else if key_id.starts_with("alias/") {
        (crate::ids::alias_arn(key_id), "AWS::KMS::Alias")
    } else {
        (crate::ids::key_arn(key_id), "AWS::KMS::Key")
    }
}

/// A fresh random event id, formatted as a UUID (version 4).
pub fn new_event_id() -> String {
    let mut b = [0u8; 16];
    // The system random source does not fail on Linux; a failure leaves zeros,
    // which only makes the id less unique, never the chain weaker.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = super::chain::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The record body for an event, without the chain members.
pub fn record_body(event: &AuditEvent, event_id: String) -> Map<String, Value> {
    let mut params = match &event.request_parameters {
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            let mut m = Map::new();
            m.insert("parameters".into(), other.clone());
            m
        }
        None => Map::new(),
    };
    if let Some(k) = &event.key_id {
        params.insert("keyId".into(), Value::String(k.clone()));
    }
    if let Some(ctx) = &event.encryption_context {
        let ctx: Map<String, Value> = ctx
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        params.insert("encryptionContext".into(), Value::Object(ctx));
    }
    let resources = match &event.key_id {
        Some(k) => {
            let (arn, ty) = resource_for(k);
            json!([{"ARN": arn, "type": ty}])
        }
        None => json!([]),
    };
    let mut r = Map::new();
    r.insert("eventVersion".into(), json!(EVENT_VERSION));
    r.insert("eventTime".into(), json!(event.event_time));
    r.insert("eventSource".into(), json!(EVENT_SOURCE));
    r.insert("eventName".into(), json!(event.event_name));
    r.insert("eventType".into(), json!("AwsApiCall"));
    r.insert(
        "userIdentity".into(),
        json!({"type": "LocalUser", "principal": event.principal}),
    );
    r.insert("requestParameters".into(), Value::Object(params));
    r.insert("responseElements".into(), Value::Null);
    r.insert("requestID".into(), json!(event.request_id));
    r.insert("eventID".into(), json!(event_id));
    if let Some(code) = &event.error_code {
        r.insert("errorCode".into(), json!(code));
    }
    if let Some(msg) = &event.error_message {
        r.insert("errorMessage".into(), json!(msg));
    }
    r.insert("readOnly".into(), json!(is_read_only(&event.event_name)));
    r.insert("resources".into(), resources);
    r
}

/// Accessors on a parsed record (a JSON object) used by queries and the CLI.
pub trait RecordView {
    fn str_at(&self, path: &[&str]) -> Option<&str>;
    fn sequence(&self) -> Option<u64>;
}

impl RecordView for Map<String, Value> {
    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let (last, init) = path.split_last()?;
        let mut cur = self;
        for p in init {
            cur = cur.get(*p)?.as_object()?;
        }
        cur.get(*last)?.as_str()
    }
    fn sequence(&self) -> Option<u64> {
        self.get("sequenceNumber")?.as_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_follows_cloudtrail() {
        assert!(is_read_only("Decrypt"));
        assert!(is_read_only("GenerateDataKey"));
        assert!(is_read_only("ListGrants"));
        assert!(!is_read_only("CreateGrant"));
        assert!(!is_read_only("PutKeyPolicy"));
        assert!(!is_read_only("ScheduleKeyDeletion"));
    }

    #[test]
    fn body_has_cloudtrail_members() {
        let ev = AuditEvent {
            event_time: "2026-01-02T03:04:05Z".into(),
            event_name: "Decrypt".into(),
            principal: "uid:1000".into(),
            key_id: Some("1234abcd".into()),
            encryption_context: Some(crate::context::context_from([("kmsfs:path", "/a")])),
            request_id: "r1".into(),
            error_code: Some("AccessDeniedException".into()),
            error_message: Some("denied".into()),
            request_parameters: Some(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT"})),
        };
        let b = record_body(&ev, new_event_id());
        assert_eq!(b.str_at(&["userIdentity", "principal"]), Some("uid:1000"));
        assert_eq!(b.str_at(&["requestParameters", "keyId"]), Some("1234abcd"));
        assert_eq!(
            b.str_at(&["requestParameters", "encryptionContext", "kmsfs:path"]),
            Some("/a")
        );
        assert_eq!(
            b.str_at(&["requestParameters", "encryptionAlgorithm"]),
            Some("SYMMETRIC_DEFAULT")
        );
        assert_eq!(
            b["resources"][0]["ARN"],
            "arn:aws:kms:local:000000000000:key/1234abcd"
        );
        assert_eq!(
            resource_for("alias/vol").0,
            "arn:aws:kms:local:000000000000:alias/vol"
        );
        assert_eq!(b["responseElements"], Value::Null);
        assert_eq!(b["readOnly"], Value::Bool(true));
        assert_eq!(b.str_at(&["eventID"]).map(str::len), Some(36));
    }
}
