#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Runs inside the test guest, chrooted into the host's root file system (see
# init).  Parameters come from the kernel command line:
#
#   hsmvm.top=DIR      source tree (as on the host)
#   hsmvm.build=DIR    build directory (selftests/, kmod-<kver>/)
#   hsmvm.mode=M       test | shell | demo | run
#   hsmvm.script=PATH  script to run in run mode
#   hsmvm.workdir=DIR  the host script's directory for this run (run mode:
#                      exported to SCRIPT as HSMCARD_WORKDIR)
#   hsmvm.tests=LIST   comma-separated test names, or "all"
#   hsmvm.timeout=S    per-test-binary timeout in seconds
#   hsmvm.moddir=DIR   /lib/modules/<kver> of a kernel that has none on the
#                      host (the debug kernel): mounted in place so that
#                      modprobe finds modules.builtin
#
# In test mode, structured results go to the second serial port (ttyS1):
# "=== HSMVM ..." marker lines around each test binary's TAP output, the
# module load status and a full dmesg dump.  run-vm.sh parses them.

TOP=
BUILD=
MODE="test"
SCRIPT=
TESTS=all
TIMEOUT=900
MODDIR=
WORKDIR=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case "$arg" in
	hsmvm.top=*) TOP="${arg#*=}" ;;
	hsmvm.build=*) BUILD="${arg#*=}" ;;
	hsmvm.mode=*) MODE="${arg#*=}" ;;
	hsmvm.script=*) SCRIPT="${arg#*=}" ;;
	hsmvm.tests=*) TESTS="${arg#*=}" ;;
	hsmvm.timeout=*) TIMEOUT="${arg#*=}" ;;
	hsmvm.moddir=*) MODDIR="${arg#*=}" ;;
	hsmvm.workdir=*) WORKDIR="${arg#*=}" ;;
	esac
done
KVER=$(uname -r)
KO="$BUILD/kmod-$KVER/hsmcard.ko"
export HSMCARD_TOP="$TOP" HSMCARD_BUILD="$BUILD" HSMCARD_KO="$KO"
export HSMCARD_WORKDIR="$WORKDIR"
export PATH="$BUILD/tools:$BUILD/selftests:$PATH"
hostname hsmvm 2>/dev/null

if [ "$MODE" != shell ] && [ -c /dev/ttyS1 ]; then
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	exec 3>/dev/ttyS1
else
	exec 3>/dev/null
fi

res() {
	echo "=== HSMVM $*" >&3
}

# The debug kernel's module directory is not in the host's /lib/modules
# (read-only here): put a tmpfs over /lib/modules holding just it.
setup_moddir() {
	[ -n "$MODDIR" ] && [ ! -d "/lib/modules/$KVER" ] || return 0
	if [ ! -d "$MODDIR" ]; then
		echo "hsmvm: $MODDIR not found"
		return 0
	fi
	mount -t tmpfs -o mode=0755 tmpfs /lib/modules &&
		cp -a "$MODDIR" "/lib/modules/$KVER" ||
		echo "hsmvm: cannot set up /lib/modules/$KVER"
}

# kmemleak (debug kernel): scan twice with a pause, so that objects only
# briefly unreferenced are not reported, and pass the report on to run-vm.sh
# (which keeps the leaks allocated by hsmcard).
kmemleak_report() {
	local f=/sys/kernel/debug/kmemleak

	[ -w "$f" ] || return 0
	echo scan >"$f" 2>/dev/null || return 0
	sleep 5
	echo scan >"$f"
	res "KMEMLEAK BEGIN"
	cat "$f" >&3
	res "KMEMLEAK END"
}

load_module() {
	local deps d

	if [ ! -f "$KO" ]; then
		echo "hsmvm: $KO not found (run make modules-all)"
		return 1
	fi
	# Dependencies come from the running kernel's own module tree.
	deps=$(modinfo -F depends "$KO" 2>/dev/null | tr ',' ' ')
	for d in $deps; do
		modprobe "$d" || echo "hsmvm: modprobe $d failed"
	done
	insmod "$KO" || return 1
	# devtmpfs creates the node when the misc device registers.
	for _ in $(seq 1 100); do
		[ -c /dev/hsmcard0 ] && return 0
		sleep 0.1
	done
	echo "hsmvm: /dev/hsmcard0 did not appear"
	return 0
}

run_tests() {
	local t name rc list t0

	if [ "$TESTS" = all ]; then
		list=$(ls "$BUILD"/selftests/*_test 2>/dev/null)
	else
		list=
		for t in ${TESTS//,/ }; do
			t=${t%_test}_test
			list="$list $BUILD/selftests/$t"
		done
	fi
	[ -n "$list" ] || echo "hsmvm: no test binaries in $BUILD/selftests"
	for t in $list; do
		name=$(basename "$t")
		res "TEST $name BEGIN"
		echo "hsmvm: running $name"
		t0=$(date +%s)
		if [ -x "$t" ]; then
			(cd /tmp && timeout -k 10 "$TIMEOUT" "$t") 2>&1 | tee /dev/fd/3
			rc=${PIPESTATUS[0]}
		else
			echo "hsmvm: $t not found or not executable" | tee /dev/fd/3
			rc=127
		fi
		[ "$rc" -ne 124 ] || echo "hsmvm: $name timed out after ${TIMEOUT}s" | tee /dev/fd/3
		echo "hsmvm: $name exited $rc after $(($(date +%s) - t0))s"
		res "TEST $name END rc=$rc"
	done
}

demo() {
	local d

	if [ -x "$TOP/selftests/vm/demo.sh" ]; then
		"$TOP/selftests/vm/demo.sh"
		return
	fi
	echo "== lspci"
	lspci -nnk -d 1234:4853
	echo "== driver"
	lsmod | grep -E '^(Module|hsmcard)'
	ls -l /dev/hsmcard* 2>/dev/null
	for d in /sys/bus/pci/drivers/hsmcard/0000:*; do
		[ -d "$d" ] || continue
		echo "== sysfs $d"
		grep -H . "$d"/* 2>/dev/null | grep -v -e '/config:' -e '/resource'
	done
	echo "== hwrng"
	cat /sys/class/misc/hw_random/rng_available /sys/class/misc/hw_random/rng_current 2>/dev/null
	echo "== crypto algorithms"
	grep -B1 -A5 'driver .*hsm' /proc/crypto | grep -E '^(name|driver|priority|selftest)'
	echo "== kernel log"
	dmesg | grep -i hsm
}

setup_moddir
res "BEGIN $KVER"
echo "hsmvm: kernel $KVER, mode $MODE"
if load_module; then
	res "MODULE rc=0"
else
	echo "hsmvm: loading $KO failed"
	res "MODULE rc=1"
fi

case "$MODE" in
test)
	run_tests
	;;
demo)
	demo
	res "DEMO rc=$?"
	;;
run)
	"$SCRIPT"
	res "DEMO rc=$?"
	;;
shell)
	echo "hsmvm: shell in the guest (chrooted into the host root, read-only); exit to power off"
	cd "$TOP" || cd /
	setsid -c /bin/bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
	;;
*)
	echo "hsmvm: unknown mode $MODE"
	;;
esac

# Let deferred work (hung-task, RCU, self-tests) reach the log first.
sleep 1
kmemleak_report
res "DMESG BEGIN"
dmesg --color=never >&3
res "DMESG END"
res "DONE"
exit 0
