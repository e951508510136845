// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: the kernel crypto API on the card.
 *
 * Registers skcipher ecb/cbc/ctr/xts(aes), the token-keyed xts(paes) and
 * cbc(paes), and AEAD gcm(aes), rfc4106(gcm(aes)) and
 * authenc(hmac(sha256),cbc(aes)); hsmcard_ahash.c and hsmcard_akcipher.c
 * add the hashes and rsa on the same request path.  The algorithms are
 * registered once for all cards, when the first card is up, and
 * unregistered when the last card goes.
 * A transform is bound to one card when it is created; the clear key given
 * to setkey becomes a volatile session key in that card's kernel partition
 * and is destroyed when the transform is rekeyed or freed.
 *
 * Request path: no memory is allocated.  Per-request state lives in the
 * request context; the scatterlists are DMA mapped as they are and
 * described to the card by card-format SGLs kept in per-queue slots of
 * coherent memory allocated with the card.  When every slot of a queue is
 * in use, or the hardware queue is full or being reset, a request that may
 * be backlogged is kept on the queue's backlog (-EBUSY) and sent when room
 * appears (after -EINPROGRESS is reported to its owner); other requests
 * get -ENOSPC.
 *
 * Documentation/hsmcard/crypto.rst describes the behaviour.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <crypto/aes.h>
#include <crypto/algapi.h>
#include <crypto/authenc.h>
#include <crypto/gcm.h>
#include <crypto/gf128mul.h>
#include <crypto/internal/aead.h>
#include <crypto/internal/akcipher.h>
#include <crypto/internal/hash.h>
#include <crypto/internal/skcipher.h>
#include <crypto/scatterwalk.h>
#include <crypto/xts.h>
#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/debugfs.h>
#include <linux/interrupt.h>
#include <linux/llist.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include "hsmcard_crypto.h"

static int priority = 300;
module_param(priority, int, 0444);
MODULE_PARM_DESC(priority,
		 "Crypto API priority of the card's ciphers and AEADs (default 300, below the CPU's AES-NI)");

static int hash_priority = 50;
module_param(hash_priority, int, 0444);
MODULE_PARM_DESC(hash_priority,
		 "Crypto API priority of the card's hashes and rsa (default 50, below the generic code)");

static bool paes_clear_tokens;
module_param(paes_clear_tokens, bool, 0644);
MODULE_PARM_DESC(paes_clear_tokens,
		 "TEST ONLY: let xts(paes)/cbc(paes) accept clear-key tokens (default off)");

/**
 * hsm_cr_priority() - crypto API priority for an algorithm of the card
 * @cipher: a cipher or AEAD (else a hash or public-key algorithm)
 *
 * Return: the priority the module parameters ask for.
 */
int hsm_cr_priority(bool cipher)
{
	return cipher ? priority : hash_priority;
}

/* Live cards; new transforms are spread over them. */
static LIST_HEAD(hsm_cards);
static DEFINE_SPINLOCK(hsm_cards_lock);
static unsigned int hsm_cards_rr;

/*
 * Serialises registration; counts live cards.  The algorithms stay
 * registered while transforms exist, even without a card: the crypto API
 * cannot unregister an algorithm that is in use (hsm_crypto_unregister()).
 */
static DEFINE_MUTEX(hsm_cr_reg_lock);
static unsigned int hsm_cr_users;
static bool hsm_cr_registered;
static atomic_t hsm_cr_live_tfms = ATOMIC_INIT(0);

const char * const hsm_cr_driver_names[HSM_CR_NR_ALGS] = {
	[HSM_CR_ECB]	     = "ecb-aes-hsmcard",
	[HSM_CR_CBC]	     = "cbc-aes-hsmcard",
	[HSM_CR_CTR]	     = "ctr-aes-hsmcard",
	[HSM_CR_XTS]	     = "xts-aes-hsmcard",
	[HSM_CR_GCM]	     = "gcm-aes-hsmcard",
	[HSM_CR_RFC4106]     = "rfc4106-gcm-aes-hsmcard",
	[HSM_CR_AUTHENC]     = "authenc-hmac-sha256-cbc-aes-hsmcard",
	[HSM_CR_XTS_PAES]    = "xts-paes-hsmcard",
	[HSM_CR_CBC_PAES]    = "cbc-paes-hsmcard",
	[HSM_CR_SHA256]	     = "sha256-hsmcard",
	[HSM_CR_SHA384]	     = "sha384-hsmcard",
	[HSM_CR_SHA512]	     = "sha512-hsmcard",
	[HSM_CR_HMAC_SHA256] = "hmac-sha256-hsmcard",
	[HSM_CR_HMAC_SHA512] = "hmac-sha512-hsmcard",
	[HSM_CR_RSA]	     = "rsa-hsmcard",
};

/* ---- cards ---- */

static void hsm_card_release(struct kref *kref)
{
	struct hsm_card *card = container_of(kref, struct hsm_card, kref);

	hsm_dev_put(card->hdev);
	kfree(card->cq);
	kfree(card);
}

void hsm_card_put(struct hsm_card *card)
{
	kref_put(&card->kref, hsm_card_release);
}

/* Take a live card for a new transform, round robin. */
struct hsm_card *hsm_card_get(void)
{
	struct hsm_card *card, *found = NULL;
	unsigned int n = 0, pick;

	spin_lock(&hsm_cards_lock);
	list_for_each_entry(card, &hsm_cards, node)
		n++;
	if (n) {
		pick = hsm_cards_rr++ % n;
		list_for_each_entry(card, &hsm_cards, node) {
			if (!pick--) {
				found = card;
				kref_get(&found->kref);
				break;
			}
		}
	}
	spin_unlock(&hsm_cards_lock);
	return found;
}

static struct hsm_cq *hsm_card_cq(struct hsm_card *card)
{
	return &card->cq[raw_smp_processor_id() % card->nr_cq];
}

/* ---- session keys ---- */

/**
 * hsm_key_import() - import a clear key into a card as a session key
 * @card:   card
 * @attrs:  type, bits and uses; partition and flags are set here
 * @hdr:    bytes that go before the key (may be NULL)
 * @hdrlen: length of @hdr
 * @key:    the clear key
 * @keylen: its length
 * @handle: out: the new key's handle
 *
 * The key becomes a volatile session key of the kernel partition.  The
 * bounce pages that carried it to the card are wiped.
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
int hsm_key_import(struct hsm_card *card, const struct hsm_key_attrs *attrs,
		   const void *hdr, unsigned int hdrlen,
		   const u8 *key, unsigned int keylen, u64 *handle)
{
	struct hsm_dev *hdev = card->hdev;
	struct hsm_key_attrs a = *attrs;
	struct hsm_sqe sqe = {};
	struct hsm_buf buf;
	u64 result = 0;
	int ret;

	if (READ_ONCE(card->dead))
		return -ENODEV;
	if (sizeof(a) + hdrlen + keylen > hdev->limits.max_xfer)
		return -EINVAL;
	a.flags = cpu_to_le32(HSM_KEYF_SESSION);
	a.partition = cpu_to_le32(HSMCARD_PARTITION_KERNEL);
	strscpy_pad(a.label, "kernel crypto API", sizeof(a.label));

	ret = hsm_buf_alloc(&buf, &hdev->pdev->dev,
			    sizeof(a) + hdrlen + keylen, DMA_TO_DEVICE);
	if (ret)
		return ret;
	hsm_buf_copy_from_kernel(&buf, 0, &a, sizeof(a));
	if (hdrlen)
		hsm_buf_copy_from_kernel(&buf, sizeof(a), hdr, hdrlen);
	if (keylen)
		hsm_buf_copy_from_kernel(&buf, sizeof(a) + hdrlen, key, keylen);
	ret = hsm_buf_map(&buf);
	if (ret)
		goto out;
	sqe.opcode = HSM_ADM_KEY_IMPORT;
	hsm_buf_sqe_src(&buf, &sqe);
	ret = hsm_submit_sync(&hdev->adminq, &sqe, &result, false);
	if (ret > 0)
		ret = hsm_status_to_errno(ret);
	if (!ret && (!result ||
		     HSM_HANDLE_PART(result) != HSMCARD_PARTITION_KERNEL)) {
		dev_err_ratelimited(&hdev->pdev->dev,
				    "key import returned a bad handle %#llx\n",
				    result);
		ret = -EIO;
	}
	if (!ret)
		*handle = result;
out:
	/* hsm_buf_free() wipes the pages that held the key. */
	hsm_buf_free(&buf);
	return ret;
}

/**
 * hsm_key_destroy() - destroy a session key of the kernel partition
 * @card:   card holding it
 * @handle: the key, or 0 (nothing to do)
 *
 * Context: process context; sleeps.
 */
void hsm_key_destroy(struct hsm_card *card, u64 handle)
{
	struct hsm_sqe sqe = {};
	int ret;

	if (!handle || READ_ONCE(card->dead))
		return;
	sqe.opcode = HSM_ADM_KEY_DESTROY;
	sqe.handle = cpu_to_le64(handle);
	ret = hsm_submit_sync(&card->hdev->adminq, &sqe, NULL, false);
	/* A tampered card has already wiped it. */
	if (ret && ret != HSM_SC_TAMPERED && ret != -ENODEV)
		dev_warn_ratelimited(&card->hdev->pdev->dev,
				     "destroying session key failed: %d\n",
				     ret);
}

/**
 * hsm_key_bits() - ask the card for the size of a key
 * @card:   card
 * @handle: key
 * @bits:   out: its size in bits
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
int hsm_key_bits(struct hsm_card *card, u64 handle, unsigned int *bits)
{
	struct hsm_dev *hdev = card->hdev;
	struct hsm_key_attrs *a;
	struct hsm_sqe sqe = {};
	struct hsm_buf buf;
	int ret;

	ret = hsm_buf_alloc(&buf, &hdev->pdev->dev, sizeof(*a),
			    DMA_FROM_DEVICE);
	if (ret)
		return ret;
	ret = hsm_buf_map(&buf);
	if (ret)
		goto out;
	sqe.opcode = HSM_ADM_KEY_GET_ATTRS;
	sqe.handle = cpu_to_le64(handle);
	hsm_buf_sqe_dst(&buf, &sqe);
	ret = hsm_submit_sync(&hdev->adminq, &sqe, NULL, false);
	if (ret > 0)
		ret = hsm_status_to_errno(ret);
	if (ret)
		goto out;
	hsm_buf_unmap(&buf);
	a = kmalloc(sizeof(*a), GFP_KERNEL);
	if (!a) {
		ret = -ENOMEM;
		goto out;
	}
	hsm_buf_copy_to_kernel(&buf, a, sizeof(*a));
	if (le64_to_cpu(a->handle) != handle) {
		dev_err_ratelimited(&hdev->pdev->dev,
				    "key attributes of another key\n");
		ret = -EIO;
	} else {
		*bits = le16_to_cpu(a->bits);
	}
	kfree(a);
out:
	hsm_buf_free(&buf);
	return ret;
}

/* Forget the transform's key; session keys are destroyed. */
void hsm_ctx_drop_key(struct hsm_tfm_ctx *ctx)
{
	if (!ctx->token_key)
		hsm_key_destroy(ctx->card, ctx->handle);
	ctx->handle = 0;
	ctx->token_key = false;
}

/**
 * hsm_ctx_import_key() - replace the transform's key by a new session key
 * @ctx:    transform context
 * @type:   HSM_KEY_* type
 * @uses:   HSM_USE_* uses
 * @hdr:    bytes that go before the key (may be NULL)
 * @hdrlen: length of @hdr
 * @key:    the clear key
 * @keylen: its length
 *
 * On failure the transform is left without a key.
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
int hsm_ctx_import_key(struct hsm_tfm_ctx *ctx, u16 type, u32 uses,
		       const void *hdr, unsigned int hdrlen,
		       const u8 *key, unsigned int keylen)
{
	struct hsm_key_attrs attrs = {};
	u64 handle = 0;
	int ret;

	attrs.type = cpu_to_le16(type);
	attrs.uses = cpu_to_le32(uses);
	ret = hsm_key_import(ctx->card, &attrs, hdr, hdrlen, key, keylen,
			     &handle);
	hsm_ctx_drop_key(ctx);
	if (!ret)
		ctx->handle = handle;
	return ret;
}

/* Replace the transform's key by an AES session key. */
static int hsm_ctx_set_key(struct hsm_tfm_ctx *ctx, const u8 *key,
			   unsigned int keylen)
{
	return hsm_ctx_import_key(ctx, HSM_KEY_AES,
				  HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
				  NULL, 0, key, keylen);
}

int hsm_ctx_init(struct hsm_tfm_ctx *ctx, enum hsm_cr_alg_id id, u16 mech)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->card = hsm_card_get();
	if (!ctx->card)
		return -ENODEV;
	atomic_inc(&hsm_cr_live_tfms);
	ctx->id = id;
	ctx->mech = mech;
	return 0;
}

void hsm_ctx_exit(struct hsm_tfm_ctx *ctx)
{
	hsm_ctx_drop_key(ctx);
	hsm_card_put(ctx->card);
	ctx->card = NULL;
	atomic_dec(&hsm_cr_live_tfms);
}

/* ---- request path ---- */

/*
 * Describe @nrg ranges of the mapped scatterlist @sg (@nents entries) in
 * @out (at most @max entries), merging contiguous pieces.
 * Return: the number of entries, or -EINVAL if more than @max are needed.
 */
static int hsm_sgl_build(struct scatterlist *sg, int nents,
			 const struct hsm_range *rg, unsigned int nrg,
			 struct hsm_sge *out, unsigned int max)
{
	unsigned int i, n = 0;

	for (i = 0; i < nrg; i++) {
		struct scatterlist *s;
		u32 skip = rg[i].off, left = rg[i].len;
		int j;

		for_each_sg(sg, s, nents, j) {
			u32 slen = sg_dma_len(s);
			dma_addr_t addr = sg_dma_address(s);
			u32 take;

			if (!left)
				break;
			if (skip >= slen) {
				skip -= slen;
				continue;
			}
			addr += skip;
			take = min(slen - skip, left);
			skip = 0;
			left -= take;
			if (n && le64_to_cpu(out[n - 1].addr) +
				 le32_to_cpu(out[n - 1].len) == addr) {
				le32_add_cpu(&out[n - 1].len, take);
				continue;
			}
			if (n == max)
				return -EINVAL;
			out[n].addr = cpu_to_le64(addr);
			out[n].len = cpu_to_le32(take);
			out[n].rsvd = 0;
			n++;
		}
		if (left)
			return -EINVAL;
	}
	return n;
}

static void hsm_creq_unmap(struct hsm_creq *r)
{
	struct device *dev = &r->ctx->card->hdev->pdev->dev;

	if (r->src == r->dst) {
		u32 len = max(r->src_map, r->dst_map);

		if (r->src_nents)
			dma_unmap_sg(dev, r->src, sg_nents_for_len(r->src, len),
				     DMA_BIDIRECTIONAL);
	} else {
		if (r->src_nents)
			dma_unmap_sg(dev, r->src,
				     sg_nents_for_len(r->src, r->src_map),
				     DMA_TO_DEVICE);
		if (r->dst_nents)
			dma_unmap_sg(dev, r->dst,
				     sg_nents_for_len(r->dst, r->dst_map),
				     DMA_FROM_DEVICE);
	}
	r->src_nents = 0;
	r->dst_nents = 0;
}

static int hsm_creq_map(struct hsm_creq *r)
{
	struct device *dev = &r->ctx->card->hdev->pdev->dev;
	int n;

	if (r->src == r->dst) {
		u32 len = max(r->src_map, r->dst_map);

		if (!len)
			return 0;
		n = sg_nents_for_len(r->src, len);
		if (n < 0)
			return n;
		r->src_nents = dma_map_sg(dev, r->src, n, DMA_BIDIRECTIONAL);
		if (!r->src_nents)
			return -ENOMEM;
		r->dst_nents = r->src_nents;
		return 0;
	}
	if (r->src_map) {
		n = sg_nents_for_len(r->src, r->src_map);
		if (n < 0)
			return n;
		r->src_nents = dma_map_sg(dev, r->src, n, DMA_TO_DEVICE);
		if (!r->src_nents)
			return -ENOMEM;
	}
	if (r->dst_map) {
		n = sg_nents_for_len(r->dst, r->dst_map);
		if (n < 0)
			goto err;
		r->dst_nents = dma_map_sg(dev, r->dst, n, DMA_FROM_DEVICE);
		if (!r->dst_nents) {
			n = -ENOMEM;
			goto err;
		}
	}
	return 0;
err:
	hsm_creq_unmap(r);
	return n;
}

/* Point the command at a buffer: flat for one piece, else an SGL. */
static void hsm_sqe_buf(struct hsm_sqe *sqe, bool is_src,
			const struct hsm_sge *sgl, dma_addr_t sgl_dma,
			int n, u32 len)
{
	u64 addr = 0;

	if (n == 1) {
		addr = le64_to_cpu(sgl[0].addr);
	} else if (n > 1) {
		addr = sgl_dma;
		sqe->flags |= is_src ? HSM_SQE_F_SRC_SGL : HSM_SQE_F_DST_SGL;
		if (is_src)
			sqe->src_nsge = cpu_to_le16(n);
		else
			sqe->dst_nsge = cpu_to_le16(n);
	}
	if (is_src) {
		sqe->src = cpu_to_le64(addr);
		sqe->src_len = cpu_to_le32(len);
	} else {
		sqe->dst = cpu_to_le64(addr);
		sqe->dst_len = cpu_to_le32(len);
	}
}

static void hsm_creq_done(struct hsm_queue *q, void *data, u16 status,
			  u64 result);

/*
 * Send @r to the card.  Called with cq->lock held.
 * Return: 0 when sent, -EBUSY when there is no room now (nothing changed),
 * another negative errno when the request cannot be sent at all.
 */
static int hsm_creq_send(struct hsm_cq *cq, struct hsm_creq *r)
{
	struct hsm_cr_slot *slot;
	dma_addr_t slot_dma;
	struct hsm_sqe sqe;
	unsigned int i;
	int ns, nd, ret;

	i = find_first_zero_bit(cq->slot_map, cq->nslots);
	if (i >= cq->nslots)
		return -EBUSY;
	slot = &cq->slots[i];
	slot_dma = cq->slots_dma + i * sizeof(*slot);
	sqe = r->sqe;

	if (r->gcm_empty) {
		/* One ECB block: E(K, J0) is the tag of an empty message. */
		memcpy(slot->in, r->j0, sizeof(slot->in));
		sqe.src = cpu_to_le64(slot_dma +
				      offsetof(struct hsm_cr_slot, in));
		sqe.src_len = cpu_to_le32(AES_BLOCK_SIZE);
		sqe.dst = cpu_to_le64(slot_dma +
				      offsetof(struct hsm_cr_slot, out));
		sqe.dst_len = cpu_to_le32(AES_BLOCK_SIZE);
	} else {
		ret = hsm_creq_map(r);
		if (ret)
			return ret;
		ns = hsm_sgl_build(r->src, r->src_nents, r->src_rg, r->nsrc_rg,
				   slot->src, HSM_CR_NSGE);
		nd = 0;
		if (r->kind != HSM_CR_AHASH)
			nd = hsm_sgl_build(r->dst, r->dst_nents, &r->dst_rg, 1,
					   slot->dst, HSM_CR_NSGE);
		if (ns < 0 || nd < 0) {
			hsm_creq_unmap(r);
			return -EINVAL;
		}
		hsm_sqe_buf(&sqe, true, slot->src,
			    slot_dma + offsetof(struct hsm_cr_slot, src), ns,
			    r->src_rg[0].len + (r->nsrc_rg > 1 ?
						r->src_rg[1].len : 0));
		if (r->kind == HSM_CR_AHASH) {
			/* The state travels in the slot; so does the digest. */
			if (*r->hvalid)
				memcpy(slot->h.state, r->hstate,
				       HSM_HASH_STATE_SIZE);
			else
				sqe.flags |= HSM_SQE_F_HASH_INIT;
			sqe.qw[0] = cpu_to_le64(slot_dma +
						offsetof(struct hsm_cr_slot,
							 h.state));
			if (sqe.opcode == HSM_IO_HASH_FINAL) {
				sqe.dst = cpu_to_le64(slot_dma +
						      offsetof(struct hsm_cr_slot,
							       h.digest));
				sqe.dst_len = cpu_to_le32(r->hsize);
			}
		} else {
			hsm_sqe_buf(&sqe, false, slot->dst,
				    slot_dma + offsetof(struct hsm_cr_slot, dst),
				    nd, r->dst_rg.len);
		}
	}

	__set_bit(i, cq->slot_map);
	r->slot = i;
	ret = hsm_queue_submit(cq->q, &sqe, hsm_creq_done, r);
	if (ret) {
		__clear_bit(i, cq->slot_map);
		hsm_creq_unmap(r);
		return -EBUSY;
	}
	atomic64_inc(&cq->card->stats[r->ctx->id].requests);
	atomic64_add(r->bytes, &cq->card->stats[r->ctx->id].bytes);
	return 0;
}

static void hsm_creq_complete(struct hsm_creq *r, int err)
{
	switch (r->kind) {
	case HSM_CR_SKCIPHER:
		skcipher_request_complete(r->areq, err);
		break;
	case HSM_CR_AEAD:
		aead_request_complete(r->areq, err);
		break;
	case HSM_CR_AHASH:
		ahash_request_complete(r->areq, err);
		break;
	case HSM_CR_AKCIPHER:
		akcipher_request_complete(r->areq, err);
		break;
	}
}

/*
 * Send backlogged requests while there is room.  One context at a time
 * (cq->draining): a request is told -EINPROGRESS with the lock dropped,
 * and no other context may send it to the card meanwhile, or its result
 * could reach the owner before -EINPROGRESS does.  A context that finds
 * another one draining leaves the work to it; the drainer re-checks under
 * the lock before it stops, so room freed meanwhile is not missed.
 */
static void hsm_cq_drain(struct hsm_cq *cq)
{
	struct hsm_creq *r;
	unsigned long flags;
	int ret;

	spin_lock_irqsave(&cq->lock, flags);
	if (cq->draining) {
		spin_unlock_irqrestore(&cq->lock, flags);
		return;
	}
	cq->draining = true;
	for (;;) {
		r = list_first_entry_or_null(&cq->backlog, struct hsm_creq,
					     node);
		if (!r || cq->dead ||
		    bitmap_full(cq->slot_map, cq->nslots))
			break;
		if (!r->notified) {
			/*
			 * Tell the owner before the card can complete it, so
			 * -EINPROGRESS always comes before the result.
			 */
			r->notified = true;
			spin_unlock_irqrestore(&cq->lock, flags);
			hsm_creq_complete(r, -EINPROGRESS);
			spin_lock_irqsave(&cq->lock, flags);
			continue;
		}
		ret = hsm_creq_send(cq, r);
		if (ret == -EBUSY)
			break;
		list_del(&r->node);
		if (ret) {
			spin_unlock_irqrestore(&cq->lock, flags);
			atomic64_inc(&cq->card->stats[r->ctx->id].errors);
			hsm_creq_complete(r, ret);
			spin_lock_irqsave(&cq->lock, flags);
		}
	}
	cq->draining = false;
	spin_unlock_irqrestore(&cq->lock, flags);
}

static void hsm_cq_work(struct work_struct *work)
{
	/* Owners' callbacks expect softirq context at most, never less. */
	local_bh_disable();
	hsm_cq_drain(container_of(work, struct hsm_cq, work));
	local_bh_enable();
}

/* The hardware queue has room or changed state: retry the backlog. */
static int hsm_cq_wake(struct wait_queue_entry *wqe, unsigned int mode,
		       int sync, void *key)
{
	struct hsm_cq *cq = container_of(wqe, struct hsm_cq, wqe);

	if (!list_empty_careful(&cq->backlog))
		queue_work(system_highpri_wq, &cq->work);
	return 0;
}

/**
 * hsm_creq_queue() - send a prepared request, or backlog it
 * @r:         the request, with its command (no buffers, no cid) and ranges
 * @req_flags: the crypto API request's flags (CRYPTO_TFM_REQ_MAY_BACKLOG)
 *
 * Context: any; does not sleep or allocate.
 * Return: -EINPROGRESS (sent), -EBUSY (backlogged), or an error.
 */
int hsm_creq_queue(struct hsm_creq *r, u32 req_flags)
{
	struct hsm_cq *cq = hsm_card_cq(r->ctx->card);
	unsigned long flags;
	int ret;

	r->cq = cq;
	r->src_nents = 0;
	r->dst_nents = 0;
	r->notified = false;
	spin_lock_irqsave(&cq->lock, flags);
	if (cq->dead) {
		ret = -ENODEV;
	} else {
		ret = -EBUSY;
		if (list_empty(&cq->backlog))
			ret = hsm_creq_send(cq, r);
		if (!ret) {
			ret = -EINPROGRESS;
		} else if (ret == -EBUSY) {
			if (req_flags & CRYPTO_TFM_REQ_MAY_BACKLOG) {
				list_add_tail(&r->node, &cq->backlog);
				atomic64_inc(&cq->card->stats[r->ctx->id].backlogged);
			} else {
				ret = -ENOSPC;
			}
		}
	}
	spin_unlock_irqrestore(&cq->lock, flags);
	return ret;
}

/* 128-bit big-endian counter block += @n. */
static void hsm_ctr_add(u8 *ctr, u32 n)
{
	__be64 w[2];
	u64 lo, hi;

	memcpy(w, ctr, sizeof(w));
	hi = be64_to_cpu(w[0]);
	lo = be64_to_cpu(w[1]);
	if (lo + n < lo)
		hi++;
	lo += n;
	w[0] = cpu_to_be64(hi);
	w[1] = cpu_to_be64(lo);
	memcpy(ctr, w, sizeof(w));
}

static void hsm_skcipher_finish(struct hsm_creq *r, int err)
{
	struct skcipher_request *req = r->areq;

	if (err)
		return;
	switch (r->ctx->mech) {
	case HSM_MECH_AES_CBC:
		if (r->encrypt)
			scatterwalk_map_and_copy(req->iv, req->dst,
						 req->cryptlen - AES_BLOCK_SIZE,
						 AES_BLOCK_SIZE, 0);
		else
			memcpy(req->iv, r->iv_next, AES_BLOCK_SIZE);
		break;
	case HSM_MECH_AES_CTR:
		hsm_ctr_add(req->iv, DIV_ROUND_UP(req->cryptlen,
						  AES_BLOCK_SIZE));
		break;
	default:
		break;
	}
}

static void hsm_aead_finish(struct hsm_creq *r, int err)
{
	struct aead_request *req = r->areq;

	if (!err && r->gcm_empty)
		scatterwalk_map_and_copy(r->cq->slots[r->slot].out, req->dst,
					 req->assoclen, r->ctx->authsize, 1);
}

/*
 * Completion callback of the queue layer, in hard interrupt context (or
 * from the reset path).  The owners' callbacks (IPsec, dm-crypt...) expect
 * softirq context at most: hand the request to the queue's tasklet.
 */
static void hsm_creq_done(struct hsm_queue *q, void *data, u16 status,
			  u64 result)
{
	struct hsm_creq *r = data;
	struct hsm_cq *cq = r->cq;

	r->status = status;
	/*
	 * From here on the tasklet, on another CPU, may complete the request
	 * and its owner free it: only @cq may be touched after llist_add().
	 */
	llist_add(&r->done_node, &cq->done);
	tasklet_schedule(&cq->done_bh);
}

/* Finish one request the card completed and report it. */
static void hsm_creq_finish(struct hsm_cq *cq, struct hsm_creq *r)
{
	unsigned long flags;
	int err;

	err = hsm_status_to_errno(r->status);
	hsm_creq_unmap(r);
	switch (r->kind) {
	case HSM_CR_SKCIPHER:
		hsm_skcipher_finish(r, err);
		break;
	case HSM_CR_AEAD:
		hsm_aead_finish(r, err);
		break;
	case HSM_CR_AHASH:
		hsm_ahash_finish(r, err);
		break;
	case HSM_CR_AKCIPHER:
		hsm_akcipher_finish(r, err);
		break;
	}

	spin_lock_irqsave(&cq->lock, flags);
	__clear_bit(r->slot, cq->slot_map);
	spin_unlock_irqrestore(&cq->lock, flags);

	if (err)
		atomic64_inc(&cq->card->stats[r->ctx->id].errors);
	hsm_creq_complete(r, err);
}

static void hsm_cq_done_bh(struct tasklet_struct *t)
{
	struct hsm_cq *cq = from_tasklet(cq, t, done_bh);
	struct llist_node *list;
	struct hsm_creq *r, *tmp;

	/* Oldest first. */
	list = llist_reverse_order(llist_del_all(&cq->done));
	llist_for_each_entry_safe(r, tmp, list, done_node)
		hsm_creq_finish(cq, r);
	hsm_cq_drain(cq);
}

/* ---- skcipher ---- */

static struct hsm_tfm_ctx *hsm_sk_ctx(struct crypto_skcipher *tfm)
{
	return crypto_skcipher_ctx(tfm);
}

/*
 * A test-only clear-key token (struct hsmcard_clear_token): check it and
 * import its key as a session key.
 */
static int hsm_paes_clear_token(struct hsm_tfm_ctx *ctx, const u8 *token)
{
	struct hsmcard_clear_token ct;
	bool xts = ctx->mech == HSM_MECH_AES_XTS;
	unsigned int len;
	int ret = -EINVAL;

	memcpy(&ct, token, sizeof(ct));
	len = le16_to_cpu((__force __le16)ct.key_len);
	if (le16_to_cpu((__force __le16)ct.version) != 1 ||
	    memchr_inv(ct.rsvd, 0, sizeof(ct.rsvd)) ||
	    len > sizeof(ct.key) ||
	    memchr_inv(ct.key + len, 0, sizeof(ct.key) - len))
		goto out;
	if (xts ? len != 2 * AES_KEYSIZE_128 && len != 2 * AES_KEYSIZE_256 :
		  aes_check_keylen(len))
		goto out;
	if (xts && !crypto_memneq(ct.key, ct.key + len / 2, len / 2))
		goto out;
	ret = hsm_ctx_set_key(ctx, ct.key, len);
out:
	memzero_explicit(&ct, sizeof(ct));
	return ret;
}

/*
 * xts(paes), cbc(paes): the key is a key token (HSMCARD_TOKEN_SIZE bytes)
 * naming a persistent AES key of the card, which stays in the card.
 */
static int hsm_paes_setkey(struct crypto_skcipher *tfm, const u8 *key,
			   unsigned int keylen)
{
	struct hsm_tfm_ctx *ctx = crypto_skcipher_ctx(tfm);
	bool xts = ctx->mech == HSM_MECH_AES_XTS;
	struct hsm_key_attrs attrs;
	unsigned int bits;
	__le32 magic;
	u64 handle;
	int ret;

	if (keylen != HSMCARD_TOKEN_SIZE)
		return -EINVAL;
	if (READ_ONCE(ctx->card->dead))
		return -ENODEV;
	memcpy(&magic, key, sizeof(magic));
	if (le32_to_cpu(magic) == HSMCARD_CLEAR_TOKEN_MAGIC) {
		if (!READ_ONCE(paes_clear_tokens))
			return -EINVAL;
		return hsm_paes_clear_token(ctx, key);
	}
	ret = hsm_token_open(ctx->card->hdev, key, &handle, &attrs);
	if (ret)
		return ret;
	/* The card checked the token; check that the key fits the mode. */
	bits = le16_to_cpu(attrs.bits);
	if (le16_to_cpu(attrs.type) != HSM_KEY_AES ||
	    HSM_HANDLE_PART(handle) != HSMCARD_PARTITION_KERNEL ||
	    (~le32_to_cpu(attrs.uses) & (HSM_USE_ENCRYPT | HSM_USE_DECRYPT)) ||
	    (xts ? bits != 256 && bits != 512 :
		   bits != 128 && bits != 192 && bits != 256))
		return -EINVAL;
	hsm_ctx_drop_key(ctx);
	ctx->handle = handle;
	ctx->token_key = true;
	return 0;
}

static int hsm_skcipher_setkey(struct crypto_skcipher *tfm, const u8 *key,
			       unsigned int keylen)
{
	struct hsm_tfm_ctx *ctx = hsm_sk_ctx(tfm);
	int ret;

	if (ctx->id == HSM_CR_XTS) {
		ret = xts_verify_key(tfm, key, keylen);
		if (ret)
			return ret;
		if (keylen != 2 * AES_KEYSIZE_128 &&
		    keylen != 2 * AES_KEYSIZE_192 &&
		    keylen != 2 * AES_KEYSIZE_256)
			return -EINVAL;
		/*
		 * The card takes XTS-AES-128/256 with distinct halves; equal
		 * halves (allowed outside FIPS mode) and XTS-AES-192 are
		 * handled in software.
		 */
		memzero_explicit(ctx->soft, sizeof(ctx->soft));
		ctx->use_soft = keylen == 2 * AES_KEYSIZE_192 ||
				!crypto_memneq(key, key + keylen / 2,
					       keylen / 2);
		if (ctx->use_soft) {
			hsm_ctx_drop_key(ctx);
			ret = aes_expandkey(&ctx->soft[0], key, keylen / 2);
			if (!ret)
				ret = aes_expandkey(&ctx->soft[1],
						    key + keylen / 2,
						    keylen / 2);
			if (ret)
				ctx->use_soft = false;
			return ret;
		}
	} else if (aes_check_keylen(keylen)) {
		return -EINVAL;
	}
	return hsm_ctx_set_key(ctx, key, keylen);
}

/* One XTS block: out = E/D(K1, in ^ t) ^ t. */
static void hsm_xts_block(struct hsm_tfm_ctx *ctx, bool encrypt, u8 *out,
			  const u8 *in, const le128 *t)
{
	u8 b[AES_BLOCK_SIZE];

	crypto_xor_cpy(b, in, (const u8 *)t, AES_BLOCK_SIZE);
	if (encrypt)
		aes_encrypt(&ctx->soft[0], b, b);
	else
		aes_decrypt(&ctx->soft[0], b, b);
	crypto_xor_cpy(out, b, (const u8 *)t, AES_BLOCK_SIZE);
	memzero_explicit(b, sizeof(b));
}

/*
 * XTS in software (IEEE 1619, with ciphertext stealing) for the keys the
 * card refuses.  Works block by block through bounce copies, so it handles
 * in-place requests and any scatterlist layout without allocating.
 */
static int hsm_xts_soft(struct hsm_tfm_ctx *ctx, struct skcipher_request *req,
			bool encrypt)
{
	unsigned int len = req->cryptlen, tail = len % AES_BLOCK_SIZE;
	unsigned int full = len / AES_BLOCK_SIZE - (tail ? 1 : 0);
	u8 a[AES_BLOCK_SIZE], c[AES_BLOCK_SIZE];
	unsigned int i, off;
	le128 t, t2;

	aes_encrypt(&ctx->soft[1], (u8 *)&t, req->iv);
	for (i = 0, off = 0; i < full; i++, off += AES_BLOCK_SIZE) {
		scatterwalk_map_and_copy(a, req->src, off, AES_BLOCK_SIZE, 0);
		hsm_xts_block(ctx, encrypt, a, a, &t);
		scatterwalk_map_and_copy(a, req->dst, off, AES_BLOCK_SIZE, 1);
		gf128mul_x_ble(&t, &t);
	}
	if (tail) {
		/* Last full block at @off, @tail bytes after it. */
		gf128mul_x_ble(&t2, &t);
		scatterwalk_map_and_copy(a, req->src, off, AES_BLOCK_SIZE, 0);
		scatterwalk_map_and_copy(c, req->src, off + AES_BLOCK_SIZE,
					 tail, 0);
		/* Decryption undoes the stolen block with the next tweak. */
		hsm_xts_block(ctx, encrypt, a, a, encrypt ? &t : &t2);
		/* a = CC (or PP); swap its head with the partial block. */
		for (i = 0; i < tail; i++)
			swap(a[i], c[i]);
		hsm_xts_block(ctx, encrypt, a, a, encrypt ? &t2 : &t);
		scatterwalk_map_and_copy(a, req->dst, off, AES_BLOCK_SIZE, 1);
		scatterwalk_map_and_copy(c, req->dst, off + AES_BLOCK_SIZE,
					 tail, 1);
	}
	memzero_explicit(a, sizeof(a));
	memzero_explicit(c, sizeof(c));
	memzero_explicit(&t, sizeof(t));
	memzero_explicit(&t2, sizeof(t2));
	return 0;
}

static int hsm_skcipher_crypt(struct skcipher_request *req, bool encrypt)
{
	struct crypto_skcipher *tfm = crypto_skcipher_reqtfm(req);
	struct hsm_tfm_ctx *ctx = hsm_sk_ctx(tfm);
	struct hsm_creq *r = skcipher_request_ctx(req);
	unsigned int len = req->cryptlen;

	switch (ctx->mech) {
	case HSM_MECH_AES_ECB:
	case HSM_MECH_AES_CBC:
		if (!IS_ALIGNED(len, AES_BLOCK_SIZE))
			return -EINVAL;
		break;
	case HSM_MECH_AES_XTS:
		if (len < AES_BLOCK_SIZE)
			return -EINVAL;
		break;
	default:
		break;
	}
	if (!len)
		return 0;
	if (ctx->use_soft)
		return hsm_xts_soft(ctx, req, encrypt);
	if (len > ctx->card->hdev->limits.max_xfer)
		return -EINVAL;
	if (!ctx->handle)
		return -ENOKEY;

	hsm_creq_prep(r, HSM_CR_SKCIPHER, req, ctx,
		      encrypt ? HSM_IO_ENCRYPT : HSM_IO_DECRYPT, ctx->mech,
		      req->src, len, req->dst, 0, len);
	if (ctx->mech != HSM_MECH_AES_ECB)
		memcpy(r->sqe.iv, req->iv, AES_BLOCK_SIZE);
	/* The output IV of CBC decryption is the last input block. */
	if (ctx->mech == HSM_MECH_AES_CBC && !encrypt)
		scatterwalk_map_and_copy(r->iv_next, req->src,
					 len - AES_BLOCK_SIZE,
					 AES_BLOCK_SIZE, 0);
	return hsm_creq_queue(r, req->base.flags);
}

static int hsm_skcipher_encrypt(struct skcipher_request *req)
{
	return hsm_skcipher_crypt(req, true);
}

static int hsm_skcipher_decrypt(struct skcipher_request *req)
{
	return hsm_skcipher_crypt(req, false);
}

struct hsm_skcipher_alg {
	enum hsm_cr_alg_id id;
	u16 mech;
	bool registered;
	struct skcipher_alg alg;
};

static int hsm_skcipher_init(struct crypto_skcipher *tfm)
{
	struct hsm_skcipher_alg *a =
		container_of(crypto_skcipher_alg(tfm), struct hsm_skcipher_alg,
			     alg);
	struct hsm_tfm_ctx *ctx = hsm_sk_ctx(tfm);
	int ret;

	ret = hsm_ctx_init(ctx, a->id, a->mech);
	if (ret)
		return ret;
	crypto_skcipher_set_reqsize(tfm, sizeof(struct hsm_creq));
	return 0;
}

static void hsm_skcipher_exit(struct crypto_skcipher *tfm)
{
	struct hsm_tfm_ctx *ctx = hsm_sk_ctx(tfm);

	memzero_explicit(ctx->soft, sizeof(ctx->soft));
	hsm_ctx_exit(ctx);
}

#define HSM_SKCIPHER_ALG(_id, _mech, _name, _drv, _bs, _ivs, _kmin, _kmax, \
			 _setkey)					   \
	{								   \
		.id = _id,						   \
		.mech = _mech,						   \
		.alg = {						   \
			.base = {					   \
				.cra_name = _name,			   \
				.cra_driver_name = _drv,		   \
				.cra_flags = CRYPTO_ALG_ASYNC |		   \
					     CRYPTO_ALG_KERN_DRIVER_ONLY,  \
				.cra_blocksize = _bs,			   \
				.cra_ctxsize = sizeof(struct hsm_tfm_ctx), \
				.cra_module = THIS_MODULE,		   \
			},						   \
			.min_keysize = _kmin,				   \
			.max_keysize = _kmax,				   \
			.ivsize = _ivs,					   \
			.chunksize = AES_BLOCK_SIZE,			   \
			.setkey = _setkey,				   \
			.encrypt = hsm_skcipher_encrypt,		   \
			.decrypt = hsm_skcipher_decrypt,		   \
			.init = hsm_skcipher_init,			   \
			.exit = hsm_skcipher_exit,			   \
		},							   \
	}

static struct hsm_skcipher_alg hsm_skcipher_algs[] = {
	HSM_SKCIPHER_ALG(HSM_CR_ECB, HSM_MECH_AES_ECB, "ecb(aes)",
			 "ecb-aes-hsmcard", AES_BLOCK_SIZE, 0,
			 AES_MIN_KEY_SIZE, AES_MAX_KEY_SIZE,
			 hsm_skcipher_setkey),
	HSM_SKCIPHER_ALG(HSM_CR_CBC, HSM_MECH_AES_CBC, "cbc(aes)",
			 "cbc-aes-hsmcard", AES_BLOCK_SIZE, AES_BLOCK_SIZE,
			 AES_MIN_KEY_SIZE, AES_MAX_KEY_SIZE,
			 hsm_skcipher_setkey),
	HSM_SKCIPHER_ALG(HSM_CR_CTR, HSM_MECH_AES_CTR, "ctr(aes)",
			 "ctr-aes-hsmcard", 1, AES_BLOCK_SIZE,
			 AES_MIN_KEY_SIZE, AES_MAX_KEY_SIZE,
			 hsm_skcipher_setkey),
	HSM_SKCIPHER_ALG(HSM_CR_XTS, HSM_MECH_AES_XTS, "xts(aes)",
			 "xts-aes-hsmcard", AES_BLOCK_SIZE, AES_BLOCK_SIZE,
			 2 * AES_MIN_KEY_SIZE, 2 * AES_MAX_KEY_SIZE,
			 hsm_skcipher_setkey),
	HSM_SKCIPHER_ALG(HSM_CR_XTS_PAES, HSM_MECH_AES_XTS, "xts(paes)",
			 "xts-paes-hsmcard", AES_BLOCK_SIZE, AES_BLOCK_SIZE,
			 HSMCARD_TOKEN_SIZE, HSMCARD_TOKEN_SIZE,
			 hsm_paes_setkey),
	HSM_SKCIPHER_ALG(HSM_CR_CBC_PAES, HSM_MECH_AES_CBC, "cbc(paes)",
			 "cbc-paes-hsmcard", AES_BLOCK_SIZE, AES_BLOCK_SIZE,
			 HSMCARD_TOKEN_SIZE, HSMCARD_TOKEN_SIZE,
			 hsm_paes_setkey),
};

/* ---- AEAD ---- */

/*
 * authenc(hmac(sha256),cbc(aes)): the key is the kernel's authenc key blob
 * (an rtattr with the AES key length, the HMAC key, the AES key).  Both
 * halves become one HSM_KEY_AUTHENC session key.
 */
static int hsm_authenc_setkey(struct hsm_tfm_ctx *ctx, const u8 *key,
			      unsigned int keylen)
{
	struct crypto_authenc_keys keys;
	struct {
		struct hsm_authenc_key_hdr h;
		u8 enc[AES_MAX_KEY_SIZE];
	} hdr = {};
	int ret;

	if (crypto_authenc_extractkeys(&keys, key, keylen))
		return -EINVAL;
	if (aes_check_keylen(keys.enckeylen) ||
	    keys.authkeylen > HSM_HMAC_IMPORT_MAX)
		return -EINVAL;
	hdr.h.enc_len = cpu_to_le16(keys.enckeylen);
	hdr.h.mac_len = cpu_to_le16(keys.authkeylen);
	memcpy(hdr.enc, keys.enckey, keys.enckeylen);
	ret = hsm_ctx_import_key(ctx, HSM_KEY_AUTHENC,
				 HSM_USE_ENCRYPT | HSM_USE_DECRYPT, &hdr,
				 sizeof(hdr.h) + keys.enckeylen,
				 keys.authkey, keys.authkeylen);
	memzero_explicit(&hdr, sizeof(hdr));
	return ret;
}

static int hsm_aead_setkey(struct crypto_aead *tfm, const u8 *key,
			   unsigned int keylen)
{
	struct hsm_tfm_ctx *ctx = crypto_aead_ctx(tfm);

	if (ctx->id == HSM_CR_AUTHENC)
		return hsm_authenc_setkey(ctx, key, keylen);

	if (ctx->id == HSM_CR_RFC4106) {
		if (keylen < sizeof(ctx->salt))
			return -EINVAL;
		keylen -= sizeof(ctx->salt);
	}
	if (aes_check_keylen(keylen))
		return -EINVAL;
	if (ctx->id == HSM_CR_RFC4106)
		memcpy(ctx->salt, key + keylen, sizeof(ctx->salt));
	return hsm_ctx_set_key(ctx, key, keylen);
}

static int hsm_aead_setauthsize(struct crypto_aead *tfm,
				unsigned int authsize)
{
	struct hsm_tfm_ctx *ctx = crypto_aead_ctx(tfm);
	int ret;

	if (ctx->id == HSM_CR_AUTHENC)
		ret = authsize <= SHA256_DIGEST_SIZE ? 0 : -EINVAL;
	else if (ctx->id == HSM_CR_RFC4106)
		ret = crypto_rfc4106_check_authsize(authsize);
	else
		ret = crypto_gcm_check_authsize(authsize);
	if (!ret)
		ctx->authsize = authsize;
	return ret;
}

/*
 * authenc: src = AAD || data (|| tag), dst = AAD || data' (|| tag); the card
 * takes AAD || data (|| tag) and writes data' (|| tag) after the AAD.
 */
static int hsm_authenc_crypt(struct aead_request *req, bool encrypt)
{
	struct crypto_aead *tfm = crypto_aead_reqtfm(req);
	struct hsm_tfm_ctx *ctx = crypto_aead_ctx(tfm);
	struct hsm_creq *r = aead_request_ctx(req);
	unsigned int authsize = ctx->authsize;
	unsigned int assoclen = req->assoclen;
	unsigned int dlen, total;

	if (!encrypt && req->cryptlen < authsize)
		return -EINVAL;
	dlen = req->cryptlen - (encrypt ? 0 : authsize);
	if (!IS_ALIGNED(dlen, AES_BLOCK_SIZE))
		return -EINVAL;
	total = assoclen + req->cryptlen;
	if (total < assoclen || total > ctx->card->hdev->limits.max_xfer ||
	    dlen + authsize > ctx->card->hdev->limits.max_xfer)
		return -EINVAL;
	if (!ctx->handle)
		return -ENOKEY;

	hsm_creq_prep(r, HSM_CR_AEAD, req, ctx,
		      encrypt ? HSM_IO_ENCRYPT : HSM_IO_DECRYPT,
		      HSM_MECH_AES_CBC_HMAC_SHA256, req->src, total, req->dst,
		      assoclen, dlen + (encrypt ? authsize : 0));
	r->sqe.mparam = cpu_to_le16(authsize);
	r->sqe.aux = cpu_to_le32(assoclen);
	memcpy(r->sqe.iv, req->iv, AES_BLOCK_SIZE);
	return hsm_creq_queue(r, req->base.flags);
}

static int hsm_aead_crypt(struct aead_request *req, bool encrypt)
{
	struct crypto_aead *tfm = crypto_aead_reqtfm(req);
	struct hsm_tfm_ctx *ctx = crypto_aead_ctx(tfm);
	struct hsm_creq *r = aead_request_ctx(req);
	unsigned int authsize = ctx->authsize;
	unsigned int assoclen = req->assoclen;
	unsigned int aad = assoclen, dlen, total;
	bool rfc = ctx->id == HSM_CR_RFC4106;

	if (ctx->id == HSM_CR_AUTHENC)
		return hsm_authenc_crypt(req, encrypt);
	if (rfc) {
		if (crypto_ipsec_check_assoclen(assoclen))
			return -EINVAL;
		aad = assoclen - GCM_RFC4106_IV_SIZE;
	}
	if (!encrypt && req->cryptlen < authsize)
		return -EINVAL;
	dlen = req->cryptlen - (encrypt ? 0 : authsize);
	total = aad + req->cryptlen;
	if (total > ctx->card->hdev->limits.max_xfer ||
	    dlen + authsize > ctx->card->hdev->limits.max_xfer)
		return -EINVAL;
	if (!ctx->handle)
		return -ENOKEY;

	/* The ranges are set below. */
	hsm_creq_prep(r, HSM_CR_AEAD, req, ctx,
		      encrypt ? HSM_IO_ENCRYPT : HSM_IO_DECRYPT,
		      HSM_MECH_AES_GCM, req->src, 0, req->dst, 0, 0);
	r->bytes = total;
	if (rfc) {
		memcpy(r->sqe.iv, ctx->salt, sizeof(ctx->salt));
		memcpy(r->sqe.iv + sizeof(ctx->salt), req->iv,
		       GCM_RFC4106_IV_SIZE);
	} else {
		memcpy(r->sqe.iv, req->iv, GCM_AES_IV_SIZE);
	}

	r->gcm_empty = encrypt && !total;
	if (r->gcm_empty) {
		/*
		 * The card needs at least one byte of input.  With no AAD and
		 * no data, GHASH is zero and the tag is E(K, J0) with
		 * J0 = IV || 0^31 || 1.
		 */
		memcpy(r->j0, r->sqe.iv, GCM_AES_IV_SIZE);
		memset(r->j0 + GCM_AES_IV_SIZE, 0,
		       AES_BLOCK_SIZE - GCM_AES_IV_SIZE);
		r->j0[AES_BLOCK_SIZE - 1] = 1;
		memset(r->sqe.iv, 0, sizeof(r->sqe.iv));
		r->sqe.mech = cpu_to_le16(HSM_MECH_AES_ECB);
		r->nsrc_rg = 0;
		r->src_map = 0;
		r->dst_map = 0;
		return hsm_creq_queue(r, req->base.flags);
	}

	r->sqe.mech = cpu_to_le16(HSM_MECH_AES_GCM);
	r->sqe.mparam = cpu_to_le16(authsize);
	r->sqe.aux = cpu_to_le32(aad);
	/* src = AAD || data (|| tag); rfc4106 skips the IV copy in src. */
	r->src_rg[0].off = 0;
	r->src_rg[0].len = aad;
	r->src_rg[1].off = assoclen;
	r->src_rg[1].len = req->cryptlen;
	r->nsrc_rg = 2;
	r->src_map = assoclen + req->cryptlen;
	/* dst = ciphertext || tag, or plaintext, after the AAD area. */
	r->dst_rg.off = assoclen;
	r->dst_rg.len = dlen + (encrypt ? authsize : 0);
	r->dst_map = r->dst_rg.len ? assoclen + r->dst_rg.len : 0;
	return hsm_creq_queue(r, req->base.flags);
}

static int hsm_aead_encrypt(struct aead_request *req)
{
	return hsm_aead_crypt(req, true);
}

static int hsm_aead_decrypt(struct aead_request *req)
{
	return hsm_aead_crypt(req, false);
}

struct hsm_aead_alg {
	enum hsm_cr_alg_id id;
	u16 mech;
	bool registered;
	struct aead_alg alg;
};

static int hsm_aead_init(struct crypto_aead *tfm)
{
	struct hsm_aead_alg *a = container_of(crypto_aead_alg(tfm),
					      struct hsm_aead_alg, alg);
	struct hsm_tfm_ctx *ctx = crypto_aead_ctx(tfm);
	int ret;

	ret = hsm_ctx_init(ctx, a->id, a->mech);
	if (ret)
		return ret;
	ctx->authsize = crypto_aead_alg(tfm)->maxauthsize;
	crypto_aead_set_reqsize(tfm, sizeof(struct hsm_creq));
	return 0;
}

static void hsm_aead_exit(struct crypto_aead *tfm)
{
	hsm_ctx_exit(crypto_aead_ctx(tfm));
}

#define HSM_AEAD_ALG(_id, _mech, _name, _drv, _bs, _ivs, _maxauth)	   \
	{								   \
		.id = _id,						   \
		.mech = _mech,						   \
		.alg = {						   \
			.base = {					   \
				.cra_name = _name,			   \
				.cra_driver_name = _drv,		   \
				.cra_flags = CRYPTO_ALG_ASYNC |		   \
					     CRYPTO_ALG_KERN_DRIVER_ONLY,  \
				.cra_blocksize = _bs,			   \
				.cra_ctxsize = sizeof(struct hsm_tfm_ctx), \
				.cra_module = THIS_MODULE,		   \
			},						   \
			.ivsize = _ivs,					   \
			.maxauthsize = _maxauth,			   \
			.chunksize = AES_BLOCK_SIZE,			   \
			.setkey = hsm_aead_setkey,			   \
			.setauthsize = hsm_aead_setauthsize,		   \
			.encrypt = hsm_aead_encrypt,			   \
			.decrypt = hsm_aead_decrypt,			   \
			.init = hsm_aead_init,				   \
			.exit = hsm_aead_exit,				   \
		},							   \
	}

static struct hsm_aead_alg hsm_aead_algs[] = {
	HSM_AEAD_ALG(HSM_CR_GCM, HSM_MECH_AES_GCM, "gcm(aes)",
		     "gcm-aes-hsmcard", 1, GCM_AES_IV_SIZE, AES_BLOCK_SIZE),
	HSM_AEAD_ALG(HSM_CR_RFC4106, HSM_MECH_AES_GCM, "rfc4106(gcm(aes))",
		     "rfc4106-gcm-aes-hsmcard", 1, GCM_RFC4106_IV_SIZE,
		     AES_BLOCK_SIZE),
	HSM_AEAD_ALG(HSM_CR_AUTHENC, HSM_MECH_AES_CBC_HMAC_SHA256,
		     "authenc(hmac(sha256),cbc(aes))",
		     "authenc-hmac-sha256-cbc-aes-hsmcard", AES_BLOCK_SIZE,
		     AES_BLOCK_SIZE, SHA256_DIGEST_SIZE),
};

/* ---- registration ---- */

static void hsm_cr_unregister_algs(void)
{
	unsigned int i;

	hsm_akcipher_unregister();
	hsm_ahash_unregister();
	for (i = 0; i < ARRAY_SIZE(hsm_aead_algs); i++) {
		if (hsm_aead_algs[i].registered)
			crypto_unregister_aead(&hsm_aead_algs[i].alg);
		hsm_aead_algs[i].registered = false;
	}
	for (i = 0; i < ARRAY_SIZE(hsm_skcipher_algs); i++) {
		if (hsm_skcipher_algs[i].registered)
			crypto_unregister_skcipher(&hsm_skcipher_algs[i].alg);
		hsm_skcipher_algs[i].registered = false;
	}
}

/* Register what the card supports; an algorithm that fails is skipped. */
static void hsm_cr_register_algs(struct hsm_dev *hdev)
{
	struct device *dev = &hdev->pdev->dev;
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(hsm_skcipher_algs); i++) {
		struct hsm_skcipher_alg *a = &hsm_skcipher_algs[i];

		if (!(hdev->limits.mechs & BIT_ULL(a->mech)))
			continue;
		a->alg.base.cra_priority = hsm_cr_priority(true);
		ret = crypto_register_skcipher(&a->alg);
		if (ret)
			dev_warn(dev, "registering %s failed: %d\n",
				 a->alg.base.cra_driver_name, ret);
		else
			a->registered = true;
	}
	for (i = 0; i < ARRAY_SIZE(hsm_aead_algs); i++) {
		struct hsm_aead_alg *a = &hsm_aead_algs[i];

		if (!(hdev->limits.mechs & BIT_ULL(a->mech)))
			continue;
		a->alg.base.cra_priority = hsm_cr_priority(true);
		ret = crypto_register_aead(&a->alg);
		if (ret)
			dev_warn(dev, "registering %s failed: %d\n",
				 a->alg.base.cra_driver_name, ret);
		else
			a->registered = true;
	}
	hsm_ahash_register(hdev);
	hsm_akcipher_register(hdev);
}

/**
 * hsm_cr_wait_alg() - wait for an algorithm's self-test
 * @hdev: card (for messages)
 * @drv:  driver name of an algorithm just registered
 *
 * Newer kernels run the self-tests after registration returns, and a card
 * removed while they run would make them fail: probe waits for them.
 * Looking an algorithm up by driver name waits for its test, for at most a
 * minute.  An algorithm that failed its test stays registered: the crypto
 * API never hands it out, and unregistering it here could race with a test
 * that is merely slow (the debug kernel's fuzz tests under emulation).
 *
 * Context: process context; sleeps.
 */
void hsm_cr_wait_alg(struct hsm_dev *hdev, const char *drv)
{
	if (!crypto_has_alg(drv, 0, 0))
		dev_warn(&hdev->pdev->dev,
			 "%s failed its self-test or is still being tested\n",
			 drv);
}

static void hsm_cr_wait_selftests(struct hsm_dev *hdev)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(hsm_skcipher_algs); i++) {
		struct hsm_skcipher_alg *a = &hsm_skcipher_algs[i];

		if (a->registered)
			hsm_cr_wait_alg(hdev, a->alg.base.cra_driver_name);
	}
	for (i = 0; i < ARRAY_SIZE(hsm_aead_algs); i++) {
		struct hsm_aead_alg *a = &hsm_aead_algs[i];

		if (a->registered)
			hsm_cr_wait_alg(hdev, a->alg.base.cra_driver_name);
	}
}

static int hsm_cr_stats_show(struct seq_file *m, void *v)
{
	struct hsm_card *card = m->private;
	unsigned int i;

	for (i = 0; i < HSM_CR_NR_ALGS; i++) {
		struct hsm_cr_stats *st = &card->stats[i];

		seq_printf(m, "%s requests %lld bytes %lld errors %lld backlogged %lld\n",
			   hsm_cr_driver_names[i],
			   atomic64_read(&st->requests),
			   atomic64_read(&st->bytes),
			   atomic64_read(&st->errors),
			   atomic64_read(&st->backlogged));
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(hsm_cr_stats);

static void hsm_card_free_cqs(struct hsm_card *card)
{
	struct device *dev = &card->hdev->pdev->dev;
	unsigned int i;

	for (i = 0; i < card->nr_cq; i++) {
		struct hsm_cq *cq = &card->cq[i];

		if (cq->slots)
			dma_free_coherent(dev, HSM_CR_SLOTS * sizeof(*cq->slots),
					  cq->slots, cq->slots_dma);
		cq->slots = NULL;
	}
}

/**
 * hsm_crypto_register() - offer a card to the crypto API
 * @hdev: device whose I/O queues are live
 *
 * Allocates the card's request slots, makes the card available to new
 * transforms and, for the first card, registers the algorithms (whose
 * self-tests then run on this card).
 *
 * Context: process context (probe).
 * Return: 0 or a negative errno; the card works without the crypto API.
 */
int hsm_crypto_register(struct hsm_dev *hdev)
{
	struct device *dev = &hdev->pdev->dev;
	struct hsm_card *card;
	unsigned int i;

	card = kzalloc(sizeof(*card), GFP_KERNEL);
	if (!card)
		return -ENOMEM;
	card->cq = kcalloc(hdev->nr_ioq, sizeof(*card->cq), GFP_KERNEL);
	if (!card->cq) {
		kfree(card);
		return -ENOMEM;
	}
	kref_init(&card->kref);
	kref_get(&hdev->kref);
	card->hdev = hdev;
	card->nr_cq = hdev->nr_ioq;
	for (i = 0; i < card->nr_cq; i++) {
		struct hsm_cq *cq = &card->cq[i];

		cq->card = card;
		cq->q = &hdev->ioq[i];
		spin_lock_init(&cq->lock);
		INIT_LIST_HEAD(&cq->backlog);
		INIT_WORK(&cq->work, hsm_cq_work);
		init_llist_head(&cq->done);
		tasklet_setup(&cq->done_bh, hsm_cq_done_bh);
		init_waitqueue_func_entry(&cq->wqe, hsm_cq_wake);
		cq->nslots = min_t(unsigned int, HSM_CR_SLOTS,
				   hdev->io_depth - 1);
		cq->slots = dma_alloc_coherent(dev,
					       HSM_CR_SLOTS * sizeof(*cq->slots),
					       &cq->slots_dma, GFP_KERNEL);
		if (!cq->slots) {
			hsm_card_free_cqs(card);
			hsm_card_put(card);
			return -ENOMEM;
		}
	}
	for (i = 0; i < card->nr_cq; i++)
		add_wait_queue(&card->cq[i].q->space_wq, &card->cq[i].wqe);
	card->dbg = debugfs_create_file("crypto", 0400, hdev->dbg, card,
					&hsm_cr_stats_fops);

	spin_lock(&hsm_cards_lock);
	list_add_tail(&card->node, &hsm_cards);
	spin_unlock(&hsm_cards_lock);

	mutex_lock(&hsm_cr_reg_lock);
	if (!hsm_cr_users++ && !hsm_cr_registered) {
		hsm_cr_register_algs(hdev);
		hsm_cr_registered = true;
		hsm_cr_wait_selftests(hdev);
	}
	mutex_unlock(&hsm_cr_reg_lock);
	return 0;
}

/**
 * hsm_crypto_unregister() - withdraw a card from the crypto API
 * @hdev: device; its queues are shut down and every command completed
 *
 * Fails the card's backlogged requests with -ENODEV, frees its request
 * slots and, with the last card, unregisters the algorithms.  Transforms
 * still bound to the card fail their requests with -ENODEV.  The crypto
 * API forbids unregistering an algorithm that transforms still use, so
 * when the last card goes while any transform of this driver is alive the
 * algorithms stay registered (new transforms fail with -ENODEV until a
 * card comes back) and hsm_crypto_exit() unregisters them at module
 * unload, which the transforms' module references hold off.
 *
 * Context: process context (remove).
 */
void hsm_crypto_unregister(struct hsm_dev *hdev)
{
	struct hsm_card *card = NULL, *c;
	unsigned long flags;
	unsigned int i;

	spin_lock(&hsm_cards_lock);
	list_for_each_entry(c, &hsm_cards, node) {
		if (c->hdev == hdev) {
			card = c;
			list_del(&card->node);
			break;
		}
	}
	spin_unlock(&hsm_cards_lock);
	if (!card)
		return;
	WRITE_ONCE(card->dead, true);
	debugfs_remove(card->dbg);
	card->dbg = NULL;

	for (i = 0; i < card->nr_cq; i++) {
		struct hsm_cq *cq = &card->cq[i];
		struct hsm_creq *r, *tmp;
		LIST_HEAD(failed);

		remove_wait_queue(&cq->q->space_wq, &cq->wqe);
		cancel_work_sync(&cq->work);
		/* Report what the card completed before it went away. */
		tasklet_kill(&cq->done_bh);
		/* Callbacks run as they would from the tasklet. */
		local_bh_disable();
		hsm_cq_done_bh(&cq->done_bh);
		spin_lock_irqsave(&cq->lock, flags);
		cq->dead = true;
		list_splice_init(&cq->backlog, &failed);
		spin_unlock_irqrestore(&cq->lock, flags);
		list_for_each_entry_safe(r, tmp, &failed, node) {
			list_del(&r->node);
			if (!r->notified)
				hsm_creq_complete(r, -EINPROGRESS);
			hsm_creq_complete(r, -ENODEV);
		}
		local_bh_enable();
	}

	mutex_lock(&hsm_cr_reg_lock);
	if (!--hsm_cr_users && hsm_cr_registered) {
		int live = atomic_read(&hsm_cr_live_tfms);

		if (!live) {
			hsm_cr_unregister_algs();
			hsm_cr_registered = false;
		} else {
			dev_info(&hdev->pdev->dev,
				 "%d transforms still open: algorithms stay registered until module unload\n",
				 live);
		}
	}
	mutex_unlock(&hsm_cr_reg_lock);

	hsm_card_free_cqs(card);
	hsm_card_put(card);
}

/**
 * hsm_crypto_exit() - unregister algorithms left registered at module exit
 *
 * Context: module exit, after every card is removed; no transform of this
 * module can exist then, as each holds a reference to the module.
 */
void hsm_crypto_exit(void)
{
	mutex_lock(&hsm_cr_reg_lock);
	if (hsm_cr_registered) {
		hsm_cr_unregister_algs();
		hsm_cr_registered = false;
	}
	mutex_unlock(&hsm_cr_reg_lock);
}
