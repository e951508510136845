// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host unit tests of the firmware core: application-chosen key IDs
 * (struct hsm_key_attrs.id): validation, uniqueness per partition,
 * KEY_FIND by ID, KEY_ROTATE with and without a new ID, persistence in the
 * version 5 key store, loading a version 4 store, and the ID index at
 * 100 000 keys.
 *
 * Oracles: IDs are SHA-256 digests computed here with OpenSSL and compared
 * byte for byte with what GET_ATTRS returns; the version 4 store is built
 * by this file from the sealed version 5 payload (decrypted with OpenSSL),
 * not by the firmware.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "test_fw.h"

#define TI_ATTRS	sizeof(struct hsm_key_attrs)
#define TI_ATTRS_V4	offsetof(struct hsm_key_attrs, id)

static struct hsm_fw_config ti_cfg;
static char ti_dir[64], ti_ks[96], ti_mk[112];

static struct hsm_fw *ti_card(const char *ks, unsigned int max_keys)
{
	struct hsm_fw_config c = ti_cfg;
	struct hsm_fw *f;
	char *err = NULL;

	c.keystore_path = ks;
	c.max_keys = max_keys;
	f = hsm_fw_new(&c, &err);
	if (!f)
		printf("# hsm_fw_new: %s\n", err ? err : "?");
	free(err);
	return f;
}

/* SHA-256 of a string: the kind of ID an application derives. */
static void ti_sha(const char *s, uint8_t *id)
{
	SHA256((const unsigned char *)s, strlen(s), id);
}

static struct hsm_key_attrs ti_attrs(uint32_t part, uint32_t flags,
				     uint32_t uses, const char *label,
				     const uint8_t *id, unsigned int len)
{
	struct hsm_key_attrs a;

	memset(&a, 0, sizeof(a));
	a.type = htole16(HSM_KEY_AES);
	a.bits = htole16(128);
	a.uses = htole32(uses);
	a.flags = htole32(flags);
	a.partition = htole32(part);
	if (label)
		snprintf(a.label, sizeof(a.label), "%s", label);
	a.id_len = htole16(len);
	if (len)
		memcpy(a.id, id, len);
	return a;
}

static uint16_t ti_gen(struct hsm_fw *f, uint32_t part, uint32_t flags,
		       const char *label, const uint8_t *id, unsigned int len,
		       uint64_t *h)
{
	struct hsm_key_attrs a = ti_attrs(part, flags, 0, label, id, len);

	return gen_attrs(f, &a, h);
}

/* KEY_IMPORT (kek 0) or KEY_UNWRAP (kek): src = attrs || payload */
static uint16_t ti_put(struct hsm_fw *f, uint8_t op, uint64_t kek,
		       const struct hsm_key_attrs *a, const void *p,
		       size_t len, uint64_t *h)
{
	uint64_t addr = fh_alloc(&fh, TI_ATTRS + len);
	struct hsm_sqe s;

	memcpy(fh_ptr(&fh, addr), a, TI_ATTRS);
	memcpy((uint8_t *)fh_ptr(&fh, addr) + TI_ATTRS, p, len);
	sqe_init(&s, op);
	s.handle = htole64(kek);
	s.src = htole64(addr);
	s.src_len = htole32(TI_ATTRS + len);
	return adm(f, &s, h);
}

/* The key @h has exactly the ID @id[@len] (and zeros after it). */
static bool ti_has_id(struct hsm_fw *f, uint64_t h, const uint8_t *id,
		      unsigned int len)
{
	uint8_t want[HSM_KEY_ID_LEN] = { 0 };
	struct hsm_key_attrs a;

	if (len)
		memcpy(want, id, len);
	return !get_attrs(f, h, &a) && le16toh(a.id_len) == len &&
	       !memcmp(a.id, want, sizeof(want));
}

/* KEY_FIND by ID with the raw fields: @buf is the whole 32-byte src. */
static uint16_t ti_find_raw(struct hsm_fw *f, uint32_t part, uint32_t len,
			    const uint8_t *buf, uint32_t src_len,
			    uint32_t mode, uint64_t *h)
{
	uint64_t a = fh_alloc(&fh, HSM_KEY_ID_LEN + 8);
	struct hsm_sqe s;

	memset(fh_ptr(&fh, a), 0, HSM_KEY_ID_LEN + 8);
	memcpy(fh_ptr(&fh, a), buf, HSM_KEY_ID_LEN);
	sqe_init(&s, HSM_ADM_KEY_FIND);
	s.cdw[0] = htole32(part);
	s.cdw[1] = htole32(len);
	s.cdw[2] = htole32(mode);
	s.src = htole64(a);
	s.src_len = htole32(src_len);
	*h = 0;
	return adm(f, &s, h);
}

static uint16_t ti_find(struct hsm_fw *f, uint32_t part, const uint8_t *id,
			unsigned int len, uint64_t *h)
{
	uint8_t buf[HSM_KEY_ID_LEN] = { 0 };

	memcpy(buf, id, len);
	return ti_find_raw(f, part, len, buf, HSM_KEY_ID_LEN, HSM_FIND_BY_ID,
			   h);
}

static uint16_t ti_find_label(struct hsm_fw *f, uint32_t part,
			      const char *label, uint64_t *h)
{
	uint8_t buf[HSM_LABEL_LEN] = { 0 };
	uint64_t a = fh_put(&fh, buf, sizeof(buf));
	struct hsm_sqe s;

	memcpy(fh_ptr(&fh, a), label, strlen(label));
	sqe_init(&s, HSM_ADM_KEY_FIND);
	s.cdw[0] = htole32(part);
	s.src = htole64(a);
	s.src_len = htole32(HSM_LABEL_LEN);
	return adm(f, &s, h);
}

/* KEY_ROTATE; @id NULL: without a new ID (flag clear, no src). */
static uint16_t ti_rotate(struct hsm_fw *f, uint64_t h, const uint8_t *id,
			  unsigned int len, uint64_t *nh)
{
	uint8_t buf[HSM_KEY_ID_LEN] = { 0 };
	struct hsm_sqe s;

	sqe_init(&s, HSM_ADM_KEY_ROTATE);
	s.handle = htole64(h);
	if (id) {
		memcpy(buf, id, len);
		s.cdw[0] = htole32(HSM_ROTATE_F_ID);
		s.cdw[1] = htole32(len);
		s.src = htole64(fh_put(&fh, buf, sizeof(buf)));
		s.src_len = htole32(sizeof(buf));
	}
	*nh = 0;
	return adm(f, &s, nh);
}

static uint16_t ti_state(struct hsm_fw *f, uint64_t h, uint32_t *state)
{
	struct hsm_key_attrs a;
	uint16_t st = get_attrs(f, h, &a);

	*state = le16toh(a.state);
	return st;
}

/* ---- attributes and uniqueness ---- */

static void test_id_attrs(struct hsm_fw *f)
{
	uint8_t id1[32], id2[32], idn[32], ab[3] = { 'a', 'b', 0 };
	uint8_t key[16] = "import-key-bytes";
	struct hsm_key_attrs a;
	uint64_t h1, h2, h3, hk, hx, hp, x;
	uint32_t i;

	ti_sha("id one", id1);
	ti_sha("id two", id2);
	check_st(ti_gen(f, 0, 0, "id-key-1", id1, 32, &h1), HSM_SC_SUCCESS,
		 "generate with a 32-byte ID");
	check(ti_has_id(f, h1, id1, 32), "GET_ATTRS returns the ID");
	check_st(ti_gen(f, 0, 0, "id-key-2", id1, 32, &x), HSM_SC_ID_EXISTS,
		 "the same ID again in partition 0: ID_EXISTS");
	check_st(ti_gen(f, 0, 0, "id-key-1", id2, 32, &x),
		 HSM_SC_LABEL_EXISTS, "label taken, new ID: LABEL_EXISTS");
	check_st(ti_gen(f, 1, 0, "id-key-1", id1, 32, &hp), HSM_SC_SUCCESS,
		 "the same ID in partition 1: allowed");
	check(ti_has_id(f, hp, id1, 32), "and that key has it too");
	check_st(ti_gen(f, 0, 0, NULL, id2, 5, &h2), HSM_SC_SUCCESS,
		 "a 5-byte ID, no label");
	check(ti_has_id(f, h2, id2, 5), "GET_ATTRS: 5 bytes, zero tail");
	check_st(ti_gen(f, 0, 0, NULL, id2, 6, &h3), HSM_SC_SUCCESS,
		 "a 6-byte ID with the same first 5 bytes: another ID");
	check_st(ti_gen(f, 0, 0, NULL, ab, 2, &x), HSM_SC_SUCCESS,
		 "ID \"ab\"");
	check_st(ti_gen(f, 0, 0, NULL, ab, 3, &x), HSM_SC_SUCCESS,
		 "ID \"ab\\0\" (3 bytes) is not \"ab\" (2 bytes)");
	check_st(ti_gen(f, 0, 0, NULL, NULL, 0, &x), HSM_SC_SUCCESS,
		 "no ID");
	check_st(ti_gen(f, 0, 0, NULL, NULL, 0, &hx), HSM_SC_SUCCESS,
		 "no ID twice: IDs of length 0 are not unique");
	check(ti_has_id(f, hx, NULL, 0), "GET_ATTRS: id_len 0, id zero");

	/* validation */
	a = ti_attrs(0, 0, 0, NULL, idn, 0);
	a.id_len = htole16(HSM_KEY_ID_LEN + 1);
	check_st(gen_attrs(f, &a, &x), HSM_SC_INVALID_FIELD, "id_len 33");
	a.id_len = htole16(0xffff);
	check_st(gen_attrs(f, &a, &x), HSM_SC_INVALID_FIELD, "id_len 65535");
	ti_sha("tail", idn);
	for (i = 4; i < HSM_KEY_ID_LEN; i++) {
		a = ti_attrs(0, 0, 0, NULL, idn, 4);
		a.id[i] = 0x80;
		if (gen_attrs(f, &a, &x) != HSM_SC_INVALID_FIELD)
			break;
	}
	check(i == HSM_KEY_ID_LEN,
	      "a non-zero byte anywhere past id_len: INVALID_FIELD (%u)", i);
	check_st(ti_find(f, 0, idn, 4, &x), HSM_SC_INVALID_HANDLE,
		 "and none of those keys exists");
	a = ti_attrs(0, 0, 0, NULL, NULL, 0);
	a.id[31] = 1;
	check_st(gen_attrs(f, &a, &x), HSM_SC_INVALID_FIELD,
		 "id_len 0 with a non-zero id byte");
	a = ti_attrs(0, 0, 0, NULL, idn, 32);
	a.rsvd[0] = htole32(1);
	check_st(gen_attrs(f, &a, &x), HSM_SC_INVALID_FIELD,
		 "rsvd still must be zero");

	/* import: a session key of partition 0 is indexed too */
	a = ti_attrs(0, 0, 0, NULL, id1, 32);
	check_st(ti_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, sizeof(key), &x),
		 HSM_SC_ID_EXISTS, "import with a taken ID: ID_EXISTS");
	ti_sha("imported", idn);
	a = ti_attrs(0, 0, 0, NULL, idn, 20);
	check_st(ti_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, sizeof(key), &hk),
		 HSM_SC_SUCCESS, "import with a new 20-byte ID");
	check(ti_has_id(f, hk, idn, 20) && !ti_find(f, 0, idn, 20, &x) &&
	      x == hk, "the imported key is found by its ID");
	/* kernel partition session keys: not indexed */
	a = ti_attrs(1, 0, 0, NULL, id2, 32);
	check_st(ti_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, sizeof(key), &x),
		 HSM_SC_SUCCESS, "kernel session key with an ID");
	check_st(ti_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, sizeof(key), &x),
		 HSM_SC_SUCCESS, "a second one with the same ID (not indexed)");
	check(ti_has_id(f, x, id2, 32), "it still carries its ID");
	check_st(ti_find(f, 1, id2, 32, &x), HSM_SC_INVALID_HANDLE,
		 "kernel session keys are not found by ID");

	/* unwrap */
	{
		uint8_t blob[64], kid[32];
		uint64_t kek, ex, hu, d, res = 0;
		struct hsm_sqe s;
		size_t blen;

		a = ti_attrs(0, 0, HSM_USE_WRAP | HSM_USE_UNWRAP, NULL,
			     NULL, 0);
		gen_attrs(f, &a, &kek);
		a = ti_attrs(0, HSM_KEYF_EXTRACTABLE, 0, NULL, NULL, 0);
		gen_attrs(f, &a, &ex);
		d = fh_alloc(&fh, sizeof(blob));
		sqe_init(&s, HSM_ADM_KEY_WRAP);
		s.handle = htole64(ex);
		s.qw[0] = htole64(kek);
		s.dst = htole64(d);
		s.dst_len = htole32(sizeof(blob));
		if (check_st(adm(f, &s, &res), HSM_SC_SUCCESS,
			     "wrap a key for the unwrap tests")) {
			blen = res;
			memcpy(blob, fh_ptr(&fh, d), blen);
			a = ti_attrs(0, 0, 0, NULL, id2, 5);
			check_st(ti_put(f, HSM_ADM_KEY_UNWRAP, kek, &a, blob,
					blen, &x), HSM_SC_ID_EXISTS,
				 "unwrap with a taken ID: ID_EXISTS");
			ti_sha("unwrapped", kid);
			a = ti_attrs(0, 0, 0, NULL, kid, 32);
			check_st(ti_put(f, HSM_ADM_KEY_UNWRAP, kek, &a, blob,
					blen, &hu), HSM_SC_SUCCESS,
				 "unwrap with a new ID");
			check(!ti_find(f, 0, kid, 32, &x) && x == hu,
			      "the unwrapped key is found by its ID");
		}
	}

	/* KEY_FIND by ID */
	check(!ti_find(f, 0, id1, 32, &x) && x == h1, "find id1 in 0");
	check(!ti_find(f, 1, id1, 32, &x) && x == hp,
	      "find id1 in 1: the other partition's key");
	check(!ti_find(f, 0, id2, 5, &x) && x == h2 &&
	      !ti_find(f, 0, id2, 6, &x) && x == h3,
	      "5 and 6 bytes of one digest name two keys");
	check(!ti_find(f, 0, ab, 2, &h2) && !ti_find(f, 0, ab, 3, &h3) &&
	      h2 != h3, "\"ab\" and \"ab\\0\" are two keys");
	check_st(ti_find(f, 0, id2, 32, &x), HSM_SC_INVALID_HANDLE,
		 "an ID nobody has: INVALID_HANDLE");
	check_st(ti_find(f, 2, id1, 32, &x), HSM_SC_INVALID_FIELD,
		 "a partition that does not exist: INVALID_FIELD");
	check_st(ti_find_raw(f, 0, 0, id1, 32, HSM_FIND_BY_ID, &x),
		 HSM_SC_INVALID_FIELD, "find: length 0");
	check_st(ti_find_raw(f, 0, 33, id1, 32, HSM_FIND_BY_ID, &x),
		 HSM_SC_INVALID_FIELD, "find: length 33");
	check_st(ti_find_raw(f, 0, 31, id1, 32, HSM_FIND_BY_ID, &x),
		 HSM_SC_INVALID_FIELD, "find: a non-zero byte past the length");
	check_st(ti_find_raw(f, 0, 32, id1, 31, HSM_FIND_BY_ID, &x),
		 HSM_SC_INVALID_LENGTH, "find: src_len 31");
	check_st(ti_find_raw(f, 0, 32, id1, 64, HSM_FIND_BY_ID, &x),
		 HSM_SC_INVALID_LENGTH, "find: src_len 64");
	check_st(ti_find_raw(f, 0, 32, id1, 32, 2, &x), HSM_SC_INVALID_FIELD,
		 "find: cdw[2] = 2");
	check(!ti_find_label(f, 0, "id-key-1", &x) && x == h1,
	      "find by label (cdw[2] = 0) unchanged");

	/* destroy: gone from the index, the ID is free again */
	check_st(destroy(f, h1), HSM_SC_SUCCESS, "destroy the id1 key");
	check_st(ti_find(f, 0, id1, 32, &x), HSM_SC_INVALID_HANDLE,
		 "find id1 after the destroy: INVALID_HANDLE");
	check(!ti_find(f, 1, id1, 32, &x) && x == hp,
	      "partition 1's key with id1 is still there");
	check_st(ti_gen(f, 0, 0, "id-key-1b", id1, 32, &h1), HSM_SC_SUCCESS,
		 "id1 can be used again");
	check(!ti_find(f, 0, id1, 32, &x) && x == h1, "and is found");
	fh_reset(&fh);
}

/* ---- rotation ---- */

static void test_id_rotate(struct hsm_fw *f)
{
	uint8_t id1[32], id2[32], id3[32];
	uint64_t h1, h2, h3, h4, x;
	struct hsm_sqe s;
	uint32_t st1;

	ti_sha("rot one", id1);
	ti_sha("rot two", id2);
	ti_sha("rot three", id3);
	check_st(ti_gen(f, 0, 0, "rot-fam", id1, 32, &h1), HSM_SC_SUCCESS,
		 "rotation family v1 with id1");
	check_st(ti_rotate(f, h1, NULL, 0, &h2), HSM_SC_SUCCESS,
		 "rotate without an ID");
	check(ti_has_id(f, h2, NULL, 0), "v2 has no ID");
	check(ti_has_id(f, h1, id1, 32), "v1 keeps id1");
	check(!ti_find(f, 0, id1, 32, &x) && x == h1,
	      "find id1 still gives v1");
	check(!ti_find_label(f, 0, "rot-fam", &x) && x == h2,
	      "the label gives v2");
	check_st(ti_rotate(f, h2, id1, 32, &x), HSM_SC_ID_EXISTS,
		 "rotate to an ID an older version has: ID_EXISTS");
	check(!ti_state(f, h2, &st1) && st1 == HSM_KEY_STATE_ACTIVE,
	      "v2 stays ACTIVE after the refused rotation");
	check_st(ti_rotate(f, h2, id2, 20, &h3), HSM_SC_SUCCESS,
		 "rotate with a new 20-byte ID");
	check(ti_has_id(f, h3, id2, 20) && ti_has_id(f, h2, NULL, 0),
	      "v3 has it, v2 still none");
	check(!ti_find(f, 0, id2, 20, &x) && x == h3, "find it: v3");

	/* malformed */
	sqe_init(&s, HSM_ADM_KEY_ROTATE);
	s.handle = htole64(h3);
	s.cdw[0] = htole32(2);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_FIELD, "rotate: cdw[0] = 2");
	sqe_init(&s, HSM_ADM_KEY_ROTATE);
	s.handle = htole64(h3);
	s.cdw[1] = htole32(32);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_FIELD,
		 "rotate: cdw[1] without the flag");
	sqe_init(&s, HSM_ADM_KEY_ROTATE);
	s.handle = htole64(h3);
	s.src = htole64(fh_put(&fh, id3, 32));
	s.src_len = htole32(32);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_FIELD,
		 "rotate: src without the flag");
	s.cdw[0] = htole32(HSM_ROTATE_F_ID);
	s.cdw[1] = htole32(0);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_FIELD, "rotate: id length 0");
	s.cdw[1] = htole32(33);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_FIELD,
		 "rotate: id length 33");
	s.cdw[1] = htole32(16);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_FIELD,
		 "rotate: non-zero bytes past the length");
	s.cdw[1] = htole32(32);
	s.src_len = htole32(16);
	check_st(adm(f, &s, &x), HSM_SC_INVALID_LENGTH, "rotate: src_len 16");
	check(!ti_state(f, h3, &st1) && st1 == HSM_KEY_STATE_ACTIVE,
	      "v3 is still ACTIVE after the malformed rotations");
	check_st(ti_rotate(f, h3, id3, 32, &h4), HSM_SC_SUCCESS,
		 "rotate v3 with id3");
	check(!ti_find(f, 0, id3, 32, &x) && x == h4 &&
	      !ti_find(f, 0, id2, 20, &x) && x == h3 &&
	      !ti_find(f, 0, id1, 32, &x) && x == h1,
	      "every version is found by its own ID");
	check_st(destroy(f, h3), HSM_SC_SUCCESS, "destroy v3");
	check_st(ti_find(f, 0, id2, 20, &x), HSM_SC_INVALID_HANDLE,
		 "v3's ID is gone with it");
	fh_reset(&fh);
}

/* ---- the version 5 store and version 4 migration ---- */

uint8_t *ti_strip_ids(uint8_t *plain, size_t *len)
{
	uint32_t count, mlen, i;
	struct hsm_key_attrs a;
	size_t off = 4, o = 4;
	uint8_t *out;

	if (*len < 4)
		goto bad;
	out = malloc(*len);
	if (!out)
		goto bad;
	memcpy(&count, plain, 4);
	memcpy(out, plain, 4);
	count = le32toh(count);
	for (i = 0; i < count; i++) {
		if (*len - off < TI_ATTRS + 4) {
			free(out);
			goto bad;
		}
		memcpy(&a, plain + off, TI_ATTRS);
		memcpy(&mlen, plain + off + TI_ATTRS, 4);
		mlen = le32toh(mlen);
		if (a.id_len || *len - off - TI_ATTRS - 4 < mlen) {
			free(out);
			goto bad;
		}
		memcpy(out + o, plain + off, TI_ATTRS_V4);
		o += TI_ATTRS_V4;
		memcpy(out + o, plain + off + TI_ATTRS, 4 + mlen);
		o += 4 + mlen;
		off += TI_ATTRS + 4 + mlen;
	}
	memcpy(out + o, plain + off, *len - off);
	o += *len - off;
	free(plain);
	*len = o;
	return out;
bad:
	free(plain);
	return NULL;
}

static void ti_clean(void)
{
	char p[128];

	unlink(ti_ks);
	unlink(ti_mk);
	snprintf(p, sizeof(p), "%s.gen", ti_ks);
	unlink(p);
	snprintf(p, sizeof(p), "%s.audit", ti_ks);
	unlink(p);
	snprintf(p, sizeof(p), "%s.tmp", ti_ks);
	unlink(p);
}

/* Reseal the current store with record @n's attributes changed by @fn. */
static bool ti_edit(unsigned int n, void (*fn)(struct hsm_key_attrs *a,
					      const struct hsm_key_attrs *b))
{
	struct hsm_key_attrs a, first;
	uint8_t *plain, *file, card[16];
	size_t len = 0, flen = 0, off = 4;
	uint32_t ver = 0, mlen, i;
	bool ok = false;

	plain = ta_unseal(ti_ks, ti_mk, &len, &ver);
	file = ta_read(ti_ks, &flen);
	if (!plain || !file || ver != 6)
		goto out;
	memcpy(card, file + 12, 16);
	for (i = 0; i <= n; i++) {
		if (len - off < TI_ATTRS + 4)
			goto out;
		memcpy(&a, plain + off, TI_ATTRS);
		if (!i)
			first = a;
		if (i == n) {
			fn(&a, &first);
			memcpy(plain + off, &a, TI_ATTRS);
		}
		memcpy(&mlen, plain + off + TI_ATTRS, 4);
		off += TI_ATTRS + 4 + le32toh(mlen);
	}
	ok = ta_seal(ti_ks, ti_mk, plain, len, 6, card);
out:
	free(plain);
	free(file);
	return ok;
}

static void ti_dup_id(struct hsm_key_attrs *a, const struct hsm_key_attrs *b)
{
	a->id_len = b->id_len;
	memcpy(a->id, b->id, sizeof(a->id));
}

static void ti_long_id(struct hsm_key_attrs *a,
		       const struct hsm_key_attrs *b)
{
	a->id_len = htole16(HSM_KEY_ID_LEN + 1);
}

static void ti_tail_id(struct hsm_key_attrs *a,
		       const struct hsm_key_attrs *b)
{
	a->id_len = htole16(4);
	a->id[20] = 0x5a;
}

static void test_id_persist(void)
{
	uint8_t id1[32], id2[32], id3[32];
	struct hsm_key_attrs a1, a2, b1, b2, r;
	uint8_t *plain, *file, card[16];
	size_t len = 0, flen = 0, off;
	uint32_t ver = 0, mlen, i, count;
	struct hsm_fw *f;
	uint64_t h1, h2, h3, x;
	bool ok;

	ti_sha("persist one", id1);
	ti_sha("persist two", id2);
	ti_sha("persist three", id3);
	ti_clean();
	f = ti_card(ti_ks, 64);
	if (!check(f != NULL, "card with a key store"))
		return;
	check_st(ti_gen(f, 0, HSM_KEYF_PERSISTENT, "p-one", id1, 32, &h1),
		 HSM_SC_SUCCESS, "persistent key with id1");
	check_st(ti_gen(f, 0, HSM_KEYF_PERSISTENT, NULL, id2, 7, &h2),
		 HSM_SC_SUCCESS, "persistent key with a 7-byte ID, no label");
	check_st(ti_gen(f, 0, HSM_KEYF_PERSISTENT, NULL, id2, 7, &x),
		 HSM_SC_ID_EXISTS, "persistent: a taken ID is refused");
	get_attrs(f, h1, &a1);
	get_attrs(f, h2, &a2);
	hsm_fw_free(f);
	fh_reset(&fh);

	plain = ta_unseal(ti_ks, ti_mk, &len, &ver);
	ok = plain && ver == 6;
	if (ok) {
		memcpy(&count, plain, 4);
		ok = le32toh(count) == 2 && len > 4 + 2 * (TI_ATTRS + 4);
	}
	if (ok) {
		/* the first record: the whole 160-byte attrs, ID included */
		memcpy(&r, plain + 4, TI_ATTRS);
		ok = (le64toh(r.handle) == h1 &&
		      le16toh(r.id_len) == 32 && !memcmp(r.id, id1, 32)) ||
		     (le64toh(r.handle) == h2 &&
		      le16toh(r.id_len) == 7 && !memcmp(r.id, id2, 7));
	}
	check(ok, "the store is version 6 with 160-byte key records");
	free(plain);

	f = ti_card(ti_ks, 64);
	if (!check(f != NULL, "restart on the version 5 store"))
		return;
	get_attrs(f, h1, &b1);
	get_attrs(f, h2, &b2);
	check(!memcmp(&a1, &b1, TI_ATTRS) && !memcmp(&a2, &b2, TI_ATTRS),
	      "attributes with their IDs identical after the restart");
	check(!ti_find(f, 0, id1, 32, &x) && x == h1 &&
	      !ti_find(f, 0, id2, 7, &x) && x == h2,
	      "the ID index is rebuilt");
	check_st(ti_gen(f, 0, 0, NULL, id1, 32, &x), HSM_SC_ID_EXISTS,
		 "id1 is still taken after the restart");
	/* a rotation of a persistent key with a new ID survives too */
	check_st(ti_rotate(f, h1, id3, 32, &h3), HSM_SC_SUCCESS,
		 "rotate the persistent key with id3");
	hsm_fw_free(f);
	fh_reset(&fh);
	f = ti_card(ti_ks, 64);
	check(f && !ti_find(f, 0, id3, 32, &x) && x == h3 &&
	      !ti_find(f, 0, id1, 32, &x) && x == h1,
	      "after another restart: v2 by id3, v1 by id1");
	hsm_fw_free(f);
	fh_reset(&fh);

	/* corrupt version 5 stores are refused as a whole */
	check(ti_edit(1, ti_dup_id), "store resealed with two keys, one ID");
	f = ti_card(ti_ks, 64);
	check(!f, "one ID twice in a partition: store refused");
	hsm_fw_free(f);
	fh_reset(&fh);
	check(ti_edit(1, ti_long_id), "store resealed with id_len 33");
	f = ti_card(ti_ks, 64);
	check(!f, "id_len 33 in the store: refused");
	hsm_fw_free(f);
	fh_reset(&fh);
	check(ti_edit(1, ti_tail_id), "store resealed, non-zero ID tail");
	f = ti_card(ti_ks, 64);
	check(!f, "a non-zero byte past id_len in the store: refused");
	hsm_fw_free(f);
	fh_reset(&fh);

	/* a version 4 store, built here from a version 5 one */
	ti_clean();
	f = ti_card(ti_ks, 64);
	if (!check(f != NULL, "card for the version 4 test"))
		return;
	ti_gen(f, 0, HSM_KEYF_PERSISTENT, "v4-one", NULL, 0, &h1);
	ti_gen(f, 0, HSM_KEYF_PERSISTENT, "v4-two", NULL, 0, &h2);
	ti_rotate(f, h2, NULL, 0, &h3);
	get_attrs(f, h1, &a1);
	get_attrs(f, h3, &a2);
	hsm_fw_free(f);
	fh_reset(&fh);
	plain = ta_unseal(ti_ks, ti_mk, &len, &ver);
	file = ta_read(ti_ks, &flen);
	plain = plain ? ti_strip_ids(plain, &len) : NULL;
	if (!check(plain && file, "version 4 payload made")) {
		free(plain);
		free(file);
		return;
	}
	memcpy(card, file + 12, 16);
	memcpy(&count, plain, 4);
	for (i = 0, off = 4; i < le32toh(count); i++) {
		memcpy(&mlen, plain + off + TI_ATTRS_V4, 4);
		off += TI_ATTRS_V4 + 4 + le32toh(mlen);
	}
	check(i == 3 && off < len,
	      "three 128-byte key records, then the other sections");
	check(ta_seal(ti_ks, ti_mk, plain, len, 4, card),
	      "sealed as version 4");
	f = ti_card(ti_ks, 64);
	if (!check(f != NULL, "the version 4 store loads")) {
		free(plain);
		free(file);
		return;
	}
	get_attrs(f, h1, &b1);
	get_attrs(f, h3, &b2);
	check(!memcmp(&a1, &b1, TI_ATTRS) && !memcmp(&a2, &b2, TI_ATTRS),
	      "its keys keep every attribute, without an ID");
	check(!ti_find_label(f, 0, "v4-two", &x) && x == h3,
	      "the label index works on it");
	check_st(ti_gen(f, 0, HSM_KEYF_PERSISTENT, NULL, id1, 32, &x),
		 HSM_SC_SUCCESS, "a key with an ID added to it");
	hsm_fw_free(f);
	fh_reset(&fh);
	free(plain);
	plain = ta_unseal(ti_ks, ti_mk, &len, &ver);
	check(plain && ver == 6, "the next save writes version 6");
	free(plain);
	f = ti_card(ti_ks, 64);
	check(f && !ti_find(f, 0, id1, 32, &x) && ti_has_id(f, x, id1, 32),
	      "and it loads with the new key's ID");
	hsm_fw_free(f);
	fh_reset(&fh);

	/* a version 4 record with id_len (then rsvd0) set: refused */
	f = NULL;
	plain = ta_unseal(ti_ks, ti_mk, &len, &ver);
	if (plain) {
		/* version 4 has no IDs: clear them, then strip the field */
		memcpy(&count, plain, 4);
		for (i = 0, off = 4; i < le32toh(count); i++) {
			memcpy(&r, plain + off, TI_ATTRS);
			r.id_len = 0;
			memset(r.id, 0, sizeof(r.id));
			memcpy(plain + off, &r, TI_ATTRS);
			memcpy(&mlen, plain + off + TI_ATTRS, 4);
			off += TI_ATTRS + 4 + le32toh(mlen);
		}
		plain = ti_strip_ids(plain, &len);
	}
	if (plain) {
		memset(&r, 0, sizeof(r));
		memcpy(&r, plain + 4, TI_ATTRS_V4);
		r.id_len = htole16(1);
		memcpy(plain + 4, &r, TI_ATTRS_V4);
		ok = ta_seal(ti_ks, ti_mk, plain, len, 4, card);
		if (ok)
			f = ti_card(ti_ks, 64);
	}
	check(plain && ok && !f,
	      "a version 4 record with rsvd0 (id_len) set: refused");
	hsm_fw_free(f);
	fh_reset(&fh);
	free(plain);
	free(file);
	ti_clean();
}

/* ---- audit ---- */

static void test_id_audit(void)
{
	struct hsm_audit_rec *r = NULL;
	uint8_t id[32];
	uint64_t h, x;
	struct hsm_fw *f;
	char why[128];
	long n, i, denied = 0;

	ti_sha("audit", id);
	f = ti_card(NULL, 64);
	if (!check(f != NULL, "card for the audit test"))
		return;
	ti_gen(f, 0, 0, "au-id", id, 32, &h);
	check_st(ti_gen(f, 0, 0, "au-id-2", id, 32, &x), HSM_SC_ID_EXISTS,
		 "a taken ID");
	ti_rotate(f, h, NULL, 0, &x);
	n = test_audit_verify(f, &r, why, sizeof(why));
	check(n > 0, "the audit log verifies (%s)", n > 0 ? "ok" : why);
	for (i = 0; i < n; i++)
		if (le16toh(r[i].event) == HSM_AUDIT_EV_KEY_GENERATE &&
		    le16toh(r[i].status) == HSM_SC_ID_EXISTS &&
		    !strcmp(r[i].label, "au-id-2"))
			denied++;
	check(denied == 1, "the refused creation is recorded as a denial");
	free(r);
	hsm_fw_free(f);
	fh_reset(&fh);
}

/* ---- scale ---- */

static double ti_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ti_scale_id(unsigned int i, uint8_t *id)
{
	char s[32];

	snprintf(s, sizeof(s), "scale-id-%u", i);
	ti_sha(s, id);
}

/* Mean KEY_FIND by ID over @lookups IDs of the first @nkeys keys, best of
 * 15 rounds, thread CPU time; the IDs are hashed before the clock starts.
 */
static double ti_find_mean(struct hsm_fw *f, unsigned int nkeys,
			   unsigned int lookups, uint64_t *hs, bool *ok)
{
	uint8_t (*ids)[32] = malloc((size_t)lookups * 32);
	unsigned int *js = malloc(lookups * sizeof(*js));
	double t, best = 1e9;
	unsigned int i, round;
	uint64_t h;

	if (!ids || !js) {
		*ok = false;
		free(ids);
		free(js);
		return 0;
	}
	for (round = 0; round < 15; round++) {
		for (i = 0; i < lookups; i++) {
			js[i] = (i * 2654435761u + round * 7919u) % nkeys;
			ti_scale_id(js[i], ids[i]);
		}
		fh_reset(&fh);
		t = ti_cpu();
		for (i = 0; i < lookups; i++)
			if (ti_find(f, 0, ids[i], 32, &h) || h != hs[js[i]])
				*ok = false;
		t = (ti_cpu() - t) / lookups * 1e6;
		if (t < best)
			best = t;
	}
	free(ids);
	free(js);
	return best;
}

static void test_id_scale(void)
{
	const unsigned int big = 100000, small = 1000, lookups = 4000;
	struct hsm_key_attrs a;
	double t_small = 0, t_same, t_big;
	uint64_t *hs, x;
	struct hsm_fw *f;
	unsigned int i;
	uint8_t id[32];
	bool ok = true;

	hs = calloc(big, sizeof(*hs));
	f = ti_card(NULL, big + 16);
	if (!check(f && hs, "card with %u key slots", big + 16)) {
		free(hs);
		hsm_fw_free(f);
		return;
	}
	for (i = 0; i < big && ok; i++) {
		if (i == small)
			t_small = ti_find_mean(f, small, lookups, hs, &ok);
		ti_scale_id(i, id);
		a = ti_attrs(0, HSM_KEYF_SESSION, 0, NULL, id, 32);
		if (gen_attrs(f, &a, &hs[i]))
			ok = false;
		if (!(i % 4096))
			fh_reset(&fh);
	}
	check(ok, "%u keys with IDs (SHA-256 of their number)", big);
	t_same = ti_find_mean(f, small, lookups, hs, &ok);
	t_big = ti_find_mean(f, big, lookups, hs, &ok);
	printf("# KEY_FIND by ID mean: %.2f us at %u keys; at %u keys: %.2f us for the same %u IDs, %.2f us over all\n",
	       t_small, small, big, t_same, small, t_big);
	check(ok && t_same < 3 * t_small,
	      "find by ID at %u keys within 3x of %u keys (%.2f vs %.2f us)",
	      big, small, t_same, t_small);
	check(ok && t_big < 5 * t_small,
	      "find by ID over all %u keys within 5x (%.2f vs %.2f us)", big,
	      t_big, t_small);
	ti_scale_id(big, id);
	check_st(ti_find(f, 0, id, 32, &x), HSM_SC_INVALID_HANDLE,
		 "one ID more is not found");
	ti_scale_id(4242, id);
	a = ti_attrs(0, HSM_KEYF_SESSION, 0, NULL, id, 32);
	check_st(gen_attrs(f, &a, &x), HSM_SC_ID_EXISTS,
		 "uniqueness holds at %u keys", big);
	check(!destroy(f, hs[4242]) && !gen_attrs(f, &a, &x) &&
	      !ti_find(f, 0, id, 32, &x) && x != hs[4242],
	      "destroyed and made again: the new key is found");
	hsm_fw_free(f);
	fh_reset(&fh);
	free(hs);
}

void test_id(const struct hsm_fw_config *base)
{
	struct hsm_fw *f;

	ti_cfg = *base;
	ti_cfg.keystore_path = NULL;
	strcpy(ti_dir, "/tmp/hsm-id-XXXXXX");
	if (!mkdtemp(ti_dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(ti_ks, sizeof(ti_ks), "%s/keys", ti_dir);
	snprintf(ti_mk, sizeof(ti_mk), "%s.mk", ti_ks);

	f = ti_card(NULL, 256);
	if (!check(f != NULL, "volatile card for the key ID tests"))
		return;
	test_id_attrs(f);
	test_id_rotate(f);
	hsm_fw_free(f);
	fh_reset(&fh);
	test_id_persist();
	test_id_audit();
	test_id_scale();
	ti_clean();
	rmdir(ti_dir);
}
