#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The tests that run inside one run-vm boot with QEMU's usb-ccid reader:
# the kselftests, then ccidctl against the same reader.  Exits non-zero
# when either does.
dir=$(cd "$(dirname "$0")" && pwd)
"$dir/ccid_test"
a=$?
"$dir/ccidctl_vm_test.sh"
b=$?
[ "$a" -eq 0 ] && [ "$b" -eq 0 ]
