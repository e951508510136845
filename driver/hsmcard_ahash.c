// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: hashes and HMAC on the card (ahash).
 *
 * sha256, sha384, sha512, hmac(sha256) and hmac(sha512).  The card keeps
 * no per-request state: the running state of a hash travels with each
 * command as a blob the card sealed (HSM_IO_HASH_UPDATE/HSM_IO_HASH_FINAL,
 * see driver/hsmcard_hw.h), so the driver can keep any number of partial
 * hashes, export them and import them again, while the HMAC key and the
 * intermediate values derived from it never leave the card in clear.
 *
 * A request context holds the blob between calls; export/import copy it.
 * init() only marks the context empty: the first command then tells the
 * card to start a new hash.  The HMAC key given to setkey becomes a
 * volatile session key of the card, like the cipher keys.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <crypto/internal/hash.h>
#include <crypto/sha2.h>
#include <linux/module.h>

#include "hsmcard_crypto.h"

/**
 * struct hsm_hash_state - what export() writes and import() reads
 * @blob:  the card's sealed state
 * @valid: @blob holds a state (else the hash has not started yet)
 * @rsvd:  zero
 */
struct hsm_hash_state {
	u8 blob[HSM_HASH_STATE_SIZE];
	u8 valid;
	u8 rsvd[7];
};

/**
 * struct hsm_hash_reqctx - request context
 * @cr: the request as the common request path sees it
 * @st: the hash state between calls
 */
struct hsm_hash_reqctx {
	struct hsm_creq cr;
	struct hsm_hash_state st;
};

struct hsm_ahash_alg {
	enum hsm_cr_alg_id id;
	u16 mech;
	bool hmac;
	bool registered;
	struct ahash_alg alg;
};

static struct hsm_ahash_alg *hsm_ahash_of(struct crypto_ahash *tfm)
{
	return container_of(__crypto_ahash_alg(crypto_ahash_tfm(tfm)->__crt_alg),
			    struct hsm_ahash_alg, alg);
}

static int hsm_ahash_init(struct ahash_request *req)
{
	struct hsm_hash_reqctx *rc = ahash_request_ctx(req);

	memset(&rc->st, 0, sizeof(rc->st));
	return 0;
}

/* Send one HASH_UPDATE (final = false) or HASH_FINAL over @len bytes. */
static int hsm_ahash_send(struct ahash_request *req, bool final,
			  unsigned int len)
{
	struct crypto_ahash *tfm = crypto_ahash_reqtfm(req);
	struct hsm_tfm_ctx *ctx = crypto_ahash_ctx(tfm);
	struct hsm_hash_reqctx *rc = ahash_request_ctx(req);
	struct hsm_creq *r = &rc->cr;

	if (len > ctx->card->hdev->limits.max_xfer)
		return -EINVAL;
	if (hsm_ahash_of(tfm)->hmac && !ctx->handle)
		return -ENOKEY;

	hsm_creq_prep(r, HSM_CR_AHASH, req, ctx,
		      final ? HSM_IO_HASH_FINAL : HSM_IO_HASH_UPDATE,
		      ctx->mech, len ? req->src : NULL, len, NULL, 0, 0);
	r->hstate = rc->st.blob;
	r->hvalid = &rc->st.valid;
	r->hresult = final ? req->result : NULL;
	r->hsize = crypto_ahash_digestsize(tfm);
	return hsm_creq_queue(r, req->base.flags);
}

static int hsm_ahash_update(struct ahash_request *req)
{
	if (!req->nbytes)
		return 0;
	return hsm_ahash_send(req, false, req->nbytes);
}

static int hsm_ahash_final(struct ahash_request *req)
{
	return hsm_ahash_send(req, true, 0);
}

static int hsm_ahash_finup(struct ahash_request *req)
{
	return hsm_ahash_send(req, true, req->nbytes);
}

static int hsm_ahash_digest(struct ahash_request *req)
{
	hsm_ahash_init(req);
	return hsm_ahash_send(req, true, req->nbytes);
}

static int hsm_ahash_export(struct ahash_request *req, void *out)
{
	struct hsm_hash_reqctx *rc = ahash_request_ctx(req);

	memcpy(out, &rc->st, sizeof(rc->st));
	return 0;
}

static int hsm_ahash_import(struct ahash_request *req, const void *in)
{
	struct hsm_hash_reqctx *rc = ahash_request_ctx(req);
	struct hsm_hash_state st;

	/* The card checks the blob itself when it is used. */
	memcpy(&st, in, sizeof(st));
	if (st.valid > 1 || memchr_inv(st.rsvd, 0, sizeof(st.rsvd)))
		return -EINVAL;
	rc->st = st;
	return 0;
}

/**
 * hsm_ahash_finish() - finish a hash command the card completed
 * @r:   the request
 * @err: its result
 *
 * Copies the new state (update) or the digest (final) out of the request
 * slot before the slot is reused.
 *
 * Context: softirq (the queue's completion tasklet).
 */
void hsm_ahash_finish(struct hsm_creq *r, int err)
{
	struct hsm_cr_slot *slot = &r->cq->slots[r->slot];

	if (err)
		return;
	if (r->sqe.opcode == HSM_IO_HASH_FINAL) {
		memcpy(r->hresult, slot->h.digest, r->hsize);
		/* The request may be used again without init(). */
		*r->hvalid = false;
		memzero_explicit(r->hstate, HSM_HASH_STATE_SIZE);
	} else {
		memcpy(r->hstate, slot->h.state, HSM_HASH_STATE_SIZE);
		*r->hvalid = true;
	}
}

static int hsm_ahash_setkey(struct crypto_ahash *tfm, const u8 *key,
			    unsigned int keylen)
{
	struct hsm_tfm_ctx *ctx = crypto_ahash_ctx(tfm);

	if (keylen > HSM_HMAC_IMPORT_MAX)
		return -EINVAL;
	return hsm_ctx_import_key(ctx, HSM_KEY_HMAC, HSM_USE_SIGN, NULL, 0,
				  key, keylen);
}

static int hsm_ahash_init_tfm(struct crypto_ahash *tfm)
{
	struct hsm_ahash_alg *a = hsm_ahash_of(tfm);
	int ret;

	ret = hsm_ctx_init(crypto_ahash_ctx(tfm), a->id, a->mech);
	if (ret)
		return ret;
	crypto_ahash_set_reqsize(tfm, sizeof(struct hsm_hash_reqctx));
	return 0;
}

static void hsm_ahash_exit_tfm(struct crypto_ahash *tfm)
{
	hsm_ctx_exit(crypto_ahash_ctx(tfm));
}

#define HSM_AHASH_ALG(_id, _mech, _hmac, _setkey, _name, _drv, _ds, _bs)		 \
	{								 \
		.id = _id,						 \
		.mech = _mech,						 \
		.hmac = _hmac,						 \
		.alg = {						 \
			.init = hsm_ahash_init,				 \
			.update = hsm_ahash_update,			 \
			.final = hsm_ahash_final,			 \
			.finup = hsm_ahash_finup,			 \
			.digest = hsm_ahash_digest,			 \
			.export = hsm_ahash_export,			 \
			.import = hsm_ahash_import,			 \
			.setkey = _setkey,				 \
			.init_tfm = hsm_ahash_init_tfm,			 \
			.exit_tfm = hsm_ahash_exit_tfm,			 \
			.halg = {					 \
				.digestsize = _ds,			 \
				.statesize =				 \
					sizeof(struct hsm_hash_state),	 \
				.base = {				 \
					.cra_name = _name,		 \
					.cra_driver_name = _drv,	 \
					.cra_flags = CRYPTO_ALG_ASYNC |	 \
						CRYPTO_ALG_KERN_DRIVER_ONLY, \
					.cra_blocksize = _bs,		 \
					.cra_ctxsize =			 \
					    sizeof(struct hsm_tfm_ctx),	 \
					.cra_module = THIS_MODULE,	 \
				},					 \
			},						 \
		},							 \
	}

static struct hsm_ahash_alg hsm_ahash_algs[] = {
	HSM_AHASH_ALG(HSM_CR_SHA256, HSM_MECH_SHA256, false, NULL, "sha256",
		      "sha256-hsmcard", SHA256_DIGEST_SIZE,
		      SHA256_BLOCK_SIZE),
	HSM_AHASH_ALG(HSM_CR_SHA384, HSM_MECH_SHA384, false, NULL, "sha384",
		      "sha384-hsmcard", SHA384_DIGEST_SIZE,
		      SHA384_BLOCK_SIZE),
	HSM_AHASH_ALG(HSM_CR_SHA512, HSM_MECH_SHA512, false, NULL, "sha512",
		      "sha512-hsmcard", SHA512_DIGEST_SIZE,
		      SHA512_BLOCK_SIZE),
	HSM_AHASH_ALG(HSM_CR_HMAC_SHA256, HSM_MECH_HMAC_SHA256, true,
		      hsm_ahash_setkey,
		      "hmac(sha256)", "hmac-sha256-hsmcard",
		      SHA256_DIGEST_SIZE, SHA256_BLOCK_SIZE),
	HSM_AHASH_ALG(HSM_CR_HMAC_SHA512, HSM_MECH_HMAC_SHA512, true,
		      hsm_ahash_setkey,
		      "hmac(sha512)", "hmac-sha512-hsmcard",
		      SHA512_DIGEST_SIZE, SHA512_BLOCK_SIZE),
};

/**
 * hsm_ahash_register() - register the hashes the card supports
 * @hdev: the first card
 *
 * Waits for each algorithm's self-test and withdraws one that fails.
 *
 * Context: process context, registration lock held.
 */
void hsm_ahash_register(struct hsm_dev *hdev)
{
	struct device *dev = &hdev->pdev->dev;
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(hsm_ahash_algs); i++) {
		struct hsm_ahash_alg *a = &hsm_ahash_algs[i];

		if (!(hdev->limits.mechs & BIT_ULL(a->mech)))
			continue;
		a->alg.halg.base.cra_priority = hsm_cr_priority(false);
		ret = crypto_register_ahash(&a->alg);
		if (ret) {
			dev_warn(dev, "registering %s failed: %d\n",
				 a->alg.halg.base.cra_driver_name, ret);
			continue;
		}
		a->registered = true;
	}
	for (i = 0; i < ARRAY_SIZE(hsm_ahash_algs); i++) {
		struct hsm_ahash_alg *a = &hsm_ahash_algs[i];

		if (a->registered)
			hsm_cr_wait_alg(hdev, a->alg.halg.base.cra_driver_name);
	}
}

/**
 * hsm_ahash_unregister() - unregister the hashes (last card gone)
 *
 * Context: process context, registration lock held.
 */
void hsm_ahash_unregister(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(hsm_ahash_algs); i++) {
		if (hsm_ahash_algs[i].registered)
			crypto_unregister_ahash(&hsm_ahash_algs[i].alg);
		hsm_ahash_algs[i].registered = false;
	}
}
