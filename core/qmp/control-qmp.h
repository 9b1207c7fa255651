/*
 * The QMP commands of the core's protocol layer: qmp_capabilities,
 * query-version, query-commands, quit, query-plugins.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_QMP_CONTROL_QMP_H
#define BLOCKD_CORE_QMP_CONTROL_QMP_H

#include <json-glib/json-glib.h>

/*
 * Register the commands above with the dispatcher.  Idempotent.
 */
void bd_qmp_register_core_commands(void);

/*
 * VersionInfo as query-version returns it and the greeting shows it:
 * {"qemu": {"major": 7, "minor": 2, "micro": 0},
 *  "package": "blockd <version>"}.  A new node.
 */
JsonNode *bd_qmp_version_info(void);

#endif /* BLOCKD_CORE_QMP_CONTROL_QMP_H */
