#!/usr/bin/env bash
# isolation: a victim's flush latency as its neighbours' dirty bytes grow, the victim in
# flush mode `isolated` beside one in `global` (the whole-filesystem syncfs baseline), in
# one server over one store, and beside the peers a user would run instead (qemu-nbd with
# one qcow2 overlay per tenant; nbd-server copy-on-write), measured in the same rounds; and
# the bytes each flush writes against its owner's dirty bytes.
#
#   perf/isolation.sh [OUT_DIR]        (default OUT_DIR: perf/out/isolation)
#
# Steps:
#   1. A store (STORE_SIZE, in a temp dir under /var/tmp: the store uses O_DIRECT, which
#      tmpfs lacks) with instances victim-iso (isolated), victim-glob (global) and
#      n01..n16 (isolated neighbours), all 1 GiB over zeros; `serve --store` on a unix
#      socket, with `--metrics` on a free loopback port.
#   2. The peers (PEERS), every tenant (victim, n01..n16) on its own overlay over one sparse
#      1 GiB raw base (zeros, like the instances), all under the same temp dir:
#      qemu-nbd: one qcow2 (backing file the base) and one qemu-nbd per tenant,
#      `--cache=writeback --aio=threads`; FLUSH = qcow2 metadata write-back + fdatasync of
#      that tenant's qcow2. nbd-server: one server, one export per tenant over the base,
#      copyonwrite + sparse_cow + flush; FLUSH = fsync of that connection's diff file.
#   3. isolation-driver.py (libnbd; one connection per instance, open all along): for each
#      neighbour count in NEIGHBOURS, REPS_ISO rounds over the neighbours' dirty totals in
#      DIRTY_MIB, each point one flush of the isolated victim, (first REPS_GLOB rounds)
#      one of the global victim and (first REPS_PEER rounds) one of each peer's victim,
#      whose neighbours are that peer's. The qemu-nbd victim is written in full in the
#      warm-up (its measured writes overwrite allocated clusters: qcow2's steady state);
#      the nbd-server victim writes only blocks it has not written before (every write
#      allocates in its diff file). Before every flush the neighbours are flushed clean
#      (untimed), write their shares (1 MiB writes, no flush), and the victim writes
#      VICTIM_MIB of random 4 KiB blocks; only the FLUSH is timed. Then the bytes sweep:
#      both victims flush owner sizes from 4 KiB to 64 MiB while 16 neighbours hold
#      256 MiB. Around every flush: the victim's flush bytes (data, meta), the store's
#      bytes by reason and everyone's dirty bytes (/metrics), the server's write_bytes
#      (/proc/PID/io) and its threads' CPU and run-queue wait (/proc/PID/task/*/schedstat);
#      for every server, the disk's /proc/diskstats and the page cache's Dirty.
#   4. SIGTERM to every server, by PID (the server writes back what is left and closes the
#      store cleanly); the store and the peers' files are deleted.
#   5. isolation-report.py writes OUT_DIR/section.md and the plot, which is copied to
#      perf/isolation.png (the section refers to it; RESULTS.md sits beside it).
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (1200; a run
# took 933 s with 15 rounds on a slow day, 2026-12-07, when 600 ran out, and 316 s with 9 later that day). The servers (stopped by PID) and the temp dir go on
# any exit.
# Environment: BUDGET, STORE_SIZE (8G), NEIGHBOURS (1,2,4,8,16), DIRTY_MIB (0,64,256,1024),
# VICTIM_MIB (4), REPS_ISO (9), REPS_GLOB (3), PEERS (qemu-nbd,nbd-server; empty: none),
# REPS_PEER (5), BLOCKOVERLAY (bin/blockoverlay). The rounds were 15, 5 and 7 until 2026-12-07:
# with them, matrix + noisy-neighbour + isolation took 33 minutes on a slow day, over issue 13's 30.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/isolation}
budget=${BUDGET:-1200}
store_size=${STORE_SIZE:-8G}
neighbours=${NEIGHBOURS:-1,2,4,8,16}
dirty_mib=${DIRTY_MIB:-0,64,256,1024}
victim_mib=${VICTIM_MIB:-4}
reps_iso=${REPS_ISO:-9}
reps_glob=${REPS_GLOB:-3}
peers=${PEERS-qemu-nbd,nbd-server}
reps_peer=${REPS_PEER:-5}
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
IFS=, read -ra peer_list <<<"$peers"
for peer in "${peer_list[@]}"; do
    case $peer in
    qemu-nbd) for tool in qemu-img qemu-nbd; do
                  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install qemu-utils)"
              done ;;
    nbd-server) command -v nbd-server >/dev/null || fail "nbd-server is not installed (apt-get install nbd-server)" ;;
    *) fail "PEERS: no peer '$peer' (known: qemu-nbd, nbd-server)" ;;
    esac
done
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
peer_pids=()

# Stops the peers' servers, each by its PID (SIGTERM, SIGKILL after $1 seconds); non-zero
# if one needed SIGKILL.
stop_peers() {
    local status=0 pid
    for pid in "${peer_pids[@]}"; do
        server_pid=$pid
        stop_server "$1" || status=1
    done
    peer_pids=()
    return $status
}

cleanup() {
    stop_server 60 || true
    # An nbd-server whose pid file came too late for the start-up check is stopped too.
    local late
    late=$(cat "$tmp/peers/nbd-server.pid" 2>/dev/null || true)
    if [ -n "$late" ] && [[ " ${peer_pids[*]} " != *" $late "* ]]; then
        peer_pids+=("$late")
    fi
    stop_peers 30 || true
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

# The peers: every tenant on its own overlay over the same sparse raw base, on the store's
# filesystem. Each server's PID is kept; it is stopped by that PID and nothing else.
tenants=(victim $(seq -f 'n%02g' "$max_neighbours"))
peer_args=()
qemu_cmd= nbd_server_cmd=
if [ ${#peer_list[@]} -gt 0 ]; then
    mkdir "$tmp/peers"
    truncate -s "${disk_mib}M" "$tmp/peers/base.raw"
fi
wait_socket() {  # SOCKET PID LOG
    for _ in $(seq 200); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || fail "a peer server exited at start; see $3"
        sleep 0.1
    done
    fail "$1 did not appear within 20 s; see $3"
}
for peer in "${peer_list[@]}"; do
    case $peer in
    qemu-nbd)
        echo "isolation: qemu-nbd, one qcow2 and one server per tenant" >&2
        for t in "${tenants[@]}"; do
            bounded 30 qemu-img create -q -f qcow2 -b "$tmp/peers/base.raw" -F raw "$tmp/peers/$t.qcow2" "${disk_mib}M"
            qemu-nbd -k "$tmp/peers/qemu-$t.sock" -t -e 0 -f qcow2 --cache=writeback --aio=threads \
                -x "$t" "$tmp/peers/$t.qcow2" 2>>"$out_dir/qemu-nbd.log" &
            peer_pids+=($!)
            wait_socket "$tmp/peers/qemu-$t.sock" "$!" "$out_dir/qemu-nbd.log"
        done
        qemu_cmd="qemu-img create -f qcow2 -b $tmp/peers/base.raw -F raw $tmp/peers/T.qcow2 ${disk_mib}M; qemu-nbd -k $tmp/peers/qemu-T.sock -t -e 0 -f qcow2 --cache=writeback --aio=threads -x T $tmp/peers/T.qcow2"
        peer_args+=(--peer "qemu-nbd=nbd+unix:///{tenant}?socket=$tmp/peers/qemu-{tenant}.sock" --prefill qemu-nbd)
        ;;
    nbd-server)
        echo "isolation: nbd-server, one export per tenant" >&2
        mkdir "$tmp/peers/cow"
        {
            printf '[generic]\nunixsock = %s\n' "$tmp/peers/nbd-server.sock"
            for t in "${tenants[@]}"; do
                printf '[%s]\nexportname = %s\ncopyonwrite = true\nsparse_cow = true\nflush = true\nfua = true\ncowdir = %s\n' \
                    "$t" "$tmp/peers/base.raw" "$tmp/peers/cow"
            done
        } >"$tmp/peers/nbd-server.conf"
        # It daemonizes and forks a child per connection; the daemon's PID is in the pid file,
        # and on SIGTERM it ends its children.
        bounded 30 nbd-server -C "$tmp/peers/nbd-server.conf" -p "$tmp/peers/nbd-server.pid" 2>>"$out_dir/nbd-server.log"
        for _ in $(seq 100); do [ -s "$tmp/peers/nbd-server.pid" ] && break; sleep 0.1; done
        [ -s "$tmp/peers/nbd-server.pid" ] || fail "nbd-server wrote no pid file; see $out_dir/nbd-server.log"
        peer_pids+=("$(cat "$tmp/peers/nbd-server.pid")")
        wait_socket "$tmp/peers/nbd-server.sock" "${peer_pids[-1]}" "$out_dir/nbd-server.log"
        nbd_server_cmd="nbd-server -C $tmp/peers/nbd-server.conf -p $tmp/peers/nbd-server.pid, the config: [generic] unixsock = $tmp/peers/nbd-server.sock; per tenant T: [T] exportname = $tmp/peers/base.raw, copyonwrite = true, sparse_cow = true, flush = true, fua = true, cowdir = $tmp/peers/cow"
        peer_args+=(--peer "nbd-server=nbd+unix:///{tenant}?socket=$tmp/peers/nbd-server.sock" --fresh nbd-server)
        ;;
    esac
done
disk_device=$(basename "$(df --output=source "$tmp" | tail -1)")
grep -q " $disk_device " /proc/diskstats || fail "the temp dir's device $disk_device is not in /proc/diskstats"
vm_dirty() {
    echo "$(for f in /proc/sys/vm/dirty_*; do printf '%s=%s ' "${f##*/}" "$(cat "$f")"; done)thresholds_bytes=$(awk '
        /^nr_dirty_background_threshold / { b = $2 } /^nr_dirty_threshold / { t = $2 }
        END { printf "%.0f,%.0f", b * 4096, t * 4096 }' /proc/vmstat)"
}
vm_before=$(vm_dirty)

uptime >"$out_dir/load-before"
driver=("${python[@]}" perf/isolation-driver.py --socket "$sock" --server-pid "$server_pid"
        --out "$out_dir/flushes.jsonl" --neighbours "$neighbours" --dirty "$dirty_mib"
        --victim-bytes $((victim_mib << 20)) --reps-iso "$reps_iso" --reps-glob "$reps_glob"
        --sweep "$sweep_kib" --sweep-dirty "$sweep_dirty_mib" --sweep-neighbours "$max_neighbours"
        --disk-size $((disk_mib << 20)) --metrics-url "http://127.0.0.1:$port/metrics"
        --disk-device "$disk_device" --reps-peer "$reps_peer" "${peer_args[@]}")
status=0
bounded $((budget - 60)) "${driver[@]}" || status=$?
[ "$status" -eq 0 ] || fail "isolation-driver.py: exit $status (124/137: timed out); see $out_dir/server.log"
uptime >"$out_dir/load-after"
vm_after=$(vm_dirty)
stop_server 60 || fail "the server did not stop within 60 s of SIGTERM"
stop_peers 30 || fail "a peer server did not stop within 30 s of SIGTERM"
rm -rf "$tmp/peers"
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
    echo "qemu_nbd=$(qemu-nbd --version 2>/dev/null | head -1)"
    echo "nbd_server=$(nbd-server -V 2>&1 | head -1 | sed 's/^This is //')"
    echo "peers=$peers"
    echo "reps_peer=$reps_peer"
    echo "qemu_cmd=$qemu_cmd"
    echo "nbd_server_cmd=$nbd_server_cmd"
    echo "disk_device=$disk_device"
    echo "vm_before=$vm_before"
    echo "vm_after=$vm_after"
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
