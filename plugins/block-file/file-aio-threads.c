/*
 * block-file: aio=threads.  Each request is one preadv/pwritev (or
 * fdatasync) in a worker of the requesting thread's context's thread
 * pool; its completion BH wakes the submitting coroutine there.  One
 * instance serves every context of a multi-threaded export at once: its
 * only state, the inline policy, is a cache read and written atomically.
 *
 * The hop to a worker and back costs tens of microseconds, far more than
 * a read the page cache can answer.  So requests that cannot wait for a
 * device are done inline, in the loop's thread:
 *  - on tmpfs and ramfs every read, and every write below
 *    THREADS_INLINE_WRITE_MAX (memory only; the worst case is reclaim,
 *    never a device queue);
 *  - elsewhere, without O_DIRECT, a read is first tried with RWF_NOWAIT,
 *    which the kernel answers from the page cache or refuses with EAGAIN
 *    (then the read goes to a worker as before).
 *
 * Large writes to memory still go to a worker: copying a MiB into tmpfs
 * takes as long as receiving it did, and done inline it keeps the loop
 * from reading the client's next request meanwhile.  In a worker the two
 * copies overlap whenever the client has several requests in flight (a
 * FUSE client's 1 MiB writes at depth 8 went from about 2900 to 4100 per
 * second), for the price of one hop when it has only one (a few per
 * cent at 1 MiB, far more for small writes, which stay inline).  Reads
 * stay inline: their second copy, the reply, is the loop's own work
 * anyway.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "file-aio.h"

/* Writes of at least this many bytes to memory go to a worker (above). */
#define THREADS_INLINE_WRITE_MAX (512 * 1024)

typedef enum InlinePolicy {
    INLINE_UNKNOWN = 0,
    INLINE_NEVER,           /* O_DIRECT, or RWF_NOWAIT not supported */
    INLINE_NOWAIT_READS,    /* try reads with RWF_NOWAIT first */
    INLINE_ALWAYS,          /* memory-backed file system */
} InlinePolicy;

typedef struct ThreadsAio {
    FileAio common;
    int policy_fd;          /* the fd the policy was decided for */
    InlinePolicy policy;
} ThreadsAio;

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

static size_t iov_total(const struct iovec *iov, int niov)
{
    size_t total = 0;

    for (int i = 0; i < niov; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

static InlinePolicy decide_policy(int fd)
{
    struct statfs fs;
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || (flags & O_DIRECT)) {
        return INLINE_NEVER;
    }
    if (fstatfs(fd, &fs) == 0 &&
        (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)) {
        return INLINE_ALWAYS;
    }
    return INLINE_NOWAIT_READS;
}

static ssize_t threads_co_rw(FileAio *aio, int fd, uint64_t offset,
                             const struct iovec *iov, int niov, bool write)
{
    ThreadsAio *t = (ThreadsAio *)aio;
    ThreadsRequest req = {
        .fd = fd, .offset = offset, .iov = iov, .niov = niov, .write = write,
    };

    InlinePolicy policy = __atomic_load_n(&t->policy, __ATOMIC_RELAXED);

    /*
     * Two threads may decide at once; both reach the same answer.  The
     * fd is checked against the policy's because a reopen changes it.
     */
    if (policy == INLINE_UNKNOWN ||
        __atomic_load_n(&t->policy_fd, __ATOMIC_RELAXED) != fd) {
        policy = decide_policy(fd);
        __atomic_store_n(&t->policy_fd, fd, __ATOMIC_RELAXED);
        __atomic_store_n(&t->policy, policy, __ATOMIC_RELAXED);
    }
    if (policy == INLINE_ALWAYS &&
        (!write || iov_total(iov, niov) < THREADS_INLINE_WRITE_MAX)) {
        threads_rw_fn(&req);
        return req.ret;
    }
    if (policy == INLINE_NOWAIT_READS && !write) {
        ssize_t n;

        do {
            n = preadv2(fd, iov, niov, offset, RWF_NOWAIT);
        } while (n < 0 && errno == EINTR);
        if (n >= 0) {
            /*
             * A short read may mean "the rest is not cached": the caller
             * continues short transfers, and the rest comes back here.
             */
            return n;
        }
        if (errno == EOPNOTSUPP || errno == EINVAL) {
            __atomic_store_n(&t->policy, INLINE_NEVER, __ATOMIC_RELAXED);
        }
        /* EAGAIN: not in the page cache; wait in a worker */
    }

    __atomic_fetch_add(&aio->submits, 1, __ATOMIC_RELAXED);
    bd_thread_pool_submit_co(NULL, threads_rw_fn, &req);
    return req.ret;
}

static void threads_fd_changed(FileAio *aio)
{
    ThreadsAio *t = (ThreadsAio *)aio;

    __atomic_store_n(&t->policy, INLINE_UNKNOWN, __ATOMIC_RELAXED);
    __atomic_store_n(&t->policy_fd, -1, __ATOMIC_RELAXED);
}

static FileAio *threads_open(BdAioContext *ctx, GError **errp)
{
    ThreadsAio *t = g_new0(ThreadsAio, 1);

    t->policy_fd = -1;
    return &t->common;
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
    .fd_changed = threads_fd_changed,
    .any_context = true,
};
