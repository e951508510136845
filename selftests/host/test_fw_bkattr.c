// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host unit tests of the firmware core: KEY_WRAP / KEY_UNWRAP with
 * HSM_WRAP_F_ATTRS, the wrapped form that carries a key's attributes
 * inside the RFC 5649 payload (backups whose attributes cannot be edited).
 *
 * Oracles: host OpenSSL's AES key wrap with padding (it unwraps the card's
 * blobs with the KEK bytes the test imported, and wraps payloads the test
 * builds itself, so the format is checked from outside the firmware), the
 * attributes KEY_GET_ATTRS reported before the backup, the narrowing
 * rules of hsmcard_hw.h written out here, and the audit verifier of
 * test_fw_audit.c.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "test_fw.h"

#define BK_ATTRS	sizeof(struct hsm_key_attrs)
#define BK_HDR		(HSM_WRAP_ATTRS_HDR + BK_ATTRS)
#define BK_MAX		4096

static struct hsm_fw_config bk_cfg;
static uint8_t bk_kek[32];

static void bk_rand(void *p, size_t len)
{
	if (RAND_bytes(p, len) != 1)
		abort();
}

/* KEY_IMPORT (kek 0) or KEY_UNWRAP with wrap flags @wf */
static uint16_t bk_put(struct hsm_fw *f, uint8_t op, uint64_t kek,
		       uint32_t wf, const struct hsm_key_attrs *a,
		       const void *p, size_t len, uint64_t *h)
{
	uint64_t addr = fh_alloc(&fh, BK_ATTRS + len);
	struct hsm_sqe s;

	memcpy(fh_ptr(&fh, addr), a, BK_ATTRS);
	memcpy((uint8_t *)fh_ptr(&fh, addr) + BK_ATTRS, p, len);
	sqe_init(&s, op);
	s.handle = htole64(kek);
	s.src = htole64(addr);
	s.src_len = htole32(BK_ATTRS + len);
	s.cdw[2] = htole32(wf);
	return adm(f, &s, h);
}

static uint16_t bk_wrap(struct hsm_fw *f, uint64_t h, uint64_t kek,
			uint32_t wf, uint8_t *out, size_t *len)
{
	uint64_t d = fh_alloc(&fh, BK_MAX), res = 0;
	struct hsm_sqe s;
	uint16_t st;

	sqe_init(&s, HSM_ADM_KEY_WRAP);
	s.handle = htole64(h);
	s.qw[0] = htole64(kek);
	s.cdw[2] = htole32(wf);
	s.dst = htole64(d);
	s.dst_len = htole32(BK_MAX);
	st = adm(f, &s, &res);
	*len = 0;
	if (!st && res <= BK_MAX) {
		memcpy(out, fh_ptr(&fh, d), res);
		*len = res;
	}
	return st;
}

static uint16_t bk_set_state(struct hsm_fw *f, uint64_t h, uint32_t state)
{
	struct hsm_sqe s;

	sqe_init(&s, HSM_ADM_KEY_SET_STATE);
	s.handle = htole64(h);
	s.cdw[0] = htole32(state);
	return adm(f, &s, NULL);
}

/* OpenSSL's RFC 5649 under bk_kek: the independent side of every check. */
static bool ossl_kwp(bool wrap, const uint8_t *in, size_t inlen,
		     uint8_t *out, size_t *outlen)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0;
	bool ok;

	ok = ctx &&
	     EVP_CipherInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, bk_kek,
			       NULL, wrap) == 1 &&
	     EVP_CipherUpdate(ctx, out, &n1, in, (int)inlen) == 1 &&
	     EVP_CipherFinal_ex(ctx, out + n1, &n2) == 1;
	EVP_CIPHER_CTX_free(ctx);
	*outlen = ok ? (size_t)(n1 + n2) : 0;
	return ok;
}

/* Build an attribute payload as hsmcard_hw.h describes it. */
static size_t bk_payload(uint8_t *p, const struct hsm_key_attrs *a,
			 uint16_t alen, const uint8_t *mat, size_t matlen)
{
	uint16_t le = htole16(alen);

	memcpy(p, "HSMKATT1", 8);
	memcpy(p + 8, &le, 2);
	memcpy(p + 10, a, BK_ATTRS);
	memcpy(p + 10 + alen, mat, matlen);
	return 10 + alen + matlen;
}

/* Every attribute but the handle (and the partition, which may differ). */
static bool bk_same(const struct hsm_key_attrs *x,
		    const struct hsm_key_attrs *y)
{
	struct hsm_key_attrs a = *x, b = *y;

	a.handle = b.handle = 0;
	return !memcmp(&a, &b, sizeof(a));
}

struct bk_key {
	const char *what;
	uint64_t h;
	struct hsm_key_attrs a;		/* as KEY_GET_ATTRS said */
	uint8_t mat[2048];		/* material, from the plain blob */
	size_t matlen;
	uint8_t blob[BK_MAX];		/* attribute blob */
	size_t bloblen;
};

/*
 * Wrap @k both ways; OpenSSL unwraps both blobs: the plain one must be the
 * material alone, the attribute one magic || length || attrs || material.
 */
static void bk_backup(struct hsm_fw *f, uint64_t kek, struct bk_key *k)
{
	static uint8_t plain[BK_MAX], pt[BK_MAX];
	struct hsm_key_attrs want;
	size_t plen, ptlen;
	uint16_t alen;

	check_st(get_attrs(f, k->h, &k->a), HSM_SC_SUCCESS,
		 "%s: attributes", k->what);
	check_st(bk_wrap(f, k->h, kek, 0, plain, &plen), HSM_SC_SUCCESS,
		 "%s: plain wrap", k->what);
	check(ossl_kwp(false, plain, plen, k->mat, &k->matlen) &&
	      k->matlen > 0 && k->matlen <= 128 + 1024,
	      "%s: OpenSSL unwraps the plain blob (%zu bytes of material)",
	      k->what, k->matlen);
	check(k->matlen && memcmp(k->mat, "HSMKATT1", 8),
	      "%s: the plain payload carries no attributes", k->what);
	check_st(bk_wrap(f, k->h, kek, HSM_WRAP_F_ATTRS, k->blob, &k->bloblen),
		 HSM_SC_SUCCESS, "%s: attribute wrap", k->what);
	check(k->bloblen == ((BK_HDR + k->matlen + 7) & ~(size_t)7) + 8,
	      "%s: attribute blob is %zu bytes (RFC 5649 of %zu + %zu)",
	      k->what, k->bloblen, BK_HDR, k->matlen);
	if (!check(ossl_kwp(false, k->blob, k->bloblen, pt, &ptlen),
		   "%s: OpenSSL unwraps the attribute blob", k->what))
		return;
	memcpy(&alen, pt + 8, 2);
	want = k->a;
	want.handle = 0;
	check(ptlen == BK_HDR + k->matlen && !memcmp(pt, "HSMKATT1", 8) &&
	      le16toh(alen) == BK_ATTRS &&
	      !memcmp(pt + HSM_WRAP_ATTRS_HDR, &want, BK_ATTRS) &&
	      !memcmp(pt + BK_HDR, k->mat, k->matlen),
	      "%s: payload = magic, %zu, the key's attributes (handle 0), its material",
	      k->what, BK_ATTRS);
	OPENSSL_cleanse(pt, sizeof(pt));
}

/* The restored key's material is the original's: wrap it plainly again. */
static bool bk_material_is(struct hsm_fw *f, uint64_t h, uint64_t kek,
			   const struct bk_key *k)
{
	static uint8_t blob[BK_MAX], mat[BK_MAX];
	size_t blen, mlen;

	return !bk_wrap(f, h, kek, 0, blob, &blen) &&
	       ossl_kwp(false, blob, blen, mat, &mlen) &&
	       mlen == k->matlen && !memcmp(mat, k->mat, mlen);
}

static struct hsm_fw *bk_card(const char *ks)
{
	struct hsm_fw_config c = bk_cfg;
	struct hsm_fw *f;
	char *err = NULL;

	c.keystore_path = ks;
	c.max_keys = 256;
	f = hsm_fw_new(&c, &err);
	if (!f)
		printf("# hsm_fw_new: %s\n", err ? err : "?");
	free(err);
	return f;
}

/* Caller attributes that must be refused against blob @k (type/flags). */
static void bk_widen(struct hsm_fw *f, uint64_t kek, const struct bk_key *k)
{
	const struct hsm_key_attrs *b = &k->a;
	uint16_t type = le16toh(b->type), bits = le16toh(b->bits);
	uint32_t uses = le32toh(b->uses), flags = le32toh(b->flags);
	uint16_t state = le16toh(b->state);
	struct hsm_key_attrs a;
	uint32_t more = 0;
	uint64_t h = 0;

	/* a use the type allows and the key does not have */
	if (type == HSM_KEY_AES)
		more = (HSM_USE_ENCRYPT | HSM_USE_DECRYPT | HSM_USE_WRAP |
			HSM_USE_UNWRAP) & ~uses;
	else
		more = (HSM_USE_SIGN | HSM_USE_VERIFY) & ~uses;
	if (more) {
		a = key_attrs(0, 0, uses | more, 0, 0, NULL);
		check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS,
				&a, k->blob, k->bloblen, &h),
			 HSM_SC_USE_DENIED, "%s: restore with more uses",
			 k->what);
	}
	a = key_attrs(type == HSM_KEY_AES ? HSM_KEY_HMAC : HSM_KEY_AES, 0, 0,
		     0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			k->blob, k->bloblen, &h),
		 HSM_SC_USE_DENIED, "%s: restore as another type", k->what);
	a = key_attrs(type, bits == 256 ? 384 : 256, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			k->blob, k->bloblen, &h),
		 HSM_SC_USE_DENIED, "%s: restore with another size", k->what);
	a = key_attrs(0, 0, 0, 0, 0, "not-my-label");
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			k->blob, k->bloblen, &h),
		 HSM_SC_USE_DENIED, "%s: restore under another label", k->what);
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	a.id_len = htole16(le16toh(b->id_len) ? le16toh(b->id_len) : 4);
	memcpy(a.id, b->id, le16toh(a.id_len));
	a.id[0] ^= 0x5a;
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			k->blob, k->bloblen, &h),
		 HSM_SC_USE_DENIED, "%s: restore under another key ID", k->what);
	a = key_attrs(0, 0, 0, 0, state == HSM_KEY_STATE_ACTIVE ?
		     HSM_KEY_STATE_PRE_ACTIVE : HSM_KEY_STATE_ACTIVE, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			k->blob, k->bloblen, &h),
		 HSM_SC_USE_DENIED, "%s: restore in another state", k->what);
	if (flags & HSM_KEYF_SENSITIVE) {
		a = key_attrs(0, 0, 0, flags & ~HSM_KEYF_SENSITIVE, 0, NULL);
		check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS,
				&a, k->blob, k->bloblen, &h),
			 HSM_SC_USE_DENIED, "%s: restore without SENSITIVE",
			 k->what);
	}
	if (!(flags & HSM_KEYF_PERSISTENT) && !(flags & HSM_KEYF_SESSION)) {
		a = key_attrs(0, 0, 0, flags | HSM_KEYF_PERSISTENT, 0, NULL);
		check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS,
				&a, k->blob, k->bloblen, &h),
			 HSM_SC_USE_DENIED, "%s: restore as persistent",
			 k->what);
	}
	a = key_attrs(0, 0, 0, flags ^ HSM_KEYF_SESSION, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			k->blob, k->bloblen, &h),
		 HSM_SC_USE_DENIED, "%s: restore with SESSION %s", k->what,
		 flags & HSM_KEYF_SESSION ? "dropped" : "added");
}

/*
 * A rotated family comes back whole, in any order: a restored version
 * joins its label's family when its number is free and the family keeps
 * its shape (the live version is the newest, and the only live one).
 */
static void bk_family(struct hsm_fw *f, uint64_t kek)
{
	static struct bk_key v1, v2, other;
	static uint8_t pt[BK_MAX], blob[BK_MAX];
	struct hsm_key_attrs a, r;
	uint64_t h1 = 0, h2 = 0, h = 0, x;
	uint8_t aes[32];
	size_t n, len;

	a = key_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
		     HSM_KEYF_EXTRACTABLE, 0, "bk-family");
	check_st(gen_attrs(f, &a, &v1.h), HSM_SC_SUCCESS,
		 "family: generate bk-family v1");
	{
		struct hsm_sqe s;

		sqe_init(&s, HSM_ADM_KEY_ROTATE);
		s.handle = htole64(v1.h);
		check_st(adm(f, &s, &v2.h), HSM_SC_SUCCESS,
			 "family: rotate to v2 (v1 deactivated)");
	}
	v1.what = "family v1";
	v2.what = "family v2";
	bk_backup(f, kek, &v1);
	bk_backup(f, kek, &v2);
	destroy(f, v1.h);
	destroy(f, v2.h);

	a = key_attrs(0, 0, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			v2.blob, v2.bloblen, &h2),
		 HSM_SC_SUCCESS, "family: restore v2 (active) first");
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			v1.blob, v1.bloblen, &h1),
		 HSM_SC_SUCCESS, "family: then v1 (deactivated) joins it");
	check(!find_label(f, 0, 0, "bk-family", &x) && x == h2 &&
	      !find_label(f, 0, 1, "bk-family", &x) && x == h1 &&
	      !find_label(f, 0, 2, "bk-family", &x) && x == h2,
	      "family: KEY_FIND gives v2 as the newest, v1 and v2 by number");
	check(!get_attrs(f, h1, &r) && bk_same(&r, &v1.a) &&
	      !get_attrs(f, h2, &r) && bk_same(&r, &v2.a),
	      "family: both versions with their attributes");
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			v1.blob, v1.bloblen, &h),
		 HSM_SC_LABEL_EXISTS, "family: v1 again (its number is taken)");
	destroy(f, h1);
	destroy(f, h2);

	/* the other order */
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			v1.blob, v1.bloblen, &h1),
		 HSM_SC_SUCCESS, "family: restore v1 (deactivated) first");
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			v2.blob, v2.bloblen, &h2),
		 HSM_SC_SUCCESS, "family: then v2 (active) joins it");
	check(!find_label(f, 0, 0, "bk-family", &x) && x == h2,
	      "family: v2 is the newest");
	destroy(f, h1);
	destroy(f, h2);

	/*
	 * An unrelated live key under the label: nothing joins it that
	 * would leave two live versions or a live one that is not newest.
	 */
	a = key_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
		     HSM_KEYF_EXTRACTABLE, 0, "bk-family");
	check_st(gen_attrs(f, &a, &other.h), HSM_SC_SUCCESS,
		 "family: an unrelated active bk-family v1");
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			v2.blob, v2.bloblen, &h),
		 HSM_SC_LABEL_EXISTS,
		 "family: an active v2 does not join an active v1");
	destroy(f, other.h);

	/* a forged version 2^32 - 1 would let a rotation wrap to 0 */
	bk_rand(aes, sizeof(aes));
	r = key_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT, 0,
		     HSM_KEY_STATE_ACTIVE, "bk-max");
	r.version = htole32(UINT32_MAX);
	r.created = htole64(1000);
	r.activated = htole64(2000);
	n = bk_payload(pt, &r, BK_ATTRS, aes, sizeof(aes));
	if (check(ossl_kwp(true, pt, n, blob, &len),
		  "OpenSSL wraps a version 2^32 - 1 payload"))
		check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS,
				&a, blob, len, &h),
			 HSM_SC_INVALID_FIELD, "a blob of version 2^32 - 1");
	OPENSSL_cleanse(pt, sizeof(pt));
}

void test_bkattr(const struct hsm_fw_config *base)
{
	static struct bk_key keys[3];
	static uint8_t pt[BK_MAX], blob[BK_MAX];
	char dir[] = "/tmp/hsm-bkattr-XXXXXX", ks[64], path[96], why[200];
	struct hsm_key_attrs a, r;
	struct hsm_audit_rec *rec = NULL;
	uint8_t hmac[48], aes[32];
	uint64_t kek, h, hx;
	struct hsm_fw *f;
	size_t i, n, len;
	long nrec, j;
	bool denial = false;

	bk_cfg = *base;
	if (!check(mkdtemp(dir) != NULL, "bkattr: mkdtemp"))
		return;
	snprintf(ks, sizeof(ks), "%s/keys", dir);
	f = bk_card(ks);
	if (!check(f != NULL, "bkattr: card with a key store"))
		return;

	bk_rand(bk_kek, sizeof(bk_kek));
	a = key_attrs(HSM_KEY_AES, 256, HSM_USE_WRAP | HSM_USE_UNWRAP, 0, 0,
		     NULL);
	check_st(bk_put(f, HSM_ADM_KEY_IMPORT, 0, 0, &a, bk_kek,
			sizeof(bk_kek), &kek),
		 HSM_SC_SUCCESS, "bkattr: import the KEK (bytes known to OpenSSL)");

	/* three keys with different types, flags, states and versions */
	keys[0].what = "persistent sensitive AES-256, deactivated";
	a = key_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
		     HSM_KEYF_EXTRACTABLE | HSM_KEYF_PERSISTENT |
		     HSM_KEYF_SENSITIVE, 0, "bk-aes");
	check_st(gen_attrs(f, &a, &hx), HSM_SC_SUCCESS, "generate bk-aes v1");
	{
		struct hsm_sqe s;

		sqe_init(&s, HSM_ADM_KEY_ROTATE);
		s.handle = htole64(hx);
		check_st(adm(f, &s, &keys[0].h), HSM_SC_SUCCESS,
			 "rotate bk-aes to version 2");
	}
	destroy(f, hx);
	check_st(bk_set_state(f, keys[0].h, HSM_KEY_STATE_DEACTIVATED),
		 HSM_SC_SUCCESS, "deactivate bk-aes v2");

	keys[1].what = "imported HMAC-384 session key with a key ID, pre-active";
	bk_rand(hmac, sizeof(hmac));
	a = key_attrs(HSM_KEY_HMAC, 384, HSM_USE_SIGN, HSM_KEYF_EXTRACTABLE,
		     HSM_KEY_STATE_PRE_ACTIVE, "bk-hmac");
	a.id_len = htole16(20);
	bk_rand(a.id, 20);
	check_st(bk_put(f, HSM_ADM_KEY_IMPORT, 0, 0, &a, hmac, sizeof(hmac),
			&keys[1].h), HSM_SC_SUCCESS, "import bk-hmac");

	keys[2].what = "volatile EC P-256, unlabelled";
	a = key_attrs(HSM_KEY_EC_P256, 0, HSM_USE_SIGN, HSM_KEYF_EXTRACTABLE,
		     0, NULL);
	check_st(gen_attrs(f, &a, &keys[2].h), HSM_SC_SUCCESS,
		 "generate an EC P-256 key");

	for (i = 0; i < 3; i++)
		bk_backup(f, kek, &keys[i]);
	check(keys[1].matlen == sizeof(hmac) &&
	      !memcmp(keys[1].mat, hmac, sizeof(hmac)),
	      "plain wrap: OpenSSL gets exactly the imported HMAC key back");
	check(le32toh(keys[0].a.version) == 2 &&
	      le16toh(keys[0].a.state) == HSM_KEY_STATE_DEACTIVATED &&
	      keys[0].a.deactivated && keys[0].a.activated,
	      "bk-aes is version 2, deactivated, with both times");

	/* the plain and the attribute form cannot be taken for each other */
	a = key_attrs(HSM_KEY_AES, 0, 0, 0, 0, NULL);
	check(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, 0, &a, keys[0].blob,
		     keys[0].bloblen, &h) != HSM_SC_SUCCESS,
	      "a plain unwrap of an attribute blob fails");
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	{
		static uint8_t plain[BK_MAX];
		size_t plen;

		bk_wrap(f, keys[1].h, kek, 0, plain, &plen);
		check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS,
				&a, plain, plen, &h), HSM_SC_DECRYPT_FAILED,
			 "an attribute unwrap of a plain blob");
	}

	/* the card's rules on who may export do not change */
	a = key_attrs(HSM_KEY_AES, 128, 0, 0, 0, NULL);
	gen_attrs(f, &a, &hx);
	check_st(bk_wrap(f, hx, kek, HSM_WRAP_F_ATTRS, blob, &len),
		 HSM_SC_NOT_EXTRACTABLE, "attribute wrap of a non-extractable key");
	destroy(f, hx);
	a = key_attrs(HSM_KEY_AES, 128, 0, HSM_KEYF_EXTRACTABLE, 0, NULL);
	gen_attrs(f, &a, &hx);
	bk_set_state(f, hx, HSM_KEY_STATE_COMPROMISED);
	check_st(bk_wrap(f, hx, kek, HSM_WRAP_F_ATTRS, blob, &len),
		 HSM_SC_KEY_COMPROMISED, "attribute wrap of a compromised key");
	destroy(f, hx);
	check_st(bk_wrap(f, keys[2].h, kek, 0x2, blob, &len),
		 HSM_SC_INVALID_FIELD, "wrap flag 0x2 (undefined)");
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, 0x3, &a, keys[2].blob,
			keys[2].bloblen, &h),
		 HSM_SC_INVALID_FIELD, "unwrap flags 0x3 (undefined bit)");

	/* destroy the originals, so that their labels are free again */
	for (i = 0; i < 3; i++)
		destroy(f, keys[i].h);

	/* the edited "clear side": every widening or contradiction fails */
	for (i = 0; i < 3; i++)
		bk_widen(f, kek, &keys[i]);
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	a.handle = htole64(keys[2].h);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			keys[2].blob, keys[2].bloblen, &h),
		 HSM_SC_INVALID_FIELD, "restore with a handle in the attributes");
	a.handle = 0;

	/* any flipped bit of a blob: the key wrap's check fails */
	for (i = 0; i < keys[0].bloblen; i += 7) {
		memcpy(blob, keys[0].blob, keys[0].bloblen);
		blob[i] ^= 0x10;
		if (bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			   blob, keys[0].bloblen, &h) != HSM_SC_DECRYPT_FAILED)
			break;
	}
	check(i >= keys[0].bloblen,
	      "a bit flipped at every 7th byte of a %zu-byte blob: DECRYPT_FAILED",
	      keys[0].bloblen);

	/* round trip: zero attributes take everything from the blob */
	for (i = 0; i < 3; i++) {
		check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS,
				&a, keys[i].blob, keys[i].bloblen, &h),
			 HSM_SC_SUCCESS, "%s: restore", keys[i].what);
		get_attrs(f, h, &r);
		check(bk_same(&r, &keys[i].a),
		      "%s: every attribute restored (type, bits, uses, flags, state, version, times, label)",
		      keys[i].what);
		check(bk_material_is(f, h, kek, &keys[i]),
		      "%s: the restored key's material is the original's",
		      keys[i].what);
		keys[i].h = h;
	}
	/* a restored key's lifecycle goes on from where it was */
	check_st(bk_set_state(f, keys[1].h, HSM_KEY_STATE_ACTIVE),
		 HSM_SC_SUCCESS, "restored pre-active key can be activated");
	check_st(bk_set_state(f, keys[0].h, HSM_KEY_STATE_ACTIVE),
		 HSM_SC_KEY_STATE, "restored deactivated key cannot go back");
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			keys[0].blob, keys[0].bloblen, &h),
		 HSM_SC_LABEL_EXISTS, "a second restore of bk-aes: label in use");
	destroy(f, keys[0].h);
	destroy(f, keys[1].h);

	/* narrowing is allowed */
	a = key_attrs(HSM_KEY_AES, 256, HSM_USE_DECRYPT,
		     HSM_KEYF_SENSITIVE, HSM_KEY_STATE_DEACTIVATED, "bk-aes");
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			keys[0].blob, keys[0].bloblen, &h),
		 HSM_SC_SUCCESS, "restore bk-aes decrypt only, not extractable, volatile");
	get_attrs(f, h, &r);
	check(le32toh(r.uses) == HSM_USE_DECRYPT &&
	      le32toh(r.flags) == HSM_KEYF_SENSITIVE &&
	      le32toh(r.version) == 2 && r.created == keys[0].a.created,
	      "narrowed: uses, flags as asked; version and times from the blob");
	check_st(bk_wrap(f, h, kek, HSM_WRAP_F_ATTRS, blob, &len),
		 HSM_SC_NOT_EXTRACTABLE, "the narrowed key cannot be exported");
	destroy(f, h);
	a = key_attrs(0, 0, 0, HSM_KEYF_EXTRACTABLE | HSM_KEYF_SENSITIVE, 0,
		     NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			keys[2].blob, keys[2].bloblen, &h),
		 HSM_SC_SUCCESS, "restore the EC key with SENSITIVE added");
	get_attrs(f, h, &r);
	check(le32toh(r.flags) == (HSM_KEYF_EXTRACTABLE | HSM_KEYF_SENSITIVE),
	      "SENSITIVE added");
	destroy(f, h);
	destroy(f, keys[2].h);

	/*
	 * A payload made by OpenSSL under the same KEK: the card reads the
	 * format as documented.  Its key is not extractable, which no card
	 * would wrap: asking for EXTRACTABLE must fail, and the key as
	 * restored must not leave.
	 */
	bk_rand(aes, sizeof(aes));
	r = key_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT, HSM_KEYF_SENSITIVE,
		     HSM_KEY_STATE_ACTIVE, "forged");
	r.version = htole32(7);
	r.created = htole64(1000);
	r.activated = htole64(2000);
	n = bk_payload(pt, &r, BK_ATTRS, aes, sizeof(aes));
	check(ossl_kwp(true, pt, n, blob, &len), "OpenSSL wraps a payload");
	a = key_attrs(0, 0, 0, HSM_KEYF_EXTRACTABLE | HSM_KEYF_SENSITIVE, 0,
		     NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_USE_DENIED, "EXTRACTABLE asked, the blob says no");
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_SUCCESS, "the OpenSSL-made blob unwraps");
	get_attrs(f, h, &a);
	check(bk_same(&a, &r), "with exactly the attributes OpenSSL wrapped");
	check_st(bk_wrap(f, h, kek, 0, pt, &n), HSM_SC_NOT_EXTRACTABLE,
		 "and its key does not leave the card");
	destroy(f, h);
	/* malformed payloads that do unwrap */
	n = bk_payload(pt, &r, BK_ATTRS + 8, aes, sizeof(aes));
	ossl_kwp(true, pt, n, blob, &len);
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_INVALID_FIELD, "attrs_len %zu (not sizeof)", BK_ATTRS + 8);
	r.state = htole16(HSM_KEY_STATE_COMPROMISED);
	n = bk_payload(pt, &r, BK_ATTRS, aes, sizeof(aes));
	ossl_kwp(true, pt, n, blob, &len);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_INVALID_FIELD, "a blob of a compromised key");
	r.state = htole16(HSM_KEY_STATE_ACTIVE);
	r.handle = htole64(0x1234);
	n = bk_payload(pt, &r, BK_ATTRS, aes, sizeof(aes));
	ossl_kwp(true, pt, n, blob, &len);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_INVALID_FIELD, "a blob with a handle");
	r.handle = 0;
	n = bk_payload(pt, &r, BK_ATTRS, aes, 16);
	ossl_kwp(true, pt, n, blob, &len);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_INVALID_KEY_SIZE, "a blob whose material is not its size");
	n = bk_payload(pt, &r, BK_ATTRS, aes, sizeof(aes));
	pt[7] = '2';
	ossl_kwp(true, pt, n, blob, &len);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a, blob,
			len, &h),
		 HSM_SC_DECRYPT_FAILED, "a payload with another magic");

	bk_family(f, kek);

	/* a persistent restore survives a restart, state and all */
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			keys[0].blob, keys[0].bloblen, &h),
		 HSM_SC_SUCCESS, "restore persistent bk-aes again");
	/* the new key goes to the KEK's partition, whatever the blob says */
	a = key_attrs(0, 0, 0, 0, 0, NULL);
	a.partition = htole32(HSM_KERNEL_PARTITION);
	check_st(bk_put(f, HSM_ADM_KEY_UNWRAP, kek, HSM_WRAP_F_ATTRS, &a,
			keys[2].blob, keys[2].bloblen, &hx),
		 HSM_SC_INVALID_HANDLE, "restore into another partition than the KEK's");

	nrec = test_audit_verify(f, &rec, why, sizeof(why));
	check(nrec > 0, "bkattr: audit log verifies (%s)",
	      nrec > 0 ? "ok" : why);
	for (j = 0; j < nrec; j++)
		if (le16toh(rec[j].event) == HSM_AUDIT_EV_KEY_UNWRAP &&
		    le16toh(rec[j].status) == HSM_SC_USE_DENIED)
			denial = true;
	check(denial, "a refused widening is in the audit log as a denial");
	free(rec);

	hsm_fw_free(f);
	fh_reset(&fh);
	f = bk_card(ks);
	if (check(f != NULL, "bkattr: the card restarts on its key store")) {
		check_st(get_attrs(f, h, &r), HSM_SC_SUCCESS,
			 "restored persistent key is still there");
		check(bk_same(&r, &keys[0].a),
		      "with all its attributes (deactivated, version 2)");
		hsm_fw_free(f);
	}
	fh_reset(&fh);
	unlink(ks);
	snprintf(path, sizeof(path), "%s.mk", ks);
	unlink(path);
	snprintf(path, sizeof(path), "%s.gen", ks);
	unlink(path);
	snprintf(path, sizeof(path), "%s.audit", ks);
	unlink(path);
	snprintf(path, sizeof(path), "%s.tmp", ks);
	unlink(path);
	rmdir(dir);
}
