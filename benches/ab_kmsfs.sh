#!/usr/bin/env bash
# Two kmsfs binaries side by side: is a change faster, and by how much?
#
# Mounts one volume with each binary on one tmpfs (one engine store, made by
# OLD), then per round: `tar -xf` of a tarball of /usr/include + `sync`
# into each mount, then (page cache dropped) `rm -rf` of the tree, the
# order of the two binaries alternating from round to round. Reported per
# workload: each binary's median wall time and CPU time of its mount
# process (utime + stime), and the median with min-max of the per-round
# ratios NEW/OLD (below 1: NEW is faster). With both binaries in the same
# rounds, a noisy neighbour moves both sides; CPU time is the steadier of
# the two figures.
#
# Build the old binary from a clean checkout of its own (a worktree with
# its own CARGO_TARGET_DIR: two checkouts sharing one target directory
# leave target/release/kmsfs as whichever was linked last).
#
# Usage: benches/ab_kmsfs.sh [--rounds N] OLD_KMSFS NEW_KMSFS
# Needs root (tmpfs, drop_caches), fuse3, tar.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=7
while [ $# -gt 0 ]; do
  case $1 in
    --rounds|--runs) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown argument $1" ;;
    *) break ;;
  esac
  shift
done
[ $# -eq 2 ] || die "usage: $0 [--rounds N] OLD_KMSFS NEW_KMSFS"
need_root
for b in "$1" "$2"; do [ -x "$b" ] || die "$b is not an executable"; done
command -v fusermount3 >/dev/null || die "fuse3 not installed"

BENCH_WORK=$(mktemp -d /tmp/kmsfs-ab.XXXXXX)
chmod 755 "$BENCH_WORK"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

BACK=$BENCH_WORK/backing
make_tmpfs "$BACK" 3g
# Each binary under the name `kmsfs`, so that kmsfs_pid finds its mount.
declare -A BIN=([old]=$BENCH_WORK/old/kmsfs [new]=$BENCH_WORK/new/kmsfs)
for v in old new; do mkdir -p "$BENCH_WORK/$v"; done
cp "$1" "${BIN[old]}"
cp "$2" "${BIN[new]}"
KMSFS_BIN=${BIN[old]} kmsfs_setup "$BACK/engine" "$BACK/pass" "$BACK/cipher-old"
mkdir -p "$BACK/cipher-new"
"${BIN[old]}" init "$BACK/cipher-new" >/dev/null || die "kmsfs init"
declare -A MNT PID
for v in old new; do
  MNT[$v]=$BENCH_WORK/mnt-$v
  KMSFS_BIN=${BIN[$v]} kmsfs_mount "$BACK/cipher-$v" "${MNT[$v]}"
  PID[$v]=$(kmsfs_pid "${MNT[$v]}")
  [ -n "${PID[$v]}" ] || die "no mount process for $v"
done

TARBALL=$BACK/include.tar
tar -cf "$TARBALL" -C /usr include
NENTRIES=$(tar -tf "$TARBALL" | wc -l)
log "old $1, new $2; tarball $NENTRIES entries; $ROUNDS rounds"

declare -A R
CLK_TCK=$(getconf CLK_TCK)
run() { # VERSION WORKLOAD CMD...: records wall and mount CPU seconds
  local v=$1 w=$2 t0 c0 c1
  shift 2
  c0=$(proc_cpu_ticks "${PID[$v]}")
  t0=$(now)
  "$@"
  R[$v.${w}_s]="${R[$v.${w}_s]:-} $(elapsed "$t0")"
  c1=$(proc_cpu_ticks "${PID[$v]}")
  R[$v.${w}_cpu]="${R[$v.${w}_cpu]:-} $(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')"
}
untar() { tar -xf "$TARBALL" -C "$1/x" && sync; }

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order=(old new); else order=(new old); fi
  log "round $round/$ROUNDS: ${order[*]} (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for v in "${order[@]}"; do
    mkdir "${MNT[$v]}/x"
    sync
    run "$v" tar untar "${MNT[$v]}"
    drop_caches
    run "$v" rm rm -rf "${MNT[$v]}/x"
  done
done

printf '\n# %d rounds, %d entries; ratio = new/old of the same round (below 1: new is faster)\n' \
  "$ROUNDS" "$NENTRIES"
printf '%-10s %10s %10s   %s\n' metric old new "new/old median (min-max)"
for m in tar_s tar_cpu rm_s rm_cpu; do
  read -r -a o <<< "${R[old.$m]}"
  read -r -a n <<< "${R[new.$m]}"
  ratios=()
  for i in "${!o[@]}"; do ratios+=("$(ratio "${n[$i]}" "${o[$i]}")"); done
  lo=$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)
  hi=$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)
  printf '%-10s %10s %10s   %s (%s-%s)\n' "$m" "$(median "${o[@]}")" "$(median "${n[@]}")" \
    "$(median "${ratios[@]}")" "$lo" "$hi"
done
