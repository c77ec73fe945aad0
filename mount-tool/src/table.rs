//! `--output table`: responses drawn as boxed tables for people to read, as
//! `aws --output table` does. A JSON object becomes a key/value table, a
//! list of objects one table with a column per field, and nested objects
//! and lists of objects their own table under a title naming where they
//! sit (`KeyMetadata`, `Keys`). The layout is for reading, not parsing:
//! scripts use `--output json` (or `text`), which do not change.

use serde_json::Value;

/// A grid: a header row, then one row per entry, every column as wide as
/// its widest cell.
pub fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let rule = rule(&widths);
    let mut out = String::new();
    out.push_str(&rule);
    out.push_str(&line(
        &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        &widths,
    ));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row, &widths));
    }
    if !rows.is_empty() {
        out.push_str(&rule);
    }
    out
}

/// A two-column key/value table (no header row).
pub fn key_values(rows: &[(String, String)]) -> String {
    let kw = rows.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let vw = rows.iter().map(|(_, v)| width(v)).max().unwrap_or(0);
    let widths = [kw, vw];
    let rule = rule(&widths);
    let mut out = rule.clone();
    for (k, v) in rows {
        out.push_str(&line(&[k.clone(), v.clone()], &widths));
    }
    out.push_str(&rule);
    out
}

/// A whole response under `title` (the operation's name): nothing for an
/// empty response, as the other formats.
pub fn render(v: &Value, title: &str) -> String {
    if v.is_null() || v.as_object().is_some_and(|o| o.is_empty()) {
        return String::new();
    }
    let mut out = String::new();
    section(v, title, &mut out);
    out
}

fn section(v: &Value, title: &str, out: &mut String) {
    match v {
        Value::Object(map) => {
            let rows: Vec<(String, String)> = map
                .iter()
                .filter(|(_, v)| inline(v))
                .map(|(k, v)| (k.clone(), cell(v)))
                .collect();
            if !rows.is_empty() {
                push_title(title, out);
                out.push_str(&key_values(&rows));
            }
            for (k, v) in map.iter().filter(|(_, v)| !inline(v)) {
                section(v, &join_title(title, k), out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let mut columns: Vec<&str> = items
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.keys().map(String::as_str))
                .collect();
            columns.sort_unstable();
            columns.dedup();
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|item| match item.as_object() {
                    Some(m) => columns
                        .iter()
                        .map(|c| m.get(*c).map_or_else(String::new, cell))
                        .collect(),
                    None => vec![cell(item)],
                })
                .collect();
            push_title(title, out);
            out.push_str(&grid(&columns, &rows));
        }
        other => {
            push_title(title, out);
            out.push_str(&key_values(&[(last_part(title), cell(other))]));
        }
    }
}

/// Whether a value is shown in its parent's table (a scalar, a list of
/// scalars) rather than as a table of its own.
fn inline(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(items) => !items.iter().any(Value::is_object),
        _ => true,
    }
}

/// One cell: a string as it is, a list of scalars joined by ", ", anything
/// nested as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

fn join_title(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

fn last_part(title: &str) -> String {
    title.rsplit('.').next().unwrap_or(title).to_string()
}

fn push_title(title: &str, out: &mut String) {
    if !title.is_empty() {
        out.push_str(title);
        out.push('\n');
    }
}

/// Display width: characters (control characters shown as they are would
/// break the box; `line` replaces them).
fn width(s: &str) -> usize {
    s.chars().count()
}

fn rule(widths: &[usize]) -> String {
    let mut s = String::from("+");
    for w in widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
    }
    s.push('\n');
    s
}

fn line(cells: &[String], widths: &[usize]) -> String {
    let mut s = String::from("|");
    for (i, w) in widths.iter().enumerate() {
        let c: String = cells
            .get(i)
            .map(String::as_str)
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s.push(' ');
        s.push_str(&c);
        s.push_str(&" ".repeat(w - width(&c)));
        s.push_str(" |");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_keys_as_a_grid() {
        let r = json!({
            "Keys": [{"KeyId": "1", "KeyArn": "arn:1"}, {"KeyId": "22", "KeyArn": "arn:22"}],
            "Truncated": false
        });
        assert_eq!(
            render(&r, "ListKeys"),
            "ListKeys\n\
             +-----------+-------+\n\
             | Truncated | false |\n\
             +-----------+-------+\n\
             ListKeys.Keys\n\
             +--------+-------+\n\
             | KeyArn | KeyId |\n\
             +--------+-------+\n\
             | arn:1  | 1     |\n\
             | arn:22 | 22    |\n\
             +--------+-------+\n"
        );
    }

    #[test]
    fn nested_objects_get_their_own_table() {
        let d = json!({"KeyMetadata": {"KeyId": "1", "Enabled": true,
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT", "X"], "Tags": [{"K": "a\tb"}]}});
        let s = render(&d, "DescribeKey");
        assert_eq!(
            s,
            "DescribeKey.KeyMetadata\n\
             +----------------------+----------------------+\n\
             | Enabled              | true                 |\n\
             | EncryptionAlgorithms | SYMMETRIC_DEFAULT, X |\n\
             | KeyId                | 1                    |\n\
             +----------------------+----------------------+\n\
             DescribeKey.KeyMetadata.Tags\n\
             +-----+\n\
             | K   |\n\
             +-----+\n\
             | a b |\n\
             +-----+\n"
        );
    }

    #[test]
    fn empty_and_scalar_responses() {
        assert_eq!(render(&json!({}), "EnableKey"), "");
        assert_eq!(render(&json!(null), "X"), "");
        assert_eq!(
            render(&json!("abc"), "Q"),
            "Q\n+---+-----+\n| Q | abc |\n+---+-----+\n"
        );
        // A grid without rows is its header alone.
        assert_eq!(grid(&["A"], &[]), "+---+\n| A |\n+---+\n");
    }
}
