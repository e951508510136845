// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard: the crypto API path under stress (run in the test guest as root,
 * module loaded from $HSMCARD_KO).  Written for the debug kernel (KASAN,
 * lockdep, kmemleak, DMA-API debug), where the point is less the verdicts
 * below than the kernel reports these paths would provoke; they hold on
 * every kernel.
 *
 * Worker threads run cbc(aes), gcm(aes) and sha256 requests through AF_ALG
 * and check every result against OpenSSL while the test
 *  - unloads and reloads hsmcard.ko several times: the workers ask for the
 *    generic names, so the crypto API moves them between the card and the
 *    kernel's software implementations, and every result must stay right
 *    with no error at all; each reload re-runs the kernel's self-tests
 *    (the fuzz tests on the debug kernel) under that load;
 *  - with 2-entry I/O queues (so that requests are backlogged) resets the
 *    controller three times while requests of all three kinds are queued
 *    and backlogged: a request either completes correctly or fails with
 *    ECANCELED (dropped by the reset), nothing else, and the card works
 *    afterwards;
 *  - unbinds the card while AF_ALG sockets bound to its algorithms are
 *    open and their requests in flight: the unbind finishes promptly, the
 *    requests complete correctly or fail with ENODEV, and after a rebind
 *    the algorithms are back and self-tested.
 * hsmcard_inflight_test does resets and unbind through /dev/hsmcard0 and
 * hsmcard_crypto_test the backlog of one algorithm on an idle card; this
 * file covers the crypto API side of the same events.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <linux/if_alg.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define MAX_LEN		(32 * 1024)
#define AAD_LEN		16
#define TAG_LEN		16

enum kind { K_CBC, K_GCM, K_SHA256, NR_KINDS };

static const struct {
	const char *type, *generic, *driver;
} kinds[NR_KINDS] = {
	[K_CBC] = { "skcipher", "cbc(aes)", "cbc-aes-hsmcard" },
	[K_GCM] = { "aead", "gcm(aes)", "gcm-aes-hsmcard" },
	[K_SHA256] = { "hash", "sha256", "sha256-hsmcard" },
};

/* reload_under_load: workers open no new transform while it is set */
static atomic_bool gate_closed;

struct worker {
	pthread_t thread;
	enum kind kind;
	bool prober;		/* only bind()s sockets, ignores the gate */
	bool pinned;		/* bind to the card's driver, not the name */
	bool reopen;		/* a new transform for every request */
	atomic_bool stop;
	atomic_ulong ok;
	unsigned long mismatch, nodev, canceled, busy, other;
	int last_other;
	bool started;
};

/* ---- small helpers ---- */

/* The PCI address of the first card bound to hsmcard. */
static int card_bdf(char *bdf, size_t len)
{
	glob_t g;
	int ret = -ENODEV;

	if (glob(DRV_DIR "/0000:*", 0, NULL, &g))
		return ret;
	if (g.gl_pathc) {
		snprintf(bdf, len, "%s", strrchr(g.gl_pathv[0], '/') + 1);
		ret = 0;
	}
	globfree(&g);
	return ret;
}

/* "selftest" of @driver in /proc/crypto: 1 passed, 0 other, -ENOENT, -errno. */
static int selftest_passed(const char *driver)
{
	char v[64];
	int ret = proc_crypto_selftest(driver, v, sizeof(v));

	if (ret <= 0)
		return ret ? ret : -ENOENT;
	return !strcmp(v, "passed");
}

/* Wait until the three algorithms are registered and self-tested. */
static bool wait_algs(long ms)
{
	long end = now_ms() + ms;
	int k;

	do {
		for (k = 0; k < NR_KINDS; k++)
			if (selftest_passed(kinds[k].driver) != 1)
				break;
		if (k == NR_KINDS)
			return true;
		usleep(200000);
	} while (now_ms() < end);
	return false;
}

/* The debugfs counters of @driver over every card (zeros if none). */
static struct alg_stats card_stats(const char *driver)
{
	struct alg_stats st;

	read_stats(driver, &st);
	return st;
}

/* ---- the module ---- */

static int module_load(const char *params)
{
	const char *ko = getenv("HSMCARD_KO");
	int fd, ret;

	if (!ko)
		return -ENOENT;
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/* delete_module, retried while the module is in use for up to @ms. */
static int module_unload(long ms)
{
	long end = now_ms() + ms;

	for (;;) {
		if (!syscall(SYS_delete_module, "hsmcard", O_NONBLOCK))
			return 0;
		if (errno == ENOENT)
			return 0;
		if (errno != EAGAIN && errno != EBUSY)
			return -errno;
		if (now_ms() > end)
			return -EBUSY;
		usleep(5000);
	}
}

/*
 * Reload the module with @params on an idle system: unbind first, which
 * also drops template instances built on the card's algorithms (they hold
 * the module), then unload and load.
 */
static int module_reload_idle(const char *params)
{
	char bdf[64];
	int ret;

	while (!card_bdf(bdf, sizeof(bdf)))
		if (write_str(DRV_DIR "/unbind", bdf))
			break;
	ret = module_unload(10000);
	if (ret)
		return ret;
	ret = module_load(params);
	if (ret)
		return ret;
	return wait_algs(300000) ? 0 : -ETIMEDOUT;
}

/* ---- one request through AF_ALG, checked against OpenSSL ---- */

/* A transform for @k: the card's driver if @pinned, else the generic name. */
static int kind_tfm(enum kind k, bool pinned, const unsigned char *key)
{
	const char *name = pinned ? kinds[k].driver : kinds[k].generic;

	return alg_tfm(kinds[k].type, name, k != K_SHA256 ? key : NULL,
		       k == K_CBC ? 32 : 16, k == K_GCM ? TAG_LEN : 0);
}

/* Run one request of @k on transform @tfm: input @in, output to @out. */
static int alg_request(int tfm, enum kind k, const unsigned char *iv,
		       const unsigned char *in, size_t len, unsigned char *out,
		       size_t outlen)
{
	char cbuf[ALG_CMSG_SPACE] = {};
	struct iovec iov = { .iov_base = (void *)in, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int op, ret;

	op = accept(tfm, NULL, NULL);
	if (op < 0)
		return -errno;
	if (k != K_SHA256) {
		msg.msg_control = cbuf;
		alg_cmsg(&msg, true, iv, k == K_CBC ? 16 : 12, k == K_GCM,
			 AAD_LEN);
	}
	ret = sendmsg(op, &msg, 0) == (ssize_t)len ? 0 : -errno;
	if (!ret)
		ret = read_full(op, out, outlen);
	close(op);
	return ret;
}

/* OpenSSL's answer for the same request (see alg_request for layouts). */
static int oracle(enum kind k, const unsigned char *key,
		  const unsigned char *iv, const unsigned char *in, size_t len,
		  unsigned char *out)
{
	EVP_CIPHER_CTX *ctx;
	int n, ok;

	if (k == K_SHA256)
		return SHA256(in, len, out) ? 0 : -1;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -1;
	if (k == K_CBC) {
		ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) &&
		     EVP_CIPHER_CTX_set_padding(ctx, 0) &&
		     EVP_EncryptUpdate(ctx, out, &n, in, len);
	} else {
		/* AF_ALG's output: room for the AAD, ciphertext, tag */
		memcpy(out, in, AAD_LEN);
		ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, iv) &&
		     EVP_EncryptUpdate(ctx, NULL, &n, in, AAD_LEN) &&
		     EVP_EncryptUpdate(ctx, out + AAD_LEN, &n, in + AAD_LEN,
				       len - AAD_LEN) &&
		     EVP_EncryptFinal_ex(ctx, out + len, &n) &&
		     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
					 out + len);
	}
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

/*
 * Looking a generic name up while the module comes or goes can fail
 * without any fault of the driver's: a lookup that meets an algorithm
 * still in its self-tests waits for them for 60 s at most (then
 * ETIMEDOUT, crypto_larval_wait), and one that needs a template instance
 * (gcm(aes) without the card: gcm_base(ctr(aes),ghash)) while the card's
 * algorithms are being unregistered can find none (ENOENT, EAGAIN).  Such
 * failures are counted, not failed; a request never fails.
 */
static bool lookup_busy(int err)
{
	return err == -ETIMEDOUT || err == -EAGAIN || err == -ENOENT;
}

static void *worker_fn(void *arg)
{
	unsigned char key[32], iv[16], *in, *out, *exp;
	struct worker *w = arg;
	int tfm = -1, ret;
	size_t len, outlen;

	in = malloc(MAX_LEN);
	out = malloc(MAX_LEN + TAG_LEN);
	exp = malloc(MAX_LEN + TAG_LEN);
	if (!in || !out || !exp || RAND_bytes(key, sizeof(key)) != 1) {
		w->other++;
		goto out;
	}
	while (!atomic_load(&w->stop)) {
		if (w->prober) {
			tfm = kind_tfm(w->kind, false, key);
			if (lookup_busy(tfm)) {
				w->busy++;
			} else if (tfm < 0) {
				w->other++;
				w->last_other = tfm;
			} else {
				close(tfm);
				atomic_fetch_add(&w->ok, 1);
			}
			tfm = -1;
			w->kind = (w->kind + 1) % NR_KINDS;
			usleep(1000);
			continue;
		}
		if (w->reopen && tfm < 0 && atomic_load(&gate_closed)) {
			usleep(1000);
			continue;
		}
		if (RAND_bytes(iv, sizeof(iv)) != 1 ||
		    RAND_bytes((unsigned char *)&len, sizeof(len)) != 1) {
			w->other++;
			break;
		}
		/* 1..MAX_LEN/16 blocks; the AEAD's first block is its AAD */
		len = (len % (MAX_LEN / 16) + 1) * 16;
		if (w->kind == K_GCM && len == AAD_LEN)
			len += 16;
		RAND_bytes(in, len);
		outlen = w->kind == K_SHA256 ? 32 :
			 w->kind == K_GCM ? len + TAG_LEN : len;
		if (oracle(w->kind, key, iv, in, len, exp)) {
			w->other++;
			break;
		}
		if (tfm < 0) {
			tfm = kind_tfm(w->kind, w->pinned, key);
			if (!w->pinned && lookup_busy(tfm)) {
				w->busy++;
				usleep(1000);
				continue;
			}
			if (tfm < 0) {
				ret = tfm;
				goto classify;
			}
		}
		ret = alg_request(tfm, w->kind, iv, in, len, out, outlen);
		if (!ret && memcmp(out, exp, outlen))
			w->mismatch++;
		else if (!ret)
			atomic_fetch_add(&w->ok, 1);
classify:
		if (ret == -ENODEV || ret == -ENOENT)
			w->nodev++;
		else if (ret == -ECANCELED)
			w->canceled++;
		else if (ret) {
			w->other++;
			w->last_other = ret;
		}
		if (w->reopen || ret == -ENOENT) {
			if (tfm >= 0)
				close(tfm);
			tfm = -1;
			/* leave the module idle now and then */
			usleep(1000 + (len & 0x3fff));
		}
	}
out:
	if (tfm >= 0)
		close(tfm);
	free(in);
	free(out);
	free(exp);
	return NULL;
}

static void start_workers(struct __test_metadata *_metadata,
			  struct worker *w, int n, bool pinned, bool reopen)
{
	int i;

	memset(w, 0, n * sizeof(*w));
	for (i = 0; i < n; i++) {
		w[i].kind = i % NR_KINDS;
		/* one beyond a multiple of the kinds: a prober */
		w[i].prober = reopen && i == n - 1 && n % NR_KINDS == 1;
		w[i].pinned = pinned;
		w[i].reopen = reopen;
		ASSERT_EQ(0, pthread_create(&w[i].thread, NULL, worker_fn,
					    &w[i]));
		w[i].started = true;
	}
}

static unsigned long total_ok(struct worker *w, int n)
{
	unsigned long sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum += atomic_load(&w[i].ok);
	return sum;
}

static void stop_workers(struct __test_metadata *_metadata,
			 struct worker *w, int n)
{
	int i;

	for (i = 0; i < n; i++)
		atomic_store(&w[i].stop, true);
	for (i = 0; i < n; i++) {
		if (!w[i].started)
			continue;
		pthread_join(w[i].thread, NULL);
		w[i].started = false;
		TH_LOG("%s %d (%s): %lu ok, %lu wrong, %lu nodev, %lu canceled, %lu failed lookups, %lu other (last %d)",
		       w[i].prober ? "prober" : "worker", i,
		       kinds[w[i].kind].generic, atomic_load(&w[i].ok),
		       w[i].mismatch, w[i].nodev, w[i].canceled, w[i].busy,
		       w[i].other, w[i].last_other);
		EXPECT_EQ(0UL, w[i].mismatch);
		EXPECT_EQ(0UL, w[i].other);
	}
}

/* ENODEV answers so far; the workers may be updating the counts. */
static unsigned long total_nodev(struct worker *w, int n)
{
	unsigned long sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum += __atomic_load_n(&w[i].nodev, __ATOMIC_RELAXED);
	return sum;
}

/* Wait until the workers complete @more further requests. */
static bool progress(struct worker *w, int n, unsigned long more, long ms)
{
	unsigned long want = total_ok(w, n) + more;
	long end = now_ms() + ms;

	while (total_ok(w, n) < want) {
		if (now_ms() > end)
			return false;
		usleep(50000);
	}
	return true;
}

/* ---- the tests ---- */

#define NR_WORKERS	6
#define NR_BACKLOG	24

FIXTURE(stress) {
	struct worker w[NR_BACKLOG];
	int nw;
};

FIXTURE_SETUP(stress)
{
	const char *ko = getenv("HSMCARD_KO");
	char bdf[64];

	self->nw = 0;
	if (!ko || access(ko, R_OK))
		SKIP(return, "HSMCARD_KO does not name the module file");
	if (card_bdf(bdf, sizeof(bdf)))
		SKIP(return, "no card bound to hsmcard");
	if (system("modprobe -q -a af_alg algif_skcipher algif_aead algif_hash"))
		TH_LOG("modprobe of the AF_ALG modules failed");
	/* A clean start: no template instance left on the card's algorithms. */
	ASSERT_EQ(0, module_reload_idle(""));
}

FIXTURE_TEARDOWN(stress)
{
	char bdf[64];

	stop_workers(_metadata, self->w, self->nw);
	/* Leave the module loaded with its defaults, the card bound. */
	if (card_bdf(bdf, sizeof(bdf)) || selftest_passed("cbc-aes-hsmcard") != 1)
		EXPECT_EQ(0, module_reload_idle(""));
}

static int stress_iters(void)
{
	const char *s = getenv("HSMCARD_STRESS_ITERS");

	return s && atoi(s) > 0 ? atoi(s) : 4;
}

/*
 * Unload and reload the module while the workers ask for the generic
 * algorithm names: they never see an error or a wrong result, and the card
 * serves them after each reload.
 */
TEST_F_TIMEOUT(stress, reload_under_load, 3600)
{
	int i, k, iters = stress_iters();
	unsigned long long errors0[NR_KINDS];
	long t0;
	int ret;

	self->nw = NR_WORKERS + 1;
	atomic_store(&gate_closed, false);
	start_workers(_metadata, self->w, self->nw, false, true);
	ASSERT_TRUE(progress(self->w, self->nw, 20, 60000));
	for (i = 0; i < iters; i++) {
		t0 = now_ms();
		/*
		 * Transforms hold the module: let the workers finish their
		 * requests and wait; the prober keeps looking the names up
		 * (and so racing with the unload) all along.
		 */
		atomic_store(&gate_closed, true);
		ret = module_unload(120000);
		ASSERT_EQ(0, ret) TH_LOG("reload %d: unload: %s", i,
					 strerror(-ret));
		atomic_store(&gate_closed, false);
		EXPECT_EQ(-ENOENT, selftest_passed(kinds[K_CBC].driver));
		/* the software implementations carry on alone */
		ASSERT_TRUE(progress(self->w, self->nw, 10, 60000));
		ret = module_load("");
		ASSERT_EQ(0, ret) TH_LOG("reload %d: load: %s", i,
					 strerror(-ret));
		ASSERT_TRUE(wait_algs(600000)) TH_LOG("reload %d", i);
		TH_LOG("reload %d: %ld ms", i, now_ms() - t0);
	}
	/*
	 * The card does the work again (new transforms pick its drivers).
	 * The counters include the self-tests' requests, some of which fail
	 * on purpose (the debug kernel's fuzz tests feed forged tags): only
	 * errors from now on count.
	 */
	for (k = 0; k < NR_KINDS; k++)
		errors0[k] = card_stats(kinds[k].driver).errors;
	t0 = now_ms();
	for (k = 0; k < NR_KINDS; k++) {
		while (card_stats(kinds[k].driver).requests == 0 &&
		       now_ms() - t0 < 60000)
			usleep(100000);
		EXPECT_LT(0ULL, card_stats(kinds[k].driver).requests)
			TH_LOG("%s", kinds[k].driver);
		EXPECT_EQ(errors0[k], card_stats(kinds[k].driver).errors)
			TH_LOG("%s", kinds[k].driver);
	}
	stop_workers(_metadata, self->w, self->nw);
	for (i = 0; i < self->nw; i++) {
		EXPECT_EQ(0UL, self->w[i].nodev);
		EXPECT_LT(0UL, atomic_load(&self->w[i].ok));
	}
}

/*
 * 2-entry I/O queues and many workers: requests of every kind are
 * backlogged; three controller resets drop what the card holds.
 */
TEST_F_TIMEOUT(stress, reset_with_backlog, 1800)
{
	char bdf[64], path[160], before[32], after[32], state[32];
	unsigned long long backlogged = 0;
	int i, k;

	ASSERT_EQ(0, module_reload_idle("io_queue_depth=2"));
	ASSERT_EQ(0, card_bdf(bdf, sizeof(bdf)));
	self->nw = NR_BACKLOG;
	start_workers(_metadata, self->w, self->nw, true, false);
	ASSERT_TRUE(progress(self->w, self->nw, 50, 120000));

	snprintf(path, sizeof(path), DRV_DIR "/%s/resets", bdf);
	ASSERT_EQ(0, read_str(path, before, sizeof(before)));
	snprintf(path, sizeof(path), DRV_DIR "/%s/reset_controller", bdf);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, write_str(path, "1"));
		ASSERT_TRUE(progress(self->w, self->nw, 10, 120000));
	}
	snprintf(path, sizeof(path), DRV_DIR "/%s/resets", bdf);
	ASSERT_EQ(0, read_str(path, after, sizeof(after)));
	EXPECT_EQ(atoi(before) + 3, atoi(after));
	snprintf(path, sizeof(path), DRV_DIR "/%s/state", bdf);
	ASSERT_EQ(0, read_str(path, state, sizeof(state)));
	EXPECT_STREQ("live", state);
	/* still working after the last reset */
	ASSERT_TRUE(progress(self->w, self->nw, 50, 120000));
	stop_workers(_metadata, self->w, self->nw);
	for (i = 0; i < self->nw; i++)
		EXPECT_EQ(0UL, self->w[i].nodev);
	for (k = 0; k < NR_KINDS; k++) {
		unsigned long long b = card_stats(kinds[k].driver).backlogged;

		TH_LOG("%s: %llu requests, %llu backlogged", kinds[k].driver,
		       card_stats(kinds[k].driver).requests, b);
		backlogged += b;
	}
	EXPECT_LT(0ULL, backlogged);
	EXPECT_EQ(0, module_reload_idle(""));
}

/*
 * Unbind the card under AF_ALG sockets bound to its algorithms, with their
 * requests in flight; then bind it again.
 */
TEST_F_TIMEOUT(stress, unbind_open_tfms, 900)
{
	unsigned long nodev = 0;
	char bdf[64];
	long t0;
	int i;

	ASSERT_EQ(0, card_bdf(bdf, sizeof(bdf)));
	self->nw = NR_WORKERS;
	start_workers(_metadata, self->w, self->nw, true, false);
	ASSERT_TRUE(progress(self->w, self->nw, 20, 60000));

	t0 = now_ms();
	ASSERT_EQ(0, write_str(DRV_DIR "/unbind", bdf));
	TH_LOG("unbind under %d busy sockets: %ld ms", self->nw,
	       now_ms() - t0);
	EXPECT_GT(60000, now_ms() - t0);
	/*
	 * The open transforms now fail cleanly, and only with ENODEV.  Wait
	 * for the first ENODEV with a deadline rather than a fixed sleep: a
	 * loaded host may not run the workers for a while.
	 */
	t0 = now_ms();
	while (!total_nodev(self->w, self->nw) && now_ms() - t0 < 20000)
		usleep(20000);
	stop_workers(_metadata, self->w, self->nw);
	for (i = 0; i < self->nw; i++)
		nodev += self->w[i].nodev;
	EXPECT_LT(0UL, nodev);

	ASSERT_EQ(0, write_str(DRV_DIR "/bind", bdf));
	ASSERT_TRUE(wait_algs(600000));
	self->nw = NR_WORKERS;
	start_workers(_metadata, self->w, self->nw, true, false);
	ASSERT_TRUE(progress(self->w, self->nw, 20, 60000));
	stop_workers(_metadata, self->w, self->nw);
	for (i = 0; i < self->nw; i++)
		EXPECT_EQ(0UL, self->w[i].nodev);
}

TEST_HARNESS_MAIN
