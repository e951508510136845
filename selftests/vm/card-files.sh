# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sourced by the host-driven scripts that read the card's files
# (crash-keys.sh, store-attack.sh): not run on its own.

# gen_counter KS: the counter in KS.gen (le64 at byte 16), printed only if
# KS.gen is the 56-byte format whose HMAC-SHA-256 OpenSSL computes the same
# under HMAC-SHA-256(master key, "hsmcard store generation key v1"), the
# master key read from the 80-byte KS.mk (hw.rst, "Rollback").
gen_counter() {
	local ks=$1 mk gk mac

	[ "$(stat -c %s "$ks.gen" 2>/dev/null)" = 56 ] &&
	[ "$(stat -c %s "$ks.mk" 2>/dev/null)" = 80 ] &&
	[ "$(head -c 8 "$ks.gen")" = HSMKGEN1 ] || return 1
	mk=$(od -An -tx1 -v -j 16 -N 32 "$ks.mk" | tr -d ' \n')
	gk=$(printf %s 'hsmcard store generation key v1' |
	     openssl dgst -sha256 -mac HMAC -macopt "hexkey:$mk" -r | cut -d' ' -f1)
	mac=$(head -c 24 "$ks.gen" |
	      openssl dgst -sha256 -mac HMAC -macopt "hexkey:$gk" -r | cut -d' ' -f1)
	[ "$mac" = "$(od -An -tx1 -v -j 24 -N 32 "$ks.gen" | tr -d ' \n')" ] ||
		return 1
	od -An -t u8 -j 16 -N 8 "$ks.gen" | tr -d ' '
}
