#!/usr/bin/env bash
# Write-only volumes against ordinary ones (embedded engine, default
# fdatasync'd audit trail, tmpfs backing): per round, a fresh volume of each
# kind, N small files created through a mount (ms per file), then a fresh
# read-only mount reading them all back (ms per file). A write-only mount
# wraps each new key locally under its slot key (no engine call, no audit
# record per file) and a reader asks the engine once per slot (one RSA-2048
# Decrypt) instead of once per file. Prints one line per round and kind,
# then the medians and the ratios write-only / ordinary.
#
# Usage: benches/write_only.sh [--files N] [--rounds R] [--no-build]
#   --files N    files per volume (default 500)
#   --rounds R   rounds, kinds interleaved (default 5)
# Needs root (tmpfs), fuse3, jq.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

FILES=500
ROUNDS=5
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
need_root
command -v jq >/dev/null || die "jq not installed"
build_kmsfs
trap bench_cleanup EXIT INT TERM

BENCH_WORK=$(mktemp -d /tmp/kmsfs-write-only-bench.XXXXXX)
make_tmpfs "$BENCH_WORK" 1g
ENGINE=$BENCH_WORK/engine PASS=$BENCH_WORK/pass
kmsfs_setup "$ENGINE" "$PASS" "$BENCH_WORK/first"
RSA=$("$KMSFS_BIN" kms create-key --key-spec RSA_2048 --key-usage ENCRYPT_DECRYPT \
  | jq -r .KeyMetadata.KeyId) || die "creating the RSA key"

declare -A CREATE READ
for ((r = 1; r <= ROUNDS; r++)); do
  for kind in ordinary write-only; do
    cipher=$BENCH_WORK/c-$r-$kind mnt=$BENCH_WORK/m-$r-$kind
    if [ "$kind" = write-only ]; then
      "$KMSFS_BIN" init "$cipher" --write-only-key "$RSA" >/dev/null || die "init"
    else
      "$KMSFS_BIN" init "$cipher" >/dev/null || die "init"
    fi
    kmsfs_mount "$cipher" "$mnt"
    start=$(now)
    for ((i = 0; i < FILES; i++)); do echo "file $i" > "$mnt/f$i"; done
    c=$(awk -v s="$(elapsed "$start")" -v n="$FILES" 'BEGIN { printf "%.4f", s * 1000 / n }')
    unmount_one "$mnt"
    kmsfs_mount "$cipher" "$mnt" --read-only
    start=$(now)
    cat "$mnt"/f* > /dev/null
    rd=$(awk -v s="$(elapsed "$start")" -v n="$FILES" 'BEGIN { printf "%.4f", s * 1000 / n }')
    unmount_one "$mnt"
    CREATE[$kind]+="$c "
    READ[$kind]+="$rd "
    echo "round $r $kind: create $c ms/file, read $rd ms/file (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
# shellcheck disable=SC2086
{
  co=$(median ${CREATE[ordinary]}) cw=$(median ${CREATE[write-only]})
  ro=$(median ${READ[ordinary]}) rw=$(median ${READ[write-only]})
}
echo "median create ms/file: ordinary $co, write-only $cw (ratio $(ratio "$cw" "$co"))"
echo "median read   ms/file: ordinary $ro, write-only $rw (ratio $(ratio "$rw" "$ro"))"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
