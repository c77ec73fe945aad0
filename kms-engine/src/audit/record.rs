//! The CloudTrail-shaped JSON record written for one [`AuditEvent`].
//!
//! Shape (one line per record, canonical JSON, see [`super::chain`]):
//! `eventVersion`, `eventTime`, `eventSource` ("kmsfs"), `eventName`,
//! `eventType` ("AwsApiCall"), `userIdentity` {`type`, `principal`, and
//! `accessKeyId` for a call signed with an access key, `invokedBy` only for
//! a call made on behalf of `principal`}, `sourceIPAddress` (calls over
//! the network),
//! `requestParameters` {`keyId`, `encryptionContext`, further non-secret
//! parameters}, `responseElements` (always null), `requestID`, `eventID`,
//! `errorCode`/`errorMessage` (only on failure), `readOnly`, `resources`
//! [{`ARN`, `type`}], and the chain members `sequenceNumber`,
//! `lastDigestSequence`, `previousHash`, `hash`.

use super::AuditEvent;
use super::chain;
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
    // kmsfs's own: AcceptStoreRollback writes the store.
    "Accept",
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

/// A fresh random event id, formatted as a UUID (version 4). The random
/// bytes come from the per-thread pool the engine's request ids use
/// ([`crate::ids::pooled_uuid_bytes`]): event ids are unique, not secret.
pub fn new_event_id() -> String {
    // The system random source does not fail on Linux; a failure leaves zeros
    // (with the version bits), which only makes the id less unique, never the
    // chain weaker.
    let b = crate::ids::pooled_uuid_bytes().unwrap_or_else(|_| {
        let mut b = [0u8; 16];
        b[6] = 0x40;
        b[8] = 0x80;
        b
    });
    crate::ids::KeyId(b).to_string()
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
    let mut identity = json!({"type": "LocalUser", "principal": event.principal});
    if let Some(akid) = &event.access_key_id {
        identity["accessKeyId"] = json!(akid);
    }
    if let Some(client) = &event.invoked_by {
        identity["invokedBy"] = json!(client);
    }
    r.insert("userIdentity".into(), identity);
    if let Some(ip) = &event.source_ip_address {
        r.insert("sourceIPAddress".into(), json!(ip));
    }
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

/// A record serialized in canonical form ahead of its chain members, so that
/// only those (`lastDigestSequence`, `previousHash`, `sequenceNumber`, `hash`)
/// are written while the trail is locked. The bytes are exactly those
/// [`super::chain::seal`] writes for [`record_body`] plus the chain members
/// (a test below holds the two to each other).
#[derive(Clone)]
pub struct PreparedRecord {
    /// `{` and the members that sort before `hash` (`errorCode` ..
    /// `eventVersion`), without a trailing comma.
    head: Vec<u8>,
    /// SHA-256 state after `head`.
    head_hash: aws_lc_rs::digest::Context,
    /// `,"readOnly":` .. `,"responseElements":null` (between `previousHash`
    /// and `sequenceNumber`).
    middle: Vec<u8>,
    /// `,"sourceIPAddress":..,"userIdentity":{..}}` (after `sequenceNumber`).
    tail: Vec<u8>,
}

impl std::fmt::Debug for PreparedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRecord")
            .field("head", &String::from_utf8_lossy(&self.head))
            .field("middle", &String::from_utf8_lossy(&self.middle))
            .field("tail", &String::from_utf8_lossy(&self.tail))
            .finish_non_exhaustive()
    }
}

/// One value of `requestParameters`, borrowed from the event.
enum Param<'a> {
    Json(&'a Value),
    Str(&'a str),
    Context(&'a crate::context::EncryptionContext),
}

fn write_member_name(name: &str, out: &mut Vec<u8>) {
    chain::write_str(name, out);
    out.push(b':');
}

fn write_request_parameters(event: &AuditEvent, out: &mut Vec<u8>) {
    let mut params: Vec<(&str, Param<'_>)> = Vec::with_capacity(4);
    let wrapped;
    match &event.request_parameters {
        Some(Value::Object(m)) => {
            params.extend(m.iter().map(|(k, v)| (k.as_str(), Param::Json(v))))
        }
        Some(other) => {
            wrapped = other;
            params.push(("parameters", Param::Json(wrapped)));
        }
        None => {}
    }
    // Same precedence as `record_body`: the event's own key id and context
    // replace members of the same name in `request_parameters`.
    if let Some(k) = &event.key_id {
        params.retain(|(n, _)| *n != "keyId");
        params.push(("keyId", Param::Str(k)));
    }
    if let Some(ctx) = &event.encryption_context {
        params.retain(|(n, _)| *n != "encryptionContext");
        params.push(("encryptionContext", Param::Context(ctx)));
    }
    params.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (name, v)) in params.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_member_name(name, out);
        match v {
            Param::Json(v) => chain::write_canonical(v, out),
            Param::Str(s) => chain::write_str(s, out),
            Param::Context(ctx) => {
                // A BTreeMap<String, String>: already in byte order.
                out.push(b'{');
                for (j, (k, v)) in ctx.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_member_name(k, out);
                    chain::write_str(v, out);
                }
                out.push(b'}');
            }
        }
    }
    out.push(b'}');
}

fn push_u64(n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

impl PreparedRecord {
    /// Serializes everything of the record for `event` but the chain members.
    pub fn new(event: &AuditEvent, event_id: &str) -> PreparedRecord {
        // Members in byte order of their names, as canonical JSON has them.
        let mut head = Vec::with_capacity(256);
        head.push(b'{');
        if let Some(code) = &event.error_code {
            write_member_name("errorCode", &mut head);
            chain::write_str(code, &mut head);
            head.push(b',');
        }
        if let Some(msg) = &event.error_message {
            write_member_name("errorMessage", &mut head);
            chain::write_str(msg, &mut head);
            head.push(b',');
        }
        head.extend_from_slice(b"\"eventID\":");
        chain::write_str(event_id, &mut head);
        head.extend_from_slice(b",\"eventName\":");
        chain::write_str(&event.event_name, &mut head);
        head.extend_from_slice(b",\"eventSource\":");
        chain::write_str(EVENT_SOURCE, &mut head);
        head.extend_from_slice(b",\"eventTime\":");
        chain::write_str(&event.event_time, &mut head);
        head.extend_from_slice(b",\"eventType\":\"AwsApiCall\",\"eventVersion\":");
        chain::write_str(EVENT_VERSION, &mut head);

        let mut middle = Vec::with_capacity(512);
        middle.extend_from_slice(b",\"readOnly\":");
        middle.extend_from_slice(if is_read_only(&event.event_name) {
            b"true"
        } else {
            b"false"
        });
        middle.extend_from_slice(b",\"requestID\":");
        chain::write_str(&event.request_id, &mut middle);
        middle.extend_from_slice(b",\"requestParameters\":");
        write_request_parameters(event, &mut middle);
        middle.extend_from_slice(b",\"resources\":[");
        if let Some(k) = &event.key_id {
            let (arn, ty) = resource_for(k);
            middle.extend_from_slice(b"{\"ARN\":");
            chain::write_str(&arn, &mut middle);
            middle.extend_from_slice(b",\"type\":");
            chain::write_str(ty, &mut middle);
            middle.push(b'}');
        }
        middle.extend_from_slice(b"],\"responseElements\":null");

        let mut tail = Vec::with_capacity(64);
        if let Some(ip) = &event.source_ip_address {
            tail.extend_from_slice(b",\"sourceIPAddress\":");
            chain::write_str(ip, &mut tail);
        }
        tail.extend_from_slice(b",\"userIdentity\":{");
        if let Some(akid) = &event.access_key_id {
            tail.extend_from_slice(b"\"accessKeyId\":");
            chain::write_str(akid, &mut tail);
            tail.push(b',');
        }
        if let Some(client) = &event.invoked_by {
            tail.extend_from_slice(b"\"invokedBy\":");
            chain::write_str(client, &mut tail);
            tail.push(b',');
        }
        tail.extend_from_slice(b"\"principal\":");
        chain::write_str(&event.principal, &mut tail);
        tail.extend_from_slice(b",\"type\":\"LocalUser\"}}");

        let mut head_hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        head_hash.update(&head);
        PreparedRecord {
            head,
            head_hash,
            middle,
            tail,
        }
    }

    /// Writes the sealed record line (with its newline) into `out` (cleared
    /// first) and returns the record's hash.
    pub fn seal_into(
        &self,
        sequence: u64,
        previous_hash: &str,
        last_digest_sequence: u64,
        out: &mut Vec<u8>,
    ) -> String {
        // `hash` sorts between the head and `lastDigestSequence`. Its value
        // (64 lower-case hex digits, which JSON does not escape) is written
        // into room left for it once the rest is hashed, so that the line is
        // built in place.
        const HASH_MEMBER: &[u8] = b",\"hash\":\"";
        const HASH_HEX_LEN: usize = 64;
        out.clear();
        out.extend_from_slice(&self.head);
        let value_at = out.len() + HASH_MEMBER.len();
        out.extend_from_slice(HASH_MEMBER);
        out.resize(value_at + HASH_HEX_LEN, b'0');
        out.push(b'"');
        let rest = out.len();
        out.extend_from_slice(b",\"lastDigestSequence\":");
        push_u64(last_digest_sequence, out);
        out.extend_from_slice(b",\"previousHash\":");
        chain::write_str(previous_hash, out);
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(b",\"sequenceNumber\":");
        push_u64(sequence, out);
        out.extend_from_slice(&self.tail);
        let mut h = self.head_hash.clone();
        h.update(&out[rest..]);
        let hash = chain::hex(h.finish().as_ref());
        debug_assert_eq!(hash.len(), HASH_HEX_LEN);
        out[value_at..value_at + HASH_HEX_LEN].copy_from_slice(hash.as_bytes());
        out.push(b'\n');
        hash
    }
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

    fn slow_line(ev: &AuditEvent, id: &str, seq: u64, prev: &str, ld: u64) -> (String, String) {
        let mut body = record_body(ev, id.to_string());
        body.insert("sequenceNumber".into(), Value::from(seq));
        body.insert("previousHash".into(), Value::String(prev.into()));
        body.insert("lastDigestSequence".into(), Value::from(ld));
        let (mut line, hash) = chain::seal(body);
        line.push('\n');
        (line, hash)
    }

    #[test]
    fn prepared_record_matches_the_generic_serialization() {
        let base = AuditEvent {
            event_time: "2026-01-02T03:04:05Z".into(),
            event_name: "Decrypt".into(),
            principal: "uid:1000".into(),
            invoked_by: None,
            key_id: Some("1234abcd".into()),
            encryption_context: Some(crate::context::context_from([
                ("kmsfs:path", "/a \"q\"\\ \u{1}\té"),
                ("kmsfs:volume", "v"),
                ("B", "upper"),
            ])),
            request_id: "r1".into(),
            error_code: None,
            error_message: None,
            request_parameters: None,
            access_key_id: None,
            source_ip_address: None,
            event_id: None,
        };
        let mut variants = vec![base.clone()];
        variants.push(AuditEvent {
            access_key_id: Some("AKIAEXAMPLE".into()),
            source_ip_address: Some("127.0.0.1".into()),
            ..base.clone()
        });
        variants.push(AuditEvent {
            source_ip_address: Some("::1".into()),
            error_code: Some("InvalidSignatureException".into()),
            ..base.clone()
        });
        variants.push(AuditEvent {
            error_code: Some("AccessDeniedException".into()),
            error_message: Some("denied \"x\"\n".into()),
            event_name: "CreateGrant".into(),
            ..base.clone()
        });
        variants.push(AuditEvent {
            invoked_by: Some("user:mount \"m\"".into()),
            ..base.clone()
        });
        variants.push(AuditEvent {
            error_code: Some("E".into()),
            ..base.clone()
        });
        variants.push(AuditEvent {
            error_message: Some("m".into()),
            key_id: None,
            encryption_context: None,
            ..base.clone()
        });
        variants.push(AuditEvent {
            request_parameters: Some(json!({
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "keyId": "overridden",
                "encryptionContext": {"x": "y"},
                "Zed": [1, 2.5, -3, null, true, {"b": 1, "a": "é"}],
                "grantTokens": [],
            })),
            ..base.clone()
        });
        variants.push(AuditEvent {
            request_parameters: Some(json!({"keyId": "kept", "encryptionContext": {"x": "y"}})),
            key_id: None,
            encryption_context: None,
            ..base.clone()
        });
        variants.push(AuditEvent {
            request_parameters: Some(json!(["not", "an", "object"])),
            key_id: Some("alias/vol".into()),
            ..base.clone()
        });
        variants.push(AuditEvent {
            request_parameters: Some(json!("scalar")),
            key_id: Some("arn:aws:kms:local:000000000000:key/k".into()),
            principal: "user:ünï \u{7f}".into(),
            ..base.clone()
        });
        let mut buf = Vec::new();
        for (i, ev) in variants.iter().enumerate() {
            let id = new_event_id();
            for (seq, prev, ld) in [
                (1, chain::GENESIS_HASH, 0),
                (u64::MAX, "abc\"", 12_345_678_901),
                (1000, "f00d", 999),
            ] {
                let (line, hash) = slow_line(ev, &id, seq, prev, ld);
                let fast_hash = PreparedRecord::new(ev, &id).seal_into(seq, prev, ld, &mut buf);
                assert_eq!(String::from_utf8(buf.clone()).unwrap(), line, "variant {i}");
                assert_eq!(fast_hash, hash, "variant {i}");
            }
        }
    }

    #[test]
    fn event_ids_are_distinct_uuid_v4_across_pool_refills() {
        // 200 ids span several refills of the 64-id random pool.
        let ids: std::collections::HashSet<String> = (0..200).map(|_| new_event_id()).collect();
        assert_eq!(ids.len(), 200);
        for id in &ids {
            let b = id.as_bytes();
            assert_eq!(b.len(), 36, "{id}");
            for (i, c) in b.iter().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    assert_eq!(*c, b'-', "{id}");
                } else {
                    assert!(matches!(c, b'0'..=b'9' | b'a'..=b'f'), "{id}");
                }
            }
            assert_eq!(b[14], b'4', "version: {id}");
            assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'), "variant: {id}");
        }
    }

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
            invoked_by: None,
            key_id: Some("1234abcd".into()),
            encryption_context: Some(crate::context::context_from([("kmsfs:path", "/a")])),
            request_id: "r1".into(),
            error_code: Some("AccessDeniedException".into()),
            error_message: Some("denied".into()),
            request_parameters: Some(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT"})),
            access_key_id: None,
            source_ip_address: None,
            event_id: None,
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
