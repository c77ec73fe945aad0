//! The engine's audit path setting (`kmsfs audit paths`): how records carry
//! file paths, kept in the sealed store so that every process using the
//! store applies it; and the hmac form of a path, to search for it.

use crate::audit::paths::{self, AuditPathMode};
use crate::engine::Engine;
use crate::key::KeyMaterial;
use crate::{KmsError, Principal};
use serde_json::json;

/// What [`Engine::set_audit_path_mode`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPathChange {
    pub previous: AuditPathMode,
    pub now: AuditPathMode,
}

impl Engine {
    /// The audit path mode in force (as of the last refresh of the store;
    /// reads nothing from disk and writes nothing).
    pub fn audit_path_mode(&self) -> Result<AuditPathMode, KmsError> {
        Ok(self.current()?.state.audit_paths)
    }

    /// Sets the audit path mode for every process using the store (one
    /// store write; a running engine applies it at its next refresh).
    /// Choosing `hmac` the first time makes its random key, sealed in the
    /// store and kept from then on. Audited as `UpdateAuditPathMode`.
    pub fn set_audit_path_mode(
        &self,
        caller: &Principal,
        mode: AuditPathMode,
    ) -> Result<AuditPathChange, KmsError> {
        self.audited(caller, "UpdateAuditPathMode", |a| {
            a.request_parameters = Some(json!({"auditPaths": mode.name()}));
            self.mutate(|st, _| {
                let previous = st.audit_paths;
                if mode == AuditPathMode::Hmac && st.audit_path_key.is_none() {
                    st.audit_path_key = Some(KeyMaterial::generate()?);
                }
                st.audit_paths = mode;
                Ok(AuditPathChange {
                    previous,
                    now: mode,
                })
            })
        })
    }

    /// The forms `path` takes in records of any mode: itself, and its hmac
    /// form when the store has an hmac key (what `audit show --path`
    /// matches). Not audited: it reads no key material a caller sees.
    pub fn audit_path_forms(&self, path: &str) -> Result<Vec<String>, KmsError> {
        let snap = self.current()?;
        let mut forms = vec![path.to_string()];
        if let Some(k) = &snap.state.audit_path_key {
            forms.push(paths::path_token(k, path));
        }
        Ok(forms)
    }
}
