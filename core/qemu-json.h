/*
 * JSON text read the way QEMU's own JSON parser reads it.
 *
 * QEMU accepts a little more than RFC 8259 (strings in single quotes,
 * and "\u0000" stored as the modified UTF-8 bytes C0 80), refuses
 * duplicate keys, and reports errors with its own messages; users of
 * qemu-storage-daemon see those on the command line, so blockd uses this
 * reader wherever it must accept and refuse the same JSON text.
 *
 * Pure; callable from any thread.
 */
#ifndef BLOCKD_CORE_QEMU_JSON_H
#define BLOCKD_CORE_QEMU_JSON_H

#include <glib.h>
#include <json-glib/json-glib.h>

/* How deep arrays and objects may nest, as in QEMU. */
#define BD_QEMU_JSON_MAX_NESTING 1024

/*
 * Parse @text, which must hold exactly one JSON value (whitespace around
 * it is fine), into a new node (caller frees with json_node_unref()).
 *
 * Integers that fit in int64 become int nodes, other numbers double
 * nodes (an integer beyond int64, which QEMU keeps as uint64, loses
 * precision here).  Member order follows the text.
 *
 * On error returns NULL and sets @errp (BD_ERROR, BD_ERROR_GENERIC) with
 * QEMU's message, e.g. "JSON parse error, premature EOI",
 * "JSON parse error, stray '01'", "JSON parse error, invalid keyword 'x'",
 * "JSON parse error, duplicate key", "Expecting at most one JSON value",
 * "Expecting a JSON value".
 */
JsonNode *bd_qemu_json_parse(const char *text, GError **errp);

#endif /* BLOCKD_CORE_QEMU_JSON_H */
