// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard key lifecycle tests (run in the test guest as root, driver bound):
 * states enforced through the ioctls and through a ring entry, rotation
 * (OpenSSL still verifies the old version's signature, the old version no
 * longer signs), lookup by label, label uniqueness, handles of another
 * partition refused, and hsmctl's key commands.  Key IDs: set, returned,
 * unique per partition (-EEXIST), found by ID (not across partitions),
 * given to a rotated version, and hsmctl --id.
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
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define PAGE		4096UL
/* the admin PIN hsmcard_login_test.c sets on a fresh card */
#define ADMIN_PIN	"login-test-admin-pin"
#define SO_PIN		"so-pin-4711"
#define USER_PIN	"user-pin-0815"

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

/* ---- key IDs ---- */

static int gen_id(int fd, const char *label, const uint8_t *id, size_t len,
		  struct hsmcard_key_attrs *out)
{
	struct hsmcard_key_attrs a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.type = HSMCARD_KEY_EC_P256;
	a.uses = HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY;
	if (label)
		snprintf(a.label, sizeof(a.label), "%s", label);
	a.id_len = len;
	memcpy(a.id, id, len);
	ret = xioctl(fd, HSMCARD_IOC_KEY_GENERATE, &a);
	if (!ret && out)
		*out = a;
	return ret;
}

static int find_id(int fd, const uint8_t *id, size_t len,
		   struct hsmcard_key_attrs *a)
{
	struct hsmcard_key_find kf;
	int ret;

	memset(&kf, 0, sizeof(kf));
	kf.flags = HSMCARD_FIND_F_ID;
	kf.id_len = len;
	memcpy(kf.id, id, len);
	ret = xioctl(fd, HSMCARD_IOC_KEY_FIND, &kf);
	if (!ret && a)
		*a = kf.attrs;
	return ret;
}

static int rotate_id(int fd, uint64_t h, const uint8_t *id, size_t len,
		     struct hsmcard_key_attrs *a)
{
	struct hsmcard_key_rotate kr;
	int ret;

	memset(&kr, 0, sizeof(kr));
	kr.handle = h;
	kr.id_len = len;
	memcpy(kr.id, id, len);
	ret = xioctl(fd, HSMCARD_IOC_KEY_ROTATE, &kr);
	if (!ret && a)
		*a = kr.attrs;
	return ret;
}

/* The key ID of @a is @id[@len], zero after it. */
static bool has_id(const struct hsmcard_key_attrs *a, const uint8_t *id,
		   size_t len)
{
	uint8_t want[HSMCARD_KEY_ID_LEN] = { 0 };

	memcpy(want, id, len);
	return a->id_len == len && !memcmp(a->id, want, sizeof(want));
}

/* SHA-256 of the key's DER SubjectPublicKeyInfo: a typical CKA_ID. */
static int spki_id(int fd, uint64_t h, uint8_t *id)
{
	struct hsmcard_key_pubkey kp;
	uint8_t der[1024];

	memset(&kp, 0, sizeof(kp));
	kp.handle = h;
	kp.buf = (uintptr_t)der;
	kp.len = sizeof(der);
	if (xioctl(fd, HSMCARD_IOC_KEY_PUBKEY, &kp))
		return -1;
	SHA256(der, kp.len, id);
	return 0;
}

/* Set, returned, unique, found by ID, rotated; bad arguments. */
TEST_F(life, key_id)
{
	struct hsmcard_key_attrs a, b, c, x;
	struct hsmcard_key_find kf;
	struct hsmcard_key_rotate kr;
	uint8_t id[32], id2[32], id3[32];
	char label2[HSMCARD_LABEL_LEN + 8];

	/* an ID chosen after the fact is not possible: derive one first */
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 0,
			     HSMCARD_USE_SIGN, NULL, &x));
	ASSERT_EQ(0, spki_id(self->fd, x.handle, id));
	destroy_key(self->fd, x.handle);
	id[0] ^= (uint8_t)getpid();	/* runs of the test do not collide */
	SHA256(id, sizeof(id), id2);
	SHA256(id2, sizeof(id2), id3);

	ASSERT_EQ(0, gen_id(self->fd, self->label, id, 32, &a));
	EXPECT_TRUE(has_id(&a, id, 32));
	ASSERT_EQ(0, attrs(self->fd, a.handle, &x));
	EXPECT_TRUE(has_id(&x, id, 32));
	/* unique in the partition, whatever the label */
	snprintf(label2, sizeof(label2), "%.60s-2", self->label);
	EXPECT_EQ(-EEXIST, gen_id(self->fd, label2, id, 32, NULL));
	EXPECT_EQ(-EEXIST, gen_id(self->fd, NULL, id, 32, NULL));
	/* a prefix is another ID */
	ASSERT_EQ(0, gen_id(self->fd, label2, id, 20, &b));
	EXPECT_TRUE(has_id(&b, id, 20));

	ASSERT_EQ(0, find_id(self->fd, id, 32, &x));
	EXPECT_EQ(a.handle, x.handle);
	EXPECT_TRUE(has_id(&x, id, 32));
	ASSERT_EQ(0, find_id(self->fd, id, 20, &x));
	EXPECT_EQ(b.handle, x.handle);
	EXPECT_EQ(-ENOKEY, find_id(self->fd, id2, 32, NULL));

	/* bad arguments */
	memset(&x, 0, sizeof(x));
	x.type = HSMCARD_KEY_AES;
	x.id_len = HSMCARD_KEY_ID_LEN + 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, &x));
	x.id_len = 4;
	x.id[4] = 1;				/* past id_len */
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, &x));
	memset(&kf, 0, sizeof(kf));
	kf.flags = HSMCARD_FIND_F_ID;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	kf.id_len = 33;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	kf.id_len = 4;
	memcpy(kf.id, id, 5);			/* byte 4 past id_len */
	kf.id[4] |= 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	memset(kf.id + 4, 0, 28);
	snprintf(kf.label, sizeof(kf.label), "%s", self->label);
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	memset(&kf, 0, sizeof(kf));
	kf.flags = 2;
	snprintf(kf.label, sizeof(kf.label), "%s", self->label);
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	kf.flags = 0;
	kf.id_len = 4;				/* by label: no ID fields */
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	kf.id_len = 0;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_FIND, &kf));
	EXPECT_EQ(a.handle, kf.attrs.handle);
	memset(&kr, 0, sizeof(kr));
	kr.handle = a.handle;
	kr.id_len = 2;
	kr.id[2] = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_ROTATE, &kr));

	/* rotation: no ID unless given; the old version keeps its own */
	EXPECT_EQ(-EEXIST, rotate_id(self->fd, a.handle, id, 20, NULL));
	ASSERT_EQ(0, attrs(self->fd, a.handle, &x));
	EXPECT_EQ(HSMCARD_KEY_STATE_ACTIVE, x.state);
	ASSERT_EQ(0, rotate_id(self->fd, a.handle, id2, 32, &c));
	EXPECT_EQ(2U, c.version);
	EXPECT_TRUE(has_id(&c, id2, 32));
	ASSERT_EQ(0, find_id(self->fd, id2, 32, &x));
	EXPECT_EQ(c.handle, x.handle);
	ASSERT_EQ(0, find_id(self->fd, id, 32, &x));
	EXPECT_EQ(a.handle, x.handle);
	EXPECT_EQ(HSMCARD_KEY_STATE_DEACTIVATED, x.state);
	ASSERT_EQ(0, rotate(self->fd, c.handle, &x));
	EXPECT_EQ(0, x.id_len);
	destroy_key(self->fd, x.handle);

	/* destroyed: gone from the index, and the ID is free again */
	destroy_key(self->fd, c.handle);
	EXPECT_EQ(-ENOKEY, find_id(self->fd, id2, 32, NULL));

	/* hsmctl --id round trip */
	if (!sh("command -v hsmctl >/dev/null")) {
		char line[256], want[32], hex[65];
		unsigned int i;

		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", id3[i]);
		ASSERT_EQ(0, sh_line(line, sizeof(line),
				     "hsmctl keygen -t ec --id %s", hex));
		ASSERT_EQ(0, find_id(self->fd, id3, 32, &x));
		snprintf(want, sizeof(want), "0x%016llx",
			 (unsigned long long)x.handle);
		EXPECT_STREQ(want, line);
		ASSERT_EQ(0, sh_line(line, sizeof(line),
				     "hsmctl key find --id %s", hex));
		EXPECT_STREQ(want, line);
		EXPECT_EQ(0, sh("hsmctl attrs %s | grep -qx 'ID: *%s'", want,
				hex));
		EXPECT_EQ(0, sh("hsmctl attrs %s --json | grep -q '\"id\": \"%s\"'",
				want, hex));
		EXPECT_EQ(0, sh("hsmctl keys | grep '^%s' | grep -q ' %s'",
				want, hex));
		EXPECT_NE(0, sh("hsmctl keygen -t ec --id %s 2>/dev/null",
				hex));
		EXPECT_EQ(0, sh("hsmctl keygen -t ec --id %s 2>&1 | "
				"grep -q 'key ID is already used'", hex));
		EXPECT_NE(0, sh("hsmctl keygen -t ec --id 0x123 2>/dev/null"));
		EXPECT_NE(0, sh("hsmctl key find --id %s00 2>/dev/null", hex));
		/* rotate with --id: the new version is found by it */
		ASSERT_EQ(0, sh_line(line, sizeof(line),
				     "hsmctl key rotate %s --id 0a0b0c", want));
		ASSERT_EQ(0, find_id(self->fd, (const uint8_t *)"\x0a\x0b\x0c",
				     3, &c));
		snprintf(want, sizeof(want), "0x%016llx",
			 (unsigned long long)c.handle);
		EXPECT_STREQ(want, line);
		destroy_key(self->fd, c.handle);
		destroy_key(self->fd, x.handle);
	}
	destroy_key(self->fd, b.handle);
	destroy_key(self->fd, a.handle);
	EXPECT_EQ(-ENOKEY, find_id(self->fd, id, 32, NULL));
}

static void set_pin_buf(uint8_t *dst, uint16_t *len, const char *pin)
{
	memset(dst, 0, HSMCARD_PIN_MAX);
	*len = strlen(pin);
	memcpy(dst, pin, *len);
}

/*
 * Key IDs are per partition: the same ID in partition 0 and in a new
 * partition, each file finds its own key and never the other's.  Needs the
 * admin PIN of hsmcard_login_test.c (set on a fresh card).
 */
TEST_F(life, key_id_partitions)
{
	struct hsmcard_key_attrs a, p, x;
	struct hsmcard_part_admin pa;
	struct hsmcard_part_info pi;
	struct hsmcard_set_pin sp;
	struct hsmcard_login lg;
	uint32_t part;
	uint8_t id[32];
	int u;

	memset(&pi, 0, sizeof(pi));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_PART_INFO, &pi));
	memset(&pa, 0, sizeof(pa));
	if (!(pi.card_flags & HSMCARD_CARD_S_ADMIN_SET)) {
		set_pin_buf(pa.new_pin, &pa.new_pin_len, ADMIN_PIN);
		ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_CARD_INIT, &pa));
	}
	memset(&pa, 0, sizeof(pa));
	pa.partition = HSMCARD_PART_ANY;
	set_pin_buf(pa.pin, &pa.pin_len, ADMIN_PIN);
	set_pin_buf(pa.new_pin, &pa.new_pin_len, SO_PIN);
	snprintf(pa.label, sizeof(pa.label), "%s", self->label);
	if (xioctl(self->fd, HSMCARD_IOC_PART_CREATE, &pa) == -EACCES)
		SKIP(return, "the card has another admin PIN");
	part = pa.partition;
	ASSERT_LE(2U, part);
	memset(&sp, 0, sizeof(sp));
	sp.partition = part;
	sp.role = HSMCARD_ROLE_USER;
	sp.auth_role = HSMCARD_ROLE_SO;
	set_pin_buf(sp.pin, &sp.pin_len, SO_PIN);
	set_pin_buf(sp.new_pin, &sp.new_pin_len, USER_PIN);
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_SET_PIN, &sp));
	u = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, u);
	memset(&lg, 0, sizeof(lg));
	lg.partition = part;
	lg.role = HSMCARD_ROLE_USER;
	set_pin_buf(lg.pin, &lg.pin_len, USER_PIN);
	ASSERT_EQ(0, xioctl(u, HSMCARD_IOC_LOGIN, &lg));

	SHA256((const uint8_t *)self->label, strlen(self->label), id);
	ASSERT_EQ(0, gen_id(u, NULL, id, 32, &p));
	EXPECT_EQ(part, p.partition);
	/* partition 0 does not see it, and may use the same ID */
	EXPECT_EQ(-ENOKEY, find_id(self->fd, id, 32, NULL));
	ASSERT_EQ(0, gen_id(self->fd, NULL, id, 32, &a));
	EXPECT_EQ(-EEXIST, gen_id(u, NULL, id, 32, NULL));
	ASSERT_EQ(0, find_id(self->fd, id, 32, &x));
	EXPECT_EQ(a.handle, x.handle);
	ASSERT_EQ(0, find_id(u, id, 32, &x));
	EXPECT_EQ(p.handle, x.handle);
	destroy_key(self->fd, a.handle);
	EXPECT_EQ(-ENOKEY, find_id(self->fd, id, 32, NULL));
	ASSERT_EQ(0, find_id(u, id, 32, &x));
	EXPECT_EQ(p.handle, x.handle);

	/*
	 * hsmctl backup and restore carry the ID (the partition holds only
	 * this test's keys): the file is format 2 with the ID in its record,
	 * and the restored key is found by it.
	 */
	if (!sh("command -v hsmctl >/dev/null")) {
		char f[64], login[96];
		uint8_t file[4096];
		struct hsmcard_key_attrs k, e;
		size_t n = 0;
		FILE *fp;

		ASSERT_EQ(0, gen_key(u, HSMCARD_KEY_AES, 256,
				     HSMCARD_USE_WRAP | HSMCARD_USE_UNWRAP,
				     NULL, &k));
		memset(&e, 0, sizeof(e));
		e.type = HSMCARD_KEY_AES;
		e.bits = 128;
		e.flags = HSMCARD_KEYF_EXTRACTABLE;
		e.id_len = 32;
		SHA256(id, 32, e.id);
		ASSERT_EQ(0, xioctl(u, HSMCARD_IOC_KEY_GENERATE, &e));
		destroy_key(u, p.handle);
		snprintf(f, sizeof(f), "/tmp/life-id-%d.bkp", getpid());
		snprintf(login, sizeof(login),
			 "HSMCARD_PIN=%s hsmctl --partition %u --role user",
			 USER_PIN, part);
		ASSERT_EQ(0, sh("%s backup --kek 0x%016llx -o %s >/dev/null",
				login, (unsigned long long)k.handle, f));
		fp = fopen(f, "rb");
		ASSERT_NE(NULL, fp);
		n = fread(file, 1, sizeof(file), fp);
		fclose(fp);
		/* header 16, then one record: id_len at 96, id at 104 */
		ASSERT_LE((size_t)16 + 136, n);
		EXPECT_EQ(0, memcmp(file, "HSMCBKP", 8));
		EXPECT_EQ(2, file[8]);
		EXPECT_EQ(1, file[12]);
		EXPECT_EQ(32, file[16 + 96]);
		EXPECT_EQ(0, memcmp(file + 16 + 104, e.id, 32));
		destroy_key(u, e.handle);
		EXPECT_EQ(-ENOKEY, find_id(u, e.id, 32, NULL));
		ASSERT_EQ(0, sh("%s restore %s --kek 0x%016llx >/dev/null 2>&1",
				login, f, (unsigned long long)k.handle));
		ASSERT_EQ(0, find_id(u, e.id, 32, &x));
		EXPECT_NE(e.handle, x.handle);
		EXPECT_TRUE(has_id(&x, e.id, 32));
		/* again: the ID is taken now */
		EXPECT_NE(0, sh("%s restore %s --kek 0x%016llx >/dev/null 2>&1",
				login, f, (unsigned long long)k.handle));
		unlink(f);
	}
	close(u);

	memset(&pa, 0, sizeof(pa));
	pa.partition = part;
	set_pin_buf(pa.pin, &pa.pin_len, ADMIN_PIN);
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_PART_DELETE, &pa));
}

TEST_HARNESS_MAIN
