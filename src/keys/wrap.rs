//! Wrapping new files' data keys in the background, so that a created file
//! does not wait for a round trip to a remote key service.
//!
//! # Design
//!
//! With a remote service (AWS KMS, a compatible endpoint) each GenerateDataKey
//! is a network round trip, and programs that create many files (tar, `cp
//! -r`, git) create them one after another: waiting for the service in
//! `create` makes the round trip the cost of every file. Instead the mount
//! makes the data key itself (32 random bytes, as the service would), writes
//! the file with a *key-pending* header (see `crate::format::header`), and
//! hands the key to a [`Wrapper`]: a pool of workers that call Encrypt (as
//! the file's creator, under the file's encryption context) and then run the
//! job's `finish`, which writes the final header. Many files' Encrypt calls
//! are then in flight at once, and the file's content is written meanwhile.
//!
//! A file is never durable without its wrapped key: `fsync` waits for the
//! key ([`Ticket::wait`]); `close` does not (its FLUSH returns at once, as
//! writes on a local filesystem reach the disk later too), and the mount's
//! end waits for every key still pending ([`Wrapper::shutdown`]). A crash
//! before the header was written leaves the key-pending header, which the
//! mount and `kmsfs fsck` report as a file whose content is lost (never as
//! wrong plaintext: nothing decrypts it).
//!
//! Failures: an unreachable service (`KMSUnavailableException`) is retried
//! (the file stays pending: fsync and other opens report EIO meanwhile)
//! until it answers or the mount ends; any other answer (AccessDenied, a
//! disabled key) fails the file for good: its opens and fsync report the
//! error, and one log line names it.

use crate::keys::{DataKeyBytes, KeyService};
use kms_engine::{EncryptionContext, KmsError, Principal};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many workers wrap, how many keys may wait, how long retries wait.
#[derive(Debug, Clone, Copy)]
pub struct WrapLimits {
    /// Encrypt calls in flight at once.
    pub workers: usize,
    /// Keys pending (queued or in flight) at most; a create waits for room.
    pub max_pending: usize,
    /// Delay before an unreachable service is asked again for a key.
    pub retry_delay: Duration,
}

impl Default for WrapLimits {
    fn default() -> Self {
        WrapLimits {
            workers: 32,
            max_pending: 4096,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// Counters for `kmsfs status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrapStats {
    /// Keys waiting for the service now.
    pub pending: u64,
    /// Keys wrapped and their headers written.
    pub wrapped: u64,
    /// Keys the service refused (or whose header could not be written).
    pub failed: u64,
}

/// What a worker does once the service wrapped the key: writes the file's
/// final header. An error fails the ticket with it.
pub type Finish = Box<dyn FnOnce(&[u8]) -> Result<(), KmsError> + Send>;

/// One new file's key to wrap.
pub struct WrapJob {
    /// The file's creator: the principal the service authorizes.
    pub caller: Principal,
    pub key_id: String,
    pub dek: DataKeyBytes,
    pub ctx: EncryptionContext,
    /// The key id the wrapped blob must name (the volume's bound key).
    pub expect_key_id: String,
    /// Names the file in log lines.
    pub what: String,
    pub finish: Finish,
}

impl std::fmt::Debug for WrapJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapJob")
            .field("what", &self.what)
            .field("dek", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum TicketState {
    Pending,
    Wrapped,
    Failed(KmsError),
}

/// The fate of one file's key: pending, wrapped (its final header written)
/// or failed.
#[derive(Debug)]
pub struct Ticket {
    state: Mutex<TicketState>,
    changed: Condvar,
}

impl Default for Ticket {
    fn default() -> Self {
        Ticket::new()
    }
}

impl Ticket {
    /// A pending ticket, to be handed to [`Wrapper::submit`] (or failed).
    pub fn new() -> Ticket {
        Ticket {
            state: Mutex::new(TicketState::Pending),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TicketState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, s: TicketState) {
        *self.lock() = s;
        self.changed.notify_all();
    }

    /// Marks the key failed with `e` (a job that was never queued).
    pub fn fail(&self, e: KmsError) {
        self.set(TicketState::Failed(e));
    }

    /// Marks the key wrapped (a job wrapped by its submitter, [`wrap_now`]).
    pub fn done(&self) {
        self.set(TicketState::Wrapped);
    }

    /// Whether the key is wrapped and the final header written.
    pub fn is_wrapped(&self) -> bool {
        matches!(*self.lock(), TicketState::Wrapped)
    }

    /// Whether the key is still waiting for the service.
    pub fn is_pending(&self) -> bool {
        matches!(*self.lock(), TicketState::Pending)
    }

    /// Waits up to `limit` for the key: `Ok` once the final header is
    /// written, the refusal when it failed, `KMSUnavailableException` when
    /// still pending after `limit` (the service does not answer).
    pub fn wait(&self, limit: Duration) -> Result<(), KmsError> {
        let deadline = Instant::now() + limit;
        let mut s = self.lock();
        loop {
            match &*s {
                TicketState::Wrapped => return Ok(()),
                TicketState::Failed(e) => return Err(e.clone()),
                TicketState::Pending => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(KmsError::Unavailable(format!(
                    "the file's data key is not wrapped yet after {limit:?}"
                )));
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

struct Queued {
    ticket: Arc<Ticket>,
    job: WrapJob,
    not_before: Instant,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    /// Jobs taken by a worker and not done yet.
    running: usize,
    closing: bool,
}

struct Shared {
    keys: Arc<dyn KeyService>,
    limits: WrapLimits,
    queue: Mutex<Queue>,
    /// A job was queued, or the pool is closing.
    work: Condvar,
    /// A job finished (room in the queue; maybe idle).
    done: Condvar,
    wrapped: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pool of workers wrapping new files' keys (see the module docs).
pub struct Wrapper {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapper")
            .field("limits", &self.shared.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Wrapper {
    /// Starts `limits.workers` workers calling Encrypt on `keys`.
    pub fn start(keys: Arc<dyn KeyService>, limits: WrapLimits) -> std::io::Result<Wrapper> {
        let shared = Arc::new(Shared {
            keys,
            limits,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            wrapped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let mut workers = Vec::new();
        for n in 0..limits.workers.max(1) {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("kmsfs-wrap-{n}"))
                .spawn(move || worker(&s));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    let w = Wrapper {
                        shared,
                        workers: Mutex::new(workers),
                    };
                    w.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(Wrapper {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Queues `job`, whose outcome `ticket` will tell; waits up to `limit`
    /// for room. The job comes back when there is none (or the pool is
    /// closing): the caller then wraps the key itself ([`wrap_now`]).
    pub fn submit(
        &self,
        ticket: Arc<Ticket>,
        job: WrapJob,
        limit: Duration,
    ) -> Result<(), Box<WrapJob>> {
        let deadline = Instant::now() + limit;
        let mut q = self.shared.queue();
        while q.jobs.len() + q.running >= self.shared.limits.max_pending.max(1) && !q.closing {
            let now = Instant::now();
            if now >= deadline {
                return Err(Box::new(job));
            }
            q = self
                .shared
                .done
                .wait_timeout(q, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if q.closing {
            return Err(Box::new(job));
        }
        q.jobs.push_back(Queued {
            ticket,
            job,
            not_before: Instant::now(),
        });
        drop(q);
        self.shared.work.notify_one();
        Ok(())
    }

    pub fn stats(&self) -> WrapStats {
        let q = self.shared.queue();
        WrapStats {
            pending: (q.jobs.len() + q.running) as u64,
            wrapped: self.shared.wrapped.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }

    /// Wraps every key still pending (one more attempt each for those
    /// waiting to retry) and stops the workers; what then still failed is
    /// logged. Idempotent; also run on drop.
    pub fn shutdown(&self) {
        self.shared.queue().closing = true;
        self.shared.work.notify_all();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Takes jobs until the pool closes and the queue is empty.
fn worker(s: &Shared) {
    loop {
        let mut q = s.queue();
        let item = loop {
            let now = Instant::now();
            // The first job that is due (or any, when closing: one last try).
            let due = q.jobs.iter().position(|j| q.closing || j.not_before <= now);
            if let Some(i) = due {
                break q.jobs.remove(i);
            }
            if q.closing && q.jobs.is_empty() {
                return;
            }
            let wait = q
                .jobs
                .iter()
                .map(|j| j.not_before.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_secs(3600));
            q = s
                .work
                .wait_timeout(q, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        let Some(item) = item else { continue };
        q.running += 1;
        let closing = q.closing;
        drop(q);
        let requeue = run(s, item, closing);
        let mut q = s.queue();
        q.running -= 1;
        if let Some(item) = requeue {
            q.jobs.push_back(item);
            drop(q);
            s.work.notify_one();
        } else {
            drop(q);
        }
        s.done.notify_all();
    }
}

/// Wraps `job`'s key now, in this thread: Encrypt, the key check, then
/// `finish`.
pub fn wrap_now(keys: &dyn KeyService, job: WrapJob) -> Result<(), KmsError> {
    let wrapped = keys.encrypt_data_key(&job.caller, &job.key_id, &job.dek, &job.ctx)?;
    let wrapped = check_key(keys, &job, wrapped)?;
    (job.finish)(&wrapped)
}

/// One attempt at `item`'s key; returns it to be queued again when the
/// service was unreachable and the pool is not closing.
fn run(s: &Shared, item: Queued, closing: bool) -> Option<Queued> {
    let job = &item.job;
    let result = s
        .keys
        .encrypt_data_key(&job.caller, &job.key_id, &job.dek, &job.ctx)
        .and_then(|wrapped| check_key(&*s.keys, job, wrapped));
    let result = match result {
        Ok(wrapped) => {
            let Queued { ticket, job, .. } = item;
            let what = job.what.clone();
            let r = (job.finish)(&wrapped);
            return finished(s, &ticket, &what, r);
        }
        Err(e) => e,
    };
    if matches!(result, KmsError::Unavailable(_)) && !closing {
        return Some(Queued {
            not_before: Instant::now() + s.limits.retry_delay,
            ..item
        });
    }
    let Queued { ticket, job, .. } = item;
    finished(s, &ticket, &job.what, Err(result))
}

/// The wrapped blob, if the service wrapped it under the volume's key.
fn check_key(keys: &dyn KeyService, job: &WrapJob, wrapped: Vec<u8>) -> Result<Vec<u8>, KmsError> {
    let got = keys.wrapping_key_id(&wrapped)?;
    if got == job.expect_key_id {
        Ok(wrapped)
    } else {
        Err(KmsError::Internal(format!(
            "the service wrapped the data key under key {got}, not the volume's {}",
            job.expect_key_id
        )))
    }
}

/// Records the outcome on the ticket; never requeues.
fn finished(s: &Shared, ticket: &Ticket, what: &str, r: Result<(), KmsError>) -> Option<Queued> {
    match r {
        Ok(()) => {
            s.wrapped.fetch_add(1, Ordering::Relaxed);
            ticket.set(TicketState::Wrapped);
        }
        Err(e) => {
            s.failed.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "{what}: its data key could not be wrapped ({e}): the file cannot be made \
                 durable and its content is lost once it is no longer open"
            );
            ticket.set(TicketState::Failed(e));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::GeneratedDataKey;
    use std::sync::atomic::AtomicBool;

    /// Wraps by reversing; unreachable while `down`, refuses while `deny`.
    #[derive(Default)]
    struct Fake {
        down: AtomicBool,
        deny: AtomicBool,
        calls: AtomicU64,
    }

    impl KeyService for Fake {
        fn generate_data_key(
            &self,
            _: &Principal,
            _: &str,
            _: &EncryptionContext,
        ) -> Result<GeneratedDataKey, KmsError> {
            Err(KmsError::Internal("not used".into()))
        }
        fn encrypt_data_key(
            &self,
            _: &Principal,
            _: &str,
            plaintext: &DataKeyBytes,
            _: &EncryptionContext,
        ) -> Result<Vec<u8>, KmsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(KmsError::Unavailable("down".into()));
            }
            if self.deny.load(Ordering::SeqCst) {
                return Err(KmsError::AccessDenied("no".into()));
            }
            Ok(plaintext.iter().rev().copied().collect())
        }
        fn decrypt_data_key(
            &self,
            _: &Principal,
            _: &[u8],
            _: &EncryptionContext,
        ) -> Result<DataKeyBytes, KmsError> {
            Err(KmsError::Internal("not used".into()))
        }
        fn rewrap_data_key(
            &self,
            _: &Principal,
            _: &[u8],
            _: &EncryptionContext,
            _: &EncryptionContext,
        ) -> Result<Vec<u8>, KmsError> {
            Err(KmsError::Internal("not used".into()))
        }
        fn wrapping_key_id(&self, _: &[u8]) -> Result<String, KmsError> {
            Ok("k".into())
        }
    }

    fn job(n: u8, out: Arc<Mutex<Vec<Vec<u8>>>>) -> WrapJob {
        let mut dek = [0u8; 32];
        dek[0] = n;
        WrapJob {
            caller: Principal::from_ids(1000, 1000, vec![]),
            key_id: "k".into(),
            dek: DataKeyBytes::new(dek),
            ctx: EncryptionContext::new(),
            expect_key_id: "k".into(),
            what: format!("/f{n}"),
            finish: Box::new(move |w| {
                out.lock().unwrap().push(w.to_vec());
                Ok(())
            }),
        }
    }

    fn submit(w: &Wrapper, j: WrapJob, limit: Duration) -> Result<Arc<Ticket>, Box<WrapJob>> {
        let t = Arc::new(Ticket::new());
        w.submit(t.clone(), j, limit).map(|()| t)
    }

    fn limits() -> WrapLimits {
        WrapLimits {
            workers: 4,
            max_pending: 8,
            retry_delay: Duration::from_millis(10),
        }
    }

    #[test]
    fn every_key_is_wrapped_and_finished_once() {
        let fake = Arc::new(Fake::default());
        let w = Wrapper::start(fake.clone(), limits()).unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<_> = (0..50u8)
            .map(|n| submit(&w, job(n, out.clone()), Duration::from_secs(10)).unwrap())
            .collect();
        for t in &tickets {
            t.wait(Duration::from_secs(10)).unwrap();
        }
        let mut got: Vec<u8> = out.lock().unwrap().iter().map(|w| w[31]).collect();
        got.sort_unstable();
        assert_eq!(got, (0..50).collect::<Vec<u8>>());
        assert_eq!(
            w.stats(),
            WrapStats {
                pending: 0,
                wrapped: 50,
                failed: 0
            }
        );
    }

    #[test]
    fn an_unreachable_service_is_retried_and_shutdown_waits_for_it() {
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::SeqCst);
        let w = Wrapper::start(fake.clone(), limits()).unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let t = submit(&w, job(1, out.clone()), Duration::from_secs(1)).unwrap();
        let e = t.wait(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, KmsError::Unavailable(_)), "{e:?}");
        assert!(t.is_pending());
        assert!(fake.calls.load(Ordering::SeqCst) >= 2);
        fake.down.store(false, Ordering::SeqCst);
        t.wait(Duration::from_secs(10)).unwrap();
        assert!(t.is_wrapped());
        // Shutdown gives a key that waits to retry one last attempt.
        fake.down.store(true, Ordering::SeqCst);
        let t2 = submit(&w, job(2, out.clone()), Duration::from_secs(1)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        fake.down.store(false, Ordering::SeqCst);
        w.shutdown();
        assert!(t2.is_wrapped());
        assert_eq!(out.lock().unwrap().len(), 2);
        // A closed pool takes no more jobs.
        assert!(submit(&w, job(3, out), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_refusal_fails_the_key_for_good() {
        let fake = Arc::new(Fake::default());
        fake.deny.store(true, Ordering::SeqCst);
        let w = Wrapper::start(fake.clone(), limits()).unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let t = submit(&w, job(1, out.clone()), Duration::from_secs(1)).unwrap();
        let e = t.wait(Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, KmsError::AccessDenied(_)), "{e:?}");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert!(out.lock().unwrap().is_empty());
        assert_eq!(w.stats().failed, 1);
    }

    #[test]
    fn a_full_queue_makes_submit_give_the_job_back() {
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::SeqCst);
        let w = Wrapper::start(fake, limits()).unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        for n in 0..8 {
            submit(&w, job(n, out.clone()), Duration::from_secs(1)).unwrap();
        }
        let back = submit(&w, job(9, out), Duration::from_millis(50));
        assert_eq!(back.map(|_| ()).unwrap_err().what, "/f9");
    }
}
