/*
 * Writing JSON the way QEMU's monitor writes it, so that QMP clients see
 * the same bytes from blockd as from qemu-storage-daemon.
 *
 * - Object members come out in the order of QEMU's QDict iteration: by
 *   hash bucket of the key, and within a bucket the member added last
 *   first.  Members are taken in json-glib's insertion order, so build
 *   objects in the order QEMU's generated code fills them (schema order).
 * - Compact form separates with ", " and ": "; the pretty form puts every
 *   member and element on its own line, indented by four spaces per
 *   level, and writes an empty object/array as "{\n<indent>}".
 * - Strings: ", \, \b, \f, \n, \r, \t are escaped by name; other control
 *   characters, DEL and every non-ASCII character become \uXXXX (upper
 *   case hex, surrogate pairs beyond the BMP); invalid UTF-8 becomes
 *   \uFFFD.  Doubles use "%.17g".
 *
 * Any thread; no global state.
 */
#ifndef BLOCKD_CORE_QMP_JSON_H
#define BLOCKD_CORE_QMP_JSON_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/* Append @node's JSON text to @out (no trailing newline). */
void bd_qmp_json_append(GString *out, JsonNode *node, bool pretty);

/* @node as a new JSON string (g_free it). */
char *bd_qmp_json_format(JsonNode *node, bool pretty);

/* The same for an object. */
char *bd_qmp_json_format_object(JsonObject *obj, bool pretty);

/* The member order of the output is bd_qdict_member_order()'s. */

#endif /* BLOCKD_CORE_QMP_JSON_H */
