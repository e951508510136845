// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard key lifecycle tests (run in the test guest as root, driver bound):
 * states enforced through the ioctls and through a ring entry, rotation
 * (OpenSSL still verifies the old version's signature, the old version no
 * longer signs), lookup by label, label uniqueness, handles of another
 * partition refused, and hsmctl's key commands.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define PAGE		4096UL

static int set_state(int fd, uint64_t h, uint32_t state, uint32_t *old)
{
	struct hsmcard_key_set_state ks;
	int ret;

	memset(&ks, 0, sizeof(ks));
	ks.handle = h;
	ks.state = state;
	ret = xioctl(fd, HSMCARD_IOC_KEY_SET_STATE, &ks);
	if (!ret && old)
		*old = ks.old_state;
	return ret;
}

static int rotate(int fd, uint64_t h, struct hsmcard_key_attrs *a)
{
	struct hsmcard_key_rotate kr;
	int ret;

	memset(&kr, 0, sizeof(kr));
	kr.handle = h;
	ret = xioctl(fd, HSMCARD_IOC_KEY_ROTATE, &kr);
	if (!ret && a)
		*a = kr.attrs;
	return ret;
}

static int find(int fd, const char *label, uint32_t version,
		struct hsmcard_key_attrs *a)
{
	struct hsmcard_key_find kf;
	int ret;

	memset(&kf, 0, sizeof(kf));
	snprintf(kf.label, sizeof(kf.label), "%s", label);
	kf.version = version;
	ret = xioctl(fd, HSMCARD_IOC_KEY_FIND, &kf);
	if (!ret && a)
		*a = kf.attrs;
	return ret;
}

static int attrs(int fd, uint64_t h, struct hsmcard_key_attrs *a)
{
	struct hsmcard_key_get_attrs ga;
	int ret;

	memset(&ga, 0, sizeof(ga));
	ga.handle = h;
	ret = xioctl(fd, HSMCARD_IOC_KEY_ATTRS, &ga);
	if (!ret)
		*a = ga.attrs;
	return ret;
}

static int gen_state(int fd, uint16_t type, uint32_t uses, uint16_t state,
		     const char *label, struct hsmcard_key_attrs *out)
{
	struct hsmcard_key_attrs a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.type = type;
	a.uses = uses;
	a.state = state;
	snprintf(a.label, sizeof(a.label), "%s", label);
	ret = xioctl(fd, HSMCARD_IOC_KEY_GENERATE, &a);
	if (!ret && out)
		*out = a;
	return ret;
}

static int sign(int fd, uint64_t h, const uint8_t *msg, uint32_t len,
		uint8_t *sig, uint32_t *sig_len)
{
	*sig_len = 256;
	return run_op(fd, HSMCARD_IOC_SIGN, h, HSMCARD_MECH_ECDSA,
		      HSMCARD_MECH_SHA256, 0, msg, len, sig, sig_len);
}

static int verify(int fd, uint64_t h, const uint8_t *msg, uint32_t len,
		  const uint8_t *sig, uint32_t sig_len)
{
	return run_op(fd, HSMCARD_IOC_VERIFY, h, HSMCARD_MECH_ECDSA,
		      HSMCARD_MECH_SHA256, 0, msg, len, (void *)sig,
		      &sig_len);
}

/* The key's public half, through the card, parsed by OpenSSL. */
static EVP_PKEY *pubkey(int fd, uint64_t h)
{
	struct hsmcard_key_pubkey kp;
	uint8_t der[1024];
	const unsigned char *p = der;

	memset(&kp, 0, sizeof(kp));
	kp.handle = h;
	kp.buf = (uintptr_t)der;
	kp.len = sizeof(der);
	if (xioctl(fd, HSMCARD_IOC_KEY_PUBKEY, &kp))
		return NULL;
	return d2i_PUBKEY(NULL, &p, kp.len);
}

static bool ssl_ok(EVP_PKEY *pk, const uint8_t *msg, size_t len,
		   const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	bool ok;

	ok = pk && EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pk) == 1 &&
	     EVP_DigestVerify(m, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

/* ---- a one-entry ring ---- */

/* One ECDSA sign of arena[0..len) into arena[PAGE..]; the completion. */
static int ring_sign(struct tring *r, uint64_t h, uint32_t len,
		     struct hsmcard_ring_cqe *cqe)
{
	struct hsmcard_ring_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = HSMCARD_RING_OP_SIGN;
	s.mech = HSMCARD_MECH_ECDSA;
	s.mparam = HSMCARD_MECH_SHA256;
	s.handle = h;
	s.in_off = 0;
	s.in_len = len;
	s.out_off = PAGE;
	s.out_len = 256;
	return tring_run(r, &s, 1, cqe);
}

FIXTURE(life) {
	int fd;
	char label[HSMCARD_LABEL_LEN];
};

FIXTURE_SETUP(life)
{
	self->fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, self->fd);
	snprintf(self->label, sizeof(self->label), "life-test-%d", getpid());
	if (set_state(self->fd, 0, HSMCARD_KEY_STATE_ACTIVE, NULL) == -ENOTTY)
		SKIP(return, "the driver has no key lifecycle ioctls");
}

FIXTURE_TEARDOWN(life)
{
	close(self->fd);
}

/* Every state, through the ioctls: what signs, what verifies. */
TEST_F(life, states)
{
	uint8_t msg[100], sig[256], sig2[256];
	struct hsmcard_key_attrs a, b;
	uint32_t sig_len, len2, old = 0;
	EVP_PKEY *pk;

	fill_pattern(msg, sizeof(msg), 3);
	ASSERT_EQ(0, gen_state(self->fd, HSMCARD_KEY_EC_P256,
			       HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY,
			       HSMCARD_KEY_STATE_PRE_ACTIVE, self->label, &a));
	EXPECT_EQ(HSMCARD_KEY_STATE_PRE_ACTIVE, a.state);
	EXPECT_EQ(1U, a.version);
	EXPECT_EQ(0ULL, a.activated);
	pk = pubkey(self->fd, a.handle);
	ASSERT_NE(NULL, pk);
	EXPECT_EQ(-EKEYEXPIRED, sign(self->fd, a.handle, msg, sizeof(msg),
				     sig, &sig_len));

	ASSERT_EQ(0, set_state(self->fd, a.handle, HSMCARD_KEY_STATE_ACTIVE,
			       &old));
	EXPECT_EQ((uint32_t)HSMCARD_KEY_STATE_PRE_ACTIVE, old);
	ASSERT_EQ(0, attrs(self->fd, a.handle, &b));
	EXPECT_EQ(HSMCARD_KEY_STATE_ACTIVE, b.state);
	EXPECT_NE(0ULL, b.activated);
	ASSERT_EQ(0, sign(self->fd, a.handle, msg, sizeof(msg), sig,
			  &sig_len));
	EXPECT_TRUE(ssl_ok(pk, msg, sizeof(msg), sig, sig_len));

	ASSERT_EQ(0, set_state(self->fd, a.handle,
			       HSMCARD_KEY_STATE_DEACTIVATED, &old));
	EXPECT_EQ((uint32_t)HSMCARD_KEY_STATE_ACTIVE, old);
	EXPECT_EQ(-EKEYEXPIRED, sign(self->fd, a.handle, msg, sizeof(msg),
				     sig2, &len2));
	EXPECT_EQ(0, verify(self->fd, a.handle, msg, sizeof(msg), sig,
			    sig_len));
	sig[sig_len - 1] ^= 1;
	EXPECT_EQ(-EBADMSG, verify(self->fd, a.handle, msg, sizeof(msg), sig,
				   sig_len));
	sig[sig_len - 1] ^= 1;
	/* states only move forward */
	EXPECT_EQ(-EKEYEXPIRED, set_state(self->fd, a.handle,
					  HSMCARD_KEY_STATE_ACTIVE, NULL));
	EXPECT_EQ(-EKEYEXPIRED, set_state(self->fd, a.handle,
					  HSMCARD_KEY_STATE_DEACTIVATED, NULL));

	ASSERT_EQ(0, set_state(self->fd, a.handle,
			       HSMCARD_KEY_STATE_COMPROMISED, &old));
	EXPECT_EQ((uint32_t)HSMCARD_KEY_STATE_DEACTIVATED, old);
	EXPECT_EQ(-EKEYREVOKED, sign(self->fd, a.handle, msg, sizeof(msg),
				     sig2, &len2));
	EXPECT_EQ(0, verify(self->fd, a.handle, msg, sizeof(msg), sig,
			    sig_len));
	ASSERT_EQ(0, attrs(self->fd, a.handle, &b));
	EXPECT_EQ(HSMCARD_KEY_STATE_COMPROMISED, b.state);
	EXPECT_LE(b.activated, b.deactivated);
	EXPECT_EQ(-EKEYEXPIRED, set_state(self->fd, a.handle,
					  HSMCARD_KEY_STATE_COMPROMISED, NULL));
	EVP_PKEY_free(pk);
	destroy_key(self->fd, a.handle);
}

/* Bad arguments, and handles of another partition. */
TEST_F(life, arguments_and_partitions)
{
	struct hsmcard_key_set_state ks;
	struct hsmcard_key_rotate kr;
	struct hsmcard_key_find kf;
	struct hsmcard_key_attrs a;
	uint64_t other;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 128, 0, self->label,
			     &a));
	EXPECT_EQ(HSMCARD_KEY_STATE_ACTIVE, a.state);
	EXPECT_EQ(a.created, a.activated);
	/* the fields the card owns are refused on input */
	memset(&ks, 0, sizeof(ks));
	ks.handle = a.handle;
	ks.state = 0;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_SET_STATE, &ks));
	ks.state = 5;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_SET_STATE, &ks));
	ks.state = HSMCARD_KEY_STATE_DEACTIVATED;
	ks.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_SET_STATE, &ks));
	memset(&kr, 0, sizeof(kr));
	kr.handle = a.handle;
	kr.rsvd = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_ROTATE, &kr));
	memset(&kf, 0, sizeof(kf));
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	memset(kf.label, 'x', sizeof(kf.label));
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	EXPECT_EQ(-ENOKEY, find(self->fd, "life-test-no-such-label", 0, NULL));
	EXPECT_EQ(-EINVAL, gen_state(self->fd, HSMCARD_KEY_AES,
				     HSMCARD_USE_ENCRYPT,
				     HSMCARD_KEY_STATE_DEACTIVATED, "", NULL));

	/* the same slot and tag, named in another partition: refused */
	other = (a.handle & ~0xff000000ULL) | (1ULL << 24);
	EXPECT_EQ(-ENOKEY, set_state(self->fd, other,
				     HSMCARD_KEY_STATE_COMPROMISED, NULL));
	EXPECT_EQ(-ENOKEY, rotate(self->fd, other, NULL));
	other = (a.handle & ~0xff000000ULL) | (2ULL << 24);
	EXPECT_EQ(-ENOKEY, set_state(self->fd, other,
				     HSMCARD_KEY_STATE_COMPROMISED, NULL));
	EXPECT_EQ(-ENOKEY, rotate(self->fd, other, NULL));
	/* and the key itself is untouched */
	ASSERT_EQ(0, attrs(self->fd, a.handle, &a));
	EXPECT_EQ(HSMCARD_KEY_STATE_ACTIVE, a.state);
	/* a label names one key */
	EXPECT_EQ(-EEXIST, gen_key(self->fd, HSMCARD_KEY_AES, 128, 0,
				   self->label, NULL));
	destroy_key(self->fd, a.handle);
	EXPECT_EQ(-ENOKEY, find(self->fd, self->label, 0, NULL));
}

/* A ring entry is held to the key's state like an ioctl. */
TEST_F(life, ring_entry)
{
	struct hsmcard_ring_cqe cqe;
	struct hsmcard_key_attrs a;
	struct tring r;
	EVP_PKEY *pk;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 0,
			     HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, self->label,
			     &a));
	pk = pubkey(self->fd, a.handle);
	ASSERT_NE(NULL, pk);
	ASSERT_EQ(0, tring_open(self->fd, &r, 4, 4 * PAGE));
	fill_pattern(r.arena, 64, 5);
	ASSERT_EQ(0, ring_sign(&r, a.handle, 64, &cqe));
	EXPECT_EQ(0, cqe.status);
	EXPECT_TRUE(ssl_ok(pk, r.arena, 64, r.arena + PAGE, cqe.len));
	ASSERT_EQ(0, set_state(self->fd, a.handle,
			       HSMCARD_KEY_STATE_DEACTIVATED, NULL));
	ASSERT_EQ(0, ring_sign(&r, a.handle, 64, &cqe));
	EXPECT_EQ(-EKEYEXPIRED, cqe.status);
	ASSERT_EQ(0, set_state(self->fd, a.handle,
			       HSMCARD_KEY_STATE_COMPROMISED, NULL));
	ASSERT_EQ(0, ring_sign(&r, a.handle, 64, &cqe));
	EXPECT_EQ(-EKEYREVOKED, cqe.status);
	tring_close(&r);
	EVP_PKEY_free(pk);
	destroy_key(self->fd, a.handle);
}

/*
 * Rotation: v1's signature made before still verifies (OpenSSL, and the
 * card with v1); v1 no longer signs; v2 is a new key under the label.
 */
TEST_F(life, rotation)
{
	uint8_t msg[64], sig1[256], sig2[256];
	struct hsmcard_key_attrs v1, v2, x;
	uint32_t len1, len2;
	EVP_PKEY *pk1, *pk2;

	fill_pattern(msg, sizeof(msg), 7);
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 0,
			     HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, self->label,
			     &v1));
	pk1 = pubkey(self->fd, v1.handle);
	ASSERT_NE(NULL, pk1);
	ASSERT_EQ(0, sign(self->fd, v1.handle, msg, sizeof(msg), sig1, &len1));
	ASSERT_TRUE(ssl_ok(pk1, msg, sizeof(msg), sig1, len1));

	ASSERT_EQ(0, rotate(self->fd, v1.handle, &v2));
	EXPECT_NE(v1.handle, v2.handle);
	EXPECT_EQ(2U, v2.version);
	EXPECT_EQ(HSMCARD_KEY_STATE_ACTIVE, v2.state);
	EXPECT_STREQ(self->label, v2.label);
	EXPECT_EQ(v1.type, v2.type);
	EXPECT_EQ(v1.uses, v2.uses);
	ASSERT_EQ(0, attrs(self->fd, v1.handle, &x));
	EXPECT_EQ(HSMCARD_KEY_STATE_DEACTIVATED, x.state);
	EXPECT_EQ(1U, x.version);

	/* the old signature stands; v1 signs no more */
	EXPECT_TRUE(ssl_ok(pk1, msg, sizeof(msg), sig1, len1));
	EXPECT_EQ(0, verify(self->fd, v1.handle, msg, sizeof(msg), sig1,
			    len1));
	EXPECT_EQ(-EKEYEXPIRED, sign(self->fd, v1.handle, msg, sizeof(msg),
				     sig2, &len2));
	EXPECT_EQ(-EKEYEXPIRED, rotate(self->fd, v1.handle, NULL));
	pk2 = pubkey(self->fd, v2.handle);
	ASSERT_NE(NULL, pk2);
	ASSERT_EQ(0, sign(self->fd, v2.handle, msg, sizeof(msg), sig2, &len2));
	EXPECT_TRUE(ssl_ok(pk2, msg, sizeof(msg), sig2, len2));
	EXPECT_FALSE(ssl_ok(pk1, msg, sizeof(msg), sig2, len2));

	/* lookup by label */
	ASSERT_EQ(0, find(self->fd, self->label, 0, &x));
	EXPECT_EQ(v2.handle, x.handle);
	ASSERT_EQ(0, find(self->fd, self->label, 1, &x));
	EXPECT_EQ(v1.handle, x.handle);
	EXPECT_EQ(-ENOKEY, find(self->fd, self->label, 3, NULL));
	EXPECT_EQ(-EEXIST, gen_key(self->fd, HSMCARD_KEY_EC_P256, 0,
				   HSMCARD_USE_SIGN, self->label, NULL));

	/* hsmctl: find and rotate by label, keys shows the states */
	if (!sh("command -v hsmctl >/dev/null")) {
		char line[256], want[32];

		snprintf(want, sizeof(want), "0x%016llx",
			 (unsigned long long)v2.handle);
		ASSERT_EQ(0, sh_line(line, sizeof(line),
				     "hsmctl key find --label %s", self->label));
		EXPECT_STREQ(want, line);
		ASSERT_EQ(0, sh_line(line, sizeof(line),
				     "hsmctl key rotate --label %s",
				     self->label));
		ASSERT_EQ(0, find(self->fd, self->label, 0, &x));
		snprintf(want, sizeof(want), "0x%016llx",
			 (unsigned long long)x.handle);
		EXPECT_STREQ(want, line);
		EXPECT_EQ(3U, x.version);
		EXPECT_EQ(0, sh("hsmctl keys --json | grep -q "
				"'\"state\": \"deactivated\"'"));
		EXPECT_EQ(0, sh("hsmctl key state 0x%016llx compromised | "
				"grep -q 'deactivated -> compromised'",
				(unsigned long long)v1.handle));
		destroy_key(self->fd, x.handle);
	}
	EVP_PKEY_free(pk1);
	EVP_PKEY_free(pk2);
	destroy_key(self->fd, v2.handle);
	destroy_key(self->fd, v1.handle);
	EXPECT_EQ(-ENOKEY, find(self->fd, self->label, 0, NULL));
}

TEST_HARNESS_MAIN
