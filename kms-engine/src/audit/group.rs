//! Group commit of the fdatasync-per-record trail ([`super::SyncMode::EveryRecord`]):
//! concurrent appenders share one `fdatasync`.
//!
//! Each appended record gets a ticket, in the order the writes finished.
//! An appender waiting for its record to be durable either finds it already
//! flushed, or waits for the flush running, or (none running) becomes the
//! leader: it notes the newest ticket, runs one `fdatasync` and then
//! acknowledges every record up to that ticket. A record is therefore
//! acknowledged only after an `fdatasync` that started after its write had
//! finished.

use super::error::AuditError;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct GroupSync {
    /// Ticket of the newest record written (tickets number the appends in
    /// the order their writes finished).
    written: u64,
    /// The segment that record went to (older segments were flushed when
    /// the trail rotated away from them).
    file: Option<Arc<File>>,
    /// Every record with a ticket up to this one is durable.
    synced: u64,
    /// A leader's `fdatasync` is running.
    syncing: bool,
    /// Flushes run so far.
    flushes: u64,
    /// Set by a failed `fdatasync` (to `synced` at that time, and the error's
    /// kind): no record with a later ticket is acknowledged by this handle
    /// any more, since after a failed flush the kernel may have dropped the
    /// dirty pages and a later flush cannot vouch for them. Reopen the trail.
    failed_after: Option<(u64, std::io::ErrorKind)>,
}

/// The shared flush state of one trail handle.
#[derive(Debug, Default)]
pub(super) struct GroupCommit {
    state: Mutex<GroupSync>,
    flushed: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, GroupSync> {
        // Every update of GroupSync is a single consistent step, so a
        // poisoned lock still guards a valid state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a record whose write to `file` has just finished. Call while
    /// the writes are still ordered (under the trail's state lock).
    pub(super) fn written(&self, file: Option<Arc<File>>) -> u64 {
        let mut g = self.lock();
        g.written += 1;
        g.file = file;
        g.written
    }

    /// How many flushes have run.
    pub(super) fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// Returns once the record with `ticket` is durable: leads an
    /// `fdatasync` for everything written so far when none is running,
    /// otherwise waits for the running one and re-checks.
    pub(super) fn wait_durable(&self, ticket: u64, dir: &Path) -> Result<(), AuditError> {
        let mut g = self.lock();
        loop {
            if let Some((after, kind)) = g.failed_after
                && ticket > after
            {
                return Err(AuditError::io("fdatasync", dir, kind.into()));
            }
            if g.synced >= ticket {
                return Ok(());
            }
            if g.syncing {
                g = self.flushed.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Leader: every record up to `target` was completely written
            // before this flush starts.
            g.syncing = true;
            let target = g.written;
            let file = g.file.clone();
            drop(g);
            let res = file.map_or(Ok(()), |f| f.sync_data());
            g = self.lock();
            g.syncing = false;
            g.flushes += 1;
            match &res {
                Ok(()) => g.synced = g.synced.max(target),
                Err(e) => {
                    if g.failed_after.is_none() {
                        g.failed_after = Some((g.synced, e.kind()));
                    }
                }
            }
            self.flushed.notify_all();
            if let Err(e) = res {
                return Err(AuditError::io("fdatasync", dir, e));
            }
        }
    }
}
