#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Kernel crypto API benchmark, run inside the test guest (make bench-kernel
# boots one 6.12 guest with the card and a virtio-crypto device):
#
# 1. AF_ALG throughput (tools/hsm-bench-kernel) of cbc(aes), xts(aes) and
#    gcm(aes) for the card, QEMU's virtio-crypto and the guest CPU (the
#    generic C code, and AES-NI as emulated by TCG when the CPU model has
#    it), each bound by its driver name; ratios card/others.
# 2. dm-crypt on a RAM disk (brd), 4 KiB crypto sectors (one request per
#    4 KiB): sequential O_DIRECT write and read with dd through the card's
#    xts(aes), the CPU's, and virtio-crypto's cbc(aes) where dm-crypt
#    takes it.
#
# Environment: BENCH_SECONDS (per AF_ALG point, default 3), BENCH_JOBS
# (threads with one request in flight each, default 4), BENCH_DM_MB
# (dm-crypt transfer size, default 32).

set -u
export DM_DISABLE_UDEV=1
SECS=${BENCH_SECONDS:-3}
JOBS=${BENCH_JOBS:-4}
DM_MB=${BENCH_DM_MB:-32}
BENCH=${HSMCARD_BUILD:-/work/main/build}/tools/hsm-bench-kernel

modprobe -q -a af_alg algif_skcipher algif_aead virtio_crypto \
	cbc xts ecb ctr gcm ghash_generic aes_generic dm_mod dm_crypt 2>/dev/null
# AES-NI exists under TCG only with a CPU model that has it (-cpu max).
grep -qw aes /proc/cpuinfo && modprobe -q aesni_intel 2>/dev/null

# driver_of NAME PATTERN: the highest-priority registered driver of
# algorithm NAME whose driver name matches the extended regex PATTERN.
driver_of() {
	awk -v want="$1" -v pat="$2" '
	function flush() {
		if (name == want && drv ~ pat && prio > best) { best = prio; out = drv }
		name = drv = ""; prio = -1
	}
	BEGIN { best = -1; prio = -1 }
	/^$/ { flush(); next }
	$1 == "name" { name = $3 }
	$1 == "driver" { drv = $3 }
	$1 == "priority" { prio = $3 + 0 }
	END { flush(); print out }' /proc/crypto
}

echo "== kernel $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
grep -q virtio_crypto /proc/crypto ||
	echo "== no virtio-crypto algorithms (device or module missing)"

# The generic drivers are template instances named after their parts; the
# crypto API builds them when the bench binds them by that name.
for m in cbc xts gcm; do
	case $m in
	cbc) gen="cbc(aes-generic)" ;;
	xts) gen="xts(ecb(aes-generic))" ;;
	gcm) gen="gcm_base(ctr(aes-generic),ghash-generic)" ;;
	esac
	args=("card=$m-aes-hsmcard")
	v=$(driver_of "$m(aes)" '^virtio')
	if [ -n "$v" ]; then args+=("virtio=$v"); else args+=("virtio=none-for-$m"); fi
	args+=("generic=$gen")
	a=$(driver_of "$m(aes)" 'aesni')
	[ -n "$a" ] && args+=("aesni=$a")
	echo
	"$BENCH" -t "$SECS" -j "$JOBS" "$m" "${args[@]}"
done

# ---- dm-crypt on a RAM disk ----
echo
echo "# dm-crypt on brd, ${DM_MB} MiB sequential, dd bs=1M O_DIRECT, MB/s"
if ! modprobe brd rd_nr=1 rd_size=$(((DM_MB + 16) * 1024)) max_part=0; then
	echo "dm-crypt: cannot load brd"
	exit 0
fi
DEV=/dev/ram0
SECTORS=$((DM_MB * 2048))
KEY=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEY32=${KEY:0:64}

# dm_bench LABEL CIPHER KEY: prints "LABEL write read" or "LABEL n/a".
dm_bench() {
	local label=$1 cipher=$2 key=$3 w r

	if ! dmsetup create hsmbench --table "0 $SECTORS crypt $cipher $key 0 $DEV 0 1 sector_size:4096" 2>/tmp/dm.err; then
		printf "%-10s %-40s %10s %10s  (%s)\n" "$label" "$cipher" n/a n/a \
			"$(tr '\n' ' ' </tmp/dm.err)"
		return
	fi
	w=$(timeout 300 dd if=/dev/zero of=/dev/mapper/hsmbench bs=1M count="$DM_MB" oflag=direct 2>&1 |
	    awk '/copied/ { print $(NF-1), $NF }')
	r=$(timeout 300 dd if=/dev/mapper/hsmbench of=/dev/null bs=1M count="$DM_MB" iflag=direct 2>&1 |
	    awk '/copied/ { print $(NF-1), $NF }')
	dmsetup remove hsmbench
	printf "%-10s %-40s %10s %10s\n" "$label" "$cipher" "$(mbps "$w")" "$(mbps "$r")"
}

# "12.3 MB/s" or "1.2 GB/s" or "512 kB/s" -> MB/s
mbps() {
	awk -v v="$1" 'BEGIN { split(v, a, " "); f = a[1] + 0;
		if (a[2] ~ /^GB/) f *= 1000; else if (a[2] ~ /^kB/) f /= 1000;
		printf "%.2f", f }'
}

printf "%-10s %-40s %10s %10s\n" impl cipher write read
{
	dm_bench card "capi:xts-aes-hsmcard-plain64" "$KEY"
	dm_bench generic "capi:xts(ecb(aes-generic))-plain64" "$KEY"
	a=$(driver_of "xts(aes)" 'aesni')
	[ -n "$a" ] && dm_bench aesni "capi:$a-plain64" "$KEY"
	dm_bench card-cbc "capi:cbc-aes-hsmcard-plain64" "$KEY32"
	v=$(driver_of "cbc(aes)" '^virtio')
	if [ -n "$v" ]; then
		dm_bench virtio-cbc "capi:$v-plain64" "$KEY32"
	else
		echo "virtio-cbc no virtio-crypto cbc(aes) registered"
	fi
} | tee /tmp/dm-bench.out
# Ratios of the card's figures to the others'.
awk '
	$3 ~ /^[0-9.]+$/ { w[$1] = $3; r[$1] = $4 }
	END {
		for (k in w) {
			if (k == "card" || k == "card-cbc") continue
			c = (k == "virtio-cbc") ? "card-cbc" : "card"
			if (w[k] > 0 && r[k] > 0 && (c in w))
				printf "ratio %s/%s: write %.2f read %.2f\n", c, k,
				       w[c] / w[k], r[c] / r[k]
		}
	}' /tmp/dm-bench.out
rmmod brd 2>/dev/null
exit 0
