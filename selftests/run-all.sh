#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# What `make check` runs: host unit tests, then QEMU with the card, the module
# for each kernel, the guest tests, the VM runs on Debian's 6.1 and 6.12
# (KERNELS="6.1 6.12") and for each release kernel the tamper test
# (selftests/vm/tamper-io.sh), one 2-vCPU guest at a time; then, in one lane
# per core (HSMCARD_CHECK_JOBS) with one vCPU per guest, the card's
# crash-consistency test (QEMU killed while it creates keys,
# selftests/vm/crash-keys.sh) and the attacks on the key store and audit log
# files (selftests/vm/store-attack.sh), both taking the release kernels in
# turn from one boot to the next, and for each release kernel the two-card
# backup/restore with the guest memory scan (selftests/vm/backup-restore.sh).
# `make check-debug` passes KERNELS="6.1 6.12 6.12-debug": the debug kernel
# is then built (or taken from the cache) after QEMU and the suite runs on
# it too.
# Prints a summary and, as the very last line, "N passed, N failed" (host and
# guest test counts; a stage that cannot run, a kernel-log problem or a
# crashed or hung guest counts as a failure).  Exits non-zero on any failure.

set -u
set -o pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNELS=${KERNELS:-"6.1 6.12"}
# the release kernels of KERNELS: the host-driven scripts run on these
HOST_KERNELS=
for k in $KERNELS; do
	case $k in *-debug) ;; *) HOST_KERNELS="$HOST_KERNELS $k" ;; esac
done
HOST_KERNELS=${HOST_KERNELS# }
# lanes of host-driven scripts at once, one 1-vCPU guest each: one per core
JOBS=${HSMCARD_CHECK_JOBS:-$(nproc)}
case $JOBS in
''|*[!0-9]*|0) JOBS=1 ;;
esac
lane_counts=
export TOP BUILD

pass=0
fail=0
report=

stage() {
	echo
	echo "==== $* ($(date -u +%H:%M:%S))"
}

# note NAME PASS FAIL: add a stage's counts to the totals (in a lane: to
# the lane's file, which the main shell reads when the lanes are done)
note() {
	if [ -n "$lane_counts" ]; then
		printf '%s\t%d\t%d\n' "$1" "$2" "$3" >>"$lane_counts"
		return
	fi
	pass=$((pass + $2))
	fail=$((fail + $3))
	report="$report$(printf '  %-24s %5d passed, %d failed' "$1" "$2" "$3")"$'\n'
}

# last_counts FILE: the last "N passed, N failed" of FILE as "N N"
last_counts() {
	grep -a -o -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1 |
		sed -E 's/([0-9]+) passed, ([0-9]+) failed/\1 \2/'
}

# run_counted NAME LOG CMD...: run CMD with its output also in LOG and add
# the last "N passed, N failed" it printed to the totals; a command that
# fails without a failure count, or prints no count at all, counts as one
# failure
run_counted() {
	local name=$1 log=$2 rc counts p f

	shift 2
	"$@" 2>&1 | tee "$log"
	rc=$?
	counts=$(last_counts "$log")
	if [ -z "$counts" ]; then
		echo "run-all: $name gave no counts (status $rc)"
		note "$name" 0 1
		return
	fi
	read -r p f <<<"$counts"
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
	note "$name" "$p" "$f"
}

# lane N JOB...: run the jobs one after the other (in the background);
# a job is "crash", "store" (on all release kernels in turn) or "backup:K".
# The counts go to $BUILD/.lane-N.counts.
lane() {
	local job

	lane_counts=$BUILD/.lane-$1.counts
	: >"$lane_counts"
	shift
	for job in "$@"; do
		case $job in
		crash)
			stage "card crash consistency on $HOST_KERNELS (selftests/vm/crash-keys.sh)"
			run_counted "crash consistency" "$BUILD/check-crash.log" \
				"$TOP/selftests/vm/crash-keys.sh" --rounds 2 \
				--kernel "$HOST_KERNELS"
			;;
		store)
			stage "key store and audit log attacks on $HOST_KERNELS (selftests/vm/store-attack.sh)"
			run_counted "store attacks" "$BUILD/check-store.log" \
				"$TOP/selftests/vm/store-attack.sh" \
				--kernel "$HOST_KERNELS"
			;;
		backup:*)
			stage "backup, two-card restore, memory scan on ${job#*:} (selftests/vm/backup-restore.sh)"
			run_counted "backup/restore ${job#*:}" \
				"$BUILD/check-backup-${job#*:}.log" \
				"$TOP/selftests/vm/backup-restore.sh" --kernel "${job#*:}"
			;;
		esac
	done
}

# One compound command, parsed whole before it runs (safe to edit meanwhile).
{
mkdir -p "$BUILD" || exit 2
cd "$TOP" || exit 2
rm -f "$BUILD"/.lane-*.counts
start=$(date +%s)

stage "host unit tests (make check-host)"
run_counted "host" "$BUILD/check-host.log" make -C "$TOP" check-host

stage "QEMU with the card (make qemu)"
make -C "$TOP" qemu
qemu_ok=$?
[ $qemu_ok -eq 0 ] || note "qemu build" 0 1

case " $KERNELS " in
*" 6.12-debug "*)
	stage "debug kernel (selftests/vm/debug-kernel/build-kernel.sh)"
	t0=$(date +%s)
	if "$TOP/selftests/vm/debug-kernel/build-kernel.sh"; then
		echo "run-all: debug kernel ready in $(( $(date +%s) - t0 ))s"
	else
		note "debug kernel build" 0 1
	fi
	;;
esac

stage "kernel modules"
"$TOP/selftests/vm/build-modules.sh" --kernels "$KERNELS" || note "module build" 0 1

stage "guest tests"
make -C "$TOP/selftests/vm" TOP="$TOP" BUILD="$BUILD" || note "selftest build" 0 1

if [ $qemu_ok -eq 0 ]; then
	# The guest suites and the tamper test, whose subject is the driver
	# under concurrency, boot 2-vCPU guests one at a time: two
	# multi-threaded TCG guests sharing two cores run several times slower
	# than one after the other (measured 3 to 6 times per guest).
	stage "VM tests on $KERNELS"
	run_counted "vm" "$BUILD/check-vm.log" \
		"$TOP/selftests/vm/run-vm.sh" --kernels "$KERNELS"
	for k in $HOST_KERNELS; do
		stage "tamper under load on $k (selftests/vm/tamper-io.sh)"
		run_counted "tamper $k" "$BUILD/check-tamper-$k.log" \
			"$TOP/selftests/vm/tamper-io.sh" --kernel "$k"
	done

	# The scripts about the card's files (the crash test and the file
	# attacks, which take the release kernels in turn from one boot to
	# the next, so a key store written under one kernel is checked under
	# the other) and the two-card backup/restore run in $JOBS lanes at
	# once, each guest with one vCPU (one core each).  Each lane's output
	# is prefixed with its number; the stage logs hold it unprefixed.
	if [ -n "$HOST_KERNELS" ]; then
		jobs=(crash store)
		for k in $HOST_KERNELS; do
			jobs+=("backup:$k")
		done
		[ "$JOBS" -le 1 ] || export HSMVM_SMP=1
		for ((i = 0; i < JOBS && i < ${#jobs[@]}; i++)); do
			mine=()
			for ((j = i; j < ${#jobs[@]}; j += JOBS)); do
				mine+=("${jobs[j]}")
			done
			lane "$i" "${mine[@]}" 2>&1 | sed -u "s/^/[lane $i] /" &
		done
		lanes=$i
		wait
		unset HSMVM_SMP
		# the lanes' counts, in lane order
		for ((i = 0; i < lanes; i++)); do
			if [ ! -s "$BUILD/.lane-$i.counts" ]; then
				note "lane $i" 0 1
				continue
			fi
			while IFS=$'\t' read -r name p f; do
				note "$name" "$p" "$f"
			done <"$BUILD/.lane-$i.counts"
		done
	else
		echo "run-all: no release kernel in KERNELS: the host-driven scripts do not run"
	fi
else
	echo "run-all: no QEMU, VM tests not run"
fi

stage "summary ($(( $(date +%s) - start ))s)"
printf '%s' "$report"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
exit
}
