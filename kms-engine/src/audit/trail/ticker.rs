//! The trail's background thread: writes the digests and (batched
//! trails) the flushes that appenders found due, so that no call waits for
//! a signature or an `fsync` it did not ask for, and seals an idle trail.

use super::{AuditError, Inner, SyncMode, lock_file};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the background thread is woken for.
#[derive(Debug, Default)]
pub(super) struct Signal {
    pub(super) stop: bool,
    /// Appenders asked for work (a digest or a flush) before its period.
    pub(super) work: bool,
}

impl Inner {
    /// Asks the background thread for the work appenders found due.
    pub(super) fn wake_ticker(&self) {
        let (m, cv) = &self.signal;
        if let Ok(mut s) = m.lock() {
            s.work = true;
        }
        cv.notify_one();
    }

    pub(super) fn run_ticker(self: Arc<Self>) {
        let period = match self.opts.sync {
            SyncMode::Batched { max_delay, .. } => max_delay.min(self.opts.digest_every),
            SyncMode::EveryRecord => self.opts.digest_every,
        }
        .max(Duration::from_millis(10));
        let (m, cv) = &self.signal;
        let Ok(mut sig) = m.lock() else { return };
        loop {
            // Checked before waiting too: a stop requested before this
            // thread first took the lock must not wait out a whole period.
            if sig.stop {
                return;
            }
            if !sig.work {
                match cv.wait_timeout(sig, period) {
                    Ok((g, _)) => sig = g,
                    Err(_) => return,
                }
                if sig.stop {
                    return;
                }
            }
            sig.work = false;
            drop(sig);
            if let Err(e) = self.tick() {
                log::warn!("audit trail {}: {e}", self.dir.display());
            }
            sig = match m.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
        }
    }

    /// The background thread's work: a batched flush that is due (run
    /// without the state lock, so appenders go on meanwhile), and a digest
    /// that is due.
    fn tick(&self) -> Result<(), AuditError> {
        let dirty = {
            let mut st = self.lock_state();
            match self.opts.sync {
                SyncMode::Batched { max_delay, .. }
                    if st.unsynced > 0
                        && (st.flush_requested || st.last_sync.elapsed() >= max_delay) =>
                {
                    st.unsynced = 0;
                    st.last_sync = Instant::now();
                    st.flush_requested = false;
                    st.dirty.take().map(|f| (f, st.appended))
                }
                _ => None,
            }
        };
        if let Some((f, upto)) = dirty {
            self.flush_batch(&f, upto)?;
        }
        let mut st = self.lock_state();
        if st.unsealed > 0
            && (st.seal_requested || st.last_seal.elapsed() >= self.opts.digest_every)
        {
            self.flush(&mut st)?;
            let st = &mut *st;
            let _g = lock_file(&self.lock, &self.dir)?;
            self.refresh_head(&mut st.head)?;
            self.write_digest(st)?;
        }
        Ok(())
    }
}
