/*
 * User-creatable objects (see object.h and <blockd/object.h>): the table
 * of objects by id, their life through the type's callbacks, and the
 * accessors plugins use.
 *
 * The checks follow QEMU's user_creatable_add_type() in order: the type
 * must be usable, then the id well formed, then free; only then does the
 * type see the properties.
 */
#include <string.h>

#include <blockd/error.h>

#include "object/object-int.h"
#include "object/object.h"
#include "plugin/plugin-loader.h"
#include "schema/schema-query.h"
#include "util/id.h"
#include "util/main-thread.h"

struct BdObject {
    char *id;
    const BdObjectType *type;   /* the loader's copy, lives forever */
    void *instance;             /* @instance_size bytes, or NULL */
    void *opaque;
};

/* id -> BdObject, and the same objects in creation order */
static GHashTable *objects;
static GPtrArray *object_order;

static void objects_init(void)
{
    if (!objects) {
        objects = g_hash_table_new(g_str_hash, g_str_equal);
        object_order = g_ptr_array_new();
    }
}

/* Free an object whose create() was called (whatever it returned). */
static void object_free(BdObject *obj)
{
    if (obj->type->destroy) {
        obj->type->destroy(obj);
    }
    g_free(obj->instance);
    g_free(obj->id);
    g_free(obj);
}

static void object_unlink(BdObject *obj)
{
    g_hash_table_remove(objects, obj->id);
    g_ptr_array_remove(object_order, obj);
    if (obj->type->unparent) {
        obj->type->unparent(obj);
    }
}

bool bd_object_add(JsonObject *options, GError **errp)
{
    const char *type_name =
        json_object_get_string_member(options, "qom-type");
    const char *id = json_object_get_string_member(options, "id");
    g_autoptr(JsonObject) props = json_object_new();
    g_autoptr(GList) names = json_object_get_members(options);
    const BdObjectType *type;
    BdObject *obj;

    type = bd_plugins_lookup(BD_PROVIDE_OBJECT_TYPE, type_name, errp);
    if (!type) {
        return false;
    }
    if (!bd_id_wellformed(id)) {
        bd_error_setg(errp, "Parameter 'id' expects an identifier");
        return false;
    }
    objects_init();
    if (g_hash_table_contains(objects, id)) {
        /* QEMU's objects are children of the "/objects" container */
        bd_error_setg(errp, "attempt to add duplicate property '%s' to object "
                      "(type 'container')", id);
        return false;
    }

    for (GList *l = names; l; l = l->next) {
        const char *name = l->data;
        if (strcmp(name, "qom-type") && strcmp(name, "id")) {
            json_object_set_member(props, name, json_node_copy(
                json_object_get_member(options, name)));
        }
    }

    obj = g_new0(BdObject, 1);
    obj->id = g_strdup(id);
    obj->type = type;
    if (type->instance_size) {
        obj->instance = g_malloc0(type->instance_size);
    }
    obj->opaque = obj->instance;

    if (type->create && !type->create(obj, props, errp)) {
        object_free(obj);
        return false;
    }
    g_hash_table_insert(objects, obj->id, obj);
    g_ptr_array_add(object_order, obj);
    if (type->complete && !type->complete(obj, errp)) {
        object_unlink(obj);
        object_free(obj);
        return false;
    }
    return true;
}

bool bd_object_del(const char *id, GError **errp)
{
    BdObject *obj = objects ? g_hash_table_lookup(objects, id) : NULL;

    if (!obj) {
        bd_error_setg(errp, "object '%s' not found", id);
        return false;
    }
    if (obj->type->can_be_deleted && !obj->type->can_be_deleted(obj)) {
        bd_error_setg(errp, "object '%s' is in use, can not be deleted", id);
        return false;
    }
    object_unlink(obj);
    object_free(obj);
    return true;
}

void bd_objects_delete_all(void)
{
    if (!objects) {
        return;
    }
    while (object_order->len) {
        BdObject *obj = object_order->pdata[object_order->len - 1];
        object_unlink(obj);
        object_free(obj);
    }
    g_clear_pointer(&objects, g_hash_table_unref);
    g_clear_pointer(&object_order, g_ptr_array_unref);
}

/* g_ptr_array_sort() passes pointers to the elements */
static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

GPtrArray *bd_object_type_names(void)
{
    GPtrArray *plugins = bd_plugins_all();
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; plugins && i < plugins->len; i++) {
        BdPlugin *p = plugins->pdata[i];
        GPtrArray *names = p->provides[BD_PROVIDE_OBJECT_TYPE];

        if (p->state == BD_PLUGIN_FAILED || !names) {
            continue;
        }
        for (guint j = 0; j < names->len; j++) {
            g_ptr_array_add(out, g_strdup(names->pdata[j]));
        }
    }
    g_ptr_array_sort(out, compare_names);
    return out;
}

bool bd_object_type_exists(const char *name)
{
    g_autoptr(GPtrArray) names = bd_object_type_names();

    for (guint i = 0; i < names->len; i++) {
        if (!strcmp(names->pdata[i], name)) {
            return true;
        }
    }
    return false;
}

GPtrArray *bd_object_type_properties(const char *name)
{
    return bd_schema_union_branch_members("ObjectOptions", name, false);
}

/* ---- the plugin ABI ---- */

GPtrArray *bd_objects_in_order(void)
{
    GPtrArray *list = g_ptr_array_new();

    for (guint i = 0; object_order && i < object_order->len; i++) {
        g_ptr_array_add(list, object_order->pdata[i]);
    }
    return list;
}

const BdObjectType *bd_object_type_of(BdObject *obj)
{
    return obj->type;
}

const char *bd_object_get_id(BdObject *obj)
{
    return obj->id;
}

const char *bd_object_get_type_name(BdObject *obj)
{
    return obj->type->name;
}

void *bd_object_get_opaque(BdObject *obj)
{
    return obj->opaque;
}

void bd_object_set_opaque(BdObject *obj, void *opaque)
{
    obj->opaque = opaque;
}

BdObject *bd_object_find(const char *id, const char *type_name)
{
    BD_ASSERT_MAIN_LOOP();
    BdObject *obj = objects && id ? g_hash_table_lookup(objects, id) : NULL;
    const char *parent;

    if (!obj || !type_name) {
        return obj;
    }
    parent = obj->type->parent ? obj->type->parent : "object";
    if (!strcmp(obj->type->name, type_name) || !strcmp(parent, type_name)) {
        return obj;
    }
    return NULL;
}

const void *bd_object_get_interface(BdObject *obj, const char *name)
{
    for (const BdObjectInterface *i = obj->type->interfaces; i && i->name;
         i++) {
        if (!strcmp(i->name, name)) {
            return i->ops;
        }
    }
    return NULL;
}
