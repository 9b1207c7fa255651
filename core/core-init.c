/*
 * Bringing the core up (see core-init.h).
 */
#include "core-init.h"

#include "aio/main-loop.h"
#include "block/block.h"
#include "chardev/chardev.h"
#include "export/export.h"
#include "job/job.h"
#include "object/object.h"
#include "plugin/plugin-schema.h"
#include "qmp/control-qmp.h"
#include "qmp/qmp-dispatch.h"
#include "schema/schema.h"

bool bd_core_init(GError **errp)
{
    if (!bd_plugin_schemas_load(errp)) {
        return false;
    }
    bd_main_loop_init();
    bd_block_init();
    bd_export_init();
    /* after the exports: its shutdown notifier runs before theirs */
    bd_job_init();
    /* in this order, query-commands lists them as qsd does */
    bd_qmp_register_core_commands();
    bd_chardev_register_qmp_commands();
    bd_schema_register_qmp_commands();
    bd_object_register_qmp_commands();
    bd_job_register_qmp_commands();
    bd_qmp_set_argument_checker(bd_schema_check_command_args);
    return true;
}
