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

#include <blockd/aio.h>
#include <blockd/iothread.h>

#include "aio/aio-context.h"

/* The blocking work; runs in a worker thread, returns a result code. */
typedef int BdThreadPoolFunc(void *opaque);
/* Called in the submitting context's thread with the work's result. */
typedef void BdThreadPoolCompletionFunc(void *opaque, int ret);

/* QEMU's defaults for thread-pool-min and thread-pool-max. */
#define BD_THREAD_POOL_MIN_DEFAULT 0
#define BD_THREAD_POOL_MAX_DEFAULT 64
#define BD_THREAD_POOL_IDLE_TIMEOUT_NS (10 * G_GINT64_CONSTANT(1000000000))

/*
 * Run fn(opaque) in a worker of @ctx's pool, then cb(cb_opaque, result) in
 * @ctx's thread.  Completions are delivered in the order the work
 * finished.  Any thread; @cb may be NULL.
 */
void bd_thread_pool_submit(BdAioContext *ctx, BdThreadPoolFunc *fn,
                           void *opaque, BdThreadPoolCompletionFunc *cb,
                           void *cb_opaque);

/* Number of worker threads of @ctx's pool now (diagnostics, tests). */
unsigned bd_thread_pool_get_threads(BdAioContext *ctx);

#endif /* BLOCKD_CORE_THREAD_POOL_H */
