#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Guest half of the tamper test (see tamper-io.sh): with a dm-crypt volume
# on the card being written, a TCP stream going through an ESP tunnel on
# the card and a netlink monitor listening, print
# TAMPER-NOW and let the host raise the card's tamper event through the
# QEMU monitor; then check that everything fails cleanly and the driver
# reports it and stays.  Prints TAP lines and "tamper: N passed, N failed".

set -u
BUILD=${HSMCARD_BUILD:?}
HSMCTL=$BUILD/tools/hsmctl
SYSFS=/sys/class/misc/hsmcard0/device
DM=hsmtamper
n=0
fails=0

ok() { n=$((n + 1)); echo "ok $n $*"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $*"; }
# check DESCRIPTION COMMAND...: one TAP line from COMMAND's status
check() {
	local desc=$1

	shift
	if "$@"; then ok "$desc"; else nok "$desc"; fi
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s
wait_for() {
	local end=$((SECONDS + $1))

	shift
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

tmp=$(mktemp -d)
"$HSMCTL" monitor >"$tmp/events" 2>&1 &
mon=$!

h=$("$HSMCTL" keygen -t ec -u sign,verify -l before-tamper)
check "a key works before the tamper" \
	"$HSMCTL" sign "$h" -i /etc/hostname -o "$tmp/sig"

modprobe -q -a dm_mod dm_crypt loop xts 2>/dev/null
# libdevmapper makes the nodes itself: there is no udev in the guest
export DM_DISABLE_UDEV=1
truncate -s 64M "$tmp/img"
loop=$(losetup --find --show "$tmp/img")
key=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
dmsetup create "$DM" --table \
	"0 131072 crypt capi:xts-aes-hsmcard-plain64 $key 0 $loop 0"
if [ ! -b /dev/mapper/$DM ]; then
	nok "dm-crypt volume on the card"
	echo "tamper: $((n - fails)) passed, $fails failed"
	exit 1
fi
ok "dm-crypt volume on the card"
# A writer that keeps the card busy until a write fails.
(
	while dd if=/dev/zero of=/dev/mapper/$DM bs=64k count=256 \
		oflag=direct 2>"$tmp/dd.err"; do
		echo pass >>"$tmp/dd.passes"
	done
	echo done >"$tmp/dd.done"
) &
writer=$!
check "the volume is written through the card" \
	wait_for 60 test -s "$tmp/dd.passes"

# An ESP tunnel between two namespaces, rfc4106(gcm(aes)) on the card (the
# crypto API's choice: xfrm cannot pin a driver; the IPsec test checks it),
# with a TCP stream through it that the tamper interrupts.
# No module autoloading in the guest: on 6.1 seqiv's IV salt comes from
# the default RNG (drbg, whose self-tests need sha512_generic), without
# which adding the SAs fails ("unable to initialize cryptographic
# operations"); the IPsec test loads the same set.
modprobe -q -a veth xfrm_user xfrm_algo esp4 seqiv sha512_generic \
	jitterentropy_rng drbg 2>/dev/null
ip netns add tpa && ip netns add tpb &&
ip link add tva netns tpa type veth peer name tvb netns tpb &&
ip -n tpa addr add 10.78.0.1/24 dev tva && ip -n tpa link set tva up &&
ip -n tpb addr add 10.78.0.2/24 dev tvb && ip -n tpb link set tvb up &&
ip -n tpa link set lo up && ip -n tpb link set lo up
for ns in tpa tpb; do
	ip -n $ns xfrm state add src 10.78.0.1 dst 10.78.0.2 proto esp \
		spi 0x2001 reqid 1 mode tunnel aead 'rfc4106(gcm(aes))' \
		0x00112233445566778899aabbccddeeff01020304 128
	ip -n $ns xfrm state add src 10.78.0.2 dst 10.78.0.1 proto esp \
		spi 0x2002 reqid 2 mode tunnel aead 'rfc4106(gcm(aes))' \
		0xffeeddccbbaa99887766554433221100a1a2a3a4 128
done
ip -n tpa xfrm policy add src 10.78.0.1/32 dst 10.78.0.2/32 dir out \
	tmpl src 10.78.0.1 dst 10.78.0.2 proto esp reqid 1 mode tunnel
ip -n tpa xfrm policy add src 10.78.0.2/32 dst 10.78.0.1/32 dir in \
	tmpl src 10.78.0.2 dst 10.78.0.1 proto esp reqid 2 mode tunnel
ip -n tpb xfrm policy add src 10.78.0.2/32 dst 10.78.0.1/32 dir out \
	tmpl src 10.78.0.2 dst 10.78.0.1 proto esp reqid 2 mode tunnel
ip -n tpb xfrm policy add src 10.78.0.1/32 dst 10.78.0.2/32 dir in \
	tmpl src 10.78.0.1 dst 10.78.0.2 proto esp reqid 1 mode tunnel
# The dm-crypt writer keeps the card saturated and ESP drops a packet whose
# request finds the queue full (it does not backlog), so a ping may go
# unanswered; the stream below and the card's counters prove the tunnel.
ip netns exec tpb timeout 300 socat -u TCP-LISTEN:5002,reuseaddr \
	OPEN:/dev/null 2>/dev/null &
sink=$!
ip netns exec tpa timeout 300 socat -u OPEN:/dev/zero \
	TCP:10.78.0.2:5002,retry=60,interval=0.5 2>/dev/null &
source=$!
# Bytes the receiving side's SA 0x2001 has processed, from the SA list
# ("ip xfrm state get" fails with ESRCH on 6.1 for this SA).
esp_bytes() {
	ip -n tpb -s xfrm state show 2>/dev/null | awk '
		/^src / { sa = 0 }
		/spi 0x0*2001[(]/ { sa = 1 }
		sa && /^[ \t]*[0-9]+[(]bytes[)]/ {
			sub(/^[ \t]*/, ""); sub(/[(].*/, ""); print; exit
		}'
}
esp_flowing() {
	[ "$(esp_bytes)" -gt 100000 ] 2>/dev/null
}
check "a TCP stream flows through the tunnel" wait_for 60 esp_flowing
card_esp() {
	grep -h '^rfc4106-gcm-aes-hsmcard ' /sys/kernel/debug/hsmcard/*/crypto |
		awk '{ n += $3 } END { print n + 0 }'
}
check "the card's rfc4106 does the ESP work ($(card_esp) requests)" \
	[ "$(card_esp)" -gt 100 ]

echo "TAMPER-NOW"
check "sysfs state becomes tampered" \
	wait_for 60 grep -qx tampered "$SYSFS/state"
check "the writer's I/O fails within 60 s (no hang)" \
	wait_for 60 test -e "$tmp/dd.done"
check "and with an I/O error" grep -q "Input/output error" "$tmp/dd.err"
kill "$writer" 2>/dev/null

"$HSMCTL" sign "$h" -i /etc/hostname -o "$tmp/sig2" 2>"$tmp/sign.err"
rc=$?
check "signing is refused (hsmctl exit status 3, got $rc)" [ $rc -eq 3 ]
check "with a message naming the tamper" grep -qi tamper "$tmp/sign.err"
"$HSMCTL" keygen -t aes -l after-tamper >/dev/null 2>&1
rc=$?
check "key generation is refused (exit status $rc)" [ $rc -eq 3 ]
check "hsmctl info reports the state" \
	sh -c "'$HSMCTL' info | grep -qi tampered"

b1=$(esp_bytes)
sleep 3
b2=$(esp_bytes)
check "the ESP stream stops after the tamper ($b1 -> $b2 bytes)" \
	test "${b1:-none}" = "$b2"
check "ping through the tunnel now fails, promptly" \
	timeout 20 sh -c "! ip netns exec tpa busybox ping -q -c 2 -W 2 10.78.0.2"
kill "$source" "$sink" 2>/dev/null
wait "$source" "$sink" 2>/dev/null
check "the SAs and namespaces can be removed" \
	timeout 60 sh -c "ip -n tpa xfrm state flush && ip -n tpb xfrm state flush && ip netns del tpa && ip netns del tpb"

check "the module stays loaded" grep -q '^hsmcard ' /proc/modules
check "/dev/hsmcard0 stays" test -c /dev/hsmcard0
check "the kernel log reports the tamper event" \
	sh -c "dmesg | grep -q 'tamper event'"
check "a netlink tamper event reached the monitor" \
	wait_for 10 grep -qE '"event": ?"tamper"' "$tmp/events"
kill "$mon" 2>/dev/null

check "the volume can still be removed" dmsetup remove "$DM"
losetup -d "$loop"
rm -rf "$tmp"
echo "1..$n"
echo "tamper: $((n - fails)) passed, $fails failed"
[ $fails -eq 0 ]
