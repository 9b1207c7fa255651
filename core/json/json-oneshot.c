/*
 * One-shot JSON parsing (bd_json_parse, see json-stream.h): the text goes
 * through a stream and the first message decides, as in QEMU's
 * qobject_from_json(), which the command line uses.
 */
#include <string.h>

#include <blockd/error.h>

#include "json/json-stream.h"

typedef struct ParseOne {
    JsonNode *value;
    GError *err;
} ParseOne;

static void parse_one_emit(void *opaque, JsonNode *value, GError *err)
{
    ParseOne *one = opaque;

    if (one->value) {
        /* whatever follows a value, even an error, is one message too many */
        g_clear_pointer(&one->value, json_node_unref);
        one->err = g_error_new_literal(BD_ERROR, BD_ERROR_GENERIC,
                                       "Expecting at most one JSON value");
    }
    if (one->err) {
        /* the first error stands */
        g_clear_pointer(&value, json_node_unref);
        g_clear_error(&err);
        return;
    }
    one->value = value;
    one->err = err;
}

JsonNode *bd_json_parse(const char *text, GError **errp)
{
    ParseOne one = { 0 };
    BdJsonStream *s = bd_json_stream_new(parse_one_emit, &one);

    bd_json_stream_feed(s, text, strlen(text));
    bd_json_stream_flush(s);
    bd_json_stream_free(s);

    if (one.err) {
        g_propagate_error(errp, one.err);
        return NULL;
    }
    if (!one.value) {
        bd_error_setg(errp, "Expecting a JSON value");
    }
    return one.value;
}
