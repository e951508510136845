// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsm-bench-engine: raw rate of the hsmcard firmware core beside host
 * OpenSSL.
 *
 * For each operation and each thread count from 1 to --threads (default:
 * online CPUs), run the operation for --seconds on every thread, once
 * through the firmware core (hsm_fw_io() on a fake host whose DMA is a
 * memcpy) and once with plain OpenSSL EVP calls on the same key and data,
 * and print both rates and their ratio.  This is the physical limit the
 * whole stack (driver, rings, library) is measured against.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "fakehost.h"

#define MAX_THREADS	64

enum bench_op {
	OP_RSA2048_SIGN,
	OP_P256_SIGN,
	OP_ED25519_SIGN,
	OP_GCM_64,
	OP_GCM_4K,
	OP_HMAC_32,
	OP_NR,
};

static const char *const op_names[OP_NR] = {
	"rsa2048-sign-sha256", "ecdsa-p256-sign-sha256", "ed25519-sign",
	"aes256-gcm-enc-64", "aes256-gcm-enc-4096", "hmac-sha256-32",
};

static const size_t op_len[OP_NR] = { 32, 32, 32, 64, 4096, 32 };

static struct fakehost fh;
static struct hsm_fw *fw;
static uint64_t handles[OP_NR];
static EVP_PKEY *pkeys[OP_NR];
static uint8_t aes_key[32], hmac_key[32], msg[4096];
static EVP_CIPHER *gcm;
static EVP_MAC_CTX *hmac_tmpl;
static double seconds = 1.0;

struct worker {
	pthread_t th;
	enum bench_op op;
	bool core;
	double deadline;
	unsigned long ops;
	double cpu;		/* thread CPU seconds used */
	bool failed;
	uint64_t src, dst;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "hsm-bench-engine: %s\n", what);
	exit(1);
}

/* ---- one operation through the firmware core ---- */

static bool core_op(struct worker *w)
{
	struct hsm_sqe s;
	uint64_t res;

	memset(&s, 0, sizeof(s));
	s.handle = htole64(handles[w->op]);
	s.src = htole64(w->src);
	s.src_len = htole32(op_len[w->op]);
	s.dst = htole64(w->dst);
	s.dst_len = htole32(8192);
	switch (w->op) {
	case OP_RSA2048_SIGN:
		s.opcode = HSM_IO_SIGN;
		s.mech = htole16(HSM_MECH_RSA_PKCS1);
		s.mparam = htole16(HSM_MECH_SHA256);
		break;
	case OP_P256_SIGN:
		s.opcode = HSM_IO_SIGN;
		s.mech = htole16(HSM_MECH_ECDSA);
		s.mparam = htole16(HSM_MECH_SHA256);
		break;
	case OP_ED25519_SIGN:
		s.opcode = HSM_IO_SIGN;
		s.mech = htole16(HSM_MECH_EDDSA);
		break;
	case OP_GCM_64:
	case OP_GCM_4K:
		s.opcode = HSM_IO_ENCRYPT;
		s.mech = htole16(HSM_MECH_AES_GCM);
		memcpy(s.iv, msg, 12);
		break;
	case OP_HMAC_32:
		s.opcode = HSM_IO_MAC;
		s.mech = htole16(HSM_MECH_HMAC_SHA256);
		break;
	default:
		return false;
	}
	return hsm_fw_io(fw, &fh.host, &s, &res) == HSM_SC_SUCCESS;
}

/* ---- the same operation with plain OpenSSL ---- */

static bool ossl_sign(EVP_PKEY *pk, const char *md, uint8_t *sig)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	size_t len = 512;
	bool ok;

	ok = m && EVP_DigestSignInit_ex(m, NULL, md, NULL, NULL, pk, NULL) == 1 &&
	     EVP_DigestSign(m, sig, &len, msg, 32) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

static bool ossl_op(struct worker *w, uint8_t *out)
{
	EVP_CIPHER_CTX *c;
	EVP_MAC_CTX *mc;
	size_t len = op_len[w->op];
	int n = 0;
	bool ok;

	switch (w->op) {
	case OP_RSA2048_SIGN:
	case OP_P256_SIGN:
		return ossl_sign(pkeys[w->op], "SHA256", out);
	case OP_ED25519_SIGN:
		return ossl_sign(pkeys[w->op], NULL, out);
	case OP_GCM_64:
	case OP_GCM_4K:
		c = EVP_CIPHER_CTX_new();
		ok = c && EVP_EncryptInit_ex2(c, gcm, aes_key, msg, NULL) &&
		     EVP_EncryptUpdate(c, out, &n, msg, len) &&
		     EVP_EncryptFinal_ex(c, out + n, &n) &&
		     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16,
					 out + len);
		EVP_CIPHER_CTX_free(c);
		return ok;
	case OP_HMAC_32:
		mc = EVP_MAC_CTX_dup(hmac_tmpl);
		ok = mc && EVP_MAC_update(mc, msg, 32) &&
		     EVP_MAC_final(mc, out, &len, 64);
		EVP_MAC_CTX_free(mc);
		return ok;
	default:
		return false;
	}
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	uint8_t out[8192];
	double cpu0 = cpu_now();

	while (now() < w->deadline) {
		if (!(w->core ? core_op(w) : ossl_op(w, out))) {
			w->failed = true;
			break;
		}
		w->ops++;
	}
	w->cpu = cpu_now() - cpu0;
	return NULL;
}

/* Run @op on @nthreads threads for @secs; returns the operation count. */
static unsigned long run_slice(enum bench_op op, bool core, int nthreads,
			       struct worker *ws, double secs, double *took,
			       double *cpu)
{
	unsigned long total = 0;
	double start = now();
	int i;

	for (i = 0; i < nthreads; i++) {
		ws[i].op = op;
		ws[i].core = core;
		ws[i].deadline = start + secs;
		ws[i].ops = 0;
		ws[i].failed = false;
		if (pthread_create(&ws[i].th, NULL, worker_fn, &ws[i]))
			die("pthread_create failed");
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		if (ws[i].failed)
			die(core ? "core operation failed" :
				   "OpenSSL operation failed");
		total += ws[i].ops;
		*cpu += ws[i].cpu;
	}
	*took += now() - start;
	return total;
}

/*
 * One cell: core and OpenSSL alternate in SLICES slices each, so that load
 * from elsewhere on the machine hits both sides alike.
 */
#define SLICES 10

static void run_cell(enum bench_op op, int nthreads, struct worker *ws,
		     double *core_rate, double *ossl_rate, double *cpu_ratio)
{
	unsigned long core_ops = 0, ossl_ops = 0;
	double core_t = 0, ossl_t = 0, core_cpu = 0, ossl_cpu = 0;
	int i;

	for (i = 0; i < SLICES; i++) {
		core_ops += run_slice(op, true, nthreads, ws, seconds / SLICES,
				      &core_t, &core_cpu);
		ossl_ops += run_slice(op, false, nthreads, ws,
				      seconds / SLICES, &ossl_t, &ossl_cpu);
	}
	*core_rate = core_ops / core_t;
	*ossl_rate = ossl_ops / ossl_t;
	/* ops per CPU second: insensitive to load from other processes */
	*cpu_ratio = (core_ops / core_cpu) / (ossl_ops / ossl_cpu);
}

/* ---- keys: generated by OpenSSL, imported into the core unchanged ---- */

static uint64_t import(uint16_t type, const void *key, size_t len)
{
	struct hsm_key_attrs a;
	struct hsm_sqe s;
	uint64_t addr = fh_alloc(&fh, sizeof(a) + len), h = 0;

	memset(&a, 0, sizeof(a));
	a.type = htole16(type);
	memcpy(fh_ptr(&fh, addr), &a, sizeof(a));
	memcpy((uint8_t *)fh_ptr(&fh, addr) + sizeof(a), key, len);
	memset(&s, 0, sizeof(s));
	s.opcode = HSM_ADM_KEY_IMPORT;
	s.src = htole64(addr);
	s.src_len = htole32(sizeof(a) + len);
	if (hsm_fw_admin(fw, &fh.host, &s, &h))
		die("key import into the core failed");
	return h;
}

static uint64_t import_pkey(EVP_PKEY *pk, uint16_t type)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
	unsigned char *der = NULL;
	int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	uint64_t h;

	if (len <= 0)
		die("PKCS#8 encoding failed");
	h = import(type, der, len);
	OPENSSL_clear_free(der, len);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return h;
}

static void setup_keys(void)
{
	OSSL_PARAM params[2];
	EVP_MAC *mac;

	RAND_bytes(aes_key, sizeof(aes_key));
	RAND_bytes(hmac_key, sizeof(hmac_key));
	RAND_bytes(msg, sizeof(msg));

	pkeys[OP_RSA2048_SIGN] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
						   (size_t)2048);
	pkeys[OP_P256_SIGN] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pkeys[OP_ED25519_SIGN] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkeys[OP_RSA2048_SIGN] || !pkeys[OP_P256_SIGN] ||
	    !pkeys[OP_ED25519_SIGN])
		die("key generation failed");
	handles[OP_RSA2048_SIGN] = import_pkey(pkeys[OP_RSA2048_SIGN],
					       HSM_KEY_RSA);
	handles[OP_P256_SIGN] = import_pkey(pkeys[OP_P256_SIGN],
					    HSM_KEY_EC_P256);
	handles[OP_ED25519_SIGN] = import_pkey(pkeys[OP_ED25519_SIGN],
					       HSM_KEY_ED25519);
	handles[OP_GCM_64] = import(HSM_KEY_AES, aes_key, 32);
	handles[OP_GCM_4K] = handles[OP_GCM_64];
	handles[OP_HMAC_32] = import(HSM_KEY_HMAC, hmac_key, 32);

	gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	hmac_tmpl = mac ? EVP_MAC_CTX_new(mac) : NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     "SHA2-256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!gcm || !hmac_tmpl ||
	    !EVP_MAC_init(hmac_tmpl, hmac_key, sizeof(hmac_key), params))
		die("OpenSSL setup failed");
	EVP_MAC_free(mac);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hsm-bench-engine [--seconds S] [--threads N] [--op NAME]\n"
		"\n"
		"Rate of the hsmcard firmware core (hsm_fw_io through fake DMA)\n"
		"beside plain host OpenSSL for the same operation, key and data,\n"
		"with 1..N threads.  ratio = core ops/s / OpenSSL ops/s;\n"
		"cpu-ratio = the same per CPU second used (robust to load).\n"
		"\n"
		"  -s, --seconds S   time per side and cell, in 10 alternating\n"
		"                    slices (default 1)\n"
		"  -t, --threads N   highest thread count (default: online CPUs)\n"
		"  -o, --op NAME     run only this operation (repeatable)\n"
		"  -h, --help        this text\n"
		"\n"
		"operations:");
	for (int i = 0; i < OP_NR; i++)
		fprintf(f, " %s", op_names[i]);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "op", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct hsm_fw_config cfg = {
		.serial = "BENCH0000000001",
		.max_ioq = 4,
		.max_qsize = 256,
		.max_keys = 64,
		.nr_vectors = 8,
	};
	static struct worker ws[MAX_THREADS];
	bool want[OP_NR] = { false }, any = false;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int maxthreads = ncpu > 0 ? (int)ncpu : 1;
	char *err = NULL, *end;
	int c, i, t;

	while ((c = getopt_long(argc, argv, "s:t:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0 || seconds > 3600) {
				fprintf(stderr, "bad --seconds\n");
				return 2;
			}
			break;
		case 't':
			maxthreads = strtol(optarg, &end, 10);
			if (*end || maxthreads < 1 || maxthreads > MAX_THREADS) {
				fprintf(stderr, "--threads must be 1..%d\n",
					MAX_THREADS);
				return 2;
			}
			break;
		case 'o':
			for (i = 0; i < OP_NR; i++)
				if (!strcmp(optarg, op_names[i]))
					break;
			if (i == OP_NR) {
				fprintf(stderr, "unknown operation %s\n",
					optarg);
				usage(stderr);
				return 2;
			}
			want[i] = any = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	if (fh_init(&fh))
		die("out of memory");
	fw = hsm_fw_new(&cfg, &err);
	if (!fw)
		die(err ? err : "hsm_fw_new failed");
	setup_keys();
	for (i = 0; i < maxthreads; i++) {
		ws[i].src = fh_put(&fh, msg, sizeof(msg));
		ws[i].dst = fh_alloc(&fh, 8192);
	}

	printf("# hsmcard firmware core vs host OpenSSL (%s), %.1f s per cell, %ld CPUs\n",
	       OpenSSL_version(OPENSSL_VERSION), seconds, ncpu);
	printf("%-24s %7s %14s %14s %7s %9s\n", "operation", "threads",
	       "core ops/s", "openssl ops/s", "ratio", "cpu-ratio");
	for (i = 0; i < OP_NR; i++) {
		if (any && !want[i])
			continue;
		for (t = 1; t <= maxthreads; t++) {
			double core, ossl, cpu;

			run_cell(i, t, ws, &core, &ossl, &cpu);
			printf("%-24s %7d %14.0f %14.0f %7.3f %9.3f\n",
			       op_names[i], t, core, ossl, core / ossl, cpu);
			fflush(stdout);
		}
	}
	hsm_fw_free(fw);
	for (i = 0; i < OP_NR; i++)
		EVP_PKEY_free(pkeys[i]);
	EVP_CIPHER_free(gcm);
	EVP_MAC_CTX_free(hmac_tmpl);
	fh_fini(&fh);
	return 0;
}
