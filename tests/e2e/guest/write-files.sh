# shellcheck shell=sh
# Scenario "rootfs and fsync": writes files only this guest's instance should have, fsyncs
# each (and the directory holding them), and reports their checksums.
# usage: write-files.sh NAME
set -eu
# shellcheck source=tests/e2e/guest/lib.sh
. /e2e/lib.sh
name=$1

mkdir -p "/data/$name"
write_random "/data/$name/big" 2048 conv=fsync
write_random "/data/$name/small" 12 conv=fsync
# The same path in every instance, with this guest's own content.
echo "written by the guest of instance $name" >/data/whoami
sync /data/whoami "/data/$name" /data

for path in "/data/$name/big" "/data/$name/small" /data/whoami; do
    report_file "$path"
done
