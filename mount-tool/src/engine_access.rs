//! Opening or creating the embedded engine from the global `EngineArgs`:
//! where the store lives, where the root key comes from (key file,
//! passphrase file or terminal prompt), and the file audit trail in
//! `<engine dir>/audit` every engine call is recorded in. The one place the
//! CLI opens or creates an engine. Every process that opens the store
//! holds it ([`kms_engine::store::holder`]): shared when embedded,
//! exclusive for the engine daemon, until the process exits.

use crate::cli::EngineArgs;
use crate::exit::CliError;
use kms_engine::audit::digest::SigningKey;
use kms_engine::audit::{DeferredTrail, PublicKey, TrailOptions};
use kms_engine::store::holder::{self, HoldKind, StoreHold};
use kms_engine::{AnchorCheck, Engine, KdfParams, KmsError, Principal, RootKeySource, SystemClock};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Argon2id cost chosen on the command line; `None` keeps the engine default.
#[derive(Debug, Clone, Copy, Default)]
pub struct KdfChoice {
    pub memory_kib: Option<u32>,
    pub iterations: Option<u32>,
}

impl KdfChoice {
    /// The Argon2id parameters: the engine default with the given costs.
    pub fn params(self) -> KdfParams {
        let mut params = KdfParams::default();
        if let Some(m) = self.memory_kib {
            params.m_cost_kib = m;
        }
        if let Some(t) = self.iterations {
            params.t_cost = t;
        }
        params
    }

    /// Whether any cost was given (meaningless with a key file).
    pub fn is_set(self) -> bool {
        self.memory_kib.is_some() || self.iterations.is_some()
    }
}

/// What `create` made.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    /// `"passphrase"` or `"key-file"`.
    pub root_kind: &'static str,
    /// The new engine, auditing to `<dir>/audit`.
    pub engine: Arc<Engine>,
}

/// `<engine dir>/audit`: where the engine's audit trail lives.
pub fn audit_dir_of(engine_dir: &Path) -> PathBuf {
    engine_dir.join("audit")
}

/// Opens the existing store the arguments name. Fails with `EngineNotFound`
/// before asking for any passphrase when there is no store.
pub fn open_engine(args: &EngineArgs) -> Result<Arc<Engine>, CliError> {
    let dir = engine_dir(args)?;
    if !store_exists(&dir)? {
        return Err(CliError::EngineNotFound(dir));
    }
    let secret = root_secret(args, Purpose::Open)?;
    open_with(&dir, secret, args.accept_store_rollback)
}

/// Opens the store the arguments name, or creates it (cost `kdf`) when
/// there is none — asking for a new passphrase twice on a terminal. Returns
/// the secret too, for a background mount process.
pub fn open_or_create(
    args: &EngineArgs,
    kdf: KdfChoice,
) -> Result<(Arc<Engine>, RootSecret), CliError> {
    let dir = engine_dir(args)?;
    if store_exists(&dir)? {
        let secret = root_secret(args, Purpose::Open)?;
        let engine = open_with(&dir, secret.clone(), args.accept_store_rollback)?;
        Ok((engine, secret))
    } else {
        let secret = root_secret(args, Purpose::Create)?;
        let created = create_with(&dir, secret.clone(), kdf)?;
        eprintln!("kmsfs: created the engine store in {}", dir.display());
        Ok((created.engine, secret))
    }
}

/// Opens the store in `dir` with `secret`, auditing every call to
/// `<dir>/audit`. Fails when the trail cannot be opened for writing: no
/// key is used unaudited; and when the store is older than the generation
/// the trail anchors, unless `accept_rollback` (`--accept-store-rollback`).
pub fn open_with(
    dir: &Path,
    secret: RootSecret,
    accept_rollback: bool,
) -> Result<Arc<Engine>, CliError> {
    open_with_trail(dir, secret, TrailOptions::default(), accept_rollback)
}

/// [`open_with`] with the audit trail tuned by `trail` (the mount's
/// `--audit-flush-ms`).
pub fn open_with_trail(
    dir: &Path,
    secret: RootSecret,
    trail: TrailOptions,
    accept_rollback: bool,
) -> Result<Arc<Engine>, CliError> {
    open_held(dir, secret, trail, accept_rollback, HoldKind::Shared)
}

/// [`open_with_trail`], holding the store as `kind`: shared for an
/// embedded user, exclusive for the engine daemon. The hold is taken
/// before the store is unsealed, so a refused process spends no Argon2id.
pub fn open_held(
    dir: &Path,
    secret: RootSecret,
    trail: TrailOptions,
    accept_rollback: bool,
    kind: HoldKind,
) -> Result<Arc<Engine>, CliError> {
    hold_store(dir, kind)?;
    let sink = Arc::new(DeferredTrail::new(audit_dir_of(dir), trail));
    let engine = Engine::open(
        dir,
        secret.into_source(),
        Arc::new(SystemClock),
        sink.clone(),
    )?;
    attach(&sink, &engine, dir, accept_rollback)?;
    Ok(Arc::new(engine))
}

/// Creates a store where the arguments say (the engine makes the directory,
/// mode 0700); refuses a non-empty directory.
pub fn create(args: &EngineArgs, kdf: KdfChoice) -> Result<Created, CliError> {
    let dir = engine_dir(args)?;
    if dir_has_entries(&dir)? {
        return Err(CliError::EngineExists(dir));
    }
    let secret = root_secret(args, Purpose::Create)?;
    create_with(&dir, secret, kdf)
}

/// Creates a store in `dir` sealed under `secret`, auditing to `<dir>/audit`.
pub fn create_with(dir: &Path, secret: RootSecret, kdf: KdfChoice) -> Result<Created, CliError> {
    create_with_trail(dir, secret, kdf, TrailOptions::default())
}

/// [`create_with`] with the audit trail tuned by `trail`.
pub fn create_with_trail(
    dir: &Path,
    secret: RootSecret,
    kdf: KdfChoice,
    trail: TrailOptions,
) -> Result<Created, CliError> {
    let root_kind = match secret {
        RootSecret::Passphrase(_) => "passphrase",
        RootSecret::Key(_) => "key-file",
    };
    let sink = Arc::new(DeferredTrail::new(audit_dir_of(dir), trail));
    let engine = Engine::create(
        dir,
        secret.into_source(),
        kdf.params(),
        Arc::new(SystemClock),
        sink.clone(),
    )?;
    hold_store(dir, HoldKind::Shared)?;
    attach(&sink, &engine, dir, false)?;
    Ok(Created {
        dir: dir.to_path_buf(),
        root_kind,
        engine: Arc::new(engine),
    })
}

/// Opens the trail with the engine's sealed signing seed (Engine::open and
/// Engine::create record nothing, so no call can have been refused before),
/// then checks the store against the newest generation the trail's signed
/// digests anchor: an older store is refused, or with `accept_rollback`
/// written again past it (audited as AcceptStoreRollback).
fn attach(
    sink: &DeferredTrail,
    engine: &Engine,
    dir: &Path,
    accept_rollback: bool,
) -> Result<(), CliError> {
    let trail_err = |source| CliError::AuditTrail {
        dir: audit_dir_of(dir),
        source,
    };
    sink.attach_seed(engine.audit_signing_seed()?)
        .map_err(trail_err)?;
    let trail = sink
        .trail()
        .ok_or_else(|| CliError::Kms(KmsError::Internal("the audit trail did not open".into())))?;
    let anchored = trail.newest_store_anchor().map_err(trail_err)?;
    let caller = Principal::current_process();
    match engine.check_store_anchor(&caller, anchored.as_ref(), accept_rollback) {
        Ok(AnchorCheck::RollbackAccepted {
            store_generation,
            anchored_generation,
            now_generation,
        }) => eprintln!(
            "kmsfs: warning: accepted an engine store rollback (--accept-store-rollback): \
             generation {store_generation} opened although generation {anchored_generation} \
             was anchored; written again as generation {now_generation} and recorded in the \
             audit trail as AcceptStoreRollback"
        ),
        Ok(AnchorCheck::Current | AnchorCheck::NoAnchor) => {}
        Err(KmsError::StoreRolledBack(m)) => return Err(CliError::StoreRolledBack(m)),
        Err(e) => return Err(e.into()),
    }
    trail.note_store_anchor(&engine.store_anchor()?);
    Ok(())
}

/// The public key the engine's audit digests are signed with, derived from
/// the seed sealed in the store — when the store exists and a key file or
/// passphrase file is given (this never prompts). `None` otherwise.
pub fn audit_public_key(args: &EngineArgs) -> Result<Option<PublicKey>, CliError> {
    let Some(engine) = open_to_read(args)? else {
        return Ok(None);
    };
    let dir = engine_dir(args)?;
    let seed = engine.audit_signing_seed()?;
    let key = SigningKey::from_seed(&seed).map_err(|source| CliError::AuditTrail {
        dir: audit_dir_of(&dir),
        source,
    })?;
    Ok(Some(key.public_key()))
}

/// The store the arguments name, opened to read settings only — when it
/// exists and a key file or passphrase file is given (this never prompts).
/// `None` otherwise. Its audit sink is never attached: it makes no call,
/// and any call it made would fail instead of going unaudited.
pub fn open_to_read(args: &EngineArgs) -> Result<Option<Engine>, CliError> {
    if args.key_file.is_none() && args.passphrase_file.is_none() {
        return Ok(None);
    }
    let dir = engine_dir(args)?;
    if !store_exists(&dir)? {
        return Ok(None);
    }
    hold_store(&dir, HoldKind::Shared)?;
    let secret = root_secret(args, Purpose::Open)?;
    let sink = Arc::new(DeferredTrail::new(
        audit_dir_of(&dir),
        TrailOptions::default(),
    ));
    let engine = Engine::open(&dir, secret.into_source(), Arc::new(SystemClock), sink)?;
    Ok(Some(engine))
}

/// The holds this process has taken: kept until it exits, as long as any
/// engine it opened may be used.
static HOLDS: Mutex<Vec<StoreHold>> = Mutex::new(Vec::new());

/// Holds the store in `dir` as `kind` until the process exits; a daemon
/// serving it (or, for a daemon, any other user) is refused with one line.
fn hold_store(dir: &Path, kind: HoldKind) -> Result<(), CliError> {
    let hold = holder::hold(dir, kind).map_err(CliError::StoreHeld)?;
    let mut holds = HOLDS
        .lock()
        .map_err(|_| CliError::Kms(KmsError::Internal("store holds poisoned".into())))?;
    holds.push(hold);
    Ok(())
}

/// Writes who holds the store exclusively (the daemon's pid and socket)
/// into its holder file, for the line a refused process prints.
pub fn describe_holder(text: &str) -> Result<(), CliError> {
    let mut holds = HOLDS
        .lock()
        .map_err(|_| CliError::Kms(KmsError::Internal("store holds poisoned".into())))?;
    for h in holds.iter_mut() {
        h.describe_owner(text)
            .map_err(|e| CliError::io("writing the engine holder file", e))?;
    }
    Ok(())
}

/// The engine store directory: `--engine`/`KMSFS_ENGINE`, else
/// `$XDG_DATA_HOME/kmsfs/engine`, else `~/.local/share/kmsfs/engine`.
pub fn engine_dir(args: &EngineArgs) -> Result<PathBuf, CliError> {
    if let Some(dir) = &args.engine {
        return Ok(dir.clone());
    }
    default_engine_dir(
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// The default store directory from `XDG_DATA_HOME` and `HOME` (a relative
/// `XDG_DATA_HOME` is ignored, as the XDG spec says).
fn default_engine_dir(
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf, CliError> {
    let data = match (xdg_data_home, home) {
        (Some(x), _) if x.is_absolute() => x,
        (_, Some(h)) if h.is_absolute() => h.join(".local/share"),
        _ => return Err(CliError::NoEngineDir),
    };
    Ok(data.join("kmsfs").join("engine"))
}

/// Whether `dir` holds an engine store (anything in it counts: a non-empty
/// directory is never mistaken for "no store yet").
pub fn store_exists(dir: &Path) -> Result<bool, CliError> {
    dir_has_entries(dir)
}

/// Whether `dir` holds something (an engine store or anything else).
fn dir_has_entries(dir: &Path) -> Result<bool, CliError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::io(format!("cannot read {}", dir.display()), e)),
    }
}

/// The secret that opens (or will seal) the store, before the engine sees it.
#[derive(Clone)]
pub enum RootSecret {
    Passphrase(Zeroizing<String>),
    Key(Zeroizing<[u8; 32]>),
}

impl RootSecret {
    /// The secret as the engine takes it.
    pub fn into_source(self) -> RootKeySource {
        match self {
            RootSecret::Passphrase(p) => RootKeySource::Passphrase(p),
            RootSecret::Key(k) => RootKeySource::Key(k),
        }
    }

    /// The secret as bytes for handing to the background mount process
    /// over a pipe: a tag byte (`P` passphrase, `K` key) and the secret.
    pub fn to_wire(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        match self {
            RootSecret::Passphrase(p) => {
                out.push(b'P');
                out.extend_from_slice(p.as_bytes());
            }
            RootSecret::Key(k) => {
                out.push(b'K');
                out.extend_from_slice(&k[..]);
            }
        }
        out
    }

    /// Reads back [`RootSecret::to_wire`].
    pub fn from_wire(bytes: &[u8]) -> Option<RootSecret> {
        match bytes.split_first()? {
            (b'P', rest) if !rest.is_empty() => std::str::from_utf8(rest)
                .ok()
                .map(|p| RootSecret::Passphrase(Zeroizing::new(p.to_string()))),
            (b'K', rest) => {
                let mut k = Zeroizing::new([0u8; 32]);
                if rest.len() != k.len() {
                    return None;
                }
                k.copy_from_slice(rest);
                Some(RootSecret::Key(k))
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootSecret::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            RootSecret::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

/// Opening an existing store asks for the passphrase once; creating one asks
/// twice when it prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Open,
    Create,
}

/// The root secret: `--key-file` (exactly 32 bytes), else the first line of
/// `--passphrase-file`, else a prompt on the terminal without echo. Without a
/// terminal and without either option it fails with how to pass one.
pub fn root_secret(args: &EngineArgs, purpose: Purpose) -> Result<RootSecret, CliError> {
    if let Some(path) = &args.key_file {
        return read_key_file(path).map(RootSecret::Key);
    }
    if let Some(path) = &args.passphrase_file {
        return read_passphrase_file(path).map(RootSecret::Passphrase);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoPassphrase);
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(|e| CliError::io("cannot read the passphrase from the terminal", e))
    };
    match purpose {
        Purpose::Open => {
            let p = prompt("Engine passphrase: ")?;
            Ok(RootSecret::Passphrase(p))
        }
        Purpose::Create => prompt_new_passphrase(),
    }
}

/// A new passphrase asked twice on the terminal without echo; refuses an
/// empty one and two that differ. Without a terminal: `NoPassphrase`.
pub fn prompt_new_passphrase() -> Result<RootSecret, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoPassphrase);
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(|e| CliError::io("cannot read the passphrase from the terminal", e))
    };
    let p = prompt("New engine passphrase: ")?;
    if p.is_empty() {
        return Err(CliError::EmptyPassphrase);
    }
    let again = prompt("Repeat the passphrase: ")?;
    if *p != *again {
        return Err(CliError::PassphraseMismatch);
    }
    Ok(RootSecret::Passphrase(p))
}

/// A key file: exactly 32 raw bytes.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, CliError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| CliError::KeyFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(CliError::KeyFile {
            path: path.to_path_buf(),
            reason: format!(
                "it holds {} bytes, a key file holds exactly 32",
                bytes.len()
            ),
        });
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// A passphrase file: its first line, without the line ending.
pub fn read_passphrase_file(path: &Path) -> Result<Zeroizing<String>, CliError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| CliError::PassphraseFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?);
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| CliError::PassphraseFile {
        path: path.to_path_buf(),
        reason: "its first line is not UTF-8".into(),
    })?;
    if text.is_empty() {
        return Err(CliError::PassphraseFile {
            path: path.to_path_buf(),
            reason: "its first line is empty".into(),
        });
    }
    Ok(Zeroizing::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_follows_xdg() {
        assert_eq!(
            default_engine_dir(Some("/x/data".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/x/data/kmsfs/engine")
        );
        assert_eq!(
            default_engine_dir(Some("relative".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/home/u/.local/share/kmsfs/engine")
        );
        assert_eq!(
            default_engine_dir(None, Some("/home/u".into())).unwrap(),
            PathBuf::from("/home/u/.local/share/kmsfs/engine")
        );
        assert!(matches!(
            default_engine_dir(None, None),
            Err(CliError::NoEngineDir)
        ));
    }

    #[test]
    fn passphrase_file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "correct horse\r\nsecond line\n").unwrap();
        assert_eq!(read_passphrase_file(&p).unwrap().as_str(), "correct horse");
        std::fs::write(&p, "no newline").unwrap();
        assert_eq!(read_passphrase_file(&p).unwrap().as_str(), "no newline");
        std::fs::write(&p, "\nx").unwrap();
        let e = read_passphrase_file(&p).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::AUTHENTICATION);
        let e = read_passphrase_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::AUTHENTICATION);
    }

    #[test]
    fn key_file_must_hold_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, [7u8; 32]).unwrap();
        assert_eq!(*read_key_file(&p).unwrap(), [7u8; 32]);
        std::fs::write(&p, [7u8; 33]).unwrap();
        let e = read_key_file(&p).unwrap_err();
        assert!(e.to_string().contains("33 bytes"), "{e}");
        assert_eq!(e.exit_code(), crate::exit::AUTHENTICATION);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = RootSecret::Passphrase(Zeroizing::new("hunter2".into()));
        assert_eq!(format!("{s:?}"), "Passphrase(<redacted>)");
    }

    #[test]
    fn entries() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!dir_has_entries(dir.path()).unwrap());
        assert!(!dir_has_entries(&dir.path().join("nope")).unwrap());
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert!(dir_has_entries(dir.path()).unwrap());
    }
}
