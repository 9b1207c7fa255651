/*
 * The block layer's QMP commands (blockdev-add, blockdev-del) and the
 * --blockdev command-line option, which goes through the same path.
 */
#include <stdio.h>

#include <blockd/error.h>

#include "block/block-int.h"
#include "block/block.h"
#include "block/block-query.h"
#include "block/dirty-bitmap.h"
#include "cli/keyval.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"

static bool qmp_blockdev_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_node_open(args, true, errp) != NULL;
}

static bool qmp_blockdev_del(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_node_delete_by_monitor(
        json_object_get_string_member(args, "node-name"), errp);
}

void bd_block_init(void)
{
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
