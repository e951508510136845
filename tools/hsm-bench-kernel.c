// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsm-bench-kernel: throughput of kernel crypto API drivers through AF_ALG.
 *
 * Encrypts one request per message (a fresh IV each time) for a fixed time
 * per request size, with several requests in flight: each of --jobs threads
 * owns an AF_ALG operation socket and keeps one request outstanding on it
 * (AF_ALG has one request in flight per socket for read()/write(); its AIO
 * interface would need libaio, and threads reach the same depth).  Every
 * implementation is bound by its crypto API driver name, so the card, the
 * virtio-crypto device and the CPU are measured side by side, and the
 * ratios of the first column to the others are printed.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <getopt.h>
#include <linux/if_alg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_ALG
#define SOL_ALG 279
#endif

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define MAX_IMPLS	8
#define MAX_SIZES	8
#define GCM_TAG		16

enum mode { MODE_CBC, MODE_XTS, MODE_GCM };

static const struct mode_desc {
	const char *name;
	const char *type;	/* AF_ALG type */
	unsigned int keylen;	/* AES-256 */
	unsigned int ivlen;
} modes[] = {
	[MODE_CBC] = { "cbc", "skcipher", 32, 16 },
	[MODE_XTS] = { "xts", "skcipher", 64, 16 },
	[MODE_GCM] = { "gcm", "aead", 32, 12 },
};

struct impl {
	char label[32];
	char driver[128];
};

struct job {
	pthread_t thread;
	const struct mode_desc *m;
	const char *driver;
	size_t size;
	double seconds;
	unsigned long long bytes;
	int err;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A transform socket for @driver with a fixed pseudo-random key. */
static int tfm_open(const struct mode_desc *m, const char *driver)
{
	struct sockaddr_alg sa = { .salg_family = AF_ALG };
	unsigned char key[64];
	unsigned int i;
	int fd;

	for (i = 0; i < sizeof(key); i++)
		key[i] = 0x5a ^ (i * 29);	/* the two XTS halves differ */
	snprintf((char *)sa.salg_type, sizeof(sa.salg_type), "%s", m->type);
	snprintf((char *)sa.salg_name, sizeof(sa.salg_name), "%s", driver);
	fd = socket(AF_ALG, SOCK_SEQPACKET, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(fd, SOL_ALG, ALG_SET_KEY, key, m->keylen) ||
	    (!strcmp(m->type, "aead") &&
	     setsockopt(fd, SOL_ALG, ALG_SET_AEAD_AUTHSIZE, NULL, GCM_TAG))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Send one encryption request of @len bytes with IV number @seq. */
static int send_req(int op, const struct mode_desc *m, const void *buf,
		    size_t len, uint64_t seq)
{
	char cbuf[CMSG_SPACE(4) + CMSG_SPACE(sizeof(struct af_alg_iv) + 16) +
		  CMSG_SPACE(4)] = {};
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct af_alg_iv *aiv;
	struct cmsghdr *c;
	ssize_t n;

	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_OP;
	c->cmsg_len = CMSG_LEN(4);
	*(uint32_t *)CMSG_DATA(c) = ALG_OP_ENCRYPT;
	c = CMSG_NXTHDR(&msg, c);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_IV;
	c->cmsg_len = CMSG_LEN(sizeof(*aiv) + m->ivlen);
	aiv = (struct af_alg_iv *)CMSG_DATA(c);
	aiv->ivlen = m->ivlen;
	memset(aiv->iv, 0, m->ivlen);
	memcpy(aiv->iv, &seq, sizeof(seq));
	c = CMSG_NXTHDR(&msg, c);
	c->cmsg_level = SOL_ALG;
	c->cmsg_type = ALG_SET_AEAD_ASSOCLEN;
	c->cmsg_len = CMSG_LEN(4);
	*(uint32_t *)CMSG_DATA(c) = 0;
	if (strcmp(m->type, "aead"))
		msg.msg_controllen = CMSG_SPACE(4) +
				     CMSG_SPACE(sizeof(*aiv) + m->ivlen);
	n = sendmsg(op, &msg, 0);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int recv_all(int op, void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(op, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

static void *job_run(void *arg)
{
	struct job *j = arg;
	size_t outlen = j->size + (strcmp(j->m->type, "aead") ? 0 : GCM_TAG);
	unsigned char *in = malloc(j->size), *out = malloc(outlen);
	int tfm = -1, op = -1;
	uint64_t seq = 0;
	double end;

	if (!in || !out) {
		j->err = -ENOMEM;
		goto out;
	}
	memset(in, 0xa5, j->size);
	tfm = tfm_open(j->m, j->driver);
	if (tfm < 0) {
		j->err = tfm;
		goto out;
	}
	op = accept(tfm, NULL, NULL);
	if (op < 0) {
		j->err = -errno;
		goto out;
	}
	end = now() + j->seconds;
	do {
		j->err = send_req(op, j->m, in, j->size, seq++);
		if (!j->err)
			j->err = recv_all(op, out, outlen);
		if (j->err)
			break;
		j->bytes += j->size;
	} while (now() < end);
out:
	if (op >= 0)
		close(op);
	if (tfm >= 0)
		close(tfm);
	free(in);
	free(out);
	return NULL;
}

/* MB/s (10^6 bytes) of @driver at @size, or a negative errno. */
static double measure(const struct mode_desc *m, const char *driver,
		      size_t size, double seconds, unsigned int jobs)
{
	struct job *j = calloc(jobs, sizeof(*j));
	unsigned long long bytes = 0;
	unsigned int i, started = 0;
	int err = 0;
	double t0, t;

	if (!j)
		return -ENOMEM;
	t0 = now();
	for (i = 0; i < jobs; i++) {
		j[i] = (struct job){ .m = m, .driver = driver, .size = size,
				     .seconds = seconds };
		if (pthread_create(&j[i].thread, NULL, job_run, &j[i]))
			break;
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(j[i].thread, NULL);
		bytes += j[i].bytes;
		if (j[i].err && !err)
			err = j[i].err;
	}
	t = now() - t0;
	free(j);
	if (started < jobs)
		return -EAGAIN;
	if (err)
		return err;
	return bytes / t / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: hsm-bench-kernel [options] MODE LABEL=DRIVER...\n"
"\n"
"Encrypt through AF_ALG with each crypto API driver (bound by its driver\n"
"name, AES-256) and print MB/s (10^6 bytes/s) per request size, and the\n"
"ratio of the first LABEL's figure to each other's.\n"
"\n"
"MODE: cbc (skcipher cbc(aes)), xts (skcipher xts(aes), 512-bit key) or\n"
"      gcm (aead gcm(aes), 12-byte IV, 16-byte tag, no AAD)\n"
"\n"
"Options:\n"
"  -s, --sizes LIST   request sizes in bytes (default 512,4096,65536)\n"
"  -t, --seconds S    time per size and driver (default 3)\n"
"  -j, --jobs N       threads, each with its own socket and one request\n"
"                     in flight (default 4)\n"
"  -h, --help         this text\n"
"\n"
"A driver that cannot be bound (not registered, no such mode) shows n/a.\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "sizes", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	size_t sizes[MAX_SIZES] = { 512, 4096, 65536 };
	double res[MAX_SIZES][MAX_IMPLS];
	struct impl impl[MAX_IMPLS];
	unsigned int nsizes = 3, nimpl = 0, jobs = 4, i, k;
	const struct mode_desc *m = NULL;
	double seconds = 3;
	char *s, *e;
	int c;

	while ((c = getopt_long(argc, argv, "s:t:j:h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			nsizes = 0;
			for (s = optarg; *s && nsizes < MAX_SIZES; s = e) {
				unsigned long v = strtoul(s, &e, 0);

				if (e == s || !v || v > (1 << 20) ||
				    (*e && *e != ',')) {
					fprintf(stderr, "hsm-bench-kernel: bad size list\n");
					return 2;
				}
				sizes[nsizes++] = v;
				if (*e)
					e++;
			}
			break;
		case 't':
			seconds = strtod(optarg, &e);
			if (*e || seconds <= 0 || seconds > 3600) {
				fprintf(stderr, "hsm-bench-kernel: bad --seconds\n");
				return 2;
			}
			break;
		case 'j':
			jobs = strtoul(optarg, &e, 0);
			if (*e || !jobs || jobs > 256) {
				fprintf(stderr, "hsm-bench-kernel: bad --jobs\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 2 > argc) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < ARRAY_SIZE(modes); i++)
		if (!strcmp(argv[optind], modes[i].name))
			m = &modes[i];
	if (!m) {
		fprintf(stderr, "hsm-bench-kernel: unknown mode %s\n", argv[optind]);
		return 2;
	}
	for (i = optind + 1; i < (unsigned int)argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq || eq == argv[i] || !eq[1] || nimpl == MAX_IMPLS ||
		    eq - argv[i] >= (long)sizeof(impl[0].label) ||
		    strlen(eq + 1) >= sizeof(impl[0].driver)) {
			fprintf(stderr, "hsm-bench-kernel: bad LABEL=DRIVER '%s'\n",
				argv[i]);
			return 2;
		}
		snprintf(impl[nimpl].label, sizeof(impl[0].label), "%.*s",
			 (int)(eq - argv[i]), argv[i]);
		snprintf(impl[nimpl].driver, sizeof(impl[0].driver), "%s",
			 eq + 1);
		nimpl++;
	}

	printf("# %s(aes), AES-%u, %u jobs, %.1f s per point, MB/s\n",
	       m->name, m->name[0] == 'x' ? m->keylen * 4 : m->keylen * 8,
	       jobs, seconds);
	for (k = 0; k < nimpl; k++)
		printf("#   %-10s %s\n", impl[k].label, impl[k].driver);
	printf("%-6s %-8s", "mode", "size");
	for (k = 0; k < nimpl; k++)
		printf(" %10s", impl[k].label);
	for (k = 1; k < nimpl; k++)
		printf(" %5.5s/%-5.5s", impl[0].label, impl[k].label);
	printf("\n");
	for (i = 0; i < nsizes; i++) {
		printf("%-6s %-8zu", m->name, sizes[i]);
		fflush(stdout);
		for (k = 0; k < nimpl; k++) {
			res[i][k] = measure(m, impl[k].driver, sizes[i],
					    seconds, jobs);
			if (res[i][k] < 0)
				printf(" %10s", "n/a");
			else
				printf(" %10.2f", res[i][k]);
			fflush(stdout);
		}
		for (k = 1; k < nimpl; k++) {
			if (res[i][0] > 0 && res[i][k] > 0)
				printf(" %11.2f", res[i][0] / res[i][k]);
			else
				printf(" %11s", "n/a");
		}
		printf("\n");
	}
	return 0;
}
