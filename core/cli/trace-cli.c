/*
 * The -T/--trace command-line option (see bd_trace_option() in trace.h).
 */
#include <string.h>

#include "cli/keyval.h"
#include "plugin/plugin-loader.h"
#include "util/trace.h"

/*
 * Whether @name may be a trace point of a plugin that is not loaded yet:
 * it starts with the plugin's name, '-' written as '_', then '_'.
 */
static bool may_be_plugin_point(const char *name)
{
    GPtrArray *plugins = bd_plugins_all();

    for (guint i = 0; i < plugins->len; i++) {
        BdPlugin *plugin = plugins->pdata[i];
        g_autofree char *prefix = NULL;

        if (plugin->state != BD_PLUGIN_AVAILABLE) {
            continue;
        }
        prefix = g_strdelimit(g_strconcat(plugin->name, "_", NULL), "-",
                              '_');
        if (g_str_has_prefix(name, prefix)) {
            return true;
        }
    }
    return false;
}

static bool known(const char *name)
{
    return bd_trace_is_pattern(name) || bd_trace_exists(name) ||
           may_be_plugin_point(name);
}

BdTraceOptionResult bd_trace_option(const char *prog, const char *arg)
{
    static const char *const valid[] = { "enable", "events", "file", "id" };
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) unknown = g_ptr_array_new_with_free_func(g_free);
    bool help = false;
    g_autoptr(JsonObject) opts =
        bd_qemu_opts_parse_full(arg, "enable", &help, warnings, &err);
    const char *enable, *events, *file;

    for (guint i = 0; i < warnings->len; i++) {
        fprintf(stderr, "%s: -T %s: warning: %s\n", prog, arg,
                (char *)warnings->pdata[i]);
    }
    if (!opts) {
        fprintf(stderr, "%s: -T %s: %s\n", prog, arg, err->message);
        return BD_TRACE_OPTION_FAILED;
    }
    g_autoptr(GList) names = json_object_get_members(opts);
    for (GList *l = names; l; l = l->next) {
        bool ok = false;

        for (size_t i = 0; i < G_N_ELEMENTS(valid); i++) {
            ok = ok || strcmp(l->data, valid[i]) == 0;
        }
        if (!ok) {
            fprintf(stderr, "%s: -T %s: Invalid parameter '%s'\n", prog, arg,
                    (char *)l->data);
            return BD_TRACE_OPTION_FAILED;
        }
    }
    enable = json_object_get_string_member_with_default(opts, "enable",
                                                        NULL);
    events = json_object_get_string_member_with_default(opts, "events",
                                                        NULL);
    file = json_object_get_string_member_with_default(opts, "file", NULL);

    if (help || (enable && (strcmp(enable, "help") == 0 ||
                            strcmp(enable, "?") == 0))) {
        bd_plugins_load_all();
        bd_trace_list(stdout);
        return BD_TRACE_OPTION_EXIT;
    }
    if (enable && !bd_trace_enable_events(enable) &&
        !known(enable[0] == '-' ? enable + 1 : enable)) {
        fprintf(stderr, "%s: -T %s: warning: trace event '%s' does not "
                "exist\n", prog, arg, enable[0] == '-' ? enable + 1 : enable);
    }
    if (events) {
        if (!bd_trace_read_events_file(events, unknown, &err)) {
            /* QEMU reports it at the file's location: "prog:FILE: ..." */
            fprintf(stderr, "%s:%s\n", prog, err->message);
            return BD_TRACE_OPTION_FAILED;
        }
        for (guint i = 0; i < unknown->len; i++) {
            g_auto(GStrv) parts = g_strsplit(unknown->pdata[i], "\t", 2);

            if (!known(parts[1])) {
                fprintf(stderr, "%s:%s:%s: warning: trace event '%s' does "
                        "not exist\n", prog, events, parts[0], parts[1]);
            }
        }
    }
    if (file && !bd_trace_set_output(file, &err)) {
        fprintf(stderr, "%s: -T %s: %s\n", prog, arg, err->message);
        return BD_TRACE_OPTION_FAILED;
    }
    return BD_TRACE_OPTION_OK;
}
