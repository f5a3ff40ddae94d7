#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# passthru_run.sh - run passthru_vm_test.sh in a run-vm guest whose reader
# is QEMU's usb-ccid with a ccid-card-passthru card, served by vscard_card
# on the host:
#
#   tools/testing/selftests/drivers/usb/ccid/passthru_run.sh [RUN-VM OPTIONS]
#
# e.g. --kernel 6.12.  Builds nothing: vscard_card (the selftests
# Makefile), ccidctl (tools/ccid) and the module must exist.  Starts
# vscard_card on a unix socket in a fresh directory, waits until it
# listens, runs "run-vm OPTIONS --reader passthru=SOCKET --
# passthru_vm_test.sh", then stops the card.  The guest test's TAP output
# is on stdout; the exit status is run-vm's.  On failure the card's log
# follows on stderr: its events other than APDUs, then its last lines.

set -uo pipefail

me=passthru_run.sh
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
repo=$(cd "$here/../../../../../.." && pwd)
card="$here/vscard_card"

die() {
	printf '%s: error: %s\n' "$me" "$*" >&2
	exit 125
}

[ -x "$card" ] ||
	die "$card missing: make -C tools/testing/selftests/drivers/usb/ccid vscard_card"
[ -x "$repo/tools/ccid/ccidctl" ] || die "ccidctl missing: make tools"
for a in "$@"; do
	case "$a" in
	--reader|--reader=*|--) die "$a is set by $me" ;;
	esac
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/ccid-passthru.XXXXXX") || die "mktemp failed"
sock="$dir/vscard.sock"
# sun_path holds 108 bytes, the NUL included
[ ${#sock} -lt 108 ] || { rm -rf "$dir"; die "socket path too long: $sock"; }
log="$dir/card.log"
: >"$log"

card_pid=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	if [ -n "$card_pid" ]; then
		kill "$card_pid" 2>/dev/null
		wait "$card_pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo "$me: interrupted" >&2; exit 130' INT TERM HUP

"$card" --log "$log" "$sock" </dev/null &
card_pid=$!

# vscard_card logs "listening" once listen() returned
for _ in $(seq 1 100); do
	grep -q ' listening on ' "$log" && [ -S "$sock" ] && break
	kill -0 "$card_pid" 2>/dev/null || break
	sleep 0.05
done
if ! grep -q ' listening on ' "$log"; then
	cat "$log" >&2
	die "vscard_card did not start listening on $sock"
fi

"$here/run-vm" "$@" --reader "passthru=$sock" -- "$here/passthru_vm_test.sh"
rc=$?

kill "$card_pid" 2>/dev/null
wait "$card_pid" 2>/dev/null
card_rc=$?
card_pid=
# 0: QEMU closed the connection or SIGTERM; anything else is a card error
if [ "$rc" = 0 ] && [ "$card_rc" != 0 ]; then
	echo "$me: vscard_card failed (exit status $card_rc)" >&2
	rc=1
fi
if [ "$rc" != 0 ]; then
	{
		echo "$me: ---- vscard_card log: $(wc -l <"$log") lines; the events other than APDUs ----"
		grep -Ev '^[0-9.]+ (apdu|answer) [0-9]+ ' "$log"
		echo "$me: ---- its last 60 lines ----"
		tail -n 60 "$log"
		echo "$me: ----"
	} >&2
fi
exit "$rc"
