/*
 * AioContext: an event loop for block I/O.
 *
 * One AioContext per thread that does I/O: the main thread's (a GSource in
 * the default GMainContext, so it runs whenever the GMainLoop that serves
 * QMP runs) and one per IOThread.  A context has
 * - fd handlers: level-triggered read/write callbacks, optionally with a
 *   poll callback that checks for completions without a system call (the
 *   hook for io_uring/libaio completion rings and adaptive polling);
 * - bottom halves (BHs): callbacks scheduled from any thread and run once
 *   in the context's thread;
 * - timers on the monotonic clock with nanosecond deadlines;
 * - a queue of coroutines scheduled into it from other threads.
 *
 * Threading contract: callbacks of a context run only in the thread that
 * runs the context (its "home" thread).  BHs may be scheduled, timers
 * armed, coroutines scheduled and fd handlers changed from any thread;
 * bd_aio_poll() only from the home thread (or, for a context nobody runs
 * yet, from one thread at a time).
 */
#ifndef BLOCKD_CORE_AIO_CONTEXT_H
#define BLOCKD_CORE_AIO_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/aio.h>
#include <blockd/iothread.h>

#include "aio/coroutine.h"

typedef struct BdAioBH BdAioBH;
typedef struct BdAioTimer BdAioTimer;
typedef struct BdIOThread BdIOThread;

typedef void BdAioHandlerFunc(void *opaque);
/* Returns true if it found (and handled) work. */
typedef bool BdAioPollFunc(void *opaque);
typedef void BdAioBHFunc(void *opaque);
typedef void BdAioTimerFunc(void *opaque);

/* QEMU's iothread defaults for poll-max-ns/-grow/-shrink. */
#define BD_AIO_POLL_MAX_NS_DEFAULT 32768
#define BD_AIO_POLL_GROW_DEFAULT 2      /* used when poll-grow is 0 */
#define BD_AIO_POLL_INITIAL_NS 4000     /* first window when growing */

/*
 * A new context, referenced once, with polling disabled.  Fails (with
 * errno's message) only if epoll/eventfd/timerfd cannot be created.  It is
 * nobody's home context until a thread runs it (IOThread) or calls
 * bd_aio_context_set_home_thread().
 */
BdAioContext *bd_aio_context_new(GError **errp);

/* Take a reference.  Any thread. */
BdAioContext *bd_aio_context_ref(BdAioContext *ctx);

/*
 * Drop a reference; the last one destroys the context: its thread pool is
 * stopped and joined, still-scheduled BHs are dropped (one-shot BHs freed,
 * reusable ones must have been deleted by their owners), fd handlers must
 * have been removed.  Not from the context's own callbacks.
 */
void bd_aio_context_unref(BdAioContext *ctx);

/*
 * The main thread's context, created on first call and attached as a
 * GSource to the default GMainContext (so any GMainLoop on it runs the
 * context).  The first call must come from the main thread, before other
 * threads use it; that thread becomes its home and its current context.
 */
BdAioContext *bd_aio_main_context(void);

/*
 * Make the calling thread @ctx's home thread and @ctx its current context
 * (NULL clears the calling thread's current context).  For threads that run
 * a context by hand with bd_aio_poll(); IOThreads and the main context do
 * this themselves.
 */
void bd_aio_context_set_home_thread(BdAioContext *ctx);

/* True if the calling thread is @ctx's home thread. */
bool bd_aio_context_in_home_thread(BdAioContext *ctx);

/*
 * Run one iteration of @ctx's loop in its home thread: dispatch ready fd
 * handlers, scheduled BHs and expired timers.  With @blocking, first wait
 * (busy-polling poll handlers for up to the current adaptive window, then
 * sleeping in epoll) until at least one event arrives; a bare wake-up from
 * bd_aio_notify() also ends the wait.  Returns true if any callback ran.
 * Reentrant (a BH may call it, as drain does); never from a coroutine.
 */
bool bd_aio_poll(BdAioContext *ctx, bool blocking);

/*
 * Wake @ctx's loop if it is waiting in bd_aio_poll() now.  Any thread.
 * Not enough to make a loop re-check a condition (the wake-up may come
 * just before it waits): use bd_aio_wait_kick() for that.
 */
void bd_aio_notify(BdAioContext *ctx);

/*
 * Make the next (or current) bd_aio_poll(@ctx, true) return, by scheduling
 * an empty BH.  For code in another thread that changed a condition a
 * loop of @ctx waits for ("while (!cond) bd_aio_poll(ctx, true);").
 * Any thread.
 */
void bd_aio_wait_kick(BdAioContext *ctx);

/* The current adaptive polling window in ns (diagnostics and tests). */
int64_t bd_aio_context_get_poll_ns(BdAioContext *ctx);

/* --- bottom halves ------------------------------------------------------ */

/*
 * Unschedule @bh if it has not started running.  Any thread; it may still
 * run once if it was already being dispatched in another thread.
 */
void bd_aio_bh_cancel(BdAioBH *bh);

/* --- timers ------------------------------------------------------------- */

/* True if @t is armed and has not fired yet. */
bool bd_aio_timer_pending(BdAioTimer *t);

/* --- IOThreads ---------------------------------------------------------- */

const char *bd_iothread_get_id(BdIOThread *iot);

/* bd_aio_context_set_poll_params() is in <blockd/iothread.h>. */

#endif /* BLOCKD_CORE_AIO_CONTEXT_H */
