/*
 * Locks and wait queues for coroutines: CoQueue, CoMutex, CoRwLock.
 *
 * They suspend the calling coroutine instead of blocking its thread, and
 * wake waiters with bd_aio_co_wake(), so each waiter resumes in its own
 * AioContext (the locks work across IOThreads).  Every waiting function is
 * coroutine_fn: call it only from a coroutine.  Initialise statically with
 * zeroes or with the _init functions; there is nothing to destroy, but a
 * lock must not be freed while held or waited for.
 */
#ifndef BLOCKD_CORE_CO_LOCK_H
#define BLOCKD_CORE_CO_LOCK_H

#include <stdbool.h>

#include <glib.h>

#include <blockd/coroutine.h>

#include "aio/coroutine.h"

/*
 * BdCoWaiter, BdCoQueue and BdCoMutex are defined by the plugin ABI
 * (<blockd/coroutine.h>), where drivers embed them in their state.
 */
/*
 * A fair readers-writer lock: any number of readers or one writer; a
 * waiting writer makes later readers wait (no writer starvation), and
 * waiters are granted the lock in arrival order.  Thread-safe.
 */
typedef struct BdCoRwLock {
    GMutex lock;
    int readers;
    bool writer;
    BdCoWaiter *head;
    BdCoWaiter **tail;
} BdCoRwLock;

/*
 * coroutine_fn: queue the calling coroutine on @q, release @lock (a
 * GMutex the caller holds, which protects @q), yield until woken through
 * @q, and take @lock again before returning.  Queueing under @lock means
 * a waker that takes @lock later cannot miss the waiter, whichever
 * thread it runs in; the waiter resumes in its own AioContext.
 */
void bd_co_queue_wait_gmutex(BdCoQueue *q, GMutex *lock);

/* The holder of @m and its context (NULL if unlocked); for assertions. */
BdCoroutine *bd_co_mutex_holder(BdCoMutex *m, BdAioContext **ctx);

/* Initialise @l unlocked. */
void bd_co_rwlock_init(BdCoRwLock *l);

/* coroutine_fn: take @l shared. */
void bd_co_rwlock_rdlock(BdCoRwLock *l);

/* coroutine_fn: take @l exclusive. */
void bd_co_rwlock_wrlock(BdCoRwLock *l);

/*
 * coroutine_fn (does not yield): turn the calling coroutine's exclusive
 * hold of @l into a shared one, letting waiting readers in.
 */
void bd_co_rwlock_downgrade(BdCoRwLock *l);

/* coroutine_fn (does not yield): release a shared or exclusive hold. */
void bd_co_rwlock_unlock(BdCoRwLock *l);

#endif /* BLOCKD_CORE_CO_LOCK_H */
