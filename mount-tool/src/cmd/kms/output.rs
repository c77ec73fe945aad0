//! Printing engine responses: pretty JSON with AWS field names (as `aws`
//! prints it), or `--output text`, which follows `aws --output text`; and
//! `--query`, a JMESPath expression applied first, as `aws --query`; or
//! `--output table` for people (`crate::table`).

use crate::cli::Output;
use serde::Serialize;
use serde_json::Value;

/// A `--query` JMESPath expression, checked when the command line is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query(String);

impl Query {
    /// clap value parser: the expression must compile.
    pub fn parse(s: &str) -> Result<Query, String> {
        jmespath::compile(s).map_err(|e| format!("bad JMESPath expression: {e}"))?;
        Ok(Query(s.to_string()))
    }

    /// The expression's result on `v` (`null` when it selects nothing).
    pub fn search(&self, v: &Value) -> Result<Value, String> {
        let expr = jmespath::compile(&self.0).map_err(|e| e.to_string())?;
        let found = expr.search(v).map_err(|e| format!("--query: {e}"))?;
        serde_json::to_value(&*found).map_err(|e| format!("--query: {e}"))
    }
}

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
        Output::Text => aws_text(resp),
        Output::Table => crate::table::render(resp, ""),
    }
}

/// What `aws --query QUERY --output OUTPUT` prints for `resp`: the query's
/// result as JSON (`null` included, only `{}` prints nothing) or as `aws`
/// text (a scalar alone, a list of scalars tab-separated on one line).
pub fn render_query(resp: &Value, output: Output, query: &Query) -> Result<String, String> {
    let found = query.search(resp)?;
    Ok(match output {
        Output::Json if found.as_object().is_some_and(|o| o.is_empty()) => String::new(),
        Output::Json => pretty_json(&found),
        Output::Text => aws_text(&found),
        Output::Table => crate::table::render(&found, ""),
    })
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

/// A value as `aws` text output shows it (Python's `str`: `True`, `None`).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// `aws --output text` (awscli's `text.format_text`, step for step): an
/// object's scalar fields on one tab-separated line, in key order, after
/// the upper-cased name of the field holding it; then its lists and
/// objects, each under its own name. The objects of one list share one
/// column set (every scalar key of any of them; empty where one lacks it).
/// A list of scalars is one tab-separated line, or, under a name, one
/// `NAME<tab>value` line per item.
pub fn aws_text(v: &Value) -> String {
    let mut out = String::new();
    format_text(v, None, None, &mut out);
    out
}

fn format_text(item: &Value, name: Option<&str>, columns: Option<&[String]>, out: &mut String) {
    match item {
        Value::Object(map) => format_object(map, name, columns, out),
        Value::Array(items) => format_list(items, name, out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn format_list(items: &[Value], name: Option<&str>, out: &mut String) {
    if items.is_empty() {
        return;
    }
    if items.iter().any(Value::is_object) {
        let columns = scalar_columns(items);
        for item in items {
            format_text(item, name, Some(&columns), out);
        }
    } else if items.iter().any(Value::is_array) {
        let scalars: Vec<&Value> = items.iter().filter(|v| is_scalar(v)).collect();
        if !scalars.is_empty() {
            format_scalars(&scalars, name, out);
        }
        for nested in items.iter().filter(|v| !is_scalar(v)) {
            format_text(nested, name, None, out);
        }
    } else {
        format_scalars(&items.iter().collect::<Vec<_>>(), name, out);
    }
}

fn format_scalars(items: &[&Value], name: Option<&str>, out: &mut String) {
    match name {
        Some(n) => {
            for item in items {
                out.push_str(&format!("{}\t{}\n", n.to_uppercase(), scalar(item)));
            }
        }
        None => {
            let fields: Vec<String> = items.iter().map(|v| scalar(v)).collect();
            out.push_str(&fields.join("\t"));
            out.push('\n');
        }
    }
}

/// Every key with a scalar value in any object of `items`, sorted.
fn scalar_columns(items: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = items
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|m| {
            m.iter()
                .filter(|(_, v)| is_scalar(v))
                .map(|(k, _)| k.clone())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn format_object(
    map: &serde_json::Map<String, Value>,
    name: Option<&str>,
    columns: Option<&[String]>,
    out: &mut String,
) {
    // serde_json's map iterates in sorted key order.
    let (mut fields, nested): (Vec<String>, Vec<(&String, &Value)>) = match columns {
        None => (
            map.values().filter(|v| is_scalar(v)).map(scalar).collect(),
            map.iter().filter(|(_, v)| !is_scalar(v)).collect(),
        ),
        Some(cols) => (
            cols.iter()
                .map(|k| map.get(k).map_or_else(String::new, scalar))
                .collect(),
            map.iter().filter(|(k, _)| !cols.contains(k)).collect(),
        ),
    };
    if !fields.is_empty() {
        if let Some(n) = name {
            fields.insert(0, n.to_uppercase());
        }
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    for (k, v) in nested {
        format_text(v, Some(k), None, out);
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

    /// Expected outputs from awscli 1.45's `text.format_text`.
    #[test]
    fn aws_text_matches_awscli() {
        let cases = [
            (json!("abc"), "abc\n"),
            (json!(null), "None\n"),
            (json!(7), "7\n"),
            (json!(["a", "b", true]), "a\tb\tTrue\n"),
            (json!([]), ""),
            (json!({"L": ["x", "y"]}), "L\tx\nL\ty\n"),
            (json!([["a", "b"], ["c"]]), "a\tb\nc\n"),
            (json!(["s", ["a", "b"]]), "s\na\tb\n"),
            (
                json!({"Items": [{"A": 1, "B": "x"}, {"A": 2, "C": false}]}),
                "ITEMS\t1\tx\t\nITEMS\t2\t\tFalse\n",
            ),
            (
                json!([{"K": "1", "T": [{"N": "a"}]}, {"K": "2"}]),
                "1\nT\ta\n2\n",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(aws_text(&v), want, "{v}");
        }
    }

    #[test]
    fn query_selects_before_printing() {
        let r = json!({"CiphertextBlob": "Q1Q=", "KeyId": "arn:k", "Keys": [{"KeyId": "a"}, {"KeyId": "b"}]});
        let q = |s: &str| Query::parse(s).unwrap();
        assert_eq!(
            render_query(&r, Output::Text, &q("CiphertextBlob")).unwrap(),
            "Q1Q=\n"
        );
        assert_eq!(
            render_query(&r, Output::Json, &q("CiphertextBlob")).unwrap(),
            "\"Q1Q=\"\n"
        );
        assert_eq!(
            render_query(&r, Output::Text, &q("Keys[].KeyId")).unwrap(),
            "a\tb\n"
        );
        assert_eq!(
            render_query(&r, Output::Json, &q("Keys[?KeyId=='b'] | [0]")).unwrap(),
            "{\n    \"KeyId\": \"b\"\n}\n"
        );
        assert_eq!(
            render_query(&r, Output::Json, &q("Nope")).unwrap(),
            "null\n"
        );
        assert_eq!(
            render_query(&r, Output::Text, &q("Nope")).unwrap(),
            "None\n"
        );
        assert!(Query::parse("Keys[").is_err());
    }
}
