/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the hsmcard guest tests (selftests/vm/ *_test.c):
 * shell commands, sysfs files, timing, /proc/crypto, the driver's
 * per-algorithm debugfs counters, finding the card on the PCI bus, AF_ALG
 * sockets and the key ioctls the tests use to set up their keys.
 *
 * Everything here is static inline so that each test takes only what it
 * uses.  Functions that can fail return 0 or a negative errno unless their
 * comment says otherwise.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSMCARD_UTIL_H
#define HSMCARD_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_alg.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsmcard.h"
#include "../../driver/hsmcard_hw.h"

#define HSMCARD_PCI_DEVICES	"/sys/bus/pci/devices"
/* The first card: its node, its sysfs directory, the driver, a knob. */
#define DEV_PATH		"/dev/hsmcard0"
#define SYSFS_DEV		"/sys/class/misc/hsmcard0/device"
#define DRV_DIR			"/sys/bus/pci/drivers/hsmcard"
#define TIMEOUT_PARAM		"/sys/module/hsmcard/parameters/cmd_timeout_ms"
#define HSMCARD_STATS_GLOB	"/sys/kernel/debug/hsmcard/*/crypto"
#define HSMCARD_SH_MAX		4096

#ifndef SOL_ALG
#define SOL_ALG			279
#endif

/* ---- timing ---- */

/**
 * now_ms() - monotonic time in milliseconds
 *
 * Return: CLOCK_MONOTONIC in ms, for deadlines and durations.
 */
static inline long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- files ---- */

/**
 * read_str() - read a small (sysfs) file as a string
 * @path: file to read
 * @buf: where the contents go, NUL-terminated
 * @len: size of @buf
 *
 * Trailing newlines and blanks are removed.  At most @len - 1 bytes are
 * read.
 *
 * Return: 0 or -errno.
 */
static inline int read_str(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/**
 * write_str() - write a string to a (sysfs) file in one write()
 * @path: file to write
 * @s: the string, without its NUL
 *
 * Return: 0, -errno of open() or write(), or -EIO on a short write.
 */
static inline int write_str(const char *path, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd, err;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	err = errno;
	close(fd);
	if (n < 0)
		return -err;
	return n == (ssize_t)len ? 0 : -EIO;
}

/**
 * read_full() - read exactly @len bytes from @fd
 * @fd: file or socket
 * @buf: destination
 * @len: bytes wanted
 *
 * Retries short reads and EINTR.
 *
 * Return: 0, -errno, or -EIO at end of file before @len bytes.
 */
static inline int read_full(int fd, unsigned char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

/* ---- shell commands ---- */

/**
 * sh_vformat() - format a shell command, refusing to truncate it
 * @cmd: destination, HSMCARD_SH_MAX bytes
 * @fmt: printf format
 * @ap: its arguments
 *
 * Return: 0, or -1 if the command does not fit (it must not run cut short).
 */
static inline int sh_vformat(char *cmd, const char *fmt, va_list ap)
{
	int n = vsnprintf(cmd, HSMCARD_SH_MAX, fmt, ap);

	return n < 0 || n >= HSMCARD_SH_MAX ? -1 : 0;
}

/**
 * sh() - run a shell command built from a printf format
 * @fmt: printf format of the command line
 *
 * Return: the command's exit status, or -1 if it could not be run or did
 * not exit normally.
 */
static inline __attribute__((format(printf, 1, 2)))
int sh(const char *fmt, ...)
{
	char cmd[HSMCARD_SH_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	st = sh_vformat(cmd, fmt, ap);
	va_end(ap);
	if (st)
		return -1;
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/**
 * sh_line() - run a shell command and keep the first line of its output
 * @out: the first line, without its newline ("" if there was none)
 * @len: size of @out
 * @fmt: printf format of the command line
 *
 * The rest of the output is read and dropped.
 *
 * Return: the command's exit status, or -1 if it could not be run or did
 * not exit normally.
 */
static inline __attribute__((format(printf, 3, 4)))
int sh_line(char *out, size_t len, const char *fmt, ...)
{
	char cmd[HSMCARD_SH_MAX];
	va_list ap;
	FILE *p;
	int st;

	out[0] = '\0';
	va_start(ap, fmt);
	st = sh_vformat(cmd, fmt, ap);
	va_end(ap);
	if (st)
		return -1;
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (!fgets(out, len, p))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	while (fgetc(p) != EOF)
		;
	st = pclose(p);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* ---- the card on the PCI bus ---- */

/**
 * find_card() - find the card's PCI address by vendor and device ID
 * @bdf: the address ("0000:00:03.0"), bound to a driver or not
 * @len: size of @bdf
 *
 * Return: 0, -ENODEV if there is no card, or -errno.
 */
static inline int find_card(char *bdf, size_t len)
{
	char path[PATH_MAX], v[32], d[32];
	struct dirent *de;
	DIR *dir;
	int ret = -ENODEV;

	dir = opendir(HSMCARD_PCI_DEVICES);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), HSMCARD_PCI_DEVICES "/%s/vendor",
			 de->d_name);
		if (read_str(path, v, sizeof(v)))
			continue;
		snprintf(path, sizeof(path), HSMCARD_PCI_DEVICES "/%s/device",
			 de->d_name);
		if (read_str(path, d, sizeof(d)))
			continue;
		if (strtoul(v, NULL, 16) == HSM_PCI_VENDOR_ID &&
		    strtoul(d, NULL, 16) == HSM_PCI_DEVICE_ID) {
			snprintf(bdf, len, "%.200s", de->d_name);
			ret = 0;
			break;
		}
	}
	closedir(dir);
	return ret;
}

/* ---- /proc/crypto ---- */

/**
 * proc_crypto_has() - is @driver a registered crypto API driver?
 * @driver: driver name (cra_driver_name)
 *
 * Return: true if /proc/crypto lists it.
 */
static inline bool proc_crypto_has(const char *driver)
{
	char line[256], v[128];
	bool found = false;
	FILE *f = fopen("/proc/crypto", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "driver : %127s", v) == 1 && !strcmp(v, driver))
			found = true;
	fclose(f);
	return found;
}

/**
 * proc_crypto_selftest() - the "selftest" field of @driver in /proc/crypto
 * @driver: driver name
 * @val: where the value goes ("passed", "unknown")
 * @len: size of @val
 *
 * Return: 1 found, 0 not found, -errno.
 */
static inline int proc_crypto_selftest(const char *driver, char *val,
				       size_t len)
{
	char line[256], cur[128] = "";
	int found = 0;
	FILE *f;

	f = fopen("/proc/crypto", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char key[64], v[64];

		if (sscanf(line, "%63s : %63s", key, v) != 2)
			continue;
		if (!strcmp(key, "driver")) {
			snprintf(cur, sizeof(cur), "%s", v);
		} else if (!strcmp(key, "selftest") && !strcmp(cur, driver)) {
			snprintf(val, len, "%s", v);
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

/* ---- the driver's debugfs counters ---- */

/**
 * struct alg_stats - one algorithm's counters in debugfs
 * @requests: requests the card completed
 * @bytes: bytes of input they carried
 * @errors: requests that failed
 * @backlogged: requests that waited in the backlog
 */
struct alg_stats {
	unsigned long long requests, bytes, errors, backlogged;
};

/**
 * read_stats() - the counters of @driver, summed over every card
 * @driver: driver name, as the first word of a line in
 *          /sys/kernel/debug/hsmcard/<card>/crypto
 * @st: the sums (all zero if not found)
 *
 * Return: 0, or -ENOENT if no card lists @driver.
 */
static inline int read_stats(const char *driver, struct alg_stats *st)
{
	glob_t g;
	size_t i;
	int found = 0;

	memset(st, 0, sizeof(*st));
	if (glob(HSMCARD_STATS_GLOB, 0, NULL, &g))
		return -ENOENT;
	for (i = 0; i < g.gl_pathc; i++) {
		char line[256], name[64];
		struct alg_stats s;
		FILE *f = fopen(g.gl_pathv[i], "r");

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line,
				   "%63s requests %llu bytes %llu errors %llu backlogged %llu",
				   name, &s.requests, &s.bytes, &s.errors,
				   &s.backlogged) != 5 || strcmp(name, driver))
				continue;
			st->requests += s.requests;
			st->bytes += s.bytes;
			st->errors += s.errors;
			st->backlogged += s.backlogged;
			found = 1;
		}
		fclose(f);
	}
	globfree(&g);
	return found ? 0 : -ENOENT;
}

/**
 * card_requests() - requests the card completed for @driver
 * @driver: driver name
 *
 * Return: the sum over every card, or -1 if no card lists @driver.
 */
static inline long long card_requests(const char *driver)
{
	struct alg_stats st;

	return read_stats(driver, &st) ? -1 : (long long)st.requests;
}

/**
 * struct hash_alg - a hash driver of the card and its OpenSSL digest
 * @driver: crypto API driver name
 * @md: OpenSSL digest name (EVP_get_digestbyname())
 * @hmac: the driver is the HMAC of @md
 */
struct hash_alg {
	const char *driver;
	const char *md;
	bool hmac;
};

/* The hashes and HMACs the card registers with the crypto API. */
static const struct hash_alg hash_algs[] __attribute__((unused)) = {
	{ "sha256-hsmcard", "sha256", false },
	{ "sha384-hsmcard", "sha384", false },
	{ "sha512-hsmcard", "sha512", false },
	{ "hmac-sha256-hsmcard", "sha256", true },
	{ "hmac-sha512-hsmcard", "sha512", true },
};

/* ---- AF_ALG ---- */

/* Largest IV alg_cmsg() takes. */
#define ALG_MAX_IVLEN		16

/* Control buffer for alg_cmsg(): operation, IV and AAD length. */
#define ALG_CMSG_SPACE	(CMSG_SPACE(4) +				\
			 CMSG_SPACE(sizeof(struct af_alg_iv) + ALG_MAX_IVLEN) + \
			 CMSG_SPACE(4))

/**
 * alg_tfm() - an AF_ALG transform socket bound to a crypto API algorithm
 * @type: "skcipher", "aead", "hash"
 * @driver: driver name (pins the implementation) or algorithm name
 * @key: key for ALG_SET_KEY, or NULL to set none
 * @keylen: its length
 * @authsize: AEAD tag length for ALG_SET_AEAD_AUTHSIZE, or 0 to keep
 *            the default
 *
 * Return: the socket, or -errno of the step that failed.
 */
static inline int alg_tfm(const char *type, const char *driver,
			  const unsigned char *key, unsigned int keylen,
			  unsigned int authsize)
{
	struct sockaddr_alg sa = { .salg_family = AF_ALG };
	int fd;

	snprintf((char *)sa.salg_type, sizeof(sa.salg_type), "%s", type);
	snprintf((char *)sa.salg_name, sizeof(sa.salg_name), "%s", driver);
	fd = socket(AF_ALG, SOCK_SEQPACKET, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (key && setsockopt(fd, SOL_ALG, ALG_SET_KEY, key, keylen)) ||
	    (authsize && setsockopt(fd, SOL_ALG, ALG_SET_AEAD_AUTHSIZE, NULL,
				    authsize))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/**
 * alg_cmsg() - fill the control message of an AF_ALG cipher request
 * @msg: the message; its msg_control points at ALG_CMSG_SPACE zeroed bytes
 * @encrypt: ALG_OP_ENCRYPT, else ALG_OP_DECRYPT
 * @iv: IV (ALG_SET_IV), or NULL to keep the operation socket's
 * @ivlen: its length, at most ALG_MAX_IVLEN
 * @aead: send @assoclen (ALG_SET_AEAD_ASSOCLEN)
 * @assoclen: bytes of associated data at the start of the input
 *
 * Sets msg_controllen to the bytes used.
 *
 * Return: 0, or -EINVAL if @ivlen is too long.
 */
static inline int alg_cmsg(struct msghdr *msg, bool encrypt,
			   const unsigned char *iv, unsigned int ivlen,
			   bool aead, unsigned int assoclen)
{
	struct cmsghdr *c;
	size_t used;

	if (iv && ivlen > ALG_MAX_IVLEN)
		return -EINVAL;
	/* the whole buffer first: CMSG_NXTHDR() checks against it */
	msg->msg_controllen = ALG_CMSG_SPACE;
	c = CMSG_FIRSTHDR(msg);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_OP;
	c->cmsg_len = CMSG_LEN(4);
	*(__u32 *)CMSG_DATA(c) = encrypt ? ALG_OP_ENCRYPT : ALG_OP_DECRYPT;
	used = CMSG_SPACE(4);
	if (iv) {
		struct af_alg_iv *aiv;

		c = CMSG_NXTHDR(msg, c);
		c->cmsg_level = SOL_ALG;
		c->cmsg_type = ALG_SET_IV;
		c->cmsg_len = CMSG_LEN(sizeof(*aiv) + ivlen);
		aiv = (struct af_alg_iv *)CMSG_DATA(c);
		aiv->ivlen = ivlen;
		memcpy(aiv->iv, iv, ivlen);
		used += CMSG_SPACE(sizeof(*aiv) + ivlen);
	}
	if (aead) {
		c = CMSG_NXTHDR(msg, c);
		c->cmsg_level = SOL_ALG;
		c->cmsg_type = ALG_SET_AEAD_ASSOCLEN;
		c->cmsg_len = CMSG_LEN(4);
		*(__u32 *)CMSG_DATA(c) = assoclen;
		used += CMSG_SPACE(4);
	}
	msg->msg_controllen = used;
	return 0;
}

/* ---- /dev/hsmcardN ---- */

/**
 * xioctl() - ioctl() with the error as return value
 * @fd: open device
 * @req: ioctl request
 * @arg: its argument
 *
 * Return: 0 or -errno.
 */
static inline int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

/**
 * fill_pattern() - fill @p with a deterministic pattern
 * @p: buffer
 * @len: its length
 * @seed: picks the pattern; different seeds give different data
 */
static inline void fill_pattern(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 8));
}

/**
 * gen_key() - generate a key on the card (HSMCARD_IOC_KEY_GENERATE)
 * @fd: open device
 * @type: HSMCARD_KEY_*
 * @bits: key size
 * @uses: HSMCARD_USE_* mask
 * @label: label, or NULL for none
 * @out: the new key's attributes (its handle among them), or NULL
 *
 * Return: 0 or -errno.
 */
static inline int gen_key(int fd, uint16_t type, uint16_t bits, uint32_t uses,
			  const char *label, struct hsmcard_key_attrs *out)
{
	struct hsmcard_key_attrs a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.type = type;
	a.bits = bits;
	a.uses = uses;
	if (label)
		snprintf(a.label, sizeof(a.label), "%s", label);
	ret = xioctl(fd, HSMCARD_IOC_KEY_GENERATE, &a);
	if (!ret && out)
		*out = a;
	return ret;
}

/**
 * import_key() - import a clear key into the card (HSMCARD_IOC_KEY_IMPORT)
 * @fd: open device
 * @type: HSMCARD_KEY_*
 * @bits: key size
 * @uses: HSMCARD_USE_* mask
 * @key: the key material
 * @key_len: its length
 * @handle: the new key's handle
 *
 * Return: 0 or -errno.
 */
static inline int import_key(int fd, uint16_t type, uint16_t bits,
			     uint32_t uses, const void *key, uint32_t key_len,
			     uint64_t *handle)
{
	struct hsmcard_key_import imp;
	int ret;

	memset(&imp, 0, sizeof(imp));
	imp.attrs.type = type;
	imp.attrs.bits = bits;
	imp.attrs.uses = uses;
	imp.key = (uintptr_t)key;
	imp.key_len = key_len;
	ret = xioctl(fd, HSMCARD_IOC_KEY_IMPORT, &imp);
	if (!ret)
		*handle = imp.attrs.handle;
	return ret;
}

/**
 * destroy_key() - destroy a key on the card, ignoring errors (cleanup)
 * @fd: open device
 * @handle: the key
 */
static inline void destroy_key(int fd, uint64_t handle)
{
	struct hsmcard_key_handle kh = { .handle = handle };

	xioctl(fd, HSMCARD_IOC_KEY_DESTROY, &kh);
}

/**
 * export_pub() - the public half of a key pair, as an OpenSSL key
 * @fd: open device
 * @handle: the key pair
 *
 * Return: a new EVP_PKEY (EVP_PKEY_free() it), or NULL.
 */
static inline EVP_PKEY *export_pub(int fd, uint64_t handle)
{
	uint8_t der[4096];
	struct hsmcard_key_pubkey pk = {
		.handle = handle, .buf = (uintptr_t)der, .len = sizeof(der),
	};
	const unsigned char *p = der;

	if (xioctl(fd, HSMCARD_IOC_KEY_PUBKEY, &pk))
		return NULL;
	return d2i_PUBKEY(NULL, &p, pk.len);
}

/**
 * ossl_verify() - verify a signature the card made, with OpenSSL
 * @pk: the public key (export_pub())
 * @md: the digest
 * @pad: 0 for the key type's default (EC, Ed25519, RSA PKCS#1 v1.5),
 *       RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING
 * @salt: PSS salt length (with RSA_PKCS1_PSS_PADDING)
 * @prehashed: @msg is already the digest
 * @msg: the message or digest
 * @msg_len: its length
 * @sig: the signature
 * @sig_len: its length
 *
 * Return: 1 if the signature verifies, else 0.
 */
static inline int ossl_verify(EVP_PKEY *pk, const EVP_MD *md, int pad, int salt,
			      bool prehashed, const uint8_t *msg,
			      size_t msg_len, const uint8_t *sig,
			      size_t sig_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *ctx;
	int ok = 0;

	if (prehashed) {
		pctx = EVP_PKEY_CTX_new(pk, NULL);
		if (pctx && EVP_PKEY_verify_init(pctx) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pctx, md) == 1 &&
		    (!pad || EVP_PKEY_CTX_set_rsa_padding(pctx, pad) == 1) &&
		    (pad != RSA_PKCS1_PSS_PADDING ||
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) == 1))
			ok = EVP_PKEY_verify(pctx, sig, sig_len, msg,
					     msg_len) == 1;
		EVP_PKEY_CTX_free(pctx);
		return ok;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pk) == 1 &&
	    (!pad || EVP_PKEY_CTX_set_rsa_padding(pctx, pad) == 1) &&
	    (pad != RSA_PKCS1_PSS_PADDING ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) == 1))
		ok = EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* ---- one-shot operations ---- */

/* Run a struct hsmcard_op ioctl; returns 0 or -errno, *out_len updated. */
static inline int run_op(int fd, unsigned long req, uint64_t handle,
			 uint16_t mech, uint16_t mparam, uint32_t flags,
			 const void *in, uint32_t in_len, void *out,
			 uint32_t *out_len)
{
	struct hsmcard_op op;
	int ret;

	memset(&op, 0, sizeof(op));
	op.handle = handle;
	op.mech = mech;
	op.mparam = mparam;
	op.flags = flags;
	op.in = (uintptr_t)in;
	op.in_len = in_len;
	op.out = (uintptr_t)out;
	op.out_len = *out_len;
	ret = xioctl(fd, req, &op);
	*out_len = op.out_len;
	return ret;
}

/* ---- command rings without the library ---- */

/* The cookie tring_run() expects of job i. */
#define TRING_COOKIE(i)		(0xc0de000000000000ULL | (i))

/**
 * struct tring - a command ring set up by hand (tring_open())
 * @dev: the card's fd
 * @fd: the ring's fd
 * @map: the ring mapping
 * @map_len: its length
 * @hdr: ring header in @map
 * @sq: submission entries in @map
 * @cq: completion entries in @map
 * @entries: ring size
 * @sq_tail: local copy of what was published
 * @arena: the registered arena (anonymous memory)
 * @arena_len: its length
 * @max_job_len: the driver's per-job length limit
 */
struct tring {
	int dev;
	int fd;
	void *map;
	size_t map_len;
	struct hsmcard_ring_hdr *hdr;
	struct hsmcard_ring_sqe *sq;
	struct hsmcard_ring_cqe *cq;
	uint32_t entries;
	uint32_t sq_tail;	/* local copy of what we published */
	uint8_t *arena;
	size_t arena_len;
	uint32_t max_job_len;
};

static inline int ring_setup_raw(int dev, uint32_t entries, void *arena,
			  size_t arena_len, struct hsmcard_ring_setup *rs)
{
	memset(rs, 0, sizeof(*rs));
	rs->entries = entries;
	rs->arena = (uintptr_t)arena;
	rs->arena_len = arena_len;
	return xioctl(dev, HSMCARD_IOC_RING_SETUP, rs);
}

static inline int tring_open(int dev, struct tring *r, uint32_t entries,
			     size_t arena_len)
{
	struct hsmcard_ring_setup rs;
	int ret;

	memset(r, 0, sizeof(*r));
	r->dev = dev;
	r->fd = -1;
	r->arena = mmap(NULL, arena_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->arena == MAP_FAILED)
		return -errno;
	r->arena_len = arena_len;
	ret = ring_setup_raw(dev, entries, r->arena, arena_len, &rs);
	if (ret)
		return ret;
	r->fd = rs.fd;
	r->entries = entries;
	r->max_job_len = rs.max_job_len;
	r->map_len = rs.mmap_len;
	r->map = mmap(NULL, rs.mmap_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		      r->fd, 0);
	if (r->map == MAP_FAILED)
		return -errno;
	r->hdr = r->map;
	r->sq = (void *)((char *)r->map + rs.sq_off);
	r->cq = (void *)((char *)r->map + rs.cq_off);
	if (r->hdr->sq_entries != entries || r->hdr->cq_entries != entries)
		return -EPROTO;
	return 0;
}

static inline void tring_close(struct tring *r)
{
	if (r->map && r->map != MAP_FAILED)
		munmap(r->map, r->map_len);
	if (r->fd >= 0)
		close(r->fd);
	if (r->arena && r->arena != MAP_FAILED)
		munmap(r->arena, r->arena_len);
	r->fd = -1;
	r->map = NULL;
	r->arena = NULL;
}

static inline uint32_t load_acq(uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_rel(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/*
 * tring_run() - run @n jobs through the ring, as many at a time as fit
 * @r: the ring
 * @jobs: the entries; the copies in the ring get TRING_COOKIE(i) as cookie
 * @n: how many
 * @out: completion i lands in @out[i]
 *
 * Submission is retried while it fails with EAGAIN (a controller reset
 * runs).
 *
 * Return: 0, -ETIMEDOUT, -EPROTO (bad or duplicate cookie) or the submit
 * errno.
 */
static inline int tring_run(struct tring *r,
			    const struct hsmcard_ring_sqe *jobs, unsigned int n,
			    struct hsmcard_ring_cqe *out)
{
	unsigned int pushed = 0, got = 0, i;
	long deadline = now_ms() + 120000;
	uint8_t *seen = calloc(n, 1);
	int ret = 0;

	if (!seen)
		return -ENOMEM;
	while (got < n) {
		uint32_t head = load_acq(&r->hdr->sq_head);
		uint32_t cqh, cqt;
		struct pollfd pfd;
		long s;

		while (pushed < n && r->sq_tail - head < r->entries) {
			struct hsmcard_ring_sqe *e;

			e = &r->sq[r->sq_tail & (r->entries - 1)];
			*e = jobs[pushed];
			e->cookie = TRING_COOKIE(pushed);
			pushed++;
			r->sq_tail++;
		}
		store_rel(&r->hdr->sq_tail, r->sq_tail);
		s = ioctl(r->fd, HSMCARD_IOC_RING_SUBMIT, r->sq_tail - head);
		if (s < 0 && errno == EAGAIN && now_ms() < deadline) {
			/* a controller reset is running: try again */
			usleep(10000);
			continue;
		}
		if (s < 0) {
			ret = -errno;
			break;
		}
		cqh = r->hdr->cq_head;
		cqt = load_acq(&r->hdr->cq_tail);
		if (cqh == cqt) {
			if (now_ms() > deadline) {
				ret = -ETIMEDOUT;
				break;
			}
			pfd.fd = r->fd;
			pfd.events = POLLIN;
			poll(&pfd, 1, 100);
			continue;
		}
		for (; cqh != cqt; cqh++) {
			struct hsmcard_ring_cqe c = r->cq[cqh & (r->entries - 1)];

			i = (unsigned int)(c.cookie & 0xffffffff);
			if ((c.cookie & ~0xffffffffULL) != TRING_COOKIE(0) || i >= n ||
			    seen[i]) {
				ret = -EPROTO;
				goto out;
			}
			seen[i] = 1;
			out[i] = c;
			got++;
		}
		store_rel(&r->hdr->cq_head, cqh);
	}
out:
	free(seen);
	return ret;
}


#endif /* HSMCARD_UTIL_H */
