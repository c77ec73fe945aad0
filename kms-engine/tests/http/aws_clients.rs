//! boto3 and the aws CLI (Python) against the HTTPS endpoint with its
//! self-signed certificate as the CA bundle: every error they raise is the
//! botocore exception an AWS user would catch. Skipped, saying so, only
//! where boto3 or the CLI is missing (CI installs both).

use crate::common::*;
use std::process::Command;

pub(crate) fn have_python_clients() -> Result<(), String> {
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

#[test]
fn boto3_and_the_aws_cli() {
    if let Err(why) = have_python_clients() {
        eprintln!("skipped: {why}");
        return;
    }
    let srv = Server::https();
    let cert = srv.cert.as_ref().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/aws_clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(srv.url())
        .arg(&cert.cert_path)
        .args([ALICE_KEY, ALICE_SECRET, BOB_KEY, BOB_SECRET])
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // Every call was audited with its access key and address.
    let events = srv.events();
    assert!(events.len() > 50, "{}", events.len());
    assert!(
        events
            .iter()
            .all(|e| e.source_ip_address.as_deref() == Some("127.0.0.1"))
    );
    assert!(
        events
            .iter()
            .any(|e| e.access_key_id.as_deref() == Some(BOB_KEY)
                && e.error_code.as_deref() == Some("AccessDeniedException"))
    );
}
