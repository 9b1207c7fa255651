/*
 * Incremental JSON message splitting and parsing, as QMP needs it.
 *
 * A QMP peer sends a stream of JSON values with no framing; this module
 * cuts the stream into values the way QEMU's monitor does, so that clients
 * see the same behaviour from blockd as from qemu-storage-daemon:
 *
 * - a lexer turns bytes into tokens; besides standard JSON it accepts
 *   single-quoted strings and the escape \' in both kinds of string;
 * - a value is complete when the count of open braces and brackets drops
 *   back to zero (or below zero, or a scalar arrives at the top level);
 * - a byte that cannot start or continue a token is reported as
 *   "JSON parse error, stray '...'" and the lexer skips input until a
 *   structural character ({ } [ ] : ,), a control character other than
 *   tab, or a byte 0xFE/0xFF, so the connection continues;
 * - limits bound the memory one peer can make us hold: 64 MiB of token
 *   text and 2 Mi tokens per value, nesting depth 1024.
 *
 * Complete token sequences are parsed into json-glib nodes with QEMU's
 * error messages ("JSON parse error, expecting value", ...).  Strings are
 * kept in QEMU's modified UTF-8 (U+0000 is the two bytes C0 80), which
 * bd_qmp_json_format() writes back as \u0000.
 *
 * Single-threaded: one stream belongs to one connection.
 */
#ifndef BLOCKD_CORE_JSON_STREAM_H
#define BLOCKD_CORE_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/* QEMU's limits, kept so that a peer sees the same errors. */
#define BD_JSON_MAX_TOKEN_SIZE (64u << 20)
#define BD_JSON_MAX_TOKEN_COUNT (2u << 20)
#define BD_JSON_MAX_NESTING 1024

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
 * Parse @text (NUL-terminated) as exactly one JSON value with the same
 * rules as the stream.  Returns a new node, or NULL with @errp set (also
 * when @text holds no value or more than one).
 */
JsonNode *bd_json_parse(const char *text, GError **errp);

#endif /* BLOCKD_CORE_JSON_STREAM_H */
