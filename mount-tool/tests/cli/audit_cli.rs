//! `kmsfs audit ...` run as the real binary against a trail on disk.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use kms_engine::audit::{AuditEvent, FileAuditTrail, TrailOptions};
use std::path::Path;
use std::process::{Command, Output};
use zeroize::Zeroizing;

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_time: format!("2026-03-01T10:00:{:02}Z", i % 60),
        event_name: if i.is_multiple_of(2) {
            "Encrypt"
        } else {
            "Decrypt"
        }
        .into(),
        principal: format!("uid:{}", 1000 + i % 3),
        invoked_by: None,
        key_id: Some(if i < 5 { "key-a" } else { "key-b" }.into()),
        encryption_context: Some(kms_engine::context::context_from([("kmsfs:path", "/x")])),
        request_id: format!("req-{i}"),
        error_code: (i == 7).then(|| "AccessDeniedException".to_string()),
        error_message: (i == 7).then(|| "denied".to_string()),
        request_parameters: None,
        access_key_id: None,
        source_ip_address: None,
        event_id: None,
    }
}

/// An engine dir whose audit trail holds records 1..=n, sealed.
fn engine_dir(n: u64) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let trail = FileAuditTrail::open(
        t.path().join("audit"),
        Zeroizing::new([5u8; 32]),
        TrailOptions {
            background: false,
            max_segment_bytes: 2500,
            digest_every_records: 4,
            ..TrailOptions::default()
        },
    )
    .unwrap();
    for i in 1..=n {
        trail.append(&event(i)).unwrap();
    }
    trail.close().unwrap();
    t
}

fn kmsfs(engine: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .arg("--engine")
        .arg(engine)
        .args(args)
        .env_remove("KMSFS_ENGINE")
        .output()
        .unwrap()
}

fn stdout_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn show_filters_records() {
    let e = engine_dir(10);
    let all = kmsfs(e.path(), &["audit", "show"]);
    assert!(all.status.success(), "{all:?}");
    let lines = stdout_lines(&all);
    assert_eq!(lines.len(), 10);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["eventSource"], "kmsfs");
    assert_eq!(first["sequenceNumber"], 1);

    let count = |args: &[&str]| {
        let mut a = vec!["audit", "show"];
        a.extend_from_slice(args);
        let o = kmsfs(e.path(), &a);
        assert!(o.status.success(), "{o:?}");
        stdout_lines(&o).len()
    };
    assert_eq!(count(&["--key-id", "key-a"]), 4);
    assert_eq!(count(&["--principal", "uid:1001"]), 4);
    assert_eq!(count(&["--event", "Encrypt"]), 5);
    assert_eq!(count(&["--errors-only"]), 1);
    assert_eq!(
        count(&[
            "--since",
            "2026-03-01T10:00:03Z",
            "--until",
            "2026-03-01T10:00:05Z"
        ]),
        3
    );
    assert_eq!(count(&["--event", "Decrypt", "--principal", "uid:1001"]), 2);

    let text = kmsfs(
        e.path(),
        &["--output", "text", "audit", "show", "--errors-only"],
    );
    let t = stdout_lines(&text);
    assert_eq!(t.len(), 1);
    assert!(
        t[0].contains("#7 Decrypt uid:1001 key=key-b AccessDeniedException"),
        "{}",
        t[0]
    );

    let bad = kmsfs(e.path(), &["audit", "show", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn tail_prints_the_last_records() {
    let e = engine_dir(10);
    let o = kmsfs(e.path(), &["audit", "tail", "-n", "3"]);
    assert!(o.status.success());
    let seqs: Vec<u64> = stdout_lines(&o)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["sequenceNumber"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![8, 9, 10]);
}

#[test]
fn tail_follow_prints_new_records() {
    let e = engine_dir(2);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmsfs"))
        .arg("--engine")
        .arg(e.path())
        .args([
            "audit",
            "tail",
            "-n",
            "1",
            "--follow",
            "--interval-ms",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _kill = Kill(child);
    // Whether the follower starts before or after the append, record 3
    // arrives: printed by the follower, or as the last record (-n 1).
    let trail = FileAuditTrail::open(
        e.path().join("audit"),
        Zeroizing::new([5u8; 32]),
        TrailOptions {
            background: false,
            ..TrailOptions::default()
        },
    )
    .unwrap();
    trail.append(&event(3)).unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let mut seen = Vec::new();
    while !seen.contains(&3) {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(v["sequenceNumber"].as_u64().unwrap());
    }
    assert!(seen == [2, 3] || seen == [3], "{seen:?}");
}

#[test]
fn verify_accepts_an_intact_trail_and_names_the_first_bad_record() {
    let e = engine_dir(10);
    let key_file = e.path().join("exported.pem");
    let exp = kmsfs(
        e.path(),
        &["--output", "text", "audit", "export-public-key"],
    );
    assert!(exp.status.success(), "{exp:?}");
    assert!(String::from_utf8_lossy(&exp.stdout).starts_with("-----BEGIN PUBLIC KEY-----"));
    std::fs::write(&key_file, &exp.stdout).unwrap();
    let key_arg = key_file.to_str().unwrap();

    let ok = kmsfs(e.path(), &["audit", "verify", "--public-key", key_arg]);
    assert!(ok.status.success(), "{ok:?}");
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["records"], 10);
    assert!(report["firstBad"].is_null());

    // Without --public-key: works, with a warning.
    let weak = kmsfs(e.path(), &["audit", "verify"]);
    assert!(weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("warning"));

    // Edit record 6's principal.
    let audit = e.path().join("audit");
    let mut edited = false;
    for entry in std::fs::read_dir(&audit).unwrap() {
        let p = entry.unwrap().path();
        if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("segment-")
        {
            continue;
        }
        let s = std::fs::read_to_string(&p).unwrap();
        if s.contains("\"req-6\"") {
            let s = s.replace("\"req-6\"", "\"req-66\"");
            std::fs::write(&p, s).unwrap();
            edited = true;
        }
    }
    assert!(edited);
    let bad = kmsfs(
        e.path(),
        &[
            "--output",
            "text",
            "audit",
            "verify",
            "--public-key",
            key_arg,
        ],
    );
    assert_eq!(bad.status.code(), Some(6), "{bad:?}");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("INVALID: first bad record: segment-"), "{out}");
    assert!(out.contains("(sequence 6)"), "{out}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sequence 6"));
}

#[test]
fn verify_with_another_key_fails_and_missing_trail_is_not_found() {
    let e = engine_dir(5);
    let other = FileAuditTrail::open(
        e.path().join("other"),
        Zeroizing::new([6u8; 32]),
        TrailOptions {
            background: false,
            ..TrailOptions::default()
        },
    )
    .unwrap()
    .export_public_key();
    let f = e.path().join("other.pem");
    std::fs::write(&f, other.to_pem()).unwrap();
    let o = kmsfs(
        e.path(),
        &["audit", "verify", "--public-key", f.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(6));

    let empty = tempfile::tempdir().unwrap();
    let o = kmsfs(empty.path(), &["audit", "show"]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
}
