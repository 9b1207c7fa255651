/*
 * The job manager: job.json's state machine (the two tables below are
 * QEMU's, state for state), JOB_STATUS_CHANGE on every transition, the
 * legacy BLOCK_JOB_* events for block jobs, and the verbs.  Every job runs
 * its type's @run in a coroutine in the main loop's AioContext; the rest of
 * its life (completion, finalization, dismissal) happens in the main loop.
 */
#include <errno.h>
#include <string.h>

#include <blockd/aio.h>
#include <blockd/error.h>

#include "aio/aio-context.h"
#include "aio/coroutine.h"
#include "aio/main-loop.h"
#include "job/job.h"
#include "plugin/plugin-loader.h"
#include "qmp/qmp-event.h"
#include "util/id.h"
#include "util/main-thread.h"

struct BdJob {
    char *id;
    const BdJobType *type;
    void *opaque;
    BdJobStatus status;
    bool auto_finalize;
    bool auto_dismiss;
    BdCoroutine *co;
    bool started;
    bool deferred_to_main_loop;  /* @run returned; completion is queued */
    bool cancelled;
    bool force_cancel;
    bool paused;                 /* yielded at a pause point */
    bool user_paused;
    int pause_count;
    bool busy;
    int ret;
    char *error;
    uint64_t progress_current;
    uint64_t progress_total;
    int64_t speed;
    /* QEMU's RateLimit, with its 100 ms slices (BLOCK_JOB_SLICE_TIME) */
    uint64_t slice_quota;
    int64_t slice_start;
    int64_t slice_end;
    uint64_t dispatched;
    BdAioTimer *sleep_timer;
    bool sleeping;               /* in bd_job_ratelimit_sleep's timer */
    const char *io_status;       /* "ok", "failed", "nospace" */
};

#define JOB_SLICE_NS 100000000LL

static const char *const status_names[BD_JOB_STATUS__MAX] = {
    "undefined", "created", "running", "paused", "ready", "standby",
    "waiting", "pending", "aborting", "concluded", "null",
};

static const char *const verb_names[BD_JOB_VERB__MAX] = {
    "cancel", "pause", "resume", "set-speed", "complete", "dismiss",
    "finalize",
};

/* transitions[from][to] */
static const bool transitions[BD_JOB_STATUS__MAX][BD_JOB_STATUS__MAX] = {
                                   /* U, C, R, P, Y, S, W, D, X, E, N */
    [BD_JOB_STATUS_UNDEFINED] =      {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    [BD_JOB_STATUS_CREATED] =        {0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1},
    [BD_JOB_STATUS_RUNNING] =        {0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0},
    [BD_JOB_STATUS_PAUSED] =         {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
    [BD_JOB_STATUS_READY] =          {0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0},
    [BD_JOB_STATUS_STANDBY] =        {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
    [BD_JOB_STATUS_WAITING] =        {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
    [BD_JOB_STATUS_PENDING] =        {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
    [BD_JOB_STATUS_ABORTING] =       {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
    [BD_JOB_STATUS_CONCLUDED] =      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    [BD_JOB_STATUS_NULL] =           {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};

/* verbs[verb][state] */
static const bool verbs[BD_JOB_VERB__MAX][BD_JOB_STATUS__MAX] = {
                                   /* U, C, R, P, Y, S, W, D, X, E, N */
    [BD_JOB_VERB_CANCEL] =           {0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    [BD_JOB_VERB_PAUSE] =            {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    [BD_JOB_VERB_RESUME] =           {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    [BD_JOB_VERB_SET_SPEED] =        {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    [BD_JOB_VERB_COMPLETE] =         {0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0},
    [BD_JOB_VERB_DISMISS] =          {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
    [BD_JOB_VERB_FINALIZE] =         {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
};

/* newest first, as query-jobs lists them */
static GList *jobs;

const char *bd_job_status_name(BdJobStatus s)
{
    return s < BD_JOB_STATUS__MAX ? status_names[s] : "undefined";
}

const char *bd_job_verb_name(BdJobVerb v)
{
    return v < BD_JOB_VERB__MAX ? verb_names[v] : "?";
}

bool bd_job_transition_allowed(BdJobStatus from, BdJobStatus to)
{
    return from < BD_JOB_STATUS__MAX && to < BD_JOB_STATUS__MAX &&
           transitions[from][to];
}

bool bd_job_verb_allowed(BdJobVerb verb, BdJobStatus s)
{
    return verb < BD_JOB_VERB__MAX && s < BD_JOB_STATUS__MAX &&
           verbs[verb][s];
}

static void job_transition(BdJob *job, BdJobStatus to)
{
    JsonObject *data;

    g_assert(bd_job_transition_allowed(job->status, to));
    job->status = to;
    data = json_object_new();
    json_object_set_string_member(data, "id", job->id);
    json_object_set_string_member(data, "status", status_names[to]);
    bd_qmp_event_emit("JOB_STATUS_CHANGE", data);
    json_object_unref(data);
}

static bool job_apply_verb(BdJob *job, BdJobVerb verb, GError **errp)
{
    if (bd_job_verb_allowed(verb, job->status)) {
        return true;
    }
    bd_error_setg(errp, "Job '%s' in state '%s' cannot accept command verb "
                  "'%s'", job->id, status_names[job->status],
                  verb_names[verb]);
    return false;
}

/* The legacy block-job events carry the job's progress and speed. */
static JsonObject *block_event_data(BdJob *job)
{
    JsonObject *data = json_object_new();

    json_object_set_string_member(data, "type", job->type->name);
    json_object_set_string_member(data, "device", job->id);
    json_object_set_int_member(data, "len", (gint64)job->progress_total);
    json_object_set_int_member(data, "offset", (gint64)job->progress_current);
    json_object_set_int_member(data, "speed", job->speed);
    return data;
}

static void block_event(BdJob *job, const char *name, JsonObject *data)
{
    if (job->type->block_job) {
        bd_qmp_event_emit(name, data);
    }
    json_object_unref(data);
}

static BdJob *job_find(const char *id)
{
    for (GList *l = jobs; l; l = l->next) {
        BdJob *job = l->data;

        if (!strcmp(job->id, id)) {
            return job;
        }
    }
    return NULL;
}

BdJob *bd_job_new(const char *type, const char *id, unsigned flags,
                  void *opaque, GError **errp)
{
    const BdJobType *jt;
    BdJob *job;

    BD_ASSERT_MAIN_LOOP();
    if (!bd_id_wellformed(id)) {
        bd_error_setg(errp, "Invalid job ID '%s'", id);
        return NULL;
    }
    if (job_find(id)) {
        bd_error_setg(errp, "Job ID '%s' already in use", id);
        return NULL;
    }
    jt = bd_plugins_lookup(BD_PROVIDE_JOB_TYPE, type, errp);
    if (!jt) {
        return NULL;
    }
    if (!jt->run) {
        /* a plugin built for the 1.0 layout, or one that forgot it */
        bd_error_setg(errp, "Job type '%s' has no run callback", type);
        return NULL;
    }
    job = g_new0(BdJob, 1);
    job->id = g_strdup(id);
    job->type = jt;
    job->opaque = opaque;
    job->auto_finalize = !(flags & BD_JOB_MANUAL_FINALIZE);
    job->auto_dismiss = !(flags & BD_JOB_MANUAL_DISMISS);
    /* a job is born paused: bd_job_start() takes this away */
    job->pause_count = 1;
    job->io_status = "ok";
    jobs = g_list_prepend(jobs, job);
    job_transition(job, BD_JOB_STATUS_CREATED);
    return job;
}

void *bd_job_opaque(BdJob *job)
{
    return job->opaque;
}

const char *bd_job_id(BdJob *job)
{
    return job->id;
}

bool bd_job_is_cancelled(BdJob *job)
{
    return job->cancelled && job->force_cancel;
}

bool bd_job_cancel_requested(BdJob *job)
{
    return job->cancelled;
}

bool bd_job_is_ready(BdJob *job)
{
    return job->status == BD_JOB_STATUS_READY ||
           job->status == BD_JOB_STATUS_STANDBY;
}

void bd_job_progress_update(BdJob *job, uint64_t done)
{
    job->progress_current += done;
}

void bd_job_progress_set_remaining(BdJob *job, uint64_t remaining)
{
    job->progress_total = job->progress_current + remaining;
}

static void job_free(BdJob *job)
{
    jobs = g_list_remove(jobs, job);
    if (job->sleep_timer) {
        bd_aio_timer_free(job->sleep_timer);
    }
    if (job->type->free) {
        job->type->free(job->opaque);
    }
    g_free(job->error);
    g_free(job->id);
    g_free(job);
}

static void job_do_dismiss(BdJob *job)
{
    job_transition(job, BD_JOB_STATUS_NULL);
    job_free(job);
}

/* A failure or cancel gives the job its error and sends it to ABORTING. */
static void job_update_rc(BdJob *job)
{
    if (!job->ret && bd_job_is_cancelled(job)) {
        job->ret = -ECANCELED;
    }
    if (job->ret) {
        if (!job->error) {
            job->error = g_strdup(g_strerror(-job->ret));
        }
        if (job->status != BD_JOB_STATUS_ABORTING) {
            job_transition(job, BD_JOB_STATUS_ABORTING);
        }
    }
}

static void job_finalize_single(BdJob *job)
{
    job_update_rc(job);
    if (!job->ret) {
        if (job->type->commit) {
            job->type->commit(job);
        }
    } else if (job->type->abort) {
        job->type->abort(job);
    }
    if (job->type->clean) {
        job->type->clean(job);
    }
    if (bd_job_is_cancelled(job)) {
        block_event(job, "BLOCK_JOB_CANCELLED", block_event_data(job));
    } else {
        JsonObject *data = block_event_data(job);

        if (job->error) {
            json_object_set_string_member(data, "error", job->error);
        }
        block_event(job, "BLOCK_JOB_COMPLETED", data);
    }
    job_transition(job, BD_JOB_STATUS_CONCLUDED);
    if (job->auto_dismiss) {
        job_do_dismiss(job);
    }
}

static void job_do_finalize(BdJob *job)
{
    if (job->type->prepare && !job->ret) {
        GError *err = NULL;
        int ret = job->type->prepare(job, &err);

        if (ret < 0) {
            job->ret = ret;
            job->error = g_strdup(err ? err->message : g_strerror(-ret));
            g_clear_error(&err);
        }
    }
    job_finalize_single(job);
}

/* @run has returned (or the job was cancelled before it started). */
static void job_completed(BdJob *job)
{
    job_update_rc(job);
    if (job->ret) {
        job_finalize_single(job);
        return;
    }
    job_transition(job, BD_JOB_STATUS_WAITING);
    job_transition(job, BD_JOB_STATUS_PENDING);
    /* only a job that waits for job-finalize says it is pending */
    if (job->type->block_job && !job->auto_finalize) {
        JsonObject *data = json_object_new();

        json_object_set_string_member(data, "type", job->type->name);
        json_object_set_string_member(data, "id", job->id);
        bd_qmp_event_emit("BLOCK_JOB_PENDING", data);
        json_object_unref(data);
    }
    if (job->auto_finalize) {
        job_do_finalize(job);
    }
}

static void job_exit(void *opaque)
{
    BdJob *job = opaque;

    job->busy = false;
    job_completed(job);
}

static void job_co_entry(void *opaque)
{
    BdJob *job = opaque;
    GError *err = NULL;
    int ret;

    bd_job_pause_point(job);
    ret = job->type->run(job, &err);
    if (ret < 0) {
        job->ret = ret;
        job->error = g_strdup(err ? err->message : g_strerror(-ret));
    }
    g_clear_error(&err);
    job->deferred_to_main_loop = true;
    job->busy = true;
    /* the rest of the job's life is the main loop's */
    bd_aio_bh_schedule_oneshot(bd_aio_main_context(), job_exit, job);
}

void bd_job_start(BdJob *job)
{
    BD_ASSERT_MAIN_LOOP();
    g_assert(job->status == BD_JOB_STATUS_CREATED && !job->started);
    job->started = true;
    job->co = bd_coroutine_create(job_co_entry, job);
    job->pause_count--;
    job->busy = true;
    job->paused = false;
    job_transition(job, BD_JOB_STATUS_RUNNING);
    bd_aio_co_enter(bd_aio_main_context(), job->co);
}

static bool job_should_pause(BdJob *job)
{
    return job->pause_count > 0 && !bd_job_is_cancelled(job);
}

/*
 * The job's coroutine gives the CPU back until job_enter() wakes it: a
 * sleeping job is not busy, which query-block-jobs shows.
 */
static bd_coroutine_fn void job_do_yield(BdJob *job)
{
    job->busy = false;
    bd_coroutine_yield();
    g_assert(job->busy);
}

bd_coroutine_fn void bd_job_yield(BdJob *job)
{
    /* a pause or cancel that came meanwhile is seen at once */
    if (!job_should_pause(job) && !bd_job_is_cancelled(job)) {
        job_do_yield(job);
    }
    bd_job_pause_point(job);
}

bd_coroutine_fn void bd_job_pause_point(BdJob *job)
{
    BdJobStatus before = job->status;

    if (!job_should_pause(job)) {
        return;
    }
    if (job->type->pause) {
        job->type->pause(job);
    }
    job_transition(job, before == BD_JOB_STATUS_READY ?
                   BD_JOB_STATUS_STANDBY : BD_JOB_STATUS_PAUSED);
    job->paused = true;
    while (job_should_pause(job)) {
        job_do_yield(job);
    }
    job->paused = false;
    job_transition(job, before == BD_JOB_STATUS_READY ?
                   BD_JOB_STATUS_READY : BD_JOB_STATUS_RUNNING);
    if (job->type->resume) {
        job->type->resume(job);
    }
}

/* Wake a job that sleeps (in bd_job_yield() or paused) to look again. */
static void job_enter(BdJob *job)
{
    if (job->started && !job->busy && !job->deferred_to_main_loop) {
        job->busy = true;
        bd_aio_co_enter(bd_aio_main_context(), job->co);
    }
}

void bd_job_enter(BdJob *job)
{
    job_enter(job);
}

void bd_job_pause(BdJob *job)
{
    job->pause_count++;
    if (!job->paused) {
        job_enter(job);
    }
}

void bd_job_resume(BdJob *job)
{
    g_assert(job->pause_count > 0);
    job->pause_count--;
    if (!job_should_pause(job)) {
        job_enter(job);
    }
}

void bd_job_transition_to_ready(BdJob *job)
{
    job_transition(job, BD_JOB_STATUS_READY);
    block_event(job, "BLOCK_JOB_READY", block_event_data(job));
}

BdJob *bd_job_find_for_verb(const char *id, bool block, GError **errp)
{
    BdJob *job = job_find(id);

    if (block) {
        if (!job || !job->type->block_job) {
            g_set_error(errp, BD_ERROR, BD_ERROR_DEVICE_NOT_ACTIVE,
                        "Block job '%s' not found", id);
            return NULL;
        }
    } else if (!job) {
        bd_error_setg(errp, "Job not found");
    }
    return job;
}

bool bd_job_user_pause(BdJob *job, GError **errp)
{
    if (!job_apply_verb(job, BD_JOB_VERB_PAUSE, errp)) {
        return false;
    }
    if (job->user_paused) {
        bd_error_setg(errp, "Job is already paused");
        return false;
    }
    job->user_paused = true;
    job->pause_count++;
    /* a sleeping job wakes up to reach its pause point */
    job_enter(job);
    return true;
}

bool bd_job_user_resume(BdJob *job, GError **errp)
{
    if (!job->user_paused || job->pause_count <= 0) {
        bd_error_setg(errp, "Can't resume a job that was not paused");
        return false;
    }
    if (!job_apply_verb(job, BD_JOB_VERB_RESUME, errp)) {
        return false;
    }
    job->user_paused = false;
    job->pause_count--;
    /* QEMU's block_job_user_resume() forgets the error that stopped it */
    job->io_status = "ok";
    job_enter(job);
    return true;
}

static void job_cancel(BdJob *job, bool force)
{
    /* a paused job cannot see its cancel: it is resumed first */
    if (job->user_paused) {
        job->user_paused = false;
        job->pause_count--;
    }
    /*
     * QEMU cancels softly (the job completes instead) only when the
     * type's cancel callback says so (a READY mirror or active commit);
     * without one every cancel is forced, whatever block-job-cancel's
     * @force says.
     */
    if (job->type->cancel) {
        force = job->type->cancel(job, force);
    } else {
        force = true;
    }
    job->cancelled = true;
    job->force_cancel |= force;
    if (!job->started) {
        job_completed(job);
    } else if (job->deferred_to_main_loop) {
        /* @run is done: a PENDING job is aborted now */
        if (job->status == BD_JOB_STATUS_PENDING) {
            job_finalize_single(job);
        }
    } else {
        job_enter(job);
    }
}

bool bd_job_user_cancel(BdJob *job, bool force, GError **errp)
{
    if (!job_apply_verb(job, BD_JOB_VERB_CANCEL, errp)) {
        return false;
    }
    job_cancel(job, force);
    return true;
}

/*
 * At shutdown, as qemu-storage-daemon does: every job is held paused (its
 * nodes are drained), then, newest first, each is cancelled, waited for
 * (its run gives up at its next pause point) and dismissed, before the
 * exports and nodes it uses go.  A job already CONCLUDED is dismissed.
 */
static void jobs_shutdown(void *opaque)
{
    for (GList *l = jobs; l; l = l->next) {
        bd_job_pause(l->data);
    }
    while (jobs) {
        BdJob *job = jobs->data;

        if (job->status != BD_JOB_STATUS_CONCLUDED) {
            job_cancel(job, true);
            /* an auto-dismissed job leaves the list when it concludes */
            while (g_list_find(jobs, job) &&
                   job->status != BD_JOB_STATUS_CONCLUDED) {
                bd_aio_poll(bd_aio_main_context(), true);
            }
        }
        if (g_list_find(jobs, job)) {
            job_do_dismiss(job);
        }
    }
}

void bd_job_init(void)
{
    bd_shutdown_add_notifier(jobs_shutdown, NULL);
}

bool bd_job_user_complete(BdJob *job, GError **errp)
{
    if (!job_apply_verb(job, BD_JOB_VERB_COMPLETE, errp)) {
        return false;
    }
    if (job->cancelled || !job->type->complete) {
        bd_error_setg(errp, "The active block job '%s' cannot be completed",
                      job->id);
        return false;
    }
    job->type->complete(job, errp);
    return !errp || !*errp;
}

bool bd_job_user_finalize(BdJob *job, GError **errp)
{
    if (!job_apply_verb(job, BD_JOB_VERB_FINALIZE, errp)) {
        return false;
    }
    job_do_finalize(job);
    return true;
}

bool bd_job_user_dismiss(BdJob *job, GError **errp)
{
    if (!job_apply_verb(job, BD_JOB_VERB_DISMISS, errp)) {
        return false;
    }
    job_do_dismiss(job);
    return true;
}

bool bd_job_set_speed(BdJob *job, int64_t speed, GError **errp)
{
    if (!job_apply_verb(job, BD_JOB_VERB_SET_SPEED, errp)) {
        return false;
    }
    if (speed < 0) {
        bd_error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return false;
    }
    job->speed = speed;
    job->slice_quota = (uint64_t)speed * JOB_SLICE_NS / 1000000000LL;
    if (speed && !job->slice_quota) {
        job->slice_quota = 1;
    }
    /* a job sleeping for the old limit looks again (QEMU's job_enter) */
    if (job->sleeping) {
        job_enter(job);
    }
    return true;
}

void bd_job_early_fail(BdJob *job)
{
    BD_ASSERT_MAIN_LOOP();
    g_assert(job->status == BD_JOB_STATUS_CREATED && !job->started);
    job_do_dismiss(job);
}

/* QEMU's ratelimit_calculate_delay() */
static uint64_t ratelimit_delay(BdJob *job, uint64_t n)
{
    int64_t now = bd_clock_ns();
    double slices;

    if (!job->slice_quota) {
        return 0;
    }
    if (job->slice_end < now) {
        job->slice_start = now;
        job->slice_end = now + JOB_SLICE_NS;
        job->dispatched = 0;
    }
    job->dispatched += n;
    if (job->dispatched < job->slice_quota) {
        return 0;
    }
    slices = (double)job->dispatched / job->slice_quota;
    job->slice_end = job->slice_start + (int64_t)(slices * JOB_SLICE_NS);
    return job->slice_end - now;
}

void bd_job_ratelimit_processed(BdJob *job, uint64_t bytes)
{
    ratelimit_delay(job, bytes);
}

static void job_sleep_timer_cb(void *opaque)
{
    job_enter(opaque);
}

/* QEMU's job_sleep_ns(): a pause, cancel or set-speed ends it early. */
static bd_coroutine_fn void job_sleep_ns(BdJob *job, uint64_t ns)
{
    if (ns == 0) {
        /*
         * Only let the loop run once (QMP, drains): through a bottom half,
         * not a timer, whose millisecond clock made each of a stream's
         * steps wait ~1 ms (a third of its throughput).  The job stays
         * busy meanwhile, as QEMU's does.
         */
        bd_aio_co_schedule(bd_aio_main_context(), bd_coroutine_self());
        bd_coroutine_yield();
        bd_job_pause_point(job);
        return;
    }
    if (!job_should_pause(job) && !bd_job_is_cancelled(job)) {
        if (!job->sleep_timer) {
            job->sleep_timer = bd_aio_timer_new(bd_aio_main_context(),
                                                job_sleep_timer_cb, job);
        }
        bd_aio_timer_mod(job->sleep_timer, bd_clock_ns() + (int64_t)ns);
        job->sleeping = true;
        job_do_yield(job);
        job->sleeping = false;
        bd_aio_timer_del(job->sleep_timer);
    }
    bd_job_pause_point(job);
}

bd_coroutine_fn void bd_job_sleep_ns(BdJob *job, uint64_t ns)
{
    job_sleep_ns(job, ns);
}

bd_coroutine_fn void bd_job_ratelimit_sleep(BdJob *job)
{
    uint64_t delay;

    do {
        delay = ratelimit_delay(job, 0);
        job_sleep_ns(job, delay);
    } while (delay && !bd_job_is_cancelled(job));
}

BdJobOnError bd_job_on_error_parse(const char *name)
{
    static const char *const names[] = {
        "report", "ignore", "enospc", "stop", "auto",
    };

    for (unsigned i = 0; name && i < G_N_ELEMENTS(names); i++) {
        if (!strcmp(name, names[i])) {
            return (BdJobOnError)i;
        }
    }
    return BD_JOB_ON_ERROR_REPORT;
}

BdJobErrorAction bd_job_error_action(BdJob *job, BdJobOnError on_error,
                                     bool is_read, int error)
{
    static const char *const action_names[] = { "ignore", "report", "stop" };
    BdJobErrorAction action;

    switch (on_error) {
    case BD_JOB_ON_ERROR_ENOSPC:
    case BD_JOB_ON_ERROR_AUTO:
        action = error == ENOSPC ? BD_JOB_ERROR_ACTION_STOP
                                 : BD_JOB_ERROR_ACTION_REPORT;
        break;
    case BD_JOB_ON_ERROR_STOP:
        action = BD_JOB_ERROR_ACTION_STOP;
        break;
    case BD_JOB_ON_ERROR_IGNORE:
        action = BD_JOB_ERROR_ACTION_IGNORE;
        break;
    case BD_JOB_ON_ERROR_REPORT:
    default:
        action = BD_JOB_ERROR_ACTION_REPORT;
        break;
    }
    if (!bd_job_is_cancelled(job) && job->type->block_job) {
        JsonObject *data = json_object_new();

        json_object_set_string_member(data, "device", job->id);
        json_object_set_string_member(data, "operation",
                                      is_read ? "read" : "write");
        json_object_set_string_member(data, "action", action_names[action]);
        bd_qmp_event_emit("BLOCK_JOB_ERROR", data);
        json_object_unref(data);
    }
    if (action == BD_JOB_ERROR_ACTION_STOP) {
        if (!job->user_paused) {
            /* a pause the user sees and ends with job-resume */
            job->user_paused = true;
            job->pause_count++;
        }
        if (!strcmp(job->io_status, "ok")) {
            job->io_status = error == ENOSPC ? "nospace" : "failed";
        }
    }
    return action;
}

JsonArray *bd_job_query(bool block)
{
    JsonArray *list = json_array_new();

    for (GList *l = jobs; l; l = l->next) {
        BdJob *job = l->data;
        JsonObject *o;

        if (block && !job->type->block_job) {
            continue;
        }
        o = json_object_new();
        if (block) {
            json_object_set_string_member(o, "type", job->type->name);
            json_object_set_string_member(o, "device", job->id);
            json_object_set_int_member(o, "len", (gint64)job->progress_total);
            json_object_set_int_member(o, "offset",
                                       (gint64)job->progress_current);
            json_object_set_boolean_member(o, "busy", job->busy);
            json_object_set_boolean_member(o, "paused",
                                           job->pause_count > 0);
            json_object_set_int_member(o, "speed", job->speed);
            json_object_set_string_member(o, "io-status", job->io_status);
            json_object_set_boolean_member(
                o, "ready", job->status == BD_JOB_STATUS_READY ||
                            job->status == BD_JOB_STATUS_STANDBY);
            json_object_set_string_member(o, "status",
                                          status_names[job->status]);
            json_object_set_boolean_member(o, "auto-finalize",
                                           job->auto_finalize);
            json_object_set_boolean_member(o, "auto-dismiss",
                                           job->auto_dismiss);
        } else {
            json_object_set_string_member(o, "id", job->id);
            json_object_set_string_member(o, "type", job->type->name);
            json_object_set_string_member(o, "status",
                                          status_names[job->status]);
            json_object_set_int_member(o, "current-progress",
                                       (gint64)job->progress_current);
            json_object_set_int_member(o, "total-progress",
                                       (gint64)job->progress_total);
        }
        if (job->error) {
            json_object_set_string_member(o, "error", job->error);
        }
        json_array_add_object_element(list, o);
    }
    return list;
}
