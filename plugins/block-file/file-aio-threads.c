/*
 * block-file: aio=threads.  Each request is one preadv/pwritev (or
 * fdatasync) in a worker of the context's thread pool; its completion BH
 * wakes the submitting coroutine.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <unistd.h>

#include "file-aio.h"

typedef struct ThreadsRequest {
    int fd;
    uint64_t offset;
    const struct iovec *iov;
    int niov;
    bool write;
    ssize_t ret;
} ThreadsRequest;

/* Runs in a worker; the result goes through the request, not the int. */
static int threads_rw_fn(void *opaque)
{
    ThreadsRequest *req = opaque;
    ssize_t n;

    do {
        if (req->write) {
            n = pwritev(req->fd, req->iov, req->niov, req->offset);
        } else {
            n = preadv(req->fd, req->iov, req->niov, req->offset);
        }
    } while (n < 0 && errno == EINTR);
    req->ret = n < 0 ? -errno : n;
    return 0;
}

static ssize_t threads_co_rw(FileAio *aio, int fd, uint64_t offset,
                             const struct iovec *iov, int niov, bool write)
{
    ThreadsRequest req = {
        .fd = fd, .offset = offset, .iov = iov, .niov = niov, .write = write,
    };

    aio->submits++;
    bd_thread_pool_submit_co(aio->ctx, threads_rw_fn, &req);
    return req.ret;
}

static FileAio *threads_open(BdAioContext *ctx, GError **errp)
{
    return g_new0(FileAio, 1);
}

static void threads_close(FileAio *aio)
{
    g_free(aio);
}

const FileAioEngine file_aio_threads = {
    .name = "threads",
    .open = threads_open,
    .close = threads_close,
    .co_rw = threads_co_rw,
};
