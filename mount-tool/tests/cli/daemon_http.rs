//! `kmsfs engine serve --http` as a real process: boto3 and the aws CLI
//! (pointed at it with the endpoint URL, the engine's certificate as CA
//! bundle and access keys from `kmsfs kms create-access-key`) use it
//! unchanged and every call lands in the daemon's audit trail with its
//! access key and address; a given certificate is served and its
//! fingerprint printed; plain HTTP off loopback and unusable certificates
//! are refused in one line before the store is opened; SIGTERM stops both
//! listeners.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::daemon::Daemon;
use crate::engine_env::EngineEnv;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

const PASSPHRASE: &str = "daemon http passphrase";

fn start(env: &EngineEnv, extra: &[&str]) -> Daemon {
    Daemon::try_start(&env.engine, &env.pass, &env.path("run/engine.sock"), extra)
        .unwrap_or_else(|f| panic!("the daemon did not start ({:?}): {}", f.code, f.stderr))
}

fn python_clients() -> Result<(), String> {
    let boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    if !boto3.is_ok_and(|o| o.status.success()) {
        return Err("python3 with boto3 is not installed".into());
    }
    let aws = Command::new("aws").arg("--version").output();
    if !aws.is_ok_and(|o| o.status.success()) {
        return Err("the aws CLI is not installed".into());
    }
    Ok(())
}

/// `openssl x509 -fingerprint -sha256` of a PEM certificate: `AB:CD:...`.
fn openssl_fingerprint(cert: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_string()
}

#[test]
fn boto3_and_the_aws_cli_use_the_daemon() {
    if let Err(why) = python_clients() {
        eprintln!("skipped: {why}");
        return;
    }
    let env = EngineEnv::new(PASSPHRASE);
    let (region, account) = ("eu-west-3", "111122223333");
    let mut d = start(
        &env,
        &[
            "--http",
            "127.0.0.1:0",
            "--region",
            region,
            "--account-id",
            account,
        ],
    );
    // The generated certificate: its path and fingerprint are printed.
    let err = d.stderr();
    let ca = d.ca_path();
    let cert_line = err
        .lines()
        .find(|l| l.starts_with("kmsfs: TLS certificate "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(cert_line.contains(&ca.display().to_string()), "{cert_line}");
    assert!(cert_line.contains("(generated)"), "{cert_line}");
    assert!(
        cert_line.ends_with(&openssl_fingerprint(&ca)),
        "{cert_line}"
    );
    let alice = d.create_access_key("uid:1001");
    let bob = d.create_access_key("uid:1002");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cli/aws_daemon.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(d.endpoint_url())
        .arg(&ca)
        .args([region, account, &alice.0, &alice.1, &bob.0, &bob.1])
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
    assert!(d.terminate().success(), "{}", d.stderr());
    // The same audit trail as the socket's: calls carry the access key and
    // the client's address; bob's denial and the forged signature are there.
    let records = env.ok(&["audit", "show"]);
    let events: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |akid: &str| {
        events
            .iter()
            .filter(|e| e["userIdentity"]["accessKeyId"] == akid)
            .collect::<Vec<_>>()
    };
    let alices = by(&alice.0);
    assert!(alices.iter().any(|e| e["eventName"] == "Decrypt"));
    assert!(
        alices.iter().all(|e| e["sourceIPAddress"] == "127.0.0.1"),
        "{alices:?}"
    );
    assert!(
        by(&bob.0)
            .iter()
            .any(|e| e["errorCode"] == "AccessDeniedException")
    );
    assert!(
        events
            .iter()
            .any(|e| e["errorCode"] == "InvalidSignatureException")
    );
    env.ok(&["audit", "verify"]);
}

#[test]
fn a_given_certificate_is_served_and_bad_options_are_refused_in_one_line() {
    let env = EngineEnv::new(PASSPHRASE);
    // Plain HTTP off loopback: refused before the store is opened.
    let socket = env.path("run/engine.sock");
    for extra in [
        &["--http", "0.0.0.0:0", "--http-plain"][..],
        &["--http", "no-port"][..],
        &["--http", "127.0.0.1:0", "--region", "Not A Region"][..],
    ] {
        let f = Daemon::try_start(&env.engine, &env.pass, &socket, extra)
            .err()
            .unwrap_or_else(|| panic!("{extra:?} must be refused"));
        assert_eq!(f.code, Some(2), "{extra:?}: {}", f.stderr);
        assert_eq!(f.stderr.lines().count(), 1, "{extra:?}: {}", f.stderr);
    }
    let f = Daemon::try_start(
        &env.engine,
        &env.pass,
        &socket,
        &["--http", "0.0.0.0:0", "--http-plain"],
    )
    .err()
    .unwrap();
    assert!(
        f.stderr.contains("only on a loopback address"),
        "{}",
        f.stderr
    );
    // A certificate made with openssl.
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // A key that is not one: refused in one line, the socket not left behind.
    let f = Daemon::try_start(
        &env.engine,
        &env.pass,
        &socket,
        &[
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            cert.to_str().unwrap(),
        ],
    )
    .err()
    .unwrap();
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("private key"), "{}", f.stderr);
    assert!(!socket.exists());
    let mut d = start(
        &env,
        &[
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let err = d.stderr();
    let cert_line = err
        .lines()
        .find(|l| l.starts_with("kmsfs: TLS certificate "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(!cert_line.contains("(generated)"), "{cert_line}");
    assert!(
        cert_line.ends_with(&openssl_fingerprint(&cert)),
        "{cert_line}"
    );
    assert!(!d.ca_path().exists(), "a certificate was generated anyway");
    // openssl's client verifies the served chain against that certificate.
    let port = d.endpoint_url().rsplit(':').next().unwrap().to_string();
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    // SIGTERM closes the HTTPS listener with the socket, also with an idle
    // keep-alive connection open.
    let mut idle = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    assert!(d.terminate().success(), "{}", d.stderr());
    assert!(TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
    let _ = idle.write_all(b"x");
    let mut buf = [0u8; 1];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn plain_http_on_loopback_when_asked_for() {
    let env = EngineEnv::new(PASSPHRASE);
    let d = start(&env, &["--http", "127.0.0.1:0", "--http-plain"]);
    let url = d.endpoint_url();
    assert!(url.starts_with("http://localhost:"), "{url}");
    assert!(!d.stderr().contains("TLS certificate"));
    assert!(!d.ca_path().exists());
    // An unsigned request is refused as AWS refuses it, and audited.
    let port = url.rsplit(':').next().unwrap();
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let body = "{}";
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
         Content-Type: application/x-amz-json-1.1\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("MissingAuthenticationToken"), "{reply}");
}
