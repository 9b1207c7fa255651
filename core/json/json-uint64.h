/*
 * Unsigned 64-bit integers in json-glib nodes.
 *
 * QMP integers range from INT64_MIN to UINT64_MAX (QEMU's QNum keeps
 * either an int64 or a uint64), but a json-glib node holds only int64.
 * A value above INT64_MAX is therefore kept as an int node holding the
 * same 64 bits, sealed with json_node_seal() to tell it from the negative
 * number with those bits.  json_node_copy() keeps the seal, and nothing
 * else in blockd seals nodes.  json_node_get_int() cast to uint64_t gives
 * the value back, which is what every consumer of a uint64 member does.
 *
 * The JSON parser makes such nodes for integers in (INT64_MAX,
 * UINT64_MAX], keyval for uint64/size values, the schema engine keeps
 * them for unsigned members and refuses them for signed ones, and the
 * QMP writer prints them unsigned.
 *
 * Any thread.
 */
#ifndef BLOCKD_CORE_JSON_UINT64_H
#define BLOCKD_CORE_JSON_UINT64_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/* A new int node for @v (sealed when above INT64_MAX). */
JsonNode *bd_json_node_new_uint64(guint64 v);

/* Whether @node is an int node holding a value above INT64_MAX. */
bool bd_json_node_is_big_uint64(JsonNode *node);

/* json_object_set_int_member() for a uint64 value. */
void bd_json_object_set_uint64_member(JsonObject *obj, const char *name,
                                      guint64 v);

#endif /* BLOCKD_CORE_JSON_UINT64_H */
