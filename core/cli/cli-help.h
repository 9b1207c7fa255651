/*
 * Help on the command line from the schema: lists of the names an
 * extensible enum holds (object types, block drivers, export types) and
 * the options of one of them, in qemu-storage-daemon's "--object help"
 * format.  Also the --blockdev and --export options for as long as they
 * can only answer help.
 *
 * Main thread only; output goes to stdout, errors to stderr.
 */
#ifndef BLOCKD_CORE_CLI_HELP_H
#define BLOCKD_CORE_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

#include <glib.h>

/* "@heading" on one line, then each of @names (strings) indented by 2. */
void bd_cli_print_names(FILE *out, const char *heading, GPtrArray *names);

/*
 * "@name options:" then one "  member=<type>" line per BdSchemaMemberInfo
 * of @members, types named as QOM names them, lines sorted by byte value
 * as QEMU sorts them; "There are no options for @name." when @members is
 * empty.
 */
void bd_cli_print_options(FILE *out, const char *name, GPtrArray *members);

/*
 * The help part of --blockdev @arg and --export @arg.  A help request
 * ("help", "?", or "driver=X,help" / "type=X,help") prints the block
 * drivers / export types the schema knows, or the options of X when it is
 * one of them, and sets *@was_help.  Anything else only sets *@was_help to
 * false: the caller processes the option.  A syntax error is printed as
 * "@prog: --blockdev ARG: message" and returns false.
 */
bool bd_cli_blockdev_help(const char *prog, const char *arg, bool *was_help);
bool bd_cli_export_help(const char *prog, const char *arg, bool *was_help);

#endif /* BLOCKD_CORE_CLI_HELP_H */
