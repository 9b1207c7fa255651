/*
 * --monitor: keyval or JSON, checked against MonitorOptions, as
 * qemu-storage-daemon takes it.
 */
#include <string.h>

#include <blockd/error.h>

#include "chardev/chardev.h"
#include "cli/keyval.h"
#include "cli/monitor-cli.h"
#include "monitor/monitor.h"
#include "schema/schema.h"

bool bd_monitor_cli_option(const char *arg, GError **errp)
{
    GError *err = NULL;
    bool is_json = false;
    g_autoptr(JsonObject) opts =
        bd_cli_parse_option(arg, "chardev", NULL, &is_json, &err);
    g_autoptr(JsonNode) in = NULL;
    g_autoptr(JsonNode) checked = NULL;

    if (opts) {
        in = json_node_init_object(json_node_alloc(), opts);
        checked = bd_schema_check_type("MonitorOptions", in, !is_json, &err);
    }
    if (checked) {
        JsonObject *o = json_node_get_object(checked);
        const char *chardev = json_object_get_string_member(o, "chardev");
        const char *mode = json_object_get_string_member_with_default(
            o, "mode", "control");

        /* like qemu-storage-daemon: a missing chardev is reported first */
        if (strcmp(mode, "control") != 0 && bd_chardev_find(chardev)) {
            bd_error_setg(&err, "Only QMP is supported");
        } else {
            bd_monitor_new(chardev, json_object_get_boolean_member_with_default(
                               o, "pretty", false), &err);
        }
    }
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}
