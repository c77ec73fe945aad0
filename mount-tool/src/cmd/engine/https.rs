//! `kmsfs engine serve --http ADDR:PORT`: the AWS KMS API (AWS JSON 1.1)
//! beside the Unix socket, served by the same daemon from the same engine
//! into the same audit trail. HTTPS with the certificate and key given, or
//! with the engine's own self-signed certificate (generated once in the
//! engine directory; its path and SHA-256 fingerprint are printed so that
//! clients can trust it); plain HTTP only when asked for and only on a
//! loopback address. Every request is verified with SigV4 against the
//! engine's access keys (`kmsfs kms create-access-key`).

use crate::exit::CliError;
use clap::Args;
use kms_engine::Engine;
use kms_engine::service::http::tls::{self, ServerCert};
use kms_engine::service::http::{self, Authenticator, Endpoint, Limits, RateLimit};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The HTTPS options of `kmsfs engine serve`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Also serve the AWS KMS API (AWS JSON 1.1, as boto3, the aws CLI and
    /// the AWS SDKs speak it) over HTTPS on ADDR:PORT (port 0: any free
    /// port, printed at start)
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// The HTTPS certificate chain (PEM) [default: the engine's self-signed
    /// certificate, ENGINE_DIR/https-cert.pem, generated at the first start]
    #[arg(long, value_name = "FILE", requires = "tls_key", requires = "http")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A further DNS name or IP address the generated self-signed
    /// certificate names (besides localhost, 127.0.0.1 and ::1); repeatable;
    /// only when the certificate is generated
    #[arg(
        long = "tls-name",
        value_name = "NAME",
        requires = "http",
        conflicts_with = "tls_cert"
    )]
    pub tls_names: Vec<String>,
    /// Serve plain HTTP instead of HTTPS: refused unless ADDR is a loopback
    /// address (127.0.0.1, ::1)
    #[arg(long, requires = "http", conflicts_with = "tls_cert")]
    pub http_plain: bool,
    /// The region of the ARNs the daemon shows and accepts, and of the
    /// SigV4 credential scope clients sign for (their --region)
    #[arg(long, value_name = "REGION", default_value = kms_engine::ids::DEFAULT_REGION)]
    pub region: String,
    /// The 12-digit account id of the ARNs and of key metadata
    #[arg(long, value_name = "ID", default_value = kms_engine::ids::DEFAULT_ACCOUNT_ID)]
    pub account_id: String,
    /// Requests per second one principal may make over HTTPS; beyond,
    /// ThrottlingException (which AWS clients retry); 0: no limit
    #[arg(long, value_name = "N", default_value_t = http::DEFAULT_RATE_PER_PRINCIPAL)]
    pub http_rate: u32,
}

/// What `--http` resolves to before the store is opened: mistakes in the
/// options are reported before a passphrase is asked for.
#[derive(Debug)]
pub struct Plan {
    addr: SocketAddr,
    plain: bool,
}

/// Checks the options (address, plain HTTP only on loopback) and sets the
/// process's ARN scope; `None` without `--http`.
pub fn plan(args: &HttpArgs) -> Result<Option<Plan>, CliError> {
    kms_engine::ids::set_arn_scope(&args.region, &args.account_id)
        .map_err(|e| CliError::Usage(format!("--region/--account-id: {e}")))?;
    let Some(spec) = &args.http else {
        return Ok(None);
    };
    let addr = resolve(spec)?;
    http::check_plain(!args.http_plain, addr).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(Some(Plan {
        addr,
        plain: args.http_plain,
    }))
}

/// `ADDR:PORT` (`127.0.0.1:8443`, `[::1]:8443`, `localhost:8443`).
fn resolve(spec: &str) -> Result<SocketAddr, CliError> {
    if let Ok(a) = spec.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = |why: String| CliError::Usage(format!("--http {spec}: {why}"));
    let mut addrs = spec
        .to_socket_addrs()
        .map_err(|e| bad(format!("not an ADDR:PORT ({e})")))?;
    addrs
        .next()
        .ok_or_else(|| bad("the name resolves to no address".into()))
}

/// A bound, not yet serving HTTPS listener.
pub struct Bound {
    listener: std::net::TcpListener,
    endpoint: Endpoint,
}

/// Loads or generates the certificate, binds the address and prints where
/// the endpoint is and how to trust it (one line each on standard error).
pub fn bind(
    plan: &Plan,
    args: &HttpArgs,
    engine: &Arc<Engine>,
    engine_dir: &Path,
) -> Result<Bound, CliError> {
    let cert = if plan.plain {
        None
    } else {
        Some(certificate(args, engine_dir)?)
    };
    let listener = std::net::TcpListener::bind(plan.addr)
        .map_err(|e| CliError::io(format!("--http: binding {}", plan.addr), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::io("--http: reading the bound address", e))?;
    let limits = Limits {
        rate: (args.http_rate > 0).then(|| RateLimit::per_second(args.http_rate)),
        ..Limits::default()
    };
    let auth: Arc<dyn Authenticator> = Arc::new(http::SigV4Authenticator::new(engine.clone()));
    let endpoint = Endpoint::new(
        engine.clone(),
        auth,
        cert.as_ref().map(|c| c.config.clone()),
        limits,
    );
    let scheme = if plan.plain { "http" } else { "https" };
    eprintln!(
        "{ENDPOINT_LINE}{scheme}://{local} (region {}, account {})",
        args.region, args.account_id
    );
    if let Some(c) = &cert {
        eprintln!(
            "{CERT_LINE}{}{} SHA-256 {}",
            c.cert_path.display(),
            if c.generated { " (generated)" } else { "" },
            c.fingerprint
        );
    }
    Ok(Bound { listener, endpoint })
}

fn certificate(args: &HttpArgs, engine_dir: &Path) -> Result<ServerCert, CliError> {
    let r = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => tls::from_pem_files(cert, key),
        _ => tls::self_signed(engine_dir, &args.tls_names),
    };
    r.map_err(|e| CliError::Usage(format!("--http: {e}")))
}

impl Bound {
    /// The listener in the daemon's runtime (call inside it), ready to
    /// serve.
    pub fn listen(self) -> Result<Listening, CliError> {
        let io = |e| CliError::io("--http: preparing the listener", e);
        self.listener.set_nonblocking(true).map_err(io)?;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(io)?;
        Ok(Listening {
            listener,
            endpoint: Arc::new(self.endpoint),
        })
    }
}

/// The endpoint in the daemon's runtime.
pub struct Listening {
    listener: tokio::net::TcpListener,
    endpoint: Arc<Endpoint>,
}

impl Listening {
    /// Serves until `stopped` completes, then lets the requests in flight
    /// finish.
    pub async fn serve(
        self,
        stopped: impl std::future::Future<Output = ()>,
    ) -> Result<(), CliError> {
        self.endpoint
            .serve(self.listener, stopped)
            .await
            .map_err(|e| CliError::Usage(format!("--http: {e}")))
    }
}

/// The lines [`bind`] prints, which `--background` repeats from the log.
pub fn is_endpoint_line(line: &str) -> bool {
    line.starts_with(ENDPOINT_LINE) || line.starts_with(CERT_LINE)
}

const ENDPOINT_LINE: &str = "kmsfs: AWS KMS endpoint on ";
const CERT_LINE: &str = "kmsfs: TLS certificate ";
