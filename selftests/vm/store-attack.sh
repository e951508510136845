#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Attacks on the card's files (issue 6 item 8): edit, truncate, reorder or
# roll back the sealed key store, and edit, truncate, reorder or cut the
# audit log; the card must notice.
#
# Two boots on a fresh key store (HSMVM_KEYSTORE) create persistent signing
# keys sa-1, sa-2 (first boot) and sa-3 (second boot), with audited
# actions around them, and export their public keys; the files after the
# second boot are the pristine copy.  Then, each time starting from the
# pristine copy, one file is damaged and QEMU started on it:
#
# key store (store, its .mk, .gen and .audit otherwise untouched):
#   flip a byte in the middle; cut it to half; cut its last byte; swap two
#   16-byte blocks of the sealed part: QEMU must refuse to start, with a
#   message that names the store and says why, without running the guest
#   (so no key of the store can be used) and without touching the files;
#   roll it back to the copy from before sa-3 was made (its .mk and .gen
#   left as they are): QEMU must refuse to start the same way, the message
#   naming the store's generation and the one the .gen file's counter
#   expects (both read from the files here, the counter's MAC verified
#   with OpenSSL under the master key);
# counter file (.gen): flip a bit of its counter; delete it: QEMU must
#   refuse to start, naming the .gen file, files untouched; the store
#   deleted next to its .gen: refused the same way, naming the store;
# master key file: the second boot (which saves the store again) leaves
#   the .mk file as the first boot wrote it (same bytes and modification
#   time);
# audit log (store untouched):
#   flip a byte of a middle record (reason 4, chain broken); cut the last
#   record by a few bytes (2, torn); swap two middle records (3, reorder);
#   delete a middle record (3, gap): the card must start with every key,
#   the log must hold the untouched prefix and then one LOG_DAMAGED record
#   with that reason and the first lost seq, `hsmctl audit` must report
#   exactly that record and the DAMAGED flag, the damaged file must be kept
#   byte for byte as <keystore>.audit.damaged.<seq>, and the log after the
#   LOG_DAMAGED record must carry a verified checkpoint;
# control: the pristine files boot, every key signs (verified with OpenSSL
#   against the public key exported at creation) and `hsmctl audit` exits 0;
# drop-tail: the log's records after its last checkpoint cut off after a
#   clean stop must show as reason 6 (the card sealed the log's head into
#   the key store when QEMU exited).
#
# With several kernels (--kernel "6.1 6.12", as make check runs it) the
# boots take them in turn: the keys are made under one and attacked under
# the other, and the attacks alternate between them.  The refusals of
# edited key stores happen before any kernel boots.
#
# Usage: store-attack.sh [--kernel "K..."]
# Environment: BUILD, QEMU (as for run-vm.sh).
# Prints one TAP-like line per check and, last,
# "store-attack: N passed, N failed".

set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNEL=6.12
export TOP BUILD

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift ;;
	-h|--help) sed -n '3,54p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "store-attack: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
read -r -a kernels <<<"$KERNEL"
[ ${#kernels[@]} -gt 0 ] || { echo "store-attack: no kernel" >&2; exit 2; }
nboot=0

dir=$BUILD/store-attack
ks=$dir/card.keystore
pristine=$dir/pristine
REC=256			# audit record size (hw.rst, "Audit log")
KS_HDR=52		# key store header before the sealed part (version 6)
KS_TAG=16		# GCM tag after it
EV_CHECKPOINT=3
EV_LOG_DAMAGED=4
pass=0
fail=0
rm -rf "$dir"
mkdir -p "$dir" "$pristine" || exit 2
export HSMVM_KEYSTORE=$ks

result() {
	if [ "$1" = ok ]; then
		pass=$((pass + 1))
		echo "ok $((pass + fail)) $2"
	else
		fail=$((fail + 1))
		echo "not ok $((pass + fail)) $2"
	fi
}

# boot NAME MODE...: write the guest's mode, boot the next kernel of the
# list, leave the console (and QEMU's messages) without CRs in
# $dir/NAME.log; sets brc (run-vm.sh's status) and bsecs (the seconds the
# boot took and its kernel).
boot() {
	local name=$1 t0=$SECONDS k=${kernels[$((nboot % ${#kernels[@]}))]}

	shift
	nboot=$((nboot + 1))
	echo "$*" >"$dir/mode"
	"$TOP/selftests/vm/run-vm.sh" --kernels "$k" --timeout 300 \
		--run selftests/vm/store-attack/guest.sh >"$dir/$name.out" 2>&1
	brc=$?
	bsecs="$((SECONDS - t0))s, $k"
	tr -d '\r' <"$dir/$name.out" >"$dir/$name.log"
}

# files to the pristine copy (FILE... are the variants to use instead)
restore() {
	rm -f "$ks.audit".damaged.*
	cp "$pristine/keystore" "$ks"
	cp "$pristine/keystore.mk" "$ks.mk"
	cp "$pristine/keystore.gen" "$ks.gen"
	cp "$pristine/keystore.audit" "$ks.audit"
}

u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
u16() { od -An -t u2 -j "$2" -N 2 "$1" | tr -d ' '; }

# gen_counter KS: the store generation counter of KS (card-files.sh)
# shellcheck source=selftests/vm/card-files.sh
. "$TOP/selftests/vm/card-files.sh"

# flip FILE OFFSET: invert every bit of one byte
flip() {
	local b

	b=$(od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059 # the format is the byte
	printf "\\x$(printf %02x $((b ^ 0xff)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# swap FILE OFF1 OFF2 LEN: exchange two non-overlapping blocks
swap() {
	dd if="$1" of="$dir/blk1" bs=1 skip="$2" count="$4" status=none
	dd if="$1" of="$dir/blk2" bs=1 skip="$3" count="$4" status=none
	dd if="$dir/blk2" of="$1" bs=1 seek="$2" conv=notrunc status=none
	dd if="$dir/blk1" of="$1" bs=1 seek="$3" conv=notrunc status=none
}

# json_num LINE KEY: a number or "0x..." string field of a JSON line
json_field() {
	sed -n "s/.*\"$2\": *\"\{0,1\}\([0-9a-fx]*\)\"\{0,1\}[,}].*/\1/p" <<<"$1"
}

# ---- 1. the keys ----
: >"$dir/keys"
# record_keys LOG: public keys and handles of the SA-KEY lines
record_keys() {
	local label h b64

	while read -r _ label h b64; do
		echo "$b64" | base64 -d >"$dir/$label.pem"
		echo "$label $h $label.pem" >>"$dir/keys"
	done < <(grep '^SA-KEY ' "$1")
}

boot create1 create sa-1 sa-2
record_keys "$dir/create1.log"
if [ $brc -ne 0 ] || ! grep -q '^SA-CREATED' "$dir/create1.log" ||
   [ "$(wc -l <"$dir/keys")" -ne 2 ]; then
	result fail "first boot: keys sa-1, sa-2 not created (see $dir/create1.log)"
	echo "store-attack: $pass passed, $fail failed"
	exit 1
fi
cp "$ks" "$dir/keystore.before-sa-3"
mk_first="$(stat -c %y "$ks.mk") $(sha256sum <"$ks.mk" | cut -c1-16)"
boot create2 create sa-3
record_keys "$dir/create2.log"
if [ $brc -ne 0 ] || ! grep -q '^SA-CREATED' "$dir/create2.log" ||
   [ "$(wc -l <"$dir/keys")" -ne 3 ]; then
	result fail "second boot: key sa-3 not created (see $dir/create2.log)"
	echo "store-attack: $pass passed, $fail failed"
	exit 1
fi
cp "$ks" "$pristine/keystore"
cp "$ks.mk" "$pristine/keystore.mk"
cp "$ks.gen" "$pristine/keystore.gen"
cp "$ks.audit" "$pristine/keystore.audit"
nrec=$(( $(stat -c %s "$ks.audit") / REC ))
result ok "two boots made sa-1, sa-2, sa-3 ($(stat -c %s "$ks")-byte store, $nrec audit records; second boot ${bsecs})"
mk_now="$(stat -c %y "$ks.mk") $(sha256sum <"$ks.mk" | cut -c1-16)"
g_first=$(u64 "$dir/keystore.before-sa-3" 44)
g_now=$(u64 "$ks" 44)
if [ "$mk_now" = "$mk_first" ] && [ -n "$g_first" ] && [ -n "$g_now" ] &&
   [ "$g_now" -gt "$g_first" ]; then
	result ok "master key file written once: the second boot moved the store from generation $g_first to $g_now and left the .mk file as the first boot wrote it"
else
	result fail "master key file rewritten by the second boot (mtime and SHA-256 after the first $mk_first, now $mk_now; store generations ${g_first:-?} -> ${g_now:-?})"
fi

# keys_ok LOG WANT: every key of $dir/keys checked "ok" in LOG except the
# labels in WANT, which must be "FAIL"; the card holds exactly the ok ones
keys_ok() {
	local label state n=0 bad=

	while read -r label _; do
		state=$(grep "^SA-CHECK [a-zA-Z]* $label " "$1" | cut -d' ' -f2)
		if [[ " $2 " == *" $label "* ]]; then
			[ "$state" = FAIL ] || bad="$bad $label:${state:-no-line}(wanted FAIL)"
		else
			n=$((n + 1))
			[ "$state" = ok ] || bad="$bad $label:${state:-no-line}"
		fi
	done <"$dir/keys"
	grep -qx "SA-KEYS $n" "$1" ||
		bad="$bad keys-in-card:$(grep '^SA-KEYS' "$1" | cut -d' ' -f2)(wanted $n)"
	grep -q '^SA-CHECKED' "$1" || bad="$bad guest-check-did-not-finish"
	[ -z "$bad" ] || echo "$bad"
}

# ---- 2. control ----
restore
boot control check
why=$(keys_ok "$dir/control.log" "")
arc=$(sed -n 's/^SA-AUDIT-RC //p' "$dir/control.log")
if [ $brc -eq 0 ] && [ -z "$why" ] && [ "$arc" = 0 ] &&
   ! grep -q '^SA-AUDIT-DMG' "$dir/control.log" &&
   grep -q '^SA-AUDIT-VERDICT .*"card_damaged": *false' "$dir/control.log"; then
	result ok "control: pristine files boot, sa-1..3 sign (OpenSSL verifies), hsmctl audit exits 0 (${bsecs})"
else
	result fail "control: run-vm $brc,$why, audit exit ${arc:-none} (see $dir/control.log)"
fi

# ---- 3. the key store ----
# sum_or_missing FILE: its SHA-256, or "missing"
sum_or_missing() {
	if [ -e "$1" ]; then sha256sum <"$1"; else echo missing; fi
}

# store_refused NAME MESSAGE [FILE]: QEMU refused to start on the damaged
# store (or the damaged FILE of the card: the message names it)
store_refused() {
	local name=$1 path=${3:-$ks} want sum_ks sum_au sum_mk sum_gen

	want="hsmcard: key store $path: $2"
	sum_ks=$(sum_or_missing "$ks")
	sum_mk=$(sha256sum <"$ks.mk")
	sum_gen=$(sum_or_missing "$ks.gen")
	sum_au=$(sha256sum <"$ks.audit")
	boot "$name" check
	if [ $brc -ne 0 ] && grep -qF "$want" "$dir/$name.log" &&
	   ! grep -q '^SA-' "$dir/$name.log" &&
	   [ "$(sum_or_missing "$ks")" = "$sum_ks" ] &&
	   [ "$(sha256sum <"$ks.mk")" = "$sum_mk" ] &&
	   [ "$(sum_or_missing "$ks.gen")" = "$sum_gen" ] &&
	   [ "$(sha256sum <"$ks.audit")" = "$sum_au" ] &&
	   ! ls "$ks.audit".damaged.* >/dev/null 2>&1; then
		result ok "key store $name: QEMU refuses to start: \"$(grep -oF "key store $path: $2" "$dir/$name.log" | head -n1 | sed "s|$dir/||")\"; guest never ran, files untouched (${bsecs})"
	else
		grep -i 'hsmcard\|qemu' "$dir/$name.log" | head -n 5
		result fail "key store $name: wanted QEMU to refuse with \"$want\" and leave the files alone (run-vm $brc; see $dir/$name.log)"
	fi
}

size=$(stat -c %s "$pristine/keystore")
restore
flip "$ks" $((size / 2))
store_refused flip-middle "authentication failed (edited, torn or wrong master key)"

restore
truncate -s $((size / 2)) "$ks"
store_refused truncate-half "bad version or length (torn file?)"

restore
truncate -s $((size - 1)) "$ks"
store_refused truncate-1 "bad version or length (torn file?)"

# two blocks of the sealed part (after the header, before the tag)
restore
b1=$((KS_HDR + 16))
b2=$((KS_HDR + ((size - KS_HDR - KS_TAG) / 32) * 16))
swap "$ks" $b1 $b2 16
if cmp -s "$ks" "$pristine/keystore"; then
	result fail "key store swap: blocks at $b1 and $b2 are equal, nothing swapped"
else
	store_refused swap-blocks "authentication failed (edited, torn or wrong master key)"
fi

# Rollback: the store from before sa-3 with today's .mk, .gen and log.
# The store's generation (le64 at byte 44) is below the counter of the .gen
# file (le64 at byte 16, its MAC verified): QEMU must refuse to start and
# say so.
restore
cp "$dir/keystore.before-sa-3" "$ks"
old_gen=$(u64 "$ks" 44)
mk_gen=$(gen_counter "$ks")
if [ -z "$mk_gen" ] || [ -z "$old_gen" ] || [ "$old_gen" -ge "$mk_gen" ]; then
	result fail "key store rollback: the older store's generation ${old_gen:-?} is not below the .gen counter ${mk_gen:-? (missing, malformed or its MAC fails)}"
else
	store_refused rollback "rolled back: generation $old_gen, expected $mk_gen (an older copy of the store)"
fi

# The counter file: a bit of the counter flipped (its MAC no longer
# verifies), and the file deleted next to the store.
restore
flip "$ks.gen" 16
if gen_counter "$ks" >/dev/null; then
	result fail "counter file flip: OpenSSL still verifies the edited .gen file"
else
	store_refused gen-flip "store generation counter malformed or its MAC fails (edited, torn or another master key's)" "$ks.gen"
fi
restore
rm -f "$ks.gen"
store_refused gen-missing "store generation counter missing (the key store needs it)" "$ks.gen"

# The store deleted next to its counter: the card must not start as an
# empty card in its place (its keys would be gone without a word).
restore
rm -f "$ks"
store_refused store-deleted "missing, but its counter file says generation $(gen_counter "$ks") was written (deleted or moved?)"

# ---- 4. the audit log ----
# middle: the first record from the middle on that is not a checkpoint
# and has one after it
mid=$((nrec / 2))
while [ $((mid + 2)) -lt "$nrec" ] &&
      [ "$(u16 "$pristine/keystore.audit" $((mid * REC + 16)))" = $EV_CHECKPOINT ]; do
	mid=$((mid + 1))
done

# log_damaged NAME REASON INDEX RECORDS: the log was damaged so that the
# record at INDEX is the first one lost; RECORDS whole records are left in
# the file; REASON is the LOG_DAMAGED detail wanted
log_damaged() {
	local name=$1 reason=$2 idx=$3 total=$4 lost dmg dseq why="" arc n v w
	local errs

	lost=$(u64 "$pristine/keystore.audit" $((idx * REC)))
	cp "$ks.audit" "$dir/$name.attacked"
	boot "$name" check
	arc=$(sed -n 's/^SA-AUDIT-RC //p' "$dir/$name.log")
	dmg=$(grep '^SA-AUDIT-DMG ' "$dir/$name.log")
	[ $brc -eq 0 ] || why="$why run-vm:$brc"
	w=$(keys_ok "$dir/$name.log" "")
	[ -z "$w" ] || why="$why keys:$w"
	[ "$arc" = 1 ] || why="$why audit-exit:${arc:-none}(wanted 1)"
	if [ "$(wc -l <<<"$dmg")" -ne 1 ] || [ -z "$dmg" ]; then
		why="$why log_damaged-records:$(grep -c . <<<"$dmg")(wanted 1)"
	else
		dseq=$(json_field "$dmg" seq)
		[ "$(json_field "$dmg" detail)" = "$reason" ] ||
			why="$why reason:$(json_field "$dmg" detail)(wanted $reason)"
		[ "$(json_field "$dmg" handle)" = "$(printf '0x%016x' "$lost")" ] ||
			why="$why first-lost:$(json_field "$dmg" handle)(wanted seq $lost)"
		[ "$(json_field "$dmg" handle2)" = "$(printf '0x%016x' "$total")" ] ||
			why="$why records:$(json_field "$dmg" handle2)(wanted $total)"
		# the evidence, byte for byte
		cmp -s "$ks.audit.damaged.$dseq" "$dir/$name.attacked" ||
			why="$why no-identical-copy:$(cd "$dir" && echo card.keystore.audit.damaged.*)"
		# the log: the untouched prefix, then LOG_DAMAGED
		cmp -s -n $((idx * REC)) "$ks.audit" "$pristine/keystore.audit" ||
			why="$why prefix-changed"
		[ "$(u16 "$ks.audit" $((idx * REC + 16)))" = $EV_LOG_DAMAGED ] &&
		[ "$(u64 "$ks.audit" $((idx * REC)))" = "$dseq" ] ||
			why="$why record-$idx-is-not-the-log_damaged"
		[ $(( $(stat -c %s "$ks.audit") % REC )) -eq 0 ] ||
			why="$why log-size"
	fi
	# hsmctl audit: exactly two problems, the record and the flag
	errs=$(grep -E '^SA-AUDIT-ERR .*: audit: seq [0-9]+: ' "$dir/$name.log")
	if [ "$(grep -c . <<<"$errs")" -ne 2 ] ||
	   ! grep -q 'found its log damaged at start' <<<"$errs" ||
	   ! grep -q 'the card reports that its start-up check found the log damaged' <<<"$errs"; then
		why="$why hsmctl-problems:[$(tr '\n' '|' <<<"$errs")]"
	fi
	grep -q '^SA-AUDIT-VERDICT .*"card_damaged": *true' "$dir/$name.log" ||
		why="$why no-DAMAGED-flag"
	read -r n v < <(sed -n 's/^SA-AUDIT-AFTER //p' "$dir/$name.log")
	[ "${v:-0}" -ge 1 ] || why="$why no-verified-checkpoint-after-damage"
	if [ -z "$why" ]; then
		result ok "audit log $name: card starts with all keys, LOG_DAMAGED seq $dseq reason $reason from seq $lost ($total records), hsmctl audit exits 1 naming it and the DAMAGED flag, copy .audit.damaged.$dseq identical, $n records after it with $v verified checkpoint(s) (${bsecs})"
	else
		grep '^SA-AUDIT-ERR' "$dir/$name.log" | head -n 5
		result fail "audit log $name:$why (see $dir/$name.log)"
	fi
}

restore
flip "$ks.audit" $((mid * REC + 8))	# time_ns of a non-checkpoint record
log_damaged flip-record 4 "$mid" "$nrec"

restore
truncate -s $((nrec * REC - 5)) "$ks.audit"
log_damaged truncate-last 2 $((nrec - 1)) $((nrec - 1))

restore
swap "$ks.audit" $((mid * REC)) $(((mid + 1) * REC)) $REC
log_damaged swap-records 3 "$mid" "$nrec"

restore
{ head -c $((mid * REC)) "$pristine/keystore.audit"
  tail -c +$(((mid + 1) * REC + 1)) "$pristine/keystore.audit"; } >"$ks.audit"
log_damaged delete-record 3 "$mid" $((nrec - 1))

# The records after the last checkpoint, cut off at a record boundary
# after a clean shutdown.  The card seals the log's head into the key store
# when QEMU exits (hw.rst), so the cut must show as reason 6 (shorter than
# the sealed head).
restore
keep=$nrec
for i in $(seq $((nrec - 1)) -1 0); do
	if [ "$(u16 "$pristine/keystore.audit" $((i * REC + 16)))" = $EV_CHECKPOINT ]; then
		keep=$((i + 1))
		break
	fi
done
[ "$keep" -lt "$nrec" ] || keep=$((nrec - 1))
head -c $((keep * REC)) "$pristine/keystore.audit" >"$ks.audit"
first=$(u64 "$pristine/keystore.audit" $((keep * REC)))
last=$(u64 "$pristine/keystore.audit" $(((nrec - 1) * REC)))
boot drop-tail check
arc=$(sed -n 's/^SA-AUDIT-RC //p' "$dir/drop-tail.log")
dmg=$(grep '^SA-AUDIT-DMG ' "$dir/drop-tail.log")
why=$(keys_ok "$dir/drop-tail.log" "")
if [ $brc -eq 0 ] && [ -z "$why" ] && [ "$arc" = 1 ] &&
   [ "$(json_field "$dmg" detail)" = 6 ]; then
	result ok "audit log drop-tail: seq $first..$last removed after a clean stop: LOG_DAMAGED reason 6 (${bsecs})"
else
	result fail "audit log drop-tail: run-vm $brc,$why, audit exit ${arc:-none} (see $dir/drop-tail.log)"
fi

echo "store-attack: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
