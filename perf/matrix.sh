#!/usr/bin/env bash
# matrix: BlockOverlay side by side with the servers a user would pick instead, seven
# workloads, fio's nbd engine, every server on a fresh overlay of one random base; the raw
# file system (fio libaio, O_DIRECT) beside them as the physical limit. Issue 13's table.
#
#   perf/matrix.sh [OUT_DIR]              (default OUT_DIR: perf/out/matrix)
#   PROFILE=1 perf/matrix.sh [OUT_DIR]    (default OUT_DIR: perf/out/matrix-profile)
#
# Workloads (fio jobs, whole disk unless said; one connection per fio job):
#   randwrite       4 KiB random writes, queue depth 32
#   randwrite-4c    4 KiB random writes over 4 connections, queue depth 8 each (32 in all)
#   randread-base   4 KiB random reads of base data, queue depth 32
#   randread-upper  4 KiB random reads, queue depth 32, of the first UPPER_SIZE, which is
#                   written (1 MiB writes) and flushed first, untimed
#   seqwrite        1 MiB sequential writes, queue depth 8
#   seqread-base    1 MiB sequential reads of base data, queue depth 8
#   write-flush     4 KiB random writes at queue depth 1, a FLUSH after each (fio --fsync=1)
# Servers (each on a unix socket in a temp dir under /var/tmp, the store's file system):
#   blockoverlay    one `serve` for the whole run (its JIT stays warm, as a long-lived server's
#                   does); per cell a new instance over the base, deleted after it
#   nbdkit-file     nbdkit's file plugin on a raw copy of the base: no copy-on-write at all
#   nbdkit-cow      nbdkit --filter=cow over the base (a temp overlay, 64 KiB blocks)
#   qemu-nbd        a new qcow2 overlay of the base per cell, --cache=writeback --aio=threads
#   nbd-server      copyonwrite=true (a diff file per connection, deleted on disconnect): it
#                   has no multi-conn and forgets a connection's writes when it ends, so it
#                   runs neither randwrite-4c nor randread-upper
#   raw             no server: fio --ioengine=libaio --direct=1 on a raw copy of the base
#                   (fdatasync where the others FLUSH)
# nbdkit and qemu-nbd are started per cell and stopped after it, so each cell starts on a fresh
# overlay; blockoverlay and nbd-server run throughout (a new instance, a new diff per cell).
#
# Steps:
#   1. A random base of BASE_SIZE, a store (STORE_SIZE) serving it, two raw copies (nbdkit
#      file, raw), an nbd-server config. One untimed warm-up cell per workload on blockoverlay.
#   2. ROUNDS rounds; in each, every workload on every server; the servers' order alternates
#      from round to round. Before each cell the page cache's dirty data is synced (untimed).
#      A cell: fio with RAMP seconds of ramp and RUNTIME measured seconds;
#      just after the ramp and just before the end, proc_sample (perf/lib.sh) takes the
#      server's CPU time, per-thread run-queue wait, context switches and thread count.
#   3. matrix-report.py writes OUT_DIR/section.md (perf/run-all puts it into RESULTS.md).
# PROFILE=1: blockoverlay only, one round, DOTNET_PerfMapEnabled=1 (JIT frames named in
# /tmp/perf-PID.map) with DOTNET_EnableWriteXorExecute=0 (else perf sees the JIT's code through
# an anonymous double mapping and names nothing), and `perf record -g` of the server over each
# cell's measured window; matrix-report.py --profile writes
# OUT_DIR/profile.md (per workload: the top DSOs, threads and symbols by their own samples, and
# the named frames with the most samples beneath them).
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (1200; a run takes
# about 11 minutes at the defaults). Servers are stopped by their PID only. Environment:
# ROUNDS (3), RUNTIME (3), RAMP (1), BASE_SIZE (1G), UPPER_SIZE (128M), STORE_SIZE (3G),
# SERVERS (all six, in the order above), WORKLOADS (all seven), PROFILE, BUDGET,
# BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
profile=${PROFILE:-0}
if [ "$profile" = 1 ]; then default_out=perf/out/matrix-profile; else default_out=perf/out/matrix; fi
out_dir=${1:-$default_out}
rounds=${ROUNDS:-3}
runtime=${RUNTIME:-3}
ramp=${RAMP:-1}
base_size=${BASE_SIZE:-1G}
upper_size=${UPPER_SIZE:-128M}
store_size=${STORE_SIZE:-3G}
servers=(${SERVERS:-blockoverlay nbdkit-file nbdkit-cow qemu-nbd nbd-server raw})
workloads=(${WORKLOADS:-randwrite randwrite-4c randread-base randread-upper seqwrite seqread-base write-flush})
budget=${BUDGET:-1200}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
started=$SECONDS
if [ "$profile" = 1 ]; then servers=(blockoverlay); rounds=1; fi

fail() { echo "matrix: FAILED: $*" >&2; exit 1; }

for tool in fio python3 timeout qemu-img qemu-nbd nbdkit nbd-server; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
[ "$profile" = 0 ] || command -v perf >/dev/null || fail "perf is not installed (apt-get install linux-perf)"
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"
for s in "${servers[@]}"; do
    [[ " blockoverlay nbdkit-file nbdkit-cow qemu-nbd nbd-server raw " == *" $s "* ]] || fail "SERVERS: unknown '$s'"
done
for w in "${workloads[@]}"; do
    [[ " randwrite randwrite-4c randread-base randread-upper seqwrite seqread-base write-flush " == *" $w "* ]] ||
        fail "WORKLOADS: unknown '$w'"
done

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.json "$out_dir"/*.err "$out_dir"/*.cmd "$out_dir"/*.log "$out_dir"/*.sample \
      "$out_dir"/*.perf "$out_dir"/*.top "$out_dir"/cells.tsv "$out_dir"/settle.tsv "$out_dir"/meta "$out_dir"/load-* \
      "$out_dir"/section.md "$out_dir"/profile.md
tmp=$(mktemp -d /var/tmp/matrix.XXXXXX)
store=$tmp/store
bo_pid=
peer_pid=
nbd_server_pid=
server_pid=

# bounded: one step within the run's time budget; stop_server; proc_sample.
source "$repo/perf/lib.sh"

cleanup() {
    local status=$?
    [ "$status" -eq 0 ] || echo "matrix: stopped with exit status $status" >&2
    server_pid=$peer_pid
    stop_server 10 || true
    server_pid=$nbd_server_pid
    stop_server 10 || true
    server_pid=$bo_pid
    stop_server 60 || true
    [ -z "$bo_pid" ] || rm -f "/tmp/perf-$bo_pid.map" "/tmp/perfinfo-$bo_pid.map"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "matrix: base ($base_size of random data), store ($store_size), raw copies in $tmp" >&2
bounded 60 head -c "$base_size" /dev/urandom >"$tmp/base.raw"
bounded 60 cp "$tmp/base.raw" "$tmp/file.raw"
bounded 60 cp "$tmp/base.raw" "$tmp/raw.img"
bounded 120 "$blockoverlay" store create "$store" --size "$store_size" >/dev/null
mkdir "$tmp/cow"
printf '[generic]\nunixsock = %s\n[disk]\nexportname = %s\ncopyonwrite = true\nsparse_cow = true\nflush = true\nfua = true\ncowdir = %s\n' \
    "$tmp/nbd-server.sock" "$tmp/base.raw" "$tmp/cow" >"$tmp/nbd-server.conf"

wait_socket() {  # SOCKET PID LOG
    for _ in $(seq 200); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || fail "a server exited at start; see $3"
        sleep 0.05
    done
    fail "$1 did not appear within 10 s; see $3"
}

bo_env=()
[ "$profile" = 0 ] || bo_env=(DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0)
bo_cmd=("$blockoverlay" serve --store "$store" --listen "unix:$tmp/bo.sock")
env "${bo_env[@]}" "${bo_cmd[@]}" 2>"$out_dir/blockoverlay.log" &
bo_pid=$!
wait_socket "$tmp/bo.sock" "$bo_pid" "$out_dir/blockoverlay.log"

# nbd-server runs for the whole run, as blockoverlay does: every connection gets a new diff
# anyway, and it takes a second to stop. It daemonizes (its PID is in the pid file) and forks
# a child per connection, which proc_sample counts with it.
if [[ " ${servers[*]} " == *" nbd-server "* ]]; then
    bounded 30 nbd-server -C "$tmp/nbd-server.conf" -p "$tmp/nbd-server.pid" 2>>"$out_dir/nbd-server.log"
    for _ in $(seq 100); do [ -s "$tmp/nbd-server.pid" ] && break; sleep 0.05; done
    [ -s "$tmp/nbd-server.pid" ] || fail "nbd-server wrote no pid file; see $out_dir/nbd-server.log"
    nbd_server_pid=$(cat "$tmp/nbd-server.pid")
    wait_socket "$tmp/nbd-server.sock" "$nbd_server_pid" "$out_dir/nbd-server.log"
fi

# start_peer SERVER LABEL: a fresh overlay and its server; sets peer_pid and uri.
start_peer() {
    local server=$1 label=$2 log=$out_dir/$1.log
    peer_pid=
    case $server in
        blockoverlay)
            bounded 30 "$blockoverlay" instance create "$label" --base "$tmp/base.raw" --store "$store" >/dev/null
            uri="nbd+unix:///$label?socket=$tmp/bo.sock" ;;
        nbdkit-file)
            nbdkit -f -U "$tmp/nbdkit.sock" file "$tmp/file.raw" 2>>"$log" &
            peer_pid=$!
            uri="nbd+unix:///?socket=$tmp/nbdkit.sock" ;;
        nbdkit-cow)
            TMPDIR=$tmp/cow nbdkit -f -U "$tmp/nbdkit.sock" --filter=cow file "$tmp/base.raw" 2>>"$log" &
            peer_pid=$!
            uri="nbd+unix:///?socket=$tmp/nbdkit.sock" ;;
        qemu-nbd)
            bounded 30 qemu-img create -q -f qcow2 -b "$tmp/base.raw" -F raw "$tmp/top.qcow2" "$base_size"
            qemu-nbd -k "$tmp/qemu.sock" -t -e 0 -f qcow2 --cache=writeback --aio=threads -x top "$tmp/top.qcow2" 2>>"$log" &
            peer_pid=$!
            uri="nbd+unix:///top?socket=$tmp/qemu.sock" ;;
        nbd-server)
            peer_pid=$nbd_server_pid
            uri="nbd+unix:///disk?socket=$tmp/nbd-server.sock" ;;
        raw) uri= ;;
    esac
    case $server in
        nbdkit-*) wait_socket "$tmp/nbdkit.sock" "$peer_pid" "$log" ;;
        qemu-nbd) wait_socket "$tmp/qemu.sock" "$peer_pid" "$log" ;;
    esac
}

# stop_peer SERVER LABEL: stops the cell's server (or deletes its instance) and its overlay.
stop_peer() {
    local server=$1 label=$2
    case $server in
        blockoverlay) bounded 60 "$blockoverlay" instance delete "$label" --force --store "$store" >/dev/null ;;
        nbd-server)
            # Its child for the connection ends (and deletes its diff) after the client goes.
            peer_pid=
            for _ in $(seq 100); do
                [ -n "$(cat /proc/"$nbd_server_pid"/task/*/children 2>/dev/null)" ] || break
                sleep 0.05
            done ;;
        raw) ;;
        *)
            server_pid=$peer_pid
            peer_pid=
            stop_server 10 || echo "matrix: $server needed SIGKILL" >&2
            rm -f "$tmp/nbdkit.sock" "$tmp/qemu.sock" "$tmp/top.qcow2" "$tmp"/cow/* ;;
    esac
}

# The fio options of a workload, without the target.
workload_args() {
    case $1 in
        randwrite) echo --rw=randwrite --bs=4k --iodepth=32 ;;
        randwrite-4c) echo --rw=randwrite --bs=4k --iodepth=8 --numjobs=4 ;;
        randread-base) echo --rw=randread --bs=4k --iodepth=32 ;;
        randread-upper) echo --rw=randread --bs=4k --iodepth=32 --size="$upper_size" ;;
        seqwrite) echo --rw=write --bs=1M --iodepth=8 ;;
        seqread-base) echo --rw=read --bs=1M --iodepth=8 ;;
        write-flush) echo --rw=randwrite --bs=4k --iodepth=1 ;;
    esac
}

# Shown ready to paste into a shell: a value with ? or & goes in double quotes.
show() {
    local arg shown=()
    for arg in "$@"; do
        if [[ $arg == --*=*[?\&\ ]* ]]; then shown+=("${arg%%=*}=\"${arg#*=}\""); else shown+=("$arg"); fi
    done
    echo "${shown[*]}" | sed "s#$tmp#\$TMP#g"
}

# target SERVER WORKLOAD: fio's engine and target options.
target() {
    if [ "$1" = raw ]; then
        echo --ioengine=libaio --direct=1 --filename="$tmp/raw.img" --size="$base_size"
        [ "$2" != write-flush ] || echo --fdatasync=1
    else
        echo --ioengine=nbd --uri="$uri"
        [ "$2" != write-flush ] || echo --fsync=1
    fi
}

# run_fio LABEL LIMIT FIO-ARGS... in the background (fio_pid); JSON in OUT_DIR/LABEL.json.
run_fio() {
    local label=$1 limit=$2
    shift 2
    local cmd=(fio --output-format=json --group_reporting "$@")
    show "${cmd[@]}" >"$out_dir/$label.cmd"
    bounded "$limit" "${cmd[@]}" >"$tmp/$label.raw" 2>"$out_dir/$label.err" &
    fio_pid=$!
}

# finish_fio LABEL: waits for it; strips the "fio: connected" lines.
finish_fio() {
    local label=$1 status=0
    wait "$fio_pid" || status=$?
    grep -v '^fio: ' "$tmp/$label.raw" >"$out_dir/$label.json" || true
    rm -f "$tmp/$label.raw"
    [ "$status" -eq 0 ] || fail "fio $label: exit $status (124/137: timed out); see $out_dir/$label.err"
}

# settle LABEL: writes out the page cache's dirty data (untimed) so that no cell pays for the
# cell before it: a page-cache server (nbdkit, qemu-nbd) leaves up to ~1 GiB dirty, which the
# kernel writes back 30 s later, during someone else's cell. Records LABEL, the dirty KiB found
# and the seconds the sync took in OUT_DIR/settle.tsv.
settle() {
    local dirty t0
    dirty=$(awk '/^Dirty:/ { print $2 }' /proc/meminfo); t0=$(date +%s.%N)
    bounded 120 sync
    printf '%s\t%s\t%s\n' "$1" "$dirty" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')" >>"$out_dir/settle.tsv"
}

# cell LABEL SERVER WORKLOAD: one measured cell on a fresh overlay.
cell() {
    local label=$1 server=$2 workload=$3 pid window
    settle "$label"
    start_peer "$server" "$label"
    # shellcheck disable=SC2046  # the options are words
    if [ "$workload" = randread-upper ]; then
        run_fio "$label-prepare" 120 --name=prepare $(target "$server" write) --rw=write --bs=1M --iodepth=8 \
            --size="$upper_size" --end_fsync=1
        finish_fio "$label-prepare"
    fi
    pid=$peer_pid
    [ "$server" != blockoverlay ] || pid=$bo_pid
    window=$(awk -v r="$runtime" 'BEGIN { printf "%.1f", r - 0.4 }')
    # shellcheck disable=SC2046
    run_fio "$label" $((ramp + runtime + 60)) --name="$workload" $(target "$server" "$workload") \
        $(workload_args "$workload") --ramp_time="$ramp" --runtime="$runtime" --time_based
    if [ -n "$pid" ]; then
        # The samples bracket fio's measured window: it starts RAMP seconds after its jobs
        # have connected (fio prints a line per connection on its standard output).
        local jobs=1 connected
        [ "$workload" != randwrite-4c ] || jobs=4
        for _ in $(seq 500); do
            connected=$(grep -sc '^fio: connected' "$tmp/$label.raw" || true)
            [ "${connected:-0}" -lt "$jobs" ] || break
            kill -0 "$fio_pid" 2>/dev/null || break
            sleep 0.02
        done
        sleep "$ramp.1"
        proc_sample "$pid" >"$out_dir/$label.a.sample"
        if [ "$profile" = 1 ]; then
            bounded $((runtime + 30)) perf record -q -g -F 999 -p "$pid" -o "$out_dir/$label.perf" -- sleep "$window" \
                2>>"$out_dir/perf.log"
        else
            sleep "$window"
        fi
        proc_sample "$pid" >"$out_dir/$label.b.sample"
    fi
    finish_fio "$label"
    stop_peer "$server" "$label"
}

echo "matrix: warm-up (untimed), one short cell per workload on blockoverlay, at $((SECONDS - started)) s" >&2
saved=("$ramp" "$runtime")
ramp=0 runtime=2
for w in "${workloads[@]}"; do cell "warmup-$w" blockoverlay "$w"; done
ramp=${saved[0]} runtime=${saved[1]}

uptime >"$out_dir/load-before"
printf 'round\tposition\tworkload\tserver\tlabel\tstart_s\tend_s\n' >"$out_dir/cells.tsv"
for round in $(seq "$rounds"); do
    order=("${servers[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=()
        for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[$i]}"); done
    fi
    echo "matrix: round $round/$rounds (${order[*]}), at $((SECONDS - started)) s" >&2
    for workload in "${workloads[@]}"; do
        position=0
        for server in "${order[@]}"; do
            if [ "$server" = nbd-server ] && [[ $workload == randwrite-4c || $workload == randread-upper ]]; then
                continue
            fi
            position=$((position + 1))
            label=r$round-$workload-$server
            t0=$((SECONDS - started))
            cell "$label" "$server" "$workload"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$position" "$workload" "$server" "$label" "$t0" \
                "$((SECONDS - started))" >>"$out_dir/cells.tsv"
        done
    done
done
uptime >"$out_dir/load-after"

if [ "$profile" = 1 ]; then
    # perf report reads /tmp/perf-PID.map (the JIT's symbols), so before the server goes.
    for label in $(awk -F'\t' 'NR > 1 { print $5 }' "$out_dir/cells.tsv"); do
        for view in dso:dso:--no-children comm:comm:--no-children self:sym:--no-children incl:sym:--children; do
            IFS=: read -r name sort mode <<<"$view"
            bounded 120 perf report -i "$out_dir/$label.perf" --stdio "$mode" -g none --percent-limit 0.5 \
                --sort "$sort" 2>/dev/null | grep -v '^#' | grep -v '^$' >"$out_dir/$label.$name.top" || true
        done
    done
fi

server_pid=$bo_pid
stop_server 60 || fail "blockoverlay needed SIGKILL; see $out_dir/blockoverlay.log"
rm -f "/tmp/perf-$bo_pid.map" "/tmp/perfinfo-$bo_pid.map"
bo_pid=
grep -q '^last shutdown: *clean' <(bounded 30 "$blockoverlay" store info "$store") ||
    fail "the store was not closed cleanly; see $out_dir/blockoverlay.log"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "elapsed=$((SECONDS - started))"
    echo "rounds=$rounds"
    echo "runtime=$runtime"
    echo "ramp=$ramp"
    echo "base_size=$base_size"
    echo "upper_size=$upper_size"
    echo "store_size=$store_size"
    echo "servers=${servers[*]}"
    echo "workloads=${workloads[*]}"
    echo "profile=$profile"
    echo "blockoverlay=$("$blockoverlay" --version)"
    echo "dotnet_runtime=$(dotnet --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')"
    echo "fio=$(fio --version)"
    echo "qemu_nbd=$(qemu-nbd --version | head -n 1)"
    echo "nbdkit=$(nbdkit --version)"
    echo "nbd_server=$(nbd-server -V 2>&1 | head -1 | sed 's/^This is //')"
    [ "$profile" = 0 ] || echo "perf=$(perf --version)"
    echo "clk_tck=$(getconf CLK_TCK)"
    echo "kernel=$(uname -r)"
    echo "cpu=$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "fs=$(df -T "$tmp" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "bo_cmd=$(show "${bo_env[@]}" "${bo_cmd[@]}")"
    echo "bo_instance_cmd=$(show "$blockoverlay" instance create CELL --base "$tmp/base.raw" --store "$store")"
    echo "nbdkit_file_cmd=$(show nbdkit -f -U "$tmp/nbdkit.sock" file "$tmp/file.raw")"
    echo "nbdkit_cow_cmd=$(show nbdkit -f -U "$tmp/nbdkit.sock" --filter=cow file "$tmp/base.raw")"
    echo "qemu_cmd=$(show qemu-img create -f qcow2 -b "$tmp/base.raw" -F raw "$tmp/top.qcow2" "$base_size"); $(show qemu-nbd -k "$tmp/qemu.sock" -t -e 0 -f qcow2 --cache=writeback --aio=threads -x top "$tmp/top.qcow2")"
    echo "nbd_server_cmd=$(show nbd-server -C "$tmp/nbd-server.conf"); the config: [generic] unixsock = \$TMP/nbd-server.sock; [disk] exportname = \$TMP/base.raw, copyonwrite = true, sparse_cow = true, flush = true, fua = true, cowdir = \$TMP/cow"
} | sed "s#$tmp#\$TMP#g; s#$repo/##g" >"$out_dir/meta"
sed -i "s#$repo/##g" "$out_dir"/*.cmd

if [ "$profile" = 1 ]; then
    python3 perf/matrix-report.py --profile "$out_dir"
else
    python3 perf/matrix-report.py "$out_dir"
fi
