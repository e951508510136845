#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Host side of `make bench`: put the full-stack figures of hsm-bench (from
# the guest's console output) beside the firmware core's raw rate (from
# hsm-bench-engine) and print the two ratios of
# Documentation/hsmcard/bench.rst with the targets of the rings work.
#
#   bench-report.sh [--workers N] ENGINE_OUTPUT GUEST_OUTPUT
#
# ENGINE_OUTPUT: what `hsm-bench-engine --threads N` printed (thread counts
# 1..N); GUEST_OUTPUT: the console output holding the hsm-bench table
# between "=== HSM-BENCH BEGIN" and "=== HSM-BENCH END".  --workers N is the
# card's QEMU worker-thread count (hsmcard workers=, default 2): the raw
# rate compared with is the engine's at N threads.
#
# Exit status: 0 when every operation of the guest table has its engine
# figure, 1 when either input lacks data, 2 on usage errors.  A missed
# target is reported, not an error.

set -u

workers=2
if [ "${1:-}" = --workers ]; then
	workers=${2:-}
	shift 2 || true
fi
case "$workers" in
''|*[!0-9]*) echo "usage: $0 [--workers N] ENGINE_OUTPUT GUEST_OUTPUT" >&2; exit 2 ;;
esac
if [ $# -ne 2 ] || [ ! -r "$1" ] || [ ! -r "$2" ]; then
	echo "usage: $0 [--workers N] ENGINE_OUTPUT GUEST_OUTPUT" >&2
	exit 2
fi

awk -v workers="$workers" '
# Rows of either table, with carriage returns of the serial console gone.
{ sub(/\r$/, "") }
FNR == 1 { file++ }

# Host load lines written by `make bench`, shown as they are.
/^# host / { hostinfo = hostinfo $0 "\n"; next }

# hsm-bench-engine: operation threads core openssl ratio cpu-ratio
file == 1 && NF >= 6 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9.]+$/ {
	eng[$1, $2 + 0] = $3 + 0
	next
}

# hsm-bench: operation path batch depth ops/s p50 p99 errors checks
file == 2 && /^=== HSM-BENCH BEGIN/ { inside = 1; next }
file == 2 && /^=== HSM-BENCH END/ { inside = 0; next }
file == 2 && inside && NF >= 9 && ($2 == "ioctl" || $2 == "ring") &&
    $5 ~ /^[0-9.]+$/ {
	op = $1
	if (!(op in seen)) { seen[op] = 1; order[nops++] = op }
	rate = $5 + 0
	if ($2 == "ioctl") {
		ioctl[op] = rate
	} else {
		if (rate > best[op]) { best[op] = rate; bestat[op] = $3 "x" $4 }
		if ($3 + 0 >= 64 && rate > best64[op]) best64[op] = rate
	}
	if ($8 + 0 > 0) errs[op] += $8
	next
}

function ratio(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
function num(v) { return v > 0 ? sprintf("%.0f", v) : "-" }

END {
	if (!nops) {
		print "bench-report: no hsm-bench rows in the guest output" > "/dev/stderr"
		exit 1
	}
	printf "\n# hsmcard full stack (hsm-bench, 6.12 guest under TCG) vs raw firmware core (hsm-bench-engine, host)\n"
	printf "# engine = core ops/s at %d thread(s), matching the card'"'"'s QEMU workers=%d; engine-1t = at 1 thread\n", workers, workers
	printf "# ring = best ring point (batch x depth); ring/ioctl = batched / per-op; stack/engine = ring / engine\n"
	printf "%s", hostinfo
	printf "%-24s %11s %11s %9s %11s %11s %10s %12s\n", "operation", "ioctl ops/s",
	       "ring ops/s", "at", "engine", "engine-1t", "ring/ioctl", "stack/engine"
	missing = 0
	for (i = 0; i < nops; i++) {
		op = order[i]
		e = eng[op, workers]
		if (!(e > 0)) missing++
		if (workers > 1 && e > 0 && e < eng[op, 1]) {
			contended = contended " " op
			busy[op] = 1
		}
		printf "%-24s %11s %11s %9s %11s %11s %10s %12s%s\n", op,
		       num(ioctl[op]), num(best[op]), (bestat[op] == "" ? "-" : bestat[op]),
		       num(e), num(eng[op, 1]), ratio(best[op], ioctl[op]),
		       ratio(best[op], e), (errs[op] ? "  (" errs[op] " errors)" : "")
	}
	if (contended != "")
		printf "# warning: engine slower at %d threads than at 1 for%s: the host CPUs were contended, stack/engine is not reliable\n", workers, contended
	printf "\n# targets (Documentation/hsmcard/bench.rst)\n"
	target("rsa2048-sign-sha256", "stack/engine at batch >= 64", best64["rsa2048-sign-sha256"],
	       eng["rsa2048-sign-sha256", workers], 0.95, busy["rsa2048-sign-sha256"])
	target("ecdsa-p256-sign-sha256", "stack/engine at batch >= 64", best64["ecdsa-p256-sign-sha256"],
	       eng["ecdsa-p256-sign-sha256", workers], 0.85, busy["ecdsa-p256-sign-sha256"])
	target("aes256-gcm-enc-64", "ring/ioctl", best["aes256-gcm-enc-64"],
	       ioctl["aes256-gcm-enc-64"], 20, 0)
	if (missing) {
		printf "bench-report: %d operation(s) without an engine figure at %d thread(s)\n", missing, workers > "/dev/stderr"
		exit 1
	}
}

# unsure: the engine figure is not trustworthy (see the warning above).
function target(op, what, a, b, want, unsure,   r, verdict) {
	if (!(op in seen)) {
		printf "%-24s %-28s not measured\n", op, what
		return
	}
	if (!(a > 0) || !(b > 0)) {
		printf "%-24s %-28s no data\n", op, what
		return
	}
	r = a / b
	verdict = (r >= want) ? "met" : "MISSED"
	if (unsure)
		verdict = "not judged: engine figure contended"
	printf "%-24s %-28s %8.3f  (target >= %s) %s\n", op, what, r, want, verdict
}
' "$1" "$2"
