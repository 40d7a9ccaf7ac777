#!/usr/bin/env bash
# rbd: the store on Ceph RBD beside the same store in a local file, in one run: 4 KiB write +
# FLUSH latency at queue depth 1, and a victim's flush latency as its neighbour's dirty bytes
# grow (the isolation curve).
#
#   perf/rbd.sh [OUT_DIR]        (default OUT_DIR: perf/out/rbd)
#
# Steps:
#   1. The one-node test cluster (tests/ceph/cluster.sh: one monitor, one memstore OSD, all on
#      this machine, librbd's cache off), in a temp dir that goes on any exit.
#   2. Two stores of STORE_SIZE with the same instances (lat 64M, victim 256M, nbr 512M, over
#      zeros): `file` in a temp dir under /var/tmp, `rbd` the image rbd:rbd/bench; one
#      `serve` each on a unix socket, with a dirty age of an hour (the neighbour's data stays
#      dirty until flushed).
#   3. rbd-driver.py: ROUNDS rounds, the order of the two alternating; per round and server
#      OPS qd1 write+FLUSH pairs and one victim flush per neighbour size in DIRTY_MIB.
#   4. SIGTERM to both servers by PID, the cluster stopped by its PIDs, OUT_DIR/section.md.
# qemu-nbd over a qcow2 on RBD is measured only when qemu's rbd driver is there
# (qemu-block-extra); the section says when it was not.
#
# Bounded in time: every step gets at most what is left of BUDGET seconds (600).
# Environment: BUDGET, STORE_SIZE (1G), ROUNDS (7), OPS (200), DIRTY_MIB (0,64,256),
# BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/rbd}
budget=${BUDGET:-600}
store_size=${STORE_SIZE:-1G}
rounds=${ROUNDS:-7}
ops=${OPS:-200}
dirty_mib=${DIRTY_MIB:-0,64,256}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
started=$SECONDS
python=(env PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/bin/python3)

fail() { echo "rbd: FAILED: $*" >&2; exit 1; }

for tool in ceph-mon ceph-osd rbd timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (run: make deps)"
done
"${python[@]}" -c 'import nbd' 2>/dev/null || fail "python3-libnbd is not installed (run: make deps)"
[ -x "$blockoverlay" ] || fail "$blockoverlay is missing (run: make build)"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.jsonl "$out_dir"/*.log "$out_dir"/table.md "$out_dir"/section.md
tmp=$(mktemp -d /var/tmp/rbd-bench.XXXXXX)
cluster=$tmp/ceph
server_pid=
server_pids=()

cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        server_pid=$pid
        stop_server 60 || true
    done
    bash "$repo/tests/ceph/cluster.sh" stop "$cluster" || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$repo/perf/lib.sh"

conf=$(bounded 180 bash "$repo/tests/ceph/cluster.sh" start "$cluster" $$ | tail -1)
export CEPH_CONF=$conf
echo '{ "cache": { "maxDirtyAgeSeconds": 3600 } }' >"$tmp/config.json"

declare -A stores=([file]="$tmp/store" [rbd]="rbd:rbd/bench")
for name in file rbd; do
    store=${stores[$name]}
    bounded 60 "$blockoverlay" store create "$store" --size "$store_size" >/dev/null
    bounded 30 "$blockoverlay" instance create lat --size 64M --store "$store" >/dev/null
    bounded 30 "$blockoverlay" instance create victim --size 256M --store "$store" >/dev/null
    bounded 30 "$blockoverlay" instance create nbr --size 512M --store "$store" >/dev/null
    "$blockoverlay" serve --store "$store" --listen "unix:$tmp/$name.sock" --config "$tmp/config.json" \
        >"$out_dir/server-$name.log" 2>&1 &
    server_pids+=($!)
    for _ in $(seq 100); do
        [ -S "$tmp/$name.sock" ] && break
        sleep 0.1
    done
    [ -S "$tmp/$name.sock" ] || fail "the $name server did not listen (see $out_dir/server-$name.log)"
done

echo "rbd: $rounds rounds, file and rbd alternating" >&2
bounded "$((budget - 30))" "${python[@]}" "$repo/perf/rbd-driver.py" "$out_dir" "$rounds" "$ops" "$dirty_mib" \
    "file=$tmp/file.sock" "rbd=$tmp/rbd.sock"

if qemu-img --help | grep -q 'Supported formats:.* rbd' && [ -n "$(find /usr/lib -path '*qemu*block-rbd.so' -print -quit)" ]; then
    peer="qemu's rbd driver is installed, but this script does not measure qemu-nbd yet."
else
    peer="qemu-nbd over a qcow2 on RBD: not measured. krbd needs the rbd kernel module, which this machine lacks, and qemu's own rbd: driver is in Debian's qemu-block-extra, which make deps does not install (qemu-img here: \"module block-block-rbd not found\")."
fi

{
    echo "### The store on Ceph RBD beside a local store file"
    echo
    echo "Command: \`perf/rbd.sh\` (ROUNDS=$rounds OPS=$ops DIRTY_MIB=$dirty_mib STORE_SIZE=$store_size), run $(date -u +%Y-%m-%d)."
    echo "The RBD store is on the one-node test cluster (tests/ceph/cluster.sh: one monitor, one"
    echo "memstore OSD, pool size 1, on this same 2-core machine, librbd's cache off), so a write"
    echo "is a loopback round trip to an OSD that keeps it in memory; the file store is on this"
    echo "machine's disk. Both servers run at once, measured one after the other."
    echo
    cat "$out_dir/table.md"
    echo
    echo "$peer"
} >"$out_dir/section.md"
cat "$out_dir/section.md"
