/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hsmcard driver: state shared by the crypto API files
 * (hsmcard_crypto.c, hsmcard_ahash.c, hsmcard_akcipher.c).
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSMCARD_CRYPTO_H
#define HSMCARD_CRYPTO_H

#include <crypto/aes.h>
#include <crypto/sha2.h>
#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/interrupt.h>
#include <linux/llist.h>
#include <linux/list.h>

#include "hsmcard.h"

/* Card-format SGL entries per direction in one request slot. */
#define HSM_CR_NSGE		127
/* Request slots per I/O queue (at most depth - 1 are usable). */
#define HSM_CR_SLOTS		64

/**
 * struct hsm_cr_slot - coherent memory of one request in flight
 * @src:     card SGL of the source
 * @dst:     card SGL of the destination
 * @h:       hashes (which have no destination scatterlist)
 * @h.state: the sealed hash state the card reads and writes
 * @h.digest: the digest the card writes at the end
 * @in:      small source buffer (GCM counter block J0)
 * @out:     small destination buffer (GCM tag of an empty message)
 */
struct hsm_cr_slot {
	struct hsm_sge src[HSM_CR_NSGE];
	union {
		struct hsm_sge dst[HSM_CR_NSGE];
		struct {
			u8 state[HSM_HASH_STATE_SIZE];
			u8 digest[SHA512_DIGEST_SIZE];
		} h;
	};
	u8 in[AES_BLOCK_SIZE];
	u8 out[AES_BLOCK_SIZE];
};

static_assert(sizeof(struct hsm_cr_slot) == 4096);

enum hsm_cr_alg_id {
	HSM_CR_ECB,
	HSM_CR_CBC,
	HSM_CR_CTR,
	HSM_CR_XTS,
	HSM_CR_GCM,
	HSM_CR_RFC4106,
	HSM_CR_AUTHENC,
	HSM_CR_XTS_PAES,
	HSM_CR_CBC_PAES,
	HSM_CR_SHA256,
	HSM_CR_SHA384,
	HSM_CR_SHA512,
	HSM_CR_HMAC_SHA256,
	HSM_CR_HMAC_SHA512,
	HSM_CR_RSA,
	HSM_CR_NR_ALGS,
};

/**
 * struct hsm_cr_stats - per-algorithm counters of one card
 * @requests:   commands sent to the card
 * @bytes:      payload bytes of those commands
 * @errors:     requests that failed after being accepted
 * @backlogged: requests that were backlogged (-EBUSY)
 */
struct hsm_cr_stats {
	atomic64_t requests;
	atomic64_t bytes;
	atomic64_t errors;
	atomic64_t backlogged;
};

struct hsm_card;

/**
 * struct hsm_cq - crypto state of one I/O queue
 * @card:     owning card
 * @q:        hardware queue
 * @lock:     protects everything below
 * @dead:     the card is gone; refuse requests
 * @draining: a context is moving the backlog to the card; only that one
 *            may, so a request's -EINPROGRESS always precedes its result
 * @backlog:  requests waiting for room, oldest first
 * @slot_map: slots in use
 * @nslots:   usable slots
 * @slots:    slot memory (coherent)
 * @slots_dma: bus address of @slots
 * @wqe:      entry on the hardware queue's space_wq: room may have appeared
 * @work:     drains the backlog after a @wqe wake-up
 * @done:     requests the card completed, not yet reported
 * @done_bh:  reports them to their owners in softirq context
 */
struct hsm_cq {
	struct hsm_card *card;
	struct hsm_queue *q;
	spinlock_t lock; /* backlog, slots, dead, draining */
	bool dead;
	bool draining;
	struct list_head backlog;
	DECLARE_BITMAP(slot_map, HSM_CR_SLOTS);
	unsigned int nslots;
	struct hsm_cr_slot *slots;
	dma_addr_t slots_dma;
	struct wait_queue_entry wqe;
	struct work_struct work;
	struct llist_head done;
	struct tasklet_struct done_bh;
};

/**
 * struct hsm_card - the crypto side of one card
 * @node:   entry in hsm_cards
 * @kref:   the card's binding and every transform bound to it
 * @hdev:   device (holds a reference to it)
 * @dead:   removed: no new transforms, no new keys
 * @nr_cq:  entries in @cq
 * @cq:     per-I/O-queue state
 * @stats:  per-algorithm counters
 * @dbg:    debugfs file
 */
struct hsm_card {
	struct list_head node;
	struct kref kref;
	struct hsm_dev *hdev;
	bool dead;
	unsigned int nr_cq;
	struct hsm_cq *cq;
	struct hsm_cr_stats stats[HSM_CR_NR_ALGS];
	struct dentry *dbg;
};

/**
 * struct hsm_tfm_ctx - transform context
 * @card:      card the transform is bound to
 * @id:        algorithm
 * @mech:      card mechanism
 * @handle:    session key in the card (0: none)
 * @salt:      rfc4106 nonce salt
 * @authsize:  AEAD tag length
 * @token_key: @handle names a persistent key given by a key token; it
 *             belongs to its owner and is not destroyed with the transform
 * @rsa_size:  rsa: modulus size in bytes (0: no key)
 * @use_soft:  xts: the current key is one the card refuses (equal halves,
 *             XTS-AES-192) and is handled in software with @soft
 * @soft:      xts: expanded data key and tweak key for @use_soft
 */
struct hsm_tfm_ctx {
	struct hsm_card *card;
	enum hsm_cr_alg_id id;
	u16 mech;
	u64 handle;
	u8 salt[4];
	unsigned int authsize;
	bool token_key;
	unsigned int rsa_size;
	bool use_soft;
	struct crypto_aes_ctx soft[2];
};

/* A range [off, off + len) of a scatterlist. */
struct hsm_range {
	u32 off;
	u32 len;
};

enum hsm_cr_kind {
	HSM_CR_SKCIPHER,
	HSM_CR_AEAD,
	HSM_CR_AHASH,
	HSM_CR_AKCIPHER,
};

/**
 * struct hsm_creq - per-request state (in the request context)
 * @node:      backlog entry
 * @kind:      skcipher or AEAD
 * @areq:      the crypto API request
 * @ctx:       transform context
 * @cq:        queue the request runs on
 * @src:       source scatterlist
 * @dst:       destination scatterlist
 * @src_rg:    source ranges (up to two)
 * @nsrc_rg:   used entries of @src_rg
 * @dst_rg:    destination range
 * @src_map:   bytes of @src to map
 * @dst_map:   bytes of @dst to map
 * @src_nents: mapped entries of @src (0: not mapped)
 * @dst_nents: mapped entries of @dst
 * @done_node: entry on the queue's list of completed requests
 * @status:    card status of the completed command
 * @slot:      slot in use
 * @sqe:       the command, without buffers and cid
 * @iv_next:   output IV saved before an in-place CBC decryption
 * @j0:        GCM counter block for an empty message
 * @bytes:     payload bytes, for the counters
 * @encrypt:   direction
 * @gcm_empty: the tag of an empty GCM message is computed as E(K, J0)
 * @notified:  -EINPROGRESS was reported for this backlogged request
 * @hstate:    hash: the request's sealed state (HSM_HASH_STATE_SIZE bytes)
 * @hresult:   hash final: where the digest goes
 * @hsize:     hash final: digest size
 * @hvalid:    hash: @hstate holds a state to continue from
 */
struct hsm_creq {
	struct list_head node;
	enum hsm_cr_kind kind;
	void *areq;
	struct hsm_tfm_ctx *ctx;
	struct hsm_cq *cq;
	struct scatterlist *src;
	struct scatterlist *dst;
	struct hsm_range src_rg[2];
	unsigned int nsrc_rg;
	struct hsm_range dst_rg;
	u32 src_map;
	u32 dst_map;
	int src_nents;
	int dst_nents;
	struct llist_node done_node;
	u16 status;
	unsigned int slot;
	struct hsm_sqe sqe;
	u8 iv_next[AES_BLOCK_SIZE];
	u8 j0[AES_BLOCK_SIZE];
	u32 bytes;
	bool encrypt;
	bool gcm_empty;
	bool notified;
	u8 *hstate;
	u8 *hresult;
	unsigned int hsize;
	u8 *hvalid;
};

/*
 * Start a request: a command with @opcode and @mech on the transform's
 * key, and the source [0, @src_len) of @src going to [@dst_off, @dst_off +
 * @dst_len) of @dst (no destination when @dst_len is 0).
 */
static inline void hsm_creq_prep(struct hsm_creq *r, enum hsm_cr_kind kind,
				 void *areq, struct hsm_tfm_ctx *ctx,
				 u8 opcode, u16 mech,
				 struct scatterlist *src, u32 src_len,
				 struct scatterlist *dst, u32 dst_off,
				 u32 dst_len)
{
	memset(&r->sqe, 0, sizeof(r->sqe));
	r->kind = kind;
	r->areq = areq;
	r->ctx = ctx;
	r->encrypt = opcode == HSM_IO_ENCRYPT;
	r->gcm_empty = false;
	r->src = src;
	r->dst = dst;
	r->src_rg[0].off = 0;
	r->src_rg[0].len = src_len;
	r->nsrc_rg = 1;
	r->src_map = src_len;
	r->dst_rg.off = dst_off;
	r->dst_rg.len = dst_len;
	r->dst_map = dst_len ? dst_off + dst_len : 0;
	r->bytes = src_len;
	r->sqe.opcode = opcode;
	r->sqe.mech = cpu_to_le16(mech);
	r->sqe.handle = cpu_to_le64(ctx->handle);
}

extern const char * const hsm_cr_driver_names[HSM_CR_NR_ALGS];

int hsm_cr_priority(bool cipher);
void hsm_cr_wait_alg(struct hsm_dev *hdev, const char *drv);
struct hsm_card *hsm_card_get(void);
void hsm_card_put(struct hsm_card *card);
int hsm_ctx_init(struct hsm_tfm_ctx *ctx, enum hsm_cr_alg_id id, u16 mech);
void hsm_ctx_exit(struct hsm_tfm_ctx *ctx);
int hsm_key_import(struct hsm_card *card, const struct hsm_key_attrs *attrs,
		   const void *hdr, unsigned int hdrlen,
		   const u8 *key, unsigned int keylen, u64 *handle);
void hsm_key_destroy(struct hsm_card *card, u64 handle);
int hsm_ctx_import_key(struct hsm_tfm_ctx *ctx, u16 type, u32 uses,
		       const void *hdr, unsigned int hdrlen,
		       const u8 *key, unsigned int keylen);
void hsm_ctx_drop_key(struct hsm_tfm_ctx *ctx);
int hsm_key_bits(struct hsm_card *card, u64 handle, unsigned int *bits);
int hsm_creq_queue(struct hsm_creq *r, u32 req_flags);

/* hsmcard_ahash.c */
void hsm_ahash_register(struct hsm_dev *hdev);
void hsm_ahash_unregister(void);
void hsm_ahash_finish(struct hsm_creq *r, int err);

/* hsmcard_akcipher.c */
void hsm_akcipher_register(struct hsm_dev *hdev);
void hsm_akcipher_unregister(void);
void hsm_akcipher_finish(struct hsm_creq *r, int err);

#endif /* HSMCARD_CRYPTO_H */
