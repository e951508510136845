// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: PCI binding, controller bring-up, reset and recovery,
 * hwrng, sysfs and debugfs.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/build_bug.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "hsmcard.h"

static unsigned int io_queue_depth = 256;
module_param(io_queue_depth, uint, 0444);
MODULE_PARM_DESC(io_queue_depth,
		 "Entries per I/O queue (2..4096, capped by the card; default 256)");

static unsigned int cmd_timeout_ms = 30000;
module_param(cmd_timeout_ms, uint, 0644);
MODULE_PARM_DESC(cmd_timeout_ms,
		 "Command timeout in ms before the controller is reset (1..600000; default 30000; small values are for fault-injection tests)");

static unsigned int max_io_queues;
module_param(max_io_queues, uint, 0444);
MODULE_PARM_DESC(max_io_queues,
		 "Upper bound on I/O queue pairs (0 = one per online CPU)");

/**
 * hsm_cmd_timeout_ms() - the command timeout now in force
 *
 * The parameter may be changed at run time through sysfs.
 *
 * Return: milliseconds, 1..600000.
 */
unsigned int hsm_cmd_timeout_ms(void)
{
	return clamp(READ_ONCE(cmd_timeout_ms), 1U, 600000U);
}

static DEFINE_IDA(hsm_ida);
static struct dentry *hsm_debugfs_root;

/* The UAPI re-declares the card's numbers; they must never drift apart. */
#define HSM_SAME(uapi, hw) static_assert((int)(uapi) == (int)(hw))

HSM_SAME(HSMCARD_MECH_AES_ECB, HSM_MECH_AES_ECB);
HSM_SAME(HSMCARD_MECH_AES_CBC, HSM_MECH_AES_CBC);
HSM_SAME(HSMCARD_MECH_AES_CTR, HSM_MECH_AES_CTR);
HSM_SAME(HSMCARD_MECH_AES_XTS, HSM_MECH_AES_XTS);
HSM_SAME(HSMCARD_MECH_AES_GCM, HSM_MECH_AES_GCM);
HSM_SAME(HSMCARD_MECH_SHA256, HSM_MECH_SHA256);
HSM_SAME(HSMCARD_MECH_SHA384, HSM_MECH_SHA384);
HSM_SAME(HSMCARD_MECH_SHA512, HSM_MECH_SHA512);
HSM_SAME(HSMCARD_MECH_HMAC_SHA256, HSM_MECH_HMAC_SHA256);
HSM_SAME(HSMCARD_MECH_HMAC_SHA384, HSM_MECH_HMAC_SHA384);
HSM_SAME(HSMCARD_MECH_HMAC_SHA512, HSM_MECH_HMAC_SHA512);
HSM_SAME(HSMCARD_MECH_RSA_PKCS1, HSM_MECH_RSA_PKCS1);
HSM_SAME(HSMCARD_MECH_RSA_PSS, HSM_MECH_RSA_PSS);
HSM_SAME(HSMCARD_MECH_RSA_OAEP, HSM_MECH_RSA_OAEP);
HSM_SAME(HSMCARD_MECH_RSA_RAW, HSM_MECH_RSA_RAW);
HSM_SAME(HSMCARD_MECH_ECDSA, HSM_MECH_ECDSA);
HSM_SAME(HSMCARD_MECH_EDDSA, HSM_MECH_EDDSA);
HSM_SAME(HSMCARD_MECH_AES_KWP, HSM_MECH_AES_KWP);
HSM_SAME(HSMCARD_MECH_MAX, HSM_MECH_MAX);
HSM_SAME(HSMCARD_KEY_AES, HSM_KEY_AES);
HSM_SAME(HSMCARD_KEY_HMAC, HSM_KEY_HMAC);
HSM_SAME(HSMCARD_KEY_RSA, HSM_KEY_RSA);
HSM_SAME(HSMCARD_KEY_EC_P256, HSM_KEY_EC_P256);
HSM_SAME(HSMCARD_KEY_EC_P384, HSM_KEY_EC_P384);
HSM_SAME(HSMCARD_KEY_ED25519, HSM_KEY_ED25519);
HSM_SAME(HSMCARD_KEY_TYPE_MAX, HSM_KEY_TYPE_MAX);
static_assert(HSMCARD_USE_ENCRYPT == HSM_USE_ENCRYPT);
static_assert(HSMCARD_USE_DECRYPT == HSM_USE_DECRYPT);
static_assert(HSMCARD_USE_SIGN == HSM_USE_SIGN);
static_assert(HSMCARD_USE_VERIFY == HSM_USE_VERIFY);
static_assert(HSMCARD_USE_WRAP == HSM_USE_WRAP);
static_assert(HSMCARD_USE_UNWRAP == HSM_USE_UNWRAP);
static_assert(HSMCARD_USE_DERIVE == HSM_USE_DERIVE);
static_assert(HSMCARD_USE_ALL == HSM_USE_ALL);
static_assert(HSMCARD_KEYF_EXTRACTABLE == HSM_KEYF_EXTRACTABLE);
static_assert(HSMCARD_KEYF_SESSION == HSM_KEYF_SESSION);
static_assert(HSMCARD_KEYF_PERSISTENT == HSM_KEYF_PERSISTENT);
static_assert(HSMCARD_KEYF_SENSITIVE == HSM_KEYF_SENSITIVE);
static_assert(HSMCARD_KEYF_ALL == HSM_KEYF_ALL);
static_assert(HSMCARD_LABEL_LEN == HSM_LABEL_LEN);
static_assert(HSMCARD_PARTITION_USER == HSM_DEFAULT_PARTITION);
static_assert(sizeof(struct hsm_sqe) == HSM_SQE_SIZE);
static_assert(sizeof(struct hsm_cqe) == HSM_CQE_SIZE);
static_assert(sizeof(struct hsm_sge) == HSM_SGE_SIZE);
static_assert(sizeof(struct hsm_key_attrs) == 160);
static_assert(sizeof(struct hsmcard_key_attrs) == 160);
static_assert(HSMCARD_KEY_ID_LEN == HSM_KEY_ID_LEN);
static_assert(sizeof(struct hsm_identify) == HSM_IDENTIFY_SIZE);

static const char * const hsm_state_names[] = {
	[HSMCARD_STATE_LIVE]		= "live",
	[HSMCARD_STATE_RESETTING]	= "resetting",
	[HSMCARD_STATE_TAMPERED]	= "tampered",
	[HSMCARD_STATE_DEAD]		= "dead",
};

/**
 * hsm_dev_state() - current state of a card
 * @hdev: device
 *
 * Return: enum hsmcard_state.
 */
enum hsmcard_state hsm_dev_state(struct hsm_dev *hdev)
{
	return READ_ONCE(hdev->state);
}

/* Report a state change (called with state_lock held). */
static void hsm_state_changed(struct hsm_dev *hdev, enum hsmcard_state old,
			      enum hsmcard_state state)
{
	if (old == state)
		return;
	if (state == HSMCARD_STATE_TAMPERED)
		hsm_genl_event(hdev, HSMCARD_EVENT_TAMPER, 0);
	hsm_genl_event(hdev, HSMCARD_EVENT_STATE, state);
}

static void hsm_set_state(struct hsm_dev *hdev, enum hsmcard_state state)
{
	unsigned long flags;

	spin_lock_irqsave(&hdev->state_lock, flags);
	hsm_state_changed(hdev, hdev->state, state);
	WRITE_ONCE(hdev->state, state);
	spin_unlock_irqrestore(&hdev->state_lock, flags);
	wake_up_all(&hdev->state_wq);
}

static void hsm_dev_release(struct kref *kref)
{
	struct hsm_dev *hdev = container_of(kref, struct hsm_dev, kref);

	kfree(hdev);
}

/**
 * hsm_dev_put() - drop a reference to a card's structure
 * @hdev: device
 */
void hsm_dev_put(struct hsm_dev *hdev)
{
	kref_put(&hdev->kref, hsm_dev_release);
}

/* ---- controller ---- */

static bool hsm_csts_gone(u32 csts)
{
	return csts == U32_MAX;
}

static int hsm_wait_ready(struct hsm_dev *hdev, bool ready)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(hdev->ctrl_to_ms);

	for (;;) {
		u32 csts = readl(hdev->bar + HSM_REG_CSTS);

		if (hsm_csts_gone(csts))
			return -ENODEV;
		if (ready && (csts & HSM_CSTS_CFS))
			return -EIO;
		if (!!(csts & HSM_CSTS_RDY) == ready)
			return 0;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(1000, 2000);
	}
}

static int hsm_ctrl_disable(struct hsm_dev *hdev)
{
	writel(0, hdev->bar + HSM_REG_CC);
	return hsm_wait_ready(hdev, false);
}

static void hsm_apply_to_queues(struct hsm_dev *hdev, hsm_queue_fn fn,
				u16 status)
{
	unsigned int i;

	for (i = 0; i < hdev->nr_ioq; i++)
		if (hdev->ioq[i].sqes)
			fn(&hdev->ioq[i], status);
	if (hdev->adminq.sqes)
		fn(&hdev->adminq, status);
}

static void hsm_queue_down(struct hsm_queue *q, u16 status)
{
	hsm_queue_set_live(q, false);
}

/**
 * hsm_ctrl_halt() - stop the card and fail everything outstanding
 * @hdev:   device; the caller holds reset_lock
 * @status: status for the commands the card did not complete
 *
 * Disables the controller, which drops its queues and in-flight commands.
 * If the card does not acknowledge, bus mastering is turned off so that it
 * can no longer reach memory the driver is about to reuse.  Afterwards no
 * queue is live and every ring is empty.
 */
void hsm_ctrl_halt(struct hsm_dev *hdev, u16 status)
{
	int ret;

	hsm_apply_to_queues(hdev, hsm_queue_down, 0);
	ret = hsm_ctrl_disable(hdev);
	if (ret) {
		dev_err(&hdev->pdev->dev,
			"controller did not stop (%d); disabling bus mastering\n",
			ret);
		pci_clear_master(hdev->pdev);
	}
	hsm_apply_to_queues(hdev, hsm_queue_quiesce, status);
}

static int hsm_ctrl_enable(struct hsm_dev *hdev)
{
	struct hsm_queue *aq = &hdev->adminq;
	int ret;

	writel(HSM_AQA_MK(aq->depth - 1, aq->depth - 1),
	       hdev->bar + HSM_REG_AQA);
	lo_hi_writeq(aq->sq_dma, hdev->bar + HSM_REG_ASQ);
	lo_hi_writeq(aq->cq_dma, hdev->bar + HSM_REG_ACQ);
	/* A function reset clears it. */
	writel(hdev->intcoal, hdev->bar + HSM_REG_INTCOAL);
	writel(HSM_CC_EN, hdev->bar + HSM_REG_CC);
	ret = hsm_wait_ready(hdev, true);
	if (ret) {
		dev_err(&hdev->pdev->dev, "controller enable failed: %d\n",
			ret);
		hsm_ctrl_disable(hdev);
		return ret;
	}
	hsm_queue_set_live(aq, true);
	return 0;
}

static int hsm_create_ioq(struct hsm_dev *hdev, struct hsm_queue *q)
{
	struct hsm_sqe sqe = {};
	int ret;

	sqe.opcode = HSM_ADM_CREATE_IOQ;
	sqe.cdw[0] = cpu_to_le32(q->qid);
	sqe.cdw[1] = cpu_to_le32(q->depth - 1);
	sqe.cdw[2] = cpu_to_le32(q->vector);
	sqe.src = cpu_to_le64(q->sq_dma);
	sqe.dst = cpu_to_le64(q->cq_dma);
	ret = hsm_submit_sync(&hdev->adminq, &sqe, NULL, true);
	if (ret) {
		dev_err(&hdev->pdev->dev, "creating I/O queue %u failed: %d\n",
			q->qid, ret);
		return ret < 0 ? ret : -EIO;
	}
	hsm_queue_set_live(q, true);
	return 0;
}

static int hsm_delete_ioq(struct hsm_dev *hdev, struct hsm_queue *q)
{
	struct hsm_sqe sqe = {};
	int ret;

	hsm_queue_set_live(q, false);
	sqe.opcode = HSM_ADM_DELETE_IOQ;
	sqe.cdw[0] = cpu_to_le32(q->qid);
	ret = hsm_submit_sync(&hdev->adminq, &sqe, NULL, true);
	if (ret)
		return ret < 0 ? ret : -EIO;
	/* The card discarded what was still queued: fail it. */
	hsm_queue_quiesce(q, HSMCARD_SC_GONE);
	return 0;
}

static enum hsmcard_state hsm_hw_state(struct hsm_dev *hdev)
{
	u32 csts = readl(hdev->bar + HSM_REG_CSTS);

	if (hsm_csts_gone(csts))
		return HSMCARD_STATE_DEAD;
	if ((csts & HSM_CSTS_TAMPER) ||
	    readl(hdev->bar + HSM_REG_HEALTH) == HSM_HEALTH_TAMPERED)
		return HSMCARD_STATE_TAMPERED;
	return HSMCARD_STATE_LIVE;
}

/* Create the I/O queues on an enabled controller; reset_lock held. */
static int hsm_create_ioqs(struct hsm_dev *hdev)
{
	unsigned int i;
	int ret;

	for (i = 0; i < hdev->nr_ioq; i++) {
		ret = hsm_create_ioq(hdev, &hdev->ioq[i]);
		if (ret)
			return ret;
	}
	/* All events on; the handler acknowledges them. */
	writel(0, hdev->bar + HSM_REG_EVTMASK);
	return 0;
}

/* Enable the controller and create the I/O queues; reset_lock held. */
static int hsm_ctrl_start(struct hsm_dev *hdev)
{
	int ret;

	ret = hsm_ctrl_enable(hdev);
	if (ret)
		return ret;
	return hsm_create_ioqs(hdev);
}

/* Bring a halted controller back; reset_lock held. */
static void hsm_recover(struct hsm_dev *hdev)
{
	struct device *dev = &hdev->pdev->dev;
	int ret;

	hdev->resets++;
	pci_set_master(hdev->pdev);
	ret = hsm_ctrl_start(hdev);
	if (ret) {
		dev_err(dev, "controller recovery failed (%d); card is dead\n",
			ret);
		hsm_ctrl_halt(hdev, HSM_SC_ABORTED);
		pci_clear_master(hdev->pdev);
		hsm_set_state(hdev, HSMCARD_STATE_DEAD);
		return;
	}
	hsm_set_state(hdev, hsm_hw_state(hdev));
	dev_info(dev, "controller reset complete\n");
}

static void hsm_reset_work(struct work_struct *work)
{
	struct hsm_dev *hdev = container_of(work, struct hsm_dev, reset_work);

	mutex_lock(&hdev->reset_lock);
	if (!READ_ONCE(hdev->removing)) {
		hsm_set_state(hdev, HSMCARD_STATE_RESETTING);
		dev_warn(&hdev->pdev->dev, "resetting controller\n");
		hsm_ctrl_halt(hdev, HSM_SC_ABORTED);
		hsm_recover(hdev);
	}
	mutex_unlock(&hdev->reset_lock);
}

/*
 * A function-level reset requested through the PCI core (sysfs "reset",
 * VFIO...): quiesce first, rebuild the queues afterwards.  Both callbacks
 * run in the same thread with the device lock held, so reset_lock is held
 * across the reset.
 */
static void hsm_reset_prepare(struct pci_dev *pdev)
{
	struct hsm_dev *hdev = pci_get_drvdata(pdev);

	dev_info(&pdev->dev, "function-level reset: stopping the controller\n");
	cancel_work_sync(&hdev->reset_work);
	mutex_lock(&hdev->reset_lock);
	hsm_set_state(hdev, HSMCARD_STATE_RESETTING);
	hsm_ctrl_halt(hdev, HSM_SC_ABORTED);
}

static void hsm_reset_done(struct pci_dev *pdev)
{
	struct hsm_dev *hdev = pci_get_drvdata(pdev);

	hsm_recover(hdev);
	mutex_unlock(&hdev->reset_lock);
}

static const struct pci_error_handlers hsm_err_handlers = {
	.reset_prepare	= hsm_reset_prepare,
	.reset_done	= hsm_reset_done,
};

/*
 * Which states a reset may start from: any but DEAD (commands, events),
 * any (an administrator's request), or only LIVE (the watchdog, which must
 * not restart a reset that is already dealing with the same command).
 */
enum hsm_reset_from {
	HSM_RESET_NOT_DEAD,
	HSM_RESET_ANY,
	HSM_RESET_LIVE,
};

static void __hsm_schedule_reset(struct hsm_dev *hdev, const char *why,
				 enum hsm_reset_from from)
{
	unsigned long flags;
	bool go = false;

	spin_lock_irqsave(&hdev->state_lock, flags);
	switch (from) {
	case HSM_RESET_ANY:
		go = true;
		break;
	case HSM_RESET_NOT_DEAD:
		go = hdev->state != HSMCARD_STATE_DEAD;
		break;
	case HSM_RESET_LIVE:
		go = hdev->state == HSMCARD_STATE_LIVE;
		break;
	}
	if (hdev->removing)
		go = false;
	if (go) {
		hsm_state_changed(hdev, hdev->state, HSMCARD_STATE_RESETTING);
		WRITE_ONCE(hdev->state, HSMCARD_STATE_RESETTING);
	}
	spin_unlock_irqrestore(&hdev->state_lock, flags);
	if (go) {
		dev_warn_ratelimited(&hdev->pdev->dev,
				     "scheduling controller reset: %s\n", why);
		queue_work(system_long_wq, &hdev->reset_work);
	}
}

/*
 * Asynchronous commands (crypto API requests, rings) have no one waiting
 * with a timeout: the watchdog looks for I/O commands the card has held
 * longer than the command timeout and resets the controller, which fails
 * them, instead of leaving their owners (dm-crypt, say) hanging forever.
 */
#define HSM_WATCHDOG_PERIOD	HZ

static void hsm_watchdog(struct work_struct *work)
{
	struct hsm_dev *hdev = container_of(to_delayed_work(work),
					    struct hsm_dev, watchdog);
	unsigned int timeout_ms = hsm_cmd_timeout_ms();
	unsigned int i;

	/* A reset or removal in progress owns the queues. */
	if (hsm_dev_state(hdev) == HSMCARD_STATE_LIVE &&
	    mutex_trylock(&hdev->reset_lock)) {
		for (i = 0; i < hdev->nr_ioq; i++) {
			if (!hsm_queue_stuck(&hdev->ioq[i],
					     msecs_to_jiffies(timeout_ms)))
				continue;
			dev_err(&hdev->pdev->dev,
				"queue %u: a command is outstanding for more than %u ms\n",
				hdev->ioq[i].qid, timeout_ms);
			__hsm_schedule_reset(hdev, "command timeout",
					     HSM_RESET_LIVE);
			break;
		}
		mutex_unlock(&hdev->reset_lock);
	}
	if (!READ_ONCE(hdev->removing))
		schedule_delayed_work(&hdev->watchdog, HSM_WATCHDOG_PERIOD);
}

/**
 * hsm_schedule_reset() - reset the controller from a work item
 * @hdev: device
 * @why:  reason, for the log
 *
 * Does nothing once removal started or after the card was declared dead
 * (only an administrator's reset_controller write retries a dead card).
 * A reset requested while one runs makes it run again, so a command that
 * timed out on a freshly recreated queue is still failed.
 */
void hsm_schedule_reset(struct hsm_dev *hdev, const char *why)
{
	__hsm_schedule_reset(hdev, why, HSM_RESET_NOT_DEAD);
}

static irqreturn_t hsm_event_irq(int irq, void *data)
{
	struct hsm_dev *hdev = data;
	struct device *dev = &hdev->pdev->dev;
	u32 evt = readl(hdev->bar + HSM_REG_EVTSTS);

	if (!evt || evt == U32_MAX)
		return IRQ_NONE;
	writel(evt, hdev->bar + HSM_REG_EVTSTS);

	if (evt & HSM_EVT_TAMPER) {
		unsigned long flags;

		dev_crit(dev, "tamper event: keys zeroized\n");
		spin_lock_irqsave(&hdev->state_lock, flags);
		if (hdev->state == HSMCARD_STATE_LIVE) {
			hsm_state_changed(hdev, hdev->state,
					  HSMCARD_STATE_TAMPERED);
			WRITE_ONCE(hdev->state, HSMCARD_STATE_TAMPERED);
		} else {
			hsm_genl_event(hdev, HSMCARD_EVENT_TAMPER, 0);
		}
		spin_unlock_irqrestore(&hdev->state_lock, flags);
		wake_up_all(&hdev->state_wq);
	}
	if (evt & HSM_EVT_HEALTH) {
		dev_warn(dev, "health event: HEALTH=%u\n",
			 readl(hdev->bar + HSM_REG_HEALTH));
		hsm_genl_event(hdev, HSMCARD_EVENT_HEALTH, 0);
	}
	if (evt & HSM_EVT_FATAL) {
		dev_err(dev, "fatal error reported by the card\n");
		hsm_schedule_reset(hdev, "fatal event");
	}
	if (evt & HSM_EVT_AUDIT) {
		u32 unread = readl(hdev->bar + HSM_REG_AUDIT_UNREAD);
		u32 mark = readl(hdev->bar + HSM_REG_AUDIT_HWM);

		dev_notice(dev, "audit log: %u records unread (high-water mark %u)\n",
			   unread, mark);
		hsm_genl_audit_high_water(hdev, unread, mark);
	}
	return IRQ_HANDLED;
}

/* ---- IDENTIFY ---- */

static int hsm_copy_id_string(struct device *dev, char *dst, size_t dst_len,
			      const char *src, size_t src_len,
			      const char *what)
{
	size_t n = strnlen(src, src_len);
	size_t i;

	if (n == src_len || n == 0) {
		dev_err(dev, "identify: %s is empty or not NUL-terminated\n",
			what);
		return -EIO;
	}
	for (i = 0; i < n; i++) {
		if (src[i] < 0x20 || src[i] > 0x7e) {
			dev_err(dev, "identify: %s is not printable ASCII\n",
				what);
			return -EIO;
		}
	}
	strscpy_pad(dst, src, dst_len);
	return 0;
}

static bool hsm_check_range(struct device *dev, const char *name, u32 v,
			    u32 lo, u32 hi)
{
	if (v >= lo && v <= hi)
		return true;
	dev_err(dev, "identify: %s %u outside %u..%u\n", name, v, lo, hi);
	return false;
}

static int hsm_parse_identify(struct hsm_dev *hdev,
			      const struct hsm_identify *id,
			      struct hsm_limits *lim)
{
	struct device *dev = &hdev->pdev->dev;
	int ret;

	ret = hsm_copy_id_string(dev, lim->serial, sizeof(lim->serial),
				 id->serial, sizeof(id->serial), "serial");
	if (!ret)
		ret = hsm_copy_id_string(dev, lim->model, sizeof(lim->model),
					 id->model, sizeof(id->model), "model");
	if (!ret)
		ret = hsm_copy_id_string(dev, lim->fw_rev, sizeof(lim->fw_rev),
					 id->fw_rev, sizeof(id->fw_rev),
					 "firmware revision");
	if (ret)
		return ret;

	memcpy(lim->card_id, id->card_id, sizeof(lim->card_id));
	lim->max_ioq = le32_to_cpu(id->max_ioq);
	lim->max_qsize = le32_to_cpu(id->max_qsize);
	lim->max_xfer = le32_to_cpu(id->max_xfer);
	lim->max_sge = le32_to_cpu(id->max_sge);
	lim->max_keys = le32_to_cpu(id->max_keys);
	lim->nr_keys = le32_to_cpu(id->nr_keys);
	lim->mechs = le64_to_cpu(id->mechs);
	lim->key_types = le32_to_cpu(id->key_types);
	lim->nr_partitions = le32_to_cpu(id->nr_partitions);

	if (!hsm_check_range(dev, "max_ioq", lim->max_ioq, 1, HSM_MAX_IOQ) ||
	    !hsm_check_range(dev, "max_qsize", lim->max_qsize, HSM_MIN_QSIZE,
			     HSM_MAX_QSIZE) ||
	    !hsm_check_range(dev, "max_xfer", lim->max_xfer, 4096, SZ_64M) ||
	    !hsm_check_range(dev, "max_sge", lim->max_sge, 1, HSM_MAX_SGE) ||
	    !hsm_check_range(dev, "max_keys", lim->max_keys, 1, 1U << 24) ||
	    !hsm_check_range(dev, "nr_keys", lim->nr_keys, 0, lim->max_keys) ||
	    !hsm_check_range(dev, "nr_partitions", lim->nr_partitions, 1, 256))
		return -EIO;
	return 0;
}

/**
 * hsm_identify() - read and validate the card's IDENTIFY data
 * @hdev: device
 * @lim:  receives the validated data
 * @internal: called with reset_lock held (see hsm_submit_sync())
 *
 * Return: 0, or a negative errno (-EIO for data that fails validation).
 */
int hsm_identify(struct hsm_dev *hdev, struct hsm_limits *lim, bool internal)
{
	struct hsm_identify *id;
	struct hsm_sqe sqe = {};
	struct hsm_buf buf;
	int ret;

	id = kmalloc(sizeof(*id), GFP_KERNEL);
	if (!id)
		return -ENOMEM;
	ret = hsm_buf_alloc(&buf, &hdev->pdev->dev, sizeof(*id),
			    DMA_FROM_DEVICE);
	if (ret)
		goto out_free;
	ret = hsm_buf_map(&buf);
	if (ret)
		goto out_buf;
	sqe.opcode = HSM_ADM_IDENTIFY;
	hsm_buf_sqe_dst(&buf, &sqe);
	ret = hsm_submit_sync(&hdev->adminq, &sqe, NULL, internal);
	if (ret > 0)
		ret = hsm_status_to_errno(ret);
	if (ret)
		goto out_buf;
	hsm_buf_unmap(&buf);
	hsm_buf_copy_to_kernel(&buf, id, sizeof(*id));
	ret = hsm_parse_identify(hdev, id, lim);
out_buf:
	hsm_buf_free(&buf);
out_free:
	kfree(id);
	return ret;
}

/* ---- hwrng ---- */

static int hsm_rng_read(struct hwrng *rng, void *data, size_t max, bool wait)
{
	struct hsm_dev *hdev = container_of(rng, struct hsm_dev, rng);
	struct hsm_sqe sqe = {};
	struct hsm_buf buf;
	size_t len;
	int ret;

	len = min_t(size_t, max, PAGE_SIZE);
	if (!len)
		return 0;
	ret = hsm_buf_alloc(&buf, &hdev->pdev->dev, len, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	ret = hsm_buf_map(&buf);
	if (ret)
		goto out;
	sqe.opcode = HSM_IO_GET_RANDOM;
	hsm_buf_sqe_dst(&buf, &sqe);
	ret = hsm_submit_sync(hsm_io_queue(hdev), &sqe, NULL, false);
	if (ret > 0)
		ret = hsm_status_to_errno(ret);
	if (ret)
		goto out;
	hsm_buf_unmap(&buf);
	hsm_buf_copy_to_kernel(&buf, data, len);
	ret = len;
out:
	hsm_buf_free(&buf);
	return ret;
}

/* ---- sysfs ---- */

static struct hsm_dev *hsm_from_dev(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t serial_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%s\n", hsm_from_dev(dev)->limits.serial);
}
static DEVICE_ATTR_RO(serial);

static ssize_t model_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%s\n", hsm_from_dev(dev)->limits.model);
}
static DEVICE_ATTR_RO(model);

static ssize_t firmware_version_show(struct device *dev,
				     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", hsm_from_dev(dev)->limits.fw_rev);
}
static DEVICE_ATTR_RO(firmware_version);

static ssize_t card_id_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%16phN\n", hsm_from_dev(dev)->limits.card_id);
}
static DEVICE_ATTR_RO(card_id);

static ssize_t state_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  hsm_state_names[hsm_dev_state(hsm_from_dev(dev))]);
}
static DEVICE_ATTR_RO(state);

static ssize_t queue_count_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", hsm_from_dev(dev)->nr_ioq);
}
static DEVICE_ATTR_RO(queue_count);

static ssize_t queue_depth_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", hsm_from_dev(dev)->io_depth);
}
static DEVICE_ATTR_RO(queue_depth);

static ssize_t max_xfer_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "%u\n", hsm_from_dev(dev)->limits.max_xfer);
}
static DEVICE_ATTR_RO(max_xfer);

static ssize_t resets_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(hsm_from_dev(dev)->resets));
}
static DEVICE_ATTR_RO(resets);

/* Commands the card holds now, over all I/O queues: how busy it is. */
static ssize_t inflight_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	struct hsm_dev *hdev = hsm_from_dev(dev);
	unsigned int i, n = 0;
	unsigned long flags;

	for (i = 0; i < hdev->nr_ioq; i++) {
		struct hsm_queue *q = &hdev->ioq[i];

		spin_lock_irqsave(&q->lock, flags);
		n += q->inflight;
		spin_unlock_irqrestore(&q->lock, flags);
	}
	return sysfs_emit(buf, "%u\n", n);
}
static DEVICE_ATTR_RO(inflight);

/*
 * Interrupt coalescing of the I/O queues, "THRESHOLD USECS": a queue's
 * interrupt waits until THRESHOLD completions are pending or USECS have
 * passed since the first of them (the card counts in 100 us steps).
 * "0 0", the default, interrupts for every completion.
 */
static ssize_t irq_coalesce_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	u32 v = READ_ONCE(hsm_from_dev(dev)->intcoal);

	return sysfs_emit(buf, "%u %u\n", HSM_INTCOAL_THR(v),
			  HSM_INTCOAL_TIME(v) * 100);
}

static ssize_t irq_coalesce_store(struct device *dev,
				  struct device_attribute *attr,
				  const char *buf, size_t count)
{
	struct hsm_dev *hdev = hsm_from_dev(dev);
	unsigned int thr, usecs;
	char end = 0;

	if (sscanf(buf, "%u %u%c", &thr, &usecs, &end) < 2 ||
	    (end && end != '\n'))
		return -EINVAL;
	if (thr > 255 || usecs > 25500 || usecs % 100)
		return -EINVAL;
	mutex_lock(&hdev->reset_lock);
	WRITE_ONCE(hdev->intcoal, HSM_INTCOAL_MK(thr, usecs / 100));
	writel(hdev->intcoal, hdev->bar + HSM_REG_INTCOAL);
	mutex_unlock(&hdev->reset_lock);
	return count;
}
static DEVICE_ATTR_RW(irq_coalesce);

static ssize_t reset_controller_store(struct device *dev,
				      struct device_attribute *attr,
				      const char *buf, size_t count)
{
	struct hsm_dev *hdev = hsm_from_dev(dev);
	bool val;
	int ret;

	ret = kstrtobool(buf, &val);
	if (ret)
		return ret;
	if (!val)
		return -EINVAL;
	__hsm_schedule_reset(hdev, "requested through sysfs", HSM_RESET_ANY);
	flush_work(&hdev->reset_work);
	return count;
}
static DEVICE_ATTR_WO(reset_controller);

static struct attribute *hsm_dev_attrs[] = {
	&dev_attr_serial.attr,
	&dev_attr_model.attr,
	&dev_attr_firmware_version.attr,
	&dev_attr_card_id.attr,
	&dev_attr_state.attr,
	&dev_attr_queue_count.attr,
	&dev_attr_queue_depth.attr,
	&dev_attr_max_xfer.attr,
	&dev_attr_resets.attr,
	&dev_attr_inflight.attr,
	&dev_attr_reset_controller.attr,
	&dev_attr_irq_coalesce.attr,
	NULL,
};
ATTRIBUTE_GROUPS(hsm_dev);

/* ---- debugfs ---- */

static int hsm_queue_stats_show(struct seq_file *m, void *v)
{
	struct hsm_queue *q = m->private;
	struct hsm_queue_stats st;
	unsigned long flags;
	unsigned int inflight;
	bool live, pending = false;
	u16 cqs;

	spin_lock_irqsave(&q->lock, flags);
	st = q->stats;
	inflight = q->inflight;
	live = q->live;
	if (q->cqes) {
		cqs = le16_to_cpu(READ_ONCE(q->cqes[q->cq_head].status));
		pending = HSM_CQE_PHASE(cqs) == q->cq_phase;
	}
	spin_unlock_irqrestore(&q->lock, flags);

	seq_printf(m, "qid: %u\n", q->qid);
	seq_printf(m, "depth: %u\n", q->depth);
	seq_printf(m, "vector: %u\n", q->vector);
	seq_printf(m, "live: %u\n", live);
	seq_printf(m, "inflight: %u\n", inflight);
	/* a completion the card posted that no interrupt has reaped yet */
	seq_printf(m, "cq_pending: %u\n", pending);
	seq_printf(m, "submitted: %llu\n", st.submitted);
	seq_printf(m, "completed: %llu\n", st.completed);
	seq_printf(m, "errors: %llu\n", st.errors);
	seq_printf(m, "busy: %llu\n", st.busy);
	seq_printf(m, "bad_cqe: %llu\n", st.bad_cqe);
	seq_printf(m, "aborted: %llu\n", st.aborted);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(hsm_queue_stats);

static void hsm_debugfs_init(struct hsm_dev *hdev)
{
	char name[16];
	unsigned int i;

	hdev->dbg = debugfs_create_dir(pci_name(hdev->pdev), hsm_debugfs_root);
	debugfs_create_file("queue0", 0400, hdev->dbg, &hdev->adminq,
			    &hsm_queue_stats_fops);
	for (i = 0; i < hdev->nr_ioq; i++) {
		snprintf(name, sizeof(name), "queue%u", hdev->ioq[i].qid);
		debugfs_create_file(name, 0400, hdev->dbg, &hdev->ioq[i],
				    &hsm_queue_stats_fops);
	}
}

/* ---- probe and remove ---- */

static int hsm_request_queue_irq(struct hsm_dev *hdev, struct hsm_queue *q)
{
	int ret;

	ret = pci_request_irq(hdev->pdev, q->vector, hsm_queue_irq, NULL, q,
			      "%s-q%u", hdev->name, q->qid);
	if (!ret)
		q->irq_requested = true;
	return ret;
}

static void hsm_free_queues(struct hsm_dev *hdev)
{
	unsigned int i;

	for (i = 0; i < hdev->nr_ioq; i++) {
		struct hsm_queue *q = &hdev->ioq[i];

		if (q->irq_requested)
			pci_free_irq(hdev->pdev, q->vector, q);
		q->irq_requested = false;
		if (q->sqes)
			hsm_queue_free(q);
	}
	kfree(hdev->ioq);
	hdev->ioq = NULL;
	hdev->nr_ioq = 0;
	if (hdev->adminq.irq_requested)
		pci_free_irq(hdev->pdev, HSM_VEC_ADMIN, &hdev->adminq);
	hdev->adminq.irq_requested = false;
	if (hdev->adminq.sqes)
		hsm_queue_free(&hdev->adminq);
}

static int hsm_setup_io_queues(struct hsm_dev *hdev, unsigned int nr,
			       unsigned int mqes)
{
	unsigned int i;
	int ret;

	hdev->io_depth = clamp_t(unsigned int, io_queue_depth, HSM_MIN_QSIZE,
				 min(mqes, hdev->limits.max_qsize));
	hdev->ioq = kcalloc(nr, sizeof(*hdev->ioq), GFP_KERNEL);
	if (!hdev->ioq)
		return -ENOMEM;
	for (i = 0; i < nr; i++) {
		struct hsm_queue *q = &hdev->ioq[i];

		/* Count the queue first so that errors unwind it. */
		hdev->nr_ioq = i + 1;
		ret = hsm_queue_alloc(hdev, q, i + 1, hdev->io_depth,
				      HSM_VEC_IO_FIRST + i);
		if (ret)
			return ret;
		ret = hsm_request_queue_irq(hdev, q);
		if (ret)
			return ret;
	}
	return 0;
}

static void hsm_shutdown(struct hsm_dev *hdev)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&hdev->state_lock, flags);
	hdev->removing = true;
	spin_unlock_irqrestore(&hdev->state_lock, flags);
	wake_up_all(&hdev->state_wq);
	cancel_delayed_work_sync(&hdev->watchdog);
	cancel_work_sync(&hdev->reset_work);

	mutex_lock(&hdev->reset_lock);
	if (hdev->adminq.sqes && hdev->adminq.live) {
		for (i = 0; i < hdev->nr_ioq; i++) {
			if (!hdev->ioq[i].live)
				continue;
			if (hsm_delete_ioq(hdev, &hdev->ioq[i]))
				break;
		}
	}
	hsm_ctrl_halt(hdev, HSMCARD_SC_GONE);
	hsm_set_state(hdev, HSMCARD_STATE_DEAD);
	mutex_unlock(&hdev->reset_lock);

	/* Wait for ioctls still using the hardware; they fail fast now. */
	down_write(&hdev->gone_sem);
	hdev->gone = true;
	up_write(&hdev->gone_sem);
	/* Rings hold DMA mappings of user memory: give them back now. */
	hsm_ring_dev_gone(hdev);
}

static void hsm_release_hw(struct hsm_dev *hdev)
{
	struct pci_dev *pdev = hdev->pdev;

	debugfs_remove_recursive(hdev->dbg);
	hdev->dbg = NULL;
	hsm_free_queues(hdev);
	if (hdev->nr_vecs) {
		pci_free_irq(pdev, HSM_VEC_EVENT, hdev);
		pci_free_irq_vectors(pdev);
	}
	hdev->nr_vecs = 0;
	pci_clear_master(pdev);
}

static int hsm_probe(struct pci_dev *pdev, const struct pci_device_id *ent)
{
	struct device *dev = &pdev->dev;
	unsigned int mqes, maxq, nvec, want;
	struct hsm_dev *hdev;
	int ret, nr;

	hdev = kzalloc(sizeof(*hdev), GFP_KERNEL);
	if (!hdev)
		return -ENOMEM;
	kref_init(&hdev->kref);
	init_rwsem(&hdev->gone_sem);
	spin_lock_init(&hdev->state_lock);
	init_waitqueue_head(&hdev->state_wq);
	INIT_WORK(&hdev->reset_work, hsm_reset_work);
	INIT_DELAYED_WORK(&hdev->watchdog, hsm_watchdog);
	mutex_init(&hdev->reset_lock);
	hsm_genl_init_dev(hdev);
	hdev->pdev = pdev;
	hdev->state = HSMCARD_STATE_RESETTING;

	ret = ida_alloc(&hsm_ida, GFP_KERNEL);
	if (ret < 0)
		goto err_free;
	hdev->id = ret;
	snprintf(hdev->name, sizeof(hdev->name), "hsmcard%d", hdev->id);

	ret = pcim_enable_device(pdev);
	if (ret)
		goto err_ida;
	if (pci_resource_len(pdev, HSM_BAR_REGS) < HSM_BAR0_SIZE) {
		dev_err(dev, "BAR0 too small\n");
		ret = -ENODEV;
		goto err_ida;
	}
	if (!devm_request_mem_region(dev, pci_resource_start(pdev, HSM_BAR_REGS),
				     HSM_BAR0_SIZE, HSMCARD_DRV_NAME)) {
		ret = -EBUSY;
		goto err_ida;
	}
	hdev->bar = devm_ioremap(dev, pci_resource_start(pdev, HSM_BAR_REGS),
				 HSM_BAR0_SIZE);
	if (!hdev->bar) {
		ret = -ENOMEM;
		goto err_ida;
	}
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(32));
	if (ret) {
		dev_err(dev, "no usable DMA configuration\n");
		goto err_ida;
	}
	pci_set_master(pdev);
	pci_set_drvdata(pdev, hdev);

	hdev->cap = lo_hi_readq(hdev->bar + HSM_REG_CAP);
	hdev->vs = readl(hdev->bar + HSM_REG_VS);
	if (hdev->cap == U64_MAX || (hdev->vs >> 16) != 1) {
		dev_err(dev, "unsupported interface version 0x%08x\n",
			hdev->vs);
		ret = -ENODEV;
		goto err_ida;
	}
	mqes = HSM_CAP_MQES(hdev->cap) + 1;
	maxq = HSM_CAP_MAXQ(hdev->cap);
	nvec = HSM_CAP_NVEC(hdev->cap);
	hdev->ctrl_to_ms = max(HSM_CAP_TO(hdev->cap), 1U) * 100;
	if (mqes < HSM_MIN_QSIZE || !maxq || nvec <= HSM_VEC_IO_FIRST) {
		dev_err(dev, "unusable capabilities 0x%016llx\n", hdev->cap);
		ret = -ENODEV;
		goto err_ida;
	}

	want = min3(num_online_cpus(), maxq, nvec - HSM_VEC_IO_FIRST);
	want = min_t(unsigned int, want, HSM_MAX_IOQ);
	if (max_io_queues)
		want = min(want, max_io_queues);
	nr = pci_alloc_irq_vectors(pdev, HSM_VEC_IO_FIRST + 1,
				   HSM_VEC_IO_FIRST + want, PCI_IRQ_MSIX);
	if (nr < 0) {
		dev_err(dev, "MSI-X allocation failed: %d\n", nr);
		ret = nr;
		goto err_ida;
	}
	hdev->nr_vecs = nr;
	ret = pci_request_irq(pdev, HSM_VEC_EVENT, hsm_event_irq, NULL, hdev,
			      "%s-evt", hdev->name);
	if (ret) {
		pci_free_irq_vectors(pdev);
		hdev->nr_vecs = 0;
		goto err_ida;
	}

	ret = hsm_queue_alloc(hdev, &hdev->adminq, HSM_ADMIN_QID,
			      min_t(unsigned int, HSMCARD_ADMIN_DEPTH, mqes),
			      HSM_VEC_ADMIN);
	if (ret)
		goto err_hw;
	ret = hsm_request_queue_irq(hdev, &hdev->adminq);
	if (ret)
		goto err_hw;

	mutex_lock(&hdev->reset_lock);
	/* A previous owner may have left the controller running. */
	ret = hsm_ctrl_disable(hdev);
	if (!ret)
		ret = hsm_ctrl_enable(hdev);
	if (!ret)
		ret = hsm_identify(hdev, &hdev->limits, true);
	if (!ret) {
		unsigned int nr_io = min_t(unsigned int,
					   nr - HSM_VEC_IO_FIRST,
					   hdev->limits.max_ioq);

		ret = hsm_setup_io_queues(hdev, nr_io, mqes);
	}
	if (!ret)
		ret = hsm_create_ioqs(hdev);
	if (ret) {
		hsm_ctrl_halt(hdev, HSMCARD_SC_GONE);
		mutex_unlock(&hdev->reset_lock);
		goto err_hw;
	}
	mutex_unlock(&hdev->reset_lock);
	hsm_set_state(hdev, hsm_hw_state(hdev));
	schedule_delayed_work(&hdev->watchdog, HSM_WATCHDOG_PERIOD);

	hsm_debugfs_init(hdev);

	snprintf(hdev->rng_name, sizeof(hdev->rng_name), "%s",
		 hdev->id ? hdev->name : HSMCARD_DRV_NAME);
	hdev->rng.name = hdev->rng_name;
	hdev->rng.read = hsm_rng_read;
	ret = hwrng_register(&hdev->rng);
	if (ret)
		dev_warn(dev, "hwrng registration failed: %d\n", ret);
	else
		hdev->rng_ok = true;

	ret = hsm_cdev_register(hdev);
	if (ret)
		goto err_rng;

	/* The queues are live: the algorithms' self-tests may run now. */
	ret = hsm_crypto_register(hdev);
	if (ret)
		dev_warn(dev, "crypto API registration failed: %d\n", ret);

	hsm_genl_add_card(hdev);
	dev_info(dev, "%s: serial %s, firmware %s, %u I/O queues of %u\n",
		 hdev->name, hdev->limits.serial, hdev->limits.fw_rev,
		 hdev->nr_ioq, hdev->io_depth);
	return 0;

err_rng:
	if (hdev->rng_ok)
		hwrng_unregister(&hdev->rng);
	hdev->rng_ok = false;
	hsm_shutdown(hdev);
err_hw:
	hsm_release_hw(hdev);
err_ida:
	ida_free(&hsm_ida, hdev->id);
err_free:
	hsm_genl_remove_card(hdev);
	hsm_dev_put(hdev);
	return ret;
}

static void hsm_remove(struct pci_dev *pdev)
{
	struct hsm_dev *hdev = pci_get_drvdata(pdev);

	hsm_cdev_unregister(hdev);
	if (hdev->rng_ok)
		hwrng_unregister(&hdev->rng);
	hdev->rng_ok = false;
	hsm_shutdown(hdev);
	hsm_crypto_unregister(hdev);
	hsm_genl_remove_card(hdev);
	hsm_release_hw(hdev);
	ida_free(&hsm_ida, hdev->id);
	hsm_dev_put(hdev);
}

static void hsm_pci_shutdown(struct pci_dev *pdev)
{
	struct hsm_dev *hdev = pci_get_drvdata(pdev);

	/* Stop DMA before the next kernel (kexec) or power off. */
	if (hdev)
		hsm_ctrl_disable(hdev);
}

static const struct pci_device_id hsm_pci_ids[] = {
	{ PCI_DEVICE(HSM_PCI_VENDOR_ID, HSM_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, hsm_pci_ids);

static struct pci_driver hsm_pci_driver = {
	.name		= HSMCARD_DRV_NAME,
	.id_table	= hsm_pci_ids,
	.probe		= hsm_probe,
	.remove		= hsm_remove,
	.shutdown	= hsm_pci_shutdown,
	.err_handler	= &hsm_err_handlers,
	.dev_groups	= hsm_dev_groups,
};

static int __init hsm_init(void)
{
	int ret;

	ret = hsm_genl_register();
	if (ret)
		return ret;
	hsm_debugfs_root = debugfs_create_dir(HSMCARD_DRV_NAME, NULL);
	ret = pci_register_driver(&hsm_pci_driver);
	if (ret) {
		debugfs_remove_recursive(hsm_debugfs_root);
		hsm_genl_unregister();
	}
	return ret;
}
module_init(hsm_init);

static void __exit hsm_exit(void)
{
	pci_unregister_driver(&hsm_pci_driver);
	hsm_crypto_exit();
	debugfs_remove_recursive(hsm_debugfs_root);
	hsm_genl_unregister();
	ida_destroy(&hsm_ida);
}
module_exit(hsm_exit);

MODULE_DESCRIPTION("hsmcard PCIe hardware security module");
MODULE_AUTHOR("The hsmcard authors");
MODULE_LICENSE("GPL");
