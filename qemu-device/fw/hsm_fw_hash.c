// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: SHA-2 and HMAC engine, multi-part hashes with
 * sealed state blobs (HSM_IO_HASH_UPDATE / HSM_IO_HASH_FINAL).
 *
 * The engine drives OpenSSL's low-level SHA-256/SHA-512 block functions so
 * that a hash can be stopped after any byte, its chaining value, length and
 * buffered partial block taken out, and resumed later from those.  HMAC
 * (RFC 2104) is built on top: when a key is created the chaining values
 * after the K^ipad and K^opad blocks are computed once (struct
 * hsm_hmac_pads); a MAC then costs no more than the two hashes.
 *
 * State blob (HSM_HASH_STATE_SIZE = 320 bytes, little endian):
 *     0  le32 magic "HSST"       \
 *     4  le16 version (1)         |
 *     6  le16 mech                |  AAD
 *     8  le64 key handle (0: SHA) |
 *    16  nonce[12]                |
 *    28  le32 zero               /
 *    32  sealed[272]:  le64 bytes hashed (HMAC: with the ipad block),
 *                      le32 bytes buffered, le32 zero, 8 x le64 chaining
 *                      value, 128-byte block buffer, zeros
 *   304  tag[16]
 * sealed with AES-256-GCM under fw->state_key, which is random per card
 * instance and replaced on tamper.  The whole blob is authenticated, so any
 * change, a blob of another card, mechanism or key (the handle carries a
 * random tag that changes when a slot is reused) fails the tag check:
 * HSM_SC_INVALID_STATE.  HMAC blobs hold the inner hash only; the key and
 * its pads never leave the card.  Nonces are a per-card random salt and a
 * counter, so they never repeat under one state key.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

/* SHA256_CTX & co. are deprecated in OpenSSL 3 but are the block API. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "hsm_fw_int.h"

#define HSM_HS_MAGIC		0x54535348u	/* "HSST" */
#define HSM_HS_VERSION		1
#define HSM_HS_AAD		32
#define HSM_HS_PLAIN		272
#define HSM_HS_TAG		16
#define HSM_HS_MAXBLOCK		128

_Static_assert(HSM_HS_AAD + HSM_HS_PLAIN + HSM_HS_TAG == HSM_HASH_STATE_SIZE,
	       "hash state layout");

union hsm_sha {
	SHA256_CTX s256;
	SHA512_CTX s512;
};

static const size_t hsm_md_size[HSM_HASH_NR] = { 32, 48, 64 };
static const size_t hsm_md_block[HSM_HASH_NR] = { 64, 128, 128 };

/* ---- SHA-2 with an exportable state ---- */

static void hsm_sha_init(union hsm_sha *s, int idx)
{
	if (idx == HSM_HASH_SHA256)
		SHA256_Init(&s->s256);
	else if (idx == HSM_HASH_SHA384)
		SHA384_Init(&s->s512);
	else
		SHA512_Init(&s->s512);
}

static void hsm_sha_update(union hsm_sha *s, int idx, const void *p,
			   size_t len)
{
	if (!len)
		return;
	if (idx == HSM_HASH_SHA256)
		SHA256_Update(&s->s256, p, len);
	else
		SHA512_Update(&s->s512, p, len);
}

static void hsm_sha_final(union hsm_sha *s, int idx, uint8_t *md)
{
	if (idx == HSM_HASH_SHA256)
		SHA256_Final(md, &s->s256);
	else
		SHA512_Final(md, &s->s512);	/* md_len picks 384 or 512 */
}

/* Chaining value of a state at a block boundary. */
static void hsm_sha_get_h(const union hsm_sha *s, int idx,
			  struct hsm_hstate *hs)
{
	int i;

	for (i = 0; i < 8; i++)
		hs->h[i] = idx == HSM_HASH_SHA256 ? s->s256.h[i] :
						    s->s512.h[i];
}

/*
 * Rebuild a state: @total bytes hashed, the last @num of them (less than a
 * block) in @buf, the chaining value after the others in @hs.
 */
static void hsm_sha_set(union hsm_sha *s, int idx,
			const struct hsm_hstate *hs, uint64_t total,
			const uint8_t *buf, unsigned int num)
{
	int i;

	hsm_sha_init(s, idx);	/* md_len and the rest of the context */
	if (idx == HSM_HASH_SHA256) {
		for (i = 0; i < 8; i++)
			s->s256.h[i] = (SHA_LONG)hs->h[i];
		s->s256.Nl = (SHA_LONG)(total << 3);
		s->s256.Nh = (SHA_LONG)(total >> 29);
		if (num)
			memcpy(s->s256.data, buf, num);
		s->s256.num = num;
	} else {
		for (i = 0; i < 8; i++)
			s->s512.h[i] = hs->h[i];
		s->s512.Nl = total << 3;
		s->s512.Nh = total >> 61;
		if (num)
			memcpy(s->s512.u.p, buf, num);
		s->s512.num = num;
	}
}

/* Take a state apart: bytes hashed, buffered bytes, chaining value. */
static void hsm_sha_get(const union hsm_sha *s, int idx,
			struct hsm_hstate *hs, uint64_t *total,
			uint8_t *buf, unsigned int *num)
{
	hsm_sha_get_h(s, idx, hs);
	if (idx == HSM_HASH_SHA256) {
		*total = (((uint64_t)s->s256.Nh << 32) | s->s256.Nl) >> 3;
		*num = s->s256.num;
		memcpy(buf, s->s256.data, *num);
	} else {
		*total = (s->s512.Nh << 61) | (s->s512.Nl >> 3);
		*num = s->s512.num;
		memcpy(buf, s->s512.u.p, *num);
	}
}

static void hsm_sha_wipe(union hsm_sha *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

/* ---- HMAC ---- */

/* Chaining value after one block of K' ^ @pad. */
static void hsm_hmac_pad(int idx, const uint8_t *kblk, uint8_t pad,
			 struct hsm_hstate *hs)
{
	uint8_t blk[HSM_HS_MAXBLOCK];
	union hsm_sha s;
	size_t i, bs = hsm_md_block[idx];

	for (i = 0; i < bs; i++)
		blk[i] = kblk[i] ^ pad;
	hsm_sha_init(&s, idx);
	hsm_sha_update(&s, idx, blk, bs);
	hsm_sha_get_h(&s, idx, hs);
	hsm_sha_wipe(&s);
	OPENSSL_cleanse(blk, sizeof(blk));
}

/* The HMAC key schedule of @key (@len bytes, any size) into @pads. */
static void hsm_hmac_pads_fill(struct hsm_hmac_pads *pads, const uint8_t *key,
			       size_t len)
{
	uint8_t kblk[HSM_HS_MAXBLOCK];
	union hsm_sha s;
	int idx;

	for (idx = 0; idx < HSM_HASH_NR; idx++) {
		/* RFC 2104: a key longer than the block is hashed first */
		memset(kblk, 0, sizeof(kblk));
		if (len > hsm_md_block[idx]) {
			hsm_sha_init(&s, idx);
			hsm_sha_update(&s, idx, key, len);
			hsm_sha_final(&s, idx, kblk);
			hsm_sha_wipe(&s);
		} else if (len) {
			memcpy(kblk, key, len);
		}
		hsm_hmac_pad(idx, kblk, 0x36, &pads->in[idx]);
		hsm_hmac_pad(idx, kblk, 0x5c, &pads->out[idx]);
	}
	OPENSSL_cleanse(kblk, sizeof(kblk));
}

/**
 * hsm_hmac_pads_make() - compute the HMAC key schedule of a key
 * @k:   key; receives @k->pads
 * @key: HMAC key bytes (may be NULL when @len is 0)
 * @len: key length, any size
 *
 * Return: HSM_SC_SUCCESS or HSM_SC_INTERNAL.
 */
uint16_t hsm_hmac_pads_make(struct hsm_key *k, const uint8_t *key,
			    size_t len)
{
	k->pads = OPENSSL_malloc(sizeof(*k->pads));
	if (!k->pads)
		return HSM_SC_INTERNAL;
	hsm_hmac_pads_fill(k->pads, key, len);
	return HSM_SC_SUCCESS;
}

/* Finish HMAC from the inner state @s (consumed). */
static void hsm_hmac_finish(const struct hsm_hmac_pads *pads, int idx,
			    union hsm_sha *s, uint8_t *mac)
{
	uint8_t inner[64];

	hsm_sha_final(s, idx, inner);
	hsm_sha_set(s, idx, &pads->out[idx], hsm_md_block[idx], NULL, 0);
	hsm_sha_update(s, idx, inner, hsm_md_size[idx]);
	hsm_sha_final(s, idx, mac);
	hsm_sha_wipe(s);
	OPENSSL_cleanse(inner, sizeof(inner));
}

/* HMAC of one message with a prepared key; @mac gets the digest size. */
void hsm_hmac_oneshot(const struct hsm_hmac_pads *pads, int idx,
		      const void *msg, size_t len, uint8_t *mac)
{
	union hsm_sha s;

	hsm_sha_set(&s, idx, &pads->in[idx], hsm_md_block[idx], NULL, 0);
	hsm_sha_update(&s, idx, msg, len);
	hsm_hmac_finish(pads, idx, &s, mac);
}

/* HMAC of the concatenation of two pieces with a prepared key. */
void hsm_hmac_two(const struct hsm_hmac_pads *pads, int idx, const void *a,
		  size_t alen, const void *b, size_t blen, uint8_t *mac)
{
	union hsm_sha s;

	hsm_sha_set(&s, idx, &pads->in[idx], hsm_md_block[idx], NULL, 0);
	hsm_sha_update(&s, idx, a, alen);
	hsm_sha_update(&s, idx, b, blen);
	hsm_hmac_finish(pads, idx, &s, mac);
}

/* HMAC-SHA-256 with a raw key (card-internal keys: tokens, derivation). */
void hsm_hmac_raw(const uint8_t *key, size_t klen, const void *msg,
		  size_t len, uint8_t *mac)
{
	struct hsm_hmac_pads pads;

	hsm_hmac_pads_fill(&pads, key, klen);
	hsm_hmac_oneshot(&pads, HSM_HASH_SHA256, msg, len, mac);
	OPENSSL_cleanse(&pads, sizeof(pads));
}

/* ---- state sealing ---- */

/* A new random state key (at creation and on tamper); old blobs die. */
int hsm_hash_state_key_new(struct hsm_fw *fw)
{
	uint8_t key[32];
	uint32_t salt;

	if (RAND_priv_bytes(key, sizeof(key)) != 1 ||
	    RAND_bytes((unsigned char *)&salt, sizeof(salt)) != 1)
		return -1;
	pthread_rwlock_wrlock(&fw->ks_lock);
	memcpy(fw->state_key, key, sizeof(key));
	/* set once: the counter keeps nonces unique across key changes */
	if (!fw->state_salt)
		fw->state_salt = salt | 1;
	pthread_rwlock_unlock(&fw->ks_lock);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

static void hsm_put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t hsm_get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void hsm_put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t hsm_get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* One AES-256-GCM pass over the blob under the card's state key. */
static uint16_t hsm_state_gcm(struct hsm_fw *fw, EVP_CIPHER_CTX *ctx,
			      bool enc, uint8_t *blob)
{
	uint8_t key[32], out[HSM_HS_PLAIN];
	uint16_t st = HSM_SC_INTERNAL;
	int n = 0;

	pthread_rwlock_rdlock(&fw->ks_lock);
	memcpy(key, fw->state_key, sizeof(key));
	pthread_rwlock_unlock(&fw->ks_lock);
	/* a second pass on the same context keeps its cipher */
	if (!EVP_CipherInit_ex2(ctx, EVP_CIPHER_CTX_get0_cipher(ctx) ? NULL :
				fw->aes_gcm[2], key, blob + 16, enc, NULL) ||
	    !EVP_CipherUpdate(ctx, NULL, &n, blob, HSM_HS_AAD) ||
	    !EVP_CipherUpdate(ctx, out, &n, blob + HSM_HS_AAD, HSM_HS_PLAIN))
		goto out;
	if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, HSM_HS_TAG,
					 blob + HSM_HS_AAD + HSM_HS_PLAIN))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, out + n, &n)) {
		st = HSM_SC_INVALID_STATE;
		goto out;
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, HSM_HS_TAG,
					blob + HSM_HS_AAD + HSM_HS_PLAIN))
		goto out;
	memcpy(blob + HSM_HS_AAD, out, HSM_HS_PLAIN);
	st = HSM_SC_SUCCESS;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(out, sizeof(out));
	return st;
}

static void hsm_state_aad(uint8_t *blob, uint16_t mech, uint64_t handle)
{
	uint16_t v;

	hsm_put_le32(blob, HSM_HS_MAGIC);
	v = htole16(HSM_HS_VERSION);
	memcpy(blob + 4, &v, 2);
	v = htole16(mech);
	memcpy(blob + 6, &v, 2);
	hsm_put_le64(blob + 8, handle);
	hsm_put_le32(blob + 28, 0);
}

/* Seal state @s of @idx into @blob (HSM_HASH_STATE_SIZE bytes). */
static uint16_t hsm_state_seal(struct hsm_cmd *c, EVP_CIPHER_CTX *ctx,
			       int idx, const union hsm_sha *s, uint8_t *blob)
{
	struct hsm_hstate hs;
	uint8_t *p = blob + HSM_HS_AAD;
	uint64_t total, ctr;
	unsigned int num, i;

	memset(blob, 0, HSM_HASH_STATE_SIZE);
	hsm_state_aad(blob, c->mech, c->handle);
	ctr = __atomic_add_fetch(&c->fw->state_nonce, 1, __ATOMIC_RELAXED);
	hsm_put_le32(blob + 16, c->fw->state_salt);
	hsm_put_le64(blob + 20, ctr);

	hsm_sha_get(s, idx, &hs, &total, p + 80, &num);
	hsm_put_le64(p, total);
	hsm_put_le32(p + 8, num);
	for (i = 0; i < 8; i++)
		hsm_put_le64(p + 16 + 8 * i, hs.h[i]);
	OPENSSL_cleanse(&hs, sizeof(hs));
	return hsm_state_gcm(c->fw, ctx, true, blob);
}

/* Open @blob (modified in place) into state @s for the command's mech/key. */
static uint16_t hsm_state_open(struct hsm_cmd *c, EVP_CIPHER_CTX *ctx,
			       int idx, uint8_t *blob, union hsm_sha *s)
{
	const uint8_t *p = blob + HSM_HS_AAD;
	uint8_t aad[HSM_HS_AAD];
	struct hsm_hstate hs;
	uint64_t total;
	unsigned int num, i;
	uint16_t st;

	/* the header must name this mech and key, else the tag is moot */
	memcpy(aad, blob, sizeof(aad));
	hsm_state_aad(aad, c->mech, c->handle);
	memcpy(aad + 16, blob + 16, 12);
	if (memcmp(aad, blob, sizeof(aad)))
		return HSM_SC_INVALID_STATE;
	st = hsm_state_gcm(c->fw, ctx, false, blob);
	if (st)
		return st;
	total = hsm_get_le64(p);
	num = hsm_get_le32(p + 8);
	/* cannot fail once the tag is good, unless the card has a bug */
	if (num >= hsm_md_block[idx] || hsm_get_le32(p + 12) ||
	    (total - num) % hsm_md_block[idx] ||
	    (c->handle && total < hsm_md_block[idx]))
		return HSM_SC_INVALID_STATE;
	for (i = 0; i < 8; i++) {
		hs.h[i] = hsm_get_le64(p + 16 + 8 * i);
		if (idx == HSM_HASH_SHA256 && hs.h[i] >> 32)
			return HSM_SC_INVALID_STATE;
	}
	hsm_sha_set(s, idx, &hs, total, p + 80, num);
	OPENSSL_cleanse(&hs, sizeof(hs));
	OPENSSL_cleanse(blob + HSM_HS_AAD, HSM_HS_PLAIN);
	return HSM_SC_SUCCESS;
}

/* ---- HASH_UPDATE / HASH_FINAL ---- */

#define HSM_HASH_CHUNK		4096

/* Hash all of @xb, read in chunks through a stack buffer. */
static uint16_t hsm_hash_src(const struct hsm_xbuf *xb, union hsm_sha *s,
			     int idx)
{
	uint8_t buf[HSM_HASH_CHUNK];
	unsigned int i;
	uint64_t off;
	size_t n;

	for (i = 0; i < xb->nsge; i++) {
		for (off = 0; off < xb->sg[i].len; off += n) {
			n = xb->sg[i].len - off;
			if (n > sizeof(buf))
				n = sizeof(buf);
			if (xb->host->dma_read(xb->host->opaque,
					       xb->sg[i].addr + off, buf, n))
				return HSM_SC_DATA_XFER;
			hsm_sha_update(s, idx, buf, n);
		}
	}
	return HSM_SC_SUCCESS;
}

/* Read the blob at qw[0] into @blob. */
static uint16_t hsm_state_dma(struct hsm_cmd *c, uint8_t *blob, bool write)
{
	int r;

	if (write)
		r = c->host->dma_write(c->host->opaque, c->qw[0], blob,
				       HSM_HASH_STATE_SIZE);
	else
		r = c->host->dma_read(c->host->opaque, c->qw[0], blob,
				      HSM_HASH_STATE_SIZE);
	return r ? HSM_SC_DATA_XFER : HSM_SC_SUCCESS;
}

/**
 * hsm_io_hash() - HSM_IO_HASH_UPDATE and HSM_IO_HASH_FINAL
 * @c:     the command
 * @final: FINAL (digest to dst, blob read only) rather than UPDATE
 *
 * mech SHA* (handle 0) or HMAC_* (handle = HMAC key with USE_SIGN), qw[0]
 * = state blob, src = next bytes (0..max_xfer), HSM_SQE_F_HASH_INIT to
 * start afresh.  UPDATE: dst 0, blob rewritten, result 0.  FINAL: dst =
 * digest, result = its size.
 *
 * Return: HSM_SC_* status.
 */
uint16_t hsm_io_hash(struct hsm_cmd *c, bool final)
{
	bool init = c->flags & HSM_SQE_F_HASH_INIT;
	uint8_t blob[HSM_HASH_STATE_SIZE], md[64];
	EVP_CIPHER_CTX *ctx = NULL;
	struct hsm_xbuf src, dst;
	struct hsm_key *k = NULL;
	bool hmac = false;
	union hsm_sha s;
	uint16_t st;
	size_t mdsize;
	int idx;

	st = hsm_cmd_check_fields(c, HSM_F_MECH | HSM_F_HANDLE | HSM_F_SRC |
				  (final ? HSM_F_DST : 0) | HSM_F_CDW(0) |
				  HSM_F_CDW(1) | HSM_F_HASHINIT);
	if (st)
		return st;
	switch (c->mech) {
	case HSM_MECH_HMAC_SHA256:
	case HSM_MECH_HMAC_SHA384:
	case HSM_MECH_HMAC_SHA512:
		hmac = true;
		break;
	case HSM_MECH_SHA256:
	case HSM_MECH_SHA384:
	case HSM_MECH_SHA512:
		break;
	default:
		return HSM_SC_INVALID_MECH;
	}
	if (!hmac && c->handle)
		return HSM_SC_INVALID_FIELD;
	/* the blob is not touched by a one-shot FINAL */
	if (!(final && init) && !c->qw[0])
		return HSM_SC_INVALID_FIELD;
	idx = hsm_hash_index(c->mech);
	mdsize = hsm_md_size[idx];
	if (hmac) {
		st = hsm_key_get(c->fw, c->handle, &k);
		if (st)
			return st;
		if (k->type != HSM_KEY_HMAC)
			st = HSM_SC_KEY_TYPE;
		else
			st = hsm_key_use(k, HSM_USE_SIGN);
		if (st)
			goto out;
	}
	if (c->src_len > HSM_FW_MAX_XFER ||
	    (final && c->dst_len > HSM_FW_MAX_XFER)) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (final && c->dst_len < mdsize) {
		c->result = mdsize;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_xbuf_src(c, &src);
	if (!st && final)
		st = hsm_xbuf_dst(c, &dst);
	if (st)
		goto out;
	if (!(final && init)) {
		ctx = EVP_CIPHER_CTX_new();
		if (!ctx) {
			st = HSM_SC_INTERNAL;
			goto out;
		}
	}
	if (init) {
		if (hmac)
			hsm_sha_set(&s, idx, &k->pads->in[idx],
				    hsm_md_block[idx], NULL, 0);
		else
			hsm_sha_init(&s, idx);
	} else {
		st = hsm_state_dma(c, blob, false);
		if (!st)
			st = hsm_state_open(c, ctx, idx, blob, &s);
		if (st)
			goto out;
	}
	st = hsm_hash_src(&src, &s, idx);
	if (st)
		goto wipe;
	if (final) {
		if (hmac)
			hsm_hmac_finish(k->pads, idx, &s, md);
		else
			hsm_sha_final(&s, idx, md);
		st = hsm_xbuf_write(&dst, md, mdsize);
		OPENSSL_cleanse(md, sizeof(md));
		if (!st)
			c->result = mdsize;
	} else {
		st = hsm_state_seal(c, ctx, idx, &s, blob);
		if (!st)
			st = hsm_state_dma(c, blob, true);
	}
wipe:
	hsm_sha_wipe(&s);
out:
	EVP_CIPHER_CTX_free(ctx);
	hsm_key_put(k);
	return st;
}
