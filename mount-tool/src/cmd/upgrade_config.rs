//! `kmsfs upgrade-config CIPHERDIR`: upgrades a format-1 `kmsfs.conf`,
//! which nothing authenticates, to the current format, whose fields are
//! bound to the volume's names key (`kmsfs::volume::Volume::upgrade_config`).
//! The upgrade authenticates the config as it is, so the command is run by
//! the volume's owner and prints the fields it binds: an edit made before
//! the upgrade (names mode, master key) would be bound too.

use crate::cli::{EngineArgs, Output};
use crate::exit::CliError;
use crate::transport;
use crate::volume_lock::{User, VolumeLock};
use clap::Args;
use kms_engine::Principal;
use kmsfs::volume::Volume;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct UpgradeConfigArgs {
    /// The backing directory holding the ciphertext (not mounted)
    pub cipherdir: PathBuf,
}

pub fn run(
    engine_args: &EngineArgs,
    output: Output,
    args: UpgradeConfigArgs,
) -> Result<(), CliError> {
    let root = std::fs::canonicalize(&args.cipherdir)
        .map_err(|e| CliError::io(args.cipherdir.display().to_string(), e))?;
    super::fsck::refuse_if_mounted(&root)?;
    let _lock = VolumeLock::take(&root, User::Job("upgrade-config"))?;
    let engine_args = &transport::with_volume_engine(engine_args, &root)?;
    let ks = transport::open_key_service(engine_args)?;
    let caller = Principal::current_process();
    let mut vol = Volume::open(&root, &ks, &caller).map_err(super::init::volume_error)?;
    let from = vol.config.format_version;
    let upgraded = vol
        .upgrade_config(&ks, &caller)
        .map_err(super::init::volume_error)?;
    let c = &vol.config;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "cipherdir": root,
                "upgraded": upgraded,
                "from_format": from,
                "format": c.format_version,
                "volume_id": c.volume_id,
                "key_id": c.master_key_id,
                "block_size": c.block_size,
                "names": c.names_mode.as_str(),
                "feature_flags": c.features.flags(c.format_version),
            })
        ),
        Output::Text | Output::Table => {
            if upgraded {
                println!(
                    "upgraded kmsfs.conf of volume {} from format {from} to {} (authenticated)",
                    c.volume_id, c.format_version
                );
            } else {
                println!(
                    "kmsfs.conf of volume {} is format {}: already authenticated, nothing to do",
                    c.volume_id, c.format_version
                );
            }
            println!("  master key: {}", c.master_key_id);
            println!("  block size: {}", c.block_size);
            println!("  names:      {}", c.names_mode.as_str());
            println!(
                "  features:   {}",
                c.features.flags(c.format_version).join(", ")
            );
        }
    }
    Ok(())
}
