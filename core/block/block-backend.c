/*
 * BlockBackends: the core's handles on a node for exports and jobs.  A
 * backend holds a "root" edge with its own permissions, and holds its
 * user's new requests back while the node is drained.
 */
#include <errno.h>
#include <string.h>

#include <blockd/block-chain.h>
#include <blockd/error.h>

#include "block/block-int.h"
#include "qmp/qmp-event.h"
#include "util/main-thread.h"

struct BdBlockBackend {
    char *name;
    BdChild *root;
    uint64_t perm, shared;
    /*
     * Requests waiting for drained_end, from any thread: @queued_lock
     * protects the list, and drained_end takes it only after the quiesce
     * counter went down, so a waiter either sees the counter at zero or
     * is on the list when the wake-up comes.
     */
    GMutex queued_lock;
    GSList *queued;             /* BdCoroutine * */
    bool write_through;         /* every write is FUA */
    char *job_type;             /* a block job's handle: its type */
    bool job_owned;             /* a job's: drains do not hold it back */
};

BdBlockBackend *bd_blk_new(const char *name, uint64_t perm, uint64_t shared)
{
    BdBlockBackend *blk = g_new0(BdBlockBackend, 1);

    blk->name = g_strdup(name);
    blk->perm = perm;
    blk->shared = shared;
    g_mutex_init(&blk->queued_lock);
    return blk;
}

bool bd_blk_insert(BdBlockBackend *blk, BdNode *node, GError **errp)
{
    g_assert(!blk->root);
    blk->root = bd_child_attach(NULL, blk, node, "root", BD_CHILD_DATA,
                                blk->perm, blk->shared, errp);
    return blk->root != NULL;
}

void bd_blk_remove(BdBlockBackend *blk)
{
    if (blk->root) {
        BdChild *c = blk->root;

        blk->root = NULL;
        bd_child_detach(c);
    }
}

void bd_blk_unref(BdBlockBackend *blk)
{
    BD_ASSERT_MAIN_LOOP();
    if (!blk) {
        return;
    }
    bd_blk_remove(blk);
    g_assert(!blk->queued);
    g_mutex_clear(&blk->queued_lock);
    g_free(blk->job_type);
    g_free(blk->name);
    g_free(blk);
}

BdNode *bd_blk_node(BdBlockBackend *blk)
{
    return blk->root ? blk->root->node : NULL;
}

const char *bd_blk_name(BdBlockBackend *blk)
{
    return blk->name;
}

void bd_blk_set_job_type(BdBlockBackend *blk, const char *job_type)
{
    g_free(blk->job_type);
    blk->job_type = g_strdup(job_type);
}

const char *bd_blk_job_type(BdBlockBackend *blk)
{
    return blk->job_type;
}

void bd_blk_set_job_owned(BdBlockBackend *blk)
{
    blk->job_owned = true;
}

bool bd_blk_is_job_owned(BdBlockBackend *blk)
{
    return blk->job_owned;
}

bool bd_blk_set_perm(BdBlockBackend *blk, uint64_t perm, uint64_t shared,
                     GError **errp)
{
    if (blk->root && !bd_child_set_perm(blk->root, perm, shared, errp)) {
        return false;
    }
    blk->perm = perm;
    blk->shared = shared;
    return true;
}

/* Wake the requests of @blk waiting for the end of a drained section. */
static void blk_restart_queued(BdBlockBackend *blk)
{
    GSList *list;

    g_mutex_lock(&blk->queued_lock);
    list = blk->queued;
    blk->queued = NULL;
    g_mutex_unlock(&blk->queued_lock);
    /* Oldest first: the list was built by prepending. */
    list = g_slist_reverse(list);
    for (GSList *l = list; l; l = l->next) {
        bd_aio_co_wake(l->data);
    }
    g_slist_free(list);
}

void bd_blk_drained_end_all(BdNode *node)
{
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->blk) {
            blk_restart_queued(c->blk);
        }
    }
}

/*
 * Drop one count of @node's requests in flight; the last one while the
 * node is drained wakes a drain waiting in the main loop from another
 * thread (as tracked_end() in block-io.c does).
 */
static void blk_dec_in_flight(BdNode *node)
{
    if (__atomic_sub_fetch(&node->in_flight, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&node->quiesce_counter, __ATOMIC_SEQ_CST) &&
        !bd_aio_context_in_home_thread(bd_aio_main_context())) {
        bd_aio_wait_kick(bd_aio_main_context());
    }
}

/*
 * coroutine_fn: start a request of @blk: count it in flight on the node
 * first, then look at the quiesce counter (both sequentially consistent,
 * the reverse of what a drain does: it raises the counter, then waits
 * for the node to be idle), so that a drain either sees the request or
 * the request sees the drain.  A drained node makes the request take its
 * count back and wait for drained_end.  Returns the node, which holds
 * the count until blk_leave(), or NULL (no count) without a node.
 * QEMU's blk_inc_in_flight() plus blk_wait_while_drained().
 */
static BdNode *blk_enter(BdBlockBackend *blk)
{
    for (;;) {
        BdNode *node = blk->root ? blk->root->node : NULL;
        bool wait = false;

        if (!node) {
            return NULL;
        }
        __atomic_add_fetch(&node->in_flight, 1, __ATOMIC_SEQ_CST);
        /*
         * A job's own requests go on in a drained section (QEMU's
         * blk_set_disable_request_queuing()): the job pauses at its pause
         * points, and its final copy runs in the section it opened.
         */
        if (blk->job_owned ||
            !__atomic_load_n(&node->quiesce_counter, __ATOMIC_SEQ_CST)) {
            return node;
        }
        blk_dec_in_flight(node);
        g_mutex_lock(&blk->queued_lock);
        if (__atomic_load_n(&node->quiesce_counter, __ATOMIC_SEQ_CST)) {
            blk->queued = g_slist_prepend(blk->queued, bd_coroutine_self());
            wait = true;
        }
        g_mutex_unlock(&blk->queued_lock);
        if (wait) {
            /* Woken through the context's BH queue, after this yield. */
            bd_coroutine_yield();
        }
    }
}

/* The end of a request that blk_enter() let through to @node. */
static void blk_leave(BdNode *node)
{
    if (node) {
        blk_dec_in_flight(node);
    }
}

int bd_blk_co_preadv(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                     BdIOVector *qiov, BdRequestFlags flags)
{
    BdNode *node = blk_enter(blk);
    int ret;

    if (!node) {
        return -ENOMEDIUM;
    }
    ret = bd_node_co_preadv(node, offset, bytes, qiov, flags);
    blk_leave(node);
    return ret;
}

int64_t bd_blk_co_pread_to_fd(BdBlockBackend *blk, int64_t offset,
                              int64_t bytes, int out_fd,
                              BdRequestFlags flags)
{
    BdNode *node = blk_enter(blk);
    int64_t ret;

    if (!node) {
        return -ENOMEDIUM;
    }
    ret = bd_node_co_pread_to_fd(node, offset, bytes, out_fd, flags);
    blk_leave(node);
    return ret;
}

int bd_blk_co_pwritev(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    BdNode *node;
    int ret;

    if (!(blk->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        return blk->root ? -EPERM : -ENOMEDIUM;
    }
    node = blk_enter(blk);
    if (!node) {
        return -ENOMEDIUM;
    }
    if (blk->write_through) {
        flags |= BD_REQ_FUA;
    }
    ret = bd_node_co_pwritev(node, offset, bytes, qiov, flags);
    blk_leave(node);
    return ret;
}

int bd_blk_co_pwrite_zeroes(BdBlockBackend *blk, int64_t offset,
                            int64_t bytes, BdRequestFlags flags)
{
    BdNode *node;
    int ret;

    if (!(blk->perm & BD_PERM_WRITE)) {
        return blk->root ? -EPERM : -ENOMEDIUM;
    }
    node = blk_enter(blk);
    if (!node) {
        return -ENOMEDIUM;
    }
    if (blk->write_through) {
        flags |= BD_REQ_FUA;
    }
    ret = bd_node_co_pwrite_zeroes(node, offset, bytes, flags);
    blk_leave(node);
    return ret;
}

int bd_blk_co_pdiscard(BdBlockBackend *blk, int64_t offset, int64_t bytes)
{
    BdNode *node;
    int ret;

    if (!(blk->perm & BD_PERM_WRITE)) {
        return blk->root ? -EPERM : -ENOMEDIUM;
    }
    node = blk_enter(blk);
    if (!node) {
        return -ENOMEDIUM;
    }
    ret = bd_node_co_pdiscard(node, offset, bytes);
    blk_leave(node);
    return ret;
}

int bd_blk_co_flush(BdBlockBackend *blk)
{
    BdNode *node = blk_enter(blk);
    int ret;

    if (!node) {
        return 0;
    }
    ret = bd_node_co_flush(node);
    blk_leave(node);
    return ret;
}

int64_t bd_blk_co_getlength(BdBlockBackend *blk)
{
    BdNode *node = blk_enter(blk);
    int64_t ret;

    if (!node) {
        return -ENOMEDIUM;
    }
    ret = bd_node_co_getlength(node);
    blk_leave(node);
    return ret;
}

int bd_blk_co_pread(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                    void *buf, BdRequestFlags flags)
{
    BdIOVector qiov;

    bd_iovec_init_buf(&qiov, buf, bytes);
    return bd_blk_co_preadv(blk, offset, bytes, &qiov, flags);
}

int bd_blk_co_pwrite(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                     const void *buf, BdRequestFlags flags)
{
    BdIOVector qiov;

    /* the vector is only read from for a write */
    bd_iovec_init_buf(&qiov, (void *)buf, bytes);
    return bd_blk_co_pwritev(blk, offset, bytes, &qiov, flags);
}

int bd_blk_co_block_status(BdBlockBackend *blk, bool want_zero,
                           int64_t offset, int64_t bytes, int64_t *pnum,
                           int64_t *map, BdNode **file)
{
    BdNode *node = blk_enter(blk);
    int ret;

    if (!node) {
        return -ENOMEDIUM;
    }
    ret = bd_node_co_block_status_above(node, want_zero, offset, bytes,
                                        pnum, map, file);
    blk_leave(node);
    return ret;
}

int bd_blk_co_allocation_depth(BdBlockBackend *blk, int64_t offset,
                               int64_t bytes, int64_t *pnum)
{
    BdNode *node = blk_enter(blk);
    int ret;

    if (!node) {
        return -ENOMEDIUM;
    }
    ret = bd_node_co_allocation_depth(node, offset, bytes, pnum);
    blk_leave(node);
    return ret;
}

int bd_blk_co_copy_on_read(BdBlockBackend *blk, int64_t offset,
                           int64_t bytes)
{
    BdNode *node = blk_enter(blk);
    int ret;

    if (!node) {
        return -ENOMEDIUM;
    }
    if (!(blk->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        ret = -EPERM;
    } else {
        ret = bd_node_co_copy_on_read(node, offset, bytes);
    }
    blk_leave(node);
    return ret;
}

int bd_blk_co_truncate(BdBlockBackend *blk, int64_t offset, bool exact,
                       BdPreallocMode prealloc, BdRequestFlags flags,
                       GError **errp)
{
    BdNode *node;
    int ret;

    if (blk->root && !(blk->perm & BD_PERM_RESIZE)) {
        bd_error_setg(errp, "The parent of node '%s' does not have the resize "
                      "permission", blk->root->node->node_name);
        return -EPERM;
    }
    node = blk_enter(blk);
    if (!node) {
        bd_error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    ret = bd_node_co_truncate(node, offset, exact, prealloc, flags, errp);
    blk_leave(node);
    return ret;
}

int64_t bd_blk_getlength(BdBlockBackend *blk)
{
    return blk->root ? blk->root->node->total_bytes : -ENOMEDIUM;
}

BdNode *bd_blk_get_node(BdBlockBackend *blk)
{
    return bd_blk_node(blk);
}

BdAioContext *bd_blk_get_aio_context(BdBlockBackend *blk)
{
    BdNode *node = bd_blk_node(blk);

    return node ? bd_node_get_aio_context(node) : bd_aio_main_context();
}

bool bd_blk_is_writable(BdBlockBackend *blk)
{
    return blk->perm & BD_PERM_WRITE;
}

void bd_blk_get_perm(BdBlockBackend *blk, uint64_t *perm, uint64_t *shared)
{
    *perm = blk->perm;
    *shared = blk->shared;
}

void bd_blk_set_write_through(BdBlockBackend *blk, bool on)
{
    blk->write_through = on;
}

JsonObject *bd_blk_io_error_data(BdBlockBackend *blk, bool is_read,
                                 int error)
{
    JsonObject *data = json_object_new();
    BdNode *node = bd_blk_node(blk);

    json_object_set_string_member(data, "device",
                                  blk->name ? blk->name : "");
    if (node) {
        json_object_set_string_member(data, "node-name", node->node_name);
    }
    json_object_set_string_member(data, "operation",
                                  is_read ? "read" : "write");
    json_object_set_string_member(data, "action", "report");
    /*
     * No "nospace": QEMU includes it only for backends with I/O status
     * enabled (devices' backends), which qemu-storage-daemon's never are.
     */
    json_object_set_string_member(data, "reason", g_strerror(error));
    return data;
}

void bd_blk_report_io_error(BdBlockBackend *blk, bool is_read, int error)
{
    JsonObject *data = bd_blk_io_error_data(blk, is_read, error);

    bd_qmp_event_emit("BLOCK_IO_ERROR", data);
    json_object_unref(data);
}
