//! `kmsfs kms` asymmetric, HMAC and key agreement commands end to end, run
//! embedded and through a real daemon (the same answers either way):
//! create-key --key-spec/--key-usage, get-public-key, sign/verify with
//! fileb:// inputs and --output text, generate-mac/verify-mac,
//! derive-shared-secret, generate-data-key-pair[-without-plaintext], and
//! AWS's errors (exit codes) for refusals and bad signatures.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions; a failed unwrap is a failed test"
)]

use crate::kms_cli::{Env, Via, both_ways};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::Path;

both_ways!(sign_and_verify_with_files, macs_agreement_and_key_pairs,);

fn fileb(p: &Path) -> String {
    format!("fileb://{}", p.display())
}

fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s.trim()).unwrap()
}

fn sign_and_verify_with_files(via: Via) {
    let env = Env::new_via(via);
    let (code, err) = env.fail(&["create-key", "--key-spec", "ECC_NIST_P256"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec ECC_NIST_P256")
            && err.contains("ValidationException"),
        "{err}"
    );
    let key = env.create_key(&["--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY"]);
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["SigningAlgorithms"][0], "ECDSA_SHA_256");
    let pk = env.text(&["get-public-key", "--key-id", &key]);
    assert_eq!(unb64(&pk)[0], 0x30, "a DER SubjectPublicKeyInfo");
    let msg = env.path("manifest");
    std::fs::write(&msg, b"release 1.0\n\x00\xff").unwrap();
    let sig = env.text(&[
        "sign",
        "--key-id",
        &key,
        "--message",
        &fileb(&msg),
        "--signing-algorithm",
        "ECDSA_SHA_256",
    ]);
    let sig_file = env.path("sig");
    std::fs::write(&sig_file, unb64(&sig)).unwrap();
    let ok = env.ok(&[
        "verify",
        "--key-id",
        &key,
        "--message",
        &fileb(&msg),
        "--signature",
        &fileb(&sig_file),
        "--signing-algorithm",
        "ECDSA_SHA_256",
    ]);
    assert_eq!(ok["SignatureValid"], true);
    std::fs::write(&msg, b"release 1.1\n").unwrap();
    let (code, err) = env.fail(&[
        "verify",
        "--key-id",
        &key,
        "--message",
        &fileb(&msg),
        "--signature",
        &fileb(&sig_file),
        "--signing-algorithm",
        "ECDSA_SHA_256",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("KMSInvalidSignatureException"), "{err}");
    let (code, err) = env.fail(&[
        "sign",
        "--key-id",
        &key,
        "--message",
        "m",
        "--signing-algorithm",
        "RSASSA_PSS_SHA_256",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("InvalidKeyUsageException"), "{err}");
    let (_, err) = env.fail(&["enable-key-rotation", "--key-id", &key]);
    assert!(err.contains("UnsupportedOperationException"), "{err}");
}

fn macs_agreement_and_key_pairs(via: Via) {
    let env = Env::new_via(via);
    let hmac = env.create_key(&[
        "--key-spec",
        "HMAC_256",
        "--key-usage",
        "GENERATE_VERIFY_MAC",
    ]);
    let mac = env.text(&[
        "generate-mac",
        "--key-id",
        &hmac,
        "--message",
        "hello",
        "--mac-algorithm",
        "HMAC_SHA_256",
    ]);
    let mac_file = env.path("mac");
    std::fs::write(&mac_file, unb64(&mac)).unwrap();
    let v = env.ok(&[
        "verify-mac",
        "--key-id",
        &hmac,
        "--message",
        "hello",
        "--mac",
        &fileb(&mac_file),
        "--mac-algorithm",
        "HMAC_SHA_256",
    ]);
    assert_eq!(v["MacValid"], true);
    let (_, err) = env.fail(&[
        "verify-mac",
        "--key-id",
        &hmac,
        "--message",
        "hellO",
        "--mac",
        &fileb(&mac_file),
        "--mac-algorithm",
        "HMAC_SHA_256",
    ]);
    assert!(err.contains("KMSInvalidMacException"), "{err}");

    let a = env.create_key(&[
        "--key-spec",
        "ECC_NIST_P384",
        "--key-usage",
        "KEY_AGREEMENT",
    ]);
    let b = env.create_key(&[
        "--key-spec",
        "ECC_NIST_P384",
        "--key-usage",
        "KEY_AGREEMENT",
    ]);
    let pub_file = |k: &str, name: &str| {
        let p = env.path(name);
        std::fs::write(&p, unb64(&env.text(&["get-public-key", "--key-id", k]))).unwrap();
        p
    };
    let (pa, pb) = (pub_file(&a, "a.der"), pub_file(&b, "b.der"));
    let derive = |k: &str, peer: &Path| {
        env.text(&[
            "derive-shared-secret",
            "--key-id",
            k,
            "--key-agreement-algorithm",
            "ECDH",
            "--public-key",
            &fileb(peer),
        ])
    };
    let s1 = derive(&a, &pb);
    assert_eq!(unb64(&s1).len(), 48);
    assert_eq!(s1, derive(&b, &pa));

    let sym = env.create_key(&[]);
    let pair = env.ok(&[
        "generate-data-key-pair",
        "--key-id",
        &sym,
        "--key-pair-spec",
        "ECC_NIST_EDWARDS25519",
        "--encryption-context",
        "purpose=release",
    ]);
    assert_eq!(pair["KeyPairSpec"], "ECC_NIST_EDWARDS25519");
    let blob = env.path("priv.enc");
    std::fs::write(
        &blob,
        unb64(pair["PrivateKeyCiphertextBlob"].as_str().unwrap()),
    )
    .unwrap();
    let opened = env.ok(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&blob),
        "--encryption-context",
        "purpose=release",
    ]);
    assert_eq!(opened["Plaintext"], pair["PrivateKeyPlaintext"]);
    let without = env.ok(&[
        "generate-data-key-pair-without-plaintext",
        "--key-id",
        &sym,
        "--key-pair-spec",
        "RSA_2048",
    ]);
    assert!(without.get("PrivateKeyPlaintext").is_none());
    assert!(without["PublicKey"].is_string());
}
