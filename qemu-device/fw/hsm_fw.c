// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: card lifecycle, command decoding and dispatch,
 * IDENTIFY, I/O queue management, RNG and host buffer (DMA/SGL) handling.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hsm_fw_int.h"

_Static_assert(sizeof(struct hsm_sqe) == HSM_SQE_SIZE, "sqe size");
_Static_assert(sizeof(struct hsm_cqe) == HSM_CQE_SIZE, "cqe size");
_Static_assert(sizeof(struct hsm_sge) == HSM_SGE_SIZE, "sge size");
_Static_assert(sizeof(struct hsm_key_attrs) == 160, "attrs size");
_Static_assert(sizeof(struct hsm_identify) == HSM_IDENTIFY_SIZE, "id size");

static const char *const hsm_status_names[HSM_SC_MAX] = {
	[HSM_SC_SUCCESS]	 = "success",
	[HSM_SC_INVALID_OPCODE]	 = "invalid opcode",
	[HSM_SC_INVALID_FIELD]	 = "invalid field",
	[HSM_SC_DATA_XFER]	 = "data transfer error",
	[HSM_SC_INVALID_QID]	 = "invalid queue id",
	[HSM_SC_INVALID_QSIZE]	 = "invalid queue size",
	[HSM_SC_INVALID_VECTOR]	 = "invalid interrupt vector",
	[HSM_SC_INVALID_SGL]	 = "invalid scatter-gather list",
	[HSM_SC_INVALID_LENGTH]	 = "invalid length",
	[HSM_SC_BUFFER_TOO_SMALL] = "buffer too small",
	[HSM_SC_INVALID_MECH]	 = "invalid mechanism",
	[HSM_SC_INVALID_HANDLE]	 = "invalid key handle",
	[HSM_SC_KEY_TYPE]	 = "key type mismatch",
	[HSM_SC_USE_DENIED]	 = "key use denied",
	[HSM_SC_NOT_EXTRACTABLE] = "key not extractable",
	[HSM_SC_INVALID_KEY_SIZE] = "invalid key size",
	[HSM_SC_KEYSTORE_FULL]	 = "key store full",
	[HSM_SC_VERIFY_FAILED]	 = "verification failed",
	[HSM_SC_DECRYPT_FAILED]	 = "decryption failed",
	[HSM_SC_TAMPERED]	 = "card tampered",
	[HSM_SC_ABORTED]	 = "aborted",
	[HSM_SC_RNG_FAILURE]	 = "RNG failure",
	[HSM_SC_INTERNAL]	 = "internal error",
	[HSM_SC_INVALID_STATE]	 = "invalid hash state",
	[HSM_SC_INVALID_TOKEN]	 = "invalid key token",
	[HSM_SC_PIN_INCORRECT]	 = "PIN incorrect",
	[HSM_SC_PIN_LOCKED]	 = "PIN locked",
	[HSM_SC_PIN_NOT_SET]	 = "PIN not set",
	[HSM_SC_KEY_STATE]	 = "key state forbids it",
	[HSM_SC_KEY_COMPROMISED] = "key compromised",
	[HSM_SC_LABEL_EXISTS]	 = "label exists",
	[HSM_SC_ID_EXISTS]	 = "key ID exists",
};

const char *hsm_fw_status_str(uint16_t status)
{
	if (status < HSM_SC_MAX && hsm_status_names[status])
		return hsm_status_names[status];
	return "unknown status";
}

static void hsm_set_err(char **errp, const char *msg)
{
	if (errp)
		*errp = strdup(msg);
}

static void hsm_fw_free_algs(struct hsm_fw *fw)
{
	int i;

	for (i = 0; i < HSM_HASH_NR; i++)
		EVP_MD_free(fw->md[i]);
	for (i = 0; i < HSM_AES_NR; i++) {
		EVP_CIPHER_free(fw->aes_ecb[i]);
		EVP_CIPHER_free(fw->aes_cbc[i]);
		EVP_CIPHER_free(fw->aes_ctr[i]);
		EVP_CIPHER_free(fw->aes_gcm[i]);
		EVP_CIPHER_free(fw->aes_kwp[i]);
	}
	EVP_CIPHER_free(fw->aes_xts[0]);
	EVP_CIPHER_free(fw->aes_xts[1]);
}

static int hsm_fw_fetch_algs(struct hsm_fw *fw)
{
	static const char *const md_names[HSM_HASH_NR] = {
		"SHA2-256", "SHA2-384", "SHA2-512",
	};
	static const int aes_bits[HSM_AES_NR] = { 128, 192, 256 };
	char name[32];
	int i;

	for (i = 0; i < HSM_HASH_NR; i++) {
		fw->md[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
		if (!fw->md[i])
			return -1;
	}
	for (i = 0; i < HSM_AES_NR; i++) {
		snprintf(name, sizeof(name), "AES-%d-ECB", aes_bits[i]);
		fw->aes_ecb[i] = EVP_CIPHER_fetch(NULL, name, NULL);
		snprintf(name, sizeof(name), "AES-%d-CBC", aes_bits[i]);
		fw->aes_cbc[i] = EVP_CIPHER_fetch(NULL, name, NULL);
		snprintf(name, sizeof(name), "AES-%d-CTR", aes_bits[i]);
		fw->aes_ctr[i] = EVP_CIPHER_fetch(NULL, name, NULL);
		snprintf(name, sizeof(name), "AES-%d-GCM", aes_bits[i]);
		fw->aes_gcm[i] = EVP_CIPHER_fetch(NULL, name, NULL);
		snprintf(name, sizeof(name), "AES-%d-WRAP-PAD", aes_bits[i]);
		fw->aes_kwp[i] = EVP_CIPHER_fetch(NULL, name, NULL);
		if (!fw->aes_ecb[i] || !fw->aes_cbc[i] || !fw->aes_ctr[i] ||
		    !fw->aes_gcm[i] || !fw->aes_kwp[i])
			return -1;
	}
	fw->aes_xts[0] = EVP_CIPHER_fetch(NULL, "AES-128-XTS", NULL);
	fw->aes_xts[1] = EVP_CIPHER_fetch(NULL, "AES-256-XTS", NULL);
	if (!fw->aes_xts[0] || !fw->aes_xts[1])
		return -1;
	return 0;
}

struct hsm_fw *hsm_fw_new(const struct hsm_fw_config *cfg, char **errp)
{
	struct hsm_fw *fw;

	if (errp)
		*errp = NULL;
	if (!cfg || cfg->max_ioq < 1 || cfg->max_ioq > HSM_MAX_IOQ) {
		hsm_set_err(errp, "max_ioq must be 1..64");
		return NULL;
	}
	if (cfg->max_qsize < HSM_MIN_QSIZE || cfg->max_qsize > HSM_MAX_QSIZE) {
		hsm_set_err(errp, "max_qsize must be 2..4096");
		return NULL;
	}
	if (cfg->max_keys < 1 || cfg->max_keys > (1u << 24) - 1) {
		hsm_set_err(errp, "max_keys must be 1..16777215");
		return NULL;
	}
	if (cfg->nr_vectors <= HSM_VEC_IO_FIRST || cfg->nr_vectors > 0xffff) {
		hsm_set_err(errp, "nr_vectors must be 3..65535");
		return NULL;
	}

	fw = calloc(1, sizeof(*fw));
	if (!fw) {
		hsm_set_err(errp, "out of memory");
		return NULL;
	}
	fw->cfg = *cfg;
	fw->cfg.serial = NULL;
	fw->cfg.keystore_path = NULL;
	snprintf(fw->serial, sizeof(fw->serial), "%s",
		 cfg->serial ? cfg->serial : "HSM0000000000001");

	if (hsm_fw_fetch_algs(fw)) {
		hsm_set_err(errp, "OpenSSL lacks a required algorithm");
		goto err;
	}
	if (RAND_bytes(fw->card_id, sizeof(fw->card_id)) != 1) {
		hsm_set_err(errp, "RNG failure");
		goto err;
	}
	hsm_audit_init(fw);
	hsm_auth_init(fw);
	if (hsm_fw_keys_init(fw)) {
		hsm_set_err(errp, "cannot allocate the key store");
		goto err;
	}
	if (cfg->keystore_path &&
	    hsm_store_open(fw, cfg->keystore_path, errp)) {
		hsm_fw_free(fw);
		return NULL;
	}
	if (hsm_token_key_init(fw) || hsm_hash_state_key_new(fw)) {
		hsm_set_err(errp, "RNG failure");
		hsm_fw_free(fw);
		return NULL;
	}
	if (hsm_audit_open(fw, errp)) {
		hsm_fw_free(fw);
		return NULL;
	}
	fw->started = true;
	return fw;

err:
	hsm_fw_free_algs(fw);
	free(fw);
	return NULL;
}

void hsm_fw_stop(struct hsm_fw *fw)
{
	/* seal the audit log's head: a clean stop covers every record */
	if (fw && fw->started && fw->ks_path && !hsm_fw_is_tampered(fw))
		hsm_store_save(fw);
}

void hsm_fw_free(struct hsm_fw *fw)
{
	if (!fw)
		return;
	hsm_fw_stop(fw);
	hsm_fw_keys_fini(fw);
	hsm_store_close(fw);
	hsm_audit_close(fw);
	hsm_auth_fini(fw);
	hsm_fw_free_algs(fw);
	OPENSSL_cleanse(fw, sizeof(*fw));
	free(fw);
}

void hsm_fw_tamper(struct hsm_fw *fw)
{
	__atomic_store_n(&fw->tampered, 1, __ATOMIC_RELEASE);
	hsm_fw_keys_zeroize(fw);
	hsm_store_zeroize(fw);
	/* the PIN hashes were in the store: back to a factory card */
	hsm_auth_zeroize(fw);
	OPENSSL_cleanse(fw->token_key, sizeof(fw->token_key));
	/* the log survives; its signing key goes with the master key */
	hsm_audit_tamper(fw);
	/* blobs sealed so far die; plain digests keep working */
	if (hsm_hash_state_key_new(fw)) {
		pthread_rwlock_wrlock(&fw->ks_lock);
		memset(fw->state_key, 0xff, sizeof(fw->state_key));
		pthread_rwlock_unlock(&fw->ks_lock);
	}
}

bool hsm_fw_tampered(const struct hsm_fw *fw)
{
	return __atomic_load_n(&fw->tampered, __ATOMIC_ACQUIRE);
}

/* ---- command decoding ---- */

static void hsm_cmd_decode(struct hsm_cmd *c, struct hsm_fw *fw,
			   const struct hsm_fw_host *host,
			   const struct hsm_sqe *sqe)
{
	int i;

	memset(c, 0, sizeof(*c));
	c->fw = fw;
	c->host = host;
	c->opcode = sqe->opcode;
	c->flags = sqe->flags;
	c->mech = le16toh(sqe->mech);
	c->mparam = le16toh(sqe->mparam);
	c->handle = le64toh(sqe->handle);
	c->src = le64toh(sqe->src);
	c->dst = le64toh(sqe->dst);
	c->src_len = le32toh(sqe->src_len);
	c->dst_len = le32toh(sqe->dst_len);
	c->src_nsge = le16toh(sqe->src_nsge);
	c->dst_nsge = le16toh(sqe->dst_nsge);
	c->aux = le32toh(sqe->aux);
	memcpy(c->iv, sqe->iv, sizeof(c->iv));
	for (i = 0; i < 4; i++)
		c->cdw[i] = le32toh(sqe->cdw[i]);
	c->qw[0] = le64toh(sqe->qw[0]);
	c->qw[1] = le64toh(sqe->qw[1]);
}

/**
 * hsm_cmd_check_fields() - reject a command that sets fields it does not use
 * @c:    decoded command
 * @used: HSM_F_* fields the command uses
 *
 * Unused fields are reserved and must be zero so that they can be given a
 * meaning later.  The SGL flags are only allowed with the buffer they
 * describe, the PREHASHED flag only where @used allows it.
 *
 * Return: HSM_SC_SUCCESS or HSM_SC_INVALID_FIELD.
 */
uint16_t hsm_cmd_check_fields(const struct hsm_cmd *c, unsigned int used)
{
	unsigned int allowed = 0;
	int i;

	if (used & HSM_F_SRC)
		allowed |= HSM_SQE_F_SRC_SGL;
	if (used & HSM_F_DST)
		allowed |= HSM_SQE_F_DST_SGL;
	if (used & HSM_F_PREHASH)
		allowed |= HSM_SQE_F_PREHASHED;
	if (used & HSM_F_HASHINIT)
		allowed |= HSM_SQE_F_HASH_INIT;
	if (c->flags & ~allowed)
		return HSM_SC_INVALID_FIELD;
	if (!(used & HSM_F_MECH) && c->mech)
		return HSM_SC_INVALID_FIELD;
	if (!(used & HSM_F_MPARAM) && c->mparam)
		return HSM_SC_INVALID_FIELD;
	if (!(used & HSM_F_HANDLE) && c->handle)
		return HSM_SC_INVALID_FIELD;
	if (!(used & HSM_F_SRC) && (c->src || c->src_len || c->src_nsge))
		return HSM_SC_INVALID_FIELD;
	if (!(used & HSM_F_DST) && (c->dst || c->dst_len || c->dst_nsge))
		return HSM_SC_INVALID_FIELD;
	if (!(used & HSM_F_AUX) && c->aux)
		return HSM_SC_INVALID_FIELD;
	for (i = 0; i < 4; i++)
		if (!(used & HSM_F_CDW(i)) && c->cdw[i])
			return HSM_SC_INVALID_FIELD;
	return HSM_SC_SUCCESS;
}

/* ---- host buffers ---- */

static uint16_t hsm_xbuf_init(struct hsm_cmd *c, struct hsm_xbuf *xb,
			      bool sgl, uint64_t addr, uint32_t len,
			      uint16_t nsge, bool is_dst)
{
	uint64_t sum = 0;
	unsigned int i;

	xb->host = c->host;
	xb->len = len;
	if (len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	if (!sgl) {
		if (nsge)
			return HSM_SC_INVALID_FIELD;
		xb->nsge = len ? 1 : 0;
		xb->sg[0].addr = addr;
		xb->sg[0].len = len;
		xb->sg[0].rsvd = 0;
		if (len && addr + len < addr)
			return HSM_SC_DATA_XFER;
		return HSM_SC_SUCCESS;
	}
	if (!nsge || nsge > HSM_MAX_SGE)
		return HSM_SC_INVALID_SGL;
	if (c->host->dma_read(c->host->opaque, addr, xb->sg,
			      (size_t)nsge * sizeof(struct hsm_sge)))
		return HSM_SC_DATA_XFER;
	for (i = 0; i < nsge; i++) {
		xb->sg[i].addr = le64toh(xb->sg[i].addr);
		xb->sg[i].len = le32toh(xb->sg[i].len);
		if (!xb->sg[i].len || xb->sg[i].rsvd)
			return HSM_SC_INVALID_SGL;
		if (xb->sg[i].addr + xb->sg[i].len < xb->sg[i].addr)
			return HSM_SC_INVALID_SGL;
		sum += xb->sg[i].len;
	}
	if (is_dst ? sum < len : sum != len)
		return HSM_SC_INVALID_SGL;
	xb->nsge = nsge;
	return HSM_SC_SUCCESS;
}

uint16_t hsm_xbuf_src(struct hsm_cmd *c, struct hsm_xbuf *xb)
{
	return hsm_xbuf_init(c, xb, c->flags & HSM_SQE_F_SRC_SGL, c->src,
			     c->src_len, c->src_nsge, false);
}

uint16_t hsm_xbuf_dst(struct hsm_cmd *c, struct hsm_xbuf *xb)
{
	return hsm_xbuf_init(c, xb, c->flags & HSM_SQE_F_DST_SGL, c->dst,
			     c->dst_len, c->dst_nsge, true);
}

/* Copy the first @len bytes of @xb into @buf. */
uint16_t hsm_xbuf_read(const struct hsm_xbuf *xb, void *buf, size_t len)
{
	unsigned char *p = buf;
	unsigned int i;

	if (len > xb->len)
		return HSM_SC_INTERNAL;
	for (i = 0; i < xb->nsge && len; i++) {
		size_t n = xb->sg[i].len < len ? xb->sg[i].len : len;

		if (xb->host->dma_read(xb->host->opaque, xb->sg[i].addr, p, n))
			return HSM_SC_DATA_XFER;
		p += n;
		len -= n;
	}
	return len ? HSM_SC_INTERNAL : HSM_SC_SUCCESS;
}

/* Copy @len bytes from @buf to the start of @xb. */
uint16_t hsm_xbuf_write(const struct hsm_xbuf *xb, const void *buf,
			size_t len)
{
	const unsigned char *p = buf;
	unsigned int i;

	if (len > xb->len)
		return HSM_SC_INTERNAL;
	for (i = 0; i < xb->nsge && len; i++) {
		size_t n = xb->sg[i].len < len ? xb->sg[i].len : len;

		if (xb->host->dma_write(xb->host->opaque, xb->sg[i].addr, p, n))
			return HSM_SC_DATA_XFER;
		p += n;
		len -= n;
	}
	return len ? HSM_SC_INTERNAL : HSM_SC_SUCCESS;
}

/* ---- commands that need no key ---- */

static uint16_t hsm_adm_identify(struct hsm_cmd *c)
{
	static const unsigned int mechs[] = {
		HSM_MECH_AES_ECB, HSM_MECH_AES_CBC, HSM_MECH_AES_CTR,
		HSM_MECH_AES_XTS, HSM_MECH_AES_GCM, HSM_MECH_SHA256,
		HSM_MECH_SHA384, HSM_MECH_SHA512, HSM_MECH_HMAC_SHA256,
		HSM_MECH_HMAC_SHA384, HSM_MECH_HMAC_SHA512,
		HSM_MECH_RSA_PKCS1, HSM_MECH_RSA_PSS, HSM_MECH_RSA_OAEP,
		HSM_MECH_RSA_RAW, HSM_MECH_ECDSA, HSM_MECH_EDDSA,
		HSM_MECH_AES_KWP, HSM_MECH_AES_CBC_HMAC_SHA256,
	};
	struct hsm_identify *id;
	struct hsm_xbuf *xb;
	uint64_t mask = 0;
	uint32_t types = 0;
	uint16_t st;
	unsigned int i;

	st = hsm_cmd_check_fields(c, HSM_F_DST);
	if (st)
		return st;
	id = calloc(1, sizeof(*id));
	xb = malloc(sizeof(*xb));
	if (!id || !xb) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_xbuf_dst(c, xb);
	if (st)
		goto out;
	if (c->dst_len < sizeof(*id)) {
		c->result = sizeof(*id);
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		mask |= 1ull << mechs[i];
	for (i = HSM_KEY_AES; i < HSM_KEY_TYPE_MAX; i++)
		types |= 1u << i;

	strncpy(id->serial, c->fw->serial, sizeof(id->serial));
	strncpy(id->model, HSM_FW_MODEL, sizeof(id->model));
	strncpy(id->fw_rev, HSM_FW_FW_REV, sizeof(id->fw_rev));
	memcpy(id->card_id, c->fw->card_id, sizeof(id->card_id));
	id->max_ioq = htole32(c->fw->cfg.max_ioq);
	id->max_qsize = htole32(c->fw->cfg.max_qsize);
	id->max_xfer = htole32(HSM_FW_MAX_XFER);
	id->max_sge = htole32(HSM_MAX_SGE);
	id->max_keys = htole32(c->fw->cfg.max_keys);
	id->nr_keys = htole32(hsm_fw_keys_count(c->fw));
	id->mechs = htole64(mask);
	id->key_types = htole32(types);
	id->nr_partitions = htole32(HSM_NR_PARTITIONS);

	st = hsm_xbuf_write(xb, id, sizeof(*id));
	if (!st)
		c->result = sizeof(*id);
out:
	free(xb);
	free(id);
	return st;
}

static uint16_t hsm_adm_create_ioq(struct hsm_cmd *c)
{
	const struct hsm_fw_config *cfg = &c->fw->cfg;
	uint32_t qid = c->cdw[0], qsize = c->cdw[1] + 1, vec = c->cdw[2];
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC | HSM_F_DST | HSM_F_CDW(0) |
				  HSM_F_CDW(1) | HSM_F_CDW(2));
	if (st)
		return st;
	/* the queue addresses travel in src/dst, without lengths or SGLs */
	if (c->flags || c->src_len || c->dst_len || c->src_nsge ||
	    c->dst_nsge)
		return HSM_SC_INVALID_FIELD;
	if (qid < 1 || qid > cfg->max_ioq)
		return HSM_SC_INVALID_QID;
	if (c->cdw[1] >= cfg->max_qsize || qsize < HSM_MIN_QSIZE)
		return HSM_SC_INVALID_QSIZE;
	if (vec < HSM_VEC_IO_FIRST || vec >= cfg->nr_vectors)
		return HSM_SC_INVALID_VECTOR;
	if (!c->src || !c->dst || (c->src % HSM_QUEUE_ALIGN) ||
	    (c->dst % HSM_QUEUE_ALIGN))
		return HSM_SC_INVALID_FIELD;
	if (!c->host->create_ioq)
		return HSM_SC_INTERNAL;
	return c->host->create_ioq(c->host->opaque, qid, c->src, c->dst,
				   qsize, vec);
}

static uint16_t hsm_adm_delete_ioq(struct hsm_cmd *c)
{
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_CDW(0));
	if (st)
		return st;
	if (c->cdw[0] < 1 || c->cdw[0] > c->fw->cfg.max_ioq)
		return HSM_SC_INVALID_QID;
	if (!c->host->delete_ioq)
		return HSM_SC_INTERNAL;
	return c->host->delete_ioq(c->host->opaque, c->cdw[0]);
}

/* GET_RANDOM (admin and I/O): dst_len (1..max_xfer) random bytes. */
uint16_t hsm_cmd_random(struct hsm_cmd *c)
{
	struct hsm_xbuf *xb;
	unsigned char *buf = NULL;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_DST);
	if (st)
		return st;
	if (!c->dst_len || c->dst_len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_dst(c, xb);
	if (st)
		goto out;
	buf = malloc(c->dst_len);
	if (!buf) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	if (RAND_bytes(buf, c->dst_len) != 1) {
		st = HSM_SC_RNG_FAILURE;
		goto out;
	}
	st = hsm_xbuf_write(xb, buf, c->dst_len);
	if (!st)
		c->result = c->dst_len;
	OPENSSL_cleanse(buf, c->dst_len);
out:
	free(buf);
	free(xb);
	return st;
}

/* ---- dispatch ---- */

uint16_t hsm_fw_admin(struct hsm_fw *fw, const struct hsm_fw_host *host,
		      const struct hsm_sqe *sqe, uint64_t *result)
{
	struct hsm_audit_pre pre;
	struct hsm_cmd c;
	uint16_t st;

	hsm_cmd_decode(&c, fw, host, sqe);
	hsm_audit_pre(&c, &pre);
	switch (c.opcode) {
	case HSM_ADM_IDENTIFY:
		st = hsm_adm_identify(&c);
		break;
	case HSM_ADM_CREATE_IOQ:
		st = hsm_adm_create_ioq(&c);
		break;
	case HSM_ADM_DELETE_IOQ:
		st = hsm_adm_delete_ioq(&c);
		break;
	case HSM_ADM_GET_RANDOM:
		st = hsm_cmd_random(&c);
		break;
	case HSM_ADM_KEY_GENERATE:
		st = hsm_adm_key_generate(&c);
		break;
	case HSM_ADM_KEY_IMPORT:
		st = hsm_adm_key_import(&c);
		break;
	case HSM_ADM_KEY_UNWRAP:
		st = hsm_adm_key_unwrap(&c);
		break;
	case HSM_ADM_KEY_WRAP:
		st = hsm_adm_key_wrap(&c);
		break;
	case HSM_ADM_KEY_EXPORT_PUB:
		st = hsm_adm_key_export_pub(&c);
		break;
	case HSM_ADM_KEY_DESTROY:
		st = hsm_adm_key_destroy(&c);
		break;
	case HSM_ADM_KEY_LIST:
		st = hsm_adm_key_list(&c);
		break;
	case HSM_ADM_KEY_GET_ATTRS:
		st = hsm_adm_key_get_attrs(&c);
		break;
	case HSM_ADM_TOKEN_CREATE:
		st = hsm_adm_token_create(&c);
		break;
	case HSM_ADM_TOKEN_OPEN:
		st = hsm_adm_token_open(&c);
		break;
	case HSM_ADM_AUDIT_READ:
		st = hsm_adm_audit_read(&c);
		break;
	case HSM_ADM_AUDIT_PUBKEY:
		st = hsm_adm_audit_pubkey(&c);
		break;
	case HSM_ADM_AUDIT_CHECKPOINT:
		st = hsm_adm_audit_checkpoint(&c);
		break;
	case HSM_ADM_KEY_SET_STATE:
		st = hsm_adm_key_set_state(&c);
		break;
	case HSM_ADM_KEY_ROTATE:
		st = hsm_adm_key_rotate(&c);
		break;
	case HSM_ADM_KEY_FIND:
		st = hsm_adm_key_find(&c);
		break;
	case HSM_ADM_CARD_INIT:
		st = hsm_adm_card_init(&c);
		break;
	case HSM_ADM_PART_CREATE:
		st = hsm_adm_part_create(&c);
		break;
	case HSM_ADM_PART_DELETE:
		st = hsm_adm_part_delete(&c);
		break;
	case HSM_ADM_PART_INFO:
		st = hsm_adm_part_info(&c);
		break;
	case HSM_ADM_LOGIN:
		st = hsm_adm_login(&c);
		break;
	case HSM_ADM_SET_PIN:
		st = hsm_adm_set_pin(&c);
		break;
	default:
		st = HSM_SC_INVALID_OPCODE;
		break;
	}
	/* management actions and denials are on record before completion */
	st = hsm_audit_cmd(&c, st, &pre);
	/*
	 * BUFFER_TOO_SMALL reports the size needed, PIN_INCORRECT the tries
	 * left; nothing else leaks out
	 */
	if (result)
		*result = (st == HSM_SC_SUCCESS ||
			   st == HSM_SC_BUFFER_TOO_SMALL ||
			   st == HSM_SC_PIN_INCORRECT) ? c.result : 0;
	return st;
}

uint16_t hsm_fw_io(struct hsm_fw *fw, const struct hsm_fw_host *host,
		   const struct hsm_sqe *sqe, uint64_t *result)
{
	struct hsm_cmd c;
	uint16_t st;

	hsm_cmd_decode(&c, fw, host, sqe);
	switch (c.opcode) {
	case HSM_IO_ENCRYPT:
		st = hsm_io_cipher(&c, true);
		break;
	case HSM_IO_DECRYPT:
		st = hsm_io_cipher(&c, false);
		break;
	case HSM_IO_DIGEST:
		st = hsm_io_digest(&c);
		break;
	case HSM_IO_MAC:
		st = hsm_io_mac(&c, false);
		break;
	case HSM_IO_MAC_VERIFY:
		st = hsm_io_mac(&c, true);
		break;
	case HSM_IO_SIGN:
		st = hsm_io_sign(&c, false);
		break;
	case HSM_IO_VERIFY:
		st = hsm_io_sign(&c, true);
		break;
	case HSM_IO_GET_RANDOM:
		st = hsm_cmd_random(&c);
		break;
	case HSM_IO_HASH_UPDATE:
		st = hsm_io_hash(&c, false);
		break;
	case HSM_IO_HASH_FINAL:
		st = hsm_io_hash(&c, true);
		break;
	default:
		st = HSM_SC_INVALID_OPCODE;
		break;
	}
	if (result)
		*result = (st == HSM_SC_SUCCESS ||
			   st == HSM_SC_BUFFER_TOO_SMALL) ? c.result : 0;
	return st;
}
