/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhsmcard: user-space library for hsmcard PCIe HSMs.
 *
 * One-shot calls over the driver's ioctls and a batch API over its command
 * rings (Documentation/hsmcard/rings.rst).  Every function returns 0 (or a
 * count) on success and a negative errno on failure; hsm_strerror() turns
 * it into text.
 *
 * Thread model: a context (struct hsm_ctx) may be used by one thread at a
 * time; use one context per thread, or serialise access yourself.
 * Different contexts, on the same card or on different cards, are
 * independent.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef LIBHSMCARD_H
#define LIBHSMCARD_H

#include <stddef.h>
#include <stdint.h>

/* The driver's UAPI header (installed as <linux/hsmcard.h>). */
#ifndef _UAPI_LINUX_HSMCARD_H
#include <linux/hsmcard.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct hsm_ctx;

/* ---- contexts ---- */
struct hsm_ctx *hsm_open(unsigned int index);
struct hsm_ctx *hsm_open_least_busy(void);
struct hsm_ctx *hsm_open_path(const char *path);
void hsm_close(struct hsm_ctx *ctx);
int hsm_fd(const struct hsm_ctx *ctx);
int hsm_info(struct hsm_ctx *ctx, struct hsmcard_info *info);
const char *hsm_strerror(int err);

/* ---- keys ---- */
int hsm_keygen(struct hsm_ctx *ctx, uint16_t type, uint16_t bits,
	       uint32_t uses, uint32_t flags, const char *label,
	       uint64_t *handle);
int hsm_keygen_attrs(struct hsm_ctx *ctx, struct hsmcard_key_attrs *attrs);
int hsm_key_import(struct hsm_ctx *ctx, uint16_t type, uint16_t bits,
		   uint32_t uses, const void *key, size_t key_len,
		   uint64_t *handle);
int hsm_key_list(struct hsm_ctx *ctx, uint64_t *handles, size_t max,
		 size_t *count);
int hsm_key_destroy(struct hsm_ctx *ctx, uint64_t handle);
int hsm_key_export_public(struct hsm_ctx *ctx, uint64_t handle, void *der,
			  size_t *der_len);
int hsm_key_set_state(struct hsm_ctx *ctx, uint64_t handle, uint32_t state,
		      uint32_t *old_state);
int hsm_key_rotate(struct hsm_ctx *ctx, uint64_t handle,
		   struct hsmcard_key_attrs *new_attrs);
int hsm_key_rotate_id(struct hsm_ctx *ctx, uint64_t handle, const void *id,
		      size_t id_len, struct hsmcard_key_attrs *new_attrs);
int hsm_key_find(struct hsm_ctx *ctx, const char *label, uint32_t version,
		 struct hsmcard_key_attrs *attrs);
int hsm_key_find_id(struct hsm_ctx *ctx, const void *id, size_t id_len,
		    struct hsmcard_key_attrs *attrs);
int hsm_key_wrap(struct hsm_ctx *ctx, uint64_t handle, uint64_t kek,
		 void *blob, size_t *blob_len);
int hsm_key_unwrap(struct hsm_ctx *ctx, uint64_t kek,
		   struct hsmcard_key_attrs *attrs, const void *blob,
		   size_t blob_len);
int hsm_key_wrap_attrs(struct hsm_ctx *ctx, uint64_t handle, uint64_t kek,
		       void *blob, size_t *blob_len);
int hsm_key_unwrap_attrs(struct hsm_ctx *ctx, uint64_t kek,
			 struct hsmcard_key_attrs *attrs, const void *blob,
			 size_t blob_len);

/* ---- one-shot operations ---- */
int hsm_sign(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
	     uint16_t mparam, const void *msg, size_t msg_len, void *sig,
	     size_t *sig_len);
int hsm_verify(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
	       uint16_t mparam, const void *msg, size_t msg_len,
	       const void *sig, size_t sig_len);
int hsm_encrypt(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
		uint16_t mparam, const uint8_t iv[16], size_t aad_len,
		const void *in, size_t in_len, void *out, size_t *out_len);
int hsm_decrypt(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
		uint16_t mparam, const uint8_t iv[16], size_t aad_len,
		const void *in, size_t in_len, void *out, size_t *out_len);
int hsm_digest(struct hsm_ctx *ctx, uint16_t mech, const void *in,
	       size_t in_len, void *out, size_t *out_len);
int hsm_hmac(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
	     const void *in, size_t in_len, void *out, size_t *out_len);
int hsm_random(struct hsm_ctx *ctx, void *buf, size_t len);

/* ---- batches over a command ring ---- */
int hsm_ring_setup(struct hsm_ctx *ctx, unsigned int entries,
		   size_t arena_size);
int hsm_ring_fd(const struct hsm_ctx *ctx);
int hsm_ring_set_eventfd(struct hsm_ctx *ctx, int efd);
void *hsm_arena(const struct hsm_ctx *ctx, size_t *len);
int64_t hsm_arena_alloc(struct hsm_ctx *ctx, size_t len, size_t align);
void *hsm_arena_ptr(const struct hsm_ctx *ctx, uint64_t off);
void hsm_arena_reset(struct hsm_ctx *ctx);
size_t hsm_max_job_len(const struct hsm_ctx *ctx);

/* Where a ring's jobs are (see hsm_ring_counts()). */
struct hsm_ring_counts {
	uint32_t queued;	/* prepared, not yet taken by the kernel */
	uint32_t in_flight;	/* taken, completion not yet posted */
	uint32_t unread;	/* completions not yet marked seen */
};
int hsm_ring_counts(struct hsm_ctx *ctx, struct hsm_ring_counts *c);

struct hsmcard_ring_sqe *hsm_get_sqe(struct hsm_ctx *ctx);
void hsm_prep_sign(struct hsmcard_ring_sqe *sqe, uint64_t handle,
		   uint16_t mech, uint16_t mparam, uint32_t in_off,
		   uint32_t in_len, uint32_t out_off, uint32_t out_len,
		   uint64_t cookie);
void hsm_prep_verify(struct hsmcard_ring_sqe *sqe, uint64_t handle,
		     uint16_t mech, uint16_t mparam, uint32_t in_off,
		     uint32_t in_len, uint32_t sig_off, uint32_t sig_len,
		     uint64_t cookie);
void hsm_prep_encrypt(struct hsmcard_ring_sqe *sqe, uint64_t handle,
		      uint16_t mech, uint16_t mparam, const uint8_t iv[16],
		      uint32_t aad_len, uint32_t in_off, uint32_t in_len,
		      uint32_t out_off, uint32_t out_len, uint64_t cookie);
void hsm_prep_decrypt(struct hsmcard_ring_sqe *sqe, uint64_t handle,
		      uint16_t mech, uint16_t mparam, const uint8_t iv[16],
		      uint32_t aad_len, uint32_t in_off, uint32_t in_len,
		      uint32_t out_off, uint32_t out_len, uint64_t cookie);
void hsm_prep_digest(struct hsmcard_ring_sqe *sqe, uint16_t mech,
		     uint32_t in_off, uint32_t in_len, uint32_t out_off,
		     uint32_t out_len, uint64_t cookie);
void hsm_prep_mac(struct hsmcard_ring_sqe *sqe, uint64_t handle,
		  uint16_t mech, uint32_t in_off, uint32_t in_len,
		  uint32_t out_off, uint32_t out_len, uint64_t cookie);
void hsm_prep_mac_verify(struct hsmcard_ring_sqe *sqe, uint64_t handle,
			 uint16_t mech, uint32_t in_off, uint32_t in_len,
			 uint32_t mac_off, uint32_t mac_len, uint64_t cookie);
void hsm_prep_random(struct hsmcard_ring_sqe *sqe, uint32_t out_off,
		     uint32_t out_len, uint64_t cookie);
int hsm_submit(struct hsm_ctx *ctx);
int hsm_peek_cqe(struct hsm_ctx *ctx, struct hsmcard_ring_cqe **cqe);
int hsm_wait_cqe(struct hsm_ctx *ctx, struct hsmcard_ring_cqe **cqe,
		 int timeout_ms);
void hsm_cqe_seen(struct hsm_ctx *ctx, struct hsmcard_ring_cqe *cqe);

#ifdef __cplusplus
}
#endif

#endif /* LIBHSMCARD_H */
