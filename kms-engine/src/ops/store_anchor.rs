//! The store's generation anchored outside the store: the check an open
//! makes against the newest anchor in the audit trail's signed digests, and
//! `AcceptStoreRollback`, the audited way past it after a deliberate restore.
//!
//! Every store write bumps the generation, and the audit record of the call
//! that wrote it is sealed at once by a digest carrying the new generation
//! and the SHA-256 of the file ([`crate::audit::AuditSink::record_anchored`]).
//! An `engine.store` replaced by an older copy between runs therefore has a
//! generation below the newest anchor, and is refused.

use crate::audit::StoreAnchor;
use crate::engine::Engine;
use crate::{KmsError, Principal};
use serde_json::json;

/// How the store compares with the newest anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCheck {
    /// The trail anchors nothing yet (a new trail, or digests written before
    /// anchors existed).
    NoAnchor,
    /// The store is the anchored generation or newer.
    Current,
    /// The store was older; it was accepted and written again as
    /// `now_generation`, past the anchored one, and that was audited.
    RollbackAccepted {
        store_generation: u64,
        anchored_generation: u64,
        now_generation: u64,
    },
}

impl Engine {
    /// The generation and file hash of the store as this engine last read
    /// or wrote it.
    pub fn store_anchor(&self) -> Result<StoreAnchor, KmsError> {
        Ok(self.current()?.anchor.clone())
    }

    /// Compares the store with `anchored`, the newest anchor of the audit
    /// trail. A store of an older generation, or of the same generation but
    /// another file, is `StoreRolledBack` naming both generations, unless
    /// `accept`: then it is written again past the anchored generation
    /// (keys, grants and policies as the restored copy has them) and the
    /// acceptance is audited as `AcceptStoreRollback`.
    pub fn check_store_anchor(
        &self,
        caller: &Principal,
        anchored: Option<&StoreAnchor>,
        accept: bool,
    ) -> Result<AnchorCheck, KmsError> {
        let Some(anchored) = anchored else {
            return Ok(AnchorCheck::NoAnchor);
        };
        let store = self.store_anchor()?;
        if store.generation > anchored.generation || store == *anchored {
            return Ok(AnchorCheck::Current);
        }
        let path = self.dir().join(crate::store::STATE_FILE);
        if !accept {
            let what = if store.generation == anchored.generation {
                format!(
                    "is generation {} but not the file anchored for it in the signed digests \
                     of the audit trail",
                    store.generation
                )
            } else {
                format!(
                    "is generation {}, older than generation {} anchored in the signed \
                     digests of the audit trail",
                    store.generation, anchored.generation
                )
            };
            return Err(KmsError::StoreRolledBack(format!(
                "{} {what}: it was replaced by an older copy (revoked grants, disabled keys \
                 and old policies may be back); refusing to open it",
                path.display()
            )));
        }
        self.accept_rollback(caller, &store, anchored)
    }

    fn accept_rollback(
        &self,
        caller: &Principal,
        store: &StoreAnchor,
        anchored: &StoreAnchor,
    ) -> Result<AnchorCheck, KmsError> {
        self.audited(caller, "AcceptStoreRollback", |a| {
            a.request_parameters = Some(json!({
                "storeGeneration": store.generation,
                "storeSha256": store.sha256,
                "anchoredGeneration": anchored.generation,
                "anchoredSha256": anchored.sha256,
            }));
            let lock = self.files.lock()?;
            let cur = self.current_locked(&lock)?;
            let mut state = cur.state.clone();
            // Written as anchored + 1 (commit adds the one).
            state.generation = anchored.generation.max(cur.state.generation);
            self.commit(&lock, &cur, state)?;
            let now_generation = self.current()?.state.generation;
            Ok(AnchorCheck::RollbackAccepted {
                store_generation: store.generation,
                anchored_generation: anchored.generation,
                now_generation,
            })
        })
    }
}
