//! Asymmetric operations in-process, single thread, NullSink: Sign with
//! ECDSA P-256, Ed25519 and RSA-2048 PSS (SHA-256) and RSA-2048 OAEP
//! (SHA-256) Decrypt, through the engine's typed API (authorization, key
//! lookup and audit call included), printed in `openssl speed -mr`'s shape
//! so that `benches/asym_vs_openssl.sh` can put them beside openssl's own
//! figures from the same run. `--seconds S` of CPU time per measurement
//! (default 2); rates are per CPU-second of the measuring thread.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failure aborts the run

use kms_engine::audit::NullSink;
use kms_engine::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// This thread's CPU time (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Ops per CPU-second of `op`, run for `secs` seconds of this thread's CPU
/// time (after a short warm-up): as `openssl speed` divides by its CPU
/// time, so that a loaded machine slows neither side's figure.
fn rate(secs: f64, mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        op();
    }
    let c = cpu_seconds();
    let mut n = 0u64;
    while cpu_seconds() - c < secs {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / (cpu_seconds() - c)
}

fn key(engine: &Engine, p: &Principal, spec: &str, usage: &str) -> String {
    engine
        .create_key(
            p,
            CreateKeyRequest {
                key_spec: Some(spec.into()),
                key_usage: Some(usage.into()),
                ..Default::default()
            },
        )
        .unwrap()
        .key_metadata
        .key_id
}

fn main() {
    let mut secs = 2.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            secs = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seconds S");
        }
    }
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
    // openssl speed signs a 32-byte digest (ecdsa, rsa) or a short message
    // (ed25519); the engine signs the same 32 bytes as a DIGEST, Ed25519 as
    // a RAW message.
    let digest = SecretBytes::new(vec![0x42; 32]);
    let (engine, p) = (&engine, &p);
    let sign = |key_id: &str, alg: &str, message_type: &str| {
        let req = SignRequest {
            key_id: key_id.to_string(),
            message: digest.clone(),
            message_type: Some(message_type.into()),
            signing_algorithm: alg.into(),
            grant_tokens: None,
            dry_run: None,
        };
        move || {
            engine.sign(p, req.clone()).unwrap();
        }
    };
    let p256 = key(engine, p, "ECC_NIST_P256", "SIGN_VERIFY");
    let ed = key(engine, p, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY");
    let rsa_sign = key(engine, p, "RSA_2048", "SIGN_VERIFY");
    let rsa_enc = key(engine, p, "RSA_2048", "ENCRYPT_DECRYPT");
    let ct = engine
        .encrypt(
            p,
            EncryptRequest {
                key_id: rsa_enc.clone(),
                plaintext: SecretBytes::new(vec![7u8; 32]),
                encryption_context: Default::default(),
                encryption_algorithm: Some("RSAES_OAEP_SHA_256".into()),
                grant_tokens: None,
            },
        )
        .unwrap()
        .ciphertext_blob;
    let decrypt = DecryptRequest {
        ciphertext_blob: ct,
        encryption_context: Default::default(),
        key_id: Some(rsa_enc.clone()),
        encryption_algorithm: Some("RSAES_OAEP_SHA_256".into()),
        grant_tokens: None,
    };
    // name, ops/s
    let results = [
        (
            "ecdsap256",
            rate(secs, sign(&p256, "ECDSA_SHA_256", "DIGEST")),
        ),
        ("ed25519", rate(secs, sign(&ed, "ED25519_SHA_512", "RAW"))),
        (
            "rsa2048-pss",
            rate(secs, sign(&rsa_sign, "RSASSA_PSS_SHA_256", "DIGEST")),
        ),
        (
            "rsa2048-oaep-decrypt",
            rate(secs, || {
                engine.decrypt(p, decrypt.clone()).unwrap();
            }),
        ),
    ];
    for (name, r) in results {
        println!("asym_ops {name} {r:.0} ops/s");
    }
}
