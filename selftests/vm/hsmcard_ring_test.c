// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard command ring tests (run in the test guest as root, driver bound).
 *
 * Jobs go through the raw ring UAPI (uapi/hsmcard.h); every result is
 * checked with host OpenSSL: signatures are verified with the public key
 * the card exports, AES-GCM and HMAC outputs are recomputed from the clear
 * keys imported into the card.  Bad entries must each complete with their
 * own errno (Documentation/hsmcard/rings.rst) while the good ones in the
 * same batch succeed.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include "hsmcard.h"
#include "kselftest_harness.h"
#include "hsmcard_util.h"

/* libhsmcard, linked in statically by inclusion (tests below). */
#include "../../lib/libhsmcard.c"

#define COOKIE(i)	TRING_COOKIE(i)
#define PAGE		4096UL


static struct hsmcard_ring_sqe job(uint8_t opcode, uint16_t mech,
				   uint16_t mparam, uint64_t handle,
				   uint32_t in_off, uint32_t in_len,
				   uint32_t out_off, uint32_t out_len,
				   unsigned int i)
{
	struct hsmcard_ring_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = opcode;
	s.mech = mech;
	s.mparam = mparam;
	s.handle = handle;
	s.in_off = in_off;
	s.in_len = in_len;
	s.out_off = out_off;
	s.out_len = out_len;
	s.cookie = COOKIE(i);
	return s;
}

FIXTURE(ring) {
	int dev;
	struct tring r;
};

FIXTURE_SETUP(ring)
{
	self->r.fd = -1;
	self->dev = open(DEV_PATH, O_RDWR);
	if (self->dev < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	ASSERT_EQ(0, tring_open(self->dev, &self->r, 64, 1 << 20));
	ASSERT_LE(8 * PAGE, self->r.max_job_len);
}

FIXTURE_TEARDOWN(ring)
{
	tring_close(&self->r);
	if (self->dev >= 0)
		close(self->dev);
}

TEST(setup_rejects_bad_arguments)
{
	struct hsmcard_ring_setup rs;
	int dev = open(DEV_PATH, O_RDWR);
	size_t len = 1 << 20;
	uint8_t *arena;

	if (dev < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	arena = mmap(NULL, len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, arena);
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, 0, arena, len, &rs));
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, 3, arena, len, &rs));
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, HSMCARD_RING_MAX_ENTRIES * 2,
					  arena, len, &rs));
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, 8, arena + 1, PAGE, &rs));
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, 8, arena, PAGE + 1, &rs));
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, 8, arena, 0, &rs));
	EXPECT_EQ(-EINVAL, ring_setup_raw(dev, 8, arena,
					  HSMCARD_ARENA_MAX + PAGE, &rs));
	/* unmapped arena */
	EXPECT_EQ(-EFAULT, ring_setup_raw(dev, 8, (void *)PAGE, PAGE, &rs));
	/* flags and reserved fields */
	memset(&rs, 0, sizeof(rs));
	rs.entries = 8;
	rs.arena = (uintptr_t)arena;
	rs.arena_len = len;
	rs.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(dev, HSMCARD_IOC_RING_SETUP, &rs));
	rs.flags = 0;
	rs.rsvd[2] = 1;
	EXPECT_EQ(-EINVAL, xioctl(dev, HSMCARD_IOC_RING_SETUP, &rs));
	/* the ring ioctl belongs to the ring fd, not the device */
	EXPECT_EQ(-1, ioctl(dev, HSMCARD_IOC_RING_SUBMIT, 1));
	EXPECT_EQ(ENOTTY, errno);
	munmap(arena, len);
	close(dev);
}

TEST_F(ring, mmap_rules)
{
	struct tring *r = &self->r;
	void *p;

	/* wrong size, offset, private mapping */
	p = mmap(NULL, r->map_len + PAGE, PROT_READ, MAP_SHARED, r->fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, r->fd, PAGE);
	EXPECT_EQ(MAP_FAILED, p);
	p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, r->fd,
		 0);
	EXPECT_EQ(MAP_FAILED, p);
	/* the device itself cannot be mapped */
	p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->dev, 0);
	EXPECT_EQ(MAP_FAILED, p);
}

/* RSA-2048, P-256 and Ed25519 signatures, verified with OpenSSL. */
TEST_F(ring, sign_batch)
{
	static const struct {
		uint16_t type, bits, mech, mparam;
	} kt[] = {
		{ HSMCARD_KEY_RSA, 2048, HSMCARD_MECH_RSA_PKCS1,
		  HSMCARD_MECH_SHA256 },
		{ HSMCARD_KEY_EC_P256, 256, HSMCARD_MECH_ECDSA,
		  HSMCARD_MECH_SHA256 },
		{ HSMCARD_KEY_ED25519, 0, HSMCARD_MECH_EDDSA, 0 },
	};
	enum { PER_KEY = 6, N = 3 * PER_KEY };
	/* message lengths; the 9000-byte one spans three pages (SGL) */
	static const uint32_t mlen[PER_KEY] = { 1, 32, 100, 4095, 9000, 777 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	struct tring *r = &self->r;
	struct hsmcard_key_attrs a;
	uint64_t h[3];
	EVP_PKEY *pk[3];
	unsigned int k, i;

	for (k = 0; k < 3; k++) {
		ASSERT_EQ(0, gen_key(self->dev, kt[k].type, kt[k].bits,
				     HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY,
				     NULL, &a));
		h[k] = a.handle;
		pk[k] = export_pub(self->dev, h[k]);
		ASSERT_NE(NULL, pk[k]);
	}
	/* inputs at 16 KiB strides from 1000, outputs in the second half */
	for (k = 0; k < 3; k++) {
		for (i = 0; i < PER_KEY; i++) {
			unsigned int j = k * PER_KEY + i;
			uint32_t in_off = 1000 + j * 16384;
			uint32_t out_off = (512 << 10) + j * 1024;

			fill_pattern(r->arena + in_off, mlen[i], j);
			jobs[j] = job(HSMCARD_RING_OP_SIGN, kt[k].mech,
				      kt[k].mparam, h[k], in_off, mlen[i],
				      out_off, 1024, j);
		}
	}
	ASSERT_EQ(0, tring_run(r, jobs, N, cqes));
	for (k = 0; k < 3; k++) {
		for (i = 0; i < PER_KEY; i++) {
			unsigned int j = k * PER_KEY + i;
			const EVP_MD *md = kt[k].mparam ? EVP_sha256() : NULL;

			ASSERT_EQ(0, cqes[j].status);
			ASSERT_LT(0U, cqes[j].len);
			EXPECT_EQ(1, ossl_verify(pk[k], md, 0, 0, false,
						 r->arena + jobs[j].in_off,
						 mlen[i],
						 r->arena + jobs[j].out_off,
						 cqes[j].len)) {
				TH_LOG("key %u job %u", k, i);
			}
		}
	}
	/* The same signatures through the VERIFY op; one corrupted. */
	for (i = 0; i < N; i++) {
		jobs[i].opcode = HSMCARD_RING_OP_VERIFY;
		jobs[i].out_len = cqes[i].len;
	}
	r->arena[jobs[4].out_off + jobs[4].out_len - 1] ^= 1;
	ASSERT_EQ(0, tring_run(r, jobs, N, cqes));
	for (i = 0; i < N; i++)
		EXPECT_EQ(i == 4 ? -EBADMSG : 0, cqes[i].status);
	for (k = 0; k < 3; k++) {
		EVP_PKEY_free(pk[k]);
		destroy_key(self->dev, h[k]);
	}
}

/* AES-256-GCM encryption batch against OpenSSL. */
TEST_F(ring, gcm_batch)
{
	enum { N = 40 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	struct tring *r = &self->r;
	uint8_t key[32], ct[8192], tag[16];
	unsigned int i;
	uint64_t h;

	fill_pattern(key, sizeof(key), 5);
	ASSERT_EQ(0, import_key(self->dev, HSMCARD_KEY_AES, 256,
				HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT, key,
				sizeof(key), &h));
	for (i = 0; i < N; i++) {
		uint32_t aad = i % 3 ? 13 : 0;
		uint32_t len = aad + (i * 997) % 6000 + 1;
		uint32_t in_off = i * 16384 + 3000; /* crosses pages */

		fill_pattern(r->arena + in_off, len, i);
		jobs[i] = job(HSMCARD_RING_OP_ENCRYPT, HSMCARD_MECH_AES_GCM, 16,
			      h, in_off, len, in_off + 6500, len - aad + 16,
			      i);
		jobs[i].aux = aad;
		fill_pattern(jobs[i].iv, 12, 100 + i);
	}
	ASSERT_EQ(0, tring_run(r, jobs, N, cqes));
	for (i = 0; i < N; i++) {
		const uint8_t *in = r->arena + jobs[i].in_off;
		uint32_t aad = jobs[i].aux, pl = jobs[i].in_len - aad;
		EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
		int l;

		ASSERT_EQ(0, cqes[i].status);
		ASSERT_EQ(pl + 16, cqes[i].len);
		ASSERT_EQ(1, EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL,
						NULL, NULL));
		ASSERT_EQ(1, EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
						 12, NULL));
		ASSERT_EQ(1, EVP_EncryptInit_ex(ctx, NULL, NULL, key,
						jobs[i].iv));
		if (aad)
			ASSERT_EQ(1, EVP_EncryptUpdate(ctx, NULL, &l, in, aad));
		ASSERT_EQ(1, EVP_EncryptUpdate(ctx, ct, &l, in + aad, pl));
		ASSERT_EQ(1, EVP_EncryptFinal_ex(ctx, ct + l, &l));
		ASSERT_EQ(1, EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
						 tag));
		EVP_CIPHER_CTX_free(ctx);
		EXPECT_EQ(0, memcmp(ct, r->arena + jobs[i].out_off, pl));
		EXPECT_EQ(0, memcmp(tag, r->arena + jobs[i].out_off + pl, 16));
	}
	destroy_key(self->dev, h);
}

static void hmac_jobs(uint8_t *arena, uint64_t h, unsigned int n,
		      uint32_t base, struct hsmcard_ring_sqe *jobs,
		      unsigned int seed)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint32_t len = (i * 331 + seed) % 5000;
		uint32_t in_off = base + i * 8192;

		fill_pattern(arena + in_off, len, i + seed);
		jobs[i] = job(HSMCARD_RING_OP_MAC, HSMCARD_MECH_HMAC_SHA256, 0,
			      h, in_off, len, in_off + 5000, 64, i);
	}
}

static int hmac_check(const uint8_t *arena, const uint8_t *key,
		      size_t key_len, const struct hsmcard_ring_sqe *s,
		      const struct hsmcard_ring_cqe *c)
{
	uint8_t want[32];
	unsigned int wl = 0;

	if (c->status || c->len != 32)
		return 0;
	HMAC(EVP_sha256(), key, key_len, arena + s->in_off, s->in_len, want,
	     &wl);
	return wl == 32 && !memcmp(want, arena + s->out_off, 32);
}

/* HMAC-SHA-256 with an imported key, more jobs than the ring holds. */
TEST_F(ring, hmac_batch)
{
	enum { N = 100 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	struct tring *r = &self->r;
	uint8_t key[48];
	unsigned int i;
	uint64_t h;

	fill_pattern(key, sizeof(key), 9);
	ASSERT_EQ(0, import_key(self->dev, HSMCARD_KEY_HMAC, 384,
				HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, key,
				sizeof(key), &h));
	hmac_jobs(r->arena, h, N, 0, jobs, 1);
	ASSERT_EQ(0, tring_run(r, jobs, N, cqes));
	for (i = 0; i < N; i++) {
		EXPECT_EQ(1, hmac_check(r->arena, key, sizeof(key), &jobs[i],
					&cqes[i])) {
			TH_LOG("job %u: status %d len %u", i, cqes[i].status,
			       cqes[i].len);
		}
	}
	/* too small an output: -ENOSPC and the length needed */
	jobs[0].out_len = 16;
	ASSERT_EQ(0, tring_run(r, jobs, 1, cqes));
	EXPECT_EQ(-ENOSPC, cqes[0].status);
	EXPECT_EQ(32U, cqes[0].len);
	destroy_key(self->dev, h);
}

/* Bad entries each complete with their own error; good ones succeed. */
TEST_F(ring, mixed_batch)
{
	enum { N = 24 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	struct tring *r = &self->r;
	int want[N] = { 0 };
	uint8_t key[32];
	uint64_t h, hv;
	unsigned int i;

	fill_pattern(key, sizeof(key), 11);
	ASSERT_EQ(0, import_key(self->dev, HSMCARD_KEY_HMAC, 256,
				HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, key,
				sizeof(key), &h));
	/* a key that may only verify */
	ASSERT_EQ(0, import_key(self->dev, HSMCARD_KEY_HMAC, 256,
				HSMCARD_USE_VERIFY, key, sizeof(key), &hv));
	hmac_jobs(r->arena, h, N, 0, jobs, 3);

	/* a user-partition handle naming no key */
	jobs[1].handle = h ^ (0x5aULL << 32);
	want[1] = -ENOKEY;
	/* a kernel-partition handle */
	jobs[3].handle = (h & ~0xff000000ULL) |
			 ((uint64_t)HSMCARD_PARTITION_KERNEL << 24);
	want[3] = -ENOKEY;
	/* the key forbids the use */
	jobs[5].handle = hv;
	want[5] = -EACCES;
	/* output outside the arena */
	jobs[7].out_off = r->arena_len - 16;
	want[7] = -ERANGE;
	/* offset + length overflows 32 bits */
	jobs[9].in_off = 0xffffff00U;
	jobs[9].in_len = 0x200;
	want[9] = -ERANGE;
	/* output overlaps the input */
	jobs[11].out_off = jobs[11].in_off + 1;
	jobs[11].in_len = 100;
	want[11] = -EINVAL;
	/* longer than a job may be */
	jobs[13].in_len = r->max_job_len + 1;
	want[13] = -E2BIG;
	jobs[14].in_len = 0xffffffffU;
	want[14] = -E2BIG;
	/* unknown opcodes */
	jobs[15].opcode = HSMCARD_RING_OP_MAX;
	want[15] = -EOPNOTSUPP;
	jobs[16].opcode = 0;
	want[16] = -EOPNOTSUPP;
	/* reserved fields, unknown flags */
	jobs[17].rsvd0 = 1;
	want[17] = -EINVAL;
	jobs[18].rsvd1 = 0x100;
	want[18] = -EINVAL;
	jobs[19].flags = 0x80;
	want[19] = -EINVAL;
	/* an IV on a MAC; a key handle on a digest */
	jobs[20].iv[15] = 1;
	want[20] = -EINVAL;
	jobs[21].opcode = HSMCARD_RING_OP_DIGEST;
	jobs[21].mech = HSMCARD_MECH_SHA256;
	want[21] = -EINVAL;

	ASSERT_EQ(0, tring_run(r, jobs, N, cqes));
	for (i = 0; i < N; i++) {
		if (want[i]) {
			EXPECT_EQ(want[i], cqes[i].status) {
				TH_LOG("job %u", i);
			}
			EXPECT_EQ(0U, cqes[i].len);
		} else {
			EXPECT_EQ(1, hmac_check(r->arena, key, sizeof(key),
						&jobs[i], &cqes[i])) {
				TH_LOG("good job %u: status %d", i,
				       cqes[i].status);
			}
		}
	}
	destroy_key(self->dev, h);
	destroy_key(self->dev, hv);
}

/* Forged indices are refused without consuming anything. */
TEST_F(ring, forged_indices)
{
	struct hsmcard_ring_sqe jobs[4];
	struct hsmcard_ring_cqe cqes[4];
	struct tring *r = &self->r;
	uint8_t key[32];
	unsigned int i;
	uint64_t h;

	fill_pattern(key, sizeof(key), 12);
	ASSERT_EQ(0, import_key(self->dev, HSMCARD_KEY_HMAC, 256,
				HSMCARD_USE_SIGN, key, sizeof(key), &h));
	/* garbage in every SQ slot */
	for (i = 0; i < r->entries; i++)
		memset(&r->sq[i], 0xa5, sizeof(r->sq[i]));
	store_rel(&r->hdr->sq_tail, r->entries + 1000);
	EXPECT_EQ(-1, ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, 8));
	EXPECT_EQ(EINVAL, errno);
	store_rel(&r->hdr->sq_tail, (uint32_t)-1);
	EXPECT_EQ(-1, ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, 8));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0U, load_acq(&r->hdr->sq_head));
	EXPECT_EQ(0U, load_acq(&r->hdr->cq_tail));
	/* a CQ head beyond the tail */
	store_rel(&r->hdr->sq_tail, 0);
	store_rel(&r->hdr->cq_head, 5);
	EXPECT_EQ(-1, ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, 1));
	EXPECT_EQ(EINVAL, errno);
	store_rel(&r->hdr->cq_head, 0);
	/* nothing to submit: 0 */
	EXPECT_EQ(0, ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, 8));
	/* the ring still works */
	hmac_jobs(r->arena, h, 4, 0, jobs, 4);
	ASSERT_EQ(0, tring_run(r, jobs, 4, cqes));
	for (i = 0; i < 4; i++)
		EXPECT_EQ(1, hmac_check(r->arena, key, sizeof(key), &jobs[i],
					&cqes[i]));
	destroy_key(self->dev, h);
}

/* A forked child sees neither the ring mapping nor may it use the ring. */
TEST_F(ring, fork_child)
{
	struct tring *r = &self->r;
	int status;
	pid_t pid;

	r->hdr->rsvd[0] = 0; /* touch it in the parent */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		void *p;

		if (ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, 1) != -1 ||
		    errno != EACCES)
			_exit(10);
		p = mmap(NULL, r->map_len, PROT_READ, MAP_SHARED, r->fd, 0);
		if (p != MAP_FAILED || errno != EACCES)
			_exit(11);
		/* the mapping was not copied: this faults */
		*(volatile uint32_t *)&r->hdr->sq_tail = 1;
		_exit(12);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status)) {
		TH_LOG("child exit status %d", WEXITSTATUS(status));
	}
	EXPECT_EQ(SIGSEGV, WTERMSIG(status));
	EXPECT_EQ(0U, load_acq(&r->hdr->sq_tail));
}

/*
 * munmap with jobs in flight, then closing everything with jobs in flight:
 * the jobs complete into the still-existing ring, the card keeps working.
 */
TEST(close_in_flight)
{
	enum { N = 32 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	int dev = open(DEV_PATH, O_RDWR);
	unsigned int i, round;
	struct hsmcard_key_attrs a;
	struct tring r;
	int status;
	pid_t pid;
	uint64_t h;
	long s;

	if (dev < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	ASSERT_EQ(0, gen_key(dev, HSMCARD_KEY_RSA, 2048, HSMCARD_USE_SIGN, NULL,
			     &a));
	h = a.handle;
	for (round = 0; round < 3; round++) {
		ASSERT_EQ(0, tring_open(dev, &r, N, 1 << 20));
		for (i = 0; i < N; i++)
			r.sq[i] = job(HSMCARD_RING_OP_SIGN,
				      HSMCARD_MECH_RSA_PKCS1,
				      HSMCARD_MECH_SHA256, h, i * 1024, 500,
				      (512 << 10) + i * 1024, 1024, i);
		store_rel(&r.hdr->sq_tail, N);
		s = ioctl(r.fd, HSMCARD_IOC_RING_SUBMIT, N);
		ASSERT_LT(0, s);
		if (round == 0) {
			/* unmap and map again: the completions are kept */
			ASSERT_EQ(0, munmap(r.map, r.map_len));
			r.map = mmap(NULL, r.map_len, PROT_READ | PROT_WRITE,
				     MAP_SHARED, r.fd, 0);
			ASSERT_NE(MAP_FAILED, r.map);
			r.hdr = r.map;
			r.sq = (void *)((char *)r.map + sizeof(*r.hdr));
			r.cq = (void *)((char *)r.map + sizeof(*r.hdr) +
					N * sizeof(*r.sq));
			for (i = 0; i < 1000 && load_acq(&r.hdr->cq_tail) < s;
			     i++)
				usleep(10000);
			ASSERT_EQ((uint32_t)s, load_acq(&r.hdr->cq_tail));
			for (i = 0; i < s; i++)
				EXPECT_EQ(0, r.cq[i].status);
		}
		/* round 1: unmap first, round 2: close the fd first */
		if (round == 1) {
			munmap(r.map, r.map_len);
			r.map = NULL;
		} else if (round == 2) {
			close(r.fd);
			r.fd = -1;
		}
		tring_close(&r);
	}
	/* a process exits with jobs in flight */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (tring_open(dev, &r, N, 1 << 20))
			_exit(1);
		for (i = 0; i < N; i++)
			r.sq[i] = job(HSMCARD_RING_OP_SIGN,
				      HSMCARD_MECH_RSA_PKCS1,
				      HSMCARD_MECH_SHA256, h, i * 1024, 500,
				      (512 << 10) + i * 1024, 1024, i);
		store_rel(&r.hdr->sq_tail, N);
		_exit(ioctl(r.fd, HSMCARD_IOC_RING_SUBMIT, N) > 0 ? 0 : 2);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* the card still answers */
	ASSERT_EQ(0, tring_open(dev, &r, 8, 1 << 16));
	for (i = 0; i < 4; i++)
		jobs[i] = job(HSMCARD_RING_OP_RANDOM, 0, 0, 0, 0, 0, i * 64, 64,
			      i);
	ASSERT_EQ(0, tring_run(&r, jobs, 4, cqes));
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(0, cqes[i].status);
		EXPECT_EQ(64U, cqes[i].len);
	}
	EXPECT_NE(0, memcmp(r.arena, r.arena + 64, 64));
	tring_close(&r);
	destroy_key(dev, h);
	close(dev);
}

struct thr_arg {
	uint64_t key_seed;
	int ok;
};

static void *thr_main(void *p)
{
	enum { N = 60 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	struct thr_arg *a = p;
	uint8_t key[32];
	struct tring r;
	unsigned int i;
	uint64_t h;
	int dev;

	a->ok = 0;
	dev = open(DEV_PATH, O_RDWR);
	if (dev < 0)
		return NULL;
	fill_pattern(key, sizeof(key), a->key_seed);
	if (import_key(dev, HSMCARD_KEY_HMAC, 256, HSMCARD_USE_SIGN, key,
		       sizeof(key), &h))
		goto out;
	if (tring_open(dev, &r, 16, 1 << 20))
		goto out_key;
	hmac_jobs(r.arena, h, N, 0, jobs, a->key_seed);
	if (!tring_run(&r, jobs, N, cqes)) {
		a->ok = 1;
		for (i = 0; i < N; i++)
			if (!hmac_check(r.arena, key, sizeof(key), &jobs[i],
					&cqes[i]))
				a->ok = 0;
	}
	tring_close(&r);
out_key:
	destroy_key(dev, h);
out:
	close(dev);
	return NULL;
}

/* Several threads, each with its own fd, ring and key. */
TEST(threads)
{
	enum { T = 4 };
	struct thr_arg a[T];
	pthread_t t[T];
	int i;

	if (access(DEV_PATH, R_OK))
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	for (i = 0; i < T; i++) {
		a[i].key_seed = 20 + i;
		ASSERT_EQ(0, pthread_create(&t[i], NULL, thr_main, &a[i]));
	}
	for (i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(1, a[i].ok) {
			TH_LOG("thread %d failed", i);
		}
	}
}

/*
 * Several processes at once, each with its own fd, ring and key, and two
 * threads in each: every job of every process completes and verifies.
 */
TEST(processes)
{
	enum { P = 3, T = 2 };
	pid_t pid[P];
	int i, st;

	if (access(DEV_PATH, R_OK))
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	for (i = 0; i < P; i++) {
		pid[i] = fork();
		ASSERT_LE(0, pid[i]);
		if (!pid[i]) {
			struct thr_arg a[T];
			pthread_t t[T];
			int k, ok = 1;

			for (k = 0; k < T; k++) {
				a[k].key_seed = 40 + i * T + k;
				if (pthread_create(&t[k], NULL, thr_main,
						   &a[k]))
					_exit(2);
			}
			for (k = 0; k < T; k++) {
				pthread_join(t[k], NULL);
				ok &= a[k].ok;
			}
			_exit(ok ? 0 : 1);
		}
	}
	for (i = 0; i < P; i++) {
		ASSERT_EQ(pid[i], waitpid(pid[i], &st, 0));
		EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st)) {
			TH_LOG("process %d: status %#x", i, st);
		}
	}
}

/* poll() reports completions; none pending means no POLLIN. */
TEST_F(ring, poll_completion)
{
	struct tring *r = &self->r;
	struct pollfd pfd = { .fd = r->fd, .events = POLLIN };

	EXPECT_EQ(0, poll(&pfd, 1, 0));
	r->sq[0] = job(HSMCARD_RING_OP_RANDOM, 0, 0, 0, 0, 0, 0, 32, 0);
	store_rel(&r->hdr->sq_tail, 1);
	ASSERT_EQ(1, ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, 1));
	ASSERT_EQ(1, poll(&pfd, 1, 30000));
	EXPECT_TRUE(pfd.revents & POLLIN);
	ASSERT_EQ(1U, load_acq(&r->hdr->cq_tail));
	EXPECT_EQ(0, r->cq[0].status);
	EXPECT_EQ(32U, r->cq[0].len);
	store_rel(&r->hdr->cq_head, 1);
	EXPECT_EQ(0, poll(&pfd, 1, 0));
}

/*
 * Interrupt coalescing (sysfs irq_coalesce): bad values are refused, a
 * good one reads back and survives a controller reset, and jobs still
 * complete while it is on, also a batch smaller than the threshold, which
 * only the card's timer can signal.
 */
TEST_F(ring, irq_coalesce)
{
	static const char *const bad[] = {
		"x", "1", "256 0", "1 150", "1 25600", "-1 100", "1 100 1",
	};
	enum { N = 40 };
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_ring_cqe cqes[N];
	const char *knob = SYSFS_DEV "/irq_coalesce";
	char v[32];
	uint8_t key[32];
	unsigned int i, round;
	uint64_t h;

	ASSERT_EQ(0, read_str(knob, v, sizeof(v)));
	ASSERT_STREQ("0 0", v);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, write_str(knob, bad[i])) {
			TH_LOG("\"%s\" accepted", bad[i]);
		}
	}
	ASSERT_EQ(0, read_str(knob, v, sizeof(v)));
	ASSERT_STREQ("0 0", v);

	fill_pattern(key, sizeof(key), 11);
	ASSERT_EQ(0, import_key(self->dev, HSMCARD_KEY_HMAC, 256,
				HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, key,
				sizeof(key), &h));
	ASSERT_EQ(0, write_str(knob, "64 300\n"));
	ASSERT_EQ(0, read_str(knob, v, sizeof(v)));
	EXPECT_STREQ("64 300", v);
	for (round = 0; round < 2; round++) {
		/* 40 and 5 jobs: both below the threshold of 64 */
		unsigned int n = round ? 5 : N;

		hmac_jobs(self->r.arena, h, n, 0, jobs, 1);
		ASSERT_EQ(0, tring_run(&self->r, jobs, n, cqes));
		for (i = 0; i < n; i++)
			EXPECT_EQ(1, hmac_check(self->r.arena, key,
						sizeof(key), &jobs[i],
						&cqes[i]));
		if (!round) {
			/* the setting outlives a controller reset */
			ASSERT_EQ(0, write_str(SYSFS_DEV "/reset_controller",
					       "1"));
			ASSERT_EQ(0, read_str(knob, v, sizeof(v)));
			EXPECT_STREQ("64 300", v);
		}
	}
	EXPECT_EQ(0, write_str(knob, "0 0"));
	destroy_key(self->dev, h);
}

/* Completions signal a registered eventfd, one count each. */
TEST_F(ring, eventfd_completion)
{
	struct tring *r = &self->r;
	struct hsmcard_ring_cqe cqes[8];
	struct hsmcard_ring_sqe jobs[8];
	int efd, devnull, i;
	uint64_t count = 0;
	struct pollfd pfd;
	int32_t arg;
	long end;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	/* not an eventfd, a bad fd, and a fault */
	devnull = open("/dev/null", O_RDWR);
	ASSERT_LE(0, devnull);
	arg = devnull;
	EXPECT_EQ(-EINVAL, xioctl(r->fd, HSMCARD_IOC_RING_EVENTFD, &arg));
	arg = -5;
	EXPECT_EQ(-EBADF, xioctl(r->fd, HSMCARD_IOC_RING_EVENTFD, &arg));
	EXPECT_EQ(-EFAULT, xioctl(r->fd, HSMCARD_IOC_RING_EVENTFD, NULL));
	close(devnull);

	arg = efd;
	ASSERT_EQ(0, xioctl(r->fd, HSMCARD_IOC_RING_EVENTFD, &arg));
	pfd.fd = efd;
	pfd.events = POLLIN;
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	for (i = 0; i < 8; i++)
		jobs[i] = job(HSMCARD_RING_OP_RANDOM, 0, 0, 0, 0, 0, i * 64,
			      64, i);
	ASSERT_EQ(0, tring_run(r, jobs, 8, cqes));
	for (i = 0; i < 8; i++)
		EXPECT_EQ(0, cqes[i].status);
	/*
	 * The driver publishes a completion before it signals the eventfd,
	 * so the last signal may trail the last CQE: add up the counts
	 * until there are 8 (or a deadline passes).
	 */
	end = now_ms() + 30000;
	while (count < 8) {
		long left = end - now_ms();
		uint64_t c;

		if (poll(&pfd, 1, left > 0 ? left : 0) != 1)
			break;
		ASSERT_EQ((ssize_t)sizeof(c), read(efd, &c, sizeof(c)));
		count += c;
	}
	EXPECT_EQ(8U, count);

	/* -1 stops it: the next completions leave the counter alone */
	arg = -1;
	ASSERT_EQ(0, xioctl(r->fd, HSMCARD_IOC_RING_EVENTFD, &arg));
	ASSERT_EQ(0, tring_run(r, jobs, 2, cqes));
	EXPECT_EQ(0, poll(&pfd, 1, 0));

	/* the ring keeps its own reference: closing ours changes nothing */
	arg = efd;
	ASSERT_EQ(0, xioctl(r->fd, HSMCARD_IOC_RING_EVENTFD, &arg));
	close(efd);
	ASSERT_EQ(0, tring_run(r, jobs, 2, cqes));
	EXPECT_EQ(0, cqes[0].status);
	EXPECT_EQ(0, cqes[1].status);
}

/* libhsmcard one-shot calls, checked with OpenSSL. */
TEST(lib_oneshot)
{
	uint8_t msg[3000], sig[128], der[512], key[32], mac[64], want[32];
	uint64_t h, hm, list[256];
	size_t sl = sizeof(sig), dl = sizeof(der), ml, n, i;
	const unsigned char *p = der;
	unsigned int wl = 0;
	struct hsm_ctx *ctx;
	EVP_PKEY *pk;
	int found = 0;

	ctx = hsm_open(0);
	if (!ctx)
		SKIP(return, "hsm_open(0): %s", strerror(errno));
	ASSERT_EQ(NULL, hsm_open_path("/nonexistent"));
	ASSERT_EQ(ENOENT, errno);
	fill_pattern(msg, sizeof(msg), 40);
	ASSERT_EQ(0, hsm_keygen(ctx, HSMCARD_KEY_EC_P256, 256,
				HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, 0,
				"ring-lib", &h));
	ASSERT_EQ(0, hsm_sign(ctx, h, HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA256,
			      msg, sizeof(msg), sig, &sl));
	ASSERT_EQ(0, hsm_key_export_public(ctx, h, der, &dl));
	pk = d2i_PUBKEY(NULL, &p, dl);
	ASSERT_NE(NULL, pk);
	EXPECT_EQ(1, ossl_verify(pk, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), sig, sl));
	EVP_PKEY_free(pk);
	EXPECT_EQ(0, hsm_verify(ctx, h, HSMCARD_MECH_ECDSA,
				HSMCARD_MECH_SHA256, msg, sizeof(msg), sig,
				sl));
	msg[0] ^= 1;
	EXPECT_EQ(-EBADMSG, hsm_verify(ctx, h, HSMCARD_MECH_ECDSA,
				       HSMCARD_MECH_SHA256, msg, sizeof(msg),
				       sig, sl));
	ASSERT_EQ(0, hsm_key_list(ctx, list, 256, &n));
	for (i = 0; i < n; i++)
		found |= list[i] == h;
	EXPECT_TRUE(found);

	fill_pattern(key, sizeof(key), 41);
	ASSERT_EQ(0, hsm_key_import(ctx, HSMCARD_KEY_HMAC, 256,
				    HSMCARD_USE_SIGN, key, sizeof(key), &hm));
	ml = sizeof(mac);
	ASSERT_EQ(0, hsm_hmac(ctx, hm, HSMCARD_MECH_HMAC_SHA256, msg,
			      sizeof(msg), mac, &ml));
	HMAC(EVP_sha256(), key, sizeof(key), msg, sizeof(msg), want, &wl);
	ASSERT_EQ(32U, ml);
	EXPECT_EQ(0, memcmp(want, mac, 32));
	ml = sizeof(mac);
	ASSERT_EQ(0, hsm_digest(ctx, HSMCARD_MECH_SHA256, msg, sizeof(msg),
				mac, &ml));
	EVP_Digest(msg, sizeof(msg), want, &wl, EVP_sha256(), NULL);
	ASSERT_EQ(32U, ml);
	EXPECT_EQ(0, memcmp(want, mac, 32));
	memset(mac, 0, sizeof(mac));
	ASSERT_EQ(0, hsm_random(ctx, mac, sizeof(mac)));
	EXPECT_NE(0, memcmp(mac, mac + 32, 32));
	EXPECT_EQ(0, hsm_key_destroy(ctx, h));
	EXPECT_EQ(0, hsm_key_destroy(ctx, hm));
	EXPECT_EQ(-ENOKEY, hsm_key_destroy(ctx, hm));
	EXPECT_STRNE("", hsm_strerror(-ENOKEY));
	hsm_close(ctx);
}

/* libhsmcard batch API: more HMAC jobs than the ring holds. */
TEST(lib_batch)
{
	enum { N = 50 };
	int64_t in_off[N], out_off[N];
	struct hsmcard_ring_cqe *cqe;
	unsigned int i, got = 0, queued = 0;
	struct hsm_ring_counts rc;
	struct hsm_ctx *ctx;
	uint8_t key[32], want[32], seen[N] = { 0 };
	unsigned int wl;
	uint64_t h;

	ctx = hsm_open(0);
	if (!ctx)
		SKIP(return, "hsm_open(0): %s", strerror(errno));
	fill_pattern(key, sizeof(key), 42);
	ASSERT_EQ(0, hsm_key_import(ctx, HSMCARD_KEY_HMAC, 256,
				    HSMCARD_USE_SIGN, key, sizeof(key), &h));
	EXPECT_EQ(-EINVAL, hsm_ring_set_eventfd(ctx, -1));
	EXPECT_EQ(-EINVAL, hsm_ring_counts(ctx, &rc));
	ASSERT_EQ(0, hsm_ring_setup(ctx, 16, 1 << 20));
	EXPECT_EQ(0, hsm_ring_set_eventfd(ctx, -1));
	EXPECT_EQ(-EBUSY, hsm_ring_setup(ctx, 16, 1 << 20));
	ASSERT_LE(0, hsm_ring_fd(ctx));
	for (i = 0; i < N; i++) {
		in_off[i] = hsm_arena_alloc(ctx, 100 + i * 37, 1);
		out_off[i] = hsm_arena_alloc(ctx, 32, 64);
		ASSERT_LE(0, in_off[i]);
		ASSERT_LE(0, out_off[i]);
		ASSERT_EQ(0, out_off[i] % 64);
		fill_pattern(hsm_arena_ptr(ctx, in_off[i]), 100 + i * 37, i);
	}
	EXPECT_EQ(-ENOMEM, hsm_arena_alloc(ctx, 2 << 20, 1));
	while (got < N) {
		struct hsmcard_ring_sqe *sqe;

		while (queued < N && (sqe = hsm_get_sqe(ctx))) {
			hsm_prep_mac(sqe, h, HSMCARD_MECH_HMAC_SHA256,
				     in_off[queued], 100 + queued * 37,
				     out_off[queued], 32, 1000 + queued);
			queued++;
		}
		ASSERT_LE(0, hsm_submit(ctx));
		/* the kernel holds no more jobs than the ring has entries */
		ASSERT_EQ(0, hsm_ring_counts(ctx, &rc));
		EXPECT_GE(16U, rc.in_flight);
		EXPECT_GE(16U, rc.in_flight + rc.unread);
		ASSERT_EQ(0, hsm_wait_cqe(ctx, &cqe, 30000));
		do {
			i = cqe->cookie - 1000;
			ASSERT_GT((unsigned int)N, i);
			ASSERT_FALSE(seen[i]);
			seen[i] = 1;
			ASSERT_EQ(0, cqe->status) {
				TH_LOG("job %u: %s", i,
				       hsm_strerror(cqe->status));
			}
			ASSERT_EQ(32U, cqe->len);
			HMAC(EVP_sha256(), key, sizeof(key),
			     hsm_arena_ptr(ctx, in_off[i]), 100 + i * 37, want,
			     &wl);
			EXPECT_EQ(0, memcmp(want, hsm_arena_ptr(ctx, out_off[i]),
					    32));
			hsm_cqe_seen(ctx, cqe);
			got++;
		} while (!hsm_peek_cqe(ctx, &cqe));
	}
	EXPECT_EQ(-EAGAIN, hsm_peek_cqe(ctx, &cqe));
	ASSERT_EQ(0, hsm_ring_counts(ctx, &rc));
	EXPECT_EQ(0U, rc.queued);
	EXPECT_EQ(0U, rc.in_flight);
	EXPECT_EQ(0U, rc.unread);
	EXPECT_EQ(0, hsm_key_destroy(ctx, h));
	hsm_close(ctx);
}

/*
 * hsm_open_least_busy() opens a live card, and the "inflight" attribute it
 * goes by counts the commands the card holds: non-zero while a ring of
 * RSA-4096 signatures is being worked through, zero once they are done.
 * Generating the key alone can take 20 s on a loaded host under TCG, hence
 * a fixture for the longer timeout.
 */
FIXTURE(rsa4096) {
	int unused;
};

FIXTURE_SETUP(rsa4096)
{
}

FIXTURE_TEARDOWN(rsa4096)
{
}

TEST_F_TIMEOUT(rsa4096, lib_least_busy, 300)
{
	enum { N = 64, ROUNDS = 5 };
	struct hsmcard_info i0 = { 0 }, i1 = { 0 };
	struct hsmcard_ring_cqe *cqe;
	unsigned int i, got, busy = 0, round;
	struct hsm_ctx *ctx, *c0;
	char buf[32];
	uint64_t h;
	long end;

	c0 = hsm_open(0);
	if (!c0)
		SKIP(return, "hsm_open(0): %s", strerror(errno));
	ctx = hsm_open_least_busy();
	ASSERT_NE(NULL, ctx);
	ASSERT_EQ(0, hsm_info(c0, &i0));
	ASSERT_EQ(0, hsm_info(ctx, &i1));
	/* one card in the test guest: it must be the one */
	EXPECT_EQ(0, memcmp(i0.card_id, i1.card_id, sizeof(i0.card_id)));

	ASSERT_EQ(0, hsm_keygen(ctx, HSMCARD_KEY_RSA, 4096, HSMCARD_USE_SIGN,
				0, NULL, &h));
	ASSERT_EQ(0, hsm_ring_setup(ctx, N, 1 << 20));
	/*
	 * If this thread is descheduled between the submission and the read
	 * for as long as the card takes to sign all N, it reads 0 from a
	 * correct driver: submit the ring again (up to ROUNDS times) until
	 * a read catches the card at work.  A driver that never counts
	 * anything still fails every round.
	 */
	for (round = 0; round < ROUNDS; round++) {
		for (i = 0; i < N; i++) {
			struct hsmcard_ring_sqe *sqe = hsm_get_sqe(ctx);

			ASSERT_NE(NULL, sqe);
			hsm_prep_sign(sqe, h, HSMCARD_MECH_RSA_PKCS1,
				      HSMCARD_MECH_SHA256, i * 1024, 500,
				      (512 << 10) + i * 1024, 1024, i);
		}
		ASSERT_LT(0, hsm_submit(ctx));
		ASSERT_EQ(0, read_str(SYSFS_DEV "/inflight", buf,
				      sizeof(buf)));
		busy = strtoul(buf, NULL, 10);
		EXPECT_GE((unsigned int)N + 8, busy);
		for (got = 0; got < N; got++) {
			ASSERT_EQ(0, hsm_wait_cqe(ctx, &cqe, 60000));
			EXPECT_EQ(0, cqe->status);
			EXPECT_EQ(512U, cqe->len);
			hsm_cqe_seen(ctx, cqe);
		}
		if (busy)
			break;
		TH_LOG("round %u: inflight read 0 after the submission",
		       round);
	}
	EXPECT_LT(0U, busy);
	/* the hwrng may hold a command now and then: zero must show up */
	end = now_ms() + 20000;
	do {
		ASSERT_EQ(0, read_str(SYSFS_DEV "/inflight", buf,
				      sizeof(buf)));
		if (!strcmp(buf, "0"))
			break;
		usleep(10000);
	} while (now_ms() < end);
	EXPECT_STREQ("0", buf);
	EXPECT_EQ(0, hsm_key_destroy(ctx, h));
	hsm_close(ctx);
	hsm_close(c0);
}

/*
 * No process waits on a ring job with a timeout: the driver's watchdog must
 * fail jobs the card holds for longer than cmd_timeout_ms (by resetting
 * the controller) rather than leave them pending.  RSA-4096 signatures take
 * milliseconds each, so with a 1 ms timeout some job is always too old
 * when the watchdog looks (once a second).
 */
FIXTURE(watchdog) {
	int unused;
};

FIXTURE_SETUP(watchdog)
{
}

FIXTURE_TEARDOWN(watchdog)
{
}

TEST_F_TIMEOUT(watchdog, cancels_held_jobs, 300)
{
	enum { N = 32 };
	static const char tparam[] = TIMEOUT_PARAM;
	static const char resets[] = SYSFS_DEV "/resets";
	static const char state[] = SYSFS_DEV "/state";
	char old[32], before[32], after[32], st[32] = "";
	unsigned int i, rounds = 0, ok = 0, canceled = 0, other = 0;
	struct hsmcard_ring_cqe cqes[N];
	struct hsmcard_ring_sqe jobs[N];
	struct hsmcard_key_attrs a;
	int dev, ret = 0;
	struct tring r;
	long end;

	dev = open(DEV_PATH, O_RDWR);
	if (dev < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	ASSERT_EQ(0, gen_key(dev, HSMCARD_KEY_RSA, 4096, HSMCARD_USE_SIGN, NULL,
			     &a));
	ASSERT_EQ(0, read_str(tparam, old, sizeof(old)));
	ASSERT_EQ(0, read_str(resets, before, sizeof(before)));
	ASSERT_EQ(0, tring_open(dev, &r, N, 1 << 20));
	for (i = 0; i < N; i++)
		jobs[i] = job(HSMCARD_RING_OP_SIGN, HSMCARD_MECH_RSA_PKCS1,
			      HSMCARD_MECH_SHA256, a.handle, i * 1024, 500,
			      (512 << 10) + i * 1024, 1024, i);

	/* keep the card busy until a watchdog tick finds an old command */
	ASSERT_EQ(0, write_str(tparam, "1"));
	end = now_ms() + 30000;
	while (!canceled && !other && !ret && now_ms() < end) {
		ret = tring_run(&r, jobs, N, cqes);
		for (i = 0; !ret && i < N; i++) {
			if (!cqes[i].status)
				ok++;
			else if (cqes[i].status == -ECANCELED)
				canceled++;
			else
				other++;
		}
		rounds++;
	}
	/* restore before asserting anything */
	ASSERT_EQ(0, write_str(tparam, old));
	TH_LOG("%u rounds: %u signed, %u canceled by the watchdog's reset",
	       rounds, ok, canceled);
	ASSERT_EQ(0, ret) TH_LOG("run_jobs: %s", strerror(-ret));
	EXPECT_EQ(0U, other);
	EXPECT_LT(0U, canceled);

	/* the card comes back, and jobs run normally again */
	end = now_ms() + 30000;
	while (now_ms() < end) {
		ASSERT_EQ(0, read_str(state, st, sizeof(st)));
		if (!strcmp(st, "live"))
			break;
		usleep(50000);
	}
	ASSERT_STREQ("live", st);
	/*
	 * The reset fails the held jobs before it counts itself (when it
	 * starts the recovery): read the counter once the card is back.
	 */
	ASSERT_EQ(0, read_str(resets, after, sizeof(after)));
	EXPECT_LT(atoi(before), atoi(after));
	ASSERT_EQ(0, tring_run(&r, jobs, 8, cqes));
	for (i = 0; i < 8; i++)
		EXPECT_EQ(0, cqes[i].status);
	tring_close(&r);
	destroy_key(dev, a.handle);
	close(dev);
}

FIXTURE(removal) {
	char bdf[64];
};

FIXTURE_SETUP(removal)
{
	char link[256];
	ssize_t n;

	n = readlink("/sys/class/misc/hsmcard0/device", link, sizeof(link) - 1);
	if (n < 0)
		SKIP(return, "no hsmcard0: %s", strerror(errno));
	link[n] = '\0';
	snprintf(self->bdf, sizeof(self->bdf), "%s", strrchr(link, '/') + 1);
}

FIXTURE_TEARDOWN(removal)
{
}

/*
 * Unbinding the card with jobs in flight: every job completes (with 0 or
 * -ENODEV), further submits fail with ENODEV, the ring stays readable and
 * closes cleanly; after binding again rings work.
 */
TEST_F(removal, unbind_with_jobs_in_flight)
{
	enum { N = 32 };
	struct hsmcard_ring_sqe jobs[4];
	struct hsmcard_ring_cqe cqes[4];
	unsigned int i, gone = 0;
	struct hsmcard_key_attrs a;
	struct hsmcard_info info;
	struct tring r;
	uint64_t h;
	int dev;
	long s;

	dev = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gen_key(dev, HSMCARD_KEY_RSA, 2048, HSMCARD_USE_SIGN, NULL,
			     &a));
	h = a.handle;
	ASSERT_EQ(0, tring_open(dev, &r, N, 1 << 20));
	for (i = 0; i < N; i++)
		r.sq[i] = job(HSMCARD_RING_OP_SIGN, HSMCARD_MECH_RSA_PKCS1,
			      HSMCARD_MECH_SHA256, h, i * 1024, 500,
			      (512 << 10) + i * 1024, 1024, i);
	store_rel(&r.hdr->sq_tail, N);
	s = ioctl(r.fd, HSMCARD_IOC_RING_SUBMIT, N);
	ASSERT_LT(0, s);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/hsmcard/unbind",
				 self->bdf));
	/* Removal completed every job before it returned. */
	ASSERT_EQ((uint32_t)s, load_acq(&r.hdr->cq_tail));
	for (i = 0; i < s; i++) {
		EXPECT_TRUE(r.cq[i].status == 0 || r.cq[i].status == -ENODEV) {
			TH_LOG("job %u: status %d", i, r.cq[i].status);
		}
		gone += r.cq[i].status == -ENODEV;
	}
	TH_LOG("%ld submitted, %u failed with ENODEV", s, gone);
	EXPECT_EQ(-1, ioctl(r.fd, HSMCARD_IOC_RING_SUBMIT, N));
	EXPECT_EQ(ENODEV, errno);
	memset(&info, 0, sizeof(info));
	EXPECT_EQ(-ENODEV, xioctl(dev, HSMCARD_IOC_INFO, &info));
	tring_close(&r);
	close(dev);

	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/hsmcard/bind",
				 self->bdf));
	for (i = 0; i < 300; i++) {
		dev = open(DEV_PATH, O_RDWR);
		if (dev >= 0)
			break;
		usleep(100000);
	}
	ASSERT_LE(0, dev);
	destroy_key(dev, h);
	ASSERT_EQ(0, tring_open(dev, &r, 8, 1 << 16));
	for (i = 0; i < 4; i++)
		jobs[i] = job(HSMCARD_RING_OP_RANDOM, 0, 0, 0, 0, 0, i * 64, 64,
			      i);
	ASSERT_EQ(0, tring_run(&r, jobs, 4, cqes));
	for (i = 0; i < 4; i++)
		EXPECT_EQ(0, cqes[i].status);
	tring_close(&r);
	close(dev);
}

TEST_HARNESS_MAIN
