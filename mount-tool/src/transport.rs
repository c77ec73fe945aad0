//! Which engine a command talks to, from one setting: `--kms URL` or
//! `KMSFS_KMS` (`unix:///path/to/engine.sock`: an engine daemon, `kmsfs
//! engine serve`; `aws://[REGION/]KEY` or `https://ENDPOINT/KEY`: AWS KMS or
//! a compatible service, for a volume's data keys), else the embedded store
//! the engine arguments name. Every command reaches the engine through the
//! [`Transport`] this returns, so its output is the same whichever engine
//! answers.

use crate::cli::EngineArgs;
use crate::engine_access;
use crate::exit::CliError;
use kms_engine::service::{Client, Transport};
use kmsfs::keys::KeyService;
use kmsfs::keys::aws::{AwsKeys, AwsLimits, AwsTarget, ProfileMap};
use kmsfs::keys::remote::TransportKeys;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsUrl {
    /// An engine daemon's Unix socket.
    Unix(PathBuf),
    /// A key on AWS KMS or an AWS-KMS-compatible service (data keys only).
    Aws(AwsTarget),
}

impl KmsUrl {
    /// Parses `unix:///absolute/path`, `aws://[REGION/]KEY` (KEY: a key id,
    /// key ARN or alias) or `https://HOST[:PORT]/KEY` (`http://` only on a
    /// loopback address: nothing else may see data keys in the clear).
    pub fn parse(s: &str) -> Result<KmsUrl, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            return if path.starts_with('/') {
                Ok(KmsUrl::Unix(PathBuf::from(path)))
            } else {
                Err(format!(
                    "{s:?}: a unix URL names an absolute socket path: unix:///run/kmsfs/engine.sock"
                ))
            };
        }
        if let Some(rest) = s.strip_prefix("aws://") {
            return parse_aws(s, rest);
        }
        for scheme in ["https://", "http://"] {
            if let Some(rest) = s.strip_prefix(scheme) {
                return parse_endpoint(s, scheme, rest);
            }
        }
        Err(format!(
            "{s:?}: unknown engine URL; use unix:///path/to/engine.sock (an engine daemon), \
             aws://[REGION/]KEY (AWS KMS), https://ENDPOINT/KEY (an AWS-KMS-compatible \
             service), or leave --kms and KMSFS_KMS unset for the embedded store"
        ))
    }
}

fn parse_aws(s: &str, rest: &str) -> Result<KmsUrl, String> {
    let (region, key) = if rest.starts_with("arn:") || rest.starts_with("alias/") {
        (None, rest)
    } else {
        match rest.split_once('/') {
            Some((region, key)) => (Some(region), key),
            None => (None, rest),
        }
    };
    if let Some(r) = region
        && (r.is_empty()
            || !r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(format!(
            "{s:?}: {r:?} is not an AWS region (like eu-west-1)"
        ));
    }
    if key.is_empty() {
        return Err(format!(
            "{s:?}: name the key: aws://[REGION/]KEY with a key id, key ARN or alias/NAME"
        ));
    }
    Ok(KmsUrl::Aws(AwsTarget {
        region: region.map(str::to_string),
        endpoint: None,
        key: key.to_string(),
    }))
}

fn parse_endpoint(s: &str, scheme: &str, rest: &str) -> Result<KmsUrl, String> {
    let Some((host, key)) = rest
        .split_once('/')
        .filter(|(h, k)| !h.is_empty() && !k.is_empty())
    else {
        return Err(format!(
            "{s:?}: name the service and the key: {scheme}HOST[:PORT]/KEY"
        ));
    };
    if scheme == "http://" && !is_loopback(host) {
        return Err(format!(
            "{s:?}: plain http is refused except on a loopback address (data keys would \
             cross the network in the clear); use https://"
        ));
    }
    Ok(KmsUrl::Aws(AwsTarget {
        region: None,
        endpoint: Some(format!("{scheme}{host}")),
        key: key.to_string(),
    }))
}

/// Whether `host[:port]` is a loopback address or `localhost`.
fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Display for KmsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KmsUrl::Unix(p) => write!(f, "unix://{}", p.display()),
            KmsUrl::Aws(AwsTarget {
                endpoint: Some(e),
                key,
                ..
            }) => write!(f, "{e}/{key}"),
            KmsUrl::Aws(AwsTarget {
                region: Some(r),
                key,
                ..
            }) => write!(f, "aws://{r}/{key}"),
            KmsUrl::Aws(AwsTarget { key, .. }) => write!(f, "aws://{key}"),
        }
    }
}

/// The filesystem's key service at `url`: the daemon's client, or an AWS
/// KMS client whose key is resolved to its ARN (one DescribeKey).
pub fn key_service(url: &KmsUrl) -> Result<Arc<dyn KeyService>, CliError> {
    match url {
        KmsUrl::Unix(_) => Ok(Arc::new(TransportKeys::new(connect(url)?))),
        KmsUrl::Aws(target) => Ok(Arc::new(aws_keys(url, target)?)),
    }
}

/// [`key_service`] for a mount: on an AWS KMS service, the calls of the
/// uids in `profiles` go out with their own profile's credentials.
pub fn mount_key_service(
    url: &KmsUrl,
    profiles: &ProfileMap,
    limits: AwsLimits,
) -> Result<Arc<dyn KeyService>, CliError> {
    match url {
        KmsUrl::Aws(target) => Ok(Arc::new(aws_keys_with(url, target, profiles, limits)?)),
        KmsUrl::Unix(_) if !profiles.is_empty() => Err(CliError::Usage(
            "--aws-profile-map is for a volume on an AWS KMS service; the engine daemon \
             knows each caller by its uid already"
                .into(),
        )),
        KmsUrl::Unix(_) => key_service(url),
    }
}

/// An AWS KMS client for `target`, its key resolved to its ARN.
pub fn aws_keys(url: &KmsUrl, target: &AwsTarget) -> Result<AwsKeys, CliError> {
    aws_keys_with(url, target, &ProfileMap::new(), AwsLimits::default())
}

fn aws_keys_with(
    url: &KmsUrl,
    target: &AwsTarget,
    profiles: &ProfileMap,
    limits: AwsLimits,
) -> Result<AwsKeys, CliError> {
    AwsKeys::connect_with_profiles(target, limits, profiles).map_err(|e| match e {
        kms_engine::KmsError::Unavailable(reason) => CliError::Unreachable {
            url: url.to_string(),
            reason,
        },
        other => CliError::Kms(other),
    })
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
        KmsUrl::Aws(_) => Err(CliError::Usage(format!(
            "{url} is a key on an AWS KMS service: kmsfs uses it for a volume's data keys \
             (init, mount, fsck, upgrade-config); manage its keys with the service's own \
             tools (the aws CLI)"
        ))),
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

/// The filesystem's key service the arguments pick (the embedded store
/// must exist).
pub fn open_key_service(args: &EngineArgs) -> Result<Arc<dyn KeyService>, CliError> {
    match &args.kms {
        Some(url) => key_service(url),
        None => Ok(open_keys(args)?.1),
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

/// The arguments for a command on the volume in `cipherdir`: as given
/// when they name an engine (`--kms`/`KMSFS_KMS`), else with the engine
/// daemon the volume records (`kmsfs.conf` field `kms`, written by `kmsfs
/// --kms URL init`) when there is one, else as given (the embedded store).
/// A recorded socket is followed only when it and its directory belong to
/// root or this user and nobody else can write the directory: a config
/// edited to name someone else's socket would hand them the data keys the
/// mount asks for (the config digest cannot catch that: the engine it
/// names is the one that checks it).
pub fn with_volume_engine(args: &EngineArgs, cipherdir: &Path) -> Result<EngineArgs, CliError> {
    if args.kms.is_some() {
        return Ok(args.clone());
    }
    let Some(recorded) = kmsfs::volume::read_config(cipherdir)
        .ok()
        .and_then(|c| c.kms)
    else {
        return Ok(args.clone());
    };
    let url = KmsUrl::parse(&recorded).map_err(|e| {
        CliError::Usage(format!(
            "{}/kmsfs.conf names engine {e}",
            cipherdir.display()
        ))
    })?;
    // An AWS URL is followed as recorded: the service authenticates
    // itself (TLS, or a loopback address), and it is the volume's own key
    // that decides what it answers.
    if let KmsUrl::Unix(socket) = &url {
        check_trusted_socket(socket).map_err(|why| {
            CliError::Usage(format!(
                "{}/kmsfs.conf names engine {url}, which is not followed: {why}; pass --kms to \
             name the engine",
                cipherdir.display()
            ))
        })?;
    }
    Ok(EngineArgs {
        kms: Some(url),
        ..args.clone()
    })
}

/// Whether `socket` and its directory belong to root or this user, and no
/// one else can write the directory (a sticky one aside).
fn check_trusted_socket(socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let owned = |m: &std::fs::Metadata| m.uid() == 0 || m.uid() == me;
    let s = std::fs::symlink_metadata(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    if !owned(&s) {
        return Err(format!("{} belongs to uid {}", socket.display(), s.uid()));
    }
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let d = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mode = d.mode();
    if !owned(&d) || (mode & 0o022 != 0 && mode & 0o1000 == 0) {
        return Err(format!(
            "its directory {} (uid {}, mode {:o}) could be written by others",
            dir.display(),
            d.uid(),
            mode & 0o7777
        ));
    }
    Ok(())
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
    fn a_recorded_socket_is_followed_only_when_nobody_else_controls_it() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        let sock = dir.join("engine.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        check_trusted_socket(&sock).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        // Another user's socket (only root can hand one over to test it).
        if me == 0 {
            std::os::unix::fs::chown(&sock, Some(4242), None).unwrap();
            let e = check_trusted_socket(&sock).unwrap_err();
            assert!(e.contains("uid 4242"), "{e}");
            std::os::unix::fs::chown(&sock, Some(0), None).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_trusted_socket(&sock).unwrap_err();
        assert!(e.contains("written by others"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_trusted_socket(&sock).unwrap();
        assert!(check_trusted_socket(&dir.join("missing.sock")).is_err());
    }

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
        assert!(KmsUrl::parse("https://kms.example/").is_err());
        assert!(KmsUrl::parse("/run/x.sock").is_err());
        assert!(KmsUrl::parse("aws://").is_err());
        assert!(KmsUrl::parse("aws://EU WEST/k").is_err());
        assert!(KmsUrl::parse("http://kms.example/k").is_err());
        assert!(KmsUrl::parse("http://10.0.0.1:4566/k").is_err());
        let aws = |region: Option<&str>, endpoint: Option<&str>, key: &str| {
            KmsUrl::Aws(AwsTarget {
                region: region.map(str::to_string),
                endpoint: endpoint.map(str::to_string),
                key: key.to_string(),
            })
        };
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        for (url, want) in [
            (
                "aws://eu-west-1/1234abcd",
                aws(Some("eu-west-1"), None, "1234abcd"),
            ),
            ("aws://1234abcd", aws(None, None, "1234abcd")),
            ("aws://alias/vol", aws(None, None, "alias/vol")),
            (
                "aws://us-east-2/alias/vol",
                aws(Some("us-east-2"), None, "alias/vol"),
            ),
            (&format!("aws://{arn}"), aws(None, None, arn)),
            (
                &format!("aws://eu-west-1/{arn}"),
                aws(Some("eu-west-1"), None, arn),
            ),
            (
                "https://kms.example:8443/alias/vol",
                aws(None, Some("https://kms.example:8443"), "alias/vol"),
            ),
            (
                "http://127.0.0.1:5000/k",
                aws(None, Some("http://127.0.0.1:5000"), "k"),
            ),
            (
                "http://[::1]:5000/k",
                aws(None, Some("http://[::1]:5000"), "k"),
            ),
            (
                "http://localhost/k",
                aws(None, Some("http://localhost"), "k"),
            ),
        ] {
            let got = KmsUrl::parse(url).unwrap();
            assert_eq!(got, want, "{url}");
            assert_eq!(got.to_string(), url, "{url}");
        }
    }
}
