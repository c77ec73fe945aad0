//! `kmsfs init CIPHERDIR`: create a volume (config, wrapped names key, root
//! IV), creating a master key in the embedded engine when none is named.

use crate::cli::{EngineArgs, Output};
use crate::cmd::mount::open_engine;
use crate::exit::CliError;
use clap::Args;
use kms_engine::{CreateKeyRequest, Principal};
use kmsfs::format::{DEFAULT_BLOCK_SIZE, NamesMode, validate_block_size};
use kmsfs::volume::{self, InitOptions, VolumeError};
use std::path::PathBuf;
use std::sync::Arc;

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
}

pub(crate) fn volume_error(e: VolumeError) -> CliError {
    match e {
        VolumeError::Kms(k) => CliError::Kms(k),
        VolumeError::Io { path, source } => CliError::io(path.display().to_string(), source),
        other => CliError::Usage(other.to_string()),
    }
}

pub fn run(engine_args: &EngineArgs, output: Output, args: InitArgs) -> Result<(), CliError> {
    let block_size =
        validate_block_size(args.block_size).map_err(|e| CliError::Usage(e.to_string()))?;
    if !args.cipherdir.exists() {
        std::fs::create_dir_all(&args.cipherdir)
            .map_err(|e| CliError::io(args.cipherdir.display().to_string(), e))?;
    }
    let engine = open_engine(engine_args, true)?;
    let caller = Principal::current_process();
    let key_id = match args.key_id {
        Some(k) => k,
        None => {
            let resp = engine.create_key(
                &caller,
                CreateKeyRequest {
                    description: Some(format!("kmsfs volume at {}", args.cipherdir.display())),
                    ..CreateKeyRequest::default()
                },
            )?;
            resp.key_metadata.key_id
        }
    };
    let ks: Arc<kms_engine::Engine> = engine;
    let config = volume::init(
        &args.cipherdir,
        &ks,
        &caller,
        &InitOptions {
            master_key_id: key_id,
            block_size,
            names_mode: if args.plaintext_names {
                NamesMode::Plaintext
            } else {
                NamesMode::Encrypted
            },
        },
    )
    .map_err(volume_error)?;
    let names = match config.names_mode {
        NamesMode::Encrypted => "encrypted",
        NamesMode::Plaintext => "plaintext",
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "cipherdir": args.cipherdir,
                "volume_id": config.volume_id,
                "key_id": config.master_key_id,
                "block_size": config.block_size,
                "names": names,
            })
        ),
        Output::Text => {
            println!("created kmsfs volume {}", config.volume_id);
            println!("  cipherdir:  {}", args.cipherdir.display());
            println!("  master key: {}", config.master_key_id);
            println!("  block size: {}", config.block_size);
            println!("  names:      {names}");
        }
    }
    Ok(())
}
