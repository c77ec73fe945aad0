//! Asymmetric and HMAC keys against an independent implementation, the
//! `openssl` command (3.0 or later; CI installs it): engine public keys load
//! in openssl and engine signatures verify there (RAW and DIGEST), openssl
//! signatures verify with the engine's verifier, openssl's OAEP ciphertexts
//! decrypt in the engine, DeriveSharedSecret equals openssl's ECDH, HMACs
//! equal openssl's, and GenerateDataKeyPair's PKCS#8 keys load in openssl.
//! ML-DSA is left out: openssl gained it in 3.5.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::asymmetric::{b64, create, unb64};
use crate::common::*;
use kms_engine::asym::{Loaded, MessageKind};
use kms_engine::key::{Material, SecretDer};
use kms_engine::keyspec::{KeySpec, KeyUsage, SigningAlgorithm};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use zeroize::Zeroizing;

/// Runs openssl in `dir`; returns whether it succeeded and its stdout.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (CI installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn must(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed: {out}");
    out
}

/// openssl's digest name and signature options for an AWS algorithm.
fn openssl_alg(alg: &str) -> (&'static str, &'static [&'static str]) {
    let digest = if alg.ends_with("256") {
        "-sha256"
    } else if alg.ends_with("384") {
        "-sha384"
    } else {
        "-sha512"
    };
    let opts: &[&str] = if alg.starts_with("RSASSA_PSS") {
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:-1",
        ]
    } else {
        &[]
    };
    (digest, opts)
}

/// Verifies `sig` over the file `msg` with the PEM public key `pem`.
fn openssl_verifies(dir: &Path, alg: &str, pem: &str, msg: &str, sig: &str) -> bool {
    if alg == "ED25519_SHA_512" {
        let args = [
            "pkeyutl", "-verify", "-pubin", "-inkey", pem, "-rawin", "-in", msg, "-sigfile", sig,
        ];
        return openssl(dir, &args).0;
    }
    let (digest, opts) = openssl_alg(alg);
    let mut args = vec!["dgst", digest];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-verify", pem, "-signature", sig, msg]);
    openssl(dir, &args).0
}

#[test]
fn engine_signatures_verify_in_openssl() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let msg = b"kmsfs 1.0 release manifest\n";
    std::fs::write(dir.join("msg"), msg).unwrap();
    std::fs::write(dir.join("other"), b"kmsfs 1.0 release manifest!\n").unwrap();
    let specs: [(&str, &[&str]); 6] = [
        (
            "RSA_2048",
            &[
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
            ],
        ),
        ("ECC_NIST_P256", &["ECDSA_SHA_256"]),
        ("ECC_NIST_P384", &["ECDSA_SHA_384"]),
        ("ECC_NIST_P521", &["ECDSA_SHA_512"]),
        ("ECC_SECG_P256K1", &["ECDSA_SHA_256"]),
        ("ECC_NIST_EDWARDS25519", &["ED25519_SHA_512"]),
    ];
    for (spec, algs) in specs {
        let id = create(e, spec, "SIGN_VERIFY");
        let pk = e
            .dispatch(&alice(), "GetPublicKey", json!({"KeyId": id}))
            .unwrap();
        std::fs::write(dir.join("pub.der"), unb64(&pk["PublicKey"])).unwrap();
        must(
            dir,
            &[
                "pkey", "-pubin", "-inform", "DER", "-in", "pub.der", "-out", "pub.pem",
            ],
        );
        for alg in algs {
            let sign = |m: &[u8], t: &str| {
                unb64(
                    &e.dispatch(
                        &alice(),
                        "Sign",
                        json!({"KeyId": id, "Message": b64(m), "MessageType": t,
                               "SigningAlgorithm": alg}),
                    )
                    .unwrap()["Signature"],
                )
            };
            std::fs::write(dir.join("sig"), sign(msg, "RAW")).unwrap();
            assert!(
                openssl_verifies(dir, alg, "pub.pem", "msg", "sig"),
                "{spec} {alg}"
            );
            assert!(
                !openssl_verifies(dir, alg, "pub.pem", "other", "sig"),
                "{spec} {alg}"
            );
            if *alg == "ED25519_SHA_512" {
                continue;
            }
            // A signature of the message's digest (MessageType DIGEST) is
            // a signature of the message.
            let (digest, _) = openssl_alg(alg);
            let d = must(dir, &["dgst", digest, "-binary", "-out", "digest", "msg"]);
            assert!(d.is_empty(), "{d}");
            let digest_bytes = std::fs::read(dir.join("digest")).unwrap();
            std::fs::write(dir.join("sig"), sign(&digest_bytes, "DIGEST")).unwrap();
            assert!(
                openssl_verifies(dir, alg, "pub.pem", "msg", "sig"),
                "DIGEST {spec} {alg}"
            );
        }
    }
}

fn engine_spec(openssl_key: &str) -> KeySpec {
    match openssl_key {
        "P-256" => KeySpec::EccNistP256,
        "P-384" => KeySpec::EccNistP384,
        "P-521" => KeySpec::EccNistP521,
        "secp256k1" => KeySpec::EccSecgP256k1,
        "ED25519" => KeySpec::EccNistEdwards25519,
        _ => KeySpec::Rsa2048,
    }
}

/// Generates an openssl key (`-algorithm ALG` plus options) as key.pem and
/// its PKCS#8 DER; returns the DER.
fn openssl_key(dir: &Path, genargs: &[&str]) -> Vec<u8> {
    let mut args = vec!["genpkey", "-out", "key.pem"];
    args.extend_from_slice(genargs);
    must(dir, &args);
    must(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
        ],
    );
    must(
        dir,
        &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
    );
    std::fs::read(dir.join("key.der")).unwrap()
}

fn loaded(spec: KeySpec, usage: KeyUsage, der: Vec<u8>) -> Loaded {
    Loaded::load(
        spec,
        usage,
        &Material::Private(SecretDer(Zeroizing::new(der))),
    )
    .unwrap()
}

/// The engine's verifier (what Verify runs with the key's public key)
/// accepts openssl's signatures by openssl's keys, and refuses them for
/// another message.
#[test]
fn openssl_signatures_verify_with_the_engines_verifier() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("msg"), b"signed by openssl").unwrap();
    let keys: [(&str, &[&str], &[&str]); 6] = [
        (
            "RSA",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            &[
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_512",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
            ],
        ),
        (
            "P-256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &["ECDSA_SHA_256"],
        ),
        (
            "P-384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            &["ECDSA_SHA_384"],
        ),
        (
            "P-521",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
            &["ECDSA_SHA_512"],
        ),
        (
            "secp256k1",
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:secp256k1",
            ],
            &["ECDSA_SHA_256"],
        ),
        ("ED25519", &["-algorithm", "ED25519"], &["ED25519_SHA_512"]),
    ];
    for (name, genargs, algs) in keys {
        let spec = engine_spec(name);
        let key = loaded(spec, KeyUsage::SignVerify, openssl_key(dir, genargs));
        for alg in algs {
            if *alg == "ED25519_SHA_512" {
                must(
                    dir,
                    &[
                        "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "msg", "-out",
                        "sig",
                    ],
                );
            } else {
                let (digest, opts) = openssl_alg(alg);
                let mut args = vec!["dgst", digest];
                args.extend_from_slice(opts);
                args.extend_from_slice(&["-sign", "key.pem", "-out", "sig", "msg"]);
                must(dir, &args);
            }
            let sig = std::fs::read(dir.join("sig")).unwrap();
            let a = SigningAlgorithm::parse(alg).unwrap();
            assert!(
                key.verify(spec, a, b"signed by openssl", MessageKind::Raw, &sig)
                    .unwrap(),
                "{name} {alg}"
            );
            assert!(
                !key.verify(spec, a, b"signed by openssL", MessageKind::Raw, &sig)
                    .unwrap(),
                "{name} {alg}"
            );
        }
    }
}

#[test]
fn openssl_oaep_ciphertexts_decrypt_in_the_engine() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pt"), b"a data key made elsewhere").unwrap();
    for spec in ["RSA_2048", "RSA_3072"] {
        let id = create(e, spec, "ENCRYPT_DECRYPT");
        let pk = e
            .dispatch(&alice(), "GetPublicKey", json!({"KeyId": id}))
            .unwrap();
        assert_eq!(
            pk["EncryptionAlgorithms"],
            json!(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
        );
        std::fs::write(dir.join("pub.der"), unb64(&pk["PublicKey"])).unwrap();
        for (alg, md) in [
            ("RSAES_OAEP_SHA_1", "sha1"),
            ("RSAES_OAEP_SHA_256", "sha256"),
        ] {
            must(
                dir,
                &[
                    "pkeyutl",
                    "-encrypt",
                    "-pubin",
                    "-keyform",
                    "DER",
                    "-inkey",
                    "pub.der",
                    "-in",
                    "pt",
                    "-out",
                    "ct",
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    &format!("rsa_oaep_md:{md}"),
                    "-pkeyopt",
                    &format!("rsa_mgf1_md:{md}"),
                ],
            );
            let ct = std::fs::read(dir.join("ct")).unwrap();
            let r = e
                .dispatch(
                    &alice(),
                    "Decrypt",
                    json!({"KeyId": id, "CiphertextBlob": b64(&ct), "EncryptionAlgorithm": alg}),
                )
                .unwrap();
            assert_eq!(unb64(&r["Plaintext"]), b"a data key made elsewhere");
        }
    }
}

#[test]
fn derive_shared_secret_equals_openssl_ecdh() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (spec, curve) in [
        ("ECC_NIST_P256", "P-256"),
        ("ECC_NIST_P384", "P-384"),
        ("ECC_NIST_P521", "P-521"),
    ] {
        let id = create(e, spec, "KEY_AGREEMENT");
        let pk = e
            .dispatch(&alice(), "GetPublicKey", json!({"KeyId": id}))
            .unwrap();
        std::fs::write(dir.join("kms.der"), unb64(&pk["PublicKey"])).unwrap();
        must(
            dir,
            &[
                "pkey", "-pubin", "-inform", "DER", "-in", "kms.der", "-out", "kms.pem",
            ],
        );
        openssl_key(
            dir,
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ],
        );
        must(
            dir,
            &[
                "pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "peer.der",
            ],
        );
        must(
            dir,
            &[
                "pkeyutl", "-derive", "-inkey", "key.pem", "-peerkey", "kms.pem", "-out", "secret",
            ],
        );
        let peer = std::fs::read(dir.join("peer.der")).unwrap();
        let r = e
            .dispatch(
                &alice(),
                "DeriveSharedSecret",
                json!({"KeyId": id, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(&peer)}),
            )
            .unwrap();
        assert_eq!(
            unb64(&r["SharedSecret"]),
            std::fs::read(dir.join("secret")).unwrap(),
            "{spec}"
        );
    }
}

/// The engine's HMAC (what GenerateMac runs with the key's material) equals
/// `openssl mac` for each HMAC key spec.
#[test]
fn hmacs_equal_openssl_mac() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("msg"), b"message to authenticate").unwrap();
    for (spec, digest, len) in [
        (KeySpec::Hmac224, "SHA224", 28usize),
        (KeySpec::Hmac256, "SHA256", 32),
        (KeySpec::Hmac384, "SHA384", 48),
        (KeySpec::Hmac512, "SHA512", 64),
    ] {
        let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let l = Loaded::load(
            spec,
            KeyUsage::GenerateVerifyMac,
            &Material::Hmac(SecretDer(Zeroizing::new(key))),
        )
        .unwrap();
        let out = must(
            dir,
            &[
                "mac",
                "-digest",
                digest,
                "-macopt",
                &format!("hexkey:{hex}"),
                "-in",
                "msg",
                "HMAC",
            ],
        );
        let ours: String = l
            .mac(b"message to authenticate")
            .unwrap()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(out.trim(), ours, "{spec:?}");
    }
}

#[test]
fn data_key_pair_private_keys_load_in_openssl() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sym = f.new_key();
    for spec in [
        "RSA_2048",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "ECC_NIST_EDWARDS25519",
    ] {
        let r = e
            .dispatch(
                &alice(),
                "GenerateDataKeyPair",
                json!({"KeyId": sym, "KeyPairSpec": spec}),
            )
            .unwrap();
        std::fs::write(dir.join("priv.der"), unb64(&r["PrivateKeyPlaintext"])).unwrap();
        if spec != "ECC_NIST_EDWARDS25519" {
            // openssl 3.0 checks RSA and EC private keys (not Ed25519's).
            let out = must(
                dir,
                &[
                    "pkey", "-inform", "DER", "-in", "priv.der", "-check", "-noout",
                ],
            );
            assert!(out.contains("Key is valid"), "{spec}: {out}");
        }
        must(
            dir,
            &[
                "pkey", "-inform", "DER", "-in", "priv.der", "-pubout", "-outform", "DER", "-out",
                "pub.der",
            ],
        );
        assert_eq!(
            std::fs::read(dir.join("pub.der")).unwrap(),
            unb64(&r["PublicKey"]),
            "{spec}: the public key openssl derives from the private key"
        );
    }
}
