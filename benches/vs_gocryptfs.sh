#!/usr/bin/env bash
# kmsfs vs gocryptfs, side by side on tmpfs backing directories, in one run.
# Prints the median of 3 runs of each workload for both, and the ratio
# (kmsfs throughput / gocryptfs throughput, or kmsfs time / gocryptfs time).
#
#   benches/vs_gocryptfs.sh            # builds kmsfs --release first
#   KMSFS_BIN=path/to/kmsfs SIZE_MB=512 RUNS=3 benches/vs_gocryptfs.sh
#
# Needs root (tmpfs mounts), gocryptfs, fio, tar. Workloads: sequential write
# and read of SIZE_MB MiB with 1 MiB blocks (page cache dropped by remounting
# and drop_caches before the read), extracting a tarball of ~8000 files made
# from /usr/include, ls -lR, rm -rf, fio 4 KiB random read/write.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-512}
RUNS=${RUNS:-3}
FIO_SIZE=${FIO_SIZE:-256M}
FIO_TIME=${FIO_TIME:-10}
if [ -z "${KMSFS_BIN:-}" ]; then
  cargo build --release -q -p mount-tool
  KMSFS_BIN="${CARGO_TARGET_DIR:-target}/release/kmsfs"
fi
for c in gocryptfs fio tar; do
  command -v "$c" >/dev/null || { echo "missing $c" >&2; exit 1; }
done

W=$(mktemp -d /tmp/kmsfs-bench.XXXXXX)
mount -t tmpfs -o size=3G tmpfs "$W"
cleanup() {
  for m in "$W"/k.mnt "$W"/g.mnt; do
    mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
  done
  umount -l "$W" 2>/dev/null || true
  rmdir "$W" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$W"/{k.cipher,k.mnt,g.cipher,g.mnt,engine,run}
head -c 32 /dev/urandom > "$W/root.key"
echo "bench-passphrase" > "$W/pass"
export KMSFS_ENGINE="$W/engine" KMSFS_KEY_FILE="$W/root.key" KMSFS_RUNTIME_DIR="$W/run"
"$KMSFS_BIN" init "$W/k.cipher" >/dev/null
gocryptfs -q -init -scryptn 10 -passfile "$W/pass" "$W/g.cipher" >/dev/null

mount_k() { "$KMSFS_BIN" mount "$W/k.cipher" "$W/k.mnt"; }
mount_g() { gocryptfs -q -passfile "$W/pass" "$W/g.cipher" "$W/g.mnt"; }
umount_k() { "$KMSFS_BIN" unmount "$W/k.mnt"; }
umount_g() { fusermount3 -u "$W/g.mnt"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Tarball of ~8000 small files from /usr/include (repeated if it is small).
SRC="$W/src"; mkdir -p "$SRC"
n=0
while [ "$(find "$SRC" -type f | wc -l)" -lt 8000 ] && [ $n -lt 10 ]; do
  mkdir -p "$SRC/copy$n"; cp -r /usr/include/. "$SRC/copy$n/" 2>/dev/null || true; n=$((n+1))
done
find "$SRC" -type f | sort | tail -n +8001 | xargs -r rm -f
tar cf "$W/inc.tar" -C "$SRC" .
rm -rf "$SRC"
NFILES=$(tar tf "$W/inc.tar" | grep -vc '/$')

bench_fs() { # $1 = k|g ; prints "name value" lines
  local t mnt="$W/$1.mnt"
  for r in $(seq "$RUNS"); do
    t0=$(now); dd if=/dev/zero of="$mnt/big" bs=1M count="$SIZE_MB" conv=fsync status=none; t1=$(now)
    echo "write_MBps $(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)"
    umount_"$1"; drop; mount_"$1"
    t0=$(now); dd if="$mnt/big" of=/dev/null bs=1M status=none; t1=$(now)
    echo "read_MBps $(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)"
    rm -f "$mnt/big"
    mkdir "$mnt/tree"
    t0=$(now); tar xf "$W/inc.tar" -C "$mnt/tree"; sync; t1=$(now)
    echo "tar_x_s $(echo "$t1 - $t0" | bc -l)"
    umount_"$1"; drop; mount_"$1"
    t0=$(now); ls -lR "$mnt/tree" > /dev/null; t1=$(now)
    echo "ls_lR_s $(echo "$t1 - $t0" | bc -l)"
    t0=$(now); rm -rf "$mnt/tree"; t1=$(now)
    echo "rm_rf_s $(echo "$t1 - $t0" | bc -l)"
    fio --name=rr --directory="$mnt" --rw=randrw --bs=4k --size="$FIO_SIZE" --runtime="$FIO_TIME" \
      --time_based --ioengine=psync --numjobs=1 --group_reporting --output-format=terse \
      --terse-version=3 > "$W/fio.$1" 2>/dev/null
    # terse v3: field 8 = read IOPS, field 49 = write IOPS
    echo "fio_randrw_iops $(awk -F';' '{print $8 + $49}' "$W/fio.$1")"
    rm -f "$mnt"/rr.*
  done
}

mount_k; mount_g
bench_fs k > "$W/res.k"
bench_fs g > "$W/res.g"

echo "kmsfs vs gocryptfs on tmpfs, median of $RUNS runs; ${SIZE_MB} MiB seq I/O, $NFILES-file tarball"
printf '%-18s %14s %14s %10s\n' metric kmsfs gocryptfs ratio
for m in write_MBps read_MBps tar_x_s ls_lR_s rm_rf_s fio_randrw_iops; do
  k=$(awk -v m=$m '$1==m {print $2}' "$W/res.k" | median)
  g=$(awk -v m=$m '$1==m {print $2}' "$W/res.g" | median)
  printf '%-18s %14.2f %14.2f %9.2fx\n' "$m" "$k" "$g" "$(echo "$k / $g" | bc -l)"
done
echo "(MBps and iops: higher is better, ratio = kmsfs/gocryptfs; *_s: seconds, lower is better)"
k_pid=$(pgrep -f "kmsfs.*mount.*k.mnt.*--foreground" | head -1 || true)
[ -n "$k_pid" ] && echo "kmsfs mount RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$k_pid/status)"
