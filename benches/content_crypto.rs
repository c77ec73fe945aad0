//! Micro-benchmark of the content and name ciphers (no filesystem): seals and
//! opens 64 MiB in 4 KiB blocks through the allocation-free hot-path API and
//! prints the median throughput of several runs (seals in runs of 1 MiB as
//! a WRITE request does, and one by one). Run with
//! `cargo bench -p kmsfs --bench content_crypto`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kmsfs::content::{BLOCK_OVERHEAD, BlockMark, ContentCipher};
use kmsfs::format::FileId;
use kmsfs::names::{DirIv, NamesCipher};

const TOTAL: usize = 64 << 20;
const RUNS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_blocks(block_size: usize) {
    let c = ContentCipher::new(&[7; 32], FileId([1; 16]), block_size as u32).unwrap();
    let plain = vec![0x5au8; block_size];
    let blocks = TOTAL / block_size;
    let mut stored = vec![0u8; blocks * (block_size + BLOCK_OVERHEAD)];
    let mut out = vec![0u8; block_size];
    let (mut seal, mut single, mut open) = (Vec::new(), Vec::new(), Vec::new());
    // Blocks per 1 MiB WRITE request: the write path draws their nonces
    // with one fork check (`crypto::nonces`).
    let per_request = ((1 << 20) / block_size).max(1);
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut nonces = kmsfs::crypto::nonces().unwrap();
        for (i, chunk) in stored.chunks_mut(block_size + BLOCK_OVERHEAD).enumerate() {
            if i % per_request == 0 {
                nonces = kmsfs::crypto::nonces().unwrap();
            }
            c.seal_block_from(&mut nonces, i as u64, BlockMark::Middle, &plain, chunk)
                .unwrap();
        }
        seal.push(TOTAL as f64 / t.elapsed().as_secs_f64() / 1e6);
        // One block at a time (a fork check per block).
        let t = Instant::now();
        for (i, chunk) in stored.chunks_mut(block_size + BLOCK_OVERHEAD).enumerate() {
            c.seal_block_into(i as u64, BlockMark::Middle, &plain, chunk)
                .unwrap();
        }
        single.push(TOTAL as f64 / t.elapsed().as_secs_f64() / 1e6);
        let t = Instant::now();
        for (i, chunk) in stored.chunks(block_size + BLOCK_OVERHEAD).enumerate() {
            c.open_block_into(i as u64, BlockMark::Middle, chunk, &mut out)
                .unwrap();
        }
        open.push(TOTAL as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    println!(
        "block {block_size:>5} B: seal median {:>7.0} MB/s ({:>7.0} sealed one by one), \
         open median {:>7.0} MB/s",
        median(seal),
        median(single),
        median(open)
    );
}

fn bench_names() {
    let c = NamesCipher::new(&[3; 32]).unwrap();
    let iv = DirIv([4; 16]);
    let n = 100_000;
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut last = String::new();
        for i in 0..n {
            last = c
                .encrypt_name(&iv, format!("file-{i}.txt").as_bytes())
                .unwrap();
        }
        enc.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            c.decrypt_name(&iv, last.as_bytes()).unwrap();
        }
        dec.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    println!(
        "names: encrypt median {:.0} ns/name, decrypt median {:.0} ns/name",
        median(enc),
        median(dec)
    );
}

fn main() {
    for bs in [4096, 65536] {
        bench_blocks(bs);
    }
    bench_names();
}
