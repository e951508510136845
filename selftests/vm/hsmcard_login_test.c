// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard partitions, roles and PINs from user space (run in the test
 * guest).  Each test is an attack that must fail:
 * - a key of one partition cannot be used, listed, read or destroyed from
 *   a file logged into another partition (or not logged in), through the
 *   ioctls and through ring entries (which fail alone);
 * - an SO login uses no key; a file that is not logged in loses partition
 *   0 once partition 0 has a PIN;
 * - a login does not outlive its partition: deleted and re-created under
 *   the same number, it is a different partition;
 * - wrong PINs lock the User role, the right PIN then fails too, the lock
 *   survives a driver unbind/bind, and only an SO PIN reset lifts it; the
 *   audit log shows the refused logins and the lockout;
 * - bad arguments, and card administration without CAP_SYS_ADMIN;
 * - every refused PIN reaches a netlink listener of the "events" group as
 *   LOGIN_FAILED (partition, role, tries left or locked, the caller's pid
 *   and uid), and `hsmctl monitor` prints it; audit records the host does
 *   not read raise exactly one AUDIT_HIGH_WATER at the card's mark, and
 *   reading the log to its end re-arms it.
 *
 * The card needs an admin PIN for partitions, and the only way to set the
 * first one is CARD_INIT, which destroys every key.  The fixture does it
 * only on a card that has no admin PIN yet (once per boot: a fresh card);
 * later it logs in with the same PIN.  Every test leaves partition 0
 * uninitialized and deletes the partitions it made.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"
#include "hsmcard_util.h"

#define ADMIN_PIN	"login-test-admin-pin"
#define SO_PIN		"so-pin-4711"
#define USER_PIN	"user-pin-0815"
#define USER_PIN2	"user-pin-2nd"
#define MAX_FAIL	3
#define REC		HSMCARD_AUDIT_REC_SIZE
#define PAGE		4096UL

static void set_pin_buf(uint8_t *dst, uint16_t *len, const char *pin)
{
	memset(dst, 0, HSMCARD_PIN_MAX);
	*len = strlen(pin);
	memcpy(dst, pin, *len);
}

static int login(int fd, uint32_t part, uint16_t role, const char *pin,
		 uint32_t *tries_left)
{
	struct hsmcard_login lg;
	int ret;

	memset(&lg, 0, sizeof(lg));
	lg.partition = part;
	lg.role = role;
	set_pin_buf(lg.pin, &lg.pin_len, pin);
	ret = xioctl(fd, HSMCARD_IOC_LOGIN, &lg);
	if (tries_left)
		*tries_left = lg.tries_left;
	return ret;
}

static int set_pin(int fd, uint32_t part, uint16_t role, uint16_t auth_role,
		   const char *pin, const char *new_pin)
{
	struct hsmcard_set_pin sp;

	memset(&sp, 0, sizeof(sp));
	sp.partition = part;
	sp.role = role;
	sp.auth_role = auth_role;
	set_pin_buf(sp.pin, &sp.pin_len, pin);
	set_pin_buf(sp.new_pin, &sp.new_pin_len, new_pin);
	return xioctl(fd, HSMCARD_IOC_SET_PIN, &sp);
}

static int part_info(int fd, uint32_t part, struct hsmcard_part_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	pi->partition = part;
	return xioctl(fd, HSMCARD_IOC_PART_INFO, pi);
}

static int part_create(int fd, const char *label, uint16_t max_fail,
		       uint32_t *part)
{
	struct hsmcard_part_admin pa;
	int ret;

	memset(&pa, 0, sizeof(pa));
	pa.partition = HSMCARD_PART_ANY;
	pa.max_fail = max_fail;
	set_pin_buf(pa.pin, &pa.pin_len, ADMIN_PIN);
	set_pin_buf(pa.new_pin, &pa.new_pin_len, SO_PIN);
	snprintf(pa.label, sizeof(pa.label), "%s", label);
	ret = xioctl(fd, HSMCARD_IOC_PART_CREATE, &pa);
	if (!ret)
		*part = pa.partition;
	return ret;
}

static int part_delete(int fd, uint32_t part)
{
	struct hsmcard_part_admin pa;

	memset(&pa, 0, sizeof(pa));
	pa.partition = part;
	if (!part)
		pa.flags = HSMCARD_PART_F_RESET;
	set_pin_buf(pa.pin, &pa.pin_len, ADMIN_PIN);
	return xioctl(fd, HSMCARD_IOC_PART_DELETE, &pa);
}

/*
 * Make sure the card has our admin PIN.  A card without one gets it from
 * CARD_INIT (a fresh card: nothing of value is destroyed).  Returns 0, or
 * -EKEYREJECTED if somebody else's admin PIN is set.
 */
static int ensure_admin(int fd)
{
	struct hsmcard_part_info pi;
	struct hsmcard_part_admin pa;
	int ret;

	ret = part_info(fd, 0, &pi);
	if (ret)
		return ret;
	if (pi.card_flags & HSMCARD_CARD_S_ADMIN_SET) {
		ret = login(fd, 0, HSMCARD_ROLE_ADMIN, ADMIN_PIN, NULL);
		xioctl(fd, HSMCARD_IOC_LOGOUT, NULL);
		return ret ? -EKEYREJECTED : 0;
	}
	memset(&pa, 0, sizeof(pa));
	set_pin_buf(pa.new_pin, &pa.new_pin_len, ADMIN_PIN);
	return xioctl(fd, HSMCARD_IOC_CARD_INIT, &pa);
}

/* Sign @msg with an EC key through the ioctl; returns 0 or -errno. */
static int sign(int fd, uint64_t h, const uint8_t *msg, uint32_t len,
		uint8_t *sig, uint32_t *sig_len)
{
	return run_op(fd, HSMCARD_IOC_SIGN, h, HSMCARD_MECH_ECDSA,
		      HSMCARD_MECH_SHA256, 0, msg, len, sig, sig_len);
}

static bool key_listed(int fd, uint64_t h)
{
	uint64_t hs[256];
	struct hsmcard_key_list kl;
	uint32_t i;

	memset(&kl, 0, sizeof(kl));
	kl.handles = (uintptr_t)hs;
	kl.max = 256;
	if (xioctl(fd, HSMCARD_IOC_KEY_LIST, &kl))
		return false;
	for (i = 0; i < kl.count; i++)
		if (hs[i] == h)
			return true;
	return false;
}

/* ---- a small ring ---- */

static struct hsmcard_ring_sqe sign_job(uint64_t h, uint32_t in_off,
					uint32_t in_len, uint32_t out_off)
{
	struct hsmcard_ring_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = HSMCARD_RING_OP_SIGN;
	s.mech = HSMCARD_MECH_ECDSA;
	s.mparam = HSMCARD_MECH_SHA256;
	s.handle = h;
	s.in_off = in_off;
	s.in_len = in_len;
	s.out_off = out_off;
	s.out_len = 256;
	return s;
}

/* ---- tests without partitions ---- */

TEST(bad_arguments)
{
	struct hsmcard_key_attrs a;
	struct hsmcard_part_info pi;
	struct hsmcard_login lg;
	struct hsmcard_set_pin sp;
	int fd = open(DEV_PATH, O_RDWR);

	ASSERT_LE(0, fd);
	/* partition 0 and 1 always exist; 1 is the kernel's */
	ASSERT_EQ(0, part_info(fd, 0, &pi));
	EXPECT_TRUE(!!(pi.flags & HSMCARD_PART_S_EXISTS));
	EXPECT_FALSE(!!(pi.flags & HSMCARD_PART_S_INITIALIZED));
	ASSERT_EQ(0, part_info(fd, 1, &pi));
	EXPECT_TRUE(!!(pi.flags & HSMCARD_PART_S_KERNEL));
	EXPECT_EQ(-ENOENT, part_info(fd, 16, &pi));
	memset(&pi, 0, sizeof(pi));
	pi.rsvd[3] = 1;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_PART_INFO, &pi));
	EXPECT_EQ(-EFAULT, xioctl(fd, HSMCARD_IOC_PART_INFO, (void *)8));

	/* LOGIN: lengths, padding, reserved fields, roles, partitions */
	memset(&lg, 0, sizeof(lg));
	lg.role = HSMCARD_ROLE_USER;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));	/* len 0 */
	set_pin_buf(lg.pin, &lg.pin_len, "abc");
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));	/* len 3 */
	set_pin_buf(lg.pin, &lg.pin_len, "abcd");
	lg.pin_len = 65;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.pin_len = 4;
	lg.pin[10] = 'x';	/* byte past the PIN */
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.pin[10] = 0;
	lg.rsvd[2] = 1;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.rsvd[2] = 0;
	lg.flags = 1;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.flags = 0;
	lg.role = 7;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.role = HSMCARD_ROLE_NONE;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.role = HSMCARD_ROLE_USER;
	lg.partition = HSMCARD_PARTITION_KERNEL;
	EXPECT_EQ(-EPERM, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.partition = 15;	/* never created by this test */
	EXPECT_EQ(-ENOENT, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	lg.partition = 1000;
	EXPECT_EQ(-ENOENT, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	/* partition 0 has no User PIN on this card */
	lg.partition = 0;
	EXPECT_EQ(-ENODATA, xioctl(fd, HSMCARD_IOC_LOGIN, &lg));
	EXPECT_EQ(-EFAULT, xioctl(fd, HSMCARD_IOC_LOGIN, (void *)8));
	EXPECT_EQ(-EINVAL, (int)(ioctl(fd, HSMCARD_IOC_LOGOUT, 1) ? -errno : 0));
	EXPECT_EQ(0, xioctl(fd, HSMCARD_IOC_LOGOUT, NULL));

	/* SET_PIN */
	memset(&sp, 0, sizeof(sp));
	sp.role = HSMCARD_ROLE_USER;
	set_pin_buf(sp.pin, &sp.pin_len, "abcd");
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_SET_PIN, &sp)); /* no new */
	set_pin_buf(sp.new_pin, &sp.new_pin_len, "efgh");
	sp.partition = HSMCARD_PARTITION_KERNEL;
	EXPECT_EQ(-EPERM, xioctl(fd, HSMCARD_IOC_SET_PIN, &sp));
	sp.partition = 0;
	sp.rsvd[0] = 1;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_SET_PIN, &sp));
	sp.rsvd[0] = 0;
	sp.new_pin_len = 65;
	EXPECT_EQ(-EINVAL, xioctl(fd, HSMCARD_IOC_SET_PIN, &sp));

	/* still usable without login: partition 0 is uninitialized */
	memset(&a, 0, sizeof(a));
	EXPECT_EQ(0, gen_key(fd, HSMCARD_KEY_AES, 128, 0, NULL, &a));
	destroy_key(fd, a.handle);
	close(fd);
}

/* Card administration needs CAP_SYS_ADMIN before any PIN is looked at. */
TEST(admin_needs_cap_sys_admin)
{
	int fd = open(DEV_PATH, O_RDWR), status;
	pid_t pid;

	ASSERT_LE(0, fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct hsmcard_part_admin pa;
		struct hsmcard_part_info pi;
		int bad = 0;

		if (setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(100);
		memset(&pa, 0, sizeof(pa));
		pa.partition = HSMCARD_PART_ANY;
		set_pin_buf(pa.pin, &pa.pin_len, ADMIN_PIN);
		set_pin_buf(pa.new_pin, &pa.new_pin_len, SO_PIN);
		snprintf(pa.label, sizeof(pa.label), "nocap");
		if (xioctl(fd, HSMCARD_IOC_PART_CREATE, &pa) != -EPERM)
			bad |= 1;
		pa.partition = 2;
		if (xioctl(fd, HSMCARD_IOC_PART_DELETE, &pa) != -EPERM)
			bad |= 2;
		if (xioctl(fd, HSMCARD_IOC_CARD_INIT, &pa) != -EPERM)
			bad |= 4;
		/* PART_INFO needs no privilege */
		if (part_info(fd, 0, &pi))
			bad |= 8;
		_exit(bad);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(fd);
}

/* ---- one partition with SO and User PINs ---- */

FIXTURE(part) {
	int fd;		/* not logged in */
	uint32_t part;
};

FIXTURE_SETUP(part)
{
	char label[HSMCARD_LABEL_LEN];
	int ret;

	self->part = 0;
	self->fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, self->fd);
	ret = ensure_admin(self->fd);
	if (ret == -EKEYREJECTED)
		SKIP(return, "the card has another admin PIN");
	ASSERT_EQ(0, ret);
	snprintf(label, sizeof(label), "login-test-%d", getpid());
	ASSERT_EQ(0, part_create(self->fd, label, MAX_FAIL, &self->part));
	ASSERT_LE(2U, self->part);
	/* the SO gives the User a PIN */
	ASSERT_EQ(0, set_pin(self->fd, self->part, HSMCARD_ROLE_USER,
			     HSMCARD_ROLE_SO, SO_PIN, USER_PIN));
}

FIXTURE_TEARDOWN(part)
{
	if (self->fd < 0)
		self->fd = open(DEV_PATH, O_RDWR);
	if (self->part >= 2)
		EXPECT_EQ(0, part_delete(self->fd, self->part));
	close(self->fd);
}

/* A key of partition P is invisible to every other file. */
TEST_F(part, isolation)
{
	struct hsmcard_key_get_attrs ga;
	struct hsmcard_key_handle kh;
	struct hsmcard_key_attrs a, b;
	struct hsmcard_ring_cqe cqe[4];
	struct hsmcard_ring_sqe jobs[4];
	struct hsmcard_part_info pi;
	uint8_t msg[100], sig[256];
	uint32_t sig_len;
	struct tring r;
	EVP_PKEY *pk, *pkb;
	int u, so;

	fill_pattern(msg, sizeof(msg), 3);
	u = open(DEV_PATH, O_RDWR);
	so = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, u);
	ASSERT_LE(0, so);
	ASSERT_EQ(0, login(u, self->part, HSMCARD_ROLE_USER, USER_PIN, NULL));
	ASSERT_EQ(0, login(so, self->part, HSMCARD_ROLE_SO, SO_PIN, NULL));

	/* partition 0 in the attributes means "my partition" */
	ASSERT_EQ(0, gen_key(u, HSMCARD_KEY_EC_P256, 256,
			     HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, "p-key",
			     &a));
	EXPECT_EQ(self->part, a.partition);
	EXPECT_EQ(0, part_info(u, self->part, &pi));
	EXPECT_EQ(1U, pi.nr_keys);
	/* another partition or the kernel's in the attributes */
	memset(&b, 0, sizeof(b));
	b.type = HSMCARD_KEY_AES;
	b.bits = 128;
	b.partition = self->part == 2 ? 3 : 2;
	EXPECT_EQ(-EINVAL, xioctl(u, HSMCARD_IOC_KEY_GENERATE, &b));
	b.partition = HSMCARD_PARTITION_KERNEL;
	EXPECT_EQ(-EPERM, xioctl(u, HSMCARD_IOC_KEY_GENERATE, &b));

	/* the User signs; OpenSSL checks */
	pk = export_pub(u, a.handle);
	ASSERT_NE(NULL, pk);
	sig_len = sizeof(sig);
	ASSERT_EQ(0, sign(u, a.handle, msg, sizeof(msg), sig, &sig_len));
	EXPECT_EQ(1, ossl_verify(pk, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), sig, sig_len));
	EXPECT_TRUE(key_listed(u, a.handle));

	/* a file not logged in (partition 0) cannot name it */
	sig_len = sizeof(sig);
	EXPECT_EQ(-ENOKEY, sign(self->fd, a.handle, msg, sizeof(msg), sig,
				&sig_len));
	memset(&ga, 0, sizeof(ga));
	ga.handle = a.handle;
	EXPECT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_ATTRS, &ga));
	EXPECT_EQ(NULL, export_pub(self->fd, a.handle));
	memset(&kh, 0, sizeof(kh));
	kh.handle = a.handle;
	EXPECT_EQ(-ENOKEY, xioctl(self->fd, HSMCARD_IOC_KEY_DESTROY, &kh));
	EXPECT_FALSE(key_listed(self->fd, a.handle));

	/* and a partition 0 key is out of the User's reach */
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 256,
			     HSMCARD_USE_SIGN | HSMCARD_USE_VERIFY, NULL, &b));
	EXPECT_EQ(0U, b.partition);
	sig_len = sizeof(sig);
	EXPECT_EQ(-ENOKEY, sign(u, b.handle, msg, sizeof(msg), sig, &sig_len));

	/* the SO uses no key at all */
	sig_len = sizeof(sig);
	EXPECT_EQ(-EPERM, sign(so, a.handle, msg, sizeof(msg), sig, &sig_len));
	EXPECT_EQ(-EPERM, gen_key(so, HSMCARD_KEY_AES, 128, 0, NULL, NULL));
	EXPECT_FALSE(key_listed(so, a.handle));

	/*
	 * Rings: a ring of the partition-0 file refuses P's key in one
	 * entry and signs with its own key in the next.
	 */
	ASSERT_EQ(0, tring_open(self->fd, &r, 8, 16 * PAGE));
	memcpy(r.arena, msg, sizeof(msg));
	jobs[0] = sign_job(a.handle, 0, sizeof(msg), PAGE);
	jobs[1] = sign_job(b.handle, 0, sizeof(msg), 2 * PAGE);
	jobs[2] = sign_job(a.handle ^ 1, 0, sizeof(msg), 3 * PAGE);
	ASSERT_EQ(0, tring_run(&r, jobs, 3, cqe));
	EXPECT_EQ(-ENOKEY, cqe[0].status);
	EXPECT_EQ(0, cqe[1].status);
	EXPECT_EQ(-ENOKEY, cqe[2].status);
	pkb = export_pub(self->fd, b.handle);
	ASSERT_NE(NULL, pkb);
	EXPECT_EQ(1, ossl_verify(pkb, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), r.arena + 2 * PAGE, cqe[1].len));
	EVP_PKEY_free(pkb);
	tring_close(&r);

	/* the User's ring: its key works, partition 0's does not */
	ASSERT_EQ(0, tring_open(u, &r, 8, 16 * PAGE));
	memcpy(r.arena, msg, sizeof(msg));
	jobs[0] = sign_job(b.handle, 0, sizeof(msg), PAGE);
	jobs[1] = sign_job(a.handle, 0, sizeof(msg), 2 * PAGE);
	ASSERT_EQ(0, tring_run(&r, jobs, 2, cqe));
	EXPECT_EQ(-ENOKEY, cqe[0].status);
	EXPECT_EQ(0, cqe[1].status);
	EXPECT_EQ(1, ossl_verify(pk, EVP_sha256(), 0, 0, false, msg,
				 sizeof(msg), r.arena + 2 * PAGE, cqe[1].len));
	/* logging out does not widen a ring set up before */
	EXPECT_EQ(0, xioctl(u, HSMCARD_IOC_LOGOUT, NULL));
	ASSERT_EQ(0, tring_run(&r, jobs, 2, cqe));
	EXPECT_EQ(-ENOKEY, cqe[0].status);
	tring_close(&r);

	/* the SO's ring: keyed jobs refused, keyless ones run */
	ASSERT_EQ(0, tring_open(so, &r, 8, 16 * PAGE));
	memcpy(r.arena, msg, sizeof(msg));
	jobs[0] = sign_job(a.handle, 0, sizeof(msg), PAGE);
	memset(&jobs[1], 0, sizeof(jobs[1]));
	jobs[1].opcode = HSMCARD_RING_OP_RANDOM;
	jobs[1].out_off = 2 * PAGE;
	jobs[1].out_len = 32;
	ASSERT_EQ(0, tring_run(&r, jobs, 2, cqe));
	EXPECT_EQ(-EACCES, cqe[0].status);
	EXPECT_EQ(0, cqe[1].status);
	tring_close(&r);

	/* logged out, the former User is back to partition 0 */
	sig_len = sizeof(sig);
	EXPECT_EQ(-ENOKEY, sign(u, a.handle, msg, sizeof(msg), sig, &sig_len));
	/* logging in again restores it */
	ASSERT_EQ(0, login(u, self->part, HSMCARD_ROLE_USER, USER_PIN, NULL));
	sig_len = sizeof(sig);
	EXPECT_EQ(0, sign(u, a.handle, msg, sizeof(msg), sig, &sig_len));
	/* a failed login logs out */
	EXPECT_EQ(-EACCES, login(u, self->part, HSMCARD_ROLE_SO, "wrong-pin",
				 NULL));
	sig_len = sizeof(sig);
	EXPECT_EQ(-ENOKEY, sign(u, a.handle, msg, sizeof(msg), sig, &sig_len));
	ASSERT_EQ(0, login(so, self->part, HSMCARD_ROLE_SO, SO_PIN, NULL));

	EVP_PKEY_free(pk);
	destroy_key(self->fd, b.handle);
	close(u);
	close(so);
}

/*
 * Deleting a partition ends the logins to it, and only those: a file
 * logged into a deleted (and possibly re-created) partition cannot reach
 * the new partition's keys.
 */
TEST_F(part, delete_ends_logins)
{
	struct hsmcard_key_attrs a, b;
	char label[HSMCARD_LABEL_LEN];
	uint8_t msg[16], sig[256];
	uint32_t q = 0, q2 = 0, sig_len;
	int u, v;

	fill_pattern(msg, sizeof(msg), 5);
	snprintf(label, sizeof(label), "login-test-q-%d", getpid());
	ASSERT_EQ(0, part_create(self->fd, label, 0, &q));
	ASSERT_EQ(0, set_pin(self->fd, q, HSMCARD_ROLE_USER, HSMCARD_ROLE_SO,
			     SO_PIN, USER_PIN));
	u = open(DEV_PATH, O_RDWR);
	v = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, u);
	ASSERT_LE(0, v);
	ASSERT_EQ(0, login(u, self->part, HSMCARD_ROLE_USER, USER_PIN, NULL));
	ASSERT_EQ(0, login(v, q, HSMCARD_ROLE_USER, USER_PIN, NULL));
	ASSERT_EQ(0, gen_key(u, HSMCARD_KEY_EC_P256, 256, HSMCARD_USE_SIGN,
			     NULL, &a));
	ASSERT_EQ(0, gen_key(v, HSMCARD_KEY_EC_P256, 256, HSMCARD_USE_SIGN,
			     NULL, &b));
	EXPECT_EQ(q, b.partition);

	ASSERT_EQ(0, part_delete(self->fd, q));
	/* the same number again, same PINs: the old login stays void */
	ASSERT_EQ(0, part_create(self->fd, label, 0, &q2));
	ASSERT_EQ(0, set_pin(self->fd, q2, HSMCARD_ROLE_USER, HSMCARD_ROLE_SO,
			     SO_PIN, USER_PIN));
	EXPECT_EQ(q, q2);
	memset(&b, 0, sizeof(b));
	ASSERT_EQ(0, gen_key(v, HSMCARD_KEY_AES, 128, 0, NULL, &b));
	/* v counts as logged out: partition 0 (open), not the new q */
	EXPECT_EQ(0U, b.partition);
	destroy_key(self->fd, b.handle);
	/* u's login to the other partition is untouched */
	sig_len = sizeof(sig);
	EXPECT_EQ(0, sign(u, a.handle, msg, sizeof(msg), sig, &sig_len));
	close(u);
	close(v);
	EXPECT_EQ(0, part_delete(self->fd, q2));
}

static int bind_ctl(const char *what, const char *bdf)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/hsmcard/%s", what);
	return write_str(path, bdf);
}

static bool wait_dev(void)
{
	long end = now_ms() + 20000;
	struct stat st;

	while (now_ms() < end) {
		if (!stat(DEV_PATH, &st))
			return true;
		usleep(20000);
	}
	return false;
}

/* Count audit records of @event for @part after @from. */
static int count_events(int fd, uint64_t from, uint16_t event, uint32_t part)
{
	static uint8_t buf[64 * REC];
	struct hsmcard_audit_read ar;
	uint64_t seq = from;
	int n = 0;

	for (;;) {
		memset(&ar, 0, sizeof(ar));
		ar.seq = seq;
		ar.buf = (uintptr_t)buf;
		ar.len = sizeof(buf);
		if (xioctl(fd, HSMCARD_IOC_AUDIT_READ, &ar))
			return -1;
		for (uint32_t i = 0; i < ar.count; i++) {
			const struct hsmcard_audit_rec *r =
				(const void *)(buf + i * REC);

			if (r->event == event && r->partition == part)
				n++;
		}
		if (!ar.count || ar.next_seq > ar.last_seq)
			return n;
		seq = ar.next_seq;
	}
}

/* Brute force: the lockout stops it, survives a rebind, SO lifts it. */
TEST_F(part, brute_force)
{
	struct hsmcard_audit_read ar;
	struct hsmcard_part_info pi;
	uint8_t one[REC];
	uint32_t tries = 99;
	char bdf[NAME_MAX + 1];
	uint64_t from;
	int i, u;

	memset(&ar, 0, sizeof(ar));
	ar.buf = (uintptr_t)one;
	ar.len = sizeof(one);
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));
	from = ar.last_seq + 1;

	u = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, u);
	for (i = MAX_FAIL - 1; i >= 0; i--) {
		EXPECT_EQ(-EACCES, login(u, self->part, HSMCARD_ROLE_USER,
					 "guess-0000", &tries));
		EXPECT_EQ((uint32_t)i, tries);
	}
	/* locked: the right PIN is refused too */
	EXPECT_EQ(-EKEYREVOKED, login(u, self->part, HSMCARD_ROLE_USER,
				      USER_PIN, NULL));
	ASSERT_EQ(0, part_info(u, self->part, &pi));
	EXPECT_TRUE(!!(pi.flags & HSMCARD_PART_S_USER_LOCKED));
	EXPECT_EQ(MAX_FAIL, pi.user_failed);
	close(u);

	/* the card keeps the lock across a driver unbind/bind */
	ASSERT_EQ(0, find_card(bdf, sizeof(bdf)));
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, bind_ctl("unbind", bdf));
	ASSERT_EQ(0, bind_ctl("bind", bdf));
	ASSERT_TRUE(wait_dev());
	self->fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, part_info(self->fd, self->part, &pi));
	EXPECT_TRUE(!!(pi.flags & HSMCARD_PART_S_USER_LOCKED));
	EXPECT_EQ(MAX_FAIL, pi.user_failed);
	EXPECT_EQ(-EKEYREVOKED, login(self->fd, self->part, HSMCARD_ROLE_USER,
				      USER_PIN, NULL));
	/* the User cannot change its own PIN either */
	EXPECT_EQ(-EKEYREVOKED, set_pin(self->fd, self->part,
					HSMCARD_ROLE_USER, 0, USER_PIN,
					USER_PIN2));

	/* the SO sets a new User PIN: unlocked */
	ASSERT_EQ(0, set_pin(self->fd, self->part, HSMCARD_ROLE_USER,
			     HSMCARD_ROLE_SO, SO_PIN, USER_PIN2));
	ASSERT_EQ(0, part_info(self->fd, self->part, &pi));
	EXPECT_FALSE(!!(pi.flags & HSMCARD_PART_S_USER_LOCKED));
	EXPECT_EQ(0, pi.user_failed);
	EXPECT_EQ(-EACCES, login(self->fd, self->part, HSMCARD_ROLE_USER,
				 USER_PIN, &tries));
	EXPECT_EQ(MAX_FAIL - 1U, tries);
	EXPECT_EQ(0, login(self->fd, self->part, HSMCARD_ROLE_USER, USER_PIN2,
			   NULL));
	EXPECT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 128, 0, NULL, NULL));
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_LOGOUT, NULL));

	/* the audit log saw every refusal and the lockout */
	EXPECT_LE(MAX_FAIL + 2, count_events(self->fd, from,
					     HSMCARD_AUDIT_EV_LOGIN_FAIL,
					     self->part));
	EXPECT_EQ(1, count_events(self->fd, from, HSMCARD_AUDIT_EV_LOCKOUT,
				  self->part));
	EXPECT_LE(1, count_events(self->fd, from, HSMCARD_AUDIT_EV_UNLOCK,
				  self->part));
}

/* Once partition 0 has a PIN, a file must log in to use it. */
TEST_F(part, partition0_pin)
{
	struct hsmcard_ring_cqe cqe[2];
	struct hsmcard_ring_sqe jobs[2];
	struct hsmcard_key_attrs a;
	uint8_t msg[32], sig[256];
	uint32_t sig_len = sizeof(sig);
	struct hsmcard_random rnd;
	struct tring r;
	int u;

	memset(&rnd, 0, sizeof(rnd));
	fill_pattern(msg, sizeof(msg), 9);
	ASSERT_EQ(0, gen_key(self->fd, HSMCARD_KEY_EC_P256, 256,
			     HSMCARD_USE_SIGN, NULL, &a));
	/* a ring made while partition 0 is open keeps it (documented) */
	ASSERT_EQ(0, set_pin(self->fd, 0, HSMCARD_ROLE_SO, HSMCARD_ROLE_ADMIN,
			     ADMIN_PIN, SO_PIN));
	EXPECT_EQ(-EACCES, gen_key(self->fd, HSMCARD_KEY_AES, 128, 0, NULL,
				   NULL));
	EXPECT_EQ(-EACCES, sign(self->fd, a.handle, msg, sizeof(msg), sig,
				&sig_len));
	/* random numbers use no key: still open */
	rnd.buf = (uintptr_t)sig;
	rnd.len = 16;
	EXPECT_EQ(0, xioctl(self->fd, HSMCARD_IOC_RANDOM, &rnd));
	ASSERT_EQ(0, tring_open(self->fd, &r, 8, 16 * PAGE));
	memcpy(r.arena, msg, sizeof(msg));
	jobs[0] = sign_job(a.handle, 0, sizeof(msg), PAGE);
	ASSERT_EQ(0, tring_run(&r, jobs, 1, cqe));
	EXPECT_EQ(-EACCES, cqe[0].status);
	tring_close(&r);

	/* the User of partition 0 gets in */
	ASSERT_EQ(0, set_pin(self->fd, 0, HSMCARD_ROLE_USER, HSMCARD_ROLE_SO,
			     SO_PIN, USER_PIN));
	u = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, u);
	ASSERT_EQ(0, login(u, 0, HSMCARD_ROLE_USER, USER_PIN, NULL));
	sig_len = sizeof(sig);
	EXPECT_EQ(0, sign(u, a.handle, msg, sizeof(msg), sig, &sig_len));
	close(u);

	/* reset partition 0: its keys go, it is open again */
	EXPECT_EQ(0, part_delete(self->fd, 0));
	EXPECT_EQ(0, gen_key(self->fd, HSMCARD_KEY_AES, 128, 0, NULL, &a));
	destroy_key(self->fd, a.handle);
}

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
	return NULL;
}

/* hsmctl logs in with the PIN from the environment, never argv. */
TEST_F(part, hsmctl_login)
{
	const char *hsmctl = hsmctl_path();
	int st;

	if (!hsmctl)
		SKIP(return, "no hsmctl");
	st = sh("HSMCARD_PIN=%s %s --partition %u --role user login"
		" >/dev/null 2>&1", USER_PIN, hsmctl, self->part);
	EXPECT_EQ(0, st);
	st = sh("HSMCARD_PIN=wrong-pin %s --partition %u --role user login"
		" >/dev/null 2>&1", hsmctl, self->part);
	EXPECT_EQ(1, st);
	/* a key made and used inside the partition */
	st = sh("set -e; export HSMCARD_PIN=%s; d=$(mktemp -d);"
		" h=$(%s --partition %u --role user keygen --type ec);"
		" test -n \"$h\"; echo hello >$d/m;"
		" %s --partition %u --role user sign $h"
		" --in $d/m --out $d/s; test -s $d/s; rm -rf $d",
		USER_PIN, hsmctl, self->part, hsmctl, self->part);
	EXPECT_EQ(0, st);
	/* with a wrong PIN the command never runs */
	st = sh("HSMCARD_PIN=wrong-pin %s --partition %u --role user"
		" keys >/dev/null 2>&1", hsmctl, self->part);
	EXPECT_EQ(1, st);
}

/* ---- netlink events, through a raw generic netlink socket ---- */

struct evsock {
	int fd;
	uint16_t family;
	uint32_t seq;
};

struct hsm_ev {
	uint32_t event, part, role, tries, pid, uid, unread, mark;
	bool has_part, has_tries, locked, has_pid, has_unread;
};

#define NLBUF	8192

static struct nlattr *nla_next_attr(struct nlattr *a, int *rem)
{
	int len = NLA_ALIGN(a->nla_len);

	*rem -= len;
	return (struct nlattr *)((char *)a + len);
}

static bool nla_fits(const struct nlattr *a, int rem)
{
	return rem >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) &&
	       a->nla_len <= rem;
}

static uint32_t nla_u32(const struct nlattr *a)
{
	uint32_t v;

	memcpy(&v, (const char *)a + NLA_HDRLEN, sizeof(v));
	return v;
}

/* Resolve the hsmcard family and join its events group. */
static int ev_open(struct evsock *es)
{
	struct {
		struct nlmsghdr n;
		struct genlmsghdr g;
		char buf[64];
	} req;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	static char rbuf[NLBUF];
	struct nlmsghdr *nh;
	struct nlattr *a;
	uint32_t grp = 0;
	int len, rem;

	memset(es, 0, sizeof(*es));
	es->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (es->fd < 0 || bind(es->fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -errno;
	memset(&req, 0, sizeof(req));
	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.n.nlmsg_seq = ++es->seq;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	a = (struct nlattr *)req.buf;
	a->nla_type = CTRL_ATTR_FAMILY_NAME;
	a->nla_len = NLA_HDRLEN + sizeof(HSMCARD_GENL_NAME);
	memcpy((char *)a + NLA_HDRLEN, HSMCARD_GENL_NAME,
	       sizeof(HSMCARD_GENL_NAME));
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(a->nla_len);
	if (send(es->fd, &req, req.n.nlmsg_len, 0) < 0)
		return -errno;
	len = recv(es->fd, rbuf, sizeof(rbuf), 0);
	if (len < 0)
		return -errno;
	nh = (struct nlmsghdr *)rbuf;
	if (!NLMSG_OK(nh, (unsigned int)len) || nh->nlmsg_type == NLMSG_ERROR)
		return -ENOENT;
	a = (struct nlattr *)((char *)NLMSG_DATA(nh) + GENL_HDRLEN);
	rem = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	for (; nla_fits(a, rem); a = nla_next_attr(a, &rem)) {
		struct nlattr *g, *f;
		int grem, frem;

		if (a->nla_type == CTRL_ATTR_FAMILY_ID) {
			memcpy(&es->family, (char *)a + NLA_HDRLEN, 2);
			continue;
		}
		if ((a->nla_type & NLA_TYPE_MASK) != CTRL_ATTR_MCAST_GROUPS)
			continue;
		g = (struct nlattr *)((char *)a + NLA_HDRLEN);
		grem = a->nla_len - NLA_HDRLEN;
		for (; nla_fits(g, grem); g = nla_next_attr(g, &grem)) {
			bool ours = false;
			uint32_t id = 0;

			f = (struct nlattr *)((char *)g + NLA_HDRLEN);
			frem = g->nla_len - NLA_HDRLEN;
			for (; nla_fits(f, frem); f = nla_next_attr(f, &frem)) {
				if (f->nla_type == CTRL_ATTR_MCAST_GRP_NAME)
					ours = !strcmp((char *)f + NLA_HDRLEN,
						       HSMCARD_GENL_MCGRP_EVENTS);
				else if (f->nla_type == CTRL_ATTR_MCAST_GRP_ID)
					id = nla_u32(f);
			}
			if (ours)
				grp = id;
		}
	}
	if (!es->family || !grp)
		return -ENOENT;
	if (setsockopt(es->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp,
		       sizeof(grp)))
		return -errno;
	return 0;
}

static void ev_close(struct evsock *es)
{
	if (es->fd >= 0)
		close(es->fd);
	es->fd = -1;
}

/*
 * Next event of type @want (0: any) within @timeout_ms; others are
 * skipped.  Returns 1 with *e filled, 0 on timeout, or -errno.
 */
static int ev_next(struct evsock *es, uint32_t want, int timeout_ms,
		   struct hsm_ev *e)
{
	static char buf[NLBUF];
	long end = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = { .fd = es->fd, .events = POLLIN };
		long left = end - now_ms();
		struct nlmsghdr *nh;
		int len, ret;

		ret = poll(&pfd, 1, left > 0 ? left : 0);
		if (ret < 0)
			return -errno;
		if (!ret)
			return 0;
		len = recv(es->fd, buf, sizeof(buf), 0);
		if (len < 0)
			return -errno;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned int)len);
		     nh = NLMSG_NEXT(nh, len)) {
			struct genlmsghdr *gh = NLMSG_DATA(nh);
			struct nlattr *a;
			int rem;

			if (nh->nlmsg_type != es->family ||
			    gh->cmd != HSMCARD_CMD_EVENT)
				continue;
			memset(e, 0, sizeof(*e));
			a = (struct nlattr *)((char *)gh + GENL_HDRLEN);
			rem = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
			for (; nla_fits(a, rem); a = nla_next_attr(a, &rem)) {
				switch (a->nla_type) {
				case HSMCARD_A_EVENT:
					e->event = nla_u32(a);
					break;
				case HSMCARD_A_PARTITION:
					e->part = nla_u32(a);
					e->has_part = true;
					break;
				case HSMCARD_A_ROLE:
					e->role = nla_u32(a);
					break;
				case HSMCARD_A_TRIES_LEFT:
					e->tries = nla_u32(a);
					e->has_tries = true;
					break;
				case HSMCARD_A_LOCKED:
					e->locked = true;
					break;
				case HSMCARD_A_PID:
					e->pid = nla_u32(a);
					e->has_pid = true;
					break;
				case HSMCARD_A_UID:
					e->uid = nla_u32(a);
					break;
				case HSMCARD_A_AUDIT_UNREAD:
					e->unread = nla_u32(a);
					e->has_unread = true;
					break;
				case HSMCARD_A_AUDIT_HIGH_WATER:
					e->mark = nla_u32(a);
					break;
				}
			}
			/* one event per datagram: the rest is read next time */
			if (!want || e->event == want)
				return 1;
		}
	}
}

/* Every refused PIN is an event: who, which role, how many tries left. */
TEST_F(part, login_failed_events)
{
	char line[1024], want[128];
	struct hsmcard_part_admin pa;
	struct evsock es;
	struct hsm_ev e;
	uint32_t tries;
	int i, u, errpipe[2], outpipe[2], status;
	const char *hsmctl = hsmctl_path();
	FILE *errf, *outf;
	pid_t pid;

	ASSERT_EQ(0, ev_open(&es));
	u = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, u);
	for (i = MAX_FAIL - 1; i >= 0; i--) {
		EXPECT_EQ(-EACCES, login(u, self->part, HSMCARD_ROLE_USER,
					 "guess-1111", &tries));
		EXPECT_EQ((uint32_t)i, tries);
		ASSERT_EQ(1, ev_next(&es, HSMCARD_EVENT_LOGIN_FAILED, 10000,
				     &e));
		EXPECT_TRUE(e.has_part);
		EXPECT_EQ(self->part, e.part);
		EXPECT_EQ((uint32_t)HSMCARD_ROLE_USER, e.role);
		EXPECT_TRUE(e.has_tries);
		EXPECT_EQ((uint32_t)i, e.tries);
		/* the failure that locks the role says so */
		EXPECT_EQ(i == 0, e.locked);
		EXPECT_TRUE(e.has_pid);
		EXPECT_EQ((uint32_t)getpid(), e.pid);
		EXPECT_EQ((uint32_t)getuid(), e.uid);
	}
	/* locked: the right PIN is refused, flagged, no tries reported */
	EXPECT_EQ(-EKEYREVOKED, login(u, self->part, HSMCARD_ROLE_USER,
				      USER_PIN, NULL));
	ASSERT_EQ(1, ev_next(&es, HSMCARD_EVENT_LOGIN_FAILED, 10000, &e));
	EXPECT_EQ(self->part, e.part);
	EXPECT_EQ((uint32_t)HSMCARD_ROLE_USER, e.role);
	EXPECT_FALSE(e.has_tries);
	EXPECT_TRUE(e.locked);

	/* SET_PIN reports whose PIN was wrong: the SO's */
	EXPECT_EQ(-EACCES, set_pin(u, self->part, HSMCARD_ROLE_USER,
				   HSMCARD_ROLE_SO, "not-the-so-pin", USER_PIN2));
	ASSERT_EQ(1, ev_next(&es, HSMCARD_EVENT_LOGIN_FAILED, 10000, &e));
	EXPECT_EQ(self->part, e.part);
	EXPECT_EQ((uint32_t)HSMCARD_ROLE_SO, e.role);
	EXPECT_TRUE(e.has_tries);
	EXPECT_EQ(MAX_FAIL - 1U, e.tries);
	EXPECT_FALSE(e.locked);
	/* the right SO PIN clears the SO counter and unlocks the User */
	ASSERT_EQ(0, set_pin(u, self->part, HSMCARD_ROLE_USER,
			     HSMCARD_ROLE_SO, SO_PIN, USER_PIN));
	EXPECT_EQ(0, login(u, self->part, HSMCARD_ROLE_USER, USER_PIN, NULL));

	/* a wrong admin PIN: card-wide, no partition */
	memset(&pa, 0, sizeof(pa));
	pa.partition = self->part;
	set_pin_buf(pa.pin, &pa.pin_len, "not-the-admin-pin");
	EXPECT_EQ(-EACCES, xioctl(u, HSMCARD_IOC_PART_DELETE, &pa));
	ASSERT_EQ(1, ev_next(&es, HSMCARD_EVENT_LOGIN_FAILED, 10000, &e));
	EXPECT_FALSE(e.has_part);
	EXPECT_EQ((uint32_t)HSMCARD_ROLE_ADMIN, e.role);
	EXPECT_TRUE(e.has_tries);
	EXPECT_FALSE(e.locked);
	/* the right admin PIN clears the admin counter */
	EXPECT_EQ(0, login(u, 0, HSMCARD_ROLE_ADMIN, ADMIN_PIN, NULL));

	/* another process: its pid */
	fflush(NULL);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int c = open(DEV_PATH, O_RDWR);

		_exit(c >= 0 && login(c, self->part, HSMCARD_ROLE_SO,
				      "guess-2222", NULL) == -EACCES ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	ASSERT_EQ(1, ev_next(&es, HSMCARD_EVENT_LOGIN_FAILED, 10000, &e));
	EXPECT_EQ((uint32_t)HSMCARD_ROLE_SO, e.role);
	EXPECT_EQ((uint32_t)pid, e.pid);
	/* the right SO PIN clears the SO counter */
	EXPECT_EQ(0, login(u, self->part, HSMCARD_ROLE_SO, SO_PIN, NULL));
	ev_close(&es);

	/* hsmctl monitor prints the event as one JSON line */
	if (!hsmctl) {
		close(u);
		SKIP(return, "no hsmctl");
	}
	ASSERT_EQ(0, pipe(errpipe));
	ASSERT_EQ(0, pipe(outpipe));
	fflush(NULL);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		dup2(outpipe[1], 1);
		dup2(errpipe[1], 2);
		close(errpipe[0]);
		close(outpipe[0]);
		execlp(hsmctl, "hsmctl", "monitor", "--count", "1",
		       "--timeout", "60", NULL);
		_exit(127);
	}
	close(errpipe[1]);
	close(outpipe[1]);
	errf = fdopen(errpipe[0], "r");
	outf = fdopen(outpipe[0], "r");
	ASSERT_NE(NULL, errf);
	ASSERT_NE(NULL, outf);
	ASSERT_NE(NULL, fgets(line, sizeof(line), errf));
	ASSERT_NE(NULL, strstr(line, "monitoring")) TH_LOG("%s", line);
	EXPECT_EQ(-EACCES, login(u, self->part, HSMCARD_ROLE_USER,
				 "guess-3333", &tries));
	ASSERT_NE(NULL, fgets(line, sizeof(line), outf));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	fclose(errf);
	fclose(outf);
	EXPECT_NE(NULL, strstr(line, "\"event\": \"login_failed\""))
		TH_LOG("%s", line);
	snprintf(want, sizeof(want), "\"partition\": %u", self->part);
	EXPECT_NE(NULL, strstr(line, want)) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, "\"role\": \"user\"")) TH_LOG("%s", line);
	snprintf(want, sizeof(want), "\"tries_left\": %u", tries);
	EXPECT_NE(NULL, strstr(line, want)) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, "\"locked\": false")) TH_LOG("%s", line);
	snprintf(want, sizeof(want), "\"pid\": %d,", getpid());
	EXPECT_NE(NULL, strstr(line, want)) TH_LOG("%s", line);
	snprintf(want, sizeof(want), "\"uid\": %u}", getuid());
	EXPECT_NE(NULL, strstr(line, want)) TH_LOG("%s", line);
	/* the right PIN clears the User counter again */
	EXPECT_EQ(0, login(u, self->part, HSMCARD_ROLE_USER, USER_PIN, NULL));
	close(u);
}

/* Read the audit log from @seq to its end; returns the newest seq. */
static int audit_read_to_end(int fd, uint64_t seq, uint64_t *last)
{
	static uint8_t buf[64 * REC];
	struct hsmcard_audit_read ar;
	int ret;

	for (;;) {
		memset(&ar, 0, sizeof(ar));
		ar.seq = seq;
		ar.buf = (uintptr_t)buf;
		ar.len = sizeof(buf);
		ret = xioctl(fd, HSMCARD_IOC_AUDIT_READ, &ar);
		if (ret)
			return ret;
		seq = ar.next_seq;
		if (!ar.count || seq > ar.last_seq)
			break;
	}
	*last = ar.last_seq;
	return 0;
}

static int audit_checkpoint(int fd, uint64_t *seq)
{
	struct hsmcard_audit_checkpoint ck;
	int ret;

	memset(&ck, 0, sizeof(ck));
	ret = xioctl(fd, HSMCARD_IOC_AUDIT_CHECKPOINT, &ck);
	*seq = ck.seq;
	return ret;
}

/*
 * Append checkpoint records (one each) until an AUDIT_HIGH_WATER event
 * arrives or @max records were added; returns the records added.  The
 * event travels interrupt -> kfifo -> work -> netlink and may trail the
 * record that raised it: when none has come by the last record, wait up
 * to @wait_ms more for it.
 */
static int audit_fill(int fd, struct evsock *es, int max, int wait_ms,
		      struct hsm_ev *e, int *got)
{
	uint64_t seq;
	int n;

	*got = 0;
	for (n = 0; n < max; n++) {
		if (audit_checkpoint(fd, &seq))
			return -1;
		if (ev_next(es, HSMCARD_EVENT_AUDIT_HIGH_WATER, 0, e) == 1) {
			*got = 1;
			return n + 1;
		}
	}
	if (ev_next(es, HSMCARD_EVENT_AUDIT_HIGH_WATER, wait_ms, e) == 1)
		*got = 1;
	return n;
}

/*
 * Records the host does not read: one AUDIT_HIGH_WATER at the card's mark
 * (audit-high-water, default 3072), none after it until the log is read
 * to its end, then one again.  Each HSMCARD_IOC_AUDIT_CHECKPOINT adds
 * exactly one record, so the count the card reports is checked against
 * the checkpoints made since the read.
 */
TEST_F_TIMEOUT(part, audit_high_water, 1800)
{
	struct hsmcard_audit_read ar;
	struct hsm_ev e, e2;
	uint8_t one[REC];
	struct evsock es;
	uint64_t last, seq;
	long t0;
	int n, got, more;

	ASSERT_EQ(0, ev_open(&es));
	/* read everything: the count starts afresh, the signal is armed */
	ASSERT_EQ(0, audit_read_to_end(self->fd, 0, &last));
	while (ev_next(&es, HSMCARD_EVENT_AUDIT_HIGH_WATER, 200, &e) == 1)
		;
	t0 = now_ms();
	n = audit_fill(self->fd, &es, 8192, 10000, &e, &got);
	ASSERT_EQ(1, got) TH_LOG("no high-water event after %d records", n);
	TH_LOG("high-water event after %d records (%ld ms): unread %u, mark %u",
	       n, now_ms() - t0, e.unread, e.mark);
	ASSERT_TRUE(e.has_unread);
	ASSERT_LE(1U, e.mark);
	/* raised when the count reached the mark, read a little later */
	EXPECT_LE(e.mark, e.unread);
	EXPECT_GE((uint32_t)n, e.unread);
	EXPECT_LE(e.mark, (uint32_t)n);
	/* nothing more while nobody reads, however many records follow */
	more = audit_fill(self->fd, &es, 32, 1000, &e2, &got);
	EXPECT_EQ(32, more);
	EXPECT_EQ(0, got);
	/* a read that stops short of the newest record does not re-arm */
	ASSERT_EQ(0, audit_checkpoint(self->fd, &seq));
	memset(&ar, 0, sizeof(ar));
	ar.seq = last + 1;
	ar.buf = (uintptr_t)one;
	ar.len = sizeof(one);
	ASSERT_EQ(0, xioctl(self->fd, HSMCARD_IOC_AUDIT_READ, &ar));
	EXPECT_EQ(1U, ar.count);
	EXPECT_LT(ar.next_seq, ar.last_seq);
	more = audit_fill(self->fd, &es, 8, 1000, &e2, &got);
	EXPECT_EQ(0, got);
	/* reading to the end re-arms: the next mark's worth raises it again */
	ASSERT_EQ(0, audit_read_to_end(self->fd, last + 1, &last));
	n = audit_fill(self->fd, &es, e.mark + 64, 10000, &e2, &got);
	ASSERT_EQ(1, got) TH_LOG("no second event after %d records", n);
	EXPECT_EQ(e.mark, e2.mark);
	EXPECT_LE(e2.mark, e2.unread);
	EXPECT_GE((uint32_t)n, e2.unread);
	EXPECT_LE(e.mark, (uint32_t)n);
	/* leave it armed for whoever comes next */
	ASSERT_EQ(0, audit_read_to_end(self->fd, last + 1, &last));
	ev_close(&es);
}

TEST_HARNESS_MAIN
