/*
 * The --export command-line option.
 */
#ifndef BLOCKD_CORE_CLI_EXPORT_CLI_H
#define BLOCKD_CORE_CLI_EXPORT_CLI_H

#include <stdbool.h>

#include <glib.h>

/*
 * Process one --export @arg as qemu-storage-daemon does: keyval with the
 * implied key 'type', or JSON; checked against BlockExportOptions; the
 * export is created at once.  Sets @errp (the caller prints it) and
 * returns false on failure.  "help" is handled by bd_cli_export_help()
 * before this is called.
 */
bool bd_export_cli_option(const char *arg, GError **errp);

#endif /* BLOCKD_CORE_CLI_EXPORT_CLI_H */
