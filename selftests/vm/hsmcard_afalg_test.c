// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * AF_ALG consumers of the hsmcard (run in the test guest).
 *
 * User space reaches the card's crypto API drivers through AF_ALG sockets
 * bound by driver name.  Randomised rounds (random keys, IVs, lengths from
 * one byte or block to several pages, receive buffers at odd offsets)
 * compare every result with OpenSSL's libcrypto, through both of AF_ALG's
 * input paths: sendmsg() (copied) and vmsplice()+splice() (the user pages
 * themselves), from several threads at once.  Decryption must give the
 * plaintext back and a forged GCM tag must fail with EBADMSG.  Hashes and
 * HMACs are fed in random pieces with MSG_MORE; they skip until the driver
 * registers them.  The debugfs counters prove that the card did the work.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_alg.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define MAX_LEN		(3 * 16384 + 333)	/* fits a pipe (64 KiB) */
#define ROUNDS		48
#define THREADS		4

/* ---- cipher descriptions ---- */

struct cipher {
	const char *driver;
	const char *mode;	/* OpenSSL mode: ecb cbc ctr xts gcm */
	bool aead;
	unsigned int block;	/* length granularity */
	unsigned int minlen;
	unsigned int ivlen;
	unsigned int nkeys;
	unsigned int keylens[3];
};

static const struct cipher ciphers[] = {
	{ "ecb-aes-hsmcard", "ecb", false, 16, 16, 0, 3, { 16, 24, 32 } },
	{ "cbc-aes-hsmcard", "cbc", false, 16, 16, 16, 3, { 16, 24, 32 } },
	{ "ctr-aes-hsmcard", "ctr", false, 1, 1, 16, 3, { 16, 24, 32 } },
	{ "xts-aes-hsmcard", "xts", false, 1, 16, 16, 2, { 32, 64 } },
	{ "gcm-aes-hsmcard", "gcm", true, 1, 1, 12, 3, { 16, 24, 32 } },
};

static const EVP_CIPHER *ossl_cipher(const struct cipher *c,
				     unsigned int keylen)
{
	char name[32];

	if (!strcmp(c->mode, "xts"))
		snprintf(name, sizeof(name), "aes-%u-xts", keylen * 4);
	else
		snprintf(name, sizeof(name), "aes-%u-%s", keylen * 8, c->mode);
	return EVP_get_cipherbyname(name);
}

static unsigned int rnd32(void)
{
	unsigned int v;

	RAND_bytes((unsigned char *)&v, sizeof(v));
	return v;
}

/*
 * OpenSSL's result for one request: ciphertext (and tag) of @len bytes of
 * @in; for GCM the AAD is @aad (@assoc bytes) and the tag @tag bytes.
 */
static int ossl_encrypt(const struct cipher *c, const unsigned char *key,
			unsigned int keylen, const unsigned char *iv,
			const unsigned char *aad, size_t assoc,
			const unsigned char *in, size_t len, unsigned int tag,
			unsigned char *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, ok;

	ok = ctx && EVP_EncryptInit_ex(ctx, ossl_cipher(c, keylen), NULL, key,
				       iv) &&
	     EVP_CIPHER_CTX_set_padding(ctx, 0) &&
	     (!assoc || EVP_EncryptUpdate(ctx, NULL, &n, aad, assoc)) &&
	     (!len || EVP_EncryptUpdate(ctx, out, &n, in, len)) &&
	     EVP_EncryptFinal_ex(ctx, out + (len ? n : 0), &f) &&
	     (!c->aead || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, tag,
					      out + len));
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* ---- AF_ALG ---- */

/*
 * Send the request header (operation, IV, AAD length) and, unless
 * @spliced, the data; with @spliced the data goes through a pipe into the
 * socket by vmsplice()+splice(), i.e. AF_ALG works on the user pages.
 */
static int alg_send(int op, bool encrypt, const unsigned char *iv,
		    unsigned int ivlen, unsigned int assoc, bool aead,
		    const unsigned char *in, size_t len, bool spliced)
{
	char cbuf[ALG_CMSG_SPACE] = {};
	struct iovec iov = { .iov_base = (void *)in, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = spliced ? 0 : 1,
		.msg_control = cbuf,
	};
	size_t done = 0;
	int p[2], ret = 0;

	if (alg_cmsg(&msg, encrypt, ivlen ? iv : NULL, ivlen, aead, assoc))
		return -1;
	if (!spliced)
		return sendmsg(op, &msg, 0) == (ssize_t)len ? 0 : -1;

	if (sendmsg(op, &msg, MSG_MORE) < 0 || pipe(p))
		return -1;
	while (!ret && done < len) {
		struct iovec v = { (void *)(in + done), len - done };
		ssize_t n = vmsplice(p[1], &v, 1, 0), m, moved = 0;

		if (n <= 0) {
			ret = -1;
			break;
		}
		while (moved < n) {
			m = splice(p[0], NULL, op, NULL, n - moved,
				   done + n < len ? SPLICE_F_MORE : 0);
			if (m <= 0) {
				ret = -1;
				break;
			}
			moved += m;
		}
		done += n;
	}
	close(p[0]);
	close(p[1]);
	return ret;
}

/* One request on a new operation socket; returns 0 or -errno. */
static int alg_op(int tfm, bool encrypt, const unsigned char *iv,
		  unsigned int ivlen, unsigned int assoc, bool aead,
		  const unsigned char *in, size_t len, bool spliced,
		  unsigned char *out, size_t outlen)
{
	int op = accept(tfm, NULL, NULL), ret;

	if (op < 0)
		return -errno;
	ret = alg_send(op, encrypt, iv, ivlen, assoc, aead, in, len, spliced);
	if (ret)
		ret = errno ? -errno : -EIO;
	else
		ret = read_full(op, out, outlen);
	close(op);
	return ret;
}

/* ---- one randomised round ---- */

struct round_buf {
	unsigned char *in;	/* page aligned (vmsplice) */
	unsigned char *out;	/* MAX_LEN + 64 + page: offset per round */
	unsigned char *back;
	unsigned char *ref;
	unsigned char *pt;
};

static int round_buf_init(struct round_buf *b)
{
	size_t sz = MAX_LEN + 2 * 4096 + 64;

	b->in = mmap(NULL, sz, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b->out = malloc(sz);
	b->back = malloc(sz);
	b->ref = malloc(sz);
	b->pt = malloc(sz);
	return b->in != MAP_FAILED && b->out && b->back && b->ref && b->pt ?
	       0 : -1;
}

static void round_buf_free(struct round_buf *b)
{
	if (b->in != MAP_FAILED)
		munmap(b->in, MAX_LEN + 2 * 4096 + 64);
	free(b->out);
	free(b->back);
	free(b->ref);
	free(b->pt);
}

/*
 * Encrypt random data with the card, compare with OpenSSL, decrypt it
 * again (and for GCM, check that a flipped tag bit fails with EBADMSG).
 * Returns 0, or -1 with a reason in @why.
 */
static int cipher_round(const struct cipher *c, struct round_buf *b,
			bool spliced, char *why, size_t whylen)
{
	unsigned char key[64], iv[16];
	unsigned int keylen = c->keylens[rnd32() % c->nkeys];
	unsigned int tag = c->aead ? (rnd32() % 2 ? 16 : 12) : 0;
	unsigned int assoc = c->aead ? rnd32() % 65 : 0;
	size_t len, off = rnd32() % 64, total;
	int tfm, ret;

	len = c->minlen + rnd32() % (MAX_LEN - assoc - c->minlen);
	if (rnd32() % 4 == 0)		/* often exactly a page or a block */
		len = 4096 * (1 + rnd32() % 8);
	len -= len % c->block;
	if (len < c->minlen)
		len = c->minlen;
	total = assoc + len;
	RAND_bytes(key, keylen);
	if (!strcmp(c->mode, "xts") && !memcmp(key, key + keylen / 2, keylen / 2))
		key[0] ^= 1;
	RAND_bytes(iv, sizeof(iv));
	RAND_bytes(b->in, total);

	tfm = alg_tfm(c->aead ? "aead" : "skcipher", c->driver, key, keylen,
		      tag);
	if (tfm < 0) {
		snprintf(why, whylen, "bind/setkey %s: %s", c->driver,
			 strerror(-tfm));
		return -1;
	}
	if (ossl_encrypt(c, key, keylen, iv, b->in, assoc, b->in + assoc, len,
			 tag, b->ref)) {
		snprintf(why, whylen, "OpenSSL %s failed", c->mode);
		close(tfm);
		return -1;
	}
	/* AEAD output: AAD, ciphertext, tag. */
	ret = alg_op(tfm, true, iv, c->ivlen, assoc, c->aead, b->in, total,
		     spliced, b->out + off, total + tag);
	if (ret || memcmp(b->out + off + assoc, b->ref, len + tag)) {
		snprintf(why, whylen, "%s encrypt len %zu assoc %u tag %u key %u%s: %s",
			 c->driver, len, assoc, tag, keylen,
			 spliced ? " spliced" : "",
			 ret ? strerror(-ret) : "differs from OpenSSL");
		close(tfm);
		return -1;
	}
	/* Keep the plaintext; decrypt from an aligned copy. */
	memcpy(b->pt, b->in, total);
	memcpy(b->out + off, b->in, assoc);
	memcpy(b->in, b->out + off, total + tag);
	ret = alg_op(tfm, false, iv, c->ivlen, assoc, c->aead, b->in,
		     total + tag, spliced, b->back + off, total);
	if (ret || memcmp(b->back + off + assoc, b->pt + assoc, len)) {
		snprintf(why, whylen, "%s decrypt len %zu%s: %s", c->driver,
			 len, spliced ? " spliced" : "",
			 ret ? strerror(-ret) : "not the plaintext");
		close(tfm);
		return -1;
	}
	ret = 0;
	if (c->aead) {
		/* Flip a tag bit: the card must refuse. */
		b->in[total + rnd32() % tag] ^= 1 << (rnd32() % 8);
		ret = alg_op(tfm, false, iv, c->ivlen, assoc, true, b->in,
			     total + tag, spliced, b->back, total);
		if (ret != -EBADMSG) {
			snprintf(why, whylen, "%s forged tag: %s", c->driver,
				 ret ? strerror(-ret) : "accepted");
			close(tfm);
			return -1;
		}
	}
	close(tfm);
	return 0;
}

FIXTURE(afalg) {
	int dummy;
};

FIXTURE_SETUP(afalg)
{
	if (system("modprobe -q -a af_alg algif_skcipher algif_aead algif_hash"))
		TH_LOG("modprobe of the AF_ALG modules failed");
	if (!proc_crypto_has("cbc-aes-hsmcard"))
		SKIP(return, "the card's ciphers are not registered");
}

FIXTURE_TEARDOWN(afalg)
{
}

static void run_ciphers(struct __test_metadata *_metadata, bool spliced)
{
	struct round_buf b;
	unsigned int i, r;
	char why[256];

	ASSERT_EQ(0, round_buf_init(&b));
	for (i = 0; i < ARRAY_SIZE(ciphers); i++) {
		const struct cipher *c = &ciphers[i];
		long long before = card_requests(c->driver), after;
		unsigned int fails = 0;

		ASSERT_LE(0, before) TH_LOG("no counters for %s", c->driver);
		for (r = 0; r < ROUNDS; r++) {
			if (cipher_round(c, &b, spliced, why, sizeof(why))) {
				if (fails++ < 3)
					TH_LOG("%s", why);
			}
		}
		EXPECT_EQ(0U, fails) TH_LOG("%s: %u of %u rounds failed",
					    c->driver, fails, ROUNDS);
		after = card_requests(c->driver);
		/* Encrypt and decrypt per round at least. */
		EXPECT_LE(2 * ROUNDS, after - before)
			TH_LOG("%s: %lld card requests", c->driver,
			       after - before);
	}
	round_buf_free(&b);
}

TEST_F_TIMEOUT(afalg, ciphers_sendmsg, 600)
{
	run_ciphers(_metadata, false);
}

TEST_F_TIMEOUT(afalg, ciphers_splice, 600)
{
	run_ciphers(_metadata, true);
}

struct thr {
	pthread_t t;
	unsigned int fails;
	char why[256];
};

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	struct round_buf b;
	unsigned int r;
	char why[256];

	if (round_buf_init(&b)) {
		t->fails = ROUNDS;
		snprintf(t->why, sizeof(t->why), "no memory");
		return NULL;
	}
	for (r = 0; r < ROUNDS; r++) {
		const struct cipher *c = &ciphers[rnd32() % ARRAY_SIZE(ciphers)];

		if (cipher_round(c, &b, rnd32() % 2, why, sizeof(why)) &&
		    !t->fails++)
			memcpy(t->why, why, sizeof(why));
	}
	round_buf_free(&b);
	return NULL;
}

/* Several sockets busy at once: the card serves them all correctly. */
TEST_F_TIMEOUT(afalg, concurrent_sockets, 600)
{
	struct thr t[THREADS] = {};
	unsigned int i;

	for (i = 0; i < THREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i].t, NULL, thr_run, &t[i]));
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i].t, NULL);
		EXPECT_EQ(0U, t[i].fails) TH_LOG("thread %u: %s", i, t[i].why);
	}
}

/* ---- hashes ---- */

/* Hash @len bytes in random pieces (MSG_MORE) and compare with OpenSSL. */
static int hash_round(const struct hash_alg *h, unsigned char *msg,
		      size_t len, char *why, size_t whylen)
{
	unsigned char key[200], md[64], ref[64];
	/* AF_ALG cannot set an empty HMAC key: 1 to 199 bytes. */
	unsigned int keylen = h->hmac ? 1 + rnd32() % (sizeof(key) - 1) : 0;
	unsigned int mdlen = 0;
	const EVP_MD *evp = EVP_get_digestbyname(h->md);
	size_t done = 0;
	int tfm, op, ret = 0;

	RAND_bytes(key, sizeof(key));
	RAND_bytes(msg, len);
	if (h->hmac)
		HMAC(evp, key, keylen, msg, len, ref, &mdlen);
	else
		EVP_Digest(msg, len, ref, &mdlen, evp, NULL);
	tfm = alg_tfm("hash", h->driver, h->hmac ? key : NULL, keylen, 0);
	if (tfm < 0) {
		snprintf(why, whylen, "bind %s: %s", h->driver, strerror(-tfm));
		return -1;
	}
	op = accept(tfm, NULL, NULL);
	if (op < 0) {
		close(tfm);
		snprintf(why, whylen, "accept: %s", strerror(errno));
		return -1;
	}
	do {
		size_t n = len - done ? 1 + rnd32() % (len - done) : 0;

		if (send(op, msg + done, n, done + n < len ? MSG_MORE : 0) !=
		    (ssize_t)n) {
			ret = -errno;
			break;
		}
		done += n;
	} while (done < len);
	if (!ret)
		ret = read_full(op, md, mdlen);
	close(op);
	close(tfm);
	if (ret || memcmp(md, ref, mdlen)) {
		snprintf(why, whylen, "%s len %zu key %u: %s", h->driver, len,
			 keylen, ret ? strerror(-ret) : "differs from OpenSSL");
		return -1;
	}
	return 0;
}

TEST_F_TIMEOUT(afalg, hashes, 600)
{
	unsigned char *msg = malloc(MAX_LEN);
	unsigned int i, r, tested = 0;
	char why[256];

	ASSERT_NE(NULL, msg);
	for (i = 0; i < ARRAY_SIZE(hash_algs); i++) {
		const struct hash_alg *h = &hash_algs[i];
		long long before, after;
		unsigned int fails = 0;

		if (!proc_crypto_has(h->driver)) {
			TH_LOG("%s is not registered: skipped", h->driver);
			continue;
		}
		tested++;
		before = card_requests(h->driver);
		ASSERT_LE(0, before);
		for (r = 0; r < ROUNDS / 2; r++) {
			size_t len = r == 0 ? 0 : rnd32() % MAX_LEN;

			if (hash_round(h, msg, len, why, sizeof(why)) &&
			    fails++ < 3)
				TH_LOG("%s", why);
		}
		EXPECT_EQ(0U, fails);
		after = card_requests(h->driver);
		EXPECT_LE(ROUNDS / 2, after - before)
			TH_LOG("%s: %lld card requests", h->driver,
			       after - before);
	}
	free(msg);
	if (!tested)
		SKIP(return, "no hash driver of the card is registered");
}

TEST_HARNESS_MAIN
