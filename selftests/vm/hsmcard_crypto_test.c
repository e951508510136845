// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard crypto API tests (run in the test guest).
 *
 * The driver registers ecb/cbc/ctr/xts(aes), gcm(aes), rfc4106(gcm(aes)),
 * authenc(hmac(sha256),cbc(aes)), sha256/384/512, hmac(sha256/512), rsa
 * and the token-keyed xts(paes)/cbc(paes) with the kernel crypto API.
 * These tests reach each algorithm through AF_ALG (rsa through the
 * kernel's key retention service), pinned by the driver's name, and
 * compare every result with OpenSSL's libcrypto in the guest: single
 * blocks, multi-page requests, receive buffers that start at odd addresses
 * and cross pages, IV chaining across requests (the output IV the crypto
 * API expects), tag lengths, authentication failures (-EBADMSG), partial
 * hashes and their export/import, and forged key tokens.  They also check
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
#include <linux/keyctl.h>
#include <linux/rtnetlink.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/ioctl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hsmcard.h"
#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define MAX_LEN		(64 * 1024 + 64)

static const char * const drivers[] = {
	"ecb-aes-hsmcard", "cbc-aes-hsmcard", "ctr-aes-hsmcard",
	"xts-aes-hsmcard", "gcm-aes-hsmcard", "rfc4106-gcm-aes-hsmcard",
	"authenc-hmac-sha256-cbc-aes-hsmcard", "xts-paes-hsmcard",
	"cbc-paes-hsmcard", "sha256-hsmcard", "sha384-hsmcard",
	"sha512-hsmcard", "hmac-sha256-hsmcard", "hmac-sha512-hsmcard",
	"rsa-hsmcard",
};

/* ---- AF_ALG ---- */

struct alg_op {
	const unsigned char *iv;	/* NULL: keep the socket's IV */
	unsigned int ivlen;
	unsigned int assoclen;		/* AEAD */
	bool encrypt;
	bool more;			/* MSG_MORE on the send */
};

/* Send one request's input on an operation socket. */
static int alg_send(int op, const struct alg_op *o, const void *in,
		    size_t inlen)
{
	char cbuf[ALG_CMSG_SPACE] = {};
	struct iovec iov = { .iov_base = (void *)in, .iov_len = inlen };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
	};
	ssize_t n;
	int ret;

	ret = alg_cmsg(&msg, o->encrypt, o->iv, o->ivlen, o->assoclen,
		       o->assoclen);
	if (ret)
		return ret;
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

/*
 * Does AES-GCM accept @ct || @tag with @aad under @key and @nonce?  Only
 * the verdict is wanted, so the plaintext goes through a scratch buffer.
 */
static bool ossl_gcm_verifies(const unsigned char *key, unsigned int keylen,
			      const unsigned char *nonce,
			      const unsigned char *aad, size_t aadlen,
			      const unsigned char *ct, size_t ctlen,
			      const unsigned char *tag, unsigned int taglen)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	unsigned char scratch[1024];
	size_t done, chunk;
	int n = 0, ok;

	ok = ctx && EVP_DecryptInit_ex(ctx, ossl_cipher("gcm", keylen), NULL,
				       key, nonce) &&
	     (!aadlen || EVP_DecryptUpdate(ctx, NULL, &n, aad, aadlen));
	for (done = 0; ok && done < ctlen; done += chunk) {
		chunk = ctlen - done < sizeof(scratch) ? ctlen - done :
							  sizeof(scratch);
		ok = EVP_DecryptUpdate(ctx, scratch, &n, ct + done, chunk);
	}
	ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, taglen,
				       (void *)tag) &&
	     EVP_DecryptFinal_ex(ctx, scratch, &n) > 0;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
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
	if (system("modprobe -q -a af_alg algif_skcipher algif_aead algif_hash"))
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
	int tfm, ret, e;

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

	/*
	 * A flipped bit in the tag, the data or the AAD: -EBADMSG.  Edited
	 * data or AAD still verifies when the truncated GHASH tag happens
	 * to match (2^-32 with a 4-byte tag), so OpenSSL decides which
	 * answer is right for them; a changed tag never verifies.
	 */
	out[outlen - 1] ^= 0x80;
	EXPECT_EQ(-EBADMSG, alg_run(tfm, &o, out, outlen, back, inlen));
	out[outlen - 1] ^= 0x80;
	/* the first data byte, then the first AAD byte, where there is one */
	for (e = 0; e < 2; e++) {
		size_t at = e ? 0 : assoc;

		if (!(e ? c->aadlen : c->ptlen))
			continue;
		out[at] ^= 1;
		ret = ossl_gcm_verifies(key, c->keylen, nonce, out, c->aadlen,
					out + assoc, c->ptlen, out + inlen,
					c->taglen) ? 0 : -EBADMSG;
		EXPECT_EQ(ret, alg_run(tfm, &o, out, outlen, back, inlen))
			TH_LOG("%s aad %zu pt %zu: edited %s", drv,
			       c->aadlen, c->ptlen, e ? "AAD" : "data");
		out[at] ^= 1;
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

/*
 * Unbind every card: the algorithms go away, and with them any template
 * instance (pkcs1pad(rsa-hsmcard)...) that would keep the module busy.
 */
static void hsmcard_unbind_all(void)
{
	glob_t g;
	size_t i;

	if (glob("/sys/bus/pci/drivers/hsmcard/0000:*", 0, NULL, &g))
		return;
	for (i = 0; i < g.gl_pathc; i++) {
		const char *addr = strrchr(g.gl_pathv[i], '/') + 1;
		int fd = open("/sys/bus/pci/drivers/hsmcard/unbind", O_WRONLY);

		if (fd < 0)
			break;
		if (write(fd, addr, strlen(addr)) < 0)
			perror("unbind");
		close(fd);
	}
	globfree(&g);
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

/* ---- hashes ---- */

static const size_t hash_lens[] = {
	0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 4096,
	65536 + 13,
};

/* HMAC key lengths: empty, short, one block, longer than a block */
static const size_t hmac_keylens[] = { 0, 1, 20, 64, 128, 131, 200 };

static int ossl_hash(const struct hash_alg *c, const unsigned char *key,
		     size_t keylen, const unsigned char *msg, size_t len,
		     unsigned char *out)
{
	const EVP_MD *md = EVP_get_digestbyname(c->md);
	static const unsigned char nokey[1];
	unsigned int n = 0;

	if (!md)
		return -1;
	if (c->hmac)
		return HMAC(md, keylen ? key : nokey, keylen, msg, len, out,
			    &n) ? (int)n : -1;
	return EVP_Digest(msg, len, out, &n, md, NULL) ? (int)n : -1;
}

static int hash_tfm(const char *driver, const unsigned char *key,
		    size_t keylen, bool hmac)
{
	struct sockaddr_alg sa = { .salg_family = AF_ALG,
				   .salg_type = "hash" };
	int fd;

	snprintf((char *)sa.salg_name, sizeof(sa.salg_name), "%s", driver);
	fd = socket(AF_ALG, SOCK_SEQPACKET, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (hmac && setsockopt(fd, SOL_ALG, ALG_SET_KEY,
				keylen ? key : (const unsigned char *)"",
				keylen))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Send @len bytes in @parts pieces (the last without MSG_MORE). */
static int hash_send(int op, const unsigned char *msg, size_t len,
		     unsigned int parts, bool more)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < parts; i++) {
		size_t n = i + 1 == parts ? len - done :
			   (len - done) / (parts - i) + (i * 7) % 5;
		bool last = i + 1 == parts;
		ssize_t w;

		if (n > len - done)
			n = len - done;
		w = send(op, msg + done, n, last && !more ? 0 : MSG_MORE);
		if (w < 0)
			return -errno;
		if ((size_t)w != n)
			return -EIO;
		done += n;
	}
	return 0;
}

static void check_hash(struct __test_metadata *_metadata,
		       const struct hash_alg *c, size_t keylen, size_t len,
		       unsigned int parts)
{
	unsigned char key[256], exp[64], got[64], *msg;
	int tfm, op, dlen;

	msg = malloc(len + 1);
	ASSERT_TRUE(msg != NULL);
	rnd(key, sizeof(key));
	rnd(msg, len + 1);
	dlen = ossl_hash(c, key, keylen, msg, len, exp);
	ASSERT_LT(0, dlen);
	tfm = hash_tfm(c->driver, key, keylen, c->hmac);
	ASSERT_LE(0, tfm) TH_LOG("%s key %zu: %s", c->driver, keylen,
				 strerror(-tfm));
	op = accept(tfm, NULL, NULL);
	ASSERT_LE(0, op);
	/* No data at all: the digest of the empty message on read. */
	if (len)
		ASSERT_EQ(0, hash_send(op, msg, len, parts, false));
	ASSERT_EQ(0, alg_recv(op, got, dlen));
	EXPECT_EQ(0, memcmp(got, exp, dlen))
		TH_LOG("%s key %zu len %zu in %u parts: digest differs",
		       c->driver, keylen, len, parts);
	close(op);
	close(tfm);
	free(msg);
}

TEST_F(crypto, hash_vs_openssl)
{
	struct alg_stats before[ARRAY_SIZE(hash_algs)], after;
	unsigned int i, l, k;

	for (i = 0; i < ARRAY_SIZE(hash_algs); i++)
		ASSERT_EQ(0, read_stats(hash_algs[i].driver, &before[i]));
	for (i = 0; i < ARRAY_SIZE(hash_algs); i++) {
		const struct hash_alg *c = &hash_algs[i];

		for (l = 0; l < ARRAY_SIZE(hash_lens); l++)
			check_hash(_metadata, c,
				   c->hmac ? hmac_keylens[l % 7] : 0,
				   hash_lens[l], 1 + l % 4);
		for (k = 0; c->hmac && k < ARRAY_SIZE(hmac_keylens); k++)
			check_hash(_metadata, c, hmac_keylens[k], 77, 2);
	}
	for (i = 0; i < ARRAY_SIZE(hash_algs); i++) {
		ASSERT_EQ(0, read_stats(hash_algs[i].driver, &after));
		/* at least one command per digest */
		EXPECT_LE(before[i].requests + ARRAY_SIZE(hash_lens),
			  after.requests) TH_LOG("%s", hash_algs[i].driver);
		EXPECT_EQ(before[i].errors, after.errors)
			TH_LOG("%s", hash_algs[i].driver);
	}
}

/*
 * accept() on an operation socket with a partial hash clones it through
 * the driver's export and import: both copies go on independently.
 */
TEST_F(crypto, hash_export_import)
{
	unsigned char key[64], msg[3000], exp[64], got[64];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(hash_algs); i++) {
		const struct hash_alg *c = &hash_algs[i];
		int tfm, op, op2, dlen;

		rnd(key, sizeof(key));
		rnd(msg, sizeof(msg));
		tfm = hash_tfm(c->driver, key, 40, c->hmac);
		ASSERT_LE(0, tfm);
		op = accept(tfm, NULL, NULL);
		ASSERT_LE(0, op);
		ASSERT_EQ(0, hash_send(op, msg, 1000, 2, true));
		op2 = accept(op, NULL, NULL);
		ASSERT_LE(0, op2) TH_LOG("%s: %s", c->driver,
					 strerror(errno));
		/* msg[0..1000) || msg[1000..2000) on the first socket */
		ASSERT_EQ(0, hash_send(op, msg + 1000, 1000, 1, false));
		dlen = ossl_hash(c, key, 40, msg, 2000, exp);
		ASSERT_EQ(0, alg_recv(op, got, dlen));
		EXPECT_EQ(0, memcmp(got, exp, dlen)) TH_LOG("%s", c->driver);
		/* msg[0..1000) || msg[2000..3000) on the clone */
		memmove(msg + 1000, msg + 2000, 1000);
		ASSERT_EQ(0, hash_send(op2, msg + 1000, 1000, 3, false));
		dlen = ossl_hash(c, key, 40, msg, 2000, exp);
		ASSERT_EQ(0, alg_recv(op2, got, dlen));
		EXPECT_EQ(0, memcmp(got, exp, dlen))
			TH_LOG("%s: clone", c->driver);
		close(op2);
		close(op);
		close(tfm);
	}
}

/* ---- authenc(hmac(sha256),cbc(aes)) ---- */

#define AUTHENC_DRV	"authenc-hmac-sha256-cbc-aes-hsmcard"

/* The kernel's authenc key: rtattr { enckeylen } || authkey || enckey */
static size_t authenc_key(unsigned char *out, const unsigned char *ekey,
			  size_t eklen, const unsigned char *akey,
			  size_t aklen)
{
	struct rtattr *rta = (struct rtattr *)out;
	uint32_t be = htobe32(eklen);

	rta->rta_type = 1;	/* CRYPTO_AUTHENC_KEYA_PARAM */
	rta->rta_len = RTA_LENGTH(sizeof(be));
	memcpy(RTA_DATA(rta), &be, sizeof(be));
	memcpy(out + RTA_SPACE(sizeof(be)), akey, aklen);
	memcpy(out + RTA_SPACE(sizeof(be)) + aklen, ekey, eklen);
	return RTA_SPACE(sizeof(be)) + aklen + eklen;
}

struct authenc_case {
	size_t aadlen, ptlen;
	unsigned int authsize, eklen, aklen;
};

static const struct authenc_case authenc_cases[] = {
	{ 0, 16, 32, 16, 32 }, { 8, 64, 12, 32, 20 },
	{ 16, 4096, 16, 24, 64 }, { 20, 0, 32, 32, 100 },
	{ 24, 65536, 32, 32, 0 }, { 13, 1504, 1, 16, 200 },
};

/* Does AAD || CT || tag in @msg verify under the oracle's HMAC? */
static bool authenc_forged(const struct authenc_case *c,
			   const unsigned char *akey, const unsigned char *msg)
{
	size_t inlen = c->aadlen + c->ptlen;
	unsigned char mac[EVP_MAX_MD_SIZE], none = 0;
	unsigned int maclen = 0;

	if (!HMAC(EVP_sha256(), c->aklen ? akey : &none, c->aklen, msg, inlen,
		  mac, &maclen))
		return false;
	return !memcmp(mac, msg + inlen, c->authsize);
}

static void check_authenc(struct __test_metadata *_metadata,
			  const struct authenc_case *c, size_t off)
{
	size_t inlen = c->aadlen + c->ptlen, outlen = inlen + c->authsize;
	unsigned char ekey[32], akey[256], kb[512], iv[16], mac[32];
	unsigned char *in, *out, *exp, *back;
	struct alg_op o = { .iv = iv, .ivlen = 16, .assoclen = c->aadlen,
			    .encrypt = true };
	struct xbuf bin, bout, bback;
	unsigned int maclen = 0;
	size_t kl;
	int tfm, ret;

	in = xbuf_get(&bin, outlen, 0);
	out = xbuf_get(&bout, outlen, off);
	back = xbuf_get(&bback, outlen, (off + 9) % 4096);
	exp = malloc(outlen);
	ASSERT_TRUE(in && out && back && exp);
	rnd(ekey, sizeof(ekey));
	rnd(akey, sizeof(akey));
	rnd(iv, sizeof(iv));
	rnd(in, inlen);

	/* oracle: AAD || AES-CBC(pt) || HMAC-SHA256(AAD || ct)[:authsize] */
	memcpy(exp, in, c->aadlen);
	if (c->ptlen)
		ASSERT_EQ(0, ossl_skcipher("cbc", true, ekey, c->eklen, iv,
					   in + c->aadlen, c->ptlen,
					   exp + c->aadlen));
	ASSERT_TRUE(HMAC(EVP_sha256(), c->aklen ? akey : kb, c->aklen, exp,
			 inlen, mac, &maclen) != NULL);
	memcpy(exp + inlen, mac, c->authsize);

	kl = authenc_key(kb, ekey, c->eklen, akey, c->aklen);
	tfm = alg_tfm("aead", AUTHENC_DRV, kb, kl, c->authsize);
	ASSERT_LE(0, tfm) TH_LOG("setkey: %s", strerror(-tfm));
	ret = alg_run(tfm, &o, in, inlen, out, outlen);
	ASSERT_EQ(0, ret) TH_LOG("aad %zu pt %zu: %s", c->aadlen, c->ptlen,
				 strerror(-ret));
	EXPECT_EQ(0, memcmp(out + c->aadlen, exp + c->aadlen,
			    c->ptlen + c->authsize))
		TH_LOG("aad %zu pt %zu tag %u: encryption differs", c->aadlen,
		       c->ptlen, c->authsize);

	memcpy(out, in, c->aadlen);
	o.encrypt = false;
	ret = alg_run(tfm, &o, out, outlen, back, inlen);
	ASSERT_EQ(0, ret) TH_LOG("decrypt: %s", strerror(-ret));
	EXPECT_EQ(0, memcmp(back + c->aadlen, in + c->aadlen, c->ptlen));
	/*
	 * Tag, ciphertext or AAD changed: -EBADMSG.  A changed ciphertext
	 * or AAD still verifies when the truncated HMAC of the edited data
	 * happens to equal the tag (1 in 256 with a 1-byte tag), so the
	 * oracle decides which answer is right.
	 */
	out[outlen - 1] ^= 0x01;
	EXPECT_EQ(-EBADMSG, alg_run(tfm, &o, out, outlen, back, inlen));
	out[outlen - 1] ^= 0x01;
	if (c->ptlen) {
		out[c->aadlen + c->ptlen - 1] ^= 0x40;
		EXPECT_EQ(authenc_forged(c, akey, out) ? 0 : -EBADMSG,
			  alg_run(tfm, &o, out, outlen, back, inlen));
		out[c->aadlen + c->ptlen - 1] ^= 0x40;
	}
	if (c->aadlen) {
		out[0] ^= 2;
		EXPECT_EQ(authenc_forged(c, akey, out) ? 0 : -EBADMSG,
			  alg_run(tfm, &o, out, outlen, back, inlen));
	}
	close(tfm);
	free(exp);
	xbuf_put(&bin);
	xbuf_put(&bout);
	xbuf_put(&bback);
}

TEST_F(crypto, authenc_vs_openssl)
{
	unsigned char kb[512], k[64] = { 1 }, buf[64] = {}, iv[16] = {};
	struct alg_op o = { .iv = iv, .ivlen = 16, .assoclen = 8,
			    .encrypt = true };
	struct alg_stats before, after;
	unsigned int i;
	int tfm;

	ASSERT_EQ(0, read_stats(AUTHENC_DRV, &before));
	for (i = 0; i < ARRAY_SIZE(authenc_cases); i++)
		check_authenc(_metadata, &authenc_cases[i], (i * 31) % 4096);
	ASSERT_EQ(0, read_stats(AUTHENC_DRV, &after));
	EXPECT_LE(before.requests + 2 * ARRAY_SIZE(authenc_cases),
		  after.requests);
	EXPECT_LT(before.errors, after.errors);

	/* bad AES key length, tag longer than SHA-256, partial block */
	EXPECT_EQ(-EINVAL, alg_tfm("aead", AUTHENC_DRV, kb,
				   authenc_key(kb, k, 17, k, 32), 0));
	EXPECT_EQ(-EINVAL, alg_tfm("aead", AUTHENC_DRV, kb,
				   authenc_key(kb, k, 16, k, 32), 33));
	tfm = alg_tfm("aead", AUTHENC_DRV, kb, authenc_key(kb, k, 16, k, 32),
		      32);
	ASSERT_LE(0, tfm);
	EXPECT_EQ(-EINVAL, alg_run(tfm, &o, buf, 8 + 20, buf, 8 + 20 + 32));
	close(tfm);
}

/* ---- xts(paes), cbc(paes) ---- */

#define PAES_PARAM	"/sys/module/hsmcard/parameters/paes_clear_tokens"

static int paes_param(const char *v)
{
	int fd = open(PAES_PARAM, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, v, strlen(v)) != (ssize_t)strlen(v))
		ret = -errno;
	close(fd);
	return ret;
}

static void clear_token(unsigned char *tok, const unsigned char *key,
			unsigned int keylen)
{
	struct hsmcard_clear_token ct = {
		.magic = htole32(HSMCARD_CLEAR_TOKEN_MAGIC),
		.version = htole16(1),
		.key_len = htole16(keylen),
	};

	memcpy(ct.key, key, keylen);
	memcpy(tok, &ct, sizeof(ct));
}

/*
 * Known answers for the token-keyed ciphers through the test-only
 * clear-key tokens, which only work while the (default off) module
 * parameter allows them.
 */
TEST_F(crypto, paes_clear_token_kat)
{
	static const struct { const char *drv, *mode; unsigned int kl; }
	pc[] = {
		{ "xts-paes-hsmcard", "xts", 32 },
		{ "xts-paes-hsmcard", "xts", 64 },
		{ "cbc-paes-hsmcard", "cbc", 16 },
		{ "cbc-paes-hsmcard", "cbc", 24 },
		{ "cbc-paes-hsmcard", "cbc", 32 },
	};
	static const size_t lens[] = { 16, 512, 4096, 65536 };
	unsigned char tok[HSMCARD_TOKEN_SIZE], key[64], iv[16];
	unsigned char *pt, *ct, *exp;
	struct alg_op o = { .iv = iv, .ivlen = 16 };
	struct alg_stats before, after;
	char val[8] = "";
	unsigned int i, l;
	int fd, tfm;

	_Static_assert(sizeof(struct hsmcard_clear_token) ==
		       HSMCARD_TOKEN_SIZE, "clear token size");
	fd = open(PAES_PARAM, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_LT(0, read(fd, val, sizeof(val) - 1));
	close(fd);
	EXPECT_EQ('N', val[0]) TH_LOG("clear tokens must be off by default");

	rnd(key, sizeof(key));
	clear_token(tok, key, 32);
	ASSERT_EQ(0, paes_param("N"));
	EXPECT_EQ(-EINVAL, alg_tfm("skcipher", "xts-paes-hsmcard", tok,
				   sizeof(tok), 0));
	ASSERT_EQ(0, paes_param("Y"));

	pt = malloc(65536);
	ct = malloc(65536);
	exp = malloc(65536);
	ASSERT_TRUE(pt && ct && exp);
	ASSERT_EQ(0, read_stats("xts-paes-hsmcard", &before));
	for (i = 0; i < ARRAY_SIZE(pc); i++) {
		rnd(key, sizeof(key));
		clear_token(tok, key, pc[i].kl);
		tfm = alg_tfm("skcipher", pc[i].drv, tok, sizeof(tok), 0);
		EXPECT_LE(0, tfm) TH_LOG("%s %u: %s", pc[i].drv, pc[i].kl,
					 strerror(-tfm));
		if (tfm < 0)
			continue;
		for (l = 0; l < ARRAY_SIZE(lens); l++) {
			rnd(iv, sizeof(iv));
			rnd(pt, lens[l]);
			EXPECT_EQ(0, ossl_skcipher(pc[i].mode, true, key,
						   pc[i].kl, iv, pt, lens[l],
						   exp));
			o.encrypt = true;
			EXPECT_EQ(0, alg_run(tfm, &o, pt, lens[l], ct,
					     lens[l]));
			EXPECT_EQ(0, memcmp(ct, exp, lens[l]))
				TH_LOG("%s key %u len %zu", pc[i].drv,
				       pc[i].kl, lens[l]);
			o.encrypt = false;
			EXPECT_EQ(0, alg_run(tfm, &o, exp, lens[l], ct,
					     lens[l]));
			EXPECT_EQ(0, memcmp(ct, pt, lens[l]));
		}
		close(tfm);
	}
	/* malformed clear tokens */
	clear_token(tok, key, 48);
	EXPECT_EQ(-EINVAL, alg_tfm("skcipher", "xts-paes-hsmcard", tok,
				   sizeof(tok), 0));
	clear_token(tok, key, 32);
	tok[HSMCARD_TOKEN_SIZE - 1] = 1;
	EXPECT_EQ(-EINVAL, alg_tfm("skcipher", "xts-paes-hsmcard", tok,
				   sizeof(tok), 0));
	EXPECT_EQ(-EINVAL, alg_tfm("skcipher", "xts-paes-hsmcard", tok, 64,
				   0));
	ASSERT_EQ(0, paes_param("N"));
	ASSERT_EQ(0, read_stats("xts-paes-hsmcard", &after));
	EXPECT_LE(before.requests + 2 * 2 * ARRAY_SIZE(lens),
		  after.requests);
	free(pt);
	free(ct);
	free(exp);
}

static int token_create(unsigned int bits, unsigned char *tok)
{
	struct hsmcard_token_create tc = { .bits = bits };
	int fd, ret;

	fd = open(DEV_PATH, O_RDWR);
	if (fd < 0)
		return -errno;
	snprintf(tc.label, sizeof(tc.label), "crypto_test %u", bits);
	ret = ioctl(fd, HSMCARD_IOC_TOKEN_CREATE, &tc) ? -errno : 0;
	if (!ret)
		memcpy(tok, tc.token, sizeof(tc.token));
	close(fd);
	return ret;
}

static int token_destroy(const unsigned char *tok)
{
	struct hsmcard_token t = {};
	int fd, ret;

	fd = open(DEV_PATH, O_RDWR);
	if (fd < 0)
		return -errno;
	memcpy(t.token, tok, sizeof(t.token));
	ret = ioctl(fd, HSMCARD_IOC_TOKEN_DESTROY, &t) ? -errno : 0;
	close(fd);
	return ret;
}

/*
 * Card-held keys: a token names a key generated in the card.  Two
 * transforms keyed by the same token agree, a forged or altered token is
 * refused, and a destroyed key takes its token with it.
 */
TEST_F(crypto, paes_card_token)
{
	static const struct { const char *drv; unsigned int bits; } pc[] = {
		{ "xts-paes-hsmcard", 512 }, { "xts-paes-hsmcard", 256 },
		{ "cbc-paes-hsmcard", 256 }, { "cbc-paes-hsmcard", 128 },
	};
	unsigned char tok[HSMCARD_TOKEN_SIZE], bad[HSMCARD_TOKEN_SIZE];
	unsigned char pt[4096], ct[4096], ct2[4096], back[4096], iv[16];
	struct alg_op o = { .iv = iv, .ivlen = 16 };
	unsigned int i, b;
	int ret, t1, t2;

	ret = token_create(512, tok);
	if (ret == -ENOTTY || ret == -EOPNOTSUPP)
		SKIP(return, "no key tokens on this card/driver: %s",
		     strerror(-ret));
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, token_destroy(tok));

	for (i = 0; i < ARRAY_SIZE(pc); i++) {
		ASSERT_EQ(0, token_create(pc[i].bits, tok));
		t1 = alg_tfm("skcipher", pc[i].drv, tok, sizeof(tok), 0);
		ASSERT_LE(0, t1) TH_LOG("%s: %s", pc[i].drv, strerror(-t1));
		t2 = alg_tfm("skcipher", pc[i].drv, tok, sizeof(tok), 0);
		ASSERT_LE(0, t2);
		rnd(pt, sizeof(pt));
		rnd(iv, sizeof(iv));
		o.encrypt = true;
		ASSERT_EQ(0, alg_run(t1, &o, pt, sizeof(pt), ct, sizeof(ct)));
		ASSERT_EQ(0, alg_run(t2, &o, pt, sizeof(pt), ct2,
				     sizeof(ct2)));
		EXPECT_EQ(0, memcmp(ct, ct2, sizeof(ct)));
		EXPECT_NE(0, memcmp(ct, pt, sizeof(ct)));
		o.encrypt = false;
		ASSERT_EQ(0, alg_run(t2, &o, ct, sizeof(ct), back,
				     sizeof(back)));
		EXPECT_EQ(0, memcmp(back, pt, sizeof(pt)));
		close(t2);

		/* every byte of the token matters */
		for (b = 0; b < sizeof(tok); b += 3) {
			memcpy(bad, tok, sizeof(bad));
			bad[b] ^= 1 << (b % 8);
			EXPECT_EQ(-EINVAL, alg_tfm("skcipher", pc[i].drv, bad,
						   sizeof(bad), 0))
				TH_LOG("%s: byte %u", pc[i].drv, b);
		}
		/* the key is gone: the token with it, the transform fails */
		ASSERT_EQ(0, token_destroy(tok));
		EXPECT_EQ(-EINVAL, alg_tfm("skcipher", pc[i].drv, tok,
					   sizeof(tok), 0));
		o.encrypt = true;
		EXPECT_NE(0, alg_run(t1, &o, pt, 512, ct, 512));
		close(t1);
	}
}

/* ---- rsa, through the kernel's key retention service ---- */

static long k_add_key(const char *type, const char *desc, const void *p,
		      size_t len, int ring)
{
	return syscall(SYS_add_key, type, desc, p, len, ring);
}

static long k_pkey(int op, long key, const char *info, const void *in,
		   size_t inlen, void *out, size_t outlen)
{
	struct keyctl_pkey_params pp = {
		.key_id = key, .in_len = inlen, .out_len = outlen,
	};

	return syscall(SYS_keyctl, op, &pp, info, in, out);
}

static int ossl_rsa_pk(EVP_PKEY *pk, bool enc, const unsigned char *in,
		       size_t inlen, unsigned char *out, size_t *outlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
	int ok;

	ok = c && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) &&
	     EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0 &&
	     (enc ? EVP_PKEY_encrypt(c, out, outlen, in, inlen) :
		    EVP_PKEY_decrypt(c, out, outlen, in, inlen)) > 0;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

/*
 * The kernel's asymmetric keys run PKCS#1 v1.5 on top of the highest
 * priority "rsa": with the module loaded at a high hash_priority that is
 * the card.  Encrypt, decrypt and sign with an OpenSSL key, and check each
 * result with OpenSSL.
 */
TEST_F_TIMEOUT(crypto, rsa_via_keyring, 600)
{
	const char *ko = getenv("HSMCARD_KO");
	static const unsigned int sizes[] = { 2048, 4096 };
	unsigned char msg[32], ct[512], pt[512], sig[512], dgst[32];
	struct alg_stats before, after;
	unsigned int s;
	int ret;

	if (!ko || access(ko, R_OK))
		SKIP(return, "HSMCARD_KO does not name the module file");
	if (system("modprobe -q pkcs8_key_parser"))
		SKIP(return, "no PKCS#8 key parser in this kernel");
	ASSERT_EQ(0, hsmcard_unload());
	ret = hsmcard_load(ko, "hash_priority=5000");
	ASSERT_EQ(0, ret) TH_LOG("insmod: %s", strerror(-ret));
	ASSERT_EQ(0, read_stats("rsa-hsmcard", &before));

	for (s = 0; s < ARRAY_SIZE(sizes); s++) {
		unsigned int k = sizes[s] / 8;
		EVP_PKEY *pk = EVP_RSA_gen(sizes[s]);
		PKCS8_PRIV_KEY_INFO *p8;
		unsigned char *der = NULL;
		EVP_PKEY_CTX *vc;
		size_t outlen;
		long key, n;
		int derlen;

		ASSERT_TRUE(pk != NULL);
		p8 = EVP_PKEY2PKCS8(pk);
		ASSERT_TRUE(p8 != NULL);
		derlen = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
		ASSERT_LT(0, derlen);
		key = k_add_key("asymmetric", "hsmcard-test", der, derlen,
				KEY_SPEC_PROCESS_KEYRING);
		ASSERT_LT(0, key) TH_LOG("add_key: %s", strerror(errno));

		/* OpenSSL encrypts, the card decrypts */
		rnd(msg, sizeof(msg));
		outlen = sizeof(ct);
		ASSERT_EQ(0, ossl_rsa_pk(pk, true, msg, sizeof(msg), ct,
					 &outlen));
		ASSERT_EQ(k, outlen);
		n = k_pkey(KEYCTL_PKEY_DECRYPT, key, "enc=pkcs1", ct, k, pt,
			   k);
		ASSERT_EQ((long)sizeof(msg), n) TH_LOG("decrypt: %s",
						      strerror(errno));
		EXPECT_EQ(0, memcmp(pt, msg, sizeof(msg)));

		/* the card encrypts, OpenSSL decrypts */
		n = k_pkey(KEYCTL_PKEY_ENCRYPT, key, "enc=pkcs1", msg,
			   sizeof(msg), ct, k);
		ASSERT_EQ((long)k, n) TH_LOG("encrypt: %s", strerror(errno));
		outlen = sizeof(pt);
		ASSERT_EQ(0, ossl_rsa_pk(pk, false, ct, k, pt, &outlen));
		EXPECT_EQ(sizeof(msg), outlen);
		EXPECT_EQ(0, memcmp(pt, msg, sizeof(msg)));

		/* the card signs a SHA-256 digest, OpenSSL verifies */
		rnd(dgst, sizeof(dgst));
		n = k_pkey(KEYCTL_PKEY_SIGN, key, "enc=pkcs1 hash=sha256",
			   dgst, sizeof(dgst), sig, k);
		ASSERT_EQ((long)k, n) TH_LOG("sign: %s", strerror(errno));
		vc = EVP_PKEY_CTX_new(pk, NULL);
		ASSERT_TRUE(vc != NULL);
		ASSERT_LT(0, EVP_PKEY_verify_init(vc));
		ASSERT_LT(0, EVP_PKEY_CTX_set_rsa_padding(vc,
							  RSA_PKCS1_PADDING));
		ASSERT_LT(0, EVP_PKEY_CTX_set_signature_md(vc,
							   EVP_sha256()));
		EXPECT_EQ(1, EVP_PKEY_verify(vc, sig, k, dgst, sizeof(dgst)));
		EVP_PKEY_CTX_free(vc);

		syscall(SYS_keyctl, KEYCTL_UNLINK, key,
			KEY_SPEC_PROCESS_KEYRING);
		OPENSSL_free(der);
		PKCS8_PRIV_KEY_INFO_free(p8);
		EVP_PKEY_free(pk);
	}
	ASSERT_EQ(0, read_stats("rsa-hsmcard", &after));
	/* decrypt, encrypt and sign ran on the card for every key */
	EXPECT_LE(before.requests + 3 * ARRAY_SIZE(sizes), after.requests);
	EXPECT_EQ(before.errors, after.errors);

	hsmcard_unbind_all();
	ASSERT_EQ(0, hsmcard_unload());
	ASSERT_EQ(0, hsmcard_load(ko, ""));
}

TEST_HARNESS_MAIN
