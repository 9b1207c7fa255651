/*
 * Bringing the core up once the plugins are discovered: what the daemon
 * and any program embedding the core (the fuzz targets) do the same way.
 */
#ifndef BLOCKD_CORE_INIT_H
#define BLOCKD_CORE_INIT_H

#include <stdbool.h>

#include <glib.h>

/*
 * After bd_plugins_discover(): load the plugins' schema fragments into
 * the schema, set up the main loop, the block layer and exports, and
 * register the core's QMP commands with schema checking of their
 * arguments.  False with @errp set when a fragment cannot be loaded.
 * Main thread, once.
 */
bool bd_core_init(GError **errp);

#endif /* BLOCKD_CORE_INIT_H */
