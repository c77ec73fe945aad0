//! Engine throughput in-process, single thread, NullSink: GenerateDataKey,
//! Decrypt (32-byte data key) and ReEncrypt ops/s. Prints the median of
//! several runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failure aborts the run

use kms_engine::audit::NullSink;
use kms_engine::context::context_from;
use kms_engine::*;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

const RUNS: usize = 7;
const OPS: usize = 50_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(name: &str, mut op: impl FnMut()) {
    for _ in 0..OPS / 10 {
        op();
    }
    let rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..OPS {
                op();
            }
            OPS as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    let med = median(rates.clone());
    let min = rates.iter().copied().fold(f64::MAX, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "{name:<18} median {med:>10.0} ops/s  ({:.2} us/op; min {min:.0}, max {max:.0}; {RUNS} runs x {OPS} ops)",
        1e6 / med
    );
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::create(
        &tmp.path().join("engine"),
        RootKeySource::Key(Zeroizing::new([1u8; 32])),
        KdfParams::insecure_for_tests(),
        Arc::new(SystemClock),
        Arc::new(NullSink),
    )
    .unwrap();
    let p = Principal::from_ids(1000, 1000, vec![]);
    let key = engine
        .create_key(&p, CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let ctx = context_from([
        ("kmsfs:volume", "0f6c1d2e-volume"),
        ("kmsfs:path", "/home/alice/docs/report.odt"),
    ]);
    let ctx2 = context_from([
        ("kmsfs:volume", "0f6c1d2e-volume"),
        ("kmsfs:path", "/home/alice/docs/renamed.odt"),
    ]);
    let gdk = || GenerateDataKeyRequest {
        key_id: key.clone(),
        encryption_context: ctx.clone(),
        key_spec: Some("AES_256".into()),
        number_of_bytes: None,
        grant_tokens: None,
    };
    let blob = engine.generate_data_key(&p, gdk()).unwrap().ciphertext_blob;
    println!(
        "engine_ops: in-process, 1 thread, NullSink, blob {} bytes",
        blob.len()
    );

    bench("GenerateDataKey", || {
        let r = engine.generate_data_key(&p, gdk()).unwrap();
        assert_eq!(r.plaintext.len(), 32);
    });
    bench("Decrypt", || {
        let r = engine
            .decrypt(
                &p,
                DecryptRequest {
                    ciphertext_blob: blob.clone(),
                    encryption_context: ctx.clone(),
                    key_id: None,
                    encryption_algorithm: None,
                    grant_tokens: None,
                },
            )
            .unwrap();
        assert_eq!(r.plaintext.len(), 32);
    });
    bench("ReEncrypt", || {
        let r = engine
            .re_encrypt(
                &p,
                ReEncryptRequest {
                    ciphertext_blob: blob.clone(),
                    source_encryption_context: ctx.clone(),
                    source_key_id: None,
                    destination_key_id: key.clone(),
                    destination_encryption_context: ctx2.clone(),
                    source_encryption_algorithm: None,
                    destination_encryption_algorithm: None,
                    grant_tokens: None,
                },
            )
            .unwrap();
        assert_eq!(r.ciphertext_blob.len(), blob.len());
    });
}
