//! `kmsfs kms put-key-policy|get-key-policy|list-key-policies|create-grant|
//! list-grants|list-retirable-grants|retire-grant|revoke-grant`: key policy
//! and grant operations with `aws kms` option names, sent to the engine as
//! AWS JSON requests (run through the same path as the other `kms` ops).

use super::kms::Request;
use super::kms::params::{load_text, parse_context, parse_string_list};
use crate::exit::CliError;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

/// `--constraints`: a JSON object (or `file://PATH`) with
/// `EncryptionContextEquals`, `EncryptionContextSubset` and the kmsfs
/// extension `KmsfsPathPrefix`, or the shorthand
/// `KmsfsPathPrefix=/dir` / `EncryptionContextSubset={k=v,k2=v2}` /
/// `EncryptionContextEquals={k=v}` (several separated by spaces as separate
/// arguments).
fn constraint_arg(s: &str) -> Result<Map<String, Value>, String> {
    let text = load_text(s)?;
    let t = text.trim();
    if t.starts_with('{') {
        return match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("expected a JSON object".into()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        };
    }
    let (name, value) = t
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE or JSON, got {t:?}"))?;
    let v = match name {
        "KmsfsPathPrefix" => Value::String(value.to_string()),
        "EncryptionContextEquals" | "EncryptionContextSubset" => {
            let inner = value
                .strip_prefix('{')
                .and_then(|v| v.strip_suffix('}'))
                .unwrap_or(value);
            json!(parse_context(inner)?)
        }
        other => {
            return Err(format!(
                "unknown constraint {other:?}; use EncryptionContextEquals, \
                 EncryptionContextSubset or KmsfsPathPrefix"
            ));
        }
    };
    let mut m = Map::new();
    m.insert(name.to_string(), v);
    Ok(m)
}

#[derive(Debug, Clone, Args)]
pub struct PagingOpts {
    /// Maximum number of items in one page (disables automatic paging)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// NextMarker from a previous truncated response (disables automatic paging)
    #[arg(long, value_name = "MARKER")]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PutKeyPolicyArgs {
    /// Key id, key ARN, alias name or alias ARN
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// The policy document: JSON text or file://PATH
    #[arg(long, value_parser = load_text, value_name = "POLICY")]
    pub policy: String,
    /// Only "default"
    #[arg(long, value_name = "NAME")]
    pub policy_name: Option<String>,
    /// Accept a policy that would stop you from changing it again
    #[arg(long)]
    pub bypass_policy_lockout_safety_check: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GetKeyPolicyArgs {
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// Only "default"
    #[arg(long, value_name = "NAME")]
    pub policy_name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ListKeyPoliciesArgs {
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    #[command(flatten)]
    pub paging: PagingOpts,
}

#[derive(Debug, Clone, Args)]
pub struct CreateGrantArgs {
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// Who receives the grant: uid:N, user:NAME, gid:N or group:NAME
    #[arg(long, value_name = "PRINCIPAL")]
    pub grantee_principal: String,
    /// Who may retire the grant (same forms)
    #[arg(long, value_name = "PRINCIPAL")]
    pub retiring_principal: Option<String>,
    /// Operations: Decrypt Encrypt GenerateDataKey ReEncryptFrom ReEncryptTo
    /// CreateGrant RetireGrant DescribeKey ...
    #[arg(long, required = true, num_args = 1.., value_parser = parse_string_list, value_name = "OP")]
    pub operations: Vec<Vec<String>>,
    /// JSON, file://PATH, or KmsfsPathPrefix=/dir,
    /// EncryptionContextSubset={k=v}, EncryptionContextEquals={k=v}
    #[arg(long, num_args = 1.., value_parser = constraint_arg, value_name = "CONSTRAINT")]
    pub constraints: Vec<Map<String, Value>>,
    /// Grant tokens
    #[arg(long, num_args = 1.., value_parser = parse_string_list, value_name = "TOKEN")]
    pub grant_tokens: Vec<Vec<String>>,
    /// A name that makes retries idempotent
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ListGrantsArgs {
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// Only this grant
    #[arg(long, value_name = "ID")]
    pub grant_id: Option<String>,
    /// Only grants for this grantee
    #[arg(long, value_name = "PRINCIPAL")]
    pub grantee_principal: Option<String>,
    #[command(flatten)]
    pub paging: PagingOpts,
}

#[derive(Debug, Clone, Args)]
pub struct ListRetirableGrantsArgs {
    /// The retiring principal (must be you)
    #[arg(long, value_name = "PRINCIPAL")]
    pub retiring_principal: String,
    #[command(flatten)]
    pub paging: PagingOpts,
}

#[derive(Debug, Clone, Args)]
pub struct RetireGrantArgs {
    /// The grant token (or --key-id with --grant-id)
    #[arg(long, value_name = "TOKEN")]
    pub grant_token: Option<String>,
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
    #[arg(long, value_name = "ID")]
    pub grant_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RevokeGrantArgs {
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    #[arg(long, value_name = "ID")]
    pub grant_id: String,
}

/// Key policy and grant operations, named as in `aws kms`.
#[derive(Debug, Clone, Subcommand)]
pub enum PolicyOpCommand {
    /// Replace a key's policy
    PutKeyPolicy(PutKeyPolicyArgs),
    /// Show a key's policy
    GetKeyPolicy(GetKeyPolicyArgs),
    /// List a key's policy names (always "default")
    ListKeyPolicies(ListKeyPoliciesArgs),
    /// Give a principal permissions on a key
    CreateGrant(CreateGrantArgs),
    /// List the grants on a key
    ListGrants(ListGrantsArgs),
    /// List the grants you may retire
    ListRetirableGrants(ListRetirableGrantsArgs),
    /// Retire a grant (its retiring principal, or its grantee with RetireGrant)
    RetireGrant(RetireGrantArgs),
    /// Revoke a grant (key administrators)
    RevokeGrant(RevokeGrantArgs),
}

/// Builds a JSON object, leaving out absent fields.
#[derive(Default)]
struct Body(Map<String, Value>);

impl Body {
    fn set(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.0.insert(name.to_string(), v.into());
        self
    }
    fn opt<T: Into<Value>>(self, name: &str, v: Option<T>) -> Self {
        match v {
            Some(v) => self.set(name, v),
            None => self,
        }
    }
    fn paging(self, p: &PagingOpts) -> Self {
        self.opt("Limit", p.limit).opt("Marker", p.marker.clone())
    }
    fn done(self, op: &'static str) -> Request {
        Request {
            op,
            body: Value::Object(self.0),
        }
    }
}

fn flat(lists: &[Vec<String>]) -> Vec<Value> {
    lists.iter().flatten().cloned().map(Value::String).collect()
}

impl PolicyOpCommand {
    /// The AWS JSON request.
    pub fn request(&self) -> Result<Request, CliError> {
        use PolicyOpCommand as C;
        Ok(match self {
            C::PutKeyPolicy(a) => Body::default()
                .set("KeyId", a.key_id.clone())
                .set("Policy", a.policy.clone())
                .opt("PolicyName", a.policy_name.clone())
                .set(
                    "BypassPolicyLockoutSafetyCheck",
                    a.bypass_policy_lockout_safety_check,
                )
                .done("PutKeyPolicy"),
            C::GetKeyPolicy(a) => Body::default()
                .set("KeyId", a.key_id.clone())
                .opt("PolicyName", a.policy_name.clone())
                .done("GetKeyPolicy"),
            C::ListKeyPolicies(a) => Body::default()
                .set("KeyId", a.key_id.clone())
                .paging(&a.paging)
                .done("ListKeyPolicies"),
            C::CreateGrant(a) => {
                let mut constraints = Map::new();
                for c in &a.constraints {
                    for (k, v) in c {
                        if constraints.insert(k.clone(), v.clone()).is_some() {
                            return Err(CliError::Usage(format!("--constraints: {k} given twice")));
                        }
                    }
                }
                let tokens = flat(&a.grant_tokens);
                Body::default()
                    .set("KeyId", a.key_id.clone())
                    .set("GranteePrincipal", a.grantee_principal.clone())
                    .opt("RetiringPrincipal", a.retiring_principal.clone())
                    .set("Operations", flat(&a.operations))
                    .opt(
                        "Constraints",
                        (!constraints.is_empty()).then_some(Value::Object(constraints)),
                    )
                    .opt("GrantTokens", (!tokens.is_empty()).then_some(tokens))
                    .opt("Name", a.name.clone())
                    .done("CreateGrant")
            }
            C::ListGrants(a) => Body::default()
                .set("KeyId", a.key_id.clone())
                .opt("GrantId", a.grant_id.clone())
                .opt("GranteePrincipal", a.grantee_principal.clone())
                .paging(&a.paging)
                .done("ListGrants"),
            C::ListRetirableGrants(a) => Body::default()
                .set("RetiringPrincipal", a.retiring_principal.clone())
                .paging(&a.paging)
                .done("ListRetirableGrants"),
            C::RetireGrant(a) => Body::default()
                .opt("GrantToken", a.grant_token.clone())
                .opt("KeyId", a.key_id.clone())
                .opt("GrantId", a.grant_id.clone())
                .done("RetireGrant"),
            C::RevokeGrant(a) => Body::default()
                .set("KeyId", a.key_id.clone())
                .set("GrantId", a.grant_id.clone())
                .done("RevokeGrant"),
        })
    }

    /// The list field to merge across pages when no paging option was given.
    pub fn auto_paged_field(&self) -> Option<&'static str> {
        let (field, p) = match self {
            PolicyOpCommand::ListKeyPolicies(a) => ("PolicyNames", &a.paging),
            PolicyOpCommand::ListGrants(a) => ("Grants", &a.paging),
            PolicyOpCommand::ListRetirableGrants(a) => ("Grants", &a.paging),
            _ => return None,
        };
        (p.limit.is_none() && p.marker.is_none()).then_some(field)
    }

    /// Fields `--output text` prints bare.
    pub fn text_fields(&self) -> &'static [&'static str] {
        match self {
            PolicyOpCommand::GetKeyPolicy(_) => &["Policy"],
            PolicyOpCommand::CreateGrant(_) => &["GrantId", "GrantToken"],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        op: PolicyOpCommand,
    }

    fn req(args: &[&str]) -> Request {
        let mut v = vec!["kms"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().op.request().unwrap()
    }

    #[test]
    fn create_grant_request_shape() {
        let r = req(&[
            "create-grant",
            "--key-id",
            "k",
            "--grantee-principal",
            "uid:1001",
            "--operations",
            "Decrypt",
            "GenerateDataKey",
            "--constraints",
            "KmsfsPathPrefix=/shared",
            "EncryptionContextSubset={kmsfs:volume=v1}",
            "--name",
            "n",
        ]);
        assert_eq!(r.op, "CreateGrant");
        assert_eq!(
            r.body,
            json!({"KeyId": "k", "GranteePrincipal": "uid:1001",
                   "Operations": ["Decrypt", "GenerateDataKey"],
                   "Constraints": {"KmsfsPathPrefix": "/shared", "EncryptionContextSubset": {"kmsfs:volume": "v1"}},
                   "Name": "n"})
        );
        let r = req(&[
            "create-grant",
            "--key-id",
            "k",
            "--grantee-principal",
            "uid:1",
            "--operations",
            r#"["Decrypt","Encrypt"]"#,
            "--constraints",
            r#"{"EncryptionContextEquals": {"a": "b"}}"#,
        ]);
        assert_eq!(r.body["Operations"], json!(["Decrypt", "Encrypt"]));
        assert_eq!(
            r.body["Constraints"],
            json!({"EncryptionContextEquals": {"a": "b"}})
        );
    }

    #[test]
    fn other_requests() {
        let r = req(&[
            "put-key-policy",
            "--key-id",
            "k",
            "--policy",
            "{}",
            "--bypass-policy-lockout-safety-check",
        ]);
        assert_eq!(
            r.body,
            json!({"KeyId": "k", "Policy": "{}", "BypassPolicyLockoutSafetyCheck": true})
        );
        let r = req(&["retire-grant", "--grant-token", "t"]);
        assert_eq!(r.body, json!({"GrantToken": "t"}));
        let r = req(&["revoke-grant", "--key-id", "k", "--grant-id", "g"]);
        assert_eq!(
            (r.op, r.body),
            ("RevokeGrant", json!({"KeyId": "k", "GrantId": "g"}))
        );
        let t = T::try_parse_from(["kms", "list-grants", "--key-id", "k"]).unwrap();
        assert_eq!(t.op.auto_paged_field(), Some("Grants"));
        let t = T::try_parse_from(["kms", "list-grants", "--key-id", "k", "--limit", "2"]).unwrap();
        assert_eq!(t.op.auto_paged_field(), None);
        assert!(
            T::try_parse_from([
                "kms",
                "create-grant",
                "--key-id",
                "k",
                "--grantee-principal",
                "u",
                "--operations",
                "Decrypt",
                "--constraints",
                "Bogus=1"
            ])
            .is_err()
        );
    }
}
