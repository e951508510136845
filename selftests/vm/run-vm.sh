#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Boot Debian 12 kernels under the project's QEMU with the hsmcard device and
# run the guest tests; or give an interactive shell / demo in such a guest.
# See Documentation/hsmcard/testing.rst.

set -u
set -o pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNELS="6.1 6.12"
TESTS=
MODE="test"
SCRIPT=
TIMEOUT=${HSMVM_TIMEOUT:-900}
TEST_TIMEOUT=${HSMVM_TEST_TIMEOUT:-600}
VERBOSE=0
QEMU=${QEMU:-}
NO_CARD=${HSMVM_NO_CARD:-0}
EXTRA_ARGS=${HSMVM_QEMU_ARGS:-}
MEM=2G
SMP=${HSMVM_SMP:-2}
# The debug kernel under TCG is several times slower than Debian's.
DEBUG_SLOWDOWN=${HSMVM_DEBUG_SLOWDOWN:-4}

usage() {
	cat <<EOF
Usage: $0 [options]

Boot each kernel under QEMU (TCG, q35, ${SMP} vCPUs, ${MEM}) with the hsmcard
device, the host root shared read-only over virtio-9p, load
\$BUILD/kmod-<kver>/hsmcard.ko and run the guest tests
(\$BUILD/selftests/*_test).

Options:
  --kernels "LIST"  kernels to boot: "6.1", "6.12" or full versions as in
                    /boot/vmlinuz-<kver> (default: "$KERNELS"), or
                    "6.12-debug": the debug kernel (KASAN, lockdep,
                    kmemleak, DMA-API debug, UBSAN, crypto fuzz tests) of
                    selftests/vm/debug-kernel/, built by its build-kernel.sh
                    (make debug-kernel); its timeouts are ${DEBUG_SLOWDOWN}x longer
  --test NAME       run only this test (repeatable, or comma-separated);
                    NAME is e.g. hsmcard_bind or hsmcard_bind_test
  --shell           interactive shell in the guest (first kernel only)
  --demo            boot one kernel and run selftests/vm/demo.sh
  --run SCRIPT      boot one kernel and run SCRIPT (a path inside the
                    tree, e.g. selftests/vm/bench-kernel.sh) in the guest
  --timeout SEC     kill a guest after SEC seconds (default: $TIMEOUT)
  --test-timeout S  per test binary timeout inside the guest (default: $TEST_TIMEOUT)
  -v, --verbose     copy the guest console to stdout
  -h, --help        this text

Environment: BUILD (default \$TOP/build), QEMU (QEMU binary; default:
qemu-device/build-qemu.sh --print-path), HSMVM_QEMU_ARGS (extra QEMU
arguments, split at white space), HSMVM_LOG_ALLOW (extended regex of
kernel-log lines that do not fail the run), HSMVM_KEYSTORE (the card's
key store file, kept across runs; default: a fresh one per boot),
HSMVM_WORKDIR (a directory that a --run script finds in HSMCARD_WORKDIR),
HSMVM_SMP (vCPUs per guest, default 2; make check boots the scripts about
the card's files with 1, two guests at a time).

Logs: \$BUILD/vm-<kver>.log (serial console: kernel log and test output),
\$BUILD/vm-<kver>.results (TAP output and dmesg as seen by the harness).
Exit status: 0 if every test passed and the kernel logs are clean.
EOF
}

die() {
	echo "run-vm: $*" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--kernels) [ $# -ge 2 ] || die "$1 needs an argument"; KERNELS=$2; shift ;;
	--kernels=*) KERNELS=${1#*=} ;;
	--test|-t) [ $# -ge 2 ] || die "$1 needs an argument"; TESTS="$TESTS${TESTS:+,}$2"; shift ;;
	--test=*) TESTS="$TESTS${TESTS:+,}${1#*=}" ;;
	--shell) MODE=shell ;;
	--demo) MODE=demo ;;
	--run) [ $# -ge 2 ] || die "$1 needs an argument"; MODE=run; SCRIPT=$2; shift ;;
	--timeout) [ $# -ge 2 ] || die "$1 needs an argument"; TIMEOUT=$2; shift ;;
	--test-timeout) [ $# -ge 2 ] || die "$1 needs an argument"; TEST_TIMEOUT=$2; shift ;;
	-v|--verbose) VERBOSE=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
TESTS=${TESTS// /,}
case "$TIMEOUT$TEST_TIMEOUT$SMP" in
*[!0-9]*) die "timeouts and HSMVM_SMP must be whole numbers" ;;
esac
if [ "$MODE" = run ]; then
	case "$SCRIPT" in
	/*) ;;
	*) SCRIPT=$TOP/$SCRIPT ;;
	esac
	[ -x "$SCRIPT" ] || die "--run: $SCRIPT is not an executable file"
fi
case "$TOP$BUILD$TESTS$SCRIPT${HSMVM_WORKDIR:-}" in
*[[:space:]]*) die "paths and test names must not contain white space" ;;
esac
# The guest sees the host's root, but with its own tmpfs on these.
for d in "$TOP" "$BUILD"; do
	case "$d/" in
	/tmp/*|/var/tmp/*|/run/*|/root/*|/proc/*|/sys/*|/dev/*)
		die "$d is hidden from the guest; use a directory elsewhere" ;;
	esac
done

# ---- helpers ----

# debug_kernel_dir: the cached debug kernel (selftests/vm/debug-kernel/)
debug_kernel_dir() {
	"$TOP/selftests/vm/debug-kernel/build-kernel.sh" --print-path
}

# kernel_version SPEC: "6.1" -> 6.1.0-56-amd64 (newest installed match);
# "6.12-debug" -> the debug kernel's release (e.g. 6.12.117-hsmdebug)
kernel_version() {
	local spec=$1 f v d best=

	if [ "$spec" = 6.12-debug ]; then
		d=$(debug_kernel_dir) || {
			echo "run-vm: the debug kernel is not built (make debug-kernel)" >&2
			return 1
		}
		cat "$d/kernel.release"
		return
	fi

	if [ -f "/boot/vmlinuz-$spec" ]; then
		echo "$spec"
		return 0
	fi
	for f in /boot/vmlinuz-"$spec".*-amd64 /boot/vmlinuz-"$spec"-*; do
		[ -f "$f" ] || continue
		v=${f#/boot/vmlinuz-}
		best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -n1)
	done
	[ -n "$best" ] || return 1
	echo "$best"
}

# module_closure KVER NAME...: module files (relative to /lib/modules/KVER)
# in load order, dependencies first; built-in modules are skipped.
module_closure() {
	local kver=$1 dep=/lib/modules/$1/modules.dep
	shift
	awk -v want="$*" '
	function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
	function visit(m,   n, parts, i) {
		if (m in seen) return
		seen[m] = 1
		if (!(m in path)) return
		n = split(deps[m], parts, " ")
		for (i = 1; i <= n; i++) visit(base(parts[i]))
		print path[m]
	}
	{
		f = $1; sub(/:$/, "", f)
		m = base(f)
		path[m] = f
		d = ""
		for (i = 2; i <= NF; i++) d = d " " $i
		deps[m] = d
	}
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) {
			m = w[i]; gsub(/-/, "_", m)
			visit(m)
		}
	}' "$dep"
}

# build_initramfs KVER [BUILTIN]: prints the path of a cached initramfs for
# KVER; with BUILTIN non-empty, the kernel needs no modules to mount 9p.
build_initramfs() {
	local kver=$1 mods key out tmp m f
	local dir=$BUILD/vm-initramfs

	if [ -n "${2:-}" ]; then
		# The debug kernel has virtio-9p built in.
		mods=
	else
		mods=$(module_closure "$kver" virtio_pci 9pnet_virtio 9p) || return 1
		[ -n "$mods" ] || { echo "run-vm: no 9p modules for $kver" >&2; return 1; }
	fi
	key=$( { echo "$kver"; echo "$mods"; cat "$TOP/selftests/vm/init";
		 sha256sum /bin/busybox; } | sha256sum | cut -c1-16)
	out=$dir/initramfs-$kver-$key.cpio.gz
	if [ -f "$out" ]; then
		echo "$out"
		return 0
	fi
	mkdir -p "$dir" || return 1
	tmp=$(mktemp -d "$dir/tmp.XXXXXX") || return 1
	mkdir -p "$tmp"/{bin,dev,proc,sys,modules,newroot}
	cp /bin/busybox "$tmp/bin/busybox"
	cp "$TOP/selftests/vm/init" "$tmp/init"
	chmod 0755 "$tmp/init" "$tmp/bin/busybox"
	: >"$tmp/modules/order"
	for m in $mods; do
		f=/lib/modules/$kver/$m
		case "$f" in
		*.ko.xz) xz -dc "$f" >"$tmp/modules/$(basename "$m" .xz)" ;;
		*.ko.zst) zstd -qdc "$f" >"$tmp/modules/$(basename "$m" .zst)" ;;
		*.ko.gz) gzip -dc "$f" >"$tmp/modules/$(basename "$m" .gz)" ;;
		*) cp "$f" "$tmp/modules/" ;;
		esac || { rm -rf "$tmp"; return 1; }
		basename "${m%.xz}" | sed -e 's/\.zst$//' -e 's/\.gz$//' >>"$tmp/modules/order"
	done
	(cd "$tmp" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) \
		>"$out.tmp" || { rm -rf "$tmp" "$out.tmp"; return 1; }
	rm -rf "$tmp"
	rm -f "$dir/initramfs-$kver-"*.cpio.gz
	mv "$out.tmp" "$out"
	echo "$out"
}

find_qemu() {
	if [ -n "$QEMU" ]; then
		echo "$QEMU"
		return
	fi
	"$TOP/qemu-device/build-qemu.sh" --print-path 2>/dev/null
}

# debug_cmdline: extra kernel parameters for the debug kernel.
#  kasan_multi_shot      report every KASAN error, not only the first
#  kmemleak=on           (the default of this config; stated for clarity)
#  log_buf_len=8M        keep the whole boot (fuzz self-tests, lockdep) in
#                        the dmesg dump the checks read
#  hung_task_timeout_secs=300, watchdog_thresh=60 (soft lockup after 120 s),
#  nmi_watchdog=0, rcupdate.rcu_cpu_stall_timeout=120:
#                        under TCG on a busy 2-core host a vCPU can stay
#                        descheduled, or a KASAN-instrumented loop run, for
#                        tens of seconds; the default 120 s / 20 s limits
#                        then report emulator slowness, not driver bugs.
#                        Real hangs still show (the test timeouts are larger)
#  dma_debug_entries=131072  room for every mapping of full queues, so
#                        DMA-API debug never disables itself
#  brd.rd_size=131072    brd is built in, so `modprobe brd rd_size=...`
#                        cannot size it: 128 MiB RAM disks (allocated as
#                        written)
#  cryptomgr.fuzz_iterations=20  the extra self-tests compare every
#                        algorithm with the generic one on random inputs,
#                        100 rounds per algorithm by default; each module
#                        load runs them for all of the card's algorithms,
#                        and the suite loads the module a dozen times
debug_cmdline() {
	echo "kasan_multi_shot kmemleak=on log_buf_len=8M" \
	     "hung_task_timeout_secs=300 watchdog_thresh=60 nmi_watchdog=0" \
	     "rcupdate.rcu_cpu_stall_timeout=120 dma_debug_entries=131072" \
	     "brd.rd_size=131072 cryptomgr.fuzz_iterations=20"
}

# Kernel-log lines that fail a run (the debug kernel's reports included:
# KASAN, UBSAN, lockdep, DMA-API debug, hung task, soft lockup).
BAD_RE='BUG:|kernel BUG at|WARNING:|Oops|alg: .*fail|blocked for more than|possible circular locking|inconsistent lock state|possible recursive locking|suspicious RCU usage|general protection fault|KASAN|UBSAN|Kernel panic|list_(add|del) corruption|refcount_t: |stack-protector|double fault|soft lockup|hard LOCKUP|DMA-API: |DEBUG_LOCKS_WARN_ON|INFO: trying to register non-static key|bad unlock balance|held lock freed|lock held when returning to user space'

# kernel_log RESULTS CONSOLE: the guest's kernel log
kernel_log() {
	local res=$1 con=$2

	if grep -q '^=== HSMVM DMESG END' "$res" 2>/dev/null; then
		sed -n '/^=== HSMVM DMESG BEGIN/,/^=== HSMVM DMESG END/p' "$res"
	else
		# No dump (crash or hang): fall back to the console.
		grep -a -E '^\[ *[0-9]+\.[0-9]+\]' "$con" 2>/dev/null
	fi
}

# Lines that match BAD_RE but report nothing: DMA-API debug announcing
# itself at boot.
BENIGN_RE='DMA-API: (preallocated [0-9]+ debug entries|debugging enabled by kernel config)'

# HSMVM_LOG_ALLOW: an extended regex of kernel-log lines that do not fail a
# run (make bench-kernel: virtio-crypto's rsa fails its self-test).
# kernel_log_checked RESULTS CONSOLE: the kernel log without those lines
kernel_log_checked() {
	kernel_log "$1" "$2" | grep -a -v -E "$BENIGN_RE" |
		if [ -n "${HSMVM_LOG_ALLOW:-}" ]; then
			grep -a -v -E "$HSMVM_LOG_ALLOW"
		else
			cat
		fi
}

# check_kernel_log RESULTS CONSOLE: print offending kernel-log lines
check_kernel_log() {
	kernel_log_checked "$1" "$2" | grep -a -E "$BAD_RE"
}

# kernel_log_reports RESULTS CONSOLE: the offending lines with the report
# that follows each (backtrace, KASAN shadow dump...), at most 400 lines.
kernel_log_reports() {
	kernel_log_checked "$1" "$2" | grep -a -E -A 40 "$BAD_RE" | head -n 400
}

# kmemleak_reports RESULTS: kmemleak's suspected leaks (scanned by guest.sh
# at the end of the run) whose allocation backtrace is in hsmcard: named
# frames, or module-space addresses that no longer resolve because the
# module was unloaded since (the debug kernel has no other modules loaded).
kmemleak_reports() {
	sed -n '/^=== HSMVM KMEMLEAK BEGIN/,/^=== HSMVM KMEMLEAK END/p' "$1" |
	awk '
	function flush() {
		if (blk != "" && blk ~ /hsmcard|[ \t]0xffffffffc[0-9a-f]+/)
			printf "%s", blk
		blk = ""
	}
	/^=== HSMVM/ { flush(); next }
	/^unreferenced object/ { flush() }
	{ blk = blk $0 "\n" }
	END { flush() }'
}

# parse_results RESULTS: prints "pass fail skip" and one line per problem
# on stderr.
parse_results() {
	awk '
	function finish(   missing) {
		if (name == "") return
		if (!ended) {
			printf "  %s: no end marker (guest crashed or hung)\n", name > "/dev/stderr"
			fail++
		} else if (rc != 0 && nfail == 0) {
			printf "  %s: exited with status %d\n", name, rc > "/dev/stderr"
			fail++
		}
		missing = plan - (npass + nfail + nskip)
		if (plan > 0 && missing > 0) {
			printf "  %s: %d planned tests did not report\n", name, missing > "/dev/stderr"
			fail += missing
		}
		name = ""
	}
	/^=== HSMVM TEST .* BEGIN/ {
		finish(); name = $4; ended = 0; rc = 0; plan = 0
		npass = nfail = nskip = 0; next
	}
	/^=== HSMVM TEST .* END rc=/ {
		rc = $6; sub(/rc=/, "", rc); rc += 0; ended = 1; finish(); next
	}
	/^=== HSMVM MODULE rc=1/ { printf "  hsmcard.ko failed to load\n" > "/dev/stderr"; fail++; next }
	/^=== HSMVM DMESG BEGIN/ { finish(); indmesg = 1; next }
	/^=== HSMVM DMESG END/ { indmesg = 0; next }
	/^=== HSMVM DONE/ { done = 1; next }
	indmesg || name == "" { next }
	/^1\.\.[0-9]+/ { plan = substr($1, 4) + 0; next }
	/^not ok [0-9]+/ { nfail++; fail++; printf "  %s: %s\n", name, $0 > "/dev/stderr"; next }
	/^ok [0-9]+.*# *[Ss][Kk][Ii][Pp]/ { nskip++; skip++; next }
	/^ok [0-9]+/ { npass++; pass++; next }
	END {
		finish()
		if (!done) { printf "  guest did not finish\n" > "/dev/stderr"; fail++ }
		printf "%d %d %d\n", pass, fail, skip
	}' "$1"
}

# ---- main ----
# One compound command: bash parses it whole before running it, so editing
# this file while a run is in progress cannot derail that run.
{

QEMU_BIN=$(find_qemu)
if [ -z "$QEMU_BIN" ] || [ ! -x "$QEMU_BIN" ]; then
	die "no QEMU with the hsmcard device (run make qemu, or set QEMU=)"
fi

if [ "$MODE" != test ]; then
	KERNELS=${KERNELS%% *}
	[ -n "$TESTS" ] && echo "run-vm: --test is ignored with --shell/--demo/--run" >&2
fi

mkdir -p "$BUILD" || die "cannot create $BUILD"

qpid=
tpid=
# A guest kernel that dies while it boots, before the driver or our
# scripts ran (no "hsmcard" and no "hsmvm:" line on the console), hit an
# emulator accident, not a result: seen here as an int3 oops in
# sched_clock_cpu under multi-threaded TCG, about once in a hundred boots.
early_crash() {
	grep -a -q -E 'Kernel panic|Oops' "$1" &&
		! grep -a -q -E 'hsmcard|^hsmvm:' "$1"
}

# boot_qemu: QEMU with args[] (its status is this function's), booted once
# more after an early crash, on the card's files as they were before.
boot_qemu() {
	local snap try f rc

	snap=$(mktemp -d "$BUILD/.vm-snap.XXXXXX") || return 1
	for f in "$keystore" "$keystore".*; do
		[ ! -e "$f" ] || cp -p "$f" "$snap/"
	done
	for try in 1 2; do
		timeout -k 10 "$ktimeout" "$QEMU_BIN" "${args[@]}" </dev/null
		rc=$?
		if [ "$try" != 1 ] || ! early_crash "$log"; then
			break
		fi
		echo "run-vm: $kver: the guest kernel died while booting, before the driver loaded (emulator); booting once more"
		cp "$log" "$final_log.early-crash"
		rm -f "$keystore" "$keystore".*
		for f in "$snap"/*; do
			[ ! -e "$f" ] || cp -p "$f" "$(dirname "$keystore")/"
		done
		: >"$res"
	done
	rm -rf "$snap"
	return $rc
}

log=
res=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null
	[ -z "$tpid" ] || kill "$tpid" 2>/dev/null
	[ -z "$log" ] || rm -f "$BUILD"/vm-*.log.$$ "$BUILD"/vm-*.results.$$
}
trap 'cleanup; exit 130' INT TERM
total_pass=0
total_fail=0
summary=

for spec in $KERNELS; do
	kver=$(kernel_version "$spec") || {
		echo "run-vm: no /boot/vmlinuz for kernel $spec" >&2
		total_fail=$((total_fail + 1))
		summary="$summary$spec: 0 passed, 1 failed (kernel not installed)\n"
		continue
	}
	# Per-kernel settings: image, initramfs, time limits, command line.
	kimage=/boot/vmlinuz-$kver
	kdebug=
	ktimeout=$TIMEOUT
	ttimeout=$TEST_TIMEOUT
	if [ "$spec" = 6.12-debug ]; then
		kdebug=$(debug_kernel_dir)
		kimage=$kdebug/bzImage
		ktimeout=$((TIMEOUT * DEBUG_SLOWDOWN))
		ttimeout=$((TEST_TIMEOUT * DEBUG_SLOWDOWN))
	fi
	initrd=$(build_initramfs "$kver" "$kdebug") || {
		echo "run-vm: cannot build the initramfs for $kver" >&2
		total_fail=$((total_fail + 1))
		summary="$summary$kver: 0 passed, 1 failed (no initramfs)\n"
		continue
	}
	[ -f "$BUILD/kmod-$kver/hsmcard.ko" ] ||
		echo "run-vm: warning: $BUILD/kmod-$kver/hsmcard.ko missing (make modules-all)" >&2

	# Runs may overlap (several shells, make -j): each writes its own
	# files and renames them into place when its guest is done.
	final_log=$BUILD/vm-$kver.log
	final_res=$BUILD/vm-$kver.results
	[ "$MODE" = test ] || final_log=$BUILD/vm-$kver-$MODE.log
	[ "$MODE" = test ] || final_res=$BUILD/vm-$kver-$MODE.results
	log=$final_log.$$
	res=$final_res.$$
	rm -f "$log" "$res"

	append="console=ttyS0 panic=-1 oops=panic mitigations=off"
	append="$append hsmvm.top=$TOP hsmvm.build=$BUILD hsmvm.mode=$MODE"
	append="$append hsmvm.tests=${TESTS:-all} hsmvm.timeout=$ttimeout"
	[ "$MODE" = run ] && append="$append hsmvm.script=$SCRIPT"
	[ -z "${HSMVM_WORKDIR:-}" ] || append="$append hsmvm.workdir=$HSMVM_WORKDIR"
	[ "$MODE" = test ] || append="$append quiet"
	if [ -n "$kdebug" ]; then
		# The debug kernel: its /lib/modules (modules.builtin, for
		# modprobe) comes from the cache; see debug_cmdline.
		append="$append hsmvm.moddir=$kdebug/modules/$kver $(debug_cmdline)"
	fi

	args=(-machine q35 -accel tcg -cpu max -smp "$SMP" -m "$MEM"
	      -L /usr/share/seabios -L /usr/share/qemu
	      -nographic -no-reboot -nodefaults
	      -kernel "$kimage" -initrd "$initrd" -append "$append"
	      -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
	      -device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot")
	# A fresh sealed key store per boot: persistent keys and key tokens
	# work, and no state leaks from one run into the next.
	# The card's whole state goes: key store, master key, store
	# generation counter, audit log (and copies of a damaged log the card
	# set aside).  HSMVM_KEYSTORE names
	# a key store to keep instead (the crash-consistency test).
	keystore=$BUILD/vm-$kver-$MODE.keystore
	if [ -n "${HSMVM_KEYSTORE:-}" ]; then
		keystore=$HSMVM_KEYSTORE
	else
		rm -f "$keystore" "$keystore.mk" "$keystore.gen" \
			"$keystore.audit" "$keystore.audit".*
	fi
	[ "$NO_CARD" = 1 ] || args+=(-device "hsmcard,id=hsm0,keystore=$keystore")
	# shellcheck disable=SC2206
	[ -z "$EXTRA_ARGS" ] || args+=($EXTRA_ARGS)

	case "$MODE" in
	shell)
		# shellcheck disable=SC2054 # commas inside one QEMU option
		args+=(-chardev "stdio,id=con,mux=on,signal=off,logfile=$log"
		       -serial chardev:con -mon chardev=con,mode=readline)
		echo "run-vm: booting $kver (shell); Ctrl-A x quits QEMU, log: $final_log"
		"$QEMU_BIN" "${args[@]}"
		rc=$?
		mv -f "$log" "$final_log"
		exit $rc
		;;
	demo|run)
		args+=(-chardev "stdio,id=con,logfile=$log"
		       -serial chardev:con
		       -chardev "file,id=res,path=$res" -serial chardev:res
		       -monitor none)
		echo "run-vm: booting $kver with the card ($MODE; log: $final_log)"
		boot_qemu
		qrc=$?
		tr -d '\r' <"$res" >"$res.tmp" && mv "$res.tmp" "$res"
		rc=0
		grep -q '^=== HSMVM MODULE rc=0' "$res" ||
			{ echo "run-vm: $MODE: hsmcard.ko did not load"; rc=1; }
		grep -q '^=== HSMVM DEMO rc=0' "$res" ||
			{ echo "run-vm: $MODE: failed (QEMU status $qrc)"; rc=1; }
		bad=$(check_kernel_log "$res" "$log")
		[ -z "$bad" ] ||
			{ echo "run-vm: $MODE: kernel log problems:"; kernel_log_reports "$res" "$log"; rc=1; }
		bad=$(kmemleak_reports "$res")
		[ -z "$bad" ] ||
			{ echo "run-vm: $MODE: kmemleak: hsmcard leaks:"; echo "$bad"; rc=1; }
		[ $rc -ne 0 ] || echo "run-vm: $MODE: OK"
		mv -f "$log" "$final_log"
		mv -f "$res" "$final_res"
		exit $rc
		;;
	esac

	if [ "$VERBOSE" = 1 ]; then
		args+=(-chardev "stdio,id=con,logfile=$log" -serial chardev:con)
	else
		args+=(-chardev "file,id=con,path=$log" -serial chardev:con)
	fi
	args+=(-chardev "file,id=res,path=$res" -serial chardev:res -monitor none)

	echo "run-vm: $kver: booting (log: $final_log)"
	start=$(date +%s)
	: >"$res"
	if [ "$VERBOSE" = 1 ]; then
		boot_qemu
		qrc=$?
	else
		boot_qemu &
		qpid=$!
		# Show test verdicts as they arrive.
		tail -n +1 -s 1 -f --pid="$qpid" "$res" 2>/dev/null | sed -u 's/\r$//' |
			grep --line-buffered -E '^(not )?ok [0-9]|^=== HSMVM TEST .* BEGIN|^# Totals' |
			sed -u -e "s/^=== HSMVM TEST \(.*\) BEGIN/  -- \1/" -e 's/^/  /' &
		tpid=$!
		wait "$qpid"
		qrc=$?
		wait "$tpid" 2>/dev/null
		qpid=
		tpid=
	fi
	secs=$(( $(date +%s) - start ))
	tr -d '\r' <"$res" >"$res.tmp" && mv "$res.tmp" "$res"

	problems=$(parse_results "$res" 2>&1 >/dev/null)
	read -r pass fail skip < <(parse_results "$res" 2>/dev/null)
	if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
		problems="$problems${problems:+$'\n'}  guest killed after ${ktimeout}s timeout"
		fail=$((fail + 1))
	elif [ "$qrc" -ne 0 ]; then
		problems="$problems${problems:+$'\n'}  QEMU exited with status $qrc"
		fail=$((fail + 1))
	fi
	bad=$(check_kernel_log "$res" "$log")
	if [ -n "$bad" ]; then
		problems="$problems${problems:+$'\n'}  kernel log problems:"$'\n'"$(kernel_log_reports "$res" "$log" | sed 's/^/    /')"
		fail=$((fail + 1))
	fi
	bad=$(kmemleak_reports "$res")
	if [ -n "$bad" ]; then
		problems="$problems${problems:+$'\n'}  kmemleak: memory leaked by hsmcard:"$'\n'"$(echo "$bad" | head -n 200 | sed 's/^/    /')"
		fail=$((fail + 1))
	fi
	[ -z "$problems" ] || echo "$problems"
	mv -f "$log" "$final_log"
	mv -f "$res" "$final_res"
	echo "$kver: $pass passed, $fail failed ($skip skipped, ${secs}s)"
	summary="$summary$kver: $pass passed, $fail failed\n"
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
done

echo "run-vm: summary"
printf '%b' "$summary" | sed 's/^/  /'
echo "vm: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
exit
}
