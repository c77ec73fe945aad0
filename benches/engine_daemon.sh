#!/usr/bin/env bash
# A mount over the engine daemon (`kmsfs engine serve`, `--kms unix://...`)
# against the embedded mount, same run, same volume, same options:
#   open rate   open+read+close of small files with --reauth-secs 0, so that
#               every open asks the engine (benches/open_rate.sh --dir, warm
#               and cold caches, medians);
#   untar       wall time of `tar -xf` of /usr/include into the mount (every
#               file created is a GenerateDataKey), median of --untar-passes.
# The two mounts alternate: embedded, daemon, and for untar each pass runs
# both. Prints the figures and the ratios daemon/embedded.
#
# Usage: benches/engine_daemon.sh [--files N] [--passes P] [--untar-passes U]
#                                 [--no-build]
# Needs root (tmpfs, drop_caches), fuse3, python3, tar.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

FILES=2000
PASSES=5
UNTAR_PASSES=3
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift ;;
    --passes) PASSES=$2; shift ;;
    --untar-passes) UNTAR_PASSES=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
need_root
command -v python3 >/dev/null || die "python3 not installed"
[ -d /usr/include ] || die "/usr/include missing (the untar source)"

DAEMON_PID=""
stop_daemon() {
  [ -n "$DAEMON_PID" ] || return 0
  kill -TERM "$DAEMON_PID" 2>/dev/null || true
  for _ in $(seq 100); do alive "$DAEMON_PID" || break; sleep 0.1; done
  DAEMON_PID=""
}
cleanup() { local rc=$?; stop_daemon; (exit $rc); bench_cleanup; }

build_kmsfs
BENCH_WORK=$(mktemp -d /tmp/kmsfs-daemon-bench.XXXXXX)
chmod 755 "$BENCH_WORK"
trap cleanup EXIT
trap 'exit 130' INT TERM
BACK=$BENCH_WORK/backing
make_tmpfs "$BACK" 2g
M=$BENCH_WORK/mnt
SOCK=$BENCH_WORK/run/engine.sock
kmsfs_setup "$BACK/engine" "$BACK/pass" "$BACK/cipher"
tar -C /usr -cf "$BACK/include.tar" include
log "untar source: $(du -sh "$BACK/include.tar" | cut -f1), $(tar -tf "$BACK/include.tar" | wc -l) entries"

declare -A RES
open_rate() { # LABEL
  local out
  out=$("$(dirname "$0")/open_rate.sh" --no-build --dir "$M" --files "$FILES" --passes "$PASSES")
  RES[$1.warm]=$(awk '$2 == "warm" { print $3 }' <<<"$out")
  RES[$1.cold]=$(awk '$2 == "cold" { print $3 }' <<<"$out")
  log "$1 open rate: warm ${RES[$1.warm]}, cold ${RES[$1.cold]} opens/s"
}
untar_once() { # -> seconds
  local d t0
  d=$M/untar.$RANDOM$RANDOM
  mkdir "$d"
  sync; drop_caches
  t0=$(now)
  tar -xf "$BACK/include.tar" -C "$d"
  sync
  elapsed "$t0"
  rm -rf "$d"
}
mount_embedded() { kmsfs_mount "$BACK/cipher" "$M" --reauth-secs 0; }
mount_daemon() {
  KMSFS_KMS="unix://$SOCK" kmsfs_mount "$BACK/cipher" "$M" --reauth-secs 0
}
start_daemon() {
  "$KMSFS_BIN" engine serve --socket "$SOCK" --socket-mode 0600 --background 2>/dev/null \
    || die "kmsfs engine serve"
  DAEMON_PID=$(sed -n 's/^pid \([0-9]*\) .*/\1/p' "$BACK/engine/engine.holder")
  [ -n "$DAEMON_PID" ] || die "no daemon pid in engine.holder"
}

mount_embedded; open_rate embedded; unmount_one "$M"
start_daemon; mount_daemon; open_rate daemon; unmount_one "$M"; stop_daemon

E_UNTAR=(); D_UNTAR=()
for p in $(seq "$UNTAR_PASSES"); do
  mount_embedded; E_UNTAR+=("$(untar_once)"); unmount_one "$M"
  start_daemon; mount_daemon; D_UNTAR+=("$(untar_once)"); unmount_one "$M"; stop_daemon
  log "untar pass $p: embedded ${E_UNTAR[-1]} s, daemon ${D_UNTAR[-1]} s"
done
EU=$(median "${E_UNTAR[@]}"); DU=$(median "${D_UNTAR[@]}")

printf '\n# mount over the engine daemon vs embedded — %s, %s CPUs, load %s\n' \
  "$(date -u +%FT%TZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '# open rate: %d files of 1024 bytes, --reauth-secs 0, median of %d passes (opens/s)\n' \
  "$FILES" "$PASSES"
for s in warm cold; do
  printf 'open %-4s embedded %10s  daemon %10s  daemon/embedded %s\n' "$s" \
    "${RES[embedded.$s]}" "${RES[daemon.$s]}" "$(ratio "${RES[daemon.$s]}" "${RES[embedded.$s]}")"
done
printf 'untar /usr/include  embedded %s s  daemon %s s  daemon/embedded %s  (passes: %s | %s)\n' \
  "$EU" "$DU" "$(ratio "$DU" "$EU")" "${E_UNTAR[*]}" "${D_UNTAR[*]}"
