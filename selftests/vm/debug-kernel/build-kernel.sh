#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the hsmcard debug kernel (KASAN, lockdep, kmemleak, DMA-API debug,
# UBSAN, crypto fuzz self-tests) from Debian's linux-source-6.12.
#
#   selftests/vm/debug-kernel/build-kernel.sh               build if needed
#   selftests/vm/debug-kernel/build-kernel.sh --print-path  print the cache
#                                     directory, build nothing (status 1 if
#                                     it is not built)
#
# Base: x86_64_defconfig, with the fragment selftests/vm/debug-kernel/config
# merged on top (scripts/kconfig/merge_config.sh) and `olddefconfig`; every
# option of the fragment is then checked in the final .config and the build
# fails if one did not stick (a dependency that Kconfig silently dropped).
#
# Result, in $HSMCARD_CACHE/kernel-debug-<hash>/ (<hash> covers the
# linux-source-6.12 package version, the fragment and this script's code):
#   bzImage          the kernel
#   kernel.release   its version (uname -r), e.g. 6.12.117-hsmdebug
#   linux/           the configured, built source tree, object files
#                    removed: enough for `make -C linux M=<dir> modules`
#   modules/         /lib/modules/<kver>/ as `modules_install` made it
#                    (modules.builtin for modprobe in the guest)
# The tree is built in a temporary directory (in-tree build, no absolute
# paths inside) and renamed into place when complete, so an interrupted
# build never looks finished.  Concurrent callers serialise on a lock.
#
# Copyright (C) 2026 The hsmcard authors

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRAGMENT=$HERE/config
CACHE=${HSMCARD_CACHE:-/var/cache/hsmcard}
SRC_TAR=${LINUX_SRC_TAR:-/usr/src/linux-source-6.12.tar.xz}
SRC_PKG=linux-source-6.12
KEEP=2

log() {
	echo "build-kernel: $*" >&2
}

die() {
	echo "build-kernel: error: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 [--print-path]" >&2
	exit 2
}

input_hash() {
	local ver

	ver=$(dpkg-query -W -f='${Version}' "$SRC_PKG" 2>/dev/null) ||
		die "$SRC_PKG is not installed (make deps)"
	{
		echo "$SRC_PKG $ver"
		sha256sum <"$FRAGMENT"
		# Comments may change without a rebuild.
		grep -v -E '^[[:space:]]*(#|$)' "${BASH_SOURCE[0]}" | sha256sum
	} | sha256sum | cut -c1-16
}

# check_config DOTCONFIG: every fragment line must hold in DOTCONFIG.
check_config() {
	local cfg=$1 line sym bad=0

	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF -- "$line" "$cfg" || {
				sym=${line%%=*}
				# shellcheck disable=SC1087 # a regex, not an array
				log "fragment wants $line, .config has: $(grep -E "^(# )?$sym[= ]" "$cfg" || echo "(absent)")"
				bad=1
			}
			;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }
			sym=${sym%% *}
			if grep -qE "^$sym=" "$cfg"; then
				log "fragment wants $sym off, .config has: $(grep -E "^$sym=" "$cfg")"
				bad=1
			fi
			;;
		esac
	done <"$FRAGMENT"
	[ $bad -eq 0 ] || die "the fragment did not apply (see above)"
}

# Drop what an external module build does not need.
trim_tree() {
	local t=$1

	rm -f "$t/vmlinux" "$t/vmlinux.o" "$t/vmlinux.a" "$t/arch/x86/boot/bzImage"
	find "$t" \( -path "$t/scripts" -o -path "$t/tools" \) -prune -o \
		-type f \( -name '*.o' -o -name '*.a' -o -name '.*.cmd' \
		-o -name '*.ko' -o -name '*.mod.c' -o -name '*.o.d' \) \
		-print0 | xargs -0 rm -f
	rm -rf "$t/Documentation" "$t/debian" "$t/sound" "$t/samples"
}

prune_old() {
	local d

	# shellcheck disable=SC2012
	ls -1dt "$CACHE"/kernel-debug-????????????????/ 2>/dev/null |
		tail -n +$((KEEP + 1)) | while read -r d; do
			rm -rf "$d"
		done
}

build() {
	local out=$1 tmp t kver jobs start

	start=$(date +%s)
	[ -f "$SRC_TAR" ] || die "$SRC_TAR missing (apt-get install $SRC_PKG)"
	tmp=$(mktemp -d "$CACHE/kernel-debug-tmp.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	t=$tmp/linux
	log "unpacking $SRC_TAR"
	mkdir -p "$t"
	tar -xJf "$SRC_TAR" -C "$t" --strip-components=1

	log "configuring: x86_64_defconfig + $(basename "$HERE")/config"
	make -C "$t" -s x86_64_defconfig >&2
	(cd "$t" && KCONFIG_CONFIG=.config \
		scripts/kconfig/merge_config.sh -m .config "$FRAGMENT") >&2
	make -C "$t" -s olddefconfig >&2
	check_config "$t/.config"

	jobs=$(nproc)
	log "building with -j$jobs under nice (20-40 min on 2 cores)"
	nice -n 10 make -C "$t" -j"$jobs" -s bzImage modules >&2
	nice -n 10 make -C "$t" -s INSTALL_MOD_PATH="$tmp/mi" \
		INSTALL_MOD_STRIP=1 modules_install >&2
	kver=$(cat "$t/include/config/kernel.release")
	mkdir -p "$tmp/modules"
	mv "$tmp/mi/lib/modules/$kver" "$tmp/modules/$kver"
	rm -f "$tmp/modules/$kver/build" "$tmp/modules/$kver/source"
	rm -rf "$tmp/mi"
	cp "$t/arch/x86/boot/bzImage" "$tmp/bzImage"
	cp "$t/System.map" "$tmp/System.map"
	echo "$kver" >"$tmp/kernel.release"
	trim_tree "$t"
	echo "$(($(date +%s) - start))" >"$tmp/build-seconds"

	mv "$tmp" "$out"
	trap - EXIT
	log "built $kver in $(cat "$out/build-seconds")s"
}

main() {
	local print_only=0 out

	case "${1:-}" in
	"") ;;
	--print-path) print_only=1 ;;
	*) usage ;;
	esac
	[ -f "$FRAGMENT" ] || die "missing $FRAGMENT"
	out=$CACHE/kernel-debug-$(input_hash)

	if [ "$print_only" = 1 ]; then
		echo "$out"
		[ -f "$out/bzImage" ]
		exit
	fi
	if [ -f "$out/bzImage" ]; then
		echo "debug kernel: $out ($(cat "$out/kernel.release"))"
		exit 0
	fi
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.kernel-debug.lock"
	flock 9
	if [ ! -f "$out/bzImage" ]; then
		build "$out"
		prune_old
	fi
	echo "debug kernel: $out ($(cat "$out/kernel.release"))"
}

# Parsed in full before it runs: safe to edit while a build is going on.
main "$@"
