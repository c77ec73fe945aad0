//! `kmsfs kms change-root-key`: seal the engine store under a new passphrase
//! or key file, or switch between the two, without re-encrypting anything;
//! mounts that are running keep working.

use super::output::{Query, pretty_json, render_query};
use super::print;
use crate::cli::{EngineArgs, Output};
use crate::engine_access::{self, KdfChoice, Purpose, RootSecret};
use crate::exit::CliError;
use clap::Args;
use kms_engine::{ChangeRootKeyRequest, Principal};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ChangeRootKeyArgs {
    /// Read the new passphrase from this file (first line)
    #[arg(long, value_name = "FILE", conflicts_with = "new_key_file")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Use this 32-byte key file as the new root key
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<PathBuf>,
    /// Argon2id memory cost in KiB of the new passphrase [default: 65536]
    #[arg(long, value_name = "KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id iterations of the new passphrase [default: 3]
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
}

pub fn run(
    engine: &EngineArgs,
    query: Option<&Query>,
    args: &ChangeRootKeyArgs,
) -> Result<(), CliError> {
    crate::transport::require_embedded(engine, "kms change-root-key")?;
    let kdf = KdfChoice {
        memory_kib: args.kdf_memory_kib,
        iterations: args.kdf_iterations,
    };
    if args.new_key_file.is_some() && kdf.is_set() {
        return Err(CliError::Usage(
            "--kdf-memory-kib and --kdf-iterations set the new passphrase's Argon2id cost; \
             a key file is used as it is"
                .into(),
        ));
    }
    // A new secret from a file is read first: a mistake in it is reported
    // before any passphrase is asked for.
    let new_from_file = match (&args.new_key_file, &args.new_passphrase_file) {
        (Some(path), _) => Some(RootSecret::Key(engine_access::read_key_file(path)?)),
        (None, Some(path)) => Some(RootSecret::Passphrase(engine_access::read_passphrase_file(
            path,
        )?)),
        (None, None) => None,
    };
    let dir = engine_access::engine_dir(engine)?;
    if !engine_access::store_exists(&dir)? {
        return Err(CliError::EngineNotFound(dir));
    }
    // The current secret opens the store (a wrong one stops here, exit 3).
    let current = engine_access::root_secret(engine, Purpose::Open)?;
    let kms = engine_access::open_with(&dir, current.clone(), engine.accept_store_rollback)?;
    let new = match new_from_file {
        Some(secret) => secret,
        None => engine_access::prompt_new_passphrase().map_err(|e| match e {
            CliError::NoPassphrase => CliError::Usage(
                "no new secret: pass --new-passphrase-file FILE or --new-key-file FILE \
                 (standard input is not a terminal to prompt on)"
                    .into(),
            ),
            other => other,
        })?,
    };
    let resp = kms.change_root_key(
        &Principal::current_process(),
        ChangeRootKeyRequest {
            current: current.into_source(),
            new: new.into_source(),
            kdf: kdf.params(),
        },
    )?;
    let shown = json!({
        "EngineDirectory": dir.display().to_string(),
        "RootKeySource": resp.root_key_source,
        "FormatVersion": resp.format_version,
        "ConvertedFromFormat1": resp.converted_from_v1,
    });
    let text = match (query, engine.output) {
        (Some(q), output) => render_query(&shown, output, q).map_err(CliError::Usage)?,
        (None, Output::Json) => pretty_json(&shown),
        (None, Output::Text | Output::Table) => format!(
            "{}: the root key changed; it now opens with the new {}\n",
            dir.display(),
            resp.root_key_source.replace('-', " ")
        ),
    };
    print(&text)
}
