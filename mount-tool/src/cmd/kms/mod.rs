//! `kmsfs kms <command>`: the engine's operations with `aws kms` names and
//! options, each sent to the engine as the AWS JSON request, the response
//! printed as AWS prints it.

mod access_keys;
mod asymmetric;
mod commands;
mod import;
mod init;
mod output;
pub(crate) mod params;
mod root_key;

use crate::cli::{EngineArgs, Output};
use crate::exit::CliError;
use crate::transport;
use clap::{Args, Subcommand};
pub use commands::{OpCommand, Request};
use kms_engine::service::Transport;
use serde_json::Value;
use std::io::Write;

#[derive(Debug, Args)]
pub struct KmsArgs {
    /// A JMESPath expression selecting what to print from the response, as
    /// `aws --query` (e.g. --query CiphertextBlob --output text)
    #[arg(long, global = true, value_name = "JMESPATH", value_parser = output::Query::parse)]
    pub query: Option<output::Query>,
    #[command(subcommand)]
    pub command: KmsCommand,
}

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Create an engine store (refuses if one exists)
    InitEngine(init::InitEngineArgs),
    /// Seal the engine store under a new passphrase or key file (running
    /// mounts keep working; nothing is re-encrypted)
    ChangeRootKey(root_key::ChangeRootKeyArgs),
    #[command(flatten)]
    Op(OpCommand),
    #[command(flatten)]
    PolicyOp(crate::cmd::kms_policy::PolicyOpCommand),
    #[command(flatten)]
    AsymmetricOp(asymmetric::AsymmetricCommand),
    #[command(flatten)]
    ImportOp(import::ImportCommand),
    #[command(flatten)]
    AccessKeyOp(access_keys::AccessKeyCommand),
}

pub fn run(engine: &EngineArgs, args: KmsArgs) -> Result<(), CliError> {
    let query = args.query.as_ref();
    match args.command {
        KmsCommand::InitEngine(a) => init::run(engine, query, &a),
        KmsCommand::ChangeRootKey(a) => root_key::run(engine, query, &a),
        KmsCommand::PolicyOp(op) => {
            let paging = op.auto_paged_field().map(Paging::kms);
            let resp = call(engine, op.request()?, paging)?;
            print_response(&resp, engine.output, query, op.text_fields())
        }
        KmsCommand::Op(op) => {
            // Read fileb:// inputs before asking for a passphrase.
            let request = op.request()?;
            let paging = op.auto_paged_field().map(Paging::kms);
            let resp = call(engine, request, paging)?;
            print_response(&resp, engine.output, query, op.text_fields())
        }
        KmsCommand::AsymmetricOp(op) => {
            let resp = call(engine, op.request()?, None)?;
            print_response(&resp, engine.output, query, op.text_fields())
        }
        KmsCommand::ImportOp(op) => {
            let resp = call(engine, op.request()?, None)?;
            print_response(&resp, engine.output, query, &[])
        }
        KmsCommand::AccessKeyOp(op) => {
            let resp = call(engine, op.request(), op.auto_paging())?;
            print_response(&resp, engine.output, query, &[])
        }
    }
}

/// Sends `request` (every page of it when `paging` is given).
fn call(engine: &EngineArgs, request: Request, paging: Option<Paging>) -> Result<Value, CliError> {
    let kms = transport::open(engine)?;
    Ok(match paging {
        Some(p) => call_all_pages(kms.as_ref(), request, p)?,
        None => kms.call(request.op, request.body, None)?,
    })
}

/// Prints a response as `--query` and `--output` say: with a query, what
/// `aws` prints for it; without, `text_fields` bare in text mode (see
/// [`output::render`]).
fn print_response(
    resp: &Value,
    output: Output,
    query: Option<&output::Query>,
    text_fields: &[&str],
) -> Result<(), CliError> {
    match query {
        Some(q) => print(&output::render_query(resp, output, q).map_err(CliError::Usage)?),
        None => print(&output::render(resp, output, text_fields)),
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::io("cannot write to standard output", e)),
    }
}

/// Where a list response keeps its items and its paging state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// The list's field (`Keys`, `Aliases` ...).
    pub items: &'static str,
    /// `Truncated` (KMS), `IsTruncated` (IAM).
    pub truncated: &'static str,
    /// The response field with the next page's marker: `NextMarker` (KMS),
    /// `Marker` (IAM); the request always sends it as `Marker`.
    pub next_marker: &'static str,
}

impl Paging {
    /// KMS's paging of the list in field `items`.
    pub fn kms(items: &'static str) -> Paging {
        Paging {
            items,
            truncated: "Truncated",
            next_marker: "NextMarker",
        }
    }
}

/// Calls a list operation until it is no longer truncated, following the
/// next marker, and returns the last response with the items field holding
/// every page's items and without the paging fields, as `aws` prints a list
/// it paginated itself.
fn call_all_pages(
    kms: &dyn Transport,
    request: Request,
    paging: Paging,
) -> Result<Value, CliError> {
    let mut body = request.body;
    let mut items = Vec::new();
    loop {
        let mut resp = kms.call(request.op, body.clone(), None)?;
        if let Some(Value::Array(page)) = resp.get_mut(paging.items).map(Value::take) {
            items.extend(page);
        }
        let truncated = resp.get(paging.truncated).and_then(Value::as_bool) == Some(true);
        let next = resp
            .get(paging.next_marker)
            .and_then(Value::as_str)
            .map(str::to_string);
        match (truncated, next) {
            (true, Some(next)) if body.get("Marker").and_then(Value::as_str) != Some(&next) => {
                body["Marker"] = Value::String(next);
            }
            _ => {
                if let Some(obj) = resp.as_object_mut() {
                    obj.remove(paging.next_marker);
                    obj.remove(paging.truncated);
                    obj.insert(paging.items.to_string(), Value::Array(items));
                }
                return Ok(resp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_engine::{KmsError, Principal};
    use serde_json::json;
    use std::sync::Mutex;

    /// Serves 5 keys two at a time and records the requests.
    #[derive(Default)]
    struct Pager {
        requests: Mutex<Vec<Value>>,
    }

    impl Transport for Pager {
        fn call(&self, op: &str, req: Value, _: Option<&Principal>) -> Result<Value, KmsError> {
            assert_eq!(op, "ListKeys");
            self.requests.lock().unwrap().push(req.clone());
            let start: usize = match req.get("Marker").and_then(Value::as_str) {
                Some(m) => m
                    .parse()
                    .map_err(|_| KmsError::Validation("marker".into()))?,
                None => 0,
            };
            let end = (start + 2).min(5);
            let keys: Vec<Value> = (start..end)
                .map(|i| json!({"KeyId": i.to_string()}))
                .collect();
            Ok(if end < 5 {
                json!({"Keys": keys, "Truncated": true, "NextMarker": end.to_string()})
            } else {
                json!({"Keys": keys, "Truncated": false})
            })
        }
    }

    #[test]
    fn auto_paging_merges_every_page() {
        let pager = Pager::default();
        let req = Request {
            op: "ListKeys",
            body: json!({}),
        };
        let resp = call_all_pages(&pager, req, Paging::kms("Keys")).unwrap();
        let ids: Vec<&str> = resp["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["KeyId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4"]);
        assert!(resp.get("Truncated").is_none());
        assert!(resp.get("NextMarker").is_none());
        assert_eq!(
            *pager.requests.lock().unwrap(),
            vec![json!({}), json!({"Marker": "2"}), json!({"Marker": "4"})]
        );
    }

    /// A server that answers the same marker forever must not loop forever.
    struct Stuck;

    impl Transport for Stuck {
        fn call(&self, _: &str, _: Value, _: Option<&Principal>) -> Result<Value, KmsError> {
            Ok(json!({"Keys": [{"KeyId": "x"}], "Truncated": true, "NextMarker": "m"}))
        }
    }

    #[test]
    fn auto_paging_stops_on_a_repeated_marker() {
        let req = Request {
            op: "ListKeys",
            body: json!({}),
        };
        let resp = call_all_pages(&Stuck, req, Paging::kms("Keys")).unwrap();
        assert_eq!(resp["Keys"].as_array().unwrap().len(), 2);
    }
}
