/*
 * --nbd-server (see nbd-server-cli.h).  The core has no NBD code: the
 * option is the QMP command nbd-server-start, dispatched by name, so it
 * works with whichever plugin provides that command.
 */
#include <string.h>

#include <blockd/error.h>

#include "cli/keyval.h"
#include "cli/nbd-server-cli.h"
#include "plugin/plugin-loader.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"

#define NBD_START_COMMAND "nbd-server-start"

/*
 * NbdServerOptions' 'addr' is a flat SocketAddress; the command takes the
 * legacy form, whose members other than 'type' sit under 'data'.
 */
static JsonObject *to_legacy_address(JsonObject *addr)
{
    JsonObject *legacy = json_object_new();
    JsonObject *data = json_object_new();
    GList *members = json_object_get_members(addr);

    for (GList *l = members; l; l = l->next) {
        const char *m = l->data;
        JsonNode *v = json_node_copy(json_object_get_member(addr, m));

        json_object_set_member(strcmp(m, "type") == 0 ? legacy : data, m, v);
    }
    g_list_free(members);
    json_object_set_object_member(legacy, "data", data);
    return legacy;
}

bool bd_nbd_server_cli_option(const char *arg, GError **errp)
{
    g_autoptr(JsonObject) opts = NULL;
    g_autoptr(JsonNode) in = NULL;
    g_autoptr(JsonNode) checked = NULL;
    g_autoptr(JsonObject) request = NULL;
    g_autoptr(JsonNode) req_node = NULL;
    g_autoptr(JsonObject) rsp = NULL;
    JsonObject *args;
    BdQmpSession session = { .negotiated = true, .internal = true };
    bool is_json = false;

    opts = bd_cli_parse_option(arg, NULL, NULL, &is_json, errp);
    if (!opts) {
        return false;
    }
    if (!bd_plugins_provides(BD_PROVIDE_QMP_COMMAND, NBD_START_COMMAND)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_COMMAND_NOT_FOUND,
                    "the NBD server is not available (no installed plugin "
                    "provides QMP command '%s')", NBD_START_COMMAND);
        return false;
    }
    in = json_node_init_object(json_node_alloc(), opts);
    checked = bd_schema_check_type("NbdServerOptions", in, !is_json, errp);
    if (!checked) {
        return false;
    }

    args = json_object_ref(json_node_get_object(checked));
    json_object_set_object_member(
        args, "addr",
        to_legacy_address(json_object_get_object_member(args, "addr")));
    request = json_object_new();
    json_object_set_string_member(request, "execute", NBD_START_COMMAND);
    json_object_set_object_member(request, "arguments", args);
    req_node = json_node_init_object(json_node_alloc(), request);
    rsp = bd_qmp_dispatch(&session, req_node, NULL);
    if (json_object_has_member(rsp, "error")) {
        JsonObject *e = json_object_get_object_member(rsp, "error");

        bd_error_setg(errp, "%s",
                      json_object_get_string_member(e, "desc"));
        return false;
    }
    return true;
}
