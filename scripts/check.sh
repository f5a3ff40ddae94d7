#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: the quality gates and every test, as one TAP stream that
# ends with "N passed, N failed, N skipped".  Exits non-zero on any
# failure, and on any skip when CI is set (a test that could not run is
# not a pass).

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
st=tools/testing/selftests/drivers/usb/ccid
logdir=$top/build/check
rm -rf "$logdir"
mkdir -p "$logdir"

# shellcheck source=scripts/tap.sh
. "$top/scripts/tap.sh"

# Zero warnings from W=1 and sparse (C=2)
module_gate() {
	make --no-print-directory "module-$1" || return 1
	if grep -E ': (warning|error):|^WARNING:' "build/$1/build.log" | grep -v 'Skipping BTF'; then
		return 1
	fi
}

# checkpatch --strict, in a kernel tree, on the driver's patch as linux-usb
# would get it: scripts/intree.sh puts ccid into a copy of the tree
# skeleton that install-deps.sh unpacked (build/ksrc), and the difference
# is the patch: the driver, its UAPI header, Kconfig and Makefile lines,
# documentation, ABI, ioctl number and MAINTAINERS entry.  In a tree,
# checkpatch knows the USB core's CamelCase names (bcdDevice,
# bInterfaceClass, ...) from include/.  The selftests (tools/) are not in
# it yet.  The one ignore, and why:
#  MACRO_ARG_REUSE: CCID_COUNTER_ATTR() pastes its argument into names
#    (the attribute, its struct and the counter); it is never evaluated.
checkpatch() {
	local tree=$top/build/intree patch=$logdir/series.patch
	rm -rf "$tree"
	cp -a build/ksrc "$tree" || return 1
	scripts/intree.sh "$tree" || return 1
	cat >"$patch" <<-'EOM'
	From: ccid developers <ccid@example.org>
	Subject: [PATCH] usb: class: add a driver for CCID smart-card readers

	Smart-card readers of the USB CCID class get a character device each,
	/dev/ccidN, whose ioctls send the class's commands to every slot.  The
	driver keeps the reader's commands in sequence for all openers and
	recovers a reader that stops answering: Abort, clear halt, USB reset.

	Signed-off-by: ccid developers <ccid@example.org>
	---
	EOM
	(cd build && diff -Naur --no-dereference -x .source -x tools ksrc intree) >>"$patch"
	grep -q '^+++ ' "$patch" || return 1
	(cd "$tree" && perl scripts/checkpatch.pl --strict --terse \
		--ignore MACRO_ARG_REUSE --show-types "$patch") |
		tee /dev/stderr | grep -qE '(ERROR|WARNING|CHECK):' && return 1
	return 0
}

# The UAPI header compiles on its own as C90, as usr/include/Makefile
# demands, and has the same layout for 32- and 64-bit userspace.  The
# layout is read from the compiler's output, not from running a 32-bit
# program: the build machine's kernel may not execute one.  The 32-bit
# path itself is exercised in the guest (ccidctl32 in vm_suite.sh).
uapi_gate() {
	gcc -std=c90 -Wall -Werror -pedantic -fsyntax-only -I include/uapi \
		-x c - <<<'#include <linux/usb/ccid_reader.h>' || return 1
	rm -f "$st"/uapi_layout*.txt
	make --no-print-directory -C "$st" uapi_layout >/dev/null || return 1
	# A sanity floor: every structure and ioctl made it into the list
	[ "$(grep -c . "$st/uapi_layout64.txt")" -ge 60 ] || return 1
	diff -u "$st/uapi_layout64.txt" "$st/uapi_layout32.txt"
}

echo "TAP version 13"
step "build: ccid.ko for 6.1, W=1 C=2, no warnings" module_gate 6.1
step "build: ccid.ko for 6.12, W=1 C=2, no warnings" module_gate 6.12
step "checkpatch --strict, in a kernel tree, on the series" checkpatch
step "uapi: C90 standalone, same layout on 32 and 64 bit" uapi_gate
step "build: tools (ccidctl)" make --no-print-directory tools
step "build: selftests" make --no-print-directory selftests

ksft "proto (host)" "$st/proto_test"
# A fixed number of inputs from a fixed seed: the same run every time
step "fuzz: ccid_proto.c, 2,000,000 libFuzzer inputs from seed 1" \
	"$st/fuzz_proto" -runs=2000000 -seed=1 -max_len=4096
ksft "ccidctl (host)" "$st/ccidctl_test.sh"
for k in 6.1 6.12; do
	ksft "qemu-ccid $k" "$st/run-vm" --kernel "$k" --reader qemu-ccid -- \
		"$top/$st/vm_suite.sh"
	# QEMU's reader with the project's VSCard card: every APDU size, and
	# the out-of-step reader a dropped APDU leaves (about 3 min in TCG)
	ksft "passthru $k" "$st/passthru_run.sh" --kernel "$k"
	# about 8 min in TCG, most of it emu_test's randomized and load runs
	ksft "usbip-emu $k" "$st/run-vm" --kernel "$k" --reader none \
		--timeout 2400 -- "$top/$st/vm_emu_suite.sh"
done
# Random ioctls from 4 processes, with unplugs, resets, signals and the
# emulator's random faults; a fixed seed, so the same run every time
# (about 4 min in TCG; check-debug runs it on the debug kernel)
ksft "ioctl fuzzer 6.1" "$st/run-vm" --kernel 6.1 --reader none \
	--timeout 1800 -- "$top/$st/ioctl_fuzz --seed 1 --calls 30000"
# The emulator's own features, driven through ccidctl: what they test is
# the emulator and the tool, so one kernel is enough (about 7 min in TCG)
ksft "emu-smoke 6.1" "$st/run-vm" --kernel 6.1 --reader none \
	--timeout 1800 -- "$top/$st/emu_smoke.sh"

tap_end
