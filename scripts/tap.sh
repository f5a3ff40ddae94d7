# SPDX-License-Identifier: GPL-2.0
#
# The TAP stream of make check and make check-debug, sourced by both:
# tap, step and ksft print one line per test into it, tap_end the plan
# and the line "N passed, N failed, N skipped" and the exit status
# (non-zero on any failure, and on any skip when CI is set: a test that
# could not run is not a pass).  The caller sets top, st and logdir.

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

tap_end() {
	echo "1..$n"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ] || exit 1
	if [ "$skip" -ne 0 ] && [ -n "${CI:-}" ]; then
		echo "# skips are failures in CI" >&2
		exit 1
	fi
	exit 0
}
