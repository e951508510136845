// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard key wrap and unwrap (HSMCARD_IOC_KEY_WRAP / _UNWRAP, RFC 5649)
 * and hsmctl backup / restore, in the test guest.  OpenSSL is the oracle:
 * - a key the card wraps unwraps in OpenSSL (AES-256-WRAP-PAD with the
 *   same KEK bytes) to the key the card encrypts with;
 * - keys OpenSSL wraps (raw AES, PKCS#8 P-256) come out of the card
 *   working: the card's ciphertext and signatures check against OpenSSL
 *   with the known key;
 * - RSA-2048, P-256, Ed25519 and HMAC keys survive wrap + unwrap on the
 *   card (same public key, same HMAC);
 * - attacks: wrapping a non-extractable key, a KEK without the use, a KEK
 *   of another partition, an altered blob, bad lengths, pointers and
 *   reserved fields: each refused with its errno, nothing written, no key
 *   created;
 * - HSMCARD_WRAP_ATTRS: OpenSSL unwraps the blob and finds the magic,
 *   the key's attributes (hw.rst layout) and its material; the card
 *   restores every attribute, refuses attributes that widen the blob's
 *   (EACCES) and altered blobs (EBADMSG), and does not take plain and
 *   attribute blobs for each other;
 * - hsmctl backup of three keys (two extractable) and restore on the same
 *   card: the restored keys give the same results.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

/* Same admin PIN as hsmcard_login_test: whichever runs first sets it. */
#define ADMIN_PIN	"login-test-admin-pin"
#define SO_PIN		"wrap-so-pin-1"
#define USER_PIN	"wrap-user-pin-1"
#define KW		(HSMCARD_USE_WRAP | HSMCARD_USE_UNWRAP)
#define BLOB_MAX	4096
#define MAX_RESTORED	64

/* ---- helpers ---- */

static int gen_flags(int fd, uint16_t type, uint16_t bits, uint32_t uses,
		     uint32_t flags, uint64_t *h)
{
	struct hsmcard_key_attrs a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.type = type;
	a.bits = bits;
	a.uses = uses;
	a.flags = flags;
	ret = xioctl(fd, HSMCARD_IOC_KEY_GENERATE, &a);
	if (!ret)
		*h = a.handle;
	return ret;
}

static int wrap(int fd, uint64_t h, uint64_t kek, uint8_t *blob,
		uint32_t *len)
{
	struct hsmcard_key_wrap w;
	int ret;

	memset(&w, 0, sizeof(w));
	w.handle = h;
	w.kek = kek;
	w.mech = HSMCARD_MECH_AES_KWP;
	w.blob = (uintptr_t)blob;
	w.len = *len;
	ret = xioctl(fd, HSMCARD_IOC_KEY_WRAP, &w);
	*len = w.len;
	return ret;
}

static void unwrap_init(struct hsmcard_key_unwrap *u, uint64_t kek,
			uint16_t type, uint32_t uses, uint32_t flags,
			const uint8_t *blob, uint32_t len)
{
	memset(u, 0, sizeof(*u));
	u->attrs.type = type;
	u->attrs.uses = uses;
	u->attrs.flags = flags;
	snprintf(u->attrs.label, sizeof(u->attrs.label), "wrap-test");
	u->kek = kek;
	u->blob = (uintptr_t)blob;
	u->len = len;
}

static int unwrap(int fd, uint64_t kek, uint16_t type, uint32_t uses,
		  const uint8_t *blob, uint32_t len, uint64_t *h)
{
	struct hsmcard_key_unwrap u;
	int ret;

	unwrap_init(&u, kek, type, uses, 0, blob, len);
	ret = xioctl(fd, HSMCARD_IOC_KEY_UNWRAP, &u);
	if (!ret)
		*h = u.attrs.handle;
	return ret;
}

/* Keys in the file's partition (KEY_LIST total). */
static int key_count(int fd)
{
	struct hsmcard_key_list kl;
	uint64_t h;

	memset(&kl, 0, sizeof(kl));
	kl.handles = (uintptr_t)&h;
	kl.max = 1;
	return xioctl(fd, HSMCARD_IOC_KEY_LIST, &kl) ? -1 : (int)kl.total;
}

static const char *kwp_name(size_t kek_len)
{
	return kek_len == 16 ? "AES-128-WRAP-PAD" :
	       kek_len == 24 ? "AES-192-WRAP-PAD" : "AES-256-WRAP-PAD";
}

/* RFC 5649 in OpenSSL: the oracle.  Returns the output length or -1. */
static int ossl_kwp(bool do_wrap, const uint8_t *kek, size_t kek_len,
		    const uint8_t *in, size_t in_len, uint8_t *out)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, kwp_name(kek_len), NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, ret = -1;

	if (!c || !ctx)
		goto out;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex2(ctx, c, kek, NULL, do_wrap, NULL) &&
	    EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) &&
	    EVP_CipherFinal_ex(ctx, out + n, &f))
		ret = n + f;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return ret;
}

/* One AES-ECB block with OpenSSL. */
static int ossl_ecb(const uint8_t *key, size_t key_len, const uint8_t *in,
		    uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	const EVP_CIPHER *c = key_len == 16 ? EVP_aes_128_ecb() :
			      key_len == 24 ? EVP_aes_192_ecb() :
					      EVP_aes_256_ecb();
	int n = 0, ok;

	ok = ctx && EVP_EncryptInit_ex(ctx, c, NULL, key, NULL) &&
	     EVP_CIPHER_CTX_set_padding(ctx, 0) &&
	     EVP_EncryptUpdate(ctx, out, &n, in, 16) && n == 16;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int card_ecb(int fd, uint64_t h, const uint8_t *in, uint8_t *out)
{
	uint32_t len = 16;

	return run_op(fd, HSMCARD_IOC_ENCRYPT, h, HSMCARD_MECH_AES_ECB, 0, 0,
		       in, 16, out, &len);
}

/* Sign @msg with the card; the mechanism from the key type. */
static int card_sign(int fd, uint64_t h, uint16_t type, const uint8_t *msg,
		     uint32_t msg_len, uint8_t *sig, uint32_t *sig_len)
{
	uint16_t mech = type == HSMCARD_KEY_RSA ? HSMCARD_MECH_RSA_PKCS1 :
			type == HSMCARD_KEY_ED25519 ? HSMCARD_MECH_EDDSA :
						      HSMCARD_MECH_ECDSA;
	uint16_t hash = type == HSMCARD_KEY_ED25519 ? 0 : HSMCARD_MECH_SHA256;

	return run_op(fd, HSMCARD_IOC_SIGN, h, mech, hash, 0, msg, msg_len, sig,
		       sig_len);
}

static int card_hmac(int fd, uint64_t h, const uint8_t *msg, uint32_t len,
		     uint8_t *mac)
{
	uint32_t n = 32;

	return run_op(fd, HSMCARD_IOC_MAC, h, HSMCARD_MECH_HMAC_SHA256, 0, 0,
		       msg, len, mac, &n);
}

static const EVP_MD *sig_md(uint16_t type)
{
	return type == HSMCARD_KEY_ED25519 ? NULL : EVP_sha256();
}

/* ---- partitions (for the cross-partition case) ---- */

static void pin_buf(uint8_t *dst, uint16_t *len, const char *pin)
{
	memset(dst, 0, HSMCARD_PIN_MAX);
	*len = strlen(pin);
	memcpy(dst, pin, *len);
}

static int login(int fd, uint32_t part, uint16_t role, const char *pin)
{
	struct hsmcard_login lg;

	memset(&lg, 0, sizeof(lg));
	lg.partition = part;
	lg.role = role;
	pin_buf(lg.pin, &lg.pin_len, pin);
	return xioctl(fd, HSMCARD_IOC_LOGIN, &lg);
}

/* The card gets our admin PIN if it has none (a fresh card). */
static int ensure_admin(int fd)
{
	struct hsmcard_part_admin pa;
	struct hsmcard_part_info pi;
	int ret;

	memset(&pi, 0, sizeof(pi));
	ret = xioctl(fd, HSMCARD_IOC_PART_INFO, &pi);
	if (ret)
		return ret;
	if (pi.card_flags & HSMCARD_CARD_S_ADMIN_SET) {
		ret = login(fd, 0, HSMCARD_ROLE_ADMIN, ADMIN_PIN);
		xioctl(fd, HSMCARD_IOC_LOGOUT, NULL);
		return ret ? -EKEYREJECTED : 0;
	}
	memset(&pa, 0, sizeof(pa));
	pin_buf(pa.new_pin, &pa.new_pin_len, ADMIN_PIN);
	return xioctl(fd, HSMCARD_IOC_CARD_INIT, &pa);
}

static int part_admin(int fd, unsigned long req, uint32_t *part)
{
	struct hsmcard_part_admin pa;
	int ret;

	memset(&pa, 0, sizeof(pa));
	pa.partition = *part;
	pin_buf(pa.pin, &pa.pin_len, ADMIN_PIN);
	if (req == HSMCARD_IOC_PART_CREATE) {
		pin_buf(pa.new_pin, &pa.new_pin_len, SO_PIN);
		snprintf(pa.label, sizeof(pa.label), "wrap-test-%d", getpid());
	}
	ret = xioctl(fd, req, &pa);
	if (!ret)
		*part = pa.partition;
	return ret;
}

/* ---- the tests ---- */

FIXTURE(wrap) {
	int fd;
	uint8_t kek[32];
	uint64_t kek_h;		/* KEK with wrap and unwrap, bytes @kek */
};

FIXTURE_SETUP(wrap)
{
	self->kek_h = 0;
	self->fd = open(DEV_PATH, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	ASSERT_EQ(1, RAND_bytes(self->kek, sizeof(self->kek)));
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_AES, 256, KW, self->kek,
				sizeof(self->kek), &self->kek_h));
}

FIXTURE_TEARDOWN(wrap)
{
	if (self->fd < 0)
		return;
	if (self->kek_h)
		destroy_key(self->fd, self->kek_h);
	close(self->fd);
}

/* The card wraps, OpenSSL unwraps: the same key encrypts the same. */
TEST_F(wrap, card_to_openssl)
{
	uint8_t blob[BLOB_MAX], raw[BLOB_MAX], pt[16], ct_card[16], ct_ossl[16];
	uint32_t len = sizeof(blob);
	uint64_t h;
	int n;

	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 256,
			       HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT,
			       HSMCARD_KEYF_EXTRACTABLE, &h));
	ASSERT_EQ(0, wrap(self->fd, h, self->kek_h, blob, &len));
	EXPECT_EQ(40U, len);	/* 32 bytes + the 8-byte AIV */
	n = ossl_kwp(false, self->kek, sizeof(self->kek), blob, len, raw);
	ASSERT_EQ(32, n);
	RAND_bytes(pt, sizeof(pt));
	ASSERT_EQ(0, card_ecb(self->fd, h, pt, ct_card));
	ASSERT_EQ(0, ossl_ecb(raw, 32, pt, ct_ossl));
	EXPECT_EQ(0, memcmp(ct_card, ct_ossl, 16));
	/* and OpenSSL refuses the blob under another KEK */
	raw[0] = self->kek[0] ^ 0x80;
	memcpy(raw + 1, self->kek + 1, 31);
	EXPECT_EQ(-1, ossl_kwp(false, raw, 32, blob, len, raw + 32));
	destroy_key(self->fd, h);
}

/* OpenSSL wraps known keys, the card unwraps and uses them. */
TEST_F(wrap, openssl_to_card)
{
	uint8_t key[32], blob[BLOB_MAX], pt[16], ct_card[16], ct_ossl[16];
	uint8_t msg[64], sig[256];
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8;
	EVP_PKEY *pk, *pub;
	uint32_t sig_len = sizeof(sig);
	uint64_t h, he;
	int n, der_len;

	RAND_bytes(key, sizeof(key));
	n = ossl_kwp(true, self->kek, sizeof(self->kek), key, sizeof(key),
		     blob);
	ASSERT_EQ(40, n);
	ASSERT_EQ(0, unwrap(self->fd, self->kek_h, HSMCARD_KEY_AES,
			    HSMCARD_USE_ENCRYPT, blob, n, &h));
	RAND_bytes(pt, sizeof(pt));
	ASSERT_EQ(0, card_ecb(self->fd, h, pt, ct_card));
	ASSERT_EQ(0, ossl_ecb(key, 32, pt, ct_ossl));
	EXPECT_EQ(0, memcmp(ct_card, ct_ossl, 16));
	destroy_key(self->fd, h);

	/* an EC P-256 key as PKCS#8 */
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ASSERT_NE(NULL, pk);
	p8 = EVP_PKEY2PKCS8(pk);
	der_len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	ASSERT_LT(0, der_len);
	n = ossl_kwp(true, self->kek, sizeof(self->kek), der, der_len, blob);
	OPENSSL_clear_free(der, der_len);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, unwrap(self->fd, self->kek_h, HSMCARD_KEY_EC_P256,
			    HSMCARD_USE_SIGN, blob, n, &he));
	pub = export_pub(self->fd, he);
	ASSERT_NE(NULL, pub);
	EXPECT_EQ(1, EVP_PKEY_eq(pk, pub));
	EVP_PKEY_free(pub);
	fill_pattern(msg, sizeof(msg), 3);
	ASSERT_EQ(0, card_sign(self->fd, he, HSMCARD_KEY_EC_P256, msg,
			       sizeof(msg), sig, &sig_len));
	EXPECT_EQ(1, ossl_verify(pk, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), sig, sig_len));
	/* the oracle can fail: a changed message does not verify */
	msg[0] ^= 1;
	EXPECT_EQ(0, ossl_verify(pk, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), sig, sig_len));
	/* the same blob as another key type is refused, no key made */
	der_len = key_count(self->fd);
	EXPECT_EQ(-EKEYREJECTED, unwrap(self->fd, self->kek_h,
					HSMCARD_KEY_ED25519, 0, blob, n, &h));
	EXPECT_EQ(der_len, key_count(self->fd));
	destroy_key(self->fd, he);
	EVP_PKEY_free(pk);
}

/* Wrap and unwrap on the card: the key is the same key. */
static void round_trip(struct __test_metadata *_metadata, int fd,
		       uint64_t kek, uint16_t type, uint16_t bits)
{
	uint8_t blob[BLOB_MAX], msg[100], sig[1024], mac1[32], mac2[32];
	uint32_t len = sizeof(blob), sig_len = sizeof(sig);
	EVP_PKEY *pub1 = NULL, *pub2 = NULL;
	struct hsmcard_key_get_attrs ga;
	uint32_t uses = type == HSMCARD_KEY_HMAC ? 0 :
			HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY;
	uint64_t h, h2;

	fill_pattern(msg, sizeof(msg), type);
	ASSERT_EQ(0, gen_flags(fd, type, bits, uses, HSMCARD_KEYF_EXTRACTABLE,
			       &h));
	ASSERT_EQ(0, wrap(fd, h, kek, blob, &len));
	EXPECT_EQ(0U, len % 8);
	ASSERT_EQ(0, unwrap(fd, kek, type, uses, blob, len, &h2));
	EXPECT_NE(h, h2);
	memset(&ga, 0, sizeof(ga));
	ga.handle = h2;
	ASSERT_EQ(0, xioctl(fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	EXPECT_EQ(type, ga.attrs.type);
	if (bits)
		EXPECT_EQ(bits, ga.attrs.bits);
	/* not extractable unless asked for */
	EXPECT_EQ(0U, ga.attrs.flags & HSMCARD_KEYF_EXTRACTABLE);
	if (type == HSMCARD_KEY_HMAC) {
		ASSERT_EQ(0, card_hmac(fd, h, msg, sizeof(msg), mac1));
		ASSERT_EQ(0, card_hmac(fd, h2, msg, sizeof(msg), mac2));
		EXPECT_EQ(0, memcmp(mac1, mac2, 32));
		msg[0] ^= 1;
		ASSERT_EQ(0, card_hmac(fd, h2, msg, sizeof(msg), mac2));
		EXPECT_NE(0, memcmp(mac1, mac2, 32));
	} else {
		pub1 = export_pub(fd, h);
		pub2 = export_pub(fd, h2);
		ASSERT_NE(NULL, pub1);
		ASSERT_NE(NULL, pub2);
		EXPECT_EQ(1, EVP_PKEY_eq(pub1, pub2));
		/* the restored key signs for the original's public key */
		ASSERT_EQ(0, card_sign(fd, h2, type, msg, sizeof(msg), sig,
				       &sig_len));
		EXPECT_EQ(1, ossl_verify(pub1, sig_md(type), 0, 0, false,
					 msg, sizeof(msg), sig, sig_len));
		EVP_PKEY_free(pub1);
		EVP_PKEY_free(pub2);
	}
	destroy_key(fd, h);
	destroy_key(fd, h2);
}

TEST_F_TIMEOUT(wrap, round_trip_rsa2048, 180)
{
	round_trip(_metadata, self->fd, self->kek_h, HSMCARD_KEY_RSA, 2048);
}

TEST_F(wrap, round_trip_p256)
{
	round_trip(_metadata, self->fd, self->kek_h, HSMCARD_KEY_EC_P256, 0);
}

TEST_F(wrap, round_trip_ed25519)
{
	round_trip(_metadata, self->fd, self->kek_h, HSMCARD_KEY_ED25519, 0);
}

TEST_F(wrap, round_trip_hmac)
{
	round_trip(_metadata, self->fd, self->kek_h, HSMCARD_KEY_HMAC, 256);
}

/* Each attack fails, writes nothing and creates no key. */
TEST_F(wrap, attacks)
{
	uint8_t blob[BLOB_MAX], fill[BLOB_MAX], key[32];
	struct hsmcard_key_unwrap u;
	struct hsmcard_key_wrap w;
	struct hsmcard_info info;
	uint64_t hne, hx, kek_w, kek_u, h;
	uint32_t len;
	int n, count, blen;

	memset(&info, 0, sizeof(info));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_INFO, &info));
	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 256, 0, 0, &hne));
	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 128, 0,
			       HSMCARD_KEYF_EXTRACTABLE, &hx));
	RAND_bytes(key, sizeof(key));
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_AES, 256,
				HSMCARD_USE_WRAP, key, 32, &kek_w));
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_AES, 256,
				HSMCARD_USE_UNWRAP, key, 32, &kek_u));

	/* a non-extractable key: EACCES, the buffer untouched */
	memset(blob, 0xa5, sizeof(blob));
	memset(fill, 0xa5, sizeof(fill));
	len = sizeof(blob);
	EXPECT_EQ(-EACCES, wrap(self->fd, hne, self->kek_h, blob, &len));
	EXPECT_EQ(sizeof(blob), len);
	EXPECT_EQ(0, memcmp(blob, fill, sizeof(blob)));
	/* a KEK without the wrap use, and one without the unwrap use */
	len = sizeof(blob);
	EXPECT_EQ(-EACCES, wrap(self->fd, hx, kek_u, blob, &len));
	EXPECT_EQ(0, memcmp(blob, fill, sizeof(blob)));
	len = sizeof(blob);
	ASSERT_EQ(0, wrap(self->fd, hx, kek_w, blob, &len));
	blen = len;
	count = key_count(self->fd);
	EXPECT_EQ(-EACCES, unwrap(self->fd, kek_w, HSMCARD_KEY_AES, 0, blob,
				  blen, &h));
	ASSERT_EQ(0, unwrap(self->fd, kek_u, HSMCARD_KEY_AES, 0, blob, blen,
			    &h));
	destroy_key(self->fd, h);
	/* a data key is no KEK */
	len = sizeof(blob);
	EXPECT_EQ(-EACCES, wrap(self->fd, hx, hne, blob, &len));

	/* every flipped byte: EBADMSG, no key */
	for (n = 0; n < blen; n += 7) {
		blob[n] ^= 0x01;
		EXPECT_EQ(-EBADMSG, unwrap(self->fd, kek_u, HSMCARD_KEY_AES,
					   0, blob, blen, &h));
		blob[n] ^= 0x01;
	}
	/* under another KEK (same use): EBADMSG */
	EXPECT_EQ(-EBADMSG, unwrap(self->fd, self->kek_h, HSMCARD_KEY_AES, 0,
				   blob, blen, &h));
	EXPECT_EQ(count, key_count(self->fd));

	/* lengths: not a multiple of 8, too short, too long */
	EXPECT_EQ(-EINVAL, unwrap(self->fd, kek_u, HSMCARD_KEY_AES, 0, blob,
				  blen - 4, &h));
	EXPECT_EQ(-EINVAL, unwrap(self->fd, kek_u, HSMCARD_KEY_AES, 0, blob,
				  8, &h));
	EXPECT_EQ(-EINVAL, unwrap(self->fd, kek_u, HSMCARD_KEY_AES, 0, blob,
				  0, &h));
	EXPECT_EQ(-E2BIG, unwrap(self->fd, kek_u, HSMCARD_KEY_AES, 0, blob,
				 info.max_xfer, &h));
	/* pointers */
	EXPECT_EQ(-EFAULT, unwrap(self->fd, kek_u, HSMCARD_KEY_AES, 0, NULL,
				  blen, &h));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, (uint8_t *)8, blen);
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP,
				  (void *)8));
	len = 64;
	EXPECT_EQ(-EFAULT, wrap(self->fd, hx, kek_w, NULL, &len));
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, (void *)8));
	/* reserved fields, flags, mechanism, attributes */
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.rsvd[1] = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.rsvd0 = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.flags = HSMCARD_WRAP_FLAGS_ALL + 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.mech = HSMCARD_MECH_AES_GCM;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.attrs.rsvd = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.attrs.partition = HSMCARD_PARTITION_KERNEL;
	EXPECT_EQ(-EPERM, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, kek_u, HSMCARD_KEY_AES, 0, 0, blob, blen);
	u.attrs.handle = hx;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	memset(&w, 0, sizeof(w));
	w.handle = hx;
	w.kek = kek_w;
	w.blob = (uintptr_t)blob;
	w.len = sizeof(blob);
	w.rsvd1 = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	w.rsvd1 = 0;
	w.rsvd[0] = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	w.rsvd[0] = 0;
	w.flags = HSMCARD_WRAP_FLAGS_ALL + 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	w.flags = 0;
	w.mech = HSMCARD_MECH_AES_CBC;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	w.mech = 0;
	w.len = 0;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	/* too small a buffer: ENOSPC and the size needed, nothing written */
	memcpy(blob, fill, 24);
	w.len = 23;
	EXPECT_EQ(-ENOSPC, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	EXPECT_EQ(24U, w.len);	/* 16 bytes + AIV */
	EXPECT_EQ(0, memcmp(blob, fill, 24));
	w.len = 24;
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_WRAP, &w));
	EXPECT_EQ(24U, w.len);
	/* a handle of another partition number: as if it did not exist */
	len = sizeof(blob);
	EXPECT_EQ(-ENOKEY, wrap(self->fd, hx ^ (3ULL << 24), kek_w, blob,
				&len));
	len = sizeof(blob);
	EXPECT_EQ(-ENOKEY, wrap(self->fd, hx, kek_w ^ (1ULL << 24), blob,
				&len));
	EXPECT_EQ(-ENOKEY, unwrap(self->fd, kek_u ^ (1ULL << 24),
				  HSMCARD_KEY_AES, 0, blob, 24, &h));
	EXPECT_EQ(count, key_count(self->fd));

	destroy_key(self->fd, hne);
	destroy_key(self->fd, hx);
	destroy_key(self->fd, kek_w);
	destroy_key(self->fd, kek_u);
}

static int wrap_flags(int fd, uint64_t h, uint64_t kek, uint32_t flags,
		      uint8_t *blob, uint32_t *len)
{
	struct hsmcard_key_wrap w;
	int ret;

	memset(&w, 0, sizeof(w));
	w.handle = h;
	w.kek = kek;
	w.flags = flags;
	w.mech = HSMCARD_MECH_AES_KWP;
	w.blob = (uintptr_t)blob;
	w.len = *len;
	ret = xioctl(fd, HSMCARD_IOC_KEY_WRAP, &w);
	*len = w.len;
	return ret;
}

static int get_attrs(int fd, uint64_t h, struct hsmcard_key_attrs *a)
{
	struct hsmcard_key_get_attrs ga;
	int ret;

	memset(&ga, 0, sizeof(ga));
	ga.handle = h;
	ret = xioctl(fd, HSMCARD_IOC_KEY_ATTRS, &ga);
	*a = ga.attrs;
	return ret;
}

static uint16_t le16_at(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t le32_at(const uint8_t *p)
{
	return le16_at(p) | (uint32_t)le16_at(p + 2) << 16;
}

static uint64_t le64_at(const uint8_t *p)
{
	return le32_at(p) | (uint64_t)le32_at(p + 4) << 32;
}

/*
 * HSMCARD_WRAP_ATTRS: the payload (hw.rst) is "HSMKATT1", le16 length, the
 * card's struct hsm_key_attrs (type at 8, bits 10, uses 12, flags 16,
 * created 24, state 32, version 36, activated 40, deactivated 48, label
 * 64..127), the material.  Edited attributes never widen the key.
 */
TEST_F(wrap, attrs_blob)
{
	uint8_t blob[BLOB_MAX], plain[BLOB_MAX], pt[BLOB_MAX], blk[16], ct[16];
	uint8_t out[16];
	struct hsmcard_key_attrs o, r;
	struct hsmcard_key_set_state ks;
	struct hsmcard_key_unwrap u;
	uint32_t len, plen, alen, olen = 16;
	uint64_t h, h2;
	const uint8_t *at;
	int n, count;

	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 256,
			       HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT,
			       HSMCARD_KEYF_EXTRACTABLE |
			       HSMCARD_KEYF_SENSITIVE, &h));
	memset(&ks, 0, sizeof(ks));
	ks.handle = h;
	ks.state = HSMCARD_KEY_STATE_DEACTIVATED;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_SET_STATE, &ks));
	ASSERT_EQ(0, get_attrs(self->fd, h, &o));
	len = sizeof(blob);
	ASSERT_EQ(0, wrap_flags(self->fd, h, self->kek_h, HSMCARD_WRAP_ATTRS,
				blob, &len));
	plen = sizeof(plain);
	ASSERT_EQ(0, wrap(self->fd, h, self->kek_h, plain, &plen));
	EXPECT_EQ(40U, plen);	/* the plain form is unchanged */

	/* OpenSSL reads the payload */
	n = ossl_kwp(false, self->kek, sizeof(self->kek), blob, len, pt);
	ASSERT_LT(0, n);
	ASSERT_LT(10 + sizeof(struct hsmcard_key_attrs) + 32 - 1, (size_t)n);
	EXPECT_EQ(0, memcmp(pt, "HSMKATT1", 8));
	alen = le16_at(pt + 8);
	/* the card's struct hsm_key_attrs (hw.rst): 160 bytes, as the UAPI's */
	ASSERT_EQ(sizeof(struct hsmcard_key_attrs), alen);
	ASSERT_EQ((uint32_t)n, 10 + alen + 32);
	at = pt + 10;
	EXPECT_EQ(0ULL, le64_at(at));		/* no handle */
	EXPECT_EQ(o.type, le16_at(at + 8));
	EXPECT_EQ(o.bits, le16_at(at + 10));
	EXPECT_EQ(o.uses, le32_at(at + 12));
	EXPECT_EQ(o.flags, le32_at(at + 16));
	EXPECT_EQ(o.created, le64_at(at + 24));
	EXPECT_EQ(HSMCARD_KEY_STATE_DEACTIVATED, le16_at(at + 32));
	EXPECT_EQ(o.version, le32_at(at + 36));
	EXPECT_EQ(o.activated, le64_at(at + 40));
	EXPECT_EQ(o.deactivated, le64_at(at + 48));
	EXPECT_NE(0ULL, o.deactivated);
	EXPECT_EQ(o.id_len, le16_at(at + 34));
	EXPECT_EQ(0, memcmp(o.id, at + 128, HSMCARD_KEY_ID_LEN));
	/* the material: OpenSSL encrypts, the (deactivated) key decrypts */
	RAND_bytes(blk, sizeof(blk));
	ASSERT_EQ(0, ossl_ecb(pt + 10 + alen, 32, blk, ct));
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_DECRYPT, h,
			    HSMCARD_MECH_AES_ECB, 0, 0, ct, 16, out, &olen));
	EXPECT_EQ(0, memcmp(out, blk, 16));
	destroy_key(self->fd, h);
	count = key_count(self->fd);

	/* widening: EACCES and no key */
	unwrap_init(&u, self->kek_h, 0, o.uses | HSMCARD_USE_WRAP, 0, blob,
		    len);
	u.flags = HSMCARD_WRAP_ATTRS;
	memset(u.attrs.label, 0, sizeof(u.attrs.label));
	EXPECT_EQ(-EACCES, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, self->kek_h, 0, 0, HSMCARD_KEYF_EXTRACTABLE, blob,
		    len);
	u.flags = HSMCARD_WRAP_ATTRS;
	memset(u.attrs.label, 0, sizeof(u.attrs.label));
	EXPECT_EQ(-EACCES, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, self->kek_h, HSMCARD_KEY_AES, 0, 0, blob, len);
	u.flags = HSMCARD_WRAP_ATTRS;	/* label "wrap-test": not the key's */
	EXPECT_EQ(-EACCES, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	unwrap_init(&u, self->kek_h, 0, 0, 0, blob, len);
	u.flags = HSMCARD_WRAP_ATTRS;
	memset(u.attrs.label, 0, sizeof(u.attrs.label));
	u.attrs.state = HSMCARD_KEY_STATE_ACTIVE;
	EXPECT_EQ(-EACCES, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	/* altered blob; plain and attribute blobs mixed up */
	for (n = 0; n < (int)len; n += 11) {
		blob[n] ^= 0x04;
		unwrap_init(&u, self->kek_h, 0, 0, 0, blob, len);
		u.flags = HSMCARD_WRAP_ATTRS;
		memset(u.attrs.label, 0, sizeof(u.attrs.label));
		EXPECT_EQ(-EBADMSG, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP,
					   &u));
		blob[n] ^= 0x04;
	}
	unwrap_init(&u, self->kek_h, 0, 0, 0, plain, plen);
	u.flags = HSMCARD_WRAP_ATTRS;
	memset(u.attrs.label, 0, sizeof(u.attrs.label));
	EXPECT_EQ(-EBADMSG, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	EXPECT_NE(0, unwrap(self->fd, self->kek_h, HSMCARD_KEY_AES, 0, blob,
			    len, &h2));
	EXPECT_EQ(count, key_count(self->fd));

	/* all zero: every attribute from the blob */
	unwrap_init(&u, self->kek_h, 0, 0, 0, blob, len);
	u.flags = HSMCARD_WRAP_ATTRS;
	memset(u.attrs.label, 0, sizeof(u.attrs.label));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	h2 = u.attrs.handle;
	ASSERT_EQ(0, get_attrs(self->fd, h2, &r));
	EXPECT_EQ(o.type, r.type);
	EXPECT_EQ(o.bits, r.bits);
	EXPECT_EQ(o.uses, r.uses);
	EXPECT_EQ(o.flags, r.flags);
	EXPECT_EQ(o.created, r.created);
	EXPECT_EQ(o.state, r.state);
	EXPECT_EQ(o.version, r.version);
	EXPECT_EQ(o.activated, r.activated);
	EXPECT_EQ(o.deactivated, r.deactivated);
	EXPECT_EQ(0, strcmp(o.label, r.label));
	olen = 16;
	ASSERT_EQ(0, run_op(self->fd, HSMCARD_IOC_DECRYPT, h2,
			    HSMCARD_MECH_AES_ECB, 0, 0, ct, 16, out, &olen));
	EXPECT_EQ(0, memcmp(out, blk, 16));
	/* still deactivated: no encryption */
	olen = 16;
	EXPECT_NE(0, run_op(self->fd, HSMCARD_IOC_ENCRYPT, h2,
			    HSMCARD_MECH_AES_ECB, 0, 0, blk, 16, out, &olen));
	destroy_key(self->fd, h2);

	/* narrowing: decrypt only, not extractable: it stays in the card */
	unwrap_init(&u, self->kek_h, HSMCARD_KEY_AES, HSMCARD_USE_DECRYPT,
		    HSMCARD_KEYF_SENSITIVE, blob, len);
	u.flags = HSMCARD_WRAP_ATTRS;
	memset(u.attrs.label, 0, sizeof(u.attrs.label));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_UNWRAP, &u));
	h2 = u.attrs.handle;
	EXPECT_EQ(HSMCARD_USE_DECRYPT, u.attrs.uses);
	EXPECT_EQ(HSMCARD_KEYF_SENSITIVE, u.attrs.flags);
	len = sizeof(blob);
	EXPECT_EQ(-EACCES, wrap_flags(self->fd, h2, self->kek_h,
				      HSMCARD_WRAP_ATTRS, blob, &len));
	destroy_key(self->fd, h2);
}

/* A KEK of another partition, named by a file of either partition. */
TEST_F(wrap, other_partition)
{
	uint8_t blob[BLOB_MAX];
	struct hsmcard_set_pin sp;
	uint64_t hx, kek_p, h;
	uint32_t part = HSMCARD_PART_ANY, len;
	int fd2, ret, count;

	ret = ensure_admin(self->fd);
	if (ret == -EKEYREJECTED || ret == -EOPNOTSUPP)
		SKIP(return, "no admin PIN of ours on this card (%d)", ret);
	ASSERT_EQ(0, ret);
	/* CARD_INIT on a fresh card took the fixture's KEK with it */
	destroy_key(self->fd, self->kek_h);
	ASSERT_EQ(0, import_key(self->fd, HSMCARD_KEY_AES, 256, KW, self->kek,
				sizeof(self->kek), &self->kek_h));
	ASSERT_EQ(0, part_admin(self->fd, HSMCARD_IOC_PART_CREATE, &part));
	memset(&sp, 0, sizeof(sp));
	sp.partition = part;
	sp.role = HSMCARD_ROLE_USER;
	sp.auth_role = HSMCARD_ROLE_SO;
	pin_buf(sp.pin, &sp.pin_len, SO_PIN);
	pin_buf(sp.new_pin, &sp.new_pin_len, USER_PIN);
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_SET_PIN, &sp));
	fd2 = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, login(fd2, part, HSMCARD_ROLE_USER, USER_PIN));
	ASSERT_EQ(0, import_key(fd2, HSMCARD_KEY_AES, 256, KW, self->kek, 32,
				&kek_p));
	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 256, 0,
			       HSMCARD_KEYF_EXTRACTABLE, &hx));
	count = key_count(self->fd);

	/* partition 0 names partition P's KEK */
	len = sizeof(blob);
	EXPECT_EQ(-ENOKEY, wrap(self->fd, hx, kek_p, blob, &len));
	len = sizeof(blob);
	ASSERT_EQ(0, wrap(self->fd, hx, self->kek_h, blob, &len));
	EXPECT_EQ(-ENOKEY, unwrap(self->fd, kek_p, HSMCARD_KEY_AES, 0, blob,
				  len, &h));
	/* partition P names partition 0's key or KEK */
	EXPECT_EQ(-ENOKEY, unwrap(fd2, self->kek_h, HSMCARD_KEY_AES, 0, blob,
				  len, &h));
	len = sizeof(blob);
	EXPECT_EQ(-ENOKEY, wrap(fd2, hx, kek_p, blob, &len));
	/* the same KEK bytes in P unwrap partition 0's blob into P */
	len = sizeof(blob);
	ASSERT_EQ(0, wrap(self->fd, hx, self->kek_h, blob, &len));
	ASSERT_EQ(0, unwrap(fd2, kek_p, HSMCARD_KEY_AES, 0, blob, len, &h));
	EXPECT_EQ(part, (uint32_t)((h >> 24) & 0xff));
	EXPECT_EQ(count, key_count(self->fd));
	/* an SO login uses no key */
	ASSERT_EQ(0, login(fd2, part, HSMCARD_ROLE_SO, SO_PIN));
	len = sizeof(blob);
	EXPECT_EQ(-EPERM, wrap(fd2, h, kek_p, blob, &len));
	EXPECT_EQ(-EPERM, unwrap(fd2, kek_p, HSMCARD_KEY_AES, 0, blob, len,
				 &h));
	close(fd2);
	destroy_key(self->fd, hx);
	EXPECT_EQ(0, part_admin(self->fd, HSMCARD_IOC_PART_DELETE, &part));
}

/* ---- hsmctl backup and restore on the same card ---- */

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(buf, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* Flip one bit of the byte at @off (from the end if negative). */
static int flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c, ret = -1;

	if (!f)
		return -1;
	if (!fseek(f, off, off < 0 ? SEEK_END : SEEK_SET)) {
		c = fgetc(f);
		if (c != EOF && !fseek(f, -1, SEEK_CUR) &&
		    fputc(c ^ 0x01, f) != EOF)
			ret = 0;
	}
	return fclose(f) || ret ? -1 : 0;
}

TEST_F_TIMEOUT(wrap, hsmctl_backup_restore, 240)
{
	char dir[] = "/tmp/hsm-wrap-XXXXXX", line[256], label[80];
	uint8_t pt[16], ct1[16], ct2[16], msg[48], sig[128];
	uint64_t kek, haes, hec, hne, oldh, newh, raes = 0, rec = 0;
	uint32_t sig_len = sizeof(sig);
	int st, i, restored = 0, skipped = 0;
	uint64_t made[MAX_RESTORED];
	EVP_PKEY *pub, *rpub;
	FILE *p;

	ASSERT_NE(NULL, mkdtemp(dir));
	/* the KEK through hsmctl import (a session key here) */
	snprintf(line, sizeof(line), "%s/kek", dir);
	ASSERT_EQ(0, write_file(line, self->kek, sizeof(self->kek)));
	ASSERT_EQ(0, sh_line(line, sizeof(line),
			     "hsmctl import -t aes -u wrap,unwrap -i %s/kek",
			     dir));
	ASSERT_EQ(1, sscanf(line, "%" SCNx64, &kek));
	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 256, 0,
			       HSMCARD_KEYF_EXTRACTABLE, &haes));
	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_EC_P256, 0, 0,
			       HSMCARD_KEYF_EXTRACTABLE, &hec));
	ASSERT_EQ(0, gen_flags(self->fd, HSMCARD_KEY_AES, 128, 0, 0, &hne));

	/* 1: file written, the non-extractable key named as skipped */
	st = sh("hsmctl backup --kek 0x%" PRIx64 " -o %s/bk 2>%s/err",
		kek, dir, dir);
	EXPECT_EQ(1, st);
	EXPECT_EQ(0, sh("grep -q 'skipped 0x%016" PRIx64 ".*not extractable' %s/err",
			hne, dir));
	EXPECT_NE(0, sh("grep -q '0x%016" PRIx64 "' %s/err", haes, dir));
	/* the file starts with its magic */
	EXPECT_EQ(0, sh("head -c 8 %s/bk | grep -q HSMCBKP", dir));

	RAND_bytes(pt, sizeof(pt));
	fill_pattern(msg, sizeof(msg), 9);
	ASSERT_EQ(0, card_ecb(self->fd, haes, pt, ct1));
	pub = export_pub(self->fd, hec);
	ASSERT_NE(NULL, pub);

	snprintf(line, sizeof(line),
		 "hsmctl restore --kek 0x%" PRIx64 " %s/bk 2>/dev/null", kek,
		 dir);
	p = popen(line, "r");
	ASSERT_NE(NULL, p);
	while (fgets(line, sizeof(line), p)) {
		char type[32];

		if (sscanf(line, "%" SCNx64 " -> %" SCNx64 " %31s %79s", &oldh,
			   &newh, type, label) < 3)
			continue;
		if (restored < MAX_RESTORED)
			made[restored] = newh;
		restored++;
		if (oldh == haes)
			raes = newh;
		else if (oldh == hec)
			rec = newh;
		else if (oldh == hne)
			skipped = -1;	/* must not be there */
	}
	EXPECT_EQ(0, pclose(p));
	EXPECT_LE(2, restored);
	EXPECT_EQ(0, skipped);
	ASSERT_NE(0ULL, raes);
	ASSERT_NE(0ULL, rec);
	EXPECT_NE(haes, raes);
	ASSERT_EQ(0, card_ecb(self->fd, raes, pt, ct2));
	EXPECT_EQ(0, memcmp(ct1, ct2, 16));
	rpub = export_pub(self->fd, rec);
	ASSERT_NE(NULL, rpub);
	EXPECT_EQ(1, EVP_PKEY_eq(pub, rpub));
	ASSERT_EQ(0, card_sign(self->fd, rec, HSMCARD_KEY_EC_P256, msg,
			       sizeof(msg), sig, &sig_len));
	EXPECT_EQ(1, ossl_verify(pub, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), sig, sig_len));
	EVP_PKEY_free(rpub);
	EVP_PKEY_free(pub);

	/* an altered file: the key does not come back, exit status 1 */
	snprintf(line, sizeof(line), "%s/bk", dir);
	EXPECT_EQ(0, flip_byte(line, -3));
	st = sh("hsmctl restore --kek 0x%" PRIx64 " %s/bk >%s/out 2>&1", kek,
		dir, dir);
	EXPECT_EQ(1, st);
	EXPECT_EQ(0, sh("grep -q 'verification failed' %s/out", dir));
	/* the keys of the intact records came back: destroy them */
	sh("awk '$2 == \"->\" { print $3 }' %s/out | xargs -r hsmctl destroy",
	   dir);
	/* a truncated file: nothing at all restored, exit status 4 */
	EXPECT_EQ(0, sh("truncate -s -1 %s/bk", dir));
	st = sh("hsmctl restore --kek 0x%" PRIx64 " %s/bk >%s/out 2>&1", kek,
		dir, dir);
	EXPECT_EQ(4, st);
	EXPECT_NE(0, sh("grep -q -- '->' %s/out", dir));

	/* clean up: our keys and whatever the restores made of them */
	for (i = 0; i < restored && i < MAX_RESTORED; i++)
		destroy_key(self->fd, made[i]);
	destroy_key(self->fd, haes);
	destroy_key(self->fd, hec);
	destroy_key(self->fd, hne);
	destroy_key(self->fd, kek);
	sh("rm -rf %s", dir);
}

TEST_HARNESS_MAIN
