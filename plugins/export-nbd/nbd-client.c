/*
 * export-nbd: one client connection, from the greeting to the hang-up.
 *
 * A connection is one coroutine that negotiates (in the main loop, where
 * the exports are listed) and then receives requests in the export's
 * AioContext.  Each request runs in a coroutine of its own, so that many
 * are in flight at once; replies are written under a BdCoMutex as the
 * requests complete, in whatever order that is.  Memory is bounded: at
 * most NBD_MAX_REQUESTS requests and NBD_MAX_QUEUED_BYTES of payload
 * buffers per connection; the receiver waits for room before it reads
 * the next request.  Everything a client sends is checked by
 * nbd-proto.c before it is acted on; a client that breaks the protocol
 * loses its own connection only.
 *
 * Shutdown (nbd_client_close()): requests received from then on are
 * answered NBD_ESHUTDOWN, the ones in flight complete, and when none is
 * left the socket is shut down.  A writer that would wait for a client
 * that does not read gives up instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd-int.h"
#include "nbd-proto.h"
#include "nbd-tls.h"
#include "nbd-meta.h"

/* QEMU's limit of requests in flight per connection. */
#define NBD_MAX_REQUESTS 16
/* Payload buffers one connection may hold at a time. */
#define NBD_MAX_QUEUED_BYTES (64u * 1024 * 1024)
/*
 * Payload buffers a connection keeps for reuse, and their total size: a
 * fresh buffer of a megabyte costs page faults on every request (or an
 * mmap/munmap pair), far more than the copy into it.
 */
#define NBD_BUF_CACHE_COUNT NBD_MAX_REQUESTS
#define NBD_BUF_CACHE_BYTES (16u * 1024 * 1024)
/* Buffer alignment: what O_DIRECT wants, so no driver has to bounce. */
#define NBD_BUF_ALIGN 4096
/*
 * Reads from this length on go from the image to the socket inside the
 * kernel when the block layer can do it (bd_blk_co_pread_to_fd()), on
 * UNIX sockets.  Shorter ones are cheaper copied: the copy is small, and
 * the zero-copy path costs a check and one more system call per reply.
 */
#define NBD_ZEROCOPY_MIN (64u * 1024)

struct NbdClient {
    gint refcnt;
    int fd;
    BdAioContext *main_ctx;
    BdAioContext *ctx;          /* where the connection runs now */
    gint closing;               /* nbd_client_close() was called */
    bool broken;                /* a send failed: the stream is lost */
    NbdTls *tls;                /* TLS is required (NULL: never offered) */
    bool tls_active;            /* after STARTTLS: all traffic is TLS */
    bool zerocopy;              /* reads may use bd_blk_co_pread_to_fd() */

    BdCoroutine *recv_waiter;   /* waits for the socket to be readable */
    BdCoroutine *send_waiter;   /* waits for it to be writable */
    BdCoroutine *slot_waiter;   /* the receiver, waiting for room */
    BdCoroutine *drain_waiter;  /* the connection, waiting for no requests */
    bool reg_read, reg_write;   /* what the fd handler watches now */

    NbdExport *exp;             /* bound by GO / EXPORT_NAME */
    bool structured;            /* structured replies (implied by extended) */
    bool extended;              /* extended headers */
    bool base_allocation;
    bool allocation_depth;
    NbdMetaBitmaps meta_bitmaps; /* qemu:dirty-bitmap contexts selected */
    char *meta_export;          /* export SET_META_CONTEXT was made for */

    BdCoMutex send_lock;
    unsigned in_flight;
    uint64_t queued_bytes;

    /* payload buffers for reuse (only the connection's thread) */
    void *buf_cache[NBD_BUF_CACHE_COUNT];
    uint64_t buf_cache_cap[NBD_BUF_CACHE_COUNT];
    unsigned buf_cached;
    uint64_t buf_cached_bytes;
};

typedef struct NbdReq {
    NbdClient *c;
    NbdRequest hdr;
    int ret;                    /* the check's verdict */
    char *errmsg;
    uint8_t *data;              /* READ/WRITE buffer */
    uint64_t buf_len;
    uint64_t buf_cap;           /* its allocated size */
} NbdReq;

/*
 * A payload buffer of at least @len bytes, aligned for O_DIRECT: a cached
 * one that fits without wasting more than its size, or a new one.  NULL
 * when memory is short.
 */
static void *buf_get(NbdClient *c, uint64_t len, uint64_t *cap)
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
static void buf_put(NbdClient *c, void *buf, uint64_t cap)
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

static void wake(NbdClient *c, BdCoroutine **waiter)
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
    wake(c, &c->recv_waiter);
}

static void client_writable(void *opaque)
{
    NbdClient *c = opaque;

    wake(c, &c->send_waiter);
}

static bool is_closing(NbdClient *c)
{
    return g_atomic_int_get(&c->closing);
}

/* coroutine_fn: wait until the socket is readable (or writable). */
static int wait_socket(NbdClient *c, bool write)
{
    if (write && (is_closing(c) || c->broken)) {
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
static int co_recv(NbdClient *c, void *buf, size_t len)
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
            int ret = wait_socket(c, c->tls_active && !c->send_waiter &&
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
static int co_skip(NbdClient *c, uint64_t len)
{
    uint8_t scratch[4096];

    while (len) {
        size_t n = MIN(len, sizeof(scratch));
        int ret = co_recv(c, scratch, n);

        if (ret < 0) {
            return ret;
        }
        len -= n;
    }
    return 0;
}

/* coroutine_fn: write all of @iov (modified). */
static int co_sendv(NbdClient *c, struct iovec *iov, int cnt)
{
    while (cnt) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
        ssize_t n = G_UNLIKELY(c->tls_active)
                    ? nbd_tls_sendv(c->tls, iov, cnt)
                    : sendmsg(c->fd, &msg, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int ret = wait_socket(c, true);

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

static int co_send(NbdClient *c, const void *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };

    return co_sendv(c, &iov, 1);
}

/* --- negotiation ---------------------------------------------------------------- */

/* coroutine_fn: an option reply with an optional payload. */
static int send_rep(NbdClient *c, uint32_t opt, uint32_t type,
                    const void *data, uint32_t len)
{
    uint8_t hdr[NBD_OPTION_REPLY_LEN];
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)data, len } };

    nbd_build_option_reply(hdr, opt, type, len);
    return co_sendv(c, iov, len ? 2 : 1);
}

/* coroutine_fn: an error reply carrying a message. */
static int G_GNUC_PRINTF(4, 5) send_rep_err(NbdClient *c, uint32_t opt,
                                            uint32_t type, const char *fmt,
                                            ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return send_rep(c, opt, type, msg, strlen(msg));
}

/* coroutine_fn: NBD_REP_INFO of @type with @len bytes of @data. */
static int send_info(NbdClient *c, uint32_t opt, uint16_t type,
                     const void *data, uint32_t len)
{
    g_autofree uint8_t *buf = g_malloc(2 + len);

    nbd_put16(buf, type);
    memcpy(buf + 2, data, len);
    return send_rep(c, opt, NBD_REP_INFO, buf, 2 + len);
}

/*
 * coroutine_fn: NBD_OPT_STARTTLS, with QEMU's replies.  0: next option;
 * negative: hang up (a bad STARTTLS before TLS, or a failed handshake).
 */
static int handle_starttls(NbdClient *c, uint32_t opt, uint32_t len)
{
    g_autoptr(GError) err = NULL;
    int ret;

    if (len) {
        /* QEMU names the option by its short name here */
        ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                           "option 'starttls' has unexpected length");
        /* a client that cannot even start TLS right is not kept */
        return ret < 0 || (c->tls && !c->tls_active) ? -EINVAL : 0;
    }
    if (!c->tls) {
        return send_rep_err(c, opt, NBD_REP_ERR_POLICY, "TLS not configured");
    }
    if (c->tls_active) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                            "TLS already enabled");
    }
    ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
    if (ret < 0) {
        return ret;
    }
    if (!nbd_tls_start(c->tls, &err)) {
        return -EIO;
    }
    while ((ret = nbd_tls_handshake(c->tls, &err)) == -EAGAIN) {
        ret = wait_socket(c, nbd_tls_wants_write(c->tls));
        if (ret < 0) {
            return ret;
        }
    }
    if (ret < 0) {
        return -EIO;
    }
    c->tls_active = true;
    /*
     * The spec: nothing negotiated before a successful STARTTLS survives
     * it (structured replies, extended headers, metadata contexts).  With
     * TLS required every such option was refused until now; forgetting
     * keeps that true whatever changes in the option loop.
     */
    c->structured = false;
    c->extended = false;
    c->base_allocation = false;
    c->allocation_depth = false;
    g_clear_pointer(&c->meta_export, g_free);
    return 0;
}

static uint16_t client_flags(NbdClient *c, NbdExport *e)
{
    return e->flags | (c->structured ? NBD_FLAG_SEND_DF : 0);
}

/* coroutine_fn: answer INFO or GO.  1: go to transmission; 0: next option. */
static int handle_info(NbdClient *c, uint32_t opt, const uint8_t *data,
                       uint32_t len)
{
    g_autoptr(GError) err = NULL;
    NbdInfoRequest req;
    NbdExport *e;
    BdNode *node;
    uint32_t align;
    uint8_t buf[12];
    int ret;

    if (!nbd_parse_info_request(data, len, &req, &err)) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID, "%s", err->message);
    }
    e = nbd_export_lookup(req.name);
    if (!e) {
        ret = send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN,
                           "export '%s' not present", req.name);
        nbd_info_request_clear(&req);
        return ret;
    }
    ret = 0;
    if (req.want_name) {
        ret = send_info(c, opt, NBD_INFO_NAME, e->name, strlen(e->name));
    }
    if (ret == 0 && req.want_description && e->description) {
        ret = send_info(c, opt, NBD_INFO_DESCRIPTION, e->description,
                        strlen(e->description));
    }
    node = bd_blk_get_node(bd_export_get_blk(e->exp));
    align = node ? bd_node_get_request_alignment(node) : 512;
    if (ret == 0) {
        uint32_t max = node ? bd_node_get_max_transfer(node) : 0;

        /*
         * As QEMU: the minimum is the node's request alignment for a
         * client that promised to honour it (and for INFO), else 1 (the
         * request layer aligns whatever comes); preferred at least 4 KiB;
         * the maximum the node's transfer limit, rounded down to the
         * alignment, at most what the server reads in one request.
         */
        max = max ? MIN(max, INT32_MAX) : INT32_MAX;
        max -= max % align;
        nbd_put32(buf, opt == NBD_OPT_INFO || req.want_block_size ? align
                                                                   : 1);
        nbd_put32(buf + 4, MAX(NBD_PREFERRED_BLOCK_SIZE, nbd_get32(buf)));
        nbd_put32(buf + 8, MIN(max, NBD_MAX_BUFFER_SIZE));
        ret = send_info(c, opt, NBD_INFO_BLOCK_SIZE, buf, 12);
    }
    if (ret == 0) {
        nbd_put64(buf, e->size);
        nbd_put16(buf + 8, client_flags(c, e));
        ret = send_info(c, opt, NBD_INFO_EXPORT, buf, 10);
    }
    if (ret == 0 && opt == NBD_OPT_INFO && !req.want_block_size &&
        align > 1) {
        /* a client that ignores the alignment would be slow: say so */
        nbd_info_request_clear(&req);
        return send_rep_err(c, opt, NBD_REP_ERR_BLOCK_SIZE_REQD,
                            "request NBD_INFO_BLOCK_SIZE to use this export");
    }
    nbd_info_request_clear(&req);
    if (ret == 0) {
        ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
    }
    if (ret < 0) {
        return ret;
    }
    if (opt == NBD_OPT_GO) {
        c->exp = e;
        return 1;
    }
    return 0;
}

/* coroutine_fn: one NBD_REP_META_CONTEXT reply. */
static int send_meta_context(NbdClient *c, uint32_t opt, uint32_t id,
                             const char *name)
{
    size_t n = strlen(name);
    g_autofree uint8_t *buf = g_malloc(4 + n);

    /* a list selects nothing: its ids mean nothing and are 0, as QEMU's */
    nbd_put32(buf, opt == NBD_OPT_LIST_META_CONTEXT ? 0 : id);
    memcpy(buf + 4, name, n);
    return send_rep(c, opt, NBD_REP_META_CONTEXT, buf, 4 + n);
}

static int handle_meta(NbdClient *c, uint32_t opt, const uint8_t *data,
                       uint32_t len)
{
    g_autoptr(GError) err = NULL;
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    NbdMetaRequest req;
    NbdMetaBitmaps bitmaps;
    NbdExport *e;
    bool base, depth;
    int ret;

    if (!c->structured) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                            "request option '%s' when structured reply is "
                            "not negotiated", nbd_opt_name(opt));
    }
    if (!nbd_parse_meta_request(data, len, &req, &err)) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID, "%s", err->message);
    }
    e = nbd_export_lookup(req.name);
    if (!e) {
        ret = send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN,
                           "export '%s' not present", req.name);
        nbd_meta_request_clear(&req);
        return ret;
    }
    base = nbd_meta_selects_base_allocation(&req, list);
    depth = e->allocation_depth &&
            nbd_meta_selects_allocation_depth(&req, list);
    nbd_meta_select_bitmaps(e, &req, list, &bitmaps);
    if (!list) {
        c->base_allocation = base;
        c->allocation_depth = depth;
        nbd_meta_bitmaps_clear(&c->meta_bitmaps);
        c->meta_bitmaps = bitmaps;
        g_free(c->meta_export);
        c->meta_export = g_strdup(req.name);
    }
    nbd_meta_request_clear(&req);
    /* in id order, as QEMU */
    ret = 0;
    if (base) {
        ret = send_meta_context(c, opt, NBD_META_ID_BASE_ALLOCATION,
                                NBD_META_BASE_ALLOCATION);
    }
    if (ret == 0 && depth) {
        ret = send_meta_context(c, opt, NBD_META_ID_ALLOCATION_DEPTH,
                                NBD_META_ALLOCATION_DEPTH);
    }
    for (unsigned i = 0; ret >= 0 && i < bitmaps.nr; i++) {
        g_autofree char *name = NULL;
        g_autofree uint8_t *buf = NULL;
        size_t n;

        if (!bitmaps.sel[i]) {
            continue;
        }
        name = nbd_meta_bitmap_context(e, i);
        n = strlen(name);
        buf = g_malloc(4 + n);
        nbd_put32(buf, NBD_META_ID_DIRTY_BITMAP + i);
        memcpy(buf + 4, name, n);
        ret = send_rep(c, opt, NBD_REP_META_CONTEXT, buf, 4 + n);
    }
    if (list) {
        nbd_meta_bitmaps_clear(&bitmaps);
    }
    return ret < 0 ? ret : send_rep(c, opt, NBD_REP_ACK, NULL, 0);
}

static int handle_list(NbdClient *c, uint32_t opt)
{
    for (GList *l = nbd_export_list(); l; l = l->next) {
        NbdExport *e = l->data;
        size_t nlen = strlen(e->name);
        size_t dlen = e->description ? strlen(e->description) : 0;
        g_autofree uint8_t *buf = g_malloc(4 + nlen + dlen);
        int ret;

        nbd_put32(buf, nlen);
        memcpy(buf + 4, e->name, nlen);
        if (dlen) {
            memcpy(buf + 4 + nlen, e->description, dlen);
        }
        ret = send_rep(c, opt, NBD_REP_SERVER, buf, 4 + nlen + dlen);
        if (ret < 0) {
            return ret;
        }
    }
    return send_rep(c, opt, NBD_REP_ACK, NULL, 0);
}

/* Options whose payload is parsed, and so read into memory. */
static bool option_has_data(uint32_t opt)
{
    return opt == NBD_OPT_EXPORT_NAME || opt == NBD_OPT_INFO ||
           opt == NBD_OPT_GO || opt == NBD_OPT_LIST_META_CONTEXT ||
           opt == NBD_OPT_SET_META_CONTEXT;
}

/* The most payload of option @opt (option_has_data()) read into memory. */
static uint32_t option_max_len(uint32_t opt)
{
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return NBD_MAX_STRING_SIZE;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return NBD_MAX_INFO_OPTION_SIZE;
    default:
        return NBD_MAX_META_OPTION_SIZE;
    }
}

/*
 * coroutine_fn: the handshake.  Returns 0 when the client entered the
 * transmission phase on c->exp, negative to hang up.
 */
static int negotiate(NbdClient *c)
{
    uint8_t greeting[NBD_HANDSHAKE_LEN], b4[4];
    g_autoptr(GError) err = NULL;
    bool fixed, no_zeroes;
    int ret;

    nbd_build_greeting(greeting);
    ret = co_send(c, greeting, sizeof(greeting));
    if (ret == 0) {
        ret = co_recv(c, b4, 4);
    }
    if (ret < 0) {
        return ret;
    }
    if (!nbd_parse_client_flags(nbd_get32(b4), &fixed, &no_zeroes, &err)) {
        return -EINVAL;
    }

    for (;;) {
        uint8_t hdr[NBD_OPTION_HEADER_LEN];
        g_autofree uint8_t *data = NULL;
        uint32_t opt, len;

        ret = co_recv(c, hdr, sizeof(hdr));
        if (ret < 0) {
            return ret;
        }
        if (!nbd_parse_option_header(hdr, &opt, &len, &err)) {
            return -EINVAL;
        }
        if (!fixed && opt != NBD_OPT_EXPORT_NAME) {
            return -EINVAL;
        }
        if (opt == NBD_OPT_EXPORT_NAME && len > NBD_MAX_STRING_SIZE) {
            return -EINVAL;
        }
        if (option_has_data(opt) && len <= option_max_len(opt)) {
            data = g_malloc(len ? len : 1);
            ret = co_recv(c, data, len);
        } else {
            ret = co_skip(c, len);
        }
        if (ret < 0) {
            return ret;
        }
        if (is_closing(c)) {
            send_rep_err(c, opt, NBD_REP_ERR_SHUTDOWN,
                         "Server is shutting down");
            return -ESHUTDOWN;
        }

        if (c->tls && !c->tls_active && opt != NBD_OPT_STARTTLS &&
            opt != NBD_OPT_ABORT) {
            if (opt == NBD_OPT_EXPORT_NAME) {
                return -EINVAL;     /* it has no error reply */
            }
            ret = send_rep_err(c, opt, NBD_REP_ERR_TLS_REQD,
                               "Option 0x%" PRIx32 " not permitted before "
                               "TLS", opt);
            if (ret < 0) {
                return ret;
            }
            continue;
        }

        if (option_has_data(opt) && len > option_max_len(opt)) {
            /* not stored: a valid request is never that long */
            ret = send_rep_err(c, opt, opt == NBD_OPT_INFO ||
                                       opt == NBD_OPT_GO
                                       ? NBD_REP_ERR_INVALID
                                       : NBD_REP_ERR_TOO_BIG,
                               "option '%s' too long (%" PRIu32 " bytes)",
                               nbd_opt_name(opt), len);
            if (ret < 0) {
                return ret;
            }
            continue;
        }

        switch (opt) {
        case NBD_OPT_EXPORT_NAME: {
            g_autofree char *name = NULL;
            uint8_t reply[NBD_EXPORT_NAME_REPLY_LEN + NBD_EXPORT_NAME_ZEROES];
            NbdExport *e;

            if (c->extended) {
                /*
                 * The spec forbids this option once extended headers are
                 * on (only GO may follow), and it has no error reply.
                 */
                return -EINVAL;
            }
            if (!nbd_parse_export_name(data, len, &name, &err)) {
                return -EINVAL;
            }
            e = nbd_export_lookup(name);
            if (!e) {
                return -ENOENT;     /* no way to say so but hanging up */
            }
            memset(reply, 0, sizeof(reply));
            nbd_put64(reply, e->size);
            nbd_put16(reply + 8, client_flags(c, e));
            ret = co_send(c, reply, no_zeroes ? NBD_EXPORT_NAME_REPLY_LEN
                                              : sizeof(reply));
            if (ret < 0) {
                return ret;
            }
            c->exp = e;
            break;
        }
        case NBD_OPT_ABORT:
            send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            return -ECONNRESET;
        case NBD_OPT_LIST:
            ret = len ? send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                     "option '%s' has unexpected length",
                                     nbd_opt_name(opt))
                      : handle_list(c, opt);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            ret = handle_info(c, opt, data, len);
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "option '%s' has unexpected length",
                                   nbd_opt_name(opt));
            } else if (c->extended) {
                /* extended headers already imply structured replies */
                ret = send_rep_err(c, opt, NBD_REP_ERR_EXT_HEADER_REQD,
                                   "extended headers already negotiated");
            } else if (c->structured) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "structured reply already negotiated");
            } else {
                c->structured = true;
                ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_EXTENDED_HEADERS:
            if (len) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "option '%s' has unexpected length",
                                   nbd_opt_name(opt));
            } else if (c->extended) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "extended headers already negotiated");
            } else {
                /* valid after STRUCTURED_REPLY too: it supersedes it */
                c->extended = true;
                c->structured = true;
                ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            ret = handle_meta(c, opt, data, len);
            break;
        case NBD_OPT_STARTTLS:
            ret = handle_starttls(c, opt, len);
            break;
        default:
            ret = send_rep_err(c, opt, NBD_REP_ERR_UNSUP,
                               "Unsupported option %" PRIu32 " (%s)", opt,
                               nbd_opt_name(opt));
            break;
        }
        if (ret < 0) {
            return ret;
        }
        if (c->exp) {
            if (c->meta_export && strcmp(c->meta_export, c->exp->name)) {
                /* contexts were selected for another export */
                c->base_allocation = false;
                c->allocation_depth = false;
                nbd_meta_bitmaps_clear(&c->meta_bitmaps);
            }
            if (c->meta_bitmaps.nr != c->exp->nr_bitmaps) {
                /* an export of that name came and went since */
                nbd_meta_bitmaps_clear(&c->meta_bitmaps);
            }
            return 0;
        }
    }
}

/* --- replies ------------------------------------------------------------------- */

/* coroutine_fn: send @iov under the send lock; a failure breaks the stream. */
static int send_locked(NbdClient *c, struct iovec *iov, int cnt)
{
    int ret;

    bd_co_mutex_lock(&c->send_lock);
    ret = c->broken ? -EPIPE : co_sendv(c, iov, cnt);
    if (ret < 0 && !c->broken) {
        c->broken = true;
        shutdown(c->fd, SHUT_RDWR);
    }
    bd_co_mutex_unlock(&c->send_lock);
    return ret;
}

static void send_simple(NbdClient *c, uint64_t cookie, int err,
                        void *data, size_t len)
{
    uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { data, len } };

    nbd_build_simple_reply(hdr, nbd_errno_to_wire(err), cookie);
    send_locked(c, iov, len ? 2 : 1);
}

/*
 * Build the header of a reply chunk to @req with @len bytes after it in
 * @hdr: a structured reply header or, with extended headers, an extended
 * one (which also carries the request's offset).  Returns its length.
 */
static size_t build_chunk(NbdClient *c, const NbdRequest *req,
                          uint16_t flags, uint16_t type, uint64_t len,
                          uint8_t hdr[NBD_EXTENDED_REPLY_LEN])
{
    if (c->extended) {
        nbd_build_extended_header(hdr, flags, type, req->cookie,
                                  req->offset, len);
        return NBD_EXTENDED_REPLY_LEN;
    }
    nbd_build_chunk_header(hdr, flags, type, req->cookie, len);
    return NBD_CHUNK_HEADER_LEN;
}

/* One reply chunk to @req. */
static void send_chunk(NbdClient *c, const NbdRequest *req, uint16_t flags,
                       uint16_t type, const void *head, size_t head_len,
                       void *data, size_t len)
{
    uint8_t hdr[NBD_EXTENDED_REPLY_LEN];
    struct iovec iov[3] = {
        { hdr, 0 }, { (void *)head, head_len }, { data, len },
    };

    iov[0].iov_len = build_chunk(c, req, flags, type, head_len + len, hdr);
    send_locked(c, iov, len ? 3 : (head_len ? 2 : 1));
}

static void send_error_chunk(NbdClient *c, const NbdRequest *req, int err,
                             const char *msg)
{
    size_t mlen = MIN(strlen(msg), NBD_MAX_STRING_SIZE);
    uint8_t head[6];

    nbd_put32(head, nbd_errno_to_wire(err));
    nbd_put16(head + 4, mlen);
    send_chunk(c, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, head, 6,
               (void *)msg, mlen);
}

/*
 * The reply of a command without data: QEMU's "generic reply".  With
 * extended headers there are no simple replies: success is an
 * NBD_REPLY_TYPE_NONE chunk.
 */
static void send_generic(NbdClient *c, const NbdRequest *req, int ret,
                         const char *msg)
{
    if (c->structured && ret < 0) {
        send_error_chunk(c, req, ret, msg);
    } else if (c->extended) {
        send_chunk(c, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, NULL, 0,
                   NULL, 0);
    } else {
        send_simple(c, req->cookie, ret, NULL, 0);
    }
}

/* --- commands ------------------------------------------------------------------- */

/*
 * coroutine_fn: the successful reply to a read of @len bytes at @off (all
 * of @r's request, or one OFFSET_DATA chunk of it, the last if @last),
 * with the data going from the image to the socket inside the kernel
 * (bd_blk_co_pread_to_fd()).  Returns 1 when the reply went out, 0 when
 * the zero-copy path is not available (nothing was sent: the caller reads
 * and replies the normal way), negative when the connection broke.
 *
 * Not with TLS: the data has to go through the TLS session.  Only on UNIX
 * sockets: over TCP (measured on loopback, tests/bench/README.md) the
 * client receives data that arrives as page references more slowly than
 * copied data, and one connection lost 15% of its rate; the daemon's CPU
 * time per read halves there too, but the rate is what counts.
 *
 * The header goes first and promises @len bytes of data.  If the image
 * stops supporting zero-copy midway (a page left the cache, the graph
 * changed), the rest is read into @buf and sent from there.  If reading
 * fails midway there is no way to tell the client: neither a simple
 * reply (its error field went out as 0) nor a chunk (its length is
 * fixed) can be taken back, so the connection is dropped.  The check
 * before the header makes that a real read error on data the page cache
 * just had, which is not expected to happen.
 */
static int send_read_zerocopy(NbdReq *r, BdBlockBackend *blk, uint64_t off,
                              uint64_t len, uint8_t *buf, bool last)
{
    NbdClient *c = r->c;
    uint8_t hdr[NBD_EXTENDED_REPLY_LEN], head[8];
    struct iovec iov[2] = { { hdr, 0 }, { head, 0 } };
    int cnt = 1;
    int ret;

    if (!c->zerocopy || c->tls_active || len < NBD_ZEROCOPY_MIN ||
        bd_blk_co_pread_to_fd(blk, off, len, -1, 0) < 0) {
        return 0;
    }
    if (!c->structured) {
        nbd_build_simple_reply(hdr, 0, r->hdr.cookie);
        iov[0].iov_len = NBD_SIMPLE_REPLY_LEN;
    } else {
        iov[0].iov_len = build_chunk(c, &r->hdr,
                                     last ? NBD_REPLY_FLAG_DONE : 0,
                                     NBD_REPLY_TYPE_OFFSET_DATA, 8 + len,
                                     hdr);
        nbd_put64(head, off);
        iov[1].iov_len = 8;
        cnt = 2;
    }

    bd_co_mutex_lock(&c->send_lock);
    ret = c->broken ? -EPIPE : co_sendv(c, iov, cnt);
    while (ret == 0 && len) {
        int64_t n = bd_blk_co_pread_to_fd(blk, off, len, c->fd, 0);

        if (n > 0) {
            off += n;
            buf += n;
            len -= n;
        } else if (n == -EAGAIN) {
            ret = wait_socket(c, true);
        } else if (n == -ENOTSUP) {
            ret = bd_blk_co_pread(blk, off, len, buf, 0);
            if (ret == 0) {
                ret = co_send(c, buf, len);
            }
            break;
        } else {
            ret = n;
        }
    }
    if (ret < 0 && !c->broken) {
        c->broken = true;
        shutdown(c->fd, SHUT_RDWR);
    }
    bd_co_mutex_unlock(&c->send_lock);
    return ret < 0 ? ret : 1;
}

/* coroutine_fn: a structured read, holes sent as OFFSET_HOLE. */
static void co_sparse_read(NbdReq *r, BdBlockBackend *blk)
{
    NbdClient *c = r->c;
    uint64_t done = 0, len = r->hdr.len;

    while (done < len) {
        uint64_t off = r->hdr.offset + done;
        int64_t pnum = 0;
        uint8_t head[12];
        bool last;
        int st;

        /*
         * want_zero=false, as QEMU's server asks: only what is known
         * cheaply (an unallocated or zero-reading region), never a search
         * for holes (lseek SEEK_DATA/SEEK_HOLE per read costs milliseconds
         * on a large tmpfs file).
         */
        st = bd_blk_co_block_status(blk, false, off, len - done, &pnum,
                                    NULL, NULL);
        if (st < 0 || pnum <= 0) {
            /* no status: just read the rest */
            st = BD_BLOCK_DATA;
            pnum = len - done;
        }
        pnum = MIN((uint64_t)pnum, len - done);
        last = done + pnum == len;
        nbd_put64(head, off);
        if (st & BD_BLOCK_ZERO) {
            nbd_put32(head + 8, pnum);
            send_chunk(c, &r->hdr, last ? NBD_REPLY_FLAG_DONE : 0,
                       NBD_REPLY_TYPE_OFFSET_HOLE, head, 12, NULL, 0);
        } else {
            int ret = send_read_zerocopy(r, blk, off, pnum, r->data + done,
                                         last);

            if (ret < 0) {
                return;
            }
            if (ret > 0) {
                done += pnum;
                continue;
            }
            ret = bd_blk_co_pread(blk, off, pnum, r->data + done, 0);
            if (ret < 0) {
                send_error_chunk(c, &r->hdr, ret,
                                 "reading from file failed");
                return;
            }
            send_chunk(c, &r->hdr, last ? NBD_REPLY_FLAG_DONE : 0,
                       NBD_REPLY_TYPE_OFFSET_DATA, head, 8, r->data + done,
                       pnum);
        }
        done += pnum;
    }
}

static void co_read(NbdReq *r, BdBlockBackend *blk)
{
    NbdClient *c = r->c;
    int ret;

    if (r->hdr.flags & NBD_CMD_FLAG_FUA) {
        ret = bd_blk_co_flush(blk);
        if (ret < 0) {
            send_generic(c, &r->hdr, ret, "flush failed");
            return;
        }
    }
    if (c->structured && !(r->hdr.flags & NBD_CMD_FLAG_DF) && r->hdr.len) {
        co_sparse_read(r, blk);
        return;
    }
    if (send_read_zerocopy(r, blk, r->hdr.offset, r->hdr.len, r->data,
                           true)) {
        return;
    }
    ret = bd_blk_co_pread(blk, r->hdr.offset, r->hdr.len, r->data, 0);
    if (ret < 0) {
        send_generic(c, &r->hdr, ret, "reading from file failed");
    } else if (!c->structured) {
        send_simple(c, r->hdr.cookie, 0, r->data, r->hdr.len);
    } else if (r->hdr.len) {
        uint8_t head[8];

        nbd_put64(head, r->hdr.offset);
        send_chunk(c, &r->hdr, NBD_REPLY_FLAG_DONE,
                   NBD_REPLY_TYPE_OFFSET_DATA, head, 8, r->data, r->hdr.len);
    } else {
        send_chunk(c, &r->hdr, NBD_REPLY_FLAG_DONE,
                   NBD_REPLY_TYPE_NONE, NULL, 0, NULL, 0);
    }
}

/* coroutine_fn: one chunk per selected context, in id order. */
static void co_block_status(NbdReq *r, BdBlockBackend *blk)
{
    NbdClient *c = r->c;
    NbdMetaBitmaps *mb = &c->meta_bitmaps;
    /* contexts in id order: base, depth, then the selected bitmaps */
    unsigned left = c->base_allocation + c->allocation_depth + mb->count;
    g_autoptr(GByteArray) a = g_byte_array_new();

    for (unsigned k = 0; left && k < NBD_META_ID_DIRTY_BITMAP + mb->nr;
         k++) {
        BdDirtyBitmap *bm = NULL;
        int ret;

        if (k == NBD_META_ID_BASE_ALLOCATION) {
            if (!c->base_allocation) {
                continue;
            }
        } else if (k == NBD_META_ID_ALLOCATION_DEPTH) {
            if (!c->allocation_depth) {
                continue;
            }
        } else if (!mb->sel[k - NBD_META_ID_DIRTY_BITMAP]) {
            continue;
        } else {
            bm = c->exp->bitmaps[k - NBD_META_ID_DIRTY_BITMAP];
        }
        ret = nbd_meta_block_status(blk, k, bm, r->hdr.offset, r->hdr.len,
                                    r->hdr.flags & NBD_CMD_FLAG_REQ_ONE,
                                    c->extended, a);
        if (ret < 0) {
            send_generic(c, &r->hdr, ret, "can't get block status");
            return;
        }
        send_chunk(c, &r->hdr, --left == 0 ? NBD_REPLY_FLAG_DONE : 0,
                   c->extended ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT
                               : NBD_REPLY_TYPE_BLOCK_STATUS,
                   a->data, a->len, NULL, 0);
    }
}

static void co_handle(NbdReq *r)
{
    NbdClient *c = r->c;
    BdBlockBackend *blk = bd_export_get_blk(c->exp->exp);
    BdRequestFlags flags = 0;
    int ret;

    if (r->hdr.flags & NBD_CMD_FLAG_FUA) {
        flags |= BD_REQ_FUA;
    }
    switch (r->hdr.type) {
    case NBD_CMD_READ:
        co_read(r, blk);
        break;
    case NBD_CMD_WRITE:
        ret = bd_blk_co_pwrite(blk, r->hdr.offset, r->hdr.len, r->data,
                               flags);
        send_generic(c, &r->hdr, ret, "writing to file failed");
        break;
    case NBD_CMD_WRITE_ZEROES:
        if (!(r->hdr.flags & NBD_CMD_FLAG_NO_HOLE)) {
            flags |= BD_REQ_MAY_UNMAP;
        }
        if (r->hdr.flags & NBD_CMD_FLAG_FAST_ZERO) {
            flags |= BD_REQ_NO_FALLBACK;
        }
        ret = bd_blk_co_pwrite_zeroes(blk, r->hdr.offset, r->hdr.len, flags);
        send_generic(c, &r->hdr, ret, "writing to file failed");
        break;
    case NBD_CMD_FLUSH:
        ret = bd_blk_co_flush(blk);
        send_generic(c, &r->hdr, ret, "flush failed");
        break;
    case NBD_CMD_TRIM:
        ret = bd_blk_co_pdiscard(blk, r->hdr.offset, r->hdr.len);
        if (ret >= 0 && (r->hdr.flags & NBD_CMD_FLAG_FUA)) {
            ret = bd_blk_co_flush(blk);
        }
        send_generic(c, &r->hdr, ret, "discard failed");
        break;
    case NBD_CMD_CACHE:
        /* no cache layer to fill: the data is as close as it gets */
        send_generic(c, &r->hdr, 0, NULL);
        break;
    case NBD_CMD_BLOCK_STATUS:
        co_block_status(r, blk);
        break;
    default:
        /* nbd_check_request() refused everything else */
        send_generic(c, &r->hdr, -EINVAL, "invalid request type");
        break;
    }
}

static void request_done(NbdReq *r)
{
    NbdClient *c = r->c;

    c->in_flight--;
    c->queued_bytes -= r->buf_len;
    buf_put(c, r->data, r->buf_cap);
    g_free(r->errmsg);
    g_free(r);
    wake(c, &c->slot_waiter);
    if (c->in_flight == 0) {
        if (is_closing(c)) {
            shutdown(c->fd, SHUT_RDWR);
        }
        wake(c, &c->drain_waiter);
    }
}

static void request_entry(void *opaque)
{
    NbdReq *r = opaque;

    if (r->ret == 0 && is_closing(r->c)) {
        r->ret = -ESHUTDOWN;
        r->errmsg = g_strdup("server is shutting down");
    }
    if (r->ret < 0) {
        if (r->hdr.type == NBD_CMD_READ && r->c->structured) {
            send_error_chunk(r->c, &r->hdr, r->ret, r->errmsg);
        } else {
            send_generic(r->c, &r->hdr, r->ret, r->errmsg);
        }
    } else {
        co_handle(r);
    }
    request_done(r);
}

/* coroutine_fn: read requests until the client goes or breaks the rules. */
static void receive_loop(NbdClient *c)
{
    NbdRequestLimits lim = {
        .size = c->exp->size,
        .read_only = c->exp->flags & NBD_FLAG_READ_ONLY,
        .structured_reply = c->structured,
        .extended = c->extended,
        /* any context selected allows BLOCK_STATUS */
        .base_allocation = c->base_allocation || c->meta_bitmaps.count,
        .allocation_depth = c->allocation_depth,
    };
    size_t hdr_len = c->extended ? NBD_EXTENDED_REQUEST_LEN : NBD_REQUEST_LEN;

    for (;;) {
        uint8_t hdr[NBD_EXTENDED_REQUEST_LEN];
        g_autoptr(GError) err = NULL;
        uint32_t payload;
        bool fatal;
        NbdReq *r;

        while (c->in_flight >= NBD_MAX_REQUESTS) {
            c->slot_waiter = bd_coroutine_self();
            bd_coroutine_yield();
        }
        if (c->broken || co_recv(c, hdr, hdr_len) < 0) {
            return;
        }
        r = g_new0(NbdReq, 1);
        r->c = c;
        if (!nbd_parse_request(hdr, c->extended, &r->hdr, &err)) {
            g_free(r);
            return;
        }
        if (r->hdr.type == NBD_CMD_DISC) {
            g_free(r);
            return;
        }
        if (nbd_check_request(&r->hdr, &lim, &payload, &fatal, &err) < 0) {
            /* QEMU 7.2 answers every refused request with EINVAL */
            r->ret = -EINVAL;
            r->errmsg = g_strdup(err->message);
        }
        if (r->ret == 0 && (r->hdr.type == NBD_CMD_READ ||
                            r->hdr.type == NBD_CMD_WRITE)) {
            /* wait for room: a client cannot pin more than the budget */
            while (c->in_flight &&
                   c->queued_bytes + r->hdr.len > NBD_MAX_QUEUED_BYTES) {
                c->slot_waiter = bd_coroutine_self();
                bd_coroutine_yield();
            }
            r->buf_len = r->hdr.len;
            r->data = buf_get(c, r->buf_len, &r->buf_cap);
            if (!r->data) {
                r->ret = -ENOMEM;
                r->errmsg = g_strdup("out of memory");
                r->buf_len = 0;
            }
        }
        if (payload) {
            int ret = r->data ? co_recv(c, r->data, payload)
                              : co_skip(c, payload);

            if (ret < 0) {
                buf_put(c, r->data, r->buf_cap);
                g_free(r->errmsg);
                g_free(r);
                return;
            }
        }
        c->in_flight++;
        c->queued_bytes += r->buf_len;
        /* runs as soon as this coroutine waits for the next request */
        bd_aio_co_enter(c->ctx, bd_coroutine_create(request_entry, r));
        if (fatal) {
            /* answered, but the stream cannot be resynchronised */
            return;
        }
    }
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

    if (negotiate(c) == 0) {
        BdAioContext *ctx = nbd_export_next_context(c->exp);

        bd_export_ref(c->exp->exp);
        if (ctx != c->ctx) {
            /* no waiters now; drop the read interest kept lazily */
            set_handlers(c, false, false);
            c->ctx = ctx;
            bd_aio_co_reschedule_self(ctx);
        }
        receive_loop(c);
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

NbdClient *nbd_client_new(int fd, NbdTlsConfig *tls)
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
    wake(c, &c->send_waiter);
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
