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
#include <linux/mutex.h>
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
 * User space may only name keys of the partition its file may use (@part);
 * anything else is reported exactly like a handle that does not exist.
 */
static int hsm_check_user_handle(u64 handle, u32 part)
{
	return HSM_HANDLE_PART(handle) == part ? 0 : -ENOKEY;
}

/* ---- partitions, roles and PINs: the per-file session ---- */

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

/* Serialises the commands that change PINs or partitions and the refresh. */
static DEFINE_MUTEX(hsm_auth_mutex);

static_assert(sizeof(struct hsm_auth_req) == 256);
static_assert(sizeof(struct hsm_part_info) == 128);
static_assert(sizeof(struct hsmcard_part_info) == 128);
static_assert(HSMCARD_PIN_MAX == HSM_PIN_MAX);
static_assert(HSMCARD_PIN_MIN == HSM_PIN_MIN);
static_assert(HSMCARD_NR_PARTITIONS_MAX == HSM_NR_PARTITIONS);
static_assert(HSMCARD_PART_ANY == HSM_PART_ANY);
static_assert((int)HSMCARD_ROLE_SO == (int)HSM_ROLE_SO);
static_assert((int)HSMCARD_ROLE_USER == (int)HSM_ROLE_USER);
static_assert((int)HSMCARD_ROLE_ADMIN == (int)HSM_ROLE_ADMIN);
static_assert(HSMCARD_PART_S_EXISTS == HSM_PART_S_EXISTS);
static_assert(HSMCARD_PART_S_INITIALIZED == HSM_PART_S_INITIALIZED);
static_assert(HSMCARD_PART_S_SO_SET == HSM_PART_S_SO_SET);
static_assert(HSMCARD_PART_S_USER_SET == HSM_PART_S_USER_SET);
static_assert(HSMCARD_PART_S_SO_LOCKED == HSM_PART_S_SO_LOCKED);
static_assert(HSMCARD_PART_S_USER_LOCKED == HSM_PART_S_USER_LOCKED);
static_assert(HSMCARD_PART_S_KERNEL == HSM_PART_S_KERNEL);
static_assert(HSMCARD_CARD_S_ADMIN_SET == HSM_CARD_S_ADMIN_SET);
static_assert(HSMCARD_CARD_S_ADMIN_LOCKED == HSM_CARD_S_ADMIN_LOCKED);
static_assert(HSMCARD_CARD_S_TAMPERED == HSM_CARD_S_TAMPERED);
static_assert(HSMCARD_PART_F_RESET == HSM_AUTH_F_RESET);

/*
 * A PIN of @len bytes (4..64, or 0 if @may_be_empty) in a HSMCARD_PIN_MAX
 * array, zero padded.
 */
static bool hsm_pin_ok(u16 len, const u8 *pin, bool may_be_empty)
{
	if (len > HSMCARD_PIN_MAX)
		return false;
	if (len < HSMCARD_PIN_MIN && !(len == 0 && may_be_empty))
		return false;
	return !memchr_inv(pin + len, 0, HSMCARD_PIN_MAX - len);
}

/**
 * hsm_part_info_hw() - ask the card about a partition
 * @hdev: card
 * @part: partition number
 * @out:  receives the card's answer
 *
 * Return: 0, or a negative errno (-EOPNOTSUPP: firmware without
 * partitions).
 */
static int hsm_part_info_hw(struct hsm_dev *hdev, u32 part,
			    struct hsm_part_info *out)
{
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u64 result = 0;
	int ret;

	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, sizeof(*out),
			    DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_PART_INFO;
	sqe.cdw[0] = cpu_to_le32(part);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result));
	if (!ret)
		hsm_buf_copy_to_kernel(&dst, out, sizeof(*out));
	hsm_buf_free(&dst);
	return ret;
}

/* Re-read whether partition 0 has a PIN.  Caller holds hsm_auth_mutex. */
static int hsm_p0_refresh_locked(struct hsm_dev *hdev)
{
	struct hsm_part_info pi;
	int ret;

	ret = hsm_part_info_hw(hdev, HSMCARD_PARTITION_USER, &pi);
	if (ret == -EOPNOTSUPP) {
		/* A card without partitions: partition 0 is all there is. */
		atomic_set(&hdev->p0_state, HSM_P0_OPEN);
		return 0;
	}
	if (ret) {
		/* Fail closed until the card answers. */
		atomic_set(&hdev->p0_state, HSM_P0_UNKNOWN);
		return ret;
	}
	atomic_set(&hdev->p0_state,
		   le32_to_cpu(pi.flags) & HSM_PART_S_INITIALIZED ?
		   HSM_P0_LOCKED : HSM_P0_OPEN);
	return 0;
}

/*
 * May a file that is not logged in use partition 0?  Returns 1 (yes), 0
 * (no) or a negative errno.
 */
static int hsm_p0_open(struct hsm_dev *hdev)
{
	int state = atomic_read(&hdev->p0_state);
	int ret;

	if (state == HSM_P0_UNKNOWN) {
		mutex_lock(&hsm_auth_mutex);
		ret = 0;
		state = atomic_read(&hdev->p0_state);
		if (state == HSM_P0_UNKNOWN)
			ret = hsm_p0_refresh_locked(hdev);
		state = atomic_read(&hdev->p0_state);
		mutex_unlock(&hsm_auth_mutex);
		if (ret)
			return ret;
	}
	return state == HSM_P0_OPEN;
}

/**
 * hsm_sess_keys() - which partition's keys may this file use?
 * @sess: the file's session
 * @part: receives the partition
 *
 * A User login gives its partition; a file that is not logged in gets
 * partition 0 while partition 0 has no PIN.  An SO or admin login uses no
 * key at all.  Logins made before their partition was deleted or the card
 * was re-initialized count as logged out.
 *
 * Return: 0, -EPERM (SO or admin), -EACCES (a login is needed) or another
 * negative errno.
 */
static int hsm_sess_keys(struct hsm_session *sess, u32 *part)
{
	struct hsm_dev *hdev = sess->hdev;
	u32 p;
	u16 role;
	int ret;

	mutex_lock(&sess->lock);
	p = sess->partition;
	role = sess->role;
	if (role != HSM_ROLE_NONE &&
	    sess->gen != atomic_read(&hdev->part_gen[p]))
		role = HSM_ROLE_NONE;
	mutex_unlock(&sess->lock);

	switch (role) {
	case HSM_ROLE_USER:
		*part = p;
		return 0;
	case HSM_ROLE_NONE:
		ret = hsm_p0_open(hdev);
		if (ret < 0)
			return ret;
		if (!ret)
			return -EACCES;
		*part = HSMCARD_PARTITION_USER;
		return 0;
	default:
		return -EPERM;
	}
}

static void hsm_sess_set(struct hsm_session *sess, u32 part, u16 role)
{
	mutex_lock(&sess->lock);
	sess->partition = part;
	sess->role = role;
	sess->gen = atomic_read(&sess->hdev->part_gen[part]);
	mutex_unlock(&sess->lock);
}

/*
 * Run an authenticated command with @req as its source.  The bounce buffer
 * is wiped when freed; the caller wipes @req.  Returns 0 or a negative
 * errno; *@result is the card's result (tries left with -EACCES).  A PIN
 * the card refuses is reported as a LOGIN_FAILED netlink event.
 */
static int hsm_auth_exec(struct hsm_dev *hdev, u8 opcode,
			 const struct hsm_auth_req *req, u64 *result)
{
	struct hsm_sqe sqe = {};
	struct hsm_buf src;
	int ret, st;
	u16 role;

	*result = 0;
	ret = hsm_buf_alloc(&src, &hdev->pdev->dev, sizeof(*req),
			    DMA_TO_DEVICE);
	if (ret)
		return ret;
	hsm_buf_copy_from_kernel(&src, 0, req, sizeof(*req));
	sqe.opcode = opcode;
	st = hsm_exec(&hdev->adminq, &sqe, &src, NULL, result);
	hsm_buf_free(&src);
	if (st == HSM_SC_PIN_INCORRECT || st == HSM_SC_PIN_LOCKED) {
		/* whose PIN was refused: SET_PIN names it in auth_role */
		role = le16_to_cpu(req->auth_role) ?: le16_to_cpu(req->role);
		hsm_genl_login_failed(hdev, le32_to_cpu(req->partition), role,
				      st, *result);
	}
	return hsm_errno(st);
}

/*
 * A partition user space may name: 0 or 2.. below the card's count, and
 * existing.  Returns 0, -EPERM (the kernel's), -ENOENT or another errno.
 */
static int hsm_check_part(struct hsm_dev *hdev, u32 part)
{
	struct hsm_part_info pi;
	int ret;

	if (part == HSMCARD_PARTITION_KERNEL)
		return -EPERM;
	if (part >= min_t(u32, hdev->limits.nr_partitions, HSM_NR_PARTITIONS))
		return -ENOENT;
	ret = hsm_part_info_hw(hdev, part, &pi);
	if (ret)
		return ret;
	return le32_to_cpu(pi.flags) & HSM_PART_S_EXISTS ? 0 : -ENOENT;
}

static bool hsm_role_ok(u16 role)
{
	return role == HSM_ROLE_SO || role == HSM_ROLE_USER ||
	       role == HSM_ROLE_ADMIN;
}

/**
 * hsm_ioc_login() - HSMCARD_IOC_LOGIN
 * @sess: the file's session
 * @argp: user pointer to struct hsmcard_login
 *
 * The card checks the PIN; on success the file is bound to the partition
 * and role, replacing an earlier login.  Any failure leaves the file
 * logged out.  The PIN is wiped from kernel memory before returning.
 *
 * Return: 0 or a negative errno (-EACCES: wrong PIN, tries_left written
 * back; -EKEYREVOKED: role locked; -ENODATA: the role has no PIN).
 */
static int hsm_ioc_login(struct hsm_session *sess, void __user *argp)
{
	struct hsmcard_login __user *ulg = argp;
	struct hsm_dev *hdev = sess->hdev;
	struct hsm_auth_req req = {};
	struct hsmcard_login lg;
	u64 result;
	int ret;

	if (copy_from_user(&lg, argp, sizeof(lg))) {
		/* a partial copy may hold PIN bytes */
		memzero_explicit(&lg, sizeof(lg));
		return -EFAULT;
	}
	hsm_sess_set(sess, 0, HSM_ROLE_NONE);
	ret = -EINVAL;
	if (lg.flags || memchr_inv(lg.rsvd, 0, sizeof(lg.rsvd)))
		goto out;
	if (!hsm_role_ok(lg.role) || !hsm_pin_ok(lg.pin_len, lg.pin, false))
		goto out;
	if (lg.role == HSM_ROLE_ADMIN && lg.partition)
		goto out;
	ret = hsm_check_part(hdev, lg.partition);
	if (ret)
		goto out;
	req.partition = cpu_to_le32(lg.partition);
	req.role = cpu_to_le16(lg.role);
	req.pin_len = cpu_to_le16(lg.pin_len);
	memcpy(req.pin, lg.pin, sizeof(req.pin));
	ret = hsm_auth_exec(hdev, HSM_ADM_LOGIN, &req, &result);
	if (!ret)
		hsm_sess_set(sess, lg.partition, lg.role);
	else if (ret == -EACCES && put_user((u32)min_t(u64, result, U32_MAX),
					    &ulg->tries_left))
		ret = -EFAULT;
out:
	memzero_explicit(&req, sizeof(req));
	memzero_explicit(&lg, sizeof(lg));
	return ret;
}

static int hsm_ioc_logout(struct hsm_session *sess, unsigned long arg)
{
	if (arg)
		return -EINVAL;
	hsm_sess_set(sess, 0, HSM_ROLE_NONE);
	return 0;
}

/**
 * hsm_ioc_set_pin() - HSMCARD_IOC_SET_PIN
 * @sess: the file's session
 * @argp: user pointer to struct hsmcard_set_pin
 *
 * Passed to the card, which checks @auth_role's PIN and the combination.
 * Needs no login and no capability: the PIN is the authority.
 *
 * Return: 0 or a negative errno, as for HSMCARD_IOC_LOGIN.
 */
static int hsm_ioc_set_pin(struct hsm_session *sess, void __user *argp)
{
	struct hsmcard_set_pin __user *usp = argp;
	struct hsm_dev *hdev = sess->hdev;
	struct hsm_auth_req req = {};
	struct hsmcard_set_pin sp;
	u64 result;
	int ret;

	if (copy_from_user(&sp, argp, sizeof(sp))) {
		/* a partial copy may hold PIN bytes */
		memzero_explicit(&sp, sizeof(sp));
		return -EFAULT;
	}
	ret = -EINVAL;
	if (sp.flags || memchr_inv(sp.rsvd, 0, sizeof(sp.rsvd)))
		goto out;
	if (!hsm_role_ok(sp.role) ||
	    (sp.auth_role && !hsm_role_ok(sp.auth_role)))
		goto out;
	if (!hsm_pin_ok(sp.pin_len, sp.pin, false) ||
	    !hsm_pin_ok(sp.new_pin_len, sp.new_pin, false))
		goto out;
	ret = hsm_check_part(hdev, sp.partition);
	if (ret)
		goto out;
	req.partition = cpu_to_le32(sp.partition);
	req.role = cpu_to_le16(sp.role);
	req.auth_role = cpu_to_le16(sp.auth_role);
	req.pin_len = cpu_to_le16(sp.pin_len);
	req.new_pin_len = cpu_to_le16(sp.new_pin_len);
	memcpy(req.pin, sp.pin, sizeof(req.pin));
	memcpy(req.new_pin, sp.new_pin, sizeof(req.new_pin));
	mutex_lock(&hsm_auth_mutex);
	ret = hsm_auth_exec(hdev, HSM_ADM_SET_PIN, &req, &result);
	if (sp.partition == HSMCARD_PARTITION_USER)
		hsm_p0_refresh_locked(hdev);
	mutex_unlock(&hsm_auth_mutex);
	if (ret == -EACCES && put_user((u32)min_t(u64, result, U32_MAX),
				       &usp->tries_left))
		ret = -EFAULT;
out:
	memzero_explicit(&req, sizeof(req));
	memzero_explicit(&sp, sizeof(sp));
	return ret;
}

static int hsm_ioc_part_info(struct hsm_session *sess, void __user *argp)
{
	struct hsmcard_part_info ui;
	struct hsm_part_info pi;
	int ret;

	if (copy_from_user(&ui, argp, sizeof(ui)))
		return -EFAULT;
	/* Output fields are ignored on input; reserved ones must be 0. */
	if (memchr_inv(ui.rsvd, 0, sizeof(ui.rsvd)))
		return -EINVAL;
	if (ui.partition >= min_t(u32, sess->hdev->limits.nr_partitions,
				  HSM_NR_PARTITIONS))
		return -ENOENT;
	ret = hsm_part_info_hw(sess->hdev, ui.partition, &pi);
	if (ret)
		return ret;
	memset(&ui, 0, sizeof(ui));
	ui.partition = le32_to_cpu(pi.partition);
	ui.flags = le32_to_cpu(pi.flags);
	ui.card_flags = le32_to_cpu(pi.card_flags);
	ui.max_fail = le16_to_cpu(pi.max_fail);
	ui.so_failed = pi.so_failed;
	ui.user_failed = pi.user_failed;
	ui.nr_keys = le32_to_cpu(pi.nr_keys);
	ui.admin_failed = pi.admin_failed;
	ui.created = le64_to_cpu(pi.created);
	strscpy_pad(ui.label, pi.label, sizeof(ui.label));
	return copy_to_user(argp, &ui, sizeof(ui)) ? -EFAULT : 0;
}

/**
 * hsm_ioc_part_admin() - HSMCARD_IOC_PART_CREATE, _PART_DELETE, _CARD_INIT
 * @sess:   the file's session
 * @argp:   user pointer to struct hsmcard_part_admin
 * @opcode: HSM_ADM_PART_CREATE, HSM_ADM_PART_DELETE or HSM_ADM_CARD_INIT
 *
 * Needs CAP_SYS_ADMIN; the card checks the admin PIN.  Deleting (or
 * resetting) a partition ends the logins to it; initializing the card ends
 * every login.
 *
 * Return: 0 or a negative errno.
 */
static int hsm_ioc_part_admin(struct hsm_session *sess, void __user *argp,
			      u8 opcode)
{
	struct hsmcard_part_admin __user *upa = argp;
	struct hsm_dev *hdev = sess->hdev;
	struct hsm_auth_req req = {};
	struct hsmcard_part_admin pa;
	unsigned int i;
	u64 result;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&pa, argp, sizeof(pa))) {
		/* a partial copy may hold PIN bytes */
		memzero_explicit(&pa, sizeof(pa));
		return -EFAULT;
	}
	ret = -EINVAL;
	if (memchr_inv(pa.rsvd, 0, sizeof(pa.rsvd)))
		goto out;
	if (opcode != HSM_ADM_PART_CREATE &&
	    (pa.max_fail || memchr_inv(pa.label, 0, sizeof(pa.label))))
		goto out;
	switch (opcode) {
	case HSM_ADM_PART_CREATE:
		if (pa.flags || pa.max_fail > HSM_MAX_FAIL_MAX ||
		    !hsm_pin_ok(pa.pin_len, pa.pin, false) ||
		    !hsm_pin_ok(pa.new_pin_len, pa.new_pin, false) ||
		    hsm_check_label(pa.label) || !pa.label[0])
			goto out;
		if (pa.partition == HSMCARD_PARTITION_KERNEL) {
			ret = -EPERM;
			goto out;
		}
		if (pa.partition != HSM_PART_ANY &&
		    (pa.partition < 2 || pa.partition >= HSM_NR_PARTITIONS))
			goto out;
		break;
	case HSM_ADM_PART_DELETE:
		if ((pa.flags & ~HSMCARD_PART_F_RESET) ||
		    !hsm_pin_ok(pa.pin_len, pa.pin, false) || pa.new_pin_len ||
		    memchr_inv(pa.new_pin, 0, sizeof(pa.new_pin)))
			goto out;
		if (!pa.flags != !!pa.partition)
			goto out;
		ret = hsm_check_part(hdev, pa.partition);
		if (ret)
			goto out;
		break;
	default:
		/* CARD_INIT: the current PIN is ignored while none is set. */
		if (pa.flags || pa.partition ||
		    !hsm_pin_ok(pa.pin_len, pa.pin, true) ||
		    !hsm_pin_ok(pa.new_pin_len, pa.new_pin, false))
			goto out;
		break;
	}
	req.partition = cpu_to_le32(pa.partition);
	req.role = cpu_to_le16(HSM_ROLE_ADMIN);
	req.pin_len = cpu_to_le16(pa.pin_len);
	req.new_pin_len = cpu_to_le16(pa.new_pin_len);
	req.max_fail = cpu_to_le16(pa.max_fail);
	req.flags = cpu_to_le16(pa.flags);
	memcpy(req.pin, pa.pin, sizeof(req.pin));
	memcpy(req.new_pin, pa.new_pin, sizeof(req.new_pin));
	memcpy(req.label, pa.label, sizeof(req.label));

	mutex_lock(&hsm_auth_mutex);
	ret = hsm_auth_exec(hdev, opcode, &req, &result);
	if (!ret && opcode == HSM_ADM_PART_DELETE) {
		atomic_inc(&hdev->part_gen[pa.partition]);
	} else if (!ret && opcode == HSM_ADM_CARD_INIT) {
		for (i = 0; i < ARRAY_SIZE(hdev->part_gen); i++)
			atomic_inc(&hdev->part_gen[i]);
	}
	if (opcode != HSM_ADM_PART_CREATE)
		hsm_p0_refresh_locked(hdev);
	mutex_unlock(&hsm_auth_mutex);

	if (ret == -EACCES) {
		if (put_user((u32)min_t(u64, result, U32_MAX),
			     &upa->tries_left))
			ret = -EFAULT;
	} else if (!ret) {
		if (opcode == HSM_ADM_PART_CREATE &&
		    put_user((u32)result, &upa->partition))
			ret = -EFAULT;
		if (opcode == HSM_ADM_PART_DELETE &&
		    put_user(result, &upa->result))
			ret = -EFAULT;
	}
out:
	memzero_explicit(&req, sizeof(req));
	memzero_explicit(&pa, sizeof(pa));
	return ret;
}

/* ---- key attributes ---- */

/* A key ID is @len (0..HSM_KEY_ID_LEN) bytes, zero past them. */
static bool hsm_key_id_ok(const u8 *id, unsigned int len)
{
	if (len > HSM_KEY_ID_LEN)
		return false;
	return !memchr_inv(id + len, 0, HSM_KEY_ID_LEN - len);
}

/*
 * @restore: an unwrap with HSMCARD_WRAP_ATTRS, whose attributes come from
 * the blob: type 0 and any state a blob can hold are fine, the card
 * checks them against the blob.
 */
static int hsm_check_attrs_in(struct hsmcard_key_attrs *a, u32 part,
			      bool restore)
{
	if (a->handle || a->created || a->version ||
	    a->activated || a->deactivated || a->rsvd)
		return -EINVAL;
	if (!hsm_key_id_ok(a->id, a->id_len))
		return -EINVAL;
	if (restore) {
		if (a->state > HSMCARD_KEY_STATE_DEACTIVATED ||
		    a->type >= HSMCARD_KEY_TYPE_MAX)
			return -EINVAL;
	} else {
		if (a->state && a->state != HSMCARD_KEY_STATE_ACTIVE &&
		    a->state != HSMCARD_KEY_STATE_PRE_ACTIVE)
			return -EINVAL;
		if (!a->type || a->type >= HSMCARD_KEY_TYPE_MAX)
			return -EINVAL;
	}
	if ((a->uses & ~HSMCARD_USE_ALL) || (a->flags & ~HSMCARD_KEYF_ALL))
		return -EINVAL;
	if (a->partition == HSMCARD_PARTITION_KERNEL)
		return -EPERM;
	/* 0 names the file's own partition, whichever it is. */
	if (a->partition == HSMCARD_PARTITION_USER)
		a->partition = part;
	if (a->partition != part)
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
	h->state = cpu_to_le16(a->state);
	memcpy(h->label, a->label, sizeof(h->label));
	h->id_len = cpu_to_le16(a->id_len);
	memcpy(h->id, a->id, sizeof(h->id));
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
	a->state = le16_to_cpu(h->state);
	a->version = le32_to_cpu(h->version);
	a->activated = le64_to_cpu(h->activated);
	a->deactivated = le64_to_cpu(h->deactivated);
	/* Never trust the card's string to be terminated. */
	strscpy_pad(a->label, h->label, sizeof(a->label));
	a->id_len = le16_to_cpu(h->id_len);
	memcpy(a->id, h->id, sizeof(a->id));
}

/*
 * What the card reports must be a state it can be in, and a key ID of a
 * valid length with nothing past it.
 */
static bool hsm_attrs_sane(const struct hsmcard_key_attrs *a)
{
	return a->state >= HSMCARD_KEY_STATE_PRE_ACTIVE &&
	       a->state <= HSMCARD_KEY_STATE_COMPROMISED && a->version &&
	       hsm_key_id_ok(a->id, a->id_len);
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
		if (!hsm_attrs_sane(out) || out->handle != handle) {
			dev_err_ratelimited(&hdev->pdev->dev,
					    "key %#llx: card reported state %u version %u id_len %u\n",
					    handle, out->state, out->version,
					    out->id_len);
			ret = -EIO;
		}
	}
	hsm_buf_free(&dst);
	return ret;
}

/*
 * Create a key from @a (and, for an import or unwrap, @key_len bytes of
 * clear key or wrapped blob at @ukey) and return its attributes in @a.
 * @sqe comes with the opcode set, and for an unwrap the KEK's handle and
 * the mechanism.
 */
static int hsm_key_create(struct hsm_dev *hdev, struct hsm_sqe *sqe,
			  struct hsmcard_key_attrs *a,
			  const void __user *ukey, u32 key_len)
{
	struct hsm_key_attrs h;
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
	ret = hsm_errno(hsm_exec(&hdev->adminq, sqe, &src, NULL, &handle));
	if (ret)
		goto out;
	/* The card must have put the key where it was asked to. */
	if (HSM_HANDLE_PART(handle) != a->partition) {
		dev_err_ratelimited(&hdev->pdev->dev,
				    "key %#llx created outside partition %u\n",
				    handle, a->partition);
		ret = -EIO;
		goto out;
	}
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

static int hsm_ioc_key_generate(struct hsm_dev *hdev, void __user *argp,
				u32 part)
{
	struct hsmcard_key_attrs a;
	struct hsm_sqe sqe = {};
	int ret;

	if (copy_from_user(&a, argp, sizeof(a)))
		return -EFAULT;
	ret = hsm_check_attrs_in(&a, part, false);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_GENERATE;
	ret = hsm_key_create(hdev, &sqe, &a, NULL, 0);
	if (ret)
		return ret;
	return copy_to_user(argp, &a, sizeof(a)) ? -EFAULT : 0;
}

static int hsm_ioc_key_import(struct hsm_dev *hdev, void __user *argp,
			      u32 part)
{
	struct hsmcard_key_import imp;
	struct hsm_sqe sqe = {};
	int ret;

	if (copy_from_user(&imp, argp, sizeof(imp)))
		return -EFAULT;
	if (imp.flags)
		return -EINVAL;
	ret = hsm_check_attrs_in(&imp.attrs, part, false);
	if (ret)
		return ret;
	if (!imp.key_len)
		return -EINVAL;
	if (imp.key_len > hsm_xfer_max(hdev) - sizeof(struct hsm_key_attrs))
		return -E2BIG;
	sqe.opcode = HSM_ADM_KEY_IMPORT;
	ret = hsm_key_create(hdev, &sqe, &imp.attrs, u64_to_user_ptr(imp.key),
			     imp.key_len);
	if (ret)
		return ret;
	return copy_to_user(argp, &imp, sizeof(imp)) ? -EFAULT : 0;
}

/* RFC 5649: at least one 8-byte block of payload after the 8-byte AIV. */
#define HSM_KWP_MIN		16
#define HSM_KWP_ALIGN		8

static bool hsm_kwp_mech_ok(u16 mech)
{
	return mech == HSMCARD_MECH_NONE || mech == HSMCARD_MECH_AES_KWP;
}

/**
 * hsm_ioc_key_wrap() - HSMCARD_IOC_KEY_WRAP
 * @hdev: the card
 * @argp: user pointer to struct hsmcard_key_wrap
 * @part: the file's partition
 *
 * Both keys must be in @part (-ENOKEY otherwise, as if they did not
 * exist); the card checks the rest.  The blob goes through a bounce
 * buffer that is wiped when freed.
 *
 * Return: 0, -ENOSPC with the size needed in @len, or a negative errno.
 */
static int hsm_ioc_key_wrap(struct hsm_dev *hdev, void __user *argp,
			    u32 part)
{
	struct hsmcard_key_wrap wr;
	struct hsm_sqe sqe = {};
	struct hsm_buf dst;
	u64 result = 0;
	u32 cap;
	int ret;

	if (copy_from_user(&wr, argp, sizeof(wr)))
		return -EFAULT;
	if ((wr.flags & ~HSMCARD_WRAP_FLAGS_ALL) || wr.rsvd0 || wr.rsvd1 ||
	    wr.rsvd[0] || wr.rsvd[1] || !hsm_kwp_mech_ok(wr.mech) || !wr.len)
		return -EINVAL;
	if (!wr.blob)
		return -EFAULT;
	if (hsm_check_user_handle(wr.handle, part) ||
	    hsm_check_user_handle(wr.kek, part))
		return -ENOKEY;
	cap = min(wr.len, hsm_xfer_max(hdev));
	ret = hsm_buf_alloc(&dst, &hdev->pdev->dev, cap, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_WRAP;
	sqe.mech = cpu_to_le16(wr.mech);
	sqe.handle = cpu_to_le64(wr.handle);
	sqe.qw[0] = cpu_to_le64(wr.kek);
	if (wr.flags & HSMCARD_WRAP_ATTRS)
		sqe.cdw[2] = cpu_to_le32(HSM_WRAP_F_ATTRS);
	ret = hsm_exec(&hdev->adminq, &sqe, NULL, &dst, &result);
	if (ret == HSM_SC_BUFFER_TOO_SMALL) {
		if (result <= cap) {
			ret = -EIO;
			goto bad;
		}
		wr.len = min_t(u64, result, U32_MAX);
		ret = copy_to_user(argp, &wr, sizeof(wr)) ? -EFAULT : -ENOSPC;
		goto out;
	}
	ret = hsm_errno(ret);
	if (ret)
		goto out;
	if (result < HSM_KWP_MIN || result > cap || result % HSM_KWP_ALIGN) {
		ret = -EIO;
		goto bad;
	}
	wr.len = result;
	if (hsm_buf_copy_to_user(&dst, u64_to_user_ptr(wr.blob), wr.len) ||
	    copy_to_user(argp, &wr, sizeof(wr)))
		ret = -EFAULT;
	goto out;
bad:
	dev_err_ratelimited(&hdev->pdev->dev,
			    "key wrap: card reported %llu bytes for %u\n",
			    result, cap);
out:
	hsm_buf_free(&dst);
	return ret;
}

/**
 * hsm_ioc_key_unwrap() - HSMCARD_IOC_KEY_UNWRAP
 * @hdev: the card
 * @argp: user pointer to struct hsmcard_key_unwrap
 * @part: the file's partition
 *
 * The new key lands in @part, which must also hold the KEK.  Sends the
 * KEY_CREATED event like generation and import.  With HSMCARD_WRAP_ATTRS
 * the card takes the attributes from the blob and @attrs may only narrow
 * them.
 *
 * Return: 0 or a negative errno (-EBADMSG: the blob does not unwrap;
 * -EACCES: @attrs ask for more than an attribute blob holds).
 */
static int hsm_ioc_key_unwrap(struct hsm_dev *hdev, void __user *argp,
			      u32 part)
{
	struct hsmcard_key_unwrap uw;
	struct hsm_sqe sqe = {};
	int ret;

	if (copy_from_user(&uw, argp, sizeof(uw)))
		return -EFAULT;
	if ((uw.flags & ~HSMCARD_WRAP_FLAGS_ALL) || uw.rsvd0 || uw.rsvd1 ||
	    uw.rsvd[0] || uw.rsvd[1] || !hsm_kwp_mech_ok(uw.mech))
		return -EINVAL;
	ret = hsm_check_attrs_in(&uw.attrs, part,
				 uw.flags & HSMCARD_WRAP_ATTRS);
	if (ret)
		return ret;
	if (uw.len < HSM_KWP_MIN || uw.len % HSM_KWP_ALIGN)
		return -EINVAL;
	if (uw.len > hsm_xfer_max(hdev) - sizeof(struct hsm_key_attrs))
		return -E2BIG;
	if (!uw.blob)
		return -EFAULT;
	if (hsm_check_user_handle(uw.kek, part))
		return -ENOKEY;
	sqe.opcode = HSM_ADM_KEY_UNWRAP;
	sqe.mech = cpu_to_le16(uw.mech);
	sqe.handle = cpu_to_le64(uw.kek);
	if (uw.flags & HSMCARD_WRAP_ATTRS)
		sqe.cdw[2] = cpu_to_le32(HSM_WRAP_F_ATTRS);
	ret = hsm_key_create(hdev, &sqe, &uw.attrs, u64_to_user_ptr(uw.blob),
			     uw.len);
	if (ret)
		return ret;
	return copy_to_user(argp, &uw, sizeof(uw)) ? -EFAULT : 0;
}

static int hsm_ioc_key_list(struct hsm_dev *hdev, void __user *argp,
			    u32 part)
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
	sqe.cdw[0] = cpu_to_le32(part);
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

static int hsm_ioc_key_attrs(struct hsm_dev *hdev, void __user *argp,
			     u32 part)
{
	struct hsmcard_key_get_attrs ga;
	int ret;

	if (copy_from_user(&ga, argp, sizeof(ga)))
		return -EFAULT;
	if (ga.flags || ga.rsvd)
		return -EINVAL;
	ret = hsm_check_user_handle(ga.handle, part);
	if (ret)
		return ret;
	ret = hsm_get_attrs(hdev, ga.handle, &ga.attrs);
	if (ret)
		return ret;
	return copy_to_user(argp, &ga, sizeof(ga)) ? -EFAULT : 0;
}

static int hsm_ioc_key_pubkey(struct hsm_dev *hdev, void __user *argp,
			      u32 part)
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
	ret = hsm_check_user_handle(pk.handle, part);
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

static int hsm_ioc_key_destroy(struct hsm_dev *hdev, void __user *argp,
			       u32 part)
{
	struct hsmcard_key_handle kh;
	struct hsm_sqe sqe = {};
	int ret;

	if (copy_from_user(&kh, argp, sizeof(kh)))
		return -EFAULT;
	if (kh.flags || kh.rsvd)
		return -EINVAL;
	if (hsm_check_user_handle(kh.handle, part))
		return -ENOKEY;
	sqe.opcode = HSM_ADM_KEY_DESTROY;
	sqe.handle = cpu_to_le64(kh.handle);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, NULL, NULL));
	if (!ret)
		hsm_genl_event(hdev, HSMCARD_EVENT_KEY_DESTROYED, kh.handle);
	return ret;
}

/* ---- key lifecycle ---- */

static int hsm_ioc_key_set_state(struct hsm_dev *hdev, void __user *argp,
				 u32 part)
{
	struct hsmcard_key_set_state ks;
	struct hsm_sqe sqe = {};
	u64 result = 0;
	int ret;

	if (copy_from_user(&ks, argp, sizeof(ks)))
		return -EFAULT;
	if (ks.flags || ks.rsvd || ks.old_state)
		return -EINVAL;
	if (ks.state < HSMCARD_KEY_STATE_PRE_ACTIVE ||
	    ks.state > HSMCARD_KEY_STATE_COMPROMISED)
		return -EINVAL;
	if (hsm_check_user_handle(ks.handle, part))
		return -ENOKEY;
	sqe.opcode = HSM_ADM_KEY_SET_STATE;
	sqe.handle = cpu_to_le64(ks.handle);
	sqe.cdw[0] = cpu_to_le32(ks.state);
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, NULL, &result));
	if (ret)
		return ret;
	hsm_genl_event(hdev, HSMCARD_EVENT_KEY_STATE, ks.handle);
	if (result < HSMCARD_KEY_STATE_PRE_ACTIVE ||
	    result > HSMCARD_KEY_STATE_COMPROMISED)
		return -EIO;
	ks.old_state = result;
	return copy_to_user(argp, &ks, sizeof(ks)) ? -EFAULT : 0;
}

static int hsm_ioc_key_rotate(struct hsm_dev *hdev, void __user *argp,
			      u32 part)
{
	struct hsmcard_key_rotate kr;
	struct hsm_sqe sqe = {};
	struct hsm_buf src;
	u64 handle = 0;
	int ret;

	if (copy_from_user(&kr, argp, sizeof(kr)))
		return -EFAULT;
	if (kr.flags || kr.rsvd || !hsm_key_id_ok(kr.id, kr.id_len))
		return -EINVAL;
	if (hsm_check_user_handle(kr.handle, part))
		return -ENOKEY;
	sqe.opcode = HSM_ADM_KEY_ROTATE;
	sqe.handle = cpu_to_le64(kr.handle);
	if (kr.id_len) {
		/* the new version's ID: HSM_KEY_ID_LEN bytes, zero padded */
		ret = hsm_buf_alloc(&src, &hdev->pdev->dev, HSM_KEY_ID_LEN,
				    DMA_TO_DEVICE);
		if (ret)
			return ret;
		hsm_buf_copy_from_kernel(&src, 0, kr.id, HSM_KEY_ID_LEN);
		sqe.cdw[0] = cpu_to_le32(HSM_ROTATE_F_ID);
		sqe.cdw[1] = cpu_to_le32(kr.id_len);
		ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, &src, NULL,
					 &handle));
		hsm_buf_free(&src);
	} else {
		ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, NULL, NULL,
					 &handle));
	}
	if (ret)
		return ret;
	hsm_genl_event(hdev, HSMCARD_EVENT_KEY_CREATED, handle);
	hsm_genl_event(hdev, HSMCARD_EVENT_KEY_STATE, kr.handle);
	/* The new version lives where the old one did. */
	if (!handle || HSM_HANDLE_PART(handle) != part) {
		dev_err_ratelimited(&hdev->pdev->dev,
				    "key rotation returned handle %#llx\n",
				    handle);
		return -EIO;
	}
	ret = hsm_get_attrs(hdev, handle, &kr.attrs);
	if (ret)
		return ret;
	return copy_to_user(argp, &kr, sizeof(kr)) ? -EFAULT : 0;
}

static int hsm_ioc_key_find(struct hsm_dev *hdev, void __user *argp,
			    u32 part)
{
	struct hsmcard_key_find kf;
	struct hsm_sqe sqe = {};
	struct hsm_buf src;
	u64 handle = 0;
	int ret;

	if (copy_from_user(&kf, argp, sizeof(kf)))
		return -EFAULT;
	if ((kf.flags & ~HSMCARD_FIND_F_ALL) || kf.rsvd0 || kf.rsvd)
		return -EINVAL;
	if (kf.flags & HSMCARD_FIND_F_ID) {
		/* by key ID: the label fields stay empty */
		if (!kf.id_len || !hsm_key_id_ok(kf.id, kf.id_len) ||
		    kf.version || memchr_inv(kf.label, 0, sizeof(kf.label)))
			return -EINVAL;
	} else {
		if (kf.id_len || memchr_inv(kf.id, 0, sizeof(kf.id)))
			return -EINVAL;
		ret = hsm_check_label(kf.label);
		if (ret)
			return ret;
		if (!kf.label[0])
			return -EINVAL;
	}
	ret = hsm_buf_alloc(&src, &hdev->pdev->dev,
			    kf.id_len ? HSM_KEY_ID_LEN : HSM_LABEL_LEN,
			    DMA_TO_DEVICE);
	if (ret)
		return ret;
	sqe.opcode = HSM_ADM_KEY_FIND;
	sqe.cdw[0] = cpu_to_le32(part);
	if (kf.id_len) {
		hsm_buf_copy_from_kernel(&src, 0, kf.id, HSM_KEY_ID_LEN);
		sqe.cdw[1] = cpu_to_le32(kf.id_len);
		sqe.cdw[2] = cpu_to_le32(HSM_FIND_BY_ID);
	} else {
		hsm_buf_copy_from_kernel(&src, 0, kf.label, HSM_LABEL_LEN);
		sqe.cdw[1] = cpu_to_le32(kf.version);
	}
	ret = hsm_errno(hsm_exec(&hdev->adminq, &sqe, &src, NULL, &handle));
	hsm_buf_free(&src);
	if (ret)
		return ret;
	if (!handle || HSM_HANDLE_PART(handle) != part) {
		dev_err_ratelimited(&hdev->pdev->dev,
				    "key find returned handle %#llx\n", handle);
		return -EIO;
	}
	ret = hsm_get_attrs(hdev, handle, &kf.attrs);
	if (ret)
		return ret;
	return copy_to_user(argp, &kf, sizeof(kf)) ? -EFAULT : 0;
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
	if (!hsm_key_id_ok(tk.attrs.id, tk.attrs.id_len))
		return -EIO;
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
			const struct hsmcard_op *op, u32 part)
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
	if ((d->props & HSM_OPF_KEY) && hsm_check_user_handle(op->handle, part))
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

static int hsm_ioc_op(struct hsm_session *sess, void __user *argp,
		      const struct hsm_op_desc *d)
{
	struct hsm_dev *hdev = sess->hdev;
	struct hsmcard_op __user *uop = argp;
	struct device *dev = &hdev->pdev->dev;
	bool out_in = d->props & HSM_OPF_OUT_IN;
	struct hsm_buf src, dst;
	struct hsm_sqe sqe = {};
	struct hsmcard_op op;
	u64 result = 0;
	u32 part = 0;
	u32 cap;
	int ret;

	if (copy_from_user(&op, argp, sizeof(op)))
		return -EFAULT;
	if (d->props & HSM_OPF_KEY) {
		ret = hsm_sess_keys(sess, &part);
		if (ret)
			return ret;
	}
	ret = hsm_check_op(hdev, d, &op, part);
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
	struct hsm_session *sess;

	sess = kzalloc(sizeof(*sess), GFP_KERNEL);
	if (!sess)
		return -ENOMEM;
	mutex_init(&sess->lock);
	sess->role = HSM_ROLE_NONE;
	/* misc_open() holds misc_mtx: the device cannot be unregistered. */
	kref_get(&hdev->kref);
	sess->hdev = hdev;
	file->private_data = sess;
	return nonseekable_open(inode, file);
}

static int hsm_release(struct inode *inode, struct file *file)
{
	struct hsm_session *sess = file->private_data;

	hsm_dev_put(sess->hdev);
	mutex_destroy(&sess->lock);
	kfree(sess);
	return 0;
}

/* Ioctls that name or create keys: the file's partition first. */
static long hsm_ioctl_keys(struct hsm_session *sess, unsigned int cmd,
			   void __user *argp)
{
	struct hsm_dev *hdev = sess->hdev;
	u32 part;
	int ret;

	ret = hsm_sess_keys(sess, &part);
	if (ret)
		return ret;
	switch (cmd) {
	case HSMCARD_IOC_KEY_GENERATE:
		return hsm_ioc_key_generate(hdev, argp, part);
	case HSMCARD_IOC_KEY_IMPORT:
		return hsm_ioc_key_import(hdev, argp, part);
	case HSMCARD_IOC_KEY_LIST:
		return hsm_ioc_key_list(hdev, argp, part);
	case HSMCARD_IOC_KEY_ATTRS:
		return hsm_ioc_key_attrs(hdev, argp, part);
	case HSMCARD_IOC_KEY_PUBKEY:
		return hsm_ioc_key_pubkey(hdev, argp, part);
	case HSMCARD_IOC_KEY_WRAP:
		return hsm_ioc_key_wrap(hdev, argp, part);
	case HSMCARD_IOC_KEY_UNWRAP:
		return hsm_ioc_key_unwrap(hdev, argp, part);
	case HSMCARD_IOC_KEY_SET_STATE:
		return hsm_ioc_key_set_state(hdev, argp, part);
	case HSMCARD_IOC_KEY_ROTATE:
		return hsm_ioc_key_rotate(hdev, argp, part);
	case HSMCARD_IOC_KEY_FIND:
		return hsm_ioc_key_find(hdev, argp, part);
	default:
		return hsm_ioc_key_destroy(hdev, argp, part);
	}
}

static int hsm_ioc_ring_setup(struct hsm_session *sess, void __user *argp)
{
	u32 part;

	/* The ring keeps the partition the file may use now. */
	if (hsm_sess_keys(sess, &part))
		part = HSM_RING_NO_KEYS;
	return hsm_ring_setup(sess->hdev, argp, part);
}

static long hsm_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct hsm_session *sess = file->private_data;
	struct hsm_dev *hdev = sess->hdev;
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
	case HSMCARD_IOC_KEY_IMPORT:
	case HSMCARD_IOC_KEY_LIST:
	case HSMCARD_IOC_KEY_ATTRS:
	case HSMCARD_IOC_KEY_PUBKEY:
	case HSMCARD_IOC_KEY_DESTROY:
	case HSMCARD_IOC_KEY_WRAP:
	case HSMCARD_IOC_KEY_UNWRAP:
	case HSMCARD_IOC_KEY_SET_STATE:
	case HSMCARD_IOC_KEY_ROTATE:
	case HSMCARD_IOC_KEY_FIND:
		ret = hsm_ioctl_keys(sess, cmd, argp);
		break;
	case HSMCARD_IOC_ENCRYPT:
		ret = hsm_ioc_op(sess, argp, &hsm_op_encrypt);
		break;
	case HSMCARD_IOC_DECRYPT:
		ret = hsm_ioc_op(sess, argp, &hsm_op_decrypt);
		break;
	case HSMCARD_IOC_DIGEST:
		ret = hsm_ioc_op(sess, argp, &hsm_op_digest);
		break;
	case HSMCARD_IOC_MAC:
		ret = hsm_ioc_op(sess, argp, &hsm_op_mac);
		break;
	case HSMCARD_IOC_MAC_VERIFY:
		ret = hsm_ioc_op(sess, argp, &hsm_op_mac_verify);
		break;
	case HSMCARD_IOC_SIGN:
		ret = hsm_ioc_op(sess, argp, &hsm_op_sign);
		break;
	case HSMCARD_IOC_VERIFY:
		ret = hsm_ioc_op(sess, argp, &hsm_op_verify);
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
		ret = hsm_ioc_ring_setup(sess, argp);
		break;
	case HSMCARD_IOC_LOGIN:
		ret = hsm_ioc_login(sess, argp);
		break;
	case HSMCARD_IOC_LOGOUT:
		ret = hsm_ioc_logout(sess, arg);
		break;
	case HSMCARD_IOC_SET_PIN:
		ret = hsm_ioc_set_pin(sess, argp);
		break;
	case HSMCARD_IOC_PART_INFO:
		ret = hsm_ioc_part_info(sess, argp);
		break;
	case HSMCARD_IOC_PART_CREATE:
		ret = hsm_ioc_part_admin(sess, argp, HSM_ADM_PART_CREATE);
		break;
	case HSMCARD_IOC_PART_DELETE:
		ret = hsm_ioc_part_admin(sess, argp, HSM_ADM_PART_DELETE);
		break;
	case HSMCARD_IOC_CARD_INIT:
		ret = hsm_ioc_part_admin(sess, argp, HSM_ADM_CARD_INIT);
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
