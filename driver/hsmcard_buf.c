// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: DMA bounce buffers.
 *
 * Requests copy user data into kernel-owned pages which are DMA mapped for
 * the card; the card never sees user memory.  A buffer that maps to one
 * contiguous bus range is handed to the card as a flat address, anything
 * else as a card-format scatter-gather list.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "hsmcard.h"

/**
 * hsm_buf_alloc() - allocate a bounce buffer
 * @b:   buffer to initialise
 * @dev: device the buffer will be mapped for
 * @len: bytes (may be 0: the card then gets address 0, length 0)
 * @dir: DMA direction
 *
 * The pages are zeroed, so nothing stale can reach the card or user space.
 *
 * Return: 0 or -ENOMEM.
 */
int hsm_buf_alloc(struct hsm_buf *b, struct device *dev, size_t len,
		  enum dma_data_direction dir)
{
	unsigned int i;

	memset(b, 0, sizeof(*b));
	b->dev = dev;
	b->dir = dir;
	b->len = len;
	if (!len)
		return 0;

	b->npages = DIV_ROUND_UP(len, PAGE_SIZE);
	b->pages = kcalloc(b->npages, sizeof(*b->pages), GFP_KERNEL);
	if (!b->pages)
		goto nomem;
	for (i = 0; i < b->npages; i++) {
		b->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!b->pages[i])
			goto nomem;
	}
	if (sg_alloc_table_from_pages(&b->sgt, b->pages, b->npages, 0, len,
				      GFP_KERNEL))
		goto nomem;
	return 0;

nomem:
	hsm_buf_free(b);
	return -ENOMEM;
}

/**
 * hsm_buf_free() - unmap, wipe and free a bounce buffer
 * @b: buffer (hsm_buf_alloc() must have been called on it)
 *
 * The pages may have held key material or plaintext: they are cleared
 * before they go back to the allocator.
 */
void hsm_buf_free(struct hsm_buf *b)
{
	unsigned int i;

	if (b->mapped)
		dma_unmap_sgtable(b->dev, &b->sgt, b->dir, 0);
	if (b->sgl)
		dma_free_coherent(b->dev, b->nents * sizeof(*b->sgl), b->sgl,
				  b->sgl_dma);
	if (b->sgt.sgl)
		sg_free_table(&b->sgt);
	if (b->pages) {
		for (i = 0; i < b->npages; i++) {
			if (!b->pages[i])
				continue;
			clear_highpage(b->pages[i]);
			__free_page(b->pages[i]);
		}
		kfree(b->pages);
	}
	memset(b, 0, sizeof(*b));
}

/**
 * hsm_buf_copy_from_user() - fill part of a buffer from user memory
 * @b:   buffer (not yet mapped)
 * @off: offset in the buffer
 * @src: user pointer
 * @len: bytes; @off + @len must not exceed the buffer's length
 *
 * Return: 0 or -EFAULT.
 */
int hsm_buf_copy_from_user(struct hsm_buf *b, size_t off,
			   const void __user *src, size_t len)
{
	while (len) {
		size_t in_page = off % PAGE_SIZE;
		size_t n = min_t(size_t, len, PAGE_SIZE - in_page);
		void *va = page_address(b->pages[off / PAGE_SIZE]) + in_page;

		if (copy_from_user(va, src, n))
			return -EFAULT;
		src += n;
		off += n;
		len -= n;
	}
	return 0;
}

/**
 * hsm_buf_copy_from_kernel() - fill part of a buffer from kernel memory
 * @b:   buffer (not yet mapped)
 * @off: offset in the buffer
 * @src: source
 * @len: bytes; @off + @len must not exceed the buffer's length
 */
void hsm_buf_copy_from_kernel(struct hsm_buf *b, size_t off, const void *src,
			      size_t len)
{
	while (len) {
		size_t in_page = off % PAGE_SIZE;
		size_t n = min_t(size_t, len, PAGE_SIZE - in_page);

		memcpy(page_address(b->pages[off / PAGE_SIZE]) + in_page, src,
		       n);
		src += n;
		off += n;
		len -= n;
	}
}

/**
 * hsm_buf_copy_to_user() - copy the start of a buffer to user memory
 * @b:   buffer (unmapped, or synced for the CPU)
 * @dst: user pointer
 * @len: bytes, at most the buffer's length
 *
 * Return: 0 or -EFAULT.
 */
int hsm_buf_copy_to_user(const struct hsm_buf *b, void __user *dst,
			 size_t len)
{
	size_t off = 0;

	while (len) {
		size_t n = min_t(size_t, len, PAGE_SIZE);

		if (copy_to_user(dst, page_address(b->pages[off / PAGE_SIZE]),
				 n))
			return -EFAULT;
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

/**
 * hsm_buf_copy_to_kernel() - copy the start of a buffer to kernel memory
 * @b:   buffer (unmapped, or synced for the CPU)
 * @dst: destination
 * @len: bytes, at most the buffer's length
 */
void hsm_buf_copy_to_kernel(const struct hsm_buf *b, void *dst, size_t len)
{
	size_t off = 0;

	while (len) {
		size_t n = min_t(size_t, len, PAGE_SIZE);

		memcpy(dst, page_address(b->pages[off / PAGE_SIZE]), n);
		dst += n;
		off += n;
		len -= n;
	}
}

/**
 * hsm_buf_map() - map a buffer for the card and build its SGL if needed
 * @b: buffer
 *
 * Return: 0, -ENOMEM or -EIO (mapping failed).
 */
int hsm_buf_map(struct hsm_buf *b)
{
	struct scatterlist *sg;
	int i;

	if (!b->len)
		return 0;
	if (dma_map_sgtable(b->dev, &b->sgt, b->dir, 0))
		return -EIO;
	b->mapped = true;
	b->nents = b->sgt.nents;
	if (b->nents == 1)
		return 0;

	b->sgl = dma_alloc_coherent(b->dev, b->nents * sizeof(*b->sgl),
				    &b->sgl_dma, GFP_KERNEL);
	if (!b->sgl)
		return -ENOMEM;
	for_each_sgtable_dma_sg(&b->sgt, sg, i) {
		b->sgl[i].addr = cpu_to_le64(sg_dma_address(sg));
		b->sgl[i].len = cpu_to_le32(sg_dma_len(sg));
		b->sgl[i].rsvd = 0;
	}
	return 0;
}

/**
 * hsm_buf_unmap() - give a buffer back to the CPU after the card is done
 * @b: buffer
 */
void hsm_buf_unmap(struct hsm_buf *b)
{
	if (b->mapped)
		dma_unmap_sgtable(b->dev, &b->sgt, b->dir, 0);
	b->mapped = false;
}

/**
 * hsm_buf_sqe_src() - describe a mapped buffer as a command's source
 * @b:   buffer
 * @sqe: command
 */
void hsm_buf_sqe_src(const struct hsm_buf *b, struct hsm_sqe *sqe)
{
	sqe->src_len = cpu_to_le32(b->len);
	if (!b->len) {
		sqe->src = 0;
	} else if (b->sgl) {
		sqe->flags |= HSM_SQE_F_SRC_SGL;
		sqe->src = cpu_to_le64(b->sgl_dma);
		sqe->src_nsge = cpu_to_le16(b->nents);
	} else {
		sqe->src = cpu_to_le64(sg_dma_address(b->sgt.sgl));
	}
}

/**
 * hsm_buf_sqe_dst() - describe a mapped buffer as a command's destination
 * @b:   buffer
 * @sqe: command
 */
void hsm_buf_sqe_dst(const struct hsm_buf *b, struct hsm_sqe *sqe)
{
	sqe->dst_len = cpu_to_le32(b->len);
	if (!b->len) {
		sqe->dst = 0;
	} else if (b->sgl) {
		sqe->flags |= HSM_SQE_F_DST_SGL;
		sqe->dst = cpu_to_le64(b->sgl_dma);
		sqe->dst_nsge = cpu_to_le16(b->nents);
	} else {
		sqe->dst = cpu_to_le64(sg_dma_address(b->sgt.sgl));
	}
}
