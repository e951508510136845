#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Guest half of the tamper test (see tamper-io.sh): with a dm-crypt volume
# on the card being written and a netlink monitor listening, print
# TAMPER-NOW and let the host raise the card's tamper event through the
# QEMU monitor; then check that everything fails cleanly and the driver
# reports it and stays.  Prints TAP lines and "tamper: N passed, N failed".

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
SYSFS=/sys/class/misc/hsmcard0/device
DM=hsmtamper
n=0
fails=0

ok() { n=$((n + 1)); echo "ok $n $*"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $*"; }
# check DESCRIPTION COMMAND...: one TAP line from COMMAND's status
check() {
	local desc=$1

	shift
	if "$@"; then ok "$desc"; else nok "$desc"; fi
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s
wait_for() {
	local end=$((SECONDS + $1))

	shift
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

tmp=$(mktemp -d)
"$HSMCTL" monitor >"$tmp/events" 2>&1 &
mon=$!

h=$("$HSMCTL" keygen -t ec -u sign,verify -l before-tamper)
check "a key works before the tamper" \
	"$HSMCTL" sign "$h" -i /etc/hostname -o "$tmp/sig"

modprobe -q -a dm_mod dm_crypt loop xts 2>/dev/null
# libdevmapper makes the nodes itself: there is no udev in the guest
export DM_DISABLE_UDEV=1
truncate -s 64M "$tmp/img"
loop=$(losetup --find --show "$tmp/img")
key=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
dmsetup create "$DM" --table \
	"0 131072 crypt capi:xts-aes-hsmcard-plain64 $key 0 $loop 0"
if [ ! -b /dev/mapper/$DM ]; then
	nok "dm-crypt volume on the card"
	echo "tamper: $((n - fails)) passed, $fails failed"
	exit 1
fi
ok "dm-crypt volume on the card"
# A writer that keeps the card busy until a write fails.
(
	while dd if=/dev/zero of=/dev/mapper/$DM bs=64k count=256 \
		oflag=direct 2>"$tmp/dd.err"; do
		echo pass >>"$tmp/dd.passes"
	done
	echo done >"$tmp/dd.done"
) &
writer=$!
check "the volume is written through the card" \
	wait_for 60 test -s "$tmp/dd.passes"

echo "TAMPER-NOW"
check "sysfs state becomes tampered" \
	wait_for 60 grep -qx tampered "$SYSFS/state"
check "the writer's I/O fails within 60 s (no hang)" \
	wait_for 60 test -e "$tmp/dd.done"
check "and with an I/O error" grep -q "Input/output error" "$tmp/dd.err"
kill "$writer" 2>/dev/null

"$HSMCTL" sign "$h" -i /etc/hostname -o "$tmp/sig2" 2>"$tmp/sign.err"
rc=$?
check "signing is refused (hsmctl exit status 3, got $rc)" [ $rc -eq 3 ]
check "with a message naming the tamper" grep -qi tamper "$tmp/sign.err"
"$HSMCTL" keygen -t aes -l after-tamper >/dev/null 2>&1
rc=$?
check "key generation is refused (exit status $rc)" [ $rc -eq 3 ]
check "hsmctl info reports the state" \
	sh -c "'$HSMCTL' info | grep -qi tampered"

check "the module stays loaded" grep -q '^hsmcard ' /proc/modules
check "/dev/hsmcard0 stays" test -c /dev/hsmcard0
check "the kernel log reports the tamper event" \
	sh -c "dmesg | grep -q 'tamper event'"
check "a netlink tamper event reached the monitor" \
	wait_for 10 grep -qE '"event": ?"tamper"' "$tmp/events"
kill "$mon" 2>/dev/null

check "the volume can still be removed" dmsetup remove "$DM"
losetup -d "$loop"
rm -rf "$tmp"
echo "1..$n"
echo "tamper: $((n - fails)) passed, $fails failed"
[ $fails -eq 0 ]
