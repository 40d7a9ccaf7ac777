#!/usr/bin/env bash
# io-backend: the store file read and written through io_uring beside pread/pwrite on threads
# (serve --io-backend uring | threads), measured side by side in one run with fio's nbd engine.
#
#   perf/io-backend.sh [OUT_DIR]        (default OUT_DIR: perf/out/io-backend)
#
# Steps:
#   1. Two stores of STORE_SIZE in a temp dir under /var/tmp (a disk file system: O_DIRECT),
#      one instance `disk` of 1G each over zeros; one `serve` per store, `uring` and
#      `threads`, each on a unix socket. Both run throughout; one is measured at a time.
#   2. Setup per server: the read region (256M at offset 256M) written once and flushed, so
#      the reads below are of upper data on the device, not of the cache or of zeros.
#   3. ROUNDS rounds; in each, every workload runs RUNTIME seconds on one server, then on the
#      other, the server that goes first alternating from round to round (the machine is shared
#      and noisy: drift falls on both alike). The workloads, each in its own region:
#        randwrite   4 KiB random writes, qd32, end_fsync (0..128M)
#        writeflush  4 KiB random writes, each followed by a FLUSH, qd1 (128M..192M)
#        randread    4 KiB random reads of the flushed upper data, qd32 (256M..512M)
#        seqwrite    1 MiB sequential writes, qd8, end_fsync (512M..1G)
#      Around each job: the server's utime+stime from /proc/PID/stat (CPU per I/O), and its
#      thread count sampled half-way through.
#   4. io-backend-report.py: per workload and backend the median and range of IOPS, p50/p99
#      completion latency, CPU per I/O and threads; the ratio uring/threads per round, its
#      median and range (OUT_DIR/section.md).
#
# Bounded in time: every step gets at most what is left of BUDGET seconds; servers stop on exit.
# Environment: ROUNDS (3), RUNTIME (10), STORE_SIZE (2G), BUDGET, BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/io-backend}
rounds=${ROUNDS:-3}
runtime=${RUNTIME:-10}
store_size=${STORE_SIZE:-2G}
budget=${BUDGET:-$((180 + rounds * 8 * (runtime + 4)))}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
started=$SECONDS
backends=(uring threads)
workloads=(randwrite writeflush randread seqwrite)

fail() { echo "io-backend: FAILED: $*" >&2; exit 1; }

for tool in fio python3 timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.json "$out_dir"/*.log "$out_dir"/*.cpu "$out_dir"/*.threads "$out_dir"/meta "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/io-backend.XXXXXX)
server_pid=
declare -A pids

cleanup() {
    local backend
    for backend in "${!pids[@]}"; do
        server_pid=${pids[$backend]}
        stop_server 60 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$repo/perf/lib.sh"

for backend in "${backends[@]}"; do
    store=$tmp/$backend.store
    bounded 120 "$blockoverlay" store create "$store" --size "$store_size" >/dev/null
    bounded 30 "$blockoverlay" instance create disk --size 1G --store "$store" >/dev/null
    "$blockoverlay" serve --store "$store" --listen "unix:$tmp/$backend.sock" --io-backend "$backend" \
        >"$out_dir/server-$backend.log" 2>&1 &
    pids[$backend]=$!
    for _ in $(seq 100); do
        [ -S "$tmp/$backend.sock" ] && break
        sleep 0.1
    done
    [ -S "$tmp/$backend.sock" ] || fail "the $backend server did not listen (see $out_dir/server-$backend.log)"
done

# fio over the nbd engine against one server: fio_on BACKEND OUTPUT ARGS...
fio_on() {
    local backend=$1 output=$2
    shift 2
    bounded $((runtime + 60)) fio --name=job --ioengine=nbd \
        --uri="nbd+unix:///disk?socket=$tmp/$backend.sock" --output-format=json --output="$output" "$@" \
        || fail "fio on $backend exited $? (see $output)"
}

for backend in "${backends[@]}"; do
    fio_on "$backend" "$out_dir/setup-$backend.json" --rw=write --bs=1M --iodepth=8 \
        --offset=256M --size=256M --end_fsync=1
done

workload_args() {
    case $1 in
        randwrite) echo "--rw=randwrite --bs=4k --iodepth=32 --offset=0 --size=128M --end_fsync=1" ;;
        writeflush) echo "--rw=randwrite --bs=4k --iodepth=1 --fsync=1 --offset=128M --size=64M" ;;
        randread) echo "--rw=randread --bs=4k --iodepth=32 --offset=256M --size=256M" ;;
        seqwrite) echo "--rw=write --bs=1M --iodepth=8 --offset=512M --size=512M --end_fsync=1" ;;
    esac
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

measure() {
    local backend=$1 workload=$2 round=$3 pid=${pids[$1]} label="$2-$1-r$3" before after
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2046 # the workload's arguments are words
    fio_on "$backend" "$out_dir/$label.json" $(workload_args "$workload") --time_based --runtime="$runtime" &
    local fio_pid=$!
    sleep $((runtime / 2))
    awk '/^Threads:/ { print $2 }' "/proc/$pid/status" >"$out_dir/$label.threads"
    wait "$fio_pid" || fail "fio on $backend ($workload, round $round) failed"
    after=$(cpu_ticks "$pid")
    echo "$((after - before))" >"$out_dir/$label.cpu"
}

echo "io-backend: $rounds rounds of ${runtime} s per workload and backend, order alternating" >&2
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order=(uring threads); else order=(threads uring); fi
    for workload in "${workloads[@]}"; do
        for backend in "${order[@]}"; do
            measure "$backend" "$workload" "$round"
        done
    done
done

{
    echo "rounds=$rounds"
    echo "runtime=$runtime"
    echo "store_size=$store_size"
    echo "clock_ticks=$(getconf CLK_TCK)"
    echo "date=$(date -u +%Y-%m-%d)"
    echo "kernel=$(uname -r)"
} >"$out_dir/meta"

python3 "$repo/perf/io-backend-report.py" "$out_dir"
