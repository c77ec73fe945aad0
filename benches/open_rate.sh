#!/usr/bin/env bash
# File-open rate on a kmsfs mount: open(O_RDONLY) + read + close of N small
# existing files, several passes, printing opens/s per pass and the median.
#
# Two cache states are measured for each mount:
#   warm  the kernel's dentry/attribute/page caches are kept between passes,
#         so a pass costs FUSE OPEN + RELEASE per file (reads come from the
#         page cache, which kmsfs keeps between opens of unchanged files);
#   cold  `echo 3 > /proc/sys/vm/drop_caches` before each pass, so every file
#         also costs a LOOKUP, GETATTR and READ through FUSE.
# And two mount configurations:
#   cached     the default: unwrapped data keys are cached and re-authorized
#              with the engine after --reauth-secs (5 s);
#   reauth-0   `--reauth-secs 0`: every open asks the engine (Decrypt under
#              the caller's principal) — the path the audit trail records.
# Use it to compare the open rate with and without the audit trail: run it on
# both builds (or pass --mount-arg for an audit option) and compare medians.
#
# Usage: benches/open_rate.sh [--files N] [--size BYTES] [--passes P]
#                             [--no-build] [--mount-arg ARG]... [--gocryptfs]
#                             [--dir MOUNTED_DIR]
#   --files N        number of files (default 2000)
#   --size BYTES     size of each file (default 1024)
#   --passes P       passes per cache state (default 7; the median is printed)
#   --rounds R       times a warm pass goes over the N files (default 5; a
#                    cold pass goes over them once, right after drop_caches)
#   --mount-arg ARG  extra argument for `kmsfs mount` (repeatable)
#   --gocryptfs      also measure a gocryptfs mount, for reference
#   --dir DIR        measure an existing directory (any filesystem, e.g. a
#                    kmsfs mount set up by hand); no set-up, no remounts
# Needs root (drop_caches, tmpfs), fuse3, python3; gocryptfs for --gocryptfs.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

FILES=2000
SIZE=1024
PASSES=7
ROUNDS=5
MOUNT_ARGS=()
WITH_GOCRYPTFS=0
DIR=""
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --passes) PASSES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    --mount-arg) MOUNT_ARGS+=("$2"); shift ;;
    --gocryptfs) WITH_GOCRYPTFS=1 ;;
    --dir) DIR=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
need_root
command -v python3 >/dev/null || die "python3 not installed"

# The timed loop, in one python process per pass: the cost per file is the
# three system calls, not a fork+exec.
OPEN_LOOP='
import os, sys, time
d, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = [os.path.join(d, "f%05d" % i) for i in range(n)]
t0 = time.perf_counter()
for _ in range(rounds):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.read(fd, 1 << 16)
        os.close(fd)
print("%.1f" % (n * rounds / (time.perf_counter() - t0)))
'

populate() { # DIR
  mkdir -p "$1/open-bench"
  python3 -c '
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
for i in range(n):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(data)
' "$1/open-bench" "$FILES" "$SIZE"
  sync
}

declare -A RES
measure() { # LABEL DIR
  local label=$1 d=$2/open-bench state p rates
  # one untimed pass so that "warm" starts warm
  python3 -c "$OPEN_LOOP" "$d" "$FILES" 1 > /dev/null
  for state in warm cold; do
    rates=()
    for p in $(seq "$PASSES"); do
      if [ "$state" = warm ]; then
        rates+=("$(python3 -c "$OPEN_LOOP" "$d" "$FILES" "$ROUNDS")")
      else
        drop_caches
        rates+=("$(python3 -c "$OPEN_LOOP" "$d" "$FILES" 1)")
      fi
    done
    RES[$label.$state]="$(median "${rates[@]}") (passes: ${rates[*]})"
    log "$label $state: ${rates[*]} opens/s"
  done
  # the kmsfs data-key cache figures, to show which path the opens took
  if [ "$label" != gocryptfs ] && [ -z "$DIR" ]; then
    sleep 1.5 # the status file is refreshed every second
    RES[$label.cache]=$("$KMSFS_BIN" status --output json | jq -c --arg m "$(readlink -f "$2")" \
      '.mounts[] | select(.mountpoint == $m) | .status.cache')
  fi
}

if [ -n "$DIR" ]; then
  [ -d "$DIR/open-bench" ] || populate "$DIR"
  measure "$DIR" "$DIR"
  labels=("$DIR")
else
  build_kmsfs
  BENCH_WORK=$(mktemp -d /tmp/kmsfs-openrate.XXXXXX)
  chmod 755 "$BENCH_WORK"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  BACK=$BENCH_WORK/backing
  make_tmpfs "$BACK" 1g
  M=$BENCH_WORK/mnt
  kmsfs_setup "$BACK/engine" "$BACK/pass" "$BACK/cipher"
  kmsfs_mount "$BACK/cipher" "$M" ${MOUNT_ARGS[@]+"${MOUNT_ARGS[@]}"}
  populate "$M"
  measure kmsfs-cached "$M"
  unmount_one "$M"
  kmsfs_mount "$BACK/cipher" "$M" --reauth-secs 0 ${MOUNT_ARGS[@]+"${MOUNT_ARGS[@]}"}
  measure kmsfs-reauth-0 "$M"
  unmount_one "$M"
  labels=(kmsfs-cached kmsfs-reauth-0)
  if [ "$WITH_GOCRYPTFS" = 1 ]; then
    gocryptfs_setup "$BACK/gocryptfs-cipher"
    gocryptfs_mount "$BACK/gocryptfs-cipher" "$BENCH_WORK/gmnt"
    populate "$BENCH_WORK/gmnt"
    measure gocryptfs "$BENCH_WORK/gmnt"
    labels+=(gocryptfs)
  fi
fi

printf '\n# open+read+close rate — %s, %d files of %d bytes, %d passes (warm: %d rounds each), medians (opens/s)\n' \
  "$(date -u +%FT%TZ)" "$FILES" "$SIZE" "$PASSES" "$ROUNDS"
printf '# %s CPUs; load average at end: %s; kmsfs mount args: %s\n' \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "${MOUNT_ARGS[*]:-(none)}"
for l in "${labels[@]}"; do
  printf '%-16s warm %s\n' "$l" "${RES[$l.warm]}"
  printf '%-16s cold %s\n' "$l" "${RES[$l.cold]}"
  [ -z "${RES[$l.cache]:-}" ] || printf '%-16s data-key cache after the passes: %s\n' "$l" "${RES[$l.cache]}"
done
