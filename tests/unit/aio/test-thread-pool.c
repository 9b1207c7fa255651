/*
 * The thread pool: work runs in workers, completions come back in the
 * submitting coroutine's context, the worker count stays bounded.
 */
#include <glib.h>

#include "aio/aio-context.h"
#include "aio-test-util.h"
#include "aio/coroutine.h"
#include "aio/thread-pool.h"


typedef struct LoadState {
    int jobs_per_co;
    int running;            /* work items running now */
    int max_running;
    int finished;           /* coroutines done */
    bool bad;               /* wrong thread somewhere */
    GMutex lock;
    GHashTable *workers;    /* GThread* that ran work */
    int64_t work_us;
} LoadState;

typedef struct Job {
    LoadState *s;
    int input;
} Job;

static int job_fn(void *opaque)
{
    Job *j = opaque;
    LoadState *s = j->s;
    int now;

    if (bd_aio_current_context() != NULL) {
        s->bad = true;      /* workers have no context */
    }
    now = __atomic_add_fetch(&s->running, 1, __ATOMIC_SEQ_CST);
    g_mutex_lock(&s->lock);
    s->max_running = MAX(s->max_running, now);
    g_hash_table_add(s->workers, g_thread_self());
    g_mutex_unlock(&s->lock);
    if (s->work_us) {
        g_usleep(s->work_us);
    }
    __atomic_sub_fetch(&s->running, 1, __ATOMIC_SEQ_CST);
    return j->input * 2;
}

typedef struct CoArg {
    LoadState *s;
    BdAioContext *home;
    GThread *home_thread;
} CoArg;

static void submitter(void *opaque)
{
    CoArg *a = opaque;
    int i;

    /* completions must come back here */
    a->home = bd_aio_current_context();
    a->home_thread = g_thread_self();
    for (i = 0; i < a->s->jobs_per_co; i++) {
        Job j = { .s = a->s, .input = i };
        int ret = bd_thread_pool_submit_co(NULL, job_fn, &j);

        if (ret != i * 2 || g_thread_self() != a->home_thread ||
            bd_aio_current_context() != a->home ||
            bd_coroutine_get_aio_context(bd_coroutine_self()) != a->home) {
            a->s->bad = true;
        }
    }
    __atomic_add_fetch(&a->s->finished, 1, __ATOMIC_SEQ_CST);
    bd_aio_wait_kick(main_ctx);
}

static void load_state_init(LoadState *s, int jobs_per_co, int64_t work_us)
{
    *s = (LoadState) { .jobs_per_co = jobs_per_co, .work_us = work_us };
    g_mutex_init(&s->lock);
    s->workers = g_hash_table_new(NULL, NULL);
}

static void load_state_clear(LoadState *s)
{
    g_hash_table_destroy(s->workers);
    g_mutex_clear(&s->lock);
}

static void test_main_context(void)
{
    enum { COS = 100, JOBS = 50 };
    LoadState s;
    CoArg args[COS];
    AioTestSpawn sp = { .entry = submitter, .args = args,
                        .arg_size = sizeof(CoArg), .count = COS };
    int i;

    load_state_init(&s, JOBS, 0);
    for (i = 0; i < COS; i++) {
        args[i].s = &s;
    }
    aio_test_spawn_bh(&sp);
    WAIT_FOR(s.finished == COS);
    g_assert_false(s.bad);
    g_assert_cmpuint(g_hash_table_size(s.workers), <=,
                     BD_THREAD_POOL_MAX_DEFAULT);
    g_assert_cmpuint(bd_thread_pool_get_threads(main_ctx), <=,
                     BD_THREAD_POOL_MAX_DEFAULT);
    load_state_clear(&s);
}

/* Main thread and two IOThreads hammer their pools at the same time. */
static void test_iothreads_under_load(void)
{
    enum { COS = 40, JOBS = 100 };
    LoadState s;
    CoArg args[3][COS];
    AioTestSpawn sp[3];
    int i, k;

    load_state_init(&s, JOBS, 0);
    for (k = 0; k < 3; k++) {
        for (i = 0; i < COS; i++) {
            args[k][i].s = &s;
        }
        sp[k] = (AioTestSpawn) { .entry = submitter, .args = args[k],
                                 .arg_size = sizeof(CoArg), .count = COS };
    }
    /* destroying the IOThreads also stops their pools */
    aio_test_spawn_everywhere("tp", 2, sp, &s.finished, 3 * COS);
    g_assert_false(s.bad);
    load_state_clear(&s);
}

static void test_bounded(void)
{
    enum { COS = 32, JOBS = 4, MAX = 4 };
    g_autoptr(GError) err = NULL;
    BdAioContext *ctx = bd_aio_context_new(&err);
    LoadState s;
    CoArg args[COS];
    AioTestSpawn sp = { .entry = submitter, .args = args,
                        .arg_size = sizeof(CoArg), .count = COS };
    int i;

    /* A private context run by this thread for the length of the test. */
    g_assert_no_error(err);
    g_assert_true(bd_thread_pool_set_params(ctx, 1, MAX, &err));
    g_assert_cmpuint(bd_thread_pool_get_threads(ctx), ==, 1);

    load_state_init(&s, JOBS, 500);
    for (i = 0; i < COS; i++) {
        args[i].s = &s;
    }
    bd_aio_context_set_home_thread(ctx);
    aio_test_spawn_bh(&sp);
    while (s.finished < COS) {
        bd_aio_poll(ctx, true);
    }
    bd_aio_context_set_home_thread(main_ctx);

    g_assert_false(s.bad);
    g_assert_cmpint(s.max_running, <=, MAX);
    g_assert_cmpint(s.max_running, >=, 2);     /* it did go parallel */
    g_assert_cmpuint(g_hash_table_size(s.workers), <=, MAX);
    g_assert_cmpuint(bd_thread_pool_get_threads(ctx), <=, MAX);
    load_state_clear(&s);
    bd_aio_context_unref(ctx);
}

static void test_bad_params(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(bd_thread_pool_set_params(main_ctx, 5, 2, &err));
    g_assert_cmpstr(err->message, ==, "thread-pool-min (5) must not be "
                    "greater than thread-pool-max (2)");
    g_clear_error(&err);
    g_assert_false(bd_thread_pool_set_params(main_ctx, -1, 2, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_false(bd_thread_pool_set_params(main_ctx, 0, 0, &err));
    g_assert_nonnull(err);
}

static int add_one(void *opaque)
{
    return *(int *)opaque + 1;
}

typedef struct CbState {
    int results[10];
    int done;
    GThread *thread;
    bool bad;
} CbState;

static void cb_done(void *opaque, int ret)
{
    CbState *s = opaque;

    if (g_thread_self() != s->thread) {
        s->bad = true;
    }
    s->results[s->done++] = ret;
}

static void test_callback(void)
{
    CbState s = { .thread = g_thread_self() };
    int inputs[10];
    int i, sum = 0;

    for (i = 0; i < 10; i++) {
        inputs[i] = i * 10;
        bd_thread_pool_submit(main_ctx, add_one, &inputs[i], cb_done, &s);
    }
    WAIT_FOR(s.done == 10);
    g_assert_false(s.bad);
    for (i = 0; i < 10; i++) {
        sum += s.results[i];
    }
    g_assert_cmpint(sum, ==, 450 + 10);
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    /*
     * The main thread runs a context of its own rather than the GSource
     * one: that can be destroyed at the end, which stops and joins its
     * pool's workers (valgrind would call the threads' memory lost).
     */
    main_ctx = bd_aio_context_new(&err);
    g_assert_no_error(err);
    bd_aio_context_set_home_thread(main_ctx);

    g_test_add_func("/thread-pool/main-context", test_main_context);
    g_test_add_func("/thread-pool/iothreads-under-load",
                    test_iothreads_under_load);
    g_test_add_func("/thread-pool/bounded", test_bounded);
    g_test_add_func("/thread-pool/bad-params", test_bad_params);
    g_test_add_func("/thread-pool/callback", test_callback);
    ret = g_test_run();
    bd_aio_context_set_home_thread(NULL);
    bd_aio_context_unref(main_ctx);
    return ret;
}
