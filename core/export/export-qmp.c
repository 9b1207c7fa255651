/*
 * The QMP commands of block exports: block-export-add, block-export-del,
 * query-block-exports.
 */
#include <string.h>

#include "export/export.h"
#include "qmp/qmp-dispatch.h"

static bool qmp_block_export_add(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    /* the dispatcher has checked the (boxed) arguments */
    return bd_export_add_checked(args, errp) != NULL;
}

static bool qmp_block_export_del(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    const char *mode = json_object_get_string_member_with_default(
        args, "mode", "safe");
    const char *id = json_object_get_string_member(args, "id");

    return bd_export_del(id, strcmp(mode, "hard") == 0, errp);
}

static bool qmp_query_block_exports(JsonObject *args, JsonNode **ret,
                                    GError **errp)
{
    JsonArray *list = bd_export_query();

    *ret = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return true;
}

void bd_export_register_qmp_commands(void)
{
    bd_qmp_register_command("block-export-add", qmp_block_export_add, 0);
    bd_qmp_register_command("block-export-del", qmp_block_export_del, 0);
    bd_qmp_register_command("query-block-exports", qmp_query_block_exports,
                            0);
}
