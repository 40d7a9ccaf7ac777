#!/usr/bin/env bash
# isolation: a victim's flush latency as its neighbours' dirty bytes grow, the victim in
# flush mode `isolated` beside one in `global` (the whole-filesystem syncfs baseline), in
# one server over one store; and the bytes each flush writes against its owner's dirty bytes.
#
#   perf/isolation.sh [OUT_DIR]        (default OUT_DIR: perf/out/isolation)
#
# Steps:
#   1. A store (STORE_SIZE, in a temp dir under /var/tmp: the store uses O_DIRECT, which
#      tmpfs lacks) with instances victim-iso (isolated), victim-glob (global) and
#      n01..n16 (isolated neighbours), all 1 GiB over zeros; `serve --store` on a unix
#      socket, with `--metrics` on a free loopback port.
#   2. isolation-driver.py (libnbd; one connection per instance, open all along): for each
#      neighbour count in NEIGHBOURS, REPS_ISO rounds over the neighbours' dirty totals in
#      DIRTY_MIB, each point one flush of the isolated victim and (first REPS_GLOB rounds)
#      one of the global victim. Before every flush the neighbours are flushed clean
#      (untimed), write their shares (1 MiB writes, no flush), and the victim writes
#      VICTIM_MIB of random 4 KiB blocks; only the FLUSH is timed. Then the bytes sweep:
#      both victims flush owner sizes from 4 KiB to 64 MiB while 16 neighbours hold
#      256 MiB. Around every flush: the victim's flush bytes (data, meta), the store's
#      bytes by reason and everyone's dirty bytes (/metrics), the server's write_bytes
#      (/proc/PID/io) and its threads' CPU and run-queue wait (/proc/PID/task/*/schedstat).
#   3. SIGTERM (the server writes back what is left and closes the store cleanly); the
#      store is deleted.
#   4. isolation-report.py writes OUT_DIR/section.md and the plot, which is copied to
#      perf/isolation.png (the section refers to it; RESULTS.md sits beside it).
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (600; a run
# takes about five minutes here). The server and the temp dir go on any exit.
# Environment: BUDGET, STORE_SIZE (8G), NEIGHBOURS (1,2,4,8,16), DIRTY_MIB (0,64,256,1024),
# VICTIM_MIB (4), REPS_ISO (15), REPS_GLOB (5), BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/isolation}
budget=${BUDGET:-600}
store_size=${STORE_SIZE:-8G}
neighbours=${NEIGHBOURS:-1,2,4,8,16}
dirty_mib=${DIRTY_MIB:-0,64,256,1024}
victim_mib=${VICTIM_MIB:-4}
reps_iso=${REPS_ISO:-15}
reps_glob=${REPS_GLOB:-5}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
disk_mib=1024
max_neighbours=16
sweep_kib=4,64,1024,4096,16384,65536
sweep_dirty_mib=256
started=$SECONDS
# The Debian python with python3-libnbd, whatever python comes first on the caller's PATH.
python=(env PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/bin/python3)

fail() { echo "isolation: FAILED: $*" >&2; exit 1; }

for tool in python3 gnuplot timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
"${python[@]}" -c 'import nbd' 2>/dev/null || fail "python3-libnbd is not installed (run: make deps)"
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"
"$blockoverlay" serve --help | grep -q -- '--metrics' || fail "$blockoverlay serve has no --metrics (run: make build)"
IFS=, read -ra counts <<<"$neighbours"
for count in "${counts[@]}"; do
    [ "$count" -le "$max_neighbours" ] || fail "NEIGHBOURS: at most $max_neighbours"
done

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.jsonl "$out_dir"/*.log "$out_dir"/*.dat "$out_dir"/*.gp "$out_dir"/*.png \
      "$out_dir"/meta "$out_dir"/load-* "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/isolation.XXXXXX)
store=$tmp/store
sock=$tmp/nbd.sock
server_pid=

cleanup() {
    stop_server 60 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bounded: one step within the run's time budget.
source "$repo/perf/lib.sh"

echo "isolation: store $store_size, instances victim-iso, victim-glob, n01..n$max_neighbours" >&2
bounded 60 "$blockoverlay" store create "$store" --size "$store_size" >/dev/null
bounded 30 "$blockoverlay" instance create victim-iso --size "${disk_mib}M" --flush-mode isolated --store "$store" >/dev/null
bounded 30 "$blockoverlay" instance create victim-glob --size "${disk_mib}M" --flush-mode global --store "$store" >/dev/null
for i in $(seq -f '%02g' "$max_neighbours"); do
    bounded 30 "$blockoverlay" instance create "n$i" --size "${disk_mib}M" --flush-mode isolated --store "$store" >/dev/null
done

# A port free a moment ago; if someone takes it in between, the server fails to start and says so.
port=$("${python[@]}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serve=("$blockoverlay" serve --store "$store" --listen "unix:$sock" --metrics "tcp:127.0.0.1:$port")
"${serve[@]}" 2>"$out_dir/server.log" &
server_pid=$!
for _ in $(seq 200); do
    [ -S "$sock" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start; see $out_dir/server.log"
    sleep 0.1
done
[ -S "$sock" ] || fail "the server did not open $sock within 20 s"

uptime >"$out_dir/load-before"
driver=("${python[@]}" perf/isolation-driver.py --socket "$sock" --server-pid "$server_pid"
        --out "$out_dir/flushes.jsonl" --neighbours "$neighbours" --dirty "$dirty_mib"
        --victim-bytes $((victim_mib << 20)) --reps-iso "$reps_iso" --reps-glob "$reps_glob"
        --sweep "$sweep_kib" --sweep-dirty "$sweep_dirty_mib" --sweep-neighbours "$max_neighbours"
        --disk-size $((disk_mib << 20)) --metrics-url "http://127.0.0.1:$port/metrics")
status=0
bounded $((budget - 60)) "${driver[@]}" || status=$?
[ "$status" -eq 0 ] || fail "isolation-driver.py: exit $status (124/137: timed out); see $out_dir/server.log"
uptime >"$out_dir/load-after"
stop_server 60 || fail "the server did not stop within 60 s of SIGTERM"
grep -q '^last shutdown: *clean' <(bounded 30 "$blockoverlay" store info "$store") ||
    fail "the store was not closed cleanly; see $out_dir/server.log"
rm -f "$store"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "elapsed=$((SECONDS - started))"
    echo "blockoverlay=$("$blockoverlay" --version)"
    echo "dotnet_runtime=$(dotnet --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')"
    echo "libnbd=$("${python[@]}" -c 'import nbd; print(nbd.NBD().get_version())')"
    echo "gnuplot=$(gnuplot --version)"
    echo "kernel=$(uname -r)"
    echo "cpu=$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "fs=$(df -T "$tmp" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "store_size=$store_size"
    echo "disk_mib=$disk_mib"
    echo "victim_mib=$victim_mib"
    echo "reps_iso=$reps_iso"
    echo "reps_glob=$reps_glob"
    echo "sweep_dirty_mib=$sweep_dirty_mib"
    echo "serve_cmd=${serve[*]}"
    echo "driver_cmd=${driver[*]}"
} | sed "s#$tmp#\$TMP#g; s#$repo/##g" >"$out_dir/meta"

"${python[@]}" perf/isolation-report.py "$out_dir"
cp "$out_dir/isolation.png" perf/isolation.png
