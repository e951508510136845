#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Guest half of backup-restore.sh, in a guest with two cards, each with its
# own key store.
#
# 1. Two-card restore: the same KEK is imported on both cards in a key
#    ceremony (persistent clear import, wrap/unwrap uses only); keys made
#    on card 0 are backed up with hsmctl, restored on card 1, and card 1's
#    restored keys must give what card 0's give: signatures that verify
#    (OpenSSL) with card 0's public keys, the same AES ciphertext and HMAC.
# 2. Memory scan: the keys the host made (only the KEK and RFC 5649 blobs
#    are in $HSMCARD_BUILD/backup/mem/guest) are unwrapped into card 0 and
#    used; a process holds the positive-control marker; the guest prints
#    DUMP-NOW and waits for the host's dump ($HSMCARD_BUILD/backup/dump.done).
#
# Prints TAP lines and "backup: N passed, N failed".

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
MEMSCAN=$BUILD/selftests/hsm-memscan
DIR=$BUILD/backup
C0=/dev/hsmcard0
C1=/dev/hsmcard1
n=0
fails=0

ok() { n=$((n + 1)); echo "ok $n $*"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $*"; }
check() {
	local desc=$1

	shift
	if "$@"; then ok "$desc"; else nok "$desc"; fi
}
# fails DESCRIPTION COMMAND...: the command must fail
fails() {
	local desc=$1

	shift
	if "$@"; then nok "$desc"; else ok "$desc"; fi
}
h0() { "$HSMCTL" -d "$C0" "$@"; }
h1() { "$HSMCTL" -d "$C1" "$@"; }
finish() {
	echo "backup: $((n - fails)) passed, $fails failed"
	exit $((fails > 0))
}

tmp=$(mktemp -d)
if [ ! -c "$C0" ] || [ ! -c "$C1" ]; then
	nok "two cards: $(echo /dev/hsmcard*)"
	finish
fi
ok "two cards"

# ---- 1. key ceremony: the same KEK on both cards ----
head -c 32 /dev/urandom >"$tmp/kek"
k0=$(h0 import -t aes -u wrap,unwrap --persistent -l kek -i "$tmp/kek")
k1=$(h1 import -t aes -u unwrap --persistent -l kek -i "$tmp/kek")
check "KEK imported on both cards (persistent)" test -n "$k0" -a -n "$k1"
check "card 0's KEK is persistent, not a session key" \
	bash -c "'$HSMCTL' -d $C0 attrs $k0 | grep -q '^Flags: *persistent$'"
fails "a persistent clear import of a data key is refused" \
	h0 import -t aes -u encrypt,decrypt --persistent -i "$tmp/kek"
fails "a persistent clear import of an extractable KEK is refused" \
	h0 import -t aes -u wrap --extractable --persistent -i "$tmp/kek"
# wipe the guest's copy: from here on the KEK is only in the cards
shred -u "$tmp/kek" 2>/dev/null || rm -f "$tmp/kek"

# ---- keys on card 0 ----
aes=$(h0 keygen -t aes -b 256 --extractable -l bk-aes)
hmac=$(h0 keygen -t hmac --extractable -l bk-hmac)
ec=$(h0 keygen -t ec --extractable -l bk-ec)
ed=$(h0 keygen -t ed25519 --extractable -l bk-ed)
rsa=$(h0 keygen -t rsa -b 2048 --extractable -l bk-rsa)
ne=$(h0 keygen -t aes -l bk-secret)
check "six keys made on card 0" test -n "$aes" -a -n "$hmac" -a -n "$ec" \
	-a -n "$ed" -a -n "$rsa" -a -n "$ne"

h0 backup --kek "$k0" -o "$tmp/bk" >"$tmp/bk.out" 2>"$tmp/bk.err"
rc=$?
check "backup: exit status 1 (a key was skipped)" test $rc -eq 1
check "backup: the non-extractable key is named as skipped" \
	grep -q "skipped $ne .*not extractable" "$tmp/bk.err"
check "backup: 5 keys saved" grep -q '^5 keys saved' "$tmp/bk.out"

h1 restore --kek "$k1" "$tmp/bk" >"$tmp/map" 2>"$tmp/restore.err"
check "restore on card 1" test $? -eq 0
cat "$tmp/map" "$tmp/restore.err"
new() { awk -v h="$1" '$1 == h && $2 == "->" { print $3 }' "$tmp/map"; }
r_aes=$(new "$aes"); r_hmac=$(new "$hmac"); r_ec=$(new "$ec")
r_ed=$(new "$ed"); r_rsa=$(new "$rsa")
check "every extractable key is on card 1" test -n "$r_aes" -a -n "$r_hmac" \
	-a -n "$r_ec" -a -n "$r_ed" -a -n "$r_rsa"
check "the non-extractable key is not" test -z "$(new "$ne")"
h1 backup --kek "$k1" -o "$tmp/bk1" >/dev/null 2>&1
check "card 1's unwrap-only KEK cannot make a backup (exit status 3)" \
	test $? -eq 3

head -c 4096 /dev/urandom >"$tmp/msg"
iv=000102030405060708090a0b0c0d0e0f
h0 encrypt "$aes" -m aes-cbc --iv $iv -i "$tmp/msg" -o "$tmp/ct0"
h1 encrypt "$r_aes" -m aes-cbc --iv $iv -i "$tmp/msg" -o "$tmp/ct1"
check "AES: card 1's ciphertext equals card 0's" \
	cmp -s "$tmp/ct0" "$tmp/ct1"
check "AES: and it is not the plaintext" test -s "$tmp/ct0" -a \
	"$(cmp -s "$tmp/ct0" "$tmp/msg"; echo $?)" = 1
h0 mac "$hmac" -i "$tmp/msg" -o "$tmp/mac0"
h1 mac "$r_hmac" -i "$tmp/msg" -o "$tmp/mac1"
check "HMAC: card 1's equals card 0's" cmp -s "$tmp/mac0" "$tmp/mac1"

# shellcheck disable=SC2317 # called through $verify
verify_ed() {
	openssl pkeyutl -verify -pubin -inkey "$1" -rawin -in "$2" \
		-sigfile "$3" >/dev/null 2>&1
}
# shellcheck disable=SC2317
verify_sha256() {
	openssl dgst -sha256 -verify "$1" -signature "$3" "$2" >/dev/null 2>&1
}
{ cat "$tmp/msg"; printf x; } >"$tmp/msg2"
for pair in "ec $ec $r_ec" "ed $ed $r_ed" "rsa $rsa $r_rsa"; do
	read -r t h r <<<"$pair"
	verify=verify_sha256
	[ "$t" = ed ] && verify=verify_ed
	h0 pubkey "$h" -o "$tmp/$t.pub"
	h1 sign "$r" -i "$tmp/msg" -o "$tmp/$t.sig"
	check "$t: card 1's signature verifies with card 0's public key (OpenSSL)" \
		$verify "$tmp/$t.pub" "$tmp/msg" "$tmp/$t.sig"
	fails "$t: and not for another message" \
		$verify "$tmp/$t.pub" "$tmp/msg2" "$tmp/$t.sig"
done

# ---- 2. memory scan: keys from the host, used, then dumped ----
MEM=$DIR/mem/guest
kek=$(h0 import -t aes -u unwrap -l mem-kek -i "$MEM/kek.bin")
check "memory scan: the host's KEK imported" test -n "$kek"
head -c 32 /dev/urandom >"$tmp/m32"
used=0
while read -r name type; do
	h=$(h0 key unwrap --kek "$kek" --type "$type" -l "mem-$name" \
		"$MEM/$name.blob")
	if [ -z "$h" ]; then
		nok "memory scan: unwrap $name"
		continue
	fi
	case "$type" in
	aes) h0 encrypt "$h" -m aes-cbc --iv $iv -i "$tmp/m32" -o "$tmp/o" ;;
	hmac) h0 mac "$h" -i "$tmp/m32" -o "$tmp/o" ;;
	*) h0 sign "$h" -i "$tmp/m32" -o "$tmp/o" ;;
	esac && used=$((used + 1))
done <"$MEM/keys"
check "memory scan: 4 keys unwrapped and used" test $used -eq 4

"$MEMSCAN" hold >"$tmp/hold" &
hold=$!
for _ in $(seq 50); do
	grep -q HOLDING "$tmp/hold" && break
	sleep 0.1
done
check "memory scan: the marker is held" grep -q HOLDING "$tmp/hold"
echo "DUMP-NOW"
for _ in $(seq 600); do
	[ -e "$DIR/dump.done" ] && break
	sleep 0.5
done
check "memory scan: the host took its dump" test -e "$DIR/dump.done"
kill "$hold"
wait "$hold"
rm -rf "$tmp"
finish
