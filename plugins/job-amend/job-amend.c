/*
 * job-amend: the "amend" job type and x-blockdev-amend, which starts one.
 * Like job-create, the job is generic: it calls the co_amend callback of
 * the node's driver, so it knows no driver.
 */
#include <blockd/blockd.h>

#include "job-amend-schema.h"

typedef struct AmendJob {
    BdNode *node;           /* a reference, dropped with the job */
    JsonObject *options;
    bool force;
} AmendJob;

static bd_coroutine_fn int amend_run(BdJob *job, GError **errp)
{
    AmendJob *s = bd_job_opaque(job);
    const BdBlockDriver *drv =
        bd_block_driver_find(bd_node_get_driver_name(s->node), errp);
    int ret;

    /* one unit of work, done whatever the outcome, as QEMU counts it */
    bd_job_progress_set_remaining(job, 1);
    ret = drv ? drv->co_amend(s->node, s->options, s->force, errp) : -ENOENT;
    bd_job_progress_update(job, 1);
    return ret < 0 ? ret : 0;
}

static void amend_free(void *opaque)
{
    AmendJob *s = opaque;

    bd_node_unref(s->node);
    json_object_unref(s->options);
    g_free(s);
}

static const BdJobType amend_job_type = {
    .struct_size = sizeof(BdJobType),
    .name = "amend",
    .description = "change an image's options (x-blockdev-amend)",
    .run = amend_run,
    .free = amend_free,
};

/* QEMU 7.2's qmp_x_blockdev_amend(): its checks, in its order. */
static bool qmp_x_blockdev_amend(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    JsonObject *options = bd_json_get_object(args, "options");
    const char *name = bd_json_get_str(args, "node-name", "");
    const char *fmt = bd_json_get_str(options, "driver", "");
    const BdBlockDriver *drv;
    BdNode *node = bd_node_find(name);
    AmendJob *s;
    BdJob *job;

    (void)ret;
    if (!node) {
        bd_error_setg(errp, "Cannot find device='' nor node-name='%s'", name);
        return false;
    }
    drv = bd_block_driver_find(fmt, NULL);
    if (!drv) {
        bd_error_setg(errp, "Block driver '%s' not found or not supported",
                      fmt);
        return false;
    }
    if (strcmp(bd_node_get_driver_name(node), drv->name) != 0) {
        bd_error_setg(errp, "x-blockdev-amend doesn't support changing the "
                      "block driver");
        return false;
    }
    if (!drv->co_amend) {
        bd_error_setg(errp, "Driver does not support x-blockdev-amend");
        return false;
    }
    s = g_new0(AmendJob, 1);
    bd_node_ref(node);
    s->node = node;
    s->options = json_object_ref(options);
    s->force = bd_json_get_bool(args, "force", false);
    job = bd_job_new("amend", bd_json_get_str(args, "job-id", ""),
                     BD_JOB_MANUAL_DISMISS, s, errp);
    if (!job) {
        amend_free(s);
        return false;
    }
    bd_job_start(job);
    return true;
}

static const BdQmpCommand x_blockdev_amend_command = {
    sizeof(BdQmpCommand), "x-blockdev-amend", qmp_x_blockdev_amend, 0,
};

static bool job_amend_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_job_type(reg, &amend_job_type, errp) &&
           bd_registry_add_qmp_command(reg, &x_blockdev_amend_command,
                                       errp);
}

BD_PLUGIN(.name = "job-amend",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the amend job type and x-blockdev-amend",
          .license = "GPL-2.0-or-later",
          .schema = job_amend_schema,
          .init = job_amend_init);
