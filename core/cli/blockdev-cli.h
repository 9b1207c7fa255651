/*
 * The --blockdev command-line option.
 */
#ifndef BLOCKD_CORE_CLI_BLOCKDEV_CLI_H
#define BLOCKD_CORE_CLI_BLOCKDEV_CLI_H

#include <stdbool.h>

#include <glib.h>

/*
 * --blockdev @arg (keyval with an implied 'driver', or JSON): checked
 * against BlockdevOptions and opened as blockdev-add would.  Sets @errp
 * with the message qemu-storage-daemon prints.  Main loop.
 */
bool bd_blockdev_cli_option(const char *arg, GError **errp);

#endif /* BLOCKD_CORE_CLI_BLOCKDEV_CLI_H */
