//! Asymmetric, HMAC and key agreement keys through `Engine::dispatch` (the
//! entry point of every transport): CreateKey's specs and refusals,
//! DescribeKey and GetPublicKey, Sign/Verify, RSA Encrypt/Decrypt,
//! GenerateMac/VerifyMac, DeriveSharedSecret, GenerateDataKeyPair*, the
//! errors AWS gives for each misuse, rotation refusals, policy condition
//! keys and denials, audit records without secrets, and the keys surviving
//! a reopen of the store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_engine::*;
use serde_json::{Value, json};

pub fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

pub fn unb64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

pub fn create(e: &Engine, spec: &str, usage: &str) -> String {
    let r = e
        .dispatch(
            &alice(),
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": usage}),
        )
        .unwrap_or_else(|err| panic!("CreateKey {spec} {usage}: {err}"));
    r["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
}

fn err_name(r: Result<Value, KmsError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.exception_name(),
    }
}

const SIGN_SPECS: [(&str, &[&str]); 9] = [
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
    ("ML_DSA_44", &["ML_DSA_SHAKE_256"]),
    ("ML_DSA_65", &["ML_DSA_SHAKE_256"]),
    ("ML_DSA_87", &["ML_DSA_SHAKE_256"]),
];

#[test]
fn create_key_accepts_aws_combinations_and_refuses_the_rest() {
    let f = fixture();
    let e = &f.engine;
    let ok = [
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("RSA_3072", "SIGN_VERIFY"),
        ("ECC_NIST_P384", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
        ("HMAC_384", "GENERATE_VERIFY_MAC"),
    ];
    for (spec, usage) in ok {
        let id = create(e, spec, usage);
        let d = e
            .dispatch(&alice(), "DescribeKey", json!({"KeyId": id}))
            .unwrap();
        let m = &d["KeyMetadata"];
        assert_eq!(m["KeySpec"], spec);
        assert_eq!(m["CustomerMasterKeySpec"], spec);
        assert_eq!(m["KeyUsage"], usage);
        assert_eq!(m["Origin"], "AWS_KMS");
        let lists = [
            "EncryptionAlgorithms",
            "SigningAlgorithms",
            "MacAlgorithms",
            "KeyAgreementAlgorithms",
        ];
        let present: Vec<&str> = lists.into_iter().filter(|l| m.get(*l).is_some()).collect();
        let want = match usage {
            "ENCRYPT_DECRYPT" => "EncryptionAlgorithms",
            "SIGN_VERIFY" => "SigningAlgorithms",
            "GENERATE_VERIFY_MAC" => "MacAlgorithms",
            _ => "KeyAgreementAlgorithms",
        };
        assert_eq!(present, [want], "{spec} {usage}: {m}");
    }
    let d = |id: &str| {
        e.dispatch(&alice(), "DescribeKey", json!({"KeyId": id}))
            .unwrap()
    };
    let rsa = create(e, "RSA_4096", "ENCRYPT_DECRYPT");
    assert_eq!(
        d(&rsa)["KeyMetadata"]["EncryptionAlgorithms"],
        json!(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
    );
    let hmac = create(e, "HMAC_224", "GENERATE_VERIFY_MAC");
    assert_eq!(
        d(&hmac)["KeyMetadata"]["MacAlgorithms"],
        json!(["HMAC_SHA_224"])
    );
    let ecdh = create(e, "ECC_NIST_P256", "KEY_AGREEMENT");
    assert_eq!(
        d(&ecdh)["KeyMetadata"]["KeyAgreementAlgorithms"],
        json!(["ECDH"])
    );
    let sym = e.dispatch(&alice(), "CreateKey", json!({})).unwrap();
    assert_eq!(
        sym["KeyMetadata"]["EncryptionAlgorithms"],
        json!(["SYMMETRIC_DEFAULT"])
    );

    let refused = [
        (
            json!({"KeySpec": "HMAC_256", "KeyUsage": "ENCRYPT_DECRYPT"}),
            "ValidationException",
        ),
        (json!({"KeySpec": "HMAC_256"}), "ValidationException"),
        (json!({"KeySpec": "ECC_NIST_P256"}), "ValidationException"),
        (
            json!({"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "KEY_AGREEMENT"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "KEY_AGREEMENT"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "RSA_2048", "KeyUsage": "GENERATE_VERIFY_MAC"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "SIGN_VERIFY"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "ML_DSA_44", "KeyUsage": "ENCRYPT_DECRYPT"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "RSA_1024", "KeyUsage": "SIGN_VERIFY"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "RSA_2048", "KeyUsage": "DECRYPT"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "RSA_2048", "CustomerMasterKeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}),
            "ValidationException",
        ),
        (
            json!({"KeySpec": "SM2", "KeyUsage": "SIGN_VERIFY"}),
            "UnsupportedOperationException",
        ),
    ];
    let before = e.dispatch(&alice(), "ListKeys", json!({})).unwrap()["Keys"]
        .as_array()
        .unwrap()
        .len();
    for (req, want) in refused {
        assert_eq!(
            err_name(e.dispatch(&alice(), "CreateKey", req.clone())),
            want,
            "{req}"
        );
    }
    let after = e.dispatch(&alice(), "ListKeys", json!({})).unwrap()["Keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused CreateKey made a key");
    // The deprecated CustomerMasterKeySpec alone works like KeySpec.
    let r = e
        .dispatch(
            &alice(),
            "CreateKey",
            json!({"CustomerMasterKeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
        )
        .unwrap();
    assert_eq!(r["KeyMetadata"]["KeySpec"], "ECC_NIST_P256");
}

#[test]
fn sign_and_verify_every_algorithm_raw_and_digest() {
    let f = fixture();
    let e = &f.engine;
    let msg = b"release v1.2.3 tarball";
    for (spec, algs) in SIGN_SPECS {
        let id = create(e, spec, "SIGN_VERIFY");
        let pk = e
            .dispatch(&alice(), "GetPublicKey", json!({"KeyId": id}))
            .unwrap();
        assert_eq!(pk["KeySpec"], spec);
        assert_eq!(pk["KeyUsage"], "SIGN_VERIFY");
        assert_eq!(pk["SigningAlgorithms"], json!(algs));
        assert!(pk.get("EncryptionAlgorithms").is_none());
        for alg in algs {
            let s = e
                .dispatch(
                    &alice(),
                    "Sign",
                    json!({"KeyId": id, "Message": b64(msg), "SigningAlgorithm": alg}),
                )
                .unwrap();
            assert_eq!(s["SigningAlgorithm"], *alg);
            let sig = unb64(&s["Signature"]);
            let verify = |m: &[u8], t: &str, sig: &[u8]| {
                e.dispatch(
                    &alice(),
                    "Verify",
                    json!({"KeyId": id, "Message": b64(m), "MessageType": t,
                           "Signature": b64(sig), "SigningAlgorithm": alg}),
                )
            };
            assert_eq!(verify(msg, "RAW", &sig).unwrap()["SignatureValid"], true);
            assert_eq!(
                err_name(verify(b"release v1.2.4 tarball", "RAW", &sig)),
                "KMSInvalidSignatureException"
            );
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(
                err_name(verify(msg, "RAW", &bad)),
                "KMSInvalidSignatureException"
            );
            let digest_len = match alg {
                a if a.ends_with("256") && !a.starts_with("ML_DSA") => 32,
                a if a.ends_with("384") => 48,
                a if a.ends_with("512") && !a.starts_with("ED25519") => 64,
                _ => 0,
            };
            if digest_len == 0 {
                // Ed25519 and ML-DSA sign messages, not digests.
                let r = e.dispatch(
                    &alice(),
                    "Sign",
                    json!({"KeyId": id, "Message": b64(&[0u8; 64]), "MessageType": "DIGEST",
                           "SigningAlgorithm": alg}),
                );
                assert_eq!(err_name(r), "InvalidKeyUsageException", "{spec} {alg}");
                continue;
            }
            let dg = match digest_len {
                32 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg),
                48 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, msg),
                _ => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, msg),
            };
            // A RAW signature verifies as DIGEST of the same message and back.
            assert_eq!(
                verify(dg.as_ref(), "DIGEST", &sig).unwrap()["SignatureValid"],
                true
            );
            let ds = e
                .dispatch(
                    &alice(),
                    "Sign",
                    json!({"KeyId": id, "Message": b64(dg.as_ref()), "MessageType": "DIGEST",
                           "SigningAlgorithm": alg}),
                )
                .unwrap();
            assert_eq!(
                verify(msg, "RAW", &unb64(&ds["Signature"])).unwrap()["SignatureValid"],
                true
            );
            // A digest of the wrong length is refused.
            let r = e.dispatch(
                &alice(),
                "Sign",
                json!({"KeyId": id, "Message": b64(&dg.as_ref()[1..]), "MessageType": "DIGEST",
                       "SigningAlgorithm": alg}),
            );
            assert_eq!(err_name(r), "ValidationException", "{spec} {alg}");
        }
    }
}

#[test]
fn sign_refusals_use_aws_errors() {
    let f = fixture();
    let e = &f.engine;
    let ec = create(e, "ECC_NIST_P256", "SIGN_VERIFY");
    let rsa_enc = create(e, "RSA_2048", "ENCRYPT_DECRYPT");
    let sym = f.new_key();
    let sign = |id: &str, msg: &[u8], alg: &str, t: Option<&str>| {
        let mut req = json!({"KeyId": id, "Message": b64(msg), "SigningAlgorithm": alg});
        if let Some(t) = t {
            req["MessageType"] = json!(t);
        }
        err_name(e.dispatch(&alice(), "Sign", req))
    };
    assert_eq!(
        sign(&ec, b"m", "ECDSA_SHA_384", None),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        sign(&ec, b"m", "RSASSA_PSS_SHA_256", None),
        "InvalidKeyUsageException"
    );
    assert_eq!(sign(&ec, b"m", "NOPE", None), "ValidationException");
    assert_eq!(
        sign(&ec, b"m", "ED25519_PH_SHA_512", None),
        "UnsupportedOperationException"
    );
    assert_eq!(
        sign(&ec, &[7u8; 4097], "ECDSA_SHA_256", None),
        "ValidationException"
    );
    assert_eq!(sign(&ec, b"", "ECDSA_SHA_256", None), "ValidationException");
    assert_eq!(
        sign(&ec, b"m", "ECDSA_SHA_256", Some("HASHED")),
        "ValidationException"
    );
    assert_eq!(
        sign(&rsa_enc, b"m", "RSASSA_PSS_SHA_256", None),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        sign(&sym, b"m", "ECDSA_SHA_256", None),
        "InvalidKeyUsageException"
    );
    // 4096 bytes is the limit, inclusive.
    let ok = e
        .dispatch(
            &alice(),
            "Sign",
            json!({"KeyId": ec, "Message": b64(&[7u8; 4096]), "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .unwrap();
    assert!(ok["Signature"].is_string());
    // GetPublicKey of a symmetric or HMAC key.
    let hmac = create(e, "HMAC_256", "GENERATE_VERIFY_MAC");
    for id in [&sym, &hmac] {
        assert_eq!(
            err_name(e.dispatch(&alice(), "GetPublicKey", json!({"KeyId": id}))),
            "UnsupportedOperationException"
        );
    }
    // A disabled key signs nothing; a key pending deletion neither.
    e.dispatch(&alice(), "DisableKey", json!({"KeyId": ec}))
        .unwrap();
    assert_eq!(sign(&ec, b"m", "ECDSA_SHA_256", None), "DisabledException");
    e.dispatch(
        &alice(),
        "ScheduleKeyDeletion",
        json!({"KeyId": ec, "PendingWindowInDays": 7}),
    )
    .unwrap();
    assert_eq!(
        sign(&ec, b"m", "ECDSA_SHA_256", None),
        "KMSInvalidStateException"
    );
    assert_eq!(
        err_name(e.dispatch(&alice(), "GetPublicKey", json!({"KeyId": ec}))),
        "KMSInvalidStateException"
    );
}

#[test]
fn rsa_encrypt_decrypt_limits_and_refusals() {
    let f = fixture();
    let e = &f.engine;
    for (spec, sha1_max, sha256_max) in [
        ("RSA_2048", 214usize, 190usize),
        ("RSA_3072", 342, 318),
        ("RSA_4096", 470, 446),
    ] {
        let id = create(e, spec, "ENCRYPT_DECRYPT");
        for (alg, max) in [
            ("RSAES_OAEP_SHA_1", sha1_max),
            ("RSAES_OAEP_SHA_256", sha256_max),
        ] {
            let pt = vec![0x5au8; max];
            let enc = e
                .dispatch(
                    &alice(),
                    "Encrypt",
                    json!({"KeyId": id, "Plaintext": b64(&pt), "EncryptionAlgorithm": alg}),
                )
                .unwrap();
            assert_eq!(enc["EncryptionAlgorithm"], alg);
            let ct = unb64(&enc["CiphertextBlob"]);
            assert_eq!(ct.len() * 8, spec[4..].parse::<usize>().unwrap());
            let dec = e
                .dispatch(
                    &alice(),
                    "Decrypt",
                    json!({"KeyId": id, "CiphertextBlob": b64(&ct), "EncryptionAlgorithm": alg}),
                )
                .unwrap();
            assert_eq!(unb64(&dec["Plaintext"]), pt);
            assert_eq!(dec["EncryptionAlgorithm"], alg);
            // One byte over the limit.
            let r = e.dispatch(
                &alice(),
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(&vec![1u8; max + 1]), "EncryptionAlgorithm": alg}),
            );
            assert_eq!(err_name(r), "ValidationException", "{spec} {alg}");
        }
    }
    let id = create(e, "RSA_2048", "ENCRYPT_DECRYPT");
    let enc = |req: Value| e.dispatch(&alice(), "Encrypt", req);
    // No algorithm is SYMMETRIC_DEFAULT, which an RSA key refuses.
    assert_eq!(
        err_name(enc(json!({"KeyId": id, "Plaintext": b64(b"x")}))),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        err_name(enc(json!({"KeyId": id, "Plaintext": b64(b"x"),
                            "EncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                            "EncryptionContext": {"a": "b"}}))),
        "ValidationException"
    );
    let ct = unb64(
        &enc(json!({"KeyId": id, "Plaintext": b64(b"secret"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}))
            .unwrap()["CiphertextBlob"],
    );
    let dec = |ct: &[u8], alg: &str| {
        e.dispatch(
            &alice(),
            "Decrypt",
            json!({"KeyId": id, "CiphertextBlob": b64(ct), "EncryptionAlgorithm": alg}),
        )
    };
    // The other OAEP hash, a flipped bit, a truncated block: never plaintext.
    assert_eq!(
        err_name(dec(&ct, "RSAES_OAEP_SHA_1")),
        "InvalidCiphertextException"
    );
    let mut bad = ct.clone();
    bad[100] ^= 0x10;
    assert_eq!(
        err_name(dec(&bad, "RSAES_OAEP_SHA_256")),
        "InvalidCiphertextException"
    );
    assert_eq!(
        err_name(dec(&ct[1..], "RSAES_OAEP_SHA_256")),
        "InvalidCiphertextException"
    );
    // Without KeyId the ciphertext is taken as a symmetric blob: refused.
    let r = e.dispatch(
        &alice(),
        "Decrypt",
        json!({"CiphertextBlob": b64(&ct), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    );
    assert_eq!(err_name(r), "InvalidKeyUsageException");
    // RSA algorithms on a symmetric key, symmetric ops on an RSA key.
    let sym = f.new_key();
    assert_eq!(
        err_name(enc(
            json!({"KeyId": sym, "Plaintext": b64(b"x"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"})
        )),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        err_name(e.dispatch(
            &alice(),
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256"})
        )),
        "InvalidKeyUsageException"
    );
    // A signing RSA key does not encrypt.
    let signer = create(e, "RSA_2048", "SIGN_VERIFY");
    assert_eq!(
        err_name(enc(
            json!({"KeyId": signer, "Plaintext": b64(b"x"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"})
        )),
        "InvalidKeyUsageException"
    );
    // ReEncrypt from RSA to a symmetric key and back.
    let re = e
        .dispatch(
            &alice(),
            "ReEncrypt",
            json!({"CiphertextBlob": b64(&ct), "SourceKeyId": id,
                   "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                   "DestinationKeyId": sym, "DestinationEncryptionContext": {"p": "/x"}}),
        )
        .unwrap();
    assert_eq!(re["SourceEncryptionAlgorithm"], "RSAES_OAEP_SHA_256");
    assert_eq!(re["DestinationEncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    let back = e
        .dispatch(
            &alice(),
            "ReEncrypt",
            json!({"CiphertextBlob": re["CiphertextBlob"], "SourceEncryptionContext": {"p": "/x"},
                   "DestinationKeyId": id, "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_1"}),
        )
        .unwrap();
    let pt = dec(&unb64(&back["CiphertextBlob"]), "RSAES_OAEP_SHA_1").unwrap();
    assert_eq!(unb64(&pt["Plaintext"]), b"secret");
}

#[test]
fn hmac_generate_and_verify() {
    let f = fixture();
    let e = &f.engine;
    for (spec, alg, len) in [
        ("HMAC_224", "HMAC_SHA_224", 28),
        ("HMAC_256", "HMAC_SHA_256", 32),
        ("HMAC_384", "HMAC_SHA_384", 48),
        ("HMAC_512", "HMAC_SHA_512", 64),
    ] {
        let id = create(e, spec, "GENERATE_VERIFY_MAC");
        let m = e
            .dispatch(
                &alice(),
                "GenerateMac",
                json!({"KeyId": id, "Message": b64(b"hello"), "MacAlgorithm": alg}),
            )
            .unwrap();
        let mac = unb64(&m["Mac"]);
        assert_eq!(mac.len(), len);
        assert_eq!(m["MacAlgorithm"], alg);
        let verify = |msg: &[u8], mac: &[u8]| {
            e.dispatch(
                &alice(),
                "VerifyMac",
                json!({"KeyId": id, "Message": b64(msg), "MacAlgorithm": alg, "Mac": b64(mac)}),
            )
        };
        assert_eq!(verify(b"hello", &mac).unwrap()["MacValid"], true);
        assert_eq!(err_name(verify(b"hellp", &mac)), "KMSInvalidMacException");
        let mut bad = mac.clone();
        bad[0] ^= 1;
        assert_eq!(err_name(verify(b"hello", &bad)), "KMSInvalidMacException");
        assert_eq!(
            err_name(verify(b"hello", &mac[..len - 1])),
            "KMSInvalidMacException"
        );
        // The same key gives the same MAC (it is the key's, not random).
        let again = e
            .dispatch(
                &alice(),
                "GenerateMac",
                json!({"KeyId": id, "Message": b64(b"hello"), "MacAlgorithm": alg}),
            )
            .unwrap();
        assert_eq!(again["Mac"], m["Mac"]);
    }
    let id = create(e, "HMAC_256", "GENERATE_VERIFY_MAC");
    let gen_mac = |id: &str, msg: &[u8], alg: &str| {
        err_name(e.dispatch(
            &alice(),
            "GenerateMac",
            json!({"KeyId": id, "Message": b64(msg), "MacAlgorithm": alg}),
        ))
    };
    assert_eq!(
        gen_mac(&id, b"m", "HMAC_SHA_384"),
        "InvalidKeyUsageException"
    );
    assert_eq!(gen_mac(&id, b"m", "HMAC_MD5"), "ValidationException");
    assert_eq!(
        gen_mac(&id, &[0u8; 4097], "HMAC_SHA_256"),
        "ValidationException"
    );
    let sym = f.new_key();
    assert_eq!(
        gen_mac(&sym, b"m", "HMAC_SHA_256"),
        "InvalidKeyUsageException"
    );
    // An HMAC key encrypts nothing.
    assert_eq!(
        err_name(e.dispatch(
            &alice(),
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64(b"x")})
        )),
        "InvalidKeyUsageException"
    );
}

#[test]
fn derive_shared_secret_agrees_between_two_keys() {
    let f = fixture();
    let e = &f.engine;
    for spec in ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"] {
        let a = create(e, spec, "KEY_AGREEMENT");
        let b = create(e, spec, "KEY_AGREEMENT");
        let pub_of = |id: &str| {
            let r = e
                .dispatch(&alice(), "GetPublicKey", json!({"KeyId": id}))
                .unwrap();
            assert_eq!(r["KeyAgreementAlgorithms"], json!(["ECDH"]));
            unb64(&r["PublicKey"])
        };
        let derive = |id: &str, peer: &[u8]| {
            e.dispatch(
                &alice(),
                "DeriveSharedSecret",
                json!({"KeyId": id, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(peer)}),
            )
        };
        let ab = derive(&a, &pub_of(&b)).unwrap();
        let ba = derive(&b, &pub_of(&a)).unwrap();
        assert_eq!(ab["SharedSecret"], ba["SharedSecret"]);
        assert_eq!(ab["KeyOrigin"], "AWS_KMS");
        assert_eq!(ab["KeyAgreementAlgorithm"], "ECDH");
        // A public key of another curve, a raw point, garbage.
        let other = create(
            e,
            if spec == "ECC_NIST_P256" {
                "ECC_NIST_P384"
            } else {
                "ECC_NIST_P256"
            },
            "KEY_AGREEMENT",
        );
        assert_eq!(err_name(derive(&a, &pub_of(&other))), "ValidationException");
        let spki = pub_of(&b);
        let point_len = match spec {
            "ECC_NIST_P256" => 65,
            "ECC_NIST_P384" => 97,
            _ => 133,
        };
        let point = &spki[spki.len() - point_len..];
        assert_eq!(point[0], 4, "an uncompressed point");
        assert_eq!(err_name(derive(&a, point)), "ValidationException");
        assert_eq!(
            err_name(derive(&a, b"\x30\x05hello")),
            "ValidationException"
        );
    }
    let signer = create(e, "ECC_NIST_P256", "SIGN_VERIFY");
    let agreer = create(e, "ECC_NIST_P256", "KEY_AGREEMENT");
    let peer = unb64(
        &e.dispatch(&alice(), "GetPublicKey", json!({"KeyId": agreer}))
            .unwrap()["PublicKey"],
    );
    let r = e.dispatch(
        &alice(),
        "DeriveSharedSecret",
        json!({"KeyId": signer, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(&peer)}),
    );
    assert_eq!(err_name(r), "InvalidKeyUsageException");
    let r = e.dispatch(
        &alice(),
        "DeriveSharedSecret",
        json!({"KeyId": agreer, "KeyAgreementAlgorithm": "X25519", "PublicKey": b64(&peer)}),
    );
    assert_eq!(err_name(r), "ValidationException");
    // A KEY_AGREEMENT key does not sign.
    let r = e.dispatch(
        &alice(),
        "Sign",
        json!({"KeyId": agreer, "Message": b64(b"m"), "SigningAlgorithm": "ECDSA_SHA_256"}),
    );
    assert_eq!(err_name(r), "InvalidKeyUsageException");
}

#[test]
fn data_key_pairs_are_sealed_under_a_symmetric_key() {
    let f = fixture();
    let e = &f.engine;
    let sym = f.new_key();
    for spec in [
        "RSA_2048",
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
                json!({"KeyId": sym, "KeyPairSpec": spec, "EncryptionContext": {"app": "x"}}),
            )
            .unwrap();
        assert_eq!(r["KeyPairSpec"], spec);
        let private = unb64(&r["PrivateKeyPlaintext"]);
        let opened = e
            .dispatch(
                &alice(),
                "Decrypt",
                json!({"CiphertextBlob": r["PrivateKeyCiphertextBlob"], "EncryptionContext": {"app": "x"}}),
            )
            .unwrap();
        assert_eq!(unb64(&opened["Plaintext"]), private);
        // Another context does not open it.
        let r2 = e.dispatch(
            &alice(),
            "Decrypt",
            json!({"CiphertextBlob": r["PrivateKeyCiphertextBlob"], "EncryptionContext": {"app": "y"}}),
        );
        assert_eq!(err_name(r2), "InvalidCiphertextException");
        let w = e
            .dispatch(
                &alice(),
                "GenerateDataKeyPairWithoutPlaintext",
                json!({"KeyId": sym, "KeyPairSpec": spec}),
            )
            .unwrap();
        assert!(w.get("PrivateKeyPlaintext").is_none());
        assert!(w["PublicKey"].is_string());
    }
    let rsa = create(e, "RSA_2048", "ENCRYPT_DECRYPT");
    for (key, spec, want) in [
        (&rsa, "ECC_NIST_P256", "InvalidKeyUsageException"),
        (&sym, "HMAC_256", "ValidationException"),
        (&sym, "SYMMETRIC_DEFAULT", "ValidationException"),
        (&sym, "RSA_1024", "ValidationException"),
        (&sym, "SM2", "UnsupportedOperationException"),
    ] {
        let r = e.dispatch(
            &alice(),
            "GenerateDataKeyPair",
            json!({"KeyId": key, "KeyPairSpec": spec}),
        );
        assert_eq!(err_name(r), want, "{spec}");
    }
}

#[test]
fn rotation_of_asymmetric_and_hmac_keys_is_unsupported() {
    let f = fixture();
    let e = &f.engine;
    for (spec, usage) in [
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
        ("ECC_NIST_P256", "KEY_AGREEMENT"),
    ] {
        let id = create(e, spec, usage);
        for op in [
            "EnableKeyRotation",
            "DisableKeyRotation",
            "GetKeyRotationStatus",
            "RotateKeyOnDemand",
            "ListKeyRotations",
        ] {
            assert_eq!(
                err_name(e.dispatch(&alice(), op, json!({"KeyId": id}))),
                "UnsupportedOperationException",
                "{op} {spec}"
            );
        }
    }
}

#[test]
fn keys_survive_a_reopen_and_material_is_sealed() {
    let f = fixture();
    let e = &f.engine;
    let ec = create(e, "ECC_NIST_P256", "SIGN_VERIFY");
    let hmac = create(e, "HMAC_512", "GENERATE_VERIFY_MAC");
    let pk = e
        .dispatch(&alice(), "GetPublicKey", json!({"KeyId": ec}))
        .unwrap()["PublicKey"]
        .clone();
    let mac = e
        .dispatch(
            &alice(),
            "GenerateMac",
            json!({"KeyId": hmac, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_512"}),
        )
        .unwrap()["Mac"]
        .clone();
    let sig = e
        .dispatch(
            &alice(),
            "Sign",
            json!({"KeyId": ec, "Message": b64(b"m"), "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .unwrap()["Signature"]
        .clone();
    let store = std::fs::read(f.engine_dir().join("engine.store")).unwrap();
    assert_eq!(store[8], 6, "store format");
    // The public key's bytes are not in the store file in the clear (the
    // whole state is sealed), so neither is the private key.
    let pk_bytes = unb64(&pk);
    assert!(
        !store
            .windows(32)
            .any(|w| w == &pk_bytes[pk_bytes.len() - 32..])
    );
    let again = f.reopen().unwrap();
    assert_eq!(
        again
            .dispatch(&alice(), "GetPublicKey", json!({"KeyId": ec}))
            .unwrap()["PublicKey"],
        pk
    );
    assert_eq!(
        again
            .dispatch(
                &alice(),
                "GenerateMac",
                json!({"KeyId": hmac, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_512"}),
            )
            .unwrap()["Mac"],
        mac
    );
    again
        .dispatch(
            &alice(),
            "Verify",
            json!({"KeyId": ec, "Message": b64(b"m"), "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .unwrap();
}

/// Every new action is denied without an allowing statement, and the
/// condition keys AWS defines for it decide when one is there.
#[test]
fn policies_name_the_new_actions_and_condition_keys() {
    let f = fixture();
    let e = &f.engine;
    let bob = Principal::from_ids(2000, 2000, vec![]);
    let owner = json!({"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": "uid:1000"},
                       "Action": "kms:*", "Resource": "*"});
    let make = |spec: &str, usage: &str, bob_stmt: Value| -> String {
        let policy = json!({"Version": "2012-10-17", "Statement": [owner, bob_stmt]});
        let r = e
            .dispatch(
                &alice(),
                "CreateKey",
                json!({"KeySpec": spec, "KeyUsage": usage, "Policy": policy.to_string()}),
            )
            .unwrap();
        r["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
    };
    let allow = |actions: Value, cond: Value| {
        json!({"Effect": "Allow", "Principal": {"AWS": "uid:2000"}, "Action": actions,
               "Resource": "*", "Condition": cond})
    };
    // Sign: allowed only for ECDSA_SHA_256 on DIGEST messages of a
    // SIGN_VERIFY key made by AWS_KMS.
    let signer = make(
        "ECC_NIST_P256",
        "SIGN_VERIFY",
        allow(
            json!(["kms:Sign", "kms:GetPublicKey"]),
            json!({"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256",
                                    "kms:MessageType": "DIGEST",
                                    "kms:KeyUsage": "SIGN_VERIFY",
                                    "kms:KeySpec": "ECC_NIST_P256",
                                    "kms:KeyOrigin": "AWS_KMS"}}),
        ),
    );
    let digest = [9u8; 32];
    let sign_as = |who: &Principal, t: &str, msg: &[u8]| {
        e.dispatch(
            who,
            "Sign",
            json!({"KeyId": signer, "Message": b64(msg), "MessageType": t,
                   "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
    };
    sign_as(&bob, "DIGEST", &digest).unwrap();
    assert_eq!(
        err_name(sign_as(&bob, "RAW", b"m")),
        "AccessDeniedException"
    );
    // GetPublicKey has no kms:SigningAlgorithm, so this statement does not
    // allow it (StringEquals on a missing key is false).
    assert_eq!(
        err_name(e.dispatch(&bob, "GetPublicKey", json!({"KeyId": signer}))),
        "AccessDeniedException"
    );
    let sig = sign_as(&alice(), "RAW", b"m").unwrap()["Signature"].clone();
    assert_eq!(
        err_name(e.dispatch(
            &bob,
            "Verify",
            json!({"KeyId": signer, "Message": b64(b"m"), "Signature": sig,
                   "SigningAlgorithm": "ECDSA_SHA_256"})
        )),
        "AccessDeniedException"
    );
    // MACs by kms:MacAlgorithm.
    let mac_key = make(
        "HMAC_256",
        "GENERATE_VERIFY_MAC",
        allow(
            json!("kms:GenerateMac"),
            json!({"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}}),
        ),
    );
    e.dispatch(
        &bob,
        "GenerateMac",
        json!({"KeyId": mac_key, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_256"}),
    )
    .unwrap();
    assert_eq!(
        err_name(e.dispatch(
            &bob,
            "VerifyMac",
            json!({"KeyId": mac_key, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_256",
                   "Mac": b64(&[0u8; 32])})
        )),
        "AccessDeniedException"
    );
    // DeriveSharedSecret by kms:KeyAgreementAlgorithm.
    let agreer = make(
        "ECC_NIST_P256",
        "KEY_AGREEMENT",
        allow(
            json!("kms:DeriveSharedSecret"),
            json!({"StringEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}}),
        ),
    );
    let peer = unb64(
        &e.dispatch(&alice(), "GetPublicKey", json!({"KeyId": agreer}))
            .unwrap()["PublicKey"],
    );
    e.dispatch(
        &bob,
        "DeriveSharedSecret",
        json!({"KeyId": agreer, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(&peer)}),
    )
    .unwrap();
    // RSA decryption by kms:EncryptionAlgorithm.
    let rsa = make(
        "RSA_2048",
        "ENCRYPT_DECRYPT",
        allow(
            json!(["kms:Decrypt", "kms:Encrypt"]),
            json!({"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}),
        ),
    );
    let enc = |who: &Principal, alg: &str| {
        e.dispatch(
            who,
            "Encrypt",
            json!({"KeyId": rsa, "Plaintext": b64(b"x"), "EncryptionAlgorithm": alg}),
        )
    };
    enc(&bob, "RSAES_OAEP_SHA_256").unwrap();
    assert_eq!(
        err_name(enc(&bob, "RSAES_OAEP_SHA_1")),
        "AccessDeniedException"
    );
    // Data key pairs by kms:DataKeyPairSpec.
    let sym = make(
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        allow(
            json!("kms:GenerateDataKeyPair*"),
            json!({"StringEquals": {"kms:DataKeyPairSpec": "ECC_NIST_P256"}}),
        ),
    );
    let pair =
        |spec: &str, op: &str| e.dispatch(&bob, op, json!({"KeyId": sym, "KeyPairSpec": spec}));
    pair("ECC_NIST_P256", "GenerateDataKeyPair").unwrap();
    pair("ECC_NIST_P256", "GenerateDataKeyPairWithoutPlaintext").unwrap();
    assert_eq!(
        err_name(pair("RSA_2048", "GenerateDataKeyPair")),
        "AccessDeniedException"
    );
    // Nobody but the owner may do anything else: each new action denied.
    for (op, req) in [
        ("GetPublicKey", json!({"KeyId": agreer})),
        (
            "Sign",
            json!({"KeyId": agreer, "Message": b64(b"m"), "SigningAlgorithm": "ECDSA_SHA_256"}),
        ),
        (
            "GenerateMac",
            json!({"KeyId": agreer, "Message": b64(b"m"), "MacAlgorithm": "HMAC_SHA_256"}),
        ),
        (
            "DeriveSharedSecret",
            json!({"KeyId": signer, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(&peer)}),
        ),
        (
            "GenerateDataKeyPair",
            json!({"KeyId": rsa, "KeyPairSpec": "ECC_NIST_P256"}),
        ),
    ] {
        assert_eq!(
            err_name(e.dispatch(&bob, op, req)),
            "AccessDeniedException",
            "{op}"
        );
    }
}

/// Grants allow the new operations by name, and audit records of the new
/// operations carry the algorithm but never a message, MAC, signature,
/// private key or shared secret.
#[test]
fn grants_and_audit_records_of_the_new_operations() {
    let f = fixture();
    let e = &f.engine;
    let bob = Principal::from_ids(2000, 2000, vec![]);
    let signer = create(e, "ECC_NIST_P256", "SIGN_VERIFY");
    let r = e.dispatch(
        &bob,
        "Sign",
        json!({"KeyId": signer, "Message": b64(b"granted?"), "SigningAlgorithm": "ECDSA_SHA_256"}),
    );
    assert_eq!(err_name(r), "AccessDeniedException");
    e.dispatch(
        &alice(),
        "CreateGrant",
        json!({"KeyId": signer, "GranteePrincipal": "uid:2000", "Operations": ["Sign", "GetPublicKey"]}),
    )
    .unwrap();
    // A grant for an operation the key cannot do is refused, as in AWS.
    let sym0 = f.new_key();
    for (key, op) in [
        (&sym0, "Sign"),
        (&sym0, "GetPublicKey"),
        (&signer, "GenerateDataKey"),
        (&signer, "Encrypt"),
        (&signer, "GenerateMac"),
        (&signer, "DeriveSharedSecret"),
    ] {
        let r = e.dispatch(
            &alice(),
            "CreateGrant",
            json!({"KeyId": key, "GranteePrincipal": "uid:2000", "Operations": [op]}),
        );
        assert_eq!(err_name(r), "ValidationException", "{op}");
    }
    let secret_msg = b"attack at dawn, the password is hunter2";
    let s = e
        .dispatch(
            &bob,
            "Sign",
            json!({"KeyId": signer, "Message": b64(secret_msg), "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .unwrap();
    let r = e.dispatch(
        &bob,
        "Verify",
        json!({"KeyId": signer, "Message": b64(secret_msg), "Signature": s["Signature"],
               "SigningAlgorithm": "ECDSA_SHA_256"}),
    );
    assert_eq!(err_name(r), "AccessDeniedException");
    let hmac = create(e, "HMAC_256", "GENERATE_VERIFY_MAC");
    let mac = e
        .dispatch(
            &alice(),
            "GenerateMac",
            json!({"KeyId": hmac, "Message": b64(secret_msg), "MacAlgorithm": "HMAC_SHA_256"}),
        )
        .unwrap()["Mac"]
        .clone();
    let sym = f.new_key();
    let pair = e
        .dispatch(
            &alice(),
            "GenerateDataKeyPair",
            json!({"KeyId": sym, "KeyPairSpec": "ECC_NIST_P256"}),
        )
        .unwrap();
    let a = create(e, "ECC_NIST_P256", "KEY_AGREEMENT");
    let peer = e
        .dispatch(&alice(), "GetPublicKey", json!({"KeyId": a}))
        .unwrap()["PublicKey"]
        .clone();
    let shared = e
        .dispatch(
            &alice(),
            "DeriveSharedSecret",
            json!({"KeyId": a, "KeyAgreementAlgorithm": "ECDH", "PublicKey": peer}),
        )
        .unwrap()["SharedSecret"]
        .clone();
    let events = f.sink.events();
    let all = serde_json::to_string(&events).unwrap();
    for secret in [
        b64(secret_msg),
        "hunter2".to_string(),
        s["Signature"].as_str().unwrap().to_string(),
        mac.as_str().unwrap().to_string(),
        pair["PrivateKeyPlaintext"].as_str().unwrap().to_string(),
        shared.as_str().unwrap().to_string(),
    ] {
        assert!(!all.contains(&secret), "an audit record holds {secret}");
    }
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    for op in [
        "Sign",
        "Verify",
        "GenerateMac",
        "GenerateDataKeyPair",
        "DeriveSharedSecret",
        "GetPublicKey",
        "CreateGrant",
    ] {
        assert!(names.contains(&op), "no {op} record in {names:?}");
    }
    let signs: Vec<_> = events.iter().filter(|e| e.event_name == "Sign").collect();
    assert_eq!(
        signs[0].error_code.as_deref(),
        Some("AccessDeniedException")
    );
    assert_eq!(signs[1].error_code, None);
    assert_eq!(signs[1].principal, "uid:2000");
    assert_eq!(
        signs[1].request_parameters.as_ref().unwrap()["signingAlgorithm"],
        "ECDSA_SHA_256"
    );
    assert_eq!(signs[1].key_id.as_deref(), Some(signer.as_str()));
}
