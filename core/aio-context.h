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

#include "coroutine.h"

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

/* The monotonic clock in nanoseconds (the timers' clock). */
int64_t bd_clock_ns(void);

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
 * The calling thread's context: the main context in the main thread (once
 * created), an IOThread's context in its thread, NULL in other threads
 * (thread-pool workers, helper threads).
 */
BdAioContext *bd_aio_current_context(void);

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

/*
 * Set (replace) the handlers of @fd in @ctx: @io_read/@io_write are called
 * while @fd is readable/writable (level-triggered; error and hang-up count
 * as both); @io_poll, if set, is called during adaptive busy-polling and
 * must not block.  All three NULL removes @fd.  The callbacks are never
 * called after this returns in the home thread; from another thread a call
 * already under way may finish.  @fd must stay open until removed.  Aborts
 * on an fd epoll refuses (a programming error: not a pollable fd).
 */
void bd_aio_set_fd_handler(BdAioContext *ctx, int fd,
                           BdAioHandlerFunc *io_read,
                           BdAioHandlerFunc *io_write,
                           BdAioPollFunc *io_poll,
                           void *opaque);

/*
 * Adaptive polling parameters, as QEMU's iothread properties mean them:
 * before sleeping, bd_aio_poll() busy-polls the poll handlers for up to a
 * window of poll_ns, which starts at 0 and adapts between 0 and @max_ns:
 * when a wait ended within @max_ns but after the window, the window grows
 * (times @grow; 0 means 2; from 0 it starts at 4 us); when a wait took
 * longer than @max_ns it shrinks (divided by @shrink; 0 means reset to 0).
 * @max_ns 0 disables polling.  Polling (which also watches for BHs,
 * scheduled coroutines and due timers) only happens while every fd handler
 * of @ctx has an io_poll callback.  Negative values fail.  Any thread.
 */
bool bd_aio_context_set_poll_params(BdAioContext *ctx, int64_t max_ns,
                                    int64_t grow, int64_t shrink,
                                    GError **errp);

/* The current adaptive polling window in ns (diagnostics and tests). */
int64_t bd_aio_context_get_poll_ns(BdAioContext *ctx);

/* --- bottom halves ------------------------------------------------------ */

/*
 * A reusable BH that calls cb(opaque) in @ctx's thread each time it is
 * scheduled (once per scheduling however often it was scheduled before it
 * ran).  Any thread.
 */
BdAioBH *bd_aio_bh_new(BdAioContext *ctx, BdAioBHFunc *cb, void *opaque);

/* Schedule @bh; no-op if already scheduled.  Any thread. */
void bd_aio_bh_schedule(BdAioBH *bh);

/*
 * Unschedule @bh if it has not started running.  Any thread; it may still
 * run once if it was already being dispatched in another thread.
 */
void bd_aio_bh_cancel(BdAioBH *bh);

/*
 * Unschedule and free @bh.  From @bh's context's home thread (including
 * from @bh's own callback), or when that context is not running.
 */
void bd_aio_bh_delete(BdAioBH *bh);

/* Run cb(opaque) once in @ctx's thread; the BH frees itself.  Any thread. */
void bd_aio_bh_schedule_oneshot(BdAioContext *ctx, BdAioBHFunc *cb,
                                void *opaque);

/* --- timers ------------------------------------------------------------- */

/* A timer of @ctx calling cb(opaque) in @ctx's thread; not armed. */
BdAioTimer *bd_aio_timer_new(BdAioContext *ctx, BdAioTimerFunc *cb,
                             void *opaque);

/*
 * Arm (or re-arm) @t to fire once at @expire_ns on bd_clock_ns()'s clock.
 * Timers due at the same time fire in the order they were armed.  Any
 * thread.
 */
void bd_aio_timer_mod(BdAioTimer *t, int64_t expire_ns);

/* Disarm @t (no-op if not armed).  Any thread. */
void bd_aio_timer_del(BdAioTimer *t);

/* True if @t is armed and has not fired yet. */
bool bd_aio_timer_pending(BdAioTimer *t);

/*
 * Disarm and free @t.  From the home thread or while the context is not
 * running (like bd_aio_bh_delete()).
 */
void bd_aio_timer_free(BdAioTimer *t);

/* --- IOThreads ---------------------------------------------------------- */

/*
 * Start an IOThread named @id: a thread (called "IO <id>") running a new
 * context until bd_iothread_destroy().  Poll parameters as
 * bd_aio_context_set_poll_params() (QEMU's defaults are
 * BD_AIO_POLL_MAX_NS_DEFAULT, 0, 0).  Returns NULL with @errp set if the
 * parameters are invalid or the context or thread cannot be created.
 * Main thread.
 */
BdIOThread *bd_iothread_new(const char *id, int64_t poll_max_ns,
                            int64_t poll_grow, int64_t poll_shrink,
                            GError **errp);

/* The IOThread's context (valid until bd_iothread_destroy()). */
BdAioContext *bd_iothread_get_aio_context(BdIOThread *iot);

const char *bd_iothread_get_id(BdIOThread *iot);

/* The kernel thread id (gettid()) of the IOThread, for query-iothreads. */
int bd_iothread_get_thread_id(BdIOThread *iot);

/*
 * Stop the IOThread's loop (after the BHs scheduled before this call have
 * run), join the thread, drop the thread's context reference and free
 * @iot.  Whatever the owner placed in the context must have been removed.
 * Main thread; never from the IOThread itself.
 */
void bd_iothread_destroy(BdIOThread *iot);

#endif /* BLOCKD_CORE_AIO_CONTEXT_H */
