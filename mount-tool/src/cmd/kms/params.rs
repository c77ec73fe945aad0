//! Parameter values in the `aws kms` syntaxes: blobs (`fileb://F` or text),
//! encryption contexts (`k=v,k2=v2` or JSON), tags (`TagKey=k,TagValue=v` or
//! JSON) and string lists, plus `file://F` to read any of them from a file.

use crate::exit::CliError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A binary parameter as given on the command line: `fileb://PATH` (the file's
/// bytes), `file://PATH` (the file's contents) or the text itself.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobArg {
    File(PathBuf),
    Inline(Zeroizing<String>),
}

impl std::fmt::Debug for BlobArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobArg::File(p) => f.debug_tuple("File").field(p).finish(),
            // An inline value may be a plaintext: never print it.
            BlobArg::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// clap value parser for [`BlobArg`].
pub fn parse_blob(s: &str) -> Result<BlobArg, String> {
    if let Some(p) = s
        .strip_prefix("fileb://")
        .or_else(|| s.strip_prefix("file://"))
    {
        if p.is_empty() {
            return Err("a file path must follow fileb://".into());
        }
        return Ok(BlobArg::File(PathBuf::from(p)));
    }
    Ok(BlobArg::Inline(Zeroizing::new(s.to_string())))
}

impl BlobArg {
    /// The bytes of the value; `option` names the parameter in error messages.
    pub fn read(&self, option: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
        match self {
            BlobArg::File(p) => std::fs::read(p)
                .map(Zeroizing::new)
                .map_err(|e| CliError::io(format!("cannot read {option} file {}", p.display()), e)),
            BlobArg::Inline(s) => Ok(Zeroizing::new(s.as_bytes().to_vec())),
        }
    }

    /// The value base64-encoded, as AWS's JSON protocol carries blobs.
    pub fn read_base64(&self, option: &str) -> Result<Zeroizing<String>, CliError> {
        let bytes = self.read(option)?;
        Ok(Zeroizing::new(B64.encode(bytes.as_slice())))
    }
}

/// A JSON-or-shorthand parameter, with `file://PATH` read at parse time.
pub fn load_text(s: &str) -> Result<String, String> {
    match s.strip_prefix("file://") {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}")),
        None => Ok(s.to_string()),
    }
}

/// An encryption context: `k=v,k2=v2`, or a JSON object of strings
/// (`{"k":"v"}`), or `file://PATH` holding either.
pub fn parse_context(s: &str) -> Result<BTreeMap<String, String>, String> {
    let text = load_text(s)?;
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let v: Value =
            serde_json::from_str(trimmed).map_err(|e| format!("invalid JSON object: {e}"))?;
        let Value::Object(map) = v else {
            return Err("expected a JSON object of strings".into());
        };
        return map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(format!("value of {k:?} must be a string, not {other}")),
            })
            .collect();
    }
    let mut out = BTreeMap::new();
    for pair in trimmed.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE, got {pair:?}"))?;
        if k.is_empty() {
            return Err(format!("empty key in {pair:?}"));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("key {k:?} given twice"));
        }
    }
    Ok(out)
}

/// One tag: `TagKey=k,TagValue=v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Tags: `TagKey=k,TagValue=v` (one per argument), or a JSON list of
/// `{"TagKey":..,"TagValue":..}` objects, or `file://PATH` holding either.
/// Returns a list because one JSON argument may carry several tags.
pub fn parse_tags(s: &str) -> Result<Vec<Tag>, String> {
    let text = load_text(s)?;
    let trimmed = text.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| format!("invalid JSON: {e}"))?;
        let items = match v {
            Value::Array(items) => items,
            obj @ Value::Object(_) => vec![obj],
            _ => return Err("expected a JSON list of tags".into()),
        };
        return items
            .iter()
            .map(|item| {
                let field = |name: &str| {
                    item.get(name)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| format!("each tag needs a string {name}"))
                };
                Ok(Tag {
                    key: field("TagKey")?,
                    value: field("TagValue")?,
                })
            })
            .collect();
    }
    let mut key = None;
    let mut value = None;
    for part in trimmed.split(',') {
        match part.split_once('=') {
            Some(("TagKey", k)) => key = Some(k.to_string()),
            Some(("TagValue", v)) => value = Some(v.to_string()),
            _ => {
                return Err(format!(
                    "expected TagKey=KEY,TagValue=VALUE, got {trimmed:?}"
                ));
            }
        }
    }
    match (key, value) {
        (Some(key), Some(value)) => Ok(vec![Tag { key, value }]),
        _ => Err(format!(
            "expected TagKey=KEY,TagValue=VALUE, got {trimmed:?}"
        )),
    }
}

/// A list parameter (`--tag-keys a b`, `--grant-tokens t`): each argument is
/// one item, or a JSON list of strings.
pub fn parse_string_list(s: &str) -> Result<Vec<String>, String> {
    let text = load_text(s)?;
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(trimmed)
            .map_err(|e| format!("expected a JSON list of strings: {e}"));
    }
    Ok(vec![text])
}

/// JSON for a context map.
pub fn context_json(ctx: &BTreeMap<String, String>) -> Value {
    Value::Object(
        ctx.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// JSON for a tag list, AWS shape.
pub fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| serde_json::json!({"TagKey": t.key, "TagValue": t.value}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_forms() {
        assert_eq!(
            parse_blob("fileb:///tmp/x").unwrap(),
            BlobArg::File("/tmp/x".into())
        );
        assert_eq!(
            parse_blob("file://rel/x").unwrap(),
            BlobArg::File("rel/x".into())
        );
        assert!(parse_blob("fileb://").is_err());
        let b = parse_blob("hello world").unwrap();
        assert_eq!(b.read("--plaintext").unwrap().as_slice(), b"hello world");
        assert_eq!(
            b.read_base64("--plaintext").unwrap().as_str(),
            "aGVsbG8gd29ybGQ="
        );
        assert_eq!(format!("{b:?}"), "Inline(<redacted>)");
    }

    #[test]
    fn blob_reads_file_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        std::fs::write(&p, [0u8, 255, 10]).unwrap();
        let b = parse_blob(&format!("fileb://{}", p.display())).unwrap();
        assert_eq!(b.read("--x").unwrap().as_slice(), &[0u8, 255, 10]);
        let missing = parse_blob("fileb:///nonexistent/kmsfs-test").unwrap();
        let err = missing.read("--ciphertext-blob").unwrap_err();
        assert!(err.to_string().contains("--ciphertext-blob"), "{err}");
        assert_eq!(err.exit_code(), crate::exit::IO);
    }

    #[test]
    fn context_shorthand_and_json() {
        let c = parse_context("a=1,b=x=y").unwrap();
        assert_eq!(c.get("a").map(String::as_str), Some("1"));
        assert_eq!(c.get("b").map(String::as_str), Some("x=y"));
        let j = parse_context(r#"{"kmsfs:path":"/a b","v":""}"#).unwrap();
        assert_eq!(j.get("kmsfs:path").map(String::as_str), Some("/a b"));
        assert_eq!(j.get("v").map(String::as_str), Some(""));
        assert!(parse_context("novalue").is_err());
        assert!(parse_context("=v").is_err());
        assert!(parse_context("a=1,a=2").is_err());
        assert!(parse_context(r#"{"a":1}"#).is_err());
        assert!(parse_context("[1]").is_err());
    }

    #[test]
    fn context_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctx.json");
        std::fs::write(&p, "{\"k\": \"v\"}\n").unwrap();
        let c = parse_context(&format!("file://{}", p.display())).unwrap();
        assert_eq!(c.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn tags_shorthand_and_json() {
        assert_eq!(
            parse_tags("TagKey=team,TagValue=storage").unwrap(),
            vec![Tag {
                key: "team".into(),
                value: "storage".into()
            }]
        );
        assert_eq!(
            parse_tags("TagValue=v,TagKey=k").unwrap(),
            vec![Tag {
                key: "k".into(),
                value: "v".into()
            }]
        );
        let j =
            parse_tags(r#"[{"TagKey":"a","TagValue":"1"},{"TagKey":"b","TagValue":""}]"#).unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j[1].key, "b");
        assert!(parse_tags("TagKey=k").is_err());
        assert!(parse_tags("k=v").is_err());
        assert!(parse_tags(r#"[{"TagKey":"a"}]"#).is_err());
        assert_eq!(
            tags_json(&j)[0],
            serde_json::json!({"TagKey":"a","TagValue":"1"})
        );
    }

    #[test]
    fn string_lists() {
        assert_eq!(parse_string_list("a").unwrap(), vec!["a"]);
        assert_eq!(parse_string_list(r#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert!(parse_string_list("[1]").is_err());
    }
}
