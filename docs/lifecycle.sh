#!/usr/bin/env bash
# A container's disk through its life, as a container runtime would drive it:
#   create an instance -> attach (qemu's NBD client) -> write -> fsync -> detach
#   -> commit it to a new base image -> delete it.
# Runs as written from the repository root after `make build`; everything lives in a
# scratch directory (WORK, default: a new temp dir) and is removed at the end.
set -euo pipefail

bo=${BLOCKOVERLAY:-bin/blockoverlay}
work=${WORK:-$(mktemp -d /var/tmp/blockoverlay-lifecycle.XXXXXX)}
store=$work/store
sock=$work/nbd.sock
server=
cleanup() {
    if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# 0. A store and a base image (here: 16 MiB of a pattern; in real life, a container image's rootfs).
"$bo" store create "$store" --size 256M
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 65536)' > "$work/base.raw"

# 1. The server, on a unix socket; it keeps running while instances come and go.
"$bo" serve --store "$store" --listen "unix:$sock" 2> "$work/server.log" &
server=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

# 2. Create the container's instance while the server runs: exported at once.
"$bo" instance create web1 --base "$work/base.raw" --store "$store"

# 3. Attach with qemu's NBD client, write, fsync (qemu-io's flush), detach (qemu-io exits).
qemu-io -f raw -t writeback "nbd+unix:///web1?socket=$sock" \
    -c 'write -P 0x77 1M 64k' -c 'flush'

# 4. What the flush cost, and that it was this instance's own bytes.
"$bo" instance stat web1 --store "$store"

# 5. Commit the instance's view to a new base image (the docker commit of a disk).
"$bo" instance commit web1 "$work/web1-v2.raw" --store "$store"
qemu-io -f raw -r "$work/web1-v2.raw" -c 'read -P 0x77 1M 64k'

# 6. Delete the instance: its space is free again once the delete is durable.
"$bo" instance delete web1 --store "$store"
"$bo" instance list --store "$store"
echo "lifecycle: done"
