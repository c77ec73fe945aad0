//! `kmsfs kms` imported key material and key last usage end to end, run
//! embedded and through a real daemon: create-key --origin EXTERNAL,
//! get-parameters-for-import, material wrapped by `openssl` and imported
//! with fileb:// inputs, encrypt/decrypt, get-key-last-usage,
//! delete-imported-key-material, and AWS's errors (exit codes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions; a failed unwrap is a failed test"
)]

use crate::kms_cli::{Env, Via, both_ways};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::Path;
use std::process::Command;

both_ways!(
    import_use_delete_and_last_usage,
    material_expires_on_the_real_clock,
);

fn fileb(p: &Path) -> String {
    format!("fileb://{}", p.display())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (CI installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the import token and the wrapping key of a fresh
/// get-parameters-for-import to `token.bin` and `wrap.der`.
fn parameters(env: &Env, key: &str) {
    let p = env.ok(&[
        "get-parameters-for-import",
        "--key-id",
        key,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--wrapping-key-spec",
        "RSA_2048",
    ]);
    let b = |f: &str| B64.decode(p[f].as_str().unwrap()).unwrap();
    std::fs::write(env.path("token.bin"), b("ImportToken")).unwrap();
    std::fs::write(env.path("wrap.der"), b("PublicKey")).unwrap();
}

/// `material.bin` wrapped by openssl under `wrap.der` into `wrapped.bin`.
fn wrap(env: &Env) {
    let dir = env.path("");
    openssl(
        &dir,
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
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            "material.bin",
            "-out",
            "wrapped.bin",
        ],
    );
}

fn run(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn import_use_delete_and_last_usage(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&["--origin", "EXTERNAL", "--description", "byok"]);
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "PendingImport");
    assert_eq!(d["KeyMetadata"]["Origin"], "EXTERNAL");
    let (code, err) = env.fail(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("KMSInvalidStateException"), "{err}");

    parameters(&env, &key);
    std::fs::write(env.path("material.bin"), [7u8; 32]).unwrap();
    wrap(&env);
    let token = fileb(&env.path("token.bin"));
    let wrapped = fileb(&env.path("wrapped.bin"));
    let import = |extra: &[&str]| {
        let mut args = vec![
            "import-key-material",
            "--key-id",
            &key,
            "--import-token",
            &token,
            "--encrypted-key-material",
            &wrapped,
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    // More than 365 days ahead: AWS's ValidationException.
    let (code, err) = env.fail(&run(&import(&["--valid-to", "2099-01-01T00:00:00Z"])));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ValidationException"), "{err}");
    let r = env.ok(&run(&import(&[
        "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    ])));
    assert_eq!(r["KeyMaterialId"].as_str().unwrap().len(), 64, "{r}");
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled");
    assert_eq!(
        d["KeyMetadata"]["ExpirationModel"],
        "KEY_MATERIAL_DOES_NOT_EXPIRE"
    );

    let u = env.ok(&["get-key-last-usage", "--key-id", &key]);
    assert!(u.get("KeyLastUsage").is_none(), "{u}");
    let blob = env.text(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "byok",
        "--query",
        "CiphertextBlob",
    ]);
    std::fs::write(env.path("ct"), B64.decode(blob.trim()).unwrap()).unwrap();
    let ct = fileb(&env.path("ct"));
    let p = env.text(&["decrypt", "--ciphertext-blob", &ct, "--query", "Plaintext"]);
    assert_eq!(B64.decode(p.trim()).unwrap(), b"byok");
    let u = env.ok(&["get-key-last-usage", "--key-id", &key]);
    assert_eq!(u["KeyLastUsage"]["Operation"], "Decrypt", "{u}");

    let del = env.ok(&["delete-imported-key-material", "--key-id", &key]);
    assert_eq!(del["KeyMaterialId"], r["KeyMaterialId"]);
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "PendingImport");
    let (code, err) = env.fail(&["decrypt", "--ciphertext-blob", &ct]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("KMSInvalidStateException"), "{err}");

    // Other material: IncorrectKeyMaterialException; a token of another
    // key: InvalidImportTokenException.
    parameters(&env, &key);
    std::fs::write(env.path("material.bin"), [8u8; 32]).unwrap();
    wrap(&env);
    let (_, err) = env.fail(&run(&import(&[
        "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    ])));
    assert!(err.contains("IncorrectKeyMaterialException"), "{err}");
    let other = env.create_key(&["--origin", "EXTERNAL"]);
    parameters(&env, &other);
    std::fs::write(env.path("material.bin"), [7u8; 32]).unwrap();
    wrap(&env);
    let (_, err) = env.fail(&run(&import(&[
        "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    ])));
    assert!(err.contains("InvalidImportTokenException"), "{err}");
    // The same material under a token of this key: back, and the old
    // ciphertext decrypts.
    parameters(&env, &key);
    wrap(&env);
    env.ok(&run(&import(&[
        "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    ])));
    let p = env.text(&["decrypt", "--ciphertext-blob", &ct, "--query", "Plaintext"]);
    assert_eq!(B64.decode(p.trim()).unwrap(), b"byok");
    let (_, err) = env.fail(&["enable-key-rotation", "--key-id", &key]);
    assert!(err.contains("UnsupportedOperationException"), "{err}");
}

/// KEY_MATERIAL_EXPIRES a few seconds ahead on the real clock: afterwards
/// the key is PendingImport and Encrypt is KMSInvalidStateException (the
/// daemon applies the expiry by itself, with no write in between).
fn material_expires_on_the_real_clock(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&["--origin", "EXTERNAL"]);
    parameters(&env, &key);
    std::fs::write(env.path("material.bin"), [9u8; 32]).unwrap();
    wrap(&env);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid_to = (now + 3).to_string();
    env.ok(&[
        "import-key-material",
        "--key-id",
        &key,
        "--import-token",
        &fileb(&env.path("token.bin")),
        "--encrypted-key-material",
        &fileb(&env.path("wrapped.bin")),
        "--valid-to",
        &valid_to,
    ]);
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(d["KeyMetadata"]["ValidTo"].to_string(), valid_to);
    env.ok(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let (code, err) = env.fail(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("KMSInvalidStateException"), "{err}");
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "PendingImport");
    assert!(d["KeyMetadata"].get("ValidTo").is_none(), "{d}");
}
