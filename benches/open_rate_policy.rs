//! File-open rate and CPU cost per open on a real kmsfs mount under the
//! policy engine and the audit trail: open + read + close of small existing
//! files, many short interleaved passes, medians per configuration and
//! per-round ratios audit-on / audit-off.
//!
//! Configurations: audit sink off (NullSink) vs the file audit trail
//! (fdatasync per record with the trail on tmpfs and on a disk filesystem,
//! and batched on disk), the default key policy vs a policy whose allowing
//! statement has conditions (plus a Deny with a condition that is evaluated
//! and does not match), and the data key cache on (the default 5 s reauth
//! interval: most opens are cache hits) vs off (every open is an engine
//! Decrypt, so every open is policy-checked and audited: the worst case for
//! the audit trail).
//!
//! Two measures per pass: the wall-clock open rate, and the CPU time of the
//! whole process per open (`CLOCK_PROCESS_CPUTIME_ID`: this process is both
//! the opener and the FUSE daemon, so that is the total CPU an open costs,
//! kernel FUSE work included, minus work the kernel does in its own threads,
//! e.g. block I/O completion). On a shared machine the wall-clock rate
//! varies by several times between passes with the load of other processes;
//! the CPU time per open varies far less, and it is what the audit adds
//! when the trail's flush is cheap. Every configuration has its own mount,
//! all mounted for the whole run; each round runs one pass over the files
//! per configuration and policy, interleaved in chunks of 50 files in
//! alternating order (A, B, ..., B, A, A, B, ...), so that a burst of load
//! from elsewhere hits every configuration of the round alike; ratios
//! audit-on / audit-off are taken within a round and their median reported.
//!
//! Run as root (it mounts): `cargo bench --bench open_rate_policy`.
//! Optional first argument: run only configurations whose label contains it
//! (`cargo bench --bench open_rate_policy -- off/`). Environment:
//! `OPEN_RATE_ROUNDS` (default 20), `OPEN_RATE_FILES` (per pass, default
//! 1000), `OPEN_RATE_CHUNK` (default 50), `OPEN_RATE_DISK_DIR` (default `/var/tmp`: volumes, engines and the
//! on-disk trails), `OPEN_RATE_TMPFS_DIR` (default `/dev/shm`: the tmpfs
//! trail).

// A benchmark binary: a failed setup is a failed run, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use kms_engine::audit::{AuditSink, FileAuditTrail, NullSink, SyncMode, TrailOptions};
use kms_engine::{
    CreateKeyRequest, Engine, KdfParams, Principal, PutKeyPolicyRequest, RootKeySource, SystemClock,
};
use kmsfs::format::NamesMode;
use kmsfs::fuse::{Core, FsOptions, KmsFs};
use kmsfs::keys::KeyService;
use kmsfs::keys::cache::CacheConfig;
use kmsfs::volume::{self, InitOptions, Volume};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const FILE_SIZE: usize = 256;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn root() -> Principal {
    Principal::from_ids(0, 0, vec![])
}

/// Which audit sink the engine reports to, and where its trail lives.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sink {
    Null,
    EveryRecordTmpfs,
    EveryRecordDisk,
    BatchedDisk,
}

impl Sink {
    const ALL: [Sink; 4] = [
        Sink::Null,
        Sink::EveryRecordTmpfs,
        Sink::EveryRecordDisk,
        Sink::BatchedDisk,
    ];

    fn name(self) -> &'static str {
        match self {
            Sink::Null => "audit off (NullSink)",
            Sink::EveryRecordTmpfs => "trail fdatasync/record, tmpfs",
            Sink::EveryRecordDisk => "trail fdatasync/record, disk",
            Sink::BatchedDisk => "trail batched 256/10ms, disk",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Sink::Null => "null",
            Sink::EveryRecordTmpfs => "sync-tmpfs",
            Sink::EveryRecordDisk => "sync-disk",
            Sink::BatchedDisk => "batched-disk",
        }
    }
}

/// The filesystem type of `p`, from `statfs`.
fn fs_type(p: &Path) -> String {
    match rustix::fs::statfs(p) {
        Ok(s) => match s.f_type as u64 {
            0x0102_1994 => "tmpfs".into(),
            0xEF53 => "ext2/3/4".into(),
            0x5846_5342 => "xfs".into(),
            0x9123_683E => "btrfs".into(),
            0x6573_5546 => "fuse".into(),
            other => format!("f_type {other:#x}"),
        },
        Err(e) => format!("statfs failed: {e}"),
    }
}

/// A volume with `files` files under `/data`, on an engine with one sink.
struct Setup {
    _tmp: tempfile::TempDir,
    _audit_tmp: Option<tempfile::TempDir>,
    cipher: PathBuf,
    mnt: PathBuf,
    engine: Arc<Engine>,
    key_id: String,
    volume_id: String,
    trail: Option<(PathBuf, Arc<FileAuditTrail>)>,
}

/// A live mount; unmounted on drop.
struct Mounted {
    session: Option<kmsfs::fuse::mount::Background>,
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

/// Forwards to the trail, so that the bench keeps a handle on it.
#[derive(Debug)]
struct Shared(Arc<FileAuditTrail>);

impl AuditSink for Shared {
    fn record(&self, event: &kms_engine::audit::AuditEvent) -> Result<(), kms_engine::KmsError> {
        self.0.record(event)
    }
}

impl Setup {
    fn new(sink: Sink, files: usize, disk: &Path, tmpfs: &Path) -> Setup {
        let tmp = tempfile::tempdir_in(disk).expect("tempdir");
        let cipher = tmp.path().join("cipher");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&cipher).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let audit_tmp =
            (sink == Sink::EveryRecordTmpfs).then(|| tempfile::tempdir_in(tmpfs).expect("tmpfs"));
        let trail_dir = audit_tmp
            .as_ref()
            .map_or_else(|| tmp.path().join("audit"), |t| t.path().join("audit"));
        let mut trail = None;
        let audit: Arc<dyn AuditSink> = match sink {
            Sink::Null => Arc::new(NullSink),
            Sink::EveryRecordTmpfs | Sink::EveryRecordDisk | Sink::BatchedDisk => {
                let sync = if sink == Sink::BatchedDisk {
                    SyncMode::Batched {
                        max_records: 256,
                        max_delay: Duration::from_millis(10),
                    }
                } else {
                    SyncMode::EveryRecord
                };
                let t = Arc::new(
                    FileAuditTrail::open(
                        &trail_dir,
                        Zeroizing::new([0x42; 32]),
                        TrailOptions {
                            sync,
                            ..TrailOptions::default()
                        },
                    )
                    .expect("audit trail"),
                );
                trail = Some((trail_dir, Arc::clone(&t)));
                Arc::new(Shared(t))
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
                long_names: true,
                kms: None,
                write_only_key: None,
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
            _audit_tmp: audit_tmp,
            cipher,
            mnt,
            engine,
            key_id,
            volume_id,
            trail,
        };
        let m = s.mount(Duration::from_secs(5));
        let data = m.mnt.join("data");
        std::fs::create_dir(&data).unwrap();
        let content = vec![b'k'; FILE_SIZE];
        for i in 0..files {
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
            background_wrap: None,
            ..Default::default()
        };
        let core = Core::new(vol, ks, opts).expect("core");
        let spec = kmsfs::fuse::mount::MountSpec {
            cipherdir: self.cipher.clone(),
            mountpoint: self.mnt.clone(),
            read_only: false,
            allow_other: false,
        };
        let session = kmsfs::fuse::mount::mount(KmsFs::new(core), &spec)
            .and_then(|m| m.spawn())
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

    fn set_policy(&self, policy: Policy) {
        match policy {
            Policy::Default => self.default_policy(),
            Policy::Conditions => self.conditional_policy(),
        }
    }

    fn records(&self) -> usize {
        self.trail.as_ref().map_or(0, |(dir, _)| {
            kms_engine::audit::query::show(dir, &Default::default())
                .map(|r| r.len())
                .unwrap_or(0)
        })
    }

    fn flushes(&self) -> u64 {
        self.trail.as_ref().map_or(0, |(_, t)| t.group_flushes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Default,
    Conditions,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Default => "default",
            Policy::Conditions => "conditions",
        }
    }
}

/// The data key cache setting of a mount.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cache {
    On,
    Off,
}

impl Cache {
    fn name(self) -> &'static str {
        match self {
            Cache::On => "on (5 s)",
            Cache::Off => "off",
        }
    }

    fn reauth(self) -> Duration {
        match self {
            Cache::On => Duration::from_secs(5),
            Cache::Off => Duration::ZERO,
        }
    }
}

/// CPU time of the whole process (every thread, user + system).
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// User and system CPU time of the process in clock ticks (`/proc/self/stat`
/// fields 14 and 15): only for the split of totals, the ticks are coarse.
fn user_sys_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; fields after it do not.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3 (state), so field n is f[n - 3].
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// One pass's figures.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Opens per second (wall clock).
    rate: f64,
    /// Process CPU microseconds per open.
    cpu_us: f64,
}

/// One measured configuration with its own mount.
struct Config {
    sink: Sink,
    cache: Cache,
    setup: usize,
    mount: Option<Mounted>,
    paths: Vec<PathBuf>,
    /// Per policy (index: Default, Conditions), per round.
    passes: [Vec<Pass>; 2],
    user_ticks: u64,
    sys_ticks: u64,
    opens: u64,
    records_before: usize,
    flushes_before: u64,
}

impl Config {
    fn label(&self) -> String {
        format!(
            "{}/{}",
            self.sink.short(),
            if self.cache == Cache::On {
                "cache-on"
            } else {
                "cache-off"
            }
        )
    }

    /// Open + read + close of the files in `range`; returns the wall-clock
    /// and process CPU time it took.
    fn run(&mut self, range: std::ops::Range<usize>) -> (Duration, Duration) {
        let (u0, s0) = user_sys_ticks();
        let cpu0 = process_cpu();
        let start = Instant::now();
        for p in &self.paths[range.clone()] {
            let got = std::fs::read(p).expect("read");
            assert_eq!(got.len(), FILE_SIZE);
        }
        let wall = start.elapsed();
        let cpu = process_cpu() - cpu0;
        let (u1, s1) = user_sys_ticks();
        self.user_ticks += u1 - u0;
        self.sys_ticks += s1 - s0;
        self.opens += range.len() as u64;
        (wall, cpu)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 25th and 75th percentiles (nearest rank).
fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.75))
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let rounds = env_usize("OPEN_RATE_ROUNDS", 20);
    let files = env_usize("OPEN_RATE_FILES", 1000);
    let chunk = env_usize("OPEN_RATE_CHUNK", 50);
    let disk = PathBuf::from(std::env::var("OPEN_RATE_DISK_DIR").unwrap_or("/var/tmp".into()));
    let tmpfs = PathBuf::from(std::env::var("OPEN_RATE_TMPFS_DIR").unwrap_or("/dev/shm".into()));
    println!(
        "open+read+close of {files} files of {FILE_SIZE} B per pass; {rounds} rounds, each one \
         pass of every configuration per policy, interleaved in chunks of {chunk} files in \
         alternating order (after one warm-up pass)"
    );
    println!(
        "volumes, engines, disk trails: {} ({}); tmpfs trail: {} ({})",
        disk.display(),
        fs_type(&disk),
        tmpfs.display(),
        fs_type(&tmpfs)
    );
    let mut configs: Vec<Config> = Vec::new();
    let mut setups: Vec<Setup> = Vec::new();
    for sink in Sink::ALL {
        for cache in [Cache::On, Cache::Off] {
            let mut c = Config {
                sink,
                cache,
                setup: 0,
                mount: None,
                paths: Vec::new(),
                passes: [Vec::new(), Vec::new()],
                user_ticks: 0,
                sys_ticks: 0,
                opens: 0,
                records_before: 0,
                flushes_before: 0,
            };
            if only.as_deref().is_some_and(|o| !c.label().contains(o)) {
                continue;
            }
            // Each configuration gets its own volume and engine, so that all
            // can stay mounted; the volume is identical in all of them.
            setups.push(Setup::new(sink, files, &disk, &tmpfs));
            c.setup = setups.len() - 1;
            configs.push(c);
        }
    }
    for c in &mut configs {
        let s = &setups[c.setup];
        let m = s.mount(c.cache.reauth());
        let data = m.mnt.join("data");
        c.paths = (0..files).map(|i| data.join(format!("f{i:05}"))).collect();
        c.mount = Some(m);
        c.run(0..files);
    }
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for c in &mut configs {
        let s = &setups[c.setup];
        c.records_before = s.records();
        c.flushes_before = s.flushes();
        c.user_ticks = 0;
        c.sys_ticks = 0;
        c.opens = 0;
    }
    let started = Instant::now();
    for round in 0..rounds {
        let policies = if round % 2 == 0 {
            [Policy::Default, Policy::Conditions]
        } else {
            [Policy::Conditions, Policy::Default]
        };
        for (pi, policy) in policies.into_iter().enumerate() {
            for s in &setups {
                s.set_policy(policy);
            }
            // Chunks of `chunk` files, each run for every configuration
            // in turn (alternating direction), so that a burst of load from
            // elsewhere hits all configurations of the round alike.
            let mut acc = vec![(Duration::ZERO, Duration::ZERO); configs.len()];
            for (k, start) in (0..files).step_by(chunk).enumerate() {
                let range = start..(start + chunk).min(files);
                let order: Vec<usize> = if (round + pi + k) % 2 == 0 {
                    (0..configs.len()).collect()
                } else {
                    (0..configs.len()).rev().collect()
                };
                for i in order {
                    let (wall, cpu) = configs[i].run(range.clone());
                    acc[i].0 += wall;
                    acc[i].1 += cpu;
                }
            }
            for (c, (wall, cpu)) in configs.iter_mut().zip(acc) {
                c.passes[policy as usize].push(Pass {
                    rate: files as f64 / wall.as_secs_f64(),
                    cpu_us: cpu.as_secs_f64() * 1e6 / files as f64,
                });
            }
        }
    }
    let elapsed = started.elapsed();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "measured for {:.0} s; /proc/loadavg before: {} after: {}",
        elapsed.as_secs_f64(),
        load_before.trim(),
        load_after.trim()
    );
    let ticks = rustix::param::clock_ticks_per_second() as f64;

    println!();
    println!(
        "{:<30} {:<9} {:<10} {:>9} {:>17} {:>9} {:>15} {:>8} {:>8}",
        "audit",
        "DEK cache",
        "policy",
        "opens/s",
        "(25%..75%)",
        "CPU µs",
        "(25%..75%)",
        "rec/open",
        "sync/open"
    );
    for c in &configs {
        let s = &setups[c.setup];
        let records = s.records().saturating_sub(c.records_before) as f64;
        let flushes = s.flushes().saturating_sub(c.flushes_before) as f64;
        let opens = c.opens.max(1) as f64;
        for policy in [Policy::Default, Policy::Conditions] {
            let ps = &c.passes[policy as usize];
            let rates: Vec<f64> = ps.iter().map(|p| p.rate).collect();
            let cpus: Vec<f64> = ps.iter().map(|p| p.cpu_us).collect();
            let (r25, r75) = quartiles(rates.clone());
            let (c25, c75) = quartiles(cpus.clone());
            println!(
                "{:<30} {:<9} {:<10} {:>9.0} {:>17} {:>9.1} {:>15} {:>8.2} {:>8.2}",
                c.sink.name(),
                c.cache.name(),
                policy.name(),
                median(rates),
                format!("({r25:.0}..{r75:.0})"),
                median(cpus),
                format!("({c25:.1}..{c75:.1})"),
                // Includes the PutKeyPolicy records (2 per round).
                records / opens,
                flushes / opens,
            );
        }
        println!(
            "{:<30} {:<9} {:<10} CPU split over all passes: user {:.1} µs, system {:.1} µs per open",
            "",
            "",
            "",
            c.user_ticks as f64 / ticks * 1e6 / opens,
            c.sys_ticks as f64 / ticks * 1e6 / opens
        );
    }

    println!();
    println!(
        "Per-round ratios (median over rounds; each audit-on pass against the audit-off pass \
         of the same round, policy and cache setting):"
    );
    println!(
        "{:<9} {:<10} {:<30} {:>12} {:>14} {:>12} {:>14}",
        "DEK cache", "policy", "audit", "rate on/off", "rate cost", "CPU on/off", "+CPU µs/open"
    );
    let find =
        |sink: Sink, cache: Cache| configs.iter().find(|c| c.sink == sink && c.cache == cache);
    for cache in [Cache::Off, Cache::On] {
        for policy in [Policy::Default, Policy::Conditions] {
            let Some(base) = find(Sink::Null, cache) else {
                continue;
            };
            let b = &base.passes[policy as usize];
            for sink in &Sink::ALL[1..] {
                let Some(c) = find(*sink, cache) else {
                    continue;
                };
                let a = &c.passes[policy as usize];
                let rate: Vec<f64> = a.iter().zip(b).map(|(a, b)| a.rate / b.rate).collect();
                let cpu: Vec<f64> = a.iter().zip(b).map(|(a, b)| a.cpu_us / b.cpu_us).collect();
                let extra: Vec<f64> = a.iter().zip(b).map(|(a, b)| a.cpu_us - b.cpu_us).collect();
                let rate = median(rate);
                let (cpu_lo, cpu_hi) = quartiles(cpu.clone());
                println!(
                    "{:<9} {:<10} {:<30} {:>12.3} {:>13.1}% {:>12} {:>14.1}",
                    cache.name(),
                    policy.name(),
                    sink.name(),
                    rate,
                    100.0 * (1.0 - rate),
                    format!("{:.3} ({cpu_lo:.2}..{cpu_hi:.2})", median(cpu)),
                    median(extra)
                );
            }
        }
    }
    println!();
    println!(
        "rate cost: 1 - (audit-on opens/s) / (audit-off opens/s); CPU on/off: CPU per open with \
         the audit / without (interquartile range of the per-round ratios in brackets); the CPU \
         bound on the rate cost is 1 - 1 / (CPU on/off)"
    );
    for c in configs {
        drop(c.mount);
    }
}
