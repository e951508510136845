// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard ioctl tests (run in the test guest as root, driver bound).
 *
 * Every result the card produces is checked against an independent oracle:
 * host OpenSSL (libcrypto) verifies signatures with the exported public
 * key, re-computes digests, HMACs and AES results from clear keys imported
 * into the card, and published vectors (FIPS 180-2, RFC 4231) pin the
 * basics.  Every ioctl's bad-argument cases are checked for the exact errno
 * documented in Documentation/hsmcard/uapi.rst.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/if_alg.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsmcard.h"
#include "kselftest_harness.h"
#include "hsmcard_util.h"


/* ---- small helpers ---- */

static int hex2bin(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex) / 2, i;

	if (n > max)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned int v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = v;
	}
	return n;
}

static const EVP_MD *md_of(uint16_t mech)
{
	switch (mech) {
	case HSMCARD_MECH_SHA256: return EVP_sha256();
	case HSMCARD_MECH_SHA384: return EVP_sha384();
	case HSMCARD_MECH_SHA512: return EVP_sha512();
	default: return NULL;
	}
}

FIXTURE(card) {
	int fd;
	struct hsmcard_info info;
};

FIXTURE_SETUP(card)
{
	self->fd = open(DEV_PATH, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	memset(&self->info, 0, sizeof(self->info));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_INFO, &self->info));
}

FIXTURE_TEARDOWN(card)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* ---- info, generic ioctl checks ---- */

TEST_F(card, info)
{
	struct hsmcard_info *i = &self->info;
	char buf[64] = "";
	FILE *f;

	ASSERT_EQ((uint32_t)HSMCARD_STATE_LIVE, i->state);
	ASSERT_LT(0U, strnlen(i->serial, sizeof(i->serial)));
	ASSERT_GT(sizeof(i->serial), strnlen(i->serial, sizeof(i->serial)));
	ASSERT_GT(sizeof(i->fw_version),
		  strnlen(i->fw_version, sizeof(i->fw_version)));
	ASSERT_EQ(1U, i->hw_version >> 16);
	ASSERT_LE(1U, i->nr_queues);
	ASSERT_LE(i->nr_queues, i->max_ioq);
	ASSERT_LE(4096U, i->max_xfer);
	ASSERT_LE(i->nr_keys, i->max_keys);
	ASSERT_NE(0U, i->mechs & (1ULL << HSMCARD_MECH_SHA256));
	ASSERT_NE(0U, i->key_types & (1U << HSMCARD_KEY_RSA));
	ASSERT_EQ(0U, i->rsvd[0] | i->rsvd[1] | i->rsvd[2] | i->rsvd[3]);

	/* sysfs agrees with the ioctl */
	f = fopen(SYSFS_DEV "/serial", "r");
	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(buf, sizeof(buf), f));
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	ASSERT_STREQ(i->serial, buf);
	f = fopen(SYSFS_DEV "/state", "r");
	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(buf, sizeof(buf), f));
	fclose(f);
	ASSERT_STREQ("live\n", buf);
}

TEST_F(card, generic_errors)
{
	struct hsmcard_info info;
	struct hsmcard_op op;

	memset(&info, 0, sizeof(info));
	info.flags = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_INFO, &info));
	/* unknown number, and a known number with the wrong size */
	ASSERT_EQ(-ENOTTY, xioctl(self->fd, _IOWR('H', 0x7f, struct hsmcard_op),
				  &op));
	ASSERT_EQ(-ENOTTY, xioctl(self->fd, _IOWR('H', 0x15, struct hsmcard_info),
				  &info));
	ASSERT_EQ(-ENOTTY, xioctl(self->fd, _IOWR('X', 0x00, struct hsmcard_info),
				  &info));
	/* unreadable argument */
	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_INFO, NULL));
	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_SIGN, (void *)8));
	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, NULL));
}

/* ---- random ---- */

TEST_F(card, random)
{
	uint32_t max = self->info.max_xfer;
	uint8_t a[256], b[256], *big;
	struct hsmcard_random r;
	size_t i, ones = 0;

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	r = (struct hsmcard_random){ .buf = (uintptr_t)a, .len = sizeof(a) };
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	r.buf = (uintptr_t)b;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	ASSERT_NE(0, memcmp(a, b, sizeof(a)));

	/* a full-size request crosses pages: the SGL path */
	big = calloc(1, max);
	ASSERT_NE(NULL, big);
	r = (struct hsmcard_random){ .buf = (uintptr_t)big, .len = max };
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	for (i = 0; i < max; i++)
		ones += __builtin_popcount(big[i]);
	/* 8 * max bits: the count of ones is within 1% of half */
	ASSERT_LT(labs((long)ones - (long)max * 4), (long)max * 8 / 100);
	/* the last page was written too */
	for (i = 0, ones = 0; i < 4096; i++)
		ones |= big[max - 1 - i];
	ASSERT_NE(0U, ones);

	r.len = 0;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	r.len = max + 1;
	ASSERT_EQ(-E2BIG, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	r.len = 16;
	r.flags = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	r.flags = 0;
	r.buf = 0;
	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_RANDOM, &r));
	free(big);
}

/* ---- digest ---- */

TEST_F(card, digest_vectors)
{
	/* FIPS 180-2 appendix B.1 / C.1 / D.1: SHA-x("abc") */
	static const struct {
		uint16_t mech;
		const char *hex;
	} v[] = {
		{ HSMCARD_MECH_SHA256,
		  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ HSMCARD_MECH_SHA384,
		  "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
		  "8086072ba1e7cc2358baeca134c825a7" },
		{ HSMCARD_MECH_SHA512,
		  "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
		  "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
	};
	uint8_t want[64], got[64];
	unsigned int i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint32_t len = sizeof(got);
		int n = hex2bin(v[i].hex, want, sizeof(want));

		ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_DIGEST, 0, v[i].mech,
				    0, 0, "abc", 3, got, &len));
		ASSERT_EQ((uint32_t)n, len);
		ASSERT_EQ(0, memcmp(want, got, n));
	}
}

TEST_F(card, digest_vs_openssl)
{
	static const uint32_t sizes[] = { 0, 1, 55, 64, 4095, 4096, 4097,
					  70000 };
	static const uint16_t mechs[] = { HSMCARD_MECH_SHA256,
					  HSMCARD_MECH_SHA384,
					  HSMCARD_MECH_SHA512 };
	uint8_t *msg = malloc(70000), got[64], want[64];
	unsigned int i, j, wl;

	ASSERT_NE(NULL, msg);
	fill_pattern(msg, 70000, 1);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (j = 0; j < 3; j++) {
			uint32_t len = sizeof(got);

			ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
					    mechs[j], 0, 0, msg, sizes[i], got,
					    &len));
			ASSERT_EQ(1, EVP_Digest(msg, sizes[i], want, &wl,
						md_of(mechs[j]), NULL));
			ASSERT_EQ(wl, len);
			ASSERT_EQ(0, memcmp(want, got, wl));
		}
	}
	free(msg);
}

TEST_F(card, digest_errors)
{
	uint8_t out[64], msg[16] = { 0 };
	struct hsmcard_op op;
	uint32_t len;

	/* output too small: -ENOSPC and the size needed */
	len = 8;
	ASSERT_EQ(-ENOSPC, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				  HSMCARD_MECH_SHA256, 0, 0, msg, 16, out, &len));
	ASSERT_EQ(32U, len);
	/* a key handle makes no sense for a digest */
	len = sizeof(out);
	ASSERT_EQ(-EINVAL, run_op(self->fd, HSMCARD_IOC_DIGEST, 1,
				  HSMCARD_MECH_SHA256, 0, 0, msg, 16, out, &len));
	/* mechanism 0, out of range, defined but not a digest */
	ASSERT_EQ(-EINVAL, run_op(self->fd, HSMCARD_IOC_DIGEST, 0, 0, 0, 0,
				  msg, 16, out, &len));
	ASSERT_EQ(-EINVAL, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				  HSMCARD_MECH_MAX, 0, 0, msg, 16, out, &len));
	ASSERT_EQ(-EOPNOTSUPP, run_op(self->fd, HSMCARD_IOC_DIGEST, 0, 63, 0,
				      0, msg, 16, out, &len));
	/* PREHASHED is for sign/verify only; unknown flags */
	ASSERT_EQ(-EINVAL, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				  HSMCARD_MECH_SHA256, 0,
				  HSMCARD_OP_F_PREHASHED, msg, 16, out, &len));
	ASSERT_EQ(-EINVAL, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				  HSMCARD_MECH_SHA256, 0, 0x80, msg, 16, out,
				  &len));
	/* too long; unreadable input; unwritable output */
	ASSERT_EQ(-E2BIG, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				 HSMCARD_MECH_SHA256, 0, 0, msg,
				 self->info.max_xfer + 1, out, &len));
	ASSERT_EQ(-EFAULT, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				  HSMCARD_MECH_SHA256, 0, 0, NULL, 16, out,
				  &len));
	len = sizeof(out);
	ASSERT_EQ(-EFAULT, run_op(self->fd, HSMCARD_IOC_DIGEST, 0,
				  HSMCARD_MECH_SHA256, 0, 0, msg, 16,
				  (void *)8, &len));
	/* reserved fields, IV, AAD, salt */
	memset(&op, 0, sizeof(op));
	op.mech = HSMCARD_MECH_SHA256;
	op.in = (uintptr_t)msg;
	op.in_len = 16;
	op.out = (uintptr_t)out;
	op.out_len = sizeof(out);
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_DIGEST, &op));
	op.out_len = sizeof(out);
	op.rsvd[1] = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_DIGEST, &op));
	op.rsvd[1] = 0;
	op.iv[15] = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_DIGEST, &op));
	op.iv[15] = 0;
	op.aad_len = 4;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_DIGEST, &op));
	op.aad_len = 0;
	op.salt_len = 4;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_DIGEST, &op));
}

/* ---- signatures ---- */

struct sig_case {
	uint16_t mech;
	uint16_t hash;
	int pad;
	uint32_t salt;
	bool prehashed;
};

static void check_signatures(struct __test_metadata *_metadata, int fd,
			     uint64_t handle, const struct sig_case *c,
			     unsigned int n)
{
	uint8_t msg[300], sig[1024], dgst[64];
	EVP_PKEY *pk = export_pub(fd, handle);
	unsigned int i, dl = 0;

	ASSERT_NE(NULL, pk);
	fill_pattern(msg, sizeof(msg), 3);
	for (i = 0; i < n; i++) {
		const EVP_MD *md = md_of(c[i].hash);
		const uint8_t *in = msg;
		uint32_t in_len = sizeof(msg);
		uint32_t sl = sizeof(sig);
		struct hsmcard_op op;

		if (c[i].prehashed) {
			ASSERT_EQ(1, EVP_Digest(msg, sizeof(msg), dgst, &dl, md,
						NULL));
			in = dgst;
			in_len = dl;
		}
		memset(&op, 0, sizeof(op));
		op.handle = handle;
		op.mech = c[i].mech;
		op.mparam = c[i].hash;
		op.flags = c[i].prehashed ? HSMCARD_OP_F_PREHASHED : 0;
		op.salt_len = c[i].salt;
		op.in = (uintptr_t)in;
		op.in_len = in_len;
		op.out = (uintptr_t)sig;
		op.out_len = sl;
		ASSERT_EQ(0, xioctl(fd, HSMCARD_IOC_SIGN, &op));
		sl = op.out_len;
		ASSERT_LT(0U, sl);
		TH_LOG("mech %u hash %u%s: %u-byte signature", c[i].mech,
		       c[i].hash, c[i].prehashed ? " prehashed" : "", sl);

		/* the oracle: OpenSSL with the exported public key */
		ASSERT_EQ(1, ossl_verify(pk, md, c[i].pad, c[i].salt,
					 c[i].prehashed, in, in_len, sig, sl));

		/* the card's own verify accepts it... */
		op.out_len = sl;
		ASSERT_EQ(0, xioctl(fd, HSMCARD_IOC_VERIFY, &op));
		/* ...and rejects a modified message or signature */
		msg[0] ^= 1;
		dgst[0] ^= 1;
		ASSERT_EQ(-EBADMSG, xioctl(fd, HSMCARD_IOC_VERIFY, &op));
		msg[0] ^= 1;
		dgst[0] ^= 1;
		sig[sl / 2] ^= 0x10;
		ASSERT_EQ(-EBADMSG, xioctl(fd, HSMCARD_IOC_VERIFY, &op));
		ASSERT_EQ(0, ossl_verify(pk, md, c[i].pad, c[i].salt,
					 c[i].prehashed, in, in_len, sig, sl));
	}
	EVP_PKEY_free(pk);
}

TEST_F(card, ecdsa_p256)
{
	static const struct sig_case c[] = {
		{ HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA256, 0, 0, false },
		{ HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA256, 0, 0, true },
		{ HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA384, 0, 0, false },
	};
	struct hsmcard_key_attrs a;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 0, 0, "p256", &a));
	check_signatures(_metadata, self->fd, a.handle, c, 3);
	destroy_key(self->fd, a.handle);
}

TEST_F(card, ecdsa_p384)
{
	static const struct sig_case c[] = {
		{ HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA384, 0, 0, false },
		{ HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA512, 0, 0, true },
	};
	struct hsmcard_key_attrs a;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P384, 0, 0, "p384", &a));
	check_signatures(_metadata, self->fd, a.handle, c, 2);
	destroy_key(self->fd, a.handle);
}

TEST_F(card, ed25519)
{
	uint8_t msg[100], sig[128];
	struct hsmcard_key_attrs a;
	EVP_MD_CTX *ctx;
	EVP_PKEY *pk;
	uint32_t sl = sizeof(sig);

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_ED25519, 0, 0, "ed", &a));
	fill_pattern(msg, sizeof(msg), 9);
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_SIGN, a.handle,
			    HSMCARD_MECH_EDDSA, 0, 0, msg, sizeof(msg), sig,
			    &sl));
	ASSERT_EQ(64U, sl);
	pk = export_pub(self->fd, a.handle);
	ASSERT_NE(NULL, pk);
	ASSERT_EQ(EVP_PKEY_ED25519, EVP_PKEY_get_base_id(pk));
	ctx = EVP_MD_CTX_new();
	ASSERT_EQ(1, EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk));
	ASSERT_EQ(1, EVP_DigestVerify(ctx, sig, sl, msg, sizeof(msg)));
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	/* Ed25519 is pure: no prehashed mode */
	sl = sizeof(sig);
	ASSERT_NE(0, run_op(self->fd, HSMCARD_IOC_SIGN, a.handle,
			    HSMCARD_MECH_EDDSA, 0, HSMCARD_OP_F_PREHASHED, msg,
			    32, sig, &sl));
	destroy_key(self->fd, a.handle);
}

static void rsa_case(struct __test_metadata *_metadata, int fd,
		     uint16_t bits, uint16_t hash)
{
	const struct sig_case c[] = {
		{ HSMCARD_MECH_RSA_PKCS1, hash, RSA_PKCS1_PADDING, 0, false },
		{ HSMCARD_MECH_RSA_PKCS1, hash, RSA_PKCS1_PADDING, 0, true },
		{ HSMCARD_MECH_RSA_PSS, hash, RSA_PKCS1_PSS_PADDING,
		  EVP_MD_get_size(md_of(hash)), false },
		{ HSMCARD_MECH_RSA_PSS, hash, RSA_PKCS1_PSS_PADDING, 20, true },
	};
	struct hsmcard_key_attrs a;
	uint8_t pt[32], ct[512], out[512];
	size_t ctl = sizeof(ct);
	EVP_PKEY_CTX *pctx;
	EVP_PKEY *pk;
	uint32_t ol = sizeof(out);

	ASSERT_EQ(0, gen_key(fd, HSMCARD_KEY_RSA, bits,
			     HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY |
			     HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT,
			     "rsa", &a));
	ASSERT_EQ(HSMCARD_KEY_RSA, a.type);
	ASSERT_EQ(bits, a.bits);
	check_signatures(_metadata, fd, a.handle, c, 4);

	/* OAEP: OpenSSL encrypts with the exported key, the card decrypts */
	pk = export_pub(fd, a.handle);
	ASSERT_NE(NULL, pk);
	ASSERT_EQ(bits, EVP_PKEY_get_bits(pk));
	fill_pattern(pt, sizeof(pt), 5);
	pctx = EVP_PKEY_CTX_new(pk, NULL);
	ASSERT_EQ(1, EVP_PKEY_encrypt_init(pctx));
	ASSERT_EQ(1, EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING));
	ASSERT_EQ(1, EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md_of(hash)));
	ASSERT_EQ(1, EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md_of(hash)));
	ASSERT_EQ(1, EVP_PKEY_encrypt(pctx, ct, &ctl, pt, sizeof(pt)));
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(pk);
	ASSERT_EQ(0, run_op(fd, HSMCARD_IOC_DECRYPT, a.handle,
			    HSMCARD_MECH_RSA_OAEP, hash, 0, ct, ctl, out, &ol));
	ASSERT_EQ(sizeof(pt), ol);
	ASSERT_EQ(0, memcmp(pt, out, sizeof(pt)));
	/* a damaged ciphertext fails to decrypt */
	ct[ctl / 2] ^= 1;
	ol = sizeof(out);
	ASSERT_EQ(-EBADMSG, run_op(fd, HSMCARD_IOC_DECRYPT, a.handle,
				   HSMCARD_MECH_RSA_OAEP, hash, 0, ct, ctl,
				   out, &ol));
	destroy_key(fd, a.handle);
}

TEST_F(card, rsa2048)
{
	rsa_case(_metadata, self->fd, 2048, HSMCARD_MECH_SHA256);
}

TEST_F_TIMEOUT(card, rsa3072, 120)
{
	rsa_case(_metadata, self->fd, 3072, HSMCARD_MECH_SHA384);
}

TEST_F_TIMEOUT(card, rsa4096, 240)
{
	rsa_case(_metadata, self->fd, 4096, HSMCARD_MECH_SHA512);
}

/* ---- HMAC ---- */

TEST_F(card, hmac_rfc4231)
{
	/* RFC 4231 test case 1 */
	static const char *want256 =
		"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
	static const char *want512 =
		"87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
		"daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854";
	uint8_t key[20], want[64], mac[64];
	uint64_t h;
	uint32_t ml;
	int n;

	memset(key, 0x0b, sizeof(key));
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_HMAC, 160,
				HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, key,
				sizeof(key), &h));
	ml = sizeof(mac);
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_MAC, h,
			    HSMCARD_MECH_HMAC_SHA256, 0, 0, "Hi There", 8, mac,
			    &ml));
	n = hex2bin(want256, want, sizeof(want));
	ASSERT_EQ((uint32_t)n, ml);
	ASSERT_EQ(0, memcmp(want, mac, n));
	ml = sizeof(mac);
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_MAC, h,
			    HSMCARD_MECH_HMAC_SHA512, 0, 0, "Hi There", 8, mac,
			    &ml));
	n = hex2bin(want512, want, sizeof(want));
	ASSERT_EQ((uint32_t)n, ml);
	ASSERT_EQ(0, memcmp(want, mac, n));
	destroy_key(self->fd, h);
}

TEST_F(card, hmac_vs_openssl)
{
	static const uint16_t mechs[] = { HSMCARD_MECH_HMAC_SHA256,
					  HSMCARD_MECH_HMAC_SHA384,
					  HSMCARD_MECH_HMAC_SHA512 };
	static const uint16_t dg[] = { HSMCARD_MECH_SHA256,
				       HSMCARD_MECH_SHA384,
				       HSMCARD_MECH_SHA512 };
	uint8_t key[48], msg[5000], mac[64], want[64];
	struct hsmcard_key_attrs a;
	unsigned int i, wl;
	uint64_t h;
	uint32_t ml;

	fill_pattern(key, sizeof(key), 11);
	fill_pattern(msg, sizeof(msg), 12);
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_HMAC, 384,
				HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, key,
				sizeof(key), &h));
	for (i = 0; i < 3; i++) {
		ml = sizeof(mac);
		ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_MAC, h, mechs[i], 0,
				    0, msg, sizeof(msg), mac, &ml));
		ASSERT_NE(NULL, HMAC(md_of(dg[i]), key, sizeof(key), msg,
				     sizeof(msg), want, &wl));
		ASSERT_EQ(wl, ml);
		ASSERT_EQ(0, memcmp(want, mac, wl));
		/* MAC_VERIFY: out carries the expected MAC */
		ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_MAC_VERIFY, h,
				    mechs[i], 0, 0, msg, sizeof(msg), want,
				    &wl));
		want[3] ^= 0x40;
		ASSERT_EQ(-EBADMSG, run_op(self->fd, HSMCARD_IOC_MAC_VERIFY, h,
					   mechs[i], 0, 0, msg, sizeof(msg),
					   want, &wl));
	}
	destroy_key(self->fd, h);

	/* a key generated in the card: MAC then MAC_VERIFY round trip */
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_HMAC, 256, 0, "hmac", &a));
	ml = sizeof(mac);
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_MAC, a.handle,
			    HSMCARD_MECH_HMAC_SHA256, 0, 0, msg, 100, mac,
			    &ml));
	ASSERT_EQ(32U, ml);
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_MAC_VERIFY, a.handle,
			    HSMCARD_MECH_HMAC_SHA256, 0, 0, msg, 100, mac,
			    &ml));
	/* a public-key export of a secret key is refused */
	ASSERT_EQ(NULL, export_pub(self->fd, a.handle));
	destroy_key(self->fd, a.handle);
}

/* ---- AES ---- */

static const EVP_CIPHER *aes_cipher(uint16_t mech, unsigned int key_len)
{
	switch (mech) {
	case HSMCARD_MECH_AES_ECB:
		return key_len == 16 ? EVP_aes_128_ecb() : EVP_aes_256_ecb();
	case HSMCARD_MECH_AES_CBC:
		return key_len == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
	case HSMCARD_MECH_AES_CTR:
		return key_len == 16 ? EVP_aes_128_ctr() : EVP_aes_256_ctr();
	case HSMCARD_MECH_AES_XTS:
		return key_len == 32 ? EVP_aes_128_xts() : EVP_aes_256_xts();
	default:
		return NULL;
	}
}

static int ossl_crypt(const EVP_CIPHER *c, const uint8_t *key,
		      const uint8_t *iv, const uint8_t *in, int len,
		      uint8_t *out, int enc)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0, ok;

	ok = EVP_CipherInit_ex(ctx, c, NULL, key, iv, enc) == 1 &&
	     EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
	     EVP_CipherUpdate(ctx, out, &l1, in, len) == 1 &&
	     EVP_CipherFinal_ex(ctx, out + l1, &l2) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? l1 + l2 : -1;
}

static int card_crypt(int fd, unsigned long req, uint64_t h, uint16_t mech,
		      const uint8_t *iv, uint32_t aad_len, uint16_t tag_len,
		      const uint8_t *in, uint32_t len, uint8_t *out,
		      uint32_t *out_len)
{
	struct hsmcard_op op;
	int ret;

	memset(&op, 0, sizeof(op));
	op.handle = h;
	op.mech = mech;
	op.mparam = tag_len;
	op.aad_len = aad_len;
	if (iv)
		memcpy(op.iv, iv, 16);
	op.in = (uintptr_t)in;
	op.in_len = len;
	op.out = (uintptr_t)out;
	op.out_len = *out_len;
	ret = xioctl(fd, req, &op);
	*out_len = op.out_len;
	return ret;
}

TEST_F(card, aes_modes_vs_openssl)
{
	static const uint16_t mechs[] = { HSMCARD_MECH_AES_ECB,
					  HSMCARD_MECH_AES_CBC,
					  HSMCARD_MECH_AES_CTR,
					  HSMCARD_MECH_AES_XTS };
	static const uint32_t lens[] = { 16, 4096, 9008 };
	const uint32_t ulen = 9008 + 16;
	uint8_t *pt = malloc(ulen), *ct = malloc(ulen), *want = malloc(ulen);
	uint8_t *back = malloc(ulen), key[64], iv[16];
	const uint8_t *iv_or_null;
	unsigned int m, l, k;

	ASSERT_NE(NULL, back);
	fill_pattern(pt, ulen, 21);
	fill_pattern(key, sizeof(key), 22);
	fill_pattern(iv, sizeof(iv), 23);
	for (m = 0; m < 4; m++) {
		for (k = 0; k < 2; k++) {
			unsigned int kl = k ? 32 : 16;
			uint64_t h;

			if (mechs[m] == HSMCARD_MECH_AES_XTS)
				kl *= 2;
			ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_AES,
						kl * 8,
						HSMCARD_USE_ENCRYPT |
						HSMCARD_USE_DECRYPT, key, kl,
						&h));
			for (l = 0; l < 3; l++) {
				/* CTR: any length; XTS: ciphertext stealing */
				uint32_t len = lens[l] +
					(mechs[m] == HSMCARD_MECH_AES_CTR ? 5 :
					 mechs[m] == HSMCARD_MECH_AES_XTS ? 3 :
					 0);
				uint32_t ol = ulen;

				/* ECB takes no IV: the card wants zeros */
				iv_or_null = mechs[m] == HSMCARD_MECH_AES_ECB ?
					NULL : iv;
				ASSERT_EQ(0, card_crypt(self->fd,
							HSMCARD_IOC_ENCRYPT, h,
							mechs[m], iv_or_null,
							0, 0, pt,
							len, ct, &ol));
				ASSERT_EQ(len, ol);
				ASSERT_EQ((int)len,
					  ossl_crypt(aes_cipher(mechs[m], kl),
						     key, iv, pt, len, want, 1));
				ASSERT_EQ(0, memcmp(want, ct, len));
				ol = ulen;
				ASSERT_EQ(0, card_crypt(self->fd,
							HSMCARD_IOC_DECRYPT, h,
							mechs[m], iv_or_null,
							0, 0, ct,
							len, back, &ol));
				ASSERT_EQ(len, ol);
				ASSERT_EQ(0, memcmp(pt, back, len));
			}
			destroy_key(self->fd, h);
		}
	}
	free(pt);
	free(ct);
	free(want);
	free(back);
}

TEST_F(card, aes_gcm_vs_openssl)
{
	uint8_t key[32], iv[16] = { 0 }, aad[20], pt[1000], in[1100];
	uint8_t out[1100], tag[16], ct[1000];
	EVP_CIPHER_CTX *ctx;
	uint32_t ol;
	uint64_t h;
	int l;

	fill_pattern(key, sizeof(key), 31);
	fill_pattern(iv, 12, 32);
	fill_pattern(aad, sizeof(aad), 33);
	fill_pattern(pt, sizeof(pt), 34);
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_AES, 256,
				HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT, key,
				sizeof(key), &h));
	/* card: AAD || plaintext -> ciphertext || tag */
	memcpy(in, aad, sizeof(aad));
	memcpy(in + sizeof(aad), pt, sizeof(pt));
	ol = sizeof(out);
	ASSERT_EQ(0, card_crypt(self->fd, HSMCARD_IOC_ENCRYPT, h,
				HSMCARD_MECH_AES_GCM, iv, sizeof(aad), 16, in,
				sizeof(aad) + sizeof(pt), out, &ol));
	ASSERT_EQ(sizeof(pt) + 16, ol);

	ctx = EVP_CIPHER_CTX_new();
	ASSERT_EQ(1, EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL,
					NULL));
	ASSERT_EQ(1, EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12,
					 NULL));
	ASSERT_EQ(1, EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv));
	ASSERT_EQ(1, EVP_EncryptUpdate(ctx, NULL, &l, aad, sizeof(aad)));
	ASSERT_EQ(1, EVP_EncryptUpdate(ctx, ct, &l, pt, sizeof(pt)));
	ASSERT_EQ(1, EVP_EncryptFinal_ex(ctx, ct + l, &l));
	ASSERT_EQ(1, EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag));
	EVP_CIPHER_CTX_free(ctx);
	ASSERT_EQ(0, memcmp(ct, out, sizeof(pt)));
	ASSERT_EQ(0, memcmp(tag, out + sizeof(pt), 16));

	/* decrypt: AAD || ciphertext || tag -> plaintext */
	memcpy(in + sizeof(aad), out, sizeof(pt) + 16);
	ol = sizeof(pt);
	ASSERT_EQ(0, card_crypt(self->fd, HSMCARD_IOC_DECRYPT, h,
				HSMCARD_MECH_AES_GCM, iv, sizeof(aad), 16, in,
				sizeof(aad) + sizeof(pt) + 16, out, &ol));
	ASSERT_EQ(sizeof(pt), ol);
	ASSERT_EQ(0, memcmp(pt, out, sizeof(pt)));
	/* a damaged tag or AAD is refused, with no plaintext */
	in[sizeof(aad) + sizeof(pt) + 3] ^= 1;
	memset(out, 0, sizeof(out));
	ol = sizeof(pt);
	ASSERT_EQ(-EBADMSG, card_crypt(self->fd, HSMCARD_IOC_DECRYPT, h,
				       HSMCARD_MECH_AES_GCM, iv, sizeof(aad),
				       16, in, sizeof(aad) + sizeof(pt) + 16,
				       out, &ol));
	in[sizeof(aad) + sizeof(pt) + 3] ^= 1;
	in[0] ^= 1;
	ASSERT_EQ(-EBADMSG, card_crypt(self->fd, HSMCARD_IOC_DECRYPT, h,
				       HSMCARD_MECH_AES_GCM, iv, sizeof(aad),
				       16, in, sizeof(aad) + sizeof(pt) + 16,
				       out, &ol));
	ASSERT_EQ(0, memcmp(out, (uint8_t[64]){ 0 }, 64));
	/* AAD longer than the input; AAD with a non-GCM mechanism */
	ol = sizeof(out);
	ASSERT_EQ(-EINVAL, card_crypt(self->fd, HSMCARD_IOC_ENCRYPT, h,
				      HSMCARD_MECH_AES_GCM, iv, 2000, 16, in,
				      100, out, &ol));
	ASSERT_EQ(-EINVAL, card_crypt(self->fd, HSMCARD_IOC_ENCRYPT, h,
				      HSMCARD_MECH_AES_CBC, iv, 16, 0, in,
				      32, out, &ol));
	destroy_key(self->fd, h);
}

TEST_F(card, aes_generated_round_trip)
{
	uint8_t pt[4096], ct[4096], back[4096], iv[16];
	struct hsmcard_key_attrs a;
	uint32_t ol;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 256,
			     HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT, "aes",
			     &a));
	fill_pattern(pt, sizeof(pt), 41);
	fill_pattern(iv, sizeof(iv), 42);
	ol = sizeof(ct);
	ASSERT_EQ(0, card_crypt(self->fd, HSMCARD_IOC_ENCRYPT, a.handle,
				HSMCARD_MECH_AES_CBC, iv, 0, 0, pt, sizeof(pt),
				ct, &ol));
	ASSERT_NE(0, memcmp(pt, ct, sizeof(pt)));
	ol = sizeof(back);
	ASSERT_EQ(0, card_crypt(self->fd, HSMCARD_IOC_DECRYPT, a.handle,
				HSMCARD_MECH_AES_CBC, iv, 0, 0, ct, sizeof(ct),
				back, &ol));
	ASSERT_EQ(0, memcmp(pt, back, sizeof(pt)));
	/* CBC without padding: a partial block is an invalid length */
	ol = sizeof(ct);
	ASSERT_EQ(-EINVAL, card_crypt(self->fd, HSMCARD_IOC_ENCRYPT, a.handle,
				      HSMCARD_MECH_AES_CBC, iv, 0, 0, pt, 17,
				      ct, &ol));
	/* an AES key cannot sign: wrong key type for the mechanism */
	ol = sizeof(ct);
	ASSERT_EQ(-EKEYREJECTED, run_op(self->fd, HSMCARD_IOC_SIGN, a.handle,
					HSMCARD_MECH_ECDSA,
					HSMCARD_MECH_SHA256, 0, pt, 32, ct,
					&ol));
	destroy_key(self->fd, a.handle);
}

/* ---- key management ---- */

TEST_F(card, key_lifecycle)
{
	struct hsmcard_key_get_attrs ga;
	struct hsmcard_key_attrs a;
	struct hsmcard_key_list kl;
	struct hsmcard_key_handle kh;
	uint64_t handles[4];
	unsigned int seen = 0, calls = 0;
	uint32_t total = 0;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 128,
			     HSMCARD_USE_ENCRYPT, "lifecycle-label", &a));
	ASSERT_NE(0U, a.handle);
	ASSERT_EQ(HSMCARD_KEY_AES, a.type);
	ASSERT_EQ(128, a.bits);
	ASSERT_EQ(HSMCARD_USE_ENCRYPT, a.uses);
	ASSERT_STREQ("lifecycle-label", a.label);
	ASSERT_LT(1600000000ULL, a.created);

	memset(&ga, 0, sizeof(ga));
	ga.handle = a.handle;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	ASSERT_EQ(a.handle, ga.attrs.handle);
	ASSERT_EQ(128, ga.attrs.bits);
	ASSERT_STREQ("lifecycle-label", ga.attrs.label);
	ASSERT_EQ(a.created, ga.attrs.created);

	/* walk the list one handle at a time with the cursor */
	memset(&kl, 0, sizeof(kl));
	do {
		kl.handles = (uintptr_t)handles;
		kl.max = 1;
		ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_LIST, &kl));
		ASSERT_GE(1U, kl.count);
		if (kl.count && handles[0] == a.handle)
			seen++;
		total = kl.total;
		calls++;
	} while (kl.count && calls < 100000);
	ASSERT_EQ(1U, seen);
	ASSERT_EQ(total, kl.cursor);

	/* destroy: the handle is gone everywhere */
	kh = (struct hsmcard_key_handle){ .handle = a.handle };
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	memset(&kl, 0, sizeof(kl));
	kl.handles = (uintptr_t)handles;
	kl.max = 4;
	do {
		ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_LIST, &kl));
		for (unsigned int i = 0; i < kl.count; i++)
			ASSERT_NE(a.handle, handles[i]);
	} while (kl.count);
}

TEST_F(card, key_errors)
{
	struct hsmcard_key_get_attrs ga;
	struct hsmcard_key_pubkey pk;
	struct hsmcard_key_import imp;
	struct hsmcard_key_attrs a, g;
	struct hsmcard_key_list kl;
	struct hsmcard_key_handle kh;
	uint8_t der[1024], key[16] = { 1 }, msg[32] = { 0 }, sig[128];
	struct hsmcard_op op;
	uint32_t need, sl;

#define GEN_EXPECT(err, field, val) do {				\
		memset(&g, 0, sizeof(g));				\
		g.type = HSMCARD_KEY_AES;				\
		g.bits = 128;						\
		g.field = val;						\
		ASSERT_EQ(err, xioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, &g)); \
	} while (0)

	GEN_EXPECT(-EINVAL, type, 0);
	GEN_EXPECT(-EINVAL, type, HSMCARD_KEY_TYPE_MAX);
	GEN_EXPECT(-EINVAL, uses, 0x80);
	GEN_EXPECT(-EINVAL, flags, 0x10);
	GEN_EXPECT(-EPERM, partition, HSMCARD_PARTITION_KERNEL);
	GEN_EXPECT(-EINVAL, partition, 7);
	GEN_EXPECT(-EINVAL, handle, 5);
	GEN_EXPECT(-EINVAL, created, 5);
	GEN_EXPECT(-EINVAL, rsvd, 1);
	GEN_EXPECT(-EINVAL, id_len, HSMCARD_KEY_ID_LEN + 1);
	GEN_EXPECT(-EINVAL, id[0], 1);		/* id_len 0: all zero */
	GEN_EXPECT(-EINVAL, version, 1);
	GEN_EXPECT(-EINVAL, activated, 5);
	GEN_EXPECT(-EINVAL, deactivated, 5);
	GEN_EXPECT(-EINVAL, state, HSMCARD_KEY_STATE_DEACTIVATED);
	GEN_EXPECT(-EINVAL, state, 9);
	GEN_EXPECT(-EINVAL, bits, 100);		/* card: invalid key size */
	memset(&g, 0, sizeof(g));
	g.type = HSMCARD_KEY_AES;
	g.bits = 128;
	memset(g.label, 'x', sizeof(g.label));	/* not terminated */
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, &g));
	g.label[0] = 0;				/* garbage after the NUL */
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, &g));

	/* import */
	memset(&imp, 0, sizeof(imp));
	imp.attrs.type = HSMCARD_KEY_AES;
	imp.attrs.bits = 128;
	imp.key = (uintptr_t)key;
	imp.key_len = 0;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_IMPORT, &imp));
	imp.key_len = self->info.max_xfer;
	ASSERT_EQ(-E2BIG, xioctl(self->fd, HSMCARD_IOC_KEY_IMPORT, &imp));
	imp.key_len = 16;
	imp.flags = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_IMPORT, &imp));
	imp.flags = 0;
	imp.key = 8;
	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_KEY_IMPORT, &imp));
	imp.key = (uintptr_t)key;
	imp.key_len = 15;			/* not an AES key size */
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_IMPORT, &imp));

	/* list */
	memset(&kl, 0, sizeof(kl));
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_LIST, &kl));
	kl.max = 4;
	kl.flags = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_LIST, &kl));
	kl.flags = 0;
	kl.rsvd = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_LIST, &kl));

	/* unknown handles */
	memset(&ga, 0, sizeof(ga));
	ga.handle = 0x1234567890abcdefULL;
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	ga.flags = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	kh = (struct hsmcard_key_handle){ .handle = 0 };
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	kh.rsvd = 1;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));

	/* public key export: sizes, types, pointers */
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 0,
			     HSMCARD_USE_VERIFY, "verify-only", &a));
	pk = (struct hsmcard_key_pubkey){ .handle = a.handle,
					  .buf = (uintptr_t)der, .len = 1 };
	ASSERT_EQ(-ENOSPC, xioctl(self->fd, HSMCARD_IOC_KEY_PUBKEY, &pk));
	need = pk.len;
	ASSERT_LT(64U, need);			/* P-256 SPKI is 91 bytes */
	ASSERT_GT(sizeof(der), need);
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_PUBKEY, &pk));
	ASSERT_EQ(need, pk.len);
	pk.len = 0;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_PUBKEY, &pk));
	pk.len = sizeof(der);
	pk.buf = 8;
	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_KEY_PUBKEY, &pk));
	pk.buf = (uintptr_t)der;
	pk.flags = 2;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_PUBKEY, &pk));

	/* the key may verify but not sign: use denied */
	sl = sizeof(sig);
	ASSERT_EQ(-EACCES, run_op(self->fd, HSMCARD_IOC_SIGN, a.handle,
				  HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA256, 0,
				  msg, sizeof(msg), sig, &sl));
	/* a handle the card never issued */
	sl = sizeof(sig);
	ASSERT_EQ(-ENOKEY, run_op(self->fd, HSMCARD_IOC_SIGN,
				  a.handle ^ 0x5a5a000000000000ULL,
				  HSMCARD_MECH_ECDSA, HSMCARD_MECH_SHA256, 0,
				  msg, sizeof(msg), sig, &sl));
	/* the same key named in the kernel's partition does not exist */
	sl = sizeof(sig);
	ASSERT_EQ(-ENOKEY, run_op(self->fd, HSMCARD_IOC_VERIFY,
				  a.handle | (1ULL << 24), HSMCARD_MECH_ECDSA,
				  HSMCARD_MECH_SHA256, 0, msg, sizeof(msg), sig,
				  &sl));
	memset(&ga, 0, sizeof(ga));
	ga.handle = a.handle | (1ULL << 24);
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	kh = (struct hsmcard_key_handle){ .handle = a.handle | (1ULL << 24) };
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	ga.handle = a.handle;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	/* salt only goes with PSS */
	memset(&op, 0, sizeof(op));
	op.handle = a.handle;
	op.mech = HSMCARD_MECH_ECDSA;
	op.mparam = HSMCARD_MECH_SHA256;
	op.in = (uintptr_t)msg;
	op.in_len = sizeof(msg);
	op.out = (uintptr_t)sig;
	op.out_len = sizeof(sig);
	op.salt_len = 32;
	ASSERT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_SIGN, &op));
	destroy_key(self->fd, a.handle);
}

/* ---- key tokens ---- */

#define TOKEN_LEN	HSMCARD_TOKEN_SIZE

/*
 * The token layout of Documentation/hsmcard/crypto.rst, read byte by byte
 * here rather than through the driver's structure.
 */
static uint64_t le_at(const uint8_t *p, size_t off, unsigned int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[off + bytes];
	return v;
}

static int token_create(int fd, uint32_t bits, const char *label,
			struct hsmcard_token_create *tc)
{
	memset(tc, 0, sizeof(*tc));
	tc->bits = bits;
	if (label)
		snprintf(tc->label, sizeof(tc->label), "%s", label);
	return xioctl(fd, HSMCARD_IOC_TOKEN_CREATE, tc);
}

static int token_info(int fd, const uint8_t *tok, struct hsmcard_key_attrs *a)
{
	struct hsmcard_token t;
	int ret;

	memset(&t, 0, sizeof(t));
	memcpy(t.token, tok, TOKEN_LEN);
	ret = xioctl(fd, HSMCARD_IOC_TOKEN_INFO, &t);
	if (!ret && a)
		*a = t.attrs;
	return ret;
}

static int token_destroy(int fd, const uint8_t *tok)
{
	struct hsmcard_token t;

	memset(&t, 0, sizeof(t));
	memcpy(t.token, tok, TOKEN_LEN);
	return xioctl(fd, HSMCARD_IOC_TOKEN_DESTROY, &t);
}

static uint32_t card_nr_keys(int fd)
{
	struct hsmcard_info info;

	memset(&info, 0, sizeof(info));
	if (xioctl(fd, HSMCARD_IOC_INFO, &info))
		return UINT32_MAX;
	return info.nr_keys;
}

/* Is @h among the handles KEY_LIST shows user space? */
static bool user_list_has(int fd, uint64_t h)
{
	struct hsmcard_key_list kl;
	uint64_t handles[64];
	unsigned int i;

	memset(&kl, 0, sizeof(kl));
	do {
		kl.handles = (uintptr_t)handles;
		kl.max = 64;
		if (xioctl(fd, HSMCARD_IOC_KEY_LIST, &kl))
			return false;
		for (i = 0; i < kl.count && i < 64; i++)
			if (handles[i] == h)
				return true;
	} while (kl.count);
	return false;
}

/* One encryption through AF_ALG with the driver @drv keyed by @key. */
static int alg_encrypt(const char *drv, const uint8_t *key, size_t keylen,
		       const uint8_t *iv, const uint8_t *in, uint8_t *out,
		       size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(uint32_t)) +
		  CMSG_SPACE(sizeof(struct af_alg_iv) + 16)] = { 0 };
	struct sockaddr_alg sa = { .salg_family = AF_ALG };
	struct iovec iov = { .iov_base = (void *)in, .iov_len = len };
	struct msghdr msg = {
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		.msg_iov = &iov, .msg_iovlen = 1,
	};
	struct af_alg_iv *aiv;
	struct cmsghdr *c;
	int tfm, op = -1, ret = 0;

	strcpy((char *)sa.salg_type, "skcipher");
	snprintf((char *)sa.salg_name, sizeof(sa.salg_name), "%s", drv);
	tfm = socket(AF_ALG, SOCK_SEQPACKET, 0);
	if (tfm < 0)
		return -errno;
	if (bind(tfm, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(tfm, SOL_ALG, ALG_SET_KEY, key, keylen)) {
		ret = -errno;
		goto out;
	}
	op = accept(tfm, NULL, 0);
	if (op < 0) {
		ret = -errno;
		goto out;
	}
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_OP;
	c->cmsg_len = CMSG_LEN(sizeof(uint32_t));
	*(uint32_t *)CMSG_DATA(c) = ALG_OP_ENCRYPT;
	c = CMSG_NXTHDR(&msg, c);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_IV;
	c->cmsg_len = CMSG_LEN(sizeof(*aiv) + 16);
	aiv = (struct af_alg_iv *)CMSG_DATA(c);
	aiv->ivlen = 16;
	memcpy(aiv->iv, iv, 16);
	if (sendmsg(op, &msg, 0) != (ssize_t)len ||
	    read(op, out, len) != (ssize_t)len)
		ret = errno ? -errno : -EIO;
out:
	if (op >= 0)
		close(op);
	close(tfm);
	return ret;
}

static const EVP_CIPHER *token_cipher(bool xts, unsigned int key_bytes)
{
	if (xts)
		return key_bytes == 32 ? EVP_aes_128_xts() : EVP_aes_256_xts();
	switch (key_bytes) {
	case 16: return EVP_aes_128_cbc();
	case 24: return EVP_aes_192_cbc();
	default: return EVP_aes_256_cbc();
	}
}

/*
 * The token does not carry its key: encrypt with the card through the
 * token-keyed cipher, then with OpenSSL under every window of the token's
 * bytes taken as a clear key.  None may give the card's ciphertext.
 * Returns the number of windows tried, 0 when the cipher is not there.
 */
static int token_key_absent(struct __test_metadata *_metadata,
			    const uint8_t *tok, unsigned int bits, bool xts)
{
	unsigned int kb = bits / 8, off, tried = 0;
	uint8_t iv[16], pt[64], ct[64], ref[64];
	const char *drv = xts ? "xts-paes-hsmcard" : "cbc-paes-hsmcard";
	int ret;

	fill_pattern(iv, sizeof(iv), bits);
	fill_pattern(pt, sizeof(pt), bits + 1);
	ret = alg_encrypt(drv, tok, TOKEN_LEN, iv, pt, ct, sizeof(ct));
	if (ret == -ENOENT || ret == -EAFNOSUPPORT) {
		TH_LOG("%s not available (%s): key-absence check skipped",
		       drv, strerror(-ret));
		return 0;
	}
	EXPECT_EQ(0, ret) TH_LOG("%s with a card token: %s", drv,
				 strerror(-ret));
	if (ret)
		return 0;
	EXPECT_NE(0, memcmp(ct, pt, sizeof(ct)));
	for (off = 0; off + kb <= TOKEN_LEN; off++) {
		if (ossl_crypt(token_cipher(xts, kb), tok + off, iv, pt,
			       sizeof(pt), ref, 1) != (int)sizeof(pt))
			continue;	/* OpenSSL refuses XTS equal halves */
		tried++;
		EXPECT_NE(0, memcmp(ref, ct, sizeof(ct)))
			TH_LOG("the key is token bytes %u..%u", off,
			       off + kb - 1);
	}
	EXPECT_LT(0U, tried);
	return tried;
}

TEST_F(card, token_round_trip)
{
	static const uint32_t sizes[] = { 128, 192, 256, 512 };
	struct hsmcard_key_get_attrs ga;
	struct hsmcard_key_handle kh;
	struct hsmcard_key_attrs a;
	struct hsmcard_token_create tc;
	struct hsmcard_key_pubkey pk;
	uint8_t buf[64] = { 0 }, out[64];
	char label[HSMCARD_LABEL_LEN];
	uint32_t keys0, ol;
	unsigned int i;
	const uint8_t *t;
	uint64_t h;
	int ret;

	if (system("modprobe -q -a af_alg algif_skcipher"))
		TH_LOG("modprobe of the AF_ALG modules failed");
	keys0 = card_nr_keys(self->fd);
	ASSERT_NE(UINT32_MAX, keys0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(label, sizeof(label), "token-%u-%d", sizes[i],
			 getpid());
		ret = token_create(self->fd, sizes[i], label, &tc);
		if (ret == -EOPNOTSUPP)
			SKIP(return, "no key store or key tokens on this card");
		ASSERT_EQ(0, ret) TH_LOG("%u bits: %s", sizes[i],
					 strerror(-ret));
		h = tc.handle;
		t = tc.token;
		EXPECT_EQ(keys0 + 1, card_nr_keys(self->fd));

		/* the documented layout, and nothing but the MAC unknown */
		ASSERT_EQ((uint64_t)HSMCARD_PARTITION_KERNEL, (h >> 24) & 0xff);
		EXPECT_EQ(0, memcmp(t, "HMTK", 4));
		EXPECT_EQ(1U, le_at(t, 4, 2));			/* version */
		EXPECT_EQ((uint64_t)HSMCARD_KEY_AES, le_at(t, 6, 2));	/* type */
		EXPECT_EQ(sizes[i], le_at(t, 8, 2));		/* bits */
		EXPECT_EQ(0U, le_at(t, 10, 2) | le_at(t, 12, 4));
		EXPECT_EQ(0, memcmp(t + 16, self->info.card_id, 16));
		EXPECT_EQ(h, le_at(t, 32, 8));			/* handle */
		EXPECT_EQ(0U, le_at(t, 40, 8));
		memset(out, 0, sizeof(out));
		EXPECT_NE(0, memcmp(t + 48, out, 32));		/* a MAC */

		/* the card describes the key it generated */
		ASSERT_EQ(0, token_info(self->fd, t, &a));
		EXPECT_EQ(h, a.handle);
		EXPECT_EQ(HSMCARD_KEY_AES, a.type);
		EXPECT_EQ(sizes[i], a.bits);
		EXPECT_EQ(HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT, a.uses);
		EXPECT_NE(0U, a.flags & HSMCARD_KEYF_PERSISTENT);
		EXPECT_NE(0U, a.flags & HSMCARD_KEYF_SENSITIVE);
		EXPECT_EQ(0U, a.flags & (HSMCARD_KEYF_EXTRACTABLE |
					 HSMCARD_KEYF_SESSION));
		EXPECT_EQ((uint32_t)HSMCARD_PARTITION_KERNEL, a.partition);
		EXPECT_STREQ(label, a.label);
		EXPECT_LT(1600000000ULL, a.created);

		/* user space cannot name the key, let alone export it */
		memset(&ga, 0, sizeof(ga));
		ga.handle = h;
		EXPECT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS,
					  &ga));
		pk = (struct hsmcard_key_pubkey){ .handle = h,
			.buf = (uintptr_t)out, .len = sizeof(out) };
		EXPECT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_PUBKEY,
					  &pk));
		ol = sizeof(out);
		EXPECT_EQ(-ENOKEY, card_crypt(self->fd, HSMCARD_IOC_ENCRYPT, h,
					      HSMCARD_MECH_AES_ECB, NULL, 0, 0,
					      buf, 16, out, &ol));
		ol = sizeof(out);
		EXPECT_EQ(-ENOKEY, card_crypt(self->fd, HSMCARD_IOC_DECRYPT, h,
					      HSMCARD_MECH_AES_ECB, NULL, 0, 0,
					      buf, 16, out, &ol));
		kh = (struct hsmcard_key_handle){ .handle = h };
		EXPECT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY,
					  &kh));
		EXPECT_FALSE(user_list_has(self->fd, h));

		/* and the token bytes are not the key */
		if (sizes[i] != 512)
			token_key_absent(_metadata, t, sizes[i], false);
		if (sizes[i] >= 256)
			token_key_absent(_metadata, t, sizes[i], true);

		/* destroy: the key and its token are gone */
		ASSERT_EQ(0, token_destroy(self->fd, t));
		EXPECT_EQ(keys0, card_nr_keys(self->fd));
		EXPECT_EQ(-EINVAL, token_info(self->fd, t, &a));
		EXPECT_EQ(-EINVAL, token_destroy(self->fd, t));
	}
}

TEST_F(card, token_create_errors)
{
	static const uint32_t bad_bits[] = {
		0, 1, 64, 100, 127, 129, 160, 224, 255, 257, 384, 511, 513,
		1024, 0x10080, 0xffffffff,
	};
	struct hsmcard_token_create tc;
	struct hsmcard_token t;
	uint32_t keys0;
	unsigned int i;

	keys0 = card_nr_keys(self->fd);
	for (i = 0; i < sizeof(bad_bits) / sizeof(bad_bits[0]); i++)
		EXPECT_EQ(-EINVAL, token_create(self->fd, bad_bits[i], "x",
						&tc))
			TH_LOG("bits %u", bad_bits[i]);
	memset(&tc, 0, sizeof(tc));
	tc.bits = 256;
	tc.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_CREATE, &tc));
	tc.flags = 0x80000000;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_CREATE, &tc));
	tc.flags = 0;
	memset(tc.label, 'x', sizeof(tc.label));	/* not terminated */
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_CREATE, &tc));
	tc.label[0] = 0;				/* garbage after NUL */
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_CREATE, &tc));
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_TOKEN_CREATE, NULL));
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_TOKEN_INFO, NULL));
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_TOKEN_DESTROY,
				  (void *)8));
	/* a structure of the wrong size is another request */
	EXPECT_EQ(-ENOTTY, xioctl(self->fd, _IOWR('H', 0x21,
						  struct hsmcard_token_create),
				  &tc));
	/* flags and rsvd of INFO and DESTROY */
	memset(&t, 0, sizeof(t));
	t.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_INFO, &t));
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_DESTROY, &t));
	t.flags = 0;
	t.rsvd = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_INFO, &t));
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_DESTROY, &t));
	/* no failed request left a key behind */
	EXPECT_EQ(keys0, card_nr_keys(self->fd));
}

/* Every way of spoiling a token gives -EINVAL and harms nothing. */
TEST_F(card, token_forged)
{
	struct hsmcard_token_create tc, tc2;
	struct hsmcard_key_attrs a, a2;
	uint8_t bad[TOKEN_LEN], tok[TOKEN_LEN];
	struct hsmcard_key_attrs ua;
	struct hsmcard_info info;
	unsigned int i, bit;
	int ret;

	ret = token_create(self->fd, 256, "forged", &tc);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no key store or key tokens on this card");
	ASSERT_EQ(0, ret);
	memcpy(tok, tc.token, TOKEN_LEN);
	ASSERT_EQ(0, token_info(self->fd, tok, &a));

	/* every byte, every bit of it, and the whole byte */
	for (i = 0; i < TOKEN_LEN; i++) {
		for (bit = 0; bit <= 8; bit++) {
			memcpy(bad, tok, TOKEN_LEN);
			bad[i] ^= bit < 8 ? 1u << bit : 0xff;
			EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL))
				TH_LOG("byte %u ^ 0x%02x", i,
				       bit < 8 ? 1u << bit : 0xff);
			if (bit == 8) {
				EXPECT_EQ(-EINVAL,
					  token_destroy(self->fd, bad));
			}
		}
	}
	/* zeroed MAC, another card, other versions, magic */
	memcpy(bad, tok, TOKEN_LEN);
	memset(bad + 48, 0, 32);
	EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	memcpy(bad, tok, TOKEN_LEN);
	fill_pattern(bad + 16, 16, 99);
	EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	for (i = 0; i < 4; i++) {
		static const uint16_t vers[] = { 0, 2, 0x100, 0xffff };

		memcpy(bad, tok, TOKEN_LEN);
		bad[4] = vers[i] & 0xff;
		bad[5] = vers[i] >> 8;
		EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	}
	memcpy(bad, tok, TOKEN_LEN);
	memcpy(bad, "HCLK", 4);				/* a clear-key token */
	EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	/* truncated (the rest zero), empty, all ones, garbage */
	for (i = 0; i < TOKEN_LEN; i += 8) {
		memset(bad, 0, TOKEN_LEN);
		memcpy(bad, tok, i);
		EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL))
			TH_LOG("first %u bytes", i);
	}
	memset(bad, 0xff, TOKEN_LEN);
	EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	for (i = 0; i < 16; i++) {
		fill_pattern(bad, TOKEN_LEN, 1000 + i);
		EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	}

	/* a genuine MAC does not carry over to another key's handle */
	ASSERT_EQ(0, token_create(self->fd, 256, "forged-2", &tc2));
	memcpy(bad, tok, TOKEN_LEN);
	memcpy(bad + 32, tc2.token + 32, 8);
	EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	/* nor to a key of the user partition */
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 256, 0, "user", &ua));
	memcpy(bad, tok, TOKEN_LEN);
	for (i = 0; i < 8; i++)
		bad[32 + i] = (uint8_t)(ua.handle >> (8 * i));
	EXPECT_EQ(-EINVAL, token_info(self->fd, bad, NULL));
	EXPECT_EQ(-EINVAL, token_destroy(self->fd, bad));
	destroy_key(self->fd, ua.handle);

	/* nothing was harmed: both tokens still name their keys */
	ASSERT_EQ(0, token_info(self->fd, tok, &a2));
	EXPECT_EQ(a.handle, a2.handle);
	EXPECT_EQ(a.created, a2.created);
	ASSERT_EQ(0, token_info(self->fd, tc2.token, &a2));
	EXPECT_EQ(tc2.handle, a2.handle);
	memset(&info, 0, sizeof(info));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_INFO, &info));
	EXPECT_EQ((uint32_t)HSMCARD_STATE_LIVE, info.state);
	EXPECT_EQ(0, token_destroy(self->fd, tc2.token));
	EXPECT_EQ(0, token_destroy(self->fd, tok));
}

/*
 * Without CAP_SYS_ADMIN a token cannot be made or destroyed, but an open
 * file may still ask what it names.  @how: 0 = become an unprivileged
 * user, 1 = stay root but drop CAP_SYS_ADMIN.  Returns 0 or the number of
 * the first failed step (the child's exit status).
 */
static int token_unprivileged(int fd, const uint8_t *tok, uint64_t h,
			      int how)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	struct hsmcard_token_create tc;
	struct hsmcard_key_attrs a;
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return 100;
	if (!pid) {
		if (how == 0) {
			if (setresgid(65534, 65534, 65534) ||
			    setresuid(65534, 65534, 65534))
				_exit(1);
			if (!geteuid())
				_exit(2);
		} else {
			if (syscall(SYS_capget, &hdr, data))
				_exit(1);
			data[CAP_SYS_ADMIN / 32].effective &=
				~(1u << (CAP_SYS_ADMIN % 32));
			data[CAP_SYS_ADMIN / 32].permitted &=
				~(1u << (CAP_SYS_ADMIN % 32));
			if (syscall(SYS_capset, &hdr, data))
				_exit(2);
		}
		if (token_create(fd, 256, "unprivileged", &tc) != -EPERM)
			_exit(3);
		if (token_destroy(fd, tok) != -EPERM)
			_exit(4);
		if (token_info(fd, tok, &a) || a.handle != h)
			_exit(5);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 101;
	return WEXITSTATUS(status);
}

TEST_F(card, token_needs_cap_sys_admin)
{
	struct hsmcard_token_create tc;
	uint32_t keys0;
	int ret;

	ret = token_create(self->fd, 512, "privileged", &tc);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no key store or key tokens on this card");
	ASSERT_EQ(0, ret);
	keys0 = card_nr_keys(self->fd);
	EXPECT_EQ(0, token_unprivileged(self->fd, tc.token, tc.handle, 0));
	EXPECT_EQ(0, token_unprivileged(self->fd, tc.token, tc.handle, 1));
	/* nothing was created or destroyed */
	EXPECT_EQ(keys0, card_nr_keys(self->fd));
	EXPECT_EQ(0, token_info(self->fd, tc.token, NULL));
	EXPECT_EQ(0, token_destroy(self->fd, tc.token));
}

TEST_HARNESS_MAIN
