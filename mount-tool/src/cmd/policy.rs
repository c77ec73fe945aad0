//! `kmsfs policy check`: explains how a key's policy and grants decide one
//! request (which statement or grant allowed or denied it) without making it.

use super::kms::params::parse_context;
use super::kms::print;
use crate::cli::{EngineArgs, Output};
use crate::exit::CliError;
use crate::transport;
use clap::{Args, Subcommand};
use kms_engine::{EncryptionContext, Principal, Resolver};
use serde_json::json;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Explain whether a principal may perform an action on a key
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Key id, key ARN, alias name or alias ARN
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// The caller: uid:N or user:NAME (name and groups are looked up in the
    /// account database, as the mount does for its callers)
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: String,
    /// The action, e.g. kms:Decrypt or Decrypt
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// Encryption context: k=v (repeatable), k=v,k2=v2 or a JSON object
    #[arg(long, num_args = 1.., value_parser = parse_context, value_name = "CONTEXT")]
    pub encryption_context: Vec<std::collections::BTreeMap<String, String>>,
}

pub fn run(engine: &EngineArgs, args: PolicyArgs) -> Result<(), CliError> {
    match args.command {
        PolicyCommand::Check(a) => check(engine, &a),
    }
}

/// Resolves `uid:N` / `user:NAME` with `resolver` (the same resolver the
/// mount uses for its callers, so the answers agree).
fn principal(spec: &str, resolver: &Resolver) -> Result<Principal, CliError> {
    resolver
        .principal_for_spec(spec)
        .map_err(|e| CliError::Usage(format!("--principal {spec:?}: {e}")))
}

/// The resolved principal for `--output json`: ids, names and what could
/// not be determined.
fn principal_json(p: &Principal) -> serde_json::Value {
    let u = &p.unresolved;
    let unresolved: Vec<&str> = [
        (u.user_name, "UserName"),
        (u.groups, "Groups"),
        (u.group_names, "GroupNames"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    serde_json::json!({
        "Name": p.to_string(),
        "Uid": p.uid,
        "Gid": p.gid,
        "Groups": p.groups,
        "UserName": p.user_name,
        "GroupNames": p.group_names,
        "Unresolved": unresolved,
    })
}

/// A note for a principal the resolver could not fully determine.
fn unresolved_note(p: &Principal) -> String {
    let u = &p.unresolved;
    let mut parts = Vec::new();
    if u.user_name {
        parts.push("user name");
    }
    if u.groups {
        parts.push("supplementary groups");
    }
    if u.group_names {
        parts.push("group names");
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "note: {} could not be determined; statements that could name the principal \
         through them deny (fail closed) and do not allow\n",
        parts.join(", ")
    )
}

fn check(engine_args: &EngineArgs, a: &CheckArgs) -> Result<(), CliError> {
    let who = principal(&a.principal, Resolver::system())?;
    let mut ctx = EncryptionContext::new();
    for part in &a.encryption_context {
        for (k, v) in part {
            if ctx.insert(k.clone(), v.clone()).is_some() {
                return Err(CliError::Usage(format!(
                    "--encryption-context: key {k:?} given twice"
                )));
            }
        }
    }
    let kms = transport::open(engine_args)?;
    let mut request = json!({"KeyId": a.key_id, "Principal": who, "Action": a.action});
    if !a.encryption_context.is_empty() {
        request["EncryptionContext"] = json!(ctx);
    }
    let resp = kms.call("KmsfsExplainAccess", request, None)?;
    let text = match engine_args.output {
        Output::Json => {
            let mut v = resp["Explanation"].clone();
            if let Some(o) = v.as_object_mut() {
                o.insert("Principal".into(), principal_json(&who));
            }
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Output::Text | Output::Table => format!(
            "principal {who} ({})\n{}{}",
            a.principal,
            unresolved_note(&who),
            resp["Text"].as_str().unwrap_or_default()
        ),
    };
    print(&text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use kms_engine::identity::{DEFAULT_TTL, FileAccounts};

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/h:/bin/sh\n";
    const GROUP: &str = "users:x:100:\nstaff:x:50:alice\n";

    #[test]
    fn resolves_principals() {
        let r = Resolver::new(
            Box::new(FileAccounts {
                passwd: PASSWD.into(),
                group: GROUP.into(),
            }),
            DEFAULT_TTL,
        );
        let p = principal("user:alice", &r).unwrap();
        assert_eq!((p.uid, p.gid), (1000, 100));
        assert!(p.matches("group:staff"));
        assert_eq!(unresolved_note(&p), "");
        let p = principal("uid:1000", &r).unwrap();
        assert_eq!(p.user_name.as_deref(), Some("alice"));
        let p = principal("uid:4242", &r).unwrap();
        assert_eq!((p.uid, p.gid), (4242, 4242));
        assert!(unresolved_note(&p).contains("supplementary groups"));
        let j = principal_json(&p);
        assert_eq!(j["Name"], "uid:4242");
        assert_eq!(j["Unresolved"], serde_json::json!(["Groups"]));
        assert!(principal("user:nobody-here", &r).is_err());
        assert!(principal("gid:5", &r).is_err());
    }
}
