/*
 * The provider table (which plugin provides which driver, export type,
 * object type, job type and QMP command) and the BdRegistry handle through
 * which a plugin's init() fills it.
 *
 * Names are claimed in two ways: from manifests at start-up, before any
 * plugin code runs, and by registration when a plugin is loaded.  A
 * registration must match a claim of the same plugin (if the plugin has a
 * manifest) or claim a free name (if it has none).
 */
#include <stddef.h>
#include <string.h>

#include <blockd/blockd.h>

#include "plugin/plugin-int.h"
#include "util/main-thread.h"

typedef struct BdProvider {
    BdPlugin *plugin;
    void *loaded;           /* the daemon's zero-extended copy, or NULL */
} BdProvider;

/* The prefix every provider structure starts with. */
typedef struct BdProviderHead {
    uint32_t struct_size;
    const char *name;
} BdProviderHead;

struct BdRegistry {
    BdPlugin *plugin;
};

/* name -> BdProvider, one table per kind */
static GHashTable *providers[BD_PROVIDE__MAX];

/*
 * Sizes of each provider structure in ABI 1.0, the smallest a plugin may
 * register.  When a field is appended in a later minor, these stay as they
 * are: they describe the oldest layout still accepted.
 */
static const size_t provider_min_size[BD_PROVIDE__MAX] = {
    [BD_PROVIDE_BLOCK_DRIVER] =
        offsetof(BdBlockDriver, description) + sizeof(const char *),
    [BD_PROVIDE_EXPORT_TYPE] =
        offsetof(BdExportType, description) + sizeof(const char *),
    [BD_PROVIDE_OBJECT_TYPE] =
        offsetof(BdObjectType, description) + sizeof(const char *),
    [BD_PROVIDE_JOB_TYPE] =
        offsetof(BdJobType, description) + sizeof(const char *),
    [BD_PROVIDE_QMP_COMMAND] =
        offsetof(BdQmpCommand, flags) + sizeof(uint32_t),
};

/* Every provider structure must start like BdProviderHead. */
#define ASSERT_HEAD(type)                                                 \
    G_STATIC_ASSERT(offsetof(type, name) == offsetof(BdProviderHead, name))
ASSERT_HEAD(BdBlockDriver);
ASSERT_HEAD(BdExportType);
ASSERT_HEAD(BdObjectType);
ASSERT_HEAD(BdJobType);
ASSERT_HEAD(BdQmpCommand);

static const size_t provider_size[BD_PROVIDE__MAX] = {
    [BD_PROVIDE_BLOCK_DRIVER] = sizeof(BdBlockDriver),
    [BD_PROVIDE_EXPORT_TYPE] = sizeof(BdExportType),
    [BD_PROVIDE_OBJECT_TYPE] = sizeof(BdObjectType),
    [BD_PROVIDE_JOB_TYPE] = sizeof(BdJobType),
    [BD_PROVIDE_QMP_COMMAND] = sizeof(BdQmpCommand),
};

static void provider_free(gpointer p)
{
    BdProvider *provider = p;

    g_free(provider->loaded);
    g_free(provider);
}

static GHashTable *table(BdProvideKind kind)
{
    if (!providers[kind]) {
        providers[kind] = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                g_free, provider_free);
    }
    return providers[kind];
}

void bd_providers_reset(void)
{
    for (int k = 0; k < BD_PROVIDE__MAX; k++) {
        g_clear_pointer(&providers[k], g_hash_table_unref);
    }
}

static const char *file_basename(const BdPlugin *plugin)
{
    const char *slash = strrchr(plugin->path, '/');

    return slash ? slash + 1 : plugin->path;
}

bool bd_providers_claim(BdProvideKind kind, const char *name,
                        BdPlugin *plugin, GError **errp)
{
    BdProvider *existing = g_hash_table_lookup(table(kind), name);

    if (existing && existing->plugin != plugin) {
        bd_error_setg(errp, "%s '%s' is already provided by %s (%s)",
                      bd_provide_kind_name(kind), name,
                      existing->plugin->name, existing->plugin->path);
        return false;
    }
    if (existing) {
        bd_error_setg(errp,
                      "%s '%s' is listed twice", bd_provide_kind_name(kind),
                      name);
        return false;
    }
    BdProvider *provider = g_new0(BdProvider, 1);
    provider->plugin = plugin;
    g_hash_table_insert(table(kind), g_strdup(name), provider);
    return true;
}

void bd_providers_release(BdPlugin *plugin)
{
    for (int k = 0; k < BD_PROVIDE__MAX; k++) {
        GHashTableIter iter;
        gpointer value;

        g_hash_table_iter_init(&iter, table(k));
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
            BdProvider *provider = value;
            if (provider->plugin == plugin) {
                g_hash_table_iter_remove(&iter);
            }
        }
    }
}

BdPlugin *bd_providers_owner(BdProvideKind kind, const char *name)
{
    BdProvider *provider = g_hash_table_lookup(table(kind), name);

    return provider ? provider->plugin : NULL;
}

const void *bd_providers_get(BdProvideKind kind, const char *name)
{
    BdProvider *provider = g_hash_table_lookup(table(kind), name);

    return provider ? provider->loaded : NULL;
}

BdRegistry *bd_registry_new(BdPlugin *plugin)
{
    BdRegistry *reg = g_new0(BdRegistry, 1);

    reg->plugin = plugin;
    return reg;
}

void bd_registry_free(BdRegistry *reg)
{
    g_free(reg);
}

const char *bd_registry_plugin_name(BdRegistry *reg)
{
    return reg->plugin->name;
}

/*
 * The common part of every registration: check the size prefix, copy the
 * structure into a zeroed one of the daemon's size, and attach it to the
 * name's claim.
 */
static bool registry_add(BdRegistry *reg, BdProvideKind kind,
                         const void *provided, GError **errp)
{
    BdPlugin *plugin = reg->plugin;
    g_autofree void *copy = NULL;
    uint32_t size;

    if (!provided) {
        bd_error_setg(errp, "%s registers a NULL %s", file_basename(plugin),
                      bd_provide_kind_name(kind));
        return false;
    }
    memcpy(&size, provided, sizeof(size));
    if (size < provider_min_size[kind] || size > provider_size[kind]) {
        bd_error_setg(errp,
                      "%s registers a %s of %u bytes; this blockd accepts "
                      "%zu to %zu", file_basename(plugin),
                      bd_provide_kind_name(kind), size,
                      provider_min_size[kind], provider_size[kind]);
        return false;
    }
    copy = g_malloc0(provider_size[kind]);
    memcpy(copy, provided, size);
    const char *name = ((BdProviderHead *)copy)->name;
    if (!name || !*name) {
        bd_error_setg(errp, "%s registers a %s without a name",
                      file_basename(plugin), bd_provide_kind_name(kind));
        return false;
    }

    BdProvider *provider = g_hash_table_lookup(table(kind), name);
    if (plugin->manifest_path) {
        if (!provider || provider->plugin != plugin) {
            bd_error_setg(errp,
                          "%s registers %s '%s', which its manifest %s does "
                          "not list (regenerate the manifest)",
                          file_basename(plugin), bd_provide_kind_name(kind),
                          name, plugin->manifest_path);
            return false;
        }
    } else {
        if (!bd_providers_claim(kind, name, plugin, errp)) {
            g_prefix_error(errp, "%s: ", file_basename(plugin));
            return false;
        }
        provider = g_hash_table_lookup(table(kind), name);
        g_ptr_array_add(plugin->provides[kind], g_strdup(name));
    }
    if (provider->loaded) {
        bd_error_setg(errp,
                      "%s registers %s '%s' twice", file_basename(plugin),
                      bd_provide_kind_name(kind), name);
        return false;
    }
    if (kind == BD_PROVIDE_QMP_COMMAND &&
        !((BdQmpCommand *)copy)->handler) {
        bd_error_setg(errp, "%s registers QMP command '%s' without a handler",
                      file_basename(plugin), name);
        return false;
    }
    provider->loaded = g_steal_pointer(&copy);
    return true;
}

bool bd_registry_add_block_driver(BdRegistry *reg, const BdBlockDriver *drv,
                                  GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return registry_add(reg, BD_PROVIDE_BLOCK_DRIVER, drv, errp);
}

bool bd_registry_add_export_type(BdRegistry *reg, const BdExportType *type,
                                 GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return registry_add(reg, BD_PROVIDE_EXPORT_TYPE, type, errp);
}

bool bd_registry_add_object_type(BdRegistry *reg, const BdObjectType *type,
                                 GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return registry_add(reg, BD_PROVIDE_OBJECT_TYPE, type, errp);
}

bool bd_registry_add_job_type(BdRegistry *reg, const BdJobType *type,
                              GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return registry_add(reg, BD_PROVIDE_JOB_TYPE, type, errp);
}

bool bd_registry_add_qmp_command(BdRegistry *reg, const BdQmpCommand *cmd,
                                 GError **errp)
{
    BD_ASSERT_MAIN_LOOP();
    return registry_add(reg, BD_PROVIDE_QMP_COMMAND, cmd, errp);
}
