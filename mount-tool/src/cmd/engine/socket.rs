//! The daemon's Unix socket on disk: where it goes by default, its
//! directory made safely, a stale socket of a dead daemon replaced and a
//! live one refused, and its mode and group set before anyone can connect.

use crate::exit::CliError;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket directory's permissions when this command creates it: others
/// may reach the socket inside; the socket's own mode decides who connects.
const DIR_MODE: u32 = 0o755;

/// `/run/kmsfs/engine.sock` for root, else
/// `$XDG_RUNTIME_DIR/kmsfs/engine.sock`.
pub fn default_path() -> Result<PathBuf, CliError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/run/kmsfs/engine.sock"));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => Ok(d.join("kmsfs").join("engine.sock")),
        _ => Err(CliError::Usage(
            "no socket path: XDG_RUNTIME_DIR is not set; pass --socket PATH".into(),
        )),
    }
}

/// Makes the socket's directory when missing (mode 0755, with its
/// parents), and refuses one that someone else could replace the socket
/// in: owned by another user than this one or root, or writable by group
/// or others without the sticky bit. Returns whether the directory is this
/// user's own.
pub fn prepare_dir(socket: &Path) -> Result<bool, CliError> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| CliError::Usage(format!("--socket {}: not a path", socket.display())))?;
    let io = |e| CliError::io(format!("socket directory {}", dir.display()), e);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(io)?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let me = nix::unistd::geteuid().as_raw();
    let mode = meta.permissions().mode();
    let shared_writable = mode & 0o022 != 0 && mode & 0o1000 == 0;
    if !meta.is_dir() || (meta.uid() != me && meta.uid() != 0) || shared_writable {
        return Err(CliError::Usage(format!(
            "socket directory {} must be a directory owned by this user or root and not \
             writable by others (it is mode {:o}, owner uid {})",
            dir.display(),
            mode & 0o7777,
            meta.uid()
        )));
    }
    Ok(meta.uid() == me)
}

/// When the socket's mode lets group or others connect but its directory
/// (ours) does not let them reach it (a 0700 directory made by a mount's
/// status files), lets them pass through it: search permission only, the
/// directory stays unlistable. Someone else's directory is only warned about.
pub fn open_dir_to(socket: &Path, socket_mode: u32, ours: bool) -> Result<(), CliError> {
    let Some(dir) = socket.parent() else {
        return Ok(());
    };
    let meta = std::fs::metadata(dir)
        .map_err(|e| CliError::io(format!("socket directory {}", dir.display()), e))?;
    let mode = meta.permissions().mode() & 0o7777;
    // Search bits for the classes the socket admits (its write bit).
    let need = ((socket_mode & 0o020) >> 1) | ((socket_mode & 0o002) >> 1);
    if mode & need == need {
        return Ok(());
    }
    if !ours {
        eprintln!(
            "kmsfs: warning: socket directory {} is mode {mode:o}: users the socket mode \
             {socket_mode:o} admits cannot reach the socket",
            dir.display()
        );
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | need))
        .map_err(|e| CliError::io(format!("socket directory {}", dir.display()), e))
}

/// Binds the socket at `path` with `mode` and, when given, `gid`. A socket
/// left by a dead daemon (nothing accepts on it) is replaced; a live one,
/// or anything that is not a socket, is refused.
pub fn bind(path: &Path, mode: u32, gid: Option<u32>) -> Result<UnixListener, CliError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(CliError::Usage(format!(
                    "an engine daemon already listens on {}: stop it first, or pass \
                     another --socket",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(|e| {
                CliError::io(format!("removing stale socket {}", path.display()), e)
            })?;
        }
        Ok(_) => {
            return Err(CliError::Usage(format!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io(path.display().to_string(), e)),
    }
    // Nobody may connect before the mode and group are set: bind with
    // owner-only bits, then widen.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| CliError::io(format!("binding {}", path.display()), e))?;
    let set = || -> std::io::Result<()> {
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    };
    set().map_err(|e| CliError::io(format!("setting the mode of {}", path.display()), e))?;
    Ok(listener)
}

/// `--socket-mode`: octal permission bits, e.g. 0660.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode like 0660"))?;
    if m > 0o777 {
        return Err(format!("{s:?}: a socket mode is at most 0777"));
    }
    Ok(m)
}

/// `--socket-group`: a group name or a numeric gid.
pub fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group named {s:?}")),
        Err(e) => Err(format!("looking up group {s:?}: {e}")),
    }
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// A listening socket systemd passed to this process (socket activation,
/// `sd_listen_fds(3)`): `LISTEN_PID` names this process and `LISTEN_FDS`
/// is 1, the descriptor a listening Unix stream socket. Returns it with
/// its path, or `None` when the process was not socket-activated (the
/// daemon starts no other program, so the variables need no removing).
/// More than one socket, or one of another kind (the HTTPS endpoint binds its
/// own address with `--http`), is refused.
#[allow(unsafe_code)] // adopting descriptor 3, below
pub fn activated() -> Result<Option<(UnixListener, PathBuf)>, CliError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None); // meant for another process (a parent's leftover)
    }
    let refuse = |why: String| {
        CliError::Usage(format!(
            "socket activation: {why}; the engine takes one listening Unix stream socket \
             (ListenStream=/path in the .socket unit)"
        ))
    };
    match fds.trim().parse::<i32>() {
        Ok(1) => {}
        Ok(0) => return Ok(None),
        _ => return Err(refuse(format!("LISTEN_FDS={fds}"))),
    }
    // SAFETY: systemd passed descriptor 3 to this process for it to own;
    // nothing else in this process has taken it.
    let fd =
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(LISTEN_FDS_START) };
    let io = |e: rustix::io::Errno| refuse(format!("descriptor 3: {e}"));
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).map_err(io)?;
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let listening_unix_stream = || -> rustix::io::Result<bool> {
        Ok(sockopt::socket_domain(&fd)? == AddressFamily::UNIX
            && sockopt::socket_type(&fd)? == SocketType::STREAM
            && sockopt::socket_acceptconn(&fd)?)
    };
    if !listening_unix_stream().unwrap_or(false) {
        return Err(refuse(
            "descriptor 3 is not a listening Unix stream socket".into(),
        ));
    }
    let addr = rustix::net::getsockname(&fd).map_err(io)?;
    let path = rustix::net::SocketAddrUnix::try_from(addr)
        .ok()
        .and_then(|a| {
            a.path_bytes()
                .map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(b)))
        })
        .filter(|p| p.is_absolute())
        .ok_or_else(|| refuse("the socket has no absolute path (abstract socket?)".into()))?;
    Ok(Some((UnixListener::from(fd), path)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modes_and_groups() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("666").unwrap(), 0o666);
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("01777").is_err());
        assert_eq!(parse_group("0").unwrap(), 0);
        assert_eq!(parse_group("root").unwrap(), 0);
        assert!(parse_group("no-such-group-here").is_err());
    }

    #[test]
    fn stale_sockets_are_replaced_and_live_ones_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run/engine.sock");
        prepare_dir(&path).unwrap();
        let live = bind(&path, 0o600, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = bind(&path, 0o600, None).unwrap_err();
        assert!(e.to_string().contains("already listens"), "{e}");
        drop(live);
        // The socket file stays behind a dead listener: replaced.
        assert!(path.exists());
        let _again = bind(&path, 0o666, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        let plain = tmp.path().join("run/file");
        std::fs::write(&plain, b"").unwrap();
        assert!(bind(&plain, 0o600, None).is_err());
    }

    #[test]
    fn a_private_directory_of_ours_is_opened_for_search_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let sock = dir.join("engine.sock");
        open_dir_to(&sock, 0o600, true).unwrap();
        let mode = |d: &Path| std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        open_dir_to(&sock, 0o660, true).unwrap();
        assert_eq!(mode(&dir), 0o710);
        open_dir_to(&sock, 0o666, true).unwrap();
        assert_eq!(mode(&dir), 0o711);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("open");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(prepare_dir(&dir.join("s.sock")).is_err());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_dir(&dir.join("s.sock")).unwrap();
    }
}
