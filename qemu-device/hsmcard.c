/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hsmcard: a PCIe hardware security module
 *
 * The device is glue around the firmware core (fw/hsm_fw.h): it exposes the
 * registers of driver/hsmcard_hw.h in BAR0, runs the admin queue on an admin
 * worker thread and the I/O queue pairs on I/O worker threads, moves data by
 * DMA to guest RAM only, and signals completions and events with MSI-X (BAR2).
 *
 * Locking: the registers belong to the main loop (BQL).  The state of every
 * queue, admin and I/O, is shared between the MMIO handlers and the workers
 * and protected by HsmCardState::lock.  The admin worker executes one admin
 * command at a time, in order; queue creation and deletion happen on it.
 * Workers never take the BQL and hold HsmCardState::lock only briefly (never
 * across a command): they hand interrupts to the main loop through bottom
 * halves, so the main loop may wait for them (reset, unrealize) while holding
 * the BQL.  A reset waits for the admin worker first, since an admin command
 * may create or delete I/O queues, and then for the I/O workers.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/rcu.h"
#include "qemu/atomic.h"
#include "qapi/error.h"
#include "exec/memory.h"
#include "hw/pci/pci.h"
#include "hw/pci/pcie.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "qom/object.h"
#include "sysemu/runstate.h"

#include "fw/hsm_fw.h"

#define TYPE_HSMCARD "hsmcard"
OBJECT_DECLARE_SIMPLE_TYPE(HsmCardState, HSMCARD)

#define HSM_CAP_TIMEOUT         20      /* x 100 ms */
#define HSM_MAX_WORKERS         64
#define HSM_MAX_KEYS_LIMIT      (1u << 20)
#define HSM_MSIX_TABLE_OFF      0
#define HSM_MSIX_PBA_OFF        0x800
#define HSM_MSIX_BAR_SIZE       0x1000
#define HSM_PCIE_CAP_OFF        0x80

QEMU_BUILD_BUG_ON(sizeof(struct hsm_sqe) != HSM_SQE_SIZE);
QEMU_BUILD_BUG_ON(sizeof(struct hsm_cqe) != HSM_CQE_SIZE);
/* The MSI-X table of the largest configuration must fit below the PBA. */
QEMU_BUILD_BUG_ON((HSM_MAX_IOQ + HSM_VEC_IO_FIRST) * PCI_MSIX_ENTRY_SIZE >
                  HSM_MSIX_PBA_OFF);

typedef struct HsmQueue {
    bool created;
    bool deleting;          /* workers take no more entries */
    uint16_t qid;
    uint16_t vector;
    uint32_t size;          /* entries in the SQ */
    uint32_t cq_size;       /* entries in the CQ */
    uint64_t sq_addr;
    uint64_t cq_addr;
    uint32_t sq_tail;       /* last SQ tail doorbell */
    uint32_t sq_head;       /* next entry to take */
    uint32_t cq_tail;       /* next CQ slot to write */
    uint32_t cq_head;       /* last CQ head doorbell */
    bool phase;             /* phase of the entries written now */
    uint32_t inflight;      /* taken, completion not written yet */
    uint32_t coal_pending;  /* completions without an interrupt yet */
    int64_t coal_first_ns;  /* when the first of them was written */
} HsmQueue;

struct HsmCardState {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    MemoryRegion msix_bar;

    /* properties */
    uint32_t num_queues;
    uint32_t queue_size;
    uint32_t nr_workers;
    uint32_t max_keys;
    uint32_t audit_high_water;
    char *keystore;
    char *serial;

    uint32_t nr_vectors;
    struct hsm_fw *fw;
    struct hsm_fw_host host;

    /* registers (BQL) */
    uint32_t cc;
    uint32_t csts;          /* RDY and CFS; TAMPER comes from the core */
    uint32_t aqa;
    uint64_t asq;
    uint64_t acq;
    uint32_t intcoal;       /* also read by workers: atomic */
    uint32_t evtsts;
    uint32_t evtmask;
    uint32_t health;
    uint32_t tamper_cnt;

    /* queues and workers, all under lock */
    QemuMutex lock;
    QemuCond work_cond;     /* I/O work may be available, or stopping */
    QemuCond admin_cond;    /* admin work may be available, or stopping */
    QemuCond idle_cond;     /* a queue's inflight dropped to zero */
    HsmQueue adminq;
    HsmQueue *ioq;          /* index = qid (0 unused) */
    uint32_t rr;            /* round-robin start for I/O workers */
    bool stopping;
    VMChangeStateEntry *vmstate_entry; /* seals the audit head on stop */
    QemuThread *workers;
    QemuThread admin_worker;

    QEMUBH *admin_irq_bh;
    QEMUBH *irq_bh;
    QEMUBH *audit_bh;       /* raises HSM_EVT_AUDIT from the main loop */
    QEMUTimer *coal_timer;
};

static uint32_t hsm_instances;

/* ---- DMA ---- */

/*
 * Copy between @buf and guest memory, refusing everything that is not
 * ordinary RAM (MMIO, ROM devices, RAM devices, holes), bus mastering
 * disabled, and address ranges that wrap.  Safe on any thread: it never
 * dispatches to a device, so it never needs the BQL.
 */
static int hsm_dma_rw(HsmCardState *s, uint64_t addr, void *buf, size_t len,
                      bool is_write)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    AddressSpace *as = pci_get_address_space(pdev);
    uint8_t *p = buf;

    if (!len) {
        return 0;
    }
    if (addr + len < addr || len > UINT32_MAX) {
        return -1;
    }
    if (!(pci_get_word(pdev->config + PCI_COMMAND) & PCI_COMMAND_MASTER)) {
        return -1;
    }

    while (len) {
        hwaddr xlat, plen = len;
        MemoryRegion *mr;
        MemTxResult res;

        RCU_READ_LOCK_GUARD();
        mr = address_space_translate(as, addr, &xlat, &plen, is_write,
                                     MEMTXATTRS_UNSPECIFIED);
        if (!memory_region_is_ram(mr) || memory_region_is_ram_device(mr) ||
            memory_region_is_romd(mr) || (is_write && mr->readonly)) {
            return -1;
        }
        if (!plen) {
            return -1;
        }
        plen = MIN(plen, len);
        res = address_space_rw(as, addr, MEMTXATTRS_UNSPECIFIED, p, plen,
                               is_write);
        if (res != MEMTX_OK) {
            return -1;
        }
        addr += plen;
        p += plen;
        len -= plen;
    }
    return 0;
}

static int hsm_host_dma_read(void *opaque, uint64_t addr, void *buf,
                             size_t len)
{
    return hsm_dma_rw(opaque, addr, buf, len, false);
}

static int hsm_host_dma_write(void *opaque, uint64_t addr, const void *buf,
                              size_t len)
{
    return hsm_dma_rw(opaque, addr, (void *)buf, len, true);
}

/* ---- queues ---- */

static uint32_t hsm_cq_used(const HsmQueue *q)
{
    return (q->cq_tail + q->cq_size - q->cq_head) % q->cq_size;
}

/* Room in the CQ for one more completion, counting taken entries. */
static bool hsm_cq_has_room(const HsmQueue *q)
{
    return hsm_cq_used(q) + q->inflight < q->cq_size - 1;
}

static void hsm_queue_init(HsmQueue *q, uint16_t qid, uint64_t sq_addr,
                           uint64_t cq_addr, uint32_t size, uint32_t cq_size,
                           uint16_t vector)
{
    memset(q, 0, sizeof(*q));
    q->created = true;
    q->qid = qid;
    q->sq_addr = sq_addr;
    q->cq_addr = cq_addr;
    q->size = size;
    q->cq_size = cq_size;
    q->vector = vector;
    q->phase = true;
}

/*
 * Write a completion for the entry taken from @q.  The status word, which
 * carries the phase bit, goes last so the host never sees a new phase with
 * stale contents.  Returns false if the CQ is not writable (the host loses
 * the completion, as it would on real hardware with a bad CQ address).
 */
static bool hsm_post_cqe(HsmCardState *s, HsmQueue *q, uint16_t sq_head,
                         uint16_t cid, uint16_t status, uint64_t result)
{
    struct hsm_cqe cqe = {
        .result = cpu_to_le64(result),
        .sq_head = cpu_to_le16(sq_head),
        .sq_id = cpu_to_le16(q->qid),
        .cid = cpu_to_le16(cid),
        .status = cpu_to_le16((uint16_t)(status << 1) | q->phase),
    };
    uint64_t addr = q->cq_addr + (uint64_t)q->cq_tail * HSM_CQE_SIZE;
    bool ok;

    ok = !hsm_dma_rw(s, addr, &cqe, offsetof(struct hsm_cqe, status), true);
    /* the entry body must be visible before its phase bit */
    smp_wmb();
    ok = ok && !hsm_dma_rw(s, addr + offsetof(struct hsm_cqe, status),
                           &cqe.status, sizeof(cqe.status), true);
    if (!ok) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: cannot write CQE of queue %u at 0x%" PRIx64
                      "\n", q->qid, addr);
    }
    q->cq_tail++;
    if (q->cq_tail == q->cq_size) {
        q->cq_tail = 0;
        q->phase = !q->phase;
    }
    return ok;
}

static void hsm_read_sqe(HsmCardState *s, const HsmQueue *q, uint32_t idx,
                         struct hsm_sqe *sqe, uint16_t *status)
{
    uint64_t addr = q->sq_addr + (uint64_t)idx * HSM_SQE_SIZE;

    *status = HSM_SC_SUCCESS;
    if (hsm_dma_rw(s, addr, sqe, sizeof(*sqe), false)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: cannot read SQE of queue %u at 0x%" PRIx64
                      "\n", q->qid, addr);
        memset(sqe, 0, sizeof(*sqe));
        sqe->cid = cpu_to_le16(0xffff);
        *status = HSM_SC_DATA_XFER;
    }
}

/* ---- interrupts ---- */

static void hsm_notify(HsmCardState *s, unsigned int vector)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    if (vector < s->nr_vectors && msix_enabled(pdev)) {
        msix_notify(pdev, vector);
    }
}

/*
 * Main loop: raise the interrupts of the I/O CQs whose coalescing threshold
 * or timeout has been reached, and arm the timer for the others.
 */
static void hsm_irq_process(void *opaque)
{
    HsmCardState *s = opaque;
    uint32_t coal = qatomic_read(&s->intcoal);
    uint32_t thr = MAX(HSM_INTCOAL_THR(coal), 1);
    int64_t delay = (int64_t)HSM_INTCOAL_TIME(coal) * 100 * SCALE_US;
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int64_t next = INT64_MAX;
    uint16_t vecs[HSM_MAX_IOQ];
    unsigned int nvec = 0, i;

    qemu_mutex_lock(&s->lock);
    for (i = 1; i <= s->num_queues; i++) {
        HsmQueue *q = &s->ioq[i];

        if (!q->created || !q->coal_pending) {
            continue;
        }
        if (q->coal_pending >= thr || now >= q->coal_first_ns + delay) {
            q->coal_pending = 0;
            vecs[nvec++] = q->vector;
        } else {
            next = MIN(next, q->coal_first_ns + delay);
        }
    }
    qemu_mutex_unlock(&s->lock);

    for (i = 0; i < nvec; i++) {
        hsm_notify(s, vecs[i]);
    }
    if (next != INT64_MAX) {
        timer_mod(s->coal_timer, next);
    }
}

static void hsm_raise_event(HsmCardState *s, uint32_t evt)
{
    s->evtsts |= evt;
    if (evt & ~s->evtmask) {
        hsm_notify(s, HSM_VEC_EVENT);
    }
}

/* Main loop: the audit log's unread records reached the high-water mark. */
static void hsm_audit_irq(void *opaque)
{
    hsm_raise_event(opaque, HSM_EVT_AUDIT);
}

/*
 * Firmware callback, on whichever thread appended the record and with the
 * log's lock held: only schedule the main-loop half.
 */
static void hsm_fw_audit_event(void *opaque)
{
    HsmCardState *s = opaque;

    qemu_bh_schedule(s->audit_bh);
}

/* ---- I/O workers ---- */

/* Next I/O queue with an entry to take and room for its completion. */
static HsmQueue *hsm_pick_ioq(HsmCardState *s)
{
    uint32_t n = s->num_queues, i;

    for (i = 0; i < n; i++) {
        HsmQueue *q = &s->ioq[1 + (s->rr + i) % n];

        if (q->created && !q->deleting && q->sq_head != q->sq_tail &&
            hsm_cq_has_room(q)) {
            s->rr = (s->rr + i + 1) % n;
            return q;
        }
    }
    return NULL;
}

static void *hsm_worker(void *opaque)
{
    HsmCardState *s = opaque;

    rcu_register_thread();
    qemu_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct hsm_sqe sqe;
        uint64_t result = 0;
        uint16_t status, sq_head;
        HsmQueue *q;
        uint32_t idx;

        q = hsm_pick_ioq(s);
        if (!q) {
            qemu_cond_wait(&s->work_cond, &s->lock);
            continue;
        }
        /*
         * Fetch the entry before the head moves past it, under the lock:
         * the host may reuse a slot once a later command has completed,
         * which another worker could make happen while this one had not
         * read its entry yet.  Entries are fetched in order, as the head
         * reported in the completions says.
         */
        idx = q->sq_head;
        hsm_read_sqe(s, q, idx, &sqe, &status);
        q->sq_head = (idx + 1) % q->size;
        sq_head = q->sq_head;
        q->inflight++;
        qemu_mutex_unlock(&s->lock);

        if (status == HSM_SC_SUCCESS) {
            status = hsm_fw_io(s->fw, &s->host, &sqe, &result);
        }

        qemu_mutex_lock(&s->lock);
        hsm_post_cqe(s, q, sq_head, le16_to_cpu(sqe.cid), status, result);
        if (!q->coal_pending++) {
            q->coal_first_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
        }
        qemu_bh_schedule(s->irq_bh);
        if (!--q->inflight && q->deleting) {
            qemu_cond_broadcast(&s->idle_cond);
        }
    }
    qemu_mutex_unlock(&s->lock);
    rcu_unregister_thread();
    return NULL;
}

/*
 * Stop taking entries from queue @q, wait for the commands already taken
 * and drop the queue.  Called with s->lock held (and the BQL, except for
 * DELETE_IOQ on the admin worker); the workers never need the BQL, so they
 * always get there.
 */
static void hsm_queue_drain_locked(HsmCardState *s, HsmQueue *q)
{
    q->deleting = true;
    while (q->inflight) {
        qemu_cond_wait(&s->idle_cond, &s->lock);
    }
    memset(q, 0, sizeof(*q));
}

static uint16_t hsm_host_create_ioq(void *opaque, uint16_t qid,
                                    uint64_t sq_addr, uint64_t cq_addr,
                                    uint32_t qsize, uint16_t vector)
{
    HsmCardState *s = opaque;
    HsmQueue *q;

    if (qid < 1 || qid > s->num_queues) {
        return HSM_SC_INVALID_QID;
    }
    if (qsize < HSM_MIN_QSIZE || qsize > s->queue_size) {
        return HSM_SC_INVALID_QSIZE;
    }
    if (vector < HSM_VEC_IO_FIRST || vector >= s->nr_vectors) {
        return HSM_SC_INVALID_VECTOR;
    }
    if (!sq_addr || !cq_addr || sq_addr % HSM_QUEUE_ALIGN ||
        cq_addr % HSM_QUEUE_ALIGN ||
        sq_addr + (uint64_t)qsize * HSM_SQE_SIZE < sq_addr ||
        cq_addr + (uint64_t)qsize * HSM_CQE_SIZE < cq_addr) {
        return HSM_SC_INVALID_FIELD;
    }

    qemu_mutex_lock(&s->lock);
    q = &s->ioq[qid];
    if (q->created) {
        qemu_mutex_unlock(&s->lock);
        return HSM_SC_INVALID_QID;
    }
    hsm_queue_init(q, qid, sq_addr, cq_addr, qsize, qsize, vector);
    qemu_mutex_unlock(&s->lock);
    return HSM_SC_SUCCESS;
}

static uint16_t hsm_host_delete_ioq(void *opaque, uint16_t qid)
{
    HsmCardState *s = opaque;

    if (qid < 1 || qid > s->num_queues) {
        return HSM_SC_INVALID_QID;
    }
    qemu_mutex_lock(&s->lock);
    if (!s->ioq[qid].created) {
        qemu_mutex_unlock(&s->lock);
        return HSM_SC_INVALID_QID;
    }
    hsm_queue_drain_locked(s, &s->ioq[qid]);
    qemu_mutex_unlock(&s->lock);
    return HSM_SC_SUCCESS;
}

/* ---- admin worker ---- */

/* Main loop: signal the admin CQ, on behalf of the admin worker. */
static void hsm_admin_irq(void *opaque)
{
    hsm_notify(opaque, HSM_VEC_ADMIN);
}

static bool hsm_admin_has_work(const HsmQueue *q)
{
    return q->created && !q->deleting && q->sq_head != q->sq_tail &&
           hsm_cq_has_room(q);
}

/*
 * Execute the admin queue's commands one at a time, in order, without the
 * BQL: a slow command (RSA key generation) must not stall the vCPUs.
 */
static void *hsm_admin_worker_fn(void *opaque)
{
    HsmCardState *s = opaque;
    HsmQueue *q = &s->adminq;

    rcu_register_thread();
    qemu_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct hsm_sqe sqe;
        uint64_t result = 0;
        uint16_t status, sq_head;
        uint32_t idx;

        if (!hsm_admin_has_work(q)) {
            qemu_cond_wait(&s->admin_cond, &s->lock);
            continue;
        }
        idx = q->sq_head;
        q->sq_head = (idx + 1) % q->size;
        sq_head = q->sq_head;
        q->inflight++;
        qemu_mutex_unlock(&s->lock);

        /* the queue stays as it is while inflight is not zero */
        hsm_read_sqe(s, q, idx, &sqe, &status);
        if (status == HSM_SC_SUCCESS) {
            status = hsm_fw_admin(s->fw, &s->host, &sqe, &result);
        }

        qemu_mutex_lock(&s->lock);
        /* a controller reset drops the completion of a running command */
        if (!q->deleting) {
            hsm_post_cqe(s, q, sq_head, le16_to_cpu(sqe.cid), status,
                         result);
            qemu_bh_schedule(s->admin_irq_bh);
        }
        if (!--q->inflight && q->deleting) {
            qemu_cond_broadcast(&s->idle_cond);
        }
    }
    qemu_mutex_unlock(&s->lock);
    rcu_unregister_thread();
    return NULL;
}

/* ---- controller ---- */

/*
 * Drop every queue and in-flight command; keys live on in the core.  The
 * running admin command, if any, is waited for before the I/O queues, as it
 * may create or delete some.  Neither kind of worker needs the BQL.
 */
static void hsm_ctrl_reset(HsmCardState *s)
{
    uint32_t i;

    qemu_mutex_lock(&s->lock);
    if (s->adminq.created) {
        hsm_queue_drain_locked(s, &s->adminq);
    }
    for (i = 1; i <= s->num_queues; i++) {
        if (s->ioq[i].created) {
            hsm_queue_drain_locked(s, &s->ioq[i]);
        }
    }
    qemu_mutex_unlock(&s->lock);

    /* no worker posts completions any more: drop pending interrupts */
    qemu_bh_cancel(s->admin_irq_bh);
    timer_del(s->coal_timer);
    s->csts = 0;
}

static bool hsm_range_overlap(uint64_t a, uint64_t alen, uint64_t b,
                              uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static void hsm_ctrl_enable(HsmCardState *s)
{
    uint32_t sqs = HSM_AQA_ASQS(s->aqa) + 1;
    uint32_t cqs = HSM_AQA_ACQS(s->aqa) + 1;
    uint32_t max = MIN(s->queue_size, HSM_MAX_QSIZE);
    const char *why = NULL;

    if (sqs < HSM_MIN_QSIZE || sqs > max || cqs < HSM_MIN_QSIZE ||
        cqs > max) {
        why = "admin queue size";
    } else if (!s->asq || !s->acq || s->asq % HSM_QUEUE_ALIGN ||
               s->acq % HSM_QUEUE_ALIGN) {
        why = "admin queue address";
    } else if (s->asq + (uint64_t)sqs * HSM_SQE_SIZE < s->asq ||
               s->acq + (uint64_t)cqs * HSM_CQE_SIZE < s->acq ||
               hsm_range_overlap(s->asq, (uint64_t)sqs * HSM_SQE_SIZE,
                                 s->acq, (uint64_t)cqs * HSM_CQE_SIZE)) {
        why = "admin queue range";
    }
    if (why) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: enable refused: bad %s (AQA 0x%x ASQ 0x%"
                      PRIx64 " ACQ 0x%" PRIx64 ")\n", why, s->aqa, s->asq,
                      s->acq);
        s->csts |= HSM_CSTS_CFS;
        return;
    }

    qemu_mutex_lock(&s->lock);
    hsm_queue_init(&s->adminq, HSM_ADMIN_QID, s->asq, s->acq, sqs, cqs,
                   HSM_VEC_ADMIN);
    qemu_mutex_unlock(&s->lock);
    s->csts = HSM_CSTS_RDY;
}

static void hsm_write_cc(HsmCardState *s, uint32_t val)
{
    bool was = s->cc & HSM_CC_EN, now = val & HSM_CC_EN;

    if (val & ~HSM_CC_EN) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: reserved CC bits 0x%x ignored\n",
                      val & ~HSM_CC_EN);
    }
    s->cc = val & HSM_CC_EN;
    if (!was && now) {
        hsm_ctrl_enable(s);
    } else if (was && !now) {
        hsm_ctrl_reset(s);
    }
}

static uint32_t hsm_csts(HsmCardState *s)
{
    return s->csts | (hsm_fw_tampered(s->fw) ? HSM_CSTS_TAMPER : 0);
}

static uint32_t hsm_health(HsmCardState *s)
{
    if (s->health == HSM_HEALTH_FAILED) {
        return s->health;
    }
    return hsm_fw_tampered(s->fw) ? HSM_HEALTH_TAMPERED : HSM_HEALTH_OK;
}

static uint64_t hsm_cap(HsmCardState *s)
{
    return HSM_CAP_MKMQES(s->queue_size - 1) |
           HSM_CAP_MKMAXQ(s->num_queues) |
           HSM_CAP_MKTO(HSM_CAP_TIMEOUT) |
           HSM_CAP_MKNVEC(s->nr_vectors);
}

static uint32_t hsm_reg_read32(HsmCardState *s, hwaddr off)
{
    switch (off) {
    case HSM_REG_CAP:
        return hsm_cap(s);
    case HSM_REG_CAP + 4:
        return hsm_cap(s) >> 32;
    case HSM_REG_VS:
        return HSM_VS_CURRENT;
    case HSM_REG_CC:
        return s->cc;
    case HSM_REG_CSTS:
        return hsm_csts(s);
    case HSM_REG_AQA:
        return s->aqa;
    case HSM_REG_ASQ:
        return s->asq;
    case HSM_REG_ASQ + 4:
        return s->asq >> 32;
    case HSM_REG_ACQ:
        return s->acq;
    case HSM_REG_ACQ + 4:
        return s->acq >> 32;
    case HSM_REG_INTCOAL:
        return qatomic_read(&s->intcoal);
    case HSM_REG_EVTSTS:
        return s->evtsts;
    case HSM_REG_EVTMASK:
        return s->evtmask;
    case HSM_REG_HEALTH:
        return hsm_health(s);
    case HSM_REG_TAMPER_CNT:
        return s->tamper_cnt;
    case HSM_REG_AUDIT_UNREAD:
        return hsm_fw_audit_unread(s->fw);
    case HSM_REG_AUDIT_HWM:
        return hsm_fw_audit_high_water(s->fw);
    default:
        return 0;   /* reserved and doorbells read as zero */
    }
}

static bool hsm_access_ok(hwaddr off, unsigned int size, bool write)
{
    if ((size != 4 && size != 8) || off % size) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: ignored %u-byte %s at BAR0 0x%" HWADDR_PRIx
                      "\n", size, write ? "write" : "read", off);
        return false;
    }
    return true;
}

static uint64_t hsm_mmio_read(void *opaque, hwaddr off, unsigned int size)
{
    HsmCardState *s = opaque;
    uint64_t val;

    if (!hsm_access_ok(off, size, false)) {
        return 0;
    }
    val = hsm_reg_read32(s, off);
    if (size == 8) {
        val |= (uint64_t)hsm_reg_read32(s, off + 4) << 32;
    }
    return val;
}

static void hsm_doorbell(HsmCardState *s, hwaddr off, uint32_t val)
{
    uint32_t idx = (off - HSM_REG_DBS) / 4;
    uint32_t qid = idx / 2;
    bool cq = idx & 1;
    HsmQueue *q;

    if (!(s->csts & HSM_CSTS_RDY)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: doorbell 0x%" HWADDR_PRIx
                      " rung while not ready\n", off);
        return;
    }
    if (qid > s->num_queues) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: doorbell of nonexistent queue %u\n", qid);
        return;
    }

    qemu_mutex_lock(&s->lock);
    q = qid == HSM_ADMIN_QID ? &s->adminq : &s->ioq[qid];
    if (!q->created || q->deleting) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: doorbell of queue %u, not created\n", qid);
        goto out;
    }
    if (val >= (cq ? q->cq_size : q->size)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: %s doorbell %u of queue %u out of range\n",
                      cq ? "CQ head" : "SQ tail", val, qid);
        goto out;
    }
    if (cq) {
        /* the head may only move over entries the card has written */
        if ((val + q->cq_size - q->cq_head) % q->cq_size > hsm_cq_used(q)) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "hsmcard: CQ head %u of queue %u beyond tail %u\n",
                          val, qid, q->cq_tail);
            goto out;
        }
        q->cq_head = val;
    } else {
        q->sq_tail = val;
    }

    /* a new entry, or room in the CQ for a waiting one */
    if (qid == HSM_ADMIN_QID) {
        qemu_cond_signal(&s->admin_cond);
    } else {
        qemu_cond_broadcast(&s->work_cond);
    }
out:
    qemu_mutex_unlock(&s->lock);
}

static void hsm_reg_write32(HsmCardState *s, hwaddr off, uint32_t val)
{
    bool enabled = s->cc & HSM_CC_EN;

    if (off >= HSM_REG_DBS) {
        hsm_doorbell(s, off, val);
        return;
    }
    switch (off) {
    case HSM_REG_CC:
        hsm_write_cc(s, val);
        return;
    case HSM_REG_AQA:
    case HSM_REG_ASQ:
    case HSM_REG_ASQ + 4:
    case HSM_REG_ACQ:
    case HSM_REG_ACQ + 4:
        if (enabled) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "hsmcard: admin queue register 0x%" HWADDR_PRIx
                          " written while enabled\n", off);
            return;
        }
        break;
    }

    switch (off) {
    case HSM_REG_AQA:
        s->aqa = val & (HSM_AQA_MK(0xfff, 0xfff));
        break;
    case HSM_REG_ASQ:
        s->asq = deposit64(s->asq, 0, 32, val);
        break;
    case HSM_REG_ASQ + 4:
        s->asq = deposit64(s->asq, 32, 32, val);
        break;
    case HSM_REG_ACQ:
        s->acq = deposit64(s->acq, 0, 32, val);
        break;
    case HSM_REG_ACQ + 4:
        s->acq = deposit64(s->acq, 32, 32, val);
        break;
    case HSM_REG_INTCOAL:
        qatomic_set(&s->intcoal, val & HSM_INTCOAL_MK(0xff, 0xff));
        qemu_bh_schedule(s->irq_bh);
        break;
    case HSM_REG_EVTSTS:
        s->evtsts &= ~val;
        break;
    case HSM_REG_EVTMASK: {
        uint32_t unmasked = s->evtmask & ~val;

        s->evtmask = val & (HSM_EVT_TAMPER | HSM_EVT_HEALTH | HSM_EVT_FATAL |
                            HSM_EVT_AUDIT);
        if (s->evtsts & unmasked) {
            hsm_notify(s, HSM_VEC_EVENT);
        }
        break;
    }
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: write 0x%x to read-only or reserved register"
                      " 0x%" HWADDR_PRIx "\n", val, off);
        break;
    }
}

static void hsm_mmio_write(void *opaque, hwaddr off, uint64_t val,
                           unsigned int size)
{
    HsmCardState *s = opaque;

    if (!hsm_access_ok(off, size, true)) {
        return;
    }
    if (size == 8 && off >= HSM_REG_DBS) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "hsmcard: 8-byte doorbell write at 0x%" HWADDR_PRIx
                      " ignored\n", off);
        return;
    }
    hsm_reg_write32(s, off, val);
    if (size == 8) {
        hsm_reg_write32(s, off + 4, val >> 32);
    }
}

static const MemoryRegionOps hsm_mmio_ops = {
    .read = hsm_mmio_read,
    .write = hsm_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    /* let every access through, so that bad ones are logged and ignored */
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
};

/* ---- tamper (QOM property, set from the monitor) ---- */

static bool hsm_get_tamper(Object *obj, Error **errp)
{
    HsmCardState *s = HSMCARD(obj);

    return s->fw && hsm_fw_tampered(s->fw);
}

static void hsm_set_tamper(Object *obj, bool value, Error **errp)
{
    HsmCardState *s = HSMCARD(obj);

    if (!value) {
        return;     /* only a re-initialization clears tamper */
    }
    if (!s->fw) {
        error_setg(errp, "hsmcard: device is not realized");
        return;
    }
    hsm_fw_tamper(s->fw);
    s->tamper_cnt++;
    hsm_raise_event(s, HSM_EVT_TAMPER);
}

/* ---- PCI plumbing ---- */

static void hsm_reset(DeviceState *dev)
{
    HsmCardState *s = HSMCARD(dev);

    hsm_ctrl_reset(s);
    s->cc = 0;
    s->aqa = 0;
    s->asq = 0;
    s->acq = 0;
    qatomic_set(&s->intcoal, 0);
    s->evtsts = 0;
    s->evtmask = 0;
}

static void hsm_write_config(PCIDevice *pdev, uint32_t addr, uint32_t val,
                             int len)
{
    pci_default_write_config(pdev, addr, val, len);
    pcie_cap_flr_write_config(pdev, addr, val, len);
}

static bool hsm_check_props(HsmCardState *s, Error **errp)
{
    size_t i;

    if (s->num_queues < 1 || s->num_queues > HSM_MAX_IOQ) {
        error_setg(errp, "hsmcard: num-queues must be 1..%d", HSM_MAX_IOQ);
        return false;
    }
    if (s->queue_size < HSM_MIN_QSIZE || s->queue_size > HSM_MAX_QSIZE) {
        error_setg(errp, "hsmcard: queue-size must be %d..%d",
                   HSM_MIN_QSIZE, HSM_MAX_QSIZE);
        return false;
    }
    if (s->nr_workers < 1 || s->nr_workers > HSM_MAX_WORKERS) {
        error_setg(errp, "hsmcard: workers must be 1..%d", HSM_MAX_WORKERS);
        return false;
    }
    if (s->max_keys < 1 || s->max_keys > HSM_MAX_KEYS_LIMIT) {
        error_setg(errp, "hsmcard: max-keys must be 1..%u",
                   HSM_MAX_KEYS_LIMIT);
        return false;
    }
    if (s->audit_high_water < 1 || s->audit_high_water > INT32_MAX) {
        error_setg(errp, "hsmcard: audit-high-water must be 1..%d",
                   INT32_MAX);
        return false;
    }
    if (s->serial) {
        size_t len = strlen(s->serial);

        if (!len || len >= sizeof(((struct hsm_identify *)0)->serial)) {
            error_setg(errp, "hsmcard: serial must be 1..31 characters");
            return false;
        }
        for (i = 0; i < len; i++) {
            if (!g_ascii_isgraph(s->serial[i])) {
                error_setg(errp, "hsmcard: serial must be printable ASCII");
                return false;
            }
        }
    }
    if (s->keystore && !*s->keystore) {
        error_setg(errp, "hsmcard: keystore path is empty");
        return false;
    }
    return true;
}

/* Stop the worker threads; each finishes the command it is running. */
static void hsm_join_workers(HsmCardState *s)
{
    uint32_t i;

    qemu_mutex_lock(&s->lock);
    s->stopping = true;
    qemu_cond_broadcast(&s->work_cond);
    qemu_cond_broadcast(&s->admin_cond);
    qemu_mutex_unlock(&s->lock);
    qemu_thread_join(&s->admin_worker);
    for (i = 0; i < s->nr_workers; i++) {
        qemu_thread_join(&s->workers[i]);
    }
}

/*
 * The VM stops: the guest powered off, QEMU quits, or the VM is paused.
 * QEMU does not unrealize devices when it exits, so this is where the card
 * gets its orderly stop: seal the audit log's head into the key store, so
 * that records written since the last checkpoint cannot be cut off
 * unnoticed (only a killed QEMU gets no such chance).  Not later, from an
 * exit notifier: OpenSSL has cleaned up by then.  The card keeps working,
 * for a paused VM that resumes; the seal is the same store write that key
 * creation does, safe beside commands still finishing.
 */
static void hsm_vm_state_change(void *opaque, bool running, RunState state)
{
    HsmCardState *s = opaque;

    if (!running) {
        hsm_fw_stop(s->fw);
    }
}

static void hsm_realize(PCIDevice *pdev, Error **errp)
{
    HsmCardState *s = HSMCARD(pdev);
    struct hsm_fw_config cfg = { 0 };
    char *fw_err = NULL;
    uint32_t i;
    int ret;

    if (!hsm_check_props(s, errp)) {
        return;
    }
    if (!s->serial) {
        s->serial = g_strdup_printf("HSM%07u", ++hsm_instances);
    }
    s->nr_vectors = s->num_queues + HSM_VEC_IO_FIRST;

    cfg.serial = s->serial;
    cfg.keystore_path = s->keystore;
    cfg.max_ioq = s->num_queues;
    cfg.max_qsize = s->queue_size;
    cfg.max_keys = s->max_keys;
    cfg.nr_vectors = s->nr_vectors;
    cfg.audit_high_water = s->audit_high_water;
    cfg.audit_event = hsm_fw_audit_event;
    cfg.opaque = s;
    /* the records of the card's start count too */
    s->audit_bh = qemu_bh_new(hsm_audit_irq, s);
    s->fw = hsm_fw_new(&cfg, &fw_err);
    if (!s->fw) {
        error_setg(errp, "hsmcard: %s", fw_err ? fw_err : "firmware failed");
        free(fw_err);
        qemu_bh_delete(s->audit_bh);
        return;
    }
    s->host.opaque = s;
    s->host.dma_read = hsm_host_dma_read;
    s->host.dma_write = hsm_host_dma_write;
    s->host.create_ioq = hsm_host_create_ioq;
    s->host.delete_ioq = hsm_host_delete_ioq;

    pci_config_set_interrupt_pin(pdev->config, 0);
    memory_region_init_io(&s->mmio, OBJECT(s), &hsm_mmio_ops, s,
                          "hsmcard-regs", HSM_BAR0_SIZE);
    pci_register_bar(pdev, HSM_BAR_REGS, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->mmio);

    memory_region_init(&s->msix_bar, OBJECT(s), "hsmcard-msix",
                       HSM_MSIX_BAR_SIZE);
    ret = msix_init(pdev, s->nr_vectors, &s->msix_bar, HSM_BAR_MSIX,
                    HSM_MSIX_TABLE_OFF, &s->msix_bar, HSM_BAR_MSIX,
                    HSM_MSIX_PBA_OFF, 0, errp);
    if (ret) {
        goto err_fw;
    }
    pci_register_bar(pdev, HSM_BAR_MSIX, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->msix_bar);
    for (i = 0; i < s->nr_vectors; i++) {
        msix_vector_use(pdev, i);
    }

    ret = pcie_endpoint_cap_init(pdev, HSM_PCIE_CAP_OFF);
    if (ret < 0) {
        error_setg(errp, "hsmcard: cannot add the PCIe capability");
        goto err_msix;
    }
    pcie_cap_flr_init(pdev);

    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->work_cond);
    qemu_cond_init(&s->admin_cond);
    qemu_cond_init(&s->idle_cond);
    s->ioq = g_new0(HsmQueue, s->num_queues + 1);
    s->admin_irq_bh = qemu_bh_new(hsm_admin_irq, s);
    s->irq_bh = qemu_bh_new(hsm_irq_process, s);
    s->coal_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL, hsm_irq_process, s);

    s->workers = g_new0(QemuThread, s->nr_workers);
    for (i = 0; i < s->nr_workers; i++) {
        qemu_thread_create(&s->workers[i], "hsmcard-worker", hsm_worker, s,
                           QEMU_THREAD_JOINABLE);
    }
    qemu_thread_create(&s->admin_worker, "hsmcard-admin",
                       hsm_admin_worker_fn, s, QEMU_THREAD_JOINABLE);
    s->vmstate_entry = qemu_add_vm_change_state_handler(hsm_vm_state_change,
                                                        s);
    return;

err_msix:
    msix_uninit(pdev, &s->msix_bar, &s->msix_bar);
err_fw:
    hsm_fw_free(s->fw);
    s->fw = NULL;
    qemu_bh_delete(s->audit_bh);
}

static void hsm_exit(PCIDevice *pdev)
{
    HsmCardState *s = HSMCARD(pdev);

    qemu_del_vm_change_state_handler(s->vmstate_entry);
    hsm_ctrl_reset(s);
    hsm_join_workers(s);
    g_free(s->workers);

    timer_free(s->coal_timer);
    qemu_bh_delete(s->irq_bh);
    qemu_bh_delete(s->admin_irq_bh);
    g_free(s->ioq);
    qemu_cond_destroy(&s->idle_cond);
    qemu_cond_destroy(&s->admin_cond);
    qemu_cond_destroy(&s->work_cond);
    qemu_mutex_destroy(&s->lock);

    msix_uninit(pdev, &s->msix_bar, &s->msix_bar);
    hsm_fw_free(s->fw);
    s->fw = NULL;
    qemu_bh_delete(s->audit_bh);
}

static Property hsm_props[] = {
    DEFINE_PROP_UINT32("num-queues", HsmCardState, num_queues, 4),
    DEFINE_PROP_UINT32("queue-size", HsmCardState, queue_size, 1024),
    DEFINE_PROP_UINT32("workers", HsmCardState, nr_workers, 2),
    DEFINE_PROP_UINT32("max-keys", HsmCardState, max_keys, 4096),
    DEFINE_PROP_UINT32("audit-high-water", HsmCardState, audit_high_water,
                       HSM_FW_AUDIT_HIGH_WATER),
    DEFINE_PROP_STRING("keystore", HsmCardState, keystore),
    DEFINE_PROP_STRING("serial", HsmCardState, serial),
    DEFINE_PROP_END_OF_LIST(),
};

static const VMStateDescription hsm_vmstate = {
    .name = TYPE_HSMCARD,
    .unmigratable = 1,
};

static void hsm_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = hsm_realize;
    k->exit = hsm_exit;
    k->config_write = hsm_write_config;
    k->vendor_id = HSM_PCI_VENDOR_ID;
    k->device_id = HSM_PCI_DEVICE_ID;
    k->revision = HSM_PCI_REVISION;
    k->class_id = HSM_PCI_CLASS >> 8;

    dc->desc = "hsmcard PCIe hardware security module";
    dc->reset = hsm_reset;
    dc->vmsd = &hsm_vmstate;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    device_class_set_props(dc, hsm_props);

    object_class_property_add_bool(klass, "tamper", hsm_get_tamper,
                                   hsm_set_tamper);
    object_class_property_set_description(klass, "tamper",
        "Set to true to simulate a tamper event (zeroizes the card)");
}

static const TypeInfo hsm_info = {
    .name = TYPE_HSMCARD,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(HsmCardState),
    .class_init = hsm_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void hsm_register_types(void)
{
    type_register_static(&hsm_info);
}

type_init(hsm_register_types)
