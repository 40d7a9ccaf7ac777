#!/usr/bin/env bash
# Builds the base image the test guests boot from: an ext4 file system made with
# `mkfs.ext4 -d` from a small tree holding busybox-static and the guest scripts of
# guest/. The initramfs mounts it from /dev/vda and switch_roots into it.
#
# usage: build-rootfs.sh IMAGE [SIZE]   (SIZE as mkfs.ext4 takes it; default 64M)
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "$0")" && pwd)
image=${1:?usage: build-rootfs.sh IMAGE [SIZE]}
size=${2:-64M}

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
# dev, proc and sys are where the initramfs moves its mounts; data is where guests write.
mkdir -p "$tree"/{bin,dev,proc,sys,tmp,data,e2e}

cp /bin/busybox "$tree/bin/busybox"
for applet in $("$tree/bin/busybox" --list); do
    [ -e "$tree/bin/$applet" ] || ln -s busybox "$tree/bin/$applet"
done
install -m 0755 "$here"/guest/*.sh "$tree/e2e/"

rm -f "$image"
mkfs.ext4 -q -F -L e2e-root -E root_owner=0:0 -d "$tree" "$image" "$size"
