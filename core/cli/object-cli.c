/*
 * --object (see object-cli.h).
 */
#include <stdio.h>

#include "cli/cli-help.h"
#include "cli/keyval.h"
#include "cli/object-cli.h"
#include "object/object.h"
#include "schema/schema.h"
#include "util/id.h"

/* QEMU's user_creatable_print_help_from_qdict(): a known type's
 * properties, else the list of types. */
static void print_object_help(JsonObject *opts)
{
    JsonNode *type = json_object_get_member(opts, "qom-type");
    g_autoptr(GPtrArray) props = NULL;

    if (type && JSON_NODE_HOLDS_VALUE(type) &&
        json_node_get_value_type(type) == G_TYPE_STRING &&
        bd_object_type_exists(json_node_get_string(type))) {
        props = bd_object_type_properties(json_node_get_string(type));
    }
    if (props) {
        bd_cli_print_options(stdout, json_node_get_string(type), props);
    } else {
        g_autoptr(GPtrArray) names = bd_object_type_names();
        bd_cli_print_names(stdout, "List of user creatable objects:", names);
    }
}

bool bd_object_cli_option(const char *prog, const char *arg,
                          bool *exit_now)
{
    g_autoptr(GError) err = NULL;
    bool help = false;
    bool is_json = false;
    g_autoptr(JsonObject) opts =
        bd_cli_parse_option(arg, "qom-type", &help, &is_json, &err);
    g_autoptr(JsonNode) in = NULL;
    g_autoptr(JsonNode) checked = NULL;
    const char *id = NULL;

    if (opts && help) {
        print_object_help(opts);
        *exit_now = true;
        return true;
    }
    if (opts) {
        in = json_node_init_object(json_node_alloc(), opts);
        checked = bd_schema_check_type("ObjectOptions", in, !is_json, &err);
    }
    if (checked) {
        JsonObject *o = json_node_get_object(checked);

        id = json_object_get_string_member(o, "id");
        if (bd_object_add(o, &err)) {
            return true;
        }
    }
    fprintf(stderr, "%s: --object %s: %s\n", prog, arg, err->message);
    if (id && !bd_id_wellformed(id) &&
        g_str_has_prefix(err->message, "Parameter 'id'")) {
        fprintf(stderr, "%s\n", BD_OBJECT_ID_HINT);
    }
    return false;
}
