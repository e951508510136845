// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsm-bench: throughput and latency of the whole hsmcard stack (library,
 * driver, card) from user space, per operation:
 *
 *   ioctl  one-shot calls (hsm_sign(), hsm_encrypt(), hsm_hmac()): one
 *          system call and one card command per operation, one in flight;
 *   ring   the command ring: `batch` jobs prepared and handed over with one
 *          hsm_submit(), `depth` jobs kept in flight (a new batch goes in
 *          as soon as `batch` slots are free), completions reaped from the
 *          shared completion ring.
 *
 * Every completion's status and output length is checked; a sample of the
 * outputs of every point is checked independently (signatures against the
 * exported public key with OpenSSL; AES-GCM and HMAC by a round trip on
 * the card, and once per run with imported known keys against OpenSSL).
 * Any failure is reported and makes the exit status 1.
 *
 * Documentation/hsmcard/bench.rst describes the figures; `make bench`
 * puts them beside the firmware core's raw rate (hsm-bench-engine).
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <hsmcard.h>

#define MAX_BATCHES	16
#define MAX_DEPTHS	8
#define MAX_SAMPLES	8
#define MAX_IN		4096
#define MAX_OUT		(4096 + 16)
#define SIG_CAP		512
#define WAIT_MS		10000

enum op_kind { K_SIGN, K_GCM, K_HMAC };

struct bench_op {
	const char *name;	/* as in hsm-bench-engine */
	enum op_kind kind;
	uint16_t key_type;
	uint16_t bits;
	uint32_t uses;
	uint16_t mech;
	uint16_t mparam;
	uint32_t in_len;
	uint32_t out_cap;
	uint32_t out_len;	/* expected output length; 0: up to out_cap */
	bool want;
	uint64_t handle;
	EVP_PKEY *pub;		/* signatures: exported public key */
};

#define OP(n, k, t, b, u, m, mp, il, oc, ol)				\
	{ .name = n, .kind = k, .key_type = t, .bits = b, .uses = u,	\
	  .mech = m, .mparam = mp, .in_len = il, .out_cap = oc,		\
	  .out_len = ol }
#define SV	(HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY)
#define ED	(HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT)

static struct bench_op ops[] = {
	OP("rsa2048-sign-sha256", K_SIGN, HSMCARD_KEY_RSA, 2048, SV,
	   HSMCARD_MECH_RSA_PKCS1, HSMCARD_MECH_SHA256, 32, SIG_CAP, 256),
	OP("ecdsa-p256-sign-sha256", K_SIGN, HSMCARD_KEY_EC_P256, 256, SV,
	   HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA256, 32, SIG_CAP, 0),
	OP("ed25519-sign", K_SIGN, HSMCARD_KEY_ED25519, 0, SV,
	   HSMCARD_MECH_EDDSA, 0, 32, SIG_CAP, 64),
	OP("aes256-gcm-enc-64", K_GCM, HSMCARD_KEY_AES, 256, ED,
	   HSMCARD_MECH_AES_GCM, 0, 64, 64 + 16, 64 + 16),
	OP("aes256-gcm-enc-4096", K_GCM, HSMCARD_KEY_AES, 256, ED,
	   HSMCARD_MECH_AES_GCM, 0, 4096, 4096 + 16, 4096 + 16),
	OP("hmac-sha256-32", K_HMAC, HSMCARD_KEY_HMAC, 256, SV,
	   HSMCARD_MECH_HMAC_SHA256, 0, 32, 64, 32),
};

#define NR_OPS	(sizeof(ops) / sizeof(ops[0]))

/* One output kept for checking after the point. */
struct sample {
	uint8_t in[MAX_IN];
	uint8_t out[MAX_OUT];
	uint8_t iv[16];
	uint32_t out_len;
};

/* Results of one measured point. */
struct point {
	const struct bench_op *op;
	const char *path;	/* "ioctl" or "ring" */
	unsigned int batch, depth;
	unsigned long done;	/* completions reaped (good or bad) */
	unsigned long errors;	/* bad status or output length */
	int first_err;		/* status of the first failed job */
	double secs;
	double rate;		/* good ops per second */
	double p50_us, p99_us;
	unsigned int checked, check_fail;
	bool unchecked;		/* no output could be checked */
	struct sample samples[MAX_SAMPLES];
	unsigned int nr_samples;
	/* latencies, microseconds */
	float *lat;
	size_t nr_lat, cap_lat;
};

static const char *device = "/dev/hsmcard0";
static double seconds = 2.0;
static double warmup = 0.2;
static unsigned int batches[MAX_BATCHES] = { 1, 8, 64, 256 };
static unsigned int nr_batches = 4;
static unsigned int depth_mult[MAX_DEPTHS] = { 1, 2 };
static unsigned int nr_depths = 2;
static bool json, do_ioctl = true, do_ring = true;
static long max_depth = -1;	/* -1: the card's I/O queue depth - 1 */
static unsigned int io_depth;	/* the driver's I/O queue depth, 0: unknown */
static uint64_t iv_counter;
static uint8_t iv_base[16];
static unsigned long total_errors, total_check_fail;
static bool first_json_point = true;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn)) die(const char *what, int err)
{
	if (err)
		fprintf(stderr, "hsm-bench: %s: %s\n", what, hsm_strerror(err));
	else
		fprintf(stderr, "hsm-bench: %s\n", what);
	exit(2);
}

static void *xzalloc(size_t len)
{
	void *p = calloc(1, len);

	if (!p)
		die("out of memory", 0);
	return p;
}

/* A fresh GCM nonce (iv[0..11]) for every operation of the run. */
static void next_iv(uint8_t iv[16])
{
	uint64_t c = ++iv_counter;
	int i;

	memset(iv, 0, 16);
	memcpy(iv, iv_base, 4);
	for (i = 0; i < 8; i++)
		iv[4 + i] = c >> (8 * i);
}

static void lat_add(struct point *pt, double us)
{
	if (pt->nr_lat == pt->cap_lat) {
		size_t cap = pt->cap_lat ? pt->cap_lat * 2 : 4096;
		float *l = realloc(pt->lat, cap * sizeof(*l));

		if (!l)
			die("out of memory", 0);
		pt->lat = l;
		pt->cap_lat = cap;
	}
	pt->lat[pt->nr_lat++] = us;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

static double percentile(const struct point *pt, double p)
{
	size_t i;

	if (!pt->nr_lat)
		return 0;
	i = (size_t)(p * (pt->nr_lat - 1) + 0.5);
	return pt->lat[i];
}

/* Which completions of a point to keep: spread over the whole run. */
static bool sample_wanted(const struct point *pt, unsigned long ordinal)
{
	static const unsigned long at[MAX_SAMPLES] = {
		0, 1, 7, 50, 300, 2000, 15000, 100000
	};

	return pt->nr_samples < MAX_SAMPLES && ordinal == at[pt->nr_samples];
}

static void sample_add(struct point *pt, const void *in, const void *out,
		       uint32_t out_len, const uint8_t *iv)
{
	struct sample *s = &pt->samples[pt->nr_samples++];

	memcpy(s->in, in, pt->op->in_len);
	if (out_len > sizeof(s->out))
		out_len = sizeof(s->out);
	memcpy(s->out, out, out_len);
	s->out_len = out_len;
	if (iv)
		memcpy(s->iv, iv, 16);
}

/* Status and length of one completed operation; counts failures. */
static bool job_ok(struct point *pt, int status, uint32_t len)
{
	const struct bench_op *op = pt->op;

	if (!status && (op->out_len ? len == op->out_len :
				      len > 0 && len <= op->out_cap))
		return true;
	if (!pt->errors)
		pt->first_err = status ? status : -EMSGSIZE;
	pt->errors++;
	return false;
}

/* ---- independent checks of the kept outputs ---- */

static bool ossl_verify(EVP_PKEY *pk, const EVP_MD *md, const void *msg,
			size_t msg_len, const void *sig, size_t sig_len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	bool ok = false;

	if (m && EVP_DigestVerifyInit(m, NULL, md, NULL, pk) == 1)
		ok = EVP_DigestVerify(m, sig, sig_len, msg, msg_len) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

static bool check_sample(struct hsm_ctx *ctx, const struct bench_op *op,
			 const struct sample *s)
{
	uint8_t buf[MAX_OUT];
	size_t len = sizeof(buf);

	switch (op->kind) {
	case K_SIGN:
		return ossl_verify(op->pub,
				   op->mparam ? EVP_sha256() : NULL,
				   s->in, op->in_len, s->out, s->out_len);
	case K_GCM:
		/* The key never leaves the card: decrypt there. */
		if (hsm_decrypt(ctx, op->handle, op->mech, 0, s->iv, 0,
				s->out, s->out_len, buf, &len))
			return false;
		return len == op->in_len && !memcmp(buf, s->in, len);
	case K_HMAC:
		if (hsm_hmac(ctx, op->handle, op->mech, s->in, op->in_len,
			     buf, &len))
			return false;
		return len == s->out_len && !memcmp(buf, s->out, len);
	}
	return false;
}

static void check_samples(struct hsm_ctx *ctx, struct point *pt)
{
	unsigned int i;

	for (i = 0; i < pt->nr_samples; i++) {
		pt->checked++;
		if (!check_sample(ctx, pt->op, &pt->samples[i]))
			pt->check_fail++;
	}
}

/* ---- the one-shot ioctl path ---- */

static int ioctl_op(struct hsm_ctx *ctx, const struct bench_op *op,
		    const uint8_t *in, uint8_t *out, size_t *out_len,
		    uint8_t iv[16])
{
	*out_len = op->out_cap;
	switch (op->kind) {
	case K_SIGN:
		return hsm_sign(ctx, op->handle, op->mech, op->mparam, in,
				op->in_len, out, out_len);
	case K_GCM:
		next_iv(iv);
		return hsm_encrypt(ctx, op->handle, op->mech, 0, iv, 0, in,
				   op->in_len, out, out_len);
	case K_HMAC:
		return hsm_hmac(ctx, op->handle, op->mech, in, op->in_len,
				out, out_len);
	}
	return -EINVAL;
}

static void run_ioctl(struct hsm_ctx *ctx, struct point *pt)
{
	const struct bench_op *op = pt->op;
	uint8_t in[MAX_IN], out[MAX_OUT], iv[16];
	double t0, t1, start, end;
	size_t len;
	int ret;

	RAND_bytes(in, op->in_len);
	/* warm-up, not counted */
	end = now() + warmup;
	do {
		ret = ioctl_op(ctx, op, in, out, &len, iv);
	} while (!ret && now() < end);

	start = now();
	end = start + seconds;
	t1 = start;
	do {
		t0 = t1;
		ret = ioctl_op(ctx, op, in, out, &len, iv);
		t1 = now();
		if (job_ok(pt, ret, len) && sample_wanted(pt, pt->done))
			sample_add(pt, in, out, len, iv);
		pt->done++;
		lat_add(pt, (t1 - t0) * 1e6);
	} while (t1 < end);
	pt->secs = t1 - start;
}

/* ---- the ring path ---- */

struct ring_run {
	struct hsm_ctx *ctx;
	uint32_t in_off, out_off;	/* slot 0; slots follow */
	uint32_t in_stride, out_stride;
	double *t_sub;			/* per slot: submit time */
	uint8_t (*ivs)[16];		/* per slot: GCM nonce */
	unsigned int *free_slots;
	unsigned int nr_free;
	unsigned int depth;
};

static void ring_prep(struct ring_run *r, const struct bench_op *op,
		      struct hsmcard_ring_sqe *sqe, unsigned int slot)
{
	uint32_t in = r->in_off + slot * r->in_stride;
	uint32_t out = r->out_off + slot * r->out_stride;

	switch (op->kind) {
	case K_SIGN:
		hsm_prep_sign(sqe, op->handle, op->mech, op->mparam, in,
			      op->in_len, out, op->out_cap, slot);
		break;
	case K_GCM:
		next_iv(r->ivs[slot]);
		hsm_prep_encrypt(sqe, op->handle, op->mech, 0, r->ivs[slot], 0,
				 in, op->in_len, out, op->out_cap, slot);
		break;
	case K_HMAC:
		hsm_prep_mac(sqe, op->handle, op->mech, in, op->in_len, out,
			     op->out_cap, slot);
		break;
	}
}

/*
 * Submit one batch of @batch jobs (the caller made sure that many slots
 * are free).  Entries the kernel does not take at once stay queued in the
 * submission ring; hsm_wait_cqe() hands them over while it waits.
 */
static int ring_submit_batch(struct ring_run *r, const struct bench_op *op,
			     unsigned int batch)
{
	unsigned int i, slot;
	double t;
	int ret;

	for (i = 0; i < batch; i++) {
		struct hsmcard_ring_sqe *sqe = hsm_get_sqe(r->ctx);

		if (!sqe)
			return -EOVERFLOW;
		slot = r->free_slots[--r->nr_free];
		ring_prep(r, op, sqe, slot);
	}
	t = now();
	/* all jobs of a batch go in with the same system call */
	for (i = 0; i < batch; i++)
		r->t_sub[r->free_slots[r->nr_free + i]] = t;
	ret = hsm_submit(r->ctx);
	return ret < 0 && ret != -EAGAIN ? ret : 0;
}

/*
 * Wait for at least one completion and reap all that are there.  With
 * @pt NULL (warm-up) nothing is recorded.  Returns the number reaped or a
 * negative errno.
 */
static int ring_reap(struct ring_run *r, struct point *pt)
{
	struct hsmcard_ring_cqe *cqe;
	unsigned int n = 0, slot;
	double t;
	int ret;

	ret = hsm_wait_cqe(r->ctx, &cqe, WAIT_MS);
	if (ret == -ETIMEDOUT) {
		struct hsm_ring_counts c;

		/* say where the overdue job is */
		if (!hsm_ring_counts(r->ctx, &c))
			fprintf(stderr,
				"hsm-bench: no completion in %d ms: %u jobs queued, %u in the kernel or card, %u completions unread, %u of %u slots busy\n",
				WAIT_MS, c.queued, c.in_flight, c.unread,
				r->depth - r->nr_free, r->depth);
		/* the driver's view of its queues, when debugfs is there */
		if (system("grep -H . /sys/kernel/debug/hsmcard/*/queue* >&2 2>/dev/null"))
			fprintf(stderr, "hsm-bench: no queue statistics in debugfs\n");
	}
	if (ret)
		return ret;
	t = now();
	do {
		/* the cookie is the job's slot */
		if (cqe->cookie >= r->depth || r->nr_free >= r->depth)
			return -EPROTO;
		slot = cqe->cookie;
		if (pt) {
			uint32_t out = r->out_off + slot * r->out_stride;
			uint32_t in = r->in_off + slot * r->in_stride;

			if (job_ok(pt, cqe->status, cqe->len) &&
			    sample_wanted(pt, pt->done))
				sample_add(pt, hsm_arena_ptr(r->ctx, in),
					   hsm_arena_ptr(r->ctx, out),
					   cqe->len, r->ivs[slot]);
			pt->done++;
			lat_add(pt, (t - r->t_sub[slot]) * 1e6);
		}
		r->free_slots[r->nr_free++] = slot;
		hsm_cqe_seen(r->ctx, cqe);
		n++;
	} while (!hsm_peek_cqe(r->ctx, &cqe));
	return n;
}

static unsigned int roundup_pow2(unsigned int v)
{
	unsigned int p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* One phase (warm-up or measurement) of a ring point. */
static int ring_phase(struct ring_run *r, const struct bench_op *op,
		      unsigned int batch, unsigned int depth, double secs,
		      struct point *pt)
{
	double start = now(), end = start + secs;
	int ret;

	for (;;) {
		bool more = now() < end;

		while (more && r->nr_free >= batch) {
			ret = ring_submit_batch(r, op, batch);
			if (ret)
				return ret;
		}
		if (r->nr_free == depth) {
			if (!more)
				break;
			continue;
		}
		ret = ring_reap(r, pt);
		if (ret < 0)
			return ret;
	}
	if (pt)
		pt->secs = now() - start;
	return 0;
}

static int run_ring(struct point *pt, unsigned int batch, unsigned int depth,
		    bool *setup_failed)
{
	const struct bench_op *op = pt->op;
	unsigned int entries = roundup_pow2(depth), i;
	struct ring_run r;
	size_t arena;
	int64_t off;
	int ret;

	memset(&r, 0, sizeof(r));
	r.in_stride = (op->in_len + 63) & ~63U;
	r.out_stride = (op->out_cap + 63) & ~63U;
	arena = (size_t)depth * (r.in_stride + r.out_stride) + 4096;
	r.ctx = hsm_open_path(device);
	if (!r.ctx)
		die("cannot open the card", -errno);
	ret = hsm_ring_setup(r.ctx, entries, arena);
	if (ret) {
		*setup_failed = true;
		goto out;
	}
	ret = -E2BIG;
	if (op->in_len > hsm_max_job_len(r.ctx) ||
	    op->out_cap > hsm_max_job_len(r.ctx)) {
		*setup_failed = true;
		goto out;
	}
	off = hsm_arena_alloc(r.ctx, (size_t)depth * r.in_stride, 64);
	if (off < 0)
		die("arena too small", (int)off);
	r.in_off = off;
	off = hsm_arena_alloc(r.ctx, (size_t)depth * r.out_stride, 64);
	if (off < 0)
		die("arena too small", (int)off);
	r.out_off = off;
	RAND_bytes(hsm_arena_ptr(r.ctx, r.in_off),
		   (int)((size_t)depth * r.in_stride));
	r.t_sub = xzalloc(depth * sizeof(*r.t_sub));
	r.ivs = xzalloc(depth * sizeof(*r.ivs));
	r.free_slots = xzalloc(depth * sizeof(*r.free_slots));
	for (i = 0; i < depth; i++)
		r.free_slots[i] = depth - 1 - i;
	r.nr_free = depth;
	r.depth = depth;

	ret = ring_phase(&r, op, batch, depth, warmup, NULL);
	if (!ret)
		ret = ring_phase(&r, op, batch, depth, seconds, pt);
	if (!ret)
		check_samples(r.ctx, pt);
	free(r.t_sub);
	free(r.ivs);
	free(r.free_slots);
out:
	hsm_close(r.ctx);
	return ret;
}

/* ---- known-answer checks with imported keys against OpenSSL ---- */

static bool kat_gcm(struct hsm_ctx *ctx, struct hsm_ctx *rctx)
{
	uint8_t key[32], pt[64], iv[16], want[80], got[80];
	struct hsmcard_ring_cqe *cqe;
	EVP_CIPHER_CTX *c;
	uint64_t h;
	size_t len = sizeof(got);
	int n = 0, n2 = 0;
	int64_t in_off, out_off;
	bool ok;

	RAND_bytes(key, sizeof(key));
	RAND_bytes(pt, sizeof(pt));
	next_iv(iv);
	c = EVP_CIPHER_CTX_new();
	ok = c && EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, iv, NULL) &&
	     EVP_EncryptUpdate(c, want, &n, pt, sizeof(pt)) &&
	     EVP_EncryptFinal_ex(c, want + n, &n2) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, want + 64);
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		die("OpenSSL AES-GCM failed", 0);
	if (hsm_key_import(ctx, HSMCARD_KEY_AES, 256,
			   HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT, key,
			   sizeof(key), &h))
		return false;
	ok = !hsm_encrypt(ctx, h, HSMCARD_MECH_AES_GCM, 0, iv, 0, pt,
			  sizeof(pt), got, &len) &&
	     len == sizeof(want) && !memcmp(got, want, len);
	/* and through the ring */
	hsm_arena_reset(rctx);
	in_off = hsm_arena_alloc(rctx, sizeof(pt), 64);
	out_off = hsm_arena_alloc(rctx, sizeof(want), 64);
	if (ok && in_off >= 0 && out_off >= 0) {
		memcpy(hsm_arena_ptr(rctx, in_off), pt, sizeof(pt));
		hsm_prep_encrypt(hsm_get_sqe(rctx), h, HSMCARD_MECH_AES_GCM, 0,
				 iv, 0, in_off, sizeof(pt), out_off,
				 sizeof(want), 7);
		ok = hsm_submit(rctx) >= 0 && !hsm_wait_cqe(rctx, &cqe, WAIT_MS);
		if (ok) {
			ok = cqe->cookie == 7 && !cqe->status &&
			     cqe->len == sizeof(want) &&
			     !memcmp(hsm_arena_ptr(rctx, out_off), want,
				     sizeof(want));
			hsm_cqe_seen(rctx, cqe);
		}
	} else {
		ok = false;
	}
	hsm_key_destroy(ctx, h);
	return ok;
}

static bool kat_hmac(struct hsm_ctx *ctx, struct hsm_ctx *rctx)
{
	uint8_t key[32], msg[32], want[32], got[64];
	struct hsmcard_ring_cqe *cqe;
	unsigned int wl = 0;
	size_t len = sizeof(got);
	int64_t in_off, out_off;
	uint64_t h;
	bool ok;

	RAND_bytes(key, sizeof(key));
	RAND_bytes(msg, sizeof(msg));
	if (!HMAC(EVP_sha256(), key, sizeof(key), msg, sizeof(msg), want, &wl))
		die("OpenSSL HMAC failed", 0);
	if (hsm_key_import(ctx, HSMCARD_KEY_HMAC, 256,
			   HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, key,
			   sizeof(key), &h))
		return false;
	ok = !hsm_hmac(ctx, h, HSMCARD_MECH_HMAC_SHA256, msg, sizeof(msg),
		       got, &len) && len == wl && !memcmp(got, want, wl);
	hsm_arena_reset(rctx);
	in_off = hsm_arena_alloc(rctx, sizeof(msg), 64);
	out_off = hsm_arena_alloc(rctx, sizeof(got), 64);
	if (ok && in_off >= 0 && out_off >= 0) {
		memcpy(hsm_arena_ptr(rctx, in_off), msg, sizeof(msg));
		hsm_prep_mac(hsm_get_sqe(rctx), h, HSMCARD_MECH_HMAC_SHA256,
			     in_off, sizeof(msg), out_off, sizeof(got), 9);
		ok = hsm_submit(rctx) >= 0 && !hsm_wait_cqe(rctx, &cqe, WAIT_MS);
		if (ok) {
			ok = cqe->cookie == 9 && !cqe->status &&
			     cqe->len == wl &&
			     !memcmp(hsm_arena_ptr(rctx, out_off), want, wl);
			hsm_cqe_seen(rctx, cqe);
		}
	} else {
		ok = false;
	}
	hsm_key_destroy(ctx, h);
	return ok;
}

/* ---- output ---- */

static void print_point(const struct point *pt)
{
	if (json) {
		printf("%s\n  {\"op\": \"%s\", \"path\": \"%s\", \"batch\": %u, "
		       "\"depth\": %u, \"ops\": %lu, \"seconds\": %.3f, "
		       "\"ops_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
		       "\"errors\": %lu, \"first_error\": %d, "
		       "\"checked\": %u, \"check_failures\": %u}",
		       first_json_point ? "" : ",", pt->op->name, pt->path,
		       pt->batch, pt->depth, pt->done, pt->secs, pt->rate,
		       pt->p50_us, pt->p99_us, pt->errors, pt->first_err,
		       pt->checked, pt->check_fail + pt->unchecked);
		first_json_point = false;
	} else {
		char checks[24];

		snprintf(checks, sizeof(checks), "%u/%u",
			 pt->checked - pt->check_fail, pt->checked);
		printf("%-24s %-5s %5u %5u %10.0f %10.1f %10.1f %7lu %9s",
		       pt->op->name, pt->path, pt->batch, pt->depth, pt->rate,
		       pt->p50_us, pt->p99_us, pt->errors, checks);
		if (pt->errors)
			printf("  first error: %s", hsm_strerror(pt->first_err));
		if (pt->check_fail)
			printf("  OUTPUT CHECK FAILED");
		if (pt->unchecked)
			printf("  NO OUTPUT CHECKED");
		printf("\n");
	}
	fflush(stdout);
}

static void finish_point(struct point *pt)
{
	qsort(pt->lat, pt->nr_lat, sizeof(*pt->lat), cmp_float);
	pt->p50_us = percentile(pt, 0.50);
	pt->p99_us = percentile(pt, 0.99);
	pt->rate = pt->secs > 0 ? (pt->done - pt->errors) / pt->secs : 0;
	total_errors += pt->errors;
	total_check_fail += pt->check_fail;
	/* every point must have produced something to check */
	if (!pt->checked) {
		pt->unchecked = true;
		total_check_fail++;
	}
	print_point(pt);
	free(pt->lat);
	pt->lat = NULL;
}

/* ---- setup ---- */

/* The driver's I/O queue depth (sysfs queue_depth of the PCI device). */
static unsigned int read_io_depth(const char *path)
{
	char sys[96];
	struct stat st;
	unsigned int v = 0;
	FILE *f;

	if (stat(path, &st) || !S_ISCHR(st.st_mode))
		return 0;
	snprintf(sys, sizeof(sys), "/sys/dev/char/%u:%u/device/queue_depth",
		 major(st.st_rdev), minor(st.st_rdev));
	f = fopen(sys, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%u", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static void make_keys(struct hsm_ctx *ctx)
{
	char label[HSMCARD_LABEL_LEN];
	uint8_t der[2048];
	unsigned int i, j;
	int ret;

	for (i = 0; i < NR_OPS; i++) {
		struct bench_op *op = &ops[i];
		const unsigned char *p = der;
		size_t len = sizeof(der);

		if (!op->want)
			continue;
		/* the two GCM sizes share one key */
		for (j = 0; j < i; j++)
			if (ops[j].want && ops[j].key_type == op->key_type &&
			    ops[j].bits == op->bits)
				op->handle = ops[j].handle;
		if (op->handle)
			continue;
		/* a label names one key per partition: make it ours */
		snprintf(label, sizeof(label), "hsm-bench-%d-%s", (int)getpid(),
			 op->name);
		ret = hsm_keygen(ctx, op->key_type, op->bits, op->uses,
				 HSMCARD_KEYF_SESSION, label, &op->handle);
		if (ret)
			die("hsm_keygen failed", ret);
		if (op->kind != K_SIGN)
			continue;
		ret = hsm_key_export_public(ctx, op->handle, der, &len);
		if (ret)
			die("hsm_key_export_public failed", ret);
		op->pub = d2i_PUBKEY(NULL, &p, len);
		if (!op->pub)
			die("exported public key does not parse", 0);
	}
}

static void destroy_keys(struct hsm_ctx *ctx)
{
	unsigned int i, j;

	for (i = 0; i < NR_OPS; i++) {
		bool dup = false;

		for (j = 0; j < i; j++)
			dup |= ops[j].handle == ops[i].handle;
		if (ops[i].handle && !dup)
			hsm_key_destroy(ctx, ops[i].handle);
		EVP_PKEY_free(ops[i].pub);
	}
}

static unsigned int parse_list(const char *arg, unsigned int *out,
			       unsigned int max, unsigned int lo,
			       unsigned int hi, const char *what)
{
	char *dup = strdup(arg), *tok, *save = NULL, *end;
	unsigned int n = 0;
	unsigned long v;

	if (!dup)
		die("out of memory", 0);
	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		v = strtoul(tok, &end, 10);
		if (*end || v < lo || v > hi || n == max) {
			fprintf(stderr, "hsm-bench: bad %s list '%s' (%u..%u, at most %u values)\n",
				what, arg, lo, hi, max);
			exit(2);
		}
		out[n++] = v;
	}
	free(dup);
	if (!n) {
		fprintf(stderr, "hsm-bench: empty %s list\n", what);
		exit(2);
	}
	return n;
}

static void parse_ops(const char *arg)
{
	char *dup = strdup(arg), *tok, *save = NULL;
	unsigned int i;

	if (!dup)
		die("out of memory", 0);
	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < NR_OPS; i++)
			if (!strcmp(tok, ops[i].name) || !strcmp(tok, "all"))
				ops[i].want = true;
		if (strcmp(tok, "all")) {
			for (i = 0; i < NR_OPS && strcmp(tok, ops[i].name); i++)
				;
			if (i == NR_OPS) {
				fprintf(stderr, "hsm-bench: unknown operation '%s' (see --help)\n",
					tok);
				exit(2);
			}
		}
	}
	free(dup);
}

static void usage(FILE *f)
{
	unsigned int i;

	fprintf(f,
		"usage: hsm-bench [options]\n"
		"\n"
		"Throughput and latency of the hsmcard stack from user space: the\n"
		"one-shot ioctl path (one call per operation) and the command ring\n"
		"(BATCH jobs per hsm_submit(), DEPTH jobs in flight).  Keys are\n"
		"generated in the card.  Every completion's status is checked and\n"
		"a sample of outputs of every point is verified (signatures with\n"
		"OpenSSL against the exported public key).\n"
		"\n"
		"  -d, --device PATH     card to use (default /dev/hsmcard0)\n"
		"  -s, --seconds S       measured time per point (default 2)\n"
		"  -w, --warmup S        unmeasured warm-up per point (default 0.2)\n"
		"  -o, --ops LIST        comma-separated operations, or all (default)\n"
		"  -b, --batches LIST    ring batch sizes (default 1,8,64,256)\n"
		"  -q, --depths LIST     jobs in flight as multiples of the batch\n"
		"                        (default 1,2)\n"
		"  -m, --max-depth N     cap on jobs in flight, never below the batch\n"
		"                        (default: the driver's I/O queue depth - 1,\n"
		"                        so that no job waits for a queue slot; 0: the\n"
		"                        largest ring, %u)\n"
		"      --no-ioctl        skip the one-shot ioctl path\n"
		"      --no-ring         skip the ring path\n"
		"  -j, --json            JSON on stdout instead of the table\n"
		"  -h, --help            this text\n"
		"\n"
		"Columns: ops/s counts successful operations; p50/p99 are latencies\n"
		"in microseconds (ioctl: one call; ring: from the hsm_submit() of the\n"
		"job's batch to the reaping of its completion); checks = sampled\n"
		"outputs verified / sampled.\n"
		"Exit status: 0 all good, 1 failed operations or outputs, 2 usage\n"
		"or setup error.\n"
		"\n"
		"operations:", HSMCARD_RING_MAX_ENTRIES);
	for (i = 0; i < NR_OPS; i++)
		fprintf(f, " %s", ops[i].name);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "ops", required_argument, NULL, 'o' },
		{ "batches", required_argument, NULL, 'b' },
		{ "depths", required_argument, NULL, 'q' },
		{ "max-depth", required_argument, NULL, 'm' },
		{ "no-ioctl", no_argument, NULL, 'I' },
		{ "no-ring", no_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct hsm_ctx *ctx, *rctx;
	struct hsmcard_info info;
	bool any = false, kat_ok = true;
	unsigned int i, b, d;
	char *end;
	int c, ret;

	while ((c = getopt_long(argc, argv, "d:s:w:o:b:q:m:jh", lopts,
				NULL)) != -1) {
		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 's':
		case 'w':
			{
				double v = strtod(optarg, &end);

				if (*end || v < (c == 's' ? 0.01 : 0) ||
				    v > 3600) {
					fprintf(stderr, "hsm-bench: bad --%s\n",
						c == 's' ? "seconds" : "warmup");
					return 2;
				}
				if (c == 's')
					seconds = v;
				else
					warmup = v;
			}
			break;
		case 'o':
			parse_ops(optarg);
			break;
		case 'b':
			nr_batches = parse_list(optarg, batches, MAX_BATCHES, 1,
						HSMCARD_RING_MAX_ENTRIES,
						"batch");
			break;
		case 'q':
			nr_depths = parse_list(optarg, depth_mult, MAX_DEPTHS,
					       1, HSMCARD_RING_MAX_ENTRIES,
					       "depth");
			break;
		case 'm':
			max_depth = strtol(optarg, &end, 10);
			if (*end || max_depth < 0 ||
			    max_depth > HSMCARD_RING_MAX_ENTRIES) {
				fprintf(stderr, "hsm-bench: bad --max-depth\n");
				return 2;
			}
			if (!max_depth)
				max_depth = HSMCARD_RING_MAX_ENTRIES;
			break;
		case 'I':
			do_ioctl = false;
			break;
		case 'R':
			do_ring = false;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < NR_OPS; i++)
		any |= ops[i].want;
	for (i = 0; i < NR_OPS && !any; i++)
		ops[i].want = true;

	ctx = hsm_open_path(device);
	if (!ctx)
		die(device, -errno);
	ret = hsm_info(ctx, &info);
	if (ret)
		die("hsm_info failed", ret);
	RAND_bytes(iv_base, sizeof(iv_base));
	io_depth = read_io_depth(device);
	if (max_depth < 0)
		max_depth = io_depth > 1 ? io_depth - 1 :
					   HSMCARD_RING_MAX_ENTRIES;
	make_keys(ctx);

	/* known answers through both paths, with imported keys */
	rctx = hsm_open_path(device);
	if (!rctx || hsm_ring_setup(rctx, 4, 16384))
		die("cannot set up a ring for the known-answer checks", 0);
	if ((ops[3].want || ops[4].want) && !kat_gcm(ctx, rctx)) {
		fprintf(stderr, "hsm-bench: AES-256-GCM known-answer check against OpenSSL FAILED\n");
		kat_ok = false;
	}
	if (ops[5].want && !kat_hmac(ctx, rctx)) {
		fprintf(stderr, "hsm-bench: HMAC-SHA-256 known-answer check against OpenSSL FAILED\n");
		kat_ok = false;
	}
	hsm_close(rctx);

	if (json) {
		printf("{\"tool\": \"hsm-bench\", \"device\": \"%s\", "
		       "\"serial\": \"%.32s\", \"fw_version\": \"%.16s\", "
		       "\"seconds\": %.3f, \"warmup\": %.3f, "
		       "\"io_queue_depth\": %u, \"max_depth\": %ld, "
		       "\"known_answers\": %s,\n \"points\": [",
		       device, info.serial, info.fw_version, seconds, warmup,
		       io_depth, max_depth, kat_ok ? "true" : "false");
	} else {
		printf("# hsm-bench: %s (serial %.32s, firmware %.16s), %.2f s per point, %.2f s warm-up\n",
		       device, info.serial, info.fw_version, seconds, warmup);
		printf("# depth capped at %ld jobs in flight (driver I/O queue depth %u; --max-depth)\n",
		       max_depth, io_depth);
		printf("# known-answer checks against OpenSSL (imported keys, ioctl and ring): %s\n",
		       kat_ok ? "ok" : "FAILED");
		printf("%-24s %-5s %5s %5s %10s %10s %10s %7s %9s\n",
		       "operation", "path", "batch", "depth", "ops/s",
		       "p50 us", "p99 us", "errors", "checks");
	}
	fflush(stdout);

	for (i = 0; i < NR_OPS; i++) {
		if (!ops[i].want)
			continue;
		if (do_ioctl) {
			struct point *pt = xzalloc(sizeof(*pt));

			pt->op = &ops[i];
			pt->path = "ioctl";
			pt->batch = 1;
			pt->depth = 1;
			run_ioctl(ctx, pt);
			check_samples(ctx, pt);
			finish_point(pt);
			free(pt);
		}
		for (b = 0; do_ring && b < nr_batches; b++) {
			unsigned int last = 0;

			for (d = 0; d < nr_depths; d++) {
				unsigned int depth = batches[b] * depth_mult[d];
				bool setup_failed = false;
				struct point *pt;

				if (depth > max_depth)
					depth = batches[b] > max_depth ?
						batches[b] : max_depth;
				if (depth > HSMCARD_RING_MAX_ENTRIES)
					depth = HSMCARD_RING_MAX_ENTRIES;
				if (depth < batches[b] || depth == last)
					continue;
				last = depth;
				pt = xzalloc(sizeof(*pt));
				pt->op = &ops[i];
				pt->path = "ring";
				pt->batch = batches[b];
				pt->depth = depth;
				ret = run_ring(pt, batches[b], depth,
					       &setup_failed);
				if (ret) {
					fprintf(stderr, "hsm-bench: %s ring batch %u depth %u: %s%s\n",
						ops[i].name, batches[b], depth,
						setup_failed ? "setup: " : "",
						hsm_strerror(ret));
					pt->errors++;
					if (!pt->first_err)
						pt->first_err = ret;
				}
				finish_point(pt);
				free(pt);
			}
		}
	}
	if (!kat_ok)
		total_check_fail++;
	if (json) {
		printf("\n ],\n \"errors\": %lu, \"check_failures\": %lu, \"ok\": %s}\n",
		       total_errors, total_check_fail,
		       total_errors || total_check_fail ? "false" : "true");
	} else {
		printf("# %s: %lu failed operations, %lu failed output checks\n",
		       total_errors || total_check_fail ? "FAILED" : "ok",
		       total_errors, total_check_fail);
	}
	destroy_keys(ctx);
	hsm_close(ctx);
	return total_errors || total_check_fail ? 1 : 0;
}
