/*
 * CoQueue, CoMutex and CoRwLock; see co-lock.h.
 *
 * The locks keep their state under a short GMutex (a futex word when
 * uncontended) rather than a lock-free protocol: a waiter is queued and
 * the hand-over decided under it, and wake-ups go through
 * bd_aio_co_wake() after it is dropped.  A waiter that queued itself in
 * one thread and is woken from another cannot be entered before it has
 * yielded, because the wake-up is a BH of the waiter's own context, which
 * runs only between coroutines in the waiter's thread.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aio/co-lock.h"
#include "aio/coroutine-int.h"

struct BdCoWaiter {
    BdCoroutine *co;
    bool is_writer;
    BdCoWaiter *next;
};

static void co_lock_fail(const char *func, const char *what)
{
    fprintf(stderr, "blockd: %s: %s\n", func, what);
    abort();
}

static BdCoroutine *co_self_checked(const char *func)
{
    if (!bd_in_coroutine()) {
        co_lock_fail(func, "called outside a coroutine");
    }
    return bd_coroutine_self();
}

/* A FIFO given by its head and tail fields (zero-initialised is empty). */
static void waiters_push(BdCoWaiter **head, BdCoWaiter ***tail,
                         BdCoWaiter *w)
{
    w->next = NULL;
    if (!*head) {
        *head = w;
    } else {
        **tail = w;
    }
    *tail = &w->next;
}

static BdCoWaiter *waiters_pop(BdCoWaiter **head)
{
    BdCoWaiter *w = *head;

    if (w) {
        *head = w->next;
    }
    return w;
}

void bd_co_queue_init(BdCoQueue *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

void bd_co_queue_wait(BdCoQueue *q, BdCoMutex *mutex)
{
    BdCoWaiter w = { .co = co_self_checked(__func__) };

    waiters_push(&q->head, &q->tail, &w);
    if (mutex) {
        bd_co_mutex_unlock(mutex);
    }
    bd_coroutine_yield();
    if (mutex) {
        bd_co_mutex_lock(mutex);
    }
}

void bd_co_queue_wait_gmutex(BdCoQueue *q, GMutex *lock)
{
    BdCoWaiter w = { .co = co_self_checked(__func__) };

    waiters_push(&q->head, &q->tail, &w);
    g_mutex_unlock(lock);
    /* a wake-up from another thread is a BH that runs after this yield */
    bd_coroutine_yield();
    g_mutex_lock(lock);
}

bool bd_co_queue_next(BdCoQueue *q)
{
    BdCoWaiter *w = waiters_pop(&q->head);

    if (!w) {
        return false;
    }
    bd_aio_co_wake(w->co);
    return true;
}

void bd_co_queue_restart_all(BdCoQueue *q)
{
    BdCoWaiter *w = q->head;

    q->head = NULL;
    while (w) {
        /* Read before waking: the waiter's frame may be gone after. */
        BdCoWaiter *next = w->next;

        bd_aio_co_wake(w->co);
        w = next;
    }
}

bool bd_co_queue_empty(BdCoQueue *q)
{
    return q->head == NULL;
}

void bd_co_mutex_init(BdCoMutex *m)
{
    g_mutex_init(&m->lock);
    m->locked = false;
    m->holder = NULL;
    m->holder_ctx = NULL;
    m->head = NULL;
    m->tail = &m->head;
}

void bd_co_mutex_lock(BdCoMutex *m)
{
    BdCoroutine *self = co_self_checked(__func__);
    BdCoWaiter w = { .co = self };

    g_mutex_lock(&m->lock);
    if (!m->locked) {
        m->locked = true;
        m->holder = self;
        m->holder_ctx = bd_coroutine_get_aio_context(self);
        g_mutex_unlock(&m->lock);
        self->locks_held++;
        return;
    }
    if (m->holder == self) {
        co_lock_fail(__func__, "CoMutex locked recursively");
    }
    waiters_push(&m->head, &m->tail, &w);
    g_mutex_unlock(&m->lock);

    /* The unlocker made us the holder before waking us. */
    bd_coroutine_yield();
    self->locks_held++;
}

void bd_co_mutex_unlock(BdCoMutex *m)
{
    BdCoroutine *self = co_self_checked(__func__);
    BdCoroutine *next_co = NULL;
    BdCoWaiter *w;

    g_mutex_lock(&m->lock);
    if (!m->locked || m->holder != self) {
        co_lock_fail(__func__, "CoMutex not held by this coroutine");
    }
    w = waiters_pop(&m->head);
    if (w) {
        next_co = w->co;
        m->holder = next_co;
        m->holder_ctx = bd_coroutine_get_aio_context(next_co);
    } else {
        m->locked = false;
        m->holder = NULL;
        m->holder_ctx = NULL;
    }
    g_mutex_unlock(&m->lock);
    self->locks_held--;

    if (next_co) {
        bd_aio_co_wake(next_co);
    }
}

BdCoroutine *bd_co_mutex_holder(BdCoMutex *m, BdAioContext **ctx)
{
    BdCoroutine *holder;

    g_mutex_lock(&m->lock);
    holder = m->holder;
    if (ctx) {
        *ctx = m->holder_ctx;
    }
    g_mutex_unlock(&m->lock);
    return holder;
}

void bd_co_rwlock_init(BdCoRwLock *l)
{
    g_mutex_init(&l->lock);
    l->readers = 0;
    l->writer = false;
    l->head = NULL;
    l->tail = &l->head;
}

/*
 * Under l->lock: grant the lock to waiters at the head of the line while
 * they fit (a run of readers, or one writer); returns them as a list.
 */
static BdCoWaiter *rwlock_grant_locked(BdCoRwLock *l)
{
    BdCoWaiter *granted = NULL, **tail = &granted;

    while (l->head) {
        BdCoWaiter *w = l->head;

        if (w->is_writer) {
            if (l->writer || l->readers) {
                break;
            }
            l->writer = true;
        } else {
            if (l->writer) {
                break;
            }
            l->readers++;
        }
        waiters_pop(&l->head);
        w->next = NULL;
        *tail = w;
        tail = &w->next;
        if (w->is_writer) {
            break;
        }
    }
    return granted;
}

static void rwlock_wake(BdCoWaiter *w)
{
    while (w) {
        BdCoWaiter *next = w->next;

        bd_aio_co_wake(w->co);
        w = next;
    }
}

void bd_co_rwlock_rdlock(BdCoRwLock *l)
{
    BdCoroutine *self = co_self_checked(__func__);
    BdCoWaiter w = { .co = self, .is_writer = false };

    g_mutex_lock(&l->lock);
    if (!l->writer && !l->head) {
        l->readers++;
        g_mutex_unlock(&l->lock);
    } else {
        waiters_push(&l->head, &l->tail, &w);
        g_mutex_unlock(&l->lock);
        bd_coroutine_yield();
    }
    self->locks_held++;
}

void bd_co_rwlock_wrlock(BdCoRwLock *l)
{
    BdCoroutine *self = co_self_checked(__func__);
    BdCoWaiter w = { .co = self, .is_writer = true };

    g_mutex_lock(&l->lock);
    if (!l->writer && !l->readers && !l->head) {
        l->writer = true;
        g_mutex_unlock(&l->lock);
    } else {
        waiters_push(&l->head, &l->tail, &w);
        g_mutex_unlock(&l->lock);
        bd_coroutine_yield();
    }
    self->locks_held++;
}

void bd_co_rwlock_downgrade(BdCoRwLock *l)
{
    BdCoWaiter *granted;

    co_self_checked(__func__);
    g_mutex_lock(&l->lock);
    if (!l->writer) {
        co_lock_fail(__func__, "CoRwLock not held exclusively");
    }
    l->writer = false;
    l->readers++;
    granted = rwlock_grant_locked(l);
    g_mutex_unlock(&l->lock);
    rwlock_wake(granted);
}

void bd_co_rwlock_unlock(BdCoRwLock *l)
{
    BdCoroutine *self = co_self_checked(__func__);
    BdCoWaiter *granted;

    g_mutex_lock(&l->lock);
    if (l->writer) {
        l->writer = false;
    } else if (l->readers > 0) {
        l->readers--;
    } else {
        co_lock_fail(__func__, "CoRwLock not held");
    }
    granted = rwlock_grant_locked(l);
    g_mutex_unlock(&l->lock);
    self->locks_held--;
    rwlock_wake(granted);
}
