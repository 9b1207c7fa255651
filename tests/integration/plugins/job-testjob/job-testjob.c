/*
 * A test job type, "testjob", for blockd's integration tests: a block job
 * that goes READY and waits for job-complete, the life of a mirror with
 * nothing to copy, so that the verbs, pause points and legacy events can
 * be compared with qemu-storage-daemon's mirror.  It goes through the job
 * ABI the way a real job type does.
 */
#include <blockd/blockd.h>

#include "job-testjob-schema.h"

typedef struct Testjob {
    int64_t length;
    bool should_complete;
    bool held;          /* paused from the end of run to prepare/abort */
} Testjob;

static bd_coroutine_fn int testjob_run(BdJob *job, GError **errp)
{
    Testjob *t = bd_job_opaque(job);

    bd_job_progress_set_remaining(job, (uint64_t)t->length);
    bd_job_progress_update(job, (uint64_t)t->length);
    bd_job_transition_to_ready(job);
    while (!t->should_complete && !bd_job_is_cancelled(job)) {
        bd_job_yield(job);
    }
    /*
     * A mirror drains its nodes from the end of its run until it is
     * finalized or aborted, which holds the job paused meanwhile: so does
     * this, through the ABI's own hold.
     */
    t->held = true;
    bd_job_pause(job);
    return 0;
}

static void testjob_release(BdJob *job)
{
    Testjob *t = bd_job_opaque(job);

    if (t->held) {
        t->held = false;
        bd_job_resume(job);
    }
}

static int testjob_prepare(BdJob *job, GError **errp)
{
    testjob_release(job);
    return 0;
}

static void testjob_complete(BdJob *job, GError **errp)
{
    Testjob *t = bd_job_opaque(job);

    t->should_complete = true;
    bd_job_enter(job);
}

static const BdJobType testjob_type = {
    .struct_size = sizeof(BdJobType),
    .name = "testjob",
    .description = "test block job: READY until completed",
    .block_job = true,
    .run = testjob_run,
    .complete = testjob_complete,
    .prepare = testjob_prepare,
    .abort = testjob_release,
    .free = g_free,
};

static bool qmp_testjob_start(JsonObject *args, JsonNode **ret,
                              GError **errp)
{
    Testjob *t = g_new0(Testjob, 1);
    unsigned flags = 0;
    BdJob *job;

    t->length = bd_json_get_int(args, "length", 1048576);
    if (!bd_json_get_bool(args, "auto-finalize", true)) {
        flags |= BD_JOB_MANUAL_FINALIZE;
    }
    if (!bd_json_get_bool(args, "auto-dismiss", true)) {
        flags |= BD_JOB_MANUAL_DISMISS;
    }
    job = bd_job_new("testjob", bd_json_get_str(args, "job-id", ""), flags,
                     t, errp);
    if (!job) {
        g_free(t);
        return false;
    }
    bd_job_start(job);
    return true;
}

static const BdQmpCommand testjob_start_command = {
    sizeof(BdQmpCommand), "testjob-start", qmp_testjob_start, 0,
};

static bool job_testjob_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_job_type(reg, &testjob_type, errp) &&
           bd_registry_add_qmp_command(reg, &testjob_start_command, errp);
}

BD_PLUGIN(.name = "job-testjob",
          .version = "0",
          .description = "test job type (testjob) for the integration tests",
          .license = "GPL-2.0-or-later",
          .schema = job_testjob_schema,
          .init = job_testjob_init);
