//! Real processes against one store: two writers at once lose nothing, a
//! writer killed with SIGKILL mid-loop leaves a store holding every key it
//! reported created, a writer keeps writing while another process changes
//! the root key under it, and a root-key changer killed with SIGKILL
//! mid-loop leaves a store that opens with the old or the new secret. The
//! children are this test binary re-run on the ignored `child_*` tests.
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

/// No writer's temp file (`engine.store.tmp-*`) is left in `dir`.
fn assert_no_temp_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn spawn_child(dir: &Path, count: u64) -> Child {
    spawn("processes::child_writer", dir, count, &[])
}

fn spawn(test: &str, dir: &Path, count: u64, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .envs(env.iter().copied())
        .args([
            "--exact",
            test,
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
    assert_no_temp_files(&dir);
}

/// The two secrets the root-key changer alternates between: the key `ROOT`
/// and a passphrase (cheap Argon2id).
fn secret(name: &str) -> RootKeySource {
    match name {
        "key" => RootKeySource::Key(Zeroizing::new(ROOT)),
        "passphrase" => RootKeySource::Passphrase(Zeroizing::new("process passphrase".into())),
        other => panic!("unknown secret {other}"),
    }
}

fn other(name: &str) -> &'static str {
    if name == "key" { "passphrase" } else { "key" }
}

/// Child mode: open with secret `KMS_CHILD_SECRET`, then change the root
/// key back and forth between the two secrets in a loop, printing
/// `CHANGED <n> NOW <secret>` after each.
#[test]
#[ignore = "run as a child process by the other tests in this file"]
fn child_root_changer() {
    let dir = std::env::var("KMS_CHILD_DIR").expect("KMS_CHILD_DIR");
    let mut current = std::env::var("KMS_CHILD_SECRET").expect("KMS_CHILD_SECRET");
    let e = Engine::open(
        Path::new(&dir),
        secret(&current),
        Arc::new(SystemClock),
        Arc::new(NullSink),
    )
    .unwrap();
    let caller = Principal::from_ids(1, 1, vec![]);
    let mut n = 0u64;
    loop {
        let next = other(&current);
        e.change_root_key(
            &caller,
            ChangeRootKeyRequest {
                current: secret(&current),
                new: secret(next),
                kdf: KdfParams::insecure_for_tests(),
            },
        )
        .unwrap();
        n += 1;
        current = next.to_string();
        println!("CHANGED {n} NOW {current}");
    }
}

/// Which secret opens the store in `dir` (exactly one must), and its keys.
fn opens_with(dir: &Path) -> (&'static str, Vec<String>) {
    let mut opened = Vec::new();
    for name in ["key", "passphrase"] {
        match Engine::open(dir, secret(name), Arc::new(SystemClock), Arc::new(NullSink)) {
            Ok(e) => {
                let mut ids: Vec<String> = e
                    .list_keys(
                        &Principal::from_ids(0, 0, vec![]),
                        ListKeysRequest {
                            limit: Some(1000),
                            marker: None,
                        },
                    )
                    .unwrap()
                    .keys
                    .into_iter()
                    .map(|k| k.key_id)
                    .collect();
                ids.sort();
                opened.push((name, ids));
            }
            Err(KmsError::WrongPassphrase) => {}
            Err(e) => panic!("the store does not open with {name}: {e}"),
        }
    }
    assert_eq!(
        opened.len(),
        1,
        "opens with {:?}",
        opened.iter().map(|o| o.0).collect::<Vec<_>>()
    );
    opened.remove(0)
}

#[test]
fn sigkill_during_root_key_changes_leaves_the_old_or_the_new_secret() {
    let tmp = new_store();
    let dir = tmp.path().join("e");
    let e = open(&dir);
    let p = Principal::from_ids(0, 0, vec![]);
    let mut want: Vec<String> = (0..3)
        .map(|_| {
            e.create_key(&p, CreateKeyRequest::default())
                .unwrap()
                .key_metadata
                .key_id
        })
        .collect();
    want.sort();
    drop(e);
    let mut current = "key";
    let mut total = 0;
    for (round, kill_after) in [1usize, 6, 2, 13, 4, 9, 1, 20].into_iter().enumerate() {
        let mut c = spawn(
            "processes::child_root_changer",
            &dir,
            0,
            &[("KMS_CHILD_SECRET", current)],
        );
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut reported = 0;
        let mut last = current;
        while reported < kill_after {
            let l = lines.next().unwrap().unwrap();
            if let Some(at) = l.find("NOW ") {
                reported += 1;
                last = if l[at + 4..].starts_with("key") {
                    "key"
                } else {
                    "passphrase"
                };
            }
        }
        c.kill().unwrap(); // SIGKILL while the child keeps changing
        c.wait().unwrap();
        for l in lines.map_while(Result::ok) {
            if let Some(at) = l.find("NOW ") {
                reported += 1;
                last = if l[at + 4..].starts_with("key") {
                    "key"
                } else {
                    "passphrase"
                };
            }
        }
        total += reported;
        // The last reported secret, or the next one if the kill came
        // between the rename and the report; either way all keys are there.
        let (opened, ids) = opens_with(&dir);
        assert!(
            opened == last || opened == other(last),
            "round {round}: opens with {opened}, last reported {last}"
        );
        assert_eq!(ids, want, "round {round}");
        current = opened;
    }
    assert!(total >= 56, "{total} changes");
    // No temp file is left once the store was opened (opens_with did).
    assert_no_temp_files(&dir);
}

/// Reads `n` lines of a `child_writer`, keeping the ids it reports.
fn read_created(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    n: usize,
    out: &mut Vec<String>,
) {
    for _ in 0..n {
        let l = lines.next().expect("the writer stopped").unwrap();
        out.extend(created_ids(&l));
    }
}

/// A writer process (a running mount, in effect) keeps creating keys while
/// another process changes the root key under it several times; it never
/// fails, and every key it reported is in the store opened with the last
/// secret.
#[test]
fn a_writer_process_keeps_writing_across_root_key_changes() {
    let tmp = new_store();
    let dir = tmp.path().join("e");
    let mut c = spawn_child(&dir, 0);
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let mut reported = Vec::new();
    read_created(&mut lines, 3, &mut reported);
    let changer = open(&dir);
    let caller = Principal::from_ids(0, 0, vec![]);
    let mut current = "key";
    for _ in 0..4 {
        let next = other(current);
        changer
            .change_root_key(
                &caller,
                ChangeRootKeyRequest {
                    current: secret(current),
                    new: secret(next),
                    kdf: KdfParams::insecure_for_tests(),
                },
            )
            .unwrap();
        current = next;
        // The writer goes on after each change.
        read_created(&mut lines, 3, &mut reported);
    }
    assert!(c.try_wait().unwrap().is_none(), "the writer died");
    c.kill().unwrap();
    c.wait().unwrap();
    reported.extend(lines.map_while(Result::ok).filter_map(|l| created_ids(&l)));
    let (opened, ids) = opens_with(&dir);
    assert_eq!(opened, current);
    for id in &reported {
        assert!(ids.contains(id), "key {id} reported created but missing");
    }
    assert!(ids.len() <= reported.len() + 1);
}
