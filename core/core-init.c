/*
 * Bringing the core up (see core-init.h).
 */
#include <string.h>

#include "core-init.h"

#include "aio/main-loop.h"
#include "block/block.h"
#include "chardev/chardev.h"
#include "export/export.h"
#include "job/job.h"
#include "object/object.h"
#include "object/qom.h"
#include "plugin/plugin-schema.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"

/*
 * The character devices in the QOM tree (/chardevs), which object/
 * cannot see: it shows them through this container.
 */
static GPtrArray *chardev_children(void)
{
    g_autoptr(GPtrArray) ids = bd_chardev_ids();
    GPtrArray *oldest_first = g_ptr_array_new_with_free_func(g_free);

    for (guint i = ids->len; i-- > 0;) {
        g_ptr_array_add(oldest_first, g_strdup(ids->pdata[i]));
    }
    return oldest_first;
}

static const char *chardev_child_type(const char *id)
{
    BdChardev *chr = bd_chardev_find(id);

    return chr ? bd_chardev_qom_type(chr) : NULL;
}

static JsonArray *chardev_child_properties(const char *id)
{
    BdChardev *chr = bd_chardev_find(id);
    JsonArray *list = json_array_new();

    if (chr && bd_chardev_is_socket(chr)) {
        static const char *const props[][2] = {
            { "connected", "bool" }, { "addr", "SocketAddress" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(props); i++) {
            JsonObject *info = json_object_new();

            json_object_set_string_member(info, "name", props[i][0]);
            json_object_set_string_member(info, "type", props[i][1]);
            json_array_add_object_element(list, info);
        }
    }
    return list;
}

static JsonNode *chardev_child_get(const char *id, const char *prop)
{
    BdChardev *chr = bd_chardev_find(id);

    if (!chr || !bd_chardev_is_socket(chr)) {
        return NULL;
    }
    if (strcmp(prop, "connected") == 0) {
        return json_node_init_boolean(json_node_alloc(),
                                      bd_chardev_is_connected(chr));
    }
    if (strcmp(prop, "addr") == 0) {
        g_autoptr(JsonObject) addr = bd_chardev_socket_address(chr);

        return json_node_init_object(json_node_alloc(), addr);
    }
    return NULL;
}

static const BdQomContainer chardev_container = {
    .name = "chardevs",
    .children = chardev_children,
    .child_type = chardev_child_type,
    .child_properties = chardev_child_properties,
    .child_get = chardev_child_get,
};

bool bd_core_init(GError **errp)
{
    if (!bd_plugin_schemas_load(errp)) {
        return false;
    }
    bd_main_loop_init();
    bd_block_init();
    bd_export_init();
    /* after the exports: its shutdown notifier runs before theirs */
    bd_job_init();
    /* in this order, query-commands lists them as qsd does */
    bd_qmp_register_core_commands();
    bd_chardev_register_qmp_commands();
    bd_schema_register_qmp_commands();
    bd_object_register_qmp_commands();
    bd_qom_add_container(&chardev_container);
    bd_job_register_qmp_commands();
    bd_qmp_set_argument_checker(bd_schema_check_command_args);
    return true;
}
