//! The engine: opens the sealed store, keeps an in-memory snapshot of the
//! state with ready-to-use AEAD keys, serializes writers (in-process and
//! across processes), applies what fell due, authorizes and audits calls.

use crate::audit::{AuditEvent, AuditSink};
use crate::context::EncryptionContext;
use crate::ids::{KeyId, new_request_id};
use crate::key::KeyRecord;
use crate::state::State;
use crate::store::format::{StoreHeader, open_file, seal_file};
use crate::store::root::{self, KdfParams, RootKeySource, RootKind};
use crate::store::{Fingerprint, StoreFiles, WriteLock};
use crate::{Clock, KmsError, Principal};
use aws_lc_rs::aead::LessSafeKey;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Default interval between checks of the on-disk store by read-only ops.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// An immutable view of the state plus precomputed AEAD keys.
pub(crate) struct Snapshot {
    pub state: State,
    pub ciphers: HashMap<(KeyId, u32), Arc<LessSafeKey>>,
    pub fingerprint: Fingerprint,
    pub next_due: Option<i64>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.state.generation)
            .field("keys", &self.state.keys.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn build(
        state: State,
        fingerprint: Fingerprint,
        old: Option<&Snapshot>,
    ) -> Result<Snapshot, KmsError> {
        let mut ciphers = HashMap::new();
        for k in state.keys.values() {
            for v in &k.versions {
                let slot = (k.id, v.version);
                let c = match old.and_then(|o| o.ciphers.get(&slot)) {
                    Some(c) => c.clone(),
                    None => Arc::new(crate::blob::aead_key(v.material.bytes())?),
                };
                ciphers.insert(slot, c);
            }
        }
        let next_due = state.next_due();
        Ok(Snapshot {
            state,
            ciphers,
            fingerprint,
            next_due,
        })
    }

    /// Resolves a key id, key ARN, alias name or alias ARN.
    pub fn resolve(&self, key_id: &str) -> Result<&KeyRecord, KmsError> {
        self.state.resolve(key_id)
    }

    pub fn cipher(&self, id: KeyId, version: u32) -> Option<&Arc<LessSafeKey>> {
        self.ciphers.get(&(id, version))
    }
}

/// What an op reports about itself for its audit record.
#[derive(Debug, Default)]
pub(crate) struct AuditInfo {
    pub key_id: Option<String>,
    pub encryption_context: Option<EncryptionContext>,
    pub request_parameters: Option<serde_json::Value>,
}

impl AuditInfo {
    pub fn key(&mut self, k: &KeyRecord) {
        self.key_id = Some(k.id.to_string());
    }
    pub fn context(&mut self, ctx: &EncryptionContext) {
        if !ctx.is_empty() {
            self.encryption_context = Some(ctx.clone());
        }
    }
}

/// A local key management engine over one store directory. `Send + Sync`;
/// share it (e.g. in an `Arc`) between threads.
pub struct Engine {
    files: StoreFiles,
    header: StoreHeader,
    seal_key: Zeroizing<[u8; 32]>,
    snap: RwLock<Arc<Snapshot>>,
    refresh_guard: Mutex<()>,
    started: Instant,
    last_refresh_ns: AtomicU64,
    refresh_interval_ns: AtomicU64,
    pub(crate) clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.files.dir())
            .field("seal_key", &"<redacted>")
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
        let kind = root::kind_of(&root);
        let (kdf, salt) = match kind {
            RootKind::Passphrase => {
                let mut salt = [0u8; 16];
                aws_lc_rs::rand::fill(&mut salt)
                    .map_err(|_| KmsError::Internal("random source failed".into()))?;
                (kdf, salt)
            }
            RootKind::KeyFile => (
                KdfParams {
                    m_cost_kib: 0,
                    t_cost: 0,
                    p_cost: 0,
                },
                [0u8; 16],
            ),
        };
        let root_key = root::root_key(&root, kdf, &salt)?;
        let derived = root::derive(&root_key);
        let header = StoreHeader {
            kind,
            kdf,
            salt,
            check: derived.check,
        };
        let lock = files.lock()?;
        if files.exists() {
            return Err(KmsError::AlreadyExists(format!(
                "an engine store already exists in {}",
                dir.display()
            )));
        }
        let mut state = State::new()?;
        state.generation = 1;
        let bytes = seal_file(&header, &derived.seal, &state.encode()?)?;
        let fp = files.write_atomic(&lock, &bytes)?;
        drop(lock);
        let snap = Snapshot::build(state, fp, None)?;
        Ok(Self::assemble(
            files,
            header,
            derived.seal,
            snap,
            clock,
            audit,
        ))
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
        if root::kind_of(&root) != header.kind {
            return Err(KmsError::WrongPassphrase);
        }
        let root_key = root::root_key(&root, header.kdf, &header.salt)?;
        let derived = root::derive(&root_key);
        if !header.check_matches(&derived.check) {
            return Err(KmsError::WrongPassphrase);
        }
        let state = State::decode(&open_file(&derived.seal, &bytes)?)?;
        let snap = Snapshot::build(state, fp, None)?;
        let engine = Self::assemble(files, header, derived.seal, snap, clock, audit);
        {
            let lock = engine.files.lock()?;
            engine.files.remove_stale_temps(&lock)?;
        }
        Ok(engine)
    }

    fn assemble(
        files: StoreFiles,
        header: StoreHeader,
        seal_key: Zeroizing<[u8; 32]>,
        snap: Snapshot,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Engine {
        Engine {
            files,
            header,
            seal_key,
            snap: RwLock::new(Arc::new(snap)),
            refresh_guard: Mutex::new(()),
            started: Instant::now(),
            last_refresh_ns: AtomicU64::new(0),
            refresh_interval_ns: AtomicU64::new(DEFAULT_REFRESH_INTERVAL.as_nanos() as u64),
            clock,
            audit,
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
        let header = StoreHeader::decode(&bytes)?;
        if header != self.header {
            return Err(KmsError::StoreCorrupted(
                "the store header changed on disk".into(),
            ));
        }
        let state = State::decode(&open_file(&self.seal_key, &bytes)?)?;
        Snapshot::build(state, fp, Some(old))
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
        let cur = self.current()?;
        if self.files.fingerprint()? != cur.fingerprint {
            let fresh = self.load_from_disk(&cur)?;
            self.install(fresh)?;
        }
        Ok(())
    }

    /// Under the writer lock: the newest state (reloaded if another process
    /// wrote since).
    fn current_locked(&self, _lock: &WriteLock<'_>) -> Result<Arc<Snapshot>, KmsError> {
        let cur = self.current()?;
        if self.files.fingerprint()? == cur.fingerprint {
            return Ok(cur);
        }
        let fresh = self.load_from_disk(&cur)?;
        let mut w = self
            .snap
            .write()
            .map_err(|_| KmsError::Internal("engine state lock poisoned".into()))?;
        *w = Arc::new(fresh);
        Ok(w.clone())
    }

    fn commit(
        &self,
        lock: &WriteLock<'_>,
        old: &Snapshot,
        mut state: State,
    ) -> Result<(), KmsError> {
        state.generation = old.state.generation.wrapping_add(1);
        let bytes = seal_file(&self.header, &self.seal_key, &state.encode()?)?;
        let fp = self.files.write_atomic(lock, &bytes)?;
        let snap = Snapshot::build(state, fp, Some(old))?;
        let mut w = self
            .snap
            .write()
            .map_err(|_| KmsError::Internal("engine state lock poisoned".into()))?;
        *w = Arc::new(snap);
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

    /// The one place authorization is decided. Allows everything for now;
    /// key policies and grants plug in here.
    pub(crate) fn authorize(
        &self,
        _caller: &Principal,
        _action: &str,
        _key: &KeyRecord,
        _ctx: Option<&EncryptionContext>,
    ) -> Result<(), KmsError> {
        Ok(())
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
        let (error_code, error_message) = match &result {
            Ok(_) => (None, None),
            Err(e) => (Some(e.exception_name().to_string()), Some(e.message())),
        };
        let event = AuditEvent {
            event_time: rfc3339(self.clock.now_unix()),
            event_name: event_name.to_string(),
            principal: caller.to_string(),
            key_id: info.key_id,
            encryption_context: info.encryption_context,
            request_id: new_request_id()?,
            error_code,
            error_message,
            request_parameters: info.request_parameters,
        };
        self.audit.record(&event)?;
        result
    }
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
