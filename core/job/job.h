/*
 * The job manager: every background job's state machine, id, progress,
 * events and QMP verbs.  Job types (what a job does) are plugins
 * (<blockd/job.h>); nothing here names one.
 */
#ifndef BLOCKD_CORE_JOB_H
#define BLOCKD_CORE_JOB_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/job.h>

/* job.json's JobStatus, in its order */
typedef enum BdJobStatus {
    BD_JOB_STATUS_UNDEFINED,
    BD_JOB_STATUS_CREATED,
    BD_JOB_STATUS_RUNNING,
    BD_JOB_STATUS_PAUSED,
    BD_JOB_STATUS_READY,
    BD_JOB_STATUS_STANDBY,
    BD_JOB_STATUS_WAITING,
    BD_JOB_STATUS_PENDING,
    BD_JOB_STATUS_ABORTING,
    BD_JOB_STATUS_CONCLUDED,
    BD_JOB_STATUS_NULL,
    BD_JOB_STATUS__MAX,
} BdJobStatus;

/* job.json's JobVerb, in its order */
typedef enum BdJobVerb {
    BD_JOB_VERB_CANCEL,
    BD_JOB_VERB_PAUSE,
    BD_JOB_VERB_RESUME,
    BD_JOB_VERB_SET_SPEED,
    BD_JOB_VERB_COMPLETE,
    BD_JOB_VERB_DISMISS,
    BD_JOB_VERB_FINALIZE,
    BD_JOB_VERB__MAX,
} BdJobVerb;

const char *bd_job_status_name(BdJobStatus s);
const char *bd_job_verb_name(BdJobVerb v);

/* The state machine's tables: may a job go from @from to @to; may a job
 * in @s take @verb. */
bool bd_job_transition_allowed(BdJobStatus from, BdJobStatus to);
bool bd_job_verb_allowed(BdJobVerb verb, BdJobStatus s);

/* At shutdown, cancel every job and wait for it (a shutdown notifier). */
void bd_job_init(void);

/* Register the job-* and block-job-* commands and query-jobs. */
void bd_job_register_qmp_commands(void);

/* The verbs, with QEMU's errors.  @block selects the block-job view
 * (only block jobs are found, with DeviceNotActive). */
BdJob *bd_job_find_for_verb(const char *id, bool block, GError **errp);
bool bd_job_user_pause(BdJob *job, GError **errp);
bool bd_job_user_resume(BdJob *job, GError **errp);
bool bd_job_user_cancel(BdJob *job, bool force, GError **errp);
bool bd_job_user_complete(BdJob *job, GError **errp);
bool bd_job_user_finalize(BdJob *job, GError **errp);
bool bd_job_user_dismiss(BdJob *job, GError **errp);

/* query-jobs and query-block-jobs, newest first */
JsonArray *bd_job_query(bool block);

#endif /* BLOCKD_CORE_JOB_H */
