#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Tamper while the card works: boots a 6.12 guest running
# selftests/vm/tamper/guest.sh, which writes a dm-crypt volume on the card,
# streams TCP through an ESP tunnel on the card and prints TAMPER-NOW; the host then sets the card's "tamper" property
# through QMP (as an operator would from the QEMU monitor).  The guest
# checks that I/O fails cleanly and promptly, that key operations are
# refused, and that the driver reports the event (sysfs state, kernel log,
# netlink) and stays loaded; run-vm.sh fails the run on any oops, warning
# or hung task in the kernel log.
#
# Usage: tamper-io.sh [--kernel K]
# Environment: BUILD, QEMU (as for run-vm.sh).
# Prints the guest's TAP lines and, last, "N passed, N failed".

set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNEL=6.12
export TOP BUILD

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift ;;
	-h|--help) sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "tamper-io: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

case $KERNEL in
''|*[/[:space:]]*) echo "$0: --kernel takes one kernel, e.g. 6.12" >&2; exit 2 ;;
esac
# One directory per kernel: runs on two kernels may overlap (make check).
dir=$BUILD/tamper-$KERNEL
sock=$dir/qmp.sock
rm -rf "$dir"
mkdir -p "$dir" || exit 2
out=$dir/guest.out

HSMVM_QEMU_ARGS="-qmp unix:$sock,server=on,wait=off" \
	"$TOP/selftests/vm/run-vm.sh" --kernels "$KERNEL" --timeout 600 \
	--run selftests/vm/tamper/guest.sh >"$out" 2>&1 &
rpid=$!

sent=0
end=$((SECONDS + 400))
while [ $SECONDS -lt $end ] && kill -0 "$rpid" 2>/dev/null; do
	if grep -q '^TAMPER-NOW' "$out"; then
		printf '%s\n' '{"execute":"qmp_capabilities"}' \
			'{"execute":"qom-set","arguments":{"path":"/machine/peripheral/hsm0","property":"tamper","value":true}}' |
			socat -t 2 - "UNIX-CONNECT:$sock" >"$dir/qmp.out" 2>&1
		sent=1
		break
	fi
	sleep 0.2
done
wait "$rpid"
rc=$?
tr -d '\r' <"$out" >"$dir/guest.log"

pass=$(grep -c '^ok ' "$dir/guest.log")
fail=$(grep -c '^not ok ' "$dir/guest.log")
grep -E '^(not )?ok ' "$dir/guest.log"
# qmp_capabilities and qom-set: two successful returns
if [ "$sent" = 1 ] && [ "$(grep -o '"return"' "$dir/qmp.out" | wc -l)" -eq 2 ]; then
	pass=$((pass + 1))
	echo "ok - tamper raised through QMP"
else
	fail=$((fail + 1))
	echo "not ok - tamper not raised through QMP (see $dir/qmp.out)"
fi
if ! grep -q '^tamper: ' "$dir/guest.log"; then
	fail=$((fail + 1))
	echo "not ok - the guest script did not finish (see $dir/guest.log)"
elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
	fail=$((fail + 1))
	echo "not ok - run-vm.sh failed (kernel log problems?):"
	grep -A20 'kernel log problems' "$dir/guest.log" | head -n 40
fi
echo "tamper-io: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
