/*
 * QEMU-compatible JSON output (see json-writer.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json/json-uint64.h"
#include "json/json-writer.h"
#include "json/mod-utf8.h"
#include "json/qdict-order.h"

static void append_string(GString *out, const char *str)
{
    const char *end;

    g_string_append_c(out, '"');
    for (const char *p = str; *p; p = end) {
        long cp = bd_mod_utf8_decode(p, &end);

        switch (cp) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\b':
            g_string_append(out, "\\b");
            break;
        case '\f':
            g_string_append(out, "\\f");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (cp < 0) {
                cp = 0xFFFD;
            }
            if (cp > 0xFFFF) {
                g_string_append_printf(out, "\\u%04lX\\u%04lX",
                                       0xD800 + ((cp - 0x10000) >> 10),
                                       0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(out, "\\u%04lX", cp);
            } else {
                g_string_append_c(out, (char)cp);
            }
        }
    }
    g_string_append_c(out, '"');
}

static void newline(GString *out, bool pretty, int level)
{
    if (pretty) {
        g_string_append_c(out, '\n');
        for (int i = 0; i < level; i++) {
            g_string_append(out, "    ");
        }
    }
}

static void append_node(GString *out, JsonNode *node, bool pretty, int level);

static void append_object(GString *out, JsonObject *obj, bool pretty,
                          int level)
{
    g_autoptr(GList) order = bd_qdict_member_order(obj);

    g_string_append_c(out, '{');
    for (GList *l = order; l; l = l->next) {
        if (l != order) {
            g_string_append(out, pretty ? "," : ", ");
        }
        newline(out, pretty, level + 1);
        append_string(out, l->data);
        g_string_append(out, ": ");
        append_node(out, json_object_get_member(obj, l->data), pretty,
                    level + 1);
    }
    newline(out, pretty, level);
    g_string_append_c(out, '}');
}

static void append_array(GString *out, JsonArray *arr, bool pretty,
                         int level)
{
    guint n = json_array_get_length(arr);

    g_string_append_c(out, '[');
    for (guint i = 0; i < n; i++) {
        if (i) {
            g_string_append(out, pretty ? "," : ", ");
        }
        newline(out, pretty, level + 1);
        append_node(out, json_array_get_element(arr, i), pretty, level + 1);
    }
    newline(out, pretty, level);
    g_string_append_c(out, ']');
}

static void append_node(GString *out, JsonNode *node, bool pretty, int level)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    if (!node) {
        g_string_append(out, "null");
        return;
    }
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        append_object(out, json_node_get_object(node), pretty, level);
        return;
    case JSON_NODE_ARRAY:
        append_array(out, json_node_get_array(node), pretty, level);
        return;
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        return;
    case JSON_NODE_VALUE:
        break;
    }
    switch (json_node_get_value_type(node)) {
    case G_TYPE_BOOLEAN:
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
        break;
    case G_TYPE_INT64:
        if (bd_json_node_is_big_uint64(node)) {
            g_string_append_printf(out, "%" G_GUINT64_FORMAT,
                                   (guint64)json_node_get_int(node));
        } else {
            g_string_append_printf(out, "%" G_GINT64_FORMAT,
                                   json_node_get_int(node));
        }
        break;
    case G_TYPE_DOUBLE: {
        double d = json_node_get_double(node);

        /*
         * JSON has no infinity, yet a number too large for a double
         * (an id of 1e400) parses as one.  QEMU writes "inf", which no
         * JSON reader accepts; 1e999 is valid JSON that reads back as the
         * same infinity.  A NaN cannot come from JSON text: null.
         */
        if (isinf(d)) {
            g_string_append(out, d > 0 ? "1e999" : "-1e999");
        } else if (isnan(d)) {
            g_string_append(out, "null");
        } else {
            g_string_append(out, g_ascii_formatd(buf, sizeof(buf), "%.17g",
                                                 d));
        }
        break;
    }
    case G_TYPE_STRING:
        append_string(out, json_node_get_string(node));
        break;
    default:
        g_string_append(out, "null");
        break;
    }
}

void bd_qmp_json_append(GString *out, JsonNode *node, bool pretty)
{
    append_node(out, node, pretty, 0);
}

char *bd_qmp_json_format(JsonNode *node, bool pretty)
{
    GString *out = g_string_new(NULL);

    append_node(out, node, pretty, 0);
    return g_string_free(out, false);
}

char *bd_qmp_json_format_object(JsonObject *obj, bool pretty)
{
    GString *out = g_string_new(NULL);

    append_object(out, obj, pretty, 0);
    return g_string_free(out, false);
}
