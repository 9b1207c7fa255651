/*
 * The job commands: job-* (by id, any job), block-job-* (block jobs only,
 * QEMU's legacy names and errors), query-jobs and query-block-jobs.
 */
#include <blockd/json.h>

#include "job/job.h"
#include "qmp/qmp-dispatch.h"

typedef bool (*JobVerbFn)(BdJob *job, GError **errp);

/* A verb returns nothing: *ret stays NULL, the client sees {}. */
static bool apply(JsonObject *args, const char *key, bool block,
                  JobVerbFn fn, GError **errp)
{
    BdJob *job = bd_job_find_for_verb(bd_json_get_str(args, key, ""), block,
                                      errp);

    return job && fn(job, errp);
}

#define VERB(cname, key, block, fn)                                      \
    static bool cname(JsonObject *args, JsonNode **ret, GError **errp)   \
    {                                                                    \
        return apply(args, key, block, fn, errp);                         \
    }

static bool job_cancel_forced(BdJob *job, GError **errp)
{
    return bd_job_user_cancel(job, true, errp);
}

VERB(qmp_job_pause, "id", false, bd_job_user_pause)
VERB(qmp_job_resume, "id", false, bd_job_user_resume)
VERB(qmp_job_cancel, "id", false, job_cancel_forced)
VERB(qmp_job_complete, "id", false, bd_job_user_complete)
VERB(qmp_job_dismiss, "id", false, bd_job_user_dismiss)
VERB(qmp_job_finalize, "id", false, bd_job_user_finalize)
VERB(qmp_block_job_pause, "device", true, bd_job_user_pause)
VERB(qmp_block_job_resume, "device", true, bd_job_user_resume)
VERB(qmp_block_job_complete, "device", true, bd_job_user_complete)
VERB(qmp_block_job_dismiss, "id", true, bd_job_user_dismiss)
VERB(qmp_block_job_finalize, "id", true, bd_job_user_finalize)

static bool qmp_block_job_cancel(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    BdJob *job = bd_job_find_for_verb(bd_json_get_str(args, "device", ""),
                                      true, errp);

    if (!job ||
        !bd_job_user_cancel(job, bd_json_get_bool(args, "force", false),
                            errp)) {
        return false;
    }
    return true;
}

static bool qmp_block_job_set_speed(JsonObject *args, JsonNode **ret,
                                    GError **errp)
{
    BdJob *job = bd_job_find_for_verb(bd_json_get_str(args, "device", ""),
                                      true, errp);

    if (!job ||
        !bd_job_set_speed(job, bd_json_get_int(args, "speed", 0), errp)) {
        return false;
    }
    return true;
}

static bool qmp_query_jobs(JsonObject *args, JsonNode **ret, GError **errp)
{
    *ret = json_node_init_array(json_node_alloc(), bd_job_query(false));
    json_array_unref(json_node_get_array(*ret));
    return true;
}

static bool qmp_query_block_jobs(JsonObject *args, JsonNode **ret,
                                 GError **errp)
{
    *ret = json_node_init_array(json_node_alloc(), bd_job_query(true));
    json_array_unref(json_node_get_array(*ret));
    return true;
}

void bd_job_register_qmp_commands(void)
{
    bd_qmp_register_command("query-jobs", qmp_query_jobs, 0);
    bd_qmp_register_command("job-pause", qmp_job_pause, 0);
    bd_qmp_register_command("job-resume", qmp_job_resume, 0);
    bd_qmp_register_command("job-cancel", qmp_job_cancel, 0);
    bd_qmp_register_command("job-complete", qmp_job_complete, 0);
    bd_qmp_register_command("job-dismiss", qmp_job_dismiss, 0);
    bd_qmp_register_command("job-finalize", qmp_job_finalize, 0);
    bd_qmp_register_command("query-block-jobs", qmp_query_block_jobs, 0);
    bd_qmp_register_command("block-job-set-speed", qmp_block_job_set_speed,
                            0);
    bd_qmp_register_command("block-job-cancel", qmp_block_job_cancel, 0);
    bd_qmp_register_command("block-job-pause", qmp_block_job_pause, 0);
    bd_qmp_register_command("block-job-resume", qmp_block_job_resume, 0);
    bd_qmp_register_command("block-job-complete", qmp_block_job_complete, 0);
    bd_qmp_register_command("block-job-dismiss", qmp_block_job_dismiss, 0);
    bd_qmp_register_command("block-job-finalize", qmp_block_job_finalize, 0);
}
