#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ccidctl_test.sh - tests of ccidctl that need no reader: usage errors,
# help, the error line for a node that is not a reader, and the Secure PIN
# blocks that --dump prints.  TAP output; exit status 1 if a test failed.
#
# CCIDCTL in the environment names another ccidctl binary.

here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
top=$(cd "$here/../../../../../.." && pwd)
ccidctl=${CCIDCTL:-$top/tools/ccid/ccidctl}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ccidctl_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tap_lib.sh
. "$here/tap_lib.sh"
run_prefix=("$ccidctl")

# usage NAME MESSAGE -- ARGS...: exit status 2, nothing on stdout, the
# message and the --help hint on stderr
usage() {
	local name=$1 msg=$2

	shift 3
	check "usage: $name" 2 "" "$msg
Try 'ccidctl --help' for more information." -- "$@"
}

echo "TAP version 13"
if [ ! -x "$ccidctl" ]; then
	echo "1..0 # SKIP $ccidctl not built (make tools)"
	exit 4
fi

# ---- help and version -------------------------------------------------
run --help
if [ "$rc" = 0 ] && [ ! -s "$tmp/err" ] &&
   [ "$(head -n1 "$tmp/out")" = "Usage: ccidctl [-d DEV] [-s SLOT] [-t TIMEOUT_MS] COMMAND [ARGS]" ] &&
   grep -q '^  verify-pin --apdu HEX' "$tmp/out" &&
   grep -q '^Exit status: 0 success, 1 failure, 2 usage error' "$tmp/out"; then
	ok "--help: usage on stdout, exit 0"
else
	not_ok "--help: usage on stdout, exit 0" "exit status $rc"
fi
cp "$tmp/out" "$tmp/help"
for args in "-h" "info --help" "apdu -h" "verify-pin --help"; do
	# shellcheck disable=SC2086 # words on purpose
	run $args
	if [ "$rc" = 0 ] && cmp -s "$tmp/out" "$tmp/help" && [ ! -s "$tmp/err" ]; then
		ok "$args: the same usage, exit 0"
	else
		not_ok "$args: the same usage, exit 0" "exit status $rc"
	fi
done
check "--version" 0 "ccidctl 1.0" "" -- --version

# ---- usage errors: exit 2 ---------------------------------------------
usage "no command" "ccidctl: no command given" --
usage "unknown command" "ccidctl: unknown command 'frobnicate'" -- frobnicate
usage "unknown global option" "ccidctl: unknown option '--frob'" -- --frob info
usage "unknown short option" "ccidctl: unknown option '-x'" -- -x info
usage "unknown command option" "ccidctl: info: unknown option '--frob'" -- info --frob
usage "option of another command" "ccidctl: info: unknown option '--voltage'" -- info --voltage 5
usage "missing option argument" "ccidctl: option '-d' needs an argument" -- -d
usage "missing command option argument" "ccidctl: power-on: option '--voltage' needs an argument" -- power-on --voltage
usage "slot 256" "ccidctl: bad slot '256'" -- -s 256 status
usage "slot -1" "ccidctl: bad slot '-1'" -- -s -1 status
usage "slot not a number" "ccidctl: bad slot '1x'" -- -s 1x status
usage "slot with blank" "ccidctl: bad slot ' 1'" -- -s " 1" status
usage "timeout not a number" "ccidctl: bad timeout 'abc'" -- -t abc status
usage "timeout too large" "ccidctl: bad timeout '4294967296'" -- -t 4294967296 status
usage "operand to info" "ccidctl: info: unexpected argument 'extra'" -- info extra
usage "operand to status" "ccidctl: status: unexpected argument '00'" -- status 00
usage "bad voltage" "ccidctl: power-on: bad voltage '7' (auto, 5, 3 or 1.8)" -- power-on --voltage 7
usage "apdu without APDU" "ccidctl: apdu: no APDU given" -- apdu
usage "empty APDU" "ccidctl: apdu: empty APDU" -- apdu ""
usage "secure without block" "ccidctl: secure: no Secure block given" -- secure
usage "verify-pin without --apdu" "ccidctl: verify-pin: --apdu is required" -- verify-pin
usage "verify-pin --apdu too short" "ccidctl: verify-pin: --apdu: at least CLA INS P1 P2 needed" -- verify-pin --apdu "00 20 00"
usage "verify-pin --min above --max" "ccidctl: verify-pin: --min is larger than --max" -- verify-pin --apdu 00200082 --min 10 --max 5
usage "verify-pin --min 256" "ccidctl: verify-pin: --min: '256' is not a number in 0..255" -- verify-pin --apdu 00200082 --min 256
usage "verify-pin --pin-position 16" "ccidctl: verify-pin: --pin-position: '16' is not a number in 0..15" -- verify-pin --apdu 00200082 --pin-position 16
usage "verify-pin --format" "ccidctl: verify-pin: --format: bad value 'hex'" -- verify-pin --apdu 00200082 --format hex
usage "verify-pin --lang" "ccidctl: verify-pin: --lang: bad language id '0x10000'" -- verify-pin --apdu 00200082 --lang 0x10000
usage "modify option to verify-pin" "ccidctl: verify-pin: option '--offset-old' is not valid here" -- verify-pin --apdu 00200082 --offset-old 1
usage "verify-pin operand" "ccidctl: verify-pin: unexpected argument '00'" -- verify-pin --apdu 00200082 00
usage "set-params without data" "ccidctl: set-params: usage: set-params T=0|T=1 HEX" -- set-params T=0
usage "set-params T=2" "ccidctl: set-params: bad protocol 'T=2' (T=0 or T=1)" -- set-params T=2 00
usage "set-params 33 bytes" "ccidctl: set-params: the parameters take 1 to 32 bytes" -- set-params T=1 "$(printf '00%.0s' $(seq 33))"

# ---- bad hex: exit 2 ---------------------------------------------------
usage "hex: bad digit" "ccidctl: apdu: bad hex '0G'" -- apdu 0G
usage "hex: odd digits" "ccidctl: apdu: bad hex '123'" -- apdu 123
usage "hex: odd group" "ccidctl: apdu: bad hex '00 A 00'" -- apdu "00 A 00"
usage "hex: 0x prefix" "ccidctl: apdu: bad hex '0x00'" -- apdu 0x00
usage "hex: second APDU" "ccidctl: apdu: bad hex 'zz'" -- apdu 00A40400 zz
usage "hex: escape" "ccidctl: escape: bad hex '01-02'" -- escape 01-02
usage "hex: secure" "ccidctl: secure: bad hex 'g0'" -- secure 00 g0
usage "hex: set-params" "ccidctl: set-params: bad hex '1'" -- set-params T=0 1
usage "hex: --apdu" "ccidctl: verify-pin: bad hex '00 20 00 8'" -- verify-pin --apdu "00 20 00 8"
# Separators are fine: blanks, colons, tabs
check "hex: separators accepted" 0 \
	"00 00 82 00 00 19 01 02 01 09 04 00 00 00 00 00 20 00 82" "" -- \
	verify-pin --dump --apdu "00:20	00 82"

# ---- a node that is not a reader: exit 1 -------------------------------
check "/dev/null: info gives ENOTTY" 1 "" \
	"ccidctl: info: ENOTTY: not a CCID reader (the device does not know this ioctl)" -- \
	-d /dev/null info
check "/dev/null: status gives ENOTTY" 1 "" \
	"ccidctl: status: ENOTTY: not a CCID reader (the device does not know this ioctl)" -- \
	status -d /dev/null
check "/dev/null: apdu gives ENOTTY" 1 "" \
	"ccidctl: apdu: ENOTTY: not a CCID reader (the device does not know this ioctl)" -- \
	-d /dev/null apdu 00A40400
check "missing node: ENOENT" 1 "" \
	"ccidctl: info: ENOENT: cannot open $tmp/none: No such file or directory" -- \
	-d "$tmp/none" info
check "bare node name is under /dev" 1 "" \
	"ccidctl: power-on: ENOENT: cannot open /dev/ccid-no-such: No such file or directory" -- \
	-d ccid-no-such power-on
# A usage error wins over the device: nothing is opened.
usage "usage error before open" "ccidctl: apdu: bad hex 'zz'" -- -d /dev/null apdu zz

# ---- Secure PIN blocks ---------------------------------------------------
check "verify-pin --dump: the GnuPG SPR332 block" 0 \
	"00 00 82 00 00 19 06 02 01 09 04 00 00 00 00 00 20 00 82" "" -- \
	verify-pin --apdu "00 20 00 82" --min 6 --max 25 --dump
# --dump opens nothing
check "verify-pin --dump needs no device" 0 \
	"00 00 82 00 00 19 06 02 01 09 04 00 00 00 00 00 20 00 82" "" -- \
	-d "$tmp/none" verify-pin --apdu "00 20 00 82" --min 6 --max 25 --dump
check "verify-pin --dump: every option" 0 \
	"00 1E D5 48 13 19 04 03 02 07 04 05 00 00 00 00 20 00 81 08 FF FF FF FF FF FF FF FF" "" -- \
	verify-pin --dump --apdu "00 20 00 81 08 FF FF FF FF FF FF FF FF" \
	--timeout-secs 30 --format bcd --justify right --pin-position 10 \
	--pin-block-size 8 --pin-length-size 4 --pin-length-position 3 \
	--pin-length-unit bytes --min 4 --max 25 --entry-condition 3 \
	--messages 2 --lang 0x0407 --msg-index 5
check "modify-pin --dump: defaults" 0 \
	"01 00 82 00 00 00 00 19 01 03 02 03 09 04 00 01 02 00 00 00 00 24 00 82" "" -- \
	modify-pin --apdu "00 24 00 82" --dump

# bNumberMessage 0: bMsgIndex1 only; 1 and 2: two indexes; 3 and 0xFF: three
for m in 0:22:1 1:23:2 2:23:2 3:24:3 255:24:3; do
	msgs=${m%%:*}
	len=${m#*:}; len=${len%%:*}
	idx=${m##*:}
	name="modify-pin --dump --messages $msgs: $len bytes, $idx message indexes"
	run modify-pin --apdu "00 24 00 82" --messages "$msgs" --msg-index 7 \
		--msg-index2 8 --msg-index3 9 --dump
	read -r -a bytes <"$tmp/out"
	want_idx="07 08 09"
	want_idx=${want_idx:0:$((idx * 3 - 1))}
	got_idx="${bytes[*]:14:$idx}"
	if [ "$rc" != 0 ] || [ -s "$tmp/err" ]; then
		not_ok "$name" "exit status $rc"
	elif [ "${#bytes[@]}" != "$len" ]; then
		not_ok "$name" "${#bytes[@]} bytes"
	elif [ "${bytes[11]}" != "$(printf '%02X' "$msgs")" ]; then
		not_ok "$name" "bNumberMessage ${bytes[11]}"
	elif [ "$got_idx" != "$want_idx" ]; then
		not_ok "$name" "message indexes $got_idx"
	elif [ "${bytes[*]: -7}" != "00 00 00 00 24 00 82" ]; then
		not_ok "$name" "bTeoPrologue and APDU: ${bytes[*]: -7}"
	else
		ok "$name"
	fi
done

echo "1..$n"
[ "$failed" = 0 ] || exit 1
exit 0
