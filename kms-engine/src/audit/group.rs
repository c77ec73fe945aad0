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
//!
//! A caller that must not block (a request served on an async runtime,
//! see [`super::durable`]) registers a callback for its ticket instead; a
//! flusher thread of the trail then leads the flushes those callbacks wait
//! for, one `fdatasync` for every record appended meanwhile, and runs each
//! callback once its record is durable (or failed to be). When flushes are
//! measured fast (RAM-backed storage: under [`FAST_FLUSH_NS`] on average)
//! and none is running, the registering caller runs the flush itself.

use super::error::AuditError;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Called once a record is durable (`Ok`) or can no longer be made so.
pub(super) type Callback = Box<dyn FnOnce(Result<(), std::io::ErrorKind>) + Send>;

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
    /// Callbacks waiting for their ticket, in ticket order.
    waiters: Vec<(u64, Callback)>,
    /// The flusher thread, once a callback was registered.
    flusher: Option<JoinHandle<()>>,
    /// Set when the trail closes: the flusher finishes the callbacks
    /// waiting and exits.
    stop: bool,
    /// Moving average of recent flush times (ns); starts slow.
    flush_ns: u64,
}

/// Flushes faster than this on average (a RAM-backed or battery-backed
/// disk) are run by the registering caller itself: cheaper than waking
/// the flusher thread. Slower ones are the flusher thread's.
const FAST_FLUSH_NS: u64 = 50_000;

impl Default for GroupSync {
    fn default() -> Self {
        GroupSync {
            written: 0,
            file: None,
            synced: 0,
            syncing: false,
            flushes: 0,
            failed_after: None,
            waiters: Vec::new(),
            flusher: None,
            stop: false,
            flush_ns: FAST_FLUSH_NS * 4,
        }
    }
}

impl std::fmt::Debug for GroupSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSync")
            .field("written", &self.written)
            .field("synced", &self.synced)
            .field("syncing", &self.syncing)
            .field("flushes", &self.flushes)
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

/// The shared flush state of one trail handle.
#[derive(Debug, Default)]
pub(super) struct GroupCommit {
    state: Mutex<GroupSync>,
    /// Signalled after every flush (for blocked appenders).
    flushed: Condvar,
    /// Signalled when a callback is registered (for the flusher thread).
    work: Condvar,
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
        self.wait_ticket(ticket)
            .map_err(|e| AuditError::io("fdatasync", dir, e))
    }

    fn wait_ticket(&self, ticket: u64) -> std::io::Result<()> {
        let mut g = self.lock();
        loop {
            if let Some((after, kind)) = g.failed_after
                && ticket > after
            {
                return Err(kind.into());
            }
            if g.synced >= ticket {
                return Ok(());
            }
            if g.syncing {
                g = self.flushed.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let (guard, res) = self.lead(g);
            g = guard;
            res?;
        }
    }

    /// Runs `done` once the record with `ticket` is durable (at once, on
    /// this thread, when it already is or can no longer be). The flush is
    /// led by a blocked appender or by the flusher thread, which is started
    /// by the first call.
    pub(super) fn on_durable(self: &Arc<Self>, ticket: u64, done: Callback) {
        let mut g = self.lock();
        if let Some((after, kind)) = g.failed_after
            && ticket > after
        {
            drop(g);
            return done(Err(kind));
        }
        if g.synced >= ticket {
            drop(g);
            return done(Ok(()));
        }
        if !g.syncing && g.waiters.is_empty() && g.flush_ns < FAST_FLUSH_NS {
            g.waiters.push((ticket, done));
            drop(self.lead(g));
            return;
        }
        if g.flusher.is_none() && !g.stop {
            let me = Arc::clone(self);
            match std::thread::Builder::new()
                .name("kmsfs-audit-sync".into())
                .spawn(move || me.run_flusher())
            {
                Ok(h) => g.flusher = Some(h),
                Err(e) => log::warn!("audit trail: cannot start its flusher thread: {e}"),
            }
        }
        if g.flusher.is_none() {
            // No thread (stopped, or none could start): wait here,
            // blocking but correct.
            drop(g);
            return done(self.wait_ticket(ticket).map_err(|e| e.kind()));
        }
        g.waiters.push((ticket, done));
        if !g.syncing {
            self.work.notify_one();
        }
    }

    /// The flusher thread: leads a flush whenever callbacks wait and no
    /// other flush is running.
    fn run_flusher(self: Arc<Self>) {
        let mut g = self.lock();
        loop {
            while (g.waiters.is_empty() || g.syncing) && !g.stop {
                g = self.work.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            if g.waiters.is_empty() {
                return;
            }
            if g.syncing {
                // Stopping while an appender leads: its flush ends the wait.
                g = self.flushed.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            g = self.lead(g).0;
        }
    }

    /// Leads one flush (the caller saw none running): every record written
    /// before it starts is durable once it succeeds. Acknowledges the
    /// blocked appenders and the callbacks it covers; returns the lock
    /// again and the flush's result.
    fn lead<'a>(
        &'a self,
        mut g: MutexGuard<'a, GroupSync>,
    ) -> (MutexGuard<'a, GroupSync>, std::io::Result<()>) {
        g.syncing = true;
        // Every record up to `target` was completely written before this
        // flush starts.
        let target = g.written;
        let file = g.file.clone();
        drop(g);
        let started = std::time::Instant::now();
        let res = file.map_or(Ok(()), |f| f.sync_data());
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut g = self.lock();
        g.syncing = false;
        g.flushes += 1;
        g.flush_ns = (g.flush_ns.saturating_mul(7) / 8).saturating_add(took / 8);
        match &res {
            Ok(()) => g.synced = g.synced.max(target),
            Err(e) => {
                if g.failed_after.is_none() {
                    g.failed_after = Some((g.synced, e.kind()));
                }
            }
        }
        let (synced, failed) = (g.synced, g.failed_after);
        let ready: Vec<(u64, Callback)> = {
            let (ready, waiting) = std::mem::take(&mut g.waiters)
                .into_iter()
                .partition(|(t, _)| *t <= synced || failed.is_some_and(|(after, _)| *t > after));
            g.waiters = waiting;
            ready
        };
        self.flushed.notify_all();
        if !g.waiters.is_empty() {
            self.work.notify_one();
        }
        if !ready.is_empty() {
            drop(g);
            for (t, done) in ready {
                done(if t <= synced {
                    Ok(())
                } else {
                    Err(failed.map_or(std::io::ErrorKind::Other, |f| f.1))
                });
            }
            g = self.lock();
        }
        (g, res)
    }

    /// Stops the flusher thread once every callback registered is answered.
    pub(super) fn stop(&self) {
        let handle = {
            let mut g = self.lock();
            g.stop = true;
            self.work.notify_all();
            g.flusher.take()
        };
        // Not joined from the flusher itself (a callback that dropped the
        // last handle of the trail): it exits once its callbacks are done.
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}
