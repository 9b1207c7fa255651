/*
 * The main thread's AioContext as a GSource of the default GMainContext:
 * the GMainLoop that serves QMP also runs block I/O.  glib polls the
 * context's epoll fd (which covers the eventfd notifier, the timerfd and
 * every fd handler); prepare/check look at BHs and timers, dispatch runs
 * one non-blocking iteration.
 */
#include "aio/aio-context-int.h"
#include "util/main-thread.h"

static gboolean aio_source_prepare(GSource *source, gint *timeout)
{
    BdAioContext *ctx = (BdAioContext *)source;

    /* From here until check, other threads must kick the eventfd. */
    __atomic_or_fetch(&ctx->notify_me, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    if (bd_aio_bh_pending(ctx) ||
        bd_aio_timers_expired(ctx, bd_clock_ns())) {
        *timeout = 0;
        return TRUE;
    }
    /* Deadlines wake glib through the timerfd, at ns precision. */
    bd_aio_timers_arm(ctx);
    *timeout = -1;
    return FALSE;
}

static gboolean aio_source_check(GSource *source)
{
    BdAioContext *ctx = (BdAioContext *)source;

    __atomic_and_fetch(&ctx->notify_me, ~1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&ctx->notified, 0, __ATOMIC_RELEASE);
    return (g_source_query_unix_fd(source, ctx->epoll_tag) & G_IO_IN) ||
           bd_aio_bh_pending(ctx) ||
           bd_aio_timers_expired(ctx, bd_clock_ns());
}

static gboolean aio_source_dispatch(GSource *source, GSourceFunc callback,
                                    gpointer user_data)
{
    BdAioContext *ctx = (BdAioContext *)source;
    struct epoll_event ev[64];
    int n;

    /* check is skipped when prepare said ready: clear the flag here too. */
    __atomic_and_fetch(&ctx->notify_me, ~1, __ATOMIC_SEQ_CST);

    bd_aio_walk_begin(ctx);
    n = epoll_wait(ctx->epfd, ev, G_N_ELEMENTS(ev), 0);
    bd_aio_dispatch_events(ctx, ev, n > 0 ? n : 0);
    bd_aio_walk_end(ctx);
    bd_aio_bh_poll(ctx);
    bd_aio_timers_run(ctx);
    return G_SOURCE_CONTINUE;
}

static void aio_source_finalize(GSource *source)
{
    bd_aio_context_finalize((BdAioContext *)source);
}

GSourceFuncs bd_aio_source_funcs = {
    .prepare = aio_source_prepare,
    .check = aio_source_check,
    .dispatch = aio_source_dispatch,
    .finalize = aio_source_finalize,
};

static BdAioContext *main_ctx;

BdAioContext *bd_aio_main_context(void)
{
    static gsize once;

    if (g_once_init_enter(&once)) {
        g_autoptr(GError) err = NULL;
        BdAioContext *ctx = bd_aio_context_new(&err);

        if (!ctx) {
            g_error("cannot create the main AioContext: %s", err->message);
        }
        bd_aio_context_set_home_thread(ctx);
        bd_main_thread_set();
        g_source_attach(&ctx->source, NULL);
        main_ctx = ctx;
        g_once_init_leave(&once, 1);
    }
    return main_ctx;
}
