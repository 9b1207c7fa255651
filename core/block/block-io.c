/*
 * The request layer: what every request on a node goes through before
 * its driver sees it, so that no driver repeats it: bounds and read-only
 * checks, alignment to the driver's request_alignment with
 * read-modify-write, serialisation of overlapping read-modify-writes,
 * max_transfer splitting, detect-zeroes, discard policy, emulation of
 * flags the driver does not handle, flush semantics and statistics.
 *
 * The aligned path allocates nothing: the tracked request lives on the
 * coroutine's stack, vectors are sliced into stack arrays.  Only
 * unaligned requests (bounce blocks), vectors of more than
 * STACK_IOV entries and the zero-write fallback allocate.
 *
 * All functions are coroutine_fn.  They run in the node's context or,
 * for a multi-threaded export, in any of its IOThreads at the same time:
 * what requests share on the node (the tracked list, statistics) is
 * under node->reqs_lock, taken once when a request starts and once when
 * it ends, and the in-flight count is atomic.  A node that only ever
 * sees requests in its own context skips the lock (see
 * reqs_lock_begin()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <blockd/error.h>

#include "block/block-int.h"
#include "block/block-qmp.h"
#include "block/dirty-bitmap.h"
#include "util/iovec.h"

#define STACK_IOV 16
#define ZERO_FALLBACK_MAX (1 << 20)

#define ALIGN_DOWN(x, a) ((x) & ~((int64_t)(a) - 1))
#define ALIGN_UP(x, a) ALIGN_DOWN((x) + (a) - 1, (a))

/* ---- request tracking ---- */

/* What a finished request adds to the node's statistics. */
typedef enum Acct {
    ACCT_NONE,
    ACCT_READ,
    ACCT_WRITE,
    ACCT_ZERO,
    ACCT_DISCARD,
    ACCT_FLUSH,
} Acct;

/*
 * Take node->reqs_lock if the node is in multi-context mode; returns
 * whether it did (pass that to reqs_unlock()).  The mode costs two lock
 * operations per request, so a node enters it only when a request
 * arrives from another thread, and then for good.  That request first
 * visits the node's own thread: whatever critical section a request of
 * that thread was in without the lock has finished by then (they never
 * yield), and every later one sees the flag and locks.
 */
static bool reqs_lock_begin(BdNode *node)
{
    if (!__atomic_load_n(&node->multi_ctx, __ATOMIC_ACQUIRE)) {
        BdAioContext *cur = bd_aio_current_context();

        /* no context: a helper thread of the node's own (tests) */
        if (cur == node->ctx || !cur) {
            return false;
        }
        __atomic_store_n(&node->multi_ctx, true, __ATOMIC_SEQ_CST);
        bd_aio_co_reschedule_self(node->ctx);
        bd_aio_co_reschedule_self(cur);
    }
    g_mutex_lock(&node->reqs_lock);
    return true;
}

/* Take node->reqs_lock if the node is in multi-context mode. */
static bool reqs_lock(BdNode *node)
{
    if (!__atomic_load_n(&node->multi_ctx, __ATOMIC_ACQUIRE)) {
        return false;
    }
    g_mutex_lock(&node->reqs_lock);
    return true;
}

static void reqs_unlock(BdNode *node, bool locked)
{
    if (locked) {
        g_mutex_unlock(&node->reqs_lock);
    }
}

static void tracked_begin(BdTrackedRequest *req, BdNode *node,
                          int64_t offset, int64_t bytes, bool serialising)
{
    bool locked;

    uint32_t align = node->bl.request_alignment;

    req->node = node;
    req->offset = ALIGN_DOWN(offset, align);
    req->bytes = ALIGN_UP(offset + bytes, align) - req->offset;
    req->serialising = serialising;
    req->co = bd_coroutine_self();
    req->wait_queue.head = NULL;
    req->wait_queue.tail = NULL;
    req->prev = NULL;
    __atomic_add_fetch(&node->in_flight, 1, __ATOMIC_SEQ_CST);
    locked = reqs_lock_begin(node);
    req->next = node->tracked;
    if (node->tracked) {
        node->tracked->prev = req;
    }
    node->tracked = req;
    if (serialising) {
        __atomic_store_n(&node->serialising_in_flight,
                         node->serialising_in_flight + 1, __ATOMIC_RELAXED);
    }
    reqs_unlock(node, locked);
}

/* Count a finished request in the statistics; under reqs_lock. */
static void account(BdNode *node, Acct acct, int ret, int64_t offset,
                    int64_t bytes)
{
    BdBlockStats *st = &node->stats;

    switch (acct) {
    case ACCT_NONE:
        return;
    case ACCT_READ:
        if (ret < 0) {
            st->failed_rd_ops++;
        } else {
            st->rd_ops++;
            st->rd_bytes += bytes;
        }
        return;
    case ACCT_DISCARD:
        if (ret < 0) {
            st->failed_unmap_ops++;
        } else {
            st->unmap_ops++;
            st->unmap_bytes += bytes;
        }
        return;
    case ACCT_FLUSH:
        if (ret < 0) {
            st->failed_flush_ops++;
        } else {
            st->flush_ops++;
        }
        return;
    case ACCT_WRITE:
    case ACCT_ZERO:
        if (ret < 0) {
            st->failed_wr_ops++;
            return;
        }
        /* a zero-write is its own operation, not a write of its bytes */
        if (acct == ACCT_ZERO) {
            st->zero_ops++;
        } else {
            st->wr_ops++;
            st->wr_bytes += bytes;
        }
        if (offset + bytes > st->wr_highest_offset) {
            st->wr_highest_offset = offset + bytes;
        }
        if (offset + bytes > node->total_bytes) {
            __atomic_store_n(&node->total_bytes,
                             bd_length_in_sectors(offset + bytes),
                             __ATOMIC_RELAXED);
            /* lock order: reqs_lock, then the bitmaps' locks */
            bd_node_dirty_bitmaps_truncate(node, node->total_bytes);
        }
        return;
    }
}

/*
 * The end of @req: unlink it, count it as @acct, and wake the requests
 * that wait for it (each in its own context) once the lock is dropped;
 * they cannot leave the queue before that, so the detached list stays
 * valid.
 */
static void tracked_end(BdTrackedRequest *req, Acct acct, int ret,
                        int64_t offset, int64_t bytes)
{
    BdNode *node = req->node;
    BdCoQueue waiters;
    bool locked = reqs_lock(node);

    if (req->prev) {
        req->prev->next = req->next;
    } else {
        node->tracked = req->next;
    }
    if (req->next) {
        req->next->prev = req->prev;
    }
    if (req->serialising) {
        __atomic_store_n(&node->serialising_in_flight,
                         node->serialising_in_flight - 1, __ATOMIC_RELAXED);
    }
    account(node, acct, ret, offset, bytes);
    waiters = req->wait_queue;
    req->wait_queue.head = NULL;
    reqs_unlock(node, locked);

    if (waiters.head) {
        bd_co_queue_restart_all(&waiters);
    }
    /* A drain in the main loop waits for this node to go idle. */
    if (__atomic_sub_fetch(&node->in_flight, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&node->quiesce_counter, __ATOMIC_SEQ_CST) &&
        !bd_aio_context_in_home_thread(bd_aio_main_context())) {
        bd_aio_wait_kick(bd_aio_main_context());
    }
}

/*
 * Wait for older overlapping requests when either side is serialising
 * (a read-modify-write must not interleave with another write to the same
 * blocks).  Only older requests are waited for, so two requests never wait
 * for each other.  The unlocked test is enough to skip the walk: a
 * serialising request that starts after ours was inserted finds ours
 * in its own walk, and one inserted before ours is visible here because
 * our insertion took the lock after its increment.
 */
static void wait_serialising(BdTrackedRequest *req)
{
    BdNode *node = req->node;
    bool locked;

    if (!__atomic_load_n(&node->serialising_in_flight, __ATOMIC_RELAXED)) {
        return;
    }
    locked = reqs_lock(node);
retry:
    for (BdTrackedRequest *o = req->next; o; o = o->next) {
        if (!(o->serialising || req->serialising)) {
            continue;
        }
        if (o->offset < req->offset + req->bytes &&
            req->offset < o->offset + o->bytes) {
            if (locked) {
                bd_co_queue_wait_gmutex(&o->wait_queue, &node->reqs_lock);
            } else {
                bd_co_queue_wait(&o->wait_queue, NULL);
                /* woken by a request from another thread, maybe */
                locked = reqs_lock(node);
            }
            goto retry;
        }
    }
    reqs_unlock(node, locked);
}

/* ---- helpers ---- */

static BdChild *filtered_child(BdNode *node)
{
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (c->role & BD_CHILD_FILTERED) {
            return c;
        }
    }
    return NULL;
}

static int check_range(BdNode *node, int64_t offset, int64_t bytes)
{
    if (!node->drv) {
        return -ENOMEDIUM;
    }
    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    return 0;
}

static bool beyond_eof(BdNode *node, int64_t offset, int64_t bytes)
{
    /* a write from another thread may grow a protocol node's length */
    int64_t len = __atomic_load_n(&node->total_bytes, __ATOMIC_RELAXED);

    return offset > len || bytes > len - offset;
}

static bool is_aligned(BdNode *node, int64_t offset, int64_t bytes)
{
    uint32_t mask = node->bl.request_alignment - 1;

    return !((offset | bytes) & mask);
}

/* ---- the driver's calls, with filter defaults ---- */

/*
 * A driver without BD_DRIVER_THREAD_SAFE is called only in its node's
 * AioContext, as <blockd/block-driver.h> promises: a request that comes
 * from another thread (an export served from several IOThreads) moves
 * there for the call and back after.  Returns the context to go back to,
 * or NULL when the request stays where it is.
 */
static BdAioContext *drv_enter(BdNode *node)
{
    BdAioContext *cur;

    if (node->drv->flags & BD_DRIVER_THREAD_SAFE) {
        return NULL;
    }
    cur = bd_aio_current_context();
    /* no context: a helper thread of the node's own (tests) */
    if (!cur || cur == node->ctx) {
        return NULL;
    }
    bd_aio_co_reschedule_self(node->ctx);
    return cur;
}

static void drv_leave(BdAioContext *home)
{
    if (home) {
        bd_aio_co_reschedule_self(home);
    }
}

/* @call, a call of one of @node's driver callbacks, in the right thread. */
#define DRV_CALL(node, call) ({ \
        BdAioContext *home_ = drv_enter(node); \
        __typeof__(call) ret_ = (call); \
        drv_leave(home_); \
        ret_; \
    })

static int drv_preadv(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    const BdBlockDriver *drv = node->drv;

    if (drv->co_preadv) {
        return DRV_CALL(node, drv->co_preadv(node, offset, bytes, qiov,
                                              flags));
    }
    BdChild *c = filtered_child(node);
    return c ? bd_node_co_preadv(c->node, offset, bytes, qiov, flags)
             : -ENOTSUP;
}

static int drv_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    const BdBlockDriver *drv = node->drv;

    if (drv->co_pwritev) {
        return DRV_CALL(node, drv->co_pwritev(node, offset, bytes, qiov,
                                               flags));
    }
    BdChild *c = filtered_child(node);
    return c ? bd_node_co_pwritev(c->node, offset, bytes, qiov, flags)
             : -ENOTSUP;
}

/*
 * Pass an aligned request to the driver in pieces of at most
 * max_transfer bytes, slicing @qiov (from @qiov_offset) into a stack
 * array.
 */
static int drv_rw(BdNode *node, bool write, int64_t offset, int64_t bytes,
                  BdIOVector *qiov, size_t qiov_offset, BdRequestFlags flags)
{
    uint32_t max = node->bl.max_transfer;
    struct iovec stack_iov[STACK_IOV];
    struct iovec *iov = stack_iov;
    int ret = 0;

    if (qiov_offset == 0 && (!max || bytes <= max) &&
        qiov->size == (size_t)bytes) {
        return write ? drv_pwritev(node, offset, bytes, qiov, flags)
                     : drv_preadv(node, offset, bytes, qiov, flags);
    }
    if (qiov->niov > STACK_IOV) {
        iov = g_new(struct iovec, qiov->niov);
    }
    if (!max) {
        max = INT32_MAX & ~(node->bl.request_alignment - 1);
    }
    while (bytes > 0 && ret == 0) {
        int64_t n = MIN(bytes, (int64_t)max);
        BdIOVector part;
        int niov = bd_iov_slice(iov, MAX(qiov->niov, STACK_IOV), qiov->iov,
                                qiov->niov, qiov_offset, n);

        bd_iovec_init_external(&part, iov, niov);
        ret = write ? drv_pwritev(node, offset, n, &part, flags)
                    : drv_preadv(node, offset, n, &part, flags);
        offset += n;
        qiov_offset += n;
        bytes -= n;
    }
    if (iov != stack_iov) {
        g_free(iov);
    }
    return ret;
}

/*
 * An unaligned read or write: widen to the alignment with bounce blocks
 * for the head and tail, reading them first for a write.  The caller
 * holds a serialising tracked request for writes.
 */
static int rw_unaligned(BdNode *node, bool write, int64_t offset,
                        int64_t bytes, BdIOVector *qiov,
                        BdRequestFlags flags)
{
    uint32_t align = node->bl.request_alignment;
    int64_t aoff = ALIGN_DOWN(offset, align);
    int64_t aend = ALIGN_UP(offset + bytes, align);
    int64_t head = offset - aoff;
    int64_t tail = aend - (offset + bytes);
    bool one_block = aend - aoff == align;
    uint8_t *hbuf = NULL, *tbuf = NULL;
    struct iovec stack_iov[STACK_IOV + 2];
    struct iovec *iov = stack_iov;
    BdIOVector full;
    int niov = 0, ret = 0;

    if (head) {
        hbuf = bd_node_try_blockalign(node, align);
    }
    if (tail) {
        tbuf = (head && one_block) ? hbuf : bd_node_try_blockalign(node, align);
    }
    if ((head && !hbuf) || (tail && !tbuf)) {
        ret = -ENOMEM;
        goto out;
    }
    if (write) {
        BdIOVector blk;

        if (head) {
            bd_iovec_init_buf(&blk, hbuf, align);
            ret = drv_preadv(node, aoff, align, &blk, 0);
        }
        if (ret == 0 && tail && tbuf != hbuf) {
            bd_iovec_init_buf(&blk, tbuf, align);
            ret = drv_preadv(node, aend - align, align, &blk, 0);
        }
        if (ret < 0) {
            goto out;
        }
    }
    if (qiov->niov > STACK_IOV) {
        iov = g_new(struct iovec, qiov->niov + 2);
    }
    if (head) {
        iov[niov].iov_base = hbuf;
        iov[niov++].iov_len = head;
    }
    for (int i = 0; i < qiov->niov; i++) {
        iov[niov++] = qiov->iov[i];
    }
    if (tail) {
        iov[niov].iov_base = tbuf + align - tail;
        iov[niov++].iov_len = tail;
    }
    bd_iovec_init_external(&full, iov, niov);
    ret = drv_rw(node, write, aoff, aend - aoff, &full, 0, flags);

out:
    if (iov != stack_iov) {
        g_free(iov);
    }
    if (tbuf && tbuf != hbuf) {
        free(tbuf);
    }
    free(hbuf);
    return ret;
}

/* ---- reads and writes ---- */

int bd_node_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    BdTrackedRequest req;
    int ret = check_range(node, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (beyond_eof(node, offset, bytes)) {
        return -EIO;
    }
    tracked_begin(&req, node, offset, bytes, false);
    wait_serialising(&req);
    if (bytes == 0) {
        ret = 0;
    } else if (is_aligned(node, offset, bytes)) {
        ret = drv_rw(node, false, offset, bytes, qiov, 0, flags);
    } else {
        ret = rw_unaligned(node, false, offset, bytes, qiov, flags);
    }
    tracked_end(&req, ACCT_READ, ret, offset, bytes);
    return ret;
}

/*
 * Zero-copy reads: only the aligned path exists (an unaligned request
 * needs a bounce block, which is a copy), and a request longer than
 * max_transfer is shortened to it, which the contract allows as a partial
 * transfer.  No serialising wait is skipped: a read-modify-write in
 * flight on the range is waited for as by any read.  The statistics
 * count what was moved; "not now" answers (-EAGAIN, -ENOTSUP, the check
 * of out_fd -1) count nothing.
 */
static int64_t drv_pread_to_fd(BdNode *node, int64_t offset, int64_t bytes,
                               int out_fd, BdRequestFlags flags)
{
    const BdBlockDriver *drv = node->drv;

    if (drv->co_pread_to_fd) {
        return DRV_CALL(node, drv->co_pread_to_fd(node, offset, bytes,
                                                   out_fd, flags));
    }
    if (drv->co_preadv) {
        /* the driver reads in its own way: its bytes may not be the disk's */
        return -ENOTSUP;
    }
    BdChild *c = filtered_child(node);
    return c ? bd_node_co_pread_to_fd(c->node, offset, bytes, out_fd, flags)
             : -ENOTSUP;
}

int64_t bd_node_co_pread_to_fd(BdNode *node, int64_t offset, int64_t bytes,
                               int out_fd, BdRequestFlags flags)
{
    BdTrackedRequest req;
    int64_t ret = check_range(node, offset, bytes);
    uint32_t max = node->bl.max_transfer;

    if (ret < 0) {
        return ret;
    }
    if (beyond_eof(node, offset, bytes)) {
        return -EIO;
    }
    if (flags || !is_aligned(node, offset, bytes)) {
        return -ENOTSUP;
    }
    if (bytes == 0) {
        return out_fd < 0 ? 0 : -EINVAL;
    }
    if (max && bytes > max && out_fd >= 0) {
        bytes = max;
    }
    tracked_begin(&req, node, offset, bytes, false);
    wait_serialising(&req);
    ret = drv_pread_to_fd(node, offset, bytes, out_fd, flags);
    g_assert(ret <= bytes);
    tracked_end(&req, ret > 0 || (ret < 0 && ret != -EAGAIN &&
                                  ret != -ENOTSUP) ? ACCT_READ : ACCT_NONE,
                ret < 0 ? (int)ret : 0, offset, ret > 0 ? ret : 0);
    return ret;
}

static int check_write(BdNode *node, int64_t offset, int64_t bytes)
{
    int ret = check_range(node, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (node->read_only) {
        return -EPERM;
    }
    /*
     * growing is for protocols some user may resize (a format's file),
     * and for the filters between a format and its file (preallocate,
     * throttle): their child decides, as in QEMU
     */
    if (beyond_eof(node, offset, bytes) &&
        !((node->perm & BD_PERM_RESIZE) &&
          !(node->drv->flags & BD_DRIVER_FORMAT))) {
        return -EIO;
    }
    return 0;
}

static int zeroes_locked(BdNode *node, int64_t offset, int64_t bytes,
                         BdRequestFlags flags);

int bd_node_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    BdTrackedRequest req;
    bool aligned;
    bool fua;
    int ret = check_write(node, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    /* compression is the driver's or nobody's (QEMU's -ENOTSUP) */
    if ((flags & BD_REQ_WRITE_COMPRESSED) &&
        !(node->bl.supported_write_flags & BD_REQ_WRITE_COMPRESSED)) {
        return -ENOTSUP;
    }
    if (node->detect_zeroes != BD_DETECT_ZEROES_OFF &&
        bd_iovec_is_zero(qiov)) {
        if (node->detect_zeroes == BD_DETECT_ZEROES_UNMAP) {
            flags |= BD_REQ_MAY_UNMAP;
        }
        return bd_node_co_pwrite_zeroes(node, offset, bytes, flags);
    }
    aligned = is_aligned(node, offset, bytes);
    tracked_begin(&req, node, offset, bytes, !aligned);
    wait_serialising(&req);
    if (G_UNLIKELY(node->write_threshold)) {
        bd_node_write_threshold_check(node, offset, bytes);
    }
    fua = (flags & BD_REQ_FUA) &&
          !(node->bl.supported_write_flags & BD_REQ_FUA);
    flags &= node->bl.supported_write_flags;
    if (bytes == 0) {
        ret = 0;
    } else if (aligned) {
        ret = drv_rw(node, true, offset, bytes, qiov, 0, flags);
    } else {
        ret = rw_unaligned(node, true, offset, bytes, qiov, flags);
    }
    if (ret == 0 && fua) {
        ret = bd_node_co_flush(node);
    }
    tracked_end(&req, ACCT_WRITE, ret, offset, bytes);
    /* as QEMU: the padded range, even when the write failed (after the
     * end of the request, which grew the node and its bitmaps if needed) */
    bd_node_set_dirty(node, req.offset, bytes ? req.bytes : 0);
    return ret;
}

/* Write zeroed buffers when the driver has no cheap zero-write. */
static int zeroes_fallback(BdNode *node, int64_t offset, int64_t bytes,
                           BdRequestFlags flags)
{
    int64_t chunk = MIN(bytes, ZERO_FALLBACK_MAX);
    void *buf;
    int ret = 0;

    if (node->bl.max_transfer) {
        chunk = MIN(chunk, (int64_t)node->bl.max_transfer);
    }
    buf = bd_node_try_blockalign(node, chunk);
    if (!buf) {
        return -ENOMEM;
    }
    memset(buf, 0, chunk);
    while (bytes > 0 && ret == 0) {
        int64_t n = MIN(bytes, chunk);
        BdIOVector qiov;

        bd_iovec_init_buf(&qiov, buf, n);
        ret = drv_pwritev(node, offset, n, &qiov,
                          flags & node->bl.supported_write_flags);
        offset += n;
        bytes -= n;
    }
    free(buf);
    return ret;
}

/* An aligned zero-write under a tracked request. */
static int zeroes_locked(BdNode *node, int64_t offset, int64_t bytes,
                         BdRequestFlags flags)
{
    const BdBlockDriver *drv = node->drv;
    int64_t max = node->bl.max_pwrite_zeroes;
    bool fua = (flags & BD_REQ_FUA) &&
               !(node->bl.supported_zero_flags & BD_REQ_FUA);
    int ret = -ENOTSUP;

    if (!max) {
        max = INT64_MAX;
    }
    if (drv->co_pwrite_zeroes) {
        BdRequestFlags f = flags & node->bl.supported_zero_flags;
        int64_t off = offset, left = bytes;

        ret = 0;
        while (left > 0 && ret == 0) {
            int64_t n = MIN(left, max);
            ret = DRV_CALL(node, drv->co_pwrite_zeroes(node, off, n, f));
            if (ret == 0) {
                off += n;
                left -= n;
            }
        }
        if (ret == -ENOTSUP) {
            offset = off;
            bytes = left;
        }
    } else if (!drv->co_pwritev && filtered_child(node)) {
        return bd_child_co_pwrite_zeroes(filtered_child(node), offset, bytes,
                                         flags);
    }
    if (ret == -ENOTSUP) {
        if (flags & BD_REQ_NO_FALLBACK) {
            return -ENOTSUP;
        }
        ret = zeroes_fallback(node, offset, bytes, flags & ~BD_REQ_FUA);
    }
    if (ret == 0 && fua) {
        ret = bd_node_co_flush(node);
    }
    return ret;
}

int bd_node_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                             BdRequestFlags flags)
{
    uint32_t align = node->bl.request_alignment;
    BdTrackedRequest req;
    int ret = check_write(node, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (!is_aligned(node, offset, bytes)) {
        /* unaligned head and tail as buffers, the middle as zeroes */
        int64_t mid = ALIGN_UP(offset, align);
        int64_t end = ALIGN_DOWN(offset + bytes, align);
        g_autofree uint8_t *zero = g_malloc0(align);
        BdIOVector qiov;

        if (mid >= end) {
            g_autofree uint8_t *z = g_malloc0(bytes);
            bd_iovec_init_buf(&qiov, z, bytes);
            return bd_node_co_pwritev(node, offset, bytes, &qiov,
                                      flags & BD_REQ_FUA);
        }
        if (mid > offset) {
            bd_iovec_init_buf(&qiov, zero, mid - offset);
            ret = bd_node_co_pwritev(node, offset, mid - offset, &qiov,
                                     flags & BD_REQ_FUA);
        }
        if (ret == 0) {
            ret = bd_node_co_pwrite_zeroes(node, mid, end - mid, flags);
        }
        if (ret == 0 && offset + bytes > end) {
            bd_iovec_init_buf(&qiov, zero, offset + bytes - end);
            ret = bd_node_co_pwritev(node, end, offset + bytes - end, &qiov,
                                     flags & BD_REQ_FUA);
        }
        return ret;
    }
    tracked_begin(&req, node, offset, bytes, false);
    wait_serialising(&req);
    if (G_UNLIKELY(node->write_threshold)) {
        bd_node_write_threshold_check(node, offset, bytes);
    }
    ret = bytes ? zeroes_locked(node, offset, bytes, flags) : 0;
    tracked_end(&req, ACCT_ZERO, ret, offset, bytes);
    bd_node_set_dirty(node, offset, bytes);
    return ret;
}

/* ---- discard, flush ---- */

int bd_node_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    const BdBlockDriver *drv = node->drv;
    uint32_t align = MAX(node->bl.pdiscard_alignment,
                         node->bl.request_alignment);
    int64_t max = node->bl.max_pdiscard ? node->bl.max_pdiscard : INT64_MAX;
    BdTrackedRequest req;
    int64_t start, end;
    bool mark;
    int ret = check_range(node, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (node->read_only) {
        return -EPERM;
    }
    if (beyond_eof(node, offset, bytes)) {
        return -EIO;
    }
    if (!(node->open_flags & BD_OPEN_UNMAP)) {
        return 0;
    }
    /*
     * QEMU marks the whole range of a discard the driver could handle,
     * whatever part of it the alignment lets through, once the discard
     * is done (bdrv_co_write_req_finish()): marked before, a copy from
     * a dirty bitmap (the active commit) could clear the bits and read
     * the old data before the discard lands, and never copy again.
     */
    mark = drv->co_pdiscard || (!drv->co_pwritev && filtered_child(node));
    /* discard is advisory: drop what is not whole granules */
    start = ALIGN_UP(offset, align);
    end = ALIGN_DOWN(offset + bytes, align);
    if (start >= end) {
        if (mark) {
            bd_node_set_dirty(node, offset, bytes);
        }
        return 0;
    }
    tracked_begin(&req, node, start, end - start, false);
    wait_serialising(&req);
    for (int64_t off = start; off < end && ret == 0;) {
        int64_t n = MIN(end - off, max);

        if (drv->co_pdiscard) {
            ret = DRV_CALL(node, drv->co_pdiscard(node, off, n));
        } else if (!drv->co_pwritev && filtered_child(node)) {
            ret = bd_node_co_pdiscard(filtered_child(node)->node, off, n);
        }
        off += n;
    }
    if (ret == -ENOTSUP) {
        ret = 0;
    }
    tracked_end(&req, ACCT_DISCARD, ret, start, end - start);
    if (mark) {
        bd_node_set_dirty(node, offset, bytes);
    }
    return ret;
}

int bd_node_co_flush(BdNode *node)
{
    BdTrackedRequest req;
    int ret = 0;

    if (!node->drv) {
        return 0;
    }
    tracked_begin(&req, node, 0, 0, false);
    if (node->drv->co_flush && !(node->open_flags & BD_OPEN_NO_FLUSH)) {
        ret = DRV_CALL(node, node->drv->co_flush(node));
    }
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (c->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED)) {
            int r = bd_node_co_flush(c->node);
            if (ret == 0) {
                ret = r;
            }
        }
    }
    tracked_end(&req, ACCT_FLUSH, ret, 0, 0);
    return ret;
}

/* ---- status, length, truncate ---- */

int bd_node_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                            int64_t bytes, int64_t *pnum, int64_t *map,
                            BdNode **file)
{
    uint32_t align = node->bl.request_alignment;
    int64_t len = node->total_bytes;
    int64_t aoff, abytes, n = 0, m = 0;
    BdNode *f = NULL;
    BdTrackedRequest req;
    int ret = check_range(node, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (offset >= len) {
        *pnum = 0;
        return BD_BLOCK_EOF;
    }
    bytes = MIN(bytes, len - offset);
    aoff = ALIGN_DOWN(offset, align);
    abytes = ALIGN_UP(offset + bytes, align) - aoff;
    tracked_begin(&req, node, aoff, abytes, false);
    if (node->drv->co_block_status) {
        ret = DRV_CALL(node, node->drv->co_block_status(node, want_zero,
                                                        aoff, abytes, &n,
                                                        &m, &f));
    } else if (node->children->len) {
        BdChild *c = filtered_child(node);

        c = c ? c : bd_node_get_file(node);
        if (c) {
            n = abytes;
            m = aoff;
            f = c->node;
            ret = BD_BLOCK_RAW | BD_BLOCK_OFFSET_VALID;
        } else {
            n = abytes;
            ret = BD_BLOCK_DATA;
        }
    } else {
        n = abytes;
        m = aoff;
        f = node;
        ret = BD_BLOCK_DATA | BD_BLOCK_OFFSET_VALID;
    }
    tracked_end(&req, ACCT_NONE, 0, 0, 0);
    if (ret < 0) {
        return ret;
    }
    /* the answer is for [aoff, aoff + n): narrow it to the request */
    n = MIN(n - (offset - aoff), bytes);
    m += offset - aoff;
    if (n <= 0) {
        n = MIN(bytes, (int64_t)align);
    }
    if ((ret & BD_BLOCK_RAW) && f) {
        int64_t n2 = 0;

        ret = bd_node_co_block_status(f, want_zero, m, n, &n2, &m, &f);
        if (ret < 0) {
            return ret;
        }
        ret &= ~BD_BLOCK_EOF;
        n = n2 ? n2 : n;
    }
    if (ret & (BD_BLOCK_DATA | BD_BLOCK_ZERO)) {
        ret |= BD_BLOCK_ALLOCATED;
    }
    if (offset + n >= len) {
        ret |= BD_BLOCK_EOF;
    }
    *pnum = n;
    if (map) {
        *map = m;
    }
    if (file) {
        *file = f;
    }
    return ret;
}

/*
 * The layer below @node whose content shows through where @node defines
 * none: its backing (copy-on-write) child, or for a filter driver the
 * filtered child.  QEMU's bdrv_filter_or_cow_bs().
 */
static BdNode *layer_below(BdNode *node)
{
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (c->role & BD_CHILD_COW) {
            return c->node;
        }
    }
    if (node->drv && (node->drv->flags & BD_DRIVER_FILTER)) {
        BdChild *c = filtered_child(node);

        return c ? c->node : NULL;
    }
    return NULL;
}

int bd_node_co_block_status_above(BdNode *node, bool want_zero,
                                  int64_t offset, int64_t bytes,
                                  int64_t *pnum, int64_t *map, BdNode **file)
{
    /*
     * As QEMU's bdrv_block_status_above(bs, NULL): where a layer defines
     * nothing, the answer is the next layer's; a format layer with nothing
     * below reads as zeroes there, and so does a range past the end of a
     * shorter layer below.
     */
    for (BdNode *n = node;;) {
        BdNode *below;
        int64_t num = 0, len;
        int ret = bd_node_co_block_status(n, want_zero, offset, bytes, &num,
                                          map, file);

        if (ret < 0 || (ret & BD_BLOCK_ALLOCATED) || num <= 0) {
            *pnum = num;
            return ret;
        }
        bytes = num;
        below = layer_below(n);
        if (!below) {
            if (n->drv && (n->drv->flags & BD_DRIVER_FORMAT)) {
                ret |= BD_BLOCK_ZERO;
            }
            *pnum = num;
            return ret;
        }
        len = bd_node_co_getlength(below);
        if (len >= 0 && offset >= len) {
            *pnum = num;
            return (ret & BD_BLOCK_EOF) | BD_BLOCK_ZERO;
        }
        if (len >= 0) {
            bytes = MIN(bytes, len - offset);
        }
        n = below;
    }
}

int bd_node_co_allocation_depth(BdNode *node, int64_t offset, int64_t bytes,
                                int64_t *pnum)
{
    int depth = 0;

    /*
     * Walk down the chain, each layer narrowing the range to what it
     * answered for, until one defines the content; QEMU counts every
     * layer it asked, filters included.
     */
    *pnum = 0;
    for (BdNode *n = node; n; n = layer_below(n)) {
        int64_t len = bd_node_co_getlength(n), num = 0;
        int ret;

        depth++;
        if (len >= 0 && offset >= len) {
            /* a shorter layer below: the rest reads as unallocated */
            break;
        }
        ret = bd_node_co_block_status(n, false, offset, bytes, &num, NULL,
                                      NULL);
        if (ret < 0) {
            return ret;
        }
        if (num <= 0) {
            break;
        }
        bytes = num;
        *pnum = num;
        if (ret & BD_BLOCK_ALLOCATED) {
            return depth;
        }
    }
    return 0;
}

int64_t bd_node_co_getlength(BdNode *node)
{
    if (!node->drv) {
        return -ENOMEDIUM;
    }
    if (node->total_bytes >= 0) {
        return node->total_bytes;
    }
    if (node->drv->co_getlength) {
        return DRV_CALL(node, node->drv->co_getlength(node));
    }
    BdChild *c = filtered_child(node);
    c = c ? c : bd_node_get_file(node);
    return c ? bd_node_co_getlength(c->node) : -ENOMEDIUM;
}

int bd_node_co_truncate(BdNode *node, int64_t offset, bool exact,
                        BdPreallocMode prealloc, BdRequestFlags flags,
                        GError **errp)
{
    BdTrackedRequest req;
    int ret;

    if (offset < 0) {
        bd_error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    if (node->read_only) {
        bd_error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!node->drv->co_truncate) {
        bd_error_setg(errp, "Image format driver does not support resize");
        return -ENOTSUP;
    }
    tracked_begin(&req, node, 0, INT64_MAX / 2, true);
    wait_serialising(&req);
    ret = node->drv->co_truncate(node, offset, exact, prealloc, flags, errp);
    if (ret == 0) {
        int64_t len;

        node->total_bytes = -1;
        len = bd_node_co_getlength(node);
        node->total_bytes = bd_length_in_sectors(len < 0 ? offset : len);
        bd_node_dirty_bitmaps_truncate(node, node->total_bytes);
    }
    tracked_end(&req, ACCT_NONE, 0, 0, 0);
    return ret;
}

/* ---- the child functions of the plugin ABI ---- */

int bd_child_co_preadv(BdChild *child, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags)
{
    return bd_node_co_preadv(child->node, offset, bytes, qiov, flags);
}

int64_t bd_child_co_pread_to_fd(BdChild *child, int64_t offset,
                                int64_t bytes, int out_fd,
                                BdRequestFlags flags)
{
    return bd_node_co_pread_to_fd(child->node, offset, bytes, out_fd, flags);
}

int bd_child_co_pwritev(BdChild *child, int64_t offset, int64_t bytes,
                        BdIOVector *qiov, BdRequestFlags flags)
{
    if (!(child->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        return -EPERM;
    }
    return bd_node_co_pwritev(child->node, offset, bytes, qiov, flags);
}

int bd_child_co_pread(BdChild *child, int64_t offset, int64_t bytes,
                      void *buf, BdRequestFlags flags)
{
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, buf, bytes);
    return bd_child_co_preadv(child, offset, bytes, &qiov, flags);
}

int bd_child_co_pwrite(BdChild *child, int64_t offset, int64_t bytes,
                       const void *buf, BdRequestFlags flags)
{
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, (void *)buf, bytes);
    return bd_child_co_pwritev(child, offset, bytes, &qiov, flags);
}

int bd_child_co_pwrite_zeroes(BdChild *child, int64_t offset, int64_t bytes,
                              BdRequestFlags flags)
{
    if (!(child->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        return -EPERM;
    }
    /*
     * A parent's zero-write may deallocate in its child only if the
     * child discards (discard=unmap), as QEMU's bdrv_co_pwrite_zeroes()
     * decides; a BlockBackend's request reaches its node with the flag
     * (QEMU's blk_co_pwrite_zeroes()), so an NBD client's zero-write may
     * unmap qcow2 clusters whatever the node's discard option.
     */
    if (!(child->node->open_flags & BD_OPEN_UNMAP)) {
        flags &= ~BD_REQ_MAY_UNMAP;
    }
    return bd_node_co_pwrite_zeroes(child->node, offset, bytes, flags);
}

int bd_child_co_pdiscard(BdChild *child, int64_t offset, int64_t bytes)
{
    if (!(child->perm & BD_PERM_WRITE)) {
        return -EPERM;
    }
    return bd_node_co_pdiscard(child->node, offset, bytes);
}

int bd_child_co_flush(BdChild *child)
{
    return bd_node_co_flush(child->node);
}

int bd_child_co_block_status(BdChild *child, bool want_zero, int64_t offset,
                             int64_t bytes, int64_t *pnum, int64_t *map,
                             BdNode **file)
{
    return bd_node_co_block_status(child->node, want_zero, offset, bytes,
                                   pnum, map, file);
}

int64_t bd_child_co_getlength(BdChild *child)
{
    return bd_node_co_getlength(child->node);
}

int bd_child_co_truncate(BdChild *child, int64_t offset, bool exact,
                         BdPreallocMode prealloc, BdRequestFlags flags,
                         GError **errp)
{
    if (!(child->perm & BD_PERM_RESIZE)) {
        bd_error_setg(errp, "The parent of node '%s' does not have the resize "
                      "permission", child->node->node_name);
        return -EPERM;
    }
    return bd_node_co_truncate(child->node, offset, exact, prealloc, flags,
                               errp);
}

/* ---- copy-on-read ---- */

/*
 * What QEMU's copy-on-read does for block-stream: the ranges of @node's
 * own layer that it does not define are read through it (from the
 * backing chain) and written into it unchanged.  One serialising request
 * covers the whole range, so a write from an export to the same blocks
 * waits until the copy is done, and the copy waits for writes already in
 * flight: a copy never overwrites newer data with what it read before.
 * The copy's own writes go to the driver directly, under that request,
 * like QEMU's (and like QEMU's they mark no dirty bitmap: what readers
 * see does not change).
 */
int bd_node_co_copy_on_read(BdNode *node, int64_t offset, int64_t bytes)
{
    uint32_t align = node->bl.request_alignment;
    int64_t aoff = ALIGN_DOWN(offset, align);
    int64_t aend = ALIGN_UP(offset + bytes, align);
    BdTrackedRequest req;
    void *buf = NULL;
    size_t buflen = 0;
    int ret = check_write(node, aoff, aend - aoff);

    if (ret < 0) {
        return ret;
    }
    tracked_begin(&req, node, aoff, aend - aoff, true);
    wait_serialising(&req);
    for (int64_t pos = aoff; pos < aend && ret >= 0;) {
        int64_t pnum = 0;
        int st = bd_node_co_block_status(node, false, pos, aend - pos, &pnum,
                                         NULL, NULL);

        if (st < 0) {
            ret = st;
            break;
        }
        if (pnum <= 0) {
            break;
        }
        pnum = MIN(ALIGN_UP(pnum, align), aend - pos);
        if (!(st & BD_BLOCK_ALLOCATED)) {
            /* in pieces of at most 1 MiB, so the bounce buffer stays small */
            int64_t n = MIN(pnum, (int64_t)1 << 20);
            BdIOVector qiov;

            if ((size_t)n > buflen) {
                free(buf);
                buflen = n;
                buf = bd_node_try_blockalign(node, buflen);
                if (!buf) {
                    ret = -ENOMEM;
                    break;
                }
            }
            bd_iovec_init_buf(&qiov, buf, n);
            ret = drv_rw(node, false, pos, n, &qiov, 0, 0);
            if (ret == 0) {
                /* no flag: a driver sees only flags it announced */
                ret = drv_rw(node, true, pos, n, &qiov, 0, 0);
            }
            pnum = n;
        }
        pos += pnum;
    }
    free(buf);
    tracked_end(&req, ACCT_NONE, ret, aoff, aend - aoff);
    return ret;
}

int bd_child_co_copy_on_read(BdChild *child, int64_t offset, int64_t bytes)
{
    if (!(child->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        return -EPERM;
    }
    return bd_node_co_copy_on_read(child->node, offset, bytes);
}
