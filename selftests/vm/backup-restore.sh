#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Backup and restore between two cards, and the memory scan (issue 6,
# items 4 and 8).  Boots one guest with two cards, each with its own key
# store (the second through HSMVM_QEMU_ARGS), running
# selftests/vm/backup/guest.sh, which restores on card 1 a backup of card
# 0 made under a KEK both hold, and checks the restored keys against card
# 0's (signatures verified with OpenSSL, same ciphertext, same HMAC).
# It also edits the backup file's clear attributes (wider uses, SENSITIVE
# dropped, another label or size): card 1 must refuse the key, because
# the attributes that count are inside its RFC 5649 blob (format 2).
#
# Memory scan: the host makes the test keys and a KEK (hsm-memscan gen);
# the guest gets only the KEK and the keys wrapped under it, unwraps them
# into card 0, uses them, holds a positive-control marker in a process and
# prints DUMP-NOW.  The host then dumps the guest's RAM through QMP
# (dump-guest-memory) and scans it: no test key may be in it, the marker
# must be (the dump and the scan work).  Where the KEK is found is reported
# for information: it enters the guest in clear by design.
#
# Usage: backup-restore.sh [--kernel K] [--keep-dump]
# Environment: BUILD, QEMU (as for run-vm.sh).
# Prints TAP lines and, last, "backup-restore: N passed, N failed".

set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNEL=6.12
KEEP=0
export TOP BUILD

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift ;;
	--keep-dump) KEEP=1 ;;
	-h|--help) sed -n '3,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "backup-restore: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

case $KERNEL in
''|*[/[:space:]]*) echo "$0: --kernel takes one kernel, e.g. 6.12" >&2; exit 2 ;;
esac
# One directory per kernel: runs on two kernels may overlap (make check).
dir=$BUILD/backup-$KERNEL
sock=$dir/qmp.sock
dump=$dir/guest.dump
out=$dir/guest.out
rm -rf "$dir"
mkdir -p "$dir" || exit 2
if ! "$BUILD/selftests/hsm-memscan" gen "$dir/mem"; then
	echo "backup-restore: hsm-memscan gen failed (make vm-tests?)" >&2
	exit 2
fi

HSMVM_WORKDIR=$dir \
HSMVM_QEMU_ARGS="-qmp unix:$sock,server=on,wait=off -device hsmcard,id=hsm1,keystore=$dir/card1.keystore" \
	"$TOP/selftests/vm/run-vm.sh" --kernels "$KERNEL" --timeout 900 \
	--run selftests/vm/backup/guest.sh >"$out" 2>&1 &
rpid=$!

# The dump: QMP's reply to dump-guest-memory comes once the file is
# complete; keep socat's input open until then (reading its output file).
# shellcheck disable=SC2094
qmp_dump() {
	local end=$((SECONDS + 300))

	{
		printf '%s\n' '{"execute":"qmp_capabilities"}' \
			"{\"execute\":\"dump-guest-memory\",\"arguments\":{\"paging\":false,\"protocol\":\"file:$dump\"}}"
		while [ $SECONDS -lt $end ] &&
		      [ "$(grep -o '"return"' "$dir/qmp.out" | wc -l)" -lt 2 ] &&
		      ! grep -q '"error"' "$dir/qmp.out"; do
			sleep 0.5
		done
	} | socat -t 5 - "UNIX-CONNECT:$sock" >"$dir/qmp.out" 2>&1
}

dumped=0
dump_s=0
end=$((SECONDS + 840))
while [ $SECONDS -lt $end ] && kill -0 "$rpid" 2>/dev/null; do
	if grep -q '^DUMP-NOW' "$out"; then
		t0=$SECONDS
		: >"$dir/qmp.out"
		qmp_dump
		dump_s=$((SECONDS - t0))
		dumped=1
		touch "$dir/dump.done"
		break
	fi
	sleep 0.5
done
wait "$rpid"
rc=$?
tr -d '\r' <"$out" >"$dir/guest.log"

pass=$(grep -c '^ok ' "$dir/guest.log")
fail=$(grep -c '^not ok ' "$dir/guest.log")
grep -E '^(not )?ok ' "$dir/guest.log"
res() {
	if [ "$1" = 0 ]; then
		pass=$((pass + 1))
		echo "ok - $2"
	else
		fail=$((fail + 1))
		echo "not ok - $2"
	fi
}

if [ "$dumped" = 1 ] && [ "$(grep -o '"return"' "$dir/qmp.out" | wc -l)" -eq 2 ] &&
   [ -s "$dump" ]; then
	res 0 "guest memory dumped through QMP ($(stat -c %s "$dump") bytes in ${dump_s}s)"
	"$BUILD/selftests/hsm-memscan" scan "$dump" "$dir/mem" >"$dir/scan.out"
	src=$?
	sed 's/^/# /' "$dir/scan.out"
	res $src "memory scan: no test key in guest memory, the marker is"
	grep -q '^found marker' "$dir/scan.out"
	res $? "memory scan: positive control (marker) found"
	grep -q '^FOUND' "$dir/scan.out"
	res $((! $?)) "memory scan: every test key absent"
else
	res 1 "guest memory dumped through QMP (see $dir/qmp.out)"
fi
[ "$KEEP" = 1 ] || rm -f "$dump"

if ! grep -q '^backup: ' "$dir/guest.log"; then
	res 1 "the guest script finished (see $dir/guest.log)"
elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
	res 1 "run-vm.sh (kernel log problems?)"
	grep -A20 'kernel log problems' "$dir/guest.log" | head -n 40
fi
echo "backup-restore: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
