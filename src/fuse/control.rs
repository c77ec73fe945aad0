//! The mount's control socket: how `kmsfs rewrap` works on a mounted
//! volume. The socket lives next to the mount's status file in its private
//! runtime directory (mode 0700, the socket 0600), so only the user who
//! mounted (and root) can connect. A client sends one JSON line, a
//! [`Request`]; the mount process runs the job itself and answers with JSON
//! lines: [`Reply::Progress`] while it runs, then [`Reply::Done`] or
//! [`Reply::Error`].
//!
//! The mount re-wraps with its own key service, writing each batch's
//! headers while it holds its path lock exclusively (as a rename does), so
//! no rename re-wraps the same file meanwhile; open files keep the data key
//! they hold (it does not change) and new opens unwrap the new header. A
//! file renamed or converted between the read of its header and the write
//! is left for the next pass: up to [`MAX_PASSES`] passes run until one
//! changes nothing. One job at a time; a job goes on when its client goes
//! away (run the command again to see it finish).

use super::Core;
use crate::keys::KeyService;
use crate::rewrap::{self, Progress, RunOptions, Summary};
use crate::volume::Volume;
use kms_engine::Principal;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Passes of an online rewrap at most (each after the first only finds
/// files that moved or changed during the one before).
pub const MAX_PASSES: usize = 3;

/// Set when a job changed headers: the mount's count of files by key
/// version (`kmsfs status`) is then due again.
static RECOUNT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether the files should be counted by key version again (clears the
/// flag): after a job, and once at mount.
pub fn recount_due() -> bool {
    RECOUNT.swap(false, std::sync::atomic::Ordering::Relaxed)
}

/// The control socket of the mount at `mountpoint`.
pub fn control_socket_for(mountpoint: &Path) -> PathBuf {
    super::status::status_file_for(mountpoint).with_extension("ctl")
}

/// What a client asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Every file's data key re-wrapped under the newest version of the
    /// volume's key.
    Rewrap { threads: usize, batch: usize },
}

/// One line of the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Progress(Progress),
    Done(Summary),
    Error(String),
}

/// Serves the control socket at `path` for `core` on a thread of its own.
pub fn serve(core: Arc<Core>, path: &Path) -> std::io::Result<()> {
    let (dir, _) = super::status::open_runtime_dir(path)?;
    drop(dir);
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let busy = Arc::new(Mutex::new(()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (core, busy) = (core.clone(), busy.clone());
            std::thread::spawn(move || handle(&core, &busy, stream));
        }
    });
    Ok(())
}

fn send(stream: &mut UnixStream, reply: &Reply) -> bool {
    let mut line = serde_json::to_vec(reply).unwrap_or_default();
    line.push(b'\n');
    stream.write_all(&line).is_ok()
}

fn handle(core: &Core, busy: &Mutex<()>, stream: UnixStream) {
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take_limited());
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(r) => r,
        Err(e) => {
            send(&mut out, &Reply::Error(format!("bad request: {e}")));
            return;
        }
    };
    let Ok(_job) = busy.try_lock() else {
        send(
            &mut out,
            &Reply::Error("another job is running on this mount".into()),
        );
        return;
    };
    let Request::Rewrap { threads, batch } = request;
    let opts = RunOptions { threads, batch };
    let mut connected = true;
    let result = core.rewrap_online(opts, &mut |p| {
        connected = connected && send(&mut out, &Reply::Progress(*p));
    });
    RECOUNT.store(true, std::sync::atomic::Ordering::Relaxed);
    let reply = match result {
        Ok(s) => Reply::Done(s),
        Err(e) => Reply::Error(e),
    };
    send(&mut out, &reply);
}

/// A request is one short line.
trait TakeLimited {
    fn take_limited(self) -> std::io::Take<UnixStream>;
}

impl TakeLimited for UnixStream {
    fn take_limited(self) -> std::io::Take<UnixStream> {
        std::io::Read::take(self, 4096)
    }
}

impl Core {
    /// Counts the volume's files by key version (headers only; see
    /// [`rewrap::files_by_version`]).
    pub fn key_versions(&self) -> Vec<rewrap::VersionFiles> {
        rewrap::files_by_version(&self.vol.root)
    }

    /// Re-wraps every file of the mounted volume (see the module docs).
    pub fn rewrap_online(
        &self,
        opts: RunOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Summary, String> {
        if self.opts.read_only {
            return Err("the volume is mounted read-only".into());
        }
        let caller = Principal::current_process();
        let keys: &dyn KeyService = &*self.keys;
        // A rotation made by another process just before must count.
        keys.refresh().map_err(|e| e.to_string())?;
        // The names key: a second handle on the volume writes the config
        // (the mount's own copy of it is read only when it opens).
        let mut v = Volume::open(&self.vol.root, keys, &caller).map_err(|e| e.to_string())?;
        v.rewrap_names_key(keys, &caller)
            .map_err(|e| e.to_string())?;
        let dest = v.bound_key_id().to_string();
        let target =
            rewrap::blob_key_version(&v.config.wrapped_names_key).filter(|kv| kv.key_id == dest);
        let job = rewrap::Rewrap {
            keys,
            caller: &caller,
            volume_id: self.vol.config.volume_id.clone(),
            dest_key: dest.clone(),
            target: target.clone(),
        };
        let root = self.vol.root.as_path();
        let mut changed = 0;
        let mut last = Summary::default();
        for _ in 0..MAX_PASSES {
            let listing = rewrap::walk(&self.vol, None);
            let mut s = rewrap::run(root, &listing.files, &job, opts, progress, &|| {
                self.paths_exclusive().ok()
            })
            .map_err(|e| e.to_string())?;
            changed += s.changed;
            s.skipped += listing.problems.len() as u64;
            s.problems.splice(0..0, listing.problems);
            let again = s.changed > 0 && s.retryable > 0;
            last = s;
            if !again {
                break;
            }
        }
        last.changed = changed;
        last.current = last
            .files
            .saturating_sub(last.skipped)
            .saturating_sub(changed);
        last.key_id = dest;
        last.key_version = target.map(|t| t.version);
        Ok(last)
    }
}
