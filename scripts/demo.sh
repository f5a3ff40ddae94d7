#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# What `make run` shows inside the VM: the driver bound to QEMU's usb-ccid
# reader with an emulated card, step by step.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
ccidctl=$top/tools/ccid/ccidctl

step() {
	echo
	echo "### $*"
}

step "kernel log: the driver bound the reader"
dmesg | grep -i ccid

node=$(ls /sys/class/usbmisc | grep '^ccid' | head -n 1)
intf=/sys/class/usbmisc/$node/device
step "the reader is /dev/$node; its sysfs attributes"
for a in firmware_version ccid_version slots protocols exchange_level \
	 max_message_length pin_support features; do
	printf '%-20s %s\n' "$a" "$(cat "$intf/$a")"
done

step "cat $intf/firmware_version"
cat "$intf/firmware_version"

step "ccidctl info"
"$ccidctl" -d "/dev/$node" info

step "ccidctl power-on  (the card's ATR)"
"$ccidctl" -d "/dev/$node" power-on

step "ccidctl status"
"$ccidctl" -d "/dev/$node" status

step "ccidctl apdu: SELECT the CAC application (61 xx: xx bytes to fetch)"
"$ccidctl" -d "/dev/$node" apdu "00 A4 04 00 07 A0 00 00 00 79 01 00"

step "ccidctl apdu --auto-get-response: the same, with GET RESPONSE"
"$ccidctl" -d "/dev/$node" apdu --auto-get-response \
	"00 A4 04 00 07 A0 00 00 00 79 01 00"

step "ccidctl power-off  (then the slot status)"
"$ccidctl" -d "/dev/$node" power-off
