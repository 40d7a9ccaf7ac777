#!/usr/bin/env bash
# scale: thousands of instances of one base in one store (issue 14's targets: with 10,000,
# `serve` ready <= 1 s, restart after kill -9 <= 2 s, idle RSS <= 300 MiB; a create <= 20 ms p50
# and <= 50 ms p99 through the CLI, <= 5 ms through the control API; a delete the same).
#
#   perf/scale.sh [OUT_DIR]        (default OUT_DIR: perf/out/scale)
#
# One base, a 64 MiB ext4 image (mkfs.ext4 -d over a few files), added as `rootfs` to each
# build's store. At each count of COUNTS, for each build (its own store and `serve` on a unix
# socket; the builds take turns, the first rotating from step to step; scale-driver.py says
# exactly what each step does):
#   - the instances up to the count are made through the control API (docs/CONTROL.md, one
#     connection per request, no process), 8 requests at a time: the create rate;
#   - CLI_SAMPLE creates and deletes through the CLI (`blockoverlay instance create|delete`, a
#     process each, through the running server), and as many through the API: a sample, since
#     10,000 CLI creates per build would take minutes;
#   - RSS and PSS (/proc/PID/smaps_rollup) of the server that made them;
#   - ROUNDS clean restarts: ready time (from exec until the NBD socket greets a connect), the
#     server's CPU time until then, RSS and PSS 2 s later (idle);
#   - CLIENTS libnbd clients (one process, a thread and a handle each) on as many instances,
#     released together, each writing 64 KiB and flushing 8 times; then kill -9 with all of
#     them attached, a start (ready time = restart after kill -9), and every flushed write
#     read back;
#   - beside them, QEMU_SAMPLE qcow2 overlays of the same base (qemu-img create), each served
#     by its own qemu-nbd (started one after another, each timed until its socket greets), all
#     running at once for RSS and PSS: memory per disk and start time, scaled to the count by
#     multiplying (one process per disk).
# scale-report.py writes the section for perf/RESULTS.md (OUT_DIR/section.md).
# Environment: BUILDS ("LABEL=BINARY ...", default "main=bin/blockoverlay"), COUNTS ("1000,10000"),
# CLI_SAMPLE (100), ROUNDS (3), CLIENTS (200), QEMU_SAMPLE (100), BUDGET (900 s: no step starts
# after BUDGET - 120 s; what was measured is reported, and what was left out is named).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/scale}
budget=${BUDGET:-900}
counts=${COUNTS:-1000,10000}
cli_sample=${CLI_SAMPLE:-100}
rounds=${ROUNDS:-3}
clients=${CLIENTS:-200}
qemu_sample=${QEMU_SAMPLE:-100}
builds=${BUILDS:-main=bin/blockoverlay}
started=$SECONDS

fail() { echo "scale: FAILED: $*" >&2; exit 1; }
for tool in qemu-img qemu-nbd mkfs.ext4 timeout /usr/bin/python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
/usr/bin/python3 -c 'import nbd' 2>/dev/null || fail "python3-libnbd is not installed (run: make deps)"
specs=()
for spec in $builds; do
    binary=${spec#*=}
    [[ $binary == /* ]] || binary=$repo/$binary
    [ -x "$binary" ] || fail "$binary is missing (run: make build)"
    specs+=("${spec%%=*}=$binary")
done

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/results.json "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/scale.XXXXXX)
server_pid=
# shellcheck source=perf/lib.sh
source perf/lib.sh
# The driver stops its servers and qemu-nbd processes itself, on SIGTERM too (the watchdog below).
driver=
cleanup() {
    [ -z "$driver" ] || kill -KILL "$driver" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir "$tmp/files"
for i in $(seq 20); do head -c $((512 << 10)) /dev/urandom >"$tmp/files/f$i"; done
bounded 60 mkfs.ext4 -q -F -d "$tmp/files" "$tmp/base.raw" 64M
mkdir "$tmp/out"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
deadline=$(( $(date +%s) + budget - 120 - (SECONDS - started) ))
/usr/bin/python3 perf/scale-driver.py "$tmp/out/results.json" "$tmp/base.raw" "$counts" "$cli_sample" "$rounds" "$clients" \
    "$qemu_sample" "$deadline" "${specs[@]}" 2> >(tee "$out_dir/driver.log" >&2) &
driver=$!
echo "$driver" >"$tmp/driver.pid"
left=$((budget - (SECONDS - started)))
( sleep "$left"; kill -TERM "$driver" 2>/dev/null ) &
watchdog=$!
status=0
wait "$driver" || status=$?
kill "$watchdog" 2>/dev/null || true
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$tmp/out/results.json" "$out_dir/" 2>/dev/null || true
for b in "$tmp"/out/builds/*/server.log; do
    [ -f "$b" ] && cp "$b" "$out_dir/$(basename "$(dirname "$b")")-server.log"
done
[ "$status" -eq 0 ] || fail "the driver exited with $status; see $out_dir/driver.log"

versions=()
for spec in "${specs[@]}"; do
    versions+=("${spec%%=*}: $("${spec#*=}" --version 2>/dev/null || echo unknown)")
done
/usr/bin/python3 perf/scale-report.py "$out_dir/results.json" "$load_before" "$load_after" "$((SECONDS - started))" \
    "$(qemu-nbd --version | head -1)" "${versions[@]}" >"$out_dir/section.md"
cat "$out_dir/section.md"
