// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: partitions, roles and PINs.
 *
 * The card holds up to HSM_NR_PARTITIONS partitions; 0 (default) and 1
 * (kernel) always exist.  Each partition has a Security Officer and a User
 * PIN, a failed-login counter and a locked flag per role and a limit of
 * failed logins (1..15, default 5).  A card-wide administrator PIN (limit
 * HSM_ADMIN_MAX_FAIL) guards CARD_INIT, PART_CREATE, PART_DELETE and the
 * reset of an SO PIN.  Partition 1 has no PINs and never accepts a login.
 *
 * PINs are kept as PBKDF2-HMAC-SHA256(pin, 16-byte random salt, iter)
 * with the iteration count beside the hash, compared in constant time.
 * Clear PINs live only in wiped buffers for the time of one command; they
 * are never logged or persisted.
 *
 * Every change of a counter, lock, PIN or partition is sealed in the key
 * store (hsm_store_save()) before the command completes, so restarting
 * the card cannot reset a lockout.  Every outcome is in the audit log.
 *
 * The card keeps no login sessions: LOGIN only says whether a PIN is
 * right.  Which file descriptor may use which partition is the driver's
 * business (see Documentation/hsmcard/hw.rst, "Partitions, roles and
 * PINs").
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hsm_fw_int.h"

_Static_assert(sizeof(struct hsm_auth_req) == 256, "auth req size");
_Static_assert(sizeof(struct hsm_part_info) == 128, "part info size");

#define HSM_AUTH_REQ_SIZE	sizeof(struct hsm_auth_req)

static const char *const hsm_part_default_label[2] = { "default", "kernel" };

/* ---- state ---- */

static void hsm_part_default(struct hsm_part *p, unsigned int n)
{
	OPENSSL_cleanse(p, sizeof(*p));
	p->exists = true;
	p->max_fail = HSM_MAX_FAIL_DEFAULT;
	p->created = (uint64_t)time(NULL);
	strcpy(p->label, hsm_part_default_label[n]);
}

/* A factory card: partitions 0 and 1, no PIN anywhere. */
void hsm_auth_defaults(struct hsm_auth_state *a)
{
	OPENSSL_cleanse(a, sizeof(*a));
	hsm_part_default(&a->parts[HSM_DEFAULT_PARTITION],
			 HSM_DEFAULT_PARTITION);
	hsm_part_default(&a->parts[HSM_KERNEL_PARTITION],
			 HSM_KERNEL_PARTITION);
}

void hsm_auth_init(struct hsm_fw *fw)
{
	pthread_mutex_init(&fw->auth_lock, NULL);
	hsm_auth_defaults(&fw->auth);
	fw->pin_iter = fw->cfg.pin_iterations ? fw->cfg.pin_iterations :
						HSM_FW_PIN_ITER;
	if (fw->pin_iter > HSM_FW_PIN_ITER_MAX)
		fw->pin_iter = HSM_FW_PIN_ITER_MAX;
}

void hsm_auth_fini(struct hsm_fw *fw)
{
	OPENSSL_cleanse(&fw->auth, sizeof(fw->auth));
	pthread_mutex_destroy(&fw->auth_lock);
}

/* Tamper: the PIN hashes go with the store that held them. */
void hsm_auth_zeroize(struct hsm_fw *fw)
{
	pthread_mutex_lock(&fw->auth_lock);
	hsm_auth_defaults(&fw->auth);
	pthread_mutex_unlock(&fw->auth_lock);
}

bool hsm_part_exists(struct hsm_fw *fw, uint32_t part)
{
	bool ret;

	if (part >= HSM_NR_PARTITIONS)
		return false;
	pthread_mutex_lock(&fw->auth_lock);
	ret = fw->auth.parts[part].exists;
	pthread_mutex_unlock(&fw->auth_lock);
	return ret;
}

/* ---- sealed store section ---- */

/*
 * Layout (little endian), appended to the store payload from version 3:
 *   pin admin
 *   le32 n, then n times:
 *     le32 number, le32 flags, le16 max_fail, le16 0, le64 created,
 *     label[64], pin so, pin user
 * pin = u8 set, u8 locked, u8 failed, u8 0, le32 iter, salt[16], hash[32]
 */
#define HSM_PIN_REC		56
#define HSM_PART_REC		(20 + HSM_LABEL_LEN + 2 * HSM_PIN_REC)

static uint8_t *pin_put(uint8_t *q, const struct hsm_pin *pn)
{
	uint32_t le = htole32(pn->iter);

	q[0] = pn->set;
	q[1] = pn->locked;
	q[2] = pn->failed;
	q[3] = 0;
	memcpy(q + 4, &le, 4);
	memcpy(q + 8, pn->salt, 16);
	memcpy(q + 24, pn->hash, 32);
	return q + HSM_PIN_REC;
}

static bool pin_get(const uint8_t *q, struct hsm_pin *pn, unsigned int max)
{
	uint32_t le;

	memcpy(&le, q + 4, 4);
	pn->set = q[0];
	pn->locked = q[1];
	pn->failed = q[2];
	pn->iter = le32toh(le);
	memcpy(pn->salt, q + 8, 16);
	memcpy(pn->hash, q + 24, 32);
	if (q[0] > 1 || q[1] > 1 || q[3] || pn->failed > max)
		return false;
	if (!pn->set)
		return !pn->locked && !pn->failed && !pn->iter;
	if (pn->locked != (pn->failed >= max))
		return false;
	return pn->iter && pn->iter <= HSM_FW_PIN_ITER_MAX;
}

int hsm_auth_store_get(struct hsm_fw *fw, uint8_t **bufp, size_t *lenp)
{
	const struct hsm_auth_state *a = &fw->auth;
	uint32_t n = 0, le;
	uint64_t le64;
	uint16_t le16;
	size_t len;
	uint8_t *buf, *q;
	unsigned int i;

	len = HSM_PIN_REC + 4 + HSM_NR_PARTITIONS * HSM_PART_REC;
	buf = OPENSSL_zalloc(len);
	if (!buf)
		return -1;
	pthread_mutex_lock(&fw->auth_lock);
	q = pin_put(buf, &a->admin) + 4;
	for (i = 0; i < HSM_NR_PARTITIONS; i++) {
		const struct hsm_part *p = &a->parts[i];

		if (!p->exists)
			continue;
		le = htole32(i);
		memcpy(q, &le, 4);
		le = htole32(p->flags);
		memcpy(q + 4, &le, 4);
		le16 = htole16(p->max_fail);
		memcpy(q + 8, &le16, 2);
		le64 = htole64(p->created);
		memcpy(q + 12, &le64, 8);
		memcpy(q + 20, p->label, HSM_LABEL_LEN);
		q = pin_put(q + 20 + HSM_LABEL_LEN, &p->so);
		q = pin_put(q, &p->user);
		n++;
	}
	pthread_mutex_unlock(&fw->auth_lock);
	le = htole32(n);
	memcpy(buf + HSM_PIN_REC, &le, 4);
	*bufp = buf;
	*lenp = HSM_PIN_REC + 4 + n * HSM_PART_REC;
	return 0;
}

static bool label_ok(const char *label, bool empty_ok)
{
	const char *nul = memchr(label, 0, HSM_LABEL_LEN);
	size_t i;

	if (!nul || (!empty_ok && nul == label))
		return false;
	for (i = nul - label; i < HSM_LABEL_LEN; i++)
		if (label[i])
			return false;
	return true;
}

/* Parse and check a whole section; @a is only meaningful on success. */
int hsm_auth_store_parse(const uint8_t *p, size_t len,
			 struct hsm_auth_state *a)
{
	uint32_t n, num, i, j;
	uint64_t le64;
	uint16_t le16;

	memset(a, 0, sizeof(*a));
	if (len < HSM_PIN_REC + 4)
		return -1;
	if (!pin_get(p, &a->admin, HSM_ADMIN_MAX_FAIL))
		return -1;
	memcpy(&n, p + HSM_PIN_REC, 4);
	n = le32toh(n);
	if (n > HSM_NR_PARTITIONS ||
	    len != HSM_PIN_REC + 4 + (size_t)n * HSM_PART_REC)
		return -1;
	p += HSM_PIN_REC + 4;
	for (i = 0; i < n; i++, p += HSM_PART_REC) {
		struct hsm_part *pt;

		memcpy(&num, p, 4);
		num = le32toh(num);
		if (num >= HSM_NR_PARTITIONS || a->parts[num].exists)
			return -1;
		pt = &a->parts[num];
		pt->exists = true;
		memcpy(&pt->flags, p + 4, 4);
		pt->flags = le32toh(pt->flags);
		memcpy(&le16, p + 8, 2);
		pt->max_fail = le16toh(le16);
		memcpy(&le16, p + 10, 2);
		memcpy(&le64, p + 12, 8);
		pt->created = le64toh(le64);
		memcpy(pt->label, p + 20, HSM_LABEL_LEN);
		if (le16 || pt->flags || pt->max_fail < 1 ||
		    pt->max_fail > HSM_MAX_FAIL_MAX ||
		    !label_ok(pt->label, false) ||
		    !pin_get(p + 20 + HSM_LABEL_LEN, &pt->so, pt->max_fail) ||
		    !pin_get(p + 20 + HSM_LABEL_LEN + HSM_PIN_REC, &pt->user,
			     pt->max_fail))
			return -1;
		if (num == HSM_KERNEL_PARTITION &&
		    (pt->so.set || pt->user.set))
			return -1;
	}
	if (!a->parts[HSM_DEFAULT_PARTITION].exists ||
	    !a->parts[HSM_KERNEL_PARTITION].exists)
		return -1;
	for (i = 0; i < HSM_NR_PARTITIONS; i++)
		for (j = i + 1; j < HSM_NR_PARTITIONS; j++)
			if (a->parts[i].exists && a->parts[j].exists &&
			    !strcmp(a->parts[i].label, a->parts[j].label))
				return -1;
	return 0;
}

void hsm_auth_store_set(struct hsm_fw *fw, const struct hsm_auth_state *a)
{
	pthread_mutex_lock(&fw->auth_lock);
	fw->auth = *a;
	pthread_mutex_unlock(&fw->auth_lock);
}

/* ---- PIN hashes ---- */

static int pin_hash(const uint8_t *pin, size_t len, const uint8_t *salt,
		    uint32_t iter, uint8_t *out)
{
	return PKCS5_PBKDF2_HMAC((const char *)pin, (int)len, salt, 16,
				 (int)iter, EVP_sha256(), 32, out) == 1 ?
	       0 : -1;
}

/* A new hash for @pin; @pn stays as it was on failure. */
static uint16_t pin_make(struct hsm_fw *fw, const uint8_t *pin, size_t len,
			 struct hsm_pin *pn)
{
	struct hsm_pin n;

	memset(&n, 0, sizeof(n));
	n.set = true;
	n.iter = fw->pin_iter;
	if (RAND_bytes(n.salt, sizeof(n.salt)) != 1)
		return HSM_SC_RNG_FAILURE;
	if (pin_hash(pin, len, n.salt, n.iter, n.hash)) {
		OPENSSL_cleanse(&n, sizeof(n));
		return HSM_SC_INTERNAL;
	}
	*pn = n;
	OPENSSL_cleanse(&n, sizeof(n));
	return HSM_SC_SUCCESS;
}

/* The PIN slot of @role in @part (auth_lock held); NULL if none. */
static struct hsm_pin *pin_slot(struct hsm_fw *fw, uint32_t part,
				uint16_t role, unsigned int *max)
{
	struct hsm_part *p;

	if (role == HSM_ROLE_ADMIN) {
		*max = HSM_ADMIN_MAX_FAIL;
		return &fw->auth.admin;
	}
	if (part >= HSM_NR_PARTITIONS || part == HSM_KERNEL_PARTITION)
		return NULL;
	p = &fw->auth.parts[part];
	if (!p->exists)
		return NULL;
	*max = p->max_fail;
	if (role == HSM_ROLE_SO)
		return &p->so;
	if (role == HSM_ROLE_USER)
		return &p->user;
	return NULL;
}

static uint32_t au_part(uint16_t role, uint32_t part)
{
	return role == HSM_ROLE_ADMIN ? HSM_AUDIT_NO_PART : part;
}

/* Record a refused PIN; the command fails with INTERNAL if it cannot. */
static uint16_t auth_deny(struct hsm_cmd *c, uint16_t st, uint32_t part,
			  uint16_t role, unsigned int failed)
{
	if (hsm_audit_auth(c->fw, HSM_AUDIT_EV_LOGIN_FAIL, st, c->opcode,
			   au_part(role, part), HSM_AUDIT_AUTH(role, failed),
			   NULL))
		return HSM_SC_INTERNAL;
	return st;
}

/**
 * auth_check() - check a PIN presented for a role, counting failures
 * @c:    the command (for the audit record)
 * @part: partition (ignored for HSM_ROLE_ADMIN)
 * @role: whose PIN @pin is meant to be
 * @pin:  the PIN, @len bytes
 *
 * A wrong PIN increments the role's counter and locks the role at its
 * limit; the new counter is sealed in the key store before this returns,
 * then the refusal (and a lockout) is recorded.  A right PIN resets the
 * counter.  A locked role is refused without looking at the PIN.
 *
 * Return: SUCCESS, PIN_NOT_SET, PIN_LOCKED, PIN_INCORRECT (c->result =
 * tries left), INVALID_FIELD (no such partition or role), TAMPERED or
 * INTERNAL.
 */
static uint16_t auth_check(struct hsm_cmd *c, uint32_t part, uint16_t role,
			   const uint8_t *pin, size_t len)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_pin *pn, copy;
	uint8_t got[32];
	unsigned int max = 0, failed;
	bool ok, locked, changed;
	uint16_t st;

	pthread_mutex_lock(&fw->auth_lock);
	pn = pin_slot(fw, part, role, &max);
	if (!pn) {
		pthread_mutex_unlock(&fw->auth_lock);
		return HSM_SC_INVALID_FIELD;
	}
	copy = *pn;
	pthread_mutex_unlock(&fw->auth_lock);
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	if (!copy.set) {
		st = auth_deny(c, HSM_SC_PIN_NOT_SET, part, role, 0);
		goto out;
	}
	if (copy.locked) {
		st = auth_deny(c, HSM_SC_PIN_LOCKED, part, role, copy.failed);
		goto out;
	}
	if (pin_hash(pin, len, copy.salt, copy.iter, got)) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	ok = !CRYPTO_memcmp(got, copy.hash, sizeof(got));

	pthread_mutex_lock(&fw->auth_lock);
	pn = pin_slot(fw, part, role, &max);
	if (!pn || !pn->set || hsm_fw_is_tampered(fw)) {
		/* tampered while the hash ran */
		pthread_mutex_unlock(&fw->auth_lock);
		st = HSM_SC_TAMPERED;
		goto out;
	}
	changed = ok ? pn->failed != 0 : true;
	if (ok) {
		pn->failed = 0;
	} else {
		if (pn->failed < max)
			pn->failed++;
		pn->locked = pn->failed >= max;
	}
	failed = pn->failed;
	locked = pn->locked;
	pthread_mutex_unlock(&fw->auth_lock);

	/* durable before anyone learns the outcome */
	if (changed && hsm_store_save(fw)) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	if (ok) {
		st = HSM_SC_SUCCESS;
		goto out;
	}
	st = auth_deny(c, HSM_SC_PIN_INCORRECT, part, role, failed);
	if (st != HSM_SC_PIN_INCORRECT)
		goto out;
	if (locked &&
	    hsm_audit_auth(fw, HSM_AUDIT_EV_LOCKOUT, HSM_SC_PIN_LOCKED,
			   c->opcode, au_part(role, part),
			   HSM_AUDIT_AUTH(role, failed), NULL)) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	c->result = max - failed;
out:
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(&copy, sizeof(copy));
	return st;
}

/* ---- requests ---- */

/*
 * Read and check the common part of a struct hsm_auth_req: exact size,
 * reserved words zero, lengths within 0..64 and the bytes past them zero,
 * the label NUL terminated and padded.  Commands check the rest.
 */
static uint16_t auth_req_read(struct hsm_cmd *c, struct hsm_auth_req *r)
{
	struct hsm_xbuf *xb;
	unsigned int i, pl, nl;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC);
	if (st)
		return st;
	if (c->src_len != HSM_AUTH_REQ_SIZE)
		return HSM_SC_INVALID_LENGTH;
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_src(c, xb);
	if (!st)
		st = hsm_xbuf_read(xb, r, sizeof(*r));
	free(xb);
	if (st)
		return st;
	for (i = 0; i < sizeof(r->rsvd) / sizeof(r->rsvd[0]); i++)
		if (r->rsvd[i])
			return HSM_SC_INVALID_FIELD;
	pl = le16toh(r->pin_len);
	nl = le16toh(r->new_pin_len);
	if (pl > HSM_PIN_MAX || nl > HSM_PIN_MAX)
		return HSM_SC_INVALID_LENGTH;
	for (i = pl; i < HSM_PIN_MAX; i++)
		if (r->pin[i])
			return HSM_SC_INVALID_FIELD;
	for (i = nl; i < HSM_PIN_MAX; i++)
		if (r->new_pin[i])
			return HSM_SC_INVALID_FIELD;
	if (!label_ok(r->label, true))
		return HSM_SC_INVALID_FIELD;
	return HSM_SC_SUCCESS;
}

static bool pin_len_ok(unsigned int len)
{
	return len >= HSM_PIN_MIN && len <= HSM_PIN_MAX;
}

/* Fields a command does not use must be zero. */
#define AR_PART		0x01u
#define AR_ROLE		0x02u
#define AR_AUTH_ROLE	0x04u
#define AR_PIN		0x08u
#define AR_NEW_PIN	0x10u
#define AR_MAX_FAIL	0x20u
#define AR_FLAGS	0x40u
#define AR_LABEL	0x80u

static uint16_t auth_req_unused(const struct hsm_auth_req *r,
				unsigned int used)
{
	if ((!(used & AR_PART) && r->partition) ||
	    (!(used & AR_ROLE) && r->role) ||
	    (!(used & AR_AUTH_ROLE) && r->auth_role) ||
	    (!(used & AR_MAX_FAIL) && r->max_fail) ||
	    (!(used & AR_FLAGS) && r->flags) ||
	    (!(used & AR_LABEL) && r->label[0]))
		return HSM_SC_INVALID_FIELD;
	if ((!(used & AR_PIN) && r->pin_len) ||
	    (!(used & AR_NEW_PIN) && r->new_pin_len))
		return HSM_SC_INVALID_LENGTH;
	return HSM_SC_SUCCESS;
}

/* The admin roles' field: 0 or HSM_ROLE_ADMIN. */
static bool admin_role(const struct hsm_auth_req *r)
{
	uint16_t role = le16toh(r->role);

	return role == HSM_ROLE_NONE || role == HSM_ROLE_ADMIN;
}

static uint16_t save_or_internal(struct hsm_fw *fw)
{
	return hsm_store_save(fw) ? HSM_SC_INTERNAL : HSM_SC_SUCCESS;
}

/* ---- commands ---- */

/*
 * CARD_INIT: pin = current admin PIN (ignored while none is set), new_pin
 * = the new admin PIN.  Starts the card afresh: every key and partition
 * but 0 and 1 is destroyed, 0 and 1 lose their PINs, the master key, the
 * token key, the hash-state key and the audit key are new, the log goes
 * on with an INIT record (detail REINIT), and a tampered card is usable
 * again.
 */
uint16_t hsm_adm_card_init(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_auth_req *r;
	struct hsm_pin admin;
	bool have_admin;
	uint16_t st;

	r = OPENSSL_zalloc(sizeof(*r));
	if (!r)
		return HSM_SC_INTERNAL;
	memset(&admin, 0, sizeof(admin));
	st = auth_req_read(c, r);
	if (!st)
		st = auth_req_unused(r, AR_ROLE | AR_PIN | AR_NEW_PIN);
	if (!st && !admin_role(r))
		st = HSM_SC_INVALID_FIELD;
	if (!st && !pin_len_ok(le16toh(r->new_pin_len)))
		st = HSM_SC_INVALID_LENGTH;
	if (st)
		goto out;
	pthread_mutex_lock(&fw->auth_lock);
	have_admin = fw->auth.admin.set;
	pthread_mutex_unlock(&fw->auth_lock);
	if (have_admin) {
		if (!pin_len_ok(le16toh(r->pin_len))) {
			st = HSM_SC_INVALID_LENGTH;
			goto out;
		}
		st = auth_check(c, 0, HSM_ROLE_ADMIN, r->pin,
				le16toh(r->pin_len));
		if (st)
			goto out;
	}
	st = pin_make(fw, r->new_pin, le16toh(r->new_pin_len), &admin);
	if (st)
		goto out;

	/* from here on the card is zeroized until the new state is sealed */
	__atomic_store_n(&fw->tampered, 1, __ATOMIC_RELEASE);
	hsm_fw_keys_zeroize(fw);
	if (hsm_store_rekey(fw) || hsm_token_key_init(fw) ||
	    hsm_hash_state_key_new(fw)) {
		st = HSM_SC_INTERNAL;
		goto fail;
	}
	pthread_mutex_lock(&fw->auth_lock);
	hsm_auth_defaults(&fw->auth);
	fw->auth.admin = admin;
	pthread_mutex_unlock(&fw->auth_lock);
	if (hsm_audit_reinit(fw, c->opcode)) {
		st = HSM_SC_INTERNAL;
		goto fail;
	}
	__atomic_store_n(&fw->tampered, 0, __ATOMIC_RELEASE);
	st = save_or_internal(fw);
	if (!st)
		goto out;
	__atomic_store_n(&fw->tampered, 1, __ATOMIC_RELEASE);
fail:
	hsm_auth_zeroize(fw);
out:
	OPENSSL_cleanse(&admin, sizeof(admin));
	OPENSSL_clear_free(r, sizeof(*r));
	return st;
}

/*
 * PART_CREATE: partition = 2..15 or HSM_PART_ANY, pin = admin PIN,
 * new_pin = initial SO PIN, label (unique, not empty), max_fail 0..15;
 * result = the partition.
 */
uint16_t hsm_adm_part_create(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_auth_req *r;
	struct hsm_part np;
	uint32_t part, i;
	uint16_t st, max;

	r = OPENSSL_zalloc(sizeof(*r));
	if (!r)
		return HSM_SC_INTERNAL;
	memset(&np, 0, sizeof(np));
	st = auth_req_read(c, r);
	if (!st)
		st = auth_req_unused(r, AR_PART | AR_ROLE | AR_PIN |
				     AR_NEW_PIN | AR_MAX_FAIL | AR_LABEL);
	if (st)
		goto out;
	part = le32toh(r->partition);
	max = le16toh(r->max_fail);
	if (!admin_role(r) || max > HSM_MAX_FAIL_MAX || !r->label[0] ||
	    (part != HSM_PART_ANY &&
	     (part < 2 || part >= HSM_NR_PARTITIONS))) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	if (!pin_len_ok(le16toh(r->pin_len)) ||
	    !pin_len_ok(le16toh(r->new_pin_len))) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	/* the number and the label, before a PIN try is spent */
	pthread_mutex_lock(&fw->auth_lock);
	if (part == HSM_PART_ANY) {
		for (i = 2; i < HSM_NR_PARTITIONS; i++)
			if (!fw->auth.parts[i].exists)
				break;
		part = i;
	}
	if (part >= HSM_NR_PARTITIONS)
		st = HSM_SC_KEYSTORE_FULL;
	else if (fw->auth.parts[part].exists)
		st = HSM_SC_INVALID_FIELD;
	for (i = 0; i < HSM_NR_PARTITIONS && !st; i++)
		if (fw->auth.parts[i].exists &&
		    !strncmp(fw->auth.parts[i].label, r->label, HSM_LABEL_LEN))
			st = HSM_SC_INVALID_FIELD;
	pthread_mutex_unlock(&fw->auth_lock);
	if (st)
		goto out;
	st = auth_check(c, 0, HSM_ROLE_ADMIN, r->pin, le16toh(r->pin_len));
	if (st)
		goto out;

	np.exists = true;
	np.max_fail = max ? max : HSM_MAX_FAIL_DEFAULT;
	np.created = (uint64_t)time(NULL);
	memcpy(np.label, r->label, HSM_LABEL_LEN);
	st = pin_make(fw, r->new_pin, le16toh(r->new_pin_len), &np.so);
	if (st)
		goto out;
	pthread_mutex_lock(&fw->auth_lock);
	fw->auth.parts[part] = np;
	pthread_mutex_unlock(&fw->auth_lock);
	st = save_or_internal(fw);
	if (!st && hsm_audit_auth(fw, HSM_AUDIT_EV_PART_CREATE, 0, c->opcode,
				  part, HSM_AUDIT_AUTH(HSM_ROLE_ADMIN,
						       np.max_fail),
				  np.label))
		st = HSM_SC_INTERNAL;
	if (st) {
		/* not acknowledged: take it back */
		pthread_mutex_lock(&fw->auth_lock);
		OPENSSL_cleanse(&fw->auth.parts[part],
				sizeof(fw->auth.parts[part]));
		pthread_mutex_unlock(&fw->auth_lock);
		hsm_store_save(fw);
		goto out;
	}
	c->result = part;
out:
	OPENSSL_cleanse(&np, sizeof(np));
	OPENSSL_clear_free(r, sizeof(*r));
	return st;
}

/*
 * PART_DELETE: partition 2..15, pin = admin PIN: the partition, its PINs
 * and all its keys (persistent ones too) are destroyed.  Partition 0 with
 * HSM_AUTH_F_RESET: its keys and PINs are destroyed and it is
 * uninitialized again.  Partition 1 cannot be deleted or reset.
 */
uint16_t hsm_adm_part_delete(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_auth_req *r;
	char label[HSM_LABEL_LEN];
	uint32_t part;
	unsigned int n;
	bool reset, persistent = false, exists;
	uint16_t st;

	r = OPENSSL_zalloc(sizeof(*r));
	if (!r)
		return HSM_SC_INTERNAL;
	st = auth_req_read(c, r);
	if (!st)
		st = auth_req_unused(r, AR_PART | AR_ROLE | AR_PIN | AR_FLAGS);
	if (st)
		goto out;
	part = le32toh(r->partition);
	reset = le16toh(r->flags) & HSM_AUTH_F_RESET;
	if (!admin_role(r) || (le16toh(r->flags) & ~HSM_AUTH_F_RESET) ||
	    part >= HSM_NR_PARTITIONS || part == HSM_KERNEL_PARTITION ||
	    reset != (part == HSM_DEFAULT_PARTITION)) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	if (!pin_len_ok(le16toh(r->pin_len))) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	pthread_mutex_lock(&fw->auth_lock);
	exists = fw->auth.parts[part].exists;
	memcpy(label, fw->auth.parts[part].label, sizeof(label));
	pthread_mutex_unlock(&fw->auth_lock);
	if (!exists) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	st = auth_check(c, 0, HSM_ROLE_ADMIN, r->pin, le16toh(r->pin_len));
	if (st)
		goto out;

	/* PINs first: nobody logs in to a partition being emptied */
	pthread_mutex_lock(&fw->auth_lock);
	if (reset)
		hsm_part_default(&fw->auth.parts[part], part);
	else
		OPENSSL_cleanse(&fw->auth.parts[part],
				sizeof(fw->auth.parts[part]));
	pthread_mutex_unlock(&fw->auth_lock);
	n = hsm_fw_keys_drop_partition(fw, part, &persistent);
	st = save_or_internal(fw);
	if (hsm_audit_auth(fw, HSM_AUDIT_EV_PART_DELETE, st, c->opcode, part,
			   HSM_AUDIT_AUTH(HSM_ROLE_ADMIN, reset), label) &&
	    !st)
		st = HSM_SC_INTERNAL;
	if (!st)
		c->result = n;
out:
	OPENSSL_clear_free(r, sizeof(*r));
	return st;
}

/* PART_INFO: cdw[0] = partition; dst = struct hsm_part_info. */
uint16_t hsm_adm_part_info(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_part_info info;
	const struct hsm_part *p;
	struct hsm_xbuf *xb;
	uint32_t part = c->cdw[0], f = 0, cf = 0;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_DST | HSM_F_CDW(0));
	if (st)
		return st;
	if (part >= HSM_NR_PARTITIONS)
		return HSM_SC_INVALID_FIELD;
	if (c->dst_len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	if (c->dst_len < sizeof(info)) {
		c->result = sizeof(info);
		return HSM_SC_BUFFER_TOO_SMALL;
	}
	memset(&info, 0, sizeof(info));
	info.partition = htole32(part);
	pthread_mutex_lock(&fw->auth_lock);
	p = &fw->auth.parts[part];
	if (fw->auth.admin.set)
		cf |= HSM_CARD_S_ADMIN_SET;
	if (fw->auth.admin.locked)
		cf |= HSM_CARD_S_ADMIN_LOCKED;
	info.admin_failed = fw->auth.admin.failed;
	if (p->exists) {
		f = HSM_PART_S_EXISTS;
		if (p->so.set)
			f |= HSM_PART_S_SO_SET;
		if (p->user.set)
			f |= HSM_PART_S_USER_SET;
		if (p->so.set || p->user.set)
			f |= HSM_PART_S_INITIALIZED;
		if (p->so.locked)
			f |= HSM_PART_S_SO_LOCKED;
		if (p->user.locked)
			f |= HSM_PART_S_USER_LOCKED;
		if (part == HSM_KERNEL_PARTITION)
			f |= HSM_PART_S_KERNEL;
		info.max_fail = htole16(p->max_fail);
		info.so_failed = p->so.failed;
		info.user_failed = p->user.failed;
		info.created = htole64(p->created);
		memcpy(info.label, p->label, sizeof(info.label));
	}
	pthread_mutex_unlock(&fw->auth_lock);
	if (hsm_fw_is_tampered(fw))
		cf |= HSM_CARD_S_TAMPERED;
	if (f)
		info.nr_keys = htole32(hsm_fw_keys_in_partition(fw, part));
	info.flags = htole32(f);
	info.card_flags = htole32(cf);
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_dst(c, xb);
	if (!st)
		st = hsm_xbuf_write(xb, &info, sizeof(info));
	free(xb);
	if (!st)
		c->result = sizeof(info);
	return st;
}

/*
 * LOGIN: partition, role SO or USER (or ADMIN with partition 0: the admin
 * PIN), pin.  Checks the PIN, nothing more.
 */
uint16_t hsm_adm_login(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_auth_req *r;
	uint32_t part;
	uint16_t st, role;

	r = OPENSSL_zalloc(sizeof(*r));
	if (!r)
		return HSM_SC_INTERNAL;
	st = auth_req_read(c, r);
	if (!st)
		st = auth_req_unused(r, AR_PART | AR_ROLE | AR_PIN);
	if (st)
		goto out;
	part = le32toh(r->partition);
	role = le16toh(r->role);
	if ((role != HSM_ROLE_SO && role != HSM_ROLE_USER &&
	     role != HSM_ROLE_ADMIN) ||
	    part >= HSM_NR_PARTITIONS ||
	    (role == HSM_ROLE_ADMIN && part)) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	if (!pin_len_ok(le16toh(r->pin_len))) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	if (role == HSM_ROLE_ADMIN) {
		/* checks the admin PIN (partition 0: card-wide) */
		st = auth_check(c, 0, role, r->pin, le16toh(r->pin_len));
		if (!st && hsm_audit_auth(fw, HSM_AUDIT_EV_LOGIN, 0, c->opcode,
					  HSM_AUDIT_NO_PART,
					  HSM_AUDIT_AUTH(role, 0), NULL))
			st = HSM_SC_INTERNAL;
		goto out;
	}
	if (part == HSM_KERNEL_PARTITION) {
		/* nobody logs in to the kernel's keys: a denial on record */
		st = auth_deny(c, HSM_SC_INVALID_FIELD, part, role, 0);
		goto out;
	}
	if (!hsm_part_exists(fw, part)) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	st = auth_check(c, part, role, r->pin, le16toh(r->pin_len));
	if (!st && hsm_audit_auth(fw, HSM_AUDIT_EV_LOGIN, 0, c->opcode, part,
				  HSM_AUDIT_AUTH(role, 0), NULL))
		st = HSM_SC_INTERNAL;
out:
	OPENSSL_clear_free(r, sizeof(*r));
	return st;
}

/*
 * SET_PIN: role = whose PIN is set, auth_role = whose PIN @pin is (0: the
 * same role), new_pin.  Allowed: a role changes its own PIN (USER, SO,
 * ADMIN), the SO sets the User PIN, the admin sets the SO PIN; setting
 * another role's PIN unlocks it and resets its counter.
 */
uint16_t hsm_adm_set_pin(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_auth_req *r;
	struct hsm_pin np, *pn;
	uint32_t part;
	uint16_t st, role, by;
	unsigned int max;
	bool was_locked = false, ok;

	r = OPENSSL_zalloc(sizeof(*r));
	if (!r)
		return HSM_SC_INTERNAL;
	memset(&np, 0, sizeof(np));
	st = auth_req_read(c, r);
	if (!st)
		st = auth_req_unused(r, AR_PART | AR_ROLE | AR_AUTH_ROLE |
				     AR_PIN | AR_NEW_PIN);
	if (st)
		goto out;
	part = le32toh(r->partition);
	role = le16toh(r->role);
	by = le16toh(r->auth_role) ? le16toh(r->auth_role) : role;
	ok = (role == by && (role == HSM_ROLE_SO || role == HSM_ROLE_USER ||
			     role == HSM_ROLE_ADMIN)) ||
	     (role == HSM_ROLE_USER && by == HSM_ROLE_SO) ||
	     (role == HSM_ROLE_SO && by == HSM_ROLE_ADMIN);
	if (!ok || (role == HSM_ROLE_ADMIN && part) ||
	    (role != HSM_ROLE_ADMIN &&
	     (part >= HSM_NR_PARTITIONS || part == HSM_KERNEL_PARTITION))) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	if (!pin_len_ok(le16toh(r->pin_len)) ||
	    !pin_len_ok(le16toh(r->new_pin_len))) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	if (role != HSM_ROLE_ADMIN && !hsm_part_exists(fw, part)) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	st = auth_check(c, part, by, r->pin, le16toh(r->pin_len));
	if (st)
		goto out;
	st = pin_make(fw, r->new_pin, le16toh(r->new_pin_len), &np);
	if (st)
		goto out;
	pthread_mutex_lock(&fw->auth_lock);
	pn = pin_slot(fw, part, role, &max);
	if (pn) {
		was_locked = pn->locked;
		*pn = np;
	}
	pthread_mutex_unlock(&fw->auth_lock);
	if (!pn) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	st = save_or_internal(fw);
	if (!st &&
	    hsm_audit_auth(fw, by == role ? HSM_AUDIT_EV_PART_CHANGE :
					    HSM_AUDIT_EV_UNLOCK,
			   0, c->opcode, au_part(role, part),
			   HSM_AUDIT_AUTH(role, was_locked), NULL))
		st = HSM_SC_INTERNAL;
out:
	OPENSSL_cleanse(&np, sizeof(np));
	OPENSSL_clear_free(r, sizeof(*r));
	return st;
}
