//! The filesystem's [`KeyService`] over the AWS KMS API (the official
//! `aws-sdk-kms` client): AWS KMS itself, or any compatible endpoint
//! (this project's own HTTPS endpoint, LocalStack, moto).
//!
//! - Credentials and region come from the standard AWS chain (environment,
//!   shared config and credentials files with an optional profile, container
//!   and instance metadata); the volume records only the service and the
//!   key ARN. The mount's credentials are the principal the service sees:
//!   the FUSE caller is not sent (see docs/admin-guide.md), except that a
//!   [`ProfileMap`] gives chosen uids credentials (a profile) of their own.
//! - Ciphertext blobs are opaque: nothing here parses them. The key that
//!   wrapped a blob is the one the service names in its answer (GenerateDataKey,
//!   Decrypt and ReEncrypt return the key ARN), remembered per blob for
//!   [`KeyService::wrapping_key_id`]; Decrypt and ReEncrypt name the volume's
//!   key, so a blob wrapped under any other key is refused by the service.
//! - A private CA (a compatible service with its own certificate, such as
//!   this project's endpoint) is trusted through `AWS_CA_BUNDLE` (a PEM
//!   file), as the aws CLI and boto3 do; it replaces the system's roots.
//! - Every call has a connect timeout and a per-attempt timeout; throttling,
//!   5xx answers, timeouts and connection errors are retried with full-jitter
//!   exponential backoff; the number of calls waiting for the service is
//!   bounded. A service that stays unreachable makes the call fail with
//!   `KMSUnavailableException` (EIO), logged once per episode; while it is
//!   down each call makes one attempt, so no open waits for backoff. An
//!   AccessDenied (or a credential the service does not accept) is EACCES.
//! - Counters (requests, errors, retries, throttles) feed `kmsfs status`.

use crate::keys::outage::OutageLog;
use crate::keys::{
    DataKeyBytes, GeneratedDataKey, KeyService, PublicKeyInfo, SecretVec, ServiceStats, to_key,
};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_lc_rs::digest;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, EncryptionAlgorithmSpec};
use kms_engine::{EncryptionContext, KmsError, Principal};
use lru::LruCache;
use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Where the service is and which key the volume uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTarget {
    /// The region; `None`: the one the key ARN names, else the chain's.
    pub region: Option<String>,
    /// An endpoint URL in place of AWS's (`https://host:port`, or
    /// `http://` on a loopback address); `None`: AWS KMS itself.
    pub endpoint: Option<String>,
    /// The master key: key id, key ARN or alias (ARN).
    pub key: String,
}

/// Local uids whose calls go out with credentials of their own: the
/// profile (of the shared AWS config and credentials files) per uid.
/// Other callers' calls use the mount's own credentials.
pub type ProfileMap = std::collections::BTreeMap<u32, String>;

/// Timeouts, retries and the bound on waiting calls.
#[derive(Debug, Clone, Copy)]
pub struct AwsLimits {
    pub connect_timeout: Duration,
    /// One attempt (request and answer), connection included.
    pub attempt_timeout: Duration,
    /// Attempts per call while the service answers (1 while it is down).
    pub max_attempts: u32,
    /// The longest one call takes, its attempts, backoff and wait for a
    /// slot included: what a FUSE request can wait for the service.
    pub call_timeout: Duration,
    /// Backoff before retry n (from 0) is uniform in
    /// `[0, min(backoff_cap, backoff_base * 2^n)]`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Calls in flight at once; more wait (up to `attempt_timeout`).
    pub max_in_flight: usize,
}

impl Default for AwsLimits {
    fn default() -> Self {
        AwsLimits {
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 4,
            call_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_secs(1),
            max_in_flight: 64,
        }
    }
}

/// Blobs whose wrapping key the service named, remembered this many.
const LEARNED_KEYS: usize = 1024;

/// Worker threads of the client's runtime (the calls themselves block the
/// FUSE threads that make them; these only drive the I/O).
const RUNTIME_THREADS: usize = 2;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    throttles: AtomicU64,
}

/// A [`KeyService`] on an AWS-KMS-compatible service.
pub struct AwsKeys {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kms::Client,
    /// Clients with the credentials of a uid's own profile.
    per_uid: HashMap<u32, aws_sdk_kms::Client>,
    /// The volume's key as the service names it (its ARN).
    key_arn: String,
    limits: AwsLimits,
    in_flight: Semaphore,
    outage: OutageLog,
    /// SHA-256 of a blob -> the key ARN the service said wrapped it.
    learned: Mutex<LruCache<[u8; 32], String>>,
    counters: Counters,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("key_arn", &self.key_arn)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How one failed attempt goes on.
enum Failure {
    /// Worth another attempt (throttled, 5xx, timeout, connection).
    Transient { throttled: bool, error: KmsError },
    /// The service's answer stands.
    Final(KmsError),
}

/// Error codes that mean the service does not accept the credentials:
/// to the filesystem, like AccessDenied.
const AUTH_CODES: [&str; 6] = [
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidClientTokenId",
];

fn classify<E>(op: &str, e: SdkError<E, aws_sdk_kms::config::http::HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = |what: String| KmsError::Unavailable(format!("{op}: {what}"));
    match &e {
        SdkError::TimeoutError(_) => Failure::Transient {
            throttled: false,
            error: unavailable("timed out".into()),
        },
        SdkError::DispatchFailure(_) => Failure::Transient {
            throttled: false,
            error: unavailable(format!("{}", DisplayErrorContext(&e))),
        },
        SdkError::ResponseError(_) => Failure::Transient {
            throttled: false,
            error: unavailable("the answer is not an AWS KMS response".into()),
        },
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = e.code().unwrap_or("").to_string();
            let message = e.message().unwrap_or("").to_string();
            if code == "ThrottlingException" || status == 429 {
                Failure::Transient {
                    throttled: true,
                    error: unavailable(format!("throttled ({code} {status})")),
                }
            } else if status >= 500 || code.is_empty() {
                // A 5xx, or an answer that names no AWS exception (a body
                // that is not an AWS KMS response, whatever its status).
                let what = if code.is_empty() {
                    format!("the service answered {status} with no AWS KMS error")
                } else {
                    format!("the service answered {status} {code}")
                };
                Failure::Transient {
                    throttled: false,
                    error: unavailable(what),
                }
            } else if AUTH_CODES.contains(&code.as_str()) {
                Failure::Final(KmsError::AccessDenied(format!("{code}: {message}")))
            } else {
                Failure::Final(KmsError::from_exception(&code, message))
            }
        }
        _ => Failure::Final(KmsError::Internal(format!(
            "{op}: {}",
            DisplayErrorContext(&e)
        ))),
    }
}

/// A uniform random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return max / 2;
    }
    let r = u64::from_le_bytes(b) as f64 / u64::MAX as f64;
    max.mul_f64(r)
}

fn blob_hash(blob: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, blob);
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

fn context_map(ctx: &EncryptionContext) -> HashMap<String, String> {
    ctx.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The blob field of an answer, or an error naming what is missing.
fn blob(op: &str, name: &str, b: Option<Blob>) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    b.map(|b| Zeroizing::new(b.into_inner()))
        .ok_or_else(|| KmsError::Unavailable(format!("{op}: the answer has no {name}")))
}

impl AwsKeys {
    /// A client for `target` with `limits`; resolves the key to its ARN
    /// (DescribeKey), so that a key named by id or alias is recorded and
    /// used as the service names it.
    pub fn connect(target: &AwsTarget, limits: AwsLimits) -> Result<AwsKeys, KmsError> {
        Self::connect_with_profiles(target, limits, &ProfileMap::new())
    }

    /// Like [`AwsKeys::connect`], with the calls of the uids in `profiles`
    /// made with their profile's credentials (each resolved once here, so a
    /// missing profile or credential fails the mount, not a later open).
    pub fn connect_with_profiles(
        target: &AwsTarget,
        limits: AwsLimits,
        profiles: &ProfileMap,
    ) -> Result<AwsKeys, KmsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("kmsfs-aws-kms")
            .enable_all()
            .build()
            .map_err(|e| KmsError::Internal(format!("the AWS client's runtime: {e}")))?;
        let region = target
            .region
            .clone()
            .or_else(|| region_of_arn(&target.key).map(str::to_string));
        let load = |profile: Option<&str>| {
            let region = region.clone();
            let profile = profile.map(str::to_string);
            async move {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(limits.connect_timeout)
                            .operation_attempt_timeout(limits.attempt_timeout)
                            .build(),
                    )
                    // Retries are ours (counted, and skipped while the service is down).
                    .retry_config(RetryConfig::disabled());
                if let Some(r) = region {
                    loader = loader.region(aws_config::Region::new(r));
                }
                if let Some(url) = &target.endpoint {
                    loader = loader.endpoint_url(url);
                }
                if let Some(client) = ca_bundle_client()? {
                    loader = loader.http_client(client);
                }
                if let Some(p) = &profile {
                    // The profile's credentials only: the default chain
                    // would take the environment's (the mount's own) first.
                    let creds = aws_config::profile::ProfileFileCredentialsProvider::builder()
                        .profile_name(p)
                        .build();
                    loader = loader.profile_name(p).credentials_provider(creds);
                }
                Ok::<_, KmsError>(loader.load().await)
            }
        };
        let sdk = runtime.block_on(load(None))?;
        let mut per_uid = HashMap::new();
        for (uid, profile) in profiles {
            let conf = runtime.block_on(async {
                let conf = load(Some(profile)).await?;
                check_credentials(&conf, profile).await?;
                Ok::<_, KmsError>(conf)
            })?;
            per_uid.insert(*uid, aws_sdk_kms::Client::new(&conf));
        }
        if sdk.region().is_none() {
            return Err(KmsError::Validation(
                "no AWS region: name one (aws://REGION/KEY), use a key ARN, or set AWS_REGION \
                 or a profile's region"
                    .into(),
            ));
        }
        let client = aws_sdk_kms::Client::new(&sdk);
        let service = match &target.endpoint {
            Some(url) => format!("the key service {url}"),
            None => format!(
                "AWS KMS ({})",
                sdk.region().map(|r| r.as_ref()).unwrap_or("?")
            ),
        };
        let mut keys = AwsKeys {
            runtime,
            client,
            per_uid,
            key_arn: target.key.clone(),
            limits,
            in_flight: Semaphore::new(limits.max_in_flight.max(1)),
            outage: OutageLog::new(service),
            learned: Mutex::new(LruCache::new(
                NonZeroUsize::new(LEARNED_KEYS).unwrap_or(NonZeroUsize::MIN),
            )),
            counters: Counters::default(),
        };
        keys.key_arn = keys.describe_key_arn(&target.key)?;
        Ok(keys)
    }

    /// The volume's key ARN.
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    /// The client whose credentials `caller`'s calls go out with.
    fn client_for(&self, caller: &Principal) -> &aws_sdk_kms::Client {
        self.per_uid.get(&caller.uid).unwrap_or(&self.client)
    }

    fn describe_key_arn(&self, key: &str) -> Result<String, KmsError> {
        let out = self.call("DescribeKey", || {
            self.client.describe_key().key_id(key).send()
        })?;
        out.key_metadata
            .and_then(|m| m.arn)
            .ok_or_else(|| KmsError::Unavailable("DescribeKey: the answer has no key ARN".into()))
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of
    /// attempts; counts and logs (once per outage).
    fn call<T, E, F, Fut>(&self, op: &str, attempt: F) -> Result<T, KmsError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, aws_sdk_kms::config::http::HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let attempts = if self.outage.is_down() {
            1
        } else {
            self.limits.max_attempts.max(1)
        };
        let all_attempts = async {
            let mut last = KmsError::Unavailable(format!("{op}: not attempted"));
            for n in 0..attempts {
                if n > 0 {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let cap = self
                        .limits
                        .backoff_base
                        .saturating_mul(1 << n.min(16))
                        .min(self.limits.backoff_cap);
                    tokio::time::sleep(jitter(cap)).await;
                }
                let permit =
                    tokio::time::timeout(self.limits.attempt_timeout, self.in_flight.acquire())
                        .await;
                let Ok(Ok(_permit)) = permit else {
                    last = KmsError::Unavailable(format!(
                        "{op}: {} calls already wait for the service",
                        self.limits.max_in_flight
                    ));
                    continue;
                };
                match attempt().await {
                    Ok(v) => return Ok(v),
                    Err(e) => match classify(op, e) {
                        Failure::Final(e) => return Err(e),
                        Failure::Transient { throttled, error } => {
                            if throttled {
                                self.counters.throttles.fetch_add(1, Ordering::Relaxed);
                            }
                            last = error;
                        }
                    },
                }
            }
            Err(last)
        };
        let result = self.runtime.block_on(async {
            tokio::time::timeout(self.limits.call_timeout, all_attempts)
                .await
                .unwrap_or_else(|_| {
                    Err(KmsError::Unavailable(format!(
                        "{op}: no answer within {:?}",
                        self.limits.call_timeout
                    )))
                })
        });
        if result.is_err() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.outage.observe(&result);
        result
    }

    /// Remembers the key the service named for `blob`, by its key id (the
    /// part of the ARN after `key/`), as the engine's own blobs name theirs,
    /// so that a volume's `master_key_id` compares the same either way.
    fn learn(&self, blob: &[u8], key_arn: Option<String>) {
        if let Some(arn) = key_arn
            && let Ok(mut learned) = self.learned.lock()
        {
            learned.put(blob_hash(blob), key_id_of(&arn).to_string());
        }
    }
}

/// Resolves the credentials of `conf` once: a profile that does not exist
/// or has no usable credentials is refused by name.
async fn check_credentials(conf: &aws_config::SdkConfig, profile: &str) -> Result<(), KmsError> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = conf.credentials_provider().ok_or_else(|| {
        KmsError::Validation(format!("AWS profile {profile}: no credentials provider"))
    })?;
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| {
            KmsError::Validation(format!(
                "AWS profile {profile}: no credentials: {}",
                DisplayErrorContext(&e)
            ))
        })
}

/// Largest CA bundle read from `AWS_CA_BUNDLE`.
const MAX_CA_BUNDLE: u64 = 1 << 20;

/// An HTTPS client that trusts only the certificates in the PEM file
/// `AWS_CA_BUNDLE` names; `None` when it is unset.
fn ca_bundle_client() -> Result<Option<aws_sdk_kms::config::SharedHttpClient>, KmsError> {
    use aws_smithy_http_client::tls;
    use std::io::Read;
    let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let bad = |why: String| {
        KmsError::Validation(format!(
            "AWS_CA_BUNDLE {}: {why}",
            std::path::Path::new(&path).display()
        ))
    };
    let mut pem = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_CA_BUNDLE).read_to_end(&mut pem))
        .map_err(|e| bad(e.to_string()))?;
    let context = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem))
        .build()
        .map_err(|e| bad(format!("{}", DisplayErrorContext(&e))))?;
    Ok(Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    ))
}

/// The key id of a key ARN (`arn:…:key/ID`); anything else as it is.
pub fn key_id_of(arn: &str) -> &str {
    arn.rsplit_once(":key/").map_or(arn, |(_, id)| id)
}

/// The region an ARN names (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
pub fn region_of_arn(key: &str) -> Option<&str> {
    let mut parts = key.strip_prefix("arn:")?.split(':');
    let (_partition, service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (service == "kms" && !region.is_empty()).then_some(region)
}

impl KeyService for AwsKeys {
    fn generate_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let op = "GenerateDataKey";
        let out = self.call(op, || {
            self.client_for(caller)
                .generate_data_key()
                .key_id(key_id)
                .key_spec(DataKeySpec::Aes256)
                .set_encryption_context(Some(context_map(ctx)))
                .send()
        })?;
        let plaintext = to_key(&blob(op, "Plaintext", out.plaintext)?)?;
        let wrapped = blob(op, "CiphertextBlob", out.ciphertext_blob)?.to_vec();
        self.learn(&wrapped, out.key_id);
        Ok(GeneratedDataKey { plaintext, wrapped })
    }

    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        plaintext: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let op = "Encrypt";
        let out = self.call(op, || {
            self.client_for(caller)
                .encrypt()
                .key_id(key_id)
                .plaintext(Blob::new(plaintext.to_vec()))
                .set_encryption_context(Some(context_map(ctx)))
                .send()
        })?;
        let wrapped = blob(op, "CiphertextBlob", out.ciphertext_blob)?.to_vec();
        self.learn(&wrapped, out.key_id);
        Ok(wrapped)
    }

    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        let op = "Decrypt";
        let out = self.call(op, || {
            self.client_for(caller)
                .decrypt()
                .ciphertext_blob(Blob::new(wrapped))
                .key_id(&self.key_arn)
                .set_encryption_context(Some(context_map(ctx)))
                .send()
        })?;
        let key = to_key(&blob(op, "Plaintext", out.plaintext)?)?;
        self.learn(wrapped, out.key_id);
        Ok(key)
    }

    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let op = "ReEncrypt";
        let out = self.call(op, || {
            self.client_for(caller)
                .re_encrypt()
                .ciphertext_blob(Blob::new(wrapped))
                .source_key_id(&self.key_arn)
                .set_source_encryption_context(Some(context_map(old_ctx)))
                .destination_key_id(&self.key_arn)
                .set_destination_encryption_context(Some(context_map(new_ctx)))
                .send()
        })?;
        let rewrapped = blob(op, "CiphertextBlob", out.ciphertext_blob)?.to_vec();
        self.learn(&rewrapped, out.key_id);
        Ok(rewrapped)
    }

    /// The id of the key the service named when it last generated,
    /// decrypted or re-encrypted `wrapped` (the blob itself is opaque).
    fn wrapping_key_id(&self, wrapped: &[u8]) -> Result<String, KmsError> {
        self.learned
            .lock()
            .ok()
            .and_then(|mut l| l.get(&blob_hash(wrapped)).cloned())
            .ok_or_else(|| {
                KmsError::InvalidCiphertext(
                    "the service has not named the key of this blob: it is known only once \
                     the service decrypted it"
                        .into(),
                )
            })
    }

    fn reencrypt_data_key(
        &self,
        _caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        let op = "ReEncrypt";
        let out = self.call(op, || {
            self.client
                .re_encrypt()
                .ciphertext_blob(Blob::new(wrapped))
                .source_key_id(&self.key_arn)
                .set_source_encryption_context(Some(context_map(ctx)))
                .destination_key_id(dest_key)
                .set_destination_encryption_context(Some(context_map(ctx)))
                .send()
        })?;
        let rewrapped = blob(op, "CiphertextBlob", out.ciphertext_blob)?.to_vec();
        self.learn(&rewrapped, out.key_id);
        Ok(rewrapped)
    }

    fn get_public_key(&self, caller: &Principal, key_id: &str) -> Result<PublicKeyInfo, KmsError> {
        let op = "GetPublicKey";
        let out = self.call(op, || {
            self.client_for(caller)
                .get_public_key()
                .key_id(key_id)
                .send()
        })?;
        let missing = |name: &str| KmsError::Internal(format!("the {op} answer has no {name}"));
        Ok(PublicKeyInfo {
            key_id: out.key_id.ok_or_else(|| missing("KeyId"))?,
            public_key: blob(op, "PublicKey", out.public_key)?.to_vec(),
            key_spec: out
                .key_spec
                .map(|s| s.as_str().to_string())
                .ok_or_else(|| missing("KeySpec"))?,
            key_usage: out
                .key_usage
                .map(|s| s.as_str().to_string())
                .ok_or_else(|| missing("KeyUsage"))?,
            encryption_algorithms: out
                .encryption_algorithms
                .unwrap_or_default()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
        })
    }

    fn decrypt_asymmetric(
        &self,
        caller: &Principal,
        key_id: &str,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<SecretVec, KmsError> {
        let op = "Decrypt";
        let algorithm = EncryptionAlgorithmSpec::from(algorithm);
        let out = self.call(op, || {
            self.client_for(caller)
                .decrypt()
                .ciphertext_blob(Blob::new(ciphertext))
                .key_id(key_id)
                .encryption_algorithm(algorithm.clone())
                .send()
        })?;
        blob(op, "Plaintext", out.plaintext)
    }

    fn service_stats(&self) -> Option<ServiceStats> {
        let c = &self.counters;
        Some(ServiceStats {
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttles: c.throttles.load(Ordering::Relaxed),
        })
    }

    fn unreachable(&self) -> bool {
        self.outage.is_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_regions() {
        assert_eq!(
            region_of_arn("arn:aws:kms:eu-west-1:111122223333:key/1234abcd"),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_arn("arn:aws-cn:kms:cn-north-1:111122223333:alias/x"),
            Some("cn-north-1")
        );
        assert_eq!(region_of_arn("alias/x"), None);
        assert_eq!(region_of_arn("arn:aws:s3:::bucket"), None);
        assert_eq!(region_of_arn("1234abcd"), None);
        assert_eq!(
            key_id_of("arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd"),
            "mrk-1234abcd"
        );
        assert_eq!(key_id_of("1234abcd"), "1234abcd");
    }

    #[test]
    fn jitter_stays_within_its_cap() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
