/*
 * --object on the command line (see object.h for the objects).
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_OBJECT_CLI_H
#define BLOCKD_CORE_OBJECT_CLI_H

#include <stdbool.h>

/*
 * Process one --object @arg as qemu-storage-daemon does: keyval with the
 * implied key 'qom-type', or JSON; checked against ObjectOptions; the
 * object is created at once.  "help" lists the object types, "TYPE,help"
 * the properties of TYPE (or the types, when TYPE is not one); then
 * *@exit_now is set and true returned.  On error prints "@prog: --object
 * ARG: message" (and QEMU's hint after a malformed id) to stderr and
 * returns false.
 */
bool bd_object_cli_option(const char *prog, const char *arg,
                          bool *exit_now);

#endif /* BLOCKD_CORE_OBJECT_CLI_H */
