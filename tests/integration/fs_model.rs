//! Random read/write/truncate sequences on a real mount, checked against an
//! in-memory model of the file, for several block sizes; plus concurrent
//! writers on disjoint regions.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Fixture;
use kmsfs::format::NamesMode;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn run_model(block_size: u32, ops: usize, seed: u64) {
    let fx = Fixture::new(block_size, NamesMode::Encrypted);
    let m = fx.mount();
    let p = m.path("model.bin");
    let b = u64::from(block_size);
    let span = 5 * b + 123;
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(seed);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    for i in 0..ops {
        match rng.below(10) {
            0..=4 => {
                let off = rng.below(span);
                let len = rng.below(2 * b + 7);
                let fill = (rng.next() & 0xff) as u8;
                let data: Vec<u8> = (0..len).map(|k| fill.wrapping_add(k as u8)).collect();
                f.write_all_at(&data, off).unwrap();
                let end = (off + len) as usize;
                if len > 0 {
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].copy_from_slice(&data);
                }
            }
            5..=7 => {
                let off = rng.below(span);
                let len = rng.below(3 * b);
                let mut buf = vec![0u8; len as usize];
                let mut got = 0;
                while got < buf.len() {
                    let n = f.read_at(&mut buf[got..], off + got as u64).unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                let start = (off as usize).min(model.len());
                let end = ((off + len) as usize).min(model.len());
                assert_eq!(got, end - start, "op {i}: short read at {off}+{len}");
                assert!(
                    buf[..got] == model[start..end],
                    "op {i}: read mismatch at {off}+{len}"
                );
            }
            8 => {
                let size = rng.below(span);
                f.set_len(size).unwrap();
                model.resize(size as usize, 0);
            }
            _ => {
                // Reopen (and sometimes fsync) so handles come and go.
                f.sync_all().unwrap();
                f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
            }
        }
        assert_eq!(
            f.metadata().unwrap().len(),
            model.len() as u64,
            "op {i}: size"
        );
    }
    drop(f);
    m.unmount();
    // A fresh mount (cold page cache) reads the same bytes.
    let m = fx.mount();
    assert!(
        fs::read(m.path("model.bin")).unwrap() == model,
        "after remount"
    );
}

#[test]
fn model_block_512() {
    run_model(512, 3000, 0x5eed_0001);
}

#[test]
fn model_block_4096() {
    run_model(4096, 3000, 0x5eed_0002);
}

#[test]
fn model_block_65536() {
    run_model(65536, 1500, 0x5eed_0003);
}

#[test]
fn concurrent_writers() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let p = m.path("shared.bin");
    fs::write(&p, b"").unwrap();
    // Each thread owns an unaligned 10_000-byte stripe of one file, so
    // neighbours share blocks and must not clobber each other.
    let threads = 6usize;
    let stripe = 10_000u64;
    std::thread::scope(|s| {
        for t in 0..threads {
            let p = p.clone();
            s.spawn(move || {
                let f = OpenOptions::new().write(true).open(&p).unwrap();
                for round in 0..20u8 {
                    let data = vec![t as u8 * 16 + round % 16; stripe as usize];
                    f.write_all_at(&data, t as u64 * stripe).unwrap();
                }
            });
        }
        // Separate files in parallel too.
        for t in 0..threads {
            let p = m.path(&format!("own-{t}"));
            s.spawn(move || {
                for round in 0..20u32 {
                    fs::write(&p, format!("{t}-{round}").repeat(500)).unwrap();
                }
            });
        }
    });
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len() as u64, threads as u64 * stripe);
    for t in 0..threads {
        let part = &got[(t as u64 * stripe) as usize..((t as u64 + 1) * stripe) as usize];
        assert!(
            part.iter().all(|b| *b == t as u8 * 16 + 19 % 16),
            "stripe {t}"
        );
    }
    for t in 0..threads {
        assert_eq!(
            fs::read_to_string(m.path(&format!("own-{t}"))).unwrap(),
            format!("{t}-19").repeat(500)
        );
    }
}
