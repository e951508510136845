#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Crash consistency of the card's sealed key store: no acknowledged key is
# ever lost.  Each round boots a guest that generates persistent keys in a
# loop (crash/create.sh), kills QEMU with SIGKILL at a random moment once
# enough keys were acknowledged, boots again on the same key store and
# checks (crash/check.sh) that every key acknowledged in this and the
# earlier rounds is present, carries its label and signs, verified with
# OpenSSL against the public key exported before the crash.  A store the
# card refuses to load fails the round (the module's probe or the check
# then fails).  After each kill the store's generation must equal the
# counter in its .gen file (its MAC verified with OpenSSL under the master
# key) or be one ahead of it (hw.rst, "Rollback"): the card accepts exactly
# those, so a crash must never leave anything else.  And the .mk file must
# be the one the first boot wrote (same bytes and modification time): the
# master key is written once, never by a store save.
#
# With several kernels (--kernel "6.1 6.12") the rounds take them in turn
# and each round checks under the next kernel of the list what it created
# under its own: round 1 creates on 6.1 and checks on 6.12, round 2 the
# other way round.
#
# Usage: crash-keys.sh [--kernel "K..."] [--rounds N] [--keys N]
# Environment: BUILD, QEMU (as for run-vm.sh).
# Prints one TAP-like line per phase and, last, "N passed, N failed".

set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNEL=6.12
ROUNDS=3
KEYS=12
export TOP BUILD

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--keys) KEYS=$2; shift ;;
	-h|--help) sed -n '3,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "crash-keys: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

dir=$BUILD/crash
ks=$dir/card.keystore
pass=0
fail=0
rm -rf "$dir"
mkdir -p "$dir" || exit 2
: >"$dir/acks"
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

# gen_counter KS: the store generation counter of KS (card-files.sh)
# shellcheck source=selftests/vm/card-files.sh
. "$TOP/selftests/vm/card-files.sh"

read -r -a kernels <<<"$KERNEL"
[ ${#kernels[@]} -gt 0 ] || { echo "crash-keys: no kernel" >&2; exit 2; }

# start_guest KERNEL SCRIPT OUT: boot a guest of KERNEL running SCRIPT in
# the background, its console (run-vm.sh's standard output) going to OUT;
# sets rpid.
start_guest() {
	"$TOP/selftests/vm/run-vm.sh" --kernels "$1" --timeout 600 \
		--run "$2" >"$3" 2>&1 &
	rpid=$!
}

for round in $(seq 1 "$ROUNDS"); do
	echo "$round" >"$dir/round"
	kc=${kernels[$(((round - 1) % ${#kernels[@]}))]}
	kv=${kernels[$((round % ${#kernels[@]}))]}
	start_guest "$kc" selftests/vm/crash/create.sh "$dir/create-$round.out"
	acked=0
	end=$((SECONDS + 300))
	while [ $SECONDS -lt $end ] && kill -0 "$rpid" 2>/dev/null; do
		acked=$(tr -d '\r' <"$dir/create-$round.out" | grep -c '^CRASH-ACK ')
		[ "$acked" -ge "$KEYS" ] && break
		sleep 0.2
	done
	# Kill at a random point of the next key's creation.
	sleep "0.$((RANDOM % 10))"
	# QEMU itself: the child of the timeout(1) that run-vm.sh starts it
	# under (found by parentage: pgrep -f would match against a command
	# line that procps may truncate)
	qpid=
	for t in $(pgrep -P "$rpid"); do
		[ "$(cat "/proc/$t/comm" 2>/dev/null)" = timeout ] || continue
		qpid=$(pgrep -P "$t" | head -n1)
	done
	if [ -n "$qpid" ]; then
		kill -KILL "$qpid"
	else
		# no QEMU found: stop the run (timeout(1) passes TERM on)
		pkill -TERM -P "$rpid"
	fi
	wait "$rpid" 2>/dev/null
	tr -d '\r' <"$dir/create-$round.out" >"$dir/create-$round.log"
	# Acknowledged keys of this round, with the public key when printed.
	n_round=0
	while read -r _ r n h; do
		[ "$r" = "$round" ] || continue
		pem=-
		b64=$(grep "^CRASH-PUB $round $n " "$dir/create-$round.log" | cut -d' ' -f5)
		if [ -n "$b64" ]; then
			pem=pub-$round-$n.pem
			echo "$b64" | base64 -d >"$dir/$pem"
		fi
		echo "crash-$round-$n $h $pem" >>"$dir/acks"
		n_round=$((n_round + 1))
	done < <(grep '^CRASH-ACK ' "$dir/create-$round.log")
	if [ -z "$qpid" ] || [ "$n_round" -lt "$KEYS" ] ||
	   grep -q '^CRASH-ERROR' "$dir/create-$round.log"; then
		result fail "round $round ($kc): QEMU killed after $n_round acknowledged keys (wanted $KEYS; see $dir/create-$round.log)"
		break
	fi
	# store generation (le64 at byte 44) and .gen counter (le64 at 16)
	kgen=$(od -An -t u8 -j 44 -N 8 "$ks" 2>/dev/null | tr -d ' ')
	mgen=$(gen_counter "$ks")
	if [ -z "$kgen" ] || [ -z "$mgen" ] ||
	   { [ "$kgen" != "$mgen" ] && [ "$kgen" != $((mgen + 1)) ]; }; then
		result fail "round $round ($kc): after the kill the store is at generation ${kgen:-?} and the .gen counter at ${mgen:-? (missing, malformed or its MAC fails)} (wanted equal or one behind)"
		break
	fi
	# the master key file as the first boot wrote it
	mk_now="$(stat -c %y "$ks.mk") $(sha256sum <"$ks.mk" | cut -c1-16)"
	[ "$round" -eq 1 ] && mk_first=$mk_now
	if [ "$mk_now" != "$mk_first" ]; then
		result fail "round $round ($kc): the .mk file was rewritten (mtime and SHA-256 now $mk_now, after the first boot $mk_first)"
		break
	fi
	result ok "round $round ($kc): QEMU killed after $n_round acknowledged keys (store generation $kgen, .gen counter $mgen, its MAC verified; .mk file unchanged since the first boot)"

	start_guest "$kv" selftests/vm/crash/check.sh "$dir/check-$round.out"
	wait "$rpid"
	rc=$?
	tr -d '\r' <"$dir/check-$round.out" >"$dir/check-$round.log"
	summary=$(grep '^CRASH-SUMMARY' "$dir/check-$round.log" | tail -n1)
	if [ $rc -eq 0 ] && [ -n "$summary" ]; then
		result ok "round $round ($kv): all $(wc -l <"$dir/acks") acknowledged keys present and usable (ok, failed, keys in the card: ${summary#CRASH-SUMMARY })"
	else
		grep -E 'CRASH-CHECK FAIL|hsmcard|key store' "$dir/check-$round.log" | head -n 20
		tail -n 5 "$dir/check-$round.out"
		result fail "round $round ($kv): acknowledged keys missing or unusable after the crash (see $dir/check-$round.log)"
		break
	fi
done
echo "crash-keys: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
