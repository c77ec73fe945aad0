//! The hash chain: canonical JSON serialization and record hashes.
//!
//! A record's `hash` is the SHA-256 (lower-case hex) of the canonical
//! serialization of the record without its `hash` member. The record carries
//! `sequenceNumber` and `previousHash` (the `hash` of the record before it,
//! [`GENESIS_HASH`] for the first), so each hash commits to the whole trail
//! before it. Canonical serialization: objects with members sorted by the
//! byte order of their names, no insignificant whitespace, strings escaped as
//! `serde_json` escapes them; records are written to disk in exactly this form
//! (with `hash`), so a line that is not canonical has been edited.

use aws_lc_rs::digest;
use serde_json::{Map, Value};

/// `previousHash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical serialization of a JSON value (see module docs).
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::with_capacity(512);
    write_canonical(v, &mut out);
    // Only UTF-8 was written: serde_json escapes and our ASCII punctuation.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the canonical serialization of `v` to `out`.
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_canonical(val, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_str(s, out),
        // null, bool and numbers have a single serde_json serialization.
        other => write_json(other, out),
    }
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` escapes it.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    write_json(s, out);
}

fn write_json<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Serializing a string, null, bool or number into a Vec cannot fail
    // (no I/O error, no map with non-string keys).
    let _ = serde_json::to_writer(out, v);
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The hash of a record: SHA-256 of its canonical form without `hash`.
pub fn record_hash(record: &Map<String, Value>) -> String {
    if record.contains_key("hash") {
        let mut without = record.clone();
        without.remove("hash");
        sha256_hex(canonical_json(&Value::Object(without)).as_bytes())
    } else {
        sha256_hex(canonical_json(&Value::Object(record.clone())).as_bytes())
    }
}

/// Adds `hash` to a record (which must already carry `sequenceNumber` and
/// `previousHash`) and returns the canonical line (without newline) and the hash.
pub fn seal(mut record: Map<String, Value>) -> (String, String) {
    record.remove("hash");
    let hash = record_hash(&record);
    record.insert("hash".into(), Value::String(hash.clone()));
    (canonical_json(&Value::Object(record)), hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_members_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"z": [true, null, "x\"y"], "B": "é"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"B":"é","z":[true,null,"x\"y"]},"b":1}"#
        );
    }

    #[test]
    fn known_answer_hash() {
        // Pins the record hash: changing it changes the on-disk format.
        let v = json!({"sequenceNumber": 1, "previousHash": GENESIS_HASH});
        let Value::Object(m) = v else { unreachable!() };
        let (line, hash) = seal(m);
        assert_eq!(
            line,
            format!(r#"{{"hash":"{hash}","previousHash":"{GENESIS_HASH}","sequenceNumber":1}}"#)
        );
        assert_eq!(
            hash,
            sha256_hex(
                format!(r#"{{"previousHash":"{GENESIS_HASH}","sequenceNumber":1}}"#).as_bytes()
            )
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
