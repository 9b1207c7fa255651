/*
 * blockd plugin ABI: user-creatable object types and the objects made
 * from them (object-add, object-del, --object).
 *
 * The core owns the objects: it checks the options against the plugin's
 * schema fragment (ObjectOptions' branch for the type), refuses bad and
 * duplicate ids, keeps the table of objects by id, and calls the type's
 * callbacks at each step of an object's life:
 *
 *   object-add:  allocate instance data -> create(props) -> (now findable
 *                by id) -> complete()
 *   object-del:  can_be_deleted()? -> unparent() -> destroy()
 *
 * A failure of create() calls destroy(); a failure of complete() calls
 * unparent() then destroy().  All callbacks run in the main thread.
 */
#ifndef BLOCKD_OBJECT_H
#define BLOCKD_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One object made with object-add or --object; owned by the daemon. */
typedef struct BdObject BdObject;

/*
 * BdObjectInterface (since ABI 1.0): one service an object type offers to
 * other plugins, as a table of functions whose layout a public header
 * defines (e.g. <blockd/authz.h> for "authz").  @name says which header's
 * table @ops points to; @ops is static and outlives the plugin's objects.
 * A type's list of interfaces ends with an entry whose @name is NULL.
 */
typedef struct BdObjectInterface {
    const char *name;
    const void *ops;
} BdObjectInterface;

/*
 * BdObjectProperty (since ABI 1.0): a property of a type's objects as
 * qom-list, qom-get and qom-set show it (qemu-storage-daemon's QOM
 * properties of the type).  A type's list ends with an entry whose
 * @name is NULL.
 * @name: e.g. "poll-max-ns".
 * @type: what qom-list says of it: "int", "bool", "string", or the name
 *        of a QAPI enum (e.g. "QCryptoSecretFormat").
 * @get: a new JsonNode with the value now; NULL with @errp set if it
 *        cannot be read.  NULL: write-only (qom-get fails with
 *        "Property 'TYPE.NAME' is not readable").
 * @set: change the property to @value, a JSON value the daemon has not
 *        checked: refuse another type with QEMU's "Invalid parameter type
 *        for 'NAME', expected: integer" (see bd_object_property_int() and
 *        friends) and a bad value with the type's own message; returns
 *        false with @errp set to refuse.  NULL: read-only (qom-set fails
 *        with "Property 'TYPE.NAME' is not writable").
 * Called in the main thread.
 */
typedef struct BdObjectProperty {
    const char *name;
    const char *type;
    JsonNode *(*get)(BdObject *obj, GError **errp);
    bool (*set)(BdObject *obj, JsonNode *value, GError **errp);
} BdObjectProperty;

/*
 * BdObjectType (since ABI 1.0):
 * @struct_size: sizeof(BdObjectType).
 * @name: the value of ObjectOptions' 'qom-type', e.g. "iothread".  The
 *        plugin's schema fragment must add it with a branch of
 *        ObjectOptions whose members are the type's properties.
 * @description: one line for listings and help.
 *
 * Appended fields; each reads as zero/NULL in a provider that does not set
 * it, which means what its description says:
 * @parent: the QOM parent type name that qom-list-types reports and that
 *        bd_object_find() also matches, e.g. "tls-creds" for
 *        "tls-creds-x509".  NULL: "object".
 * @instance_size: bytes of zeroed instance data the daemon allocates for
 *        each object before create() and frees after destroy(); reach it
 *        with bd_object_get_opaque().  0: none (the opaque pointer starts
 *        NULL).
 * @create: build the object from @props, the validated properties (the
 *        members of the type's ObjectOptions branch that were given, with
 *        their schema types; 'qom-type' and 'id' are not in it; the
 *        object is borrowed for the call).  Returns false with @errp set
 *        to refuse the object.  The object is not yet findable by id.
 *        NULL: every set of properties is accepted and nothing is done.
 * @complete: the object is now in the table (findable with
 *        bd_object_find()); finish setting it up, for example resolve
 *        references to other objects.  Returns false with @errp set to
 *        fail object-add, which then removes the object again.
 *        NULL: nothing to do.
 * @can_be_deleted: whether object-del may delete the object now; false
 *        makes object-del fail with "object 'ID' is in use, can not be
 *        deleted".  NULL: always deletable.
 * @unparent: the object is being removed from the table (object-del, a
 *        failed complete(), daemon exit): drop references to other
 *        objects.  NULL: nothing to do.
 * @destroy: free what the object holds (not the instance data the daemon
 *        allocated; the daemon frees that afterwards).  Called exactly once
 *        for every object whose create() was called.  NULL: nothing to do.
 * @interfaces: the services the type's objects offer to other plugins,
 *        ended by an entry with a NULL name (see BdObjectInterface and
 *        bd_object_get_interface()).  NULL: none.
 * @properties: the properties qom-list/qom-get/qom-set show besides
 *        "type" (which the daemon provides), in the order qom-list shows
 *        them, ended by an entry with a NULL name (see
 *        BdObjectProperty).  NULL: "type" only.
 */
struct BdObjectType {
    uint32_t struct_size;
    const char *name;
    const char *description;
    const char *parent;
    size_t instance_size;
    bool (*create)(BdObject *obj, JsonObject *props, GError **errp);
    bool (*complete)(BdObject *obj, GError **errp);
    bool (*can_be_deleted)(BdObject *obj);
    void (*unparent)(BdObject *obj);
    void (*destroy)(BdObject *obj);
    const BdObjectInterface *interfaces;
    const BdObjectProperty *properties;
};

/*
 * For BdObjectProperty's set(): @value as an integer into *@out, or
 * false with QEMU's "Invalid parameter type for '@name', expected:
 * integer".
 */
bool bd_object_property_int(JsonNode *value, const char *name,
                            int64_t *out, GError **errp);

/* The same for a string (borrowed from @value) ... */
bool bd_object_property_str(JsonNode *value, const char *name,
                            const char **out, GError **errp);

/* ... and for a boolean. */
bool bd_object_property_bool(JsonNode *value, const char *name, bool *out,
                             GError **errp);

/* The object's id as given to object-add.  Never NULL; owned by @obj. */
const char *bd_object_get_id(BdObject *obj);

/* The object's type name ('qom-type').  Never NULL; static. */
const char *bd_object_get_type_name(BdObject *obj);

/*
 * The object's opaque pointer: the instance data (BdObjectType's
 * @instance_size) until the plugin sets another with
 * bd_object_set_opaque(), NULL when there is neither.
 */
void *bd_object_get_opaque(BdObject *obj);

/*
 * Replace the opaque pointer.  The daemon never frees what is set here;
 * the type's destroy() does.  The instance data, if any, is still freed by
 * the daemon.
 */
void bd_object_set_opaque(BdObject *obj, void *opaque);

/*
 * The object called @id whose type is @type_name or has it as @parent
 * (any type when @type_name is NULL), or NULL when there is none.  Use it
 * in complete() or later to follow references by id (e.g. a 'tls-creds'
 * option); the result stays valid until the object is deleted, which
 * can_be_deleted() lets a plugin prevent while it holds one.  Main thread
 * only.
 */
BdObject *bd_object_find(const char *id, const char *type_name);

/*
 * The table of functions @obj's type offers as interface @name (see
 * BdObjectInterface), or NULL when the type does not offer it.  The
 * caller casts it to the struct the interface's header defines and
 * passes @obj back to its functions.  Any thread.
 */
const void *bd_object_get_interface(BdObject *obj, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_OBJECT_H */
