#!/usr/bin/env bash
# Run pjdfstest (the Rust rewrite, `cargo install pjdfstest`) against a fresh
# kmsfs mount on a tmpfs backing directory, and summarize the result.
#
# Usage: benches/pjdfstest.sh [--no-build] [--config FILE] [--log FILE]
#                             [--debug-build] [PATTERN...]
#   --config FILE   pjdfstest configuration (default benches/pjdfstest.toml)
#   --log FILE      keep pjdfstest's full output there (default: printed path)
#   --debug-build   use $CARGO_TARGET_DIR/debug/kmsfs (cargo build, not --release)
#   PATTERN...      only the tests whose names match (pjdfstest's filter)
# Needs root (pjdfstest switches users; the mount uses --allow-other),
# fuse3, and pjdfstest in PATH or ~/.cargo/bin.
# Exit status: pjdfstest's (non-zero when a test failed).
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

CONFIG=$BENCH_REPO/benches/pjdfstest.toml
LOG=""
DEBUG_BUILD=0
PATTERNS=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BENCH_NO_BUILD=1 ;;
    --config) CONFIG=$2; shift ;;
    --log) LOG=$2; shift ;;
    --debug-build) DEBUG_BUILD=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown argument $1" ;;
    *) PATTERNS+=("$1") ;;
  esac
  shift
done
need_root
PJD=$(command -v pjdfstest || echo "$HOME/.cargo/bin/pjdfstest")
[ -x "$PJD" ] || die "pjdfstest not found (cargo install pjdfstest)"
if [ "$DEBUG_BUILD" = 1 ]; then
  KMSFS_BIN=$CARGO_TARGET_DIR/debug/kmsfs
  if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    (cd "$BENCH_REPO" && cargo build -q -p mount-tool) || die "build failed"
  fi
else
  build_kmsfs
fi

BENCH_WORK=$(mktemp -d /tmp/kmsfs-pjdfstest.XXXXXX)
chmod 755 "$BENCH_WORK"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
BACK=$BENCH_WORK/backing
# open::interact_2gb writes at offset 2 GiB + 1: the backing tmpfs must hold
# what kmsfs stores for that file (tmpfs pages are only used when written).
make_tmpfs "$BACK" 4g
M=$BENCH_WORK/mnt
kmsfs_setup "$BACK/engine" "$BACK/pass" "$BACK/cipher"
kmsfs_allow_everyone "$BACK/cipher"
kmsfs_mount "$BACK/cipher" "$M" --allow-other
chmod 755 "$M"
# a directory on another filesystem, for the EXDEV tests
SECONDARY=$BENCH_WORK/secondary
mkdir -p "$SECONDARY"
[ -n "$LOG" ] || LOG=$(mktemp /tmp/kmsfs-pjdfstest-log.XXXXXX)

log "pjdfstest -c $CONFIG -p $M -s $SECONDARY ${PATTERNS[*]:-} (log: $LOG)"
set +e
(cd "$M" && "$PJD" -c "$CONFIG" -p "$M" -s "$SECONDARY" ${PATTERNS[@]+"${PATTERNS[@]}"}) > "$LOG" 2>&1
rc=$?
set -e

# pjdfstest prints one line per test ("name ... ok|FAILED|skipped") and a
# summary; repeat the summary and list the failures.
echo
echo "# pjdfstest on kmsfs — $(date -u +%FT%TZ), $($PJD --version), config $(basename "$CONFIG")"
grep -E '^Summary:' "$LOG" || echo "(no summary line: pjdfstest did not finish)"
echo
echo "failing tests (name: first line of the failure message):"
awk '/FAILED$/ { name = $1; getline msg; sub(/^[ \t]+/, "", msg); printf "  %s: %s\n", name, msg }' "$LOG" \
  | sort | grep . || echo "  (none)"
echo
echo "failures grouped by message:"
awk '/FAILED$/ { getline msg; sub(/^[ \t]+/, "", msg); print msg }' "$LOG" | sort | uniq -c | sort -rn \
  | sed 's/^/  /'
echo
echo "skipped, by reason:"
awk '/skipped$/ { getline msg; sub(/^[ \t]+/, "", msg); print msg }' "$LOG" | sort | uniq -c | sort -rn \
  | sed 's/^/  /'
echo
echo "expected by design: link(2) is refused with EPERM (a data key is bound to"
echo "one path), so every test that makes a hard link fails at its link() call."
echo
echo "full log: $LOG (exit status $rc)"
exit "$rc"
