/*
 * The core's protocol-level QMP commands (see control-qmp.h).
 */
#include <stdlib.h>
#include <string.h>

#include <blockd/error.h>

#include "blockd-config.h"
#include "aio/main-loop.h"
#include "plugin/plugin-loader.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"

JsonNode *bd_qmp_version_info(void)
{
    g_auto(GStrv) parts = g_strsplit(BLOCKD_QEMU_COMPAT_VERSION, ".", 3);
    static const char *const names[] = { "major", "minor", "micro" };
    JsonObject *qemu = json_object_new();
    JsonObject *info = json_object_new();
    JsonNode *node;

    /* VersionTriple's member order */
    for (int i = 0; i < 3; i++) {
        gint64 v = parts[0] && g_strv_length(parts) > (guint)i
                   ? g_ascii_strtoll(parts[i], NULL, 10) : 0;

        json_object_set_int_member(qemu, names[i], v);
    }
    json_object_set_object_member(info, "qemu", qemu);
    json_object_set_string_member(info, "package", "blockd " BLOCKD_VERSION);
    node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, info);
    return node;
}

static bool qmp_capabilities(JsonObject *args, JsonNode **ret,
                             GError **errp)
{
    BdQmpSession *session = bd_qmp_current_session();
    JsonNode *enable = json_object_get_member(args, "enable");
    bool oob = false;

    if (!session || session->negotiated) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_COMMAND_NOT_FOUND,
                            "Capabilities negotiation is already complete, "
                            "command ignored");
        return false;
    }
    if (enable) {
        JsonArray *list;

        /* the checks (and texts) of QEMU's input visitor */
        if (!JSON_NODE_HOLDS_ARRAY(enable)) {
            bd_error_setg(errp, "Invalid parameter type for 'enable', "
                          "expected: array");
            return false;
        }
        list = json_node_get_array(enable);
        for (guint i = 0; i < json_array_get_length(list); i++) {
            JsonNode *cap = json_array_get_element(list, i);

            if (!JSON_NODE_HOLDS_VALUE(cap) ||
                json_node_get_value_type(cap) != G_TYPE_STRING) {
                bd_error_setg(errp, "Invalid parameter type for 'null', "
                              "expected: string");
                return false;
            }
            if (strcmp(json_node_get_string(cap), "oob") != 0) {
                bd_error_setg(errp,
                              "Parameter 'null' does not accept value '%s'",
                              json_node_get_string(cap));
                return false;
            }
            oob = true;
        }
    }
    if (oob && !session->oob_offered) {
        bd_error_setg(errp, "Capability 'oob' not available");
        return false;
    }
    session->oob_enabled = oob;
    session->negotiated = true;
    return true;
}

static bool qmp_query_version(JsonObject *args, JsonNode **ret,
                              GError **errp)
{
    *ret = bd_qmp_version_info();
    return true;
}

static bool qmp_query_commands(JsonObject *args, JsonNode **ret,
                               GError **errp)
{
    g_autoptr(GPtrArray) names = bd_qmp_command_names();
    JsonArray *list = json_array_new();

    for (guint i = 0; i < names->len; i++) {
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "name",
                                      g_ptr_array_index(names, i));
        json_array_add_object_element(list, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
    return true;
}

static bool qmp_quit(JsonObject *args, JsonNode **ret, GError **errp)
{
    bd_main_loop_quit();
    /*
     * Shut the subsystems down before the reply is queued, so that their
     * events (BLOCK_EXPORT_DELETED...) reach the client before the
     * "return", as qemu-storage-daemon sends them.  The daemon flushes the
     * reply before it exits.
     */
    bd_shutdown_run_notifiers();
    return true;
}

static JsonArray *string_list(GPtrArray *strings)
{
    JsonArray *list = json_array_new();

    for (guint i = 0; strings && i < strings->len; i++) {
        json_array_add_string_element(list, g_ptr_array_index(strings, i));
    }
    return list;
}

static bool qmp_query_plugins(JsonObject *args, JsonNode **ret,
                              GError **errp)
{
    static const struct {
        const char *member;
        BdProvideKind kind;
    } lists[] = {
        { "block-drivers", BD_PROVIDE_BLOCK_DRIVER },
        { "export-types", BD_PROVIDE_EXPORT_TYPE },
        { "object-types", BD_PROVIDE_OBJECT_TYPE },
        { "job-types", BD_PROVIDE_JOB_TYPE },
        { "qmp-commands", BD_PROVIDE_QMP_COMMAND },
    };
    GPtrArray *plugins = bd_plugins_all();
    JsonArray *result = json_array_new();

    for (guint i = 0; plugins && i < plugins->len; i++) {
        BdPlugin *p = g_ptr_array_index(plugins, i);
        JsonObject *info = json_object_new();
        g_autofree char *abi = g_strdup_printf("%u.%u", p->abi_major,
                                               p->abi_minor);
        const char *state = p->state == BD_PLUGIN_LOADED ? "loaded" :
                            p->state == BD_PLUGIN_FAILED ? "failed" :
                            "available";

        /* PluginInfo's member order */
        json_object_set_string_member(info, "name", p->name);
        json_object_set_string_member(info, "version",
                                      p->version ? p->version : "");
        json_object_set_string_member(info, "abi", abi);
        json_object_set_string_member(info, "state", state);
        json_object_set_string_member(info, "path", p->path ? p->path : "");
        if (p->description) {
            json_object_set_string_member(info, "description",
                                          p->description);
        }
        if (p->license) {
            json_object_set_string_member(info, "license", p->license);
        }
        if (p->error) {
            json_object_set_string_member(info, "error", p->error);
        }
        for (size_t j = 0; j < G_N_ELEMENTS(lists); j++) {
            json_object_set_array_member(info, lists[j].member,
                                         string_list(p->provides[
                                                     lists[j].kind]));
        }
        json_array_add_object_element(result, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, result);
    return true;
}

void bd_qmp_register_core_commands(void)
{
    /* in this order, query-commands lists them as qsd does (newest first) */
    bd_qmp_register_command("qmp_capabilities", qmp_capabilities,
                            BD_QMP_BEFORE_NEGOTIATION);
    bd_qmp_register_command("query-version", qmp_query_version, 0);
    bd_qmp_register_command("query-commands", qmp_query_commands, 0);
    bd_qmp_register_command("quit", qmp_quit, 0);
    bd_qmp_register_command("query-plugins", qmp_query_plugins, 0);
}
