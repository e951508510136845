/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A fake host for the hsmcard firmware core: "guest memory" is one arena at
 * a non-zero bus address; DMA outside it fails like an unbacked guest
 * address would.  Queue callbacks only record what they were asked.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSM_FAKEHOST_H
#define HSM_FAKEHOST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm_fw.h"

#define FH_BASE		0x100000000ull	/* bus address of the arena */
#define FH_SIZE		(64u << 20)

struct fakehost {
	struct hsm_fw_host host;
	unsigned char *mem;
	size_t brk;			/* bump allocator, atomic */
	pthread_mutex_t lock;
	uint64_t live_queues;		/* bit qid: created */
	unsigned int nr_create;
	unsigned int nr_delete;
	uint16_t last_qsize;
	uint16_t last_vector;
	unsigned long dma_faults;	/* atomic */
};

int fh_init(struct fakehost *fh);
void fh_fini(struct fakehost *fh);
/* Allocate @len bytes (64-byte aligned) of arena; aborts when full. */
uint64_t fh_alloc(struct fakehost *fh, size_t len);
/* Allocate and fill with @data. */
uint64_t fh_put(struct fakehost *fh, const void *data, size_t len);
/* CPU pointer of arena address @addr (must be inside). */
void *fh_ptr(struct fakehost *fh, uint64_t addr);
/* Forget every allocation (single-threaded use only). */
void fh_reset(struct fakehost *fh);

#endif /* HSM_FAKEHOST_H */
