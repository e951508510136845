#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Guest half of the crash-consistency test, phase 2 (see crash-keys.sh):
# after QEMU was killed, every key whose generation the card acknowledged
# must be there, with its label, and must sign; the signature must verify
# with OpenSSL against the public key exported before the crash (when the
# host saw one).  $BUILD/crash/acks lists them: "<label> <handle> <pem|->".
#
# Prints "CRASH-CHECK ok|FAIL <label> ..." per key and
# "CRASH-SUMMARY <ok> <failed> <keys in the card>"; exit status 0 if all
# were found and usable.

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
tmp=$(mktemp -d)
ok=0
bad=0

head -c 1000 /dev/urandom >"$tmp/msg"
while read -r label handle pem; do
	why=
	attrs=$("$HSMCTL" attrs "$handle" 2>&1) || why="attrs: $attrs"
	if [ -z "$why" ] && ! grep -qx "Label: *$label" <<<"$attrs"; then
		why="label is not $label: $attrs"
	elif [ -z "$why" ] && ! grep -q "^Flags:.*persistent" <<<"$attrs"; then
		why="not persistent: $attrs"
	fi
	if [ -z "$why" ] &&
	   ! "$HSMCTL" sign "$handle" -i "$tmp/msg" -o "$tmp/sig" 2>"$tmp/err"; then
		why="sign: $(cat "$tmp/err")"
	fi
	if [ -z "$why" ]; then
		if [ "$pem" = - ]; then
			"$HSMCTL" pubkey "$handle" >"$tmp/pub.pem" || why="pubkey failed"
		else
			cp "$BUILD/crash/$pem" "$tmp/pub.pem"
		fi
	fi
	if [ -z "$why" ] &&
	   ! openssl dgst -sha256 -verify "$tmp/pub.pem" -signature "$tmp/sig" \
		"$tmp/msg" >/dev/null 2>&1; then
		why="signature does not verify with the public key from before the crash"
	fi
	if [ -z "$why" ]; then
		echo "CRASH-CHECK ok $label $handle"
		ok=$((ok + 1))
	else
		echo "CRASH-CHECK FAIL $label $handle: $why"
		bad=$((bad + 1))
	fi
done <"$BUILD/crash/acks"
total=$("$HSMCTL" keys | grep -c 'crash-')
echo "CRASH-SUMMARY $ok $bad $total"
rm -rf "$tmp"
[ "$bad" -eq 0 ]
