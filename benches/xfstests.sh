#!/usr/bin/env bash
# Run a selection of xfstests' generic tests against kmsfs and gocryptfs, one
# after the other, and print passed/failed/not-run counts and the tests whose
# result differs.
#
# xfstests treats both as FSTYP=fuse: TEST_DEV and SCRATCH_DEV are two cipher
# directories on a private tmpfs, and `mount -t fuse.FS-xfstests CIPHER MNT`
# runs a mount helper that this script writes to /sbin for the run (and
# removes at exit). kmsfs mounts with --allow-other and a key policy that lets
# every local user use the key for file data; gocryptfs with -allow_other.
# Two shims make xfstests' checks work with a FUSE subtype: DF_PROG reports a
# type `fuse.X` as `fuse`, and UMOUNT_PROG unmounts a cipher directory named
# as a mount source through its mountpoint (umount(8) takes a directory for a
# mountpoint). When a kmsfs mount shows a fixed source name instead of its
# cipher directory, TEST_DEV is that name and there is no scratch volume
# (the tests that need one are then "not run").
#
# The selection (benches/xfstests.list, or --list FILE, or tests given as
# arguments) is documented in that file. A test that prints nothing for
# --test-timeout seconds is killed and counted as failed ("timeout"); the
# run goes on with the next test.
#
# Usage: benches/xfstests.sh [--no-build] [--only kmsfs|gocryptfs]
#                            [--list FILE] [--logs DIR] [--test-timeout S]
#                            XFSTESTS_DIR [TEST...]
#   XFSTESTS_DIR  a built xfstests checkout
#   TEST...       run these tests (e.g. generic/035) instead of the list
#   --logs DIR    keep check's output, results and the per-test table there
#   --report      run nothing: print the report again from --logs DIR
# Needs root, fuse3, gocryptfs, jq and xfstests' run-time tools (xfsprogs for
# xfs_io, attr, acl, bc, psmisc, ...; see the xfstests README).
# Exit status: 0 when every run went to its end (whatever it found).
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

ONLY=""
REPORT_ONLY=0
LIST=$BENCH_REPO/benches/xfstests.list
LOGS=""
TEST_TIMEOUT=600
XFS_DIR=""
TESTS=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BENCH_NO_BUILD=1 ;;
    --only) ONLY=$2; shift ;;
    --list) LIST=$2; shift ;;
    --logs) LOGS=$2; shift ;;
    --test-timeout) TEST_TIMEOUT=$2; shift ;;
    --report) REPORT_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown argument $1" ;;
    *) if [ -z "$XFS_DIR" ]; then XFS_DIR=$1; else TESTS+=("$1"); fi ;;
  esac
  shift
done
[ -n "$XFS_DIR" ] || die "usage: $0 [options] XFSTESTS_DIR [TEST...] (see --help)"
XFS_DIR=$(cd "$XFS_DIR" && pwd)
{ [ -x "$XFS_DIR/check" ] && [ -x "$XFS_DIR/ltp/fsstress" ]; } || die "$XFS_DIR is not a built xfstests checkout"
select_fses "$ONLY"
if [ ${#TESTS[@]} -eq 0 ]; then
  mapfile -t TESTS < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$LIST")
fi
[ ${#TESTS[@]} -gt 0 ] || die "no tests selected"
if [ "$REPORT_ONLY" = 1 ]; then
  { [ -n "$LOGS" ] && [ -d "$LOGS" ]; } || die "--report needs --logs DIR of an earlier run"
else
  need_root
  for c in fusermount3 jq findmnt xfs_io unshare; do command -v "$c" >/dev/null || die "$c not installed"; done
  [ "$ONLY" = kmsfs ] || command -v gocryptfs >/dev/null || die "gocryptfs not installed"
  [ "$ONLY" = gocryptfs ] || build_kmsfs
fi

BENCH_WORK=$(mktemp -d /tmp/kmsfs-xfstests.XXXXXX)
chmod 755 "$BENCH_WORK"
HELPERS=()   # mount helpers written to /sbin, removed at exit
HELPER_MARK="# written by kmsfs benches/xfstests.sh; removed when it exits"
xfstests_cleanup() {
  local rc=$? h m
  set +e
  # Kill what check left running (it runs in its own session), then undo
  # every mount below the work directory, stacked ones too.
  if [ -n "${CHECK_PID:-}" ]; then
    kill -KILL -- "-$CHECK_PID" 2>/dev/null
    for h in kmsfs gocryptfs; do kill_servers "$h"; done
  fi
  for m in $(findmnt -rn -o TARGET | grep "^$BENCH_WORK/mnt-" | sort -r); do force_unmount "$m"; done
  for h in "${HELPERS[@]}"; do
    grep -qxF "$HELPER_MARK" "$h" 2>/dev/null && rm -f "$h"
  done
  (exit "$rc")
  bench_cleanup
}
trap xfstests_cleanup EXIT
trap 'exit 130' INT TERM
[ -n "$LOGS" ] || LOGS=$(mktemp -d /tmp/kmsfs-xfstests-logs.XXXXXX)
mkdir -p "$LOGS"

# force_unmount MNT: unmount, aborting the FUSE connection first when the
# polite way fails (a hung test holds files open on it).
force_unmount() {
  local m=$1 dev
  while mountpoint -q "$m"; do
    unmount_one "$m"
    mountpoint -q "$m" || break
    dev=$(mountpoint -d "$m" 2>/dev/null) || break
    [ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ] && echo 1 > "/sys/fs/fuse/connections/${dev#*:}/abort"
    umount -l "$m" 2>/dev/null || break
  done
}

# write_shims: DF_PROG and UMOUNT_PROG for check (see the header).
write_shims() {
  mkdir -p "$BENCH_WORK/bin"
  cat > "$BENCH_WORK/bin/df" <<'EOF'
#!/bin/bash
# df for xfstests: a FUSE subtype (type fuse.X) is reported as FSTYP=fuse.
df "$@" | sed -E 's/ fuse\.[A-Za-z0-9_.-]+ / fuse /'
EOF
  cat > "$BENCH_WORK/bin/umount" <<'EOF'
#!/bin/bash
# umount for xfstests: a mount source that is a directory (a cipher
# directory) is unmounted through its mountpoint.
args=()
for a in "$@"; do
  if [ "${a#-}" = "$a" ] && [ -d "$a" ] && ! mountpoint -q "$a"; then
    t=$(findmnt -rn -S "$a" -o TARGET | tail -1)
    [ -z "$t" ] || a=$t
  fi
  args+=("$a")
done
exec umount "${args[@]}"
EOF
  # check runs in a private mount namespace: it sees no mount made later
  # elsewhere on the machine, and copies of other mounts with the same source
  # name (other kmsfs mounts, when kmsfs names every mount "kmsfs") are
  # detached there first. What check leaves mounted is unmounted before the
  # namespace goes, so that its FUSE servers exit.
  cat > "$BENCH_WORK/bin/isolated" <<EOF
#!/bin/bash
# isolated TEST_DEV COMMAND...: run inside \`unshare -m --propagation private\`.
dev=\$1
shift
findmnt -rn -S "\$dev" -o TARGET | grep -v "^$BENCH_WORK/" | while read -r t; do umount -l "\$t"; done
"\$@"
rc=\$?
for m in \$(findmnt -rn -o TARGET | grep "^$BENCH_WORK/mnt-" | sort -r); do umount "\$m" || umount -l "\$m"; done
exit \$rc
EOF
  chmod 755 "$BENCH_WORK/bin/df" "$BENCH_WORK/bin/umount" "$BENCH_WORK/bin/isolated"
}

# write_helper FS TEST_CIPHER SCRATCH_CIPHER: /sbin/mount.fuse.FS-xfstests,
# which mount(8) runs as `HELPER SOURCE MOUNTPOINT [-o OPTIONS]`. Any source
# other than the scratch volume means the test volume (a kmsfs that names its
# mounts "kmsfs" is asked to mount "kmsfs"). "ro" in OPTIONS mounts read-only.
write_helper() {
  local fs=$1 test=$2 scratch=$3 h=/sbin/mount.fuse.$1-xfstests cmd
  if [ -e "$h" ] && ! grep -qxF "$HELPER_MARK" "$h"; then die "$h exists and is not ours"; fi
  case $fs in
    kmsfs) cmd="KMSFS_ENGINE=$BENCH_WORK/back-kmsfs/engine KMSFS_PASSPHRASE_FILE=$BENCH_WORK/back-kmsfs/pass"
           cmd="$cmd exec $KMSFS_BIN mount --allow-other \${ro:+--read-only}" ;;
    gocryptfs) cmd="exec gocryptfs -q -nosyslog -allow_other -extpass 'echo pw' \${ro:+-ro}" ;;
  esac
  HELPERS+=("$h")
  cat > "$h" <<EOF
#!/bin/bash
$HELPER_MARK
src=\$1 mnt=\$2 ro=""
case ",\${4:-}," in *,ro,*) ro=1 ;; esac
case \$src in $scratch) cipher=$scratch ;; *) cipher=$test ;; esac
echo "\$(date +%T) mount \$* -> \$cipher" >> $LOGS/$fs.mount.log
$cmd "\$cipher" "\$mnt" < /dev/null >> $LOGS/$fs.mount.log 2>&1
EOF
  chmod 755 "$h"
}

# setup_fs FS: volumes, helper and check's config for FS; sets CONFIG.
setup_fs() {
  local fs=$1 back=$BENCH_WORK/back-$1 tmnt=$BENCH_WORK/mnt-$1-test smnt=$BENCH_WORK/mnt-$1-scratch
  local src type test_dev scratch_lines
  make_tmpfs "$back" 4g
  mkdir -p "$tmnt" "$smnt"
  case $fs in
    kmsfs)
      kmsfs_setup "$back/engine" "$back/pass" "$back/test"
      "$KMSFS_BIN" init "$back/scratch" >/dev/null || die "kmsfs init $back/scratch"
      kmsfs_allow_everyone "$back/test"
      kmsfs_allow_everyone "$back/scratch"
      ;;
    gocryptfs)
      gocryptfs_setup "$back/test"
      gocryptfs_setup "$back/scratch"
      ;;
  esac
  write_helper "$fs" "$back/test" "$back/scratch"
  # How does a mount of this filesystem name its source?
  mount -t "fuse.$fs-xfstests" "$back/test" "$tmnt" || die "mounting $fs through the helper"
  read -r src type < <(findmnt -rn -M "$tmnt" -o SOURCE,FSTYPE)
  force_unmount "$tmnt"
  log "$fs mounts show source $src, type $type"
  test_dev=$back/test
  scratch_lines="export SCRATCH_DEV=$back/scratch
export SCRATCH_MNT=$smnt"
  if [ "$src" != "$back/test" ]; then
    log "$fs: the source is not the cipher directory: TEST_DEV=$src and no scratch volume"
    test_dev=$src
    scratch_lines=""
  fi
  TEST_DEV=$test_dev
  CONFIG=$BENCH_WORK/$fs.config
  cat > "$CONFIG" <<EOF
export FSTYP=fuse
export FUSE_SUBTYP=.$fs-xfstests
export TEST_DEV=$test_dev
export TEST_DIR=$tmnt
$scratch_lines
export RESULT_BASE=$LOGS/$fs-results
export DF_PROG="$BENCH_WORK/bin/df -T -P"
export UMOUNT_PROG=$BENCH_WORK/bin/umount
EOF
}

# run_check FS OUT TEST...: check on TEST..., killed after TEST_TIMEOUT
# seconds without output; returns 124 when it was killed.
run_check() {
  local fs=$1 out=$2 size last_size=-1 quiet=0
  shift 2
  (cd "$XFS_DIR" && HOST_OPTIONS=$CONFIG exec setsid unshare -m --propagation private -- \
    "$BENCH_WORK/bin/isolated" "$TEST_DEV" ./check "$@") < /dev/null >> "$out" 2>&1 &
  CHECK_PID=$!
  while kill -0 "$CHECK_PID" 2>/dev/null; do
    sleep 5
    size=$(stat -c %s "$out")
    if [ "$size" = "$last_size" ]; then quiet=$((quiet + 5)); else quiet=0; last_size=$size; fi
    if [ "$quiet" -ge "$TEST_TIMEOUT" ]; then
      log "$fs: no output for $TEST_TIMEOUT s: killing check"
      kill -KILL -- "-$CHECK_PID" 2>/dev/null || kill -KILL "$CHECK_PID"
      wait "$CHECK_PID" 2>/dev/null
      CHECK_PID=""
      kill_servers "$fs"
      return 124
    fi
  done
  wait "$CHECK_PID" 2>/dev/null || true
  CHECK_PID=""
}

# kill_servers FS: end the FUSE servers of FS's mounts in a namespace whose
# check was killed (nothing outside can unmount them there).
kill_servers() {
  local m p
  for m in "$BENCH_WORK/mnt-$1-test" "$BENCH_WORK/mnt-$1-scratch"; do
    for p in $(fuse_pid "$1" "$m"); do kill "$p" 2>/dev/null; done
  done
}

# classify OUT: "TEST status [reason]" per test from check's output, status
# pass, fail, notrun or timeout (a test that was running when check was
# killed).
classify() {
  awk '
    /^(generic|shared)\/[0-9]+/ {
      t = $1; line = $0; sub(/^[^ ]+ */, "", line)
      if (line ~ /\[expunged\]/) next
      if (line ~ /\[not run\]/) { sub(/.*\[not run\] */, "", line); print t, "notrun", line }
      else if (line ~ /output mismatch|\[failed|no qualified output|_check_dmesg|_check_.*filesystem/) {
        r = line; gsub(/ *\(see [^)]*\)/, "", r); print t, "fail", r }
      else if (line ~ /^[0-9]+s( |$)|[0-9]+s *$/) print t, "pass"
      else print t, "timeout"
    }' "$1"
}

CHECK_PID=""
declare -A ELAPSED
# run_fs FS: the selection on FS, going on after a test that hangs; writes
# LOGS/FS.results and LOGS/FS.seconds.
run_fs() {
  local fs=$1 out=$LOGS/$1.check.out start rc stuck seen t m todo rest
  setup_fs "$fs"
  : > "$out"
  todo=("${TESTS[@]}")
  start=$(now)
  log "$fs: ${#todo[@]} tests (output: $out)"
  while [ ${#todo[@]} -gt 0 ]; do
    rc=0
    run_check "$fs" "$out" "${todo[@]}" || rc=$?
    for m in "$BENCH_WORK/mnt-$fs-test" "$BENCH_WORK/mnt-$fs-scratch"; do force_unmount "$m"; done
    [ "$rc" = 124 ] || break
    stuck=$(classify "$out" | awk '$2 == "timeout" { t = $1 } END { print t }')
    [ -n "$stuck" ] || break
    log "$fs: $stuck timed out; going on after it"
    rest=()
    seen=0
    for t in "${todo[@]}"; do
      if [ "$seen" = 1 ]; then rest+=("$t"); fi
      [ "$t" != "$stuck" ] || seen=1
    done
    todo=(${rest[@]+"${rest[@]}"})
  done
  classify "$out" > "$LOGS/$fs.results"
  elapsed "$start" > "$LOGS/$fs.seconds"
  log "$fs: done in $(cat "$LOGS/$fs.seconds") s"
}

[ "$REPORT_ONLY" = 1 ] || write_shims
for fs in "${FSES[@]}"; do
  [ "$REPORT_ONLY" = 1 ] || run_fs "$fs"
  ELAPSED[$fs]=$(cat "$LOGS/$fs.seconds" 2>/dev/null || echo "?")
done

count() { awk -v s="$2" '$2 == s || (s == "fail" && $2 == "timeout")' "$LOGS/$1.results" | wc -l; }
echo
echo "# xfstests from $XFS_DIR, ${#TESTS[@]} tests selected, $(date -u +%FT%TZ), kmsfs $KMSFS_BIN"
printf '%-10s' ""; for fs in "${FSES[@]}"; do printf '%12s' "$fs"; done; echo
for s in pass fail notrun; do
  printf '%-10s' "$s"; for fs in "${FSES[@]}"; do printf '%12s' "$(count "$fs" "$s")"; done; echo
done
printf '%-10s' "seconds"; for fs in "${FSES[@]}"; do printf '%12s' "${ELAPSED[$fs]}"; done; echo
for fs in "${FSES[@]}"; do
  echo
  echo "failing on $fs:"
  awk '$2 == "fail" || $2 == "timeout"' "$LOGS/$fs.results" | sed 's/^/  /' | grep . || echo "  (none)"
done
if [ ${#FSES[@]} -eq 2 ]; then
  echo
  echo "tests whose result differs (kmsfs, gocryptfs; not-run reason of kmsfs):"
  tab=$'\t'
  join -t "$tab" -a1 -a2 -e missing -o 0,1.2,2.2,1.3 \
    <(awk -v OFS="\t" '{ r = $0; sub(/^[^ ]+ [^ ]+ ?/, "", r); print $1, $2, r }' "$LOGS/kmsfs.results" | sort) \
    <(awk -v OFS="\t" '{ print $1, $2 }' "$LOGS/gocryptfs.results" | sort) \
    | awk -F "\t" '$2 != $3 { printf "  %-12s %-8s %-8s %s\n", $1, $2, $3, ($2 == "notrun" ? $4 : "") }' \
    | grep . || echo "  (none)"
fi
echo
echo "logs: $LOGS (per test: FS.results; check's output: FS.check.out; results: FS-results/)"
