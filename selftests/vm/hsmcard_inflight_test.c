// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard: controller reset and unbind while commands are in flight (run in
 * the test guest as root, driver bound).
 *
 * Worker threads keep the card busy with signatures and large digests
 * through /dev/hsmcard0 while the test
 *  - resets the controller through sysfs: every ioctl either succeeds or
 *    fails with ECANCELED (dropped by the reset), never anything else, and
 *    the card is live again afterwards;
 *  - resets it with a PCI function-level reset (the PCI core's "reset"),
 *    with the same expectations;
 *  - unbinds the driver: the unbind finishes promptly, the workers see only
 *    success, ECANCELED or ENODEV, ENODEV from then on, close() works, and
 *    the device binds again.
 * It also lowers the command timeout (to 1 ms) below the time an RSA-4096
 * signature takes: the request fails with ETIMEDOUT, the controller is reset,
 * and the card works again.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hsmcard.h"
#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define NR_WORKERS	4
#define BIG		(256 * 1024)

struct worker {
	pthread_t thread;
	int fd;
	uint64_t key;
	atomic_bool stop;
	bool joined;
	unsigned long ok, canceled, nodev, other;
	int last_other;
	bool nodev_then_ok;	/* success after ENODEV: must never happen */
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	static uint8_t big[BIG];
	uint8_t sig[128], dgst[64];
	bool seen_nodev = false;
	unsigned int i = 0;

	while (!atomic_load(&w->stop)) {
		struct hsmcard_op op = { 0 };
		int ret;

		if (i++ % 2) {
			op.handle = w->key;
			op.mech = HSMCARD_MECH_ECDSA;
			op.mparam = HSMCARD_MECH_SHA256;
			op.in = (uintptr_t)big;
			op.in_len = 64;
			op.out = (uintptr_t)sig;
			op.out_len = sizeof(sig);
			ret = ioctl(w->fd, HSMCARD_IOC_SIGN, &op);
		} else {
			op.mech = HSMCARD_MECH_SHA512;
			op.in = (uintptr_t)big;
			op.in_len = BIG;
			op.out = (uintptr_t)dgst;
			op.out_len = sizeof(dgst);
			ret = ioctl(w->fd, HSMCARD_IOC_DIGEST, &op);
		}
		if (!ret) {
			w->ok++;
			if (seen_nodev)
				w->nodev_then_ok = true;
		} else if (errno == ECANCELED) {
			w->canceled++;
		} else if (errno == ENODEV) {
			w->nodev++;
			seen_nodev = true;
		} else {
			w->other++;
			w->last_other = errno;
		}
	}
	return NULL;
}

/* A count a running worker may be updating. */
static unsigned long peek(const unsigned long *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static unsigned long total_ok(const struct worker *w)
{
	unsigned long sum = 0;
	int i;

	for (i = 0; i < NR_WORKERS; i++)
		sum += peek(&w[i].ok);
	return sum;
}

/* Workers that have not seen ENODEV yet. */
static int without_nodev(const struct worker *w)
{
	int i, n = 0;

	for (i = 0; i < NR_WORKERS; i++)
		n += !peek(&w[i].nodev);
	return n;
}

static int wait_for_path(const char *path, bool present, long ms)
{
	long end = now_ms() + ms;

	while (now_ms() < end) {
		if ((access(path, F_OK) == 0) == present)
			return 0;
		usleep(20000);
	}
	return -1;
}

/*
 * The kernel tests the card's crypto algorithms when they are registered
 * (asynchronously on 6.12): wait for that before shortening the timeout,
 * so that a self-test is never the command that times out.
 */
static bool selftests_pending(void)
{
	char line[256], driver[128] = "";
	bool pending = false;
	FILE *f = fopen("/proc/crypto", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "driver : %127s", driver) == 1)
			continue;
		if (strstr(driver, "hsmcard") && strstr(line, "selftest") &&
		    strstr(line, "unknown"))
			pending = true;
	}
	fclose(f);
	return pending;
}

FIXTURE(knob) {
	int fd;
	char old[32];
};

FIXTURE_SETUP(knob)
{
	self->fd = open(DEV_PATH, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	ASSERT_EQ(0, read_str(TIMEOUT_PARAM, self->old, sizeof(self->old)));
}

FIXTURE_TEARDOWN(knob)
{
	if (self->fd < 0)
		return;
	write_str(TIMEOUT_PARAM, self->old);
	close(self->fd);
}

/* Background RSA-4096 signer: keeps the card's workers busy. */
struct busy_signer {
	pthread_t tid;
	uint64_t handle;
	atomic_bool *stop;
};

static void *busy_sign(void *arg)
{
	struct busy_signer *b = arg;
	uint8_t msg[64] = { 1 }, sig[512];
	int fd = open(DEV_PATH, O_RDWR);

	if (fd < 0)
		return NULL;
	while (!atomic_load(b->stop)) {
		struct hsmcard_op op = {
			.handle = b->handle, .mech = HSMCARD_MECH_RSA_PKCS1,
			.mparam = HSMCARD_MECH_SHA256,
			.in = (uintptr_t)msg, .in_len = sizeof(msg),
			.out = (uintptr_t)sig, .out_len = sizeof(sig),
		};

		/* timeouts and cancellations are expected here */
		ioctl(fd, HSMCARD_IOC_SIGN, &op);
	}
	close(fd);
	return NULL;
}

TEST_F_TIMEOUT(knob, timeout_recovery, 240)
{
	struct hsmcard_key_attrs a = { .type = HSMCARD_KEY_RSA, .bits = 4096 };
	char before[32], after[32], state[32] = "";
	struct hsmcard_key_handle kh = { 0 };
	struct hsmcard_info info = { 0 };
	uint8_t msg[64] = { 0 }, sig[512];
	enum { NR_BUSY = 3 };
	struct busy_signer busy[NR_BUSY];
	atomic_bool stop = false;
	bool timed_out = false;
	int fd = self->fd, i, j, other = 0;
	long end;

	end = now_ms() + 10000;
	while (selftests_pending() && now_ms() < end)
		usleep(100000);
	ASSERT_EQ(0, ioctl(fd, HSMCARD_IOC_KEY_GENERATE, &a));
	ASSERT_EQ(0, read_str(SYSFS_DEV "/resets", before, sizeof(before)));

	/*
	 * RSA-4096 signatures run on the card's I/O workers and take a few
	 * milliseconds each, and with background signers keeping every
	 * worker busy a signature also waits for others: more than the one
	 * jiffy of timeout, however fast the host.
	 */
	for (i = 0; i < NR_BUSY; i++) {
		busy[i].handle = a.handle;
		busy[i].stop = &stop;
		ASSERT_EQ(0, pthread_create(&busy[i].tid, NULL, busy_sign,
					    &busy[i]));
	}
	ASSERT_EQ(0, write_str(TIMEOUT_PARAM, "1"));
	for (i = 0; i < 100 && !timed_out; i++) {
		struct hsmcard_op op = {
			.handle = a.handle, .mech = HSMCARD_MECH_RSA_PKCS1,
			.mparam = HSMCARD_MECH_SHA256,
			.in = (uintptr_t)msg, .in_len = sizeof(msg),
			.out = (uintptr_t)sig, .out_len = sizeof(sig),
		};

		/* ECANCELED: dropped by the reset another timeout caused */
		if (!ioctl(fd, HSMCARD_IOC_SIGN, &op))
			continue;
		if (errno == ETIMEDOUT)
			timed_out = true;
		else if (errno != ECANCELED)
			other = errno;
	}
	/* restore before asserting anything */
	ASSERT_EQ(0, write_str(TIMEOUT_PARAM, self->old));
	atomic_store(&stop, true);
	for (j = 0; j < NR_BUSY; j++)
		pthread_join(busy[j].tid, NULL);
	TH_LOG("%d signatures until a timeout", i);
	ASSERT_EQ(0, other);
	ASSERT_TRUE(timed_out);

	/* the reset brings the card back */
	end = now_ms() + 10000;
	while (now_ms() < end) {
		ASSERT_EQ(0, read_str(SYSFS_DEV "/state", state, sizeof(state)));
		if (!strcmp(state, "live"))
			break;
		usleep(50000);
	}
	ASSERT_STREQ("live", state);
	ASSERT_EQ(0, read_str(SYSFS_DEV "/resets", after, sizeof(after)));
	ASSERT_LT(atoi(before), atoi(after));
	ASSERT_EQ(0, ioctl(fd, HSMCARD_IOC_INFO, &info));
	ASSERT_EQ(HSMCARD_STATE_LIVE, (int)info.state);
	kh.handle = a.handle;
	ASSERT_EQ(0, ioctl(fd, HSMCARD_IOC_KEY_DESTROY, &kh));
}

FIXTURE(busy) {
	int fd;
	char bdf[64];
	struct worker w[NR_WORKERS];
	uint64_t key;
};

FIXTURE_SETUP(busy)
{
	struct hsmcard_key_attrs a = { .type = HSMCARD_KEY_EC_P256 };
	char link[PATH_MAX];
	ssize_t n;
	int i;

	self->fd = open(DEV_PATH, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s", DEV_PATH, strerror(errno));
	n = readlink(SYSFS_DEV, link, sizeof(link) - 1);
	ASSERT_LT(0, n);
	link[n] = 0;
	snprintf(self->bdf, sizeof(self->bdf), "%s", basename(link));
	ASSERT_EQ(0, ioctl(self->fd, HSMCARD_IOC_KEY_GENERATE, &a));
	self->key = a.handle;
	memset(self->w, 0, sizeof(self->w));
	for (i = 0; i < NR_WORKERS; i++) {
		self->w[i].fd = open(DEV_PATH, O_RDWR);
		ASSERT_LE(0, self->w[i].fd);
		self->w[i].key = self->key;
		ASSERT_EQ(0, pthread_create(&self->w[i].thread, NULL,
					    worker_fn, &self->w[i]));
	}
	usleep(300000);
}

FIXTURE_TEARDOWN(busy)
{
	struct hsmcard_key_handle kh = { .handle = self->key };
	int i;

	if (self->fd < 0)
		return;
	for (i = 0; i < NR_WORKERS; i++) {
		atomic_store(&self->w[i].stop, true);
		if (!self->w[i].joined)
			pthread_join(self->w[i].thread, NULL);
		close(self->w[i].fd);
	}
	ioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh);
	close(self->fd);
}

static void stop_workers(struct __test_metadata *_metadata,
			 struct worker *w)
{
	int i;

	for (i = 0; i < NR_WORKERS; i++) {
		atomic_store(&w[i].stop, true);
		pthread_join(w[i].thread, NULL);
		w[i].joined = true;
		TH_LOG("worker %d: %lu ok, %lu canceled, %lu nodev, %lu other (last %d)",
		       i, w[i].ok, w[i].canceled, w[i].nodev, w[i].other,
		       w[i].last_other);
		EXPECT_EQ(0UL, w[i].other);
		EXPECT_FALSE(w[i].nodev_then_ok);
	}
}

/* Reset through @path three times under load; the card must come back. */
static void reset_under_load(struct __test_metadata *_metadata,
			     FIXTURE_DATA(busy) *self, const char *path)
{
	char before[32], after[32], state[32];
	struct hsmcard_info info = { 0 };
	unsigned long ok_before, ok_after;
	long end;
	int i, r;

	ASSERT_EQ(0, read_str(SYSFS_DEV "/resets", before, sizeof(before)));
	for (r = 0; r < 3; r++) {
		ASSERT_EQ(0, write_str(path, "1"));
		usleep(200000);
	}
	ASSERT_EQ(0, read_str(SYSFS_DEV "/resets", after, sizeof(after)));
	ASSERT_EQ(atoi(before) + 3, atoi(after));
	ASSERT_EQ(0, read_str(SYSFS_DEV "/state", state, sizeof(state)));
	ASSERT_STREQ("live", state);

	/*
	 * The workers keep succeeding after the resets.  A loaded host may
	 * not schedule them for a while: wait for a success with a deadline.
	 */
	ok_before = total_ok(self->w);
	end = now_ms() + 20000;
	do {
		ok_after = total_ok(self->w);
		if (ok_after > ok_before)
			break;
		usleep(20000);
	} while (now_ms() < end);
	stop_workers(_metadata, self->w);
	ASSERT_LT(ok_before, ok_after);
	for (i = 0; i < NR_WORKERS; i++)
		ASSERT_EQ(0UL, self->w[i].nodev);
	ASSERT_EQ(0, ioctl(self->fd, HSMCARD_IOC_INFO, &info));
	ASSERT_EQ(HSMCARD_STATE_LIVE, (int)info.state);
}

TEST_F_TIMEOUT(busy, reset_under_load, 120)
{
	reset_under_load(_metadata, self, SYSFS_DEV "/reset_controller");
}

/* A function-level reset through the PCI core: reset_prepare/reset_done. */
TEST_F_TIMEOUT(busy, flr_under_load, 120)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/reset",
		 self->bdf);
	if (access(path, W_OK))
		SKIP(return, "%s: %s", path, strerror(errno));
	reset_under_load(_metadata, self, path);
}

TEST_F_TIMEOUT(busy, unbind_under_load, 120)
{
	struct hsmcard_key_handle kh = { 0 };
	struct hsmcard_info info = { 0 };
	long t0, took;
	int fd, i;

	t0 = now_ms();
	ASSERT_EQ(0, write_str(DRV_DIR "/unbind", self->bdf));
	took = now_ms() - t0;
	TH_LOG("unbind with %d busy workers took %ld ms", NR_WORKERS, took);
	ASSERT_GT(20000, took);
	ASSERT_EQ(0, wait_for_path(DEV_PATH, false, 5000));

	/*
	 * Every open file now fails cleanly.  Each worker must meet ENODEV:
	 * wait for all of them with a deadline, as a loaded host may not
	 * run a worker for a while.
	 */
	ASSERT_EQ(-1, ioctl(self->fd, HSMCARD_IOC_INFO, &info));
	ASSERT_EQ(ENODEV, errno);
	t0 = now_ms();
	while (without_nodev(self->w) && now_ms() - t0 < 20000)
		usleep(20000);
	stop_workers(_metadata, self->w);
	for (i = 0; i < NR_WORKERS; i++) {
		ASSERT_LT(0UL, self->w[i].nodev);
		ASSERT_EQ(0, close(self->w[i].fd));
		self->w[i].fd = -1;
	}
	ASSERT_EQ(0, close(self->fd));
	self->fd = -1;

	/* and the card comes back, keys intact */
	ASSERT_EQ(0, write_str(DRV_DIR "/bind", self->bdf));
	ASSERT_EQ(0, wait_for_path(DEV_PATH, true, 10000));
	fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, HSMCARD_IOC_INFO, &info));
	ASSERT_EQ(HSMCARD_STATE_LIVE, (int)info.state);
	kh.handle = self->key;
	ASSERT_EQ(0, ioctl(fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	close(fd);
}

TEST_HARNESS_MAIN
