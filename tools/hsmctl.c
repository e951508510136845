// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmctl - manage and use hsmcard PCIe HSMs from the command line.
 *
 * The file has three layers:
 *
 *   1. the device backend (hsmdev_*): the only code that knows how a request
 *      reaches the card (today: ioctls on /dev/hsmcardN, see uapi/hsmcard.h);
 *   2. helpers: files, hex, JSON, names of mechanisms, key types and uses;
 *   3. the commands (cmd_*), which only talk to the backend API.
 *
 * Exit status: 0 success, 1 the operation ran and said "no" (signature or
 * MAC mismatch, authentication tag failure), 2 usage error, 3 device or card
 * error, 4 local file error.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <poll.h>

#include <hsmcard.h>

#define HSMCTL_VERSION	"1.0"

enum {
	EX_OK		= 0,
	EX_FAIL		= 1,	/* verification said no */
	EX_USAGE	= 2,
	EX_DEVICE	= 3,
	EX_FILE		= 4,
};

static const char *progname = "hsmctl";

static void __attribute__((format(printf, 1, 2)))
err_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ======================================================================
 * 1. Device backend
 *
 * Everything below this line up to "2. Helpers" is the only code that
 * knows the transport.  Functions return 0 or a negative errno; on failure
 * errno-style codes carry the card's verdict (see Documentation/hsmcard/
 * uapi.rst for the mapping of card statuses to errnos).
 * ======================================================================
 */

#define HSMDEV_LABEL_LEN	64

struct hsmdev {
	int fd;
	char path[PATH_MAX];
};

/* One card as the system lists it (strings empty when unknown). */
struct hsmdev_card {
	char path[32];
	char pci[32];
	char serial[64];
	char fw_rev[32];
	char state[32];
	char queues[16];
};

struct hsmdev_info {
	char serial[33];
	char model[33];
	char fw_rev[17];
	uint8_t card_id[16];
	uint32_t max_ioq;
	uint32_t max_qsize;
	uint32_t max_xfer;
	uint32_t max_sge;
	uint32_t max_keys;
	uint32_t nr_keys;
	uint32_t nr_queues;
	uint32_t nr_partitions;
	uint32_t key_types;
	uint64_t mechs;
	uint32_t state;
};

struct hsmdev_key_attrs {
	uint64_t handle;
	uint32_t type;
	uint32_t bits;
	uint32_t uses;
	uint32_t flags;
	uint32_t partition;
	uint64_t created;
	uint32_t state;
	uint32_t version;
	uint64_t activated;
	uint64_t deactivated;
	char label[HSMDEV_LABEL_LEN + 1];
	uint32_t id_len;		/* 0: no key ID */
	uint8_t id[HSMCARD_KEY_ID_LEN];
};

enum hsmdev_opcode {
	HSMDEV_OP_ENCRYPT,
	HSMDEV_OP_DECRYPT,
	HSMDEV_OP_SIGN,
	HSMDEV_OP_VERIFY,
	HSMDEV_OP_DIGEST,
	HSMDEV_OP_MAC,
	HSMDEV_OP_MAC_VERIFY,
};

/*
 * One single-shot operation.  @in is the message (for GCM: the data, with
 * the AAD separate); @out receives the result (capacity @out_len, bytes
 * produced written back), or holds the signature/MAC to check for the
 * verify operations.  @out_len is set to the size needed when the call
 * fails with -ENOSPC and the transport reports it.
 */
struct hsmdev_op {
	uint64_t handle;
	uint32_t mech;
	uint32_t mparam;
	uint32_t aux;
	uint32_t flags;		/* HSMDEV_OPF_* */
	const uint8_t *iv;
	size_t iv_len;
	const uint8_t *aad;
	size_t aad_len;
	const uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len;
};

#define HSMDEV_OPF_PREHASHED	(1u << 0)

static int hsmdev_open(struct hsmdev *d, const char *path)
{
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->fd = open(path, O_RDWR | O_CLOEXEC);
	return d->fd < 0 ? -errno : 0;
}

static void hsmdev_close(struct hsmdev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* Read a one-line sysfs attribute; "" if absent. */
static void sysfs_read(const char *dir, const char *attr, char *buf,
		       size_t size)
{
	char path[PATH_MAX];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(buf, (int)size, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static int cmp_card(const void *a, const void *b)
{
	const char *x = ((const struct hsmdev_card *)a)->path;
	const char *y = ((const struct hsmdev_card *)b)->path;
	size_t lx = strlen(x), ly = strlen(y);

	/* hsmcard2 before hsmcard10 */
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

/*
 * The cards present (/dev/hsmcardN) with the driver's sysfs view of each,
 * in a new array sorted by device number.  Opens no device.
 */
static int hsmdev_enumerate(struct hsmdev_card **cardsp, size_t *np)
{
	struct hsmdev_card *cards = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir = opendir("/dev");

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		const char *p = de->d_name;
		char sysdir[PATH_MAX], link[PATH_MAX], *bdf;
		struct hsmdev_card *c;
		ssize_t len;

		if (strncmp(p, "hsmcard", 7) || !p[7] || strlen(p) > 16 ||
		    strspn(p + 7, "0123456789") != strlen(p + 7))
			continue;
		if (n == cap) {
			struct hsmdev_card *nc;

			nc = realloc(cards, (cap + 8) * sizeof(*cards));
			if (!nc) {
				free(cards);
				closedir(dir);
				return -ENOMEM;
			}
			cards = nc;
			cap += 8;
		}
		c = &cards[n++];
		memset(c, 0, sizeof(*c));
		snprintf(c->path, sizeof(c->path), "/dev/%s", p);
		snprintf(sysdir, sizeof(sysdir), "/sys/class/misc/%s/device",
			 p);
		len = readlink(sysdir, link, sizeof(link) - 1);
		link[len > 0 ? len : 0] = '\0';
		bdf = strrchr(link, '/');
		snprintf(c->pci, sizeof(c->pci), "%.31s", bdf ? bdf + 1 : link);
		sysfs_read(sysdir, "serial", c->serial, sizeof(c->serial));
		sysfs_read(sysdir, "firmware_version", c->fw_rev,
			   sizeof(c->fw_rev));
		sysfs_read(sysdir, "state", c->state, sizeof(c->state));
		sysfs_read(sysdir, "queue_count", c->queues, sizeof(c->queues));
	}
	closedir(dir);
	if (n)
		qsort(cards, n, sizeof(*cards), cmp_card);
	*cardsp = cards;
	*np = n;
	return 0;
}

static int hsmdev_ioctl(struct hsmdev *d, unsigned long req, void *arg)
{
	int ret;

	do {
		ret = ioctl(d->fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

static const char *hsmdev_state_name(uint32_t state)
{
	switch (state) {
	case HSMCARD_STATE_LIVE:
		return "live";
	case HSMCARD_STATE_RESETTING:
		return "resetting";
	case HSMCARD_STATE_TAMPERED:
		return "tampered";
	case HSMCARD_STATE_DEAD:
		return "dead";
	default:
		return "unknown";
	}
}

/* Copy a fixed-size, possibly unterminated string field. */
static void copy_str(char *dst, size_t dst_size, const char *src,
		     size_t src_size)
{
	size_t n = strnlen(src, src_size);

	if (n >= dst_size)
		n = dst_size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int hsmdev_info(struct hsmdev *d, struct hsmdev_info *info)
{
	struct hsmcard_info ci = { };
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_INFO, &ci);

	if (ret)
		return ret;
	memset(info, 0, sizeof(*info));
	copy_str(info->serial, sizeof(info->serial), ci.serial,
		 sizeof(ci.serial));
	copy_str(info->model, sizeof(info->model), ci.model, sizeof(ci.model));
	copy_str(info->fw_rev, sizeof(info->fw_rev), ci.fw_version,
		 sizeof(ci.fw_version));
	memcpy(info->card_id, ci.card_id, sizeof(info->card_id));
	info->max_ioq = ci.max_ioq;
	info->max_qsize = ci.max_qsize;
	info->max_xfer = ci.max_xfer;
	info->max_sge = ci.max_sge;
	info->max_keys = ci.max_keys;
	info->nr_keys = ci.nr_keys;
	info->nr_queues = ci.nr_queues;
	info->nr_partitions = ci.nr_partitions;
	info->key_types = ci.key_types;
	info->mechs = ci.mechs;
	info->state = ci.state;
	return 0;
}

static void attrs_from_uapi(struct hsmdev_key_attrs *a,
			    const struct hsmcard_key_attrs *k)
{
	memset(a, 0, sizeof(*a));
	a->handle = k->handle;
	a->type = k->type;
	a->bits = k->bits;
	a->uses = k->uses;
	a->flags = k->flags;
	a->partition = k->partition;
	a->created = k->created;
	a->state = k->state;
	a->version = k->version;
	a->activated = k->activated;
	a->deactivated = k->deactivated;
	copy_str(a->label, sizeof(a->label), k->label, sizeof(k->label));
	/* the driver checked the length; clamp anyway */
	a->id_len = k->id_len <= sizeof(a->id) ? k->id_len : sizeof(a->id);
	memcpy(a->id, k->id, a->id_len);
}

static void attrs_to_uapi(struct hsmcard_key_attrs *k,
			  const struct hsmdev_key_attrs *a)
{
	memset(k, 0, sizeof(*k));
	k->type = (__u16)a->type;
	k->bits = (__u16)a->bits;
	k->uses = a->uses;
	k->flags = a->flags;
	k->partition = HSMCARD_PARTITION_USER;
	/* NUL padded (memset above), always NUL terminated */
	memcpy(k->label, a->label,
	       strnlen(a->label, sizeof(k->label) - 1));
	k->id_len = (__u16)a->id_len;
	memcpy(k->id, a->id, a->id_len);
}

static int hsmdev_keygen(struct hsmdev *d, const struct hsmdev_key_attrs *a,
			 uint64_t *handle)
{
	struct hsmcard_key_attrs k;
	int ret;

	attrs_to_uapi(&k, a);
	ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_GENERATE, &k);
	if (!ret)
		*handle = k.handle;
	return ret;
}

static int hsmdev_import(struct hsmdev *d, const struct hsmdev_key_attrs *a,
			 const uint8_t *key, size_t key_len, uint64_t *handle)
{
	struct hsmcard_key_import ki = { };
	int ret;

	if (key_len > UINT32_MAX)
		return -E2BIG;
	attrs_to_uapi(&ki.attrs, a);
	ki.key = (uintptr_t)key;
	ki.key_len = (__u32)key_len;
	ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_IMPORT, &ki);
	if (!ret)
		*handle = ki.attrs.handle;
	return ret;
}

/* All handles of the user partition, in a new array. */
static int hsmdev_key_list(struct hsmdev *d, uint64_t **handlesp, size_t *np)
{
	uint64_t *all = NULL;
	size_t n = 0, cap = 0;
	struct hsmcard_key_list kl = { };
	int ret;

	for (;;) {
		if (cap - n < 64) {
			uint64_t *na = realloc(all, (cap + 256) * sizeof(*all));

			if (!na) {
				free(all);
				return -ENOMEM;
			}
			all = na;
			cap += 256;
		}
		kl.handles = (uintptr_t)(all + n);
		kl.max = (__u32)(cap - n);
		kl.count = 0;
		ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_LIST, &kl);
		if (ret) {
			free(all);
			return ret;
		}
		if (kl.count > cap - n) {	/* never trust a count */
			free(all);
			return -EPROTO;
		}
		n += kl.count;
		if (!kl.count || kl.cursor >= kl.total)
			break;
	}
	*handlesp = all;
	*np = n;
	return 0;
}

static int hsmdev_key_attrs(struct hsmdev *d, uint64_t handle,
			    struct hsmdev_key_attrs *a)
{
	struct hsmcard_key_get_attrs ga = { .handle = handle };
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_ATTRS, &ga);

	if (!ret)
		attrs_from_uapi(a, &ga.attrs);
	return ret;
}

static int hsmdev_key_set_state(struct hsmdev *d, uint64_t handle,
				uint32_t state, uint32_t *old_state)
{
	struct hsmcard_key_set_state ks = { .handle = handle, .state = state };
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_SET_STATE, &ks);

	if (!ret)
		*old_state = ks.old_state;
	return ret;
}

/* @id_len 0: the new version has no key ID. */
static int hsmdev_key_rotate(struct hsmdev *d, uint64_t handle,
			     const uint8_t *id, size_t id_len,
			     struct hsmdev_key_attrs *a)
{
	struct hsmcard_key_rotate kr = { .handle = handle };
	int ret;

	if (id_len > sizeof(kr.id))
		return -EINVAL;
	kr.id_len = (__u16)id_len;
	memcpy(kr.id, id, id_len);
	ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_ROTATE, &kr);
	if (!ret)
		attrs_from_uapi(a, &kr.attrs);
	return ret;
}

static int hsmdev_key_find_id(struct hsmdev *d, const uint8_t *id,
			      size_t id_len, struct hsmdev_key_attrs *a)
{
	struct hsmcard_key_find kf = { .flags = HSMCARD_FIND_F_ID };
	int ret;

	if (!id_len || id_len > sizeof(kf.id))
		return -EINVAL;
	kf.id_len = (__u16)id_len;
	memcpy(kf.id, id, id_len);
	ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_FIND, &kf);
	if (!ret)
		attrs_from_uapi(a, &kf.attrs);
	return ret;
}

static int hsmdev_key_find(struct hsmdev *d, const char *label,
			   uint32_t version, struct hsmdev_key_attrs *a)
{
	struct hsmcard_key_find kf = { .version = version };
	int ret;

	memcpy(kf.label, label, strnlen(label, sizeof(kf.label) - 1));
	ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_FIND, &kf);
	if (!ret)
		attrs_from_uapi(a, &kf.attrs);
	return ret;
}

static int hsmdev_export_pub(struct hsmdev *d, uint64_t handle, uint8_t *buf,
			     size_t *len)
{
	struct hsmcard_key_pubkey kp = {
		.handle = handle,
		.buf = (uintptr_t)buf,
		.len = *len > UINT32_MAX ? UINT32_MAX : (__u32)*len,
	};
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_PUBKEY, &kp);

	if (!ret && kp.len > *len)
		return -EPROTO;
	if (!ret || ret == -ENOSPC)
		*len = kp.len;
	return ret;
}

/*
 * RFC 5649 blob of key @handle under @kek, with HSMCARD_WRAP_ATTRS in
 * @flags also of its attributes; *len: capacity in, bytes out.
 */
static int hsmdev_wrap(struct hsmdev *d, uint64_t handle, uint64_t kek,
		       uint32_t flags, uint8_t *buf, size_t *len)
{
	struct hsmcard_key_wrap kw = {
		.handle = handle,
		.kek = kek,
		.flags = flags,
		.mech = HSMCARD_MECH_AES_KWP,
		.blob = (uintptr_t)buf,
		.len = *len > UINT32_MAX ? UINT32_MAX : (__u32)*len,
	};
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_WRAP, &kw);

	if (!ret && kw.len > *len)
		return -EPROTO;
	if (!ret || ret == -ENOSPC)
		*len = kw.len;
	return ret;
}

/*
 * A new key with attributes @a from a blob wrapped under @kek; with
 * HSMCARD_WRAP_ATTRS in @flags the blob's attributes, which @a may only
 * narrow.
 */
static int hsmdev_unwrap(struct hsmdev *d, const struct hsmdev_key_attrs *a,
			 uint64_t kek, uint32_t flags, const uint8_t *blob,
			 size_t len, uint64_t *handle)
{
	struct hsmcard_key_unwrap ku = { };
	int ret;

	if (len > UINT32_MAX)
		return -E2BIG;
	attrs_to_uapi(&ku.attrs, a);
	ku.kek = kek;
	ku.flags = flags;
	ku.mech = HSMCARD_MECH_AES_KWP;
	ku.blob = (uintptr_t)blob;
	ku.len = (__u32)len;
	ret = hsmdev_ioctl(d, HSMCARD_IOC_KEY_UNWRAP, &ku);
	if (!ret)
		*handle = ku.attrs.handle;
	return ret;
}

static int hsmdev_destroy(struct hsmdev *d, uint64_t handle)
{
	struct hsmcard_key_handle kh = { .handle = handle };

	return hsmdev_ioctl(d, HSMCARD_IOC_KEY_DESTROY, &kh);
}

static int hsmdev_random(struct hsmdev *d, uint8_t *buf, size_t len)
{
	struct hsmcard_random r = {
		.buf = (uintptr_t)buf,
		.len = (__u32)len,
	};

	if (len > UINT32_MAX)
		return -E2BIG;
	return hsmdev_ioctl(d, HSMCARD_IOC_RANDOM, &r);
}

#define HSMDEV_TOKEN_SIZE	HSMCARD_TOKEN_SIZE

/*
 * Key tokens: a persistent AES key generated in the kernel's partition for
 * the token-keyed ciphers (dm-crypt's xts(paes), cbc(paes)), named by an
 * opaque token of HSMDEV_TOKEN_SIZE bytes.
 */
static int hsmdev_token_create(struct hsmdev *d, uint32_t bits,
			       const char *label, uint8_t *token,
			       uint64_t *handle)
{
	struct hsmcard_token_create tc = { .bits = bits };
	int ret;

	/* NUL padded (initialiser), always NUL terminated */
	if (label)
		memcpy(tc.label, label, strnlen(label, sizeof(tc.label) - 1));
	ret = hsmdev_ioctl(d, HSMCARD_IOC_TOKEN_CREATE, &tc);
	if (!ret) {
		memcpy(token, tc.token, HSMDEV_TOKEN_SIZE);
		*handle = tc.handle;
	}
	return ret;
}

static int hsmdev_token_info(struct hsmdev *d, const uint8_t *token,
			     struct hsmdev_key_attrs *a)
{
	struct hsmcard_token tk = { };
	int ret;

	memcpy(tk.token, token, HSMDEV_TOKEN_SIZE);
	ret = hsmdev_ioctl(d, HSMCARD_IOC_TOKEN_INFO, &tk);
	if (!ret)
		attrs_from_uapi(a, &tk.attrs);
	return ret;
}

static int hsmdev_token_destroy(struct hsmdev *d, const uint8_t *token)
{
	struct hsmcard_token tk = { };

	memcpy(tk.token, token, HSMDEV_TOKEN_SIZE);
	return hsmdev_ioctl(d, HSMCARD_IOC_TOKEN_DESTROY, &tk);
}

static int hsmdev_op(struct hsmdev *d, enum hsmdev_opcode opc,
		     struct hsmdev_op *o)
{
	static const unsigned long reqs[] = {
		[HSMDEV_OP_ENCRYPT]	= HSMCARD_IOC_ENCRYPT,
		[HSMDEV_OP_DECRYPT]	= HSMCARD_IOC_DECRYPT,
		[HSMDEV_OP_SIGN]	= HSMCARD_IOC_SIGN,
		[HSMDEV_OP_VERIFY]	= HSMCARD_IOC_VERIFY,
		[HSMDEV_OP_DIGEST]	= HSMCARD_IOC_DIGEST,
		[HSMDEV_OP_MAC]		= HSMCARD_IOC_MAC,
		[HSMDEV_OP_MAC_VERIFY]	= HSMCARD_IOC_MAC_VERIFY,
	};
	struct hsmcard_op op = {
		.handle = o->handle,
		.mech = (__u16)o->mech,
		.mparam = (__u16)o->mparam,
		.salt_len = o->aux,
	};
	uint8_t *in = (uint8_t *)o->in;
	size_t in_len = o->in_len;
	int ret;

	if (o->iv_len > sizeof(op.iv) || o->out_len > UINT32_MAX)
		return -EINVAL;
	if (o->flags & HSMDEV_OPF_PREHASHED)
		op.flags |= HSMCARD_OP_F_PREHASHED;
	if (o->iv_len)
		memcpy(op.iv, o->iv, o->iv_len);
	if (o->aad_len) {
		/* The ioctl takes AAD || data in one buffer. */
		if (o->aad_len > UINT32_MAX - o->in_len)
			return -E2BIG;
		in_len = o->aad_len + o->in_len;
		in = malloc(in_len);
		if (!in)
			return -ENOMEM;
		memcpy(in, o->aad, o->aad_len);
		if (o->in_len)
			memcpy(in + o->aad_len, o->in, o->in_len);
		op.aad_len = (__u32)o->aad_len;
	}
	if (in_len > UINT32_MAX) {
		ret = -E2BIG;
		goto out;
	}
	op.in = (uintptr_t)in;
	op.in_len = (__u32)in_len;
	op.out = (uintptr_t)o->out;
	op.out_len = (__u32)o->out_len;
	ret = hsmdev_ioctl(d, reqs[opc], &op);
	if (!ret && opc != HSMDEV_OP_VERIFY && opc != HSMDEV_OP_MAC_VERIFY &&
	    op.out_len > o->out_len)
		ret = -EPROTO;
	else if (!ret || ret == -ENOSPC)
		o->out_len = op.out_len;
out:
	if (in != o->in)
		free(in);
	return ret;
}

/* The card's audit log: records are passed on in the card's format. */
#define HSMDEV_AUDIT_REC_SIZE	HSMCARD_AUDIT_REC_SIZE

struct hsmdev_audit_hdr {
	uint64_t first_seq;
	uint64_t next_seq;
	uint64_t last_seq;
	uint64_t oldest_seq;
	uint32_t count;
	uint32_t flags;		/* HSMCARD_AUDIT_F_* */
};

/* Up to @max records from @seq on into @recs. */
static int hsmdev_audit_read(struct hsmdev *d, uint64_t seq,
			     struct hsmcard_audit_rec *recs, uint32_t max,
			     struct hsmdev_audit_hdr *h)
{
	struct hsmcard_audit_read ar = {
		.seq = seq, .buf = (uintptr_t)recs,
		.len = max * HSMDEV_AUDIT_REC_SIZE,
	};
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_AUDIT_READ, &ar);

	if (ret)
		return ret;
	if (ar.count > max)
		return -EIO;
	h->first_seq = ar.first_seq;
	h->next_seq = ar.next_seq;
	h->last_seq = ar.last_seq;
	h->oldest_seq = ar.oldest_seq;
	h->count = ar.count;
	h->flags = ar.log_flags;
	return 0;
}

static int hsmdev_audit_pubkey(struct hsmdev *d, uint8_t *buf, size_t *len)
{
	struct hsmcard_audit_pubkey pk = {
		.buf = (uintptr_t)buf,
		.len = *len > UINT32_MAX ? UINT32_MAX : (uint32_t)*len,
	};
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_AUDIT_PUBKEY, &pk);

	if (ret)
		return ret;
	if (pk.len > *len)
		return -EIO;
	*len = pk.len;
	return 0;
}

static int hsmdev_audit_checkpoint(struct hsmdev *d, uint64_t *seq)
{
	struct hsmcard_audit_checkpoint cp = { };
	int ret = hsmdev_ioctl(d, HSMCARD_IOC_AUDIT_CHECKPOINT, &cp);

	if (!ret)
		*seq = cp.seq;
	return ret;
}

/* ======================================================================
 * 2. Helpers
 * ======================================================================
 */

#define HSMCTL_MAX_INPUT	(64u << 20)	/* refuse to slurp more than 64 MiB */

/* Read all of @path ("-" = stdin) into a new buffer. */
static int read_input(const char *path, uint8_t **bufp, size_t *lenp)
{
	bool is_stdin = !path || !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	size_t cap = 4096, len = 0;
	uint8_t *buf;

	if (!f) {
		err_msg("cannot open %s: %s", path, strerror(errno));
		return EX_FILE;
	}
	buf = malloc(cap);
	if (!buf)
		goto oom;
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *nb;

			if (cap >= HSMCTL_MAX_INPUT) {
				err_msg("%s: input larger than %u MiB",
					is_stdin ? "stdin" : path,
					HSMCTL_MAX_INPUT >> 20);
				free(buf);
				if (!is_stdin)
					fclose(f);
				return EX_FILE;
			}
			nb = realloc(buf, cap * 2);
			if (!nb)
				goto oom;
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		err_msg("cannot read %s: %s", is_stdin ? "stdin" : path,
			strerror(errno));
		free(buf);
		if (!is_stdin)
			fclose(f);
		return EX_FILE;
	}
	if (!is_stdin)
		fclose(f);
	*bufp = buf;
	*lenp = len;
	return EX_OK;
oom:
	err_msg("out of memory");
	free(buf);
	if (!is_stdin)
		fclose(f);
	return EX_FILE;
}

/* Write @len bytes to @path ("-" or NULL = stdout). */
static int write_output(const char *path, const void *buf, size_t len)
{
	bool is_stdout = !path || !strcmp(path, "-");
	FILE *f = is_stdout ? stdout : fopen(path, "wb");

	if (!f) {
		err_msg("cannot create %s: %s", path, strerror(errno));
		return EX_FILE;
	}
	if ((len && fwrite(buf, 1, len, f) != len) || fflush(f)) {
		err_msg("cannot write %s: %s", is_stdout ? "stdout" : path,
			strerror(errno));
		if (!is_stdout)
			fclose(f);
		return EX_FILE;
	}
	if (!is_stdout && fclose(f)) {
		err_msg("cannot write %s: %s", path, strerror(errno));
		return EX_FILE;
	}
	return EX_OK;
}

static void print_hex(FILE *f, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", buf[i]);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse a hex string (optional 0x, no separators) into a new buffer. */
static int parse_hex(const char *s, uint8_t **bufp, size_t *lenp)
{
	size_t n;
	uint8_t *buf;

	if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2))
		s += 2;
	n = strlen(s);
	if (n % 2)
		return -1;
	buf = malloc(n / 2 + 1);
	if (!buf)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(buf);
			return -1;
		}
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	*bufp = buf;
	*lenp = n / 2;
	return 0;
}

/*
 * --id HEX: a key ID of 1..HSMCARD_KEY_ID_LEN bytes into @id; *@len 0 if
 * the option was not given.
 */
static int parse_key_id(const char *s, uint8_t *id, uint32_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;

	*len = 0;
	if (!s)
		return 0;
	if (parse_hex(s, &buf, &n) || !n || n > HSMCARD_KEY_ID_LEN) {
		free(buf);
		err_msg("invalid key ID '%s' (expected 1..%d bytes in hex)", s,
			HSMCARD_KEY_ID_LEN);
		return -1;
	}
	memcpy(id, buf, n);
	*len = n;
	free(buf);
	return 0;
}

/* A key handle: hexadecimal, with or without 0x. */
static int parse_handle(const char *s, uint64_t *h)
{
	const char *p = s;
	char *end;

	if (!strncmp(p, "0x", 2) || !strncmp(p, "0X", 2))
		p += 2;
	if (!*p || strlen(p) > 16 || !isxdigit((unsigned char)*p))
		goto bad;
	errno = 0;
	*h = strtoull(p, &end, 16);
	if (errno || *end)
		goto bad;
	return 0;
bad:
	err_msg("invalid key handle '%s' (expected hex, e.g. 0x1a2b3c4d5e6f7081)",
		s);
	return -1;
}

static int parse_uint(const char *what, const char *s, unsigned long max,
		      unsigned long *v)
{
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		goto bad;
	*v = strtoul(s, &end, 0);
	if (errno || *end || *v > max)
		goto bad;
	return 0;
bad:
	err_msg("invalid %s '%s' (expected a number up to %lu)", what, s, max);
	return -1;
}

/* ---- JSON output (tiny emitter: objects, arrays, strings, numbers) ---- */

struct json {
	FILE *f;
	int depth;
	bool need_comma;
	bool compact;		/* one line per top-level value */
};

static void json_indent(struct json *j)
{
	if (j->compact) {
		if (j->depth)
			fputc(' ', j->f);
		return;
	}
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

static void json_sep(struct json *j)
{
	if (j->need_comma)
		fputc(',', j->f);
	if (j->depth)
		json_indent(j);
	j->need_comma = true;
}

static void json_str_raw(struct json *j, const char *s)
{
	fputc('"', j->f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(j->f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", j->f);
		else if (c == '\t')
			fputs("\\t", j->f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(j->f, "\\u%04x", c);
		else
			fputc(c, j->f);
	}
	fputc('"', j->f);
}

static void json_key(struct json *j, const char *key)
{
	json_sep(j);
	if (key) {
		json_str_raw(j, key);
		fputs(": ", j->f);
	}
}

static void json_open(struct json *j, const char *key, char c)
{
	json_key(j, key);
	fputc(c, j->f);
	j->depth++;
	j->need_comma = false;
}

static void json_close(struct json *j, char c)
{
	bool empty = !j->need_comma;

	j->depth--;
	if (!empty)
		json_indent(j);
	fputc(c, j->f);
	j->need_comma = true;
	if (!j->depth)
		fputc('\n', j->f);
}

static void json_string(struct json *j, const char *key, const char *val)
{
	json_key(j, key);
	json_str_raw(j, val);
}

static void json_u64(struct json *j, const char *key, uint64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%" PRIu64, val);
}

static void json_bool(struct json *j, const char *key, bool val)
{
	json_key(j, key);
	fputs(val ? "true" : "false", j->f);
}

static void json_hex(struct json *j, const char *key, const uint8_t *buf,
		     size_t len)
{
	json_key(j, key);
	fputc('"', j->f);
	print_hex(j->f, buf, len);
	fputc('"', j->f);
}

static void json_handle(struct json *j, const char *key, uint64_t h)
{
	char s[24];

	snprintf(s, sizeof(s), "0x%016" PRIx64, h);
	json_string(j, key, s);
}

/* ---- names ---- */

struct name_val {
	const char *name;
	uint32_t val;
};

static const struct name_val key_type_names[] = {
	{ "aes",	HSMCARD_KEY_AES },
	{ "hmac",	HSMCARD_KEY_HMAC },
	{ "rsa",	HSMCARD_KEY_RSA },
	{ "ec-p256",	HSMCARD_KEY_EC_P256 },
	{ "ec-p384",	HSMCARD_KEY_EC_P384 },
	{ "ed25519",	HSMCARD_KEY_ED25519 },
	{ }
};

static const struct name_val use_names[] = {
	{ "encrypt",	HSMCARD_USE_ENCRYPT },
	{ "decrypt",	HSMCARD_USE_DECRYPT },
	{ "sign",	HSMCARD_USE_SIGN },
	{ "verify",	HSMCARD_USE_VERIFY },
	{ "wrap",	HSMCARD_USE_WRAP },
	{ "unwrap",	HSMCARD_USE_UNWRAP },
	{ "derive",	HSMCARD_USE_DERIVE },
	{ }
};

static const struct name_val flag_names[] = {
	{ "extractable", HSMCARD_KEYF_EXTRACTABLE },
	{ "session",	HSMCARD_KEYF_SESSION },
	{ "persistent",	HSMCARD_KEYF_PERSISTENT },
	{ "sensitive",	HSMCARD_KEYF_SENSITIVE },
	{ }
};

static const char *name_of(const struct name_val *t, uint32_t val)
{
	for (; t->name; t++)
		if (t->val == val)
			return t->name;
	return NULL;
}

static const char *key_type_name(uint32_t type)
{
	const char *n = name_of(key_type_names, type);

	return n ? n : "unknown";
}

/* "sign,verify" for a bit mask; unknown bits as hex. */
static void mask_names(const struct name_val *t, uint32_t mask, char *buf,
		       size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (; t->name; t++) {
		if (!(mask & t->val))
			continue;
		off += snprintf(buf + off, size - off, "%s%s", off ? "," : "",
				t->name);
		mask &= ~t->val;
		if (off >= size)
			return;
	}
	if (mask)
		snprintf(buf + off, size - off, "%s0x%x", off ? "," : "", mask);
}

static void json_mask(struct json *j, const char *key,
		      const struct name_val *t, uint32_t mask)
{
	json_open(j, key, '[');
	for (; t->name; t++) {
		if (mask & t->val)
			json_string(j, NULL, t->name);
		mask &= ~t->val;
	}
	if (mask) {
		char s[16];

		snprintf(s, sizeof(s), "0x%x", mask);
		json_string(j, NULL, s);
	}
	json_close(j, ']');
}

static int parse_uses(const char *s, uint32_t *uses)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int ret = 0;

	if (!copy)
		return -1;
	*uses = 0;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		const struct name_val *t;

		if (!strcmp(tok, "all")) {
			*uses |= HSMCARD_USE_ALL;
			continue;
		}
		for (t = use_names; t->name; t++)
			if (!strcmp(tok, t->name))
				break;
		if (!t->name) {
			err_msg("unknown key use '%s' (known: encrypt, decrypt, sign, verify, wrap, unwrap, derive, all)",
				tok);
			ret = -1;
			break;
		}
		*uses |= t->val;
	}
	free(copy);
	if (!ret && !*uses) {
		err_msg("empty --uses list");
		ret = -1;
	}
	return ret;
}

/* ---- mechanisms ---- */

enum mech_class {
	MC_CIPHER,	/* encrypt/decrypt */
	MC_SIGN,	/* sign/verify */
	MC_MAC,		/* HMAC through sign/verify/mac */
	MC_DIGEST,
};

struct mech_desc {
	const char *name;
	uint32_t mech;
	enum mech_class cls;
	uint32_t iv_len;	/* required IV length, 0 = none */
	bool hashed;		/* takes --hash (mparam = hash mechanism) */
	uint32_t out_len;	/* digest/MAC size */
	const char *help;
};

static const struct mech_desc mechs[] = {
	{ "aes-ecb", HSMCARD_MECH_AES_ECB, MC_CIPHER, 0, false, 0,
	  "AES-ECB, length a multiple of 16" },
	{ "aes-cbc", HSMCARD_MECH_AES_CBC, MC_CIPHER, 16, false, 0,
	  "AES-CBC without padding, 16-byte IV" },
	{ "aes-ctr", HSMCARD_MECH_AES_CTR, MC_CIPHER, 16, false, 0,
	  "AES-CTR, 16-byte big-endian counter block" },
	{ "aes-xts", HSMCARD_MECH_AES_XTS, MC_CIPHER, 16, false, 0,
	  "AES-XTS, 16-byte tweak, length >= 16" },
	{ "aes-gcm", HSMCARD_MECH_AES_GCM, MC_CIPHER, 12, false, 0,
	  "AES-GCM, 12-byte nonce, output ciphertext||tag" },
	{ "rsa-oaep", HSMCARD_MECH_RSA_OAEP, MC_CIPHER, 0, true, 0,
	  "RSA-OAEP with MGF1 of the same hash" },
	{ "rsa-raw", HSMCARD_MECH_RSA_RAW, MC_CIPHER, 0, false, 0,
	  "RSA without padding, input as long as the modulus" },
	{ "rsa-pkcs1", HSMCARD_MECH_RSA_PKCS1, MC_SIGN, 0, true, 0,
	  "RSASSA-PKCS1-v1_5" },
	{ "rsa-pss", HSMCARD_MECH_RSA_PSS, MC_SIGN, 0, true, 0,
	  "RSASSA-PSS, MGF1 of the same hash" },
	{ "ecdsa", HSMCARD_MECH_ECDSA, MC_SIGN, 0, true, 0,
	  "ECDSA, DER-encoded signature" },
	{ "ed25519", HSMCARD_MECH_EDDSA, MC_SIGN, 0, false, 0,
	  "Ed25519 (pure), 64-byte signature" },
	{ "hmac-sha256", HSMCARD_MECH_HMAC_SHA256, MC_MAC, 0, false, 32,
	  "HMAC-SHA-256" },
	{ "hmac-sha384", HSMCARD_MECH_HMAC_SHA384, MC_MAC, 0, false, 48,
	  "HMAC-SHA-384" },
	{ "hmac-sha512", HSMCARD_MECH_HMAC_SHA512, MC_MAC, 0, false, 64,
	  "HMAC-SHA-512" },
	{ "sha256", HSMCARD_MECH_SHA256, MC_DIGEST, 0, false, 32, "SHA-256" },
	{ "sha384", HSMCARD_MECH_SHA384, MC_DIGEST, 0, false, 48, "SHA-384" },
	{ "sha512", HSMCARD_MECH_SHA512, MC_DIGEST, 0, false, 64, "SHA-512" },
	{ }
};

static const struct mech_desc *find_mech(const char *name)
{
	for (const struct mech_desc *m = mechs; m->name; m++)
		if (!strcmp(m->name, name))
			return m;
	if (!strcmp(name, "eddsa"))
		return find_mech("ed25519");
	return NULL;
}

static const struct mech_desc *find_mech_val(uint32_t mech)
{
	for (const struct mech_desc *m = mechs; m->name; m++)
		if (m->mech == mech)
			return m;
	return NULL;
}

static const struct mech_desc *lookup_mech(const char *name,
					   enum mech_class c1,
					   enum mech_class c2)
{
	const struct mech_desc *m = find_mech(name);

	if (!m || (m->cls != c1 && m->cls != c2)) {
		err_msg("%s mechanism '%s'; see 'hsmctl mechs'",
			m ? "unsuitable" : "unknown", name);
		return NULL;
	}
	return m;
}

/* Hashes usable as --hash, by digest mechanism. */
static int parse_hash(const char *s, uint32_t *mech)
{
	const struct mech_desc *m = find_mech(s);

	if (!m || m->cls != MC_DIGEST) {
		err_msg("unknown hash '%s' (sha256, sha384, sha512)", s);
		return -1;
	}
	*mech = m->mech;
	return 0;
}

static uint32_t digest_len(uint32_t hash_mech)
{
	const struct mech_desc *m = find_mech_val(hash_mech);

	return m ? m->out_len : 0;
}

/* errno from the backend -> message; EX_FAIL for a "no" from the card. */
static int dev_error(const char *what, int err)
{
	const char *why;

	err = -err;
	switch (err) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		why = "no such device, or the card is gone";
		break;
	case ENOKEY:
		why = "no such key handle";
		break;
	case EKEYREVOKED:
		why = "the role is locked after too many wrong PINs (its SO, or the admin, must set a new PIN)";
		break;
	case ENODATA:
		why = "the role has no PIN";
		break;
	case EACCES:
	case EPERM:
		why = "operation not permitted (key attributes or privileges)";
		break;
	case EBADMSG:
		why = "verification failed";
		break;
	case ENOSPC:
		why = "result buffer too small";
		break;
	case E2BIG:
		why = "data too large for the card";
		break;
	case EKEYREJECTED:
		why = "key type does not fit the mechanism";
		break;
	case EOPNOTSUPP:
		why = "mechanism or key type not supported by the card";
		break;
	case EDQUOT:
		why = "key store full";
		break;
	case EEXIST:
		why = "the label or the key ID is already used in the partition";
		break;
	case ETIMEDOUT:
		why = "the card did not answer (it is being reset)";
		break;
	case ENOTRECOVERABLE:
		why = "the card is tampered and zeroized; it must be re-initialised";
		break;
	case ECANCELED:
		why = "the command was aborted by a card reset";
		break;
	case EINVAL:
		why = "invalid argument (length, key size or field the card refused)";
		break;
	case EIO:
		why = "card I/O error";
		break;
	default:
		why = strerror(err);
		break;
	}
	err_msg("%s: %s (%s)", what, why, strerrorname_np(err) ?: "?");
	return err == EBADMSG ? EX_FAIL : EX_DEVICE;
}

/* ======================================================================
 * 3. Commands
 * ======================================================================
 */

/* Options; each command states which it accepts. */
enum opt_id {
	O_COUNT		= 'n',
	O_TIMEOUT	= 'T',
	O_DEVICE	= 'd',
	O_JSON		= 'j',
	O_HELP		= 'h',
	O_TYPE		= 't',
	O_BITS		= 'b',
	O_CURVE		= 'c',
	O_LABEL		= 'l',
	O_USES		= 'u',
	O_MECH		= 'm',
	O_HASH		= 'H',
	O_IN		= 'i',
	O_OUT		= 'o',
	O_SIG		= 's',
	O_EXTRACTABLE	= 256,
	O_SESSION,
	O_PERSISTENT,
	O_SENSITIVE,
	O_IV,
	O_AAD,
	O_AAD_FILE,
	O_TAG_LEN,
	O_SALT_LEN,
	O_PREHASHED,
	O_DER,
	O_RAW,
	O_FROM,
	O_CHECKPOINT,
	O_PARTITION,	/* global: log in before the command */
	O_ROLE,		/* global */
	O_PIN_FILE,	/* global */
	O_NEW_PIN_FILE,
	O_MAX_FAIL,
	O_AS,
	O_VERSION,
	O_KEK,
	O_ID,
};

struct opts {
	const char *device;
	bool json;
	const char *type;
	const char *bits;
	const char *curve;
	const char *label;
	const char *uses;
	const char *mech;
	const char *hash;
	const char *in;
	const char *out;
	const char *sig;
	const char *iv;
	const char *aad;
	const char *aad_file;
	const char *tag_len;
	const char *salt_len;
	const char *count;
	const char *timeout;
	const char *from;
	bool checkpoint;
	const char *partition;
	const char *role;
	const char *pin_file;
	const char *new_pin_file;
	const char *max_fail;
	const char *as;
	const char *version;
	const char *kek;
	const char *id;
	uint32_t keyflags;
	bool prehashed;
	bool der;
	bool raw;
	int argc;		/* positional arguments */
	char **argv;
};

static const struct option long_opts[] = {
	{ "device",	required_argument, NULL, O_DEVICE },
	{ "json",	no_argument,	   NULL, O_JSON },
	{ "help",	no_argument,	   NULL, O_HELP },
	{ "type",	required_argument, NULL, O_TYPE },
	{ "bits",	required_argument, NULL, O_BITS },
	{ "curve",	required_argument, NULL, O_CURVE },
	{ "label",	required_argument, NULL, O_LABEL },
	{ "version",	required_argument, NULL, O_VERSION },
	{ "uses",	required_argument, NULL, O_USES },
	{ "mech",	required_argument, NULL, O_MECH },
	{ "hash",	required_argument, NULL, O_HASH },
	{ "in",		required_argument, NULL, O_IN },
	{ "out",	required_argument, NULL, O_OUT },
	{ "sig",	required_argument, NULL, O_SIG },
	{ "extractable", no_argument,	   NULL, O_EXTRACTABLE },
	{ "session",	no_argument,	   NULL, O_SESSION },
	{ "persistent",	no_argument,	   NULL, O_PERSISTENT },
	{ "sensitive",	no_argument,	   NULL, O_SENSITIVE },
	{ "iv",		required_argument, NULL, O_IV },
	{ "aad",	required_argument, NULL, O_AAD },
	{ "aad-file",	required_argument, NULL, O_AAD_FILE },
	{ "tag-len",	required_argument, NULL, O_TAG_LEN },
	{ "salt-len",	required_argument, NULL, O_SALT_LEN },
	{ "prehashed",	no_argument,	   NULL, O_PREHASHED },
	{ "der",	no_argument,	   NULL, O_DER },
	{ "raw",	no_argument,	   NULL, O_RAW },
	{ "count",	required_argument, NULL, O_COUNT },
	{ "timeout",	required_argument, NULL, O_TIMEOUT },
	{ "from",	required_argument, NULL, O_FROM },
	{ "checkpoint",	no_argument,	   NULL, O_CHECKPOINT },
	{ "partition",	required_argument, NULL, O_PARTITION },
	{ "role",	required_argument, NULL, O_ROLE },
	{ "pin-file",	required_argument, NULL, O_PIN_FILE },
	{ "new-pin-file", required_argument, NULL, O_NEW_PIN_FILE },
	{ "max-fail",	required_argument, NULL, O_MAX_FAIL },
	{ "as",		required_argument, NULL, O_AS },
	{ "kek",	required_argument, NULL, O_KEK },
	{ "id",		required_argument, NULL, O_ID },
	{ }
};

struct command {
	const char *name;
	int (*fn)(const struct opts *o);
	const char *args;	/* positional synopsis */
	const char *summary;
	const char *help;	/* option help, one per line */
	const char *shortopts;	/* short options accepted besides -d -j -h */
	int min_args, max_args;
	uint64_t longmask;	/* long-only options accepted */
};

static const struct command *find_command(const char *name);
static void command_usage(FILE *f, const struct command *c);

static const char *default_device(const struct opts *o)
{
	const char *env = getenv("HSMCARD_DEVICE");

	if (o->device)
		return o->device;
	return env && *env ? env : "/dev/hsmcard0";
}

/* ---- PINs, roles, login ---- */

static const char *const role_names[] = {
	[HSMCARD_ROLE_SO] = "so",
	[HSMCARD_ROLE_USER] = "user",
	[HSMCARD_ROLE_ADMIN] = "admin",
};

static int parse_role(const char *s, uint16_t *role)
{
	for (uint16_t r = HSMCARD_ROLE_SO; r <= HSMCARD_ROLE_ADMIN; r++) {
		if (!strcmp(s, role_names[r])) {
			*role = r;
			return 0;
		}
	}
	err_msg("invalid role '%s' (expected so, user or admin)", s);
	return -1;
}

static int parse_partition(const char *s, uint32_t *part)
{
	unsigned long v;

	if (parse_uint("partition", s, HSMCARD_NR_PARTITIONS_MAX - 1, &v))
		return -1;
	*part = v;
	return 0;
}

/*
 * A PIN from @file, else from the environment variable @env.  PINs never
 * come from the command line: other users can read it (ps, /proc) and
 * shells keep it in their history.  One trailing newline of the file is
 * dropped.  Returns EX_OK, EX_USAGE (none, or a bad length) or EX_FILE.
 * With @optional, no PIN at all gives EX_OK and *@len = 0.
 */
static int get_pin(const char *file, const char *env, uint8_t pin[HSMCARD_PIN_MAX],
		   uint16_t *len, bool optional)
{
	const char *e = getenv(env);
	uint8_t *buf = NULL;
	size_t n;
	int ret;

	memset(pin, 0, HSMCARD_PIN_MAX);
	*len = 0;
	if (file) {
		ret = read_input(file, &buf, &n);
		if (ret)
			return ret;
		if (n && buf[n - 1] == '\n')
			n--;
	} else if (e && *e) {
		n = strlen(e);
	} else if (optional) {
		return EX_OK;
	} else {
		err_msg("no PIN: set $%s or use a PIN file option", env);
		return EX_USAGE;
	}
	if (n < HSMCARD_PIN_MIN || n > HSMCARD_PIN_MAX) {
		err_msg("a PIN has %u to %u bytes", HSMCARD_PIN_MIN,
			HSMCARD_PIN_MAX);
		if (buf) {
			explicit_bzero(buf, n);
			free(buf);
		}
		return EX_USAGE;
	}
	memcpy(pin, buf ? (const char *)buf : e, n);
	*len = n;
	if (buf) {
		explicit_bzero(buf, n);
		free(buf);
	}
	return EX_OK;
}

/* Report a refused PIN; 1 for a wrong or locked PIN, else 3. */
static int pin_error(const char *what, int err, uint32_t tries_left)
{
	if (err == -EACCES) {
		err_msg("%s: wrong PIN (%u tries left before the role locks)",
			what, tries_left);
		return EX_FAIL;
	}
	if (err == -EKEYREVOKED) {
		dev_error(what, err);
		return EX_FAIL;
	}
	return dev_error(what, err);
}

/* Log @d in as --role of --partition with the PIN of $HSMCARD_PIN. */
static int do_login(const struct opts *o, struct hsmdev *d)
{
	struct hsmcard_login lg = { };
	uint32_t part = 0;
	int ret;

	if (!o->role) {
		if (o->partition)
			err_msg("--partition needs --role");
		return o->partition ? EX_USAGE : EX_OK;
	}
	if (parse_role(o->role, &lg.role) ||
	    (o->partition && parse_partition(o->partition, &part)))
		return EX_USAGE;
	lg.partition = part;
	ret = get_pin(o->pin_file, "HSMCARD_PIN", lg.pin, &lg.pin_len, false);
	if (ret)
		return ret;
	ret = hsmdev_ioctl(d, HSMCARD_IOC_LOGIN, &lg);
	explicit_bzero(&lg.pin, sizeof(lg.pin));
	if (ret)
		return pin_error("login", ret, lg.tries_left);
	return EX_OK;
}

static int open_dev_nologin(const struct opts *o, struct hsmdev *d)
{
	const char *path = default_device(o);
	int ret = hsmdev_open(d, path);

	if (ret) {
		err_msg("cannot open %s: %s", path, strerror(-ret));
		return EX_DEVICE;
	}
	return EX_OK;
}

/* Open the card, logged in if --role was given. */
static int open_dev(const struct opts *o, struct hsmdev *d)
{
	int ret = open_dev_nologin(o, d);

	if (ret)
		return ret;
	ret = do_login(o, d);
	if (ret)
		hsmdev_close(d);
	return ret;
}

/* ---- list ---- */

static int cmd_list(const struct opts *o)
{
	struct json j = { .f = stdout };
	struct hsmdev_card *cards;
	size_t n;
	int ret;

	ret = hsmdev_enumerate(&cards, &n);
	if (ret) {
		err_msg("cannot list the cards: %s", strerror(-ret));
		return EX_FILE;
	}
	if (o->json)
		json_open(&j, NULL, '[');
	else if (n)
		printf("%-16s %-14s %-18s %-8s %-9s %s\n", "DEVICE", "PCI",
		       "SERIAL", "FW", "STATE", "QUEUES");
	else
		fprintf(stderr, "no hsmcard devices found\n");

	for (size_t i = 0; i < n; i++) {
		const struct hsmdev_card *c = &cards[i];

		if (o->json) {
			json_open(&j, NULL, '{');
			json_string(&j, "device", c->path);
			json_string(&j, "pci", c->pci);
			json_string(&j, "serial", c->serial);
			json_string(&j, "firmware_version", c->fw_rev);
			json_string(&j, "state", c->state);
			json_u64(&j, "queue_count", strtoul(c->queues, NULL, 10));
			json_close(&j, '}');
		} else {
			printf("%-16s %-14s %-18s %-8s %-9s %s\n", c->path,
			       *c->pci ? c->pci : "-",
			       *c->serial ? c->serial : "-",
			       *c->fw_rev ? c->fw_rev : "-",
			       *c->state ? c->state : "-",
			       *c->queues ? c->queues : "-");
		}
	}
	if (o->json)
		json_close(&j, ']');
	free(cards);
	return EX_OK;
}

/* ---- info ---- */

static int cmd_info(const struct opts *o)
{
	struct hsmdev d;
	struct hsmdev_info in;
	struct json j = { .f = stdout };
	char types[128] = "", mlist[512] = "";
	size_t off = 0;
	int ret;

	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_info(&d, &in);
	hsmdev_close(&d);
	if (ret)
		return dev_error("info", ret);

	for (const struct name_val *t = key_type_names; t->name; t++)
		if (in.key_types & (1u << t->val))
			off += snprintf(types + off, sizeof(types) - off,
					"%s%s", off ? "," : "", t->name);
	off = 0;
	for (const struct mech_desc *m = mechs; m->name; m++)
		if (m->mech < 64 && (in.mechs & (1ull << m->mech)))
			off += snprintf(mlist + off, sizeof(mlist) - off,
					"%s%s", off ? "," : "", m->name);

	if (o->json) {
		json_open(&j, NULL, '{');
		json_string(&j, "device", d.path);
		json_string(&j, "serial", in.serial);
		json_string(&j, "model", in.model);
		json_string(&j, "firmware_version", in.fw_rev);
		json_hex(&j, "card_id", in.card_id, sizeof(in.card_id));
		json_string(&j, "state", hsmdev_state_name(in.state));
		json_u64(&j, "queue_count", in.nr_queues);
		json_u64(&j, "max_queues", in.max_ioq);
		json_u64(&j, "max_queue_size", in.max_qsize);
		json_u64(&j, "max_transfer", in.max_xfer);
		json_u64(&j, "max_sge", in.max_sge);
		json_u64(&j, "max_keys", in.max_keys);
		json_u64(&j, "keys", in.nr_keys);
		json_u64(&j, "partitions", in.nr_partitions);
		json_open(&j, "key_types", '[');
		for (const struct name_val *t = key_type_names; t->name; t++)
			if (in.key_types & (1u << t->val))
				json_string(&j, NULL, t->name);
		json_close(&j, ']');
		json_open(&j, "mechanisms", '[');
		for (const struct mech_desc *m = mechs; m->name; m++)
			if (m->mech < 64 && (in.mechs & (1ull << m->mech)))
				json_string(&j, NULL, m->name);
		json_close(&j, ']');
		json_close(&j, '}');
		return EX_OK;
	}
	printf("Device:           %s\n", d.path);
	printf("Model:            %s\n", in.model);
	printf("Serial:           %s\n", in.serial);
	printf("Firmware:         %s\n", in.fw_rev);
	printf("Card ID:          ");
	print_hex(stdout, in.card_id, sizeof(in.card_id));
	printf("\nState:            %s\n", hsmdev_state_name(in.state));
	printf("I/O queues:       %u in use, %u supported, %u entries max\n",
	       in.nr_queues, in.max_ioq, in.max_qsize);
	printf("Max transfer:     %u bytes, %u SG entries\n", in.max_xfer,
	       in.max_sge);
	printf("Keys:             %u of %u\n", in.nr_keys, in.max_keys);
	printf("Partitions:       %u\n", in.nr_partitions);
	printf("Key types:        %s\n", types);
	printf("Mechanisms:       %s\n", mlist);
	return EX_OK;
}

/* ---- keygen ---- */

/* A new key's handle: {"handle": ...} with --json, else the bare handle. */
static void print_handle(const struct opts *o, uint64_t handle)
{
	if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_handle(&j, "handle", handle);
		json_close(&j, '}');
	} else {
		printf("0x%016" PRIx64 "\n", handle);
	}
}

static int cmd_keygen(const struct opts *o)
{
	struct hsmdev_key_attrs a = { };
	struct hsmdev d;
	unsigned long bits = 0, want;
	const char *t = o->type;
	int ret;

	if (o->bits && parse_uint("key size", o->bits, 65535, &bits))
		return EX_USAGE;
	if (!strcmp(t, "aes")) {
		a.type = HSMCARD_KEY_AES;
		a.bits = bits ? bits : 256;
	} else if (!strcmp(t, "hmac")) {
		a.type = HSMCARD_KEY_HMAC;
		a.bits = bits ? bits : 256;
	} else if (!strcmp(t, "rsa")) {
		a.type = HSMCARD_KEY_RSA;
		a.bits = bits ? bits : 2048;
	} else if (!strcmp(t, "ec") || !strcmp(t, "ecdsa")) {
		const char *c = o->curve;

		if (!c)
			c = bits == 384 ? "p384" : "p256";
		if (!strcmp(c, "p256") || !strcmp(c, "prime256v1") ||
		    !strcmp(c, "secp256r1")) {
			a.type = HSMCARD_KEY_EC_P256;
			want = 256;
		} else if (!strcmp(c, "p384") || !strcmp(c, "secp384r1")) {
			a.type = HSMCARD_KEY_EC_P384;
			want = 384;
		} else {
			err_msg("unknown curve '%s' (p256, p384)", c);
			return EX_USAGE;
		}
		if (bits && bits != want) {
			err_msg("--bits %lu does not match curve %s", bits, c);
			return EX_USAGE;
		}
	} else if (!strcmp(t, "ed25519")) {
		a.type = HSMCARD_KEY_ED25519;
		if (bits && bits != 256) {
			err_msg("Ed25519 keys have 256 bits");
			return EX_USAGE;
		}
	} else {
		err_msg("unknown key type '%s' (aes, hmac, rsa, ec, ed25519)",
			t);
		return EX_USAGE;
	}
	if (o->curve && a.type != HSMCARD_KEY_EC_P256 &&
	    a.type != HSMCARD_KEY_EC_P384) {
		err_msg("--curve only applies to EC keys");
		return EX_USAGE;
	}
	if (o->uses && parse_uses(o->uses, &a.uses))
		return EX_USAGE;
	a.flags = o->keyflags;
	if (o->label) {
		if (strlen(o->label) >= HSMDEV_LABEL_LEN) {
			err_msg("label longer than %d characters",
				HSMDEV_LABEL_LEN - 1);
			return EX_USAGE;
		}
		snprintf(a.label, sizeof(a.label), "%s", o->label);
	}
	if (parse_key_id(o->id, a.id, &a.id_len))
		return EX_USAGE;

	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_keygen(&d, &a, &a.handle);
	hsmdev_close(&d);
	if (ret)
		return dev_error("keygen", ret);
	print_handle(o, a.handle);
	return EX_OK;
}

/* ---- keys, attrs ---- */

static void format_time(uint64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !gmtime_r(&tt, &tm) ||
	    !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "-");
}

static const char *const key_state_names[] = {
	[HSMCARD_KEY_STATE_PRE_ACTIVE] = "pre-active",
	[HSMCARD_KEY_STATE_ACTIVE] = "active",
	[HSMCARD_KEY_STATE_DEACTIVATED] = "deactivated",
	[HSMCARD_KEY_STATE_COMPROMISED] = "compromised",
};

static const char *key_state_name(uint32_t state)
{
	if (state < sizeof(key_state_names) / sizeof(key_state_names[0]) &&
	    key_state_names[state])
		return key_state_names[state];
	return "unknown";
}

/* "active", "deactivated" or "compromised" (what KEY_SET_STATE takes). */
static int parse_key_state(const char *s, uint32_t *state)
{
	for (uint32_t i = HSMCARD_KEY_STATE_ACTIVE;
	     i <= HSMCARD_KEY_STATE_COMPROMISED; i++)
		if (!strcmp(s, key_state_names[i])) {
			*state = i;
			return 0;
		}
	err_msg("unknown key state '%s' (active, deactivated, compromised)",
		s);
	return -1;
}

static void json_key_attrs(struct json *j, const struct hsmdev_key_attrs *a)
{
	char when[32];

	format_time(a->created, when, sizeof(when));
	json_open(j, NULL, '{');
	json_handle(j, "handle", a->handle);
	json_string(j, "type", key_type_name(a->type));
	json_u64(j, "bits", a->bits);
	json_mask(j, "uses", use_names, a->uses);
	json_mask(j, "flags", flag_names, a->flags);
	json_u64(j, "partition", a->partition);
	json_u64(j, "created", a->created);
	json_string(j, "created_utc", when);
	json_string(j, "state", key_state_name(a->state));
	json_u64(j, "version", a->version);
	json_u64(j, "activated", a->activated);
	json_u64(j, "deactivated", a->deactivated);
	json_string(j, "label", a->label);
	json_hex(j, "id", a->id, a->id_len);
	json_close(j, '}');
}

/* A key ID in hex, or "-" without one, into @buf (2 * 32 + 1 bytes). */
static const char *key_id_str(const struct hsmdev_key_attrs *a, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t i;

	if (!a->id_len)
		return "-";
	for (i = 0; i < a->id_len && i < HSMCARD_KEY_ID_LEN; i++) {
		buf[2 * i] = hex[a->id[i] >> 4];
		buf[2 * i + 1] = hex[a->id[i] & 15];
	}
	buf[2 * i] = 0;
	return buf;
}

static int cmd_keys(const struct opts *o)
{
	struct json j = { .f = stdout };
	struct hsmdev d;
	uint64_t *handles = NULL;
	size_t n = 0;
	int ret;

	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_key_list(&d, &handles, &n);
	if (ret) {
		hsmdev_close(&d);
		return dev_error("key list", ret);
	}
	if (o->json)
		json_open(&j, NULL, '[');
	else if (n)
		printf("%-18s %-8s %5s  %-26s %-20s %-11s %4s %s %s\n",
		       "HANDLE", "TYPE", "BITS", "USES", "FLAGS", "STATE",
		       "VER", "ID", "LABEL");
	else
		fprintf(stderr, "no keys\n");
	for (size_t i = 0; i < n; i++) {
		struct hsmdev_key_attrs a;
		char uses[96], flags[96], id[2 * HSMCARD_KEY_ID_LEN + 1];

		ret = hsmdev_key_attrs(&d, handles[i], &a);
		if (ret == -ENOKEY)	/* destroyed meanwhile */
			continue;
		if (ret) {
			ret = dev_error("key attributes", ret);
			goto out;
		}
		if (o->json) {
			json_key_attrs(&j, &a);
			continue;
		}
		mask_names(use_names, a.uses, uses, sizeof(uses));
		mask_names(flag_names, a.flags, flags, sizeof(flags));
		printf("0x%016" PRIx64 " %-8s %5u  %-26s %-20s %-11s %4u %s %s\n",
		       a.handle, key_type_name(a.type), a.bits, uses,
		       *flags ? flags : "-", key_state_name(a.state),
		       a.version, key_id_str(&a, id), a.label);
	}
	if (o->json)
		json_close(&j, ']');
	ret = EX_OK;
out:
	free(handles);
	hsmdev_close(&d);
	return ret;
}

static int cmd_attrs(const struct opts *o)
{
	struct hsmdev_key_attrs a;
	struct hsmdev d;
	uint64_t h;
	char uses[96], flags[96], when[32], id[2 * HSMCARD_KEY_ID_LEN + 1];
	int ret;

	if (parse_handle(o->argv[0], &h))
		return EX_USAGE;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_key_attrs(&d, h, &a);
	hsmdev_close(&d);
	if (ret)
		return dev_error(o->argv[0], ret);
	if (o->json) {
		struct json j = { .f = stdout };

		json_key_attrs(&j, &a);
		return EX_OK;
	}
	mask_names(use_names, a.uses, uses, sizeof(uses));
	mask_names(flag_names, a.flags, flags, sizeof(flags));
	format_time(a.created, when, sizeof(when));
	printf("Handle:     0x%016" PRIx64 "\n", a.handle);
	printf("Type:       %s\n", key_type_name(a.type));
	printf("Bits:       %u\n", a.bits);
	printf("Uses:       %s\n", uses);
	printf("Flags:      %s\n", *flags ? flags : "-");
	printf("Partition:  %u\n", a.partition);
	printf("Created:    %s\n", when);
	printf("State:      %s\n", key_state_name(a.state));
	printf("Version:    %u\n", a.version);
	format_time(a.activated, when, sizeof(when));
	printf("Activated:  %s\n", a.activated ? when : "-");
	format_time(a.deactivated, when, sizeof(when));
	printf("Deactivated: %s\n", a.deactivated ? when : "-");
	printf("Label:      %s\n", a.label);
	printf("ID:         %s\n", key_id_str(&a, id));
	return EX_OK;
}

/* ---- key: lifecycle ---- */

static int key_print(const struct opts *o, const struct hsmdev_key_attrs *a)
{
	if (o->json) {
		struct json j = { .f = stdout };

		json_key_attrs(&j, a);
	} else {
		printf("0x%016" PRIx64 "\n", a->handle);
	}
	return EX_OK;
}

static int cmd_key_life(const struct opts *o)
{
	const char *act = o->argv[0];
	struct hsmdev_key_attrs a;
	uint32_t state = 0, old = 0, version = 0, id_len = 0;
	uint8_t id[HSMCARD_KEY_ID_LEN];
	struct hsmdev d;
	uint64_t h = 0;
	char *end;
	int ret;

	if (o->version) {
		errno = 0;
		version = strtoul(o->version, &end, 0);
		if (errno || !*o->version || *end || strchr(o->version, '-')) {
			err_msg("bad version '%s'", o->version);
			return EX_USAGE;
		}
	}
	if (parse_key_id(o->id, id, &id_len))
		return EX_USAGE;
	if (!strcmp(act, "state")) {
		if (o->argc != 3 || o->label || o->version || o->id) {
			err_msg("key state HANDLE active|deactivated|compromised");
			return EX_USAGE;
		}
		if (parse_handle(o->argv[1], &h) ||
		    parse_key_state(o->argv[2], &state))
			return EX_USAGE;
	} else if (!strcmp(act, "rotate")) {
		if ((o->argc == 2) == !!o->label || o->version) {
			err_msg("key rotate HANDLE|--label TEXT [--id HEX]");
			return EX_USAGE;
		}
		if (o->argc == 2 && parse_handle(o->argv[1], &h))
			return EX_USAGE;
	} else if (!strcmp(act, "find")) {
		if (o->argc != 1 || !o->label == !o->id ||
		    (o->id && o->version)) {
			err_msg("key find --label TEXT [--version N] | --id HEX");
			return EX_USAGE;
		}
	} else {
		err_msg("key: unknown action '%s' (state, rotate, find)", act);
		return EX_USAGE;
	}
	if (o->label && (!*o->label || strlen(o->label) >= HSMDEV_LABEL_LEN)) {
		err_msg("label must be 1..%d characters", HSMDEV_LABEL_LEN - 1);
		return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	if (o->label) {
		ret = hsmdev_key_find(&d, o->label, version, &a);
		if (ret) {
			hsmdev_close(&d);
			return dev_error(o->label, ret);
		}
		h = a.handle;
	} else if (!strcmp(act, "find")) {
		ret = hsmdev_key_find_id(&d, id, id_len, &a);
		hsmdev_close(&d);
		if (ret)
			return dev_error(o->id, ret);
		return key_print(o, &a);
	}
	if (!strcmp(act, "state")) {
		ret = hsmdev_key_set_state(&d, h, state, &old);
		hsmdev_close(&d);
		if (ret)
			return dev_error(o->argv[1], ret);
		if (o->json) {
			struct json j = { .f = stdout };

			json_open(&j, NULL, '{');
			json_handle(&j, "handle", h);
			json_string(&j, "old_state", key_state_name(old));
			json_string(&j, "state", key_state_name(state));
			json_close(&j, '}');
		} else {
			printf("0x%016" PRIx64 " %s -> %s\n", h,
			       key_state_name(old), key_state_name(state));
		}
		return EX_OK;
	}
	if (!strcmp(act, "rotate")) {
		ret = hsmdev_key_rotate(&d, h, id, id_len, &a);
		hsmdev_close(&d);
		if (ret)
			return dev_error("key rotate", ret);
		return key_print(o, &a);
	}
	hsmdev_close(&d);
	return key_print(o, &a);
}

static int cmd_destroy(const struct opts *o)
{
	struct hsmdev d;
	int ret, status = EX_OK;

	for (int i = 0; i < o->argc; i++) {
		uint64_t h;

		if (parse_handle(o->argv[i], &h))
			return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	for (int i = 0; i < o->argc; i++) {
		uint64_t h;

		parse_handle(o->argv[i], &h);
		ret = hsmdev_destroy(&d, h);
		if (ret)
			status = dev_error(o->argv[i], ret);
	}
	hsmdev_close(&d);
	return status;
}

/* ---- pubkey ---- */

static int cmd_pubkey(const struct opts *o)
{
	uint8_t der[8192];
	size_t len = sizeof(der);
	const unsigned char *p = der;
	struct hsmdev d;
	EVP_PKEY *pkey;
	BIO *bio;
	char *pem;
	long pem_len;
	uint64_t h;
	int ret;

	if (parse_handle(o->argv[0], &h))
		return EX_USAGE;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_export_pub(&d, h, der, &len);
	hsmdev_close(&d);
	if (ret)
		return dev_error(o->argv[0], ret);

	/* Never pass on what the card returned without parsing it. */
	pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (!pkey || p != der + len) {
		EVP_PKEY_free(pkey);
		err_msg("%s: the card returned a malformed public key",
			o->argv[0]);
		return EX_DEVICE;
	}
	if (o->der) {
		EVP_PKEY_free(pkey);
		return write_output(o->out, der, len);
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PUBKEY(bio, pkey)) {
		BIO_free(bio);
		EVP_PKEY_free(pkey);
		err_msg("PEM encoding failed");
		return EX_FILE;
	}
	EVP_PKEY_free(pkey);
	pem_len = BIO_get_mem_data(bio, &pem);
	ret = write_output(o->out, pem, (size_t)pem_len);
	BIO_free(bio);
	return ret;
}

/* ---- sign, verify, mac ---- */

/*
 * Pick the mechanism for @o on key @h: --mech if given, else the natural
 * one for the key type.  Fills @op's mech/mparam/aux.
 */
static int choose_mech(struct hsmdev *d, const struct opts *o, uint64_t h,
		       bool cipher, const struct mech_desc **mp,
		       struct hsmdev_op *op)
{
	const struct mech_desc *m = NULL;
	uint32_t hash = 0;
	uint32_t key_type = 0;

	if (o->mech) {
		m = cipher ? lookup_mech(o->mech, MC_CIPHER, MC_CIPHER) :
			     lookup_mech(o->mech, MC_SIGN, MC_MAC);
		if (!m)
			return EX_USAGE;
	}
	/* The key type picks the default mechanism and the default hash. */
	if (!m || (m->hashed && !o->hash)) {
		struct hsmdev_key_attrs a;
		int ret = hsmdev_key_attrs(d, h, &a);

		if (ret)
			return dev_error(o->argv[0], ret);
		key_type = a.type;
	}
	if (!m) {
		const char *name = NULL;

		switch (key_type) {
		case HSMCARD_KEY_AES:
			name = cipher ? "aes-gcm" : NULL;
			break;
		case HSMCARD_KEY_RSA:
			name = cipher ? "rsa-oaep" : "rsa-pkcs1";
			break;
		case HSMCARD_KEY_EC_P256:
		case HSMCARD_KEY_EC_P384:
			name = cipher ? NULL : "ecdsa";
			break;
		case HSMCARD_KEY_ED25519:
			name = cipher ? NULL : "ed25519";
			break;
		case HSMCARD_KEY_HMAC:
			name = cipher ? NULL : "hmac-sha256";
			break;
		}
		if (!name) {
			err_msg("%s: no default mechanism for a %s key here; use --mech",
				o->argv[0], key_type_name(key_type));
			return EX_USAGE;
		}
		m = find_mech(name);
	}

	if (o->hash) {
		if (!m->hashed) {
			err_msg("--hash does not apply to %s", m->name);
			return EX_USAGE;
		}
		if (parse_hash(o->hash, &hash))
			return EX_USAGE;
	} else if (m->hashed) {
		hash = key_type == HSMCARD_KEY_EC_P384 ? HSMCARD_MECH_SHA384 :
							 HSMCARD_MECH_SHA256;
	}
	op->mech = m->mech;
	op->mparam = hash;
	if (m->mech == HSMCARD_MECH_RSA_PSS) {
		unsigned long salt = digest_len(hash);

		if (o->salt_len &&
		    parse_uint("salt length", o->salt_len, 1024, &salt))
			return EX_USAGE;
		op->aux = (uint32_t)salt;
	} else if (o->salt_len) {
		err_msg("--salt-len only applies to rsa-pss");
		return EX_USAGE;
	}
	if (o->prehashed) {
		if (m->cls != MC_SIGN || m->mech == HSMCARD_MECH_EDDSA) {
			err_msg("--prehashed needs an RSA or ECDSA mechanism");
			return EX_USAGE;
		}
		op->flags |= HSMDEV_OPF_PREHASHED;
	}
	*mp = m;
	return EX_OK;
}

/* Run @opc, growing the output buffer once if the card asks for more. */
static int run_op(struct hsmdev *d, enum hsmdev_opcode opc,
		  struct hsmdev_op *op, size_t cap)
{
	int ret;

	for (int tries = 0; tries < 2; tries++) {
		op->out = malloc(cap ? cap : 1);
		if (!op->out)
			return -ENOMEM;
		op->out_len = cap;
		ret = hsmdev_op(d, opc, op);
		if (ret != -ENOSPC || op->out_len <= cap ||
		    op->out_len > HSMCTL_MAX_INPUT + 4096)
			break;
		cap = op->out_len;
		free(op->out);
		op->out = NULL;
	}
	if (ret) {
		free(op->out);
		op->out = NULL;
	}
	return ret;
}

static int cmd_sign(const struct opts *o)
{
	struct hsmdev_op op = { };
	const struct mech_desc *m;
	struct hsmdev d;
	uint8_t *in = NULL;
	size_t in_len;
	uint64_t h;
	int ret;

	if (parse_handle(o->argv[0], &h))
		return EX_USAGE;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = choose_mech(&d, o, h, false, &m, &op);
	if (ret)
		goto out;
	ret = read_input(o->in, &in, &in_len);
	if (ret)
		goto out;
	op.handle = h;
	op.in = in;
	op.in_len = in_len;
	ret = run_op(&d, m->cls == MC_MAC ? HSMDEV_OP_MAC : HSMDEV_OP_SIGN,
		     &op, 1024);
	if (ret) {
		ret = dev_error(o->argv[0], ret);
		goto out;
	}
	ret = write_output(o->out, op.out, op.out_len);
out:
	free(op.out);
	free(in);
	hsmdev_close(&d);
	return ret;
}

static int cmd_verify(const struct opts *o)
{
	struct hsmdev_op op = { };
	const struct mech_desc *m;
	struct hsmdev d;
	uint8_t *in = NULL, *sig = NULL;
	size_t in_len, sig_len;
	uint64_t h;
	int ret;

	if (parse_handle(o->argv[0], &h))
		return EX_USAGE;
	if ((!o->in || !strcmp(o->in, "-")) && !strcmp(o->sig, "-")) {
		err_msg("the message and the signature cannot both be stdin");
		return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = choose_mech(&d, o, h, false, &m, &op);
	if (ret)
		goto out;
	ret = read_input(o->sig, &sig, &sig_len);
	if (ret)
		goto out;
	ret = read_input(o->in, &in, &in_len);
	if (ret)
		goto out;
	op.handle = h;
	op.in = in;
	op.in_len = in_len;
	op.out = sig;
	op.out_len = sig_len;
	ret = hsmdev_op(&d, m->cls == MC_MAC ? HSMDEV_OP_MAC_VERIFY :
					       HSMDEV_OP_VERIFY, &op);
	if (ret && ret != -EBADMSG) {
		ret = dev_error(o->argv[0], ret);
		goto out;
	}
	if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_bool(&j, "valid", !ret);
		json_close(&j, '}');
	} else if (!ret) {
		printf("Verified OK\n");
	} else {
		printf("Verification FAILED\n");
	}
	ret = ret ? EX_FAIL : EX_OK;
out:
	free(sig);
	free(in);
	hsmdev_close(&d);
	return ret;
}

/* ---- encrypt, decrypt ---- */

static int do_crypt(const struct opts *o, bool enc)
{
	struct hsmdev_op op = { };
	const struct mech_desc *m;
	struct hsmdev d;
	uint8_t *in = NULL, *iv = NULL, *aad = NULL;
	size_t in_len, iv_len = 0, aad_len = 0;
	unsigned long tag_len = 16;
	uint64_t h;
	int ret;

	if (parse_handle(o->argv[0], &h))
		return EX_USAGE;
	if (o->aad && o->aad_file) {
		err_msg("--aad and --aad-file are exclusive");
		return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = choose_mech(&d, o, h, true, &m, &op);
	if (ret)
		goto out;
	ret = EX_USAGE;
	if (o->iv && parse_hex(o->iv, &iv, &iv_len)) {
		err_msg("invalid --iv (expected hex)");
		goto out;
	}
	if (m->iv_len && !o->iv) {
		err_msg("%s needs --iv with %u bytes in hex", m->name,
			m->iv_len);
		goto out;
	}
	if (iv && iv_len != m->iv_len) {
		if (!m->iv_len)
			err_msg("%s takes no IV", m->name);
		else
			err_msg("%s needs a %u-byte IV, got %zu", m->name,
				m->iv_len, iv_len);
		goto out;
	}
	if ((o->aad || o->aad_file || o->tag_len) &&
	    m->mech != HSMCARD_MECH_AES_GCM) {
		err_msg("--aad, --aad-file and --tag-len are for aes-gcm");
		goto out;
	}
	if (o->tag_len &&
	    (parse_uint("tag length", o->tag_len, 16, &tag_len) ||
	     tag_len < 4)) {
		err_msg("the GCM tag length is 4..16 bytes");
		goto out;
	}
	if (o->aad && parse_hex(o->aad, &aad, &aad_len)) {
		err_msg("invalid --aad (expected hex)");
		goto out;
	}
	if (o->aad_file) {
		ret = read_input(o->aad_file, &aad, &aad_len);
		if (ret)
			goto out;
	}
	ret = read_input(o->in, &in, &in_len);
	if (ret)
		goto out;

	op.handle = h;
	op.iv = iv;
	op.iv_len = iv_len;
	op.aad = aad;
	op.aad_len = aad_len;
	op.in = in;
	op.in_len = in_len;
	if (m->mech == HSMCARD_MECH_AES_GCM)
		op.mparam = (uint32_t)tag_len;
	ret = run_op(&d, enc ? HSMDEV_OP_ENCRYPT : HSMDEV_OP_DECRYPT, &op,
		     in_len + 1024);
	if (ret == -EBADMSG) {
		err_msg("%s: authentication failed: data or tag corrupt, or wrong key/IV/AAD",
			o->argv[0]);
		ret = EX_FAIL;
		goto out;
	}
	if (ret) {
		ret = dev_error(o->argv[0], ret);
		goto out;
	}
	ret = write_output(o->out, op.out, op.out_len);
out:
	free(op.out);
	free(in);
	free(iv);
	free(aad);
	hsmdev_close(&d);
	return ret;
}

static int cmd_encrypt(const struct opts *o)
{
	return do_crypt(o, true);
}

static int cmd_decrypt(const struct opts *o)
{
	return do_crypt(o, false);
}

/* ---- digest ---- */

static int cmd_digest(const struct opts *o)
{
	struct hsmdev_op op = { };
	const struct mech_desc *m;
	struct hsmdev d;
	uint8_t *in = NULL;
	size_t in_len;
	int ret;

	m = lookup_mech(o->mech ? o->mech : "sha256", MC_DIGEST, MC_DIGEST);
	if (!m)
		return EX_USAGE;
	ret = read_input(o->in, &in, &in_len);
	if (ret)
		return ret;
	ret = open_dev(o, &d);
	if (ret) {
		free(in);
		return ret;
	}
	op.mech = m->mech;
	op.in = in;
	op.in_len = in_len;
	ret = run_op(&d, HSMDEV_OP_DIGEST, &op, 64);
	hsmdev_close(&d);
	free(in);
	if (ret)
		return dev_error("digest", ret);
	if (op.out_len != m->out_len) {
		err_msg("digest: the card returned %zu bytes for %s", op.out_len,
			m->name);
		ret = EX_DEVICE;
	} else if (o->out) {
		ret = write_output(o->out, op.out, op.out_len);
	} else if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_string(&j, "mech", m->name);
		json_hex(&j, "digest", op.out, op.out_len);
		json_close(&j, '}');
	} else {
		print_hex(stdout, op.out, op.out_len);
		printf("  %s\n", o->in ? o->in : "-");
	}
	free(op.out);
	return ret;
}

/* ---- random ---- */

static int cmd_random(const struct opts *o)
{
	struct hsmdev_info info;
	unsigned long n;
	struct hsmdev d;
	size_t chunk;
	uint8_t *buf;
	int ret;

	if (parse_uint("byte count", o->argv[0], HSMCTL_MAX_INPUT, &n) || !n) {
		if (!n)
			err_msg("byte count must be at least 1");
		return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_info(&d, &info);
	if (ret) {
		hsmdev_close(&d);
		return dev_error("random", ret);
	}
	chunk = info.max_xfer ? info.max_xfer : 4096;
	buf = malloc(n);
	if (!buf) {
		hsmdev_close(&d);
		err_msg("out of memory");
		return EX_FILE;
	}
	for (size_t off = 0; off < n; off += chunk) {
		size_t len = n - off < chunk ? n - off : chunk;

		ret = hsmdev_random(&d, buf + off, len);
		if (ret)
			break;
	}
	hsmdev_close(&d);
	if (ret) {
		free(buf);
		return dev_error("random", ret);
	}
	if (o->out || o->raw) {
		ret = write_output(o->out, buf, n);
	} else if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_hex(&j, "random", buf, n);
		json_close(&j, '}');
	} else {
		print_hex(stdout, buf, n);
		putchar('\n');
	}
	free(buf);
	return ret;
}

/* ---- import ---- */

/* A private key file (PEM or DER, any format OpenSSL reads) to PKCS#8 DER. */
static int load_private_key(const uint8_t *buf, size_t len, int want_type,
			    uint8_t **derp, size_t *der_len, uint32_t *bits)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	const unsigned char *p = buf;
	PKCS8_PRIV_KEY_INFO *p8;
	EVP_PKEY *pkey = NULL;
	unsigned char *der = NULL;
	int der_n, ret = -1;

	if (!bio)
		return -1;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pkey)
		pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
	if (!pkey) {
		err_msg("cannot parse the private key (PEM or DER expected)");
		return -1;
	}
	switch (want_type) {
	case HSMCARD_KEY_RSA:
		ret = EVP_PKEY_is_a(pkey, "RSA") ? 0 : -1;
		break;
	case HSMCARD_KEY_EC_P256:
	case HSMCARD_KEY_EC_P384: {
		char group[32] = "";

		if (EVP_PKEY_is_a(pkey, "EC"))
			EVP_PKEY_get_utf8_string_param(pkey, "group", group,
						       sizeof(group), NULL);
		ret = !strcmp(group, want_type == HSMCARD_KEY_EC_P256 ?
				     "prime256v1" : "secp384r1") ? 0 : -1;
		break;
	}
	case HSMCARD_KEY_ED25519:
		ret = EVP_PKEY_is_a(pkey, "ED25519") ? 0 : -1;
		break;
	}
	if (ret) {
		err_msg("the private key is not of the requested type");
		goto out;
	}
	p8 = EVP_PKEY2PKCS8(pkey);
	der_n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (der_n <= 0) {
		err_msg("cannot encode the private key as PKCS#8");
		ret = -1;
		goto out;
	}
	*derp = der;
	*der_len = (size_t)der_n;
	*bits = want_type == HSMCARD_KEY_RSA ? (uint32_t)EVP_PKEY_get_bits(pkey) :
					       0;
out:
	EVP_PKEY_free(pkey);
	return ret;
}

static int cmd_import(const struct opts *o)
{
	struct hsmdev_key_attrs a = { };
	const struct name_val *t;
	uint8_t *buf = NULL, *der = NULL;
	size_t len, der_len = 0;
	struct hsmdev d;
	int ret;

	for (t = key_type_names; t->name; t++)
		if (!strcmp(t->name, o->type))
			break;
	if (!t->name) {
		err_msg("unknown key type '%s' (aes, hmac, rsa, ec-p256, ec-p384, ed25519)",
			o->type);
		return EX_USAGE;
	}
	a.type = t->val;
	if (o->uses && parse_uses(o->uses, &a.uses))
		return EX_USAGE;
	a.flags = o->keyflags;
	if (o->label) {
		if (strlen(o->label) >= HSMDEV_LABEL_LEN) {
			err_msg("label longer than %d characters",
				HSMDEV_LABEL_LEN - 1);
			return EX_USAGE;
		}
		snprintf(a.label, sizeof(a.label), "%s", o->label);
	}
	if (parse_key_id(o->id, a.id, &a.id_len))
		return EX_USAGE;
	ret = read_input(o->in, &buf, &len);
	if (ret)
		return ret;
	if (a.type == HSMCARD_KEY_AES || a.type == HSMCARD_KEY_HMAC) {
		if (!len || len > 8191) {
			err_msg("a secret key of %zu bytes makes no sense", len);
			ret = EX_USAGE;
			goto out;
		}
		a.bits = (uint32_t)len * 8;
	} else if (load_private_key(buf, len, (int)a.type, &der, &der_len,
				    &a.bits)) {
		ret = EX_USAGE;
		goto out;
	}
	ret = open_dev(o, &d);
	if (ret)
		goto out;
	ret = hsmdev_import(&d, &a, der ? der : buf, der ? der_len : len,
			    &a.handle);
	hsmdev_close(&d);
	if (ret) {
		ret = dev_error("import", ret);
		goto out;
	}
	print_handle(o, a.handle);
out:
	OPENSSL_clear_free(der, der_len);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return ret;
}

/* ---- key wrap / unwrap, backup, restore ---- */

/*
 * Backup file (Documentation/hsmcard/hsmctl.rst, "Backup file format"),
 * all integers little endian:
 *
 *   header:  magic "HSMCBKP\0" (8), version (le32, 2), count (le32)
 *   count records, each a 136-byte header and the blob:
 *     0 handle on the source card (le64)   8 created (le64)
 *    16 type (le16)  18 bits (le16)  20 uses (le32)  24 flags (le32)
 *    28 blob length (le32)  32 label (64 bytes, NUL padded)
 *    96 key ID length (le16, 0..32)  98 zero (6)
 *   104 key ID (32 bytes, zero padded)
 *   136 the RFC 5649 blob, made with HSMCARD_WRAP_ATTRS: the attributes
 *       inside are the ones restore gives the key; the header may only
 *       narrow them
 * Version 1 files (96-byte record headers, no key ID, blobs of the
 * material only, whose header attributes nothing authenticates) are still
 * restored.
 */
#define BACKUP_MAGIC		"HSMCBKP"	/* 8 bytes with the NUL */
#define BACKUP_VERSION		2
#define BACKUP_VERSION_V1	1
#define BACKUP_HDR_LEN		16
#define BACKUP_REC_LEN		136
#define BACKUP_REC_LEN_V1	96
#define BACKUP_BLOB_MAX		16384

static int parse_kek(const struct opts *o, uint64_t *kek)
{
	if (!o->kek) {
		err_msg("--kek HANDLE is required");
		return -1;
	}
	return parse_handle(o->kek, kek);
}

static int key_type_by_name(const char *name, uint32_t *type)
{
	const struct name_val *t;

	for (t = key_type_names; t->name; t++)
		if (!strcmp(t->name, name))
			break;
	if (!t->name) {
		err_msg("unknown key type '%s' (aes, hmac, rsa, ec-p256, ec-p384, ed25519)",
			name);
		return -1;
	}
	*type = t->val;
	return 0;
}

/* Wrap @h under @kek (HSMCARD_WRAP_* @flags) into a new buffer. */
static int wrap_alloc(struct hsmdev *d, uint64_t h, uint64_t kek,
		      uint32_t flags, uint8_t **blobp, size_t *lenp)
{
	size_t len = 4096;
	uint8_t *blob = malloc(len);
	int ret;

	if (!blob)
		return -ENOMEM;
	ret = hsmdev_wrap(d, h, kek, flags, blob, &len);
	if (ret == -ENOSPC && len > 4096 && len <= BACKUP_BLOB_MAX) {
		uint8_t *nb = realloc(blob, len);

		if (!nb) {
			free(blob);
			return -ENOMEM;
		}
		blob = nb;
		ret = hsmdev_wrap(d, h, kek, flags, blob, &len);
	}
	if (ret) {
		free(blob);
		return ret;
	}
	*blobp = blob;
	*lenp = len;
	return 0;
}

static int cmd_key_wrap(const struct opts *o)
{
	uint64_t h, kek;
	struct hsmdev d;
	uint8_t *blob;
	size_t len;
	int ret;

	if (o->argc != 2) {
		err_msg("key wrap: expected HANDLE");
		return EX_USAGE;
	}
	if (parse_handle(o->argv[1], &h) || parse_kek(o, &kek))
		return EX_USAGE;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = wrap_alloc(&d, h, kek, 0, &blob, &len);
	hsmdev_close(&d);
	if (ret)
		return dev_error("key wrap", ret);
	ret = write_output(o->out, blob, len);
	free(blob);
	return ret;
}

static int cmd_key_unwrap(const struct opts *o)
{
	struct hsmdev_key_attrs a = { };
	unsigned long bits = 0;
	uint8_t *blob = NULL;
	struct hsmdev d;
	uint64_t kek;
	size_t len;
	int ret;

	if (o->argc != 2) {
		err_msg("key unwrap: expected FILE");
		return EX_USAGE;
	}
	if (!o->type) {
		err_msg("key unwrap: --type is required");
		return EX_USAGE;
	}
	if (parse_kek(o, &kek) || key_type_by_name(o->type, &a.type))
		return EX_USAGE;
	if (o->bits && parse_uint("key size", o->bits, 65535, &bits))
		return EX_USAGE;
	a.bits = bits;
	if (o->uses && parse_uses(o->uses, &a.uses))
		return EX_USAGE;
	a.flags = o->keyflags;
	if (o->label) {
		if (strlen(o->label) >= HSMDEV_LABEL_LEN) {
			err_msg("label longer than %d characters",
				HSMDEV_LABEL_LEN - 1);
			return EX_USAGE;
		}
		snprintf(a.label, sizeof(a.label), "%s", o->label);
	}
	if (parse_key_id(o->id, a.id, &a.id_len))
		return EX_USAGE;
	ret = read_input(o->argv[1], &blob, &len);
	if (ret)
		return ret;
	ret = open_dev(o, &d);
	if (ret)
		goto out;
	ret = hsmdev_unwrap(&d, &a, kek, 0, blob, len, &a.handle);
	hsmdev_close(&d);
	if (ret) {
		ret = dev_error("key unwrap", ret);
		goto out;
	}
	print_handle(o, a.handle);
out:
	free(blob);
	return ret;
}

static int cmd_key(const struct opts *o)
{
	const char *act = o->argv[0];

	if (!strcmp(act, "wrap"))
		return cmd_key_wrap(o);
	if (!strcmp(act, "unwrap"))
		return cmd_key_unwrap(o);
	if (strcmp(act, "state") && strcmp(act, "rotate") &&
	    strcmp(act, "find")) {
		err_msg("key: unknown action '%s' (state, rotate, find, wrap, unwrap)",
			act);
		return EX_USAGE;
	}
	if (o->kek) {
		err_msg("key %s: --kek is for wrap and unwrap", act);
		return EX_USAGE;
	}
	return cmd_key_life(o);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* Append @len bytes to a growing buffer. */
static int buf_append(uint8_t **buf, size_t *len, size_t *cap,
		      const void *p, size_t n)
{
	if (*len + n > *cap) {
		size_t nc = (*cap ? *cap : 4096);
		uint8_t *nb;

		while (nc < *len + n)
			nc *= 2;
		nb = realloc(*buf, nc);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static int cmd_backup(const struct opts *o)
{
	uint8_t *file = NULL, hdr[BACKUP_HDR_LEN] = BACKUP_MAGIC;
	size_t flen = 0, fcap = 0, n = 0, saved = 0, skipped = 0;
	uint64_t *handles = NULL, kek;
	struct hsmdev d;
	int ret, status = EX_OK;

	if (!o->out) {
		err_msg("backup: --out FILE is required");
		return EX_USAGE;
	}
	if (parse_kek(o, &kek))
		return EX_USAGE;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_key_list(&d, &handles, &n);
	if (ret) {
		hsmdev_close(&d);
		return dev_error("key list", ret);
	}
	put_le32(hdr + 8, BACKUP_VERSION);
	if (buf_append(&file, &flen, &fcap, hdr, sizeof(hdr)))
		goto oom;
	for (size_t i = 0; i < n; i++) {
		uint8_t rec[BACKUP_REC_LEN] = { }, *blob;
		struct hsmdev_key_attrs a;
		size_t blen;

		if (handles[i] == kek)
			continue;
		ret = hsmdev_key_attrs(&d, handles[i], &a);
		if (ret == -ENOKEY)	/* destroyed meanwhile */
			continue;
		if (ret) {
			status = dev_error("key attributes", ret);
			goto out;
		}
		if (!(a.flags & HSMCARD_KEYF_EXTRACTABLE)) {
			fprintf(stderr,
				"%s: skipped 0x%016" PRIx64 " (%s): not extractable\n",
				progname, a.handle, a.label);
			skipped++;
			continue;
		}
		ret = wrap_alloc(&d, a.handle, kek, HSMCARD_WRAP_ATTRS, &blob,
				 &blen);
		if (ret == -EKEYREJECTED || ret == -EINVAL) {
			/* kernel-only or odd-sized imported keys */
			fprintf(stderr,
				"%s: skipped 0x%016" PRIx64 " (%s): cannot be wrapped (%s)\n",
				progname, a.handle, a.label,
				strerrorname_np(-ret) ?: "?");
			skipped++;
			continue;
		}
		if (ret) {
			status = dev_error("key wrap", ret);
			goto out;
		}
		put_le64(rec, a.handle);
		put_le64(rec + 8, a.created);
		put_le16(rec + 16, (uint16_t)a.type);
		put_le16(rec + 18, (uint16_t)a.bits);
		put_le32(rec + 20, a.uses);
		put_le32(rec + 24, a.flags);
		put_le32(rec + 28, (uint32_t)blen);
		memcpy(rec + 32, a.label, strnlen(a.label, HSMDEV_LABEL_LEN - 1));
		put_le16(rec + 96, (uint16_t)a.id_len);
		memcpy(rec + 104, a.id, a.id_len);
		ret = buf_append(&file, &flen, &fcap, rec, sizeof(rec)) ||
		      buf_append(&file, &flen, &fcap, blob, blen);
		free(blob);
		if (ret)
			goto oom;
		saved++;
	}
	put_le32(file + 12, (uint32_t)saved);
	status = write_output(o->out, file, flen);
	if (status)
		goto out;
	if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_u64(&j, "saved", saved);
		json_u64(&j, "skipped", skipped);
		json_close(&j, '}');
	} else {
		printf("%zu keys saved, %zu skipped\n", saved, skipped);
	}
	status = skipped ? EX_FAIL : EX_OK;
	goto out;
oom:
	err_msg("out of memory");
	status = EX_FILE;
out:
	free(file);
	free(handles);
	hsmdev_close(&d);
	return status;
}

static int cmd_restore(const struct opts *o)
{
	struct json j = { .f = stdout };
	uint8_t *file = NULL;
	size_t flen, off, restored = 0;
	uint32_t count, i, ver, wflags;
	size_t rlen;
	struct hsmdev d;
	uint64_t kek;
	int ret, status = EX_OK;

	if (parse_kek(o, &kek))
		return EX_USAGE;
	ret = read_input(o->argv[0], &file, &flen);
	if (ret)
		return ret;
	if (flen < BACKUP_HDR_LEN || memcmp(file, BACKUP_MAGIC, 8)) {
		err_msg("%s: not an hsmctl backup file", o->argv[0]);
		free(file);
		return EX_FILE;
	}
	ver = get_le32(file + 8);
	if (ver != BACKUP_VERSION && ver != BACKUP_VERSION_V1) {
		err_msg("%s: backup format version %u not supported",
			o->argv[0], ver);
		free(file);
		return EX_FILE;
	}
	rlen = ver == BACKUP_VERSION_V1 ? BACKUP_REC_LEN_V1 : BACKUP_REC_LEN;
	wflags = ver == BACKUP_VERSION ? HSMCARD_WRAP_ATTRS : 0;
	if (!wflags)
		fprintf(stderr,
			"%s: %s: format version 1: the key attributes in the file are not authenticated\n",
			progname, o->argv[0]);
	count = get_le32(file + 12);
	/* check the whole file before the first key goes in */
	for (i = 0, off = BACKUP_HDR_LEN; i < count; i++) {
		static const uint8_t zero[HSMCARD_KEY_ID_LEN];
		uint32_t blen, idl;

		if (flen - off < rlen)
			break;
		blen = get_le32(file + off + 28);
		if (blen > BACKUP_BLOB_MAX || flen - off - rlen < blen ||
		    !memchr(file + off + 32, 0, HSMDEV_LABEL_LEN))
			break;
		if (rlen == BACKUP_REC_LEN) {
			idl = get_le16(file + off + 96);
			if (idl > HSMCARD_KEY_ID_LEN ||
			    memcmp(file + off + 98, zero, 6) ||
			    memcmp(file + off + 104 + idl, zero,
				   HSMCARD_KEY_ID_LEN - idl))
				break;
		}
		off += rlen + blen;
	}
	if (i != count || off != flen) {
		err_msg("%s: truncated or malformed at record %u", o->argv[0],
			i);
		free(file);
		return EX_FILE;
	}
	ret = open_dev(o, &d);
	if (ret) {
		free(file);
		return ret;
	}
	if (o->json)
		json_open(&j, NULL, '[');
	for (i = 0, off = BACKUP_HDR_LEN; i < count; i++) {
		const uint8_t *rec = file + off;
		uint32_t blen = get_le32(rec + 28);
		struct hsmdev_key_attrs a = { };
		uint64_t old = get_le64(rec), h = 0;

		a.type = get_le16(rec + 16);
		a.bits = get_le16(rec + 18);
		a.uses = get_le32(rec + 20);
		/*
		 * Version 2: the card takes the attributes from the blob and
		 * refuses (EACCES) header values that ask for more, SESSION
		 * included.  Version 1: the card sets SESSION itself.
		 */
		a.flags = get_le32(rec + 24);
		if (!wflags)
			a.flags &= HSMCARD_KEYF_EXTRACTABLE |
				   HSMCARD_KEYF_PERSISTENT |
				   HSMCARD_KEYF_SENSITIVE;
		memcpy(a.label, rec + 32, HSMDEV_LABEL_LEN);
		if (rlen == BACKUP_REC_LEN) {
			a.id_len = get_le16(rec + 96);
			memcpy(a.id, rec + 104, a.id_len);
		}
		off += rlen + blen;
		ret = hsmdev_unwrap(&d, &a, kek, wflags, rec + rlen, blen, &h);
		if (ret) {
			char what[96];
			int st;

			snprintf(what, sizeof(what), "restore 0x%016" PRIx64,
				 old);
			if (wflags && ret == -EACCES) {
				/* a "no" from the card, as an altered blob */
				fprintf(stderr,
					"%s: %s: the file's attributes ask for more than the key's authenticated ones (edited file?)\n",
					progname, what);
				st = EX_FAIL;
			} else {
				st = dev_error(what, ret);
			}
			if (st > status)
				status = st;
			continue;
		}
		restored++;
		if (o->json) {
			json_open(&j, NULL, '{');
			json_handle(&j, "old", old);
			json_handle(&j, "new", h);
			json_string(&j, "type", key_type_name(a.type));
			json_string(&j, "label", a.label);
			json_hex(&j, "id", a.id, a.id_len);
			json_close(&j, '}');
		} else {
			printf("0x%016" PRIx64 " -> 0x%016" PRIx64 " %s %s\n",
			       old, h, key_type_name(a.type), a.label);
		}
	}
	if (o->json)
		json_close(&j, ']');
	else
		fprintf(stderr, "%s: %zu of %u keys restored\n", progname,
			restored, count);
	hsmdev_close(&d);
	free(file);
	return status;
}

/* ---- token ---- */

/*
 * Byte offset and size of the card's identity in a token (struct
 * hsm_key_token, Documentation/hsmcard/crypto.rst); shown by "token info".
 */
#define TOKEN_CARD_ID_OFF	16
#define TOKEN_CARD_ID_LEN	16

/* The token from the argument (hex) or from --in FILE (raw bytes). */
static int read_token(const struct opts *o, uint8_t *token)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	if ((o->argc > 1) == !!o->in) {
		err_msg("token %s: give the token either in hex or with --in FILE",
			o->argv[0]);
		return EX_USAGE;
	}
	if (o->in) {
		ret = read_input(o->in, &buf, &len);
		if (ret)
			return ret;
	} else if (parse_hex(o->argv[1], &buf, &len)) {
		err_msg("invalid token '%s' (expected %d hex digits)",
			o->argv[1], 2 * HSMDEV_TOKEN_SIZE);
		return EX_USAGE;
	}
	if (len != HSMDEV_TOKEN_SIZE) {
		err_msg("%s: not a key token (%zu bytes, expected %d)",
			o->in ? o->in : "token", len, HSMDEV_TOKEN_SIZE);
		free(buf);
		return EX_USAGE;
	}
	memcpy(token, buf, len);
	free(buf);
	return EX_OK;
}

/* Token requests refused by the driver or card, in the token's terms. */
static int token_error(const char *what, int err)
{
	if (err == -EINVAL) {
		err_msg("%s: not a valid token for this card (malformed, altered, made by another card, or its key was destroyed) (EINVAL)",
			what);
		return EX_DEVICE;
	}
	if (err == -EPERM) {
		err_msg("%s: permission denied (needs CAP_SYS_ADMIN) (EPERM)",
			what);
		return EX_DEVICE;
	}
	if (err == -EOPNOTSUPP) {
		err_msg("%s: the card has no persistent key store or no key tokens (EOPNOTSUPP)",
			what);
		return EX_DEVICE;
	}
	return dev_error(what, err);
}

static int token_create(const struct opts *o)
{
	uint8_t token[HSMDEV_TOKEN_SIZE];
	unsigned long bits;
	struct hsmdev d;
	uint64_t h;
	int ret;

	if (o->argc != 1 || o->in) {
		err_msg("token create: takes no token and no --in");
		return EX_USAGE;
	}
	if (!o->bits) {
		err_msg("token create: --bits is required (128, 192, 256 or 512)");
		return EX_USAGE;
	}
	if (parse_uint("key size", o->bits, 65535, &bits))
		return EX_USAGE;
	if (bits != 128 && bits != 192 && bits != 256 && bits != 512) {
		err_msg("token create: --bits must be 128, 192, 256 (cbc; also AES-128-XTS) or 512 (AES-256-XTS)");
		return EX_USAGE;
	}
	if (o->label && strlen(o->label) >= HSMDEV_LABEL_LEN) {
		err_msg("label longer than %d characters", HSMDEV_LABEL_LEN - 1);
		return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_token_create(&d, (uint32_t)bits, o->label, token, &h);
	hsmdev_close(&d);
	if (ret)
		return token_error("token create", ret);
	if (o->out) {
		ret = write_output(o->out, token, sizeof(token));
		if (ret)
			return ret;
	}
	if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_hex(&j, "token", token, sizeof(token));
		json_handle(&j, "handle", h);
		json_u64(&j, "bits", bits);
		json_close(&j, '}');
	} else if (!o->out) {
		print_hex(stdout, token, sizeof(token));
		putchar('\n');
	}
	return EX_OK;
}

static int token_info(const struct opts *o)
{
	uint8_t token[HSMDEV_TOKEN_SIZE];
	const uint8_t *card = token + TOKEN_CARD_ID_OFF;
	struct hsmdev_key_attrs a;
	char uses[96], flags[96], when[32];
	struct hsmdev d;
	int ret;

	ret = read_token(o, token);
	if (ret)
		return ret;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_token_info(&d, token, &a);
	hsmdev_close(&d);
	if (ret)
		return token_error("token info", ret);
	format_time(a.created, when, sizeof(when));
	if (o->json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_string(&j, "type", key_type_name(a.type));
		json_u64(&j, "bits", a.bits);
		json_string(&j, "label", a.label);
		json_u64(&j, "created", a.created);
		json_string(&j, "created_utc", when);
		json_hex(&j, "card_id", card, TOKEN_CARD_ID_LEN);
		json_handle(&j, "handle", a.handle);
		json_mask(&j, "uses", use_names, a.uses);
		json_mask(&j, "flags", flag_names, a.flags);
		json_u64(&j, "partition", a.partition);
		json_close(&j, '}');
		return EX_OK;
	}
	mask_names(use_names, a.uses, uses, sizeof(uses));
	mask_names(flag_names, a.flags, flags, sizeof(flags));
	printf("Type:       %s\n", key_type_name(a.type));
	printf("Bits:       %u\n", a.bits);
	printf("Label:      %s\n", a.label);
	printf("Created:    %s\n", when);
	printf("Card:       ");
	print_hex(stdout, card, TOKEN_CARD_ID_LEN);
	printf("\nHandle:     0x%016" PRIx64 " (kernel partition)\n", a.handle);
	printf("Uses:       %s\n", uses);
	printf("Flags:      %s\n", *flags ? flags : "-");
	return EX_OK;
}

static int token_destroy(const struct opts *o)
{
	uint8_t token[HSMDEV_TOKEN_SIZE];
	struct hsmdev d;
	int ret;

	ret = read_token(o, token);
	if (ret)
		return ret;
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	ret = hsmdev_token_destroy(&d, token);
	hsmdev_close(&d);
	return ret ? token_error("token destroy", ret) : EX_OK;
}

static int cmd_token(const struct opts *o)
{
	const char *act = o->argv[0];

	if (!strcmp(act, "create"))
		return token_create(o);
	if (o->bits || o->label || o->out) {
		err_msg("token %s: --bits, --label and --out only apply to create",
			act);
		return EX_USAGE;
	}
	if (!strcmp(act, "info"))
		return token_info(o);
	if (!strcmp(act, "destroy"))
		return token_destroy(o);
	err_msg("token: unknown action '%s' (create, info, destroy)", act);
	return EX_USAGE;
}

/* ---- mechs ---- */

static int cmd_mechs(const struct opts *o)
{
	static const char *const cls[] = {
		[MC_CIPHER] = "encrypt/decrypt",
		[MC_SIGN] = "sign/verify",
		[MC_MAC] = "sign/verify (MAC)",
		[MC_DIGEST] = "digest",
	};
	struct json j = { .f = stdout };

	if (o->json)
		json_open(&j, NULL, '[');
	for (const struct mech_desc *m = mechs; m->name; m++) {
		if (o->json) {
			json_open(&j, NULL, '{');
			json_string(&j, "name", m->name);
			json_u64(&j, "id", m->mech);
			json_string(&j, "operations", cls[m->cls]);
			json_u64(&j, "iv_len", m->iv_len);
			json_bool(&j, "hash", m->hashed);
			json_string(&j, "description", m->help);
			json_close(&j, '}');
		} else {
			printf("%-12s %-18s %s%s\n", m->name, cls[m->cls],
			       m->help, m->hashed ? " (--hash)" : "");
		}
	}
	if (o->json)
		json_close(&j, ']');
	return EX_OK;
}

/* ---- audit ---- */

/*
 * The verifier follows Documentation/hsmcard/hw.rst, "Audit log", on its
 * own: the sequence rule, the SHA-256 chain, zero reserved bytes and the
 * ECDSA P-256 / SHA-256 checkpoint signatures under the key the card
 * exports.  Records are checked as they arrive, chunk by chunk, so the
 * log can be of any length.
 */
#define AUDIT_CHUNK		256	/* records per read */
#define AUDIT_MAX_PROBLEMS	20	/* problems reported one by one */
#define AUDIT_KEY_ID_OFF	16	/* label: card id, then key id */

static const struct name_val audit_event_names[] = {
	{ "init", HSMCARD_AUDIT_EV_INIT },
	{ "start", HSMCARD_AUDIT_EV_START },
	{ "checkpoint", HSMCARD_AUDIT_EV_CHECKPOINT },
	{ "log_damaged", HSMCARD_AUDIT_EV_LOG_DAMAGED },
	{ "tamper", HSMCARD_AUDIT_EV_TAMPER },
	{ "key_generate", HSMCARD_AUDIT_EV_KEY_GENERATE },
	{ "key_import", HSMCARD_AUDIT_EV_KEY_IMPORT },
	{ "key_unwrap", HSMCARD_AUDIT_EV_KEY_UNWRAP },
	{ "key_wrap", HSMCARD_AUDIT_EV_KEY_WRAP },
	{ "key_destroy", HSMCARD_AUDIT_EV_KEY_DESTROY },
	{ "token_create", HSMCARD_AUDIT_EV_TOKEN_CREATE },
	{ "token_open", HSMCARD_AUDIT_EV_TOKEN_OPEN },
	{ "key_state", HSMCARD_AUDIT_EV_KEY_STATE },
	{ "login", HSMCARD_AUDIT_EV_LOGIN },
	{ "login_fail", HSMCARD_AUDIT_EV_LOGIN_FAIL },
	{ "lockout", HSMCARD_AUDIT_EV_LOCKOUT },
	{ "unlock", HSMCARD_AUDIT_EV_UNLOCK },
	{ "logout", HSMCARD_AUDIT_EV_LOGOUT },
	{ "part_create", HSMCARD_AUDIT_EV_PART_CREATE },
	{ "part_delete", HSMCARD_AUDIT_EV_PART_DELETE },
	{ "part_change", HSMCARD_AUDIT_EV_PART_CHANGE },
	{ NULL, 0 }
};

/* Card status codes (Documentation/hsmcard/uapi.rst, "Errors"). */
static const char *const audit_status_names[] = {
	"success", "invalid_opcode", "invalid_field", "data_xfer",
	"invalid_qid", "invalid_qsize", "invalid_vector", "invalid_sgl",
	"invalid_length", "buffer_too_small", "invalid_mech",
	"invalid_handle", "key_type", "use_denied", "not_extractable",
	"invalid_key_size", "keystore_full", "verify_failed",
	"decrypt_failed", "tampered", "aborted", "rng_failure", "internal",
	"invalid_state", "invalid_token", "pin_incorrect", "pin_locked",
	"pin_not_set",
};

/* LOG_DAMAGED detail: what the card's start-up check found. */
static const char *const audit_damage_names[] = {
	"?", "log missing", "torn (size not a multiple of 256)",
	"sequence gap or reorder", "chain broken (an edit)",
	"bad checkpoint signature", "shorter than the sealed head",
	"sealed head hash mismatch", "malformed record",
};

static void audit_event_name(uint16_t ev, char *buf, size_t size)
{
	const char *n = NULL;

	for (const struct name_val *t = audit_event_names; t->name; t++)
		if (t->val == ev)
			n = t->name;
	if (n)
		snprintf(buf, size, "%s", n);
	else
		snprintf(buf, size, "event_0x%02x", ev);
}

static void audit_status_name(uint16_t st, char *buf, size_t size)
{
	if (st < sizeof(audit_status_names) / sizeof(audit_status_names[0]))
		snprintf(buf, size, "%s", audit_status_names[st]);
	else
		snprintf(buf, size, "status_0x%02x", st);
}

static void audit_time(uint64_t ns, char *buf, size_t size)
{
	time_t sec = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (!gmtime_r(&sec, &tm)) {
		snprintf(buf, size, "-");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ns % 1000000000u);
}

/* The label field as text: key events carry a label, some events ids. */
static void audit_label(const struct hsmcard_audit_rec *r, uint16_t ev,
			char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	if (ev == HSMCARD_AUDIT_EV_INIT || ev == HSMCARD_AUDIT_EV_START ||
	    ev == HSMCARD_AUDIT_EV_CHECKPOINT) {
		const uint8_t *l = (const uint8_t *)r->label;

		o += snprintf(buf, size, "card ");
		for (int i = 0; i < 16 && o + 3 < size; i++)
			o += snprintf(buf + o, size - o, "%02x", l[i]);
		o += snprintf(buf + o, size - o, " key ");
		for (int i = 0; i < 8 && o + 3 < size; i++)
			o += snprintf(buf + o, size - o, "%02x",
				      l[AUDIT_KEY_ID_OFF + i]);
		return;
	}
	if (ev == HSMCARD_AUDIT_EV_TOKEN_OPEN) {
		const uint8_t *l = (const uint8_t *)r->label;

		o += snprintf(buf, size, "token of card ");
		for (int i = 0; i < 16 && o + 3 < size; i++)
			o += snprintf(buf + o, size - o, "%02x", l[i]);
		return;
	}
	for (size_t i = 0; i < sizeof(r->label) && r->label[i]; i++) {
		unsigned char c = (unsigned char)r->label[i];

		if (o + 5 >= size)
			break;
		if (c < 0x20 || c >= 0x7f || c == '\\')
			o += snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
		buf[o] = '\0';
	}
}

/* What the verifier knows while it walks the log. */
struct audit_state {
	EVP_PKEY *pub;
	uint8_t key_id[32];
	struct hsmcard_audit_rec prev;	/* the record before this one */
	bool have_prev;
	bool current_seen;	/* a checkpoint of the current key verified */
	uint64_t records;
	uint64_t first_seq, last_seq;
	uint64_t ckpt_ok;	/* checkpoints verified with the current key */
	uint64_t ckpt_old;	/* checkpoints of a previous key */
	uint64_t ckpt_unchecked; /* checkpoints while the card has no key */
	uint64_t unsigned_recs;	/* records since the last verified one */
	uint64_t problems;
	bool dropped;		/* the card's ring dropped records */
	bool no_key;		/* tampered card: no audit key to check with */
	bool json;
};

static void __attribute__((format(printf, 3, 4)))
audit_problem(struct audit_state *st, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (++st->problems > AUDIT_MAX_PROBLEMS)
		return;
	fflush(stdout);		/* keep the order when both go to one file */
	fprintf(stderr, "%s: audit: seq %" PRIu64 ": ", progname, seq);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static bool audit_sig_ok(EVP_PKEY *pub, const struct hsmcard_audit_rec *r)
{
	uint16_t n = le16toh(r->sig_len);
	EVP_MD_CTX *ctx;
	bool ok;

	if (!n || n > sizeof(r->sig))
		return false;
	ctx = EVP_MD_CTX_new();
	ok = ctx &&
	     EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, r->sig, n, (const unsigned char *)r,
			      HSMCARD_AUDIT_SIGNED_LEN) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/*
 * Check one record against the rules and the record before it.
 * @anchored: no record came before it in this read; it must be the first
 * record of the log.  Returns the signature verdict for checkpoints
 * ("verified", "previous_key", "bad") or NULL.
 */
static const char *audit_check(struct audit_state *st,
			       const struct hsmcard_audit_rec *r,
			       bool anchored)
{
	uint64_t seq = le64toh(r->seq);
	uint16_t ev = le16toh(r->event);
	uint16_t sig_len = le16toh(r->sig_len);
	const char *sig = NULL;
	uint8_t h[32];
	unsigned int hl = 0;

	if (!all_zero(r->rsvd0, sizeof(r->rsvd0)) ||
	    !all_zero(r->rsvd1, sizeof(r->rsvd1)))
		audit_problem(st, seq, "reserved bytes are not zero (edited)");
	if (st->have_prev) {
		uint64_t want = le64toh(st->prev.seq) + 1;

		if (seq < want)
			audit_problem(st, seq,
				      "out of order: follows seq %" PRIu64
				      " (reordered or replayed)", want - 1);
		else if (seq > want && ev != HSMCARD_AUDIT_EV_LOG_DAMAGED)
			audit_problem(st, seq,
				      "gap: seq %" PRIu64 "..%" PRIu64
				      " missing", want, seq - 1);
		if (!EVP_Digest(&st->prev, sizeof(st->prev), h, &hl,
				EVP_sha256(), NULL) ||
		    memcmp(h, r->prev_hash, sizeof(h)))
			audit_problem(st, seq,
				      "chain broken: prev_hash is not the hash of seq %"
				      PRIu64 " (one of the two was edited)",
				      le64toh(st->prev.seq));
	} else if (anchored && ev != HSMCARD_AUDIT_EV_LOG_DAMAGED &&
		   (seq || ev != HSMCARD_AUDIT_EV_INIT ||
		    !all_zero(r->prev_hash, sizeof(r->prev_hash)))) {
		audit_problem(st, seq,
			      "the log does not start with its genesis record (seq 0, init)");
	}
	if (ev == HSMCARD_AUDIT_EV_LOG_DAMAGED) {
		uint32_t why = le32toh(r->detail);

		audit_problem(st, seq,
			      "the card found its log damaged at start: %s; records from seq %"
			      PRIu64 " on (of %" PRIu64 " in the file) were not kept",
			      why < sizeof(audit_damage_names) /
				    sizeof(audit_damage_names[0]) ?
			      audit_damage_names[why] : "?",
			      le64toh(r->handle), le64toh(r->handle2));
	}
	if (ev != HSMCARD_AUDIT_EV_CHECKPOINT) {
		if (sig_len)
			audit_problem(st, seq, "signature outside a checkpoint");
		st->unsigned_recs++;
	} else if (!st->pub) {
		sig = "unchecked";
		st->ckpt_unchecked++;
		st->unsigned_recs++;
	} else if (!memcmp(r->label + AUDIT_KEY_ID_OFF, st->key_id, 32)) {
		if (audit_sig_ok(st->pub, r)) {
			sig = "verified";
			st->ckpt_ok++;
			st->current_seen = true;
			st->unsigned_recs = 0;
		} else {
			sig = "bad";
			audit_problem(st, seq, "checkpoint signature does not verify");
			st->unsigned_recs++;
		}
	} else {
		sig = "previous_key";
		st->ckpt_old++;
		st->unsigned_recs++;
		/* the card never goes back to an earlier key */
		if (st->current_seen)
			audit_problem(st, seq,
				      "checkpoint names another key after the current key took over");
	}
	st->prev = *r;
	st->have_prev = true;
	if (!st->records++)
		st->first_seq = seq;
	st->last_seq = seq;
	return sig;
}

static void audit_print(const struct audit_state *st,
			const struct hsmcard_audit_rec *r, const char *sig)
{
	char when[48], evn[24], stn[24], label[4 * HSMCARD_LABEL_LEN + 1];
	uint16_t ev = le16toh(r->event);
	uint32_t part = le32toh(r->partition);
	uint64_t h = le64toh(r->handle);

	audit_time(le64toh(r->time_ns), when, sizeof(when));
	audit_event_name(ev, evn, sizeof(evn));
	audit_status_name(le16toh(r->status), stn, sizeof(stn));
	audit_label(r, ev, label, sizeof(label));
	if (st->json) {
		struct json j = { .f = stdout, .compact = true };

		json_open(&j, NULL, '{');
		json_u64(&j, "seq", le64toh(r->seq));
		json_string(&j, "time", when);
		json_string(&j, "event", evn);
		json_string(&j, "status", stn);
		if (part != HSMCARD_AUDIT_NO_PART)
			json_u64(&j, "partition", part);
		if (h)
			json_handle(&j, "handle", h);
		if (r->handle2)
			json_handle(&j, "handle2", le64toh(r->handle2));
		json_u64(&j, "detail", le32toh(r->detail));
		json_u64(&j, "opcode", r->opcode);
		json_string(&j, "label", label);
		if (sig)
			json_string(&j, "signature", sig);
		json_close(&j, '}');
		return;
	}
	printf("%8" PRIu64 " %s %-12s %-15s ", le64toh(r->seq), when, evn,
	       stn);
	if (part == HSMCARD_AUDIT_NO_PART)
		printf("%4s ", "-");
	else
		printf("%4u ", part);
	if (h)
		printf("0x%016" PRIx64, h);
	else
		printf(*label || sig ? "%-18s" : "%s", "-");
	if (*label)
		printf(" %s", label);
	if (sig)
		printf(" [signature %s]",
		       !strcmp(sig, "previous_key") ? "by a previous key" :
		       !strcmp(sig, "unchecked") ? "not checked" : sig);
	putchar('\n');
}

/* The audit key: parsed, and its id (SHA-256 of the DER). */
static int audit_load_key(struct hsmdev *d, struct audit_state *st)
{
	uint8_t der[1024];
	size_t len = sizeof(der);
	const unsigned char *p = der;
	unsigned int hl = 0;
	int ret;

	ret = hsmdev_audit_pubkey(d, der, &len);
	if (ret == -ENOTRECOVERABLE) {
		/* the log survives tamper: still show it and check the chain */
		err_msg("audit: the card is tampered and has no audit key until it is re-initialised:\n"
			"signatures cannot be checked");
		st->no_key = true;
		return EX_OK;
	}
	if (ret)
		return dev_error("audit public key", ret);
	st->pub = d2i_PUBKEY(NULL, &p, (long)len);
	if (!st->pub || p != der + len || EVP_PKEY_get_id(st->pub) != EVP_PKEY_EC ||
	    EVP_PKEY_get_bits(st->pub) != 256) {
		err_msg("audit public key: the card returned no valid P-256 key");
		return EX_DEVICE;
	}
	if (!EVP_Digest(der, len, st->key_id, &hl, EVP_sha256(), NULL))
		return EX_DEVICE;
	return EX_OK;
}

static void audit_verdict(const struct audit_state *st, uint32_t flags)
{
	bool ok = !st->problems;

	if (st->json) {
		struct json j = { .f = stdout, .compact = true };

		json_open(&j, NULL, '{');
		json_string(&j, "verdict", !ok ? "failed" :
			    st->no_key ? "unverified" : "verified");
		json_u64(&j, "records", st->records);
		if (st->records) {
			json_u64(&j, "first_seq", st->first_seq);
			json_u64(&j, "last_seq", st->last_seq);
		}
		json_u64(&j, "checkpoints_verified", st->ckpt_ok);
		json_u64(&j, "checkpoints_previous_key", st->ckpt_old);
		json_u64(&j, "checkpoints_unchecked", st->ckpt_unchecked);
		json_bool(&j, "card_has_key", !st->no_key);
		json_u64(&j, "not_yet_signed", st->unsigned_recs);
		json_u64(&j, "problems", st->problems);
		json_bool(&j, "records_dropped", st->dropped);
		json_bool(&j, "card_damaged",
			  flags & HSMCARD_AUDIT_F_DAMAGED);
		json_close(&j, '}');
		return;
	}
	if (ok && st->no_key)
		printf("NOT VERIFIED (no audit key: signatures not checked): ");
	else if (ok)
		printf("verified: ");
	else
		printf("FAILED: %" PRIu64 " problem(s); ", st->problems);
	printf("%" PRIu64 " records", st->records);
	if (st->records)
		printf(", seq %" PRIu64 "..%" PRIu64, st->first_seq,
		       st->last_seq);
	printf("; %" PRIu64 " checkpoint(s) verified", st->ckpt_ok);
	if (st->ckpt_old)
		printf(", %" PRIu64 " signed by a previous key (not checkable with the current one)",
		       st->ckpt_old);
	if (st->ckpt_unchecked)
		printf(", %" PRIu64 " not checked", st->ckpt_unchecked);
	if (st->unsigned_recs && !st->no_key)
		printf("; %" PRIu64 " record(s) after the last checkpoint not yet signed (use --checkpoint)",
		       st->unsigned_recs);
	if (st->dropped)
		printf("; older records were dropped by the card (wrapped)");
	putchar('\n');
}

static int cmd_audit(const struct opts *o)
{
	struct audit_state st = { .json = o->json };
	struct hsmcard_audit_rec *recs;
	struct hsmdev_audit_hdr h;
	uint32_t flags = 0;
	unsigned long from = 0;
	uint64_t seq, ck = 0;
	bool first = true;
	struct hsmdev d;
	int ret;

	if (o->from && parse_uint("--from", o->from, ULONG_MAX, &from))
		return EX_USAGE;
	recs = calloc(AUDIT_CHUNK, sizeof(*recs));
	if (!recs) {
		err_msg("out of memory");
		return EX_DEVICE;
	}
	ret = open_dev(o, &d);
	if (ret)
		goto out_free;
	if (o->checkpoint) {
		ret = hsmdev_audit_checkpoint(&d, &ck);
		if (ret) {
			ret = dev_error("audit checkpoint", ret);
			goto out;
		}
		if (!o->json)
			fprintf(stderr, "%s: checkpoint written at seq %" PRIu64 "\n",
				progname, ck);
	}
	ret = audit_load_key(&d, &st);
	if (ret)
		goto out;

	for (seq = from;;) {
		ret = hsmdev_audit_read(&d, seq, recs, AUDIT_CHUNK, &h);
		if (ret) {
			char what[64];

			snprintf(what, sizeof(what), "audit read at seq %" PRIu64,
				 seq);
			ret = dev_error(what, ret);
			goto out;
		}
		flags |= h.flags;
		if (h.count && le64toh(recs[0].seq) != h.first_seq)
			audit_problem(&st, le64toh(recs[0].seq),
				      "the card said the read starts at seq %" PRIu64,
				      h.first_seq);
		if (h.first_seq > seq && seq < h.oldest_seq &&
		    (h.flags & HSMCARD_AUDIT_F_WRAPPED)) {
			/* a gap the card owns up to: not tampering */
			fflush(stdout);
			if (!o->json)
				fprintf(stderr,
					"%s: audit: seq %" PRIu64 "..%" PRIu64
					" were dropped by the card (in-memory log wrapped)\n",
					progname, seq, h.oldest_seq - 1);
			st.dropped = true;
			st.have_prev = false;
		} else if (h.count && first && h.first_seq > seq &&
			   le16toh(recs[0].event) != HSMCARD_AUDIT_EV_LOG_DAMAGED) {
			audit_problem(&st, h.first_seq,
				      "gap: the card skipped seq %" PRIu64 "..%" PRIu64,
				      seq, h.first_seq - 1);
		}
		for (uint32_t i = 0; i < h.count; i++) {
			/* the first record of the log is checked as genesis */
			bool anchored = first && !i && from == 0 && !st.dropped;
			const char *sig = audit_check(&st, &recs[i], anchored);

			audit_print(&st, &recs[i], sig);
		}
		first = false;
		if (!h.count || h.next_seq > h.last_seq)
			break;
		if (h.next_seq <= seq) {
			err_msg("audit read: the card did not advance past seq %" PRIu64,
				seq);
			ret = EX_DEVICE;
			goto out;
		}
		seq = h.next_seq;
	}
	if (flags & HSMCARD_AUDIT_F_DAMAGED)
		audit_problem(&st, st.last_seq,
			      "the card reports that its start-up check found the log damaged");
	if (o->checkpoint && ck >= from &&
	    (!st.records || ck < st.first_seq || ck > st.last_seq))
		audit_problem(&st, ck, "the checkpoint just written was not read back");
	fflush(stdout);
	if (from && !o->json && st.records)
		fprintf(stderr,
			"%s: audit: starting at seq %" PRIu64
			": its link to earlier records is not checked\n",
			progname, st.first_seq);
	if (st.problems > AUDIT_MAX_PROBLEMS)
		err_msg("audit: %" PRIu64 " more problem(s) not shown",
			st.problems - AUDIT_MAX_PROBLEMS);
	audit_verdict(&st, flags);
	ret = st.problems ? EX_FAIL : st.no_key ? EX_DEVICE : EX_OK;
out:
	EVP_PKEY_free(st.pub);
	hsmdev_close(&d);
out_free:
	free(recs);
	return ret;
}

/* ---- command table, help, main ---- */

#define L(o)	(1ull << ((o) - O_EXTRACTABLE))

/* ---- netlink: status, monitor ---- */

static const char * const nl_state_names[] = {
	[HSMCARD_STATE_LIVE]		= "live",
	[HSMCARD_STATE_RESETTING]	= "resetting",
	[HSMCARD_STATE_TAMPERED]	= "tampered",
	[HSMCARD_STATE_DEAD]		= "dead",
};

static const char * const nl_event_names[] = {
	[HSMCARD_EVENT_CARD_ADDED]	= "card_added",
	[HSMCARD_EVENT_CARD_REMOVED]	= "card_removed",
	[HSMCARD_EVENT_STATE]		= "state",
	[HSMCARD_EVENT_TAMPER]		= "tamper",
	[HSMCARD_EVENT_HEALTH]		= "health",
	[HSMCARD_EVENT_KEY_CREATED]	= "key_created",
	[HSMCARD_EVENT_KEY_DESTROYED]	= "key_destroyed",
	[HSMCARD_EVENT_TOKEN_CREATED]	= "token_created",
	[HSMCARD_EVENT_TOKEN_DESTROYED]	= "token_destroyed",
	[HSMCARD_EVENT_LOGIN_FAILED]	= "login_failed",
	[HSMCARD_EVENT_AUDIT_HIGH_WATER] = "audit_high_water",
	[HSMCARD_EVENT_KEY_STATE]	= "key_state",
};

static struct nla_policy nl_policy[HSMCARD_A_MAX + 1] = {
	[HSMCARD_A_CARD_INDEX]		= { .type = NLA_U32 },
	[HSMCARD_A_CARD_NAME]		= { .type = NLA_STRING },
	[HSMCARD_A_PCI_ADDR]		= { .type = NLA_STRING },
	[HSMCARD_A_SERIAL]		= { .type = NLA_STRING },
	[HSMCARD_A_STATE]		= { .type = NLA_U32 },
	[HSMCARD_A_RESETS]		= { .type = NLA_U32 },
	[HSMCARD_A_CMDS_SUBMITTED]	= { .type = NLA_U64 },
	[HSMCARD_A_CMDS_COMPLETED]	= { .type = NLA_U64 },
	[HSMCARD_A_CMD_ERRORS]		= { .type = NLA_U64 },
	[HSMCARD_A_EVENT]		= { .type = NLA_U32 },
	[HSMCARD_A_TIMESTAMP]		= { .type = NLA_U64 },
	[HSMCARD_A_KEY_HANDLE]		= { .type = NLA_U64 },
	[HSMCARD_A_EVENTS_LOST]		= { .type = NLA_U32 },
	[HSMCARD_A_PARTITION]		= { .type = NLA_U32 },
	[HSMCARD_A_ROLE]		= { .type = NLA_U32 },
	[HSMCARD_A_TRIES_LEFT]		= { .type = NLA_U32 },
	[HSMCARD_A_LOCKED]		= { .type = NLA_FLAG },
	[HSMCARD_A_PID]			= { .type = NLA_U32 },
	[HSMCARD_A_UID]			= { .type = NLA_U32 },
	[HSMCARD_A_AUDIT_UNREAD]	= { .type = NLA_U32 },
	[HSMCARD_A_AUDIT_HIGH_WATER]	= { .type = NLA_U32 },
};

static const char *nl_name(const char * const *names, size_t n, uint32_t v)
{
	return v < n && names[v] ? names[v] : "unknown";
}

/* Connect to the "hsmcard" family; EX_OK or an exit status. */
static int hsm_nl_open(struct nl_sock **skp, int *family)
{
	struct nl_sock *sk = nl_socket_alloc();
	int ret;

	if (!sk) {
		err_msg("out of memory");
		return EX_DEVICE;
	}
	ret = genl_connect(sk);
	if (ret) {
		err_msg("cannot open a generic netlink socket: %s",
			nl_geterror(ret));
		nl_socket_free(sk);
		return EX_DEVICE;
	}
	*family = genl_ctrl_resolve(sk, HSMCARD_GENL_NAME);
	if (*family < 0) {
		err_msg("no \"%s\" netlink family: is hsmcard.ko loaded?",
			HSMCARD_GENL_NAME);
		nl_socket_free(sk);
		return EX_DEVICE;
	}
	*skp = sk;
	return EX_OK;
}

static int nl_parse(struct nl_msg *msg, struct nlattr **tb)
{
	return genlmsg_parse(nlmsg_hdr(msg), 0, tb, HSMCARD_A_MAX, nl_policy);
}

static const char *nl_str(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_string(tb[a]) : "";
}

struct nl_status {
	const struct opts *o;
	struct json j;
	unsigned int cards;
};

static int nl_status_cb(struct nl_msg *msg, void *arg)
{
	struct nl_status *st = arg;
	struct nlattr *tb[HSMCARD_A_MAX + 1];
	const char *state;

	if (nl_parse(msg, tb) || !tb[HSMCARD_A_CARD_NAME])
		return NL_SKIP;
	state = tb[HSMCARD_A_STATE] ?
		nl_name(nl_state_names, sizeof(nl_state_names) / sizeof(nl_state_names[0]),
			nla_get_u32(tb[HSMCARD_A_STATE])) : "";
	if (st->o->json) {
		struct json *j = &st->j;

		json_open(j, NULL, '{');
		json_string(j, "card", nl_str(tb, HSMCARD_A_CARD_NAME));
		json_string(j, "pci", nl_str(tb, HSMCARD_A_PCI_ADDR));
		json_string(j, "serial", nl_str(tb, HSMCARD_A_SERIAL));
		if (tb[HSMCARD_A_CARD_ID])
			json_hex(j, "card_id", nla_data(tb[HSMCARD_A_CARD_ID]),
				 nla_len(tb[HSMCARD_A_CARD_ID]));
		json_string(j, "state", state);
		if (tb[HSMCARD_A_RESETS])
			json_u64(j, "resets",
				 nla_get_u32(tb[HSMCARD_A_RESETS]));
		if (tb[HSMCARD_A_CMDS_SUBMITTED])
			json_u64(j, "commands_submitted",
				 nla_get_u64(tb[HSMCARD_A_CMDS_SUBMITTED]));
		if (tb[HSMCARD_A_CMDS_COMPLETED])
			json_u64(j, "commands_completed",
				 nla_get_u64(tb[HSMCARD_A_CMDS_COMPLETED]));
		if (tb[HSMCARD_A_CMD_ERRORS])
			json_u64(j, "command_errors",
				 nla_get_u64(tb[HSMCARD_A_CMD_ERRORS]));
		json_close(j, '}');
	} else {
		if (!st->cards)
			printf("%-10s %-14s %-18s %-10s %6s %12s %8s\n", "CARD",
			       "PCI", "SERIAL", "STATE", "RESETS", "COMMANDS",
			       "ERRORS");
		printf("%-10s %-14s %-18s %-10s %6u %12" PRIu64 " %8" PRIu64 "\n",
		       nl_str(tb, HSMCARD_A_CARD_NAME),
		       nl_str(tb, HSMCARD_A_PCI_ADDR),
		       nl_str(tb, HSMCARD_A_SERIAL), state,
		       tb[HSMCARD_A_RESETS] ?
		       nla_get_u32(tb[HSMCARD_A_RESETS]) : 0,
		       tb[HSMCARD_A_CMDS_COMPLETED] ?
		       nla_get_u64(tb[HSMCARD_A_CMDS_COMPLETED]) : 0,
		       tb[HSMCARD_A_CMD_ERRORS] ?
		       nla_get_u64(tb[HSMCARD_A_CMD_ERRORS]) : 0);
	}
	st->cards++;
	return NL_OK;
}

static int cmd_status(const struct opts *o)
{
	struct nl_status st = { .o = o, .j = { .f = stdout } };
	struct nl_msg *msg;
	struct nl_sock *sk;
	int family, ret;

	ret = hsm_nl_open(&sk, &family);
	if (ret)
		return ret;
	msg = nlmsg_alloc();
	if (!msg || !genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
				 NLM_F_DUMP, HSMCARD_CMD_GET_CARD,
				 HSMCARD_GENL_VERSION)) {
		err_msg("out of memory");
		nlmsg_free(msg);
		nl_socket_free(sk);
		return EX_DEVICE;
	}
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, nl_status_cb, &st);
	if (o->json)
		json_open(&st.j, NULL, '[');
	ret = nl_send_auto(sk, msg);
	if (ret >= 0)
		ret = nl_recvmsgs_default(sk);
	nlmsg_free(msg);
	nl_socket_free(sk);
	if (o->json)
		json_close(&st.j, ']');
	if (ret < 0) {
		err_msg("netlink: %s", nl_geterror(ret));
		return EX_DEVICE;
	}
	if (!st.cards && !o->json)
		fprintf(stderr, "no hsmcard devices found\n");
	return EX_OK;
}

struct nl_monitor {
	unsigned long seen;
};

static int nl_event_cb(struct nl_msg *msg, void *arg)
{
	struct nl_monitor *m = arg;
	struct nlattr *tb[HSMCARD_A_MAX + 1];
	struct json j = { .f = stdout, .compact = true };
	char ts[64] = "";
	uint32_t ev;

	if (genlmsg_hdr(nlmsg_hdr(msg))->cmd != HSMCARD_CMD_EVENT ||
	    nl_parse(msg, tb) || !tb[HSMCARD_A_EVENT])
		return NL_SKIP;
	ev = nla_get_u32(tb[HSMCARD_A_EVENT]);
	if (tb[HSMCARD_A_TIMESTAMP]) {
		uint64_t ns = nla_get_u64(tb[HSMCARD_A_TIMESTAMP]);
		time_t sec = ns / 1000000000;
		struct tm tm;

		gmtime_r(&sec, &tm);
		snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, ns % 1000000000);
	}
	json_open(&j, NULL, '{');
	json_string(&j, "time", ts);
	json_string(&j, "card", nl_str(tb, HSMCARD_A_CARD_NAME));
	json_string(&j, "pci", nl_str(tb, HSMCARD_A_PCI_ADDR));
	json_string(&j, "event",
		    nl_name(nl_event_names, sizeof(nl_event_names) / sizeof(nl_event_names[0]), ev));
	if (tb[HSMCARD_A_STATE])
		json_string(&j, "state",
			    nl_name(nl_state_names, sizeof(nl_state_names) / sizeof(nl_state_names[0]),
				    nla_get_u32(tb[HSMCARD_A_STATE])));
	if (tb[HSMCARD_A_KEY_HANDLE])
		json_handle(&j, "handle", nla_get_u64(tb[HSMCARD_A_KEY_HANDLE]));
	if (ev == HSMCARD_EVENT_LOGIN_FAILED) {
		if (tb[HSMCARD_A_PARTITION])
			json_u64(&j, "partition",
				 nla_get_u32(tb[HSMCARD_A_PARTITION]));
		if (tb[HSMCARD_A_ROLE])
			json_string(&j, "role",
				    nl_name(role_names, sizeof(role_names) / sizeof(role_names[0]),
					    nla_get_u32(tb[HSMCARD_A_ROLE])));
		if (tb[HSMCARD_A_TRIES_LEFT])
			json_u64(&j, "tries_left",
				 nla_get_u32(tb[HSMCARD_A_TRIES_LEFT]));
		json_bool(&j, "locked", !!tb[HSMCARD_A_LOCKED]);
		if (tb[HSMCARD_A_PID])
			json_u64(&j, "pid", nla_get_u32(tb[HSMCARD_A_PID]));
		if (tb[HSMCARD_A_UID])
			json_u64(&j, "uid", nla_get_u32(tb[HSMCARD_A_UID]));
	}
	if (tb[HSMCARD_A_AUDIT_UNREAD])
		json_u64(&j, "unread", nla_get_u32(tb[HSMCARD_A_AUDIT_UNREAD]));
	if (tb[HSMCARD_A_AUDIT_HIGH_WATER])
		json_u64(&j, "high_water",
			 nla_get_u32(tb[HSMCARD_A_AUDIT_HIGH_WATER]));
	if (tb[HSMCARD_A_EVENTS_LOST])
		json_u64(&j, "events_lost",
			 nla_get_u32(tb[HSMCARD_A_EVENTS_LOST]));
	json_close(&j, '}');
	fflush(stdout);
	m->seen++;
	return NL_OK;
}

static int cmd_monitor(const struct opts *o)
{
	struct nl_monitor m = {};
	unsigned long count = 0;
	long timeout_ms = -1;
	struct timespec end = {};
	struct nl_sock *sk;
	int family, grp, ret;

	if (o->count && parse_uint("--count", o->count, ULONG_MAX, &count))
		return EX_USAGE;
	if (o->timeout) {
		unsigned long t;

		if (parse_uint("--timeout", o->timeout, 86400UL * 365, &t))
			return EX_USAGE;
		timeout_ms = t * 1000;
		clock_gettime(CLOCK_MONOTONIC, &end);
		end.tv_sec += t;
	}
	ret = hsm_nl_open(&sk, &family);
	if (ret)
		return ret;
	grp = genl_ctrl_resolve_grp(sk, HSMCARD_GENL_NAME,
				    HSMCARD_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		err_msg("no \"%s\" multicast group: %s",
			HSMCARD_GENL_MCGRP_EVENTS, nl_geterror(grp));
		nl_socket_free(sk);
		return EX_DEVICE;
	}
	nl_socket_disable_seq_check(sk);
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, nl_event_cb, &m);
	ret = nl_socket_add_membership(sk, grp);
	if (ret) {
		err_msg("cannot join the event group: %s%s", nl_geterror(ret),
			ret == -NLE_PERM ? " (needs CAP_NET_ADMIN)" : "");
		nl_socket_free(sk);
		return EX_DEVICE;
	}
	/* Scripts wait for this line before they cause events. */
	fprintf(stderr, "hsmctl: monitoring hsmcard events\n");

	while (!count || m.seen < count) {
		struct pollfd pfd = { .fd = nl_socket_get_fd(sk),
				      .events = POLLIN };
		int wait = -1;

		if (timeout_ms >= 0) {
			struct timespec now;
			long left;

			clock_gettime(CLOCK_MONOTONIC, &now);
			left = (end.tv_sec - now.tv_sec) * 1000 +
			       (end.tv_nsec - now.tv_nsec) / 1000000;
			if (left <= 0)
				break;
			wait = left;
		}
		ret = poll(&pfd, 1, wait);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			err_msg("poll: %s", strerror(errno));
			break;
		}
		if (!ret)
			continue;
		ret = nl_recvmsgs_default(sk);
		if (ret < 0 && ret != -NLE_AGAIN) {
			err_msg("netlink: %s", nl_geterror(ret));
			nl_socket_free(sk);
			return EX_DEVICE;
		}
	}
	nl_socket_free(sk);
	/* --count not reached before --timeout: say so in the status. */
	return count && m.seen < count ? EX_FAIL : EX_OK;
}

/* ---- login, set-pin, init, partition ---- */

static int cmd_login(const struct opts *o)
{
	struct hsmdev d;
	int ret;

	if (!o->role) {
		err_msg("login: --role is required");
		return EX_USAGE;
	}
	ret = open_dev(o, &d);
	if (ret)
		return ret;
	hsmdev_close(&d);
	printf("PIN accepted: %s of partition %s\n", o->role,
	       o->partition ? o->partition : "0");
	return EX_OK;
}

static int cmd_set_pin(const struct opts *o)
{
	struct hsmcard_set_pin sp = { };
	struct hsmdev d;
	uint32_t part = 0;
	int ret;

	if (!o->role) {
		err_msg("set-pin: --role is required (whose PIN is set)");
		return EX_USAGE;
	}
	if (parse_role(o->role, &sp.role) ||
	    (o->as && parse_role(o->as, &sp.auth_role)) ||
	    (o->partition && parse_partition(o->partition, &part)))
		return EX_USAGE;
	sp.partition = part;
	ret = get_pin(o->pin_file, "HSMCARD_PIN", sp.pin, &sp.pin_len, false);
	if (!ret)
		ret = get_pin(o->new_pin_file, "HSMCARD_NEW_PIN", sp.new_pin,
			      &sp.new_pin_len, false);
	if (!ret)
		ret = open_dev_nologin(o, &d);
	if (ret)
		goto out;
	ret = hsmdev_ioctl(&d, HSMCARD_IOC_SET_PIN, &sp);
	hsmdev_close(&d);
	ret = ret ? pin_error("set-pin", ret, sp.tries_left) : EX_OK;
out:
	explicit_bzero(&sp, sizeof(sp));
	return ret;
}

static int cmd_init(const struct opts *o)
{
	struct hsmcard_part_admin pa = { };
	struct hsmdev d;
	int ret;

	ret = get_pin(o->pin_file, "HSMCARD_PIN", pa.pin, &pa.pin_len, true);
	if (!ret)
		ret = get_pin(o->new_pin_file, "HSMCARD_NEW_PIN", pa.new_pin,
			      &pa.new_pin_len, false);
	if (!ret)
		ret = open_dev_nologin(o, &d);
	if (ret)
		goto out;
	ret = hsmdev_ioctl(&d, HSMCARD_IOC_CARD_INIT, &pa);
	hsmdev_close(&d);
	if (ret) {
		ret = pin_error("init", ret, pa.tries_left);
		goto out;
	}
	printf("card initialized: every key is destroyed, new admin PIN set\n");
out:
	explicit_bzero(&pa, sizeof(pa));
	return ret;
}

static void print_part_info(struct json *j, const struct hsmcard_part_info *pi)
{
	static const char *const fl[] = {
		"exists", "initialized", "so_pin", "user_pin", "so_locked",
		"user_locked", "kernel",
	};
	char flags[128] = "", when[32];

	for (unsigned int i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		if (!(pi->flags & (1u << i)))
			continue;
		if (*flags)
			strncat(flags, ",", sizeof(flags) - strlen(flags) - 1);
		strncat(flags, fl[i], sizeof(flags) - strlen(flags) - 1);
	}
	format_time(pi->created, when, sizeof(when));
	if (j) {
		json_open(j, NULL, '{');
		json_u64(j, "partition", pi->partition);
		json_string(j, "label", pi->label);
		json_string(j, "flags", flags);
		json_u64(j, "max_fail", pi->max_fail);
		json_u64(j, "so_failed", pi->so_failed);
		json_u64(j, "user_failed", pi->user_failed);
		json_u64(j, "keys", pi->nr_keys);
		json_string(j, "created_utc", when);
		json_close(j, '}');
		return;
	}
	printf("%-3u %-20s %4u %3u/%-3u %3u/%-3u %-20s %s\n", pi->partition,
	       pi->label, pi->nr_keys, pi->so_failed, pi->max_fail,
	       pi->user_failed, pi->max_fail, when, flags);
}

static int part_admin(const struct opts *o, struct hsmdev *d,
		      unsigned long req, struct hsmcard_part_admin *pa,
		      bool new_pin)
{
	int ret;

	ret = get_pin(o->pin_file, "HSMCARD_PIN", pa->pin, &pa->pin_len,
		      false);
	if (!ret && new_pin)
		ret = get_pin(o->new_pin_file, "HSMCARD_NEW_PIN", pa->new_pin,
			      &pa->new_pin_len, false);
	if (ret)
		return ret;
	ret = hsmdev_ioctl(d, req, pa);
	explicit_bzero(pa->pin, sizeof(pa->pin));
	explicit_bzero(pa->new_pin, sizeof(pa->new_pin));
	return ret ? pin_error("partition", ret, pa->tries_left) : EX_OK;
}

static int cmd_partition(const struct opts *o)
{
	const char *act = o->argv[0];
	struct hsmcard_part_admin pa = { };
	struct hsmcard_part_info pi;
	struct json j = { .f = stdout };
	struct hsmcard_info info = { };
	unsigned long v;
	struct hsmdev d;
	uint32_t part = 0;
	int ret;

	if (strcmp(act, "list") && strcmp(act, "create") && o->argc != 2) {
		err_msg("partition %s: expected a partition number", act);
		return EX_USAGE;
	}
	if (!strcmp(act, "create") && o->argc != 1) {
		err_msg("partition create: use --label, --partition");
		return EX_USAGE;
	}
	if (o->argc == 2 && parse_partition(o->argv[1], &part))
		return EX_USAGE;
	ret = open_dev_nologin(o, &d);
	if (ret)
		return ret;
	if (!strcmp(act, "create")) {
		pa.partition = HSMCARD_PART_ANY;
		if (o->partition && parse_partition(o->partition, &pa.partition))
			ret = EX_USAGE;
		if (o->max_fail && !parse_uint("--max-fail", o->max_fail, 15, &v))
			pa.max_fail = v;
		else if (o->max_fail)
			ret = EX_USAGE;
		if (!o->label || !*o->label || strlen(o->label) >= sizeof(pa.label)) {
			err_msg("partition create: --label TEXT (1..63 characters) is required");
			ret = EX_USAGE;
		} else {
			memcpy(pa.label, o->label, strlen(o->label));
		}
		if (!ret)
			ret = part_admin(o, &d, HSMCARD_IOC_PART_CREATE, &pa, true);
		if (!ret)
			printf("%u\n", pa.partition);
	} else if (!strcmp(act, "delete")) {
		pa.partition = part;
		if (!part)
			pa.flags = HSMCARD_PART_F_RESET;
		ret = part_admin(o, &d, HSMCARD_IOC_PART_DELETE, &pa, false);
		if (!ret)
			printf("partition %u %s, %llu keys destroyed\n", part,
			       part ? "deleted" : "reset",
			       (unsigned long long)pa.result);
	} else if (!strcmp(act, "info") || !strcmp(act, "list")) {
		uint32_t first = 0, last = 0;

		if (!strcmp(act, "info")) {
			first = last = part;
		} else {
			ret = hsmdev_ioctl(&d, HSMCARD_IOC_INFO, &info);
			if (ret) {
				ret = dev_error("info", ret);
				goto out;
			}
			last = info.nr_partitions ? info.nr_partitions - 1 : 0;
			if (last >= HSMCARD_NR_PARTITIONS_MAX)
				last = HSMCARD_NR_PARTITIONS_MAX - 1;
		}
		if (o->json)
			json_open(&j, NULL, '[');
		else
			printf("%-3s %-20s %4s %-7s %-7s %-20s %s\n", "#", "LABEL",
			       "KEYS", "SO", "USER", "CREATED", "FLAGS");
		for (part = first; part <= last; part++) {
			memset(&pi, 0, sizeof(pi));
			pi.partition = part;
			ret = hsmdev_ioctl(&d, HSMCARD_IOC_PART_INFO, &pi);
			if (ret) {
				ret = dev_error("partition info", ret);
				goto out;
			}
			if (pi.flags & HSMCARD_PART_S_EXISTS)
				print_part_info(o->json ? &j : NULL, &pi);
			else if (first == last)
				ret = dev_error("partition info", -ENOENT);
		}
		if (o->json)
			json_close(&j, ']');
	} else {
		err_msg("partition: unknown action '%s'", act);
		ret = EX_USAGE;
	}
out:
	hsmdev_close(&d);
	return ret;
}

static int cmd_help(const struct opts *o);

static const struct command commands[] = {
	{ "list", cmd_list, "", "list the cards and their driver state",
	  "", "", 0, 0, 0 },
	{ "info", cmd_info, "", "show what a card is and can do",
	  "", "", 0, 0, 0 },
	{ "keygen", cmd_keygen, "",
	  "generate a key inside the card; prints its handle",
	  "  -t, --type TYPE      aes, hmac, rsa, ec or ed25519 (required)\n"
	  "  -b, --bits N         key size: aes 128/192/256 (default 256; 512 for\n"
	  "                       an XTS key pair), hmac 128..1024 (256),\n"
	  "                       rsa 2048/3072/4096 (2048)\n"
	  "  -c, --curve CURVE    ec: p256 (default) or p384\n"
	  "  -l, --label TEXT     label, up to 63 characters\n"
	  "      --id HEX         key ID, 1..32 bytes in hex (unique in the\n"
	  "                       partition), chosen by the application (an\n"
	  "                       account or certificate number); fixed once\n"
	  "                       the key exists\n"
	  "  -u, --uses LIST      allowed uses: encrypt,decrypt,sign,verify,wrap,\n"
	  "                       unwrap,derive or all (default: the card's\n"
	  "                       default for the key type)\n"
	  "      --extractable    the key may later leave the card wrapped\n"
	  "      --session        volatile key, gone at the next power cycle\n"
	  "      --persistent     keep the key in the card's sealed key store\n"
	  "      --sensitive      never exportable in clear\n",
	  "t:b:c:l:u:", 0, 0,
	  L(O_EXTRACTABLE) | L(O_SESSION) | L(O_PERSISTENT) | L(O_SENSITIVE) |
	  L(O_ID) },
	{ "import", cmd_import, "",
	  "import a clear key as a volatile session key; prints its handle",
	  "  -t, --type TYPE      aes, hmac (raw key bytes), rsa, ec-p256,\n"
	  "                       ec-p384, ed25519 (private key, PEM or DER)\n"
	  "  -i, --in FILE        the key (default: stdin)\n"
	  "  -l, --label TEXT     label, up to 63 characters\n"
	  "      --id HEX         key ID, 1..32 bytes in hex (see keygen)\n"
	  "  -u, --uses LIST      allowed uses (see keygen)\n"
	  "      --extractable, --sensitive  as for keygen\n"
	  "      --persistent     only for a key-encryption key (key ceremony):\n"
	  "                       aes with --uses wrap, unwrap or wrap,unwrap,\n"
	  "                       not extractable; kept in the sealed key store\n",
	  "t:i:l:u:", 0, 0,
	  L(O_EXTRACTABLE) | L(O_SENSITIVE) | L(O_PERSISTENT) | L(O_ID) },
	{ "key", cmd_key, "ACTION ...",
	  "key lifecycle (state, rotate, find) and export (wrap, unwrap)",
	  "Actions:\n"
	  "  state HANDLE active|deactivated|compromised\n"
	  "                       move a key forward in its lifecycle\n"
	  "  rotate HANDLE|--label TEXT [--id HEX]\n"
	  "                       the card makes a new version of an active key\n"
	  "                       (same type, size, uses, label) and deactivates\n"
	  "                       the old one; prints the new handle.  The new\n"
	  "                       version has no key ID unless --id gives one\n"
	  "  find --label TEXT [--version N] | --id HEX\n"
	  "                       the key with this label (newest version, or N),\n"
	  "                       or the key with this key ID\n"
	  "  wrap HANDLE --kek KEK [--out FILE]\n"
	  "                       write the RFC 5649 blob of the (extractable)\n"
	  "                       key under KEK (an AES key with the wrap use)\n"
	  "  unwrap FILE --kek KEK --type TYPE [--label TEXT] [--uses LIST]\n"
	  "         [--bits N] [--id HEX] [--extractable] [--persistent]\n"
	  "         [--sensitive]\n"
	  "                       create a key from the blob in FILE ('-' =\n"
	  "                       stdin) under KEK (unwrap use); prints its\n"
	  "                       handle\n"
	  "Options:\n"
	  "  -l, --label TEXT     rotate, find: the key family; unwrap: the label\n"
	  "                       of the new key, up to 63 characters\n"
	  "      --version N      find: the version wanted (default: newest)\n"
	  "      --id HEX         rotate: the new version's key ID; find: the\n"
	  "                       key ID looked up; unwrap: the new key's ID\n"
	  "                       (1..32 bytes in hex, unique in the partition)\n"
	  "      --kek HANDLE     wrap, unwrap: the key-encryption key (required)\n"
	  "  -o, --out FILE       wrap: the blob (default: stdout)\n"
	  "  -t, --type TYPE      unwrap: aes, hmac, rsa, ec-p256, ec-p384,\n"
	  "                       ed25519 (required)\n"
	  "  -b, --bits N         unwrap: key size (default: from the blob)\n"
	  "  -u, --uses LIST      unwrap: allowed uses (see keygen)\n",
	  "o:t:b:l:u:", 1, 3,
	  L(O_KEK) | L(O_VERSION) | L(O_EXTRACTABLE) | L(O_PERSISTENT) |
	  L(O_SENSITIVE) | L(O_ID) },
	{ "backup", cmd_backup, "",
	  "save every extractable key, wrapped under a KEK, to a file",
	  "      --kek HANDLE     key-encryption key with the wrap use (required)\n"
	  "  -o, --out FILE       the backup file (required)\n"
	  "\n"
	  "Backs up the keys of the partition the command uses (see --partition\n"
	  "and --role).  Non-extractable keys, and keys the card cannot wrap, are\n"
	  "skipped and named on stderr.  Each key's attributes (uses, flags,\n"
	  "label, state, times) are wrapped with it.  Exit status: 0 every key\n"
	  "saved, 1 the file was written but some keys were skipped, 3 device\n"
	  "or card error, 4 file error.\n",
	  "o:", 0, 0, L(O_KEK) },
	{ "restore", cmd_restore, "FILE",
	  "re-create the keys of a backup file under a KEK",
	  "      --kek HANDLE     key-encryption key with the unwrap use\n"
	  "                       (required; the same key as the backup's KEK)\n"
	  "\n"
	  "Each key gets the attributes wrapped with it; the file's clear ones\n"
	  "may only narrow them (a version 1 file: its clear attributes, not\n"
	  "authenticated).  Prints \"OLD -> NEW TYPE LABEL\" per key (--json:\n"
	  "an array of {old, new, type, label}).  Exit status: 0 every key\n"
	  "restored, 1 a blob did not unwrap or the file's attributes ask for\n"
	  "more than the blob's (wrong KEK or altered file), 3 another card\n"
	  "error (the other keys are still restored), 4 unreadable or malformed\n"
	  "file (nothing restored).\n",
	  "", 1, 1, L(O_KEK) },
	{ "keys", cmd_keys, "", "list the keys of the user partition",
	  "", "", 0, 0, 0 },
	{ "attrs", cmd_attrs, "HANDLE", "show the attributes of a key",
	  "", "", 1, 1, 0 },
	{ "destroy", cmd_destroy, "HANDLE...", "destroy keys",
	  "", "", 1, 1000, 0 },
	{ "pubkey", cmd_pubkey, "HANDLE",
	  "export the public key of an RSA, EC or Ed25519 key (PEM)",
	  "  -o, --out FILE       output file (default: stdout)\n"
	  "      --der            write DER SubjectPublicKeyInfo instead of PEM\n",
	  "o:", 1, 1, L(O_DER) },
	{ "sign", cmd_sign, "HANDLE", "sign (or MAC) a message",
	  "  -m, --mech MECH      rsa-pkcs1, rsa-pss, ecdsa, ed25519 or\n"
	  "                       hmac-sha256/384/512 (default: from the key type)\n"
	  "  -H, --hash HASH      sha256, sha384 or sha512 for RSA and ECDSA\n"
	  "                       (default: sha384 for P-384 keys, else sha256)\n"
	  "      --salt-len N     rsa-pss salt length (default: hash length)\n"
	  "      --prehashed      the input is already a digest of HASH\n"
	  "  -i, --in FILE        message (default: stdin)\n"
	  "  -o, --out FILE       signature (default: stdout)\n",
	  "m:H:i:o:", 1, 1, L(O_SALT_LEN) | L(O_PREHASHED) },
	{ "verify", cmd_verify, "HANDLE",
	  "verify a signature or MAC; exit status 1 if it does not match",
	  "  -s, --sig FILE       signature or MAC to check (required)\n"
	  "  -i, --in FILE        message (default: stdin)\n"
	  "  -m, -H, --salt-len, --prehashed   as for sign\n",
	  "s:m:H:i:", 1, 1, L(O_SALT_LEN) | L(O_PREHASHED) },
	{ "mac", cmd_sign, "HANDLE", "compute an HMAC (same as sign on an HMAC key)",
	  "  -m, --mech MECH      hmac-sha256 (default), hmac-sha384, hmac-sha512\n"
	  "  -i, --in FILE        message (default: stdin)\n"
	  "  -o, --out FILE       MAC (default: stdout)\n",
	  "m:i:o:", 1, 1, 0 },
	{ "encrypt", cmd_encrypt, "HANDLE", "encrypt data",
	  "  -m, --mech MECH      aes-ecb, aes-cbc, aes-ctr, aes-xts, aes-gcm,\n"
	  "                       rsa-oaep, rsa-raw (default: aes-gcm for AES\n"
	  "                       keys, rsa-oaep for RSA keys)\n"
	  "      --iv HEX         IV / counter block / tweak (16 bytes) or GCM\n"
	  "                       nonce (12 bytes)\n"
	  "      --aad HEX        GCM additional authenticated data\n"
	  "      --aad-file FILE  GCM additional authenticated data from a file\n"
	  "      --tag-len N      GCM tag length, 4..16 (default 16)\n"
	  "  -H, --hash HASH      rsa-oaep hash (default sha256)\n"
	  "  -i, --in FILE        input (default: stdin)\n"
	  "  -o, --out FILE       output (default: stdout); GCM: ciphertext||tag\n",
	  "m:H:i:o:", 1, 1, L(O_IV) | L(O_AAD) | L(O_AAD_FILE) | L(O_TAG_LEN) },
	{ "decrypt", cmd_decrypt, "HANDLE",
	  "decrypt data; exit status 1 if a GCM tag does not match",
	  "  options as for encrypt; GCM input is ciphertext||tag, and nothing\n"
	  "  is written when the tag does not match\n",
	  "m:H:i:o:", 1, 1, L(O_IV) | L(O_AAD) | L(O_AAD_FILE) | L(O_TAG_LEN) },
	{ "digest", cmd_digest, "", "hash data in the card",
	  "  -m, --mech MECH      sha256 (default), sha384, sha512\n"
	  "  -i, --in FILE        input (default: stdin)\n"
	  "  -o, --out FILE       write the binary digest here instead of hex\n",
	  "m:i:o:", 0, 0, 0 },
	{ "random", cmd_random, "N", "N random bytes from the card's RNG, in hex",
	  "  -o, --out FILE       write the bytes (binary) to FILE\n"
	  "      --raw            write the bytes (binary) to stdout\n",
	  "o:", 1, 1, L(O_RAW) },
	{ "token", cmd_token, "ACTION ...",
	  "key tokens for dm-crypt's paes ciphers: create, info, destroy",
	  "Actions:\n"
	  "  create --bits N [--label TEXT] [--out FILE]\n"
	  "                       generate a persistent, non-extractable AES key\n"
	  "                       for the kernel and print its token as one line\n"
	  "                       of hex (or write the raw 80 bytes to FILE);\n"
	  "                       needs CAP_SYS_ADMIN\n"
	  "  info TOKEN|--in FILE show the key a token names\n"
	  "  destroy TOKEN|--in FILE\n"
	  "                       destroy that key: whatever it encrypted is lost;\n"
	  "                       needs CAP_SYS_ADMIN\n"
	  "Options:\n"
	  "  -b, --bits N         128, 192, 256 (cbc(paes); 256 is also AES-128 for\n"
	  "                       xts(paes)) or 512 (AES-256 for xts(paes))\n"
	  "  -l, --label TEXT     label, up to 63 characters\n"
	  "  -o, --out FILE       create: write the raw token to FILE\n"
	  "  -i, --in FILE        info, destroy: read the raw token from FILE\n"
	  "                       ('-' = stdin)\n",
	  "b:l:o:i:", 1, 2, 0 },
	{ "status", cmd_status, "",
	  "cards, state and counters from the driver's netlink family",
	  "", "", 0, 0, 0 },
	{ "monitor", cmd_monitor, "",
	  "print card events (tamper, keys, PINs, audit) as JSON lines",
	  "  -n, --count N        stop after N events (exit status 1 if the\n"
	  "                       timeout comes first)\n"
	  "  -T, --timeout SEC    stop after SEC seconds\n"
	  "Needs CAP_NET_ADMIN.  Prints \"hsmctl: monitoring hsmcard events\" on\n"
	  "stderr once it listens.  Events: card_added, card_removed, state,\n"
	  "tamper, health, key_created, key_destroyed, token_created,\n"
	  "token_destroyed, login_failed (partition, role, tries_left, locked,\n"
	  "pid, uid), audit_high_water (unread, high_water).\n",
	  "n:T:", 0, 0, 0 },
	{ "audit", cmd_audit, "",
	  "read and verify the card's audit log",
	  "      --from SEQ       start at sequence number SEQ (default 0: the\n"
	  "                       whole log, checked from its first record)\n"
	  "      --checkpoint     have the card sign a checkpoint first, so that\n"
	  "                       every record read is covered by a signature\n"
	  "\n"
	  "Prints one line per record (seq, time, event, status, partition,\n"
	  "handle, label), or one JSON object per line with --json, then the\n"
	  "verdict.  Needs CAP_SYS_ADMIN.  Exit status: 0 verified, 1 a gap,\n"
	  "reorder, edit or bad signature (the seq is named on stderr), 2 usage\n"
	  "error, 3 device or card error (a tampered card has no audit key: the\n"
	  "log is shown and its chain checked, but no signature can be).\n",
	  "", 0, 0, L(O_FROM) | L(O_CHECKPOINT) },
	{ "login", cmd_login, "",
	  "check a PIN: log in as --role of --partition and out again",
	  "Exit status 0: the PIN is right; 1: wrong PIN (the tries left are\n"
	  "printed) or the role is locked.\n",
	  "", 0, 0, 0 },
	{ "set-pin", cmd_set_pin, "",
	  "set the PIN of --role in --partition",
	  "      --as ROLE        whose PIN $HSMCARD_PIN is: the role itself\n"
	  "                       (default), so (the SO sets or unlocks the\n"
	  "                       User) or admin (sets or unlocks the SO)\n"
	  "      --new-pin-file FILE  the new PIN (default: $HSMCARD_NEW_PIN)\n",
	  "", 0, 0, L(O_NEW_PIN_FILE) | L(O_AS) },
	{ "init", cmd_init, "",
	  "initialize the card: DESTROYS EVERY KEY, sets a new admin PIN",
	  "      --new-pin-file FILE  the new admin PIN (default:\n"
	  "                       $HSMCARD_NEW_PIN); $HSMCARD_PIN or --pin-file\n"
	  "                       is the current one (none on a new card).\n"
	  "                       Needs CAP_SYS_ADMIN.\n",
	  "", 0, 0, L(O_NEW_PIN_FILE) },
	{ "partition", cmd_partition, "ACTION [N]",
	  "partitions: create, delete N, info N, list",
	  "Actions:\n"
	  "  create --label TEXT [--max-fail N] [--partition N]\n"
	  "                       make a partition (first free one unless\n"
	  "                       --partition) and print its number; the admin\n"
	  "                       PIN comes from $HSMCARD_PIN, the SO PIN from\n"
	  "                       $HSMCARD_NEW_PIN or --new-pin-file; --max-fail:\n"
	  "                       wrong PINs that lock a role (1..15, default 5)\n"
	  "  delete N             destroy partition N and all its keys (admin\n"
	  "                       PIN); N = 0 resets partition 0 (no PINs again)\n"
	  "  info N               one partition\n"
	  "  list                 every partition\n"
	  "create and delete need CAP_SYS_ADMIN.\n",
	  "l:", 1, 2, L(O_NEW_PIN_FILE) | L(O_MAX_FAIL) },
	{ "mechs", cmd_mechs, "", "list the mechanism names hsmctl knows",
	  "", "", 0, 0, 0 },
	{ "help", cmd_help, "[COMMAND]", "show help for hsmctl or a command",
	  "", "", 0, 1, 0 },
	{ }
};

static const struct command *find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static void main_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [-d DEVICE] [--json] COMMAND [ARGS...]\n"
		"\n"
		"Manage and use hsmcard hardware security modules.\n"
		"\n"
		"Commands:\n", progname);
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-9s %-10s %s\n", c->name, c->args, c->summary);
	fprintf(f,
		"\n"
		"Common options (before or after the command):\n"
		"  -d, --device DEV     card to use (default: $HSMCARD_DEVICE or\n"
		"                       /dev/hsmcard0)\n"
		"  -j, --json           machine-readable output\n"
		"      --partition N    log in to partition N (default 0) ...\n"
		"      --role ROLE      ... as so, user or admin before the command,\n"
		"                       with the PIN of $HSMCARD_PIN or ...\n"
		"      --pin-file FILE  ... of FILE (never on the command line:\n"
		"                       other users could read it from the process\n"
		"                       list)\n"
		"  -h, --help           help (\"%s COMMAND --help\" for a command)\n"
		"      --version        print the version\n"
		"\n"
		"Key handles are printed and read in hex (0x...).\n"
		"Exit status: 0 success, 1 verification or authentication failed,\n"
		"2 usage error, 3 device or card error, 4 file error; a wrong or\n"
		"locked PIN is 1.\n",
		progname);
}

static void command_usage(FILE *f, const struct command *c)
{
	fprintf(f, "Usage: %s %s [OPTIONS]%s%s\n\n%c%s.\n", progname,
		c->name, *c->args ? " " : "", c->args,
		toupper((unsigned char)c->summary[0]), c->summary + 1);
	/* A help text with its own headings (token) is printed as it is. */
	if (!strncmp(c->help, "Actions:", 8))
		fprintf(f, "\n%s", c->help);
	else if (*c->help)
		fprintf(f, "\nOptions:\n%s", c->help);
	fprintf(f,
		"\nCommon options: -d/--device DEV, -j/--json, -h/--help,\n"
		"--partition N --role ROLE [--pin-file FILE] (log in first)\n");
}

static int cmd_help(const struct opts *o)
{
	const struct command *c;

	if (!o->argc) {
		main_usage(stdout);
		return EX_OK;
	}
	c = find_command(o->argv[0]);
	if (!c) {
		err_msg("unknown command '%s'", o->argv[0]);
		return EX_USAGE;
	}
	command_usage(stdout, c);
	return EX_OK;
}

/* Parse one option for command @c (NULL: global options only). */
static int take_option(const struct command *c, int opt, struct opts *o)
{
	if (opt == O_PARTITION || opt == O_ROLE || opt == O_PIN_FILE) {
		/* global: any command */
	} else if (opt >= O_EXTRACTABLE) {
		if (!c || !(c->longmask & L(opt)))
			return -1;
	} else if (opt != O_DEVICE && opt != O_JSON &&
		   (!c || !strchr(c->shortopts, opt))) {
		return -1;
	}
	switch (opt) {
	case O_DEVICE:
		o->device = optarg;
		break;
	case O_PARTITION:
		o->partition = optarg;
		break;
	case O_ROLE:
		o->role = optarg;
		break;
	case O_PIN_FILE:
		o->pin_file = optarg;
		break;
	case O_NEW_PIN_FILE:
		o->new_pin_file = optarg;
		break;
	case O_MAX_FAIL:
		o->max_fail = optarg;
		break;
	case O_AS:
		o->as = optarg;
		break;
	case O_KEK:
		o->kek = optarg;
		break;
	case O_ID:
		o->id = optarg;
		break;
	case O_JSON:
		o->json = true;
		break;
	case O_TYPE:
		o->type = optarg;
		break;
	case O_BITS:
		o->bits = optarg;
		break;
	case O_CURVE:
		o->curve = optarg;
		break;
	case O_LABEL:
		o->label = optarg;
		break;
	case O_USES:
		o->uses = optarg;
		break;
	case O_MECH:
		o->mech = optarg;
		break;
	case O_HASH:
		o->hash = optarg;
		break;
	case O_IN:
		o->in = optarg;
		break;
	case O_OUT:
		o->out = optarg;
		break;
	case O_SIG:
		o->sig = optarg;
		break;
	case O_IV:
		o->iv = optarg;
		break;
	case O_AAD:
		o->aad = optarg;
		break;
	case O_AAD_FILE:
		o->aad_file = optarg;
		break;
	case O_TAG_LEN:
		o->tag_len = optarg;
		break;
	case O_SALT_LEN:
		o->salt_len = optarg;
		break;
	case O_COUNT:
		o->count = optarg;
		break;
	case O_TIMEOUT:
		o->timeout = optarg;
		break;
	case O_EXTRACTABLE:
		o->keyflags |= HSMCARD_KEYF_EXTRACTABLE;
		break;
	case O_SESSION:
		o->keyflags |= HSMCARD_KEYF_SESSION;
		break;
	case O_PERSISTENT:
		o->keyflags |= HSMCARD_KEYF_PERSISTENT;
		break;
	case O_SENSITIVE:
		o->keyflags |= HSMCARD_KEYF_SENSITIVE;
		break;
	case O_PREHASHED:
		o->prehashed = true;
		break;
	case O_DER:
		o->der = true;
		break;
	case O_RAW:
		o->raw = true;
		break;
	case O_FROM:
		o->from = optarg;
		break;
	case O_VERSION:
		o->version = optarg;
		break;
	case O_CHECKPOINT:
		o->checkpoint = true;
		break;
	default:
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option global_opts[] = {
		{ "device",	required_argument, NULL, O_DEVICE },
		{ "json",	no_argument,	   NULL, O_JSON },
		{ "help",	no_argument,	   NULL, O_HELP },
		{ "version",	no_argument,	   NULL, 'V' },
		{ "partition",	required_argument, NULL, O_PARTITION },
		{ "role",	required_argument, NULL, O_ROLE },
		{ "pin-file",	required_argument, NULL, O_PIN_FILE },
		{ }
	};
	const struct command *c;
	struct opts o = { };
	char shortopts[64];
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+d:jh", global_opts,
				  NULL)) != -1) {
		if (opt == O_HELP) {
			main_usage(stdout);
			return EX_OK;
		}
		if (opt == 'V') {
			printf("hsmctl %s\n", HSMCTL_VERSION);
			return EX_OK;
		}
		if (opt == '?' || take_option(NULL, opt, &o)) {
			err_msg("invalid option '%s'; try '%s --help'",
				argv[optind - 1], progname);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		main_usage(stderr);
		return EX_USAGE;
	}
	c = find_command(argv[optind]);
	if (!c) {
		err_msg("unknown command '%s'; try '%s --help'", argv[optind],
			progname);
		return EX_USAGE;
	}

	/* The command's own options; argv[optind] plays argv[0]. */
	argc -= optind;
	argv += optind;
	optind = 0;	/* 0: glibc re-initialises getopt for the new optstring */
	snprintf(shortopts, sizeof(shortopts), "d:jh%s", c->shortopts);
	for (;;) {
		int li = -1;

		opt = getopt_long(argc, argv, shortopts, long_opts, &li);
		if (opt == -1)
			break;
		if (opt == O_HELP) {
			command_usage(stdout, c);
			return EX_OK;
		}
		if (opt != '?' && !take_option(c, opt, &o))
			continue;
		if (opt != '?' && li >= 0)
			err_msg("%s: option '--%s' does not apply", c->name,
				long_opts[li].name);
		else if (opt != '?')
			err_msg("%s: option '-%c' does not apply", c->name, opt);
		else if (optopt > 0 && optopt < 128 &&
			 strchr(shortopts, optopt))
			err_msg("%s: option '-%c' needs a value", c->name,
				optopt);
		else if (optopt > 0 && optopt < 128)
			err_msg("%s: unknown option '-%c'", c->name, optopt);
		else
			err_msg("%s: unknown option or missing value: '%s'",
				c->name, argv[optind - 1]);
		fprintf(stderr, "Try '%s %s --help'.\n", progname, c->name);
		return EX_USAGE;
	}
	o.argc = argc - optind;
	o.argv = argv + optind;
	if (o.argc < c->min_args || o.argc > c->max_args) {
		err_msg("%s: expected %s%s", c->name,
			*c->args ? "arguments " : "no arguments",
			c->args);
		command_usage(stderr, c);
		return EX_USAGE;
	}
	if ((c->fn == cmd_keygen || c->fn == cmd_import) && !o.type) {
		err_msg("%s: --type is required", c->name);
		return EX_USAGE;
	}
	if (c->fn == cmd_verify && !o.sig) {
		err_msg("verify: --sig FILE is required");
		return EX_USAGE;
	}
	return c->fn(&o);
}
