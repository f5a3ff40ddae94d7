#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# debug-kernel.sh: build the debug kernel of make check-debug, with ccid
# built in the tree as CONFIG_USB_CCID=m, and lay it out as run-vm wants
# a guest kernel (build/kernel/debug).
#
# The kernel is Debian's linux-source-6.12 with allnoconfig plus
# scripts/debug-kernel.config and the selftests' config.  It is cached
# outside the repo, in $CCID_CACHE (default /var/cache/ccid), keyed by the
# source package's version and the two fragments: only the first build is
# slow.  Every run then copies the project's files into the tree
# (scripts/intree.sh) and rebuilds what changed, which is ccid.ko.
#
# Prints the path of the in-tree ccid.ko on success.

set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CCID_CACHE:-/var/cache/ccid}
tar=/usr/src/linux-source-6.12.tar.xz
frags=("$repo/scripts/debug-kernel.config"
       "$repo/tools/testing/selftests/drivers/usb/ccid/config")
jobs=$(nproc)

log() { printf 'debug-kernel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) ||
	die "linux-source-6.12 is not installed: run make deps"
# The options the fragments ask for, as .config lines
wanted() {
	grep -h '^CONFIG_' "${frags[@]}" |
		sed 's/^\(CONFIG_[A-Z0-9_]*\)=n$/# \1 is not set/'
}

# The cache key: the source and the options (not the comments)
key=$( { echo "$srcver"; wanted; } | sha256sum)
dir=$cache/debug-6.12-${key:0:16}
tree=$dir/linux
kmake() { make -C "$tree" -j"$jobs" -s "$@"; }

configure() {
	wanted >"$dir/fragment.config"
	kmake allnoconfig KCONFIG_ALLCONFIG="$dir/fragment.config"
	# allnoconfig drops what it cannot have: every option must be there
	local missing
	missing=$(wanted | grep -vxF -f "$tree/.config" || true)
	[ -z "$missing" ] || die "options the config did not take: $missing"
}

build_kernel() {
	local start=$SECONDS release

	log "building the debug kernel in $dir (the first time: long)"
	rm -rf "$dir"
	mkdir -p "$dir"
	tar -xJf "$tar" -C "$dir"
	mv "$dir/linux-source-6.12" "$tree"
	"$repo/scripts/intree.sh" "$tree"
	configure
	# the kernel alone: a ccid that does not build fails below, not here
	kmake vmlinux bzImage
	release=$(make -C "$tree" -s kernelrelease)
	mkdir -p "$dir/boot"
	cp "$tree/arch/x86/boot/bzImage" "$dir/boot/vmlinuz-$release"
	cp "$tree/vmlinux" "$dir/vmlinux"
	echo "$release" >"$dir/release"
	log "kernel $release built in $((SECONDS - start)) s"
	echo "$((SECONDS - start))" >"$dir/build-seconds"
	touch "$dir/.built"
}

[ -f "$dir/.built" ] || build_kernel

# ccid from the project's files of now, built in the tree
"$repo/scripts/intree.sh" "$tree"
kmake modules
release=$(cat "$dir/release")
rm -rf "$dir/lib"
kmake modules_install INSTALL_MOD_PATH="$dir" INSTALL_MOD_STRIP=1 \
	DEPMOD=/sbin/depmod
[ -f "$dir/lib/modules/$release/modules.dep" ] || die "modules_install failed"

mkdir -p "$repo/build/kernel"
ln -sfn "$dir" "$repo/build/kernel/debug"
ko=$tree/drivers/usb/class/ccid/ccid.ko
[ -f "$ko" ] || die "no $ko"
echo "$ko"
