#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hsmcard demonstration, run inside a test guest by `make demo`
# (selftests/vm/run-vm.sh --demo) after the driver has been loaded.
#
# It shows the card on the PCI bus and its driver state, then uses the card
# through hsmctl: EC P-256 and RSA-2048 keys generated inside the card sign a
# message, the exported public keys verify the signatures with OpenSSL (an
# independent implementation) as well as with the card, an AES-256-GCM key
# encrypts and decrypts a file, /dev/hwrng delivers card randomness, and the
# keys are listed and destroyed.
#
# Every step is labelled; the script exits non-zero if any step failed.
# Environment: BUILD or HSMCARD_BUILD (build directory holding tools/hsmctl),
# HSMCARD_DEVICE (default /dev/hsmcard0).

set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-${HSMCARD_BUILD:-$here/../../build}}
HSMCTL=${HSMCTL:-$BUILD/tools/hsmctl}
DEV=${HSMCARD_DEVICE:-/dev/hsmcard0}
export HSMCARD_DEVICE=$DEV

steps=0
failed=0
failed_steps=
keys=

work=$(mktemp -d /tmp/hsmcard-demo.XXXXXX) || exit 1
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local k

	# Leave no demo key behind, even when a step failed.
	for k in $keys; do
		"$HSMCTL" destroy "$k" >/dev/null 2>&1
	done
	rm -rf "$work"
}
trap cleanup EXIT

title() {
	steps=$((steps + 1))
	printf '\n==> [%d] %s\n' "$steps" "$*"
}

# Show a command, then run it.  The command line goes to the original
# stdout (fd $show), so that $(run ...) captures only the command's output
# and "run ... | indent" does not indent it twice.
exec {show}>&1
run() {
	printf '    $ %s\n' "${*/#$HSMCTL/hsmctl}" >&"$show"
	"$@"
}

result() {
	if [ "$1" -eq 0 ]; then
		echo "    ... ok"
	else
		echo "    ... FAILED"
		failed=$((failed + 1))
		failed_steps="$failed_steps $steps"
	fi
}

indent() {
	sed 's/^/    /'
}

is_handle() {
	[[ "$1" =~ ^0x[0-9a-f]{16}$ ]]
}

if [ ! -x "$HSMCTL" ]; then
	echo "demo: $HSMCTL not found; build it with 'make -C tools'" >&2
	exit 1
fi

echo "hsmcard demo: kernel $(uname -r), device $DEV"

# ---------------------------------------------------------------------------
title "The card on the PCI bus (vendor 1234, device 4853)"
rc=1
if command -v lspci >/dev/null 2>&1; then
	run lspci -nn -k -d 1234:4853 | indent
	lspci -n -d 1234:4853 | grep -q . && rc=0
else
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat "$d/vendor")" = 0x1234 ] &&
		   [ "$(cat "$d/device")" = 0x4853 ]; then
			echo "    ${d##*/} [$(cat "$d/class")]: 1234:4853"
			rc=0
		fi
	done
fi
result "$rc"

# ---------------------------------------------------------------------------
title "Driver state in sysfs"
rc=1
for d in /sys/bus/pci/drivers/hsmcard/0000:*; do
	[ -d "$d" ] || continue
	echo "    $d"
	for a in serial firmware_version state queue_count; do
		printf '      %-17s %s\n' "$a:" "$(cat "$d/$a" 2>/dev/null || echo '?')"
	done
	[ "$(cat "$d/state" 2>/dev/null)" = live ] && rc=0
done
# shellcheck disable=SC2012  # just showing the nodes
ls -l /dev/hsmcard* 2>/dev/null | indent
result "$rc"

# ---------------------------------------------------------------------------
title "hsmctl list and hsmctl info"
run "$HSMCTL" list | indent
rc=${PIPESTATUS[0]}
run "$HSMCTL" info | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
result "$rc"

if [ ! -c "$DEV" ]; then
	echo
	echo "hsmcard demo: $DEV does not exist (driver not loaded or probe failed); stopping"
	dmesg | grep -i hsmcard | tail -n 20 | indent
	exit 1
fi

# ---------------------------------------------------------------------------
msg=$work/message.txt
printf 'Pay 100 EUR to Alice, reference %s\n' "$(date -u +%FT%TZ)" >"$msg"

title "Generate an EC P-256 signing key inside the card"
ec=$(run "$HSMCTL" keygen --type ec --curve p256 --uses sign,verify \
	--label demo-ec-p256)
rc=$?
echo "    handle: $ec"
is_handle "$ec" || rc=1
[ $rc -eq 0 ] && keys="$keys $ec"
result "$rc"

title "Generate an RSA-2048 signing key inside the card"
rsa=$(run "$HSMCTL" keygen --type rsa --bits 2048 --uses sign,verify \
	--label demo-rsa-2048)
rc=$?
echo "    handle: $rsa"
is_handle "$rsa" || rc=1
[ $rc -eq 0 ] && keys="$keys $rsa"
result "$rc"

title "Key attributes, as the card reports them"
run "$HSMCTL" attrs "$ec" | indent
rc=${PIPESTATUS[0]}
run "$HSMCTL" attrs --json "$rsa" | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
result "$rc"

# ---------------------------------------------------------------------------
title "ECDSA P-256/SHA-256: sign in the card, verify with OpenSSL"
rc=0
run "$HSMCTL" sign "$ec" --mech ecdsa --hash sha256 -i "$msg" \
	-o "$work/ec.sig" || rc=1
run "$HSMCTL" pubkey "$ec" -o "$work/ec.pem" || rc=1
sed 's/^/      /' "$work/ec.pem" 2>/dev/null
run openssl pkey -pubin -in "$work/ec.pem" -noout -text 2>&1 |
	head -n 2 | indent
run openssl dgst -sha256 -verify "$work/ec.pem" \
	-signature "$work/ec.sig" "$msg" 2>&1 | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
result "$rc"

title "ECDSA: verify in the card; a changed message must be refused"
rc=0
run "$HSMCTL" verify "$ec" --sig "$work/ec.sig" -i "$msg" | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
sed 's/100 EUR/900 EUR/' "$msg" >"$work/forged.txt"
run "$HSMCTL" verify "$ec" --sig "$work/ec.sig" -i "$work/forged.txt" | indent
v=${PIPESTATUS[0]}
echo "    exit status $v (1 = signature does not match)"
[ "$v" -eq 1 ] || rc=1
openssl dgst -sha256 -verify "$work/ec.pem" -signature "$work/ec.sig" \
	"$work/forged.txt" >/dev/null 2>&1 && rc=1
result "$rc"

title "RSA-2048 PSS/SHA-256: sign in the card, verify with OpenSSL and the card"
rc=0
run "$HSMCTL" sign "$rsa" --mech rsa-pss --hash sha256 -i "$msg" \
	-o "$work/rsa.sig" || rc=1
echo "    signature: $(stat -c %s "$work/rsa.sig" 2>/dev/null) bytes"
run "$HSMCTL" pubkey "$rsa" -o "$work/rsa.pem" || rc=1
run openssl dgst -sha256 -sigopt rsa_padding_mode:pss \
	-sigopt rsa_pss_saltlen:32 -verify "$work/rsa.pem" \
	-signature "$work/rsa.sig" "$msg" 2>&1 | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
run "$HSMCTL" verify "$rsa" --mech rsa-pss --sig "$work/rsa.sig" \
	-i "$msg" | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
result "$rc"

# ---------------------------------------------------------------------------
title "Generate an AES-256 key and encrypt a file with AES-256-GCM"
rc=0
aes=$(run "$HSMCTL" keygen --type aes --bits 256 --uses encrypt,decrypt \
	--label demo-aes-256)
is_handle "$aes" || rc=1
[ $rc -eq 0 ] && keys="$keys $aes"
echo "    handle: $aes"
plain=$work/plain.txt
{ cat /etc/os-release; head -c 3000 /dev/urandom | base64; } >"$plain"
nonce=$("$HSMCTL" random 12)
echo "    nonce (from the card's RNG): $nonce"
run "$HSMCTL" encrypt "$aes" --mech aes-gcm --iv "$nonce" \
	--aad 64656d6f -i "$plain" -o "$work/cipher.bin" || rc=1
echo "    $(stat -c %s "$plain") bytes in, $(stat -c %s "$work/cipher.bin" 2>/dev/null) bytes out (ciphertext + 16-byte tag)"
cmp -s "$plain" "$work/cipher.bin" && rc=1
result "$rc"

title "AES-256-GCM: decrypt, compare; a flipped bit must fail authentication"
rc=0
run "$HSMCTL" decrypt "$aes" --mech aes-gcm --iv "$nonce" --aad 64656d6f \
	-i "$work/cipher.bin" -o "$work/decrypted.txt" || rc=1
if cmp "$plain" "$work/decrypted.txt"; then
	echo "    decrypted file is identical to the original"
else
	rc=1
fi
cp "$work/cipher.bin" "$work/bad.bin"
printf '\x01' | dd of="$work/bad.bin" bs=1 seek=100 conv=notrunc status=none
run "$HSMCTL" decrypt "$aes" --mech aes-gcm --iv "$nonce" --aad 64656d6f \
	-i "$work/bad.bin" -o "$work/bad.txt" 2>&1 | indent
v=${PIPESTATUS[0]}
echo "    exit status $v (1 = authentication failed)"
[ "$v" -eq 1 ] || rc=1
result "$rc"

# ---------------------------------------------------------------------------
title "Card randomness: hsmctl random and /dev/hwrng"
rc=0
run "$HSMCTL" random 16 | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
hw=/sys/class/misc/hw_random
if [ -r $hw/rng_available ]; then
	echo "    rng_available: $(cat $hw/rng_available)"
	case " $(cat $hw/rng_available) " in
	*" hsmcard "*)
		[ "$(cat $hw/rng_current)" = hsmcard ] ||
			echo hsmcard >$hw/rng_current 2>/dev/null
		;;
	*)
		echo "    hsmcard is not registered as a hwrng"
		rc=1
		;;
	esac
	echo "    rng_current:   $(cat $hw/rng_current)"
fi
printf '    $ head -c 32 /dev/hwrng | od -An -tx1\n'
head -c 32 /dev/hwrng 2>/dev/null | od -An -tx1 | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
[ "$(cat $hw/rng_current 2>/dev/null)" = hsmcard ] || rc=1
result "$rc"

# ---------------------------------------------------------------------------
title "Keys held by the card"
run "$HSMCTL" keys | indent
rc=${PIPESTATUS[0]}
for k in $ec $rsa $aes; do
	"$HSMCTL" keys --json | grep -q "\"$k\"" || rc=1
done
result "$rc"

title "Destroy the demo keys"
rc=0
# shellcheck disable=SC2086  # a list of handles
run "$HSMCTL" destroy $keys || rc=1
for k in $keys; do
	if "$HSMCTL" attrs "$k" >/dev/null 2>&1; then
		echo "    $k still exists"
		rc=1
	fi
done
[ $rc -eq 0 ] && keys=
run "$HSMCTL" keys | indent
result "$rc"

# ---------------------------------------------------------------------------
echo
if [ $failed -eq 0 ]; then
	echo "hsmcard demo: all $steps steps passed"
	exit 0
fi
echo "hsmcard demo: $failed of $steps steps FAILED:$failed_steps"
exit 1
