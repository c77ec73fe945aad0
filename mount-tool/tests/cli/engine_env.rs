//! One engine in a temporary directory, driven through the real `kmsfs`
//! binary with a passphrase file and no terminal: shared by the CLI tests
//! that need an engine but no volume or mount.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct EngineEnv {
    pub tmp: tempfile::TempDir,
    pub engine: PathBuf,
    pub pass: PathBuf,
}

impl EngineEnv {
    /// A passphrase file and an engine directory not yet initialised.
    pub fn bare(passphrase: &str) -> EngineEnv {
        let tmp = tempfile::tempdir().unwrap();
        let engine = tmp.path().join("engine");
        let pass = tmp.path().join("passphrase");
        std::fs::write(&pass, format!("{passphrase}\n")).unwrap();
        EngineEnv { tmp, engine, pass }
    }

    /// `bare`, then `kms init-engine` with a cheap KDF.
    pub fn new(passphrase: &str) -> EngineEnv {
        let env = EngineEnv::bare(passphrase);
        env.init_engine(&[]);
        env
    }

    /// `kms init-engine` with a cheap KDF and `extra` options; its stdout.
    pub fn init_engine(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "kms",
            "init-engine",
            "--kdf-memory-kib",
            "8",
            "--kdf-iterations",
            "1",
        ];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// A path in the test's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `kmsfs --engine DIR [--passphrase-file F] ARGS`; the passphrase file
    /// only when `passphrase`.
    pub fn run_with(&self, args: &[&str], passphrase: bool) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
            c.env_remove(var);
        }
        c.arg("--engine").arg(&self.engine);
        if passphrase {
            c.arg("--passphrase-file").arg(&self.pass);
        }
        c.args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `run_with(args, true)`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, true)
    }

    /// The stdout of a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The JSON stdout of a command that must succeed.
    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}
