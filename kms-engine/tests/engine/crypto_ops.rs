//! Encrypt / Decrypt / ReEncrypt / GenerateDataKey / GenerateRandom.

use crate::common;
use common::*;
use kms_engine::*;

#[test]
fn encrypt_decrypt_round_trip_and_context_binding() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[("ab", "c")]);
    let blob = f.encrypt(&k, b"secret", &c).unwrap();
    assert_eq!(f.decrypt(&blob, &c, None).unwrap(), b"secret");
    assert_eq!(f.decrypt(&blob, &c, Some(&k)).unwrap(), b"secret");
    let swapped = ctx(&[("a", "bc")]);
    assert!(matches!(
        f.decrypt(&blob, &swapped, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        f.decrypt(&blob, &EncryptionContext::new(), None),
        Err(KmsError::InvalidCiphertext(_))
    ));
}

#[test]
fn data_key_blob_fits_file_header() {
    let f = fixture();
    let k = f.new_key();
    let r = f
        .engine
        .generate_data_key(
            &alice(),
            GenerateDataKeyRequest {
                key_id: k.clone(),
                encryption_context: ctx(&[("kmsfs:volume", "v"), ("kmsfs:path", "/a/b")]),
                key_spec: Some("AES_256".into()),
                number_of_bytes: None,
                grant_tokens: None,
            },
        )
        .unwrap();
    assert_eq!(r.plaintext.len(), 32);
    assert!(
        r.ciphertext_blob.len() <= 100,
        "{}",
        r.ciphertext_blob.len()
    );
    let pt = f
        .decrypt(
            &r.ciphertext_blob,
            &ctx(&[("kmsfs:volume", "v"), ("kmsfs:path", "/a/b")]),
            None,
        )
        .unwrap();
    assert_eq!(pt, r.plaintext.as_slice());
}

#[test]
fn dispatch_round_trip() {
    let f = fixture();
    let p = alice();
    let created = f
        .engine
        .dispatch(&p, "CreateKey", serde_json::json!({"Description": "d"}))
        .unwrap();
    let id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(created["KeyMetadata"]["KeyState"], "Enabled");
    let enc = f
        .engine
        .dispatch(
            &p,
            "Encrypt",
            serde_json::json!({"KeyId": id, "Plaintext": "aGVsbG8=", "EncryptionContext": {"k": "v"}}),
        )
        .unwrap();
    let dec = f
        .engine
        .dispatch(
            &p,
            "Decrypt",
            serde_json::json!({"CiphertextBlob": enc["CiphertextBlob"], "EncryptionContext": {"k": "v"}}),
        )
        .unwrap();
    assert_eq!(dec["Plaintext"], "aGVsbG8=");
    assert_eq!(
        dec["KeyId"],
        format!("arn:aws:kms:local:000000000000:key/{id}")
    );
    assert!(matches!(
        f.engine.dispatch(&p, "Nope", serde_json::json!({})),
        Err(KmsError::UnsupportedOperation(_))
    ));
    assert!(matches!(
        f.engine
            .dispatch(&p, "Encrypt", serde_json::json!({"KeyId": 5})),
        Err(KmsError::Validation(_))
    ));
}

fn reenc(
    f: &Fixture,
    blob: &[u8],
    src_ctx: &EncryptionContext,
    src_key: Option<&str>,
    dst: &str,
    dst_ctx: &EncryptionContext,
) -> Result<ReEncryptResponse, KmsError> {
    f.engine.re_encrypt(
        &alice(),
        ReEncryptRequest {
            ciphertext_blob: blob.to_vec(),
            source_encryption_context: src_ctx.clone(),
            source_key_id: src_key.map(str::to_string),
            destination_key_id: dst.into(),
            destination_encryption_context: dst_ctx.clone(),
            source_encryption_algorithm: None,
            destination_encryption_algorithm: None,
            grant_tokens: None,
        },
    )
}

#[test]
fn every_flipped_byte_is_invalid_ciphertext() {
    let f = fixture();
    let k = f.new_key();
    let _other = f.new_key();
    let c = ctx(&[("kmsfs:path", "/a")]);
    let blob = f.encrypt(&k, &[7u8; 32], &c).unwrap();
    assert_eq!(blob.len(), 81);
    for i in 0..blob.len() {
        for bit in 0..8 {
            let mut t = blob.clone();
            t[i] ^= 1 << bit;
            let r = f.decrypt(&t, &c, None);
            assert!(
                matches!(r, Err(KmsError::InvalidCiphertext(_))),
                "byte {i} bit {bit}: {r:?}"
            );
        }
    }
    // Truncated and extended blobs too.
    assert!(matches!(
        f.decrypt(&blob[..blob.len() - 1], &c, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        f.decrypt(&longer, &c, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        f.decrypt(&blob[..33], &c, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
}

#[test]
fn key_id_forms_and_incorrect_key() {
    let f = fixture();
    let k = f.new_key();
    let other = f.new_key();
    f.engine
        .create_alias(
            &alice(),
            CreateAliasRequest {
                alias_name: "alias/vol".into(),
                target_key_id: k.clone(),
            },
        )
        .unwrap();
    let c = ctx(&[]);
    let arn = format!("arn:aws:kms:local:000000000000:key/{k}");
    for form in [
        k.clone(),
        arn.clone(),
        "alias/vol".into(),
        "arn:aws:kms:local:000000000000:alias/vol".into(),
    ] {
        let b = f.encrypt(&form, b"p", &c).unwrap();
        assert_eq!(f.decrypt(&b, &c, Some(&form)).unwrap(), b"p");
    }
    let b = f.encrypt(&k, b"p", &c).unwrap();
    assert!(matches!(
        f.decrypt(&b, &c, Some(&other)),
        Err(KmsError::IncorrectKey(_))
    ));
    assert!(matches!(
        f.decrypt(&b, &c, Some("alias/none")),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.encrypt("00000000-0000-4000-8000-000000000000", b"p", &c),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.encrypt("garbage", b"p", &c),
        Err(KmsError::NotFound(_))
    ));
}

#[test]
fn plaintext_and_context_limits() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[]);
    assert!(matches!(
        f.encrypt(&k, b"", &c),
        Err(KmsError::Validation(_))
    ));
    assert!(f.encrypt(&k, &[1u8; 4096], &c).is_ok());
    assert!(matches!(
        f.encrypt(&k, &[1u8; 4097], &c),
        Err(KmsError::Validation(_))
    ));
    let big = "v".repeat(8200);
    assert!(matches!(
        f.encrypt(&k, b"x", &ctx(&[("k", &big)])),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        f.encrypt(&k, b"x", &ctx(&[("", "v")])),
        Err(KmsError::Validation(_))
    ));
    let r = f.engine.encrypt(
        &alice(),
        EncryptRequest {
            key_id: k.clone(),
            plaintext: SecretBytes::from(&b"x"[..]),
            encryption_context: c.clone(),
            encryption_algorithm: Some("RSAES_OAEP_SHA_256".into()),
            grant_tokens: None,
        },
    );
    assert!(matches!(r, Err(KmsError::InvalidKeyUsage(_))));
}

#[test]
fn re_encrypt_checks_source_and_destination() {
    let f = fixture();
    let a = f.new_key();
    let b = f.new_key();
    let old = ctx(&[("kmsfs:path", "/old")]);
    let new = ctx(&[("kmsfs:path", "/new")]);
    let blob = f.encrypt(&a, b"dek", &old).unwrap();
    // New context, same key.
    let r = reenc(&f, &blob, &old, None, &a, &new).unwrap();
    assert!(r.key_id.ends_with(&a) && r.source_key_id.ends_with(&a));
    assert_eq!(f.decrypt(&r.ciphertext_blob, &new, None).unwrap(), b"dek");
    assert!(f.decrypt(&r.ciphertext_blob, &old, None).is_err());
    // New key.
    let r = reenc(&f, &blob, &old, Some(&a), &b, &old).unwrap();
    assert!(r.key_id.ends_with(&b));
    assert_eq!(
        f.decrypt(&r.ciphertext_blob, &old, Some(&b)).unwrap(),
        b"dek"
    );
    // Wrong source context / source key.
    assert!(matches!(
        reenc(&f, &blob, &new, None, &a, &new),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        reenc(&f, &blob, &old, Some(&b), &a, &new),
        Err(KmsError::IncorrectKey(_))
    ));
    // Destination disabled / source disabled.
    f.engine.disable_key(&alice(), f.key_id_req(&b)).unwrap();
    assert!(matches!(
        reenc(&f, &blob, &old, None, &b, &new),
        Err(KmsError::Disabled(_))
    ));
    f.engine.enable_key(&alice(), f.key_id_req(&b)).unwrap();
    f.engine.disable_key(&alice(), f.key_id_req(&a)).unwrap();
    assert!(matches!(
        reenc(&f, &blob, &old, None, &b, &new),
        Err(KmsError::Disabled(_))
    ));
}

#[test]
fn generate_data_key_variants() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[("a", "1")]);
    let req = |spec: Option<&str>, n: Option<u32>| GenerateDataKeyRequest {
        key_id: k.clone(),
        encryption_context: c.clone(),
        key_spec: spec.map(str::to_string),
        number_of_bytes: n,
        grant_tokens: None,
    };
    let r = f
        .engine
        .generate_data_key(&alice(), req(Some("AES_128"), None))
        .unwrap();
    assert_eq!(r.plaintext.len(), 16);
    assert_eq!(
        f.decrypt(&r.ciphertext_blob, &c, None).unwrap(),
        r.plaintext.as_slice()
    );
    let r = f
        .engine
        .generate_data_key(&alice(), req(None, Some(1024)))
        .unwrap();
    assert_eq!(r.plaintext.len(), 1024);
    for (spec, n) in [
        (None, None),
        (Some("AES_256"), Some(32)),
        (None, Some(0)),
        (None, Some(1025)),
        (Some("AES_512"), None),
    ] {
        assert!(matches!(
            f.engine.generate_data_key(&alice(), req(spec, n)),
            Err(KmsError::Validation(_))
        ));
    }
    let w = f
        .engine
        .generate_data_key_without_plaintext(&alice(), req(Some("AES_256"), None))
        .unwrap();
    assert_eq!(f.decrypt(&w.ciphertext_blob, &c, None).unwrap().len(), 32);
    let json = serde_json::to_value(&w).unwrap();
    assert!(json.get("Plaintext").is_none());
    assert!(format!("{r:?}").contains("redacted"));
}

#[test]
fn generate_random_bounds() {
    let f = fixture();
    let r = f
        .engine
        .generate_random(
            &alice(),
            GenerateRandomRequest {
                number_of_bytes: 1024,
            },
        )
        .unwrap();
    assert_eq!(r.plaintext.len(), 1024);
    let r2 = f
        .engine
        .generate_random(
            &alice(),
            GenerateRandomRequest {
                number_of_bytes: 32,
            },
        )
        .unwrap();
    assert_ne!(r2.plaintext.as_slice(), &[0u8; 32]);
    for n in [0, 1025] {
        assert!(matches!(
            f.engine
                .generate_random(&alice(), GenerateRandomRequest { number_of_bytes: n }),
            Err(KmsError::Validation(_))
        ));
    }
}

#[test]
fn json_field_names_are_aws() {
    let f = fixture();
    let p = alice();
    let k = f.new_key();
    let d = f
        .engine
        .dispatch(&p, "DescribeKey", serde_json::json!({"KeyId": k}))
        .unwrap();
    let m = &d["KeyMetadata"];
    for field in [
        "AWSAccountId",
        "KeyId",
        "Arn",
        "CreationDate",
        "Enabled",
        "Description",
        "KeyUsage",
        "KeyState",
        "Origin",
        "KeyManager",
        "KeySpec",
        "CustomerMasterKeySpec",
        "EncryptionAlgorithms",
        "MultiRegion",
    ] {
        assert!(m.get(field).is_some(), "missing {field}");
    }
    assert_eq!(m["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(m["EncryptionAlgorithms"][0], "SYMMETRIC_DEFAULT");
    let g = f
        .engine
        .dispatch(
            &p,
            "GenerateDataKey",
            serde_json::json!({"KeyId": k, "KeySpec": "AES_256"}),
        )
        .unwrap();
    assert!(
        g["CiphertextBlob"].is_string() && g["Plaintext"].is_string() && g["KeyId"].is_string()
    );
    let r = f
        .engine
        .dispatch(
            &p,
            "GenerateRandom",
            serde_json::json!({"NumberOfBytes": 8}),
        )
        .unwrap();
    assert_eq!(r["Plaintext"].as_str().unwrap().len(), 12);
    let e = f
        .engine
        .dispatch(
            &p,
            "Encrypt",
            serde_json::json!({"KeyId": k, "Plaintext": "not base64!"}),
        )
        .unwrap_err();
    assert!(matches!(e, KmsError::Validation(_)));
    assert!(!e.to_string().contains("not base64"), "{e}");
    let e = f
        .engine
        .dispatch(&p, "Decrypt", serde_json::json!({}))
        .unwrap_err();
    assert!(e.to_string().contains("CiphertextBlob"), "{e}");
    for op in kms_engine::ops::dispatch::OPERATIONS {
        // Every listed op is routed (an empty request is a validation error or works, never Unsupported).
        let r = f.engine.dispatch(&p, op, serde_json::json!({}));
        assert!(!matches!(r, Err(KmsError::UnsupportedOperation(_))), "{op}");
    }
}
