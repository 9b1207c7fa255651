/*
 * blockd plugin ABI: typed reads of JSON object members.
 *
 * Options reach drivers, exports and objects as JsonObjects the schema
 * has validated, with optional members absent.  These read one member
 * with its default: the value when the member is there and of the type
 * asked for, @def otherwise (absent, null, or another type: never a
 * json-glib critical).  Header-only: they cost no exported symbol.
 */
#ifndef BLOCKD_JSON_H
#define BLOCKD_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The member @name of @obj (NULL: none) if it holds a value of @type. */
static inline JsonNode *bd_json_value(JsonObject *obj, const char *name,
                                      GType type)
{
    JsonNode *n = obj ? json_object_get_member(obj, name) : NULL;

    return n && JSON_NODE_HOLDS_VALUE(n) &&
           json_node_get_value_type(n) == type ? n : NULL;
}

/* A string member (borrowed from @obj), or @def. */
static inline const char *bd_json_get_str(JsonObject *obj, const char *name,
                                          const char *def)
{
    JsonNode *n = bd_json_value(obj, name, G_TYPE_STRING);

    return n ? json_node_get_string(n) : def;
}

/* A boolean member, or @def. */
static inline bool bd_json_get_bool(JsonObject *obj, const char *name,
                                    bool def)
{
    JsonNode *n = bd_json_value(obj, name, G_TYPE_BOOLEAN);

    return n ? json_node_get_boolean(n) != FALSE : def;
}

/* An integer member, or @def. */
static inline int64_t bd_json_get_int(JsonObject *obj, const char *name,
                                      int64_t def)
{
    JsonNode *n = bd_json_value(obj, name, G_TYPE_INT64);

    return n ? json_node_get_int(n) : def;
}

/* An object member (borrowed), or NULL. */
static inline JsonObject *bd_json_get_object(JsonObject *obj,
                                             const char *name)
{
    JsonNode *n = obj ? json_object_get_member(obj, name) : NULL;

    return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_JSON_H */
