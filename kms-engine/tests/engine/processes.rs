//! Real processes against one store: two writers at once lose nothing, and a
//! writer killed with SIGKILL mid-loop leaves a store holding every key it
//! reported created. The children are this test binary re-run on the
//! ignored `child_writer` test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use kms_engine::audit::NullSink;
use kms_engine::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use zeroize::Zeroizing;

const ROOT: [u8; 32] = [0x5a; 32];

fn open(dir: &Path) -> Engine {
    Engine::open(
        dir,
        RootKeySource::Key(Zeroizing::new(ROOT)),
        Arc::new(SystemClock),
        Arc::new(NullSink),
    )
    .unwrap()
}

/// Child mode: create keys in a loop and print `CREATED <id>` after each.
#[test]
#[ignore = "run as a child process by the other tests in this file"]
fn child_writer() {
    let dir = std::env::var("KMS_CHILD_DIR").expect("KMS_CHILD_DIR");
    let count: u64 = std::env::var("KMS_CHILD_COUNT")
        .expect("KMS_CHILD_COUNT")
        .parse()
        .unwrap();
    let e = open(Path::new(&dir));
    let caller = Principal::from_ids(1, 1, vec![]);
    let mut i = 0;
    while count == 0 || i < count {
        let id = e
            .create_key(&caller, CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        println!("CREATED {id}");
        i += 1;
    }
}

fn spawn_child(dir: &Path, count: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "processes::child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KMS_CHILD_DIR", dir)
        .env("KMS_CHILD_COUNT", count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn created_ids(line: &str) -> Option<String> {
    let at = line.find("CREATED ")?;
    line.get(at + 8..at + 8 + 36).map(str::to_string)
}

fn listed(dir: &Path) -> Vec<String> {
    let e = open(dir);
    let p = Principal::from_ids(0, 0, vec![]);
    e.list_keys(
        &p,
        ListKeysRequest {
            limit: Some(1000),
            marker: None,
        },
    )
    .unwrap()
    .keys
    .into_iter()
    .map(|k| k.key_id)
    .collect()
}

fn new_store() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    Engine::create(
        &tmp.path().join("e"),
        RootKeySource::Key(Zeroizing::new(ROOT)),
        KdfParams::insecure_for_tests(),
        Arc::new(SystemClock),
        Arc::new(NullSink),
    )
    .unwrap();
    tmp
}

#[test]
fn two_processes_writing_concurrently_lose_nothing() {
    let tmp = new_store();
    let dir = tmp.path().join("e");
    let children: Vec<Child> = (0..2).map(|_| spawn_child(&dir, 25)).collect();
    let mut reported = Vec::new();
    for mut c in children {
        let out = c.stdout.take().unwrap();
        reported.extend(
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| created_ids(&l)),
        );
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(reported.len(), 50);
    let mut have = listed(&dir);
    have.sort();
    reported.sort();
    assert_eq!(have, reported);
}

#[test]
fn sigkill_mid_write_loses_no_reported_key() {
    let tmp = new_store();
    let dir = tmp.path().join("e");
    let mut all_reported = Vec::new();
    for (round, kill_after) in [3usize, 11, 24].into_iter().enumerate() {
        let mut c = spawn_child(&dir, 0);
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut reported = Vec::new();
        while reported.len() < kill_after {
            let l = lines.next().unwrap().unwrap();
            reported.extend(created_ids(&l));
        }
        c.kill().unwrap(); // SIGKILL, mid-loop: the child is writing continuously
        c.wait().unwrap();
        // Lines the child printed before dying were reported too.
        reported.extend(lines.map_while(Result::ok).filter_map(|l| created_ids(&l)));
        all_reported.extend(reported);
        let have = listed(&dir);
        for id in &all_reported {
            assert!(
                have.contains(id),
                "round {round}: key {id} reported created but missing"
            );
        }
        // At most one key may have been written but not yet reported.
        assert!(have.len() <= all_reported.len() + 1, "round {round}");
    }
    // The store still works and left no temp files behind after reopening.
    let e = open(&dir);
    e.create_key(
        &Principal::from_ids(0, 0, vec![]),
        CreateKeyRequest::default(),
    )
    .unwrap();
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
}
