//! `kmsfs kms init-engine`: create an engine store sealed under a passphrase
//! or a key file.

use super::output::{Query, pretty_json, render_query};
use super::print;
use crate::cli::{EngineArgs, Output};
use crate::engine_access::{self, KdfChoice};
use crate::exit::CliError;
use clap::Args;
use kms_engine::Principal;
use kms_engine::audit::AuditPathMode;
use serde_json::json;

#[derive(Debug, Clone, Args)]
pub struct InitEngineArgs {
    /// Argon2id memory cost in KiB [default: 65536]; lower only for tests or
    /// very small machines
    #[arg(long, value_name = "KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id iterations [default: 3]
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
    /// How audit records carry file paths from the start: plain, hmac or
    /// omit (as `kmsfs audit paths MODE` sets it later)
    #[arg(long, value_name = "MODE", value_parser = crate::cmd::audit::parse_mode)]
    pub audit_paths: Option<AuditPathMode>,
}

pub fn run(
    engine: &EngineArgs,
    query: Option<&Query>,
    args: &InitEngineArgs,
) -> Result<(), CliError> {
    crate::transport::require_embedded(engine, "kms init-engine")?;
    if engine.key_file.is_some() && (args.kdf_memory_kib.is_some() || args.kdf_iterations.is_some())
    {
        return Err(CliError::Usage(
            "--kdf-memory-kib and --kdf-iterations set the passphrase's Argon2id cost; \
             a key file is used as it is"
                .into(),
        ));
    }
    let kdf = KdfChoice {
        memory_kib: args.kdf_memory_kib,
        iterations: args.kdf_iterations,
    };
    let created = engine_access::create(engine, kdf)?;
    let paths = match args.audit_paths {
        Some(mode) if mode != AuditPathMode::Plain => {
            created
                .engine
                .set_audit_path_mode(&Principal::current_process(), mode)?
                .now
        }
        _ => AuditPathMode::Plain,
    };
    let resp = json!({
        "EngineDirectory": created.dir.display().to_string(),
        "RootKeySource": created.root_kind,
        "AuditPaths": paths.name(),
    });
    let text = match (query, engine.output) {
        (Some(q), output) => render_query(&resp, output, q).map_err(CliError::Usage)?,
        (None, Output::Json) => pretty_json(&resp),
        (None, Output::Text | Output::Table) => format!("{}\n", created.dir.display()),
    };
    print(&text)
}
