/*
 * The --monitor command-line option.
 */
#ifndef BLOCKD_CORE_CLI_MONITOR_CLI_H
#define BLOCKD_CORE_CLI_MONITOR_CLI_H

#include <stdbool.h>

#include <glib.h>

/*
 * One --monitor @arg ([chardev=]NAME[,mode=control][,pretty=on|off], or
 * JSON): the monitor is created on the chardev.  False with @errp set
 * (the caller prints it).
 */
bool bd_monitor_cli_option(const char *arg, GError **errp);

#endif /* BLOCKD_CORE_CLI_MONITOR_CLI_H */
