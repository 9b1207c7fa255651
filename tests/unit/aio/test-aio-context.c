/*
 * AioContext: fd handlers, BHs (also from other threads), timers, the
 * GSource in a GMainLoop, IOThreads, cross-thread coroutine wake-ups and
 * adaptive polling.
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib.h>

#include "aio/aio-context.h"
#include "aio-test-util.h"
#include "aio/coroutine.h"


/* --- fd handlers -------------------------------------------------------- */

typedef struct PipeState {
    int fds[2];
    int reads;
    int writes;
    bool consume;
} PipeState;

static void pipe_read(void *opaque)
{
    PipeState *s = opaque;
    char c;

    s->reads++;
    if (s->consume) {
        g_assert_cmpint(read(s->fds[0], &c, 1), ==, 1);
    }
}

static void pipe_write(void *opaque)
{
    PipeState *s = opaque;

    s->writes++;
}

static void test_fd_handlers(void)
{
    PipeState s = { .consume = true };

    g_assert_cmpint(pipe(s.fds), ==, 0);
    bd_aio_set_fd_handler(main_ctx, s.fds[0], pipe_read, NULL, NULL, &s);
    g_assert_false(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(s.reads, ==, 0);

    g_assert_cmpint(write(s.fds[1], "x", 1), ==, 1);
    g_assert_true(bd_aio_poll(main_ctx, true));
    g_assert_cmpint(s.reads, ==, 1);
    g_assert_false(bd_aio_poll(main_ctx, false));

    /* Level-triggered: unread data keeps the handler firing. */
    s.consume = false;
    g_assert_cmpint(write(s.fds[1], "y", 1), ==, 1);
    g_assert_true(bd_aio_poll(main_ctx, false));
    g_assert_true(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(s.reads, ==, 3);

    /* Removed: not called any more although still readable. */
    bd_aio_set_fd_handler(main_ctx, s.fds[0], NULL, NULL, NULL, NULL);
    g_assert_false(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(s.reads, ==, 3);

    /* A write handler on the (writable) write end. */
    bd_aio_set_fd_handler(main_ctx, s.fds[1], NULL, pipe_write, NULL, &s);
    g_assert_true(bd_aio_poll(main_ctx, true));
    g_assert_cmpint(s.writes, ==, 1);
    bd_aio_set_fd_handler(main_ctx, s.fds[1], NULL, NULL, NULL, NULL);
    close(s.fds[0]);
    close(s.fds[1]);
}

/* A handler that removes itself and another ready one in one dispatch. */
typedef struct RemoveState {
    int fds[2][2];
    int calls;
} RemoveState;

static void remove_both(void *opaque)
{
    RemoveState *s = opaque;

    s->calls++;
    bd_aio_set_fd_handler(main_ctx, s->fds[0][0], NULL, NULL, NULL, NULL);
    bd_aio_set_fd_handler(main_ctx, s->fds[1][0], NULL, NULL, NULL, NULL);
}

static void test_fd_remove_in_dispatch(void)
{
    RemoveState s = { 0 };
    int i;

    for (i = 0; i < 2; i++) {
        g_assert_cmpint(pipe(s.fds[i]), ==, 0);
        g_assert_cmpint(write(s.fds[i][1], "x", 1), ==, 1);
        bd_aio_set_fd_handler(main_ctx, s.fds[i][0], remove_both, NULL, NULL,
                              &s);
    }
    bd_aio_poll(main_ctx, false);
    g_assert_cmpint(s.calls, ==, 1);
    for (i = 0; i < 2; i++) {
        close(s.fds[i][0]);
        close(s.fds[i][1]);
    }
}

/* --- bottom halves ------------------------------------------------------ */

static void count_cb(void *opaque)
{
    int *n = opaque;

    __atomic_add_fetch(n, 1, __ATOMIC_SEQ_CST);
}

static void test_bh_reusable(void)
{
    int n = 0;
    BdAioBH *bh = bd_aio_bh_new(main_ctx, count_cb, &n);

    bd_aio_bh_schedule(bh);
    bd_aio_bh_schedule(bh);         /* already scheduled: once */
    g_assert_true(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(n, ==, 1);
    g_assert_false(bd_aio_poll(main_ctx, false));

    bd_aio_bh_schedule(bh);
    bd_aio_bh_cancel(bh);
    g_assert_false(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(n, ==, 1);

    bd_aio_bh_schedule(bh);
    bd_aio_bh_delete(bh);           /* scheduled, then deleted: never runs */
    g_assert_false(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(n, ==, 1);
}

typedef struct SelfBH {
    BdAioBH *bh;
    int runs;
} SelfBH;

static void reschedule_self(void *opaque)
{
    SelfBH *s = opaque;

    /* Runs in the next iteration, not again in this one. */
    if (++s->runs < 3) {
        bd_aio_bh_schedule(s->bh);
    } else {
        bd_aio_bh_delete(s->bh);
    }
}

static void test_bh_reschedule(void)
{
    SelfBH s = { 0 };

    s.bh = bd_aio_bh_new(main_ctx, reschedule_self, &s);
    bd_aio_bh_schedule(s.bh);
    bd_aio_poll(main_ctx, false);
    g_assert_cmpint(s.runs, ==, 1);
    bd_aio_poll(main_ctx, false);
    g_assert_cmpint(s.runs, ==, 2);
    bd_aio_poll(main_ctx, false);
    g_assert_cmpint(s.runs, ==, 3);
}

/*
 * A BH callback that polls its context until a later BH of the same
 * batch has run (what a job's finalize does when it drains a node whose
 * request completes through a BH queued behind it).  Polls a bounded
 * number of times so that the old behaviour fails instead of hanging.
 */
static void poll_until_count(void *opaque)
{
    int *n = opaque;

    for (int i = 0; i < 100 && !__atomic_load_n(n, __ATOMIC_SEQ_CST); i++) {
        bd_aio_poll(main_ctx, false);
    }
    g_assert_cmpint(*n, ==, 1);
}

static void test_bh_nested_poll(void)
{
    int n = 0;

    bd_aio_bh_schedule_oneshot(main_ctx, poll_until_count, &n);
    bd_aio_bh_schedule_oneshot(main_ctx, count_cb, &n);
    g_assert_true(bd_aio_poll(main_ctx, false));
    g_assert_cmpint(n, ==, 1);
    g_assert_false(bd_aio_poll(main_ctx, false));   /* ran once only */
}

typedef struct BHThreadState {
    BdAioContext *ctx;
    int per_thread;
    int count;
    GThread *home;
    bool wrong_thread;
} BHThreadState;

static void bh_thread_cb(void *opaque)
{
    BHThreadState *s = opaque;

    if (g_thread_self() != s->home) {
        s->wrong_thread = true;
    }
    s->count++;                     /* only the home thread writes */
}

static gpointer bh_scheduler(gpointer opaque)
{
    BHThreadState *s = opaque;
    int i;

    for (i = 0; i < s->per_thread; i++) {
        bd_aio_bh_schedule_oneshot(s->ctx, bh_thread_cb, s);
    }
    return NULL;
}

static void test_bh_other_threads(void)
{
    enum { THREADS = 4, PER_THREAD = 5000 };
    BHThreadState s = {
        .ctx = main_ctx, .per_thread = PER_THREAD, .home = g_thread_self(),
    };
    GThread *t[THREADS];
    int i;

    for (i = 0; i < THREADS; i++) {
        t[i] = g_thread_new("bh-scheduler", bh_scheduler, &s);
    }
    WAIT_FOR(s.count == THREADS * PER_THREAD);
    for (i = 0; i < THREADS; i++) {
        g_thread_join(t[i]);
    }
    g_assert_false(s.wrong_thread);
    g_assert_false(bd_aio_poll(main_ctx, false));
}

/* --- timers ------------------------------------------------------------- */

typedef struct TimerRec {
    GString *log;
    char name;
    int64_t deadline;
    bool early;
} TimerRec;

static void timer_cb(void *opaque)
{
    TimerRec *r = opaque;

    if (bd_clock_ns() < r->deadline) {
        r->early = true;
    }
    g_string_append_c(r->log, r->name);
}

static void test_timers_order(void)
{
    GString *log = g_string_new(NULL);
    /* name, delay in us; c and d are due together: armed order wins. */
    static const struct { char name; int us; } spec[] = {
        { 'e', 5000 }, { 'a', 300 }, { 'c', 2000 }, { 'b', 1000 },
        { 'd', 2000 },
    };
    TimerRec rec[G_N_ELEMENTS(spec)];
    BdAioTimer *t[G_N_ELEMENTS(spec)];
    int64_t now = bd_clock_ns();
    BdAioTimer *cancelled;
    TimerRec crec = { .log = log, .name = 'X' };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(spec); i++) {
        rec[i] = (TimerRec) {
            .log = log, .name = spec[i].name,
            .deadline = now + spec[i].us * 1000,
        };
        t[i] = bd_aio_timer_new(main_ctx, timer_cb, &rec[i]);
        bd_aio_timer_mod(t[i], rec[i].deadline);
    }
    cancelled = bd_aio_timer_new(main_ctx, timer_cb, &crec);
    bd_aio_timer_mod(cancelled, now + 1500 * 1000);
    g_assert_true(bd_aio_timer_pending(cancelled));
    bd_aio_timer_del(cancelled);
    g_assert_false(bd_aio_timer_pending(cancelled));

    WAIT_FOR(log->len == G_N_ELEMENTS(spec));
    g_assert_cmpstr(log->str, ==, "abcde");
    for (i = 0; i < G_N_ELEMENTS(spec); i++) {
        g_assert_false(rec[i].early);
        g_assert_false(bd_aio_timer_pending(t[i]));
        bd_aio_timer_free(t[i]);
    }
    bd_aio_timer_free(cancelled);
    g_string_free(log, TRUE);
}

/* --- the GSource in a GMainLoop ----------------------------------------- */

typedef struct LoopState {
    GMainLoop *loop;
    int fds[2];
    bool bh_ran, fd_ran, timer_ran, co_ran;
    int64_t co_slept;
} LoopState;

static void loop_maybe_quit(LoopState *s)
{
    if (s->bh_ran && s->fd_ran && s->timer_ran && s->co_ran) {
        g_main_loop_quit(s->loop);
    }
}

static void loop_bh(void *opaque)
{
    LoopState *s = opaque;

    s->bh_ran = true;
    loop_maybe_quit(s);
}

static void loop_fd(void *opaque)
{
    LoopState *s = opaque;
    char c;

    g_assert_cmpint(read(s->fds[0], &c, 1), ==, 1);
    s->fd_ran = true;
    loop_maybe_quit(s);
}

static void loop_timer(void *opaque)
{
    LoopState *s = opaque;

    s->timer_ran = true;
    loop_maybe_quit(s);
}

static void loop_co(void *opaque)
{
    LoopState *s = opaque;
    int64_t start = bd_clock_ns();

    bd_co_sleep_ns(1500 * 1000);
    s->co_slept = bd_clock_ns() - start;
    s->co_ran = true;
    loop_maybe_quit(s);
}

static gpointer loop_thread(gpointer opaque)
{
    LoopState *s = opaque;

    g_usleep(2000);
    bd_aio_bh_schedule_oneshot(main_ctx, loop_bh, s);
    g_assert_cmpint(write(s->fds[1], "x", 1), ==, 1);
    return NULL;
}

static gboolean loop_timeout(gpointer opaque)
{
    g_error("the GMainLoop did not run the AioContext");
    return G_SOURCE_REMOVE;
}

static void test_gsource(void)
{
    LoopState s = { .loop = g_main_loop_new(NULL, FALSE) };
    BdAioTimer *t = bd_aio_timer_new(main_ctx, loop_timer, &s);
    guint guard = g_timeout_add_seconds(30, loop_timeout, NULL);
    GThread *thread;

    g_assert_cmpint(pipe(s.fds), ==, 0);
    bd_aio_set_fd_handler(main_ctx, s.fds[0], loop_fd, NULL, NULL, &s);
    bd_aio_timer_mod(t, bd_clock_ns() + 500 * 1000);
    bd_coroutine_enter(bd_coroutine_create(loop_co, &s));
    thread = g_thread_new("loop-kicker", loop_thread, &s);

    g_main_loop_run(s.loop);

    g_thread_join(thread);
    g_source_remove(guard);
    g_assert_cmpint(s.co_slept, >=, 1500 * 1000);
    bd_aio_set_fd_handler(main_ctx, s.fds[0], NULL, NULL, NULL, NULL);
    bd_aio_timer_free(t);
    close(s.fds[0]);
    close(s.fds[1]);
    g_main_loop_unref(s.loop);
}

/* --- IOThreads and cross-thread wake-ups -------------------------------- */

static void test_cross_thread_wake(void)
{
    g_autoptr(GError) err = NULL;
    BdIOThread *iot;
    AioTestPingPong p;

    iot = bd_iothread_new("pp", BD_AIO_POLL_MAX_NS_DEFAULT, 0, 0, &err);
    g_assert_no_error(err);
    g_assert_cmpint(bd_iothread_get_thread_id(iot), >, 0);
    g_assert_cmpstr(bd_iothread_get_id(iot), ==, "pp");

    p = aio_test_ping_pong(iot, 10000);
    g_assert_cmpint(p.main_count, ==, 10000);
    g_assert_cmpint(p.io_count, ==, 10000);
    g_assert_false(p.wrong_thread);
    bd_iothread_destroy(iot);
}

/* A coroutine hopping between the main context and an IOThread. */
typedef struct Hopper {
    BdAioContext *io_ctx;
    GThread *main_thread;
    int hops;
    bool bad, done;
} Hopper;

static void hopper(void *opaque)
{
    Hopper *h = opaque;
    int i;

    for (i = 0; i < h->hops; i++) {
        bd_aio_co_reschedule_self(h->io_ctx);
        if (g_thread_self() == h->main_thread ||
            bd_coroutine_get_aio_context(bd_coroutine_self()) != h->io_ctx) {
            h->bad = true;
        }
        bd_aio_co_reschedule_self(main_ctx);
        if (g_thread_self() != h->main_thread) {
            h->bad = true;
        }
    }
    h->done = true;
}

static void test_reschedule(void)
{
    g_autoptr(GError) err = NULL;
    BdIOThread *iot = bd_iothread_new("hop", 0, 0, 0, &err);
    Hopper h = {
        .io_ctx = bd_iothread_get_aio_context(iot),
        .main_thread = g_thread_self(), .hops = 2000,
    };

    g_assert_no_error(err);
    bd_coroutine_enter(bd_coroutine_create(hopper, &h));
    WAIT_FOR(h.done);
    g_assert_false(h.bad);
    bd_iothread_destroy(iot);
}

static void test_iothread_bad_params(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(bd_iothread_new("bad", -1, 0, 0, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==,
                    "poll-max-ns value must be in range "
                    "[0, 9223372036854775807]");
}

/* --- adaptive polling --------------------------------------------------- */

typedef struct PollState {
    int efd;
    int flag;           /* set by the test, consumed by io_poll */
    int consumed;
} PollState;

static bool ps_poll(void *opaque)
{
    PollState *s = opaque;

    if (__atomic_exchange_n(&s->flag, 0, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(&s->consumed, 1, __ATOMIC_SEQ_CST);
        return true;
    }
    return false;
}

static void ps_read(void *opaque)
{
    PollState *s = opaque;
    uint64_t v;

    g_assert_cmpint(read(s->efd, &v, sizeof(v)), ==, sizeof(v));
}

static void ps_nop(void *opaque)
{
}

static void test_adaptive_polling(void)
{
    g_autoptr(GError) err = NULL;
    /* A window of up to 20 ms: generous for loaded test machines. */
    BdIOThread *iot = bd_iothread_new("poll", 20 * 1000 * 1000, 0, 0, &err);
    BdAioContext *ctx = bd_iothread_get_aio_context(iot);
    PollState s = { .efd = eventfd(0, EFD_NONBLOCK) };
    int64_t max_window = 0;
    int i, without_kick = 0;

    g_assert_no_error(err);
    bd_aio_set_fd_handler(ctx, s.efd, ps_read, NULL, ps_poll, &s);

    /* Quick wake-ups make the window grow. */
    for (i = 0; i < 200 && max_window == 0; i++) {
        bd_aio_bh_schedule_oneshot(ctx, ps_nop, NULL);
        g_usleep(100);
        max_window = MAX(max_window, bd_aio_context_get_poll_ns(ctx));
    }
    g_assert_cmpint(max_window, >, 0);

    /*
     * Nothing but io_poll can see the flag (no fd event, no notification):
     * set right after a wake-up, it is seen when the loop next busy-polls,
     * which it does only while the window is open.  Fall back to an fd
     * event so the test always ends.
     */
    for (i = 0; i < 100; i++) {
        int64_t deadline = bd_clock_ns() + 50 * 1000 * 1000;
        int before = __atomic_load_n(&s.consumed, __ATOMIC_SEQ_CST);

        bd_aio_bh_schedule_oneshot(ctx, ps_nop, NULL);
        __atomic_store_n(&s.flag, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&s.consumed, __ATOMIC_SEQ_CST) == before &&
               bd_clock_ns() < deadline) {
            g_usleep(10);
        }
        if (__atomic_load_n(&s.consumed, __ATOMIC_SEQ_CST) != before) {
            without_kick++;
        } else {
            uint64_t one = 1;

            g_assert_cmpint(write(s.efd, &one, sizeof(one)), ==, 8);
            while (__atomic_load_n(&s.flag, __ATOMIC_SEQ_CST)) {
                bd_aio_bh_schedule_oneshot(ctx, ps_nop, NULL);
                g_usleep(1000);
            }
        }
    }
    g_assert_cmpint(without_kick, >, 0);

    /* Waits far above a tiny limit shrink the window back to 0. */
    g_assert_true(bd_aio_context_set_poll_params(ctx, 1000, 0, 0, &err));
    for (i = 0; i < 100 && bd_aio_context_get_poll_ns(ctx) != 0; i++) {
        g_usleep(2000);
        bd_aio_bh_schedule_oneshot(ctx, ps_nop, NULL);
    }
    g_assert_cmpint(bd_aio_context_get_poll_ns(ctx), ==, 0);

    bd_aio_set_fd_handler(ctx, s.efd, NULL, NULL, NULL, NULL);
    bd_iothread_destroy(iot);
    close(s.efd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    main_ctx = bd_aio_main_context();
    g_assert_true(bd_aio_current_context() == main_ctx);
    g_assert_true(bd_aio_context_in_home_thread(main_ctx));

    g_test_add_func("/aio/fd-handlers", test_fd_handlers);
    g_test_add_func("/aio/fd-remove-in-dispatch", test_fd_remove_in_dispatch);
    g_test_add_func("/aio/bh-reusable", test_bh_reusable);
    g_test_add_func("/aio/bh-reschedule", test_bh_reschedule);
    g_test_add_func("/aio/bh-nested-poll", test_bh_nested_poll);
    g_test_add_func("/aio/bh-other-threads", test_bh_other_threads);
    g_test_add_func("/aio/timers-order", test_timers_order);
    g_test_add_func("/aio/gsource-main-loop", test_gsource);
    g_test_add_func("/aio/cross-thread-wake", test_cross_thread_wake);
    g_test_add_func("/aio/reschedule-self", test_reschedule);
    g_test_add_func("/aio/iothread-bad-params", test_iothread_bad_params);
    g_test_add_func("/aio/adaptive-polling", test_adaptive_polling);
    return g_test_run();
}
