//! A real `kmsfs engine serve` killed with SIGKILL under load: calls the
//! daemon answers from memory (Encrypt here) wait for their audit record's
//! flush without blocking its threads (a group commit shared by the calls
//! in flight). Every call a client saw answered has its record in the
//! trail, and the trail verifies.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::daemon::Daemon;
use crate::engine_env::EngineEnv;
use kms_engine::service::{Client, Transport};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const PASSPHRASE: &str = "daemon kill passphrase";

#[test]
fn killed_under_load_every_answered_call_is_in_the_trail() {
    let env = EngineEnv::new(PASSPHRASE);
    let mut d = Daemon::start(&env.engine, &env.pass, &env.path("run/engine.sock"));
    let c = Client::connect(&d.socket).unwrap();
    let key = c.call("CreateKey", json!({}), None).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let answered = Mutex::new(Vec::<String>::new());
    let count = AtomicUsize::new(0);
    let socket = d.socket.clone();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (answered, count, key, socket) = (&answered, &count, &key, &socket);
            s.spawn(move || {
                // Two connections shared by two threads each: both the
                // reading caller and the ones handed their answer.
                let client = Client::connect(socket).unwrap();
                let client = &client;
                std::thread::scope(|s2| {
                    for u in 0..2 {
                        s2.spawn(move || {
                            for i in 0.. {
                                let tag = format!("{t}-{u}-{i}");
                                let req = json!({
                                    "KeyId": key,
                                    "Plaintext": "AAAAAAAAAAAAAAAAAAAAAA==",
                                    "EncryptionContext": {"call": tag},
                                });
                                if client.call("Encrypt", req, None).is_err() {
                                    return;
                                }
                                answered.lock().unwrap().push(tag);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                });
            });
        }
        while count.load(Ordering::Relaxed) < 1500 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        d.kill9();
    });
    let answered = answered.into_inner().unwrap();
    assert!(answered.len() >= 1500);

    // The store is free again: the CLI opens it itself.
    env.ok(&["audit", "verify"]);
    let recorded: BTreeSet<String> = env
        .ok(&["audit", "show", "--event", "Encrypt"])
        .lines()
        .filter_map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            r["requestParameters"]["encryptionContext"]["call"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    for tag in &answered {
        assert!(
            recorded.contains(tag),
            "answered Encrypt {tag} not in the trail"
        );
    }
}
