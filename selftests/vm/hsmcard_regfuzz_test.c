// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard register fuzz test: drives the card's BAR0 directly, with the
 * driver unbound, and checks that garbage register writes, odd access sizes,
 * stray doorbells and bad admin queue configurations are refused the way
 * Documentation/hsmcard/hw.rst says, and that the card keeps answering.
 * Real admin and I/O queues are built in pinned guest memory (physical
 * addresses from /proc/self/pagemap) to check completions, phases, full
 * completion queues, resets with commands in flight, function-level reset,
 * and that DMA aimed at the card's own registers fails cleanly.  After each
 * test the driver that was bound before is bound again.
 *
 * Queue entries are filled in CPU byte order: the guests are x86-64.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"
#include "../../driver/hsmcard_hw.h"

#define SYS_PCI		"/sys/bus/pci/devices"

/* Name of the driver bound to @bdf, or "" */
static void bound_driver(const char *bdf, char *name, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	name[0] = '\0';
	snprintf(path, sizeof(path), SYS_PCI "/%s/driver", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return;
	target[n] = '\0';
	base = strrchr(target, '/');
	snprintf(name, len, "%.200s", base ? base + 1 : target);
}

/* Physical address of BAR @bar from the "resource" file, or 0. */
static uint64_t bar_phys(const char *bdf, int bar)
{
	unsigned long long start = 0, end, flags;
	char path[PATH_MAX];
	FILE *f;
	int i;

	snprintf(path, sizeof(path), SYS_PCI "/%s/resource", bdf);
	f = fopen(path, "r");
	if (!f)
		return 0;
	for (i = 0; i <= bar; i++) {
		if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3) {
			start = 0;
			break;
		}
	}
	fclose(f);
	return start;
}

static uint32_t rd32(volatile uint8_t *bar, unsigned int off)
{
	return *(volatile uint32_t *)(bar + off);
}

static uint64_t rd64(volatile uint8_t *bar, unsigned int off)
{
	return *(volatile uint64_t *)(bar + off);
}

static void wr32(volatile uint8_t *bar, unsigned int off, uint32_t val)
{
	*(volatile uint32_t *)(bar + off) = val;
}

static void wr64(volatile uint8_t *bar, unsigned int off, uint64_t val)
{
	*(volatile uint64_t *)(bar + off) = val;
}

/*
 * Wait until (CSTS & @mask) == @want, at most CAP.TO x 100 ms (plus slack
 * for TCG).  Returns the last CSTS value read.
 */
static uint32_t wait_csts(volatile uint8_t *bar, uint32_t mask, uint32_t want)
{
	uint64_t to = HSM_CAP_TO(rd64(bar, HSM_REG_CAP)) * 100ull + 2000;
	long end = now_ms() + (long)to;
	uint32_t csts;

	for (;;) {
		csts = rd32(bar, HSM_REG_CSTS);
		if ((csts & mask) == want || now_ms() > end)
			return csts;
		usleep(1000);
	}
}

/* Clear CC.EN and wait for RDY to drop; returns the final CSTS. */
static uint32_t ctrl_disable(volatile uint8_t *bar)
{
	wr32(bar, HSM_REG_CC, 0);
	return wait_csts(bar, HSM_CSTS_RDY | HSM_CSTS_CFS, 0);
}

/* Physical address of the page holding @p (locked by the caller), or 0. */
static uint64_t virt_to_phys(const void *p)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t ent;
	off_t off;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return 0;
	off = (uintptr_t)p / psz * sizeof(ent);
	if (pread(fd, &ent, sizeof(ent), off) != sizeof(ent)) {
		close(fd);
		return 0;
	}
	close(fd);
	if (!(ent & (1ull << 63)))		/* not present */
		return 0;
	ent &= (1ull << 55) - 1;		/* PFN */
	if (!ent)				/* PFNs hidden */
		return 0;
	return ent * psz + (uintptr_t)p % psz;
}

FIXTURE(card) {
	char bdf[256];
	char driver[256];	/* bound before the test, bound again after */
	int fd;
	volatile uint8_t *bar;
	uint64_t cap;
};

FIXTURE_SETUP(card)
{
	char path[PATH_MAX];
	int ret;

	self->fd = -1;
	self->bar = NULL;
	ret = find_card(self->bdf, sizeof(self->bdf));
	if (ret)
		SKIP(return, "no hsmcard device (%s)", strerror(-ret));
	bound_driver(self->bdf, self->driver, sizeof(self->driver));

	snprintf(path, sizeof(path), SYS_PCI "/%s/driver/unbind", self->bdf);
	if (access(path, F_OK) == 0)
		ASSERT_EQ(0, write_str(path, self->bdf));
	snprintf(path, sizeof(path), SYS_PCI "/%s/driver", self->bdf);
	ASSERT_NE(0, access(path, F_OK)) TH_LOG("driver still bound");

	snprintf(path, sizeof(path), SYS_PCI "/%s/enable", self->bdf);
	ASSERT_EQ(0, write_str(path, "1"));

	snprintf(path, sizeof(path), SYS_PCI "/%s/resource0", self->bdf);
	self->fd = open(path, O_RDWR | O_SYNC);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", path, strerror(errno));
	self->bar = mmap(NULL, HSM_BAR0_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->bar) TH_LOG("mmap: %s", strerror(errno));

	/* start from a disabled controller, whatever the driver left */
	ASSERT_EQ(0u, ctrl_disable(self->bar) & (HSM_CSTS_RDY | HSM_CSTS_CFS));
	self->cap = rd64(self->bar, HSM_REG_CAP);
}

FIXTURE_TEARDOWN(card)
{
	char path[PATH_MAX];

	if (self->bar && self->bar != MAP_FAILED) {
		/* whatever happened, the card must still answer the same */
		EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
		EXPECT_EQ((uint32_t)HSM_VS_CURRENT, rd32(self->bar, HSM_REG_VS));
		EXPECT_EQ(0u, ctrl_disable(self->bar) &
			  (HSM_CSTS_RDY | HSM_CSTS_CFS));
		munmap((void *)self->bar, HSM_BAR0_SIZE);
	}
	if (self->fd >= 0)
		close(self->fd);
	if (!self->bdf[0])
		return;
	snprintf(path, sizeof(path), SYS_PCI "/%s/enable", self->bdf);
	write_str(path, "0");

	/* the driver binds again to the card we just abused */
	if (self->driver[0]) {
		char now[256];

		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/bind",
			 self->driver);
		EXPECT_EQ(0, write_str(path, self->bdf))
			TH_LOG("binding %s to %s failed", self->bdf,
			       self->driver);
		bound_driver(self->bdf, now, sizeof(now));
		EXPECT_STREQ(self->driver, now);
	}
}

/* CAP and VS are sane and agree with the PCI configuration space. */
TEST_F(card, cap_and_version)
{
	uint64_t cap = self->cap;
	unsigned int nvec = 0, pos;
	uint8_t cfg[256];
	char path[PATH_MAX];
	int fd;

	EXPECT_EQ((uint32_t)HSM_VS_CURRENT, rd32(self->bar, HSM_REG_VS));
	/* 64-bit and 32-bit reads see the same register */
	EXPECT_EQ((uint32_t)cap, rd32(self->bar, HSM_REG_CAP));
	EXPECT_EQ((uint32_t)(cap >> 32), rd32(self->bar, HSM_REG_CAP + 4));
	EXPECT_GE(HSM_CAP_MQES(cap) + 1, (uint32_t)HSM_MIN_QSIZE);
	EXPECT_LE(HSM_CAP_MQES(cap) + 1, (uint32_t)HSM_MAX_QSIZE);
	EXPECT_GE(HSM_CAP_MAXQ(cap), 1u);
	EXPECT_LE(HSM_CAP_MAXQ(cap), (uint32_t)HSM_MAX_IOQ);
	EXPECT_GE(HSM_CAP_TO(cap), 1u);
	EXPECT_EQ(HSM_CAP_MAXQ(cap) + HSM_VEC_IO_FIRST, HSM_CAP_NVEC(cap));
	EXPECT_EQ(0u, cap >> 48);

	/* NVEC matches the MSI-X capability's table size */
	snprintf(path, sizeof(path), SYS_PCI "/%s/config", self->bdf);
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(cfg), pread(fd, cfg, sizeof(cfg), 0));
	close(fd);
	for (pos = cfg[0x34] & ~3u; pos && pos < sizeof(cfg) - 4;
	     pos = cfg[pos + 1] & ~3u) {
		if (cfg[pos] == 0x11) {		/* MSI-X */
			nvec = ((cfg[pos + 2] | cfg[pos + 3] << 8) & 0x7ff) + 1;
			break;
		}
	}
	EXPECT_EQ(HSM_CAP_NVEC(cap), nvec);

	/* read-only registers ignore writes */
	wr64(self->bar, HSM_REG_CAP, ~0ull);
	wr32(self->bar, HSM_REG_VS, 0);
	wr32(self->bar, HSM_REG_CSTS, ~0u);
	wr32(self->bar, HSM_REG_HEALTH, ~0u);
	EXPECT_EQ(cap, rd64(self->bar, HSM_REG_CAP));
	EXPECT_EQ((uint32_t)HSM_VS_CURRENT, rd32(self->bar, HSM_REG_VS));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CSTS) &
		  (HSM_CSTS_RDY | HSM_CSTS_CFS));
}

/* Garbage in every register and reserved word of the register page. */
TEST_F(card, garbage_writes)
{
	static const uint32_t patterns[] = { 0xffffffff, 0, 0xa5a5a5a4,
					     0x5a5a5a5a, 0x80000000 };
	uint32_t tamper_cnt = rd32(self->bar, HSM_REG_TAMPER_CNT);
	uint32_t health = rd32(self->bar, HSM_REG_HEALTH);
	uint32_t hwm = rd32(self->bar, HSM_REG_AUDIT_HWM);
	unsigned int off, i;

	srand(0x4853);
	for (i = 0; i < 5 + 16; i++) {
		uint32_t v = i < 5 ? patterns[i] :
			     (uint32_t)rand() ^ ((uint32_t)rand() << 16);

		for (off = 0; off < HSM_REG_DBS; off += 4) {
			/* an enable with garbage could DMA: tested below */
			if (off == HSM_REG_CC)
				wr32(self->bar, off, v & ~HSM_CC_EN);
			else
				wr32(self->bar, off, v);
		}
		/* RW registers keep exactly their defined bits */
		EXPECT_EQ(v & HSM_AQA_MK(0xfff, 0xfff),
			  rd32(self->bar, HSM_REG_AQA));
		EXPECT_EQ(v, rd32(self->bar, HSM_REG_ASQ));
		EXPECT_EQ(v, rd32(self->bar, HSM_REG_ASQ + 4));
		EXPECT_EQ(v, rd32(self->bar, HSM_REG_ACQ));
		EXPECT_EQ(v, rd32(self->bar, HSM_REG_ACQ + 4));
		EXPECT_EQ(v & HSM_INTCOAL_MK(0xff, 0xff),
			  rd32(self->bar, HSM_REG_INTCOAL));
		EXPECT_EQ(v & (HSM_EVT_TAMPER | HSM_EVT_HEALTH | HSM_EVT_FATAL |
			       HSM_EVT_AUDIT),
			  rd32(self->bar, HSM_REG_EVTMASK));
		/* RW1C: writing ones clears, and nothing raised an event */
		EXPECT_EQ(0u, rd32(self->bar, HSM_REG_EVTSTS));
		/* read-only and status registers untouched */
		EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
		EXPECT_EQ((uint32_t)HSM_VS_CURRENT, rd32(self->bar, HSM_REG_VS));
		EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CC) & HSM_CC_EN);
		EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CSTS) &
			  (HSM_CSTS_RDY | HSM_CSTS_CFS));
		EXPECT_EQ(health, rd32(self->bar, HSM_REG_HEALTH));
		EXPECT_EQ(tamper_cnt, rd32(self->bar, HSM_REG_TAMPER_CNT));
		EXPECT_EQ(hwm, rd32(self->bar, HSM_REG_AUDIT_HWM));
	}
	EXPECT_LE(1u, hwm);
	/* the rest of BAR0 beyond the doorbells in use, sampled */
	for (off = HSM_REG_DBS + 0x400; off < HSM_BAR0_SIZE; off += 0x44)
		wr32(self->bar, off & ~3u, 0xffffffff);
	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CSTS) &
		  (HSM_CSTS_RDY | HSM_CSTS_CFS));
}

/* 1- and 2-byte and misaligned accesses are ignored. */
TEST_F(card, odd_access_sizes)
{
	const uint32_t aqa = HSM_AQA_MK(15, 15);
	uint32_t evtmask, intcoal;
	unsigned int off;

	wr32(self->bar, HSM_REG_AQA, aqa);
	wr64(self->bar, HSM_REG_ASQ, 0x123456000ull);
	EXPECT_EQ(0x123456000ull, rd64(self->bar, HSM_REG_ASQ));
	wr64(self->bar, HSM_REG_ACQ, 0x654321000ull);
	wr32(self->bar, HSM_REG_EVTMASK, HSM_EVT_HEALTH);
	wr32(self->bar, HSM_REG_INTCOAL, HSM_INTCOAL_MK(4, 2));
	evtmask = rd32(self->bar, HSM_REG_EVTMASK);
	intcoal = rd32(self->bar, HSM_REG_INTCOAL);
	EXPECT_EQ(HSM_EVT_HEALTH, evtmask);
	EXPECT_EQ(HSM_INTCOAL_MK(4, 2), intcoal);

	for (off = 0; off < 0x50; off++) {
		*(volatile uint8_t *)(self->bar + off) = 0xff;
		(void)*(volatile uint8_t *)(self->bar + off);
		if (off + 2 <= 0x50) {
			*(volatile uint16_t *)(self->bar + off) = 0xffff;
			(void)*(volatile uint16_t *)(self->bar + off);
		}
		if (off % 4 && off + 4 <= 0x50) {
			*(volatile uint32_t *)(self->bar + off) = 0xffffffff;
			(void)*(volatile uint32_t *)(self->bar + off);
		}
		if (off % 8 && off + 8 <= 0x50) {
			*(volatile uint64_t *)(self->bar + off) = ~0ull;
			(void)*(volatile uint64_t *)(self->bar + off);
		}
	}
	EXPECT_EQ(aqa, rd32(self->bar, HSM_REG_AQA));
	EXPECT_EQ(0x123456000ull, rd64(self->bar, HSM_REG_ASQ));
	EXPECT_EQ(0x654321000ull, rd64(self->bar, HSM_REG_ACQ));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CC));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CSTS) &
		  (HSM_CSTS_RDY | HSM_CSTS_CFS));
	EXPECT_EQ(evtmask, rd32(self->bar, HSM_REG_EVTMASK));
	EXPECT_EQ(intcoal, rd32(self->bar, HSM_REG_INTCOAL));
	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
}

/* Doorbells of a disabled controller and of absent queues do nothing. */
TEST_F(card, doorbells_while_disabled)
{
	static const uint32_t vals[] = { 0, 1, 2, 0xffff, 0xffffffff };
	unsigned int q, i;

	for (q = 0; q < HSM_MAX_IOQ + 8; q++) {
		for (i = 0; i < ARRAY_SIZE(vals); i++) {
			wr32(self->bar, HSM_REG_SQTDBL(q), vals[i]);
			wr32(self->bar, HSM_REG_CQHDBL(q), vals[i]);
		}
	}
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CSTS) &
		  (HSM_CSTS_RDY | HSM_CSTS_CFS));
	/* doorbells read as zero */
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_SQTDBL(0)));
	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
}

/* Each bad admin queue configuration sets CFS and leaves RDY clear. */
TEST_F(card, enable_bad_config)
{
	uint32_t mqes = HSM_CAP_MQES(self->cap);
	const struct {
		const char *what;
		uint32_t aqa;
		uint64_t asq, acq;
	} bad[] = {
		{ "SQ of 1 entry", HSM_AQA_MK(0, 1), 0x100000, 0x101000 },
		{ "CQ of 1 entry", HSM_AQA_MK(1, 0), 0x100000, 0x101000 },
		{ "SQ above MQES", HSM_AQA_MK(mqes + 1, 1), 0x100000, 0x200000 },
		{ "CQ above MQES", HSM_AQA_MK(1, mqes + 1), 0x100000, 0x200000 },
		{ "ASQ zero", HSM_AQA_MK(1, 1), 0, 0x101000 },
		{ "ACQ zero", HSM_AQA_MK(1, 1), 0x100000, 0 },
		{ "ASQ misaligned", HSM_AQA_MK(1, 1), 0x100040, 0x101000 },
		{ "ACQ misaligned", HSM_AQA_MK(1, 1), 0x100000, 0x101800 },
		/* 64 entries of 64 bytes end exactly at 2^64 */
		{ "ASQ wraps", HSM_AQA_MK(63, 1), 0xfffffffffffff000ull,
		  0x101000 },
	};
	unsigned int i;
	uint32_t csts;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		if (strstr(bad[i].what, "MQES") && mqes >= 0xfff)
			continue;	/* AQA cannot express a bigger queue */
		if (strstr(bad[i].what, "wraps") && mqes < 63)
			continue;
		wr32(self->bar, HSM_REG_AQA, bad[i].aqa);
		wr64(self->bar, HSM_REG_ASQ, bad[i].asq);
		wr64(self->bar, HSM_REG_ACQ, bad[i].acq);
		wr32(self->bar, HSM_REG_CC, HSM_CC_EN);
		csts = wait_csts(self->bar, HSM_CSTS_CFS, HSM_CSTS_CFS);
		EXPECT_EQ(HSM_CSTS_CFS, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS))
			TH_LOG("%s: CSTS 0x%x", bad[i].what, csts);
		/* clearing EN clears CFS */
		csts = ctrl_disable(self->bar);
		EXPECT_EQ(0u, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS))
			TH_LOG("%s: CSTS 0x%x after disable", bad[i].what, csts);
	}
}

/*
 * A good configuration becomes ready; while it is, the admin registers are
 * locked and out-of-range doorbells do nothing.  No SQ tail inside the
 * queue is ever written, so the card fetches nothing from these addresses.
 */
TEST_F(card, enable_good_config_stray_doorbells)
{
	const uint32_t aqa = HSM_AQA_MK(31, 31);
	unsigned int q;
	uint32_t csts;

	wr32(self->bar, HSM_REG_AQA, aqa);
	wr64(self->bar, HSM_REG_ASQ, 0x100000);
	wr64(self->bar, HSM_REG_ACQ, 0x101000);
	wr32(self->bar, HSM_REG_CC, HSM_CC_EN);
	csts = wait_csts(self->bar, HSM_CSTS_RDY, HSM_CSTS_RDY);
	ASSERT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));

	/* admin queue registers are locked while enabled */
	wr32(self->bar, HSM_REG_AQA, 0);
	wr64(self->bar, HSM_REG_ASQ, 0x200000);
	wr64(self->bar, HSM_REG_ACQ, 0x201000);
	EXPECT_EQ(aqa, rd32(self->bar, HSM_REG_AQA));
	EXPECT_EQ(0x100000u, rd64(self->bar, HSM_REG_ASQ));
	EXPECT_EQ(0x101000u, rd64(self->bar, HSM_REG_ACQ));

	/* out-of-range admin doorbells, CQ head with nothing completed */
	wr32(self->bar, HSM_REG_SQTDBL(0), 32);
	wr32(self->bar, HSM_REG_SQTDBL(0), 0xffffffff);
	wr32(self->bar, HSM_REG_CQHDBL(0), 5);
	wr32(self->bar, HSM_REG_CQHDBL(0), 0xffffffff);
	/* I/O queues that were never created, and beyond MAXQ */
	for (q = 1; q < HSM_MAX_IOQ + 8; q++) {
		wr32(self->bar, HSM_REG_SQTDBL(q), 1);
		wr32(self->bar, HSM_REG_CQHDBL(q), 1);
		wr32(self->bar, HSM_REG_SQTDBL(q), 0xffffffff);
	}
	/* 8-byte doorbell writes are ignored */
	wr64(self->bar, HSM_REG_SQTDBL(0), 1);

	csts = rd32(self->bar, HSM_REG_CSTS);
	EXPECT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));
	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
	csts = ctrl_disable(self->bar);
	EXPECT_EQ(0u, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));
}

/*
 * Pinned pages with known physical addresses for real queues: admin SQ and
 * CQ, data, I/O SQ and CQ, I/O data.
 */
enum { PG_ASQ, PG_ACQ, PG_DATA, PG_ISQ, PG_ICQ, PG_IODATA, NR_PAGES };

struct dma_pages {
	uint8_t *mem;
	uint64_t phys[NR_PAGES];
};

static uint8_t *page(struct dma_pages *p, int i)
{
	return p->mem + i * 4096;
}

static int dma_pages_get(struct dma_pages *p)
{
	int i;

	p->mem = mmap(NULL, NR_PAGES * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE,
		      -1, 0);
	if (p->mem == MAP_FAILED)
		return -errno;
	memset(p->mem, 0, NR_PAGES * 4096);
	for (i = 0; i < NR_PAGES; i++) {
		p->phys[i] = virt_to_phys(page(p, i));
		if (!p->phys[i]) {
			munmap(p->mem, NR_PAGES * 4096);
			return -EPERM;
		}
	}
	return 0;
}

static void dma_pages_put(struct dma_pages *p)
{
	munmap(p->mem, NR_PAGES * 4096);
}

static int set_bus_master(const char *bdf)
{
	char path[PATH_MAX];
	uint16_t cmd;
	int fd, ret = 0;

	snprintf(path, sizeof(path), SYS_PCI "/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	if (pread(fd, &cmd, 2, 4) != 2)
		ret = -EIO;
	cmd |= 0x4;	/* PCI_COMMAND_MASTER: the "enable" file leaves it */
	if (!ret && pwrite(fd, &cmd, 2, 4) != 2)
		ret = -EIO;
	close(fd);
	return ret;
}

/* Enable the controller with an admin queue of @qsize entries in @p. */
static uint32_t enable_admin(volatile uint8_t *bar, struct dma_pages *p,
			     unsigned int qsize)
{
	wr32(bar, HSM_REG_AQA, HSM_AQA_MK(qsize - 1, qsize - 1));
	wr64(bar, HSM_REG_ASQ, p->phys[PG_ASQ]);
	wr64(bar, HSM_REG_ACQ, p->phys[PG_ACQ]);
	wr32(bar, HSM_REG_CC, HSM_CC_EN);
	return wait_csts(bar, HSM_CSTS_RDY, HSM_CSTS_RDY);
}

/*
 * Submit @sqe as admin command number @seq (from 0 after enabling, one
 * command at a time); wait for its completion and release it.
 */
static int admin_cmd(volatile uint8_t *bar, struct dma_pages *p,
		     unsigned int seq, unsigned int qsize,
		     const struct hsm_sqe *sqe, struct hsm_cqe *cqe)
{
	volatile struct hsm_cqe *cq = (volatile struct hsm_cqe *)page(p, PG_ACQ);
	unsigned int slot = seq % qsize;
	uint16_t phase = !((seq / qsize) & 1);	/* 1 on the first pass */
	long end = now_ms() + 10000;

	memcpy(page(p, PG_ASQ) + slot * HSM_SQE_SIZE, sqe, sizeof(*sqe));
	__sync_synchronize();
	wr32(bar, HSM_REG_SQTDBL(0), (slot + 1) % qsize);
	while ((cq[slot].status & 1) != phase) {
		if (now_ms() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
	__sync_synchronize();
	memcpy(cqe, (const void *)&cq[slot], sizeof(*cqe));
	wr32(bar, HSM_REG_CQHDBL(0), (slot + 1) % qsize);
	return 0;
}

/*
 * A real admin queue: IDENTIFY agrees with CAP, an unknown opcode fails with
 * INVALID_OPCODE, and IDENTIFY aimed at the card's own BAR0 (device MMIO, not
 * RAM) fails with DATA_XFER instead of hanging or crashing the card.
 */
TEST_F(card, admin_queue_dma)
{
	const unsigned int qsize = 8;
	struct hsm_identify *id;
	struct dma_pages p;
	struct hsm_sqe sqe;
	struct hsm_cqe cqe;
	uint64_t bar0;
	uint32_t csts;
	int ret;

	ret = dma_pages_get(&p);
	if (ret)
		SKIP(return, "no physical addresses (%s)", strerror(-ret));
	bar0 = bar_phys(self->bdf, HSM_BAR_REGS);
	ASSERT_NE(0u, bar0);

	ASSERT_EQ(0, set_bus_master(self->bdf));
	csts = enable_admin(self->bar, &p, qsize);
	ASSERT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_IDENTIFY;
	sqe.cid = 0x1234;
	sqe.dst = p.phys[PG_DATA];
	sqe.dst_len = HSM_IDENTIFY_SIZE;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, 0, qsize, &sqe, &cqe));
	EXPECT_EQ(0x1234u, cqe.cid);
	EXPECT_EQ(0u, cqe.sq_id);
	EXPECT_EQ(1u, cqe.sq_head);
	EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	id = (struct hsm_identify *)page(&p, PG_DATA);
	EXPECT_EQ(HSM_CAP_MAXQ(self->cap), id->max_ioq);
	EXPECT_EQ(HSM_CAP_MQES(self->cap) + 1, id->max_qsize);
	EXPECT_NE(0, id->serial[0]);

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = 0x7f;
	sqe.cid = 0x2345;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, 1, qsize, &sqe, &cqe));
	EXPECT_EQ(0x2345u, cqe.cid);
	EXPECT_EQ(2u, cqe.sq_head);
	EXPECT_EQ(HSM_SC_INVALID_OPCODE, HSM_CQE_STATUS(cqe.status));

	/* DMA into the card's own registers: must fail cleanly */
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_IDENTIFY;
	sqe.cid = 0x3456;
	sqe.dst = bar0;
	sqe.dst_len = HSM_IDENTIFY_SIZE;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, 2, qsize, &sqe, &cqe));
	EXPECT_EQ(0x3456u, cqe.cid);
	EXPECT_EQ(HSM_SC_DATA_XFER, HSM_CQE_STATUS(cqe.status));
	EXPECT_EQ(HSM_CSTS_RDY, rd32(self->bar, HSM_REG_CSTS) &
		  (HSM_CSTS_RDY | HSM_CSTS_CFS));
	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));

	/* and far outside guest RAM */
	sqe.cid = 0x4567;
	sqe.dst = 0x7ffffffff000ull;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, 3, qsize, &sqe, &cqe));
	EXPECT_EQ(0x4567u, cqe.cid);
	EXPECT_EQ(HSM_SC_DATA_XFER, HSM_CQE_STATUS(cqe.status));

	csts = ctrl_disable(self->bar);
	EXPECT_EQ(0u, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));
	dma_pages_put(&p);
}

/* Wait for CQ slot @slot to show @phase; 0 or -ETIMEDOUT. */
static int wait_cqe(struct dma_pages *p, int pg, unsigned int slot,
		    unsigned int phase, unsigned int ms)
{
	volatile struct hsm_cqe *cq = (volatile struct hsm_cqe *)page(p, pg);
	long end = now_ms() + ms;

	while ((cq[slot].status & 1) != phase) {
		if (now_ms() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
	__sync_synchronize();
	return 0;
}

static struct hsm_cqe io_cqe(struct dma_pages *p, unsigned int slot)
{
	struct hsm_cqe cqe;

	memcpy(&cqe, page(p, PG_ICQ) + slot * HSM_CQE_SIZE, sizeof(cqe));
	return cqe;
}

/* Put a SHA-256 DIGEST of 256 bytes at data offset @n * 256 in SQ @slot. */
static void io_digest_sqe(struct dma_pages *p, unsigned int slot,
			  unsigned int n, uint16_t cid)
{
	struct hsm_sqe sqe = {
		.opcode = HSM_IO_DIGEST,
		.cid = cid,
		.mech = HSM_MECH_SHA256,
		.src = p->phys[PG_IODATA] + n * 256,
		.src_len = 256,
		.dst = p->phys[PG_IODATA] + 2048 + n * 64,
		.dst_len = 64,
	};

	memcpy(page(p, PG_ISQ) + slot * HSM_SQE_SIZE, &sqe, sizeof(sqe));
}

/*
 * An I/O queue pair of 4 entries: worker completions carry the right ids
 * and digests (checked against OpenSSL), a full CQ is never overwritten,
 * the phase flips on wrap, DMA to MMIO fails on the I/O path too, and the
 * queue can be deleted with commands still waiting for CQ room.
 */
TEST_F(card, io_queue_full_cq)
{
	const unsigned int aqs = 8, iqs = 4;
	/* CREATE_IOQ variants the card must refuse */
	const struct {
		uint32_t qid, qsz1, vec;
		uint16_t status;
	} bad[] = {
		{ 0, iqs - 1, HSM_VEC_IO_FIRST, HSM_SC_INVALID_QID },
		{ HSM_CAP_MAXQ(self->cap) + 1, iqs - 1, HSM_VEC_IO_FIRST,
		  HSM_SC_INVALID_QID },
		{ 1, 0, HSM_VEC_IO_FIRST, HSM_SC_INVALID_QSIZE },
		{ 1, HSM_CAP_MQES(self->cap) + 1, HSM_VEC_IO_FIRST,
		  HSM_SC_INVALID_QSIZE },
		{ 1, iqs - 1, HSM_VEC_ADMIN, HSM_SC_INVALID_VECTOR },
		{ 1, iqs - 1, HSM_CAP_NVEC(self->cap), HSM_SC_INVALID_VECTOR },
	};
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct dma_pages p;
	struct hsm_sqe sqe;
	struct hsm_cqe cqe;
	unsigned int i, n, aseq = 0;
	uint32_t csts;
	int ret;

	ret = dma_pages_get(&p);
	if (ret)
		SKIP(return, "no physical addresses (%s)", strerror(-ret));
	ASSERT_EQ(0, set_bus_master(self->bdf));
	csts = enable_admin(self->bar, &p, aqs);
	ASSERT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));

	/* bad CREATE_IOQ variants first */
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&sqe, 0, sizeof(sqe));
		sqe.opcode = HSM_ADM_CREATE_IOQ;
		sqe.cid = 0x100 + i;
		sqe.cdw[0] = bad[i].qid;
		sqe.cdw[1] = bad[i].qsz1;
		sqe.cdw[2] = bad[i].vec;
		sqe.src = p.phys[PG_ISQ];
		sqe.dst = p.phys[PG_ICQ];
		ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
		EXPECT_EQ(bad[i].status, HSM_CQE_STATUS(cqe.status))
			TH_LOG("CREATE_IOQ case %u", i);
	}

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_CREATE_IOQ;
	sqe.cid = 0x200;
	sqe.cdw[0] = 1;
	sqe.cdw[1] = iqs - 1;
	sqe.cdw[2] = HSM_VEC_IO_FIRST;
	sqe.src = p.phys[PG_ISQ];
	sqe.dst = p.phys[PG_ICQ];
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	ASSERT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	/* the same qid twice */
	sqe.cid = 0x201;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	EXPECT_EQ(HSM_SC_INVALID_QID, HSM_CQE_STATUS(cqe.status));

	for (i = 0; i < 2048; i++)
		page(&p, PG_IODATA)[i] = (uint8_t)(i * 7 + 3);

	/* three commands fill the CQ (N - 1 entries) */
	for (n = 0; n < 3; n++)
		io_digest_sqe(&p, n, n, 0x300 + n);
	__sync_synchronize();
	wr32(self->bar, HSM_REG_SQTDBL(1), 3);
	for (n = 0; n < 3; n++) {
		ASSERT_EQ(0, wait_cqe(&p, PG_ICQ, n, 1, 10000));
		cqe = io_cqe(&p, n);
		EXPECT_EQ(1u, cqe.sq_id);
		EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
		EXPECT_EQ((uint64_t)SHA256_DIGEST_LENGTH, cqe.result);
	}
	/* completion order may vary with several workers: match by cid */
	for (n = 0; n < 3; n++) {
		unsigned int seen = 0;

		for (i = 0; i < 3; i++)
			seen |= io_cqe(&p, i).cid == 0x300 + n;
		EXPECT_EQ(1u, seen) TH_LOG("no completion for cid 0x%x",
					   0x300 + n);
		SHA256(page(&p, PG_IODATA) + n * 256, 256, md);
		EXPECT_EQ(0, memcmp(md, page(&p, PG_IODATA) + 2048 + n * 64,
				    sizeof(md))) TH_LOG("digest %u", n);
	}

	/* three more, CQ still full: the card must not write slot 3 */
	for (n = 0; n < 3; n++)
		io_digest_sqe(&p, (3 + n) % iqs, n, 0x400 + n);
	__sync_synchronize();
	wr32(self->bar, HSM_REG_SQTDBL(1), (3 + 3) % iqs);
	usleep(300 * 1000);
	EXPECT_EQ(0, wait_cqe(&p, PG_ICQ, 3, 1, 0) == 0)
		TH_LOG("CQ entry written while the CQ was full");
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0x300u, io_cqe(&p, i).cid & 0xff00u);

	/* release the three: slots 3, 0, 1 fill; 0 and 1 with phase 0 */
	wr32(self->bar, HSM_REG_CQHDBL(1), 3);
	ASSERT_EQ(0, wait_cqe(&p, PG_ICQ, 3, 1, 10000));
	ASSERT_EQ(0, wait_cqe(&p, PG_ICQ, 0, 0, 10000));
	ASSERT_EQ(0, wait_cqe(&p, PG_ICQ, 1, 0, 10000));
	for (i = 0; i < 3; i++) {
		cqe = io_cqe(&p, (3 + i) % iqs);
		EXPECT_EQ(0x400u, cqe.cid & 0xff00u);
		EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	}
	/* slot 2 keeps its first-pass entry: nothing else was queued */
	EXPECT_EQ(1u, io_cqe(&p, 2).status & 1u);
	EXPECT_EQ(0x300u, io_cqe(&p, 2).cid & 0xff00u);

	/* I/O DMA aimed at the card's registers fails cleanly */
	wr32(self->bar, HSM_REG_CQHDBL(1), 2);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_IO_GET_RANDOM;
	sqe.cid = 0x500;
	sqe.dst = bar_phys(self->bdf, HSM_BAR_REGS);
	sqe.dst_len = 64;
	memcpy(page(&p, PG_ISQ) + 2 * HSM_SQE_SIZE, &sqe, sizeof(sqe));
	__sync_synchronize();
	wr32(self->bar, HSM_REG_SQTDBL(1), 3);
	ASSERT_EQ(0, wait_cqe(&p, PG_ICQ, 2, 0, 10000));
	cqe = io_cqe(&p, 2);
	EXPECT_EQ(0x500u, cqe.cid);
	EXPECT_EQ(HSM_SC_DATA_XFER, HSM_CQE_STATUS(cqe.status));
	EXPECT_EQ(3u, cqe.sq_head);

	/* fill the CQ again and queue more behind it, then delete */
	for (n = 0; n < 3; n++)
		io_digest_sqe(&p, (3 + n) % iqs, n, 0x600 + n);
	__sync_synchronize();
	wr32(self->bar, HSM_REG_SQTDBL(1), (3 + 3) % iqs);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_DELETE_IOQ;
	sqe.cid = 0x700;
	sqe.cdw[0] = 1;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	sqe.cid = 0x701;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	EXPECT_EQ(HSM_SC_INVALID_QID, HSM_CQE_STATUS(cqe.status));

	csts = ctrl_disable(self->bar);
	EXPECT_EQ(0u, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));
	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
	dma_pages_put(&p);
}

/*
 * A PCI function-level reset returns every register to its power-on value
 * and drops the queues, but keeps the keys (they belong to the firmware).
 * The card works again afterwards.
 */
TEST_F(card, flr_resets_registers_keeps_keys)
{
	const unsigned int aqs = 4;
	struct hsm_key_attrs *attrs;
	char path[PATH_MAX], methods[256];
	struct dma_pages p;
	struct hsm_sqe sqe;
	struct hsm_cqe cqe;
	unsigned int aseq = 0;
	uint64_t handle;
	uint32_t csts;
	int ret;

	snprintf(path, sizeof(path), SYS_PCI "/%s/reset_method", self->bdf);
	ASSERT_EQ(0, read_str(path, methods, sizeof(methods)));
	ASSERT_NE(NULL, strstr(methods, "flr")) TH_LOG("methods: %s", methods);

	ret = dma_pages_get(&p);
	if (ret)
		SKIP(return, "no physical addresses (%s)", strerror(-ret));
	ASSERT_EQ(0, set_bus_master(self->bdf));
	csts = enable_admin(self->bar, &p, aqs);
	ASSERT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));

	/* a session key, an I/O queue, non-default interrupt settings */
	attrs = (struct hsm_key_attrs *)page(&p, PG_DATA);
	memset(attrs, 0, sizeof(*attrs));
	attrs->type = HSM_KEY_AES;
	attrs->bits = 256;
	attrs->uses = HSM_USE_ENCRYPT | HSM_USE_DECRYPT;
	attrs->flags = HSM_KEYF_SESSION;
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_KEY_GENERATE;
	sqe.cid = 1;
	sqe.src = p.phys[PG_DATA];
	sqe.src_len = sizeof(*attrs);
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	ASSERT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	handle = cqe.result;
	EXPECT_NE(0u, handle);

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_CREATE_IOQ;
	sqe.cid = 2;
	sqe.cdw[0] = 1;
	sqe.cdw[1] = 3;
	sqe.cdw[2] = HSM_VEC_IO_FIRST;
	sqe.src = p.phys[PG_ISQ];
	sqe.dst = p.phys[PG_ICQ];
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	ASSERT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	wr32(self->bar, HSM_REG_INTCOAL, HSM_INTCOAL_MK(8, 10));
	wr32(self->bar, HSM_REG_EVTMASK, HSM_EVT_HEALTH);

	snprintf(path, sizeof(path), SYS_PCI "/%s/reset", self->bdf);
	ASSERT_EQ(0, write_str(path, "1"));

	EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CC));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_CSTS) &
		  (HSM_CSTS_RDY | HSM_CSTS_CFS));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_AQA));
	EXPECT_EQ(0u, rd64(self->bar, HSM_REG_ASQ));
	EXPECT_EQ(0u, rd64(self->bar, HSM_REG_ACQ));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_INTCOAL));
	EXPECT_EQ(0u, rd32(self->bar, HSM_REG_EVTMASK));

	/* back to work: the old queue is gone, the key is still there */
	memset(p.mem, 0, NR_PAGES * 4096);
	ASSERT_EQ(0, set_bus_master(self->bdf));
	aseq = 0;
	csts = enable_admin(self->bar, &p, aqs);
	ASSERT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_CREATE_IOQ;
	sqe.cid = 3;
	sqe.cdw[0] = 1;
	sqe.cdw[1] = 3;
	sqe.cdw[2] = HSM_VEC_IO_FIRST;
	sqe.src = p.phys[PG_ISQ];
	sqe.dst = p.phys[PG_ICQ];
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_KEY_GET_ATTRS;
	sqe.cid = 4;
	sqe.handle = handle;
	sqe.dst = p.phys[PG_DATA];
	sqe.dst_len = sizeof(*attrs);
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));
	EXPECT_EQ(handle, attrs->handle);
	EXPECT_EQ(HSM_KEY_AES, attrs->type);
	EXPECT_EQ(256, attrs->bits);

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_KEY_DESTROY;
	sqe.cid = 5;
	sqe.handle = handle;
	ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
	EXPECT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));

	csts = ctrl_disable(self->bar);
	EXPECT_EQ(0u, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));
	dma_pages_put(&p);
}

/*
 * Controller reset with a full I/O queue being processed: RDY drops within
 * CAP.TO, nothing is written to the rings afterwards, and the card comes
 * back with the same queue id free.
 */
TEST_F(card, reset_with_io_in_flight)
{
	const unsigned int aqs = 4, iqs = 64;
	struct dma_pages p;
	struct hsm_sqe sqe;
	struct hsm_cqe cqe;
	unsigned int n, round, aseq;
	uint32_t csts;
	int ret;

	ret = dma_pages_get(&p);
	if (ret)
		SKIP(return, "no physical addresses (%s)", strerror(-ret));
	ASSERT_EQ(0, set_bus_master(self->bdf));

	for (round = 0; round < 3; round++) {
		memset(p.mem, 0, NR_PAGES * 4096);
		aseq = 0;
		csts = enable_admin(self->bar, &p, aqs);
		ASSERT_EQ(HSM_CSTS_RDY, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS));

		memset(&sqe, 0, sizeof(sqe));
		sqe.opcode = HSM_ADM_CREATE_IOQ;
		sqe.cid = 1;
		sqe.cdw[0] = 1;
		sqe.cdw[1] = iqs - 1;
		sqe.cdw[2] = HSM_VEC_IO_FIRST;
		sqe.src = p.phys[PG_ISQ];
		sqe.dst = p.phys[PG_ICQ];
		ASSERT_EQ(0, admin_cmd(self->bar, &p, aseq++, aqs, &sqe, &cqe));
		ASSERT_EQ(HSM_SC_SUCCESS, HSM_CQE_STATUS(cqe.status));

		/* 63 SHA-512 digests of 2 KiB each, all outputs in one place */
		for (n = 0; n < iqs - 1; n++) {
			memset(&sqe, 0, sizeof(sqe));
			sqe.opcode = HSM_IO_DIGEST;
			sqe.cid = n;
			sqe.mech = HSM_MECH_SHA512;
			sqe.src = p.phys[PG_IODATA];
			sqe.src_len = 2048;
			sqe.dst = p.phys[PG_IODATA] + 2048;
			sqe.dst_len = 64;
			memcpy(page(&p, PG_ISQ) + n * HSM_SQE_SIZE, &sqe,
			       sizeof(sqe));
		}
		__sync_synchronize();
		wr32(self->bar, HSM_REG_SQTDBL(1), iqs - 1);
		usleep(round * 2000);

		csts = ctrl_disable(self->bar);
		ASSERT_EQ(0u, csts & (HSM_CSTS_RDY | HSM_CSTS_CFS))
			TH_LOG("round %u: CSTS 0x%x", round, csts);
		/* after RDY is clear the card no longer touches the rings */
		memset(page(&p, PG_ICQ), 0xee, 4096);
		usleep(100 * 1000);
		for (n = 0; n < 4096; n++)
			if (page(&p, PG_ICQ)[n] != 0xee)
				break;
		EXPECT_EQ(4096u, n) TH_LOG("round %u: CQ written after reset",
					   round);
		EXPECT_EQ(self->cap, rd64(self->bar, HSM_REG_CAP));
	}
	dma_pages_put(&p);
}

TEST_HARNESS_MAIN
