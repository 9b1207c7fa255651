/*
 * blockd plugin ABI: BlockBackends, the handles through which exports
 * (and later jobs) do I/O on a block node.
 *
 * A backend is a "root" user of one node: it takes some permissions on
 * the node (BD_PERM_*) and shares others, like a parent node's child edge
 * does, and its requests go through the node's request layer (alignment,
 * bounds, serialisation, drained sections: a request made while the node
 * is drained waits until the drained section ends).
 *
 * An export plugin does not create backends: the core opens one for every
 * export (bd_export_get_blk()) before the type's create() runs and frees
 * it after the type's destroy().  Other plugins (a driver's co_create, a
 * job) make their own with bd_blk_new() and bd_blk_insert(), and free
 * them with bd_blk_unref().
 *
 * The bd_blk_co_*() functions are coroutine_fn: call them from a
 * coroutine running in the backend's AioContext (bd_blk_get_aio_context();
 * start one with bd_coroutine_create() + bd_aio_co_enter()).  They return
 * 0 (or the documented non-negative value) on success, a negative errno
 * on failure: -ENOMEDIUM when the backend has no node any more, -EPERM
 * for a write through a backend that did not take BD_PERM_WRITE, -EIO,
 * -ENOSPC, ... from the driver, -EINVAL for a request outside the node.
 */
#ifndef BLOCKD_BLOCK_BACKEND_H
#define BLOCKD_BLOCK_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/block.h>
#include <blockd/coroutine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdBlockBackend BdBlockBackend;

/* --- life: main loop (a coroutine running in the main loop may call) ------ */

/*
 * A new backend, not attached to any node yet, that will take the
 * BD_PERM_* permissions @perm and share @shared.  @name: how permission
 * conflict messages name it (NULL: an anonymous user).  Never fails.
 */
BdBlockBackend *bd_blk_new(const char *name, uint64_t perm,
                           uint64_t shared);

/*
 * Attach @blk (not attached yet) to @node, taking a reference to @node
 * and the backend's permissions.  Fails with QEMU's permission conflict
 * message (and @blk stays unattached) when another user of @node does
 * not share what the backend takes or takes what it does not share.
 * With BD_PERM_RESIZE on a protocol node (a file), writes past its end
 * grow it.
 */
bool bd_blk_insert(BdBlockBackend *blk, BdNode *node, GError **errp);

/*
 * Detach @blk from its node (dropping the backend's reference to it and
 * its permissions); nothing when not attached.  No request may be in
 * flight through @blk.
 */
void bd_blk_remove(BdBlockBackend *blk);

/* Detach (as bd_blk_remove()) and free @blk.  NULL: nothing. */
void bd_blk_unref(BdBlockBackend *blk);

/* --- I/O: coroutine_fn, in the backend's AioContext ----------------------- */

/*
 * Read @bytes at @offset into @qiov (which holds at least @bytes).
 * @flags: 0 for now.
 */
bd_coroutine_fn
int bd_blk_co_preadv(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                     BdIOVector *qiov, BdRequestFlags flags);

/* bd_blk_co_preadv() into one buffer of @bytes bytes. */
bd_coroutine_fn
int bd_blk_co_pread(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                    void *buf, BdRequestFlags flags);

/*
 * Zero-copy read: move up to @bytes at @offset from the image straight
 * into the descriptor @out_fd (a non-blocking socket or pipe) inside the
 * kernel, without passing through a buffer of the daemon (sendfile(2)).
 * Only possible when the bytes reach the storage unchanged: the request
 * is aligned to the node's request_alignment (no bounce buffer), every
 * node on the way passes reads through as they are (raw, with or without
 * its offset, filters without a read callback) down to a protocol driver
 * that implements it (file, when the data is in memory: page cache or
 * tmpfs, and the file is not opened with cache.direct=on).
 *
 * Returns:
 * - the number of bytes moved, 1..@bytes (at most the node's
 *   max_transfer): partial transfers are normal, call again for the rest;
 * - -EAGAIN: @out_fd took nothing; wait until it is writable;
 * - -ENOTSUP: not possible now (any condition above, or the data would
 *   have to be read from a disk first); nothing was moved: read the rest
 *   with bd_blk_co_preadv();
 * - another negative errno: a read or write error; an unknown part of the
 *   range may have been written to @out_fd.
 * @out_fd -1: moves nothing, but answers 0 when a transfer of the whole
 * range would take the zero-copy path now, else -ENOTSUP (the answer
 * may change before the transfer: a caller still handles -ENOTSUP).
 * The data is sent by reference: what the kernel has not handed to the
 * peer yet still shows later writes to the same range (as with any read
 * that overlaps a write).  @flags: 0.  Each transfer counts as one read
 * in the node's statistics.
 */
bd_coroutine_fn
int64_t bd_blk_co_pread_to_fd(BdBlockBackend *blk, int64_t offset,
                              int64_t bytes, int out_fd,
                              BdRequestFlags flags);

/*
 * Write @bytes at @offset from @qiov.  @flags: BD_REQ_FUA makes the data
 * stable before this returns.  When the backend is in write-through mode
 * (an export's 'writethrough' option) every write is FUA anyway.
 */
bd_coroutine_fn
int bd_blk_co_pwritev(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags);

/* bd_blk_co_pwritev() from one buffer of @bytes bytes. */
bd_coroutine_fn
int bd_blk_co_pwrite(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                     const void *buf, BdRequestFlags flags);

/*
 * Make @bytes at @offset read as zeroes.  @flags: BD_REQ_MAY_UNMAP (the
 * range may be deallocated), BD_REQ_NO_FALLBACK (fail with -ENOTSUP
 * rather than write zero buffers), BD_REQ_FUA.
 */
bd_coroutine_fn
int bd_blk_co_pwrite_zeroes(BdBlockBackend *blk, int64_t offset,
                            int64_t bytes, BdRequestFlags flags);

/*
 * Tell the node that @bytes at @offset are no longer used.  Succeeds
 * doing nothing when the node does not discard (discard=ignore).
 */
bd_coroutine_fn
int bd_blk_co_pdiscard(BdBlockBackend *blk, int64_t offset, int64_t bytes);

/* Make every completed write stable (a no-op on cache.no-flush nodes). */
bd_coroutine_fn
int bd_blk_co_flush(BdBlockBackend *blk);

/*
 * Block status of the range starting at @offset, at most @bytes long, as
 * a reader of the backend sees it through the backing chain (QEMU's
 * blk_co_block_status_above() over the whole chain: where a layer defines
 * nothing the layers below answer, and a format layer with nothing below
 * reads as ZERO): returns BD_BLOCK_* bits (DATA, ZERO, ALLOCATED, ...)
 * that hold for the
 * first *@pnum bytes (> 0 unless @offset is the end of the node), or a
 * negative errno.  @want_zero: spend effort to find ZERO ranges.  @map
 * and @file, when not NULL, receive the offset in and the node that holds
 * the data when BD_BLOCK_OFFSET_VALID is set.
 */
bd_coroutine_fn
int bd_blk_co_block_status(BdBlockBackend *blk, bool want_zero,
                           int64_t offset, int64_t bytes, int64_t *pnum,
                           int64_t *map, BdNode **file);

/*
 * How deep in the backing chain the range starting at @offset (at most
 * @bytes long) is allocated, as QEMU's bdrv_is_allocated_above() over
 * the whole chain counts it: 0 if no layer defines its content (reads
 * come from nowhere: a null-co node without read-zeroes), 1 if the node
 * itself does (its status has BD_BLOCK_DATA or BD_BLOCK_ZERO), 2 and up
 * for the first backing (or filtered) layer below that does.  The answer
 * holds for the first *@pnum bytes (> 0 unless @offset is the end).  The
 * status is asked without want_zero, so this is cheap.  Returns the
 * depth or a negative errno.
 */
bd_coroutine_fn
int bd_blk_co_allocation_depth(BdBlockBackend *blk, int64_t offset,
                               int64_t bytes, int64_t *pnum);

/* The node's length in bytes, or a negative errno. */
bd_coroutine_fn
int64_t bd_blk_co_getlength(BdBlockBackend *blk);

/*
 * Resize the node to @offset bytes.  Needs BD_PERM_RESIZE, which an
 * export takes with bd_blk_set_perm() (e.g. in its create()); otherwise
 * fails with -EPERM.  @exact: fail rather than round; @prealloc: how to
 * allocate a grown range; @flags: pass 0.  Sets @errp with QEMU's
 * message on failure.
 */
bd_coroutine_fn
int bd_blk_co_truncate(BdBlockBackend *blk, int64_t offset, bool exact,
                       BdPreallocMode prealloc, BdRequestFlags flags,
                       GError **errp);

/* --- state: main loop unless said otherwise ------------------------------- */

/*
 * The node's length as the core last learned it (after open, truncate),
 * or -ENOMEDIUM.  Any thread, no coroutine needed: for negotiations that
 * run outside a request.
 */
int64_t bd_blk_getlength(BdBlockBackend *blk);

/* The node the backend is attached to, or NULL.  Any thread. */
BdNode *bd_blk_get_node(BdBlockBackend *blk);

/* The AioContext the backend's requests must run in.  Any thread. */
BdAioContext *bd_blk_get_aio_context(BdBlockBackend *blk);

/* True if the backend holds BD_PERM_WRITE.  Any thread. */
bool bd_blk_is_writable(BdBlockBackend *blk);

/*
 * The BD_PERM_* permissions the backend takes (*@perm) and shares
 * (*@shared).  Any thread.
 */
void bd_blk_get_perm(BdBlockBackend *blk, uint64_t *perm, uint64_t *shared);

/*
 * Change the permissions the backend takes and shares, e.g. add
 * BD_PERM_RESIZE for a growable export.  Fails with QEMU's permission
 * conflict message (and nothing changed) when another user of the node
 * does not share what @perm asks or takes what @shared refuses.  Main
 * loop.
 */
bool bd_blk_set_perm(BdBlockBackend *blk, uint64_t perm, uint64_t shared,
                     GError **errp);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_BLOCK_BACKEND_H */
