/*
 * blockd plugin ABI: coroutines and coroutine locks.
 *
 * Every I/O callback of a block driver runs in a coroutine (see
 * <blockd/block-driver.h>).  A driver that has to wait (for the kernel, a
 * socket, a lock, a timer) does not block its thread: it arranges to be
 * woken, then calls bd_coroutine_yield().  Whoever completes the wait wakes
 * it with bd_aio_co_wake(), which resumes the coroutine in the AioContext
 * (thread) it belongs to.  These are the daemon's own functions.
 *
 * Functions marked coroutine_fn may yield; call them only from a
 * coroutine.  A coroutine only ever runs in its AioContext's thread.
 */
#ifndef BLOCKD_COROUTINE_H
#define BLOCKD_COROUTINE_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * bd_coroutine_fn marks a function (or a callback) that runs only in a
 * coroutine and may yield, as QEMU's coroutine_fn does: call it from
 * coroutine code only.  With clang it is an annotation that static
 * checkers can follow from caller to callee; for compilers it is nothing.
 */
#if defined(__clang__)
#define bd_coroutine_fn __attribute__((annotate("bd_coroutine_fn")))
#else
#define bd_coroutine_fn
#endif

typedef struct BdCoroutine BdCoroutine;
typedef struct BdAioContext BdAioContext;

/* A coroutine's body; returning from it terminates the coroutine. */
typedef void BdCoroutineEntry(void *opaque);

/*
 * A new coroutine that runs entry(opaque) when first entered (with
 * bd_aio_co_enter() or bd_aio_co_schedule()).  Its stack comes from a
 * per-thread pool; a terminated coroutine's handle is invalid.  Any
 * thread; aborts only when no memory can be mapped.
 */
BdCoroutine *bd_coroutine_create(BdCoroutineEntry *entry, void *opaque);

/*
 * coroutine_fn: give control back to whoever entered or woke the current
 * coroutine; returns when it is woken again.  Before yielding, make sure
 * somebody will wake it exactly once (a completion callback, a timer, a
 * lock hand-over).  Aborts outside a coroutine.
 */
bd_coroutine_fn
void bd_coroutine_yield(void);

/*
 * The running coroutine (outside a coroutine: a per-thread handle for
 * which bd_in_coroutine() is false).  Save it before yielding so the
 * completion knows whom to wake.
 */
BdCoroutine *bd_coroutine_self(void);

/* True when called from inside a coroutine. */
bool bd_in_coroutine(void);

/* The AioContext @co belongs to (NULL if it has never been entered). */
BdAioContext *bd_coroutine_get_aio_context(BdCoroutine *co);

/*
 * Wake @co, which has yielded, in its own AioContext.  From that context's
 * thread outside a coroutine it runs at once; from a coroutine it runs
 * right after the caller yields or terminates; from any other thread
 * (a thread-pool worker, a helper thread) it is scheduled into its
 * context's loop.  @co must be waiting for exactly this wake-up.
 */
void bd_aio_co_wake(BdCoroutine *co);

/*
 * Enter @co in @ctx, which must be the calling thread's context (for
 * example a node's context in the main loop): runs @co until it yields or
 * terminates, then returns.  Used to start a coroutine from a callback.
 */
void bd_aio_co_enter(BdAioContext *ctx, BdCoroutine *co);

/*
 * Schedule @co, which has yielded (or is about to yield in the calling
 * thread, and @ctx is that thread's context), to run in @ctx's loop; @co
 * then belongs to @ctx.  Any thread.  Scheduling a coroutine twice before
 * it runs aborts.  A coroutine moves itself to another thread's context
 * with bd_aio_co_reschedule_self(), never by scheduling itself there (that
 * thread could enter it before it has yielded).
 */
void bd_aio_co_schedule(BdAioContext *ctx, BdCoroutine *co);

/*
 * coroutine_fn: move the calling coroutine to @ctx: it yields, is
 * scheduled there once it has, and returns running in @ctx's thread (at
 * once if @ctx is already its context).  For example an I/O engine that
 * works only in the node's context serving a request from an export's
 * other IOThread, or a connection moving to its export's IOThread.
 */
bd_coroutine_fn
void bd_aio_co_reschedule_self(BdAioContext *ctx);

/*
 * coroutine_fn: sleep @ns nanoseconds on the monotonic clock, with a timer
 * of the current coroutine's context (@ns <= 0 yields once through the
 * loop).  This is how a driver waits without a thread (null's latency-ns,
 * a retry back-off).
 */
bd_coroutine_fn
void bd_co_sleep_ns(int64_t ns);

/*
 * Main loop, outside coroutines (or inside one, where it simply calls
 * @entry): run @entry(@opaque) in a new coroutine of the main context and
 * run the main loop until it returns.  For a driver's open() and close(),
 * which read and write metadata through their children.
 */
void bd_run_co(BdCoroutineEntry *entry, void *opaque);

/* --- coroutine locks ---------------------------------------------------- */

/* One waiting coroutine; lives on the waiter's stack (opaque). */
typedef struct BdCoWaiter BdCoWaiter;

/*
 * BdCoQueue: a FIFO of coroutines waiting for a condition.  Not
 * thread-safe by itself: use it under a BdCoMutex (the one passed to
 * bd_co_queue_wait()) or from one AioContext only.  Zero-initialised is
 * empty.  The fields are private.
 */
typedef struct BdCoQueue {
    BdCoWaiter *head;
    BdCoWaiter **tail;
} BdCoQueue;

/*
 * BdCoMutex: a fair (FIFO, no barging) mutex for coroutines, for driver
 * metadata such as a qcow2 L2 cache.  Waiters yield instead of blocking
 * the thread and resume in their own context, so it works across
 * IOThreads.  Not recursive.  Zero-initialised (or bd_co_mutex_init())
 * is unlocked; must not be freed while held or waited for.  The fields
 * are private.
 */
typedef struct BdCoMutex {
    GMutex lock;
    bool locked;
    BdCoroutine *holder;
    BdAioContext *holder_ctx;
    BdCoWaiter *head;
    BdCoWaiter **tail;
} BdCoMutex;

/* Initialise @q empty. */
void bd_co_queue_init(BdCoQueue *q);

/*
 * coroutine_fn: wait in @q until bd_co_queue_next() or
 * bd_co_queue_restart_all() wakes the caller.  With @mutex (held by the
 * caller) the mutex is released while waiting and taken again before
 * returning.  Wake-ups may be spurious for the caller's condition: check
 * it again in a loop.
 */
bd_coroutine_fn
void bd_co_queue_wait(BdCoQueue *q, BdCoMutex *mutex);

/*
 * Wake the first waiter of @q (it runs later, not inside this call).
 * Returns false if nobody was waiting.
 */
bool bd_co_queue_next(BdCoQueue *q);

/* Wake every waiter of @q in order. */
void bd_co_queue_restart_all(BdCoQueue *q);

/* True if nobody waits in @q. */
bool bd_co_queue_empty(BdCoQueue *q);

/* Initialise @m unlocked. */
void bd_co_mutex_init(BdCoMutex *m);

/* coroutine_fn: take @m, waiting in line while another coroutine has it. */
bd_coroutine_fn
void bd_co_mutex_lock(BdCoMutex *m);

/*
 * coroutine_fn (never yields): release @m, which the calling coroutine
 * holds, handing it to the first waiter.  Aborts if the caller does not
 * hold it.
 */
void bd_co_mutex_unlock(BdCoMutex *m);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_COROUTINE_H */
