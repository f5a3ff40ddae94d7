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

n=0 pass=0 fail=0 skip=0

tap() {	# tap ok|fail|skip NAME [REASON]
	n=$((n + 1))
	case $1 in
	ok)	pass=$((pass + 1)); echo "ok $n - $2" ;;
	skip)	skip=$((skip + 1)); echo "ok $n - $2 # SKIP ${3:-}" ;;
	*)	fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}" ;;
	esac
}

# step NAME CMD...: one test, passing when CMD exits 0; output to a log
step() {
	local name=$1 log
	shift
	log=$logdir/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log
	if "$@" >"$log" 2>&1; then
		tap ok "$name"
	else
		tap fail "$name" "see $log"
		sed 's/^/#   /' "$log" | tail -n 40
	fi
}

# ksft NAME CMD...: run a kselftest binary (or run-vm around one) and
# fold each of its test cases into the stream.
ksft() {
	local name=$1 log rc line desc
	shift
	log=$logdir/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log
	"$@" >"$log" 2>&1
	rc=$?
	# Under TCG a guest kernel now and then oopses while it boots, before
	# the module is loaded (text patching, seen in sched_clock_cpu): that
	# is no verdict on the driver, so boot once more, and say so.
	if [ "$rc" -eq 125 ] && ! grep -q '^\(not \)\?ok ' "$log" &&
	   grep -q 'guest kernel panicked' "$log" &&
	   grep -q 'CMD started at guest time ?s' "$log"; then
		echo "# $name: the guest panicked while booting, before its command; booting again"
		mv "$log" "$log.boot-panic"
		"$@" >"$log" 2>&1
		rc=$?
	fi
	local cases=0
	while IFS= read -r line; do
		case $line in
		"ok "*"# SKIP"*)
			desc=$(echo "${line%%#*}" | cut -d' ' -f3-)
			tap skip "$name: ${desc#- }" "${line#*# SKIP}"
			cases=$((cases + 1)) ;;
		"ok "*)
			desc=$(echo "$line" | cut -d' ' -f3-)
			tap ok "$name: ${desc#- }"
			cases=$((cases + 1)) ;;
		"not ok "*)
			desc=$(echo "${line%%#*}" | cut -d' ' -f4-)
			tap fail "$name: ${desc#- }" "see $log"
			cases=$((cases + 1)) ;;
		esac
	done < "$log"
	if [ "$cases" -eq 0 ] || [ "$rc" -ne 0 ]; then
		# No verdicts, or the runner itself failed (guest oops, ...)
		if [ "$rc" -eq 4 ] && [ "$cases" -eq 0 ]; then
			tap skip "$name" "$(tail -n 1 "$log")"
		elif [ "$rc" -ne 0 ] || [ "$cases" -eq 0 ]; then
			tap fail "$name (exit $rc)" "see $log"
			grep -v '^ok ' "$log" | sed 's/^/#   /' | tail -n 40
		fi
	fi
}

# Zero warnings from W=1 and sparse (C=2)
module_gate() {
	make --no-print-directory "module-$1" || return 1
	if grep -E ': (warning|error):|^WARNING:' "build/$1/build.log" | grep -v 'Skipping BTF'; then
		return 1
	fi
}

# checkpatch --strict.  The ignores, and why:
#  CAMELCASE: USB core names (bcdDevice, bInterfaceClass, ...) that
#    --no-tree checkpatch cannot tell from our own identifiers.
#  MACRO_ARG_REUSE: CCID_COUNTER_ATTR() pastes its argument into names
#    (the attribute, its struct and the counter); it is never evaluated.
checkpatch() {
	perl build/ksrc/scripts/checkpatch.pl --no-tree --strict --terse \
		--ignore CAMELCASE,MACRO_ARG_REUSE --show-types -f \
		drivers/usb/class/ccid/*.[ch] \
		include/uapi/linux/usb/ccid_reader.h | tee /dev/stderr |
		grep -qE '^[^:]+:[0-9]+: (ERROR|WARNING|CHECK)' && return 1
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
step "checkpatch --strict" checkpatch
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
# The emulator's own features, driven through ccidctl: what they test is
# the emulator and the tool, so one kernel is enough (about 7 min in TCG)
ksft "emu-smoke 6.1" "$st/run-vm" --kernel 6.1 --reader none \
	--timeout 1800 -- "$top/$st/emu_smoke.sh"

echo "1..$n"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || exit 1
if [ "$skip" -ne 0 ] && [ -n "${CI:-}" ]; then
	echo "# skips are failures in CI" >&2
	exit 1
fi
exit 0
