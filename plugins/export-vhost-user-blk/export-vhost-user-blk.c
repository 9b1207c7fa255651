/*
 * export-vhost-user-blk: a block node served as a virtio-blk device over
 * a vhost-user socket (type=vhost-user-blk exports), with
 * qemu-storage-daemon 7.2's options.
 *
 * One front end at a time, as qemu-storage-daemon: while a client is
 * connected the listening socket is not watched, so a second one waits
 * in the backlog.  The client's messages are read and answered by a
 * coroutine in the export's AioContext (the control thread).  Each
 * virtqueue is served in its own context: the export's, or with
 * 'iothread' given as a list, queue i in the (i mod n)-th IOThread.  A
 * kick pops every available request and runs each in a coroutine of the
 * queue's context, so many are in flight at once; their data moves
 * between the node and guest memory in place (the guest's buffers are
 * the request's I/O vector).
 *
 * In-flight tracking (INFLIGHT_SHMFD): the front end keeps a buffer in
 * which each queue records the requests it has popped and not finished;
 * a daemon started again after a crash (QEMU's chardev with reconnect=N)
 * submits those again before anything new, so that the guest sees its
 * requests complete instead of an error.
 *
 * A front end that breaks the protocol (a bad message, a bad descriptor
 * chain) is disconnected with a line on stderr; the export then listens
 * again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <blockd/blockd.h>

#include "vhost-user.h"
#include "virtio-blk.h"

#include "export-vhost-user-blk-schema.h"

/*
 * Trace points: a queue starting or stopping in its thread, and every
 * request with the queue and the thread serving it (so that tests see
 * which IOThread carries which queue).
 */
BD_TRACE_DEFINE(tp_queue_start, "export_vhost_user_blk_queue_start");
BD_TRACE_DEFINE(tp_queue_stop, "export_vhost_user_blk_queue_stop");
BD_TRACE_DEFINE(tp_request, "export_vhost_user_blk_request");

/* The serial number GET_ID returns, as qemu-storage-daemon's. */
#define VUB_SERIAL "vhost_user_blk"
/* The virtqueue size the config space's seg_max is derived from (QEMU). */
#define VUB_QUEUE_SIZE 128

typedef struct VubExport VubExport;
typedef struct VubConn VubConn;

typedef struct VubQueue {
    VubConn *conn;
    unsigned index;
    BdAioContext *ctx;
    VuVirtq *vq;
    int kick_fd;                /* registered in ctx, or -1 */
    bool broken;                /* the ring was bad: stop popping */
    BdCoroutine *drain_waiter;  /* the control coroutine, in queue_stop */
    bool draining;              /* queue thread: wake it at 0 in flight */
    bool in_batch;              /* vub_process() runs: notify at its end */
    bool notify_pending;
} VubQueue;

struct VubConn {
    VubExport *ve;
    int fd;
    VuDev *dev;
    BdCoroutine *co;
    bool waiting;               /* co waits for the socket */
    VubQueue *queues;
};

struct VubExport {
    BdExport *exp;
    VirtioBlk vb;
    BdAioContext *ctx;          /* the control thread */
    BdAioContext *main_ctx;
    BdAioContext **qctx;        /* per queue */
    unsigned num_queues;
    int listen_fd;
    BdSocketFile *socket_file;
    VubConn *conn;              /* main loop's view: the client, or NULL */
    bool shutdown_ref;          /* a reference held until conn has gone */
};

/* One request: the element and its room (VuElem.opaque). */
typedef struct VubReq {
    VubQueue *q;
} VubReq;

static void vub_listen(VubExport *ve, bool on);

/* --- requests, in the queue's context ------------------------------------------ */

static void vub_req_co(void *opaque)
{
    VuElem *elem = opaque;
    VubReq *req = elem->opaque;
    VubQueue *q = req->q;
    VubExport *ve = q->conn->ve;
    uint32_t len;

    BD_TRACE(&tp_request, "export %s queue %u thread %d out %u in %u",
             bd_export_get_id(ve->exp), q->index, (int)gettid(),
             elem->out_num, elem->in_num);
    len = virtio_blk_co_handle(&ve->vb, elem->out_sg, elem->out_num,
                               elem->in_sg, elem->in_num);
    vu_virtq_push(q->vq, elem, len);
    if (q->in_batch) {
        /* Completed at once: one interrupt for the whole batch. */
        q->notify_pending = true;
    } else {
        vu_virtq_notify(q->vq);
    }
    g_free(elem);
    if (q->draining && vu_virtq_inflight(q->vq) == 0) {
        q->draining = false;
        bd_aio_co_wake(q->drain_waiter);
    }
}

static void vub_conn_abort(VubConn *c, const char *why)
{
    fprintf(stderr, "vhost-user-blk export '%s': %s; disconnecting the "
            "front end\n", bd_export_get_id(c->ve->exp), why);
    /* The control coroutine sees the end of the socket and cleans up. */
    shutdown(c->fd, SHUT_RDWR);
}

/* Pop and start every available request. */
static void vub_process(VubQueue *q)
{
    char err[256];

    if (q->broken) {
        return;
    }
    q->in_batch = true;
    for (;;) {
        VuElem *elem;

        while ((elem = vu_virtq_pop(q->vq, sizeof(VubReq), err,
                                    sizeof(err)))) {
            VubReq *req = elem->opaque;
            BdCoroutine *co;

            req->q = q;
            co = bd_coroutine_create(vub_req_co, elem);
            bd_aio_co_enter(q->ctx, co);
        }
        if (err[0]) {
            q->broken = true;
            vub_conn_abort(q->conn, err);
            break;
        }
        if (!vu_virtq_enable_notification(q->vq)) {
            break;
        }
    }
    q->in_batch = false;
    if (q->notify_pending) {
        q->notify_pending = false;
        vu_virtq_notify(q->vq);
    }
}

static void vub_kick(void *opaque)
{
    VubQueue *q = opaque;
    eventfd_t v;

    /* Non-blocking (see vub_queue_start): a kick read by another is fine. */
    eventfd_read(q->kick_fd, &v);
    vub_process(q);
}

/*
 * The loop's busy polling: requests the guest made available are served
 * without waiting for (or even needing) its kick.
 */
static bool vub_poll(void *opaque)
{
    VubQueue *q = opaque;

    if (q->broken || !vu_virtq_has_work(q->vq)) {
        return false;
    }
    vub_process(q);
    return true;
}

/* In the queue's thread: serve @q's kicks from now on. */
static void vub_queue_attach_bh(void *opaque)
{
    VubQueue *q = opaque;

    BD_TRACE(&tp_queue_start, "export %s queue %u thread %d",
             bd_export_get_id(q->conn->ve->exp), q->index, (int)gettid());
    bd_aio_set_fd_handler(q->ctx, q->kick_fd, vub_kick, NULL, vub_poll, q);
    /* Requests may have been made before the kick fd was watched. */
    vub_process(q);
}

/*
 * In the queue's thread: stop serving kicks, then wake the control
 * coroutine once the last request in flight has been pushed.
 */
static void vub_queue_detach_bh(void *opaque)
{
    VubQueue *q = opaque;

    BD_TRACE(&tp_queue_stop, "export %s queue %u in flight %u",
             bd_export_get_id(q->conn->ve->exp), q->index,
             vu_virtq_inflight(q->vq));
    bd_aio_set_fd_handler(q->ctx, q->kick_fd, NULL, NULL, NULL, NULL);
    q->kick_fd = -1;
    if (vu_virtq_inflight(q->vq) == 0) {
        bd_aio_co_wake(q->drain_waiter);
    } else {
        q->draining = true;
    }
}

static void vub_queue_start(VuDev *dev, unsigned index)
{
    VubConn *c = vu_dev_get_opaque(dev);
    VubQueue *q = &c->queues[index];

    q->vq = vu_dev_get_queue(dev, index);
    q->kick_fd = vu_virtq_kick_fd(q->vq);
    q->broken = false;
    /*
     * A front end may hand over a blocking eventfd (QEMU's is not): a
     * read of a kick it consumed itself must not stall the thread.
     */
    fcntl(q->kick_fd, F_SETFL, fcntl(q->kick_fd, F_GETFL) | O_NONBLOCK);
    bd_aio_bh_schedule_oneshot(q->ctx, vub_queue_attach_bh, q);
}

/* coroutine_fn (the control coroutine): returns with @index quiescent. */
static void vub_queue_stop(VuDev *dev, unsigned index)
{
    VubConn *c = vu_dev_get_opaque(dev);
    VubQueue *q = &c->queues[index];

    q->drain_waiter = bd_coroutine_self();
    bd_aio_bh_schedule_oneshot(q->ctx, vub_queue_detach_bh, q);
    bd_coroutine_yield();
}

static uint64_t vub_get_features(VuDev *dev)
{
    VubConn *c = vu_dev_get_opaque(dev);

    return virtio_blk_features(&c->ve->vb);
}

static bool vub_get_config(VuDev *dev, uint8_t *buf, uint32_t offset,
                           uint32_t size)
{
    VubConn *c = vu_dev_get_opaque(dev);
    VirtioBlkConfig cfg;

    virtio_blk_fill_config(&c->ve->vb, &cfg);
    memset(buf, 0, size);
    if (offset < sizeof(cfg)) {
        memcpy(buf, (uint8_t *)&cfg + offset,
               MIN(size, sizeof(cfg) - offset));
    }
    return true;
}

static bool vub_set_config(VuDev *dev, const uint8_t *data, uint32_t offset,
                           uint32_t size, uint32_t flags)
{
    VubConn *c = vu_dev_get_opaque(dev);

    return virtio_blk_set_config(&c->ve->vb, data, offset, size);
}

static const VuDevOps vub_dev_ops = {
    .get_features = vub_get_features,
    .get_config = vub_get_config,
    .set_config = vub_set_config,
    .queue_start = vub_queue_start,
    .queue_stop = vub_queue_stop,
};

/* --- the control coroutine ------------------------------------------------------ */

static void vub_conn_readable(void *opaque)
{
    VubConn *c = opaque;

    if (c->waiting) {
        c->waiting = false;
        bd_aio_set_fd_handler(c->ve->ctx, c->fd, NULL, NULL, NULL, NULL);
        bd_aio_co_wake(c->co);
    }
}

/* coroutine_fn: wait until the socket is readable (or closed). */
static void vub_wait_readable(VubConn *c)
{
    c->waiting = true;
    bd_aio_set_fd_handler(c->ve->ctx, c->fd, vub_conn_readable, NULL, NULL,
                          c);
    bd_coroutine_yield();
}

/*
 * coroutine_fn: read exactly @len bytes, collecting the descriptors that
 * come along into @fds (at most VU_MAX_FDS; more is an error).  Returns 0,
 * or -1 at the end of the stream or on an error (@err set).
 */
static int vub_read_full(VubConn *c, void *buf, size_t len, int *fds,
                         int *nfds, char *err, size_t errlen)
{
    size_t done = 0;

    while (done < len) {
        union {
            char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {
            .iov_base = (char *)buf + done, .iov_len = len - done,
        };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
        };
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            vub_wait_readable(c);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            snprintf(err, errlen, "%s", n == 0 ? "" : g_strerror(errno));
            return -1;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
             cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                int k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *p = (int *)CMSG_DATA(cm);

                for (int i = 0; i < k; i++) {
                    if (*nfds < VU_MAX_FDS) {
                        fds[(*nfds)++] = p[i];
                    } else {
                        close(p[i]);
                        snprintf(err, errlen, "more than %d file descriptors "
                                 "with one message", VU_MAX_FDS);
                        return -1;
                    }
                }
            }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            snprintf(err, errlen, "more than %d file descriptors with one "
                     "message", VU_MAX_FDS);
            return -1;
        }
        done += n;
    }
    return 0;
}

/*
 * Send a reply whole, with @fd (if >= 0) in the first part; a front end
 * that does not read is dropped.
 */
static bool vub_send(VubConn *c, const VuMsg *reply, int fd)
{
    size_t len = sizeof(reply->hdr) + reply->hdr.size;
    const char *p = (const char *)reply;

    while (len > 0) {
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (fd >= 0) {
            struct cmsghdr *cm;

            memset(&u, 0, sizeof(u));
            mh.msg_control = u.buf;
            mh.msg_controllen = sizeof(u.buf);
            cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        }
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        fd = -1;
        p += n;
        len -= n;
    }
    return true;
}

/* Main loop: the connection is gone; listen again. */
static void vub_conn_done_bh(void *opaque)
{
    VubConn *c = opaque;
    VubExport *ve = c->ve;

    ve->conn = NULL;
    g_free(c->queues);
    g_free(c);
    if (!bd_export_is_shutting_down(ve->exp)) {
        vub_listen(ve, true);
    }
    if (ve->shutdown_ref) {
        ve->shutdown_ref = false;
        bd_export_unref(ve->exp);
    }
}

static void vub_conn_co(void *opaque)
{
    VubConn *c = opaque;
    VubExport *ve = c->ve;
    char err[512] = "";

    for (;;) {
        VuMsg msg, reply;
        int fds[VU_MAX_FDS];
        int nfds = 0;
        int ret;

        memset(&msg, 0, sizeof(msg));
        if (vub_read_full(c, &msg.hdr, sizeof(msg.hdr), fds, &nfds, err,
                          sizeof(err)) < 0) {
            goto drop_fds;
        }
        if (!vu_msg_check_header(&msg.hdr, err, sizeof(err))) {
            goto drop_fds;
        }
        if (msg.hdr.size &&
            vub_read_full(c, &msg.payload, msg.hdr.size, fds, &nfds, err,
                          sizeof(err)) < 0) {
            if (!err[0]) {
                snprintf(err, sizeof(err), "the front end left in the "
                         "middle of a message");
            }
            goto drop_fds;
        }
        ret = vu_dev_process_msg(c->dev, &msg, fds, nfds, &reply, err,
                                 sizeof(err));
        if (ret < 0) {
            break;
        }
        if (ret > 0) {
            int rfd = vu_dev_take_reply_fd(c->dev);
            bool sent = vub_send(c, &reply, rfd);

            if (rfd >= 0) {
                close(rfd);
            }
            if (!sent) {
                snprintf(err, sizeof(err), "cannot send the reply to %s",
                         vu_request_name(msg.hdr.request));
                break;
            }
        }
        continue;
drop_fds:
        for (int i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        break;
    }
    if (err[0]) {
        fprintf(stderr, "vhost-user-blk export '%s': %s; disconnecting the "
                "front end\n", bd_export_get_id(ve->exp), err);
    }
    /* Stops every queue (waiting for what is in flight), unmaps memory. */
    vu_dev_free(c->dev);
    c->dev = NULL;
    bd_aio_set_fd_handler(ve->ctx, c->fd, NULL, NULL, NULL, NULL);
    close(c->fd);
    bd_aio_bh_schedule_oneshot(ve->main_ctx, vub_conn_done_bh, c);
}

static void vub_conn_start_bh(void *opaque)
{
    VubConn *c = opaque;

    c->co = bd_coroutine_create(vub_conn_co, c);
    bd_aio_co_enter(c->ve->ctx, c->co);
}

/* --- listening, main loop ------------------------------------------------------ */

static void vub_accept(void *opaque)
{
    VubExport *ve = opaque;
    bool exhausted;
    VubConn *c;
    int fd;

    fd = bd_socket_accept(ve->listen_fd, "vhost-user-blk export",
                          &exhausted);
    if (fd < 0) {
        /* Out of descriptors: keep watching, the next client retries. */
        return;
    }
    /* One front end at a time, as qemu-storage-daemon. */
    vub_listen(ve, false);
    c = g_new0(VubConn, 1);
    c->ve = ve;
    c->fd = fd;
    c->queues = g_new0(VubQueue, ve->num_queues);
    for (unsigned i = 0; i < ve->num_queues; i++) {
        c->queues[i] = (VubQueue) {
            .conn = c, .index = i, .ctx = ve->qctx[i], .kick_fd = -1,
        };
    }
    c->dev = vu_dev_new(ve->num_queues,
                        (1ull << VHOST_USER_PROTOCOL_F_MQ) |
                        (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
                        (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
                        &vub_dev_ops, c);
    /*
     * No reference for the client: as with qemu-storage-daemon, a 'safe'
     * block-export-del is not refused because a front end is connected;
     * it disconnects it (see vub_request_shutdown()).
     */
    ve->conn = c;
    bd_aio_bh_schedule_oneshot(ve->ctx, vub_conn_start_bh, c);
}

static void vub_listen(VubExport *ve, bool on)
{
    if (ve->listen_fd >= 0) {
        bd_aio_set_fd_handler(ve->main_ctx, ve->listen_fd,
                              on ? vub_accept : NULL, NULL, NULL, ve);
    }
}

/* --- the export type ------------------------------------------------------------- */

static bool vub_create(BdExport *exp, JsonObject *opts, GError **errp)
{
    VubExport *ve = bd_export_get_opaque(exp);
    JsonObject *addr = json_object_get_object_member(opts, "addr");
    const char *type = json_object_get_string_member(addr, "type");
    int64_t bs = json_object_get_int_member_with_default(
        opts, "logical-block-size", 512);
    int64_t nq = json_object_get_int_member_with_default(opts, "num-queues",
                                                         1);
    BdAioContext *const *ctxs;
    size_t nctx;

    ve->exp = exp;
    ve->listen_fd = -1;
    if (strcmp(type, "unix") != 0 && strcmp(type, "fd") != 0) {
        bd_error_setg(errp, "Only socket address types 'unix' and 'fd' are "
                      "supported");
        return false;
    }
    if ((uint64_t)bs < 512 || (uint64_t)bs > 2 * 1024 * 1024) {
        bd_error_setg(errp, "Property %s.logical-block-size doesn't take "
                      "value %" PRIu64 " (minimum: 512, maximum: 2097152)",
                      bd_export_get_id(exp), (uint64_t)bs);
        return false;
    }
    if (bs & (bs - 1)) {
        bd_error_setg(errp, "Property %s.logical-block-size doesn't take "
                      "value '%" PRIu64 "', it's not a power of 2",
                      bd_export_get_id(exp), (uint64_t)bs);
        return false;
    }
    if (nq == 0) {
        bd_error_setg(errp, "num-queues must be greater than 0");
        return false;
    }
    if (nq > VU_MAX_QUEUES) {
        bd_error_setg(errp, "num-queues must be at most %d", VU_MAX_QUEUES);
        return false;
    }

    ve->main_ctx = bd_aio_current_context();
    ve->ctx = bd_export_get_aio_context(exp);
    ve->num_queues = nq;
    ve->qctx = g_new0(BdAioContext *, nq);
    nctx = bd_export_get_multithread_contexts(exp, &ctxs);
    for (unsigned i = 0; i < nq; i++) {
        ve->qctx[i] = nctx ? ctxs[i % nctx] : ve->ctx;
    }
    if (nctx) {
        /* The control thread: the first IOThread of the list. */
        ve->ctx = ctxs[0];
    }

    ve->vb = (VirtioBlk) {
        .blk = bd_export_get_blk(exp),
        .blk_size = bs,
        .num_queues = nq,
        .queue_size = VUB_QUEUE_SIZE,
        .writable = bd_export_is_writable(exp),
        /* Write-through until the guest enables the cache, as QEMU. */
        .wce = 0,
        .serial = VUB_SERIAL,
    };

    /* Front ends beyond the one served wait in the backlog. */
    ve->listen_fd = bd_socket_listen(addr, 16, &ve->socket_file, errp);
    if (ve->listen_fd < 0) {
        g_free(ve->qctx);
        return false;
    }
    vub_listen(ve, true);
    return true;
}

static void vub_request_shutdown(BdExport *exp)
{
    VubExport *ve = bd_export_get_opaque(exp);

    if (ve->listen_fd >= 0) {
        vub_listen(ve, false);
        close(ve->listen_fd);
        ve->listen_fd = -1;
    }
    g_clear_pointer(&ve->socket_file, bd_socket_file_remove);
    if (ve->conn) {
        /*
         * The control coroutine ends the connection (its requests in
         * flight finish first); hold the export, and so its
         * BlockBackend, until it has.
         */
        bd_export_ref(exp);
        ve->shutdown_ref = true;
        shutdown(ve->conn->fd, SHUT_RDWR);
    }
}

static void vub_destroy(BdExport *exp)
{
    VubExport *ve = bd_export_get_opaque(exp);

    g_free(ve->qctx);
}

static const BdExportType vub_export_type = {
    .struct_size = sizeof(BdExportType),
    .name = "vhost-user-blk",
    .description = "a block node as a virtio-blk device over vhost-user",
    .instance_size = sizeof(VubExport),
    .create = vub_create,
    .request_shutdown = vub_request_shutdown,
    .destroy = vub_destroy,
    /* Each virtqueue is served whole by one IOThread of the list. */
    .supports_multithread = true,
};

static bool export_vhost_user_blk_init(BdRegistry *reg, GError **errp)
{
    bd_trace_register(&tp_queue_start);
    bd_trace_register(&tp_queue_stop);
    bd_trace_register(&tp_request);
    return bd_registry_add_export_type(reg, &vub_export_type, errp);
}

BD_PLUGIN(.name = "export-vhost-user-blk",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the vhost-user-blk export: a block node as a "
                         "virtio-blk device of a virtual machine",
          .license = "GPL-2.0-or-later",
          .schema = export_vhost_user_blk_schema,
          .init = export_vhost_user_blk_init);
