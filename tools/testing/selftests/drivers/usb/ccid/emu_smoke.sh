#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# emu_smoke.sh - ccid_emu, the emulated USB/IP reader, against the real
# driver: one TAP test per emulator feature.  Runs as root inside the VM:
#
#   make -C tools/testing/selftests/drivers/usb/ccid ccid_emu
#   make -C tools/ccid
#   tools/testing/selftests/drivers/usb/ccid/run-vm --reader none \
#	--timeout 1800 -- \
#	tools/testing/selftests/drivers/usb/ccid/emu_smoke.sh [TEST...]
#
# Each test starts its own ccid_emu (log and control FIFO in a temporary
# directory), finds the reader's /dev/ccidN through sysfs (the usbmisc
# ccid* node under vhci_hcd whose USB device is the emulator's busid) and
# drives it with tools/ccid/ccidctl, checking the emulator's event log,
# the driver's answers, sysfs counters and kernel messages.  What the
# driver never sends (class requests, chaining, raw CCID messages,
# interrupt-IN of a reader no driver took) goes through usbfs (python3).
#
# CCID_EMU, CCIDCTL and CCIDCTL32 in the environment name other binaries.
# The whole run takes 8-15 minutes under TCG: give run-vm --timeout 1800.
# Exit status 1 if a test failed, 4 if everything was skipped.

here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
top=$(cd "$here/../../../../../.." && pwd)
emu=${CCID_EMU:-$here/ccid_emu}
ccidctl=${CCIDCTL:-$top/tools/ccid/ccidctl}
ccidctl32=${CCIDCTL32:-$top/tools/ccid/ccidctl32}

n=0
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/emu_smoke.XXXXXX") || exit 1
pid=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------

# emu_start NAME [OPTIONS...]: start ccid_emu, wait until it reports its
# node (or that the driver did not bind).  Sets pid, log, ctl, busid, dev.
emu_start() {
	local name=$1 line

	shift
	log=$tmp/$name.log
	ctl=$tmp/$name.ctl
	rm -f "$log" "$ctl"
	"$emu" --log "$log" --ctl "$ctl" "$@" </dev/null &
	pid=$!
	dev=''
	busid=''
	for _ in $(seq 200); do
		grep -q '^node ' "$log" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	line=$(grep '^node ' "$log" 2>/dev/null | tail -n 1)
	busid=${line##*busid=}
	busid=${busid%% *}	# --interfaces 2: " intf=1"
	case $line in
	"node dev="*) dev=${line#node dev=}; dev=${dev%% *} ;;
	esac
}

# emu_ctl LINE...: send control commands, wait for their ctl-ok/ctl-error
emu_ctl() {
	local l

	for l in "$@"; do
		echo "$l" >"$ctl"
		wait_log "^ctl-(ok|error) $l\$" 5 || return 1
	done
}

# emu_stop: "quit", then the exit status in emu_rc
emu_stop() {
	emu_rc=
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		echo quit >"$ctl" 2>/dev/null &
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null
	fi
	wait "$pid"
	emu_rc=$?
	pid=
}

# wait_log REGEX [SECS]: until the log has a matching line
wait_log() {
	for _ in $(seq $((${2:-5} * 20))); do
		grep -qE "$1" "$log" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

log_has() {
	grep -qE "$1" "$log"
}

log_count() {
	grep -cE "$1" "$log"
}

# log_after FIRST THEN: a line matching THEN follows one matching FIRST
log_after() {
	awk -v a="$1" -v b="$2" '$0 ~ a { seen = 1 } seen && $0 ~ b { ok = 1 }
		END { exit !ok }' "$log"
}

# The driver powers the slot off after a timeout or a garbled answer
# (when the Abort worked): IccPowerOff and ResetParameters follow
powered_off_by_driver() {
	want "log: the driver's IccPowerOff after the abort" \
		log_after '^abort-answered' '^cmd [0-9]+ type=0x63 slot=0 '
	want "log: the driver's ResetParameters" \
		log_after '^abort-answered' '^cmd [0-9]+ type=0x6d slot=0 '
}

# sysfs_node BUSID: the usbmisc ccid* node of the vhci device BUSID
sysfs_node() {
	local node path

	for node in /sys/class/usbmisc/ccid*; do
		[ -e "$node" ] || continue
		path=$(readlink -f "$node")
		case $path in
		/sys/devices/platform/vhci_hcd.*/usb*/"$1"/"$1":1.0/usbmisc/*)
			echo "/dev/${node##*/}"
			return 0
			;;
		esac
	done
	return 1
}

# attr NAME: a sysfs attribute of the reader's interface
attr() {
	cat "/sys/bus/usb/devices/$busid:1.0/$1" 2>/dev/null
}

# ---------------------------------------------------------------------------
# ccidctl, checks, TAP
# ---------------------------------------------------------------------------

# cc [ccidctl options and command...]: run ccidctl on $dev; out, err, rc, ms
cc() {
	local t0

	t0=$(date +%s%N)
	timeout 120 "$ccidctl" -d "$dev" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

# cc_bg [ccidctl args...]: in the background; cc_wait collects it
cc_bg() {
	timeout 120 "$ccidctl" -d "$dev" "$@" >"$tmp/out" 2>"$tmp/err" &
	bgpid=$!
}

cc_wait() {
	wait "$bgpid"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

# want DESCRIPTION COMMAND...: a check of the current test
want() {
	local what=$1

	shift
	"$@" && return 0
	problems+=("$what")
	return 1
}

is() {	# is GOT EXPECTED
	[ "$1" = "$2" ] && return 0
	problems+=("  got: '$1'" "  expected: '$2'")
	return 1
}

# ok_out DESCRIPTION EXPECTED: the last cc succeeded and printed EXPECTED
ok_out() {
	want "$1 (exit $rc, stderr: $err)" [ "$rc" = 0 ] && \
		want "$1: output" is "$out" "$2"
}

# fails_with DESCRIPTION ERRNO_NAME: the last cc failed with ERRNO_NAME
fails_with() {
	want "$1: exit 1 (got $rc, stdout: $out)" [ "$rc" = 1 ] && \
		want "$1: $2 (stderr: $err)" grep -q ": $2: " "$tmp/err"
}

dmesg_mark() {
	dmesg_lines=$(dmesg | wc -l)
}

dmesg_new() {
	dmesg | tail -n +$((dmesg_lines + 1))
}

# dmesg_has TEXT: the kernel said TEXT since dmesg_mark (no /dev/fd here)
dmesg_has() {
	dmesg_new | grep -qF "$1"
}

# run_test NAME FUNCTION: one TAP test
run_test() {
	local name=$1 p

	n=$((n + 1))
	problems=()
	dmesg_mark
	"$2"
	emu_stop
	if [ ${#problems[@]} -eq 0 ]; then
		echo "ok $n - $name"
		return
	fi
	failed=$((failed + 1))
	echo "not ok $n - $name"
	for p in "${problems[@]}"; do
		printf '#   %s\n' "$p"
	done
	if [ -n "${log:-}" ] && [ -f "$log" ]; then
		echo "#   emulator log (last 25 lines):"
		tail -n 25 "$log" | sed 's/^/#     /'
	fi
	echo "#   kernel log of the test:"
	dmesg_new | tail -n 15 | sed 's/^/#     /'
}

# A reader that must come up bound
need_node() {
	want "the driver bound the reader (node line: $(grep '^node' "$log" 2>/dev/null))" [ -n "$dev" ]
}

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

t_attach() {
	local path

	emu_start attach
	need_node || return
	want "log: attached" log_has '^attached port=[0-9]+ speed=3 devid=0x'
	want "log: configured" log_has '^configured value=1$'
	want "sysfs finds the same node" is "$(sysfs_node "$busid")" "$dev"
	path=$(readlink -f "/sys/bus/usb/devices/$busid")
	want "device under vhci_hcd ($path)" \
		grep -q '^/sys/devices/platform/vhci_hcd\.' <<<"$path"
	want "device node exists" [ -c "$dev" ]
	want "firmware_version" is "$(attr firmware_version)" "7.01"
	want "idVendor" is "$(cat "/sys/bus/usb/devices/$busid/idVendor")" "04e6"
	want "idProduct" is "$(cat "/sys/bus/usb/devices/$busid/idProduct")" "e003"
	want "speed" is "$(cat "/sys/bus/usb/devices/$busid/speed")" "480"
	emu_stop
	want "exit status 0 on quit" is "$emu_rc" 0
	want "log: detached" log_has '^detached reason=quit$'
	sleep 0.3
	want "node gone after quit" [ ! -e "/sys/bus/usb/devices/$busid" ]
}

t_full_speed() {
	emu_start fs --speed 2
	need_node || return
	want "speed" is "$(cat "/sys/bus/usb/devices/$busid/speed")" "12"
	cc power-on
	want "power-on at full speed" [ "$rc" = 0 ]
}

t_personality() {
	emu_start pers --vid 1234 --pid 5678 --bcd-device 0x0123 \
		--max-slot-index 2 --voltage 2 --protocols 1 --level extended \
		--pin-support 1 --max-busy-slots 2 --lcd-layout 0x0210 \
		--bcd-ccid 0x0100 --max-ifsd 32 --manufacturer EmuCorp \
		--product "Emu Reader" --serial S42
	need_node || return
	cc info
	want "info" [ "$rc" = 0 ]
	local l
	for l in "vendor_id: 0x1234" "product_id: 0x5678" "firmware: 1.23" \
		 "ccid_version: 1.00" "slots: 3" "protocols: T=0" \
		 "exchange_level: extended_apdu" "max_message_length: 65546" \
		 "pin_support: verify" "voltage_support: 3V" "max_ifsd: 32" \
		 "max_busy_slots: 2" "lcd_layout: 0x0210" \
		 "interface_class: 0x0b" "features: 0x000404ba"; do
		want "info has '$l'" grep -qxF "$l" "$tmp/out"
	done
	want "product string" is "$(cat "/sys/bus/usb/devices/$busid/product")" "Emu Reader"
	want "manufacturer string" is "$(cat "/sys/bus/usb/devices/$busid/manufacturer")" "EmuCorp"
	want "serial string" is "$(cat "/sys/bus/usb/devices/$busid/serial")" "S42"
}

t_vendor_class() {
	emu_start spr --iface-class 0xff
	need_node || return
	cc info
	want "SPR532 id with class 0xff binds" grep -qx "interface_class: 0xff" "$tmp/out"
	emu_stop
	emu_start other --node-timeout 1500 --iface-class 0xff --vid 1234
	want "another id with class 0xff does not bind" [ -z "$dev" ]
	want "log: node none" log_has '^node none busid='
	want "no driver on the interface" [ ! -e "/sys/bus/usb/devices/$busid:1.0/driver" ]
}

# hostile OPTIONS -- DMESG_TEXT: the driver refuses the reader, saying so
hostile() {
	local opts=() text

	while [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	text=$2
	dmesg_mark
	emu_start hostile --node-timeout 1500 "${opts[@]}"
	want "${opts[*]}: not bound" [ -z "$dev" ]
	want "${opts[*]}: kernel says '$text'" dmesg_has "$text"
	emu_stop
}

t_hostile_descriptors() {
	hostile --class-desc-len 50 -- "class descriptor bLength is not 54"
	hostile --class-desc-place none -- "no CCID class descriptor"
	hostile --class-desc-type 0x24 -- "no CCID class descriptor"
	hostile --class-desc 3621010100 -- "no CCID class descriptor"
	hostile --class-desc-len 80 -- "class descriptor bLength is not 54"
	hostile --endpoints bulk-in,int-in -- "bulk-IN or bulk-OUT endpoint missing"
	hostile --endpoints bulk-in-as-int,bulk-out,int-in -- \
		"bulk-IN or bulk-OUT endpoint missing"
	hostile --iface-protocol 1 -- "ICCD (protocol 1) is not supported"
	hostile --patch-config 22:10 -- "bMaxSlotIndex out of range"
	hostile --voltage 0 -- "bVoltageSupport invalid"
	hostile --protocols 4 -- "dwProtocols names neither T=0 nor T=1"
	hostile --features 0x00030000 -- "dwFeatures exchange level invalid"
	hostile --max-msg 10 -- "dwMaxCCIDMessageLength too small"
	hostile --max-packet 0 -- "bulk endpoint with wMaxPacketSize 0"
	hostile --int-max-packet 1 -- "interrupt-IN wMaxPacketSize below 2"
	hostile --bcd-device 0x0509 -- "firmware 5.09 is broken"
	# Accepted oddities
	emu_start place --class-desc-place endpoint
	want "class descriptor after the last endpoint: bound" [ -n "$dev" ]
	emu_stop
	emu_start intout --endpoints bulk-in,bulk-out,int-out
	want "an extra interrupt-OUT endpoint: bound" [ -n "$dev" ]
	emu_stop
	emu_start noint --endpoints bulk-out,bulk-in
	want "no interrupt endpoint, other order: bound" [ -n "$dev" ]
	cc power-on
	want "works without interrupt endpoint" [ "$rc" = 0 ]
}

t_card_power() {
	emu_start card
	need_node || return
	cc status
	ok_out "status before power-on" "card: inactive
clock: running"
	cc power-on
	ok_out "power-on: default T=1 ATR" "3B 88 80 01 43 43 49 44 2D 45 4D 55 74"
	cc status
	ok_out "status after power-on" "card: active
clock: running"
	cc params
	want "params: T=1, 7 bytes (got: $out)" grep -q "T=1" "$tmp/out"
	cc set-params T=0 1100000A00
	want "set-params T=0 (got: $out, $err)" grep -q "T=0" "$tmp/out"
	cc params
	want "params now T=0 (got: $out)" grep -q "T=0" "$tmp/out"
	cc reset-params
	want "reset-params: back to T=1 (got: $out)" grep -q "T=1" "$tmp/out"
	cc power-off
	ok_out "power-off" "card: inactive
clock: running"
	cc apdu 80EE0000
	fails_with "APDU to a powered-off card" EIO
	want "ICC_MUTE in the error" grep -q ICC_MUTE "$tmp/err"
	emu_stop

	emu_start atr --atr 3B021415 --absent 1 --max-slot-index 1
	need_node || return
	cc power-on
	ok_out "--atr" "3B 02 14 15"
	cc -s 1 status
	ok_out "--absent 1" "card: absent
clock: running"
	cc -s 1 power-on
	fails_with "power-on without a card" ENOMEDIUM
	emu_stop

	emu_start powered --powered 0
	need_node || return
	cc status
	ok_out "--powered 0" "card: active
clock: running"
	emu_stop

	emu_start longatr --atr "3B$(printf '%0128d' 0)"
	need_node || return
	cc power-on
	fails_with "a 65-byte ATR" EPROTO
	want "kernel: ATR too long" dmesg_has "ATR too long"
}

t_apdus() {
	emu_start apdu --pin 4321
	need_node || return
	cc power-on
	cc apdu 80EE00000401020304
	ok_out "echo" "01 02 03 04 90 00"
	cc apdu 80EE000005
	ok_out "echo Le 5" "00 01 02 03 04 90 00"
	cc apdu 00A4040006D27600012401
	ok_out "SELECT OpenPGP" "90 00"
	cc apdu 00A4040006F04343494445
	ok_out "SELECT emulator AID" "90 00"
	cc apdu 00A4040003112233
	ok_out "SELECT unknown AID" "6A 82"
	cc apdu 00A40000023F00
	ok_out "SELECT by FID" "6A 86"
	cc apdu 002000000431313131
	ok_out "VERIFY wrong" "63 C2"
	cc apdu 00200000
	ok_out "VERIFY status" "63 C2"
	cc apdu 002000000434333231
	ok_out "VERIFY right" "90 00"
	cc apdu 00200000
	ok_out "VERIFY status after" "90 00"
	cc apdu 002000000400000000 002000000400000000 002000000400000000 \
		002000000434333231
	ok_out "VERIFY blocks after 3 tries" "63 C2
63 C1
69 83
69 83"
	cc apdu 00CA006E00
	ok_out "unknown INS" "6D 00"
	cc apdu 80EE00
	ok_out "too short" "67 00"
	cc apdu 0084000008
	want "GET CHALLENGE: 8 bytes + 90 00 (got $out)" \
		grep -qE '^([0-9A-F]{2} ){8}90 00$' "$tmp/out"
	cc apdu 80EF012C
	ok_out "80 EF: thinking 300 ms" "90 00"
	want "thinking took >= 300 ms (took $ms)" [ "$ms" -ge 300 ]
	want "log: cmd line with data" \
		log_has '^cmd 2 type=0x6f slot=0 seq=1 len=9 p=000000 data=80EE00000401020304$'
	want "log: answer line" \
		log_has '^answer 2 type=0x80 slot=0 seq=1 len=6 status=0x00 error=0x00 param=0x00$'
}

# Every APDU size the reader takes, and every Secure size, at full speed
# (64-byte packets) on a reader that stalls a bulk-OUT zero-length
# packet as QEMU 7.2 does: the driver sends none, so no size fails.
t_sizes() {
	local n apdus=() want="" pin bad=0 data i

	emu_start sizes --speed 2 --out-zlp stall --pad-pin 123456
	need_node || return
	cc power-on
	# echo Lc 1..255: ten calls of about 26 APDUs each
	for n in $(seq 1 255); do
		data=$(head -c "$n" /dev/zero | tr '\0' 'A' | sed 's/A/5A/g')
		apdus+=("80EE0000$(printf '%02X' "$n")$data")
		want+="$(echo "$data" | sed 's/../& /g')90 00"$'\n'
		if [ $((n % 26)) = 0 ] || [ "$n" = 255 ]; then
			cc apdu "${apdus[@]}"
			want "echo up to Lc $n (exit $rc, stderr: $err)" [ "$rc" = 0 ]
			want "echo up to Lc $n: every answer its own" \
				is "$out" "${want%$'\n'}"
			apdus=()
			want=""
		fi
	done
	# Secure: abPINApdu of 5 + Lc bytes, Lc 0..240 (blocks of 20..260;
	# 15 + 5 + Lc + 10 is a whole number of packets for Lc 34, 98, ...)
	for n in $(seq 0 240); do
		pin="00200081$(printf '%02X' "$n")$(head -c "$n" /dev/zero | tr '\0' 'A' | sed 's/A/FF/g')"
		cc verify-pin --apdu "$pin"
		# the pad's verdict may be any status word, or a failure the
		# reader reports; never a transport error
		if { [ "$rc" = 0 ] && ! [[ "$out" =~ ^[0-9A-F]{2}\ [0-9A-F]{2}$ ]]; } ||
		   [[ "$err" =~ (EIO|EPROTO|ETIMEDOUT|ENODEV|EINVAL): ]]; then
			bad=$((bad + 1))
			[ "$bad" -le 5 ] && problems+=("Secure with Lc $n: exit $rc, out '$out', err '$err'")
			cc power-on
		fi
	done
	want "every Secure size answered ($bad failed)" [ "$bad" = 0 ]
	want "log: no bulk-OUT zero-length packet" [ "$(log_count '^out-zlp')" = 0 ]
	for i in timeouts protocol_errors clear_halts usb_resets; do
		want "$i is 0" [ "$(attr "$i")" = 0 ]
	done
}

t_t0() {
	emu_start t0 --protocol t0
	need_node || return
	cc power-on
	ok_out "T=0 ATR" "3B 08 43 43 49 44 2D 45 4D 55"
	cc params
	want "params T=0" grep -q "T=0" "$tmp/out"
	cc apdu 80EE00000401020304
	ok_out "61 La" "61 04"
	cc apdu 00C0000004
	ok_out "GET RESPONSE" "01 02 03 04 90 00"
	cc apdu 80EE00000401020304 00C0000008
	ok_out "GET RESPONSE with a wrong Le" "61 04
6C 04"
	cc apdu --auto-get-response 80EE00000401020304
	ok_out "ccidctl --auto-get-response" "01 02 03 04 90 00"
	cc apdu 00A4040006D27600012401
	ok_out "no data: SW only" "90 00"
}

t_tpdu_t1() {
	emu_start tpdu --level tpdu
	need_node || return
	cc power-on
	# I(0): 80 EE 00 00 04 01 02 03 04; LRC = XOR of all
	cc apdu "0000 09 80EE00000401020304 67"
	ok_out "T=1 I-block echo" "00 00 06 01 02 03 04 90 00 92"
	cc apdu 00C101FE3E
	ok_out "S(IFS request)" "00 E1 01 FE 1E"
	cc apdu "0040 05 80EE000002 29"
	ok_out "I(1) with Le 2" "00 40 04 00 01 90 00 D5"
	cc apdu "0000 05 80EE000002 29"
	want "bad LRC: R-block (got $out)" grep -qE '^00 [89][0-9A-F] 00 ' "$tmp/out"
}

t_extended() {
	local data

	emu_start ext --level extended
	need_node || return
	cc power-on
	data=$(head -c 300 /dev/zero | tr '\0' 'A' | od -An -v -tx1 | tr -d ' \n')
	cc apdu "80EE000000012C$data"
	want "extended echo of 300 bytes (rc $rc, $err)" [ "$rc" = 0 ]
	want "extended echo: 302 bytes back" is "$(wc -w <"$tmp/out")" 302
	emu_stop
	# Response chaining: 402 bytes through a 271-byte message size
	emu_start chain --level extended --max-msg 271
	need_node || return
	cc power-on
	cc apdu 80EE0000000192
	want "chained answer: first 261 bytes (rc $rc, $err)" \
		is "$(wc -w <"$tmp/out")" 261
	want "log: bChainParameter 1" \
		log_has '^answer 2 type=0x80 slot=0 seq=1 len=261 status=0x00 error=0x00 param=0x01$'
}

t_escape() {
	emu_start escape
	need_node || return
	cc escape 01 02 03
	ok_out "escape echo" "01 02 03"
	want "log: escape" log_has '^answer 1 type=0x83 slot=0 seq=0 len=3 '
}

t_secure_pad() {
	emu_start pad --pad-pin 123456
	need_node || return
	cc power-on
	cc verify-pin --apdu 00200081
	ok_out "verify on the pad" "90 00"
	want "log: secure-verify" log_has '^secure-verify slot=0 seq=1 timeout=30000$'
	want "log: the APDU the pad built" \
		log_has '^pin-entered slot=0 op=verify apdu=0020008106313233343536 sw=9000$'
	cc verify-pin --apdu 00200081 --min 8 --max 12
	ok_out "PIN shorter than the minimum" "64 03"
	cc verify-pin --apdu 00200081 --format bcd --pin-block-size 8 \
		--justify left
	ok_out "BCD format" "90 00"
	want "log: BCD block" \
		log_has '^pin-entered slot=0 op=verify apdu=0020008108123456FFFFFFFFFF sw=9000$'
	emu_stop

	emu_start wrong --pad-pin 111111 --pin-delay 800
	need_node || return
	cc power-on
	cc verify-pin --apdu 00200081
	ok_out "wrong PIN on the pad" "63 C2"
	want "--pin-delay 800 (took $ms ms)" [ "$ms" -ge 800 ]
}

# The compat path: every ioctl structure is laid out the same for 32-bit
# userspace, so a 32-bit ccidctl (make -C tools/ccid ccidctl32) gets the
# same answers as the 64-bit one, through power-on, XfrBlock and Secure.
t_compat32() {
	local cmd want_out

	want "ccidctl32 is a 32-bit program" \
		[ "$(od -An -j4 -N1 -tu1 "$ccidctl32" 2>/dev/null | tr -d ' ')" = 1 ]
	emu_start compat32 --pad-pin 123456
	need_node || return
	for cmd in "info" "power-on" "status" "apdu 00A4040007A0000000790100" \
		   "verify-pin --apdu 00200081" "escape 01 02 03" \
		   "params" "events" "power-off"; do
		# shellcheck disable=SC2086 # one word per argument
		cc $cmd
		want_out=$out
		want "64-bit $cmd (exit $rc, stderr: $err)" [ "$rc" = 0 ]
		# shellcheck disable=SC2086
		ccidctl=$ccidctl32 cc $cmd
		want "32-bit $cmd: same exit status ($rc)" [ "$rc" = 0 ]
		want "32-bit $cmd: same output" is "$out" "$want_out"
	done
	want "log: two verifies on the pad" \
		[ "$(log_count '^pin-entered slot=0 op=verify .* sw=9000$')" = 2 ]
}

t_secure_ctl() {
	emu_start ctl
	need_node || return
	cc power-on
	cc_bg verify-pin --apdu 00200081
	want "secure-verify seen" wait_log '^secure-verify slot=0 seq=1' 10
	want "ctl pin" emu_ctl "pin 123456"
	cc_wait
	ok_out "PIN typed on the control channel" "90 00"

	cc_bg verify-pin --apdu 00200081
	want "secure-verify seen" wait_log '^secure-verify slot=0 seq=2' 10
	want "ctl cancel-pin" emu_ctl "cancel-pin"
	cc_wait
	fails_with "cancelled on the pad" ECANCELED
	want "PIN_CANCELLED" grep -q "PIN_CANCELLED" "$tmp/err"

	want "typeahead" emu_ctl "pin 123456"
	cc verify-pin --apdu 00200081
	ok_out "PIN typed before the Secure came" "90 00"

	cc verify-pin --apdu 00200081 --timeout-secs 1
	fails_with "bTimeOut 1 s, nothing typed" ETIME
	want "PIN_TIMEOUT" grep -q "PIN_TIMEOUT" "$tmp/err"
	want "log: pin-timeout" log_has '^pin-timeout slot=0$'
	emu_stop

	emu_start timeout --pad-pin timeout
	need_node || return
	cc power-on
	cc verify-pin --apdu 00200081
	fails_with "--pad-pin timeout" ETIME
}

t_secure_modify() {
	emu_start modify --pad-pin 123456,654321,654321
	need_node || return
	cc power-on
	cc modify-pin --apdu 00240081
	ok_out "modify on the pad" "90 00"
	want "log: secure-modify" log_has '^secure-modify slot=0 seq=1 '
	cc apdu 0020000006363534333231
	ok_out "the new PIN verifies" "90 00"
	emu_stop
	emu_start modify2 --pad-pin 123456,654321,999999
	need_node || return
	cc power-on
	cc modify-pin --apdu 00240081
	ok_out "confirmation differs" "64 02"
}

t_time_extension() {
	emu_start ext --time-ext 2:3:2 --time-ext-gap 300
	need_node || return
	cc power-on
	cc -t 500 apdu 80EE00000401020304
	ok_out "answer after 3 time extensions, 500 ms timeout" "01 02 03 04 90 00"
	want "took >= 900 ms ($ms)" [ "$ms" -ge 900 ]
	want "log: 3 time extensions" is "$(log_count '^time-ext 2 slot=0 seq=1 mult=2$')" 3
	want "driver counted them" is "$(attr time_extensions)" 3
}

t_timeout_abort() {
	emu_start delay --delay 2:3000
	need_node || return
	cc power-on
	cc -t 1000 apdu 80EE00000401020304
	fails_with "answer 3 s late, 1 s timeout" ETIMEDOUT
	want "log: unlink of the pending bulk-IN URB" \
		log_has '^unlink seqnum=[0-9]+ ep=0x81 status=-104$'
	want "log: ABORT request" log_has '^abort-request wValue=0x0100 slot=0 seq=1$'
	want "log: PC_to_RDR_Abort" log_has '^abort-cmd seq=1 slot=0$'
	want "log: abort answered" log_has '^abort-answered seq=1 slot=0 aborted=1$'
	want "log: the aborted command ended with CMD_ABORTED" \
		log_has '^answer 2 type=0x80 slot=0 seq=1 len=0 status=0x40 error=0xff'
	want "log: SlotStatus for the Abort" \
		log_has '^answer 3 type=0x81 slot=0 seq=1 len=0 status=0x00 error=0x00'
	powered_off_by_driver
	cc status
	ok_out "card powered off" "card: inactive
clock: running"
	cc power-on
	cc apdu 80EE00000401020304
	ok_out "next command works" "01 02 03 04 90 00"
	want "timeouts counter" is "$(attr timeouts)" 1
	want "aborts counter" is "$(attr aborts)" 1
	want "no clear-halt, no reset" is "$(attr clear_halts)/$(attr usb_resets)" 0/0
	sleep 2.5
	want "the late answer was never sent" [ "$(log_count '^answer 2 .*status=0x00')" = 0 ]
}

t_mute() {
	emu_start mute --mute-after 2
	need_node || return
	cc power-on
	cc apdu 80EE0000
	ok_out "command 2 answered" "90 00"
	want "log: muted after 2" log_has '^muted after=2$'
	cc -t 800 apdu 80EE0000
	fails_with "command 3 unanswered" ETIMEDOUT
	want "log: no-answer 3" log_has '^no-answer 3 reason=muted$'
	want "log: abort still answered" log_has '^abort-answered seq=2 slot=0 aborted=0$'
	want "log: the driver's IccPowerOff unanswered too" \
		log_has '^no-answer 5 reason=muted$'
	want "unmute" emu_ctl unmute
	cc power-on
	cc apdu 80EE0000
	ok_out "after unmute" "90 00"
	want "mute" emu_ctl mute
	cc -t 500 status
	fails_with "after mute" ETIMEDOUT
}

# The driver's recovery ladder against a reader that ignores Abort
t_ladder() {
	emu_start dead --mute-after 1 --abort ignore
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE0000
	fails_with "dead reader" ETIMEDOUT
	want "log: two aborts ignored" is "$(log_count '^abort-ignored seq=1 slot=0 reason=option$')" 2
	want "log: clear-halt bulk-IN" log_has '^clear-halt ep=0x81$'
	want "log: clear-halt bulk-OUT" log_has '^clear-halt ep=0x02$'
	want "log: USB reset" log_has '^reset$'
	want "log: GetSlotStatus after the reset, unanswered" \
		log_after '^reset$' '^no-answer [0-9]+ reason=muted$'
	want "kernel: clearing halts" dmesg_has "abort failed (-110), clearing halts"
	want "kernel: resetting" dmesg_has "reader does not answer: resetting it"
	want "kernel: still dead" dmesg_has "reader still dead after a reset"
	want "counters clear_halts/usb_resets" is "$(attr clear_halts)/$(attr usb_resets)" 1/1
	emu_stop

	dmesg_mark
	emu_start revive --mute-after 1 --abort ignore --revive-on-reset
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE0000
	fails_with "reader silent until the reset" ETIMEDOUT
	want "log: unmuted by the reset" log_has '^unmuted reason=reset$'
	want "log: GetSlotStatus answered after the reset" \
		log_after '^unmuted reason=reset$' '^answer [0-9]+ type=0x81 slot=0 .*status=0x01 '
	want "kernel: not still dead" bash -c "! dmesg | tail -n +$((dmesg_lines + 1)) | grep -q 'still dead'"
	cc power-on
	cc apdu 80EE0000
	ok_out "works after the driver's reset" "90 00"
}

t_abort_request_modes() {
	emu_start stall --delay 2:3000 --abort-request stall
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE0000
	fails_with "late answer" ETIMEDOUT
	want "log: abort-request (stalled)" log_has '^abort-request wValue=0x0100'
	want "log: abort answered without the request" \
		log_has '^abort-answered seq=1 slot=0 aborted=1$'
	cc power-on
	cc apdu 80EE0000
	ok_out "next command" "90 00"
	emu_stop

	emu_start areqign --delay 2:3000 --abort-request ignore
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE0000
	fails_with "late answer" ETIMEDOUT
	want "log: the ABORT request was unlinked" \
		log_has '^unlink seqnum=[0-9]+ ep=0x00 status=-104$'
	want "log: abort answered" log_has '^abort-answered seq=1 slot=0 aborted=1$'
}

# The ladder's second step: Abort answered only after a clear-halt
t_abort_after_clear_halt() {
	emu_start ach --delay 2:4000 --abort after-clear-halt
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE0000
	fails_with "late answer" ETIMEDOUT
	want "log: abort held" log_has '^abort-held seq=1 slot=0$'
	want "log: clear-halt of bulk-IN" log_has '^clear-halt ep=0x81$'
	want "log: abort answered after the clear-halt" \
		log_after '^clear-halt ep=0x81$' '^abort-answered seq=1 slot=0 aborted=1$'
	want "log: no USB reset needed" [ "$(log_count '^reset$')" = 0 ]
	want "clear_halts counter" is "$(attr clear_halts)" 1
	powered_off_by_driver
	cc power-on
	cc apdu 80EE0000
	ok_out "afterwards" "90 00"
}

t_stall() {
	emu_start stallout --stall 2:out
	need_node || return
	cc power-on
	cc apdu 80EE0000
	fails_with "bulk-OUT stalled" EIO
	want "log: stall ep=0x02" log_has '^stall ep=0x02$'
	want "log: clear-halt ep=0x02" log_has '^clear-halt ep=0x02$'
	want "kernel: bulk-OUT endpoint stalled" dmesg_has "bulk-OUT endpoint stalled"
	powered_off_by_driver
	cc power-on
	cc apdu 80EE0000
	ok_out "after the clear-halt" "90 00"
	emu_stop

	dmesg_mark
	emu_start stallin --stall 2:in
	need_node || return
	cc power-on
	cc apdu 80EE0000
	fails_with "bulk-IN stalled" EIO
	want "log: stall ep=0x81" log_has '^stall ep=0x81$'
	want "log: clear-halt ep=0x81" log_has '^clear-halt ep=0x81$'
	want "kernel: bulk-IN endpoint stalled" dmesg_has "bulk-IN endpoint stalled"
	cc power-on
	cc apdu 80EE0000
	ok_out "after the clear-halt" "90 00"
}

# bad KIND EXPECT COUNTER: --bad 2:KIND; then the reader must work again
bad() {
	local kind=$1 expect=$2 counter=$3

	emu_start "bad-$kind" --bad "2:$kind"
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE00000401020304
	if [ "$expect" = ok ]; then
		ok_out "$kind: answered" "01 02 03 04 90 00"
	else
		fails_with "$kind" "$expect"
		want "$kind: the driver recovered with an Abort" \
			log_has '^abort-answered seq=1 slot=0 '
		cc power-on
	fi
	cc apdu 80EE0000
	ok_out "$kind: next command" "90 00"
	want "$kind: log: bad frame" log_has "^bad 2 kind=${kind%-then-right} "
	want "$kind: $counter counted ($(attr "$counter"))" [ "$(attr "$counter")" -ge 1 ]
	emu_stop
}

t_bad_frames() {
	bad wrong-seq ETIMEDOUT stale_frames
	bad wrong-slot ETIMEDOUT stale_frames
	bad duplicate ok stale_frames
	bad wrong-seq-then-right ok stale_frames
	bad wrong-type EPROTO protocol_errors
	bad len-over-data EPROTO protocol_errors
	bad len-over-max EPROTO protocol_errors
	bad short-header EPROTO protocol_errors
	bad babble EPROTO protocol_errors
	want "babble: -EOVERFLOW sent" grep -q '^bad 2 kind=babble bytes=512 usb=-75$' "$tmp/bad-babble.log"
}

t_slot_events() {
	emu_start slots --max-slot-index 1 --absent 1 --hwerror-at 3:0 \
		--remove-at 4:0
	need_node || return
	cc -s 1 status
	ok_out "slot 1 empty" "card: absent
clock: running"
	cc_bg events --wait 5000
	sleep 1
	want "ctl insert 1" emu_ctl "insert 1"
	cc_wait
	want "events: woken by the insertion (rc $rc: $out $err)" \
		grep -qx "poll: in" "$tmp/out"
	want "events: both present" grep -qx "present: 0x3" "$tmp/out"
	want "log: slot-change" log_has '^slot-change slot=1 present=1$'
	want "log: NotifySlotChange delivered on int-in" log_has '^notify data=500D$'
	cc -s 1 status
	ok_out "slot 1 inserted" "card: inactive
clock: running"
	cc -s 1 power-on
	want "power-on slot 1" [ "$rc" = 0 ]
	want "log: hwerror at command 3" log_has '^hwerror slot=0 seq=0$'
	cc status
	ok_out "--remove-at 4:0" "card: absent
clock: running"
	cc_bg events --wait 5000
	sleep 1
	want "ctl hwerror 1" emu_ctl "hwerror 1"
	cc_wait
	want "log: HardwareError delivered" log_has '^notify data=51010201$'
	want "kernel: hardware error" dmesg_has "slot 1: hardware error 0x01"
	want "hw_errors counted" [ "$(attr hw_errors)" -ge 1 ]
	want "ctl remove 1" emu_ctl "remove 1"
	cc -s 1 status
	ok_out "slot 1 removed" "card: absent
clock: running"
	want "bad slot in ctl" [ "$(emu_ctl "insert 7"; grep -c '^ctl-error insert 7$' "$log")" = 1 ]
	emu_stop

	emu_start power-up --notify-on-config --max-slot-index 1 --absent 1
	need_node || return
	cc events --wait 3000
	want "events: the power-up NotifySlotChange (rc $rc: $out $err)" \
		grep -qx "poll: in" "$tmp/out"
	want "events: slot 0 present" grep -qx "present: 0x1" "$tmp/out"
	want "log: sent on the first interrupt URB" log_has '^notify data=5003$'
	emu_stop

	emu_start noint --endpoints bulk-in,bulk-out
	need_node || return
	want "ctl insert" emu_ctl "insert 0"
	want "log: notify dropped without int-in" \
		log_has '^notify-dropped data=5003 reason=no-int-in$'
}

# usbfs on a reader no driver took: class requests, halt, interrupt-IN
t_usbfs() {
	local usbdev py

	# scripts/install-deps.sh installs it: missing, the test fails
	want "python3 is installed" command -v python3 >/dev/null || return
	emu_start unbound --node-timeout 1500 --vid 1234 --iface-class 0xff \
		--max-slot-index 2
	want "not bound" [ -z "$dev" ]
	usbdev=$(printf '/dev/bus/usb/%03d/%03d' \
		"$(cat "/sys/bus/usb/devices/$busid/busnum")" \
		"$(cat "/sys/bus/usb/devices/$busid/devnum")")
	python3 - "$usbdev" >"$tmp/usbfs.out" 2>&1 <<'EOF2' &
import ctypes, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.ioctl(fd, 0x8004550f, struct.pack("I", 0))        # CLAIMINTERFACE

def control(rt, req, value, index, length):
    buf = ctypes.create_string_buffer(max(length, 1))
    arg = bytearray(struct.pack("BBHHHIxxxxQ", rt, req, value, index,
                                length, 2000, ctypes.addressof(buf)))
    try:
        n = fcntl.ioctl(fd, 0xc0185500, arg, True)      # USBDEVFS_CONTROL
    except OSError as e:
        return "errno%d" % e.errno
    return buf.raw[:n].hex() if rt & 0x80 else "ok"

def intr(length):
    buf = ctypes.create_string_buffer(length)
    arg = bytearray(struct.pack("IIIxxxxQ", 0x83, length, 5000,
                                ctypes.addressof(buf)))
    n = fcntl.ioctl(fd, 0xc0185502, arg, True)          # USBDEVFS_BULK
    return buf.raw[:n].hex()

print("clocks", control(0xa1, 2, 0, 0, 8))
print("rates", control(0xa1, 3, 0, 0, 8))
print("abort", control(0x21, 1, 0x0305, 0, 0))
print("halt", control(0x02, 3, 0, 0x81, 0))
print("status", control(0x82, 0, 0, 0x81, 2))
print("clear", control(0x02, 1, 0, 0x81, 0))
print("status", control(0x82, 0, 0, 0x81, 2))
print("vendor", control(0xc0, 0x55, 0, 0, 4))
sys.stdout.flush()
print("int", intr(8))
print("int", intr(8))
EOF2
	py=$!
	want "log: class requests" wait_log '^clear-halt ep=0x81$' 10
	sleep 0.5
	want "ctl insert 2" emu_ctl "insert 2"
	want "ctl hwerror 1" emu_ctl "hwerror 1"
	wait "$py"
	want "usbfs view" is "$(cat "$tmp/usbfs.out")" "clocks a00f0000401f0000
rates 002a000016400500
abort ok
halt ok
status 0100
clear ok
status 0000
vendor errno32
int 5035
int 51010001"
	want "log: abort-request" log_has '^abort-request wValue=0x0305 slot=5 seq=3$'
	want "log: set-halt" log_has '^set-halt ep=0x81$'
	want "log: ctrl-stall for the vendor request" \
		log_has '^ctrl-stall rt=0xc0 req=0x55 '
	want "log: NotifySlotChange sent" log_has '^notify data=5035$'
	want "log: HardwareError sent" log_has '^notify data=51010001$'
}

# Raw CCID through usbfs on an unbound reader: what ccidctl cannot send
t_raw_ccid() {
	local usbdev

	if ! command -v python3 >/dev/null; then
		echo "# python3 missing: raw CCID checks skipped"
		return
	fi
	emu_start raw --node-timeout 1500 --vid 1234 --iface-class 0xff \
		--level extended --max-msg 271
	want "not bound" [ -z "$dev" ]
	usbdev=$(printf '/dev/bus/usb/%03d/%03d' \
		"$(cat "/sys/bus/usb/devices/$busid/busnum")" \
		"$(cat "/sys/bus/usb/devices/$busid/devnum")")
	python3 - "$usbdev" >"$tmp/raw.out" 2>&1 <<'EOF2'
import ctypes, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.ioctl(fd, 0x8004550f, struct.pack("I", 0))        # CLAIMINTERFACE
seq = 0

def bulk(ep, data, length):
    buf = ctypes.create_string_buffer(data if data else length, max(length, 1))
    arg = bytearray(struct.pack("IIIxxxxQ", ep, length, 3000,
                                ctypes.addressof(buf)))
    n = fcntl.ioctl(fd, 0xc0185502, arg, True)          # USBDEVFS_BULK
    return buf.raw[:n]

def cmd(mtype, data=b"", slot=0, p=b"\0\0\0"):
    global seq
    msg = struct.pack("<BIBB", mtype, len(data), slot, seq) + p + data
    seq = (seq + 1) & 0xff
    bulk(0x02, msg, len(msg))
    r = bulk(0x81, None, 512)
    h = r[:10]
    print("%02x len=%d slot=%d seq=%d st=%02x err=%02x p=%02x %s" % (
        h[0], struct.unpack("<I", h[1:5])[0], h[5], h[6], h[7], h[8], h[9],
        r[10:].hex() if len(r) < 40 else "%d bytes" % (len(r) - 10)))

cmd(0x62)                                               # power on
cmd(0x6f, bytes.fromhex("80EE000003AA"), p=b"\0\1\0")   # chain begins
cmd(0x6f, bytes.fromhex("BBCC"), p=b"\0\2\0")           # chain ends
cmd(0x6f, bytes.fromhex("80EE0000000192"))              # 404-byte answer
cmd(0x6f, b"", p=b"\0\x10\0")                           # rest of it
cmd(0x6f, b"", p=b"\0\x10\0")                           # nothing left
cmd(0x6e, p=b"\1\0\0")                                  # IccClock stop
cmd(0x6a)                                               # T0APDU
cmd(0x71)                                               # Mechanical
cmd(0x73, struct.pack("<II", 4000, 10752))              # SetDataRate...
cmd(0x99)                                               # unknown type
cmd(0x65, slot=5)                                       # no such slot
cmd(0x62, p=b"\7\0\0")                                  # bad bPowerSelect
cmd(0x61, bytes(5), p=b"\1\0\0")                        # T=1 with 5 bytes
cmd(0x69, bytes.fromhex("09"))                          # bad bPINOperation
EOF2
	want "answers" is "$(cat "$tmp/raw.out")" "80 len=13 slot=0 seq=0 st=00 err=00 p=00 3b888001434349442d454d5574
80 len=0 slot=0 seq=1 st=00 err=00 p=10 
80 len=5 slot=0 seq=2 st=00 err=00 p=00 aabbcc9000
80 len=261 slot=0 seq=3 st=00 err=00 p=01 261 bytes
80 len=143 slot=0 seq=4 st=00 err=00 p=02 143 bytes
80 len=0 slot=0 seq=5 st=40 err=08 p=00 
81 len=0 slot=0 seq=6 st=00 err=00 p=01 
81 len=0 slot=0 seq=7 st=00 err=00 p=00 
81 len=0 slot=0 seq=8 st=40 err=00 p=00 
84 len=8 slot=0 seq=9 st=00 err=00 p=00 a00f0000002a0000
81 len=0 slot=0 seq=10 st=40 err=00 p=00 
81 len=0 slot=5 seq=11 st=42 err=05 p=00 
80 len=0 slot=0 seq=12 st=40 err=07 p=00 
82 len=7 slot=0 seq=13 st=40 err=01 p=01 1110004d00fe00
80 len=0 slot=0 seq=14 st=40 err=0a p=00 "
}

t_disconnect() {
	emu_start dis --disconnect-at 2
	need_node || return
	cc power-on
	cc apdu 80EE0000
	fails_with "unplugged mid-command" ENODEV
	wait "$pid"
	emu_rc=$?
	pid=
	want "exit 0" is "$emu_rc" 0
	want "log: detached" log_has '^detached reason=disconnect-at cmd=2$'
	sleep 0.3
	want "node gone" [ ! -e "$dev" ]
	want "no kernel warnings" bash -c "! dmesg | tail -n +$((dmesg_lines + 1)) | grep -qE 'WARNING|BUG|Oops'"

	emu_start disctl --delay 2:5000
	need_node || return
	cc power-on
	cc_bg apdu 80EE0000
	want "command 2 seen" wait_log '^cmd 2 ' 5
	echo disconnect >"$ctl"
	cc_wait
	fails_with "ctl disconnect during a command" ENODEV
	wait "$pid"
	emu_rc=$?
	pid=
	want "exit 0" is "$emu_rc" 0
	want "log: detached" log_has '^detached reason=disconnect$'
}

t_replug() {
	local old

	emu_start replug
	need_node || return
	old=$busid
	echo replug >"$ctl"
	want "log: second attach" wait_log '^ctl-ok replug$' 5
	for _ in $(seq 100); do
		[ "$(log_count '^node dev=')" -ge 2 ] && break
		sleep 0.05
	done
	want "log: bound again" [ "$(log_count '^node dev=')" = 2 ]
	busid=$(grep '^node dev=' "$log" | tail -n 1)
	busid=${busid##*busid=}
	dev=$(sysfs_node "$busid")
	want "new node ($dev, old busid $old, new $busid)" [ -n "$dev" ]
	cc power-on
	want "works after replug" [ "$rc" = 0 ]
}

t_usb_reset() {
	emu_start reset
	need_node || return
	cc power-on
	want "reset helper" "$emu" --reset-device "$busid"
	want "log: reset" wait_log '^reset$' 5
	wait_log '^configured value=1$' 5
	sleep 0.3
	dev=$(sysfs_node "$busid")
	cc status
	ok_out "card powered off by the reset" "card: inactive
clock: running"
}

t_spr332() {
	local q=/sys/module/ccid/parameters/quirks

	# The driver's quirk keeps firmware 7.00 away from its PIN pad
	emu_start quirk --bcd-device 0x0700 --spr332-fw700 --pad-pin 123456
	need_node || return
	want "quirks attribute" is "$(attr quirks)" "broken_secure"
	want "kernel names the fix" dmesg_has "wedges after a PIN-pad verify"
	cc power-on
	cc verify-pin --apdu 00200082
	fails_with "Secure refused by the quirk" EOPNOTSUPP
	want "ccidctl names the quirk (stderr: $err)" \
		grep -q "Secure is disabled for this reader's firmware by the broken_secure quirk" "$tmp/err"
	want "log: no Secure reached the reader" [ "$(log_count '^cmd [0-9]+ type=0x69')" = 0 ]
	emu_stop

	# Without the quirk: the firmware 7.00 story, and the ladder's reset
	dmesg_mark
	if [ -w "$q" ]; then
		echo "04e6:e003:" >"$q"
		emu_start fw700 --bcd-device 0x0700 --spr332-fw700 --pad-pin 123456
		echo "" >"$q"
		need_node || return
		want "firmware 7.00" is "$(attr firmware_version)" "7.00"
		cc power-on
		cc verify-pin --apdu 00200082
		ok_out "a successful 64 00" "64 00"
		want "log: wedged" log_has '^wedged reason=spr332-fw700$'
		cc -t 800 apdu 80EE0000
		fails_with "wedged afterwards" ETIMEDOUT
		want "log: no-answer 3" log_has '^no-answer 3 reason=wedged$'
		want "log: abort ignored" log_has '^abort-ignored seq=2 slot=0 reason=wedged$'
		want "log: revived by the driver's reset" log_has '^revived reason=reset$'
		want "kernel: resetting" dmesg_has "reader does not answer: resetting it"
		cc status
		ok_out "after the reset: card powered off" "card: inactive
clock: running"
		cc power-on
		cc apdu 80EE0000
		ok_out "works after the reset" "90 00"
		emu_stop
	else
		problems+=("$q not writable")
	fi

	emu_start fw701 --bcd-device 0x0701 --spr332-fw700 --pad-pin 123456
	need_node || return
	want "no quirk for 7.01" is "$(attr quirks)" "none"
	cc power-on
	cc verify-pin --apdu 00200082
	ok_out "firmware 7.01: verify works" "90 00"
	cc apdu 80EE0000
	ok_out "and the reader goes on" "90 00"
}

t_random() {
	local good=0 bad=0 kinds

	emu_start random --random 42
	need_node || return
	cc power-on
	for _ in $(seq 120); do
		cc -t 400 apdu 80EE00000401020304
		case $rc in
		0) good=$((good + 1)) ;;
		1) bad=$((bad + 1)); cc power-on ;;
		*) problems+=("ccidctl exit $rc: $err") ;;
		esac
	done
	want "some good ($good) and some bad ($bad)" [ "$good" -gt 30 ] && [ "$bad" -gt 10 ]
	kinds=$(grep -oE '^(bad [0-9]+ kind=[a-z-]+|time-ext|no-answer [0-9]+ reason=random)' "$log" |
		sed 's/ [0-9]* / /' | sort -u | wc -l)
	want "a mix of bad frames ($kinds kinds)" [ "$kinds" -ge 8 ]
	want "still alive" kill -0 "$pid"
	cc status
	want "still usable" [ "$rc" = 0 ]
	echo "# random: $good good, $bad failed; driver: protocol_errors $(attr protocol_errors), stale_frames $(attr stale_frames), timeouts $(attr timeouts), clear_halts $(attr clear_halts), usb_resets $(attr usb_resets)"
}

t_throughput() {
	local apdus=() t0 t1 p pids=() okc=0

	emu_start perf
	need_node || return
	cc power-on
	for _ in $(seq 1000); do
		apdus+=(80EE00000401020304)
	done
	t0=$(date +%s%N)
	cc apdu "${apdus[@]}"
	t1=$(date +%s%N)
	want "1000 echoes, one process" is "$(grep -c '^01 02 03 04 90 00$' "$tmp/out")" 1000
	echo "# 1000 echo APDUs in one process: $(((t1 - t0) / 1000000)) ms ($(((t1 - t0) / 1000000000)).$((((t1 - t0) / 1000000) % 1000)) s)"
	t0=$(date +%s%N)
	for p in 1 2 3 4 5 6 7 8; do
		timeout 300 "$ccidctl" -d "$dev" apdu "${apdus[@]}" >"$tmp/perf$p" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" && okc=$((okc + 1))
	done
	t1=$(date +%s%N)
	want "8 processes succeeded ($okc)" [ "$okc" = 8 ]
	for p in 1 2 3 4 5 6 7 8; do
		want "process $p: 1000 echoes" is "$(grep -c '^01 02 03 04 90 00$' "$tmp/perf$p")" 1000
	done
	# a figure, not a verdict: timing says nothing about correctness
	echo "# 8 x 1000 echo APDUs: $(((t1 - t0) / 1000000)) ms"
}

t_revive_on_reset() {
	emu_start revive --revive-on-reset
	need_node || return
	want "mute" emu_ctl mute
	want "USB reset" "$emu" --reset-device "$busid"
	want "log: unmuted by the reset" wait_log '^unmuted reason=reset$' 5
	sleep 0.5
	dev=$(sysfs_node "$busid")
	cc power-on
	cc apdu 80EE0000
	ok_out "answers again" "90 00"
	want "ctl wedge" emu_ctl wedge
	cc -t 500 apdu 80EE0000
	fails_with "wedged by the control channel" ETIMEDOUT
	want "log: abort ignored when wedged" \
		log_has '^abort-ignored seq=[0-9]+ slot=0 reason=wedged$'
	want "log: revived by the driver's reset" log_has '^revived reason=reset$'
	cc power-on
	cc apdu 80EE0000
	ok_out "after the driver's reset" "90 00"
	emu_stop

	emu_start stays
	need_node || return
	want "mute" emu_ctl mute
	want "USB reset" "$emu" --reset-device "$busid"
	want "log: reset" wait_log '^reset$' 5
	sleep 0.5
	dev=$(sysfs_node "$busid")
	want "without --revive-on-reset the mute stays" \
		bash -c "! grep -q '^unmuted' '$log'"
	want "unmute" emu_ctl unmute
	cc status
	want "answers after unmute" [ "$rc" = 0 ]
}

t_detach_and_stdin() {
	local port

	mkfifo "$tmp/stdin"
	log=$tmp/stdin.log
	"$emu" >"$log" <"$tmp/stdin" &
	pid=$!
	exec 7>"$tmp/stdin"
	want "stdout log: node" wait_log '^node dev=' 10
	echo "mute" >&7
	want "stdin control channel" wait_log '^ctl-ok mute$' 5
	port=$(sed -n 's/^attached port=\([0-9]*\) .*/\1/p' "$log")
	echo "$port" >/sys/devices/platform/vhci_hcd.0/detach
	want "log: detached by vhci" wait_log '^detached reason=peer-closed$' 5
	wait "$pid"
	emu_rc=$?
	pid=
	exec 7>&-
	want "exit 0 after the detach" is "$emu_rc" 0
}

t_two_readers() {
	local dev1 busid1 pid1 ctl1

	emu_start one --serial ONE
	need_node || return
	dev1=$dev busid1=$busid pid1=$pid ctl1=$ctl
	pid=
	emu_start two --serial TWO --protocol t0
	need_node || return
	want "two nodes" [ "$dev1" != "$dev" ]
	want "sysfs: first" is "$(sysfs_node "$busid1")" "$dev1"
	want "sysfs: second" is "$(sysfs_node "$busid")" "$dev"
	want "serials" is "$(cat "/sys/bus/usb/devices/$busid1/serial")/$(cat "/sys/bus/usb/devices/$busid/serial")" "ONE/TWO"
	cc power-on
	ok_out "second reader: T=0 ATR" "3B 08 43 43 49 44 2D 45 4D 55"
	"$ccidctl" -d "$dev1" power-on >"$tmp/out" 2>&1
	want "first reader: T=1 ATR" grep -qx "3B 88 80 01 43 43 49 44 2D 45 4D 55 74" "$tmp/out"
	echo quit >"$ctl1"
	wait "$pid1"
	want "first reader exits 0" [ $? = 0 ]
}

# ---------------------------------------------------------------------------
# Out-of-step readers, zero-length packets, held URBs, two interfaces
# ---------------------------------------------------------------------------

# lag_check L [card]: every "lag N seq=Q own=O" line of interface 0
# carries the bSeq of the command L before N in the order received (with
# card: the XfrBlock or Secure L such commands before), O is N's own, and
# with card only XfrBlock and Secure lag while the other answers carry
# their own bSeq.  Prints the number of lag lines; fails on a wrong one.
lag_check() {
	awk -v by="$1" -v card="${2:-}" '
	/ intf=/ { next }
	{
		delete f
		for (i = 3; i <= NF; i++)
			if (split($i, kv, "=") == 2)
				f[kv[1]] = kv[2]
	}
	$1 == "cmd" {
		seq[$2] = f["seq"]
		type[$2] = f["type"]
		if (f["type"] == "0x6f" || f["type"] == "0x69")
			cseq[cno[$2] = ++cards] = f["seq"]
		next
	}
	$1 == "lag" {
		n = $2
		lags++
		want = card ? cseq[cno[n] - by] : seq[n - by]
		if (f["own"] != seq[n] || f["seq"] != want ||
		    (card && !cno[n])) {
			print "wrong: " $0 " (want seq=" want " own=" seq[n] ")"
			bad++
		}
		next
	}
	$1 == "answer" && card && ($2 in type) && !cno[$2] &&
	type[$2] != "" && f["seq"] != seq[$2] {
		print "not its own bSeq: " $0
		bad++
	}
	END { print lags + 0; exit bad > 0 }' "$log"
}

# lag_reset: a USB reset ends the lag (the driver's own, or one from here)
lag_reset() {
	wait_log '^lag-end reason=reset$' 3 || "$emu" --reset-device "$busid"
	want "log: lag-end" wait_log '^lag-end reason=reset$' 5
	wait_log '^configured value=1$' 5
	for _ in $(seq 50); do
		dev=$(sysfs_node "$busid") && [ -e "$dev" ] && break
		sleep 0.1
	done
	cc power-on
	cc apdu 80EE0000
	ok_out "in step after the reset" "90 00"
	want "log: no lag after the reset" \
		bash -c "! awk '/^lag-end/ { e = 1 } e && /^lag [0-9]/' '$log' | grep -q ."
}

t_lag() {
	local out lc

	# Every answer lags by one after command 3
	emu_start lag --lag 3:1
	need_node || return
	cc power-on
	cc apdu 80EE0000
	cc -t 800 apdu 80EE0000
	cc -t 800 apdu 80EE0000
	want "log: lag-start" log_has '^lag-start after=3$'
	want "log: command 4 answered with command 3's bSeq" \
		log_has "^lag 4 seq=$(sed -n 's/^cmd 3 .* seq=\([0-9]*\) .*/\1/p' "$log") own="
	out=$(lag_check 1)
	lc=$?
	want "lag lines carry the bSeq one command back ($out)" [ "$lc" = 0 ]
	want "some answers lagged ($out)" [ "$(tail -n 1 <<<"$out")" -ge 1 ]
	want "a lagged command fails (rc $rc)" [ "$rc" != 0 ]
	lag_reset
	emu_stop

	# Only card commands lag, by two, after command 2
	emu_start lagcard --lag 2:2:card
	need_node || return
	cc power-on
	cc apdu 80EE0000
	cc status
	cc -t 800 apdu 80EE0000
	cc -t 800 apdu 80EE0000
	cc power-on
	cc status
	cc -t 800 apdu 80EE0000
	want "log: lag-start" log_has '^lag-start after=2$'
	out=$(lag_check 2 card)
	lc=$?
	want "card answers carry the bSeq two card commands back ($out)" \
		[ "$lc" = 0 ]
	want "some answers lagged ($out)" [ "$(tail -n 1 <<<"$out")" -ge 2 ]
	want "log: the Abort answered in step" log_has '^abort-answered '
	want "log: a reader command in the lag, not lagged" \
		log_after '^lag-start' '^answer [0-9]+ type=0x81 '
	lag_reset
}

# QEMU 7.2 after a lost APDU: each card answer is the oldest pending one's
t_lag_drop() {
	local n q out lc

	emu_start lagdrop --lag-drop 2
	need_node || return
	cc power-on
	cc -t 800 apdu 80EE0000
	fails_with "the lost APDU" ETIMEDOUT
	n=$(sed -n 's/^no-answer \([0-9]*\) reason=lag-drop$/\1/p' "$log")
	want "log: a card command lost ($n)" [ -n "$n" ]
	want "log: lag-start after it" log_has "^lag-start after=$n\$"
	q=$(sed -n "s/^cmd $n .* seq=\([0-9]*\) .*/\1/p" "$log")
	cc power-on
	cc -t 800 apdu 80EE0000
	want "the next APDU fails too (rc $rc)" [ "$rc" != 0 ]
	want "log: its answer carries the lost command's bSeq $q" \
		[ "$(sed -n 's/^lag [0-9]* seq=\([0-9]*\) .*/\1/p' "$log" | head -n 1)" = "$q" ]
	out=$(lag_check 1 card)
	lc=$?
	want "each card answer: the oldest pending bSeq ($out)" [ "$lc" = 0 ]
	lag_reset
}

# usbfs_zlp USBDEV MODE: raw CCID with zero-length packets on bulk-OUT
# (full speed: wMaxPacketSize 64, a 64-byte XfrBlock is one packet)
usbfs_zlp() {
	python3 - "$1" "$2" <<'EOF2'
import ctypes, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
mode = sys.argv[2]
fcntl.ioctl(fd, 0x8004550f, struct.pack("I", 0))        # CLAIMINTERFACE
seq = 0

def msg(mtype, data=b""):
    global seq
    m = struct.pack("<BIBB", mtype, len(data), 0, seq) + b"\0\0\0" + data
    seq += 1
    return m

def xfr():                                  # 64 bytes: an echo of 49
    return msg(0x6f, bytes.fromhex("80EE000031") + bytes(range(49)))

def out(data):
    buf = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
    arg = bytearray(struct.pack("IIIxxxxQ", 0x02, len(data), 3000,
                                ctypes.addressof(buf)))
    try:
        fcntl.ioctl(fd, 0xc0185502, arg, True)          # USBDEVFS_BULK
    except OSError as e:
        return "errno%d" % e.errno
    return "ok"

def inp(timeout=3000):
    buf = ctypes.create_string_buffer(512)
    arg = bytearray(struct.pack("IIIxxxxQ", 0x81, 512, timeout,
                                ctypes.addressof(buf)))
    try:
        n = fcntl.ioctl(fd, 0xc0185502, arg, True)
    except OSError as e:
        return "errno%d" % e.errno
    r = buf.raw[:n]
    return "%02x len=%d seq=%d st=%02x" % (
        r[0], struct.unpack("<I", r[1:5])[0], r[6], r[7])

libc = ctypes.CDLL(None, use_errno=True)

def urb_ioctl(req, addr):                   # the kernel keeps the address
    if libc.ioctl(fd, ctypes.c_ulong(req), ctypes.c_void_p(addr)):
        raise OSError(ctypes.get_errno(), "ioctl")

def out_zero_packet(data):                  # one URB, URB_ZERO_PACKET
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    urb = ctypes.create_string_buffer(struct.pack(
        "<BBxxiI4xQiiiiiIQ", 3, 0x02, 0, 0x40, ctypes.addressof(buf),
        len(data), 0, 0, 0, 0, 0, 0))
    ptr = ctypes.c_void_p()
    urb_ioctl(0x8038550a, ctypes.addressof(urb))        # SUBMITURB
    urb_ioctl(0x4008550c, ctypes.addressof(ptr))        # REAPURB
    status, = struct.unpack_from("<i", urb.raw, 4)
    actual, = struct.unpack_from("<i", urb.raw, 28)
    return "status=%d actual=%d" % (status, actual)

def clear_halt():
    fcntl.ioctl(fd, 0x80045515, struct.pack("I", 0x02))  # CLEAR_HALT
    return "ok"

print("power", out(msg(0x62)), inp())
if mode == "ignore":
    print("xfr", out(xfr()), "zlp", out(b""), inp())
    print("flag", out_zero_packet(xfr()), inp())
elif mode == "stall":
    print("xfr", out(xfr()), inp(), "zlp", out(b""))
    print("halted", out(msg(0x65)), "clear", clear_halt())
    print("status", out(msg(0x65)), inp())
    print("flag", out_zero_packet(xfr()), inp(), "clear", clear_halt())
else:
    print("xfr", out(xfr()), "early", inp(300), "zlp", out(b""), inp())
    print("xfr", out(xfr()), "status", out(msg(0x65)), inp(), inp())
    print("flag", out_zero_packet(xfr()), inp())
EOF2
}

t_out_zlp() {
	local usbdev

	want "python3 is installed" command -v python3 >/dev/null || return
	# The driver's own commands: a 64-byte one, whatever it does with ZLPs
	emu_start zlpdrv --speed 2
	need_node || return
	cc power-on
	cc apdu 80EE000031000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F30
	want "64-byte XfrBlock through the driver (rc $rc: $err)" [ "$rc" = 0 ]
	want "log: it was one packet" log_has '^cmd [0-9]+ type=0x6f slot=0 seq=[0-9]+ len=54 '
	echo "# the driver sent $(log_count '^out-zlp ') bulk-OUT ZLPs"
	emu_stop

	emu_start zlpi --speed 2 --node-timeout 1500 --vid 1234 --iface-class 0xff
	want "not bound" [ -z "$dev" ]
	usbdev=$(printf '/dev/bus/usb/%03d/%03d' \
		"$(cat "/sys/bus/usb/devices/$busid/busnum")" \
		"$(cat "/sys/bus/usb/devices/$busid/devnum")")
	usbfs_zlp "$usbdev" ignore >"$tmp/zlp.out" 2>&1
	want "ignore: usbfs view" is "$(cat "$tmp/zlp.out")" "power ok 80 len=13 seq=0 st=00
xfr ok zlp ok 80 len=51 seq=1 st=00
flag status=0 actual=64 80 len=51 seq=2 st=00"
	want "ignore: log: the 0-byte URB" log_has '^out-zlp 2$'
	want "ignore: log: URB_ZERO_PACKET" log_has '^out-zlp 3$'
	emu_stop

	emu_start zlps --speed 2 --node-timeout 1500 --vid 1234 \
		--iface-class 0xff --out-zlp stall
	usbdev=$(printf '/dev/bus/usb/%03d/%03d' \
		"$(cat "/sys/bus/usb/devices/$busid/busnum")" \
		"$(cat "/sys/bus/usb/devices/$busid/devnum")")
	usbfs_zlp "$usbdev" stall >"$tmp/zlp.out" 2>&1
	want "stall: usbfs view" is "$(cat "$tmp/zlp.out")" "power ok 80 len=13 seq=0 st=00
xfr ok 80 len=51 seq=1 st=00 zlp errno32
halted errno32 clear ok
status ok 81 len=0 seq=3 st=00
flag status=-32 actual=64 80 len=51 seq=4 st=00 clear ok"
	want "stall: log: the ZLP stalled" log_has '^out-zlp stall 2$'
	want "stall: log: bulk-OUT halted" log_has '^stall ep=0x02$'
	want "stall: log: cleared" log_has '^clear-halt ep=0x02$'
	want "stall: log: URB_ZERO_PACKET stalls after the command" \
		log_after '^cmd 4 type=0x6f' '^out-zlp stall 4$'
	emu_stop

	emu_start zlpn --speed 2 --node-timeout 1500 --vid 1234 \
		--iface-class 0xff --out-zlp need
	usbdev=$(printf '/dev/bus/usb/%03d/%03d' \
		"$(cat "/sys/bus/usb/devices/$busid/busnum")" \
		"$(cat "/sys/bus/usb/devices/$busid/devnum")")
	usbfs_zlp "$usbdev" need >"$tmp/zlp.out" 2>&1
	want "need: usbfs view" is "$(cat "$tmp/zlp.out")" "power ok 80 len=13 seq=0 st=00
xfr ok early errno110 zlp ok 80 len=51 seq=1 st=00
xfr ok status ok 80 len=51 seq=2 st=00 81 len=0 seq=3 st=40
flag status=0 actual=64 80 len=51 seq=4 st=00"
	want "need: log: waiting" log_has '^out-zlp-wait 2$'
	want "need: log: run on its ZLP" log_after '^out-zlp ok 2$' '^cmd 2 type=0x6f'
	# the GetSlotStatus finds the slot busy with the XfrBlock it started
	want "need: log: the ZLP missing" log_has '^out-zlp missing 3$'
	want "need: log: URB_ZERO_PACKET" log_has '^out-zlp ok 5$'
	want "need: log: no wait for a short command" \
		bash -c "! grep -qE '^out-zlp-wait (1|4)$' '$log'"
}

# An answer that fills the driver's bulk-IN URB is followed by a ZLP
t_in_zlp() {
	emu_start inzlp --speed 2 --max-msg 256 --in-zlp
	need_node || return
	cc power-on
	cc apdu 80EE0000F4
	want "a 256-byte answer (rc $rc: $err)" [ "$rc" = 0 ] && \
		want "ends 90 00" grep -q '90 00$' "$tmp/out"
	want "log: it filled the URB" \
		log_has '^answer 2 type=0x80 slot=0 seq=[0-9]+ len=246 '
	cc apdu 80EE000010
	want "the next command (rc $rc: $err)" [ "$rc" = 0 ]
	want "log: a ZLP after the full answer" log_after '^answer 2 ' '^in-zlp$'
	cc apdu 80EE0000
	ok_out "and the one after" "90 00"
	want "log: only that one ZLP" [ "$(log_count '^in-zlp$')" = 1 ]
}

# The reader NAKs command 2's bulk-OUT until the driver gives up
t_out_pending() {
	emu_start pending --out-pending 2
	need_node || return
	cc power-on
	cc apdu 80EE0000
	want "the held command fails (rc $rc)" [ "$rc" != 0 ]
	want "log: held" log_has '^out-pending 2 type=0x6f slot=0 seq=[0-9]+$'
	want "log: unlinked by the driver" log_has '^out-pending-unlinked 2$'
	want "log: not run" bash -c "! grep -qE '^(cmd|answer) 2 ' '$log'"
	want "log: the Abort after it served" \
		log_after '^out-pending-unlinked 2$' '^abort-answered '
	cc power-on
	cc apdu 80EE0000
	ok_out "later commands work" "90 00"
}

# intf_node N: the node of interface N from the log ("" if none)
intf_node() {
	if [ "$1" = 0 ]; then
		grep -E '^node dev=[^ ]+ busid=[^ ]+$' "$log" | tail -n 1
	else
		grep -E "^node dev=[^ ]+ busid=[^ ]+ intf=$1\$" "$log" | tail -n 1
	fi | sed 's/^node dev=\([^ ]*\) .*/\1/'
}

t_interfaces() {
	local dev0 dev1 st

	emu_start two --interfaces 2 --script-intf 1 --drop 2
	need_node || return
	want "log: interface 1's node" wait_log '^node dev=[^ ]+ busid=[^ ]+ intf=1$' 5
	dev0=$(intf_node 0) dev1=$(intf_node 1)
	want "two nodes ($dev0, $dev1)" [ -n "$dev0" ] && [ -n "$dev1" ] && \
		[ "$dev0" != "$dev1" ]
	want "interface 0's node first" \
		[ "$(grep '^node ' "$log" | head -n 1)" = "node dev=$dev0 busid=$busid" ]
	want "bNumInterfaces 2" is "$(tr -d ' ' <"/sys/bus/usb/devices/$busid/bNumInterfaces")" 2
	want "sysfs: interface 0" is "$(ls "/sys/bus/usb/devices/$busid:1.0/usbmisc")" "${dev0#/dev/}"
	want "sysfs: interface 1" is "$(ls "/sys/bus/usb/devices/$busid:1.1/usbmisc")" "${dev1#/dev/}"
	want "interface 1's own endpoints" [ -e "/sys/bus/usb/devices/$busid:1.1/ep_84" ]
	dev=$dev0 cc info
	want "info on interface 0 (rc $rc: $err)" [ "$rc" = 0 ]
	dev=$dev1 cc info
	want "info on interface 1 (rc $rc: $err)" [ "$rc" = 0 ]
	dev=$dev0 cc power-on
	ok_out "power-on interface 0" "3B 88 80 01 43 43 49 44 2D 45 4D 55 74"
	dev=$dev1 cc power-on
	ok_out "power-on interface 1" "3B 88 80 01 43 43 49 44 2D 45 4D 55 74"
	want "log: interface 1's commands" log_has '^cmd 1 type=0x62 .* intf=1$'
	want "log: interface 1's answers" log_has '^answer 1 type=0x80 .* intf=1$'
	want "log: interface 0's lines as before" \
		log_has '^cmd 1 type=0x62 slot=0 seq=[0-9]+ len=0 p=[0-9a-f]+ data=-$'
	dev=$dev1 cc -t 800 apdu 80EE0000
	want "the script on interface 1 (rc $rc)" [ "$rc" != 0 ]
	want "log: its ABORT request came with wIndex 1" \
		log_has '^abort-request wValue=0x[0-9a-f]+ slot=0 seq=[0-9]+ intf=1$'
	dev=$dev0 cc apdu 80EE0000
	ok_out "interface 0 unaffected" "90 00"
	want "ctl: interface 1's card out" emu_ctl "intf 1 remove 0"
	dev=$dev1 cc status
	st=$out
	dev=$dev0 cc status
	want "only interface 1's card is gone" \
		is "$st/$out" "card: absent
clock: running/card: active
clock: running"
	want "ctl: interface 1's card in" emu_ctl "intf 1 insert 0"

	# One reset, both readers
	dev=$dev1 cc power-on
	want "USB reset" "$emu" --reset-device "$busid"
	want "log: reset" wait_log '^reset$' 5
	for _ in $(seq 100); do
		[ "$(log_count '^node dev=[^ ]+ busid=[^ ]+ intf=1$')" -ge 2 ] && break
		sleep 0.05
	done
	dev0=$(intf_node 0) dev1=$(intf_node 1)
	dev=$dev0 cc status
	st=$out
	dev=$dev1 cc status
	want "both cards powered off by the reset" \
		is "$st/$out" "card: inactive
clock: running/card: inactive
clock: running"
	dev=$dev1 cc power-on
	dev=$dev1 cc apdu 80EE0000
	ok_out "interface 1 after the reset" "90 00"
}

# --chaos SEED:PERMILLE: faults from the menu, the first one the same for
# the same seed, none once "chaos 0"
t_chaos() {
	local good=0 bad=0 kinds first n

	want "--chaos odds above 1000 refused" bash -c "! '$emu' --chaos 1:1001 >/dev/null 2>&1"
	emu_start chaos --chaos 7:300
	need_node || return
	for _ in $(seq 40); do
		cc -t 500 power-on
		cc -t 500 apdu 80EE00000401020304
		case $rc in
		0) good=$((good + 1)) ;;
		1) bad=$((bad + 1)) ;;
		*) problems+=("ccidctl exit $rc: $err") ;;
		esac
	done
	want "some answers good ($good)" [ "$good" -gt 5 ]
	want "some answers bad ($bad)" [ "$bad" -gt 5 ]
	kinds=$(grep -oE '^chaos [0-9]+ kind=[a-z-]+' "$log" |
		sed 's/ [0-9]* / /' | sort -u | wc -l)
	want "a mix of faults ($kinds kinds)" [ "$kinds" -ge 6 ]
	want "ctl: chaos 0" emu_ctl "chaos 0"
	n=$(log_count '^chaos ')
	cc power-on
	cc apdu 80EE00000401020304
	ok_out "no fault after chaos 0" "01 02 03 04 90 00"
	want "no chaos line after chaos 0" [ "$(log_count '^chaos ')" = "$n" ]
	first=$(grep -m1 '^chaos ' "$log")
	emu_stop
	emu_start chaos2 --chaos 7:300
	need_node || return
	for _ in $(seq 10); do
		cc -t 500 power-on
		grep -q '^chaos ' "$log" && break
	done
	want "the same first fault from the same seed ($first)" \
		is "$(grep -m1 '^chaos ' "$log")" "$first"
}

# ---------------------------------------------------------------------------

tests=(attach full_speed personality vendor_class hostile_descriptors
       card_power apdus sizes t0 tpdu_t1 extended escape secure_pad compat32
       secure_ctl
       secure_modify time_extension timeout_abort mute ladder
       abort_request_modes abort_after_clear_halt stall bad_frames
       slot_events usbfs raw_ccid disconnect replug usb_reset revive_on_reset
       detach_and_stdin two_readers spr332 random throughput
       lag lag_drop out_zlp in_zlp out_pending interfaces chaos)
[ $# -eq 0 ] || tests=("$@")

echo "TAP version 13"
if [ "$(id -u)" != 0 ] || [ ! -e /sys/devices/platform/vhci_hcd.0/attach ]; then
	echo "1..0 # SKIP needs root and vhci-hcd (run it in run-vm --reader none)"
	exit 4
fi
if [ ! -x "$emu" ] || [ ! -x "$ccidctl" ] || [ ! -x "$ccidctl32" ]; then
	echo "1..0 # SKIP build ccid_emu, tools/ccid/ccidctl and ccidctl32 first"
	exit 4
fi
if [ ! -d /sys/bus/usb/drivers/ccid ]; then
	echo "1..0 # SKIP ccid.ko is not loaded"
	exit 4
fi
echo "1..${#tests[@]}"
for t in "${tests[@]}"; do
	run_test "$t" "t_$t"
done
[ "$failed" -eq 0 ]
