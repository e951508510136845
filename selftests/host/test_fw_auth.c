// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host unit tests of the firmware core's partitions, roles and PINs:
 * CARD_INIT, PART_CREATE/DELETE/INFO, LOGIN, SET_PIN, the lockout and
 * its durability across restarts, re-initialization after tamper, the
 * sealed store's version 5 (and loading version 2), and the audit records.
 *
 * Oracles are independent of the firmware's code: OpenSSL AES-ECB for
 * the keys that work after a re-initialization, SHA-256 over the records
 * for the audit chain, the store decrypted here with the master key
 * (layout from hsm_fw_store.c's comment) to look for clear PINs, and a
 * version 2 store rebuilt here from a version 3 one.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "test_fw.h"

#define TA_ITER		1000	/* PBKDF2 iterations for quick tests */

static struct hsm_fw_config ta_cfg;
static char ta_dir[64], ta_ks[96], ta_mk[96], ta_log[96];

/* every PIN used below, to scan files for */
static const char *const ta_pins[] = {
	"admin-pin-A1", "admin-pin-B2", "admin-pin-C3", "so-pin-alpha",
	"user-pin-beta", "user-pin-gamma", "so-pin-delta", "user-pin-eps",
	"so-pin-zeta", "wrong-pin-xx", "so0-pin-eta",
};

/* ---- commands ---- */

static uint16_t ta_adm(struct hsm_fw *f, struct hsm_sqe *s, uint64_t *res)
{
	uint64_t r;

	return hsm_fw_admin(f, &fh.host, s, res ? res : &r);
}

static void ta_sqe(struct hsm_sqe *s, uint8_t op)
{
	memset(s, 0, sizeof(*s));
	s->opcode = op;
}

static void ta_req(struct hsm_auth_req *r, uint32_t part, uint16_t role,
		   const char *pin, const char *new_pin)
{
	memset(r, 0, sizeof(*r));
	r->partition = htole32(part);
	r->role = htole16(role);
	if (pin) {
		r->pin_len = htole16(strlen(pin));
		memcpy(r->pin, pin, strlen(pin));
	}
	if (new_pin) {
		r->new_pin_len = htole16(strlen(new_pin));
		memcpy(r->new_pin, new_pin, strlen(new_pin));
	}
}

static uint16_t ta_send(struct hsm_fw *f, uint8_t op,
			const struct hsm_auth_req *r, uint64_t *res)
{
	struct hsm_sqe s;

	ta_sqe(&s, op);
	s.src = htole64(fh_put(&fh, r, sizeof(*r)));
	s.src_len = htole32(sizeof(*r));
	return ta_adm(f, &s, res);
}

static uint16_t ta_init(struct hsm_fw *f, const char *cur, const char *npin)
{
	struct hsm_auth_req r;

	ta_req(&r, 0, HSM_ROLE_ADMIN, cur, npin);
	return ta_send(f, HSM_ADM_CARD_INIT, &r, NULL);
}

static uint16_t ta_create(struct hsm_fw *f, uint32_t part, const char *label,
			  const char *admin, const char *so, uint16_t max,
			  uint64_t *res)
{
	struct hsm_auth_req r;

	ta_req(&r, part, HSM_ROLE_ADMIN, admin, so);
	r.max_fail = htole16(max);
	snprintf(r.label, sizeof(r.label), "%s", label);
	return ta_send(f, HSM_ADM_PART_CREATE, &r, res);
}

static uint16_t ta_delete(struct hsm_fw *f, uint32_t part, uint16_t flags,
			  const char *admin, uint64_t *res)
{
	struct hsm_auth_req r;

	ta_req(&r, part, HSM_ROLE_ADMIN, admin, NULL);
	r.flags = htole16(flags);
	return ta_send(f, HSM_ADM_PART_DELETE, &r, res);
}

static uint16_t ta_login(struct hsm_fw *f, uint32_t part, uint16_t role,
			 const char *pin, uint64_t *left)
{
	struct hsm_auth_req r;

	ta_req(&r, part, role, pin, NULL);
	return ta_send(f, HSM_ADM_LOGIN, &r, left);
}

static uint16_t ta_setpin(struct hsm_fw *f, uint32_t part, uint16_t role,
			  uint16_t by, const char *pin, const char *npin)
{
	struct hsm_auth_req r;

	ta_req(&r, part, role, pin, npin);
	r.auth_role = htole16(by);
	return ta_send(f, HSM_ADM_SET_PIN, &r, NULL);
}

static uint16_t ta_info(struct hsm_fw *f, uint32_t part,
			struct hsm_part_info *out)
{
	uint64_t d = fh_alloc(&fh, sizeof(*out)), res = 0;
	struct hsm_sqe s;
	uint16_t st;

	ta_sqe(&s, HSM_ADM_PART_INFO);
	s.cdw[0] = htole32(part);
	s.dst = htole64(d);
	s.dst_len = htole32(sizeof(*out));
	memset(fh_ptr(&fh, d), 0xa5, sizeof(*out));
	st = ta_adm(f, &s, &res);
	memcpy(out, fh_ptr(&fh, d), sizeof(*out));
	if (!st && res != sizeof(*out))
		return 0xffff;
	return st;
}

static uint32_t ta_flags(struct hsm_fw *f, uint32_t part)
{
	struct hsm_part_info i;

	if (ta_info(f, part, &i))
		return 0xdeadbeef;
	return le32toh(i.flags);
}

static uint32_t ta_card_flags(struct hsm_fw *f)
{
	struct hsm_part_info i;

	if (ta_info(f, 0, &i))
		return 0xdeadbeef;
	return le32toh(i.card_flags);
}

static uint16_t ta_gen(struct hsm_fw *f, uint32_t part, uint32_t flags,
		       uint64_t *h)
{
	struct hsm_key_attrs a;
	struct hsm_sqe s;

	memset(&a, 0, sizeof(a));
	a.type = htole16(HSM_KEY_AES);
	a.bits = htole16(128);
	a.flags = htole32(flags);
	a.partition = htole32(part);
	ta_sqe(&s, HSM_ADM_KEY_GENERATE);
	s.src = htole64(fh_put(&fh, &a, sizeof(a)));
	s.src_len = htole32(sizeof(a));
	return ta_adm(f, &s, h);
}

static uint16_t ta_import(struct hsm_fw *f, uint32_t part,
			  const uint8_t *key, uint64_t *h)
{
	uint64_t addr = fh_alloc(&fh, sizeof(struct hsm_key_attrs) + 16);
	struct hsm_key_attrs a;
	struct hsm_sqe s;

	memset(&a, 0, sizeof(a));
	a.type = htole16(HSM_KEY_AES);
	a.partition = htole32(part);
	memcpy(fh_ptr(&fh, addr), &a, sizeof(a));
	memcpy((uint8_t *)fh_ptr(&fh, addr) + sizeof(a), key, 16);
	ta_sqe(&s, HSM_ADM_KEY_IMPORT);
	s.src = htole64(addr);
	s.src_len = htole32(sizeof(a) + 16);
	return ta_adm(f, &s, h);
}

static uint16_t ta_attrs(struct hsm_fw *f, uint64_t h)
{
	struct hsm_sqe s;

	ta_sqe(&s, HSM_ADM_KEY_GET_ATTRS);
	s.handle = htole64(h);
	s.dst = htole64(fh_alloc(&fh, sizeof(struct hsm_key_attrs)));
	s.dst_len = htole32(sizeof(struct hsm_key_attrs));
	return ta_adm(f, &s, NULL);
}

static uint16_t ta_list(struct hsm_fw *f, uint32_t part, uint64_t *res)
{
	struct hsm_sqe s;

	ta_sqe(&s, HSM_ADM_KEY_LIST);
	s.cdw[0] = htole32(part);
	return ta_adm(f, &s, res);
}

/* AES-128-ECB of one block on the card */
static uint16_t ta_ecb(struct hsm_fw *f, uint64_t h, const uint8_t *in,
		       uint8_t *out)
{
	uint64_t d = fh_alloc(&fh, 16), res;
	struct hsm_sqe s;
	uint16_t st;

	ta_sqe(&s, HSM_IO_ENCRYPT);
	s.mech = htole16(HSM_MECH_AES_ECB);
	s.handle = htole64(h);
	s.src = htole64(fh_put(&fh, in, 16));
	s.src_len = htole32(16);
	s.dst = htole64(d);
	s.dst_len = htole32(16);
	st = hsm_fw_io(f, &fh.host, &s, &res);
	memcpy(out, fh_ptr(&fh, d), 16);
	return st;
}

static void ssl_ecb(const uint8_t *key, const uint8_t *in, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0;

	EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, key, NULL);
	EVP_CIPHER_CTX_set_padding(c, 0);
	EVP_EncryptUpdate(c, out, &n, in, 16);
	EVP_CIPHER_CTX_free(c);
}

/* ---- files ---- */

static struct hsm_fw *ta_card(const char *ks)
{
	struct hsm_fw_config c = ta_cfg;
	struct hsm_fw *f;
	char *err = NULL;

	c.keystore_path = ks;
	f = hsm_fw_new(&c, &err);
	if (!f)
		printf("# hsm_fw_new(%s): %s\n", ks ? ks : "volatile",
		       err ? err : "?");
	free(err);
	return f;
}

static struct hsm_fw *ta_restart(struct hsm_fw *f)
{
	hsm_fw_free(f);
	fh_reset(&fh);
	return ta_card(ta_ks);
}

uint8_t *ta_read(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(n ? n : 1);
	if (buf && fread(buf, 1, n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	*len = n;
	return buf;
}

static bool ta_write(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");
	bool ok;

	if (!fp)
		return false;
	ok = fwrite(buf, 1, len, fp) == len;
	return !fclose(fp) && ok;
}

static bool ta_copy(const char *from, const char *to)
{
	size_t len;
	uint8_t *b = ta_read(from, &len);
	bool ok = b && ta_write(to, b, len);

	free(b);
	return ok;
}

/*
 * The counter file next to master key file @mk ("<store>.gen" for
 * "<store>.mk") into @buf; false if there is none.
 */
static bool ta_gen_path(const char *mk, char *buf, size_t size)
{
	size_t n = strlen(mk);

	if (n < 3 || strcmp(mk + n - 3, ".mk") ||
	    (size_t)snprintf(buf, size, "%.*s.gen", (int)(n - 3), mk) >= size)
		return false;
	return true;
}

/*
 * The master key in a master key file: the bare 32 bytes (before the
 * counter), the 88-byte version 1 file or the 80-byte version 2 file
 * (hw.rst); in *@gen the counter, read from the counter file next to it
 * if there is one, else from a version 1 file (else 0).
 */
uint8_t *ta_mk_read(const char *mk, uint64_t *gen)
{
	size_t mlen = 0, glen = 0;
	uint8_t *file = ta_read(mk, &mlen), *key, *g = NULL;
	uint64_t le64;
	char gpath[256];

	*gen = 0;
	if (file && mlen == 88) {
		memcpy(&le64, file + 48, 8);
		*gen = le64toh(le64);
	}
	if (ta_gen_path(mk, gpath, sizeof(gpath)))
		g = ta_read(gpath, &glen);
	if (g && glen == 56) {
		memcpy(&le64, g + 16, 8);
		*gen = le64toh(le64);
	}
	free(g);
	if (!file || mlen == 32)
		return file;
	key = mlen == 88 || mlen == 80 ? malloc(32) : NULL;
	if (key)
		memcpy(key, file + 16, 32);
	free(file);
	return key;
}

/* Decrypt a sealed store with its master key; NULL if it does not open. */
uint8_t *ta_unseal(const char *ks, const char *mk, size_t *plen,
		   uint32_t *ver)
{
	size_t flen = 0, hdr;
	uint64_t gen;
	uint8_t *file = ta_read(ks, &flen), *key = ta_mk_read(mk, &gen);
	uint8_t *plain = NULL;
	EVP_CIPHER_CTX *c = NULL;
	uint32_t n;
	int outl = 0;

	if (!file || !key || flen < 60)
		goto out;
	memcpy(ver, file + 8, 4);
	*ver = le32toh(*ver);
	hdr = *ver >= 6 ? 52 : 44;
	memcpy(&n, file + 40, 4);
	n = le32toh(n);
	if (flen < hdr + 16 || n != flen - hdr - 16)
		goto out;
	plain = malloc(n + 16);
	c = EVP_CIPHER_CTX_new();
	if (!EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) ||
	    !EVP_DecryptInit_ex(c, NULL, NULL, key, file + 28) ||
	    !EVP_DecryptUpdate(c, NULL, &outl, file, hdr) ||
	    !EVP_DecryptUpdate(c, plain, &outl, file + hdr, n) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
				 file + hdr + n) ||
	    !EVP_DecryptFinal_ex(c, plain + outl, &outl)) {
		free(plain);
		plain = NULL;
		goto out;
	}
	*plen = n;
out:
	EVP_CIPHER_CTX_free(c);
	free(file);
	free(key);
	return plain;
}

/*
 * Seal @plain as a store of version @ver and generation @gen (version 6 and
 * later; older ones have none) under the master key in @mk.
 */
bool ta_seal_gen(const char *ks, const char *mk, const uint8_t *plain,
		 size_t n, uint32_t ver, const uint8_t *card_id, uint64_t gen)
{
	size_t hdr = ver >= 6 ? 52 : 44;
	uint64_t cur, le64 = htole64(gen);
	uint8_t *key = ta_mk_read(mk, &cur), *file = malloc(hdr + 16 + n);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint32_t le;
	int outl = 0;
	bool ok = false;

	if (!key || !file || !c)
		goto out;
	memcpy(file, "HSMKSTOR", 8);
	le = htole32(ver);
	memcpy(file + 8, &le, 4);
	memcpy(file + 12, card_id, 16);
	RAND_bytes(file + 28, 12);
	le = htole32(n);
	memcpy(file + 40, &le, 4);
	if (hdr > 44)
		memcpy(file + 44, &le64, 8);
	ok = EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, file + 28) &&
	     EVP_EncryptUpdate(c, NULL, &outl, file, hdr) &&
	     EVP_EncryptUpdate(c, file + hdr, &outl, plain, n) &&
	     EVP_EncryptFinal_ex(c, file + hdr + outl, &outl) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
				 file + hdr + n) &&
	     ta_write(ks, file, hdr + 16 + n);
out:
	EVP_CIPHER_CTX_free(c);
	free(key);
	free(file);
	return ok;
}

/*
 * Seal @plain as a store of version @ver that the card accepts: a version
 * 6 store takes the counter as its generation; an older one, which has no
 * generation, comes with the master key file of its time (the bare key,
 * counter 0, no counter file).
 */
bool ta_seal(const char *ks, const char *mk, const uint8_t *plain,
	     size_t n, uint32_t ver, const uint8_t *card_id)
{
	uint64_t gen;
	uint8_t *key = ta_mk_read(mk, &gen);
	bool ok = key != NULL;
	char gpath[256];

	if (ok && ver < 6) {
		ok = ta_write(mk, key, 32);
		if (ta_gen_path(mk, gpath, sizeof(gpath)))
			unlink(gpath);
	}
	free(key);
	return ok && ta_seal_gen(ks, mk, plain, n, ver, card_id,
				 ver < 6 ? 0 : gen);
}

/* No PIN of ta_pins[] in @buf. */
static const char *ta_pin_in(const uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(ta_pins) / sizeof(ta_pins[0]); i++)
		if (memmem(buf, len, ta_pins[i], strlen(ta_pins[i])))
			return ta_pins[i];
	return NULL;
}

/* ---- audit ---- */

static long ta_audit(struct hsm_fw *f, struct hsm_audit_rec **out)
{
	const uint32_t batch = 64;
	struct hsm_audit_rec *all = NULL;
	struct hsm_audit_read_hdr h;
	uint64_t seq = 0, res, d;
	struct hsm_sqe s;
	long n = 0;

	for (;;) {
		all = realloc(all, (n + batch) * sizeof(*all));
		d = fh_alloc(&fh, HSM_AUDIT_HDR_SIZE + batch * HSM_AUDIT_REC_SIZE);
		ta_sqe(&s, HSM_ADM_AUDIT_READ);
		s.qw[0] = htole64(seq);
		s.dst = htole64(d);
		s.dst_len = htole32(HSM_AUDIT_HDR_SIZE +
				    batch * HSM_AUDIT_REC_SIZE);
		if (ta_adm(f, &s, &res)) {
			free(all);
			return -1;
		}
		memcpy(&h, fh_ptr(&fh, d), sizeof(h));
		memcpy(all + n, (uint8_t *)fh_ptr(&fh, d) + HSM_AUDIT_HDR_SIZE,
		       res * sizeof(*all));
		n += res;
		seq = le64toh(h.next_seq);
		if (!res || seq > le64toh(h.last_seq))
			break;
	}
	*out = all;
	return n;
}

/* seq consecutive from the first record read, prev_hash chained */
static bool ta_chain_ok(const struct hsm_audit_rec *r, long n)
{
	uint8_t h[32];
	long i;

	for (i = 1; i < n; i++) {
		SHA256((const uint8_t *)&r[i - 1], sizeof(*r), h);
		if (le64toh(r[i].seq) != le64toh(r[i - 1].seq) + 1 ||
		    memcmp(h, r[i].prev_hash, 32))
			return false;
	}
	return n > 0;
}

#define TA_ANY	(-1ll)

/* Index of the last record of @ev (and @part unless TA_ANY) from @from. */
static long ta_find(const struct hsm_audit_rec *r, long n, long from,
		    uint16_t ev, long long part)
{
	long i, found = -1;

	for (i = from; i < n; i++)
		if (le16toh(r[i].event) == ev &&
		    (part == TA_ANY || le32toh(r[i].partition) == part))
			found = i;
	return found;
}

static long ta_count(const struct hsm_audit_rec *r, long n, long from,
		     uint16_t ev)
{
	long i, c = 0;

	for (i = from; i < n; i++)
		c += le16toh(r[i].event) == ev;
	return c;
}

/* ---- tests ---- */

static void test_auth_fields(struct hsm_fw *f)
{
	struct hsm_auth_req r;
	struct hsm_part_info pi;
	struct hsm_sqe s;
	uint64_t res = 0;

	/* exact src size */
	ta_req(&r, 0, HSM_ROLE_SO, "so-pin-alpha", NULL);
	ta_sqe(&s, HSM_ADM_LOGIN);
	s.src = htole64(fh_put(&fh, &r, sizeof(r)));
	s.src_len = htole32(sizeof(r) - 1);
	check_st(ta_adm(f, &s, NULL), HSM_SC_INVALID_LENGTH,
		 "LOGIN with a 255-byte request");
	s.src_len = htole32(sizeof(r));
	s.aux = htole32(1);
	check_st(ta_adm(f, &s, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN with aux set");
	r.rsvd[5] = htole32(1);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN with a reserved word set");
	ta_req(&r, 2, HSM_ROLE_USER, "abc", NULL);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_LENGTH,
		 "LOGIN with a 3-byte PIN");
	r.pin_len = htole16(65);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_LENGTH,
		 "LOGIN with pin_len 65");
	ta_req(&r, 2, HSM_ROLE_USER, "user-pin-beta", NULL);
	r.pin[40] = 'x';
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN with PIN bytes past pin_len");
	ta_req(&r, 2, HSM_ROLE_ADMIN, "user-pin-beta", NULL);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN as the admin role to partition 2");
	check_st(ta_login(f, 0, HSM_ROLE_ADMIN, "admin-pin-B2", NULL),
		 HSM_SC_SUCCESS, "LOGIN as the admin (partition 0)");
	check_st(ta_login(f, 0, HSM_ROLE_ADMIN, "admin-pin-A1", NULL),
		 HSM_SC_PIN_INCORRECT, "admin LOGIN with an old PIN");
	check(ta_info(f, 0, &pi) == 0 && pi.admin_failed == 1 &&
	      !(le32toh(pi.card_flags) & HSM_CARD_S_ADMIN_LOCKED),
	      "PART_INFO: 1 failed admin PIN");
	check_st(ta_login(f, 0, HSM_ROLE_ADMIN, "admin-pin-B2", NULL),
		 HSM_SC_SUCCESS, "admin LOGIN with the right PIN");
	check(ta_info(f, 0, &pi) == 0 && pi.admin_failed == 0,
	      "the right admin PIN resets the count");
	ta_req(&r, 2, 7, "user-pin-beta", NULL);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN with role 7");
	ta_req(&r, 2, HSM_ROLE_USER, "user-pin-beta", "user-pin-gamma");
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_LENGTH,
		 "LOGIN with a new PIN");
	ta_req(&r, 16, HSM_ROLE_USER, "user-pin-beta", NULL);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN to partition 16");
	ta_req(&r, 9, HSM_ROLE_USER, "user-pin-beta", NULL);
	check_st(ta_send(f, HSM_ADM_LOGIN, &r, NULL), HSM_SC_INVALID_FIELD,
		 "LOGIN to a partition that does not exist");
	ta_req(&r, 0, HSM_ROLE_ADMIN, NULL, "admin-pin-A1");
	snprintf(r.label, sizeof(r.label), "x");
	check_st(ta_send(f, HSM_ADM_CARD_INIT, &r, NULL), HSM_SC_INVALID_FIELD,
		 "CARD_INIT with a label");
	ta_req(&r, 0, HSM_ROLE_USER, NULL, "admin-pin-A1");
	check_st(ta_send(f, HSM_ADM_CARD_INIT, &r, NULL), HSM_SC_INVALID_FIELD,
		 "CARD_INIT as role USER");
	check_st(ta_init(f, NULL, "123"), HSM_SC_INVALID_LENGTH,
		 "CARD_INIT with a 3-byte new PIN");
	check_st(ta_info(f, 16, &pi), HSM_SC_INVALID_FIELD,
		 "PART_INFO of partition 16");
	ta_sqe(&s, HSM_ADM_PART_INFO);
	s.dst = htole64(fh_alloc(&fh, 64));
	s.dst_len = htole32(64);
	check(ta_adm(f, &s, &res) == HSM_SC_BUFFER_TOO_SMALL && res == 128,
	      "PART_INFO into 64 bytes: BUFFER_TOO_SMALL, 128 needed");
}

static void test_auth_factory(struct hsm_fw *f)
{
	struct hsm_part_info pi;
	uint64_t h = 0, res;

	check(ta_info(f, 0, &pi) == 0 &&
	      le32toh(pi.flags) == HSM_PART_S_EXISTS &&
	      !strcmp(pi.label, "default") &&
	      le16toh(pi.max_fail) == HSM_MAX_FAIL_DEFAULT &&
	      !le32toh(pi.card_flags) && le32toh(pi.partition) == 0 &&
	      le64toh(pi.created) > 1700000000ull,
	      "factory: partition 0 exists, uninitialized, 'default', limit 5");
	check(ta_info(f, 1, &pi) == 0 &&
	      le32toh(pi.flags) == (HSM_PART_S_EXISTS | HSM_PART_S_KERNEL) &&
	      !strcmp(pi.label, "kernel"),
	      "factory: partition 1 is the kernel's, no PINs");
	check(ta_info(f, 2, &pi) == 0 && !le32toh(pi.flags) &&
	      !pi.label[0] && !le32toh(pi.nr_keys),
	      "factory: partition 2 does not exist (flags 0)");
	check_st(ta_gen(f, 2, 0, &h), HSM_SC_INVALID_FIELD,
		 "generate in a partition that does not exist");
	check_st(ta_list(f, 2, &res), HSM_SC_INVALID_FIELD,
		 "list a partition that does not exist");
	check_st(ta_import(f, 7, (const uint8_t *)"0123456789abcdef", &h),
		 HSM_SC_INVALID_FIELD, "import into a partition that does not exist");
	check_st(ta_create(f, HSM_PART_ANY, "early", "admin-pin-A1",
			   "so-pin-alpha", 0, &res), HSM_SC_PIN_NOT_SET,
		 "PART_CREATE before CARD_INIT");
	check_st(ta_setpin(f, 0, HSM_ROLE_SO, HSM_ROLE_ADMIN, "admin-pin-A1",
			   "so-pin-alpha"), HSM_SC_PIN_NOT_SET,
		 "admin SET_PIN before CARD_INIT");
	check_st(ta_login(f, 0, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_PIN_NOT_SET, "LOGIN to uninitialized partition 0");
	/* compatibility: partition 0 keys work without any PIN */
	check_st(ta_gen(f, 0, 0, &h), HSM_SC_SUCCESS,
		 "generate in uninitialized partition 0");
	check_st(ta_gen(f, 1, 0, &h), HSM_SC_SUCCESS,
		 "generate in partition 1");
}

static void test_auth_admin(struct hsm_fw **fp)
{
	struct hsm_fw *f = *fp;
	uint64_t h0 = 0, res = 0;
	struct hsm_auth_req r;
	uint16_t st;

	check_st(ta_gen(f, 0, HSM_KEYF_PERSISTENT, &h0), HSM_SC_SUCCESS,
		 "persistent key in partition 0 before CARD_INIT");
	check_st(ta_init(f, NULL, "admin-pin-A1"), HSM_SC_SUCCESS,
		 "CARD_INIT on a factory card, no current PIN");
	check(ta_card_flags(f) == HSM_CARD_S_ADMIN_SET,
	      "PART_INFO: admin PIN set");
	check_st(ta_attrs(f, h0), HSM_SC_INVALID_HANDLE,
		 "CARD_INIT destroyed the earlier keys");
	check_st(ta_init(f, NULL, "admin-pin-B2"), HSM_SC_INVALID_LENGTH,
		 "second CARD_INIT without the current PIN");
	check(ta_init(f, "wrong-pin-xx", "admin-pin-B2") ==
	      HSM_SC_PIN_INCORRECT, "CARD_INIT with a wrong admin PIN");
	ta_req(&r, 0, HSM_ROLE_ADMIN, "wrong-pin-xx", "admin-pin-B2");
	st = ta_send(f, HSM_ADM_CARD_INIT, &r, &res);
	check(st == HSM_SC_PIN_INCORRECT && res == HSM_ADMIN_MAX_FAIL - 2,
	      "second wrong admin PIN: %d tries left (%llu)",
	      HSM_ADMIN_MAX_FAIL - 2, (unsigned long long)res);
	check_st(ta_setpin(f, 0, HSM_ROLE_ADMIN, 0, "admin-pin-A1",
			   "admin-pin-B2"), HSM_SC_SUCCESS,
		 "admin changes the admin PIN");
	check_st(ta_setpin(f, 0, HSM_ROLE_ADMIN, 0, "admin-pin-A1",
			   "admin-pin-C3"), HSM_SC_PIN_INCORRECT,
		 "the old admin PIN no longer works");
	f = ta_restart(f);
	*fp = f;
	if (!check(f != NULL, "restart after CARD_INIT"))
		return;
	check(ta_card_flags(f) == HSM_CARD_S_ADMIN_SET,
	      "admin PIN survives a restart");
	check_st(ta_init(f, "admin-pin-B2", "admin-pin-B2"), HSM_SC_SUCCESS,
		 "CARD_INIT again with the current admin PIN");
}

static void test_auth_partitions(struct hsm_fw **fp)
{
	struct hsm_fw *f = *fp;
	struct hsm_part_info pi;
	uint64_t res = 0, p2 = 0, p5 = 0, hp = 0, hv = 0, h5 = 0, h;
	uint32_t i, n;
	uint16_t st;
	char label[32];

	st = ta_create(f, HSM_PART_ANY, "payments", "admin-pin-B2",
		       "so-pin-alpha", 3, &p2);
	check(st == 0 && p2 == 2,
	      "PART_CREATE first free: partition 2 (%llu)",
	      (unsigned long long)p2);
	check_st(ta_create(f, HSM_PART_ANY, "payments", "admin-pin-B2",
			   "so-pin-alpha", 3, &res), HSM_SC_INVALID_FIELD,
		 "PART_CREATE with a label in use");
	check_st(ta_create(f, HSM_PART_ANY, "default", "admin-pin-B2",
			   "so-pin-alpha", 3, &res), HSM_SC_INVALID_FIELD,
		 "PART_CREATE with partition 0's label");
	check_st(ta_create(f, 2, "other", "admin-pin-B2", "so-pin-alpha", 3,
			   &res), HSM_SC_INVALID_FIELD,
		 "PART_CREATE of partition 2 again");
	check_st(ta_create(f, 1, "other", "admin-pin-B2", "so-pin-alpha", 3,
			   &res), HSM_SC_INVALID_FIELD, "PART_CREATE of 1");
	check_st(ta_create(f, 16, "other", "admin-pin-B2", "so-pin-alpha", 3,
			   &res), HSM_SC_INVALID_FIELD, "PART_CREATE of 16");
	check_st(ta_create(f, HSM_PART_ANY, "other", "admin-pin-B2",
			   "so-pin-alpha", 16, &res), HSM_SC_INVALID_FIELD,
		 "PART_CREATE with max failures 16");
	check_st(ta_create(f, HSM_PART_ANY, "", "admin-pin-B2",
			   "so-pin-alpha", 3, &res), HSM_SC_INVALID_FIELD,
		 "PART_CREATE without a label");
	check_st(ta_create(f, HSM_PART_ANY, "other", "admin-pin-B2", "so",
			   3, &res), HSM_SC_INVALID_LENGTH,
		 "PART_CREATE with a 2-byte SO PIN");
	check_st(ta_create(f, HSM_PART_ANY, "other", "wrong-pin-xx",
			   "so-pin-alpha", 3, &res), HSM_SC_PIN_INCORRECT,
		 "PART_CREATE with a wrong admin PIN");
	check(ta_create(f, 5, "hr", "admin-pin-B2", "so-pin-zeta", 0,
			&p5) == 0 && p5 == 5, "PART_CREATE of partition 5");
	check(ta_info(f, 2, &pi) == 0 &&
	      le32toh(pi.flags) == (HSM_PART_S_EXISTS |
				    HSM_PART_S_INITIALIZED |
				    HSM_PART_S_SO_SET) &&
	      le16toh(pi.max_fail) == 3 && !strcmp(pi.label, "payments") &&
	      !pi.so_failed && !pi.user_failed,
	      "PART_INFO 2: SO set, limit 3, label");
	check(ta_info(f, 5, &pi) == 0 &&
	      le16toh(pi.max_fail) == HSM_MAX_FAIL_DEFAULT,
	      "max failures 0 means the default");

	/* keys: in 2 (persistent and volatile), in 5 (persistent) */
	check_st(ta_gen(f, 2, HSM_KEYF_PERSISTENT, &hp), HSM_SC_SUCCESS,
		 "persistent key in partition 2");
	check_st(ta_gen(f, 2, 0, &hv), HSM_SC_SUCCESS,
		 "volatile key in partition 2");
	check_st(ta_gen(f, 5, HSM_KEYF_PERSISTENT, &h5), HSM_SC_SUCCESS,
		 "persistent key in partition 5");
	check(HSM_HANDLE_PART(hp) == 2 && HSM_HANDLE_PART(h5) == 5,
	      "handles carry partitions 2 and 5");
	check(ta_list(f, 2, &res) == 0 && res >> 32 == 2,
	      "KEY_LIST 2: 2 keys");
	check(ta_info(f, 2, &pi) == 0 && le32toh(pi.nr_keys) == 2,
	      "PART_INFO 2: 2 keys");

	/* restart: partitions and keys come back */
	f = ta_restart(f);
	*fp = f;
	if (!check(f != NULL, "restart with partitions"))
		return;
	check(ta_flags(f, 2) & HSM_PART_S_SO_SET && ta_flags(f, 5) &&
	      !ta_flags(f, 3), "partitions 2 and 5 survive a restart");
	check(ta_attrs(f, hp) == 0 && ta_attrs(f, h5) == 0 &&
	      ta_attrs(f, hv) == HSM_SC_INVALID_HANDLE,
	      "persistent keys survive, the volatile one does not");
	check_st(ta_gen(f, 2, 0, &hv), HSM_SC_SUCCESS,
		 "volatile key in partition 2 again");

	/* delete 2: its keys go, persistent ones too */
	check_st(ta_delete(f, 2, 0, "wrong-pin-xx", &res), HSM_SC_PIN_INCORRECT,
		 "PART_DELETE with a wrong admin PIN");
	check(ta_attrs(f, hp) == 0, "nothing deleted on a wrong PIN");
	check_st(ta_delete(f, 1, 0, "admin-pin-B2", &res), HSM_SC_INVALID_FIELD,
		 "PART_DELETE of the kernel partition");
	check_st(ta_delete(f, 1, HSM_AUTH_F_RESET, "admin-pin-B2", &res),
		 HSM_SC_INVALID_FIELD, "reset of the kernel partition");
	check_st(ta_delete(f, 0, 0, "admin-pin-B2", &res), HSM_SC_INVALID_FIELD,
		 "PART_DELETE of partition 0 without RESET");
	check_st(ta_delete(f, 5, HSM_AUTH_F_RESET, "admin-pin-B2", &res),
		 HSM_SC_INVALID_FIELD, "RESET of a partition other than 0");
	check_st(ta_delete(f, 3, 0, "admin-pin-B2", &res), HSM_SC_INVALID_FIELD,
		 "PART_DELETE of a partition that does not exist");
	st = ta_delete(f, 2, 0, "admin-pin-B2", &res);
	check(st == 0 && res == 2,
	      "PART_DELETE 2: 2 keys destroyed (%llu)",
	      (unsigned long long)res);
	check(ta_attrs(f, hp) == HSM_SC_INVALID_HANDLE &&
	      ta_attrs(f, hv) == HSM_SC_INVALID_HANDLE,
	      "partition 2's keys are gone");
	check(!ta_flags(f, 2), "partition 2 no longer exists");
	check_st(ta_gen(f, 2, 0, &h), HSM_SC_INVALID_FIELD,
		 "generate in deleted partition 2");
	check_st(ta_login(f, 2, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_INVALID_FIELD, "LOGIN to deleted partition 2");
	f = ta_restart(f);
	*fp = f;
	if (!check(f != NULL, "restart after PART_DELETE"))
		return;
	check(!ta_flags(f, 2) && ta_attrs(f, hp) == HSM_SC_INVALID_HANDLE &&
	      ta_attrs(f, h5) == 0,
	      "after a restart 2 and its persistent key stay gone, 5's key stays");

	/* fill the card, then one more */
	n = 0;
	for (i = 0; i < HSM_NR_PARTITIONS; i++) {
		snprintf(label, sizeof(label), "fill-%u", i);
		if (!ta_create(f, HSM_PART_ANY, label, "admin-pin-B2",
			       "so-pin-delta", 0, &res))
			n++;
	}
	check(n == HSM_NR_PARTITIONS - 3,
	      "%u more partitions fit (%u)", HSM_NR_PARTITIONS - 3, n);
	check_st(ta_create(f, HSM_PART_ANY, "one-more", "admin-pin-B2",
			   "so-pin-delta", 0, &res), HSM_SC_KEYSTORE_FULL,
		 "PART_CREATE on a full card");
	for (i = 2; i < HSM_NR_PARTITIONS; i++)
		if (i != 5)
			ta_delete(f, i, 0, "admin-pin-B2", NULL);
	check(!ta_flags(f, 2) && !ta_flags(f, 15) && ta_flags(f, 5),
	      "fillers deleted");
	fh_reset(&fh);
}

static void test_auth_login(struct hsm_fw **fp)
{
	struct hsm_fw *f = *fp, *g;
	struct hsm_part_info pi;
	uint64_t res = 0, p = 0;
	uint16_t st;
	int i;
	char ks2[128], mk2[128], log2[128];
	bool ok;

	check(ta_create(f, HSM_PART_ANY, "payments", "admin-pin-B2",
			"so-pin-alpha", 3, &p) == 0 && p == 2,
	      "partition 2 again, limit 3");
	check_st(ta_login(f, 2, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_SUCCESS, "SO login");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "so-pin-alpha", NULL),
		 HSM_SC_PIN_NOT_SET, "USER login before the User PIN is set");
	check_st(ta_setpin(f, 2, HSM_ROLE_USER, HSM_ROLE_SO, "so-pin-alpha",
			   "user-pin-beta"), HSM_SC_SUCCESS,
		 "SO sets the User PIN");
	check(ta_flags(f, 2) & HSM_PART_S_USER_SET, "PART_INFO: User set");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-beta", NULL),
		 HSM_SC_SUCCESS, "USER login");
	check_st(ta_login(f, 5, HSM_ROLE_USER, "user-pin-beta", NULL),
		 HSM_SC_PIN_NOT_SET, "the User PIN of 2 is not 5's");
	check_st(ta_login(f, 5, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_PIN_INCORRECT, "the SO PIN of 2 is not 5's");

	/* partition 1 */
	check_st(ta_login(f, 1, HSM_ROLE_USER, "user-pin-beta", NULL),
		 HSM_SC_INVALID_FIELD, "USER login to the kernel partition");
	check_st(ta_login(f, 1, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_INVALID_FIELD, "SO login to the kernel partition");
	check_st(ta_setpin(f, 1, HSM_ROLE_SO, HSM_ROLE_ADMIN, "admin-pin-B2",
			   "so-pin-alpha"), HSM_SC_INVALID_FIELD,
		 "admin cannot give partition 1 an SO PIN");

	/* role combinations */
	check_st(ta_setpin(f, 2, HSM_ROLE_USER, HSM_ROLE_ADMIN, "admin-pin-B2",
			   "user-pin-gamma"), HSM_SC_INVALID_FIELD,
		 "admin cannot set a User PIN");
	check_st(ta_setpin(f, 2, HSM_ROLE_SO, HSM_ROLE_USER, "user-pin-beta",
			   "so-pin-delta"), HSM_SC_INVALID_FIELD,
		 "USER cannot set the SO PIN");
	check_st(ta_setpin(f, 2, HSM_ROLE_ADMIN, HSM_ROLE_SO, "so-pin-alpha",
			   "admin-pin-C3"), HSM_SC_INVALID_FIELD,
		 "SO cannot set the admin PIN");

	/* one failure survives a restart, success resets it */
	st = ta_login(f, 2, HSM_ROLE_USER, "wrong-pin-xx", &res);
	check(st == HSM_SC_PIN_INCORRECT && res == 2,
	      "wrong User PIN: 2 tries left (%llu)", (unsigned long long)res);
	/* the counter is on disk before the answer: a copy of the files
	 * taken now (the card still running) already holds it */
	snprintf(ks2, sizeof(ks2), "%s/copy", ta_dir);
	snprintf(mk2, sizeof(mk2), "%s/copy.mk", ta_dir);
	snprintf(log2, sizeof(log2), "%s/copy.audit", ta_dir);
	ok = ta_copy(ta_ks, ks2) && ta_copy(ta_mk, mk2) &&
	     ta_copy(ta_log, log2);
	snprintf(ks2, sizeof(ks2), "%s/keys.gen", ta_dir);
	snprintf(mk2, sizeof(mk2), "%s/copy.gen", ta_dir);
	ok = ok && ta_copy(ks2, mk2);
	snprintf(ks2, sizeof(ks2), "%s/copy", ta_dir);
	g = ok ? ta_card(ks2) : NULL;
	check(g && ta_info(g, 2, &pi) == 0 && pi.user_failed == 1,
	      "a copy of the store taken right after the answer has the count");
	hsm_fw_free(g);
	f = ta_restart(f);
	*fp = f;
	if (!check(f != NULL, "restart"))
		return;
	check(ta_info(f, 2, &pi) == 0 && pi.user_failed == 1,
	      "failed count 1 survives a restart");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-beta", NULL),
		 HSM_SC_SUCCESS, "right PIN");
	check(ta_info(f, 2, &pi) == 0 && pi.user_failed == 0,
	      "success resets the count");

	/* brute force: 3 wrong, then the right one is refused */
	ok = true;
	for (i = 0; i < 3; i++) {
		st = ta_login(f, 2, HSM_ROLE_USER, ta_pins[i], &res);
		ok = ok && st == HSM_SC_PIN_INCORRECT && res == 2u - i;
	}
	check(ok, "3 wrong User PINs: PIN_INCORRECT with 2, 1, 0 tries left");
	check(ta_info(f, 2, &pi) == 0 && pi.user_failed == 3 &&
	      (le32toh(pi.flags) & HSM_PART_S_USER_LOCKED) &&
	      !(le32toh(pi.flags) & HSM_PART_S_SO_LOCKED),
	      "User locked, SO not");
	check(ta_login(f, 2, HSM_ROLE_USER, "user-pin-beta", &res) ==
	      HSM_SC_PIN_LOCKED && res == 0, "right User PIN: PIN_LOCKED");
	check_st(ta_setpin(f, 2, HSM_ROLE_USER, 0, "user-pin-beta",
			   "user-pin-gamma"), HSM_SC_PIN_LOCKED,
		 "locked User cannot change its PIN");
	for (i = 0; i < 20; i++)
		if (ta_login(f, 2, HSM_ROLE_USER, ta_pins[i % 10], NULL) !=
		    HSM_SC_PIN_LOCKED)
			break;
	check(i == 20, "20 more guesses: all PIN_LOCKED");
	f = ta_restart(f);
	*fp = f;
	if (!check(f != NULL, "restart while locked"))
		return;
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-beta", NULL),
		 HSM_SC_PIN_LOCKED, "still locked after a restart");
	check_st(ta_login(f, 2, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_SUCCESS, "SO still logs in");
	check_st(ta_setpin(f, 2, HSM_ROLE_USER, HSM_ROLE_SO, "wrong-pin-xx",
			   "user-pin-gamma"), HSM_SC_PIN_INCORRECT,
		 "unlock with a wrong SO PIN");
	check_st(ta_setpin(f, 2, HSM_ROLE_USER, HSM_ROLE_SO, "so-pin-alpha",
			   "user-pin-gamma"), HSM_SC_SUCCESS,
		 "SO resets the User PIN");
	check(!(ta_flags(f, 2) & HSM_PART_S_USER_LOCKED),
	      "User unlocked");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-gamma", NULL),
		 HSM_SC_SUCCESS, "User logs in with the new PIN");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-beta", NULL),
		 HSM_SC_PIN_INCORRECT, "the old User PIN is refused");
	check_st(ta_setpin(f, 2, HSM_ROLE_USER, 0, "user-pin-gamma",
			   "user-pin-eps"), HSM_SC_SUCCESS,
		 "User changes its own PIN");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-eps", NULL),
		 HSM_SC_SUCCESS, "User logs in with its own new PIN");

	/* the SO: locked by wrong PINs (also through SET_PIN), admin resets */
	ta_login(f, 2, HSM_ROLE_SO, "wrong-pin-xx", NULL);
	ta_setpin(f, 2, HSM_ROLE_USER, HSM_ROLE_SO, "wrong-pin-xx",
		  "user-pin-beta");
	check(ta_login(f, 2, HSM_ROLE_SO, "wrong-pin-xx", &res) ==
	      HSM_SC_PIN_INCORRECT && res == 0,
	      "third wrong SO PIN (one through SET_PIN): 0 left");
	check_st(ta_login(f, 2, HSM_ROLE_SO, "so-pin-alpha", NULL),
		 HSM_SC_PIN_LOCKED, "SO locked");
	check_st(ta_setpin(f, 2, HSM_ROLE_SO, 0, "so-pin-alpha",
			   "so-pin-delta"), HSM_SC_PIN_LOCKED,
		 "locked SO cannot change its PIN");
	check_st(ta_setpin(f, 2, HSM_ROLE_SO, HSM_ROLE_ADMIN, "admin-pin-B2",
			   "so-pin-delta"), HSM_SC_SUCCESS,
		 "admin resets the SO PIN");
	check_st(ta_login(f, 2, HSM_ROLE_SO, "so-pin-delta", NULL),
		 HSM_SC_SUCCESS, "SO logs in with the new PIN");
	check_st(ta_setpin(f, 2, HSM_ROLE_SO, 0, "so-pin-delta",
			   "so-pin-alpha"), HSM_SC_SUCCESS,
		 "SO changes its own PIN");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-eps", NULL),
		 HSM_SC_SUCCESS, "User unaffected by the SO reset");

	/* partition 0: initialized by the admin, then reset */
	check_st(ta_setpin(f, 0, HSM_ROLE_SO, HSM_ROLE_ADMIN, "admin-pin-B2",
			   "so0-pin-eta"), HSM_SC_SUCCESS,
		 "admin gives partition 0 an SO PIN");
	check(ta_flags(f, 0) & HSM_PART_S_INITIALIZED,
	      "partition 0 initialized");
	check_st(ta_gen(f, 0, HSM_KEYF_PERSISTENT, &p), HSM_SC_SUCCESS,
		 "persistent key in partition 0");
	check(ta_delete(f, 0, HSM_AUTH_F_RESET, "admin-pin-B2", &res) == 0 &&
	      res == 1, "partition 0 reset: its key destroyed");
	check(ta_info(f, 0, &pi) == 0 &&
	      le32toh(pi.flags) == HSM_PART_S_EXISTS &&
	      !strcmp(pi.label, "default") && !le32toh(pi.nr_keys) &&
	      ta_attrs(f, p) == HSM_SC_INVALID_HANDLE,
	      "partition 0 uninitialized again, no keys");
	check_st(ta_login(f, 0, HSM_ROLE_SO, "so0-pin-eta", NULL),
		 HSM_SC_PIN_NOT_SET, "its SO PIN is gone");
	fh_reset(&fh);
}

static void test_auth_audit(struct hsm_fw *f, long from)
{
	struct hsm_audit_rec *r = NULL;
	long n, i;
	uint32_t d;

	n = ta_audit(f, &r);
	if (!check(n > from, "audit log read (%ld records)", n))
		return;
	check(ta_chain_ok(r, n), "audit log chained and in sequence");
	i = ta_find(r, n, from, HSM_AUDIT_EV_PART_CREATE, 2);
	check(i >= 0 && !strcmp(r[i].label, "payments") &&
	      le32toh(r[i].detail) == HSM_AUDIT_AUTH(HSM_ROLE_ADMIN, 3) &&
	      r[i].opcode == HSM_ADM_PART_CREATE && !r[i].status,
	      "PART_CREATE record: partition 2, label, admin, limit 3");
	i = ta_find(r, n, from, HSM_AUDIT_EV_PART_DELETE, 0);
	check(i >= 0 && le32toh(r[i].detail) ==
	      HSM_AUDIT_AUTH(HSM_ROLE_ADMIN, 1) &&
	      r[i].opcode == HSM_ADM_PART_DELETE,
	      "PART_DELETE record of the partition 0 reset");
	i = ta_find(r, n, from, HSM_AUDIT_EV_LOGIN, 2);
	check(i >= 0 && le32toh(r[i].detail) ==
	      HSM_AUDIT_AUTH(HSM_ROLE_USER, 0) &&
	      r[i].opcode == HSM_ADM_LOGIN && !r[i].status,
	      "LOGIN record: partition 2, role USER");
	i = ta_find(r, n, from, HSM_AUDIT_EV_LOCKOUT, 2);
	d = i >= 0 ? le32toh(r[i].detail) : 0;
	check(i >= 0 && HSM_AUDIT_AUTH_ROLE(d) == HSM_ROLE_SO &&
	      HSM_AUDIT_AUTH_N(d) == 3 &&
	      le16toh(r[i].status) == HSM_SC_PIN_LOCKED,
	      "LOCKOUT record: partition 2, SO, 3 failures");
	check(ta_count(r, n, from, HSM_AUDIT_EV_LOCKOUT) == 2,
	      "two lockouts recorded (User and SO)");
	i = ta_find(r, n, from, HSM_AUDIT_EV_LOGIN_FAIL, 1);
	check(i >= 0 && le16toh(r[i].status) == HSM_SC_INVALID_FIELD &&
	      HSM_AUDIT_AUTH_ROLE(le32toh(r[i].detail)) == HSM_ROLE_SO,
	      "refused login to partition 1 recorded");
	i = ta_find(r, n, from, HSM_AUDIT_EV_LOGIN_FAIL, HSM_AUDIT_NO_PART);
	check(i >= 0 && HSM_AUDIT_AUTH_ROLE(le32toh(r[i].detail)) ==
	      HSM_ROLE_ADMIN &&
	      le16toh(r[i].status) == HSM_SC_PIN_INCORRECT,
	      "wrong admin PIN recorded card-wide");
	check(ta_count(r, n, from, HSM_AUDIT_EV_LOGIN_FAIL) >= 30,
	      "every refused PIN recorded (%ld)",
	      ta_count(r, n, from, HSM_AUDIT_EV_LOGIN_FAIL));
	i = ta_find(r, n, from, HSM_AUDIT_EV_UNLOCK, 2);
	check(i >= 0 && r[i].opcode == HSM_ADM_SET_PIN &&
	      HSM_AUDIT_AUTH_ROLE(le32toh(r[i].detail)) == HSM_ROLE_SO &&
	      HSM_AUDIT_AUTH_N(le32toh(r[i].detail)) == 1,
	      "UNLOCK record: admin reset the locked SO");
	i = ta_find(r, n, from, HSM_AUDIT_EV_PART_CHANGE, HSM_AUDIT_NO_PART);
	check(i >= 0 && HSM_AUDIT_AUTH_ROLE(le32toh(r[i].detail)) ==
	      HSM_ROLE_ADMIN, "PART_CHANGE record: admin PIN changed");
	i = ta_find(r, n, from, HSM_AUDIT_EV_INIT, TA_ANY);
	check(i >= 0 && r[i].opcode == HSM_ADM_CARD_INIT &&
	      le32toh(r[i].detail) == HSM_AUDIT_INIT_REINIT,
	      "INIT record of CARD_INIT");
	check(!ta_pin_in((const uint8_t *)r, n * sizeof(*r)),
	      "no PIN in any audit record");
	free(r);
	fh_reset(&fh);
}

static void test_auth_files(void)
{
	size_t len = 0;
	uint8_t *b;
	uint32_t ver = 0;
	const char *hit;
	const char *files[] = { ta_ks, ta_mk, ta_log };
	unsigned int i;
	bool clean = true;

	for (i = 0; i < 3; i++) {
		b = ta_read(files[i], &len);
		if (!b || ta_pin_in(b, len)) {
			printf("# %s: %s\n", files[i], b ? "holds a PIN" :
							   "unreadable");
			clean = false;
		}
		free(b);
	}
	check(clean, "no clear PIN in the store, master key or audit files");
	b = ta_unseal(ta_ks, ta_mk, &len, &ver);
	check(b && ver == 6, "store opens with OpenSSL, version 6");
	hit = b ? ta_pin_in(b, len) : "?";
	check(b && !hit, "no clear PIN in the decrypted store (%s)",
	      hit ? hit : "none");
	check(b && memmem(b, len, "payments", 8),
	      "the decrypted store holds the partition label");
	free(b);
}

/* A version 2 store (what the previous firmware wrote) still loads. */
static void test_auth_v2(void)
{
	char dir[] = "/tmp/hsm-v2-XXXXXX", ks[64], mk[64];
	uint8_t *plain, card[16], key[16] = "v2-store-key-16", in[16] = "b",
		out1[16], out2[16];
	uint32_t ver = 0, sec = 0, want;
	struct hsm_fw *f;
	uint64_t h;
	size_t len = 0, flen = 0;
	uint8_t *file;

	if (!mkdtemp(dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(ks, sizeof(ks), "%s/keys", dir);
	snprintf(mk, sizeof(mk), "%s/keys.mk", dir);
	f = ta_card(ks);
	if (!check(f != NULL, "card for the version 2 test"))
		return;
	ta_gen(f, 1, HSM_KEYF_PERSISTENT, &h);
	hsm_fw_free(f);
	fh_reset(&fh);
	/* factory section: admin pin + n + two partitions */
	want = 56 + 4 + 2 * (20 + 64 + 2 * 56);
	plain = ta_unseal(ks, mk, &len, &ver);
	file = ta_read(ks, &flen);
	if (plain && len > want + 4)
		memcpy(&sec, plain + len - want - 4, 4);
	if (!check(plain && file && ver == 6 && le32toh(sec) == want,
		   "version 6 store ends with a %u-byte partition section",
		   want)) {
		free(plain);
		free(file);
		return;
	}
	/* version 1..4 key records have no key ID */
	plain = ti_strip_ids(plain, &len);
	if (!check(plain != NULL, "key records in the version 2 layout")) {
		free(file);
		return;
	}
	memcpy(card, file + 12, 16);
	check(ta_seal(ks, mk, plain, len - want - 4, 2, card),
	      "store rewritten as version 2");
	f = ta_card(ks);
	check(f != NULL, "a version 2 store loads");
	if (f) {
		check(ta_attrs(f, h) == 0 &&
		      ta_flags(f, 0) == HSM_PART_S_EXISTS &&
		      !ta_card_flags(f),
		      "its key is back, the card is a factory card");
		check_st(ta_import(f, 0, key, &h), HSM_SC_SUCCESS,
			 "import on the loaded version 2 card");
		ta_ecb(f, h, in, out1);
		ssl_ecb(key, in, out2);
		check(!memcmp(out1, out2, 16), "and the key works");
		hsm_fw_free(f);
	}
	fh_reset(&fh);
	free(plain);
	plain = ta_unseal(ks, mk, &len, &ver);
	check(plain && ver == 6, "the next save writes version 6");
	/* an unknown partition number in the section: refused as a whole */
	if (plain) {
		memcpy(&sec, plain + len - want - 4, 4);
		/* second partition record's number: make it 20 */
		want = htole32(20);
		memcpy(plain + len - (20 + 64 + 2 * 56), &want, 4);
		ta_seal(ks, mk, plain, len, 6, card);
		f = ta_card(ks);
		check(!f, "a section naming partition 20 is refused");
		hsm_fw_free(f);
	}
	free(plain);
	free(file);
	unlink(ks);
	unlink(mk);
	snprintf(ks, sizeof(ks), "%s/keys.gen", dir);
	unlink(ks);
	snprintf(ks, sizeof(ks), "%s/keys.audit", dir);
	unlink(ks);
	rmdir(dir);
}

static void test_auth_tamper(struct hsm_fw **fp)
{
	struct hsm_fw *f = *fp;
	uint8_t key[16] = "tamper-test-key", in[16] = "block after init",
		out1[16], out2[16];
	struct hsm_auth_req r;
	uint64_t h = 0, res;
	struct hsm_sqe s;

	check_st(ta_gen(f, 5, HSM_KEYF_PERSISTENT, &h), HSM_SC_SUCCESS,
		 "key in partition 5 before tamper");
	hsm_fw_tamper(f);
	check(ta_card_flags(f) == HSM_CARD_S_TAMPERED,
	      "tampered: no admin PIN, TAMPERED in PART_INFO");
	check(!ta_flags(f, 5) && !ta_flags(f, 2) &&
	      ta_flags(f, 0) == HSM_PART_S_EXISTS,
	      "tampered: only partitions 0 and 1, without PINs");
	check_st(ta_gen(f, 0, 0, &h), HSM_SC_TAMPERED, "generate: TAMPERED");
	check_st(ta_login(f, 2, HSM_ROLE_USER, "user-pin-eps", NULL),
		 HSM_SC_TAMPERED, "LOGIN: TAMPERED");
	check_st(ta_create(f, HSM_PART_ANY, "x", "admin-pin-B2",
			   "so-pin-alpha", 0, &res), HSM_SC_TAMPERED,
		 "PART_CREATE: TAMPERED");
	ta_req(&r, 0, HSM_ROLE_ADMIN, NULL, "admin-pin-C3");
	check_st(ta_send(f, HSM_ADM_CARD_INIT, &r, NULL), HSM_SC_SUCCESS,
		 "CARD_INIT after tamper, no current PIN");
	check(!hsm_fw_tampered(f) &&
	      ta_card_flags(f) == HSM_CARD_S_ADMIN_SET,
	      "tamper cleared, admin PIN set");
	check_st(ta_import(f, 0, key, &h), HSM_SC_SUCCESS,
		 "import after re-initialization");
	check(ta_ecb(f, h, in, out1) == 0 && (ssl_ecb(key, in, out2), 1) &&
	      !memcmp(out1, out2, 16),
	      "the key encrypts like OpenSSL after re-initialization");
	check_st(ta_gen(f, 0, HSM_KEYF_PERSISTENT, &h), HSM_SC_SUCCESS,
		 "persistent key after re-initialization");
	ta_sqe(&s, HSM_ADM_AUDIT_PUBKEY);
	s.dst = htole64(fh_alloc(&fh, 256));
	s.dst_len = htole32(256);
	check_st(ta_adm(f, &s, NULL), HSM_SC_SUCCESS,
		 "a new audit key after re-initialization");
	f = ta_restart(f);
	*fp = f;
	if (!check(f != NULL, "restart after the re-initialization"))
		return;
	check(ta_attrs(f, h) == 0 && ta_card_flags(f) == HSM_CARD_S_ADMIN_SET,
	      "persistent key and admin PIN survive the restart");
	check_st(ta_init(f, "admin-pin-B2", "admin-pin-A1"),
		 HSM_SC_PIN_INCORRECT, "the pre-tamper admin PIN is gone");
	fh_reset(&fh);
}

/* A locked admin PIN: only tamper and CARD_INIT get the card back. */
static void test_auth_admin_lockout(void)
{
	struct hsm_fw *f = ta_card(NULL);
	uint64_t res = 0;
	uint16_t st;
	int i;
	bool ok = true;

	if (!check(f != NULL, "volatile card for the admin lockout"))
		return;
	check_st(ta_init(f, NULL, "admin-pin-A1"), HSM_SC_SUCCESS,
		 "CARD_INIT (volatile)");
	for (i = 0; i < HSM_ADMIN_MAX_FAIL; i++) {
		st = ta_create(f, HSM_PART_ANY, "p", ta_pins[3 + i % 7],
			       "so-pin-alpha", 0, &res);
		ok = ok && st == HSM_SC_PIN_INCORRECT &&
		     res == (uint64_t)(HSM_ADMIN_MAX_FAIL - 1 - i);
	}
	check(ok, "%d wrong admin PINs count down to 0",
	      HSM_ADMIN_MAX_FAIL);
	check(ta_card_flags(f) ==
	      (HSM_CARD_S_ADMIN_SET | HSM_CARD_S_ADMIN_LOCKED),
	      "PART_INFO: admin locked");
	check_st(ta_create(f, HSM_PART_ANY, "p", "admin-pin-A1",
			   "so-pin-alpha", 0, &res), HSM_SC_PIN_LOCKED,
		 "PART_CREATE with the right admin PIN: PIN_LOCKED");
	check_st(ta_init(f, "admin-pin-A1", "admin-pin-B2"), HSM_SC_PIN_LOCKED,
		 "CARD_INIT with the right admin PIN: PIN_LOCKED");
	hsm_fw_tamper(f);
	check_st(ta_init(f, NULL, "admin-pin-B2"), HSM_SC_SUCCESS,
		 "tamper, then CARD_INIT");
	check_st(ta_create(f, HSM_PART_ANY, "p", "admin-pin-B2",
			   "so-pin-alpha", 0, &res), HSM_SC_SUCCESS,
		 "the new admin PIN works");
	hsm_fw_free(f);
	fh_reset(&fh);
}

/* The default iteration count: one check takes 20-50 ms on this host. */
static void test_auth_timing(void)
{
	struct hsm_fw_config c = ta_cfg;
	struct timespec a, b;
	struct hsm_fw *f;
	double ms;
	char *err = NULL;

	c.pin_iterations = 0;
	c.keystore_path = NULL;
	f = hsm_fw_new(&c, &err);
	free(err);
	if (!check(f != NULL, "volatile card, default PIN iterations"))
		return;
	check_st(ta_init(f, NULL, "admin-pin-A1"), HSM_SC_SUCCESS,
		 "CARD_INIT on a volatile card");
	/* CPU time: a loaded machine stretches the wall-clock time */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	check_st(ta_setpin(f, 0, HSM_ROLE_SO, HSM_ROLE_ADMIN, "admin-pin-A1",
			   "so0-pin-eta"), HSM_SC_SUCCESS,
		 "SET_PIN (one check, one new hash)");
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	check(ms / 2 > 5 && ms / 2 < 2000,
	      "one PIN hash with the default count: %.1f ms", ms / 2);
	clock_gettime(CLOCK_MONOTONIC, &a);
	check_st(ta_login(f, 0, HSM_ROLE_SO, "so0-pin-eta", NULL),
		 HSM_SC_SUCCESS, "LOGIN on a volatile card");
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	printf("# LOGIN with the default iteration count: %.1f ms\n", ms);
	hsm_fw_free(f);
	fh_reset(&fh);
}

void test_auth(const struct hsm_fw_config *base)
{
	struct hsm_audit_rec *r = NULL;
	struct hsm_fw *f;
	long from;

	ta_cfg = *base;
	ta_cfg.pin_iterations = TA_ITER;
	snprintf(ta_dir, sizeof(ta_dir), "/tmp/hsm-auth-XXXXXX");
	if (!mkdtemp(ta_dir)) {
		check(false, "mkdtemp");
		return;
	}
	snprintf(ta_ks, sizeof(ta_ks), "%s/keys", ta_dir);
	snprintf(ta_mk, sizeof(ta_mk), "%s/keys.mk", ta_dir);
	snprintf(ta_log, sizeof(ta_log), "%s/keys.audit", ta_dir);
	f = ta_card(ta_ks);
	if (!check(f != NULL, "card with a key store for the PIN tests"))
		return;
	from = ta_audit(f, &r);
	free(r);
	test_auth_factory(f);
	test_auth_admin(&f);
	if (f)
		test_auth_fields(f);
	if (f)
		test_auth_partitions(&f);
	if (f)
		test_auth_login(&f);
	if (f)
		test_auth_audit(f, from);
	test_auth_files();
	if (f)
		test_auth_tamper(&f);
	hsm_fw_free(f);
	fh_reset(&fh);
	test_auth_v2();
	test_auth_admin_lockout();
	test_auth_timing();
	/* leave no PIN files behind */
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", ta_dir);
		if (system(cmd))
			printf("# could not remove %s\n", ta_dir);
	}
}
