#!/usr/bin/env bash
# Untar of /usr/include and the open rate on a volume whose key service is an
# AWS-KMS-compatible endpoint, against the embedded engine in the same run.
#
# The service is this project's own endpoint (`kmsfs engine serve --http`,
# SigV4 with an engine-issued access key, its self-signed certificate trusted
# through AWS_CA_BUNDLE) on loopback, reached through benches/delay_proxy.py,
# which delays every chunk the service sends back by 0, 2 or 10 ms (a round
# trip to a service further away). With --moto, moto_server (PyPI
# `moto[server]`) is measured the same way.
#
# For each service and delay: a fresh volume, mounted with --new-keys
# background (the default on AWS services) and with --new-keys create (the
# key from GenerateDataKey in create); `tar -x` of a tar of /usr/include into
# it (timed), the requests the service received per 1,000 files (from
# `kmsfs status`, once every key is wrapped), then a remount (cold key cache)
# and `cat` of the first 1,000 files one after another (opens per second;
# --open-files N for another number).
#
# Usage (as root): benches/aws_untar.sh [--runs N] [--delays "0 2 10"]
#                  [--files N] [--open-files N] [--moto] [--no-build]
# --files N: only the first N files of /usr/include (default: all).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=3
DELAYS="0 2 10"
FILES=0
OPEN_FILES=1000
MOTO=0
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --delays) DELAYS=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --open-files) OPEN_FILES=$2; shift 2 ;;
    --moto) MOTO=1; shift ;;
    --no-build) BENCH_NO_BUILD=1; shift ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
need_root
command -v jq >/dev/null || die "jq is needed"
if [ "$MOTO" = 1 ]; then
  python3 -c 'import moto.server' 2>/dev/null || die "moto[server] is needed for --moto"
fi
build_kmsfs

BENCH_WORK=$(mktemp -d /tmp/kmsfs-aws-untar.XXXXXX)
W=$BENCH_WORK
PIDS=()
cleanup_all() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  (exit $rc)
  bench_cleanup
}
trap cleanup_all EXIT
REGION=us-east-1
unset KMSFS_KMS AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS
export AWS_EC2_METADATA_DISABLED=true AWS_REGION=$REGION XDG_RUNTIME_DIR=$W/run
mkdir -p "$W/run"

wait_for() {
  local i
  for i in $(seq 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing matching '$2' in $1: $(cat "$1")"
}

# The tar: /usr/include (or its first --files files).
log "tar of /usr/include"
if [ "$FILES" -gt 0 ]; then
  (cd /usr && find include -type f | sort | sed -n "1,${FILES}p" > "$W/list" \
    && tar -cf "$W/src.tar" -T "$W/list")
else
  tar -C /usr -cf "$W/src.tar" include
fi
NFILES=$(tar -tf "$W/src.tar" | grep -vc '/$')
log "$NFILES files, $(du -h "$W/src.tar" | cut -f1)"

log "kmsfs engine serve --http"
echo "bench-passphrase" > "$W/pass"
chmod 600 "$W/pass"
export KMSFS_ENGINE="$W/engine" KMSFS_PASSPHRASE_FILE="$W/pass"
"$KMSFS_BIN" kms init-engine --kdf-memory-kib 8192 --kdf-iterations 1 >/dev/null \
  || die "kmsfs kms init-engine"
"$KMSFS_BIN" engine serve --socket "$W/engine.sock" --http 127.0.0.1:0 --region "$REGION" \
  --audit-flush-ms 100 2> "$W/engine.log" &
PIDS+=($!)
wait_for "$W/engine.log" "AWS KMS endpoint on"
ENGINE_PORT=$(sed -n 's|.*AWS KMS endpoint on https://127.0.0.1:\([0-9]*\).*|\1|p' "$W/engine.log")
CA="$W/engine/https-cert.pem"
SOCK="unix://$W/engine.sock"
KEY_JSON=$(KMSFS_KMS=$SOCK "$KMSFS_BIN" kms create-access-key --principal "uid:$(id -u)") \
  || die "kmsfs kms create-access-key"
ENGINE_AKID=$(jq -r .AccessKey.AccessKeyId <<< "$KEY_JSON")
ENGINE_SECRET=$(jq -r .AccessKey.SecretAccessKey <<< "$KEY_JSON")

# The embedded engine: a store of its own (the daemon holds the other).
KMSFS_ENGINE=$W/embedded "$KMSFS_BIN" kms init-engine --kdf-memory-kib 8192 --kdf-iterations 1 \
  >/dev/null || die "kmsfs kms init-engine (embedded)"

if [ "$MOTO" = 1 ]; then
  MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" > "$W/moto.log" 2>&1 &
  PIDS+=($!)
  wait_for "$W/moto.log" "Running on"
fi

# proxy DELAY UPSTREAM: starts a delay proxy, prints its port.
proxy() {
  local out=$W/proxy-$1-$2.log
  python3 "$BENCH_REPO/benches/delay_proxy.py" 0 "$2" "$1" > "$out" 2>&1 &
  PIDS+=($!)
  wait_for "$out" "listening"
  sed -n 's/^listening //p' "$out"
}

# with_service NAME CMD...: CMD with the service's credentials.
with_service() {
  local svc=$1
  shift
  if [ "$svc" = engine ]; then
    AWS_ACCESS_KEY_ID=$ENGINE_AKID AWS_SECRET_ACCESS_KEY=$ENGINE_SECRET AWS_CA_BUNDLE=$CA "$@"
  else
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$@"
  fi
}

# service_url NAME PORT: the --kms URL of a new key on the service.
service_url() {
  local key
  if [ "$1" = engine ]; then
    key=$(KMSFS_KMS=$SOCK "$KMSFS_BIN" kms create-key | jq -r .KeyMetadata.KeyId)
    echo "https://localhost:$2/$key"
  else
    key=$(python3 -c "import boto3; print(boto3.client('kms', endpoint_url='http://127.0.0.1:$MOTO_PORT', region_name='$REGION', aws_access_key_id='t', aws_secret_access_key='t').create_key()['KeyMetadata']['KeyId'])")
    echo "http://127.0.0.1:$2/$key"
  fi
}

# status_json MNT: this mount's `kmsfs status` record.
status_json() {
  "$KMSFS_BIN" status --output json | jq --arg m "$1" '.mounts[] | select(.mountpoint == $m) | .status'
}

# wait_wrapped MNT: waits until no new key is pending; prints the service's request count.
wait_wrapped() {
  local i s
  for i in $(seq 600); do
    sleep 1.1  # the status file is written once a second
    s=$(status_json "$1")
    if [ "$(jq -r '.wraps.pending // 0' <<< "$s")" = 0 ]; then
      jq -r '.service.requests // 0' <<< "$s"
      return 0
    fi
  done
  die "keys still pending on $1"
}

# cat_all DIR: reads the first OPEN_FILES files (sorted) one after another;
# prints seconds.
cat_all() {
  local t0
  (cd "$1" && find . -type f | sort | sed -n "1,${OPEN_FILES}p" > "$W/open-list")
  t0=$(now)
  (cd "$1" && tr '\n' '\0' < "$W/open-list" | xargs -0 -n 64 cat > /dev/null) || die "cat in $1"
  elapsed "$t0"
}

# one_run SVC DELAY MODE: untar seconds, requests per 1,000 files, open seconds.
one_run() {
  local svc=$1 delay=$2 mode=$3 dir=$W/v-$RANDOM$RANDOM url t0 untar req before opens
  mkdir -p "$dir/mnt"
  if [ "$svc" = embedded ]; then
    KMSFS_ENGINE=$W/embedded "$KMSFS_BIN" init "$dir/cipher" >/dev/null || die "kmsfs init"
    KMSFS_ENGINE=$W/embedded "$KMSFS_BIN" mount "$dir/cipher" "$dir/mnt" >/dev/null || die "kmsfs mount"
  else
    url=$(service_url "$svc" "${PORT[$svc,$delay]}")
    with_service "$svc" "$KMSFS_BIN" init "$dir/cipher" --kms "$url" >/dev/null || die "kmsfs init on $svc"
    with_service "$svc" "$KMSFS_BIN" mount "$dir/cipher" "$dir/mnt" --new-keys "$mode" >/dev/null \
      || die "kmsfs mount on $svc"
  fi
  BENCH_MOUNTS+=("$dir/mnt")
  before=0
  [ "$svc" = embedded ] || before=$(sleep 1.1; status_json "$dir/mnt" | jq -r '.service.requests // 0')
  t0=$(now)
  tar -C "$dir/mnt" -xf "$W/src.tar" || die "untar on $svc"
  untar=$(elapsed "$t0")
  req=0
  if [ "$svc" != embedded ]; then
    req=$(wait_wrapped "$dir/mnt")
    req=$(awk -v a="$req" -v b="$before" -v n="$NFILES" 'BEGIN { printf "%.0f", (a - b) * 1000 / n }')
  fi
  unmount_one "$dir/mnt"
  if [ "$mode" = create ]; then
    # The open rate does not depend on how the keys were made.
    rm -rf "$dir"
    echo "$untar $req -"
    return 0
  fi
  if [ "$svc" = embedded ]; then
    KMSFS_ENGINE=$W/embedded "$KMSFS_BIN" mount "$dir/cipher" "$dir/mnt" >/dev/null \
      || die "kmsfs remount"
  else
    with_service "$svc" "$KMSFS_BIN" mount "$dir/cipher" "$dir/mnt" >/dev/null || die "kmsfs remount on $svc"
  fi
  opens=$(cat_all "$dir/mnt")
  unmount_one "$dir/mnt"
  rm -rf "$dir"
  echo "$untar $req $opens"
}

declare -A PORT UNTAR REQ OPEN
SERVICES="engine"
[ "$MOTO" = 1 ] && SERVICES="engine moto"
for d in $DELAYS; do
  PORT[engine,$d]=$(proxy "$d" "$ENGINE_PORT")
  [ "$MOTO" = 1 ] && PORT[moto,$d]=$(proxy "$d" "$MOTO_PORT")
done
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
CONFIGS=("embedded 0 -")
for svc in $SERVICES; do
  for d in $DELAYS; do
    CONFIGS+=("$svc $d background" "$svc $d create")
  done
done
for r in $(seq "$RUNS"); do
  for c in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2086  # the configuration's three words
    set -- $c
    line=$(one_run "$1" "$2" "$3")
    log "run $r: $c: untar s, requests/1000 files, cat s = $line"
    read -r u q o <<< "$line"
    UNTAR[$c]+="$u "
    REQ[$c]+="$q "
    OPEN[$c]+="$o "
  done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "$NFILES files untarred, $((OPEN_FILES < NFILES ? OPEN_FILES : NFILES)) opened; median of $RUNS runs; load average $LOAD0 at the start, $LOAD1 at the end"
printf '%-9s %6s %-10s %9s %11s %12s %9s %10s\n' service "+ms" new-keys "untar s" "vs embedded" \
  "req/1000 f" "opens/s" "vs embedded"
# shellcheck disable=SC2086
EU=$(median ${UNTAR[embedded 0 -]})
# shellcheck disable=SC2086
NOPEN=$((OPEN_FILES < NFILES ? OPEN_FILES : NFILES))
EO=$(awk -v n="$NOPEN" -v s="$(median ${OPEN[embedded 0 -]})" 'BEGIN { printf "%.0f", n / s }')
for c in "${CONFIGS[@]}"; do
  # shellcheck disable=SC2086
  set -- $c
  # shellcheck disable=SC2086
  u=$(median ${UNTAR[$c]})
  # shellcheck disable=SC2086
  o=-
  or=-
  if [ "$3" != create ]; then
    # shellcheck disable=SC2086
    o=$(awk -v n="$NOPEN" -v s="$(median ${OPEN[$c]})" 'BEGIN { printf "%.0f", n / s }')
    or="$(ratio "$o" "$EO")x"
  fi
  # shellcheck disable=SC2086
  printf '%-9s %6s %-10s %9.2f %10sx %12s %9s %10s\n' "$1" "$2" "$3" "$u" "$(ratio "$u" "$EU")" \
    "$(median ${REQ[$c]})" "$o" "$or"
done
