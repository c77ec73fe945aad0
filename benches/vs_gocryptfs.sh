#!/usr/bin/env bash
# kmsfs vs gocryptfs vs a no-crypto FUSE passthrough, side by side on one
# tmpfs backing directory, in one run.
#
# The passthrough (benches/passthrough_fs.rs) runs on fuser with kmsfs's own
# session settings (threads, max_write, READDIRPLUS, timeouts): it is the
# ceiling of a FUSE filesystem here. kmsfs/passthrough is kmsfs's own cost,
# kmsfs/gocryptfs the comparison with the peer.
#
# Workloads, each on every filesystem: sequential write of SEQ MiB (dd bs=1M
# conv=fsync) and read (dd bs=1M, page cache dropped first), tar -x of a
# tarball of /usr/include (~8,000 files) + sync, ls -lR and rm -rf of that
# tree (caches dropped before each). Interleaved rounds (default 7): in every
# round each filesystem runs every workload, the order of the filesystems
# rotated from round to round (kmsfs gocryptfs passthrough, then gocryptfs
# passthrough kmsfs, ...). For every measurement: wall time and the CPU time
# (utime + stime from /proc/PID/stat) the mount process spent on it; per
# round the load average. Reported: per filesystem the median wall time /
# throughput and CPU time, and the median with min-max of the per-round
# ratios kmsfs/gocryptfs and kmsfs/passthrough (ratios taken within a round,
# so a disturbed round moves both sides). After the timed rounds, one untimed
# round on kmsfs and the passthrough reads their FUSE request counters per
# workload (`kmsfs status`, the passthrough's --stats file).
#
# Usage: benches/vs_gocryptfs.sh [--quick] [--rounds N] [--seq-mib N]
#          [--no-build] [--fio] [--rss-files N] [--raw FILE]
#          [--kmsfs-opts "OPTS"] [--no-xattr] [--writeback-cache]
#   --quick       smoke run: 64 MiB sequential, 3 rounds
#   --no-build    use the binaries in $CARGO_TARGET_DIR/release as they are
#   --fio         also fio 4 KiB random read/write 50/50 per round (64 MiB, 15 s)
#   --rss-files N at the end, create and stat N files on each mount and
#                 report the mount process's RSS (0, the default: skip)
#   --raw FILE    every individual measurement as TSV
#   --kmsfs-opts  extra `kmsfs mount` options (e.g. "--reauth-secs 0")
#   --no-xattr    kmsfs and the passthrough without xattrs (`kmsfs mount
#                 --no-xattr`); gocryptfs as it is (2.3 has no such option)
#   --writeback-cache  kmsfs and the passthrough with the kernel's FUSE
#                 writeback cache (`kmsfs mount --writeback-cache`); gocryptfs
#                 as it is (2.3 does not use it)
# Needs root (tmpfs mounts, drop_caches), fuse3, gocryptfs, jq, tar (fio for --fio).
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

SEQ_MIB=512
ROUNDS=7
FIO=0
FIO_SECS=15
FIO_MIB=64
RSS_FILES=0
RAW=""
KMSFS_OPTS=""
P_OPTS=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) SEQ_MIB=64; ROUNDS=3; FIO_SECS=3; FIO_MIB=16 ;;
    --rounds|--runs) ROUNDS=$2; shift ;;
    --seq-mib) SEQ_MIB=$2; shift ;;
    --no-build) BENCH_NO_BUILD=1 ;;
    --fio) FIO=1 ;;
    --fio-secs) FIO_SECS=$2; shift ;;
    --rss-files) RSS_FILES=$2; shift ;;
    --raw) RAW=$2; shift ;;
    --kmsfs-opts) KMSFS_OPTS=$2; shift ;;
    --no-xattr) KMSFS_OPTS="$KMSFS_OPTS --no-xattr"; P_OPTS+=(--no-xattr) ;;
    --writeback-cache) KMSFS_OPTS="$KMSFS_OPTS --writeback-cache"; P_OPTS+=(--writeback-cache) ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done

need_root
for c in gocryptfs jq tar fusermount3; do command -v "$c" >/dev/null || die "$c not installed"; done
[ "$FIO" = 0 ] || command -v fio >/dev/null || die "fio not installed"
build_kmsfs
build_passthrough

BENCH_WORK=$(mktemp -d /tmp/kmsfs-bench.XXXXXX)
chmod 755 "$BENCH_WORK"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# One tmpfs for every backing directory and the tarball; the mountpoints
# live outside it.
BACK=$BENCH_WORK/backing
make_tmpfs "$BACK" "$((SEQ_MIB * 4 + 3072))m"
declare -A MNT=(
  [kmsfs]=$BENCH_WORK/mnt-kmsfs
  [gocryptfs]=$BENCH_WORK/mnt-gocryptfs
  [passthrough]=$BENCH_WORK/mnt-passthrough
)
FSES=(kmsfs gocryptfs passthrough)
P_STATS=$BENCH_WORK/passthrough-stats.json

log "setting up kmsfs ($KMSFS_BIN), gocryptfs ($(gocryptfs -version | cut -d';' -f1)) and the passthrough ($PASSTHROUGH_BIN)"
kmsfs_setup "$BACK/kmsfs-engine" "$BACK/kmsfs-pass" "$BACK/kmsfs-cipher"
gocryptfs_setup "$BACK/gocryptfs-cipher"
# shellcheck disable=SC2086  # KMSFS_OPTS is a list of options
kmsfs_mount "$BACK/kmsfs-cipher" "${MNT[kmsfs]}" $KMSFS_OPTS
gocryptfs_mount "$BACK/gocryptfs-cipher" "${MNT[gocryptfs]}"
mkdir -p "$BACK/passthrough-src"
passthrough_mount "$BACK/passthrough-src" "${MNT[passthrough]}" "$P_STATS" "${P_OPTS[@]}"
declare -A PID=(
  [kmsfs]=$(kmsfs_pid "${MNT[kmsfs]}")
  [gocryptfs]=$(gocryptfs_pid "${MNT[gocryptfs]}")
  [passthrough]=$(passthrough_pid "${MNT[passthrough]}")
)
for fs in "${FSES[@]}"; do [ -n "${PID[$fs]}" ] || die "no $fs mount process found"; done

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

declare -A R   # R[fs.metric] = space-separated values, one per round
declare -A RR  # RR[ratio.metric] = per-round ratios
declare -A LOAD
CLK_TCK=$(getconf CLK_TCK)

record() { # FS METRIC VALUE
  R[$1.$2]="${R[$1.$2]:-} $3"
  [ -z "$RAW" ] || printf '%s\t%s\t%s\t%s\n' "$round" "$1" "$2" "$3" >> "$RAW"
}

# timed FS METRIC CMD...: runs CMD, records METRIC_s (wall) and METRIC_cpu
# (the mount process's CPU seconds during CMD).
timed() {
  local fs=$1 metric=$2 t0 c0
  shift 2
  c0=$(proc_cpu_ticks "${PID[$fs]}")
  t0=$(now)
  "$@"
  record "$fs" "${metric}_s" "$(elapsed "$t0")"
  record "$fs" "${metric}_cpu" "$(awk -v a="$c0" -v b="$(proc_cpu_ticks "${PID[$fs]}")" \
    -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')"
}

seq_write() { dd if=/dev/zero of="$1/seq" bs=1M count="$SEQ_MIB" conv=fsync status=none; }
seq_read() { dd if="$1/seq" of=/dev/null bs=1M status=none; }
untar() { tar -xf "$TARBALL" -C "$1/tree" && sync; }
list() { ls -lR "$1/tree" > /dev/null; }
remove() { rm -rf "$1/tree"; }

one_round() { # FS
  local fs=$1 m=${MNT[$1]} json
  drop_caches
  timed "$fs" write seq_write "$m"
  drop_caches
  timed "$fs" read seq_read "$m"
  [ "$(stat -c %s "$m/seq")" = $((SEQ_MIB * 1048576)) ] || die "$fs: $m/seq has the wrong size"
  rm -f "$m/seq"
  mkdir "$m/tree"
  drop_caches
  timed "$fs" tar untar "$m"
  drop_caches
  timed "$fs" ls list "$m"
  # not timed: the tree is complete and its contents match the tarball
  [ "$(find "$m/tree" -mindepth 1 | wc -l)" = "$NENTRIES" ] || die "$fs: extracted tree is incomplete"
  tar --compare -f "$TARBALL" -C "$m/tree" > /dev/null || die "$fs: extracted tree differs from the tarball"
  drop_caches
  timed "$fs" rm remove "$m"
  if [ "$FIO" = 1 ]; then
    json=$(fio --name=randrw --directory="$m" --filename=fio.dat --rw=randrw --rwmixread=50 \
      --bs=4k --size="${FIO_MIB}m" --ioengine=psync --iodepth=1 --direct=1 \
      --runtime="$FIO_SECS" --time_based --output-format=json 2>/dev/null)
    [ "$(jq '.jobs[0].error' <<< "$json")" = 0 ] || die "fio failed on $fs"
    record "$fs" fio_read_iops "$(jq '.jobs[0].read.iops | . * 10 | round / 10' <<< "$json")"
    record "$fs" fio_write_iops "$(jq '.jobs[0].write.iops | . * 10 | round / 10' <<< "$json")"
    rm -f "$m/fio.dat"
  fi
}

[ -z "$RAW" ] || printf 'round\tfs\tmetric\tvalue\n' > "$RAW"
for round in $(seq "$ROUNDS"); do
  # rotate the order so that drift in the machine's load does not always
  # favour the same filesystem
  k=$(((round - 1) % 3))
  order=("${FSES[@]:k}" "${FSES[@]:0:k}")
  LOAD[$round.start]=$(cut -d' ' -f1 /proc/loadavg)
  for fs in "${order[@]}"; do
    log "round $round/$ROUNDS: $fs (load $(cut -d' ' -f1-3 /proc/loadavg))"
    one_round "$fs"
  done
  LOAD[$round.end]=$(cut -d' ' -f1 /proc/loadavg)
  [ -z "$RAW" ] || printf '%s\tall\tload1_start_end\t%s %s\n' "$round" \
    "${LOAD[$round.start]}" "${LOAD[$round.end]}" >> "$RAW"
done

# ---- request counts (untimed) ----------------------------------------------
# The counters are written once a second: wait for a fresh copy around each
# workload.
declare -A REQ  # REQ[fs.workload] = "op:count op:count ..."
counters() { # FS -> JSON object op -> count
  sleep 1.2
  case $1 in
    kmsfs) "$KMSFS_BIN" status --output json |
        jq -c --arg m "$(readlink -f "${MNT[kmsfs]}")" \
          '.mounts[] | select(.mountpoint == $m) | .status.requests | map_values(.count)' ;;
    passthrough) jq -c '.requests | map_values(.count)' "$P_STATS" ;;
  esac
}
count_run() { # FS
  local fs=$1 m=${MNT[$1]} before after w
  for w in write read tar ls rm; do
    drop_caches
    [ "$w" != tar ] || mkdir "$m/tree"
    before=$(counters "$fs")
    case $w in
      write) seq_write "$m" ;;
      read) seq_read "$m"; rm -f "$m/seq" ;;
      tar) untar "$m" ;;
      ls) list "$m" ;;
      rm) remove "$m" ;;
    esac
    after=$(counters "$fs")
    REQ[$fs.$w]=$(jq -rn --argjson a "$before" --argjson b "$after" \
      '[$b | to_entries[] | {k: .key, v: (.value - ($a[.key] // 0))} | select(.v > 0)]
       | sort_by(-.v) | map("\(.k) \(.v)") | join(", ")')
  done
}
log "request counts (untimed round on kmsfs and the passthrough)"
count_run kmsfs
count_run passthrough

# ---- RSS (optional) ----------------------------------------------------------
declare -A RSS
rss_run() { # FS
  local fs=$1 m=${MNT[$1]} per=$((RSS_FILES / 100)) d
  for d in $(seq -w 0 99); do
    mkdir "$m/rss$d"
    (cd "$m/rss$d" && seq -f "f%06g" 1 "$per" | xargs touch)
  done
  find "$m" -path "$m/rss*" -type f -print0 | xargs -0 stat --format=%s > /dev/null
  RSS[$fs]=$(rss_kib "${PID[$fs]}")
  log "$fs: $RSS_FILES files created+stat'ed; VmRSS/VmHWM KiB: ${RSS[$fs]}"
}
if [ "$RSS_FILES" -gt 0 ]; then
  for fs in "${FSES[@]}"; do rss_run "$fs"; done
fi

# ---- report -----------------------------------------------------------------
med() { median ${R[$1.$2]}; }
# per-round ratios A/B of METRIC: "median min max"
round_ratios() { # METRIC A B
  local -a a b
  read -r -a a <<< "${R[$2.$1]}"
  read -r -a b <<< "${R[$3.$1]}"
  local i vals=()
  for i in "${!a[@]}"; do vals+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { if (y == 0) print "nan"; else printf "%.4f", x / y }')"); done
  printf '%s %s %s' "$(median "${vals[@]}")" \
    "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)"
}
fmt_ratio() { # "median min max" [invert] -> "0.62 (0.55-0.70)"
  awk -v inv="${2:-0}" '{ m = $1; lo = $2; hi = $3
    if (inv) { m = 1 / m; t = 1 / hi; hi = 1 / lo; lo = t }
    printf "%.2f (%.2f-%.2f)", m, lo, hi }' <<< "$1"
}
verdict() { # RATIO OP LIMIT -> met/NOT met
  awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? (v >= l) : (v <= l); print ok ? "met" : "NOT met" }'
}

printf '\n# kmsfs vs gocryptfs vs passthrough — %s, %s, %d rounds\n' "$(date -u +%FT%TZ)" "$(uname -r)" "$ROUNDS"
printf '# %s CPUs; load average (1 min) per round, start/end:' "$(nproc)"
for round in $(seq "$ROUNDS"); do printf ' %s/%s' "${LOAD[$round.start]}" "${LOAD[$round.end]}"; done
printf '\n# sequential %d MiB; tarball %d entries (%d MiB); kmsfs mount options: %s; passthrough: %s\n' \
  "$SEQ_MIB" "$NENTRIES" "$TAR_MIB" "${KMSFS_OPTS:-(defaults)}" "${P_OPTS[*]:-(defaults)}"
printf '# wall: median seconds (MiB/s for write/read); cpu: median CPU seconds of the mount process;\n'
printf '# ratios: median (min-max) of per-round kmsfs/other, time ratios (lower is better; for\n'
printf '# write/read the throughput ratio, higher is better)\n\n'
printf '%-8s %-5s %9s %9s %9s  %-20s %-20s %-10s %s\n' workload "" kmsfs gocryptfs passthru \
  "kmsfs/gocryptfs" "kmsfs/passthru" aim result
report_row() { # METRIC AIM_OP AIM_LIMIT AIM_P
  local m=$1 inv=0 w k g p rg rp
  case $m in write|read) inv=1 ;; esac
  if [ $inv = 1 ]; then
    k=$(awk -v s="$(med kmsfs "${m}_s")" -v n="$SEQ_MIB" 'BEGIN { printf "%.0f", n / s }')
    g=$(awk -v s="$(med gocryptfs "${m}_s")" -v n="$SEQ_MIB" 'BEGIN { printf "%.0f", n / s }')
    p=$(awk -v s="$(med passthrough "${m}_s")" -v n="$SEQ_MIB" 'BEGIN { printf "%.0f", n / s }')
  else
    k=$(med kmsfs "${m}_s"); g=$(med gocryptfs "${m}_s"); p=$(med passthrough "${m}_s")
  fi
  rg=$(round_ratios "${m}_s" kmsfs gocryptfs)
  rp=$(round_ratios "${m}_s" kmsfs passthrough)
  local res="-"
  if [ -n "$2" ]; then
    local r1
    r1=$(awk -v inv=$inv '{ print inv ? 1 / $1 : $1 }' <<< "$rg")
    res="g:$(verdict "$r1" "$2" "$3")"
    if [ -n "$4" ]; then
      res="$res p:$(verdict "$(awk '{ print $1 }' <<< "$rp")" "<=" "$4")"
    fi
  fi
  printf '%-8s %-5s %9s %9s %9s  %-20s %-20s %-10s %s\n' "$m" wall "$k" "$g" "$p" \
    "$(fmt_ratio "$rg" $inv)" "$(fmt_ratio "$rp" $inv)" "${2:+$2 $3${4:+ / $4}}" "$res"
  printf '%-8s %-5s %9s %9s %9s  %-20s %-20s\n' "" cpu "$(med kmsfs "${m}_cpu")" \
    "$(med gocryptfs "${m}_cpu")" "$(med passthrough "${m}_cpu")" \
    "$(fmt_ratio "$(round_ratios "${m}_cpu" kmsfs gocryptfs)")" \
    "$(fmt_ratio "$(round_ratios "${m}_cpu" kmsfs passthrough)")"
}
report_row write ">=" 2 ""
report_row read ">=" 1.5 ""
report_row tar "<=" 0.6 1.3
report_row ls "<=" 0.6 1.3
report_row rm "<=" 0.6 1.3
printf '\nCPU per entry (µs, median; tar/ls/rm over %d entries):' "$NENTRIES"
for fs in "${FSES[@]}"; do
  printf '\n  %-12s' "$fs"
  for m in tar ls rm; do
    printf ' %s %6.1f' "$m" "$(awk -v c="$(med "$fs" "${m}_cpu")" -v n="$NENTRIES" 'BEGIN { print c * 1e6 / n }')"
  done
done
printf '\n'
if [ "$FIO" = 1 ]; then
  printf '\nfio 4 KiB randrw IOPS (median): read'
  for fs in "${FSES[@]}"; do printf ' %s %s' "$fs" "$(med "$fs" fio_read_iops)"; done
  printf '; write'
  for fs in "${FSES[@]}"; do printf ' %s %s' "$fs" "$(med "$fs" fio_write_iops)"; done
  printf '\n'
fi
printf '\nFUSE requests per workload (untimed round):\n'
for w in write read tar ls rm; do
  for fs in kmsfs passthrough; do printf '  %-6s %-12s %s\n' "$w" "$fs" "${REQ[$fs.$w]}"; done
done
if [ "$RSS_FILES" -gt 0 ]; then
  printf '\nVmRSS / VmHWM KiB after %d files:' "$RSS_FILES"
  for fs in "${FSES[@]}"; do printf ' %s %s;' "$fs" "${RSS[$fs]}"; done
  printf '\n'
fi
printf '\nall rounds:\n'
for key in $(printf '%s\n' "${!R[@]}" | sort); do printf '  %-26s %s\n' "$key" "${R[$key]}"; done
