//! Limits: body and header sizes, slow clients, the per-principal rate,
//! graceful shutdown.

use crate::common::*;
use kms_engine::service::http::{Limits, RateLimit};
use std::time::Duration;

#[test]
fn huge_bodies_are_refused_before_they_are_read() {
    let srv = Server::plain(Limits {
        max_body: 4096,
        ..Limits::default()
    });
    // Declared too large: refused at once, connection closed.
    let mut c = Conn::open(srv.addr());
    c.send_raw(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\n\
          Content-Type: application/x-amz-json-1.1\r\nContent-Length: 1000000000\r\n\r\n{",
    );
    let r = c.read_reply().unwrap();
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (413, "ValidationException")
    );
    assert_eq!(r.header("connection"), Some("close"));
    // Chunked, growing past the limit while read.
    let mut c = Conn::open(srv.addr());
    c.send_raw(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\n\
          Content-Type: application/x-amz-json-1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = format!("1000\r\n{}\r\n", " ".repeat(0x1000));
    c.send_raw(chunk.as_bytes());
    c.send_raw(chunk.as_bytes());
    let r = c.read_reply().unwrap();
    assert_eq!(r.status, 413);
    // A body just under the limit is fine.
    let mut c = Conn::open(srv.addr());
    let body = format!("{{\"Limit\":10{}}}", " ".repeat(3000));
    assert_eq!(c.call(ALICE_KEY, "ListKeys", &body).status, 200);
    assert!(srv.events().iter().all(|e| e.event_name == "ListKeys"));
}

#[test]
fn huge_headers_are_refused() {
    let srv = Server::plain(Limits::default());
    let mut c = Conn::open(srv.addr());
    let big = "a".repeat(64 << 10);
    c.send_raw(format!("POST / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.read_reply().unwrap();
    assert_eq!(r.status, 431);
}

#[test]
fn slow_clients_are_cut_off() {
    let srv = Server::plain(Limits {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    // Half a request head, then nothing (slowloris).
    let mut c = Conn::open(srv.addr());
    c.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar");
    let r = c.read_reply();
    assert!(r.as_ref().is_none_or(|r| r.status == 408), "{r:?}");
    // A head, then a body that never comes: 408 and close.
    let mut c = Conn::open(srv.addr());
    c.send_raw(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\n\
          Content-Type: application/x-amz-json-1.1\r\nContent-Length: 10\r\n\r\n{",
    );
    let r = c.read_reply().unwrap();
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (408, "RequestTimeoutException")
    );
    assert!(c.closed_by_server());
    // An idle keep-alive connection is closed too.
    let mut c = Conn::open(srv.addr());
    assert_eq!(c.call(ALICE_KEY, "ListKeys", "{}").status, 200);
    assert!(c.closed_by_server());
    // None of these ran an operation but the ListKeys.
    assert_eq!(srv.events().len(), 1);
}

#[test]
fn a_principal_over_its_rate_is_throttled_and_others_are_not() {
    // A burst of 3 and (practically) no refill: deterministic.
    let srv = Server::plain(Limits {
        rate: Some(RateLimit {
            per_second: 0.001,
            burst: 3,
        }),
        ..Limits::default()
    });
    let mut c = Conn::open(srv.addr());
    for _ in 0..3 {
        assert_eq!(c.call(ALICE_KEY, "ListKeys", "{}").status, 200);
    }
    let r = c.call(ALICE_KEY, "ListKeys", "{}");
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "ThrottlingException")
    );
    assert_eq!(r.header("x-amzn-errortype"), Some("ThrottlingException"));
    assert_eq!(c.call(BOB_KEY, "ListKeys", "{}").status, 200);
    // The throttled call ran nothing.
    assert_eq!(srv.events().len(), 4);
}

#[test]
fn shutdown_finishes_the_request_in_flight() {
    let mut srv = Server::plain(Limits::default());
    let addr = srv.addr();
    let mut busy = Conn::open(srv.addr());
    assert_eq!(busy.call(ALICE_KEY, "ListKeys", "{}").status, 200);
    // Half a request is in flight when the server is told to stop.
    let req = kms_request(ALICE_KEY, "CreateKey", r#"{"Description":"late"}"#);
    let (head, tail) = req.split_at(req.len() - 5);
    busy.send_raw(head);
    std::thread::sleep(Duration::from_millis(100));
    let running = srv.running.take().unwrap();
    let stopper = std::thread::spawn(move || running.stop());
    std::thread::sleep(Duration::from_millis(100));
    busy.send_raw(tail);
    let r = busy.read_reply().unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(busy.closed_by_server());
    stopper.join().unwrap().unwrap();
    // New connections are refused once it stopped.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
