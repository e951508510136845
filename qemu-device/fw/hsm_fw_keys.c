// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: key store and key management commands.
 *
 * The store is a fixed array of slots under a reader/writer lock.  A key is
 * immutable once it sits in a slot; users take a reference under the read
 * lock and drop it when the command is done, so destroying a key while
 * another queue uses it is safe: the slot empties at once (new commands see
 * HSM_SC_INVALID_HANDLE) and the key material is wiped when the last user
 * finishes.  Only a key's lifecycle state and its timestamps change after
 * insertion (atomic words, written under the write lock).
 *
 * Non-empty labels are indexed per (partition, label) in a hash table of
 * label families (struct hsm_label_fam), also under ks_lock: KEY_FIND and
 * the uniqueness check at creation cost one hash and one short chain walk
 * whatever the number of keys.  The hash is SipHash-2-4 under a random
 * per-card key, so the host cannot pick labels that all collide.
 * Non-empty key IDs have an index of their own, per (partition, ID), the
 * same way: a hash table whose chains link the keys themselves.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "hsm_fw_int.h"

#define HSM_ATTRS_SIZE		sizeof(struct hsm_key_attrs)
#define HSM_HMAC_DEFAULT_BITS	256

/* Uses a key type may have, and what uses == 0 means. */
static const uint32_t hsm_type_uses[HSM_KEY_TYPE_MAX] = {
	[HSM_KEY_AES]	  = HSM_USE_ENCRYPT | HSM_USE_DECRYPT | HSM_USE_WRAP |
			    HSM_USE_UNWRAP,
	[HSM_KEY_HMAC]	  = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_RSA]	  = HSM_USE_SIGN | HSM_USE_VERIFY | HSM_USE_ENCRYPT |
			    HSM_USE_DECRYPT,
	[HSM_KEY_EC_P256] = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_EC_P384] = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_ED25519] = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_AUTHENC] = HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
};

static const uint32_t hsm_type_default_uses[HSM_KEY_TYPE_MAX] = {
	[HSM_KEY_AES]	  = HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
	[HSM_KEY_HMAC]	  = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_RSA]	  = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_EC_P256] = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_EC_P384] = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_ED25519] = HSM_USE_SIGN | HSM_USE_VERIFY,
	[HSM_KEY_AUTHENC] = HSM_USE_ENCRYPT | HSM_USE_DECRYPT,
};

/* An imported RSA public key can only encrypt and verify. */
#define HSM_RSA_PUBLIC_USES	(HSM_USE_ENCRYPT | HSM_USE_VERIFY)
#define HSM_RSA_IMPORT_MIN	512
#define HSM_RSA_IMPORT_MAX	4096

static bool hsm_type_symmetric(uint16_t type)
{
	return type == HSM_KEY_AES || type == HSM_KEY_HMAC;
}

/* ---- label index ---- */

#define HSM_LBL_MIN_SIZE	64

static inline uint64_t hsm_rotl64(uint64_t v, unsigned int n)
{
	return (v << n) | (v >> (64 - n));
}

static inline void hsm_sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = hsm_rotl64(v[1], 13) ^ v[0];
	v[0] = hsm_rotl64(v[0], 32);
	v[2] += v[3];
	v[3] = hsm_rotl64(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = hsm_rotl64(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = hsm_rotl64(v[1], 17) ^ v[2];
	v[2] = hsm_rotl64(v[2], 32);
}

/* SipHash-2-4 of @len bytes at @p under the 128-bit key @key. */
static uint64_t hsm_siphash(const uint64_t key[2], const uint8_t *p,
			    size_t len)
{
	uint64_t v[4] = {
		key[0] ^ 0x736f6d6570736575ull, key[1] ^ 0x646f72616e646f6dull,
		key[0] ^ 0x6c7967656e657261ull, key[1] ^ 0x7465646279746573ull,
	};
	uint64_t m;
	size_t i, j;

	for (i = 0; i + 8 <= len; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		v[3] ^= m;
		hsm_sip_round(v);
		hsm_sip_round(v);
		v[0] ^= m;
	}
	m = (uint64_t)(len & 0xff) << 56;
	for (j = 0; i + j < len; j++)
		m |= (uint64_t)p[i + j] << (8 * j);
	v[3] ^= m;
	hsm_sip_round(v);
	hsm_sip_round(v);
	v[0] ^= m;
	v[2] ^= 0xff;
	for (j = 0; j < 4; j++)
		hsm_sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static uint64_t hsm_label_hash(struct hsm_fw *fw, uint32_t part,
			       const char *label)
{
	uint8_t buf[4 + HSM_LABEL_LEN];
	size_t n = strnlen(label, HSM_LABEL_LEN);

	buf[0] = part;
	buf[1] = part >> 8;
	buf[2] = part >> 16;
	buf[3] = part >> 24;
	memcpy(buf + 4, label, n);
	return hsm_siphash(fw->lbl_seed, buf, 4 + n);
}

/*
 * Keys with a label in the index: every non-empty label except those of
 * the kernel crypto API's session keys (data-path keys that all carry the
 * driver's one label and are never looked up).
 */
static bool hsm_key_indexed(const struct hsm_key *k)
{
	return k->label[0] &&
	       !(k->partition == HSM_KERNEL_PARTITION &&
		 (k->flags & HSM_KEYF_SESSION));
}

/* Caller holds ks_lock. */
static struct hsm_label_fam *hsm_label_find(struct hsm_fw *fw, uint32_t part,
					    const char *label)
{
	uint64_t h = hsm_label_hash(fw, part, label);
	struct hsm_label_fam *f;

	if (!fw->lbl_tab)
		return NULL;
	for (f = fw->lbl_tab[h & (fw->lbl_size - 1)]; f; f = f->next)
		if (f->hash == h && f->partition == part &&
		    !strncmp(f->label, label, HSM_LABEL_LEN))
			return f;
	return NULL;
}

/* Double the table when there are more families than buckets. */
static void hsm_label_grow(struct hsm_fw *fw)
{
	unsigned int size = fw->lbl_size ? fw->lbl_size * 2 : HSM_LBL_MIN_SIZE;
	struct hsm_label_fam **tab, *f, *next;
	unsigned int i;

	tab = calloc(size, sizeof(*tab));
	if (!tab)
		return;		/* longer chains, still correct */
	for (i = 0; i < fw->lbl_size; i++)
		for (f = fw->lbl_tab[i]; f; f = next) {
			next = f->next;
			f->next = tab[f->hash & (size - 1)];
			tab[f->hash & (size - 1)] = f;
		}
	free(fw->lbl_tab);
	fw->lbl_tab = tab;
	fw->lbl_size = size;
}

/*
 * Put @k into its label's family, at its version.  @renumber (a key of a
 * version 3 store): the key becomes the family's newest version.  Caller
 * holds ks_lock for writing.  Return: 0, or -1 (no memory, or the family
 * already has this version).
 */
static void hsm_label_free(struct hsm_label_fam *f)
{
	if (f->v != f->inl)
		free(f->v);
	free(f);
}

static int hsm_label_add(struct hsm_fw *fw, struct hsm_key *k, bool renumber)
{
	struct hsm_label_ver *v;
	struct hsm_label_fam *f;
	unsigned int i;

	if (!hsm_key_indexed(k))
		return 0;
	if (!fw->lbl_tab || fw->lbl_nr >= fw->lbl_size)
		hsm_label_grow(fw);
	if (!fw->lbl_tab)
		return -1;
	f = hsm_label_find(fw, k->partition, k->label);
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return -1;
		f->hash = hsm_label_hash(fw, k->partition, k->label);
		f->partition = k->partition;
		f->v = f->inl;
		f->cap = 2;
		memcpy(f->label, k->label, sizeof(f->label));
		f->next = fw->lbl_tab[f->hash & (fw->lbl_size - 1)];
		fw->lbl_tab[f->hash & (fw->lbl_size - 1)] = f;
		fw->lbl_nr++;
	}
	if (renumber && f->nr)
		k->version = f->v[f->nr - 1].version + 1;
	if (f->nr == f->cap) {
		v = malloc(f->cap * 2 * sizeof(*v));
		if (!v)
			goto fail;
		memcpy(v, f->v, f->nr * sizeof(*v));
		if (f->v != f->inl)
			free(f->v);
		f->v = v;
		f->cap *= 2;
	}
	for (i = f->nr; i > 0 && f->v[i - 1].version >= k->version; i--)
		if (f->v[i - 1].version == k->version)
			goto fail;
	memmove(f->v + i + 1, f->v + i, (f->nr - i) * sizeof(*f->v));
	f->v[i].handle = k->handle;
	f->v[i].version = k->version;
	f->nr++;
	k->fam = f;
	return 0;
fail:
	if (!f->nr) {
		struct hsm_label_fam **pp = &fw->lbl_tab[f->hash &
							 (fw->lbl_size - 1)];

		while (*pp != f)
			pp = &(*pp)->next;
		*pp = f->next;
		fw->lbl_nr--;
		hsm_label_free(f);
	}
	return -1;
}

/* Take @k out of its family; the last one frees it.  Write lock held. */
static void hsm_label_del(struct hsm_fw *fw, struct hsm_key *k)
{
	struct hsm_label_fam *f = k->fam, **pp;
	unsigned int i;

	if (!f)
		return;
	k->fam = NULL;
	for (i = 0; i < f->nr && f->v[i].handle != k->handle; i++)
		;
	if (i < f->nr) {
		memmove(f->v + i, f->v + i + 1,
			(f->nr - i - 1) * sizeof(*f->v));
		f->nr--;
	}
	if (f->nr)
		return;
	pp = &fw->lbl_tab[f->hash & (fw->lbl_size - 1)];
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	fw->lbl_nr--;
	hsm_label_free(f);
}

/* ---- key ID index ---- */

#define HSM_ID_MIN_SIZE		64

static uint64_t hsm_id_hash(struct hsm_fw *fw, uint32_t part,
			    const uint8_t *id, unsigned int len)
{
	uint8_t buf[6 + HSM_KEY_ID_LEN];

	/* "I" and the length keep these inputs apart from the labels' */
	buf[0] = 'I';
	buf[1] = part;
	buf[2] = part >> 8;
	buf[3] = part >> 16;
	buf[4] = part >> 24;
	buf[5] = len;
	memcpy(buf + 6, id, len);
	return hsm_siphash(fw->lbl_seed, buf, 6 + len);
}

/* Keys in the ID index: a non-empty ID, not a kernel session key. */
static bool hsm_key_id_indexed(const struct hsm_key *k)
{
	return k->id_len &&
	       !(k->partition == HSM_KERNEL_PARTITION &&
		 (k->flags & HSM_KEYF_SESSION));
}

/* The key of @part with this ID, or NULL.  Caller holds ks_lock. */
static struct hsm_key *hsm_id_find(struct hsm_fw *fw, uint32_t part,
				   const uint8_t *id, unsigned int len)
{
	uint64_t h;
	struct hsm_key *k;

	if (!fw->id_tab || !len)
		return NULL;
	h = hsm_id_hash(fw, part, id, len);
	for (k = fw->id_tab[h & (fw->id_size - 1)]; k; k = k->id_next)
		if (k->id_hash == h && k->partition == part &&
		    k->id_len == len && !memcmp(k->id, id, len))
			return k;
	return NULL;
}

static void hsm_id_grow(struct hsm_fw *fw)
{
	unsigned int size = fw->id_size ? fw->id_size * 2 : HSM_ID_MIN_SIZE;
	struct hsm_key **tab, *k, *next;
	unsigned int i;

	tab = calloc(size, sizeof(*tab));
	if (!tab)
		return;		/* longer chains, still correct */
	for (i = 0; i < fw->id_size; i++)
		for (k = fw->id_tab[i]; k; k = next) {
			next = k->id_next;
			k->id_next = tab[k->id_hash & (size - 1)];
			tab[k->id_hash & (size - 1)] = k;
		}
	free(fw->id_tab);
	fw->id_tab = tab;
	fw->id_size = size;
}

/*
 * Index @k by its ID; the caller checked that the ID is free.  Write lock
 * held.  Return: 0, or -1 (no memory for the first table).
 */
static int hsm_id_add(struct hsm_fw *fw, struct hsm_key *k)
{
	struct hsm_key **b;

	if (!hsm_key_id_indexed(k))
		return 0;
	if (!fw->id_tab || fw->id_nr >= fw->id_size)
		hsm_id_grow(fw);
	if (!fw->id_tab)
		return -1;
	k->id_hash = hsm_id_hash(fw, k->partition, k->id, k->id_len);
	b = &fw->id_tab[k->id_hash & (fw->id_size - 1)];
	k->id_next = *b;
	*b = k;
	k->id_indexed = true;
	fw->id_nr++;
	return 0;
}

/* Take @k out of the ID index.  Write lock held. */
static void hsm_id_del(struct hsm_fw *fw, struct hsm_key *k)
{
	struct hsm_key **pp;

	if (!k->id_indexed)
		return;
	pp = &fw->id_tab[k->id_hash & (fw->id_size - 1)];
	while (*pp && *pp != k)
		pp = &(*pp)->id_next;
	if (*pp) {
		*pp = k->id_next;
		fw->id_nr--;
	}
	k->id_next = NULL;
	k->id_indexed = false;
}

/* Take @k out of both indexes.  Write lock held. */
static void hsm_key_unindex(struct hsm_fw *fw, struct hsm_key *k)
{
	hsm_label_del(fw, k);
	hsm_id_del(fw, k);
}

/* ---- store ---- */

int hsm_fw_keys_init(struct hsm_fw *fw)
{
	fw->slots = calloc(fw->cfg.max_keys, sizeof(*fw->slots));
	fw->slot_tags = calloc(fw->cfg.max_keys, sizeof(*fw->slot_tags));
	if (!fw->slots || !fw->slot_tags ||
	    RAND_bytes((unsigned char *)fw->lbl_seed,
		       sizeof(fw->lbl_seed)) != 1 ||
	    pthread_rwlock_init(&fw->ks_lock, NULL)) {
		free(fw->slots);
		free(fw->slot_tags);
		fw->slots = NULL;
		fw->slot_tags = NULL;
		return -1;
	}
	return 0;
}

void hsm_key_free(struct hsm_key *k)
{
	if (!k)
		return;
	if (k->pads)
		OPENSSL_clear_free(k->pads, sizeof(*k->pads));
	OPENSSL_free(k->mod);
	if (k->secret)
		OPENSSL_clear_free(k->secret, k->secret_len);
	EVP_PKEY_free(k->pkey);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

void hsm_key_put(struct hsm_key *k)
{
	if (k && __atomic_sub_fetch(&k->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		hsm_key_free(k);
}

/* Empty every slot; keys still in use are wiped when their user is done. */
void hsm_fw_keys_zeroize(struct hsm_fw *fw)
{
	unsigned int i;

	pthread_rwlock_wrlock(&fw->ks_lock);
	for (i = 0; i < fw->cfg.max_keys; i++) {
		if (fw->slots[i])
			hsm_key_unindex(fw, fw->slots[i]);
		hsm_key_put(fw->slots[i]);
		fw->slots[i] = NULL;
	}
	fw->nr_keys = 0;
	pthread_rwlock_unlock(&fw->ks_lock);
}

/*
 * PART_DELETE: take every key of @part out of the store; keys in use are
 * wiped when their user is done.  Returns how many; *persistent says if
 * one of them was in the sealed store.
 */
unsigned int hsm_fw_keys_drop_partition(struct hsm_fw *fw, uint32_t part,
					bool *persistent)
{
	unsigned int i, n = 0;

	*persistent = false;
	pthread_rwlock_wrlock(&fw->ks_lock);
	for (i = 0; i < fw->cfg.max_keys; i++) {
		struct hsm_key *k = fw->slots[i];

		if (!k || k->partition != part)
			continue;
		if (k->flags & HSM_KEYF_PERSISTENT)
			*persistent = true;
		hsm_key_unindex(fw, k);
		fw->slots[i] = NULL;
		fw->nr_keys--;
		hsm_key_put(k);
		n++;
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	return n;
}

unsigned int hsm_fw_keys_in_partition(struct hsm_fw *fw, uint32_t part)
{
	unsigned int i, n = 0;

	pthread_rwlock_rdlock(&fw->ks_lock);
	for (i = 0; i < fw->cfg.max_keys; i++)
		if (fw->slots[i] && fw->slots[i]->partition == part)
			n++;
	pthread_rwlock_unlock(&fw->ks_lock);
	return n;
}

void hsm_fw_keys_fini(struct hsm_fw *fw)
{
	if (!fw->slots)
		return;
	hsm_fw_keys_zeroize(fw);
	pthread_rwlock_destroy(&fw->ks_lock);
	free(fw->slots);
	fw->slots = NULL;
	free(fw->slot_tags);
	fw->slot_tags = NULL;
	free(fw->lbl_tab);
	fw->lbl_tab = NULL;
	fw->lbl_size = 0;
	free(fw->id_tab);
	fw->id_tab = NULL;
	fw->id_size = 0;
}

unsigned int hsm_fw_keys_count(struct hsm_fw *fw)
{
	unsigned int n;

	pthread_rwlock_rdlock(&fw->ks_lock);
	n = fw->nr_keys;
	pthread_rwlock_unlock(&fw->ks_lock);
	return n;
}

/**
 * hsm_key_get() - look a handle up and take a reference on its key
 * @fw:     the card
 * @handle: handle from the host
 * @kp:     receives the key; release it with hsm_key_put()
 *
 * Return: HSM_SC_SUCCESS, HSM_SC_TAMPERED or HSM_SC_INVALID_HANDLE.
 */
uint16_t hsm_key_get(struct hsm_fw *fw, uint64_t handle, struct hsm_key **kp)
{
	uint32_t slot = HSM_HANDLE_SLOT(handle);
	struct hsm_key *k = NULL;

	*kp = NULL;
	if (hsm_fw_is_tampered(fw))
		return HSM_SC_TAMPERED;
	if (!HSM_HANDLE_TAG(handle) || slot >= fw->cfg.max_keys)
		return HSM_SC_INVALID_HANDLE;
	pthread_rwlock_rdlock(&fw->ks_lock);
	if (fw->slots[slot] && fw->slots[slot]->handle == handle) {
		k = fw->slots[slot];
		__atomic_add_fetch(&k->refcnt, 1, __ATOMIC_RELAXED);
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	if (!k)
		return HSM_SC_INVALID_HANDLE;
	*kp = k;
	return HSM_SC_SUCCESS;
}

/* Fetch a key's lifecycle fields at once (atomics, see struct hsm_key). */
static void hsm_key_life(const struct hsm_key *k, uint32_t *state,
			 uint64_t *act, uint64_t *deact)
{
	*state = __atomic_load_n(&k->state, __ATOMIC_ACQUIRE);
	*act = __atomic_load_n(&k->activated, __ATOMIC_RELAXED);
	*deact = __atomic_load_n(&k->deactivated, __ATOMIC_RELAXED);
}

/* Change a key's state; ks_lock held for writing. */
static void hsm_key_set_life(struct hsm_key *k, uint32_t state,
			     uint64_t act, uint64_t deact)
{
	__atomic_store_n(&k->activated, act, __ATOMIC_RELAXED);
	__atomic_store_n(&k->deactivated, deact, __ATOMIC_RELAXED);
	__atomic_store_n(&k->state, state, __ATOMIC_RELEASE);
}

static bool hsm_state_live(uint32_t state)
{
	return state == HSM_KEY_STATE_PRE_ACTIVE ||
	       state == HSM_KEY_STATE_ACTIVE;
}

/*
 * A restored key (@k, version and state from its backup) may join the
 * label family @f when its version is free and the family keeps what
 * KEY_ROTATE guarantees: a pre-active or active version is the newest
 * one, and there is at most one.  Called with ks_lock held for writing.
 */
static bool hsm_family_may_join(struct hsm_fw *fw,
				const struct hsm_label_fam *f,
				const struct hsm_key *k)
{
	bool live = hsm_state_live(k->state);
	unsigned int i;

	for (i = 0; i < f->nr; i++) {
		const struct hsm_key *e =
			fw->slots[HSM_HANDLE_SLOT(f->v[i].handle)];
		bool elive = e && hsm_state_live(__atomic_load_n(&e->state,
							__ATOMIC_ACQUIRE));

		if (f->v[i].version == k->version)
			return false;
		if (live && (elive || f->v[i].version > k->version))
			return false;
		if (elive && f->v[i].version < k->version)
			return false;
	}
	return true;
}

/*
 * Put a fully built key into a free slot; on success the store owns it.
 * A non-empty label must be free in the partition, unless @old is given
 * (KEY_ROTATE): then @k becomes the newest version of @old's family and
 * @old, which must still be in the store and ACTIVE, is DEACTIVATED in
 * the same critical section.  With @restore (an unwrap with
 * HSM_WRAP_F_ATTRS) @k may also join an existing family under its own
 * version, see hsm_family_may_join().  A non-empty key ID must be free in
 * the partition in every case.
 */
static uint16_t hsm_key_insert(struct hsm_fw *fw, struct hsm_key *k,
			       struct hsm_key *old, bool restore)
{
	struct hsm_label_fam *f;
	uint32_t tag = 0;
	unsigned int i, slot;
	uint16_t st = HSM_SC_KEYSTORE_FULL;

	while (!tag)
		if (RAND_bytes((unsigned char *)&tag, sizeof(tag)) != 1)
			return HSM_SC_RNG_FAILURE;

	pthread_rwlock_wrlock(&fw->ks_lock);
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	f = hsm_key_indexed(k) ? hsm_label_find(fw, k->partition, k->label) :
				 NULL;
	if (old) {
		if (fw->slots[HSM_HANDLE_SLOT(old->handle)] != old) {
			st = HSM_SC_INVALID_HANDLE;
			goto out;
		}
		if (old->state != HSM_KEY_STATE_ACTIVE) {
			st = old->state == HSM_KEY_STATE_COMPROMISED ?
			     HSM_SC_KEY_COMPROMISED : HSM_SC_KEY_STATE;
			goto out;
		}
		k->version = f && f->nr ? f->v[f->nr - 1].version + 1 :
					  old->version + 1;
		if (!k->version) {	/* the family used up 2^32 - 1 */
			st = HSM_SC_INVALID_FIELD;
			goto out;
		}
	} else if (f && !(restore && hsm_family_may_join(fw, f, k))) {
		st = HSM_SC_LABEL_EXISTS;
		goto out;
	}
	if (hsm_key_id_indexed(k) &&
	    hsm_id_find(fw, k->partition, k->id, k->id_len)) {
		st = HSM_SC_ID_EXISTS;
		goto out;
	}
	for (i = 0; i < fw->cfg.max_keys; i++) {
		slot = (fw->next_slot + i) % fw->cfg.max_keys;
		if (fw->slots[slot])
			continue;
		/* a stale handle to the slot's last key must not name @k */
		if (tag == fw->slot_tags[slot])
			tag = tag == UINT32_MAX ? 1 : tag + 1;
		k->handle = ((uint64_t)tag << 32) |
			    ((uint64_t)k->partition << 24) | slot;
		if (hsm_label_add(fw, k, false)) {
			st = HSM_SC_INTERNAL;
			break;
		}
		if (hsm_id_add(fw, k)) {
			hsm_label_del(fw, k);
			st = HSM_SC_INTERNAL;
			break;
		}
		k->refcnt = 1;
		fw->slots[slot] = k;
		fw->slot_tags[slot] = tag;
		fw->nr_keys++;
		fw->next_slot = slot + 1;
		if (old)
			hsm_key_set_life(old, HSM_KEY_STATE_DEACTIVATED,
					 old->activated, k->created);
		st = HSM_SC_SUCCESS;
		break;
	}
out:
	pthread_rwlock_unlock(&fw->ks_lock);
	return st;
}

/*
 * Put a key loaded from the persistent store back at its handle's slot.
 * @renumber: the store predates versions (see hsm_label_add()).
 */
int hsm_key_insert_at(struct hsm_fw *fw, struct hsm_key *k, bool renumber)
{
	uint32_t slot = HSM_HANDLE_SLOT(k->handle);
	int ret = -1;

	if (!HSM_HANDLE_TAG(k->handle) || slot >= fw->cfg.max_keys ||
	    HSM_HANDLE_PART(k->handle) != k->partition)
		return -1;
	pthread_rwlock_wrlock(&fw->ks_lock);
	if (fw->slots[slot] ||
	    (hsm_key_id_indexed(k) &&
	     hsm_id_find(fw, k->partition, k->id, k->id_len)) ||
	    hsm_label_add(fw, k, renumber))
		goto out;
	if (hsm_id_add(fw, k)) {
		hsm_label_del(fw, k);
	} else {
		k->refcnt = 1;
		fw->slots[slot] = k;
		fw->slot_tags[slot] = HSM_HANDLE_TAG(k->handle);
		fw->nr_keys++;
		ret = 0;
	}
out:
	pthread_rwlock_unlock(&fw->ks_lock);
	return ret;
}

/* Take a key out of the store; the caller owns the store's reference. */
struct hsm_key *hsm_key_remove(struct hsm_fw *fw, uint64_t handle)
{
	uint32_t slot = HSM_HANDLE_SLOT(handle);
	struct hsm_key *k = NULL;

	if (!HSM_HANDLE_TAG(handle) || slot >= fw->cfg.max_keys)
		return NULL;
	pthread_rwlock_wrlock(&fw->ks_lock);
	if (fw->slots[slot] && fw->slots[slot]->handle == handle) {
		k = fw->slots[slot];
		hsm_key_unindex(fw, k);
		fw->slots[slot] = NULL;
		fw->nr_keys--;
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	return k;
}

/* ---- attributes ---- */

static bool hsm_bits_valid(uint16_t type, unsigned int bits)
{
	switch (type) {
	case HSM_KEY_AES:
		return bits == 128 || bits == 192 || bits == 256 || bits == 512;
	case HSM_KEY_HMAC:
		return bits >= 128 && bits <= 1024 && !(bits % 8);
	case HSM_KEY_RSA:
		return bits == 2048 || bits == 3072 || bits == 4096;
	case HSM_KEY_EC_P256:
		return bits == 256;
	case HSM_KEY_EC_P384:
		return bits == 384;
	case HSM_KEY_ED25519:
		return bits == 256;
	}
	return false;
}

/* @len is 0..HSM_KEY_ID_LEN and @id is zero past it. */
bool hsm_key_id_valid(const uint8_t *id, unsigned int len)
{
	unsigned int i;

	if (len > HSM_KEY_ID_LEN)
		return false;
	for (i = len; i < HSM_KEY_ID_LEN; i++)
		if (id[i])
			return false;
	return true;
}

/* Attributes of a key loaded from the persistent store are sane. */
bool hsm_key_attrs_valid(const struct hsm_key *k)
{
	if (k->type < HSM_KEY_AES || k->type >= HSM_KEY_TYPE_MAX)
		return false;
	return hsm_bits_valid(k->type, k->bits) &&
	       k->partition < HSM_NR_PARTITIONS &&
	       k->state >= HSM_KEY_STATE_PRE_ACTIVE &&
	       k->state < HSM_KEY_STATE_MAX && k->version &&
	       !(k->uses & ~hsm_type_uses[k->type]) && k->uses &&
	       (k->flags & ~HSM_KEYF_ALL) == 0 &&
	       (k->flags & HSM_KEYF_PERSISTENT) &&
	       !(k->flags & HSM_KEYF_SESSION) &&
	       memchr(k->label, 0, sizeof(k->label)) &&
	       hsm_key_id_valid(k->id, k->id_len);
}

/* Size implied by the type when the host leaves bits at 0 (0: none). */
static unsigned int hsm_default_bits(uint16_t type)
{
	switch (type) {
	case HSM_KEY_HMAC:
		return HSM_HMAC_DEFAULT_BITS;
	case HSM_KEY_EC_P256:
	case HSM_KEY_ED25519:
		return 256;
	case HSM_KEY_EC_P384:
		return 384;
	}
	return 0;
}

/**
 * hsm_attrs_parse() - validate host supplied attributes into a new key
 * @a: attributes as read from host memory
 * @k: key being built
 *
 * The size is not checked here: generation and import check it against
 * the type (import may also derive it from the key material).  A
 * persistent key needs a persistent store, and cannot be a session key.
 *
 * Return: HSM_SC_SUCCESS or HSM_SC_INVALID_FIELD.
 */
static uint16_t hsm_attrs_parse(struct hsm_fw *fw,
				const struct hsm_key_attrs *a,
				struct hsm_key *k)
{
	const char *nul;
	size_t i;

	if (a->handle || a->created || a->version ||
	    a->activated || a->deactivated)
		return HSM_SC_INVALID_FIELD;
	for (i = 0; i < sizeof(a->rsvd) / sizeof(a->rsvd[0]); i++)
		if (a->rsvd[i])
			return HSM_SC_INVALID_FIELD;
	nul = memchr(a->label, 0, sizeof(a->label));
	if (!nul)
		return HSM_SC_INVALID_FIELD;
	for (i = nul - a->label; i < sizeof(a->label); i++)
		if (a->label[i])
			return HSM_SC_INVALID_FIELD;
	if (!hsm_key_id_valid(a->id, le16toh(a->id_len)))
		return HSM_SC_INVALID_FIELD;

	k->id_len = le16toh(a->id_len);
	memcpy(k->id, a->id, sizeof(k->id));
	k->type = le16toh(a->type);
	k->bits = le16toh(a->bits);
	k->uses = le32toh(a->uses);
	k->flags = le32toh(a->flags);
	k->partition = le32toh(a->partition);
	memcpy(k->label, a->label, sizeof(k->label));

	if (k->type < HSM_KEY_AES || k->type >= HSM_KEY_TYPE_MAX)
		return HSM_SC_INVALID_FIELD;
	/* only partitions that exist (0 and 1 always do) */
	if (!hsm_part_exists(fw, k->partition))
		return HSM_SC_INVALID_FIELD;
	if (k->flags & ~HSM_KEYF_ALL)
		return HSM_SC_INVALID_FIELD;
	if ((k->flags & HSM_KEYF_PERSISTENT) &&
	    (!fw->ks_path || (k->flags & HSM_KEYF_SESSION)))
		return HSM_SC_INVALID_FIELD;
	/* uses 0 takes the type's default once the material is known */
	if (k->uses & ~hsm_type_uses[k->type])
		return HSM_SC_INVALID_FIELD;
	k->created = (uint64_t)time(NULL);
	k->version = 1;
	switch (le16toh(a->state)) {
	case HSM_KEY_STATE_DEFAULT:
	case HSM_KEY_STATE_ACTIVE:
		k->state = HSM_KEY_STATE_ACTIVE;
		k->activated = k->created;
		break;
	case HSM_KEY_STATE_PRE_ACTIVE:
		k->state = HSM_KEY_STATE_PRE_ACTIVE;
		break;
	default:
		return HSM_SC_INVALID_FIELD;
	}
	return HSM_SC_SUCCESS;
}

void hsm_attrs_fill(const struct hsm_key *k, struct hsm_key_attrs *a)
{
	uint64_t act, deact;
	uint32_t state;

	hsm_key_life(k, &state, &act, &deact);
	memset(a, 0, sizeof(*a));
	a->state = htole16(state);
	a->version = htole32(k->version);
	a->activated = htole64(act);
	a->deactivated = htole64(deact);
	a->handle = htole64(k->handle);
	a->type = htole16(k->type);
	a->bits = htole16(k->bits);
	a->uses = htole32(k->uses);
	a->flags = htole32(k->flags);
	a->partition = htole32(k->partition);
	a->created = htole64(k->created);
	memcpy(a->label, k->label, sizeof(a->label));
	a->id_len = htole16(k->id_len);
	memcpy(a->id, k->id, sizeof(a->id));
}

/* A NUL terminated, NUL padded label. */
static bool hsm_label_ok(const char *label)
{
	const char *nul = memchr(label, 0, HSM_LABEL_LEN);
	size_t i;

	if (!nul)
		return false;
	for (i = nul - label; i < HSM_LABEL_LEN; i++)
		if (label[i])
			return false;
	return true;
}

/* Reserved words zero and a well-formed key ID. */
static bool hsm_attrs_rsvd_zero(const struct hsm_key_attrs *a)
{
	size_t i;

	if (!hsm_key_id_valid(a->id, le16toh(a->id_len)))
		return false;
	for (i = 0; i < sizeof(a->rsvd) / sizeof(a->rsvd[0]); i++)
		if (a->rsvd[i])
			return false;
	return true;
}

/**
 * hsm_attrs_restore() - attributes of a key unwrapped with HSM_WRAP_F_ATTRS
 * @fw: the card
 * @a:  what the caller asked for (host memory): the partition, and
 *      optionally a narrowing of the blob's attributes
 * @b:  the attributes inside the blob, authenticated by the key wrap
 * @k:  key being built
 *
 * The blob's attributes are authoritative (hsmcard_hw.h, HSM_WRAP_F_ATTRS):
 * the caller may only choose the partition and narrow.
 *
 * Return: HSM_SC_SUCCESS, HSM_SC_INVALID_FIELD (malformed) or
 * HSM_SC_USE_DENIED (the caller asked for more than the blob holds, or
 * something else).
 */
static uint16_t hsm_attrs_restore(struct hsm_fw *fw,
				  const struct hsm_key_attrs *a,
				  const struct hsm_key_attrs *b,
				  struct hsm_key *k)
{
	const uint32_t keep = HSM_KEYF_EXTRACTABLE | HSM_KEYF_PERSISTENT;
	uint32_t ctype, cbits, cuses, cflags, cstate;

	/* the caller's side: the same rules as without the flag */
	if (a->handle || a->created || a->version || a->activated ||
	    a->deactivated || !hsm_attrs_rsvd_zero(a) || !hsm_label_ok(a->label))
		return HSM_SC_INVALID_FIELD;
	ctype = le16toh(a->type);
	cbits = le16toh(a->bits);
	cuses = le32toh(a->uses);
	cflags = le32toh(a->flags);
	cstate = le16toh(a->state);
	if (ctype >= HSM_KEY_TYPE_MAX || (cflags & ~HSM_KEYF_ALL) ||
	    (cuses & ~HSM_USE_ALL) || cstate >= HSM_KEY_STATE_MAX)
		return HSM_SC_INVALID_FIELD;
	k->partition = le32toh(a->partition);
	if (!hsm_part_exists(fw, k->partition))
		return HSM_SC_INVALID_FIELD;

	/* the blob's side: as the card that wrapped it had the key */
	if (b->handle || !hsm_attrs_rsvd_zero(b) || !hsm_label_ok(b->label))
		return HSM_SC_INVALID_FIELD;
	k->type = le16toh(b->type);
	k->bits = le16toh(b->bits);
	k->uses = le32toh(b->uses);
	k->flags = le32toh(b->flags);
	k->state = le16toh(b->state);
	k->version = le32toh(b->version);
	k->created = le64toh(b->created);
	k->activated = le64toh(b->activated);
	k->deactivated = le64toh(b->deactivated);
	memcpy(k->label, b->label, sizeof(k->label));
	k->id_len = le16toh(b->id_len);
	memcpy(k->id, b->id, sizeof(k->id));
	if (k->type < HSM_KEY_AES || k->type >= HSM_KEY_TYPE_MAX ||
	    !k->uses || (k->uses & ~hsm_type_uses[k->type]) ||
	    (k->flags & ~HSM_KEYF_ALL) || !k->version ||
	    k->version == UINT32_MAX ||
	    ((k->flags & HSM_KEYF_PERSISTENT) &&
	     (k->flags & HSM_KEYF_SESSION)))
		return HSM_SC_INVALID_FIELD;
	/* a compromised key is never exported, so no blob holds one */
	if (k->state < HSM_KEY_STATE_PRE_ACTIVE ||
	    k->state > HSM_KEY_STATE_DEACTIVATED)
		return HSM_SC_INVALID_FIELD;

	/* the caller may narrow, never widen or contradict */
	if ((ctype && ctype != k->type) || (cbits && cbits != k->bits) ||
	    (cstate && cstate != k->state) ||
	    (a->label[0] && strcmp(a->label, k->label)) ||
	    (a->id_len && (le16toh(a->id_len) != k->id_len ||
			   memcmp(a->id, k->id, k->id_len))) ||
	    (cuses & ~k->uses))
		return HSM_SC_USE_DENIED;
	if (cuses)
		k->uses = cuses;
	if (cflags) {
		if ((cflags & keep & ~k->flags) ||
		    ((cflags ^ k->flags) & HSM_KEYF_SESSION) ||
		    ((k->flags & HSM_KEYF_SENSITIVE) &&
		     !(cflags & HSM_KEYF_SENSITIVE)))
			return HSM_SC_USE_DENIED;
		k->flags = cflags;
	}
	if ((k->flags & HSM_KEYF_PERSISTENT) && !fw->ks_path)
		return HSM_SC_INVALID_FIELD;
	return HSM_SC_SUCCESS;
}

/* ---- key material ---- */

/*
 * Precompute what commands need from the material: the HMAC pads of HMAC
 * and AUTHENC keys, the modulus bytes of RSA keys.
 */
uint16_t hsm_key_prepare(struct hsm_fw *fw, struct hsm_key *k)
{
	BIGNUM *n = NULL;
	int size;

	switch (k->type) {
	case HSM_KEY_HMAC:
		return hsm_hmac_pads_make(k, k->secret, k->secret_len);
	case HSM_KEY_AUTHENC:
		return hsm_hmac_pads_make(k, k->secret + k->enc_len,
					  k->secret_len - k->enc_len);
	case HSM_KEY_RSA:
		size = EVP_PKEY_get_size(k->pkey);
		k->mod = OPENSSL_malloc(size > 0 ? size : 1);
		if (size <= 0 || !k->mod ||
		    !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
		    BN_bn2binpad(n, k->mod, size) != size) {
			BN_free(n);
			return HSM_SC_INTERNAL;
		}
		BN_free(n);
		return HSM_SC_SUCCESS;
	}
	return HSM_SC_SUCCESS;
}

static uint16_t hsm_key_set_secret(struct hsm_key *k, const void *p,
				   size_t len)
{
	k->secret = OPENSSL_malloc(len ? len : 1);
	if (!k->secret)
		return HSM_SC_INTERNAL;
	k->secret_len = len;
	if (p)
		memcpy(k->secret, p, len);
	else if (RAND_priv_bytes(k->secret, len) != 1)
		return HSM_SC_RNG_FAILURE;
	return HSM_SC_SUCCESS;
}

static uint16_t hsm_key_generate_material(struct hsm_key *k)
{
	switch (k->type) {
	case HSM_KEY_AES:
	case HSM_KEY_HMAC:
		return hsm_key_set_secret(k, NULL, k->bits / 8);
	case HSM_KEY_RSA:
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
					    (size_t)k->bits);
		break;
	case HSM_KEY_EC_P256:
	case HSM_KEY_EC_P384:
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
					    k->type == HSM_KEY_EC_P256 ?
					    "P-256" : "P-384");
		break;
	case HSM_KEY_ED25519:
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	}
	return k->pkey ? HSM_SC_SUCCESS : HSM_SC_INTERNAL;
}

/* Key type and size of an OpenSSL key, or type 0 if we do not take it. */
static uint16_t hsm_pkey_type(EVP_PKEY *pkey, unsigned int *bits)
{
	char group[64];

	*bits = 0;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		*bits = EVP_PKEY_get_bits(pkey);
		return HSM_KEY_RSA;
	}
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		*bits = 256;
		return HSM_KEY_ED25519;
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					   group, sizeof(group), NULL)) {
		if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")) {
			*bits = 256;
			return HSM_KEY_EC_P256;
		}
		if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384")) {
			*bits = 384;
			return HSM_KEY_EC_P384;
		}
	}
	return 0;
}

/* HSM_KEY_AUTHENC: struct hsm_authenc_key_hdr || AES key || HMAC key. */
static uint16_t hsm_authenc_set(struct hsm_key *k, const uint8_t *p,
				size_t len)
{
	struct hsm_authenc_key_hdr h;
	size_t enc, mac;

	if (len < sizeof(h))
		return HSM_SC_INVALID_LENGTH;
	memcpy(&h, p, sizeof(h));
	enc = le16toh(h.enc_len);
	mac = le16toh(h.mac_len);
	if (h.rsvd)
		return HSM_SC_INVALID_FIELD;
	if (hsm_aes_index(enc) < 0 || mac > HSM_HMAC_IMPORT_MAX)
		return HSM_SC_INVALID_KEY_SIZE;
	if (len != sizeof(h) + enc + mac)
		return HSM_SC_INVALID_LENGTH;
	if (!k->bits)
		k->bits = enc * 8;
	if (k->bits != enc * 8)
		return HSM_SC_INVALID_KEY_SIZE;
	k->enc_len = enc;
	return hsm_key_set_secret(k, p + sizeof(h), enc + mac);
}

/*
 * An RSA key in one of the DER forms KEY_IMPORT takes besides PKCS#8:
 * PKCS#1 RSAPrivateKey or RSAPublicKey.  NULL if it is neither.
 */
static EVP_PKEY *hsm_rsa_pkcs1(struct hsm_key *k, const uint8_t *p,
			       size_t len)
{
	const unsigned char *q = p;
	EVP_PKEY *pkey;

	pkey = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &q, (long)len);
	if (pkey && q == p + len)
		return pkey;
	EVP_PKEY_free(pkey);
	q = p;
	pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)len);
	if (pkey && q == p + len) {
		k->public_only = true;
		return pkey;
	}
	EVP_PKEY_free(pkey);
	return NULL;
}

/**
 * hsm_key_set_material() - give a new key material from the host
 * @k:      key with parsed attributes
 * @p:      raw key bytes (AES, HMAC), a DER PKCS#8 PrivateKeyInfo, or for
 *          KEY_IMPORT also an RSA PKCS#1 private or public key or an
 *          AUTHENC key blob
 * @len:    bytes at @p
 * @import: KEY_IMPORT, which takes sizes and forms the card would not
 *          generate or keep (see HSM_HMAC_IMPORT_MAX in hsmcard_hw.h)
 *
 * A size of 0 in the attributes takes the size of the material.
 *
 * Return: HSM_SC_SUCCESS, HSM_SC_INVALID_KEY_SIZE, HSM_SC_KEY_TYPE,
 * HSM_SC_INVALID_LENGTH or HSM_SC_INVALID_FIELD (malformed or
 * inconsistent key, or uses a public key cannot have).
 */
uint16_t hsm_key_set_material(struct hsm_key *k, const uint8_t *p, size_t len,
			      bool import)
{
	const unsigned char *q = p;
	PKCS8_PRIV_KEY_INFO *p8;
	bool relaxed;
	unsigned int bits;
	EVP_PKEY_CTX *ctx;
	uint16_t type;
	int ok;

	if (k->type == HSM_KEY_AUTHENC)
		return import ? hsm_authenc_set(k, p, len) : HSM_SC_KEY_TYPE;
	if (hsm_type_symmetric(k->type)) {
		relaxed = import && k->type == HSM_KEY_HMAC;
		if (len > (relaxed ? HSM_HMAC_IMPORT_MAX : 1024 / 8))
			return HSM_SC_INVALID_KEY_SIZE;
		if (!k->bits)
			k->bits = len * 8;
		if (k->bits != len * 8 ||
		    (!relaxed && !hsm_bits_valid(k->type, k->bits)))
			return HSM_SC_INVALID_KEY_SIZE;
		/* XTS refuses a key made of two equal halves */
		if (k->type == HSM_KEY_AES && k->bits == 512 &&
		    !CRYPTO_memcmp(p, p + 32, 32))
			return HSM_SC_INVALID_FIELD;
		return hsm_key_set_secret(k, p, len);
	}

	relaxed = import && k->type == HSM_KEY_RSA;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)len);
	if (p8 && q == p + len)
		k->pkey = EVP_PKCS82PKEY(p8);
	else if (relaxed)
		k->pkey = hsm_rsa_pkcs1(k, p, len);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (!k->pkey)
		return HSM_SC_INVALID_FIELD;
	type = hsm_pkey_type(k->pkey, &bits);
	if (type != k->type)
		return HSM_SC_KEY_TYPE;
	if (!k->bits)
		k->bits = bits;
	if (k->bits != bits ||
	    (relaxed ? bits < HSM_RSA_IMPORT_MIN || bits > HSM_RSA_IMPORT_MAX :
		       !hsm_bits_valid(k->type, k->bits)))
		return HSM_SC_INVALID_KEY_SIZE;
	if (k->public_only && (k->uses & ~HSM_RSA_PUBLIC_USES))
		return HSM_SC_INVALID_FIELD;
	/* the private and public halves must belong together */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	ok = ctx && (k->public_only ? EVP_PKEY_public_check(ctx) :
				      EVP_PKEY_pairwise_check(ctx)) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok ? HSM_SC_SUCCESS : HSM_SC_INVALID_FIELD;
}

/* Serialize the private material for wrapping; *outp is freed by caller. */
uint16_t hsm_key_get_material(const struct hsm_key *k, unsigned char **outp,
			      size_t *lenp)
{
	PKCS8_PRIV_KEY_INFO *p8;
	unsigned char *buf = NULL;
	int len;

	if (k->secret) {
		buf = OPENSSL_malloc(k->secret_len);
		if (!buf)
			return HSM_SC_INTERNAL;
		memcpy(buf, k->secret, k->secret_len);
		*outp = buf;
		*lenp = k->secret_len;
		return HSM_SC_SUCCESS;
	}
	p8 = EVP_PKEY2PKCS8(k->pkey);
	if (!p8)
		return HSM_SC_INTERNAL;
	len = i2d_PKCS8_PRIV_KEY_INFO(p8, &buf);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (len <= 0)
		return HSM_SC_INTERNAL;
	*outp = buf;
	*lenp = len;
	return HSM_SC_SUCCESS;
}

/*
 * The HSM_WRAP_F_ATTRS payload of @k (hsmcard_hw.h): magic, attributes
 * length, attributes with handle 0, material.  *outp is freed by caller.
 */
static uint16_t hsm_key_get_attrs_material(const struct hsm_key *k,
					   unsigned char **outp,
					   size_t *lenp)
{
	const size_t hdr = HSM_WRAP_ATTRS_HDR + HSM_ATTRS_SIZE;
	struct hsm_key_attrs a;
	unsigned char *mat, *buf;
	uint16_t alen = htole16(HSM_ATTRS_SIZE);
	size_t matlen;
	uint16_t st;

	st = hsm_key_get_material(k, &mat, &matlen);
	if (st)
		return st;
	buf = OPENSSL_malloc(hdr + matlen);
	if (!buf) {
		OPENSSL_clear_free(mat, matlen);
		return HSM_SC_INTERNAL;
	}
	hsm_attrs_fill(k, &a);
	a.handle = 0;
	memcpy(buf, HSM_WRAP_ATTRS_MAGIC, HSM_WRAP_ATTRS_HDR - 2);
	memcpy(buf + HSM_WRAP_ATTRS_HDR - 2, &alen, sizeof(alen));
	memcpy(buf + HSM_WRAP_ATTRS_HDR, &a, sizeof(a));
	memcpy(buf + hdr, mat, matlen);
	OPENSSL_clear_free(mat, matlen);
	*outp = buf;
	*lenp = hdr + matlen;
	return HSM_SC_SUCCESS;
}

/* ---- helpers for commands ---- */

/* Read the whole source buffer into a new allocation. */
static uint16_t hsm_read_src(struct hsm_cmd *c, unsigned char **bufp)
{
	struct hsm_xbuf *xb;
	unsigned char *buf;
	uint16_t st;

	*bufp = NULL;
	xb = malloc(sizeof(*xb));
	buf = OPENSSL_malloc(c->src_len ? c->src_len : 1);
	if (!xb || !buf) {
		st = HSM_SC_INTERNAL;
		goto err;
	}
	st = hsm_xbuf_src(c, xb);
	if (!st)
		st = hsm_xbuf_read(xb, buf, c->src_len);
	if (st)
		goto err;
	free(xb);
	*bufp = buf;
	return HSM_SC_SUCCESS;
err:
	free(xb);
	OPENSSL_clear_free(buf, c->src_len);
	return st;
}

/* Write @len bytes to dst, or report the size needed. */
static uint16_t hsm_write_dst(struct hsm_cmd *c, const void *buf, size_t len)
{
	struct hsm_xbuf *xb;
	uint16_t st;

	if (c->dst_len < len) {
		c->result = len;
		return HSM_SC_BUFFER_TOO_SMALL;
	}
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_dst(c, xb);
	if (!st)
		st = hsm_xbuf_write(xb, buf, len);
	free(xb);
	if (!st)
		c->result = len;
	return st;
}

/*
 * KEY_IMPORT makes volatile session keys, with one exception: a
 * key-encryption key entered in a key ceremony (the same KEK on two cards,
 * for backup and restore) may be persistent.  It must be AES, may only
 * wrap and/or unwrap, and can never leave the card.
 */
static bool hsm_kek_ceremony_ok(const struct hsm_key *k)
{
	const uint32_t kek_uses = HSM_USE_WRAP | HSM_USE_UNWRAP;

	return k->type == HSM_KEY_AES && k->uses && !(k->uses & ~kek_uses) &&
	       !(k->flags & HSM_KEYF_EXTRACTABLE);
}

/* Build a key from attrs and material (or generate it) and store it. */
static uint16_t hsm_key_create(struct hsm_cmd *c,
			       const struct hsm_key_attrs *a,
			       const struct hsm_key_attrs *blob_attrs,
			       const uint8_t *material, size_t len,
			       bool session, const struct hsm_key *kek)
{
	bool ceremony = false;
	struct hsm_key *k;
	uint16_t st;

	k = calloc(1, sizeof(*k));
	if (!k)
		return HSM_SC_INTERNAL;
	if (blob_attrs)
		st = hsm_attrs_restore(c->fw, a, blob_attrs, k);
	else
		st = hsm_attrs_parse(c->fw, a, k);
	if (st)
		goto err;
	if (session && (k->flags & HSM_KEYF_PERSISTENT)) {
		if (!hsm_kek_ceremony_ok(k)) {
			st = HSM_SC_INVALID_FIELD;
			goto err;
		}
		ceremony = true;
	}
	if (session && !ceremony)
		k->flags |= HSM_KEYF_SESSION;
	if (kek && kek->partition != k->partition) {
		st = HSM_SC_INVALID_HANDLE;
		goto err;
	}
	if (material) {
		st = hsm_key_set_material(k, material, len, session);
		/* a KEK is AES-128/192/256, not an XTS double key */
		if (!st && ceremony && k->bits == 512)
			st = HSM_SC_INVALID_KEY_SIZE;
	} else if (k->type == HSM_KEY_AUTHENC) {
		st = HSM_SC_KEY_TYPE;	/* import only */
	} else {
		if (!k->bits)
			k->bits = hsm_default_bits(k->type);
		if (!hsm_bits_valid(k->type, k->bits))
			st = HSM_SC_INVALID_KEY_SIZE;
		else
			st = hsm_key_generate_material(k);
	}
	if (!st && !k->uses)
		k->uses = hsm_type_default_uses[k->type] &
			  (k->public_only ? HSM_RSA_PUBLIC_USES : HSM_USE_ALL);
	if (!st)
		st = hsm_key_prepare(c->fw, k);
	if (!st)
		st = hsm_key_insert(c->fw, k, NULL, blob_attrs != NULL);
	if (st)
		goto err;
	/* a persistent key is acknowledged only once it is on disk */
	if (k->flags & HSM_KEYF_PERSISTENT) {
		uint64_t handle = k->handle;

		st = hsm_store_save(c->fw);
		if (st) {
			hsm_key_put(hsm_key_remove(c->fw, handle));
			return st;
		}
	}
	c->result = k->handle;
	return HSM_SC_SUCCESS;
err:
	hsm_key_free(k);
	return st;
}

/* ---- commands ---- */

/* KEY_GENERATE: src = struct hsm_key_attrs; result = handle. */
uint16_t hsm_adm_key_generate(struct hsm_cmd *c)
{
	unsigned char *buf;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC);
	if (st)
		return st;
	if (hsm_fw_is_tampered(c->fw))
		return HSM_SC_TAMPERED;
	if (c->src_len != HSM_ATTRS_SIZE)
		return HSM_SC_INVALID_LENGTH;
	st = hsm_read_src(c, &buf);
	if (st)
		return st;
	st = hsm_key_create(c, (const struct hsm_key_attrs *)buf, NULL, NULL,
			    0, false, NULL);
	OPENSSL_free(buf);
	return st;
}

/*
 * KEY_IMPORT: src = attrs || clear key; a volatile session key, or a
 * persistent key-encryption key (see hsm_kek_ceremony_ok()).
 */
uint16_t hsm_adm_key_import(struct hsm_cmd *c)
{
	unsigned char *buf;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC);
	if (st)
		return st;
	if (hsm_fw_is_tampered(c->fw))
		return HSM_SC_TAMPERED;
	if (c->src_len < HSM_ATTRS_SIZE || c->src_len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	st = hsm_read_src(c, &buf);
	if (st)
		return st;
	st = hsm_key_create(c, (const struct hsm_key_attrs *)buf, NULL,
			    buf + HSM_ATTRS_SIZE, c->src_len - HSM_ATTRS_SIZE,
			    true, NULL);
	OPENSSL_clear_free(buf, c->src_len);
	return st;
}

/* A key-encryption key for RFC 5649: AES-128/192/256 with @use. */
static uint16_t hsm_kek_get(struct hsm_cmd *c, uint64_t handle, uint32_t use,
			    struct hsm_key **kp, EVP_CIPHER **cipher)
{
	struct hsm_key *k;
	uint16_t st;
	int idx;

	st = hsm_key_get(c->fw, handle, &k);
	if (st)
		return st;
	if (k->type != HSM_KEY_AES) {
		st = HSM_SC_KEY_TYPE;
	} else {
		st = hsm_key_use(k, use);
	}
	if (!st) {
		idx = hsm_aes_index(k->secret_len);
		if (idx < 0)
			st = HSM_SC_INVALID_KEY_SIZE;
		else
			*cipher = c->fw->aes_kwp[idx];
	}
	if (st) {
		hsm_key_put(k);
		return st;
	}
	*kp = k;
	return HSM_SC_SUCCESS;
}

/* One RFC 5649 wrap or unwrap; *outp is freed by the caller. */
static uint16_t hsm_kwp(const struct hsm_key *kek, EVP_CIPHER *cipher,
			bool wrap, const unsigned char *in, size_t inlen,
			unsigned char **outp, size_t *outlen)
{
	EVP_CIPHER_CTX *ctx;
	size_t cap = inlen + 16;
	unsigned char *out;
	int n1 = 0, n2 = 0;
	uint16_t st = HSM_SC_SUCCESS;

	out = OPENSSL_malloc(cap);
	ctx = EVP_CIPHER_CTX_new();
	if (!out || !ctx) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (!EVP_CipherInit_ex2(ctx, cipher, kek->secret, NULL, wrap, NULL)) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	if (!EVP_CipherUpdate(ctx, out, &n1, in, (int)inlen) ||
	    !EVP_CipherFinal_ex(ctx, out + n1, &n2)) {
		st = wrap ? HSM_SC_INTERNAL : HSM_SC_DECRYPT_FAILED;
		goto out;
	}
	*outlen = (size_t)n1 + n2;
	*outp = out;
	out = NULL;
out:
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_clear_free(out, cap);
	return st;
}

/*
 * Split an HSM_WRAP_F_ATTRS payload (hsmcard_hw.h) into the attributes
 * and the material.
 */
static uint16_t hsm_attrs_payload(const unsigned char *p, size_t len,
				  struct hsm_key_attrs *b, size_t *mat_off)
{
	uint16_t alen;

	if (len < HSM_WRAP_ATTRS_HDR ||
	    memcmp(p, HSM_WRAP_ATTRS_MAGIC, HSM_WRAP_ATTRS_HDR - 2))
		return HSM_SC_DECRYPT_FAILED;
	memcpy(&alen, p + HSM_WRAP_ATTRS_HDR - 2, sizeof(alen));
	if (le16toh(alen) != HSM_ATTRS_SIZE ||
	    len <= HSM_WRAP_ATTRS_HDR + HSM_ATTRS_SIZE)
		return HSM_SC_INVALID_FIELD;
	memcpy(b, p + HSM_WRAP_ATTRS_HDR, HSM_ATTRS_SIZE);
	*mat_off = HSM_WRAP_ATTRS_HDR + HSM_ATTRS_SIZE;
	return HSM_SC_SUCCESS;
}

/*
 * KEY_UNWRAP: handle = AES key with USE_UNWRAP, mech = 0 or AES_KWP,
 * cdw[2] = 0 or HSM_WRAP_F_ATTRS, src = attrs || RFC 5649 blob; the new
 * key lands in the unwrapping key's partition, which attrs.partition must
 * name.  result = handle.
 */
uint16_t hsm_adm_key_unwrap(struct hsm_cmd *c)
{
	unsigned char *buf = NULL, *key = NULL;
	struct hsm_key_attrs battrs;
	struct hsm_key *kek;
	EVP_CIPHER *cipher = NULL;
	size_t keylen = 0, bloblen = 0, off = 0;
	uint32_t wflags;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC | HSM_F_HANDLE | HSM_F_MECH |
				  HSM_F_CDW(2));
	if (st)
		return st;
	wflags = c->cdw[2];
	if (wflags & ~HSM_WRAP_F_ALL)
		return HSM_SC_INVALID_FIELD;
	if (c->mech && c->mech != HSM_MECH_AES_KWP)
		return HSM_SC_INVALID_MECH;
	st = hsm_kek_get(c, c->handle, HSM_USE_UNWRAP, &kek, &cipher);
	if (st)
		return st;
	if (c->src_len > HSM_FW_MAX_XFER || c->src_len < HSM_ATTRS_SIZE + 16 ||
	    (c->src_len - HSM_ATTRS_SIZE) % 8) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	bloblen = c->src_len - HSM_ATTRS_SIZE;
	st = hsm_read_src(c, &buf);
	if (st)
		goto out;
	st = hsm_kwp(kek, cipher, false, buf + HSM_ATTRS_SIZE, bloblen, &key,
		     &keylen);
	if (!st && (wflags & HSM_WRAP_F_ATTRS))
		st = hsm_attrs_payload(key, keylen, &battrs, &off);
	if (!st)
		st = hsm_key_create(c, (const struct hsm_key_attrs *)buf,
				    (wflags & HSM_WRAP_F_ATTRS) ? &battrs : NULL,
				    key + off, keylen - off, false, kek);
out:
	OPENSSL_cleanse(&battrs, sizeof(battrs));
	OPENSSL_clear_free(key, bloblen + 16);
	OPENSSL_free(buf);
	hsm_key_put(kek);
	return st;
}

/*
 * KEY_WRAP: handle = key to export (EXTRACTABLE), qw[0] = AES key with
 * USE_WRAP in the same partition, mech = 0 or AES_KWP, cdw[2] = 0 or
 * HSM_WRAP_F_ATTRS, dst = RFC 5649 blob of the raw key (AES, HMAC) or its
 * DER PKCS#8 PrivateKeyInfo, with the flag preceded by the attributes.
 * result = blob length.
 */
uint16_t hsm_adm_key_wrap(struct hsm_cmd *c)
{
	unsigned char *mat = NULL, *blob = NULL;
	struct hsm_key *k, *kek = NULL;
	size_t matlen = 0, bloblen = 0;
	EVP_CIPHER *cipher = NULL;
	uint32_t wflags;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_DST | HSM_F_HANDLE | HSM_F_MECH |
				  HSM_F_CDW(0) | HSM_F_CDW(1) | HSM_F_CDW(2));
	if (st)
		return st;
	wflags = c->cdw[2];
	if (wflags & ~HSM_WRAP_F_ALL)
		return HSM_SC_INVALID_FIELD;
	if (c->mech && c->mech != HSM_MECH_AES_KWP)
		return HSM_SC_INVALID_MECH;
	st = hsm_key_get(c->fw, c->handle, &k);
	if (st)
		return st;
	st = hsm_kek_get(c, c->qw[0], HSM_USE_WRAP, &kek, &cipher);
	if (st)
		goto out;
	if (kek->partition != k->partition) {
		st = HSM_SC_INVALID_HANDLE;
		goto out;
	}
	/* no wrapped form for these: KEY_UNWRAP could not take it back */
	if (k->type == HSM_KEY_AUTHENC || k->public_only) {
		st = HSM_SC_KEY_TYPE;
		goto out;
	}
	if (!hsm_bits_valid(k->type, k->bits)) {
		st = HSM_SC_INVALID_KEY_SIZE;	/* imported, odd size */
		goto out;
	}
	if (!(k->flags & HSM_KEYF_EXTRACTABLE)) {
		st = HSM_SC_NOT_EXTRACTABLE;
		goto out;
	}
	/* a compromised key never leaves, not even wrapped */
	if (__atomic_load_n(&k->state, __ATOMIC_ACQUIRE) ==
	    HSM_KEY_STATE_COMPROMISED) {
		st = HSM_SC_KEY_COMPROMISED;
		goto out;
	}
	if (wflags & HSM_WRAP_F_ATTRS)
		st = hsm_key_get_attrs_material(k, &mat, &matlen);
	else
		st = hsm_key_get_material(k, &mat, &matlen);
	if (st)
		goto out;
	/* RFC 5649: payload padded to 8 bytes plus the 8-byte AIV block */
	if (c->dst_len < ((matlen + 7) & ~(size_t)7) + 8) {
		c->result = ((matlen + 7) & ~(size_t)7) + 8;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	st = hsm_kwp(kek, cipher, true, mat, matlen, &blob, &bloblen);
	if (!st)
		st = hsm_write_dst(c, blob, bloblen);
out:
	OPENSSL_clear_free(mat, matlen);
	OPENSSL_free(blob);
	hsm_key_put(kek);
	hsm_key_put(k);
	return st;
}

/* KEY_EXPORT_PUB: dst = DER SubjectPublicKeyInfo; result = its length. */
uint16_t hsm_adm_key_export_pub(struct hsm_cmd *c)
{
	unsigned char *der = NULL;
	struct hsm_key *k;
	uint16_t st;
	int len;

	st = hsm_cmd_check_fields(c, HSM_F_DST | HSM_F_HANDLE);
	if (st)
		return st;
	st = hsm_key_get(c->fw, c->handle, &k);
	if (st)
		return st;
	if (!k->pkey) {
		st = HSM_SC_KEY_TYPE;
		goto out;
	}
	len = i2d_PUBKEY(k->pkey, &der);
	if (len <= 0) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_write_dst(c, der, len);
	OPENSSL_free(der);
out:
	hsm_key_put(k);
	return st;
}

/* KEY_DESTROY: handle. */
uint16_t hsm_adm_key_destroy(struct hsm_cmd *c)
{
	struct hsm_key *k;
	bool persistent;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_HANDLE);
	if (st)
		return st;
	if (hsm_fw_is_tampered(c->fw))
		return HSM_SC_TAMPERED;
	k = hsm_key_remove(c->fw, c->handle);
	if (!k)
		return HSM_SC_INVALID_HANDLE;
	persistent = k->flags & HSM_KEYF_PERSISTENT;
	hsm_key_put(k);
	/* the key is gone from the card either way; report a failed rewrite */
	return persistent ? hsm_store_save(c->fw) : HSM_SC_SUCCESS;
}

/*
 * KEY_LIST: cdw[0] = partition, aux = number of the partition's keys to
 * skip (cursor), dst = room for dst_len / 8 handles (__le64), in slot
 * order.  result = (keys in the partition << 32) | handles written.
 */
uint16_t hsm_adm_key_list(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	uint32_t cap = c->dst_len / 8, count = 0, total = 0;
	struct hsm_xbuf *xb = NULL;
	uint64_t *out = NULL;
	unsigned int i;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_DST | HSM_F_AUX | HSM_F_CDW(0));
	if (st)
		return st;
	if (hsm_fw_is_tampered(fw))
		return HSM_SC_TAMPERED;
	if (!hsm_part_exists(fw, c->cdw[0]))
		return HSM_SC_INVALID_FIELD;
	if (c->dst_len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	xb = malloc(sizeof(*xb));
	out = malloc(cap ? cap * sizeof(*out) : 1);
	if (!xb || !out) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_xbuf_dst(c, xb);
	if (st)
		goto out;
	pthread_rwlock_rdlock(&fw->ks_lock);
	for (i = 0; i < fw->cfg.max_keys; i++) {
		struct hsm_key *k = fw->slots[i];

		if (!k || k->partition != c->cdw[0])
			continue;
		if (total++ >= c->aux && count < cap)
			out[count++] = htole64(k->handle);
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	st = hsm_xbuf_write(xb, out, count * sizeof(*out));
	if (!st)
		c->result = ((uint64_t)total << 32) | count;
out:
	free(out);
	free(xb);
	return st;
}

/* KEY_GET_ATTRS: handle; dst = struct hsm_key_attrs. */
uint16_t hsm_adm_key_get_attrs(struct hsm_cmd *c)
{
	struct hsm_key_attrs a;
	struct hsm_key *k;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_DST | HSM_F_HANDLE);
	if (st)
		return st;
	st = hsm_key_get(c->fw, c->handle, &k);
	if (st)
		return st;
	hsm_attrs_fill(k, &a);
	hsm_key_put(k);
	return hsm_write_dst(c, &a, sizeof(a));
}

/* ---- lifecycle ---- */

static bool hsm_state_change_ok(uint32_t from, uint32_t to)
{
	switch (to) {
	case HSM_KEY_STATE_ACTIVE:
		return from == HSM_KEY_STATE_PRE_ACTIVE;
	case HSM_KEY_STATE_DEACTIVATED:
		return from == HSM_KEY_STATE_PRE_ACTIVE ||
		       from == HSM_KEY_STATE_ACTIVE;
	case HSM_KEY_STATE_COMPROMISED:
		return from != HSM_KEY_STATE_COMPROMISED;
	}
	return false;
}

/*
 * KEY_SET_STATE: handle, cdw[0] = new state; result = the previous state.
 * A persistent key's new state is sealed before the command completes; if
 * the store cannot be written the command fails but the key keeps its new
 * state in memory (the stricter one: a state only moves forward).
 */
uint16_t hsm_adm_key_set_state(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	uint32_t to = c->cdw[0], from;
	uint64_t now = (uint64_t)time(NULL);
	struct hsm_key *k;
	bool persistent;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_HANDLE | HSM_F_CDW(0));
	if (st)
		return st;
	if (hsm_fw_is_tampered(fw))
		return HSM_SC_TAMPERED;
	if (to < HSM_KEY_STATE_PRE_ACTIVE || to >= HSM_KEY_STATE_MAX)
		return HSM_SC_INVALID_FIELD;
	st = hsm_key_get(fw, c->handle, &k);
	if (st)
		return st;
	pthread_rwlock_wrlock(&fw->ks_lock);
	from = k->state;
	if (fw->slots[HSM_HANDLE_SLOT(k->handle)] != k) {
		st = HSM_SC_INVALID_HANDLE;	/* destroyed meanwhile */
	} else if (!hsm_state_change_ok(from, to)) {
		st = HSM_SC_KEY_STATE;
	} else {
		hsm_key_set_life(k, to,
				 to == HSM_KEY_STATE_ACTIVE ? now :
							      k->activated,
				 to == HSM_KEY_STATE_ACTIVE || k->deactivated ?
				 k->deactivated : now);
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	persistent = k->flags & HSM_KEYF_PERSISTENT;
	hsm_key_put(k);
	if (st)
		return st;
	c->result = from;
	return persistent ? hsm_store_save(fw) : HSM_SC_SUCCESS;
}

/* Can the card make a fresh key like @k? */
static bool hsm_key_generable(const struct hsm_key *k)
{
	return k->type != HSM_KEY_AUTHENC && !k->public_only &&
	       hsm_bits_valid(k->type, k->bits);
}

/*
 * Take back a rotation that cannot be acknowledged: the new version goes,
 * the old one is ACTIVE again (if nothing else changed its state since).
 */
void hsm_key_rotate_undo(struct hsm_fw *fw, uint64_t old_handle,
			 uint64_t new_handle)
{
	struct hsm_key *nk, *old = NULL;
	bool persistent;

	nk = hsm_key_remove(fw, new_handle);
	if (!nk)
		return;
	persistent = nk->flags & HSM_KEYF_PERSISTENT;
	pthread_rwlock_wrlock(&fw->ks_lock);
	if (HSM_HANDLE_SLOT(old_handle) < fw->cfg.max_keys)
		old = fw->slots[HSM_HANDLE_SLOT(old_handle)];
	if (old && old->handle == old_handle &&
	    old->state == HSM_KEY_STATE_DEACTIVATED &&
	    old->deactivated == nk->created)
		hsm_key_set_life(old, HSM_KEY_STATE_ACTIVE, old->activated, 0);
	pthread_rwlock_unlock(&fw->ks_lock);
	hsm_key_put(nk);
	if (persistent)
		hsm_store_save(fw);
}

/*
 * The ID a command names: src = HSM_KEY_ID_LEN bytes, @len of them used
 * (1..HSM_KEY_ID_LEN), the rest zero.
 */
static uint16_t hsm_read_id(struct hsm_cmd *c, uint32_t len, uint8_t *id)
{
	struct hsm_xbuf *xb;
	uint16_t st;

	if (c->src_len != HSM_KEY_ID_LEN)
		return HSM_SC_INVALID_LENGTH;
	if (!len || len > HSM_KEY_ID_LEN)
		return HSM_SC_INVALID_FIELD;
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_src(c, xb);
	if (!st)
		st = hsm_xbuf_read(xb, id, HSM_KEY_ID_LEN);
	free(xb);
	if (!st && !hsm_key_id_valid(id, len))
		st = HSM_SC_INVALID_FIELD;
	return st;
}

/*
 * KEY_ROTATE: handle = an ACTIVE key; result = the new version's handle.
 * cdw[0] & HSM_ROTATE_F_ID: src = the new version's key ID, cdw[1] its
 * length.  The new key and the old key's DEACTIVATED state are sealed
 * together.
 */
uint16_t hsm_adm_key_rotate(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_key *old, *k = NULL;
	uint8_t id[HSM_KEY_ID_LEN] = { 0 };
	uint32_t id_len = 0;
	uint16_t st;

	if (c->cdw[0] & HSM_ROTATE_F_ID)
		st = hsm_cmd_check_fields(c, HSM_F_HANDLE | HSM_F_SRC |
					  HSM_F_CDW(0) | HSM_F_CDW(1));
	else
		st = hsm_cmd_check_fields(c, HSM_F_HANDLE | HSM_F_CDW(0));
	if (st)
		return st;
	if (c->cdw[0] & ~HSM_ROTATE_F_ID)
		return HSM_SC_INVALID_FIELD;
	if (hsm_fw_is_tampered(fw))
		return HSM_SC_TAMPERED;
	if (c->cdw[0] & HSM_ROTATE_F_ID) {
		id_len = c->cdw[1];
		st = hsm_read_id(c, id_len, id);
		if (st)
			return st;
	}
	st = hsm_key_get(fw, c->handle, &old);
	if (st)
		return st;
	st = hsm_key_state_check(old, HSM_USE_ENCRYPT);
	if (st)
		goto out;
	if (!hsm_key_generable(old)) {
		st = HSM_SC_KEY_TYPE;
		goto out;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	k->type = old->type;
	k->bits = old->bits;
	k->uses = old->uses;
	k->flags = old->flags;
	k->partition = old->partition;
	memcpy(k->label, old->label, sizeof(k->label));
	k->id_len = id_len;
	memcpy(k->id, id, sizeof(k->id));
	k->created = (uint64_t)time(NULL);
	k->state = HSM_KEY_STATE_ACTIVE;
	k->activated = k->created;
	st = hsm_key_generate_material(k);
	if (!st)
		st = hsm_key_prepare(fw, k);
	if (!st)
		st = hsm_key_insert(fw, k, old, false);
	if (st) {
		hsm_key_free(k);
		goto out;
	}
	/* both changes reach the disk in one write, or neither counts */
	if ((k->flags & HSM_KEYF_PERSISTENT) && hsm_store_save(fw)) {
		hsm_key_rotate_undo(fw, old->handle, k->handle);
		st = HSM_SC_INTERNAL;
		goto out;
	}
	c->result = k->handle;
out:
	hsm_key_put(old);
	return st;
}

/* KEY_FIND by ID: cdw[0] = partition, cdw[1] = ID length, src = ID. */
static uint16_t hsm_key_find_id(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	uint8_t id[HSM_KEY_ID_LEN];
	struct hsm_key *k;
	uint64_t handle = 0;
	uint16_t st;

	st = hsm_read_id(c, c->cdw[1], id);
	if (st)
		return st;
	pthread_rwlock_rdlock(&fw->ks_lock);
	k = hsm_id_find(fw, c->cdw[0], id, c->cdw[1]);
	if (k)
		handle = k->handle;
	pthread_rwlock_unlock(&fw->ks_lock);
	if (!handle)
		return HSM_SC_INVALID_HANDLE;
	c->result = handle;
	return HSM_SC_SUCCESS;
}

/*
 * KEY_FIND: cdw[0] = partition, cdw[1] = version (0: newest), src =
 * HSM_LABEL_LEN bytes of label; result = handle.  cdw[2] = HSM_FIND_BY_ID:
 * by key ID instead (hsm_key_find_id()).
 */
uint16_t hsm_adm_key_find(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	char label[HSM_LABEL_LEN];
	struct hsm_label_fam *f;
	struct hsm_xbuf *xb;
	const char *nul;
	uint64_t handle = 0;
	uint32_t ver = c->cdw[1];
	unsigned int i;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC | HSM_F_CDW(0) | HSM_F_CDW(1) |
				  HSM_F_CDW(2));
	if (st)
		return st;
	if (c->cdw[2] != HSM_FIND_BY_LABEL && c->cdw[2] != HSM_FIND_BY_ID)
		return HSM_SC_INVALID_FIELD;
	if (hsm_fw_is_tampered(fw))
		return HSM_SC_TAMPERED;
	if (!hsm_part_exists(fw, c->cdw[0]))
		return HSM_SC_INVALID_FIELD;
	if (c->cdw[2] == HSM_FIND_BY_ID)
		return hsm_key_find_id(c);
	if (c->src_len != HSM_LABEL_LEN)
		return HSM_SC_INVALID_LENGTH;
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_src(c, xb);
	if (!st)
		st = hsm_xbuf_read(xb, label, sizeof(label));
	free(xb);
	if (st)
		return st;
	nul = memchr(label, 0, sizeof(label));
	if (!nul || nul == label)
		return HSM_SC_INVALID_FIELD;
	for (i = nul - label; i < sizeof(label); i++)
		if (label[i])
			return HSM_SC_INVALID_FIELD;

	pthread_rwlock_rdlock(&fw->ks_lock);
	f = hsm_label_find(fw, c->cdw[0], label);
	if (f && f->nr) {
		if (!ver) {
			handle = f->v[f->nr - 1].handle;
		} else {
			/* versions are few: a family grows by rotations */
			for (i = f->nr; i-- > 0;)
				if (f->v[i].version == ver) {
					handle = f->v[i].handle;
					break;
				}
		}
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	if (!handle)
		return HSM_SC_INVALID_HANDLE;
	c->result = handle;
	return HSM_SC_SUCCESS;
}
