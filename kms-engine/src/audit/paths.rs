//! How audit records carry file paths (the `kmsfs:path` encryption-context
//! value and the kmsfs path-prefix grant constraint): in plaintext, as
//! HMAC-SHA256 under a key sealed in the engine store (so an administrator
//! holding the store can still search for a path), or not at all. The mode
//! is an engine setting kept in the sealed store, so every process using
//! the store applies the same one. Only records change: the encryption
//! context the ciphertext is bound to is never touched.

use super::AuditEvent;
use crate::grant::KMSFS_PATH_KEY;
use crate::key::KeyMaterial;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Prefix of a path written in `hmac` mode: `hmac-sha256:<base64url>`.
pub const HMAC_PREFIX: &str = "hmac-sha256:";
/// What replaces a path inside an error message in `omit` mode.
pub const OMITTED: &str = "<path omitted>";
/// The request-parameter member of CreateGrant's kmsfs path-prefix constraint.
const PATH_PREFIX_MEMBER: &str = "KmsfsPathPrefix";

/// The engine's audit path setting (`kmsfs audit paths`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditPathMode {
    /// Paths in plaintext, as in every store before format 3.
    #[default]
    Plain,
    /// `hmac-sha256:` + base64url (no padding) of HMAC-SHA256(key, path).
    Hmac,
    /// The path is left out of the record.
    Omit,
}

impl AuditPathMode {
    pub fn name(self) -> &'static str {
        match self {
            AuditPathMode::Plain => "plain",
            AuditPathMode::Hmac => "hmac",
            AuditPathMode::Omit => "omit",
        }
    }
}

impl fmt::Display for AuditPathMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AuditPathMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(AuditPathMode::Plain),
            "hmac" => Ok(AuditPathMode::Hmac),
            "omit" => Ok(AuditPathMode::Omit),
            other => Err(format!(
                "unknown audit path mode {other:?}: expected plain, hmac or omit"
            )),
        }
    }
}

/// The `hmac` form of `path` under `key`.
pub fn path_token(key: &KeyMaterial, path: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.bytes());
    let tag = hmac::sign(&k, path.as_bytes());
    format!("{HMAC_PREFIX}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Rewrites the paths of `event` for `mode` (`key` is the hmac key; without
/// one, hmac mode omits). Plain mode changes nothing.
pub fn redact_event(event: &mut AuditEvent, mode: AuditPathMode, key: Option<&KeyMaterial>) {
    let form = match (mode, key) {
        (AuditPathMode::Plain, _) => return,
        (AuditPathMode::Hmac, Some(k)) => Form::Hmac(k),
        (AuditPathMode::Hmac, None) | (AuditPathMode::Omit, _) => Form::Omit,
    };
    let mut seen: Vec<String> = Vec::new();
    if let Some(ctx) = event.encryption_context.as_mut()
        && let Some(p) = ctx.remove(KMSFS_PATH_KEY)
    {
        if let Some(v) = form.value(&p) {
            ctx.insert(KMSFS_PATH_KEY.into(), v);
        }
        seen.push(p);
        if ctx.is_empty() {
            event.encryption_context = None;
        }
    }
    if let Some(params) = event.request_parameters.as_mut() {
        redact_json(params, &form, &mut seen);
    }
    if let Some(msg) = event.error_message.as_mut() {
        // Longest first, so that a path never leaves a prefix of itself.
        seen.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in seen.iter().filter(|p| !p.is_empty()) {
            if msg.contains(p.as_str()) {
                *msg = msg.replace(p.as_str(), &form.text(p));
            }
        }
    }
}

enum Form<'a> {
    Hmac(&'a KeyMaterial),
    Omit,
}

impl Form<'_> {
    /// The member's new value; None: leave the member out.
    fn value(&self, path: &str) -> Option<String> {
        match self {
            Form::Hmac(k) => Some(path_token(k, path)),
            Form::Omit => None,
        }
    }

    /// What replaces the path inside a message.
    fn text(&self, path: &str) -> String {
        self.value(path).unwrap_or_else(|| OMITTED.into())
    }
}

/// Every `kmsfs:path` member (in any context: source, destination, grant
/// constraints) and the kmsfs path-prefix constraint, at any depth.
fn redact_json(v: &mut Value, form: &Form<'_>, seen: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for name in [KMSFS_PATH_KEY, PATH_PREFIX_MEMBER] {
                if let Some(Value::String(p)) = m.remove(name) {
                    if let Some(new) = form.value(&p) {
                        m.insert(name.into(), Value::String(new));
                    }
                    seen.push(p);
                }
            }
            for child in m.values_mut() {
                redact_json(child, form, seen);
            }
        }
        Value::Array(a) => {
            for child in a {
                redact_json(child, form, seen);
            }
        }
        _ => {}
    }
}

/// Whether a record's path value `stored` (plaintext or hmac form) is one of
/// `wanted` (the plaintext path and its hmac forms): what `audit show
/// --path` matches on.
pub fn record_has_path(record: &serde_json::Map<String, Value>, wanted: &[String]) -> bool {
    fn walk(v: &Value, wanted: &[String]) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| {
                (k == KMSFS_PATH_KEY && v.as_str().is_some_and(|s| wanted.iter().any(|w| w == s)))
                    || walk(v, wanted)
            }),
            Value::Array(a) => a.iter().any(|v| walk(v, wanted)),
            _ => false,
        }
    }
    record
        .get("requestParameters")
        .is_some_and(|p| walk(p, wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::context_from;
    use serde_json::json;

    fn event() -> AuditEvent {
        AuditEvent {
            event_time: "2026-01-01T00:00:00Z".into(),
            event_name: "ReEncrypt".into(),
            principal: "uid:1000".into(),
            invoked_by: None,
            key_id: Some("k".into()),
            encryption_context: Some(context_from([
                ("kmsfs:path", "/secret/plan.txt"),
                ("kmsfs:volume", "v"),
            ])),
            request_id: "r".into(),
            error_code: Some("AccessDeniedException".into()),
            error_message: Some("no access to /secret/plan.txt or /secret".into()),
            request_parameters: Some(json!({
                "sourceEncryptionContext": {"kmsfs:path": "/secret/old.txt"},
                "destinationEncryptionContext": {"kmsfs:path": "/secret/plan.txt"},
                "constraints": {"KmsfsPathPrefix": "/secret"},
            })),
            access_key_id: None,
            source_ip_address: None,
            event_id: None,
        }
    }

    fn text(e: &AuditEvent) -> String {
        serde_json::to_string(e).unwrap()
    }

    #[test]
    fn hmac_replaces_every_path_and_keeps_the_rest() {
        let key = KeyMaterial(zeroize::Zeroizing::new([9u8; 32]));
        let mut e = event();
        redact_event(&mut e, AuditPathMode::Hmac, Some(&key));
        let t = text(&e);
        assert!(!t.contains("/secret"), "{t}");
        let token = path_token(&key, "/secret/plan.txt");
        assert!(token.starts_with(HMAC_PREFIX) && token.len() == HMAC_PREFIX.len() + 43);
        let ctx = e.encryption_context.as_ref().unwrap();
        assert_eq!(ctx["kmsfs:path"], token);
        assert_eq!(ctx["kmsfs:volume"], "v");
        assert!(e.error_message.unwrap().contains(&token));
        let p = e.request_parameters.unwrap();
        assert_eq!(
            p["sourceEncryptionContext"]["kmsfs:path"],
            path_token(&key, "/secret/old.txt")
        );
        assert_eq!(
            p["constraints"]["KmsfsPathPrefix"],
            path_token(&key, "/secret")
        );
        // Another key gives another token.
        let other = KeyMaterial(zeroize::Zeroizing::new([8u8; 32]));
        assert_ne!(path_token(&other, "/secret/plan.txt"), token);
    }

    #[test]
    fn omit_leaves_paths_out_and_plain_changes_nothing() {
        let mut e = event();
        redact_event(&mut e, AuditPathMode::Omit, None);
        let t = text(&e);
        assert!(!t.contains("/secret") && !t.contains("kmsfs:path"), "{t}");
        assert!(t.contains("kmsfs:volume") && t.contains(OMITTED), "{t}");
        let mut p = event();
        redact_event(&mut p, AuditPathMode::Plain, None);
        assert_eq!(p, event());
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [
            AuditPathMode::Plain,
            AuditPathMode::Hmac,
            AuditPathMode::Omit,
        ] {
            assert_eq!(m.name().parse::<AuditPathMode>().unwrap(), m);
        }
        assert!("HMAC".parse::<AuditPathMode>().is_err());
    }
}
