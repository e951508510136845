// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmctl end to end, in a guest with the card and the driver loaded.
 *
 * Every case runs the real tool (fork/exec, files for input and output) and
 * checks what it did against an independent oracle: host OpenSSL (libcrypto
 * in this process) for signatures, ciphers, digests and MACs, published
 * test vectors (FIPS 180-2, RFC 4231, the GCM specification), sysfs for the
 * card's identity, and the documented exit statuses for failures.
 *
 * hsmctl is found through $HSMCTL, else $HSMCARD_BUILD/tools/hsmctl, else
 * $PATH.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"

#define DEV		"/dev/hsmcard0"
#define MAX_KEYS	16

/*
 * Each case runs hsmctl up to ~25 times; under TCG one run costs about a
 * second, so the harness's default 30 s per case is too tight.
 */
#define HSMCTL_TIMEOUT	180

/* ---- running hsmctl ---- */

struct run {
	int status;		/* exit status, or -1 if it did not exit */
	char out[16384];	/* stdout, NUL terminated (truncated) */
	char err[4096];		/* stderr, NUL terminated (truncated) */
};

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

static void slurp_fd(int fd, char *buf, size_t size)
{
	ssize_t n;
	size_t len = 0;

	lseek(fd, 0, SEEK_SET);
	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
}

/*
 * Run hsmctl with the NULL-terminated arguments; @in is a file for its
 * stdin (NULL: /dev/null).  Returns 0 if it could be run at all.
 */
static int hsmctl(struct run *r, const char *in, ...)
{
	char outname[] = "/tmp/hsmctl-out.XXXXXX";
	char errname[] = "/tmp/hsmctl-err.XXXXXX";
	const char *argv[64];
	int argc = 0, status, ofd, efd;
	va_list ap;
	pid_t pid;

	argv[argc++] = "hsmctl";
	va_start(ap, in);
	while (argc < 63 && (argv[argc] = va_arg(ap, const char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;

	ofd = mkstemp(outname);
	efd = mkstemp(errname);
	if (ofd < 0 || efd < 0)
		return -1;
	unlink(outname);
	unlink(errname);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		int ifd = open(in ? in : "/dev/null", O_RDONLY);

		if (ifd < 0)
			_exit(126);
		dup2(ifd, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		execvp(hsmctl_path(), (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	slurp_fd(ofd, r->out, sizeof(r->out));
	slurp_fd(efd, r->err, sizeof(r->err));
	close(ofd);
	close(efd);
	return r->status == 127 ? -1 : 0;
}

/* ---- files and hex ---- */

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ret = 0;

	if (!f)
		return -1;
	if (len && fwrite(buf, 1, len, f) != len)
		ret = -1;
	if (fclose(f))
		ret = -1;
	return ret;
}

/* Read a whole file into a new buffer; -1 if it does not exist. */
static long read_file(const char *path, unsigned char **bufp)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long len = 0;
	size_t n;

	*bufp = NULL;
	if (!f)
		return -1;
	buf = malloc(1 << 20);
	if (buf) {
		n = fread(buf, 1, 1 << 20, f);
		len = (long)n;
	} else {
		len = -1;
	}
	fclose(f);
	*bufp = buf;
	return len;
}

static void to_hex(const unsigned char *buf, size_t len, char *hex)
{
	for (size_t i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", buf[i]);
	hex[2 * len] = '\0';
}

static size_t from_hex(const char *hex, unsigned char *buf)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &buf[i]);
	return n;
}

/* "0x" and 16 lower-case hex digits, then a newline. */
static bool is_handle_line(const char *s)
{
	if (strncmp(s, "0x", 2) || strlen(s) != 19 || s[18] != '\n')
		return false;
	for (int i = 2; i < 18; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void sysfs_serial(char *buf, size_t size)
{
	FILE *f = fopen("/sys/class/misc/hsmcard0/device/serial", "r");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)size, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* ---- per-case context: a scratch directory and the keys it created ---- */

struct ctx {
	char dir[64];
	char keys[MAX_KEYS][20];
	int nkeys;
	struct run r;
};

static void ctx_setup(struct __test_metadata *_metadata, struct ctx *c)
{
	struct run probe;

	strcpy(c->dir, "/tmp/hsmctl-test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(c->dir));
	c->nkeys = 0;
	ASSERT_EQ(0, hsmctl(&probe, NULL, "--version", NULL)) {
		TH_LOG("cannot run %s (build it: make -C tools; or set HSMCTL)",
		       hsmctl_path());
	}
	ASSERT_EQ(0, access(DEV, R_OK | W_OK)) {
		TH_LOG("%s: %s (is the driver loaded?)", DEV, strerror(errno));
	}
}

static void ctx_teardown(struct ctx *c)
{
	char cmd[128];
	struct run r;

	for (int i = 0; i < c->nkeys; i++)
		if (c->keys[i][0])
			hsmctl(&r, NULL, "destroy", c->keys[i], NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", c->dir);
}

static const char *path(struct ctx *c, const char *name)
{
	static char bufs[8][128];
	static int next;
	char *p = bufs[next++ % 8];

	snprintf(p, 128, "%s/%s", c->dir, name);
	return p;
}

/* Remember a handle printed by keygen/import for teardown; returns it. */
static const char *track(struct ctx *c, const char *out)
{
	char *h;

	if (!is_handle_line(out) || c->nkeys >= MAX_KEYS)
		return NULL;
	h = c->keys[c->nkeys++];
	memcpy(h, out, 18);
	h[18] = '\0';
	return h;
}

static void forget(struct ctx *c, const char *h)
{
	for (int i = 0; i < c->nkeys; i++)
		if (!strcmp(c->keys[i], h))
			c->keys[i][0] = '\0';
}

FIXTURE(hsmctl) {
	struct ctx c;
};

FIXTURE_SETUP(hsmctl)
{
	ctx_setup(_metadata, &self->c);
}

FIXTURE_TEARDOWN(hsmctl)
{
	ctx_teardown(&self->c);
}

static EVP_PKEY *read_pem_pubkey(const char *file)
{
	BIO *bio = BIO_new_file(file, "r");
	EVP_PKEY *pkey;

	if (!bio)
		return NULL;
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return pkey;
}

/* ---- usage errors: no card needed ---- */

/* No card needed; a fixture only for the longer timeout. */
FIXTURE(nodev) {
	int unused;
};

FIXTURE_SETUP(nodev)
{
}

FIXTURE_TEARDOWN(nodev)
{
}

TEST_F_TIMEOUT(nodev, usage_exit_codes, HSMCTL_TIMEOUT)
{
	struct run r;

	ASSERT_EQ(0, hsmctl(&r, NULL, "--help", NULL)) {
		TH_LOG("cannot run %s (build it: make -C tools; or set HSMCTL)",
		       hsmctl_path());
	}
	EXPECT_EQ(0, r.status);
	EXPECT_NE(NULL, strstr(r.out, "Usage: hsmctl"));

	ASSERT_EQ(0, hsmctl(&r, NULL, "sign", "--help", NULL));
	EXPECT_EQ(0, r.status);
	EXPECT_NE(NULL, strstr(r.out, "--mech"));

	ASSERT_EQ(0, hsmctl(&r, NULL, NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "no-such-command", NULL));
	EXPECT_EQ(2, r.status);
	EXPECT_NE(NULL, strstr(r.err, "unknown command"));
	ASSERT_EQ(0, hsmctl(&r, NULL, "attrs", "not-hex", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "attrs", "0x12345678123456789", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "attrs", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "keygen", "--bits", "256", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "keygen", "--type", "dsa", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "keygen", "--type", "aes", "--curve",
			    "p256", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "keygen", "--type", "aes", "--uses",
			    "sign,fly", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "sign", "0x1", "--iv", "00", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "verify", "0x1", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "random", "0", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "random", "-5", NULL));
	EXPECT_EQ(2, r.status);
	ASSERT_EQ(0, hsmctl(&r, NULL, "-d", "/dev/no-such-hsmcard", "info",
			    NULL));
	EXPECT_EQ(3, r.status);
	EXPECT_NE(NULL, strstr(r.err, "/dev/no-such-hsmcard"));
	ASSERT_EQ(0, hsmctl(&r, NULL, "digest", "-i", "/no/such/file", NULL));
	EXPECT_EQ(4, r.status);
}

/* ---- the card's identity ---- */

TEST_F_TIMEOUT(hsmctl, list_and_info, HSMCTL_TIMEOUT)
{
	char serial[64], want[96];
	struct ctx *c = &self->c;

	sysfs_serial(serial, sizeof(serial));
	ASSERT_NE(0, (int)strlen(serial));
	snprintf(want, sizeof(want), "\"serial\": \"%s\"", serial);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "list", "--json", NULL));
	EXPECT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, "\"device\": \"" DEV "\""));
	EXPECT_NE(NULL, strstr(c->r.out, want));
	EXPECT_NE(NULL, strstr(c->r.out, "\"state\": \"live\""));

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "list", NULL));
	EXPECT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, serial));

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "info", "--json", NULL));
	EXPECT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, want));
	EXPECT_NE(NULL, strstr(c->r.out, "\"state\": \"live\""));
	EXPECT_NE(NULL, strstr(c->r.out, "\"ecdsa\""));
	EXPECT_NE(NULL, strstr(c->r.out, "\"aes-gcm\""));

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "-d", DEV, "info", NULL));
	EXPECT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, serial));
}

/* ---- signatures: card signs, OpenSSL verifies ---- */

FIXTURE(sig) {
	struct ctx c;
};

FIXTURE_SETUP(sig)
{
	ctx_setup(_metadata, &self->c);
}

FIXTURE_TEARDOWN(sig)
{
	ctx_teardown(&self->c);
}

FIXTURE_VARIANT(sig) {
	const char *keygen[8];	/* keygen arguments */
	const char *mech;
	const char *hash;	/* hsmctl --hash, NULL: default */
	const char *md;		/* OpenSSL digest, NULL: none (Ed25519) */
	int pss_salt;		/* > 0: RSA-PSS with this salt length */
};

FIXTURE_VARIANT_ADD(sig, ecdsa_p256) {
	.keygen = { "--type", "ec", "--curve", "p256" },
	.mech = "ecdsa", .md = "SHA256",
};

FIXTURE_VARIANT_ADD(sig, ecdsa_p384) {
	.keygen = { "--type", "ec", "--curve", "p384" },
	.mech = "ecdsa", .md = "SHA384",
};

FIXTURE_VARIANT_ADD(sig, ed25519) {
	.keygen = { "--type", "ed25519" },
	.mech = "ed25519",
};

FIXTURE_VARIANT_ADD(sig, rsa2048_pkcs1_sha256) {
	.keygen = { "--type", "rsa", "--bits", "2048" },
	.mech = "rsa-pkcs1", .hash = "sha256", .md = "SHA256",
};

FIXTURE_VARIANT_ADD(sig, rsa2048_pss_sha384) {
	.keygen = { "--type", "rsa", "--bits", "2048" },
	.mech = "rsa-pss", .hash = "sha384", .md = "SHA384", .pss_salt = 48,
};

static int ossl_verify(EVP_PKEY *pkey, const char *md, int pss_salt,
		       const unsigned char *msg, size_t msg_len,
		       const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = -1;

	if (!ctx)
		return -1;
	if (EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, pkey,
				    NULL) != 1)
		goto out;
	if (pss_salt > 0 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_salt) != 1))
		goto out;
	ok = EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len);
out:
	EVP_MD_CTX_free(ctx);
	return ok;
}

TEST_F_TIMEOUT(sig, sign_verify, HSMCTL_TIMEOUT)
{
	const char *argv[16] = { "keygen" };
	unsigned char msg[3000], *sig = NULL, *der = NULL, *pem_der = NULL;
	const char *h, *mech = variant->mech;
	long sig_len, der_len;
	EVP_PKEY *pkey;
	int argc = 1, pem_der_len;
	struct ctx *c = &self->c;

	for (int i = 0; variant->keygen[i]; i++)
		argv[argc++] = variant->keygen[i];
	argv[argc++] = "--uses";
	argv[argc++] = "sign,verify";
	argv[argc++] = "--label";
	argv[argc++] = "hsmctl-test";
	argv[argc] = NULL;
	ASSERT_EQ(0, hsmctl(&c->r, NULL, argv[0], argv[1], argv[2], argv[3],
			    argv[4], argv[5], argv[6], argv[7], argv[8],
			    argv[9], NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("keygen: %s", c->r.err);
	h = track(c, c->r.out);
	ASSERT_NE(NULL, h) TH_LOG("keygen printed '%s'", c->r.out);

	/* public key: PEM parses, DER is the same key */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "pubkey", h, "-o",
			    path(c, "pub.pem"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("pubkey: %s", c->r.err);
	pkey = read_pem_pubkey(path(c, "pub.pem"));
	ASSERT_NE(NULL, pkey);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "pubkey", h, "--der", "-o",
			    path(c, "pub.der"), NULL));
	ASSERT_EQ(0, c->r.status);
	der_len = read_file(path(c, "pub.der"), &der);
	pem_der_len = i2d_PUBKEY(pkey, &pem_der);
	ASSERT_GT(pem_der_len, 0);
	ASSERT_EQ(pem_der_len, der_len);
	ASSERT_EQ(0, memcmp(der, pem_der, der_len));

	ASSERT_EQ(1, RAND_bytes(msg, sizeof(msg)));
	ASSERT_EQ(0, write_file(path(c, "msg"), msg, sizeof(msg)));
	/* optional arguments last: the list ends at the first NULL */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "sign", h, "--mech", mech, "-i",
			    path(c, "msg"), "-o", path(c, "sig"),
			    variant->hash ? "--hash" : NULL, variant->hash,
			    NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("sign: %s", c->r.err);
	sig_len = read_file(path(c, "sig"), &sig);
	ASSERT_GT(sig_len, 0);

	/* the oracle */
	EXPECT_EQ(1, ossl_verify(pkey, variant->md, variant->pss_salt, msg,
				 sizeof(msg), sig, sig_len));
	msg[1234] ^= 0x10;
	EXPECT_NE(1, ossl_verify(pkey, variant->md, variant->pss_salt, msg,
				 sizeof(msg), sig, sig_len));
	msg[1234] ^= 0x10;

	/* the card verifies its own signature and refuses a forged message */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "msg"), "verify", h, "--mech",
			    mech, "--sig", path(c, "sig"),
			    variant->hash ? "--hash" : NULL, variant->hash,
			    NULL));
	EXPECT_EQ(0, c->r.status) TH_LOG("verify: %s", c->r.err);
	EXPECT_NE(NULL, strstr(c->r.out, "Verified OK"));
	msg[0] ^= 1;
	ASSERT_EQ(0, write_file(path(c, "forged"), msg, sizeof(msg)));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "forged"), "verify", h, "--json",
			    "--mech", mech, "--sig", path(c, "sig"),
			    variant->hash ? "--hash" : NULL, variant->hash,
			    NULL));
	EXPECT_EQ(1, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, "\"valid\": false"));

	EVP_PKEY_free(pkey);
	OPENSSL_free(pem_der);
	free(der);
	free(sig);
}

/* ---- keys: list, attributes, destroy, use control ---- */

TEST_F_TIMEOUT(hsmctl, key_lifecycle, HSMCTL_TIMEOUT)
{
	char label[64], want[96], h[20];
	const char *t;
	struct ctx *c = &self->c;

	snprintf(label, sizeof(label), "hsmctl-test-%d", getpid());
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keygen", "--type", "aes",
			    "--bits", "128", "--label", label, "--uses",
			    "encrypt", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("keygen: %s", c->r.err);
	t = track(c, c->r.out);
	ASSERT_NE(NULL, t);
	strcpy(h, t);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keys", "--json", NULL));
	ASSERT_EQ(0, c->r.status);
	snprintf(want, sizeof(want), "\"handle\": \"%s\"", h);
	EXPECT_NE(NULL, strstr(c->r.out, want));
	EXPECT_NE(NULL, strstr(c->r.out, label));

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "attrs", h, "--json", NULL));
	ASSERT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, want));
	EXPECT_NE(NULL, strstr(c->r.out, "\"type\": \"aes\""));
	EXPECT_NE(NULL, strstr(c->r.out, "\"bits\": 128"));
	EXPECT_NE(NULL, strstr(c->r.out, "\"encrypt\""));
	EXPECT_EQ(NULL, strstr(c->r.out, "\"decrypt\""));
	snprintf(want, sizeof(want), "\"label\": \"%s\"", label);
	EXPECT_NE(NULL, strstr(c->r.out, want));

	/* handles are accepted without 0x and in upper case too */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "attrs", h + 2, NULL));
	EXPECT_EQ(0, c->r.status);

	/* the key may encrypt but not decrypt */
	ASSERT_EQ(0, write_file(path(c, "block"), "0123456789abcdef", 16));
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "encrypt", h, "--mech", "aes-ecb",
			    "-i", path(c, "block"), "-o",
			    path(c, "enc"), NULL));
	EXPECT_EQ(0, c->r.status) TH_LOG("encrypt: %s", c->r.err);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "decrypt", h, "--mech", "aes-ecb",
			    "-i", path(c, "enc"), "-o",
			    path(c, "dec"), NULL));
	EXPECT_EQ(3, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.err, "not permitted"));
	/* and an AES key cannot sign */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "block"), "sign", h, "--mech",
			    "ecdsa", NULL));
	EXPECT_EQ(3, c->r.status);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "destroy", h, NULL));
	EXPECT_EQ(0, c->r.status);
	forget(c, h);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "attrs", h, NULL));
	EXPECT_EQ(3, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.err, "no such key"));
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "destroy", h, NULL));
	EXPECT_EQ(3, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keys", "--json", NULL));
	ASSERT_EQ(0, c->r.status);
	snprintf(want, sizeof(want), "\"handle\": \"%s\"", h);
	EXPECT_EQ(NULL, strstr(c->r.out, want));

	/* a made-up handle */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "attrs", "0x0123456789abcdef",
			    NULL));
	EXPECT_EQ(3, c->r.status);
}

/* ---- symmetric ciphers against OpenSSL, keys imported in clear ---- */

static const char *import_key(struct __test_metadata *_metadata,
			      struct ctx *c, const char *type,
			      const void *key, size_t len, const char *uses)
{
	const char *h;

	if (write_file(path(c, "key"), key, len))
		return NULL;
	if (hsmctl(&c->r, NULL, "import", "--type", type, "-i",
		   path(c, "key"), "--uses", uses, NULL))
		return NULL;
	unlink(path(c, "key"));
	EXPECT_EQ(0, c->r.status) TH_LOG("import: %s", c->r.err);
	h = track(c, c->r.out);
	return h;
}

/* OpenSSL's answer for one cipher operation. */
static int ossl_cipher(const char *name, bool enc, const unsigned char *key,
		       const unsigned char *iv, const unsigned char *aad,
		       int aad_len, const unsigned char *in, int in_len,
		       unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0, ret = -1;
	bool gcm = strstr(name, "GCM");

	if (!c || !ctx)
		goto out;
	if (EVP_CipherInit_ex2(ctx, c, key, iv, enc, NULL) != 1)
		goto out;
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	if (gcm && !enc &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1)
		goto out;
	if (aad_len && EVP_CipherUpdate(ctx, NULL, &len, aad, aad_len) != 1)
		goto out;
	if (EVP_CipherUpdate(ctx, out, &len, in, in_len) != 1 ||
	    EVP_CipherFinal_ex(ctx, out + len, &fin) != 1)
		goto out;
	if (gcm && enc &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
		goto out;
	ret = len + fin;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return ret;
}

TEST_F_TIMEOUT(hsmctl, aes_modes_vs_openssl, HSMCTL_TIMEOUT)
{
	static const struct {
		const char *mech, *ossl;
		int key_len, iv_len, data_len;
	} modes[] = {
		{ "aes-ecb", "AES-256-ECB", 32, 0, 4096 },
		{ "aes-cbc", "AES-128-CBC", 16, 16, 4096 },
		{ "aes-cbc", "AES-256-CBC", 32, 16, 48 },
		{ "aes-ctr", "AES-192-CTR", 24, 16, 1001 },
		{ "aes-xts", "AES-256-XTS", 64, 16, 4096 },
		{ "aes-xts", "AES-128-XTS", 32, 16, 517 },
		{ "aes-gcm", "AES-256-GCM", 32, 12, 777 },
	};
	unsigned char key[64], iv[16], aad[20], data[4096], want[4096 + 16];
	unsigned char tag[16], *got;
	char ivhex[40], aadhex[48];
	struct ctx *c = &self->c;

	ASSERT_EQ(1, RAND_bytes(aad, sizeof(aad)));
	to_hex(aad, sizeof(aad), aadhex);
	for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
		bool gcm = !strcmp(modes[m].mech, "aes-gcm");
		int n = modes[m].data_len, want_len;
		const char *h;
		long got_len;

		TH_LOG("%s", modes[m].ossl);
		ASSERT_EQ(1, RAND_bytes(key, sizeof(key)));
		ASSERT_EQ(1, RAND_bytes(iv, sizeof(iv)));
		ASSERT_EQ(1, RAND_bytes(data, sizeof(data)));
		to_hex(iv, modes[m].iv_len, ivhex);
		h = import_key(_metadata, c, "aes", key, modes[m].key_len,
			       "encrypt,decrypt");
		ASSERT_NE(NULL, h);
		ASSERT_EQ(0, write_file(path(c, "plain"), data, n));

		ASSERT_EQ(0, hsmctl(&c->r, NULL, "encrypt", h, "--mech",
				    modes[m].mech, "-i", path(c, "plain"),
				    "-o", path(c, "ct"),
				    modes[m].iv_len ? "--iv" : NULL, ivhex,
				    gcm ? "--aad" : NULL, aadhex, NULL));
		ASSERT_EQ(0, c->r.status) TH_LOG("encrypt: %s", c->r.err);

		want_len = ossl_cipher(modes[m].ossl, true, key, iv, aad,
				       gcm ? sizeof(aad) : 0, data, n, want,
				       tag);
		ASSERT_EQ(n, want_len);
		if (gcm) {
			memcpy(want + n, tag, 16);
			want_len += 16;
		}
		got_len = read_file(path(c, "ct"), &got);
		ASSERT_EQ(want_len, got_len);
		EXPECT_EQ(0, memcmp(got, want, want_len));
		free(got);

		/* and back */
		ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct"), "decrypt", h,
				    "--mech", modes[m].mech, "-o",
				    path(c, "pt"),
				    modes[m].iv_len ? "--iv" : NULL, ivhex,
				    gcm ? "--aad" : NULL, aadhex, NULL));
		ASSERT_EQ(0, c->r.status) TH_LOG("decrypt: %s", c->r.err);
		got_len = read_file(path(c, "pt"), &got);
		ASSERT_EQ(n, got_len);
		EXPECT_EQ(0, memcmp(got, data, n));
		free(got);
	}
}

/* GCM specification (McGrew/Viega), test case 4: AES-128 with AAD. */
TEST_F_TIMEOUT(hsmctl, gcm_published_vector_and_tamper, HSMCTL_TIMEOUT)
{
	static const char key_hex[] = "feffe9928665731c6d6a8f9467308308";
	static const char iv_hex[] = "cafebabefacedbaddecaf888";
	static const char aad_hex[] =
		"feedfacedeadbeeffeedfacedeadbeefabaddad2";
	static const char pt_hex[] =
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
		"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
	static const char ct_tag_hex[] =
		"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
		"21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
		"5bc94fbc3221a5db94fae95ae7121a47";
	unsigned char key[16], pt[60], ct[76], aad[20], *got;
	const char *h;
	long got_len;
	struct ctx *c = &self->c;

	from_hex(key_hex, key);
	from_hex(pt_hex, pt);
	from_hex(ct_tag_hex, ct);
	h = import_key(_metadata, c, "aes", key, sizeof(key),
		       "encrypt,decrypt");
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, write_file(path(c, "pt"), pt, sizeof(pt)));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "pt"), "encrypt", h, "--iv",
			    iv_hex, "--aad", aad_hex, "-o", path(c, "ct"),
			    NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("encrypt: %s", c->r.err);
	got_len = read_file(path(c, "ct"), &got);
	ASSERT_EQ((long)sizeof(ct), got_len);
	EXPECT_EQ(0, memcmp(got, ct, sizeof(ct)));
	free(got);

	/* AAD from a file works the same */
	from_hex(aad_hex, aad);
	ASSERT_EQ(0, write_file(path(c, "aad"), aad, sizeof(aad)));
	ASSERT_EQ(0, write_file(path(c, "ct"), ct, sizeof(ct)));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct"), "decrypt", h,
			    "--mech", "aes-gcm", "--iv", iv_hex, "--aad-file",
			    path(c, "aad"), "-o", path(c, "dec"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("decrypt: %s", c->r.err);
	got_len = read_file(path(c, "dec"), &got);
	ASSERT_EQ((long)sizeof(pt), got_len);
	EXPECT_EQ(0, memcmp(got, pt, sizeof(pt)));
	free(got);

	/* one flipped bit in the tag: exit 1, nothing written */
	ct[sizeof(ct) - 1] ^= 0x80;
	ASSERT_EQ(0, write_file(path(c, "bad"), ct, sizeof(ct)));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "bad"), "decrypt", h, "--iv",
			    iv_hex, "--aad", aad_hex, "-o",
			    path(c, "bad.out"), NULL));
	EXPECT_EQ(1, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.err, "authentication failed"));
	EXPECT_NE(0, access(path(c, "bad.out"), F_OK));
	/* wrong AAD: the same */
	ct[sizeof(ct) - 1] ^= 0x80;
	ASSERT_EQ(0, write_file(path(c, "ct"), ct, sizeof(ct)));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct"), "decrypt", h, "--iv",
			    iv_hex, "--aad", "00", NULL));
	EXPECT_EQ(1, c->r.status);
	/* a nonce of the wrong size is a usage error */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct"), "decrypt", h, "--iv",
			    "00112233", NULL));
	EXPECT_EQ(2, c->r.status);
}

/* ---- digests and MACs ---- */

TEST_F_TIMEOUT(hsmctl, digest, HSMCTL_TIMEOUT)
{
	unsigned char data[100000], md[EVP_MAX_MD_SIZE];
	char want[2 * EVP_MAX_MD_SIZE + 1], line[256];
	static const char *const names[][2] = {
		{ "sha256", "SHA256" }, { "sha384", "SHA384" },
		{ "sha512", "SHA512" },
	};
	unsigned int md_len;
	struct ctx *c = &self->c;

	/* FIPS 180-2, appendix B.1: SHA-256("abc") */
	ASSERT_EQ(0, write_file(path(c, "abc"), "abc", 3));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "abc"), "digest", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("digest: %s", c->r.err);
	EXPECT_EQ(0, strcmp(c->r.out,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n"));
	/* the empty message */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "digest", "--json", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("digest: %s", c->r.err);
	EXPECT_NE(NULL, strstr(c->r.out,
			       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));

	ASSERT_EQ(1, RAND_bytes(data, sizeof(data)));
	ASSERT_EQ(0, write_file(path(c, "data"), data, sizeof(data)));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(1, EVP_Digest(data, sizeof(data), md, &md_len,
					EVP_get_digestbyname(names[i][1]),
					NULL));
		to_hex(md, md_len, want);
		snprintf(line, sizeof(line), "%s  %s\n", want,
			 path(c, "data"));
		ASSERT_EQ(0, hsmctl(&c->r, NULL, "digest", "--mech",
				    names[i][0], "-i", path(c, "data"),
				    NULL));
		ASSERT_EQ(0, c->r.status);
		EXPECT_EQ(0, strcmp(c->r.out, line)) {
			TH_LOG("%s: got %s", names[i][0], c->r.out);
		}
	}
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "digest", "--mech", "md5", NULL));
	EXPECT_EQ(2, c->r.status);
}

/* RFC 4231, test case 1 (key 20 x 0x0b, "Hi There"). */
TEST_F_TIMEOUT(hsmctl, hmac_rfc4231, HSMCTL_TIMEOUT)
{
	static const char *const want[][2] = {
		{ "hmac-sha256",
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ "hmac-sha512",
		  "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
		  "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854" },
	};
	unsigned char key[20], *mac;
	char hex[129];
	const char *h;
	long len;
	struct ctx *c = &self->c;

	memset(key, 0x0b, sizeof(key));
	h = import_key(_metadata, c, "hmac", key, sizeof(key),
		       "sign,verify");
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, write_file(path(c, "msg"), "Hi There", 8));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, hsmctl(&c->r, path(c, "msg"), "mac", h,
				    "--mech", want[i][0], "-o",
				    path(c, "mac"), NULL));
		ASSERT_EQ(0, c->r.status) TH_LOG("mac: %s", c->r.err);
		len = read_file(path(c, "mac"), &mac);
		ASSERT_EQ((long)strlen(want[i][1]) / 2, len);
		to_hex(mac, len, hex);
		EXPECT_STREQ(want[i][1], hex);

		ASSERT_EQ(0, hsmctl(&c->r, path(c, "msg"), "verify", h,
				    "--mech", want[i][0], "--sig",
				    path(c, "mac"), NULL));
		EXPECT_EQ(0, c->r.status) TH_LOG("verify: %s", c->r.err);
		mac[3] ^= 4;
		ASSERT_EQ(0, write_file(path(c, "mac"), mac, len));
		ASSERT_EQ(0, hsmctl(&c->r, path(c, "msg"), "verify", h,
				    "--mech", want[i][0], "--sig",
				    path(c, "mac"), NULL));
		EXPECT_EQ(1, c->r.status);
		free(mac);
	}
	/* default for an HMAC key: HMAC-SHA-256 */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "msg"), "sign", h, "-o",
			    path(c, "mac"), NULL));
	ASSERT_EQ(0, c->r.status);
	len = read_file(path(c, "mac"), &mac);
	ASSERT_EQ(32, len);
	to_hex(mac, len, hex);
	EXPECT_STREQ(want[0][1], hex);
	free(mac);
}

/* ---- import of an OpenSSL key: same public key out, signatures verify ---- */

TEST_F_TIMEOUT(hsmctl, import_private_key, HSMCTL_TIMEOUT)
{
	unsigned char msg[] = "imported key", *sig, *der = NULL, *got;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	long sig_len, got_len;
	const char *h;
	int der_len;
	BIO *bio;
	struct ctx *c = &self->c;

	ASSERT_NE(NULL, pkey);
	bio = BIO_new_file(path(c, "priv.pem"), "w");
	ASSERT_NE(NULL, bio);
	ASSERT_EQ(1, PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
					      NULL));
	BIO_free(bio);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "import", "--type", "ec-p256",
			    "-i", path(c, "priv.pem"), "--uses",
			    "sign,verify", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("import: %s", c->r.err);
	h = track(c, c->r.out);
	ASSERT_NE(NULL, h);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "pubkey", h, "--der", "-o",
			    path(c, "pub.der"), NULL));
	ASSERT_EQ(0, c->r.status);
	got_len = read_file(path(c, "pub.der"), &got);
	der_len = i2d_PUBKEY(pkey, &der);
	ASSERT_EQ(der_len, got_len);
	EXPECT_EQ(0, memcmp(der, got, der_len));

	ASSERT_EQ(0, write_file(path(c, "msg"), msg, sizeof(msg)));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "msg"), "sign", h, "-o",
			    path(c, "sig"), NULL));
	ASSERT_EQ(0, c->r.status);
	sig_len = read_file(path(c, "sig"), &sig);
	EXPECT_EQ(1, ossl_verify(pkey, "SHA256", 0, msg, sizeof(msg), sig,
				 sig_len));
	/* an EC key is not an RSA key */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "import", "--type", "rsa", "-i",
			    path(c, "priv.pem"), NULL));
	EXPECT_EQ(2, c->r.status);

	free(sig);
	free(got);
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
}

/* ---- RSA-OAEP: OpenSSL encrypts to the card's public key ---- */

TEST_F_TIMEOUT(hsmctl, rsa_oaep, HSMCTL_TIMEOUT)
{
	struct ctx *c = &self->c;
	unsigned char secret[48], ct[512], *got;
	EVP_PKEY_CTX *pctx;
	EVP_PKEY *pkey;
	size_t ct_len = sizeof(ct);
	const char *h;
	long got_len;

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keygen", "--type", "rsa", "--uses",
			    "encrypt,decrypt", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("keygen: %s", c->r.err);
	h = track(c, c->r.out);
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "pubkey", h, "-o", path(c, "pub.pem"),
			    NULL));
	ASSERT_EQ(0, c->r.status);
	pkey = read_pem_pubkey(path(c, "pub.pem"));
	ASSERT_NE(NULL, pkey);
	EXPECT_EQ(2048, EVP_PKEY_get_bits(pkey));

	/* OpenSSL encrypts with OAEP/SHA-256, the card decrypts */
	ASSERT_EQ(1, RAND_bytes(secret, sizeof(secret)));
	pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	ASSERT_NE(NULL, pctx);
	ASSERT_EQ(1, EVP_PKEY_encrypt_init(pctx));
	ASSERT_EQ(1, EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING));
	ASSERT_EQ(1, EVP_PKEY_CTX_set_rsa_oaep_md_name(pctx, "SHA256", NULL));
	ASSERT_EQ(1, EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL));
	ASSERT_EQ(1, EVP_PKEY_encrypt(pctx, ct, &ct_len, secret,
				      sizeof(secret)));
	EVP_PKEY_CTX_free(pctx);
	ASSERT_EQ(0, write_file(path(c, "ct"), ct, ct_len));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct"), "decrypt", h, "-o",
			    path(c, "pt"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("decrypt: %s", c->r.err);
	got_len = read_file(path(c, "pt"), &got);
	ASSERT_EQ((long)sizeof(secret), got_len);
	EXPECT_EQ(0, memcmp(got, secret, sizeof(secret)));
	free(got);

	/* the card encrypts, the card decrypts */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "pt"), "encrypt", h, "--mech",
			    "rsa-oaep", "--hash", "sha256", "-o",
			    path(c, "ct2"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("encrypt: %s", c->r.err);
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct2"), "decrypt", h, "--mech",
			    "rsa-oaep", "-o", path(c, "pt2"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("decrypt: %s", c->r.err);
	got_len = read_file(path(c, "pt2"), &got);
	ASSERT_EQ((long)sizeof(secret), got_len);
	EXPECT_EQ(0, memcmp(got, secret, sizeof(secret)));
	free(got);

	/* a corrupted ciphertext does not decrypt */
	ct[10] ^= 1;
	ASSERT_EQ(0, write_file(path(c, "ct"), ct, ct_len));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "ct"), "decrypt", h, "-o",
			    path(c, "pt3"), NULL));
	EXPECT_NE(0, c->r.status);
	EXPECT_NE(0, access(path(c, "pt3"), F_OK));
	EVP_PKEY_free(pkey);
}

/* ---- a digest computed outside, signed in the card ---- */

TEST_F_TIMEOUT(hsmctl, prehashed_ecdsa, HSMCTL_TIMEOUT)
{
	struct ctx *c = &self->c;
	unsigned char msg[] = "sign the digest, not the message";
	unsigned char md[32], *sig;
	unsigned int md_len;
	EVP_PKEY_CTX *pctx;
	EVP_PKEY *pkey;
	const char *h;
	long sig_len;

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keygen", "--type", "ec", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("keygen: %s", c->r.err);
	h = track(c, c->r.out);
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "pubkey", h, "-o", path(c, "pub.pem"),
			    NULL));
	ASSERT_EQ(0, c->r.status);
	pkey = read_pem_pubkey(path(c, "pub.pem"));
	ASSERT_NE(NULL, pkey);

	ASSERT_EQ(1, EVP_Digest(msg, sizeof(msg), md, &md_len, EVP_sha256(),
				NULL));
	ASSERT_EQ(0, write_file(path(c, "md"), md, md_len));
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "md"), "sign", h, "--prehashed",
			    "--hash", "sha256", "-o", path(c, "sig"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("sign: %s", c->r.err);
	sig_len = read_file(path(c, "sig"), &sig);
	ASSERT_GT(sig_len, 0);

	/* OpenSSL checks it against the message itself */
	EXPECT_EQ(1, ossl_verify(pkey, "SHA256", 0, msg, sizeof(msg), sig,
				 sig_len));
	pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	ASSERT_NE(NULL, pctx);
	ASSERT_EQ(1, EVP_PKEY_verify_init(pctx));
	EXPECT_EQ(1, EVP_PKEY_verify(pctx, sig, sig_len, md, md_len));
	EVP_PKEY_CTX_free(pctx);

	/* --prehashed makes no sense for Ed25519 or ciphers */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "md"), "sign", h, "--prehashed",
			    "--mech", "ed25519", NULL));
	EXPECT_EQ(2, c->r.status);
	free(sig);
	EVP_PKEY_free(pkey);
}

/* ---- randomness ---- */

TEST_F_TIMEOUT(hsmctl, random, HSMCTL_TIMEOUT)
{
	int seen[256] = { 0 }, distinct = 0;
	char first[80];
	unsigned char *buf;
	long len;
	struct ctx *c = &self->c;

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "random", "32", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("random: %s", c->r.err);
	ASSERT_EQ(65, (int)strlen(c->r.out));
	EXPECT_EQ(64, (int)strspn(c->r.out, "0123456789abcdef"));
	strcpy(first, c->r.out);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "random", "32", NULL));
	EXPECT_STRNE(first, c->r.out);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "random", "100000", "-o",
			    path(c, "rnd"), NULL));
	ASSERT_EQ(0, c->r.status);
	len = read_file(path(c, "rnd"), &buf);
	ASSERT_EQ(100000, len);
	/* crude sanity: every byte value shows up */
	for (long i = 0; i < len; i++)
		if (!seen[buf[i]]++)
			distinct++;
	EXPECT_EQ(256, distinct);
	free(buf);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "random", "--json", "8", NULL));
	EXPECT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, "\"random\": \""));
}

/* ---- key tokens ---- */

#define TOKEN_LEN	80

/* 160 lower-case hex digits, then a newline. */
static bool is_token_line(const char *s)
{
	if (strlen(s) != 2 * TOKEN_LEN + 1 || s[2 * TOKEN_LEN] != '\n')
		return false;
	for (int i = 0; i < 2 * TOKEN_LEN; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void sysfs_card_id(char *buf, size_t size)
{
	FILE *f = fopen("/sys/class/misc/hsmcard0/device/card_id", "r");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)size, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/*
 * create -> info -> destroy with the token in hex and in a file; the
 * card's identity in the token and in "info" is the one sysfs shows.
 */
TEST_F_TIMEOUT(hsmctl, token_lifecycle, HSMCTL_TIMEOUT)
{
	char hex[2 * TOKEN_LEN + 1], bad[2 * TOKEN_LEN + 1], label[64];
	char card[64], want[128], tok_card[33];
	unsigned char *raw = NULL, tok[TOKEN_LEN];
	struct ctx *c = &self->c;
	long len;

	sysfs_card_id(card, sizeof(card));
	ASSERT_EQ(32, (int)strlen(card));
	snprintf(label, sizeof(label), "hsmctl-token-%d", getpid());

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "create", "--bits", "256",
			    "--label", label, NULL));
	if (c->r.status == 3 && strstr(c->r.err, "EOPNOTSUPP"))
		SKIP(return, "no key store or key tokens on this card");
	ASSERT_EQ(0, c->r.status) TH_LOG("token create: %s", c->r.err);
	ASSERT_TRUE(is_token_line(c->r.out)) TH_LOG("output: %s", c->r.out);
	memcpy(hex, c->r.out, 2 * TOKEN_LEN);
	hex[2 * TOKEN_LEN] = '\0';
	/* bytes 16..31 of a token are the card's identity */
	memcpy(tok_card, hex + 32, 32);
	tok_card[32] = '\0';
	EXPECT_STREQ(card, tok_card);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", hex, "--json",
			    NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("token info: %s", c->r.err);
	EXPECT_NE(NULL, strstr(c->r.out, "\"type\": \"aes\""));
	EXPECT_NE(NULL, strstr(c->r.out, "\"bits\": 256"));
	snprintf(want, sizeof(want), "\"label\": \"%s\"", label);
	EXPECT_NE(NULL, strstr(c->r.out, want));
	snprintf(want, sizeof(want), "\"card_id\": \"%s\"", card);
	EXPECT_NE(NULL, strstr(c->r.out, want));
	EXPECT_NE(NULL, strstr(c->r.out, "\"persistent\""));
	EXPECT_EQ(NULL, strstr(c->r.out, "\"extractable\""));
	EXPECT_NE(NULL, strstr(c->r.out, "\"partition\": 1"));
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", hex, NULL));
	ASSERT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, "Bits:       256"));
	EXPECT_NE(NULL, strstr(c->r.out, card));
	EXPECT_NE(NULL, strstr(c->r.out, label));

	/* the key is not the user's: no user command sees it */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keys", "--json", NULL));
	EXPECT_EQ(NULL, strstr(c->r.out, label));

	/* an altered token is refused, however it is altered */
	strcpy(bad, hex);
	/* last MAC nibble, kept a hex digit */
	bad[2 * TOKEN_LEN - 1] = bad[2 * TOKEN_LEN - 1] == '0' ? '1' : '0';
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", bad, NULL));
	EXPECT_EQ(3, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.err, "not a valid token"));
	strcpy(bad, hex);
	bad[40] = bad[40] == '0' ? '1' : '0';		/* card identity */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "destroy", bad, NULL));
	EXPECT_EQ(3, c->r.status);
	/* malformed: not hex, too short, too long, two sources */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", "xyz", NULL));
	EXPECT_EQ(2, c->r.status);
	strcpy(bad, hex);
	bad[2 * TOKEN_LEN - 2] = '\0';
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", bad, NULL));
	EXPECT_EQ(2, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.err, "not a key token"));
	ASSERT_EQ(0, write_file(path(c, "long"), "0123456789", 10));
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", "--in",
			    path(c, "long"), NULL));
	EXPECT_EQ(2, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", hex, "--in",
			    path(c, "long"), NULL));
	EXPECT_EQ(2, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", "--in",
			    path(c, "missing"), NULL));
	EXPECT_EQ(4, c->r.status);
	/* usage */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "create", NULL));
	EXPECT_EQ(2, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "create", "--bits", "100",
			    NULL));
	EXPECT_EQ(2, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", hex, "--bits",
			    "128", NULL));
	EXPECT_EQ(2, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "frob", NULL));
	EXPECT_EQ(2, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "--help", NULL));
	EXPECT_EQ(0, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.out, "destroy"));

	/* destroy: the token is dead */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "destroy", hex, NULL));
	EXPECT_EQ(0, c->r.status) TH_LOG("token destroy: %s", c->r.err);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", hex, NULL));
	EXPECT_EQ(3, c->r.status);
	EXPECT_NE(NULL, strstr(c->r.err, "not a valid token"));

	/* the raw form in a file, AES-256-XTS */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "create", "--bits", "512",
			    "-o", path(c, "tok"), NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("token create: %s", c->r.err);
	EXPECT_STREQ("", c->r.out);
	len = read_file(path(c, "tok"), &raw);
	ASSERT_EQ(TOKEN_LEN, len);
	memcpy(tok, raw, TOKEN_LEN);
	free(raw);
	EXPECT_EQ(0, memcmp(tok, "HMTK", 4));
	to_hex(tok + 16, 16, tok_card);
	EXPECT_STREQ(card, tok_card);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "info", "--in",
			    path(c, "tok"), "--json", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("token info: %s", c->r.err);
	EXPECT_NE(NULL, strstr(c->r.out, "\"bits\": 512"));
	/* the same token in hex, from stdin as a file */
	ASSERT_EQ(0, hsmctl(&c->r, path(c, "tok"), "token", "info", "-i", "-",
			    NULL));
	EXPECT_EQ(0, c->r.status);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "destroy", "--in",
			    path(c, "tok"), NULL));
	EXPECT_EQ(0, c->r.status) TH_LOG("token destroy: %s", c->r.err);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "destroy", "--in",
			    path(c, "tok"), NULL));
	EXPECT_EQ(3, c->r.status);
}

/* ---- netlink: status and the event stream ---- */

TEST_F_TIMEOUT(hsmctl, netlink_status_and_events, HSMCTL_TIMEOUT)
{
	struct ctx *c = &self->c;
	char serial[64], want[128], key[20], line[512], tok[200];
	char outname[] = "/tmp/hsmctl-mon.XXXXXX";
	int errpipe[2], ofd, status, n = 0;
	const char *events[4] = {};
	char handles[4][24] = {};
	FILE *errf, *outf;
	pid_t pid;

	/* status: the card, live, with the serial sysfs shows */
	sysfs_serial(serial, sizeof(serial));
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "status", "--json", NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("status: %s", c->r.err);
	EXPECT_NE(NULL, strstr(c->r.out, "\"card\": \"hsmcard0\""));
	EXPECT_NE(NULL, strstr(c->r.out, "\"state\": \"live\""));
	snprintf(want, sizeof(want), "\"serial\": \"%s\"", serial);
	EXPECT_NE(NULL, strstr(c->r.out, want)) TH_LOG("%s", c->r.out);
	EXPECT_NE(NULL, strstr(c->r.out, "\"commands_completed\": "));

	/* monitor: four events, in order, while we cause them */
	ofd = mkstemp(outname);
	ASSERT_LE(0, ofd);
	unlink(outname);
	ASSERT_EQ(0, pipe(errpipe));
	fflush(NULL);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		dup2(ofd, 1);
		dup2(errpipe[1], 2);
		close(errpipe[0]);
		execlp(hsmctl_path(), "hsmctl", "monitor", "--count", "4",
		       "--timeout", "120", NULL);
		_exit(127);
	}
	close(errpipe[1]);
	errf = fdopen(errpipe[0], "r");
	ASSERT_NE(NULL, errf);
	ASSERT_NE(NULL, fgets(line, sizeof(line), errf));
	ASSERT_NE(NULL, strstr(line, "monitoring")) TH_LOG("%s", line);

	ASSERT_EQ(0, hsmctl(&c->r, NULL, "keygen", "--type", "aes", NULL));
	ASSERT_EQ(0, c->r.status);
	ASSERT_NE(NULL, track(c, c->r.out));
	memcpy(key, c->r.out, 18);
	key[18] = '\0';
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "destroy", key, NULL));
	ASSERT_EQ(0, c->r.status);
	forget(c, key);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "create", "--bits", "256",
			    NULL));
	ASSERT_EQ(0, c->r.status) TH_LOG("token create: %s", c->r.err);
	snprintf(tok, sizeof(tok), "%.160s", c->r.out);
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "token", "destroy", tok, NULL));
	ASSERT_EQ(0, c->r.status);

	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	fclose(errf);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	outf = fdopen(ofd, "r");
	ASSERT_NE(NULL, outf);
	rewind(outf);
	while (n < 4 && fgets(line, sizeof(line), outf)) {
		static const char * const names[] = {
			"key_created", "key_destroyed", "token_created",
			"token_destroyed",
		};
		const char *h = strstr(line, "\"handle\": \"");

		/* one JSON object per line, for a SIEM */
		EXPECT_EQ('{', line[0]) TH_LOG("%s", line);
		EXPECT_NE(NULL, strstr(line, "}\n")) TH_LOG("%s", line);
		EXPECT_NE(NULL, strstr(line, "\"card\": \"hsmcard0\""));
		EXPECT_NE(NULL, strstr(line, "\"time\": \"20"));
		for (unsigned int i = 0; i < 4; i++) {
			snprintf(want, sizeof(want), "\"event\": \"%s\"",
				 names[i]);
			if (strstr(line, want))
				events[n] = names[i];
		}
		if (h)
			snprintf(handles[n], sizeof(handles[n]), "%.18s",
				 h + strlen("\"handle\": \""));
		n++;
	}
	fclose(outf);
	ASSERT_EQ(4, n);
	EXPECT_STREQ("key_created", events[0]);
	EXPECT_STREQ("key_destroyed", events[1]);
	EXPECT_STREQ("token_created", events[2]);
	EXPECT_STREQ("token_destroyed", events[3]);
	EXPECT_STREQ(key, handles[0]);
	EXPECT_STREQ(key, handles[1]);
	/* the token's key is in the kernel partition, another key */
	EXPECT_STREQ(handles[2], handles[3]);
	EXPECT_STRNE(key, handles[2]);

	/* nothing happens: --timeout ends the wait, status 1 */
	ASSERT_EQ(0, hsmctl(&c->r, NULL, "monitor", "-n", "1", "-T", "1",
			    NULL));
	EXPECT_EQ(1, c->r.status);
	EXPECT_EQ('\0', c->r.out[0]);
}

TEST_HARNESS_MAIN
