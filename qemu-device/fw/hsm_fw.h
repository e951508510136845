/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hsmcard firmware core: the card's command semantics, key store and crypto
 * engine.  Plain C and OpenSSL 3; no QEMU headers.  The QEMU device model
 * (qemu-device/hsmcard.c) is glue around it, and the host unit tests and the
 * engine benchmark link it directly.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSM_FW_H
#define HSM_FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../driver/hsmcard_hw.h"

struct hsm_fw;

/**
 * struct hsm_fw_config - static configuration of one card
 * @serial:        serial number reported by IDENTIFY (copied)
 * @keystore_path: backing file of the persistent key store, or NULL
 * @max_ioq:       I/O queue pairs the card offers (1..HSM_MAX_IOQ)
 * @max_qsize:     entries per queue (HSM_MIN_QSIZE..HSM_MAX_QSIZE)
 * @max_keys:      key store capacity
 * @nr_vectors:    MSI-X vectors the device exposes
 */
struct hsm_fw_config {
	const char *serial;
	const char *keystore_path;
	unsigned int max_ioq;
	unsigned int max_qsize;
	unsigned int max_keys;
	unsigned int nr_vectors;
};

/**
 * struct hsm_fw_host - what the core needs from the device around it
 * @opaque:     passed back to every callback
 * @dma_read:   copy @len bytes of host (guest) memory at @addr into @buf;
 *              returns 0, or -1 if any byte is not ordinary RAM
 * @dma_write:  copy @buf to host memory at @addr; 0 or -1 as above
 * @create_ioq: bring up I/O queue pair @qid (already validated by the core
 *              against the configuration); returns an HSM_SC_* status
 * @delete_ioq: tear down I/O queue pair @qid; returns an HSM_SC_* status
 *
 * The DMA callbacks may be called from several worker threads at once.
 */
struct hsm_fw_host {
	void *opaque;
	int (*dma_read)(void *opaque, uint64_t addr, void *buf, size_t len);
	int (*dma_write)(void *opaque, uint64_t addr, const void *buf,
			 size_t len);
	uint16_t (*create_ioq)(void *opaque, uint16_t qid, uint64_t sq_addr,
			       uint64_t cq_addr, uint32_t qsize,
			       uint16_t vector);
	uint16_t (*delete_ioq)(void *opaque, uint16_t qid);
};

/* Create a card; NULL on failure with a message in *errp (free() it). */
struct hsm_fw *hsm_fw_new(const struct hsm_fw_config *cfg, char **errp);
void hsm_fw_free(struct hsm_fw *fw);

/*
 * Execute one admin-queue or I/O-queue command.  The entry has already been
 * copied out of guest memory.  Returns an HSM_SC_* status; *result receives
 * the completion's result field.  Thread safe: I/O commands run concurrently
 * on the device's worker threads, admin commands on the main loop.
 */
uint16_t hsm_fw_admin(struct hsm_fw *fw, const struct hsm_fw_host *host,
		      const struct hsm_sqe *sqe, uint64_t *result);
uint16_t hsm_fw_io(struct hsm_fw *fw, const struct hsm_fw_host *host,
		   const struct hsm_sqe *sqe, uint64_t *result);

/* Tamper: zeroize all keys and master key; key commands then fail. */
void hsm_fw_tamper(struct hsm_fw *fw);
bool hsm_fw_tampered(const struct hsm_fw *fw);

/* Human readable name of a status code, for logs and tests. */
const char *hsm_fw_status_str(uint16_t status);

#endif /* HSM_FW_H */
