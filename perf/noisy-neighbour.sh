#!/usr/bin/env bash
# noisy-neighbour: a steady tenant's write and flush latency (p50/p99/p99.9) while a noisy
# neighbour on the same store writes at full speed and flushes, against the same tenant
# alone. BlockOverlay with both instances in flush mode `isolated`, then both in `global`
# (the syncfs baseline), side by side with qemu-nbd serving one qcow2 overlay per tenant
# over the same raw base on the same filesystem, and nbdkit's file plugin serving a raw
# copy of the base per tenant (no copy-on-write: what the page cache and fdatasync alone
# give). It is the DESIGN's "a steady tenant's p99 write latency while a noisy neighbour
# writes and flushes": isolation must hold for the latency of a tenant that does nothing
# unusual, not only for the cost of its flushes (perf/isolation.sh measures those).
#
#   perf/noisy-neighbour.sh [OUT_DIR]      (default OUT_DIR: perf/out/noisy-neighbour)
#
# Steps:
#   1. A temp dir under /var/tmp (the store uses O_DIRECT, which tmpfs lacks): a raw base
#      image of BASE_SIZE random bytes; a store (STORE_SIZE) with instances steady-iso and
#      noisy-iso (isolated), steady-glob and noisy-glob (global), all over the base; two
#      qcow2 overlays (steady, noisy) backed by the same base; two raw copies of the base
#      for nbdkit. One `blockoverlay serve` (unix socket, /metrics on a free loopback
#      port), one qemu-nbd per overlay (--cache=writeback --aio=threads) and one nbdkit per
#      raw copy, each under `timeout --foreground` so that it ends by itself.
#   2. Untimed preparation: each steady region (STEADY_SIZE) is written once with 64 KiB
#      writes and each noisy disk once with 1 MiB writes (so qcow2 measures overwrites of
#      allocated clusters, as a long-lived guest mostly does), then one short warm-up phase
#      per system (JIT, connections, the flush paths).
#   3. ROUNDS rounds of the phases: bo-alone (steady-iso alone), bo-isolated
#      (steady-iso + noisy-iso), bo-global (steady-glob + noisy-glob), qemu-alone,
#      qemu-noisy, nbdkit-alone, nbdkit-noisy. Odd rounds run them in that order, even
#      rounds in reverse, so the machine's drift falls on all alike. One phase is one fio
#      process: the noisy job (NOISY_BS sequential writes, queue depth NOISY_QD, fsync
#      every NOISY_FSYNC writes) starts LEAD seconds before the steady job (4 KiB random
#      writes at STEADY_IOPS, queue depth STEADY_QD, fsync every STEADY_FSYNC writes) and
#      runs TAIL seconds after it; the steady job runs RUNTIME seconds. Both end with an
#      fsync, then SETTLE seconds of quiet. Around each phase: the servers' CPU
#      (/proc/PID/stat) and their threads' run-queue wait (/proc/PID/task/*/schedstat)
#      and, for blockoverlay, its /metrics.
#   4. SIGTERM to every server (blockoverlay writes back and closes the store cleanly,
#      which is checked); the temp dir is deleted.
#   5. noisy-neighbour-report.py writes OUT_DIR/section.md.
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (600; a run takes
# about seven minutes at the defaults), and every server runs under `timeout` as well.
# Servers are stopped by their PID only. Environment: ROUNDS (3), RUNTIME (12), LEAD (3),
# TAIL (1), SETTLE (2), STEADY_IOPS (500), STEADY_QD (1), STEADY_FSYNC (16), STEADY_SIZE
# (256M), NOISY_BS (1M), NOISY_QD (8), NOISY_FSYNC (64), NOISY_RATE (none: full speed;
# e.g. 400m caps the neighbour at 400 MiB/s, so every system gets the same load),
# BASE_SIZE (1G), STORE_SIZE (6G), PEERS ("qemu-nbd nbdkit"; "qemu-nbd" alone is shorter),
# BUDGET, BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/noisy-neighbour}
rounds=${ROUNDS:-3}
runtime=${RUNTIME:-12}
lead=${LEAD:-3}
tail_s=${TAIL:-1}
settle=${SETTLE:-2}
steady_iops=${STEADY_IOPS:-500}
steady_qd=${STEADY_QD:-1}
steady_fsync=${STEADY_FSYNC:-16}
steady_size=${STEADY_SIZE:-256M}
noisy_bs=${NOISY_BS:-1M}
noisy_qd=${NOISY_QD:-8}
noisy_fsync=${NOISY_FSYNC:-64}
noisy_rate=${NOISY_RATE:-}
base_size=${BASE_SIZE:-1G}
store_size=${STORE_SIZE:-6G}
peers=${PEERS:-qemu-nbd nbdkit}
budget=${BUDGET:-600}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
started=$SECONDS

fail() { echo "noisy-neighbour: FAILED: $*" >&2; exit 1; }

for tool in fio qemu-img qemu-nbd python3 timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
use_nbdkit=0
for peer in $peers; do
    case $peer in
        qemu-nbd) ;;
        nbdkit) use_nbdkit=1; command -v nbdkit >/dev/null || fail "nbdkit is not installed (run: make deps)" ;;
        *) fail "PEERS: unknown peer '$peer' (known: qemu-nbd nbdkit)" ;;
    esac
done
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"
"$blockoverlay" serve --help | grep -q -- '--metrics' || fail "$blockoverlay serve has no --metrics (run: make build)"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.json "$out_dir"/*.err "$out_dir"/*.cmd "$out_dir"/*.log "$out_dir"/*.metrics \
      "$out_dir"/*.sched "$out_dir"/phases.tsv "$out_dir"/meta "$out_dir"/load-* "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/noisy-neighbour.XXXXXX)
store=$tmp/store
declare -A wrapper_pid real_pid sock
server_names=()
server_pid=

# The servers run under `timeout --foreground` (so they end by themselves if this script is
# killed); wrapper_pid is that timeout process, which passes our SIGTERM on to the server.
# (Without --foreground, timeout also signals its process group, so blockoverlay would get
# SIGTERM twice, and a second signal makes it exit at once, leaving the store unclean.)
stop_servers() {
    local name
    for name in "${server_names[@]}"; do
        [ -n "${wrapper_pid[$name]:-}" ] || continue
        server_pid=${wrapper_pid[$name]}
        if ! stop_server 60; then
            [ -z "${real_pid[$name]:-}" ] || kill -KILL "${real_pid[$name]}" 2>/dev/null || true
            echo "noisy-neighbour: $name needed SIGKILL" >&2
        fi
        wrapper_pid[$name]=
    done
}

cleanup() {
    stop_servers || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bounded: one step within the run's time budget; stop_server.
source "$repo/perf/lib.sh"

# start_server NAME SOCKET COMMAND...: starts it under timeout, waits for its socket.
start_server() {
    local name=$1 socket=$2
    shift 2
    local life=$((budget - (SECONDS - started) + 30))
    timeout --foreground --kill-after=20 "$life" "$@" 2>"$out_dir/$name.log" &
    wrapper_pid[$name]=$!
    sock[$name]=$socket
    server_names+=("$name")
    for _ in $(seq 300); do
        [ -S "$socket" ] && break
        kill -0 "${wrapper_pid[$name]}" 2>/dev/null || fail "$name exited at start; see $out_dir/$name.log"
        sleep 0.1
    done
    [ -S "$socket" ] || fail "$name did not open $socket within 30 s; see $out_dir/$name.log"
    real_pid[$name]=$(tr ' ' '\n' <"/proc/${wrapper_pid[$name]}/task/${wrapper_pid[$name]}/children" | head -n 1)
    [ -n "${real_pid[$name]}" ] || fail "no process under timeout for $name"
}

# sched NAME WHEN PID: the process's CPU time in clock ticks (/proc/PID/stat utime + stime,
# which keeps the time of threads that have ended), then one line per live thread with its
# run-queue wait in ns (/proc/PID/task/TID/schedstat; a thread that ends takes its figure
# with it, so the report sums per-thread increases of the threads alive at the end).
sched() {
    local name=$1 when=$2 pid=$3 stat task
    stat=$(<"/proc/$pid/stat")
    stat=${stat##*) }
    echo "$stat" | awk -v n="$name" -v w="$when" '{ printf "%s %s cpu %s\n", n, w, $12 + $13 }'
    for task in /proc/"$pid"/task/*; do
        awk -v n="$name" -v w="$when" -v t="${task##*/}" '{ printf "%s %s wait %s %s\n", n, w, t, $2 }' \
            "$task/schedstat" 2>/dev/null || true
    done
}

python=(env PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/bin/python3)
metrics_url=
scrape() { "${python[@]}" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$metrics_url"; }

echo "noisy-neighbour: base ($base_size of random data), store ($store_size), qcow2 overlays in $tmp" >&2
bounded 60 head -c "$base_size" /dev/urandom >"$tmp/base.raw"
bounded 60 "$blockoverlay" store create "$store" --size "$store_size" >/dev/null
for pair in steady-iso:isolated noisy-iso:isolated steady-glob:global noisy-glob:global; do
    bounded 30 "$blockoverlay" instance create "${pair%%:*}" --base "$tmp/base.raw" --flush-mode "${pair#*:}" \
        --store "$store" >/dev/null
done
for tenant in steady noisy; do
    bounded 30 qemu-img create -q -f qcow2 -b "$tmp/base.raw" -F raw "$tmp/$tenant.qcow2" "$base_size"
    if [ "$use_nbdkit" = 1 ]; then
        bounded 60 cp "$tmp/base.raw" "$tmp/$tenant.raw"
    fi
done

port=$("${python[@]}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics_url=http://127.0.0.1:$port/metrics
bo_cmd=("$blockoverlay" serve --store "$store" --listen "unix:$tmp/bo.sock" --metrics "tcp:127.0.0.1:$port")
start_server blockoverlay "$tmp/bo.sock" "${bo_cmd[@]}"
for tenant in steady noisy; do
    qemu_cmd=(qemu-nbd -k "$tmp/q-$tenant.sock" -t -e 0 -f qcow2 --cache=writeback --aio=threads -x top
              "$tmp/$tenant.qcow2")
    start_server "qemu-$tenant" "$tmp/q-$tenant.sock" "${qemu_cmd[@]}"
    if [ "$use_nbdkit" = 1 ]; then
        nbdkit_cmd=(nbdkit -f -U "$tmp/k-$tenant.sock" file "$tmp/$tenant.raw")
        start_server "nbdkit-$tenant" "$tmp/k-$tenant.sock" "${nbdkit_cmd[@]}"
    fi
done

# The URI of a tenant's disk on a system (bo, qemu, nbdkit); for bo, the instance name.
uri() {
    case $1 in
        bo) echo "nbd+unix:///$2?socket=$tmp/bo.sock" ;;
        qemu) echo "nbd+unix:///top?socket=$tmp/q-$2.sock" ;;
        nbdkit) echo "nbd+unix:///?socket=$tmp/k-$2.sock" ;;
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

# run_fio LABEL LIMIT FIO-ARGS...: one fio process; JSON (without the "fio: connected"
# lines) in OUT_DIR/LABEL.json, the command in LABEL.cmd.
run_fio() {
    local label=$1 limit=$2 status=0
    shift 2
    local cmd=(fio --output-format=json --ioengine=nbd "$@")
    show "${cmd[@]}" >"$out_dir/$label.cmd"
    bounded "$limit" "${cmd[@]}" >"$tmp/$label.raw" 2>"$out_dir/$label.err" || status=$?
    grep -v '^fio: ' "$tmp/$label.raw" >"$out_dir/$label.json" || true
    rm -f "$tmp/$label.raw"
    [ "$status" -eq 0 ] || fail "fio $label: exit $status (124/137: timed out); see $out_dir/$label.err"
}

# The servers whose CPU a phase on SYSTEM charges.
servers_of() {
    case $1 in
        bo) echo blockoverlay ;;
        qemu) echo qemu-steady qemu-noisy ;;
        nbdkit) echo nbdkit-steady nbdkit-noisy ;;
    esac
}

# phase LABEL SYSTEM STEADY-DISK [NOISY-DISK]: one measured (or warm-up) phase of $runtime s.
phase() {
    local label=$1 system=$2 steady=$3 noisy=${4:-} args=() name t0
    local steady_opts=(--rw=randwrite --bs=4k --size="$steady_size" --iodepth="$steady_qd"
                       --rate_iops="$steady_iops" --fsync="$steady_fsync" --end_fsync=1
                       --runtime="$runtime" --time_based)
    local noisy_opts=(--rw=write --bs="$noisy_bs" --iodepth="$noisy_qd" --fsync="$noisy_fsync" --end_fsync=1
                      --runtime=$((lead + runtime + tail_s)) --time_based)
    [ -z "$noisy_rate" ] || noisy_opts+=(--rate="$noisy_rate")
    if [ -n "$noisy" ]; then
        args+=(--name=noisy --uri="$(uri "$system" "$noisy")" "${noisy_opts[@]}")
        args+=(--name=steady --uri="$(uri "$system" "$steady")" "${steady_opts[@]}" --startdelay="$lead")
    else
        args+=(--name=steady --uri="$(uri "$system" "$steady")" "${steady_opts[@]}")
    fi
    [ "$system" != bo ] || scrape >"$out_dir/$label.before.metrics"
    for name in $(servers_of "$system"); do sched "$name" before "${real_pid[$name]}"; done >"$out_dir/$label.sched"
    t0=$SECONDS
    run_fio "$label" $((lead + runtime + tail_s + 90)) "${args[@]}"
    for name in $(servers_of "$system"); do sched "$name" after "${real_pid[$name]}"; done >>"$out_dir/$label.sched"
    [ "$system" != bo ] || scrape >"$out_dir/$label.after.metrics"
    echo "noisy-neighbour: $label: $((SECONDS - t0)) s" >&2
    sleep "$settle"
}

systems=(bo qemu)
[ "$use_nbdkit" = 0 ] || systems+=(nbdkit)

echo "noisy-neighbour: preparing the disks (untimed), at $((SECONDS - started)) s" >&2
for system in "${systems[@]}"; do
    if [ "$system" = bo ]; then steadies=(steady-iso steady-glob); noisies=(noisy-iso noisy-glob)
    else steadies=(steady); noisies=(noisy); fi
    for disk in "${steadies[@]}"; do
        run_fio "prepare-$system-$disk" 120 --name=prepare --uri="$(uri "$system" "$disk")" --rw=write --bs=64k \
            --size="$steady_size" --iodepth=8 --end_fsync=1
    done
    for disk in "${noisies[@]}"; do
        run_fio "prepare-$system-$disk" 120 --name=prepare --uri="$(uri "$system" "$disk")" --rw=write --bs=1M \
            --iodepth=8 --end_fsync=1
    done
done
saved_runtime=$runtime
runtime=5
phase warmup-bo-isolated bo steady-iso noisy-iso
phase warmup-bo-global bo steady-glob noisy-glob
for system in "${systems[@]:1}"; do phase "warmup-$system-noisy" "$system" steady noisy; done
runtime=$saved_runtime

phases=(bo-alone bo-isolated bo-global)
for system in "${systems[@]:1}"; do phases+=("$system-alone" "$system-noisy"); done

uptime >"$out_dir/load-before"
printf 'round\tposition\tphase\tstart_s\tend_s\n' >"$out_dir/phases.tsv"
for round in $(seq "$rounds"); do
    order=("${phases[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=()
        for ((i = ${#phases[@]} - 1; i >= 0; i--)); do order+=("${phases[$i]}"); done
    fi
    position=0
    for name in "${order[@]}"; do
        position=$((position + 1))
        echo "noisy-neighbour: round $round/$rounds, $name, at $((SECONDS - started)) s" >&2
        t0=$((SECONDS - started))
        case $name in
            bo-alone) phase "r$round-$name" bo steady-iso ;;
            bo-isolated) phase "r$round-$name" bo steady-iso noisy-iso ;;
            bo-global) phase "r$round-$name" bo steady-glob noisy-glob ;;
            *-alone) phase "r$round-$name" "${name%-alone}" steady ;;
            *-noisy) phase "r$round-$name" "${name%-noisy}" steady noisy ;;
        esac
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$position" "$name" "$t0" "$((SECONDS - started))" \
            >>"$out_dir/phases.tsv"
    done
done
uptime >"$out_dir/load-after"

stop_servers
grep -q '^last shutdown: *clean' <(bounded 30 "$blockoverlay" store info "$store") ||
    fail "the store was not closed cleanly; see $out_dir/blockoverlay.log"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "elapsed=$((SECONDS - started))"
    echo "rounds=$rounds"
    echo "runtime=$runtime"
    echo "lead=$lead"
    echo "tail=$tail_s"
    echo "settle=$settle"
    echo "steady_iops=$steady_iops"
    echo "steady_qd=$steady_qd"
    echo "steady_fsync=$steady_fsync"
    echo "steady_size=$steady_size"
    echo "noisy_bs=$noisy_bs"
    echo "noisy_qd=$noisy_qd"
    echo "noisy_fsync=$noisy_fsync"
    echo "noisy_rate=$noisy_rate"
    echo "base_size=$base_size"
    echo "store_size=$store_size"
    echo "peers=$peers"
    echo "phases=${phases[*]}"
    echo "blockoverlay=$("$blockoverlay" --version)"
    echo "dotnet_runtime=$(dotnet --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')"
    echo "fio=$(fio --version)"
    echo "qemu_nbd=$(qemu-nbd --version | head -n 1)"
    [ "$use_nbdkit" = 0 ] || echo "nbdkit=$(nbdkit --version)"
    echo "clk_tck=$(getconf CLK_TCK)"
    echo "kernel=$(uname -r)"
    echo "cpu=$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "fs=$(df -T "$tmp" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "dirty_ratio=$(cat /proc/sys/vm/dirty_ratio) $(cat /proc/sys/vm/dirty_background_ratio)"
    echo "bo_cmd=$(show "${bo_cmd[@]}")"
    echo "qemu_cmd=$(show qemu-nbd -k "$tmp/q-steady.sock" -t -e 0 -f qcow2 --cache=writeback --aio=threads -x top "$tmp/steady.qcow2")"
    [ "$use_nbdkit" = 0 ] || echo "nbdkit_cmd=$(show nbdkit -f -U "$tmp/k-steady.sock" file "$tmp/steady.raw")"
    echo "qcow2_cmd=$(show qemu-img create -f qcow2 -b "$tmp/base.raw" -F raw "$tmp/steady.qcow2" "$base_size")"
} | sed "s#$tmp#\$TMP#g; s#$repo/##g" >"$out_dir/meta"
sed -i "s#$repo/##g" "$out_dir"/*.cmd

python3 perf/noisy-neighbour-report.py "$out_dir"
