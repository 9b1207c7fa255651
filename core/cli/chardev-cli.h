/*
 * The --chardev command-line option: the flat QemuOpts form turned into
 * the QAPI ChardevBackend shape of chardev/chardev.h.
 */
#ifndef BLOCKD_CORE_CLI_CHARDEV_CLI_H
#define BLOCKD_CORE_CLI_CHARDEV_CLI_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "chardev/chardev.h"

/*
 * Convert the flat --chardev option object (all values strings, as
 * bd_qemu_opts_parse() returns them: backend, id, path, host, port, fd,
 * server, wait, signal) to @id and the QAPI backend shape above.  Here
 * server defaults to off (QemuOpts' default) and wait to on.  Returns a
 * new object and sets *@id_out (g_free), or NULL with @errp set.
 */
JsonObject *bd_chardev_opts_to_backend(JsonObject *opts, char **id_out,
                                       GError **errp);

/* Both steps: create a chardev from flat --chardev options. */
BdChardev *bd_chardev_new_from_opts(JsonObject *opts, GError **errp);

/*
 * One --chardev @arg, in QemuOpts syntax like qemu-storage-daemon's:
 * warnings go to stderr as "@prog: warning: ...", "help" lists the
 * backend types on stdout and sets *@exit_now.  False with @errp set
 * (the caller prints it) when the chardev cannot be created.
 */
bool bd_chardev_cli_option(const char *prog, const char *arg, bool *exit_now,
                           GError **errp);

#endif /* BLOCKD_CORE_CLI_CHARDEV_CLI_H */
