// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fake host memory and queue callbacks for the firmware-core tests and the
 * engine benchmark.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"

static bool fh_range_ok(uint64_t addr, size_t len)
{
	return addr >= FH_BASE && len <= FH_SIZE &&
	       addr - FH_BASE <= FH_SIZE - len;
}

static int fh_dma_read(void *opaque, uint64_t addr, void *buf, size_t len)
{
	struct fakehost *fh = opaque;

	if (!fh_range_ok(addr, len)) {
		__atomic_add_fetch(&fh->dma_faults, 1, __ATOMIC_RELAXED);
		return -1;
	}
	memcpy(buf, fh->mem + (addr - FH_BASE), len);
	return 0;
}

static int fh_dma_write(void *opaque, uint64_t addr, const void *buf,
			size_t len)
{
	struct fakehost *fh = opaque;

	if (!fh_range_ok(addr, len)) {
		__atomic_add_fetch(&fh->dma_faults, 1, __ATOMIC_RELAXED);
		return -1;
	}
	memcpy(fh->mem + (addr - FH_BASE), buf, len);
	return 0;
}

static uint16_t fh_create_ioq(void *opaque, uint16_t qid, uint64_t sq_addr,
			      uint64_t cq_addr, uint32_t qsize,
			      uint16_t vector)
{
	struct fakehost *fh = opaque;
	uint16_t st = HSM_SC_SUCCESS;

	pthread_mutex_lock(&fh->lock);
	if (fh->live_queues & (1ull << qid)) {
		st = HSM_SC_INVALID_QID;
	} else {
		fh->live_queues |= 1ull << qid;
		fh->nr_create++;
		fh->last_qsize = qsize;
		fh->last_vector = vector;
	}
	pthread_mutex_unlock(&fh->lock);
	return st;
}

static uint16_t fh_delete_ioq(void *opaque, uint16_t qid)
{
	struct fakehost *fh = opaque;
	uint16_t st = HSM_SC_SUCCESS;

	pthread_mutex_lock(&fh->lock);
	if (!(fh->live_queues & (1ull << qid))) {
		st = HSM_SC_INVALID_QID;
	} else {
		fh->live_queues &= ~(1ull << qid);
		fh->nr_delete++;
	}
	pthread_mutex_unlock(&fh->lock);
	return st;
}

int fh_init(struct fakehost *fh)
{
	memset(fh, 0, sizeof(*fh));
	fh->mem = calloc(1, FH_SIZE);
	if (!fh->mem)
		return -1;
	pthread_mutex_init(&fh->lock, NULL);
	fh->host.opaque = fh;
	fh->host.dma_read = fh_dma_read;
	fh->host.dma_write = fh_dma_write;
	fh->host.create_ioq = fh_create_ioq;
	fh->host.delete_ioq = fh_delete_ioq;
	return 0;
}

void fh_fini(struct fakehost *fh)
{
	pthread_mutex_destroy(&fh->lock);
	free(fh->mem);
	fh->mem = NULL;
}

uint64_t fh_alloc(struct fakehost *fh, size_t len)
{
	size_t sz = (len + 63) & ~(size_t)63, off;

	off = __atomic_fetch_add(&fh->brk, sz ? sz : 64, __ATOMIC_RELAXED);
	if (off + sz > FH_SIZE) {
		fprintf(stderr, "fakehost: arena exhausted\n");
		abort();
	}
	return FH_BASE + off;
}

uint64_t fh_put(struct fakehost *fh, const void *data, size_t len)
{
	uint64_t a = fh_alloc(fh, len);

	if (len)
		memcpy(fh_ptr(fh, a), data, len);
	return a;
}

void *fh_ptr(struct fakehost *fh, uint64_t addr)
{
	if (!fh_range_ok(addr, 0)) {
		fprintf(stderr, "fakehost: %#llx outside the arena\n",
			(unsigned long long)addr);
		abort();
	}
	return fh->mem + (addr - FH_BASE);
}

void fh_reset(struct fakehost *fh)
{
	fh->brk = 0;
}
