#!/usr/bin/env bash
# store-space: what the 4 KiB allocation unit costs in space and metadata, measured with
# fio (nbd engine) on fresh instances, beside qemu-nbd serving a qcow2 overlay (64 KiB
# clusters) for contrast.
#
#   perf/store-space.sh [OUT_DIR]        (default OUT_DIR: perf/out/store-space)
#
# Steps, for each workload (WORKLOADS below):
#   1. blockoverlay: a fresh store (STORE_SIZE) with one instance of 1 GiB over zeros, or
#      over BASE (256 MiB of random data) where the workload says so; `serve --store`;
#      fio writes with --write_iolog; SIGTERM (a clean close, which writes the checkpoint);
#      then `store info` and `instance list` record upper bytes, free space, checkpoint
#      bytes and map extents. The store is deleted before the next workload.
#   2. qcow2 (only the workloads marked so): `qemu-img create -f qcow2` (over nothing or
#      over BASE), `qemu-nbd --fork`, the same fio command, SIGTERM, then
#      `qemu-img info`/`qemu-img check` (JSON) and `du -B1` of the image.
#   3. store-space-report.py reads the fio iologs (unique bytes the client touched, and
#      how many 4 KiB blocks / 64 KiB clusters that is) and the above, and writes the
#      section for perf/RESULTS.md (OUT_DIR/section.md).
# Sizes are deterministic, so each workload runs once. The server's bytes written
# (/proc/PID/io write_bytes over the fio run) are recorded too.
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (170 s; a run
# takes about a minute here). Servers and the temp dir (under /var/tmp: the store
# needs O_DIRECT, which tmpfs lacks) are removed on any exit.
# Environment: BUDGET, STORE_SIZE (1G), IODEPTH (32), BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/store-space}
budget=${BUDGET:-170}
store_size=${STORE_SIZE:-1G}
iodepth=${IODEPTH:-32}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
disk_size=1G
base_size=256M
started=$SECONDS

# name | over (zeros/base) | qcow2 too (yes/no) | fio workload options | description
WORKLOADS=(
    "a|zeros|yes|--rw=randwrite --bs=4k --size=256M|4 KiB random writes over 256 MiB, each block once"
    "b|zeros|no|--rw=write --bs=1M --size=256M|1 MiB sequential writes, 256 MiB"
    "c|zeros|yes|--rw=randwrite --bs=512 --size=64M|512 B random writes over 64 MiB, each sector once"
    "c-base|base|yes|--rw=randwrite --bs=512 --size=64M|as (c), over the 256 MiB random base"
    "d|zeros|no|--rw=randwrite --bs=64k --size=256M|64 KiB random writes over 256 MiB, each once"
    "e|zeros|yes|--rw=randwrite --bs=4k --size=1G --io_size=16M|4 KiB random writes, 16 MiB scattered over 1 GiB (extra: sparse)"
)

fail() { echo "store-space: FAILED: $*" >&2; exit 1; }

for tool in fio qemu-img qemu-nbd python3 timeout du; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.json "$out_dir"/*.log "$out_dir"/*.err "$out_dir"/*.iolog "$out_dir"/*.txt \
      "$out_dir"/*.cmd "$out_dir"/*.io "$out_dir"/meta "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/store-space.XXXXXX)
server_pid=

cleanup() {
    stop_server 30 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bounded: one step within the run's time budget.
source "$repo/perf/lib.sh"

wait_for_socket() {
    local sock=$1 what=$2
    for _ in $(seq 200); do
        [ -S "$sock" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || fail "$what exited at start; see its log in $out_dir"
        sleep 0.1
    done
    fail "$what did not open $sock within 20 s"
}

write_bytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"; }

# run_fio LABEL URI WORKLOAD_OPTIONS: fio in the temp dir (its state files stay there),
# JSON to OUT_DIR/LABEL.json without the "fio: connected" lines, iolog to OUT_DIR/LABEL.iolog,
# the server's write_bytes over the run to OUT_DIR/LABEL.io.
run_fio() {
    local label=$1 uri=$2 workload=$3 status=0 before after
    # Engine options such as --uri are accepted only after --ioengine.
    local cmd=(fio --name="$label" --ioengine=nbd --uri="$uri" $workload --iodepth="$iodepth"
               --numjobs=1 --norandommap=0 --verify_state_save=0 --output-format=json
               --write_iolog="$label.iolog")
    local arg shown=()
    for arg in "${cmd[@]}"; do
        if [[ $arg == --*=*[?\&\ ]* ]]; then shown+=("${arg%%=*}=\"${arg#*=}\""); else shown+=("$arg"); fi
    done
    echo "${shown[*]}" | sed "s#$tmp#\$TMP#g" >"$out_dir/$label.cmd"
    before=$(write_bytes "$server_pid")
    (cd "$tmp" && bounded 90 "${cmd[@]}") >"$tmp/$label.raw" 2>"$out_dir/$label.err" || status=$?
    after=$(write_bytes "$server_pid")
    echo $((after - before)) >"$out_dir/$label.io"
    grep -v '^fio: ' "$tmp/$label.raw" >"$out_dir/$label.json" || true
    [ "$status" -eq 0 ] || { head -n 20 "$out_dir/$label.err" >&2; fail "fio $label: exit $status"; }
    mv "$tmp/$label.iolog" "$out_dir/$label.iolog"
}

uptime >"$out_dir/load-before"
echo "store-space: base image, $base_size of random data" >&2
head -c "$base_size" /dev/urandom >"$tmp/base.raw"

for entry in "${WORKLOADS[@]}"; do
    IFS='|' read -r name over qcow workload description <<<"$entry"

    # --- blockoverlay ---
    echo "store-space: $name on blockoverlay ($description)" >&2
    store=$tmp/$name.store
    sock=$tmp/$name.sock
    base_opt=()
    [ "$over" = base ] && base_opt=(--base "$tmp/base.raw")
    bounded 30 "$blockoverlay" store create "$store" --size "$store_size" >/dev/null
    bounded 30 "$blockoverlay" instance create "$name" --size "$disk_size" "${base_opt[@]}" --store "$store" >/dev/null
    "$blockoverlay" serve --store "$store" --listen "unix:$sock" 2>"$out_dir/bo-$name.log" &
    server_pid=$!
    wait_for_socket "$sock" "blockoverlay"
    run_fio "bo-$name" "nbd+unix:///$name?socket=$sock" "$workload"
    stop_server 30 || fail "blockoverlay did not stop within 30 s of SIGTERM ($name)"
    bounded 30 "$blockoverlay" store info "$store" >"$out_dir/bo-$name.info.txt"
    bounded 30 "$blockoverlay" instance list --store "$store" >"$out_dir/bo-$name.list.txt"
    grep -q '^last shutdown: *clean' "$out_dir/bo-$name.info.txt" ||
        fail "store of $name was not closed cleanly; see $out_dir/bo-$name.info.txt"
    rm -f "$store"

    # --- qemu-nbd, qcow2 ---
    [ "$qcow" = yes ] || continue
    echo "store-space: $name on qemu-nbd qcow2" >&2
    image=$tmp/$name.qcow2
    sock=$tmp/$name-q.sock
    backing=()
    [ "$over" = base ] && backing=(-b "$tmp/base.raw" -F raw)
    bounded 30 qemu-img create -q -f qcow2 "${backing[@]}" "$image" "$disk_size"
    bounded 30 qemu-nbd --fork --pid-file="$tmp/qemu-nbd.pid" -k "$sock" -t -e 0 -f qcow2 \
        --cache=writeback --aio=threads -x top "$image" 2>"$out_dir/q-$name.log"
    server_pid=$(<"$tmp/qemu-nbd.pid")
    wait_for_socket "$sock" "qemu-nbd"
    run_fio "q-$name" "nbd+unix:///top?socket=$sock" "$workload"
    stop_server 30 || fail "qemu-nbd did not stop within 30 s of SIGTERM ($name)"
    bounded 30 qemu-img info --output=json "$image" | sed "s#$tmp#\$TMP#g" >"$out_dir/q-$name.info.json"
    status=0
    bounded 60 qemu-img check --output=json "$image" >"$out_dir/q-$name.check.json" || status=$?
    [ "$status" -eq 0 ] || fail "qemu-img check of $name: exit $status"
    du -B1 "$image" | awk '{ print $1 }' >"$out_dir/q-$name.du.txt"
    rm -f "$image"
done

uptime >"$out_dir/load-after"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "fio=$(fio --version)"
    echo "qemu=$(qemu-nbd --version | head -n 1)"
    echo "dotnet_runtime=$(dotnet --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')"
    echo "blockoverlay=$("$blockoverlay" --version)"
    echo "kernel=$(uname -r)"
    echo "fs=$(df -T "$tmp" | awk 'NR == 2 { print $2 }')"
    echo "store_size=$store_size"
    echo "disk_size=$disk_size"
    echo "base_size=$base_size"
    echo "iodepth=$iodepth"
    for entry in "${WORKLOADS[@]}"; do echo "workload=$entry"; done
    echo "elapsed=$((SECONDS - started))"
} >"$out_dir/meta"

python3 perf/store-space-report.py "$out_dir"
