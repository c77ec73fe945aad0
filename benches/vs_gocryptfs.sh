#!/usr/bin/env bash
# kmsfs vs gocryptfs, side by side on tmpfs backing directories, in one run.
#
# For both filesystems: sequential write and read of 512 MiB (1 MiB blocks,
# write ends with fsync, page cache dropped before the read), extracting a
# tarball of /usr/include (~8,000 small files), `ls -lR` and `rm -rf` of the
# extracted tree (caches dropped before each), and fio 4 KiB random
# read/write (50/50, 64 MiB file, psync, iodepth 1, O_DIRECT). Each
# measurement runs RUNS times (default 3), the two filesystems alternating;
# the script prints medians and the kmsfs/gocryptfs ratio. Then it creates
# and stats 100,000 files on each mount and prints the mount process's RSS.
#
# Usage: benches/vs_gocryptfs.sh [--quick] [--runs N] [--no-build]
#                                [--fio-secs S] [--rss-files N] [--raw FILE]
#   --quick      smoke run: 64 MiB sequential, 1 run, 3 s fio, 10,000 files for RSS
#   --no-build   use $CARGO_TARGET_DIR/release/kmsfs as is
#   --raw FILE   also write every individual measurement to FILE (TSV)
# Needs root (tmpfs mounts, drop_caches), fuse3, gocryptfs, fio, jq, tar.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

SEQ_MIB=512
RUNS=3
FIO_SECS=15
FIO_MIB=64
RSS_FILES=100000
RAW=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) SEQ_MIB=64; RUNS=1; FIO_SECS=3; FIO_MIB=16; RSS_FILES=10000 ;;
    --runs) RUNS=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    --fio-secs) FIO_SECS=$2; shift ;;
    --rss-files) RSS_FILES=$2; shift ;;
    --raw) RAW=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done

need_root
for c in gocryptfs fio jq tar fusermount3; do command -v "$c" >/dev/null || die "$c not installed"; done
build_kmsfs

BENCH_WORK=$(mktemp -d /tmp/kmsfs-bench.XXXXXX)
chmod 755 "$BENCH_WORK"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# One tmpfs for both backing directories and the tarball; the mountpoints
# live outside it.
BACK=$BENCH_WORK/backing
make_tmpfs "$BACK" "$((SEQ_MIB * 3 + 2048))m"
K_MNT=$BENCH_WORK/mnt-kmsfs
G_MNT=$BENCH_WORK/mnt-gocryptfs

log "setting up kmsfs ($KMSFS_BIN) and gocryptfs ($(gocryptfs -version | cut -d';' -f1)) volumes"
kmsfs_setup "$BACK/kmsfs-engine" "$BACK/kmsfs-pass" "$BACK/kmsfs-cipher"
gocryptfs_setup "$BACK/gocryptfs-cipher"
kmsfs_mount "$BACK/kmsfs-cipher" "$K_MNT"
gocryptfs_mount "$BACK/gocryptfs-cipher" "$G_MNT"

# The tarball: /usr/include, duplicated when it has fewer than 7,500 files.
TARBALL=$BACK/include.tar
SRC=$BENCH_WORK/tarsrc
mkdir -p "$SRC"
cp -a /usr/include "$SRC/include"
nfiles=$(find "$SRC" -type f | wc -l)
copy=1
while [ "$nfiles" -lt 7500 ]; do
  copy=$((copy + 1))
  cp -a /usr/include "$SRC/include$copy"
  nfiles=$(find "$SRC" -type f | wc -l)
done
tar -cf "$TARBALL" -C "$SRC" .
rm -rf "$SRC"
TAR_MIB=$(du -m "$TARBALL" | cut -f1)
NENTRIES=$(tar -tf "$TARBALL" | grep -cvx "\./")
log "tarball: $nfiles files, $NENTRIES entries, $TAR_MIB MiB"

declare -A R   # R[fs.metric] = space-separated values, one per run

record() { # FS METRIC VALUE
  R[$1.$2]="${R[$1.$2]:-} $3"
  [ -z "$RAW" ] || printf '%s\t%s\t%s\t%s\n' "$run" "$1" "$2" "$3" >> "$RAW"
}

one_run() { # FS MOUNTPOINT
  local fs=$1 m=$2 t0 secs
  # sequential write, fsync at the end (conv=fsync), MiB/s
  drop_caches
  t0=$(now)
  dd if=/dev/zero of="$m/seq" bs=1M count="$SEQ_MIB" conv=fsync status=none
  secs=$(elapsed "$t0")
  record "$fs" write_mibs "$(awk -v n="$SEQ_MIB" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')"
  # sequential read, page cache dropped first, MiB/s
  drop_caches
  t0=$(now)
  dd if="$m/seq" of=/dev/null bs=1M status=none
  secs=$(elapsed "$t0")
  record "$fs" read_mibs "$(awk -v n="$SEQ_MIB" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')"
  [ "$(stat -c %s "$m/seq")" = $((SEQ_MIB * 1048576)) ] || die "$fs: $m/seq has the wrong size"
  rm -f "$m/seq"
  # tar extract (ends with sync so the data reached the backing directory)
  mkdir "$m/tree"
  drop_caches
  t0=$(now)
  tar -xf "$TARBALL" -C "$m/tree"
  sync
  record "$fs" tar_s "$(elapsed "$t0")"
  # ls -lR, cold dentry/inode/attribute caches
  drop_caches
  t0=$(now)
  ls -lR "$m/tree" > /dev/null
  record "$fs" ls_s "$(elapsed "$t0")"
  # not timed: the tree is complete and its contents match the tarball
  [ "$(find "$m/tree" -mindepth 1 | wc -l)" = "$NENTRIES" ] || die "$fs: extracted tree is incomplete"
  tar --compare -f "$TARBALL" -C "$m/tree" > /dev/null || die "$fs: extracted tree differs from the tarball"
  # rm -rf, cold caches
  drop_caches
  t0=$(now)
  rm -rf "$m/tree"
  record "$fs" rm_s "$(elapsed "$t0")"
  # fio 4 KiB random read/write 50/50
  local json
  json=$(fio --name=randrw --directory="$m" --filename=fio.dat --rw=randrw --rwmixread=50 \
    --bs=4k --size="${FIO_MIB}m" --ioengine=psync --iodepth=1 --direct=1 \
    --runtime="$FIO_SECS" --time_based --output-format=json 2>/dev/null)
  [ "$(jq '.jobs[0].error' <<< "$json")" = 0 ] || die "fio failed on $fs"
  record "$fs" fio_read_iops "$(jq '.jobs[0].read.iops | . * 10 | round / 10' <<< "$json")"
  record "$fs" fio_write_iops "$(jq '.jobs[0].write.iops | . * 10 | round / 10' <<< "$json")"
  rm -f "$m/fio.dat"
}

[ -z "$RAW" ] || printf 'run\tfs\tmetric\tvalue\n' > "$RAW"
for run in $(seq "$RUNS"); do
  # alternate which filesystem goes first so that drift in the machine's
  # load does not always favour the same one
  if [ $((run % 2)) = 1 ]; then order="kmsfs gocryptfs"; else order="gocryptfs kmsfs"; fi
  for fs in $order; do
    log "run $run/$RUNS: $fs"
    if [ "$fs" = kmsfs ]; then one_run kmsfs "$K_MNT"; else one_run gocryptfs "$G_MNT"; fi
  done
done

# RSS after RSS_FILES files were created and stat'ed: 100 directories of
# RSS_FILES/100 empty files, created with touch and stat'ed with stat.
rss_run() { # FS MOUNTPOINT PID
  local fs=$1 m=$2 pid=$3 per=$((RSS_FILES / 100)) d t0
  t0=$(now)
  for d in $(seq -w 0 99); do
    mkdir "$m/rss$d"
    (cd "$m/rss$d" && seq -f "f%06g" 1 "$per" | xargs touch)
  done
  find "$m" -path "$m/rss*" -type f -print0 | xargs -0 stat --format=%s > /dev/null
  local secs rss
  secs=$(elapsed "$t0")
  rss=$(rss_kib "$pid")
  RSS[$fs]="$rss"
  log "$fs: $RSS_FILES files created+stat'ed in ${secs}s; VmRSS/VmHWM KiB: $rss"
  [ -z "$RAW" ] || printf 'rss\t%s\tvmrss_kib vmhwm_kib create_stat_s\t%s %s\n' "$fs" "$rss" "$secs" >> "$RAW"
}
declare -A RSS
K_PID=$(kmsfs_pid "$K_MNT")
G_PID=$(gocryptfs_pid "$G_MNT")
[ -n "$K_PID" ] || die "no kmsfs mount process found"
[ -n "$G_PID" ] || die "no gocryptfs process found"
rss_run kmsfs "$K_MNT" "$K_PID"
rss_run gocryptfs "$G_MNT" "$G_PID"

# ---- report -----------------------------------------------------------------
med() { median ${R[$1.$2]}; }
verdict() { # VALUE OP LIMIT -> yes/no
  awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
    ok = (op == ">=") ? (v >= l) : (v <= l); print ok ? "met" : "NOT met" }'
}
printf '\n# kmsfs vs gocryptfs — %s, %s, %d run(s), medians\n' "$(date -u +%FT%TZ)" "$(uname -r)" "$RUNS"
printf '# %s; load average at end: %s\n' "$(nproc) CPUs" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '# sequential %d MiB; tarball %d entries (%d MiB); fio %d MiB %ds\n\n' \
  "$SEQ_MIB" "$NENTRIES" "$TAR_MIB" "$FIO_MIB" "$FIO_SECS"
printf '%-22s %12s %12s %8s  %-14s %s\n' metric kmsfs gocryptfs ratio target result
row() { # METRIC LABEL OP LIMIT
  local k g r
  k=$(med kmsfs "$1"); g=$(med gocryptfs "$1"); r=$(ratio "$k" "$g")
  if [ -n "$3" ]; then
    printf '%-22s %12s %12s %8s  %-14s %s\n' "$2" "$k" "$g" "$r" "$3 $4" "$(verdict "$r" "$3" "$4")"
  else
    printf '%-22s %12s %12s %8s  %-14s %s\n' "$2" "$k" "$g" "$r" "-" "-"
  fi
}
row write_mibs "seq write MiB/s" ">=" 1.5
row read_mibs "seq read MiB/s" ">=" 1.2
row tar_s "tar -x s" "<=" 0.8
row ls_s "ls -lR s" "<=" 0.8
row rm_s "rm -rf s" "<=" 0.8
row fio_read_iops "fio randread IOPS" "" ""
row fio_write_iops "fio randwrite IOPS" "" ""
read -r k_rss k_hwm <<< "${RSS[kmsfs]}"
read -r g_rss g_hwm <<< "${RSS[gocryptfs]}"
printf '%-22s %12s %12s %8s  %-14s %s\n' "RSS MiB ($RSS_FILES files)" \
  "$((k_rss / 1024))" "$((g_rss / 1024))" "$(ratio "$k_rss" "$g_rss")" "kmsfs <= 100" \
  "$([ $((k_rss / 1024)) -le 100 ] && echo met || echo 'NOT met')"
printf '%-22s %12s %12s\n' "peak RSS MiB (VmHWM)" "$((k_hwm / 1024))" "$((g_hwm / 1024))"
printf '\nall runs:\n'
for key in $(printf '%s\n' "${!R[@]}" | sort); do printf '  %-26s %s\n' "$key" "${R[$key]}"; done
