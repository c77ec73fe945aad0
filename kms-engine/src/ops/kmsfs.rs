//! kmsfs operations beyond AWS KMS's, by name and JSON like the others
//! ([`Engine::dispatch`]), so that the commands that use them (`kmsfs
//! policy check`, `kmsfs audit paths|verify|export-public-key|show
//! --path`) work the same through an engine daemon as on the embedded
//! store. Each names who may call it:
//!
//! | operation | request -> response | who |
//! |---|---|---|
//! | `KmsfsExplainAccess` | `KeyId`, `Principal`, `Action`, `EncryptionContext`? -> `Explanation`, `Text` | the engine's administrator, or a caller allowed `kms:GetKeyPolicy` on the key (the explanation shows the policy; audited as GetKeyPolicy) |
//! | `KmsfsGetAuditPublicKey` | -> `PublicKey` (PEM) | anyone |
//! | `KmsfsGetAuditPaths` | -> `AuditPaths` | anyone |
//! | `KmsfsSetAuditPaths` | `AuditPaths` -> `AuditPaths`, `Previous` | the engine's administrator; audited as UpdateAuditPathMode |
//! | `KmsfsAuditPathForms` | `Path` -> `Forms` | the engine's administrator (an hmac form is an oracle for paths) |
//!
//! The engine's administrator is root or the user the engine process runs
//! as: on the embedded store every caller is (it holds the store's
//! secret); through a daemon, other users are AccessDeniedException.

use crate::audit::digest::SigningKey;
use crate::audit::paths::AuditPathMode;
use crate::engine::Engine;
use crate::ops::policies::GetKeyPolicyRequest;
use crate::{EncryptionContext, KmsError, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

/// Every kmsfs operation [`Engine::dispatch`] accepts.
pub const KMSFS_OPERATIONS: &[&str] = &[
    "KmsfsExplainAccess",
    "KmsfsGetAuditPublicKey",
    "KmsfsGetAuditPaths",
    "KmsfsSetAuditPaths",
    "KmsfsAuditPathForms",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ExplainRequest {
    key_id: String,
    principal: Principal,
    action: String,
    #[serde(default)]
    encryption_context: Option<EncryptionContext>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SetPathsRequest {
    audit_paths: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PathFormsRequest {
    path: String,
}

fn parse<T: serde::de::DeserializeOwned>(op: &str, request: Value) -> Result<T, KmsError> {
    serde_json::from_value(request)
        .map_err(|e| KmsError::Validation(format!("invalid {op} request: {e}")))
}

/// Whether `caller` administers this engine: root, or the user the engine
/// process runs as.
pub fn is_engine_admin(caller: &Principal) -> bool {
    let me = rustix::process::geteuid().as_raw();
    caller.uid == 0 || caller.uid == me
}

fn not_admin(caller: &Principal, op: &str) -> KmsError {
    KmsError::AccessDenied(format!(
        "User: {caller} is not authorized to perform: {op}: only root or the engine's own \
         user administers the engine"
    ))
}

impl Engine {
    /// Runs kmsfs operation `operation`; `None` when it is not one.
    pub(crate) fn dispatch_kmsfs(
        &self,
        caller: &Principal,
        operation: &str,
        request: Value,
    ) -> Option<Result<Value, KmsError>> {
        let result = match operation {
            "KmsfsExplainAccess" => self.kmsfs_explain(caller, parse(operation, request)),
            "KmsfsGetAuditPublicKey" => self.kmsfs_public_key(),
            "KmsfsGetAuditPaths" => self
                .audit_path_mode()
                .map(|m| json!({"AuditPaths": m.name()})),
            "KmsfsSetAuditPaths" => self.kmsfs_set_paths(caller, parse(operation, request)),
            "KmsfsAuditPathForms" => {
                if !is_engine_admin(caller) {
                    return Some(Err(not_admin(caller, operation)));
                }
                parse::<PathFormsRequest>(operation, request)
                    .and_then(|r| self.audit_path_forms(&r.path))
                    .map(|forms| json!({"Forms": forms}))
            }
            _ => return None,
        };
        Some(result)
    }

    fn kmsfs_explain(
        &self,
        caller: &Principal,
        req: Result<ExplainRequest, KmsError>,
    ) -> Result<Value, KmsError> {
        let req = req?;
        // The explanation shows the policy: only for who may read it.
        if !is_engine_admin(caller) {
            self.get_key_policy(
                caller,
                GetKeyPolicyRequest {
                    key_id: req.key_id.clone(),
                    policy_name: None,
                },
            )?;
        }
        let e = self.explain_access(
            &req.key_id,
            &req.principal,
            &req.action,
            req.encryption_context.as_ref(),
        )?;
        Ok(json!({"Explanation": e.to_json(), "Text": e.to_string()}))
    }

    fn kmsfs_public_key(&self) -> Result<Value, KmsError> {
        let key = SigningKey::from_seed(&self.audit_signing_seed()?)
            .map_err(|e| KmsError::Internal(format!("the audit signing key: {e}")))?;
        Ok(json!({"PublicKey": key.public_key().to_pem()}))
    }

    fn kmsfs_set_paths(
        &self,
        caller: &Principal,
        req: Result<SetPathsRequest, KmsError>,
    ) -> Result<Value, KmsError> {
        if !is_engine_admin(caller) {
            let denied = not_admin(caller, "KmsfsSetAuditPaths");
            return self.audited(caller, "UpdateAuditPathMode", |_| Err(denied));
        }
        let mode: AuditPathMode = req?
            .audit_paths
            .parse()
            .map_err(|e: String| KmsError::Validation(e))?;
        let change = self.set_audit_path_mode(caller, mode)?;
        Ok(json!({"AuditPaths": change.now.name(), "Previous": change.previous.name()}))
    }
}
