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
#    Then attacks on the backup file (format version 2): its clear header
#    edited to widen a key's uses, drop SENSITIVE, change its label or
#    size: card 1 refuses that key (restore exit status 1), the others come
#    back; the intact file restores the key with card 0's exact attributes
#    (deactivated state and times included); a narrowed header (extractable
#    dropped) gives a non-extractable key; a version 1 file (plain blobs,
#    unauthenticated attributes) still restores, with a warning.
# 2. Memory scan: the keys the host made (only the KEK and RFC 5649 blobs
#    are in $HSMCARD_WORKDIR/mem/guest) are unwrapped into card 0 and
#    used; a process holds the positive-control marker; the guest prints
#    DUMP-NOW and waits for the host's dump ($HSMCARD_WORKDIR/dump.done).
#    HSMCARD_WORKDIR is backup-restore.sh's directory for this kernel.
#
# Prints TAP lines and "backup: N passed, N failed".

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
MEMSCAN=$BUILD/selftests/hsm-memscan
DIR=${HSMCARD_WORKDIR:?}
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

# ---- 1b. an edited backup file never widens a key ----
# Format version 2: the attributes restore gives a key come from inside
# its RFC 5649 blob (HSMCARD_WRAP_ATTRS); the clear header may only narrow
# them, and a header that asks for more is refused by card 1 (EACCES,
# restore exit status 1), the key is not created.
for h in $r_aes $r_hmac $r_ec $r_ed $r_rsa; do h1 destroy "$h"; done
narrow=$(h0 keygen -t aes -b 256 -u encrypt,decrypt --extractable \
	--sensitive -l bk-narrow)
h0 key state "$narrow" deactivated >/dev/null
h0 backup --kek "$k0" -o "$tmp/bk2" >/dev/null 2>&1
check "backup 2: format version 2" \
	test "$(od -An -tu4 -j8 -N4 "$tmp/bk2" | tr -d ' ')" = 2
# offset of the record of handle $1 in backup file $2
rec_off() {
	local off=16 cnt i h bl

	cnt=$(od -An -tu4 -j12 -N4 "$2" | tr -d ' ')
	for ((i = 0; i < cnt; i++)); do
		h=$(od -An -tx8 -j$off -N8 "$2" | tr -d ' ')
		if [ "0x$h" = "$1" ]; then
			echo $off
			return 0
		fi
		bl=$(od -An -tu4 -j$((off + 28)) -N4 "$2" | tr -d ' ')
		off=$((off + 136 + bl))	# version 2 record header: 136 bytes
	done
	return 1
}
# put_le32 FILE OFFSET VALUE
# shellcheck disable=SC2059 # the format holds \x escapes only
put_le32() {
	printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($3 & 255)) \
		$((($3 >> 8) & 255)) $((($3 >> 16) & 255)) $((($3 >> 24) & 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
off=$(rec_off "$narrow" "$tmp/bk2")
check "backup 2 holds bk-narrow" test -n "$off"
off=${off:-16}
flags=$(od -An -tu4 -j$((off + 24)) -N4 "$tmp/bk2" | tr -d ' ')
check "its clear header says extractable, sensitive (0x9)" test "$flags" = 9
# attack_restore DESCRIPTION FILE: card 1 must refuse bk-narrow
attack_restore() {
	h1 restore --kek "$k1" "$2" >"$tmp/amap" 2>"$tmp/aerr"
	check "$1: restore exit status 1" test $? -eq 1
	check "$1: card 1 refused the widened attributes" \
		grep -q "0x.*ask for more than the key's authenticated ones" \
		"$tmp/aerr"
	fails "$1: no bk-narrow on card 1" h1 key find --label bk-narrow
	check "$1: the untouched keys were restored" \
		test "$(grep -c -- '->' "$tmp/amap")" -eq 5
	awk '$2 == "->" { print $3 }' "$tmp/amap" | xargs -r "$HSMCTL" -d "$C1" destroy
}
cp "$tmp/bk2" "$tmp/bkA"
put_le32 "$tmp/bkA" $((off + 20)) $((0x33))	# + wrap, unwrap
attack_restore "uses widened in the file" "$tmp/bkA"
cp "$tmp/bk2" "$tmp/bkB"
put_le32 "$tmp/bkB" $((off + 24)) 1		# sensitive dropped
attack_restore "sensitive dropped in the file" "$tmp/bkB"
cp "$tmp/bk2" "$tmp/bkC"
printf 'bk-evil' | dd of="$tmp/bkC" bs=1 seek=$((off + 32)) conv=notrunc status=none
attack_restore "label changed in the file" "$tmp/bkC"
cp "$tmp/bk2" "$tmp/bkD"
put_le32 "$tmp/bkD" $((off + 16)) $((512 << 16 | 1))	# AES-512 (XTS)
attack_restore "size changed in the file" "$tmp/bkD"
cp "$tmp/bk2" "$tmp/bkF"
put_le32 "$tmp/bkF" $((off + 96)) 4			# a 4-byte key ID
printf 'evil' | dd of="$tmp/bkF" bs=1 seek=$((off + 104)) conv=notrunc status=none
attack_restore "key ID set in the file" "$tmp/bkF"

# the intact file: bk-narrow with exactly card 0's attributes
h1 restore --kek "$k1" "$tmp/bk2" >"$tmp/map2" 2>/dev/null
check "intact backup 2 restores (exit status 0)" test $? -eq 0
rn=$(awk -v h="$narrow" '$1 == h && $2 == "->" { print $3 }' "$tmp/map2")
check "bk-narrow restored" test -n "$rn"
h0 attrs "$narrow" | grep -v '^Handle' >"$tmp/a0"
h1 attrs "${rn:-0x0}" | grep -v '^Handle' >"$tmp/a1"
check "bk-narrow on card 1: the same attributes, state and times as on card 0" \
	cmp -s "$tmp/a0" "$tmp/a1"
check "bk-narrow on card 1 is deactivated" grep -q '^State: *deactivated' "$tmp/a1"
fails "bk-narrow on card 1 does not encrypt (deactivated)" \
	h1 encrypt "${rn:-0x0}" -m aes-cbc --iv $iv -i "$tmp/msg" -o "$tmp/ctn"
awk '$2 == "->" { print $3 }' "$tmp/map2" | xargs -r "$HSMCTL" -d "$C1" destroy

# narrowing in the file is honoured: extractable dropped
cp "$tmp/bk2" "$tmp/bkE"
put_le32 "$tmp/bkE" $((off + 24)) 8		# sensitive only
h1 restore --kek "$k1" "$tmp/bkE" >"$tmp/map3" 2>/dev/null
check "a narrowed header restores (exit status 0)" test $? -eq 0
rn=$(awk -v h="$narrow" '$1 == h && $2 == "->" { print $3 }' "$tmp/map3")
check "narrowed bk-narrow is not extractable on card 1" \
	bash -c "'$HSMCTL' -d $C1 attrs ${rn:-0x0} | grep -q '^Flags: *sensitive$'"
awk '$2 == "->" { print $3 }' "$tmp/map3" | xargs -r "$HSMCTL" -d "$C1" destroy

h0 destroy "$narrow"

# a version 1 file (plain blobs) still restores, with a warning
h0 key wrap "$aes" --kek "$k0" -o "$tmp/aes.kwp"
bl=$(stat -c %s "$tmp/aes.kwp")
{
	printf 'HSMCBKP\0'
	printf '\x01\0\0\0\x01\0\0\0'
	head -c 96 /dev/zero
	cat "$tmp/aes.kwp"
} >"$tmp/bkv1"
h=$((aes))
put_le32 "$tmp/bkv1" 16 $((h & 0xffffffff))
put_le32 "$tmp/bkv1" 20 $(((h >> 32) & 0xffffffff))
put_le32 "$tmp/bkv1" 32 $((256 << 16 | 1))		# AES-256
put_le32 "$tmp/bkv1" 36 3				# encrypt, decrypt
put_le32 "$tmp/bkv1" 40 1				# extractable
put_le32 "$tmp/bkv1" 44 "$bl"
printf 'bk-v1' | dd of="$tmp/bkv1" bs=1 seek=48 conv=notrunc status=none
h1 restore --kek "$k1" "$tmp/bkv1" >"$tmp/map4" 2>"$tmp/err4"
check "a version 1 file restores (exit status 0)" test $? -eq 0
check "with the warning that its attributes are not authenticated" \
	grep -q 'format version 1: the key attributes in the file are not authenticated' \
	"$tmp/err4"
rv=$(awk -v h="$aes" '$1 == h && $2 == "->" { print $3 }' "$tmp/map4")
h0 encrypt "$aes" -m aes-cbc --iv $iv -i "$tmp/msg" -o "$tmp/ctv0"
h1 encrypt "${rv:-0x0}" -m aes-cbc --iv $iv -i "$tmp/msg" -o "$tmp/ctv1"
check "the version 1 key encrypts as card 0's" cmp -s "$tmp/ctv0" "$tmp/ctv1"
[ -n "$rv" ] && h1 destroy "$rv"

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
# a deadline, not a number of polls: a loaded TCG guest may take a while
end=$((SECONDS + 60))
while ! grep -q HOLDING "$tmp/hold" && [ $SECONDS -lt $end ] &&
	kill -0 "$hold" 2>/dev/null; do
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
