//! The file audit trail: appends hash-chained records to size-rotated
//! segments, safely across processes, and seals them with signed digests.
//!
//! Every append runs under an exclusive `flock` on `<dir>/lock`: read the
//! chain head (cached with the segment size; re-read only when another
//! process wrote), append one canonical line with `O_APPEND`, maybe write a
//! digest, unlock, then wait until the record is durable. The record's bytes
//! are prepared before the lock is taken; under it only the chain members
//! are filled in and hashed.
//!
//! Durability with [`SyncMode::EveryRecord`] is a group commit (see
//! `group.rs`): "durable before `record()` returns" holds while concurrent
//! appenders share flushes. See `docs/file-format.md`, "Audit trail".

use super::chain::{self, GENESIS_HASH};
use super::digest::{self, DIGEST_VERSION, Digest, PublicKey, SigningKey, StoreAnchor};
use super::durable;
use super::error::AuditError;
use super::group::GroupCommit;
use super::record::{self, PreparedRecord, RecordView};
use super::segment::{self, LOCK_FILE, LastLine, PUBLIC_KEY_FILE};
use super::{AuditEvent, AuditSink};
use crate::clock::{Clock, SystemClock};
use crate::safe_fs::Dir;
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod ticker;
use ticker::Signal;

/// When appended records are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` before `record()` returns: a record is durable before the
    /// key it audits is used. The default.
    EveryRecord,
    /// `fdatasync` after `max_records` records or `max_delay`, whichever comes
    /// first (a background thread flushes an idle trail). A power failure may
    /// lose the records of the last window; a process crash loses nothing.
    Batched {
        max_records: u32,
        max_delay: Duration,
    },
}

/// Tuning of a [`FileAuditTrail`].
#[derive(Debug, Clone)]
pub struct TrailOptions {
    /// Start a new segment once the current one has reached this size.
    pub max_segment_bytes: u64,
    pub sync: SyncMode,
    /// Write a digest once this many records are not covered by one.
    pub digest_every_records: u64,
    /// Write a digest when records have been waiting this long for one.
    pub digest_every: Duration,
    /// Run a thread that writes due digests (and batched flushes) while idle.
    pub background: bool,
    /// Source of `digestTime`.
    pub clock: Arc<dyn Clock>,
}

impl Default for TrailOptions {
    fn default() -> Self {
        TrailOptions {
            max_segment_bytes: 16 * 1024 * 1024,
            sync: SyncMode::EveryRecord,
            digest_every_records: 1000,
            digest_every: Duration::from_secs(60),
            background: true,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The chain head as this process last saw it.
#[derive(Debug, Clone)]
struct Head {
    /// Sequence number of the newest record (0: no record yet).
    seq: u64,
    hash: String,
    /// End sequence of the newest digest (0: none).
    last_digest: u64,
    /// The newest segment: first sequence, open file, size when last seen.
    segment: Option<(u64, Arc<File>, u64)>,
    /// Hash prefixes of records `last_digest + 1 ..= seq`, when this process
    /// has seen every one of them (saves re-reading them for the digest).
    unsealed_prefixes: Option<Vec<[u8; digest::HASH_PREFIX_LEN]>>,
    /// The trail's change counter (in `<dir>/lock`) this head was read at.
    generation: u64,
}

#[derive(Debug)]
struct State {
    head: Option<Head>,
    /// Records this process wrote that no digest it knows of covers.
    unsealed: u64,
    /// When this process last wrote or saw a digest.
    last_seal: Instant,
    unsynced: u32,
    last_sync: Instant,
    /// Sequence of the newest record this process appended.
    appended: u64,
    /// The segment holding unsynced records.
    dirty: Option<Arc<File>>,
    /// Reused buffer for the line being appended.
    line: Vec<u8>,
    /// The background thread was asked to write a digest (count or time
    /// due) and has not yet.
    seal_requested: bool,
    /// The background thread was asked to flush (batched: `max_records`
    /// reached) and has not yet.
    flush_requested: bool,
    /// The newest engine-store anchor this process knows: carried (or a
    /// newer one from the previous digest) by every digest it writes.
    store: Option<StoreAnchor>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// `dir`, opened: every file of the trail is created relative to it.
    handle: Dir,
    key: SigningKey,
    /// `<dir>/lock`, flocked (while `state` is held) around every change.
    lock: File,
    opts: TrailOptions,
    state: Mutex<State>,
    group: Arc<GroupCommit>,
    /// fdatasyncs of batched records ([`SyncMode::Batched`]).
    batch_flushes: std::sync::atomic::AtomicU64,
    /// Batched: every record of this process up to this sequence is on
    /// disk (an fdatasync that began after its append has returned).
    durable: std::sync::atomic::AtomicU64,
    /// Wakes the background thread: to stop, or for due work.
    signal: (Mutex<Signal>, Condvar),
}

/// The hash-chained, digest-sealed audit trail in one directory.
#[derive(Debug)]
pub struct FileAuditTrail {
    inner: Arc<Inner>,
    ticker: Option<JoinHandle<()>>,
}

/// Releases the `flock` when dropped.
struct FlockGuard<'a>(&'a File);

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn lock_file<'a>(f: &'a File, dir: &Path) -> Result<FlockGuard<'a>, AuditError> {
    f.lock()
        .map_err(|e| AuditError::io("lock", dir.join(LOCK_FILE), e))?;
    Ok(FlockGuard(f))
}

/// The size and link count of `file`, by a `statx` that asks for nothing
/// else: asking for its times (as `fstat` does) makes a kernel with
/// multigrain timestamps (Linux 6.13+, ext4, xfs, btrfs, tmpfs) give the
/// next write a fine-grained, always new mtime, so every append dirtied
/// the inode (a journal transaction on ext4: ~2-3 µs per record, measured
/// on Linux 6.18). `None` when the kernel did not report both.
fn size_and_links(file: &File) -> Option<(u64, u32)> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let want = StatxFlags::SIZE | StatxFlags::NLINK;
    let st = statx(file, "", AtFlags::EMPTY_PATH, want).ok()?;
    StatxFlags::from_bits_retain(st.stx_mask)
        .contains(want)
        .then_some((st.stx_size, st.stx_nlink))
}

/// Writes `bytes` to `dir/name` atomically (mode 0600; see [`Dir::write_atomic`]).
fn write_atomic(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), AuditError> {
    dir.write_atomic(OsStr::new(name), bytes, 0o600)
        .map_err(|e| AuditError::io("write", dir.path().join(name), e))
}

/// Opens (creating, mode 0600) the segment at `path` in `dir` for appending.
fn open_append(dir: &Dir, path: &Path) -> Result<File, AuditError> {
    let name = path.file_name().unwrap_or_default();
    dir.open_or_create(name, 0o600, true)
        .map_err(|e| AuditError::io("open", path, e))
}

/// RFC 3339 UTC with seconds precision, from Unix seconds.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

impl FileAuditTrail {
    /// Opens (creating if needed) the trail in `dir`, signing digests with the
    /// Ed25519 key derived from `seed`. Writes `<dir>/public-key` on first
    /// use and refuses a directory whose public key is another key's.
    pub fn open(
        dir: impl Into<PathBuf>,
        seed: Zeroizing<[u8; 32]>,
        options: TrailOptions,
    ) -> Result<FileAuditTrail, AuditError> {
        let dir = dir.into();
        let key = SigningKey::from_seed(&seed)?;
        // Private at every open: 0700, owned by this user.
        let handle = Dir::open_private(&dir, true).map_err(|e| AuditError::io("open", &dir, e))?;
        let lock = handle
            .open_or_create(OsStr::new(LOCK_FILE), 0o600, false)
            .map_err(|e| AuditError::io("open", dir.join(LOCK_FILE), e))?;
        {
            let _g = lock_file(&lock, &dir)?;
            let pk_path = dir.join(PUBLIC_KEY_FILE);
            match std::fs::read_to_string(&pk_path) {
                Ok(text) => {
                    let found = PublicKey::parse(&text)?;
                    if found != key.public_key() {
                        return Err(AuditError::ForeignTrail {
                            dir,
                            found: found.fingerprint(),
                            expected: key.public_key().fingerprint(),
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    write_atomic(
                        &handle,
                        PUBLIC_KEY_FILE,
                        key.public_key().to_pem().as_bytes(),
                    )?;
                }
                Err(e) => return Err(AuditError::io("read", &pk_path, e)),
            }
        }
        let now = Instant::now();
        let inner = Arc::new(Inner {
            dir,
            handle,
            key,
            opts: options,
            lock,
            state: Mutex::new(State {
                head: None,
                unsealed: 0,
                last_seal: now,
                unsynced: 0,
                last_sync: now,
                appended: 0,
                dirty: None,
                line: Vec::with_capacity(1024),
                store: None,
                seal_requested: false,
                flush_requested: false,
            }),
            group: Arc::new(GroupCommit::default()),
            batch_flushes: std::sync::atomic::AtomicU64::new(0),
            durable: std::sync::atomic::AtomicU64::new(0),
            signal: (Mutex::new(Signal::default()), Condvar::new()),
        });
        let ticker = if inner.opts.background {
            let t = Arc::clone(&inner);
            Some(
                std::thread::Builder::new()
                    .name("kmsfs-audit-seal".into())
                    .spawn(move || t.run_ticker())
                    .map_err(AuditError::Thread)?,
            )
        } else {
            None
        };
        Ok(FileAuditTrail { inner, ticker })
    }

    /// The trail directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The public half of the digest signing key.
    pub fn export_public_key(&self) -> PublicKey {
        self.inner.key.public_key()
    }

    /// Appends one record; returns its sequence number.
    pub fn append(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        self.inner.append(event, None)
    }

    /// Appends one record and, in the same lock, a digest sealing it that
    /// carries `store` (or a newer anchor): the engine's store generation
    /// is anchored outside the store before this returns.
    pub fn append_anchored(
        &self,
        event: &AuditEvent,
        store: &StoreAnchor,
    ) -> Result<u64, AuditError> {
        self.inner.append(event, Some(store))
    }

    /// Makes every digest this trail writes from now on carry `store` (or a
    /// newer anchor), without writing one now.
    pub fn note_store_anchor(&self, store: &StoreAnchor) {
        let mut st = self.inner.lock_state();
        st.store = StoreAnchor::newest(st.store.take(), Some(store.clone()));
    }

    /// The newest store anchor among this trail's validly signed digests.
    pub fn newest_store_anchor(&self) -> Result<Option<StoreAnchor>, AuditError> {
        super::verify::newest_store_anchor(&self.inner.dir, &self.inner.key.public_key())
    }

    /// How many `fdatasync`s the group commit of [`SyncMode::EveryRecord`]
    /// has run (one per record single-threaded, fewer under concurrency);
    /// for benchmarks and diagnostics.
    pub fn group_flushes(&self) -> u64 {
        self.inner.group.flushes()
    }

    /// How many fdatasyncs of batched records ([`SyncMode::Batched`]) this
    /// trail has completed: due batches (on the appender's or the
    /// background thread), [`Self::sync`]; for diagnostics.
    pub fn batch_flushes(&self) -> u64 {
        self.inner
            .batch_flushes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes every record this process appended so far durable. With
    /// [`SyncMode::Batched`]: nothing when an fdatasync has covered them
    /// all, else an fdatasync of the newest segment now (older ones were
    /// synced when the next one began), also when a batch flush is running
    /// on another thread (it may not have reached the disk yet); with
    /// [`SyncMode::EveryRecord`] every record already was before its
    /// append returned.
    pub fn sync(&self) -> Result<(), AuditError> {
        if matches!(self.inner.opts.sync, SyncMode::EveryRecord) {
            return Ok(());
        }
        let mut st = self.inner.lock_state();
        let upto = st.appended;
        if self.inner.durable_through() >= upto {
            return Ok(());
        }
        // The segment of the unsynced batch, and the newest one if that is
        // another (a flush running on another thread took the batch's).
        let newest = st
            .head
            .as_ref()
            .and_then(|h| h.segment.as_ref())
            .map(|s| Arc::clone(&s.1));
        let dirty = st.dirty.take();
        let other = newest.filter(|n| dirty.as_ref().is_none_or(|d| !Arc::ptr_eq(d, n)));
        let files: Vec<Arc<File>> = dirty.into_iter().chain(other).collect();
        for (i, f) in files.iter().enumerate() {
            // Durable through `upto` once the last of them is synced.
            let last = i + 1 == files.len();
            self.inner.flush_batch(f, if last { upto } else { 0 })?;
        }
        st.unsynced = 0;
        st.last_sync = Instant::now();
        st.flush_requested = false;
        Ok(())
    }

    /// Writes a digest now if any record is not covered by one; returns the
    /// digest's end sequence, or None if nothing needed sealing.
    pub fn seal(&self) -> Result<Option<u64>, AuditError> {
        let mut st = self.inner.lock_state();
        self.inner.flush(&mut st)?;
        let st = &mut *st;
        let _g = lock_file(&self.inner.lock, &self.inner.dir)?;
        self.inner.refresh_head(&mut st.head)?;
        let r = self.inner.write_digest(st)?;
        Ok(r)
    }

    /// Seals (writes a final digest) and stops the background thread,
    /// reporting a failure that dropping would only log.
    pub fn close(mut self) -> Result<(), AuditError> {
        self.stop_ticker();
        self.seal().map(|_| ())
    }

    fn stop_ticker(&mut self) {
        if let Some(t) = self.ticker.take() {
            if let Ok(mut s) = self.inner.signal.0.lock() {
                s.stop = true;
            }
            self.inner.signal.1.notify_all();
            let _ = t.join();
        }
        // Answers every caller still waiting for a flush first.
        self.inner.group.stop();
    }
}

impl Drop for FileAuditTrail {
    fn drop(&mut self) {
        self.stop_ticker();
        if let Err(e) = self.seal() {
            log::warn!(
                "audit trail {}: final digest not written: {e}",
                self.inner.dir.display()
            );
        }
    }
}

impl AuditSink for FileAuditTrail {
    fn record(&self, event: &AuditEvent) -> Result<(), crate::KmsError> {
        self.append(event).map(|_| ()).map_err(Into::into)
    }

    fn record_anchored(
        &self,
        event: &AuditEvent,
        store: &StoreAnchor,
    ) -> Result<(), crate::KmsError> {
        self.append_anchored(event, store)
            .map(|_| ())
            .map_err(Into::into)
    }

    fn sync(&self) -> Result<(), crate::KmsError> {
        FileAuditTrail::sync(self).map_err(Into::into)
    }
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the state lock leaves the cache possibly
        // stale, never wrong on disk: the head is re-read under the flock.
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => {
                let mut g = p.into_inner();
                g.head = None;
                g
            }
        }
    }

    fn append(&self, event: &AuditEvent, store: Option<&StoreAnchor>) -> Result<u64, AuditError> {
        let id = event.event_id.clone().unwrap_or_else(record::new_event_id);
        let prepared = PreparedRecord::new(event, &id);
        let mut guard = self.lock_state();
        let st = &mut *guard;
        if let Some(a) = store {
            st.store = StoreAnchor::newest(st.store.take(), Some(a.clone()));
        }
        let (seq, file) = {
            let _g = lock_file(&self.lock, &self.dir)?;
            let seq = match self.append_locked(&mut st.head, &prepared, &mut st.line) {
                Ok(s) => s,
                Err(e) => {
                    st.head = None;
                    return Err(e);
                }
            };
            st.unsealed += 1;
            st.appended = seq;
            let file = st
                .head
                .as_ref()
                .and_then(|h| h.segment.as_ref())
                .map(|s| Arc::clone(&s.1));
            let unsealed = st
                .head
                .as_ref()
                .map_or(0, |h| h.seq.saturating_sub(h.last_digest));
            let due = unsealed >= self.opts.digest_every_records
                || st.last_seal.elapsed() >= self.opts.digest_every;
            // A due digest is the background thread's (signing and its
            // fsyncs off the caller's path), unless that thread has fallen
            // a whole period behind; a store anchor is sealed before the
            // call returns.
            let behind = unsealed >= self.opts.digest_every_records.saturating_mul(2);
            if store.is_some() || (due && (!self.opts.background || behind)) {
                self.write_digest(st)?;
            } else if due && !st.seal_requested {
                st.seal_requested = true;
                self.wake_ticker();
            }
            (seq, file)
        };
        match self.opts.sync {
            SyncMode::EveryRecord => {
                // Numbered while the state lock still orders the writes;
                // flushed after both locks are released, shared with the
                // appenders flushing at the same time.
                let ticket = self.group.written(file);
                drop(guard);
                if !durable::defer(&self.group, ticket, &self.dir) {
                    self.group.wait_durable(ticket, &self.dir)?;
                }
            }
            SyncMode::Batched {
                max_records,
                max_delay,
            } => {
                st.unsynced += 1;
                if st
                    .dirty
                    .as_ref()
                    .zip(file.as_ref())
                    .is_some_and(|(a, b)| !Arc::ptr_eq(a, b))
                {
                    // Rotated: the old segment was flushed at rotation.
                    st.unsynced = 1;
                }
                st.dirty = file;
                let due = st.unsynced >= max_records || st.last_sync.elapsed() >= max_delay;
                // The background thread flushes (the caller does not wait
                // for it) unless it has fallen behind.
                let behind = st.unsynced >= max_records.saturating_mul(2);
                if due && self.opts.background && !behind {
                    if !st.flush_requested {
                        st.flush_requested = true;
                        self.wake_ticker();
                    }
                } else if due {
                    // Flushed after the state lock is released, so other
                    // appenders go on writing meanwhile.
                    let dirty = st.dirty.take();
                    st.unsynced = 0;
                    st.last_sync = Instant::now();
                    st.flush_requested = false;
                    drop(guard);
                    if let Some(f) = dirty {
                        self.flush_batch(&f, seq)?;
                    }
                }
            }
        }
        Ok(seq)
    }

    /// fdatasyncs `segment`, a batch's (batched mode), appended to after
    /// this process's record `upto`: that record and every earlier one of
    /// this process are then on disk (records of a segment before it were
    /// synced when the next one began).
    fn flush_batch(&self, segment: &File, upto: u64) -> Result<(), AuditError> {
        segment
            .sync_data()
            .map_err(|e| AuditError::io("fdatasync", &self.dir, e))?;
        self.durable
            .fetch_max(upto, std::sync::atomic::Ordering::AcqRel);
        self.batch_flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The newest of this process's records known to be on disk (batched).
    fn durable_through(&self) -> u64 {
        self.durable.load(std::sync::atomic::Ordering::Acquire)
    }

    fn flush(&self, st: &mut State) -> Result<(), AuditError> {
        if let Some(f) = st.dirty.take() {
            self.flush_batch(&f, st.appended)?;
        }
        st.unsynced = 0;
        st.last_sync = Instant::now();
        st.flush_requested = false;
        Ok(())
    }

    /// Under the flock: brings the head up to date, rotates if needed,
    /// appends the record. Returns its sequence number.
    fn append_locked(
        &self,
        head_slot: &mut Option<Head>,
        record: &PreparedRecord,
        line: &mut Vec<u8>,
    ) -> Result<u64, AuditError> {
        self.refresh_head(head_slot)?;
        let head = head_slot.get_or_insert_with(|| Head {
            seq: 0,
            hash: GENESIS_HASH.into(),
            last_digest: 0,
            segment: None,
            unsealed_prefixes: Some(Vec::new()),
            generation: 0,
        });
        let seq = head.seq + 1;
        let need_new = match &head.segment {
            None => true,
            Some((_, _, len)) => *len >= self.opts.max_segment_bytes,
        };
        if need_new {
            if let Some((_, old, _)) = &head.segment {
                old.sync_data()
                    .map_err(|e| AuditError::io("fdatasync", &self.dir, e))?;
            }
            head.generation = self.bump_generation()?;
            let path = self.dir.join(segment::segment_name(seq));
            let f = open_append(&self.handle, &path)?;
            self.handle
                .sync()
                .map_err(|e| AuditError::io("fsync", &self.dir, e))?;
            head.segment = Some((seq, Arc::new(f), 0));
        }
        let hash = record.seal_into(seq, &head.hash, head.last_digest, line);
        let Some((first, file, len)) = head.segment.as_mut() else {
            return Err(AuditError::BadHead {
                path: self.dir.clone(),
                reason: "no segment".into(),
            });
        };
        if let Err(e) = (&**file).write_all(line) {
            // Take back a partial line so the chain stays readable.
            let _ = file.set_len(*len);
            let path = self.dir.join(segment::segment_name(*first));
            return Err(AuditError::io("append", path, e));
        }
        *len += line.len() as u64;
        if let Some(p) = head.unsealed_prefixes.as_mut() {
            p.push(digest::hash_prefix(&hash));
        }
        head.seq = seq;
        head.hash = hash;
        Ok(seq)
    }

    /// The trail's change counter: 8 bytes (little-endian) at the start of
    /// `<dir>/lock`, 0 while the file is shorter.
    fn generation(&self) -> Result<u64, AuditError> {
        let mut b = [0u8; 8];
        match self.lock.read_exact_at(&mut b, 0) {
            Ok(()) => Ok(u64::from_le_bytes(b)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(AuditError::io("read", self.dir.join(LOCK_FILE), e)),
        }
    }

    /// Under the flock, before creating a segment or writing a digest (the
    /// changes that leave the segment other writers cached untouched):
    /// advances the change counter so their next append re-reads the head.
    fn bump_generation(&self) -> Result<u64, AuditError> {
        let g = self.generation()?.wrapping_add(1);
        self.lock
            .write_all_at(&g.to_le_bytes(), 0)
            .map_err(|e| AuditError::io("write", self.dir.join(LOCK_FILE), e))?;
        Ok(g)
    }

    /// Under the flock: makes `head` match the disk, cheaply when nothing
    /// else changed it: the open segment still has a name and its cached
    /// size (other writers appended nothing; one statx), and the change
    /// counter is unchanged (nobody rotated or wrote a digest; one pread).
    /// No path is looked up: the names checked before (the next segment,
    /// the digest of the head) are new for every record, so each lookup
    /// missed the dentry cache and searched the directory.
    fn refresh_head(&self, head: &mut Option<Head>) -> Result<(), AuditError> {
        if let Some(h) = head.as_ref()
            && let Some((_, file, len)) = &h.segment
        {
            // A segment removed or replaced under its name has no link left.
            let unchanged = size_and_links(file).is_some_and(|(n, links)| n == *len && links > 0);
            if unchanged && self.generation()? == h.generation {
                return Ok(());
            }
        }
        *head = self.scan_head()?;
        Ok(())
    }

    /// Reads the head from disk: the last complete record of the newest
    /// non-empty segment. Removes crash debris (a torn final line, an empty
    /// newest segment).
    fn scan_head(&self) -> Result<Option<Head>, AuditError> {
        let generation = self.generation()?;
        let listing = segment::list(&self.dir)?;
        for (first, path) in listing.segments.iter().rev() {
            let last = segment::last_line(path)?;
            let (line, end) = match last {
                LastLine::Complete { line, end } => (line, end),
                LastLine::Empty | LastLine::OnlyTorn => {
                    // Nothing committed in it: a crash right after creating it.
                    std::fs::remove_file(path).map_err(|e| AuditError::io("remove", path, e))?;
                    continue;
                }
            };
            let file = open_append(&self.handle, path)?;
            let len = file
                .metadata()
                .map_err(|e| AuditError::io("stat", path, e))?
                .len();
            if len > end {
                // A torn write never acknowledged to its caller.
                file.set_len(end)
                    .map_err(|e| AuditError::io("truncate", path, e))?;
            }
            let rec: Map<String, Value> =
                serde_json::from_str(&line).map_err(|e| AuditError::BadHead {
                    path: path.clone(),
                    reason: format!("last record is not JSON: {e}"),
                })?;
            let bad = |what: &str| AuditError::BadHead {
                path: path.clone(),
                reason: format!("last record has no {what}"),
            };
            let seq = rec.sequence().ok_or_else(|| bad("sequenceNumber"))?;
            let hash = rec
                .str_at(&["hash"])
                .ok_or_else(|| bad("hash"))?
                .to_string();
            let mut last_digest = rec
                .get("lastDigestSequence")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("lastDigestSequence"))?;
            if self.dir.join(segment::digest_name(seq)).exists() {
                last_digest = seq;
            }
            return Ok(Some(Head {
                seq,
                hash,
                last_digest,
                segment: Some((*first, Arc::new(file), end)),
                unsealed_prefixes: (last_digest == seq).then(Vec::new),
                generation,
            }));
        }
        Ok(None)
    }

    /// Under the flock with a fresh head: writes `digest-<head>.json` covering
    /// every record after the previous digest. None if there is nothing to seal.
    fn write_digest(&self, st: &mut State) -> Result<Option<u64>, AuditError> {
        let Some(head) = st.head.as_mut() else {
            return Ok(None);
        };
        if head.seq == 0 || head.last_digest >= head.seq {
            st.unsealed = 0;
            st.last_seal = Instant::now();
            st.seal_requested = false;
            return Ok(None);
        }
        // The records a digest covers are durable before it is (older
        // segments were flushed when the trail rotated away from them).
        if let Some((_, f, _)) = &head.segment {
            f.sync_data()
                .map_err(|e| AuditError::io("fdatasync", &self.dir, e))?;
        }
        let listing = segment::list(&self.dir)?;
        let (prev_seq, prev_hash, prev_store) = match listing
            .digests
            .iter()
            .rev()
            .find(|(end, _)| *end < head.seq)
        {
            Some((end, path)) => {
                let bytes = std::fs::read(path).map_err(|e| AuditError::io("read", path, e))?;
                // Carried on only when validly signed: a planted digest
                // must not raise the anchor.
                let anchor = serde_json::from_slice::<Digest>(&bytes)
                    .ok()
                    .filter(|d| d.signature_valid(&self.key.public_key()))
                    .and_then(|d| d.store_anchor());
                (*end, chain::sha256_hex(&bytes), anchor)
            }
            None => (0, GENESIS_HASH.to_string(), None),
        };
        let store = StoreAnchor::newest(st.store.clone(), prev_store);
        let start = prev_seq + 1;
        let count = usize::try_from(head.seq - prev_seq).unwrap_or(0);
        let cached = head
            .unsealed_prefixes
            .take()
            .filter(|p| head.last_digest == prev_seq && p.len() == count);
        let prefixes = match cached {
            Some(p) => p,
            None => self.read_prefixes(&listing, start, head.seq)?,
        };
        let mut d = Digest {
            digest_version: DIGEST_VERSION.into(),
            digest_start_sequence: start,
            digest_end_sequence: head.seq,
            last_hash: head.hash.clone(),
            previous_digest_sequence: prev_seq,
            previous_digest_hash: prev_hash,
            digest_time: rfc3339(self.opts.clock.now_unix()),
            public_key_fingerprint: String::new(),
            signature_algorithm: String::new(),
            record_hash_prefixes: digest::encode_prefixes(&prefixes),
            signature: String::new(),
            store_generation: None,
            store_sha256: None,
        };
        d.set_store_anchor(store.as_ref());
        self.key.sign(&mut d);
        head.generation = self.bump_generation()?;
        write_atomic(
            &self.handle,
            &segment::digest_name(head.seq),
            d.to_canonical_json().as_bytes(),
        )?;
        head.last_digest = head.seq;
        head.unsealed_prefixes = Some(Vec::new());
        st.unsealed = 0;
        st.last_seal = Instant::now();
        st.seal_requested = false;
        Ok(Some(head.seq))
    }

    /// Hash prefixes of records `start..=end`, read from the segments
    /// (zeros for a record that cannot be read: `verify` names it).
    fn read_prefixes(
        &self,
        listing: &segment::Listing,
        start: u64,
        end: u64,
    ) -> Result<Vec<[u8; digest::HASH_PREFIX_LEN]>, AuditError> {
        let count = usize::try_from(end + 1 - start).unwrap_or(0);
        let mut prefixes = vec![[0u8; digest::HASH_PREFIX_LEN]; count];
        for (i, (first, path)) in listing.segments.iter().enumerate() {
            let next_first = listing.segments.get(i + 1).map_or(u64::MAX, |s| s.0);
            if next_first <= start || *first > end {
                continue;
            }
            for raw in segment::read_lines(path)? {
                let Ok(rec) = serde_json::from_str::<Map<String, Value>>(&raw.text) else {
                    continue;
                };
                if let (Some(s), Some(h)) = (rec.sequence(), rec.str_at(&["hash"]))
                    && s >= start
                    && s <= end
                {
                    prefixes[usize::try_from(s - start).unwrap_or(0)] = digest::hash_prefix(h);
                }
            }
        }
        Ok(prefixes)
    }
}
