#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build hsmcard.ko for each installed Debian kernel of interest, each in its
# own tree $BUILD/kmod-<kver>/ (a copy of Kbuild, driver/ and uapi/; files
# are copied only when they changed, so kbuild rebuilds incrementally).
#
#   selftests/vm/build-modules.sh [--kernels "6.1 6.12 6.12-debug"]
#
# "6.12-debug" is the debug kernel of selftests/vm/debug-kernel/ (built and
# cached by its build-kernel.sh when missing); its module lands in
# $BUILD/kmod-<debug kver>/ like the others.
#
# Fails if any build fails; prints the compiler warnings of each build.

set -u
set -o pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$TOP/build}
KERNELS="6.1 6.12"

while [ $# -gt 0 ]; do
	case "$1" in
	--kernels) [ $# -ge 2 ] || { echo "$1 needs an argument" >&2; exit 2; }
		KERNELS=$2; shift ;;
	-h|--help)
		echo "usage: $0 [--kernels \"6.1 6.12 6.12-debug\"]"
		exit 0 ;;
	*) echo "usage: $0 [--kernels \"6.1 6.12\"]" >&2; exit 2 ;;
	esac
	shift
done

# sync_tree SRC DST: make DST a copy of SRC, touching only changed files.
sync_tree() {
	local src=$1 dst=$2 f rel

	mkdir -p "$dst" || return 1
	(cd "$src" && find . -type f ! -name '*.o' ! -name '*.ko' ! -name '.*.cmd' \
		! -name '*.mod*' ! -name '*.o.d') | while read -r rel; do
		f=$src/$rel
		mkdir -p "$(dirname "$dst/$rel")" || exit 1
		cmp -s "$f" "$dst/$rel" || cp -p "$f" "$dst/$rel" || exit 1
	done || return 1
	# Sources that left the repository must leave the copy too.
	(cd "$dst" && find . -type f \( -name '*.[ch]' -o -name 'Kbuild' \
		-o -name 'Makefile' \)) | while read -r rel; do
		[ -e "$src/$rel" ] || rm -f "$dst/$rel"
	done
}

headers_for() {
	local spec=$1 d best=

	# The debug kernel (selftests/vm/debug-kernel/): its built tree in
	# the cache, built first if it is not there yet.
	if [ "$spec" = 6.12-debug ]; then
		"$TOP/selftests/vm/debug-kernel/build-kernel.sh" >&2 || return 1
		d=$("$TOP/selftests/vm/debug-kernel/build-kernel.sh" --print-path) ||
			return 1
		echo "$d/linux"
		return 0
	fi

	for d in /usr/src/linux-headers-"$spec".*-amd64 /usr/src/linux-headers-"$spec"; do
		[ -f "$d/Makefile" ] || continue
		best=$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n1)
	done
	[ -n "$best" ] && echo "$best"
}

rc=0
for spec in $KERNELS; do
	kdir=$(headers_for "$spec") || {
		echo "build-modules: no headers for kernel $spec (apt-get install linux-headers-..., or the debug kernel failed to build)" >&2
		rc=1
		continue
	}
	# Debian's headers carry the upstream release in kernel.release
	# (6.1.192 for 6.1.0-56-amd64): only the debug tree is named by it.
	if [ "$spec" = 6.12-debug ]; then
		kver=$(cat "$kdir/include/config/kernel.release")
	else
		kver=${kdir#/usr/src/linux-headers-}
	fi
	out=$BUILD/kmod-$kver
	mkdir -p "$out" || exit 1
	cmp -s "$TOP/Kbuild" "$out/Kbuild" || cp -p "$TOP/Kbuild" "$out/Kbuild" || exit 1
	sync_tree "$TOP/driver" "$out/driver" || { rc=1; continue; }
	sync_tree "$TOP/uapi" "$out/uapi" || { rc=1; continue; }

	echo "build-modules: $kver"
	log=$out/build.log
	make -C "$kdir" M="$out" W=1 modules >"$log" 2>&1
	brc=$?
	warnings=$(grep -c -E 'warning:' "$log")
	if [ $brc -ne 0 ]; then
		grep -E 'error|warning:' "$log" | head -n 50 >&2
		echo "build-modules: $kver: FAILED (log: $log)" >&2
		rc=1
		continue
	fi
	if [ "$warnings" -gt 0 ]; then
		grep -E -A3 'warning:' "$log" | head -n 60
		echo "build-modules: $kver: $warnings warning(s) (log: $log)"
	fi
	[ -f "$out/hsmcard.ko" ] || { echo "build-modules: $kver: no hsmcard.ko" >&2; rc=1; continue; }
	echo "build-modules: $out/hsmcard.ko"
done
exit $rc
