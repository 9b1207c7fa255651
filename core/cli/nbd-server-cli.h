/*
 * --nbd-server: start the NBD server from the command line.
 */
#ifndef BLOCKD_CORE_NBD_SERVER_CLI_H
#define BLOCKD_CORE_NBD_SERVER_CLI_H

#include <stdbool.h>

#include <glib.h>

/*
 * Process one --nbd-server @arg as qemu-storage-daemon does: keyval (no
 * implied key) or JSON, checked against NbdServerOptions, then run as the
 * QMP command nbd-server-start (its 'addr' turned into the legacy form)
 * through the QMP dispatcher, so whichever plugin provides the command
 * serves it.  When no installed plugin provides nbd-server-start, fails
 * saying so.  Sets @errp (the caller prints it) and returns false on
 * failure.  Main thread, before the main loop runs or from it.
 */
bool bd_nbd_server_cli_option(const char *arg, GError **errp);

#endif /* BLOCKD_CORE_NBD_SERVER_CLI_H */
