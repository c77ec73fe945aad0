//! Directory renames racing with creates, writes and opens below the
//! renamed directory: every file must end up with its data key bound to the
//! path it lives at (readable after a remount, with a cold key cache, and
//! clean in `fsck`), and no rename, create or open may fail with EIO.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, root};
use kmsfs::format::NamesMode;
use kmsfs::keys::KeyService;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The names the renamed directory cycles through.
const NAMES: [&str; 3] = ["d", "e", "f"];
const WRITERS: usize = 3;
const FILES_PER_WRITER: usize = 30;
const RENAMES: usize = 45;

fn content(writer: usize, n: usize) -> Vec<u8> {
    format!("writer {writer} file {n};")
        .repeat(200 + n)
        .into_bytes()
}

/// Runs `op` on `rel` below whichever name the directory has now; a
/// directory that moved away between the choice and the call (ENOENT) is
/// looked for again. Any other error fails the test.
fn below_moving_dir<T>(mnt: &Path, rel: &str, op: impl Fn(&Path) -> std::io::Result<T>) -> T {
    for _ in 0..10_000 {
        for name in NAMES {
            match op(&mnt.join(name).join(rel)) {
                Ok(v) => return v,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => panic!("{name}/{rel}: {e}"),
            }
        }
    }
    panic!("{rel}: never found below a name of the moving directory");
}

/// Creates and writes files below the moving directory, half of them one
/// level deeper; returns what it wrote.
fn writer(mnt: PathBuf, w: usize) -> Vec<(String, Vec<u8>)> {
    let mut written = Vec::new();
    for n in 0..FILES_PER_WRITER {
        let rel = if n % 2 == 0 {
            format!("w{w}-{n}")
        } else {
            format!("sub/w{w}-{n}")
        };
        let data = content(w, n);
        let mut f = below_moving_dir(&mnt, &rel, |p| {
            fs::OpenOptions::new().write(true).create_new(true).open(p)
        });
        // The handle keeps its key wherever the directory goes meanwhile.
        let (a, b) = data.split_at(data.len() / 2);
        f.write_all(a).unwrap();
        f.write_all(b).unwrap();
        drop(f);
        written.push((rel, data));
    }
    written
}

/// Opens and reads one existing file below the moving directory until told
/// to stop: an open racing with a rename must not fail with EIO.
fn reader(mnt: PathBuf, stop: Arc<AtomicBool>) -> usize {
    let expected = content(99, 0);
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let got = below_moving_dir(&mnt, "sub/steady", |p| fs::read(p));
        assert_eq!(got, expected, "sub/steady read back wrong");
        reads += 1;
    }
    reads
}

/// Renames the directory round its names; every rename must succeed.
fn renamer(mnt: PathBuf) -> usize {
    for i in 0..RENAMES {
        let from = mnt.join(NAMES[i % NAMES.len()]);
        let to = mnt.join(NAMES[(i + 1) % NAMES.len()]);
        fs::rename(&from, &to).unwrap_or_else(|e| panic!("rename {i}: {e}"));
    }
    RENAMES % NAMES.len()
}

/// Sets the flag when dropped: the reader stops also when another thread's
/// failure unwinds the test (it would otherwise spin forever).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn check_all(dir: &Path, expected: &[(String, Vec<u8>)]) {
    for (rel, data) in expected {
        let got = fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == *data, "{rel}: content differs");
    }
}

#[test]
fn directory_renames_racing_with_creates_keep_every_file_readable() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("d/sub/steady"), content(99, 0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (written, final_name, reads) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mnt = m.mnt.clone();
                s.spawn(move || writer(mnt, w))
            })
            .collect();
        let rd = {
            let (mnt, stop) = (m.mnt.clone(), stop.clone());
            s.spawn(move || reader(mnt, stop))
        };
        let stop_reader = StopOnDrop(stop.clone());
        let mnt = m.mnt.clone();
        let rn = s.spawn(move || renamer(mnt));
        let final_index = rn.join().unwrap();
        let mut written = Vec::new();
        for w in writers {
            written.extend(w.join().unwrap());
        }
        drop(stop_reader);
        (written, NAMES[final_index], rd.join().unwrap())
    });
    assert_eq!(written.len(), WRITERS * FILES_PER_WRITER);
    assert!(reads > 0);
    let dir = m.path(final_name);
    check_all(&dir, &written);
    m.unmount();
    // A cold key cache: every key must unwrap under its current path.
    let m = fx.mount();
    check_all(&m.path(final_name), &written);
    m.unmount();
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let vol = kmsfs::volume::Volume::open(&fx.cipher, &ks, &root()).unwrap();
    let report = kmsfs::fsck::check(&vol, ks.as_ref(), &root()).unwrap();
    assert!(report.problems.is_empty(), "fsck: {:?}", report.problems);
    assert_eq!(report.files as usize, WRITERS * FILES_PER_WRITER + 1);
}
