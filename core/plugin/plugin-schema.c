/*
 * The core schema plus every usable plugin's fragment, in one registry.
 */
#include "plugin/plugin-loader.h"
#include "plugin/plugin-schema.h"
#include "schema/schema.h"

bool bd_plugin_schemas_load(GError **errp)
{
    GPtrArray *plugins = bd_plugins_all();

    bd_schema_reset();
    if (!bd_schema_add_core(errp)) {
        g_prefix_error(errp, "the core schema is broken: ");
        return false;
    }
    for (guint i = 0; i < plugins->len; i++) {
        BdPlugin *plugin = plugins->pdata[i];
        g_autoptr(GError) err = NULL;

        if (plugin->state == BD_PLUGIN_FAILED || !plugin->schema) {
            continue;
        }
        if (!bd_schema_add(plugin->schema, &err)) {
            g_autofree char *reason =
                g_strdup_printf("schema refused: %s", err->message);
            bd_plugin_refuse(plugin, reason);
        }
    }
    return true;
}
