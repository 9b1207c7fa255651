/*
 * Coroutines: creation from a per-thread pool, entering with "entered
 * from" chaining, yielding, and waking in the right AioContext.  The stack
 * switching itself is in coroutine-ucontext.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "aio/aio-context.h"
#include "aio/coroutine-int.h"

/*
 * Free coroutines of one thread.  A coroutine released in another thread
 * than the one that created it (it moved) simply joins that thread's pool:
 * a stack is only memory.
 */
typedef struct CoPool {
    BdCoroutine *head;
    unsigned size;
} CoPool;

static unsigned pool_max = BD_COROUTINE_POOL_DEFAULT_MAX;

static void co_pool_free(gpointer data)
{
    CoPool *pool = data;
    BdCoroutine *co;

    while ((co = pool->head)) {
        pool->head = co->pool_next;
        bd_co_backend_delete(co);
    }
    g_free(pool);
}

/* GPrivate rather than __thread: its destructor empties a dying thread's
 * pool. */
static GPrivate co_pool_key = G_PRIVATE_INIT(co_pool_free);

static CoPool *co_pool_get(void)
{
    CoPool *pool = g_private_get(&co_pool_key);

    if (!pool) {
        pool = g_new0(CoPool, 1);
        g_private_set(&co_pool_key, pool);
    }
    return pool;
}

void bd_coroutine_pool_set_max(unsigned max)
{
    g_atomic_int_set(&pool_max, max);
}

unsigned bd_coroutine_pool_size(void)
{
    return co_pool_get()->size;
}

BdCoroutine *bd_coroutine_create(BdCoroutineEntry *entry, void *opaque)
{
    CoPool *pool = co_pool_get();
    BdCoroutine *co = pool->head;

    if (co) {
        pool->head = co->pool_next;
        pool->size--;
        co->pool_next = NULL;
    } else {
        co = bd_co_backend_new();
    }
    co->entry = entry;
    co->entry_arg = opaque;
    co->ctx = NULL;
    co->caller = NULL;
    co->scheduled = NULL;
    co->wakeup_head = NULL;
    co->wakeup_tail = &co->wakeup_head;
    co->locks_held = 0;
    return co;
}

static void co_release(BdCoroutine *co)
{
    CoPool *pool = co_pool_get();

    if (pool->size < (unsigned)g_atomic_int_get(&pool_max)) {
        co->pool_next = pool->head;
        pool->head = co;
        pool->size++;
    } else {
        bd_co_backend_delete(co);
    }
}

void bd_aio_coroutine_enter(BdAioContext *ctx, BdCoroutine *co)
{
    /* Coroutines to enter, in order: @co, then whatever it wakes. */
    BdCoroutine *head = co;

    co->wakeup_next = NULL;
    while (head) {
        BdCoroutine *to = head;
        BdCoroutine *from = bd_co_backend_self();
        BdCoroutineAction ret;

        head = to->wakeup_next;
        to->wakeup_next = NULL;

        if (to->caller) {
            fprintf(stderr, "blockd: coroutine re-entered recursively\n");
            abort();
        }
        to->caller = from;
        /* Publish the context before @to can be woken from elsewhere. */
        __atomic_store_n(&to->ctx, ctx, __ATOMIC_RELEASE);

        ret = bd_co_backend_switch(from, to, BD_CO_ACTION_ENTER);

        /* Whatever @to woke runs next, before older entries (as QEMU). */
        if (to->wakeup_head) {
            *to->wakeup_tail = head;
            head = to->wakeup_head;
            to->wakeup_head = NULL;
            to->wakeup_tail = &to->wakeup_head;
        }

        switch (ret) {
        case BD_CO_ACTION_YIELD:
            break;
        case BD_CO_ACTION_TERMINATE:
            if (to->locks_held) {
                fprintf(stderr, "blockd: coroutine terminated holding %u "
                        "co-lock(s)\n", to->locks_held);
                abort();
            }
            co_release(to);
            break;
        default:
            abort();
        }
    }
}

void bd_coroutine_enter(BdCoroutine *co)
{
    bd_aio_coroutine_enter(bd_aio_current_context(), co);
}

void bd_coroutine_yield(void)
{
    BdCoroutine *self = bd_co_backend_self();
    BdCoroutine *to = self->caller;

    if (!to) {
        fprintf(stderr, "blockd: coroutine yielding to no one\n");
        abort();
    }
    self->caller = NULL;
    bd_co_backend_switch(self, to, BD_CO_ACTION_YIELD);
}

BdCoroutine *bd_coroutine_self(void)
{
    return bd_co_backend_self();
}

bool bd_in_coroutine(void)
{
    return bd_co_backend_self()->caller != NULL;
}

bool bd_coroutine_entered(BdCoroutine *co)
{
    return co->caller != NULL;
}

BdAioContext *bd_coroutine_get_aio_context(BdCoroutine *co)
{
    return __atomic_load_n(&co->ctx, __ATOMIC_ACQUIRE);
}

void bd_aio_co_enter(BdAioContext *ctx, BdCoroutine *co)
{
    if (ctx != bd_aio_current_context()) {
        bd_aio_co_schedule(ctx, co);
        return;
    }
    if (bd_in_coroutine()) {
        BdCoroutine *self = bd_co_backend_self();

        /* Entered after @self yields, so @self's stack stays consistent. */
        co->wakeup_next = NULL;
        *self->wakeup_tail = co;
        self->wakeup_tail = &co->wakeup_next;
    } else {
        bd_aio_coroutine_enter(ctx, co);
    }
}

void bd_aio_co_wake(BdCoroutine *co)
{
    BdAioContext *ctx = bd_coroutine_get_aio_context(co);

    if (!ctx) {
        fprintf(stderr, "blockd: waking a coroutine without AioContext\n");
        abort();
    }
    bd_aio_co_enter(ctx, co);
}

typedef struct RescheduleData {
    BdCoroutine *co;
    BdAioContext *new_ctx;
} RescheduleData;

static void co_reschedule_bh(void *opaque)
{
    RescheduleData *data = opaque;

    bd_aio_co_schedule(data->new_ctx, data->co);
}

void bd_aio_co_reschedule_self(BdAioContext *ctx)
{
    BdCoroutine *self = bd_co_backend_self();
    BdAioContext *old_ctx = bd_coroutine_get_aio_context(self);
    RescheduleData data = { .co = self, .new_ctx = ctx };

    if (!self->caller || !old_ctx) {
        fprintf(stderr, "blockd: %s outside a coroutine with a context\n",
                __func__);
        abort();
    }
    if (ctx == old_ctx) {
        return;
    }
    /*
     * Scheduling ourselves in @ctx right now would let @ctx's thread enter
     * us before we have yielded here; a BH of our own context runs only
     * after we yielded.
     */
    bd_aio_bh_schedule_oneshot(old_ctx, co_reschedule_bh, &data);
    bd_coroutine_yield();
}

static void co_sleep_cb(void *opaque)
{
    bd_aio_co_wake(opaque);
}

void bd_co_sleep_ns(int64_t ns)
{
    BdCoroutine *self = bd_co_backend_self();
    BdAioContext *ctx = bd_coroutine_get_aio_context(self);
    BdAioTimer *t;

    if (!self->caller || !ctx) {
        fprintf(stderr, "blockd: %s outside a coroutine with a context\n",
                __func__);
        abort();
    }
    t = bd_aio_timer_new(ctx, co_sleep_cb, self);
    bd_aio_timer_mod(t, bd_clock_ns() + (ns > 0 ? ns : 0));
    bd_coroutine_yield();
    bd_aio_timer_free(t);
}
