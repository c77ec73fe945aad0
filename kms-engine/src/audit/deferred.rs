//! A sink for the engine to be opened with before the trail's signing seed
//! (kept sealed in the engine's own store) is known: records fail until the
//! seed is attached, so nothing is ever used unaudited.
//!
//! ```text
//! let sink = Arc::new(DeferredTrail::new(engine_dir.join("audit"), TrailOptions::default()));
//! let engine = Engine::open(dir, root, clock, sink.clone())?;
//! sink.attach_seed(engine.audit_signing_seed()?)?;
//! ```

use super::error::AuditError;
use super::trail::{FileAuditTrail, TrailOptions};
use super::{AuditEvent, AuditSink, StoreAnchor};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

/// A [`FileAuditTrail`] opened once its seed is attached.
#[derive(Debug)]
pub struct DeferredTrail {
    dir: PathBuf,
    options: Mutex<Option<TrailOptions>>,
    trail: OnceLock<FileAuditTrail>,
}

impl DeferredTrail {
    pub fn new(dir: impl Into<PathBuf>, options: TrailOptions) -> DeferredTrail {
        DeferredTrail {
            dir: dir.into(),
            options: Mutex::new(Some(options)),
            trail: OnceLock::new(),
        }
    }

    /// Opens the trail with the engine's signing seed. A second call is a no-op.
    pub fn attach_seed(&self, seed: Zeroizing<[u8; 32]>) -> Result<(), AuditError> {
        let mut opts = match self.options.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if self.trail.get().is_some() {
            return Ok(());
        }
        let trail = FileAuditTrail::open(&self.dir, seed, opts.take().unwrap_or_default())?;
        let _ = self.trail.set(trail);
        Ok(())
    }

    /// The trail, once attached.
    pub fn trail(&self) -> Option<&FileAuditTrail> {
        self.trail.get()
    }
}

impl DeferredTrail {
    fn not_open(&self) -> crate::KmsError {
        crate::KmsError::Internal(format!(
            "audit record not written: the audit trail in {} is not open yet",
            self.dir.display()
        ))
    }
}

impl AuditSink for DeferredTrail {
    fn record(&self, event: &AuditEvent) -> Result<(), crate::KmsError> {
        match self.trail.get() {
            Some(t) => t.record(event),
            None => Err(self.not_open()),
        }
    }

    fn record_anchored(
        &self,
        event: &AuditEvent,
        store: &StoreAnchor,
    ) -> Result<(), crate::KmsError> {
        match self.trail.get() {
            Some(t) => t.record_anchored(event, store),
            None => Err(self.not_open()),
        }
    }

    fn sync(&self) -> Result<(), crate::KmsError> {
        match self.trail.get() {
            Some(t) => AuditSink::sync(t),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fail_until_the_seed_is_attached() {
        let d = tempfile::tempdir().unwrap();
        let sink = DeferredTrail::new(
            d.path(),
            TrailOptions {
                background: false,
                ..TrailOptions::default()
            },
        );
        let ev = AuditEvent {
            event_time: "2026-01-01T00:00:00Z".into(),
            event_name: "Decrypt".into(),
            principal: "uid:0".into(),
            invoked_by: None,
            key_id: None,
            encryption_context: None,
            request_id: "r".into(),
            error_code: None,
            error_message: None,
            request_parameters: None,
            access_key_id: None,
            source_ip_address: None,
            event_id: None,
        };
        assert!(sink.record(&ev).is_err());
        sink.attach_seed(Zeroizing::new([3u8; 32])).unwrap();
        sink.record(&ev).unwrap();
        assert_eq!(
            crate::audit::query::show(d.path(), &Default::default())
                .unwrap()
                .len(),
            1
        );
    }
}
