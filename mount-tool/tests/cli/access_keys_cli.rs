//! `kmsfs kms create-access-key|list-access-keys|update-access-key|
//! delete-access-key` end to end, embedded and through a real daemon: the
//! secret is printed once and never again, is sealed in the store (no file
//! of the engine directory holds it), and every call is audited.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions; a failed unwrap is a failed test"
)]

use crate::kms_cli::{Env, Via, assert_one_line_error, both_ways};
use serde_json::Value;
use std::process::Command;

both_ways!(
    access_keys_are_created_listed_deactivated_and_deleted,
    access_key_output_as_text_and_bad_input,
);

/// The audit records of `event`, read with `kmsfs audit show`.
fn audit_events(env: &Env, event: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .env_remove("KMSFS_KMS")
        .env("KMSFS_ENGINE", &env.engine)
        .args(["audit", "show", "--event", event])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// No file of the engine directory (store, audit trail) holds `secret`.
fn nowhere_on_disk(env: &Env, secret: &str) {
    for (path, bytes) in env.store_snapshot() {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the secret",
            path.display()
        );
    }
}

fn access_keys_are_created_listed_deactivated_and_deleted(via: Via) {
    let env = Env::new_via(via);
    let made = env.ok(&["create-access-key", "--principal", "user:nobody"]);
    let k = &made["AccessKey"];
    let id = k["AccessKeyId"].as_str().unwrap().to_string();
    let secret = k["SecretAccessKey"].as_str().unwrap().to_string();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{made}");
    assert_eq!(secret.len(), 40, "{made}");
    assert_eq!(k["Status"], "Active");
    assert_eq!(k["Principal"], "user:nobody");
    // An IAM user ARN names the local user.
    let arn = env.ok(&[
        "create-access-key",
        "--principal",
        "arn:aws:iam::111122223333:user/daemon",
    ]);
    let arn_id = arn["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(arn["AccessKey"]["Principal"], "user:daemon");
    assert_ne!(arn_id, id);

    // Listed (merged pages), never with a secret.
    let list = env.ok(&["list-access-keys"]);
    let keys = list["AccessKeyMetadata"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{list}");
    assert!(list.get("IsTruncated").is_none(), "{list}");
    assert!(!list.to_string().contains(&secret));
    assert!(keys.iter().all(|k| k.get("SecretAccessKey").is_none()));
    let mine = env.ok(&["list-access-keys", "--principal", "user:nobody"]);
    assert_eq!(mine["AccessKeyMetadata"][0]["AccessKeyId"], id.as_str());
    assert_eq!(mine["AccessKeyMetadata"].as_array().unwrap().len(), 1);
    // One page at a time with --max-items.
    let page = env.ok(&["list-access-keys", "--max-items", "1"]);
    assert_eq!(page["IsTruncated"], true, "{page}");
    let marker = page["Marker"].as_str().unwrap().to_string();
    let rest = env.ok(&["list-access-keys", "--max-items", "1", "--marker", &marker]);
    assert_eq!(rest["IsTruncated"], false, "{rest}");
    assert_ne!(
        rest["AccessKeyMetadata"][0]["AccessKeyId"],
        page["AccessKeyMetadata"][0]["AccessKeyId"]
    );

    // Deactivated, then active again.
    let none = env.ok(&[
        "update-access-key",
        "--access-key-id",
        &id,
        "--status",
        "Inactive",
    ]);
    assert_eq!(none, Value::Null, "prints nothing, as aws does");
    let l = env.ok(&["list-access-keys", "--principal", "user:nobody"]);
    assert_eq!(l["AccessKeyMetadata"][0]["Status"], "Inactive");
    env.ok(&[
        "update-access-key",
        "--access-key-id",
        &id,
        "--status",
        "Active",
    ]);
    let l = env.ok(&["list-access-keys", "--principal", "user:nobody"]);
    assert_eq!(l["AccessKeyMetadata"][0]["Status"], "Active");

    // Deleted: gone from the list; deleting again is NotFound (exit 5).
    env.ok(&["delete-access-key", "--access-key-id", &id]);
    let l = env.ok(&["list-access-keys"]);
    assert_eq!(l["AccessKeyMetadata"].as_array().unwrap().len(), 1);
    assert_eq!(l["AccessKeyMetadata"][0]["AccessKeyId"], arn_id.as_str());
    let (code, err) = env.fail(&["delete-access-key", "--access-key-id", &id]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "NotFoundException");
    assert!(!err.contains(&secret));

    // The secret is sealed: in no file of the engine directory.
    nowhere_on_disk(&env, &secret);
    let store = std::fs::read(env.engine.join("engine.store")).unwrap();
    assert_eq!(store[8], 6, "store format 6");

    // Every call audited, with the key id and never the secret.
    let created = audit_events(&env, "CreateAccessKey");
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(created[0]["requestParameters"]["accessKeyId"], id.as_str());
    assert_eq!(created[0]["requestParameters"]["principal"], "user:nobody");
    let updated = audit_events(&env, "UpdateAccessKey");
    assert_eq!(updated.len(), 2);
    assert_eq!(updated[0]["requestParameters"]["status"], "Inactive");
    let deleted = audit_events(&env, "DeleteAccessKey");
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[1]["errorCode"], "NotFoundException");
    assert!(!audit_events(&env, "ListAccessKeys").is_empty());
}

fn access_key_output_as_text_and_bad_input(via: Via) {
    let env = Env::new_via(via);
    // aws --output text: one ACCESSKEY line, fields in key order.
    let text = env.text(&["create-access-key", "--principal", "uid:0"]);
    let fields: Vec<&str> = text.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 6, "{text:?}");
    assert_eq!(fields[0], "ACCESSKEY");
    assert!(fields[1].starts_with("AKIA"), "{text:?}");
    assert_eq!(fields[3], "uid:0");
    assert_eq!(fields[4].len(), 40);
    assert_eq!(fields[5], "Active");
    nowhere_on_disk(&env, fields[4]);
    let list = env.text(&["list-access-keys"]);
    assert!(
        list.starts_with(&format!("ACCESSKEYMETADATA\t{}\t", fields[1])),
        "{list:?}"
    );
    assert!(!list.contains(fields[4]));

    // Bad principals: refused by the engine, nothing stored.
    let before = env.store_snapshot();
    let (code, err) = env.fail(&["create-access-key", "--principal", "group:staff"]);
    assert_eq!(code, 2, "{err}");
    assert_one_line_error(&err, "ValidationException");
    let (code, err) = env.fail(&[
        "create-access-key",
        "--principal",
        "user:no-such-user-kmsfs",
    ]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "NotFoundException");
    let (code, err) = env.fail(&[
        "update-access-key",
        "--access-key-id",
        "AKIAAAAAAAAAAAAAAAAA",
        "--status",
        "Inactive",
    ]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "NotFoundException");
    // A status other than Active/Inactive is a usage mistake (clap).
    let (code, _) = env.fail(&[
        "update-access-key",
        "--access-key-id",
        fields[1],
        "--status",
        "Paused",
    ]);
    assert_eq!(code, 2);
    let after = env.store_snapshot();
    let store = env.engine.join("engine.store");
    assert_eq!(
        before.get(&store),
        after.get(&store),
        "the store is unchanged"
    );
}
