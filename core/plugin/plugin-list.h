/*
 * Human-readable listings of the plugins found (blockd --list-plugins and
 * start-up warnings).  Main thread only.
 */
#ifndef BLOCKD_CORE_PLUGIN_LIST_H
#define BLOCKD_CORE_PLUGIN_LIST_H

#include <stdio.h>

/* Print every plugin found, its state, what it provides, and any error. */
void bd_plugins_print(FILE *out);

/*
 * Print one "PROG: warning: cannot read plugin directory DIR: REASON" line
 * per directory that could not be read: at once after discovery, before
 * an option fails for want of the plugins it hid.
 */
void bd_plugins_warn_dirs(FILE *out, const char *prog);

/* Print one "PROG: warning: FILE: REASON" line per failed plugin. */
void bd_plugins_warn_failed(FILE *out, const char *prog);

#endif /* BLOCKD_CORE_PLUGIN_LIST_H */
