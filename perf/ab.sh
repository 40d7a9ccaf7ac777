#!/usr/bin/env bash
# ab: two builds of blockoverlay side by side on the same workloads, to decide whether a change
# to the data path paid (docs: "keep a change only if a side-by-side run shows it paid"). Not
# part of make bench: it compares builds, not BlockOverlay with its peers.
#
#   perf/ab.sh BIN_DIR_A BIN_DIR_B [OUT_DIR]     (BIN_DIR: a `dotnet publish` output, e.g. bin/)
#
# Make the two builds with `dotnet publish src/BlockOverlay.Host -c Release -o DIR` on each commit.
# Per round, in alternating order (A B, then B A), each build serves a fresh store with one
# instance over a random base (BASE_SIZE), takes a warm-up (WARMUP s of 4 KiB writes with
# fsync, then of 1 MiB reads: tiered JIT compilation otherwise fills the first seconds), then
# runs the workloads below for RUNTIME s each with fio's nbd engine over a unix socket:
#   seqread     1 MiB sequential reads of base data, qd 8
#   randread    4 KiB random reads of base data, qd 32
#   randwrite   4 KiB random writes, qd 32
#   writeflush  4 KiB random writes, each followed by FLUSH, qd 1
#   seqwrite    1 MiB sequential writes, qd 8 (the matrix's row; the cache fills and throttles)
#   upperread   4 KiB random reads of upper data, qd 32: the first 128M written with 1 MiB
#               writes and flushed (untimed, as the matrix does), then read at random
# Per cell: I/Os per second, server CPU per I/O (utime + stime from /proc/PID/stat), context
# switches per I/O (summed over the server's threads) and the thread count at the end.
# Output: one line per cell in OUT_DIR/cells.tsv and a table of B/A ratios (median of the
# rounds, min-max) on stdout. Environment: ROUNDS (3), RUNTIME (6), WARMUP (4), BASE_SIZE (1G),
# WORKLOADS (all six, space-separated: a subset runs only those).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,20p "$0" >&2; exit 2; }
bin_a=$(cd "$1" && pwd); bin_b=$(cd "$2" && pwd)
out_dir=${3:-perf/out/ab}
rounds=${ROUNDS:-3}; runtime=${RUNTIME:-6}; warmup=${WARMUP:-4}; base_size=${BASE_SIZE:-1G}
all_workloads="seqread randread randwrite writeflush seqwrite upperread"
read -ra workloads <<<"${WORKLOADS:-$all_workloads}"
for name in "${workloads[@]}"; do
    [[ " $all_workloads " == *" $name "* ]] || { echo "ab: no workload '$name' (known: $all_workloads)" >&2; exit 2; }
done
budget=$(( rounds * 2 * (${#workloads[@]} * runtime + 2 * warmup + 40) + 120 )); started=$SECONDS
fail() { echo "ab: FAILED: $*" >&2; exit 1; }
for bin in "$bin_a" "$bin_b"; do [ -x "$bin/blockoverlay" ] || fail "$bin/blockoverlay is missing"; done
command -v fio >/dev/null || fail "fio is not installed (run: make deps)"
mkdir -p "$out_dir"; out_dir=$(cd "$out_dir" && pwd); : >"$out_dir/cells.tsv"
tmp=$(mktemp -d /var/tmp/ab.XXXXXX)
server_pid=
source perf/lib.sh
trap 'stop_server 30 || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
bounded 60 head -c "$base_size" /dev/urandom >"$tmp/base.raw"

# switches PID: context switches (voluntary and not) summed over the process's live threads.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }
cpu_ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; echo "$s" | awk '{ print $12 + $13 }'; }

# fio_run NAME SECONDS ARGS...: one fio job against the instance; prints total I/Os.
fio_run() {
    local name=$1 seconds=$2; shift 2
    bounded $((seconds + 30)) fio --name="$name" --ioengine=nbd --uri="nbd+unix:///t?socket=$tmp/bo.sock" \
        --size="$base_size" --time_based --runtime="$seconds" --output-format=json "$@" 2>/dev/null \
        | sed -n '/^{/,$p' | python3 -c 'import json, sys; j = json.load(sys.stdin)["jobs"][0]; print(j["read"]["total_ios"] + j["write"]["total_ios"])'
}

measure() { # measure LABEL ROUND NAME FIO_ARGS...
    local label=$1 round=$2 name=$3; shift 3
    local c0 s0 ios c1 s1
    c0=$(cpu_ticks "$server_pid"); s0=$(switches "$server_pid")
    ios=$(fio_run "$name" "$runtime" "$@")
    c1=$(cpu_ticks "$server_pid"); s1=$(switches "$server_pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$round" "$name" "$ios" $((c1 - c0)) $((s1 - s0)) \
        "$(ls /proc/"$server_pid"/task | wc -l)" >>"$out_dir/cells.tsv"
}

for round in $(seq "$rounds"); do
    order=(A B); [ $((round % 2)) -eq 0 ] && order=(B A)
    for label in "${order[@]}"; do
        bin=$bin_a; [ "$label" = B ] && bin=$bin_b
        rm -f "$tmp/store" "$tmp/bo.sock"
        bounded 60 "$bin/blockoverlay" store create "$tmp/store" --size 4G >/dev/null
        bounded 30 "$bin/blockoverlay" instance create t --base "$tmp/base.raw" --store "$tmp/store" >/dev/null
        "$bin/blockoverlay" serve --store "$tmp/store" --listen "unix:$tmp/bo.sock" 2>"$out_dir/server-$label-$round.log" &
        server_pid=$!
        for _ in $(seq 300); do [ -S "$tmp/bo.sock" ] && break; sleep 0.1; done
        [ -S "$tmp/bo.sock" ] || fail "build $label did not start; see $out_dir/server-$label-$round.log"
        fio_run warm-w "$warmup" --rw=randwrite --bs=4k --iodepth=1 --fsync=1 --size=256M >/dev/null
        fio_run warm-r "$warmup" --rw=read --bs=1M --iodepth=8 >/dev/null
        for name in "${workloads[@]}"; do
            case $name in
                seqread) measure "$label" "$round" seqread --rw=read --bs=1M --iodepth=8 ;;
                randread) measure "$label" "$round" randread --rw=randread --bs=4k --iodepth=32 ;;
                randwrite) measure "$label" "$round" randwrite --rw=randwrite --bs=4k --iodepth=32 --size=256M ;;
                writeflush) measure "$label" "$round" writeflush --rw=randwrite --bs=4k --iodepth=1 --fsync=1 --size=256M ;;
                seqwrite) measure "$label" "$round" seqwrite --rw=write --bs=1M --iodepth=8 ;;
                upperread)
                    bounded 120 fio --name=fill --ioengine=nbd --uri="nbd+unix:///t?socket=$tmp/bo.sock" --rw=write \
                        --bs=1M --iodepth=8 --size=128M --end_fsync=1 >/dev/null 2>&1 || fail "filling upper data failed"
                    measure "$label" "$round" upperread --rw=randread --bs=4k --iodepth=32 --size=128M ;;
            esac
        done
        stop_server 60 || fail "build $label needed SIGKILL to stop"
    done
done

python3 - "$out_dir/cells.tsv" "${workloads[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict
cells = defaultdict(dict)
for line in open(sys.argv[1]):
    label, rnd, name, ios, ticks, switches, threads = line.split("\t")
    cells[(name, int(rnd))][label] = (int(ios), int(ticks) * 10_000 / max(int(ios), 1), int(switches) / max(int(ios), 1), int(threads))
def ratio(values):
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
print("| workload | I/Os per s B÷A | CPU per I/O B÷A | switches per I/O A → B | threads A → B |")
print("|---|---:|---:|---:|---:|")
for name in sys.argv[2:]:
    pairs = [v for (n, _), v in sorted(cells.items()) if n == name and len(v) == 2]
    rate = [p["B"][0] / p["A"][0] for p in pairs]
    cpu = [p["B"][1] / p["A"][1] for p in pairs]
    sw_a = statistics.median(p["A"][2] for p in pairs); sw_b = statistics.median(p["B"][2] for p in pairs)
    th_a = statistics.median(p["A"][3] for p in pairs); th_b = statistics.median(p["B"][3] for p in pairs)
    print(f"| {name} | {ratio(rate)} | {ratio(cpu)} | {sw_a:.1f} → {sw_b:.1f} | {th_a:.0f} → {th_b:.0f} |")
EOF
