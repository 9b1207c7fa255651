/*
 * The QMP commands of user-creatable objects: object-add, object-del,
 * qom-list-types, qom-list-properties, and the QOM tree's qom-list,
 * qom-get and qom-set.  Arguments arrive validated by
 * the schema (qapi/qom.json plus the plugins' ObjectOptions branches).
 */
#include <string.h>

#include <blockd/error.h>

#include "object/object.h"
#include "object/qom.h"
#include "plugin/plugin-loader.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema-query.h"

/* Every object type is user-creatable: the one abstract type we report. */
#define USER_CREATABLE "user-creatable"

static bool qmp_object_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_object_add(args, errp);
}

static bool qmp_object_del(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_object_del(json_object_get_string_member(args, "id"), errp);
}

static JsonObject *type_info(const char *name, bool abstract,
                             const char *parent)
{
    JsonObject *info = json_object_new();

    json_object_set_string_member(info, "name", name);
    if (abstract) {
        json_object_set_boolean_member(info, "abstract", true);
    }
    json_object_set_string_member(info, "parent", parent);
    return info;
}

/*
 * QEMU lists every QOM type it has; blockd has only the object types
 * plugins provide, all of which implement "user-creatable" and derive
 * from "object" (through their parent, when they name one).
 */
static bool qmp_qom_list_types(JsonObject *args, JsonNode **ret,
                               GError **errp)
{
    const char *implements = json_object_get_string_member_with_default(
        args, "implements", NULL);
    bool abstract = json_object_get_boolean_member_with_default(
        args, "abstract", false);
    g_autoptr(GPtrArray) names = bd_object_type_names();
    g_autoptr(GPtrArray) parents = g_ptr_array_new();
    JsonArray *list = json_array_new();

    for (guint i = 0; i < names->len; i++) {
        const BdObjectType *type =
            bd_plugins_lookup(BD_PROVIDE_OBJECT_TYPE, names->pdata[i], NULL);
        const char *parent;

        if (!type) {
            continue;   /* its plugin failed to load: not a usable type */
        }
        parent = type->parent ? type->parent : "object";
        if (strcmp(parent, "object") &&
            !g_ptr_array_find_with_equal_func(parents, parent, g_str_equal,
                                              NULL)) {
            g_ptr_array_add(parents, (gpointer)parent);
        }
        if (!implements || !strcmp(implements, type->name) ||
            !strcmp(implements, parent) ||
            !strcmp(implements, USER_CREATABLE) ||
            !strcmp(implements, "object")) {
            json_array_add_object_element(
                list, type_info(type->name, false, parent));
        }
    }
    /*
     * The parents that types name (e.g. "authz") are QEMU's abstract
     * classes, which derive from "object".
     */
    for (guint i = 0; abstract && i < parents->len; i++) {
        const char *parent = parents->pdata[i];

        if (!implements || !strcmp(implements, parent) ||
            !strcmp(implements, "object")) {
            json_array_add_object_element(list,
                                          type_info(parent, true, "object"));
        }
    }
    if (abstract && (!implements || !strcmp(implements, USER_CREATABLE))) {
        json_array_add_object_element(
            list, type_info(USER_CREATABLE, true, "interface"));
    }
    *ret = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return true;
}

static JsonObject *property_info(const char *name, const char *type)
{
    JsonObject *info = json_object_new();

    json_object_set_string_member(info, "name", name);
    json_object_set_string_member(info, "type", type);
    return info;
}

static bool qmp_qom_list_properties(JsonObject *args, JsonNode **ret,
                                    GError **errp)
{
    const char *name = json_object_get_string_member(args, "typename");
    g_autoptr(GPtrArray) props = NULL;
    JsonArray *list;

    if (bd_object_type_exists(name)) {
        props = bd_object_type_properties(name);
    }
    if (!props) {
        g_set_error(errp, BD_ERROR, BD_ERROR_DEVICE_NOT_FOUND,
                    "Class '%s' not found", name);
        return false;
    }
    list = json_array_new();
    /* every QOM object has its type name as a read-only property */
    json_array_add_object_element(list, property_info("type", "string"));
    for (guint i = 0; i < props->len; i++) {
        BdSchemaMemberInfo *m = props->pdata[i];
        g_autofree char *type = bd_schema_qom_type_name(m->type);

        json_array_add_object_element(list, property_info(m->name, type));
    }
    *ret = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return true;
}

static bool qmp_qom_list(JsonObject *args, JsonNode **ret, GError **errp)
{
    JsonArray *list = bd_qom_list(
        json_object_get_string_member(args, "path"), errp);

    if (!list) {
        return false;
    }
    *ret = json_node_init_array(json_node_alloc(), list);
    json_array_unref(list);
    return true;
}

static bool qmp_qom_get(JsonObject *args, JsonNode **ret, GError **errp)
{
    *ret = bd_qom_get(json_object_get_string_member(args, "path"),
                      json_object_get_string_member(args, "property"), errp);
    return *ret != NULL;
}

static bool qmp_qom_set(JsonObject *args, JsonNode **ret, GError **errp)
{
    return bd_qom_set(json_object_get_string_member(args, "path"),
                      json_object_get_string_member(args, "property"),
                      json_object_get_member(args, "value"), errp);
}

void bd_object_register_qmp_commands(void)
{
    bd_qmp_register_command("qom-list", qmp_qom_list, 0);
    bd_qmp_register_command("qom-get", qmp_qom_get, 0);
    bd_qmp_register_command("qom-set", qmp_qom_set, 0);
    bd_qmp_register_command("object-add", qmp_object_add, 0);
    bd_qmp_register_command("object-del", qmp_object_del, 0);
    bd_qmp_register_command("qom-list-types", qmp_qom_list_types, 0);
    bd_qmp_register_command("qom-list-properties", qmp_qom_list_properties,
                            0);
}
