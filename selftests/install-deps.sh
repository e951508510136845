#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install what building and testing hsmcard needs from Debian 12's archive:
# the toolchain, Debian's 6.1 and 6.12 kernels with their headers, the 6.12
# source package (kselftest harness, checkpatch, and the source of the debug
# kernel of selftests/vm/debug-kernel/, whose build needs bc, flex, bison,
# libelf-dev, libssl-dev and cpio), what QEMU's build needs and
# what the guest tests run (the guest uses the host's root file system).
# When QEMU with the card is not built yet, QEMU's build dependencies are
# installed first and QEMU is built (qemu-device/build-qemu.sh) in the
# background while the rest installs.
# Does nothing when everything is installed already.  Run as root.

set -euo pipefail

PKGS=(
	build-essential bc flex bison libelf-dev kmod cpio xz-utils
	dpkg-dev patch python3 pkg-config ninja-build meson
	linux-image-amd64 linux-headers-amd64
	linux-image-6.12-amd64 linux-headers-6.12-amd64 linux-source-6.12
	busybox-static seabios qemu-system-data
	libglib2.0-dev libpixman-1-dev zlib1g-dev libcap-ng-dev libattr1-dev
	libssl-dev openssl libnl-3-dev libnl-genl-3-dev libfdt-dev
	rng-tools5 pciutils iproute2 cryptsetup-bin util-linux coreutils
	dmsetup socat
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed' || missing+=("$p")
done

# `apt-get source qemu` (qemu-device/build-qemu.sh) needs a deb-src entry.
need_src=0
grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list \
	/etc/apt/sources.list.d/ || need_src=1

[ ${#missing[@]} -gt 0 ] || [ $need_src -eq 1 ] || exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages (run as root): ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ $need_src -eq 1 ]; then
	cat >/etc/apt/sources.list.d/hsmcard-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -q

# QEMU's build dependencies first: QEMU (about six minutes on two cores)
# then builds in the background while the kernels and the rest install.
# build-qemu.sh's lock makes a `make qemu` that comes meanwhile wait for it.
TOP=$(cd "$(dirname "$0")/.." && pwd)
BQ=$TOP/qemu-device/build-qemu.sh
read -r -a qemu_deps <<<"$("$BQ" --print-deps)"
first=()
rest=()
for p in "${qemu_deps[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed' || first+=("$p")
done
for p in "${missing[@]}"; do
	case " ${qemu_deps[*]} " in
	*" $p "*) ;;
	*) rest+=("$p") ;;
	esac
done
[ ${#first[@]} -eq 0 ] ||
	apt-get install -y -q --no-install-recommends "${first[@]}"
qpid=
if [ ! -x "$("$BQ" --print-path)" ]; then
	qlog=${BUILD:-$TOP/build}/qemu-build.log
	mkdir -p "$(dirname "$qlog")"
	echo "install-deps: building QEMU in the background (log: $qlog)"
	"$BQ" >"$qlog" 2>&1 &
	qpid=$!
fi
rc=0
[ ${#rest[@]} -eq 0 ] ||
	apt-get install -y -q --no-install-recommends "${rest[@]}" || rc=$?
if [ -n "$qpid" ]; then
	if wait "$qpid"; then
		echo "install-deps: $(tail -n1 "$qlog")"
	else
		echo "install-deps: the QEMU build failed (make qemu tries again):" >&2
		tail -n 20 "$qlog" >&2
	fi
fi
exit $rc
