//! ChangeRootKey: wraps the store key under a new root key (a new
//! passphrase, or a key file instead of a passphrase and back) without
//! re-encrypting anything. Not an AWS KMS operation, so not in `dispatch`:
//! it takes secrets, which never travel as JSON.

use crate::engine::{Engine, root_key_for};
use crate::store::format::{RootParams, STORE_VERSION, StoreHeader};
use crate::store::root::{self, KdfParams, RootKeySource, RootKind};
use crate::{KmsError, Principal};
use serde_json::json;

/// What ChangeRootKey needs. `Debug` prints no secret.
#[derive(Debug)]
pub struct ChangeRootKeyRequest {
    /// The secret that opens the store now (checked against the store on
    /// disk, under the writer lock).
    pub current: RootKeySource,
    /// The secret that opens it afterwards.
    pub new: RootKeySource,
    /// Argon2id cost when `new` is a passphrase; unused for a key file.
    pub kdf: KdfParams,
}

/// What ChangeRootKey did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRootKeyResponse {
    /// `"passphrase"` or `"key-file"`: what opens the store now.
    pub root_key_source: &'static str,
    /// The store's format version after the change (always 2).
    pub format_version: u8,
    /// Whether the store was in format 1 before (and is converted now).
    pub converted_from_v1: bool,
}

fn kind_name(kind: RootKind) -> &'static str {
    match kind {
        RootKind::Passphrase => "passphrase",
        RootKind::KeyFile => "key-file",
    }
}

impl Engine {
    /// ChangeRootKey: after it, `new` opens the store and `current` does not;
    /// every key, alias, grant and policy stays as it is, and every engine
    /// already open on the store (in this or another process) keeps reading
    /// and writing it, since the store key does not change.
    ///
    /// One atomic write under the store's writer lock, like every change: a
    /// crash at any moment leaves a store that opens with `current` or with
    /// `new`. A `current` that does not open the store as it is on disk is
    /// `WrongPassphrase` and changes nothing. Audited as `ChangeRootKey`
    /// with the new root key's kind and Argon2id cost, never a secret.
    pub fn change_root_key(
        &self,
        caller: &Principal,
        req: ChangeRootKeyRequest,
    ) -> Result<ChangeRootKeyResponse, KmsError> {
        let kind = root::kind_of(&req.new);
        self.audited(caller, "ChangeRootKey", |info| {
            let mut params = json!({"NewRootKeySource": kind_name(kind)});
            if kind == RootKind::Passphrase {
                params["KdfMemoryKiB"] = req.kdf.m_cost_kib.into();
                params["KdfIterations"] = req.kdf.t_cost.into();
                params["KdfLanes"] = req.kdf.p_cost.into();
            }
            info.request_parameters = Some(params);
            // The new root key first, outside the writer lock: Argon2id
            // takes a while and other writers need not wait for it.
            let new_params = RootParams::fresh(kind, req.kdf)?;
            let new_root = root::root_key(&req.new, new_params.kdf, &new_params.salt)?;
            let lock = self.files.lock()?;
            let cur = self.current_locked(&lock)?;
            let cur_root = root_key_for(cur.header.root(), &req.current)?;
            let on_disk = cur.header.unlock(&cur_root)?;
            if !self.is_store_key(&on_disk) {
                return Err(KmsError::StoreCorrupted(
                    "the store on disk wraps another store key than the one this \
                     engine holds; open it again"
                        .into(),
                ));
            }
            let header = StoreHeader::wrap(new_params, &new_root, &on_disk)?;
            let converted_from_v1 = matches!(cur.header, StoreHeader::V1 { .. });
            self.commit_with_header(&lock, &cur, cur.state.clone(), header)?;
            log::info!(
                "engine store in {}: root key changed (now a {})",
                self.dir().display(),
                kind_name(kind)
            );
            Ok(ChangeRootKeyResponse {
                root_key_source: kind_name(kind),
                format_version: STORE_VERSION,
                converted_from_v1,
            })
        })
    }
}
