/*
 * AioContext internals shared by core/aio-context*.c, the coroutine
 * scheduling in coroutine.c and the thread pool.  Not for other users.
 */
#ifndef BLOCKD_CORE_AIO_CONTEXT_INT_H
#define BLOCKD_CORE_AIO_CONTEXT_INT_H

#include <sys/epoll.h>

#include "aio/aio-context.h"

typedef struct BdThreadPool BdThreadPool;

/* A circular doubly linked list with a sentinel: unlinking needs no head. */
typedef struct BdAioLink {
    struct BdAioLink *prev, *next;
} BdAioLink;

typedef struct AioHandler {
    int fd;
    BdAioHandlerFunc *io_read;
    BdAioHandlerFunc *io_write;
    BdAioPollFunc *io_poll;
    void *opaque;
    bool deleted;
    /* Context plumbing (notifier, timerfd): not counted as progress. */
    bool internal;
    struct AioHandler *next;
} AioHandler;

struct BdAioContext {
    /* First: the main context is this GSource; others are never attached
     * but use its reference count and finalizer all the same. */
    GSource source;
    gpointer epoll_tag;

    int epfd;
    int notify_fd;          /* eventfd written by bd_aio_notify() */
    int timer_fd;           /* timerfd armed at the earliest deadline */
    AioHandler notify_handler;
    AioHandler timer_handler;

    GThread *home;          /* atomic */

    /* Protects the handler list, BH list, timers and scheduled coroutines. */
    GMutex lock;
    AioHandler *handlers;   /* newest first; published atomically */
    unsigned walking;       /* iterations of the list in progress */
    unsigned poll_handlers; /* handlers with io_poll */
    unsigned nonpoll_handlers;  /* handlers without: polling is off */

    /*
     * notify_me: bit 0 set while the GSource may be waiting in
     * g_main_context's poll, +2 per bd_aio_poll() about to block; only
     * then must bd_aio_notify() write the eventfd.  notified: set after
     * such a write, cleared by the poller after waiting; lets the busy-poll
     * loop see notifications without reading the eventfd.
     */
    int notify_me;
    int notified;

    BdAioLink bh_list;      /* scheduled BHs, in scheduling order */
    /*
     * The batches bd_aio_bh_poll() calls are running, oldest first (home
     * thread, under @lock).  A BH whose callback polls the context again
     * (a drain in a job's finalize) runs what is left of the outer
     * batches too, as QEMU's BH slices do: otherwise it waits for a BH
     * (a request's completion) that only runs after it returns.
     */
    struct BdAioBHSlice *bh_slices;
    struct BdAioBHSlice **bh_slices_tail;

    BdAioTimer *timers;     /* armed timers by deadline */
    int64_t first_deadline; /* atomic copy of timers->expire or INT64_MAX */
    int64_t timerfd_armed;  /* deadline the timerfd is set to, or -1 */

    BdCoroutine *sched_head;    /* coroutines scheduled by other threads */
    BdCoroutine **sched_tail;
    BdAioBH *co_schedule_bh;

    int64_t poll_ns;        /* the adaptive window (home thread) */
    int64_t poll_max_ns;    /* atomic */
    int64_t poll_grow;      /* atomic */
    int64_t poll_shrink;    /* atomic */
    int64_t aio_max_batch;  /* atomic; 0: the engines' default */
    unsigned users;         /* atomic; nodes and exports placed here */

    BdThreadPool *thread_pool;  /* created on first use */
    GMutex thread_pool_lock;
};

struct BdAioTimer {
    BdAioContext *ctx;
    BdAioTimerFunc *cb;
    void *opaque;
    int64_t expire;         /* -1 when not armed; under ctx->lock */
    BdAioTimer *next;
};

void bd_aio_link_init(BdAioLink *l);
bool bd_aio_link_empty(BdAioLink *l);
void bd_aio_link_insert_tail(BdAioLink *head, BdAioLink *l);
void bd_aio_link_unlink(BdAioLink *l);

/* Run scheduled BHs; true if any ran.  aio-context-bh.c. */
bool bd_aio_bh_poll(BdAioContext *ctx);
/* True if a BH is scheduled (a hint for choosing a zero timeout). */
bool bd_aio_bh_pending(BdAioContext *ctx);
/* Free what is left at destruction.  aio-context-bh.c. */
void bd_aio_bh_cleanup(BdAioContext *ctx);
/* The BH that enters scheduled coroutines. */
void bd_aio_co_schedule_bh_cb(void *opaque);

/* Run expired timers; true if any ran.  aio-context-timer.c. */
bool bd_aio_timers_run(BdAioContext *ctx);
/* True if the earliest timer is due. */
bool bd_aio_timers_expired(BdAioContext *ctx, int64_t now);
/* Point the timerfd at the earliest deadline (home thread, before
 * waiting). */
void bd_aio_timers_arm(BdAioContext *ctx);

/* Read the eventfd and timerfd, run handlers of ready fds: progress. */
bool bd_aio_dispatch_events(BdAioContext *ctx, struct epoll_event *ev,
                            int n);
/* Count (un)finished walks of the handler list; the last frees deleted
 * handlers. */
void bd_aio_walk_begin(BdAioContext *ctx);
void bd_aio_walk_end(BdAioContext *ctx);

/* Set the calling thread's current context (noinline TLS access). */
void bd_aio_set_current_context(BdAioContext *ctx);

/* Release everything of @ctx (the GSource finalizer). */
void bd_aio_context_finalize(BdAioContext *ctx);

/* GSource functions of a context (aio-context-source.c). */
extern GSourceFuncs bd_aio_source_funcs;

/* The thread pool's teardown (thread-pool.c). */
void bd_thread_pool_free(BdThreadPool *pool);

#endif /* BLOCKD_CORE_AIO_CONTEXT_INT_H */
