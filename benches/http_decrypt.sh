#!/usr/bin/env bash
# Decrypt requests/s over HTTPS keep-alive: `kmsfs engine serve --http`
# against moto_server (PyPI moto[server]) on the same machine in the same
# run, with 1 and 8 concurrent clients, each on its own keep-alive TLS
# connection replaying one SigV4-signed Decrypt request
# (benches/http_load.rs). Prints requests/s and p50/p99 latency per run,
# the medians, and the ratios kmsfs/moto.
#
# Both servers use the same certificate (the kmsfs engine's self-signed
# one, which moto_server gets through --ssl-cert/--ssl-key). kmsfs runs
# with its defaults: every request verified with SigV4 against an access
# key made with `kmsfs kms create-access-key`, every Decrypt audited with
# the record on disk before the response (--audit-flush-ms 0) unless
# --audit-flush-ms says otherwise.
#
# Usage: benches/http_decrypt.sh [--seconds S] [--runs N] [--clients "1 8"]
#                                [--no-build] [--no-moto] [--quick]
#                                [--audit-flush-ms MS]
#   --seconds S   length of one measurement (default 10)
#   --runs N      measurements per server and client count (default 3; the
#                 median is printed)
#   --quick       --seconds 3 --runs 1
# Needs python3 with boto3, moto[server] (unless --no-moto) and jq. Does not
# need root.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

SECS=10
RUNS=3
CLIENTS="1 8"
MOTO=1
AUDIT_FLUSH_MS=0
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --quick) SECS=3; RUNS=1; shift ;;
    --no-build) BENCH_NO_BUILD=1; shift ;;
    --no-moto) MOTO=0; shift ;;
    --audit-flush-ms) AUDIT_FLUSH_MS=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
command -v jq >/dev/null || die "jq is needed"
python3 -c 'import boto3' 2>/dev/null || die "python3 with boto3 is needed"
if [ "$MOTO" = 1 ]; then
  command -v moto_server >/dev/null || die "moto_server is needed: pip install 'moto[server]' (or --no-moto)"
fi

build_kmsfs
LOAD=$(cd "$BENCH_REPO" && cargo bench -q --no-run --bench http_load --message-format=json 2>/dev/null \
  | jq -r 'select(.executable != null) | .executable' | tail -1)
[ -x "$LOAD" ] || die "building benches/http_load.rs failed"

BENCH_WORK=$(mktemp -d /tmp/kmsfs-http-bench.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$BENCH_WORK"
}
trap cleanup EXIT
W=$BENCH_WORK
REGION=us-east-1

# free_port: a TCP port nothing listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for FILE PATTERN: until FILE has a line matching PATTERN (30 s).
wait_for() {
  local i
  for i in $(seq 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing matching '$2' in $1: $(cat "$1")"
}

log "kmsfs engine serve --http (audit flush ${AUDIT_FLUSH_MS} ms)"
echo "bench-passphrase" > "$W/pass"
chmod 600 "$W/pass"
export KMSFS_ENGINE="$W/engine" KMSFS_PASSPHRASE_FILE="$W/pass"
unset KMSFS_KMS
"$KMSFS_BIN" kms init-engine --kdf-memory-kib 8192 --kdf-iterations 1 >/dev/null \
  || die "kmsfs kms init-engine"
"$KMSFS_BIN" engine serve --socket "$W/engine.sock" --http 127.0.0.1:0 --region "$REGION" \
  --audit-flush-ms "$AUDIT_FLUSH_MS" 2> "$W/kmsfs.log" &
PIDS+=($!)
KMSFS_PID=$!
wait_for "$W/kmsfs.log" "AWS KMS endpoint on"
KMSFS_PORT=$(sed -n 's|.*AWS KMS endpoint on https://127.0.0.1:\([0-9]*\).*|\1|p' "$W/kmsfs.log")
CA="$W/engine/https-cert.pem"
KEY_JSON=$(KMSFS_KMS="unix://$W/engine.sock" "$KMSFS_BIN" kms create-access-key \
  --principal "uid:$(id -u)") || die "kmsfs kms create-access-key"
AKID=$(jq -r .AccessKey.AccessKeyId <<< "$KEY_JSON")
SECRET=$(jq -r .AccessKey.SecretAccessKey <<< "$KEY_JSON")

if [ "$MOTO" = 1 ]; then
  MOTO_PORT=$(free_port)
  log "moto_server $(pip show moto 2>/dev/null | sed -n 's/^Version: //p') on port $MOTO_PORT"
  moto_server -H 127.0.0.1 -p "$MOTO_PORT" --ssl-cert "$CA" --ssl-key "$W/engine/https-key.pem" \
    > "$W/moto.log" 2>&1 &
  PIDS+=($!)
  MOTO_PID=$!
  wait_for "$W/moto.log" "Running on"
fi

# cpu_us PID: CPU time (user + system) of process PID and all its threads so
# far, in µs (USER_HZ = 100).
cpu_us() { awk '{ sub(/^.*\) /, ""); print ($12 + $13) * 10000 }' "/proc/$1/stat"; }

# measure NAME PORT AKID SECRET CLIENTS PID: one run; prints http_load's JSON
# line with the server's CPU µs per request and the load average added.
measure() {
  local url="https://localhost:$2" line c0 c1
  python3 "$BENCH_REPO/benches/http_decrypt.py" "$url" "$CA" "$3" "$4" "$REGION" "$W/req-$1" \
    || die "$1: set-up through boto3 failed"
  c0=$(cpu_us "$6")
  line=$("$LOAD" "127.0.0.1:$2" localhost "$CA" "$W/req-$1" "$5" "$SECS") || die "$1: the load run failed"
  c1=$(cpu_us "$6")
  jq -c --argjson c "$((c1 - c0))" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
    '. + {server_cpu_us_per_req: (($c / .requests) * 10 | round / 10), load: $load}' <<< "$line"
}

declare -A RPS P50 P99 CPU
SERVERS="kmsfs"
[ "$MOTO" = 1 ] && SERVERS="kmsfs moto"
for c in $CLIENTS; do
  for r in $(seq "$RUNS"); do
    # Alternate which server goes first.
    order=$SERVERS
    [ $((r % 2)) = 0 ] && order=$(tr ' ' '\n' <<< "$SERVERS" | tac | tr '\n' ' ')
    for s in $order; do
      if [ "$s" = kmsfs ]; then
        line=$(measure kmsfs "$KMSFS_PORT" "$AKID" "$SECRET" "$c" "$KMSFS_PID")
      else
        line=$(measure moto "$MOTO_PORT" testing testing "$c" "$MOTO_PID")
      fi
      log "$s clients=$c run=$r: $line"
      RPS[$s,$c]+="$(jq -r .rps <<< "$line") "
      P50[$s,$c]+="$(jq -r .p50_us <<< "$line") "
      P99[$s,$c]+="$(jq -r .p99_us <<< "$line") "
      CPU[$s,$c]+="$(jq -r .server_cpu_us_per_req <<< "$line") "
    done
  done
done

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
printf '%-6s %7s %12s %9s %9s %14s\n' server clients "Decrypt/s" "p50 µs" "p99 µs" "server CPU µs"
for c in $CLIENTS; do
  for s in $SERVERS; do
    # shellcheck disable=SC2086  # word splitting of the run lists is meant
    printf '%-6s %7s %12.0f %9.0f %9.0f %14.1f\n' "$s" "$c" "$(median ${RPS[$s,$c]})" \
      "$(median ${P50[$s,$c]})" "$(median ${P99[$s,$c]})" "$(median ${CPU[$s,$c]})"
  done
done
if [ "$MOTO" = 1 ]; then
  echo
  for c in $CLIENTS; do
    # shellcheck disable=SC2086
    k=$(median ${RPS[kmsfs,$c]}); m=$(median ${RPS[moto,$c]})
    echo "clients=$c: kmsfs/moto Decrypt/s ratio $(ratio "$k" "$m")"
  done
fi
# shellcheck disable=SC2086
k8=$(median ${RPS[kmsfs,8]:-0})
if [[ " $CLIENTS " == *" 8 "* ]]; then
  echo "target >= 20000 Decrypt/s with 8 clients: $(awk -v v="$k8" 'BEGIN { print (v >= 20000) ? "met" : "NOT met" }') ($k8)"
  if [ "$MOTO" = 1 ]; then
    # shellcheck disable=SC2086
    r8=$(ratio "$k8" "$(median ${RPS[moto,8]})")
    echo "target >= 10x moto_server with 8 clients: $(awk -v v="$r8" 'BEGIN { print (v >= 10) ? "met" : "NOT met" }') ($r8)"
  fi
fi
