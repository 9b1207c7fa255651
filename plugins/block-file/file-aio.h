/*
 * block-file: the I/O engines behind aio=threads, aio=native and
 * aio=io_uring.
 *
 * An engine moves data between a file descriptor and memory for
 * coroutines: the caller's coroutine submits a request and yields, and the
 * engine's completion (a thread-pool completion, a libaio event, an
 * io_uring CQE) wakes it again in the same AioContext.  Each FileAio
 * instance belongs to one AioContext (the node's); a node that moves to
 * another context closes its instance and opens a new one there.
 * Requests may also come from other contexts (a multi-threaded export):
 * an engine marked @any_context serves them in the caller's own thread,
 * and for the others the requesting coroutine moves to the instance's
 * context for the transfer and back afterwards.
 *
 * The engines transfer what the kernel transfers; file_aio_co_preadv() and
 * file_aio_co_pwritev() below turn short transfers into complete ones (or
 * errors) the same way for all of them.
 */
#ifndef BLOCK_FILE_AIO_H
#define BLOCK_FILE_AIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <glib.h>

#include <blockd/error.h>

#include "block-file-config.h"
#include "file-loop.h"

typedef enum FileAioMode {
    FILE_AIO_THREADS,
    FILE_AIO_NATIVE,
    FILE_AIO_IO_URING,
} FileAioMode;

typedef struct FileAio FileAio;
typedef struct FileAioEngine FileAioEngine;

/*
 * What every engine's instance starts with; engines embed it first.
 * @max_batch: how many requests an engine queues before it submits them
 * without waiting for the end of the loop iteration (aio-max-batch; 0 is
 * the engine's default).
 * @submits: how many submission system calls the engine made (for tests
 * and benchmarks: batching shows as fewer calls than requests).
 */
struct FileAio {
    const FileAioEngine *engine;
    BdAioContext *ctx;
    unsigned max_batch;
    uint64_t submits;
};

/*
 * One engine.  All callbacks run in the instance's context's thread.
 * @name: the aio option's value that selects it.
 * @open: a new instance for @ctx, or NULL with @errp set (for example when
 *     the kernel refuses io_setup or io_uring_setup).
 * @close: free the instance; no request may be in flight.
 * @co_rw: coroutine_fn: transfer @iov at @offset of @fd; returns the bytes
 *     transferred (possibly fewer than asked) or -errno.
 * @co_flush: coroutine_fn: fdatasync(@fd); 0 or -errno.  NULL: the thread
 *     pool does it.
 * @any_context: @co_rw and @co_flush may run in any AioContext's thread,
 *     several at once (the engine keeps no per-context state).
 */
struct FileAioEngine {
    const char *name;
    FileAio *(*open)(BdAioContext *ctx, GError **errp);
    void (*close)(FileAio *aio);
    ssize_t (*co_rw)(FileAio *aio, int fd, uint64_t offset,
                     const struct iovec *iov, int niov, bool write);
    int (*co_flush)(FileAio *aio, int fd);
    bool any_context;
    /* optional: the node now uses another fd (after a reopen) */
    void (*fd_changed)(FileAio *aio);
};

extern const FileAioEngine file_aio_threads;
#ifdef BLOCK_FILE_HAVE_LIBAIO
extern const FileAioEngine file_aio_native;
#endif
#ifdef BLOCK_FILE_HAVE_IO_URING
extern const FileAioEngine file_aio_io_uring;
#endif

/* The engine for @mode, or NULL if this build does not have it. */
const FileAioEngine *file_aio_engine(FileAioMode mode);

/*
 * How many requests an engine gathers before it submits, as QEMU decides
 * it: the AioContext's aio-max-batch (an iothread property) or the
 * engine's @engine_default, capped by the node's own aio-max-batch.
 */
unsigned file_aio_max_batch(FileAio *aio, unsigned engine_default);

/*
 * Open an instance of @engine for @ctx, with @max_batch (0: default).
 * NULL with @errp set on failure.
 */
FileAio *file_aio_open(const FileAioEngine *engine, BdAioContext *ctx,
                       unsigned max_batch, GError **errp);

/* Close @aio (NULL is fine); nothing may be in flight. */
void file_aio_close(FileAio *aio);

/*
 * The node's fd was replaced (a reopen): forget what the engine learnt
 * about the old one.  The new fd may even reuse the old number.
 */
void file_aio_fd_changed(FileAio *aio);

/*
 * coroutine_fn: read @bytes (the total of @iov) at @offset.  A read that
 * ends at end of file fills the rest with zeroes, as QEMU's file driver
 * does; a short read before end of file is continued.  Returns 0 or
 * -errno.
 */
int file_aio_co_preadv(FileAio *aio, int fd, uint64_t offset,
                       const struct iovec *iov, int niov);

/*
 * coroutine_fn: write all of @iov at @offset; a write the kernel shortens
 * is continued, and one that makes no progress fails with -ENOSPC.
 * Returns 0 or -errno.
 */
int file_aio_co_pwritev(FileAio *aio, int fd, uint64_t offset,
                        const struct iovec *iov, int niov);

/* coroutine_fn: fdatasync(@fd) through the engine.  0 or -errno. */
int file_aio_co_flush(FileAio *aio, int fd);

/*
 * coroutine_fn: run fn(opaque) in the thread pool of the current context
 * and return its result; for the blocking calls no engine has an
 * asynchronous form (fallocate, ftruncate, ioctl, lseek on some file
 * systems).
 */
int file_aio_co_run(int (*fn)(void *opaque), void *opaque);

/*
 * Wait for one completion: what a request's coroutine does after it
 * submitted.  The engine fills @ret and calls file_aio_waiter_wake().
 */
typedef struct FileAioWaiter {
    BdCoroutine *co;
    ssize_t ret;
    bool done;
} FileAioWaiter;

/* coroutine_fn: yield until @w is woken; returns w->ret. */
ssize_t file_aio_waiter_wait(FileAioWaiter *w);

/* Complete @w with @ret and wake its coroutine (in the engine's thread). */
void file_aio_waiter_wake(FileAioWaiter *w, ssize_t ret);

#endif /* BLOCK_FILE_AIO_H */
