//! Imported key material (Origin EXTERNAL) against an independent
//! implementation: material wrapped by the `openssl` command with every
//! wrapping algorithm imports; what openssl computes with the same material
//! (HMACs, public keys, signatures) matches the engine; delete, re-import,
//! expiry (material gone from the store file), and every refusal with AWS's
//! exception. Also GetKeyLastUsage.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use crate::asymmetric::{b64, unb64};
use crate::common::*;
use kms_engine::state::State;
use kms_engine::store::format::{StoreHeader, open_file};
use kms_engine::store::root;
use kms_engine::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (CI installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn call(e: &Engine, op: &str, req: Value) -> Result<Value, KmsError> {
    e.dispatch(&alice(), op, req)
}

fn err(r: Result<Value, KmsError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.exception_name(),
    }
}

fn create_external(e: &Engine, spec: &str, usage: &str) -> String {
    let r = call(
        e,
        "CreateKey",
        json!({"KeySpec": spec, "KeyUsage": usage, "Origin": "EXTERNAL"}),
    )
    .unwrap();
    assert_eq!(r["KeyMetadata"]["Origin"], "EXTERNAL");
    assert_eq!(r["KeyMetadata"]["KeyState"], "PendingImport");
    assert_eq!(r["KeyMetadata"]["Enabled"], false);
    assert!(r["KeyMetadata"].get("ExpirationModel").is_none());
    r["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
}

fn describe(e: &Engine, id: &str) -> Value {
    call(e, "DescribeKey", json!({"KeyId": id})).unwrap()["KeyMetadata"].clone()
}

/// The wrapping key and token GetParametersForImport gives, the public key
/// written to `dir/wrap.der`.
fn parameters(e: &Engine, dir: &Path, id: &str, alg: &str, spec: &str) -> Vec<u8> {
    let r = call(
        e,
        "GetParametersForImport",
        json!({"KeyId": id, "WrappingAlgorithm": alg, "WrappingKeySpec": spec}),
    )
    .unwrap();
    assert_eq!(r["ParametersValidTo"], T0 + 86_400);
    assert!(r["KeyId"].as_str().unwrap().ends_with(id));
    std::fs::write(dir.join("wrap.der"), unb64(&r["PublicKey"])).unwrap();
    unb64(&r["ImportToken"])
}

/// `material` wrapped by openssl under `dir/wrap.der` as AWS specifies
/// `alg`: RSA-OAEP of the material itself, or RSA-OAEP of a fresh AES-256
/// key followed by the material under AES key wrap with padding.
fn openssl_wrap(dir: &Path, alg: &str, material: &[u8]) -> Vec<u8> {
    let md = if alg.ends_with("SHA_1") {
        "sha1"
    } else {
        "sha256"
    };
    let oaep = |input: &str, output: &str| {
        openssl(
            dir,
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-keyform",
                "DER",
                "-inkey",
                "wrap.der",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &format!("rsa_oaep_md:{md}"),
                "-pkeyopt",
                &format!("rsa_mgf1_md:{md}"),
                "-in",
                input,
                "-out",
                output,
            ],
        );
    };
    std::fs::write(dir.join("material.bin"), material).unwrap();
    if alg.starts_with("RSAES_OAEP") {
        oaep("material.bin", "wrapped.bin");
        return std::fs::read(dir.join("wrapped.bin")).unwrap();
    }
    let aes = openssl(dir, &["rand", "-hex", "32"]);
    let aes = aes.trim();
    std::fs::write(
        dir.join("aes.bin"),
        (0..32)
            .map(|i| u8::from_str_radix(&aes[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    oaep("aes.bin", "aes.wrapped");
    openssl(
        dir,
        &[
            "enc",
            "-id-aes256-wrap-pad",
            "-K",
            aes,
            "-iv",
            "A65959A6",
            "-in",
            "material.bin",
            "-out",
            "material.wrapped",
        ],
    );
    let mut out = std::fs::read(dir.join("aes.wrapped")).unwrap();
    out.extend(std::fs::read(dir.join("material.wrapped")).unwrap());
    out
}

fn import(
    e: &Engine,
    id: &str,
    token: &[u8],
    wrapped: &[u8],
    extra: Value,
) -> Result<Value, KmsError> {
    let mut req = json!({
        "KeyId": id,
        "ImportToken": b64(token),
        "EncryptedKeyMaterial": b64(wrapped),
    });
    if extra.as_object().is_none_or(|o| o.is_empty()) {
        req["ExpirationModel"] = json!("KEY_MATERIAL_DOES_NOT_EXPIRE");
    }
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        req[k] = v;
    }
    call(e, "ImportKeyMaterial", req)
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut v).unwrap();
    v
}

fn encrypt(e: &Engine, id: &str) -> Result<Value, KmsError> {
    call(
        e,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": b64(b"imported")}),
    )
}

/// The decoded state of the store file as it is on disk.
fn state_on_disk(f: &Fixture) -> (State, Vec<u8>) {
    let bytes = std::fs::read(f.engine_dir().join("engine.store")).unwrap();
    let header = StoreHeader::decode(&bytes).unwrap();
    let p = header.root();
    let rk = root::root_key(&passphrase("correct horse"), p.kdf, &p.salt).unwrap();
    let store_key = header.unlock(&rk).unwrap();
    let plain = open_file(&store_key, &bytes).unwrap();
    (
        State::decode(&plain, header.version()).unwrap(),
        plain.to_vec(),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Symmetric material wrapped by openssl with each of AWS's four wrapping
/// algorithms (and each wrapping key size) imports; the key turns Enabled
/// and encrypts and decrypts.
#[test]
fn openssl_wrapped_symmetric_material_imports_with_every_wrapping_algorithm() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    for (alg, spec) in [
        ("RSAES_OAEP_SHA_1", "RSA_2048"),
        ("RSAES_OAEP_SHA_256", "RSA_3072"),
        ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"),
    ] {
        let id = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
        assert_eq!(err(encrypt(e, &id)), "KMSInvalidStateException");
        let token = parameters(e, tmp.path(), &id, alg, spec);
        let wrapped = openssl_wrap(tmp.path(), alg, &random(32));
        let r = import(e, &id, &token, &wrapped, json!({})).unwrap();
        assert_eq!(r["KeyMaterialId"].as_str().unwrap().len(), 64, "{alg}");
        let d = describe(e, &id);
        assert_eq!(d["KeyState"], "Enabled", "{alg}");
        assert_eq!(d["ExpirationModel"], "KEY_MATERIAL_DOES_NOT_EXPIRE");
        assert!(d.get("ValidTo").is_none());
        let c = encrypt(e, &id).unwrap();
        let p = call(e, "Decrypt", json!({"CiphertextBlob": c["CiphertextBlob"]})).unwrap();
        assert_eq!(unb64(&p["Plaintext"]), b"imported");
    }
}

/// HMAC material imported through openssl: GenerateMac equals openssl's
/// HMAC with the same key.
#[test]
fn imported_hmac_key_matches_openssl_hmac() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let id = create_external(e, "HMAC_256", "GENERATE_VERIFY_MAC");
    let token = parameters(e, tmp.path(), &id, "RSAES_OAEP_SHA_256", "RSA_2048");
    let key = random(48);
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &key);
    import(e, &id, &token, &wrapped, json!({})).unwrap();
    let mac = call(
        e,
        "GenerateMac",
        json!({"KeyId": id, "Message": b64(b"hello"), "MacAlgorithm": "HMAC_SHA_256"}),
    )
    .unwrap();
    std::fs::write(tmp.path().join("msg"), b"hello").unwrap();
    let hexkey: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let out = openssl(
        tmp.path(),
        &[
            "mac",
            "-digest",
            "SHA256",
            "-macopt",
            &format!("hexkey:{hexkey}"),
            "-in",
            "msg",
            "HMAC",
        ],
    );
    let got: String = unb64(&mac["Mac"])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, out.trim().to_ascii_lowercase());
}

/// An openssl-made P-256 and RSA-2048 private key (PKCS#8) imported with
/// RSA_AES_KEY_WRAP: GetPublicKey is openssl's public key, and the
/// engine's signatures verify in openssl.
#[test]
fn imported_asymmetric_keys_are_openssls_keys() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (spec, gen_args, alg) in [
        (
            "ECC_NIST_P256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "ECDSA_SHA_256",
        ),
        (
            "RSA_2048",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            "RSASSA_PKCS1_V1_5_SHA_256",
        ),
    ] {
        let mut args = vec!["genpkey"];
        args.extend_from_slice(gen_args);
        args.extend_from_slice(&["-out", "k.pem"]);
        openssl(d, &args);
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out", "k.der",
            ],
        );
        openssl(
            d,
            &[
                "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        let id = create_external(e, spec, "SIGN_VERIFY");
        // An RSA private key needs an RSA_AES wrapping algorithm, as in AWS.
        if spec == "RSA_2048" {
            let r = call(
                e,
                "GetParametersForImport",
                json!({"KeyId": id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_4096"}),
            );
            assert_eq!(err(r), "ValidationException");
        }
        let token = parameters(e, d, &id, "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072");
        let wrapped = openssl_wrap(
            d,
            "RSA_AES_KEY_WRAP_SHA_256",
            &std::fs::read(d.join("k.der")).unwrap(),
        );
        import(e, &id, &token, &wrapped, json!({})).unwrap();
        let pk = call(e, "GetPublicKey", json!({"KeyId": id})).unwrap();
        assert_eq!(
            unb64(&pk["PublicKey"]),
            std::fs::read(d.join("pub.der")).unwrap()
        );
        let sig = call(
            e,
            "Sign",
            json!({"KeyId": id, "Message": b64(b"release"), "SigningAlgorithm": alg}),
        )
        .unwrap();
        std::fs::write(d.join("msg"), b"release").unwrap();
        std::fs::write(d.join("sig"), unb64(&sig["Signature"])).unwrap();
        let out = openssl(
            d,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.der",
                "-keyform",
                "DER",
                "-signature",
                "sig",
                "msg",
            ],
        );
        assert!(out.contains("Verified OK"), "{spec}: {out}");
    }
    // A P-384 key is not material for a P-256 key.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "k.pem",
        ],
    );
    openssl(
        d,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out", "k.der",
        ],
    );
    let id = create_external(e, "ECC_NIST_P256", "SIGN_VERIFY");
    let token = parameters(e, d, &id, "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048");
    let wrapped = openssl_wrap(
        d,
        "RSA_AES_KEY_WRAP_SHA_1",
        &std::fs::read(d.join("k.der")).unwrap(),
    );
    assert_eq!(
        err(import(e, &id, &token, &wrapped, json!({}))),
        "IncorrectKeyMaterialException"
    );
    assert_eq!(describe(e, &id)["KeyState"], "PendingImport");
}

/// DeleteImportedKeyMaterial takes the material out of the store file; only
/// the same material imports again, and then a ciphertext made before the
/// deletion decrypts.
#[test]
fn delete_and_reimport_of_the_same_material_only() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let id = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let material = random(32);
    let token = parameters(e, tmp.path(), &id, "RSAES_OAEP_SHA_256", "RSA_2048");
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &material);
    let first = import(e, &id, &token, &wrapped, json!({})).unwrap();
    let (st, plain) = state_on_disk(&f);
    assert_eq!(
        st.keys
            .values()
            .find(|k| k.id.to_string() == id)
            .unwrap()
            .versions
            .len(),
        1
    );
    assert!(contains(&plain, &material));
    let old = encrypt(e, &id).unwrap()["CiphertextBlob"].clone();

    let del = call(e, "DeleteImportedKeyMaterial", json!({"KeyId": id})).unwrap();
    assert_eq!(del["KeyMaterialId"], first["KeyMaterialId"]);
    assert_eq!(describe(e, &id)["KeyState"], "PendingImport");
    assert!(describe(e, &id).get("ExpirationModel").is_none());
    assert_eq!(
        err(call(e, "Decrypt", json!({"CiphertextBlob": old}))),
        "KMSInvalidStateException"
    );
    assert_eq!(
        err(call(e, "DeleteImportedKeyMaterial", json!({"KeyId": id}))),
        "KMSInvalidStateException"
    );
    assert_eq!(
        err(call(e, "EnableKey", json!({"KeyId": id}))),
        "KMSInvalidStateException"
    );
    // Gone from the file, also after a reopen.
    let (st, plain) = state_on_disk(&f);
    let rec = st.keys.values().find(|k| k.id.to_string() == id).unwrap();
    assert!(rec.versions.is_empty());
    assert_eq!(rec.state, kms_engine::key::KeyState::PendingImport);
    assert!(!contains(&plain, &material));
    let again = f.reopen().unwrap();
    assert_eq!(describe(&again, &id)["KeyState"], "PendingImport");

    // Other material: refused, the key stays PendingImport.
    let token = parameters(e, tmp.path(), &id, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048");
    let other = openssl_wrap(tmp.path(), "RSA_AES_KEY_WRAP_SHA_256", &random(32));
    assert_eq!(
        err(import(e, &id, &token, &other, json!({}))),
        "IncorrectKeyMaterialException"
    );
    assert_eq!(describe(e, &id)["KeyState"], "PendingImport");
    // A new material is not this engine's rotation either.
    let same = openssl_wrap(tmp.path(), "RSA_AES_KEY_WRAP_SHA_256", &material);
    assert_eq!(
        err(import(
            e,
            &id,
            &token,
            &same,
            json!({"ImportType": "NEW_KEY_MATERIAL", "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"})
        )),
        "UnsupportedOperationException"
    );
    // The same material (another wrapping, another token) comes back.
    let r = import(
        e,
        &id,
        &token,
        &same,
        json!({"ImportType": "EXISTING_KEY_MATERIAL", "KeyMaterialId": first["KeyMaterialId"], "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
    )
    .unwrap();
    assert_eq!(r["KeyMaterialId"], first["KeyMaterialId"]);
    assert_eq!(describe(e, &id)["KeyState"], "Enabled");
    let p = call(e, "Decrypt", json!({"CiphertextBlob": old})).unwrap();
    assert_eq!(unb64(&p["Plaintext"]), b"imported");
}

/// Material with a ValidTo a few seconds ahead: at ValidTo the key turns
/// PendingImport, Encrypt is KMSInvalidStateException and the material is
/// no longer in the store file.
#[test]
fn expired_material_is_deleted_from_the_store() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let id = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let material = random(32);
    let token = parameters(e, tmp.path(), &id, "RSAES_OAEP_SHA_1", "RSA_2048");
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_1", &material);
    import(
        e,
        &id,
        &token,
        &wrapped,
        json!({"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": T0 + 5}),
    )
    .unwrap();
    let d = describe(e, &id);
    assert_eq!(d["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(d["ValidTo"], T0 + 5);
    encrypt(e, &id).unwrap();
    f.clock.advance_secs(5);
    assert_eq!(err(encrypt(e, &id)), "KMSInvalidStateException");
    assert_eq!(describe(e, &id)["KeyState"], "PendingImport");
    let (st, plain) = state_on_disk(&f);
    assert!(
        st.keys
            .values()
            .find(|k| k.id.to_string() == id)
            .unwrap()
            .versions
            .is_empty()
    );
    assert!(!contains(&plain, &material));
    // A store opened after ValidTo by another engine applies it at once.
    let f2 = fixture();
    let id2 = create_external(&f2.engine, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let token = parameters(&f2.engine, tmp.path(), &id2, "RSAES_OAEP_SHA_1", "RSA_2048");
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_1", &material);
    import(
        &f2.engine,
        &id2,
        &token,
        &wrapped,
        json!({"ValidTo": T0 + 60}),
    )
    .unwrap();
    drop(f2.engine);
    f2.clock.advance_secs(61);
    let reopened = Engine::open(
        &f2.dir.path().join("engine"),
        passphrase("correct horse"),
        std::sync::Arc::new(f2.clock.clone()),
        std::sync::Arc::new(audit::NullSink),
    )
    .unwrap();
    assert_eq!(err(encrypt(&reopened, &id2)), "KMSInvalidStateException");
    assert_eq!(describe(&reopened, &id2)["KeyState"], "PendingImport");
}

/// Tokens: another key's, an altered one, an expired one; wrapped material
/// that does not decrypt; each with AWS's exception, the key unchanged.
#[test]
fn bad_tokens_and_ciphertexts_are_refused() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let a = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let b = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let token_a = parameters(e, tmp.path(), &a, "RSAES_OAEP_SHA_256", "RSA_2048");
    let wrapped_a = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &random(32));
    assert_eq!(
        err(import(e, &b, &token_a, &wrapped_a, json!({}))),
        "InvalidImportTokenException"
    );
    let mut altered = token_a.clone();
    let n = altered.len();
    altered[n / 2] ^= 1;
    assert_eq!(
        err(import(e, &a, &altered, &wrapped_a, json!({}))),
        "InvalidImportTokenException"
    );
    assert_eq!(
        err(import(e, &a, b"garbage", &wrapped_a, json!({}))),
        "InvalidImportTokenException"
    );
    // Material wrapped under another token's key does not decrypt.
    let _token_a2 = parameters(e, tmp.path(), &a, "RSAES_OAEP_SHA_256", "RSA_2048");
    let wrapped_other = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &random(32));
    assert_eq!(
        err(import(e, &a, &token_a, &wrapped_other, json!({}))),
        "InvalidCiphertextException"
    );
    // The wrong length of material.
    let wrapped_short = {
        let t = parameters(e, tmp.path(), &a, "RSAES_OAEP_SHA_256", "RSA_2048");
        (
            t,
            openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &random(16)),
        )
    };
    assert_eq!(
        err(import(e, &a, &wrapped_short.0, &wrapped_short.1, json!({}))),
        "IncorrectKeyMaterialException"
    );
    // A token used after its 24 hours.
    let token = parameters(e, tmp.path(), &a, "RSAES_OAEP_SHA_256", "RSA_2048");
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &random(32));
    f.clock.advance_secs(86_401);
    assert_eq!(
        err(import(e, &a, &token, &wrapped, json!({}))),
        "ExpiredImportTokenException"
    );
    assert_eq!(describe(e, &a)["KeyState"], "PendingImport");
}

/// Requests AWS refuses: ExpirationModel/ValidTo mismatches, ValidTo out of
/// range, unsupported wrapping parameters, keys that are not EXTERNAL,
/// rotation of imported keys, key states.
#[test]
fn refused_requests_get_aws_exceptions() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let id = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let token = parameters(e, tmp.path(), &id, "RSAES_OAEP_SHA_256", "RSA_2048");
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &random(32));
    for extra in [
        json!({"ExpirationModel": "KEY_MATERIAL_EXPIRES"}),
        json!({"ValidTo": null, "ExpirationModel": null, "ImportType": null}),
        json!({"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": T0 + 100}),
        json!({"ValidTo": T0 - 1}),
        json!({"ValidTo": T0 + 366 * 86_400}),
        json!({"ExpirationModel": "SOMETIMES", "ValidTo": T0 + 100}),
        json!({"ValidTo": T0 + 100, "ImportType": "MAYBE"}),
    ] {
        assert_eq!(
            err(import(e, &id, &token, &wrapped, extra.clone())),
            "ValidationException",
            "{extra}"
        );
    }
    assert_eq!(
        err(import(
            e,
            &id,
            &token,
            &wrapped,
            json!({"ValidTo": T0 + 100, "KeyMaterialDescription": "x"})
        )),
        "UnsupportedOperationException"
    );
    let gp = |id: &str, alg: &str, spec: &str| {
        call(
            e,
            "GetParametersForImport",
            json!({"KeyId": id, "WrappingAlgorithm": alg, "WrappingKeySpec": spec}),
        )
    };
    assert_eq!(
        err(gp(&id, "RSAES_PKCS1_V1_5", "RSA_2048")),
        "UnsupportedOperationException"
    );
    assert_eq!(
        err(gp(&id, "SM2PKE", "SM2")),
        "UnsupportedOperationException"
    );
    assert_eq!(
        err(gp(&id, "RSAES_OAEP_SHA_256", "RSA_1024")),
        "ValidationException"
    );
    assert_eq!(err(gp(&id, "AES_GCM", "RSA_2048")), "ValidationException");
    let p521 = create_external(e, "ECC_NIST_P521", "SIGN_VERIFY");
    assert_eq!(
        err(gp(&p521, "RSAES_OAEP_SHA_1", "RSA_2048")),
        "ValidationException"
    );
    assert!(gp(&p521, "RSAES_OAEP_SHA_1", "RSA_3072").is_ok());
    let own = call(e, "CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"].clone();
    let own = own.as_str().unwrap();
    assert_eq!(
        err(gp(own, "RSAES_OAEP_SHA_256", "RSA_2048")),
        "UnsupportedOperationException"
    );
    assert_eq!(
        err(import(e, own, &token, &wrapped, json!({}))),
        "UnsupportedOperationException"
    );
    assert_eq!(
        err(call(e, "DeleteImportedKeyMaterial", json!({"KeyId": own}))),
        "UnsupportedOperationException"
    );
    assert_eq!(
        err(gp("alias/none", "RSAES_OAEP_SHA_256", "RSA_2048")),
        "NotFoundException"
    );
    for origin in ["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"] {
        assert_eq!(
            err(call(e, "CreateKey", json!({"Origin": origin}))),
            "UnsupportedOperationException"
        );
    }
    assert_eq!(
        err(call(e, "CreateKey", json!({"Origin": "ELSEWHERE"}))),
        "ValidationException"
    );
    // Rotation of imported keys (AWS: no automatic rotation; on-demand
    // only into newly imported material, which this engine does not keep).
    import(e, &id, &token, &wrapped, json!({})).unwrap();
    assert_eq!(
        err(call(e, "EnableKeyRotation", json!({"KeyId": id}))),
        "UnsupportedOperationException"
    );
    assert_eq!(
        err(call(e, "RotateKeyOnDemand", json!({"KeyId": id}))),
        "UnsupportedOperationException"
    );
    assert_eq!(
        call(e, "GetKeyRotationStatus", json!({"KeyId": id})).unwrap()["KeyRotationEnabled"],
        false
    );
    // Disable keeps the material; a key pending deletion takes no import,
    // and cancelling the deletion of a key without material is PendingImport.
    call(e, "DisableKey", json!({"KeyId": id})).unwrap();
    assert_eq!(err(encrypt(e, &id)), "DisabledException");
    let pending = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let token = parameters(e, tmp.path(), &pending, "RSAES_OAEP_SHA_256", "RSA_2048");
    let wrapped = openssl_wrap(tmp.path(), "RSAES_OAEP_SHA_256", &random(32));
    call(
        e,
        "ScheduleKeyDeletion",
        json!({"KeyId": pending, "PendingWindowInDays": 7}),
    )
    .unwrap();
    assert_eq!(
        err(import(e, &pending, &token, &wrapped, json!({}))),
        "KMSInvalidStateException"
    );
    assert_eq!(
        err(gp(&pending, "RSAES_OAEP_SHA_256", "RSA_2048")),
        "KMSInvalidStateException"
    );
    call(e, "CancelKeyDeletion", json!({"KeyId": pending})).unwrap();
    assert_eq!(describe(e, &pending)["KeyState"], "PendingImport");
}

/// Key policies see kms:WrappingAlgorithm, kms:WrappingKeySpec,
/// kms:ExpirationModel, kms:ValidTo and kms:KeyOrigin; the audit records of
/// the import operations carry neither the token nor the material.
#[test]
fn policy_condition_keys_and_audit() {
    let f = fixture();
    let e = &f.engine;
    let tmp = tempfile::tempdir().unwrap();
    let id = create_external(e, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:1000"},
             "Action": ["kms:DescribeKey", "kms:PutKeyPolicy", "kms:Encrypt", "kms:DeleteImportedKeyMaterial"],
             "Resource": "*"},
            {"Sid": "Params", "Effect": "Allow", "Principal": {"AWS": "uid:1000"},
             "Action": "kms:GetParametersForImport", "Resource": "*",
             "Condition": {"StringEquals": {"kms:WrappingAlgorithm": "RSA_AES_KEY_WRAP_SHA_256",
                                            "kms:WrappingKeySpec": "RSA_4096",
                                            "kms:KeyOrigin": "EXTERNAL"}}},
            {"Sid": "Import", "Effect": "Allow", "Principal": {"AWS": "uid:1000"},
             "Action": "kms:ImportKeyMaterial", "Resource": "*",
             "Condition": {"StringEquals": {"kms:ExpirationModel": "KEY_MATERIAL_EXPIRES"},
                           "NumericLessThanEquals": {"kms:ValidTo": (T0 + 3600).to_string()}}}
        ]
    });
    call(
        e,
        "PutKeyPolicy",
        json!({"KeyId": id, "PolicyName": "default", "Policy": policy.to_string()}),
    )
    .unwrap();
    let gp = |alg: &str, spec: &str| {
        call(
            e,
            "GetParametersForImport",
            json!({"KeyId": id, "WrappingAlgorithm": alg, "WrappingKeySpec": spec}),
        )
    };
    assert_eq!(
        err(gp("RSAES_OAEP_SHA_256", "RSA_4096")),
        "AccessDeniedException"
    );
    assert_eq!(
        err(gp("RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")),
        "AccessDeniedException"
    );
    let token = parameters(e, tmp.path(), &id, "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096");
    let material = random(32);
    let wrapped = openssl_wrap(tmp.path(), "RSA_AES_KEY_WRAP_SHA_256", &material);
    assert_eq!(
        err(import(e, &id, &token, &wrapped, json!({}))),
        "AccessDeniedException"
    );
    assert_eq!(
        err(import(
            e,
            &id,
            &token,
            &wrapped,
            json!({"ValidTo": T0 + 7200})
        )),
        "AccessDeniedException"
    );
    import(e, &id, &token, &wrapped, json!({"ValidTo": T0 + 3600})).unwrap();
    assert_eq!(describe(e, &id)["KeyState"], "Enabled");
    assert_eq!(
        err(call(e, "GetKeyLastUsage", json!({"KeyId": id}))),
        "AccessDeniedException"
    );

    let events = serde_json::to_string(&f.sink.events()).unwrap();
    for name in [
        "GetParametersForImport",
        "ImportKeyMaterial",
        "GetKeyLastUsage",
    ] {
        assert!(events.contains(name), "{name} audited");
    }
    assert!(events.contains("AccessDeniedException"));
    assert!(!events.contains(&b64(&token)));
    assert!(!events.contains(&b64(&material)));
    assert!(!events.contains(&b64(&wrapped)));
    let hexm: String = material.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!events.contains(&hexm));
}

fn last_usage(e: &Engine, id: &str) -> Value {
    call(e, "GetKeyLastUsage", json!({"KeyId": id})).unwrap()
}

/// GetKeyLastUsage: nothing before a use, then the last successful
/// cryptographic operation with its time and audit request id (both keys
/// of a ReEncrypt); failures and management calls do not count; the
/// record outlives the engine (another open sees it).
#[test]
fn key_last_usage_follows_successful_cryptographic_operations() {
    let f = fixture();
    let e = &f.engine;
    let id = call(e, "CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let other = call(e, "CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let u = last_usage(e, &id);
    assert_eq!(u["KeyId"], id.as_str());
    assert!(u.get("KeyLastUsage").is_none());
    assert_eq!(u["KeyCreationDate"], T0);
    assert_eq!(u["TrackingStartDate"], T0);
    f.clock.advance_secs(10);
    let c = encrypt(e, &id).unwrap();
    let u = last_usage(e, &id);
    assert_eq!(u["KeyLastUsage"]["Operation"], "Encrypt");
    assert_eq!(u["KeyLastUsage"]["Timestamp"], T0 + 10);
    f.clock.advance_secs(10);
    call(e, "Decrypt", json!({"CiphertextBlob": c["CiphertextBlob"]})).unwrap();
    let u = last_usage(e, &id);
    assert_eq!(u["KeyLastUsage"]["Operation"], "Decrypt");
    let rid = u["KeyLastUsage"]["KmsRequestId"]
        .as_str()
        .unwrap()
        .to_string();
    let decrypt_record = f
        .sink
        .events()
        .into_iter()
        .rfind(|ev| ev.event_name == "Decrypt")
        .unwrap();
    assert_eq!(decrypt_record.request_id, rid);
    assert_eq!(
        decrypt_record.event_id.as_deref(),
        u["KeyLastUsage"]["CloudTrailEventId"].as_str()
    );
    // A failed call and a management call leave it.
    f.clock.advance_secs(10);
    let bad = call(
        e,
        "Decrypt",
        json!({"CiphertextBlob": c["CiphertextBlob"], "EncryptionContext": {"a": "b"}}),
    );
    assert_eq!(err(bad), "InvalidCiphertextException");
    call(e, "DescribeKey", json!({"KeyId": id})).unwrap();
    assert_eq!(last_usage(e, &id)["KeyLastUsage"]["Timestamp"], T0 + 20);
    // ReEncrypt uses both keys.
    call(
        e,
        "ReEncrypt",
        json!({"CiphertextBlob": c["CiphertextBlob"], "DestinationKeyId": other}),
    )
    .unwrap();
    for k in [&id, &other] {
        assert_eq!(last_usage(e, k)["KeyLastUsage"]["Operation"], "ReEncrypt");
    }
    // Aliases are refused, as AWS.
    call(
        e,
        "CreateAlias",
        json!({"AliasName": "alias/u", "TargetKeyId": id}),
    )
    .unwrap();
    assert_eq!(
        err(call(e, "GetKeyLastUsage", json!({"KeyId": "alias/u"}))),
        "ValidationException"
    );
    // Another engine (another process) sees it within about two seconds,
    // while this one runs: the flusher thread wrote it.
    let reopened = f.reopen().unwrap();
    let seen = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        last_usage(&reopened, &other)["KeyLastUsage"]["Operation"] == "ReEncrypt"
    });
    assert!(seen, "{}", last_usage(&reopened, &other));
    // What is left is written when the engine closes.
    f.clock.advance_secs(10);
    encrypt(e, &other).unwrap();
    drop(f.engine);
    assert_eq!(
        last_usage(&reopened, &other)["KeyLastUsage"]["Operation"],
        "Encrypt"
    );
    let u = last_usage(&reopened, &id);
    assert_eq!(u["KeyLastUsage"]["Operation"], "ReEncrypt");
    assert_eq!(u["KeyLastUsage"]["Timestamp"], T0 + 30);
    let mode = std::fs::metadata(f.dir.path().join("engine/key-usage")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

/// With the file audit trail, CloudTrailEventId and KmsRequestId of
/// GetKeyLastUsage name the trail's record of that call.
#[test]
fn key_last_usage_names_the_audit_record() {
    let f = fixture();
    let audit_dir = f.dir.path().join("audit");
    let trail = std::sync::Arc::new(crate::audit_support::open(
        &audit_dir,
        crate::audit_support::options(),
    ));
    let e = Engine::open(
        &f.engine_dir(),
        passphrase("correct horse"),
        std::sync::Arc::new(f.clock.clone()),
        trail,
    )
    .unwrap();
    let id = call(&e, "CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let c = encrypt(&e, &id).unwrap();
    call(
        &e,
        "Decrypt",
        json!({"CiphertextBlob": c["CiphertextBlob"]}),
    )
    .unwrap();
    let u = last_usage(&e, &id)["KeyLastUsage"].clone();
    let records = kms_engine::audit::query::tail(&audit_dir, 100).unwrap();
    let rec = records
        .iter()
        .find(|r| {
            r.record.get("eventID").and_then(Value::as_str) == u["CloudTrailEventId"].as_str()
        })
        .expect("a trail record with that eventID");
    assert_eq!(rec.record["eventName"], "Decrypt");
    assert_eq!(rec.record["requestID"], u["KmsRequestId"]);
}
