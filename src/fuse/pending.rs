//! New files whose data key is wrapped in the background
//! ([`crate::keys::wrap`]): the keys still pending, by backing inode, and
//! the waits that keep such a file from being used under its key-pending
//! header (another open, fsync, a rename that re-wraps it).

use super::Core;
use super::errno::{FsError, FsResult};
use super::inode::{InodeState, PlainPath};
use crate::format::header::{HeaderError, key_pending_header};
use crate::format::{FileHeader, FileId, HEADER_LEN};
use crate::keys::wrap::{Ticket, WrapJob, WrapLimits, WrapStats, Wrapper, wrap_now};
use crate::keys::{DataKeyBytes, KeyService};
use kms_engine::{KmsError, Principal};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The longest an open, fsync or rename waits for a new file's key.
pub(crate) const KEY_WAIT: Duration = Duration::from_secs(15);
/// A key-pending file another mount changed this recently may still get
/// its key (see [`Core::read_header`]).
const FOREIGN_PENDING: Duration = Duration::from_secs(60);
/// The longest a create waits for room in the queue of pending keys.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// (device, inode) of a backing file.
type BackingId = (u64, u64);

struct Entry {
    path: PlainPath,
    ticket: Arc<Ticket>,
}

type Table = Arc<Mutex<HashMap<BackingId, Entry>>>;

/// The background wrapping of a mount: `None` when new files' keys come
/// from GenerateDataKey in `create` itself.
#[derive(Default)]
pub(crate) struct PendingKeys {
    wrapper: Option<Wrapper>,
    table: Table,
}

impl std::fmt::Debug for PendingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingKeys")
            .field("wrapper", &self.wrapper)
            .finish_non_exhaustive()
    }
}

fn lock(t: &Table) -> MutexGuard<'_, HashMap<BackingId, Entry>> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

fn backing_id(f: &File) -> std::io::Result<BackingId> {
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

impl PendingKeys {
    pub(crate) fn start(
        keys: Arc<dyn KeyService>,
        limits: Option<WrapLimits>,
    ) -> FsResult<PendingKeys> {
        let wrapper = match limits {
            Some(l) => Some(Wrapper::start(keys, l)?),
            None => None,
        };
        Ok(PendingKeys {
            wrapper,
            table: Arc::default(),
        })
    }

    pub(crate) fn stats(&self) -> Option<WrapStats> {
        self.wrapper.as_ref().map(Wrapper::stats)
    }

    /// Wraps what is still pending and stops the workers (the mount ends).
    pub(crate) fn shutdown(&self) {
        if let Some(w) = &self.wrapper {
            w.shutdown();
        }
    }
}

/// A new file's data key: from GenerateDataKey (wrapped already), or made
/// here and wrapped in the background once the file exists.
pub(crate) enum NewKey {
    Generated(crate::keys::GeneratedDataKey),
    Local(DataKeyBytes),
}

impl NewKey {
    pub(crate) fn plaintext(&self) -> &DataKeyBytes {
        match self {
            NewKey::Generated(g) => &g.plaintext,
            NewKey::Local(k) => k,
        }
    }

    /// The header the file is created with: final, or key-pending.
    pub(crate) fn header(&self, file_id: FileId) -> FsResult<[u8; HEADER_LEN]> {
        match self {
            NewKey::Generated(g) => FileHeader::new(file_id, g.wrapped.clone())
                .and_then(|h| h.encode())
                .map_err(FsError::internal),
            NewKey::Local(_) => Ok(key_pending_header(file_id)),
        }
    }
}

impl Core {
    /// Whether a new file's key is wrapped in the background: when the
    /// mount does so, and the service is not known to be unreachable (then
    /// the create asks it and fails with EIO at once).
    pub(crate) fn wraps_in_background(&self) -> bool {
        self.pending.wrapper.is_some() && !self.keys.unreachable()
    }

    /// A fresh local data key (32 random bytes, as the service makes them).
    pub(crate) fn local_data_key(&self) -> FsResult<NewKey> {
        let mut k = DataKeyBytes::new([0; 32]);
        crate::crypto::fill_random(&mut k[..]).map_err(FsError::internal)?;
        Ok(NewKey::Local(k))
    }

    /// Starts wrapping the local key of the file just created at `path`
    /// (open as `file`, with `file_id`), as `caller`. The final header is
    /// written to `file` once the service answered. When the queue is full
    /// the key is wrapped here and now; an error then is the create's.
    ///
    /// `node` receives the file's inode state once the kernel knows the
    /// file: the header is then written under its content lock, and the
    /// file's times are put back after it (writes and `setattr` of times
    /// take that lock too, so what `tar -x` or `cp -p` set in the meantime
    /// stays, as does the mtime of a write).
    pub(crate) fn wrap_new_key(
        &self,
        file: &File,
        path: &PlainPath,
        file_id: FileId,
        dek: &DataKeyBytes,
        caller: Principal,
        node: Arc<OnceLock<Arc<InodeState>>>,
    ) -> FsResult<()> {
        let id = backing_id(file)?;
        let ticket = Arc::new(Ticket::new());
        lock(&self.pending.table).insert(
            id,
            Entry {
                path: path.clone(),
                ticket: ticket.clone(),
            },
        );
        let out = file.try_clone()?;
        let table = self.pending.table.clone();
        let finish = Box::new(move |wrapped: &[u8]| -> Result<(), KmsError> {
            let header = FileHeader::new(file_id, wrapped.to_vec())
                .and_then(|h| h.encode())
                .map_err(|e| KmsError::Internal(e.to_string()))?;
            // Under the inode's content lock once the kernel knows the
            // file (before that, nobody else can touch it).
            let _content = node
                .get()
                .map(|state| state.io.write())
                .transpose()
                .map_err(|_| KmsError::Internal("the inode's lock is poisoned".into()))?;
            crate::volume::keeping_times(&out, || out.write_all_at(&header, 0))
                .map_err(|e| KmsError::Internal(format!("writing the file header: {e}")))?;
            lock(&table).remove(&id);
            Ok(())
        });
        let job = WrapJob {
            caller,
            key_id: self.vol.config.master_key_id.clone(),
            dek: DataKeyBytes::new(**dek),
            ctx: self.file_context(path),
            expect_key_id: self.vol.bound_key_id().to_string(),
            what: path.display(),
            finish,
        };
        let Some(wrapper) = &self.pending.wrapper else {
            return Err(FsError::internal("no background wrapping on this mount"));
        };
        let Err(job) = wrapper.submit(ticket.clone(), job, QUEUE_WAIT) else {
            return Ok(());
        };
        match wrap_now(&*self.keys, *job) {
            Ok(()) => {
                ticket.done();
                Ok(())
            }
            Err(e) => {
                ticket.fail(e.clone());
                lock(&self.pending.table).remove(&id);
                Err(FsError::Kms(e))
            }
        }
    }

    /// The ticket of the file open as `file`, if its key was pending.
    fn ticket_of(&self, file: &File) -> FsResult<Option<Arc<Ticket>>> {
        if lock(&self.pending.table).is_empty() {
            return Ok(None);
        }
        let id = backing_id(file)?;
        Ok(lock(&self.pending.table).get(&id).map(|e| e.ticket.clone()))
    }

    /// Waits until the key of the file open as `file` is wrapped (if it
    /// was pending): what fsync needs before the file is durable.
    pub(crate) fn await_key_of(&self, file: &File, path: &dyn Fn() -> String) -> FsResult<()> {
        match self.ticket_of(file)? {
            Some(t) => t.wait(KEY_WAIT).map_err(|e| {
                log::info!("{}: data key not wrapped: {e}", path());
                FsError::Kms(e)
            }),
            None => Ok(()),
        }
    }

    /// Reads the header of `file` for an open: a key-pending header of a
    /// file created by this mount waits for its key (then the final header
    /// is read); one without a pending key here waits a while if the file
    /// is young (another mount may be wrapping it), else is a file whose
    /// key was never wrapped (an error).
    pub(crate) fn read_header(&self, file: &File, path: &str) -> FsResult<FileHeader> {
        let mut hdr = [0u8; HEADER_LEN];
        let n = read_full_at(file, &mut hdr)?;
        let err = match FileHeader::decode(&hdr[..n]) {
            Ok(h) => return Ok(h),
            Err(HeaderError::KeyPending) => match self.ticket_of(file)? {
                Some(t) => match t.wait(KEY_WAIT) {
                    Ok(()) => {
                        let n = read_full_at(file, &mut hdr)?;
                        match FileHeader::decode(&hdr[..n]) {
                            Ok(h) => return Ok(h),
                            Err(e) => e,
                        }
                    }
                    Err(e) => {
                        log::info!("{path}: data key not wrapped: {e}");
                        return Err(FsError::Kms(e));
                    }
                },
                None => match self.await_foreign_key(file, &mut hdr)? {
                    Some(h) => return Ok(h),
                    None => HeaderError::KeyPending,
                },
            },
            Err(e) => e,
        };
        log::warn!("{path}: bad file header: {err}");
        Err(FsError::tampered(path, err.to_string()))
    }

    /// A key-pending header without a pending key in this mount: another
    /// mount of the cipher directory (another host) may be wrapping it.
    /// When the backing file changed within [`FOREIGN_PENDING`], its header
    /// is read again until it is final or [`KEY_WAIT`] has passed; an older
    /// one is a file whose key was never wrapped (`None`).
    fn await_foreign_key(
        &self,
        file: &File,
        hdr: &mut [u8; HEADER_LEN],
    ) -> FsResult<Option<FileHeader>> {
        let changed = file.metadata()?.modified()?;
        let age = std::time::SystemTime::now()
            .duration_since(changed)
            .unwrap_or_default();
        if age > FOREIGN_PENDING {
            return Ok(None);
        }
        let deadline = std::time::Instant::now() + KEY_WAIT;
        while std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let n = read_full_at(file, hdr)?;
            match FileHeader::decode(&hdr[..n]) {
                Ok(h) => return Ok(Some(h)),
                Err(HeaderError::KeyPending) => {}
                Err(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Waits for the keys pending at `path` or below it (a rename is about
    /// to re-wrap them). A key the service refused leaves a file that moves
    /// without re-wrap (it never opens); one that stays pending fails the
    /// rename with EIO rather than let a late header land under a new path.
    pub(crate) fn settle_keys_below(&self, path: &PlainPath) -> FsResult<()> {
        let tickets: Vec<(String, Arc<Ticket>)> = {
            let t = lock(&self.pending.table);
            if t.is_empty() {
                return Ok(());
            }
            let p = path.as_bytes();
            t.values()
                .filter(|e| {
                    let q = e.path.as_bytes();
                    q == p
                        || (q.starts_with(p)
                            && (p.ends_with(b"/") || q.get(p.len()) == Some(&b'/')))
                })
                .map(|e| (e.path.display(), e.ticket.clone()))
                .collect()
        };
        for (shown, t) in tickets {
            match t.wait(KEY_WAIT) {
                Ok(()) => {}
                Err(e @ KmsError::Unavailable(_)) if t.is_pending() => {
                    log::info!("{shown}: not moved: its data key is not wrapped yet: {e}");
                    return Err(FsError::Kms(e));
                }
                Err(_) => {}
            }
        }
        Ok(())
    }
}

/// Reads as much as possible of `buf.len()` bytes at offset 0.
fn read_full_at(f: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
