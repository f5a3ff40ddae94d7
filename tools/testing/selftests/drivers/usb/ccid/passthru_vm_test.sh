#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# passthru_vm_test.sh - the driver against QEMU's usb-ccid reader with a
# ccid-card-passthru card served by vscard_card on the host; run by
# passthru_run.sh:
#
#   tools/testing/selftests/drivers/usb/ccid/passthru_run.sh --kernel 6.1
#
# TAP output; every test is skipped outside the VM.  Exit status 1 if a
# test failed.  CCIDCTL in the environment names another ccidctl binary;
# CCID_PASSTHRU_TESTS picks the groups below (default "abcd", e.g. "d").
#
# The card (vscard_card.c) echoes "80 EE 00 00 Lc DATA [Le]" as DATA 90 00,
# answers "80 EE 00 00 Le" with Le bytes 00 01 02 ..., takes any
# "80 EF 00 00 ..." with 90 00 and never answers "80 DD 00 00".
#
# QEMU 7.2 limits: a command travels in one 64 KiB bulk-OUT buffer, so an
# XfrBlock carries at most 65536 - 10 bytes (larger ones are stalled); an
# answer is queued in a 384-byte bulk-IN buffer, so a DataBlock carries at
# most 374 bytes (larger ones are discarded: the command is never
# answered).  The echo is tested up to Lc 372 (372 + SW = 374), the
# one-way sink up to 65519 (7-byte extended header + 65519 = 65526).
#
#   a. every APDU size: echo Lc 1..255 (short), 256..372 (extended),
#      Le 1..256, and large sink APDUs, each with its own answer;
#   b. Secure with every PIN verify block size the driver takes (19..276
#      bytes): QEMU answers CMD_NOT_SUPPORTED each time;
#   c. the out-of-step reader: an APDU the card never answers leaves QEMU
#      a pending answer, after which QEMU stamps every card answer with the
#      bSeq of the command before; the driver must notice, reset the
#      reader and answer the next APDUs right;
#   d. (last: the reader is gone after it) unplug while an APDU is pending.
#
# Two QEMU 7.2 habits the driver meets here: it stalls the zero-length
# packet that ends a bulk-OUT message of a multiple of 64 bytes (the
# command itself was taken and answered), and after a DataBlock of exactly
# 64 bytes (echo Lc 52, Le 52) it sends a zero-length packet, which the
# read for the next command gets.
#
# After a failed command the driver powers the card off (see ccid.rst,
# "Recovery"), and QEMU 7.2 answers an XfrBlock to an unpowered card with
# an empty DataBlock and no error, without asking the card: so every
# failure is followed by a power-on.

here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
top=$(cd "$here/../../../../../.." && pwd)
ccidctl=${CCIDCTL:-$top/tools/ccid/ccidctl}

ATR="3B 02 14 50"
UNSUPPORTED="the reader does not support this command"
SECURE_ERR="ccidctl: verify-pin: EOPNOTSUPP: $UNSUPPORTED (bStatus 0x40, bError 0x00: CMD_NOT_SUPPORTED)"
ECHO_MAX=372		# QEMU's 384-byte bulk-IN buffer, less header and SW
SINK_MAX=65519		# QEMU's 64 KiB bulk-OUT buffer, less the headers
T_MS=5000		# -t of APDUs the card answers

echo "TAP version 13"
if [ "${CCID_VM:-}" != 1 ] || [ "${CCID_VM_READER:-}" != passthru ]; then
	echo "1..1"
	echo "ok 1 - the driver against ccid-card-passthru # SKIP not in the ccid test VM with --reader passthru=SOCKET (use passthru_run.sh)"
	exit 0
fi

tests=${CCID_PASSTHRU_TESTS:-abcd}

# selected GROUP: is test group GROUP (a, b, c or d) to run?
selected() {
	[[ "$tests" == *"$1"* ]]
}

tmp=$(mktemp -d) || exit 1
mon_pid=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	[ -z "$mon_pid" ] || kill "$mon_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=tap_lib.sh
. "$here/tap_lib.sh"

# The reader: the lowest ccidN that sysfs knows, as ccidctl picks it
node=$(lowest_node)
if [ -z "$node" ]; then
	echo "1..1"
	echo "not ok 1 - a CCID reader in /sys/class/usbmisc"
	exit 1
fi
intf=$(readlink -f "/sys/class/usbmisc/$node/device")
udev=${intf%/*}
echo "# reader $node, interface ${intf##*/}, QEMU $("$CCID_VMCTL" info version 2>/dev/null | head -n1)"

# ---- helpers -----------------------------------------------------------

# "00 01 02 ... FF 00 01 ...": 768 hex pairs to cut data from
tab=
for i in $(seq 0 255); do
	printf -v h '%02X ' "$i"
	tab+=$h
done
tab+=$tab$tab
# 64 KiB and a little more of "00" pairs, no blanks
zeros=00
while [ ${#zeros} -lt 132000 ]; do
	zeros+=$zeros
done

# bytes N [OFFSET]: N hex pairs from the table, blank-separated
bytes() {
	printf '%s' "${tab:$((${2:-0} * 3)):$(($1 * 3 - 1))}"
}

hex2() { printf '%02X' "$1"; }

# counter NAME: a counter of the interface, "-" when it does not exist
counter() {
	cat "$intf/$1" 2>/dev/null || echo -
}

counters() {
	local c

	for c in usb_resets out_of_step timeouts aborts stale_frames \
		 clear_halts protocol_errors; do
		printf '%s=%s ' "$c" "$(counter "$c")"
	done
}

# diag LINE...: the lines, at most 30 of them, as not_ok takes them
diag_lines=()
diag() {
	diag_lines=("${@:1:30}")
	[ $# -le 30 ] || diag_lines+=("... and $(($# - 30)) more")
}

# power_on: after a failure; a failed power-on is added to bad[]
power_on() {
	local out

	out=$("$ccidctl" power-on 2>&1 </dev/null) ||
		bad+=("power-on after it failed: $out")
}

# Start capturing the reader's bus with usbmon (text, 32 data bytes)
mon_start() {
	local bus

	modprobe usbmon 2>/dev/null
	bus=$(cat "$udev/busnum" 2>/dev/null)
	if [ -z "$bus" ] || [ ! -r "/sys/kernel/debug/usb/usbmon/${bus}u" ]; then
		echo "# usbmon not available: no raw frames"
		return 1
	fi
	cat "/sys/kernel/debug/usb/usbmon/${bus}u" >"$tmp/mon" &
	mon_pid=$!
	sleep 0.2
}

mon_stop() {
	[ -n "$mon_pid" ] || return 0
	sleep 0.2
	kill "$mon_pid" 2>/dev/null
	wait "$mon_pid" 2>/dev/null
	mon_pid=
}

# mon_lines: usbmon lines so far
mon_lines() {
	wc -l <"$tmp/mon" 2>/dev/null || echo 0
}

# mon_frames [FIRST_LINE]: the CCID headers of the bulk frames captured
# from line FIRST_LINE on: commands as submitted, answers as completed
mon_frames() {
	[ -s "$tmp/mon" ] || return 0
	tail -n "+${1:-1}" "$tmp/mon" | awk '
	function b(i) { return substr(d, 2 * i + 1, 2) }
	($3 == "S" && $4 ~ /^Bo:/) || ($3 == "C" && $4 ~ /^Bi:/) {
		if ($3 == "C" && $5 != 0) {
			printf "%s %s status %s\n", $3, $4, $5
			next
		}
		d = ""
		for (i = 8; i <= NF; i++)
			d = d $i
		if (length(d) < 20) {
			printf "%s %s len %s\n", $3, $4, $6
			next
		}
		printf "%s %s len %s: type %s dwLength %s%s%s%s slot %s bSeq %s", \
			$3, substr($4, 1, 2), $6, b(0), b(4), b(3), b(2), \
			b(1), b(5), b(6)
		if ($4 ~ /^Bi:/)
			printf " bStatus %s bError %s bChain %s data %s", b(7), \
				b(8), b(9), substr(d, 21, 12)
		printf "\n"
	}
	$4 ~ /^Ii:/ && $3 == "C" && $5 == 0 {
		printf "C Ii len %s: %s\n", $6, $8
	}'
}

# batch NAME MAX_FAILURES: send apdu[] with one ccidctl per run, and
# after each failure a power-on and the APDUs from the next one on;
# want[] are the expected answers, label[] name the APDUs.  One test: ok
# when every APDU got its answer; else the failures are listed.
batch() {
	local name=$1 max=$2 i=0 k total=${#apdu[@]} fails=0
	local -a got
	bad=()

	while [ "$i" -lt "$total" ]; do
		run "$ccidctl" -t "$T_MS" apdu "${apdu[@]:i}"
		mapfile -t got <"$tmp/out"
		for ((k = 0; k < ${#got[@]} && i + k < total; k++)); do
			[ "${got[k]}" = "${want[i + k]}" ] ||
				bad+=("${label[i + k]}: wrong answer: '${got[k]:0:47}'")
		done
		i=$((i + ${#got[@]}))
		if [ "$rc" = 0 ]; then
			[ "$i" -ge "$total" ] ||
				bad+=("${label[i]}: exit status 0 without an answer")
			break
		fi
		bad+=("${label[i]:-after the last}: exit status $rc: $(head -n1 "$tmp/err")")
		i=$((i + 1))
		fails=$((fails + 1))
		if [ "$fails" -ge "$max" ] && [ "$i" -lt "$total" ]; then
			bad+=("giving up after $fails failures: $((total - i)) APDUs not sent")
			break
		fi
		power_on
	done
	: >"$tmp/out"
	: >"$tmp/err"
	if [ ${#bad[@]} = 0 ]; then
		ok "$name"
	else
		diag "${bad[@]}"
		not_ok "$name" "${#bad[@]} of $total APDUs failed:" "${diag_lines[@]}"
	fi
}

# echo_apdu LC OFFSET: a case 4 echo APDU (short or extended) and its answer
echo_apdu() {
	local lc=$1 data

	data=$(bytes "$lc" "$2")
	if [ "$lc" -le 255 ]; then
		apdu+=("80 EE 00 00 $(hex2 "$lc") $data 00")
	else
		apdu+=("80 EE 00 00 00 $(hex2 $((lc >> 8))) $(hex2 $((lc & 255))) $data 00 00")
	fi
	want+=("$data 90 00")
}

mountpoint -q /sys/kernel/debug ||
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo 'module ccid +p' 2>/dev/null >/sys/kernel/debug/dynamic_debug/control

check "power-on: the card's ATR" 0 "$ATR" "" -- "$ccidctl" power-on

# ---- a. every APDU size -------------------------------------------------

test_sizes() {
	# The message is 10 + 5 + Lc + 1 bytes: a multiple of the 64-byte
	# wMaxPacketSize for Lc 48, 112, 176 and 240
	apdu=() want=() label=()
	for lc in $(seq 1 255); do
		echo_apdu "$lc" "$lc"
		label+=("Lc $lc")
	done
	batch "echo: every short Lc 1..255 returns its DATA 90 00" 10

	# 10 + 7 + Lc + 2 bytes: a multiple of 64 for Lc 301 and 365
	apdu=() want=() label=()
	for lc in $(seq 256 "$ECHO_MAX"); do
		echo_apdu "$lc" "$lc"
		label+=("extended Lc $lc")
	done
	batch "echo: every extended Lc 256..$ECHO_MAX returns its DATA 90 00" 10

	apdu=() want=() label=()
	for le in $(seq 1 256); do
		apdu+=("80 EE 00 00 $(hex2 $((le & 255)))")
		want+=("$(bytes "$le") 90 00")
		label+=("Le $le")
	done
	batch "case 2: every Le 1..256 returns Le bytes and 90 00" 10

	# Large commands, one-way (answer 90 00): the last one fills QEMU's
	# buffer exactly (a multiple of 64, too)
	apdu=() want=() label=()
	for lc in 1000 4096 32768 "$SINK_MAX"; do
		apdu+=("80 EF 00 00 00 $(hex2 $((lc >> 8))) $(hex2 $((lc & 255))) ${zeros:0:$((lc * 2))}")
		want+=("90 00")
		label+=("sink Lc $lc")
	done
	batch "sink: extended APDUs up to $((SINK_MAX + 7)) bytes, QEMU's maximum" 4

	lc=$((SINK_MAX + 1))
	run "$ccidctl" -t "$T_MS" apdu "80 EF 00 00 00 $(hex2 $((lc >> 8))) $(hex2 $((lc & 255))) ${zeros:0:$((lc * 2))}"
	if [ "$rc" = 1 ] && grep -q '^ccidctl: apdu: EIO: ' "$tmp/err"; then
		ok "sink: one byte past QEMU's 64 KiB buffer is stalled: EIO"
	else
		not_ok "sink: one byte past QEMU's 64 KiB buffer is stalled: EIO" \
			"exit status $rc, expected 1 and an EIO line"
	fi
	run "$ccidctl" power-on
	check "power-on and echo after the stall" 0 "$(bytes 8 0x5a) 90 00" "" -- \
		"$ccidctl" -t "$T_MS" apdu "80 EE 00 00 08 $(bytes 8 0x5a) 00"
}

# ---- b. Secure with every PIN block size ---------------------------------

# abPINApdu of 4 (case 1), 5 (P3 only), 5 + Lc (Lc 1..255) and 261 bytes
# (Lc 255 and Le): verify blocks of 15 + 4 .. 15 + 261 bytes.  The
# Secure message is a multiple of 64 bytes for blocks 54, 118, 182, 246.
test_secure() {
	run "$ccidctl" power-on
	bad=()
	for len in $(seq 4 261); do
		case "$len" in
		4) pin="00 20 00 82" ;;
		5) pin="00 20 00 82 00" ;;
		261) pin="00 20 00 82 FF $(bytes 255) 00" ;;
		*) pin="00 20 00 82 $(hex2 $((len - 5))) $(bytes $((len - 5)))" ;;
		esac
		run "$ccidctl" verify-pin --apdu "$pin"
		if [ "$rc" != 1 ] || [ -s "$tmp/out" ] ||
		   [ "$(cat "$tmp/err")" != "$SECURE_ERR" ]; then
			bad+=("block $((len + 15)) (abPINApdu $len): exit status $rc: $(head -n1 "$tmp/err")$(head -c 40 "$tmp/out")")
			power_on
		fi
		if [ ${#bad[@]} -ge 10 ] && [ "$len" -lt 261 ]; then
			bad+=("giving up after ${#bad[@]} failures at block $((len + 15))")
			break
		fi
	done
	: >"$tmp/out"
	: >"$tmp/err"
	name="secure: every verify block 19..276 bytes gets CMD_NOT_SUPPORTED (EOPNOTSUPP)"
	if [ ${#bad[@]} = 0 ]; then
		ok "$name"
	else
		diag "${bad[@]}"
		not_ok "$name" "${#bad[@]} blocks failed, expected: $SECURE_ERR" \
			"${diag_lines[@]}"
	fi
}

# ---- c. the out-of-step reader ------------------------------------------

test_out_of_step() {
	mon_start
	dmesg_from=$(dmesg | wc -l)

	check "out of step: power-on" 0 "$ATR" "" -- "$ccidctl" power-on
	check "out of step: echo before the drop" 0 "C0 FF EE 90 00" "" -- \
		"$ccidctl" -t "$T_MS" apdu "80 EE 00 00 03 C0 FF EE 00"

	before=$(counters)
	resets0=$(counter usb_resets)
	oos0=$(counter out_of_step)
	mon_from=$(($(mon_lines) + 1))
	run "$ccidctl" -t 2000 apdu "80 DD 00 00"
	if [ "$rc" = 1 ] && grep -q '^ccidctl: apdu: ETIMEDOUT: ' "$tmp/err"; then
		ok "out of step: the dropped APDU times out (-t 2000): ETIMEDOUT"
	else
		not_ok "out of step: the dropped APDU times out (-t 2000): ETIMEDOUT" \
			"exit status $rc, expected 1 and an ETIMEDOUT line"
	fi
	after_drop=$(counters)

	# power-on and one echo with unique data, until the echo is right
	fails=() rounds=0 good=0 resets_at_good=- oos_at_good=-
	for r in $(seq 1 10); do
		rounds=$r
		data="0D $(hex2 "$r") $(bytes 4 $((r * 7)))"
		run "$ccidctl" power-on
		pon="power-on exit status $rc $(head -c 80 "$tmp/err")"
		run "$ccidctl" -t "$T_MS" apdu "80 EE 00 00 06 $data 00"
		if [ "$rc" = 0 ] && [ "$(cat "$tmp/out")" = "$data 90 00" ]; then
			good=$r
			resets_at_good=$(counter usb_resets)
			oos_at_good=$(counter out_of_step)
			break
		fi
		fails+=("round $r: $pon; echo exit status $rc: $(head -n1 "$tmp/err")$(head -c 47 "$tmp/out"); $(counters)")
	done
	: >"$tmp/out"
	: >"$tmp/err"
	state=("before the drop: $before" "after the drop:  $after_drop"
	       "now:             $(counters)" "${fails[@]}")

	name="out of step: an echo returns its own data again within 10 rounds"
	if [ "$good" != 0 ]; then
		ok "$name (round $good)"
	else
		not_ok "$name" "no right answer in $rounds rounds" "${state[@]}"
		mon_frames "$mon_from" | head -n 40 | sed 's/^/frame: /' >"$tmp/frames"
		[ ! -s "$tmp/frames" ] || sed 's/^/#   /' "$tmp/frames"
		dmesg | tail -n "+$((dmesg_from + 1))" | grep -i ccid | tail -n 15 |
			sed 's/^/#   dmesg: /'
	fi

	name="out of step: at most one APDU failed before the right answer"
	if [ "$good" != 0 ] && [ ${#fails[@]} -le 1 ]; then
		ok "$name (${#fails[@]} failed)"
	else
		not_ok "$name" "${#fails[@]} failed in $rounds rounds" "${fails[@]}"
	fi

	name="out of step: usb_resets shows a USB reset between the drop and the right answer"
	if [ "$good" != 0 ] && [ "$resets0" != - ] && [ "$resets_at_good" != - ] &&
	   [ "$resets_at_good" -gt "$resets0" ]; then
		ok "$name ($resets0 -> $resets_at_good)"
	else
		not_ok "$name" "usb_resets $resets0 before the drop, $(counter usb_resets) now, ${resets_at_good} at the right answer" \
			"${state[@]:0:3}"
	fi

	name="out of step: out_of_step counts the reader that answered out of step"
	if [ "$oos0" = - ]; then
		not_ok "$name" "no out_of_step attribute in $intf: the driver does not count out-of-step readers"
	elif [ "$good" != 0 ] && [ "$oos_at_good" -gt "$oos0" ]; then
		ok "$name ($oos0 -> $oos_at_good)"
	else
		not_ok "$name" "out_of_step $oos0 before the drop, $(counter out_of_step) now, $oos_at_good at the right answer" \
			"${state[@]:0:3}"
	fi

	run "$ccidctl" power-on
	apdu=() want=() label=()
	for i in $(seq 1 100); do
		data="$(hex2 "$i") $(bytes 7 $((i * 3)))"
		apdu+=("80 EE 00 00 08 $data 00")
		want+=("$data 90 00")
		label+=("echo $i")
	done
	batch "out of step: then 100 echo APDUs in a row each return their own data" 2
	mon_stop
}

# ---- d. unplug while an APDU is pending (last) ----------------------------

# reset_reader: a USB reset of the reader through usbfs (USBDEVFS_RESET,
# as usbreset does); QEMU's usb-ccid forgets its pending answers
reset_reader() {
	local dev

	dev=$(printf '/dev/bus/usb/%03d/%03d' "$(cat "$udev/busnum")" \
		     "$(cat "$udev/devnum")")
	command -v python3 >/dev/null || return 1
	python3 -c 'import fcntl, os, sys
fcntl.ioctl(os.open(sys.argv[1], os.O_WRONLY), 0x5514)' "$dev"
}

test_unplug() {
	local probe

	# A reader still out of step (c failed) would answer with the bSeq
	# of an older command: start from a reader in step
	run "$ccidctl" power-on
	run "$ccidctl" -t 3000 apdu "80 EE 00 00 02 D0 0D 00"
	probe=$(cat "$tmp/out")
	if [ "$probe" != "D0 0D 90 00" ]; then
		if reset_reader; then
			echo "# unplug: the reader was out of step: USB reset through usbfs"
		else
			echo "# unplug: the reader is out of step and could not be reset"
		fi
		run "$ccidctl" power-on
	fi
	mon_start
	mon_from=$(($(mon_lines) + 1))
	"$ccidctl" -t 60000 apdu "80 DD 00 00" </dev/null >"$tmp/d.out" 2>"$tmp/d.err" &
	pid=$!
	# The XfrBlock has reached QEMU once its bulk-OUT URB completed; QEMU
	# hands it to the card at once
	for _ in $(seq 1 100); do
		tail -n "+$mon_from" "$tmp/mon" 2>/dev/null | grep -q ' C Bo:' && break
		[ -n "$mon_pid" ] || { sleep 2; break; }
		sleep 0.1
	done
	sleep 0.5
	"$CCID_VMCTL" device_del ccid0 >"$tmp/del" 2>&1
	del_rc=$?
	waited=0
	while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 300 ]; do
		sleep 0.1
		waited=$((waited + 1))
	done
	hung=0
	if kill -0 "$pid" 2>/dev/null; then
		hung=1
		kill "$pid" 2>/dev/null
	fi
	wait "$pid"
	d_rc=$?
	mon_stop
	cp "$tmp/d.out" "$tmp/out"
	cp "$tmp/d.err" "$tmp/err"

	echo "# unplug: device_del ccid0 exit status $del_rc $(head -c 80 "$tmp/del")"
	echo "# unplug: ccidctl exit status $d_rc after ~$((waited / 10)) s, stdout '$(head -c 60 "$tmp/out")', stderr '$(head -n1 "$tmp/err")'"
	mon_frames "$mon_from" | sed 's/^/# unplug: frame: /'

	name="unplug with an APDU pending: ccidctl fails and prints no answer"
	if [ "$hung" = 1 ]; then
		not_ok "$name" "ccidctl still blocked 30 s after the unplug (killed)"
	elif [ "$d_rc" != 0 ] && [ ! -s "$tmp/out" ]; then
		ok "$name"
	else
		not_ok "$name" "exit status $d_rc, expected non-zero with no stdout (an ENODEV line)"
	fi
}

for group in a b c d; do
	selected "$group" || continue
	case "$group" in
	a) test_sizes ;;
	b) test_secure ;;
	c) test_out_of_step ;;
	d) test_unplug ;;
	esac
done

echo "1..$n"
[ "$failed" = 0 ] || exit 1
exit 0
