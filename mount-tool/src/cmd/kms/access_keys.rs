//! `kmsfs kms create-access-key|list-access-keys|update-access-key|
//! delete-access-key`: the access keys AWS clients sign HTTPS requests with,
//! with `aws iam` option names (`--principal` where IAM has `--user-name`).
//! Run by root or the owner of the engine store only; the secret is printed
//! once, by create-access-key.

use super::{Paging, Request};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Args)]
pub struct CreateAccessKeyArgs {
    /// Who requests signed with the key act as: user:NAME, uid:N or
    /// arn:aws:iam::ACCOUNT:user/NAME
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: String,
}

#[derive(Debug, Clone, Args)]
pub struct ListAccessKeysArgs {
    /// Only this principal's keys (any form create-access-key accepts)
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Option<String>,
    /// Maximum number of keys in one page (disables automatic paging)
    #[arg(long, value_name = "N")]
    pub max_items: Option<u32>,
    /// Marker from a previous truncated response (disables automatic paging)
    #[arg(long, value_name = "MARKER")]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct UpdateAccessKeyArgs {
    /// The access key id (AKIA...)
    #[arg(long, value_name = "ID")]
    pub access_key_id: String,
    /// Active, or Inactive (the key authenticates nothing until made Active)
    #[arg(long, value_name = "STATUS", value_parser = ["Active", "Inactive"])]
    pub status: String,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteAccessKeyArgs {
    /// The access key id (AKIA...)
    #[arg(long, value_name = "ID")]
    pub access_key_id: String,
}

/// The access key commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AccessKeyCommand {
    /// Issue an access key for the HTTPS endpoint (the secret is shown once)
    CreateAccessKey(CreateAccessKeyArgs),
    /// List access keys (never their secrets)
    ListAccessKeys(ListAccessKeysArgs),
    /// Deactivate or reactivate an access key
    UpdateAccessKey(UpdateAccessKeyArgs),
    /// Delete an access key and its secret
    DeleteAccessKey(DeleteAccessKeyArgs),
}

/// IAM's paging: `AccessKeyMetadata` items, `IsTruncated`, `Marker`.
const IAM_PAGING: Paging = Paging {
    items: "AccessKeyMetadata",
    truncated: "IsTruncated",
    next_marker: "Marker",
};

impl AccessKeyCommand {
    /// The engine request.
    pub fn request(&self) -> Request {
        let mut body = Map::new();
        let mut set = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                body.insert(k.to_string(), Value::String(v.clone()));
            }
        };
        let op = match self {
            AccessKeyCommand::CreateAccessKey(a) => {
                set("Principal", &Some(a.principal.clone()));
                "CreateAccessKey"
            }
            AccessKeyCommand::ListAccessKeys(a) => {
                set("Principal", &a.principal);
                set("Marker", &a.marker);
                if let Some(n) = a.max_items {
                    body.insert("MaxItems".into(), n.into());
                }
                "ListAccessKeys"
            }
            AccessKeyCommand::UpdateAccessKey(a) => {
                set("AccessKeyId", &Some(a.access_key_id.clone()));
                set("Status", &Some(a.status.clone()));
                "UpdateAccessKey"
            }
            AccessKeyCommand::DeleteAccessKey(a) => {
                set("AccessKeyId", &Some(a.access_key_id.clone()));
                "DeleteAccessKey"
            }
        };
        Request {
            op,
            body: Value::Object(body),
        }
    }

    /// list-access-keys without `--max-items`/`--marker` fetches every page.
    pub fn auto_paging(&self) -> Option<Paging> {
        match self {
            AccessKeyCommand::ListAccessKeys(a) if a.max_items.is_none() && a.marker.is_none() => {
                Some(IAM_PAGING)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        op: AccessKeyCommand,
    }

    fn parse(args: &[&str]) -> Result<AccessKeyCommand, clap::Error> {
        let mut argv = vec!["kms"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).map(|t| t.op)
    }

    #[test]
    fn requests_have_iam_shapes() {
        let c = parse(&["create-access-key", "--principal", "user:alice"]).unwrap();
        assert_eq!(c.request().op, "CreateAccessKey");
        assert_eq!(c.request().body, json!({"Principal": "user:alice"}));
        let l = parse(&["list-access-keys"]).unwrap();
        assert_eq!(l.request().body, json!({}));
        assert_eq!(l.auto_paging().unwrap().items, "AccessKeyMetadata");
        let l = parse(&["list-access-keys", "--max-items", "2", "--marker", "m"]).unwrap();
        assert_eq!(l.request().body, json!({"MaxItems": 2, "Marker": "m"}));
        assert!(l.auto_paging().is_none());
        let u = parse(&[
            "update-access-key",
            "--access-key-id",
            "AKIAX",
            "--status",
            "Inactive",
        ])
        .unwrap();
        assert_eq!(
            u.request().body,
            json!({"AccessKeyId": "AKIAX", "Status": "Inactive"})
        );
        let d = parse(&["delete-access-key", "--access-key-id", "AKIAX"]).unwrap();
        assert_eq!(d.request().op, "DeleteAccessKey");
    }

    #[test]
    fn status_is_active_or_inactive() {
        use clap::error::ErrorKind;
        let e = parse(&[
            "update-access-key",
            "--access-key-id",
            "AKIAX",
            "--status",
            "inactive",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let e = parse(&["create-access-key"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
    }
}
