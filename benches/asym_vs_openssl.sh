#!/usr/bin/env bash
# The engine's asymmetric operations against `openssl speed` on the same
# machine in the same run: Sign with ECDSA P-256, Ed25519 and RSA-2048 PSS,
# and RSA-2048 OAEP Decrypt, ops/s on one thread. Rounds alternate openssl
# and the engine (benches/asym_ops.rs, in-process, NullSink) so that both
# see the same load; prints the median of each, the ratio engine/openssl and
# the load average. openssl's RSA figure is its private-key operation
# (`rsa2048` sign/s): PSS signing and OAEP decryption are that operation
# plus padding. Both sides are rates per CPU-second (openssl speed divides
# by its CPU user time; asym_ops by its thread's CPU time), so that the
# load of a shared machine slows neither side's figure; wall-clock rates
# (`openssl speed -elapsed`) swing with whoever else holds the cores.
#
# Usage: benches/asym_vs_openssl.sh [--rounds N] [--seconds S] [--no-build]
# No root needed; needs openssl.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=5
SECONDS_EACH=2
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --seconds) SECONDS_EACH=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done

command -v openssl >/dev/null || die "openssl is not installed"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "cargo bench --bench asym_ops --no-run"
  (cd "$BENCH_REPO" && cargo bench -q --bench asym_ops --no-run) || die "build failed"
fi
BIN=$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name 'asym_ops-*' \
  -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$BIN" ] || die "the asym_ops bench binary is not built"

declare -A O E
log "$(openssl version); $ROUNDS rounds of ${SECONDS_EACH}s per measurement; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  out=$(openssl speed -seconds "$SECONDS_EACH" -mr ecdsap256 ed25519 rsa2048 2>/dev/null)
  O[ecdsap256]+=" $(awk -F: '$1 == "+F4" && $3 == 256 { print $4 }' <<<"$out")"
  O[ed25519]+=" $(awk -F: '$1 == "+F6" && $4 == "Ed25519" { print $5 }' <<<"$out")"
  rsa=$(awk -F: '$1 == "+F2" && $3 == 2048 { print $4 }' <<<"$out")
  O[rsa2048-pss]+=" $rsa"
  O[rsa2048-oaep-decrypt]+=" $rsa"
  while read -r _ name rate _; do
    E[$name]+=" $rate"
  done < <("$BIN" --seconds "$SECONDS_EACH")
  log "round $r done; load $(cut -d' ' -f1-3 /proc/loadavg)"
done

printf '%-22s %14s %14s %8s\n' operation "engine ops/s" "openssl ops/s" ratio
for op in ecdsap256 ed25519 rsa2048-pss rsa2048-oaep-decrypt; do
  # shellcheck disable=SC2086
  e=$(median ${E[$op]})
  # shellcheck disable=SC2086
  o=$(median ${O[$op]})
  printf '%-22s %14.0f %14.0f %8s\n' "$op" "$e" "$o" "$(awk -v a="$e" -v b="$o" 'BEGIN { printf "%.2fx", a / b }')"
done
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
