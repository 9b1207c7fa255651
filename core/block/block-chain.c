/*
 * What chain-changing block jobs (stream, commit) ask of the graph:
 * handles of their own on the nodes they work on, and the replacement
 * of a node's backing edge and of the backing file name in its image.
 * <blockd/block-chain.h> documents each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <blockd/block-chain.h>
#include <blockd/error.h>

#include "block/block-int.h"
#include "block/dirty-bitmap.h"
#include "util/main-thread.h"

BdBlockBackend *bd_block_job_blk_new(BdNode *node, const char *job_type,
                                     uint64_t perm, uint64_t shared,
                                     GError **errp)
{
    BdBlockBackend *blk;

    BD_ASSERT_MAIN_LOOP();
    blk = bd_blk_new("", perm, shared);
    bd_blk_set_job_type(blk, job_type);
    bd_blk_set_job_owned(blk);
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

bool bd_node_check_backing_blocker(BdNode *node, GError **errp)
{
    /* newest first, as QEMU lists a node's op blockers */
    for (guint i = 0; i < node->parents->len; i++) {
        BdChild *c = node->parents->pdata[i];

        if (c->parent && (c->role & BD_CHILD_COW)) {
            bd_error_setg(errp, "Node '%s' is busy: node is used as backing "
                          "hd of '%s'", node->node_name,
                          c->parent->node_name);
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

void bd_block_job_drained_begin(BdNode *node)
{
    BD_ASSERT_MAIN_LOOP();
    bd_node_drained_begin(node);
}

void bd_block_job_drained_end(BdNode *node)
{
    BD_ASSERT_MAIN_LOOP();
    bd_node_drained_end(node);
}

void bd_block_job_run_co(BdCoroutineEntry *entry, void *opaque)
{
    BD_ASSERT_MAIN_LOOP();
    bd_run_co(entry, opaque);
}

/* Whether @node is @root or below it (a cycle if an edge moved there). */
static bool in_subtree(BdNode *root, BdNode *node)
{
    if (root == node) {
        return true;
    }
    for (guint i = 0; i < root->children->len; i++) {
        if (in_subtree(((BdChild *)root->children->pdata[i])->node, node)) {
            return true;
        }
    }
    return false;
}

static void move_edge(BdChild *c, BdNode *to)
{
    BdNode *from = c->node;

    g_ptr_array_remove(from->parents, c);
    c->node = to;
    bd_node_ref(to);
    g_ptr_array_insert(to->parents, 0, c);
    bd_node_unref(from);
}

bool bd_node_replace(BdNode *from, BdNode *to, GError **errp)
{
    g_autoptr(GPtrArray) moved = g_ptr_array_new();

    BD_ASSERT_MAIN_LOOP();
    bd_node_ref(from);
    bd_node_drained_begin(from);
    bd_node_drained_begin(to);
    for (guint i = 0; i < from->parents->len;) {
        BdChild *c = from->parents->pdata[i];

        if ((c->blk && bd_blk_is_job_owned(c->blk)) ||
            (c->parent && in_subtree(to, c->parent))) {
            i++;
            continue;
        }
        move_edge(c, to);
        g_ptr_array_add(moved, c);
    }
    if (!bd_node_refresh_perms(to, errp)) {
        for (guint i = 0; i < moved->len; i++) {
            move_edge(moved->pdata[i], from);
        }
        bd_node_refresh_perms(to, NULL);
        bd_node_drained_end(to);
        bd_node_drained_end(from);
        bd_node_unref(from);
        return false;
    }
    bd_node_refresh_perms(from, NULL);
    bd_node_drained_end(to);
    bd_node_drained_end(from);
    bd_node_unref(from);
    return true;
}

BdDirtyBitmap *bd_block_job_bitmap_new(BdNode *node, uint32_t granularity,
                                       GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return bd_dirty_bitmap_create(node, granularity, NULL, errp);
}

void bd_block_job_bitmap_free(BdDirtyBitmap *bm)
{
    BD_ASSERT_MAIN_LOOP();
    if (bm) {
        bd_dirty_bitmap_release(bm);
    }
}

void bd_block_job_bitmap_set(BdDirtyBitmap *bm, int64_t offset,
                             int64_t bytes)
{
    bd_dirty_bitmap_set(bm, offset, bytes);
}

void bd_block_job_bitmap_reset(BdDirtyBitmap *bm, int64_t offset,
                               int64_t bytes)
{
    bd_dirty_bitmap_reset(bm, offset, bytes);
}

uint64_t bd_block_job_bitmap_count(BdDirtyBitmap *bm)
{
    return bd_dirty_bitmap_count(bm);
}

BdNode *bd_node_backing_node(BdNode *node)
{
    BdChild *c = bd_node_get_backing(node);

    return c ? bd_child_get_node(c) : NULL;
}

bool bd_node_file_is(BdNode *node, const char *name)
{
    g_autofree char *fn = bd_node_get_filename(node);
    g_autofree char *a = NULL, *b = NULL;

    if (!strcmp(name, fn)) {
        return true;
    }
    a = realpath(name, NULL);
    b = realpath(fn, NULL);
    return a && b && !strcmp(a, b);
}

BdNode *bd_node_find_backing_image(BdNode *top, const char *filename)
{
    for (BdNode *n = bd_node_backing_node(top); n;
         n = bd_node_backing_node(n)) {
        if (bd_node_file_is(n, filename)) {
            return n;
        }
    }
    return NULL;
}

int bd_node_chain_depth(BdNode *top, BdNode *node)
{
    int d = 1;

    for (BdNode *n = top; n; n = bd_node_backing_node(n), d++) {
        if (n == node) {
            return d;
        }
    }
    return 0;
}

BdNode *bd_node_find_overlay(BdNode *active, BdNode *node)
{
    for (BdNode *n = active; n; n = bd_node_backing_node(n)) {
        if (bd_node_backing_node(n) == node) {
            return n;
        }
    }
    return NULL;
}
