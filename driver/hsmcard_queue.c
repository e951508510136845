// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: queue pairs.
 *
 * A queue pair is a submission ring and a completion ring in coherent DMA
 * memory plus a command-id table.  Any context may submit; completions are
 * reaped in the queue's MSI-X handler and handed to the submitter's
 * callback.  The synchronous helper on top never waits forever: a command
 * the card does not answer in time triggers a controller reset, which fails
 * everything still outstanding.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/bitmap.h>
#include <linux/interrupt.h>
#include <linux/slab.h>
#include <linux/smp.h>

#include "hsmcard.h"

/**
 * hsm_queue_alloc() - allocate the rings and command table of a queue
 * @hdev:   owning device
 * @q:      queue to initialise
 * @qid:    queue id
 * @depth:  entries per ring (HSM_MIN_QSIZE..HSM_MAX_QSIZE)
 * @vector: MSI-X vector of the completion ring
 *
 * The queue starts not live; the caller enables it once the card knows it.
 *
 * Return: 0 or -ENOMEM.
 */
int hsm_queue_alloc(struct hsm_dev *hdev, struct hsm_queue *q, u16 qid,
		    u16 depth, u16 vector)
{
	struct device *dev = &hdev->pdev->dev;

	memset(q, 0, sizeof(*q));
	q->hdev = hdev;
	q->qid = qid;
	q->depth = depth;
	q->vector = vector;
	spin_lock_init(&q->lock);
	init_waitqueue_head(&q->space_wq);

	/* Coherent allocations are page aligned, as the card requires. */
	q->sqes = dma_alloc_coherent(dev, depth * sizeof(*q->sqes), &q->sq_dma,
				     GFP_KERNEL);
	q->cqes = dma_alloc_coherent(dev, depth * sizeof(*q->cqes), &q->cq_dma,
				     GFP_KERNEL);
	q->cmds = kcalloc(depth, sizeof(*q->cmds), GFP_KERNEL);
	q->cid_map = bitmap_zalloc(depth, GFP_KERNEL);
	if (!q->sqes || !q->cqes || !q->cmds || !q->cid_map) {
		hsm_queue_free(q);
		return -ENOMEM;
	}
	if (!IS_ALIGNED(q->sq_dma, HSM_QUEUE_ALIGN) ||
	    !IS_ALIGNED(q->cq_dma, HSM_QUEUE_ALIGN)) {
		hsm_queue_free(q);
		return -ENOMEM;
	}
	hsm_queue_reset_ring(q);
	return 0;
}

/**
 * hsm_queue_free() - free what hsm_queue_alloc() allocated
 * @q: queue; must have no outstanding commands
 */
void hsm_queue_free(struct hsm_queue *q)
{
	struct device *dev = &q->hdev->pdev->dev;

	if (q->sqes)
		dma_free_coherent(dev, q->depth * sizeof(*q->sqes), q->sqes,
				  q->sq_dma);
	if (q->cqes)
		dma_free_coherent(dev, q->depth * sizeof(*q->cqes), q->cqes,
				  q->cq_dma);
	kfree(q->cmds);
	bitmap_free(q->cid_map);
	q->sqes = NULL;
	q->cqes = NULL;
	q->cmds = NULL;
	q->cid_map = NULL;
}

/**
 * hsm_queue_reset_ring() - return the rings to their just-created state
 * @q: queue; the card must not be using it and its interrupt must be off
 */
void hsm_queue_reset_ring(struct hsm_queue *q)
{
	memset(q->sqes, 0, q->depth * sizeof(*q->sqes));
	memset(q->cqes, 0, q->depth * sizeof(*q->cqes));
	q->sq_tail = 0;
	q->db_tail = 0;
	q->sq_head = 0;
	q->cq_head = 0;
	q->cq_phase = 1;
}

/**
 * hsm_queue_set_live() - allow or refuse new submissions
 * @q:    queue
 * @live: new state
 */
void hsm_queue_set_live(struct hsm_queue *q, bool live)
{
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->live = live;
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->space_wq);
}

/**
 * hsm_queue_abort_all() - fail every outstanding command
 * @q:      queue; the card must have dropped it (controller disabled) and
 *          its interrupt must be off
 * @status: status reported to the callbacks
 *
 * Return: the number of commands failed.
 */
unsigned int hsm_queue_abort_all(struct hsm_queue *q, u16 status)
{
	struct hsm_cmd_slot slot;
	unsigned int n = 0;
	unsigned long flags;
	unsigned int cid;

	spin_lock_irqsave(&q->lock, flags);
	while ((cid = find_first_bit(q->cid_map, q->depth)) < q->depth) {
		slot = q->cmds[cid];
		q->cmds[cid].done = NULL;
		q->cmds[cid].ctx = NULL;
		__clear_bit(cid, q->cid_map);
		q->inflight--;
		q->stats.aborted++;
		n++;
		spin_unlock_irqrestore(&q->lock, flags);
		if (slot.done)
			slot.done(q, slot.ctx, status, 0);
		spin_lock_irqsave(&q->lock, flags);
	}
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->space_wq);
	return n;
}

/**
 * __hsm_queue_submit() - queue one command
 * @q:    queue
 * @sqe:  the command; its cid is filled in here
 * @done: completion callback (required)
 * @ctx:  callback context
 * @kick: ring the SQ tail doorbell now; without it the card may not see
 *        the command until hsm_queue_kick() or another submission rings it,
 *        so a caller queueing a batch rings once for all of them
 *
 * Context: any; does not sleep.
 * Return: 0 when queued (@done will be called exactly once), -EBUSY when
 * every command id is in use, -EAGAIN when the queue is not live.
 */
int __hsm_queue_submit(struct hsm_queue *q, const struct hsm_sqe *sqe,
		       hsm_done_fn done, void *ctx, bool kick)
{
	struct hsm_sqe *slot;
	unsigned long flags;
	unsigned int cid;

	spin_lock_irqsave(&q->lock, flags);
	if (unlikely(!q->live)) {
		spin_unlock_irqrestore(&q->lock, flags);
		return -EAGAIN;
	}
	/* A ring of depth entries holds depth - 1 commands. */
	if (unlikely(q->inflight >= q->depth - 1)) {
		q->stats.busy++;
		spin_unlock_irqrestore(&q->lock, flags);
		return -EBUSY;
	}
	cid = find_first_zero_bit(q->cid_map, q->depth);
	__set_bit(cid, q->cid_map);
	q->cmds[cid].done = done;
	q->cmds[cid].ctx = ctx;
	q->cmds[cid].start = jiffies;
	q->inflight++;

	slot = &q->sqes[q->sq_tail];
	memcpy(slot, sqe, sizeof(*slot));
	slot->cid = cpu_to_le16(cid);
	q->sq_tail = q->sq_tail + 1 == q->depth ? 0 : q->sq_tail + 1;
	q->stats.submitted++;
	if (kick) {
		/* writel() orders the entries' memory writes before it. */
		q->db_tail = q->sq_tail;
		writel(q->sq_tail, q->hdev->bar + HSM_REG_SQTDBL(q->qid));
	}
	spin_unlock_irqrestore(&q->lock, flags);
	return 0;
}

/**
 * hsm_queue_kick() - ring the SQ tail doorbell for queued commands
 * @q: queue
 *
 * Tells the card about commands queued with __hsm_queue_submit() without
 * @kick; does nothing if the doorbell already covers them.
 *
 * Context: any; does not sleep.
 */
void hsm_queue_kick(struct hsm_queue *q)
{
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	if (q->live && q->db_tail != q->sq_tail) {
		q->db_tail = q->sq_tail;
		writel(q->sq_tail, q->hdev->bar + HSM_REG_SQTDBL(q->qid));
	}
	spin_unlock_irqrestore(&q->lock, flags);
}

/**
 * hsm_queue_stuck() - whether the card holds a command for too long
 * @q:       queue
 * @timeout: longest time a command may be outstanding, in jiffies
 *
 * Context: any; does not sleep.
 * Return: true if a command submitted more than @timeout ago has not
 * completed.
 */
bool hsm_queue_stuck(struct hsm_queue *q, unsigned long timeout)
{
	unsigned long flags, now = jiffies;
	bool stuck = false;
	unsigned int cid;

	spin_lock_irqsave(&q->lock, flags);
	if (q->live && q->inflight) {
		for_each_set_bit(cid, q->cid_map, q->depth) {
			if (time_after(now, q->cmds[cid].start + timeout)) {
				stuck = true;
				break;
			}
		}
	}
	spin_unlock_irqrestore(&q->lock, flags);
	return stuck;
}

/*
 * Reap new completions.  Runs in the queue's interrupt handler, or with that
 * interrupt disabled during reset; never twice at once for one queue.
 */
static bool hsm_queue_process(struct hsm_queue *q)
{
	struct device *dev = &q->hdev->pdev->dev;
	struct hsm_cmd_slot slot;
	unsigned long flags;
	bool found = false;

	for (;;) {
		struct hsm_cqe *cqe = &q->cqes[q->cq_head];
		u16 st = le16_to_cpu(READ_ONCE(cqe->status));
		u16 cid, sqh, status;
		u64 result;

		if (HSM_CQE_PHASE(st) != q->cq_phase)
			break;
		/* Read the rest of the entry only after its phase bit. */
		dma_rmb();
		cid = le16_to_cpu(cqe->cid);
		sqh = le16_to_cpu(cqe->sq_head);
		result = le64_to_cpu(cqe->result);
		status = HSM_CQE_STATUS(st);
		found = true;

		if (++q->cq_head == q->depth) {
			q->cq_head = 0;
			q->cq_phase ^= 1;
		}

		/* irqsave: the reset path runs this in process context. */
		spin_lock_irqsave(&q->lock, flags);
		if (likely(sqh < q->depth))
			q->sq_head = sqh;
		if (unlikely(cid >= q->depth || !test_bit(cid, q->cid_map) ||
			     sqh >= q->depth)) {
			q->stats.bad_cqe++;
			spin_unlock_irqrestore(&q->lock, flags);
			dev_warn_ratelimited(dev,
					     "queue %u: bogus completion (cid %u, sq_head %u)\n",
					     q->qid, cid, sqh);
			continue;
		}
		slot = q->cmds[cid];
		q->cmds[cid].done = NULL;
		q->cmds[cid].ctx = NULL;
		__clear_bit(cid, q->cid_map);
		q->inflight--;
		q->stats.completed++;
		if (status != HSM_SC_SUCCESS)
			q->stats.errors++;
		spin_unlock_irqrestore(&q->lock, flags);

		if (slot.done)
			slot.done(q, slot.ctx, status, result);
	}

	if (found) {
		writel(q->cq_head, q->hdev->bar + HSM_REG_CQHDBL(q->qid));
		if (wq_has_sleeper(&q->space_wq))
			wake_up(&q->space_wq);
	}
	return found;
}

/**
 * hsm_queue_irq() - MSI-X handler of a completion queue
 * @irq:  interrupt number
 * @data: the queue
 *
 * Return: IRQ_HANDLED if any completion was reaped.
 */
irqreturn_t hsm_queue_irq(int irq, void *data)
{
	return hsm_queue_process(data) ? IRQ_HANDLED : IRQ_NONE;
}

/**
 * hsm_queue_quiesce() - reap what the card completed, then fail the rest
 * @q:      queue; the controller must be disabled
 * @status: status for the commands the card did not complete
 *
 * Leaves the rings empty and in their initial state; the queue is not live.
 */
void hsm_queue_quiesce(struct hsm_queue *q, u16 status)
{
	struct pci_dev *pdev = q->hdev->pdev;

	hsm_queue_set_live(q, false);
	if (q->irq_requested)
		disable_irq(pci_irq_vector(pdev, q->vector));
	hsm_queue_process(q);
	hsm_queue_abort_all(q, status);
	hsm_queue_reset_ring(q);
	if (q->irq_requested)
		enable_irq(pci_irq_vector(pdev, q->vector));
}

/* Say enough about a stuck queue to tell a lost interrupt from a dead card. */
static void hsm_queue_report_timeout(struct hsm_queue *q, u8 opcode,
				     unsigned int timeout_ms)
{
	struct hsm_dev *hdev = q->hdev;
	unsigned long flags;
	u16 st, tail, head;
	unsigned int inflight;

	spin_lock_irqsave(&q->lock, flags);
	tail = q->sq_tail;
	head = q->cq_head;
	inflight = q->inflight;
	st = le16_to_cpu(READ_ONCE(q->cqes[head].status));
	spin_unlock_irqrestore(&q->lock, flags);

	dev_err(&hdev->pdev->dev,
		"queue %u: opcode 0x%02x timed out after %u ms (sq_tail %u, cq_head %u, %u in flight, %s, CSTS 0x%x)\n",
		q->qid, opcode, timeout_ms, tail, head, inflight,
		HSM_CQE_PHASE(st) == q->cq_phase ? "completion pending" :
		"no completion", readl(hdev->bar + HSM_REG_CSTS));
}

static bool hsm_queue_has_room(struct hsm_queue *q)
{
	unsigned long flags;
	bool room;

	spin_lock_irqsave(&q->lock, flags);
	room = !q->live || q->inflight < q->depth - 1;
	spin_unlock_irqrestore(&q->lock, flags);
	return room;
}

struct hsm_sync_ctx {
	struct completion done;
	u16 status;
	u64 result;
};

static void hsm_sync_done(struct hsm_queue *q, void *ctx, u16 status,
			  u64 result)
{
	struct hsm_sync_ctx *s = ctx;

	s->status = status;
	s->result = result;
	complete(&s->done);
}

/**
 * hsm_submit_sync() - run one command and wait for it
 * @q:              queue
 * @sqe:            the command
 * @result:         receives the completion's result field (may be NULL)
 * @internal:       the caller brings the controller up or down and holds
 *                  the device's reset_lock (probe, reset, removal)
 *
 * Waits at most the command timeout for the card (for internal callers at
 * least the controller's CAP.TO, so that a short fault-injection timeout
 * cannot prevent recovery; for key generation at least
 * %HSM_KEYGEN_TIMEOUT_MS).  When the card
 * does not answer, the controller is reset and the command is failed with
 * -ETIMEDOUT once the reset has dropped it, so that buffers the command
 * references are never freed while the card may still use them.  Ordinary
 * callers schedule the reset work and wait for a reset in progress; internal
 * callers halt the controller themselves and never wait for a reset.
 *
 * Context: process context, may sleep.
 * Return: an HSM_SC_* status (>= 0) or a negative errno: -ETIMEDOUT,
 * -ENODEV (device removed), -EIO (device dead), -EAGAIN (not live).
 */
int hsm_submit_sync(struct hsm_queue *q, struct hsm_sqe *sqe, u64 *result,
		    bool internal)
{
	struct hsm_dev *hdev = q->hdev;
	unsigned int timeout_ms = hsm_cmd_timeout_ms();
	unsigned long timeout;

	/* Bring-up never gets less time than the controller may take. */
	if (internal)
		timeout_ms = max(timeout_ms, hdev->ctrl_to_ms);
	/*
	 * Generating a key searches for primes: an RSA-4096 key takes from
	 * under a second to tens of seconds on a busy card, a time with no
	 * useful bound.  A hung card is still found, later.
	 */
	if (q == &hdev->adminq && (sqe->opcode == HSM_ADM_KEY_GENERATE ||
				   sqe->opcode == HSM_ADM_KEY_ROTATE))
		timeout_ms = max(timeout_ms, HSM_KEYGEN_TIMEOUT_MS);
	timeout = msecs_to_jiffies(timeout_ms);
	unsigned long deadline;
	struct hsm_sync_ctx s;
	long left;
	int ret;

	deadline = jiffies + timeout;
	init_completion(&s.done);
	for (;;) {
		enum hsmcard_state state;

		ret = hsm_queue_submit(q, sqe, hsm_sync_done, &s);
		if (!ret)
			break;
		if (time_after_eq(jiffies, deadline))
			return -ETIMEDOUT;
		left = deadline - jiffies;
		if (ret == -EBUSY) {
			wait_event_timeout(q->space_wq, hsm_queue_has_room(q),
					   left);
			continue;
		}
		/* -EAGAIN: the queue is down; wait only for a reset. */
		if (internal)
			return ret;
		state = hsm_dev_state(hdev);
		if (READ_ONCE(hdev->removing))
			return -ENODEV;
		/*
		 * The reset may have finished between the failed submission
		 * and the state read: the queues are live again, so retry.
		 */
		if (state == HSMCARD_STATE_LIVE) {
			cond_resched();
			continue;
		}
		if (state != HSMCARD_STATE_RESETTING)
			return -EIO;
		wait_event_timeout(hdev->state_wq,
				   hsm_dev_state(hdev) != HSMCARD_STATE_RESETTING ||
				   READ_ONCE(hdev->removing), left);
	}

	left = wait_for_completion_timeout(&s.done, timeout);
	if (!left) {
		hsm_queue_report_timeout(q, sqe->opcode, timeout_ms);
		if (internal)
			hsm_ctrl_halt(hdev, HSM_SC_ABORTED);
		else
			hsm_schedule_reset(hdev, "command timeout");
		/* The reset (or removal) completes the command. */
		wait_for_completion(&s.done);
		return -ETIMEDOUT;
	}
	if (s.status == HSMCARD_SC_GONE)
		return -ENODEV;
	if (result)
		*result = s.result;
	return s.status;
}

/**
 * hsm_io_queue() - the I/O queue for the current CPU
 * @hdev: device
 *
 * Return: an I/O queue; never NULL (the device has at least one).
 */
struct hsm_queue *hsm_io_queue(struct hsm_dev *hdev)
{
	return &hdev->ioq[raw_smp_processor_id() % hdev->nr_ioq];
}

/**
 * hsm_status_to_errno() - map a card status to the documented errno
 * @status: HSM_SC_* status
 *
 * Documentation/hsmcard/uapi.rst lists the mapping.
 *
 * Return: 0 or a negative errno.
 */
int hsm_status_to_errno(u16 status)
{
	switch (status) {
	case HSM_SC_SUCCESS:
		return 0;
	case HSM_SC_INVALID_OPCODE:
	case HSM_SC_INVALID_MECH:
		return -EOPNOTSUPP;
	case HSM_SC_INVALID_FIELD:
	case HSM_SC_INVALID_LENGTH:
	case HSM_SC_INVALID_KEY_SIZE:
	case HSM_SC_INVALID_STATE:
	case HSM_SC_INVALID_TOKEN:
		return -EINVAL;
	case HSM_SC_BUFFER_TOO_SMALL:
		return -ENOSPC;
	case HSM_SC_INVALID_HANDLE:
		return -ENOKEY;
	case HSM_SC_KEY_TYPE:
		return -EKEYREJECTED;
	case HSM_SC_USE_DENIED:
	case HSM_SC_NOT_EXTRACTABLE:
		return -EACCES;
	case HSM_SC_KEYSTORE_FULL:
		return -EDQUOT;
	case HSM_SC_VERIFY_FAILED:
	case HSM_SC_DECRYPT_FAILED:
		return -EBADMSG;
	case HSM_SC_TAMPERED:
		return -ENOTRECOVERABLE;
	case HSM_SC_ABORTED:
		return -ECANCELED;
	case HSM_SC_PIN_INCORRECT:
		return -EACCES;
	case HSM_SC_PIN_LOCKED:
		return -EKEYREVOKED;
	case HSM_SC_PIN_NOT_SET:
		return -ENODATA;
	case HSM_SC_KEY_STATE:
		return -EKEYEXPIRED;
	case HSM_SC_KEY_COMPROMISED:
		return -EKEYREVOKED;
	case HSM_SC_LABEL_EXISTS:
	case HSM_SC_ID_EXISTS:
		return -EEXIST;
	case HSMCARD_SC_GONE:
		return -ENODEV;
	case HSM_SC_DATA_XFER:
	case HSM_SC_INVALID_QID:
	case HSM_SC_INVALID_QSIZE:
	case HSM_SC_INVALID_VECTOR:
	case HSM_SC_INVALID_SGL:
	case HSM_SC_RNG_FAILURE:
	case HSM_SC_INTERNAL:
	default:
		return -EIO;
	}
}
