//! A bounded cache of unwrapped data keys in front of a [`KeyService`].
//!
//! # Design: authorization stays per principal
//!
//! The cache key is SHA-256 over (wrapped blob, canonical encryption context,
//! caller uid, gid and sorted supplementary groups). A hit therefore only ever
//! serves a principal for which the engine itself answered Decrypt for exactly
//! this blob and context; another user opening the same file misses and asks
//! the engine, which applies the key policy and grants for *that* principal.
//! This is cheaper than re-authorizing every hit (one hash per lookup, no
//! engine round trip) and needs no policy logic in the filesystem.
//!
//! Entries expire `reauth_interval` after they were fetched (default 5 s):
//! after that the next open asks the engine again, so a key that was disabled,
//! scheduled for deletion or a grant that was revoked stops *new* opens within
//! that interval. Open file handles keep their own copy of the key and are not
//! affected. Because the blob hash is part of the key, a rewrapped header (after
//! a rename or a rewrap) never hits a stale entry.
//!
//! An entry may also be limited to a number of uses (`max_uses`, as the AWS
//! Encryption SDK's cache limits messages per data key): the hit that uses
//! it up drops it, and the next open asks the engine again. Together with
//! the interval (the cache's max age) this bounds how much one answer of the
//! service is reused, which is what `kmsfs status` shows.
//!
//! Keys are [`DataKeyBytes`] (`Zeroizing`), so an entry is wiped when it is
//! evicted, expires, or the cache is dropped.

use crate::keys::{DataKeyBytes, GeneratedDataKey, KeyService};
use aws_lc_rs::digest;
use kms_engine::context::canonical_encoding;
use kms_engine::{EncryptionContext, KmsError, Principal};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default number of cached data keys.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default time after which a cached key is re-authorized with the engine.
pub const DEFAULT_REAUTH_INTERVAL: Duration = Duration::from_secs(5);

/// Cache bounds.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    pub capacity: NonZeroUsize,
    /// The max age of an entry.
    pub reauth_interval: Duration,
    /// Hits an entry serves before it is dropped; `None`: no limit.
    pub max_uses: Option<u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: NonZeroUsize::new(DEFAULT_CAPACITY).unwrap_or(NonZeroUsize::MIN),
            reauth_interval: DEFAULT_REAUTH_INTERVAL,
            max_uses: None,
        }
    }
}

/// Hit/miss counters, for `kmsfs status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    /// The limits in force: max age of an entry in seconds, and the hits
    /// one entry serves (absent: no limit).
    #[serde(default)]
    pub max_age_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
}

struct Entry {
    key: DataKeyBytes,
    fetched: Instant,
    /// Hits served so far.
    uses: u64,
}

pub(crate) type CacheKey = [u8; 32];

/// The monotonic clock entries are aged by: [`Instant::now`] on a mount,
/// a hand-moved clock in tests (so that expiry is tested without sleeping).
pub type MonotonicClock = fn() -> Instant;

/// A [`KeyService`] that serves Decrypt from a cache of unwrapped keys
/// (see the module documentation for the authorization design).
pub struct CachingKeyService<S> {
    inner: S,
    config: CacheConfig,
    now: MonotonicClock,
    entries: Mutex<LruCache<CacheKey, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<S: KeyService> std::fmt::Debug for CachingKeyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKeyService")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

pub(crate) fn cache_key(wrapped: &[u8], ctx: &EncryptionContext, caller: &Principal) -> CacheKey {
    let mut d = digest::Context::new(&digest::SHA256);
    let put = |d: &mut digest::Context, bytes: &[u8]| {
        d.update(&(bytes.len() as u64).to_be_bytes());
        d.update(bytes);
    };
    put(&mut d, wrapped);
    put(&mut d, &canonical_encoding(ctx));
    let mut groups = caller.groups.clone();
    groups.sort_unstable();
    groups.dedup();
    let mut ids = Vec::with_capacity(8 + 4 * groups.len());
    ids.extend_from_slice(&caller.uid.to_be_bytes());
    ids.extend_from_slice(&caller.gid.to_be_bytes());
    for g in groups {
        ids.extend_from_slice(&g.to_be_bytes());
    }
    put(&mut d, &ids);
    // Names follow from the ids; what could not be resolved does not, and
    // changes decisions (fail closed).
    let u = &caller.unresolved;
    put(
        &mut d,
        &[
            u8::from(u.user_name),
            u8::from(u.groups),
            u8::from(u.group_names),
        ],
    );
    let out = d.finish();
    let mut key = [0u8; 32];
    key.copy_from_slice(out.as_ref());
    key
}

impl<S: KeyService> CachingKeyService<S> {
    pub fn new(inner: S, config: CacheConfig) -> Self {
        Self::with_clock(inner, config, Instant::now)
    }

    /// Like [`CachingKeyService::new`], with entries aged by `now`.
    pub fn with_clock(inner: S, config: CacheConfig, now: MonotonicClock) -> Self {
        CachingKeyService {
            inner,
            now,
            entries: Mutex::new(LruCache::new(config.capacity)),
            config,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self.entries.lock().map(|c| c.len() as u64).unwrap_or(0);
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            max_age_secs: self.config.reauth_interval.as_secs(),
            max_uses: self.config.max_uses,
        }
    }

    /// Drops (and zeroizes) every cached key.
    pub fn clear(&self) {
        if let Ok(mut c) = self.entries.lock() {
            c.clear();
        }
    }

    fn lookup(&self, key: &CacheKey) -> Option<DataKeyBytes> {
        let mut cache = self.entries.lock().ok()?;
        let now = (self.now)();
        let interval = self.config.reauth_interval;
        let fresh = match cache.get_mut(key) {
            Some(e) if now.saturating_duration_since(e.fetched) < interval => {
                e.uses += 1;
                Some((DataKeyBytes::new(*e.key), e.uses))
            }
            Some(_) => None,
            None => return None,
        };
        if let Some((dek, uses)) = fresh {
            if self.config.max_uses.is_some_and(|max| uses >= max) {
                // Used up: this hit is its last.
                cache.pop(key);
            }
            Some(dek)
        } else {
            // Expired: drop (and so zeroize) now; the caller re-authorizes.
            cache.pop(key);
            None
        }
    }

    fn insert(&self, key: CacheKey, dek: &DataKeyBytes) {
        if self.config.reauth_interval.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.entries.lock() {
            // An evicted entry is dropped here, which zeroizes it.
            cache.put(
                key,
                Entry {
                    key: DataKeyBytes::new(**dek),
                    fetched: (self.now)(),
                    uses: 0,
                },
            );
        }
    }
}

impl<S: KeyService> KeyService for CachingKeyService<S> {
    fn refresh(&self) -> Result<(), KmsError> {
        self.inner.refresh()
    }

    fn sync_audit(&self) -> Result<(), KmsError> {
        self.inner.sync_audit()
    }

    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let generated = self.inner.generate_data_key(caller, key_id, ctx)?;
        self.insert(
            cache_key(&generated.wrapped, ctx, caller),
            &generated.plaintext,
        );
        Ok(generated)
    }

    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        plaintext: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        // As for a generated key: its creator was just authorized for it.
        let wrapped = self
            .inner
            .encrypt_data_key(caller, key_id, plaintext, ctx)?;
        self.insert(cache_key(&wrapped, ctx, caller), plaintext);
        Ok(wrapped)
    }

    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        let key = cache_key(wrapped, ctx, caller);
        if let Some(dek) = self.lookup(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(dek);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let dek = self.inner.decrypt_data_key(caller, wrapped, ctx)?;
        self.insert(key, &dek);
        Ok(dek)
    }

    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        // Always asks the engine: a rewrap is authorized for both contexts.
        self.inner
            .rewrap_data_key(caller, wrapped, old_ctx, new_ctx)
    }

    fn wrapping_key_id(&self, wrapped: &[u8]) -> Result<String, KmsError> {
        self.inner.wrapping_key_id(wrapped)
    }

    fn service_stats(&self) -> Option<crate::keys::ServiceStats> {
        self.inner.service_stats()
    }

    fn reencrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        self.inner
            .reencrypt_data_key(caller, wrapped, ctx, dest_key)
    }

    fn unreachable(&self) -> bool {
        self.inner.unreachable()
    }

    fn get_public_key(
        &self,
        caller: &Principal,
        key_id: &str,
    ) -> Result<crate::keys::PublicKeyInfo, KmsError> {
        self.inner.get_public_key(caller, key_id)
    }

    fn decrypt_asymmetric(
        &self,
        caller: &Principal,
        key_id: &str,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<crate::keys::SecretVec, KmsError> {
        self.inner
            .decrypt_asymmetric(caller, key_id, ciphertext, algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_engine::context::context_from;
    use std::sync::atomic::AtomicBool;

    /// Counts engine calls; fails Decrypt while `deny` is set.
    #[derive(Default)]
    struct Counting {
        decrypts: AtomicU64,
        deny: AtomicBool,
    }

    impl KeyService for Counting {
        fn generate_data_key(
            &self,
            _caller: &Principal,
            _key_id: &str,
            _ctx: &EncryptionContext,
        ) -> Result<GeneratedDataKey, KmsError> {
            Ok(GeneratedDataKey {
                plaintext: DataKeyBytes::new([7; 32]),
                wrapped: vec![1, 2, 3],
            })
        }
        fn encrypt_data_key(
            &self,
            _caller: &Principal,
            _key_id: &str,
            plaintext: &DataKeyBytes,
            _ctx: &EncryptionContext,
        ) -> Result<Vec<u8>, KmsError> {
            Ok(vec![plaintext[0]])
        }
        fn decrypt_data_key(
            &self,
            _caller: &Principal,
            wrapped: &[u8],
            _ctx: &EncryptionContext,
        ) -> Result<DataKeyBytes, KmsError> {
            self.decrypts.fetch_add(1, Ordering::SeqCst);
            if self.deny.load(Ordering::SeqCst) {
                return Err(KmsError::Disabled("key is disabled".into()));
            }
            Ok(DataKeyBytes::new([wrapped[0]; 32]))
        }
        fn rewrap_data_key(
            &self,
            _caller: &Principal,
            wrapped: &[u8],
            _old: &EncryptionContext,
            _new: &EncryptionContext,
        ) -> Result<Vec<u8>, KmsError> {
            Ok(wrapped.iter().rev().copied().collect())
        }
    }

    fn alice() -> Principal {
        Principal::from_ids(1000, 1000, vec![10])
    }

    fn cached(interval: Duration, capacity: usize) -> CachingKeyService<Counting> {
        CachingKeyService::new(
            Counting::default(),
            CacheConfig {
                capacity: NonZeroUsize::new(capacity).unwrap(),
                reauth_interval: interval,
                max_uses: None,
            },
        )
    }

    #[test]
    fn an_entry_serves_max_uses_hits_then_the_engine_is_asked_again() {
        let c = CachingKeyService::new(
            Counting::default(),
            CacheConfig {
                capacity: NonZeroUsize::new(16).unwrap(),
                reauth_interval: Duration::from_secs(3600),
                max_uses: Some(2),
            },
        );
        let ctx = context_from([("kmsfs:path", "/a")]);
        for _ in 0..7 {
            assert_eq!(*c.decrypt_data_key(&alice(), &[5], &ctx).unwrap(), [5; 32]);
        }
        // Asked, 2 hits; asked, 2 hits; asked, 1 hit.
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 3);
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (4, 3));
        assert_eq!((s.max_age_secs, s.max_uses), (3600, Some(2)));
    }

    #[test]
    fn second_decrypt_is_a_hit_for_the_same_principal_only() {
        let c = cached(Duration::from_secs(3600), 16);
        let ctx = context_from([("kmsfs:path", "/a")]);
        assert_eq!(*c.decrypt_data_key(&alice(), &[5], &ctx).unwrap(), [5; 32]);
        assert_eq!(*c.decrypt_data_key(&alice(), &[5], &ctx).unwrap(), [5; 32]);
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 1);
        // Another uid, or the same uid with other groups, asks the engine.
        let bob = Principal::from_ids(1001, 1000, vec![10]);
        c.decrypt_data_key(&bob, &[5], &ctx).unwrap();
        let alice_other_groups = Principal::from_ids(1000, 1000, vec![]);
        c.decrypt_data_key(&alice_other_groups, &[5], &ctx).unwrap();
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 3);
        // Unknown groups (which a Deny on a group fails closed on) are not
        // the known-empty groups of the entry just made.
        let mut alice_unknown_groups = alice_other_groups.clone();
        alice_unknown_groups.unresolved.groups = true;
        c.decrypt_data_key(&alice_unknown_groups, &[5], &ctx)
            .unwrap();
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 4);
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 4));
    }

    #[test]
    fn other_context_or_blob_misses() {
        let c = cached(Duration::from_secs(3600), 16);
        let a = context_from([("kmsfs:path", "/a")]);
        let b = context_from([("kmsfs:path", "/b")]);
        c.decrypt_data_key(&alice(), &[5], &a).unwrap();
        c.decrypt_data_key(&alice(), &[5], &b).unwrap();
        c.decrypt_data_key(&alice(), &[6], &a).unwrap();
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 3);
    }

    thread_local! {
        /// The test clock's start in this thread (each test has its own thread).
        static START: Instant = Instant::now();
        /// How far the test moved [`test_now`] past `START`.
        static AHEAD: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
    }

    /// The test clock: stands still until the test moves it.
    fn test_now() -> Instant {
        START.with(|s| *s) + AHEAD.with(|a| a.get())
    }

    fn advance(by: Duration) {
        AHEAD.with(|a| a.set(a.get() + by));
    }

    #[test]
    fn expired_entries_are_reauthorized_and_a_denial_is_seen() {
        let interval = Duration::from_secs(5);
        let c = CachingKeyService::with_clock(
            Counting::default(),
            CacheConfig {
                capacity: NonZeroUsize::new(16).unwrap(),
                reauth_interval: interval,
                max_uses: None,
            },
            test_now,
        );
        let ctx = context_from([("kmsfs:path", "/a")]);
        c.decrypt_data_key(&alice(), &[5], &ctx).unwrap();
        c.inner().deny.store(true, Ordering::SeqCst);
        // Within the interval the cached key serves (the engine is not asked,
        // so its denial is not seen yet): the cache is on.
        advance(interval - Duration::from_millis(100));
        assert_eq!(*c.decrypt_data_key(&alice(), &[5], &ctx).unwrap(), [5; 32]);
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 1);
        assert_eq!((c.stats().hits, c.stats().entries), (1, 1));
        // Once the interval has passed since the fetch, the next Decrypt goes
        // to the engine, sees the denial, and the expired entry is gone.
        advance(Duration::from_millis(100));
        let err = c.decrypt_data_key(&alice(), &[5], &ctx).unwrap_err();
        assert_eq!(err.exception_name(), "DisabledException");
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 2);
        assert_eq!((c.stats().hits, c.stats().entries), (1, 0));
    }

    #[test]
    fn a_zero_interval_disables_the_cache() {
        let c = cached(Duration::ZERO, 16);
        let ctx = context_from([("kmsfs:path", "/a")]);
        c.decrypt_data_key(&alice(), &[5], &ctx).unwrap();
        c.decrypt_data_key(&alice(), &[5], &ctx).unwrap();
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 2);
        assert_eq!((c.stats().hits, c.stats().entries), (0, 0));
    }

    #[test]
    fn capacity_is_bounded() {
        let c = cached(Duration::from_secs(3600), 2);
        let ctx = context_from([("kmsfs:path", "/a")]);
        for b in 0..5u8 {
            c.decrypt_data_key(&alice(), &[b], &ctx).unwrap();
        }
        assert_eq!(c.stats().entries, 2);
        // The oldest was evicted: asking again goes to the engine.
        c.decrypt_data_key(&alice(), &[0], &ctx).unwrap();
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn generated_keys_are_cached_for_their_creator() {
        let c = cached(Duration::from_secs(3600), 4);
        let ctx = context_from([("kmsfs:path", "/a")]);
        let g = c.generate_data_key(&alice(), "k", &ctx).unwrap();
        assert_eq!(
            *c.decrypt_data_key(&alice(), &g.wrapped, &ctx).unwrap(),
            [7; 32]
        );
        assert_eq!(c.inner().decrypts.load(Ordering::SeqCst), 0);
    }
}
