#!/usr/bin/env bash
# A one-node Ceph cluster for the RBD tests, from Debian's packages (make deps installs them):
# one monitor and one OSD on memstore, pool `rbd` of size 1, everything in DIR, on 127.0.0.1.
# No manager daemon: pools, RBD I/O, exclusive locks and blocklisting need only mon and OSD.
#
#   tests/ceph/cluster.sh start DIR [OWNER_PID]
#                                     makes DIR (must not exist or be empty), starts the
#                                     cluster, prints DIR/ceph.conf when RBD I/O works; with
#                                     OWNER_PID, a watcher stops it when that process is gone
#                                     (a test run that crashes leaves no daemons behind)
#   tests/ceph/cluster.sh stop DIR    stops the daemons by the PIDs in DIR/pids, removes DIR
#
# Settings that matter (measured here): `memstore page set = true` (else
# each 4 MiB object is one dense buffer and the OSD grows by GiBs), `osd fast shutdown =
# false` (else a stopped OSD loses its data). Readiness is probed with `rbd pool init`, not
# with manager commands (without a mgr `ceph pg stat` hangs). Auth is none: a test cluster.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
command=$1
dir=$2
owner=${3:-}

# A free TCP port on 127.0.0.1, from a range the kernel does not hand out by itself.
free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 10000))
        if ! ss -Hltn "sport = :$port" | grep -q .; then
            echo "$port"
            return
        fi
    done
}

stop() {
    [ -d "$dir" ] || return 0
    if [ -f "$dir/pids" ]; then
        # The OSD first, so it does not wait for a monitor that is gone.
        for pid in $(tac "$dir/pids"); do
            kill -TERM "$pid" 2>/dev/null || true
        done
        for pid in $(cat "$dir/pids"); do
            for _ in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    rm -rf "$dir"
}

start() {
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || { echo "$dir is not empty" >&2; exit 1; }
    dir=$(cd "$dir" && pwd)
    mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
    local fsid v1 v2 conf
    fsid=$(cat /proc/sys/kernel/random/uuid)
    v1=$(free_port)
    v2=$(free_port)
    conf="$dir/ceph.conf"
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0

[mon]
mon data = $dir/mon
mon cluster log file = $dir/log/cluster.log

[osd]
osd data = $dir/osd
osd objectstore = memstore
memstore page set = true
memstore device bytes = 4294967296
osd fast shutdown = false
osd max object name len = 256
osd max object namespace len = 64
EOF
    ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/keyring"
    : >"$dir/pids"
    # -f: in the foreground of its own background job, so $! is the daemon's PID.
    ceph-mon -c "$conf" -i a -f </dev/null >"$dir/log/mon.out" 2>&1 &
    echo $! >>"$dir/pids"

    local osd_uuid osd_id
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(timeout 60 ceph -c "$conf" osd new "$osd_uuid")
    ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1
    ceph-osd -c "$conf" -i "$osd_id" -f </dev/null >"$dir/log/osd.out" 2>&1 &
    echo $! >>"$dir/pids"

    timeout 60 ceph -c "$conf" osd pool create rbd 8 8 >/dev/null 2>&1
    timeout 60 ceph -c "$conf" osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1
    # Returns once the pool's placement groups are active on the OSD: I/O works from then on.
    timeout 120 rbd -c "$conf" pool init rbd
    if [ -n "$owner" ]; then
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 2; done; exec "$3" stop "$2"' \
            watcher "$owner" "$dir" "$(realpath "$0")" </dev/null >/dev/null 2>&1 &
    fi
    echo "$conf"
}

case "$command" in
    start)
        trap 'status=$?; [ $status -eq 0 ] || { echo "cluster start failed; logs in $dir/log" >&2; cp -r "$dir/log" "$dir.failed-log" 2>/dev/null || true; stop; }' EXIT
        start
        trap - EXIT
        ;;
    stop) stop ;;
    *) usage ;;
esac
