# shellcheck shell=sh
# Scenario "kernel nbd-client": attaches the export NAME with CONNECTIONS connections over
# qemu's user network (10.0.2.100:10809 is forwarded to the server on the host), makes an
# ext4 file system on it, writes and fsyncs a file, reports its checksum and detaches.
# usage: nbd-client-fs.sh NAME CONNECTIONS
set -eu
# shellcheck source=tests/e2e/guest/lib.sh
. /e2e/lib.sh
name=$1 connections=$2

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

nbd-client 10.0.2.100 10809 /dev/nbd0 -N "$name" -b 4096 -C "$connections"
mkfs.ext4 -q /dev/nbd0
mkdir -p /mnt
mount -t ext4 /dev/nbd0 /mnt
write_random /mnt/payload 4096 conv=fsync
echo "attached with $connections connection(s)" >/mnt/note
sync /mnt/note /mnt
report_file /mnt/payload
report_file /mnt/note
umount /mnt
nbd-client -d /dev/nbd0
