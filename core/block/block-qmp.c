/*
 * The block layer's QMP commands blockdev-add, blockdev-del and
 * x-blockdev-set-iothread.
 */
#include <blockd/error.h>
#include <blockd/iothread.h>

#include "aio/aio-context.h"
#include "block/block-int.h"
#include "block/block-qmp.h"
#include "qmp/qmp-dispatch.h"

static bool qmp_blockdev_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_node_open(args, true, errp) != NULL;
}

static bool qmp_blockdev_del(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_node_delete_by_monitor(
        json_object_get_string_member(args, "node-name"), errp);
}

static bool has_backend(BdNode *node)
{
    for (guint i = 0; i < node->parents->len; i++) {
        if (((BdChild *)node->parents->pdata[i])->blk) {
            return true;
        }
    }
    return false;
}

bool bd_qmp_x_blockdev_set_iothread(JsonObject *args, JsonNode **ret,
                                    GError **errp)
{
    const char *name = json_object_get_string_member(args, "node-name");
    JsonNode *iothread = json_object_get_member(args, "iothread");
    bool force = json_object_get_boolean_member_with_default(args, "force",
                                                             false);
    BdAioContext *ctx;
    BdNode *node;

    node = bd_node_find(name);
    if (!node) {
        bd_error_setg(errp, "Failed to find node with node-name='%s'", name);
        return false;
    }
    if (!force && has_backend(node)) {
        bd_error_setg(errp,
                      "Node %s is associated with a BlockBackend and could be "
                      "in use (use force=true to override this check)", name);
        return false;
    }
    if (JSON_NODE_HOLDS_NULL(iothread)) {
        ctx = bd_aio_main_context();
    } else {
        const char *id = json_node_get_string(iothread);
        /* IOThreads are registered by their object's id */
        BdIOThread *iot = bd_iothread_find(id);

        if (!iot) {
            bd_error_setg(errp, "Cannot find iothread %s", id);
            return false;
        }
        ctx = bd_iothread_get_aio_context(iot);
    }
    return bd_node_set_aio_context(node, ctx, NULL, errp);
}

void bd_block_qmp_init(void)
{
    bd_qmp_register_command("blockdev-add", qmp_blockdev_add, 0);
    bd_qmp_register_command("blockdev-del", qmp_blockdev_del, 0);
    bd_qmp_register_command("x-blockdev-set-iothread",
                            bd_qmp_x_blockdev_set_iothread, 0);
    bd_snapshot_external_qmp_init();
    bd_block_transaction_qmp_init();
}
