//! Output for people and generated documentation on the real binary:
//! `--output table` for `kms list-keys`, `kms describe-key`, `status` and
//! `audit show` (JSON and text unchanged); `kmsfs completions` and
//! `kmsfs man`, checked against every subcommand `--help` lists.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::mount_cli::Env;
use serde_json::Value;
use std::process::{Command, Stdio};

fn kmsfs(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .args(args)
        .env_remove("KMSFS_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout_ok(args: &[&str]) -> String {
    let out = kmsfs(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every command path (`["kms", "create-key"]` ...) from the "Commands:"
/// sections of `--help`, recursively: a list made apart from the
/// generators under test.
fn command_paths() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout_ok(&args);
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
                continue;
            }
            if in_commands {
                if !line.starts_with("  ") {
                    break;
                }
                // Only names start at the indentation; wrapped help text
                // sits further right.
                if line.starts_with("   ") {
                    continue;
                }
                let name = line.split_whitespace().next().unwrap().to_string();
                if name != "help" {
                    let mut sub = path.clone();
                    sub.push(name);
                    all.push(sub.clone());
                    todo.push(sub);
                }
            }
        }
    }
    all.sort();
    all
}

#[test]
fn completions_and_man_pages_cover_every_subcommand() {
    let paths = command_paths();
    // The tree as it stands: top level, kms operations, audit, engine.
    for p in [
        vec!["mount"],
        vec!["fsck"],
        vec!["kms", "list-keys"],
        vec!["audit", "show"],
        vec!["completions"],
        vec!["man"],
    ] {
        assert!(
            paths.iter().any(|q| q == &p),
            "{p:?} not in the help tree: {paths:?}"
        );
    }
    assert!(paths.len() > 40, "{}", paths.len());
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_ok(&["completions", shell]);
        for p in &paths {
            let name = p.last().unwrap();
            assert!(
                script.contains(name.as_str()),
                "{shell} completion lacks {p:?}"
            );
        }
        // Options too: a global one and one of a subcommand.
        assert!(script.contains("passphrase-file"), "{shell}");
        assert!(script.contains("foreground"), "{shell}");
    }
    // The bash script defines its function and registers it.
    let bash = stdout_ok(&["completions", "bash"]);
    assert!(bash.contains("complete -F _kmsfs"), "{bash}");
    let out = kmsfs(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    stdout_ok(&["man", "--dir", man.to_str().unwrap()]);
    let top = std::fs::read_to_string(man.join("kmsfs.1")).unwrap();
    assert!(top.starts_with(".ie"), "{}", &top[..100.min(top.len())]);
    assert!(top.contains(".TH kmsfs 1"), "{top}");
    for p in &paths {
        let page = man.join(format!("kmsfs-{}.1", p.join("-")));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(".SH SYNOPSIS"), "{}", page.display());
    }
    // `man` renders it (when man-db is installed).
    if Command::new("man").arg("--version").output().is_ok() {
        let out = Command::new("man")
            .arg("-l")
            .arg(man.join("kmsfs-fsck.1"))
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("CIPHERDIR"));
    }
}

#[test]
fn table_output_for_keys_status_and_audit() {
    let env = Env::new();
    let (mnt, guard) = env.mounted();
    std::fs::write(mnt.join("f.txt"), b"hello").unwrap();
    let created: Value =
        serde_json::from_str(&env.ok(&["kms", "create-key", "--description", "tabled"])).unwrap();
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();

    // list-keys: JSON unchanged, a grid for people.
    let json: Value = serde_json::from_str(&env.ok(&["kms", "list-keys"])).unwrap();
    let n = json["Keys"].as_array().unwrap().len();
    assert!(n >= 2, "{json}");
    let table = env.ok(&["kms", "list-keys", "--output", "table"]);
    assert!(table.contains("| KeyArn"), "{table}");
    assert!(table.contains(&format!("| {key_id} ")), "{table}");
    let rows = table.lines().filter(|l| l.contains("arn:")).count();
    assert_eq!(rows, n, "{table}");
    let widths: Vec<usize> = table
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with('+'))
        .skip(3) // the Truncated key/value box
        .map(|l| l.chars().count())
        .collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "{table}");
    // Text stays aws text.
    let text = env.ok(&["kms", "list-keys", "--output", "text"]);
    assert!(text.lines().any(|l| l.starts_with("KEYS\t")), "{text}");
    // describe-key: key/value rows; a query's result as a table too.
    let d = env.ok(&[
        "kms",
        "describe-key",
        "--key-id",
        &key_id,
        "--output",
        "table",
    ]);
    assert!(d.contains("KeyMetadata\n"), "{d}");
    assert!(d.contains("| Description "), "{d}");
    assert!(d.contains("| tabled "), "{d}");
    let q = env.ok(&[
        "kms",
        "describe-key",
        "--key-id",
        &key_id,
        "--query",
        "KeyMetadata.Enabled",
        "--output",
        "table",
    ]);
    assert!(q.contains("| true |"), "{q}");
    // KMSFS_OUTPUT picks the default.
    let out = Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .args(["--engine", Env::s(&env.engine), "--passphrase-file"])
        .arg(&env.pass)
        .args(["kms", "list-keys"])
        .env("KMSFS_OUTPUT", "table")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), table);

    // status: one row per mount.
    let st = env.ok(&["status", "--output", "table"]);
    let row = st
        .lines()
        .find(|l| l.contains(Env::s(&mnt)))
        .unwrap_or_else(|| panic!("{st}"));
    assert!(row.contains("| rw "), "{st}");
    assert!(st.contains("| Mountpoint"), "{st}");
    let js: Value = serde_json::from_str(&env.ok(&["status"])).unwrap();
    assert!(!js["mounts"].as_array().unwrap().is_empty());

    env.ok(&["unmount", Env::s(&mnt)]);
    guard.wait_for_mount_process();
    // audit show: a grid with the file's path in its own column.
    let a = env.ok(&["audit", "show", "--output", "table"]);
    assert!(a.starts_with("+-"), "{a}");
    assert!(a.contains("| Time "), "{a}");
    assert!(a.lines().any(|l| l.contains("| CreateKey ")), "{a}");
    assert!(
        a.lines()
            .any(|l| l.contains("| GenerateDataKey") && l.contains("| /f.txt ")),
        "{a}"
    );
    let lines = env.ok(&["audit", "show"]);
    let records = lines.lines().count();
    // Header, three rules, one row per record.
    assert_eq!(a.lines().count(), records + 4, "{a}");
    for l in lines.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
}
