# shellcheck shell=sh
# Helpers the guest scripts source. The host reads their lines off the serial console.

# write_random PATH KIB [dd flags…]: KIB KiB of random bytes into PATH.
write_random() {
    path=$1 kib=$2
    shift 2
    dd if=/dev/urandom of="$path" bs=4k count=$((kib / 4)) "$@" 2>/dev/null
}

# report_file PATH: "E2E-FILE PATH SHA256", or "E2E-MISSING PATH".
report_file() {
    if [ -f "$1" ]; then
        echo "E2E-FILE $1 $(sha256sum <"$1" | cut -d ' ' -f 1)"
    else
        echo "E2E-MISSING $1"
    fi
}
