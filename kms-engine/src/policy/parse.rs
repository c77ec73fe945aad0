//! Strict parsing of a key policy document. Every error is a
//! MalformedPolicyDocumentException whose message starts with the JSON path
//! of the defect, e.g. `Statement[1].Condition.StringLike: ...`.

use super::condition::{ConditionClause, ConditionKey, ConditionValue, Operator};
use super::{
    Effect, MAX_POLICY_BYTES, POLICY_VERSION, Patterns, Policy, PrincipalId, Principals, Statement,
};
use crate::error::KmsError;
use serde_json::{Map, Value};
use std::fmt::Display;

fn err(path: &str, msg: impl Display) -> KmsError {
    KmsError::MalformedPolicyDocument(format!("{path}: {msg}"))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(super) fn parse_policy(document: &str) -> Result<Policy, KmsError> {
    if document.len() > MAX_POLICY_BYTES {
        return Err(KmsError::MalformedPolicyDocument(format!(
            "policy is {} bytes; the limit is {MAX_POLICY_BYTES} bytes",
            document.len()
        )));
    }
    let root: Value = serde_json::from_str(document)
        .map_err(|e| KmsError::MalformedPolicyDocument(format!("policy is not valid JSON: {e}")))?;
    let Value::Object(obj) = root else {
        return Err(KmsError::MalformedPolicyDocument(format!(
            "policy must be a JSON object, got {}",
            kind_of(&root)
        )));
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
            return Err(err(
                k,
                "unknown policy element (expected Version, Id, Statement)",
            ));
        }
    }
    let version = match obj.get("Version") {
        Some(Value::String(v)) if v == POLICY_VERSION => v.clone(),
        Some(Value::String(v)) => {
            return Err(err(
                "Version",
                format!("unsupported policy version {v:?}; use \"{POLICY_VERSION}\""),
            ));
        }
        Some(other) => {
            return Err(err(
                "Version",
                format!(
                    "must be the string \"{POLICY_VERSION}\", got {}",
                    kind_of(other)
                ),
            ));
        }
        None => return Err(err("Version", format!("missing; use \"{POLICY_VERSION}\""))),
    };
    let id = match obj.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(err(
                "Id",
                format!("must be a string, got {}", kind_of(other)),
            ));
        }
    };
    let raw_statements: Vec<&Value> = match obj.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(other) => {
            return Err(err(
                "Statement",
                format!(
                    "must be an object or a list of objects, got {}",
                    kind_of(other)
                ),
            ));
        }
        None => return Err(err("Statement", "missing")),
    };
    let mut statements = Vec::with_capacity(raw_statements.len());
    for (index, raw) in raw_statements.into_iter().enumerate() {
        let path = format!("Statement[{index}]");
        let Value::Object(m) = raw else {
            return Err(err(
                &path,
                format!("must be an object, got {}", kind_of(raw)),
            ));
        };
        let s = parse_statement(index, &path, m)?;
        if let Some(sid) = &s.sid
            && let Some(prev) = statements
                .iter()
                .find(|p: &&Statement| p.sid.as_ref() == Some(sid))
        {
            return Err(err(
                &format!("{path}.Sid"),
                format!("duplicate Sid {sid:?} (also in Statement[{}])", prev.index),
            ));
        }
        statements.push(s);
    }
    Ok(Policy {
        version,
        id,
        statements,
    })
}

const STATEMENT_FIELDS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Picks exactly-one-of / at-most-one-of a positive and a negated element.
fn either<'a>(
    m: &'a Map<String, Value>,
    path: &str,
    pos: &str,
    neg: &str,
    required: bool,
) -> Result<Option<(bool, &'a Value)>, KmsError> {
    match (m.get(pos), m.get(neg)) {
        (Some(_), Some(_)) => Err(err(path, format!("has both {pos} and {neg}; use one"))),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) if required => Err(err(path, format!("missing {pos} (or {neg})"))),
        (None, None) => Ok(None),
    }
}

fn parse_statement(
    index: usize,
    path: &str,
    m: &Map<String, Value>,
) -> Result<Statement, KmsError> {
    for k in m.keys() {
        if !STATEMENT_FIELDS.contains(&k.as_str()) {
            return Err(err(
                &format!("{path}.{k}"),
                "unknown statement element (expected Sid, Effect, Principal, NotPrincipal, \
                 Action, NotAction, Resource, NotResource, Condition)",
            ));
        }
    }
    let sid = match m.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(o) => {
            return Err(err(
                &format!("{path}.Sid"),
                format!("must be a string, got {}", kind_of(o)),
            ));
        }
    };
    let effect = match m.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => {
            return Err(err(
                &format!("{path}.Effect"),
                format!("unknown effect {e:?}; use \"Allow\" or \"Deny\""),
            ));
        }
        Some(o) => {
            return Err(err(
                &format!("{path}.Effect"),
                format!("must be \"Allow\" or \"Deny\", got {}", kind_of(o)),
            ));
        }
        None => return Err(err(path, "missing Effect")),
    };
    let principals = {
        let Some((negated, v)) = either(m, path, "Principal", "NotPrincipal", true)? else {
            return Err(err(path, "missing Principal (or NotPrincipal)"));
        };
        let name = if negated { "NotPrincipal" } else { "Principal" };
        let ids = parse_principals(&format!("{path}.{name}"), v)?;
        if negated {
            Principals::NotPrincipal(ids)
        } else {
            Principals::Principal(ids)
        }
    };
    let actions = {
        let Some((negated, v)) = either(m, path, "Action", "NotAction", true)? else {
            return Err(err(path, "missing Action (or NotAction)"));
        };
        let name = format!("{path}.{}", if negated { "NotAction" } else { "Action" });
        let patterns = string_list(&name, v)?;
        for (i, a) in patterns.iter().enumerate() {
            let ok = a == "*"
                || a.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("kms:"))
                    && a.len() > 4
                    && a[4..]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?');
            if !ok {
                return Err(err(
                    &format!("{name}[{i}]"),
                    format!(
                        "action {a:?} must be \"*\" or \"kms:NAME\" (wildcards * and ? allowed)"
                    ),
                ));
            }
        }
        Patterns { negated, patterns }
    };
    let resources = match either(m, path, "Resource", "NotResource", false)? {
        None => None,
        Some((negated, v)) => {
            let name = format!(
                "{path}.{}",
                if negated { "NotResource" } else { "Resource" }
            );
            let patterns = string_list(&name, v)?;
            if let Some(i) = patterns.iter().position(String::is_empty) {
                return Err(err(&format!("{name}[{i}]"), "resource must not be empty"));
            }
            Some(Patterns { negated, patterns })
        }
    };
    let conditions = match m.get("Condition") {
        None => Vec::new(),
        Some(v) => parse_conditions(&format!("{path}.Condition"), v)?,
    };
    Ok(Statement {
        index,
        sid,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// A string or a non-empty list of strings.
fn string_list(path: &str, v: &Value) -> Result<Vec<String>, KmsError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if a.is_empty() => Err(err(path, "list must not be empty")),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s.clone()),
                o => Err(err(
                    &format!("{path}[{i}]"),
                    format!("must be a string, got {}", kind_of(o)),
                )),
            })
            .collect(),
        o => Err(err(
            path,
            format!("must be a string or list of strings, got {}", kind_of(o)),
        )),
    }
}

fn parse_principals(path: &str, v: &Value) -> Result<Vec<PrincipalId>, KmsError> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalId::Any]),
        Value::Object(m) => {
            if m.is_empty() {
                return Err(err(path, "must name principals under \"AWS\""));
            }
            let mut out = Vec::new();
            for (k, ids) in m {
                if k != "AWS" {
                    return Err(err(
                        &format!("{path}.{k}"),
                        "unsupported principal type; local principals go under \"AWS\"",
                    ));
                }
                let sub = format!("{path}.AWS");
                let list = string_list(&sub, ids)?;
                let single = matches!(ids, Value::String(_));
                for (i, id) in list.iter().enumerate() {
                    let at = if single {
                        sub.clone()
                    } else {
                        format!("{sub}[{i}]")
                    };
                    out.push(PrincipalId::parse(id).map_err(|m| err(&at, m))?);
                }
            }
            Ok(out)
        }
        Value::String(s) => Err(err(
            path,
            format!("{s:?} is not a valid principal; use \"*\" or {{\"AWS\": [\"uid:N\", ...]}}"),
        )),
        o => Err(err(
            path,
            format!(
                "must be \"*\" or {{\"AWS\": id or list of ids}}, got {}",
                kind_of(o)
            ),
        )),
    }
}

fn parse_conditions(path: &str, v: &Value) -> Result<Vec<ConditionClause>, KmsError> {
    let Value::Object(ops) = v else {
        return Err(err(
            path,
            format!(
                "must be an object of {{Operator: {{Key: value}}}}, got {}",
                kind_of(v)
            ),
        ));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let op_path = format!("{path}.{op_name}");
        let operator = Operator::parse(op_name).map_err(|m| err(path, m))?;
        let Value::Object(keys) = keys else {
            return Err(err(
                &op_path,
                format!("must be an object of {{Key: value}}, got {}", kind_of(keys)),
            ));
        };
        if keys.is_empty() {
            return Err(err(&op_path, "names no condition key"));
        }
        for (key_name, raw) in keys {
            let key = ConditionKey::parse(key_name).map_err(|m| err(&op_path, m))?;
            let raw_values = condition_values(raw).ok_or_else(|| {
                err(
                    &op_path,
                    format!(
                        "value must be a string or list of strings, got {} (key {key_name:?})",
                        kind_of(raw)
                    ),
                )
            })?;
            if raw_values.is_empty() {
                return Err(err(
                    &op_path,
                    format!("value list for key {key_name:?} must not be empty"),
                ));
            }
            let values = raw_values
                .into_iter()
                .map(|s| ConditionValue::new(s, operator.base.kind()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| err(&op_path, format!("{m} (key {key_name:?})")))?;
            out.push(ConditionClause {
                operator_name: op_name.clone(),
                operator,
                key_name: key_name.clone(),
                key,
                values,
            });
        }
    }
    Ok(out)
}

/// A scalar or a list of scalars, as strings (IAM accepts numbers and
/// booleans and compares their text). `None` for anything else.
fn condition_values(v: &Value) -> Option<Vec<String>> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(a) => a.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}
