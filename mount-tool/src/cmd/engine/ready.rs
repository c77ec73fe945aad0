//! Telling whoever started the daemon that it serves: `READY=1` written to
//! the descriptor `--ready-fd` names (how `--background` waits), and the
//! systemd notification protocol (`READY=1` / `STOPPING=1` as one datagram
//! to `$NOTIFY_SOCKET`, for `Type=notify` units). No crate needed.

use std::io::Write;
use std::os::unix::net::UnixDatagram;

/// The line written to the ready descriptor.
pub const READY_LINE: &str = "READY=1\n";

/// Announces readiness: on descriptor `fd` (reopened through /proc, so no
/// descriptor is adopted) and to systemd. Failures are logged, never fatal:
/// the daemon serves either way.
pub fn ready(fd: Option<i32>) {
    if let Some(fd) = fd {
        let path = format!("/proc/self/fd/{fd}");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(READY_LINE.as_bytes()));
        if let Err(e) = written {
            log::warn!("cannot write readiness to descriptor {fd}: {e}");
        }
    }
    sd_notify("READY=1");
}

/// Sends `state` to systemd when it asked for notifications
/// (`$NOTIFY_SOCKET`: a path, or `@name` in the abstract namespace).
pub fn sd_notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = notify_to(&target, state) {
        log::warn!("cannot notify systemd ({state}): {e}");
    }
}

/// Sends `state` as one datagram to `target` (a path, or `@name`).
fn notify_to(target: &std::ffi::OsStr, state: &str) -> std::io::Result<usize> {
    let sock = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target);
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        }
        None => sock.send_to(state.as_bytes(), target),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn notifies_path_and_abstract_sockets() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        use std::os::linux::net::SocketAddrExt;
        let name = format!("kmsfs-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abs = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
