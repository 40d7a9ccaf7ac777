#!/usr/bin/env bash
# fio-memory: 4 KiB random writes at queue depth 32, BlockOverlay's memory export beside
# nbdkit's memory plugin, measured side by side in one run.
#
#   perf/fio-memory.sh [OUT_DIR]        (default OUT_DIR: perf/out/fio-memory)
#
# Steps:
#   1. Start both servers, each on a unix socket in a temp dir, with disks of SIZE.
#   2. Verify pass, once per server: fio writes every 4 KiB block of FIO_SIZE once with a
#      crc32c header, reads it all back and checks it. fio exits non-zero on a mismatch,
#      and so does this script, before any IOPS round. The pass also warms both servers
#      (every page of the region allocated, the .NET JIT past its first tiers), so the
#      rounds that follow measure overwrites only, for both alike.
#   3. ROUNDS rounds of RUNTIME seconds per server. Within a round the servers run one
#      after the other, and the one that goes first alternates from round to round, so
#      the machine's noise and any drift fall on both alike.
#   4. fio-report.py turns the JSON into per-round IOPS, medians, the ratio
#      blockoverlay/nbdkit and completion-latency percentiles (OUT_DIR/section.md).
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (170 s at the
# defaults, where a run takes about two minutes); the servers stop on any exit.
# Environment: ROUNDS (5), RUNTIME (10), SIZE (1G, the disks), FIO_SIZE (256M, the
# region fio touches), BUDGET, BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/fio-memory}
rounds=${ROUNDS:-5}
runtime=${RUNTIME:-10}
size=${SIZE:-1G}
fio_size=${FIO_SIZE:-256M}
budget=${BUDGET:-$((40 + 2 * rounds * (runtime + 3)))}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
export_name=disk
started=$SECONDS

fail() { echo "fio-memory: FAILED: $*" >&2; exit 1; }
exit_meaning() { case $1 in 124|137) echo "fio exit $1: timed out" ;; *) echo "fio exit $1" ;; esac; }

for tool in fio nbdkit python3 timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"

mkdir -p "$out_dir"
rm -f "$out_dir"/*.json "$out_dir"/*.log "$out_dir"/*.err "$out_dir"/section.md
tmp=$(mktemp -d /tmp/fio-memory.XXXXXX)
declare -A sock pid

stop_servers() {
    local name
    for name in "${!pid[@]}"; do
        kill -TERM "${pid[$name]}" 2>/dev/null || true
    done
    for name in "${!pid[@]}"; do
        # blockoverlay finishes requests in flight on the first SIGTERM; none are left here,
        # so a server that is still up after 10 s is stuck and gets SIGKILL.
        for _ in $(seq 100); do
            kill -0 "${pid[$name]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${pid[$name]}" 2>/dev/null || true
        wait "${pid[$name]}" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

# bounded: one step within the run's time budget.
source "$repo/perf/lib.sh"

wait_for_socket() {
    local name=$1
    for _ in $(seq 200); do
        [ -S "${sock[$name]}" ] && return 0
        kill -0 "${pid[$name]}" 2>/dev/null || fail "$name exited at start; see $out_dir/$name.log"
        sleep 0.1
    done
    fail "$name did not open ${sock[$name]} within 20 s; see $out_dir/$name.log"
}

sock[blockoverlay]=$tmp/blockoverlay.sock
"$blockoverlay" serve --export "$export_name=memory:$size" --listen "unix:${sock[blockoverlay]}" \
    2>"$out_dir/blockoverlay.log" &
pid[blockoverlay]=$!

sock[nbdkit]=$tmp/nbdkit.sock
nbdkit -f -U "${sock[nbdkit]}" memory "$size" 2>"$out_dir/nbdkit.log" &
pid[nbdkit]=$!

wait_for_socket blockoverlay
wait_for_socket nbdkit

# CPU seconds a server has used so far (all its threads), from /proc/PID/stat.
cpu_seconds() {
    # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    set -- $stat
    echo "${12} ${13} $(getconf CLK_TCK)" | awk '{ printf "%.2f", ($1 + $2) / $3 }'
}

fio_common=(--ioengine=nbd --rw=randwrite --bs=4k --iodepth=32 --numjobs=1
            --size="$fio_size" --output-format=json)

# Runs fio against one server; the JSON goes to OUT_DIR/$2.json with the
# "fio: connected to NBD server" lines left out, fio's stderr to OUT_DIR/$2.err.
run_fio() {
    local server=$1 label=$2 limit=$3
    shift 3
    local uri="nbd+unix:///$export_name?socket=${sock[$server]}"
    # Engine options such as --uri are accepted only after --ioengine.
    local cmd=(fio --name="$label" "${fio_common[@]}" --uri="$uri" "$@")
    local cpu_before cpu_after status=0
    local arg shown=()
    for arg in "${cmd[@]}"; do
        # Shown ready to paste into a shell: a value with ? or & goes in double quotes.
        if [[ $arg == --*=*[?\&\ ]* ]]; then shown+=("${arg%%=*}=\"${arg#*=}\""); else shown+=("$arg"); fi
    done
    echo "${shown[*]}" >"$out_dir/$label.cmd"
    cpu_before=$(cpu_seconds "${pid[$server]}")
    bounded "$limit" "${cmd[@]}" >"$tmp/$label.raw" 2>"$out_dir/$label.err" || status=$?
    cpu_after=$(cpu_seconds "${pid[$server]}")
    grep -v '^fio: ' "$tmp/$label.raw" >"$out_dir/$label.json" || true
    echo "$cpu_before $cpu_after" | awk '{ printf "%.2f\n", $2 - $1 }' >"$out_dir/$label.server-cpu"
    return "$status"
}

uptime >"$out_dir/load-before"

for server in blockoverlay nbdkit; do
    echo "fio-memory: verify pass on $server ($fio_size, crc32c)" >&2
    status=0
    run_fio "$server" "verify-$server" 90 --verify=crc32c --verify_fatal=1 || status=$?
    if [ "$status" -ne 0 ]; then
        head -n 20 "$out_dir/verify-$server.err" >&2
        fail "verify pass on $server: $(exit_meaning "$status"); see $out_dir/verify-$server.err"
    fi
done

for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order=(blockoverlay nbdkit); else order=(nbdkit blockoverlay); fi
    for server in "${order[@]}"; do
        echo "fio-memory: round $round/$rounds, $server, ${runtime} s" >&2
        status=0
        run_fio "$server" "round$round-$server" $((runtime + 20)) --runtime="$runtime" --time_based \
            || status=$?
        [ "$status" -eq 0 ] || fail "round $round on $server: $(exit_meaning "$status"); see $out_dir/round$round-$server.err"
    done
done

uptime >"$out_dir/load-after"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "rounds=$rounds"
    echo "runtime=$runtime"
    echo "size=$size"
    echo "fio_size=$fio_size"
    echo "fio=$(fio --version)"
    echo "nbdkit=$(nbdkit --version)"
    echo "dotnet_runtime=$(dotnet --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')"
    echo "blockoverlay=$("$blockoverlay" --version)"
    echo "kernel=$(uname -r)"
    echo "cpu=$(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "blockoverlay_cmd=$blockoverlay serve --export $export_name=memory:$size --listen unix:\$TMP/blockoverlay.sock"
    echo "nbdkit_cmd=nbdkit -f -U \$TMP/nbdkit.sock memory $size"
    echo "elapsed=$((SECONDS - started))"
} | sed "s#$tmp#\$TMP#g" >"$out_dir/meta"
sed -i "s#$tmp#\$TMP#g" "$out_dir"/*.cmd

python3 perf/fio-report.py "$out_dir"
