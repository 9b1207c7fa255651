/*
 * The thread pool of an AioContext; see thread-pool.h.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <blockd/error.h>

#include "aio/aio-context-int.h"
#include "aio/thread-pool.h"

typedef struct PoolRequest {
    BdThreadPoolFunc *fn;
    void *opaque;
    BdThreadPoolCompletionFunc *cb;
    void *cb_opaque;
    int ret;
    struct PoolRequest *next;
} PoolRequest;

struct BdThreadPool {
    BdAioContext *ctx;
    BdAioBH *completion_bh;

    GMutex lock;
    GCond request_cond;     /* work queued or stopping */
    GCond stopped_cond;     /* a worker exited */
    GQueue requests;        /* PoolRequest*, waiting for a worker */
    PoolRequest *done_head; /* finished, for the completion BH */
    PoolRequest **done_tail;
    unsigned cur_threads;
    unsigned idle_threads;
    unsigned min_threads;
    unsigned max_threads;
    GSList *exited;         /* GThread* of workers that returned */
    bool stopping;
};

static void pool_complete_bh(void *opaque);

static gpointer pool_worker(gpointer opaque)
{
    BdThreadPool *pool = opaque;

    g_mutex_lock(&pool->lock);
    while (!pool->stopping && pool->cur_threads <= pool->max_threads) {
        PoolRequest *req = g_queue_pop_head(&pool->requests);

        if (!req) {
            bool timed_out = false;

            pool->idle_threads++;
            if (pool->cur_threads > pool->min_threads) {
                gint64 end = g_get_monotonic_time() +
                             BD_THREAD_POOL_IDLE_TIMEOUT_NS / 1000;

                timed_out = !g_cond_wait_until(&pool->request_cond,
                                               &pool->lock, end);
            } else {
                g_cond_wait(&pool->request_cond, &pool->lock);
            }
            pool->idle_threads--;
            if (timed_out && g_queue_is_empty(&pool->requests) &&
                pool->cur_threads > pool->min_threads) {
                break;
            }
            continue;
        }
        g_mutex_unlock(&pool->lock);

        req->ret = req->fn(req->opaque);

        g_mutex_lock(&pool->lock);
        req->next = NULL;
        *pool->done_tail = req;
        pool->done_tail = &req->next;
        g_mutex_unlock(&pool->lock);
        bd_aio_bh_schedule(pool->completion_bh);
        g_mutex_lock(&pool->lock);
    }
    pool->cur_threads--;
    pool->exited = g_slist_prepend(pool->exited, g_thread_self());
    g_cond_broadcast(&pool->stopped_cond);
    g_mutex_unlock(&pool->lock);
    return NULL;
}

static void join_thread(gpointer thread)
{
    g_thread_join(thread);
}

/* Under pool->lock; drops it while joining. */
static void pool_join_exited_locked(BdThreadPool *pool)
{
    while (pool->exited) {
        GSList *list = pool->exited;

        pool->exited = NULL;
        g_mutex_unlock(&pool->lock);
        /* They have left the loop; joining takes at most a moment. */
        g_slist_free_full(list, join_thread);
        g_mutex_lock(&pool->lock);
    }
}

/* Under pool->lock. */
static void pool_spawn_locked(BdThreadPool *pool)
{
    pool->cur_threads++;
    /* The reference g_thread_new() returns is dropped by the join of the
     * worker's entry in pool->exited (g_thread_self() is the same). */
    g_thread_new("worker", pool_worker, pool);
}

static BdThreadPool *pool_get(BdAioContext *ctx)
{
    BdThreadPool *pool;

    g_mutex_lock(&ctx->thread_pool_lock);
    pool = ctx->thread_pool;
    if (!pool) {
        pool = g_new0(BdThreadPool, 1);
        pool->ctx = ctx;
        pool->completion_bh = bd_aio_bh_new(ctx, pool_complete_bh, pool);
        g_mutex_init(&pool->lock);
        g_cond_init(&pool->request_cond);
        g_cond_init(&pool->stopped_cond);
        g_queue_init(&pool->requests);
        pool->done_tail = &pool->done_head;
        pool->min_threads = BD_THREAD_POOL_MIN_DEFAULT;
        pool->max_threads = BD_THREAD_POOL_MAX_DEFAULT;
        __atomic_store_n(&ctx->thread_pool, pool, __ATOMIC_RELEASE);
    }
    g_mutex_unlock(&ctx->thread_pool_lock);
    return pool;
}

static void pool_complete_bh(void *opaque)
{
    BdThreadPool *pool = opaque;
    PoolRequest *req;

    g_mutex_lock(&pool->lock);
    req = pool->done_head;
    pool->done_head = NULL;
    pool->done_tail = &pool->done_head;
    g_mutex_unlock(&pool->lock);

    while (req) {
        PoolRequest *next = req->next;

        if (req->cb) {
            req->cb(req->cb_opaque, req->ret);
        }
        g_free(req);
        req = next;
    }
}

void bd_thread_pool_submit(BdAioContext *ctx, BdThreadPoolFunc *fn,
                           void *opaque, BdThreadPoolCompletionFunc *cb,
                           void *cb_opaque)
{
    BdThreadPool *pool = pool_get(ctx);
    PoolRequest *req = g_new0(PoolRequest, 1);

    req->fn = fn;
    req->opaque = opaque;
    req->cb = cb;
    req->cb_opaque = cb_opaque;

    g_mutex_lock(&pool->lock);
    pool_join_exited_locked(pool);
    g_queue_push_tail(&pool->requests, req);
    /* Each idle worker will take one request; start one if none is left. */
    if (g_queue_get_length(&pool->requests) > pool->idle_threads &&
        pool->cur_threads < pool->max_threads) {
        pool_spawn_locked(pool);
    }
    g_cond_signal(&pool->request_cond);
    g_mutex_unlock(&pool->lock);
}

typedef struct CoWait {
    BdCoroutine *co;
    int ret;
} CoWait;

static void co_wait_done(void *opaque, int ret)
{
    CoWait *w = opaque;

    w->ret = ret;
    bd_aio_co_wake(w->co);
}

int bd_thread_pool_submit_co(BdAioContext *ctx, BdThreadPoolFunc *fn,
                             void *opaque)
{
    CoWait w = { .co = bd_coroutine_self() };

    if (!bd_in_coroutine()) {
        fprintf(stderr, "blockd: %s outside a coroutine\n", __func__);
        abort();
    }
    if (!ctx) {
        ctx = bd_coroutine_get_aio_context(w.co);
    }
    /*
     * The completion wakes us through our own context, and a context runs
     * BHs only between coroutines: it cannot enter us before we yield.
     */
    bd_thread_pool_submit(ctx, fn, opaque, co_wait_done, &w);
    bd_coroutine_yield();
    return w.ret;
}

bool bd_thread_pool_set_params(BdAioContext *ctx, int64_t min, int64_t max,
                               GError **errp)
{
    BdThreadPool *pool;

    if (min < 0 || min > INT_MAX) {
        bd_error_setg(errp, "thread-pool-min value must be in range [0, %d]",
                      INT_MAX);
        return false;
    }
    if (max < 1 || max > INT_MAX) {
        bd_error_setg(errp, "thread-pool-max value must be in range [1, %d]",
                      INT_MAX);
        return false;
    }
    if (min > max) {
        bd_error_setg(errp,
                      "thread-pool-min (%" G_GINT64_FORMAT ") must not be "
                      "greater than thread-pool-max (%" G_GINT64_FORMAT ")",
                      min, max);
        return false;
    }

    pool = pool_get(ctx);
    g_mutex_lock(&pool->lock);
    pool->min_threads = (unsigned)min;
    pool->max_threads = (unsigned)max;
    while (pool->cur_threads < pool->min_threads) {
        pool_spawn_locked(pool);
    }
    /* Idle workers re-check their bounds. */
    g_cond_broadcast(&pool->request_cond);
    g_mutex_unlock(&pool->lock);
    return true;
}

unsigned bd_thread_pool_get_threads(BdAioContext *ctx)
{
    BdThreadPool *pool = pool_get(ctx);
    unsigned n;

    g_mutex_lock(&pool->lock);
    n = pool->cur_threads;
    g_mutex_unlock(&pool->lock);
    return n;
}

void bd_thread_pool_free(BdThreadPool *pool)
{
    PoolRequest *req;

    g_mutex_lock(&pool->lock);
    pool->stopping = true;
    g_cond_broadcast(&pool->request_cond);
    while (pool->cur_threads > 0) {
        g_cond_wait(&pool->stopped_cond, &pool->lock);
    }
    pool_join_exited_locked(pool);
    g_mutex_unlock(&pool->lock);

    /* Work nobody ran and completions nobody delivered are dropped. */
    while ((req = g_queue_pop_head(&pool->requests))) {
        g_free(req);
    }
    while ((req = pool->done_head)) {
        pool->done_head = req->next;
        g_free(req);
    }
    bd_aio_bh_delete(pool->completion_bh);
    g_cond_clear(&pool->stopped_cond);
    g_cond_clear(&pool->request_cond);
    g_mutex_clear(&pool->lock);
    g_free(pool);
}
