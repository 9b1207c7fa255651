/*
 * export-nbd: a client connection's life cycle, from accept to hang-up,
 * and its socket I/O (the waits on the socket, plain or TLS).  The
 * protocol phases are in nbd-negotiate.c and nbd-requests.c
 * (nbd-conn.h says what they share).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-conn.h"

/*
 * A payload buffer of at least @len bytes, aligned for O_DIRECT: a cached
 * one that fits without wasting more than its size, or a new one.  NULL
 * when memory is short.
 */
void *nbd_buf_get(NbdClient *c, uint64_t len, uint64_t *cap)
{
    void *buf;

    len = MAX(len, 1);
    for (unsigned i = 0; i < c->buf_cached; i++) {
        if (c->buf_cache_cap[i] >= len && c->buf_cache_cap[i] / 2 < len) {
            buf = c->buf_cache[i];
            *cap = c->buf_cache_cap[i];
            c->buf_cached--;
            c->buf_cache[i] = c->buf_cache[c->buf_cached];
            c->buf_cache_cap[i] = c->buf_cache_cap[c->buf_cached];
            c->buf_cached_bytes -= *cap;
            return buf;
        }
    }
    if (posix_memalign(&buf, NBD_BUF_ALIGN, len)) {
        return NULL;
    }
    *cap = len;
    return buf;
}

/* Give @buf back for reuse, or free it when the cache is full. */
void nbd_buf_put(NbdClient *c, void *buf, uint64_t cap)
{
    if (!buf) {
        return;
    }
    if (c->buf_cached == NBD_BUF_CACHE_COUNT ||
        c->buf_cached_bytes + cap > NBD_BUF_CACHE_BYTES) {
        free(buf);
        return;
    }
    c->buf_cache[c->buf_cached] = buf;
    c->buf_cache_cap[c->buf_cached++] = cap;
    c->buf_cached_bytes += cap;
}

static void buf_cache_clear(NbdClient *c)
{
    while (c->buf_cached) {
        free(c->buf_cache[--c->buf_cached]);
    }
    c->buf_cached_bytes = 0;
}

/* --- socket waits ------------------------------------------------------------ */

static void client_readable(void *opaque);
static void client_writable(void *opaque);

static void set_handlers(NbdClient *c, bool read, bool write)
{
    if (read == c->reg_read && write == c->reg_write) {
        return;
    }
    c->reg_read = read;
    c->reg_write = write;
    bd_aio_set_fd_handler(c->ctx, c->fd, read ? client_readable : NULL,
                          write ? client_writable : NULL, NULL, c);
}

/*
 * Watch the socket for what the waiters need.  Read interest is dropped
 * lazily, by client_readable() finding nobody waiting: the receiver
 * waits for the socket again right after each request, and two epoll_ctl
 * calls per wait cost more than the rare spurious wake-up.  Write
 * interest goes at once (a socket is nearly always writable).
 */
static void update_handlers(NbdClient *c)
{
    set_handlers(c, c->recv_waiter || c->reg_read, c->send_waiter != NULL);
}

void nbd_conn_wake(NbdClient *c, BdCoroutine **waiter)
{
    BdCoroutine *co = *waiter;

    if (co) {
        *waiter = NULL;
        update_handlers(c);
        bd_aio_co_wake(co);
    }
}

static void client_readable(void *opaque)
{
    NbdClient *c = opaque;

    if (!c->recv_waiter) {
        set_handlers(c, false, c->send_waiter != NULL);
        return;
    }
    nbd_conn_wake(c, &c->recv_waiter);
}

static void client_writable(void *opaque)
{
    NbdClient *c = opaque;

    nbd_conn_wake(c, &c->send_waiter);
}

bool nbd_conn_is_closing(NbdClient *c)
{
    return g_atomic_int_get(&c->closing);
}

/* coroutine_fn: wait until the socket is readable (or writable). */
int nbd_conn_wait_socket(NbdClient *c, bool write)
{
    if (write && (nbd_conn_is_closing(c) || c->broken)) {
        /* a client that does not read must not hold the shutdown up */
        return -ESHUTDOWN;
    }
    if (write) {
        c->send_waiter = bd_coroutine_self();
    } else {
        c->recv_waiter = bd_coroutine_self();
    }
    update_handlers(c);
    bd_coroutine_yield();
    return 0;
}

/* coroutine_fn: read exactly @len bytes; -EPIPE at end of stream. */
int nbd_co_recv(NbdClient *c, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = G_UNLIKELY(c->tls_active) ? nbd_tls_recv(c->tls, p, len)
                                              : recv(c->fd, p, len, 0);

        if (n > 0) {
            p += n;
            len -= n;
        } else if (n == 0) {
            return -EPIPE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /*
             * TLS may have to write (a key update's answer) to read on; it
             * borrows the writer's slot when that is free, and otherwise
             * the writer's own progress flushes it.
             */
            int ret = nbd_conn_wait_socket(c, c->tls_active && !c->send_waiter &&
                                     nbd_tls_wants_write(c->tls));

            if (ret < 0) {
                return ret;
            }
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* coroutine_fn: read and throw away @len bytes (a refused payload). */
int nbd_co_skip(NbdClient *c, uint64_t len)
{
    uint8_t scratch[4096];

    while (len) {
        size_t n = MIN(len, sizeof(scratch));
        int ret = nbd_co_recv(c, scratch, n);

        if (ret < 0) {
            return ret;
        }
        len -= n;
    }
    return 0;
}

/* coroutine_fn: write all of @iov (modified). */
int nbd_co_sendv(NbdClient *c, struct iovec *iov, int cnt)
{
    while (cnt) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
        ssize_t n = G_UNLIKELY(c->tls_active)
                    ? nbd_tls_sendv(c->tls, iov, cnt)
                    : sendmsg(c->fd, &msg, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int ret = nbd_conn_wait_socket(c, true);

                if (ret < 0) {
                    return ret;
                }
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        while (cnt && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return 0;
}

int nbd_co_send(NbdClient *c, const void *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };

    return nbd_co_sendv(c, &iov, 1);
}

/* --- life cycle ------------------------------------------------------------------ */

static void client_finish(void *opaque)
{
    NbdClient *c = opaque;

    if (c->exp) {
        bd_export_unref(c->exp->exp);
    }
    nbd_server_client_gone(c);
    nbd_client_unref(c);
}

static void client_entry(void *opaque)
{
    NbdClient *c = opaque;
    int ret = nbd_negotiate(c);

    /* still in the main loop, where the timer runs: it cannot be firing */
    c->negotiating_since = -1;
    g_clear_pointer(&c->handshake_timer, bd_aio_timer_free);
    if (ret == 0) {
        BdAioContext *ctx = nbd_export_next_context(c->exp);

        c->negotiated = true;

        bd_export_ref(c->exp->exp);
        if (ctx != c->ctx) {
            /* no waiters now; drop the read interest kept lazily */
            set_handlers(c, false, false);
            c->ctx = ctx;
            bd_aio_co_reschedule_self(ctx);
        }
        nbd_receive_loop(c);
        /* the queued request coroutines run before we look */
        while (c->in_flight) {
            c->drain_waiter = bd_coroutine_self();
            bd_coroutine_yield();
        }
    }
    shutdown(c->fd, SHUT_RDWR);
    bd_aio_set_fd_handler(c->ctx, c->fd, NULL, NULL, NULL, NULL);
    buf_cache_clear(c);
    bd_aio_bh_schedule_oneshot(c->main_ctx, client_finish, c);
}

/*
 * The negotiation only ever waits for the socket: shut down, it finds the
 * end of the stream (or a failed write, or a failed TLS handshake) and
 * hangs up.  Nothing of the client's is freed here.
 */
static void client_shutdown(void *opaque)
{
    NbdClient *c = opaque;

    shutdown(c->fd, SHUT_RDWR);
}

void nbd_client_drop(NbdClient *c)
{
    client_shutdown(c);
}

bool nbd_client_negotiated(NbdClient *c)
{
    return c->negotiated;
}

int64_t nbd_client_negotiating_since(NbdClient *c)
{
    return c->negotiating_since;
}

NbdClient *nbd_client_new(int fd, NbdTlsConfig *tls,
                          uint32_t handshake_max_seconds)
{
    NbdClient *c = g_new0(NbdClient, 1);
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);

    c->refcnt = 1;
    c->fd = fd;
    c->tls = tls ? nbd_tls_new(tls, fd) : NULL;
    c->zerocopy = getsockname(fd, (struct sockaddr *)&addr, &addr_len) == 0 &&
                  addr.ss_family == AF_UNIX;
    c->main_ctx = c->ctx = bd_aio_current_context();
    c->negotiating_since = bd_clock_ns();
    if (handshake_max_seconds) {
        c->handshake_timer = bd_aio_timer_new(c->main_ctx, client_shutdown,
                                              c);
        bd_aio_timer_mod(c->handshake_timer,
                         c->negotiating_since +
                         handshake_max_seconds * INT64_C(1000000000));
    }
    bd_co_mutex_init(&c->send_lock);
    bd_aio_co_enter(c->ctx, bd_coroutine_create(client_entry, c));
    return c;
}

static void client_kick(void *opaque)
{
    NbdClient *c = opaque;

    if (c->in_flight == 0) {
        shutdown(c->fd, SHUT_RDWR);
    }
    /* a writer stuck on a client that does not read gives up */
    nbd_conn_wake(c, &c->send_waiter);
    nbd_client_unref(c);
}

void nbd_client_close(NbdClient *c)
{
    if (g_atomic_int_get(&c->closing)) {
        return;
    }
    g_atomic_int_set(&c->closing, 1);
    g_atomic_int_inc(&c->refcnt);
    bd_aio_bh_schedule_oneshot(c->ctx, client_kick, c);
}

NbdExport *nbd_client_get_export(NbdClient *c)
{
    return c->exp;
}

void nbd_client_unref(NbdClient *c)
{
    if (g_atomic_int_dec_and_test(&c->refcnt)) {
        nbd_tls_free(c->tls);
        close(c->fd);
        g_free(c->meta_export);
        nbd_meta_bitmaps_clear(&c->meta_bitmaps);
        g_free(c);
    }
}
