#!/bin/sh
# Stage two of every test guest, run as PID 1 from the root file system (the instance on
# /dev/vda, or the initramfs): runs /e2e/SCRIPT.sh with the comma-separated arguments of
# the kernel parameters e2e_script=SCRIPT e2e_args=A,B,…, and reports on the serial console
# one closing line, E2E-PASS or E2E-FAIL <why>, which the host waits for. Then it powers off.
# No set -e: whatever fails, the guest must still report and power off.
set -u
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

read -r cmdline </proc/cmdline
parameter() {
    for word in $cmdline; do
        case $word in "$1"=*) echo "${word#"$1"=}" ;; esac
    done
}

script=$(parameter e2e_script)
args=$(parameter e2e_args | tr , ' ')
root=$(parameter e2e_root)
cd /

# shellcheck disable=SC2086 # the arguments are separate words
if sh "/e2e/$script.sh" $args; then
    failure=
else
    failure="$script.sh exited with $?"
fi

sync
# A clean file system for the host to check: remounting read-only commits the journal and
# clears the needs-recovery flag, as an unmount would.
if [ "$root" = vda ] && ! mount -o remount,ro /; then
    failure="${failure:+$failure; }remounting / read-only failed"
fi

if [ -z "$failure" ]; then
    echo E2E-PASS
else
    echo "E2E-FAIL $failure"
fi
poweroff -f
