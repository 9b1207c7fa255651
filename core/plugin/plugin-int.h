/*
 * State shared by the loader's parts (discovery and loading, manifests,
 * the provider registry).  Not for use outside core/plugin-*.c.
 */
#ifndef BLOCKD_CORE_PLUGIN_INTERNAL_H
#define BLOCKD_CORE_PLUGIN_INTERNAL_H

#include "plugin/plugin-loader.h"

/* The smallest descriptor a plugin may export: the ABI 1.0 layout. */
#define BD_DESCRIPTOR_MIN_SIZE \
    (offsetof(BdPluginDescriptor, init) + sizeof(void *))

BdPlugin *bd_plugin_new(const char *name, const char *path);
void bd_plugin_free(BdPlugin *plugin);
/* Mark @plugin failed with a printf-style reason (kept if already set). */
void bd_plugin_fail(BdPlugin *plugin, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/*
 * Read @plugin->manifest_path into @plugin (version, ABI, provides,
 * schema).  On error the plugin is left untouched.
 */
bool bd_plugin_read_manifest(BdPlugin *plugin, GError **errp);

/* The provider table. */
void bd_providers_reset(void);
/*
 * Claim @name of @kind for @plugin (from its manifest, before loading).
 * Fails if another plugin claims it already; the message names both files.
 */
bool bd_providers_claim(BdProvideKind kind, const char *name,
                        BdPlugin *plugin, GError **errp);
/* Drop every claim of @plugin. */
void bd_providers_release(BdPlugin *plugin);
/* The plugin claiming @name of @kind, or NULL. */
BdPlugin *bd_providers_owner(BdProvideKind kind, const char *name);
/* The registered structure for @name of @kind, or NULL if not loaded. */
const void *bd_providers_get(BdProvideKind kind, const char *name);

/* Build the registry handle given to @plugin's init(). */
BdRegistry *bd_registry_new(BdPlugin *plugin);
void bd_registry_free(BdRegistry *reg);

#endif /* BLOCKD_CORE_PLUGIN_INTERNAL_H */
