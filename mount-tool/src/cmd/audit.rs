//! `kmsfs audit <command>`: read, follow and verify the engine's audit trail
//! in `<engine dir>/audit`, and export the public key its digests are signed with.

use crate::cli::{EngineArgs, Output};
use crate::engine_access;
use crate::exit::CliError;
use crate::transport;
use clap::{Args, Subcommand};
use kms_engine::audit::AuditPathMode;
use kms_engine::audit::query::{self, Filter, Follower, StoredRecord};
use kms_engine::audit::record::RecordView;
use kms_engine::audit::segment::PUBLIC_KEY_FILE;
use kms_engine::audit::{Anchor, AuditError, PublicKey, VerifyOptions, verify_with};
use kms_engine::service::Transport;
use kms_engine::{KmsError, Resolver};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the records that match every given filter (JSON lines, or one
    /// line per record with --output text)
    Show(ShowArgs),
    /// Print the last records, and with --follow keep printing new ones
    Tail(TailArgs),
    /// Check the hash chain and the signed digests; exit 0 if the trail is
    /// intact, else name the first bad record and exit 6
    Verify(VerifyArgs),
    /// Print the Ed25519 public key the trail's digests are signed with (PEM):
    /// derived from the engine store when --passphrase-file or --key-file is
    /// given, else the trail's own copy (with a warning)
    ExportPublicKey,
    /// Show, or set, how records carry file paths: plain, hmac (HMAC-SHA256
    /// under a key sealed in the engine store; `show --path` still finds
    /// them) or omit. Kept in the engine store, so every process using it
    /// (mounts included, within a second) follows the same setting
    Paths(PathsArgs),
}

#[derive(Debug, Args)]
pub struct PathsArgs {
    /// The new setting; without it the current one is printed
    #[arg(value_parser = parse_mode)]
    pub mode: Option<AuditPathMode>,
}

/// An audit path mode on the command line (`plain`, `hmac`, `omit`).
pub(crate) fn parse_mode(s: &str) -> Result<AuditPathMode, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Only calls on this key id (or key ARN)
    #[arg(long)]
    pub key_id: Option<String>,
    /// Only calls by this principal, e.g. uid:1000 or user:alice (either
    /// form finds the other's records)
    #[arg(long)]
    pub principal: Option<String>,
    /// Only this operation, e.g. Decrypt
    #[arg(long)]
    pub event: Option<String>,
    /// Only calls at or after this time (RFC 3339)
    #[arg(long)]
    pub since: Option<String>,
    /// Only calls at or before this time (RFC 3339)
    #[arg(long)]
    pub until: Option<String>,
    /// Only calls that failed (denied or in error)
    #[arg(long)]
    pub errors_only: bool,
    /// Only calls on this file path (`kmsfs:path`, e.g. /docs/a.txt), also
    /// where records carry it as HMAC: then the engine store must open
    /// (--passphrase-file or --key-file)
    #[arg(long)]
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// How many of the last records to print first
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: usize,
    /// Keep running and print records as they are appended
    #[arg(short, long)]
    pub follow: bool,
    /// How often --follow looks for new records, in milliseconds
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The public key to check digest signatures with (PEM, or base64 of the
    /// raw key), as exported earlier. Without it the key is derived from the
    /// engine store when --passphrase-file or --key-file is given, else the
    /// trail's own `public-key` file is used, which only proves internal
    /// consistency.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// A digest remembered from an earlier verify (`SEQ:HASH`, printed as
    /// lastDigest): fails if the trail was cut back before it
    #[arg(long, value_name = "SEQ:HASH")]
    pub anchor: Option<String>,
}

/// The trail is read from its files in `<engine dir>/audit` (on the engine
/// host); through a daemon (`--kms`) the public key, the path setting and
/// a path's hmac form come from the daemon, so `export-public-key` and
/// `paths` need no engine directory at all.
pub fn run(engine: &EngineArgs, args: AuditArgs) -> Result<(), CliError> {
    match args.command {
        AuditCommand::Show(a) => show(engine, &audit_dir(engine)?, &a),
        AuditCommand::Tail(a) => tail(&audit_dir(engine)?, engine.output, &a),
        AuditCommand::Verify(a) => verify(engine, &audit_dir(engine)?, &a),
        AuditCommand::ExportPublicKey => export_public_key(engine),
        AuditCommand::Paths(a) => paths(engine, &a),
    }
}

/// `<engine dir>/audit`, the engine dir resolved as every command does
/// (`--engine`/`KMSFS_ENGINE`, else the XDG default).
fn audit_dir(engine: &EngineArgs) -> Result<PathBuf, CliError> {
    let dir = engine_access::audit_dir_of(&engine_access::engine_dir(engine)?);
    if !dir.is_dir() {
        return Err(CliError::Kms(KmsError::NotFound(format!(
            "no audit trail in {}",
            dir.display()
        ))));
    }
    Ok(dir)
}

/// The key the trail's digests must be signed with: derived from the seed
/// sealed in the engine store when it can be opened (a key file or
/// passphrase file is given), else the trail's own `public-key` file, with
/// a warning that this only proves internal consistency.
fn trail_key(engine: &EngineArgs, dir: &Path) -> Result<PublicKey, CliError> {
    if engine.kms.is_some() {
        return daemon_key(engine);
    }
    if let Some(key) = engine_access::audit_public_key(engine)? {
        return Ok(key);
    }
    eprintln!(
        "kmsfs: warning: using the trail's own {PUBLIC_KEY_FILE} file, as the engine store \
         cannot be opened here (no --passphrase-file or --key-file); it only proves the \
         trail is consistent with itself. Pass --public-key with a key exported earlier, \
         or the engine's passphrase or key file, for a proof that holds against someone \
         who can write the trail"
    );
    read_key(&dir.join(PUBLIC_KEY_FILE))
}

/// The key the engine daemon (`--kms`) derives from its store's seed.
fn daemon_key(engine: &EngineArgs) -> Result<PublicKey, CliError> {
    let resp = transport::open(engine)?.call("KmsfsGetAuditPublicKey", json!({}), None)?;
    let pem = resp["PublicKey"].as_str().unwrap_or_default();
    PublicKey::parse(pem).map_err(|e| {
        CliError::Kms(KmsError::Internal(format!(
            "the engine's audit public key: {e}"
        )))
    })
}

fn audit_err(e: AuditError) -> CliError {
    CliError::Kms(KmsError::Internal(e.to_string()))
}

fn print_records(records: &[StoredRecord], output: Output) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let table;
    let lines: Box<dyn Iterator<Item = String>> = match output {
        Output::Json => Box::new(records.iter().map(|r| r.line.clone())),
        Output::Text => Box::new(records.iter().map(StoredRecord::to_text)),
        // Columns sized for this batch (each batch of `tail --follow`
        // is a table of its own); nothing at all for no record.
        Output::Table if records.is_empty() => Box::new(std::iter::empty()),
        Output::Table => {
            table = records_table(records);
            Box::new(table.lines().map(str::to_string))
        }
    };
    for line in lines {
        if let Err(e) = writeln!(out, "{line}") {
            // A closed pipe (`| head`) is not an error of ours.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(CliError::io("writing to stdout", e));
        }
    }
    out.flush()
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Records as a table for people: time, sequence, event, caller, key,
/// outcome and the `kmsfs:path` of the encryption context.
fn records_table(records: &[StoredRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let rec = &r.record;
            let s = |p: &[&str]| rec.str_at(p).unwrap_or("-").to_string();
            let who = match rec.str_at(&["userIdentity", "invokedBy"]) {
                Some(client) => format!("{} via {client}", s(&["userIdentity", "principal"])),
                None => s(&["userIdentity", "principal"]),
            };
            vec![
                s(&["eventTime"]),
                rec.sequence().unwrap_or(0).to_string(),
                s(&["eventName"]),
                who,
                s(&["requestParameters", "keyId"]),
                rec.str_at(&["errorCode"]).unwrap_or("OK").to_string(),
                s(&["requestParameters", "encryptionContext", "kmsfs:path"]),
            ]
        })
        .collect();
    crate::table::grid(
        &[
            "Time",
            "Seq",
            "Event",
            "Principal",
            "Key",
            "Outcome",
            "Path",
        ],
        &rows,
    )
}

/// The other name of `uid:N` / `user:NAME` (records name a caller as
/// `user:NAME` when its uid has an account, else `uid:N`; older mount
/// records always as `uid:N`).
fn principal_aliases(spec: &str, resolver: &Resolver) -> Vec<String> {
    let Ok(p) = resolver.principal_for_spec(spec) else {
        return Vec::new();
    };
    std::iter::once(format!("uid:{}", p.uid))
        .chain(p.user_name.map(|n| format!("user:{n}")))
        .filter(|n| n != spec)
        .collect()
}

fn show(engine: &EngineArgs, dir: &Path, a: &ShowArgs) -> Result<(), CliError> {
    let time = |s: &Option<String>| -> Result<_, CliError> {
        s.as_deref()
            .map(query::parse_time)
            .transpose()
            .map_err(|e| CliError::Usage(e.to_string()))
    };
    let filter = Filter {
        key_id: a.key_id.clone(),
        principal: a.principal.clone(),
        principal_aliases: a
            .principal
            .as_deref()
            .map(|p| principal_aliases(p, Resolver::system()))
            .unwrap_or_default(),
        event_name: a.event.clone(),
        since: time(&a.since)?,
        until: time(&a.until)?,
        errors_only: a.errors_only,
        path_forms: a
            .path
            .as_deref()
            .map(|p| path_forms(engine, p))
            .transpose()?,
    };
    let records = query::show(dir, &filter).map_err(audit_err)?;
    print_records(&records, engine.output)
}

/// The forms `path` has in records: itself and, when the store opens here
/// and has an hmac key, its HMAC. Warns when some records cannot match.
fn path_forms(engine: &EngineArgs, path: &str) -> Result<Vec<String>, CliError> {
    if engine.kms.is_some() {
        let kms = transport::open(engine)?;
        warn_if_omitted(&audit_paths_setting(kms.as_ref())?);
        let resp = kms.call("KmsfsAuditPathForms", json!({ "Path": path }), None)?;
        let forms = resp["Forms"].as_array().cloned().unwrap_or_default();
        return Ok(forms
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect());
    }
    let Some(e) = engine_access::open_to_read(engine)? else {
        eprintln!(
            "kmsfs: warning: the engine store cannot be opened here (no --passphrase-file or \
             --key-file): matching the plaintext path only, records written in hmac mode \
             are not found"
        );
        return Ok(vec![path.to_string()]);
    };
    warn_if_omitted(e.audit_path_mode()?.name());
    Ok(e.audit_path_forms(path)?)
}

fn warn_if_omitted(setting: &str) {
    if setting == AuditPathMode::Omit.name() {
        eprintln!(
            "kmsfs: warning: the audit path setting is omit: records written under it carry \
             no path and cannot be found by path (records from plain or hmac periods can)"
        );
    }
}

/// The engine's audit path setting, by name.
fn audit_paths_setting(kms: &dyn Transport) -> Result<String, CliError> {
    let resp = kms.call("KmsfsGetAuditPaths", json!({}), None)?;
    Ok(resp["AuditPaths"].as_str().unwrap_or_default().to_string())
}

/// `audit paths [MODE]`.
fn paths(engine: &EngineArgs, a: &PathsArgs) -> Result<(), CliError> {
    let kms = transport::open(engine)?;
    let (previous, now) = match a.mode {
        Some(mode) => {
            let resp = kms.call(
                "KmsfsSetAuditPaths",
                json!({"AuditPaths": mode.name()}),
                None,
            )?;
            let name = |f: &str| resp[f].as_str().unwrap_or_default().to_string();
            (Some(name("Previous")), name("AuditPaths"))
        }
        None => (None, audit_paths_setting(kms.as_ref())?),
    };
    match engine.output {
        Output::Json => {
            let mut v = serde_json::json!({ "AuditPaths": now });
            if let Some(p) = previous {
                v["Previous"] = p.into();
            }
            println!("{v}");
        }
        Output::Text | Output::Table => match previous {
            Some(p) => println!("audit paths: {now} (was {p})"),
            None => println!("audit paths: {now}"),
        },
    }
    Ok(())
}

fn tail(dir: &Path, output: Output, a: &TailArgs) -> Result<(), CliError> {
    // Start following before reading the tail so nothing falls in between.
    let mut follower = Follower::from_end(dir).map_err(audit_err)?;
    let records = query::tail(dir, a.lines).map_err(audit_err)?;
    print_records(&records, output)?;
    if !a.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(a.interval_ms.max(10)));
        let new = follower.poll().map_err(audit_err)?;
        print_records(&new, output)?;
    }
}

fn read_key(path: &Path) -> Result<PublicKey, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
    PublicKey::parse(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

fn verify(engine: &EngineArgs, dir: &Path, a: &VerifyArgs) -> Result<(), CliError> {
    let output = engine.output;
    let key = match &a.public_key {
        Some(p) => read_key(p)?,
        None => trail_key(engine, dir)?,
    };
    let anchor = a
        .anchor
        .as_deref()
        .map(|s| {
            Anchor::parse(s)
                .ok_or_else(|| CliError::Usage(format!("--anchor {s:?}: expected SEQ:HASH")))
        })
        .transpose()?;
    let report = verify_with(dir, &key, &VerifyOptions { anchor }).map_err(audit_err)?;
    match output {
        Output::Json => {
            let v = serde_json::to_string_pretty(&report)
                .map_err(|e| CliError::Usage(format!("cannot print report: {e}")))?;
            println!("{v}");
        }
        Output::Text | Output::Table => {
            println!(
                "{} records in {} segments, {} digests; sealed through {}, {} unsealed; key {}",
                report.records,
                report.segments,
                report.digests,
                report.sealed_through,
                report.unsealed_records,
                report.public_key_fingerprint
            );
            if let Some(d) = &report.last_digest {
                println!("last digest (use as --anchor next time): {d}");
            }
            if let Some(t) = &report.torn_tail {
                println!("note: {t}");
            }
            match &report.first_bad {
                Some(b) => println!("INVALID: first bad record: {b}"),
                None => println!("valid"),
            }
        }
    }
    match report.first_bad {
        Some(b) => Err(CliError::Kms(KmsError::StoreCorrupted(format!(
            "audit trail is not intact: first bad record: {b}"
        )))),
        None => Ok(()),
    }
}

fn export_public_key(engine: &EngineArgs) -> Result<(), CliError> {
    let output = engine.output;
    let key = match engine.kms {
        Some(_) => daemon_key(engine)?,
        None => trail_key(engine, &audit_dir(engine)?)?,
    };
    match output {
        Output::Text | Output::Table => print!("{}", key.to_pem()),
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "PublicKey": key.to_pem(),
                "PublicKeyBase64": key.to_base64(),
                "KeySpec": "ED25519",
                "Fingerprint": key.fingerprint(),
            })
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kms_engine::identity::{DEFAULT_TTL, FileAccounts};

    #[test]
    fn a_principal_filter_finds_both_names_of_a_caller() {
        let r = Resolver::new(
            Box::new(FileAccounts {
                passwd: "alice:x:1000:100::/h:/bin/sh\n".into(),
                group: "users:x:100:\n".into(),
            }),
            DEFAULT_TTL,
        );
        assert_eq!(principal_aliases("uid:1000", &r), ["user:alice"]);
        assert_eq!(principal_aliases("user:alice", &r), ["uid:1000"]);
        assert!(principal_aliases("uid:4242", &r).is_empty());
        assert!(principal_aliases("group:users", &r).is_empty());
        assert!(principal_aliases("user:nobody-here", &r).is_empty());
        let rec = |p: &str| {
            serde_json::json!({"userIdentity": {"type": "LocalUser", "principal": p}})
                .as_object()
                .unwrap()
                .clone()
        };
        let f = Filter {
            principal: Some("uid:1000".into()),
            principal_aliases: principal_aliases("uid:1000", &r),
            ..Filter::default()
        };
        assert!(f.matches(&rec("uid:1000")));
        assert!(f.matches(&rec("user:alice")));
        assert!(!f.matches(&rec("user:bob")));
    }
}
