# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# shellcheck disable=SC2154 # $tmp: set by the sourcing script
#
# tap_lib.sh - TAP helpers for the ccidctl test scripts, sourced by
# ccidctl_test.sh, ccidctl_vm_test.sh and passthru_vm_test.sh.  The sourcing script sets $tmp
# (a scratch directory) before the first test, and may set run_prefix (an
# array) to a command that run() puts before its arguments.

n=0
failed=0
run_prefix=()

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}

# not_ok NAME [LINE...]: a failed test, the lines and the output as
# diagnostics
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for line in "$@"; do
		printf '#   %s\n' "$line"
	done
	if [ -s "$tmp/out" ]; then
		sed 's/^/#   stdout: /' "$tmp/out"
	fi
	if [ -s "$tmp/err" ]; then
		sed 's/^/#   stderr: /' "$tmp/err"
	fi
	return 0
}

# run ARGS...: run "${run_prefix[@]}" ARGS, stdout in $tmp/out, stderr in
# $tmp/err, status in $rc
run() {
	"${run_prefix[@]}" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

# check NAME RC STDOUT STDERR -- ARGS...: exact exit status, stdout and
# stderr ("*" for stdout or stderr: anything)
check() {
	local name=$1 want_rc=$2 want_out=$3 want_err=$4

	shift 5
	run "$@"
	if [ "$rc" != "$want_rc" ]; then
		not_ok "$name" "exit status $rc, expected $want_rc"
	elif [ "$want_out" != "*" ] && [ "$(cat "$tmp/out")" != "$want_out" ]; then
		not_ok "$name" "stdout differs, expected:" "$want_out"
	elif [ "$want_err" != "*" ] && [ "$(cat "$tmp/err")" != "$want_err" ]; then
		not_ok "$name" "stderr differs, expected:" "$want_err"
	else
		ok "$name"
	fi
}

# lowest_node: the lowest-numbered ccidN that sysfs knows, as ccidctl picks
# it, waiting up to 20 s for one to appear; nothing when none does
lowest_node() {
	local d name node=

	for _ in $(seq 1 100); do
		for d in /sys/class/usbmisc/ccid*; do
			[ -e "$d" ] || continue
			name=${d##*/}
			if [ -z "$node" ] || [ "${name#ccid}" -lt "${node#ccid}" ]; then
				node=$name
			fi
		done
		[ -n "$node" ] && break
		sleep 0.2
	done
	echo "$node"
}
