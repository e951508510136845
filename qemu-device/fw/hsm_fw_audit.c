// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: the audit log.
 *
 * Every management action and every custody denial on the admin queue
 * becomes one struct hsm_audit_rec (driver/hsmcard_hw.h).  Records have
 * consecutive sequence numbers and are hash chained: prev_hash of a record
 * is SHA-256 over the 256 bytes of the record before it.  A checkpoint
 * record carries an ECDSA P-256 / SHA-256 signature by the card audit key
 * over its first HSM_AUDIT_SIGNED_LEN bytes (its seq, its prev_hash = the
 * chain value of the whole log before it, the card id and the key id).
 * After 63 other records the card writes a checkpoint by itself, and on
 * HSM_ADM_AUDIT_CHECKPOINT, at every start and at tamper.
 *
 * The audit key is generated inside the card and sealed in the key store
 * with the last (seq, chain value) the card wrote ("the head"); the store
 * is rewritten with a new head at every checkpoint and when the card is
 * freed.  The log itself is "<keystore_path>.audit": records are appended
 * and fdatasync()ed one by one, before the command that caused them
 * completes.  Without a key store the log is a ring of HSM_AUDIT_RING
 * records in memory; when it wraps the oldest records are dropped and
 * AUDIT_READ says so (HSM_AUDIT_F_WRAPPED, oldest_seq).
 *
 * At start the file is checked from its first record: seq order, chain,
 * reserved bytes, checkpoint signatures made with the current key, and the
 * sealed head.  The longest good prefix is kept; if anything follows it or
 * the head is not in it, the whole file is first copied to
 * "<path>.audit.damaged.<seq>", the file is cut back to the good prefix, and
 * a HSM_AUDIT_EV_LOG_DAMAGED record (seq skipping past every seq the head
 * vouches for) continues the chain; the card starts and reports
 * HSM_AUDIT_F_DAMAGED in every AUDIT_READ until it is restarted.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "hsm_fw_int.h"

_Static_assert(sizeof(struct hsm_audit_rec) == HSM_AUDIT_REC_SIZE,
	       "audit record size");
_Static_assert(offsetof(struct hsm_audit_rec, sig_len) ==
	       HSM_AUDIT_SIGNED_LEN, "audit signed part");
_Static_assert(offsetof(struct hsm_audit_rec, prev_hash) == 112,
	       "audit prev_hash offset");
_Static_assert(sizeof(struct hsm_audit_read_hdr) == HSM_AUDIT_HDR_SIZE,
	       "audit read header size");

#define HSM_AUDIT_RING		4096	/* records kept without a store */
#define HSM_AUDIT_CKPT_EVERY	63	/* other records between checkpoints */
#define HSM_AUDIT_CHUNK		256	/* records read at a time */

/*
 * The file holds runs of consecutive seqs; a LOG_DAMAGED record may jump
 * forward.  Run i starts at file index idx with seq seq.
 */
struct hsm_audit_seg {
	uint64_t idx;
	uint64_t seq;
};

static const uint8_t hsm_zero_hash[32];

static void au_rec_hash(const struct hsm_audit_rec *r, uint8_t *out)
{
	SHA256((const unsigned char *)r, sizeof(*r), out);
}

static uint64_t au_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int au_key_id(EVP_PKEY *k, uint8_t *id)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(k, &der);

	if (len <= 0)
		return -1;
	SHA256(der, len, id);
	OPENSSL_free(der);
	return 0;
}

static int au_seg_add(struct hsm_fw *fw, uint64_t idx, uint64_t seq)
{
	struct hsm_audit_seg *n;

	n = realloc(fw->au_segs, (fw->au_nsegs + 1) * sizeof(*n));
	if (!n)
		return -1;
	fw->au_segs = n;
	n[fw->au_nsegs].idx = idx;
	n[fw->au_nsegs].seq = seq;
	fw->au_nsegs++;
	return 0;
}

_Static_assert(HSM_FW_AUDIT_HIGH_WATER == HSM_AUDIT_RING / 4 * 3,
	       "default high-water mark: 3/4 of the ring");

void hsm_audit_init(struct hsm_fw *fw)
{
	pthread_mutex_init(&fw->au_lock, NULL);
	fw->au_fd = -1;
	fw->au_hw_mark = fw->cfg.audit_high_water ?
			 fw->cfg.audit_high_water : HSM_FW_AUDIT_HIGH_WATER;
	fw->au_hw_armed = true;
}

/*
 * One more record the host has not read; signal the device when the count
 * reaches the mark, once until an AUDIT_READ re-arms it.  au_lock held.
 */
static void au_count_unread(struct hsm_fw *fw)
{
	uint32_t n = fw->au_unread;

	if (n < UINT32_MAX)
		__atomic_store_n(&fw->au_unread, n + 1, __ATOMIC_RELAXED);
	if (fw->au_hw_armed && n + 1 >= fw->au_hw_mark) {
		fw->au_hw_armed = false;
		if (fw->cfg.audit_event)
			fw->cfg.audit_event(fw->cfg.opaque);
	}
}

uint32_t hsm_fw_audit_unread(const struct hsm_fw *fw)
{
	return __atomic_load_n(&fw->au_unread, __ATOMIC_RELAXED);
}

uint32_t hsm_fw_audit_high_water(const struct hsm_fw *fw)
{
	return fw->au_hw_mark;
}

/* ---- appending ---- */

/* Give @r its seq, time and chain link. */
static void au_prepare(struct hsm_fw *fw, struct hsm_audit_rec *r)
{
	r->seq = htole64(fw->au_next);
	r->time_ns = htole64(au_now_ns());
	memcpy(r->prev_hash, fw->au_hash, sizeof(r->prev_hash));
}

/* Make a prepared record part of the log (durable with a file). */
static int au_commit(struct hsm_fw *fw, const struct hsm_audit_rec *r)
{
	uint64_t seq = le64toh(r->seq);

	if (fw->au_fd >= 0) {
		struct hsm_audit_seg *s = &fw->au_segs[fw->au_nsegs - 1];
		uint64_t idx = s->idx + (fw->au_next - s->seq);
		off_t off = (off_t)(idx * sizeof(*r));

		if (seq != fw->au_next && au_seg_add(fw, idx, seq))
			return -1;
		if (pwrite(fw->au_fd, r, sizeof(*r), off) != sizeof(*r) ||
		    fdatasync(fw->au_fd)) {
			if (ftruncate(fw->au_fd, off))
				fw->au_flags |= HSM_AUDIT_F_DAMAGED;
			if (seq != fw->au_next)
				fw->au_nsegs--;
			return -1;
		}
	} else {
		fw->au_ring[seq % HSM_AUDIT_RING] = *r;
		if (seq - fw->au_oldest >= HSM_AUDIT_RING) {
			fw->au_oldest = seq - HSM_AUDIT_RING + 1;
			fw->au_flags |= HSM_AUDIT_F_WRAPPED;
		}
	}
	au_rec_hash(r, fw->au_hash);
	fw->au_next = seq + 1;
	au_count_unread(fw);
	return 0;
}

static int au_sign(EVP_PKEY *key, const void *msg, size_t len, uint8_t *sig,
		   size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = HSM_AUDIT_SIG_MAX;
	int ret = -1;

	if (ctx && EVP_DigestSignInit_ex(ctx, NULL, "SHA2-256", NULL, NULL,
					 key, NULL) == 1 &&
	    EVP_DigestSign(ctx, sig, &n, msg, len) == 1) {
		*siglen = n;
		ret = 0;
	}
	EVP_MD_CTX_free(ctx);
	return ret;
}

static int au_verify(EVP_PKEY *key, const struct hsm_audit_rec *r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = le16toh(r->sig_len);
	int ok = 0;

	if (ctx && n <= HSM_AUDIT_SIG_MAX &&
	    EVP_DigestVerifyInit_ex(ctx, NULL, "SHA2-256", NULL, NULL, key,
				    NULL) == 1)
		ok = EVP_DigestVerify(ctx, r->sig, n, (const void *)r,
				      HSM_AUDIT_SIGNED_LEN) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Append a checkpoint signed by the audit key; -2 if there is no key. */
static int au_checkpoint_locked(struct hsm_fw *fw, uint8_t opcode,
				uint64_t *seqp)
{
	struct hsm_audit_rec r;
	size_t n = 0;

	if (!fw->au_key)
		return -2;
	memset(&r, 0, sizeof(r));
	r.event = htole16(HSM_AUDIT_EV_CHECKPOINT);
	r.partition = htole32(HSM_AUDIT_NO_PART);
	r.detail = htole32(fw->au_since_ckpt);
	r.opcode = opcode;
	memcpy(r.label, fw->card_id, 16);
	memcpy(r.label + 16, fw->au_key_id, 32);
	au_prepare(fw, &r);
	if (au_sign(fw->au_key, &r, HSM_AUDIT_SIGNED_LEN, r.sig, &n))
		return -1;
	r.sig_len = htole16(n);
	if (au_commit(fw, &r))
		return -1;
	fw->au_since_ckpt = 0;
	if (seqp)
		*seqp = le64toh(r.seq);
	return 0;
}

/*
 * Append @r (event and payload filled in) and, when due, a checkpoint.
 * Returns 0 once the record is in the log (on disk with a file); a
 * checkpoint also re-seals the store so its head moves on.
 */
static int au_log(struct hsm_fw *fw, struct hsm_audit_rec *r)
{
	bool save = false;
	int ret;

	pthread_mutex_lock(&fw->au_lock);
	au_prepare(fw, r);
	ret = au_commit(fw, r);
	if (!ret && ++fw->au_since_ckpt >= HSM_AUDIT_CKPT_EVERY &&
	    !au_checkpoint_locked(fw, 0, NULL))
		save = fw->au_fd >= 0;
	pthread_mutex_unlock(&fw->au_lock);
	if (save)
		hsm_store_save(fw);
	return ret;
}

/* ---- the sealed store's part ---- */

/* Snapshot for hsm_store_save(): the audit key (PKCS#8) and the head. */
int hsm_audit_store_get(struct hsm_fw *fw, unsigned char **der,
			size_t *der_len, uint64_t *head_next,
			uint8_t *head_hash)
{
	PKCS8_PRIV_KEY_INFO *p8;
	int len, ret = 0;

	*der = NULL;
	*der_len = 0;
	pthread_mutex_lock(&fw->au_lock);
	*head_next = fw->au_next;
	memcpy(head_hash, fw->au_hash, 32);
	if (fw->au_key) {
		p8 = EVP_PKEY2PKCS8(fw->au_key);
		len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, der) : -1;
		PKCS8_PRIV_KEY_INFO_free(p8);
		if (len <= 0)
			ret = -1;
		else
			*der_len = len;
	}
	pthread_mutex_unlock(&fw->au_lock);
	return ret;
}

/* What a loaded store holds; applied before hsm_audit_open() runs. */
int hsm_audit_store_set(struct hsm_fw *fw, const uint8_t *der,
			size_t der_len, uint64_t head_next,
			const uint8_t *head_hash)
{
	const unsigned char *q = der;
	PKCS8_PRIV_KEY_INFO *p8;
	EVP_PKEY *k = NULL;
	char group[32];

	if (der_len) {
		p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)der_len);
		if (p8 && q == der + der_len)
			k = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
		if (!k || !EVP_PKEY_is_a(k, "EC") ||
		    !EVP_PKEY_get_utf8_string_param(k, "group", group,
						    sizeof(group), NULL) ||
		    strcmp(group, "prime256v1") ||
		    au_key_id(k, fw->au_key_id)) {
			EVP_PKEY_free(k);
			return -1;
		}
	}
	if (!k && head_next)
		return -1;	/* a head without the key that signed it */
	pthread_mutex_lock(&fw->au_lock);
	EVP_PKEY_free(fw->au_key);
	fw->au_key = k;
	fw->au_head_next = head_next;
	memcpy(fw->au_head_hash, head_hash, 32);
	pthread_mutex_unlock(&fw->au_lock);
	return 0;
}

/* ---- start-up ---- */

struct au_scan {
	uint64_t good;		/* records in the good prefix */
	uint64_t total;		/* whole records in the file */
	uint64_t next;		/* seq after the good prefix */
	uint8_t hash[32];	/* chain value after the good prefix */
	uint64_t prev_next;	/* next and hash before its last record */
	uint8_t prev_hash[32];
	uint32_t reason;	/* HSM_AUDIT_DMG_*, 0: none */
	bool head_seen;
};

static bool au_rsvd_ok(const struct hsm_audit_rec *r)
{
	static const uint8_t z[16];

	if (memcmp(r->rsvd0, z, sizeof(r->rsvd0)) ||
	    memcmp(r->rsvd1, z, sizeof(r->rsvd1)) ||
	    le16toh(r->sig_len) > HSM_AUDIT_SIG_MAX)
		return false;
	return le16toh(r->event) == HSM_AUDIT_EV_CHECKPOINT ||
	       !r->sig_len;
}

/* Check one record against the good prefix before it; 0 or a reason. */
static uint32_t au_check(struct hsm_fw *fw, struct au_scan *s,
			 const struct hsm_audit_rec *r)
{
	uint64_t seq = le64toh(r->seq);
	uint16_t ev = le16toh(r->event);

	if (!au_rsvd_ok(r))
		return HSM_AUDIT_DMG_FORMAT;
	if (!s->good) {
		if (ev == HSM_AUDIT_EV_LOG_DAMAGED)
			return 0;	/* anchors a log begun after a loss */
		if (seq || ev != HSM_AUDIT_EV_INIT ||
		    memcmp(r->prev_hash, hsm_zero_hash, 32))
			return HSM_AUDIT_DMG_FORMAT;
		return 0;
	}
	if (seq != s->next &&
	    !(ev == HSM_AUDIT_EV_LOG_DAMAGED && seq > s->next))
		return HSM_AUDIT_DMG_SEQ;
	if (memcmp(r->prev_hash, s->hash, 32))
		return HSM_AUDIT_DMG_CHAIN;
	if (ev == HSM_AUDIT_EV_CHECKPOINT && fw->au_key &&
	    !memcmp(r->label + 16, fw->au_key_id, 32) &&
	    !au_verify(fw->au_key, r))
		return HSM_AUDIT_DMG_SIG;
	return 0;
}

static int au_scan_file(struct hsm_fw *fw, int fd, struct au_scan *s)
{
	struct hsm_audit_rec *buf;
	struct stat st;
	uint64_t i = 0, j, n;
	uint8_t h[32];
	uint32_t why;
	ssize_t got;

	memset(s, 0, sizeof(*s));
	if (fstat(fd, &st))
		return -1;
	s->total = st.st_size / HSM_AUDIT_REC_SIZE;
	buf = malloc(HSM_AUDIT_CHUNK * sizeof(*buf));
	if (!buf)
		return -1;
	while (i < s->total && !s->reason) {
		n = s->total - i;
		if (n > HSM_AUDIT_CHUNK)
			n = HSM_AUDIT_CHUNK;
		got = pread(fd, buf, n * sizeof(*buf),
			    (off_t)(i * sizeof(*buf)));
		if (got != (ssize_t)(n * sizeof(*buf))) {
			free(buf);
			return -1;
		}
		for (j = 0; j < n; j++, i++) {
			const struct hsm_audit_rec *r = &buf[j];
			uint64_t seq = le64toh(r->seq);

			why = au_check(fw, s, r);
			if (!why) {
				au_rec_hash(r, h);
				if (fw->au_head_next &&
				    seq + 1 == fw->au_head_next) {
					if (memcmp(h, fw->au_head_hash, 32))
						why = HSM_AUDIT_DMG_HEAD;
					else
						s->head_seen = true;
				}
			}
			if (why == HSM_AUDIT_DMG_CHAIN) {
				/* the record before may be the edited one */
				if (fw->au_nsegs &&
				    fw->au_segs[fw->au_nsegs - 1].idx == i - 1)
					fw->au_nsegs--;
				s->good--;
				s->next = s->prev_next;
				memcpy(s->hash, s->prev_hash, 32);
				s->head_seen = s->head_seen &&
					       s->next >= fw->au_head_next;
			}
			if (why) {
				s->reason = why;
				break;
			}
			s->prev_next = s->next;
			memcpy(s->prev_hash, r->prev_hash, 32);
			if ((!s->good || seq != s->next) &&
			    au_seg_add(fw, i, seq)) {
				free(buf);
				return -1;
			}
			memcpy(s->hash, h, 32);
			s->next = seq + 1;
			s->good++;
		}
	}
	free(buf);
	if (!s->reason && (uint64_t)st.st_size % HSM_AUDIT_REC_SIZE)
		s->reason = HSM_AUDIT_DMG_TORN;
	if (!s->reason && fw->au_head_next && !s->head_seen)
		s->reason = s->total ? HSM_AUDIT_DMG_SHORT :
				       HSM_AUDIT_DMG_MISSING;
	return 0;
}

static int au_sync_dir(const char *path)
{
	char *d = strdup(path), *slash;
	int fd, ret = -1;

	if (!d)
		return -1;
	slash = strrchr(d, '/');
	if (slash == d)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	fd = open(slash ? d : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		ret = fsync(fd);
		close(fd);
	}
	free(d);
	return ret;
}

/* Keep the evidence: copy the damaged file aside. */
static int au_keep_copy(struct hsm_fw *fw, int fd, uint64_t tag)
{
	const size_t bufsz = 65536;
	uint8_t *buf;
	char *path;
	off_t off = 0;
	ssize_t n;
	int out, ret = -1;

	path = malloc(strlen(fw->au_path) + 40);
	buf = malloc(bufsz);
	if (!path || !buf)
		goto err;
	sprintf(path, "%s.damaged.%llu", fw->au_path, (unsigned long long)tag);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		goto err;
	while ((n = pread(fd, buf, bufsz, off)) > 0) {
		if (write(out, buf, n) != n)
			goto out;
		off += n;
	}
	if (!n && !fsync(out) && !au_sync_dir(path))
		ret = 0;
out:
	close(out);
err:
	free(buf);
	free(path);
	return ret;
}

/* The log is damaged: keep a copy, cut to the good prefix, say so. */
static int au_repair(struct hsm_fw *fw, const struct au_scan *s)
{
	struct hsm_audit_rec r;
	uint64_t seq = s->next;

	if (fw->au_head_next > seq)
		seq = fw->au_head_next;
	if (s->total || s->reason == HSM_AUDIT_DMG_TORN)
		if (au_keep_copy(fw, fw->au_fd, seq))
			return -1;
	if (ftruncate(fw->au_fd, (off_t)(s->good * HSM_AUDIT_REC_SIZE)))
		return -1;
	if (!s->good) {
		/* nothing kept: the new log hangs off the sealed head */
		free(fw->au_segs);
		fw->au_segs = NULL;
		fw->au_nsegs = 0;
		if (au_seg_add(fw, 0, seq))
			return -1;
		fw->au_next = seq;
		fw->au_oldest = seq;
		if (fw->au_head_next == seq)
			memcpy(fw->au_hash, fw->au_head_hash, 32);
		else
			memset(fw->au_hash, 0, 32);
	} else {
		fw->au_next = s->next;
		memcpy(fw->au_hash, s->hash, 32);
	}
	memset(&r, 0, sizeof(r));
	r.event = htole16(HSM_AUDIT_EV_LOG_DAMAGED);
	r.status = htole16(HSM_SC_INTERNAL);
	r.partition = htole32(HSM_AUDIT_NO_PART);
	r.handle = htole64(s->next);	/* first seq not verified */
	r.handle2 = htole64(s->total);	/* records the file had */
	r.detail = htole32(s->reason);
	au_prepare(fw, &r);
	r.seq = htole64(seq);
	fw->au_flags |= HSM_AUDIT_F_DAMAGED;
	return au_commit(fw, &r);
}

/* INIT or START record, then a checkpoint; with the lock held. */
static int au_start_records(struct hsm_fw *fw, uint16_t ev, uint32_t detail)
{
	struct hsm_audit_rec r;

	memset(&r, 0, sizeof(r));
	r.event = htole16(ev);
	r.partition = htole32(HSM_AUDIT_NO_PART);
	r.detail = htole32(detail);
	memcpy(r.label, fw->card_id, 16);
	memcpy(r.label + 16, fw->au_key_id, 32);
	au_prepare(fw, &r);
	if (au_commit(fw, &r))
		return -1;
	return au_checkpoint_locked(fw, 0, NULL);
}

static int au_new_key(struct hsm_fw *fw)
{
	fw->au_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!fw->au_key || au_key_id(fw->au_key, fw->au_key_id))
		return -1;
	return 0;
}

/**
 * hsm_audit_open() - bring the audit log up at card start
 * @fw:   the card; the key store (if any) is loaded
 * @errp: receives a message on failure
 *
 * Return: 0, or -1 if the log cannot be kept at all (the card does not
 * start); a damaged log is not an error (see the file comment).
 */
int hsm_audit_open(struct hsm_fw *fw, char **errp)
{
	struct au_scan s;
	bool had_key = fw->au_key != NULL;
	uint32_t detail = HSM_AUDIT_INIT_NEW;
	int ret = -1;

	pthread_mutex_lock(&fw->au_lock);
	if (!had_key && au_new_key(fw))
		goto out;
	if (!fw->ks_path) {
		fw->au_ring = calloc(HSM_AUDIT_RING, sizeof(*fw->au_ring));
		if (!fw->au_ring)
			goto out;
		fw->au_flags |= HSM_AUDIT_F_VOLATILE;
		ret = au_start_records(fw, HSM_AUDIT_EV_INIT,
				       HSM_AUDIT_INIT_VOLATILE);
		goto out;
	}
	fw->au_path = malloc(strlen(fw->ks_path) + 8);
	if (!fw->au_path)
		goto out;
	sprintf(fw->au_path, "%s.audit", fw->ks_path);
	fw->au_fd = open(fw->au_path, O_RDWR | O_CLOEXEC);
	if (fw->au_fd < 0 && errno == ENOENT) {
		/* a new log: its directory entry is made durable too */
		fw->au_fd = open(fw->au_path, O_RDWR | O_CREAT | O_CLOEXEC,
				 0600);
		if (fw->au_fd >= 0 && au_sync_dir(fw->au_path))
			goto out;
	}
	if (fw->au_fd < 0 || au_scan_file(fw, fw->au_fd, &s))
		goto out;
	if (s.reason) {
		if (au_repair(fw, &s))
			goto out;
	} else {
		if (!s.good && au_seg_add(fw, 0, 0))
			goto out;
		fw->au_next = s.next;
		memcpy(fw->au_hash, s.hash, 32);
	}
	if (fw->au_nsegs)
		fw->au_oldest = fw->au_segs[0].seq;
	if (had_key)
		ret = au_start_records(fw, HSM_AUDIT_EV_START, 0);
	else {
		if (fw->au_next)
			detail = HSM_AUDIT_INIT_REINIT;
		ret = au_start_records(fw, HSM_AUDIT_EV_INIT, detail);
	}
out:
	pthread_mutex_unlock(&fw->au_lock);
	if (!ret && fw->ks_path && hsm_store_save(fw))
		ret = -1;
	if (ret && errp && !*errp)
		*errp = strdup("audit log cannot be created or written");
	return ret;
}

void hsm_audit_close(struct hsm_fw *fw)
{
	if (fw->au_fd >= 0)
		close(fw->au_fd);
	fw->au_fd = -1;
	EVP_PKEY_free(fw->au_key);
	fw->au_key = NULL;
	free(fw->au_ring);
	free(fw->au_segs);
	free(fw->au_path);
	fw->au_ring = NULL;
	fw->au_segs = NULL;
	fw->au_path = NULL;
	pthread_mutex_destroy(&fw->au_lock);
}

/* Tamper: record it, sign it with the old key, then wipe that key. */
void hsm_audit_tamper(struct hsm_fw *fw)
{
	struct hsm_audit_rec r;

	memset(&r, 0, sizeof(r));
	r.event = htole16(HSM_AUDIT_EV_TAMPER);
	r.status = htole16(HSM_SC_TAMPERED);
	r.partition = htole32(HSM_AUDIT_NO_PART);
	pthread_mutex_lock(&fw->au_lock);
	if (!fw->au_key) {
		/* a second tamper: still recorded, nothing to sign with */
		au_prepare(fw, &r);
		au_commit(fw, &r);
		pthread_mutex_unlock(&fw->au_lock);
		return;
	}
	au_prepare(fw, &r);
	if (!au_commit(fw, &r))
		au_checkpoint_locked(fw, 0, NULL);
	EVP_PKEY_free(fw->au_key);
	fw->au_key = NULL;
	fw->au_flags |= HSM_AUDIT_F_NO_KEY;
	pthread_mutex_unlock(&fw->au_lock);
}

uint32_t hsm_fw_audit_flags(struct hsm_fw *fw)
{
	uint32_t f;

	pthread_mutex_lock(&fw->au_lock);
	f = fw->au_flags;
	pthread_mutex_unlock(&fw->au_lock);
	return f;
}

/* ---- hooks in the admin command dispatch ---- */

static bool au_key_info(struct hsm_fw *fw, uint64_t handle,
			struct hsm_audit_pre *info)
{
	struct hsm_key *k;

	memset(info, 0, sizeof(*info));
	if (!handle || hsm_key_get(fw, handle, &k))
		return false;
	info->have = true;
	info->kernel_session = k->partition == HSM_KERNEL_PARTITION &&
			       !(k->flags & HSM_KEYF_PERSISTENT);
	info->partition = k->partition;
	info->state = __atomic_load_n(&k->state, __ATOMIC_ACQUIRE);
	info->detail = (uint32_t)k->type << 16 | k->bits;
	memcpy(info->label, k->label, sizeof(info->label));
	hsm_key_put(k);
	return true;
}

/* What must be known before the command runs (a destroyed key is gone). */
void hsm_audit_pre(struct hsm_cmd *c, struct hsm_audit_pre *pre)
{
	memset(pre, 0, sizeof(*pre));
	if (c->opcode == HSM_ADM_KEY_DESTROY ||
	    c->opcode == HSM_ADM_KEY_SET_STATE ||
	    c->opcode == HSM_ADM_KEY_ROTATE)
		au_key_info(c->fw, c->handle, pre);
}

/* Outcomes that refuse custody of a key: these are logged as denials. */
static bool au_denial(uint16_t st)
{
	switch (st) {
	case HSM_SC_INVALID_HANDLE:
	case HSM_SC_KEY_TYPE:
	case HSM_SC_USE_DENIED:
	case HSM_SC_NOT_EXTRACTABLE:
	case HSM_SC_DECRYPT_FAILED:
	case HSM_SC_TAMPERED:
	case HSM_SC_INVALID_TOKEN:
	case HSM_SC_KEY_STATE:
	case HSM_SC_KEY_COMPROMISED:
	case HSM_SC_LABEL_EXISTS:
	case HSM_SC_ID_EXISTS:
		return true;
	}
	return false;
}

static uint16_t au_event_of(uint8_t opcode)
{
	switch (opcode) {
	case HSM_ADM_KEY_GENERATE:
	case HSM_ADM_KEY_ROTATE:
		return HSM_AUDIT_EV_KEY_GENERATE;
	case HSM_ADM_KEY_SET_STATE:
		return HSM_AUDIT_EV_KEY_STATE;
	case HSM_ADM_KEY_IMPORT:
		return HSM_AUDIT_EV_KEY_IMPORT;
	case HSM_ADM_KEY_UNWRAP:
		return HSM_AUDIT_EV_KEY_UNWRAP;
	case HSM_ADM_KEY_WRAP:
		return HSM_AUDIT_EV_KEY_WRAP;
	case HSM_ADM_KEY_DESTROY:
		return HSM_AUDIT_EV_KEY_DESTROY;
	case HSM_ADM_TOKEN_CREATE:
		return HSM_AUDIT_EV_TOKEN_CREATE;
	case HSM_ADM_TOKEN_OPEN:
		return HSM_AUDIT_EV_TOKEN_OPEN;
	}
	return 0;
}

/* Read @len bytes at the start of src again, for the record only. */
static bool au_peek_src(struct hsm_cmd *c, void *buf, size_t len)
{
	struct hsm_xbuf *xb;
	bool ok;

	if (c->src_len < len)
		return false;
	xb = malloc(sizeof(*xb));
	ok = xb && !hsm_xbuf_src(c, xb) && !hsm_xbuf_read(xb, buf, len);
	free(xb);
	return ok;
}

static void au_fill(struct hsm_audit_rec *r, const struct hsm_audit_pre *i)
{
	if (!i->have)
		return;
	r->partition = htole32(i->partition);
	r->detail = htole32(i->detail);
	memcpy(r->label, i->label, sizeof(r->label));
}

/* The record of a command that created a key: from what the host asked. */
static void au_from_attrs(struct hsm_cmd *c, struct hsm_audit_rec *r)
{
	struct hsm_key_attrs a;

	if (!au_peek_src(c, &a, sizeof(a)))
		return;
	r->partition = a.partition;
	r->detail = htole32((uint32_t)le16toh(a.type) << 16 | le16toh(a.bits));
	memcpy(r->label, a.label, sizeof(r->label));
	r->label[sizeof(r->label) - 1] = 0;
}

/**
 * hsm_audit_cmd() - log the outcome of an admin command
 * @c:   the command, after it ran
 * @st:  its status
 * @pre: what hsm_audit_pre() found before it ran
 *
 * Management actions are logged when they succeed and when they are
 * refused for a custody reason (au_denial()); malformed commands are not.
 * If the record cannot be written, a key the command created is taken
 * back and the command fails with HSM_SC_INTERNAL: nothing is acknowledged
 * without its record.
 *
 * Return: the command's final status.
 */
uint16_t hsm_audit_cmd(struct hsm_cmd *c, uint16_t st,
		       const struct hsm_audit_pre *pre)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_audit_pre info;
	struct hsm_audit_rec r;
	struct hsm_key_token t;
	uint16_t ev = au_event_of(c->opcode);
	struct hsm_key *k;

	if (!ev || (st && !au_denial(st)) ||
	    (ev == HSM_AUDIT_EV_TOKEN_OPEN && !st))
		return st;
	/*
	 * The kernel's crypto API imports a volatile key into the kernel
	 * partition for every transform's setkey and destroys it with the
	 * transform (thousands at each driver load, from the self-tests):
	 * data-path keys, not custody actions.  Their denials are recorded.
	 */
	if (!st && ev == HSM_AUDIT_EV_KEY_IMPORT &&
	    au_key_info(fw, c->result, &info) && info.kernel_session)
		return st;
	if (!st && ev == HSM_AUDIT_EV_KEY_DESTROY && pre->kernel_session)
		return st;
	memset(&r, 0, sizeof(r));
	r.event = htole16(ev);
	r.status = htole16(st);
	r.opcode = c->opcode;
	r.partition = htole32(HSM_AUDIT_NO_PART);
	switch (ev) {
	case HSM_AUDIT_EV_KEY_GENERATE:
	case HSM_AUDIT_EV_KEY_IMPORT:
	case HSM_AUDIT_EV_KEY_UNWRAP:
		if (c->opcode == HSM_ADM_KEY_ROTATE)
			au_fill(&r, pre);	/* the new key is like the old */
		else
			au_from_attrs(c, &r);
		if (ev == HSM_AUDIT_EV_KEY_UNWRAP ||
		    c->opcode == HSM_ADM_KEY_ROTATE)
			r.handle2 = htole64(c->handle);
		if (!st) {
			r.handle = htole64(c->result);
			au_key_info(fw, c->result, &info);
			au_fill(&r, &info);
		}
		break;
	case HSM_AUDIT_EV_KEY_WRAP:
	case HSM_AUDIT_EV_TOKEN_CREATE:
		r.handle = htole64(c->handle);
		if (ev == HSM_AUDIT_EV_KEY_WRAP)
			r.handle2 = htole64(c->qw[0]);
		r.partition = htole32(HSM_HANDLE_PART(c->handle));
		au_key_info(fw, c->handle, &info);
		au_fill(&r, &info);
		break;
	case HSM_AUDIT_EV_KEY_DESTROY:
		r.handle = htole64(c->handle);
		r.partition = htole32(HSM_HANDLE_PART(c->handle));
		au_fill(&r, pre);
		break;
	case HSM_AUDIT_EV_KEY_STATE:
		r.handle = htole64(c->handle);
		r.partition = htole32(HSM_HANDLE_PART(c->handle));
		au_fill(&r, pre);
		r.detail = htole32(HSM_AUDIT_STATE(st ? pre->state : c->result,
						   c->cdw[0]));
		break;
	case HSM_AUDIT_EV_TOKEN_OPEN:
		if (au_peek_src(c, &t, sizeof(t))) {
			r.handle = t.handle;
			r.partition =
				htole32(HSM_HANDLE_PART(le64toh(t.handle)));
			memcpy(r.label, t.card_id, sizeof(t.card_id));
		}
		break;
	}
	if (!au_log(fw, &r)) {
		if (st || c->opcode != HSM_ADM_KEY_ROTATE)
			return st;
		/* the old version's move to DEACTIVATED */
		r.event = htole16(HSM_AUDIT_EV_KEY_STATE);
		r.handle = htole64(c->handle);
		r.handle2 = htole64(c->result);
		r.detail = htole32(HSM_AUDIT_STATE(HSM_KEY_STATE_ACTIVE,
						   HSM_KEY_STATE_DEACTIVATED));
		memset(r.prev_hash, 0, sizeof(r.prev_hash));
		if (!au_log(fw, &r))
			return st;
	}
	if (st)
		return st;
	if (c->opcode == HSM_ADM_KEY_ROTATE) {
		hsm_key_rotate_undo(fw, c->handle, c->result);
		c->result = 0;
		return HSM_SC_INTERNAL;
	}
	/* no record, no acknowledgement: take a new key back */
	if (ev == HSM_AUDIT_EV_KEY_GENERATE || ev == HSM_AUDIT_EV_KEY_IMPORT ||
	    ev == HSM_AUDIT_EV_KEY_UNWRAP) {
		k = hsm_key_remove(fw, c->result);
		if (k) {
			bool persistent = k->flags & HSM_KEYF_PERSISTENT;

			hsm_key_put(k);
			if (persistent)
				hsm_store_save(fw);
		}
	}
	c->result = 0;
	return HSM_SC_INTERNAL;
}

/**
 * hsm_audit_auth() - record a partition, role or PIN event
 * @fw:     the card
 * @ev:     HSM_AUDIT_EV_LOGIN .. HSM_AUDIT_EV_PART_CHANGE
 * @st:     outcome (HSM_SC_*)
 * @opcode: the admin command
 * @part:   partition, or HSM_AUDIT_NO_PART (admin PIN)
 * @detail: HSM_AUDIT_AUTH(role, n)
 * @label:  partition label, or NULL
 *
 * Never given a PIN.  Return: 0 once the record is in the log, else -1.
 */
int hsm_audit_auth(struct hsm_fw *fw, uint16_t ev, uint16_t st,
		   uint8_t opcode, uint32_t part, uint32_t detail,
		   const char *label)
{
	struct hsm_audit_rec r;

	memset(&r, 0, sizeof(r));
	r.event = htole16(ev);
	r.status = htole16(st);
	r.opcode = opcode;
	r.partition = htole32(part);
	r.detail = htole32(detail);
	if (label)
		strncpy(r.label, label, sizeof(r.label) - 1);
	return au_log(fw, &r);
}

/*
 * CARD_INIT: seal what the old key vouched for with a checkpoint, then a
 * new audit key, an INIT record (detail REINIT, @opcode) and a checkpoint
 * by the new key.  The caller seals the new key with hsm_store_save().
 */
int hsm_audit_reinit(struct hsm_fw *fw, uint8_t opcode)
{
	struct hsm_audit_rec r;
	EVP_PKEY *old;
	int ret = -1;

	pthread_mutex_lock(&fw->au_lock);
	if (fw->au_key && au_checkpoint_locked(fw, opcode, NULL))
		goto out;
	old = fw->au_key;
	fw->au_key = NULL;
	if (au_new_key(fw)) {
		EVP_PKEY_free(fw->au_key);
		fw->au_key = old;
		if (old)
			au_key_id(old, fw->au_key_id);
		goto out;
	}
	EVP_PKEY_free(old);
	fw->au_flags &= ~HSM_AUDIT_F_NO_KEY;
	memset(&r, 0, sizeof(r));
	r.event = htole16(HSM_AUDIT_EV_INIT);
	r.partition = htole32(HSM_AUDIT_NO_PART);
	r.detail = htole32(HSM_AUDIT_INIT_REINIT);
	r.opcode = opcode;
	memcpy(r.label, fw->card_id, 16);
	memcpy(r.label + 16, fw->au_key_id, 32);
	au_prepare(fw, &r);
	if (au_commit(fw, &r))
		goto out;
	fw->au_since_ckpt = 0;
	ret = au_checkpoint_locked(fw, 0, NULL);
out:
	pthread_mutex_unlock(&fw->au_lock);
	return ret;
}

/* ---- commands ---- */

static void au_read_rec(struct hsm_fw *fw, uint64_t seq,
			struct hsm_audit_rec *r, int *err)
{
	unsigned int i;
	uint64_t idx;

	if (fw->au_fd < 0) {
		*r = fw->au_ring[seq % HSM_AUDIT_RING];
		return;
	}
	for (i = fw->au_nsegs; i-- > 1;)
		if (fw->au_segs[i].seq <= seq)
			break;
	idx = fw->au_segs[i].idx + (seq - fw->au_segs[i].seq);
	if (pread(fw->au_fd, r, sizeof(*r), (off_t)(idx * sizeof(*r))) !=
	    sizeof(*r))
		*err = 1;
}

/* First seq at or after @seq that the log holds (skips damage gaps). */
static uint64_t au_first_held(struct hsm_fw *fw, uint64_t seq)
{
	unsigned int i;

	if (seq < fw->au_oldest)
		return fw->au_oldest;
	if (fw->au_fd < 0)
		return seq;
	for (i = 1; i < fw->au_nsegs; i++) {
		uint64_t end = fw->au_segs[i - 1].seq +
			       (fw->au_segs[i].idx - fw->au_segs[i - 1].idx);

		if (seq >= end && seq < fw->au_segs[i].seq)
			return fw->au_segs[i].seq;
	}
	return seq;
}

/*
 * AUDIT_READ: qw[0] = first seq; dst = struct hsm_audit_read_hdr and
 * records; result = records written.
 */
uint16_t hsm_adm_audit_read(struct hsm_cmd *c)
{
	struct hsm_fw *fw = c->fw;
	struct hsm_audit_read_hdr *h;
	struct hsm_audit_rec *recs;
	struct hsm_xbuf *xb = NULL;
	uint64_t want = c->qw[0], seq;
	uint32_t cap, n = 0;
	uint8_t *out = NULL;
	uint16_t st;
	int err = 0;

	st = hsm_cmd_check_fields(c, HSM_F_DST | HSM_F_CDW(0) | HSM_F_CDW(1));
	if (st)
		return st;
	if (c->dst_len > HSM_FW_MAX_XFER ||
	    c->dst_len < HSM_AUDIT_HDR_SIZE + HSM_AUDIT_REC_SIZE ||
	    (c->dst_len - HSM_AUDIT_HDR_SIZE) % HSM_AUDIT_REC_SIZE)
		return HSM_SC_INVALID_LENGTH;
	cap = (c->dst_len - HSM_AUDIT_HDR_SIZE) / HSM_AUDIT_REC_SIZE;
	xb = malloc(sizeof(*xb));
	out = calloc(1, c->dst_len);
	if (!xb || !out) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_xbuf_dst(c, xb);
	if (st)
		goto out;
	h = (struct hsm_audit_read_hdr *)out;
	pthread_mutex_lock(&fw->au_lock);
	if (want > fw->au_next) {
		pthread_mutex_unlock(&fw->au_lock);
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	recs = (struct hsm_audit_rec *)(out + HSM_AUDIT_HDR_SIZE);
	seq = au_first_held(fw, want);
	h->first_seq = htole64(seq);
	for (; seq < fw->au_next && n < cap && !err; n++) {
		seq = au_first_held(fw, seq);
		au_read_rec(fw, seq, &recs[n], &err);
		seq++;
	}
	h->next_seq = htole64(seq);
	h->last_seq = htole64(fw->au_next - 1);
	h->oldest_seq = htole64(fw->au_oldest);
	h->count = htole32(n);
	h->flags = htole32(fw->au_flags);
	/* the records read end with the newest: count afresh, re-arm */
	if (!err && n && seq == fw->au_next) {
		__atomic_store_n(&fw->au_unread, 0, __ATOMIC_RELAXED);
		fw->au_hw_armed = true;
	}
	pthread_mutex_unlock(&fw->au_lock);
	if (err) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_xbuf_write(xb, out, HSM_AUDIT_HDR_SIZE +
			    (size_t)n * HSM_AUDIT_REC_SIZE);
	if (!st)
		c->result = n;
out:
	free(out);
	free(xb);
	return st;
}

/* AUDIT_PUBKEY: dst = DER SubjectPublicKeyInfo of the audit key. */
uint16_t hsm_adm_audit_pubkey(struct hsm_cmd *c)
{
	unsigned char *der = NULL;
	struct hsm_xbuf *xb;
	uint16_t st;
	int len = 0;

	st = hsm_cmd_check_fields(c, HSM_F_DST);
	if (st)
		return st;
	if (c->dst_len > HSM_FW_MAX_XFER)
		return HSM_SC_INVALID_LENGTH;
	pthread_mutex_lock(&c->fw->au_lock);
	if (!c->fw->au_key)
		st = HSM_SC_TAMPERED;
	else
		len = i2d_PUBKEY(c->fw->au_key, &der);
	pthread_mutex_unlock(&c->fw->au_lock);
	if (st)
		return st;
	if (len <= 0)
		return HSM_SC_INTERNAL;
	if (c->dst_len < (uint32_t)len) {
		c->result = len;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	xb = malloc(sizeof(*xb));
	st = xb ? hsm_xbuf_dst(c, xb) : HSM_SC_INTERNAL;
	if (!st)
		st = hsm_xbuf_write(xb, der, len);
	if (!st)
		c->result = len;
	free(xb);
out:
	OPENSSL_free(der);
	return st;
}

/* AUDIT_CHECKPOINT: append a signed record now; result = its seq. */
uint16_t hsm_adm_audit_checkpoint(struct hsm_cmd *c)
{
	uint64_t seq = 0;
	uint16_t st;
	int ret;

	st = hsm_cmd_check_fields(c, 0);
	if (st)
		return st;
	pthread_mutex_lock(&c->fw->au_lock);
	ret = au_checkpoint_locked(c->fw, c->opcode, &seq);
	pthread_mutex_unlock(&c->fw->au_lock);
	if (ret == -2)
		return HSM_SC_TAMPERED;
	if (ret)
		return HSM_SC_INTERNAL;
	if (c->fw->ks_path)
		hsm_store_save(c->fw);
	c->result = seq;
	return HSM_SC_SUCCESS;
}
