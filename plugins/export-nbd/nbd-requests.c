/*
 * export-nbd: the transmission phase of a connection: requests
 * (NBD_CMD_*) read and checked, each served in a coroutine of its own,
 * and their replies (simple or structured).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nbd-conn.h"
#include "nbd-proto.h"

/*
 * Reads from this length on go from the image to the socket inside the
 * kernel when the block layer can do it (bd_blk_co_pread_to_fd()), on
 * UNIX sockets.  Shorter ones are cheaper copied: the copy is small, and
 * the zero-copy path costs a check and one more system call per reply.
 */
#define NBD_ZEROCOPY_MIN (64u * 1024)

typedef struct NbdReq {
    NbdClient *c;
    NbdRequest hdr;
    int ret;                    /* the check's verdict */
    char *errmsg;
    uint8_t *data;              /* READ/WRITE buffer */
    uint64_t buf_len;
    uint64_t buf_cap;           /* its allocated size */
} NbdReq;

/* --- replies ------------------------------------------------------------------- */

/* coroutine_fn: send @iov under the send lock; a failure breaks the stream. */
static int send_locked(NbdClient *c, struct iovec *iov, int cnt)
{
    int ret;

    bd_co_mutex_lock(&c->send_lock);
    ret = c->broken ? -EPIPE : nbd_co_sendv(c, iov, cnt);
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
    ret = c->broken ? -EPIPE : nbd_co_sendv(c, iov, cnt);
    while (ret == 0 && len) {
        int64_t n = bd_blk_co_pread_to_fd(blk, off, len, c->fd, 0);

        if (n > 0) {
            off += n;
            buf += n;
            len -= n;
        } else if (n == -EAGAIN) {
            ret = nbd_conn_wait_socket(c, true);
        } else if (n == -ENOTSUP) {
            ret = bd_blk_co_pread(blk, off, len, buf, 0);
            if (ret == 0) {
                ret = nbd_co_send(c, buf, len);
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
    nbd_buf_put(c, r->data, r->buf_cap);
    g_free(r->errmsg);
    g_free(r);
    nbd_conn_wake(c, &c->slot_waiter);
    if (c->in_flight == 0) {
        if (nbd_conn_is_closing(c)) {
            shutdown(c->fd, SHUT_RDWR);
        }
        nbd_conn_wake(c, &c->drain_waiter);
    }
}

static void request_entry(void *opaque)
{
    NbdReq *r = opaque;

    if (r->ret == 0 && nbd_conn_is_closing(r->c)) {
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
void nbd_receive_loop(NbdClient *c)
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
        if (c->broken || nbd_co_recv(c, hdr, hdr_len) < 0) {
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
            r->data = nbd_buf_get(c, r->buf_len, &r->buf_cap);
            if (!r->data) {
                r->ret = -ENOMEM;
                r->errmsg = g_strdup("out of memory");
                r->buf_len = 0;
            }
        }
        if (payload) {
            int ret = r->data ? nbd_co_recv(c, r->data, payload)
                              : nbd_co_skip(c, payload);

            if (ret < 0) {
                nbd_buf_put(c, r->data, r->buf_cap);
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
