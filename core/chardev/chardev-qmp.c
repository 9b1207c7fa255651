/*
 * QMP glue of the character devices: chardev-add, chardev-remove,
 * query-chardev, query-chardev-backends.
 */
#include <string.h>

#include <blockd/error.h>

#include "chardev/chardev.h"
#include "qmp/qmp-dispatch.h"

/*
 * Handlers read their arguments defensively: until the schema engine's
 * checker is installed they arrive unvalidated.
 */
static const char *arg_string(JsonObject *args, const char *name,
                              GError **errp)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n) {
        bd_error_setg(errp, "Parameter '%s' is missing", name);
        return NULL;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        bd_error_setg(errp,
                      "Invalid parameter type for '%s', expected: string",
                      name);
        return NULL;
    }
    return json_node_get_string(n);
}

static bool qmp_chardev_add(JsonObject *args, JsonNode **ret, GError **errp)
{
    const char *id = arg_string(args, "id", errp);
    JsonNode *backend;
    GError *err = NULL;

    if (!id) {
        return false;
    }
    backend = json_object_get_member(args, "backend");
    if (!backend) {
        bd_error_setg(errp, "Parameter 'backend' is missing");
        return false;
    }
    if (!JSON_NODE_HOLDS_OBJECT(backend)) {
        bd_error_setg(errp, "Invalid parameter type for 'backend', "
                      "expected: object");
        return false;
    }
    if (bd_chardev_find(id)) {
        bd_error_setg(errp, "Chardev with id '%s' already exists", id);
        return false;
    }
    if (!bd_chardev_new(id, json_node_get_object(backend), &err)) {
        bd_error_setg(errp,
                      "Failed to add chardev '%s': %s", id, err->message);
        g_error_free(err);
        return false;
    }
    /* ChardevReturn: only a pty backend has something to say */
    return true;
}

static bool qmp_chardev_remove(JsonObject *args, JsonNode **ret,
                               GError **errp)
{
    const char *id = arg_string(args, "id", errp);

    return id && bd_chardev_remove(id, errp);
}

static bool qmp_query_chardev(JsonObject *args, JsonNode **ret,
                              GError **errp)
{
    g_autoptr(GPtrArray) ids = bd_chardev_ids();
    JsonArray *list = json_array_new();

    for (guint i = 0; i < ids->len; i++) {
        BdChardev *chr = bd_chardev_find(g_ptr_array_index(ids, i));
        JsonObject *info = json_object_new();
        g_autofree char *filename = bd_chardev_filename(chr);

        json_object_set_string_member(info, "label", bd_chardev_id(chr));
        json_object_set_string_member(info, "filename", filename);
        json_object_set_boolean_member(info, "frontend-open",
                                       bd_chardev_has_frontend(chr));
        json_array_add_object_element(list, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
    return true;
}

static bool qmp_query_chardev_backends(JsonObject *args, JsonNode **ret,
                                       GError **errp)
{
    /* the backends blockd implements, in qemu-storage-daemon's order */
    static const char *const names[] = { "stdio", "socket" };
    JsonArray *list = json_array_new();

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "name", names[i]);
        json_array_add_object_element(list, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
    return true;
}

void bd_chardev_register_qmp_commands(void)
{
    bd_qmp_register_command("query-chardev", qmp_query_chardev, 0);
    bd_qmp_register_command("query-chardev-backends",
                            qmp_query_chardev_backends, 0);
    bd_qmp_register_command("chardev-add", qmp_chardev_add, 0);
    bd_qmp_register_command("chardev-remove", qmp_chardev_remove, 0);
}
