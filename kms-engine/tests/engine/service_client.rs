//! The engine daemon through its blocking client: the principal comes from
//! the kernel (a child process running as another uid is that uid, whatever
//! it sends), on-behalf-of is allowed only with `kms:CallOnBehalfOf` and is
//! audited with `invokedBy`, many threads share one connection, calls time
//! out, and a client reconnects after the daemon restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a test failure

use crate::service_support::{Daemon, call_spec, calls_as};
use kms_engine::service::{Client, ClientConfig, ServerConfig, Transport};
use kms_engine::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// An unnamed uid (no account): policies name it as `uid:N`.
const OTHER: u32 = 54_321;
const FUSE_CALLER: u32 = 54_322;

/// Child mode: run the calls of `KMS_SERVICE_CALLS` on one client and
/// print `RESULT <json>` for each.
#[test]
#[ignore = "run as a child process by the other tests in this file"]
fn child_caller() {
    let socket = std::env::var("KMS_SERVICE_SOCKET").unwrap();
    let calls: Vec<Value> =
        serde_json::from_str(&std::env::var("KMS_SERVICE_CALLS").unwrap()).unwrap();
    let client = Client::connect(socket).unwrap();
    for c in calls {
        let obo = c["obo"].as_array().map(|a| {
            Principal::from_ids(
                a[0].as_u64().unwrap() as u32,
                a[1].as_u64().unwrap() as u32,
                vec![],
            )
        });
        let out = match client.call(c["op"].as_str().unwrap(), c["req"].clone(), obo.as_ref()) {
            Ok(v) => v,
            Err(e) => json!({"error": e.exception_name()}),
        };
        println!("RESULT {out}");
    }
}

fn allow(sid: &str, who: &str, action: &str) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": who}, "Action": action, "Resource": "*"})
}

#[test]
fn the_kernel_names_the_caller() {
    let d = Daemon::start();
    let key = d.key_with(vec![allow("Other", &format!("uid:{OTHER}"), "kms:Encrypt")]);
    let enc = json!({"KeyId": key, "Plaintext": "AAAA"});
    // Root (this process) may do anything; the other uid may encrypt only.
    let root = Client::connect(&d.socket).unwrap();
    let blob = root.call("Encrypt", enc.clone(), None).unwrap()["CiphertextBlob"].clone();
    let out = calls_as(
        OTHER,
        OTHER,
        &[],
        &d.socket,
        &[
            call_spec("Encrypt", enc, None),
            call_spec("Decrypt", json!({"CiphertextBlob": blob}), None),
        ],
    );
    assert!(out[0]["CiphertextBlob"].is_string(), "{out:?}");
    assert_eq!(out[1]["error"], "AccessDeniedException");
    let decrypts = d.events_of("Decrypt");
    assert_eq!(decrypts.len(), 1);
    assert_eq!(decrypts[0].principal, format!("uid:{OTHER}"));
    assert_eq!(decrypts[0].invoked_by, None);
    assert_eq!(
        decrypts[0].error_code.as_deref(),
        Some("AccessDeniedException")
    );
    let root_name = Principal::current_process().to_string();
    assert_eq!(d.events_of("Encrypt")[0].principal, root_name);
}

/// The supplementary groups of the peer process count (read from /proc),
/// and a group named in the on-behalf-of principal counts for it.
#[test]
fn the_peer_process_groups_count() {
    let d = Daemon::start();
    let key = d.key_with(vec![
        allow("Staff", "gid:777", "kms:DescribeKey"),
        allow("Mount", &format!("uid:{OTHER}"), "kms:CallOnBehalfOf"),
    ]);
    let describe = json!({"KeyId": key});
    let calls = [call_spec("DescribeKey", describe.clone(), None)];
    let with = calls_as(OTHER, OTHER, &[777], &d.socket, &calls);
    assert!(with[0]["KeyMetadata"].is_object(), "{with:?}");
    let without = calls_as(OTHER, OTHER, &[778], &d.socket, &calls);
    assert_eq!(without[0]["error"], "AccessDeniedException");
    // On behalf of a principal whose primary group is 777.
    let obo = calls_as(
        OTHER,
        OTHER,
        &[],
        &d.socket,
        &[call_spec("DescribeKey", describe, Some((FUSE_CALLER, 777)))],
    );
    assert!(obo[0]["KeyMetadata"].is_object(), "{obo:?}");
}

#[test]
fn on_behalf_of_needs_call_on_behalf_of_and_is_audited() {
    let d = Daemon::start();
    let fuse = format!("uid:{FUSE_CALLER}");
    let key = d.key_with(vec![allow("Fuse", &fuse, "kms:GenerateDataKey")]);
    let gdk = json!({"KeyId": key, "KeySpec": "AES_256"});
    let obo = Some((FUSE_CALLER, FUSE_CALLER));
    let calls = [
        call_spec("GenerateDataKey", gdk.clone(), obo),
        call_spec("ListKeys", json!({}), obo),
    ];
    let denied = calls_as(OTHER, OTHER, &[], &d.socket, &calls);
    assert_eq!(denied[0]["error"], "AccessDeniedException", "{denied:?}");
    assert_eq!(denied[1]["error"], "AccessDeniedException", "{denied:?}");
    let ev = d.events_of("GenerateDataKey");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].principal, fuse);
    assert_eq!(ev[0].invoked_by.as_deref(), Some(&*format!("uid:{OTHER}")));
    assert!(
        ev[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("kms:CallOnBehalfOf"),
        "{ev:?}"
    );
    let ev = d.events_of("ListKeys");
    assert_eq!(ev[0].error_code.as_deref(), Some("AccessDeniedException"));
    assert_eq!(ev[0].invoked_by.as_deref(), Some(&*format!("uid:{OTHER}")));

    // Allowed to act for others on this key: the FUSE caller's own rights
    // still decide (it may GenerateDataKey, not Decrypt).
    let key2 = d.key_with(vec![
        allow("Fuse", &fuse, "kms:GenerateDataKey"),
        allow("Mount", &format!("uid:{OTHER}"), "kms:CallOnBehalfOf"),
    ]);
    let gdk = json!({"KeyId": key2, "KeySpec": "AES_256"});
    let out = calls_as(
        OTHER,
        OTHER,
        &[],
        &d.socket,
        &[call_spec("GenerateDataKey", gdk, obo)],
    );
    let blob = out[0]["CiphertextBlob"].clone();
    assert!(blob.is_string(), "{out:?}");
    let out = calls_as(
        OTHER,
        OTHER,
        &[],
        &d.socket,
        &[call_spec("Decrypt", json!({"CiphertextBlob": blob}), obo)],
    );
    assert_eq!(out[0]["error"], "AccessDeniedException");
    let ev = d.events_of("GenerateDataKey");
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[1].principal.as_str(), ev[1].error_code.as_deref()),
        (fuse.as_str(), None)
    );
    assert_eq!(ev[1].invoked_by.as_deref(), Some(&*format!("uid:{OTHER}")));
    let ev = d.events_of("Decrypt");
    assert_eq!(ev[0].principal, fuse);
    assert!(
        !ev[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("CallOnBehalfOf")
    );

    // Root may run key-less operations for others.
    let root = Client::connect(&d.socket).unwrap();
    let alice = Principal::from_ids(FUSE_CALLER, FUSE_CALLER, vec![]);
    root.call("ListKeys", json!({}), Some(&alice)).unwrap();
    let ev = d.events_of("ListKeys");
    assert_eq!(
        ev[1].invoked_by,
        Some(Principal::current_process().to_string())
    );
    assert_eq!(ev[1].error_code, None);
}

#[test]
fn many_threads_share_one_connection() {
    let d = Daemon::start();
    let key = d.key_with(vec![]);
    let client = Arc::new(Client::connect(&d.socket).unwrap());
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let (client, key) = (client.clone(), key.clone());
            std::thread::spawn(move || {
                for i in 0..50u8 {
                    let pt = base64_of(&[t, i]);
                    let blob = client
                        .call("Encrypt", json!({"KeyId": key, "Plaintext": pt}), None)
                        .unwrap()["CiphertextBlob"]
                        .clone();
                    let back = client
                        .call("Decrypt", json!({"CiphertextBlob": blob}), None)
                        .unwrap();
                    assert_eq!(back["Plaintext"], pt.as_str());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(d.events_of("Decrypt").len(), 400);
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn errors_come_back_as_the_same_kms_error() {
    let d = Daemon::start();
    let client = Client::connect(&d.socket).unwrap();
    let e = client
        .call("DescribeKey", json!({"KeyId": "alias/none"}), None)
        .unwrap_err();
    assert!(matches!(e, KmsError::NotFound(_)), "{e:?}");
    let e = client.call("NoSuchOperation", json!({}), None).unwrap_err();
    assert!(matches!(e, KmsError::UnsupportedOperation(_)), "{e:?}");
    let e = client.call("Bad Name", json!({}), None).unwrap_err();
    assert!(matches!(e, KmsError::Validation(_)), "{e:?}");
    // The same connection still works.
    client.call("ListKeys", json!({}), None).unwrap();
}

#[test]
fn a_call_times_out_and_the_client_recovers() {
    let d = Daemon::start();
    let config = ClientConfig {
        call_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&d.socket, config).unwrap();
    d.sink.close();
    let e = client.call("ListKeys", json!({}), None).unwrap_err();
    assert!(matches!(e, KmsError::Unavailable(_)), "{e:?}");
    d.sink.open();
    client.call("ListKeys", json!({}), None).unwrap();
}

#[test]
fn the_client_reconnects_after_the_daemon_restarts() {
    let mut d = Daemon::start();
    // A call timeout no test waits out: calls against a stopped daemon
    // must fail at once, not time out.
    let config = ClientConfig {
        call_timeout: Duration::from_secs(3600),
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&d.socket, config).unwrap();
    client.call("ListKeys", json!({}), None).unwrap();
    d.stop();
    let e = client.call("ListKeys", json!({}), None).unwrap_err();
    assert!(matches!(e, KmsError::Unavailable(_)), "{e:?}");
    let e = client.call("ListKeys", json!({}), None).unwrap_err();
    assert!(matches!(e, KmsError::Unavailable(_)), "{e:?}");
    assert!(matches!(
        Client::connect(&d.socket),
        Err(KmsError::Unavailable(_))
    ));
    d.restart(ServerConfig::default());
    client.call("ListKeys", json!({}), None).unwrap();
}

/// The daemon closes a connection left idle; the client's next call finds
/// it closed when sending (nothing of it reached the daemon), connects
/// again and succeeds, with no reader thread watching the idle connection.
#[test]
fn a_call_after_the_daemon_closed_the_idle_connection_succeeds() {
    let d = Daemon::start_with(ServerConfig {
        idle_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    });
    let key = d.key_with(vec![]);
    let client = Client::connect(&d.socket).unwrap();
    client.call("ListKeys", json!({}), None).unwrap();
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(600));
        let r = client.call(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": base64_of(&[round])}),
            None,
        );
        assert!(r.is_ok(), "round {round}: {r:?}");
    }
}

/// Callers sharing one connection whose answers come back out of order
/// (a slow call held at the audit sink while fast ones pass it) each get
/// their own answer: the caller reading hands the others theirs.
#[test]
fn answers_out_of_order_reach_their_callers() {
    let d = Daemon::start();
    let key = d.key_with(vec![]);
    let client = Arc::new(Client::connect(&d.socket).unwrap());
    *d.sink.only.lock().unwrap() = Some("ListKeys");
    d.sink.close();
    let slow = {
        let client = client.clone();
        std::thread::spawn(move || client.call("ListKeys", json!({}), None))
    };
    d.sink.wait_entered(1);
    let fast: Vec<_> = (0..4u8)
        .map(|t| {
            let (client, key) = (client.clone(), key.clone());
            std::thread::spawn(move || {
                let pt = base64_of(&[t]);
                let blob = client
                    .call("Encrypt", json!({"KeyId": key, "Plaintext": pt}), None)
                    .unwrap()["CiphertextBlob"]
                    .clone();
                let back = client
                    .call("Decrypt", json!({"CiphertextBlob": blob}), None)
                    .unwrap();
                assert_eq!(back["Plaintext"], pt.as_str());
            })
        })
        .collect();
    for f in fast {
        f.join().unwrap();
    }
    assert!(!slow.is_finished());
    d.sink.open();
    assert!(slow.join().unwrap().is_ok());
}
