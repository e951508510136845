// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsm-memscan: the memory-scan test's helper (selftests/vm/backup-restore.sh).
 *
 *   hsm-memscan gen DIR         (host) make the test keys and a KEK:
 *                               DIR/guest/ gets the KEK and the keys wrapped
 *                               under it (RFC 5649), the only files the
 *                               guest reads; DIR/host/ the clear key values
 *                               to look for
 *   hsm-memscan hold            (guest) compute the positive-control marker
 *                               in a locked buffer, print "HOLDING" and keep
 *                               it until SIGTERM
 *   hsm-memscan scan DUMP DIR   (host) look for every clear test key, the
 *                               marker and the KEK in a guest memory dump
 *
 * The marker exists in clear only in the memory of "hold" (and of "scan"):
 * this program and every file carry it XORed, so finding it in the dump
 * proves the dump holds process memory and the scan sees it.
 *
 * scan prints one line per value and exits 0 if no test key was found and
 * the marker was, 1 otherwise, 2 on errors.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define MARK_LEN	32
#define MARK_XOR	0x5a
#define KEK_LEN		32
#define MAX_HITS	8

/* A fixed 32-character ASCII string, XOR 0x5a (never in clear here). */
static const uint8_t marker_x[MARK_LEN] = {
	0x12, 0x09, 0x17, 0x19, 0x1b, 0x08, 0x1e, 0x77,
	0x17, 0x1f, 0x17, 0x09, 0x19, 0x1b, 0x14, 0x77,
	0x0a, 0x15, 0x09, 0x13, 0x0e, 0x13, 0x0c, 0x1f,
	0x77, 0x19, 0x15, 0x14, 0x0e, 0x08, 0x15, 0x16,
};

/* volatile: the compiler must not fold the clear marker into the binary */
static volatile uint8_t mark_xor = MARK_XOR;

static void marker(uint8_t *out)
{
	for (int i = 0; i < MARK_LEN; i++)
		out[i] = marker_x[i] ^ mark_xor;
}

static int put_file(const char *dir, const char *name, const void *buf,
		    size_t len)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "hsm-memscan: %s: %s\n", path, strerror(errno));
		return -1;
	}
	ok = fwrite(buf, 1, len, f) == len;
	if (fclose(f) || !ok) {
		fprintf(stderr, "hsm-memscan: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

static int kwp(const uint8_t *kek, const uint8_t *in, size_t len,
	       uint8_t *out)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-WRAP-PAD", NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, ret = -1;

	if (c && ctx) {
		EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
		if (EVP_EncryptInit_ex2(ctx, c, kek, NULL, NULL) &&
		    EVP_EncryptUpdate(ctx, out, &n, in, (int)len) &&
		    EVP_EncryptFinal_ex(ctx, out + n, &f))
			ret = n + f;
	}
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return ret;
}

/*
 * One test key: @needle (the clear value to look for) goes to the host
 * directory, @material wrapped under @kek to the guest's, and a line
 * "NAME TYPE" to the guest's list.
 */
static int emit(const char *dir, FILE *list, const uint8_t *kek,
		const char *name, const char *type, const uint8_t *material,
		size_t mlen, const uint8_t *needle, size_t nlen)
{
	char d[4096], fname[128];
	uint8_t blob[4096];
	int n;

	if (mlen + 16 > sizeof(blob))
		return -1;
	n = kwp(kek, material, mlen, blob);
	if (n < 0)
		return -1;
	snprintf(d, sizeof(d), "%s/guest", dir);
	snprintf(fname, sizeof(fname), "%s.blob", name);
	if (put_file(d, fname, blob, n))
		return -1;
	snprintf(d, sizeof(d), "%s/host", dir);
	snprintf(fname, sizeof(fname), "%s.key", name);
	if (put_file(d, fname, needle, nlen))
		return -1;
	fprintf(list, "%s %s\n", name, type);
	return 0;
}

static int cmd_gen(const char *dir)
{
	uint8_t kek[KEK_LEN], key[64], priv[32];
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8;
	BIGNUM *d = NULL;
	EVP_PKEY *pk = NULL;
	char path[4096];
	FILE *list;
	int der_len = 0, ret = 2, i;

	snprintf(path, sizeof(path), "%s/guest", dir);
	if (mkdir(dir, 0755) && errno != EEXIST)
		goto err_dir;
	if (mkdir(path, 0755) && errno != EEXIST)
		goto err_dir;
	snprintf(path, sizeof(path), "%s/host", dir);
	if (mkdir(path, 0700) && errno != EEXIST)
		goto err_dir;
	if (RAND_bytes(kek, sizeof(kek)) != 1)
		return 2;
	snprintf(path, sizeof(path), "%s/guest", dir);
	if (put_file(path, "kek.bin", kek, sizeof(kek)))
		return 2;
	snprintf(path, sizeof(path), "%s/host", dir);
	if (put_file(path, "kek.bin", kek, sizeof(kek)))
		return 2;
	snprintf(path, sizeof(path), "%s/guest/keys", dir);
	list = fopen(path, "w");
	if (!list)
		return 2;

	for (i = 0; i < 2; i++) {
		char name[16];

		snprintf(name, sizeof(name), "aes%d", i);
		if (RAND_bytes(key, 32) != 1 ||
		    emit(dir, list, kek, name, "aes", key, 32, key, 32))
			goto out;
	}
	if (RAND_bytes(key, 48) != 1 ||
	    emit(dir, list, kek, "hmac0", "hmac", key, 48, key, 48))
		goto out;
	/* EC P-256: the material is PKCS#8, the needle the private scalar */
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	p8 = pk ? EVP_PKEY2PKCS8(pk) : NULL;
	der_len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (der_len <= 0 ||
	    !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
	    BN_bn2binpad(d, priv, sizeof(priv)) != sizeof(priv) ||
	    emit(dir, list, kek, "ec0", "ec-p256", der, der_len, priv,
		 sizeof(priv)))
		goto out;
	ret = 0;
out:
	if (fclose(list))
		ret = 2;
	OPENSSL_clear_free(der, der_len > 0 ? der_len : 0);
	BN_clear_free(d);
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(priv, sizeof(priv));
	OPENSSL_cleanse(kek, sizeof(kek));
	if (ret)
		fprintf(stderr, "hsm-memscan: gen failed\n");
	return ret;
err_dir:
	fprintf(stderr, "hsm-memscan: mkdir %s: %s\n", path, strerror(errno));
	return 2;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

static int cmd_hold(void)
{
	uint8_t *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		return 2;
	mlock(buf, 4096);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	marker(buf);
	printf("HOLDING\n");
	fflush(stdout);
	while (!stop)
		pause();
	explicit_bzero(buf, 4096);
	return 0;
}

/* Print where @needle occurs in @mem; returns the number of hits. */
static size_t find_all(const uint8_t *mem, size_t size, const uint8_t *needle,
		       size_t nlen, const char *what)
{
	const uint8_t *p = mem, *hit;
	size_t hits = 0;

	while ((hit = memmem(p, size - (p - mem), needle, nlen))) {
		if (hits < MAX_HITS)
			printf("#   %s at dump offset 0x%zx\n", what,
			       (size_t)(hit - mem));
		hits++;
		p = hit + 1;
		if ((size_t)(p - mem) + nlen > size)
			break;
	}
	return hits;
}

static int cmd_scan(const char *dump, const char *dir)
{
	uint8_t mark[MARK_LEN], needle[256];
	size_t size, hits, found = 0, keys = 0;
	char path[4096];
	struct dirent *de;
	struct stat st;
	uint8_t *mem;
	DIR *dd;
	int fd;

	fd = open(dump, O_RDONLY);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "hsm-memscan: %s: %s\n", dump, strerror(errno));
		return 2;
	}
	size = st.st_size;
	mem = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (mem == MAP_FAILED)
		return 2;
	madvise(mem, size, MADV_SEQUENTIAL);
	printf("# scanned %zu bytes of %s\n", size, dump);
	snprintf(path, sizeof(path), "%s/host", dir);
	dd = opendir(path);
	if (!dd)
		return 2;
	while ((de = readdir(dd))) {
		size_t n = strlen(de->d_name);
		FILE *f;

		if (n < 5 || strcmp(de->d_name + n - 4, ".key"))
			continue;
		snprintf(path, sizeof(path), "%s/host/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			return 2;
		n = fread(needle, 1, sizeof(needle), f);
		fclose(f);
		if (n < 16)
			return 2;
		keys++;
		hits = find_all(mem, size, needle, n, de->d_name);
		if (hits) {
			found++;
			printf("FOUND %s: %zu times\n", de->d_name, hits);
		} else {
			printf("absent %s (%zu bytes)\n", de->d_name, n);
		}
	}
	closedir(dd);
	marker(mark);
	hits = find_all(mem, size, mark, MARK_LEN, "marker");
	printf("%s marker: %zu times\n", hits ? "found" : "MISSING", hits);
	snprintf(path, sizeof(path), "%s/host/kek.bin", dir);
	{
		FILE *f = fopen(path, "rb");
		size_t kh;

		if (f && fread(needle, 1, KEK_LEN, f) == KEK_LEN) {
			kh = find_all(mem, size, needle, KEK_LEN, "KEK");
			printf("info: the KEK (imported in clear) is in the dump %zu times\n",
			       kh);
		}
		if (f)
			fclose(f);
	}
	munmap(mem, size);
	printf("# %zu test keys: %zu found\n", keys, found);
	return !found && keys && hits ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "gen"))
		return cmd_gen(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "hold"))
		return cmd_hold();
	if (argc == 4 && !strcmp(argv[1], "scan"))
		return cmd_scan(argv[2], argv[3]);
	fprintf(stderr,
		"usage: hsm-memscan gen DIR | hold | scan DUMP DIR\n");
	return 2;
}
