#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Guest half of the crash-consistency test, phase 1 (see crash-keys.sh):
# generate persistent EC P-256 keys in a loop and report each one the card
# acknowledged, then its public key.  The host kills QEMU while this runs.
#
# Console lines, in this order for each key:
#   CRASH-ACK <round> <n> <handle>        hsmctl keygen returned the handle
#   CRASH-PUB <round> <n> <base64 of the PEM public key>

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
ROUND=$(cat "$BUILD/crash/round")

n=0
while :; do
	n=$((n + 1))
	h=$("$HSMCTL" keygen -t ec -c p256 -u sign,verify --persistent \
		-l "crash-$ROUND-$n") || { echo "CRASH-ERROR keygen $n failed"; exit 1; }
	echo "CRASH-ACK $ROUND $n $h"
	pem=$("$HSMCTL" pubkey "$h") || { echo "CRASH-ERROR pubkey $h failed"; exit 1; }
	echo "CRASH-PUB $ROUND $n $(printf '%s\n' "$pem" | base64 -w0)"
done
