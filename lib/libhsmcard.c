// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libhsmcard: contexts, one-shot operations and command-ring batches.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hsmcard.h"

#define HSM_EXPORT __attribute__((visibility("default")))

struct hsm_ctx {
	int fd;
	/* ring, when set up */
	int ring_fd;
	void *map;
	size_t map_len;
	struct hsmcard_ring_hdr *hdr;
	struct hsmcard_ring_sqe *sq;
	struct hsmcard_ring_cqe *cq;
	uint32_t entries;
	uint32_t sq_tail;	/* entries handed out by hsm_get_sqe() */
	uint32_t cq_head;	/* local copy */
	uint8_t *arena;
	size_t arena_len;
	size_t arena_used;
	uint32_t max_job_len;
};

static int hsm_xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

/**
 * hsm_open_path() - open a card by device path
 * @path: e.g. "/dev/hsmcard0"
 *
 * Return: a new context, or NULL with errno set.
 */
HSM_EXPORT struct hsm_ctx *hsm_open_path(const char *path)
{
	struct hsm_ctx *ctx = calloc(1, sizeof(*ctx));
	int err;

	if (!ctx)
		return NULL;
	ctx->ring_fd = -1;
	ctx->fd = open(path, O_RDWR | O_CLOEXEC);
	if (ctx->fd < 0) {
		err = errno;
		free(ctx);
		errno = err;
		return NULL;
	}
	return ctx;
}

/**
 * hsm_open() - open card number @index (/dev/hsmcard<index>)
 * @index: card index
 *
 * Return: a new context, or NULL with errno set.
 */
HSM_EXPORT struct hsm_ctx *hsm_open(unsigned int index)
{
	char path[32];

	snprintf(path, sizeof(path), "/dev/hsmcard%u", index);
	return hsm_open_path(path);
}

/* First line of /sys/class/misc/hsmcard<index>/device/<attr>, or -1. */
static int hsm_read_attr(unsigned int index, const char *attr, char *buf,
			 size_t len)
{
	char path[96];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/misc/hsmcard%u/device/%s",
		 index, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/**
 * hsm_open_least_busy() - open the live card that holds the fewest commands
 *
 * Looks at every card in /sys/class/misc, skips those not in the "live"
 * state, and opens the one whose "inflight" attribute is lowest (the lowest
 * index on a tie).  The figure is a snapshot shared by every process using
 * the cards; a server that opens one context per thread this way spreads
 * its threads over the cards as their load stands when they start.
 *
 * Return: a new context, or NULL with errno set (ENODEV: no live card).
 */
HSM_EXPORT struct hsm_ctx *hsm_open_least_busy(void)
{
	unsigned long best_load = (unsigned long)-1;
	unsigned int best = 0, index;
	bool found = false;
	struct dirent *de;
	char buf[32], *end;
	DIR *d;

	d = opendir("/sys/class/misc");
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		unsigned long load;

		if (sscanf(de->d_name, "hsmcard%u", &index) != 1)
			continue;
		if (hsm_read_attr(index, "state", buf, sizeof(buf)) ||
		    strcmp(buf, "live"))
			continue;
		if (hsm_read_attr(index, "inflight", buf, sizeof(buf)))
			continue;
		errno = 0;
		load = strtoul(buf, &end, 10);
		if (errno || end == buf || *end)
			continue;
		if (!found || load < best_load ||
		    (load == best_load && index < best)) {
			best = index;
			best_load = load;
			found = true;
		}
	}
	closedir(d);
	if (!found) {
		errno = ENODEV;
		return NULL;
	}
	return hsm_open(best);
}

static void hsm_ring_teardown(struct hsm_ctx *ctx)
{
	if (ctx->map)
		munmap(ctx->map, ctx->map_len);
	if (ctx->ring_fd >= 0)
		close(ctx->ring_fd);
	if (ctx->arena)
		munmap(ctx->arena, ctx->arena_len);
	ctx->map = NULL;
	ctx->ring_fd = -1;
	ctx->arena = NULL;
}

/**
 * hsm_close() - close a context and its ring
 * @ctx: context (NULL is ignored)
 *
 * Jobs still in flight complete inside the kernel before the arena is
 * released; their results are lost.
 */
HSM_EXPORT void hsm_close(struct hsm_ctx *ctx)
{
	if (!ctx)
		return;
	hsm_ring_teardown(ctx);
	close(ctx->fd);
	free(ctx);
}

/**
 * hsm_fd() - the device file descriptor of a context
 * @ctx: context
 *
 * Return: the fd (owned by the context).
 */
HSM_EXPORT int hsm_fd(const struct hsm_ctx *ctx)
{
	return ctx->fd;
}

/**
 * hsm_info() - HSMCARD_IOC_INFO
 * @ctx:  context
 * @info: receives the card's description
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_info(struct hsm_ctx *ctx, struct hsmcard_info *info)
{
	memset(info, 0, sizeof(*info));
	return hsm_xioctl(ctx->fd, HSMCARD_IOC_INFO, info);
}

/**
 * hsm_strerror() - describe a status of this library or of a completion
 * @err: 0 or a negative errno
 *
 * Return: a static string.
 */
HSM_EXPORT const char *hsm_strerror(int err)
{
	switch (-err) {
	case 0: return "success";
	case ENOKEY: return "no such key (or not in the user partition)";
	case EACCES: return "key use not permitted";
	case EKEYREJECTED: return "key type does not fit the mechanism";
	case EBADMSG: return "verification failed";
	case ENOSPC: return "output buffer too small";
	case E2BIG: return "input too long";
	case ERANGE: return "buffer outside the arena";
	case EOPNOTSUPP: return "operation or mechanism not supported";
	case ENOTRECOVERABLE: return "card tampered (zeroized)";
	case ECANCELED: return "aborted by a card reset";
	case ENODEV: return "card removed";
	case ETIMEDOUT: return "card timed out";
	case EDQUOT: return "key store full";
	default: return strerror(-err);
	}
}

/* ---- keys ---- */

/**
 * hsm_keygen() - generate a key in the card (user partition)
 * @ctx:    context
 * @type:   enum hsmcard_key_type
 * @bits:   key size (see struct hsmcard_key_attrs)
 * @uses:   HSMCARD_USE_* (0: the card's default)
 * @flags:  HSMCARD_KEYF_*
 * @label:  label (may be NULL), at most HSMCARD_LABEL_LEN - 1 bytes
 * @handle: receives the key handle
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_keygen(struct hsm_ctx *ctx, uint16_t type, uint16_t bits,
			  uint32_t uses, uint32_t flags, const char *label,
			  uint64_t *handle)
{
	struct hsmcard_key_attrs a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.type = type;
	a.bits = bits;
	a.uses = uses;
	a.flags = flags;
	if (label) {
		if (strlen(label) >= sizeof(a.label))
			return -EINVAL;
		strcpy(a.label, label);
	}
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_GENERATE, &a);
	if (!ret)
		*handle = a.handle;
	return ret;
}

/**
 * hsm_keygen_attrs() - generate a key described by a full attribute set
 * @ctx:   context
 * @attrs: in: type, bits, uses, flags, state, label, key ID (id_len, id),
 *         the output-only fields zero; out: the attributes the card
 *         recorded, the new handle among them
 *
 * Return: 0, -EEXIST if the label or the key ID is in use in the
 * partition, or another negative errno.
 */
HSM_EXPORT int hsm_keygen_attrs(struct hsm_ctx *ctx,
				struct hsmcard_key_attrs *attrs)
{
	return hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_GENERATE, attrs);
}

/**
 * hsm_key_import() - import a clear key as a session key
 * @ctx:     context
 * @type:    enum hsmcard_key_type
 * @bits:    key size in bits
 * @uses:    HSMCARD_USE_*
 * @key:     raw key (AES, HMAC) or PKCS#8 DER (RSA, EC, Ed25519)
 * @key_len: bytes at @key
 * @handle:  receives the key handle
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_key_import(struct hsm_ctx *ctx, uint16_t type,
			      uint16_t bits, uint32_t uses, const void *key,
			      size_t key_len, uint64_t *handle)
{
	struct hsmcard_key_import imp;
	int ret;

	if (key_len > UINT32_MAX)
		return -E2BIG;
	memset(&imp, 0, sizeof(imp));
	imp.attrs.type = type;
	imp.attrs.bits = bits;
	imp.attrs.uses = uses;
	imp.key = (uintptr_t)key;
	imp.key_len = key_len;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_IMPORT, &imp);
	if (!ret)
		*handle = imp.attrs.handle;
	return ret;
}

/**
 * hsm_key_list() - list the keys of the user partition
 * @ctx:     context
 * @handles: receives up to @max handles
 * @max:     capacity of @handles
 * @count:   receives the number stored
 *
 * Return: 0, or -ENOSPC when there are more than @max keys (@count then
 * holds the first @max), or another negative errno.
 */
HSM_EXPORT int hsm_key_list(struct hsm_ctx *ctx, uint64_t *handles,
			    size_t max, size_t *count)
{
	struct hsmcard_key_list kl;
	size_t n = 0;
	int ret;

	*count = 0;
	if (!max)
		return -EINVAL;
	memset(&kl, 0, sizeof(kl));
	for (;;) {
		kl.handles = (uintptr_t)(handles + n);
		kl.max = max - n > UINT32_MAX ? UINT32_MAX : max - n;
		kl.cursor = n;
		ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_LIST, &kl);
		if (ret)
			return ret;
		n += kl.count;
		*count = n;
		if (n >= kl.total || !kl.count)
			return 0;
		if (n == max)
			return -ENOSPC;
	}
}

/**
 * hsm_key_destroy() - destroy a key
 * @ctx:    context
 * @handle: key handle
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_key_destroy(struct hsm_ctx *ctx, uint64_t handle)
{
	struct hsmcard_key_handle kh;

	memset(&kh, 0, sizeof(kh));
	kh.handle = handle;
	return hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_DESTROY, &kh);
}

/**
 * hsm_key_set_state() - move a key forward in its lifecycle
 * @ctx:       context
 * @handle:    key handle
 * @state:     HSMCARD_KEY_STATE_ACTIVE, _DEACTIVATED or _COMPROMISED
 * @old_state: the state before, or NULL
 *
 * Return: 0 or a negative errno (-EKEYEXPIRED: a change the lifecycle
 * does not allow).
 */
HSM_EXPORT int hsm_key_set_state(struct hsm_ctx *ctx, uint64_t handle,
				 uint32_t state, uint32_t *old_state)
{
	struct hsmcard_key_set_state ks;
	int ret;

	memset(&ks, 0, sizeof(ks));
	ks.handle = handle;
	ks.state = state;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_SET_STATE, &ks);
	if (!ret && old_state)
		*old_state = ks.old_state;
	return ret;
}

/**
 * hsm_key_rotate() - replace an active key by a new version of it
 * @ctx:       context
 * @handle:    the active key; it becomes DEACTIVATED (decrypt and verify
 *             only)
 * @new_attrs: the new version's attributes (its handle among them), or
 *             NULL
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_key_rotate(struct hsm_ctx *ctx, uint64_t handle,
			      struct hsmcard_key_attrs *new_attrs)
{
	struct hsmcard_key_rotate kr;
	int ret;

	memset(&kr, 0, sizeof(kr));
	kr.handle = handle;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_ROTATE, &kr);
	if (!ret && new_attrs)
		*new_attrs = kr.attrs;
	return ret;
}

/**
 * hsm_key_rotate_id() - hsm_key_rotate() giving the new version a key ID
 * @ctx:       context
 * @handle:    the active key; it becomes DEACTIVATED and keeps its own ID
 * @id:        the new version's key ID (NULL with @id_len 0: none)
 * @id_len:    0..HSMCARD_KEY_ID_LEN
 * @new_attrs: the new version's attributes, or NULL
 *
 * Return: 0, -EEXIST if another key of the partition has that ID, or
 * another negative errno.
 */
HSM_EXPORT int hsm_key_rotate_id(struct hsm_ctx *ctx, uint64_t handle,
				 const void *id, size_t id_len,
				 struct hsmcard_key_attrs *new_attrs)
{
	struct hsmcard_key_rotate kr;
	int ret;

	if (id_len > sizeof(kr.id) || (id_len && !id))
		return -EINVAL;
	memset(&kr, 0, sizeof(kr));
	kr.handle = handle;
	kr.id_len = id_len;
	if (id_len)
		memcpy(kr.id, id, id_len);
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_ROTATE, &kr);
	if (!ret && new_attrs)
		*new_attrs = kr.attrs;
	return ret;
}

/**
 * hsm_key_find() - look a key up by its label
 * @ctx:     context
 * @label:   non-empty label, shorter than HSMCARD_LABEL_LEN
 * @version: the version wanted, 0 for the newest
 * @attrs:   the key's attributes (its handle among them)
 *
 * Return: 0, -ENOKEY if the partition has no such key, or another
 * negative errno.
 */
HSM_EXPORT int hsm_key_find(struct hsm_ctx *ctx, const char *label,
			    uint32_t version, struct hsmcard_key_attrs *attrs)
{
	struct hsmcard_key_find kf;
	size_t n = label ? strlen(label) : 0;
	int ret;

	if (!n || n >= sizeof(kf.label))
		return -EINVAL;
	memset(&kf, 0, sizeof(kf));
	memcpy(kf.label, label, n);
	kf.version = version;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_FIND, &kf);
	if (!ret && attrs)
		*attrs = kf.attrs;
	return ret;
}

/**
 * hsm_key_find_id() - look a key up by its key ID
 * @ctx:    context
 * @id:     the key ID (e.g. a hash of the public key)
 * @id_len: its length, 1..HSMCARD_KEY_ID_LEN
 * @attrs:  the key's attributes (its handle among them)
 *
 * A non-empty key ID names at most one key of the partition.
 *
 * Return: 0, -ENOKEY if the partition has no such key, or another
 * negative errno.
 */
HSM_EXPORT int hsm_key_find_id(struct hsm_ctx *ctx, const void *id,
			       size_t id_len, struct hsmcard_key_attrs *attrs)
{
	struct hsmcard_key_find kf;
	int ret;

	if (!id || !id_len || id_len > sizeof(kf.id))
		return -EINVAL;
	memset(&kf, 0, sizeof(kf));
	kf.flags = HSMCARD_FIND_F_ID;
	kf.id_len = id_len;
	memcpy(kf.id, id, id_len);
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_FIND, &kf);
	if (!ret && attrs)
		*attrs = kf.attrs;
	return ret;
}

/**
 * hsm_key_export_public() - DER SubjectPublicKeyInfo of an asymmetric key
 * @ctx:     context
 * @handle:  RSA, EC or Ed25519 key
 * @der:     output buffer
 * @der_len: in: capacity of @der; out: bytes written (or needed with
 *           -ENOSPC)
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_key_export_public(struct hsm_ctx *ctx, uint64_t handle,
				     void *der, size_t *der_len)
{
	struct hsmcard_key_pubkey pk;
	int ret;

	memset(&pk, 0, sizeof(pk));
	pk.handle = handle;
	pk.buf = (uintptr_t)der;
	pk.len = *der_len > UINT32_MAX ? UINT32_MAX : *der_len;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_PUBKEY, &pk);
	if (!ret || ret == -ENOSPC)
		*der_len = pk.len;
	return ret;
}

static int hsm_key_wrap_flags(struct hsm_ctx *ctx, uint64_t handle,
			      uint64_t kek, uint32_t flags, void *blob,
			      size_t *blob_len)
{
	struct hsmcard_key_wrap wr;
	int ret;

	memset(&wr, 0, sizeof(wr));
	wr.handle = handle;
	wr.kek = kek;
	wr.flags = flags;
	wr.mech = HSMCARD_MECH_AES_KWP;
	wr.blob = (uintptr_t)blob;
	wr.len = *blob_len > UINT32_MAX ? UINT32_MAX : *blob_len;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_WRAP, &wr);
	if (!ret || ret == -ENOSPC)
		*blob_len = wr.len;
	return ret;
}

/**
 * hsm_key_wrap() - export a key wrapped under a key-encryption key
 * @ctx:      context
 * @handle:   the key to export (created extractable)
 * @kek:      AES key with the wrap use, in the same partition
 * @blob:     receives the RFC 5649 blob (AES key wrap with padding) of the
 *            raw key (AES, HMAC) or of its DER PKCS#8 (RSA, EC, Ed25519)
 * @blob_len: in: capacity of @blob; out: bytes written (or needed with
 *            -ENOSPC)
 *
 * Return: 0 or a negative errno (-EACCES: the key is not extractable or
 * the KEK may not wrap).
 */
HSM_EXPORT int hsm_key_wrap(struct hsm_ctx *ctx, uint64_t handle,
			    uint64_t kek, void *blob, size_t *blob_len)
{
	return hsm_key_wrap_flags(ctx, handle, kek, 0, blob, blob_len);
}

/**
 * hsm_key_wrap_attrs() - export a key with its attributes, wrapped
 * @ctx:      context
 * @handle:   the key to export (the same keys as hsm_key_wrap() exports)
 * @kek:      AES key with the wrap use, in the same partition
 * @blob:     receives the RFC 5649 blob of "HSMKATT1", the attributes'
 *            length, the key's attributes and its material, so that the
 *            key wrap authenticates the attributes too
 * @blob_len: in: capacity of @blob; out: bytes written (or needed with
 *            -ENOSPC)
 *
 * Only hsm_key_unwrap_attrs() takes such a blob back.
 *
 * Return: 0 or a negative errno, as hsm_key_wrap().
 */
HSM_EXPORT int hsm_key_wrap_attrs(struct hsm_ctx *ctx, uint64_t handle,
				  uint64_t kek, void *blob, size_t *blob_len)
{
	return hsm_key_wrap_flags(ctx, handle, kek, HSMCARD_WRAP_ATTRS, blob,
				  blob_len);
}

static int hsm_key_unwrap_flags(struct hsm_ctx *ctx, uint64_t kek,
				uint32_t flags,
				struct hsmcard_key_attrs *attrs,
				const void *blob, size_t blob_len)
{
	struct hsmcard_key_unwrap uw;
	int ret;

	if (blob_len > UINT32_MAX)
		return -E2BIG;
	memset(&uw, 0, sizeof(uw));
	uw.attrs = *attrs;
	uw.kek = kek;
	uw.flags = flags;
	uw.mech = HSMCARD_MECH_AES_KWP;
	uw.blob = (uintptr_t)blob;
	uw.len = blob_len;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_KEY_UNWRAP, &uw);
	if (!ret)
		*attrs = uw.attrs;
	return ret;
}

/**
 * hsm_key_unwrap() - import a key wrapped under a key-encryption key
 * @ctx:      context
 * @kek:      AES key with the unwrap use, in the partition of the new key
 * @attrs:    in: attributes of the new key as for generation (type, bits
 *            or 0, uses, flags, label; handle and created 0); out: the
 *            attributes the card recorded, with the new handle
 * @blob:     RFC 5649 blob, e.g. from hsm_key_wrap()
 * @blob_len: bytes at @blob (a multiple of 8, at least 16)
 *
 * Return: 0 or a negative errno (-EBADMSG: the blob does not unwrap under
 * @kek, i.e. wrong KEK or altered blob).
 */
HSM_EXPORT int hsm_key_unwrap(struct hsm_ctx *ctx, uint64_t kek,
			      struct hsmcard_key_attrs *attrs,
			      const void *blob, size_t blob_len)
{
	return hsm_key_unwrap_flags(ctx, kek, 0, attrs, blob, blob_len);
}

/**
 * hsm_key_unwrap_attrs() - re-create a key from hsm_key_wrap_attrs()
 * @ctx:      context
 * @kek:      AES key with the unwrap use, in the partition of the new key
 * @attrs:    in: all zero (partition 0: the context's) to take every
 *            attribute from the blob, or a narrowing of them (type, bits,
 *            state 0 or the blob's, label empty or the blob's, uses a
 *            subset, flags exact: EXTRACTABLE and PERSISTENT may be
 *            dropped, SENSITIVE added); out: the attributes the card
 *            recorded, with the new handle
 * @blob:     the blob
 * @blob_len: bytes at @blob
 *
 * Return: 0 or a negative errno (-EBADMSG: the blob does not unwrap under
 * @kek or is not an attribute blob; -EACCES: @attrs ask for more than the
 * blob holds).
 */
HSM_EXPORT int hsm_key_unwrap_attrs(struct hsm_ctx *ctx, uint64_t kek,
				    struct hsmcard_key_attrs *attrs,
				    const void *blob, size_t blob_len)
{
	return hsm_key_unwrap_flags(ctx, kek, HSMCARD_WRAP_ATTRS, attrs, blob,
				    blob_len);
}

/* ---- one-shot operations ---- */

static int hsm_op(struct hsm_ctx *ctx, unsigned long req, uint64_t handle,
		  uint16_t mech, uint16_t mparam, const uint8_t *iv,
		  size_t aad_len, const void *in, size_t in_len, void *out,
		  size_t *out_len)
{
	struct hsmcard_op op;
	int ret;

	if (in_len > UINT32_MAX || aad_len > UINT32_MAX)
		return -E2BIG;
	memset(&op, 0, sizeof(op));
	op.handle = handle;
	op.mech = mech;
	op.mparam = mparam;
	op.in = (uintptr_t)in;
	op.in_len = in_len;
	op.out = (uintptr_t)out;
	op.out_len = *out_len > UINT32_MAX ? UINT32_MAX : *out_len;
	op.aad_len = aad_len;
	if (iv)
		memcpy(op.iv, iv, sizeof(op.iv));
	ret = hsm_xioctl(ctx->fd, req, &op);
	if (!ret || ret == -ENOSPC)
		*out_len = op.out_len;
	return ret;
}

/**
 * hsm_sign() - sign a message
 * @ctx:     context
 * @handle:  private key
 * @mech:    HSMCARD_MECH_RSA_PKCS1, _RSA_PSS, _ECDSA or _EDDSA
 * @mparam:  hash mechanism (0 for EdDSA)
 * @msg:     message
 * @msg_len: its length
 * @sig:     receives the signature
 * @sig_len: in: capacity; out: signature length (or needed with -ENOSPC)
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_sign(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
			uint16_t mparam, const void *msg, size_t msg_len,
			void *sig, size_t *sig_len)
{
	return hsm_op(ctx, HSMCARD_IOC_SIGN, handle, mech, mparam, NULL, 0,
		      msg, msg_len, sig, sig_len);
}

/**
 * hsm_verify() - verify a signature
 * @ctx:     context
 * @handle:  key
 * @mech:    as for hsm_sign()
 * @mparam:  as for hsm_sign()
 * @msg:     message
 * @msg_len: its length
 * @sig:     signature
 * @sig_len: its length
 *
 * Return: 0 if valid, -EBADMSG if not, or another negative errno.
 */
HSM_EXPORT int hsm_verify(struct hsm_ctx *ctx, uint64_t handle,
			  uint16_t mech, uint16_t mparam, const void *msg,
			  size_t msg_len, const void *sig, size_t sig_len)
{
	size_t l = sig_len;

	return hsm_op(ctx, HSMCARD_IOC_VERIFY, handle, mech, mparam, NULL, 0,
		      msg, msg_len, (void *)sig, &l);
}

/**
 * hsm_encrypt() - encrypt with a symmetric or RSA key
 * @ctx:     context
 * @handle:  key
 * @mech:    enum hsmcard_mech
 * @mparam:  mechanism parameter (GCM: tag length, 0 = 16)
 * @iv:      16-byte IV/counter/tweak/nonce, or NULL
 * @aad_len: GCM: bytes of AAD at the start of @in
 * @in:      input
 * @in_len:  its length
 * @out:     output
 * @out_len: in: capacity; out: bytes written (or needed with -ENOSPC)
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_encrypt(struct hsm_ctx *ctx, uint64_t handle,
			   uint16_t mech, uint16_t mparam,
			   const uint8_t iv[16], size_t aad_len,
			   const void *in, size_t in_len, void *out,
			   size_t *out_len)
{
	return hsm_op(ctx, HSMCARD_IOC_ENCRYPT, handle, mech, mparam, iv,
		      aad_len, in, in_len, out, out_len);
}

/**
 * hsm_decrypt() - decrypt; parameters as for hsm_encrypt()
 * @ctx:     context
 * @handle:  key
 * @mech:    enum hsmcard_mech
 * @mparam:  mechanism parameter
 * @iv:      16-byte IV, or NULL
 * @aad_len: GCM: bytes of AAD at the start of @in
 * @in:      input (GCM: AAD || ciphertext || tag)
 * @in_len:  its length
 * @out:     output
 * @out_len: in: capacity; out: bytes written
 *
 * Return: 0, -EBADMSG (tag mismatch) or another negative errno.
 */
HSM_EXPORT int hsm_decrypt(struct hsm_ctx *ctx, uint64_t handle,
			   uint16_t mech, uint16_t mparam,
			   const uint8_t iv[16], size_t aad_len,
			   const void *in, size_t in_len, void *out,
			   size_t *out_len)
{
	return hsm_op(ctx, HSMCARD_IOC_DECRYPT, handle, mech, mparam, iv,
		      aad_len, in, in_len, out, out_len);
}

/**
 * hsm_digest() - hash a message
 * @ctx:     context
 * @mech:    HSMCARD_MECH_SHA256, _SHA384 or _SHA512
 * @in:      message
 * @in_len:  its length
 * @out:     digest
 * @out_len: in: capacity; out: digest length
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_digest(struct hsm_ctx *ctx, uint16_t mech, const void *in,
			  size_t in_len, void *out, size_t *out_len)
{
	return hsm_op(ctx, HSMCARD_IOC_DIGEST, 0, mech, 0, NULL, 0, in,
		      in_len, out, out_len);
}

/**
 * hsm_hmac() - compute an HMAC
 * @ctx:     context
 * @handle:  HMAC key
 * @mech:    HSMCARD_MECH_HMAC_SHA256, _SHA384 or _SHA512
 * @in:      message
 * @in_len:  its length
 * @out:     MAC
 * @out_len: in: capacity; out: MAC length
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_hmac(struct hsm_ctx *ctx, uint64_t handle, uint16_t mech,
			const void *in, size_t in_len, void *out,
			size_t *out_len)
{
	return hsm_op(ctx, HSMCARD_IOC_MAC, handle, mech, 0, NULL, 0, in,
		      in_len, out, out_len);
}

/**
 * hsm_random() - random bytes from the card's DRBG
 * @ctx: context
 * @buf: output
 * @len: bytes (1..max_xfer)
 *
 * Return: 0 or a negative errno.
 */
HSM_EXPORT int hsm_random(struct hsm_ctx *ctx, void *buf, size_t len)
{
	struct hsmcard_random r;

	if (len > UINT32_MAX)
		return -E2BIG;
	memset(&r, 0, sizeof(r));
	r.buf = (uintptr_t)buf;
	r.len = len;
	return hsm_xioctl(ctx->fd, HSMCARD_IOC_RANDOM, &r);
}

/* ---- rings ---- */

/**
 * hsm_ring_setup() - create the context's command ring and arena
 * @ctx:        context (without a ring)
 * @entries:    ring size, a power of two up to HSMCARD_RING_MAX_ENTRIES
 * @arena_size: arena bytes (rounded up to pages, up to HSMCARD_ARENA_MAX)
 *
 * Return: 0 or a negative errno (-EBUSY if the context has a ring).
 */
HSM_EXPORT int hsm_ring_setup(struct hsm_ctx *ctx, unsigned int entries,
			      size_t arena_size)
{
	long page = sysconf(_SC_PAGESIZE);
	struct hsmcard_ring_setup rs;
	int ret;

	if (ctx->ring_fd >= 0)
		return -EBUSY;
	if (!arena_size || arena_size > HSMCARD_ARENA_MAX)
		return -EINVAL;
	arena_size = (arena_size + page - 1) & ~(size_t)(page - 1);
	ctx->arena = mmap(NULL, arena_size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ctx->arena == MAP_FAILED) {
		ctx->arena = NULL;
		return -errno;
	}
	ctx->arena_len = arena_size;
	ctx->arena_used = 0;
	memset(&rs, 0, sizeof(rs));
	rs.entries = entries;
	rs.arena = (uintptr_t)ctx->arena;
	rs.arena_len = arena_size;
	ret = hsm_xioctl(ctx->fd, HSMCARD_IOC_RING_SETUP, &rs);
	if (ret)
		goto err;
	ctx->ring_fd = rs.fd;
	ctx->map = mmap(NULL, rs.mmap_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			rs.fd, 0);
	if (ctx->map == MAP_FAILED) {
		ctx->map = NULL;
		ret = -errno;
		goto err;
	}
	ctx->map_len = rs.mmap_len;
	ctx->hdr = ctx->map;
	ctx->sq = (void *)((char *)ctx->map + rs.sq_off);
	ctx->cq = (void *)((char *)ctx->map + rs.cq_off);
	ctx->entries = entries;
	ctx->sq_tail = 0;
	ctx->cq_head = 0;
	ctx->max_job_len = rs.max_job_len;
	return 0;
err:
	hsm_ring_teardown(ctx);
	return ret;
}

/**
 * hsm_ring_fd() - the ring's pollable file descriptor
 * @ctx: context with a ring
 *
 * POLLIN while completions are waiting.  Owned by the context.
 *
 * Return: the fd, or -1 without a ring.
 */
HSM_EXPORT int hsm_ring_fd(const struct hsm_ctx *ctx)
{
	return ctx->ring_fd;
}

/**
 * hsm_ring_set_eventfd() - have completions signal an eventfd
 * @ctx: context with a ring
 * @efd: an eventfd (see eventfd(2)), or -1 to stop
 *
 * Every completion adds one to the eventfd's counter, so one eventfd can
 * gather the rings of several cards or threads for an event loop.  The
 * caller keeps ownership of @efd.
 *
 * Return: 0, -EINVAL without a ring or if @efd is not an eventfd, -EBADF.
 */
HSM_EXPORT int hsm_ring_set_eventfd(struct hsm_ctx *ctx, int efd)
{
	int32_t fd = efd;

	if (ctx->ring_fd < 0)
		return -EINVAL;
	return ioctl(ctx->ring_fd, HSMCARD_IOC_RING_EVENTFD, &fd) ? -errno : 0;
}

/**
 * hsm_arena() - the arena's address and size
 * @ctx: context with a ring
 * @len: receives the size in bytes (may be NULL)
 *
 * Return: the arena's base address, or NULL without a ring.
 */
HSM_EXPORT void *hsm_arena(const struct hsm_ctx *ctx, size_t *len)
{
	if (len)
		*len = ctx->arena_len;
	return ctx->arena;
}

/**
 * hsm_arena_alloc() - take @len bytes of the arena
 * @ctx:   context with a ring
 * @len:   bytes
 * @align: alignment, a power of two (0 or 1: none)
 *
 * A bump allocator: space comes back only with hsm_arena_reset().
 *
 * Return: the offset in the arena, or -ENOMEM / -EINVAL.
 */
HSM_EXPORT int64_t hsm_arena_alloc(struct hsm_ctx *ctx, size_t len,
				   size_t align)
{
	size_t off;

	if (!ctx->arena || (align & (align - 1)))
		return -EINVAL;
	if (align < 1)
		align = 1;
	off = (ctx->arena_used + align - 1) & ~(align - 1);
	if (off < ctx->arena_used || off > ctx->arena_len ||
	    len > ctx->arena_len - off)
		return -ENOMEM;
	ctx->arena_used = off + len;
	return off;
}

/**
 * hsm_arena_ptr() - address of an arena offset
 * @ctx: context with a ring
 * @off: offset from hsm_arena_alloc()
 *
 * Return: the address, or NULL if @off is outside the arena.
 */
HSM_EXPORT void *hsm_arena_ptr(const struct hsm_ctx *ctx, uint64_t off)
{
	if (!ctx->arena || off >= ctx->arena_len)
		return NULL;
	return ctx->arena + off;
}

/**
 * hsm_arena_reset() - forget every arena allocation
 * @ctx: context with a ring; no job may be using the arena
 */
HSM_EXPORT void hsm_arena_reset(struct hsm_ctx *ctx)
{
	ctx->arena_used = 0;
}

/**
 * hsm_max_job_len() - largest input or output of one ring job
 * @ctx: context with a ring
 *
 * Return: bytes.
 */
HSM_EXPORT size_t hsm_max_job_len(const struct hsm_ctx *ctx)
{
	return ctx->max_job_len;
}

/**
 * hsm_ring_counts() - where the ring's jobs are
 * @ctx: context with a ring
 * @c:   receives the counts
 *
 * Every job the kernel takes gets exactly one completion, so the jobs the
 * kernel and the card hold are those taken minus those completed.  For
 * monitoring a server's backlog, and for telling where a job went when a
 * completion is overdue: still queued here, held by the card, or already
 * completed but not read.
 *
 * Return: 0, or -EINVAL without a ring.
 */
HSM_EXPORT int hsm_ring_counts(struct hsm_ctx *ctx, struct hsm_ring_counts *c)
{
	uint32_t sq_head, cq_tail;

	if (!ctx->map)
		return -EINVAL;
	cq_tail = __atomic_load_n(&ctx->hdr->cq_tail, __ATOMIC_ACQUIRE);
	sq_head = __atomic_load_n(&ctx->hdr->sq_head, __ATOMIC_ACQUIRE);
	c->queued = ctx->sq_tail - sq_head;
	c->in_flight = sq_head - cq_tail;
	c->unread = cq_tail - ctx->cq_head;
	return 0;
}

/**
 * hsm_get_sqe() - the next free submission entry
 * @ctx: context with a ring
 *
 * The entry is zeroed; fill it with one of the hsm_prep_*() helpers.  It
 * is handed to the kernel by the next hsm_submit().
 *
 * Return: the entry, or NULL when the submission ring is full.
 */
HSM_EXPORT struct hsmcard_ring_sqe *hsm_get_sqe(struct hsm_ctx *ctx)
{
	uint32_t head;
	struct hsmcard_ring_sqe *sqe;

	if (!ctx->map)
		return NULL;
	head = __atomic_load_n(&ctx->hdr->sq_head, __ATOMIC_ACQUIRE);
	if (ctx->sq_tail - head >= ctx->entries)
		return NULL;
	sqe = &ctx->sq[ctx->sq_tail & (ctx->entries - 1)];
	memset(sqe, 0, sizeof(*sqe));
	ctx->sq_tail++;
	return sqe;
}

static void prep(struct hsmcard_ring_sqe *s, uint8_t opcode, uint64_t handle,
		 uint16_t mech, uint16_t mparam, uint32_t in_off,
		 uint32_t in_len, uint32_t out_off, uint32_t out_len,
		 uint64_t cookie)
{
	memset(s, 0, sizeof(*s));
	s->opcode = opcode;
	s->handle = handle;
	s->mech = mech;
	s->mparam = mparam;
	s->in_off = in_off;
	s->in_len = in_len;
	s->out_off = out_off;
	s->out_len = out_len;
	s->cookie = cookie;
}

/**
 * hsm_prep_sign() - fill an entry: sign arena bytes
 * @sqe:     entry from hsm_get_sqe()
 * @handle:  private key
 * @mech:    signature mechanism
 * @mparam:  hash mechanism (0 for EdDSA)
 * @in_off:  message offset in the arena
 * @in_len:  message length
 * @out_off: signature offset
 * @out_len: signature capacity
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_sign(struct hsmcard_ring_sqe *sqe, uint64_t handle,
			      uint16_t mech, uint16_t mparam, uint32_t in_off,
			      uint32_t in_len, uint32_t out_off,
			      uint32_t out_len, uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_SIGN, handle, mech, mparam, in_off, in_len,
	     out_off, out_len, cookie);
}

/**
 * hsm_prep_verify() - fill an entry: verify a signature in the arena
 * @sqe:     entry
 * @handle:  key
 * @mech:    signature mechanism
 * @mparam:  hash mechanism
 * @in_off:  message offset
 * @in_len:  message length
 * @sig_off: signature offset
 * @sig_len: signature length
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_verify(struct hsmcard_ring_sqe *sqe,
				uint64_t handle, uint16_t mech,
				uint16_t mparam, uint32_t in_off,
				uint32_t in_len, uint32_t sig_off,
				uint32_t sig_len, uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_VERIFY, handle, mech, mparam, in_off, in_len,
	     sig_off, sig_len, cookie);
}

/**
 * hsm_prep_encrypt() - fill an entry: encrypt
 * @sqe:     entry
 * @handle:  key
 * @mech:    cipher mechanism
 * @mparam:  mechanism parameter
 * @iv:      16-byte IV or NULL
 * @aad_len: GCM: AAD bytes at the start of the input
 * @in_off:  input offset
 * @in_len:  input length
 * @out_off: output offset
 * @out_len: output capacity
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_encrypt(struct hsmcard_ring_sqe *sqe,
				 uint64_t handle, uint16_t mech,
				 uint16_t mparam, const uint8_t iv[16],
				 uint32_t aad_len, uint32_t in_off,
				 uint32_t in_len, uint32_t out_off,
				 uint32_t out_len, uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_ENCRYPT, handle, mech, mparam, in_off,
	     in_len, out_off, out_len, cookie);
	sqe->aux = aad_len;
	if (iv)
		memcpy(sqe->iv, iv, sizeof(sqe->iv));
}

/**
 * hsm_prep_decrypt() - fill an entry: decrypt (as hsm_prep_encrypt())
 * @sqe:     entry
 * @handle:  key
 * @mech:    cipher mechanism
 * @mparam:  mechanism parameter
 * @iv:      16-byte IV or NULL
 * @aad_len: GCM: AAD bytes at the start of the input
 * @in_off:  input offset
 * @in_len:  input length
 * @out_off: output offset
 * @out_len: output capacity
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_decrypt(struct hsmcard_ring_sqe *sqe,
				 uint64_t handle, uint16_t mech,
				 uint16_t mparam, const uint8_t iv[16],
				 uint32_t aad_len, uint32_t in_off,
				 uint32_t in_len, uint32_t out_off,
				 uint32_t out_len, uint64_t cookie)
{
	hsm_prep_encrypt(sqe, handle, mech, mparam, iv, aad_len, in_off,
			 in_len, out_off, out_len, cookie);
	sqe->opcode = HSMCARD_RING_OP_DECRYPT;
}

/**
 * hsm_prep_digest() - fill an entry: hash
 * @sqe:     entry
 * @mech:    hash mechanism
 * @in_off:  input offset
 * @in_len:  input length
 * @out_off: digest offset
 * @out_len: digest capacity
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_digest(struct hsmcard_ring_sqe *sqe, uint16_t mech,
				uint32_t in_off, uint32_t in_len,
				uint32_t out_off, uint32_t out_len,
				uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_DIGEST, 0, mech, 0, in_off, in_len, out_off,
	     out_len, cookie);
}

/**
 * hsm_prep_mac() - fill an entry: HMAC
 * @sqe:     entry
 * @handle:  HMAC key
 * @mech:    HMAC mechanism
 * @in_off:  input offset
 * @in_len:  input length
 * @out_off: MAC offset
 * @out_len: MAC capacity
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_mac(struct hsmcard_ring_sqe *sqe, uint64_t handle,
			     uint16_t mech, uint32_t in_off, uint32_t in_len,
			     uint32_t out_off, uint32_t out_len,
			     uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_MAC, handle, mech, 0, in_off, in_len,
	     out_off, out_len, cookie);
}

/**
 * hsm_prep_mac_verify() - fill an entry: check an HMAC
 * @sqe:     entry
 * @handle:  HMAC key
 * @mech:    HMAC mechanism
 * @in_off:  input offset
 * @in_len:  input length
 * @mac_off: offset of the MAC to check
 * @mac_len: its length
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_mac_verify(struct hsmcard_ring_sqe *sqe,
				    uint64_t handle, uint16_t mech,
				    uint32_t in_off, uint32_t in_len,
				    uint32_t mac_off, uint32_t mac_len,
				    uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_MAC_VERIFY, handle, mech, 0, in_off, in_len,
	     mac_off, mac_len, cookie);
}

/**
 * hsm_prep_random() - fill an entry: random bytes
 * @sqe:     entry
 * @out_off: output offset
 * @out_len: bytes wanted
 * @cookie:  returned in the completion
 */
HSM_EXPORT void hsm_prep_random(struct hsmcard_ring_sqe *sqe,
				uint32_t out_off, uint32_t out_len,
				uint64_t cookie)
{
	prep(sqe, HSMCARD_RING_OP_RANDOM, 0, 0, 0, 0, 0, out_off, out_len,
	     cookie);
}

/**
 * hsm_submit() - hand the prepared entries to the kernel
 * @ctx: context with a ring
 *
 * Entries the kernel could not take yet (completion ring or card queue
 * full) stay queued; hsm_wait_cqe() submits them again.
 *
 * Return: the number of entries consumed (may be 0), or a negative errno.
 */
HSM_EXPORT int hsm_submit(struct hsm_ctx *ctx)
{
	uint32_t head;
	long n;

	if (!ctx->map)
		return -EINVAL;
	__atomic_store_n(&ctx->hdr->sq_tail, ctx->sq_tail, __ATOMIC_RELEASE);
	head = __atomic_load_n(&ctx->hdr->sq_head, __ATOMIC_ACQUIRE);
	if (head == ctx->sq_tail)
		return 0;
	n = ioctl(ctx->ring_fd, HSMCARD_IOC_RING_SUBMIT,
		  (unsigned long)(ctx->sq_tail - head));
	return n < 0 ? -errno : (int)n;
}

/**
 * hsm_peek_cqe() - the oldest unread completion, without waiting
 * @ctx: context with a ring
 * @cqe: receives a pointer into the completion ring
 *
 * Call hsm_cqe_seen() once done with it.
 *
 * Return: 0, or -EAGAIN if there is none.
 */
HSM_EXPORT int hsm_peek_cqe(struct hsm_ctx *ctx,
			    struct hsmcard_ring_cqe **cqe)
{
	uint32_t tail;

	if (!ctx->map)
		return -EINVAL;
	tail = __atomic_load_n(&ctx->hdr->cq_tail, __ATOMIC_ACQUIRE);
	if (tail == ctx->cq_head)
		return -EAGAIN;
	*cqe = &ctx->cq[ctx->cq_head & (ctx->entries - 1)];
	return 0;
}

/**
 * hsm_wait_cqe() - wait for a completion
 * @ctx:        context with a ring
 * @cqe:        receives a pointer into the completion ring
 * @timeout_ms: most milliseconds to wait (-1: no limit)
 *
 * Submits entries still queued while it waits.  Call hsm_cqe_seen() once
 * done with the completion.
 *
 * Return: 0, -ETIMEDOUT, or another negative errno.
 */
static int64_t hsm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

HSM_EXPORT int hsm_wait_cqe(struct hsm_ctx *ctx,
			    struct hsmcard_ring_cqe **cqe, int timeout_ms)
{
	struct pollfd pfd = { .fd = ctx->ring_fd, .events = POLLIN };
	int64_t deadline = 0, left = 10;
	int ret;

	if (timeout_ms >= 0)
		deadline = hsm_now_ms() + timeout_ms;
	for (;;) {
		if (!hsm_peek_cqe(ctx, cqe))
			return 0;
		ret = hsm_submit(ctx);
		if (ret < 0 && ret != -EAGAIN)
			return ret;
		if (!hsm_peek_cqe(ctx, cqe))
			return 0;
		/*
		 * The time limit is measured, not counted in poll() calls: a
		 * poll() may return at once, e.g. while the kernel is between
		 * taking a completion and publishing it.
		 */
		if (timeout_ms >= 0) {
			left = deadline - hsm_now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
		}
		/* Short slices: queued entries may need another submit. */
		ret = poll(&pfd, 1, left > 10 ? 10 : (int)left);
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
}

/**
 * hsm_cqe_seen() - mark the completion from hsm_peek/wait_cqe() as read
 * @ctx: context with a ring
 * @cqe: the completion (must be the oldest unread one)
 */
HSM_EXPORT void hsm_cqe_seen(struct hsm_ctx *ctx,
			     struct hsmcard_ring_cqe *cqe)
{
	(void)cqe;
	ctx->cq_head++;
	__atomic_store_n(&ctx->hdr->cq_head, ctx->cq_head, __ATOMIC_RELEASE);
}
