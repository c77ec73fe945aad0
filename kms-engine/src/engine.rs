//! The engine: opens the sealed store, keeps an in-memory snapshot of the
//! state with ready-to-use AEAD keys, serializes writers (in-process and
//! across processes), applies what fell due, authorizes and audits calls.

use crate::asym::Loaded;
use crate::audit::{AuditEvent, AuditSink, StoreAnchor};
use crate::context::EncryptionContext;
use crate::grant::Grant;
use crate::ids::{KeyId, new_request_id};
use crate::key::KeyRecord;
use crate::policy::{Decision, DecisionReason, Policy, RequestContext, evaluate_with_grants};
use crate::principal::ON_BEHALF_OF_ACTION;
use crate::state::State;
use crate::store::format::{RootParams, STORE_VERSION, StoreHeader, open_file, seal_file};
use crate::store::root::{self, KdfParams, RootKeySource};
use crate::store::{Fingerprint, StoreFiles, WriteLock};
use crate::usage::{LastUse, TRACKED_OPERATIONS, UsageTracker};
use crate::wire::SYMMETRIC_DEFAULT;
use crate::{Clock, KmsError, Principal};
use aws_lc_rs::aead::LessSafeKey;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Default interval between checks of the on-disk store by read-only ops.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// An immutable view of the state plus precomputed AEAD keys.
pub(crate) struct Snapshot {
    pub state: State,
    /// Each key's policy, parsed once per state change (absent when the
    /// stored document does not parse; authorization then parses it again
    /// and reports why).
    pub policies: HashMap<KeyId, Arc<Policy>>,
    pub ciphers: HashMap<(KeyId, u32), Arc<LessSafeKey>>,
    /// Asymmetric and HMAC keys, parsed (their single version).
    pub loaded: HashMap<KeyId, Arc<Loaded>>,
    pub fingerprint: Fingerprint,
    /// The header of the file this state was read from or written as (it
    /// changes when any process changes the root key).
    pub header: StoreHeader,
    pub next_due: Option<i64>,
    /// The generation and SHA-256 of the file this state came from.
    pub anchor: StoreAnchor,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.state.generation)
            .field("keys", &self.state.keys.len())
            .field("format", &self.header.version())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn build(
        state: State,
        (fingerprint, file): (Fingerprint, &[u8]),
        header: StoreHeader,
        old: Option<&Snapshot>,
    ) -> Result<Snapshot, KmsError> {
        let anchor = StoreAnchor::of_file(state.generation, file);
        let mut ciphers = HashMap::new();
        let mut loaded = HashMap::new();
        let mut policies = HashMap::new();
        for k in state.keys.values() {
            let reuse = old.and_then(|o| {
                let same = o.state.keys.get(&k.id)?.policy == k.policy;
                same.then(|| o.policies.get(&k.id).cloned()).flatten()
            });
            if let Some(p) = reuse.or_else(|| Policy::parse(&k.policy).ok().map(Arc::new)) {
                policies.insert(k.id, p);
            }
            for v in &k.versions {
                let Some(m) = v.material.symmetric() else {
                    let l = match old.and_then(|o| o.loaded.get(&k.id)) {
                        Some(l) => l.clone(),
                        None => Arc::new(Loaded::load(k.spec, k.usage, &v.material)?),
                    };
                    loaded.insert(k.id, l);
                    continue;
                };
                let slot = (k.id, v.version);
                let c = match old.and_then(|o| o.ciphers.get(&slot)) {
                    Some(c) => c.clone(),
                    None => Arc::new(crate::blob::aead_key(m.bytes())?),
                };
                ciphers.insert(slot, c);
            }
        }
        let next_due = state.next_due();
        Ok(Snapshot {
            state,
            policies,
            ciphers,
            loaded,
            fingerprint,
            header,
            next_due,
            anchor,
        })
    }

    /// Resolves a key id, key ARN, alias name or alias ARN.
    pub fn resolve(&self, key_id: &str) -> Result<&KeyRecord, KmsError> {
        self.state.resolve(key_id)
    }

    /// The parsed policy of `k` (cached when `k` is this snapshot's record).
    pub fn policy_of(&self, k: &KeyRecord) -> Result<Arc<Policy>, KmsError> {
        match self.policies.get(&k.id) {
            Some(p)
                if self
                    .state
                    .keys
                    .get(&k.id)
                    .is_some_and(|r| r.policy == k.policy) =>
            {
                Ok(p.clone())
            }
            _ => Policy::parse(&k.policy).map(Arc::new),
        }
    }

    /// The grants on `k`.
    pub fn grants_of(&self, k: &KeyRecord) -> &[Grant] {
        self.state.grants.get(&k.id).map_or(&[], Vec::as_slice)
    }

    pub fn cipher(&self, id: KeyId, version: u32) -> Option<&Arc<LessSafeKey>> {
        self.ciphers.get(&(id, version))
    }

    /// The parsed asymmetric or HMAC key of `k`.
    pub fn loaded(&self, k: &KeyRecord) -> Result<&Arc<Loaded>, KmsError> {
        self.loaded
            .get(&k.id)
            .ok_or_else(|| KmsError::Internal(format!("key {} has no loaded key", k.id)))
    }
}

/// The algorithm condition keys a request sets (None: not in the request).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Algorithms<'a> {
    pub encryption: Option<&'a str>,
    pub signing: Option<&'a str>,
    pub mac: Option<&'a str>,
    pub key_agreement: Option<&'a str>,
    pub message_type: Option<&'a str>,
    pub data_key_pair_spec: Option<&'a str>,
    /// GetParametersForImport.
    pub wrapping_algorithm: Option<&'a str>,
    pub wrapping_key_spec: Option<&'a str>,
    /// ImportKeyMaterial.
    pub expiration_model: Option<&'a str>,
    pub valid_to: Option<i64>,
}

/// What an op reports about itself for its audit record.
#[derive(Debug, Default)]
pub(crate) struct AuditInfo {
    pub key_id: Option<String>,
    pub encryption_context: Option<EncryptionContext>,
    pub request_parameters: Option<serde_json::Value>,
    /// Every key the call named, in order (a successful cryptographic
    /// operation used them all: GetKeyLastUsage).
    pub touched: Vec<KeyId>,
}

impl AuditInfo {
    pub fn key(&mut self, k: &KeyRecord) {
        self.key_id = Some(k.id.to_string());
        if !self.touched.contains(&k.id) {
            self.touched.push(k.id);
        }
    }
    pub fn context(&mut self, ctx: &EncryptionContext) {
        if !ctx.is_empty() {
            self.encryption_context = Some(ctx.clone());
        }
    }
}

/// Where a call came from beyond its principal, for its audit record: the
/// access key that signed it and the client's address (HTTPS endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOrigin {
    pub access_key_id: Option<String>,
    pub source_address: Option<String>,
}

thread_local! {
    /// The origin of the call this thread is running (set by
    /// [`Engine::dispatch_from`] for the duration of one call; operations
    /// are synchronous, so their audit record is written on this thread).
    static ORIGIN: std::cell::RefCell<Option<CallOrigin>> = const { std::cell::RefCell::new(None) };
}

/// Sets this thread's call origin until dropped.
pub(crate) struct OriginGuard(Option<CallOrigin>);

impl OriginGuard {
    pub(crate) fn set(origin: &CallOrigin) -> OriginGuard {
        OriginGuard(ORIGIN.with(|o| o.replace(Some(origin.clone()))))
    }
}

impl Drop for OriginGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        ORIGIN.with(|o| *o.borrow_mut() = previous);
    }
}

/// A local key management engine over one store directory. `Send + Sync`;
/// share it (e.g. in an `Arc`) between threads.
pub struct Engine {
    pub(crate) files: StoreFiles,
    /// The key the state is sealed under; it outlives root-key changes, so
    /// this engine keeps reading and writing the store after another
    /// process changed the root key.
    store_key: Zeroizing<[u8; 32]>,
    /// For a store opened in an older format (1 to 4): the header of the
    /// current format its first write uses (the store key wrapped under the
    /// root key it was opened with).
    conversion: Option<StoreHeader>,
    snap: RwLock<Arc<Snapshot>>,
    refresh_guard: Mutex<()>,
    started: Instant,
    last_refresh_ns: AtomicU64,
    refresh_interval_ns: AtomicU64,
    pub(crate) clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
    /// Set by every store write: the next audit record anchors the store's
    /// new generation in the audit trail (see [`AuditSink::record_anchored`]).
    anchor_due: AtomicBool,
    /// Each key's last cryptographic use (GetKeyLastUsage).
    pub(crate) usage: UsageTracker,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.files.dir())
            .field("store_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Creates a new store in `dir` (created 0700 if missing). Fails with
    /// `AlreadyExists` if a store is there.
    pub fn create(
        dir: &Path,
        root: RootKeySource,
        kdf: KdfParams,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Engine, KmsError> {
        let files = StoreFiles::open_dir(dir, true)?;
        let params = RootParams::fresh(root::kind_of(&root), kdf)?;
        let root_key = root::root_key(&root, params.kdf, &params.salt)?;
        let mut store_key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(store_key.as_mut())
            .map_err(|_| KmsError::Internal("random source failed".into()))?;
        let header = StoreHeader::wrap(params, &root_key, &store_key)?;
        let lock = files.lock()?;
        if files.exists() {
            return Err(KmsError::AlreadyExists(format!(
                "an engine store already exists in {}",
                dir.display()
            )));
        }
        let mut state = State::new()?;
        state.generation = 1;
        let bytes = seal_file(&header, &store_key, &state.encode()?)?;
        let fp = files.write_atomic(&lock, &bytes)?;
        drop(lock);
        let snap = Snapshot::build(state, (fp, &bytes), header, None)?;
        let engine = Self::assemble(files, store_key, None, snap, clock, audit);
        engine.usage.start(&engine.files, engine.clock.now_unix())?;
        Ok(engine)
    }

    /// Opens the store in `dir`. A wrong passphrase or key file gives
    /// `WrongPassphrase` and changes nothing; a damaged store gives
    /// `StoreCorrupted`.
    pub fn open(
        dir: &Path,
        root: RootKeySource,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Engine, KmsError> {
        let files = StoreFiles::open_dir(dir, false)?;
        let (bytes, fp) = files.read()?;
        let header = StoreHeader::decode(&bytes)?;
        let root_key = root_key_for(header.root(), &root)?;
        let store_key = header.unlock(&root_key)?;
        let conversion = if header.version() == STORE_VERSION {
            None
        } else {
            Some(StoreHeader::wrap(*header.root(), &root_key, &store_key)?)
        };
        drop(root_key);
        let state = State::decode(&open_file(&store_key, &bytes)?, header.version())?;
        let snap = Snapshot::build(state, (fp, &bytes), header, None)?;
        let engine = Self::assemble(files, store_key, conversion, snap, clock, audit);
        {
            let lock = engine.files.lock()?;
            engine.files.remove_stale_temps(&lock)?;
        }
        // Key usage tracking starts at the first open of a store made
        // before it existed; a store directory this process cannot write
        // (a read-only copy) still opens.
        if let Err(e) = engine.usage.start(&engine.files, engine.clock.now_unix()) {
            log::warn!("key usage tracking not started: {e}");
        }
        Ok(engine)
    }

    fn assemble(
        files: StoreFiles,
        store_key: Zeroizing<[u8; 32]>,
        conversion: Option<StoreHeader>,
        snap: Snapshot,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Engine {
        Engine {
            files,
            store_key,
            conversion,
            snap: RwLock::new(Arc::new(snap)),
            refresh_guard: Mutex::new(()),
            started: Instant::now(),
            last_refresh_ns: AtomicU64::new(0),
            refresh_interval_ns: AtomicU64::new(DEFAULT_REFRESH_INTERVAL.as_nanos() as u64),
            clock,
            audit,
            anchor_due: AtomicBool::new(false),
            usage: UsageTracker::default(),
        }
    }

    /// How often read-only ops (Encrypt, Decrypt, GenerateDataKey,
    /// DescribeKey ...) check the on-disk store for another process's change.
    pub fn set_refresh_interval(&self, interval: Duration) {
        let ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        self.refresh_interval_ns.store(ns, Ordering::Relaxed);
    }

    /// Builder form of [`Engine::set_refresh_interval`].
    pub fn with_refresh_interval(self, interval: Duration) -> Engine {
        self.set_refresh_interval(interval);
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        self.files.dir()
    }

    /// A key for the engine's own tokens: HMAC-SHA256(store key, `label`).
    /// It lasts as long as the store key (root-key changes keep it).
    pub(crate) fn derived_key(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.store_key[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(aws_lc_rs::hmac::sign(&k, label).as_ref());
        out
    }

    /// Whether `key` is this engine's store key (constant time).
    pub(crate) fn is_store_key(&self, key: &[u8; 32]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(key, &self.store_key[..]).is_ok()
    }

    /// True when the next audit record seals a store write with a digest
    /// (a signature and fsyncs on the calling thread): servers run such a
    /// call where blocking is harmless.
    pub fn audit_anchor_pending(&self) -> bool {
        self.anchor_due.load(Ordering::Acquire)
    }

    /// Makes every audit record written so far durable (see
    /// [`AuditSink::sync`]): what a caller does before it reports data
    /// durable whose keys those records account for.
    pub fn sync_audit(&self) -> Result<(), KmsError> {
        self.audit.sync()
    }

    /// The 32-byte seed of the audit trail's signing key, generated at
    /// create and kept sealed in the store.
    pub fn audit_signing_seed(&self) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let snap = self.current()?;
        Ok(snap.state.audit_seed.0.clone())
    }

    /// The current snapshot (no refresh, no housekeeping).
    pub(crate) fn current(&self) -> Result<Arc<Snapshot>, KmsError> {
        self.snap
            .read()
            .map(|s| s.clone())
            .map_err(|_| KmsError::Internal("engine state lock poisoned".into()))
    }

    fn install(&self, snap: Snapshot) -> Result<Arc<Snapshot>, KmsError> {
        let mut w = self
            .snap
            .write()
            .map_err(|_| KmsError::Internal("engine state lock poisoned".into()))?;
        // Never go back to an older generation (a refresher may race a writer).
        if snap.state.generation > w.state.generation {
            *w = Arc::new(snap);
        }
        Ok(w.clone())
    }

    fn load_from_disk(&self, old: &Snapshot) -> Result<Snapshot, KmsError> {
        let (bytes, fp) = self.files.read()?;
        // The header may have changed (another process changed the root
        // key); the state's tag authenticates all of it under the store key.
        let header = StoreHeader::decode(&bytes)?;
        let state = State::decode(&open_file(&self.store_key, &bytes)?, header.version())?;
        Snapshot::build(state, (fp, &bytes), header, Some(old))
    }

    /// Snapshot for a read-only op: re-checks the disk at most every refresh
    /// interval and applies what fell due.
    pub(crate) fn read_snapshot(&self) -> Result<Arc<Snapshot>, KmsError> {
        self.maybe_refresh()?;
        let snap = self.current()?;
        if snap.next_due.is_some_and(|d| d <= self.clock.now_unix()) {
            self.mutate(|_, _| Ok(()))?;
            return self.current();
        }
        Ok(snap)
    }

    fn maybe_refresh(&self) -> Result<(), KmsError> {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_refresh_ns.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.refresh_interval_ns.load(Ordering::Relaxed) && last != 0
        {
            return Ok(());
        }
        let Ok(_g) = self.refresh_guard.try_lock() else {
            return Ok(()); // another thread is refreshing
        };
        self.last_refresh_ns.store(now.max(1), Ordering::Relaxed);
        self.refresh_locked()
    }

    /// Reads the on-disk store now if another process changed it, whatever
    /// the refresh interval: a job that must see a change made just before
    /// it (a rotation, then `kmsfs rewrap` through a mount) calls this.
    pub fn refresh_now(&self) -> Result<(), KmsError> {
        let _g = self
            .refresh_guard
            .lock()
            .map_err(|_| KmsError::Internal("engine refresh lock poisoned".into()))?;
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_refresh_ns.store(now.max(1), Ordering::Relaxed);
        self.refresh_locked()
    }

    /// [`Engine::maybe_refresh`]'s work, under `refresh_guard`.
    fn refresh_locked(&self) -> Result<(), KmsError> {
        let cur = self.current()?;
        if self.files.fingerprint()? != cur.fingerprint {
            let fresh = self.load_from_disk(&cur)?;
            // An older file still in place (not a writer of this process
            // that overtook the read) is a rollback: keep serving the newer
            // state this process has, and say so.
            if fresh.state.generation < cur.state.generation
                && self.files.fingerprint()? == fresh.fingerprint
            {
                log::error!("{}", self.rolled_back_while_open(&fresh, &cur));
                return Ok(());
            }
            self.install(fresh)?;
        }
        Ok(())
    }

    /// The error for a store file older than the state this engine already
    /// read or wrote: someone replaced it with an older copy while it was open.
    fn rolled_back_while_open(&self, disk: &Snapshot, seen: &Snapshot) -> KmsError {
        KmsError::StoreRolledBack(format!(
            "{} is generation {}, older than generation {} this engine already read or \
             wrote: it was replaced by an older copy while in use (revoked grants and \
             disabled keys may be back); refusing to write over it",
            self.files.dir().join(crate::store::STATE_FILE).display(),
            disk.state.generation,
            seen.state.generation
        ))
    }

    /// Under the writer lock: the newest state (reloaded if another process
    /// wrote since).
    pub(crate) fn current_locked(&self, _lock: &WriteLock<'_>) -> Result<Arc<Snapshot>, KmsError> {
        let cur = self.current()?;
        if self.files.fingerprint()? == cur.fingerprint {
            return Ok(cur);
        }
        let fresh = self.load_from_disk(&cur)?;
        if fresh.state.generation < cur.state.generation {
            return Err(self.rolled_back_while_open(&fresh, &cur));
        }
        let mut w = self
            .snap
            .write()
            .map_err(|_| KmsError::Internal("engine state lock poisoned".into()))?;
        *w = Arc::new(fresh);
        Ok(w.clone())
    }

    pub(crate) fn commit(
        &self,
        lock: &WriteLock<'_>,
        old: &Snapshot,
        state: State,
    ) -> Result<(), KmsError> {
        let header = match old.header {
            h if h.version() == STORE_VERSION => h,
            old_format => match self.conversion {
                // The first write converts a store of format 1 to 4 to the
                // current format, keeping its store key (for format 1 its
                // sealing key).
                Some(h) if h.root() == old_format.root() => h,
                _ => {
                    return Err(KmsError::StoreCorrupted(format!(
                        "the engine store was replaced by a format-{} copy this process \
                         cannot convert; open it again",
                        old_format.version()
                    )));
                }
            },
        };
        self.commit_with_header(lock, old, state, header)
    }

    /// Writes `state` under `header` and installs it, as generation
    /// max(`old`'s, `state`'s own) + 1: one more than the file it replaces,
    /// or past a generation the caller set (an accepted rollback jumps past
    /// the anchored one). The next audit record anchors it.
    pub(crate) fn commit_with_header(
        &self,
        lock: &WriteLock<'_>,
        old: &Snapshot,
        mut state: State,
        header: StoreHeader,
    ) -> Result<(), KmsError> {
        state.generation = old.state.generation.max(state.generation).wrapping_add(1);
        let bytes = seal_file(&header, &self.store_key, &state.encode()?)?;
        let fp = self.files.write_atomic(lock, &bytes)?;
        let snap = Snapshot::build(state, (fp, &bytes), header, Some(old))?;
        let mut w = self
            .snap
            .write()
            .map_err(|_| KmsError::Internal("engine state lock poisoned".into()))?;
        *w = Arc::new(snap);
        self.anchor_due.store(true, Ordering::Release);
        Ok(())
    }

    /// Runs a state change under the cross-process writer lock: reload if
    /// the file changed, apply what fell due, apply `f`, write if anything
    /// changed. If `f` fails, only the due changes are written.
    pub(crate) fn mutate<T>(
        &self,
        f: impl FnOnce(&mut State, i64) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let lock = self.files.lock()?;
        let cur = self.current_locked(&lock)?;
        let now = self.clock.now_unix();
        let mut st = cur.state.clone();
        let housekept = st.apply_due(now)?;
        let base = housekept.then(|| st.clone());
        match f(&mut st, now) {
            Ok(v) => {
                if st != cur.state {
                    self.commit(&lock, &cur, st)?;
                }
                Ok(v)
            }
            Err(e) => {
                if let Some(b) = base {
                    self.commit(&lock, &cur, b)?;
                }
                Err(e)
            }
        }
    }

    /// The one place authorization is decided: the key policy and the key's
    /// grants for `caller` asking for `action` (`"kms:Decrypt"`), with the
    /// request's encryption context. Denial is AccessDeniedException naming
    /// the deciding statement.
    pub(crate) fn authorize(
        &self,
        caller: &Principal,
        action: &str,
        key: &KeyRecord,
        ctx: Option<&EncryptionContext>,
    ) -> Result<(), KmsError> {
        self.authorize_as_requested(caller, action, key, ctx, None)
    }

    /// [`Engine::authorize`] for an operation whose `KeyId` parameter was
    /// `requested`: when that names an alias (`alias/NAME` or an alias ARN),
    /// the condition key `kms:RequestAlias` is that alias name.
    pub(crate) fn authorize_as_requested(
        &self,
        caller: &Principal,
        action: &str,
        key: &KeyRecord,
        ctx: Option<&EncryptionContext>,
        requested: Option<&str>,
    ) -> Result<(), KmsError> {
        let algorithms = Algorithms {
            encryption: ctx.is_some().then_some(SYMMETRIC_DEFAULT),
            ..Algorithms::default()
        };
        self.authorize_with(caller, action, key, ctx, requested, &algorithms)
    }

    /// [`Engine::authorize_as_requested`] with the algorithm condition keys
    /// of the request (`kms:SigningAlgorithm`, `kms:MessageType` ...).
    pub(crate) fn authorize_with(
        &self,
        caller: &Principal,
        action: &str,
        key: &KeyRecord,
        ctx: Option<&EncryptionContext>,
        requested: Option<&str>,
        algorithms: &Algorithms<'_>,
    ) -> Result<(), KmsError> {
        let arn = key.arn();
        let id = key.id.to_string();
        let alias = match requested.map(crate::ids::parse_key_ref) {
            Some(Ok(crate::ids::KeyRef::Alias(name))) => Some(name),
            _ => None,
        };
        let mut rc = RequestContext::new(caller, action, &arn, &id, self.clock.now_unix());
        rc.request_alias = alias.as_deref();
        rc.encryption_context = ctx;
        rc.key_spec = Some(key.spec.as_str());
        rc.key_usage = Some(key.usage.as_str());
        rc.key_origin = Some(key.origin.as_str());
        rc.encryption_algorithm = algorithms.encryption;
        rc.signing_algorithm = algorithms.signing;
        rc.mac_algorithm = algorithms.mac;
        rc.key_agreement_algorithm = algorithms.key_agreement;
        rc.message_type = algorithms.message_type;
        rc.data_key_pair_spec = algorithms.data_key_pair_spec;
        rc.wrapping_algorithm = algorithms.wrapping_algorithm;
        rc.wrapping_key_spec = algorithms.wrapping_key_spec;
        rc.expiration_model = algorithms.expiration_model;
        rc.valid_to = algorithms.valid_to;
        self.authorize_request(key, &rc)
    }

    /// [`Engine::authorize`] with a fully built request context (CreateGrant,
    /// PutKeyPolicy and others that set more condition keys).
    pub(crate) fn authorize_request(
        &self,
        key: &KeyRecord,
        rc: &RequestContext<'_>,
    ) -> Result<(), KmsError> {
        if let Some(client) = rc.principal.invoked_by.as_deref() {
            self.authorize_on_behalf(key, rc, client)?;
        }
        let d = self.decide(key, rc)?;
        if d.allowed {
            Ok(())
        } else {
            Err(access_denied(rc, &d))
        }
    }

    /// For a call `client` made on behalf of `rc.principal`: the key must
    /// allow `client` [`ON_BEHALF_OF_ACTION`] (with the request's
    /// encryption context and alias as condition keys), else the call is
    /// AccessDeniedException naming the client.
    fn authorize_on_behalf(
        &self,
        key: &KeyRecord,
        rc: &RequestContext<'_>,
        client: &Principal,
    ) -> Result<(), KmsError> {
        let mut crc = rc.clone();
        crc.principal = client;
        crc.action = ON_BEHALF_OF_ACTION;
        let d = self.decide(key, &crc)?;
        if d.allowed {
            Ok(())
        } else {
            Err(access_denied(&crc, &d))
        }
    }

    /// The decision for `rc` on `key`: its policy plus its grants.
    pub(crate) fn decide(
        &self,
        key: &KeyRecord,
        rc: &RequestContext<'_>,
    ) -> Result<Decision, KmsError> {
        let snap = self.current()?;
        let policy = snap.policy_of(key).map_err(|e| {
            KmsError::AccessDenied(format!(
                "the key policy of {} cannot be evaluated: {}",
                rc.resource_arn,
                e.message()
            ))
        })?;
        Ok(evaluate_with_grants(&policy, snap.grants_of(key), rc))
    }

    /// Runs one operation and records its audit event (success or failure).
    /// If the audit sink fails, the operation fails.
    pub(crate) fn audited<T>(
        &self,
        caller: &Principal,
        event_name: &str,
        f: impl FnOnce(&mut AuditInfo) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let mut info = AuditInfo::default();
        let result = f(&mut info);
        let error = match &result {
            Ok(_) => None,
            Err(e) => Some((e.exception_name().to_string(), e.message())),
        };
        let invoked_by = caller.invoked_by.as_ref().map(|c| c.to_string());
        let used = std::mem::take(&mut info.touched);
        let (request_id, event_id) =
            self.record_call((caller.to_string(), invoked_by), event_name, info, error)?;
        if result.is_ok() && !used.is_empty() && TRACKED_OPERATIONS.contains(&event_name) {
            let now = self.clock.now_unix();
            let use_ = LastUse {
                operation: event_name.to_string(),
                time: now,
                request_id,
                event_id: Some(event_id),
            };
            // Usage is advisory: failing to note it never fails the call.
            if let Err(e) = self.usage.record(&self.files, &self.clock, &used, &use_) {
                log::warn!("key usage not recorded: {e}");
            }
        }
        result
    }

    /// Audits a call refused before it reached an operation (the HTTPS
    /// endpoint's authentication failures): principal `anonymous`, the
    /// access key id the request claimed, the client's address.
    pub fn audit_refused(
        &self,
        origin: &CallOrigin,
        event_name: &str,
        exception: &str,
        message: &str,
    ) -> Result<(), KmsError> {
        let _origin = OriginGuard::set(origin);
        let error = Some((exception.to_string(), message.to_string()));
        let who = ("anonymous".to_string(), None);
        self.record_call(who, event_name, AuditInfo::default(), error)
            .map(|_| ())
    }

    /// Writes one audit record for `principal` (and the client that
    /// invoked the call on its behalf), with this thread's call origin;
    /// returns its request id and event id.
    fn record_call(
        &self,
        (principal, invoked_by): (String, Option<String>),
        event_name: &str,
        info: AuditInfo,
        error: Option<(String, String)>,
    ) -> Result<(String, String), KmsError> {
        let (error_code, error_message) = error.unzip();
        let origin = ORIGIN.with(|o| o.borrow().clone()).unwrap_or_default();
        let mut event = AuditEvent {
            event_time: rfc3339(self.clock.now_unix()),
            event_name: event_name.to_string(),
            principal,
            invoked_by,
            key_id: info.key_id,
            encryption_context: info.encryption_context,
            request_id: new_request_id()?,
            error_code,
            error_message,
            request_parameters: info.request_parameters,
            access_key_id: origin.access_key_id,
            source_ip_address: origin.source_address,
            event_id: Some(crate::audit::record::new_event_id()),
        };
        // Paths as the store's audit path mode says, in this record only.
        let snap = self.current()?;
        crate::audit::paths::redact_event(
            &mut event,
            snap.state.audit_paths,
            snap.state.audit_path_key.as_ref(),
        );
        // After a store write the record is sealed at once by a digest
        // anchoring the new generation. Any thread's record may take the
        // anchor; it names the current state, at least as new as the write.
        if self.anchor_due.swap(false, Ordering::AcqRel) {
            let anchor = snap.anchor.clone();
            if let Err(e) = self.audit.record_anchored(&event, &anchor) {
                self.anchor_due.store(true, Ordering::Release);
                return Err(e);
            }
        } else {
            self.audit.record(&event)?;
        }
        let event_id = event.event_id.unwrap_or_default();
        Ok((event.request_id, event_id))
    }
}

impl Drop for Engine {
    /// Writes the uses not yet in the key usage file.
    fn drop(&mut self) {
        if let Err(e) = self.usage.flush(&self.files, self.clock.now_unix()) {
            log::warn!("key usage not written: {e}");
        }
    }
}

/// The root key the secret `root` gives under `params` (Argon2id for a
/// passphrase); a secret of the other kind is `WrongPassphrase`.
pub(crate) fn root_key_for(
    params: &RootParams,
    root: &RootKeySource,
) -> Result<Zeroizing<[u8; 32]>, KmsError> {
    if root::kind_of(root) != params.kind {
        return Err(KmsError::WrongPassphrase);
    }
    root::root_key(root, params.kdf, &params.salt)
}

/// AccessDeniedException in AWS's wording plus the deciding statement.
pub(crate) fn access_denied(rc: &RequestContext<'_>, d: &Decision) -> KmsError {
    let action = if rc.action.starts_with("kms:") {
        rc.action.to_string()
    } else {
        format!("kms:{}", rc.action)
    };
    let why = match d.reason {
        DecisionReason::ExplicitDeny(_) => "with an explicit deny in a resource-based policy",
        _ => "because no resource-based policy allows the action",
    };
    KmsError::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {} {why} ({})",
        rc.principal, rc.resource_arn, d.reason
    ))
}

/// RFC 3339 UTC time for audit records.
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
