/*
 * block-copy-on-read: the copy-on-read filter driver.  A read through it
 * first copies into its file node what that node's backing chain
 * supplies for the range (so the top layer defines it from then on),
 * then reads the file node.  With 'bottom', only what the layers down to
 * the bottom node (included) define is copied, as QEMU's
 * cor_co_preadv_part.  Writes, zeroes, discards and flushes pass through.
 */
#include <errno.h>

#include <blockd/blockd.h>

#include "block-copy-on-read-schema.h"

typedef struct CorNode {
    BdChild *file;
    BdNode *bottom;     /* referenced; NULL: copy from the whole chain */
} CorNode;

static bool cor_open(BdNode *node, JsonObject *opts, unsigned flags,
                     GError **errp)
{
    CorNode *s = bd_node_get_opaque(node);
    const char *bottom_name =
        json_object_get_string_member_with_default(opts, "bottom", NULL);
    const BdBlockDriver *drv;
    BdNode *bottom;

    /* QEMU opens the file before it looks at the bottom node */
    s->file = bd_node_open_child(node, opts, "file",
                                 BD_CHILD_FILTERED | BD_CHILD_PRIMARY,
                                 false, errp);
    if (!s->file) {
        return false;
    }
    if (!bottom_name) {
        return true;
    }
    bottom = bd_node_find(bottom_name);
    if (!bottom) {
        bd_error_setg(errp, "Bottom node '%s' not found", bottom_name);
        return false;
    }
    drv = bd_block_driver_find(bd_node_get_driver_name(bottom), NULL);
    if (drv && (drv->flags & BD_DRIVER_FILTER)) {
        bd_error_setg(errp, "Bottom node '%s' is a filter", bottom_name);
        return false;
    }
    bd_node_ref(bottom);
    s->bottom = bottom;
    return true;
}

static void cor_close(BdNode *node)
{
    CorNode *s = bd_node_get_opaque(node);

    if (s->bottom) {
        bd_node_unref(s->bottom);
        s->bottom = NULL;
    }
}

static int64_t cor_co_getlength(BdNode *node)
{
    CorNode *s = bd_node_get_opaque(node);

    return bd_child_co_getlength(s->file);
}

/*
 * Whether a layer from the file node's backing node down to the bottom
 * node (included) defines the range from @offset: 1 yes, 0 no, with
 * *pnum the length of the same answer, or a negative errno (QEMU's
 * bdrv_is_allocated_above(backing, bottom, include_base=true)).
 */
bd_coroutine_fn
static int cor_allocated_above(CorNode *s, int64_t offset, int64_t bytes,
                               int64_t *pnum)
{
    BdNode *layer = bd_child_get_node(s->file);
    int64_t n = bytes;

    for (;;) {
        BdChild *backing = bd_node_get_backing(layer);
        int64_t pn = 0;
        int ret;

        if (!backing) {
            /* the bottom is not in the chain: nothing below counts */
            break;
        }
        ret = bd_child_co_block_status(backing, false, offset, n, &pn,
                                       NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (pn <= 0) {
            /* beyond the end of this layer: it defines nothing there */
            pn = n;
        } else if (ret & BD_BLOCK_ALLOCATED) {
            *pnum = MIN(n, pn);
            return 1;
        }
        n = MIN(n, pn);
        layer = bd_child_get_node(backing);
        if (layer == s->bottom) {
            break;
        }
    }
    *pnum = n;
    return 0;
}

static int cor_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                         BdIOVector *qiov, BdRequestFlags flags)
{
    CorNode *s = bd_node_get_opaque(node);
    int64_t pos = offset, end = offset + bytes;
    int ret;

    if (!s->bottom) {
        ret = bd_child_co_copy_on_read(s->file, offset, bytes);
    } else {
        ret = 0;
        while (pos < end) {
            int64_t n = 0;
            int alloc = bd_child_co_block_status(s->file, false, pos,
                                                 end - pos, &n, NULL, NULL);

            if (alloc >= 0 && n <= 0) {
                break;      /* past the end of the file node */
            }
            if (alloc < 0 || !(alloc & BD_BLOCK_ALLOCATED)) {
                int64_t want = alloc < 0 ? end - pos : n;

                alloc = cor_allocated_above(s, pos, want, &n);
                /* as QEMU: an error while looking still copies */
                if (alloc != 0) {
                    ret = bd_child_co_copy_on_read(s->file, pos, n);
                    if (ret < 0) {
                        break;
                    }
                }
            }
            pos += n;
        }
    }
    /*
     * A copy that fails (e.g. a read-only image) fails the read, as in
     * QEMU where the read and the copy are one request.
     */
    if (ret < 0) {
        return ret;
    }
    return bd_child_co_preadv(s->file, offset, bytes, qiov, flags);
}

static int cor_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                          BdIOVector *qiov, BdRequestFlags flags)
{
    CorNode *s = bd_node_get_opaque(node);

    return bd_child_co_pwritev(s->file, offset, bytes, qiov, flags);
}

static int cor_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                                BdRequestFlags flags)
{
    CorNode *s = bd_node_get_opaque(node);

    return bd_child_co_pwrite_zeroes(s->file, offset, bytes, flags);
}

static int cor_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    CorNode *s = bd_node_get_opaque(node);

    return bd_child_co_pdiscard(s->file, offset, bytes);
}

/*
 * QEMU's cor_child_perm: the users' permissions pass through, plus
 * write-unchanged for the copies, which the node always lets others take.
 */
static void cor_child_perm(BdNode *node, BdChild *child, BdChildRole role,
                           uint64_t perm, uint64_t shared, uint64_t *nperm,
                           uint64_t *nshared)
{
    const uint64_t passthrough = BD_PERM_CONSISTENT_READ | BD_PERM_WRITE |
                                 BD_PERM_RESIZE;

    *nperm = (perm & passthrough) | BD_PERM_WRITE_UNCHANGED;
    *nshared = (shared & passthrough) | BD_PERM_WRITE_UNCHANGED |
               BD_PERM_GRAPH_MOD;
}

/* The file's image information is the node's, as for QEMU's filters. */
static int cor_get_info(BdNode *node, bool *is_dirty)
{
    BdChild *file = bd_node_get_file(node);

    return file ? bd_node_get_info(bd_child_get_node(file), is_dirty)
                : -ENOMEDIUM;
}

static const BdBlockDriver cor_driver = {
    .struct_size = sizeof(BdBlockDriver),
    .name = "copy-on-read",
    .description = "copy-on-read filter: reads copy what the backing "
                   "chain supplies into the top layer",
    .instance_size = sizeof(CorNode),
    .flags = BD_DRIVER_FILTER | BD_DRIVER_THREAD_SAFE,
    .open = cor_open,
    .close = cor_close,
    .co_getlength = cor_co_getlength,
    .get_info = cor_get_info,
    .child_perm = cor_child_perm,
    .co_preadv = cor_co_preadv,
    .co_pwritev = cor_co_pwritev,
    .co_pwrite_zeroes = cor_co_pwrite_zeroes,
    .co_pdiscard = cor_co_pdiscard,
};

static bool block_copy_on_read_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &cor_driver, errp);
}

BD_PLUGIN(.name = "block-copy-on-read",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the copy-on-read filter driver",
          .license = "GPL-2.0-or-later",
          .schema = block_copy_on_read_schema,
          .init = block_copy_on_read_init);
