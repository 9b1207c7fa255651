/*
 * The thread pool: runs blocking work (preadv on a file without
 * aio=native, fsync, fallocate, ...) in worker threads so an event loop
 * never blocks, and completes it back in an AioContext.
 *
 * Each AioContext has its own pool, created on first use.  Workers are
 * started on demand, up to a maximum, never one per request; idle workers
 * above the minimum exit after BD_THREAD_POOL_IDLE_TIMEOUT_NS.  Completions
 * are handed to the context with a BH (whose scheduling wakes the loop
 * through its eventfd).
 */
#ifndef BLOCKD_CORE_THREAD_POOL_H
#define BLOCKD_CORE_THREAD_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "aio-context.h"

/* The blocking work; runs in a worker thread, returns a result code. */
typedef int BdThreadPoolFunc(void *opaque);
/* Called in the submitting context's thread with the work's result. */
typedef void BdThreadPoolCompletionFunc(void *opaque, int ret);

/* QEMU's defaults for thread-pool-min and thread-pool-max. */
#define BD_THREAD_POOL_MIN_DEFAULT 0
#define BD_THREAD_POOL_MAX_DEFAULT 64
#define BD_THREAD_POOL_IDLE_TIMEOUT_NS (10 * G_GINT64_CONSTANT(1000000000))

/*
 * coroutine_fn: run fn(opaque) in a worker of @ctx's pool (@ctx NULL: the
 * current coroutine's context) and yield until it has run; the coroutine
 * is then woken in its own context, whichever @ctx was.  Returns fn's
 * result.  Aborts outside a coroutine.
 */
int bd_thread_pool_submit_co(BdAioContext *ctx, BdThreadPoolFunc *fn,
                             void *opaque);

/*
 * Run fn(opaque) in a worker of @ctx's pool, then cb(cb_opaque, result) in
 * @ctx's thread.  Completions are delivered in the order the work
 * finished.  Any thread; @cb may be NULL.
 */
void bd_thread_pool_submit(BdAioContext *ctx, BdThreadPoolFunc *fn,
                           void *opaque, BdThreadPoolCompletionFunc *cb,
                           void *cb_opaque);

/*
 * Set @ctx's pool bounds (QEMU's thread-pool-min/-max): 0 <= @min <= @max,
 * 1 <= @max <= INT_MAX; otherwise fails with a message naming the bad
 * value.  Starts workers up to @min at once; workers above a lowered @max
 * exit as they become idle.  Any thread.
 */
bool bd_thread_pool_set_params(BdAioContext *ctx, int64_t min, int64_t max,
                               GError **errp);

/* Number of worker threads of @ctx's pool now (diagnostics, tests). */
unsigned bd_thread_pool_get_threads(BdAioContext *ctx);

#endif /* BLOCKD_CORE_THREAD_POOL_H */
