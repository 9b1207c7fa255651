/*
 * Reading JSON text the way QEMU reads it, for QMP (a stream of messages)
 * and for the command line (one value), so that users see the same
 * behaviour from blockd as from qemu-storage-daemon.
 *
 * A QMP peer sends a stream of JSON values with no framing; it is cut
 * into messages the way QEMU's monitor does:
 * - besides standard JSON, strings may be single-quoted and the escape
 *   \' is accepted in both kinds of string;
 * - a message is complete when the count of open braces and brackets
 *   drops back to zero (or below zero, or a scalar arrives at the top
 *   level);
 * - a byte that cannot start or continue a token is reported as
 *   "JSON parse error, stray '...'" and input is skipped up to a
 *   structural character ({ } [ ] : ,), a control character other than
 *   tab, or a byte 0xFE/0xFF, so the connection continues;
 * - limits bound the memory one peer can make us hold: 64 MiB of token
 *   text and 2 Mi tokens per value, nesting depth 1024.
 *
 * Complete messages are parsed with QEMU's error messages ("JSON parse
 * error, expecting value", ...).  Strings are kept in QEMU's modified
 * UTF-8 (U+0000 is the two bytes C0 80), which bd_qmp_json_format()
 * writes back as \u0000.  Integers that fit in int64 become int nodes,
 * other numbers double nodes; member order follows the text.
 *
 * A stream belongs to one thread at a time; bd_json_parse() is pure.
 */
#ifndef BLOCKD_CORE_JSON_STREAM_H
#define BLOCKD_CORE_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct BdJsonStream BdJsonStream;

/*
 * Called once per complete message: exactly one of @value and @err is
 * non-NULL.  The callee owns both (json_node_unref / g_error_free).
 * The callback may not free the stream it is called from.
 */
typedef void (*BdJsonStreamEmit)(void *opaque, JsonNode *value,
                                 GError *err);

/* A new stream that reports messages to @emit(@opaque, ...). */
BdJsonStream *bd_json_stream_new(BdJsonStreamEmit emit, void *opaque);

/*
 * Feed @len bytes (any bytes, NUL included).  Calls emit for every message
 * completed by them, in order, before returning.
 */
void bd_json_stream_feed(BdJsonStream *s, const char *buf, size_t len);

/*
 * End of input: finish the token in progress and parse whatever tokens
 * are pending (an incomplete value is reported as an error).  The stream
 * is then empty and can be fed again.
 */
void bd_json_stream_flush(BdJsonStream *s);

/* Free @s; pending input is dropped silently.  NULL is allowed. */
void bd_json_stream_free(BdJsonStream *s);

/*
 * Parse @text (NUL-terminated) as exactly one JSON value, whitespace
 * around it allowed, the way QEMU reads a JSON command-line argument: the
 * first message of the stream decides.  Returns a new node, or NULL with
 * @errp set (BD_ERROR, BD_ERROR_GENERIC): the first message's error, or
 * "Expecting at most one JSON value" when anything follows the value,
 * or "Expecting a JSON value" when @text holds none.
 */
JsonNode *bd_json_parse(const char *text, GError **errp);

#endif /* BLOCKD_CORE_JSON_STREAM_H */
