#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Guest half of the key store / audit log attack test (see
# store-attack.sh).  $BUILD/store-attack/mode says what to do:
#
#   create LABEL...  generate a persistent EC P-256 signing key per LABEL,
#                    plus a session key that is destroyed again (audited
#                    actions), and print for each persistent key
#                    "SA-KEY <label> <handle> <base64 of the PEM public key>"
#   check            for each "<label> <handle> <pem>" line of
#                    $BUILD/store-attack/keys: is the key there, with its
#                    label, and does its signature verify with OpenSSL
#                    against the public key exported when it was made?
#                    "SA-CHECK ok|FAIL <label> <handle> [why]"; then the
#                    number of "sa-" keys in the card ("SA-KEYS <n>") and
#                    `hsmctl audit --json --checkpoint`: its exit status
#                    ("SA-AUDIT-RC <rc>"), its problems (stderr,
#                    "SA-AUDIT-ERR <line>"), its LOG_DAMAGED and
#                    KEY_GENERATE records ("SA-AUDIT-DMG <json>",
#                    "SA-AUDIT-GEN <json>"), its verdict
#                    ("SA-AUDIT-VERDICT <json>") and, after the last
#                    LOG_DAMAGED record (or from the start), the number of
#                    records and of verified checkpoints
#                    ("SA-AUDIT-AFTER <records> <verified>").
#
# The host judges the lines; this script fails only if it cannot run.

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
dir=$BUILD/store-attack
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

read -r mode labels <"$dir/mode" || { echo "SA-ERROR no mode"; exit 1; }

create() {
	local label h pem s

	for label in "$@"; do
		h=$("$HSMCTL" keygen -t ec -c p256 -u sign,verify --persistent \
			-l "$label") || { echo "SA-ERROR keygen $label"; return 1; }
		pem=$("$HSMCTL" pubkey "$h") ||
			{ echo "SA-ERROR pubkey $label"; return 1; }
		echo "SA-KEY $label $h $(printf '%s\n' "$pem" | base64 -w0)"
	done
	# more audited actions: a session key made and destroyed
	s=$("$HSMCTL" keygen -t ec -c p256 -u sign,verify -l sa-session) ||
		{ echo "SA-ERROR session keygen"; return 1; }
	"$HSMCTL" destroy "$s" || { echo "SA-ERROR destroy $s"; return 1; }
	echo "SA-CREATED"
}

check() {
	local label handle pem why rc

	head -c 1000 /dev/urandom >"$tmp/msg"
	while read -r label handle pem; do
		why=
		attrs=$("$HSMCTL" attrs "$handle" 2>&1) || why="attrs: $attrs"
		if [ -z "$why" ] && ! grep -qx "Label: *$label" <<<"$attrs"; then
			why="label is not $label"
		fi
		if [ -z "$why" ] &&
		   ! "$HSMCTL" sign "$handle" -i "$tmp/msg" -o "$tmp/sig" \
			2>"$tmp/err"; then
			why="sign: $(cat "$tmp/err")"
		fi
		if [ -z "$why" ] &&
		   ! openssl dgst -sha256 -verify "$dir/$pem" \
			-signature "$tmp/sig" "$tmp/msg" >/dev/null 2>&1; then
			why="signature does not verify with the exported public key"
		fi
		if [ -z "$why" ]; then
			echo "SA-CHECK ok $label $handle"
		else
			echo "SA-CHECK FAIL $label $handle $(tr '\n' ' ' <<<"$why")"
		fi
	done <"$dir/keys"
	echo "SA-KEYS $("$HSMCTL" keys | grep -c ' sa-[0-9]')"

	"$HSMCTL" audit --json --checkpoint >"$tmp/audit" 2>"$tmp/audit.err"
	rc=$?
	echo "SA-AUDIT-RC $rc"
	sed 's/^/SA-AUDIT-ERR /' "$tmp/audit.err"
	grep '"event": *"log_damaged"' "$tmp/audit" | sed 's/^/SA-AUDIT-DMG /'
	grep '"event": *"key_generate"' "$tmp/audit" | sed 's/^/SA-AUDIT-GEN /'
	grep '"verdict":' "$tmp/audit" | sed 's/^/SA-AUDIT-VERDICT /'
	awk '/"event": *"log_damaged"/ { n = 0; v = 0; next }
	     /"verdict":/ { next }
	     { n++ } /"signature": *"verified"/ { v++ }
	     END { print "SA-AUDIT-AFTER", n + 0, v + 0 }' "$tmp/audit"
	echo "SA-CHECKED"
}

case "$mode" in
create)
	# shellcheck disable=SC2086 # a list of labels
	create $labels
	;;
check)
	check
	;;
*)
	echo "SA-ERROR unknown mode $mode"
	exit 1
	;;
esac
