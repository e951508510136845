// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: the crypto commands of the I/O queues.
 *
 * Every command follows the same order, so that a bad command fails with
 * the first applicable status and before any data is moved:
 *   reserved fields -> mechanism -> key handle -> key type -> key use ->
 *   key size -> lengths -> destination capacity -> DMA in -> crypto ->
 *   DMA out.
 * Data goes through one bounce buffer per command; nothing is written to
 * the destination unless the operation (tag check included) succeeded.
 * Bounce buffers only ever hold data the host gave or gets back, never key
 * material, so they are freed without wiping.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>

#include "hsm_fw_int.h"

#define HSM_AES_BLOCK		16
#define HSM_GCM_NONCE		12
#define HSM_GCM_TAG_MIN		4
#define HSM_GCM_TAG_MAX		16
#define HSM_PKCS1_DIGESTINFO	19	/* DER prefix of a SHA-2 digest */
#define HSM_PKCS1_MIN_PAD	11

int hsm_hash_index(uint16_t mech)
{
	switch (mech) {
	case HSM_MECH_SHA256:
	case HSM_MECH_HMAC_SHA256:
		return HSM_HASH_SHA256;
	case HSM_MECH_SHA384:
	case HSM_MECH_HMAC_SHA384:
		return HSM_HASH_SHA384;
	case HSM_MECH_SHA512:
	case HSM_MECH_HMAC_SHA512:
		return HSM_HASH_SHA512;
	}
	return -1;
}

int hsm_aes_index(unsigned int key_bytes)
{
	switch (key_bytes) {
	case 16:
		return 0;
	case 24:
		return 1;
	case 32:
		return 2;
	}
	return -1;
}

static bool hsm_is_zero(const uint8_t *p, size_t len)
{
	while (len--)
		if (*p++)
			return false;
	return true;
}

/* Take the command's key and check its type and use. */
static uint16_t hsm_cmd_key(struct hsm_cmd *c, uint16_t type,
			    uint16_t type2, uint32_t use, struct hsm_key **kp)
{
	struct hsm_key *k;
	uint16_t st;

	st = hsm_key_get(c->fw, c->handle, &k);
	if (st)
		return st;
	if (k->type != type && k->type != type2)
		st = HSM_SC_KEY_TYPE;
	else
		st = hsm_key_use(k, use);
	if (st) {
		hsm_key_put(k);
		return st;
	}
	*kp = k;
	return HSM_SC_SUCCESS;
}

/* Parse src and dst and read all of src into a new bounce buffer. */
static uint16_t hsm_cmd_io_begin(struct hsm_cmd *c, struct hsm_xbuf *src,
				 struct hsm_xbuf *dst, unsigned char **in)
{
	uint16_t st;

	*in = NULL;
	st = hsm_xbuf_src(c, src);
	if (!st)
		st = hsm_xbuf_dst(c, dst);
	if (st)
		return st;
	*in = malloc(c->src_len ? c->src_len : 1);
	if (!*in)
		return HSM_SC_INTERNAL;
	return hsm_xbuf_read(src, *in, c->src_len);
}

/* ---- AES ---- */

static uint16_t hsm_aes_select(struct hsm_cmd *c, const struct hsm_key *k,
			       EVP_CIPHER **cipher)
{
	struct hsm_fw *fw = c->fw;
	int idx;

	if (c->mech == HSM_MECH_AES_XTS) {
		if (k->secret_len != 32 && k->secret_len != 64)
			return HSM_SC_INVALID_KEY_SIZE;
		*cipher = fw->aes_xts[k->secret_len == 64];
		return HSM_SC_SUCCESS;
	}
	idx = hsm_aes_index(k->secret_len);
	if (idx < 0)
		return HSM_SC_INVALID_KEY_SIZE;
	switch (c->mech) {
	case HSM_MECH_AES_ECB:
		*cipher = fw->aes_ecb[idx];
		break;
	case HSM_MECH_AES_CBC:
		*cipher = fw->aes_cbc[idx];
		break;
	case HSM_MECH_AES_CTR:
		*cipher = fw->aes_ctr[idx];
		break;
	default:
		*cipher = fw->aes_gcm[idx];
		break;
	}
	return HSM_SC_SUCCESS;
}

/*
 * Lengths of an AES command: @dlen bytes of data after @aad bytes of AAD
 * in src, @outlen bytes of dst.
 */
static uint16_t hsm_aes_lengths(const struct hsm_cmd *c, bool encrypt,
				size_t taglen, size_t *aad, size_t *dlen,
				size_t *outlen)
{
	size_t len = c->src_len;

	if (!len || len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	*aad = 0;
	switch (c->mech) {
	case HSM_MECH_AES_ECB:
	case HSM_MECH_AES_CBC:
		if (len % HSM_AES_BLOCK)
			return HSM_SC_INVALID_LENGTH;
		break;
	case HSM_MECH_AES_XTS:
		if (len < HSM_AES_BLOCK)
			return HSM_SC_INVALID_LENGTH;
		break;
	case HSM_MECH_AES_GCM:
		*aad = c->aux;
		if (*aad > len || (!encrypt && len - *aad < taglen))
			return HSM_SC_INVALID_LENGTH;
		*dlen = len - *aad - (encrypt ? 0 : taglen);
		*outlen = *dlen + (encrypt ? taglen : 0);
		return HSM_SC_SUCCESS;
	}
	*dlen = len;
	*outlen = len;
	return HSM_SC_SUCCESS;
}

static uint16_t hsm_aes_run(struct hsm_cmd *c, const struct hsm_key *k,
			    EVP_CIPHER *cipher, bool encrypt,
			    const unsigned char *in, size_t aad, size_t dlen,
			    size_t taglen, unsigned char *out)
{
	bool gcm = c->mech == HSM_MECH_AES_GCM;
	EVP_CIPHER_CTX *ctx;
	uint16_t st = HSM_SC_INTERNAL;
	int n = 0, fin = 0;

	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return HSM_SC_INTERNAL;
	/* XTS also refuses equal key halves here (imported 256-bit keys) */
	if (!EVP_CipherInit_ex2(ctx, cipher, k->secret,
				c->mech == HSM_MECH_AES_ECB ? NULL : c->iv,
				encrypt, NULL)) {
		st = c->mech == HSM_MECH_AES_XTS ? HSM_SC_KEY_TYPE :
						   HSM_SC_INTERNAL;
		goto out;
	}
	if ((c->mech == HSM_MECH_AES_ECB || c->mech == HSM_MECH_AES_CBC) &&
	    !EVP_CIPHER_CTX_set_padding(ctx, 0))
		goto out;
	if (gcm && aad && !EVP_CipherUpdate(ctx, NULL, &n, in, (int)aad))
		goto out;
	if (dlen && !EVP_CipherUpdate(ctx, out, &n, in + aad, (int)dlen))
		goto out;
	if (gcm && !encrypt &&
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)taglen,
				 (void *)(in + aad + dlen)))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, out + n, &fin)) {
		st = gcm ? HSM_SC_VERIFY_FAILED : HSM_SC_INTERNAL;
		goto out;
	}
	if (gcm && encrypt &&
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)taglen,
				 out + dlen))
		goto out;
	st = HSM_SC_SUCCESS;
out:
	EVP_CIPHER_CTX_free(ctx);
	return st;
}

static uint16_t hsm_io_aes(struct hsm_cmd *c, bool encrypt)
{
	bool gcm = c->mech == HSM_MECH_AES_GCM;
	size_t aad = 0, dlen = 0, outlen = 0, taglen = 0;
	struct hsm_xbuf src, dst;
	unsigned char *in = NULL, *out = NULL;
	EVP_CIPHER *cipher = NULL;
	struct hsm_key *k;
	uint16_t st;

	/* only GCM takes a tag length and AAD; ECB has no IV */
	if (!gcm && (c->mparam || c->aux))
		return HSM_SC_INVALID_FIELD;
	if (c->mech == HSM_MECH_AES_ECB && !hsm_is_zero(c->iv, sizeof(c->iv)))
		return HSM_SC_INVALID_FIELD;
	if (gcm) {
		taglen = c->mparam ? c->mparam : HSM_GCM_TAG_MAX;
		if (taglen < HSM_GCM_TAG_MIN || taglen > HSM_GCM_TAG_MAX ||
		    !hsm_is_zero(c->iv + HSM_GCM_NONCE,
				 sizeof(c->iv) - HSM_GCM_NONCE))
			return HSM_SC_INVALID_FIELD;
	}
	st = hsm_cmd_key(c, HSM_KEY_AES, HSM_KEY_AES,
			 encrypt ? HSM_USE_ENCRYPT : HSM_USE_DECRYPT, &k);
	if (st)
		return st;
	st = hsm_aes_select(c, k, &cipher);
	if (!st)
		st = hsm_aes_lengths(c, encrypt, taglen, &aad, &dlen, &outlen);
	if (st)
		goto out;
	if (c->dst_len < outlen) {
		c->result = outlen;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_cmd_io_begin(c, &src, &dst, &in);
	if (st)
		goto out;
	out = malloc(outlen + HSM_AES_BLOCK);
	if (!out) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_aes_run(c, k, cipher, encrypt, in, aad, dlen, taglen, out);
	if (!st)
		st = hsm_xbuf_write(&dst, out, outlen);
	if (!st)
		c->result = outlen;
out:
	free(in);
	free(out);
	hsm_key_put(k);
	return st;
}

/* ---- RSA encryption ---- */

static uint16_t hsm_rsa_ctx(struct hsm_cmd *c, const struct hsm_key *k,
			    bool encrypt, EVP_PKEY_CTX **ctxp)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (!ctx)
		return HSM_SC_INTERNAL;
	ok = encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx);
	if (ok > 0 && c->mech == HSM_MECH_RSA_RAW) {
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING);
	} else if (ok > 0) {
		EVP_MD *md = c->fw->md[hsm_hash_index(c->mparam)];

		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
	}
	if (ok <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return HSM_SC_INTERNAL;
	}
	*ctxp = ctx;
	return HSM_SC_SUCCESS;
}

static uint16_t hsm_io_rsa_crypt(struct hsm_cmd *c, bool encrypt)
{
	bool raw = c->mech == HSM_MECH_RSA_RAW;
	unsigned char *in = NULL, *out = NULL;
	struct hsm_xbuf src, dst;
	EVP_PKEY_CTX *ctx = NULL;
	size_t mod = 0, outlen, inlen;
	struct hsm_key *k;
	uint16_t st;
	int hidx = -1;

	if (c->aux || !hsm_is_zero(c->iv, sizeof(c->iv)))
		return HSM_SC_INVALID_FIELD;
	if (raw ? c->mparam != 0 :
		  (c->mparam < HSM_MECH_SHA256 || c->mparam > HSM_MECH_SHA512))
		return HSM_SC_INVALID_FIELD;
	if (!raw)
		hidx = hsm_hash_index(c->mparam);
	st = hsm_cmd_key(c, HSM_KEY_RSA, HSM_KEY_RSA,
			 encrypt ? HSM_USE_ENCRYPT : HSM_USE_DECRYPT, &k);
	if (st)
		return st;
	mod = EVP_PKEY_get_size(k->pkey);
	if (!c->src_len ||
	    (raw ? c->src_len > mod :
	     !encrypt ? c->src_len != mod :
	     c->src_len + 2 * EVP_MD_get_size(c->fw->md[hidx]) + 2 > mod)) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	/* OAEP decryption: the exact size is known once decrypted */
	if ((raw || encrypt) && c->dst_len < mod) {
		c->result = mod;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_cmd_io_begin(c, &src, &dst, &in);
	if (st)
		goto out;
	out = malloc(mod);
	if (!out) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	inlen = c->src_len;
	if (raw) {
		/* a big-endian integer of 1..k bytes, below the modulus */
		memset(out, 0, mod - inlen);
		memcpy(out + mod - inlen, in, inlen);
		if (memcmp(out, k->mod, mod) >= 0) {
			st = HSM_SC_INVALID_FIELD;
			goto out;
		}
		free(in);
		in = out;
		out = malloc(mod);
		inlen = mod;
		if (!out) {
			st = HSM_SC_INTERNAL;
			goto out;
		}
	}
	st = hsm_rsa_ctx(c, k, encrypt, &ctx);
	if (st)
		goto out;
	outlen = mod;
	if ((encrypt ? EVP_PKEY_encrypt(ctx, out, &outlen, in, inlen) :
		       EVP_PKEY_decrypt(ctx, out, &outlen, in, inlen)) <= 0) {
		/* raw public op on a value >= n, or bad OAEP padding */
		st = encrypt ? HSM_SC_INVALID_FIELD : HSM_SC_DECRYPT_FAILED;
		goto out;
	}
	if (raw && outlen < mod) {
		/* always k bytes, left-padded */
		memmove(out + mod - outlen, out, outlen);
		memset(out, 0, mod - outlen);
		outlen = mod;
	}
	if (c->dst_len < outlen) {
		c->result = outlen;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_xbuf_write(&dst, out, outlen);
	if (!st)
		c->result = outlen;
out:
	EVP_PKEY_CTX_free(ctx);
	free(in);
	free(out);
	hsm_key_put(k);
	return st;
}

/* ---- AES-CBC + HMAC-SHA-256 (encrypt-then-MAC, authenc) ---- */

#define HSM_AUTHENC_TAG_MAX	32

/* HMAC-SHA-256 over AAD || ciphertext with the key's MAC half. */
static void hsm_authenc_tag(const struct hsm_key *k, const unsigned char *aad,
			    size_t aadlen, const unsigned char *ct,
			    size_t ctlen, unsigned char *tag)
{
	/* AAD and ciphertext are not adjacent when encrypting */
	if (aad + aadlen == ct) {
		hsm_hmac_oneshot(k->pads, HSM_HASH_SHA256, aad, aadlen + ctlen,
				 tag);
		return;
	}
	hsm_hmac_two(k->pads, HSM_HASH_SHA256, aad, aadlen, ct, ctlen, tag);
}

static uint16_t hsm_cbc_run(struct hsm_fw *fw, const struct hsm_key *k,
			    const uint8_t *iv, bool encrypt,
			    const unsigned char *in, size_t len,
			    unsigned char *out)
{
	EVP_CIPHER_CTX *ctx;
	uint16_t st = HSM_SC_INTERNAL;
	int n = 0, fin = 0;

	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return HSM_SC_INTERNAL;
	if (EVP_CipherInit_ex2(ctx, fw->aes_cbc[hsm_aes_index(k->enc_len)],
			       k->secret, iv, encrypt, NULL) &&
	    EVP_CIPHER_CTX_set_padding(ctx, 0) &&
	    (!len || EVP_CipherUpdate(ctx, out, &n, in, (int)len)) &&
	    EVP_CipherFinal_ex(ctx, out + n, &fin))
		st = HSM_SC_SUCCESS;
	EVP_CIPHER_CTX_free(ctx);
	return st;
}

/*
 * HSM_MECH_AES_CBC_HMAC_SHA256: iv = CBC IV, aux = AAD length, mparam =
 * tag length 0..32.  Encrypt: src = AAD || plaintext, dst = ciphertext ||
 * tag.  Decrypt: src = AAD || ciphertext || tag, dst = plaintext; the tag
 * is checked (constant time) before anything is decrypted or written.
 */
static uint16_t hsm_io_authenc(struct hsm_cmd *c, bool encrypt)
{
	unsigned char tag[HSM_AUTHENC_TAG_MAX], *in = NULL, *out = NULL;
	size_t taglen = c->mparam, aad = c->aux, dlen, outlen;
	struct hsm_xbuf src, dst;
	struct hsm_key *k;
	uint16_t st;

	if (taglen > HSM_AUTHENC_TAG_MAX)
		return HSM_SC_INVALID_FIELD;
	st = hsm_cmd_key(c, HSM_KEY_AUTHENC, HSM_KEY_AUTHENC,
			 encrypt ? HSM_USE_ENCRYPT : HSM_USE_DECRYPT, &k);
	if (st)
		return st;
	if (c->src_len > HSM_FW_MAX_XFER || aad > c->src_len ||
	    (!encrypt && c->src_len - aad < taglen)) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	dlen = c->src_len - aad - (encrypt ? 0 : taglen);
	outlen = dlen + (encrypt ? taglen : 0);
	if (dlen % HSM_AES_BLOCK || outlen > HSM_FW_MAX_XFER) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (c->dst_len < outlen) {
		c->result = outlen;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_cmd_io_begin(c, &src, &dst, &in);
	if (st)
		goto out;
	out = malloc(outlen ? outlen : 1);
	if (!out) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	if (encrypt) {
		st = hsm_cbc_run(c->fw, k, c->iv, true, in + aad, dlen, out);
		if (st)
			goto out;
		hsm_authenc_tag(k, in, aad, out, dlen, tag);
		memcpy(out + dlen, tag, taglen);
	} else {
		hsm_authenc_tag(k, in, aad, in + aad, dlen, tag);
		if (CRYPTO_memcmp(tag, in + aad + dlen, taglen)) {
			st = HSM_SC_VERIFY_FAILED;
			goto out;
		}
		st = hsm_cbc_run(c->fw, k, c->iv, false, in + aad, dlen, out);
		if (st)
			goto out;
	}
	st = hsm_xbuf_write(&dst, out, outlen);
	if (!st)
		c->result = outlen;
out:
	OPENSSL_cleanse(tag, sizeof(tag));
	free(in);
	free(out);
	hsm_key_put(k);
	return st;
}

/*
 * ENCRYPT / DECRYPT: handle = key, mech = AES_* or RSA_OAEP/RSA_RAW,
 * src -> dst, iv per mode, GCM: mparam = tag length, aux = AAD length.
 */
uint16_t hsm_io_cipher(struct hsm_cmd *c, bool encrypt)
{
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_MECH | HSM_F_MPARAM | HSM_F_HANDLE |
				  HSM_F_SRC | HSM_F_DST | HSM_F_AUX |
				  HSM_F_IV);
	if (st)
		return st;
	switch (c->mech) {
	case HSM_MECH_AES_ECB:
	case HSM_MECH_AES_CBC:
	case HSM_MECH_AES_CTR:
	case HSM_MECH_AES_XTS:
	case HSM_MECH_AES_GCM:
		return hsm_io_aes(c, encrypt);
	case HSM_MECH_RSA_OAEP:
	case HSM_MECH_RSA_RAW:
		return hsm_io_rsa_crypt(c, encrypt);
	case HSM_MECH_AES_CBC_HMAC_SHA256:
		return hsm_io_authenc(c, encrypt);
	}
	return HSM_SC_INVALID_MECH;
}

/* ---- digests and HMAC ---- */

/* DIGEST: mech = SHA*, src (may be empty) -> dst = digest. */
uint16_t hsm_io_digest(struct hsm_cmd *c)
{
	unsigned char md[EVP_MAX_MD_SIZE], *in = NULL;
	struct hsm_xbuf src, dst;
	unsigned int mdlen = 0;
	uint16_t st;
	int idx;

	st = hsm_cmd_check_fields(c, HSM_F_MECH | HSM_F_SRC | HSM_F_DST);
	if (st)
		return st;
	if (c->mech < HSM_MECH_SHA256 || c->mech > HSM_MECH_SHA512)
		return HSM_SC_INVALID_MECH;
	idx = hsm_hash_index(c->mech);
	if (c->src_len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	if (c->dst_len < (uint32_t)EVP_MD_get_size(c->fw->md[idx])) {
		c->result = EVP_MD_get_size(c->fw->md[idx]);
		return HSM_SC_BUFFER_TOO_SMALL;
	}
	st = hsm_cmd_io_begin(c, &src, &dst, &in);
	if (!st && !EVP_Digest(in, c->src_len, md, &mdlen, c->fw->md[idx],
			       NULL))
		st = HSM_SC_INTERNAL;
	if (!st)
		st = hsm_xbuf_write(&dst, md, mdlen);
	if (!st)
		c->result = mdlen;
	free(in);
	return st;
}

/*
 * MAC: handle = HMAC key (USE_SIGN), mech = HMAC_*, src -> dst = MAC.
 * MAC_VERIFY: USE_VERIFY; dst holds the expected MAC (input), which may be
 * truncated to no less than half the digest size; compared in constant
 * time.
 */
uint16_t hsm_io_mac(struct hsm_cmd *c, bool verify)
{
	unsigned char mac[EVP_MAX_MD_SIZE], expect[EVP_MAX_MD_SIZE];
	unsigned char *in = NULL;
	struct hsm_xbuf src, dst;
	struct hsm_key *k;
	size_t maclen, mdsize;
	uint16_t st;
	int idx;

	st = hsm_cmd_check_fields(c, HSM_F_MECH | HSM_F_HANDLE | HSM_F_SRC |
				  HSM_F_DST);
	if (st)
		return st;
	if (c->mech < HSM_MECH_HMAC_SHA256 || c->mech > HSM_MECH_HMAC_SHA512)
		return HSM_SC_INVALID_MECH;
	idx = hsm_hash_index(c->mech);
	mdsize = EVP_MD_get_size(c->fw->md[idx]);
	st = hsm_cmd_key(c, HSM_KEY_HMAC, HSM_KEY_HMAC,
			 verify ? HSM_USE_VERIFY : HSM_USE_SIGN, &k);
	if (st)
		return st;
	if (!c->src_len || c->src_len > HSM_FW_MAX_XFER ||
	    (verify && (c->dst_len < mdsize / 2 || c->dst_len > mdsize))) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (!verify && c->dst_len < mdsize) {
		c->result = mdsize;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_cmd_io_begin(c, &src, &dst, &in);
	if (st)
		goto out;
	hsm_hmac_oneshot(k->pads, idx, in, c->src_len, mac);
	maclen = mdsize;
	if (verify) {
		st = hsm_xbuf_read(&dst, expect, c->dst_len);
		if (!st && CRYPTO_memcmp(expect, mac, c->dst_len))
			st = HSM_SC_VERIFY_FAILED;
	} else {
		st = hsm_xbuf_write(&dst, mac, maclen);
		if (!st)
			c->result = maclen;
	}
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(in);
	hsm_key_put(k);
	return st;
}

/* ---- signatures ---- */

static uint16_t hsm_pkey_sign_ctx(struct hsm_cmd *c, const struct hsm_key *k,
				  bool verify, EVP_MD *md, EVP_PKEY_CTX **ctxp)
{
	EVP_PKEY_CTX *ctx;
	bool ok;

	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (!ctx)
		return HSM_SC_INTERNAL;
	ok = (verify ? EVP_PKEY_verify_init(ctx) : EVP_PKEY_sign_init(ctx)) > 0;
	if (ok && c->mech == HSM_MECH_RSA_PKCS1)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
	if (ok && c->mech == HSM_MECH_RSA_PSS)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)c->aux) > 0 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
	if (ok)
		ok = EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
	if (!ok) {
		EVP_PKEY_CTX_free(ctx);
		return HSM_SC_INTERNAL;
	}
	*ctxp = ctx;
	return HSM_SC_SUCCESS;
}

/* Ed25519 (pure): the whole message goes to the one-shot API. */
static uint16_t hsm_eddsa(const struct hsm_key *k, bool verify,
			  const unsigned char *msg, size_t len,
			  unsigned char *sig, size_t *siglen)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	uint16_t st = HSM_SC_INTERNAL;

	if (!mctx)
		return HSM_SC_INTERNAL;
	if (verify) {
		if (EVP_DigestVerifyInit_ex(mctx, NULL, NULL, NULL, NULL,
					    k->pkey, NULL) != 1)
			goto out;
		st = EVP_DigestVerify(mctx, sig, *siglen, msg, len) == 1 ?
		     HSM_SC_SUCCESS : HSM_SC_VERIFY_FAILED;
	} else {
		if (EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL,
					  k->pkey, NULL) != 1 ||
		    EVP_DigestSign(mctx, sig, siglen, msg, len) != 1)
			goto out;
		st = HSM_SC_SUCCESS;
	}
out:
	EVP_MD_CTX_free(mctx);
	return st;
}

/*
 * SIGN / VERIFY: handle = private key (USE_SIGN / USE_VERIFY), src =
 * message (or its digest with HSM_SQE_F_PREHASHED), dst = signature
 * (output of SIGN, input of VERIFY).  RSA_PKCS1, RSA_PSS (aux = salt
 * length) and ECDSA take the hash in mparam; EDDSA takes mparam 0.
 */
uint16_t hsm_io_sign(struct hsm_cmd *c, bool verify)
{
	bool prehashed = c->flags & HSM_SQE_F_PREHASHED;
	bool eddsa = c->mech == HSM_MECH_EDDSA;
	unsigned char dgst[EVP_MAX_MD_SIZE], *in = NULL, *sig = NULL;
	uint16_t type, type2;
	struct hsm_xbuf src, dst;
	EVP_PKEY_CTX *ctx = NULL;
	size_t maxsig = 0, siglen, mdsize = 0;
	unsigned int dlen = 0;
	EVP_MD *md = NULL;
	struct hsm_key *k;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_MECH | HSM_F_MPARAM | HSM_F_HANDLE |
				  HSM_F_SRC | HSM_F_DST | HSM_F_AUX |
				  HSM_F_PREHASH);
	if (st)
		return st;
	switch (c->mech) {
	case HSM_MECH_RSA_PKCS1:
	case HSM_MECH_RSA_PSS:
		type = HSM_KEY_RSA;
		type2 = HSM_KEY_RSA;
		break;
	case HSM_MECH_ECDSA:
		type = HSM_KEY_EC_P256;
		type2 = HSM_KEY_EC_P384;
		break;
	case HSM_MECH_EDDSA:
		type = HSM_KEY_ED25519;
		type2 = HSM_KEY_ED25519;
		break;
	default:
		return HSM_SC_INVALID_MECH;
	}
	if (c->mech != HSM_MECH_RSA_PSS && c->aux)
		return HSM_SC_INVALID_FIELD;
	if (eddsa ? c->mparam || prehashed :
		    c->mparam < HSM_MECH_SHA256 || c->mparam > HSM_MECH_SHA512)
		return HSM_SC_INVALID_FIELD;
	if (!eddsa) {
		md = c->fw->md[hsm_hash_index(c->mparam)];
		mdsize = EVP_MD_get_size(md);
	}
	st = hsm_cmd_key(c, type, type2, verify ? HSM_USE_VERIFY : HSM_USE_SIGN,
			 &k);
	if (st)
		return st;
	maxsig = EVP_PKEY_get_size(k->pkey);
	if (c->mech == HSM_MECH_RSA_PSS && c->aux + mdsize + 2 > maxsig) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	/* an imported small key may not hold DigestInfo and padding */
	if (c->mech == HSM_MECH_RSA_PKCS1 &&
	    mdsize + HSM_PKCS1_DIGESTINFO + HSM_PKCS1_MIN_PAD > maxsig) {
		st = HSM_SC_INVALID_KEY_SIZE;
		goto out;
	}
	if (!c->src_len || c->src_len > HSM_FW_MAX_XFER ||
	    (prehashed && c->src_len != mdsize) ||
	    (verify && (!c->dst_len || c->dst_len > maxsig))) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (!verify && c->dst_len < maxsig) {
		c->result = maxsig;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_cmd_io_begin(c, &src, &dst, &in);
	if (st)
		goto out;
	sig = malloc(maxsig);
	if (!sig) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	siglen = verify ? c->dst_len : maxsig;
	if (verify) {
		st = hsm_xbuf_read(&dst, sig, siglen);
		if (st)
			goto out;
	}
	if (eddsa) {
		st = hsm_eddsa(k, verify, in, c->src_len, sig, &siglen);
	} else {
		if (prehashed) {
			memcpy(dgst, in, mdsize);
			dlen = mdsize;
		} else if (!EVP_Digest(in, c->src_len, dgst, &dlen, md, NULL)) {
			st = HSM_SC_INTERNAL;
			goto out;
		}
		st = hsm_pkey_sign_ctx(c, k, verify, md, &ctx);
		if (st)
			goto out;
		if (verify)
			st = EVP_PKEY_verify(ctx, sig, siglen, dgst, dlen) == 1 ?
			     HSM_SC_SUCCESS : HSM_SC_VERIFY_FAILED;
		else if (EVP_PKEY_sign(ctx, sig, &siglen, dgst, dlen) != 1)
			st = HSM_SC_INTERNAL;
	}
	if (st || verify)
		goto out;
	st = hsm_xbuf_write(&dst, sig, siglen);
	if (!st)
		c->result = siglen;
out:
	EVP_PKEY_CTX_free(ctx);
	free(sig);
	free(in);
	hsm_key_put(k);
	return st;
}
