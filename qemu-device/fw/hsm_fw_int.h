/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hsmcard firmware core: internal definitions shared by the core's files.
 * Not part of the API seen by the QEMU glue, the tests or the benchmark.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSM_FW_INT_H
#define HSM_FW_INT_H

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "hsm_fw.h"

#define HSM_FW_MAX_XFER		(1u << 20)
#define HSM_FW_FW_REV		"1.0.0"
#define HSM_FW_MODEL		"hsmcard virtual HSM"

/* Hash functions, indexed by hsm_hash_index() */
enum {
	HSM_HASH_SHA256,
	HSM_HASH_SHA384,
	HSM_HASH_SHA512,
	HSM_HASH_NR,
};

/* AES key sizes, indexed by hsm_aes_index(): 128, 192, 256 bits */
#define HSM_AES_NR		3

/* A SHA-2 chaining value: 8 words (SHA-256 uses the low 32 bits). */
struct hsm_hstate {
	uint64_t h[8];
};

/* HMAC key schedule: chaining values after K^ipad and K^opad, per hash. */
struct hsm_hmac_pads {
	struct hsm_hstate in[HSM_HASH_NR];
	struct hsm_hstate out[HSM_HASH_NR];
};

/**
 * struct hsm_key - one key held by the card
 * @handle:    the handle the host sees (slot, partition, random tag)
 * @refcnt:    one reference held by the key store slot, one per user
 * @type:      enum hsm_key_type
 * @bits:      key size in bits
 * @uses:      HSM_USE_* allowed
 * @flags:     HSM_KEYF_*
 * @partition: owner partition
 * @created:   creation time, seconds since the epoch
 * @label:     NUL padded label
 * @secret:    raw key bytes of AES and HMAC keys
 * @secret_len: bytes in @secret
 * @pkey:      private key of RSA, EC and Ed25519 keys (an imported RSA
 *             key may be public only)
 * @public_only: @pkey has no private half (imported RSAPublicKey)
 * @enc_len:   HSM_KEY_AUTHENC: bytes of AES key at the start of @secret;
 *             the HMAC key follows
 * @mod:       RSA keys: the modulus, big endian, EVP_PKEY_get_size() bytes
 * @pads:      HMAC and AUTHENC keys: the hash states after the inner and
 *             outer pad blocks, so no command re-derives them
 * @state:     enum hsm_key_state (never DEFAULT once built)
 * @version:   version within the label's family, from 1
 * @activated: when it became ACTIVE, seconds since the epoch, or 0
 * @deactivated: when it became DEACTIVATED or COMPROMISED, or 0
 * @fam:       the label family it is indexed in, or NULL
 * @id_len:    bytes of @id, 0: no key ID
 * @id:        application-chosen key ID, zero padded
 * @id_next:   next key in its key ID hash chain (indexed keys only)
 * @id_indexed: the key is in the ID index
 * @id_hash:   hash of (partition, id) while in the ID index
 *
 * Immutable once inserted into the store, so users need no lock, except
 * the lifecycle fields @state, @activated and @deactivated: they change
 * under the write side of ks_lock (KEY_SET_STATE, KEY_ROTATE) and are
 * read with atomic loads, so the crypto path checks a state without any
 * further lock.  @fam, @id_indexed, @id_hash and @id_next are protected
 * by ks_lock.  The last reference frees the key and wipes the key
 * material.
 */
struct hsm_key {
	uint64_t handle;
	uint32_t refcnt;
	uint16_t type;
	uint16_t bits;
	uint32_t uses;
	uint32_t flags;
	uint32_t partition;
	uint64_t created;
	char label[HSM_LABEL_LEN];
	unsigned char *secret;
	size_t secret_len;
	EVP_PKEY *pkey;
	bool public_only;
	uint16_t enc_len;
	unsigned char *mod;
	struct hsm_hmac_pads *pads;
	uint32_t state;			/* atomic */
	uint32_t version;
	uint64_t activated;		/* atomic */
	uint64_t deactivated;		/* atomic */
	struct hsm_label_fam *fam;
	uint8_t id_len;
	uint8_t id[HSM_KEY_ID_LEN];
	bool id_indexed;
	uint64_t id_hash;
	struct hsm_key *id_next;
};

/*
 * The keys of one (partition, label): versions made by KEY_ROTATE, or of
 * a version 3 key store that held several keys with one label.  @v, sorted
 * by version, is @inl until a family outgrows it, so a lookup touches the
 * bucket array and one family only.  Everything is protected by ks_lock.
 */
struct hsm_label_ver {
	uint64_t handle;
	uint32_t version;
};

struct hsm_label_fam {
	struct hsm_label_fam *next;	/* hash chain */
	uint64_t hash;
	uint32_t partition;
	unsigned int nr, cap;
	struct hsm_label_ver *v;
	struct hsm_label_ver inl[2];
	char label[HSM_LABEL_LEN];
};

/*
 * A PIN as the card keeps it: PBKDF2-HMAC-SHA256(pin, salt, iter), never
 * the PIN itself, with the role's failed-login counter.
 */
struct hsm_pin {
	bool set;
	bool locked;
	uint8_t failed;
	uint32_t iter;
	uint8_t salt[16];
	uint8_t hash[32];
};

struct hsm_part {
	bool exists;
	uint32_t flags;			/* stored partition flags (none yet) */
	uint16_t max_fail;
	uint64_t created;
	char label[HSM_LABEL_LEN];
	struct hsm_pin so;
	struct hsm_pin user;
};

/* Everything about partitions and PINs; sealed in the key store. */
struct hsm_auth_state {
	struct hsm_pin admin;
	struct hsm_part parts[HSM_NR_PARTITIONS];
};

#define HSM_FW_PIN_ITER		100000	/* about 30 ms on the dev host */
#define HSM_FW_PIN_ITER_MAX	10000000

struct hsm_fw {
	struct hsm_fw_config cfg;
	char serial[32];
	uint8_t card_id[16];

	/* algorithm objects, fetched once */
	EVP_MD *md[HSM_HASH_NR];
	EVP_CIPHER *aes_ecb[HSM_AES_NR];
	EVP_CIPHER *aes_cbc[HSM_AES_NR];
	EVP_CIPHER *aes_ctr[HSM_AES_NR];
	EVP_CIPHER *aes_gcm[HSM_AES_NR];
	EVP_CIPHER *aes_kwp[HSM_AES_NR];
	EVP_CIPHER *aes_xts[2];		/* 128 and 256 */

	/* key store: slots[] and nr_keys are protected by ks_lock */
	pthread_rwlock_t ks_lock;
	struct hsm_key **slots;
	/* the tag of the handle each slot last held: the next one differs */
	uint32_t *slot_tags;
	unsigned int nr_keys;
	unsigned int next_slot;		/* allocation hint */
	/* label index (hsm_fw_keys.c), protected by ks_lock */
	struct hsm_label_fam **lbl_tab;
	unsigned int lbl_size;		/* buckets, a power of two */
	unsigned int lbl_nr;		/* families */
	uint64_t lbl_seed[2];		/* SipHash key, random per card */
	/* key ID index: chains of keys through id_next, under ks_lock */
	struct hsm_key **id_tab;
	unsigned int id_size;		/* buckets, a power of two */
	unsigned int id_nr;		/* keys in it */
	int tampered;			/* atomic */

	/* persistent store (hsm_fw_store.c); store_lock orders file writes */
	char *ks_path;
	char *mk_path;
	char *gen_path;
	uint8_t mk[32];
	pthread_mutex_t store_lock;
	/*
	 * Store generations (under store_lock): ks_gen is the generation of
	 * the store file on disk, gen_ctr the counter the counter file
	 * holds; ks_gen is gen_ctr or gen_ctr + 1 (hsm_fw_store.c).
	 */
	uint64_t ks_gen;
	uint64_t gen_ctr;

	/*
	 * Keys that never leave the card: token_key authenticates key tokens
	 * (derived from mk, or random without a store); state_key seals hash
	 * state blobs (random per card instance, replaced on tamper, read and
	 * replaced under ks_lock).  state_nonce makes every seal's nonce
	 * unique under one state_key.
	 */
	uint8_t token_key[32];
	uint8_t state_key[32];
	uint32_t state_salt;
	uint64_t state_nonce;		/* atomic */

	/*
	 * Audit log (hsm_fw_audit.c); every au_* field is protected by
	 * au_lock.  au_fd >= 0: the log is the file au_path, else the
	 * in-memory ring au_ring.  au_next is the seq of the next record and
	 * au_hash the chain value (SHA-256 of the last record).  au_head_*
	 * is what the sealed store said at start (au_head_next 0: nothing).
	 */
	bool started;			/* hsm_fw_new() succeeded */
	pthread_mutex_t au_lock;
	EVP_PKEY *au_key;
	uint8_t au_key_id[32];		/* SHA-256 of the DER public key */
	char *au_path;
	int au_fd;
	uint64_t au_next;
	uint64_t au_oldest;
	uint8_t au_hash[32];
	unsigned int au_since_ckpt;
	uint32_t au_flags;		/* HSM_AUDIT_F_* */
	struct hsm_audit_rec *au_ring;
	struct hsm_audit_seg *au_segs;	/* file: seq runs, see .c */
	unsigned int au_nsegs;
	uint64_t au_head_next;
	uint8_t au_head_hash[32];
	/*
	 * High-water signal: au_unread counts the records appended since an
	 * AUDIT_READ reached the newest one (written under au_lock, read
	 * without it); au_hw_armed: the count has not reached au_hw_mark
	 * since then.
	 */
	uint32_t au_unread;
	uint32_t au_hw_mark;
	bool au_hw_armed;

	/*
	 * Partitions, roles and PINs (hsm_fw_auth.c), protected by
	 * auth_lock (taken after ks_lock, never around a store save).
	 */
	pthread_mutex_t auth_lock;
	struct hsm_auth_state auth;
	uint32_t pin_iter;		/* PBKDF2 iterations of new hashes */
};

/* A decoded submission entry plus where its results go. */
struct hsm_cmd {
	struct hsm_fw *fw;
	const struct hsm_fw_host *host;
	uint8_t opcode;
	uint8_t flags;
	uint16_t mech;
	uint16_t mparam;
	uint64_t handle;
	uint64_t src;
	uint64_t dst;
	uint32_t src_len;
	uint32_t dst_len;
	uint16_t src_nsge;
	uint16_t dst_nsge;
	uint32_t aux;
	uint32_t cdw[4];
	uint64_t qw[2];
	uint8_t iv[16];
	uint64_t result;
};

/* Fields of struct hsm_cmd a command uses; the others must be zero. */
#define HSM_F_MECH		(1u << 0)
#define HSM_F_MPARAM		(1u << 1)
#define HSM_F_HANDLE		(1u << 2)
#define HSM_F_SRC		(1u << 3)	/* src, src_len, src_nsge */
#define HSM_F_DST		(1u << 4)	/* dst, dst_len, dst_nsge */
#define HSM_F_AUX		(1u << 5)
#define HSM_F_CDW(n)		(1u << (6 + (n)))
#define HSM_F_IV		(HSM_F_CDW(0) | HSM_F_CDW(1) | \
				 HSM_F_CDW(2) | HSM_F_CDW(3))
#define HSM_F_PREHASH		(1u << 10)	/* flag may be set */
#define HSM_F_HASHINIT		(1u << 11)	/* HSM_SQE_F_HASH_INIT may be set */

uint16_t hsm_cmd_check_fields(const struct hsm_cmd *c, unsigned int used);

/*
 * A host buffer: one flat range or up to HSM_MAX_SGE ranges taken from an
 * SGL.  @len is the source length or the destination capacity.
 */
struct hsm_xbuf {
	const struct hsm_fw_host *host;
	unsigned int nsge;
	uint64_t len;
	struct hsm_sge sg[HSM_MAX_SGE];	/* converted to host byte order */
};

uint16_t hsm_xbuf_src(struct hsm_cmd *c, struct hsm_xbuf *xb);
uint16_t hsm_xbuf_dst(struct hsm_cmd *c, struct hsm_xbuf *xb);
uint16_t hsm_xbuf_read(const struct hsm_xbuf *xb, void *buf, size_t len);
uint16_t hsm_xbuf_write(const struct hsm_xbuf *xb, const void *buf,
			size_t len);

/* key store (hsm_fw_keys.c) */
int hsm_fw_keys_init(struct hsm_fw *fw);
void hsm_fw_keys_fini(struct hsm_fw *fw);
void hsm_fw_keys_zeroize(struct hsm_fw *fw);
unsigned int hsm_fw_keys_count(struct hsm_fw *fw);
uint16_t hsm_key_get(struct hsm_fw *fw, uint64_t handle, struct hsm_key **kp);
void hsm_key_put(struct hsm_key *k);
void hsm_key_free(struct hsm_key *k);
struct hsm_key *hsm_key_remove(struct hsm_fw *fw, uint64_t handle);
int hsm_key_insert_at(struct hsm_fw *fw, struct hsm_key *k, bool renumber);
bool hsm_key_attrs_valid(const struct hsm_key *k);
bool hsm_key_id_valid(const uint8_t *id, unsigned int len);
uint16_t hsm_key_set_material(struct hsm_key *k, const uint8_t *p, size_t len,
			      bool import);
uint16_t hsm_key_get_material(const struct hsm_key *k, unsigned char **outp,
			      size_t *lenp);
uint16_t hsm_key_prepare(struct hsm_fw *fw, struct hsm_key *k);
void hsm_attrs_fill(const struct hsm_key *k, struct hsm_key_attrs *a);

unsigned int hsm_fw_keys_drop_partition(struct hsm_fw *fw, uint32_t part,
					bool *persistent);
unsigned int hsm_fw_keys_in_partition(struct hsm_fw *fw, uint32_t part);

/* persistent store (hsm_fw_store.c) */
int hsm_store_open(struct hsm_fw *fw, const char *path, char **errp);
uint16_t hsm_store_save(struct hsm_fw *fw);
void hsm_store_zeroize(struct hsm_fw *fw);
int hsm_store_rekey(struct hsm_fw *fw);
void hsm_store_close(struct hsm_fw *fw);

/* partitions, roles and PINs (hsm_fw_auth.c) */
void hsm_auth_init(struct hsm_fw *fw);
void hsm_auth_fini(struct hsm_fw *fw);
void hsm_auth_zeroize(struct hsm_fw *fw);
void hsm_auth_defaults(struct hsm_auth_state *a);
bool hsm_part_exists(struct hsm_fw *fw, uint32_t part);
int hsm_auth_store_get(struct hsm_fw *fw, uint8_t **buf, size_t *len);
int hsm_auth_store_parse(const uint8_t *p, size_t len,
			 struct hsm_auth_state *a);
void hsm_auth_store_set(struct hsm_fw *fw, const struct hsm_auth_state *a);
uint16_t hsm_adm_card_init(struct hsm_cmd *c);
uint16_t hsm_adm_part_create(struct hsm_cmd *c);
uint16_t hsm_adm_part_delete(struct hsm_cmd *c);
uint16_t hsm_adm_part_info(struct hsm_cmd *c);
uint16_t hsm_adm_login(struct hsm_cmd *c);
uint16_t hsm_adm_set_pin(struct hsm_cmd *c);

uint16_t hsm_adm_key_generate(struct hsm_cmd *c);
uint16_t hsm_adm_key_import(struct hsm_cmd *c);
uint16_t hsm_adm_key_unwrap(struct hsm_cmd *c);
uint16_t hsm_adm_key_wrap(struct hsm_cmd *c);
uint16_t hsm_adm_key_export_pub(struct hsm_cmd *c);
uint16_t hsm_adm_key_destroy(struct hsm_cmd *c);
uint16_t hsm_adm_key_list(struct hsm_cmd *c);
uint16_t hsm_adm_key_get_attrs(struct hsm_cmd *c);
uint16_t hsm_adm_key_set_state(struct hsm_cmd *c);
uint16_t hsm_adm_key_rotate(struct hsm_cmd *c);
uint16_t hsm_adm_key_find(struct hsm_cmd *c);
void hsm_key_rotate_undo(struct hsm_fw *fw, uint64_t old_handle,
			 uint64_t new_handle);
uint16_t hsm_adm_token_create(struct hsm_cmd *c);
uint16_t hsm_adm_token_open(struct hsm_cmd *c);
int hsm_token_key_init(struct hsm_fw *fw);

/* audit log (hsm_fw_audit.c) */
struct hsm_audit_pre {
	bool have;
	bool kernel_session;	/* volatile key of the kernel partition */
	uint32_t state;		/* enum hsm_key_state */
	uint32_t partition;
	uint32_t detail;
	char label[HSM_LABEL_LEN];
};

void hsm_audit_init(struct hsm_fw *fw);
int hsm_audit_open(struct hsm_fw *fw, char **errp);
void hsm_audit_close(struct hsm_fw *fw);
void hsm_audit_tamper(struct hsm_fw *fw);
void hsm_audit_pre(struct hsm_cmd *c, struct hsm_audit_pre *pre);
uint16_t hsm_audit_cmd(struct hsm_cmd *c, uint16_t st,
		       const struct hsm_audit_pre *pre);
uint16_t hsm_adm_audit_read(struct hsm_cmd *c);
uint16_t hsm_adm_audit_pubkey(struct hsm_cmd *c);
uint16_t hsm_adm_audit_checkpoint(struct hsm_cmd *c);
int hsm_audit_auth(struct hsm_fw *fw, uint16_t ev, uint16_t st,
		   uint8_t opcode, uint32_t part, uint32_t detail,
		   const char *label);
int hsm_audit_reinit(struct hsm_fw *fw, uint8_t opcode);
/* sealed store section: snapshot for a save, adopt what a load found */
int hsm_audit_store_get(struct hsm_fw *fw, unsigned char **der,
			size_t *der_len, uint64_t *head_next,
			uint8_t *head_hash);
int hsm_audit_store_set(struct hsm_fw *fw, const uint8_t *der,
			size_t der_len, uint64_t head_next,
			const uint8_t *head_hash);

/* crypto on I/O queues (hsm_fw_crypto.c) */
uint16_t hsm_io_cipher(struct hsm_cmd *c, bool encrypt);
uint16_t hsm_io_digest(struct hsm_cmd *c);
uint16_t hsm_io_mac(struct hsm_cmd *c, bool verify);
uint16_t hsm_io_sign(struct hsm_cmd *c, bool verify);
uint16_t hsm_cmd_random(struct hsm_cmd *c);

/* multi-part hashes and the HMAC engine (hsm_fw_hash.c) */
uint16_t hsm_io_hash(struct hsm_cmd *c, bool final);
int hsm_hash_state_key_new(struct hsm_fw *fw);
uint16_t hsm_hmac_pads_make(struct hsm_key *k, const uint8_t *key,
			    size_t len);
void hsm_hmac_oneshot(const struct hsm_hmac_pads *pads, int idx,
		      const void *msg, size_t len, uint8_t *mac);
void hsm_hmac_two(const struct hsm_hmac_pads *pads, int idx, const void *a,
		  size_t alen, const void *b, size_t blen, uint8_t *mac);
void hsm_hmac_raw(const uint8_t *key, size_t klen, const void *msg,
		  size_t len, uint8_t *mac);

int hsm_hash_index(uint16_t mech);
int hsm_aes_index(unsigned int key_bytes);

/*
 * What a key's lifecycle state allows: PRE_ACTIVE nothing, ACTIVE every
 * use, DEACTIVATED and COMPROMISED only the processing of old data.  @use
 * is one HSM_USE_* bit the key's uses already allow.  No lock: the state
 * is one atomic word.
 */
#define HSM_USES_DEACTIVATED	(HSM_USE_DECRYPT | HSM_USE_VERIFY | \
				 HSM_USE_UNWRAP)
#define HSM_USES_COMPROMISED	(HSM_USE_DECRYPT | HSM_USE_VERIFY)

static inline uint16_t hsm_key_state_check(const struct hsm_key *k,
					   uint32_t use)
{
	switch (__atomic_load_n(&k->state, __ATOMIC_ACQUIRE)) {
	case HSM_KEY_STATE_ACTIVE:
		return HSM_SC_SUCCESS;
	case HSM_KEY_STATE_DEACTIVATED:
		return (use & ~HSM_USES_DEACTIVATED) ? HSM_SC_KEY_STATE :
						       HSM_SC_SUCCESS;
	case HSM_KEY_STATE_COMPROMISED:
		return (use & ~HSM_USES_COMPROMISED) ?
		       HSM_SC_KEY_COMPROMISED : HSM_SC_SUCCESS;
	}
	return HSM_SC_KEY_STATE;
}

/* The key's attributes allow @use and its state allows it now. */
static inline uint16_t hsm_key_use(const struct hsm_key *k, uint32_t use)
{
	if (!(k->uses & use))
		return HSM_SC_USE_DENIED;
	return hsm_key_state_check(k, use);
}

static inline bool hsm_fw_is_tampered(struct hsm_fw *fw)
{
	return __atomic_load_n(&fw->tampered, __ATOMIC_ACQUIRE);
}

#endif /* HSM_FW_INT_H */
