# shellcheck shell=sh
# Scenario "crash": writes and fsyncs one file, says so (E2E-FSYNCED), then writes more
# without any fsync until the disk goes away: the host kills the server meanwhile.
set -eu
# shellcheck source=tests/e2e/guest/lib.sh
. /e2e/lib.sh

write_random /data/fsynced 2048 conv=fsync
sync /data
report_file /data/fsynced
echo E2E-FSYNCED

# O_DIRECT sends the data to the disk at once, so the server is busy with writes nobody
# flushed when it is killed; the metadata of these files waits in ext4's journal.
i=0
while :; do
    i=$((i + 1))
    write_random "/data/unsynced-$i" 1024 oflag=direct
    echo "E2E-UNSYNCED $i"
done
