# SPDX-License-Identifier: GPL-2.0
#
# hsmcard top-level build.  `make help` lists the targets.
#
# Kernel module: built against KDIR (default: Debian 12's 6.1 headers).
#   make KDIR=/usr/src/linux-headers-6.12.117+deb12-amd64
# Everything else (firmware core, host tests, QEMU, VM tests) is driven from
# here too.

TOP		:= $(CURDIR)
BUILD		?= $(TOP)/build
KDIR_61		?= $(shell ls -d /usr/src/linux-headers-6.1.*-amd64 2>/dev/null | sort -V | tail -n1)
KDIR_612	?= $(shell ls -d /usr/src/linux-headers-6.12.*-amd64 2>/dev/null | sort -V | tail -n1)
KDIR		?= $(KDIR_61)
LINUX_SRC_TAR	?= $(firstword $(wildcard /usr/src/linux-source-6.12.tar.xz))
KSRC		:= $(BUILD)/linux-src

export TOP BUILD KDIR_61 KDIR_612 KSRC

.PHONY: all module modules-all user qemu check check-host check-vm demo \
	checkpatch bench-engine clean help ksrc-files deps vm-tests

all: module user

help:
	@echo "make               build hsmcard.ko for KDIR and the user-space parts"
	@echo "make KDIR=<dir>    build the module against other kernel headers"
	@echo "make qemu          build QEMU with the hsmcard device (cached)"
	@echo "make deps          install the Debian packages everything needs (root)"
	@echo "make check         host tests + VM tests on 6.1 and 6.12"
	@echo "make check-host    firmware-core unit tests on the host"
	@echo "make check-vm      VM tests only (KERNELS=\"6.1 6.12\" T=<test>)"
	@echo "make demo          boot a guest with the card and show it working"
	@echo "make checkpatch    checkpatch.pl --strict over driver/ and uapi/"
	@echo "make bench-engine  firmware-core raw rate beside host OpenSSL"

# ---- kernel module ----
module:
	$(MAKE) -C $(KDIR) M=$(TOP) W=1 modules

# Build the module for one kernel in its own tree: $(BUILD)/kmod-<kver>/
modules-all:
	$(TOP)/selftests/vm/build-modules.sh

# ---- build and test dependencies (Debian packages; root) ----
deps:
	$(TOP)/selftests/install-deps.sh

# ---- files taken from Debian's linux-source-6.12 at build time ----
KSRC_FILES := tools/testing/selftests/kselftest_harness.h \
	      tools/testing/selftests/kselftest.h \
	      scripts/checkpatch.pl scripts/spelling.txt \
	      scripts/const_structs.checkpatch

ksrc-files: $(KSRC)/.stamp
$(KSRC)/.stamp:
	@test -n "$(LINUX_SRC_TAR)" || { echo "linux-source-6.12 is not installed (apt-get install linux-source-6.12)"; exit 1; }
	mkdir -p $(KSRC)
	tar -xJf $(LINUX_SRC_TAR) -C $(KSRC) --strip-components=1 \
		$(addprefix linux-source-6.12/,$(KSRC_FILES))
	touch $@

checkpatch: ksrc-files
	$(KSRC)/scripts/checkpatch.pl --strict --no-tree --show-types \
		--ignore FILE_PATH_CHANGES \
		-f $(wildcard $(TOP)/driver/*.[ch] $(TOP)/uapi/*.h)

# ---- user space ----
user:
	$(MAKE) -C qemu-device fw
	$(MAKE) -C tools

# ---- the card ----
qemu:
	$(TOP)/qemu-device/build-qemu.sh

bench-engine:
	$(MAKE) -C qemu-device bench

# ---- tests ----
check-host:
	$(MAKE) --no-print-directory -C qemu-device check

# Guest test programs: selftests/vm/*_test.c -> $(BUILD)/selftests/
vm-tests: ksrc-files
	$(MAKE) -C $(TOP)/selftests/vm

check-vm: ksrc-files qemu modules-all vm-tests
	$(TOP)/selftests/vm/run-vm.sh $(if $(KERNELS),--kernels "$(KERNELS)") $(if $(T),--test "$(T)")

check: deps
	$(MAKE) ksrc-files user
	$(TOP)/selftests/run-all.sh

demo: deps
	$(MAKE) ksrc-files qemu modules-all vm-tests user
	$(TOP)/selftests/vm/run-vm.sh --demo

clean:
	rm -rf $(BUILD)
	$(MAKE) -C qemu-device clean
	-$(MAKE) -C $(KDIR) M=$(TOP) clean
