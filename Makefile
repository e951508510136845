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

.PHONY: all module modules-all user install qemu check check-debug check-host check-vm check-crash check-store check-tamper \
	check-backup debug-kernel demo \
	checkpatch bench-engine clean help ksrc-files deps vm-tests

all: module user

help:
	@echo "make               build hsmcard.ko for KDIR and the user-space parts"
	@echo "make KDIR=<dir>    build the module against other kernel headers"
	@echo "make install       libhsmcard, its headers and pkg-config file, hsmctl (PREFIX, DESTDIR)"
	@echo "make qemu          build QEMU with the hsmcard device (cached)"
	@echo "make deps          install the Debian packages everything needs (root)"
	@echo "make check         host tests + VM tests on 6.1 and 6.12 + crash, tamper, backup tests (CI)"
	@echo "make check-debug   the same plus the VM tests on the 6.12 debug kernel"
	@echo "make debug-kernel  build the debug kernel (KASAN, lockdep...; cached)"
	@echo "make check-host    firmware-core unit tests on the host"
	@echo "make check-vm      VM tests only (KERNELS=\"6.1 6.12 6.12-debug\" T=<test>)"
	@echo "make check-crash   kill QEMU while keys are created; all acknowledged keys must survive"
	@echo "make check-store   edit, cut, reorder or roll back the key store and audit log"
	@echo "make check-tamper  tamper the card while dm-crypt writes through it"
	@echo "make check-backup  backup on one card, restore on another; guest memory scan"
	@echo "make demo          boot a guest with the card and show it working"
	@echo "make checkpatch    checkpatch.pl --strict over driver/ and uapi/"
	@echo "make bench-engine  firmware-core raw rate beside host OpenSSL"
	@echo "make bench-kernel  card vs virtio-crypto vs CPU via AF_ALG and dm-crypt (6.12 guest)"
	@echo "make bench         full stack (ioctl, rings) vs the raw firmware core, with ratios"

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
	$(MAKE) -C lib

# libhsmcard (library, headers, pkg-config) and hsmctl under PREFIX.
PREFIX		?= /usr/local
install: user
	$(MAKE) -C lib install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/tools/hsmctl $(DESTDIR)$(PREFIX)/bin/hsmctl

# ---- the debug kernel (KASAN, lockdep, kmemleak...; cached) ----
debug-kernel:
	$(TOP)/selftests/vm/debug-kernel/build-kernel.sh

# ---- the card ----
qemu:
	$(TOP)/qemu-device/build-qemu.sh

bench-engine:
	$(MAKE) -C qemu-device bench

# AF_ALG and dm-crypt throughput in a 6.12 guest: card, virtio-crypto, CPU.
.PHONY: bench-kernel
bench-kernel: ksrc-files qemu modules-all
	$(MAKE) -C tools
	HSMVM_QEMU_ARGS="-object cryptodev-backend-builtin,id=cryptodev0 -device virtio-crypto-pci,id=crypto0,cryptodev=cryptodev0" \
	HSMVM_LOG_ALLOW='alg: .*virtio' \
		$(TOP)/selftests/vm/run-vm.sh --kernels 6.12 --run selftests/vm/bench-kernel.sh

# Full stack vs raw engine (Documentation/hsmcard/bench.rst): the firmware
# core's rate on the host (hsm-bench-engine at BENCH_WORKERS threads), then
# hsm-bench in a 6.12 guest whose card has BENCH_WORKERS worker threads,
# then both side by side with the ratios.  BENCH_SECONDS: per guest point;
# BENCH_ENGINE_SECONDS: per engine cell; HSM_BENCH_ARGS: more hsm-bench
# options (e.g. --ops rsa2048-sign-sha256 --batches 64).
BENCH_WORKERS		?= 2
BENCH_SECONDS		?= 2
BENCH_ENGINE_SECONDS	?= 2
HSM_BENCH_ARGS		?=
.PHONY: bench
bench: qemu user
	$(TOP)/selftests/vm/build-modules.sh --kernels 6.12
	@echo "bench: firmware core on the host, 1..$(BENCH_WORKERS) threads..."
	echo "# host load before the engine run: $$(cut -d' ' -f1-3 /proc/loadavg) ($$(nproc) CPUs)" \
		>$(BUILD)/bench-engine.txt
	$(MAKE) --no-print-directory -s -C qemu-device bench \
		BENCH_ARGS="--threads $(BENCH_WORKERS) --seconds $(BENCH_ENGINE_SECONDS)" \
		>>$(BUILD)/bench-engine.txt || { cat $(BUILD)/bench-engine.txt; exit 1; }
	cat $(BUILD)/bench-engine.txt
	echo "--seconds $(BENCH_SECONDS) $(HSM_BENCH_ARGS)" >$(BUILD)/bench-args
	{ HSMVM_QEMU_ARGS="-global hsmcard.workers=$(BENCH_WORKERS)" \
		$(TOP)/selftests/vm/run-vm.sh --kernels 6.12 --run selftests/vm/bench.sh; \
		echo $$? >$(BUILD)/bench-guest.rc; } 2>&1 | tee $(BUILD)/bench-guest.txt
	echo "# host load after the guest run: $$(cut -d' ' -f1-3 /proc/loadavg)" \
		>>$(BUILD)/bench-guest.txt
	$(TOP)/selftests/vm/bench-report.sh --workers $(BENCH_WORKERS) \
		$(BUILD)/bench-engine.txt $(BUILD)/bench-guest.txt >$(BUILD)/bench-report.txt; \
		rc=$$?; cat $(BUILD)/bench-report.txt; exit $$rc
	@test "$$(cat $(BUILD)/bench-guest.rc)" = 0 || \
		{ echo "bench: the guest run failed (see above and $(BUILD)/vm-*-run.log)"; exit 1; }

# ---- tests ----
check-host:
	$(MAKE) --no-print-directory -C qemu-device check

# Guest test programs: selftests/vm/*_test.c -> $(BUILD)/selftests/
vm-tests: ksrc-files
	$(MAKE) -C $(TOP)/selftests/vm

check-vm: ksrc-files qemu vm-tests
	$(TOP)/selftests/vm/build-modules.sh $(if $(KERNELS),--kernels "$(KERNELS)")
	$(TOP)/selftests/vm/run-vm.sh $(if $(KERNELS),--kernels "$(KERNELS)") $(if $(T),--test "$(T)")

# The card's key store survives QEMU being killed while keys are created.
check-crash: ksrc-files qemu user
	$(TOP)/selftests/vm/build-modules.sh --kernels 6.12
	$(TOP)/selftests/vm/crash-keys.sh

# Edited, torn, reordered or rolled-back key store and audit log files.
check-store: ksrc-files qemu user
	$(TOP)/selftests/vm/build-modules.sh --kernels 6.12
	$(TOP)/selftests/vm/store-attack.sh

# Tamper raised from the QEMU monitor while dm-crypt writes through the card.
check-tamper: ksrc-files qemu user
	$(TOP)/selftests/vm/build-modules.sh --kernels 6.12
	$(TOP)/selftests/vm/tamper-io.sh

# Backup on one card, restore on a second one (same KEK), and the scan of a
# guest memory dump for the keys that went through the wrapped-import path.
check-backup: ksrc-files qemu user vm-tests
	$(TOP)/selftests/vm/build-modules.sh --kernels 6.12
	$(TOP)/selftests/vm/backup-restore.sh

# check: Debian's two kernels (what CI runs); check-debug: a third VM run on
# the debug kernel, built (or taken from the cache) on the way.
check: deps
	$(MAKE) ksrc-files user
	KERNELS="6.1 6.12" $(TOP)/selftests/run-all.sh

check-debug: deps
	$(MAKE) ksrc-files user
	KERNELS="6.1 6.12 6.12-debug" $(TOP)/selftests/run-all.sh

demo: deps
	$(MAKE) ksrc-files qemu modules-all vm-tests user
	$(TOP)/selftests/vm/run-vm.sh --demo

clean:
	rm -rf $(BUILD)
	$(MAKE) -C qemu-device clean
	-$(MAKE) -C $(KDIR) M=$(TOP) clean
