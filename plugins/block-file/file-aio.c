/*
 * block-file: what all I/O engines share: choosing one, waiting for a
 * completion, and turning short transfers into whole ones.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include <blockd/iothread.h>

#include "file-aio.h"

#define FILE_AIO_MAX_IOV 1024   /* IOV_MAX on Linux */

const FileAioEngine *file_aio_engine(FileAioMode mode)
{
    switch (mode) {
    case FILE_AIO_THREADS:
        return &file_aio_threads;
    case FILE_AIO_NATIVE:
#ifdef BLOCK_FILE_HAVE_LIBAIO
        return &file_aio_native;
#else
        return NULL;
#endif
    case FILE_AIO_IO_URING:
#ifdef BLOCK_FILE_HAVE_IO_URING
        return &file_aio_io_uring;
#else
        return NULL;
#endif
    }
    return NULL;
}

FileAio *file_aio_open(const FileAioEngine *engine, BdAioContext *ctx,
                       unsigned max_batch, GError **errp)
{
    FileAio *aio = engine->open(ctx, errp);

    if (aio) {
        aio->engine = engine;
        aio->ctx = ctx;
        aio->max_batch = max_batch;
    }
    return aio;
}

void file_aio_close(FileAio *aio)
{
    if (aio) {
        aio->engine->close(aio);
    }
}

ssize_t file_aio_waiter_wait(FileAioWaiter *w)
{
    while (!w->done) {
        bd_coroutine_yield();
    }
    return w->ret;
}

void file_aio_waiter_wake(FileAioWaiter *w, ssize_t ret)
{
    w->ret = ret;
    w->done = true;
    /*
     * A submission can fail while the submitting coroutine is still
     * running (io_submit refusing its own request): it sees done before
     * it yields, and must not be woken.
     */
    if (w->co != bd_coroutine_self()) {
        bd_aio_co_wake(w->co);
    }
}

/*
 * coroutine_fn: move the calling coroutine to @aio's context when its
 * engine works only there; returns the context to come back to (NULL:
 * no move).  A hop each way costs a few microseconds, paid only by
 * requests of a multi-threaded export on native or io_uring nodes.
 */
static BdAioContext *engine_enter(FileAio *aio)
{
    BdAioContext *cur;

    if (aio->engine->any_context) {
        return NULL;
    }
    cur = bd_aio_current_context();
    if (cur == aio->ctx) {
        return NULL;
    }
    bd_aio_co_reschedule_self(aio->ctx);
    return cur;
}

/* coroutine_fn: the way back after engine_enter(). */
static void engine_leave(BdAioContext *home)
{
    if (home) {
        bd_aio_co_reschedule_self(home);
    }
}

/*
 * Drop @skip bytes from the front of @iov into @out (at most
 * FILE_AIO_MAX_IOV entries); returns the new count.
 */
static int iov_skip(const struct iovec *iov, int niov, size_t skip,
                    struct iovec *out)
{
    int n = 0;

    for (int i = 0; i < niov; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        out[n].iov_base = (char *)iov[i].iov_base + skip;
        out[n].iov_len = iov[i].iov_len - skip;
        skip = 0;
        n++;
    }
    return n;
}

static size_t iov_size(const struct iovec *iov, int niov)
{
    size_t total = 0;

    for (int i = 0; i < niov; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

static void iov_zero(const struct iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        memset(iov[i].iov_base, 0, iov[i].iov_len);
    }
}

static int co_rw_full(FileAio *aio, int fd, uint64_t offset,
                      const struct iovec *iov, int niov, bool write)
{
    size_t total = iov_size(iov, niov);
    size_t done = 0;
    struct iovec *rest = NULL;
    BdAioContext *home;
    int ret = 0;

    if (niov > FILE_AIO_MAX_IOV) {
        return -EINVAL;
    }
    home = engine_enter(aio);
    while (done < total) {
        const struct iovec *cur = iov;
        int ncur = niov;
        ssize_t n;

        if (done) {
            if (!rest) {
                rest = g_new(struct iovec, niov);
            }
            ncur = iov_skip(iov, niov, done, rest);
            cur = rest;
        }
        n = aio->engine->co_rw(aio, fd, offset + done, cur, ncur, write);
        if (n == -EINTR) {
            continue;
        }
        if (n < 0) {
            ret = n;
            break;
        }
        if (n == 0) {
            if (write) {
                ret = -ENOSPC;
            } else {
                /* End of file: the rest reads as zeroes. */
                iov_zero(cur, ncur);
            }
            break;
        }
        done += n;
    }
    engine_leave(home);
    g_free(rest);
    return ret;
}

int file_aio_co_preadv(FileAio *aio, int fd, uint64_t offset,
                       const struct iovec *iov, int niov)
{
    return co_rw_full(aio, fd, offset, iov, niov, false);
}

int file_aio_co_pwritev(FileAio *aio, int fd, uint64_t offset,
                        const struct iovec *iov, int niov)
{
    return co_rw_full(aio, fd, offset, iov, niov, true);
}

static int flush_fn(void *opaque)
{
    int fd = *(int *)opaque;

    return fdatasync(fd) < 0 ? -errno : 0;
}

int file_aio_co_flush(FileAio *aio, int fd)
{
    if (aio->engine->co_flush) {
        BdAioContext *home = engine_enter(aio);
        int ret = aio->engine->co_flush(aio, fd);

        engine_leave(home);
        return ret;
    }
    return file_aio_co_run(flush_fn, &fd);
}

int file_aio_co_run(int (*fn)(void *opaque), void *opaque)
{
    return bd_thread_pool_submit_co(NULL, fn, opaque);
}

unsigned file_aio_max_batch(FileAio *aio, unsigned engine_default)
{
    int64_t ctx_max = bd_aio_context_get_aio_max_batch(aio->ctx);
    unsigned max = ctx_max > 0 ? (unsigned)MIN(ctx_max, UINT_MAX)
                               : engine_default;

    if (aio->max_batch && aio->max_batch < max) {
        max = aio->max_batch;
    }
    return max;
}

void file_aio_fd_changed(FileAio *aio)
{
    if (aio->engine->fd_changed) {
        aio->engine->fd_changed(aio);
    }
}
