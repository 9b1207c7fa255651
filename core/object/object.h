/*
 * User-creatable objects: the table of objects by id and their life
 * (object-add, object-del, --object), with qemu-storage-daemon's checks
 * and messages.  Object types come from plugins (BdObjectType in
 * <blockd/object.h>); their properties are the branches of ObjectOptions
 * in the plugins' schema fragments.
 *
 * Main thread only.  Errors are BD_ERROR_GENERIC unless said otherwise.
 */
#ifndef BLOCKD_CORE_OBJECT_H
#define BLOCKD_CORE_OBJECT_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/object.h>

/* The hint QEMU prints on the command line after a malformed id. */
#define BD_OBJECT_ID_HINT \
    "Identifiers consist of letters, digits, '-', '.', '_', " \
    "starting with a letter."

/*
 * Create an object from @options, an ObjectOptions already validated by
 * the schema ('qom-type', 'id' and the type's properties).  Fails with
 * "Parameter 'id' expects an identifier", "attempt to add duplicate
 * property 'ID' to object (type 'container')", the plugin loader's
 * message when the type's plugin cannot be used, or the type's own error
 * from create()/complete().  On failure nothing is left behind.
 */
bool bd_object_add(JsonObject *options, GError **errp);

/*
 * Delete object @id: "object 'ID' not found" if there is none, "object
 * 'ID' is in use, can not be deleted" if its type says so.
 */
bool bd_object_del(const char *id, GError **errp);

/* Delete every object, newest first, whatever can_be_deleted says (exit). */
void bd_objects_delete_all(void);

/*
 * The object types plugins provide (from their manifests, without loading
 * them), sorted by name; a new array of strings that frees them.
 */
GPtrArray *bd_object_type_names(void);

/*
 * Whether @name is an object type some plugin provides.
 */
bool bd_object_type_exists(const char *name);

/*
 * The properties of object type @name as the schema declares them (the
 * members of ObjectOptions' branch for @name, without 'qom-type' and
 * 'id'): a new array of BdSchemaMemberInfo (schema-query.h), or NULL if
 * the schema has no such type.
 */
GPtrArray *bd_object_type_properties(const char *name);

/*
 * Register object-add, object-del, qom-list-types, qom-list-properties,
 * qom-list, qom-get and qom-set.
 */
void bd_object_register_qmp_commands(void);

#endif /* BLOCKD_CORE_OBJECT_H */
