//! `kmsfs policy check`: explains how a key's policy and grants decide one
//! request (which statement or grant allowed or denied it) without making it.

use super::kms::params::parse_context;
use super::kms::print;
use crate::cli::{EngineArgs, Output};
use crate::engine_access;
use crate::exit::CliError;
use clap::{Args, Subcommand};
use kms_engine::{EncryptionContext, Principal};

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
    /// The caller: uid:N or user:NAME (groups are looked up in /etc/group)
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

/// Resolves `uid:N` / `user:NAME` against /etc/passwd and /etc/group.
fn principal(spec: &str, passwd: &str, group: &str) -> Result<Principal, CliError> {
    let entry = |pred: &dyn Fn(&[&str]) -> bool| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && pred(&f)).then(|| (f[2].parse::<u32>().ok(), f[3].parse::<u32>().ok()))
        })
    };
    let (uid, gid) = match spec.split_once(':') {
        Some(("uid", n)) => {
            let uid: u32 = n
                .parse()
                .map_err(|_| CliError::Usage(format!("--principal {spec:?}: bad uid")))?;
            let gid = entry(&|f| f[2] == n).and_then(|(_, g)| g).unwrap_or(uid);
            (uid, gid)
        }
        Some(("user", name)) => match entry(&|f| f[0] == name) {
            Some((Some(u), Some(g))) => (u, g),
            _ => {
                return Err(CliError::Usage(format!(
                    "--principal {spec:?}: no such user in /etc/passwd"
                )));
            }
        },
        _ => {
            return Err(CliError::Usage(format!(
                "--principal {spec:?} must be uid:N or user:NAME"
            )));
        }
    };
    Ok(Principal::resolve_from(uid, gid, passwd, group))
}

fn check(engine_args: &EngineArgs, a: &CheckArgs) -> Result<(), CliError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let who = principal(&a.principal, &passwd, &group)?;
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
    let engine = engine_access::open_engine(engine_args)?;
    let ctx = (!a.encryption_context.is_empty()).then_some(&ctx);
    let e = engine.explain_access(&a.key_id, &who, &a.action, ctx)?;
    let text = match engine_args.output {
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&e.to_json()).unwrap_or_default()
        ),
        Output::Text => format!("principal {who} ({})\n{e}", a.principal),
    };
    print(&text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/h:/bin/sh\n";
    const GROUP: &str = "users:x:100:\nstaff:x:50:alice\n";

    #[test]
    fn resolves_principals() {
        let p = principal("user:alice", PASSWD, GROUP).unwrap();
        assert_eq!((p.uid, p.gid), (1000, 100));
        assert!(p.matches("group:staff"));
        let p = principal("uid:1000", PASSWD, GROUP).unwrap();
        assert_eq!(p.user_name.as_deref(), Some("alice"));
        let p = principal("uid:4242", PASSWD, GROUP).unwrap();
        assert_eq!((p.uid, p.gid), (4242, 4242));
        assert!(principal("user:nobody-here", PASSWD, GROUP).is_err());
        assert!(principal("gid:5", PASSWD, GROUP).is_err());
    }
}
