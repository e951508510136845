#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build Debian 12's QEMU (7.2) with the hsmcard device compiled in.
#
#   qemu-device/build-qemu.sh               build if needed, print the binary
#   qemu-device/build-qemu.sh --print-path  print the binary path, build nothing
#   qemu-device/build-qemu.sh --print-deps  print the Debian packages the
#                                           build needs
#
# The binary is installed as $HSMCARD_CACHE/qemu-<hash>/qemu-system-x86_64,
# where <hash> covers every file that goes into the device.  When it exists
# the script only prints its path.  The unpacked source tree and its build
# directory stay in the cache, so a change to the device rebuilds only the
# few objects it touches.  Guests need the firmware from Debian's packages:
#   -L /usr/share/seabios -L /usr/share/qemu
#
# Copyright (C) 2026 The hsmcard authors

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV="$TOP/qemu-device"
CACHE=${HSMCARD_CACHE:-/var/cache/hsmcard}
SRCDIR="$CACHE/qemu-7.2"
BUILDDIR="$SRCDIR/build-hsmcard"
KEEP_BINARIES=4

usage() {
	echo "usage: $0 [--print-path | --print-deps]" >&2
	exit 2
}

log() {
	echo "build-qemu: $*" >&2
}

die() {
	echo "build-qemu: error: $*" >&2
	exit 1
}

# Firmware-core sources that belong in the device: everything in fw/ but
# host-only programs (unit tests, benchmarks).
fw_sources() {
	local f

	for f in "$DEV"/fw/*.c; do
		[ -e "$f" ] || continue
		case "$(basename "$f")" in
		*test* | *bench* | *main*) ;;
		*) echo "$f" ;;
		esac
	done
}

# Files whose content decides the binary.
device_inputs() {
	echo "$DEV/hsmcard.c"
	echo "$DEV/meson.build"
	echo "$DEV/qemu-glue.patch"
	echo "$DEV/build-qemu.sh"
	echo "$TOP/driver/hsmcard_hw.h"
	{
		fw_sources
		find "$DEV/fw" -maxdepth 1 -type f -name '*.h'
	} | LC_ALL=C sort
}

input_hash() {
	local f list

	list=$(device_inputs)
	while read -r f; do
		[ -f "$f" ] || die "missing $f"
	done <<<"$list"
	while read -r f; do
		printf '%s\n' "${f#"$TOP"/}"
		sha256sum <"$f"
	done <<<"$list" | sha256sum | cut -c1-16
}

# ---- build dependencies ----
PKGS="dpkg-dev build-essential ninja-build meson python3 pkg-config patch
      xz-utils libglib2.0-dev libpixman-1-dev zlib1g-dev libssl-dev
      libcap-ng-dev libattr1-dev flex bison seabios qemu-system-data"

ensure_deb_src() {
	local list=/etc/apt/sources.list.d/hsmcard-src.sources

	if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list \
			/etc/apt/sources.list.d/; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || die "no deb-src entry in APT sources; run as root"
	log "adding $list"
	cat >"$list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	apt-get update -q >&2
}

ensure_packages() {
	local missing="" p

	for p in $PKGS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q 'ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root)"
	log "installing$missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 || {
		apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2
	}
}

# ---- source tree: Debian's qemu source with our glue applied ----
find_dsc() {
	find "$CACHE/src" -maxdepth 1 -name 'qemu_7.2*.dsc' 2>/dev/null |
		LC_ALL=C sort | tail -n1
}

prepare_source() {
	local glue dsc

	glue=$(sha256sum <"$DEV/qemu-glue.patch" | cut -c1-64)
	if [ -f "$SRCDIR/.hsmcard-glue" ] &&
	   [ "$(cat "$SRCDIR/.hsmcard-glue")" = "$glue" ]; then
		return 0
	fi
	# A changed glue patch: swap it in place to keep the build tree.
	if [ -f "$SRCDIR/.hsmcard-glue.patch" ] &&
	   patch -d "$SRCDIR" -p1 -R --batch -s \
		<"$SRCDIR/.hsmcard-glue.patch" >&2; then
		if patch -d "$SRCDIR" -p1 --forward --batch -s \
			<"$DEV/qemu-glue.patch" >&2; then
			cp "$DEV/qemu-glue.patch" "$SRCDIR/.hsmcard-glue.patch"
			echo "$glue" >"$SRCDIR/.hsmcard-glue"
			return 0
		fi
		log "new glue patch does not apply in place; unpacking again"
	fi

	ensure_deb_src
	mkdir -p "$CACHE/src"
	dsc=$(find_dsc)
	if [ -z "$dsc" ]; then
		log "fetching Debian's qemu source package"
		(cd "$CACHE/src" && apt-get source --download-only qemu >&2) ||
			(apt-get update -q >&2 &&
			 cd "$CACHE/src" && apt-get source --download-only qemu >&2)
		dsc=$(find_dsc)
		[ -n "$dsc" ] || die "apt-get source qemu gave no 7.2 package"
	fi

	log "unpacking $(basename "$dsc")"
	rm -rf "$SRCDIR"
	dpkg-source --no-check --no-copy -x "$dsc" "$SRCDIR" >&2
	patch -d "$SRCDIR" -p1 --forward --batch <"$DEV/qemu-glue.patch" >&2
	cp "$DEV/qemu-glue.patch" "$SRCDIR/.hsmcard-glue.patch"
	echo "$glue" >"$SRCDIR/.hsmcard-glue"
}

# Copy @1 to @2 only when the content differs, so that ninja rebuilds
# only what really changed.
sync_file() {
	mkdir -p "$(dirname "$2")"
	cmp -s "$1" "$2" || cp "$1" "$2"
}

# The repository layout is mirrored under hw/misc/hsmcard/ so that the
# relative includes between the files keep working.
copy_device() {
	local dst="$SRCDIR/hw/misc/hsmcard" f want have

	mkdir -p "$dst/qemu-device/fw" "$dst/driver"
	sync_file "$DEV/meson.build" "$dst/meson.build"
	sync_file "$DEV/hsmcard.c" "$dst/qemu-device/hsmcard.c"
	sync_file "$TOP/driver/hsmcard_hw.h" "$dst/driver/hsmcard_hw.h"
	for f in "$DEV"/fw/*.h; do
		[ -e "$f" ] && sync_file "$f" "$dst/qemu-device/fw/$(basename "$f")"
	done
	for f in $(fw_sources); do
		sync_file "$f" "$dst/qemu-device/fw/$(basename "$f")"
	done

	# Drop files that left the repository; meson lists fw/*.c at configure
	# time, so a change of the set must re-run it.
	want=$(fw_sources | xargs -rn1 basename | LC_ALL=C sort)
	for f in "$dst"/qemu-device/fw/*; do
		[ -e "$f" ] || continue
		[ -e "$DEV/fw/$(basename "$f")" ] || rm -f "$f"
	done
	have=$(cat "$dst/.fw-sources" 2>/dev/null || true)
	if [ "$want" != "$have" ]; then
		echo "$want" >"$dst/.fw-sources"
		touch "$dst/meson.build"
	fi
}

configure_qemu() {
	[ -f "$BUILDDIR/build.ninja" ] && return 0
	log "configuring"
	rm -rf "$BUILDDIR"
	mkdir -p "$BUILDDIR"
	(cd "$BUILDDIR" && ../configure \
		--target-list=x86_64-softmmu \
		--without-default-features \
		--with-git-submodules=ignore \
		--enable-tcg \
		--enable-virtfs --enable-attr --enable-cap-ng \
		--disable-slirp \
		--disable-docs --disable-tools --disable-install-blobs \
		--disable-werror) >&2
}

prune_old() {
	local d

	# Keep the newest few binaries; running guests hold theirs open.
	# shellcheck disable=SC2012
	ls -1dt "$CACHE"/qemu-????????????????/ 2>/dev/null |
		tail -n +$((KEEP_BINARIES + 1)) |
		while read -r d; do
			rm -rf "$d"
		done
}

main() {
	local print_only=0

	case "${1:-}" in
	"") ;;
	--print-path) print_only=1 ;;
	--print-deps)
		# shellcheck disable=SC2086 # one line, one word per package
		echo $PKGS
		exit 0
		;;
	-h | --help) usage ;;
	*) usage ;;
	esac

	BIN="$CACHE/qemu-$(input_hash)/qemu-system-x86_64"

	if [ "$print_only" = 1 ]; then
		echo "$BIN"
		exit 0
	fi
	if [ -x "$BIN" ]; then
		echo "QEMU: $BIN"
		exit 0
	fi

	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	# Someone else may have built it while we waited for the lock.
	if [ -x "$BIN" ]; then
		echo "QEMU: $BIN"
		exit 0
	fi

	ensure_packages
	prepare_source
	copy_device
	configure_qemu
	log "building (first build takes several minutes)"
	ninja -C "$BUILDDIR" qemu-system-x86_64 >&2

	mkdir -p "$(dirname "$BIN")"
	cp "$BUILDDIR/qemu-system-x86_64" "$BIN.tmp"
	mv "$BIN.tmp" "$BIN"
	prune_old
	echo "QEMU: $BIN"
}

# Parsed in full before it runs: safe to edit while a build is going on.
main "$@"
