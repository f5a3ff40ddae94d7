#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ccidctl_vm_test.sh - ccidctl against QEMU's usb-ccid reader and its
# emulated CAC card, inside the VM that run-vm boots:
#
#   tools/testing/selftests/drivers/usb/ccid/run-vm -- \
#	tools/testing/selftests/drivers/usb/ccid/ccidctl_vm_test.sh
#
# TAP output; every test is skipped outside the VM.  Exit status 1 if a
# test failed.  CCIDCTL in the environment names another ccidctl binary.
#
# QEMU up to 7.2 answers two commands differently from later versions (see
# ccid_test.c): GetParameters with a garbled frame, and an XfrBlock to an
# unpowered card with an empty answer and no error.  The version comes
# from the QEMU monitor.

here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
top=$(cd "$here/../../../../../.." && pwd)
ccidctl=${CCIDCTL:-$top/tools/ccid/ccidctl}

ATR="3B 7A 18 00 00 73 66 74 65 20 63 64 31 34 34"
SELECT_CAC="00 A4 04 00 07 A0 00 00 00 79 01 00"
SELECT_UNKNOWN="00 A4 04 00 05 A0 00 00 00 01"
CAC_FCI="6F 0B 84 07 A0 00 00 00 79 01 00 A5 00 90 00"
EINVAL_TEXT="bad slot, nonzero reserved field, bad argument or malformed Secure block"
UNSUPPORTED="the reader does not support this command"

echo "TAP version 13"
if [ "${CCID_VM:-}" != 1 ] || [ "${CCID_VM_READER:-}" != qemu-ccid ]; then
	echo "1..1"
	echo "ok 1 - ccidctl against QEMU's reader # SKIP not in the ccid test VM with --reader qemu-ccid (use run-vm)"
	exit 0
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=tap_lib.sh
. "$here/tap_lib.sh"

# The reader: the lowest ccidN that sysfs knows, as ccidctl picks it
node=$(lowest_node)
if [ -z "$node" ]; then
	echo "1..1"
	echo "not ok 1 - a CCID reader in /sys/class/usbmisc"
	exit 1
fi

legacy=0
version=$("$CCID_VMCTL" info version 2>/dev/null | head -n1)
case "$version" in
[0-6].*|7.[0-2].*|7.[0-2]) legacy=1 ;;
esac
if [ "$legacy" = 1 ]; then
	echo "# reader $node, QEMU $version: legacy usb-ccid answers"
else
	echo "# reader $node, QEMU $version"
fi

# ---- info ----------------------------------------------------------------
want_info="vendor_id: 0x08e6
product_id: 0x4433
firmware: 0.00
ccid_version: 1.10
slots: 1
protocols: T=0
exchange_level: tpdu
max_message_length: 65554
buffer_length: 65554
pin_support: verify
features: 0x000104fe
voltage_support: 5V 3V 1.8V
max_ifsd: 254
default_clock: 4000
max_clock: 65536
data_rate: 9600
max_data_rate: 115200
max_busy_slots: 1
num_clocks: 0
num_data_rates: 0
synch_protocols: 0x00000000
mechanical: 0x00000000
class_get_response: 0xff
class_envelope: 0xff
lcd_layout: 0x0000
interface_class: 0x0b
device: /dev/$node"
check "info: QEMU's reader" 0 "$want_info" "" -- "$ccidctl" info
check "info -d NAME" 0 "$want_info" "" -- "$ccidctl" -d "$node" info
check "info -d PATH" 0 "$want_info" "" -- "$ccidctl" info -d "/dev/$node"

# ---- power, status, APDUs ----------------------------------------------
check "power-on prints the ATR" 0 "$ATR" "" -- "$ccidctl" power-on
check "power-on --voltage 3 prints the same ATR" 0 "$ATR" "" -- \
	"$ccidctl" power-on --voltage 3
check "status: active" 0 "card: active
clock: running" "" -- "$ccidctl" status
check "apdu: SELECT CAC applet" 0 "61 0D" "" -- "$ccidctl" apdu "$SELECT_CAC"
check "apdu: GET RESPONSE after SELECT" 0 "61 0D
$CAC_FCI" "" -- "$ccidctl" apdu "$SELECT_CAC" "00 C0 00 00 0D"
check "apdu --auto-get-response" 0 "$CAC_FCI" "" -- \
	"$ccidctl" apdu --auto-get-response "$SELECT_CAC"
check "apdu: unknown AID" 0 "6A 82" "" -- "$ccidctl" apdu "$SELECT_UNKNOWN"
check "apdu: too short" 0 "67 00" "" -- "$ccidctl" apdu "00A4"
check "apdu: -t 5000, colons" 0 "61 0D" "" -- \
	"$ccidctl" -t 5000 apdu "00:A4:04:00:07:A0:00:00:00:79:01:00"

# ---- what QEMU does not support -------------------------------------------
check "modify-pin: refused by the driver (no modify in bPINSupport)" 1 "" \
	"ccidctl: modify-pin: EOPNOTSUPP: $UNSUPPORTED" -- \
	"$ccidctl" modify-pin --apdu "00 24 00 82"
check "verify-pin: the reader says not supported" 1 "" \
	"ccidctl: verify-pin: EOPNOTSUPP: $UNSUPPORTED (bStatus 0x40, bError 0x00: CMD_NOT_SUPPORTED)" -- \
	"$ccidctl" verify-pin --apdu "00 20 00 82" --min 6 --max 25
check "escape as root: the reader says not supported" 1 "" \
	"ccidctl: escape: EOPNOTSUPP: $UNSUPPORTED (bStatus 0x40, bError 0x00: CMD_NOT_SUPPORTED)" -- \
	"$ccidctl" escape 01 02

# Escape without CAP_SYS_ADMIN: let another user open the node for a moment
mode=$(stat -c %a "/dev/$node")
chmod 0666 "/dev/$node"
check "escape as nobody: EPERM" 1 "" \
	"ccidctl: escape: EPERM: escape commands need CAP_SYS_ADMIN" -- \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$ccidctl" escape 01
check "status as nobody works" 0 "card: active
clock: running" "" -- \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$ccidctl" status
chmod "$mode" "/dev/$node"

if [ "$legacy" = 1 ]; then
	check "params: QEMU 7.2's garbled Parameters answer is EPROTO" 1 "" \
		"ccidctl: params: EPROTO: garbled answer from the reader" -- \
		"$ccidctl" params
else
	check "params: T=0, 5 bytes" 0 "protocol: T=0
data: 00 00 00 00 00" "" -- "$ccidctl" params
fi

# ---- driver errors -------------------------------------------------------
check "error line: bad slot" 1 "" "ccidctl: status: EINVAL: $EINVAL_TEXT" -- \
	"$ccidctl" -s 1 status
check "error line: malformed Secure block" 1 "" \
	"ccidctl: secure: EINVAL: $EINVAL_TEXT" -- "$ccidctl" secure 00 00 82
check "error line: apdu on slot 255" 1 "" \
	"ccidctl: apdu: EINVAL: $EINVAL_TEXT" -- "$ccidctl" -s 255 apdu "$SELECT_CAC"
check "abort: idle slot" 0 "" "" -- "$ccidctl" abort

# ---- power off -------------------------------------------------------------
check "power-off: inactive" 0 "card: inactive
clock: running" "" -- "$ccidctl" power-off
check "status after power-off: inactive" 0 "card: inactive
clock: running" "" -- "$ccidctl" status
if [ "$legacy" = 1 ]; then
	# QEMU 7.2: an empty DataBlock, no error; without SW1 SW2 it is
	# no answer from the card
	check "apdu after power-off: QEMU 7.2's empty answer is an error" 1 "" \
		"ccidctl: apdu: the answer has no status word (0 bytes): the card did not answer" -- \
		"$ccidctl" apdu "$SELECT_CAC"
else
	check "apdu after power-off: EIO with the reader's words" 1 "" \
		"ccidctl: apdu: EIO: card error (bStatus 0x41, bError 0xFE: ICC_MUTE)" -- \
		"$ccidctl" apdu "$SELECT_CAC"
fi
check "power-on after power-off" 0 "$ATR" "" -- "$ccidctl" power-on
check "apdu after power-on" 0 "61 0D" "" -- "$ccidctl" apdu "$SELECT_CAC"

echo "1..$n"
[ "$failed" = 0 ] || exit 1
exit 0
