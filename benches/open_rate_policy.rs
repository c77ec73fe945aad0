//! File-open rate on a real kmsfs mount under the policy engine and the audit
//! trail: open + read + close of 2,000 small existing files per pass, several
//! passes, median opens/s per configuration.
//!
//! Configurations: audit sink off (NullSink) vs the file audit trail
//! (fdatasync per record, and batched), the default key policy vs a policy
//! whose allowing statement has conditions (plus a Deny with a condition
//! that is evaluated and does not match), and the data key cache on (the
//! default 5 s reauth interval: after the first pass opens are cache hits)
//! vs off (every open is an engine Decrypt, so every open is policy-checked
//! and audited: the worst case for the audit trail).
//!
//! Run as root (it mounts): `cargo bench --bench open_rate_policy`.

// A benchmark binary: a failed setup is a failed run, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use kms_engine::audit::{AuditSink, FileAuditTrail, NullSink, SyncMode, TrailOptions};
use kms_engine::{
    CreateKeyRequest, Engine, KdfParams, Principal, PutKeyPolicyRequest, RootKeySource, SystemClock,
};
use kmsfs::format::NamesMode;
use kmsfs::fuse::{Core, FsOptions, KmsFs, mount_config};
use kmsfs::keys::KeyService;
use kmsfs::keys::cache::CacheConfig;
use kmsfs::volume::{self, InitOptions, Volume};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const FILES: usize = 2_000;
const PASSES: usize = 3;
const ROUNDS: usize = 3;
const FILE_SIZE: usize = 256;

fn root() -> Principal {
    Principal::from_ids(0, 0, vec![])
}

/// Which audit sink the engine reports to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sink {
    Null,
    FileEveryRecord,
    FileBatched,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::Null => "audit off (NullSink)",
            Sink::FileEveryRecord => "file trail, fdatasync/record",
            Sink::FileBatched => "file trail, batched 256/10ms",
        }
    }
}

/// A volume with FILES files under `/data`, on an engine with one sink.
struct Setup {
    _tmp: tempfile::TempDir,
    cipher: PathBuf,
    mnt: PathBuf,
    engine: Arc<Engine>,
    key_id: String,
    volume_id: String,
    trail: Option<PathBuf>,
}

/// A live mount; unmounted on drop.
struct Mounted {
    session: Option<fuser::BackgroundSession>,
    mnt: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take()
            && s.umount_and_join().is_err()
        {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mnt)
                .status();
        }
    }
}

impl Setup {
    fn new(sink: Sink) -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cipher = tmp.path().join("cipher");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&cipher).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let trail = tmp.path().join("audit");
        let audit: Arc<dyn AuditSink> = match sink {
            Sink::Null => Arc::new(NullSink),
            Sink::FileEveryRecord | Sink::FileBatched => {
                let sync = if sink == Sink::FileBatched {
                    SyncMode::Batched {
                        max_records: 256,
                        max_delay: Duration::from_millis(10),
                    }
                } else {
                    SyncMode::EveryRecord
                };
                Arc::new(
                    FileAuditTrail::open(
                        &trail,
                        Zeroizing::new([0x42; 32]),
                        TrailOptions {
                            sync,
                            ..TrailOptions::default()
                        },
                    )
                    .expect("audit trail"),
                )
            }
        };
        let engine = Arc::new(
            Engine::create(
                &tmp.path().join("engine"),
                RootKeySource::Passphrase(Zeroizing::new("bench passphrase".into())),
                KdfParams::insecure_for_tests(),
                Arc::new(SystemClock),
                audit,
            )
            .expect("engine"),
        );
        let key_id = engine
            .create_key(&root(), CreateKeyRequest::default())
            .expect("key")
            .key_metadata
            .key_id;
        volume::init(
            &cipher,
            &engine,
            &root(),
            &InitOptions {
                master_key_id: key_id.clone(),
                block_size: 4096,
                names_mode: NamesMode::Encrypted,
            },
        )
        .expect("init");
        let ks: Arc<dyn KeyService> = Arc::new(engine.clone());
        let volume_id = Volume::open(&cipher, &ks, &root())
            .expect("open volume")
            .config
            .volume_id
            .clone();
        let s = Setup {
            _tmp: tmp,
            cipher,
            mnt,
            engine,
            key_id,
            volume_id,
            trail: (sink != Sink::Null).then_some(trail),
        };
        let m = s.mount(Duration::from_secs(5));
        let data = m.mnt.join("data");
        std::fs::create_dir(&data).unwrap();
        let content = vec![b'k'; FILE_SIZE];
        for i in 0..FILES {
            std::fs::write(data.join(format!("f{i:05}")), &content).unwrap();
        }
        drop(m);
        s
    }

    fn mount(&self, reauth: Duration) -> Mounted {
        let ks: Arc<dyn KeyService> = Arc::new(self.engine.clone());
        let vol = Volume::open(&self.cipher, &ks, &root()).expect("open volume");
        let opts = FsOptions {
            read_only: false,
            cache: CacheConfig {
                reauth_interval: reauth,
                ..CacheConfig::default()
            },
        };
        let core = Core::new(vol, ks, opts).expect("core");
        let session = fuser::spawn_mount(KmsFs::new(core), &self.mnt, &mount_config(false, false))
            .expect("mount");
        Mounted {
            session: Some(session),
            mnt: self.mnt.clone(),
        }
    }

    fn put_policy(&self, policy: &serde_json::Value) {
        self.engine
            .put_key_policy(
                &root(),
                PutKeyPolicyRequest {
                    key_id: self.key_id.clone(),
                    policy_name: None,
                    policy: policy.to_string(),
                    bypass_policy_lockout_safety_check: None,
                },
            )
            .expect("put policy");
    }

    /// The key's default policy: the creator (root) may do everything.
    fn default_policy(&self) {
        self.put_policy(&serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                "Principal": {"AWS": ["uid:0"]}, "Action": "kms:*", "Resource": "*"}]
        }));
    }

    /// Root administers the key without data actions; data use is allowed
    /// only with conditions on the context, and a conditional Deny is
    /// evaluated on every call.
    fn conditional_policy(&self) {
        self.put_policy(&serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ["uid:0"]},
                 "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:Put*",
                            "kms:Create*", "kms:Revoke*", "kms:Retire*", "kms:Enable*",
                            "kms:Disable*", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
                 "Resource": "*"},
                {"Sid": "Mount", "Effect": "Allow", "Principal": {"AWS": ["uid:0"]},
                 "Action": "kms:Decrypt", "Resource": "*",
                 "Condition": {"StringEquals": {"kms:EncryptionContext:kmsfs:purpose": "names"}}},
                {"Sid": "Data", "Effect": "Allow", "Principal": {"AWS": ["uid:0", "group:staff"]},
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
                 "Resource": "*",
                 "Condition": {
                    "StringLike": {"kms:EncryptionContext:kmsfs:path": ["/data/*", "/shared/*"]},
                    "StringEquals": {"kms:EncryptionContext:kmsfs:volume": self.volume_id},
                    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["kmsfs:path", "kmsfs:volume"]}
                 }},
                {"Sid": "NoHR", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
                 "Resource": "*",
                 "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}}
            ]
        }));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Opens/s of each of PASSES passes of open+read+close of every file
/// (one warm-up pass first, not counted).
fn open_rates(m: &Mounted) -> Vec<f64> {
    let data = m.mnt.join("data");
    let paths: Vec<PathBuf> = (0..FILES).map(|i| data.join(format!("f{i:05}"))).collect();
    let pass = |paths: &[PathBuf]| {
        let start = Instant::now();
        for p in paths {
            let got = std::fs::read(p).expect("read");
            assert_eq!(got.len(), FILE_SIZE);
        }
        FILES as f64 / start.elapsed().as_secs_f64()
    };
    pass(&paths);
    (0..PASSES).map(|_| pass(&paths)).collect()
}

fn records(trail: &Path) -> usize {
    kms_engine::audit::query::show(trail, &Default::default())
        .map(|r| r.len())
        .unwrap_or(0)
}

/// One measured configuration.
struct Config {
    sink: Sink,
    policy: &'static str,
    cache: &'static str,
    reauth: Duration,
    rates: Vec<f64>,
    records: usize,
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    println!(
        "open+read+close of {FILES} files of {FILE_SIZE} B; {ROUNDS} interleaved rounds of \
         {PASSES} passes per configuration; median opens/s over all passes"
    );
    let sinks = [Sink::Null, Sink::FileEveryRecord, Sink::FileBatched];
    let setups: Vec<Setup> = sinks.iter().map(|s| Setup::new(*s)).collect();
    let mut configs = Vec::new();
    for sink in sinks {
        for policy in ["default", "conditions"] {
            for (cache, reauth) in [
                ("on (5 s)", Duration::from_secs(5)),
                ("off", Duration::ZERO),
            ] {
                let label = format!("{sink:?}/{policy}/{cache}");
                if only.as_deref().is_some_and(|o| !label.contains(o)) {
                    continue;
                }
                configs.push(Config {
                    sink,
                    policy,
                    cache,
                    reauth,
                    rates: Vec::new(),
                    records: 0,
                });
            }
        }
    }
    // Rounds interleave every configuration, so that drift in the machine's
    // load spreads over all of them instead of biasing one.
    for _ in 0..ROUNDS {
        for c in &mut configs {
            let i = sinks.iter().position(|s| *s == c.sink).unwrap_or(0);
            let s = &setups[i];
            if c.policy == "conditions" {
                s.conditional_policy();
            } else {
                s.default_policy();
            }
            let before = s.trail.as_deref().map(records).unwrap_or(0);
            let m = s.mount(c.reauth);
            c.rates.extend(open_rates(&m));
            drop(m);
            c.records += s.trail.as_deref().map(records).unwrap_or(0) - before;
        }
    }
    println!(
        "{:<30} {:<12} {:<10} {:>10} {:>10} {:>10} {:>16}",
        "audit", "policy", "DEK cache", "opens/s", "min", "max", "records/open"
    );
    let opens = (ROUNDS * (PASSES + 1) * FILES) as f64;
    for c in &configs {
        let mut sorted = c.rates.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{:<30} {:<12} {:<10} {:>10.0} {:>10.0} {:>10.0} {:>16.2}",
            c.sink.name(),
            c.policy,
            c.cache,
            median(c.rates.clone()),
            sorted.first().copied().unwrap_or(0.0),
            sorted.last().copied().unwrap_or(0.0),
            c.records as f64 / opens
        );
    }
    let get = |sink: Sink, policy: &str, cache: &str| {
        configs
            .iter()
            .find(|c| c.sink == sink && c.policy == policy && c.cache == cache)
            .map(|c| median(c.rates.clone()))
    };
    println!();
    for cache in ["on (5 s)", "off"] {
        for policy in ["default", "conditions"] {
            let Some(base) = get(Sink::Null, policy, cache) else {
                continue;
            };
            for sink in [Sink::FileEveryRecord, Sink::FileBatched] {
                if let Some(r) = get(sink, policy, cache) {
                    println!(
                        "cache {cache:<9} policy {policy:<11} {:<30} {:>6.1}% of the audit-off rate (audit cost {:>5.1}%)",
                        sink.name(),
                        100.0 * r / base,
                        100.0 * (1.0 - r / base)
                    );
                }
            }
        }
        for sink in sinks {
            if let (Some(d), Some(c)) =
                (get(sink, "default", cache), get(sink, "conditions", cache))
            {
                println!(
                    "cache {cache:<9} {:<30} conditional policy at {:.1}% of the default policy's rate",
                    sink.name(),
                    100.0 * c / d
                );
            }
        }
    }
}
