/*
 * Block exports inside the core (the plugin side is <blockd/export.h>):
 * the table of exports (export.c) and their QMP commands (export-qmp.c).
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_EXPORT_EXPORT_H
#define BLOCKD_CORE_EXPORT_EXPORT_H

#include <stdbool.h>

#include <json-glib/json-glib.h>

#include <blockd/export.h>

/*
 * Register block-export-add, block-export-del and query-block-exports,
 * and a shutdown notifier that deletes every export (emitting
 * BLOCK_EXPORT_DELETED) when the daemon ends.  Call once, after
 * bd_block_init() so that exports go before the block graph does.
 */
void bd_export_init(void);

/* Register the three commands (bd_export_init() does). */
void bd_export_register_qmp_commands(void);

/*
 * block-export-add: create an export from @args, BlockExportOptions the
 * dispatcher has validated (bd_export_add() validates itself).
 */
BdExport *bd_export_add_checked(JsonObject *args, GError **errp);

/* query-block-exports: a BlockExportInfo per export, newest first. */
JsonArray *bd_export_query(void);

#endif /* BLOCKD_CORE_EXPORT_EXPORT_H */
