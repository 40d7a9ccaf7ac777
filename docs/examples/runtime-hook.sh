#!/usr/bin/env bash
# Gives every container its own BlockOverlay disk: an OCI runtime hook (runc, crun, Kata).
#
#   runtime-hook.sh create   on container create: makes the instance, served at once, and
#                            writes its NBD URI to BUNDLE/blockoverlay.uri for the VMM or
#                            nbd-client to attach (attach is the client's: see below)
#   runtime-hook.sh delete   on container removal: deletes the instance and frees its space
#
# The runtime writes the container's state (JSON: "id", "bundle", "annotations", ...) to the
# hook's standard input, as the OCI runtime spec says. Wire it in the bundle's config.json:
#   "hooks": {
#     "createRuntime": [{"path": "/path/to/runtime-hook.sh", "args": ["runtime-hook.sh", "create"]}],
#     "poststop":      [{"path": "/path/to/runtime-hook.sh", "args": ["runtime-hook.sh", "delete"]}]
#   }
# Settings (environment): BLOCKOVERLAY_STORE (the store a running `blockoverlay serve`
# holds), BLOCKOVERLAY_SOCKET (the unix socket it listens on for NBD), BLOCKOVERLAY_BASE (the
# image every container starts as: a name from `blockoverlay base list`, or an image file),
# BLOCKOVERLAY (the binary; default: blockoverlay on PATH). A container may choose its own with
# the annotations org.blockoverlay.base and org.blockoverlay.quota.
#
# Attach, with the URI: a VMM gives it to the guest as a virtio disk
#   qemu-system-x86_64 ... -drive "file=$(cat BUNDLE/blockoverlay.uri),format=raw,if=virtio,cache=writeback"
# (Kata: the same drive); a container without a VM mounts it through the kernel's client
#   nbd-client -unix SOCKET /dev/nbd0 -N ID -b 4096   (then mount /dev/nbd0 as its rootfs)
# The test of this script attaches with qemu-io, qemu's NBD client; these two lines are not
# run by it (no guest boots there, and the test machine has no nbd module).
# Each command goes through the server's control socket (docs/CONTROL.md) and takes a few
# milliseconds; the instance is the container's id, so the two hooks need no state of their own.
set -euo pipefail

verb=${1:?usage: runtime-hook.sh create|delete  (the container state JSON on stdin)}
bo=${BLOCKOVERLAY:-blockoverlay}
store=${BLOCKOVERLAY_STORE:?BLOCKOVERLAY_STORE: the store the server holds}

# id, bundle, and the two annotations, one per line (empty when absent).
mapfile -t state < <(python3 -c '
import json, sys
s = json.load(sys.stdin)
a = s.get("annotations") or {}
print(s["id"]); print(s.get("bundle", "")); print(a.get("org.blockoverlay.base", "")); print(a.get("org.blockoverlay.quota", ""))')
id=${state[0]} bundle=${state[1]} base=${state[2]:-${BLOCKOVERLAY_BASE:-}} quota=${state[3]}

case "$verb" in
create)
    socket=${BLOCKOVERLAY_SOCKET:?BLOCKOVERLAY_SOCKET: the unix socket the server listens on}
    [ -n "$base" ] || { echo "runtime-hook: no base image for container $id: set BLOCKOVERLAY_BASE or the annotation org.blockoverlay.base" >&2; exit 1; }
    "$bo" instance create "$id" --base "$base" ${quota:+--quota "$quota"} --store "$store" >&2
    [ -z "$bundle" ] || echo "nbd+unix:///$id?socket=$socket" > "$bundle/blockoverlay.uri"
    ;;
delete)
    # The container is gone: --force ends connections a client left behind (after writing
    # back what they wrote). A container whose create never ran has no instance: nothing to do.
    if ! out=$("$bo" instance delete "$id" --force --store "$store" 2>&1); then
        case "$out" in
            *"no instance named '$id'"*) ;;
            *) echo "$out" >&2; exit 1 ;;
        esac
    fi
    [ -z "$bundle" ] || rm -f "$bundle/blockoverlay.uri"
    ;;
*)
    echo "runtime-hook: unknown verb '$verb' (create or delete)" >&2
    exit 2
    ;;
esac
