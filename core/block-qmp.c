/*
 * The block layer's QMP commands (blockdev-add, blockdev-del) and the
 * --blockdev command-line option, which goes through the same path.
 */
#include <stdio.h>

#include <blockd/error.h>

#include "block-int.h"
#include "block-qmp.h"
#include "block-query.h"
#include "dirty-bitmap.h"
#include "keyval.h"
#include "main-loop.h"
#include "qmp-dispatch.h"
#include "schema.h"

static bool qmp_blockdev_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_node_open(args, true, errp) != NULL;
}

static bool qmp_blockdev_del(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_node_delete_by_monitor(
        json_object_get_string_member(args, "node-name"), errp);
}

/*
 * At exit the nodes blockdev-add made are closed, newest first, as QEMU
 * closes all block devices: a format driver writes back what it caches
 * (qcow2's L2 and refcount tables) and marks its image clean.  The
 * exports are gone by then (their notifier was added later, so it runs
 * first).
 */
static void block_close_all(void *opaque)
{
    GPtrArray *all = bd_node_all();

    for (guint i = all->len; i-- > 0;) {
        BdNode *node;

        if (i >= all->len) {
            continue;
        }
        node = all->pdata[i];
        if (node->monitor_owned && node->refcnt == 1) {
            node->monitor_owned = false;
            bd_node_unref(node);
        }
    }
}

void bd_block_init(void)
{
    bd_shutdown_add_notifier(block_close_all, NULL);
    bd_aio_main_context();
    bd_qmp_register_command("blockdev-add", qmp_blockdev_add, 0);
    bd_qmp_register_command("blockdev-del", qmp_blockdev_del, 0);
    bd_block_aio_move_init();
    bd_block_query_init();
    bd_dirty_bitmap_qmp_init();
}

bool bd_blockdev_option(const char *arg, GError **errp)
{
    g_autoptr(JsonObject) opts = NULL;
    g_autoptr(JsonNode) in = NULL;
    g_autoptr(JsonNode) checked = NULL;
    bool help = false, is_json = false;

    opts = bd_cli_parse_option(arg, "driver", &help, &is_json, errp);
    if (!opts) {
        return false;
    }
    in = json_node_init_object(json_node_alloc(), opts);
    checked = bd_schema_check_type("BlockdevOptions", in, !is_json, errp);
    if (!checked) {
        return false;
    }
    return bd_node_open(json_node_get_object(checked), true, errp) != NULL;
}
