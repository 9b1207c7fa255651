/*
 * Timers of an AioContext: a list sorted by deadline (a context has few
 * armed timers: sleeps, request timeouts, throttling), with the earliest
 * deadline mirrored in an atomic for the lock-free checks of the poll loop
 * and in the timerfd that wakes the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>

#include "aio/aio-context-int.h"

/* Under ctx->lock. */
static void update_first_deadline(BdAioContext *ctx)
{
    __atomic_store_n(&ctx->first_deadline,
                     ctx->timers ? ctx->timers->expire : INT64_MAX,
                     __ATOMIC_RELEASE);
}

/* Under ctx->lock: unlink @t if armed. */
static void timer_del_locked(BdAioContext *ctx, BdAioTimer *t)
{
    BdAioTimer **p;

    if (t->expire < 0) {
        return;
    }
    for (p = &ctx->timers; *p != t; p = &(*p)->next) {
        /* find it */
    }
    *p = t->next;
    t->next = NULL;
    t->expire = -1;
    update_first_deadline(ctx);
}

BdAioTimer *bd_aio_timer_new(BdAioContext *ctx, BdAioTimerFunc *cb,
                             void *opaque)
{
    BdAioTimer *t = g_new0(BdAioTimer, 1);

    t->ctx = ctx;
    t->cb = cb;
    t->opaque = opaque;
    t->expire = -1;
    return t;
}

void bd_aio_timer_mod(BdAioTimer *t, int64_t expire_ns)
{
    BdAioContext *ctx = t->ctx;
    BdAioTimer **p;
    bool first;

    if (expire_ns < 0) {
        expire_ns = 0;
    }
    g_mutex_lock(&ctx->lock);
    timer_del_locked(ctx, t);
    /* After every timer due at the same time: FIFO among equals. */
    for (p = &ctx->timers; *p && (*p)->expire <= expire_ns; p = &(*p)->next) {
        /* find the place */
    }
    t->next = *p;
    t->expire = expire_ns;
    *p = t;
    first = ctx->timers == t;
    update_first_deadline(ctx);
    g_mutex_unlock(&ctx->lock);

    if (first && !bd_aio_context_in_home_thread(ctx)) {
        /* The loop may be asleep with a later deadline. */
        bd_aio_notify(ctx);
    }
}

void bd_aio_timer_del(BdAioTimer *t)
{
    g_mutex_lock(&t->ctx->lock);
    timer_del_locked(t->ctx, t);
    g_mutex_unlock(&t->ctx->lock);
}

bool bd_aio_timer_pending(BdAioTimer *t)
{
    bool pending;

    g_mutex_lock(&t->ctx->lock);
    pending = t->expire >= 0;
    g_mutex_unlock(&t->ctx->lock);
    return pending;
}

void bd_aio_timer_free(BdAioTimer *t)
{
    if (t) {
        bd_aio_timer_del(t);
        g_free(t);
    }
}

bool bd_aio_timers_expired(BdAioContext *ctx, int64_t now)
{
    return __atomic_load_n(&ctx->first_deadline, __ATOMIC_ACQUIRE) <= now;
}

bool bd_aio_timers_run(BdAioContext *ctx)
{
    int64_t now;
    bool progress = false;

    if (__atomic_load_n(&ctx->first_deadline, __ATOMIC_ACQUIRE) ==
        INT64_MAX) {
        return false;
    }
    /*
     * One reading of the clock per run: a callback that re-arms its timer
     * for "now" runs in the next iteration, not in an endless loop here.
     */
    now = bd_clock_ns();
    for (;;) {
        BdAioTimer *t;
        BdAioTimerFunc *cb;
        void *opaque;

        g_mutex_lock(&ctx->lock);
        t = ctx->timers;
        if (!t || t->expire > now) {
            g_mutex_unlock(&ctx->lock);
            break;
        }
        ctx->timers = t->next;
        t->next = NULL;
        t->expire = -1;
        cb = t->cb;
        opaque = t->opaque;
        update_first_deadline(ctx);
        g_mutex_unlock(&ctx->lock);

        /* @t may be freed by its callback: use the copies. */
        cb(opaque);
        progress = true;
    }
    return progress;
}

void bd_aio_timers_arm(BdAioContext *ctx)
{
    int64_t deadline = __atomic_load_n(&ctx->first_deadline,
                                       __ATOMIC_ACQUIRE);
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };

    if (deadline == INT64_MAX) {
        return;             /* nothing armed: a stale expiry is harmless */
    }
    if (deadline == ctx->timerfd_armed) {
        return;
    }
    if (deadline == 0) {
        deadline = 1;       /* a zero it_value would disarm the timerfd */
    }
    its.it_value.tv_sec = deadline / 1000000000;
    its.it_value.tv_nsec = deadline % 1000000000;
    if (timerfd_settime(ctx->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        fprintf(stderr, "blockd: timerfd_settime: %s\n", strerror(errno));
        abort();
    }
    ctx->timerfd_armed = deadline;
}
