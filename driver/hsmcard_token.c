// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: key tokens.
 *
 * A key token (struct hsm_key_token) names a persistent AES key that the
 * card generated in the kernel's partition.  It carries the card's
 * identity, the key's handle, type and size, and an HMAC the card computes
 * under a key of its own; it holds no key material.  The token-keyed
 * ciphers xts(paes) and cbc(paes) take a token in setkey, so a dm-crypt
 * volume key never exists in host memory.
 *
 * Tokens come from untrusted places (a dm-crypt table, an ioctl), so the
 * driver checks everything it can before it asks the card, and checks what
 * the card answers as well.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/build_bug.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "hsmcard.h"

static_assert(sizeof(struct hsm_key_token) == HSM_TOKEN_SIZE);
static_assert(HSMCARD_TOKEN_SIZE == HSM_TOKEN_SIZE);
static_assert(offsetof(struct hsm_key_token, mac) == 48);

/* Attributes every key behind a token has (the card may add SENSITIVE). */
#define HSM_TOKEN_USES		(HSM_USE_ENCRYPT | HSM_USE_DECRYPT)
#define HSM_TOKEN_FLAGS		(HSM_KEYF_PERSISTENT | HSM_KEYF_SENSITIVE)

/* AES key sizes a token may name: 128/192/256 for CBC, 256/512 for XTS. */
static bool hsm_token_bits_ok(unsigned int bits)
{
	return bits == 128 || bits == 192 || bits == 256 || bits == 512;
}

/*
 * Run one admin command with small kernel buffers: @in_len bytes of @in as
 * the source, up to @out_len bytes into @out from the destination.  Returns
 * an HSM_SC_* status (>= 0) or a negative errno.
 */
static int hsm_token_cmd(struct hsm_dev *hdev, struct hsm_sqe *sqe,
			 const void *in, size_t in_len, void *out,
			 size_t out_len, u64 *result)
{
	struct device *dev = &hdev->pdev->dev;
	struct hsm_buf src = {}, dst = {};
	int ret;

	if (in_len) {
		ret = hsm_buf_alloc(&src, dev, in_len, DMA_TO_DEVICE);
		if (ret)
			return ret;
		hsm_buf_copy_from_kernel(&src, 0, in, in_len);
		ret = hsm_buf_map(&src);
		if (ret)
			goto out;
		hsm_buf_sqe_src(&src, sqe);
	}
	if (out_len) {
		ret = hsm_buf_alloc(&dst, dev, out_len, DMA_FROM_DEVICE);
		if (ret)
			goto out;
		ret = hsm_buf_map(&dst);
		if (ret)
			goto out;
		hsm_buf_sqe_dst(&dst, sqe);
	}
	ret = hsm_submit_sync(&hdev->adminq, sqe, result, false);
	if (out_len) {
		hsm_buf_unmap(&dst);
		if (ret == HSM_SC_SUCCESS)
			hsm_buf_copy_to_kernel(&dst, out, out_len);
	}
out:
	hsm_buf_free(&dst);
	hsm_buf_free(&src);
	return ret;
}

/*
 * The checks that need no card: layout, a key type and size a token can
 * name, this card's identity and a handle of the kernel's partition.
 */
static int hsm_token_check(const struct hsm_dev *hdev,
			   const struct hsm_key_token *t)
{
	u64 handle = le64_to_cpu(t->handle);

	if (le32_to_cpu(t->magic) != HSM_TOKEN_MAGIC ||
	    le16_to_cpu(t->version) != HSM_TOKEN_VERSION ||
	    t->rsvd0 || t->rsvd1 || t->rsvd2)
		return -EINVAL;
	if (le16_to_cpu(t->type) != HSM_KEY_AES ||
	    !hsm_token_bits_ok(le16_to_cpu(t->bits)))
		return -EINVAL;
	if (memcmp(t->card_id, hdev->limits.card_id, sizeof(t->card_id)))
		return -EINVAL;
	if (!handle || HSM_HANDLE_PART(handle) != HSM_KERNEL_PARTITION)
		return -EINVAL;
	return 0;
}

/* Card statuses that say "this token is no good here" become -EINVAL. */
static int hsm_token_errno(int ret)
{
	if (ret <= 0)
		return ret;
	switch (ret) {
	case HSM_SC_INVALID_FIELD:
	case HSM_SC_INVALID_LENGTH:
	case HSM_SC_INVALID_TOKEN:
	case HSM_SC_INVALID_HANDLE:
		return -EINVAL;
	default:
		return hsm_status_to_errno(ret);
	}
}

static int hsm_token_get_attrs(struct hsm_dev *hdev, u64 handle,
			       struct hsm_key_attrs *a)
{
	struct hsm_sqe sqe = {};

	sqe.opcode = HSM_ADM_KEY_GET_ATTRS;
	sqe.handle = cpu_to_le64(handle);
	return hsm_token_cmd(hdev, &sqe, NULL, 0, a, sizeof(*a), NULL);
}

static void hsm_token_destroy_key(struct hsm_dev *hdev, u64 handle)
{
	struct hsm_sqe sqe = {};
	int ret;

	sqe.opcode = HSM_ADM_KEY_DESTROY;
	sqe.handle = cpu_to_le64(handle);
	ret = hsm_submit_sync(&hdev->adminq, &sqe, NULL, false);
	if (ret)
		dev_warn_ratelimited(&hdev->pdev->dev,
				     "cannot destroy key %#llx of a failed token: %d\n",
				     handle, ret);
}

/**
 * hsm_token_open() - check a key token with the card and resolve it
 * @hdev:   card
 * @token:  HSMCARD_TOKEN_SIZE bytes from an untrusted source
 * @handle: out: the key's handle (kernel partition)
 * @attrs:  out (may be NULL): the key's attributes, as the card reports
 *          them (little endian)
 *
 * The driver checks the token's layout, that it was made by this card and
 * that it names an AES key of the kernel's partition; the card then checks
 * its authenticator and that the key still exists.  Finally the key's
 * attributes must be those of a token key: persistent, not extractable,
 * usable to encrypt and decrypt, of the type and size the token states.
 *
 * Context: process context; sleeps.
 * Return: 0; -EINVAL for a token that is malformed, of another card,
 * forged, or names a key that no longer exists; -EOPNOTSUPP if the card
 * has no key tokens; -ENODEV if the card is being removed; -EIO if the
 * card broke the protocol; or another negative errno (reset, tampered...).
 */
int hsm_token_open(struct hsm_dev *hdev, const u8 *token, u64 *handle,
		   struct hsm_key_attrs *attrs)
{
	struct device *dev = &hdev->pdev->dev;
	struct hsm_key_token t;
	struct hsm_key_attrs a;
	struct hsm_sqe sqe = {};
	u64 h, result = 0;
	u32 flags;
	int ret;

	if (READ_ONCE(hdev->removing))
		return -ENODEV;
	memcpy(&t, token, sizeof(t));
	ret = hsm_token_check(hdev, &t);
	if (ret)
		return ret;
	h = le64_to_cpu(t.handle);

	sqe.opcode = HSM_ADM_TOKEN_OPEN;
	ret = hsm_token_errno(hsm_token_cmd(hdev, &sqe, &t, sizeof(t), NULL,
					    0, &result));
	if (ret)
		return ret;
	if (result != h) {
		dev_err_ratelimited(dev,
				    "token for key %#llx opened key %#llx\n",
				    h, result);
		return -EIO;
	}

	/* The key may be destroyed meanwhile: INVALID_HANDLE is -EINVAL. */
	ret = hsm_token_errno(hsm_token_get_attrs(hdev, h, &a));
	if (ret)
		return ret;
	if (le64_to_cpu(a.handle) != h || a.type != t.type ||
	    a.bits != t.bits) {
		dev_err_ratelimited(dev,
				    "key %#llx does not match its token\n", h);
		return -EIO;
	}
	flags = le32_to_cpu(a.flags);
	if (le32_to_cpu(a.partition) != HSM_KERNEL_PARTITION ||
	    !(flags & HSM_KEYF_PERSISTENT) ||
	    (flags & (HSM_KEYF_SESSION | HSM_KEYF_EXTRACTABLE)) ||
	    (le32_to_cpu(a.uses) & HSM_TOKEN_USES) != HSM_TOKEN_USES)
		return -EINVAL;

	*handle = h;
	if (attrs)
		*attrs = a;
	return 0;
}

/**
 * hsm_token_create() - generate a token key and its token
 * @hdev:   card
 * @bits:   AES key size: 128, 192, 256 or 512 (AES-256-XTS)
 * @label:  NUL-terminated, NUL-padded label of HSM_LABEL_LEN bytes
 * @handle: out: the new key's handle (kernel partition)
 * @token:  out: HSMCARD_TOKEN_SIZE bytes of token
 *
 * The card generates a persistent, sensitive, non-extractable AES key in
 * the kernel's partition, allowed to encrypt and decrypt, then makes a
 * token for it.  If the token cannot be made or is not what was asked for,
 * the key is destroyed again.
 *
 * Context: process context; sleeps.
 * Return: 0; -EINVAL for a bad size; -EOPNOTSUPP if the card has no
 * persistent key store (or no key tokens); -EDQUOT if the store is full;
 * -EIO if the card broke the protocol; or another negative errno.
 */
int hsm_token_create(struct hsm_dev *hdev, unsigned int bits,
		     const char *label, u64 *handle, u8 *token)
{
	struct device *dev = &hdev->pdev->dev;
	struct hsm_key_token t;
	struct hsm_key_attrs a;
	struct hsm_sqe sqe = {};
	u64 h = 0, result = 0;
	int ret;

	if (!hsm_token_bits_ok(bits))
		return -EINVAL;
	if (READ_ONCE(hdev->removing))
		return -ENODEV;
	memset(&a, 0, sizeof(a));
	a.type = cpu_to_le16(HSM_KEY_AES);
	a.bits = cpu_to_le16(bits);
	a.uses = cpu_to_le32(HSM_TOKEN_USES);
	a.flags = cpu_to_le32(HSM_TOKEN_FLAGS);
	a.partition = cpu_to_le32(HSM_KERNEL_PARTITION);
	memcpy(a.label, label, sizeof(a.label));

	sqe.opcode = HSM_ADM_KEY_GENERATE;
	ret = hsm_token_cmd(hdev, &sqe, &a, sizeof(a), NULL, 0, &h);
	/*
	 * Every field was checked above; the card refuses PERSISTENT with
	 * INVALID_FIELD only when it has no key store.
	 */
	if (ret == HSM_SC_INVALID_FIELD)
		return -EOPNOTSUPP;
	if (ret)
		return hsm_token_errno(ret);
	if (!h || HSM_HANDLE_PART(h) != HSM_KERNEL_PARTITION) {
		/* Not ours to destroy: it may name another partition's key. */
		dev_err_ratelimited(dev, "key generation returned handle %#llx\n",
				    h);
		return -EIO;
	}

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = HSM_ADM_TOKEN_CREATE;
	sqe.handle = cpu_to_le64(h);
	ret = hsm_token_errno(hsm_token_cmd(hdev, &sqe, NULL, 0, &t,
					    sizeof(t), &result));
	if (ret)
		goto fail;
	/* Check the card's token as strictly as one from user space. */
	if (result != HSM_TOKEN_SIZE || hsm_token_check(hdev, &t) ||
	    le64_to_cpu(t.handle) != h || le16_to_cpu(t.bits) != bits) {
		dev_err_ratelimited(dev, "card made a bad token for key %#llx\n",
				    h);
		ret = -EIO;
		goto fail;
	}
	*handle = h;
	memcpy(token, &t, sizeof(t));
	hsm_genl_event(hdev, HSMCARD_EVENT_TOKEN_CREATED, h);
	return 0;
fail:
	hsm_token_destroy_key(hdev, h);
	return ret;
}

/**
 * hsm_token_destroy() - destroy the key a token names
 * @hdev:  card
 * @token: HSMCARD_TOKEN_SIZE bytes from an untrusted source
 *
 * Every user of the key (a dm-crypt volume keyed by the token) loses it;
 * the token becomes invalid.
 *
 * Context: process context; sleeps.
 * Return: 0, or the errors of hsm_token_open() (-EINVAL if the key is
 * already gone).
 */
int hsm_token_destroy(struct hsm_dev *hdev, const u8 *token)
{
	struct hsm_sqe sqe = {};
	u64 handle;
	int ret;

	ret = hsm_token_open(hdev, token, &handle, NULL);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_DESTROY;
	sqe.handle = cpu_to_le64(handle);
	ret = hsm_token_errno(hsm_submit_sync(&hdev->adminq, &sqe, NULL,
					      false));
	if (!ret)
		hsm_genl_event(hdev, HSMCARD_EVENT_TOKEN_DESTROYED, handle);
	return ret;
}
