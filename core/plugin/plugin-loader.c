/*
 * Plugin discovery and loading.
 *
 * Discovery reads manifests only; a plugin's code is loaded with libltdl
 * when something it provides is first looked up.  Every check that can be
 * made on data (file name, manifest, descriptor magic, ABI, size, name) is
 * made before any code of the plugin runs.  A plugin that fails is kept in
 * the list with its reason and never takes the daemon down by itself: only
 * a lookup of something it provides fails, with that reason.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ltdl.h>

#include <blockd/blockd.h>

#include "blockd-config.h"
#include "plugin/plugin-int.h"
#include "util/trace-points.h"

static GPtrArray *all_plugins;      /* of BdPlugin *, discovery order */
static GHashTable *plugins_by_name; /* name -> BdPlugin * (first found) */
/* Why a directory of the search path could not be read (char *). */
static GPtrArray *dir_errors;
static char **searched_dirs;
static bool ltdl_ready;

static const struct {
    const char *name;
    const char *plural;
    const char *key;
} provide_kinds[BD_PROVIDE__MAX] = {
    [BD_PROVIDE_BLOCK_DRIVER] = { "block driver", "block drivers",
                                  "BlockDrivers" },
    [BD_PROVIDE_EXPORT_TYPE] = { "export type", "export types",
                                 "ExportTypes" },
    [BD_PROVIDE_OBJECT_TYPE] = { "object type", "object types",
                                 "ObjectTypes" },
    [BD_PROVIDE_JOB_TYPE] = { "job type", "job types", "JobTypes" },
    [BD_PROVIDE_QMP_COMMAND] = { "QMP command", "QMP commands",
                                 "QmpCommands" },
};

/* The kinds a plugin file name may start with. */
static const char *const plugin_kinds[] = {
    "block", "export", "object", "job", NULL
};

const char *bd_provide_kind_name(BdProvideKind kind)
{
    return provide_kinds[kind].name;
}

const char *bd_provide_kind_plural(BdProvideKind kind)
{
    return provide_kinds[kind].plural;
}

const char *bd_provide_kind_key(BdProvideKind kind)
{
    return provide_kinds[kind].key;
}

BdPlugin *bd_plugin_new(const char *name, const char *path)
{
    BdPlugin *plugin = g_new0(BdPlugin, 1);

    plugin->name = g_strdup(name);
    plugin->path = g_strdup(path);
    for (int k = 0; k < BD_PROVIDE__MAX; k++) {
        plugin->provides[k] = g_ptr_array_new_with_free_func(g_free);
    }
    plugin->state = BD_PLUGIN_AVAILABLE;
    return plugin;
}

void bd_plugin_free(BdPlugin *plugin)
{
    /* The code stays mapped: plugins are never unloaded (see plugin.h). */
    g_free(plugin->name);
    g_free(plugin->path);
    g_free(plugin->manifest_path);
    g_free(plugin->version);
    g_free(plugin->description);
    g_free(plugin->license);
    g_free(plugin->schema);
    for (int k = 0; k < BD_PROVIDE__MAX; k++) {
        g_ptr_array_unref(plugin->provides[k]);
    }
    g_free(plugin->error);
    g_free(plugin);
}

void bd_plugin_fail(BdPlugin *plugin, const char *fmt, ...)
{
    va_list ap;

    plugin->state = BD_PLUGIN_FAILED;
    if (plugin->error) {
        return;
    }
    va_start(ap, fmt);
    plugin->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    BD_TRACE(&bd_tp_plugin_load_failed, "plugin %s error %s", plugin->name,
             plugin->error);
}

void bd_plugin_refuse(BdPlugin *plugin, const char *reason)
{
    bd_plugin_fail(plugin, "%s", reason);
}

static void plugins_init(void)
{
    if (!all_plugins) {
        all_plugins = g_ptr_array_new_with_free_func(
            (GDestroyNotify)bd_plugin_free);
        plugins_by_name = g_hash_table_new(g_str_hash, g_str_equal);
    }
    if (!ltdl_ready) {
        if (lt_dlinit() != 0) {
            g_error("libltdl failed to initialise: %s", lt_dlerror());
        }
        ltdl_ready = true;
    }
}

void bd_plugins_reset(void)
{
    g_clear_pointer(&plugins_by_name, g_hash_table_unref);
    g_clear_pointer(&all_plugins, g_ptr_array_unref);
    g_clear_pointer(&searched_dirs, g_strfreev);
    g_clear_pointer(&dir_errors, g_ptr_array_unref);
    bd_providers_reset();
}

GPtrArray *bd_plugins_all(void)
{
    plugins_init();
    return all_plugins;
}

GPtrArray *bd_plugins_dir_errors(void)
{
    if (!dir_errors) {
        dir_errors = g_ptr_array_new_with_free_func(g_free);
    }
    return dir_errors;
}

char *const *bd_plugins_searched_dirs(void)
{
    static char *none[] = { NULL };

    return searched_dirs ? searched_dirs : none;
}

/* Whether this binary runs from the build tree it was built in. */
static bool running_from_build_tree(void)
{
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
    char root[PATH_MAX];

    if (!exe || !realpath(BLOCKD_BUILD_ROOT, root)) {
        return false;
    }
    size_t len = strlen(root);
    return strncmp(exe, root, len) == 0 && exe[len] == '/';
}

char **bd_plugin_dirs(const char *override)
{
    const char *list = override;

    if (!list || !*list) {
        list = g_getenv("BLOCKD_PLUGIN_DIR");
    }
    if (!list || !*list) {
        list = running_from_build_tree() ? BLOCKD_BUILD_PLUGIN_DIR
                                         : BLOCKD_PLUGIN_DIR;
    }

    g_auto(GStrv) parts = g_strsplit(list, ":", -1);
    GPtrArray *dirs = g_ptr_array_new();
    for (char **p = parts; *p; p++) {
        if (**p) {
            g_ptr_array_add(dirs, g_strdup(*p));
        }
    }
    g_ptr_array_add(dirs, NULL);
    return (char **)g_ptr_array_free(dirs, false);
}

/* Whether @stem has the form <kind>-<name> with a known kind. */
static bool stem_is_plugin_name(const char *stem)
{
    for (const char *const *k = plugin_kinds; *k; k++) {
        size_t len = strlen(*k);
        if (strncmp(stem, *k, len) == 0 && stem[len] == '-' &&
            stem[len + 1]) {
            return true;
        }
    }
    return false;
}

static const char *plugin_file(const BdPlugin *plugin)
{
    const char *slash = strrchr(plugin->path, '/');

    return slash ? slash + 1 : plugin->path;
}

static bool check_abi(BdPlugin *plugin, unsigned major, unsigned minor)
{
    if (major != BD_PLUGIN_ABI_MAJOR || minor > BD_PLUGIN_ABI_MINOR) {
        bd_plugin_fail(plugin,
                       "built for plugin ABI %u.%u; this blockd provides "
                       "%u.%u", major, minor, BD_PLUGIN_ABI_MAJOR,
                       BD_PLUGIN_ABI_MINOR);
        return false;
    }
    return true;
}

/*
 * Check the descriptor a plugin exports, reading no further than the
 * plugin said it wrote.  Fills @out (zero-extended) on success.
 */
static bool check_descriptor(BdPlugin *plugin, const void *symbol,
                             BdPluginDescriptor *out)
{
    uint64_t magic;
    uint16_t major, minor;
    uint32_t size;

    memcpy(&magic, symbol, sizeof(magic));
    if (magic != BD_PLUGIN_MAGIC) {
        bd_plugin_fail(plugin,
                       "not a blockd plugin: bad magic 0x%016" G_GINT64_MODIFIER
                       "x in %s (expected 0x%016" G_GINT64_MODIFIER "x)",
                       (guint64)magic, BD_PLUGIN_SYMBOL_NAME,
                       (guint64)BD_PLUGIN_MAGIC);
        return false;
    }
    memcpy(&major, (const char *)symbol +
           offsetof(BdPluginDescriptor, abi_major), sizeof(major));
    memcpy(&minor, (const char *)symbol +
           offsetof(BdPluginDescriptor, abi_minor), sizeof(minor));
    if (!check_abi(plugin, major, minor)) {
        return false;
    }
    memcpy(&size, (const char *)symbol +
           offsetof(BdPluginDescriptor, struct_size), sizeof(size));
    if (size < BD_DESCRIPTOR_MIN_SIZE || size > sizeof(*out)) {
        bd_plugin_fail(plugin,
                       "descriptor is %u bytes; plugin ABI %u.%u needs %zu "
                       "to %zu", size, major, minor,
                       (size_t)BD_DESCRIPTOR_MIN_SIZE, sizeof(*out));
        return false;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out, symbol, size);

    if (!out->name || strcmp(out->name, plugin->name) != 0) {
        bd_plugin_fail(plugin,
                       "descriptor names the plugin '%s', but the file is "
                       "named '%s'", out->name ? out->name : "(null)",
                       plugin_file(plugin));
        return false;
    }
    if (!out->version || !out->init) {
        bd_plugin_fail(plugin, "descriptor lacks %s",
                       !out->version ? "a version" : "an init function");
        return false;
    }
    if (plugin->manifest_path &&
        (plugin->abi_major != major || plugin->abi_minor != minor ||
         g_strcmp0(plugin->version, out->version) != 0)) {
        bd_plugin_fail(plugin,
                       "does not match its manifest %s (manifest: ABI %u.%u, "
                       "version %s; plugin: ABI %u.%u, version %s); "
                       "regenerate the manifest", plugin->manifest_path,
                       plugin->abi_major, plugin->abi_minor, plugin->version,
                       major, minor, out->version);
        return false;
    }
    return true;
}

/*
 * libltdl reports every failure of lt_dlopenadvise() as "file not found",
 * which hides the system loader's reason (a bad ELF header, a missing
 * library, an undefined symbol).  Ask the system loader for it.  Returns
 * NULL if it, unlike libltdl, can open @path.
 */
static char *load_failure_reason(const char *path)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const char *reason;

    if (handle) {
        dlclose(handle);
        return NULL;
    }
    reason = dlerror();
    return reason ? g_strdup(reason) : NULL;
}

/* Load the code of @plugin and run its init().  Idempotent. */
static bool plugin_load(BdPlugin *plugin)
{
    BdPluginDescriptor desc;
    g_autoptr(GError) err = NULL;

    if (plugin->state != BD_PLUGIN_AVAILABLE) {
        return plugin->state == BD_PLUGIN_LOADED;
    }

    BD_TRACE(&bd_tp_plugin_load, "plugin %s path %s", plugin->name,
             plugin->path);
    lt_dladvise advise;
    lt_dladvise_init(&advise);
    lt_dladvise_local(&advise);
    lt_dlhandle handle = lt_dlopenadvise(plugin->path, advise);
    lt_dladvise_destroy(&advise);
    if (!handle) {
        g_autofree char *reason = load_failure_reason(plugin->path);
        bd_plugin_fail(plugin, "failed to load: %s",
                       reason ? reason : lt_dlerror());
        return false;
    }
    plugin->handle = handle;

    const void *symbol = lt_dlsym(handle, BD_PLUGIN_SYMBOL_NAME);
    if (!symbol) {
        bd_plugin_fail(plugin, "not a blockd plugin: it does not export %s",
                       BD_PLUGIN_SYMBOL_NAME);
        return false;
    }
    if (!check_descriptor(plugin, symbol, &desc)) {
        return false;
    }
    plugin->descriptor = symbol;
    if (!plugin->manifest_path) {
        plugin->abi_major = desc.abi_major;
        plugin->abi_minor = desc.abi_minor;
        plugin->version = g_strdup(desc.version);
        plugin->description = g_strdup(desc.description);
        plugin->license = g_strdup(desc.license);
        plugin->schema = g_strdup(desc.schema);
    } else if (g_strcmp0(plugin->schema, desc.schema) != 0 &&
               (plugin->schema || (desc.schema && *desc.schema))) {
        bd_plugin_fail(plugin,
                       "schema differs from its manifest %s; regenerate "
                       "the manifest", plugin->manifest_path);
        return false;
    }

    BdRegistry *reg = bd_registry_new(plugin);
    bool ok = desc.init(reg, &err);
    bd_registry_free(reg);
    if (!ok) {
        bd_plugin_fail(plugin, "init failed: %s",
                       err ? err->message : "(no reason given)");
        return false;
    }

    /* A manifest that promises more than the plugin registers is stale. */
    for (int k = 0; k < BD_PROVIDE__MAX; k++) {
        GPtrArray *list = plugin->provides[k];
        for (guint i = 0; i < list->len; i++) {
            if (!bd_providers_get(k, list->pdata[i])) {
                bd_plugin_fail(plugin,
                               "manifest %s lists %s '%s', which the plugin "
                               "does not register; regenerate the manifest",
                               plugin->manifest_path ? plugin->manifest_path
                                                     : "(none)",
                               bd_provide_kind_name(k),
                               (char *)list->pdata[i]);
                return false;
            }
        }
    }
    plugin->state = BD_PLUGIN_LOADED;
    BD_TRACE(&bd_tp_plugin_loaded, "plugin %s", plugin->name);
    return true;
}

/*
 * Load a plugin that has no manifest.  If it fails, whatever it managed to
 * register is withdrawn: nothing claimed those names before it ran.
 */
static void load_unlisted(BdPlugin *plugin)
{
    if (!plugin_load(plugin)) {
        bd_providers_release(plugin);
        for (int k = 0; k < BD_PROVIDE__MAX; k++) {
            g_ptr_array_set_size(plugin->provides[k], 0);
        }
    }
}

/* Record @plugin; returns false (and marks it failed) on a name clash. */
static bool plugins_add(BdPlugin *plugin)
{
    g_ptr_array_add(all_plugins, plugin);
    BdPlugin *first = g_hash_table_lookup(plugins_by_name, plugin->name);
    if (first) {
        bd_plugin_fail(plugin, "duplicate plugin name '%s': already found "
                       "at %s", plugin->name, first->path);
        return false;
    }
    g_hash_table_insert(plugins_by_name, plugin->name, plugin);
    return true;
}

/* Claim everything @plugin's manifest lists, or nothing. */
static bool claim_manifest(BdPlugin *plugin)
{
    for (int k = 0; k < BD_PROVIDE__MAX; k++) {
        GPtrArray *list = plugin->provides[k];
        for (guint i = 0; i < list->len; i++) {
            g_autoptr(GError) err = NULL;
            if (!bd_providers_claim(k, list->pdata[i], plugin, &err)) {
                bd_providers_release(plugin);
                bd_plugin_fail(plugin, "%s", err->message);
                return false;
            }
        }
    }
    return true;
}

static void discover_file(const char *dir, const char *file)
{
    g_autofree char *stem = g_strndup(file, strlen(file) - 3);
    g_autofree char *path = g_build_filename(dir, file, NULL);
    g_autofree char *manifest = g_strconcat(dir, "/", stem, ".plugin", NULL);
    BdPlugin *plugin = bd_plugin_new(stem, path);

    if (!plugins_add(plugin)) {
        return;
    }
    if (!stem_is_plugin_name(stem)) {
        bd_plugin_fail(plugin, "file name is not <kind>-<name>.so with kind "
                       "block, export, object or job");
        return;
    }
    if (!g_file_test(manifest, G_FILE_TEST_EXISTS)) {
        /* Without a manifest the only way to know the plugin is to load it. */
        load_unlisted(plugin);
        return;
    }

    g_autoptr(GError) err = NULL;
    plugin->manifest_path = g_steal_pointer(&manifest);
    if (!bd_plugin_read_manifest(plugin, &err)) {
        bd_plugin_fail(plugin, "%s", err->message);
        return;
    }
    /*
     * Claim the names even for a plugin refused on its ABI, so that using
     * one of them reports why the plugin cannot serve it.
     */
    if (claim_manifest(plugin)) {
        check_abi(plugin, plugin->abi_major, plugin->abi_minor);
    }
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void discover_dir(const char *dir)
{
    DIR *d = opendir(dir);
    GPtrArray *files;
    struct dirent *ent;

    if (!d) {
        /*
         * A missing directory in a search path is not an error; one that
         * is there but cannot be read is, or its plugins would silently
         * be missing (a daemon run as another user than the owner).
         */
        if (errno != ENOENT) {
            g_ptr_array_add(bd_plugins_dir_errors(),
                            g_strdup_printf("cannot read plugin directory "
                                            "%s: %s", dir,
                                            g_strerror(errno)));
        }
        return;
    }
    files = g_ptr_array_new_with_free_func(g_free);
    while ((ent = readdir(d))) {
        if (g_str_has_suffix(ent->d_name, ".so") && ent->d_name[0] != '.') {
            g_ptr_array_add(files, g_strdup(ent->d_name));
        }
    }
    closedir(d);
    /* A stable order makes "first found wins" predictable. */
    if (files->len) {   /* pdata is NULL while the array is empty */
        qsort(files->pdata, files->len, sizeof(void *), compare_strings);
    }
    for (guint i = 0; i < files->len; i++) {
        discover_file(dir, files->pdata[i]);
    }
    g_ptr_array_unref(files);
}

void bd_plugins_discover(char **dirs)
{
    bd_plugins_reset();
    plugins_init();
    searched_dirs = g_strdupv(dirs);
    for (char **d = dirs; *d; d++) {
        discover_dir(*d);
    }
}

BdPlugin *bd_plugins_load_file(const char *path)
{
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *stem = g_str_has_suffix(base, ".so")
        ? g_strndup(base, strlen(base) - 3) : g_strdup(base);
    BdPlugin *plugin = bd_plugin_new(stem, path);

    plugins_init();
    if (!plugins_add(plugin)) {
        return plugin;
    }
    if (!g_str_has_suffix(base, ".so") || !stem_is_plugin_name(stem)) {
        bd_plugin_fail(plugin, "file name is not <kind>-<name>.so with kind "
                       "block, export, object or job");
        return plugin;
    }
    load_unlisted(plugin);
    return plugin;
}

void bd_plugins_load_all(void)
{
    plugins_init();
    for (guint i = 0; i < all_plugins->len; i++) {
        plugin_load(all_plugins->pdata[i]);
    }
}

bool bd_plugins_provides(BdProvideKind kind, const char *name)
{
    return bd_providers_owner(kind, name) != NULL;
}

const void *bd_plugins_lookup(BdProvideKind kind, const char *name,
                              GError **errp)
{
    BdPlugin *plugin = bd_providers_owner(kind, name);

    if (!plugin) {
        bd_error_setg(errp, "no installed plugin provides %s '%s'",
                      bd_provide_kind_name(kind), name);
        return NULL;
    }
    if (!plugin_load(plugin)) {
        bd_error_setg(errp, "%s '%s' is provided by plugin %s, which "
                      "failed to load: %s: %s", bd_provide_kind_name(kind),
                      name, plugin->name, plugin_file(plugin), plugin->error);
        return NULL;
    }
    return bd_providers_get(kind, name);
}
