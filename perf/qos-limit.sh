#!/usr/bin/env bash
# qos-limit: does an instance held to a limit stay within ±10 % of it over 10 s, and does its
# neighbour's p99 stay what it is alone (issue 13's target)?
#
#   perf/qos-limit.sh [OUT_DIR]        (default OUT_DIR: perf/out/qos-limit)
#
# One store, one server (`serve --store`, a unix socket), three instances of 256 MiB over zeros:
# `steady` (no limit), `limited` (--iops-limit IOPS_LIMIT, --bps-limit BPS_LIMIT for the byte
# phase), `unlimited` (no limit, the same load as `limited`, for contrast). Phases, each one fio
# process with its jobs starting together and running PHASE seconds (time_based):
#   alone      — steady alone: 4 KiB random writes at 500 IOPS (--rate_iops), queue depth 1;
#   iops       — steady beside `limited` doing 4 KiB random reads at queue depth 32 (far more
#                than the limit asks for: fio waits on the server, which stops reading its socket);
#   bytes      — steady beside `limited` doing 64 KiB random reads at queue depth 16, the instance
#                switched to a byte limit only (instance set, live) and back after the phase;
#   unlimited  — steady beside `unlimited` doing what `limited` does in `iops`, without a limit.
# ROUNDS rounds, odd rounds in this order, even rounds reversed. qos-limit-report.py writes the
# section for perf/RESULTS.md (OUT_DIR/section.md): the limited tenant's rate ÷ its limit per
# round, and the steady tenant's p99 write latency beside each load ÷ alone.
# Bounded by BUDGET seconds (240); the server and the temp dir (under /var/tmp) go on any exit.
# Environment: BUDGET, ROUNDS (3), PHASE (10), IOPS_LIMIT (200), BPS_LIMIT (16M), BLOCKOVERLAY.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/qos-limit}
budget=${BUDGET:-240}
rounds=${ROUNDS:-3}
phase=${PHASE:-10}
iops_limit=${IOPS_LIMIT:-200}
bps_limit=${BPS_LIMIT:-16M}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
started=$SECONDS

fail() { echo "qos-limit: FAILED: $*" >&2; exit 1; }
for tool in fio python3 timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"
"$blockoverlay" instance create --help | grep -q -- '--iops-limit' || fail "$blockoverlay has no --iops-limit (run: make build)"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.json "$out_dir"/*.err "$out_dir"/*.log "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/qos-limit.XXXXXX)
server_pid=
# shellcheck source=perf/lib.sh
source perf/lib.sh
cleanup() { stop_server 30 || true; rm -rf "$tmp"; }
trap cleanup EXIT

store=$tmp/store
bo() { bounded 60 "$blockoverlay" "$@" --store "$store" >/dev/null; }
bounded 120 "$blockoverlay" store create "$store" --size 1G >/dev/null
bo instance create steady --size 256M
bo instance create limited --size 256M --iops-limit "$iops_limit"
bo instance create unlimited --size 256M
sock=$tmp/nbd.sock
timeout --foreground "$((budget + 60))" "$blockoverlay" serve --store "$store" --listen "unix:$sock" \
    >"$out_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "the server did not open $sock within 30 s; see $out_dir/server.log"
uri() { echo "nbd+unix:///$1?socket=$sock"; }

steady_job=(--name=steady "--uri=$(uri steady)" --rw=randwrite --bs=4k --iodepth=1 --rate_iops=500 --size=256M)
# phase NAME ROUND: runs the phase's fio jobs together and keeps fio's JSON.
run_phase() {
    local name=$1 round=$2 load=()
    case $name in
        alone) ;;
        iops) load=(--name=load "--uri=$(uri limited)" --rw=randread --bs=4k --iodepth=32 --size=256M) ;;
        bytes)
            bo instance set limited --iops-limit none --bps-limit "$bps_limit"
            load=(--name=load "--uri=$(uri limited)" --rw=randread --bs=64k --iodepth=16 --size=256M) ;;
        unlimited) load=(--name=load "--uri=$(uri unlimited)" --rw=randread --bs=4k --iodepth=32 --size=256M) ;;
    esac
    bounded $((phase + 60)) fio --ioengine=nbd --time_based "--runtime=$phase" --output-format=json \
        "${steady_job[@]}" "${load[@]}" 2>"$out_dir/$name-$round.err" \
        | grep -v '^fio: connected to NBD server' >"$out_dir/$name-$round.json" \
        || fail "fio in phase $name, round $round; see $out_dir/$name-$round.err"
    if [ "$name" = bytes ]; then
        bo instance set limited --iops-limit "$iops_limit" --bps-limit none
    fi
}

phases=(alone iops bytes unlimited)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$rounds"); do
    order=("${phases[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=(unlimited bytes iops alone)
    fi
    for name in "${order[@]}"; do
        echo "qos-limit: round $round, phase $name" >&2
        run_phase "$name" "$round"
        sleep 1
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

stop_server 30 || fail "the server did not stop within 30 s of SIGTERM"
python3 perf/qos-limit-report.py "$out_dir" "$rounds" "$phase" "$iops_limit" "$bps_limit" \
    "$("$blockoverlay" --version 2>/dev/null || echo unknown)" "$(fio --version)" "$load_before" "$load_after" \
    "$((SECONDS - started))" >"$out_dir/section.md"
cat "$out_dir/section.md"
