/*
 * One argument of an option that takes JSON or keyval (--blockdev,
 * --export, --object, --nbd-server, --monitor).  QEMU decides by the
 * first character alone: " {...}" is keyval, and so an implied-key value.
 */
#include <blockd/error.h>

#include "cli/keyval.h"
#include "json/json-stream.h"

JsonObject *bd_cli_parse_option(const char *arg, const char *implied_key,
                                bool *help, bool *is_json, GError **errp)
{
    JsonNode *node;
    JsonObject *obj;

    if (arg[0] != '{') {
        if (is_json) {
            *is_json = false;
        }
        return bd_keyval_parse(arg, implied_key, help, errp);
    }

    if (is_json) {
        *is_json = true;
    }
    if (help) {
        *help = false;
    }
    /* Starting with '{', a single value that parses is an object */
    node = bd_json_parse(arg, errp);
    if (!node) {
        return NULL;
    }
    g_assert(JSON_NODE_HOLDS_OBJECT(node));
    obj = json_object_ref(json_node_get_object(node));
    json_node_unref(node);
    return obj;
}
