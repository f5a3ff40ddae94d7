#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the ccid build, checks and VM tests need on a Debian 12
# machine, and fetch the guest kernels used by
# tools/testing/selftests/drivers/usb/ccid/run-vm.
#
# Idempotent: when everything is already present it only runs a few dpkg-query
# and test(1) calls, and apt-get update is run only when something is missing.
#
# Results, all under build/ (gitignored):
#   build/kernel/<ver>/release        kernel release string, e.g. 6.1.0-56-amd64
#   build/kernel/<ver>/boot/vmlinuz-<release>
#   build/kernel/<ver>/lib/modules/<release>/  (with modules.dep from depmod)
#   build/kernel/<ver>/vmlinux        the ELF kernel unpacked from vmlinuz,
#                                     which QEMU boots faster (PVH entry)
#   build/ksrc/                       checkpatch.pl and the kselftest headers
#                                     from the 6.12 source tree
# for <ver> in 6.1 and 6.12.  The headers to build against are
# /usr/src/linux-headers-$(cat build/kernel/<ver>/release); the image is always
# the exact Debian version of the installed headers, so vermagic matches.
#
# Must run as root (CI runs as root).

set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$repo/build"

packages=(
	qemu-system-x86 busybox-static
	linux-headers-amd64 linux-headers-6.12-amd64
	linux-source-6.1 linux-source-6.12
	libnss3-tools sparse xz-utils zstd cpio kmod gcc gcc-multilib make perl
	python3 clang libclang-rt-14-dev
	# the debug kernel of make check-debug (scripts/debug-kernel.sh)
	flex bison bc libelf-dev
)

# Kernel flavours: <ver> <headers metapackage>
kernels=(
	"6.1 linux-headers-amd64"
	"6.12 linux-headers-6.12-amd64"
)

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_updated=0
apt_update() {
	if [ "$apt_updated" = 0 ]; then
		log "apt-get update"
		apt-get update -qq
		apt_updated=1
	fi
}

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

apt_install() {
	apt_update
	log "apt-get install $*"
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"

# ---------------------------------------------------------------------------
# 2. Guest kernel images
# ---------------------------------------------------------------------------

# Print "<release> <version>" of the headers a metapackage points to, e.g.
# "6.1.0-56-amd64 6.1.192-2", from the installed metapackage's Depends.
headers_of() {
	local dep pkg ver

	dep=$(dpkg-query -W -f='${Depends}' "$1")
	pkg=${dep%% *}
	ver=${dep#*(= }
	ver=${ver%%)*}
	if [ "${pkg#linux-headers-}" = "$pkg" ] || [ -z "$ver" ]; then
		die "cannot parse Depends of $1: '$dep'"
	fi
	echo "${pkg#linux-headers-} $ver"
}

# Download the image package matching release $1 at Debian version $2 into
# the current directory.  Either the unsigned or the signed package will do.
download_image() {
	local p

	for p in "linux-image-$1-unsigned" "linux-image-$1"; do
		if apt-get download -qq "$p=$2" >/dev/null 2>&1; then
			return 0
		fi
	done
	return 1
}

# Unpack the ELF vmlinux from bzImage $1 into $2: find the compressed
# payload by its magic and decompress it.  Decompressors complain about the
# data that follows the payload, so judge by the result, not the status.
extract_vmlinux() {
	local magic cmd off

	for magic in $'\xfd7zXZ:xz -dcq --single-stream' $'\x28\xb5\x2f\xfd:zstd -dcq' \
		     $'\x1f\x8b\x08:gzip -dcq'; do
		cmd=${magic#*:}
		magic=${magic%%:*}
		while IFS=: read -r off _; do
			# shellcheck disable=SC2086 # $cmd is a command line
			tail -c +$((off + 1)) "$1" | $cmd >"$2.tmp" 2>/dev/null
			if [ "$(head -c 4 "$2.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				mv "$2.tmp" "$2"
				return 0
			fi
		done < <(LC_ALL=C grep -obUa "$magic" "$1")
	done
	rm -f "$2.tmp"
	return 1
}

fetch_kernel() {
	local ver=$1 meta=$2 dir="$build/kernel/$1"
	local release dver tmp deb moddir

	read -r release dver < <(headers_of "$meta")
	installed "linux-headers-$release" || apt_install "linux-headers-$release"

	if [ "$(cat "$dir/release" 2>/dev/null)" = "$release" ] &&
	   [ -f "$dir/boot/vmlinuz-$release" ] &&
	   [ -f "$dir/lib/modules/$release/modules.dep" ]; then
		[ -f "$dir/vmlinux" ] ||
			extract_vmlinux "$dir/boot/vmlinuz-$release" "$dir/vmlinux" ||
			log "warning: cannot unpack vmlinux (run-vm will boot vmlinuz)"
		return 0
	fi

	log "fetching kernel image $release ($dver) into ${dir#"$repo"/}"
	rm -rf "$dir"
	tmp="$build/kernel/.dl-$ver"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! (cd "$tmp" && download_image "$release" "$dver"); then
		# Package lists may be stale or the archive may have moved on:
		# refresh, and if the headers' exact version is gone, upgrade the
		# headers so that headers and image stay in lock-step.
		apt_update
		if ! (cd "$tmp" && download_image "$release" "$dver"); then
			log "image for $release=$dver is gone; upgrading $meta"
			apt_install "$meta"
			read -r release dver < <(headers_of "$meta")
			installed "linux-headers-$release" ||
				apt_install "linux-headers-$release"
			(cd "$tmp" && download_image "$release" "$dver") ||
				die "cannot download linux-image-$release ($dver)"
		fi
	fi

	mkdir -p "$dir"
	for deb in "$tmp"/*.deb; do
		dpkg -x "$deb" "$dir"
	done
	rm -rf "$tmp"

	# Debian's image packages do not ship modules.dep: depmod runs in their
	# postinst.  Newer packages install to /usr/lib/modules: link it.
	if [ ! -d "$dir/lib/modules/$release" ] &&
	   [ -d "$dir/usr/lib/modules/$release" ]; then
		mkdir -p "$dir/lib"
		ln -s ../usr/lib/modules "$dir/lib/modules"
	fi
	moddir="$dir/lib/modules/$release"
	[ -f "$dir/boot/vmlinuz-$release" ] || die "no vmlinuz-$release in image"
	[ -d "$moddir" ] || die "no lib/modules/$release in image"
	depmod -b "$dir" "$release"
	extract_vmlinux "$dir/boot/vmlinuz-$release" "$dir/vmlinux" ||
		log "warning: cannot unpack vmlinux (run-vm will boot vmlinuz)"

	echo "$release" >"$dir/release"
}

for k in "${kernels[@]}"; do
	# shellcheck disable=SC2086 # split "<ver> <meta>"
	fetch_kernel $k
done

# ---------------------------------------------------------------------------
# 3. A skeleton of the kernel source tree: enough for checkpatch to run
#    in a tree (it seeds the USB core's CamelCase names from include/),
#    for scripts/intree.sh to hook ccid in, and for the selftests' lib.mk
# ---------------------------------------------------------------------------
ksrc_files=(
	COPYING CREDITS Kbuild MAINTAINERS Makefile README
	include scripts
	Documentation/dev-tools/checkpatch.rst
	Documentation/usb/index.rst
	Documentation/userspace-api/ioctl/ioctl-number.rst
	drivers/usb/Makefile drivers/usb/class/Kconfig drivers/usb/class/Makefile
	tools/testing/selftests/lib.mk tools/testing/selftests/kselftest
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/kselftest.h
)
# checkpatch knows a tree by these: the skeleton has them, empty
ksrc_dirs=(arch fs init ipc kernel lib)
ksrc_tar=/usr/src/linux-source-6.12.tar.xz
ksrc_stamp="$build/ksrc/.source"
ksrc_id="$(stat -c '%s %Y' "$ksrc_tar") ${ksrc_files[*]} ${ksrc_dirs[*]}"
if [ "$(cat "$ksrc_stamp" 2>/dev/null)" != "$ksrc_id" ]; then
	log "extracting a kernel tree skeleton (checkpatch, lib.mk) into build/ksrc"
	rm -rf "$build/ksrc"
	mkdir -p "$build/ksrc"
	top=linux-source-6.12
	tar -xJf "$ksrc_tar" -C "$build/ksrc" --strip-components=1 \
		"${ksrc_files[@]/#/$top/}"
	for d in "${ksrc_dirs[@]}"; do
		mkdir -p "$build/ksrc/$d"
	done
	echo "$ksrc_id" >"$ksrc_stamp"
fi

for k in "${kernels[@]}"; do
	ver=${k%% *}
	log "kernel $ver: $(cat "$build/kernel/$ver/release")"
done
