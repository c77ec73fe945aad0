#!/usr/bin/env bash
# Volume key jobs: `kmsfs rewrap` files/s over a volume of many small files,
# and `kmsfs rekey` MB/s against a sequential copy through the mount of the
# same data, in the same run.
#
# Rewrap: FILES files (100 directories, 100 bytes each) are written through a
# mount; then, RUNS times: the volume's key is rotated and `kmsfs rewrap`
# re-wraps every file (files/s from its JSON summary), once with every audit
# record synced before its call returns (the default) and once with
# `--audit-flush-ms 100`; also files per CPU second of the whole command
# (user + system time), which the other processes on a shared machine do
# not change as much as the wall-clock rate.
# Rekey: REKEY_MB MiB in 4 MiB files; RUNS times, alternating: `cp -r` of the
# tree to a new directory through the mount followed by `sync` (MB/s), and
# `kmsfs rekey` of the unmounted volume (MB/s from its summary).
#
# Usage: benches/rewrap.sh [--files N] [--runs N] [--rekey-mb N] [--threads N]
#                          [--no-build] [--disk DIR]
#   --files N      files for the rewrap runs (default 100000)
#   --runs N       runs of each measurement (default 3; medians are printed)
#   --rekey-mb N   data for the rekey runs in MiB (default 256)
#   --threads N    rewrap/rekey --threads (default 8)
#   --disk DIR     put the engine and the cipher directory in DIR (a disk)
#                  instead of a tmpfs (audit fdatasync then costs)
# Needs root (tmpfs), fuse3, python3, jq.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

FILES=100000
RUNS=3
REKEY_MB=256
THREADS=8
DISK=""
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --rekey-mb) REKEY_MB=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    --disk) DISK=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
need_root
command -v jq >/dev/null || die "jq not installed"
command -v python3 >/dev/null || die "python3 not installed"
build_kmsfs
trap bench_cleanup EXIT INT TERM

if [ -n "$DISK" ]; then
  BENCH_WORK=$(mktemp -d "$DISK/kmsfs-rewrap-bench.XXXXXX")
else
  BENCH_WORK=$(mktemp -d /tmp/kmsfs-rewrap-bench.XXXXXX)
  make_tmpfs "$BENCH_WORK" 4g
fi
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- rewrap ------------------------------------------------------------
ENGINE=$BENCH_WORK/engine PASS=$BENCH_WORK/pass CIPHER=$BENCH_WORK/cipher MNT=$BENCH_WORK/mnt
kmsfs_setup "$ENGINE" "$PASS" "$CIPHER"
KEY=$(jq -r .master_key_id "$CIPHER/kmsfs.conf")
kmsfs_mount "$CIPHER" "$MNT" --audit-flush-ms 100
log "writing $FILES files through the mount"
python3 - "$MNT" "$FILES" <<'EOF'
import os, sys
mnt, n = sys.argv[1], int(sys.argv[2])
for d in range(100):
    os.mkdir(os.path.join(mnt, "d%03d" % d))
for i in range(n):
    with open(os.path.join(mnt, "d%03d" % (i % 100), "f%06d" % i), "wb") as f:
        f.write(b"x" * 100)
EOF
unmount_one "$MNT"

rewrap_rate() { # extra args: prints files/s, changed, files, files per CPU second
  "$KMSFS_BIN" kms rotate-key-on-demand --key-id "$KEY" >/dev/null
  local out cpu
  out=$(/usr/bin/time -f "%U %S" -o "$BENCH_WORK/cpu" \
    "$KMSFS_BIN" rewrap "$CIPHER" --threads "$THREADS" "$@" 2>/dev/null)
  cpu=$(awk '{ print $1 + $2 }' "$BENCH_WORK/cpu")
  jq -r --arg cpu "$cpu" \
    '"\(.files_per_second) \(.changed) \(.files) \(.files / ($cpu | tonumber) | floor)"' <<<"$out"
}
SYNCED=() BATCHED=() PERCPU=()
for r in $(seq "$RUNS"); do
  read -r rate changed files percpu < <(rewrap_rate)
  [ "$changed" = "$files" ] || die "rewrap changed $changed of $files files"
  SYNCED+=("$rate"); PERCPU+=("$percpu")
  log "rewrap run $r (audit synced per record): $rate files/s, $percpu files per CPU second"
  read -r rate changed files percpu < <(rewrap_rate --audit-flush-ms 100)
  [ "$changed" = "$files" ] || die "rewrap changed $changed of $files files"
  BATCHED+=("$rate"); PERCPU+=("$percpu")
  log "rewrap run $r (--audit-flush-ms 100): $rate files/s, $percpu files per CPU second"
done
rm -rf --one-file-system "$CIPHER" "$ENGINE"

# --- rekey vs copy -------------------------------------------------------
kmsfs_setup "$ENGINE" "$PASS" "$CIPHER"
kmsfs_mount "$CIPHER" "$MNT"
mkdir "$MNT/data"
for i in $(seq $((REKEY_MB / 4))); do
  head -c $((4 << 20)) /dev/urandom > "$MNT/data/f$i"
done
COPY=() REKEY=()
for r in $(seq "$RUNS"); do
  sync; start=$(now)
  cp -r "$MNT/data" "$MNT/copy"; sync
  secs=$(elapsed "$start")
  COPY+=("$(awk -v s="$secs" -v m="$REKEY_MB" 'BEGIN { printf "%.1f", m * 1.048576 / s }')")
  rm -rf "$MNT/copy"
  unmount_one "$MNT"
  mbs=$("$KMSFS_BIN" rekey "$CIPHER" --threads "$THREADS" 2>/dev/null \
    | jq -r '.bytes / .seconds / 1e6 | . * 10 | floor / 10')
  REKEY+=("$mbs")
  log "run $r: copy through the mount ${COPY[-1]} MB/s, rekey $mbs MB/s"
  kmsfs_mount "$CIPHER" "$MNT"
done

echo "rewrap of $FILES files, files/s (median of $RUNS): audit synced per record $(median "${SYNCED[@]}"), --audit-flush-ms 100 $(median "${BATCHED[@]}"); files per CPU second of the whole command (user + system, walk and engine open included, median of all runs): $(median "${PERCPU[@]}")"
echo "rekey of $REKEY_MB MiB: $(median "${REKEY[@]}") MB/s; cp -r through the mount + sync: $(median "${COPY[@]}") MB/s; ratio $(ratio "$(median "${REKEY[@]}")" "$(median "${COPY[@]}")")"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
