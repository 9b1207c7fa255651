/*
 * --export (see export.h): the same path as block-export-add.
 */
#include <blockd/error.h>

#include "cli/export-cli.h"
#include "cli/keyval.h"
#include "export/export.h"
#include "schema/schema.h"

bool bd_export_cli_option(const char *arg, GError **errp)
{
    g_autoptr(JsonObject) opts = NULL;
    g_autoptr(JsonNode) in = NULL;
    g_autoptr(JsonNode) checked = NULL;
    bool help = false, is_json = false;

    opts = bd_cli_parse_option(arg, "type", &help, &is_json, errp);
    if (!opts) {
        return false;
    }
    in = json_node_init_object(json_node_alloc(), opts);
    /* keyval strings are coerced to the schema's types, JSON is not */
    checked = bd_schema_check_type("BlockExportOptions", in, !is_json, errp);
    if (!checked) {
        return false;
    }
    return bd_export_add(json_node_get_object(checked), errp) != NULL;
}
