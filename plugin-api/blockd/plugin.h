/*
 * blockd plugin ABI: the descriptor every plugin exports.
 *
 * A plugin is a shared object named <kind>-<name>.so (kind is one of block,
 * export, object, job) that exports exactly one symbol, BD_PLUGIN_SYMBOL, a
 * constant BdPluginDescriptor.  Because the descriptor is plain data, the
 * daemon checks it (magic, ABI version, size, name) before any code of the
 * plugin runs; only then does it call init(), which registers what the
 * plugin provides through the registry (see <blockd/registry.h>).
 *
 * Versioning: the ABI has a major and a minor number.  The major changes
 * when an existing structure or function changes incompatibly; the daemon
 * refuses a plugin whose major differs from its own.  The minor grows when
 * something is appended (a new field at the end of a size-prefixed struct,
 * a new function); the daemon accepts plugins built for its own or an older
 * minor, and refuses plugins built for a newer one.  Fields a plugin built
 * for an older minor does not know read as zero/NULL in the daemon, and each
 * such field documents what zero means.
 */
#ifndef BLOCKD_PLUGIN_H
#define BLOCKD_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "BLKDPLUG" read as a big-endian 64-bit number. */
#define BD_PLUGIN_MAGIC UINT64_C(0x424c4b44504c5547)

/*
 * The ABI these headers describe.  A plugin records them at build time.
 * This is the one place the version is written: the build reads it from
 * here for blockd-plugin.pc, and the tests for their checks.
 */
#define BD_PLUGIN_ABI_MAJOR 1
#define BD_PLUGIN_ABI_MINOR 0

/* The name of the one symbol a plugin exports. */
#define BD_PLUGIN_SYMBOL bd_plugin_descriptor
#define BD_PLUGIN_SYMBOL_NAME "bd_plugin_descriptor"

/*
 * BdPluginDescriptor:
 * @magic: BD_PLUGIN_MAGIC; anything else means "not a blockd plugin".
 * @abi_major, @abi_minor: the ABI the plugin was built against.
 * @struct_size: sizeof(BdPluginDescriptor) as the plugin saw it.
 * @name: the plugin's name; must equal the file name without ".so"
 *        (for example "block-null").
 * @version: the plugin's own version string (free form, e.g. "0.1.0").
 * @description: one line saying what the plugin provides.
 * @license: SPDX identifier of the plugin's license.
 * @schema: the plugin's QAPI schema fragment as text (the types of its
 *          options and the enum values and union branches it adds), as
 *          checked and embedded by blockd-qapi-embed at build time; NULL if
 *          the plugin adds nothing to the schema.
 * @init: called once, in the main thread, when the plugin is first needed.
 *        It registers everything the plugin provides with @reg and returns
 *        true, or sets @errp and returns false; a plugin whose init fails is
 *        marked failed and never called again.
 */
typedef struct BdPluginDescriptor {
    uint64_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size;
    const char *name;
    const char *version;
    const char *description;
    const char *license;
    const char *schema;
    bool (*init)(BdRegistry *reg, GError **errp);
} BdPluginDescriptor;

#if defined(__GNUC__)
#define BD_PLUGIN_EXPORT __attribute__((visibility("default"), used))
#else
#define BD_PLUGIN_EXPORT
#endif

#ifdef __cplusplus
#define BD_PLUGIN_EXTERN_C extern "C"
#else
#define BD_PLUGIN_EXTERN_C
#endif

/*
 * BD_PLUGIN(.name = ..., .version = ..., .description = ..., .license = ...,
 *           .schema = ..., .init = ...)
 *
 * Defines the plugin's descriptor with the ABI of these headers, from
 * designated initialisers of the fields after @struct_size (the macro
 * fills in @magic, the ABI version and @struct_size).  A field a later
 * minor appends is one more initialiser; a plugin that leaves it out
 * gets zero, as a plugin built before it.  Use it exactly once per
 * plugin, at file scope:
 *
 *     BD_PLUGIN(.name = "block-mine", .version = "1.0",
 *               .description = "my driver", .license = "MIT",
 *               .schema = block_mine_schema, .init = mine_init);
 */
#define BD_PLUGIN(...)                                                     \
    BD_PLUGIN_EXTERN_C BD_PLUGIN_EXPORT                                    \
    const BdPluginDescriptor BD_PLUGIN_SYMBOL = {                          \
        .magic = BD_PLUGIN_MAGIC,                                          \
        .abi_major = BD_PLUGIN_ABI_MAJOR,                                  \
        .abi_minor = BD_PLUGIN_ABI_MINOR,                                  \
        .struct_size = (uint32_t)sizeof(BdPluginDescriptor),               \
        __VA_ARGS__                                                        \
    }

/*
 * BD_PLUGIN_DEFINE(name, version, description, license, schema, init)
 *
 * The same with positional arguments, as before BD_PLUGIN: kept so that
 * plugins written with it build unchanged.  It can only ever set these
 * six fields; new plugins use BD_PLUGIN.
 */
#define BD_PLUGIN_DEFINE(name_, version_, description_, license_, schema_, \
                         init_)                                            \
    BD_PLUGIN(.name = (name_), .version = (version_),                      \
              .description = (description_), .license = (license_),        \
              .schema = (schema_), .init = (init_))

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_PLUGIN_H */
