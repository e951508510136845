// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: raw RSA on the card (akcipher "rsa").
 *
 * The kernel's templates (pkcs1pad, and through it the signature code)
 * build on "rsa", the bare modular exponentiation.  set_pub_key and
 * set_priv_key receive the kernel's BER RSAPublicKey / RSAPrivateKey,
 * which the card imports as a volatile session key of the kernel
 * partition; the private exponent never stays in kernel memory.  encrypt
 * is m^e mod n, decrypt c^d mod n, both HSM_MECH_RSA_RAW on the card.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <crypto/internal/akcipher.h>
#include <linux/module.h>

#include "hsmcard_crypto.h"

/* The sizes the card imports (and the kernel's own rsa accepts). */
#define HSM_RSA_MIN_BITS	512
#define HSM_RSA_MAX_BITS	4096

static struct hsm_tfm_ctx *hsm_rsa_ctx(struct crypto_akcipher *tfm)
{
	return akcipher_tfm_ctx(tfm);
}

static int hsm_rsa_setkey(struct crypto_akcipher *tfm, const void *key,
			  unsigned int keylen, bool private)
{
	struct hsm_tfm_ctx *ctx = hsm_rsa_ctx(tfm);
	unsigned int bits = 0;
	u32 uses = HSM_USE_ENCRYPT;
	int ret;

	ctx->rsa_size = 0;
	if (private)
		uses |= HSM_USE_DECRYPT;
	ret = hsm_ctx_import_key(ctx, HSM_KEY_RSA, uses, NULL, 0, key,
				 keylen);
	if (ret)
		return ret == -EKEYREJECTED ? -EINVAL : ret;
	ret = hsm_key_bits(ctx->card, ctx->handle, &bits);
	if (!ret && (bits < HSM_RSA_MIN_BITS || bits > HSM_RSA_MAX_BITS)) {
		dev_err_ratelimited(&ctx->card->hdev->pdev->dev,
				    "card reports a %u-bit RSA key\n", bits);
		ret = -EIO;
	}
	if (ret) {
		hsm_ctx_drop_key(ctx);
		return ret;
	}
	ctx->rsa_size = DIV_ROUND_UP(bits, 8);
	return 0;
}

static int hsm_rsa_set_pub_key(struct crypto_akcipher *tfm, const void *key,
			       unsigned int keylen)
{
	return hsm_rsa_setkey(tfm, key, keylen, false);
}

static int hsm_rsa_set_priv_key(struct crypto_akcipher *tfm, const void *key,
				unsigned int keylen)
{
	return hsm_rsa_setkey(tfm, key, keylen, true);
}

static unsigned int hsm_rsa_max_size(struct crypto_akcipher *tfm)
{
	return hsm_rsa_ctx(tfm)->rsa_size;
}

static int hsm_rsa_crypt(struct akcipher_request *req, bool encrypt)
{
	struct crypto_akcipher *tfm = crypto_akcipher_reqtfm(req);
	struct hsm_tfm_ctx *ctx = hsm_rsa_ctx(tfm);
	struct hsm_creq *r = akcipher_request_ctx(req);
	unsigned int k = ctx->rsa_size;

	if (!ctx->handle || !k)
		return -EINVAL;
	if (req->dst_len < k) {
		req->dst_len = k;
		return -EOVERFLOW;
	}
	if (!req->src_len || req->src_len > k || !req->dst)
		return -EINVAL;

	hsm_creq_prep(r, HSM_CR_AKCIPHER, req, ctx,
		      encrypt ? HSM_IO_ENCRYPT : HSM_IO_DECRYPT,
		      HSM_MECH_RSA_RAW, req->src, req->src_len, req->dst, 0, k);
	return hsm_creq_queue(r, req->base.flags);
}

static int hsm_rsa_encrypt(struct akcipher_request *req)
{
	return hsm_rsa_crypt(req, true);
}

static int hsm_rsa_decrypt(struct akcipher_request *req)
{
	return hsm_rsa_crypt(req, false);
}

/**
 * hsm_akcipher_finish() - finish an RSA command the card completed
 * @r:   the request
 * @err: its result
 *
 * Context: softirq (the queue's completion tasklet).
 */
void hsm_akcipher_finish(struct hsm_creq *r, int err)
{
	struct akcipher_request *req = r->areq;

	if (!err)
		req->dst_len = r->ctx->rsa_size;
}

static int hsm_rsa_init(struct crypto_akcipher *tfm)
{
	int ret;

	ret = hsm_ctx_init(hsm_rsa_ctx(tfm), HSM_CR_RSA, HSM_MECH_RSA_RAW);
	if (ret)
		return ret;
	akcipher_set_reqsize(tfm, sizeof(struct hsm_creq));
	return 0;
}

static void hsm_rsa_exit(struct crypto_akcipher *tfm)
{
	hsm_ctx_exit(hsm_rsa_ctx(tfm));
}

static struct akcipher_alg hsm_rsa_alg = {
	.encrypt = hsm_rsa_encrypt,
	.decrypt = hsm_rsa_decrypt,
	.set_pub_key = hsm_rsa_set_pub_key,
	.set_priv_key = hsm_rsa_set_priv_key,
	.max_size = hsm_rsa_max_size,
	.init = hsm_rsa_init,
	.exit = hsm_rsa_exit,
	.base = {
		.cra_name = "rsa",
		.cra_driver_name = "rsa-hsmcard",
		.cra_flags = CRYPTO_ALG_ASYNC | CRYPTO_ALG_KERN_DRIVER_ONLY,
		.cra_ctxsize = sizeof(struct hsm_tfm_ctx),
		.cra_module = THIS_MODULE,
	},
};

static bool hsm_rsa_registered;

/**
 * hsm_akcipher_register() - register rsa if the card supports it
 * @hdev: the first card
 *
 * Waits for the self-test and withdraws the algorithm if it fails.
 *
 * Context: process context, registration lock held.
 */
void hsm_akcipher_register(struct hsm_dev *hdev)
{
	int ret;

	if (!(hdev->limits.mechs & BIT_ULL(HSM_MECH_RSA_RAW)))
		return;
	hsm_rsa_alg.base.cra_priority = hsm_cr_priority(false);
	ret = crypto_register_akcipher(&hsm_rsa_alg);
	if (ret) {
		dev_warn(&hdev->pdev->dev, "registering rsa-hsmcard failed: %d\n",
			 ret);
		return;
	}
	hsm_rsa_registered = true;
	hsm_cr_wait_alg(hdev, hsm_rsa_alg.base.cra_driver_name);
}

/**
 * hsm_akcipher_unregister() - unregister rsa (last card gone)
 *
 * Context: process context, registration lock held.
 */
void hsm_akcipher_unregister(void)
{
	if (hsm_rsa_registered)
		crypto_unregister_akcipher(&hsm_rsa_alg);
	hsm_rsa_registered = false;
}
