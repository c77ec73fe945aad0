//! The AWS SDK for Rust (`aws-sdk-kms`) against a real `kmsfs engine serve
//! --http` process, trusting the engine's self-signed certificate and
//! signing with access keys made by `kmsfs kms create-access-key`: the
//! SDK's own serializers, parsers and SigV4 signer work with the endpoint
//! unchanged, its errors are the SDK's typed errors, and SIGTERM answers
//! every request the daemon ran. In its own test binary: the SDK is a
//! large dependency, linked here only.

// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the `cli` test binary; this one uses a subset.
#[allow(dead_code)]
#[path = "cli/daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "cli/engine_env.rs"]
mod engine_env;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use daemon::Daemon;
use engine_env::EngineEnv;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PASSPHRASE: &str = "aws sdk passphrase";
const REGION: &str = "eu-west-3";
const ACCOUNT: &str = "111122223333";

/// A daemon serving HTTPS on a free loopback port with the engine's
/// self-signed certificate, ARNs in [`REGION`] and [`ACCOUNT`].
fn served() -> (EngineEnv, Daemon) {
    let env = EngineEnv::new(PASSPHRASE);
    let d = Daemon::try_start(
        &env.engine,
        &env.pass,
        &env.path("run/engine.sock"),
        &[
            "--http",
            "127.0.0.1:0",
            "--region",
            REGION,
            "--account-id",
            ACCOUNT,
        ],
    )
    .unwrap_or_else(|f| panic!("the daemon did not start ({:?}): {}", f.code, f.stderr));
    (env, d)
}

/// An SDK client of `d` signing with `key`; no retries, so that every
/// error reaches the test.
fn client(d: &Daemon, (akid, secret): &(String, String)) -> Client {
    let pem = std::fs::read(d.ca_path()).unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
                .build()
                .unwrap(),
        )
        .build_https();
    let creds = aws_credential_types::Credentials::from_keys(akid, secret, None);
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(d.endpoint_url())
        .credentials_provider(creds)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_rust_sdk_runs_the_key_lifecycle() {
    let (env, d) = served();
    let alice = client(&d, &d.create_access_key("uid:1001"));
    let bob = client(&d, &d.create_access_key("uid:1002"));
    runtime().block_on(async {
        let meta = alice
            .create_key()
            .description("sdk")
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        let key_id = meta.key_id().to_string();
        let arn_prefix = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/");
        assert_eq!(meta.arn().unwrap(), format!("{arn_prefix}{key_id}"));
        assert_eq!(meta.aws_account_id(), Some(ACCOUNT));
        assert!(meta.creation_date().unwrap().secs() > 1_700_000_000);
        assert_eq!(meta.key_state().unwrap().as_str(), "Enabled");
        alice
            .create_alias()
            .alias_name("alias/sdk")
            .target_key_id(&key_id)
            .send()
            .await
            .unwrap();
        let enc = alice
            .encrypt()
            .key_id("alias/sdk")
            .plaintext(Blob::new(b"from rust".to_vec()))
            .encryption_context("app", "sdk")
            .send()
            .await
            .unwrap();
        assert_eq!(enc.key_id(), Some(format!("{arn_prefix}{key_id}").as_str()));
        let blob = enc.ciphertext_blob().unwrap().clone();
        let dec = alice
            .decrypt()
            .ciphertext_blob(blob.clone())
            .encryption_context("app", "sdk")
            .send()
            .await
            .unwrap();
        assert_eq!(dec.plaintext().unwrap().as_ref(), b"from rust");
        let dk = alice
            .generate_data_key()
            .key_id(&key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .send()
            .await
            .unwrap();
        assert_eq!(dk.plaintext().unwrap().as_ref().len(), 32);
        let keys = alice.list_keys().send().await.unwrap();
        assert_eq!(keys.keys().len(), 1);
        let aliases = alice.list_aliases().send().await.unwrap();
        assert!(
            aliases
                .aliases()
                .iter()
                .any(|a| a.alias_name() == Some("alias/sdk"))
        );
        // Typed errors.
        let e = alice
            .describe_key()
            .key_id("alias/none")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_not_found_exception(),
            "{e:?}"
        );
        let e = alice
            .decrypt()
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_ciphertext_exception(),
            "{e:?}"
        );
        // Another access key's principal: the key policy admits only its
        // creator.
        let e = bob
            .decrypt()
            .ciphertext_blob(blob)
            .encryption_context("app", "sdk")
            .send()
            .await
            .unwrap_err();
        let code = aws_sdk_kms::error::ProvideErrorMetadata::code(&e);
        assert_eq!(code, Some("AccessDeniedException"), "{e:?}");
        let del = alice
            .schedule_key_deletion()
            .key_id(&key_id)
            .pending_window_in_days(7)
            .send()
            .await
            .unwrap();
        assert!(del.deletion_date().unwrap().secs() > meta.creation_date().unwrap().secs());
        alice
            .cancel_key_deletion()
            .key_id(&key_id)
            .send()
            .await
            .unwrap();
    });
    // A wrong secret: refused before any operation.
    let (akid, _) = d.create_access_key("uid:1001");
    let forged = client(&d, &(akid, "x".repeat(40)));
    let e = runtime().block_on(forged.list_keys().send()).unwrap_err();
    let code = aws_sdk_kms::error::ProvideErrorMetadata::code(&e);
    assert_eq!(code, Some("InvalidSignatureException"), "{e:?}");
    drop(d);
    env.ok(&["audit", "verify"]);
}

#[test]
fn sigterm_answers_every_https_request_the_daemon_ran() {
    let (env, mut d) = served();
    let sdk = client(&d, &d.create_access_key("uid:1001"));
    let answered = Arc::new(AtomicUsize::new(0));
    let rt = runtime();
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let (sdk, answered) = (sdk.clone(), answered.clone());
            rt.spawn(async move {
                for i in 0.. {
                    let r = sdk
                        .create_key()
                        .description(format!("t{t} k{i}"))
                        .send()
                        .await;
                    match r {
                        Ok(_) => answered.fetch_add(1, Ordering::SeqCst),
                        // The daemon is gone (a closed connection, or one
                        // refused): nothing ran for this request.
                        Err(e) if e.as_service_error().is_none() => return,
                        Err(e) => panic!("CreateKey failed: {e:?}"),
                    };
                }
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < 20 {
        std::thread::yield_now();
    }
    let status = d.terminate();
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    assert!(status.success(), "{status:?}: {}", d.stderr());
    assert!(!d.socket.exists(), "the socket outlived the daemon");
    let keys: serde_json::Value = serde_json::from_str(&env.ok(&["kms", "list-keys"])).unwrap();
    let n = keys["Keys"].as_array().unwrap().len();
    assert_eq!(n, answered.load(Ordering::SeqCst));
    env.ok(&["audit", "verify"]);
}
