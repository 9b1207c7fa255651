/*
 * The plugin loader: discovers plugins in the module directories, reads
 * their manifests, loads a plugin's .so the first time something it
 * provides is needed, and keeps the record of every plugin found (loaded,
 * available or failed) for --list-plugins and query-plugins.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_PLUGIN_LOADER_H
#define BLOCKD_CORE_PLUGIN_LOADER_H

#include <stdbool.h>

#include <glib.h>

#include <blockd/plugin.h>

/* What a plugin can provide; each has its own name space. */
typedef enum BdProvideKind {
    BD_PROVIDE_BLOCK_DRIVER,
    BD_PROVIDE_EXPORT_TYPE,
    BD_PROVIDE_OBJECT_TYPE,
    BD_PROVIDE_JOB_TYPE,
    BD_PROVIDE_QMP_COMMAND,
    BD_PROVIDE__MAX
} BdProvideKind;

typedef enum BdPluginState {
    BD_PLUGIN_AVAILABLE,    /* manifest read, code not loaded yet */
    BD_PLUGIN_LOADED,       /* .so loaded and init() succeeded */
    BD_PLUGIN_FAILED,       /* refused or failed; see error */
} BdPluginState;

typedef struct BdPlugin {
    char *name;             /* file stem, e.g. "block-null" */
    char *path;             /* the .so */
    char *manifest_path;    /* NULL when the .so has no manifest */
    char *version;
    char *description;
    char *license;
    char *schema;           /* QAPI fragment text, or NULL */
    unsigned abi_major;
    unsigned abi_minor;
    GPtrArray *provides[BD_PROVIDE__MAX];   /* of char *, in order */
    BdPluginState state;
    char *error;            /* why it failed, when state == FAILED */
    void *handle;           /* lt_dlhandle once loaded */
    const BdPluginDescriptor *descriptor;   /* once loaded */
} BdPlugin;

/* Singular and plural English names of a provide kind, for messages. */
const char *bd_provide_kind_name(BdProvideKind kind);
const char *bd_provide_kind_plural(BdProvideKind kind);
/* The manifest key that lists a provide kind, e.g. "BlockDrivers". */
const char *bd_provide_kind_key(BdProvideKind kind);

/*
 * The directories to search, in order: @override (from --plugin-dir) if
 * not NULL, else $BLOCKD_PLUGIN_DIR if set, else the build tree's plugin
 * directory when this binary runs from its build tree, else the installed
 * plugin directory.  Colon-separated lists are split.  The result is a
 * NULL-terminated vector the caller frees with g_strfreev().
 */
char **bd_plugin_dirs(const char *override);

/*
 * Forget every plugin found so far and search @dirs (NULL-terminated).
 * Plugins with a manifest are recorded without loading code; a .so without
 * a manifest is loaded at once.  Problems with one plugin mark that plugin
 * failed and never fail the whole search.
 */
void bd_plugins_discover(char **dirs);

/*
 * Record and load the single plugin file @path, whatever directory it is
 * in and whether or not it has a manifest (used to generate manifests).
 * Returns the record, also when loading failed (state says which).
 */
BdPlugin *bd_plugins_load_file(const char *path);

/* Load every plugin not yet loaded (for listings that must be exact). */
void bd_plugins_load_all(void);

/* All plugins found, in discovery order (failed ones included). */
GPtrArray *bd_plugins_all(void);

/* The directories the last discovery searched (NULL-terminated). */
char *const *bd_plugins_searched_dirs(void);

/*
 * What went wrong reading the searched directories, one message (char *)
 * per directory that exists but could not be read ("cannot read plugin
 * directory DIR: Permission denied").  Owned by the loader.
 */
GPtrArray *bd_plugins_dir_errors(void);

/*
 * Find what provides @name of @kind, loading its plugin if needed.
 * Returns the daemon's own copy of the provider structure (a
 * BdBlockDriver *, BdExportType *, ...), valid for the life of the process.
 * Returns NULL if nothing provides @name (and sets @errp to a message that
 * says so) or if its plugin failed to load (the message names the plugin
 * and the reason).
 */
const void *bd_plugins_lookup(BdProvideKind kind, const char *name,
                              GError **errp);

/* Whether some plugin (loaded or not) claims @name of @kind. */
bool bd_plugins_provides(BdProvideKind kind, const char *name);

/*
 * Write the manifest of a loaded plugin to @out_path.  Fails with a
 * message if the plugin did not load.
 */
bool bd_plugin_write_manifest(const BdPlugin *plugin, const char *out_path,
                              GError **errp);

/*
 * Refuse @plugin for a reason found outside the loader (e.g. its schema
 * conflicts with another's): it becomes failed, and lookups of what it
 * provides report @reason.
 */
void bd_plugin_refuse(BdPlugin *plugin, const char *reason);

/* Drop all state (for tests). */
void bd_plugins_reset(void);

#endif /* BLOCKD_CORE_PLUGIN_LOADER_H */
