// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: the /dev/hsmcardN character device and its ioctls.
 *
 * Every ioctl copies its argument in once, validates every field, moves
 * payloads through kernel bounce buffers mapped for the card, and maps the
 * card's status to the errno documented in Documentation/hsmcard/uapi.rst.
 * Open files hold a reference on the card's structure; after the PCI device
 * is removed they get -ENODEV.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "hsmcard.h"

/* Largest buffer one request may use: the card's limit and the SGL's. */
static u32 hsm_xfer_max(const struct hsm_dev *hdev)
{
	u64 sgl_max = (u64)hdev->limits.max_sge * PAGE_SIZE;

	return min_t(u64, hdev->limits.max_xfer, sgl_max);
}

/*
 * Run one command with optional source and destination buffers.  Returns an
 * HSM_SC_* status (>= 0) or a negative errno.
 */
static int hsm_exec(struct hsm_queue *q, struct hsm_sqe *sqe,
		    struct hsm_buf *src, struct hsm_buf *dst, u64 *result)
{
	int ret;

	if (src) {
		ret = hsm_buf_map(src);
		if (ret)
			return ret;
		hsm_buf_sqe_src(src, sqe);
	}
	if (dst) {
		ret = hsm_buf_map(dst);
		if (ret)
			return ret;
		hsm_buf_sqe_dst(dst, sqe);
	}
	ret = hsm_submit_sync(q, sqe, result, false);
	if (src)
		hsm_buf_unmap(src);
	if (dst)
		hsm_buf_unmap(dst);
	return ret;
}

static int hsm_errno(int ret)
{
	return ret > 0 ? hsm_status_to_errno(ret) : ret;
}

/*
 * User space may only name keys of its own partition; anything else is
 * reported exactly like a handle that does not exist.
 */
static int hsm_check_user_handle(u64 handle)
{
	return HSM_HANDLE_PART(handle) == HSMCARD_PARTITION_USER ?
		0 : -ENOKEY;
}

/* ---- key attributes ---- */

static int hsm_check_label(const char *label)
{
	size_t n = strnlen(label, HSMCARD_LABEL_LEN);

	if (n == HSMCARD_LABEL_LEN)
		return -EINVAL;
	/* NUL padded: anything after the terminator is a caller bug. */
	if (memchr_inv(label + n, 0, HSMCARD_LABEL_LEN - n))
		return -EINVAL;
	return 0;
}

static int hsm_check_attrs_in(const struct hsmcard_key_attrs *a)
{
	if (a->handle || a->created || a->rsvd[0] || a->rsvd[1])
		return -EINVAL;
	if (!a->type || a->type >= HSMCARD_KEY_TYPE_MAX)
		return -EINVAL;
	if ((a->uses & ~HSMCARD_USE_ALL) || (a->flags & ~HSMCARD_KEYF_ALL))
		return -EINVAL;
	if (a->partition == HSMCARD_PARTITION_KERNEL)
		return -EPERM;
	if (a->partition != HSMCARD_PARTITION_USER)
		return -EINVAL;
	return hsm_check_label(a->label);
}

static void hsm_attrs_to_hw(const struct hsmcard_key_attrs *a,
			    struct hsm_key_attrs *h)
{
	memset(h, 0, sizeof(*h));
	h->type = cpu_to_le16(a->type);
	h->bits = cpu_to_le16(a->bits);
	h->uses = cpu_to_le32(a->uses);
	h->flags = cpu_to_le32(a->flags);
	h->partition = cpu_to_le32(a->partition);
	memcpy(h->label, a->label, sizeof(h->label));
}

static void hsm_attrs_from_hw(const struct hsm_key_attrs *h,
			      struct hsmcard_key_attrs *a)
{
	memset(a, 0, sizeof(*a));
	a->handle = le64_to_cpu(h->handle);
	a->type = le16_to_cpu(h->type);
	a->bits = le16_to_cpu(h->bits);
	a->uses = le32_to_cpu(h->uses);
	a->flags = le32_to_cpu(h->flags);
	a->partition = le32_to_cpu(h->partition);
	a->created = le64_to_cpu(h->created);
	/* Never trust the card's string to be terminated. */
	strscpy_pad(a->label, h->label, sizeof(a->label));
}

static int hsm_get_attrs(struct hsm_dev *hdev, u64 handle,
			 struct hsmcard_key_attrs *out)
{
	struct hsm_key_attrs h;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u64 result = 0;
	int ret;

	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, sizeof(h),
			    DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_GET_ATTRS;
	sqe.handle = cpu_to_le64(handle);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result));
	if (!ret) {
		hsm_buf_copy_to_kernel(&dst, &h, sizeof(h));
		hsm_attrs_from_hw(&h, out);
	}
	hsm_buf_free(&dst);
	return ret;
}

/*
 * Create a key from @a (and, for an import, @key_len bytes of clear key at
 * @ukey) and return its attributes in @a.
 */
static int hsm_key_create(struct hsm_dev *hdev, struct hsmcard_key_attrs *a,
			  const void __user *ukey, u32 key_len)
{
	struct hsm_key_attrs h;
	struct hsm_sqe sqe = {};
	struct hsm_buf src;
	u64 handle = 0;
	int ret;

	hsm_attrs_to_hw(a, &h);
	ret = hsm_buf_alloc(&src, &hdev->pdev->dev, sizeof(h) + key_len,
			    DMA_TO_DEVICE);
	if (ret)
		return ret;
	hsm_buf_copy_from_kernel(&src, 0, &h, sizeof(h));
	if (key_len) {
		ret = hsm_buf_copy_from_user(&src, sizeof(h), ukey, key_len);
		if (ret)
			goto out;
	}
	sqe.opcode = key_len ? HSM_ADM_KEY_IMPORT : HSM_ADM_KEY_GENERATE;
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, &src, NULL, &handle));
	if (ret)
		goto out;
	hsm_genl_event(hdev, HSMCARD_EVENT_KEY_CREATED, handle);
	/* Report what the card applied (default uses, forced flags...). */
	if (hsm_get_attrs(hdev, handle, a)) {
		a->handle = handle;
		a->created = 0;
	}
out:
	/* The buffer held a clear key for imports; hsm_buf_free() wipes it. */
	hsm_buf_free(&src);
	return ret;
}

static int hsm_ioc_key_generate(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_key_attrs a;
	int ret;

	if (copy_from_user(&a, argp, sizeof(a)))
		return -EFAULT;
	ret = hsm_check_attrs_in(&a);
	if (ret)
		return ret;
	ret = hsm_key_create(hdev, &a, NULL, 0);
	if (ret)
		return ret;
	return copy_to_user(argp, &a, sizeof(a)) ? -EFAULT : 0;
}

static int hsm_ioc_key_import(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_key_import imp;
	int ret;

	if (copy_from_user(&imp, argp, sizeof(imp)))
		return -EFAULT;
	if (imp.flags)
		return -EINVAL;
	ret = hsm_check_attrs_in(&imp.attrs);
	if (ret)
		return ret;
	if (!imp.key_len)
		return -EINVAL;
	if (imp.key_len > hsm_xfer_max(hdev) - sizeof(struct hsm_key_attrs))
		return -E2BIG;
	ret = hsm_key_create(hdev, &imp.attrs, u64_to_user_ptr(imp.key),
			     imp.key_len);
	if (ret)
		return ret;
	return copy_to_user(argp, &imp, sizeof(imp)) ? -EFAULT : 0;
}

static int hsm_ioc_key_list(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_key_list kl;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u32 n, count, total;
	u64 result = 0;
	u64 *handles;
	u32 i;
	int ret;

	if (copy_from_user(&kl, argp, sizeof(kl)))
		return -EFAULT;
	if (kl.flags || kl.rsvd || !kl.max)
		return -EINVAL;
	n = min_t(u32, kl.max, hsm_xfer_max(hdev) / sizeof(u64));

	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, n * sizeof(u64),
			    DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_LIST;
	sqe.cdw[0] = cpu_to_le32(HSMCARD_PARTITION_USER);
	sqe.aux = cpu_to_le32(kl.cursor);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result));
	if (ret)
		goto out_buf;
	total = upper_32_bits(result);
	count = lower_32_bits(result);
	if (count > n) {
		dev_err_ratelimited(&hdev->pdev->dev,
				    "key list: card returned %u of %u handles\n",
				    count, n);
		ret = -EIO;
		goto out_buf;
	}
	if (count) {
		handles = kvmalloc_array(count, sizeof(*handles), GFP_KERNEL);
		if (!handles) {
			ret = -ENOMEM;
			goto out_buf;
		}
		/* The card wrote little-endian handles. */
		hsm_buf_copy_to_kernel(&dst, handles,
				       count * sizeof(*handles));
		for (i = 0; i < count; i++)
			le64_to_cpus(&handles[i]);
		if (copy_to_user(u64_to_user_ptr(kl.handles), handles,
				 count * sizeof(*handles)))
			ret = -EFAULT;
		kvfree(handles);
		if (ret)
			goto out_buf;
	}
	kl.count = count;
	kl.total = total;
	kl.cursor += count;
	if (copy_to_user(argp, &kl, sizeof(kl)))
		ret = -EFAULT;
out_buf:
	hsm_buf_free(&dst);
	return ret;
}

static int hsm_ioc_key_attrs(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_key_get_attrs ga;
	int ret;

	if (copy_from_user(&ga, argp, sizeof(ga)))
		return -EFAULT;
	if (ga.flags || ga.rsvd)
		return -EINVAL;
	ret = hsm_check_user_handle(ga.handle);
	if (ret)
		return ret;
	ret = hsm_get_attrs(hdev, ga.handle, &ga.attrs);
	if (ret)
		return ret;
	return copy_to_user(argp, &ga, sizeof(ga)) ? -EFAULT : 0;
}

static int hsm_ioc_key_pubkey(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_key_pubkey pk;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u64 result = 0;
	u32 cap;
	int ret;

	if (copy_from_user(&pk, argp, sizeof(pk)))
		return -EFAULT;
	if (pk.flags || !pk.len)
		return -EINVAL;
	ret = hsm_check_user_handle(pk.handle);
	if (ret)
		return ret;
	cap = min(pk.len, hsm_xfer_max(hdev));
	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, cap, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_EXPORT_PUB;
	sqe.handle = cpu_to_le64(pk.handle);
	ret = hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result);
	if (ret == HSM_SC_BUFFER_TOO_SMALL) {
		pk.len = min_t(u64, result, U32_MAX);
		ret = copy_to_user(argp, &pk, sizeof(pk)) ? -EFAULT : -ENOSPC;
		goto out;
	}
	ret = hsm_errno(ret);
	if (ret)
		goto out;
	if (!result || result > cap) {
		ret = -EIO;
		goto out;
	}
	pk.len = result;
	if (hsm_buf_copy_to_user(&dst, u64_to_user_ptr(pk.buf), pk.len) ||
	    copy_to_user(argp, &pk, sizeof(pk)))
		ret = -EFAULT;
out:
	hsm_buf_free(&dst);
	return ret;
}

static int hsm_ioc_key_destroy(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_key_handle kh;
	struct hsm_sqe sqe = {};
	int ret;

	if (copy_from_user(&kh, argp, sizeof(kh)))
		return -EFAULT;
	if (kh.flags || kh.rsvd)
		return -EINVAL;
	if (hsm_check_user_handle(kh.handle))
		return -ENOKEY;
	sqe.opcode = HSM_ADM_KEY_DESTROY;
	sqe.handle = cpu_to_le64(kh.handle);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, NULL, NULL));
	if (!ret)
		hsm_genl_event(hdev, HSMCARD_EVENT_KEY_DESTROYED, kh.handle);
	return ret;
}

/* ---- key tokens ---- */

static int hsm_ioc_token_create(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_token_create tc;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&tc, argp, sizeof(tc)))
		return -EFAULT;
	if (tc.flags)
		return -EINVAL;
	ret = hsm_check_label(tc.label);
	if (ret)
		return ret;
	if (tc.bits != 128 && tc.bits != 192 && tc.bits != 256 &&
	    tc.bits != 512)
		return -EINVAL;
	ret = hsm_token_create(hdev, tc.bits, tc.label, &tc.handle, tc.token);
	if (ret)
		return ret;
	if (copy_to_user(argp, &tc, sizeof(tc))) {
		/*
		 * Nobody else can ever name a kernel-partition key: without
		 * its token the key would be lost in the store for good.
		 */
		if (hsm_token_destroy(hdev, tc.token))
			dev_warn_ratelimited(&hdev->pdev->dev,
					     "cannot destroy unreturned token key %#llx\n",
					     tc.handle);
		return -EFAULT;
	}
	return 0;
}

static int hsm_ioc_token_info(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_token tk;
	struct hsm_key_attrs h;
	u64 handle;
	int ret;

	if (copy_from_user(&tk, argp, sizeof(tk)))
		return -EFAULT;
	if (tk.flags || tk.rsvd)
		return -EINVAL;
	ret = hsm_token_open(hdev, tk.token, &handle, &h);
	if (ret)
		return ret;
	hsm_attrs_from_hw(&h, &tk.attrs);
	return copy_to_user(argp, &tk, sizeof(tk)) ? -EFAULT : 0;
}

static int hsm_ioc_token_destroy(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_token tk;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&tk, argp, sizeof(tk)))
		return -EFAULT;
	if (tk.flags || tk.rsvd)
		return -EINVAL;
	return hsm_token_destroy(hdev, tk.token);
}

/* ---- audit log ---- */

/*
 * HSMCARD_IOC_AUDIT_READ hands the card's records to user space unchanged:
 * the UAPI record must be the hardware record, field by field, and the
 * UAPI's event and flag numbers the card's (enumerations compare as ints).
 */
#define HSM_AUDIT_SAME(uapi, hw) static_assert((int)(uapi) == (int)(hw))

static_assert(sizeof(struct hsmcard_audit_rec) == HSM_AUDIT_REC_SIZE);
static_assert(sizeof(struct hsm_audit_rec) == HSM_AUDIT_REC_SIZE);
static_assert(sizeof(struct hsm_audit_read_hdr) == HSM_AUDIT_HDR_SIZE);
static_assert(HSMCARD_AUDIT_REC_SIZE == HSM_AUDIT_REC_SIZE);
static_assert(HSMCARD_AUDIT_SIGNED_LEN == HSM_AUDIT_SIGNED_LEN);
static_assert(HSMCARD_AUDIT_SIG_MAX == HSM_AUDIT_SIG_MAX);
static_assert(HSMCARD_AUDIT_NO_PART == HSM_AUDIT_NO_PART);
static_assert(offsetof(struct hsmcard_audit_rec, seq) ==
	      offsetof(struct hsm_audit_rec, seq));
static_assert(sizeof_field(struct hsmcard_audit_rec, seq) ==
	      sizeof_field(struct hsm_audit_rec, seq));
static_assert(offsetof(struct hsmcard_audit_rec, time_ns) ==
	      offsetof(struct hsm_audit_rec, time_ns));
static_assert(sizeof_field(struct hsmcard_audit_rec, time_ns) ==
	      sizeof_field(struct hsm_audit_rec, time_ns));
static_assert(offsetof(struct hsmcard_audit_rec, event) ==
	      offsetof(struct hsm_audit_rec, event));
static_assert(sizeof_field(struct hsmcard_audit_rec, event) ==
	      sizeof_field(struct hsm_audit_rec, event));
static_assert(offsetof(struct hsmcard_audit_rec, status) ==
	      offsetof(struct hsm_audit_rec, status));
static_assert(sizeof_field(struct hsmcard_audit_rec, status) ==
	      sizeof_field(struct hsm_audit_rec, status));
static_assert(offsetof(struct hsmcard_audit_rec, partition) ==
	      offsetof(struct hsm_audit_rec, partition));
static_assert(sizeof_field(struct hsmcard_audit_rec, partition) ==
	      sizeof_field(struct hsm_audit_rec, partition));
static_assert(offsetof(struct hsmcard_audit_rec, handle) ==
	      offsetof(struct hsm_audit_rec, handle));
static_assert(sizeof_field(struct hsmcard_audit_rec, handle) ==
	      sizeof_field(struct hsm_audit_rec, handle));
static_assert(offsetof(struct hsmcard_audit_rec, handle2) ==
	      offsetof(struct hsm_audit_rec, handle2));
static_assert(sizeof_field(struct hsmcard_audit_rec, handle2) ==
	      sizeof_field(struct hsm_audit_rec, handle2));
static_assert(offsetof(struct hsmcard_audit_rec, detail) ==
	      offsetof(struct hsm_audit_rec, detail));
static_assert(sizeof_field(struct hsmcard_audit_rec, detail) ==
	      sizeof_field(struct hsm_audit_rec, detail));
static_assert(offsetof(struct hsmcard_audit_rec, opcode) ==
	      offsetof(struct hsm_audit_rec, opcode));
static_assert(sizeof_field(struct hsmcard_audit_rec, opcode) ==
	      sizeof_field(struct hsm_audit_rec, opcode));
static_assert(offsetof(struct hsmcard_audit_rec, rsvd0) ==
	      offsetof(struct hsm_audit_rec, rsvd0));
static_assert(sizeof_field(struct hsmcard_audit_rec, rsvd0) ==
	      sizeof_field(struct hsm_audit_rec, rsvd0));
static_assert(offsetof(struct hsmcard_audit_rec, label) ==
	      offsetof(struct hsm_audit_rec, label));
static_assert(sizeof_field(struct hsmcard_audit_rec, label) ==
	      sizeof_field(struct hsm_audit_rec, label));
static_assert(offsetof(struct hsmcard_audit_rec, prev_hash) ==
	      offsetof(struct hsm_audit_rec, prev_hash));
static_assert(sizeof_field(struct hsmcard_audit_rec, prev_hash) ==
	      sizeof_field(struct hsm_audit_rec, prev_hash));
static_assert(offsetof(struct hsmcard_audit_rec, sig_len) ==
	      offsetof(struct hsm_audit_rec, sig_len));
static_assert(sizeof_field(struct hsmcard_audit_rec, sig_len) ==
	      sizeof_field(struct hsm_audit_rec, sig_len));
static_assert(offsetof(struct hsmcard_audit_rec, rsvd1) ==
	      offsetof(struct hsm_audit_rec, rsvd1));
static_assert(sizeof_field(struct hsmcard_audit_rec, rsvd1) ==
	      sizeof_field(struct hsm_audit_rec, rsvd1));
static_assert(offsetof(struct hsmcard_audit_rec, sig) ==
	      offsetof(struct hsm_audit_rec, sig));
static_assert(sizeof_field(struct hsmcard_audit_rec, sig) ==
	      sizeof_field(struct hsm_audit_rec, sig));
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_INIT, HSM_AUDIT_EV_INIT);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_START, HSM_AUDIT_EV_START);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_CHECKPOINT, HSM_AUDIT_EV_CHECKPOINT);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_LOG_DAMAGED, HSM_AUDIT_EV_LOG_DAMAGED);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_TAMPER, HSM_AUDIT_EV_TAMPER);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_KEY_GENERATE, HSM_AUDIT_EV_KEY_GENERATE);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_KEY_IMPORT, HSM_AUDIT_EV_KEY_IMPORT);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_KEY_UNWRAP, HSM_AUDIT_EV_KEY_UNWRAP);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_KEY_WRAP, HSM_AUDIT_EV_KEY_WRAP);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_KEY_DESTROY, HSM_AUDIT_EV_KEY_DESTROY);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_TOKEN_CREATE, HSM_AUDIT_EV_TOKEN_CREATE);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_TOKEN_OPEN, HSM_AUDIT_EV_TOKEN_OPEN);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_KEY_STATE, HSM_AUDIT_EV_KEY_STATE);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_LOGIN, HSM_AUDIT_EV_LOGIN);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_LOGIN_FAIL, HSM_AUDIT_EV_LOGIN_FAIL);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_LOCKOUT, HSM_AUDIT_EV_LOCKOUT);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_UNLOCK, HSM_AUDIT_EV_UNLOCK);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_LOGOUT, HSM_AUDIT_EV_LOGOUT);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_PART_CREATE, HSM_AUDIT_EV_PART_CREATE);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_PART_DELETE, HSM_AUDIT_EV_PART_DELETE);
HSM_AUDIT_SAME(HSMCARD_AUDIT_EV_PART_CHANGE, HSM_AUDIT_EV_PART_CHANGE);
static_assert(HSMCARD_AUDIT_F_DAMAGED == HSM_AUDIT_F_DAMAGED);
static_assert(HSMCARD_AUDIT_F_WRAPPED == HSM_AUDIT_F_WRAPPED);
static_assert(HSMCARD_AUDIT_F_NO_KEY == HSM_AUDIT_F_NO_KEY);
static_assert(HSMCARD_AUDIT_F_VOLATILE == HSM_AUDIT_F_VOLATILE);

/**
 * hsm_audit_hdr_ok() - may an AUDIT_READ answer be trusted for the copy-out?
 * @h:      the header the card wrote
 * @want:   the first sequence number asked for
 * @cap:    records the buffer had room for
 * @result: the completion's result (records written)
 *
 * Only the header is checked, against the request and against itself.  The
 * records are passed on unchanged: a log edited behind the card's back is
 * exactly what a verifier in user space must get to see.
 *
 * Return: true if the header is consistent.
 */
static bool hsm_audit_hdr_ok(const struct hsm_audit_read_hdr *h, u64 want,
			     u32 cap, u64 result)
{
	u64 first = le64_to_cpu(h->first_seq);
	u64 next = le64_to_cpu(h->next_seq);
	u64 last = le64_to_cpu(h->last_seq);
	u64 oldest = le64_to_cpu(h->oldest_seq);
	u32 count = le32_to_cpu(h->count);

	if (result != count || count > cap)
		return false;
	if (le32_to_cpu(h->flags) & ~HSMCARD_AUDIT_F_ALL)
		return false;
	/* count records, ascending, from first_seq on; next_seq after them */
	if (first < want || next < first || next - first < count)
		return false;
	if (!count && next != first)
		return false;
	if (count && oldest > first)
		return false;
	/* nothing beyond the newest record (wraps for an empty log) */
	return next <= last + 1;
}

/**
 * hsm_ioc_audit_read() - HSMCARD_IOC_AUDIT_READ
 * @hdev: the card
 * @argp: user pointer to struct hsmcard_audit_read
 *
 * Reads as many records from @seq on as the user buffer and one admin
 * command hold, through a kernel bounce buffer, and copies the records
 * (without the card's header, whose fields go to the structure) to the user
 * buffer.  A header that does not fit the request is a card fault (-EIO).
 *
 * Return: 0 or a negative errno.
 */
static int hsm_ioc_audit_read(struct hsm_dev *hdev, void __user *argp)
{
	struct device *dev = &hdev->pdev->dev;
	struct hsmcard_audit_read ar;
	struct hsm_audit_read_hdr h;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u32 cap, max_recs, count;
	u64 result = 0;
	size_t len;
	u8 *data;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&ar, argp, sizeof(ar)))
		return -EFAULT;
	if (ar.flags || ar.rsvd[0] || ar.rsvd[1])
		return -EINVAL;
	if (ar.len < HSMCARD_AUDIT_REC_SIZE)
		return -EINVAL;
	if (hsm_xfer_max(hdev) < HSM_AUDIT_HDR_SIZE + HSM_AUDIT_REC_SIZE)
		return -EOPNOTSUPP;
	max_recs = (hsm_xfer_max(hdev) - HSM_AUDIT_HDR_SIZE) /
		   HSM_AUDIT_REC_SIZE;
	cap = min(ar.len / HSMCARD_AUDIT_REC_SIZE, max_recs);
	len = HSM_AUDIT_HDR_SIZE + (size_t)cap * HSM_AUDIT_REC_SIZE;

	ret = hsm_buf_alloc(&dst, dev, len, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_AUDIT_READ;
	sqe.qw[0] = cpu_to_le64(ar.seq);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result));
	if (ret)
		goto out_buf;
	hsm_buf_copy_to_kernel(&dst, &h, sizeof(h));
	if (!hsm_audit_hdr_ok(&h, ar.seq, cap, result)) {
		dev_err_ratelimited(dev,
				    "audit read: inconsistent answer (%llu records for %u, seq %llu..%llu of %llu)\n",
				    result, cap, le64_to_cpu(h.first_seq),
				    le64_to_cpu(h.next_seq),
				    le64_to_cpu(h.last_seq));
		ret = -EIO;
		goto out_buf;
	}
	count = le32_to_cpu(h.count);
	if (count) {
		len = HSM_AUDIT_HDR_SIZE + (size_t)count * HSM_AUDIT_REC_SIZE;
		data = kvmalloc(len, GFP_KERNEL);
		if (!data) {
			ret = -ENOMEM;
			goto out_buf;
		}
		hsm_buf_copy_to_kernel(&dst, data, len);
		if (copy_to_user(u64_to_user_ptr(ar.buf),
				 data + HSM_AUDIT_HDR_SIZE,
				 len - HSM_AUDIT_HDR_SIZE))
			ret = -EFAULT;
		kvfree(data);
		if (ret)
			goto out_buf;
	}
	ar.first_seq = le64_to_cpu(h.first_seq);
	ar.next_seq = le64_to_cpu(h.next_seq);
	ar.last_seq = le64_to_cpu(h.last_seq);
	ar.oldest_seq = le64_to_cpu(h.oldest_seq);
	ar.count = count;
	ar.log_flags = le32_to_cpu(h.flags);
	if (copy_to_user(argp, &ar, sizeof(ar)))
		ret = -EFAULT;
out_buf:
	hsm_buf_free(&dst);
	return ret;
}

static int hsm_ioc_audit_pubkey(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_audit_pubkey pk;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u64 result = 0;
	u32 cap;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&pk, argp, sizeof(pk)))
		return -EFAULT;
	if (pk.flags || !pk.len)
		return -EINVAL;
	cap = min(pk.len, hsm_xfer_max(hdev));
	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, cap, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_AUDIT_PUBKEY;
	ret = hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result);
	if (ret == HSM_SC_BUFFER_TOO_SMALL) {
		if (result <= cap) {
			ret = -EIO;
			goto bad;
		}
		pk.len = min_t(u64, result, U32_MAX);
		ret = copy_to_user(argp, &pk, sizeof(pk)) ? -EFAULT : -ENOSPC;
		goto out;
	}
	ret = hsm_errno(ret);
	if (ret)
		goto out;
	if (!result || result > cap) {
		ret = -EIO;
		goto bad;
	}
	pk.len = result;
	if (hsm_buf_copy_to_user(&dst, u64_to_user_ptr(pk.buf), pk.len) ||
	    copy_to_user(argp, &pk, sizeof(pk)))
		ret = -EFAULT;
	goto out;
bad:
	dev_err_ratelimited(&hdev->pdev->dev,
			    "audit pubkey: card reported %llu bytes for %u\n",
			    result, cap);
out:
	hsm_buf_free(&dst);
	return ret;
}

static int hsm_ioc_audit_checkpoint(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_audit_checkpoint cp;
	struct hsm_sqe sqe = {};
	u64 result = 0;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&cp, argp, sizeof(cp)))
		return -EFAULT;
	if (cp.flags || cp.rsvd)
		return -EINVAL;
	sqe.opcode = HSM_ADM_AUDIT_CHECKPOINT;
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, NULL, &result));
	if (ret)
		return ret;
	cp.seq = result;
	return copy_to_user(argp, &cp, sizeof(cp)) ? -EFAULT : 0;
}

/* ---- cryptographic operations ---- */

#define HSM_OPF_KEY		BIT(0)	/* needs a key handle */
#define HSM_OPF_IV		BIT(1)	/* may carry an IV / AAD */
#define HSM_OPF_HASHED		BIT(2)	/* may be PREHASHED, PSS salt */
#define HSM_OPF_OUT_IN		BIT(3)	/* out is an input (verify) */

struct hsm_op_desc {
	u8 opcode;
	u8 props;
};

static const struct hsm_op_desc hsm_op_encrypt = {
	HSM_IO_ENCRYPT, HSM_OPF_KEY | HSM_OPF_IV
};

static const struct hsm_op_desc hsm_op_decrypt = {
	HSM_IO_DECRYPT, HSM_OPF_KEY | HSM_OPF_IV
};

static const struct hsm_op_desc hsm_op_digest = { HSM_IO_DIGEST, 0 };

static const struct hsm_op_desc hsm_op_mac = { HSM_IO_MAC, HSM_OPF_KEY };

static const struct hsm_op_desc hsm_op_mac_verify = {
	HSM_IO_MAC_VERIFY, HSM_OPF_KEY | HSM_OPF_OUT_IN
};

static const struct hsm_op_desc hsm_op_sign = {
	HSM_IO_SIGN, HSM_OPF_KEY | HSM_OPF_HASHED
};

static const struct hsm_op_desc hsm_op_verify = {
	HSM_IO_VERIFY, HSM_OPF_KEY | HSM_OPF_HASHED | HSM_OPF_OUT_IN
};

static int hsm_check_op(const struct hsm_dev *hdev,
			const struct hsm_op_desc *d,
			const struct hsmcard_op *op)
{
	if (op->flags & ~HSMCARD_OP_F_ALL || op->rsvd[0] || op->rsvd[1])
		return -EINVAL;
	if (!op->mech || op->mech >= HSMCARD_MECH_MAX)
		return -EINVAL;
	if ((op->flags & HSMCARD_OP_F_PREHASHED) &&
	    !(d->props & HSM_OPF_HASHED))
		return -EINVAL;
	if (!(d->props & HSM_OPF_KEY) && op->handle)
		return -EINVAL;
	if ((d->props & HSM_OPF_KEY) && hsm_check_user_handle(op->handle))
		return -ENOKEY;
	if (!(d->props & HSM_OPF_IV) && memchr_inv(op->iv, 0, sizeof(op->iv)))
		return -EINVAL;
	if (op->aad_len && (op->mech != HSMCARD_MECH_AES_GCM ||
			    !(d->props & HSM_OPF_IV) ||
			    op->aad_len > op->in_len))
		return -EINVAL;
	if (op->salt_len && (op->mech != HSMCARD_MECH_RSA_PSS ||
			     !(d->props & HSM_OPF_HASHED)))
		return -EINVAL;
	if (op->in_len > hsm_xfer_max(hdev))
		return -E2BIG;
	if ((d->props & HSM_OPF_OUT_IN) && op->out_len > hsm_xfer_max(hdev))
		return -E2BIG;
	return 0;
}

static int hsm_ioc_op(struct hsm_dev *hdev, void __user *argp,
		      const struct hsm_op_desc *d)
{
	struct hsmcard_op __user *uop = argp;
	struct device *dev = &hdev->pdev->dev;
	bool out_in = d->props & HSM_OPF_OUT_IN;
	struct hsm_buf src, dst;
	struct hsm_sqe sqe = {};
	struct hsmcard_op op;
	u64 result = 0;
	u32 cap;
	int ret;

	if (copy_from_user(&op, argp, sizeof(op)))
		return -EFAULT;
	ret = hsm_check_op(hdev, d, &op);
	if (ret)
		return ret;
	cap = out_in ? op.out_len : min(op.out_len, hsm_xfer_max(hdev));

	ret = hsm_buf_alloc(&src, dev, op.in_len, DMA_TO_DEVICE);
	if (ret)
		return ret;
	ret = hsm_buf_alloc(&dst, dev, cap,
			    out_in ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
	if (ret)
		goto out_src;
	ret = hsm_buf_copy_from_user(&src, 0, u64_to_user_ptr(op.in),
				     op.in_len);
	if (!ret && out_in)
		ret = hsm_buf_copy_from_user(&dst, 0, u64_to_user_ptr(op.out),
					     cap);
	if (ret)
		goto out_dst;

	sqe.opcode = d->opcode;
	sqe.mech = cpu_to_le16(op.mech);
	sqe.mparam = cpu_to_le16(op.mparam);
	sqe.handle = cpu_to_le64(op.handle);
	if (op.flags & HSMCARD_OP_F_PREHASHED)
		sqe.flags |= HSM_SQE_F_PREHASHED;
	sqe.aux = cpu_to_le32(op.aad_len ? op.aad_len : op.salt_len);
	memcpy(sqe.iv, op.iv, sizeof(sqe.iv));

	ret = hsm_exec(hsm_io_queue(hdev), &sqe, &src, &dst, &result);
	if (ret == HSM_SC_BUFFER_TOO_SMALL && !out_in) {
		u32 need = min_t(u64, result, U32_MAX);

		ret = put_user(need, &uop->out_len) ? -EFAULT : -ENOSPC;
		goto out_dst;
	}
	ret = hsm_errno(ret);
	if (ret || out_in)
		goto out_dst;
	if (result > cap) {
		dev_err_ratelimited(dev, "card reported %llu bytes for %u\n",
				    result, cap);
		ret = -EIO;
		goto out_dst;
	}
	if (hsm_buf_copy_to_user(&dst, u64_to_user_ptr(op.out), result) ||
	    put_user((u32)result, &uop->out_len))
		ret = -EFAULT;
out_dst:
	hsm_buf_free(&dst);
out_src:
	hsm_buf_free(&src);
	return ret;
}

static int hsm_ioc_random(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_random rnd;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u64 result = 0;
	int ret;

	if (copy_from_user(&rnd, argp, sizeof(rnd)))
		return -EFAULT;
	if (rnd.flags || !rnd.len)
		return -EINVAL;
	if (rnd.len > hsm_xfer_max(hdev))
		return -E2BIG;
	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, rnd.len, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_IO_GET_RANDOM;
	ret = hsm_errno(hsm_exec(hsm_io_queue(hdev), &sqe, NULL, &dst,
				 &result));
	if (!ret && hsm_buf_copy_to_user(&dst, u64_to_user_ptr(rnd.buf),
					 rnd.len))
		ret = -EFAULT;
	hsm_buf_free(&dst);
	return ret;
}

static int hsm_ioc_info(struct hsm_dev *hdev, void __user *argp)
{
	struct hsmcard_info info;
	struct hsm_limits lim;
	int ret;

	if (copy_from_user(&info, argp, sizeof(info)))
		return -EFAULT;
	if (info.flags)
		return -EINVAL;
	/* Fresh IDENTIFY data for nr_keys; fall back to the probe's copy. */
	ret = hsm_identify(hdev, &lim, false);
	if (ret)
		lim = hdev->limits;

	memset(&info, 0, sizeof(info));
	info.state = hsm_dev_state(hdev);
	strscpy_pad(info.serial, lim.serial, sizeof(info.serial));
	strscpy_pad(info.model, lim.model, sizeof(info.model));
	strscpy_pad(info.fw_version, lim.fw_rev, sizeof(info.fw_version));
	memcpy(info.card_id, lim.card_id, sizeof(info.card_id));
	info.hw_version = hdev->vs;
	info.nr_queues = hdev->nr_ioq;
	info.max_ioq = lim.max_ioq;
	info.max_qsize = lim.max_qsize;
	info.max_xfer = hsm_xfer_max(hdev);
	info.max_sge = lim.max_sge;
	info.max_keys = lim.max_keys;
	info.nr_keys = lim.nr_keys;
	info.nr_partitions = lim.nr_partitions;
	info.key_types = lim.key_types;
	info.mechs = lim.mechs;
	return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;
}

/* ---- file operations ---- */

static int hsm_open(struct inode *inode, struct file *file)
{
	struct miscdevice *misc = file->private_data;
	struct hsm_dev *hdev = container_of(misc, struct hsm_dev, misc);

	/* misc_open() holds misc_mtx: the device cannot be unregistered. */
	kref_get(&hdev->kref);
	file->private_data = hdev;
	return nonseekable_open(inode, file);
}

static int hsm_release(struct inode *inode, struct file *file)
{
	hsm_dev_put(file->private_data);
	return 0;
}

static long hsm_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct hsm_dev *hdev = file->private_data;
	void __user *argp = (void __user *)arg;
	long ret;

	down_read(&hdev->gone_sem);
	/* Once removal starts, nothing new reaches the card. */
	if (hdev->gone || READ_ONCE(hdev->removing)) {
		ret = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case HSMCARD_IOC_INFO:
		ret = hsm_ioc_info(hdev, argp);
		break;
	case HSMCARD_IOC_KEY_GENERATE:
		ret = hsm_ioc_key_generate(hdev, argp);
		break;
	case HSMCARD_IOC_KEY_IMPORT:
		ret = hsm_ioc_key_import(hdev, argp);
		break;
	case HSMCARD_IOC_KEY_LIST:
		ret = hsm_ioc_key_list(hdev, argp);
		break;
	case HSMCARD_IOC_KEY_ATTRS:
		ret = hsm_ioc_key_attrs(hdev, argp);
		break;
	case HSMCARD_IOC_KEY_PUBKEY:
		ret = hsm_ioc_key_pubkey(hdev, argp);
		break;
	case HSMCARD_IOC_KEY_DESTROY:
		ret = hsm_ioc_key_destroy(hdev, argp);
		break;
	case HSMCARD_IOC_ENCRYPT:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_encrypt);
		break;
	case HSMCARD_IOC_DECRYPT:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_decrypt);
		break;
	case HSMCARD_IOC_DIGEST:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_digest);
		break;
	case HSMCARD_IOC_MAC:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_mac);
		break;
	case HSMCARD_IOC_MAC_VERIFY:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_mac_verify);
		break;
	case HSMCARD_IOC_SIGN:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_sign);
		break;
	case HSMCARD_IOC_VERIFY:
		ret = hsm_ioc_op(hdev, argp, &hsm_op_verify);
		break;
	case HSMCARD_IOC_RANDOM:
		ret = hsm_ioc_random(hdev, argp);
		break;
	case HSMCARD_IOC_TOKEN_CREATE:
		ret = hsm_ioc_token_create(hdev, argp);
		break;
	case HSMCARD_IOC_TOKEN_INFO:
		ret = hsm_ioc_token_info(hdev, argp);
		break;
	case HSMCARD_IOC_TOKEN_DESTROY:
		ret = hsm_ioc_token_destroy(hdev, argp);
		break;
	case HSMCARD_IOC_AUDIT_READ:
		ret = hsm_ioc_audit_read(hdev, argp);
		break;
	case HSMCARD_IOC_AUDIT_PUBKEY:
		ret = hsm_ioc_audit_pubkey(hdev, argp);
		break;
	case HSMCARD_IOC_AUDIT_CHECKPOINT:
		ret = hsm_ioc_audit_checkpoint(hdev, argp);
		break;
	case HSMCARD_IOC_RING_SETUP:
		ret = hsm_ring_setup(hdev, argp);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
out:
	up_read(&hdev->gone_sem);
	return ret;
}

static const struct file_operations hsm_fops = {
	.owner		= THIS_MODULE,
	.open		= hsm_open,
	.release	= hsm_release,
	.unlocked_ioctl	= hsm_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/**
 * hsm_cdev_register() - create /dev/hsmcardN
 * @hdev: device, fully brought up
 *
 * Return: 0 or a negative errno.
 */
int hsm_cdev_register(struct hsm_dev *hdev)
{
	int ret;

	hdev->misc.minor = MISC_DYNAMIC_MINOR;
	hdev->misc.name = hdev->name;
	hdev->misc.fops = &hsm_fops;
	hdev->misc.parent = &hdev->pdev->dev;
	hdev->misc.mode = 0600;
	ret = misc_register(&hdev->misc);
	if (!ret)
		hdev->misc_ok = true;
	return ret;
}

/**
 * hsm_cdev_unregister() - remove /dev/hsmcardN
 * @hdev: device
 *
 * Open files stay valid: they hold a reference and get -ENODEV once the
 * hardware is gone.
 */
void hsm_cdev_unregister(struct hsm_dev *hdev)
{
	if (hdev->misc_ok)
		misc_deregister(&hdev->misc);
	hdev->misc_ok = false;
}
