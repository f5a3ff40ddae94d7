#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The tests that run inside one run-vm boot with no QEMU reader, against
# readers that ccid_emu emulates through USB/IP (vhci_hcd).
#
# emu_test (descriptors, slot events, multi-slot, randomized and load
# runs) is not run here yet: it takes longer than the suite's budget in
# TCG; see the note on issue 3.
dir=$(cd "$(dirname "$0")" && pwd)
exec "$dir/recovery_test"
