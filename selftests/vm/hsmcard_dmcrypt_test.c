// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dm-crypt on the hsmcard (run in the test guest).
 *
 * - LUKS2 volumes whose cipher is pinned to the card by the crypto API
 *   driver name (capi:xts-aes-hsmcard-plain64): data written through the
 *   card is read back through the kernel's generic AES-XTS
 *   (capi:xts(ecb(aes-generic))-plain64) with the same volume key, and
 *   the other way round; the raw sectors are also decrypted with OpenSSL.
 * - plain dm-crypt with a card key token (xts(paes)): the key never
 *   leaves the card, so the table holds just the token; data survives
 *   remove/recreate and a different token does not decrypt it.
 *
 * The driver's debugfs counters prove that the card did the work.  The
 * volumes live on loop devices backed by files on the guest's tmpfs.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define CARD_XTS	"xts-aes-hsmcard"
#define CARD_PAES	"xts-paes-hsmcard"
#define SOFT_XTS	"xts(ecb(aes-generic))"
#define VOL_MB		40
#define DATA_LEN	(1024 * 1024)	/* pattern written per test */
#define TOKEN_SIZE	80		/* HSMCARD_TOKEN_SIZE */

/* ---- helpers ---- */

static int write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, p, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int read_at(const char *path, off_t off, void *p, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, p, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int hex2bin(const char *hex, unsigned char *out, size_t max)
{
	size_t n = strlen(hex), i;

	if (n % 2 || n / 2 > max)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned int b;

		if (!isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = b;
	}
	return n / 2;
}

/* A dm-crypt table line, split up. */
struct crypt_table {
	unsigned long long len;
	char cipher[128];
	char key[600];
	unsigned long long iv_off;
	char dev[64];
	unsigned long long off;
	char opts[256];
};

static int parse_table(const char *line, struct crypt_table *t)
{
	int n = 0;

	memset(t, 0, sizeof(*t));
	if (sscanf(line, "0 %llu crypt %127s %599s %llu %63s %llu %n",
		   &t->len, t->cipher, t->key, &t->iv_off, t->dev, &t->off,
		   &n) != 6)
		return -1;
	snprintf(t->opts, sizeof(t->opts), "%s", line + n);
	return 0;
}

/* Create a dm-crypt mapping from @t with cipher @cipher. */
static int dm_create(const char *name, const struct crypt_table *t,
		     const char *cipher)
{
	return sh("dmsetup create %s --table '0 %llu crypt %s %s %llu %s %llu %s'",
		  name, t->len, cipher, t->key, t->iv_off, t->dev, t->off,
		  t->opts);
}

static int dm_remove(const char *name)
{
	return sh("dmsetup remove %s 2>/dev/null", name);
}

/*
 * Decrypt @nsec 512-byte sectors of the raw device from data sector
 * @sector with OpenSSL AES-XTS (plain64 IV: the sector number) and compare
 * them with @expect.
 */
static int ossl_check_sectors(const char *rawdev, const struct crypt_table *t,
			      unsigned long long sector, unsigned int nsec,
			      const unsigned char *expect)
{
	unsigned char key[64], ct[512], pt[512], iv[16];
	const EVP_CIPHER *c;
	int klen, ret = 0;
	unsigned int i;

	klen = hex2bin(t->key, key, sizeof(key));
	if (klen == 32)
		c = EVP_aes_128_xts();
	else if (klen == 64)
		c = EVP_aes_256_xts();
	else
		return -1;
	for (i = 0; i < nsec && !ret; i++) {
		unsigned long long s = sector + i + t->iv_off;
		EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
		int n = 0, f = 0, b;

		if (read_at(rawdev, (off_t)(t->off + sector + i) * 512, ct,
			    sizeof(ct))) {
			EVP_CIPHER_CTX_free(ctx);
			return -1;
		}
		memset(iv, 0, sizeof(iv));
		for (b = 0; b < 8; b++)
			iv[b] = s >> (8 * b);
		if (!ctx || !EVP_DecryptInit_ex(ctx, c, NULL, key, iv) ||
		    !EVP_DecryptUpdate(ctx, pt, &n, ct, sizeof(ct)) ||
		    !EVP_DecryptFinal_ex(ctx, pt + n, &f) ||
		    memcmp(pt, expect + 512 * i, sizeof(pt)))
			ret = -1;
		EVP_CIPHER_CTX_free(ctx);
	}
	return ret;
}

/* ---- fixture: a loop device on tmpfs ---- */

FIXTURE(dmcrypt) {
	char dir[64];
	char img[96];
	char keyfile[96];
	char data[96];
	char loop[64];
	unsigned char *pattern;
};

FIXTURE_SETUP(dmcrypt)
{
	unsigned char key[64];

	/* libdevmapper creates the nodes itself: there is no udev here. */
	setenv("DM_DISABLE_UDEV", "1", 1);
	sh("modprobe -q -a dm_mod dm_crypt loop xts ecb aes_generic af_alg algif_skcipher 2>/dev/null");
	if (sh("command -v cryptsetup dmsetup losetup >/dev/null"))
		SKIP(return, "cryptsetup, dmsetup or losetup missing (selftests/install-deps.sh)");
	if (!proc_crypto_has(CARD_XTS))
		SKIP(return, "%s is not registered", CARD_XTS);

	snprintf(self->dir, sizeof(self->dir), "/tmp/hsmdm.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->img, sizeof(self->img), "%s/img", self->dir);
	snprintf(self->keyfile, sizeof(self->keyfile), "%s/key", self->dir);
	snprintf(self->data, sizeof(self->data), "%s/data", self->dir);
	ASSERT_EQ(0, sh("truncate -s %dM %s", VOL_MB, self->img));
	ASSERT_EQ(0, sh_line(self->loop, sizeof(self->loop),
			     "losetup --find --show %s", self->img));
	ASSERT_EQ(0, strncmp(self->loop, "/dev/loop", 9));

	ASSERT_EQ(1, RAND_bytes(key, sizeof(key)));
	ASSERT_EQ(0, write_file(self->keyfile, key, sizeof(key)));
	self->pattern = malloc(DATA_LEN);
	ASSERT_NE(NULL, self->pattern);
	ASSERT_EQ(1, RAND_bytes(self->pattern, DATA_LEN));
	ASSERT_EQ(0, write_file(self->data, self->pattern, DATA_LEN));
}

FIXTURE_TEARDOWN(dmcrypt)
{
	dm_remove("hsmdm_a");
	dm_remove("hsmdm_b");
	if (self->loop[0])
		sh("losetup -d %s", self->loop);
	if (self->dir[0] == '/')
		sh("rm -rf %s", self->dir);
	free(self->pattern);
}

/* Write the pattern to /dev/mapper/@name with O_DIRECT. */
static int dm_write_pattern(const char *name, const char *data)
{
	return sh("dd if=%s of=/dev/mapper/%s bs=64k oflag=direct conv=fsync status=none",
		  data, name);
}

/* Read DATA_LEN bytes of /dev/mapper/@name and compare with @pattern. */
static int dm_check_pattern(const char *name, const unsigned char *pattern)
{
	char path[96];
	unsigned char *buf = malloc(DATA_LEN);
	int ret;

	if (!buf)
		return -1;
	/* A new mapping: nothing is cached, but make sure. */
	sh("blockdev --flushbufs /dev/mapper/%s", name);
	snprintf(path, sizeof(path), "/dev/mapper/%s", name);
	ret = read_at(path, 0, buf, DATA_LEN);
	if (!ret && memcmp(buf, pattern, DATA_LEN))
		ret = 1;
	free(buf);
	return ret;
}

static int dm_table(const char *name, struct crypt_table *t)
{
	char line[1024];

	if (sh_line(line, sizeof(line), "dmsetup table --showkeys %s", name))
		return -1;
	return parse_table(line, t);
}

/*
 * LUKS2 with @fmt_cipher: format, open, write the pattern, close; then map
 * the same sectors with the same volume key but @read_cipher and read the
 * pattern back.  The card's counters must grow on its side of the trip.
 */
static void luks_cross(struct __test_metadata *_metadata,
		       FIXTURE_DATA(dmcrypt) *self, const char *fmt_cipher,
		       const char *read_cipher)
{
	long long before, mid, after;
	struct crypt_table t;
	bool card_writes = strstr(fmt_cipher, "hsmcard");

	ASSERT_EQ(0, sh("cryptsetup luksFormat -q --type luks2 --cipher 'capi:%s-plain64' --key-size 512 --sector-size 512 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha256 --key-file %s %s",
			fmt_cipher, self->keyfile, self->loop))
		TH_LOG("luksFormat with capi:%s-plain64 failed", fmt_cipher);
	before = card_requests(CARD_XTS);
	ASSERT_LE(0, before);
	ASSERT_EQ(0, sh("cryptsetup open --disable-keyring --key-file %s %s hsmdm_a",
			self->keyfile, self->loop));
	ASSERT_EQ(0, dm_table("hsmdm_a", &t));
	EXPECT_EQ(0, strcmp(t.cipher, strstr(fmt_cipher, "hsmcard") ?
			    "capi:" CARD_XTS "-plain64" :
			    "capi:" SOFT_XTS "-plain64"))
		TH_LOG("table cipher %s", t.cipher);
	ASSERT_EQ(128U, strlen(t.key)) TH_LOG("key field %s", t.key);
	ASSERT_EQ(0, dm_write_pattern("hsmdm_a", self->data));
	ASSERT_EQ(0, dm_remove("hsmdm_a"));
	mid = card_requests(CARD_XTS);

	/* The raw sectors are AES-XTS of the pattern under the volume key. */
	ASSERT_EQ(0, ossl_check_sectors(self->loop, &t, 0, 8, self->pattern));
	ASSERT_EQ(0, ossl_check_sectors(self->loop, &t, DATA_LEN / 512 - 8, 8,
					self->pattern + DATA_LEN - 8 * 512));

	ASSERT_EQ(0, dm_create("hsmdm_b", &t, read_cipher));
	ASSERT_EQ(0, dm_check_pattern("hsmdm_b", self->pattern));
	ASSERT_EQ(0, dm_remove("hsmdm_b"));
	after = card_requests(CARD_XTS);

	/* At least one request per 4 KiB page went through the card. */
	if (card_writes) {
		EXPECT_LE(DATA_LEN / 4096, mid - before);
	} else {
		EXPECT_LE(DATA_LEN / 4096, after - mid);
	}
	TH_LOG("card xts requests: write %lld, read %lld", mid - before,
	       after - mid);
}

TEST_F_TIMEOUT(dmcrypt, luks2_card_write_soft_read, 600)
{
	luks_cross(_metadata, self, CARD_XTS, "capi:" SOFT_XTS "-plain64");
}

TEST_F_TIMEOUT(dmcrypt, luks2_soft_write_card_read, 600)
{
	luks_cross(_metadata, self, SOFT_XTS, "capi:" CARD_XTS "-plain64");
}

/* A card-pinned LUKS2 volume survives close/reopen; a wrong key fails. */
TEST_F_TIMEOUT(dmcrypt, luks2_card_reopen, 600)
{
	long long before, after;

	ASSERT_EQ(0, sh("cryptsetup luksFormat -q --type luks2 --cipher capi:" CARD_XTS "-plain64 --key-size 256 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file %s %s",
			self->keyfile, self->loop));
	before = card_requests(CARD_XTS);
	ASSERT_EQ(0, sh("cryptsetup open --key-file %s %s hsmdm_a",
			self->keyfile, self->loop));
	ASSERT_EQ(0, dm_write_pattern("hsmdm_a", self->data));
	ASSERT_EQ(0, sh("cryptsetup close hsmdm_a"));
	ASSERT_EQ(0, sh("cryptsetup open --key-file %s %s hsmdm_a",
			self->keyfile, self->loop));
	ASSERT_EQ(0, dm_check_pattern("hsmdm_a", self->pattern));
	ASSERT_EQ(0, sh("cryptsetup close hsmdm_a"));
	after = card_requests(CARD_XTS);
	EXPECT_LE(2 * DATA_LEN / 4096, after - before);
	/* A wrong passphrase is refused. */
	EXPECT_NE(0, sh("printf wrong | cryptsetup open --key-file - %s hsmdm_a 2>/dev/null",
			self->loop));
}

/* ---- paes: card key tokens ---- */

static int token_create(char *hex, size_t len)
{
	return sh_line(hex, len, "hsmctl token create --bits 512");
}

TEST_F_TIMEOUT(dmcrypt, paes_token_volume, 600)
{
	char tok[2 * TOKEN_SIZE + 8], tok2[2 * TOKEN_SIZE + 8], line[1024];
	unsigned long long sectors = (VOL_MB - 1) * 2048ULL;
	long long before, after;
	struct crypt_table t, t2;
	unsigned char *raw;
	int ret;

	if (!proc_crypto_has(CARD_PAES))
		SKIP(return, "%s is not registered", CARD_PAES);
	if (sh("command -v hsmctl >/dev/null"))
		SKIP(return, "hsmctl not built (make user)");
	ASSERT_EQ(0, token_create(tok, sizeof(tok)));
	ASSERT_EQ(2U * TOKEN_SIZE, strlen(tok)) TH_LOG("token '%s'", tok);
	ASSERT_EQ(0, token_create(tok2, sizeof(tok2)));
	ASSERT_NE(0, strcmp(tok, tok2));

	snprintf(line, sizeof(line), "0 %llu crypt capi:" CARD_PAES "-plain64 %s 0 %s 0",
		 sectors, tok, self->loop);
	ASSERT_EQ(0, parse_table(line, &t));
	before = card_requests(CARD_PAES);
	ASSERT_LE(0, before);
	ASSERT_EQ(0, sh("dmsetup create hsmdm_a --table '%s'", line));

	/* The table holds the token, and nothing else, as the key. */
	ASSERT_EQ(0, dm_table("hsmdm_a", &t2));
	EXPECT_EQ(0, strcasecmp(t2.key, tok)) TH_LOG("key field %s", t2.key);
	EXPECT_EQ(0, strcmp(t2.cipher, t.cipher));

	ASSERT_EQ(0, dm_write_pattern("hsmdm_a", self->data));
	ASSERT_EQ(0, dm_remove("hsmdm_a"));

	/* The device holds ciphertext, not the pattern. */
	raw = malloc(DATA_LEN);
	ASSERT_NE(NULL, raw);
	ASSERT_EQ(0, read_at(self->loop, 0, raw, DATA_LEN));
	ret = memcmp(raw, self->pattern, DATA_LEN);
	free(raw);
	EXPECT_NE(0, ret);

	/* Same token: the data comes back. */
	ASSERT_EQ(0, dm_create("hsmdm_a", &t, t.cipher));
	EXPECT_EQ(0, dm_check_pattern("hsmdm_a", self->pattern));
	ASSERT_EQ(0, dm_remove("hsmdm_a"));

	/* The legacy spec paes-xts-plain64 means xts(paes): the card's. */
	ASSERT_EQ(0, dm_create("hsmdm_a", &t, "paes-xts-plain64"));
	EXPECT_EQ(0, dm_check_pattern("hsmdm_a", self->pattern));
	ASSERT_EQ(0, dm_remove("hsmdm_a"));

	/* Another token (another key): garbage. */
	snprintf(t.key, sizeof(t.key), "%s", tok2);
	ASSERT_EQ(0, dm_create("hsmdm_b", &t, t.cipher));
	EXPECT_EQ(1, dm_check_pattern("hsmdm_b", self->pattern));
	ASSERT_EQ(0, dm_remove("hsmdm_b"));

	/* A forged token is refused by the table load. */
	snprintf(t.key, sizeof(t.key), "%s", tok);
	t.key[10] = t.key[10] == '0' ? '1' : '0';
	EXPECT_NE(0, sh("dmsetup create hsmdm_b --table '0 %llu crypt %s %s 0 %s 0' 2>/dev/null",
			t.len, t.cipher, t.key, t.dev));
	dm_remove("hsmdm_b");

	after = card_requests(CARD_PAES);
	EXPECT_LE(4 * DATA_LEN / 4096, after - before);
	TH_LOG("card xts(paes) requests: %lld", after - before);
	sh("hsmctl token destroy %s >/dev/null 2>&1", tok);
	sh("hsmctl token destroy %s >/dev/null 2>&1", tok2);
}

TEST_HARNESS_MAIN
