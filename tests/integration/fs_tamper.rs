//! Tampering with the backing directory turns into EIO, never wrong data,
//! and the mount stays up: flipped byte, block moved within a file, block
//! moved from another file, header swapped, file truncated mid-block,
//! ciphertext copied to another path.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, backing_files};
use kmsfs::format::NamesMode;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const B: usize = 4096;
const STORED: usize = B + 28;
const HDR: usize = 128;

fn eio(p: &Path) {
    let e = fs::read(p).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}", p.display());
}

/// Two 3-block files `a` and `b` (plaintext names: backing paths known).
fn setup() -> (Fixture, PathBuf, PathBuf) {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    fs::write(m.path("a"), vec![b'a'; 3 * B]).unwrap();
    fs::write(m.path("b"), vec![b'b'; 3 * B]).unwrap();
    fs::write(m.path("ok"), b"untouched").unwrap();
    m.unmount();
    let (a, b) = (fx.cipher.join("a"), fx.cipher.join("b"));
    (fx, a, b)
}

fn check_after(fx: &Fixture, bad: &[&str]) {
    let m = fx.mount();
    for p in bad {
        eio(&m.path(p));
    }
    // The mount is still up and other files still read.
    assert_eq!(fs::read(m.path("ok")).unwrap(), b"untouched");
}

#[test]
fn flipped_byte_is_eio() {
    let (fx, a, _) = setup();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&a)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, (HDR + STORED + 100) as u64)
        .unwrap();
    f.write_all_at(&[byte[0] ^ 1], (HDR + STORED + 100) as u64)
        .unwrap();
    check_after(&fx, &["a"]);
    // The undamaged first block still reads.
    let m = fx.mount();
    let f = fs::File::open(m.path("a")).unwrap();
    let mut buf = vec![0u8; B];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|c| *c == b'a'));
}

#[test]
fn swapped_blocks_are_eio() {
    let (fx, a, _) = setup();
    let mut bytes = fs::read(&a).unwrap();
    let (b0, b1) = (HDR, HDR + STORED);
    let first: Vec<u8> = bytes[b0..b0 + STORED].to_vec();
    bytes.copy_within(b1..b1 + STORED, b0);
    bytes[b1..b1 + STORED].copy_from_slice(&first);
    fs::write(&a, bytes).unwrap();
    check_after(&fx, &["a"]);
}

#[test]
fn block_from_another_file_is_eio() {
    let (fx, a, b) = setup();
    let bb = fs::read(&b).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&a).unwrap();
    f.write_all_at(&bb[HDR..HDR + STORED], HDR as u64).unwrap();
    check_after(&fx, &["a"]);
}

#[test]
fn swapped_headers_are_eio() {
    let (fx, a, b) = setup();
    let mut ab = fs::read(&a).unwrap();
    let mut bb = fs::read(&b).unwrap();
    let ha: Vec<u8> = ab[..HDR].to_vec();
    ab[..HDR].copy_from_slice(&bb[..HDR]);
    bb[..HDR].copy_from_slice(&ha);
    fs::write(&a, ab).unwrap();
    fs::write(&b, bb).unwrap();
    check_after(&fx, &["a", "b"]);
}

#[test]
fn truncated_mid_block_is_eio() {
    let (fx, a, _) = setup();
    let f = fs::OpenOptions::new().write(true).open(&a).unwrap();
    f.set_len((HDR + 2 * STORED + 10) as u64).unwrap();
    check_after(&fx, &["a"]);
    // Cutting inside the nonce/tag overhead of the last block, too.
    let f = fs::OpenOptions::new().write(true).open(&a).unwrap();
    f.set_len((HDR + STORED + 20) as u64).unwrap();
    check_after(&fx, &["a"]);
}

#[test]
fn ciphertext_copied_to_another_path_is_eio_with_encrypted_names() {
    let fx = Fixture::new(B as u32, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("ok"), b"untouched").unwrap();
    fs::write(m.path("victim"), b"victim data").unwrap();
    m.unmount();
    let files = backing_files(&fx.cipher);
    let m = fx.mount();
    // Find which backing file is "victim" by its length (header + 11 + 28).
    let victim = files
        .iter()
        .find(|f| fs::metadata(f).unwrap().len() == (HDR + 11 + 28) as u64)
        .unwrap()
        .clone();
    fs::write(m.path("target"), b"").unwrap();
    m.unmount();
    let target = backing_files(&fx.cipher)
        .into_iter()
        .find(|f| fs::metadata(f).unwrap().len() == (HDR + 28) as u64)
        .unwrap();
    fs::copy(&victim, &target).unwrap();
    check_after(&fx, &["target"]);
    let m = fx.mount();
    assert_eq!(fs::read(m.path("victim")).unwrap(), b"victim data");
}
