/*
 * blockd plugin ABI: IOThreads, the event-loop threads behind 'iothread'
 * objects.
 *
 * An IOThread is a thread that runs its own AioContext until destroyed.
 * The object-iothread plugin creates one per 'iothread' object, with the
 * object's id; the rest of the daemon finds it by that id with
 * bd_iothread_find() (an export's or x-blockdev-set-iothread's 'iothread'
 * option).
 *
 * Whoever places work in an IOThread's context for longer than a call (a
 * block node moved there, an export running there) registers as a user of
 * the context with bd_aio_context_add_user() and unregisters when it
 * leaves: object-del refuses to delete an iothread whose context has
 * users.
 *
 * All functions here are the daemon's own.  Unless said otherwise they are
 * for the main thread.
 */
#ifndef BLOCKD_IOTHREAD_H
#define BLOCKD_IOTHREAD_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/coroutine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdIOThread BdIOThread;

/*
 * Start an IOThread for the object @id: a thread named "IO <id>" running a
 * new AioContext, findable with bd_iothread_find(@id) until destroyed.  @poll_max_ns/@poll_grow/@poll_shrink are the adaptive
 * polling parameters as QEMU's iothread properties mean them (QEMU's
 * defaults: 32768, 0, 0); negative values fail.  Returns NULL with @errp
 * set on failure.  Returns once the thread runs (its thread id is known).
 */
BdIOThread *bd_iothread_new(const char *id, int64_t poll_max_ns,
                            int64_t poll_grow, int64_t poll_shrink,
                            GError **errp);

/*
 * Stop the thread (after the work already scheduled in its context has
 * run), join it and free @iot.  Nothing may be left in its context: check
 * bd_aio_context_get_users() first.  NULL is a no-op.
 */
void bd_iothread_destroy(BdIOThread *iot);

/* The IOThread's context; valid until bd_iothread_destroy().  Any thread. */
BdAioContext *bd_iothread_get_aio_context(BdIOThread *iot);

/* The kernel's id of the thread (gettid()), as query-iothreads reports. */
int bd_iothread_get_thread_id(BdIOThread *iot);

/*
 * The IOThread created with @id (the 'iothread' object called @id), or
 * NULL when there is none.  The result is valid until the IOThread is
 * destroyed (the object deleted), which registering as a user of its
 * context prevents.
 */
BdIOThread *bd_iothread_find(const char *id);

/*
 * Set @ctx's aio-max-batch: how many requests an engine that batches
 * submissions (Linux AIO, io_uring) may queue before submitting them; 0
 * means the engine's default.  Negative values fail.  Any thread.
 */
bool bd_aio_context_set_aio_params(BdAioContext *ctx, int64_t max_batch,
                                   GError **errp);

/* @ctx's aio-max-batch (0: the engine's default).  Any thread. */
int64_t bd_aio_context_get_aio_max_batch(BdAioContext *ctx);

/*
 * Change @ctx's adaptive polling parameters (as for bd_iothread_new()):
 * negative values fail.  Any thread.
 */
bool bd_aio_context_set_poll_params(BdAioContext *ctx, int64_t max_ns,
                                    int64_t grow, int64_t shrink,
                                    GError **errp);

/*
 * Set the bounds of @ctx's thread pool (QEMU's thread-pool-min/-max):
 * 0 <= @min <= @max, 1 <= @max <= INT_MAX, otherwise fails.  Any thread.
 */
bool bd_thread_pool_set_params(BdAioContext *ctx, int64_t min, int64_t max,
                               GError **errp);

/*
 * Count a user of @ctx (a node or an export placed in it) / drop that
 * count.  Any thread.
 */
void bd_aio_context_add_user(BdAioContext *ctx);
void bd_aio_context_remove_user(BdAioContext *ctx);

/* How many users @ctx has now.  Any thread. */
unsigned bd_aio_context_get_users(BdAioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_IOTHREAD_H */
