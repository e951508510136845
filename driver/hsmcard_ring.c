// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: command rings shared with user space.
 *
 * HSMCARD_IOC_RING_SETUP pins a buffer arena of the caller's memory, maps it
 * for the card once, and returns a ring file.  Its mapping holds a header,
 * a submission ring of struct hsmcard_ring_sqe and a completion ring of
 * struct hsmcard_ring_cqe.  HSMCARD_IOC_RING_SUBMIT copies each new entry
 * out of the shared page once, checks it, and builds the card's command
 * from the arena's bus addresses: user space names offsets, never an
 * address.  Entries that fail the checks complete at once with their own
 * error.  Completions are written by the queue's interrupt handler.
 *
 * A job that is accepted always gets a completion slot: the number of jobs
 * in flight plus unread completions never exceeds the ring size, so the
 * completion ring cannot overflow.  The submission path allocates nothing
 * and pins nothing; it takes the ring's own locks and the I/O queue's lock.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/anon_inodes.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/nospec.h>
#include <linux/poll.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "hsmcard.h"

/* SGL entries per job buffer: bounds the coherent memory of a ring. */
#define HSM_RING_SGE		32

#define HSM_RING_KEY		BIT(0)	/* needs a user key handle */
#define HSM_RING_IV		BIT(1)	/* may carry an IV, GCM AAD */
#define HSM_RING_HASHED		BIT(2)	/* may be PREHASHED, PSS salt */
#define HSM_RING_IN		BIT(3)	/* has an input */
#define HSM_RING_OUT_IN		BIT(4)	/* the output is an input too */

struct hsm_ring_opdesc {
	u8 opcode;
	u8 props;
};

static const struct hsm_ring_opdesc hsm_ring_ops[HSMCARD_RING_OP_MAX] = {
	[HSMCARD_RING_OP_ENCRYPT] = {
		HSM_IO_ENCRYPT, HSM_RING_KEY | HSM_RING_IV | HSM_RING_IN },
	[HSMCARD_RING_OP_DECRYPT] = {
		HSM_IO_DECRYPT, HSM_RING_KEY | HSM_RING_IV | HSM_RING_IN },
	[HSMCARD_RING_OP_DIGEST] = { HSM_IO_DIGEST, HSM_RING_IN },
	[HSMCARD_RING_OP_MAC] = { HSM_IO_MAC, HSM_RING_KEY | HSM_RING_IN },
	[HSMCARD_RING_OP_MAC_VERIFY] = {
		HSM_IO_MAC_VERIFY,
		HSM_RING_KEY | HSM_RING_IN | HSM_RING_OUT_IN },
	[HSMCARD_RING_OP_SIGN] = {
		HSM_IO_SIGN, HSM_RING_KEY | HSM_RING_HASHED | HSM_RING_IN },
	[HSMCARD_RING_OP_VERIFY] = {
		HSM_IO_VERIFY,
		HSM_RING_KEY | HSM_RING_HASHED | HSM_RING_IN |
		HSM_RING_OUT_IN },
	[HSMCARD_RING_OP_RANDOM] = { HSM_IO_GET_RANDOM, 0 },
};

struct hsm_ring;

/**
 * struct hsm_ring_job - a job slot, preallocated at setup
 * @ring:    owning ring
 * @cookie:  user cookie
 * @out_off: output offset in the arena
 * @out_len: output capacity
 * @out_in:  the output is an input (verify)
 * @id:      index in the ring's job table
 * @sgl:     2 x nsge card SGL entries (source, then destination)
 * @sgl_dma: bus address of @sgl
 */
struct hsm_ring_job {
	struct hsm_ring *ring;
	u64 cookie;
	u32 out_off;
	u32 out_len;
	bool out_in;
	u16 id;
	struct hsm_sge *sgl;
	dma_addr_t sgl_dma;
};

/**
 * struct hsm_ring - a ring file
 * @hdev:        card (a reference is held)
 * @partition:   partition whose keys the jobs may name (that of the
 *               creating file at setup), or HSM_RING_NO_KEYS
 * @dev:         DMA device (a reference is held)
 * @mm:          address space of the creator (grabbed)
 * @submit_lock: serialises submitters
 * @lock:        completion side: @cq_tail, @inflight, @free_ids
 * @wq:          woken on every completion
 * @evfd:        eventfd signalled on every completion, or NULL (under
 *               @lock)
 * @mem:         vmalloc_user() memory shared with user space
 * @mem_len:     bytes of @mem
 * @hdr:         header in @mem
 * @sqes:        submission entries in @mem
 * @cqes:        completion entries in @mem
 * @entries:     SQ = CQ size (power of two)
 * @sq_head:     private SQ head (under @submit_lock)
 * @posted:      completions promised so far (under @submit_lock)
 * @cq_tail:     private CQ tail
 * @inflight:    jobs the card holds
 * @nr_free:     entries in @free_ids
 * @free_ids:    free job slots
 * @jobs:        job table
 * @chunks:      coherent pages holding the jobs' SGLs
 * @chunk_dma:   their bus addresses
 * @nr_chunks:   pages in @chunks
 * @nsge:        SGL entries per job buffer
 * @max_job_len: largest input or output of a job
 * @arena_len:   bytes in the arena
 * @npages:      pages in the arena
 * @pages:       pinned arena pages
 * @page_dma:    bus address of each arena page
 * @sgt:         scatter table of @pages
 * @mapped:      @sgt is DMA mapped
 * @pinned:      pages pinned in @pages
 * @accounted:   @npages charged to @mm's locked_vm
 * @node:        entry in hsm_rings
 */
struct hsm_ring {
	struct hsm_dev *hdev;
	u32 partition;
	struct device *dev;
	struct mm_struct *mm;
	struct mutex submit_lock; /* sq_head, posted, submissions */
	spinlock_t lock; /* cq_tail, inflight, free_ids */
	wait_queue_head_t wq;
	struct eventfd_ctx *evfd;
	void *mem;
	size_t mem_len;
	struct hsmcard_ring_hdr *hdr;
	struct hsmcard_ring_sqe *sqes;
	struct hsmcard_ring_cqe *cqes;
	u32 entries;
	u32 sq_head;
	u32 posted;
	u32 cq_tail;
	u32 inflight;
	u32 nr_free;
	u16 *free_ids;
	struct hsm_ring_job *jobs;
	void **chunks;
	dma_addr_t *chunk_dma;
	unsigned int nr_chunks;
	unsigned int nsge;
	u32 max_job_len;
	u64 arena_len;
	unsigned long npages;
	struct page **pages;
	dma_addr_t *page_dma;
	struct sg_table sgt;
	bool mapped;
	unsigned long pinned;
	bool accounted;
	struct list_head node;
};

/*
 * Every ring, so that removal of a card can take back the DMA mappings of
 * its rings while their files are still open.  Taken at setup, release and
 * removal only, never per job.
 */
static DEFINE_MUTEX(hsm_rings_lock);
static LIST_HEAD(hsm_rings);

static void hsm_eventfd_signal(struct eventfd_ctx *ctx)
{
#ifdef HSM_HAVE_EVENTFD_SIGNAL_1
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

/* Write one completion.  Called with ring->lock held. */
static void hsm_ring_post(struct hsm_ring *ring, u64 cookie, s32 status,
			  u32 len)
{
	struct hsmcard_ring_cqe *cqe;

	cqe = &ring->cqes[ring->cq_tail & (ring->entries - 1)];
	WRITE_ONCE(cqe->cookie, cookie);
	WRITE_ONCE(cqe->status, status);
	WRITE_ONCE(cqe->len, len);
	ring->cq_tail++;
	/* Pairs with user space's load-acquire of cq_tail. */
	smp_store_release(&ring->hdr->cq_tail, ring->cq_tail);
	/* Under the lock: release() frees the ring once it sees it idle. */
	wake_up_all(&ring->wq);
	if (ring->evfd)
		hsm_eventfd_signal(ring->evfd);
}

/* Sync an arena range, one call per bus-contiguous run. */
static void hsm_ring_sync(struct hsm_ring *ring, u32 off, u32 len,
			  bool for_dev)
{
	dma_addr_t start = 0;
	size_t run = 0;

	while (len) {
		u32 in_pg = off & ~PAGE_MASK;
		u32 n = min_t(u32, len, PAGE_SIZE - in_pg);
		dma_addr_t a = ring->page_dma[off >> PAGE_SHIFT] + in_pg;

		if (run && start + run == a) {
			run += n;
		} else {
			if (run && for_dev)
				dma_sync_single_for_device(ring->dev, start, run,
							   DMA_BIDIRECTIONAL);
			else if (run)
				dma_sync_single_for_cpu(ring->dev, start, run,
							DMA_BIDIRECTIONAL);
			start = a;
			run = n;
		}
		off += n;
		len -= n;
	}
	if (run && for_dev)
		dma_sync_single_for_device(ring->dev, start, run,
					   DMA_BIDIRECTIONAL);
	else if (run)
		dma_sync_single_for_cpu(ring->dev, start, run,
					DMA_BIDIRECTIONAL);
}

static void hsm_ring_done(struct hsm_queue *q, void *ctx, u16 status,
			  u64 result)
{
	struct hsm_ring_job *job = ctx;
	struct hsm_ring *ring = job->ring;
	unsigned long flags;
	s32 err = hsm_status_to_errno(status);
	u32 len = 0;

	if (!job->out_in) {
		if (!err && result > job->out_len) {
			dev_err_ratelimited(ring->dev,
					    "ring: card reported %llu bytes for %u\n",
					    result, job->out_len);
			err = -EIO;
		} else if (!err) {
			len = result;
		} else if (status == HSM_SC_BUFFER_TOO_SMALL) {
			len = min_t(u64, result, U32_MAX);
		}
		if (job->out_len)
			hsm_ring_sync(ring, job->out_off, job->out_len, false);
	}

	spin_lock_irqsave(&ring->lock, flags);
	ring->free_ids[ring->nr_free++] = job->id;
	ring->inflight--;
	hsm_ring_post(ring, job->cookie, err, len);
	spin_unlock_irqrestore(&ring->lock, flags);
}

/*
 * Describe arena bytes [off, off + len) for the card: one flat address, or
 * an SGL in @sgl.  The caller checked the range and len <= max_job_len, so
 * it spans at most nsge pages.
 */
static void hsm_ring_buf(const struct hsm_ring *ring, u32 off, u32 len,
			 struct hsm_sge *sgl, dma_addr_t sgl_dma,
			 __le64 *addr, __le16 *nsge, bool *is_sgl)
{
	unsigned int n = 0;
	dma_addr_t end = 0;

	*is_sgl = false;
	*addr = 0;
	*nsge = 0;
	if (!len)
		return;
	while (len) {
		u32 in_pg = off & ~PAGE_MASK;
		u32 chunk = min_t(u32, len, PAGE_SIZE - in_pg);
		dma_addr_t a = ring->page_dma[off >> PAGE_SHIFT] + in_pg;

		if (n && end == a) {
			sgl[n - 1].len = cpu_to_le32(le32_to_cpu(sgl[n - 1].len) +
						     chunk);
		} else {
			sgl[n].addr = cpu_to_le64(a);
			sgl[n].len = cpu_to_le32(chunk);
			sgl[n].rsvd = 0;
			n++;
		}
		end = a + chunk;
		off += chunk;
		len -= chunk;
	}
	if (n == 1) {
		*addr = sgl[0].addr;
		return;
	}
	*is_sgl = true;
	*addr = cpu_to_le64(sgl_dma);
	*nsge = cpu_to_le16(n);
}

static bool hsm_ring_range_ok(const struct hsm_ring *ring, u32 off, u32 len)
{
	return (u64)off + len <= ring->arena_len;
}

/* Check a job copied out of the ring.  Returns 0 or the job's errno. */
static int hsm_ring_check(const struct hsm_ring *ring,
			  const struct hsmcard_ring_sqe *s)
{
	const struct hsm_ring_opdesc *d;

	if (!s->opcode || s->opcode >= HSMCARD_RING_OP_MAX)
		return -EOPNOTSUPP;
	d = &hsm_ring_ops[array_index_nospec(s->opcode, HSMCARD_RING_OP_MAX)];
	if ((s->flags & ~HSMCARD_RING_F_ALL) || s->rsvd0 || s->rsvd1)
		return -EINVAL;
	if ((s->flags & HSMCARD_RING_F_PREHASHED) &&
	    !(d->props & HSM_RING_HASHED))
		return -EINVAL;
	if (s->opcode == HSMCARD_RING_OP_RANDOM) {
		if (s->mech || s->mparam || !s->out_len)
			return -EINVAL;
	} else if (!s->mech || s->mech >= HSMCARD_MECH_MAX) {
		return -EINVAL;
	}
	if (d->props & HSM_RING_KEY) {
		/* A file that may use no key: refused outright. */
		if (ring->partition == HSM_RING_NO_KEYS)
			return -EACCES;
		/* Another partition's handle looks like no key at all. */
		if (!s->handle ||
		    HSM_HANDLE_PART(s->handle) != ring->partition)
			return -ENOKEY;
	} else if (s->handle) {
		return -EINVAL;
	}
	if (!(d->props & HSM_RING_IV) && memchr_inv(s->iv, 0, sizeof(s->iv)))
		return -EINVAL;
	if (s->aux) {
		if (s->mech == HSMCARD_MECH_AES_GCM &&
		    (d->props & HSM_RING_IV)) {
			if (s->aux > s->in_len)
				return -EINVAL;
		} else if (s->mech != HSMCARD_MECH_RSA_PSS ||
			   !(d->props & HSM_RING_HASHED)) {
			return -EINVAL;
		}
	}
	if (!(d->props & HSM_RING_IN) && (s->in_off || s->in_len))
		return -EINVAL;
	if (s->in_len > ring->max_job_len || s->out_len > ring->max_job_len)
		return -E2BIG;
	if (!hsm_ring_range_ok(ring, s->in_off, s->in_len) ||
	    !hsm_ring_range_ok(ring, s->out_off, s->out_len))
		return -ERANGE;
	/* The card does not work in place; two inputs may overlap. */
	if (!(d->props & HSM_RING_OUT_IN) && s->in_len && s->out_len &&
	    (u64)s->in_off < (u64)s->out_off + s->out_len &&
	    (u64)s->out_off < (u64)s->in_off + s->in_len)
		return -EINVAL;
	return 0;
}

/* Build the card's command for a checked job. */
static void hsm_ring_build(struct hsm_ring *ring,
			   const struct hsmcard_ring_sqe *s,
			   struct hsm_ring_job *job, struct hsm_sqe *hw)
{
	const struct hsm_ring_opdesc *d =
		&hsm_ring_ops[array_index_nospec(s->opcode, HSMCARD_RING_OP_MAX)];
	struct hsm_sge *dsgl = job->sgl + ring->nsge;
	dma_addr_t dsgl_dma = job->sgl_dma + ring->nsge * sizeof(*dsgl);
	bool sgl;

	memset(hw, 0, sizeof(*hw));
	hw->opcode = d->opcode;
	if (s->flags & HSMCARD_RING_F_PREHASHED)
		hw->flags |= HSM_SQE_F_PREHASHED;
	hw->mech = cpu_to_le16(s->mech);
	hw->mparam = cpu_to_le16(s->mparam);
	hw->handle = cpu_to_le64(s->handle);
	hw->aux = cpu_to_le32(s->aux);
	memcpy(hw->iv, s->iv, sizeof(hw->iv));

	hsm_ring_buf(ring, s->in_off, s->in_len, job->sgl, job->sgl_dma,
		     &hw->src, &hw->src_nsge, &sgl);
	if (sgl)
		hw->flags |= HSM_SQE_F_SRC_SGL;
	hw->src_len = cpu_to_le32(s->in_len);
	hsm_ring_buf(ring, s->out_off, s->out_len, dsgl, dsgl_dma,
		     &hw->dst, &hw->dst_nsge, &sgl);
	if (sgl)
		hw->flags |= HSM_SQE_F_DST_SGL;
	hw->dst_len = cpu_to_le32(s->out_len);

	job->cookie = s->cookie;
	job->out_off = s->out_off;
	job->out_len = s->out_len;
	job->out_in = d->props & HSM_RING_OUT_IN;

	if (s->in_len)
		hsm_ring_sync(ring, s->in_off, s->in_len, true);
	if (s->out_len)
		hsm_ring_sync(ring, s->out_off, s->out_len, true);
}

static long hsm_ring_submit(struct hsm_ring *ring, unsigned long count)
{
	struct hsm_dev *hdev = ring->hdev;
	u32 mask = ring->entries - 1;
	struct hsmcard_ring_sqe s;
	struct hsm_ring_job *job;
	struct hsm_queue *q;
	struct hsm_sqe hw;
	u32 tail, cq_head;
	long done = 0;
	long ret = 0;
	int err;

	if (current->mm != ring->mm)
		return -EACCES;
	down_read(&hdev->gone_sem);
	if (hdev->gone || READ_ONCE(hdev->removing)) {
		up_read(&hdev->gone_sem);
		return -ENODEV;
	}
	mutex_lock(&ring->submit_lock);
	/* Pairs with user space's store-release of sq_tail. */
	tail = smp_load_acquire(&ring->hdr->sq_tail);
	cq_head = READ_ONCE(ring->hdr->cq_head);
	if (tail - ring->sq_head > ring->entries ||
	    ring->posted - cq_head > ring->entries) {
		ret = -EINVAL;
		goto out;
	}
	count = min_t(unsigned long, count, tail - ring->sq_head);
	q = hsm_io_queue(hdev);

	while (done < count) {
		/* No completion slot left: wait for user space to reap. */
		if (ring->posted - cq_head >= ring->entries)
			break;
		/* Copy the entry once; only the copy is looked at. */
		memcpy(&s, &ring->sqes[ring->sq_head & mask], sizeof(s));
		barrier();

		err = hsm_ring_check(ring, &s);
		if (err) {
			spin_lock_irq(&ring->lock);
			hsm_ring_post(ring, s.cookie, err, 0);
			spin_unlock_irq(&ring->lock);
			ring->sq_head++;
			ring->posted++;
			done++;
			continue;
		}

		spin_lock_irq(&ring->lock);
		if (!ring->nr_free) {
			/* Only when user space moved cq_head too far. */
			spin_unlock_irq(&ring->lock);
			break;
		}
		job = &ring->jobs[ring->free_ids[--ring->nr_free]];
		ring->inflight++;
		spin_unlock_irq(&ring->lock);

		hsm_ring_build(ring, &s, job, &hw);
		/* One doorbell for the whole batch, below. */
		err = __hsm_queue_submit(q, &hw, hsm_ring_done, job, false);
		if (err) {
			spin_lock_irq(&ring->lock);
			ring->free_ids[ring->nr_free++] = job->id;
			ring->inflight--;
			wake_up_all(&ring->wq);
			spin_unlock_irq(&ring->lock);
			/* -EBUSY: queue full, user space retries. */
			if (err == -EAGAIN && !done)
				ret = hsm_dev_state(hdev) == HSMCARD_STATE_DEAD ?
					-EIO : -EAGAIN;
			break;
		}
		ring->sq_head++;
		ring->posted++;
		done++;
	}
	hsm_queue_kick(q);
	/* Consumed entries may be reused from now on. */
	smp_store_release(&ring->hdr->sq_head, ring->sq_head);
	if (!ret)
		ret = done;
out:
	mutex_unlock(&ring->submit_lock);
	up_read(&hdev->gone_sem);
	return ret;
}

/*
 * HSMCARD_IOC_RING_EVENTFD: completions also signal @uarg's eventfd (one
 * count per completion), or no eventfd with -1.
 */
static int hsm_ring_set_eventfd(struct hsm_ring *ring, s32 __user *uarg)
{
	struct eventfd_ctx *ctx = NULL, *old;
	s32 fd;

	if (get_user(fd, uarg))
		return -EFAULT;
	if (fd != -1) {
		if (fd < 0)
			return -EBADF;
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	spin_lock_irq(&ring->lock);
	old = ring->evfd;
	ring->evfd = ctx;
	spin_unlock_irq(&ring->lock);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

static long hsm_ring_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	struct hsm_ring *ring = file->private_data;

	switch (cmd) {
	case HSMCARD_IOC_RING_SUBMIT:
		return hsm_ring_submit(ring, arg);
	case HSMCARD_IOC_RING_EVENTFD:
		return hsm_ring_set_eventfd(ring, (s32 __user *)arg);
	default:
		return -ENOTTY;
	}
}

static __poll_t hsm_ring_poll(struct file *file, poll_table *wait)
{
	struct hsm_ring *ring = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &ring->wq, wait);
	/*
	 * Under the lock, so that a completion counts only once user space
	 * can see it: hsm_ring_post() moves the private tail first and
	 * publishes it next, and a vCPU or CPU preempted in between must not
	 * make poll() report data that is not there yet.
	 */
	spin_lock_irq(&ring->lock);
	if (ring->cq_tail != READ_ONCE(ring->hdr->cq_head))
		mask |= EPOLLIN | EPOLLRDNORM;
	spin_unlock_irq(&ring->lock);
	return mask;
}

static int hsm_ring_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct hsm_ring *ring = file->private_data;

	if (current->mm != ring->mm)
		return -EACCES;
	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != ring->mem_len ||
	    !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/* A forked child gets no mapping; the ring stays its creator's. */
#ifdef HSM_HAVE_VM_FLAGS_SET
	vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
#else
	vma->vm_flags |= VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP;
#endif
	return remap_vmalloc_range(vma, ring->mem, 0);
}

static bool hsm_ring_idle(struct hsm_ring *ring)
{
	return !READ_ONCE(ring->inflight);
}

/* Give back what the device maps; the ring must be idle. */
static void hsm_ring_release_dma(struct hsm_ring *ring)
{
	unsigned int i;

	if (ring->mapped)
		dma_unmap_sgtable(ring->dev, &ring->sgt, DMA_BIDIRECTIONAL, 0);
	ring->mapped = false;
	for (i = 0; ring->chunks && i < ring->nr_chunks; i++) {
		if (ring->chunks[i])
			dma_free_coherent(ring->dev, PAGE_SIZE, ring->chunks[i],
					  ring->chunk_dma[i]);
		ring->chunks[i] = NULL;
	}
}

static void hsm_ring_free(struct hsm_ring *ring)
{
	mutex_lock(&hsm_rings_lock);
	list_del_init(&ring->node);
	hsm_ring_release_dma(ring);
	mutex_unlock(&hsm_rings_lock);
	if (ring->sgt.sgl)
		sg_free_table(&ring->sgt);
	if (ring->pinned)
		unpin_user_pages_dirty_lock(ring->pages, ring->pinned, true);
	if (ring->accounted)
		account_locked_vm(ring->mm, ring->npages, false);
	kvfree(ring->pages);
	kvfree(ring->page_dma);
	kfree(ring->chunks);
	kfree(ring->chunk_dma);
	kfree(ring->jobs);
	kfree(ring->free_ids);
	vfree(ring->mem);
	if (ring->mm)
		mmdrop(ring->mm);
	if (ring->evfd)
		eventfd_ctx_put(ring->evfd);
	put_device(ring->dev);
	hsm_dev_put(ring->hdev);
	kfree(ring);
}

/*
 * The last reference to the ring file is gone, mappings included.  The card
 * may still write into the arena for jobs in flight: wait for them (a
 * controller reset or removal completes whatever the card does not) before
 * the arena is unmapped and unpinned.
 */
static int hsm_ring_release(struct inode *inode, struct file *file)
{
	struct hsm_ring *ring = file->private_data;
	unsigned long timeout = msecs_to_jiffies(hsm_cmd_timeout_ms());

	if (!wait_event_timeout(ring->wq, hsm_ring_idle(ring), timeout)) {
		hsm_schedule_reset(ring->hdev, "ring jobs stuck at close");
		wait_event(ring->wq, hsm_ring_idle(ring));
	}
	/* Let the last completion leave its critical section. */
	spin_lock_irq(&ring->lock);
	spin_unlock_irq(&ring->lock);
	hsm_ring_free(ring);
	return 0;
}

/**
 * hsm_ring_dev_gone() - take back the DMA mappings of a removed card's rings
 * @hdev: card; hsm_ctrl_halt() has completed every command and @hdev->gone
 *        is set, so no submission can start any more
 *
 * The rings' files stay open; their memory (kernel pages) stays mapped and
 * holds the completions, every further submission fails with -ENODEV.  The
 * arenas stay pinned until the files are released.
 *
 * Context: process context, may sleep.
 */
void hsm_ring_dev_gone(struct hsm_dev *hdev)
{
	struct hsm_ring *ring;

	mutex_lock(&hsm_rings_lock);
	list_for_each_entry(ring, &hsm_rings, node) {
		if (ring->hdev != hdev)
			continue;
		wait_event(ring->wq, hsm_ring_idle(ring));
		/* Let the last completion leave its critical section. */
		spin_lock_irq(&ring->lock);
		spin_unlock_irq(&ring->lock);
		hsm_ring_release_dma(ring);
	}
	mutex_unlock(&hsm_rings_lock);
}

static const struct file_operations hsm_ring_fops = {
	.owner		= THIS_MODULE,
	.release	= hsm_ring_release,
	.unlocked_ioctl	= hsm_ring_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= hsm_ring_mmap,
	.poll		= hsm_ring_poll,
	.llseek		= noop_llseek,
};

static int hsm_ring_alloc_jobs(struct hsm_ring *ring)
{
	size_t job_sgl = 2 * ring->nsge * sizeof(struct hsm_sge);
	unsigned int per_chunk = PAGE_SIZE / job_sgl;
	unsigned int i;

	ring->jobs = kcalloc(ring->entries, sizeof(*ring->jobs), GFP_KERNEL);
	ring->free_ids = kcalloc(ring->entries, sizeof(*ring->free_ids),
				 GFP_KERNEL);
	ring->nr_chunks = DIV_ROUND_UP(ring->entries, per_chunk);
	ring->chunks = kcalloc(ring->nr_chunks, sizeof(*ring->chunks),
			       GFP_KERNEL);
	ring->chunk_dma = kcalloc(ring->nr_chunks, sizeof(*ring->chunk_dma),
				  GFP_KERNEL);
	if (!ring->jobs || !ring->free_ids || !ring->chunks || !ring->chunk_dma)
		return -ENOMEM;
	for (i = 0; i < ring->nr_chunks; i++) {
		ring->chunks[i] = dma_alloc_coherent(ring->dev, PAGE_SIZE,
						     &ring->chunk_dma[i],
						     GFP_KERNEL);
		if (!ring->chunks[i])
			return -ENOMEM;
	}
	for (i = 0; i < ring->entries; i++) {
		struct hsm_ring_job *job = &ring->jobs[i];
		unsigned int c = i / per_chunk, k = i % per_chunk;

		job->ring = ring;
		job->id = i;
		job->sgl = ring->chunks[c] + k * job_sgl;
		job->sgl_dma = ring->chunk_dma[c] + k * job_sgl;
		/* Pop order: job 0 first. */
		ring->free_ids[i] = ring->entries - 1 - i;
	}
	ring->nr_free = ring->entries;
	return 0;
}

/* Pin the arena, map it once, and note each page's bus address. */
static int hsm_ring_pin_arena(struct hsm_ring *ring, u64 uaddr)
{
	struct scatterlist *sg;
	unsigned long p = 0;
	long got;
	int ret, i;

	ring->npages = ring->arena_len >> PAGE_SHIFT;
	ret = account_locked_vm(ring->mm, ring->npages, true);
	if (ret)
		return ret;
	ring->accounted = true;

	ring->pages = kvmalloc_array(ring->npages, sizeof(*ring->pages),
				     GFP_KERNEL);
	ring->page_dma = kvmalloc_array(ring->npages, sizeof(*ring->page_dma),
					GFP_KERNEL);
	if (!ring->pages || !ring->page_dma)
		return -ENOMEM;
	while (ring->pinned < ring->npages) {
		got = pin_user_pages_fast(uaddr + (ring->pinned << PAGE_SHIFT),
					  ring->npages - ring->pinned,
					  FOLL_WRITE | FOLL_LONGTERM,
					  ring->pages + ring->pinned);
		if (got <= 0)
			return got ? got : -EFAULT;
		ring->pinned += got;
	}
	ret = sg_alloc_table_from_pages(&ring->sgt, ring->pages, ring->npages,
					0, ring->arena_len, GFP_KERNEL);
	if (ret)
		return ret;
	ret = dma_map_sgtable(ring->dev, &ring->sgt, DMA_BIDIRECTIONAL, 0);
	if (ret)
		return ret;
	ring->mapped = true;
	for_each_sgtable_dma_sg(&ring->sgt, sg, i) {
		dma_addr_t a = sg_dma_address(sg);
		unsigned int len = sg_dma_len(sg), off;

		/* Page-aligned pages map to page-aligned runs. */
		if (!PAGE_ALIGNED(a) || !PAGE_ALIGNED(len) ||
		    p + (len >> PAGE_SHIFT) > ring->npages)
			return -EIO;
		for (off = 0; off < len; off += PAGE_SIZE)
			ring->page_dma[p++] = a + off;
	}
	return p == ring->npages ? 0 : -EIO;
}

/**
 * hsm_ring_setup() - HSMCARD_IOC_RING_SETUP: create a ring file
 * @hdev: card (the caller holds gone_sem for reading, the card is present)
 * @argp: user pointer to struct hsmcard_ring_setup
 * @partition: partition whose keys the ring's jobs may name (fixed for the
 *             ring's life), or HSM_RING_NO_KEYS
 *
 * Return: 0 (the new fd is in the structure) or a negative errno.
 */
int hsm_ring_setup(struct hsm_dev *hdev, void __user *argp, u32 partition)
{
	struct hsmcard_ring_setup rs;
	struct hsm_ring *ring;
	struct file *file;
	u32 xfer;
	int fd, ret;

	if (copy_from_user(&rs, argp, sizeof(rs)))
		return -EFAULT;
	if (rs.flags || rs.sq_off || rs.cq_off || rs.mmap_len || rs.fd ||
	    rs.max_job_len || memchr_inv(rs.rsvd, 0, sizeof(rs.rsvd)))
		return -EINVAL;
	if (!rs.entries || rs.entries > HSMCARD_RING_MAX_ENTRIES ||
	    !is_power_of_2(rs.entries))
		return -EINVAL;
	if (!rs.arena_len || rs.arena_len > HSMCARD_ARENA_MAX ||
	    !PAGE_ALIGNED(rs.arena_len) || !PAGE_ALIGNED(rs.arena))
		return -EINVAL;
	if (hdev->limits.max_sge < 2 || !hdev->nr_ioq)
		return -EOPNOTSUPP;

	ring = kzalloc(sizeof(*ring), GFP_KERNEL);
	if (!ring)
		return -ENOMEM;
	kref_get(&hdev->kref);
	ring->hdev = hdev;
	ring->partition = partition;
	ring->dev = get_device(&hdev->pdev->dev);
	mmgrab(current->mm);
	ring->mm = current->mm;
	INIT_LIST_HEAD(&ring->node);
	mutex_init(&ring->submit_lock);
	spin_lock_init(&ring->lock);
	init_waitqueue_head(&ring->wq);
	ring->entries = rs.entries;
	ring->arena_len = rs.arena_len;
	ring->nsge = min_t(u32, hdev->limits.max_sge, HSM_RING_SGE);
	xfer = min_t(u64, hdev->limits.max_xfer,
		     (u64)hdev->limits.max_sge * PAGE_SIZE);
	ring->max_job_len = min_t(u32, xfer, (ring->nsge - 1) * PAGE_SIZE);

	rs.sq_off = sizeof(struct hsmcard_ring_hdr);
	rs.cq_off = rs.sq_off + rs.entries * sizeof(struct hsmcard_ring_sqe);
	ring->mem_len = PAGE_ALIGN(rs.cq_off +
				   rs.entries * sizeof(struct hsmcard_ring_cqe));
	rs.mmap_len = ring->mem_len;
	rs.max_job_len = ring->max_job_len;
	ring->mem = vmalloc_user(ring->mem_len);
	if (!ring->mem) {
		ret = -ENOMEM;
		goto err_free;
	}
	ring->hdr = ring->mem;
	ring->sqes = ring->mem + rs.sq_off;
	ring->cqes = ring->mem + rs.cq_off;
	ring->hdr->sq_entries = rs.entries;
	ring->hdr->cq_entries = rs.entries;

	ret = hsm_ring_alloc_jobs(ring);
	if (ret)
		goto err_free;
	ret = hsm_ring_pin_arena(ring, rs.arena);
	if (ret)
		goto err_free;
	mutex_lock(&hsm_rings_lock);
	list_add(&ring->node, &hsm_rings);
	mutex_unlock(&hsm_rings_lock);

	fd = get_unused_fd_flags(O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = fd;
		goto err_free;
	}
	file = anon_inode_getfile("[hsmcard-ring]", &hsm_ring_fops, ring,
				  O_RDWR | O_CLOEXEC);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		ret = PTR_ERR(file);
		goto err_free;
	}
	rs.fd = fd;
	if (copy_to_user(argp, &rs, sizeof(rs))) {
		put_unused_fd(fd);
		fput(file);	/* releases the ring */
		return -EFAULT;
	}
	fd_install(fd, file);
	return 0;

err_free:
	hsm_ring_free(ring);
	return ret;
}
