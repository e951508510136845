// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The card's audit log through the driver: HSMCARD_IOC_AUDIT_READ,
 * HSMCARD_IOC_AUDIT_PUBKEY and HSMCARD_IOC_AUDIT_CHECKPOINT, and
 * `hsmctl audit`, in a guest with the card and the driver loaded.
 *
 * Oracles: the record layout and rules of Documentation/hsmcard/hw.rst
 * ("Audit log"), read byte by byte here; OpenSSL (libcrypto in this
 * process) for the SHA-256 chain and the ECDSA P-256 checkpoint
 * signatures; the key handles and errnos the other ioctls returned.
 *
 * hsmctl is found through $HSMCTL, else $HSMCARD_BUILD/tools/hsmctl, else
 * $PATH.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define REC		HSMCARD_AUDIT_REC_SIZE
#define MAX_RECS	4096
#define HSMCTL_TIMEOUT	300

/* Card statuses the records carry (hw.rst, "Status codes"). */
#define SC_SUCCESS		0x00
#define SC_INVALID_HANDLE	0x0b
#define SC_INVALID_TOKEN	0x18

/* Admin opcodes (hw.rst, "Admin commands"). */
#define OP_KEY_GENERATE		0x10
#define OP_KEY_DESTROY		0x15
#define OP_TOKEN_CREATE		0x18
#define OP_TOKEN_OPEN		0x19

/* ---- reading records byte by byte (little endian, hw.rst offsets) ---- */

static uint64_t le(const uint8_t *p, size_t off, unsigned int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[off + bytes];
	return v;
}

#define R_SEQ(r)	le(r, 0, 8)
#define R_TIME(r)	le(r, 8, 8)
#define R_EVENT(r)	((uint16_t)le(r, 16, 2))
#define R_STATUS(r)	((uint16_t)le(r, 18, 2))
#define R_PART(r)	((uint32_t)le(r, 20, 4))
#define R_HANDLE(r)	le(r, 24, 8)
#define R_DETAIL(r)	((uint32_t)le(r, 40, 4))
#define R_OPCODE(r)	((r)[44])
#define R_LABEL(r)	((const char *)(r) + 48)
#define R_PREV(r)	((r) + 112)
#define R_SIGLEN(r)	((uint16_t)le(r, 144, 2))
#define R_SIG(r)	((r) + 160)

static void sha256(const void *p, size_t len, uint8_t *out)
{
	unsigned int n = 0;

	if (!EVP_Digest(p, len, out, &n, EVP_sha256(), NULL))
		abort();
}

/* ---- ioctl wrappers ---- */

static int audit_read(int fd, uint64_t seq, void *buf, uint32_t len,
		      struct hsmcard_audit_read *ar)
{
	memset(ar, 0, sizeof(*ar));
	ar->seq = seq;
	ar->buf = (uintptr_t)buf;
	ar->len = len;
	return xioctl(fd, HSMCARD_IOC_AUDIT_READ, ar);
}

static uint64_t last_seq(int fd)
{
	struct hsmcard_audit_read ar;
	uint8_t r[REC];

	if (audit_read(fd, 0, r, sizeof(r), &ar))
		return UINT64_MAX;
	return ar.last_seq;
}

/*
 * Records from @from to the end into @buf (MAX_RECS records).  Returns the
 * number read or -errno.
 */
static long read_from(int fd, uint64_t from, uint8_t *buf)
{
	struct hsmcard_audit_read ar;
	long n = 0;
	int ret;

	for (;;) {
		ret = audit_read(fd, from, buf + n * REC,
				 (MAX_RECS - n) * REC, &ar);
		if (ret)
			return ret;
		n += ar.count;
		if (!ar.count || ar.next_seq > ar.last_seq || n >= MAX_RECS)
			return n;
		from = ar.next_seq;
	}
}

/* First record at index >= *i matching; *i moves past it.  NULL if none. */
static const uint8_t *find_rec(const uint8_t *buf, long n, long *i,
			       uint16_t ev, uint16_t st, uint64_t handle)
{
	for (; *i < n; (*i)++) {
		const uint8_t *r = buf + *i * REC;

		if (R_EVENT(r) == ev && R_STATUS(r) == st &&
		    R_HANDLE(r) == handle) {
			(*i)++;
			return r;
		}
	}
	return NULL;
}

static EVP_PKEY *audit_pubkey(int fd, uint8_t *der, uint32_t *len)
{
	struct hsmcard_audit_pubkey pk = { .buf = (uintptr_t)der, .len = *len };
	const unsigned char *p = der;

	if (xioctl(fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk))
		return NULL;
	*len = pk.len;
	return d2i_PUBKEY(NULL, &p, pk.len);
}

static bool sig_ok(EVP_PKEY *pub, const uint8_t *r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint16_t n = R_SIGLEN(r);
	bool ok;

	ok = ctx && n && n <= HSMCARD_AUDIT_SIG_MAX &&
	     EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, R_SIG(r), n, r,
			      HSMCARD_AUDIT_SIGNED_LEN) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* ---- running hsmctl ---- */

static const char *hsmctl_path(void)
{
	static char path[4096];
	const char *env = getenv("HSMCTL");
	const char *build = getenv("HSMCARD_BUILD");

	if (env && *env)
		return env;
	if (build && *build) {
		snprintf(path, sizeof(path), "%s/tools/hsmctl", build);
		if (!access(path, X_OK))
			return path;
	}
	return "hsmctl";
}

#define HSMCTL_OUT	"/tmp/hsmctl-audit.out"
#define HSMCTL_ERR	"/tmp/hsmctl-audit.err"

/* Run hsmctl with @args, stdout to HSMCTL_OUT.  Its exit status. */
static int run_hsmctl(const char *args)
{
	return sh("'%s' %s >" HSMCTL_OUT " 2>" HSMCTL_ERR, hsmctl_path(),
		  args);
}

/* Does a line of HSMCTL_OUT that starts with @start contain @s? */
static bool line_has(const char *start, const char *s)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(HSMCTL_OUT, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = !strncmp(line, start, strlen(start)) && strstr(line, s);
	fclose(f);
	return found;
}

/* Does a line of HSMCTL_OUT contain @s?  (Lines up to 4 KiB.) */
static bool out_has(const char *s)
{
	return line_has("", s);
}

/* ---- a minimal JSON validator (RFC 8259 grammar, no semantics) ---- */

static const char *js_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return s;
}

static const char *js_value(const char *s, int depth);

static const char *js_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s && *s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)s[i]))
						return NULL;
				s += 4;
			} else if (!strchr("\"\\/bfnrt", *s) || !*s) {
				return NULL;
			}
		}
		s++;
	}
	return *s == '"' ? s + 1 : NULL;
}

static const char *js_number(const char *s)
{
	const char *start;

	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (isdigit((unsigned char)*s))
		while (isdigit((unsigned char)*s))
			s++;
	else
		return NULL;
	if (*s == '.') {
		start = ++s;
		while (isdigit((unsigned char)*s))
			s++;
		if (s == start)
			return NULL;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		start = s;
		while (isdigit((unsigned char)*s))
			s++;
		if (s == start)
			return NULL;
	}
	return s;
}

static const char *js_seq(const char *s, int depth, char close, bool keys)
{
	s = js_ws(s + 1);
	if (*s == close)
		return s + 1;
	for (;;) {
		if (keys) {
			s = js_string(js_ws(s));
			if (!s)
				return NULL;
			s = js_ws(s);
			if (*s++ != ':')
				return NULL;
		}
		s = js_value(s, depth + 1);
		if (!s)
			return NULL;
		s = js_ws(s);
		if (*s == close)
			return s + 1;
		if (*s++ != ',')
			return NULL;
	}
}

static const char *js_value(const char *s, int depth)
{
	s = js_ws(s);
	if (depth > 32)
		return NULL;
	switch (*s) {
	case '{':
		return js_seq(s, depth, '}', true);
	case '[':
		return js_seq(s, depth, ']', false);
	case '"':
		return js_string(s);
	case 't':
		return strncmp(s, "true", 4) ? NULL : s + 4;
	case 'f':
		return strncmp(s, "false", 5) ? NULL : s + 5;
	case 'n':
		return strncmp(s, "null", 4) ? NULL : s + 4;
	default:
		return js_number(s);
	}
}

/* @line (without its newline) is exactly one JSON object. */
static bool json_object_line(const char *line)
{
	const char *e;

	if (*js_ws(line) != '{')
		return false;
	e = js_value(line, 0);
	return e && !*js_ws(e);
}

/* ---- fixture ---- */

FIXTURE(audit) {
	int fd;
	struct hsmcard_info info;
	uint8_t *buf;
};

FIXTURE_SETUP(audit)
{
	self->buf = NULL;
	self->fd = open(DEV_PATH, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	memset(&self->info, 0, sizeof(self->info));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_INFO, &self->info));
	self->buf = calloc(MAX_RECS, REC);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(audit)
{
	free(self->buf);
	if (self->fd >= 0)
		close(self->fd);
}

/* ---- argument checks ---- */

TEST_F(audit, read_args)
{
	struct hsmcard_audit_read ar;
	uint8_t *buf = self->buf;
	uint64_t last, max_recs;
	void *hole;
	int i;

	ASSERT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, NULL));

	/* flags, reserved fields */
	memset(&ar, 0, sizeof(ar));
	ar.buf = (uintptr_t)buf;
	ar.len = REC;
	ar.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));
	ar.flags = 0x80000000u;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));
	ar.flags = 0;
	ar.rsvd[0] = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));
	ar.rsvd[0] = 0;
	ar.rsvd[1] = 1ull << 63;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));

	/* buffers shorter than one record */
	EXPECT_EQ(-EINVAL, audit_read(self->fd, 0, buf, 0, &ar));
	EXPECT_EQ(-EINVAL, audit_read(self->fd, 0, buf, 1, &ar));
	EXPECT_EQ(-EINVAL, audit_read(self->fd, 0, buf, REC - 1, &ar));

	/* bad user buffers: the record cannot be stored */
	EXPECT_EQ(-EFAULT, audit_read(self->fd, 0, NULL, REC, &ar));
	hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	EXPECT_EQ(-EFAULT, audit_read(self->fd, 0, hole, REC, &ar));
	EXPECT_EQ(0, mprotect(hole, 4096, PROT_READ));
	EXPECT_EQ(-EFAULT, audit_read(self->fd, 0, hole, REC, &ar));
	munmap(hole, 4096);

	/* one record fits a short buffer; what follows is left alone */
	memset(buf, 0xa5, 2 * REC);
	ASSERT_EQ(0, audit_read(self->fd, 0, buf, REC + 44, &ar));
	EXPECT_EQ(1U, ar.count);
	EXPECT_EQ(0U, ar.first_seq);
	EXPECT_EQ(1U, ar.next_seq);
	EXPECT_EQ(0U, R_SEQ(buf));
	EXPECT_EQ((uint16_t)HSMCARD_AUDIT_EV_INIT, R_EVENT(buf));
	i = REC;
	while (i < 2 * REC && buf[i] == 0xa5)
		i++;
	EXPECT_EQ(2 * REC, i) TH_LOG("byte %d written", i);
	EXPECT_EQ(0U, ar.rsvd[0]);
	EXPECT_EQ(0U, ar.rsvd[1]);
	EXPECT_EQ(0U, ar.log_flags & ~HSMCARD_AUDIT_F_ALL);
	/* the card has a key store in these tests */
	EXPECT_EQ(0U, ar.log_flags & HSMCARD_AUDIT_F_VOLATILE);
	last = ar.last_seq;
	EXPECT_LE(1U, last);

	/* output fields are ignored on input: the structure can be reused */
	ar.seq = ar.next_seq;
	ar.count = 12345;
	ar.first_seq = ar.last_seq = ar.oldest_seq = ~0ull;
	ar.log_flags = ~0u;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));
	EXPECT_EQ(1U, ar.count);
	EXPECT_EQ(1U, ar.first_seq);
	EXPECT_EQ(1U, R_SEQ(buf));

	/* a huge length is clamped to what one card command returns */
	max_recs = (self->info.max_xfer - 64) / REC;
	ASSERT_GE((uint64_t)MAX_RECS, max_recs);
	ASSERT_EQ(0, audit_read(self->fd, 0, buf, MAX_RECS * REC, &ar));
	EXPECT_EQ(ar.last_seq + 1 < max_recs ? ar.last_seq + 1 : max_recs,
		  ar.count);
	EXPECT_EQ(ar.count, ar.next_seq);
	ASSERT_EQ(0, audit_read(self->fd, 0, buf, UINT32_MAX, &ar));
	EXPECT_EQ(ar.last_seq + 1 < max_recs ? ar.last_seq + 1 : max_recs,
		  ar.count);

	/* newest + 1: nothing, up to date; beyond: refused by the card */
	ASSERT_EQ(0, audit_read(self->fd, ar.last_seq + 1, buf, REC, &ar));
	EXPECT_EQ(0U, ar.count);
	EXPECT_EQ(ar.last_seq + 1, ar.next_seq);
	EXPECT_EQ(-EINVAL, audit_read(self->fd, ar.last_seq + 2, buf, REC,
				      &ar));
	EXPECT_EQ(-EINVAL, audit_read(self->fd, ~0ull, buf, REC, &ar));
}

TEST_F(audit, pubkey_and_checkpoint_args)
{
	struct hsmcard_audit_checkpoint cp;
	struct hsmcard_audit_pubkey pk;
	uint8_t der[512];
	void *hole;

	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, NULL));
	memset(&pk, 0, sizeof(pk));
	pk.buf = (uintptr_t)der;
	pk.len = sizeof(der);
	pk.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk));
	pk.flags = 0;
	pk.len = 0;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk));
	/* too short: ENOSPC and the size needed (a P-256 SPKI: 91 bytes) */
	pk.len = 10;
	EXPECT_EQ(-ENOSPC, xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk));
	EXPECT_EQ(91U, pk.len);
	pk.len = 91;
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk));
	EXPECT_EQ(91U, pk.len);
	hole = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	pk.buf = (uintptr_t)hole;
	pk.len = sizeof(der);
	EXPECT_EQ(-EFAULT, xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk));
	munmap(hole, 4096);

	EXPECT_EQ(-EFAULT,
		  xioctl(self->fd, HSMCARD_IOC_AUDIT_CHECKPOINT, NULL));
	memset(&cp, 0, sizeof(cp));
	cp.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_CHECKPOINT, &cp));
	cp.flags = 0;
	cp.rsvd = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_AUDIT_CHECKPOINT, &cp));

	/* a request number the driver does not know */
	EXPECT_EQ(-ENOTTY, xioctl(self->fd, _IOWR(HSMCARD_IOC_MAGIC, 0x4f,
						  struct hsmcard_audit_read),
				  &cp));
}

/* Without CAP_SYS_ADMIN every audit ioctl is refused, even on an open fd. */
TEST_F(audit, needs_cap_sys_admin)
{
	uint64_t before = last_seq(self->fd);
	int status;
	pid_t pid;

	ASSERT_NE(UINT64_MAX, before);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct hsmcard_audit_checkpoint cp = { };
		struct hsmcard_audit_pubkey pk;
		struct hsmcard_audit_read ar;
		uint8_t der[256], r[REC];
		int bad = 0;

		/* nobody: the effective capabilities go with the uid */
		if (setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(100);
		if (audit_read(self->fd, 0, r, sizeof(r), &ar) != -EPERM)
			bad |= 1;
		memset(&pk, 0, sizeof(pk));
		pk.buf = (uintptr_t)der;
		pk.len = sizeof(der);
		if (xioctl(self->fd, HSMCARD_IOC_AUDIT_PUBKEY, &pk) != -EPERM)
			bad |= 2;
		if (xioctl(self->fd, HSMCARD_IOC_AUDIT_CHECKPOINT, &cp) !=
		    -EPERM)
			bad |= 4;
		/* the other ioctls still work for this opener */
		if (xioctl(self->fd, HSMCARD_IOC_INFO,
			   &(struct hsmcard_info){ }))
			bad |= 8;
		_exit(bad);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* the refused checkpoint wrote nothing */
	EXPECT_EQ(before, last_seq(self->fd));
}

/* ---- what the log shows ---- */

/* Records from @from on form an unbroken chain (seq + 1, SHA-256 links). */
static bool chain_ok(struct __test_metadata *_metadata, const uint8_t *buf,
		     long n)
{
	uint8_t h[32];

	for (long i = 1; i < n; i++) {
		const uint8_t *r = buf + i * REC, *p = r - REC;

		sha256(p, REC, h);
		if (R_SEQ(r) != R_SEQ(p) + 1 || memcmp(h, R_PREV(r), 32)) {
			TH_LOG("seq %llu does not follow seq %llu",
			       (unsigned long long)R_SEQ(r),
			       (unsigned long long)R_SEQ(p));
			return false;
		}
	}
	return true;
}

TEST_F(audit, key_generate_destroy_recorded)
{
	struct hsmcard_key_attrs a;
	struct hsmcard_key_handle kh;
	struct hsmcard_audit_read ar;
	uint8_t prev[REC], h[32];
	const uint8_t *g, *d, *dd;
	char label[HSMCARD_LABEL_LEN];
	uint64_t before, t0;
	long n, i = 0;

	snprintf(label, sizeof(label), "audit-%d", getpid());
	before = last_seq(self->fd);
	ASSERT_NE(UINT64_MAX, before);
	t0 = (uint64_t)time(NULL) - 5;

	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 256,
			     HSMCARD_USE_ENCRYPT | HSMCARD_USE_DECRYPT, label,
			     &a));
	memset(&kh, 0, sizeof(kh));
	kh.handle = a.handle;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	/* a denial: the key is gone */
	ASSERT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));

	n = read_from(self->fd, before + 1, self->buf);
	ASSERT_LE(3, n);
	EXPECT_TRUE(chain_ok(_metadata, self->buf, n));
	/* the link to the record before them too */
	ASSERT_EQ(0, audit_read(self->fd, before, prev, REC, &ar));
	sha256(prev, REC, h);
	EXPECT_EQ(0, memcmp(h, R_PREV(self->buf), 32));

	g = find_rec(self->buf, n, &i, HSMCARD_AUDIT_EV_KEY_GENERATE,
		     SC_SUCCESS, a.handle);
	ASSERT_NE(NULL, g);
	d = find_rec(self->buf, n, &i, HSMCARD_AUDIT_EV_KEY_DESTROY,
		     SC_SUCCESS, a.handle);
	ASSERT_NE(NULL, d) TH_LOG("no destroy record after the generate");
	dd = find_rec(self->buf, n, &i, HSMCARD_AUDIT_EV_KEY_DESTROY,
		      SC_INVALID_HANDLE, a.handle);
	ASSERT_NE(NULL, dd) TH_LOG("the refused destroy is not recorded");

	EXPECT_STREQ(label, R_LABEL(g));
	EXPECT_EQ((uint32_t)HSMCARD_PARTITION_USER, R_PART(g));
	EXPECT_EQ((uint32_t)HSMCARD_KEY_AES << 16 | 256, R_DETAIL(g));
	EXPECT_EQ(OP_KEY_GENERATE, R_OPCODE(g));
	EXPECT_LE(t0 * 1000000000ull, R_TIME(g));
	EXPECT_GE(((uint64_t)time(NULL) + 5) * 1000000000ull, R_TIME(g));
	EXPECT_STREQ(label, R_LABEL(d));
	EXPECT_EQ((uint32_t)HSMCARD_PARTITION_USER, R_PART(d));
	EXPECT_EQ((uint32_t)HSMCARD_KEY_AES << 16 | 256, R_DETAIL(d));
	EXPECT_EQ(OP_KEY_DESTROY, R_OPCODE(d));
	EXPECT_EQ(OP_KEY_DESTROY, R_OPCODE(dd));
	EXPECT_LT(R_SEQ(g), R_SEQ(d));
	EXPECT_LT(R_SEQ(d), R_SEQ(dd));
	EXPECT_LE(R_TIME(g), R_TIME(d));
	/* nothing else is signed outside checkpoints */
	for (long k = 0; k < n; k++) {
		const uint8_t *r = self->buf + k * REC;

		if (R_EVENT(r) != HSMCARD_AUDIT_EV_CHECKPOINT)
			EXPECT_EQ(0U, R_SIGLEN(r));
	}
}

TEST_F(audit, forged_token_recorded)
{
	struct hsmcard_token_create tc;
	struct hsmcard_token t;
	const uint8_t *c, *o;
	uint64_t before;
	long n, i = 0;
	int ret;

	before = last_seq(self->fd);
	memset(&tc, 0, sizeof(tc));
	tc.bits = 256;
	snprintf(tc.label, sizeof(tc.label), "audit-tok-%d", getpid());
	ret = xioctl(self->fd, HSMCARD_IOC_TOKEN_CREATE, &tc);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no key store on this card");
	ASSERT_EQ(0, ret);

	/* a token whose MAC was altered: the card refuses it */
	memset(&t, 0, sizeof(t));
	memcpy(t.token, tc.token, sizeof(t.token));
	t.token[HSMCARD_TOKEN_SIZE - 1] ^= 0x01;
	EXPECT_EQ(-EINVAL, xioctl(self->fd, HSMCARD_IOC_TOKEN_INFO, &t));

	n = read_from(self->fd, before + 1, self->buf);
	ASSERT_LE(2, n);
	EXPECT_TRUE(chain_ok(_metadata, self->buf, n));
	c = find_rec(self->buf, n, &i, HSMCARD_AUDIT_EV_TOKEN_CREATE,
		     SC_SUCCESS, tc.handle);
	ASSERT_NE(NULL, c);
	EXPECT_EQ(OP_TOKEN_CREATE, R_OPCODE(c));
	EXPECT_EQ((uint32_t)HSMCARD_PARTITION_KERNEL, R_PART(c));
	EXPECT_STREQ(tc.label, R_LABEL(c));
	o = find_rec(self->buf, n, &i, HSMCARD_AUDIT_EV_TOKEN_OPEN,
		     SC_INVALID_TOKEN, tc.handle);
	ASSERT_NE(NULL, o) TH_LOG("the forged token is not recorded");
	EXPECT_EQ(OP_TOKEN_OPEN, R_OPCODE(o));
	/* the card id the token claims, which is this card's */
	EXPECT_EQ(0, memcmp(R_LABEL(o), self->info.card_id, 16));

	memcpy(t.token, tc.token, sizeof(t.token));
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_TOKEN_DESTROY, &t));
}

TEST_F(audit, checkpoint_signature_verifies)
{
	struct hsmcard_audit_checkpoint cp;
	struct hsmcard_audit_read ar;
	uint8_t der[512], id[32], h[32], r[REC], prev[REC], bad[REC];
	uint32_t der_len = sizeof(der);
	EVP_PKEY *pub;
	uint64_t first;

	pub = audit_pubkey(self->fd, der, &der_len);
	ASSERT_NE(NULL, pub);
	EXPECT_EQ(EVP_PKEY_EC, EVP_PKEY_get_id(pub));
	EXPECT_EQ(256, EVP_PKEY_get_bits(pub));
	sha256(der, der_len, id);

	memset(&cp, 0, sizeof(cp));
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_AUDIT_CHECKPOINT, &cp));
	ASSERT_EQ(0, audit_read(self->fd, cp.seq, r, sizeof(r), &ar));
	ASSERT_EQ(1U, ar.count);
	EXPECT_EQ(cp.seq, ar.first_seq);
	EXPECT_LE(cp.seq, ar.last_seq);
	EXPECT_EQ(cp.seq, R_SEQ(r));
	EXPECT_EQ(HSMCARD_AUDIT_EV_CHECKPOINT, R_EVENT(r));
	EXPECT_EQ(HSMCARD_AUDIT_NO_PART, R_PART(r));
	/* card id, then the id of the key that signed */
	EXPECT_EQ(0, memcmp(R_LABEL(r), self->info.card_id, 16));
	EXPECT_EQ(0, memcmp(R_LABEL(r) + 16, id, 32));
	ASSERT_LT(0U, R_SIGLEN(r));
	ASSERT_GE(HSMCARD_AUDIT_SIG_MAX, R_SIGLEN(r));
	EXPECT_TRUE(sig_ok(pub, r));

	/* its prev_hash is the chain value of everything before it */
	ASSERT_LT(0U, cp.seq);
	ASSERT_EQ(0, audit_read(self->fd, cp.seq - 1, prev, sizeof(prev),
				&ar));
	sha256(prev, REC, h);
	EXPECT_EQ(0, memcmp(h, R_PREV(r), 32));

	/* the oracle can say no: any signed byte changed breaks it */
	for (int off = 0; off < HSMCARD_AUDIT_SIGNED_LEN; off += 13) {
		memcpy(bad, r, REC);
		bad[off] ^= 0x01;
		EXPECT_FALSE(sig_ok(pub, bad)) TH_LOG("byte %d", off);
	}

	/* a second checkpoint comes later and verifies as well */
	first = cp.seq;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_AUDIT_CHECKPOINT, &cp));
	EXPECT_LT(first, cp.seq);
	ASSERT_EQ(0, audit_read(self->fd, cp.seq, r, sizeof(r), &ar));
	EXPECT_EQ(HSMCARD_AUDIT_EV_CHECKPOINT, R_EVENT(r));
	EXPECT_TRUE(sig_ok(pub, r));
	EVP_PKEY_free(pub);
}

/* ---- hsmctl audit ---- */

TEST_F_TIMEOUT(audit, hsmctl_audit, HSMCTL_TIMEOUT)
{
	struct hsmcard_key_attrs a;
	struct hsmcard_key_handle kh;
	char label[HSMCARD_LABEL_LEN], want[160], line[4096];
	int st, lines = 0, objs = 0;
	bool verdict = false;
	unsigned long long ck;
	FILE *f;

	/* something of ours in the log */
	snprintf(label, sizeof(label), "hsmctl-audit-%d", getpid());
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 128, 0, label, &a));
	memset(&kh, 0, sizeof(kh));
	kh.handle = a.handle;
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));

	st = run_hsmctl("audit --checkpoint");
	ASSERT_NE(-1, st);
	ASSERT_NE(127, st) TH_LOG("cannot run %s", hsmctl_path());
	EXPECT_EQ(0, st) {
		TH_LOG("hsmctl audit: %d", st);
		sh("cat " HSMCTL_ERR " >&2");
	}
	EXPECT_TRUE(out_has("verified: "));
	/* the checkpoint it asked for is in the log, verified */
	f = fopen(HSMCTL_ERR, "r");
	ASSERT_NE(NULL, f);
	ASSERT_EQ(1, fscanf(f, "hsmctl: checkpoint written at seq %llu", &ck));
	fclose(f);
	snprintf(want, sizeof(want), "%8llu ", ck);
	EXPECT_TRUE(out_has(want));
	EXPECT_TRUE(line_has(want, " checkpoint "));
	EXPECT_TRUE(line_has(want, "[signature verified]\n"));
	/* the columns of the text output: event, status, partition... */
	snprintf(want, sizeof(want), "%-12s %-15s %4u 0x%016llx %s\n",
		 "key_generate", "success", HSMCARD_PARTITION_USER,
		 (unsigned long long)a.handle, label);
	EXPECT_TRUE(out_has(want)) TH_LOG("no line: %s", want);
	snprintf(want, sizeof(want), "%-12s %-15s %4u 0x%016llx %s\n",
		 "key_destroy", "success", HSMCARD_PARTITION_USER,
		 (unsigned long long)a.handle, label);
	EXPECT_TRUE(out_has(want)) TH_LOG("no line: %s", want);
	EXPECT_TRUE(out_has("       0 20")) TH_LOG("no record seq 0");
	EXPECT_TRUE(out_has(" init ")) TH_LOG("no genesis record");
	EXPECT_TRUE(out_has("[signature verified]"));

	/* one JSON object per line, the verdict last */
	st = run_hsmctl("audit --json");
	EXPECT_EQ(0, st);
	f = fopen(HSMCTL_OUT, "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		ASSERT_NE(NULL, strchr(line, '\n')) TH_LOG("line too long");
		*strchr(line, '\n') = '\0';
		lines++;
		if (json_object_line(line))
			objs++;
		else
			TH_LOG("not a JSON object: %s", line);
		verdict = strstr(line, "\"verdict\": \"verified\"");
	}
	fclose(f);
	EXPECT_LT(3, lines);
	EXPECT_EQ(lines, objs);
	EXPECT_TRUE(verdict);
	snprintf(want, sizeof(want), "\"handle\": \"0x%016llx\"",
		 (unsigned long long)a.handle);
	EXPECT_TRUE(out_has(want));
	/* the validator itself can say no */
	EXPECT_FALSE(json_object_line("{\"a\": 1,}"));
	EXPECT_FALSE(json_object_line("{\"a\": \"\x01\"}"));
	EXPECT_FALSE(json_object_line("{\"a\": 1} {}"));
	EXPECT_FALSE(json_object_line("[1]"));
	EXPECT_TRUE(json_object_line("{\"a\": [1, -2.5e3, \"x\\u00e9\"]}"));

	/* python3 agrees, if the guest has it */
	if (!sh("command -v python3 >/dev/null 2>&1"))
		EXPECT_EQ(0, sh("python3 -c 'import json,sys\n"
				"n=0\n"
				"for l in open(sys.argv[1]):\n"
				"  o=json.loads(l); assert isinstance(o, dict); n+=1\n"
				"assert n>3 and o[\"verdict\"]==\"verified\"' "
				HSMCTL_OUT));

	/* from a later seq: no genesis; usage and card errors */
	EXPECT_EQ(0, run_hsmctl("audit --from 1"));
	EXPECT_FALSE(out_has(" init "));
	EXPECT_EQ(2, run_hsmctl("audit --from x"));
	EXPECT_EQ(2, run_hsmctl("audit extra"));
	EXPECT_EQ(2, run_hsmctl("audit --bogus"));
	EXPECT_EQ(3, run_hsmctl("audit --from 18446744073709551615"));
	EXPECT_EQ(3, run_hsmctl("-d /dev/no-such-card audit"));
	EXPECT_EQ(0, run_hsmctl("audit --help"));
	EXPECT_TRUE(out_has("--checkpoint"));
}

TEST_HARNESS_MAIN
