//! Replays the fuzz seed corpora (`fuzz/corpus/<target>/`) and the saved
//! crash inputs (`fuzz/regressions/<target>/`) through the same checks the
//! `cargo fuzz` targets run (`fuzz/src/checks/`, included here), so that
//! plain `cargo test` on stable catches a regression without cargo-fuzz.
//!
//! A regression input whose bug is not fixed yet lives in
//! `fuzz/regressions/<target>/open/`; those are replayed by the ignored
//! test `open_fuzz_findings` (`cargo test --test integration fuzz_regressions:: -- --ignored`)
//! until the fix lands and the file moves up one directory.

#[path = "../../fuzz/src/checks/mod.rs"]
#[allow(dead_code, unused_imports)]
mod checks;

use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("file_header", checks::file_header),
    ("volume_config", checks::volume_config),
    ("content_block", checks::content_block),
    ("names", checks::names),
    ("engine_blob", checks::engine_blob),
    ("engine_store", checks::engine_store),
    ("engine_dispatch", checks::engine_dispatch),
    ("audit_verify", checks::audit_verify),
    ("policy_parse", checks::policy_parse),
    ("policy_wildcard", checks::policy_wildcard),
    ("sigv4_verify", checks::sigv4_verify),
    ("service_frame", checks::service_frame),
    ("write_only", checks::write_only),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Regular files directly in `dir` (none if it does not exist), sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `check` on every input of `sub/<target>/[open/]`, naming each input
/// that panics; returns how many ran.
fn replay(sub: &str, open: bool) -> usize {
    let mut ran = 0;
    let mut failed = Vec::new();
    for (target, check) in TARGETS {
        let mut dir = fuzz_dir().join(sub).join(target);
        if open {
            dir = dir.join("open");
        }
        for p in inputs(&dir) {
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) => panic!("cannot read {}: {e}", p.display()),
            };
            ran += 1;
            if std::panic::catch_unwind(|| check(&bytes)).is_err() {
                failed.push(p.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "fuzz inputs that fail: {failed:#?}");
    ran
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (target, _) in TARGETS {
        let n = inputs(&fuzz_dir().join("corpus").join(target)).len();
        assert!(n >= 3, "fuzz/corpus/{target} has {n} seeds");
    }
}

#[test]
fn seed_corpora_pass_their_checks() {
    assert!(replay("corpus", false) >= 3 * TARGETS.len());
}

#[test]
fn fixed_regressions_pass_their_checks() {
    // Every directory under regressions/ is a target's: a misspelt one
    // would hold inputs that are never replayed.
    let dir = fuzz_dir().join("regressions");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries.flatten() {
        let name = e.file_name();
        assert!(
            e.path().is_dir() && TARGETS.iter().any(|(t, _)| name == *t),
            "fuzz/regressions/{} is not a fuzz target's directory",
            name.to_string_lossy()
        );
    }
    let ran = replay("regressions", false);
    assert!(ran > 0, "no inputs in fuzz/regressions/<target>/ to replay");
}

#[test]
#[ignore = "known fuzz findings whose fix has not landed; see fuzz/README.md"]
fn open_fuzz_findings() {
    replay("regressions", true);
}
