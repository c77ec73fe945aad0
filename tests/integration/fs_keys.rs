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
