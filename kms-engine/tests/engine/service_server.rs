//! The engine daemon against bad input and hard stops, over raw sockets:
//! malformed, truncated, oversized and unknown-version frames, a client
//! stopping mid-frame, many idle connections, too many connections, a
//! client gone with requests in flight, and a graceful shutdown with a
//! request in flight. In each case the daemon keeps serving everyone else
//! and no call is lost from the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a test failure

use crate::service_support::{Daemon, wait_until};
use kms_engine::service::frame::{self, Request, Response};
use kms_engine::service::{Client, ServerConfig, Transport};
use kms_engine::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Reads one response frame; `None` at end of file.
fn read_response(s: &mut UnixStream) -> Option<Response> {
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).ok()?;
    let len = frame::frame_len(prefix, frame::MAX_FRAME_LEN).unwrap();
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).unwrap();
    Some(Response::decode(&buf).unwrap())
}

/// True when the server closed `s` (end of file, nothing more sent).
fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn list_keys(id: u64) -> Vec<u8> {
    Request {
        id,
        operation: "ListKeys".into(),
        on_behalf_of: None,
        body: json!({}),
    }
    .encode()
    .unwrap()
}

fn still_serves(d: &Daemon) {
    Client::connect(&d.socket)
        .unwrap()
        .call("ListKeys", json!({}), None)
        .unwrap();
}

#[test]
fn malformed_frames_get_an_error_and_a_closed_connection() {
    let d = Daemon::start();
    let good = list_keys(5);
    let mut bad_version = good.clone();
    bad_version[4] = 9;
    let mut bad_kind = good.clone();
    bad_kind[5] = frame::KIND_OK;
    let mut bad_json = good.clone();
    let n = bad_json.len();
    bad_json[n - 1] = b'x';
    let oversized = ((frame::MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    let too_short = [0, 0, 0, 3, 1, 1, 0].to_vec();
    let garbage = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    for (name, bytes) in [
        ("version", bad_version),
        ("kind", bad_kind),
        ("json", bad_json),
        ("oversized", oversized),
        ("too short", too_short),
        ("http", garbage),
    ] {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(&bytes).unwrap();
        match read_response(&mut s) {
            Some(Response::Error { id, exception, .. }) => {
                assert_eq!(
                    (id, exception.as_str()),
                    (0, "SerializationException"),
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(closed(&mut s), "{name}");
        still_serves(&d);
    }
    // A good frame on a fresh connection is answered by id.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&good).unwrap();
    assert_eq!(read_response(&mut s).unwrap().id(), 5);
}

#[test]
fn a_client_stopping_mid_frame_is_dropped_after_the_read_timeout() {
    let d = Daemon::start_with(ServerConfig {
        read_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    });
    let good = list_keys(1);
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&good[..good.len() / 2]).unwrap();
    // Others are served while it hangs; then it is closed unanswered.
    still_serves(&d);
    assert!(closed(&mut s));
    // Truncated then closed by the client: nothing is run.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&good[..good.len() - 1]).unwrap();
    drop(s);
    still_serves(&d);
    assert_eq!(d.events_of("ListKeys").len(), 2);
}

/// Raises this process's open-file limit to at least `n`.
fn raise_nofile(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < n {
        setrlimit(Resource::RLIMIT_NOFILE, n.min(hard), hard).unwrap();
    }
}

#[test]
fn a_thousand_idle_connections_do_not_hurt_anyone() {
    raise_nofile(8192);
    let d = Daemon::start();
    let idle: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let client = Client::connect(&d.socket).unwrap();
    for _ in 0..20 {
        client.call("ListKeys", json!({}), None).unwrap();
    }
    // The idle ones are still open and served too.
    let mut s = &idle[999];
    s.write_all(&list_keys(9)).unwrap();
    let mut s = idle[999].try_clone().unwrap();
    assert_eq!(read_response(&mut s).unwrap().id(), 9);
}

#[test]
fn connections_past_the_limit_are_closed_and_others_unaffected() {
    let d = Daemon::start_with(ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    });
    let mut held: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    // Make sure the three were accepted (served) before the fourth.
    for (i, s) in held.iter_mut().enumerate() {
        s.write_all(&list_keys(i as u64 + 1)).unwrap();
        assert_eq!(read_response(s).unwrap().id(), i as u64 + 1);
    }
    let mut extra = UnixStream::connect(&d.socket).unwrap();
    let _ = extra.write_all(&list_keys(1));
    assert!(closed(&mut extra));
    held[0].write_all(&list_keys(7)).unwrap();
    assert_eq!(read_response(&mut held[0]).unwrap().id(), 7);
    drop(held.pop());
    wait_until(|| {
        Client::connect(&d.socket)
            .and_then(|c| c.call("ListKeys", json!({}), None))
            .is_ok()
    });
}

#[test]
fn a_client_gone_with_requests_in_flight_loses_nothing() {
    let d = Daemon::start();
    let key = d.key_with(vec![]);
    d.sink.close();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let mut burst = Vec::new();
    for id in 1..=40u64 {
        burst.extend(
            Request {
                id,
                operation: "GenerateDataKey".into(),
                on_behalf_of: None,
                body: json!({"KeyId": key, "KeySpec": "AES_256"}),
            }
            .encode()
            .unwrap(),
        );
    }
    s.write_all(&burst).unwrap();
    // Calls are running (held at the audit sink) when the client vanishes.
    d.sink.wait_entered(2);
    drop(s);
    d.sink.open();
    wait_until(|| d.events_of("GenerateDataKey").len() == 40);
    assert!(
        d.events_of("GenerateDataKey")
            .iter()
            .all(|e| e.error_code.is_none())
    );
    still_serves(&d);
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let mut d = Daemon::start();
    let client = std::sync::Arc::new(Client::connect(&d.socket).unwrap());
    d.sink.close();
    let c = client.clone();
    let call = std::thread::spawn(move || c.call("ListKeys", json!({}), None));
    d.sink.wait_entered(1);
    d.begin_stop();
    // Stopped accepting while the call is held.
    wait_until(|| UnixStream::connect(&d.socket).is_err());
    assert!(!d.finished());
    d.sink.open();
    assert!(call.join().unwrap().is_ok());
    d.join();
    assert_eq!(d.events_of("ListKeys").len(), 1);
    let e = client.call("ListKeys", json!({}), None).unwrap_err();
    assert!(matches!(e, KmsError::Unavailable(_)), "{e:?}");
}

#[test]
fn an_idle_connection_is_closed_but_not_one_waiting_for_its_call() {
    let d = Daemon::start_with(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    let mut idle = UnixStream::connect(&d.socket).unwrap();
    // A call held (at the audit sink) for longer than the idle timeout.
    d.sink.close();
    let mut busy = UnixStream::connect(&d.socket).unwrap();
    busy.write_all(&list_keys(4)).unwrap();
    d.sink.wait_entered(1);
    // The idle one is closed by the server: end of file, not our timeout.
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(idle.read(&mut b).unwrap(), 0);
    // Well past the idle timeout, the waiting one still gets its answer.
    std::thread::sleep(Duration::from_millis(600));
    d.sink.open();
    busy.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(read_response(&mut busy).unwrap().id(), 4);
    still_serves(&d);
}

#[test]
fn a_client_reading_its_answers_late_gets_every_one_in_order() {
    // 3,000 GenerateRandom answers of 1 KiB (about 5 MB of frames) are far
    // more than a socket buffer holds: the server must wait for room to
    // write, stop reading meanwhile, and resume when the client reads.
    let d = Daemon::start();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let n = 3000u64;
    let mut burst = Vec::new();
    for id in 1..=n {
        burst.extend(
            Request {
                id,
                operation: "GenerateRandom".into(),
                on_behalf_of: None,
                body: json!({"NumberOfBytes": 1024}),
            }
            .encode()
            .unwrap(),
        );
    }
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&burst).unwrap());
    // Nothing read for a while: the server's writes block.
    std::thread::sleep(Duration::from_millis(500));
    still_serves(&d);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for id in 1..=n {
        match read_response(&mut s).unwrap() {
            Response::Ok { id: got, body } => {
                assert_eq!(got, id);
                assert_eq!(body["Plaintext"].as_str().unwrap().len(), 1368);
            }
            other => panic!("{other:?}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(d.events_of("GenerateRandom").len(), n as usize);
    still_serves(&d);
}
