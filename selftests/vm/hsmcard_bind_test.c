// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard bind/unbind and module reload tests (run in the test guest).
 *
 * - unbind/bind the card through sysfs 20 times: /dev/hsmcardN, the driver's
 *   sysfs attributes and the hwrng go away and come back each time;
 * - repeated unbind/bind does not leak memory;
 * - unbind while a process holds /dev/hsmcardN open: the unbind completes,
 *   ioctl() then fails with ENODEV and close() still works;
 * - rmmod/insmod of hsmcard.ko ($HSMCARD_KO).
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hsmcard.h"
#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define PCI_DEVICES	"/sys/bus/pci/devices"
#define RNG_AVAILABLE	"/sys/class/misc/hw_random/rng_available"
#define MOD_NAME	"hsmcard"
#define NR_CYCLES	20
#define MAX_ENTRIES	128
#define WAIT_MS		10000

struct entries {
	int n;
	char name[MAX_ENTRIES][NAME_MAX + 1];
};

static bool is_bound(const char *bdf)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return !strcmp(strrchr(target, '/') + 1, "hsmcard");
}

/*
 * The card's character device: the misc device whose "device" link points
 * at our PCI function.  Returns 0 and the /dev path, or -ENOENT.
 */
static int find_cdev(const char *bdf, char *dev, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	int ret = -ENOENT;
	DIR *dir;
	ssize_t n;

	dir = opendir("/sys/class/misc");
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, "hsmcard", 7))
			continue;
		snprintf(path, sizeof(path), "/sys/class/misc/%s/device", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = '\0';
			if (strcmp(strrchr(target, '/') + 1, bdf))
				continue;
		}
		/* No device link (no parent): the only card is ours. */
		snprintf(dev, len, "/dev/%s", de->d_name);
		ret = 0;
		break;
	}
	closedir(dir);
	return ret;
}

static bool rng_listed(void)
{
	char buf[4096];

	if (read_str(RNG_AVAILABLE, buf, sizeof(buf)))
		return false;
	return strstr(buf, "hsmcard");
}

/* Top-level names in the PCI device's sysfs directory. */
static int list_entries(const char *bdf, struct entries *e)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir;

	e->n = 0;
	snprintf(path, sizeof(path), PCI_DEVICES "/%s", bdf);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)) && e->n < MAX_ENTRIES) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(e->name[e->n++], NAME_MAX + 1, "%s", de->d_name);
	}
	closedir(dir);
	return 0;
}

static bool has_entry(const struct entries *e, const char *name)
{
	int i;

	for (i = 0; i < e->n; i++)
		if (!strcmp(e->name[i], name))
			return true;
	return false;
}

static int bind_card(const char *bdf)
{
	return write_str(DRV_DIR "/bind", bdf);
}

static int unbind_card(const char *bdf)
{
	return write_str(DRV_DIR "/unbind", bdf);
}

/* Wait until /dev node @dev exists (@present) or is gone (!@present). */
static bool wait_node(const char *dev, bool present)
{
	long end = now_ms() + WAIT_MS;
	struct stat st;

	do {
		if ((stat(dev, &st) == 0) == present)
			return true;
		usleep(20000);
	} while (now_ms() < end);
	return false;
}

/* Wait until the card has a character device; store its path in @dev. */
static bool wait_cdev(const char *bdf, char *dev, size_t len)
{
	long end = now_ms() + WAIT_MS;

	do {
		if (!find_cdev(bdf, dev, len) && wait_node(dev, true))
			return true;
		usleep(20000);
	} while (now_ms() < end);
	return false;
}

/*
 * Pages the kernel has handed out and not taken back: allocations minus
 * frees, counted at the page allocator (slab pages, vmalloc, DMA buffers
 * and page tables alike), independent of per-CPU page caching.  Only
 * differences mean something: pages freed at boot make the value negative.
 * LONG_MIN if /proc/vmstat cannot be read.
 */
static long net_pages(void)
{
	char name[64];
	long alloc = 0, freed = 0;
	unsigned long long v;
	FILE *f;

	f = fopen("/proc/vmstat", "r");
	if (!f)
		return LONG_MIN;
	while (fscanf(f, "%63s %llu", name, &v) == 2) {
		if (!strncmp(name, "pgalloc_", 8))
			alloc += v;
		else if (!strcmp(name, "pgfree"))
			freed += v;
	}
	fclose(f);
	return alloc - freed;
}

static void settle(void)
{
	sync();
	/* Let RCU callbacks and deferred frees run. */
	usleep(500000);
}

static int load_module(const char *ko)
{
	int fd, ret;

	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static bool module_loaded(void)
{
	struct stat st;

	return stat("/sys/module/" MOD_NAME, &st) == 0;
}

FIXTURE(card) {
	char bdf[NAME_MAX + 1];
	char dev[PATH_MAX];
	struct entries bound;	/* sysfs entries while bound */
};

FIXTURE_SETUP(card)
{
	const char *ko = getenv("HSMCARD_KO");

	if (find_card(self->bdf, sizeof(self->bdf)))
		SKIP(return, "no hsmcard PCI device (1234:4853)");
	if (!module_loaded()) {
		ASSERT_NE(NULL, ko) TH_LOG("hsmcard not loaded and HSMCARD_KO unset");
		ASSERT_EQ(0, load_module(ko));
	}
	if (!is_bound(self->bdf))
		ASSERT_EQ(0, bind_card(self->bdf));
	ASSERT_TRUE(wait_cdev(self->bdf, self->dev, sizeof(self->dev)))
		TH_LOG("no character device for %s", self->bdf);
	ASSERT_EQ(0, list_entries(self->bdf, &self->bound));
}

FIXTURE_TEARDOWN(card)
{
	/* Leave the card bound for the tests that follow. */
	if (self->bdf[0] && module_loaded() && !is_bound(self->bdf))
		bind_card(self->bdf);
}

/* One unbind/bind cycle with all the checks. */
static void unbind_bind_cycle(struct __test_metadata *_metadata,
			      FIXTURE_DATA(card) *self, int i)
{
	struct entries e;
	int j;

	ASSERT_EQ(0, unbind_card(self->bdf)) TH_LOG("cycle %d: unbind", i);
	ASSERT_FALSE(is_bound(self->bdf));
	ASSERT_TRUE(wait_node(self->dev, false))
		TH_LOG("cycle %d: %s still present after unbind", i, self->dev);
	ASSERT_FALSE(rng_listed()) TH_LOG("cycle %d: hwrng still registered", i);
	ASSERT_EQ(0, list_entries(self->bdf, &e));
	ASSERT_LT(e.n, self->bound.n)
		TH_LOG("cycle %d: driver attributes remain after unbind", i);

	ASSERT_EQ(0, bind_card(self->bdf)) TH_LOG("cycle %d: bind", i);
	ASSERT_TRUE(is_bound(self->bdf));
	ASSERT_TRUE(wait_cdev(self->bdf, self->dev, sizeof(self->dev)))
		TH_LOG("cycle %d: no character device after bind", i);
	ASSERT_TRUE(rng_listed()) TH_LOG("cycle %d: hwrng not registered", i);
	ASSERT_EQ(0, list_entries(self->bdf, &e));
	for (j = 0; j < self->bound.n; j++)
		ASSERT_TRUE(has_entry(&e, self->bound.name[j]))
			TH_LOG("cycle %d: sysfs entry %s missing after bind",
			       i, self->bound.name[j]);
}

TEST_F_TIMEOUT(card, unbind_bind, 900)
{
	struct hsmcard_info info;
	int i, fd;

	ASSERT_TRUE(rng_listed()) TH_LOG("hwrng not registered while bound");
	for (i = 0; i < NR_CYCLES; i++)
		unbind_bind_cycle(_metadata, self, i);

	/* The card answers after the last cycle. */
	fd = open(self->dev, O_RDWR);
	ASSERT_LE(0, fd);
	memset(&info, 0, sizeof(info));
	EXPECT_EQ(0, ioctl(fd, HSMCARD_IOC_INFO, &info));
	EXPECT_EQ((__u32)HSMCARD_STATE_LIVE, info.state);
	close(fd);
}

/*
 * A real leak grows in every window; allocator noise does not.  Fail only
 * if two consecutive windows of NR_CYCLES both grow by more than the limit.
 */
#define LEAK_LIMIT_PAGES	64	/* per window: ~3 pages per cycle */

TEST_F_TIMEOUT(card, no_leak, 1200)
{
	long before, after, grow[2];
	int w, i;

	/* Warm up slab caches, workqueue pools, sysfs caches. */
	for (i = 0; i < 3; i++)
		unbind_bind_cycle(_metadata, self, i);

	for (w = 0; w < 2; w++) {
		settle();
		before = net_pages();
		ASSERT_NE(LONG_MIN, before);
		for (i = 0; i < NR_CYCLES; i++)
			unbind_bind_cycle(_metadata, self, i);
		settle();
		after = net_pages();
		ASSERT_NE(LONG_MIN, after);
		grow[w] = after - before;
		TH_LOG("window %d: %ld pages net over %d cycles", w, grow[w],
		       NR_CYCLES);
		if (grow[w] <= LEAK_LIMIT_PAGES)
			return;
	}
	EXPECT_LE(grow[1], LEAK_LIMIT_PAGES)
		TH_LOG("memory grows by ~%ld KiB per unbind/bind cycle",
		       (grow[0] + grow[1]) * (getpagesize() / 1024) /
		       (2 * NR_CYCLES));
}

TEST_F_TIMEOUT(card, unbind_while_open, 300)
{
	struct hsmcard_info info;
	int fd, status, i;
	pid_t pid;

	fd = open(self->dev, O_RDWR);
	ASSERT_LE(0, fd);
	memset(&info, 0, sizeof(info));
	ASSERT_EQ(0, ioctl(fd, HSMCARD_IOC_INFO, &info));

	/* Unbind from a child so that a blocking remove() shows as a failure. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(unbind_card(self->bdf) ? 1 : 0);
	for (i = 0; i < 300; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(100000);
	}
	if (i == 300) {
		/* remove() waits for the file to close: release it. */
		close(fd);
		waitpid(pid, &status, 0);
		ASSERT_TRUE(false) TH_LOG("unbind blocked while the device was open");
	}
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_FALSE(is_bound(self->bdf));

	memset(&info, 0, sizeof(info));
	errno = 0;
	EXPECT_EQ(-1, ioctl(fd, HSMCARD_IOC_INFO, &info));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0, close(fd));

	ASSERT_EQ(0, bind_card(self->bdf));
	ASSERT_TRUE(wait_cdev(self->bdf, self->dev, sizeof(self->dev)));
	fd = open(self->dev, O_RDWR);
	ASSERT_LE(0, fd);
	memset(&info, 0, sizeof(info));
	EXPECT_EQ(0, ioctl(fd, HSMCARD_IOC_INFO, &info));
	EXPECT_EQ((__u32)HSMCARD_STATE_LIVE, info.state);
	close(fd);
}

TEST_F_TIMEOUT(card, module_reload, 600)
{
	const char *ko = getenv("HSMCARD_KO");
	struct stat st;
	int i, ret, err;

	if (!ko || stat(ko, &st))
		SKIP(return, "HSMCARD_KO does not name the module file");

	for (i = 0; i < 3; i++) {
		ret = syscall(SYS_delete_module, MOD_NAME, O_NONBLOCK);
		err = ret ? errno : 0;
		ASSERT_EQ(0, err) TH_LOG("rmmod %d: %s", i, strerror(err));
		ASSERT_FALSE(module_loaded());
		ASSERT_FALSE(is_bound(self->bdf));
		ASSERT_TRUE(wait_node(self->dev, false));
		ASSERT_FALSE(rng_listed());

		ASSERT_EQ(0, load_module(ko)) TH_LOG("insmod %d", i);
		ASSERT_TRUE(is_bound(self->bdf));
		ASSERT_TRUE(wait_cdev(self->bdf, self->dev, sizeof(self->dev)));
		ASSERT_TRUE(rng_listed());
	}
}

TEST_HARNESS_MAIN
