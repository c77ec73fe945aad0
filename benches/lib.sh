# Shared helpers for the kmsfs benchmark scripts (sourced, not run).
#
# Provides: build_kmsfs, median, ratio, drop_caches, tmpfs setup, kmsfs and
# gocryptfs volume set-up/mount/unmount, and the pid of a kmsfs mount. Every
# mount made through these helpers is recorded in BENCH_MOUNTS and undone by
# bench_cleanup, which the scripts install as an EXIT trap.

# Repository root (this file lives in benches/).
BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${CARGO_TARGET_DIR:=$BENCH_REPO/target}"
export CARGO_TARGET_DIR
KMSFS_BIN="${KMSFS_BIN:-$CARGO_TARGET_DIR/release/kmsfs}"
BENCH_MOUNTS=()   # mountpoints to unmount, most recent last
BENCH_TMPFS=()    # tmpfs mountpoints to unmount after the FUSE mounts
BENCH_WORK=""     # scratch directory removed at exit

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (drop_caches, tmpfs mounts)"; }

# build_kmsfs: release build of the `kmsfs` binary unless KMSFS_BIN was given
# or --no-build asked for it.
build_kmsfs() {
  if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
    [ -x "$KMSFS_BIN" ] || die "$KMSFS_BIN missing (run without --no-build)"
    return 0
  fi
  log "cargo build --release -p mount-tool (target dir $CARGO_TARGET_DIR)"
  (cd "$BENCH_REPO" && cargo build --release -q -p mount-tool) || die "build failed"
  [ -x "$KMSFS_BIN" ] || die "$KMSFS_BIN not built"
}

# build_passthrough: release build of the no-crypto passthrough
# (benches/passthrough_fs.rs); sets PASSTHROUGH_BIN. With --no-build, the
# newest one already built.
build_passthrough() {
  if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
    PASSTHROUGH_BIN=$(ls -t "$CARGO_TARGET_DIR"/release/deps/passthrough_fs-* 2>/dev/null \
      | grep -v '\.d$' | head -1)
    [ -x "$PASSTHROUGH_BIN" ] || die "passthrough_fs not built (run without --no-build)"
    return 0
  fi
  log "cargo build --release --bench passthrough_fs"
  PASSTHROUGH_BIN=$(cd "$BENCH_REPO" && cargo build --release -q --bench passthrough_fs \
    --message-format=json | jq -r 'select(.executable != null and .target.name == "passthrough_fs") | .executable') \
    || die "build failed"
  [ -x "$PASSTHROUGH_BIN" ] || die "passthrough_fs not built"
}

# now: seconds since the epoch with nanoseconds.
now() { date +%s.%N; }
# elapsed START: seconds since START.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }

# median V1 V2 ...: the median (mean of the two middle values for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) printf "%.6g\n", v[(NR + 1) / 2]
    else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A / B with 2 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.2f", a / b }'; }

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# make_tmpfs DIR SIZE: mount a private tmpfs on DIR.
make_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0755" kmsfs-bench "$1" || die "mounting tmpfs on $1"
  BENCH_TMPFS+=("$1")
}

# kmsfs_setup ENGINE_DIR PASSFILE CIPHERDIR: a fresh engine (low KDF cost,
# fine for benchmarks) and a fresh volume.
kmsfs_setup() {
  local engine=$1 pass=$2 cipher=$3
  echo "bench-passphrase" > "$pass"
  chmod 600 "$pass"
  mkdir -p "$cipher"
  export KMSFS_ENGINE="$engine" KMSFS_PASSPHRASE_FILE="$pass"
  "$KMSFS_BIN" kms init-engine --kdf-memory-kib 8192 --kdf-iterations 1 >/dev/null \
    || die "kmsfs kms init-engine"
  "$KMSFS_BIN" init "$cipher" >/dev/null || die "kmsfs init $cipher"
}

# kmsfs_allow_everyone CIPHERDIR: replace the volume's key policy with one
# that keeps root as the key administrator and lets every local user use the
# key for file data, so POSIX permissions alone decide access (pjdfstest acts
# as several uids; the default policy admits only the key's creator).
kmsfs_allow_everyone() {
  local cipher=$1 key
  key=$(jq -r .master_key_id "$cipher/kmsfs.conf") || die "reading $cipher/kmsfs.conf"
  "$KMSFS_BIN" kms put-key-policy --key-id "$key" --policy '{
    "Version": "2012-10-17",
    "Statement": [
      {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "uid:0"},
       "Action": "kms:*", "Resource": "*"},
      {"Sid": "EveryoneFileData", "Effect": "Allow", "Principal": "*",
       "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"],
       "Resource": "*"}]}' >/dev/null || die "kmsfs kms put-key-policy"
}

# kmsfs_mount CIPHERDIR MOUNTPOINT [extra mount args...]
kmsfs_mount() {
  local cipher=$1 mnt=$2
  shift 2
  mkdir -p "$mnt"
  "$KMSFS_BIN" mount "$@" "$cipher" "$mnt" >/dev/null || die "kmsfs mount $cipher $mnt"
  BENCH_MOUNTS+=("$mnt")
}

# fuse_pid NAME MOUNTPOINT: pid of the process named NAME whose command line
# holds MOUNTPOINT (the kmsfs foreground child, or gocryptfs).
fuse_pid() {
  local name=$1 mnt p
  mnt=$(readlink -f "$2")
  for p in $(pgrep -x "$name"); do
    if tr '\0' '\n' 2>/dev/null < "/proc/$p/cmdline" | grep -qxF "$mnt"; then
      echo "$p"
      return 0
    fi
  done
}

# kmsfs_pid MOUNTPOINT: pid of the process serving a kmsfs mount (the
# detached `kmsfs mount ... --foreground` child).
kmsfs_pid() { fuse_pid kmsfs "$1"; }

# gocryptfs_setup CIPHERDIR: a fresh gocryptfs volume (passphrase "pw",
# low scrypt cost, like the kmsfs engine above).
gocryptfs_setup() {
  mkdir -p "$1"
  gocryptfs -q -init -scryptn 10 -extpass "echo pw" "$1" >/dev/null || die "gocryptfs -init $1"
}

# gocryptfs_mount CIPHERDIR MOUNTPOINT [extra gocryptfs options...]
gocryptfs_mount() {
  local cipher=$1 mnt=$2
  shift 2
  mkdir -p "$mnt"
  gocryptfs -q -nosyslog -extpass "echo pw" "$@" "$cipher" "$mnt" || die "gocryptfs mount $cipher $mnt"
  BENCH_MOUNTS+=("$mnt")
}

gocryptfs_pid() { fuse_pid gocryptfs "$1"; }

# passthrough_mount SOURCE MOUNTPOINT STATS_FILE [options...]: the no-crypto
# passthrough, serving in the background until unmounted.
passthrough_mount() {
  local src=$1 mnt=$2 stats=$3 i
  shift 3
  mkdir -p "$mnt"
  "$PASSTHROUGH_BIN" --stats "$stats" "$@" "$src" "$mnt" </dev/null >/dev/null 2>"$BENCH_WORK/passthrough.log" &
  BENCH_MOUNTS+=("$mnt")
  for i in $(seq 100); do
    is_mountpoint "$mnt" && return 0
    sleep 0.1
  done
  die "passthrough mount $mnt did not appear: $(cat "$BENCH_WORK/passthrough.log")"
}

passthrough_pid() { fuse_pid "$(basename "$PASSTHROUGH_BIN" | cut -c1-15)" "$1"; }

# proc_cpu_ticks PID: user + system CPU time of process PID (all its
# threads) in clock ticks (fields 14 and 15 of /proc/PID/stat, counted after
# the command name, which may hold spaces).
proc_cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# rss_kib PID: "VmRSS VmHWM" in KiB.
rss_kib() {
  awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' "/proc/$1/status"
}

# FSES: the filesystems a side-by-side suite runs: both, or the one --only names.
# shellcheck disable=SC2034  # FSES is read by the script that sources this
select_fses() {
  case $1 in ''|kmsfs|gocryptfs) ;; *) die "--only takes kmsfs or gocryptfs" ;; esac
  FSES=(kmsfs gocryptfs)
  [ -z "$1" ] || FSES=("$1")
}

is_mountpoint() { mountpoint -q "$1" 2>/dev/null; }

# alive PID: true while PID exists and is not a zombie.
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# unmount_one MOUNTPOINT: polite unmount, then lazy if busy; waits for the
# serving process to exit (so that the engine store lock is free again).
unmount_one() {
  local m=$1 pid i
  is_mountpoint "$m" || return 0
  pid=$(fuse_pid kmsfs "$m"); [ -n "$pid" ] || pid=$(fuse_pid gocryptfs "$m")
  [ -n "$pid" ] || [ -z "${PASSTHROUGH_BIN:-}" ] || pid=$(passthrough_pid "$m")
  fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null \
    || fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  for i in $(seq 100); do
    if ! is_mountpoint "$m" && ! alive "$pid"; then break; fi
    sleep 0.1
  done
}

bench_cleanup() {
  local rc=$? i
  # Best effort from here on: a failing step must not stop the others. (In a
  # trap handler a bare `return` reports the status from before the trap, so
  # the helpers return explicit statuses too.)
  set +e
  trap '' INT TERM
  for ((i = ${#BENCH_MOUNTS[@]} - 1; i >= 0; i--)); do unmount_one "${BENCH_MOUNTS[$i]}"; done
  for ((i = ${#BENCH_TMPFS[@]} - 1; i >= 0; i--)); do
    umount "${BENCH_TMPFS[$i]}" 2>/dev/null || umount -l "${BENCH_TMPFS[$i]}" 2>/dev/null || true
  done
  if [ -n "$BENCH_WORK" ] && [ -d "$BENCH_WORK" ]; then rm -rf --one-file-system "$BENCH_WORK"; fi
  exit "$rc"
}
