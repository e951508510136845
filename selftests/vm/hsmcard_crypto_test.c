// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard crypto API tests (run in the test guest).
 *
 * The driver registers ecb/cbc/ctr/xts(aes), gcm(aes) and
 * rfc4106(gcm(aes)) with the kernel crypto API.  These tests reach each
 * algorithm through AF_ALG, pinned by the driver's name, and compare every
 * result with OpenSSL's libcrypto in the guest: single blocks, multi-page
 * requests, receive buffers that start at odd addresses and cross pages,
 * IV chaining across requests (the output IV the crypto API expects),
 * tag lengths, and authentication failures (-EBADMSG).  They also check
 * that the kernel's own self-tests passed for every hsmcard driver and,
 * from the driver's debugfs counters, that the card did the work.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <linux/if_alg.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

#ifndef SOL_ALG
#define SOL_ALG 279
#endif

#define STATS_GLOB	"/sys/kernel/debug/hsmcard/*/crypto"
#define MAX_LEN		(64 * 1024 + 64)

static const char * const drivers[] = {
	"ecb-aes-hsmcard", "cbc-aes-hsmcard", "ctr-aes-hsmcard",
	"xts-aes-hsmcard", "gcm-aes-hsmcard", "rfc4106-gcm-aes-hsmcard",
};

/* ---- /proc/crypto ---- */

/*
 * Find @driver in /proc/crypto and copy its "selftest" value.
 * Return: 1 found, 0 not found, -errno.
 */
static int proc_crypto_selftest(const char *driver, char *val, size_t len)
{
	char line[256], cur[128] = "";
	int found = 0;
	FILE *f;

	f = fopen("/proc/crypto", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char key[64], v[64];

		if (sscanf(line, "%63s : %63s", key, v) != 2)
			continue;
		if (!strcmp(key, "driver"))
			snprintf(cur, sizeof(cur), "%s", v);
		else if (!strcmp(key, "selftest") && !strcmp(cur, driver)) {
			snprintf(val, len, "%s", v);
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

/* ---- debugfs counters ---- */

struct alg_stats {
	unsigned long long requests, bytes, errors, backlogged;
};

/* Sum the counters of @driver over every card. */
static int read_stats(const char *driver, struct alg_stats *st)
{
	glob_t g;
	size_t i;
	int found = 0;

	memset(st, 0, sizeof(*st));
	if (glob(STATS_GLOB, 0, NULL, &g))
		return -ENOENT;
	for (i = 0; i < g.gl_pathc; i++) {
		char line[256], name[64];
		struct alg_stats s;
		FILE *f = fopen(g.gl_pathv[i], "r");

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line,
				   "%63s requests %llu bytes %llu errors %llu backlogged %llu",
				   name, &s.requests, &s.bytes, &s.errors,
				   &s.backlogged) != 5 || strcmp(name, driver))
				continue;
			st->requests += s.requests;
			st->bytes += s.bytes;
			st->errors += s.errors;
			st->backlogged += s.backlogged;
			found = 1;
		}
		fclose(f);
	}
	globfree(&g);
	return found ? 0 : -ENOENT;
}

/* ---- AF_ALG ---- */

struct alg_op {
	const unsigned char *iv;	/* NULL: keep the socket's IV */
	unsigned int ivlen;
	unsigned int assoclen;		/* AEAD */
	bool encrypt;
	bool more;			/* MSG_MORE on the send */
};

static int alg_tfm(const char *type, const char *driver,
		   const unsigned char *key, unsigned int keylen,
		   unsigned int authsize)
{
	struct sockaddr_alg sa = { .salg_family = AF_ALG };
	int fd;

	snprintf((char *)sa.salg_type, sizeof(sa.salg_type), "%s", type);
	snprintf((char *)sa.salg_name, sizeof(sa.salg_name), "%s", driver);
	fd = socket(AF_ALG, SOCK_SEQPACKET, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(fd, SOL_ALG, ALG_SET_KEY, key, keylen) ||
	    (authsize && setsockopt(fd, SOL_ALG, ALG_SET_AEAD_AUTHSIZE, NULL,
				    authsize))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Send one request's input on an operation socket. */
static int alg_send(int op, const struct alg_op *o, const void *in,
		    size_t inlen)
{
	char cbuf[CMSG_SPACE(4) + CMSG_SPACE(sizeof(struct af_alg_iv) + 16) +
		  CMSG_SPACE(4)] = {};
	struct iovec iov = { .iov_base = (void *)in, .iov_len = inlen };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	size_t clen;
	struct cmsghdr *c;
	ssize_t n;

	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_OP;
	c->cmsg_len = CMSG_LEN(4);
	*(__u32 *)CMSG_DATA(c) = o->encrypt ? ALG_OP_ENCRYPT : ALG_OP_DECRYPT;
	clen = CMSG_SPACE(4);
	if (o->iv) {
		struct af_alg_iv *aiv;

		c = CMSG_NXTHDR(&msg, c);
		c->cmsg_level = SOL_ALG;
		c->cmsg_type = ALG_SET_IV;
		c->cmsg_len = CMSG_LEN(sizeof(*aiv) + o->ivlen);
		aiv = (struct af_alg_iv *)CMSG_DATA(c);
		aiv->ivlen = o->ivlen;
		memcpy(aiv->iv, o->iv, o->ivlen);
		clen += CMSG_SPACE(sizeof(*aiv) + o->ivlen);
	}
	if (o->assoclen) {
		c = CMSG_NXTHDR(&msg, c);
		c->cmsg_level = SOL_ALG;
		c->cmsg_type = ALG_SET_AEAD_ASSOCLEN;
		c->cmsg_len = CMSG_LEN(4);
		*(__u32 *)CMSG_DATA(c) = o->assoclen;
		clen += CMSG_SPACE(4);
	}
	msg.msg_controllen = clen;
	n = sendmsg(op, &msg, o->more ? MSG_MORE : 0);
	if (n < 0)
		return -errno;
	return n == (ssize_t)inlen ? 0 : -EIO;
}

/* Read exactly @outlen bytes (or fail with -errno). */
static int alg_recv(int op, void *out, size_t outlen)
{
	size_t done = 0;
	ssize_t n;

	do {
		n = read(op, (char *)out + done, outlen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += n;
	} while (done < outlen);
	return done == outlen ? 0 : -EIO;
}

/* One complete operation on a new operation socket. */
static int alg_run(int tfm, const struct alg_op *o, const void *in,
		   size_t inlen, void *out, size_t outlen)
{
	int op, ret;

	op = accept(tfm, NULL, NULL);
	if (op < 0)
		return -errno;
	ret = alg_send(op, o, in, inlen);
	if (!ret)
		ret = alg_recv(op, out, outlen);
	close(op);
	return ret;
}

/* ---- OpenSSL oracle ---- */

static const EVP_CIPHER *ossl_cipher(const char *mode, unsigned int keylen)
{
	char name[32];

	if (!strcmp(mode, "xts"))
		snprintf(name, sizeof(name), "aes-%u-xts", keylen * 4);
	else
		snprintf(name, sizeof(name), "aes-%u-%s", keylen * 8, mode);
	return EVP_get_cipherbyname(name);
}

static int ossl_skcipher(const char *mode, bool enc, const unsigned char *key,
			 unsigned int keylen, const unsigned char *iv,
			 const unsigned char *in, size_t len,
			 unsigned char *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, ok;

	ok = ctx && EVP_CipherInit_ex(ctx, ossl_cipher(mode, keylen), NULL,
				      key, iv, enc) &&
	     EVP_CIPHER_CTX_set_padding(ctx, 0) &&
	     EVP_CipherUpdate(ctx, out, &n, in, len) &&
	     EVP_CipherFinal_ex(ctx, out + n, &f);
	EVP_CIPHER_CTX_free(ctx);
	return ok && (size_t)(n + f) == len ? 0 : -1;
}

/* AES-GCM encryption: ct || tag into @out. */
static int ossl_gcm_encrypt(const unsigned char *key, unsigned int keylen,
			    const unsigned char *nonce,
			    const unsigned char *aad, size_t aadlen,
			    const unsigned char *pt, size_t ptlen,
			    unsigned int taglen, unsigned char *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, ok;

	ok = ctx && EVP_EncryptInit_ex(ctx, ossl_cipher("gcm", keylen), NULL,
				       key, nonce) &&
	     (!aadlen || EVP_EncryptUpdate(ctx, NULL, &n, aad, aadlen)) &&
	     (!ptlen || EVP_EncryptUpdate(ctx, out, &n, pt, ptlen)) &&
	     EVP_EncryptFinal_ex(ctx, out + ptlen, &f) &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, taglen,
				 out + ptlen);
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

static void rnd(void *p, size_t len)
{
	RAND_bytes(p, len);
}

/* A buffer that starts @off bytes into a page and crosses pages. */
struct xbuf {
	unsigned char *map;
	size_t maplen;
	unsigned char *p;
};

static unsigned char *xbuf_get(struct xbuf *b, size_t len, size_t off)
{
	long pg = sysconf(_SC_PAGESIZE);

	b->maplen = (len + off + 2 * pg) & ~(pg - 1);
	b->map = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->map == MAP_FAILED)
		return NULL;
	b->p = b->map + off;
	return b->p;
}

static void xbuf_put(struct xbuf *b)
{
	munmap(b->map, b->maplen);
}

/* ---- fixture: the algorithms are there and tested ---- */

FIXTURE(crypto) {
	int dummy;
};

FIXTURE_SETUP(crypto)
{
	char val[64];
	unsigned int i;
	int ret;

	/*
	 * The kernel's module autoloading may not reach the test root:
	 * load the AF_ALG front ends here.
	 */
	if (system("modprobe -q -a af_alg algif_skcipher algif_aead"))
		TH_LOG("modprobe of the AF_ALG modules failed");

	/* 6.12 runs self-tests after registration: give them time. */
	for (i = 0; i < ARRAY_SIZE(drivers); i++) {
		time_t end = time(NULL) + 120;

		for (;;) {
			ret = proc_crypto_selftest(drivers[i], val,
						   sizeof(val));
			ASSERT_LE(0, ret);
			if (ret && strcmp(val, "unknown"))
				break;
			if (time(NULL) > end)
				break;
			usleep(200000);
		}
		ASSERT_EQ(1, ret) TH_LOG("%s not in /proc/crypto", drivers[i]);
	}
}

FIXTURE_TEARDOWN(crypto)
{
}

TEST_F(crypto, selftests_passed)
{
	char val[64];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(drivers); i++) {
		ASSERT_EQ(1, proc_crypto_selftest(drivers[i], val,
						  sizeof(val)));
		EXPECT_STREQ("passed", val) TH_LOG("%s", drivers[i]);
	}
}

/* ---- skcipher ---- */

struct sk_case {
	const char *driver;
	const char *mode;
	unsigned int keylens[3];
	unsigned int ivlen;
	unsigned int block;	/* lengths must be multiples of this */
	unsigned int min;	/* and at least this */
};

static const struct sk_case sk_cases[] = {
	{ "ecb-aes-hsmcard", "ecb", { 16, 24, 32 }, 0, 16, 16 },
	{ "cbc-aes-hsmcard", "cbc", { 16, 24, 32 }, 16, 16, 16 },
	{ "ctr-aes-hsmcard", "ctr", { 16, 24, 32 }, 16, 1, 1 },
	{ "xts-aes-hsmcard", "xts", { 32, 64, 0 }, 16, 1, 16 },
};

static const size_t sk_lens[] = {
	1, 15, 16, 17, 31, 48, 512, 4095, 4096, 4097, 12345, 65536,
};

static void check_skcipher(struct __test_metadata *_metadata,
			   const struct sk_case *c, unsigned int keylen,
			   size_t len, size_t off)
{
	unsigned char key[64], iv[16], *pt, *ct, *exp, *back;
	struct alg_op o = { .iv = iv, .ivlen = c->ivlen, .encrypt = true };
	struct xbuf bpt, bct, bback;
	int tfm;

	pt = xbuf_get(&bpt, len, 0);
	ct = xbuf_get(&bct, len, off);
	back = xbuf_get(&bback, len, (off * 3) % 4096);
	exp = malloc(len);
	ASSERT_TRUE(pt && ct && back && exp);
	rnd(key, keylen);
	rnd(iv, sizeof(iv));
	rnd(pt, len);
	if (!strcmp(c->mode, "xts") && !memcmp(key, key + keylen / 2,
					       keylen / 2))
		key[0] ^= 1;

	ASSERT_EQ(0, ossl_skcipher(c->mode, true, key, keylen, iv, pt, len,
				   exp));
	tfm = alg_tfm("skcipher", c->driver, key, keylen, 0);
	ASSERT_LE(0, tfm) TH_LOG("%s: %s", c->driver, strerror(-tfm));
	ASSERT_EQ(0, alg_run(tfm, &o, pt, len, ct, len));
	EXPECT_EQ(0, memcmp(ct, exp, len))
		TH_LOG("%s key %u len %zu off %zu: encryption differs",
		       c->driver, keylen, len, off);
	o.encrypt = false;
	ASSERT_EQ(0, alg_run(tfm, &o, ct, len, back, len));
	EXPECT_EQ(0, memcmp(back, pt, len))
		TH_LOG("%s key %u len %zu off %zu: decryption differs",
		       c->driver, keylen, len, off);
	close(tfm);
	free(exp);
	xbuf_put(&bpt);
	xbuf_put(&bct);
	xbuf_put(&bback);
}

TEST_F(crypto, skcipher_vs_openssl)
{
	struct alg_stats before[4], after;
	unsigned int i, k, l, n[4] = {};
	unsigned long long bytes[4] = {};

	for (i = 0; i < ARRAY_SIZE(sk_cases); i++)
		ASSERT_EQ(0, read_stats(sk_cases[i].driver, &before[i]));
	for (i = 0; i < ARRAY_SIZE(sk_cases); i++) {
		const struct sk_case *c = &sk_cases[i];

		for (k = 0; k < 3 && c->keylens[k]; k++) {
			for (l = 0; l < ARRAY_SIZE(sk_lens); l++) {
				size_t len = sk_lens[l];

				if (len % c->block || len < c->min)
					continue;
				check_skcipher(_metadata, c, c->keylens[k],
					       len, (l * 7 + k) % 4096);
				n[i] += 2;
				bytes[i] += 2 * len;
			}
		}
	}
	/* The card did the work: two requests per case, all bytes. */
	for (i = 0; i < ARRAY_SIZE(sk_cases); i++) {
		ASSERT_EQ(0, read_stats(sk_cases[i].driver, &after));
		EXPECT_LE(before[i].requests + n[i], after.requests)
			TH_LOG("%s", sk_cases[i].driver);
		EXPECT_LE(before[i].bytes + bytes[i], after.bytes)
			TH_LOG("%s", sk_cases[i].driver);
		EXPECT_EQ(before[i].errors, after.errors)
			TH_LOG("%s", sk_cases[i].driver);
	}
}

/*
 * An operation socket keeps its IV between requests: the driver must
 * return the next IV (CBC: last ciphertext block, CTR: advanced counter),
 * so two requests equal one.
 */
TEST_F(crypto, iv_chaining)
{
	static const char * const modes[] = { "cbc", "ctr" };
	static const char * const drv[] = { "cbc-aes-hsmcard",
					    "ctr-aes-hsmcard" };
	unsigned char key[32], iv[16], pt[8192], ct[8192], exp[8192];
	unsigned int i;

	for (i = 0; i < 2; i++) {
		struct alg_op o = { .iv = iv, .ivlen = 16, .encrypt = true };
		int tfm, op;

		rnd(key, sizeof(key));
		rnd(iv, sizeof(iv));
		/* CTR: a counter about to carry into the upper 64 bits */
		if (i == 1)
			memset(iv + 8, 0xff, 8);
		rnd(pt, sizeof(pt));
		ASSERT_EQ(0, ossl_skcipher(modes[i], true, key, 32, iv, pt,
					   sizeof(pt), exp));
		tfm = alg_tfm("skcipher", drv[i], key, 32, 0);
		ASSERT_LE(0, tfm);
		op = accept(tfm, NULL, NULL);
		ASSERT_LE(0, op);
		ASSERT_EQ(0, alg_send(op, &o, pt, 4096));
		ASSERT_EQ(0, alg_recv(op, ct, 4096));
		o.iv = NULL;
		ASSERT_EQ(0, alg_send(op, &o, pt + 4096, 4096));
		ASSERT_EQ(0, alg_recv(op, ct + 4096, 4096));
		EXPECT_EQ(0, memcmp(ct, exp, sizeof(ct))) TH_LOG("%s", drv[i]);
		close(op);
		close(tfm);
	}
}

TEST_F(crypto, skcipher_bad_input)
{
	unsigned char key[64] = { 1 }, iv[16] = {}, buf[32] = {};
	struct alg_op o = { .iv = iv, .ivlen = 16, .encrypt = true };
	int tfm;

	/* bad key sizes */
	tfm = alg_tfm("skcipher", "cbc-aes-hsmcard", key, 17, 0);
	EXPECT_EQ(-EINVAL, tfm);
	tfm = alg_tfm("skcipher", "xts-aes-hsmcard", key, 33, 0);
	EXPECT_EQ(-EINVAL, tfm);
	/* CBC: not a multiple of the block size */
	tfm = alg_tfm("skcipher", "cbc-aes-hsmcard", key, 16, 0);
	ASSERT_LE(0, tfm);
	EXPECT_EQ(-EINVAL, alg_run(tfm, &o, buf, 20, buf, 20));
	close(tfm);
	/* XTS: shorter than a block */
	key[32] = 2;
	tfm = alg_tfm("skcipher", "xts-aes-hsmcard", key, 64, 0);
	ASSERT_LE(0, tfm);
	EXPECT_EQ(-EINVAL, alg_run(tfm, &o, buf, 15, buf, 15));
	close(tfm);
}

/*
 * XTS keys the card refuses (equal halves, XTS-AES-192) are served in
 * software by the driver: check them against IEEE P1619 vector 1 and, for
 * ciphertext stealing, against OpenSSL's decryption where it accepts the
 * key, else by a round trip.
 */
TEST_F(crypto, xts_soft_keys)
{
	static const unsigned char v1_ct[32] = {
		0x91, 0x7c, 0xf6, 0x9e, 0xbd, 0x68, 0xb2, 0xec,
		0x9b, 0x9f, 0xe9, 0xa3, 0xea, 0xdd, 0xa6, 0x92,
		0xcd, 0x43, 0xd2, 0xf5, 0x95, 0x98, 0xed, 0x85,
		0x8c, 0x02, 0xc2, 0x65, 0x2f, 0xbf, 0x92, 0x2e,
	};
	static const unsigned int keylens[] = { 32, 64, 48 };
	unsigned char key[64] = {}, iv[16] = {}, pt[100] = {}, ct[100];
	unsigned char back[100];
	struct alg_op o = { .iv = iv, .ivlen = 16, .encrypt = true };
	unsigned int k, len;
	int tfm;

	tfm = alg_tfm("skcipher", "xts-aes-hsmcard", key, 32, 0);
	ASSERT_LE(0, tfm);
	ASSERT_EQ(0, alg_run(tfm, &o, pt, 32, ct, 32));
	EXPECT_EQ(0, memcmp(ct, v1_ct, 32));
	close(tfm);

	for (k = 0; k < ARRAY_SIZE(keylens); k++) {
		unsigned int kl = keylens[k];

		rnd(key, kl / 2);
		if (kl != 48)
			memcpy(key + kl / 2, key, kl / 2);
		else
			rnd(key + 24, 24);
		tfm = alg_tfm("skcipher", "xts-aes-hsmcard", key, kl, 0);
		ASSERT_LE(0, tfm) TH_LOG("key %u", kl);
		for (len = 16; len <= sizeof(pt); len += 7) {
			rnd(iv, sizeof(iv));
			rnd(pt, len);
			o.encrypt = true;
			ASSERT_EQ(0, alg_run(tfm, &o, pt, len, ct, len));
			if (kl != 48 &&
			    !ossl_skcipher("xts", false, key, kl, iv, ct, len,
					   back))
				EXPECT_EQ(0, memcmp(back, pt, len))
					TH_LOG("key %u len %u vs OpenSSL", kl,
					       len);
			o.encrypt = false;
			ASSERT_EQ(0, alg_run(tfm, &o, ct, len, back, len));
			EXPECT_EQ(0, memcmp(back, pt, len))
				TH_LOG("key %u len %u round trip", kl, len);
		}
		close(tfm);
	}
}

/* ---- AEAD ---- */

struct gcm_case {
	size_t aadlen, ptlen;
	unsigned int taglen;
	unsigned int keylen;
};

static const struct gcm_case gcm_cases[] = {
	{ 0, 0, 16, 16 }, { 0, 16, 16, 16 }, { 20, 0, 16, 24 },
	{ 13, 61, 16, 32 }, { 16, 4096, 12, 16 }, { 8, 4097, 8, 32 },
	{ 32, 65536, 16, 32 }, { 1, 1, 4, 16 }, { 4096, 100, 16, 24 },
};

/*
 * Encrypt AAD || PT and decrypt it back through AF_ALG; @rfc4106 puts
 * the 8-byte IV after the AAD and in the associated data length.
 */
static void check_gcm(struct __test_metadata *_metadata, bool rfc4106,
		      const struct gcm_case *c, size_t off)
{
	const char *drv = rfc4106 ? "rfc4106-gcm-aes-hsmcard" :
				    "gcm-aes-hsmcard";
	size_t ivl = rfc4106 ? 8 : 12;
	size_t assoc = c->aadlen + (rfc4106 ? 8 : 0);
	size_t inlen = assoc + c->ptlen, outlen = inlen + c->taglen;
	unsigned char key[36], nonce[12], *in, *out, *exp, *back;
	struct alg_op o = { .ivlen = ivl, .assoclen = assoc, .encrypt = true };
	struct xbuf bin, bout, bback;
	int tfm, ret;

	in = xbuf_get(&bin, outlen, 0);
	out = xbuf_get(&bout, outlen, off);
	back = xbuf_get(&bback, outlen, (off + 5) % 4096);
	exp = malloc(outlen);
	ASSERT_TRUE(in && out && back && exp);
	rnd(key, sizeof(key));
	rnd(nonce, sizeof(nonce));
	rnd(in, inlen);
	if (rfc4106) {
		/* key = AES key || salt; nonce = salt || explicit IV */
		memcpy(nonce, key + c->keylen, 4);
		memcpy(in + c->aadlen, nonce + 4, 8);
	}
	o.iv = rfc4106 ? nonce + 4 : nonce;

	ASSERT_EQ(0, ossl_gcm_encrypt(key, c->keylen, nonce, in, c->aadlen,
				      in + assoc, c->ptlen, c->taglen, exp));
	tfm = alg_tfm("aead", drv, key, c->keylen + (rfc4106 ? 4 : 0),
		      c->taglen);
	ASSERT_LE(0, tfm) TH_LOG("%s: %s", drv, strerror(-tfm));
	ret = alg_run(tfm, &o, in, inlen, out, outlen);
	ASSERT_EQ(0, ret) TH_LOG("%s aad %zu pt %zu: %s", drv, c->aadlen,
				 c->ptlen, strerror(-ret));
	EXPECT_EQ(0, memcmp(out + assoc, exp, c->ptlen + c->taglen))
		TH_LOG("%s aad %zu pt %zu tag %u: encryption differs", drv,
		       c->aadlen, c->ptlen, c->taglen);

	/*
	 * decrypt: AAD || CT || tag -> AAD || PT.  With no AAD and no data
	 * there is nothing to read back, and AF_ALG runs a request only for
	 * a read of at least one byte: the kernel's self-tests cover that.
	 */
	if (!inlen)
		goto out;
	memcpy(out, in, assoc);
	o.encrypt = false;
	ret = alg_run(tfm, &o, out, outlen, back, inlen);
	ASSERT_EQ(0, ret) TH_LOG("%s aad %zu pt %zu: %s", drv, c->aadlen,
				 c->ptlen, strerror(-ret));
	EXPECT_EQ(0, memcmp(back + assoc, in + assoc, c->ptlen))
		TH_LOG("%s aad %zu pt %zu: decryption differs", drv,
		       c->aadlen, c->ptlen);

	/* a flipped bit in the tag, the data or the AAD: -EBADMSG */
	out[outlen - 1] ^= 0x80;
	EXPECT_EQ(-EBADMSG, alg_run(tfm, &o, out, outlen, back, inlen));
	out[outlen - 1] ^= 0x80;
	if (c->ptlen) {
		out[assoc] ^= 1;
		EXPECT_EQ(-EBADMSG, alg_run(tfm, &o, out, outlen, back,
					    inlen));
		out[assoc] ^= 1;
	}
	if (c->aadlen) {
		out[0] ^= 1;
		EXPECT_EQ(-EBADMSG, alg_run(tfm, &o, out, outlen, back,
					    inlen));
		out[0] ^= 1;
	}
out:
	close(tfm);
	free(exp);
	xbuf_put(&bin);
	xbuf_put(&bout);
	xbuf_put(&bback);
}

TEST_F(crypto, gcm_vs_openssl)
{
	struct alg_stats before, after;
	unsigned int i;

	ASSERT_EQ(0, read_stats("gcm-aes-hsmcard", &before));
	for (i = 0; i < ARRAY_SIZE(gcm_cases); i++)
		check_gcm(_metadata, false, &gcm_cases[i], (i * 13) % 4096);
	ASSERT_EQ(0, read_stats("gcm-aes-hsmcard", &after));
	/* at least an encryption and a decryption per case on the card */
	EXPECT_LE(before.requests + 2 * ARRAY_SIZE(gcm_cases),
		  after.requests);
	/* the forged messages were rejected by the card */
	EXPECT_LT(before.errors, after.errors);
}

TEST_F(crypto, rfc4106_vs_openssl)
{
	static const struct gcm_case rc[] = {
		{ 8, 0, 16, 16 }, { 8, 64, 16, 16 }, { 12, 1500, 16, 32 },
		{ 8, 4096, 8, 24 }, { 12, 9000, 12, 32 },
	};
	struct alg_stats before, after;
	unsigned int i;

	ASSERT_EQ(0, read_stats("rfc4106-gcm-aes-hsmcard", &before));
	for (i = 0; i < ARRAY_SIZE(rc); i++)
		check_gcm(_metadata, true, &rc[i], (i * 29 + 3) % 4096);
	ASSERT_EQ(0, read_stats("rfc4106-gcm-aes-hsmcard", &after));
	EXPECT_LE(before.requests + 2 * ARRAY_SIZE(rc), after.requests);
}

TEST_F(crypto, aead_bad_input)
{
	unsigned char key[20] = { 1 }, buf[64] = {}, iv[12] = {};
	struct alg_op o = { .iv = iv, .ivlen = 8, .assoclen = 12,
			    .encrypt = true };
	int tfm;

	EXPECT_EQ(-EINVAL, alg_tfm("aead", "gcm-aes-hsmcard", key, 17, 0));
	/* GCM allows 4, 8 and 12..16-byte tags only */
	EXPECT_EQ(-EINVAL, alg_tfm("aead", "gcm-aes-hsmcard", key, 16, 6));
	EXPECT_EQ(-EINVAL, alg_tfm("aead", "rfc4106-gcm-aes-hsmcard", key,
				   20, 4));
	/* rfc4106: associated data (with the IV) must be 16 or 20 bytes */
	tfm = alg_tfm("aead", "rfc4106-gcm-aes-hsmcard", key, 20, 16);
	ASSERT_LE(0, tfm);
	EXPECT_EQ(-EINVAL, alg_run(tfm, &o, buf, 32, buf, 48));
	close(tfm);
}

/* ---- full queues ---- */

#define BL_THREADS	48
#define BL_ITERS	6
#define BL_LEN		(32 * 1024)

struct bl_shared {
	unsigned char key[32], iv[16];
	unsigned char *pt, *exp;
	int errors, mismatches;
	pthread_mutex_t lock;
};

static void *bl_thread(void *arg)
{
	struct bl_shared *sh = arg;
	struct alg_op o = { .iv = sh->iv, .ivlen = 16, .encrypt = true };
	unsigned char *ct = malloc(BL_LEN);
	int i, tfm, err = 0, bad = 0;

	tfm = alg_tfm("skcipher", "cbc-aes-hsmcard", sh->key, 32, 0);
	if (tfm < 0 || !ct) {
		err++;
	} else {
		for (i = 0; i < BL_ITERS; i++) {
			if (alg_run(tfm, &o, sh->pt, BL_LEN, ct, BL_LEN))
				err++;
			else if (memcmp(ct, sh->exp, BL_LEN))
				bad++;
		}
		close(tfm);
	}
	free(ct);
	pthread_mutex_lock(&sh->lock);
	sh->errors += err;
	sh->mismatches += bad;
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

static int hsmcard_load(const char *ko, const char *params)
{
	int fd, ret;

	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static int hsmcard_unload(void)
{
	int i;

	/* The kernel's own users of a freshly registered algorithm linger. */
	for (i = 0; i < 50; i++) {
		if (!syscall(SYS_delete_module, "hsmcard", O_NONBLOCK))
			return 0;
		if (errno != EAGAIN && errno != EBUSY)
			return -errno;
		usleep(100000);
	}
	return -EBUSY;
}

/*
 * With 2-entry I/O queues (one command each), many concurrent requests
 * must be backlogged and still all complete correctly.  AF_ALG requests
 * may be backlogged, so none may fail with -ENOSPC.
 */
TEST_F_TIMEOUT(crypto, backlog_small_queue, 600)
{
	const char *ko = getenv("HSMCARD_KO");
	pthread_t th[BL_THREADS];
	struct alg_stats st;
	struct bl_shared sh = { .lock = PTHREAD_MUTEX_INITIALIZER };
	char val[64];
	unsigned int i;
	int ret;

	if (!ko || access(ko, R_OK))
		SKIP(return, "HSMCARD_KO does not name the module file");
	sh.pt = malloc(BL_LEN);
	sh.exp = malloc(BL_LEN);
	ASSERT_TRUE(sh.pt && sh.exp);
	rnd(sh.key, sizeof(sh.key));
	rnd(sh.iv, sizeof(sh.iv));
	rnd(sh.pt, BL_LEN);
	ASSERT_EQ(0, ossl_skcipher("cbc", true, sh.key, 32, sh.iv, sh.pt,
				   BL_LEN, sh.exp));

	ASSERT_EQ(0, hsmcard_unload());
	ret = hsmcard_load(ko, "io_queue_depth=2");
	ASSERT_EQ(0, ret) TH_LOG("insmod: %s", strerror(-ret));
	/* Registration waits for the self-tests: they are done. */
	for (i = 0; i < ARRAY_SIZE(drivers); i++) {
		EXPECT_EQ(1, proc_crypto_selftest(drivers[i], val,
						  sizeof(val)));
		EXPECT_STREQ("passed", val) TH_LOG("%s", drivers[i]);
	}

	for (i = 0; i < BL_THREADS; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, bl_thread, &sh));
	for (i = 0; i < BL_THREADS; i++)
		pthread_join(th[i], NULL);
	EXPECT_EQ(0, sh.errors);
	EXPECT_EQ(0, sh.mismatches);
	EXPECT_EQ(0, read_stats("cbc-aes-hsmcard", &st));
	EXPECT_LE((unsigned long long)BL_THREADS * BL_ITERS, st.requests);
	EXPECT_EQ(0ULL, st.errors);
	TH_LOG("%llu requests, %llu backlogged", st.requests, st.backlogged);
	EXPECT_LT(0ULL, st.backlogged);

	/* Leave the module as the harness loaded it. */
	ASSERT_EQ(0, hsmcard_unload());
	ASSERT_EQ(0, hsmcard_load(ko, ""));
	free(sh.pt);
	free(sh.exp);
}

TEST_HARNESS_MAIN
