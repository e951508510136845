// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host unit tests of the firmware core's audit log.
 *
 * The oracle is an independent verifier written here with OpenSSL: it
 * recomputes the SHA-256 chain over the records as read back (through
 * HSM_ADM_AUDIT_READ and straight from the file), checks the sequence
 * rules and verifies every checkpoint signature with the public key that
 * HSM_ADM_AUDIT_PUBKEY exports, following Documentation/hsmcard/hw.rst
 * rather than the firmware's code.  The file is then edited, truncated,
 * reordered and cut, and every change must be reported at the next start.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "test_fw.h"

#define AU_REC		HSM_AUDIT_REC_SIZE
#define AU_BATCH	64	/* records per AUDIT_READ */

static struct hsm_fw_config au_cfg;
static bool vok;	/* verify() ran before check() prints its result */

/* ---- commands ---- */

static struct hsm_key_attrs au_attrs(uint16_t type, uint16_t bits,
				     uint32_t uses, uint32_t flags,
				     uint32_t part, const char *label)
{
	struct hsm_key_attrs a = key_attrs(type, bits, uses, flags, 0, label);

	a.partition = htole32(part);
	return a;
}

/* KEY_IMPORT (kek 0) or KEY_UNWRAP: src = attrs || payload */
static uint16_t au_put(struct hsm_fw *f, uint8_t op, uint64_t kek,
		       const struct hsm_key_attrs *a, const void *p,
		       size_t len, uint64_t *h)
{
	uint64_t addr = fh_alloc(&fh, sizeof(*a) + len);
	struct hsm_sqe s;

	memcpy(fh_ptr(&fh, addr), a, sizeof(*a));
	memcpy((uint8_t *)fh_ptr(&fh, addr) + sizeof(*a), p, len);
	sqe_init(&s, op);
	s.handle = htole64(kek);
	s.src = htole64(addr);
	s.src_len = htole32(sizeof(*a) + len);
	return adm(f, &s, h);
}

static uint16_t au_wrap(struct hsm_fw *f, uint64_t h, uint64_t kek,
			uint8_t *blob, uint64_t *len)
{
	uint64_t d = fh_alloc(&fh, 256);
	struct hsm_sqe s;
	uint16_t st;

	sqe_init(&s, HSM_ADM_KEY_WRAP);
	s.handle = htole64(h);
	s.qw[0] = htole64(kek);
	s.dst = htole64(d);
	s.dst_len = htole32(256);
	st = adm(f, &s, len);
	if (!st && blob)
		memcpy(blob, fh_ptr(&fh, d), *len);
	return st;
}

static uint16_t au_checkpoint(struct hsm_fw *f, uint64_t *seq)
{
	struct hsm_sqe s;

	sqe_init(&s, HSM_ADM_AUDIT_CHECKPOINT);
	return adm(f, &s, seq);
}

/* AUDIT_PUBKEY parsed with OpenSSL; NULL on failure */
static EVP_PKEY *au_pubkey(struct hsm_fw *f, uint16_t *stp)
{
	uint64_t d = fh_alloc(&fh, 512), res = 0;
	const unsigned char *p;
	struct hsm_sqe s;
	uint16_t st;

	sqe_init(&s, HSM_ADM_AUDIT_PUBKEY);
	s.dst = htole64(d);
	s.dst_len = htole32(512);
	st = adm(f, &s, &res);
	if (stp)
		*stp = st;
	if (st)
		return NULL;
	p = fh_ptr(&fh, d);
	return d2i_PUBKEY(NULL, &p, (long)res);
}

static uint16_t au_read1(struct hsm_fw *f, uint64_t seq, uint32_t dst_len,
			 struct hsm_audit_read_hdr *hdr, void *recs,
			 uint64_t *res)
{
	uint64_t d = fh_alloc(&fh, dst_len);
	struct hsm_sqe s;
	uint16_t st;

	sqe_init(&s, HSM_ADM_AUDIT_READ);
	s.qw[0] = htole64(seq);
	s.dst = htole64(d);
	s.dst_len = htole32(dst_len);
	st = adm(f, &s, res);
	if (!st) {
		if (hdr)
			memcpy(hdr, fh_ptr(&fh, d), sizeof(*hdr));
		if (recs)
			memcpy(recs, (uint8_t *)fh_ptr(&fh, d) +
			       HSM_AUDIT_HDR_SIZE, *res * AU_REC);
	}
	return st;
}

/*
 * The whole log from @from on, in batches; *hdr is the first batch's
 * header (its first_seq and flags).  Returns the record count or -1.
 */
static long au_fetch(struct hsm_fw *f, uint64_t from,
		     struct hsm_audit_rec **out, struct hsm_audit_read_hdr *hdr)
{
	struct hsm_audit_rec *all = NULL, *n;
	struct hsm_audit_read_hdr h;
	uint64_t seq = from, res;
	long count = 0;
	bool first = true;

	for (;;) {
		n = realloc(all, (count + AU_BATCH) * sizeof(*all));
		if (!n)
			abort();
		all = n;
		if (au_read1(f, seq, HSM_AUDIT_HDR_SIZE + AU_BATCH * AU_REC,
			     &h, all + count, &res)) {
			free(all);
			return -1;
		}
		if (first && hdr)
			*hdr = h;
		first = false;
		fh_reset(&fh);
		if (res != le32toh(h.count)) {
			free(all);
			return -1;
		}
		count += res;
		seq = le64toh(h.next_seq);
		if (!res || seq > le64toh(h.last_seq))
			break;
	}
	*out = all;
	return count;
}

/* ---- the independent verifier ---- */

static void sha256(const void *p, size_t len, uint8_t *out)
{
	unsigned int n = 0;

	if (!EVP_Digest(p, len, out, &n, EVP_sha256(), NULL))
		abort();
}

static void key_id(EVP_PKEY *pub, uint8_t *id)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pub, &der);

	if (len <= 0)
		abort();
	sha256(der, len, id);
	OPENSSL_free(der);
}

static bool sig_ok(EVP_PKEY *pub, const struct hsm_audit_rec *r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = le16toh(r->sig_len);
	bool ok;

	ok = n && n <= sizeof(r->sig) &&
	     EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, r->sig, n, (const unsigned char *)r,
			      offsetof(struct hsm_audit_rec, sig_len)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

struct vres {
	long sigs;		/* checkpoints verified with one of the keys */
	long foreign;		/* checkpoints by a key not given */
	long max_run;		/* most non-checkpoint records in a row */
	long damaged;		/* LOG_DAMAGED records */
	char why[160];
};

/*
 * Check @n records as hw.rst says a verifier must.  @anchored: recs[0] is
 * the first record of the log (genesis or LOG_DAMAGED); else its prev_hash
 * is taken on trust.  Checkpoints naming @pub1 or @pub2 must verify.
 */
static bool verify(const struct hsm_audit_rec *recs, long n, bool anchored,
		   EVP_PKEY *pub1, EVP_PKEY *pub2, struct vres *v)
{
	uint8_t h[32], id1[32], id2[32];
	static const uint8_t zero[32];
	long i, run = 0;

	memset(v, 0, sizeof(*v));
	if (pub1)
		key_id(pub1, id1);
	if (pub2)
		key_id(pub2, id2);
	for (i = 0; i < n; i++) {
		const struct hsm_audit_rec *r = &recs[i];
		uint64_t seq = le64toh(r->seq);
		uint16_t ev = le16toh(r->event);

		if (i == 0 && anchored && ev != HSM_AUDIT_EV_LOG_DAMAGED &&
		    (seq || ev != HSM_AUDIT_EV_INIT ||
		     memcmp(r->prev_hash, zero, 32))) {
			snprintf(v->why, sizeof(v->why), "bad genesis record");
			return false;
		}
		if (i > 0) {
			uint64_t want = le64toh(recs[i - 1].seq) + 1;

			if (seq != want &&
			    !(ev == HSM_AUDIT_EV_LOG_DAMAGED && seq > want)) {
				snprintf(v->why, sizeof(v->why),
					 "record %ld: seq %llu, want %llu", i,
					 (unsigned long long)seq,
					 (unsigned long long)want);
				return false;
			}
			sha256(&recs[i - 1], AU_REC, h);
			if (memcmp(h, r->prev_hash, 32)) {
				snprintf(v->why, sizeof(v->why),
					 "record %ld (seq %llu): chain broken",
					 i, (unsigned long long)seq);
				return false;
			}
		}
		if (ev == HSM_AUDIT_EV_LOG_DAMAGED)
			v->damaged++;
		if (ev != HSM_AUDIT_EV_CHECKPOINT) {
			if (r->sig_len) {
				snprintf(v->why, sizeof(v->why),
					 "seq %llu: signature outside a checkpoint",
					 (unsigned long long)seq);
				return false;
			}
			if (++run > v->max_run)
				v->max_run = run;
			continue;
		}
		run = 0;
		if (pub1 && !memcmp(r->label + 16, id1, 32)) {
			if (!sig_ok(pub1, r))
				goto badsig;
			v->sigs++;
		} else if (pub2 && !memcmp(r->label + 16, id2, 32)) {
			if (!sig_ok(pub2, r))
				goto badsig;
			v->sigs++;
		} else {
			v->foreign++;
		}
		continue;
badsig:
		snprintf(v->why, sizeof(v->why),
			 "checkpoint seq %llu: bad signature",
			 (unsigned long long)seq);
		return false;
	}
	return true;
}

/*
 * For the other test files: append a checkpoint to @f's log, read the
 * whole log and verify it; the checkpoints must be signed by @f's audit
 * key.  Returns the record count (records in *out, free()d by the
 * caller), or -1 with the reason in @why.
 */
long test_audit_verify(struct hsm_fw *f, struct hsm_audit_rec **out,
		       char *why, size_t whylen)
{
	struct hsm_audit_read_hdr hdr;
	struct hsm_audit_rec *recs = NULL;
	EVP_PKEY *pub;
	struct vres v;
	uint64_t seq;
	long n;

	*out = NULL;
	pub = au_pubkey(f, NULL);
	if (!pub || au_checkpoint(f, &seq)) {
		snprintf(why, whylen, "no audit key or no checkpoint");
		EVP_PKEY_free(pub);
		return -1;
	}
	n = au_fetch(f, 0, &recs, &hdr);
	if (n < 0) {
		snprintf(why, whylen, "AUDIT_READ failed");
		EVP_PKEY_free(pub);
		return -1;
	}
	if (!verify(recs, n, le64toh(hdr.first_seq) == 0, pub, NULL, &v) ||
	    !v.sigs || v.foreign) {
		snprintf(why, whylen, "%s (%ld signatures, %ld foreign)",
			 v.why[0] ? v.why : "unsigned", v.sigs, v.foreign);
		free(recs);
		EVP_PKEY_free(pub);
		return -1;
	}
	EVP_PKEY_free(pub);
	*out = recs;
	return n;
}

/* The last record of the log (and its seq), read through AUDIT_READ. */
static bool au_last(struct hsm_fw *f, struct hsm_audit_rec *r)
{
	struct hsm_audit_read_hdr h;
	uint64_t res;

	if (au_read1(f, 0, HSM_AUDIT_HDR_SIZE + AU_REC, &h, NULL, &res))
		return false;
	if (au_read1(f, le64toh(h.last_seq), HSM_AUDIT_HDR_SIZE + AU_REC, &h,
		     r, &res) || res != 1)
		return false;
	return true;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* The last record is @ev with @st for @h (0: any handle), else explain. */
static bool last_is(struct hsm_fw *f, uint16_t ev, uint16_t st, uint64_t h,
		    struct hsm_audit_rec *out, const char *what)
{
	struct hsm_audit_rec r;

	if (!au_last(f, &r))
		return check(false, "%s: log unreadable", what);
	if (out)
		*out = r;
	return check(le16toh(r.event) == ev && le16toh(r.status) == st &&
		     (!h || le64toh(r.handle) == h),
		     "%s: record seq %llu event %#x status %#x handle %#llx",
		     what, (unsigned long long)le64toh(r.seq),
		     le16toh(r.event), le16toh(r.status),
		     (unsigned long long)le64toh(r.handle));
}

static uint64_t last_seq(struct hsm_fw *f)
{
	struct hsm_audit_rec r;

	return au_last(f, &r) ? le64toh(r.seq) : ~0ull;
}

/* ---- a card without a key store ---- */

static void test_audit_volatile(void)
{
	struct hsm_key_attrs a, kek_a, ua;
	struct hsm_audit_read_hdr hdr;
	struct hsm_audit_rec *recs = NULL, r;
	struct hsm_key_token tok;
	uint64_t hg, hi, hkek, hkek2, hne, hu, len, seq, res, t0, t1, before;
	uint8_t key[16], blob[64];
	EVP_PKEY *pub;
	struct hsm_fw *f;
	struct hsm_sqe s;
	struct vres v;
	uint16_t st;
	char *err = NULL;
	long n;
	int i;

	f = hsm_fw_new(&au_cfg, &err);
	if (!check(f != NULL, "audit: card without a store starts"))
		return;
	pub = au_pubkey(f, &st);
	check(pub && EVP_PKEY_is_a(pub, "EC") && EVP_PKEY_get_bits(pub) == 256,
	      "AUDIT_PUBKEY: an ECDSA P-256 SubjectPublicKeyInfo");
	n = au_fetch(f, 0, &recs, &hdr);
	check(n == 2 && le16toh(recs[0].event) == HSM_AUDIT_EV_INIT &&
	      le32toh(recs[0].detail) == HSM_AUDIT_INIT_VOLATILE &&
	      le16toh(recs[1].event) == HSM_AUDIT_EV_CHECKPOINT,
	      "first start: INIT (volatile) then a checkpoint (%ld records)",
	      n);
	check(le32toh(hdr.flags) == HSM_AUDIT_F_VOLATILE &&
	      le64toh(hdr.oldest_seq) == 0 && le64toh(hdr.last_seq) == 1,
	      "read header: volatile, oldest 0, last 1 (flags %#x)",
	      le32toh(hdr.flags));
	vok = n == 2 && verify(recs, n, true, pub, NULL, &v);
	check(vok && v.sigs == 1,
	      "verifier: chain and start checkpoint signature good %s", v.why);
	free(recs);

	/* key generate */
	a = au_attrs(HSM_KEY_AES, 128, 0, HSM_KEYF_EXTRACTABLE, 1, "au-gen");
	t0 = now_ns();
	check_st(gen_attrs(f, &a, &hg), HSM_SC_SUCCESS, "generate (partition 1)");
	t1 = now_ns();
	last_is(f, HSM_AUDIT_EV_KEY_GENERATE, 0, hg, &r, "generate logged");
	check(le32toh(r.partition) == 1 &&
	      le32toh(r.detail) == ((uint32_t)HSM_KEY_AES << 16 | 128) &&
	      !strcmp(r.label, "au-gen") && r.opcode == HSM_ADM_KEY_GENERATE &&
	      le64toh(r.time_ns) >= t0 && le64toh(r.time_ns) <= t1 &&
	      le64toh(r.seq) == 2,
	      "generate record: partition, type/bits, label, opcode, time, seq");

	/* import, and the KEKs */
	if (RAND_bytes(key, sizeof(key)) != 1)
		abort();
	a = au_attrs(HSM_KEY_AES, 0, 0, HSM_KEYF_EXTRACTABLE, 0, "au-imp");
	check_st(au_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, 16, &hi),
		 HSM_SC_SUCCESS, "import");
	last_is(f, HSM_AUDIT_EV_KEY_IMPORT, 0, hi, &r, "import logged");
	check(!strcmp(r.label, "au-imp") && le32toh(r.partition) == 0,
	      "import record: label and partition");
	kek_a = au_attrs(HSM_KEY_AES, 0, HSM_USE_WRAP | HSM_USE_UNWRAP, 0, 0,
			 "au-kek");
	au_put(f, HSM_ADM_KEY_IMPORT, 0, &kek_a, key, 16, &hkek);
	kek_a = au_attrs(HSM_KEY_AES, 0, HSM_USE_ENCRYPT, 0, 0, "au-kek-enc");
	au_put(f, HSM_ADM_KEY_IMPORT, 0, &kek_a, key, 16, &hkek2);
	a = au_attrs(HSM_KEY_AES, 256, 0, 0, 0, "au-nonextractable");
	gen_attrs(f, &a, &hne);

	/* export and the denials around it */
	check_st(au_wrap(f, hi, hkek, blob, &len), HSM_SC_SUCCESS,
		 "wrap an extractable key");
	last_is(f, HSM_AUDIT_EV_KEY_WRAP, 0, hi, &r, "export logged");
	check(le64toh(r.handle2) == hkek, "export record names the KEK");
	check_st(au_wrap(f, hne, hkek, NULL, &res), HSM_SC_NOT_EXTRACTABLE,
		 "wrap a non-extractable key");
	last_is(f, HSM_AUDIT_EV_KEY_WRAP, HSM_SC_NOT_EXTRACTABLE, hne, &r,
		"non-extractable export attempt logged");
	check(!strcmp(r.label, "au-nonextractable"),
	      "denial record carries the key's label");
	check_st(au_wrap(f, hi, hkek2, NULL, &res), HSM_SC_USE_DENIED,
		 "wrap under a key without USE_WRAP");
	last_is(f, HSM_AUDIT_EV_KEY_WRAP, HSM_SC_USE_DENIED, hi, NULL,
		"wrong-use denial logged");
	check_st(au_wrap(f, hg, hkek, NULL, &res), HSM_SC_INVALID_HANDLE,
		 "wrap a partition-1 key under a partition-0 KEK");
	last_is(f, HSM_AUDIT_EV_KEY_WRAP, HSM_SC_INVALID_HANDLE, hg, &r,
		"wrong-partition denial logged");
	check(le32toh(r.partition) == 1, "its partition is the key's (1)");

	/* unwrap */
	ua = au_attrs(HSM_KEY_AES, 0, 0, 0, 1, "au-unwrapped");
	check_st(au_put(f, HSM_ADM_KEY_UNWRAP, hkek, &ua, blob, len, &hu),
		 HSM_SC_INVALID_HANDLE, "unwrap into another partition");
	last_is(f, HSM_AUDIT_EV_KEY_UNWRAP, HSM_SC_INVALID_HANDLE, 0, &r,
		"wrong-partition unwrap logged");
	check(le64toh(r.handle2) == hkek && le32toh(r.partition) == 1 &&
	      !r.handle, "record: KEK, requested partition, no new handle");
	ua.partition = 0;
	check_st(au_put(f, HSM_ADM_KEY_UNWRAP, hkek, &ua, blob, len, &hu),
		 HSM_SC_SUCCESS, "unwrap");
	last_is(f, HSM_AUDIT_EV_KEY_UNWRAP, 0, hu, &r, "unwrap logged");
	check(le64toh(r.handle2) == hkek && !strcmp(r.label, "au-unwrapped"),
	      "unwrap record: KEK and label");
	blob[3] ^= 1;
	check_st(au_put(f, HSM_ADM_KEY_UNWRAP, hkek, &ua, blob, len, &res),
		 HSM_SC_DECRYPT_FAILED, "unwrap of an altered blob");
	last_is(f, HSM_AUDIT_EV_KEY_UNWRAP, HSM_SC_DECRYPT_FAILED, 0, NULL,
		"failed unwrap logged");

	/* destroy: the record still knows what the key was */
	check_st(destroy(f, hu), HSM_SC_SUCCESS, "destroy");
	last_is(f, HSM_AUDIT_EV_KEY_DESTROY, 0, hu, &r, "destroy logged");
	check(!strcmp(r.label, "au-unwrapped") &&
	      le32toh(r.detail) == ((uint32_t)HSM_KEY_AES << 16 | 128),
	      "destroy record: label and type of the destroyed key");
	check_st(destroy(f, hu), HSM_SC_INVALID_HANDLE, "destroy again");
	last_is(f, HSM_AUDIT_EV_KEY_DESTROY, HSM_SC_INVALID_HANDLE, hu, NULL,
		"destroy of an unknown handle logged");

	/* a forged token */
	memset(&tok, 0, sizeof(tok));
	tok.magic = htole32(HSM_TOKEN_MAGIC);
	tok.version = htole16(HSM_TOKEN_VERSION);
	tok.handle = htole64(hg);
	memset(tok.card_id, 0x5a, sizeof(tok.card_id));
	if (RAND_bytes(tok.mac, sizeof(tok.mac)) != 1)
		abort();
	sqe_init(&s, HSM_ADM_TOKEN_OPEN);
	s.src = htole64(fh_put(&fh, &tok, sizeof(tok)));
	s.src_len = htole32(sizeof(tok));
	check_st(adm(f, &s, NULL), HSM_SC_INVALID_TOKEN, "forged token");
	last_is(f, HSM_AUDIT_EV_TOKEN_OPEN, HSM_SC_INVALID_TOKEN, hg, &r,
		"forged token logged");
	check(r.label[0] == 0x5a && r.label[15] == 0x5a,
	      "token record shows the card id the token claims");

	/* malformed commands are not custody events */
	seq = last_seq(f);
	sqe_init(&s, HSM_ADM_KEY_GENERATE);
	s.src = htole64(fh_put(&fh, &a, sizeof(a)));
	s.src_len = htole32(5);
	check_st(adm(f, &s, NULL), HSM_SC_INVALID_LENGTH,
		 "malformed generate");
	check(last_seq(f) == seq, "malformed command adds no record");

	/* on-demand checkpoint */
	check_st(au_checkpoint(f, &res), HSM_SC_SUCCESS, "AUDIT_CHECKPOINT");
	last_is(f, HSM_AUDIT_EV_CHECKPOINT, 0, 0, &r, "checkpoint is last");
	check(res == seq + 1 && le64toh(r.seq) == res &&
	      r.opcode == HSM_ADM_AUDIT_CHECKPOINT && sig_ok(pub, &r),
	      "checkpoint: result = its seq, signature verifies with the "
	      "exported key");
	r.seq = htole64(le64toh(r.seq) + 1);
	check(!sig_ok(pub, &r), "a checkpoint with another seq does not verify");

	/* periodic checkpoints */
	before = last_seq(f);
	for (i = 0; i < 200; i++)
		au_wrap(f, hne, hkek, NULL, &res);
	n = au_fetch(f, 0, &recs, &hdr);
	check(n > 0 && le64toh(recs[n - 1].seq) >= before + 200 + 3,
	      "200 denials logged (+ %lld checkpoints)",
	      n > 0 ? (long long)(le64toh(recs[n - 1].seq) - before - 200) :
		      -1ll);
	vok = n > 0 && verify(recs, n, true, pub, NULL, &v);
	check(vok &&
	      v.max_run <= 63 && v.sigs >= 5 && !v.foreign,
	      "verifier: %ld records, %ld signed checkpoints, at most %ld "
	      "records between them %s", n, v.sigs, v.max_run, v.why);
	/* the verifier catches what it must */
	if (n > 10) {
		recs[5].label[3] ^= 1;
		vok = !verify(recs, n, true, pub, NULL, &v);
		check(vok,
		      "verifier: an edited record breaks the chain (%s)", v.why);
		recs[5].label[3] ^= 1;
		memmove(&recs[5], &recs[6], (n - 6) * sizeof(*recs));
		vok = !verify(recs, n - 1, true, pub, NULL, &v);
		check(vok,
		      "verifier: a missing record is a gap (%s)", v.why);
	}
	free(recs);

	/* AUDIT_READ arguments */
	check_st(au_read1(f, 0, 0, NULL, NULL, &res), HSM_SC_INVALID_LENGTH,
		 "AUDIT_READ without a buffer");
	check_st(au_read1(f, 0, HSM_AUDIT_HDR_SIZE + AU_REC - 1, NULL, NULL,
			  &res), HSM_SC_INVALID_LENGTH,
		 "AUDIT_READ with room for no record");
	check_st(au_read1(f, 0, HSM_AUDIT_HDR_SIZE + AU_REC + 8, NULL, NULL,
			  &res), HSM_SC_INVALID_LENGTH,
		 "AUDIT_READ length not header + records");
	check_st(au_read1(f, 0, HSM_AUDIT_HDR_SIZE + 4097 * AU_REC, NULL, NULL,
			  &res), HSM_SC_INVALID_LENGTH,
		 "AUDIT_READ beyond max_xfer");
	seq = last_seq(f);
	check_st(au_read1(f, seq + 2, HSM_AUDIT_HDR_SIZE + AU_REC, NULL, NULL,
			  &res), HSM_SC_INVALID_FIELD,
		 "AUDIT_READ from beyond the end");
	check(!au_read1(f, seq + 1, HSM_AUDIT_HDR_SIZE + AU_REC, &hdr, NULL,
			&res) && res == 0 && le64toh(hdr.next_seq) == seq + 1 &&
	      le64toh(hdr.last_seq) == seq,
	      "AUDIT_READ from last + 1: no record, next = last + 1");
	check(!au_read1(f, seq, HSM_AUDIT_HDR_SIZE + 4 * AU_REC, &hdr, &r,
			&res) && res == 1 && le64toh(r.seq) == seq,
	      "AUDIT_READ of the last record");
	sqe_init(&s, HSM_ADM_AUDIT_READ);
	s.dst = htole64(8);
	s.dst_len = htole32(HSM_AUDIT_HDR_SIZE + AU_REC);
	check_st(adm(f, &s, &res), HSM_SC_DATA_XFER,
		 "AUDIT_READ to an address the host cannot reach");
	s.dst = htole64(fh_alloc(&fh, HSM_AUDIT_HDR_SIZE + AU_REC));
	s.handle = htole64(1);
	check_st(adm(f, &s, &res), HSM_SC_INVALID_FIELD,
		 "AUDIT_READ with a handle");
	s.handle = 0;
	s.cdw[2] = htole32(1);
	check_st(adm(f, &s, &res), HSM_SC_INVALID_FIELD,
		 "AUDIT_READ with cdw[2] set");
	s.cdw[2] = 0;
	s.src_len = htole32(16);
	check_st(adm(f, &s, &res), HSM_SC_INVALID_FIELD,
		 "AUDIT_READ with a source");
	sqe_init(&s, HSM_ADM_AUDIT_PUBKEY);
	s.dst = htole64(fh_alloc(&fh, 16));
	s.dst_len = htole32(16);
	st = adm(f, &s, &res);
	check(st == HSM_SC_BUFFER_TOO_SMALL && res == 91,
	      "AUDIT_PUBKEY into 16 bytes: buffer too small, result 91 (%llu)",
	      (unsigned long long)res);
	sqe_init(&s, HSM_ADM_AUDIT_CHECKPOINT);
	s.aux = htole32(1);
	check_st(adm(f, &s, &res), HSM_SC_INVALID_FIELD,
		 "AUDIT_CHECKPOINT with aux set");

	/* tamper: recorded, signed with the old key, then the key is gone */
	hsm_fw_tamper(f);
	n = au_fetch(f, 0, &recs, &hdr);
	check(n > 2 && le16toh(recs[n - 2].event) == HSM_AUDIT_EV_TAMPER &&
	      le16toh(recs[n - 1].event) == HSM_AUDIT_EV_CHECKPOINT &&
	      sig_ok(pub, &recs[n - 1]),
	      "tamper: TAMPER record and a checkpoint signed by the old key");
	check(le32toh(hdr.flags) & HSM_AUDIT_F_NO_KEY,
	      "read header says the audit key is gone");
	free(recs);
	check(au_pubkey(f, &st) == NULL && st == HSM_SC_TAMPERED,
	      "AUDIT_PUBKEY after tamper: tampered");
	check_st(au_checkpoint(f, &res), HSM_SC_TAMPERED,
		 "AUDIT_CHECKPOINT after tamper");
	check_st(gen_attrs(f, &a, &res), HSM_SC_TAMPERED, "generate after tamper");
	last_is(f, HSM_AUDIT_EV_KEY_GENERATE, HSM_SC_TAMPERED, 0, NULL,
		"refused generate after tamper logged");
	n = au_fetch(f, 0, &recs, &hdr);
	vok = n > 0 && verify(recs, n, true, pub, NULL, &v);
	check(vok,
	      "verifier: log still whole after tamper %s", v.why);
	free(recs);
	hsm_fw_free(f);
	EVP_PKEY_free(pub);
	fh_reset(&fh);

	/* the ring: the oldest records go, and the reader is told */
	f = hsm_fw_new(&au_cfg, &err);
	if (!f)
		return;
	pub = au_pubkey(f, NULL);
	a = au_attrs(HSM_KEY_AES, 128, 0, 0, 0, "au-ring");
	gen_attrs(f, &a, &hne);
	au_put(f, HSM_ADM_KEY_IMPORT, 0, &kek_a, key, 16, &hkek);
	for (i = 0; i < 4300; i++) {
		au_wrap(f, hne, hkek, NULL, &res);
		if (!(i % 512))
			fh_reset(&fh);
	}
	n = au_fetch(f, 0, &recs, &hdr);
	check(n == 4096 && (le32toh(hdr.flags) & HSM_AUDIT_F_WRAPPED) &&
	      le64toh(hdr.oldest_seq) > 0 &&
	      le64toh(hdr.first_seq) == le64toh(hdr.oldest_seq) &&
	      le64toh(recs[0].seq) == le64toh(hdr.oldest_seq),
	      "ring wrapped: %ld records held, oldest seq %llu, a read from 0 "
	      "starts there", n, (unsigned long long)le64toh(hdr.oldest_seq));
	vok = n > 0 && verify(recs, n, false, pub, NULL, &v);
	check(vok && v.sigs >= 60,
	      "verifier: the held part chains and is signed (%ld) %s", v.sigs,
	      v.why);
	free(recs);
	hsm_fw_free(f);
	EVP_PKEY_free(pub);
	fh_reset(&fh);
}

/* ---- a card with a key store ---- */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long n;

	*len = 0;
	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(n ? n : 1);
	if (!buf || fread(buf, 1, n, fp) != (size_t)n)
		abort();
	fclose(fp);
	*len = n;
	return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (!fp || fwrite(buf, 1, len, fp) != len || fclose(fp))
		abort();
}

static bool has_bytes(const uint8_t *p, size_t len, const uint8_t *pat,
		      size_t plen)
{
	size_t i;

	for (i = 0; i + plen <= len; i++)
		if (!memcmp(p + i, pat, plen))
			return true;
	return false;
}

/*
 * DER of a PKCS#8 PrivateKeyInfo for an EC key: version 0, then the
 * AlgorithmIdentifier id-ecPublicKey (what any plaintext P-256 private key
 * in PKCS#8 form starts with after its outer SEQUENCE header).
 */
static const uint8_t p8_ec[] = {
	0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
	0x01, 0x07,
};

struct au_paths {
	char dir[32];
	char ks[64], mk[64], log[64], gen[64];
};

static struct hsm_fw *au_card(const struct au_paths *p, char **err)
{
	struct hsm_fw_config c = au_cfg;

	c.keystore_path = p->ks;
	*err = NULL;
	return hsm_fw_new(&c, err);
}

/* damaged copies left by the card: check one exists equal to @want */
static bool damaged_copy(const struct au_paths *p, const uint8_t *want,
			 size_t wlen)
{
	char path[96];
	uint8_t *got;
	size_t glen;
	bool ok = false;
	unsigned int seq;

	for (seq = 0; seq < 400 && !ok; seq++) {
		snprintf(path, sizeof(path), "%s.damaged.%u", p->log, seq);
		got = slurp(path, &glen);
		if (!got)
			continue;
		ok = glen == wlen && !memcmp(got, want, wlen);
		free(got);
		unlink(path);
	}
	return ok;
}

/*
 * Start the card on a damaged log: it must start, flag the damage, keep
 * the evidence, and continue with a LOG_DAMAGED record giving @reason.
 */
static void damaged_start(const struct au_paths *p, const uint8_t *file,
			  size_t flen, EVP_PKEY *pub, uint32_t reason,
			  uint64_t first_bad, const char *what)
{
	struct hsm_audit_read_hdr hdr;
	struct hsm_audit_rec *recs = NULL, *d = NULL;
	struct hsm_fw *f;
	struct vres v;
	char *err;
	long n, i;

	spit(p->log, file, flen);
	f = au_card(p, &err);
	if (!check(f != NULL, "%s: card starts (%s)", what, err ? err : "ok")) {
		free(err);
		return;
	}
	n = au_fetch(f, 0, &recs, &hdr);
	for (i = 0; i < n; i++)
		if (le16toh(recs[i].event) == HSM_AUDIT_EV_LOG_DAMAGED)
			d = &recs[i];
	check(n > 0 && (le32toh(hdr.flags) & HSM_AUDIT_F_DAMAGED) && d &&
	      le32toh(d->detail) == reason &&
	      le64toh(d->handle) == first_bad,
	      "%s: detected, LOG_DAMAGED reason %u (want %u), first bad seq "
	      "%lld (want %llu)", what, d ? le32toh(d->detail) : 0, reason,
	      d ? (long long)le64toh(d->handle) : -1ll,
	      (unsigned long long)first_bad);
	vok = n > 0 && verify(recs, n, true, pub, NULL, &v);
	check(vok && v.damaged == 1,
	      "%s: the continued log verifies, with one LOG_DAMAGED record %s",
	      what, v.why);
	check(hsm_fw_audit_flags(f) & HSM_AUDIT_F_DAMAGED,
	      "%s: hsm_fw_audit_flags() reports it to the device", what);
	check(damaged_copy(p, file, flen),
	      "%s: the damaged file is kept aside unchanged", what);
	free(recs);
	hsm_fw_free(f);
}

static void test_audit_store(void)
{
	struct hsm_audit_read_hdr hdr;
	struct hsm_audit_rec *recs = NULL, *recs2 = NULL, r, tmp;
	struct hsm_key_attrs a;
	uint8_t *ks0, *log0, *buf, *fk, *fg, h[32];
	size_t ks0_len, log0_len, len, fk_len, fg_len;
	EVP_PKEY *pub, *pub2, *ec;
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8;
	struct au_paths p;
	struct hsm_fw *f;
	struct hsm_sqe s;
	uint64_t hp, res, nrec;
	struct vres v;
	char *err;
	long n, n2;
	int dlen, i;

	snprintf(p.dir, sizeof(p.dir), "/tmp/hsm-au-XXXXXX");
	if (!mkdtemp(p.dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(p.ks, sizeof(p.ks), "%s/keys", p.dir);
	snprintf(p.mk, sizeof(p.mk), "%s/keys.mk", p.dir);
	snprintf(p.gen, sizeof(p.gen), "%s/keys.gen", p.dir);
	snprintf(p.log, sizeof(p.log), "%s/keys.audit", p.dir);

	f = au_card(&p, &err);
	if (!check(f && access(p.log, F_OK) == 0,
		   "card with a store creates <store>.audit"))
		goto out;
	pub = au_pubkey(f, NULL);
	n = au_fetch(f, 0, &recs, &hdr);
	check(n == 2 && le16toh(recs[0].event) == HSM_AUDIT_EV_INIT &&
	      le32toh(recs[0].detail) == HSM_AUDIT_INIT_NEW &&
	      !le32toh(hdr.flags),
	      "first start: INIT (new), no flags");
	free(recs);
	a = au_attrs(HSM_KEY_AES, 256, 0, HSM_KEYF_PERSISTENT, 0, "au-p");
	check_st(gen_attrs(f, &a, &hp), HSM_SC_SUCCESS, "persistent key");
	last_is(f, HSM_AUDIT_EV_KEY_GENERATE, 0, hp, NULL,
		"persistent generate logged");
	sqe_init(&s, HSM_ADM_TOKEN_CREATE);
	s.handle = htole64(hp);
	s.dst = htole64(fh_alloc(&fh, HSM_TOKEN_SIZE));
	s.dst_len = htole32(HSM_TOKEN_SIZE);
	check_st(adm(f, &s, &res), HSM_SC_SUCCESS, "token create");
	last_is(f, HSM_AUDIT_EV_TOKEN_CREATE, 0, hp, NULL,
		"token create logged");
	for (i = 0; i < 70; i++)	/* pass a periodic checkpoint */
		destroy(f, 0x100000001ull + i);
	n = au_fetch(f, 0, &recs, &hdr);
	buf = slurp(p.log, &len);
	check(n > 0 && len == (size_t)n * AU_REC &&
	      !memcmp(buf, recs, len),
	      "the file holds exactly the records AUDIT_READ returns "
	      "(%zu bytes, fsynced per record)", len);
	free(buf);
	vok = verify(recs, n, true, pub, NULL, &v);
	check(vok && v.sigs >= 2,
	      "verifier: file log chains, %ld checkpoints verify %s", v.sigs,
	      v.why);
	nrec = n;
	sha256(&recs[n - 1], AU_REC, h);
	hsm_fw_free(f);
	fh_reset(&fh);

	/* restart continues seq and chain with the same key */
	f = au_card(&p, &err);
	if (!check(f != NULL, "restart on the store (%s)", err ? err : "ok"))
		goto out;
	pub2 = au_pubkey(f, NULL);
	check(pub2 && EVP_PKEY_eq(pub, pub2) == 1,
	      "the audit key survives the restart (sealed in the store)");
	EVP_PKEY_free(pub2);
	n2 = au_fetch(f, 0, &recs2, &hdr);
	check(n2 == n + 2 && !memcmp(recs, recs2, n * AU_REC) &&
	      le16toh(recs2[n].event) == HSM_AUDIT_EV_START &&
	      le64toh(recs2[n].seq) == nrec &&
	      !memcmp(recs2[n].prev_hash, h, 32) &&
	      !le32toh(hdr.flags),
	      "restart: old records unchanged, START at seq %llu chained to "
	      "the last one", (unsigned long long)nrec);
	vok = verify(recs2, n2, true, pub, NULL, &v);
	check(vok,
	      "verifier: the log across the restart %s", v.why);
	free(recs);
	free(recs2);
	/* so the last record (the sealed head at stop) is not a checkpoint */
	check_st(destroy(f, 0x100000001ull), HSM_SC_INVALID_HANDLE,
		 "one more denial before the stop");
	hsm_fw_free(f);
	fh_reset(&fh);

	/* no record, no acknowledgement: a log that cannot grow refuses keys */
	f = au_card(&p, &err);
	if (f) {
		struct rlimit old_lim, lim;
		struct stat sb;
		uint64_t hx = 0;
		uint16_t st1, st2;

		stat(p.log, &sb);
		getrlimit(RLIMIT_FSIZE, &old_lim);
		lim = old_lim;
		lim.rlim_cur = sb.st_size;	/* the store is far smaller */
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &lim);
		a = au_attrs(HSM_KEY_AES, 128, 0, HSM_KEYF_PERSISTENT, 0,
			     "au-unlogged");
		st1 = gen_attrs(f, &a, &hx);
		st2 = destroy(f, hp);
		setrlimit(RLIMIT_FSIZE, &old_lim);
		signal(SIGXFSZ, SIG_DFL);
		check(st1 == HSM_SC_INTERNAL && !hx,
		      "generate whose record cannot be written: internal error, "
		      "no handle (%#x)", st1);
		check(st2 == HSM_SC_INTERNAL,
		      "destroy whose record cannot be written: internal error");
		check(last_seq(f) == (uint64_t)sb.st_size / AU_REC - 1,
		      "the log did not grow");
		hsm_fw_free(f);
		f = au_card(&p, &err);
		sqe_init(&s, HSM_ADM_KEY_LIST);
		s.dst = htole64(fh_alloc(&fh, 64));
		s.dst_len = htole32(64);
		check(f && !adm(f, &s, &res) && (res >> 32) == 0,
		      "after a restart: the unlogged key is not in the store "
		      "(%llu keys)", (unsigned long long)(res >> 32));
		/* again: the last record at the stop is not a checkpoint */
		destroy(f, 0x100000001ull);
		hsm_fw_free(f);
		fh_reset(&fh);
	}

	/* the audit key is only ever sealed */
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	p8 = EVP_PKEY2PKCS8(ec);
	dlen = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	check(dlen > 0 && has_bytes(der, dlen, p8_ec, sizeof(p8_ec)),
	      "scanner finds the PKCS#8 header in a clear P-256 key (control)");
	OPENSSL_free(der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_PKEY_free(ec);
	ks0 = slurp(p.ks, &ks0_len);
	log0 = slurp(p.log, &log0_len);
	fk = slurp(p.mk, &fk_len);
	fg = slurp(p.gen, &fg_len);
	check(ks0 && log0 && !has_bytes(ks0, ks0_len, p8_ec, sizeof(p8_ec)) &&
	      !has_bytes(log0, log0_len, p8_ec, sizeof(p8_ec)) &&
	      !has_bytes(fk, fk_len, p8_ec, sizeof(p8_ec)),
	      "no clear PKCS#8 key in the store, the log or the master key file");
	/* fk, fg stay: restored with ks0, the store's copy needs its counter */
	if (!ks0 || !log0 || !fk || !fg || log0_len < 8 * AU_REC)
		goto out_free;
	n = log0_len / AU_REC;

	/* edit one byte of a record in the middle */
	buf = malloc(log0_len);
	memcpy(buf, log0, log0_len);
	buf[3 * AU_REC + 60] ^= 1;
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	damaged_start(&p, buf, log0_len, pub, HSM_AUDIT_DMG_CHAIN, 3,
		      "one byte edited in record 3");
	/* edit the last record (the sealed head) */
	memcpy(buf, log0, log0_len);
	buf[log0_len - 200] ^= 1;	/* its label */
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	damaged_start(&p, buf, log0_len, pub, HSM_AUDIT_DMG_HEAD, n - 1,
		      "last record (the sealed head) edited");
	/* swap two records */
	memcpy(buf, log0, log0_len);
	memcpy(&tmp, buf + 4 * AU_REC, AU_REC);
	memcpy(buf + 4 * AU_REC, buf + 5 * AU_REC, AU_REC);
	memcpy(buf + 5 * AU_REC, &tmp, AU_REC);
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	damaged_start(&p, buf, log0_len, pub, HSM_AUDIT_DMG_SEQ, 4,
		      "records 4 and 5 swapped");
	/* delete one record */
	memcpy(buf, log0, 6 * AU_REC);
	memcpy(buf + 6 * AU_REC, log0 + 7 * AU_REC, log0_len - 7 * AU_REC);
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	damaged_start(&p, buf, log0_len - AU_REC, pub, HSM_AUDIT_DMG_SEQ, 6,
		      "record 6 deleted");
	/* truncate by whole records, and mid-record */
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	damaged_start(&p, log0, log0_len - 2 * AU_REC, pub,
		      HSM_AUDIT_DMG_SHORT, n - 2, "last two records cut off");
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	damaged_start(&p, log0, log0_len - 100, pub, HSM_AUDIT_DMG_TORN, n - 1,
		      "file cut in the middle of a record");
	/* a checkpoint whose signature is forged, chain recomputed after it */
	memcpy(buf, log0, log0_len);
	memcpy(&r, buf + AU_REC, AU_REC);
	if (le16toh(r.event) == HSM_AUDIT_EV_CHECKPOINT) {
		r.sig[le16toh(r.sig_len) - 1] ^= 1;
		memcpy(buf + AU_REC, &r, AU_REC);
		for (i = 2; i < n; i++)
			sha256(buf + (i - 1) * AU_REC, AU_REC,
			       buf + i * AU_REC +
			       offsetof(struct hsm_audit_rec, prev_hash));
		spit(p.ks, ks0, ks0_len);
		spit(p.mk, fk, fk_len);
		spit(p.gen, fg, fg_len);
		damaged_start(&p, buf, log0_len, pub, HSM_AUDIT_DMG_SIG, 1,
			      "forged checkpoint signature, chain recomputed");
	} else {
		check(false, "record 1 is the start checkpoint");
	}
	/* the whole log deleted */
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	unlink(p.log);
	f = au_card(&p, &err);
	n2 = f ? au_fetch(f, 0, &recs, &hdr) : -1;
	check(n2 > 0 && le16toh(recs[0].event) == HSM_AUDIT_EV_LOG_DAMAGED &&
	      le32toh(recs[0].detail) == HSM_AUDIT_DMG_MISSING &&
	      le64toh(recs[0].seq) == (uint64_t)n &&
	      (le32toh(hdr.flags) & HSM_AUDIT_F_DAMAGED) &&
	      le64toh(hdr.oldest_seq) == (uint64_t)n,
	      "log deleted: new log starts with LOG_DAMAGED (missing) at the "
	      "sealed head's seq %ld", n);
	sha256(log0 + (n - 1) * AU_REC, AU_REC, h);
	vok = n2 > 0 && verify(recs, n2, true, pub, NULL, &v);
	check(vok && !memcmp(recs[0].prev_hash, h, 32),
	      "and it chains to the sealed head's hash %s", v.why);
	if (n2 > 0)
		free(recs);
	check(!au_read1(f, 0, HSM_AUDIT_HDR_SIZE + AU_REC, &hdr, &r, &res) &&
	      le64toh(hdr.first_seq) == (uint64_t)n,
	      "a read from 0 starts at the oldest record held");
	hsm_fw_free(f);
	/* a clean restart afterwards: the record stays, the flag goes */
	f = au_card(&p, &err);
	n2 = f ? au_fetch(f, 0, &recs, &hdr) : -1;
	vok = n2 > 0 && verify(recs, n2, true, pub, NULL, &v);
	check(vok && !(le32toh(hdr.flags) & HSM_AUDIT_F_DAMAGED) &&
	      le16toh(recs[0].event) == HSM_AUDIT_EV_LOG_DAMAGED,
	      "next clean start: no flag, the LOG_DAMAGED record stays %s",
	      v.why);
	if (n2 > 0)
		free(recs);
	hsm_fw_free(f);

	/* a file the card did not write at all */
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	memset(buf, 0x41, 3 * AU_REC);
	damaged_start(&p, buf, 3 * AU_REC, pub, HSM_AUDIT_DMG_FORMAT, 0,
		      "garbage log");
	free(buf);

	/* tamper: the log survives and the next card links to it */
	spit(p.ks, ks0, ks0_len);
	spit(p.mk, fk, fk_len);
	spit(p.gen, fg, fg_len);
	spit(p.log, log0, log0_len);
	f = au_card(&p, &err);
	if (!check(f != NULL, "start on the original store and log"))
		goto out_free;
	hsm_fw_tamper(f);
	check(access(p.log, F_OK) == 0 && access(p.ks, F_OK) != 0,
	      "tamper wipes the store but keeps the log");
	hsm_fw_free(f);
	f = au_card(&p, &err);
	if (!check(f != NULL, "re-initialized card starts"))
		goto out_free;
	pub2 = au_pubkey(f, NULL);
	check(pub2 && EVP_PKEY_eq(pub, pub2) != 1,
	      "re-initialization: a new audit key");
	n2 = au_fetch(f, 0, &recs, &hdr);
	check(n2 > 4 && le16toh(recs[n2 - 2].event) == HSM_AUDIT_EV_INIT &&
	      le32toh(recs[n2 - 2].detail) == HSM_AUDIT_INIT_REINIT &&
	      le16toh(recs[n2 - 4].event) == HSM_AUDIT_EV_TAMPER,
	      "log: ... TAMPER, checkpoint, INIT (re-init), checkpoint");
	vok = n2 > 0 && verify(recs, n2, true, pub, pub2, &v);
	check(vok && !v.foreign,
	      "verifier: one chain across the re-init, %ld checkpoints under "
	      "the old and the new key %s", v.sigs, v.why);
	if (n2 > 0) {
		key_id(pub2, h);
		check(!memcmp(recs[n2 - 2].label + 16, h, 32),
		      "the INIT record names the new key");
		free(recs);
	}
	EVP_PKEY_free(pub2);
	hsm_fw_free(f);
out_free:
	free(ks0);
	free(fk);
	free(fg);
	free(log0);
	EVP_PKEY_free(pub);
out:
	fh_reset(&fh);
	unlink(p.ks);
	unlink(p.mk);
	unlink(p.gen);
	unlink(p.log);
	snprintf(p.ks, sizeof(p.ks), "%s/keys.tmp", p.dir);
	unlink(p.ks);
	rmdir(p.dir);
}

/*
 * The crypto API's volatile keys in the kernel partition are data-path keys:
 * their import and destruction leave no record; a persistent key there,
 * and the same import in the user partition, do.
 */
static void test_audit_kernel_session(void)
{
	struct hsm_key_attrs a;
	struct hsm_audit_rec r;
	uint64_t h, hu, hp, seq;
	uint8_t key[32];
	struct hsm_fw *f;
	char *err = NULL;

	f = hsm_fw_new(&au_cfg, &err);
	if (!check(f != NULL, "audit: card for the kernel-session rule"))
		return;
	RAND_bytes(key, sizeof(key));
	seq = last_seq(f);
	a = au_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT | HSM_USE_DECRYPT, 0,
		     HSM_KERNEL_PARTITION, "");
	check_st(au_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, sizeof(key), &h),
		 HSM_SC_SUCCESS, "kernel partition: session key imported");
	check_st(destroy(f, h), HSM_SC_SUCCESS,
		 "kernel partition: session key destroyed");
	check(last_seq(f) == seq,
	      "no record for a kernel session key's import and destruction (last seq %llu, was %llu)",
	      (unsigned long long)last_seq(f), (unsigned long long)seq);

	a.partition = htole32(HSM_DEFAULT_PARTITION);
	check_st(au_put(f, HSM_ADM_KEY_IMPORT, 0, &a, key, sizeof(key), &hu),
		 HSM_SC_SUCCESS, "user partition: key imported");
	check(au_last(f, &r) && le16toh(r.event) == HSM_AUDIT_EV_KEY_IMPORT &&
	      le64toh(r.handle) == hu,
	      "the same import in the user partition is recorded");
	check_st(destroy(f, hu), HSM_SC_SUCCESS, "user key destroyed");
	check(au_last(f, &r) && le16toh(r.event) == HSM_AUDIT_EV_KEY_DESTROY &&
	      le64toh(r.handle) == hu, "and its destruction is recorded");

	a = au_attrs(HSM_KEY_AES, 256, HSM_USE_ENCRYPT, 0,
		     HSM_KERNEL_PARTITION, "kernel-gen");
	check_st(gen_attrs(f, &a, &hp), HSM_SC_SUCCESS,
		 "kernel partition: key generated");
	check(au_last(f, &r) && le16toh(r.event) == HSM_AUDIT_EV_KEY_GENERATE &&
	      le64toh(r.handle) == hp,
	      "generation in the kernel partition is recorded");
	hsm_fw_free(f);
}

/* ---- the high-water signal ---- */

static void au_hw_cb(void *opaque)
{
	__atomic_add_fetch((int *)opaque, 1, __ATOMIC_RELAXED);
}

static int au_hw_calls(const int *n)
{
	return __atomic_load_n(n, __ATOMIC_RELAXED);
}

/* Generate @n AES keys in partition 0 (one record each, plus checkpoints). */
static bool au_gen_n(struct hsm_fw *f, int n)
{
	struct hsm_key_attrs a = au_attrs(HSM_KEY_AES, 128, 0, 0, 0, "");
	uint64_t h;
	int i;

	for (i = 0; i < n; i++)
		if (gen_attrs(f, &a, &h) || destroy(f, h))
			return false;
	return true;
}

/*
 * The card counts the records the host has not read; reaching the mark
 * calls the device back once, and only an AUDIT_READ whose records end
 * with the newest one starts the count afresh and re-arms.  The oracle is
 * the log itself: every record not yet read to the end counts, so the
 * count must equal the records the read headers say were appended since.
 */
static void test_audit_high_water(void)
{
	struct hsm_audit_read_hdr h;
	struct hsm_audit_rec *recs = NULL, r;
	struct hsm_fw_config c = au_cfg;
	uint64_t res, last, seen;
	struct au_paths p;
	struct hsm_fw *f;
	char *err = NULL;
	int calls = 0;
	long n;

	f = hsm_fw_new(&c, &err);
	if (!check(f != NULL, "high-water: card with the default mark"))
		return;
	check(hsm_fw_audit_high_water(f) == HSM_FW_AUDIT_HIGH_WATER &&
	      HSM_FW_AUDIT_HIGH_WATER == 3072,
	      "default mark: 3/4 of the 4096-record ring (%u)",
	      hsm_fw_audit_high_water(f));
	hsm_fw_free(f);

	c.audit_high_water = 12;
	c.audit_event = au_hw_cb;
	c.opaque = &calls;
	f = hsm_fw_new(&c, &err);
	if (!check(f != NULL, "high-water: card with mark 12"))
		return;
	check(hsm_fw_audit_high_water(f) == 12, "mark 12 in use");
	/* INIT and its checkpoint: two records nobody read */
	check(hsm_fw_audit_unread(f) == 2 && !au_hw_calls(&calls),
	      "start: 2 unread records, no signal (%u, %d)",
	      hsm_fw_audit_unread(f), au_hw_calls(&calls));
	/* 4 generate + 4 destroy records: 10, still below */
	au_gen_n(f, 4);
	check(hsm_fw_audit_unread(f) == 10 && !au_hw_calls(&calls),
	      "10 unread records, no signal yet (%u, %d)",
	      hsm_fw_audit_unread(f), au_hw_calls(&calls));
	/* the 12th record crosses the mark: exactly one call */
	au_gen_n(f, 1);
	check(hsm_fw_audit_unread(f) == 12 && au_hw_calls(&calls) == 1,
	      "12th record: one signal (%u, %d)", hsm_fw_audit_unread(f),
	      au_hw_calls(&calls));
	/* far past it, over a checkpoint: counted, not signalled again */
	au_gen_n(f, 40);
	check(au_hw_calls(&calls) == 1,
	      "no second signal before a read (%d)", au_hw_calls(&calls));
	/* a read that does not reach the newest record changes nothing */
	check_st(au_read1(f, 0, HSM_AUDIT_HDR_SIZE + AU_REC, &h, &r, &res),
		 HSM_SC_SUCCESS, "read record 0 only");
	last = le64toh(h.last_seq);
	check(hsm_fw_audit_unread(f) == last + 1 && last == 12 + 80,
	      "unread = every record (%u, last seq %llu, 1 checkpoint)",
	      hsm_fw_audit_unread(f), (unsigned long long)last);
	/* nor does an empty read at the end */
	check_st(au_read1(f, last + 1, HSM_AUDIT_HDR_SIZE + AU_REC, &h, NULL,
			  &res), HSM_SC_SUCCESS, "empty read past the newest");
	check(!res && hsm_fw_audit_unread(f) == last + 1,
	      "an empty read does not re-arm (%u)", hsm_fw_audit_unread(f));
	au_gen_n(f, 6);
	check(au_hw_calls(&calls) == 1, "still one signal");

	/* reading to the end: count 0, armed */
	n = au_fetch(f, 0, &recs, &h);
	free(recs);
	recs = NULL;
	check(n == (long)last + 1 + 12 && hsm_fw_audit_unread(f) == 0,
	      "read to the end: nothing unread (%ld records, %u)", n,
	      hsm_fw_audit_unread(f));
	au_gen_n(f, 5);
	check(hsm_fw_audit_unread(f) == 10 && au_hw_calls(&calls) == 1,
	      "re-armed: 10 new records, no signal (%u, %d)",
	      hsm_fw_audit_unread(f), au_hw_calls(&calls));
	au_gen_n(f, 1);
	check(hsm_fw_audit_unread(f) == 12 && au_hw_calls(&calls) == 2,
	      "the next crossing signals again (%u, %d)",
	      hsm_fw_audit_unread(f), au_hw_calls(&calls));
	/* the newest record alone also reaches the end */
	seen = last_seq(f);
	check(hsm_fw_audit_unread(f) == 0 && seen != ~0ull,
	      "reading just the newest record re-arms (%u)",
	      hsm_fw_audit_unread(f));
	au_gen_n(f, 6);
	check(au_hw_calls(&calls) == 3, "and signals again (%d)",
	      au_hw_calls(&calls));
	/* a tamper's records count too (the signal may come from its thread) */
	last_seq(f);
	hsm_fw_tamper(f);
	check(hsm_fw_audit_unread(f) >= 2, "tamper records counted (%u)",
	      hsm_fw_audit_unread(f));
	hsm_fw_free(f);

	/* a file-backed log: the same rules, counted afresh at each start */
	snprintf(p.dir, sizeof(p.dir), "/tmp/hsm-au-XXXXXX");
	if (!mkdtemp(p.dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(p.ks, sizeof(p.ks), "%s/keys", p.dir);
	snprintf(p.mk, sizeof(p.mk), "%s/keys.mk", p.dir);
	snprintf(p.gen, sizeof(p.gen), "%s/keys.gen", p.dir);
	snprintf(p.log, sizeof(p.log), "%s/keys.audit", p.dir);
	c.keystore_path = p.ks;
	calls = 0;
	f = hsm_fw_new(&c, &err);
	if (check(f != NULL, "high-water: card with a store, mark 12")) {
		uint32_t u0 = hsm_fw_audit_unread(f);

		au_gen_n(f, (12 - u0 + 1) / 2);
		check(au_hw_calls(&calls) == 1 &&
		      hsm_fw_audit_unread(f) >= 12,
		      "file log: one signal at the mark (%u, %d)",
		      hsm_fw_audit_unread(f), au_hw_calls(&calls));
		hsm_fw_free(f);
	}
	calls = 0;
	f = hsm_fw_new(&c, &err);
	if (check(f != NULL, "high-water: store card restarted")) {
		check(hsm_fw_audit_unread(f) > 0 &&
		      hsm_fw_audit_unread(f) < 12 && !au_hw_calls(&calls),
		      "restart: counted afresh, no signal (%u)",
		      hsm_fw_audit_unread(f));
		n = au_fetch(f, 0, &recs, &h);
		free(recs);
		check(n > 12 && hsm_fw_audit_unread(f) == 0,
		      "restart: read to the end re-arms (%ld records)", n);
		hsm_fw_free(f);
	}
	unlink(p.ks);
	unlink(p.mk);
	unlink(p.gen);
	unlink(p.log);
	snprintf(p.ks, sizeof(p.ks), "%s/keys.tmp", p.dir);
	unlink(p.ks);
	rmdir(p.dir);
}

void test_audit(const struct hsm_fw_config *base)
{
	au_cfg = *base;
	au_cfg.keystore_path = NULL;
	test_audit_volatile();
	test_audit_kernel_session();
	test_audit_store();
	test_audit_high_water();
}
