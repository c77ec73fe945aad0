//! `kmsfs kms --query`: JMESPath applied to the response before it is
//! printed, with `--output text` as `aws` prints a query's result (checked
//! against awscli's own `jmespath` and `text.format_text` where Python has
//! them), embedded and through a real daemon.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions; a failed unwrap is a failed test"
)]

use crate::kms_cli::{Env, Via, both_ways};
use std::process::Command;

both_ways!(
    query_selects_what_aws_users_script,
    query_output_is_what_awscli_prints
);

fn query_selects_what_aws_users_script(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&["--description", "q"]);
    let second = env.create_key(&[]);
    // The AWS idiom: a blob alone, decoded by base64 -d.
    let blob = env.text(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "hi",
        "--query",
        "CiphertextBlob",
    ]);
    assert_eq!(blob.lines().count(), 1, "{blob:?}");
    let ct = env.path("ct");
    std::fs::write(
        &ct,
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, blob.trim()).unwrap(),
    )
    .unwrap();
    let pt = env.text(&[
        "decrypt",
        "--ciphertext-blob",
        &format!("fileb://{}", ct.display()),
        "--query",
        "Plaintext",
    ]);
    assert_eq!(pt, "aGk=\n");
    // A list of scalars: one tab-separated line (every page merged first).
    let ids = env.text(&["list-keys", "--query", "Keys[].KeyId"]);
    let mut got: Vec<&str> = ids.trim_end().split('\t').collect();
    got.sort();
    let mut want = vec![key.as_str(), second.as_str()];
    want.sort();
    assert_eq!(got, want, "{ids:?}");
    // JSON output of a scalar is a JSON string; a multiselect in text is one line.
    let state = env.run(&[
        "describe-key",
        "--key-id",
        &key,
        "--query",
        "KeyMetadata.KeyState",
    ]);
    assert!(state.status.success());
    assert_eq!(String::from_utf8(state.stdout).unwrap(), "\"Enabled\"\n");
    let row = env.text(&[
        "describe-key",
        "--key-id",
        &key,
        "--query",
        "KeyMetadata.[KeyId,Enabled,Description]",
    ]);
    assert_eq!(row, format!("{key}\tTrue\tq\n"));
    // A filter; nothing selected prints null / None.
    let d = env.text(&[
        "list-keys",
        "--query",
        &format!("Keys[?KeyId=='{second}'].KeyArn | [0]"),
    ]);
    assert!(
        d.starts_with("arn:aws:kms:") && d.trim_end().ends_with(&second),
        "{d:?}"
    );
    let none = env.run(&["list-keys", "--query", "NoSuchField"]);
    assert_eq!(String::from_utf8(none.stdout).unwrap(), "null\n");
    assert_eq!(env.text(&["list-keys", "--query", "NoSuchField"]), "None\n");
    // The access key and its secret for a script (the secret shown once).
    let pair = env.text(&[
        "create-access-key",
        "--principal",
        "uid:0",
        "--query",
        "AccessKey.[AccessKeyId,SecretAccessKey]",
    ]);
    let fields: Vec<&str> = pair.trim_end().split('\t').collect();
    assert!(
        fields[0].starts_with("AKIA") && fields[1].len() == 40,
        "{pair:?}"
    );
    // --query before the subcommand works too.
    let n = env.run(&["--query", "length(Keys)", "list-keys"]);
    assert_eq!(String::from_utf8(n.stdout).unwrap(), "2\n");
    // A malformed expression is a usage mistake, refused before any call.
    let before = env.store_snapshot();
    let (code, err) = env.fail(&["create-key", "--query", "Keys["]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("JMESPath"), "{err}");
    assert_eq!(env.store_snapshot(), before);
}

/// The queries' results and their text form, as awscli computes them from
/// the same response (python3's `jmespath` and `awscli.text`).
fn query_output_is_what_awscli_prints(via: Via) {
    let have = Command::new("python3")
        .args(["-c", "import jmespath, awscli.text"])
        .output();
    if !have.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with awscli is not installed");
        return;
    }
    let env = Env::new_via(via);
    let key = env.create_key(&["--description", "one", "--tags", "TagKey=a,TagValue=1"]);
    env.create_key(&["--description", "two"]);
    env.ok(&[
        "create-alias",
        "--alias-name",
        "alias/q",
        "--target-key-id",
        &key,
    ]);
    env.ok(&["enable-key-rotation", "--key-id", &key]);
    let cases: &[(&[&str], &str)] = &[
        (&["describe-key", "--key-id", &key], "KeyMetadata"),
        (
            &["describe-key", "--key-id", &key],
            "KeyMetadata.EncryptionAlgorithms",
        ),
        (&["describe-key", "--key-id", &key], "@"),
        (&["list-keys"], "Keys"),
        (&["list-keys"], "Keys[*].[KeyId, KeyArn]"),
        (
            &["list-aliases"],
            "Aliases[?starts_with(AliasName, 'alias/')]",
        ),
        (
            &["list-aliases"],
            "{names: Aliases[].AliasName, n: length(Aliases)}",
        ),
        (&["list-resource-tags", "--key-id", &key], "Tags"),
        (
            &["get-key-rotation-status", "--key-id", &key],
            "[KeyRotationEnabled, RotationPeriodInDays]",
        ),
    ];
    for (args, query) in cases {
        let full = env.ok(args);
        let mut with_q = args.to_vec();
        with_q.extend(["--query", query]);
        let json_out = String::from_utf8(env.run(&with_q).stdout).unwrap();
        let text_out = env.text(&with_q);
        let script = "import io, json, sys, jmespath\n\
                      from awscli import text\n\
                      r = jmespath.search(sys.argv[1], json.load(sys.stdin))\n\
                      s = io.StringIO(); text.format_text(r, s)\n\
                      print(json.dumps({'json': r, 'text': s.getvalue()}))";
        let mut py = Command::new("python3")
            .args(["-c", script, query])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        py.stdin
            .take()
            .unwrap()
            .write_all(full.to_string().as_bytes())
            .unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(out.status.success(), "{query}");
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: serde_json::Value = serde_json::from_str(&json_out).unwrap();
        assert_eq!(got, want["json"], "{args:?} --query {query}");
        assert_eq!(
            text_out,
            want["text"].as_str().unwrap(),
            "{args:?} --query {query}"
        );
    }
}
