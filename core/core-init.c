/*
 * Bringing the core up (see core-init.h).
 */
#include "core-init.h"

#include "block-qmp.h"
#include "export.h"
#include "main-loop.h"
#include "object.h"
#include "plugin-schema.h"
#include "qmp-commands.h"
#include "qmp-dispatch.h"
#include "schema.h"

bool bd_core_init(GError **errp)
{
    if (!bd_plugin_schemas_load(errp)) {
        return false;
    }
    bd_main_loop_init();
    bd_block_init();
    bd_export_init();
    bd_qmp_register_core_commands();
    bd_schema_register_qmp_commands();
    bd_object_register_qmp_commands();
    bd_qmp_set_argument_checker(bd_schema_check_command_args);
    return true;
}
