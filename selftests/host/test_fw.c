// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host unit tests of the hsmcard firmware core.
 *
 * The core runs against a fake host (arena "guest memory" at a non-zero bus
 * address).  Results are checked against independent oracles: published
 * vectors (FIPS 180 "abc", RFC 4231 HMAC, the GCM specification's test
 * cases, RFC 5649 section 6) and host OpenSSL used directly by the test
 * (signatures made in the core are verified with the exported public key,
 * ciphertexts are compared with OpenSSL's for the same key bytes, and the
 * other way round).  Multi-part hashes and HMAC (random split points, state
 * blobs copied, flipped and moved between keys, mechanisms and cards),
 * AES-CBC + HMAC-SHA256 authenc, PKCS#1 RSA imports and key tokens are
 * checked the same way: against OpenSSL one-shot results, RFC 4231 and the
 * public key's own arithmetic.
 *
 * Output: one TAP-like line per check, then "N passed, N failed".
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "fakehost.h"
#include "test_fw.h"

#define MAX_KEYS	256

struct fakehost fh;
static struct hsm_fw *fw;
static struct hsm_fw_config cfg = {
	.serial = "HSMTEST000000042",
	.max_ioq = 8,
	.max_qsize = 1024,
	.max_keys = MAX_KEYS,
	.nr_vectors = 10,
};

static int n_pass, n_fail;

/* ---- reporting ---- */

bool check(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", n_pass + n_fail + 1);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (cond)
		n_pass++;
	else
		n_fail++;
	return cond;
}

bool check_st(uint16_t got, uint16_t want, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (got == want)
		return check(true, "%s: %s", msg, hsm_fw_status_str(want));
	return check(false, "%s: got %s (%#x), want %s", msg,
		     hsm_fw_status_str(got), got, hsm_fw_status_str(want));
}

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;
	unsigned int v;

	while (s[0] && s[1]) {
		if (sscanf(s, "%2x", &v) != 1)
			abort();
		out[n++] = v;
		s += 2;
	}
	return n;
}

static void rnd(void *p, size_t len)
{
	if (RAND_bytes(p, len) != 1)
		abort();
}

/* ---- commands ---- */

void sqe_init(struct hsm_sqe *s, uint8_t opcode)
{
	memset(s, 0, sizeof(*s));
	s->opcode = opcode;
}

uint16_t adm(struct hsm_fw *f, const struct hsm_sqe *s, uint64_t *res)
{
	uint64_t r;

	return hsm_fw_admin(f, &fh.host, s, res ? res : &r);
}

static struct hsm_key_attrs attrs(uint16_t type, uint16_t bits, uint32_t uses,
				  uint32_t flags, uint32_t part)
{
	static unsigned int serial;	/* a label names one key */
	struct hsm_key_attrs a = key_attrs(type, bits, uses, flags, 0, NULL);

	a.partition = htole32(part);
	snprintf(a.label, sizeof(a.label), "test-%u-%u-%u", type, bits,
		 __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
	return a;
}

struct hsm_key_attrs key_attrs(uint16_t type, uint16_t bits, uint32_t uses,
			       uint32_t flags, uint16_t state, const char *label)
{
	struct hsm_key_attrs a;

	memset(&a, 0, sizeof(a));
	a.type = htole16(type);
	a.bits = htole16(bits);
	a.uses = htole32(uses);
	a.flags = htole32(flags);
	a.state = htole16(state);
	if (label)
		snprintf(a.label, sizeof(a.label), "%s", label);
	return a;
}

uint16_t gen_attrs(struct hsm_fw *f, const struct hsm_key_attrs *a, uint64_t *h)
{
	struct hsm_sqe s;

	sqe_init(&s, HSM_ADM_KEY_GENERATE);
	s.src = htole64(fh_put(&fh, a, sizeof(*a)));
	s.src_len = htole32(sizeof(*a));
	return adm(f, &s, h);
}

static uint16_t gen(uint16_t type, uint16_t bits, uint32_t uses,
		    uint32_t flags, uint32_t part, uint64_t *h)
{
	struct hsm_key_attrs a = attrs(type, bits, uses, flags, part);

	return gen_attrs(fw, &a, h);
}

/* KEY_IMPORT or KEY_UNWRAP: src = attrs || payload */
static uint16_t put_key(uint8_t op, uint64_t kek, const struct hsm_key_attrs *a,
			const void *p, size_t len, uint64_t *h)
{
	struct hsm_sqe s;
	uint64_t addr = fh_alloc(&fh, sizeof(*a) + len);

	memcpy(fh_ptr(&fh, addr), a, sizeof(*a));
	memcpy((uint8_t *)fh_ptr(&fh, addr) + sizeof(*a), p, len);
	sqe_init(&s, op);
	s.handle = htole64(kek);
	s.src = htole64(addr);
	s.src_len = htole32(sizeof(*a) + len);
	return adm(fw, &s, h);
}

static uint16_t import(uint16_t type, uint16_t bits, uint32_t uses,
		       uint32_t flags, const void *p, size_t len, uint64_t *h)
{
	struct hsm_key_attrs a = attrs(type, bits, uses, flags, 0);

	return put_key(HSM_ADM_KEY_IMPORT, 0, &a, p, len, h);
}

static uint16_t import_pkey(EVP_PKEY *pk, uint16_t type, uint32_t uses,
			    uint64_t *h)
{
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
	int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	uint16_t st;

	st = import(type, 0, uses, 0, der, len, h);
	OPENSSL_free(der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return st;
}

uint16_t destroy(struct hsm_fw *f, uint64_t h)
{
	struct hsm_sqe s;

	sqe_init(&s, HSM_ADM_KEY_DESTROY);
	s.handle = htole64(h);
	return adm(f, &s, NULL);
}

uint16_t find_label(struct hsm_fw *f, uint32_t part, uint32_t ver,
		   const char *label, uint64_t *h)
{
	uint64_t buf = fh_alloc(&fh, HSM_LABEL_LEN);
	struct hsm_sqe s;

	memset(fh_ptr(&fh, buf), 0, HSM_LABEL_LEN);
	memcpy(fh_ptr(&fh, buf), label, strnlen(label, HSM_LABEL_LEN));
	sqe_init(&s, HSM_ADM_KEY_FIND);
	s.cdw[0] = htole32(part);
	s.cdw[1] = htole32(ver);
	s.src = htole64(buf);
	s.src_len = htole32(HSM_LABEL_LEN);
	return adm(f, &s, h);
}

uint16_t get_attrs(struct hsm_fw *f, uint64_t h, struct hsm_key_attrs *a)
{
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, sizeof(*a));
	uint16_t st;

	sqe_init(&s, HSM_ADM_KEY_GET_ATTRS);
	s.handle = htole64(h);
	s.dst = htole64(d);
	s.dst_len = htole32(sizeof(*a));
	st = adm(f, &s, NULL);
	memcpy(a, fh_ptr(&fh, d), sizeof(*a));
	return st;
}

static uint32_t nr_keys(struct hsm_fw *f)
{
	struct hsm_identify *id;
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, sizeof(*id));

	sqe_init(&s, HSM_ADM_IDENTIFY);
	s.dst = htole64(d);
	s.dst_len = htole32(sizeof(*id));
	if (adm(f, &s, NULL))
		return ~0u;
	id = fh_ptr(&fh, d);
	return le32toh(id->nr_keys);
}

/* EXPORT_PUB parsed back with OpenSSL (NULL on failure) */
static EVP_PKEY *export_pub(uint64_t h, uint16_t *stp)
{
	const unsigned char *p;
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, 2048), res = 0;
	uint16_t st;

	sqe_init(&s, HSM_ADM_KEY_EXPORT_PUB);
	s.handle = htole64(h);
	s.dst = htole64(d);
	s.dst_len = htole32(2048);
	st = adm(fw, &s, &res);
	if (stp)
		*stp = st;
	if (st)
		return NULL;
	p = fh_ptr(&fh, d);
	return d2i_PUBKEY(NULL, &p, (long)res);
}

/* The openssl command line reads the exported SPKI (when it is installed). */
static int cli_reads_spki(uint64_t h)
{
	char path[] = "/tmp/hsm-spki-XXXXXX", cmd[128];
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, 2048), res = 0;
	int fd, ret;

	if (system("openssl version >/dev/null 2>&1"))
		return -1;
	sqe_init(&s, HSM_ADM_KEY_EXPORT_PUB);
	s.handle = htole64(h);
	s.dst = htole64(d);
	s.dst_len = htole32(2048);
	if (adm(fw, &s, &res))
		return 0;
	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	ret = write(fd, fh_ptr(&fh, d), res) == (ssize_t)res;
	close(fd);
	snprintf(cmd, sizeof(cmd),
		 "openssl pkey -pubin -inform DER -in %s -noout 2>/dev/null",
		 path);
	ret = ret && system(cmd) == 0;
	unlink(path);
	return ret;
}

/*
 * One I/O command.  src/dst are flat, or split into src_sg / dst_sg
 * separate pieces described by an SGL.  dst_in (if set) preloads dst (the
 * expected MAC or signature of a verify).  out receives dst_cap bytes.
 */
struct op {
	uint8_t opcode;
	uint8_t flags;
	uint16_t mech;
	uint16_t mparam;
	uint64_t handle;
	uint32_t aux;
	uint8_t iv[16];
	const void *src;
	size_t src_len;
	size_t dst_cap;
	const void *dst_in;
	unsigned int src_sg;
	unsigned int dst_sg;
};

static uint64_t build_sgl(const void *data, size_t len, unsigned int n,
			  uint64_t *pieces, size_t *plen)
{
	struct hsm_sge *sg;
	uint64_t list = fh_alloc(&fh, n * sizeof(*sg));
	size_t off = 0;
	unsigned int i;

	sg = fh_ptr(&fh, list);
	for (i = 0; i < n; i++) {
		size_t l = len / n + (i < len % n);

		pieces[i] = fh_alloc(&fh, l + 64) + 32;	/* not contiguous */
		plen[i] = l;
		if (data)
			memcpy(fh_ptr(&fh, pieces[i]), (const uint8_t *)data + off,
			       l);
		sg[i].addr = htole64(pieces[i]);
		sg[i].len = htole32(l);
		sg[i].rsvd = 0;
		off += l;
	}
	return list;
}

static uint16_t run_io(const struct op *o, void *out, uint64_t *res)
{
	uint64_t dpieces[HSM_MAX_SGE], spieces[HSM_MAX_SGE], r = 0;
	size_t dplen[HSM_MAX_SGE], splen[HSM_MAX_SGE];
	unsigned int ndst = 1, i;
	struct hsm_sqe s;
	uint16_t st;

	sqe_init(&s, o->opcode);
	s.flags = o->flags;
	s.mech = htole16(o->mech);
	s.mparam = htole16(o->mparam);
	s.handle = htole64(o->handle);
	s.aux = htole32(o->aux);
	memcpy(s.iv, o->iv, 16);
	s.src_len = htole32(o->src_len);
	s.dst_len = htole32(o->dst_cap);
	if (o->src_sg) {
		unsigned int n = o->src_sg < o->src_len ? o->src_sg :
							  o->src_len;

		s.flags |= HSM_SQE_F_SRC_SGL;
		s.src = htole64(build_sgl(o->src, o->src_len, n, spieces,
					  splen));
		s.src_nsge = htole16(n);
	} else if (o->src_len) {
		s.src = htole64(o->src ? fh_put(&fh, o->src, o->src_len) :
				fh_alloc(&fh, o->src_len));
	}
	if (o->dst_sg) {
		ndst = o->dst_sg < o->dst_cap ? o->dst_sg : o->dst_cap;
		s.flags |= HSM_SQE_F_DST_SGL;
		s.dst = htole64(build_sgl(o->dst_in, o->dst_cap, ndst,
					  dpieces, dplen));
		s.dst_nsge = htole16(ndst);
	} else {
		dpieces[0] = o->dst_in ? fh_put(&fh, o->dst_in, o->dst_cap) :
					 fh_alloc(&fh, o->dst_cap);
		dplen[0] = o->dst_cap;
		memset(fh_ptr(&fh, dpieces[0]), 0xa5, o->dst_in ? 0 : o->dst_cap);
		s.dst = htole64(o->dst_cap ? dpieces[0] : 0);
	}
	st = hsm_fw_io(fw, &fh.host, &s, &r);
	if (res)
		*res = r;
	if (out) {
		size_t off = 0;

		for (i = 0; i < ndst; i++) {
			memcpy((uint8_t *)out + off, fh_ptr(&fh, dpieces[i]),
			       dplen[i]);
			off += dplen[i];
		}
	}
	return st;
}

/* ---- host OpenSSL oracles ---- */

static int ossl_cipher(const char *name, const uint8_t *key, const uint8_t *iv,
		       int enc, const uint8_t *in, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
	int n = 0, f = 0;

	if (!c || !EVP_CipherInit_ex2(ctx, c, key, iv, enc, NULL))
		abort();
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	if (!EVP_CipherUpdate(ctx, out, &n, in, len) ||
	    !EVP_CipherFinal_ex(ctx, out + n, &f))
		abort();
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return n + f;
}

static void ossl_gcm(const uint8_t *key, size_t klen, const uint8_t *iv,
		     const uint8_t *aad, size_t alen, const uint8_t *in,
		     size_t len, uint8_t *out, uint8_t *tag, size_t taglen)
{
	char name[32];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER *c;
	int n = 0;

	snprintf(name, sizeof(name), "AES-%zu-GCM", klen * 8);
	c = EVP_CIPHER_fetch(NULL, name, NULL);
	if (!EVP_EncryptInit_ex2(ctx, c, key, iv, NULL) ||
	    (alen && !EVP_EncryptUpdate(ctx, NULL, &n, aad, alen)) ||
	    (len && !EVP_EncryptUpdate(ctx, out, &n, in, len)) ||
	    !EVP_EncryptFinal_ex(ctx, out, &n) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, taglen, tag))
		abort();
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
}

static EVP_PKEY *ossl_keygen(const char *alg, const char *param, size_t bits)
{
	EVP_PKEY *pk;

	if (param)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, param);
	else if (bits)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	if (!pk)
		abort();
	return pk;
}

static const char *md_name(uint16_t mech)
{
	switch (mech) {
	case HSM_MECH_SHA256:
		return "SHA256";
	case HSM_MECH_SHA384:
		return "SHA384";
	}
	return "SHA512";
}

static size_t md_size(uint16_t mech)
{
	return mech == HSM_MECH_SHA256 ? 32 : mech == HSM_MECH_SHA384 ? 48 : 64;
}

/* Verify (or sign, when sig_out is set) with host OpenSSL. */
static int ossl_sig(EVP_PKEY *pk, uint16_t mech, uint16_t hash, int salt,
		    const uint8_t *msg, size_t len, uint8_t *sig, size_t *siglen,
		    bool sign)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const char *mdn = mech == HSM_MECH_EDDSA ? NULL : md_name(hash);
	int ok;

	ok = sign ? EVP_DigestSignInit_ex(m, &pctx, mdn, NULL, NULL, pk, NULL) :
		    EVP_DigestVerifyInit_ex(m, &pctx, mdn, NULL, NULL, pk, NULL);
	if (ok != 1)
		abort();
	if (mech == HSM_MECH_RSA_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1))
		abort();
	if (sign)
		ok = EVP_DigestSign(m, sig, siglen, msg, len);
	else
		ok = EVP_DigestVerify(m, sig, *siglen, msg, len);
	EVP_MD_CTX_free(m);
	return ok;
}

/* ---- tests ---- */

static void test_identify(void)
{
	struct hsm_identify id, id2;
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, sizeof(id)), res = 0, mechs;
	uint16_t st;
	uint8_t zero[16] = { 0 };

	sqe_init(&s, HSM_ADM_IDENTIFY);
	s.dst = htole64(d);
	s.dst_len = htole32(sizeof(id));
	st = adm(fw, &s, &res);
	check_st(st, HSM_SC_SUCCESS, "identify");
	memcpy(&id, fh_ptr(&fh, d), sizeof(id));
	check(res == HSM_IDENTIFY_SIZE, "identify result is 4096");
	check(!strncmp(id.serial, cfg.serial, sizeof(id.serial)),
	      "identify serial");
	check(id.model[0] && memchr(id.model, 0, sizeof(id.model)),
	      "identify model is a NUL terminated string");
	check(!strcmp(id.fw_rev, "1.0.0"), "identify fw_rev 1.0.0");
	check(memcmp(id.card_id, zero, 16), "identify card_id is set");
	check(le32toh(id.max_ioq) == cfg.max_ioq &&
	      le32toh(id.max_qsize) == cfg.max_qsize, "identify queue limits");
	check(le32toh(id.max_xfer) == 1u << 20, "identify max_xfer 1 MiB");
	check(le32toh(id.max_sge) == HSM_MAX_SGE, "identify max_sge");
	check(le32toh(id.max_keys) == MAX_KEYS, "identify max_keys");
	check(le32toh(id.nr_keys) == 0, "identify nr_keys 0 on a new card");
	mechs = le64toh(id.mechs);
	check((mechs & (1ull << HSM_MECH_AES_GCM)) &&
	      (mechs & (1ull << HSM_MECH_EDDSA)) &&
	      (mechs & (1ull << HSM_MECH_AES_KWP)) && !(mechs & 1),
	      "identify mechs bitmap");
	check(le32toh(id.key_types) == 0xfe, "identify key_types 1..7");
	check(mechs & (1ull << HSM_MECH_AES_CBC_HMAC_SHA256),
	      "identify mechs has AES-CBC-HMAC-SHA256");
	check(le32toh(id.nr_partitions) == HSM_NR_PARTITIONS &&
	      HSM_NR_PARTITIONS == 16, "identify 16 partitions");

	memset(fh_ptr(&fh, d), 0, sizeof(id));
	adm(fw, &s, NULL);
	memcpy(&id2, fh_ptr(&fh, d), sizeof(id2));
	check(!memcmp(id.card_id, id2.card_id, 16), "card_id is stable");

	s.dst_len = htole32(100);
	st = adm(fw, &s, &res);
	check_st(st, HSM_SC_BUFFER_TOO_SMALL, "identify into 100 bytes");
	check(res == HSM_IDENTIFY_SIZE, "identify reports 4096 needed");
	s.dst_len = htole32(sizeof(id));
	s.dst = htole64(0x1000);
	check_st(adm(fw, &s, NULL), HSM_SC_DATA_XFER,
		 "identify dst outside memory");
	s.dst = htole64(d);
	s.aux = htole32(1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
		 "identify with reserved aux set");
	s.aux = 0;
	s.flags = 0x80;
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
		 "identify with unknown flag");

	{
		bool named = true;
		uint16_t i;

		for (i = 0; i < HSM_SC_MAX; i++)
			named &= strcmp(hsm_fw_status_str(i), "unknown status") != 0;
		check(named && !strcmp(hsm_fw_status_str(HSM_SC_MAX),
				       "unknown status") &&
		      !strcmp(hsm_fw_status_str(0xffff), "unknown status"),
		      "every status code has a name, others are unknown");
	}
	sqe_init(&s, 0x05);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_OPCODE, "admin opcode 0x05");
	sqe_init(&s, HSM_IO_ENCRYPT);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_OPCODE,
		 "I/O opcode on the admin queue");
	sqe_init(&s, 0xff);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_OPCODE, "admin opcode 0xff");
	sqe_init(&s, HSM_ADM_IDENTIFY);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_OPCODE,
		 "admin opcode on an I/O queue");
	sqe_init(&s, 0x8a);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_OPCODE,
		 "I/O opcode 0x8a");
	sqe_init(&s, 0x0f);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_OPCODE, "admin opcode 0x0f");
	sqe_init(&s, 0);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_OPCODE,
		 "I/O opcode 0");
}

static void ioq_sqe(struct hsm_sqe *s, uint32_t qid, uint32_t qsize,
		    uint32_t vec)
{
	sqe_init(s, HSM_ADM_CREATE_IOQ);
	s->cdw[0] = htole32(qid);
	s->cdw[1] = htole32(qsize - 1);
	s->cdw[2] = htole32(vec);
	s->src = htole64(FH_BASE + 0x10000);
	s->dst = htole64(FH_BASE + 0x20000);
}

static void test_queues(void)
{
	struct hsm_sqe s;

	ioq_sqe(&s, 1, 64, 2);
	check_st(adm(fw, &s, NULL), HSM_SC_SUCCESS, "create I/O queue 1");
	check(fh.live_queues == 2 && fh.last_qsize == 64 && fh.last_vector == 2,
	      "create_ioq callback got qid 1, size 64, vector 2");
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QID, "create queue 1 again");
	ioq_sqe(&s, cfg.max_ioq, cfg.max_qsize, cfg.nr_vectors - 1);
	check_st(adm(fw, &s, NULL), HSM_SC_SUCCESS,
		 "create the last queue, largest size, last vector");
	ioq_sqe(&s, 0, 64, 2);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QID, "create queue 0");
	ioq_sqe(&s, cfg.max_ioq + 1, 64, 2);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QID, "create queue max+1");
	ioq_sqe(&s, 2, 1, 2);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QSIZE, "queue size 1");
	ioq_sqe(&s, 2, cfg.max_qsize + 1, 2);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QSIZE, "queue size max+1");
	ioq_sqe(&s, 2, 64, 0xffffffffu);
	s.cdw[1] = htole32(0xffffffffu);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QSIZE,
		 "queue size field 0xffffffff");
	ioq_sqe(&s, 2, 64, 1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_VECTOR, "admin vector 1");
	ioq_sqe(&s, 2, 64, cfg.nr_vectors);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_VECTOR,
		 "vector beyond the MSI-X table");
	ioq_sqe(&s, 2, 64, 2);
	s.src = htole64(FH_BASE + 0x10800);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD, "unaligned SQ base");
	ioq_sqe(&s, 2, 64, 2);
	s.dst = 0;
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD, "CQ base 0");
	ioq_sqe(&s, 2, 64, 2);
	s.cdw[3] = htole32(1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD, "reserved cdw[3]");
	ioq_sqe(&s, 2, 64, 2);
	s.handle = htole64(1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD, "reserved handle");
	ioq_sqe(&s, 2, 64, 2);
	s.src_len = htole32(4096);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD, "reserved src_len");

	sqe_init(&s, HSM_ADM_DELETE_IOQ);
	s.cdw[0] = htole32(1);
	check_st(adm(fw, &s, NULL), HSM_SC_SUCCESS, "delete queue 1");
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QID, "delete queue 1 again");
	s.cdw[0] = htole32(cfg.max_ioq);
	check_st(adm(fw, &s, NULL), HSM_SC_SUCCESS, "delete the last queue");
	check(fh.live_queues == 0 && fh.nr_delete == 2, "no queue left");
	s.cdw[0] = 0;
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_QID, "delete queue 0");
	s.cdw[0] = htole32(1);
	s.cdw[1] = htole32(5);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
		 "delete with reserved cdw[1]");
}

static void test_random(void)
{
	uint8_t a[64], b[64], zero[64] = { 0 }, big[1000];
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, 64), res = 0;
	struct op o = { .opcode = HSM_IO_GET_RANDOM, .dst_cap = 1000,
			.dst_sg = 3 };

	sqe_init(&s, HSM_ADM_GET_RANDOM);
	s.dst = htole64(d);
	s.dst_len = htole32(64);
	check_st(adm(fw, &s, &res), HSM_SC_SUCCESS, "admin GET_RANDOM 64");
	memcpy(a, fh_ptr(&fh, d), 64);
	adm(fw, &s, NULL);
	memcpy(b, fh_ptr(&fh, d), 64);
	check(res == 64 && memcmp(a, b, 64) && memcmp(a, zero, 64),
	      "random bytes differ between calls");
	s.dst_len = 0;
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_LENGTH, "GET_RANDOM 0 bytes");
	s.dst_len = htole32((1u << 20) + 1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_LENGTH,
		 "GET_RANDOM max_xfer + 1");
	s.dst_len = htole32(64);
	s.dst = htole64(FH_BASE + FH_SIZE - 32);
	check_st(adm(fw, &s, NULL), HSM_SC_DATA_XFER,
		 "GET_RANDOM crossing the end of memory");
	s.dst = htole64(d);
	s.mech = htole16(1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
		 "GET_RANDOM with reserved mech");

	memset(big, 0, sizeof(big));
	check_st(run_io(&o, big, &res), HSM_SC_SUCCESS,
		 "I/O GET_RANDOM 1000 bytes into a 3-entry SGL");
	check(res == 1000 && memcmp(big + 990, zero, 10) &&
	      memcmp(big, zero, 10), "random SGL filled to the end");
}

static void test_keygen(void)
{
	static const struct {
		uint16_t type, bits, want_bits;
	} ok_cases[] = {
		{ HSM_KEY_AES, 128, 128 }, { HSM_KEY_AES, 192, 192 },
		{ HSM_KEY_AES, 256, 256 }, { HSM_KEY_AES, 512, 512 },
		{ HSM_KEY_HMAC, 0, 256 }, { HSM_KEY_HMAC, 128, 128 },
		{ HSM_KEY_HMAC, 512, 512 }, { HSM_KEY_HMAC, 1024, 1024 },
		{ HSM_KEY_RSA, 2048, 2048 }, { HSM_KEY_EC_P256, 0, 256 },
		{ HSM_KEY_EC_P384, 384, 384 }, { HSM_KEY_ED25519, 0, 256 },
	};
	static const struct {
		uint16_t type, bits;
		uint16_t st;
	} bad_cases[] = {
		{ HSM_KEY_AES, 0, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_AES, 100, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_AES, 384, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_HMAC, 120, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_HMAC, 130, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_HMAC, 1032, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_RSA, 0, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_RSA, 1024, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_EC_P256, 384, HSM_SC_INVALID_KEY_SIZE },
		{ HSM_KEY_ED25519, 255, HSM_SC_INVALID_KEY_SIZE },
		{ 0, 128, HSM_SC_INVALID_FIELD },
		{ HSM_KEY_TYPE_MAX, 128, HSM_SC_INVALID_FIELD },
	};
	struct hsm_key_attrs a;
	struct hsm_sqe s;
	uint64_t h, h2;
	unsigned int i;
	uint16_t st;
	time_t now = time(NULL);
	char prefix[32];

	for (i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		st = gen(ok_cases[i].type, ok_cases[i].bits, 0, 0, 0, &h);
		check_st(st, HSM_SC_SUCCESS, "generate type %u bits %u",
			 ok_cases[i].type, ok_cases[i].bits);
		if (st)
			continue;
		st = get_attrs(fw, h, &a);
		snprintf(prefix, sizeof(prefix), "test-%u-%u-",
			 ok_cases[i].type, ok_cases[i].bits);
		check(!st && le64toh(a.handle) == h &&
		      le16toh(a.type) == ok_cases[i].type &&
		      le16toh(a.bits) == ok_cases[i].want_bits &&
		      le32toh(a.uses) != 0 && le32toh(a.flags) == 0 &&
		      le32toh(a.partition) == 0 &&
		      (time_t)le64toh(a.created) >= now - 5 &&
		      (time_t)le64toh(a.created) <= time(NULL) &&
		      !strncmp(a.label, prefix, strlen(prefix)) &&
		      le16toh(a.state) == HSM_KEY_STATE_ACTIVE &&
		      le32toh(a.version) == 1 &&
		      le64toh(a.activated) == le64toh(a.created) &&
		      !a.deactivated && !a.id_len && !a.rsvd[0] && !a.rsvd[1],
		      "attributes of type %u bits %u (bits %u, uses %#x)",
		      ok_cases[i].type, ok_cases[i].bits, le16toh(a.bits),
		      le32toh(a.uses));
		check_st(destroy(fw, h), HSM_SC_SUCCESS, "destroy it");
	}
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		check_st(gen(bad_cases[i].type, bad_cases[i].bits, 0, 0, 0, &h),
			 bad_cases[i].st, "generate type %u bits %u",
			 bad_cases[i].type, bad_cases[i].bits);

	check(!gen(HSM_KEY_AES, 256, 0, 0, 0, &h) && !get_attrs(fw, h, &a) &&
	      le32toh(a.uses) == (HSM_USE_ENCRYPT | HSM_USE_DECRYPT),
	      "AES default uses: encrypt, decrypt");
	destroy(fw, h);
	check(!gen(HSM_KEY_EC_P256, 0, 0, 0, 0, &h) && !get_attrs(fw, h, &a) &&
	      le32toh(a.uses) == (HSM_USE_SIGN | HSM_USE_VERIFY),
	      "EC default uses: sign, verify");
	destroy(fw, h);

	check_st(gen(HSM_KEY_AES, 128, HSM_USE_SIGN, 0, 0, &h),
		 HSM_SC_INVALID_FIELD, "AES key with sign use");
	check_st(gen(HSM_KEY_AES, 128, HSM_USE_DERIVE, 0, 0, &h),
		 HSM_SC_INVALID_FIELD, "derive use");
	check_st(gen(HSM_KEY_HMAC, 256, HSM_USE_ENCRYPT, 0, 0, &h),
		 HSM_SC_INVALID_FIELD, "HMAC key with encrypt use");
	check_st(gen(HSM_KEY_AES, 128, 0x80, 0, 0, &h),
		 HSM_SC_INVALID_FIELD, "unknown use bit");
	check_st(gen(HSM_KEY_AES, 128, 0, 0x10, 0, &h),
		 HSM_SC_INVALID_FIELD, "unknown flag bit");
	check_st(gen(HSM_KEY_AES, 128, 0, HSM_KEYF_PERSISTENT, 0, &h),
		 HSM_SC_INVALID_FIELD,
		 "persistent key without a persistent store");
	check_st(gen(HSM_KEY_AES, 128, 0, 0, 2, &h),
		 HSM_SC_INVALID_FIELD, "partition 2");

	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	a.rsvd[1] = htole32(1);
	check_st(gen_attrs(fw, &a, &h), HSM_SC_INVALID_FIELD, "reserved attr");
	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	a.handle = htole64(5);
	check_st(gen_attrs(fw, &a, &h), HSM_SC_INVALID_FIELD,
		 "output-only handle set");
	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	a.created = htole64(5);
	check_st(gen_attrs(fw, &a, &h), HSM_SC_INVALID_FIELD,
		 "output-only created set");
	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	memset(a.label, 'x', sizeof(a.label));
	check_st(gen_attrs(fw, &a, &h), HSM_SC_INVALID_FIELD,
		 "label without NUL");
	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	a.label[40] = 'x';
	check_st(gen_attrs(fw, &a, &h), HSM_SC_INVALID_FIELD,
		 "label with bytes after its NUL");
	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	memset(a.label, 'y', sizeof(a.label) - 1);
	a.label[63] = 0;
	check_st(gen_attrs(fw, &a, &h), HSM_SC_SUCCESS, "63-char label");
	destroy(fw, h);

	a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	sqe_init(&s, HSM_ADM_KEY_GENERATE);
	s.src = htole64(fh_put(&fh, &a, sizeof(a)));
	s.src_len = htole32(sizeof(a) - 1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_LENGTH, "attrs 1 byte short");
	s.src_len = htole32(sizeof(a) + 1);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_LENGTH, "attrs 1 byte long");
	s.src_len = htole32(128);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_LENGTH,
		 "attrs of 128 bytes (the old size)");
	s.src_len = htole32(sizeof(a));
	s.src = htole64(FH_BASE - sizeof(a));
	check_st(adm(fw, &s, NULL), HSM_SC_DATA_XFER, "attrs outside memory");
	s.src = htole64(fh_put(&fh, &a, sizeof(a)));
	s.dst = htole64(FH_BASE);
	check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD, "generate with dst");

	/* attrs through an SGL, in partition 1 */
	{
		struct hsm_key_attrs b = attrs(HSM_KEY_AES, 256, 0,
					       HSM_KEYF_EXTRACTABLE, 1);
		uint64_t p[4];
		size_t l[4];

		sqe_init(&s, HSM_ADM_KEY_GENERATE);
		s.flags = HSM_SQE_F_SRC_SGL;
		s.src = htole64(build_sgl(&b, sizeof(b), 3, p, l));
		s.src_nsge = htole16(3);
		s.src_len = htole32(sizeof(b));
		check_st(adm(fw, &s, &h2), HSM_SC_SUCCESS,
			 "generate with attrs in a 3-entry SGL");
		check(HSM_HANDLE_PART(h2) == 1 && !get_attrs(fw, h2, &a) &&
		      le32toh(a.partition) == 1 &&
		      le32toh(a.flags) == HSM_KEYF_EXTRACTABLE,
		      "handle and attrs carry partition 1");
		destroy(fw, h2);
	}
}

static void test_handles(void)
{
	struct hsm_key_attrs a;
	uint64_t h, h2;
	uint8_t buf[16] = { 0 };
	struct op o = { .opcode = HSM_IO_ENCRYPT, .mech = HSM_MECH_AES_ECB,
			.src = buf, .src_len = 16, .dst_cap = 16 };

	gen(HSM_KEY_AES, 128, 0, 0, 0, &h);
	check(h != 0 && HSM_HANDLE_TAG(h) != 0, "handle has a random tag");
	o.handle = h;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS, "use the key");
	check_st(get_attrs(fw, h ^ (1ull << 40), &a), HSM_SC_INVALID_HANDLE,
		 "handle with a wrong tag");
	check_st(get_attrs(fw, h ^ (1ull << 24), &a), HSM_SC_INVALID_HANDLE,
		 "handle with another partition");
	check_st(get_attrs(fw, (h & ~0xffffffull) | 0xfffff0, &a),
		 HSM_SC_INVALID_HANDLE, "handle with a slot out of range");
	check_st(get_attrs(fw, 0, &a), HSM_SC_INVALID_HANDLE, "handle 0");
	check_st(destroy(fw, h), HSM_SC_SUCCESS, "destroy");
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_HANDLE,
		 "use a destroyed key");
	check_st(get_attrs(fw, h, &a), HSM_SC_INVALID_HANDLE,
		 "attrs of a destroyed key");
	check_st(destroy(fw, h), HSM_SC_INVALID_HANDLE, "destroy twice");
	gen(HSM_KEY_AES, 128, 0, 0, 0, &h2);
	o.handle = h;
	check(h2 != h && run_io(&o, NULL, NULL) == HSM_SC_INVALID_HANDLE,
	      "stale handle stays invalid after its slot is reused");
	destroy(fw, h2);
}

static void test_keystore_full(void)
{
	struct hsm_fw_config c = cfg;
	struct hsm_key_attrs a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	struct hsm_fw *f;
	uint64_t h[5];
	char *err = NULL;
	int i;

	c.max_keys = 4;
	f = hsm_fw_new(&c, &err);
	check(f != NULL, "card with 4 key slots");
	if (!f)
		return;
	for (i = 0; i < 4; i++) {
		gen_attrs(f, &a, &h[i]);
		a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	}
	check_st(gen_attrs(f, &a, &h[4]), HSM_SC_KEYSTORE_FULL, "fifth key");
	destroy(f, h[1]);
	check_st(gen_attrs(f, &a, &h[4]), HSM_SC_SUCCESS,
		 "a key fits again after a destroy");
	hsm_fw_free(f);

	c = cfg;
	c.max_ioq = 0;
	f = hsm_fw_new(&c, &err);
	check(!f && err, "max_ioq 0 refused: %s", err ? err : "");
	free(err);
	c = cfg;
	c.nr_vectors = 2;
	f = hsm_fw_new(&c, &err);
	check(!f && err, "2 vectors refused: %s", err ? err : "");
	free(err);
}

static void test_list(void)
{
	uint64_t h[5], res = 0, got[8];
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, 64);
	int i, seen = 0, j;

	for (i = 0; i < 5; i++)
		gen(HSM_KEY_AES, 128, 0, 0, i == 4, &h[i]);
	sqe_init(&s, HSM_ADM_KEY_LIST);
	s.dst = htole64(d);
	s.dst_len = htole32(64);
	check_st(adm(fw, &s, &res), HSM_SC_SUCCESS, "list partition 0");
	check(res >> 32 == 4 && (res & 0xffffffff) == 4,
	      "4 keys in partition 0, 4 returned (%#llx)",
	      (unsigned long long)res);
	memcpy(got, fh_ptr(&fh, d), 32);
	for (i = 0; i < 4; i++)
		for (j = 0; j < 4; j++)
			seen += le64toh(got[j]) == h[i];
	check(seen == 4, "the list holds exactly the partition's handles");
	s.aux = htole32(3);
	check(!adm(fw, &s, &res) && res == ((4ull << 32) | 1) &&
	      le64toh(*(uint64_t *)fh_ptr(&fh, d)) == le64toh(got[3]),
	      "cursor 3 returns the last one");
	s.aux = 0;
	s.dst_len = htole32(16);
	check(!adm(fw, &s, &res) && res == ((4ull << 32) | 2),
	      "room for 2 returns 2 of 4");
	s.dst_len = 0;
	s.dst = 0;
	check(!adm(fw, &s, &res) && res == 4ull << 32, "count only");
	s.cdw[0] = htole32(1);
	s.dst = htole64(d);
	s.dst_len = htole32(64);
	check(!adm(fw, &s, &res) && res == ((1ull << 32) | 1) &&
	      le64toh(*(uint64_t *)fh_ptr(&fh, d)) == h[4],
	      "partition 1 holds its one key");
	s.cdw[0] = htole32(2);
	check_st(adm(fw, &s, &res), HSM_SC_INVALID_FIELD, "list partition 2");
	s.cdw[0] = 0;
	s.dst = htole64(0x10);
	check_st(adm(fw, &s, &res), HSM_SC_DATA_XFER, "list to bad memory");
	for (i = 0; i < 5; i++)
		destroy(fw, h[i]);
}

/* AES modes against host OpenSSL, both directions, flat and SGL */
static void test_aes(void)
{
	static const struct {
		uint16_t mech;
		const char *mode;
		size_t len;
	} modes[] = {
		{ HSM_MECH_AES_ECB, "ECB", 4096 },
		{ HSM_MECH_AES_CBC, "CBC", 4096 + 48 },
		{ HSM_MECH_AES_CTR, "CTR", 1001 },
		{ HSM_MECH_AES_CTR, "CTR", 5 },
	};
	static const size_t klens[] = { 16, 24, 32 };
	uint8_t key[64], in[8192], want[8192], got[8192 + 64];
	uint64_t h, res;
	char name[32];
	unsigned int i, m, sg;
	struct op o;

	rnd(in, sizeof(in));
	for (i = 0; i < 3; i++) {
		rnd(key, klens[i]);
		import(HSM_KEY_AES, 0, 0, 0, key, klens[i], &h);
		for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			for (sg = 0; sg < 2; sg++) {
				memset(&o, 0, sizeof(o));
				o.opcode = HSM_IO_ENCRYPT;
				o.mech = modes[m].mech;
				o.handle = h;
				if (o.mech != HSM_MECH_AES_ECB)
					rnd(o.iv, 16);
				if (o.mech == HSM_MECH_AES_CTR)
					memset(o.iv + 8, 0xff, 8); /* carry */
				o.src = in;
				o.src_len = modes[m].len;
				o.dst_cap = modes[m].len;
				o.src_sg = sg ? 7 : 0;
				o.dst_sg = sg ? 3 : 0;
				snprintf(name, sizeof(name), "AES-%zu-%s",
					 klens[i] * 8, modes[m].mode);
				ossl_cipher(name, key,
					    o.mech == HSM_MECH_AES_ECB ? NULL : o.iv,
					    1, in, modes[m].len, want);
				check(!run_io(&o, got, &res) &&
				      res == modes[m].len &&
				      !memcmp(got, want, modes[m].len),
				      "%s encrypt %zu bytes%s equals OpenSSL",
				      name, modes[m].len, sg ? " (SGL)" : "");
				o.opcode = HSM_IO_DECRYPT;
				o.src = want;
				check(!run_io(&o, got, &res) &&
				      !memcmp(got, in, modes[m].len),
				      "%s decrypt of OpenSSL's ciphertext%s",
				      name, sg ? " (SGL)" : "");
			}
		}
		destroy(fw, h);
	}

	/* XTS: 256-bit (AES-128-XTS) and 512-bit keys, stealing included */
	for (i = 0; i < 2; i++) {
		static const size_t lens[] = { 16, 17, 31, 512, 4096 + 5 };
		size_t kl = i ? 64 : 32, l;

		rnd(key, kl);
		import(HSM_KEY_AES, 0, 0, 0, key, kl, &h);
		snprintf(name, sizeof(name), "AES-%zu-XTS", kl * 4);
		for (l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			memset(&o, 0, sizeof(o));
			o.opcode = HSM_IO_ENCRYPT;
			o.mech = HSM_MECH_AES_XTS;
			o.handle = h;
			rnd(o.iv, 16);
			o.src = in;
			o.src_len = lens[l];
			o.dst_cap = lens[l];
			o.src_sg = lens[l] > 100 ? 5 : 0;
			ossl_cipher(name, key, o.iv, 1, in, lens[l], want);
			check(!run_io(&o, got, &res) && res == lens[l] &&
			      !memcmp(got, want, lens[l]),
			      "%s encrypt %zu bytes equals OpenSSL", name,
			      lens[l]);
			o.opcode = HSM_IO_DECRYPT;
			o.src = want;
			check(!run_io(&o, got, NULL) &&
			      !memcmp(got, in, lens[l]),
			      "%s decrypt %zu bytes", name, lens[l]);
		}
		destroy(fw, h);
	}
}

static void test_gcm(void)
{
	uint8_t key[32], iv[12], pt[64], ct[64], tag[16], aad[20];
	uint8_t buf[256], got[256], want[256], wtag[16];
	size_t plen, clen, alen;
	uint64_t h, res;
	struct op o;
	unsigned int i;

	/* GCM specification, test cases 3 and 4 (AES-128) */
	unhex("feffe9928665731c6d6a8f9467308308", key);
	unhex("cafebabefacedbaddecaf888", iv);
	plen = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
		     "8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
		     "ba637b391aafd255", pt);
	clen = unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e23"
		     "29aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac97"
		     "3d58e091473f5985", ct);
	unhex("4d5c2af327cd64a62cf35abd2ba6fab4", tag);
	import(HSM_KEY_AES, 128, 0, 0, key, 16, &h);
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_AES_GCM;
	o.handle = h;
	memcpy(o.iv, iv, 12);
	o.src = pt;
	o.src_len = plen;
	o.dst_cap = plen + 16;
	check(!run_io(&o, got, &res) && res == plen + 16 &&
	      clen == plen && !memcmp(got, ct, clen) &&
	      !memcmp(got + clen, tag, 16), "GCM spec test case 3");

	alen = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad);
	unhex("5bc94fbc3221a5db94fae95ae7121a47", tag);
	memcpy(buf, aad, alen);
	memcpy(buf + alen, pt, 60);
	o.src = buf;
	o.src_len = alen + 60;
	o.aux = alen;
	o.dst_cap = 76;
	o.src_sg = 4;
	o.dst_sg = 2;
	check(!run_io(&o, got, &res) && res == 76 && !memcmp(got, ct, 60) &&
	      !memcmp(got + 60, tag, 16),
	      "GCM spec test case 4 (AAD, SGL)");

	/* decrypt: AAD || ciphertext || tag */
	memcpy(buf + alen, ct, 60);
	memcpy(buf + alen + 60, tag, 16);
	o.opcode = HSM_IO_DECRYPT;
	o.src_len = alen + 76;
	o.dst_cap = 60;
	check(!run_io(&o, got, &res) && res == 60 && !memcmp(got, pt, 60),
	      "GCM spec test case 4 decrypt");
	buf[alen + 75] ^= 1;
	o.src_sg = 0;
	o.dst_sg = 0;
	memset(got, 0, sizeof(got));
	check_st(run_io(&o, got, &res), HSM_SC_VERIFY_FAILED,
		 "GCM decrypt with a flipped tag bit");
	check(got[0] == 0xa5 && got[59] == 0xa5 && res == 0,
	      "no plaintext written on tag failure");
	buf[alen + 75] ^= 1;
	buf[0] ^= 1;
	check_st(run_io(&o, got, NULL), HSM_SC_VERIFY_FAILED,
		 "GCM decrypt with altered AAD");
	destroy(fw, h);

	/* random keys, 12-byte tags, AAD only, against OpenSSL */
	for (i = 0; i < 3; i++) {
		size_t kl = 16 + 8 * i;

		rnd(key, kl);
		rnd(buf, sizeof(buf));
		import(HSM_KEY_AES, 0, 0, 0, key, kl, &h);
		memset(&o, 0, sizeof(o));
		o.opcode = HSM_IO_ENCRYPT;
		o.mech = HSM_MECH_AES_GCM;
		o.mparam = 12;
		o.handle = h;
		rnd(o.iv, 12);
		o.aux = 13;
		o.src = buf;
		o.src_len = 200;
		o.dst_cap = 187 + 12;
		ossl_gcm(key, kl, o.iv, buf, 13, buf + 13, 187, want, wtag, 12);
		check(!run_io(&o, got, &res) && res == 199 &&
		      !memcmp(got, want, 187) && !memcmp(got + 187, wtag, 12),
		      "AES-%zu-GCM, 12-byte tag, equals OpenSSL", kl * 8);
		o.src_len = 13;
		o.dst_cap = 12;
		ossl_gcm(key, kl, o.iv, buf, 13, NULL, 0, want, wtag, 12);
		check(!run_io(&o, got, &res) && res == 12 &&
		      !memcmp(got, wtag, 12),
		      "AES-%zu-GCM with AAD only (GMAC)", kl * 8);
		destroy(fw, h);
	}
}

static void enc_op(struct op *o, uint16_t mech, uint64_t h, const void *buf,
		   size_t len, size_t cap)
{
	memset(o, 0, sizeof(*o));
	o->opcode = HSM_IO_ENCRYPT;
	o->mech = mech;
	o->handle = h;
	o->src = buf;
	o->src_len = len;
	o->dst_cap = cap;
}

static void test_cipher_errors(void)
{
	uint8_t key[64], buf[64] = { 0 };
	struct hsm_sge *sg;
	uint64_t h, h512, hdec, hmac, res, list, p[2];
	size_t l[2];
	struct hsm_sqe s;
	struct op o;

	rnd(key, 64);
	import(HSM_KEY_AES, 128, 0, 0, key, 16, &h);
	import(HSM_KEY_AES, 512, 0, 0, key, 64, &h512);
	import(HSM_KEY_AES, 128, HSM_USE_DECRYPT, 0, key, 16, &hdec);
	import(HSM_KEY_HMAC, 0, 0, 0, key, 32, &hmac);

#define OP(m, len, cap) enc_op(&o, (m), h, buf, (len), (cap))

	OP(HSM_MECH_AES_ECB, 15, 64);
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH, "ECB 15 bytes");
	OP(HSM_MECH_AES_CBC, 17, 64);
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH, "CBC 17 bytes");
	OP(HSM_MECH_AES_CTR, 0, 64);
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH, "CTR 0 bytes");
	OP(HSM_MECH_AES_CTR, 16, 64);
	o.src = NULL;
	o.src_len = (1u << 20) + 16;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "CTR beyond max_xfer");
	OP(HSM_MECH_AES_XTS, 15, 64);
	o.handle = h512;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH, "XTS 15 bytes");
	OP(HSM_MECH_AES_XTS, 32, 64);
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_KEY_SIZE,
		 "XTS with a 128-bit key");
	OP(HSM_MECH_AES_CBC, 32, 64);
	o.handle = h512;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_KEY_SIZE,
		 "CBC with a 512-bit key");
	OP(HSM_MECH_AES_CBC, 32, 31);
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "CBC into 31 bytes");
	check(res == 32, "reports 32 bytes needed");
	OP(HSM_MECH_AES_GCM, 32, 47);
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "GCM encrypt without room for the tag");
	check(res == 48, "reports 48 bytes needed");
	OP(HSM_MECH_AES_GCM, 32, 64);
	o.mparam = 3;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD, "GCM tag of 3");
	o.mparam = 17;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD, "GCM tag of 17");
	o.mparam = 0;
	o.aux = 33;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "GCM AAD longer than src");
	o.aux = 0;
	o.iv[15] = 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "GCM nonce with reserved bytes 12..15 set");
	OP(HSM_MECH_AES_GCM, 15, 64);
	o.opcode = HSM_IO_DECRYPT;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "GCM decrypt shorter than the tag");
	OP(HSM_MECH_AES_ECB, 16, 64);
	o.iv[0] = 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD, "ECB with an IV");
	OP(HSM_MECH_AES_CBC, 16, 64);
	o.mparam = 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD, "CBC with mparam");
	OP(HSM_MECH_AES_CBC, 16, 64);
	o.aux = 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD, "CBC with aux");
	OP(99, 16, 64);
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_MECH, "mechanism 99");
	OP(HSM_MECH_SHA256, 16, 64);
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_MECH,
		 "encrypt with a digest mechanism");
	OP(HSM_MECH_AES_CBC, 16, 64);
	o.handle = hmac;
	check_st(run_io(&o, NULL, NULL), HSM_SC_KEY_TYPE,
		 "AES mode with an HMAC key");
	OP(HSM_MECH_AES_CBC, 16, 64);
	o.handle = hdec;
	check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
		 "encrypt with a decrypt-only key");
	o.opcode = HSM_IO_DECRYPT;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
		 "decrypt with the decrypt-only key");
	OP(HSM_MECH_AES_CBC, 16, 64);
	o.flags = HSM_SQE_F_PREHASHED;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "PREHASHED flag on encrypt");
	o.flags = 0x40;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD, "unknown flag");

	/* raw SQEs for SGL and DMA faults */
	sqe_init(&s, HSM_IO_ENCRYPT);
	s.mech = htole16(HSM_MECH_AES_CTR);
	s.handle = htole64(h);
	s.src = htole64(fh_put(&fh, buf, 32));
	s.src_len = htole32(32);
	s.dst = htole64(fh_alloc(&fh, 32));
	s.dst_len = htole32(32);
	s.src_nsge = htole16(1);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_FIELD,
		 "src_nsge without the SGL flag");
	s.src_nsge = 0;
	s.src = htole64(8);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_DATA_XFER,
		 "flat src outside memory");
	s.src = htole64(FH_BASE + FH_SIZE - 16);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_DATA_XFER,
		 "flat src running off the end of memory");
	s.src = htole64(UINT64_MAX - 8);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_DATA_XFER,
		 "flat src wrapping around 2^64");
	s.src = htole64(fh_put(&fh, buf, 32));
	s.dst = htole64(FH_BASE + FH_SIZE);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_DATA_XFER,
		 "dst outside memory");
	s.dst = htole64(fh_alloc(&fh, 32));

	list = build_sgl(buf, 32, 2, p, l);
	sg = fh_ptr(&fh, list);
	s.flags = HSM_SQE_F_SRC_SGL;
	s.src = htole64(list);
	s.src_nsge = htole16(2);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_SUCCESS,
		 "2-entry SGL baseline");
	s.src_nsge = 0;
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "SGL with 0 entries");
	s.src_nsge = htole16(HSM_MAX_SGE + 1);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "SGL with 257 entries");
	s.src_nsge = htole16(2);
	s.src_len = htole32(31);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "SGL total != src_len");
	s.src_len = htole32(32);
	sg[1].rsvd = htole32(1);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "SGL entry with reserved bits");
	sg[1].rsvd = 0;
	sg[1].len = 0;
	sg[0].len = htole32(32);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "SGL entry of length 0");
	sg[0].len = htole32(16);
	sg[1].len = htole32(16);
	sg[1].addr = htole64(0x1000);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_DATA_XFER,
		 "SGL entry outside memory");
	sg[1].addr = htole64(UINT64_MAX - 4);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "SGL entry wrapping around 2^64");
	sg[1].addr = htole64(p[1]);
	s.src = htole64(FH_BASE + FH_SIZE - 16);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_DATA_XFER,
		 "SGL list itself outside memory");
	s.src = htole64(list);
	s.flags = HSM_SQE_F_SRC_SGL | HSM_SQE_F_DST_SGL;
	s.dst = htole64(list);
	s.dst_nsge = htole16(1);
	check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_INVALID_SGL,
		 "dst SGL smaller than dst_len");

	/* 256 entries of one byte each: the maximum */
	{
		uint8_t big[256], want[256];

		rnd(big, sizeof(big));
		memset(&o, 0, sizeof(o));
		o.opcode = HSM_IO_ENCRYPT;
		o.mech = HSM_MECH_AES_CTR;
		o.handle = h;
		o.src = big;
		o.src_len = 256;
		o.dst_cap = 256;
		o.src_sg = HSM_MAX_SGE;
		o.dst_sg = HSM_MAX_SGE;
		ossl_cipher("AES-128-CTR", key, o.iv, 1, big, 256, want);
		check(!run_io(&o, big, &res) && !memcmp(big, want, 256),
		      "CTR with 256-entry SGLs equals OpenSSL");
	}
#undef OP
	destroy(fw, h);
	destroy(fw, h512);
	destroy(fw, hdec);
	destroy(fw, hmac);
}

static void test_digest(void)
{
	static const struct {
		uint16_t mech;
		const char *abc;
	} v[] = {
		{ HSM_MECH_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9"
				   "cb410ff61f20015ad" },
		{ HSM_MECH_SHA384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded16"
				   "31a8b605a43ff5bed8086072ba1e7cc2358baeca134c8"
				   "25a7" },
		{ HSM_MECH_SHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea"
				   "20a9eeee64b55d39a2192992a274fc1a836ba3c23a3fe"
				   "ebbd454d4423643ce80e2a9ac94fa54ca49f" },
	};
	uint8_t want[64], got[64], *big;
	size_t n, dl;
	uint64_t res;
	unsigned int i;
	struct op o;

	for (i = 0; i < 3; i++) {
		memset(&o, 0, sizeof(o));
		o.opcode = HSM_IO_DIGEST;
		o.mech = v[i].mech;
		o.src = "abc";
		o.src_len = 3;
		o.dst_cap = 64;
		n = unhex(v[i].abc, want);
		check(!run_io(&o, got, &res) && res == n &&
		      !memcmp(got, want, n), "FIPS 180 %s(\"abc\")",
		      md_name(v[i].mech));
	}
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_DIGEST;
	o.mech = HSM_MECH_SHA256;
	o.dst_cap = 32;
	unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	      want);
	check(!run_io(&o, got, &res) && res == 32 && !memcmp(got, want, 32),
	      "SHA-256 of the empty message");

	big = malloc(1u << 20);
	rnd(big, 1u << 20);
	o.mech = HSM_MECH_SHA512;
	o.src = big;
	o.src_len = 1u << 20;
	o.src_sg = 200;
	o.dst_cap = 64;
	EVP_Q_digest(NULL, "SHA512", NULL, big, 1u << 20, want, &dl);
	check(!run_io(&o, got, &res) && res == 64 && !memcmp(got, want, 64),
	      "SHA-512 of 1 MiB in 200 pieces equals OpenSSL");
	free(big);

	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_DIGEST;
	o.mech = HSM_MECH_SHA384;
	o.src = "abc";
	o.src_len = 3;
	o.dst_cap = 47;
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "SHA-384 into 47 bytes");
	check(res == 48, "reports 48 needed");
	o.dst_cap = 64;
	o.mech = HSM_MECH_AES_CBC;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_MECH,
		 "digest with an AES mechanism");
	o.mech = HSM_MECH_SHA256;
	o.handle = 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "digest with a handle");
	o.handle = 0;
	o.src = NULL;
	o.src_len = (1u << 20) + 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "digest beyond max_xfer");
}

static void test_hmac(void)
{
	static const struct {
		uint16_t mech;
		const char *mac;
	} tc1[] = {
		{ HSM_MECH_HMAC_SHA256, "b0344c61d8db38535ca8afceaf0bf12b881dc200c"
					"9833da726e9376c2e32cff7" },
		{ HSM_MECH_HMAC_SHA384, "afd03944d84895626b0825f4ab46907f15f9dadbe"
					"4101ec682aa034c7cebc59cfaea9ea9076ede7f4a"
					"f152e8b2fa9cb6" },
		{ HSM_MECH_HMAC_SHA512, "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2c"
					"e4ec2787ad0b30545e17cdedaa833b7d6b8a70203"
					"8b274eaea3f4e4be9d914eeb61f1702e696c203a1"
					"26854" },
	};
	uint8_t key[20], want[64], got[64], data[50];
	uint64_t h, h2, hv, haes, res;
	unsigned int i;
	size_t n;
	struct op o;

	memset(key, 0x0b, 20);
	check_st(import(HSM_KEY_HMAC, 0, 0, 0, key, 20, &h), HSM_SC_SUCCESS,
		 "import the RFC 4231 case 1 key (160 bits)");
	for (i = 0; i < 3; i++) {
		memset(&o, 0, sizeof(o));
		o.opcode = HSM_IO_MAC;
		o.mech = tc1[i].mech;
		o.handle = h;
		o.src = "Hi There";
		o.src_len = 8;
		o.dst_cap = 64;
		n = unhex(tc1[i].mac, want);
		check(!run_io(&o, got, &res) && res == n &&
		      !memcmp(got, want, n), "RFC 4231 case 1, HMAC-%s",
		      md_name(tc1[i].mech - 8));
		o.opcode = HSM_IO_MAC_VERIFY;
		o.dst_in = want;
		o.dst_cap = n;
		check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
			 "MAC_VERIFY of the published MAC");
		o.dst_cap = n / 2;
		o.dst_sg = 2;
		check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
			 "MAC_VERIFY truncated to half (SGL)");
		o.dst_sg = 0;
		o.dst_cap = n / 2 - 1;
		check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
			 "MAC_VERIFY truncated below half");
		want[n - 1] ^= 0x80;
		o.dst_cap = n;
		check_st(run_io(&o, NULL, NULL), HSM_SC_VERIFY_FAILED,
			 "MAC_VERIFY with one bit flipped");
	}

	memset(key, 0xaa, 20);
	memset(data, 0xdd, 50);
	import(HSM_KEY_HMAC, 0, 0, 0, key, 20, &h2);
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_MAC;
	o.mech = HSM_MECH_HMAC_SHA256;
	o.handle = h2;
	o.src = data;
	o.src_len = 50;
	o.src_sg = 3;
	o.dst_cap = 32;
	unhex("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
	      want);
	check(!run_io(&o, got, &res) && res == 32 && !memcmp(got, want, 32),
	      "RFC 4231 case 3, HMAC-SHA256, SGL");

	o.dst_cap = 31;
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "HMAC-SHA256 into 31 bytes");
	check(res == 32, "reports 32 needed");
	o.dst_cap = 32;
	o.mech = HSM_MECH_SHA256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_MECH,
		 "MAC with a digest mechanism");
	o.mech = HSM_MECH_HMAC_SHA256;
	o.src_len = 0;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "MAC of 0 bytes");
	o.src_len = 50;
	import(HSM_KEY_HMAC, 0, HSM_USE_VERIFY, 0, key, 20, &hv);
	o.handle = hv;
	check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
		 "MAC with a verify-only key");
	gen(HSM_KEY_AES, 256, 0, 0, 0, &haes);
	o.handle = haes;
	check_st(run_io(&o, NULL, NULL), HSM_SC_KEY_TYPE, "MAC with an AES key");

	/* generated key: MAC then verify */
	destroy(fw, hv);
	gen(HSM_KEY_HMAC, 512, 0, 0, 0, &hv);
	o.handle = hv;
	o.mech = HSM_MECH_HMAC_SHA512;
	o.dst_cap = 64;
	run_io(&o, got, NULL);
	o.opcode = HSM_IO_MAC_VERIFY;
	o.dst_in = got;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
		 "generated HMAC-SHA512 key: MAC then MAC_VERIFY");
	destroy(fw, h);
	destroy(fw, h2);
	destroy(fw, hv);
	destroy(fw, haes);
}

/* Sign in the core, verify with OpenSSL and in the core. */
static void sign_case(uint64_t h, EVP_PKEY *pub, uint16_t mech, uint16_t hash,
		      uint32_t salt, bool prehash, const char *what)
{
	uint8_t msg[333], sig[1024], dg[64];
	size_t siglen, dl;
	uint64_t res = 0;
	struct op o;
	uint16_t st;

	rnd(msg, sizeof(msg));
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_SIGN;
	o.mech = mech;
	o.mparam = hash;
	o.aux = salt;
	o.handle = h;
	o.src = msg;
	o.src_len = sizeof(msg);
	o.dst_cap = 1024;
	if (prehash) {
		EVP_Q_digest(NULL, md_name(hash), NULL, msg, sizeof(msg), dg,
			     &dl);
		o.flags = HSM_SQE_F_PREHASHED;
		o.src = dg;
		o.src_len = dl;
	}
	st = run_io(&o, sig, &res);
	siglen = res;
	check(!st && res > 0 &&
	      ossl_sig(pub, mech, hash, salt, msg, sizeof(msg), sig, &siglen,
		       false) == 1,
	      "%s: core signature verifies with OpenSSL", what);
	o.opcode = HSM_IO_VERIFY;
	o.dst_in = sig;
	o.dst_cap = res;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
		 "%s: core VERIFY accepts it", what);
	sig[res / 2] ^= 4;
	check_st(run_io(&o, NULL, NULL), HSM_SC_VERIFY_FAILED,
		 "%s: core VERIFY rejects a corrupted signature", what);
	msg[0] ^= 1;
	if (prehash)
		dg[0] ^= 1;
	sig[res / 2] ^= 4;
	check_st(run_io(&o, NULL, NULL), HSM_SC_VERIFY_FAILED,
		 "%s: core VERIFY rejects another message", what);
}

/* Sign with OpenSSL (key imported in clear), verify in the core. */
static void verify_case(uint64_t h, EVP_PKEY *pk, uint16_t mech,
			uint16_t hash, uint32_t salt, const char *what)
{
	uint8_t msg[100], sig[1024];
	size_t siglen = sizeof(sig);
	struct op o;

	rnd(msg, sizeof(msg));
	if (ossl_sig(pk, mech, hash, salt, msg, sizeof(msg), sig, &siglen,
		     true) != 1)
		abort();
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_VERIFY;
	o.mech = mech;
	o.mparam = hash;
	o.aux = salt;
	o.handle = h;
	o.src = msg;
	o.src_len = sizeof(msg);
	o.dst_in = sig;
	o.dst_cap = siglen;
	o.dst_sg = 2;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
		 "%s: OpenSSL signature verifies in the core", what);
}

static void test_sign(void)
{
	static const uint16_t hashes[] = { HSM_MECH_SHA256, HSM_MECH_SHA384,
					   HSM_MECH_SHA512 };
	static const uint16_t rsa_bits[] = { 2048, 3072, 4096 };
	EVP_PKEY *pub, *pk;
	uint64_t h, hi, res;
	uint8_t msg[32] = { 0 }, sig[1024];
	char what[96];
	unsigned int i, j;
	uint16_t st;
	struct op o;

	for (i = 0; i < 3; i++) {
		st = gen(HSM_KEY_RSA, rsa_bits[i], 0, 0, 0, &h);
		check_st(st, HSM_SC_SUCCESS, "generate RSA-%u", rsa_bits[i]);
		pub = export_pub(h, &st);
		check(pub && EVP_PKEY_get_bits(pub) == rsa_bits[i] &&
		      EVP_PKEY_is_a(pub, "RSA"),
		      "RSA-%u SPKI parses with OpenSSL", rsa_bits[i]);
		if (!i)
			check(cli_reads_spki(h) != 0,
			      "openssl pkey -pubin -inform DER reads the RSA SPKI");
		if (!pub)
			continue;
		for (j = 0; j < 3; j++) {
			if (i && j != i)
				continue;	/* all hashes on 2048 only */
			snprintf(what, sizeof(what), "RSA-%u PKCS#1 v1.5 %s",
				 rsa_bits[i], md_name(hashes[j]));
			sign_case(h, pub, HSM_MECH_RSA_PKCS1, hashes[j], 0,
				  false, what);
			snprintf(what, sizeof(what), "RSA-%u PSS %s salt %zu",
				 rsa_bits[i], md_name(hashes[j]),
				 md_size(hashes[j]));
			sign_case(h, pub, HSM_MECH_RSA_PSS, hashes[j],
				  md_size(hashes[j]), false, what);
		}
		snprintf(what, sizeof(what), "RSA-%u PSS prehashed SHA256",
			 rsa_bits[i]);
		sign_case(h, pub, HSM_MECH_RSA_PSS, HSM_MECH_SHA256, 32, true,
			  what);
		snprintf(what, sizeof(what), "RSA-%u PKCS#1 prehashed SHA512",
			 rsa_bits[i]);
		sign_case(h, pub, HSM_MECH_RSA_PKCS1, HSM_MECH_SHA512, 0, true,
			  what);
		EVP_PKEY_free(pub);
		destroy(fw, h);
	}

	for (i = 0; i < 2; i++) {
		gen(i ? HSM_KEY_EC_P384 : HSM_KEY_EC_P256, 0, 0, 0, 0, &h);
		pub = export_pub(h, NULL);
		check(pub && EVP_PKEY_is_a(pub, "EC") &&
		      EVP_PKEY_get_bits(pub) == (i ? 384 : 256),
		      "P-%d SPKI parses with OpenSSL", i ? 384 : 256);
		check(cli_reads_spki(h) != 0,
		      "openssl pkey -pubin -inform DER reads the P-%d SPKI",
		      i ? 384 : 256);
		for (j = 0; j < 3 && pub; j++) {
			snprintf(what, sizeof(what), "ECDSA P-%d %s",
				 i ? 384 : 256, md_name(hashes[j]));
			sign_case(h, pub, HSM_MECH_ECDSA, hashes[j], 0, false,
				  what);
		}
		if (pub) {
			snprintf(what, sizeof(what), "ECDSA P-%d prehashed",
				 i ? 384 : 256);
			sign_case(h, pub, HSM_MECH_ECDSA, HSM_MECH_SHA384, 0,
				  true, what);
		}
		EVP_PKEY_free(pub);
		destroy(fw, h);
	}

	gen(HSM_KEY_ED25519, 0, 0, 0, 0, &h);
	pub = export_pub(h, NULL);
	check(pub && EVP_PKEY_is_a(pub, "ED25519"),
	      "Ed25519 SPKI parses with OpenSSL");
	check(cli_reads_spki(h) != 0,
	      "openssl pkey -pubin -inform DER reads the Ed25519 SPKI");
	if (pub)
		sign_case(h, pub, HSM_MECH_EDDSA, 0, 0, false, "Ed25519");
	EVP_PKEY_free(pub);

	/* signature size is fixed at 64 bytes */
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_SIGN;
	o.mech = HSM_MECH_EDDSA;
	o.handle = h;
	o.src = msg;
	o.src_len = 32;
	o.dst_cap = 63;
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "Ed25519 signature into 63 bytes");
	check(res == 64, "reports 64 needed");
	o.dst_cap = 64;
	o.mparam = HSM_MECH_SHA256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "Ed25519 with a hash");
	o.mparam = 0;
	o.flags = HSM_SQE_F_PREHASHED;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "Ed25519 prehashed");
	o.flags = 0;
	o.mech = HSM_MECH_ECDSA;
	o.mparam = HSM_MECH_SHA256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_KEY_TYPE,
		 "ECDSA with an Ed25519 key");
	destroy(fw, h);

	/* OpenSSL signs, the core verifies (keys imported as PKCS#8) */
	pk = ossl_keygen("RSA", NULL, 2048);
	check_st(import_pkey(pk, HSM_KEY_RSA, 0, &hi), HSM_SC_SUCCESS,
		 "import an OpenSSL RSA-2048 key as PKCS#8");
	pub = export_pub(hi, NULL);
	check(pub && EVP_PKEY_eq(pub, pk) == 1,
	      "its exported SPKI equals OpenSSL's public key");
	EVP_PKEY_free(pub);
	verify_case(hi, pk, HSM_MECH_RSA_PSS, HSM_MECH_SHA256, 32,
		    "imported RSA-2048 PSS");
	verify_case(hi, pk, HSM_MECH_RSA_PKCS1, HSM_MECH_SHA384, 0,
		    "imported RSA-2048 PKCS#1");
	sign_case(hi, pk, HSM_MECH_RSA_PSS, HSM_MECH_SHA512, 0, false,
		  "imported RSA-2048 PSS salt 0");

	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_SIGN;
	o.mech = HSM_MECH_RSA_PKCS1;
	o.mparam = HSM_MECH_SHA256;
	o.handle = hi;
	o.src = msg;
	o.src_len = 32;
	o.dst_cap = 255;
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "RSA-2048 signature into 255 bytes");
	check(res == 256, "reports 256 needed");
	o.dst_cap = 256;
	o.mparam = 0;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "PKCS#1 without a hash");
	o.mparam = HSM_MECH_HMAC_SHA256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "PKCS#1 with an HMAC mechanism as hash");
	o.mparam = HSM_MECH_SHA256;
	o.aux = 5;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "PKCS#1 with a salt length");
	o.mech = HSM_MECH_RSA_PSS;
	o.aux = 256 - 32 - 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "PSS salt too long for the modulus");
	o.aux = 0;
	o.flags = HSM_SQE_F_PREHASHED;
	o.src_len = 31;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "prehashed SHA-256 of 31 bytes");
	o.flags = 0;
	o.src_len = 0;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "sign 0 bytes");
	o.src_len = 32;
	o.mech = HSM_MECH_EDDSA;
	o.mparam = 0;
	check_st(run_io(&o, NULL, NULL), HSM_SC_KEY_TYPE,
		 "EdDSA with an RSA key");
	o.mech = HSM_MECH_AES_GCM;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_MECH,
		 "sign with an AES mechanism");
	o.opcode = HSM_IO_VERIFY;
	o.mech = HSM_MECH_RSA_PKCS1;
	o.mparam = HSM_MECH_SHA256;
	o.dst_cap = 257;
	o.dst_in = sig;
	memset(sig, 0, sizeof(sig));
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "verify a signature longer than the modulus");
	o.dst_cap = 256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_VERIFY_FAILED,
		 "verify an all-zero signature");
	destroy(fw, hi);
	import_pkey(pk, HSM_KEY_RSA, HSM_USE_VERIFY, &hi);
	o.opcode = HSM_IO_SIGN;
	o.handle = hi;
	check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
		 "sign with a verify-only key");
	destroy(fw, hi);
	EVP_PKEY_free(pk);

	pk = ossl_keygen("EC", "P-256", 0);
	check_st(import_pkey(pk, HSM_KEY_EC_P256, 0, &hi), HSM_SC_SUCCESS,
		 "import an OpenSSL P-256 key");
	verify_case(hi, pk, HSM_MECH_ECDSA, HSM_MECH_SHA256, 0,
		    "imported P-256 ECDSA");
	destroy(fw, hi);
	check_st(import_pkey(pk, HSM_KEY_EC_P384, 0, &hi), HSM_SC_KEY_TYPE,
		 "import a P-256 key as P-384");
	check_st(import_pkey(pk, HSM_KEY_RSA, 0, &hi), HSM_SC_KEY_TYPE,
		 "import a P-256 key as RSA");
	EVP_PKEY_free(pk);

	pk = ossl_keygen("ED25519", NULL, 0);
	check_st(import_pkey(pk, HSM_KEY_ED25519, 0, &hi), HSM_SC_SUCCESS,
		 "import an OpenSSL Ed25519 key");
	verify_case(hi, pk, HSM_MECH_EDDSA, 0, 0, "imported Ed25519");
	destroy(fw, hi);
	EVP_PKEY_free(pk);
}

static void test_rsa_crypt(void)
{
	EVP_PKEY *pk = ossl_keygen("RSA", NULL, 2048);
	uint8_t msg[256], ct[256], got[256];
	EVP_PKEY_CTX *ctx;
	uint64_t h, hs, res;
	size_t len;
	struct op o;

	check_st(import_pkey(pk, HSM_KEY_RSA, HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
			     &h), HSM_SC_SUCCESS,
		 "import RSA-2048 for encryption");
	rnd(msg, sizeof(msg));

	/* OAEP: core encrypts, OpenSSL decrypts */
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_RSA_OAEP;
	o.mparam = HSM_MECH_SHA256;
	o.handle = h;
	o.src = msg;
	o.src_len = 100;
	o.dst_cap = 256;
	check(!run_io(&o, ct, &res) && res == 256, "OAEP-SHA256 encrypt");
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	len = sizeof(got);
	check(EVP_PKEY_decrypt_init(ctx) == 1 &&
	      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
	      EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, "SHA256", NULL) == 1 &&
	      EVP_PKEY_decrypt(ctx, got, &len, ct, 256) == 1 && len == 100 &&
	      !memcmp(got, msg, 100), "OpenSSL decrypts the core's OAEP");
	EVP_PKEY_CTX_free(ctx);

	/* OAEP-SHA384: OpenSSL encrypts, core decrypts */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	len = sizeof(ct);
	if (EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, "SHA384", NULL) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, "SHA384", NULL) != 1 ||
	    EVP_PKEY_encrypt(ctx, ct, &len, msg, 50) != 1)
		abort();
	EVP_PKEY_CTX_free(ctx);
	o.opcode = HSM_IO_DECRYPT;
	o.mparam = HSM_MECH_SHA384;
	o.src = ct;
	o.src_len = 256;
	o.dst_cap = 256;
	check(!run_io(&o, got, &res) && res == 50 && !memcmp(got, msg, 50),
	      "core decrypts OpenSSL's OAEP-SHA384");
	o.dst_cap = 49;
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "OAEP plaintext into 49 bytes");
	check(res == 50, "reports 50 needed");
	o.dst_cap = 256;
	o.mparam = HSM_MECH_SHA256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_DECRYPT_FAILED,
		 "OAEP decrypt with the wrong hash");
	o.src_len = 255;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "OAEP decrypt of 255 bytes");
	o.opcode = HSM_IO_ENCRYPT;
	o.src_len = 256 - 2 * 32 - 1;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "OAEP-SHA256 encrypt one byte too long");
	o.src_len = 256 - 2 * 32 - 2;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
		 "OAEP-SHA256 encrypt of the longest message");
	o.mparam = 0;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "OAEP without a hash");

	/* RAW: the public operation equals OpenSSL's, private inverts it */
	msg[0] = 0x12;	/* below the modulus (top bit of n is set) */
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_RSA_RAW;
	o.handle = h;
	o.src = msg;
	o.src_len = 256;
	o.dst_cap = 256;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	len = sizeof(ct);
	if (EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) != 1 ||
	    EVP_PKEY_encrypt(ctx, ct, &len, msg, 256) != 1)
		abort();
	EVP_PKEY_CTX_free(ctx);
	check(!run_io(&o, got, &res) && res == 256 && !memcmp(got, ct, 256),
	      "RSA raw public operation equals OpenSSL");
	o.opcode = HSM_IO_DECRYPT;
	o.src = ct;
	check(!run_io(&o, got, &res) && res == 256 && !memcmp(got, msg, 256),
	      "RSA raw private operation inverts it");
	{
		static uint8_t big[257];

		o.src = big;
		o.src_len = 257;
		check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
			 "RSA raw on 257 bytes");
	}
	o.src_len = 256;
	o.opcode = HSM_IO_ENCRYPT;
	memset(got, 0xff, 256);
	o.src = got;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "RSA raw public operation on a value above the modulus");
	o.mparam = HSM_MECH_SHA256;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "RSA raw with a hash");

	gen(HSM_KEY_RSA, 2048, 0, 0, 0, &hs);
	o.mparam = 0;
	o.handle = hs;
	o.src = msg;
	check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
		 "encrypt with a sign/verify RSA key");
	destroy(fw, hs);
	destroy(fw, h);
	EVP_PKEY_free(pk);
}

static uint16_t wrap(uint64_t h, uint64_t kek, uint8_t *out, size_t cap,
		     uint64_t *res)
{
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, cap);
	uint16_t st;

	sqe_init(&s, HSM_ADM_KEY_WRAP);
	s.handle = htole64(h);
	s.qw[0] = htole64(kek);
	s.dst = htole64(d);
	s.dst_len = htole32(cap);
	st = adm(fw, &s, res);
	if (out)
		memcpy(out, fh_ptr(&fh, d), cap);
	return st;
}

static void test_wrap(void)
{
	uint8_t kek[24], key20[20], blob20[40], key7[8], blob7[16];
	uint8_t got[2048], mac[32], want[32], bad[64];
	size_t n20, nb20, nb7, dl;
	struct hsm_key_attrs a;
	uint64_t hkek, hk, hu, hne, hrsa, hrsa2, hkek1, res;
	EVP_PKEY *pub;
	struct op o;
	uint16_t st;

	/* RFC 5649 section 6 */
	unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", kek);
	n20 = unhex("c37b7e6492584340bed12207808941155068f738", key20);
	nb20 = unhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a"
		     "5f54f373fa543b6a", blob20);
	unhex("466f7250617369", key7);
	nb7 = unhex("afbeb0f07dfbf5419200f2ccb50bb24f", blob7);
	check_st(import(HSM_KEY_AES, 192, HSM_USE_WRAP | HSM_USE_UNWRAP, 0,
			kek, 24, &hkek), HSM_SC_SUCCESS,
		 "import the RFC 5649 KEK as a session key");
	check(!get_attrs(fw, hkek, &a) &&
	      (le32toh(a.flags) & HSM_KEYF_SESSION),
	      "imported key is a session key");

	a = attrs(HSM_KEY_HMAC, 0, 0, 0, 0);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, blob20, nb20, &hu),
		 HSM_SC_SUCCESS, "unwrap RFC 5649 vector 1 (20-byte key)");
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_MAC;
	o.mech = HSM_MECH_HMAC_SHA256;
	o.handle = hu;
	o.src = "hsmcard";
	o.src_len = 7;
	o.dst_cap = 32;
	EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key20, n20, o.src, 7,
		  want, 32, &dl);
	check(!run_io(&o, mac, NULL) && !memcmp(mac, want, 32),
	      "the unwrapped key is the RFC's key (HMAC equals OpenSSL)");
	check(!get_attrs(fw, hu, &a) && le16toh(a.bits) == 160 &&
	      !(le32toh(a.flags) & HSM_KEYF_SESSION),
	      "unwrapped key: 160 bits, not a session key");
	a = attrs(HSM_KEY_HMAC, 0, 0, 0, 0);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, blob7, nb7, &hu),
		 HSM_SC_INVALID_KEY_SIZE,
		 "unwrap RFC 5649 vector 2 (7-byte key: no such key size)");
	memcpy(bad, blob20, nb20);
	bad[10] ^= 1;
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, bad, nb20, &hu),
		 HSM_SC_DECRYPT_FAILED, "unwrap a corrupted blob");
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, blob20, nb20 - 4, &hu),
		 HSM_SC_INVALID_LENGTH, "unwrap a blob of 36 bytes");
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, blob20, 8, &hu),
		 HSM_SC_INVALID_LENGTH, "unwrap a blob of 8 bytes");
	a = attrs(HSM_KEY_HMAC, 0, 0, 0, 1);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, blob20, nb20, &hu),
		 HSM_SC_INVALID_HANDLE,
		 "unwrap into another partition than the KEK's");

	/* wrap the same key: must give the RFC's blob */
	check_st(import(HSM_KEY_HMAC, 0, 0, HSM_KEYF_EXTRACTABLE, key20, n20,
			&hk), HSM_SC_SUCCESS, "import an extractable HMAC key");
	check(!wrap(hk, hkek, got, 40, &res) && res == nb20 &&
	      !memcmp(got, blob20, nb20),
	      "wrap gives RFC 5649 vector 1 exactly");
	check_st(wrap(hk, hkek, NULL, 31, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "wrap into 31 bytes");
	check(res == 32, "reports 32 needed");
	import(HSM_KEY_HMAC, 0, 0, 0, key20, n20, &hne);
	check_st(wrap(hne, hkek, NULL, 64, &res), HSM_SC_NOT_EXTRACTABLE,
		 "wrap a non-extractable key");
	check_st(wrap(hk, hk, NULL, 64, &res), HSM_SC_KEY_TYPE,
		 "wrap with an HMAC key as KEK");
	import(HSM_KEY_AES, 192, HSM_USE_UNWRAP, 0, kek, 24, &hkek1);
	check_st(wrap(hk, hkek1, NULL, 64, &res), HSM_SC_USE_DENIED,
		 "wrap with an unwrap-only KEK");
	a = attrs(HSM_KEY_HMAC, 0, 0, 0, 0);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hk, &a, blob20, nb20, &hu),
		 HSM_SC_KEY_TYPE, "unwrap with an HMAC key");
	destroy(fw, hkek1);
	import(HSM_KEY_AES, 192, HSM_USE_WRAP, 0, kek, 24, &hkek1);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek1, &a, blob20, nb20, &hu),
		 HSM_SC_USE_DENIED, "unwrap with a wrap-only KEK");

	/* an RSA key leaves as PKCS#8 and comes back working */
	gen(HSM_KEY_RSA, 2048, 0, HSM_KEYF_EXTRACTABLE, 0, &hrsa);
	st = wrap(hrsa, hkek, got, sizeof(got), &res);
	check_st(st, HSM_SC_SUCCESS, "wrap an RSA-2048 key");
	{
		EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-192-WRAP-PAD",
						 NULL);
		EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
		uint8_t p8[2048];
		const unsigned char *pp = p8;
		int n = 0, f = 0;
		PKCS8_PRIV_KEY_INFO *inf;
		EVP_PKEY *priv = NULL;

		EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
		if (EVP_DecryptInit_ex2(ctx, c, kek, NULL, NULL) &&
		    EVP_DecryptUpdate(ctx, p8, &n, got, res) &&
		    EVP_DecryptFinal_ex(ctx, p8 + n, &f)) {
			inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &pp, n + f);
			priv = inf ? EVP_PKCS82PKEY(inf) : NULL;
			PKCS8_PRIV_KEY_INFO_free(inf);
		}
		pub = export_pub(hrsa, NULL);
		check(priv && pub && EVP_PKEY_eq(priv, pub) == 1,
		      "OpenSSL unwraps it to the PKCS#8 of the same key");
		EVP_PKEY_free(priv);
		EVP_CIPHER_CTX_free(ctx);
		EVP_CIPHER_free(c);
	}
	a = attrs(HSM_KEY_RSA, 0, 0, 0, 0);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, got, res, &hrsa2),
		 HSM_SC_SUCCESS, "unwrap it back into the card");
	if (pub)
		sign_case(hrsa2, pub, HSM_MECH_RSA_PSS, HSM_MECH_SHA256, 32,
			  false, "re-imported RSA key");
	a = attrs(HSM_KEY_EC_P256, 0, 0, 0, 0);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &a, got, res, &hu),
		 HSM_SC_KEY_TYPE, "unwrap an RSA PKCS#8 as P-256");
	EVP_PKEY_free(pub);

	{
		struct hsm_sqe s;

		sqe_init(&s, HSM_ADM_KEY_WRAP);
		s.handle = htole64(hrsa);
		s.qw[0] = htole64(hkek);
		s.mech = htole16(HSM_MECH_AES_GCM);
		s.dst = htole64(fh_alloc(&fh, 2048));
		s.dst_len = htole32(2048);
		check_st(adm(fw, &s, NULL), HSM_SC_INVALID_MECH,
			 "wrap with mechanism AES-GCM");
		s.mech = htole16(HSM_MECH_AES_KWP);
		check_st(adm(fw, &s, NULL), HSM_SC_SUCCESS,
			 "wrap with mechanism AES-KWP");
		s.cdw[2] = htole32(HSM_WRAP_F_ALL + 1);
		check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
			 "wrap with an undefined wrap flag in cdw[2]");
		s.cdw[2] = 0;
		s.cdw[3] = htole32(1);
		check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
			 "wrap with reserved cdw[3]");
	}

	/* imports */
	check_st(import(HSM_KEY_AES, 0, 0, HSM_KEYF_PERSISTENT, kek, 16, &hu),
		 HSM_SC_INVALID_FIELD, "import as persistent");
	check_st(import(HSM_KEY_AES, 256, 0, 0, kek, 16, &hu),
		 HSM_SC_INVALID_KEY_SIZE, "import 16 bytes as AES-256");
	check_st(import(HSM_KEY_AES, 0, 0, 0, kek, 20, &hu),
		 HSM_SC_INVALID_KEY_SIZE, "import 20 bytes as AES");
	memset(bad, 7, 64);
	check_st(import(HSM_KEY_AES, 512, 0, 0, bad, 64, &hu),
		 HSM_SC_INVALID_FIELD, "import an XTS key with equal halves");
	check_st(import(HSM_KEY_RSA, 0, 0, 0, bad, 64, &hu),
		 HSM_SC_INVALID_FIELD, "import garbage as PKCS#8");
	{
		EVP_PKEY *pk = ossl_keygen("EC", "P-256", 0);
		unsigned char *der = NULL, buf[512];
		PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
		int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);

		memcpy(buf, der, len);
		buf[len] = 0;
		check_st(import(HSM_KEY_EC_P256, 0, 0, 0, buf, len + 1, &hu),
			 HSM_SC_INVALID_FIELD,
			 "import PKCS#8 with a trailing byte");
		check_st(import(HSM_KEY_EC_P256, 0, 0, 0, buf, len - 1, &hu),
			 HSM_SC_INVALID_FIELD, "import truncated PKCS#8");
		OPENSSL_free(der);
		PKCS8_PRIV_KEY_INFO_free(p8);
		EVP_PKEY_free(pk);
	}
	{
		struct hsm_sqe s;

		sqe_init(&s, HSM_ADM_KEY_IMPORT);
		a = attrs(HSM_KEY_AES, 0, 0, 0, 0);
		s.src = htole64(fh_put(&fh, &a, sizeof(a)));
		s.src_len = htole32(sizeof(a));
		check_st(adm(fw, &s, NULL), HSM_SC_INVALID_KEY_SIZE,
			 "import of an AES key with no key bytes");
		s.src_len = htole32(sizeof(a) - 1);
		check_st(adm(fw, &s, NULL), HSM_SC_INVALID_LENGTH,
			 "import shorter than the attributes");
		s.handle = htole64(hkek);
		s.src_len = htole32(sizeof(a) + 16);
		check_st(adm(fw, &s, NULL), HSM_SC_INVALID_FIELD,
			 "import with a handle");
	}

	/* export of a symmetric key's public part */
	check(!export_pub(hkek, &st) && st == HSM_SC_KEY_TYPE,
	      "EXPORT_PUB of an AES key: key type error");
	{
		struct hsm_sqe s;

		sqe_init(&s, HSM_ADM_KEY_EXPORT_PUB);
		s.handle = htole64(hrsa);
		s.dst = htole64(fh_alloc(&fh, 64));
		s.dst_len = htole32(64);
		check_st(adm(fw, &s, &res), HSM_SC_BUFFER_TOO_SMALL,
			 "EXPORT_PUB of RSA-2048 into 64 bytes");
		check(res == 294, "reports 294 needed (%llu)",
		      (unsigned long long)res);
	}
	destroy(fw, hkek);
	destroy(fw, hkek1);
	destroy(fw, hk);
	destroy(fw, hne);
	destroy(fw, hrsa);
	destroy(fw, hrsa2);
	destroy(fw, hu);
}

static void test_tamper(void)
{
	struct hsm_fw *f;
	struct hsm_fw *saved = fw;
	struct hsm_identify *id;
	struct hsm_key_attrs a = attrs(HSM_KEY_AES, 128, 0, 0, 0);
	struct hsm_sqe s;
	uint64_t h, d;
	uint8_t buf[16] = { 0 };
	struct op o = { .opcode = HSM_IO_ENCRYPT, .mech = HSM_MECH_AES_ECB,
			.src = buf, .src_len = 16, .dst_cap = 16 };

	f = hsm_fw_new(&cfg, NULL);
	fw = f;
	gen_attrs(f, &a, &h);
	o.handle = h;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS, "key works");
	check(!hsm_fw_tampered(f), "not tampered");
	hsm_fw_tamper(f);
	check(hsm_fw_tampered(f), "tampered after hsm_fw_tamper()");
	check_st(run_io(&o, NULL, NULL), HSM_SC_TAMPERED, "encrypt");
	check_st(gen_attrs(f, &a, &h), HSM_SC_TAMPERED, "generate");
	check_st(get_attrs(f, h, &a), HSM_SC_TAMPERED, "get attrs");
	check_st(destroy(f, h), HSM_SC_TAMPERED, "destroy");
	check_st(import(HSM_KEY_AES, 0, 0, 0, buf, 16, &h), HSM_SC_TAMPERED,
		 "import");
	sqe_init(&s, HSM_ADM_KEY_LIST);
	check_st(adm(f, &s, NULL), HSM_SC_TAMPERED, "list");
	sqe_init(&s, HSM_ADM_IDENTIFY);
	d = fh_alloc(&fh, HSM_IDENTIFY_SIZE);
	s.dst = htole64(d);
	s.dst_len = htole32(HSM_IDENTIFY_SIZE);
	check_st(adm(f, &s, NULL), HSM_SC_SUCCESS, "identify still works");
	id = fh_ptr(&fh, d);
	check(id->nr_keys == 0, "identify shows no key left");
	ioq_sqe(&s, 3, 16, 3);
	check_st(adm(f, &s, NULL), HSM_SC_SUCCESS, "create queue still works");
	sqe_init(&s, HSM_ADM_DELETE_IOQ);
	s.cdw[0] = htole32(3);
	check_st(adm(f, &s, NULL), HSM_SC_SUCCESS, "delete queue still works");
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_DIGEST;
	o.mech = HSM_MECH_SHA256;
	o.src = buf;
	o.src_len = 16;
	o.dst_cap = 32;
	check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
		 "digest (no key) still works");
	fw = saved;
	hsm_fw_free(f);
}

/* ---- persistent store ---- */

static struct hsm_fw *ks_card(const char *path, char **err)
{
	struct hsm_fw_config c = cfg;

	c.keystore_path = path;
	*err = NULL;
	return hsm_fw_new(&c, err);
}

static uint16_t card_id(struct hsm_fw *f, uint8_t *id16)
{
	struct hsm_identify *id;
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, sizeof(*id));
	uint16_t st;

	sqe_init(&s, HSM_ADM_IDENTIFY);
	s.dst = htole64(d);
	s.dst_len = htole32(sizeof(*id));
	st = adm(f, &s, NULL);
	id = fh_ptr(&fh, d);
	memcpy(id16, id->card_id, 16);
	return st;
}

static bool file_flip(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c;

	if (!f || fseek(f, off, off < 0 ? SEEK_END : SEEK_SET))
		return false;
	c = fgetc(f);
	fseek(f, -1, SEEK_CUR);
	fputc(c ^ 1, f);
	return !fclose(f);
}

static void test_persist(void)
{
	char dir[] = "/tmp/hsm-ks-XXXXXX", path[64], mk[80], tmp[80];
	struct hsm_fw *saved = fw, *f;
	struct hsm_key_attrs a, a2;
	uint8_t id1[16], id2[16], block[16] = "persistent key!", ct1[16], ct2[16];
	uint64_t hp, hv, hed, h, hun = 0;
	uint8_t hmac_want[32], hmac_got[32];
	EVP_PKEY *pub1, *pub2;
	char *err;
	struct op o;

	if (!mkdtemp(dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	snprintf(mk, sizeof(mk), "%s/keys.mk", dir);
	snprintf(tmp, sizeof(tmp), "%s/keys.tmp", dir);

	f = ks_card(path, &err);
	check(f && access(path, F_OK) == 0 && access(mk, F_OK) == 0,
	      "new card creates the store and its master key");
	if (!f)
		return;
	fw = f;
	card_id(f, id1);
	check_st(gen(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT, 0, &hp),
		 HSM_SC_SUCCESS, "generate a persistent AES-256 key");
	check_st(gen(HSM_KEY_ED25519, 0, 0, HSM_KEYF_PERSISTENT, 1, &hed),
		 HSM_SC_SUCCESS, "generate a persistent Ed25519 key (partition 1)");
	check_st(gen(HSM_KEY_AES, 256, 0, 0, 0, &hv), HSM_SC_SUCCESS,
		 "generate a volatile key");
	check_st(gen(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT | HSM_KEYF_SESSION,
		     0, &h), HSM_SC_INVALID_FIELD, "persistent session key");
	check_st(import(HSM_KEY_AES, 0, 0, HSM_KEYF_PERSISTENT, block, 16, &h),
		 HSM_SC_INVALID_FIELD, "import as persistent");
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_AES_ECB;
	o.handle = hp;
	o.src = block;
	o.src_len = 16;
	o.dst_cap = 16;
	run_io(&o, ct1, NULL);
	get_attrs(f, hp, &a);
	pub1 = export_pub(hed, NULL);
	{
		/* a known key made persistent through KEY_UNWRAP */
		uint8_t kek[16], hkey[32], blob[40], mac1[32];
		struct hsm_key_attrs ua = attrs(HSM_KEY_HMAC, 0, 0,
						HSM_KEYF_PERSISTENT, 0);
		EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-128-WRAP-PAD", NULL);
		EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
		uint64_t hkek;
		size_t dl;
		int n = 0, fl = 0;

		rnd(kek, 16);
		rnd(hkey, 32);
		EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
		if (!EVP_EncryptInit_ex2(ctx, c, kek, NULL, NULL) ||
		    !EVP_EncryptUpdate(ctx, blob, &n, hkey, 32) ||
		    !EVP_EncryptFinal_ex(ctx, blob + n, &fl))
			abort();
		EVP_CIPHER_CTX_free(ctx);
		EVP_CIPHER_free(c);
		import(HSM_KEY_AES, 0, HSM_USE_UNWRAP, 0, kek, 16, &hkek);
		check_st(put_key(HSM_ADM_KEY_UNWRAP, hkek, &ua, blob, n + fl,
				 &hun), HSM_SC_SUCCESS,
			 "unwrap a known HMAC key as persistent");
		EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hkey, 32, block,
			  16, mac1, 32, &dl);
		memcpy(hmac_want, mac1, 32);
	}
	hsm_fw_free(f);

	f = ks_card(path, &err);
	fw = f;
	check(f != NULL, "card restarts on its store: %s", err ? err : "ok");
	if (!f)
		goto out;
	card_id(f, id2);
	check(!memcmp(id1, id2, 16), "card_id survives the restart");
	check(nr_keys(f) == 3, "3 persistent keys back, volatile ones gone");
	{
		struct op m = { .opcode = HSM_IO_MAC,
				.mech = HSM_MECH_HMAC_SHA256, .handle = hun,
				.src = block, .src_len = 16, .dst_cap = 32 };

		check(!run_io(&m, hmac_got, NULL) &&
		      !memcmp(hmac_got, hmac_want, 32),
		      "unwrapped persistent key: HMAC after restart equals OpenSSL");
	}
	check_st(get_attrs(f, hv, &a2), HSM_SC_INVALID_HANDLE,
		 "volatile handle is invalid after restart");
	check(!get_attrs(f, hp, &a2) && !memcmp(&a, &a2, sizeof(a)),
	      "persistent key keeps its handle and attributes");
	check(!run_io(&o, ct2, NULL) && !memcmp(ct1, ct2, 16),
	      "and the same key material (same ciphertext)");
	pub2 = export_pub(hed, NULL);
	check(pub1 && pub2 && EVP_PKEY_eq(pub1, pub2) == 1,
	      "Ed25519 key: same public key after restart");
	EVP_PKEY_free(pub2);
	check_st(destroy(f, hed), HSM_SC_SUCCESS, "destroy the Ed25519 key");

	/* a failed write refuses the key, and the old file stays good */
	mkdir(tmp, 0700);
	check_st(gen(HSM_KEY_AES, 128, 0, HSM_KEYF_PERSISTENT, 0, &h),
		 HSM_SC_INTERNAL, "persistent key while the store cannot be written");
	check(nr_keys(f) == 2, "the refused key is not in the card");
	rmdir(tmp);
	hsm_fw_free(f);

	/* a stale temporary file from a crash is ignored */
	fclose(fopen(tmp, "w"));
	f = ks_card(path, &err);
	fw = f;
	check(f && nr_keys(f) == 2,
	      "restart: destroyed key stays gone, stale .tmp ignored");
	hsm_fw_free(f);
	fw = saved;

	check(file_flip(path, 60), "flip one bit of the sealed payload");
	f = ks_card(path, &err);
	check(!f && err, "edited store refused: %s", err ? err : "");
	free(err);
	hsm_fw_free(f);
	file_flip(path, 60);
	check(file_flip(path, 14), "flip one bit of the card id");
	f = ks_card(path, &err);
	check(!f && err, "edited header refused: %s", err ? err : "");
	free(err);
	file_flip(path, 14);
	check(truncate(path, 100) == 0, "truncate the store");
	f = ks_card(path, &err);
	check(!f && err, "torn store refused: %s", err ? err : "");
	free(err);

	/* tamper wipes master key and store; the next start is a new card */
	unlink(path);
	unlink(mk);
	f = ks_card(path, &err);
	fw = f;
	gen(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT, 0, &hp);
	card_id(f, id1);
	hsm_fw_tamper(f);
	check(access(mk, F_OK) != 0 && access(path, F_OK) != 0,
	      "tamper removes the master key and the store");
	hsm_fw_free(f);
	f = ks_card(path, &err);
	fw = f;
	card_id(f, id2);
	check(f && nr_keys(f) == 0 && memcmp(id1, id2, 16),
	      "after tamper: a new, empty card");
	hsm_fw_free(f);

	unlink(mk);
	f = ks_card(path, &err);
	check(!f && err, "store without its master key refused: %s",
	      err ? err : "");
	free(err);
out:
	EVP_PKEY_free(pub1);
	fw = saved;
	unlink(path);
	unlink(mk);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s/keys.gen", dir);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s/keys.audit", dir);
	unlink(tmp);
	rmdir(dir);
}

/*
 * Key ceremony: the same KEK imported in clear as a persistent key on two
 * cards, then a key wrapped on one and unwrapped on the other.
 */
static void test_kek_ceremony(void)
{
	char dir[] = "/tmp/hsm-kek-XXXXXX", pa[64], pb[64], tmp[96];
	const uint32_t kw = HSM_USE_WRAP | HSM_USE_UNWRAP;
	uint8_t kek[32], blob[64], ct1[16], ct2[16], pt[16] = "ceremony block";
	struct hsm_fw *saved = fw, *fa = NULL, *fb = NULL;
	uint64_t hka, hkb, hkb2 = 0, hk, hu, h, res = 0;
	struct hsm_key_attrs a;
	struct op o;
	char *err;
	int i;

	if (!mkdtemp(dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(pa, sizeof(pa), "%s/a", dir);
	snprintf(pb, sizeof(pb), "%s/b", dir);
	fa = ks_card(pa, &err);
	fb = ks_card(pb, &err);
	if (!check(fa && fb, "two cards with their own stores"))
		goto out;
	rnd(kek, sizeof(kek));

	fw = fa;
	check_st(import(HSM_KEY_AES, 256, kw, HSM_KEYF_PERSISTENT, kek, 32,
			&hka), HSM_SC_SUCCESS,
		 "card A: clear import of a persistent wrap/unwrap KEK");
	check(!get_attrs(fa, hka, &a) &&
	      (le32toh(a.flags) & HSM_KEYF_PERSISTENT) &&
	      !(le32toh(a.flags) & HSM_KEYF_SESSION) && le32toh(a.uses) == kw,
	      "the KEK is persistent, not a session key, uses wrap|unwrap");
	/* everything else persistent by clear import stays refused */
	check_st(import(HSM_KEY_AES, 256, kw | HSM_USE_ENCRYPT,
			HSM_KEYF_PERSISTENT, kek, 32, &h), HSM_SC_INVALID_FIELD,
		 "persistent import of a wrap+encrypt AES key");
	check_st(import(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT, kek, 32, &h),
		 HSM_SC_INVALID_FIELD,
		 "persistent import with default uses (encrypt/decrypt)");
	check_st(import(HSM_KEY_AES, 256, HSM_USE_WRAP,
			HSM_KEYF_PERSISTENT | HSM_KEYF_EXTRACTABLE, kek, 32,
			&h), HSM_SC_INVALID_FIELD,
		 "persistent import of an extractable KEK");
	check_st(import(HSM_KEY_HMAC, 0, HSM_USE_SIGN, HSM_KEYF_PERSISTENT,
			kek, 32, &h), HSM_SC_INVALID_FIELD,
		 "persistent import of an HMAC key");
	check_st(import(HSM_KEY_AES, 256, kw,
			HSM_KEYF_PERSISTENT | HSM_KEYF_SESSION, kek, 32, &h),
		 HSM_SC_INVALID_FIELD, "persistent session KEK");
	{
		uint8_t k64[64];

		rnd(k64, sizeof(k64));
		check_st(import(HSM_KEY_AES, 512, kw, HSM_KEYF_PERSISTENT,
				k64, 64, &h), HSM_SC_INVALID_KEY_SIZE,
			 "persistent import of an AES-512 (XTS) KEK");
	}
	check(nr_keys(fa) == 1, "card A holds only the KEK");

	fw = fb;
	check_st(import(HSM_KEY_AES, 256, HSM_USE_UNWRAP, HSM_KEYF_PERSISTENT,
			kek, 32, &hkb), HSM_SC_SUCCESS,
		 "card B: the same KEK, unwrap only");
	hsm_fw_free(fb);
	fb = ks_card(pb, &err);
	if (!check(fb != NULL, "card B restarts on its store"))
		goto out;
	fw = fb;
	check(!get_attrs(fb, hkb, &a) && le32toh(a.uses) == HSM_USE_UNWRAP,
	      "card B's KEK survives the restart");

	/* A wraps an extractable key, B unwraps it: same ciphertext */
	fw = fa;
	gen(HSM_KEY_AES, 256, 0, HSM_KEYF_EXTRACTABLE, 0, &hk);
	check_st(wrap(hk, hka, blob, sizeof(blob), &res), HSM_SC_SUCCESS,
		 "card A wraps an AES-256 key under the KEK");
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_AES_ECB;
	o.handle = hk;
	o.src = pt;
	o.src_len = 16;
	o.dst_cap = 16;
	run_io(&o, ct1, NULL);
	check_st(wrap(hka, hka, blob + 40, 24, &h), HSM_SC_NOT_EXTRACTABLE,
		 "the KEK itself cannot be wrapped");
	fw = fb;
	a = attrs(HSM_KEY_AES, 0, 0, 0, 0);
	check_st(put_key(HSM_ADM_KEY_UNWRAP, hkb, &a, blob, res, &hu),
		 HSM_SC_SUCCESS, "card B unwraps it");
	o.handle = hu;
	check(!run_io(&o, ct2, NULL) && !memcmp(ct1, ct2, 16),
	      "card B's copy encrypts like card A's");
	for (i = 0; i < 2; i++) {
		/* a session import under the same rules still works */
		check_st(import(HSM_KEY_AES, 128, kw, 0, kek, 16, &hkb2),
			 HSM_SC_SUCCESS, "volatile KEK import (%d)", i);
		check(!get_attrs(fb, hkb2, &a) &&
		      (le32toh(a.flags) & HSM_KEYF_SESSION),
		      "a KEK imported without PERSISTENT is a session key");
		destroy(fb, hkb2);
	}
out:
	hsm_fw_free(fa);
	hsm_fw_free(fb);
	fw = saved;
	for (i = 0; i < 2; i++) {
		const char *p = i ? pb : pa;
		static const char *const ext[] = {
			"", ".mk", ".gen", ".tmp", ".audit" };
		unsigned int j;

		for (j = 0; j < 5; j++) {
			snprintf(tmp, sizeof(tmp), "%s%s", p, ext[j]);
			unlink(tmp);
		}
	}
	rmdir(dir);
}

/* ---- random commands: defined status, no crash, no result on error ---- */

static uint64_t fz_state = 0x9e3779b97f4a7c15ull;

static uint64_t fz_rand(void)
{
	fz_state ^= fz_state << 13;
	fz_state ^= fz_state >> 7;
	fz_state ^= fz_state << 17;
	return fz_state;
}

/* Clear the fields the opcode does not use (they are reserved). */
static void fz_trim(struct hsm_sqe *s)
{
	bool src = true, dst = true, handle = true, mech = true;
	bool mparam = false, aux = false, cdw = false;

	switch (s->opcode) {
	case HSM_ADM_IDENTIFY:
	case HSM_ADM_GET_RANDOM:
	case HSM_IO_GET_RANDOM:
		src = handle = mech = false;
		break;
	case HSM_ADM_KEY_IMPORT:
		dst = handle = mech = false;
		break;
	case HSM_ADM_KEY_UNWRAP:
		dst = false;
		break;
	case HSM_ADM_KEY_WRAP:
		src = false;
		cdw = true;	/* qw[0] */
		s->cdw[2] = s->cdw[3] = 0;
		break;
	case HSM_ADM_KEY_EXPORT_PUB:
	case HSM_ADM_KEY_GET_ATTRS:
		src = mech = false;
		break;
	case HSM_ADM_KEY_LIST:
		src = handle = mech = false;
		aux = true;
		s->cdw[0] = htole32(le32toh(s->cdw[0]) & 1);
		s->cdw[1] = s->cdw[2] = s->cdw[3] = 0;
		cdw = true;
		break;
	case HSM_IO_DIGEST:
		handle = false;
		break;
	case HSM_ADM_AUDIT_READ:
		src = handle = mech = false;
		cdw = true;	/* qw[0]: a seq near the log's */
		s->qw[0] = htole64(le64toh(s->qw[0]) & 0x3ff);
		s->cdw[2] = s->cdw[3] = 0;
		break;
	case HSM_ADM_AUDIT_PUBKEY:
		src = handle = mech = false;
		break;
	case HSM_ADM_AUDIT_CHECKPOINT:
		src = dst = handle = mech = false;
		break;
	case HSM_IO_MAC:
	case HSM_IO_MAC_VERIFY:
		break;
	case HSM_IO_ENCRYPT:
	case HSM_IO_DECRYPT:
	case HSM_IO_SIGN:
	case HSM_IO_VERIFY:
		mparam = aux = cdw = true;
		break;
	default:
		return;
	}
	if (!src) {
		s->src = 0;
		s->src_len = 0;
		s->src_nsge = 0;
		s->flags &= ~HSM_SQE_F_SRC_SGL;
	}
	if (!dst) {
		s->dst = 0;
		s->dst_len = 0;
		s->dst_nsge = 0;
		s->flags &= ~HSM_SQE_F_DST_SGL;
	}
	if (!handle)
		s->handle = 0;
	if (!mech)
		s->mech = 0;
	if (!mparam)
		s->mparam = 0;
	if (!aux)
		s->aux = 0;
	if (!cdw)
		memset(s->cdw, 0, sizeof(s->cdw));
}

static void test_fuzz(void)
{
	static const uint8_t ops[] = {
		HSM_ADM_IDENTIFY, HSM_ADM_GET_RANDOM, HSM_ADM_KEY_IMPORT,
		HSM_ADM_KEY_UNWRAP, HSM_ADM_KEY_WRAP, HSM_ADM_KEY_EXPORT_PUB,
		HSM_ADM_KEY_LIST, HSM_ADM_KEY_GET_ATTRS, HSM_ADM_CREATE_IOQ,
		HSM_ADM_DELETE_IOQ, HSM_IO_ENCRYPT, HSM_IO_DECRYPT,
		HSM_IO_DIGEST, HSM_IO_MAC, HSM_IO_MAC_VERIFY, HSM_IO_SIGN,
		HSM_IO_VERIFY, HSM_IO_GET_RANDOM, HSM_IO_HASH_UPDATE,
		HSM_IO_HASH_FINAL, HSM_ADM_TOKEN_CREATE, HSM_ADM_TOKEN_OPEN,
		HSM_ADM_AUDIT_READ, HSM_ADM_AUDIT_PUBKEY,
		HSM_ADM_AUDIT_CHECKPOINT,
	};
	static const uint16_t mechs[] = {
		1, 2, 3, 4, 5, 8, 16, 17, 18, 24, 25, 26, 32, 33, 34, 35, 40,
		41, 48,
	};
	const char *env_seed = getenv("HSM_FUZZ_SEED");
	const char *env_iters = getenv("HSM_FUZZ_ITERS");
	unsigned int iters = env_iters ? strtoul(env_iters, NULL, 0) : 20000;
	uint64_t keys[8], arena, res;
	unsigned int i, bad = 0, leaks = 0, ok = 0, hist[32] = { 0 };
	struct hsm_sge *sg;
	struct hsm_sqe s;
	uint8_t rawkey[32];
	uint16_t st;

	if (env_seed && strtoull(env_seed, NULL, 0))
		fz_state = strtoull(env_seed, NULL, 0);
	printf("# fuzz seed %#llx, %u commands\n",
	       (unsigned long long)fz_state, iters);
	rnd(rawkey, sizeof(rawkey));
	import(HSM_KEY_AES, 0, HSM_USE_ALL & 0x33, HSM_KEYF_EXTRACTABLE,
	       rawkey, 32, &keys[0]);
	import(HSM_KEY_AES, 0, HSM_USE_ENCRYPT | HSM_USE_DECRYPT, 0, rawkey,
	       16, &keys[1]);
	import(HSM_KEY_HMAC, 0, 0, HSM_KEYF_EXTRACTABLE, rawkey, 32, &keys[2]);
	gen(HSM_KEY_EC_P256, 0, 0, HSM_KEYF_EXTRACTABLE, 0, &keys[3]);
	gen(HSM_KEY_ED25519, 0, 0, 0, 0, &keys[4]);
	gen(HSM_KEY_RSA, 2048, HSM_USE_SIGN | HSM_USE_DECRYPT |
	    HSM_USE_ENCRYPT, 0, 0, &keys[5]);
	gen(HSM_KEY_AES, 512, 0, 0, 0, &keys[6]);
	keys[7] = keys[0] ^ (1ull << 33);

	/* 64 KiB of random bytes, with a few well-formed SGLs in it */
	arena = fh_alloc(&fh, 65536);
	rnd(fh_ptr(&fh, arena), 65536);
	sg = fh_ptr(&fh, arena);
	for (i = 0; i < 16; i++) {
		sg[i].addr = htole64(arena + 8192 + 512 * i);
		sg[i].len = htole32(1 + (i * 37) % 512);
		sg[i].rsvd = 0;
	}

	for (i = 0; i < iters; i++) {
		uint64_t r = fz_rand();
		unsigned int j, nmut;

		/* a plausible command first ... */
		memset(&s, 0, sizeof(s));
		s.opcode = ops[r % sizeof(ops)];
		r >>= 8;
		s.handle = htole64(keys[r % 7]);
		r >>= 3;
		s.mech = htole16(mechs[r % (sizeof(mechs) / 2)]);
		r >>= 5;
		s.mparam = htole16(r & 1 ? 16 + (r >> 1) % 3 : 0);
		r >>= 3;
		s.src = htole64(arena + 16384 + (r % 256) * 16);
		r >>= 8;
		s.src_len = htole32(r & 1 ? 16 * (1 + (r >> 1) % 64) :
					    1 + (r >> 1) % 600);
		r >>= 12;
		s.dst = htole64(arena + 32768 + (r % 256) * 16);
		r >>= 8;
		s.dst_len = htole32(r & 1 ? 4096 : (r >> 1) % 300);
		r = fz_rand();
		if (s.opcode >= 0x80) {
			memcpy(s.iv, &r, 8);
			if (r & 0x100)
				memset(s.iv + 12, 0, 4);
		}
		if (s.opcode == HSM_ADM_KEY_WRAP)
			s.qw[0] = htole64(keys[(r >> 9) % 7]);
		if ((r >> 12) % 4 == 0) {
			s.flags |= HSM_SQE_F_SRC_SGL;
			s.src = htole64(arena + 16 * ((r >> 14) % 8));
			s.src_nsge = htole16(1 + (r >> 17) % 8);
		}
		if ((r >> 20) % 4 == 0) {
			s.flags |= HSM_SQE_F_DST_SGL;
			s.dst = htole64(arena + 16 * ((r >> 22) % 8));
			s.dst_nsge = htole16(1 + (r >> 25) % 8);
		}
		if (s.opcode >= 0x80 && (r >> 28) % 3 == 0)
			memset(s.iv, 0, sizeof(s.iv));
		fz_trim(&s);

		/* ... then break 0..2 fields of it */
		nmut = fz_rand() % 3;
		for (j = 0; j < nmut; j++) {
			r = fz_rand();
			switch (r % 12) {
			case 0:
				s.flags = r >> 8;
				break;
			case 1:
				s.mech = htole16(r >> 8);
				break;
			case 2:
				s.mparam = htole16(r >> 8);
				break;
			case 3:
				s.handle = htole64(r & 0x100 ? keys[7] : r);
				break;
			case 4:
				s.src = htole64(r & 0x100 ? arena + (r >> 9) % 65536 : r);
				break;
			case 5:
				s.dst = htole64(r & 0x100 ? arena + (r >> 9) % 65536 : r);
				break;
			case 6:
				s.src_len = htole32(r >> 8);
				break;
			case 7:
				s.dst_len = htole32(r >> 8);
				break;
			case 8:
				s.src_nsge = htole16(r >> 8);
				break;
			case 9:
				s.dst_nsge = htole16(r >> 8);
				break;
			case 10:
				s.aux = htole32(r & 0x100 ? (r >> 9) % 64 : r >> 8);
				break;
			default:
				s.cdw[(r >> 8) % 4] = htole32(r >> 16);
				break;
			}
		}
		if (s.opcode >= 0x80)
			st = hsm_fw_io(fw, &fh.host, &s, &res);
		else
			st = hsm_fw_admin(fw, &fh.host, &s, &res);
		if (st >= HSM_SC_MAX)
			bad++;
		if (st && st != HSM_SC_BUFFER_TOO_SMALL && res)
			leaks++;
		ok += !st;
		hist[st < 32 ? st : 31]++;
		/* keep the key count bounded */
		if (!st && (s.opcode == HSM_ADM_KEY_IMPORT ||
			    s.opcode == HSM_ADM_KEY_UNWRAP))
			destroy(fw, res);
	}
	for (i = 0; i < 32; i++)
		if (hist[i])
			printf("# %-28s %u\n", hsm_fw_status_str(i), hist[i]);
	check(!bad && !leaks,
	      "%u random commands: %u succeeded, none with an undefined status or a result on error",
	      iters, ok);
	for (i = 0; i < 7; i++)
		destroy(fw, keys[i]);
}

/* ---- multi-part digests and HMAC ---- */

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static uint16_t hash_op(struct hsm_fw *f, uint8_t op, bool init,
			uint16_t mech, uint64_t key, uint64_t blob,
			const void *src, size_t len, uint64_t dst,
			uint32_t dst_len, uint64_t *res)
{
	struct hsm_sqe s;
	uint64_t r = 0;
	uint16_t st;

	sqe_init(&s, op);
	s.flags = init ? HSM_SQE_F_HASH_INIT : 0;
	s.mech = htole16(mech);
	s.handle = htole64(key);
	s.qw[0] = htole64(blob);
	if (len) {
		s.src = htole64(fh_put(&fh, src, len));
		s.src_len = htole32(len);
	}
	s.dst = htole64(dst);
	s.dst_len = htole32(dst_len);
	st = hsm_fw_io(f, &fh.host, &s, &r);
	if (res)
		*res = r;
	return st;
}

static const EVP_MD *md_of(uint16_t mech)
{
	if (mech >= HSM_MECH_HMAC_SHA256)
		mech -= HSM_MECH_HMAC_SHA256 - HSM_MECH_SHA256;
	return mech == HSM_MECH_SHA256 ? EVP_sha256() :
	       mech == HSM_MECH_SHA384 ? EVP_sha384() : EVP_sha512();
}

/* Host OpenSSL one-shot: digest, or HMAC() when @mech is an HMAC. */
static size_t ossl_hash(uint16_t mech, const uint8_t *key, size_t klen,
			const uint8_t *msg, size_t len, uint8_t *out)
{
	static const uint8_t nothing[1];
	unsigned int n = 0;

	if (mech >= HSM_MECH_HMAC_SHA256) {
		if (!HMAC(md_of(mech), klen ? key : nothing, (int)klen,
			  len ? msg : nothing, len, out, &n))
			abort();
	} else if (!EVP_Digest(len ? msg : nothing, len, out, &n, md_of(mech),
			       NULL)) {
		abort();
	}
	return n;
}

static size_t rnd_below(size_t n)
{
	uint32_t r;

	rnd(&r, sizeof(r));
	return n ? r % n : 0;
}

/*
 * Hash @msg in @parts pieces of random size (UPDATE with INIT, UPDATEs,
 * FINAL; one part = FINAL with INIT).  *out gets the digest.
 */
static uint16_t mp_hash(struct hsm_fw *f, uint16_t mech, uint64_t key,
			const uint8_t *msg, size_t len, unsigned int parts,
			uint8_t *out, uint64_t *resp)
{
	uint64_t blob = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
	uint64_t d = fh_alloc(&fh, 64), res = 0;
	unsigned int i;
	size_t off = 0, n;
	uint16_t st;

	for (i = 0; i + 1 < parts; i++) {
		n = rnd_below(len - off + 1);
		st = hash_op(f, HSM_IO_HASH_UPDATE, i == 0, mech, key, blob,
			     msg + off, n, 0, 0, &res);
		if (st || res)
			return st ? st : HSM_SC_INTERNAL;
		off += n;
	}
	st = hash_op(f, HSM_IO_HASH_FINAL, parts == 1, mech, key, blob,
		     msg + off, len - off, d, 64, &res);
	if (resp)
		*resp = res;
	if (!st)
		memcpy(out, fh_ptr(&fh, d), 64);
	return st;
}

static void test_hash_mp(void)
{
	static const uint16_t shas[] = {
		HSM_MECH_SHA256, HSM_MECH_SHA384, HSM_MECH_SHA512,
	};
	static const size_t lens[] = {
		0, 1, 55, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 4099,
	};
	static const size_t klens[] = { 0, 20, 64, 65, 131, 1024 };
	static const char *const rfc6[] = {
		"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
		"4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
		"0c2ef6ab4030fe8296248df163f44952",
		"80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
		"6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
	};
	static const char *const rfc1[] = {
		"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
		"afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
		"faea9ea9076ede7f4af152e8b2fa9cb6",
		"87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
		"daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
	};
	static const char msg6[] =
		"Test Using Larger Than Block-Size Key - Hash Key First";
	uint8_t msg[4099], key[1024], want[64], got[64];
	uint64_t hk[6], res;
	unsigned int m, ki, li, bad, parts;
	size_t n, dl;
	uint16_t st;

	rnd(msg, sizeof(msg));
	rnd(key, sizeof(key));
	for (ki = 0; ki < 6; ki++)
		if (!check_st(import(HSM_KEY_HMAC, 0, 0, 0, key, klens[ki],
				     &hk[ki]), HSM_SC_SUCCESS,
			      "import a %zu-byte HMAC key", klens[ki]))
			return;

	for (m = 0; m < 3; m++) {
		bad = 0;
		for (li = 0; li < ARRAY_LEN(lens); li++) {
			for (parts = 1; parts <= 5; parts += 2) {
				fh_reset(&fh);
				n = ossl_hash(shas[m], NULL, 0, msg, lens[li],
					      want);
				st = mp_hash(fw, shas[m], 0, msg, lens[li],
					     parts, got, &res);
				bad += st || res != n || memcmp(got, want, n);
			}
		}
		check(!bad, "multi-part %s = OpenSSL EVP_Digest, 0..4099 bytes, 1/3/5 random parts (%u wrong)",
		      md_name(shas[m]), bad);
		for (ki = 0; ki < 6; ki++) {
			bad = 0;
			for (li = 0; li < ARRAY_LEN(lens); li++) {
				parts = 1 + rnd_below(6);
				fh_reset(&fh);
				n = ossl_hash(shas[m] + 8, key, klens[ki], msg,
					      lens[li], want);
				st = mp_hash(fw, shas[m] + 8, hk[ki], msg,
					     lens[li], parts, got, &res);
				bad += st || res != n || memcmp(got, want, n);
			}
			check(!bad, "multi-part HMAC-%s, %zu-byte key = OpenSSL HMAC() (%u wrong)",
			      md_name(shas[m]), klens[ki], bad);
		}
		/* RFC 4231 cases 1 and 6 in three pieces */
		fh_reset(&fh);
		{
			uint8_t k1[20], k6[131];
			uint64_t h1, h6;

			memset(k1, 0x0b, sizeof(k1));
			memset(k6, 0xaa, sizeof(k6));
			import(HSM_KEY_HMAC, 0, 0, 0, k1, sizeof(k1), &h1);
			import(HSM_KEY_HMAC, 0, 0, 0, k6, sizeof(k6), &h6);
			n = unhex(rfc1[m], want);
			st = mp_hash(fw, shas[m] + 8, h1,
				     (const uint8_t *)"Hi There", 8, 3, got,
				     &res);
			check(!st && res == n && !memcmp(got, want, n),
			      "RFC 4231 case 1 HMAC-%s through UPDATE/FINAL",
			      md_name(shas[m]));
			n = unhex(rfc6[m], want);
			st = mp_hash(fw, shas[m] + 8, h6,
				     (const uint8_t *)msg6, strlen(msg6), 4,
				     got, &res);
			check(!st && res == n && !memcmp(got, want, n),
			      "RFC 4231 case 6 (131-byte key) HMAC-%s through UPDATE/FINAL",
			      md_name(shas[m]));
			destroy(fw, h1);
			destroy(fw, h6);
		}
	}

	/* one-shot MAC / MAC_VERIFY with a 0-byte and a 1024-byte key */
	for (ki = 0; ki < 6; ki += 5) {
		struct op o = { .opcode = HSM_IO_MAC,
				.mech = HSM_MECH_HMAC_SHA256,
				.handle = hk[ki], .src = msg, .src_len = 100,
				.dst_cap = 32 };

		fh_reset(&fh);
		ossl_hash(HSM_MECH_HMAC_SHA256, key, klens[ki], msg, 100, want);
		check(!run_io(&o, got, &res) && res == 32 &&
		      !memcmp(got, want, 32),
		      "one-shot MAC with a %zu-byte key = OpenSSL HMAC()",
		      klens[ki]);
		o.opcode = HSM_IO_MAC_VERIFY;
		o.dst_in = want;
		check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
			 "MAC_VERIFY with a %zu-byte key", klens[ki]);
	}
	{
		uint8_t big[HSM_HMAC_IMPORT_MAX + 1], blob[64];
		uint64_t h, kek;

		rnd(big, 16);
		import(HSM_KEY_AES, 0, HSM_USE_WRAP, 0, big, 16, &kek);
		import(HSM_KEY_HMAC, 0, 0, HSM_KEYF_EXTRACTABLE, key, 10, &h);
		check_st(wrap(h, kek, blob, sizeof(blob), NULL),
			 HSM_SC_INVALID_KEY_SIZE,
			 "KEY_WRAP of a 10-byte HMAC key (unwrap would refuse it)");
		destroy(fw, h);
		import(HSM_KEY_HMAC, 0, 0, HSM_KEYF_EXTRACTABLE, key, 32, &h);
		check_st(wrap(h, kek, blob, sizeof(blob), NULL), HSM_SC_SUCCESS,
			 "KEY_WRAP of a 32-byte HMAC key");
		destroy(fw, h);
		destroy(fw, kek);

		rnd(big, sizeof(big));
		check_st(import(HSM_KEY_HMAC, 0, 0, 0, big, sizeof(big), &h),
			 HSM_SC_INVALID_KEY_SIZE, "HMAC key of %u bytes",
			 HSM_HMAC_IMPORT_MAX + 1);
		check_st(import(HSM_KEY_HMAC, 16, 0, 0, big, 3, &h),
			 HSM_SC_INVALID_KEY_SIZE, "HMAC key bits not 8 x length");
	}

	/* saved states: continue from one copy twice, FINAL twice */
	fh_reset(&fh);
	{
		uint64_t b1 = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		uint64_t b2 = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		uint64_t d = fh_alloc(&fh, 64);
		uint8_t saved[HSM_HASH_STATE_SIZE], g1[64], g2[64], g3[64];

		for (m = 0; m < 2; m++) {
			uint16_t mech = m ? HSM_MECH_HMAC_SHA384 :
					    HSM_MECH_SHA256;
			uint64_t kh = m ? hk[4] : 0;

			dl = ossl_hash(mech, key, klens[4], msg, 300, want);
			hash_op(fw, HSM_IO_HASH_UPDATE, true, mech, kh, b1,
				msg, 77, 0, 0, NULL);
			memcpy(saved, fh_ptr(&fh, b1), sizeof(saved));
			memcpy(fh_ptr(&fh, b2), saved, sizeof(saved));
			st = hash_op(fw, HSM_IO_HASH_UPDATE, false, mech, kh,
				     b1, msg + 77, 100, 0, 0, NULL);
			st |= hash_op(fw, HSM_IO_HASH_FINAL, false, mech, kh,
				      b1, msg + 177, 123, d, 64, &res);
			memcpy(g1, fh_ptr(&fh, d), 64);
			check(!memcmp(fh_ptr(&fh, b2), saved, sizeof(saved)),
			      "the copy is untouched by work on the original");
			st |= hash_op(fw, HSM_IO_HASH_FINAL, false, mech, kh,
				      b2, msg + 77, 223, d, 64, NULL);
			memcpy(g2, fh_ptr(&fh, d), 64);
			check(!memcmp(fh_ptr(&fh, b2), saved, sizeof(saved)),
			      "FINAL leaves the blob untouched");
			st |= hash_op(fw, HSM_IO_HASH_FINAL, false, mech, kh,
				      b2, msg + 77, 223, d, 64, NULL);
			memcpy(g3, fh_ptr(&fh, d), 64);
			check(!st && res == dl && !memcmp(g1, want, dl) &&
			      !memcmp(g2, want, dl) && !memcmp(g3, want, dl),
			      "%s: original, copy and the copy again all give OpenSSL's result",
			      m ? "HMAC-SHA384" : "SHA256");
			/* an empty UPDATE re-seals: new bytes, same state */
			memcpy(fh_ptr(&fh, b1), saved, sizeof(saved));
			st = hash_op(fw, HSM_IO_HASH_UPDATE, false, mech, kh,
				     b1, NULL, 0, 0, 0, NULL);
			check(!st && memcmp(fh_ptr(&fh, b1), saved,
					    sizeof(saved)),
			      "empty UPDATE re-seals with a fresh nonce");
			st = hash_op(fw, HSM_IO_HASH_FINAL, false, mech, kh,
				     b1, msg + 77, 223, d, 64, NULL);
			check(!st && !memcmp(fh_ptr(&fh, d), want, dl),
			      "and the state is the same");
		}
	}

	/* every bit of a blob matters */
	for (m = 0; m < 2; m++) {
		uint16_t mech = m ? HSM_MECH_HMAC_SHA512 : HSM_MECH_SHA256;
		uint64_t kh = m ? hk[1] : 0, b, d;
		uint8_t saved[HSM_HASH_STATE_SIZE];
		unsigned int i, wrong = 0;

		fh_reset(&fh);
		b = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		d = fh_alloc(&fh, 64);
		hash_op(fw, HSM_IO_HASH_UPDATE, true, mech, kh, b, msg, 200,
			0, 0, NULL);
		memcpy(saved, fh_ptr(&fh, b), sizeof(saved));
		for (i = 0; i < HSM_HASH_STATE_SIZE * 8; i++) {
			memcpy(fh_ptr(&fh, b), saved, sizeof(saved));
			((uint8_t *)fh_ptr(&fh, b))[i / 8] ^= 1u << (i % 8);
			st = hash_op(fw, i & 1 ? HSM_IO_HASH_FINAL :
				     HSM_IO_HASH_UPDATE, false, mech, kh, b,
				     msg, 10, i & 1 ? d : 0, i & 1 ? 64 : 0,
				     &res);
			wrong += st != HSM_SC_INVALID_STATE || res;
		}
		check(!wrong, "%s: each of the %u single-bit flips of a blob gives INVALID_STATE (%u did not)",
		      m ? "HMAC-SHA512" : "SHA256", HSM_HASH_STATE_SIZE * 8,
		      wrong);
	}

	/* a blob is bound to its mechanism, key and card */
	fh_reset(&fh);
	{
		uint64_t b = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		uint64_t d = fh_alloc(&fh, 64), h2, h3;
		uint8_t saved[HSM_HASH_STATE_SIZE];
		struct hsm_fw *other = hsm_fw_new(&cfg, NULL);

		hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_SHA256, 0, b,
			msg, 64, 0, 0, NULL);
		memcpy(saved, fh_ptr(&fh, b), sizeof(saved));
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false, HSM_MECH_SHA512,
				 0, b, NULL, 0, d, 64, NULL),
			 HSM_SC_INVALID_STATE, "SHA256 blob used for SHA512");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, false,
				 HSM_MECH_HMAC_SHA256, hk[1], b, NULL, 0, 0, 0,
				 NULL),
			 HSM_SC_INVALID_STATE, "SHA256 blob used for HMAC-SHA256");
		check_st(hash_op(other, HSM_IO_HASH_FINAL, false,
				 HSM_MECH_SHA256, 0, b, NULL, 0, d, 64, NULL),
			 HSM_SC_INVALID_STATE, "blob from another card");
		check(!memcmp(fh_ptr(&fh, b), saved, sizeof(saved)),
		      "refused blob left as it was");
		hsm_fw_free(other);

		import(HSM_KEY_HMAC, 0, 0, 0, key, 20, &h2);
		hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_HMAC_SHA256, h2,
			b, msg, 64, 0, 0, NULL);
		memcpy(saved, fh_ptr(&fh, b), sizeof(saved));
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false,
				 HSM_MECH_HMAC_SHA256, hk[1], b, NULL, 0, d, 64,
				 NULL),
			 HSM_SC_INVALID_STATE,
			 "HMAC blob used with another key of the same bytes");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false,
				 HSM_MECH_HMAC_SHA384, h2, b, NULL, 0, d, 64,
				 NULL),
			 HSM_SC_INVALID_STATE, "HMAC-SHA256 blob used for HMAC-SHA384");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false, HSM_MECH_SHA256,
				 0, b, NULL, 0, d, 64, NULL),
			 HSM_SC_INVALID_STATE, "HMAC blob used for plain SHA256");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false,
				 HSM_MECH_HMAC_SHA256, h2, b, NULL, 0, d, 64,
				 NULL),
			 HSM_SC_SUCCESS, "with its own key it is fine");
		destroy(fw, h2);
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false,
				 HSM_MECH_HMAC_SHA256, h2, b, NULL, 0, d, 64,
				 NULL),
			 HSM_SC_INVALID_HANDLE, "after its key is destroyed");
		/* the same slot, a new key: the tag in the handle differs */
		{
			struct hsm_fw_config c1 = cfg;
			struct hsm_fw *one, *prev = fw;

			c1.max_keys = 1;
			one = hsm_fw_new(&c1, NULL);
			fw = one;
			import(HSM_KEY_HMAC, 0, 0, 0, key, 20, &h2);
			hash_op(one, HSM_IO_HASH_UPDATE, true,
				HSM_MECH_HMAC_SHA256, h2, b, msg, 64, 0, 0,
				NULL);
			destroy(one, h2);
			import(HSM_KEY_HMAC, 0, 0, 0, key, 20, &h3);
			check(HSM_HANDLE_SLOT(h3) == HSM_HANDLE_SLOT(h2) &&
			      h3 != h2, "one-slot card reuses the slot");
			check_st(hash_op(one, HSM_IO_HASH_FINAL, false,
					 HSM_MECH_HMAC_SHA256, h3, b, NULL, 0,
					 d, 64, NULL),
				 HSM_SC_INVALID_STATE,
				 "blob of a destroyed key used with the next key in its slot");
			fw = prev;
			hsm_fw_free(one);
		}
	}

	/* the usual rules */
	fh_reset(&fh);
	{
		uint64_t b = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		uint64_t d = fh_alloc(&fh, 64), haes, hver;
		struct hsm_sqe s;
		uint8_t zero[16] = { 0 };

		import(HSM_KEY_AES, 0, 0, 0, zero, 16, &haes);
		import(HSM_KEY_HMAC, 0, HSM_USE_VERIFY, 0, key, 32, &hver);
		memset(fh_ptr(&fh, b), 0, HSM_HASH_STATE_SIZE);
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, false, HSM_MECH_SHA256,
				 0, b, msg, 1, 0, 0, NULL),
			 HSM_SC_INVALID_STATE, "UPDATE of a zeroed blob");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_SHA256,
				 0, b, msg, 1, d, 64, NULL),
			 HSM_SC_INVALID_FIELD, "UPDATE with a dst");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_SHA256,
				 0, 0, msg, 1, 0, 0, NULL),
			 HSM_SC_INVALID_FIELD, "UPDATE without a blob");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_SHA256,
				 0, 0x10, msg, 1, 0, 0, NULL),
			 HSM_SC_DATA_XFER, "UPDATE with an unreachable blob");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, false, HSM_MECH_SHA256,
				 0, 0, msg, 1, d, 64, NULL),
			 HSM_SC_INVALID_FIELD, "FINAL without INIT and a blob");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_SHA256,
				 hk[1], b, msg, 1, 0, 0, NULL),
			 HSM_SC_INVALID_FIELD, "SHA256 with a key handle");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true,
				 HSM_MECH_HMAC_SHA256, 0, b, msg, 1, 0, 0, NULL),
			 HSM_SC_INVALID_HANDLE, "HMAC without a key");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true,
				 HSM_MECH_HMAC_SHA256, haes, b, msg, 1, 0, 0,
				 NULL),
			 HSM_SC_KEY_TYPE, "HMAC with an AES key");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, true,
				 HSM_MECH_HMAC_SHA256, hver, b, msg, 1, d, 64,
				 NULL),
			 HSM_SC_USE_DENIED, "HMAC with a verify-only key");
		check_st(hash_op(fw, HSM_IO_HASH_UPDATE, true, HSM_MECH_AES_CBC,
				 0, b, msg, 1, 0, 0, NULL),
			 HSM_SC_INVALID_MECH, "UPDATE with AES_CBC");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, true, HSM_MECH_SHA384,
				 0, b, msg, 1, d, 47, &res),
			 HSM_SC_BUFFER_TOO_SMALL, "FINAL SHA384 into 47 bytes");
		check(res == 48, "BUFFER_TOO_SMALL reports 48");
		check_st(hash_op(fw, HSM_IO_HASH_FINAL, true,
				 HSM_MECH_HMAC_SHA512, hk[1], b, msg, 1, d, 63,
				 &res),
			 HSM_SC_BUFFER_TOO_SMALL, "FINAL HMAC-SHA512 into 63 bytes");
		check(res == 64, "BUFFER_TOO_SMALL reports 64");
		sqe_init(&s, HSM_IO_HASH_UPDATE);
		s.flags = HSM_SQE_F_HASH_INIT;
		s.mech = htole16(HSM_MECH_SHA256);
		s.qw[0] = htole64(b);
		check_st(hsm_fw_io(fw, &fh.host, &s, &res), HSM_SC_SUCCESS,
			 "UPDATE of nothing with INIT");
		s.mparam = htole16(1);
		check_st(hsm_fw_io(fw, &fh.host, &s, &res),
			 HSM_SC_INVALID_FIELD, "UPDATE with mparam");
		s.mparam = 0;
		s.aux = htole32(1);
		check_st(hsm_fw_io(fw, &fh.host, &s, &res),
			 HSM_SC_INVALID_FIELD, "UPDATE with aux");
		s.aux = 0;
		s.qw[1] = htole64(1ull << 40);
		check_st(hsm_fw_io(fw, &fh.host, &s, &res),
			 HSM_SC_INVALID_FIELD, "UPDATE with qw[1]");
		s.qw[1] = 0;
		s.flags |= HSM_SQE_F_PREHASHED;
		check_st(hsm_fw_io(fw, &fh.host, &s, &res),
			 HSM_SC_INVALID_FIELD, "UPDATE with PREHASHED");
		sqe_init(&s, HSM_IO_DIGEST);
		s.flags = HSM_SQE_F_HASH_INIT;
		s.mech = htole16(HSM_MECH_SHA256);
		s.dst = htole64(d);
		s.dst_len = htole32(32);
		check_st(hsm_fw_io(fw, &fh.host, &s, &res),
			 HSM_SC_INVALID_FIELD, "HASH_INIT flag on DIGEST");
		/* source through an SGL */
		{
			uint64_t pieces[4];
			size_t plen[4];

			sqe_init(&s, HSM_IO_HASH_FINAL);
			s.flags = HSM_SQE_F_HASH_INIT | HSM_SQE_F_SRC_SGL;
			s.mech = htole16(HSM_MECH_HMAC_SHA256);
			s.handle = htole64(hk[2]);
			s.src = htole64(build_sgl(msg, 1000, 4, pieces, plen));
			s.src_len = htole32(1000);
			s.src_nsge = htole16(4);
			s.dst = htole64(d);
			s.dst_len = htole32(64);
			ossl_hash(HSM_MECH_HMAC_SHA256, key, klens[2], msg, 1000,
				  want);
			check(!hsm_fw_io(fw, &fh.host, &s, &res) && res == 32 &&
			      !memcmp(fh_ptr(&fh, d), want, 32),
			      "one-shot FINAL from a 4-entry SGL = OpenSSL");
		}
		destroy(fw, haes);
		destroy(fw, hver);
	}

	/* tamper: HMAC stops, plain hashes go on with a new state key */
	fh_reset(&fh);
	{
		struct hsm_fw *f = hsm_fw_new(&cfg, NULL), *saved = fw;
		uint64_t b = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		uint64_t bh = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
		uint64_t d = fh_alloc(&fh, 64), h;

		fw = f;
		import(HSM_KEY_HMAC, 0, 0, 0, key, 32, &h);
		hash_op(f, HSM_IO_HASH_UPDATE, true, HSM_MECH_SHA256, 0, b, msg,
			10, 0, 0, NULL);
		hash_op(f, HSM_IO_HASH_UPDATE, true, HSM_MECH_HMAC_SHA256, h,
			bh, msg, 10, 0, 0, NULL);
		hsm_fw_tamper(f);
		check_st(hash_op(f, HSM_IO_HASH_UPDATE, false,
				 HSM_MECH_HMAC_SHA256, h, bh, msg, 10, 0, 0,
				 NULL),
			 HSM_SC_TAMPERED, "HMAC UPDATE after tamper");
		check_st(hash_op(f, HSM_IO_HASH_FINAL, true,
				 HSM_MECH_HMAC_SHA256, h, 0, msg, 10, d, 64,
				 NULL),
			 HSM_SC_TAMPERED, "one-shot HMAC FINAL after tamper");
		check_st(hash_op(f, HSM_IO_HASH_FINAL, false, HSM_MECH_SHA256,
				 0, b, msg, 10, d, 64, NULL),
			 HSM_SC_INVALID_STATE, "SHA256 blob from before the tamper");
		ossl_hash(HSM_MECH_SHA256, NULL, 0, msg, 20, want);
		st = mp_hash(f, HSM_MECH_SHA256, 0, msg, 20, 3, got, &res);
		check(!st && !memcmp(got, want, 32),
		      "multi-part SHA256 still works after tamper");
		fw = saved;
		hsm_fw_free(f);
	}
	for (ki = 0; ki < 6; ki++)
		destroy(fw, hk[ki]);
}

/* ---- multi-part hashes on several threads across a tamper ---- */

#define HC_THREADS	3

static struct hsm_fw *hc_fw;
static uint8_t hc_msg[256], hc_want[32];
static int hc_stop, hc_tampered;		/* atomic */
static unsigned long hc_ok, hc_after, hc_stale, hc_bad;	/* atomic */

static void *hc_worker(void *arg)
{
	uint64_t src = fh_put(&fh, hc_msg, sizeof(hc_msg));
	uint64_t blob = fh_alloc(&fh, HSM_HASH_STATE_SIZE);
	uint64_t dst = fh_alloc(&fh, 32), res;
	static const uint32_t cut[] = { 0, 100, 200, 256 };
	struct hsm_sqe s;
	unsigned int i;
	uint16_t st = 0;
	int t;

	while (!__atomic_load_n(&hc_stop, __ATOMIC_ACQUIRE)) {
		t = __atomic_load_n(&hc_tampered, __ATOMIC_ACQUIRE);
		for (i = 0; i < 3; i++) {
			memset(&s, 0, sizeof(s));
			s.opcode = i == 2 ? HSM_IO_HASH_FINAL :
					    HSM_IO_HASH_UPDATE;
			s.flags = i ? 0 : HSM_SQE_F_HASH_INIT;
			s.mech = htole16(HSM_MECH_SHA256);
			s.qw[0] = htole64(blob);
			s.src = htole64(src + cut[i]);
			s.src_len = htole32(cut[i + 1] - cut[i]);
			if (i == 2) {
				s.dst = htole64(dst);
				s.dst_len = htole32(32);
			}
			st = hsm_fw_io(hc_fw, &fh.host, &s, &res);
			if (st)
				break;
		}
		if (st == HSM_SC_INVALID_STATE) {
			/* only a tamper between two steps may cause this */
			__atomic_add_fetch(&hc_stale, 1, __ATOMIC_RELAXED);
		} else if (st || res != 32 ||
			   memcmp(fh_ptr(&fh, dst), hc_want, 32)) {
			__atomic_add_fetch(&hc_bad, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&hc_ok, 1, __ATOMIC_RELAXED);
			if (t)
				__atomic_add_fetch(&hc_after, 1,
						   __ATOMIC_RELAXED);
		}
	}
	return arg;
}

static void test_hash_concurrency(void)
{
	struct timespec ts = { 0, 80 * 1000 * 1000 };
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	pthread_t th[HC_THREADS];
	unsigned int i;

	hc_fw = hsm_fw_new(&cfg, NULL);
	rnd(hc_msg, sizeof(hc_msg));
	ossl_hash(HSM_MECH_SHA256, NULL, 0, hc_msg, sizeof(hc_msg), hc_want);
	for (i = 0; i < HC_THREADS; i++)
		pthread_create(&th[i], NULL, hc_worker, NULL);
	nanosleep(&ts, NULL);
	hsm_fw_tamper(hc_fw);
	__atomic_store_n(&hc_tampered, 1, __ATOMIC_RELEASE);
	nanosleep(&ts, NULL);
	/* a loaded machine may not have run a worker since: up to 10 s */
	for (i = 0; i < 1000 && !__atomic_load_n(&hc_after, __ATOMIC_ACQUIRE);
	     i++)
		nanosleep(&tick, NULL);
	__atomic_store_n(&hc_stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < HC_THREADS; i++)
		pthread_join(th[i], NULL);
	check(!hc_bad && hc_ok && hc_after && hc_stale <= HC_THREADS,
	      "%d threads hashing in 3 steps across a tamper: %lu right (%lu after), %lu stale blobs, %lu wrong",
	      HC_THREADS, hc_ok, hc_after, hc_stale, hc_bad);
	hsm_fw_free(hc_fw);
}

/* ---- AES-CBC + HMAC-SHA256 (authenc) ---- */

static uint16_t import_authenc(const uint8_t *ek, size_t elen,
			       const uint8_t *mk, size_t mlen, uint16_t bits,
			       uint32_t uses, uint32_t flags, uint32_t rsvd,
			       int extra, uint64_t *h)
{
	uint8_t blob[8 + 32 + 1024 + 8];
	struct hsm_authenc_key_hdr hdr = {
		.enc_len = htole16(elen), .mac_len = htole16(mlen),
		.rsvd = htole32(rsvd),
	};

	memcpy(blob, &hdr, sizeof(hdr));
	memcpy(blob + 8, ek, elen);
	memcpy(blob + 8 + elen, mk, mlen);
	return import(HSM_KEY_AUTHENC, bits, uses, flags, blob,
		      8 + elen + mlen + extra, h);
}

/* OpenSSL composition: AES-CBC, then HMAC-SHA256 over AAD || ct. */
static void ossl_authenc(const uint8_t *ek, size_t elen, const uint8_t *mk,
			 size_t mlen, const uint8_t *iv, const uint8_t *aad,
			 size_t alen, const uint8_t *pt, size_t len,
			 uint8_t *ct, uint8_t *tag)
{
	static uint8_t buf[8192];
	char name[32];
	unsigned int n;

	snprintf(name, sizeof(name), "AES-%zu-CBC", elen * 8);
	if (len)
		ossl_cipher(name, ek, iv, 1, pt, len, ct);
	memcpy(buf, aad, alen);
	memcpy(buf + alen, ct, len);
	if (!HMAC(EVP_sha256(), mlen ? mk : buf, (int)mlen, buf, alen + len,
		  tag, &n))
		abort();
}

static void test_authenc(void)
{
	static const size_t elens[] = { 16, 24, 32 };
	static const size_t mlens[] = { 0, 20, 64, 100 };
	static const size_t taglens[] = { 0, 12, 16, 32 };
	static const size_t alens[] = { 0, 8, 20 };
	static const size_t plens[] = { 0, 16, 64, 4096 };
	static uint8_t src[4096 + 64], want[4096 + 64], got[4096 + 64];
	uint8_t ek[32], mk[100], iv[16], aad[20], pt[4096], tag[32];
	unsigned int ei, mi, ti, ai, pi, bad = 0, badd = 0, n = 0;
	uint64_t h, res;
	struct op o;
	uint16_t st;

	rnd(ek, sizeof(ek));
	rnd(mk, sizeof(mk));
	rnd(iv, sizeof(iv));
	rnd(aad, sizeof(aad));
	rnd(pt, sizeof(pt));
	for (ei = 0; ei < 3; ei++) {
		for (mi = 0; mi < 4; mi++) {
			fh_reset(&fh);
			if (import_authenc(ek, elens[ei], mk, mlens[mi], 0, 0, 0,
					   0, 0, &h)) {
				bad++;
				continue;
			}
			for (n = 0; n < 12; n++) {
				size_t tl, al, pl;

				ti = n % 4;
				ai = n % 3;
				pi = (n + mi) % 4;
				tl = taglens[ti];
				al = alens[ai];
				pl = plens[pi];
				ossl_authenc(ek, elens[ei], mk, mlens[mi], iv,
					     aad, al, pt, pl, want, tag);
				memcpy(want + pl, tag, tl);
				memcpy(src, aad, al);
				memcpy(src + al, pt, pl);
				memset(&o, 0, sizeof(o));
				o.opcode = HSM_IO_ENCRYPT;
				o.mech = HSM_MECH_AES_CBC_HMAC_SHA256;
				o.mparam = tl;
				o.handle = h;
				o.aux = al;
				memcpy(o.iv, iv, 16);
				o.src = src;
				o.src_len = al + pl;
				o.dst_cap = pl + tl;
				/* SGLs need at least one byte */
				o.src_sg = (n & 1) && o.src_len ? 3 : 0;
				o.dst_sg = (n & 2) && o.dst_cap ? 2 : 0;
				st = run_io(&o, got, &res);
				bad += st || res != pl + tl ||
				       memcmp(got, want, pl + tl);
				/* and back */
				memcpy(src + al, want, pl + tl);
				o.opcode = HSM_IO_DECRYPT;
				o.src_len = al + pl + tl;
				o.dst_cap = pl;
				o.src_sg = (n & 1) && o.src_len ? 3 : 0;
				o.dst_sg = (n & 2) && o.dst_cap ? 2 : 0;
				st = run_io(&o, got, &res);
				badd += st || res != pl || memcmp(got, pt, pl);
			}
			destroy(fw, h);
		}
	}
	check(!bad, "authenc encrypt = OpenSSL AES-CBC + HMAC-SHA256(AAD || ct): AES-128/192/256, MAC keys 0/20/64/100 bytes, tags 0/12/16/32 (%u wrong)",
	      bad);
	check(!badd, "authenc decrypt inverts it (%u wrong)", badd);

	/* tampering: ciphertext, AAD, tag; nothing is written */
	fh_reset(&fh);
	import_authenc(ek, 32, mk, 32, 0, 0, 0, 0, 0, &h);
	for (ti = 1; ti < 4; ti++) {
		size_t tl = taglens[ti], al = 20, pl = 64, pos[3];
		unsigned int k, untouched = 0, failed = 0;

		ossl_authenc(ek, 32, mk, 32, iv, aad, al, pt, pl, want, tag);
		pos[0] = al + 17;		/* ciphertext */
		pos[1] = 3;			/* AAD */
		pos[2] = al + pl + tl - 1;	/* tag */
		for (k = 0; k < 3; k++) {
			memcpy(src, aad, al);
			memcpy(src + al, want, pl);
			memcpy(src + al + pl, tag, tl);
			src[pos[k]] ^= 0x04;
			memset(&o, 0, sizeof(o));
			o.opcode = HSM_IO_DECRYPT;
			o.mech = HSM_MECH_AES_CBC_HMAC_SHA256;
			o.mparam = tl;
			o.handle = h;
			o.aux = al;
			memcpy(o.iv, iv, 16);
			o.src = src;
			o.src_len = al + pl + tl;
			o.dst_cap = pl;
			st = run_io(&o, got, &res);
			failed += st == HSM_SC_VERIFY_FAILED && !res;
			for (n = 0; n < pl && got[n] == 0xa5; n++)
				;
			untouched += n == pl;
		}
		check(failed == 3 && untouched == 3,
		      "tag %zu: flipped ciphertext, AAD and tag bits give VERIFY_FAILED with dst untouched",
		      tl);
	}
	/* without a tag nothing is checked, by definition */
	memset(&o, 0, sizeof(o));
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_AES_CBC_HMAC_SHA256;
	o.handle = h;
	o.src = pt;
	o.src_len = 15;
	o.dst_cap = 64;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "authenc on 15 bytes");
	o.src_len = 32;
	o.aux = 8;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "authenc with 24 bytes of data after the AAD");
	o.aux = 33;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "authenc AAD longer than src");
	o.aux = 0;
	o.mparam = 33;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
		 "authenc tag of 33 bytes");
	o.mparam = 16;
	o.dst_cap = 47;
	check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
		 "authenc dst of 47 bytes for 32 + 16");
	check(res == 48, "BUFFER_TOO_SMALL reports 48");
	o.opcode = HSM_IO_DECRYPT;
	o.src_len = 15;
	o.dst_cap = 64;
	check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
		 "authenc decrypt shorter than the tag");
	o.opcode = HSM_IO_ENCRYPT;
	o.mech = HSM_MECH_AES_CBC;
	o.mparam = 0;
	o.src_len = 32;
	check_st(run_io(&o, NULL, NULL), HSM_SC_KEY_TYPE,
		 "AES_CBC with an authenc key");
	{
		uint64_t haes, hk;
		uint8_t blob[64];

		import(HSM_KEY_AES, 0, HSM_USE_ENCRYPT | HSM_USE_WRAP, 0, ek, 16,
		       &haes);
		o.mech = HSM_MECH_AES_CBC_HMAC_SHA256;
		o.handle = haes;
		check_st(run_io(&o, NULL, NULL), HSM_SC_KEY_TYPE,
			 "authenc with a plain AES key");
		check_st(wrap(h, haes, blob, sizeof(blob), NULL),
			 HSM_SC_KEY_TYPE, "KEY_WRAP of an authenc key");
		destroy(fw, haes);
		import_authenc(ek, 16, mk, 20, 0, HSM_USE_DECRYPT, 0, 0, 0,
			       &hk);
		o.handle = hk;
		check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
			 "authenc encrypt with a decrypt-only key");
		destroy(fw, hk);
	}
	check_st(import_authenc(ek, 20, mk, 20, 0, 0, 0, 0, 0, &res),
		 HSM_SC_INVALID_KEY_SIZE, "authenc key with a 20-byte AES key");
	check_st(import_authenc(ek, 16, mk, 20, 0, 0, 0, 0, 1, &res),
		 HSM_SC_INVALID_LENGTH, "authenc key one byte too long");
	check_st(import_authenc(ek, 16, mk, 20, 0, 0, 0, 0, -1, &res),
		 HSM_SC_INVALID_LENGTH, "authenc key one byte too short");
	check_st(import_authenc(ek, 16, mk, 20, 0, 0, 0, 1, 0, &res),
		 HSM_SC_INVALID_FIELD, "authenc key with rsvd set");
	check_st(import_authenc(ek, 16, mk, 20, 256, 0, 0, 0, 0, &res),
		 HSM_SC_INVALID_KEY_SIZE, "authenc key with bits 256 for AES-128");
	check_st(import_authenc(ek, 16, mk, 20, 128, HSM_USE_SIGN, 0, 0, 0,
				&res),
		 HSM_SC_INVALID_FIELD, "authenc key with USE_SIGN");
	check_st(import_authenc(ek, 16, mk, 20, 128, 0, 0, 0, 0, &h),
		 HSM_SC_SUCCESS, "authenc key with bits 128");
	{
		struct hsm_key_attrs a;

		get_attrs(fw, h, &a);
		check(le16toh(a.type) == HSM_KEY_AUTHENC &&
		      le16toh(a.bits) == 128 &&
		      le32toh(a.uses) == (HSM_USE_ENCRYPT | HSM_USE_DECRYPT) &&
		      (le32toh(a.flags) & HSM_KEYF_SESSION),
		      "authenc key attributes");
		destroy(fw, h);
	}
	check_st(gen(HSM_KEY_AUTHENC, 128, 0, 0, 0, &h), HSM_SC_KEY_TYPE,
		 "KEY_GENERATE of an authenc key");
}

/* ---- RSA keys in PKCS#1 form ---- */

static size_t der_of(EVP_PKEY *pk, bool pub, uint8_t **der)
{
	int len;

	*der = NULL;
	len = pub ? i2d_PublicKey(pk, der) : i2d_PrivateKey(pk, der);
	if (len <= 0)
		abort();
	return len;
}

static int ossl_rsa_raw(EVP_PKEY *pk, const uint8_t *in, size_t k,
			uint8_t *out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	size_t len = k;
	int ok;

	ok = EVP_PKEY_encrypt_init(ctx) == 1 &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1 &&
	     EVP_PKEY_encrypt(ctx, out, &len, in, k) == 1 && len == k;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static void test_rsa_pkcs1(void)
{
	static const unsigned int sizes[] = { 512, 1024, 2048, 4096 };
	static uint8_t m[520], c[520], got[520], want[520], sig[520];
	unsigned int i;

	for (i = 0; i < 4; i++) {
		unsigned int bits = sizes[i];
		size_t k = bits / 8, dlen, siglen = sizeof(sig);
		EVP_PKEY *pk = ossl_keygen("RSA", NULL, bits), *pub;
		struct hsm_key_attrs a;
		uint64_t hpriv, hpub, hpub0, res;
		uint8_t *der;
		BIGNUM *n = NULL;
		struct op o;
		uint16_t st;

		fh_reset(&fh);
		dlen = der_of(pk, false, &der);
		st = import(HSM_KEY_RSA, 0, HSM_USE_ENCRYPT | HSM_USE_DECRYPT |
			    HSM_USE_SIGN, 0, der, dlen, &hpriv);
		check_st(st, HSM_SC_SUCCESS, "import RSA-%u PKCS#1 RSAPrivateKey",
			 bits);
		der[dlen / 2] ^= 1;
		check(import(HSM_KEY_RSA, 0, 0, 0, der, dlen, &res) != 0,
		      "RSA-%u private key with a flipped byte is refused",
		      bits);
		OPENSSL_free(der);
		dlen = der_of(pk, true, &der);
		check_st(import(HSM_KEY_RSA, 0, HSM_USE_ENCRYPT | HSM_USE_VERIFY,
				HSM_KEYF_EXTRACTABLE, der, dlen, &hpub),
			 HSM_SC_SUCCESS, "import RSA-%u PKCS#1 RSAPublicKey", bits);
		check_st(import(HSM_KEY_RSA, 0, 0, 0, der, dlen, &hpub0),
			 HSM_SC_SUCCESS, "import it with uses 0");
		get_attrs(fw, hpub0, &a);
		check(le32toh(a.uses) == HSM_USE_VERIFY && le16toh(a.bits) == bits,
		      "public key, uses 0: VERIFY only, %u bits", bits);
		check_st(import(HSM_KEY_RSA, 0, HSM_USE_DECRYPT, 0, der, dlen,
				&res), HSM_SC_INVALID_FIELD,
			 "public key with USE_DECRYPT");
		check_st(import(HSM_KEY_RSA, 0, HSM_USE_SIGN | HSM_USE_VERIFY, 0,
				der, dlen, &res), HSM_SC_INVALID_FIELD,
			 "public key with USE_SIGN");
		check_st(import(HSM_KEY_RSA, bits + 8, HSM_USE_ENCRYPT, 0, der,
				dlen, &res), HSM_SC_INVALID_KEY_SIZE,
			 "public key with the wrong bits");
		OPENSSL_free(der);
		{
			uint64_t kek;

			import(HSM_KEY_AES, 0, HSM_USE_WRAP, 0, m, 16, &kek);
			check_st(wrap(hpub, kek, got, sizeof(got), NULL),
				 HSM_SC_KEY_TYPE,
				 "KEY_WRAP of an extractable public-only key");
			destroy(fw, kek);
		}

		/* RSA_RAW public operation (public-only key) = OpenSSL */
		EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n);
		rnd(m, k);
		m[0] = 0;
		ossl_rsa_raw(pk, m, k, want);
		memset(&o, 0, sizeof(o));
		o.opcode = HSM_IO_ENCRYPT;
		o.mech = HSM_MECH_RSA_RAW;
		o.handle = hpub;
		o.src = m;
		o.src_len = k;
		o.dst_cap = k;
		check(!run_io(&o, c, &res) && res == k && !memcmp(c, want, k),
		      "RSA-%u raw public operation with the public key = OpenSSL",
		      bits);
		o.handle = hpriv;
		check(!run_io(&o, got, &res) && res == k && !memcmp(got, want, k),
		      "same with the private key");
		/* short input: a 5-byte integer, output k bytes */
		memset(m, 0, k);
		rnd(m + k - 5, 5);
		ossl_rsa_raw(pk, m, k, want);
		o.src = m + k - 5;
		o.src_len = 5;
		o.handle = hpub;
		check(!run_io(&o, got, &res) && res == k && !memcmp(got, want, k),
		      "RSA-%u raw public operation on 5 bytes = OpenSSL on the padded value",
		      bits);
		o.opcode = HSM_IO_DECRYPT;
		check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
			 "raw private operation with the public key");
		o.handle = hpriv;
		o.src = want;
		o.src_len = k;
		check(!run_io(&o, got, &res) && res == k && !memcmp(got, m, k),
		      "raw private operation returns k bytes, left-padded");
		/* a small value with leading zero bytes given short */
		for (dlen = 0; dlen < k - 1 && !want[dlen]; dlen++)
			;
		o.src = want + dlen;
		o.src_len = k - dlen;
		check(!run_io(&o, got, &res) && res == k && !memcmp(got, m, k),
		      "same with the input's leading zeros left off");
		BN_bn2binpad(n, want, k);
		o.src = want;
		o.src_len = k;
		check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
			 "raw private operation on n itself");
		o.opcode = HSM_IO_ENCRYPT;
		o.handle = hpub;
		check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_FIELD,
			 "raw public operation on n itself");
		o.src_len = k + 1;
		check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
			 "raw operation on k + 1 bytes");
		o.src_len = 0;
		o.src = NULL;
		check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_LENGTH,
			 "raw operation on 0 bytes");
		o.src = m;
		o.src_len = k;
		o.dst_cap = k - 1;
		check_st(run_io(&o, NULL, &res), HSM_SC_BUFFER_TOO_SMALL,
			 "raw operation into k - 1 bytes");
		BN_free(n);

		if (bits == 512) {
			memset(&o, 0, sizeof(o));
			o.opcode = HSM_IO_SIGN;
			o.mech = HSM_MECH_RSA_PKCS1;
			o.mparam = HSM_MECH_SHA512;
			o.handle = hpriv;
			o.src = m;
			o.src_len = 100;
			o.dst_cap = k;
			check_st(run_io(&o, NULL, NULL), HSM_SC_INVALID_KEY_SIZE,
				 "PKCS#1 SHA-512 signature with a 512-bit key");
			o.mparam = HSM_MECH_SHA256;
			siglen = k;
			check(!run_io(&o, sig, &res) && res == k &&
			      ossl_sig(pk, HSM_MECH_RSA_PKCS1, HSM_MECH_SHA256, 0,
				       m, 100, sig, &siglen, false) == 1,
			      "PKCS#1 SHA-256 signature with a 512-bit key verifies in OpenSSL");
		}
		/* the public key verifies an OpenSSL signature */
		if (bits >= 1024) {
			ossl_sig(pk, HSM_MECH_RSA_PKCS1, HSM_MECH_SHA256, 0, m,
				 100, sig, &siglen, true);
			memset(&o, 0, sizeof(o));
			o.opcode = HSM_IO_VERIFY;
			o.mech = HSM_MECH_RSA_PKCS1;
			o.mparam = HSM_MECH_SHA256;
			o.handle = hpub;
			o.src = m;
			o.src_len = 100;
			o.dst_in = sig;
			o.dst_cap = siglen;
			check_st(run_io(&o, NULL, NULL), HSM_SC_SUCCESS,
				 "RSA-%u public key verifies an OpenSSL signature",
				 bits);
			o.opcode = HSM_IO_SIGN;
			o.dst_in = NULL;
			check_st(run_io(&o, NULL, NULL), HSM_SC_USE_DENIED,
				 "public key cannot sign");
		}
		pub = export_pub(hpub, NULL);
		check(pub && EVP_PKEY_eq(pub, pk) == 1,
		      "EXPORT_PUB of the public-only key matches");
		EVP_PKEY_free(pub);
		destroy(fw, hpriv);
		destroy(fw, hpub);
		destroy(fw, hpub0);
		EVP_PKEY_free(pk);
	}
	{
		uint8_t junk[64];
		uint64_t h;

		rnd(junk, sizeof(junk));
		check_st(import(HSM_KEY_RSA, 0, 0, 0, junk, sizeof(junk), &h),
			 HSM_SC_INVALID_FIELD, "RSA import of random bytes");
	}
}

/* ---- key tokens ---- */

static uint16_t token_create(struct hsm_fw *f, uint64_t h, uint32_t cap,
			     struct hsm_key_token *t, uint64_t *res)
{
	struct hsm_sqe s;
	uint64_t d = fh_alloc(&fh, cap ? cap : 1), r = 0;
	uint16_t st;

	sqe_init(&s, HSM_ADM_TOKEN_CREATE);
	s.handle = htole64(h);
	s.dst = htole64(cap ? d : 0);
	s.dst_len = htole32(cap);
	st = adm(f, &s, &r);
	if (res)
		*res = r;
	if (!st && t)
		memcpy(t, fh_ptr(&fh, d), sizeof(*t));
	return st;
}

static uint16_t token_open(struct hsm_fw *f, const void *t, uint32_t len,
			   uint64_t *res)
{
	struct hsm_sqe s;
	uint64_t r = 0;
	uint16_t st;

	sqe_init(&s, HSM_ADM_TOKEN_OPEN);
	s.src = htole64(fh_put(&fh, t, len));
	s.src_len = htole32(len);
	st = adm(f, &s, &r);
	if (res)
		*res = r;
	return st;
}

static void test_tokens(void)
{
	char dir[] = "/tmp/hsm-tok-XXXXXX", path[64], path2[64];
	struct hsm_fw *saved = fw, *f, *f2, *f3;
	struct hsm_key_token t, t2, tb, thm;
	uint64_t hp, hp2, hs, hv, hh, res, h;
	unsigned int i, bad = 0, wrong = 0;
	uint8_t id[16], key[16] = "token test key!";
	char *err;
	uint16_t st;

	if (!mkdtemp(dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	snprintf(path2, sizeof(path2), "%s/other", dir);
	f = ks_card(path, &err);
	if (!check(f != NULL, "card with a key store for tokens"))
		return;
	fw = f;
	card_id(f, id);
	gen(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT, 0, &hp);
	gen(HSM_KEY_AES, 128, 0, HSM_KEYF_PERSISTENT, 1, &hp2);
	gen(HSM_KEY_AES, 256, 0, 0, 0, &hv);
	gen(HSM_KEY_HMAC, 256, 0, HSM_KEYF_PERSISTENT, 0, &hh);
	import(HSM_KEY_AES, 0, 0, 0, key, 16, &hs);

	st = token_create(f, hp, 100, &t, &res);
	check(st == HSM_SC_SUCCESS && res == HSM_TOKEN_SIZE,
	      "TOKEN_CREATE of a persistent AES-256 key: %s, result %llu",
	      hsm_fw_status_str(st), (unsigned long long)res);
	check(le32toh(t.magic) == 0x4b544d48 && !memcmp(&t.magic, "HMTK", 4) &&
	      le16toh(t.version) == 1 && le16toh(t.type) == HSM_KEY_AES &&
	      le16toh(t.bits) == 256 && !t.rsvd0 && !t.rsvd1 && !t.rsvd2 &&
	      le64toh(t.handle) == hp && !memcmp(t.card_id, id, 16),
	      "token fields: magic, version, type, bits, card id, handle");
	st = token_open(f, &t, sizeof(t), &res);
	check(st == HSM_SC_SUCCESS && res == hp,
	      "TOKEN_OPEN gives the key's handle back");
	check_st(token_create(f, hp2, HSM_TOKEN_SIZE, &t2, &res),
		 HSM_SC_SUCCESS, "token of an AES-128 key in partition 1");
	check(!token_open(f, &t2, sizeof(t2), &res) && res == hp2,
	      "its TOKEN_OPEN names that key");
	check(memcmp(t.mac, t2.mac, 32) != 0, "tokens differ in their MAC");

	/* every single-bit change is caught */
	for (i = 0; i < HSM_TOKEN_SIZE * 8; i++) {
		tb = t;
		((uint8_t *)&tb)[i / 8] ^= 1u << (i % 8);
		st = token_open(f, &tb, sizeof(tb), &res);
		if (st == HSM_SC_SUCCESS || res)
			bad++;
		/* header bits: INVALID_FIELD; the rest: INVALID_TOKEN */
		if (i / 8 < 6 || (i / 8 >= 10 && i / 8 < 16) ||
		    (i / 8 >= 40 && i / 8 < 48))
			wrong += st != HSM_SC_INVALID_FIELD;
		else
			wrong += st != HSM_SC_INVALID_TOKEN;
	}
	check(!bad && !wrong,
	      "each of the %u single-bit flips of a token is refused with the right status (%u accepted, %u wrong status)",
	      HSM_TOKEN_SIZE * 8, bad, wrong);
	tb = t;
	tb.handle = htole64(hp2);
	check_st(token_open(f, &tb, sizeof(tb), NULL), HSM_SC_INVALID_TOKEN,
		 "token with another key's handle");
	tb = t;
	tb.bits = htole16(128);
	check_st(token_open(f, &tb, sizeof(tb), NULL), HSM_SC_INVALID_TOKEN,
		 "token with altered bits");
	check_st(token_open(f, &t, sizeof(t) - 1, NULL), HSM_SC_INVALID_LENGTH,
		 "TOKEN_OPEN of 79 bytes");
	check_st(token_create(f, hp, HSM_TOKEN_SIZE - 1, NULL, &res),
		 HSM_SC_BUFFER_TOO_SMALL, "TOKEN_CREATE into 79 bytes");
	check(res == HSM_TOKEN_SIZE, "BUFFER_TOO_SMALL reports 80 bytes");
	check_st(token_create(f, hs, HSM_TOKEN_SIZE, NULL, NULL),
		 HSM_SC_INVALID_FIELD, "TOKEN_CREATE of a session key");
	check_st(token_create(f, hv, HSM_TOKEN_SIZE, NULL, NULL),
		 HSM_SC_INVALID_FIELD, "TOKEN_CREATE of a volatile key");
	check_st(token_create(f, hh, HSM_TOKEN_SIZE, &thm, NULL),
		 HSM_SC_KEY_TYPE, "TOKEN_CREATE of a persistent HMAC key");
	check_st(token_create(f, hp ^ (1ull << 40), HSM_TOKEN_SIZE, NULL,
			      NULL), HSM_SC_INVALID_HANDLE,
		 "TOKEN_CREATE of a stale handle");
	{
		struct hsm_sqe s;

		sqe_init(&s, HSM_ADM_TOKEN_CREATE);
		s.handle = htole64(hp);
		s.dst = htole64(fh_alloc(&fh, 128));
		s.dst_len = htole32(128);
		s.aux = htole32(1);
		check_st(adm(f, &s, NULL), HSM_SC_INVALID_FIELD,
			 "TOKEN_CREATE with aux set");
		sqe_init(&s, HSM_ADM_TOKEN_OPEN);
		s.src = htole64(fh_put(&fh, &t, sizeof(t)));
		s.src_len = htole32(sizeof(t));
		s.handle = htole64(hp);
		check_st(adm(f, &s, NULL), HSM_SC_INVALID_FIELD,
			 "TOKEN_OPEN with a handle set");
	}

	/* another card, with and without a store */
	f2 = ks_card(path2, &err);
	f3 = hsm_fw_new(&cfg, NULL);
	if (f2 && f3) {
		check_st(token_open(f2, &t, sizeof(t), NULL),
			 HSM_SC_INVALID_TOKEN, "token on another card (store)");
		check_st(token_open(f3, &t, sizeof(t), NULL),
			 HSM_SC_INVALID_TOKEN, "token on another card (no store)");
		fw = f3;
		check_st(gen(HSM_KEY_AES, 128, 0, 0, 0, &h), HSM_SC_SUCCESS,
			 "a key on the card without a store");
		check_st(token_create(f3, h, HSM_TOKEN_SIZE, NULL, NULL),
			 HSM_SC_INVALID_FIELD,
			 "no tokens for volatile keys without a store");
		fw = f;
	}
	hsm_fw_free(f2);
	hsm_fw_free(f3);

	/* the same store after a restart: tokens still open */
	hsm_fw_free(f);
	f = ks_card(path, &err);
	fw = f;
	if (!check(f != NULL, "card reopened on the same store"))
		goto out;
	st = token_open(f, &t, sizeof(t), &res);
	check(st == HSM_SC_SUCCESS && res == hp,
	      "token survives a restart: %s", hsm_fw_status_str(st));
	check(!token_open(f, &t2, sizeof(t2), &res) && res == hp2,
	      "second token survives a restart");
	check_st(token_create(f, hp, HSM_TOKEN_SIZE, &tb, NULL),
		 HSM_SC_SUCCESS, "TOKEN_CREATE again after the restart");
	check(!memcmp(&tb, &t, sizeof(t)),
	      "same key, same card: the same token");

	/* a destroyed key, and a new key in its slot */
	check_st(destroy(f, hp), HSM_SC_SUCCESS, "destroy the key");
	check_st(token_open(f, &t, sizeof(t), NULL), HSM_SC_INVALID_TOKEN,
		 "token of a destroyed key");
	for (i = 0; i < 4; i++) {
		gen(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT, 0, &h);
		if (HSM_HANDLE_SLOT(h) == HSM_HANDLE_SLOT(hp))
			break;
	}
	st = token_open(f, &t, sizeof(t), &res);
	check(st == HSM_SC_INVALID_TOKEN && !res,
	      "old token does not open a new key (slot %sreused): %s",
	      HSM_HANDLE_SLOT(h) == HSM_HANDLE_SLOT(hp) ? "" : "not ",
	      hsm_fw_status_str(st));

	hsm_fw_tamper(f);
	check_st(token_open(f, &t2, sizeof(t2), NULL), HSM_SC_TAMPERED,
		 "TOKEN_OPEN after tamper");
	check_st(token_create(f, hp2, HSM_TOKEN_SIZE, NULL, NULL),
		 HSM_SC_TAMPERED, "TOKEN_CREATE after tamper");
out:
	fw = saved;
	hsm_fw_free(f);
	unlink(path);
	unlink(path2);
	snprintf(path2, sizeof(path2), "%s/other.mk", dir);
	unlink(path2);
	snprintf(path2, sizeof(path2), "%s/other.gen", dir);
	unlink(path2);
	snprintf(path2, sizeof(path2), "%s/keys.mk", dir);
	unlink(path2);
	snprintf(path2, sizeof(path2), "%s/keys.gen", dir);
	unlink(path2);
	snprintf(path2, sizeof(path2), "%s/keys.audit", dir);
	unlink(path2);
	snprintf(path2, sizeof(path2), "%s/other.audit", dir);
	unlink(path2);
	rmdir(dir);
}

/* ---- concurrency: I/O on several threads while keys are destroyed ---- */

#define NSLOTS		4
#define NTHREADS	4

static uint64_t conc_handles[NSLOTS];	/* atomic */
static uint64_t conc_src[NTHREADS], conc_dst[NTHREADS];
static uint8_t conc_key[16], conc_pt[64], conc_ct[64 + 16];
static int conc_stop;
static unsigned long conc_ok, conc_gone, conc_bad;

static void *conc_worker(void *arg)
{
	unsigned long ok = 0, gone = 0, bad = 0;
	uint64_t src, dst, res;
	struct hsm_sqe s;
	unsigned int i = (uintptr_t)arg;
	uint16_t st;

	src = conc_src[i];
	dst = conc_dst[i];
	while (!__atomic_load_n(&conc_stop, __ATOMIC_RELAXED)) {
		i++;
		sqe_init(&s, HSM_IO_ENCRYPT);
		s.mech = htole16(HSM_MECH_AES_GCM);
		s.handle = htole64(__atomic_load_n(&conc_handles[i % NSLOTS],
						   __ATOMIC_RELAXED));
		s.src = htole64(src);
		s.src_len = htole32(64);
		s.dst = htole64(dst);
		s.dst_len = htole32(80);
		st = hsm_fw_io(fw, &fh.host, &s, &res);
		if (st == HSM_SC_SUCCESS &&
		    !memcmp(fh_ptr(&fh, dst), conc_ct, 80))
			ok++;
		else if (st == HSM_SC_INVALID_HANDLE)
			gone++;
		else
			bad++;
	}
	__atomic_add_fetch(&conc_ok, ok, __ATOMIC_RELAXED);
	__atomic_add_fetch(&conc_gone, gone, __ATOMIC_RELAXED);
	__atomic_add_fetch(&conc_bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

static void test_concurrency(void)
{
	static const uint8_t zero_iv[12];
	pthread_t th[NTHREADS];
	struct timespec t0, t1;
	unsigned long cycles = 0, admin_bad = 0;
	uint64_t h;
	size_t mark;
	uint32_t before = nr_keys(fw);
	int i;

	rnd(conc_key, 16);
	rnd(conc_pt, 64);
	ossl_gcm(conc_key, 16, zero_iv, NULL, 0, conc_pt, 64, conc_ct,
		 conc_ct + 64, 16);
	for (i = 0; i < NSLOTS; i++)
		import(HSM_KEY_AES, 0, 0, 0, conc_key, 16, &conc_handles[i]);
	for (i = 0; i < NTHREADS; i++) {
		conc_src[i] = fh_put(&fh, conc_pt, 64);
		conc_dst[i] = fh_alloc(&fh, 80);
	}
	mark = fh.brk;
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, conc_worker, (void *)(uintptr_t)i);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		i = cycles % NSLOTS;
		h = __atomic_load_n(&conc_handles[i], __ATOMIC_RELAXED);
		if (destroy(fw, h))
			admin_bad++;
		if (import(HSM_KEY_AES, 0, 0, 0, conc_key, 16, &h))
			admin_bad++;
		__atomic_store_n(&conc_handles[i], h, __ATOMIC_RELAXED);
		cycles++;
		if (!(cycles % 64))
			fh.brk = mark;	/* keep the workers' buffers */
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (t1.tv_sec - t0.tv_sec < 2);
	__atomic_store_n(&conc_stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	check(conc_bad == 0 && admin_bad == 0,
	      "%d threads x 2 s of GCM while keys are destroyed: %lu ok, %lu stale handle, %lu wrong",
	      NTHREADS, conc_ok, conc_gone, conc_bad);
	check(conc_ok > 1000 && cycles > 100,
	      "both sides made progress (%lu destroy/import cycles)", cycles);
	check(nr_keys(fw) == before + NSLOTS,
	      "key count consistent afterwards");
	for (i = 0; i < NSLOTS; i++)
		destroy(fw, conc_handles[i]);
	check(nr_keys(fw) == before, "all keys gone (%u left from before)",
	      before);
}

int main(void)
{
	char *err = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fh_init(&fh))
		return 2;
	fw = hsm_fw_new(&cfg, &err);
	if (!fw) {
		fprintf(stderr, "hsm_fw_new: %s\n", err);
		return 2;
	}
	printf("TAP version 13\n");
	test_identify();
	test_queues();
	test_random();
	test_keygen();
	test_handles();
	test_keystore_full();
	fh_reset(&fh);
	test_list();
	test_aes();
	fh_reset(&fh);
	test_gcm();
	test_cipher_errors();
	fh_reset(&fh);
	test_digest();
	test_hmac();
	fh_reset(&fh);
	test_hash_mp();
	fh_reset(&fh);
	test_hash_concurrency();
	fh_reset(&fh);
	test_sign();
	fh_reset(&fh);
	test_rsa_crypt();
	test_wrap();
	fh_reset(&fh);
	test_authenc();
	fh_reset(&fh);
	test_rsa_pkcs1();
	fh_reset(&fh);
	test_tamper();
	fh_reset(&fh);
	test_persist();
	fh_reset(&fh);
	test_kek_ceremony();
	fh_reset(&fh);
	test_tokens();
	fh_reset(&fh);
	test_fuzz();
	fh_reset(&fh);
	test_audit(&cfg);
	fh_reset(&fh);
	test_auth(&cfg);
	fh_reset(&fh);
	test_life(&cfg);
	test_id(&cfg);
	fh_reset(&fh);
	test_bkattr(&cfg);
	fh_reset(&fh);
	test_store(&cfg);
	fh_reset(&fh);
	test_concurrency();
	hsm_fw_free(fw);
	fh_fini(&fh);
	printf("1..%d\n", n_pass + n_fail);
	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
