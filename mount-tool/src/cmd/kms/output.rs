//! Printing engine responses: pretty JSON with AWS field names (as `aws`
//! prints it), or `--output text`, which follows `aws --output text`.

use crate::cli::Output;
use serde::Serialize;
use serde_json::Value;

/// The text to print for a response; empty for an empty response (as `aws`
/// prints nothing for operations such as EnableKey).
///
/// In text mode `bare_fields` (see `OpCommand::text_fields`) are printed
/// alone, one per line, so that `| base64 -d` works on a blob; without them
/// the response is printed the way `aws --output text` prints it.
pub fn render(resp: &Value, output: Output, bare_fields: &[&str]) -> String {
    if resp.as_object().is_some_and(|o| o.is_empty()) || resp.is_null() {
        return String::new();
    }
    match output {
        Output::Json => pretty_json(resp),
        Output::Text if !bare_fields.is_empty() => {
            let mut out = String::new();
            for f in bare_fields {
                if let Some(v) = resp.get(*f) {
                    out.push_str(&scalar(v));
                    out.push('\n');
                }
            }
            out
        }
        Output::Text => {
            let mut out = String::new();
            text(resp, None, &mut out);
            out
        }
    }
}

/// JSON indented by four spaces, as `aws` prints it, with a final newline.
pub fn pretty_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a `Value` into memory cannot fail.
    if v.serialize(&mut ser).is_err() {
        return format!("{v}\n");
    }
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    s.push('\n');
    s
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// A scalar as `aws` text output shows it (Python spellings of bool/null).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// `aws --output text`: an object's scalar fields on one tab-separated line
/// (keys in sorted order, prefixed by the upper-cased name of the field that
/// holds the object), then its nested objects and lists the same way.
fn text(v: &Value, prefix: Option<&str>, out: &mut String) {
    match v {
        Value::Object(map) => {
            // serde_json's map iterates in sorted key order.
            let scalars: Vec<String> = map.values().filter(|v| is_scalar(v)).map(scalar).collect();
            if !scalars.is_empty() {
                let mut fields = Vec::with_capacity(scalars.len() + 1);
                if let Some(p) = prefix {
                    fields.push(p.to_string());
                }
                fields.extend(scalars);
                out.push_str(&fields.join("\t"));
                out.push('\n');
            }
            for (k, child) in map.iter().filter(|(_, v)| !is_scalar(v)) {
                let name = k.to_uppercase();
                match child {
                    Value::Array(items) if items.iter().all(is_scalar) => {
                        if !items.is_empty() {
                            let mut fields = vec![name];
                            fields.extend(items.iter().map(scalar));
                            out.push_str(&fields.join("\t"));
                            out.push('\n');
                        }
                    }
                    Value::Array(items) => {
                        for item in items {
                            text(item, Some(&name), out);
                        }
                    }
                    _ => text(child, Some(&name), out),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                text(item, prefix, out);
            }
        }
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_indented_by_four() {
        let s = render(
            &json!({"KeyId": "k", "Truncated": false}),
            Output::Json,
            &[],
        );
        assert_eq!(s, "{\n    \"KeyId\": \"k\",\n    \"Truncated\": false\n}\n");
    }

    #[test]
    fn empty_response_prints_nothing() {
        assert_eq!(render(&json!({}), Output::Json, &[]), "");
        assert_eq!(render(&json!({}), Output::Text, &[]), "");
    }

    #[test]
    fn bare_fields_in_text_mode() {
        let r = json!({"CiphertextBlob": "Q1Q=", "KeyId": "arn:k", "Plaintext": "UFQ="});
        assert_eq!(
            render(&r, Output::Text, &["Plaintext", "CiphertextBlob"]),
            "UFQ=\nQ1Q=\n"
        );
        assert_eq!(render(&r, Output::Text, &["CiphertextBlob"]), "Q1Q=\n");
        // JSON mode ignores them.
        assert!(render(&r, Output::Json, &["CiphertextBlob"]).contains("\"KeyId\""));
    }

    #[test]
    fn aws_text_layout() {
        let r = json!({
            "Keys": [{"KeyId": "1", "KeyArn": "arn:1"}, {"KeyId": "2", "KeyArn": "arn:2"}],
            "Truncated": false
        });
        assert_eq!(
            render(&r, Output::Text, &[]),
            "False\nKEYS\tarn:1\t1\nKEYS\tarn:2\t2\n"
        );
        let d = json!({"KeyMetadata": {"KeyId": "1", "Enabled": true, "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]}});
        assert_eq!(
            render(&d, Output::Text, &[]),
            "KEYMETADATA\tTrue\t1\nENCRYPTIONALGORITHMS\tSYMMETRIC_DEFAULT\n"
        );
    }
}
