// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard hwrng tests (run in the test guest).
 *
 * The card's RNG is registered with the kernel's hwrng core.  Select it
 * through /sys/class/misc/hw_random/rng_current, read 2.5 MB from /dev/hwrng
 * and judge it with rngtest (rng-tools5, the FIPS 140-2 tests) and with
 * independent checks of our own: a bytewise chi-square test, a monobit
 * test, a lag-1 repeat test and a search for repeated 16-byte blocks (a
 * driver handing out a stale DMA buffer twice).
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define RNG_SYSFS	"/sys/class/misc/hw_random"
#define RNG_DEV		"/dev/hwrng"
#define NR_BLOCKS	1000
#define FIPS_BLOCK	2500			/* 20000 bits per FIPS block */
#define DATA_LEN	(NR_BLOCKS * FIPS_BLOCK + 4)	/* + rngtest's seed word */
#define MAX_FIPS_FAIL	12	/* ~0.8 per 1000 from a good source: P(> 12) ~ 4e-12 */
#define CHUNK		16

static int cmp_chunk(const void *a, const void *b)
{
	return memcmp(a, b, CHUNK);
}

FIXTURE(rng) {
	char name[64];		/* the card's hwrng */
	char prev[64];		/* rng_current before the test */
	unsigned char *data;
};

FIXTURE_SETUP(rng)
{
	char avail[1024], cur[64], *tok, *save;

	if (access(RNG_SYSFS "/rng_available", R_OK))
		SKIP(return, "no hwrng core in this kernel");
	ASSERT_EQ(0, read_str(RNG_SYSFS "/rng_available", avail, sizeof(avail)));
	for (tok = strtok_r(avail, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (!strncmp(tok, "hsmcard", 7))
			break;
	ASSERT_NE(NULL, tok) TH_LOG("no hsmcard in rng_available");
	snprintf(self->name, sizeof(self->name), "%s", tok);

	ASSERT_EQ(0, read_str(RNG_SYSFS "/rng_current", self->prev, sizeof(self->prev)));
	ASSERT_EQ(0, write_str(RNG_SYSFS "/rng_current", self->name));
	ASSERT_EQ(0, read_str(RNG_SYSFS "/rng_current", cur, sizeof(cur)));
	ASSERT_STREQ(self->name, cur);

	self->data = malloc(DATA_LEN);
	ASSERT_NE(NULL, self->data);
}

FIXTURE_TEARDOWN(rng)
{
	free(self->data);
	if (self->prev[0] && strcmp(self->prev, "none") && strcmp(self->prev, self->name))
		write_str(RNG_SYSFS "/rng_current", self->prev);
}

/* Small reads, and two reads never give the same bytes. */
TEST_F(rng, small_reads)
{
	unsigned char a[64], b[64];
	int fd, i;

	fd = open(RNG_DEV, O_RDONLY);
	ASSERT_LE(0, fd);
	for (i = 1; i <= 64; i++)
		ASSERT_EQ(i, read(fd, a, i));
	ASSERT_EQ(0, read_full(fd, a, sizeof(a)));
	ASSERT_EQ(0, read_full(fd, b, sizeof(b)));
	EXPECT_NE(0, memcmp(a, b, sizeof(a)));
	close(fd);
}

TEST_F_TIMEOUT(rng, statistics, 1800)
{
	unsigned long long count[256] = { 0 }, ones = 0, same = 0;
	double chi2 = 0, expect, z, nbits;
	char cmd[512], line[256], tmpl[] = "/tmp/hsmrng.XXXXXX";
	long succ = -1, fail = -1;
	unsigned char *sorted;
	size_t i, n = DATA_LEN;
	int fd, dups = 0;
	FILE *p;

	fd = open(RNG_DEV, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, read_full(fd, self->data, n));
	close(fd);

	/* rngtest: FIPS 140-2 on NR_BLOCKS blocks. */
	fd = mkstemp(tmpl);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)n, write(fd, self->data, n));
	close(fd);
	snprintf(cmd, sizeof(cmd), "rngtest -c %d <%s 2>&1", NR_BLOCKS, tmpl);
	p = popen(cmd, "r");
	ASSERT_NE(NULL, p);
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "FIPS") || strstr(line, "rngtest: bits"))
			TH_LOG("%s", strtok(line, "\n"));
		if (sscanf(line, "rngtest: FIPS 140-2 successes: %ld", &succ) == 1)
			continue;
		if (sscanf(line, "rngtest: FIPS 140-2 failures: %ld", &fail) == 1)
			continue;
	}
	pclose(p);
	unlink(tmpl);
	ASSERT_NE(-1, succ) TH_LOG("rngtest (rng-tools5) did not run");
	ASSERT_NE(-1, fail);
	EXPECT_EQ(NR_BLOCKS, succ + fail);
	EXPECT_LE(fail, MAX_FIPS_FAIL);

	/* Bytewise chi-square, 255 degrees of freedom. */
	for (i = 0; i < n; i++) {
		count[self->data[i]]++;
		ones += __builtin_popcount(self->data[i]);
		if (i && self->data[i] == self->data[i - 1])
			same++;
	}
	expect = (double)n / 256;
	for (i = 0; i < 256; i++)
		chi2 += (count[i] - expect) * (count[i] - expect) / expect;
	TH_LOG("chi-square %.1f (255 df)", chi2);
	/*
	 * The window is wide enough that a good source never trips it by
	 * chance: with 255 degrees of freedom P(chi2 < 135) = 5.1e-11 and
	 * P(chi2 > 430) = 4.3e-11 (regularised incomplete gamma).  A biased
	 * or stuck source lands far outside: one byte value missing entirely
	 * already adds ~10^4.
	 */
	EXPECT_GT(chi2, 135.0);
	EXPECT_LT(chi2, 430.0);

	/*
	 * Monobit over all bits.  Both z tests allow |z| < 6.5, which a good
	 * source exceeds with P = 8.0e-11 each (normal, two-sided), so the
	 * three statistical bounds together fail a good RNG ~2.5e-10 of runs.
	 * With 2e7 bits, a 0.1 % bias in the ones already gives z ~ 9.
	 */
	nbits = (double)n * 8;
	z = ((double)ones - nbits / 2) / sqrt(nbits / 4);
	TH_LOG("monobit z = %.2f", z);
	EXPECT_LT(fabs(z), 6.5);

	/* Equal neighbours: binomial(n - 1, 1/256). */
	z = ((double)same - (n - 1) / 256.0) / sqrt((n - 1) / 256.0 * 255 / 256);
	TH_LOG("lag-1 repeat z = %.2f", z);
	EXPECT_LT(fabs(z), 6.5);

	/* No 16-byte block twice (2^-128 odds per pair for real randomness). */
	sorted = malloc(n / CHUNK * CHUNK);
	ASSERT_NE(NULL, sorted);
	memcpy(sorted, self->data, n / CHUNK * CHUNK);
	qsort(sorted, n / CHUNK, CHUNK, cmp_chunk);
	for (i = 1; i < n / CHUNK; i++)
		if (!memcmp(sorted + (i - 1) * CHUNK, sorted + i * CHUNK, CHUNK))
			dups++;
	free(sorted);
	EXPECT_EQ(0, dups) TH_LOG("%d repeated 16-byte blocks", dups);
}

TEST_HARNESS_MAIN
