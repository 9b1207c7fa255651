/*
 * block-file: the I/O callbacks of the file and host_device drivers.
 *
 * Reads, writes and flushes go through the node's I/O engine; the calls
 * that have no asynchronous form (fallocate, ioctl, ftruncate) run in the
 * thread pool; block status uses SEEK_DATA/SEEK_HOLE directly, as QEMU
 * does, since they do not wait for the disk.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include "file-state.h"

/* --- length -------------------------------------------------------------- */

int64_t file_co_getlength(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);
    struct stat st;

    if (s->is_blk) {
        uint64_t size;

        if (ioctl(s->fd, BLKGETSIZE64, &size) == 0) {
            return size;
        }
    }
    if (!s->is_device) {
        if (fstat(s->fd, &st) < 0) {
            return -errno;
        }
        return st.st_size;
    }
    /* Character devices and anything else: as far as one can seek. */
    off_t end = lseek(s->fd, 0, SEEK_END);
    return end < 0 ? -errno : end;
}

/* --- read, write, flush --------------------------------------------------- */

static bool qiov_aligned(FileState *s, BdIOVector *qiov)
{
    for (int i = 0; i < qiov->niov; i++) {
        if ((uintptr_t)qiov->iov[i].iov_base % s->buf_align ||
            qiov->iov[i].iov_len % s->request_alignment) {
            return false;
        }
    }
    return true;
}

/*
 * O_DIRECT refuses buffers that are not aligned; the request layer aligns
 * offsets and lengths, and buffers normally come aligned, but a caller's
 * odd vector is bounced here rather than failed.
 */
static int file_co_rw(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, bool write)
{
    FileState *s = bd_node_get_opaque(node);
    struct iovec iov;
    void *bounce = NULL;
    int ret;

    if (s->buf_align <= 1 || qiov_aligned(s, qiov)) {
        return write ? file_aio_co_pwritev(s->aio, s->fd, offset, qiov->iov,
                                           qiov->niov)
                     : file_aio_co_preadv(s->aio, s->fd, offset, qiov->iov,
                                          qiov->niov);
    }
    if (posix_memalign(&bounce, MAX(s->buf_align, 512), bytes)) {
        return -ENOMEM;
    }
    iov = (struct iovec) { bounce, bytes };
    if (write) {
        bd_iovec_to_buf(qiov, 0, bounce, bytes);
        ret = file_aio_co_pwritev(s->aio, s->fd, offset, &iov, 1);
    } else {
        ret = file_aio_co_preadv(s->aio, s->fd, offset, &iov, 1);
        if (ret == 0) {
            bd_iovec_from_buf(qiov, 0, bounce, bytes);
        }
    }
    free(bounce);
    return ret;
}

int file_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                   BdIOVector *qiov, BdRequestFlags flags)
{
    return file_co_rw(node, offset, bytes, qiov, false);
}

int file_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                    BdIOVector *qiov, BdRequestFlags flags)
{
    return file_co_rw(node, offset, bytes, qiov, true);
}

/*
 * Zero-copy reads (see BdBlockDriver.co_pread_to_fd): sendfile(2) from
 * the image into the caller's socket.  sendfile cannot be told not to
 * wait for the disk, so it is used only when the data is in memory: a
 * file on tmpfs or ramfs (a page swapped out is the rare exception: it
 * is read back in the caller's thread), or a range that cachestat(2)
 * finds wholly in the page cache (a page evicted between that check and
 * the transfer is the same rare exception).  cache.direct=on asks to
 * bypass the page cache: no zero-copy there.
 */
#ifndef __NR_cachestat
/* the same number on every architecture (one table since Linux 5.1) */
#define __NR_cachestat 451
#endif

struct file_cachestat_range {
    uint64_t off;
    uint64_t len;
};

struct file_cachestat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
};

/* Is every page of the range in the page cache?  No answer is a no. */
static bool range_cached(FileState *s, int64_t offset, int64_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    int64_t first = offset / page;
    int64_t end = (offset + bytes + page - 1) / page;
    struct file_cachestat_range range = {
        first * page, (end - first) * page
    };
    struct file_cachestat cs;

    if (syscall(__NR_cachestat, s->fd, &range, &cs, 0) < 0) {
        return false;
    }
    return cs.nr_cache >= (uint64_t)(end - first);
}

int64_t file_co_pread_to_fd(BdNode *node, int64_t offset, int64_t bytes,
                            int out_fd, BdRequestFlags flags)
{
    FileState *s = bd_node_get_opaque(node);
    off_t pos = offset;
    ssize_t n;

    if ((s->open_flags & O_DIRECT) ||
        (!s->in_memory && !range_cached(s, offset, bytes))) {
        return -ENOTSUP;
    }
    if (out_fd < 0) {
        return 0;
    }
    do {
        n = sendfile(out_fd, s->fd, &pos, MIN(bytes, (int64_t)SSIZE_MAX));
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        return n;
    }
    if (n == 0) {
        /* the file shrank under the node: the normal read fills zeroes */
        return -ENOTSUP;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return -EAGAIN;
    }
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        /* a file system or descriptor sendfile does not work with */
        return -ENOTSUP;
    }
    return -errno;
}

int file_co_flush(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);
    int ret;

    /*
     * After a failed fdatasync the kernel may have dropped the dirty
     * pages it could not write, so a later fdatasync can succeed although
     * the data is lost: keep failing, as QEMU does.
     */
    if (s->page_cache_inconsistent) {
        return -EIO;
    }
    ret = file_aio_co_flush(s->aio, s->fd);
    if (ret < 0 && ret != -ENOTSUP && ret != -EINVAL) {
        s->page_cache_inconsistent = true;
    }
    return ret;
}

/* --- discard and write zeroes -------------------------------------------- */

typedef struct FallocRequest {
    int fd;
    int mode;
    int64_t offset;
    int64_t bytes;
    unsigned long ioctl_cmd;    /* instead of fallocate when set */
} FallocRequest;

/* Map "the file system cannot do this" errors to -ENOTSUP. */
static int translate_err(int err)
{
    if (err == -ENODEV || err == -ENOSYS || err == -EOPNOTSUPP ||
        err == -ENOTTY) {
        return -ENOTSUP;
    }
    return err;
}

static int falloc_fn(void *opaque)
{
    FallocRequest *r = opaque;
    int ret;

    do {
        if (r->ioctl_cmd) {
            uint64_t range[2] = { r->offset, r->bytes };

            ret = ioctl(r->fd, r->ioctl_cmd, range);
        } else {
            ret = fallocate(r->fd, r->mode, r->offset, r->bytes);
        }
    } while (ret < 0 && errno == EINTR);
    return ret < 0 ? translate_err(-errno) : 0;
}

static int co_fallocate(FileState *s, int mode, int64_t offset,
                        int64_t bytes)
{
    FallocRequest r = {
        .fd = s->fd, .mode = mode, .offset = offset, .bytes = bytes,
    };

    return file_aio_co_run(falloc_fn, &r);
}

static int co_blkdev_ioctl(FileState *s, unsigned long cmd, int64_t offset,
                           int64_t bytes)
{
    FallocRequest r = {
        .fd = s->fd, .ioctl_cmd = cmd, .offset = offset, .bytes = bytes,
    };

    return file_aio_co_run(falloc_fn, &r);
}

int file_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes)
{
    FileState *s = bd_node_get_opaque(node);
    int ret;

    if (!s->has_discard) {
        return -ENOTSUP;
    }
    if (s->is_blk) {
        ret = co_blkdev_ioctl(s, BLKDISCARD, offset, bytes);
    } else if (!s->is_device) {
        ret = co_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, bytes);
    } else {
        ret = -ENOTSUP;
    }
    if (ret == -ENOTSUP) {
        s->has_discard = false;
    }
    return ret;
}

/* Zeroes without deallocating: ZERO_RANGE, or punch a hole and allocate. */
static int co_write_zeroes_keep(FileState *s, int64_t offset, int64_t bytes,
                                BdRequestFlags flags)
{
    int ret;

    if (s->is_blk) {
        /* The kernel may write zero buffers itself to emulate it. */
        if (flags & BD_REQ_NO_FALLBACK) {
            return -ENOTSUP;
        }
        return co_blkdev_ioctl(s, BLKZEROOUT, offset, bytes);
    }
    if (s->is_device) {
        return -ENOTSUP;
    }
    if (s->has_write_zeroes) {
        ret = co_fallocate(s, FALLOC_FL_ZERO_RANGE, offset, bytes);
        if (ret == -ENOTSUP) {
            s->has_write_zeroes = false;
        } else if (ret != -EINVAL) {
            return ret;
        }
    }
    if (s->has_discard && s->has_fallocate) {
        ret = co_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, bytes);
        if (ret == 0) {
            ret = co_fallocate(s, 0, offset, bytes);
            if (ret != -ENOTSUP) {
                return ret;
            }
            s->has_fallocate = false;
        } else if (ret != -ENOTSUP && ret != -EINVAL) {
            return ret;
        } else if (ret == -ENOTSUP) {
            s->has_discard = false;
        }
    }
    return -ENOTSUP;
}

int file_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                          BdRequestFlags flags)
{
    FileState *s = bd_node_get_opaque(node);

    if ((flags & BD_REQ_MAY_UNMAP) && !s->is_device) {
        /* A punched hole reads as zeroes and frees the space. */
        int ret = co_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               offset, bytes);

        if (ret != -ENOTSUP && ret != -EINVAL && ret != -EBUSY) {
            return ret;
        }
    }
    return co_write_zeroes_keep(s, offset, bytes, flags);
}

/* --- block status -------------------------------------------------------- */

/*
 * Where data and holes lie around @start: *data is the first data at or
 * after @start, *hole the first hole at or after it.  -ENXIO when @start
 * is in the hole that runs to end of file; other -errno when the file
 * system cannot tell.
 */
static int find_allocation(FileState *s, off_t start, off_t *data,
                           off_t *hole)
{
    off_t offs = lseek(s->fd, start, SEEK_DATA);

    if (offs < 0) {
        return -errno;      /* ENXIO: trailing hole; else unknown */
    }
    if (offs < start) {
        return -EIO;        /* a broken file system */
    }
    if (offs > start) {
        *hole = start;
        *data = offs;
        return 0;
    }
    offs = lseek(s->fd, start, SEEK_HOLE);
    if (offs < 0) {
        return -errno;
    }
    if (offs < start) {
        return -EIO;
    }
    *data = start;
    *hole = offs;
    return 0;
}

int file_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                         int64_t bytes, int64_t *pnum, int64_t *map,
                         BdNode **file)
{
    FileState *s = bd_node_get_opaque(node);
    off_t data = 0, hole = 0;
    int ret;

    *map = offset;
    *file = node;
    if (!want_zero || s->is_device) {
        *pnum = bytes;
        return BD_BLOCK_DATA | BD_BLOCK_OFFSET_VALID;
    }
    ret = find_allocation(s, offset, &data, &hole);
    if (ret == -ENXIO) {
        *pnum = bytes;
        ret = BD_BLOCK_ZERO;
    } else if (ret < 0) {
        /* Nothing known: everything is data. */
        *pnum = bytes;
        ret = BD_BLOCK_DATA;
    } else if (data == offset) {
        *pnum = MIN(bytes, hole - offset);
        /* A partial block at end of file still counts whole. */
        if (*pnum % s->request_alignment) {
            *pnum += s->request_alignment - *pnum % s->request_alignment;
        }
        ret = BD_BLOCK_DATA;
    } else {
        *pnum = MIN(bytes, data - offset);
        ret = BD_BLOCK_ZERO;
    }
    return ret | BD_BLOCK_OFFSET_VALID;
}

/* --- truncate ------------------------------------------------------------ */

typedef struct TruncateRequest {
    int fd;
    int64_t offset;
    BdPreallocMode prealloc;
    GError *err;
} TruncateRequest;

static const char *const prealloc_names[] = {
    [BD_PREALLOC_OFF] = "off",
    [BD_PREALLOC_METADATA] = "metadata",
    [BD_PREALLOC_FALLOC] = "falloc",
    [BD_PREALLOC_FULL] = "full",
};

static const char *prealloc_name(BdPreallocMode mode)
{
    return mode < G_N_ELEMENTS(prealloc_names) ? prealloc_names[mode] : "?";
}

static int set_error_errno(GError **errp, int err, const char *what)
{
    bd_error_setg(errp, "%s: %s", what,
                  g_strerror(err));
    return -err;
}

/* Write zeroes from @from to @to for preallocation=full. */
static int write_zeroes_full(int fd, int64_t from, int64_t to)
{
    enum { CHUNK = 64 * 1024 };
    g_autofree char *buf = g_malloc0(CHUNK);

    while (from < to) {
        ssize_t n = pwrite(fd, buf, MIN(CHUNK, to - from), from);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        from += n;
    }
    return 0;
}

/* Runs in a worker: resize a regular file as QEMU does. */
static int truncate_fn(void *opaque)
{
    TruncateRequest *r = opaque;
    struct stat st;
    int64_t cur;
    int err;

    if (fstat(r->fd, &st) < 0) {
        return set_error_errno(&r->err, errno, "Could not stat file");
    }
    cur = st.st_size;
    if (r->prealloc != BD_PREALLOC_OFF && cur > r->offset) {
        bd_error_setg(&r->err, "Cannot use preallocation for shrinking files");
        return -ENOTSUP;
    }
    switch (r->prealloc) {
    case BD_PREALLOC_OFF:
        if (ftruncate(r->fd, r->offset) < 0) {
            return set_error_errno(&r->err, errno, "Could not resize file");
        }
        return 0;
    case BD_PREALLOC_FALLOC:
        if (r->offset != cur) {
            err = posix_fallocate(r->fd, cur, r->offset - cur);
            if (err) {
                return set_error_errno(&r->err, err,
                                       "Could not preallocate new data");
            }
        }
        return 0;
    case BD_PREALLOC_FULL:
        if (ftruncate(r->fd, r->offset) < 0) {
            return set_error_errno(&r->err, errno, "Could not resize file");
        }
        err = write_zeroes_full(r->fd, cur, r->offset);
        if (!err && fsync(r->fd) < 0) {
            err = errno;
            set_error_errno(&r->err, err, "Could not flush file to disk");
        } else if (err) {
            set_error_errno(&r->err, err,
                            "Could not write zeros for preallocation");
        }
        if (err) {
            /* Leave the file as it was. */
            if (ftruncate(r->fd, cur) < 0) {
                /* the error above is the one to report */
            }
            return -err;
        }
        return 0;
    default:
        bd_error_setg(&r->err, "Unsupported preallocation mode: %s",
                      prealloc_name(r->prealloc));
        return -ENOTSUP;
    }
}

int file_co_truncate_fd(int fd, int64_t offset, BdPreallocMode prealloc,
                        GError **errp)
{
    TruncateRequest r = { .fd = fd, .offset = offset, .prealloc = prealloc };
    int ret = file_aio_co_run(truncate_fn, &r);

    if (ret < 0) {
        g_propagate_error(errp, r.err);
    }
    return ret;
}

int file_co_truncate(BdNode *node, int64_t offset, bool exact,
                     BdPreallocMode prealloc, BdRequestFlags flags,
                     GError **errp)
{
    FileState *s = bd_node_get_opaque(node);
    int64_t cur;

    if (!s->is_device) {
        return file_co_truncate_fd(s->fd, offset, prealloc, errp);
    }
    if (prealloc != BD_PREALLOC_OFF) {
        bd_error_setg(errp, "Preallocation mode '%s' unsupported for this "
                      "non-regular file", prealloc_name(prealloc));
        return -ENOTSUP;
    }
    cur = file_co_getlength(node);
    if (cur < 0) {
        return set_error_errno(errp, -cur, "Failed to inquire current "
                               "file length");
    }
    if (offset != cur && exact) {
        bd_error_setg(errp, "Cannot resize device files");
        return -ENOTSUP;
    }
    if (cur < offset) {
        bd_error_setg(errp, "Cannot grow device files");
        return -EINVAL;
    }
    return 0;
}
