#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# intree.sh TREE: put ccid into the kernel source tree TREE, as the series
# for linux-usb would: the project's drivers/, include/ and Documentation/
# files are copied in unchanged, three lines hook the driver into the
# tree's build:
#   drivers/usb/class/Kconfig   source "drivers/usb/class/ccid/Kconfig"
#   drivers/usb/class/Makefile  obj-$(CONFIG_USB_CCID) += ccid/
#   drivers/usb/Makefile        obj-$(CONFIG_USB_CCID) += class/
# and three more register it:
#   MAINTAINERS                 the project's MAINTAINERS entry, in order
#   Documentation/userspace-api/ioctl/ioctl-number.rst
#                               the 0xC1 line of ioctl-number-ccid.rst
#   Documentation/usb/index.rst ccid in the toctree
# Run again after a change: it copies what changed and adds no line twice.

set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tree=${1:?usage: intree.sh KERNEL-TREE}
[ -f "$tree/drivers/usb/class/Kconfig" ] || {
	echo "intree.sh: $tree is not a kernel source tree" >&2
	exit 1
}

cd "$repo"
mkdir -p "$tree/drivers/usb/class/ccid"
# The out-of-tree build's objects are not sources
git ls-files -co --exclude-standard drivers/usb/class/ccid include/uapi \
	Documentation/usb Documentation/ABI tools/testing/selftests tools/ccid |
	while read -r f; do
	mkdir -p "$tree/$(dirname "$f")"
	cmp -s "$f" "$tree/$f" || cp "$f" "$tree/$f"
done

# add_line FILE AFTER-REGEX LINE: LINE once, after the last line matching
add_line() {
	grep -qxF "$3" "$1" && return 0
	local at
	at=$(grep -n -E "$2" "$1" | tail -n 1 | cut -d: -f1)
	[ -n "$at" ] || { echo "intree.sh: no '$2' in $1" >&2; exit 1; }
	sed -i "${at}a\\$3" "$1"
}
kconfig='source "drivers/usb/class/ccid/Kconfig"'
grep -qxF "$kconfig" "$tree/drivers/usb/class/Kconfig" ||
	printf '\n%s\n' "$kconfig" >>"$tree/drivers/usb/class/Kconfig"
add_line "$tree/drivers/usb/class/Makefile" '^obj-\$\(CONFIG_USB_TMC\)' \
	'obj-$(CONFIG_USB_CCID)		+= ccid/'
add_line "$tree/drivers/usb/Makefile" '^obj-\$\(CONFIG_USB_TMC\)' \
	'obj-$(CONFIG_USB_CCID)		+= class/'

# The MAINTAINERS entry, before the first USB entry whose title sorts
# after it
title=$(head -n 1 MAINTAINERS)
if ! grep -qxF "$title" "$tree/MAINTAINERS"; then
	awk -v t="$title" -v entry="$repo/MAINTAINERS" '
		!done && /^USB / && $0 > t {
			while ((getline l < entry) > 0)
				print l
			print ""
			done = 1
		}
		{ print }
		END { if (!done) exit 1 }' "$tree/MAINTAINERS" >"$tree/MAINTAINERS.new" ||
		{ echo "intree.sh: no place in MAINTAINERS" >&2; exit 1; }
	mv "$tree/MAINTAINERS.new" "$tree/MAINTAINERS"
fi

ioctl_line=$(sed -n 's/^  \(0xC1  .*\)/\1/p' \
	Documentation/userspace-api/ioctl/ioctl-number-ccid.rst)
add_line "$tree/Documentation/userspace-api/ioctl/ioctl-number.rst" \
	'^0xC0  ' "$ioctl_line"
add_line "$tree/Documentation/usb/index.rst" '^    authorization$' '    ccid'
