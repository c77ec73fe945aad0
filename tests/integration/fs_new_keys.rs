//! New files whose data key is wrapped in the background (`--new-keys
//! background`, `kmsfs::keys::wrap`), on a key service whose Encrypt waits
//! at a gate the test opens: close does not wait for the key, the backing
//! file carries the key-pending header meanwhile, and another open, fsync
//! and rename wait for it; a refused key fails the file (EACCES while
//! mounted, EIO and an fsck problem after), never losing other files.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::common::{self, Fixture};
use kms_engine::{EncryptionContext, Engine, KmsError, Principal};
use kmsfs::format::NamesMode;
use kmsfs::fuse::FsOptions;
use kmsfs::keys::wrap::WrapLimits;
use kmsfs::keys::{DataKeyBytes, GeneratedDataKey, KeyService};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

/// The engine, with Encrypt held at a gate (and refused while `deny`).
struct Gated {
    engine: Arc<Engine>,
    open: Mutex<bool>,
    opened: Condvar,
    deny: AtomicBool,
    encrypts: AtomicU64,
    generates: AtomicU64,
}

impl Gated {
    fn new(engine: Arc<Engine>) -> Arc<Gated> {
        Arc::new(Gated {
            engine,
            open: Mutex::new(false),
            opened: Condvar::new(),
            deny: AtomicBool::new(false),
            encrypts: AtomicU64::new(0),
            generates: AtomicU64::new(0),
        })
    }

    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl KeyService for Gated {
    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        self.generates.fetch_add(1, Ordering::SeqCst);
        self.engine.generate_data_key(caller, key_id, ctx)
    }
    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        plaintext: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        self.encrypts.fetch_add(1, Ordering::SeqCst);
        if self.deny.load(Ordering::SeqCst) {
            return Err(KmsError::AccessDenied("denied by the test".into()));
        }
        self.engine.encrypt_data_key(caller, key_id, plaintext, ctx)
    }
    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        self.engine.decrypt_data_key(caller, wrapped, ctx)
    }
    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old: &EncryptionContext,
        new: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.engine.rewrap_data_key(caller, wrapped, old, new)
    }
}

fn background() -> FsOptions {
    FsOptions {
        background_wrap: Some(WrapLimits {
            workers: 4,
            max_pending: 64,
            retry_delay: Duration::from_millis(50),
        }),
        ..FsOptions::default()
    }
}

/// The flags of the backing file's header (1: key pending).
/// Read with O_NOATIME: the test's look leaves the file's access time.
fn header_flags(fx: &Fixture, rel: &str) -> u16 {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(fx.cipher.join(rel))
        .unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 0).unwrap();
    u16::from_be_bytes([b[6], b[7]])
}

/// Runs `f` in a thread; its result comes through the returned channel.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

#[test]
fn a_new_file_is_written_before_its_key_is_wrapped_and_is_durable_only_with_it() {
    let fx = Fixture::new(4096, NamesMode::Plaintext);
    let gated = Gated::new(fx.engine.clone());
    let m = fx.mount_on(gated.clone(), background(), false);
    // create, write and close return while the service holds every key.
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(m.path("a"), &body).unwrap();
    std::fs::write(m.path("b"), b"to be moved\n").unwrap();
    let mut held = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(m.path("c"))
        .unwrap();
    held.write_all(b"synced\n").unwrap();
    assert_eq!(gated.encrypts.load(Ordering::SeqCst), 0);
    assert_eq!(gated.generates.load(Ordering::SeqCst), 0);
    for f in ["a", "b", "c"] {
        assert_eq!(header_flags(&fx, f), 1, "{f}: not key-pending");
    }
    // Another open, an fsync and a rename wait for the key.
    let pa = m.path("a");
    let reader = spawn(move || std::fs::read(pa));
    let syncer = spawn(move || held.sync_all().map(|()| held));
    let (pb, pb2) = (m.path("b"), m.path("b2"));
    let renamer = spawn(move || std::fs::rename(pb, pb2));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        reader.try_recv().is_err(),
        "read a file whose key is pending"
    );
    assert!(syncer.try_recv().is_err(), "fsync returned before the key");
    assert!(
        renamer.try_recv().is_err(),
        "renamed a file whose key is pending"
    );
    gated.open_gate();
    let wait = Duration::from_secs(30);
    assert_eq!(reader.recv_timeout(wait).unwrap().unwrap(), body);
    let held = syncer.recv_timeout(wait).unwrap().unwrap();
    renamer.recv_timeout(wait).unwrap().unwrap();
    // After fsync the header is final; the others' are once wrapped.
    assert_eq!(header_flags(&fx, "c"), 0);
    drop(held);
    assert_eq!(std::fs::read(m.path("b2")).unwrap(), b"to be moved\n");
    let stats = m.core.status(&fx.mnt).wraps.unwrap();
    assert_eq!((stats.wrapped, stats.failed), (3, 0), "{stats:?}");
    assert_eq!(gated.generates.load(Ordering::SeqCst), 0);
    // A new file made now is wrapped in the background too, and the
    // unmount waits for its key.
    std::fs::write(m.path("d"), b"last\n").unwrap();
    m.unmount();
    for f in ["a", "b2", "c", "d"] {
        assert_eq!(header_flags(&fx, f), 0, "{f}");
    }
    // Everything reads back on a plain mount (the keys were wrapped under
    // each file's final path).
    let m = fx.mount();
    assert_eq!(std::fs::read(m.path("a")).unwrap(), body);
    assert_eq!(std::fs::read(m.path("b2")).unwrap(), b"to be moved\n");
    assert_eq!(std::fs::read(m.path("c")).unwrap(), b"synced\n");
    assert_eq!(std::fs::read(m.path("d")).unwrap(), b"last\n");
}

#[test]
fn a_refused_key_fails_its_file_and_leaves_a_key_pending_header_that_never_opens() {
    let fx = Fixture::new(4096, NamesMode::Plaintext);
    let gated = Gated::new(fx.engine.clone());
    gated.deny.store(true, Ordering::SeqCst);
    let m = fx.mount_on(gated.clone(), background(), false);
    // The create and write succeed: the refusal comes with the key.
    std::fs::write(m.path("kept"), b"x").unwrap();
    gated.open_gate();
    // The refusal is the file's fate: opens and fsync report EACCES.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while m.core.status(&fx.mnt).wraps.unwrap().failed == 0 {
        assert!(std::time::Instant::now() < deadline, "never failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = std::fs::read(m.path("kept")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // The service answers again: new files are kept.
    gated.deny.store(false, Ordering::SeqCst);
    std::fs::write(m.path("ok"), b"fine\n").unwrap();
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(m.path("ok"))
        .unwrap();
    f.sync_all().unwrap();
    m.unmount();
    // After the mount: the refused file's header is still key-pending; it
    // gives EIO, and fsck names it.
    assert_eq!(header_flags(&fx, "kept"), 1);
    // Left a while ago (a file changed within the last minute may still be
    // getting its key from another mount, and is waited for).
    let st = std::process::Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(fx.cipher.join("kept"))
        .status()
        .unwrap();
    assert!(st.success());
    let m = fx.mount();
    let e = std::fs::read(m.path("kept")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_eq!(std::fs::read(m.path("ok")).unwrap(), b"fine\n");
    m.unmount();
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let vol = kmsfs::volume::Volume::open(&fx.cipher, &ks, &common::root()).unwrap();
    let problems = kmsfs::fsck::check(&vol, ks.as_ref(), &common::root())
        .unwrap()
        .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].path.ends_with("kept"), "{problems:?}");
    assert!(problems[0].what.contains("never wrapped"), "{problems:?}");
}

/// `tar -x` and `cp -p` set a new file's times right after writing it,
/// while its key is still being wrapped: the header written when the key
/// comes must not move them (nor the times of a file written after them),
/// through the mount and after a remount.
#[test]
fn times_set_while_the_key_is_pending_survive_its_header() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fixture::new(4096, NamesMode::Plaintext);
    let gated = Gated::new(fx.engine.clone());
    let m = fx.mount_on(gated.clone(), background(), false);
    let then = std::time::SystemTime::UNIX_EPOCH + Duration::new(1_000_000_000, 500);
    for name in ["t0", "t1", "t2"] {
        let f = std::fs::File::create(m.path(name)).unwrap();
        (&f).write_all(name.as_bytes()).unwrap();
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(then)
                .set_modified(then),
        )
        .unwrap();
    }
    assert_eq!(header_flags(&fx, "t0"), 1, "the key is not pending");
    gated.open_gate();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while m.core.status(&fx.mnt).wraps.unwrap().wrapped < 3 {
        assert!(std::time::Instant::now() < deadline, "never wrapped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let check = |m: &common::Mounted, when: &str| {
        for name in ["t0", "t1", "t2"] {
            let md = std::fs::metadata(m.path(name)).unwrap();
            assert_eq!(
                (md.mtime(), md.mtime_nsec(), md.atime(), md.atime_nsec()),
                (1_000_000_000, 500, 1_000_000_000, 500),
                "{name} {when}"
            );
        }
    };
    check(&m, "once wrapped");
    m.unmount();
    for name in ["t0", "t1", "t2"] {
        assert_eq!(header_flags(&fx, name), 0, "{name}");
    }
    let m = fx.mount();
    check(&m, "after a remount");
    for name in ["t0", "t1", "t2"] {
        assert_eq!(std::fs::read(m.path(name)).unwrap(), name.as_bytes());
    }
    m.unmount();
}
