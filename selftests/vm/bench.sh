#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Full-stack benchmark of the card, run inside the test guest by
# `make bench` (selftests/vm/run-vm.sh --run selftests/vm/bench.sh) after
# the driver has been loaded.
#
# Runs $BUILD/tools/hsm-bench (one-shot ioctl path and command rings, see
# Documentation/hsmcard/bench.rst) and prints its table between the lines
# "=== HSM-BENCH BEGIN" and "=== HSM-BENCH END", which
# selftests/vm/bench-report.sh reads from the console log.  A short second
# run checks that --json produces valid JSON.
#
# Options for hsm-bench come from $BUILD/bench-args (one line, written by
# `make bench`; the guest sees the host's file system read-only) or, when
# run by hand, from HSM_BENCH_ARGS.  Exit status: hsm-bench's (non-zero on
# any failed job or output check), or 1 if the JSON check fails.

set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-${HSMCARD_BUILD:-$here/../../build}}
BENCH=${HSM_BENCH:-$BUILD/tools/hsm-bench}
ARGS=${HSM_BENCH_ARGS:-}
if [ -z "$ARGS" ] && [ -r "$BUILD/bench-args" ]; then
	read -r ARGS <"$BUILD/bench-args"
fi

echo "== kernel $(uname -r), $(nproc) vCPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
if [ ! -x "$BENCH" ]; then
	echo "bench: $BENCH not built (make user)"
	exit 1
fi

echo "=== HSM-BENCH BEGIN"
# shellcheck disable=SC2086 # ARGS is a list of options
"$BENCH" $ARGS
rc=$?
echo "=== HSM-BENCH END rc=$rc"

# --json: a small run, parsed by Python's json module.
json=$("$BENCH" --json --ops hmac-sha256-32 --batches 8 --depths 1 \
	--seconds 0.2 --warmup 0)
jrc=$?
if echo "$json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
pts = d["points"]
assert d["ok"] and d["errors"] == 0 and len(pts) == 2, d
assert {p["path"] for p in pts} == {"ioctl", "ring"}, pts
assert all(p["ops_per_s"] > 0 and p["checked"] > 0 for p in pts), pts
'; then
	echo "bench: --json output ok (rc=$jrc)"
else
	echo "bench: --json output INVALID (rc=$jrc):"
	echo "$json"
	[ "$rc" -ne 0 ] || rc=1
fi
[ "$jrc" -eq 0 ] || [ "$rc" -ne 0 ] || rc=$jrc
exit "$rc"
