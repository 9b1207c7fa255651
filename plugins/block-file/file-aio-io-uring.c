/*
 * block-file: aio=io_uring (liburing).
 *
 * A request becomes one SQE; the SQEs prepared during one loop iteration
 * go to the kernel with a single io_uring_submit() at the end of it (a
 * bottom half), or earlier when aio-max-batch of them are waiting or the
 * submission queue is full.  The ring's file descriptor is readable while
 * completions wait in the CQ, so the context watches it directly; the poll
 * callback looks at the CQ in shared memory, which costs no system call.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <string.h>

#include <liburing.h>

#include "file-aio.h"

/* Submission queue size (the CQ is twice that). */
#define URING_ENTRIES 128
/* Completions handled per pass over the CQ. */
#define URING_REAP_BATCH 64

typedef struct UringAio {
    FileAio common;
    struct io_uring ring;
    BdAioBH *submit_bh;
    unsigned unsubmitted;       /* SQEs prepared, not yet submitted */
    unsigned in_flight;         /* submitted, not yet completed */
} UringAio;

static void uring_submit(UringAio *s)
{
    int ret;

    if (!s->unsubmitted) {
        return;
    }
    do {
        ret = io_uring_submit(&s->ring);
        s->common.submits++;
    } while (ret == -EINTR);
    if (ret < 0) {
        /*
         * -EAGAIN/-EBUSY: the kernel is short of memory or the CQ is
         * full; the SQEs stay in the ring, and the next completion (or
         * this BH, when nothing is in flight) tries again.
         */
        if (!s->in_flight) {
            bd_aio_bh_schedule(s->submit_bh);
        }
        return;
    }
    s->in_flight += ret;
    s->unsubmitted -= MIN((unsigned)ret, s->unsubmitted);
}

static void uring_submit_bh(void *opaque)
{
    uring_submit(opaque);
}

static bool uring_reap(UringAio *s)
{
    struct io_uring_cqe *cqes[URING_REAP_BATCH];
    bool progress = false;

    for (;;) {
        FileAioWaiter *w[URING_REAP_BATCH];
        int res[URING_REAP_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&s->ring, cqes,
                                             URING_REAP_BATCH);

        if (n == 0) {
            break;
        }
        /* Copy out and release the CQ slots before anyone runs again. */
        for (unsigned i = 0; i < n; i++) {
            w[i] = io_uring_cqe_get_data(cqes[i]);
            res[i] = cqes[i]->res;
        }
        io_uring_cq_advance(&s->ring, n);
        s->in_flight -= n;
        progress = true;
        for (unsigned i = 0; i < n; i++) {
            file_aio_waiter_wake(w[i], res[i]);
        }
    }
    if (s->unsubmitted) {
        uring_submit(s);
    }
    return progress;
}

static void uring_read_cb(void *opaque)
{
    uring_reap(opaque);
}

static bool uring_poll_cb(void *opaque)
{
    UringAio *s = opaque;

    if (!io_uring_cq_ready(&s->ring)) {
        return false;
    }
    return uring_reap(s);
}

/* An SQE for a new request; submits what is queued if the SQ is full. */
static struct io_uring_sqe *uring_get_sqe(UringAio *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

    while (!sqe) {
        /* Without SQPOLL, a submit frees every SQ slot it consumed. */
        uring_submit(s);
        sqe = io_uring_get_sqe(&s->ring);
        if (!sqe) {
            /* The kernel took nothing: wait for a completion. */
            bd_aio_co_schedule(s->common.ctx, bd_coroutine_self());
            bd_coroutine_yield();
            sqe = io_uring_get_sqe(&s->ring);
        }
    }
    return sqe;
}

static void uring_queue(UringAio *s, struct io_uring_sqe *sqe,
                        FileAioWaiter *w)
{
    unsigned max = file_aio_max_batch(&s->common, URING_ENTRIES);

    io_uring_sqe_set_data(sqe, w);
    s->unsubmitted++;
    if (s->unsubmitted >= max) {
        uring_submit(s);
    } else {
        bd_aio_bh_schedule(s->submit_bh);
    }
}

static ssize_t uring_co_rw(FileAio *aio, int fd, uint64_t offset,
                           const struct iovec *iov, int niov, bool write)
{
    UringAio *s = (UringAio *)aio;
    FileAioWaiter w = { .co = bd_coroutine_self() };
    struct io_uring_sqe *sqe = uring_get_sqe(s);

    if (niov == 1) {
        /* The plain forms spare the kernel copying an iovec. */
        if (write) {
            io_uring_prep_write(sqe, fd, iov[0].iov_base, iov[0].iov_len,
                                offset);
        } else {
            io_uring_prep_read(sqe, fd, iov[0].iov_base, iov[0].iov_len,
                               offset);
        }
    } else if (write) {
        io_uring_prep_writev(sqe, fd, iov, niov, offset);
    } else {
        io_uring_prep_readv(sqe, fd, iov, niov, offset);
    }
    uring_queue(s, sqe, &w);
    return file_aio_waiter_wait(&w);
}

static int uring_co_flush(FileAio *aio, int fd)
{
    UringAio *s = (UringAio *)aio;
    FileAioWaiter w = { .co = bd_coroutine_self() };
    struct io_uring_sqe *sqe = uring_get_sqe(s);

    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    uring_queue(s, sqe, &w);
    return file_aio_waiter_wait(&w);
}

static FileAio *uring_open(BdAioContext *ctx, GError **errp)
{
    UringAio *s = g_new0(UringAio, 1);
    int ret = io_uring_queue_init(URING_ENTRIES, &s->ring, 0);

    if (ret < 0) {
        bd_error_setg(errp,
                      "Unable to use io_uring: failed to init linux io_uring "
                      "ring: %s", g_strerror(-ret));
        g_free(s);
        return NULL;
    }
    s->submit_bh = bd_aio_bh_new(ctx, uring_submit_bh, s);
    bd_aio_set_fd_handler(ctx, s->ring.ring_fd, uring_read_cb, NULL,
                          uring_poll_cb, s);
    return &s->common;
}

static void uring_close(FileAio *aio)
{
    UringAio *s = (UringAio *)aio;

    g_assert(!s->in_flight && !s->unsubmitted);
    bd_aio_set_fd_handler(aio->ctx, s->ring.ring_fd, NULL, NULL, NULL, NULL);
    bd_aio_bh_delete(s->submit_bh);
    io_uring_queue_exit(&s->ring);
    g_free(s);
}

const FileAioEngine file_aio_io_uring = {
    .name = "io_uring",
    .open = uring_open,
    .close = uring_close,
    .co_rw = uring_co_rw,
    .co_flush = uring_co_flush,
};
