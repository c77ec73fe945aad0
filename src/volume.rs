//! Opening and initializing a volume: the config file, the names key
//! (unwrapped through the key service, which authenticates the config), the
//! root directory's name IV, and the upgrade of a format-1 config.

use crate::format::{CONFIG_FILE_NAME, ConfigError, Features, NamesMode, VolumeConfig};
use crate::keys::{DataKeyBytes, KeyService};
use crate::names::{NameError, NameTransform};
use kms_engine::safe_fs::{self, Dir};
use kms_engine::{KmsError, Principal};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use crate::names::{DIRIV_FILE_NAME, DIRIV_LEN, JOURNAL_FILE_NAME};

/// Why a volume could not be created or opened.
#[derive(Debug, Error)]
pub enum VolumeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already holds a kmsfs volume")]
    AlreadyInitialized { path: PathBuf },
    #[error("{path} is not empty; kmsfs init needs an empty directory")]
    NotEmpty { path: PathBuf },
    #[error("{path} holds no kmsfs volume ({CONFIG_FILE_NAME} is missing)")]
    NotAVolume { path: PathBuf },
    #[error("volume config: {0}")]
    Config(#[from] ConfigError),
    #[error("names key: {0}")]
    Kms(#[from] KmsError),
    /// The config does not verify against the volume: its names key does
    /// not unwrap under the context its fields make (format 2), or it
    /// contradicts what the volume holds.
    #[error("{}/{CONFIG_FILE_NAME} does not match this volume (was it edited?): {why}", root.display())]
    ConfigMismatch { root: PathBuf, why: String },
    /// A new data key came back wrapped under another master key than the
    /// one that wrapped the names key (the config's `master_key_id` is an
    /// alias that now names another key, or was edited in a format-1 config).
    #[error(
        "the master key {config_key:?} of {CONFIG_FILE_NAME} now resolves to key {got}, \
         but this volume is bound to key {bound}"
    )]
    MasterKeyMismatch {
        config_key: String,
        got: String,
        bound: String,
    },
    #[error("the root directory IV is missing or damaged")]
    BadRootIv,
    #[error("names key: {0}")]
    Names(#[from] NameError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open volume.
pub struct Volume {
    pub root: PathBuf,
    pub config: VolumeConfig,
    /// The id of the master key that wrapped the names key (authenticated
    /// by the unwrap): every new data key must come from it.
    bound_key_id: String,
    /// The unwrapped names key (also keys the xattr encryption).
    names_key: DataKeyBytes,
    /// Name and symlink transform under the names key.
    pub names: NameTransform,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("root", &self.root)
            .field("volume_id", &self.config.volume_id)
            .field("names_key", &"<redacted>")
            .finish()
    }
}

/// Mode of `kmsfs.conf` (no secret in it; readable like the directory).
pub const CONFIG_FILE_MODE: u32 = 0o644;
/// Mode of a directory IV file.
pub const DIRIV_FILE_MODE: u32 = 0o444;
/// Mode of the other files kmsfs writes into the cipher directory (the
/// rename journal, long-name side files).
pub const META_FILE_MODE: u32 = 0o600;

/// Writes `bytes` to `path` atomically with `mode`: a random temporary
/// name created exclusively without following symlinks, fsync, rename,
/// fsync of the directory ([`kms_engine::safe_fs`]). On failure (a full
/// disk too) `path` keeps its old state and no temporary file is left.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    safe_fs::write_atomic(path, bytes, mode)
}

/// The encoded (encrypted) target of a backing symlink in directory `dir`
/// whose own target is `stored`: `stored` itself, or, when it names a
/// long-link target file (`kmsfs.longlink.<hash>`), that file's contents,
/// read as [`read_small_file`] reads and checked against the hash in its
/// name (EIO when it differs).
pub fn stored_link_target(dir: &Path, stored: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if !crate::names::is_long_link_name(&stored) {
        return Ok(stored);
    }
    let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&stored);
    let encoded = read_small_file(&dir.join(name), crate::names::MAX_LONG_LINK_FILE_LEN)?;
    let matches = std::str::from_utf8(&encoded)
        .is_ok_and(|e| crate::names::long_link_name(e).as_bytes() == stored.as_slice());
    if !matches {
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(encoded)
}

/// Creates a fresh directory IV file in `dir`.
pub fn create_dir_iv(dir: &Path) -> std::io::Result<[u8; DIRIV_LEN]> {
    let iv: [u8; DIRIV_LEN] = crate::crypto::random_array().map_err(std::io::Error::other)?;
    write_dir_iv(dir, &iv)?;
    Ok(iv)
}

/// Writes directory IV `iv` into `dir` (read-only, synced, all or
/// nothing); `AlreadyExists` when anything has the IV file's name.
pub fn write_dir_iv(dir: &Path, iv: &[u8; DIRIV_LEN]) -> std::io::Result<()> {
    Dir::open(dir)?.write_new(OsStr::new(DIRIV_FILE_NAME), iv, DIRIV_FILE_MODE)
}

/// Opens a backing file for reading without following a symlink or
/// blocking on a FIFO, and without changing its access time (which is the
/// plaintext file's): for the reads of checks and counts that are no
/// reads of the file by anyone (fsck, a mount's count of files by key
/// version). `O_NOATIME` is refused (EPERM) for a file the caller neither
/// owns nor may act for: it is opened without it then.
/// `write`: opened for writing too (a header rewritten in place).
pub fn open_quietly(path: &Path, write: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | flags)
            .open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        r => r,
    }
}

/// Runs `rewrite` (a new header: a rename's or a rewrap's new wrapping of
/// the same data key) on the open backing `file` and puts its access and
/// modification times back as they were before: the file's content did
/// not change, and a rename or a key job must not make `make`, `rsync` or
/// backups see every file touched (its change time moves, as for any
/// rename). Times are put back also when `rewrite` fails part-way.
pub fn keeping_times<T>(
    file: &std::fs::File,
    rewrite: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let times = times_of(&file.metadata()?);
    let out = rewrite();
    let restored = rustix::fs::futimens(file, &times);
    let out = out?;
    restored?;
    Ok(out)
}

/// The access and modification times of `meta`, as `utimensat` and
/// `futimens` take them (to put them back after a change that must not
/// show as one).
pub fn times_of(meta: &fs::Metadata) -> rustix::fs::Timestamps {
    use std::os::unix::fs::MetadataExt;
    let ts = |tv_sec, tv_nsec| rustix::fs::Timespec { tv_sec, tv_nsec };
    rustix::fs::Timestamps {
        last_access: ts(meta.atime(), meta.atime_nsec()),
        last_modification: ts(meta.mtime(), meta.mtime_nsec()),
    }
}

/// The entries of a backing directory (without `.` and `..`) and their
/// types, listed without changing the directory's access time (see
/// [`open_quietly`]); a type the directory does not store is looked up.
pub fn list_dir_quietly(
    dir: &Path,
) -> std::io::Result<Vec<(std::ffi::OsString, rustix::fs::FileType)>> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use std::os::unix::ffi::OsStrExt;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::open(dir, flags, Mode::empty())?,
        r => r?,
    };
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => FileType::from_raw_mode(
                rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
            ),
            known => known,
        };
        out.push((OsStr::from_bytes(name).to_os_string(), kind));
    }
    Ok(out)
}

/// Reads a small kmsfs metadata file from the backing directory (an IV
/// file, a long-name side file) that an attacker may have replaced: the
/// file must be a regular file (a symlink is not followed, a FIFO or device
/// is refused without blocking) and hold at most `max` bytes; anything
/// else is EIO, the errno of tampering.
pub fn read_small_file(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let tampered = || std::io::Error::from_raw_os_error(libc::EIO);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                tampered()
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(tampered());
    }
    let mut bytes = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(tampered());
    }
    Ok(bytes)
}

/// Reads `dir`'s IV file.
pub fn read_dir_iv(dir: &Path) -> std::io::Result<[u8; DIRIV_LEN]> {
    let bytes = read_small_file(&dir.join(DIRIV_FILE_NAME), DIRIV_LEN)?;
    <[u8; DIRIV_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))
}

/// Options for [`init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub master_key_id: String,
    pub block_size: u32,
    pub names_mode: NamesMode,
    /// Hash long encrypted names into side files (feature flag
    /// `long-names`); ignored, and off, with plaintext names.
    pub long_names: bool,
    /// The engine daemon's URL to record in the config
    /// ([`VolumeConfig::kms`]); `None` for the embedded engine.
    pub kms: Option<String>,
    /// A write-only volume's RSA key (id, ARN or alias): checked with
    /// GetPublicKey and recorded as the ARN the service names
    /// ([`VolumeConfig::write_only_key`]); `None` for an ordinary volume.
    pub write_only_key: Option<String>,
}

/// Creates a volume in the empty directory `root`: generates and wraps a
/// names key under the master key, writes `kmsfs.conf` and the root IV.
pub fn init(
    root: &Path,
    keys: &dyn KeyService,
    caller: &Principal,
    opts: &InitOptions,
) -> Result<VolumeConfig, VolumeError> {
    let conf_path = root.join(CONFIG_FILE_NAME);
    if conf_path.exists() {
        return Err(VolumeError::AlreadyInitialized {
            path: root.to_path_buf(),
        });
    }
    let mut entries = fs::read_dir(root).map_err(io_err(root))?;
    if entries.next().is_some() {
        return Err(VolumeError::NotEmpty {
            path: root.to_path_buf(),
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The wrapped names key is bound to the volume id, which `new` draws:
    // create with a placeholder, then wrap under the final context.
    let mut config = VolumeConfig::new(
        opts.master_key_id.clone(),
        vec![0],
        opts.block_size,
        opts.names_mode,
        now,
    )?;
    config.features = Features {
        long_names: opts.long_names && opts.names_mode == NamesMode::Encrypted,
    };
    config.kms = opts.kms.clone();
    if let Some(key) = &opts.write_only_key {
        let info = keys.get_public_key(caller, key)?;
        crate::keys::write_only::check_public_key(&info)?;
        config.write_only_key = Some(info.key_id);
    }
    let generated =
        keys.generate_data_key(caller, &opts.master_key_id, &config.names_key_context())?;
    config.wrapped_names_key = generated.wrapped;
    let bytes = config.encode()?;
    if opts.names_mode == NamesMode::Encrypted {
        create_dir_iv(root).map_err(io_err(root))?;
    }
    write_atomic(&conf_path, &bytes, CONFIG_FILE_MODE).map_err(io_err(&conf_path))?;
    Ok(config)
}

fn mismatch(root: &Path, why: &str) -> VolumeError {
    VolumeError::ConfigMismatch {
        root: root.to_path_buf(),
        why: why.to_string(),
    }
}

/// The root directory IV must be there exactly when names are encrypted:
/// a names mode flipped to plaintext in a config (which format 1 cannot
/// detect otherwise) finds the IV of an encrypted volume.
fn check_root_iv(root: &Path, names_mode: NamesMode) -> Result<(), VolumeError> {
    match names_mode {
        NamesMode::Encrypted => read_dir_iv(root)
            .map(|_| ())
            .map_err(|_| VolumeError::BadRootIv),
        NamesMode::Plaintext => match fs::symlink_metadata(root.join(DIRIV_FILE_NAME)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(mismatch(
                root,
                "names_mode is plaintext, but the root directory has the name IV of a \
                 volume with encrypted names",
            )),
        },
    }
}

/// The key id `master_key_id` names when it is a key id or key ARN (an
/// alias names a key only through the engine: see
/// [`Volume::check_new_data_key`]).
fn named_key_id(master_key_id: &str) -> Option<String> {
    match kms_engine::ids::parse_key_ref(master_key_id) {
        Ok(kms_engine::ids::KeyRef::Id(id)) => Some(id.to_string()),
        _ => None,
    }
}

fn name_transform(
    names_key: &DataKeyBytes,
    config: &VolumeConfig,
) -> Result<NameTransform, NameError> {
    Ok(NameTransform::new(names_key, config.names_mode)?
        .with_long_names(config.features.long_names))
}

/// Reads the config of the volume at `root`.
pub fn read_config(root: &Path) -> Result<VolumeConfig, VolumeError> {
    let conf_path = root.join(CONFIG_FILE_NAME);
    let bytes = match fs::read(&conf_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VolumeError::NotAVolume {
                path: root.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(&conf_path)(e)),
    };
    Ok(VolumeConfig::decode(&bytes)?)
}

impl Volume {
    /// Opens the volume at `root`, unwrapping the names key as `caller`.
    /// The unwrap authenticates a format-2 config (its digest is in the
    /// names key's encryption context); for every format, a config that
    /// contradicts the volume is refused with [`VolumeError::ConfigMismatch`].
    pub fn open(
        root: &Path,
        keys: &dyn KeyService,
        caller: &Principal,
    ) -> Result<Volume, VolumeError> {
        let root = fs::canonicalize(root).map_err(io_err(root))?;
        let config = read_config(&root)?;
        check_root_iv(&root, config.names_mode)?;
        let names_key = keys
            .decrypt_data_key(
                caller,
                &config.wrapped_names_key,
                &config.names_key_context(),
            )
            .map_err(|e| match e {
                KmsError::InvalidCiphertext(_) => mismatch(
                    &root,
                    "its names key does not unwrap under the context its fields make",
                ),
                other => VolumeError::Kms(other),
            })?;
        let bound_key_id = keys.wrapping_key_id(&config.wrapped_names_key)?;
        if let Some(named) = named_key_id(&config.master_key_id)
            && named != bound_key_id
        {
            return Err(mismatch(
                &root,
                &format!(
                    "master_key_id names key {named}, but the names key is wrapped under \
                     key {bound_key_id}"
                ),
            ));
        }
        let names = name_transform(&names_key, &config)?;
        Ok(Volume {
            root,
            config,
            bound_key_id,
            names_key,
            names,
        })
    }

    /// Upgrades a format-1 (unauthenticated) config to the current format:
    /// re-wraps the names key (ReEncrypt, same master key) under the new
    /// context, which binds every field, checks that it still unwraps to
    /// the same key, and replaces `kmsfs.conf` atomically. Returns whether
    /// anything changed (false for a config already authenticated).
    pub fn upgrade_config(
        &mut self,
        keys: &dyn KeyService,
        caller: &Principal,
    ) -> Result<bool, VolumeError> {
        if self.config.is_authenticated() {
            return Ok(false);
        }
        let mut up = self.config.upgraded();
        up.wrapped_names_key = keys.rewrap_data_key(
            caller,
            &self.config.wrapped_names_key,
            &self.config.names_key_context(),
            &up.names_key_context(),
        )?;
        let again =
            keys.decrypt_data_key(caller, &up.wrapped_names_key, &up.names_key_context())?;
        if *again != *self.names_key
            || keys.wrapping_key_id(&up.wrapped_names_key)? != self.bound_key_id
        {
            return Err(mismatch(
                &self.root,
                "the re-wrapped names key differs from the one it replaces",
            ));
        }
        let bytes = up.encode()?;
        let path = self.root.join(CONFIG_FILE_NAME);
        write_atomic(&path, &bytes, CONFIG_FILE_MODE).map_err(io_err(&path))?;
        self.names = name_transform(&self.names_key, &up)?;
        self.config = up;
        Ok(true)
    }

    /// The id of the key the names key is wrapped under (authenticated by
    /// the unwrap at open): every file's data key should be under it.
    pub fn bound_key_id(&self) -> &str {
        &self.bound_key_id
    }

    /// Re-wraps the names key under the newest version of the volume's key
    /// (ReEncrypt, same context) and replaces `kmsfs.conf` atomically
    /// (only `wrapped_names_key` changes): the first step of `kmsfs rewrap`.
    pub fn rewrap_names_key(
        &mut self,
        keys: &dyn KeyService,
        caller: &Principal,
    ) -> Result<(), VolumeError> {
        let ctx = self.config.names_key_context();
        let mut up = self.config.clone();
        up.wrapped_names_key = keys.reencrypt_data_key(
            caller,
            &self.config.wrapped_names_key,
            &ctx,
            &self.bound_key_id,
        )?;
        self.replace_config(keys, caller, up)
    }

    /// Binds the volume to another master key, `master_key_id`, on the key
    /// service `keys` (recorded as `kms`, `None` for the embedded engine):
    /// the names key is encrypted under it with the context of the new
    /// config (which the digest of a format-2 config binds), checked, and
    /// `kmsfs.conf` replaced atomically. File data keys are not touched:
    /// `kmsfs rewrap --to-key` and `kmsfs migrate` move them. Refused for a
    /// format-1 config (run `kmsfs upgrade-config` first).
    pub fn rebind(
        &mut self,
        keys: &dyn KeyService,
        caller: &Principal,
        master_key_id: &str,
        kms: Option<String>,
    ) -> Result<(), VolumeError> {
        if !self.config.is_authenticated() {
            return Err(mismatch(
                &self.root,
                "a format-1 config cannot be moved to another key: run kmsfs upgrade-config \
                 first",
            ));
        }
        let mut up = self.config.clone();
        up.master_key_id = master_key_id.to_string();
        up.kms = kms;
        up.wrapped_names_key = keys.encrypt_data_key(
            caller,
            master_key_id,
            &self.names_key,
            &up.names_key_context(),
        )?;
        self.replace_config(keys, caller, up)
    }

    /// The config `up` (same names key, wrapped anew), checked through
    /// `keys` as an open would check it, written over `kmsfs.conf`.
    pub fn install_config(
        &mut self,
        keys: &dyn KeyService,
        caller: &Principal,
        up: VolumeConfig,
    ) -> Result<(), VolumeError> {
        self.replace_config(keys, caller, up)
    }

    /// Switches the volume to another names key: `up` is this config with
    /// `wrapped_names_key` replaced by a new names key under the same master
    /// key and context (`kmsfs rekey --names`, once every name, symlink
    /// target and attribute is under it). Checked (it unwraps, under the
    /// key the volume is bound to), then written over `kmsfs.conf` in one
    /// atomic replace: before it the old key is the volume's, after it the
    /// new one.
    pub fn switch_names_key(
        &mut self,
        keys: &dyn KeyService,
        caller: &Principal,
        up: VolumeConfig,
    ) -> Result<(), VolumeError> {
        if up.names_key_context() != self.config.names_key_context() || !up.is_authenticated() {
            return Err(mismatch(
                &self.root,
                "the new names key's config differs from the volume's in more than the key",
            ));
        }
        let new_key =
            keys.decrypt_data_key(caller, &up.wrapped_names_key, &up.names_key_context())?;
        let bound = keys.wrapping_key_id(&up.wrapped_names_key)?;
        if bound != self.bound_key_id {
            return Err(mismatch(
                &self.root,
                &format!(
                    "the new names key is under key {bound}, the volume under {}",
                    self.bound_key_id
                ),
            ));
        }
        let bytes = up.encode()?;
        let path = self.root.join(CONFIG_FILE_NAME);
        write_atomic(&path, &bytes, CONFIG_FILE_MODE).map_err(io_err(&path))?;
        self.names = name_transform(&new_key, &up)?;
        self.names_key = new_key;
        self.config = up;
        Ok(())
    }

    fn replace_config(
        &mut self,
        keys: &dyn KeyService,
        caller: &Principal,
        up: VolumeConfig,
    ) -> Result<(), VolumeError> {
        let bytes = self.checked_config(keys, caller, &up)?;
        let path = self.root.join(CONFIG_FILE_NAME);
        write_atomic(&path, &bytes, CONFIG_FILE_MODE).map_err(io_err(&path))?;
        self.bound_key_id = keys.wrapping_key_id(&up.wrapped_names_key)?;
        self.config = up;
        Ok(())
    }

    /// Encodes `up` after checking that its names key unwraps through
    /// `keys` to this volume's names key, under a key its
    /// `master_key_id` names (when that is a key id or ARN).
    pub fn checked_config(
        &self,
        keys: &dyn KeyService,
        caller: &Principal,
        up: &VolumeConfig,
    ) -> Result<Vec<u8>, VolumeError> {
        let again =
            keys.decrypt_data_key(caller, &up.wrapped_names_key, &up.names_key_context())?;
        if *again != *self.names_key {
            return Err(mismatch(
                &self.root,
                "the re-wrapped names key differs from the one it replaces",
            ));
        }
        let bound = keys.wrapping_key_id(&up.wrapped_names_key)?;
        if let Some(named) = named_key_id(&up.master_key_id)
            && named != bound
            && crate::keys::aws::key_id_of(&bound) != named
        {
            return Err(mismatch(
                &self.root,
                &format!("master_key_id names key {named}, but the names key is under {bound}"),
            ));
        }
        Ok(up.encode()?)
    }

    /// Checks that a data key generated under the config's master key came
    /// from the key the volume is bound to (the one that wrapped the names
    /// key): an alias re-pointed elsewhere, or a format-1 config whose
    /// master key was edited, does not get files written under another key.
    pub fn check_new_data_key(
        &self,
        keys: &dyn KeyService,
        wrapped: &[u8],
    ) -> Result<(), VolumeError> {
        let got = keys.wrapping_key_id(wrapped)?;
        if got == self.bound_key_id {
            Ok(())
        } else {
            Err(VolumeError::MasterKeyMismatch {
                config_key: self.config.master_key_id.clone(),
                got,
                bound: self.bound_key_id.clone(),
            })
        }
    }

    pub fn block_size(&self) -> u32 {
        self.config.block_size
    }

    pub fn encrypted_names(&self) -> bool {
        self.config.names_mode == NamesMode::Encrypted
    }

    /// The names key, for the xattr transform.
    pub fn names_key(&self) -> &DataKeyBytes {
        &self.names_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_eio(r: std::io::Result<impl Sized>) -> bool {
        matches!(r, Err(e) if e.raw_os_error() == Some(libc::EIO))
    }

    #[test]
    fn dir_iv_round_trip_and_wrong_length() {
        let d = tempfile::tempdir().unwrap();
        let iv = create_dir_iv(d.path()).unwrap();
        assert_eq!(read_dir_iv(d.path()).unwrap(), iv);
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(DIRIV_FILE_NAME), [1u8; DIRIV_LEN + 1]).unwrap();
        assert!(is_eio(read_dir_iv(other.path())));
    }

    /// A tampered backing directory must not make kmsfs read an endless
    /// device, block on a FIFO, or follow a symlink out of the volume.
    #[test]
    fn fail_dir_iv_replaced_by_symlink_fifo_or_huge_file() {
        let d = tempfile::tempdir().unwrap();
        let iv = d.path().join(DIRIV_FILE_NAME);
        std::os::unix::fs::symlink("/dev/zero", &iv).unwrap();
        assert!(is_eio(read_dir_iv(d.path())));
        fs::remove_file(&iv).unwrap();

        rustix::fs::mknodat(
            rustix::fs::CWD,
            &iv,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(is_eio(read_dir_iv(d.path())));
        fs::remove_file(&iv).unwrap();

        fs::write(&iv, vec![0u8; 1 << 20]).unwrap();
        assert!(is_eio(read_dir_iv(d.path())));
        assert!(is_eio(read_small_file(&iv, 1000)));
        assert_eq!(read_small_file(&iv, 1 << 20).unwrap().len(), 1 << 20);
    }
}
