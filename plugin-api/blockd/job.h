/*
 * blockd plugin ABI: job types.
 *
 * A job type is a kind of background job (JobType: "create", "mirror",
 * ...).  The core's job manager owns every job's state machine (job.json's
 * JobStatus and JobVerb), its id, its events and the QMP verbs; a job type
 * only says what the job does, through the callbacks below.  The core never
 * names a job type: a plugin registers it with bd_registry_add_job_type()
 * and starts jobs of it with bd_job_new() and bd_job_start() (usually from
 * a QMP command the same plugin registers).
 *
 * A job's life: bd_job_new() (CREATED), bd_job_start() (RUNNING: @run is
 * entered in a coroutine in the main loop's AioContext).  When @run
 * returns, the job goes to WAITING, PENDING (and waits for job-finalize
 * unless it finalizes itself), then @prepare, then @commit or @abort (the
 * latter also after a failure or a cancel, through ABORTING), then @clean,
 * CONCLUDED, and NULL on job-dismiss (or at once with auto-dismiss).
 */
#ifndef BLOCKD_JOB_H
#define BLOCKD_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/coroutine.h>
#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdJob BdJob;

/*
 * BdJobType (since ABI 1.0):
 * @struct_size: sizeof(BdJobType).
 * @name: the value of JobType, e.g. "mirror".
 * @description: one line for listings and help.
 *
 * Appended after the 1.0 layout (absent: NULL/false, as each says):
 * @block_job: jobs of this type are block jobs: query-block-jobs lists
 *     them, block-job-* reach them, and they send the legacy BLOCK_JOB_*
 *     events.  false: only job-* and query-jobs see them (like "create").
 * @run: coroutine, main loop's AioContext.  The job's work.  Call
 *     bd_job_pause_point() between steps (pause and cancel take effect
 *     there) and report progress.  Return 0, or a negative errno and set
 *     @errp (the job then fails with that message).  Required.
 * @complete: main loop.  job-complete on a READY (or STANDBY) job: make
 *     @run finish soon (bd_job_enter() wakes it).  NULL: the job cannot
 *     be completed ("The active block job 'x' cannot be completed").
 * @prepare: main loop, PENDING.  Last chance to fail before commit: return
 *     0, or a negative errno and set @errp.  NULL: nothing to prepare.
 * @commit: main loop.  The job succeeded: make its result visible.  NULL:
 *     nothing to do.
 * @abort: main loop.  The job failed or was cancelled: undo.  NULL:
 *     nothing to undo.
 * @clean: main loop.  After @commit or @abort.  NULL: nothing.
 * @pause: main loop.  The job is pausing at a pause point.  NULL: nothing.
 * @resume: main loop.  The job resumes after a pause.  NULL: nothing.
 * @free: main loop.  Free the opaque given to bd_job_new() when the job
 *     goes away.  NULL: the opaque needs no freeing.
 * @cancel: main loop.  A cancel was asked, with block-job-cancel's
 *     @force (job-cancel forces): return whether it is forced (the job
 *     is cancelled: @run sees bd_job_is_cancelled()) or soft (the job
 *     should end as if it had completed, without its final switch, as a
 *     READY mirror does: @run sees only bd_job_cancel_requested()).
 *     NULL: every cancel is forced.
 */
struct BdJobType {
    uint32_t struct_size;
    const char *name;
    const char *description;

    bool block_job;
    bd_coroutine_fn int (*run)(BdJob *job, GError **errp);
    void (*complete)(BdJob *job, GError **errp);
    int (*prepare)(BdJob *job, GError **errp);
    void (*commit)(BdJob *job);
    void (*abort)(BdJob *job);
    void (*clean)(BdJob *job);
    void (*pause)(BdJob *job);
    void (*resume)(BdJob *job);
    void (*free)(void *opaque);
    bool (*cancel)(BdJob *job, bool force);
};

/* bd_job_new() flags: the job waits for job-finalize / job-dismiss. */
#define BD_JOB_MANUAL_FINALIZE (1u << 0)
#define BD_JOB_MANUAL_DISMISS  (1u << 1)

/*
 * Main loop.  Create a job of the registered type @type with id @id
 * (refused with QEMU's messages when malformed or already in use), in
 * state CREATED.  @opaque is the type's, freed by its @free callback.
 * Returns NULL and sets @errp on failure (@opaque is then not taken).
 */
BdJob *bd_job_new(const char *type, const char *id, unsigned flags,
                  void *opaque, GError **errp);

/* Main loop.  Start a CREATED job: RUNNING, and @run is entered. */
void bd_job_start(BdJob *job);

/* The opaque given to bd_job_new(). */
void *bd_job_opaque(BdJob *job);

/* The job's id. */
const char *bd_job_id(BdJob *job);

/* Whether the job is being cancelled (@run should return soon). */
bool bd_job_is_cancelled(BdJob *job);

/* Whether any cancel was asked, soft ones (see @cancel) included. */
bool bd_job_cancel_requested(BdJob *job);

/* Whether the job is READY (or STANDBY, READY and paused). */
bool bd_job_is_ready(BdJob *job);

/*
 * Coroutine, in @run.  Where a pause or a cancel takes effect: yields
 * while the job is paused.
 */
bd_coroutine_fn void bd_job_pause_point(BdJob *job);

/*
 * Coroutine, in @run.  Sleep until bd_job_enter() (or a pause, resume,
 * cancel or complete) wakes the job, then pass a pause point.  A job that
 * waits for something (READY, waiting for job-complete) sleeps here.
 */
bd_coroutine_fn void bd_job_yield(BdJob *job);

/* Main loop.  Wake a job sleeping in bd_job_yield(); no-op otherwise. */
void bd_job_enter(BdJob *job);

/*
 * Main loop or @run.  Hold the job paused (it stops at its next pause
 * point; query-block-jobs shows it paused), e.g. while its nodes are
 * drained; counted, each released by one bd_job_resume().  Not the
 * user's pause: job-resume does not release it.
 */
void bd_job_pause(BdJob *job);
void bd_job_resume(BdJob *job);

/* Progress: @done more units are done; @remaining more are to do. */
void bd_job_progress_update(BdJob *job, uint64_t done);
void bd_job_progress_set_remaining(BdJob *job, uint64_t remaining);

/* Main loop or @run.  The job can now be completed (READY). */
void bd_job_transition_to_ready(BdJob *job);

/* --- block jobs: speed and errors (since ABI 1.0, appended) ------------- */

/*
 * Main loop.  Set the job's speed limit in bytes per second (0: none), as
 * block-job-set-speed does, with its errors (a negative speed, a job in a
 * state that refuses set-speed).  A job type calls it after bd_job_new()
 * for the @speed its command was given.
 */
bool bd_job_set_speed(BdJob *job, int64_t speed, GError **errp);

/*
 * Main loop.  A CREATED job that its command could not set up after all
 * goes away at once (to NULL, as QEMU's job_early_fail), its opaque
 * freed by the type's @free.
 */
void bd_job_early_fail(BdJob *job);

/*
 * Coroutine, in @run.  The rate limit, as QEMU's
 * block_job_ratelimit_sleep(): sleeps while the bytes reported with
 * bd_job_ratelimit_processed() exceed what the speed allows in the
 * current 100 ms slice; always passes a pause point (even at speed 0,
 * so a drain or pause is seen between steps).  A pause, cancel or
 * set-speed wakes it early.
 */
bd_coroutine_fn void bd_job_ratelimit_sleep(BdJob *job);

/*
 * Coroutine, in @run.  Sleep @ns nanoseconds (0: just yield once), woken
 * early by a pause, cancel, complete or set-speed; passes a pause point.
 */
bd_coroutine_fn void bd_job_sleep_ns(BdJob *job, uint64_t ns);

/* Coroutine, in @run.  @bytes more were copied (for the rate limit). */
void bd_job_ratelimit_processed(BdJob *job, uint64_t bytes);

/* BlockdevOnError, in QAPI's order. */
typedef enum BdJobOnError {
    BD_JOB_ON_ERROR_REPORT,
    BD_JOB_ON_ERROR_IGNORE,
    BD_JOB_ON_ERROR_ENOSPC,
    BD_JOB_ON_ERROR_STOP,
    BD_JOB_ON_ERROR_AUTO,
} BdJobOnError;

/* BlockErrorAction, in QAPI's order. */
typedef enum BdJobErrorAction {
    BD_JOB_ERROR_ACTION_IGNORE,
    BD_JOB_ERROR_ACTION_REPORT,
    BD_JOB_ERROR_ACTION_STOP,
} BdJobErrorAction;

/*
 * Parse a BlockdevOnError value (already validated by the schema);
 * BD_JOB_ON_ERROR_REPORT for NULL.
 */
BdJobOnError bd_job_on_error_parse(const char *name);

/*
 * Coroutine, in @run.  The job met the I/O error @error (a positive
 * errno) on a read (@is_read) or a write: what QEMU's
 * block_job_error_action() does.  Decides the action from @on_error
 * (enospc and auto stop on ENOSPC and report otherwise), sends
 * BLOCK_JOB_ERROR (unless the job is cancelled), and for STOP pauses
 * the job as if the user had (job-resume continues it) and sets its
 * io-status (nospace or failed) until then.  The caller retries the
 * step after STOP (at its next pause point, where it waits), goes on
 * after IGNORE, and fails after REPORT.
 */
BdJobErrorAction bd_job_error_action(BdJob *job, BdJobOnError on_error,
                                     bool is_read, int error);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_JOB_H */
