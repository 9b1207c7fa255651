/*
 * job-create: the "create" job type and blockdev-create, which starts one.
 * The job is generic: it calls the co_create callback of the block driver
 * the options name, so it knows no driver; and as a plugin it keeps the
 * core free of job types (the core's job manager only runs them).
 */
#include <blockd/blockd.h>

#include "job-create-schema.h"

typedef struct CreateJob {
    const BdBlockDriver *drv;
    JsonObject *options;
} CreateJob;

static bd_coroutine_fn int create_run(BdJob *job, GError **errp)
{
    CreateJob *s = bd_job_opaque(job);
    int ret;

    /* one unit of work, done whatever the outcome, as QEMU counts it */
    bd_job_progress_set_remaining(job, 1);
    ret = s->drv->co_create(s->options, errp);
    bd_job_progress_update(job, 1);
    return ret < 0 ? ret : 0;
}

static void create_free(void *opaque)
{
    CreateJob *s = opaque;

    json_object_unref(s->options);
    g_free(s);
}

static const BdJobType create_job_type = {
    .struct_size = sizeof(BdJobType),
    .name = "create",
    .description = "create an image (blockdev-create)",
    .run = create_run,
    .free = create_free,
};

static bool qmp_blockdev_create(JsonObject *args, JsonNode **ret,
                                GError **errp)
{
    JsonObject *options = bd_json_get_object(args, "options");
    const BdBlockDriver *drv;
    CreateJob *s;
    BdJob *job;

    drv = bd_block_driver_find(bd_json_get_str(options, "driver", ""),
                               errp);
    if (!drv) {
        return false;
    }
    if (!drv->co_create) {
        bd_error_setg(errp, "Driver does not support blockdev-create");
        return false;
    }
    s = g_new0(CreateJob, 1);
    s->drv = drv;
    s->options = json_object_ref(options);
    /* QEMU's create jobs finalize themselves but wait for job-dismiss */
    job = bd_job_new("create", bd_json_get_str(args, "job-id", ""),
                     BD_JOB_MANUAL_DISMISS, s, errp);
    if (!job) {
        create_free(s);
        return false;
    }
    bd_job_start(job);
    return true;
}

static const BdQmpCommand blockdev_create_command = {
    sizeof(BdQmpCommand), "blockdev-create", qmp_blockdev_create, 0,
};

static bool job_create_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_job_type(reg, &create_job_type, errp) &&
           bd_registry_add_qmp_command(reg, &blockdev_create_command, errp);
}

BD_PLUGIN(.name = "job-create",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the create job type and blockdev-create",
          .license = "GPL-2.0-or-later",
          .schema = job_create_schema,
          .init = job_create_init);
