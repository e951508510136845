// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * IPsec ESP on the hsmcard (run in the test guest).
 *
 * Two network namespaces joined by a veth pair talk through an ESP tunnel
 * with manual keys (ip xfrm state/policy): rfc4106(gcm(aes)), and
 * authenc(hmac(sha256),cbc(aes)) once the card registers it.  A ping and a
 * 4 MiB TCP transfer (socat) must succeed with the same SHA-256 on both
 * ends, and the driver's debugfs counters must show that the card
 * encrypted and decrypted at least the payload.
 *
 * xfrm takes only the algorithm names of its own table (the canonical
 * cra_name, e.g. "rfc4106(gcm(aes))"; net/xfrm/xfrm_algo.c), not driver
 * names, so an SA cannot be pinned to the card: the crypto API picks the
 * highest-priority implementation.  The tests check that this is the
 * card's and skip (with the reason) when another implementation outranks
 * it, e.g. AES-NI on a CPU that has it.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define NS_A		"hsmipa"
#define NS_B		"hsmipb"
#define ADDR_A		"10.77.0.1"
#define ADDR_B		"10.77.0.2"
#define XFER_MB		4
#define PORT		5001

/*
 * The highest-priority driver registered under algorithm name @name, as
 * the crypto API would choose it (only algorithms that passed their
 * self-tests count).  Returns 0 and the driver in @drv, or -1.
 */
static int best_driver(const char *name, char *drv, size_t len)
{
	char line[256], k[64], v[128], cur_name[128] = "", cur_drv[128] = "";
	int cur_prio = -1, best = -1;
	FILE *f = fopen("/proc/crypto", "r");

	if (!f)
		return -1;
	drv[0] = 0;
	for (;;) {
		bool end = !fgets(line, sizeof(line), f);

		if (end || line[0] == '\n') {
			if (cur_prio > best && !strcmp(cur_name, name)) {
				best = cur_prio;
				snprintf(drv, len, "%s", cur_drv);
			}
			cur_prio = -1;
			cur_name[0] = 0;
			cur_drv[0] = 0;
			if (end)
				break;
			continue;
		}
		if (sscanf(line, "%63s : %127s", k, v) != 2)
			continue;
		if (!strcmp(k, "name"))
			snprintf(cur_name, sizeof(cur_name), "%s", v);
		else if (!strcmp(k, "driver"))
			snprintf(cur_drv, sizeof(cur_drv), "%s", v);
		else if (!strcmp(k, "priority"))
			cur_prio = atoi(v);
	}
	fclose(f);
	return best < 0 ? -1 : 0;
}

static void hex(char *out, size_t len)
{
	unsigned char b[64];
	size_t i;

	RAND_bytes(b, len);
	for (i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

FIXTURE(ipsec) {
	char dir[64];
	bool netns;
};

FIXTURE_SETUP(ipsec)
{
	/*
	 * No module autoloading in the guest: ESP wraps the AEAD in seqiv or
	 * echainiv, whose IV salt comes from the default RNG (drbg) on 6.1;
	 * drbg's self-tests need sha512, a module on 6.1.
	 */
	sh("modprobe -q -a veth xfrm_user xfrm_algo esp4 authenc seqiv echainiv crypto_null sha512_generic jitterentropy_rng drbg 2>/dev/null");
	if (sh("command -v ip socat sha256sum busybox >/dev/null"))
		SKIP(return, "ip, socat, sha256sum or busybox missing (selftests/install-deps.sh)");
	snprintf(self->dir, sizeof(self->dir), "/tmp/hsmip.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));

	sh("ip netns del " NS_A " 2>/dev/null; ip netns del " NS_B " 2>/dev/null");
	ASSERT_EQ(0, sh("ip netns add " NS_A " && ip netns add " NS_B));
	self->netns = true;
	ASSERT_EQ(0, sh("ip link add hsmva netns " NS_A " type veth peer name hsmvb netns " NS_B));
	ASSERT_EQ(0, sh("ip -n " NS_A " addr add " ADDR_A "/24 dev hsmva && "
			"ip -n " NS_B " addr add " ADDR_B "/24 dev hsmvb && "
			"ip -n " NS_A " link set hsmva up && ip -n " NS_A " link set lo up && "
			"ip -n " NS_B " link set hsmvb up && ip -n " NS_B " link set lo up"));
}

FIXTURE_TEARDOWN(ipsec)
{
	if (self->netns)
		sh("ip netns del " NS_A "; ip netns del " NS_B);
	if (self->dir[0] == '/')
		sh("rm -rf %s", self->dir);
}

/*
 * Install a tunnel-mode ESP SA pair and policies in both namespaces; @alg
 * is the algorithm part of "ip xfrm state add" with %s for the key (each
 * direction gets its own random key of @keylen bytes).
 */
static int setup_esp(const char *alg_fmt, const char *alg_fmt2,
		     size_t keylen, size_t keylen2)
{
	char k1[160], k2[160], a1[64 + 1], a2[64 + 1], algs[2][400];
	static const char * const ns[] = { NS_A, NS_B };
	int i, ret = 0;

	hex(k1, keylen);
	hex(k2, keylen);
	hex(a1, keylen2 ? keylen2 : 1);
	hex(a2, keylen2 ? keylen2 : 1);
	if (alg_fmt2) {
		snprintf(algs[0], sizeof(algs[0]), alg_fmt, k1, a1);
		snprintf(algs[1], sizeof(algs[1]), alg_fmt, k2, a2);
	} else {
		snprintf(algs[0], sizeof(algs[0]), alg_fmt, k1);
		snprintf(algs[1], sizeof(algs[1]), alg_fmt, k2);
	}
	for (i = 0; i < 2 && !ret; i++) {
		const char *n = ns[i];

		ret = sh("ip -n %s xfrm state add src " ADDR_A " dst " ADDR_B
			 " proto esp spi 0x1001 reqid 1 mode tunnel %s && "
			 "ip -n %s xfrm state add src " ADDR_B " dst " ADDR_A
			 " proto esp spi 0x1002 reqid 2 mode tunnel %s",
			 n, algs[0], n, algs[1]);
		if (ret)
			break;
		ret = sh("ip -n %s xfrm policy add src %s/32 dst %s/32 dir out "
			 "tmpl src %s dst %s proto esp reqid %d mode tunnel && "
			 "ip -n %s xfrm policy add src %s/32 dst %s/32 dir in "
			 "tmpl src %s dst %s proto esp reqid %d mode tunnel",
			 n, i ? ADDR_B : ADDR_A, i ? ADDR_A : ADDR_B,
			 i ? ADDR_B : ADDR_A, i ? ADDR_A : ADDR_B, i ? 2 : 1,
			 n, i ? ADDR_A : ADDR_B, i ? ADDR_B : ADDR_A,
			 i ? ADDR_A : ADDR_B, i ? ADDR_B : ADDR_A, i ? 1 : 2);
	}
	return ret;
}

/* Ping and a TCP transfer through the tunnel; check the card's counters. */
static void esp_traffic(struct __test_metadata *_metadata,
			FIXTURE_DATA(ipsec) *self, const char *driver)
{
	char sum_in[128], sum_out[128], line[256];
	struct alg_stats before, after;
	long long payload = XFER_MB << 20, requests, bytes;
	int ret;

	ASSERT_EQ(0, read_stats(driver, &before));
	ASSERT_EQ(0, sh("ip netns exec " NS_A " busybox ping -q -c 3 -W 5 " ADDR_B " >/dev/null"));

	ASSERT_EQ(0, sh("head -c %lld /dev/urandom >%s/in", payload, self->dir));
	ASSERT_EQ(0, sh("ip netns exec " NS_B " timeout 300 socat -u TCP-LISTEN:%d,reuseaddr OPEN:%s/out,creat,trunc & "
			"ip netns exec " NS_A " timeout 300 socat -u OPEN:%s/in TCP:" ADDR_B ":%d,retry=60,interval=0.5; "
			"rc=$?; wait; exit $rc",
			PORT, self->dir, self->dir, PORT));
	ASSERT_EQ(0, sh_line(sum_in, sizeof(sum_in), "sha256sum <%s/in", self->dir));
	ASSERT_EQ(0, sh_line(sum_out, sizeof(sum_out), "sha256sum <%s/out", self->dir));
	EXPECT_EQ(0, strcmp(sum_in, sum_out));
	ASSERT_EQ(0, read_stats(driver, &after));

	/* The SAs carried the traffic ... */
	ret = sh_line(line, sizeof(line),
		      "ip -n " NS_B " -s xfrm state get src " ADDR_A " dst " ADDR_B
		      " proto esp spi 0x1001 | sed -n 's/^[[:space:]]*\\([0-9][0-9]*\\)(bytes).*/\\1/p'");
	ASSERT_EQ(0, ret);
	EXPECT_LE(payload, atoll(line)) TH_LOG("SA bytes '%s'", line);
	/* ... and the card encrypted it (A) and decrypted it (B). */
	requests = after.requests - before.requests;
	bytes = after.bytes - before.bytes;
	TH_LOG("%s: %lld requests, %lld bytes", driver, requests, bytes);
	EXPECT_LE(2 * payload / 1500, requests);
	EXPECT_LE(2 * payload, bytes);
}

TEST_F_TIMEOUT(ipsec, rfc4106_gcm_aes, 600)
{
	char drv[128];

	if (!proc_crypto_has("rfc4106-gcm-aes-hsmcard"))
		SKIP(return, "rfc4106-gcm-aes-hsmcard is not registered");
	ASSERT_EQ(0, best_driver("rfc4106(gcm(aes))", drv, sizeof(drv)));
	if (strcmp(drv, "rfc4106-gcm-aes-hsmcard"))
		SKIP(return, "xfrm cannot pin a driver and %s outranks the card",
		     drv);
	/* 20-byte key: AES-128 key and 4-byte salt; 128-bit ICV. */
	ASSERT_EQ(0, setup_esp("aead 'rfc4106(gcm(aes))' 0x%s 128", NULL, 20, 0));
	esp_traffic(_metadata, self, "rfc4106-gcm-aes-hsmcard");
}

TEST_F_TIMEOUT(ipsec, rfc4106_driver_name_refused, 300)
{
	/* xfrm knows algorithms only by its table's names. */
	EXPECT_NE(0, sh("ip -n " NS_A " xfrm state add src " ADDR_A " dst " ADDR_B
			" proto esp spi 0x1003 mode tunnel aead rfc4106-gcm-aes-hsmcard "
			"0x00112233445566778899aabbccddeeff00112233 128 2>/dev/null"));
}

TEST_F_TIMEOUT(ipsec, authenc_hmac_sha256_cbc_aes, 600)
{
	const char *card = "authenc-hmac-sha256-cbc-aes-hsmcard";
	char drv[128];

	if (!proc_crypto_has(card))
		SKIP(return, "%s is not registered", card);
	/* ESP asks for authenc(hmac(sha256),cbc(aes)) by name. */
	if (!best_driver("authenc(hmac(sha256),cbc(aes))", drv, sizeof(drv)) &&
	    strcmp(drv, card))
		SKIP(return, "xfrm cannot pin a driver and %s outranks the card",
		     drv);
	ASSERT_EQ(0, setup_esp("enc 'cbc(aes)' 0x%s auth-trunc 'hmac(sha256)' 0x%s 128",
			       "", 32, 32));
	esp_traffic(_metadata, self, card);
	/* The SA must not have instantiated a template that beat the card. */
	ASSERT_EQ(0, best_driver("authenc(hmac(sha256),cbc(aes))", drv,
				 sizeof(drv)));
	EXPECT_EQ(0, strcmp(drv, card)) TH_LOG("best driver %s", drv);
}

TEST_HARNESS_MAIN
