/*
 * The QOM tree as qemu-storage-daemon 7.2 shows it to qom-list, qom-get
 * and qom-set: the root "/" with the containers "objects" (the
 * user-creatable objects, with the properties their types declare) and
 * those other folders register (the character devices, "chardevs"),
 * paths absolute ("/objects/io0") or partial ("io0", unique in the
 * tree), with QEMU's errors.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_OBJECT_QOM_H
#define BLOCKD_CORE_OBJECT_QOM_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/*
 * A container another folder fills (this folder cannot see it): its
 * children by id, their QOM types, and their properties besides "type".
 */
typedef struct BdQomContainer {
    const char *name;                       /* e.g. "chardevs" */
    /* the children's ids, in the order qom-list shows them */
    GPtrArray *(*children)(void);
    /* a child's QOM type ("chardev-socket"), static; NULL: no such id */
    const char *(*child_type)(const char *id);
    /* the child's properties besides "type": {"name", "type"} objects */
    JsonArray *(*child_properties)(const char *id);
    /*
     * The value of property @prop of child @id (a new node), or NULL
     * (without an error) when it has no such property.
     */
    JsonNode *(*child_get)(const char *id, const char *prop);
} BdQomContainer;

/* Add @c (static) under the root, after "objects"; once. */
void bd_qom_add_container(const BdQomContainer *c);

/* qom-list, qom-get and qom-set: see qapi/qom.json. */
JsonArray *bd_qom_list(const char *path, GError **errp);
JsonNode *bd_qom_get(const char *path, const char *prop, GError **errp);
bool bd_qom_set(const char *path, const char *prop, JsonNode *value,
                GError **errp);

#endif /* BLOCKD_CORE_OBJECT_QOM_H */
