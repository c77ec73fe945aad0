//! Which engine a command talks to, from one setting: `--kms URL` or
//! `KMSFS_KMS` (`unix:///path/to/engine.sock`: an engine daemon, `kmsfs
//! engine serve`), else the embedded store the engine arguments name. Every
//! command reaches the engine through the [`Transport`] this returns, so
//! its output is the same whichever engine answers.

use crate::cli::EngineArgs;
use crate::engine_access;
use crate::exit::CliError;
use kms_engine::service::{Client, Transport};
use kmsfs::keys::KeyService;
use kmsfs::keys::remote::TransportKeys;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsUrl {
    /// An engine daemon's Unix socket.
    Unix(PathBuf),
}

impl KmsUrl {
    /// Parses `unix:///absolute/path` (the only scheme so far).
    pub fn parse(s: &str) -> Result<KmsUrl, String> {
        match s.strip_prefix("unix://") {
            Some(path) if path.starts_with('/') => Ok(KmsUrl::Unix(PathBuf::from(path))),
            Some(_) => Err(format!(
                "{s:?}: a unix URL names an absolute socket path: unix:///run/kmsfs/engine.sock"
            )),
            None => Err(format!(
                "{s:?}: unknown engine URL; use unix:///path/to/engine.sock (an engine daemon), \
                 or leave --kms and KMSFS_KMS unset for the embedded store"
            )),
        }
    }
}

impl std::fmt::Display for KmsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KmsUrl::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Connects to the daemon at `url`. Fails with the URL named when it
/// cannot be reached. The client connects again by itself after its
/// connection broke (a daemon restarted under a mount).
pub fn connect(url: &KmsUrl) -> Result<Arc<dyn Transport>, CliError> {
    match url {
        KmsUrl::Unix(path) => {
            let client = Client::connect(path).map_err(|e| CliError::Unreachable {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            Ok(Arc::new(client))
        }
    }
}

/// The engine the arguments pick: the daemon `--kms`/`KMSFS_KMS` names,
/// else the embedded store (opened, asking for its passphrase if needed).
pub fn open(args: &EngineArgs) -> Result<Arc<dyn Transport>, CliError> {
    match &args.kms {
        Some(url) => connect(url),
        None => Ok(engine_access::open_engine(args)?),
    }
}

/// The engine the arguments pick, as a transport (for key management
/// calls) and as the filesystem's key service (for data keys): the daemon's
/// client for both, or the embedded engine, typed, for both.
pub type Keys = (Arc<dyn Transport>, Arc<dyn KeyService>);

/// [`Keys`] of the engine the arguments pick; the embedded store must exist.
pub fn open_keys(args: &EngineArgs) -> Result<Keys, CliError> {
    match &args.kms {
        Some(url) => Ok(daemon_keys(connect(url)?)),
        None => {
            let engine = engine_access::open_engine(args)?;
            Ok((engine.clone(), Arc::new(engine)))
        }
    }
}

/// [`open_keys`], creating the embedded store when there is none.
pub fn open_or_create_keys(args: &EngineArgs) -> Result<Keys, CliError> {
    match &args.kms {
        Some(url) => Ok(daemon_keys(connect(url)?)),
        None => {
            let (engine, _secret) =
                engine_access::open_or_create(args, engine_access::KdfChoice::default())?;
            Ok((engine.clone(), Arc::new(engine)))
        }
    }
}

fn daemon_keys(kms: Arc<dyn Transport>) -> Keys {
    let keys = TransportKeys::new(kms.clone());
    (kms, Arc::new(keys))
}

/// Refuses a command that works on the store itself (creating it,
/// changing its root key) when a daemon is named.
pub fn require_embedded(args: &EngineArgs, what: &str) -> Result<(), CliError> {
    match &args.kms {
        Some(url) => Err(CliError::Usage(format!(
            "{what} works on the engine store itself, not through an engine daemon \
             (--kms/KMSFS_KMS is {url}): run it on the engine host without --kms, \
             with the daemon stopped"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            KmsUrl::parse("unix:///run/kmsfs/engine.sock").unwrap(),
            KmsUrl::Unix("/run/kmsfs/engine.sock".into())
        );
        assert_eq!(
            KmsUrl::parse("unix:///a b").unwrap().to_string(),
            "unix:///a b"
        );
        assert!(KmsUrl::parse("unix://relative").is_err());
        assert!(KmsUrl::parse("https://kms.example").is_err());
        assert!(KmsUrl::parse("/run/x.sock").is_err());
    }
}
