/*
 * blockd plugin ABI: the registry through which a plugin's init() says
 * what the plugin provides.
 *
 * Every provider structure (block driver, export type, object type, job
 * type, QMP command) begins with a uint32_t struct_size that the plugin sets
 * to sizeof() of the structure as its headers define it.  The daemon copies
 * that many bytes into a zeroed structure of its own size, so a plugin built
 * for an older ABI minor reads as "absent" for every field added since;
 * each field documents the default its absence means.  A struct_size
 * smaller than the ABI 1.0 layout, or larger than the daemon's, is refused.
 *
 * Strings and function pointers inside a provider must stay valid for the
 * life of the process (plugins are never unloaded): use static data.
 *
 * All functions here may only be called from a plugin's init(), in the
 * main thread.  On failure they set @errp and return false; init() should
 * then return false with that error.
 */
#ifndef BLOCKD_REGISTRY_H
#define BLOCKD_REGISTRY_H

#include <stdbool.h>

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdRegistry BdRegistry;
typedef struct BdBlockDriver BdBlockDriver;
typedef struct BdExportType BdExportType;
typedef struct BdObjectType BdObjectType;
typedef struct BdJobType BdJobType;
typedef struct BdQmpCommand BdQmpCommand;

/*
 * The name of the plugin being initialised (its file name without ".so").
 * Never NULL; owned by the daemon.
 */
const char *bd_registry_plugin_name(BdRegistry *reg);

/*
 * Register a block driver (format, protocol or filter) under drv->name.
 * Fails if the name is already provided by another plugin; the message
 * names both plugin files.
 */
bool bd_registry_add_block_driver(BdRegistry *reg, const BdBlockDriver *drv,
                                  GError **errp);

/* Register an export type (the value of BlockExportOptions' 'type'). */
bool bd_registry_add_export_type(BdRegistry *reg, const BdExportType *type,
                                 GError **errp);

/* Register a user-creatable object type (ObjectOptions' 'qom-type'). */
bool bd_registry_add_object_type(BdRegistry *reg, const BdObjectType *type,
                                 GError **errp);

/* Register a block job type. */
bool bd_registry_add_job_type(BdRegistry *reg, const BdJobType *type,
                              GError **errp);

/*
 * Register a QMP command.  Its arguments and return type are declared in
 * the plugin's schema fragment; the daemon validates arguments against it
 * before the handler runs.
 */
bool bd_registry_add_qmp_command(BdRegistry *reg, const BdQmpCommand *cmd,
                                 GError **errp);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_REGISTRY_H */
