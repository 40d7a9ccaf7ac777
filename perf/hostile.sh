#!/usr/bin/env bash
# hostile: what a hostile client can make the server hold, and whether memory comes back.
#
#   perf/hostile.sh [OUT_DIR]        (default OUT_DIR: perf/out/hostile)
#
# One `serve` of a 256 MiB memory export on a unix socket (metrics on 127.0.0.1), then
# hostile-driver.py runs its phases one after another: unread pipelined 1 MiB READs, stalled
# 32 MiB WRITEs, connect-only clients, floods of unknown commands. Per phase: the server's
# RSS, the request-buffer gauge and open connections before, while the clients are held, and
# 10 s after they close; the log's size at the end. "Stable" is: after each phase the
# request-buffer gauge is back to 0, connections are back to 0, and RSS is within 128 MiB of
# what it was before the phase (the runtime's pools keep some buffers of the burst for reuse;
# the rest goes back to the system: see RequestBuffers).
# Bounded in time: BUDGET seconds (300). Environment: BUDGET, BLOCKOVERLAY (bin/blockoverlay).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=${1:-perf/out/hostile}
budget=${BUDGET:-300}
blockoverlay=${BLOCKOVERLAY:-bin/blockoverlay}
[[ $blockoverlay == /* ]] || blockoverlay=$repo/$blockoverlay
started=$SECONDS
server_pid=

fail() { echo "hostile: FAILED: $*" >&2; exit 1; }
source perf/lib.sh

mkdir -p "$out_dir"
work=$(mktemp -d /tmp/blockoverlay-hostile-XXXXXX)
trap 'stop_server 10 || true; rm -rf "$work"' EXIT

"$blockoverlay" serve --export d=memory:256M --listen "unix:$work/nbd.sock" --metrics tcp:127.0.0.1:0 \
    >"$out_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    metrics=$(grep -o 'metrics at http://[0-9.:]*/metrics' "$out_dir/server.log" | head -1 | cut -d' ' -f3 || true)
    [ -n "$metrics" ] && [ -S "$work/nbd.sock" ] && break
    sleep 0.1
done
[ -n "$metrics" ] || fail "the server did not start (see $out_dir/server.log)"

bounded "$budget" /usr/bin/python3 perf/hostile-driver.py "$server_pid" "$work/nbd.sock" "$metrics" "$out_dir/phases.json" \
    || fail "the driver failed"
log_bytes=$(stat -c %s "$out_dir/server.log")
stop_server 30 || fail "the server needed SIGKILL to stop"

/usr/bin/python3 - "$out_dir/phases.json" "$log_bytes" >"$out_dir/section.md" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
log_bytes = int(sys.argv[2])
print("Command: `perf/hostile.sh` (make bench). One server, a 256 MiB memory export; phases in order.")
print("RSS in MiB; buffers = blockoverlay_request_buffer_bytes in MiB; conns = connections open.\n")
print(f"Idle: RSS {data['idle']['rss_mib']} MiB.\n")
print("| phase | clients | RSS before | RSS held | buffers held | conns held | RSS 10 s after | buffers after | conns after | stable |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for p in data["phases"]:
    b, d, a = p["before"], p["during"], p["after"]
    stable = a["request_buffer_mib"] == 0 and a["connections_open"] == 0 and a["rss_mib"] <= b["rss_mib"] + 128
    print(f"| {p['phase']} | {p['clients']} | {b['rss_mib']} | {d['rss_mib']} | {d['request_buffer_mib']} | {d['connections_open']} "
          f"| {a['rss_mib']} | {a['request_buffer_mib']} | {a['connections_open']} | {'yes' if stable else 'NO'} |")
print(f"\nEnd: RSS {data['end']['rss_mib']} MiB. The whole server log: {log_bytes:,} bytes.")
PY
cat "$out_dir/section.md"
