// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host unit tests of the firmware core: the key store's generation and the
 * counter file (hw.rst, "Rollback").  An older copy of the store is
 * refused, by one generation and by several, and so is a store ahead of
 * the counter; a crash between the store's write and the counter's is
 * accepted and the counter catches up; a failed counter write never lets
 * the store run two generations ahead; the master key file is written
 * once, never by a store save; an edited, torn, missing or another master
 * key's counter file is refused; the bare 32-byte master key file, the
 * version 1 master key file with its counter and stores before version 6
 * load and are upgraded; a torn or edited master key file is refused;
 * tamper and CARD_INIT.
 *
 * Oracles: the files themselves, read here with the layout of hw.rst
 * (generation at byte 44 of the store; the master key at byte 16 of the
 * master key file and its SHA-256 check value; the counter at byte 16 of
 * the counter file and its HMAC-SHA-256 under HMAC-SHA-256(master key,
 * label), all computed with OpenSSL), and the sealed payload opened and
 * resealed with OpenSSL (test_fw_auth.c).
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "test_fw.h"

static struct hsm_fw_config rb_cfg;
static char rb_dir[64], rb_ks[96], rb_mk[96], rb_log[96], rb_mktmp[96];
static char rb_gf[96], rb_gftmp[96];

struct rb_file {
	uint8_t *b;
	size_t len;
};

static void rb_take(struct rb_file *f, const char *path)
{
	free(f->b);
	f->b = ta_read(path, &f->len);
}

static bool rb_put(const struct rb_file *f, const char *path)
{
	FILE *fp = fopen(path, "wb");
	bool ok;

	if (!fp)
		return false;
	ok = fwrite(f->b, 1, f->len, fp) == f->len;
	return !fclose(fp) && ok;
}

/* @path holds exactly @f's bytes */
static bool rb_same(const struct rb_file *f, const char *path)
{
	size_t len;
	uint8_t *b = ta_read(path, &len);
	bool same = b && f->b && len == f->len && !memcmp(b, f->b, len);

	free(b);
	return same;
}

static void rb_drop(struct rb_file *f)
{
	free(f->b);
	f->b = NULL;
	f->len = 0;
}

/* The store's version and generation, read from its header. */
static bool rb_store_gen(const struct rb_file *f, uint32_t *ver, uint64_t *gen)
{
	uint64_t le64 = 0;
	uint32_t le;

	if (!f->b || f->len < 60 || memcmp(f->b, "HSMKSTOR", 8))
		return false;
	memcpy(&le, f->b + 8, 4);
	*ver = le32toh(le);
	if (*ver >= 6)
		memcpy(&le64, f->b + 44, 8);
	*gen = le64toh(le64);
	return true;
}

static bool rb_ks_gen(uint32_t *ver, uint64_t *gen)
{
	struct rb_file f = { 0 };
	bool ok;

	rb_take(&f, rb_ks);
	ok = rb_store_gen(&f, ver, gen);
	rb_drop(&f);
	return ok;
}

/*
 * The master key from the master key file; false unless it is the 80-byte
 * version 2 format, with the magic and a SHA-256 check value that OpenSSL
 * agrees with.
 */
static bool rb_mk_key(uint8_t *key)
{
	uint8_t md[32];
	uint32_t le = 0;
	size_t len = 0;
	uint8_t *b = ta_read(rb_mk, &len);
	bool ok;

	ok = b && len == 80 && !memcmp(b, "HSMKMKEY", 8) &&
	     EVP_Digest(b, 48, md, NULL, EVP_sha256(), NULL) &&
	     !memcmp(md, b + 48, 32);
	if (ok) {
		memcpy(&le, b + 8, 4);
		ok = le32toh(le) == 2 && !memcmp(b + 12, "\0\0\0\0", 4);
		memcpy(key, b + 16, 32);
	}
	free(b);
	return ok;
}

/* The MAC of a counter record's first 24 bytes under master key @mk. */
static bool rb_gen_mac(const uint8_t *mk, const uint8_t *rec, uint8_t *mac)
{
	static const char label[] = "hsmcard store generation key v1";
	uint8_t gk[32];
	unsigned int n = 0;

	return HMAC(EVP_sha256(), mk, 32, (const uint8_t *)label,
		    sizeof(label) - 1, gk, &n) && n == 32 &&
	       HMAC(EVP_sha256(), gk, 32, rec, 24, mac, &n) && n == 32;
}

/*
 * A 56-byte counter record for @gen with @flags (bit 0: a CARD_INIT is
 * replacing the store) under master key @mk, at @path.
 */
static bool rb_gen_forge_flags(const char *path, const uint8_t *mk,
			       uint64_t gen, uint32_t flags)
{
	struct rb_file f = { 0 };
	uint64_t le64 = htole64(gen);
	uint32_t le = htole32(1), lef = htole32(flags);
	bool ok;

	f.len = 56;
	f.b = calloc(1, f.len);
	ok = f.b != NULL;
	if (ok) {
		memcpy(f.b, "HSMKGEN1", 8);
		memcpy(f.b + 8, &le, 4);
		memcpy(f.b + 12, &lef, 4);
		memcpy(f.b + 16, &le64, 8);
		ok = rb_gen_mac(mk, f.b, f.b + 24) && rb_put(&f, path);
	}
	rb_drop(&f);
	return ok;
}

static bool rb_gen_forge(const char *path, const uint8_t *mk, uint64_t gen)
{
	return rb_gen_forge_flags(path, mk, gen, 0);
}

/*
 * The counter; false unless the master key file is good (rb_mk_key()) and
 * the counter file is the 56-byte format with the magic, version 1 and an
 * HMAC that OpenSSL computes the same under that master key.
 */
static bool rb_counter(uint64_t *gen)
{
	uint8_t mk[32], mac[32];
	uint64_t le64;
	uint32_t le;
	size_t len = 0;
	uint8_t *b = ta_read(rb_gf, &len);
	bool ok;

	ok = b && len == 56 && !memcmp(b, "HSMKGEN1", 8) && rb_mk_key(mk) &&
	     rb_gen_mac(mk, b, mac) && !memcmp(mac, b + 24, 32);
	if (ok) {
		memcpy(&le, b + 8, 4);
		memcpy(&le64, b + 16, 8);
		ok = le32toh(le) == 1 && !memcmp(b + 12, "\0\0\0\0", 4);
		*gen = le64toh(le64);
	}
	free(b);
	return ok;
}

/* Rewrite the counter and its MAC (someone holding the master key) */
static bool rb_set_counter(uint64_t gen)
{
	uint8_t mk[32];

	return rb_mk_key(mk) && rb_gen_forge(rb_gf, mk, gen);
}

/*
 * A version 1 master key file (88 bytes: the master key and counter
 * @gen, SHA-256 check value) with the current master key.
 */
static bool rb_mk_v1(uint64_t gen)
{
	struct rb_file f = { 0 };
	uint64_t le64 = htole64(gen);
	uint32_t le = htole32(1);
	bool ok;

	f.len = 88;
	f.b = calloc(1, f.len);
	ok = f.b && rb_mk_key(f.b + 16);
	if (ok) {
		memcpy(f.b, "HSMKMKEY", 8);
		memcpy(f.b + 8, &le, 4);
		memcpy(f.b + 48, &le64, 8);
		ok = EVP_Digest(f.b, 56, f.b + 56, NULL, EVP_sha256(), NULL) &&
		     rb_put(&f, rb_mk);
	}
	rb_drop(&f);
	return ok;
}

/* Inode and modification time of @path: a rewrite (rename) changes them */
static bool rb_stat(const char *path, struct stat *st)
{
	return !stat(path, st);
}

static bool rb_stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* A card on the store; NULL and the card's message in *@err if refused. */
static struct hsm_fw *rb_card(char **err)
{
	struct hsm_fw_config c = rb_cfg;

	c.keystore_path = rb_ks;
	*err = NULL;
	return hsm_fw_new(&c, err);
}

static void rb_free(struct hsm_fw *f)
{
	hsm_fw_free(f);
	fh_reset(&fh);
}

static uint16_t rb_gen(struct hsm_fw *f, const char *label, uint64_t *h)
{
	struct hsm_key_attrs a;

	memset(&a, 0, sizeof(a));
	a.type = htole16(HSM_KEY_AES);
	a.bits = htole16(256);
	a.flags = htole32(HSM_KEYF_PERSISTENT);
	snprintf(a.label, sizeof(a.label), "%s", label);
	return gen_attrs(f, &a, h);
}

/* @h is a key of @f, with @label */
static bool rb_has(struct hsm_fw *f, uint64_t h, const char *label)
{
	uint64_t d = fh_alloc(&fh, sizeof(struct hsm_key_attrs));
	struct hsm_key_attrs a;
	struct hsm_sqe s;

	sqe_init(&s, HSM_ADM_KEY_GET_ATTRS);
	s.handle = htole64(h);
	s.dst = htole64(d);
	s.dst_len = htole32(sizeof(a));
	if (adm(f, &s, NULL))
		return false;
	memcpy(&a, fh_ptr(&fh, d), sizeof(a));
	return !strncmp(a.label, label, sizeof(a.label));
}

static uint16_t rb_card_init(struct hsm_fw *f, const char *cur,
			     const char *npin)
{
	struct hsm_auth_req r;
	struct hsm_sqe s;

	memset(&r, 0, sizeof(r));
	r.role = htole16(HSM_ROLE_ADMIN);
	if (cur) {
		r.pin_len = htole16(strlen(cur));
		memcpy(r.pin, cur, strlen(cur));
	}
	r.new_pin_len = htole16(strlen(npin));
	memcpy(r.new_pin, npin, strlen(npin));
	sqe_init(&s, HSM_ADM_CARD_INIT);
	s.src = htole64(fh_put(&fh, &r, sizeof(r)));
	s.src_len = htole32(sizeof(r));
	return adm(f, &s, NULL);
}

/*
 * The card refuses the files in place: its message contains "key store
 * @path: @what", and neither the store nor the master key file changed.
 */
static void rb_refused_at(const char *path, const char *what,
			  const char *name)
{
	struct rb_file ks = { 0 }, mk = { 0 }, gf = { 0 };
	struct hsm_fw *f;
	char want[512], *err;
	bool gen_same;

	rb_take(&ks, rb_ks);
	rb_take(&mk, rb_mk);
	rb_take(&gf, rb_gf);
	snprintf(want, sizeof(want), "key store %s: %s", path, what);
	f = rb_card(&err);
	/* a missing counter file stays missing */
	gen_same = gf.b ? rb_same(&gf, rb_gf) : access(rb_gf, F_OK) != 0;
	check(!f && err && strstr(err, want) && rb_same(&ks, rb_ks) &&
	      rb_same(&mk, rb_mk) && gen_same,
	      "%s: refused, \"%s\", files untouched", name,
	      err ? err : "(no message)");
	if (f)
		rb_free(f);
	free(err);
	rb_drop(&ks);
	rb_drop(&mk);
	rb_drop(&gf);
}

static void rb_refused(const char *what, const char *name)
{
	rb_refused_at(rb_ks, what, name);
}

static void rb_unlink_all(void)
{
	unlink(rb_ks);
	unlink(rb_mk);
	unlink(rb_gf);
	unlink(rb_log);
	rmdir(rb_mktmp);
	unlink(rb_mktmp);
	rmdir(rb_gftmp);
	unlink(rb_gftmp);
}

void test_store(const struct hsm_fw_config *base)
{
	struct rb_file s1 = { 0 }, s_prev = { 0 }, s_last = { 0 };
	struct rb_file m_last = { 0 }, m0 = { 0 }, crash = { 0 }, x = { 0 };
	struct rb_file m_first = { 0 }, g_last = { 0 }, y = { 0 };
	struct stat st0, st1;
	uint64_t h1 = 0, h2 = 0, h3, h4 = 0, h5 = 0, h6 = 0, h7 = 0;
	uint64_t g1 = 0, gp = 0, gl = 0, c = 0, c2 = 0, g = 0, gold = 0;
	uint8_t *plain = NULL, *v4 = NULL, card[16], okey[32], nkey[32];
	struct hsm_fw *f;
	uint32_t ver = 0;
	size_t plen = 0, v4len = 0;
	char what[256], *err = NULL;
	bool ok;
	int i;

	rb_cfg = *base;
	strcpy(rb_dir, "/tmp/hsm-store-XXXXXX");
	if (!mkdtemp(rb_dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(rb_ks, sizeof(rb_ks), "%s/keys", rb_dir);
	snprintf(rb_mk, sizeof(rb_mk), "%s/keys.mk", rb_dir);
	snprintf(rb_log, sizeof(rb_log), "%s/keys.audit", rb_dir);
	snprintf(rb_mktmp, sizeof(rb_mktmp), "%s/keys.mk.tmp", rb_dir);
	snprintf(rb_gf, sizeof(rb_gf), "%s/keys.gen", rb_dir);
	snprintf(rb_gftmp, sizeof(rb_gftmp), "%s/keys.gen.tmp", rb_dir);

	/* a new card: version 6 store, its generation in the counter */
	f = rb_card(&err);
	if (!check(f != NULL, "new card on an empty directory (%s)",
		   err ? err : "ok"))
		goto out;
	ok = rb_ks_gen(&ver, &g) && rb_counter(&c);
	check(ok && ver == 6 && g >= 1 && g == c,
	      "store version %u, generation %llu; master key file 80 bytes (version 2, check value verifies), counter file's MAC verifies, counter %llu",
	      ver, (unsigned long long)g, (unsigned long long)c);
	/* the master key file as first written, to compare after saves */
	rb_take(&m_first, rb_mk);
	memset(&st0, 0, sizeof(st0));
	memset(&st1, 0, sizeof(st1));
	rb_stat(rb_mk, &st0);
	check_st(rb_gen(f, "rb-1", &h1), HSM_SC_SUCCESS, "persistent key rb-1");
	rb_take(&s1, rb_ks);
	ok = rb_ks_gen(&ver, &g1) && rb_counter(&c) && g1 == c && g1 > g;
	check(ok, "a key: the store's generation and the counter move to %llu",
	      (unsigned long long)g1);
	check_st(rb_gen(f, "rb-2", &h2), HSM_SC_SUCCESS, "persistent key rb-2");
	check_st(rb_gen(f, "rb-3", &h3), HSM_SC_SUCCESS, "persistent key rb-3");
	rb_take(&s_prev, rb_ks);
	check_st(rb_gen(f, "rb-4", &h4), HSM_SC_SUCCESS, "persistent key rb-4");
	rb_free(f);
	rb_take(&s_last, rb_ks);
	rb_take(&m_last, rb_mk);
	ok = rb_store_gen(&s_prev, &ver, &gp) &&
	     rb_store_gen(&s_last, &ver, &gl) && rb_counter(&c);
	check(ok && gl == c && gl > gp,
	      "after a clean stop: generation %llu = counter",
	      (unsigned long long)gl);
	ok = ok && rb_same(&m_first, rb_mk) && rb_stat(rb_mk, &st1) &&
	     rb_stat_same(&st0, &st1);
	check(ok, "%llu store saves later the master key file is the one first written (same bytes, inode %llu, mtime)",
	      (unsigned long long)(gl - g), (unsigned long long)st1.st_ino);

	/* rollback by one generation: the store before the stop's save */
	f = rb_card(&err);
	if (check(f != NULL, "restart (%s)", err ? err : "ok")) {
		rb_take(&x, rb_ks);
		rb_store_gen(&x, &ver, &g);
		rb_free(f);
	}
	free(err);
	rb_take(&s_last, rb_ks);
	rb_take(&m_last, rb_mk);
	rb_store_gen(&s_last, &ver, &gl);
	ok = rb_counter(&c) && c == gl && g + 1 == gl;
	if (check(ok, "a restart: generations %llu (start) and %llu (stop)",
		  (unsigned long long)g, (unsigned long long)gl)) {
		rb_put(&x, rb_ks);
		snprintf(what, sizeof(what),
			 "rolled back: generation %llu, expected %llu",
			 (unsigned long long)g, (unsigned long long)c);
		rb_refused(what, "the store one generation old");
	}
	/* rollback by several: the store of rb-3 and of rb-1 */
	rb_put(&s_prev, rb_ks);
	snprintf(what, sizeof(what),
		 "rolled back: generation %llu, expected %llu (an older copy of the store)",
		 (unsigned long long)gp, (unsigned long long)c);
	rb_refused(what, "the store from before rb-4");
	rb_put(&s1, rb_ks);
	snprintf(what, sizeof(what),
		 "rolled back: generation %llu, expected %llu",
		 (unsigned long long)g1, (unsigned long long)c);
	rb_refused(what, "the store from before rb-2");

	/* ahead of the counter: the current contents resealed as c + 2 */
	rb_put(&s_last, rb_ks);
	plain = ta_unseal(rb_ks, rb_mk, &plen, &ver);
	memcpy(card, s_last.b + 12, 16);
	if (check(plain && ver == 6, "the store opens with OpenSSL")) {
		ta_seal_gen(rb_ks, rb_mk, plain, plen, 6, card, c + 2);
		snprintf(what, sizeof(what),
			 "generation %llu is ahead of the counter %llu",
			 (unsigned long long)c + 2, (unsigned long long)c);
		rb_refused(what, "a store two generations ahead");
		/* c + 1: what a crash after the store's write leaves */
		ta_seal_gen(rb_ks, rb_mk, plain, plen, 6, card, c + 1);
		f = rb_card(&err);
		ok = f && rb_counter(&c2) && c2 > c &&
		     rb_ks_gen(&ver, &g) && g == c2 && rb_has(f, h4, "rb-4");
		check(ok, "a store one generation ahead starts (%s), counter now %llu",
		      err ? err : "ok", (unsigned long long)c2);
		free(err);
		rb_free(f);
	}

	/* crash between the store's write and the counter's, for real */
	f = rb_card(&err);
	if (check(f != NULL, "restart (%s)", err ? err : "ok")) {
		rb_take(&m0, rb_gf);
		check_st(rb_gen(f, "rb-5", &h5), HSM_SC_SUCCESS,
			 "persistent key rb-5 acknowledged");
		rb_take(&crash, rb_ks);
		rb_free(f);
		rb_put(&crash, rb_ks);
		rb_put(&m0, rb_gf);
		rb_counter(&c);
		rb_store_gen(&crash, &ver, &g);
		f = rb_card(&err);
		ok = f && g == c + 1 && rb_has(f, h5, "rb-5") &&
		     rb_has(f, h1, "rb-1") && rb_counter(&c2) && c2 >= g &&
		     rb_ks_gen(&ver, &gl) && gl == c2;
		check(ok, "store %llu with the counter at %llu (crash before the counter's write): starts, rb-5 is there, counter %llu",
		      (unsigned long long)g, (unsigned long long)c,
		      (unsigned long long)c2);
		free(err);
		rb_free(f);
	}
	free(err);

	/* the counter's write fails: the store never runs two ahead */
	f = rb_card(&err);
	if (check(f != NULL, "restart (%s)", err ? err : "ok")) {
		rb_counter(&c);
		mkdir(rb_gftmp, 0700);	/* "<gen>.tmp" cannot be created */
		check_st(rb_gen(f, "rb-6", &h6), HSM_SC_SUCCESS,
			 "rb-6 with the counter's write failing: acknowledged (the store holds it)");
		ok = rb_ks_gen(&ver, &g) && g == c + 1 && rb_counter(&c2) &&
		     c2 == c;
		check(ok, "store at %llu, counter still %llu",
		      (unsigned long long)g, (unsigned long long)c2);
		rb_take(&x, rb_ks);
		check_st(rb_gen(f, "rb-x", &h7), HSM_SC_INTERNAL,
			 "the next key: refused, the counter must catch up first");
		check(rb_same(&x, rb_ks), "and the store is unchanged");
		rmdir(rb_gftmp);
		check_st(rb_gen(f, "rb-7", &h7), HSM_SC_SUCCESS,
			 "the counter writable again: rb-7 acknowledged");
		ok = rb_ks_gen(&ver, &g) && rb_counter(&c2) && g == c2 &&
		     g == c + 2;
		check(ok, "store and counter at %llu", (unsigned long long)g);
		rb_free(f);
		f = rb_card(&err);
		check(f && rb_has(f, h6, "rb-6") && rb_has(f, h7, "rb-7") &&
		      rb_has(f, h5, "rb-5"),
		      "restart: rb-5, rb-6, rb-7 are there (%s)",
		      err ? err : "ok");
		free(err);
		rb_free(f);
	}
	free(err);

	/* legacy: the bare master key and a version 4 store, generation 0 */
	free(plain);
	plain = ta_unseal(rb_ks, rb_mk, &plen, &ver);
	rb_take(&x, rb_ks);
	memcpy(card, x.b + 12, 16);
	/* version 4 key records: the attributes without the key ID */
	v4len = plen;
	v4 = plain ? malloc(plen) : NULL;
	if (v4) {
		memcpy(v4, plain, plen);
		v4 = ti_strip_ids(v4, &v4len);
	}
	if (check(v4 && ta_seal(rb_ks, rb_mk, v4, v4len, 4, card),
		  "resealed as version 4 with a 32-byte master key file")) {
		struct stat st;

		ok = !stat(rb_mk, &st) && st.st_size == 32 &&
		     rb_ks_gen(&ver, &g) && ver == 4;
		check(ok, "the files are in the old format");
		f = rb_card(&err);
		ok = f && rb_has(f, h1, "rb-1") && rb_has(f, h7, "rb-7") &&
		     rb_counter(&c) && c >= 1 && rb_ks_gen(&ver, &g) &&
		     ver == 6 && g == c;
		check(ok, "they load (%s) and are upgraded: version %u, generation %llu, 80-byte master key file, counter file at %llu",
		      err ? err : "ok", ver, (unsigned long long)g,
		      (unsigned long long)c);
		free(err);
		rb_free(f);
		/* the pre-upgrade store is an older copy now */
		rb_take(&s_last, rb_ks);
		ta_seal_gen(rb_ks, rb_mk, v4, v4len, 4, card, 0);
		rb_counter(&c);
		snprintf(what, sizeof(what),
			 "rolled back: generation 0, expected %llu",
			 (unsigned long long)c);
		rb_refused(what, "a version 4 store after the upgrade");
		rb_put(&s_last, rb_ks);
		/* a 32-byte master key file, no counter file: counter 0 */
		rb_take(&m_last, rb_mk);
		rb_take(&g_last, rb_gf);
		rb_take(&x, rb_mk);
		x.len = 32;
		memmove(x.b, x.b + 16, 32);
		rb_put(&x, rb_mk);
		unlink(rb_gf);
		ta_seal_gen(rb_ks, rb_mk, plain, plen, 6, card, 1);
		f = rb_card(&err);
		ok = f && rb_counter(&c) && c >= 1 &&
		     rb_ks_gen(&ver, &g) && g == c;
		check(ok, "32-byte master key file, store at generation 1: starts (%s), counter %llu",
		      err ? err : "ok", (unsigned long long)c);
		free(err);
		rb_free(f);
		rb_put(&x, rb_mk);
		unlink(rb_gf);
		ta_seal_gen(rb_ks, rb_mk, plain, plen, 6, card, 2);
		rb_refused("generation 2 is ahead of the counter 0",
			   "32-byte master key file, store at generation 2");
		rb_put(&s_last, rb_ks);
		rb_put(&m_last, rb_mk);
		rb_put(&g_last, rb_gf);
	}

	/* a version 1 master key file (with the counter), no counter file */
	rb_take(&s_last, rb_ks);
	rb_take(&m_last, rb_mk);
	rb_take(&g_last, rb_gf);
	ok = rb_counter(&c) && rb_ks_gen(&ver, &g) && g == c && c >= 2 &&
	     rb_mk_v1(c) && !unlink(rb_gf);
	if (check(plain && ok, "version 1 master key file with counter %llu, counter file removed",
		  (unsigned long long)c)) {
		/* the old counter still refuses an older store... */
		ta_seal_gen(rb_ks, rb_mk, plain, plen, 6, card, c - 1);
		snprintf(what, sizeof(what),
			 "rolled back: generation %llu, expected %llu",
			 (unsigned long long)c - 1, (unsigned long long)c);
		rb_refused(what, "version 1 master key file, store one generation older");
		rb_put(&s_last, rb_ks);
		/* ...and the right one starts and upgrades the files */
		f = rb_card(&err);
		ok = f && rb_has(f, h1, "rb-1") && rb_counter(&c2) &&
		     c2 >= c && rb_ks_gen(&ver, &g) && g == c2 &&
		     rb_mk_key(okey) && !memcmp(okey, m_last.b + 16, 32);
		check(ok, "it starts (%s): master key file rewritten as version 2 with the same key, counter file written at %llu",
		      err ? err : "ok", (unsigned long long)c2);
		free(err);
		rb_free(f);
		rb_counter(&c2);	/* the stop saved once more */
		/* after the upgrade the old file's counter still holds */
		rb_take(&x, rb_ks);
		ta_seal_gen(rb_ks, rb_mk, plain, plen, 6, card, c - 1);
		snprintf(what, sizeof(what),
			 "rolled back: generation %llu, expected %llu",
			 (unsigned long long)c - 1, (unsigned long long)c2);
		rb_refused(what, "after the upgrade, the store older than the version 1 counter");
		rb_put(&x, rb_ks);
		/* a version 1 file next to a counter file: the latter counts */
		rb_take(&m_last, rb_mk);
		rb_mk_v1(0);
		f = rb_card(&err);
		ok = f && rb_has(f, h1, "rb-1") && rb_counter(&c) &&
		     c > c2 && rb_ks_gen(&ver, &g) && g == c;
		check(ok, "version 1 master key file at 0 next to the counter file at %llu: the counter file counts, starts (%s), counter %llu",
		      (unsigned long long)c2, err ? err : "ok",
		      (unsigned long long)c);
		free(err);
		rb_free(f);
	} else {
		rb_put(&s_last, rb_ks);
		rb_put(&m_last, rb_mk);
		rb_put(&g_last, rb_gf);
	}

	/* the counter file edited, torn, missing or another master key's */
	rb_take(&g_last, rb_gf);
	for (i = 0; i < 8; i++) {
		static const int at[] = { 0, 8, 16, 17, 40, -1, -1, -1 };
		static const size_t cut[] = { 0, 0, 0, 0, 0, 24, 55, 57 };
		static const char *const name[] = {
			"magic", "version", "counter (low bit)",
			"counter (second byte)", "MAC", "cut to 24 bytes",
			"cut to 55 bytes", "one byte appended"
		};

		rb_take(&x, rb_gf);
		if (at[i] >= 0) {
			x.b[at[i]] ^= 0x01;
		} else if (cut[i] > x.len) {
			x.b = realloc(x.b, cut[i]);
			x.b[x.len] = 0;
		}
		if (at[i] < 0)
			x.len = cut[i];
		rb_put(&x, rb_gf);
		snprintf(what, sizeof(what), "counter file: %s", name[i]);
		rb_refused_at(rb_gf,
			      "store generation counter malformed or its MAC fails",
			      what);
		rb_put(&g_last, rb_gf);
	}
	/* the right counter, MACed under another master key */
	ok = RAND_bytes(okey, sizeof(okey)) == 1 && rb_counter(&c) &&
	     rb_gen_forge(rb_gf, okey, c);
	if (check(ok, "counter file at %llu forged under a random master key",
		  (unsigned long long)c))
		rb_refused_at(rb_gf,
			      "store generation counter malformed or its MAC fails",
			      "counter file of another master key");
	rb_put(&g_last, rb_gf);
	/* a store without its counter file */
	unlink(rb_gf);
	rb_refused_at(rb_gf, "store generation counter missing",
		      "counter file deleted, store present");
	rb_put(&g_last, rb_gf);
	/* a stale temporary counter file is ignored */
	x.len = 7;
	rb_put(&x, rb_gftmp);
	f = rb_card(&err);
	check(f && rb_has(f, h1, "rb-1"), "a stale .gen.tmp is ignored (%s)",
	      err ? err : "ok");
	free(err);
	rb_free(f);
	unlink(rb_gftmp);

	/* a torn or edited master key file */
	rb_take(&m_last, rb_mk);
	rb_take(&x, rb_mk);
	x.len = 60;
	rb_put(&x, rb_mk);
	rb_refused_at(rb_mk, "master key missing or malformed",
		      "master key file cut to 60 bytes");
	rb_put(&m_last, rb_mk);
	snprintf(what, sizeof(what), "key store %s: master key missing or malformed",
		 rb_mk);
	for (i = 0; i < 4; i++) {
		static const int at[] = { 0, 8, 20, 50 };
		static const char *const name[] = {
			"magic", "version", "master key", "check value" };

		rb_take(&x, rb_mk);
		x.b[at[i]] ^= 0x01;
		rb_put(&x, rb_mk);
		f = rb_card(&err);
		check(!f && err && strstr(err, what),
		      "one bit of the master key file's %s flipped: refused (%s)",
		      name[i], err ? err : "started");
		free(err);
		rb_free(f);
		rb_put(&m_last, rb_mk);
	}
	/* a stale temporary file is ignored */
	x.len = 7;
	rb_put(&x, rb_mktmp);
	f = rb_card(&err);
	check(f && rb_has(f, h1, "rb-1"), "a stale .mk.tmp is ignored (%s)",
	      err ? err : "ok");
	free(err);
	rb_free(f);
	unlink(rb_mktmp);
	/* the counter raised by someone holding the master key: refused */
	rb_counter(&c);
	rb_ks_gen(&ver, &g);
	rb_take(&m_last, rb_mk);
	rb_take(&g_last, rb_gf);
	if (check(rb_set_counter(c + 3), "counter rewritten to %llu",
		  (unsigned long long)c + 3)) {
		snprintf(what, sizeof(what),
			 "rolled back: generation %llu, expected %llu",
			 (unsigned long long)g, (unsigned long long)c + 3);
		rb_refused(what, "a counter raised with its MAC");
	}
	rb_put(&m_last, rb_mk);
	rb_put(&g_last, rb_gf);

	/* CARD_INIT: a new master key, the counter goes on */
	f = rb_card(&err);
	free(err);
	if (check(f != NULL, "restart before CARD_INIT")) {
		rb_counter(&c);
		rb_take(&m0, rb_mk);
		rb_take(&g_last, rb_gf);
		check_st(rb_card_init(f, NULL, "rb-admin-pin"), HSM_SC_SUCCESS,
			 "CARD_INIT");
		rb_take(&x, rb_mk);
		ok = rb_counter(&c2) && c2 > c && rb_ks_gen(&ver, &g) &&
		     g == c2 && x.len == 80 &&
		     memcmp(x.b + 16, m0.b + 16, 32);
		check(ok, "CARD_INIT: a new master key, the counter goes on (%llu -> %llu)",
		      (unsigned long long)c, (unsigned long long)c2);
		check(!rb_has(f, h1, "rb-1"), "and the old keys are gone");
		check_st(rb_gen(f, "rb-8", &h1), HSM_SC_SUCCESS,
			 "a key after CARD_INIT");
		rb_take(&s1, rb_ks);
		rb_free(f);
		f = rb_card(&err);
		check(f && rb_has(f, h1, "rb-8"), "restart after CARD_INIT (%s)",
		      err ? err : "ok");
		free(err);
		rb_free(f);
		/* the counter file from before: MACed under the old key */
		rb_take(&y, rb_gf);
		rb_put(&g_last, rb_gf);
		rb_refused_at(rb_gf,
			      "store generation counter malformed or its MAC fails",
			      "the counter file from before CARD_INIT");
		rb_put(&y, rb_gf);
	}

	/* tamper: both files go, the next master key counts from 0 */
	f = rb_card(&err);
	free(err);
	if (check(f != NULL, "restart before tamper")) {
		rb_counter(&gold);
		rb_take(&s1, rb_ks);
		hsm_fw_tamper(f);
		check(access(rb_ks, F_OK) && access(rb_mk, F_OK) &&
		      access(rb_gf, F_OK),
		      "tamper: store, master key file and counter file removed");
		/* CARD_INIT on the running, tampered card */
		check_st(rb_card_init(f, NULL, "rb-admin-pin2"),
			 HSM_SC_SUCCESS, "CARD_INIT after tamper");
		ok = rb_counter(&c) && c < gold && rb_ks_gen(&ver, &g) &&
		     g == c;
		check(ok, "the counter starts again: %llu (was %llu)",
		      (unsigned long long)c, (unsigned long long)gold);
		check_st(rb_gen(f, "rb-9", &h2), HSM_SC_SUCCESS,
			 "a key after re-initialization");
		hsm_fw_tamper(f);
		rb_free(f);
		/* re-initialization by a restart */
		f = rb_card(&err);
		ok = f && rb_counter(&c) && c < gold &&
		     rb_ks_gen(&ver, &g) && g == c && !rb_has(f, h2, "rb-9");
		check(ok, "start after tamper: a new card, counter %llu (%s)",
		      (unsigned long long)c, err ? err : "ok");
		free(err);
		rb_free(f);
		/* the pre-tamper store, generation above the new counter */
		rb_put(&s1, rb_ks);
		rb_refused("authentication failed",
			   "the store from before the tamper");
	}

	/*
	 * A crash during first use or CARD_INIT, after the master key file's
	 * write: no counter file, no store.  A factory card on that key.
	 */
	unlink(rb_ks);
	unlink(rb_gf);
	ok = rb_mk_key(okey);
	f = rb_card(&err);
	ok = ok && f && rb_counter(&c) && rb_ks_gen(&ver, &g) && g == c &&
	     g >= 1 && rb_mk_key(nkey) && !memcmp(nkey, okey, 32);
	check(ok, "master key file alone: starts as a factory card on that master key (%s), counter file written, store and counter at %llu",
	      err ? err : "ok", (unsigned long long)c);
	free(err);
	rb_free(f);

	/*
	 * The store deleted (or moved) next to a counter past 0: its keys
	 * would be gone without a word.  Refused, nothing written.
	 */
	f = rb_card(&err);
	ok = f && rb_gen(f, "rb-10", &h1) == HSM_SC_SUCCESS;
	free(err);
	rb_free(f);
	ok = ok && rb_counter(&c) && c >= 1;
	rb_take(&s_last, rb_ks);
	rb_take(&m_last, rb_mk);
	rb_take(&g_last, rb_gf);
	unlink(rb_ks);
	snprintf(what, sizeof(what),
		 "key store %s: missing, but its counter file says generation %llu was written",
		 rb_ks, (unsigned long long)c);
	f = rb_card(&err);
	check(ok && !f && err && strstr(err, what) && access(rb_ks, F_OK) &&
	      rb_same(&m_last, rb_mk) && rb_same(&g_last, rb_gf),
	      "store deleted next to counter %llu: refused (%s), nothing written",
	      (unsigned long long)c, err ? err : "started");
	free(err);
	rb_free(f);

	/* an unknown flag in the counter file, with a good MAC: refused */
	ok = rb_mk_key(okey) && rb_put(&s_last, rb_ks) &&
	     rb_gen_forge_flags(rb_gf, okey, c, 0x2);
	f = rb_card(&err);
	check(ok && !f && err && strstr(err, "malformed") &&
	      rb_same(&s_last, rb_ks),
	      "counter file with an unknown flag: refused (%s)",
	      err ? err : "started");
	free(err);
	rb_free(f);

	/*
	 * A crash in CARD_INIT before the store's shred: the counter marked
	 * (re-initialization), the store in place.  The old keys load.
	 */
	ok = rb_gen_forge_flags(rb_gf, okey, c, 0x1);
	f = rb_card(&err);
	check(ok && f && rb_has(f, h1, "rb-10"),
	      "marked counter, store in place: the keys load (%s)",
	      err ? err : "ok");
	free(err);
	rb_free(f);

	/*
	 * A crash in CARD_INIT after the store's shred: no store next to a
	 * marked counter.  A factory card on that master key; the first
	 * store write drops the mark.
	 */
	unlink(rb_ks);
	ok = rb_gen_forge_flags(rb_gf, okey, c, 0x1);
	f = rb_card(&err);
	ok = ok && f && !rb_has(f, h1, "rb-10") && rb_counter(&g) &&
	     g > c && rb_ks_gen(&ver, &c) && c == g && rb_mk_key(nkey) &&
	     !memcmp(nkey, okey, 32);
	check(ok, "marked counter, no store: a factory card on that master key (%s), counter %llu unmarked",
	      err ? err : "ok", (unsigned long long)g);
	free(err);
	rb_free(f);

	/* a real CARD_INIT leaves the counter unmarked and its keys load */
	f = rb_card(&err);
	ok = f && rb_card_init(f, NULL, "rb-admin-pin3") == HSM_SC_SUCCESS &&
	     rb_gen(f, "rb-11", &h2) == HSM_SC_SUCCESS;
	free(err);
	rb_free(f);
	f = rb_card(&err);
	check(ok && f && rb_counter(&c) && rb_has(f, h2, "rb-11"),
	      "CARD_INIT, a key, a restart: the counter unmarked, the key there (%s)",
	      err ? err : "ok");
	free(err);
	rb_free(f);

out:
	free(plain);
	free(v4);
	rb_drop(&s1);
	rb_drop(&s_prev);
	rb_drop(&s_last);
	rb_drop(&m_last);
	rb_drop(&m0);
	rb_drop(&crash);
	rb_drop(&x);
	rb_drop(&y);
	rb_drop(&m_first);
	rb_drop(&g_last);
	rb_unlink_all();
	rmdir(rb_dir);
}
