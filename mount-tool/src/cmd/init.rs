//! `kmsfs init CIPHERDIR`: create a volume (config, wrapped names key, root
//! IV), creating a master key in the embedded engine when none is named
//! (and the engine store itself when there is none).

use crate::cli::{EngineArgs, Output};
use crate::exit::CliError;
use crate::transport::{self, KmsUrl};
use clap::Args;
use kms_engine::service::Transport;
use kms_engine::{KmsError, Principal};
use kmsfs::format::{
    CONFIG_FILE_NAME, DEFAULT_BLOCK_SIZE, NamesMode, VolumeConfig, validate_block_size,
};
use kmsfs::keys::KeyService;
use kmsfs::keys::aws::AwsTarget;
use kmsfs::volume::{self, InitOptions, VolumeError};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The (empty) backing directory that will hold the ciphertext
    pub cipherdir: PathBuf,
    /// Master key (id, ARN or alias) to wrap data keys with [default: create one]
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
    /// Content block size in bytes (power of two, 512..=65536)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BLOCK_SIZE as u64)]
    pub block_size: u64,
    /// Store file names in plaintext (contents stay encrypted)
    #[arg(long)]
    pub plaintext_names: bool,
    /// Refuse names whose encrypted form exceeds 255 bytes (ENAMETOOLONG)
    /// instead of storing them hashed with a side file (feature flag
    /// long-names, on by default with encrypted names)
    #[arg(long)]
    pub no_long_names: bool,
    /// Make a write-only volume: new files' data keys are wrapped for this
    /// RSA key's public key (ENCRYPT_DECRYPT, RSAES_OAEP_SHA_256), so a
    /// mount can create files without being able to read them; only a
    /// principal allowed to Decrypt with the key reads them
    #[arg(long, value_name = "RSA_KEY")]
    pub write_only_key: Option<String>,
}

pub(crate) fn volume_error(e: VolumeError) -> CliError {
    match e {
        VolumeError::Kms(k) => CliError::Kms(k),
        VolumeError::Io { path, source } => CliError::io(path.display().to_string(), source),
        e @ (VolumeError::ConfigMismatch { .. }
        | VolumeError::MasterKeyMismatch { .. }
        | VolumeError::BadRootIv) => CliError::BadVolume(e.to_string()),
        other => CliError::Usage(other.to_string()),
    }
}

/// The warning line for a volume whose config is not authenticated.
pub(crate) fn warn_unauthenticated(cipherdir: &Path, config: &VolumeConfig) {
    if !config.is_authenticated() {
        eprintln!(
            "kmsfs: warning: {}/{CONFIG_FILE_NAME} is format {} and not authenticated: \
             an edit to it would go unnoticed; check it and run `kmsfs upgrade-config {}`",
            cipherdir.display(),
            config.format_version,
            cipherdir.display()
        );
    }
}

pub fn run(engine_args: &EngineArgs, output: Output, args: InitArgs) -> Result<(), CliError> {
    let block_size =
        validate_block_size(args.block_size).map_err(|e| CliError::Usage(e.to_string()))?;
    let names_mode = if args.plaintext_names {
        NamesMode::Plaintext
    } else {
        NamesMode::Encrypted
    };
    check_empty_or_missing(&args.cipherdir)?;
    let new = NewVolume {
        key_id: args.key_id,
        block_size,
        names_mode,
        long_names: !args.no_long_names,
        engine: engine_args.kms.as_ref().map(KmsUrl::to_string),
        write_only_key: args.write_only_key,
    };
    let config = match &engine_args.kms {
        Some(url @ KmsUrl::Aws(target)) => create_on_aws(url, target, &args.cipherdir, new)?,
        _ => {
            let (kms, keys) = transport::open_or_create_keys(engine_args)?;
            create_volume(Some(kms.as_ref()), keys.as_ref(), &args.cipherdir, new)?
        }
    };
    report(output, &args.cipherdir, &config);
    Ok(())
}

/// Refuses a `CIPHERDIR` that exists and is not an empty directory.
pub(crate) fn check_empty_or_missing(cipherdir: &Path) -> Result<(), CliError> {
    match std::fs::read_dir(cipherdir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                let what = if cipherdir.join(CONFIG_FILE_NAME).exists() {
                    "already holds a kmsfs volume"
                } else {
                    "is not empty"
                };
                return Err(CliError::Usage(format!(
                    "{} {what}: a volume is created in an empty or new directory",
                    cipherdir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::io(cipherdir.display().to_string(), e)),
    }
}

/// What [`create_volume`] makes.
#[derive(Debug)]
pub(crate) struct NewVolume {
    /// The master key; `None`: a new one.
    pub key_id: Option<String>,
    pub block_size: u32,
    pub names_mode: NamesMode,
    pub long_names: bool,
    /// The engine daemon's URL the volume records (`--kms`), so that
    /// `kmsfs mount` finds it without the flag; `None` for the embedded
    /// engine.
    pub engine: Option<String>,
    /// The RSA key of a write-only volume.
    pub write_only_key: Option<String>,
}

impl NewVolume {
    /// A volume as `mount --init` makes it, recording `engine`.
    pub(crate) fn default_with(engine: Option<String>) -> NewVolume {
        NewVolume {
            key_id: None,
            block_size: DEFAULT_BLOCK_SIZE,
            names_mode: NamesMode::Encrypted,
            long_names: true,
            engine,
            write_only_key: None,
        }
    }
}

/// Creates the volume in `cipherdir` on the AWS KMS key `url` names: the
/// key is resolved to its ARN, which the volume records as its master key
/// and in its engine URL (no credential is recorded).
pub(crate) fn create_on_aws(
    url: &KmsUrl,
    target: &AwsTarget,
    cipherdir: &Path,
    mut new: NewVolume,
) -> Result<VolumeConfig, CliError> {
    if new.key_id.is_some() {
        return Err(CliError::Usage(format!(
            "--key-id: the key is the one the URL names ({url})"
        )));
    }
    let keys = transport::aws_keys(url, target)?;
    let arn = keys.key_arn().to_string();
    let recorded = KmsUrl::Aws(AwsTarget {
        key: arn.clone(),
        ..target.clone()
    });
    new.key_id = Some(arn);
    new.engine = Some(recorded.to_string());
    create_volume(None, &keys, cipherdir, new)
}

/// Creates the volume in `cipherdir` (made if missing), with a new master
/// key in the engine (`kms`) unless the spec names one; its names key
/// comes from `keys`.
pub(crate) fn create_volume(
    kms: Option<&dyn Transport>,
    keys: &dyn KeyService,
    cipherdir: &Path,
    new: NewVolume,
) -> Result<VolumeConfig, CliError> {
    std::fs::create_dir_all(cipherdir)
        .map_err(|e| CliError::io(cipherdir.display().to_string(), e))?;
    let caller = Principal::current_process();
    let key_id = match new.key_id {
        Some(k) => k,
        None => {
            let kms = kms.ok_or_else(|| {
                CliError::Usage("this key service cannot create keys: name one".into())
            })?;
            let description = format!("kmsfs volume at {}", cipherdir.display());
            let resp = kms.call("CreateKey", json!({ "Description": description }), None)?;
            resp["KeyMetadata"]["KeyId"]
                .as_str()
                .ok_or_else(|| {
                    CliError::Kms(KmsError::Internal(
                        "the engine's CreateKey response has no KeyMetadata.KeyId".into(),
                    ))
                })?
                .to_string()
        }
    };
    volume::init(
        cipherdir,
        keys,
        &caller,
        &InitOptions {
            master_key_id: key_id,
            block_size: new.block_size,
            names_mode: new.names_mode,
            long_names: new.long_names,
            kms: new.engine,
            write_only_key: new.write_only_key,
        },
    )
    .map_err(volume_error)
}

/// Prints what was created.
pub(crate) fn report(output: Output, cipherdir: &Path, config: &VolumeConfig) {
    let names = config.names_mode.as_str();
    let flags = config.features.flags(config.format_version);
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "cipherdir": cipherdir,
                "volume_id": config.volume_id,
                "key_id": config.master_key_id,
                "block_size": config.block_size,
                "names": names,
                "feature_flags": flags,
                "write_only_key": config.write_only_key,
            })
        ),
        Output::Text | Output::Table => {
            println!("created kmsfs volume {}", config.volume_id);
            println!("  cipherdir:  {}", cipherdir.display());
            println!("  master key: {}", config.master_key_id);
            println!("  block size: {}", config.block_size);
            println!("  names:      {names}");
            println!("  features:   {}", flags.join(", "));
            if let Some(key) = &config.write_only_key {
                println!("  write-only: new files readable only with Decrypt on {key}");
            }
        }
    }
}
