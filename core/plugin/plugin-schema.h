/*
 * Joining the schema: the core's QAPI schema and the fragment of every
 * usable plugin, read from manifests before any plugin code runs, become
 * the one registry that validates QMP, the command line and introspection.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_PLUGIN_SCHEMA_H
#define BLOCKD_CORE_PLUGIN_SCHEMA_H

#include <stdbool.h>

#include <glib.h>

/*
 * Reset the schema registry, add the core schema, then each plugin's
 * fragment in discovery order.  A plugin whose fragment conflicts with the
 * core's or an earlier plugin's is refused (bd_plugin_refuse) with the
 * message naming both, and its fragment is left out; the rest go on.
 * Fails only if the core schema itself cannot be read.
 */
bool bd_plugin_schemas_load(GError **errp);

#endif /* BLOCKD_CORE_PLUGIN_SCHEMA_H */
