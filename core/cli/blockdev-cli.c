/*
 * --blockdev: the same path as blockdev-add, after the command line's
 * own parsing (keyval or JSON) and schema check.
 */
#include <blockd/error.h>

#include "block/block.h"
#include "cli/blockdev-cli.h"
#include "cli/keyval.h"
#include "schema/schema.h"

bool bd_blockdev_cli_option(const char *arg, GError **errp)
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
