/*
 * The QMP dispatcher (see qmp-dispatch.h).  The checks and their order
 * follow what a qemu-storage-daemon 7.2 client observes, since clients
 * and test suites compare the error texts.
 */
#include <string.h>

#include "json/json-writer.h"
#include "json/qdict-order.h"
#include "plugin/plugin-loader.h"
#include "qmp/qmp-dispatch.h"
#include "util/error.h"
#include "util/origin.h"
#include "util/trace-points.h"

typedef struct CoreCommand {
    char *name;
    BdQmpHandler handler;
    unsigned flags;
} CoreCommand;

static GHashTable *core_commands;   /* name -> CoreCommand */
static GPtrArray *core_order;       /* of CoreCommand *, registration order */
static BdQmpArgumentChecker argument_checker;
static BdQmpSession *current_session;

static void core_command_free(gpointer p)
{
    CoreCommand *cmd = p;

    g_free(cmd->name);
    g_free(cmd);
}

static void ensure_table(void)
{
    if (!core_commands) {
        core_commands = g_hash_table_new(g_str_hash, g_str_equal);
        core_order = g_ptr_array_new_with_free_func(core_command_free);
    }
}

void bd_qmp_register_command(const char *name, BdQmpHandler handler,
                             unsigned flags)
{
    CoreCommand *cmd = g_new0(CoreCommand, 1);

    ensure_table();
    bd_qmp_unregister_command(name);
    cmd->name = g_strdup(name);
    cmd->handler = handler;
    cmd->flags = flags;
    g_hash_table_insert(core_commands, cmd->name, cmd);
    g_ptr_array_add(core_order, cmd);
}

BdQmpHandler bd_qmp_find_core_handler(const char *name)
{
    CoreCommand *cmd = core_commands ? g_hash_table_lookup(core_commands,
                                                           name) : NULL;

    return cmd ? cmd->handler : NULL;
}

void bd_qmp_unregister_command(const char *name)
{
    CoreCommand *cmd;

    if (!core_commands) {
        return;
    }
    cmd = g_hash_table_lookup(core_commands, name);
    if (cmd) {
        g_hash_table_remove(core_commands, name);
        g_ptr_array_remove(core_order, cmd);
    }
}

void bd_qmp_set_argument_checker(BdQmpArgumentChecker checker)
{
    argument_checker = checker;
}

BdQmpSession *bd_qmp_current_session(void)
{
    return current_session;
}

void bd_qmp_dispatch_reset(void)
{
    if (core_commands) {
        g_hash_table_destroy(core_commands);
        g_ptr_array_unref(core_order);
        core_commands = NULL;
        core_order = NULL;
    }
    argument_checker = NULL;
}

GPtrArray *bd_qmp_command_names(void)
{
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray *plugins = bd_plugins_all();

    ensure_table();
    for (guint i = core_order->len; i-- > 0;) {
        CoreCommand *cmd = g_ptr_array_index(core_order, i);

        g_ptr_array_add(names, g_strdup(cmd->name));
        g_hash_table_add(seen, cmd->name);
    }
    for (guint i = 0; plugins && i < plugins->len; i++) {
        BdPlugin *plugin = g_ptr_array_index(plugins, i);
        GPtrArray *cmds = plugin->provides[BD_PROVIDE_QMP_COMMAND];

        for (guint j = 0; cmds && j < cmds->len; j++) {
            char *name = g_ptr_array_index(cmds, j);

            if (!g_hash_table_contains(seen, name)) {
                g_hash_table_add(seen, name);
                g_ptr_array_add(names, g_strdup(name));
            }
        }
    }
    return names;
}

JsonObject *bd_qmp_error_response(const GError *err)
{
    JsonObject *rsp = json_object_new();
    JsonObject *error = json_object_new();
    BdErrorClass cls = BD_ERROR_GENERIC;

    if (err->domain == BD_ERROR) {
        cls = (BdErrorClass)err->code;
    }
    json_object_set_string_member(error, "class", bd_error_class_name(cls));
    json_object_set_string_member(error, "desc", err->message);
    json_object_set_object_member(rsp, "error", error);
    return rsp;
}

/*
 * The checks QEMU makes on the request object's members, in the order it
 * iterates them (which decides the message when several are wrong).
 * Returns the member that names the command ("execute" or "exec-oob").
 */
static const char *check_request(JsonObject *req, bool allow_oob,
                                 GError **errp)
{
    g_autoptr(GList) order = bd_qdict_member_order(req);
    const char *exec_key = NULL;

    for (GList *l = order; l; l = l->next) {
        const char *key = l->data;
        JsonNode *value = json_object_get_member(req, key);

        if (strcmp(key, "execute") == 0 ||
            (allow_oob && strcmp(key, "exec-oob") == 0)) {
            if (!JSON_NODE_HOLDS_VALUE(value) ||
                json_node_get_value_type(value) != G_TYPE_STRING) {
                bd_error_setg(errp,
                              "QMP input member '%s' must be a string", key);
                return NULL;
            }
            if (exec_key) {
                bd_error_setg(errp, "QMP input member '%s' clashes with '%s'",
                              key, exec_key);
                return NULL;
            }
            exec_key = key;
        } else if (strcmp(key, "arguments") == 0) {
            if (!JSON_NODE_HOLDS_OBJECT(value)) {
                bd_error_setg(errp, "QMP input member 'arguments' must be "
                              "an object");
                return NULL;
            }
        } else if (strcmp(key, "id") != 0) {
            bd_error_setg(errp, "QMP input member '%s' is unexpected", key);
            return NULL;
        }
    }
    if (!exec_key) {
        bd_error_setg(errp, "QMP input lacks member 'execute'");
    }
    return exec_key;
}

/* Find @name's handler and flags among what @session may call. */
static bool find_command(BdQmpSession *session, const char *name,
                         BdQmpHandler *handler, unsigned *flags,
                         GError **errp)
{
    CoreCommand *core;

    ensure_table();
    core = g_hash_table_lookup(core_commands, name);
    if (core && (session->negotiated ||
                 (core->flags & BD_QMP_BEFORE_NEGOTIATION))) {
        *handler = core->handler;
        *flags = core->flags;
        return true;
    }
    if (!core && session->negotiated &&
        bd_plugins_provides(BD_PROVIDE_QMP_COMMAND, name)) {
        const BdQmpCommand *cmd = bd_plugins_lookup(BD_PROVIDE_QMP_COMMAND,
                                                    name, errp);
        if (!cmd) {
            return false;       /* the plugin failed: say why */
        }
        if (!cmd->handler) {
            bd_error_setg(errp, "The command %s has no implementation", name);
            return false;
        }
        *handler = cmd->handler;
        *flags = cmd->flags & BD_QMP_ALLOW_OOB;
        return true;
    }
    g_set_error(errp, BD_ERROR, BD_ERROR_COMMAND_NOT_FOUND,
                "The command %s has not been found", name);
    return false;
}

static JsonNode *run_command(BdQmpSession *session, JsonObject *req,
                             GError **errp)
{
    const char *exec_key;
    const char *name;
    BdQmpHandler handler;
    unsigned flags;
    bool oob;

    exec_key = check_request(req, session->oob_enabled, errp);
    if (!exec_key) {
        return NULL;
    }
    oob = strcmp(exec_key, "exec-oob") == 0;
    name = json_object_get_string_member(req, exec_key);
    if (!find_command(session, name, &handler, &flags, errp)) {
        return NULL;
    }
    if (oob && !(flags & BD_QMP_ALLOW_OOB)) {
        bd_error_setg(errp, "The command %s does not support OOB", name);
        return NULL;
    }

    g_autoptr(JsonObject) args = NULL;
    if (json_object_has_member(req, "arguments")) {
        args = json_object_ref(json_object_get_object_member(req,
                                                             "arguments"));
    } else {
        args = json_object_new();
    }
    if (argument_checker) {
        JsonObject *checked = NULL;

        if (!argument_checker(name, args, &checked, errp)) {
            return NULL;
        }
        if (checked) {
            json_object_unref(args);
            args = checked;
        }
    }

    JsonNode *ret = NULL;
    BdQmpSession *outer = current_session;
    BdRequestOrigin outer_origin;
    bool ok;

    BD_TRACE(&bd_tp_qmp_dispatch, "command %s", name);
    current_session = session;
    /* the daemon's own requests (--nbd-server) are not a client's */
    outer_origin = bd_request_origin_set(session && !session->internal ?
                                         BD_ORIGIN_CLIENT : BD_ORIGIN_DAEMON);
    ok = handler(args, &ret, errp);
    bd_request_origin_set(outer_origin);
    current_session = outer;
    if (!ok) {
        g_clear_pointer(&ret, json_node_unref);
        if (errp && !*errp) {
            bd_error_setg(errp, "The command %s failed", name);
        }
        if (errp) {
            BD_TRACE(&bd_tp_qmp_dispatch_error, "command %s class %s desc %s",
                     name, bd_error_class_name((*errp)->code),
                     (*errp)->message);
        }
        return NULL;
    }
    if (!ret) {
        /* a command that returns nothing answers with an empty object */
        ret = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(ret, json_object_new());
    }
    return ret;
}

JsonObject *bd_qmp_dispatch(BdQmpSession *session, JsonNode *request,
                            const GError *parse_error)
{
    g_autoptr(GError) err = NULL;
    JsonObject *req = NULL;
    JsonObject *rsp;
    JsonNode *ret = NULL;

    if (parse_error) {
        return bd_qmp_error_response(parse_error);
    }
    if (!request || !JSON_NODE_HOLDS_OBJECT(request)) {
        bd_error_setg(&err, "QMP input must be a JSON object");
        return bd_qmp_error_response(err);
    }
    req = json_node_get_object(request);

    ret = run_command(session, req, &err);
    if (ret) {
        rsp = json_object_new();
        json_object_set_member(rsp, "return", ret);
    } else {
        rsp = bd_qmp_error_response(err);
        if (!session->negotiated &&
            err->domain == BD_ERROR &&
            err->code == BD_ERROR_COMMAND_NOT_FOUND) {
            /* say what the client has to do first */
            JsonObject *error = json_object_get_object_member(rsp, "error");

            json_object_set_string_member(error, "desc",
                                          "Expecting capabilities "
                                          "negotiation with "
                                          "'qmp_capabilities'");
        }
    }
    if (json_object_has_member(req, "id")) {
        json_object_set_member(rsp, "id",
                               json_node_copy(json_object_get_member(req,
                                                                     "id")));
    }
    return rsp;
}
