//! Key administration while mounted: a disabled master key stops new opens
//! within the re-authorization interval (5 s) while open handles keep
//! working; re-enabling restores access.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, root};
use kms_engine::KeyIdRequest;
use kmsfs::format::NamesMode;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

#[test]
fn disabled_key_stops_new_opens_but_not_open_handles() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount_with(Fixture::short_reauth(), true);
    fs::write(m.path("f"), b"before").unwrap();
    let mut open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("f"))
        .unwrap();
    fx.engine
        .disable_key(
            &root(),
            KeyIdRequest {
                key_id: fx.key_id.clone(),
            },
        )
        .unwrap();
    let start = Instant::now();
    let refused = loop {
        match fs::File::open(m.path("f")) {
            Err(e) => break e,
            Ok(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Ok(_) => panic!("new opens still succeed 20 s after the key was disabled"),
        }
    };
    assert_eq!(refused.raw_os_error(), Some(libc::EACCES));
    eprintln!("new opens refused after {:?}", start.elapsed());
    // New files cannot get a data key either.
    assert!(fs::write(m.path("new"), b"x").is_err());
    // The handle opened before keeps reading and writing.
    open.seek(SeekFrom::End(0)).unwrap();
    open.write_all(b" and after").unwrap();
    open.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    open.read_to_string(&mut s).unwrap();
    assert_eq!(s, "before and after");
    drop(open);
    fx.engine
        .enable_key(
            &root(),
            KeyIdRequest {
                key_id: fx.key_id.clone(),
            },
        )
        .unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"before and after");
}

/// An fsync of a file or a directory makes the engine's audit records
/// durable first (`KeyService::sync_audit`): with a trail flushed in
/// batches (`--audit-flush-ms`), a file reported durable has the record of
/// its key's GenerateDataKey on disk too. Nothing else asks for it.
#[test]
fn fsync_makes_the_audit_records_durable_first() {
    use kms_engine::audit::{AuditEvent, AuditSink};
    use kms_engine::{Engine, KmsError, RootKeySource, SystemClock};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Counts records, and the records there were at each sync.
    #[derive(Debug, Default)]
    struct Sink {
        records: AtomicUsize,
        syncs: Mutex<Vec<usize>>,
    }
    impl AuditSink for Sink {
        fn record(&self, _: &AuditEvent) -> Result<(), KmsError> {
            self.records.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn sync(&self) -> Result<(), KmsError> {
            let n = self.records.load(Ordering::SeqCst);
            self.syncs.lock().unwrap().push(n);
            Ok(())
        }
    }

    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let sink = Arc::new(Sink::default());
    let engine = Engine::open(
        &fx.engine_dir,
        RootKeySource::Passphrase(zeroize::Zeroizing::new("test passphrase".into())),
        Arc::new(SystemClock),
        sink.clone(),
    )
    .unwrap();
    let m = fx.mount_on(
        Arc::new(Arc::new(engine)),
        kmsfs::fuse::FsOptions::default(),
        true,
    );
    let before = sink.records.load(Ordering::SeqCst);
    let mut f = fs::File::create(m.path("f")).unwrap();
    f.write_all(b"data").unwrap();
    let created = sink.records.load(Ordering::SeqCst);
    assert!(created > before, "the create's GenerateDataKey is audited");
    assert!(sink.syncs.lock().unwrap().is_empty(), "no sync unasked");
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    fs::File::open(&m.mnt).unwrap().sync_all().unwrap();
    let syncs = sink.syncs.lock().unwrap().clone();
    assert_eq!(syncs.len(), 3, "fsync, fdatasync, fsync of the directory");
    assert!(syncs.iter().all(|n| *n >= created), "{syncs:?} < {created}");
}
