// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: the sealed persistent key store.
 *
 * Keys with HSM_KEYF_PERSISTENT live in the file named by keystore_path,
 * sealed with AES-256-GCM under a 256-bit master key kept in the sidecar
 * file "<keystore_path>.mk" (created with mode 0600 on first use), and the
 * store generation counter lives in "<keystore_path>.gen".  Both sidecars
 * model storage inside the card's security boundary (battery backed SRAM,
 * fuses).  The master key file is written once per master key (first
 * use, CARD_INIT, the first start after tamper), never by a store save, so
 * the host file system holds no stale copies of it from routine writes.
 *
 * File layout (all integers little endian):
 *   0  "HSMKSTOR"          magic
 *   8  le32 version (6; version 1 files, without the audit section,
 *                           version 2 files, without the partition
 *                           section, version 3 files, without key
 *                           lifecycle fields, version 4 files, without
 *                           key IDs, and version 5 files, without a
 *                           generation, are still read)
 *  12  card_id[16]         the card's identity, kept across restarts
 *  28  nonce[12]           fresh for every write
 *  40  le32 n              length of the sealed payload
 *  44  le64 generation     version 6 only: one more for every write
 *  H   ciphertext[n]       H = 52 (version 6) or 44 (versions 1..5)
 *  H+n tag[16]             GCM tag over bytes 0..H-1 (AAD) and the payload
 * Payload: le32 count, then per key: struct hsm_key_attrs (handle, type,
 * bits, uses, flags, partition, created, label, key ID), le32 m, m bytes of key
 * material (raw AES/HMAC bytes or DER PKCS#8 PrivateKeyInfo).  Version 2
 * appends the audit section: le32 a, a bytes of the card audit key (DER
 * PKCS#8, a = 0 before it exists), le64 head_next, head_hash[32]: the
 * audit log holds at least head_next records and the last of them hashes
 * to head_hash (see hsm_fw_audit.c).  The audit key exists nowhere else.
 * Version 3 appends the partition section: le32 p, p bytes laid out as
 * hsm_fw_auth.c describes (admin PIN hash, then every partition with its
 * label, limits, PIN hashes and failed-login counters).  A version 1 or 2
 * store loads as a factory card: partitions 0 and 1, no PIN; the next
 * save writes version 3.  Keys of a partition the section does not hold
 * make the whole file malformed.
 * Version 4 fills the lifecycle fields of each key's attributes (state,
 * version, activated, deactivated; they were reserved zeros before).  A
 * version 1..3 store loads its keys ACTIVE, version 1, activated at their
 * creation time, except that keys sharing a non-empty label in one
 * partition become versions 1, 2, ... of that label's family in file
 * order (a version 4 store never holds two keys with one label and one
 * version); the next save writes version 4.
 * Version 5 stores each key's attributes as the whole 160-byte struct
 * hsm_key_attrs, with id_len (formerly the reserved rsvd0) and the key ID
 * after the label; versions 1..4 store the first 128 bytes only (up to
 * the label) and load their keys without an ID.  A key ID used twice in
 * one partition makes the file malformed.
 *
 * Every write goes to "<path>.tmp", is fsync()ed, renamed over the file
 * and the directory is fsync()ed, so a crash leaves the old or the new
 * store, never a mix.  A file that is short, long, edited or sealed under
 * another master key fails the tag check or the parser and is refused as a
 * whole: the card does not start rather than start with part of its keys.
 *
 * The master key file (80 bytes, little endian):
 *   0  "HSMKMKEY" magic,  8  le32 version (2),  12  le32 0,
 *  16  master key[32],  48  SHA-256 of bytes 0..47 (a check value).
 * Older master key files still load: the bare 32-byte key (no counter)
 * and version 1 (88 bytes: the key at 16, le64 counter at 48, SHA-256 of
 * bytes 0..55 at 56).  Their counter (0 for the bare key) seeds the
 * counter file when that is missing; once the counter file is durable the
 * master key file is rewritten as version 2, that once.
 *
 * Rollback: the counter file (56 bytes, little endian):
 *   0  "HSMKGEN1" magic,  8  le32 version (1),  12  le32 0,
 *  16  le64 counter,  24  HMAC-SHA-256 of bytes 0..23 under
 *      HMAC-SHA-256(master key, "hsmcard store generation key v1").
 * The MAC refuses an edited or forged counter and binds the counter to
 * this master key.  A store write of generation g + 1 (g the counter)
 * goes first, then the counter file with g + 1, written the same atomic
 * way.  At start the store's generation must equal the counter, or be one
 * more (a crash between the two writes: accepted, and the counter
 * advanced).  A lower generation is an older copy of the store and a
 * higher one a store the counter never saw; both are refused, and so is a
 * counter file of the wrong size, magic, version or MAC.  A store before
 * version 6 has generation 0 and is rewritten at the next save.  Should
 * the counter's write fail after the store's, the next save writes it
 * first, so the store never gets two generations ahead.
 *
 * A counter file exists whenever a store does: first use writes the
 * master key, then the counter at 0, then the store; so a missing counter
 * file is accepted (as 0) only when the store is missing too (a crash
 * during first use or CARD_INIT) or the master key file is of an older
 * version (which holds the counter); with a store and a version 2 master
 * key it is refused.  On first use (no master key and no store) a counter
 * file left from an earlier life is replaced.  CARD_INIT shreds the store
 * and the counter file (its MAC is under the old key), writes the new
 * master key, then the counter where it was, MACed under the new key;
 * tamper shreds the master key file, the store and the counter file, and
 * the master key made after it starts again at 0 (a store sealed under
 * the old master key fails the tag check, whatever its generation).
 * Rolling back the counter file with the store is outside the threat
 * model: it lies inside the boundary.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hsm_fw_int.h"

#define HSM_KS_MAGIC		"HSMKSTOR"
#define HSM_KS_VERSION		6
#define HSM_KS_VERSION_V4	4
#define HSM_KS_VERSION_V1	1
#define HSM_KS_VERSION_V2	2
#define HSM_KS_VERSION_V3	3
#define HSM_KS_VERSION_GEN	6	/* first with a generation */
#define HSM_KS_HDR_OLD		44
#define HSM_KS_HDR		52
#define HSM_KS_TAG		16
#define HSM_KS_MAX_FILE		(64u << 20)
/* bytes of struct hsm_key_attrs per key in a version 1..4 store */
#define HSM_KS_ATTRS_V4		offsetof(struct hsm_key_attrs, id)

_Static_assert(HSM_KS_ATTRS_V4 == 128, "version 4 key record");

#define HSM_MK_MAGIC		"HSMKMKEY"
#define HSM_MK_VERSION		2
#define HSM_MK_VERSION_V1	1	/* with the counter */
#define HSM_MK_LEGACY		32	/* the bare master key, no counter */
#define HSM_MK_FILE_V1		88
#define HSM_MK_FILE		80
#define HSM_GEN_MAGIC		"HSMKGEN1"
#define HSM_GEN_VERSION		1
#define HSM_GEN_F_REINIT	0x1	/* CARD_INIT is replacing the store */
#define HSM_GEN_BODY		24	/* the bytes the MAC covers */
#define HSM_GEN_FILE		56

static const char hsm_gen_label[] = "hsmcard store generation key v1";

static char *hsm_strcat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static void hsm_store_err(char **errp, const char *what, const char *path)
{
	char *s;

	if (!errp || *errp)
		return;
	s = malloc(strlen(path) + strlen(what) + 16);
	if (s)
		sprintf(s, "key store %s: %s", path, what);
	*errp = s;
}

static int hsm_read_file(const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat st;
	uint8_t *buf;
	ssize_t n;
	size_t off = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size > HSM_KS_MAX_FILE) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, st.st_size - off);
		if (n <= 0) {
			free(buf);
			close(fd);
			return -EIO;
		}
		off += n;
	}
	close(fd);
	*bufp = buf;
	*lenp = off;
	return 0;
}

/* Write @buf to @path atomically: temp file, fsync, rename, fsync dir. */
static int hsm_write_file(const char *path, const void *buf, size_t len)
{
	char *tmp = NULL, *dirc = NULL;
	size_t off = 0;
	ssize_t n;
	int fd, dfd, ret = -1;

	tmp = hsm_strcat(path, ".tmp");
	if (!tmp)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	while (off < len) {
		n = write(fd, (const uint8_t *)buf + off, len - off);
		if (n <= 0)
			break;
		off += n;
	}
	if (off != len || fsync(fd)) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path)) {
		unlink(tmp);
		goto out;
	}
	/*
	 * The rename is durable only once the directory is: the store's
	 * rename must be on disk before the counter file moves.
	 */
	dirc = strdup(path);
	if (!dirc)
		goto out;
	dfd = open(dirname(dirc), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		goto out;
	if (fsync(dfd)) {
		close(dfd);
		goto out;
	}
	close(dfd);
	ret = 0;
out:
	free(dirc);
	free(tmp);
	return ret;
}

/* Overwrite a file with zeros, flush it and remove it. */
static void hsm_shred(const char *path)
{
	uint8_t zero[64] = { 0 };
	struct stat st;
	off_t off;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (!fstat(fd, &st))
			for (off = 0; off < st.st_size; off += sizeof(zero))
				if (pwrite(fd, zero, sizeof(zero), off) < 0)
					break;
		fsync(fd);
		close(fd);
	}
	unlink(path);
}

/* ---- the master key file ---- */

/* Write fw->mk to the master key file (version 2), atomically. */
static int hsm_mk_write(struct hsm_fw *fw)
{
	uint8_t file[HSM_MK_FILE] = { 0 };
	uint32_t le = htole32(HSM_MK_VERSION);
	int ret = -1;

	memcpy(file, HSM_MK_MAGIC, 8);
	memcpy(file + 8, &le, 4);
	memcpy(file + 16, fw->mk, sizeof(fw->mk));
	if (EVP_Digest(file, 48, file + 48, NULL, EVP_sha256(), NULL) &&
	    !hsm_write_file(fw->mk_path, file, sizeof(file)))
		ret = 0;
	OPENSSL_cleanse(file, sizeof(file));
	return ret;
}

/*
 * Parse a master key file into fw->mk.  *@old is set for the formats
 * before version 2, with the counter they hold in *@ctr (0 for the bare
 * key).
 */
static int hsm_mk_parse(struct hsm_fw *fw, const uint8_t *file, size_t len,
			bool *old, uint64_t *ctr)
{
	size_t body = len == HSM_MK_FILE_V1 ? 56 : 48;
	uint32_t ver, rsvd;
	uint8_t md[32];
	uint64_t le64;
	int bad;

	*old = len != HSM_MK_FILE;
	*ctr = 0;
	if (len == HSM_MK_LEGACY) {
		memcpy(fw->mk, file, sizeof(fw->mk));
		return 0;
	}
	if ((len != HSM_MK_FILE && len != HSM_MK_FILE_V1) ||
	    memcmp(file, HSM_MK_MAGIC, 8))
		return -1;
	bad = !EVP_Digest(file, body, md, NULL, EVP_sha256(), NULL) ||
	      CRYPTO_memcmp(md, file + body, 32);
	OPENSSL_cleanse(md, sizeof(md));
	memcpy(&ver, file + 8, 4);
	memcpy(&rsvd, file + 12, 4);
	if (bad || rsvd ||
	    le32toh(ver) != (*old ? HSM_MK_VERSION_V1 : HSM_MK_VERSION))
		return -1;
	memcpy(fw->mk, file + 16, sizeof(fw->mk));
	if (*old) {
		memcpy(&le64, file + 48, 8);
		*ctr = le64toh(le64);
	}
	return 0;
}

/* ---- the store generation counter file ---- */

/* The MAC of a counter record's first HSM_GEN_BODY bytes. */
static void hsm_gen_mac(struct hsm_fw *fw, const uint8_t *rec, uint8_t *mac)
{
	uint8_t gk[32];

	hsm_hmac_raw(fw->mk, sizeof(fw->mk), hsm_gen_label,
		     sizeof(hsm_gen_label) - 1, gk);
	hsm_hmac_raw(gk, sizeof(gk), rec, HSM_GEN_BODY, mac);
	OPENSSL_cleanse(gk, sizeof(gk));
}

/*
 * Write counter @gen with @flags (HSM_GEN_F_*), MACed under fw->mk,
 * atomically; fw->gen_ctr follows.
 */
static int hsm_gen_write_flags(struct hsm_fw *fw, uint64_t gen,
			       uint32_t flags)
{
	uint8_t file[HSM_GEN_FILE] = { 0 };
	uint64_t le64 = htole64(gen);
	uint32_t le = htole32(HSM_GEN_VERSION);

	memcpy(file, HSM_GEN_MAGIC, 8);
	memcpy(file + 8, &le, 4);
	le = htole32(flags);
	memcpy(file + 12, &le, 4);
	memcpy(file + 16, &le64, 8);
	hsm_gen_mac(fw, file, file + HSM_GEN_BODY);
	if (hsm_write_file(fw->gen_path, file, sizeof(file)))
		return -1;
	fw->gen_ctr = gen;
	return 0;
}

static int hsm_gen_write(struct hsm_fw *fw, uint64_t gen)
{
	return hsm_gen_write_flags(fw, gen, 0);
}

/*
 * Parse a counter file into fw->gen_ctr and *@flags; -1 unless its MAC
 * verifies.
 */
static int hsm_gen_parse(struct hsm_fw *fw, const uint8_t *file, size_t len,
			 uint32_t *flags)
{
	uint8_t mac[32];
	uint32_t ver, rsvd;
	uint64_t le64;
	int bad;

	if (len != HSM_GEN_FILE || memcmp(file, HSM_GEN_MAGIC, 8))
		return -1;
	hsm_gen_mac(fw, file, mac);
	bad = CRYPTO_memcmp(mac, file + HSM_GEN_BODY, sizeof(mac));
	memcpy(&ver, file + 8, 4);
	memcpy(&rsvd, file + 12, 4);
	if (bad || (le32toh(rsvd) & ~HSM_GEN_F_REINIT) ||
	    le32toh(ver) != HSM_GEN_VERSION)
		return -1;
	memcpy(&le64, file + 16, 8);
	fw->gen_ctr = le64toh(le64);
	*flags = le32toh(rsvd);
	return 0;
}

static uint16_t hsm_gcm(struct hsm_fw *fw, const uint8_t *nonce, bool enc,
			const uint8_t *aad, size_t aadlen, const uint8_t *in,
			size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint16_t st = HSM_SC_INTERNAL;
	int n = 0;

	if (!ctx ||
	    !EVP_CipherInit_ex2(ctx, fw->aes_gcm[2], fw->mk, nonce, enc, NULL) ||
	    !EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aadlen) ||
	    (len && !EVP_CipherUpdate(ctx, out, &n, in, (int)len)))
		goto out;
	if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
					 HSM_KS_TAG, tag))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, out + n, &n)) {
		st = HSM_SC_DECRYPT_FAILED;
		goto out;
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG,
					HSM_KS_TAG, tag))
		goto out;
	st = HSM_SC_SUCCESS;
out:
	EVP_CIPHER_CTX_free(ctx);
	return st;
}

/* ---- save ---- */

/* Grow-on-demand byte buffer for the payload; wiped when freed. */
struct hsm_sbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void hsm_sbuf_add(struct hsm_sbuf *b, const void *data, size_t len)
{
	size_t ncap;
	uint8_t *np;

	if (b->oom || !len)
		return;
	if (b->len + len > b->cap) {
		ncap = (b->len + len) * 2 + 256;
		np = OPENSSL_malloc(ncap);
		if (!np) {
			b->oom = true;
			return;
		}
		if (b->p)
			memcpy(np, b->p, b->len);
		OPENSSL_clear_free(b->p, b->cap);
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

/**
 * hsm_store_save() - rewrite the sealed store with the current persistent
 * keys
 * @fw: the card
 *
 * Return: HSM_SC_SUCCESS, or HSM_SC_INTERNAL if the store could not be
 * written (the previous file is left intact).
 */
uint16_t hsm_store_save(struct hsm_fw *fw)
{
	struct hsm_sbuf b = { 0 };
	struct hsm_key_attrs a;
	unsigned char *akey = NULL;
	size_t akey_len = 0, auth_len = 0;
	uint8_t *auth = NULL;
	uint64_t head_next = 0, le64;
	uint8_t head_hash[32];
	uint8_t *file = NULL, nonce[12];
	uint32_t count = 0, le;
	uint16_t st = HSM_SC_INTERNAL;
	unsigned int i;
	size_t flen = 0;
	uint64_t gen;

	if (!fw->ks_path)
		return HSM_SC_SUCCESS;
	/* taken before store_lock: a checkpoint saves without au_lock held */
	if (hsm_audit_store_get(fw, &akey, &akey_len, &head_next, head_hash))
		return HSM_SC_INTERNAL;
	pthread_mutex_lock(&fw->store_lock);
	if (hsm_fw_is_tampered(fw)) {
		st = HSM_SC_TAMPERED;
		goto out;
	}
	/* the counter's last write failed: catch up before going further */
	if (fw->gen_ctr != fw->ks_gen && hsm_gen_write(fw, fw->ks_gen))
		goto out;
	gen = fw->ks_gen + 1;
	hsm_sbuf_add(&b, &count, sizeof(count));
	pthread_rwlock_rdlock(&fw->ks_lock);
	for (i = 0; i < fw->cfg.max_keys; i++) {
		struct hsm_key *k = fw->slots[i];
		unsigned char *mat = NULL;
		size_t mlen = 0;

		if (!k || !(k->flags & HSM_KEYF_PERSISTENT))
			continue;
		if (hsm_key_get_material(k, &mat, &mlen)) {
			b.oom = true;
			break;
		}
		hsm_attrs_fill(k, &a);
		le = htole32(mlen);
		hsm_sbuf_add(&b, &a, sizeof(a));
		hsm_sbuf_add(&b, &le, sizeof(le));
		hsm_sbuf_add(&b, mat, mlen);
		OPENSSL_clear_free(mat, mlen);
		count++;
	}
	pthread_rwlock_unlock(&fw->ks_lock);
	le = htole32(akey_len);
	hsm_sbuf_add(&b, &le, sizeof(le));
	hsm_sbuf_add(&b, akey, akey_len);
	le64 = htole64(head_next);
	hsm_sbuf_add(&b, &le64, sizeof(le64));
	hsm_sbuf_add(&b, head_hash, sizeof(head_hash));
	if (hsm_auth_store_get(fw, &auth, &auth_len)) {
		b.oom = true;
	} else {
		le = htole32(auth_len);
		hsm_sbuf_add(&b, &le, sizeof(le));
		hsm_sbuf_add(&b, auth, auth_len);
	}
	if (b.oom)
		goto out;
	le = htole32(count);
	memcpy(b.p, &le, sizeof(le));

	flen = HSM_KS_HDR + b.len + HSM_KS_TAG;
	file = malloc(flen);
	if (!file || RAND_bytes(nonce, sizeof(nonce)) != 1)
		goto out;
	memcpy(file, HSM_KS_MAGIC, 8);
	le = htole32(HSM_KS_VERSION);
	memcpy(file + 8, &le, 4);
	memcpy(file + 12, fw->card_id, 16);
	memcpy(file + 28, nonce, 12);
	le = htole32(b.len);
	memcpy(file + 40, &le, 4);
	le64 = htole64(gen);
	memcpy(file + 44, &le64, 8);
	st = hsm_gcm(fw, nonce, true, file, HSM_KS_HDR, b.p, b.len,
		     file + HSM_KS_HDR, file + HSM_KS_HDR + b.len);
	if (!st && hsm_write_file(fw->ks_path, file, flen))
		st = HSM_SC_INTERNAL;
	if (!st) {
		fw->ks_gen = gen;
		/*
		 * The store is durable now: a start accepts it with the old
		 * counter too, and if this write fails the next save retries
		 * it before writing the store again.
		 */
		hsm_gen_write(fw, gen);
	}
out:
	pthread_mutex_unlock(&fw->store_lock);
	OPENSSL_clear_free(b.p, b.cap);
	if (akey)
		OPENSSL_clear_free(akey, akey_len);
	if (auth)
		OPENSSL_clear_free(auth, auth_len);
	free(file);
	return st;
}

/* ---- load ---- */

/* Parse every key first; the store only changes if all of them are good. */
static int hsm_store_parse(struct hsm_fw *fw, const uint8_t *p, size_t len,
			   uint32_t ver)
{
	bool v1 = ver == HSM_KS_VERSION_V1;
	struct hsm_auth_state *auth;
	uint32_t plen;
	struct hsm_key **all, *k;
	struct hsm_key_attrs a;
	uint32_t count, mlen, i, n = 0, alen = 0;
	size_t asz = ver > HSM_KS_VERSION_V4 ? sizeof(a) : HSM_KS_ATTRS_V4;
	uint64_t head_next = 0;
	const uint8_t *akey = NULL, *head_hash = NULL;
	static const uint8_t zero[32];
	size_t off = 4;
	int ret = -1;

	if (len < 4)
		return -1;
	memcpy(&count, p, 4);
	count = le32toh(count);
	if (count > fw->cfg.max_keys)
		return -1;
	all = calloc(count ? count : 1, sizeof(*all));
	auth = OPENSSL_zalloc(sizeof(*auth));
	if (!all || !auth) {
		free(all);
		OPENSSL_free(auth);
		return -1;
	}
	hsm_auth_defaults(auth);
	for (i = 0; i < count; i++) {
		if (len - off < asz + 4)
			goto out;
		memset(&a, 0, sizeof(a));
		memcpy(&a, p + off, asz);
		memcpy(&mlen, p + off + asz, 4);
		mlen = le32toh(mlen);
		off += asz + 4;
		if (len - off < mlen)
			goto out;
		k = calloc(1, sizeof(*k));
		if (!k)
			goto out;
		all[n++] = k;
		k->handle = le64toh(a.handle);
		k->type = le16toh(a.type);
		k->bits = le16toh(a.bits);
		k->uses = le32toh(a.uses);
		k->flags = le32toh(a.flags);
		k->partition = le32toh(a.partition);
		k->created = le64toh(a.created);
		memcpy(k->label, a.label, sizeof(k->label));
		if (ver > HSM_KS_VERSION_V4) {
			/* hsm_key_attrs_valid() checks the zero tail */
			if (le16toh(a.id_len) > HSM_KEY_ID_LEN)
				goto out;
			k->id_len = le16toh(a.id_len);
			memcpy(k->id, a.id, sizeof(k->id));
		}
		if (ver > HSM_KS_VERSION_V3) {
			k->state = le16toh(a.state);
			k->version = le32toh(a.version);
			k->activated = le64toh(a.activated);
			k->deactivated = le64toh(a.deactivated);
			if (a.rsvd[0] || a.rsvd[1] ||
			    (ver <= HSM_KS_VERSION_V4 && a.id_len))
				goto out;
		} else {
			k->state = HSM_KEY_STATE_ACTIVE;
			k->version = 1;
			k->activated = k->created;
		}
		if (!hsm_key_attrs_valid(k) ||
		    hsm_key_set_material(k, p + off, mlen, false) ||
		    hsm_key_prepare(fw, k))
			goto out;
		off += mlen;
	}
	if (!v1) {
		if (len - off < 4)
			goto out;
		memcpy(&alen, p + off, 4);
		alen = le32toh(alen);
		off += 4;
		if (len - off < (size_t)alen + 40)
			goto out;
		akey = p + off;
		off += alen;
		memcpy(&head_next, p + off, 8);
		head_next = le64toh(head_next);
		head_hash = p + off + 8;
		off += 40;
	}
	if (ver >= 3) {
		if (len - off < 4)
			goto out;
		memcpy(&plen, p + off, 4);
		plen = le32toh(plen);
		off += 4;
		if (len - off < plen ||
		    hsm_auth_store_parse(p + off, plen, auth))
			goto out;
		off += plen;
	}
	for (i = 0; i < n; i++)
		if (!auth->parts[all[i]->partition].exists)
			goto out;
	if (off != len ||
	    hsm_audit_store_set(fw, akey, alen, head_next,
				head_hash ? head_hash : zero))
		goto out;
	for (i = 0; i < n; i++) {
		if (hsm_key_insert_at(fw, all[i], ver <= HSM_KS_VERSION_V3)) {
			/* two keys claim one slot or one label version */
			hsm_fw_keys_zeroize(fw);
			goto out;
		}
		all[i] = NULL;
	}
	hsm_auth_store_set(fw, auth);
	ret = 0;
out:
	for (i = 0; i < n; i++)
		hsm_key_free(all[i]);
	free(all);
	OPENSSL_clear_free(auth, sizeof(*auth));
	return ret;
}

/*
 * The store's generation against the counter (both authenticated by now):
 * equal, or one ahead after a crash between the two writes.  Anything
 * else is refused with what was found.
 */
static int hsm_store_gen_check(struct hsm_fw *fw, uint64_t gen, char **errp)
{
	char what[160];

	if (gen == fw->gen_ctr || gen == fw->gen_ctr + 1)
		return 0;
	if (gen < fw->gen_ctr)
		snprintf(what, sizeof(what),
			 "rolled back: generation %llu, expected %llu (an older copy of the store)",
			 (unsigned long long)gen,
			 (unsigned long long)fw->gen_ctr);
	else
		snprintf(what, sizeof(what),
			 "generation %llu is ahead of the counter %llu in the counter file (not this card's latest store)",
			 (unsigned long long)gen,
			 (unsigned long long)fw->gen_ctr);
	hsm_store_err(errp, what, fw->ks_path);
	return -1;
}

static int hsm_store_load(struct hsm_fw *fw, const uint8_t *file, size_t flen,
			  char **errp)
{
	uint32_t ver, plen;
	uint64_t gen = 0;
	uint8_t *plain;
	size_t hdr;
	int ret;

	if (flen < HSM_KS_HDR_OLD + HSM_KS_TAG ||
	    memcmp(file, HSM_KS_MAGIC, 8)) {
		hsm_store_err(errp, "not a key store", fw->ks_path);
		return -1;
	}
	memcpy(&ver, file + 8, 4);
	memcpy(&plen, file + 40, 4);
	ver = le32toh(ver);
	hdr = ver >= HSM_KS_VERSION_GEN ? HSM_KS_HDR : HSM_KS_HDR_OLD;
	if (ver < HSM_KS_VERSION_V1 || ver > HSM_KS_VERSION ||
	    flen < hdr + HSM_KS_TAG ||
	    (size_t)le32toh(plen) != flen - hdr - HSM_KS_TAG) {
		hsm_store_err(errp, "bad version or length (torn file?)",
			      fw->ks_path);
		return -1;
	}
	plen = le32toh(plen);
	plain = OPENSSL_malloc(plen ? plen : 1);
	if (!plain)
		return -1;
	if (hsm_gcm(fw, file + 28, false, file, hdr, file + hdr, plen, plain,
		    (uint8_t *)file + hdr + plen)) {
		hsm_store_err(errp,
			      "authentication failed (edited, torn or wrong master key)",
			      fw->ks_path);
		OPENSSL_clear_free(plain, plen ? plen : 1);
		return -1;
	}
	if (ver >= HSM_KS_VERSION_GEN) {
		memcpy(&gen, file + 44, 8);
		gen = le64toh(gen);
	}
	if (hsm_store_gen_check(fw, gen, errp)) {
		OPENSSL_clear_free(plain, plen ? plen : 1);
		return -1;
	}
	ret = hsm_store_parse(fw, plain, plen, ver);
	OPENSSL_clear_free(plain, plen ? plen : 1);
	if (ret) {
		hsm_store_err(errp, "malformed contents", fw->ks_path);
		return -1;
	}
	memcpy(fw->card_id, file + 12, 16);
	fw->ks_gen = gen;
	return 0;
}

/**
 * hsm_store_open() - attach the persistent store and load its keys
 * @fw:   the card, key store initialized and empty
 * @path: store file; "<path>.mk" holds the master key, "<path>.gen" the
 *        store generation counter
 * @errp: receives a message on failure
 *
 * A missing store is created (empty, with the card's identity), and a
 * missing master key and counter with it; a store without its master key,
 * or without its counter (unless the master key file is of a version that
 * held the counter), is an error.
 *
 * Return: 0 or -1.
 */
int hsm_store_open(struct hsm_fw *fw, const char *path, char **errp)
{
	uint8_t *file = NULL, *mk = NULL, *gf = NULL;
	size_t flen = 0, mklen = 0, gflen = 0;
	bool old = false, need_gen = false;
	int ret, fret, gret;
	uint32_t gflags = 0;
	uint64_t ctr = 0;

	pthread_mutex_init(&fw->store_lock, NULL);
	fw->ks_path = strdup(path);
	fw->mk_path = hsm_strcat(path, ".mk");
	fw->gen_path = hsm_strcat(path, ".gen");
	if (!fw->ks_path || !fw->mk_path || !fw->gen_path) {
		hsm_store_err(errp, "out of memory", path);
		return -1;
	}
	fret = hsm_read_file(path, &file, &flen);
	if (fret && fret != -ENOENT) {
		hsm_store_err(errp, "cannot be read", path);
		return -1;
	}
	gret = hsm_read_file(fw->gen_path, &gf, &gflen);
	if (gret && gret != -ENOENT) {
		hsm_store_err(errp, "cannot be read", fw->gen_path);
		free(file);
		return -1;
	}
	ret = hsm_read_file(fw->mk_path, &mk, &mklen);
	if (ret == -ENOENT && fret == -ENOENT) {
		/*
		 * First use: a new master key, then its counter at 0 (one left
		 * from an earlier life is replaced), then the store below.
		 */
		if (RAND_priv_bytes(fw->mk, sizeof(fw->mk)) != 1 ||
		    hsm_mk_write(fw) || hsm_gen_write(fw, 0)) {
			hsm_store_err(errp, "cannot create the master key",
				      fw->mk_path);
			goto fail;
		}
	} else {
		if (ret || hsm_mk_parse(fw, mk, mklen, &old, &ctr)) {
			hsm_store_err(errp, "master key missing or malformed",
				      fw->mk_path);
			goto fail;
		}
		if (!gret) {
			if (hsm_gen_parse(fw, gf, gflen, &gflags)) {
				hsm_store_err(errp,
					      "store generation counter malformed or its MAC fails (edited, torn or another master key's)",
					      fw->gen_path);
				goto fail;
			}
			/*
			 * A counter past 0 says a store was written; only a
			 * re-initialization removes it before the next one.
			 */
			if (fret == -ENOENT && fw->gen_ctr &&
			    !(gflags & HSM_GEN_F_REINIT)) {
				char what[160];

				snprintf(what, sizeof(what),
					 "missing, but its counter file says generation %llu was written (deleted or moved?)",
					 (unsigned long long)fw->gen_ctr);
				hsm_store_err(errp, what, path);
				goto fail;
			}
		} else if (old || fret == -ENOENT) {
			/*
			 * An older master key file holds the counter; without
			 * a store, a crash during first use or CARD_INIT.
			 */
			fw->gen_ctr = ctr;
			need_gen = true;
		} else {
			hsm_store_err(errp,
				      "store generation counter missing (the key store needs it)",
				      fw->gen_path);
			goto fail;
		}
	}
	if (mk)
		OPENSSL_clear_free(mk, mklen);
	mk = NULL;
	free(gf);
	gf = NULL;

	fw->ks_gen = fw->gen_ctr;
	if (fret != -ENOENT) {
		ret = hsm_store_load(fw, file, flen, errp);
		free(file);
		file = NULL;
		if (ret)
			return -1;
	}
	/*
	 * The counter file is durable before the store is written and
	 * before an older master key file loses its counter; a crash
	 * between the store's write and the counter's: catch up.
	 */
	if ((need_gen || fw->gen_ctr != fw->ks_gen) &&
	    hsm_gen_write(fw, fw->ks_gen) && need_gen) {
		hsm_store_err(errp, "cannot be written", fw->gen_path);
		return -1;
	}
	/* an older master key file: written once more, as version 2 */
	if (old)
		hsm_mk_write(fw);
	if (fret == -ENOENT) {
		ret = hsm_store_save(fw) ? -1 : 0;
		if (ret)
			hsm_store_err(errp, "cannot be written", path);
		return ret;
	}
	return 0;

fail:
	if (mk)
		OPENSSL_clear_free(mk, mklen);
	free(gf);
	free(file);
	return -1;
}

/*
 * Tamper: the master key is wiped, in memory and on disk, with the store
 * and the counter.
 */
void hsm_store_zeroize(struct hsm_fw *fw)
{
	if (!fw->ks_path)
		return;
	pthread_mutex_lock(&fw->store_lock);
	OPENSSL_cleanse(fw->mk, sizeof(fw->mk));
	hsm_shred(fw->mk_path);
	hsm_shred(fw->ks_path);
	hsm_shred(fw->gen_path);
	/* the counter went with its file: a new master key starts at 0 */
	fw->ks_gen = 0;
	fw->gen_ctr = 0;
	pthread_mutex_unlock(&fw->store_lock);
}

/*
 * CARD_INIT: the counter file is marked HSM_GEN_F_REINIT (under the old
 * key), the old store and the counter file are shredded, a new master key
 * written, then the counter where it was (0 after a tamper), still marked,
 * under the new key; the caller seals the new state with hsm_store_save(),
 * whose counter write drops the mark.  A crash in between leaves no store
 * and either no counter file or a marked one: the card starts as a
 * factory card, where a store missing next to an unmarked counter past 0
 * is refused (deleted, not re-initialized).
 */
int hsm_store_rekey(struct hsm_fw *fw)
{
	int ret = 0;

	if (!fw->ks_path)
		return 0;
	pthread_mutex_lock(&fw->store_lock);
	if (hsm_gen_write_flags(fw, fw->ks_gen, HSM_GEN_F_REINIT)) {
		ret = -1;
		goto out;
	}
	hsm_shred(fw->ks_path);
	hsm_shred(fw->gen_path);
	if (RAND_priv_bytes(fw->mk, sizeof(fw->mk)) != 1 ||
	    hsm_mk_write(fw) ||
	    hsm_gen_write_flags(fw, fw->ks_gen, HSM_GEN_F_REINIT))
		ret = -1;
out:
	pthread_mutex_unlock(&fw->store_lock);
	return ret;
}

void hsm_store_close(struct hsm_fw *fw)
{
	if (!fw->ks_path)
		return;
	OPENSSL_cleanse(fw->mk, sizeof(fw->mk));
	pthread_mutex_destroy(&fw->store_lock);
	free(fw->ks_path);
	free(fw->mk_path);
	free(fw->gen_path);
	fw->ks_path = NULL;
	fw->mk_path = NULL;
	fw->gen_path = NULL;
}
