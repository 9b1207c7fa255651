/*
 * Block exports inside the core (the plugin side is <blockd/export.h>):
 * the table of exports, their QMP commands and --export.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_EXPORT_H
#define BLOCKD_CORE_EXPORT_H

#include <stdbool.h>

#include <blockd/export.h>

/*
 * Register block-export-add, block-export-del and query-block-exports,
 * and a shutdown notifier that deletes every export (emitting
 * BLOCK_EXPORT_DELETED) when the daemon ends.  Call once, after
 * bd_block_init() so that exports go before the block graph does.
 */
void bd_export_init(void);

/*
 * Process one --export @arg as qemu-storage-daemon does: keyval with the
 * implied key 'type', or JSON; checked against BlockExportOptions; the
 * export is created at once.  Sets @errp (the caller prints it) and
 * returns false on failure.  "help" is handled by bd_cli_export_help()
 * before this is called.
 */
bool bd_export_cli_option(const char *arg, GError **errp);

#endif /* BLOCKD_CORE_EXPORT_H */
