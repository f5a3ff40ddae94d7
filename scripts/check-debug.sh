#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check-debug: the VM suites and the ioctl fuzzer on a kernel that
# catches memory and locking bugs (scripts/debug-kernel.sh: KASAN,
# lockdep, DEBUG_ATOMIC_SLEEP, DEBUG_OBJECTS, kmemleak, hung-task
# detection), with ccid.ko built in that kernel's tree.  run-vm fails a
# run whose kernel log has any report, and vm/init scans for leaks after
# the module is unloaded.  The same TAP stream as make check.
#
#   check-debug.sh            all of it: recovery_test, emu_test (with its
#                             randomized and load runs), ccid_test against
#                             QEMU's reader, and a long fuzzer run
#   check-debug.sh lifetime   what CI runs (.ci/run, after make check):
#                             recovery_test, whose unplug, reset, signal
#                             and power-management tests are where object
#                             lifetimes and lock order are at stake, and a
#                             shorter fuzzer run

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
st=tools/testing/selftests/drivers/usb/ccid
part=${1:-all}
logdir=$top/build/check-debug
rm -rf "$logdir"
mkdir -p "$logdir"

# shellcheck source=scripts/tap.sh
. "$top/scripts/tap.sh"

case $part in
all)	fuzz_calls=60000 ;;
lifetime) fuzz_calls=20000 ;;
*)	echo "usage: check-debug.sh [all|lifetime]" >&2; exit 2 ;;
esac

echo "TAP version 13"
step "build: debug kernel with ccid in its tree (CONFIG_USB_CCID=m)" \
	scripts/debug-kernel.sh
step "build: selftests" make --no-print-directory selftests
[ -f build/kernel/debug/release ] || tap_end

vm() {	# vm NAME READER TIMEOUT CMD: one run-vm boot of the debug kernel
	ksft "debug: $1" "$st/run-vm" --kernel debug --reader "$2" \
		--timeout "$3" -- "$4"
}

if [ "$part" = all ]; then
	vm usbip-emu none 5400 "$top/$st/vm_emu_suite.sh"
	vm qemu-ccid qemu-ccid 1800 "$top/$st/vm_suite.sh"
else
	vm recovery none 3600 "$top/$st/recovery_test"
fi
# A fixed seed: the same calls every time; ioctl_fuzz --help for more
vm "ioctl fuzzer, $fuzz_calls calls, seed 1" none 3600 \
	"$top/$st/ioctl_fuzz --seed 1 --calls $fuzz_calls"

tap_end
