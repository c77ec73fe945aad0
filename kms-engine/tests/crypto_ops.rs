//! Encrypt / Decrypt / ReEncrypt / GenerateDataKey / GenerateRandom.

mod common;
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
