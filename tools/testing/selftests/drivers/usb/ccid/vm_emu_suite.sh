#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The tests that run inside one run-vm boot with no QEMU reader, against
# readers that ccid_emu emulates through USB/IP (vhci_hcd): recovery_test
# (the ladder, quirks, signals, power management), then emu_test
# (descriptors, slot events, multi-slot, the randomized run and the load
# tests).  Exits 1 when either failed, else with the last non-zero status
# (4: skipped).
dir=$(cd "$(dirname "$0")" && pwd)
rc=0
for t in recovery_test emu_test; do
	"$dir/$t"
	ret=$?
	if [ "$ret" -eq 1 ] || { [ "$ret" -ne 0 ] && [ "$rc" -ne 1 ]; }; then
		rc=$ret
	fi
done
exit "$rc"
