/*
 * AioContext: creation, fd handlers, notification and bd_aio_poll() with
 * adaptive polling.  BHs, timers, the GSource glue and IOThreads are in
 * their own aio-context-*.c files.
 *
 * Why epoll: a context may serve many sockets (NBD connections, vhost-user
 * queues), and epoll reports only the ready ones without rebuilding a
 * pollfd array per iteration; its single fd is also exactly what the main
 * context hands to its GMainContext, so glib polls one fd for all of block
 * I/O.  Level-triggered mode is kept so a handler that leaves data unread
 * is simply called again, as with poll().
 *
 * Why a timerfd: epoll_wait() timeouts have millisecond resolution; a
 * timerfd armed at the earliest deadline (absolute, CLOCK_MONOTONIC) gives
 * nanosecond deadlines both to bd_aio_poll() and to the GMainContext, which
 * would otherwise round our timeouts to milliseconds too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <blockd/error.h>

#include "aio/aio-context-int.h"

#define AIO_MAX_EVENTS 128

int64_t bd_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Out of line for the same reason as the coroutine TLS: coroutines move. */
static __thread BdAioContext *tls_current_ctx;

__attribute__((noinline)) BdAioContext *bd_aio_current_context(void)
{
    __asm__ __volatile__("" ::: "memory");
    return tls_current_ctx;
}

__attribute__((noinline)) void bd_aio_set_current_context(BdAioContext *ctx)
{
    __asm__ __volatile__("" ::: "memory");
    tls_current_ctx = ctx;
}

void bd_aio_context_set_home_thread(BdAioContext *ctx)
{
    if (ctx) {
        __atomic_store_n(&ctx->home, g_thread_self(), __ATOMIC_RELEASE);
    }
    bd_aio_set_current_context(ctx);
}

bool bd_aio_context_in_home_thread(BdAioContext *ctx)
{
    return __atomic_load_n(&ctx->home, __ATOMIC_ACQUIRE) == g_thread_self();
}

static void epoll_add(BdAioContext *ctx, AioHandler *h, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = h };

    if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0) {
        fprintf(stderr, "blockd: epoll_ctl(ADD, fd %d): %s\n", h->fd,
                strerror(errno));
        abort();
    }
}

BdAioContext *bd_aio_context_new(GError **errp)
{
    BdAioContext *ctx;
    int epfd, notify_fd, timer_fd;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        bd_error_setg(errp, "Failed to create epoll instance: %s",
                      g_strerror(errno));
        return NULL;
    }
    notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (notify_fd < 0) {
        bd_error_setg(errp, "Failed to initialize event notifier: %s",
                      g_strerror(errno));
        close(epfd);
        return NULL;
    }
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (timer_fd < 0) {
        bd_error_setg(errp, "Failed to create timer: %s", g_strerror(errno));
        close(notify_fd);
        close(epfd);
        return NULL;
    }

    ctx = (BdAioContext *)g_source_new(&bd_aio_source_funcs,
                                       sizeof(BdAioContext));
    g_source_set_name(&ctx->source, "blockd AioContext");
    ctx->epfd = epfd;
    ctx->notify_fd = notify_fd;
    ctx->timer_fd = timer_fd;
    g_mutex_init(&ctx->lock);
    g_mutex_init(&ctx->thread_pool_lock);
    bd_aio_link_init(&ctx->bh_list);
    ctx->bh_slices = NULL;
    ctx->bh_slices_tail = &ctx->bh_slices;
    ctx->first_deadline = INT64_MAX;
    ctx->timerfd_armed = -1;
    ctx->sched_tail = &ctx->sched_head;

    ctx->notify_handler.fd = notify_fd;
    ctx->notify_handler.internal = true;
    epoll_add(ctx, &ctx->notify_handler, EPOLLIN);
    ctx->timer_handler.fd = timer_fd;
    ctx->timer_handler.internal = true;
    epoll_add(ctx, &ctx->timer_handler, EPOLLIN);

    ctx->co_schedule_bh = bd_aio_bh_new(ctx, bd_aio_co_schedule_bh_cb, ctx);
    ctx->epoll_tag = g_source_add_unix_fd(&ctx->source, epfd, G_IO_IN);
    return ctx;
}

BdAioContext *bd_aio_context_ref(BdAioContext *ctx)
{
    g_source_ref(&ctx->source);
    return ctx;
}

void bd_aio_context_unref(BdAioContext *ctx)
{
    g_source_unref(&ctx->source);
}

/* The GSource finalizer: the last reference is gone. */
void bd_aio_context_finalize(BdAioContext *ctx)
{
    AioHandler *h;

    if (ctx->thread_pool) {
        bd_thread_pool_free(ctx->thread_pool);
        ctx->thread_pool = NULL;
    }
    bd_aio_bh_delete(ctx->co_schedule_bh);
    bd_aio_bh_cleanup(ctx);
    while ((h = ctx->handlers)) {
        ctx->handlers = h->next;
        if (!h->deleted) {
            fprintf(stderr, "blockd: AioContext destroyed with a handler "
                    "for fd %d\n", h->fd);
        }
        g_free(h);
    }
    close(ctx->timer_fd);
    close(ctx->notify_fd);
    close(ctx->epfd);
    g_mutex_clear(&ctx->thread_pool_lock);
    g_mutex_clear(&ctx->lock);
}

void bd_aio_walk_begin(BdAioContext *ctx)
{
    g_mutex_lock(&ctx->lock);
    ctx->walking++;
    g_mutex_unlock(&ctx->lock);
}

void bd_aio_walk_end(BdAioContext *ctx)
{
    g_mutex_lock(&ctx->lock);
    if (--ctx->walking == 0) {
        AioHandler **p = &ctx->handlers;

        while (*p) {
            AioHandler *h = *p;

            if (h->deleted) {
                *p = h->next;
                g_free(h);
            } else {
                p = &h->next;
            }
        }
    }
    g_mutex_unlock(&ctx->lock);
}

/* Under ctx->lock: take @h out of service, freeing it unless walked. */
static void handler_remove_locked(BdAioContext *ctx, AioHandler *h)
{
    __atomic_store_n(&h->deleted, true, __ATOMIC_RELEASE);
    if (h->io_poll) {
        ctx->poll_handlers--;
    } else {
        ctx->nonpoll_handlers--;
    }
    if (ctx->walking == 0) {
        AioHandler **p = &ctx->handlers;

        while (*p != h) {
            p = &(*p)->next;
        }
        *p = h->next;
        g_free(h);
    }
}

void bd_aio_set_fd_handler(BdAioContext *ctx, int fd,
                           BdAioHandlerFunc *io_read,
                           BdAioHandlerFunc *io_write,
                           BdAioPollFunc *io_poll,
                           void *opaque)
{
    AioHandler *old = NULL, *h;
    struct epoll_event ev = { 0 };
    int op;

    g_mutex_lock(&ctx->lock);
    for (h = ctx->handlers; h; h = h->next) {
        if (h->fd == fd && !h->deleted) {
            old = h;
            break;
        }
    }

    if (!io_read && !io_write && !io_poll) {
        if (old) {
            epoll_ctl(ctx->epfd, EPOLL_CTL_DEL, fd, NULL);
            handler_remove_locked(ctx, old);
        }
        g_mutex_unlock(&ctx->lock);
        return;
    }

    /*
     * A new record rather than an update in place: a dispatch under way in
     * the home thread holds the old one and must see one consistent set of
     * callbacks and opaque.
     */
    h = g_new0(AioHandler, 1);
    h->fd = fd;
    h->io_read = io_read;
    h->io_write = io_write;
    h->io_poll = io_poll;
    h->opaque = opaque;
    ev.events = (io_read ? EPOLLIN : 0) | (io_write ? EPOLLOUT : 0);
    ev.data.ptr = h;
    op = old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(ctx->epfd, op, fd, &ev) < 0) {
        fprintf(stderr, "blockd: epoll_ctl(fd %d): %s\n", fd,
                strerror(errno));
        abort();
    }
    if (old) {
        handler_remove_locked(ctx, old);
    }
    if (io_poll) {
        ctx->poll_handlers++;
    } else {
        ctx->nonpoll_handlers++;
    }
    h->next = ctx->handlers;
    /* Lock-free readers (the poll loop) walk from the head. */
    __atomic_store_n(&ctx->handlers, h, __ATOMIC_RELEASE);
    g_mutex_unlock(&ctx->lock);

    if (!bd_aio_context_in_home_thread(ctx)) {
        /* A waiting loop must pick up the new poll handler set. */
        bd_aio_notify(ctx);
    }
}

void bd_aio_notify(BdAioContext *ctx)
{
    /* Pairs with the fence after raising notify_me in the poller. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ctx->notify_me, __ATOMIC_RELAXED)) {
        uint64_t one = 1;
        ssize_t r;

        /*
         * Always write, as QEMU does: skipping the write because an
         * earlier notification is still flagged would lose a wake-up when
         * the poller consumed that earlier write after clearing the flag.
         */
        do {
            r = write(ctx->notify_fd, &one, sizeof(one));
        } while (r < 0 && errno == EINTR);
        /* For the busy-poll loop, which does not read the eventfd. */
        __atomic_store_n(&ctx->notified, 1, __ATOMIC_RELEASE);
    }
}

bool bd_aio_dispatch_events(BdAioContext *ctx, struct epoll_event *ev,
                            int n)
{
    bool progress = false;
    int i;

    for (i = 0; i < n; i++) {
        AioHandler *h = ev[i].data.ptr;
        uint32_t revents = ev[i].events;

        if (h == &ctx->notify_handler) {
            uint64_t v;

            if (read(ctx->notify_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: someone else already consumed it. */
            }
            continue;
        }
        if (h == &ctx->timer_handler) {
            uint64_t v;

            if (read(ctx->timer_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: re-armed since it fired. */
            }
            ctx->timerfd_armed = -1;
            continue;
        }
        if (__atomic_load_n(&h->deleted, __ATOMIC_ACQUIRE)) {
            continue;
        }
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && h->io_read) {
            h->io_read(h->opaque);
            progress = true;
        }
        if ((revents & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && h->io_write &&
            !__atomic_load_n(&h->deleted, __ATOMIC_ACQUIRE)) {
            h->io_write(h->opaque);
            progress = true;
        }
    }
    return progress;
}

static bool run_poll_handlers_once(BdAioContext *ctx)
{
    AioHandler *h;
    bool progress = false;

    for (h = __atomic_load_n(&ctx->handlers, __ATOMIC_ACQUIRE); h;
         h = h->next) {
        if (h->io_poll && !__atomic_load_n(&h->deleted, __ATOMIC_ACQUIRE) &&
            h->io_poll(h->opaque)) {
            progress = true;
        }
    }
    return progress;
}

/*
 * Busy-poll until a poll handler made progress, another thread notified
 * us (a BH, a scheduled coroutine), a timer is due or @max_ns passed.
 * As in QEMU, this is only done while every fd handler has an io_poll
 * callback: an fd only epoll can see would wait out the whole window.
 */
static bool run_poll_handlers(BdAioContext *ctx, int64_t max_ns)
{
    int64_t end = bd_clock_ns() + max_ns;
    int64_t now;

    do {
        if (run_poll_handlers_once(ctx)) {
            return true;
        }
        now = bd_clock_ns();
        if (__atomic_load_n(&ctx->notified, __ATOMIC_ACQUIRE) ||
            bd_aio_timers_expired(ctx, now)) {
            return true;
        }
    } while (now < end);
    return false;
}

static void adjust_poll_window(BdAioContext *ctx, int64_t block_ns)
{
    int64_t max_ns = __atomic_load_n(&ctx->poll_max_ns, __ATOMIC_RELAXED);
    int64_t grow = __atomic_load_n(&ctx->poll_grow, __ATOMIC_RELAXED);
    int64_t shrink = __atomic_load_n(&ctx->poll_shrink, __ATOMIC_RELAXED);

    if (ctx->poll_ns > max_ns) {
        ctx->poll_ns = max_ns;      /* the limit was lowered */
    }
    if (block_ns <= ctx->poll_ns) {
        /* The window caught the event: keep it. */
    } else if (block_ns > max_ns) {
        /* Polling would not have caught it: poll less. */
        ctx->poll_ns = shrink ? ctx->poll_ns / shrink : 0;
    } else if (ctx->poll_ns < max_ns) {
        /* A longer window would have caught it: poll longer. */
        if (ctx->poll_ns == 0) {
            ctx->poll_ns = BD_AIO_POLL_INITIAL_NS;
        } else {
            ctx->poll_ns *= grow ? grow : BD_AIO_POLL_GROW_DEFAULT;
        }
        if (ctx->poll_ns > max_ns) {
            ctx->poll_ns = max_ns;
        }
    }
}

bool bd_aio_poll(BdAioContext *ctx, bool blocking)
{
    struct epoll_event ev[AIO_MAX_EVENTS];
    bool progress = false;
    int64_t max_ns = 0, start = 0;
    int timeout = blocking ? -1 : 0;
    int n;

    if (bd_in_coroutine()) {
        fprintf(stderr, "blockd: bd_aio_poll() called in a coroutine\n");
        abort();
    }

    bd_aio_walk_begin(ctx);
    if (blocking) {
        __atomic_add_fetch(&ctx->notify_me, 2, __ATOMIC_SEQ_CST);
        /* Pairs with bd_aio_notify(): see new BHs or get woken. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (bd_aio_bh_pending(ctx) ||
            bd_aio_timers_expired(ctx, bd_clock_ns())) {
            timeout = 0;
        }
    }

    if (timeout) {
        max_ns = __atomic_load_n(&ctx->poll_max_ns, __ATOMIC_RELAXED);
        if (max_ns) {
            start = bd_clock_ns();
            bool pollable = !__atomic_load_n(&ctx->nonpoll_handlers,
                                             __ATOMIC_RELAXED);

            if (ctx->poll_ns && pollable &&
                run_poll_handlers(ctx, ctx->poll_ns)) {
                progress = true;    /* at least a poll handler or wake-up */
                timeout = 0;
            }
        }
    }
    if (timeout) {
        bd_aio_timers_arm(ctx);
    }

    n = epoll_wait(ctx->epfd, ev, AIO_MAX_EVENTS, timeout);
    if (n < 0) {
        n = 0;      /* EINTR: just go round */
    }

    if (blocking) {
        __atomic_sub_fetch(&ctx->notify_me, 2, __ATOMIC_SEQ_CST);
        __atomic_store_n(&ctx->notified, 0, __ATOMIC_RELEASE);
    }
    if (max_ns) {
        adjust_poll_window(ctx, bd_clock_ns() - start);
    }

    progress |= bd_aio_dispatch_events(ctx, ev, n);
    bd_aio_walk_end(ctx);

    progress |= bd_aio_bh_poll(ctx);
    progress |= bd_aio_timers_run(ctx);
    return progress;
}

bool bd_aio_context_set_poll_params(BdAioContext *ctx, int64_t max_ns,
                                    int64_t grow, int64_t shrink,
                                    GError **errp)
{
    if (max_ns < 0) {
        bd_error_setg(errp,
                      "poll-max-ns value must be in range [0, %" PRId64 "]",
                      INT64_MAX);
        return false;
    }
    if (grow < 0) {
        bd_error_setg(errp,
                      "poll-grow value must be in range [0, %" PRId64 "]",
                      INT64_MAX);
        return false;
    }
    if (shrink < 0) {
        bd_error_setg(errp,
                      "poll-shrink value must be in range [0, %" PRId64 "]",
                      INT64_MAX);
        return false;
    }
    __atomic_store_n(&ctx->poll_max_ns, max_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&ctx->poll_grow, grow, __ATOMIC_RELAXED);
    __atomic_store_n(&ctx->poll_shrink, shrink, __ATOMIC_RELAXED);
    bd_aio_notify(ctx);
    return true;
}

int64_t bd_aio_context_get_poll_ns(BdAioContext *ctx)
{
    return ctx->poll_ns;
}
