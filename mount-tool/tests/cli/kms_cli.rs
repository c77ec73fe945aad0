//! End-to-end tests of `kmsfs kms`: the real binary against a real engine
//! store in a temporary directory, opened with a passphrase file and a cheap
//! Argon2id cost.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions; a failed unwrap is a failed test"
)]

use crate::daemon::Daemon;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PASSPHRASE: &str = "correct horse battery staple";

/// How the commands reach the engine.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    /// The store in the engine directory, opened by each command.
    Embedded,
    /// A real daemon (`kmsfs engine serve`) serving that store; the
    /// commands get only KMSFS_KMS, no engine directory or passphrase.
    Daemon,
}

/// The tests that run both ways: each `fn NAME(via: Via)` becomes
/// `kms_cli::embedded::NAME` and `kms_cli::daemon::NAME`, so that every
/// command is shown to behave the same through the daemon.
macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[test] fn $name() { super::$name(super::Via::Embedded) })*
        }
        mod daemon {
            $(#[test] fn $name() { super::$name(super::Via::Daemon) })*
        }
    };
}
pub(crate) use both_ways;

both_ways!(
    create_describe_and_list_with_paging,
    aliases_name_keys_everywhere,
    encrypt_decrypt_round_trip_with_context,
    disable_and_enable,
    schedule_and_cancel_deletion,
    rotation_commands,
    tags,
    generate_data_key_and_random_text_output,
);

/// A temporary engine directory and passphrase file, and the daemon
/// serving it when the test runs through one (dropped first: stopped
/// before the directory goes).
pub(crate) struct Env {
    daemon: Option<Daemon>,
    tmp: tempfile::TempDir,
    pub(crate) engine: PathBuf,
    pass: PathBuf,
}

impl Env {
    /// An environment without a store.
    pub(crate) fn empty() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let engine = tmp.path().join("engine");
        let pass = tmp.path().join("passphrase");
        std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
        Env {
            daemon: None,
            tmp,
            engine,
            pass,
        }
    }

    /// An environment with an initialised store.
    pub(crate) fn new() -> Env {
        Env::new_via(Via::Embedded)
    }

    /// An initialised store, used as `via` says.
    pub(crate) fn new_via(via: Via) -> Env {
        let mut env = Env::empty();
        let out = env.ok(&[
            "init-engine",
            "--kdf-memory-kib",
            "8",
            "--kdf-iterations",
            "1",
        ]);
        assert_eq!(out["RootKeySource"], "passphrase");
        if let Via::Daemon = via {
            let socket = env.tmp.path().join("engine.sock");
            env.daemon = Some(Daemon::start(&env.engine, &env.pass, &socket));
        }
        env
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `kmsfs kms ARGS` with this engine and passphrase (through the
    /// environment variables), no terminal.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bare_cmd();
        match &self.daemon {
            Some(d) => c.env("KMSFS_KMS", d.url()),
            None => c
                .env("KMSFS_ENGINE", &self.engine)
                .env("KMSFS_PASSPHRASE_FILE", &self.pass),
        };
        c.arg("kms").args(args);
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout as JSON (Null if empty).
    pub(crate) fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_success(&out, args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
        }
    }

    /// Runs a command that must succeed with `--output text`; its stdout.
    pub(crate) fn text(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--output", "text"]);
        let out = self.run(&all);
        assert_success(&out, &all);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; its exit code and stderr.
    pub(crate) fn fail(&self, args: &[&str]) -> (i32, String) {
        failure(self.run(args), args)
    }

    pub(crate) fn create_key(&self, extra: &[&str]) -> String {
        let mut args = vec!["create-key"];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        out["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
    }

    /// Every file in the engine directory with its bytes.
    pub(crate) fn store_snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.engine).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
        out
    }
}

/// The binary with no KMSFS_* variables inherited and stdin closed.
fn bare_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
    for var in [
        "KMSFS_ENGINE",
        "KMSFS_PASSPHRASE_FILE",
        "KMSFS_KEY_FILE",
        "KMSFS_KMS",
    ] {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    c
}

fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn failure(out: Output, args: &[&str]) -> (i32, String) {
    assert!(
        !out.status.success(),
        "{args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    (out.status.code().unwrap(), stderr)
}

/// An engine error is one line: `kmsfs: MESSAGE (ExceptionName)`.
pub(crate) fn assert_one_line_error(stderr: &str, exception: &str) {
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("kmsfs: "), "{stderr}");
    assert!(
        stderr.trim_end().ends_with(&format!("({exception})")),
        "{stderr}"
    );
}

fn fileb(p: &Path) -> String {
    format!("fileb://{}", p.display())
}

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s.trim()).unwrap()
}

#[test]
fn init_engine_refuses_an_existing_store() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let mode = std::fs::metadata(&env.engine).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let before = env.store_snapshot();
    assert!(!before.is_empty());
    let (code, err) = env.fail(&["init-engine", "--kdf-memory-kib", "8"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(env.store_snapshot(), before);
}

#[test]
fn missing_engine_exits_5_without_asking_for_a_passphrase() {
    let env = Env::empty();
    // No passphrase source at all: the missing store is reported first.
    let out = bare_cmd()
        .args(["kms", "list-keys", "--engine"])
        .arg(&env.engine)
        .output()
        .unwrap();
    let (code, err) = failure(out, &["list-keys"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("kmsfs kms init-engine"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn usage_mistakes_exit_2() {
    let env = Env::new();
    for args in [
        &["create-key", "--no-such-option"][..],
        &["no-such-command"],
        &["describe-key"],
        &[
            "encrypt",
            "--key-id",
            "k",
            "--plaintext",
            "x",
            "--encryption-context",
            "novalue",
        ],
        &["list-keys", "--limit", "many"],
        &["create-key", "--tags", "TagKey=only"],
    ] {
        let (code, err) = env.fail(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
    // The engine's ValidationException is a usage mistake too.
    let key = env.create_key(&[]);
    let (code, err) = env.fail(&[
        "schedule-key-deletion",
        "--key-id",
        &key,
        "--pending-window-in-days",
        "3",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_one_line_error(&err, "ValidationException");
}

#[test]
fn no_terminal_and_no_passphrase_exits_3() {
    let env = Env::new();
    let out = bare_cmd()
        .args(["kms", "list-keys", "--engine"])
        .arg(&env.engine)
        .output()
        .unwrap();
    let (code, err) = failure(out, &["list-keys"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--passphrase-file"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn wrong_passphrase_exits_3_and_changes_nothing() {
    let env = Env::new();
    let key = env.create_key(&["--description", "kept"]);
    let before = env.store_snapshot();
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let out = env
        .cmd(&["create-key", "--description", "never"])
        .env("KMSFS_PASSPHRASE_FILE", &wrong)
        .output()
        .unwrap();
    let (code, err) = failure(out, &["create-key"]);
    assert_eq!(code, 3, "{err}");
    assert_one_line_error(&err, "IncorrectPassphraseException");
    assert!(!err.contains("not the passphrase"), "{err}");
    assert_eq!(env.store_snapshot(), before);
    // The --passphrase-file flag wins over nothing and works the same way.
    let out = bare_cmd()
        .args(["kms", "list-keys", "--engine"])
        .arg(&env.engine)
        .arg("--passphrase-file")
        .arg(&env.pass)
        .output()
        .unwrap();
    assert_success(&out, &["list-keys"]);
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys["Keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["Keys"][0]["KeyId"], key.as_str());
}

fn create_describe_and_list_with_paging(via: Via) {
    let env = Env::new_via(via);
    let created = env.ok(&[
        "create-key",
        "--description",
        "first key",
        "--key-usage",
        "ENCRYPT_DECRYPT",
        "--key-spec",
        "SYMMETRIC_DEFAULT",
    ]);
    let md = &created["KeyMetadata"];
    let k1 = md["KeyId"].as_str().unwrap().to_string();
    assert_eq!(md["Description"], "first key");
    assert_eq!(md["KeyState"], "Enabled");
    assert_eq!(md["Enabled"], true);
    assert_eq!(md["KeyUsage"], "ENCRYPT_DECRYPT");
    assert!(md["Arn"].as_str().unwrap().ends_with(&k1));
    let k2 = env.create_key(&[]);
    let k3 = env.create_key(&[]);

    let d = env.ok(&["describe-key", "--key-id", &k1]);
    assert_eq!(d["KeyMetadata"]["Description"], "first key");
    let by_arn = env.ok(&["describe-key", "--key-id", md["Arn"].as_str().unwrap()]);
    assert_eq!(by_arn["KeyMetadata"]["KeyId"], k1.as_str());

    let page1 = env.ok(&["list-keys", "--limit", "2"]);
    assert_eq!(page1["Keys"].as_array().unwrap().len(), 2);
    assert_eq!(page1["Truncated"], true);
    let marker = page1["NextMarker"].as_str().unwrap();
    let page2 = env.ok(&["list-keys", "--marker", marker]);
    assert_eq!(page2["Keys"].as_array().unwrap().len(), 1);
    assert_eq!(page2["Truncated"], false);
    let mut paged: Vec<String> = page1["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["Keys"].as_array().unwrap())
        .map(|k| k["KeyId"].as_str().unwrap().to_string())
        .collect();
    paged.sort();
    let mut expected = vec![k1.clone(), k2, k3];
    expected.sort();
    assert_eq!(paged, expected);

    // Without --limit/--marker every page is fetched.
    let all = env.ok(&["list-keys"]);
    assert_eq!(all["Keys"].as_array().unwrap().len(), 3);
    assert!(all.get("NextMarker").is_none());
    assert!(all.get("Truncated").is_none());

    // Text output: one KEYS line per key, as `aws --output text`.
    let text = env.text(&["list-keys"]);
    assert_eq!(text.lines().count(), 3, "{text}");
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[0], "KEYS", "{text}");
        assert!(fields[1].starts_with("arn:"), "{text}");
        assert!(expected.iter().any(|k| k == fields[2]), "{text}");
    }

    let (code, err) = env.fail(&["describe-key", "--key-id", "no-such-key"]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "NotFoundException");
}

fn aliases_name_keys_everywhere(via: Via) {
    let env = Env::new_via(via);
    let k1 = env.create_key(&[]);
    let k2 = env.create_key(&[]);
    assert!(
        env.ok(&[
            "create-alias",
            "--alias-name",
            "alias/photos",
            "--target-key-id",
            &k1
        ])
        .is_null()
    );
    let d = env.ok(&["describe-key", "--key-id", "alias/photos"]);
    assert_eq!(d["KeyMetadata"]["KeyId"], k1.as_str());

    let aliases = env.ok(&["list-aliases"]);
    let entry = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == "alias/photos")
        .unwrap()
        .clone();
    assert_eq!(entry["TargetKeyId"], k1.as_str());
    let of_k1 = env.ok(&["list-aliases", "--key-id", &k1]);
    assert_eq!(of_k1["Aliases"].as_array().unwrap().len(), 1);

    // An alias works as --key-id for crypto too.
    let ct = env.text(&["encrypt", "--key-id", "alias/photos", "--plaintext", "hi"]);
    assert!(!ct.trim().is_empty());

    let (code, err) = env.fail(&[
        "create-alias",
        "--alias-name",
        "alias/photos",
        "--target-key-id",
        &k2,
    ]);
    assert_eq!(code, 1, "{err}");
    assert_one_line_error(&err, "AlreadyExistsException");

    env.ok(&[
        "update-alias",
        "--alias-name",
        "alias/photos",
        "--target-key-id",
        &k2,
    ]);
    let d = env.ok(&["describe-key", "--key-id", "alias/photos"]);
    assert_eq!(d["KeyMetadata"]["KeyId"], k2.as_str());

    env.ok(&["delete-alias", "--alias-name", "alias/photos"]);
    let (code, err) = env.fail(&["describe-key", "--key-id", "alias/photos"]);
    assert_eq!(code, 5, "{err}");
    assert_one_line_error(&err, "NotFoundException");
}

fn encrypt_decrypt_round_trip_with_context(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&[]);
    env.ok(&[
        "create-alias",
        "--alias-name",
        "alias/v",
        "--target-key-id",
        &key,
    ]);
    let plain: Vec<u8> = (0..=255u8).chain([0, 10, 13]).collect();
    let pt_file = env.path("plain.bin");
    std::fs::write(&pt_file, &plain).unwrap();

    let enc = env.ok(&[
        "encrypt",
        "--key-id",
        "alias/v",
        "--plaintext",
        &fileb(&pt_file),
        "--encryption-context",
        "kmsfs:path=/a/b,kmsfs:volume=v1",
    ]);
    assert!(enc["KeyId"].as_str().unwrap().ends_with(&key));
    let ct_file = env.path("ct.bin");
    std::fs::write(&ct_file, b64(enc["CiphertextBlob"].as_str().unwrap())).unwrap();

    // The same context, given as JSON in another order, decrypts.
    let dec = env.ok(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&ct_file),
        "--encryption-context",
        r#"{"kmsfs:volume":"v1","kmsfs:path":"/a/b"}"#,
    ]);
    assert_eq!(b64(dec["Plaintext"].as_str().unwrap()), plain);
    assert!(dec["KeyId"].as_str().unwrap().ends_with(&key));
    // Text output is the bare base64 plaintext.
    let text = env.text(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&ct_file),
        "--encryption-context",
        "kmsfs:volume=v1,kmsfs:path=/a/b",
    ]);
    assert_eq!(text.lines().count(), 1);
    assert_eq!(b64(&text), plain);

    // Any other context fails, as does none.
    for ctx in [
        &["--encryption-context", "kmsfs:volume=v1,kmsfs:path=/a/c"][..],
        &["--encryption-context", "kmsfs:volume=v1"],
        &[],
    ] {
        let mut args = vec!["decrypt", "--ciphertext-blob"];
        let blob = fileb(&ct_file);
        args.push(&blob);
        args.extend_from_slice(ctx);
        let (code, err) = env.fail(&args);
        assert_eq!(code, 1, "{ctx:?}: {err}");
        assert_one_line_error(&err, "InvalidCiphertextException");
    }

    // Encrypting inline text (no fileb://) encrypts the text itself.
    let ct = env.text(&["encrypt", "--key-id", &key, "--plaintext", "hello"]);
    let ct2_file = env.path("ct2.bin");
    std::fs::write(&ct2_file, b64(&ct)).unwrap();
    let pt = env.text(&["decrypt", "--ciphertext-blob", &fileb(&ct2_file)]);
    assert_eq!(b64(&pt), b"hello");

    // ReEncrypt moves the blob to a new context; the old one stops working.
    let re = env.text(&[
        "re-encrypt",
        "--ciphertext-blob",
        &fileb(&ct_file),
        "--source-encryption-context",
        "kmsfs:volume=v1,kmsfs:path=/a/b",
        "--destination-encryption-context",
        "kmsfs:volume=v1,kmsfs:path=/new",
        "--destination-key-id",
        "alias/v",
    ]);
    let re_file = env.path("re.bin");
    std::fs::write(&re_file, b64(&re)).unwrap();
    let pt = env.text(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&re_file),
        "--encryption-context",
        "kmsfs:volume=v1,kmsfs:path=/new",
    ]);
    assert_eq!(b64(&pt), plain);
    let (code, err) = env.fail(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&re_file),
        "--encryption-context",
        "kmsfs:volume=v1,kmsfs:path=/a/b",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_one_line_error(&err, "InvalidCiphertextException");

    // A missing fileb:// file is an I/O error naming the option.
    let (code, err) = env.fail(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&env.path("missing.bin")),
    ]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("--ciphertext-blob"), "{err}");
}

fn disable_and_enable(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&[]);
    env.ok(&["disable-key", "--key-id", &key]);
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Disabled");
    assert_eq!(d["KeyMetadata"]["Enabled"], false);
    let (code, err) = env.fail(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    assert_eq!(code, 1, "{err}");
    assert_one_line_error(&err, "DisabledException");
    env.ok(&["enable-key", "--key-id", &key]);
    env.ok(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    env.ok(&[
        "update-key-description",
        "--key-id",
        &key,
        "--description",
        "renamed",
    ]);
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["Description"], "renamed");
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled");
}

fn schedule_and_cancel_deletion(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&[]);
    let s = env.ok(&[
        "schedule-key-deletion",
        "--key-id",
        &key,
        "--pending-window-in-days",
        "7",
    ]);
    assert_eq!(s["KeyState"], "PendingDeletion");
    assert_eq!(s["PendingWindowInDays"], 7);
    assert!(s["KeyId"].as_str().unwrap().ends_with(&key));
    assert!(!s["DeletionDate"].is_null());
    let (code, err) = env.fail(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    assert_eq!(code, 1, "{err}");
    assert_one_line_error(&err, "KMSInvalidStateException");
    let c = env.ok(&["cancel-key-deletion", "--key-id", &key]);
    assert!(c["KeyId"].as_str().unwrap().ends_with(&key));
    let d = env.ok(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Disabled");
    // The default window is 30 days.
    let s = env.ok(&["schedule-key-deletion", "--key-id", &key]);
    assert_eq!(s["PendingWindowInDays"], 30);
}

fn rotation_commands(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&[]);
    let st = env.ok(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(st["KeyRotationEnabled"], false);

    env.ok(&[
        "enable-key-rotation",
        "--key-id",
        &key,
        "--rotation-period-in-days",
        "90",
    ]);
    let st = env.ok(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(st["KeyRotationEnabled"], true);
    assert_eq!(st["RotationPeriodInDays"], 90);

    let old_ct = env.text(&["encrypt", "--key-id", &key, "--plaintext", "before"]);
    let rotations = env.ok(&["list-key-rotations", "--key-id", &key]);
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 0);
    let r = env.ok(&["rotate-key-on-demand", "--key-id", &key]);
    assert!(r["KeyId"].as_str().unwrap().ends_with(&key));
    let rotations = env.ok(&["list-key-rotations", "--key-id", &key]);
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 1);

    // The old ciphertext still decrypts; a new one differs in its version.
    let old_file = env.path("old.bin");
    std::fs::write(&old_file, b64(&old_ct)).unwrap();
    let pt = env.text(&["decrypt", "--ciphertext-blob", &fileb(&old_file)]);
    assert_eq!(b64(&pt), b"before");

    env.ok(&["disable-key-rotation", "--key-id", &key]);
    let st = env.ok(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(st["KeyRotationEnabled"], false);

    let (code, err) = env.fail(&[
        "enable-key-rotation",
        "--key-id",
        &key,
        "--rotation-period-in-days",
        "10",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_one_line_error(&err, "ValidationException");
}

fn tags(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&["--tags", "TagKey=team,TagValue=storage"]);
    env.ok(&[
        "tag-resource",
        "--key-id",
        &key,
        "--tags",
        "TagKey=env,TagValue=test",
        r#"[{"TagKey":"owner","TagValue":"me"}]"#,
    ]);
    let tags = |env: &Env| -> BTreeMap<String, String> {
        let t = env.ok(&["list-resource-tags", "--key-id", &key]);
        t["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["TagKey"].as_str().unwrap().to_string(),
                    t["TagValue"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let all = tags(&env);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all["team"], "storage");
    assert_eq!(all["env"], "test");
    assert_eq!(all["owner"], "me");
    env.ok(&[
        "untag-resource",
        "--key-id",
        &key,
        "--tag-keys",
        "env",
        "owner",
    ]);
    assert_eq!(
        tags(&env),
        BTreeMap::from([("team".to_string(), "storage".to_string())])
    );
}

fn generate_data_key_and_random_text_output(via: Via) {
    let env = Env::new_via(via);
    let key = env.create_key(&[]);
    let out = env.text(&[
        "generate-data-key",
        "--key-id",
        &key,
        "--key-spec",
        "AES_256",
        "--encryption-context",
        "f=/x",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let data_key = b64(lines[0]);
    assert_eq!(data_key.len(), 32);
    let wrapped = env.path("wrapped.bin");
    std::fs::write(&wrapped, b64(lines[1])).unwrap();
    let unwrapped = env.text(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb(&wrapped),
        "--encryption-context",
        "f=/x",
    ]);
    assert_eq!(b64(&unwrapped), data_key);

    let json = env.ok(&[
        "generate-data-key",
        "--key-id",
        &key,
        "--number-of-bytes",
        "64",
    ]);
    assert_eq!(b64(json["Plaintext"].as_str().unwrap()).len(), 64);
    assert!(json["KeyId"].as_str().unwrap().ends_with(&key));

    let without = env.ok(&[
        "generate-data-key-without-plaintext",
        "--key-id",
        &key,
        "--key-spec",
        "AES_128",
    ]);
    assert!(without.get("Plaintext").is_none());
    let only = env.text(&[
        "generate-data-key-without-plaintext",
        "--key-id",
        &key,
        "--key-spec",
        "AES_128",
    ]);
    assert_eq!(only.lines().count(), 1);
    let w = env.path("w.bin");
    std::fs::write(&w, b64(&only)).unwrap();
    let k = env.text(&["decrypt", "--ciphertext-blob", &fileb(&w)]);
    assert_eq!(b64(&k).len(), 16);

    let r = env.text(&["generate-random", "--number-of-bytes", "16"]);
    assert_eq!(b64(&r).len(), 16);
}

#[test]
fn key_file_root() {
    let env = Env::empty();
    let key_file = env.path("root.key");
    std::fs::write(&key_file, [42u8; 32]).unwrap();
    let run = |args: &[&str], key: &Path| {
        bare_cmd()
            .arg("kms")
            .args(args)
            .arg("--engine")
            .arg(&env.engine)
            .arg("--key-file")
            .arg(key)
            .output()
            .unwrap()
    };
    // The Argon2id cost options make no sense for a key file.
    let out = run(&["init-engine", "--kdf-iterations", "1"], &key_file);
    let (code, err) = failure(out, &["init-engine"]);
    assert_eq!(code, 2, "{err}");
    assert!(!env.engine.exists());
    let out = run(&["init-engine"], &key_file);
    assert_success(&out, &["init-engine"]);
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["RootKeySource"], "key-file");
    let out = run(&["create-key"], &key_file);
    assert_success(&out, &["create-key"]);

    // --key-file on the command line overrides KMSFS_PASSPHRASE_FILE ...
    let out = env
        .cmd(&["list-keys", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert_success(&out, &["list-keys", "--key-file"]);
    // ... but both options on the command line are a usage mistake.
    let out = run(
        &["list-keys", "--passphrase-file", env.pass.to_str().unwrap()],
        &key_file,
    );
    let (code, err) = failure(out, &["list-keys"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not both"), "{err}");
    // A passphrase does not open a key-file store.
    let (code, err) = env.fail(&["list-keys"]);
    assert_eq!(code, 3, "{err}");
    assert_one_line_error(&err, "IncorrectPassphraseException");

    let other = env.path("other.key");
    std::fs::write(&other, [43u8; 32]).unwrap();
    let (code, err) = failure(run(&["list-keys"], &other), &["list-keys"]);
    assert_eq!(code, 3, "{err}");
    assert_one_line_error(&err, "IncorrectPassphraseException");

    let short = env.path("short.key");
    std::fs::write(&short, [1u8; 31]).unwrap();
    let (code, err) = failure(run(&["list-keys"], &short), &["list-keys"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("31 bytes"), "{err}");
}
