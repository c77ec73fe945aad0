//! Waiting for audit records to be durable without blocking a thread.
//!
//! By default ([`super::SyncMode::EveryRecord`]) a trail's `record()`
//! returns once the record is on disk, blocking its thread for the
//! `fdatasync`. A server on an async runtime runs a call inside
//! [`deferring`] instead: the records the call appends are written at once
//! (in order, hash-chained, as always) but their flush is not waited for;
//! the call's result comes back with an [`Unflushed`], and the server
//! answers only once [`Unflushed::then`] (or [`Unflushed::wait`]) says the
//! records are durable, answering with the flush's error if it failed. The
//! promise to the client is unchanged: no answer before its record is on
//! disk. One flush covers every record appended meanwhile (the trail's
//! group commit).

use super::error::AuditError;
use super::group::GroupCommit;
use crate::KmsError;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

struct Pending {
    group: Arc<GroupCommit>,
    ticket: u64,
    dir: PathBuf,
}

thread_local! {
    /// The records appended on this thread inside [`deferring`], not yet
    /// waited for; `None` outside it.
    static SCOPE: RefCell<Option<Vec<Pending>>> = const { RefCell::new(None) };
}

/// Audit records a call appended whose flush it did not wait for.
#[derive(Default)]
#[must_use = "an answer must wait until the call's audit records are durable"]
pub struct Unflushed {
    pending: Vec<Pending>,
}

impl std::fmt::Debug for Unflushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unflushed")
            .field("records", &self.pending.len())
            .finish()
    }
}

/// Runs `f` on this thread; a trail flushing every record does not wait for
/// the flush of the records `f` appends but returns them in the
/// [`Unflushed`] (other sinks, and a batched trail, behave as always).
pub fn deferring<T>(f: impl FnOnce() -> T) -> (T, Unflushed) {
    let outer = SCOPE.with(|s| s.replace(Some(Vec::new())));
    // Restores the enclosing scope even if `f` panics.
    struct Restore(Option<Option<Vec<Pending>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                SCOPE.with(|s| {
                    let mine = s.replace(outer);
                    // A panicking call's records are still flushed by the
                    // next flush; nothing waits for them.
                    drop(mine);
                });
            }
        }
    }
    let mut restore = Restore(Some(outer));
    let value = f();
    let outer = restore.0.take().unwrap_or_default();
    let mine = SCOPE.with(|s| s.replace(outer)).unwrap_or_default();
    (value, Unflushed::merged(mine))
}

/// Called by the trail after appending a record with `ticket`: true (and
/// the record is the caller's to wait for) inside [`deferring`].
pub(super) fn defer(group: &Arc<GroupCommit>, ticket: u64, dir: &std::path::Path) -> bool {
    SCOPE.with(|s| match s.borrow_mut().as_mut() {
        Some(v) => {
            v.push(Pending {
                group: Arc::clone(group),
                ticket,
                dir: dir.to_path_buf(),
            });
            true
        }
        None => false,
    })
}

impl Unflushed {
    /// One entry per trail, with its newest ticket.
    fn merged(all: Vec<Pending>) -> Unflushed {
        let mut pending: Vec<Pending> = Vec::new();
        for p in all {
            match pending.iter_mut().find(|q| Arc::ptr_eq(&q.group, &p.group)) {
                Some(q) => q.ticket = q.ticket.max(p.ticket),
                None => pending.push(p),
            }
        }
        Unflushed { pending }
    }

    /// True when nothing waits (no record, or records already waited for).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Runs `done` once every record is durable (`Ok`) or one of them
    /// cannot be made so (the flush's error). Runs it at once when there is
    /// nothing to wait for; otherwise on the thread that completed the
    /// flush, which must not be kept long.
    pub fn then(self, done: impl FnOnce(Result<(), KmsError>) + Send + 'static) {
        let mut pending = self.pending;
        match pending.pop() {
            None => done(Ok(())),
            Some(p) => {
                let rest = Unflushed { pending };
                let dir = p.dir;
                p.group.on_durable(
                    p.ticket,
                    Box::new(move |r| match r {
                        Ok(()) => rest.then(done),
                        Err(kind) => {
                            done(Err(AuditError::io("fdatasync", dir, kind.into()).into()))
                        }
                    }),
                );
            }
        }
    }

    /// Waits (asynchronously) until every record is durable.
    pub async fn wait(self) -> Result<(), KmsError> {
        if self.is_empty() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.then(move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or_else(|_| {
            Err(KmsError::Internal(
                "the audit trail closed before its records were flushed".into(),
            ))
        })
    }
}
