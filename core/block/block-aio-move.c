/*
 * Moving block nodes between AioContexts (the main loop's and IOThreads'),
 * and x-blockdev-set-iothread.
 *
 * A node and every node connected to it by an edge must share one context
 * (requests descend the graph in one thread), so a move takes the whole
 * connected part of the graph that is not yet in the target context, as
 * QEMU does.  The nodes are drained, each driver takes its registrations
 * out of the old context (detach_aio_context) and puts them into the new
 * one (attach_aio_context).  A node placed in an IOThread counts as a user
 * of its context, which keeps object-del from deleting the IOThread.
 */
#include <blockd/error.h>
#include <blockd/iothread.h>

#include "block/block-int.h"

/*
 * Collect the nodes connected to @node that are not in @ctx yet, parents
 * before children (QEMU's order, which decides which error comes first).
 * A BlockBackend edge other than @allowed_blk's refuses the move.
 */
static bool collect(BdNode *node, BdAioContext *ctx,
                    BdBlockBackend *allowed_blk, GPtrArray *nodes,
                    GError **errp)
{
    if (node->ctx == ctx || g_ptr_array_find(nodes, node, NULL)) {
        return true;
    }
    g_ptr_array_add(nodes, node);
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->blk) {
            if (c->blk != allowed_blk) {
                bd_error_setg(errp, "Cannot change iothread of active block "
                              "backend");
                return false;
            }
            continue;
        }
        if (!collect(c->parent, ctx, allowed_blk, nodes, errp)) {
            return false;
        }
    }
    for (guint i = 0; i < node->children->len; i++) {
        BdChild *c = node->children->pdata[i];

        if (!collect(c->node, ctx, allowed_blk, nodes, errp)) {
            return false;
        }
    }
    return true;
}

static void node_switch_context(BdNode *node, BdAioContext *ctx)
{
    BdAioContext *main_ctx = bd_aio_main_context();

    if (node->drv->detach_aio_context) {
        node->drv->detach_aio_context(node);
    }
    if (node->ctx != main_ctx) {
        bd_aio_context_remove_user(node->ctx);
    }
    node->ctx = ctx;
    if (ctx != main_ctx) {
        bd_aio_context_add_user(ctx);
    }
    if (node->drv->attach_aio_context) {
        node->drv->attach_aio_context(node, ctx);
    }
}

bool bd_node_set_aio_context(BdNode *node, BdAioContext *ctx,
                             BdBlockBackend *allowed_blk, GError **errp)
{
    g_autoptr(GPtrArray) nodes = g_ptr_array_new();

    if (!collect(node, ctx, allowed_blk, nodes, errp)) {
        return false;
    }
    for (guint i = 0; i < nodes->len; i++) {
        bd_node_drained_begin(nodes->pdata[i]);
    }
    for (guint i = 0; i < nodes->len; i++) {
        node_switch_context(nodes->pdata[i], ctx);
    }
    for (guint i = 0; i < nodes->len; i++) {
        bd_node_drained_end(nodes->pdata[i]);
    }
    return true;
}

void bd_node_release_aio_context(BdNode *node)
{
    if (node->ctx && node->ctx != bd_aio_main_context()) {
        bd_aio_context_remove_user(node->ctx);
    }
    node->ctx = NULL;
}
