#!/usr/bin/env bash
# Run the original C pjdfstest suite (github.com/pjd/pjdfstest, ~8,800
# assertions in ~240 test files, driven by `prove`) against a fresh kmsfs
# mount and a fresh gocryptfs mount, one after the other, and print the
# counts and the failing assertions side by side.
#
# Both mounts are made for other users (kmsfs --allow-other with a key policy
# that lets every local user use the key for file data, gocryptfs
# -allow_other), over a private tmpfs each (1 GiB: a filesystem that stores
# holes as ciphertext runs out of space in open/25's 2 GiB sparse file and
# truncate/12's 999,999,999,999,999-byte one instead of exhausting memory),
# and the suite runs as root from inside the mount as its README says
# (`cd MOUNT; prove -r TESTS`).
#
# Usage: benches/pjdfstest_c.sh [--no-build] [--only kmsfs|gocryptfs]
#                               [--jobs N] [--logs DIR] [--backing SIZE]
#                               PJDFSTEST_DIR [TEST...]
#   PJDFSTEST_DIR  a built pjdfstest checkout (it holds the `pjdfstest`
#                  binary and tests/, built by you: this project ships
#                  no build recipe for it)
#   TEST...        test directories or files relative to PJDFSTEST_DIR/tests
#                  (default: all of them), e.g. `truncate symlink/03.t`
#   --only FS      run one filesystem only
#   --jobs N       prove -j N: test files run N at a time (default 2)
#   --logs DIR     keep prove's verbose output there (default: a new /tmp dir)
#   --backing SIZE size of each backing tmpfs (default 1g)
#   --report       run nothing: print the report again from --logs DIR
#   --no-build     use $CARGO_TARGET_DIR/release/kmsfs as is
# Needs root, perl's prove, fuse3, gocryptfs and jq.
# Exit status: 0 when every suite ran to its end (whatever it found).
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

ONLY=""
REPORT_ONLY=0
JOBS=2
BACKING=1g
LOGS=""
PJD_DIR=""
TESTS=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BENCH_NO_BUILD=1 ;;
    --only) ONLY=$2; shift ;;
    --jobs) JOBS=$2; shift ;;
    --logs) LOGS=$2; shift ;;
    --backing) BACKING=$2; shift ;;
    --report) REPORT_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown argument $1" ;;
    *) if [ -z "$PJD_DIR" ]; then PJD_DIR=$1; else TESTS+=("$1"); fi ;;
  esac
  shift
done
[ -n "$PJD_DIR" ] || die "usage: $0 [options] PJDFSTEST_DIR [TEST...] (see --help)"
PJD_DIR=$(cd "$PJD_DIR" && pwd)
{ [ -x "$PJD_DIR/pjdfstest" ] && [ -d "$PJD_DIR/tests" ]; } \
  || die "$PJD_DIR has no built pjdfstest"
select_fses "$ONLY"
if [ "$REPORT_ONLY" = 1 ]; then
  { [ -n "$LOGS" ] && [ -d "$LOGS" ]; } || die "--report needs --logs DIR of an earlier run"
else
  need_root
  for c in prove fusermount3 jq; do command -v "$c" >/dev/null || die "$c not installed"; done
  [ "$ONLY" = kmsfs ] || command -v gocryptfs >/dev/null || die "gocryptfs not installed"
  [ "$ONLY" = gocryptfs ] || build_kmsfs
fi

BENCH_WORK=$(mktemp -d /tmp/kmsfs-pjdfstest-c.XXXXXX)
chmod 755 "$BENCH_WORK"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
[ -n "$LOGS" ] || LOGS=$(mktemp -d /tmp/kmsfs-pjdfstest-c-logs.XXXXXX)
mkdir -p "$LOGS"
TARGETS=()
if [ ${#TESTS[@]} -eq 0 ]; then
  TARGETS=("$PJD_DIR/tests")
else
  for t in "${TESTS[@]}"; do TARGETS+=("$PJD_DIR/tests/$t"); done
fi

# mount_fs FS: a fresh volume of FS over its own tmpfs, mounted for other
# users on $BENCH_WORK/mnt-FS (not in a subshell: the mounts are recorded for
# bench_cleanup).
mount_fs() {
  local fs=$1 back=$BENCH_WORK/back-$1 mnt=$BENCH_WORK/mnt-$1
  make_tmpfs "$back" "$BACKING"
  case $fs in
    kmsfs)
      kmsfs_setup "$back/engine" "$back/pass" "$back/cipher"
      kmsfs_allow_everyone "$back/cipher"
      kmsfs_mount "$back/cipher" "$mnt" --allow-other
      ;;
    gocryptfs)
      gocryptfs_setup "$back/cipher"
      gocryptfs_mount "$back/cipher" "$mnt" -allow_other
      ;;
  esac
  chmod 755 "$mnt"
}

# summarize LOG: from prove's verbose output, "files tests failed todo"
# on the first line, then one line per failing assertion:
# "tests/DIR/NN.t #N: message" (pjdfstest's random names shown as NAME).
summarize() {
  awk -v root="$PJD_DIR/" '
    /^\/.*\.t \.+ *$/ { file = $1; sub(root, "", file); next }
    /^Files=[0-9]+, Tests=[0-9]+/ { split($1, f, "[=,]"); split($2, t, "[=,]"); files = f[2]; tests = t[2] + 0 }
    /^not ok [0-9]+/ {
      if ($0 ~ /# TODO/) { todo++; next }
      n = $3; msg = $0; sub(/^not ok [0-9]+ *-? */, "", msg)
      gsub(/pjdfstest_[0-9a-f]+/, "NAME", msg)
      # symlink/03 and friends pass 4 KiB paths: show their length instead
      k = split(msg, w, " "); msg = ""
      for (j = 1; j <= k; j++) {
        if (length(w[j]) > 80) {
          suf = match(w[j], /[^0-9A-Za-z_\/.]+$/) ? substr(w[j], RSTART) : ""
          w[j] = "<" length(w[j]) - length(suf) "-byte path>" suf
        }
        msg = msg (j > 1 ? " " : "") w[j]
      }
      if (msg == "") msg = "(no message: the result was none of those the test accepts)"
      fail[++nf] = file " #" n ": " msg
    }
    END {
      printf "%s %s %d %d\n", files == "" ? "?" : files, tests == "" ? "?" : tests, nf, todo
      for (i = 1; i <= nf; i++) print fail[i]
    }' "$1"
}

declare -A SUMMARY SECS
for fs in "${FSES[@]}"; do
  if [ "$REPORT_ONLY" = 0 ]; then
    mount_fs "$fs"
    mnt=$BENCH_WORK/mnt-$fs
    log "$fs: prove -r -j $JOBS on $mnt (log: $LOGS/$fs.log)"
    start=$(now)
    set +e
    (cd "$mnt" && prove -r -v -j "$JOBS" "${TARGETS[@]}") > "$LOGS/$fs.log" 2>&1
    set -e
    elapsed "$start" > "$LOGS/$fs.seconds"
  fi
  SECS[$fs]=$(cat "$LOGS/$fs.seconds" 2>/dev/null || echo "?")
  summarize "$LOGS/$fs.log" > "$LOGS/$fs.summary"
  SUMMARY[$fs]=$(head -1 "$LOGS/$fs.summary")
  log "$fs: ${SECS[$fs]} s; files, assertions, failed, todo = ${SUMMARY[$fs]}"
done

echo
echo "# C pjdfstest from $PJD_DIR, $(date -u +%FT%TZ), kmsfs $KMSFS_BIN"
printf '%-22s' ""; for fs in "${FSES[@]}"; do printf '%12s' "$fs"; done; echo
row() {
  local label=$1 col=$2 fs
  printf '%-22s' "$label"
  for fs in "${FSES[@]}"; do
    read -r -a v <<< "${SUMMARY[$fs]}"
    case $col in
      passed) if [ "${v[1]}" = "?" ]; then printf '%12s' "?"; else printf '%12s' "$((v[1] - v[2]))"; fi ;;
      *) printf '%12s' "${v[$col]}" ;;
    esac
  done
  echo
}
row "test files" 0
row "assertions" 1
row "passed" passed
row "failed" 2
row "todo (not counted)" 3
printf '%-22s' "seconds"; for fs in "${FSES[@]}"; do printf '%12s' "${SECS[$fs]}"; done; echo
# not_link FS: FS's failing assertions, except those in test files whose
# first failure is a link(2) refused with EPERM (kmsfs refuses hard links by
# design; what such a file checks afterwards depends on the link).
not_link() {
  tail -n +2 "$LOGS/$1.summary" | awk -F': ' '
    { f = $1; sub(/ #.*/, "", f) }
    !(f in first) { first[f] = ($0 ~ /tried .(-u [0-9]+ -g [0-9]+ )?link .*, expected 0, got EPERM/) }
    !first[f]'
}
for fs in "${FSES[@]}"; do
  echo
  echo "failing assertions on $fs, by test file (H: its first failure is a refused link(2)):"
  tail -n +2 "$LOGS/$fs.summary" | awk '
    { f = $1 } !(f in n) { h[f] = ($0 ~ /tried .(-u [0-9]+ -g [0-9]+ )?link .*, expected 0, got EPERM/) }
    { n[f]++ } END { for (f in n) printf "  %-24s %5d %s\n", f, n[f], h[f] ? "H" : "" }' \
    | sort | grep . || echo "  (none)"
  echo "failing assertions on $fs other than hard links (all of them: $LOGS/$fs.summary):"
  not_link "$fs" | sed 's/^/  /' | grep . || echo "  (none)"
done
if [ ${#FSES[@]} -eq 2 ]; then
  echo
  echo "failing on one of them only, hard links aside (by file and assertion number):"
  { diff <(not_link kmsfs | cut -d: -f1 | sort -u) <(not_link gocryptfs | cut -d: -f1 | sort -u) || true; } \
    | sed -n 's/^< /  kmsfs only:     /p; s/^> /  gocryptfs only: /p' | grep . || echo "  (none)"
fi
echo
echo "logs: $LOGS"
