/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hsmcard driver: internal definitions shared by the driver's files.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSMCARD_H
#define HSMCARD_H

#include <linux/completion.h>
#include <linux/dma-mapping.h>
#include <linux/hw_random.h>
#include <linux/kfifo.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "hsmcard_hw.h"
#include "../uapi/hsmcard.h"

#define HSMCARD_DRV_NAME	"hsmcard"

/* Admin queue depth; I/O queue depth comes from a module parameter. */
#define HSMCARD_ADMIN_DEPTH	32

/*
 * Driver-internal status passed to completion callbacks for commands that
 * never reached the card's completion queue.  Outside the 15-bit range of
 * card statuses, so it cannot be confused with one.
 */
#define HSMCARD_SC_GONE		0x8002	/* device removed */

struct hsm_dev;
struct hsm_queue;

/**
 * typedef hsm_done_fn - completion callback of a submitted command
 * @q:      the queue the command ran on
 * @ctx:    the context given to hsm_queue_submit()
 * @status: HSM_SC_* card status, HSM_SC_ABORTED for commands dropped by a
 *          controller reset, or HSMCARD_SC_GONE on removal
 * @result: the completion's result field (0 if the card did not answer)
 *
 * Called exactly once per accepted command, from hard interrupt context or
 * from the reset/teardown path, with no driver lock held.  It must not
 * sleep.
 */
typedef void (*hsm_done_fn)(struct hsm_queue *q, void *ctx, u16 status,
			    u64 result);

/* An action applied to every queue of a device, see hsm_ctrl_halt(). */
typedef void (*hsm_queue_fn)(struct hsm_queue *q, u16 status);

/**
 * struct hsm_cmd_slot - one command id of a queue
 * @done: callback, NULL when the waiter abandoned the command
 * @ctx:  callback context
 */
struct hsm_cmd_slot {
	hsm_done_fn done;
	void *ctx;
	unsigned long start;	/* jiffies at submission, for the watchdog */
};

/**
 * struct hsm_queue_stats - counters shown in debugfs
 * @submitted: commands written to the submission queue
 * @completed: completions received from the card
 * @errors:    completions with a non-success status
 * @busy:      submissions refused because the queue was full
 * @bad_cqe:   completions with an unknown or idle command id
 * @aborted:   commands failed by reset or teardown
 */
struct hsm_queue_stats {
	u64 submitted;
	u64 completed;
	u64 errors;
	u64 busy;
	u64 bad_cqe;
	u64 aborted;
};

/**
 * struct hsm_queue - a submission/completion queue pair
 * @hdev:     owning device
 * @qid:      queue id (0 = admin)
 * @depth:    entries per queue
 * @vector:   MSI-X vector of the completion queue
 * @lock:     protects the submission side, the command table and @live
 * @sqes:     submission queue (coherent DMA memory)
 * @cqes:     completion queue (coherent DMA memory)
 * @sq_dma:   bus address of @sqes
 * @cq_dma:   bus address of @cqes
 * @sq_tail:  next free submission entry
 * @db_tail:  the value last written to the SQ tail doorbell
 * @sq_head:  submission entries consumed by the card (from completions)
 * @cq_head:  next completion entry to look at
 * @cq_phase: phase bit value of new completions
 * @inflight: command ids in use
 * @live:     accepting submissions
 * @cmds:     command table, indexed by command id
 * @cid_map:  allocated command ids
 * @space_wq: woken when a command id becomes free or the queue changes state
 * @stats:    counters
 * @irq_requested: the MSI-X handler is installed
 */
struct hsm_queue {
	struct hsm_dev *hdev;
	u16 qid;
	u16 depth;
	u16 vector;
	spinlock_t lock; /* submission side, command table, live */
	struct hsm_sqe *sqes;
	struct hsm_cqe *cqes;
	dma_addr_t sq_dma;
	dma_addr_t cq_dma;
	u16 sq_tail;
	u16 db_tail;
	u16 sq_head;
	u16 cq_head;
	u8 cq_phase;
	u16 inflight;
	bool live;
	struct hsm_cmd_slot *cmds;
	unsigned long *cid_map;
	wait_queue_head_t space_wq;
	struct hsm_queue_stats stats;
	bool irq_requested;
};

/**
 * struct hsm_limits - validated IDENTIFY data
 * @serial:        serial number
 * @model:         model name
 * @fw_rev:        firmware revision
 * @card_id:       random card identifier
 * @max_ioq:       I/O queue pairs
 * @max_qsize:     entries per queue
 * @max_xfer:      bytes per buffer
 * @max_sge:       SGL entries per buffer
 * @max_keys:      key store capacity
 * @nr_keys:       keys held when identified
 * @mechs:         supported mechanisms
 * @key_types:     supported key types
 * @nr_partitions: key partitions
 */
struct hsm_limits {
	char serial[32];
	char model[32];
	char fw_rev[16];
	u8 card_id[16];
	u32 max_ioq;
	u32 max_qsize;
	u32 max_xfer;
	u32 max_sge;
	u32 max_keys;
	u32 nr_keys;
	u64 mechs;
	u32 key_types;
	u32 nr_partitions;
};

/**
 * struct hsm_event - an event waiting to go out on netlink
 * @event:   enum hsmcard_event
 * @arg:     new state, key handle, or unread audit records
 * @time_ns: when it happened (CLOCK_REALTIME)
 * @part:    LOGIN_FAILED: partition (U32_MAX: the card administrator)
 * @role:    LOGIN_FAILED: enum hsmcard_role
 * @tries:   LOGIN_FAILED: tries left (U32_MAX: locked, none reported)
 * @mark:    AUDIT_HIGH_WATER: the card's high-water mark
 * @pid:     LOGIN_FAILED: caller's thread group id (initial namespace)
 * @uid:     LOGIN_FAILED: caller's uid (initial user namespace)
 * @locked:  LOGIN_FAILED: the role is locked
 */
struct hsm_event {
	u32 event;
	u64 arg;
	u64 time_ns;
	u32 part;
	u32 role;
	u32 tries;
	u32 mark;
	u32 pid;
	u32 uid;
	bool locked;
};

/**
 * struct hsm_dev - one card
 * @pdev:        PCI device (NULL once removed)
 * @bar:         BAR0 mapping
 * @cap:         CAP register
 * @vs:          VS register
 * @id:          instance number (the N of /dev/hsmcardN)
 * @name:        "hsmcardN"
 * @rng_name:    hwrng name
 * @misc:        character device
 * @rng:         hwrng
 * @kref:        references: the PCI binding and every open file
 * @gone_sem:    readers: ioctls using the hardware; writer: removal
 * @gone:        the PCI device has been removed (under @gone_sem)
 * @state_lock:  protects @state and @removing
 * @state:       enum hsmcard_state
 * @removing:    removal started: no reset may be scheduled
 * @state_wq:    woken on state changes
 * @reset_work:  controller reset and recovery
 * @reset_lock:  serialises controller bring-up/teardown
 * @resets:      controller resets performed
 * @ctrl_to_ms:  enable/disable handshake timeout (CAP.TO)
 * @intcoal:     INTCOAL register value, written at every enable (under
 *               @reset_lock)
 * @limits:      IDENTIFY data
 * @adminq:      admin queue
 * @ioq:         I/O queues (@nr_ioq entries, qid = index + 1)
 * @nr_ioq:      I/O queues in use
 * @io_depth:    entries per I/O queue
 * @nr_vecs:     MSI-X vectors allocated
 * @rng_ok:      hwrng registered
 * @misc_ok:     character device registered
 * @dbg:         debugfs directory
 * @genl_node:   entry in the netlink family's card list
 * @evt_lock:    protects @evt_fifo, @evt_lost and @evt_closed
 * @evt_fifo:    events not yet sent
 * @evt_lost:    events dropped because @evt_fifo was full
 * @evt_closed:  the card is gone: drop new events
 * @evt_work:    sends the queued events
 * @p0_state:    partition 0: HSM_P0_UNKNOWN, HSM_P0_OPEN (no PIN: usable
 *               without login) or HSM_P0_LOCKED (atomic)
 * @part_gen:    per partition, bumped when it is deleted (or the card
 *               re-initialized): logins made before are void
 */
struct hsm_dev {
	struct pci_dev *pdev;
	void __iomem *bar;
	u64 cap;
	u32 vs;
	int id;
	char name[24];
	char rng_name[24];
	struct miscdevice misc;
	struct hwrng rng;
	struct kref kref;
	struct rw_semaphore gone_sem;
	bool gone;
	spinlock_t state_lock; /* state, removing */
	enum hsmcard_state state;
	bool removing;
	wait_queue_head_t state_wq;
	struct work_struct reset_work;
	struct delayed_work watchdog;
	struct mutex reset_lock; /* controller bring-up and teardown */
	unsigned int resets;
	unsigned int ctrl_to_ms;
	u32 intcoal;
	struct hsm_limits limits;
	struct hsm_queue adminq;
	struct hsm_queue *ioq;
	unsigned int nr_ioq;
	unsigned int io_depth;
	unsigned int nr_vecs;
	bool rng_ok;
	bool misc_ok;
	struct dentry *dbg;
	struct list_head genl_node;
	spinlock_t evt_lock; /* evt_fifo, evt_lost, evt_closed */
	DECLARE_KFIFO(evt_fifo, struct hsm_event, 32);
	u32 evt_lost;
	bool evt_closed;
	struct work_struct evt_work;
	atomic_t p0_state;
	atomic_t part_gen[HSM_NR_PARTITIONS];
};

#define HSM_P0_UNKNOWN	0
#define HSM_P0_OPEN	1
#define HSM_P0_LOCKED	2

/**
 * struct hsm_session - state of one open /dev/hsmcardN file
 * @hdev:      card (a reference is held)
 * @lock:      protects @partition, @role and @gen
 * @partition: partition logged into (meaningful when @role is set)
 * @role:      enum hsm_role; HSM_ROLE_NONE: not logged in
 * @gen:       hdev->part_gen[@partition] at login
 */
struct hsm_session {
	struct hsm_dev *hdev;
	struct mutex lock; /* partition, role, gen */
	u32 partition;
	u16 role;
	int gen;
};

/* hsm_ring_setup() @partition: the ring may use no key at all */
#define HSM_RING_NO_KEYS	U32_MAX

/**
 * struct hsm_buf - a kernel bounce buffer the card reaches by DMA
 * @dev:     device the buffer is mapped for
 * @dir:     DMA direction
 * @len:     bytes
 * @npages:  pages in @pages
 * @pages:   backing pages
 * @sgt:     scatter table of @pages
 * @nents:   mapped entries of @sgt
 * @sgl:     card-format SGL when @nents > 1 (coherent memory)
 * @sgl_dma: bus address of @sgl
 * @mapped:  @sgt is DMA mapped
 *
 * Built from order-0 pages so any size up to max_xfer is allocated without
 * high-order allocations; the card sees one flat buffer or an SGL.
 */
struct hsm_buf {
	struct device *dev;
	enum dma_data_direction dir;
	size_t len;
	unsigned int npages;
	struct page **pages;
	struct sg_table sgt;
	int nents;
	struct hsm_sge *sgl;
	dma_addr_t sgl_dma;
	bool mapped;
};

/* hsmcard_queue.c */
int hsm_queue_alloc(struct hsm_dev *hdev, struct hsm_queue *q, u16 qid,
		    u16 depth, u16 vector);
void hsm_queue_free(struct hsm_queue *q);
void hsm_queue_reset_ring(struct hsm_queue *q);
void hsm_queue_set_live(struct hsm_queue *q, bool live);
unsigned int hsm_queue_abort_all(struct hsm_queue *q, u16 status);
void hsm_queue_quiesce(struct hsm_queue *q, u16 status);
int __hsm_queue_submit(struct hsm_queue *q, const struct hsm_sqe *sqe,
		       hsm_done_fn done, void *ctx, bool kick);
void hsm_queue_kick(struct hsm_queue *q);

/**
 * hsm_queue_submit() - queue one command and tell the card
 * @q:    queue
 * @sqe:  the command; its cid is filled in here
 * @done: completion callback (required)
 * @ctx:  callback context
 *
 * Context: any; does not sleep.
 * Return: as __hsm_queue_submit().
 */
static inline int hsm_queue_submit(struct hsm_queue *q,
				   const struct hsm_sqe *sqe,
				   hsm_done_fn done, void *ctx)
{
	return __hsm_queue_submit(q, sqe, done, ctx, true);
}

bool hsm_queue_stuck(struct hsm_queue *q, unsigned long timeout);
irqreturn_t hsm_queue_irq(int irq, void *data);
int hsm_submit_sync(struct hsm_queue *q, struct hsm_sqe *sqe, u64 *result,
		    bool internal);
struct hsm_queue *hsm_io_queue(struct hsm_dev *hdev);
int hsm_status_to_errno(u16 status);

/* hsmcard_buf.c */
int hsm_buf_alloc(struct hsm_buf *b, struct device *dev, size_t len,
		  enum dma_data_direction dir);
void hsm_buf_free(struct hsm_buf *b);
int hsm_buf_copy_from_user(struct hsm_buf *b, size_t off,
			   const void __user *src, size_t len);
int hsm_buf_copy_to_user(const struct hsm_buf *b, void __user *dst,
			 size_t len);
void hsm_buf_copy_from_kernel(struct hsm_buf *b, size_t off, const void *src,
			      size_t len);
void hsm_buf_copy_to_kernel(const struct hsm_buf *b, void *dst, size_t len);
int hsm_buf_map(struct hsm_buf *b);
void hsm_buf_unmap(struct hsm_buf *b);
void hsm_buf_sqe_src(const struct hsm_buf *b, struct hsm_sqe *sqe);
void hsm_buf_sqe_dst(const struct hsm_buf *b, struct hsm_sqe *sqe);

/* hsmcard_main.c */
void hsm_dev_put(struct hsm_dev *hdev);
unsigned int hsm_cmd_timeout_ms(void);
/* the least time a key generation (or rotation) command is given */
#define HSM_KEYGEN_TIMEOUT_MS	300000U
void hsm_schedule_reset(struct hsm_dev *hdev, const char *why);
void hsm_ctrl_halt(struct hsm_dev *hdev, u16 status);
enum hsmcard_state hsm_dev_state(struct hsm_dev *hdev);
int hsm_identify(struct hsm_dev *hdev, struct hsm_limits *lim, bool internal);

/* hsmcard_genl.c */
void hsm_genl_event(struct hsm_dev *hdev, enum hsmcard_event event, u64 arg);
void hsm_genl_login_failed(struct hsm_dev *hdev, u32 part, u16 role,
			   u16 status, u64 tries_left);
void hsm_genl_audit_high_water(struct hsm_dev *hdev, u32 unread, u32 mark);
void hsm_genl_init_dev(struct hsm_dev *hdev);
void hsm_genl_add_card(struct hsm_dev *hdev);
void hsm_genl_remove_card(struct hsm_dev *hdev);
int hsm_genl_register(void);
void hsm_genl_unregister(void);

/* hsmcard_cdev.c */
int hsm_cdev_register(struct hsm_dev *hdev);
void hsm_cdev_unregister(struct hsm_dev *hdev);

/* hsmcard_token.c */
int hsm_token_create(struct hsm_dev *hdev, unsigned int bits,
		     const char *label, u64 *handle, u8 *token);
int hsm_token_open(struct hsm_dev *hdev, const u8 *token, u64 *handle,
		   struct hsm_key_attrs *attrs);
int hsm_token_destroy(struct hsm_dev *hdev, const u8 *token);

/* hsmcard_crypto.c */
int hsm_crypto_register(struct hsm_dev *hdev);
void hsm_crypto_unregister(struct hsm_dev *hdev);
void hsm_crypto_exit(void);

/* hsmcard_ring.c */
int hsm_ring_setup(struct hsm_dev *hdev, void __user *argp, u32 partition);
void hsm_ring_dev_gone(struct hsm_dev *hdev);

#endif /* HSMCARD_H */
