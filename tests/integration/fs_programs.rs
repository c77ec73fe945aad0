//! Real programs on a kmsfs mount: git, tar, sqlite3, rsync. A test whose
//! program is not installed prints a notice and skips.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, have};
use kmsfs::format::NamesMode;
use std::fs;
use std::path::Path;
use std::process::Command;

fn run(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skip(cmd: &str) -> bool {
    if have(cmd) {
        return false;
    }
    eprintln!("NOTICE: {cmd} is not installed; skipping this test");
    true
}

#[test]
fn git_init_add_commit_log() {
    if skip("git") {
        return;
    }
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let repo = m.path("repo");
    fs::create_dir(&repo).unwrap();
    run(&repo, "git", &["init", "-q"]);
    for i in 0..20 {
        fs::write(
            repo.join(format!("file{i}.txt")),
            format!("content {i}\n").repeat(50),
        )
        .unwrap();
    }
    run(&repo, "git", &["add", "."]);
    run(&repo, "git", &["commit", "-q", "-m", "first"]);
    fs::write(repo.join("file3.txt"), "changed\n").unwrap();
    run(&repo, "git", &["commit", "-q", "-am", "second"]);
    let log = run(&repo, "git", &["log", "--oneline"]);
    assert_eq!(log.lines().count(), 2, "{log}");
    run(&repo, "git", &["fsck", "--strict"]);
    assert_eq!(run(&repo, "git", &["status", "--porcelain"]), "");
}

#[test]
fn tar_create_and_extract() {
    if skip("tar") {
        return;
    }
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let src = fx.tmp.path().join("src");
    fs::create_dir_all(src.join("a/b/c")).unwrap();
    for i in 0..200 {
        fs::write(src.join(format!("a/b/f{i}")), vec![i as u8; i * 37]).unwrap();
    }
    std::os::unix::fs::symlink("b/f7", src.join("a/link")).unwrap();
    let tarball = fx.tmp.path().join("t.tar");
    run(
        fx.tmp.path(),
        "tar",
        &[
            "cf",
            tarball.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            ".",
        ],
    );
    // Extract onto the mount, then pack it again from the mount.
    run(&m.mnt, "tar", &["xf", tarball.to_str().unwrap()]);
    let again = fx.tmp.path().join("again.tar");
    run(&m.mnt, "tar", &["cf", again.to_str().unwrap(), "."]);
    let out = fx.tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    run(&out, "tar", &["xf", again.to_str().unwrap()]);
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&src)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn sqlite_inserts_and_integrity_check() {
    if skip("sqlite3") {
        return;
    }
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let mut sql =
        String::from("PRAGMA journal_mode=WAL;\nCREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n");
    for batch in 0..20 {
        sql.push_str("BEGIN;\n");
        for i in 0..200 {
            sql.push_str(&format!(
                "INSERT INTO t(v) VALUES('row {batch}-{i} {}');\n",
                "x".repeat(i % 50)
            ));
        }
        sql.push_str("COMMIT;\n");
    }
    sql.push_str("DELETE FROM t WHERE id % 3 = 0;\nVACUUM;\n");
    let db = m.path("db.sqlite");
    let out = Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let check = run(
        &m.mnt,
        "sqlite3",
        &[
            db.to_str().unwrap(),
            "PRAGMA integrity_check; SELECT count(*) FROM t;",
        ],
    );
    assert_eq!(check.trim(), "ok\n2667");
    m.unmount();
    let m = fx.mount();
    let check = run(&m.mnt, "sqlite3", &["db.sqlite", "PRAGMA integrity_check;"]);
    assert_eq!(check.trim(), "ok");
}

#[test]
fn rsync_in_and_out() {
    if skip("rsync") {
        return;
    }
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let m = fx.mount();
    let src = fx.tmp.path().join("src");
    fs::create_dir_all(src.join("x/y")).unwrap();
    for i in 0..100 {
        fs::write(
            src.join(format!("x/y/f{i}")),
            format!("{i}").repeat(i * 10 + 1),
        )
        .unwrap();
    }
    let dst = m.path("copy");
    run(
        fx.tmp.path(),
        "rsync",
        &["-a", &format!("{}/", src.display()), dst.to_str().unwrap()],
    );
    // A second run with a changed file transfers it (rsync renames its temp file over).
    fs::write(src.join("x/y/f5"), "changed").unwrap();
    run(
        fx.tmp.path(),
        "rsync",
        &[
            "-a",
            "--checksum",
            &format!("{}/", src.display()),
            dst.to_str().unwrap(),
        ],
    );
    let back = fx.tmp.path().join("back");
    run(
        fx.tmp.path(),
        "rsync",
        &["-a", &format!("{}/", dst.display()), back.to_str().unwrap()],
    );
    let out = Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
