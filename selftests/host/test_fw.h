/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the host unit tests of the firmware core share across files:
 * the fake host and the TAP reporting of test_fw.c.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSM_TEST_FW_H
#define HSM_TEST_FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fakehost.h"

extern struct fakehost fh;

bool check(bool cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool check_st(uint16_t got, uint16_t want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* test_fw.c: an admin command with a zeroed entry, its result in *@res */
void sqe_init(struct hsm_sqe *s, uint8_t opcode);
uint16_t adm(struct hsm_fw *f, const struct hsm_sqe *s, uint64_t *res);
/* test_fw.c: attributes for KEY_GENERATE/IMPORT/UNWRAP; label NULL: none */
struct hsm_key_attrs key_attrs(uint16_t type, uint16_t bits, uint32_t uses,
			       uint32_t flags, uint16_t state, const char *label);
/* test_fw.c: KEY_GENERATE with @a; the handle in *@h */
uint16_t gen_attrs(struct hsm_fw *f, const struct hsm_key_attrs *a, uint64_t *h);
/* test_fw.c: KEY_DESTROY of @h */
uint16_t destroy(struct hsm_fw *f, uint64_t h);
/* test_fw.c: KEY_GET_ATTRS of @h into *@a */
uint16_t get_attrs(struct hsm_fw *f, uint64_t h, struct hsm_key_attrs *a);
/* test_fw.c: KEY_FIND of version @ver (0: newest) of @label in @part */
uint16_t find_label(struct hsm_fw *f, uint32_t part, uint32_t ver,
		    const char *label, uint64_t *h);

/* test_fw_audit.c: the audit log, on cards configured like @base */
void test_audit(const struct hsm_fw_config *base);
/* test_fw_auth.c: partitions, roles and PINs */
void test_auth(const struct hsm_fw_config *base);
/* test_fw_life.c: key states, rotation, the label index */
void test_life(const struct hsm_fw_config *base);
/* test_fw_bkattr.c: key wrap with the attributes inside the blob */
void test_bkattr(const struct hsm_fw_config *base);
/* test_fw_id.c: key IDs, their index and the version 4 store */
void test_id(const struct hsm_fw_config *base);
/*
 * test_fw_id.c: a version 5 store payload @plain (*@len bytes, freed)
 * rewritten with version 1..4 key records (no key ID); NULL if a key has
 * an ID or the payload is malformed.
 */
uint8_t *ti_strip_ids(uint8_t *plain, size_t *len);
/* test_fw_store.c: the store's generation, rollback */
void test_store(const struct hsm_fw_config *base);

/* test_fw_audit.c: checkpoint, read and verify @f's whole audit log */
long test_audit_verify(struct hsm_fw *f, struct hsm_audit_rec **out,
		       char *why, size_t whylen);
/* test_fw_auth.c: files, and the sealed store opened with OpenSSL */
uint8_t *ta_read(const char *path, size_t *len);
uint8_t *ta_unseal(const char *ks, const char *mk, size_t *plen,
		   uint32_t *ver);
bool ta_seal(const char *ks, const char *mk, const uint8_t *plain,
	     size_t n, uint32_t ver, const uint8_t *card_id);
bool ta_seal_gen(const char *ks, const char *mk, const uint8_t *plain,
		 size_t n, uint32_t ver, const uint8_t *card_id, uint64_t gen);
uint8_t *ta_mk_read(const char *mk, uint64_t *gen);

#endif /* HSM_TEST_FW_H */
