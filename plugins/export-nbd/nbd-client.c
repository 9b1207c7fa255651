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
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd-int.h"
#include "nbd-proto.h"

/* QEMU's limit of requests in flight per connection. */
#define NBD_MAX_REQUESTS 16
/* Payload buffers one connection may hold at a time. */
#define NBD_MAX_QUEUED_BYTES (64u * 1024 * 1024)
/* Most extents in one base:allocation reply (a 1 MiB payload). */
#define NBD_MAX_EXTENTS (1024 * 1024 / 8)

struct NbdClient {
    gint refcnt;
    int fd;
    BdAioContext *main_ctx;
    BdAioContext *ctx;          /* where the connection runs now */
    gint closing;               /* nbd_client_close() was called */
    bool broken;                /* a send failed: the stream is lost */

    BdCoroutine *recv_waiter;   /* waits for the socket to be readable */
    BdCoroutine *send_waiter;   /* waits for it to be writable */
    BdCoroutine *slot_waiter;   /* the receiver, waiting for room */
    BdCoroutine *drain_waiter;  /* the connection, waiting for no requests */

    NbdExport *exp;             /* bound by GO / EXPORT_NAME */
    bool structured;
    bool base_allocation;
    char *meta_export;          /* export SET_META_CONTEXT was made for */

    BdCoMutex send_lock;
    unsigned in_flight;
    uint64_t queued_bytes;
};

typedef struct NbdReq {
    NbdClient *c;
    NbdRequest hdr;
    int ret;                    /* the check's verdict */
    char *errmsg;
    uint8_t *data;              /* READ/WRITE buffer */
    uint64_t buf_len;
} NbdReq;

/* --- socket waits ------------------------------------------------------------ */

static void client_readable(void *opaque);
static void client_writable(void *opaque);

static void update_handlers(NbdClient *c)
{
    bd_aio_set_fd_handler(c->ctx, c->fd,
                          c->recv_waiter ? client_readable : NULL,
                          c->send_waiter ? client_writable : NULL,
                          NULL, c);
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
        ssize_t n = recv(c->fd, p, len, 0);

        if (n > 0) {
            p += n;
            len -= n;
        } else if (n == 0) {
            return -EPIPE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_socket(c, false);
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
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);

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
    if (ret == 0) {
        /* the minimum is 1 unless the client promised to align */
        nbd_put32(buf, 1);
        nbd_put32(buf + 4, NBD_PREFERRED_BLOCK_SIZE);
        nbd_put32(buf + 8, NBD_MAX_BUFFER_SIZE);
        ret = send_info(c, opt, NBD_INFO_BLOCK_SIZE, buf, 12);
    }
    if (ret == 0) {
        nbd_put64(buf, e->size);
        nbd_put16(buf + 8, client_flags(c, e));
        ret = send_info(c, opt, NBD_INFO_EXPORT, buf, 10);
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

static int handle_meta(NbdClient *c, uint32_t opt, const uint8_t *data,
                       uint32_t len)
{
    g_autoptr(GError) err = NULL;
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    NbdMetaRequest req;
    bool selected;
    int ret;

    if (!c->structured) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                            "request option '%s' when structured reply is "
                            "not negotiated", nbd_opt_name(opt));
    }
    if (!nbd_parse_meta_request(data, len, &req, &err)) {
        return send_rep_err(c, opt, NBD_REP_ERR_INVALID, "%s", err->message);
    }
    if (!nbd_export_lookup(req.name)) {
        ret = send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN,
                           "export '%s' not present", req.name);
        nbd_meta_request_clear(&req);
        return ret;
    }
    selected = nbd_meta_selects_base_allocation(&req, list);
    if (!list) {
        c->base_allocation = selected;
        g_free(c->meta_export);
        c->meta_export = g_strdup(req.name);
    }
    nbd_meta_request_clear(&req);
    ret = 0;
    if (selected) {
        size_t n = strlen(NBD_META_BASE_ALLOCATION);
        uint8_t buf[4 + sizeof(NBD_META_BASE_ALLOCATION)];

        nbd_put32(buf, NBD_META_ID_BASE_ALLOCATION);
        memcpy(buf + 4, NBD_META_BASE_ALLOCATION, n);
        ret = send_rep(c, opt, NBD_REP_META_CONTEXT, buf, 4 + n);
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
        if (option_has_data(opt)) {
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

        switch (opt) {
        case NBD_OPT_EXPORT_NAME: {
            g_autofree char *name = NULL;
            uint8_t reply[NBD_EXPORT_NAME_REPLY_LEN + NBD_EXPORT_NAME_ZEROES];
            NbdExport *e;

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
            } else if (c->structured) {
                ret = send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                                   "structured reply already negotiated");
            } else {
                c->structured = true;
                ret = send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            ret = handle_meta(c, opt, data, len);
            break;
        case NBD_OPT_STARTTLS:
            ret = send_rep_err(c, opt, NBD_REP_ERR_POLICY,
                               "TLS not configured");
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

static void send_chunk(NbdClient *c, uint64_t cookie, uint16_t flags,
                       uint16_t type, const void *head, size_t head_len,
                       void *data, size_t len)
{
    uint8_t hdr[NBD_CHUNK_HEADER_LEN];
    struct iovec iov[3] = {
        { hdr, sizeof(hdr) }, { (void *)head, head_len }, { data, len },
    };

    nbd_build_chunk_header(hdr, flags, type, cookie, head_len + len);
    send_locked(c, iov, len ? 3 : (head_len ? 2 : 1));
}

static void send_error_chunk(NbdClient *c, uint64_t cookie, int err,
                             const char *msg)
{
    size_t mlen = MIN(strlen(msg), NBD_MAX_STRING_SIZE);
    uint8_t head[6];

    nbd_put32(head, nbd_errno_to_wire(err));
    nbd_put16(head + 4, mlen);
    send_chunk(c, cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, head, 6,
               (void *)msg, mlen);
}

/* The reply of a command without data: QEMU's "generic reply". */
static void send_generic(NbdClient *c, uint64_t cookie, int ret,
                         const char *msg)
{
    if (c->structured && ret < 0) {
        send_error_chunk(c, cookie, ret, msg);
    } else {
        send_simple(c, cookie, ret, NULL, 0);
    }
}

/* --- commands ------------------------------------------------------------------- */

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
            send_chunk(c, r->hdr.cookie, last ? NBD_REPLY_FLAG_DONE : 0,
                       NBD_REPLY_TYPE_OFFSET_HOLE, head, 12, NULL, 0);
        } else {
            int ret = bd_blk_co_pread(blk, off, pnum, r->data + done, 0);

            if (ret < 0) {
                send_error_chunk(c, r->hdr.cookie, ret,
                                 "reading from file failed");
                return;
            }
            send_chunk(c, r->hdr.cookie, last ? NBD_REPLY_FLAG_DONE : 0,
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
            send_generic(c, r->hdr.cookie, ret, "flush failed");
            return;
        }
    }
    if (c->structured && !(r->hdr.flags & NBD_CMD_FLAG_DF) && r->hdr.len) {
        co_sparse_read(r, blk);
        return;
    }
    ret = bd_blk_co_pread(blk, r->hdr.offset, r->hdr.len, r->data, 0);
    if (ret < 0) {
        send_generic(c, r->hdr.cookie, ret, "reading from file failed");
    } else if (!c->structured) {
        send_simple(c, r->hdr.cookie, 0, r->data, r->hdr.len);
    } else if (r->hdr.len) {
        uint8_t head[8];

        nbd_put64(head, r->hdr.offset);
        send_chunk(c, r->hdr.cookie, NBD_REPLY_FLAG_DONE,
                   NBD_REPLY_TYPE_OFFSET_DATA, head, 8, r->data, r->hdr.len);
    } else {
        send_chunk(c, r->hdr.cookie, NBD_REPLY_FLAG_DONE,
                   NBD_REPLY_TYPE_NONE, NULL, 0, NULL, 0);
    }
}

static void co_block_status(NbdReq *r, BdBlockBackend *blk)
{
    NbdClient *c = r->c;
    unsigned max = (r->hdr.flags & NBD_CMD_FLAG_REQ_ONE) ? 1
                                                          : NBD_MAX_EXTENTS;
    GByteArray *a = g_byte_array_new();
    uint64_t off = r->hdr.offset, end = r->hdr.offset + r->hdr.len;
    unsigned count = 0;
    uint32_t last_len = 0, last_flags = 0;
    uint8_t head[4];

    while (off < end) {
        int64_t pnum = 0;
        int st = bd_blk_co_block_status(blk, true, off, end - off, &pnum,
                                        NULL, NULL);
        uint32_t flags;

        if (st < 0) {
            send_generic(c, r->hdr.cookie, st, "can't get block status");
            g_byte_array_unref(a);
            return;
        }
        if (pnum <= 0) {
            break;
        }
        flags = (st & BD_BLOCK_DATA ? 0 : NBD_STATE_HOLE) |
                (st & BD_BLOCK_ZERO ? NBD_STATE_ZERO : 0);
        while (pnum > 0) {
            uint32_t room, n;

            if (count && flags == last_flags && last_len < UINT32_MAX) {
                /* extend the previous extent, as far as 32 bits allow */
                room = UINT32_MAX - last_len;
                n = MIN((uint64_t)pnum, room);
                last_len += n;
                nbd_put32(a->data + a->len - 8, last_len);
            } else {
                uint8_t ext[8];

                if (count == max) {
                    goto done;
                }
                n = MIN((uint64_t)pnum, UINT32_MAX);
                nbd_put32(ext, n);
                nbd_put32(ext + 4, flags);
                g_byte_array_append(a, ext, 8);
                count++;
                last_len = n;
                last_flags = flags;
            }
            pnum -= n;
            off += n;
        }
    }
done:
    nbd_put32(head, NBD_META_ID_BASE_ALLOCATION);
    send_chunk(c, r->hdr.cookie, NBD_REPLY_FLAG_DONE,
               NBD_REPLY_TYPE_BLOCK_STATUS, head, 4, a->data, a->len);
    g_byte_array_unref(a);
}

static void co_handle(NbdReq *r)
{
    NbdClient *c = r->c;
    BdBlockBackend *blk = bd_export_get_blk(c->exp->exp);
    uint64_t cookie = r->hdr.cookie;
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
        send_generic(c, cookie, ret, "writing to file failed");
        break;
    case NBD_CMD_WRITE_ZEROES:
        if (!(r->hdr.flags & NBD_CMD_FLAG_NO_HOLE)) {
            flags |= BD_REQ_MAY_UNMAP;
        }
        if (r->hdr.flags & NBD_CMD_FLAG_FAST_ZERO) {
            flags |= BD_REQ_NO_FALLBACK;
        }
        ret = bd_blk_co_pwrite_zeroes(blk, r->hdr.offset, r->hdr.len, flags);
        send_generic(c, cookie, ret, "writing to file failed");
        break;
    case NBD_CMD_FLUSH:
        ret = bd_blk_co_flush(blk);
        send_generic(c, cookie, ret, "flush failed");
        break;
    case NBD_CMD_TRIM:
        ret = bd_blk_co_pdiscard(blk, r->hdr.offset, r->hdr.len);
        if (ret >= 0 && (r->hdr.flags & NBD_CMD_FLAG_FUA)) {
            ret = bd_blk_co_flush(blk);
        }
        send_generic(c, cookie, ret, "discard failed");
        break;
    case NBD_CMD_CACHE:
        /* no cache layer to fill: the data is as close as it gets */
        send_generic(c, cookie, 0, NULL);
        break;
    case NBD_CMD_BLOCK_STATUS:
        co_block_status(r, blk);
        break;
    default:
        /* nbd_check_request() refused everything else */
        send_generic(c, cookie, -EINVAL, "invalid request type");
        break;
    }
}

static void request_done(NbdReq *r)
{
    NbdClient *c = r->c;

    c->in_flight--;
    c->queued_bytes -= r->buf_len;
    g_free(r->data);
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
            send_error_chunk(r->c, r->hdr.cookie, r->ret, r->errmsg);
        } else {
            send_generic(r->c, r->hdr.cookie, r->ret, r->errmsg);
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
        .base_allocation = c->base_allocation,
    };

    for (;;) {
        uint8_t hdr[NBD_REQUEST_LEN];
        g_autoptr(GError) err = NULL;
        uint32_t payload;
        bool fatal;
        NbdReq *r;

        while (c->in_flight >= NBD_MAX_REQUESTS) {
            c->slot_waiter = bd_coroutine_self();
            bd_coroutine_yield();
        }
        if (c->broken || co_recv(c, hdr, sizeof(hdr)) < 0) {
            return;
        }
        r = g_new0(NbdReq, 1);
        r->c = c;
        if (!nbd_parse_request(hdr, false, &r->hdr, &err)) {
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
            r->data = g_try_malloc(MAX(r->buf_len, 1));
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
                g_free(r->data);
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

/* A coroutine on its way to another context (see client_entry()). */
typedef struct ClientMove {
    BdCoroutine *co;
    BdAioContext *ctx;
} ClientMove;

static void client_move_bh(void *opaque)
{
    ClientMove *m = opaque;

    bd_aio_co_schedule(m->ctx, m->co);
}

static void client_entry(void *opaque)
{
    NbdClient *c = opaque;

    if (negotiate(c) == 0) {
        BdAioContext *ctx = bd_export_get_aio_context(c->exp->exp);

        bd_export_ref(c->exp->exp);
        if (ctx != c->ctx) {
            /*
             * Scheduled in @ctx straight from here, the coroutine could
             * be entered by @ctx's thread before it has yielded in this
             * one.  A bottom half of the main loop runs only after the
             * yield.  No waiters now, so no handlers are registered.
             */
            ClientMove m = { bd_coroutine_self(), ctx };

            c->ctx = ctx;
            bd_aio_bh_schedule_oneshot(c->main_ctx, client_move_bh, &m);
            bd_coroutine_yield();
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
    bd_aio_bh_schedule_oneshot(c->main_ctx, client_finish, c);
}

NbdClient *nbd_client_new(int fd)
{
    NbdClient *c = g_new0(NbdClient, 1);

    c->refcnt = 1;
    c->fd = fd;
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
        close(c->fd);
        g_free(c->meta_export);
        g_free(c);
    }
}
