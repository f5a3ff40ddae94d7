# SPDX-License-Identifier: GPL-2.0
#
# ccid: out-of-tree USB CCID smart-card reader driver.
#
#   make            build ccid.ko for the Debian 6.1 kernel, and the tools
#   make run        set up, build, boot a VM with an emulated reader, demo
#   make check      quality gates and the whole test suite
#   make check-debug the VM suites on a KASAN/lockdep/kmemleak kernel
#
# The module is built in build/<kernel>/ (a copy of the tree's Kbuild
# sources), so one checkout can build for 6.1 and 6.12 side by side.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build
KERNELS := 6.1 6.12
KVER ?= 6.1
SELFTESTS := tools/testing/selftests/drivers/usb/ccid

krel = $(shell cat $(BUILD)/kernel/$(1)/release 2>/dev/null)
kdir = /usr/src/linux-headers-$(call krel,$(1))

MODULE_SRCS := Kbuild $(wildcard drivers/usb/class/ccid/*) \
	include/uapi/linux/usb/ccid_reader.h

.PHONY: all deps modules tools selftests check check-debug run clean $(addprefix module-,$(KERNELS))

all: module-$(KVER) tools

deps:
	@$(TOP)/scripts/install-deps.sh

modules: $(addprefix module-,$(KERNELS))

# W=1 and C=2 (sparse on every file) always: the output is kept so that
# the check can insist on zero warnings.
$(addprefix module-,$(KERNELS)): module-%:
	@test -n "$(call krel,$*)" || { echo "run 'make deps' first" >&2; exit 1; }
	@mkdir -p $(BUILD)/$*
	@cd $(TOP) && cp -a --parents $(MODULE_SRCS) $(BUILD)/$*/
	$(MAKE) -C $(call kdir,$*) M=$(BUILD)/$* CONFIG_USB_CCID=m W=1 C=2 \
		modules 2>&1 | \
		tee $(BUILD)/$*/build.log
	@test -f $(BUILD)/$*/drivers/usb/class/ccid/ccid.ko

tools:
	$(MAKE) -C tools/ccid all ccidctl32

selftests:
	$(MAKE) -C $(SELFTESTS)

check: deps
	@$(TOP)/scripts/check.sh

check-debug: deps
	@$(TOP)/scripts/check-debug.sh

run: deps
	@$(MAKE) --no-print-directory module-6.1 tools selftests
	@$(SELFTESTS)/run-vm --kernel 6.1 --reader qemu-ccid -- $(TOP)/scripts/demo.sh

clean:
	rm -rf $(BUILD)/6.1 $(BUILD)/6.12
	$(MAKE) -C tools/ccid clean
	$(MAKE) -C $(SELFTESTS) clean
