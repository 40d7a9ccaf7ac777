# shellcheck shell=sh
# Reports the checksum of each file named, and what ext4 said when the root was mounted
# (E2E-KERNEL lines: e.g. that it replayed its journal).
# usage: report-files.sh PATH…
set -eu
# shellcheck source=tests/e2e/guest/lib.sh
. /e2e/lib.sh

dmesg | grep 'EXT4-fs' | sed 's/^/E2E-KERNEL /'
for path in "$@"; do
    report_file "$path"
done
