/*
 * BlockBackends: the core's handles on a node for exports and jobs.  A
 * backend holds a "root" edge with its own permissions, and holds its
 * user's new requests back while the node is drained.
 */
#include <errno.h>
#include <string.h>

#include <blockd/error.h>

#include "block-int.h"
#include "qmp-event.h"

struct BdBlockBackend {
    char *name;
    BdChild *root;
    uint64_t perm, shared;
    BdCoQueue queued;           /* requests waiting for drained_end */
    unsigned in_flight;
    bool write_through;         /* every write is FUA */
};

BdBlockBackend *bd_blk_new(const char *name, uint64_t perm, uint64_t shared)
{
    BdBlockBackend *blk = g_new0(BdBlockBackend, 1);

    blk->name = g_strdup(name);
    blk->perm = perm;
    blk->shared = shared;
    bd_co_queue_init(&blk->queued);
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
    bd_blk_remove(blk);
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

void bd_blk_drained_end_all(BdNode *node)
{
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->blk) {
            bd_co_queue_restart_all(&c->blk->queued);
        }
    }
}

/* Wait while the node is drained; NULL if there is no node. */
static BdNode *blk_enter(BdBlockBackend *blk)
{
    while (blk->root && blk->root->node->quiesce_counter) {
        bd_co_queue_wait(&blk->queued, NULL);
    }
    return blk->root ? blk->root->node : NULL;
}

int bd_blk_co_preadv(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                     BdIOVector *qiov, BdRequestFlags flags)
{
    BdNode *node = blk_enter(blk);

    return node ? bd_node_co_preadv(node, offset, bytes, qiov, flags)
                : -ENOMEDIUM;
}

int bd_blk_co_pwritev(BdBlockBackend *blk, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags)
{
    BdNode *node = blk_enter(blk);

    if (!node) {
        return -ENOMEDIUM;
    }
    if (!(blk->perm & (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED))) {
        return -EPERM;
    }
    if (blk->write_through) {
        flags |= BD_REQ_FUA;
    }
    return bd_node_co_pwritev(node, offset, bytes, qiov, flags);
}

int bd_blk_co_pwrite_zeroes(BdBlockBackend *blk, int64_t offset,
                            int64_t bytes, BdRequestFlags flags)
{
    BdNode *node = blk_enter(blk);

    if (!node) {
        return -ENOMEDIUM;
    }
    if (!(blk->perm & BD_PERM_WRITE)) {
        return -EPERM;
    }
    if (blk->write_through) {
        flags |= BD_REQ_FUA;
    }
    return bd_node_co_pwrite_zeroes(node, offset, bytes, flags);
}

int bd_blk_co_pdiscard(BdBlockBackend *blk, int64_t offset, int64_t bytes)
{
    BdNode *node = blk_enter(blk);

    if (!node) {
        return -ENOMEDIUM;
    }
    if (!(blk->perm & BD_PERM_WRITE)) {
        return -EPERM;
    }
    return bd_node_co_pdiscard(node, offset, bytes);
}

int bd_blk_co_flush(BdBlockBackend *blk)
{
    BdNode *node = blk_enter(blk);

    return node ? bd_node_co_flush(node) : 0;
}

int64_t bd_blk_co_getlength(BdBlockBackend *blk)
{
    BdNode *node = blk_enter(blk);

    return node ? bd_node_co_getlength(node) : -ENOMEDIUM;
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

    return node ? bd_node_co_block_status(node, want_zero, offset, bytes,
                                          pnum, map, file)
                : -ENOMEDIUM;
}

int bd_blk_co_truncate(BdBlockBackend *blk, int64_t offset, bool exact,
                       BdPreallocMode prealloc, BdRequestFlags flags,
                       GError **errp)
{
    BdNode *node = blk_enter(blk);

    if (!node) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC, "No medium inserted");
        return -ENOMEDIUM;
    }
    if (!(blk->perm & BD_PERM_RESIZE)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "The parent of node '%s' does not have the resize "
                    "permission", node->node_name);
        return -EPERM;
    }
    return bd_node_co_truncate(node, offset, exact, prealloc, flags, errp);
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

void bd_blk_report_io_error(BdBlockBackend *blk, bool is_read, int error)
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
    json_object_set_boolean_member(data, "nospace", error == ENOSPC);
    json_object_set_string_member(data, "reason", g_strerror(error));
    bd_qmp_event_emit("BLOCK_IO_ERROR", data);
    json_object_unref(data);
}
