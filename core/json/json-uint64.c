/*
 * Unsigned 64-bit integers in json-glib nodes (see json-uint64.h).
 */
#include "json/json-uint64.h"

JsonNode *bd_json_node_new_uint64(guint64 v)
{
    JsonNode *node = json_node_init_int(json_node_alloc(), (gint64)v);

    if (v > G_MAXINT64) {
        json_node_seal(node);
    }
    return node;
}

bool bd_json_node_is_big_uint64(JsonNode *node)
{
    return node && JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == G_TYPE_INT64 &&
           json_node_is_immutable(node) && json_node_get_int(node) < 0;
}

void bd_json_object_set_uint64_member(JsonObject *obj, const char *name,
                                      guint64 v)
{
    json_object_set_member(obj, name, bd_json_node_new_uint64(v));
}
