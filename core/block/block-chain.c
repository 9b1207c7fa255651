/*
 * What chain-changing block jobs (stream, commit) ask of the graph:
 * handles of their own on the nodes they work on, and the replacement
 * of a node's backing edge and of the backing file name in its image.
 * <blockd/block-chain.h> documents each.
 */
#include <errno.h>
#include <string.h>

#include <blockd/block-chain.h>
#include <blockd/error.h>

#include "block/block-int.h"
#include "util/main-thread.h"

BdBlockBackend *bd_block_job_blk_new(BdNode *node, const char *job_type,
                                     uint64_t perm, uint64_t shared,
                                     GError **errp)
{
    BdBlockBackend *blk;

    BD_ASSERT_MAIN_LOOP();
    blk = bd_blk_new("", perm, shared);
    bd_blk_set_job_type(blk, job_type);
    if (!bd_blk_insert(blk, node, errp)) {
        bd_blk_unref(blk);
        return NULL;
    }
    return blk;
}

bool bd_block_job_check_node(BdNode *node, GError **errp)
{
    /* QEMU's op blocker of the jobs working on the node */
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->blk && bd_blk_job_type(c->blk)) {
            bd_error_setg(errp, "Node '%s' is busy: block device is in use "
                          "by block job: %s", node->node_name,
                          bd_blk_job_type(c->blk));
            return false;
        }
    }
    return true;
}

bool bd_node_is_root(BdNode *node)
{
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        /* a job's hold on a node is QEMU's child_job edge, not a root */
        if (!c->blk || bd_blk_job_type(c->blk)) {
            return false;
        }
    }
    return true;
}

void bd_block_job_blk_free(BdBlockBackend *blk)
{
    BD_ASSERT_MAIN_LOOP();
    if (blk) {
        bd_blk_unref(blk);
    }
}

bool bd_node_set_backing(BdNode *node, BdNode *backing, GError **errp)
{
    BdChild *old = bd_node_get_backing(node);
    BdChild *c = NULL;

    BD_ASSERT_MAIN_LOOP();
    if (old && old->node == backing) {
        return true;
    }
    bd_node_drained_begin(node);
    if (backing) {
        /* the new edge first: the old one keeps the nodes below alive */
        c = bd_child_attach(node, NULL, backing, "backing", BD_CHILD_COW, 0,
                            BD_PERM_ALL, errp);
        if (!c) {
            bd_node_drained_end(node);
            return false;
        }
        /* bd_node_get_backing() finds the first: the new one goes first */
        g_ptr_array_remove(node->children, c);
        g_ptr_array_insert(node->children, 0, c);
    }
    if (old) {
        bd_child_detach(old);
    }
    bd_node_refresh_perms(node, NULL);
    bd_node_drained_end(node);
    return true;
}

typedef struct ChangeBacking {
    BdNode *node;
    const char *file;
    const char *fmt;
    int ret;
} ChangeBacking;

static void change_backing_co(void *opaque)
{
    ChangeBacking *cb = opaque;

    cb->ret = cb->node->drv->co_change_backing_file(cb->node, cb->file,
                                                    cb->fmt);
}

bool bd_node_change_backing_file(BdNode *node, const char *file,
                                 const char *fmt, GError **errp)
{
    ChangeBacking cb = { node, file, fmt, -ENOTSUP };

    BD_ASSERT_MAIN_LOOP();
    if (node->drv->co_change_backing_file) {
        bd_node_drained_begin(node);
        bd_run_co(change_backing_co, &cb);
        bd_node_drained_end(node);
    }
    if (cb.ret < 0) {
        bd_error_setg(errp, "Could not change the backing file of '%s': %s",
                      node->node_name, g_strerror(-cb.ret));
        return false;
    }
    return true;
}
