#!/usr/bin/env bash
# Builds the test guests' initramfs and picks their kernel, from Debian's packages:
# busybox-static, the linux-image-amd64 kernel and its modules, nbd-client and mke2fs
# (with the libraries ldd names). Writes OUT_DIR/vmlinuz (a link to the kernel) and
# OUT_DIR/initramfs.cpio.gz. Nothing it makes is committed; the tests run it once per run.
#
# usage: build-initramfs.sh OUT_DIR
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-initramfs.sh OUT_DIR}

# The newest Debian kernel installed; its version names its module tree.
kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "no /boot/vmlinuz-*-amd64: install linux-image-amd64" >&2; exit 1; }
version=${kernel#/boot/vmlinuz-}

# What the guests need: a virtio disk with ext4 (the rootfs), and for the kernel NBD client
# a virtio network card and nbd. modprobe resolves each one's dependencies in load order.
modules=(virtio_pci virtio_blk crc32c_generic ext4 virtio_net nbd)

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,sbin,etc,dev,proc,sys,tmp,newroot,modules,e2e}

cp /bin/busybox "$tree/bin/busybox"
for applet in $("$tree/bin/busybox" --list); do
    [ -e "$tree/bin/$applet" ] || ln -s busybox "$tree/bin/$applet"
done

# Each line of modules/load-order: a module file and the options modprobe would give it.
declare -A copied=()
for module in "${modules[@]}"; do
    while read -r verb path options; do
        [ "$verb" = insmod ] || continue
        name=$(basename "$path")
        [ -z "${copied[$name]:-}" ] || continue
        copied[$name]=1
        # The guest's busybox insmod wants plain .ko files.
        case $name in
            *.ko.xz) xz -dc "$path" >"$tree/modules/${name%.xz}"; name=${name%.xz} ;;
            *.ko.zst) zstd -qdc "$path" >"$tree/modules/${name%.zst}"; name=${name%.zst} ;;
            *) cp "$path" "$tree/modules/$name" ;;
        esac
        echo "$name ${options:-}" >>"$tree/modules/load-order"
    done < <(modprobe -S "$version" --show-depends "$module")
done

# Dynamically linked tools run at the same paths as on the host, next to their libraries.
copy_with_libraries() {
    local program=$1
    install -D "$program" "$tree$program"
    for library in $(ldd "$program" | grep -o '/[^ ]*'); do
        [ -e "$tree$library" ] || install -D "$library" "$tree$library"
    done
}
copy_with_libraries "$(command -v nbd-client)"
copy_with_libraries "$(command -v mke2fs)"
# Named mkfs.ext4 it makes ext4; busybox's own mke2fs (first on the guest's PATH) makes only ext2.
ln -s mke2fs "$tree$(dirname "$(command -v mke2fs)")/mkfs.ext4"
cp /etc/mke2fs.conf "$tree/etc/mke2fs.conf"
ln -s /proc/mounts "$tree/etc/mtab" # mke2fs looks here to refuse mounted devices

install -m 0755 "$here/init" "$tree/init"
install -m 0755 "$here"/guest/*.sh "$tree/e2e/"

mkdir -p "$out"
ln -sf "$kernel" "$out/vmlinuz"
# busybox cpio: GNU cpio is not always installed.
(cd "$tree" && find . | busybox cpio -o -H newc -R 0:0) | gzip -1 >"$out/initramfs.cpio.gz"
