/*
 * The schema engine: one registry of the QMP schema (the core's embedded
 * schema plus every plugin's fragment), used to validate command
 * arguments with qemu-storage-daemon's exact error messages, to coerce
 * command-line (keyval) input, and to answer query-qmp-schema and
 * query-commands.
 *
 * Main thread only.  Errors are in the BD_ERROR domain; validation errors
 * are BD_ERROR_GENERIC ("GenericError") like QEMU's.
 */
#ifndef BLOCKD_CORE_SCHEMA_H
#define BLOCKD_CORE_SCHEMA_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/*
 * Add one embedded schema (the canonical JSON text written by
 * qapi/blockd-qapi-embed.py: {"origin": ..., "exprs": [...]}).  Add the
 * core's first, then each plugin's.  Types, commands and events must be
 * new; 'extend-enum' and 'extend-union' add values and branches to
 * definitions added earlier.  Anything already present is a conflict whose
 * message names both origins ("plugin block-x: enum value 'null-co' of
 * BlockdevDriver is already provided by plugin block-null").  On any error
 * the registry is left exactly as it was and false is returned.
 */
bool bd_schema_add(const char *text, GError **errp);

/*
 * Add the core's own schema (qapi/blockd-schema.json, embedded at build
 * time); the same as bd_schema_add() with that text.
 */
bool bd_schema_add_core(GError **errp);

/* Forget every schema added (for tests and re-discovery). */
void bd_schema_reset(void);

/* Whether the registry has a command called @name. */
bool bd_schema_has_command(const char *name);

/* Whether command @name allows out-of-band execution (FALSE if unknown). */
gboolean bd_schema_command_allows_oob(const char *name);

/*
 * Validate the arguments @args (NULL means none) of @command exactly as
 * QEMU's QMP marshaller does.  On success *@out is a new object (the caller
 * unrefs it) holding the validated arguments in schema order; integers of
 * type uint64/size above G_MAXINT64 are held as their two's complement
 * gint64 (read them back as guint64).  On failure sets @errp to QEMU's
 * message ("Parameter 'x' is missing", "Invalid parameter type for 'x',
 * expected: integer", "Parameter 'x' is unexpected", "Parameter 'x' does
 * not accept value 'y'", ...) and returns false.  An unknown @command
 * fails with CommandNotFound.
 */
bool bd_schema_check_command_args(const char *command, JsonObject *args,
                                  JsonObject **out, GError **errp);

/*
 * Validate @value against the type @type_name ("BlockdevOptions",
 * "int", "[str]" for an array, ...) and return a new validated node (the
 * caller frees it), or NULL with @errp set.  With @keyval, @value comes
 * from the command-line keyval parser: scalars are strings and are coerced
 * as QEMU's keyval input visitor does (integers in C syntax with base
 * prefixes, sizes with k/M/G/T/P/E suffixes, booleans on/off/yes/no/
 * true/false/y/n, list indexes in error paths written "a.0"), with its
 * messages ("Parameter 'size' expects integer").  @value is not modified.
 */
JsonNode *bd_schema_check_type(const char *type_name, JsonNode *value,
                               bool keyval, GError **errp);

/*
 * query-qmp-schema's return value: a new array node of SchemaInfo objects
 * for every command and event and the types they reach, type names masked
 * as numbers like QEMU does.  The caller frees it.
 */
JsonNode *bd_schema_introspect(void);

/*
 * The names of all commands in definition order (for query-commands); a
 * new array of strings owned by the caller (g_ptr_array_unref frees all).
 */
GPtrArray *bd_schema_command_names(void);

/* Register the schema's QMP commands (query-qmp-schema).  Main thread. */
void bd_schema_register_qmp_commands(void);

/*
 * Parse a size like QEMU's qemu_strtosz() (a number with an optional
 * suffix k, M, G, T, P or E): true on success.
 */
bool bd_schema_parse_size(const char *str, guint64 *result);

#endif /* BLOCKD_CORE_SCHEMA_H */
