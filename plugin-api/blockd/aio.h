/*
 * blockd plugin ABI: event loops (AioContext) and the thread pool.
 *
 * Every block node belongs to one AioContext (bd_node_get_aio_context()):
 * the main loop's, or an IOThread's.  Its requests run in coroutines of
 * that context, and a driver registers whatever it waits on in the same
 * context:
 * - a file descriptor whose readiness means completion (an eventfd of
 *   libaio or io_uring, a socket): bd_aio_set_fd_handler(); the handler
 *   wakes the waiting coroutines with bd_aio_co_wake();
 * - blocking system calls (pread on a regular file, fsync, fallocate):
 *   bd_thread_pool_submit_co(), which runs the call in a worker thread and
 *   resumes the calling coroutine with its result;
 * - deferred work and time: bottom halves and timers.
 * A driver that keeps such registrations removes them in its
 * detach_aio_context callback and adds them again in attach_aio_context,
 * when the core moves the node to another context (always while drained).
 *
 * Callbacks of a context run in the context's thread only.  These are the
 * daemon's own functions.
 */
#ifndef BLOCKD_AIO_H
#define BLOCKD_AIO_H

#include <stdbool.h>
#include <stdint.h>

#include <blockd/coroutine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdAioBH BdAioBH;
typedef struct BdAioTimer BdAioTimer;

typedef void BdAioHandlerFunc(void *opaque);
/* Returns true if it found (and handled) work. */
typedef bool BdAioPollFunc(void *opaque);
typedef void BdAioBHFunc(void *opaque);
typedef void BdAioTimerFunc(void *opaque);
/* Blocking work for a worker thread; returns a result code. */
typedef int BdThreadPoolFunc(void *opaque);

/* The monotonic clock in nanoseconds (the clock of timers). */
int64_t bd_clock_ns(void);

/*
 * The calling thread's context: the main loop's in the main thread, an
 * IOThread's in that thread, NULL in thread-pool workers.
 */
BdAioContext *bd_aio_current_context(void);

/*
 * Set (replace) the handlers of @fd in @ctx: @io_read/@io_write run while
 * @fd is readable/writable (level-triggered; errors and hang-ups count as
 * both), @io_poll (optional) is called when the loop busy-polls and must
 * not block: it lets a completion ring be reaped without a system call.
 * All three NULL removes @fd; after that returns in @ctx's thread no
 * callback runs any more.  @fd must stay open until removed.  Any thread.
 */
void bd_aio_set_fd_handler(BdAioContext *ctx, int fd,
                           BdAioHandlerFunc *io_read,
                           BdAioHandlerFunc *io_write,
                           BdAioPollFunc *io_poll,
                           void *opaque);

/*
 * A reusable bottom half: cb(opaque) runs once in @ctx's thread after each
 * bd_aio_bh_schedule() (several schedulings before it runs count once).
 * Any thread.
 */
BdAioBH *bd_aio_bh_new(BdAioContext *ctx, BdAioBHFunc *cb, void *opaque);

/* Schedule @bh (no-op if already scheduled).  Any thread. */
void bd_aio_bh_schedule(BdAioBH *bh);

/* Unschedule and free @bh; from @bh's context's thread (even from @cb). */
void bd_aio_bh_delete(BdAioBH *bh);

/* Run cb(opaque) once in @ctx's thread; frees itself.  Any thread. */
void bd_aio_bh_schedule_oneshot(BdAioContext *ctx, BdAioBHFunc *cb,
                                void *opaque);

/* A timer of @ctx running cb(opaque) in @ctx's thread; created disarmed. */
BdAioTimer *bd_aio_timer_new(BdAioContext *ctx, BdAioTimerFunc *cb,
                             void *opaque);

/* Arm @t for @expire_ns on bd_clock_ns()'s clock.  Any thread. */
void bd_aio_timer_mod(BdAioTimer *t, int64_t expire_ns);

/* Disarm @t (no-op if not armed).  Any thread. */
void bd_aio_timer_del(BdAioTimer *t);

/* Disarm and free @t; from @t's context's thread. */
void bd_aio_timer_free(BdAioTimer *t);

/*
 * coroutine_fn: run fn(opaque) in a worker thread of @ctx's pool (NULL:
 * the current coroutine's context) and yield until it has returned; the
 * coroutine resumes in its own context.  Returns fn's result (by
 * convention 0 or a negative errno).  @fn must not touch the node's
 * coroutine state: it runs concurrently with the loop.
 */
bd_coroutine_fn
int bd_thread_pool_submit_co(BdAioContext *ctx, BdThreadPoolFunc *fn,
                             void *opaque);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_AIO_H */
