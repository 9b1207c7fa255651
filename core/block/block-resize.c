/*
 * block_resize: change a node's size through a temporary backend that
 * takes the resize permission, as QEMU does, so that a user forbidding
 * resizes makes the command fail with the permission message.
 */
#include <errno.h>
#include <inttypes.h>

#include <blockd/error.h>

#include "block/block-qmp.h"

/* QEMU's largest request offset: INT64_MAX rounded down to 1 GiB. */
#define BD_MAX_LENGTH (INT64_MAX & ~((INT64_C(1) << 30) - 1))

typedef struct ResizeCo {
    BdNode *node;
    int64_t size;
    GError **errp;
    int ret;
} ResizeCo;

static void resize_co(void *opaque)
{
    ResizeCo *r = opaque;

    r->ret = bd_node_co_truncate(r->node, r->size, false, BD_PREALLOC_OFF,
                                 0, r->errp);
}

bool bd_qmp_block_resize(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *device = json_object_has_member(args, "device") ?
        json_object_get_string_member(args, "device") : NULL;
    const char *node_name = json_object_has_member(args, "node-name") ?
        json_object_get_string_member(args, "node-name") : NULL;
    int64_t size = json_object_get_int_member(args, "size");
    BdBlockBackend *blk;
    BdNode *node = node_name ? bd_node_find(node_name) : NULL;
    ResizeCo r;

    /*
     * @device names a guest device's backend; qemu-storage-daemon has
     * none, so only @node-name can find something.
     */
    if (!node) {
        bd_error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                      device ? device : "", node_name ? node_name : "");
        return false;
    }
    if (size < 0) {
        bd_error_setg(errp, "Parameter 'size' expects a >0 size");
        return false;
    }
    blk = bd_blk_new(NULL, BD_PERM_RESIZE, BD_PERM_ALL);
    if (!bd_blk_insert(blk, node, errp)) {
        bd_blk_unref(blk);
        return false;
    }
    if (size > BD_MAX_LENGTH) {
        bd_error_setg(errp, "offset(%" PRId64 ") exceeds maximum(%" PRId64 ")",
                      size, (int64_t)BD_MAX_LENGTH);
        bd_blk_unref(blk);
        return false;
    }
    r = (ResizeCo){ node, size, errp, 0 };
    bd_node_drained_begin(node);
    bd_run_co(resize_co, &r);
    bd_node_drained_end(node);
    bd_blk_unref(blk);
    return r.ret >= 0;
}
