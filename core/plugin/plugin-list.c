/*
 * Listings of plugins for people: what --list-plugins prints, and the
 * warnings a start-up gives for plugins that cannot be used.
 */
#include <string.h>

#include "plugin/plugin-list.h"
#include "plugin/plugin-loader.h"

static const char *state_name(BdPluginState state)
{
    switch (state) {
    case BD_PLUGIN_AVAILABLE:
        return "available";
    case BD_PLUGIN_LOADED:
        return "loaded";
    case BD_PLUGIN_FAILED:
    default:
        return "failed";
    }
}

static const char *file_of(const BdPlugin *plugin)
{
    const char *slash = strrchr(plugin->path, '/');

    return slash ? slash + 1 : plugin->path;
}

void bd_plugins_print(FILE *out)
{
    GPtrArray *plugins = bd_plugins_all();
    g_autofree char *dirs =
        g_strjoinv(":", (char **)bd_plugins_searched_dirs());

    GPtrArray *dir_errors = bd_plugins_dir_errors();

    fprintf(out, "plugin directories: %s\n", dirs);
    for (guint i = 0; i < dir_errors->len; i++) {
        fprintf(out, "error: %s\n", (char *)dir_errors->pdata[i]);
    }
    if (plugins->len == 0) {
        fprintf(out, "no plugins found\n");
    }
    for (guint i = 0; i < plugins->len; i++) {
        const BdPlugin *plugin = plugins->pdata[i];

        fprintf(out, "%s", plugin->name);
        if (plugin->version) {
            fprintf(out, " %s (ABI %u.%u)", plugin->version,
                    plugin->abi_major, plugin->abi_minor);
        }
        fprintf(out, ": %s\n", state_name(plugin->state));
        fprintf(out, "  file: %s\n", plugin->path);
        if (plugin->description && *plugin->description) {
            fprintf(out, "  description: %s\n", plugin->description);
        }
        if (plugin->license && *plugin->license) {
            fprintf(out, "  license: %s\n", plugin->license);
        }
        for (int k = 0; k < BD_PROVIDE__MAX; k++) {
            GPtrArray *list = plugin->provides[k];
            if (list->len == 0) {
                continue;
            }
            fprintf(out, "  %s:", bd_provide_kind_plural(k));
            for (guint j = 0; j < list->len; j++) {
                fprintf(out, "%s %s", j ? "," : "", (char *)list->pdata[j]);
            }
            fprintf(out, "\n");
        }
        if (plugin->state == BD_PLUGIN_FAILED) {
            fprintf(out, "  error: %s\n", plugin->error);
        }
    }
}

void bd_plugins_warn_dirs(FILE *out, const char *prog)
{
    GPtrArray *dir_errors = bd_plugins_dir_errors();

    for (guint i = 0; i < dir_errors->len; i++) {
        fprintf(out, "%s: warning: %s\n", prog,
                (char *)dir_errors->pdata[i]);
    }
}

void bd_plugins_warn_failed(FILE *out, const char *prog)
{
    GPtrArray *plugins = bd_plugins_all();

    for (guint i = 0; i < plugins->len; i++) {
        const BdPlugin *plugin = plugins->pdata[i];
        if (plugin->state == BD_PLUGIN_FAILED) {
            fprintf(out, "%s: warning: %s: %s\n", prog, file_of(plugin),
                    plugin->error);
        }
    }
}
