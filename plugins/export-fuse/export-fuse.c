/*
 * export-fuse: a block node seen as a regular file (type=fuse exports).
 *
 * The file shows the node's content as a raw image.  Each kernel request
 * runs in its own coroutine in the export's AioContext, so a slow request
 * does not hold up the others; the answers (errno values, what a
 * read-only or non-growable export refuses, chmod/chown) are those of
 * qemu-storage-daemon 7.2's FUSE export.
 */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */

#include "fuse-mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <blockd/blockd.h>

#include "export-fuse-schema.h"

/* Splitting of discard and write-zeroes ranges (QEMU's request limit). */
#define FUSE_MAX_CHUNK ((int64_t)1 << 30)


typedef struct FuseExport {
    BdExport *exp;
    BdBlockBackend *blk;
    FuseMount *mount;
    bool writable;
    bool growable;
    bool allow_other;
    mode_t st_mode;
    uid_t st_uid;
    gid_t st_gid;
    /* Serialises growing so that two racing writes never shrink the node. */
    BdCoMutex resize_lock;
} FuseExport;

/*
 * QEMU 7.2 measures nodes in 512-byte sectors, so its FUSE file's size is
 * the node's length rounded up; the tail reads as zeroes.
 */
static int64_t fuse_visible_length(int64_t len)
{
    return len < 0 ? len : (len + 511) & ~(int64_t)511;
}

/*
 * What stat() shows, as QEMU's export: st_blocks from the bytes the node
 * occupies on the host (all of the file when that is not known), so that
 * du sees a sparse image as sparse; st_blksize the node's request
 * alignment.  Main loop or the node's context.
 */
static int fuse_fill_stat(FuseExport *fe, fuse_ino_t ino, struct stat *st)
{
    int64_t len = fuse_visible_length(bd_blk_getlength(fe->blk));
    BdNode *node = bd_blk_get_node(fe->blk);
    int64_t allocated;
    time_t now = time(NULL);

    if (len < 0) {
        return len;
    }
    allocated = bd_node_get_allocated_file_size(node);
    if (allocated <= 0) {
        allocated = len;
    }
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = fe->st_mode;
    st->st_nlink = 1;
    st->st_uid = fe->st_uid;
    st->st_gid = fe->st_gid;
    st->st_size = len;
    st->st_blksize = bd_node_get_request_alignment(node);
    st->st_blocks = (allocated + 511) / 512;
    st->st_atime = now;
    st->st_mtime = now;
    st->st_ctime = now;
    return 0;
}

/*
 * coroutine_fn: reply to @req with the attributes, fetched in the node's
 * context (a multi-threaded export's threads are others): the reply
 * leaves from the thread that read the request.
 */
static void fuse_co_reply_stat(fuse_req_t req, void *opaque)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    BdAioContext *home = bd_aio_current_context();
    struct stat st;
    int ret;

    bd_aio_co_reschedule_self(
        bd_node_get_aio_context(bd_blk_get_node(fe->blk)));
    ret = fuse_fill_stat(fe, (fuse_ino_t)(uintptr_t)opaque, &st);
    bd_aio_co_reschedule_self(home);
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_attr(req, &st, 1.0);
    }
}

static void fuse_reply_stat(fuse_req_t req, FuseExport *fe, fuse_ino_t ino)
{
    BdAioContext *node_ctx =
        bd_node_get_aio_context(bd_blk_get_node(fe->blk));
    struct stat st;
    int ret;

    if (bd_in_coroutine()) {
        fuse_co_reply_stat(req, (void *)(uintptr_t)ino);
        return;
    }
    if (node_ctx != bd_aio_current_context()) {
        fuse_mount_spawn(req, fe->mount, fuse_co_reply_stat,
                         (void *)(uintptr_t)ino);
        return;
    }
    ret = fuse_fill_stat(fe, ino, &st);
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_attr(req, &st, 1.0);
    }
}

/* coroutine_fn: resize the node (RESIZE is held when writable/growable). */
static int fuse_co_truncate(FuseExport *fe, int64_t size,
                            BdPreallocMode prealloc)
{
    g_autoptr(GError) err = NULL;

    return bd_blk_co_truncate(fe->blk, size, true, prealloc, 0, &err);
}

/*
 * coroutine_fn: grow the node to at least @end bytes; a concurrent
 * request may already have grown it further, which is kept.
 */
static int fuse_co_grow(FuseExport *fe, int64_t end, BdPreallocMode prealloc)
{
    int64_t len;
    int ret = 0;

    bd_co_mutex_lock(&fe->resize_lock);
    len = bd_blk_co_getlength(fe->blk);
    if (len < 0) {
        ret = len;
    } else if (end > len) {
        ret = fuse_co_truncate(fe, end, prealloc);
    }
    bd_co_mutex_unlock(&fe->resize_lock);
    return ret;
}

/* --- init, lookup, getattr, setattr, open --------------------------------------- */

static void fuse_op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* libfuse insists that this matches the max_read mount option. */
    conn->max_read = FUSE_MOUNT_MAX_READ;
}

static void fuse_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    /* The mount point is the file itself: there is nothing below it. */
    fuse_reply_err(req, ENOENT);
}

static void fuse_op_getattr(fuse_req_t req, fuse_ino_t ino,
                            struct fuse_file_info *fi)
{
    fuse_reply_stat(req, fuse_mount_req_userdata(req), ino);
}

typedef struct FuseSetattr {
    fuse_ino_t ino;
    struct stat st;
    int to_set;
} FuseSetattr;

static void fuse_co_setattr(fuse_req_t req, void *opaque)
{
    FuseSetattr *a = opaque;
    FuseExport *fe = fuse_mount_req_userdata(req);

    if (a->to_set & FUSE_SET_ATTR_SIZE) {
        int ret;

        bd_co_mutex_lock(&fe->resize_lock);
        ret = fuse_co_truncate(fe, a->st.st_size, BD_PREALLOC_OFF);
        bd_co_mutex_unlock(&fe->resize_lock);
        if (ret < 0) {
            fuse_reply_err(req, -ret);
            g_free(a);
            return;
        }
    }
    if (a->to_set & FUSE_SET_ATTR_MODE) {
        /* Keep the type: only the permission bits change. */
        fe->st_mode = S_IFREG | (a->st.st_mode & 07777);
    }
    if (a->to_set & FUSE_SET_ATTR_UID) {
        fe->st_uid = a->st.st_uid;
    }
    if (a->to_set & FUSE_SET_ATTR_GID) {
        fe->st_gid = a->st.st_gid;
    }
    fuse_reply_stat(req, fe, a->ino);
    g_free(a);
}

/*
 * Size, mode and (with allow_other) owner may change; mode only as far
 * as it means something: no write bits on a read-only export, no access
 * for others when others cannot get in anyway.
 */
static void fuse_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st,
                            int to_set, struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    int supported = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE;
    FuseSetattr *a;

    if (fe->allow_other) {
        supported |= FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;
    }
    if (to_set & ~supported) {
        fuse_reply_err(req, ENOTSUP);
        return;
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        if (!fe->allow_other && (st->st_mode & (S_IRWXG | S_IRWXO))) {
            fuse_reply_err(req, EPERM);
            return;
        }
        if (!fe->writable && (st->st_mode & (S_IWUSR | S_IWGRP | S_IWOTH))) {
            fuse_reply_err(req, EROFS);
            return;
        }
    }
    if ((to_set & FUSE_SET_ATTR_SIZE) && !fe->writable) {
        fuse_reply_err(req, EACCES);
        return;
    }

    a = g_new(FuseSetattr, 1);
    *a = (FuseSetattr) { .ino = ino, .st = *st, .to_set = to_set };
    fuse_mount_spawn(req, fe->mount, fuse_co_setattr, a);
}

static void fuse_op_open(fuse_req_t req, fuse_ino_t ino,
                         struct fuse_file_info *fi)
{
    /* No page cache: every read and write reaches the node. */
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

/* --- read, write ---------------------------------------------------------- */

typedef struct FuseRw {
    int64_t offset;
    size_t size;
    void *buf;
    void *mem;      /* writes: what holds @buf */
    bool taken;     /* @mem is libfuse's request buffer, else g_malloc'd */
} FuseRw;

/* Writes of at least this many bytes keep libfuse's buffer (no copy). */
#define FUSE_WRITE_TAKE_MIN (64 * 1024)

static void fuse_co_read(fuse_req_t req, void *opaque)
{
    FuseRw *rw = opaque;
    FuseExport *fe = fuse_mount_req_userdata(req);
    int64_t len = bd_blk_co_getlength(fe->blk);
    int64_t vis = fuse_visible_length(len);
    int64_t n, data;
    int ret = 0;

    if (len < 0) {
        fuse_reply_err(req, -len);
        goto out;
    }
    /* Short reads at the end of file, nothing past it. */
    n = rw->offset >= vis ? 0 : MIN((int64_t)rw->size, vis - rw->offset);
    data = rw->offset >= len ? 0 : MIN(n, len - rw->offset);
    rw->buf = g_try_malloc(n ? n : 1);
    if (!rw->buf) {
        fuse_reply_err(req, ENOMEM);
        goto out;
    }
    if (data > 0) {
        ret = bd_blk_co_pread(fe->blk, rw->offset, data, rw->buf, 0);
    }
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        memset((char *)rw->buf + data, 0, n - data);
        fuse_reply_buf(req, rw->buf, n);
    }
out:
    g_free(rw->buf);
    g_free(rw);
}

static void fuse_op_read(fuse_req_t req, fuse_ino_t ino, size_t size,
                         off_t offset, struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    FuseRw *rw;

    if (size > FUSE_MOUNT_MAX_READ) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    rw = g_new0(FuseRw, 1);
    rw->offset = offset;
    rw->size = size;
    fuse_mount_spawn(req, fe->mount, fuse_co_read, rw);
}

static void fuse_co_write(fuse_req_t req, void *opaque)
{
    FuseRw *rw = opaque;
    FuseExport *fe = fuse_mount_req_userdata(req);
    int64_t end = rw->offset + (int64_t)rw->size;
    int64_t len = bd_blk_co_getlength(fe->blk);
    int ret;

    if (len < 0) {
        ret = len;
        goto out;
    }
    if (end > len) {
        if (fe->growable) {
            ret = fuse_co_grow(fe, end, BD_PREALLOC_OFF);
            if (ret < 0) {
                goto out;
            }
        } else if (rw->offset >= len) {
            /* Nothing of it fits: an I/O error, as for QEMU. */
            ret = -EIO;
            goto out;
        } else {
            /* Short write up to the end. */
            rw->size = len - rw->offset;
        }
    }
    ret = bd_blk_co_pwrite(fe->blk, rw->offset, rw->size, rw->buf, 0);
out:
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_write(req, rw->size);
    }
    if (rw->taken) {
        fuse_mount_release_request_buffer(fe->mount, rw->mem);
    } else {
        g_free(rw->mem);
    }
    g_free(rw);
}

static void fuse_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                          size_t size, off_t offset,
                          struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    FuseRw *rw;

    if (!fe->writable) {
        fuse_reply_err(req, EACCES);
        return;
    }
    rw = g_new0(FuseRw, 1);
    rw->offset = offset;
    rw->size = size;
    /*
     * libfuse reuses its buffer once this returns.  Large writes take the
     * whole buffer over instead of copying the data out of it; small
     * ones are copied, so that a buffer of max_write bytes is not held
     * for a few bytes of data.
     */
    if (size >= FUSE_WRITE_TAKE_MIN) {
        rw->mem = fuse_mount_take_request_buffer(fe->mount, buf, size);
    }
    if (rw->mem) {
        rw->taken = true;
        rw->buf = (void *)buf;
    } else {
        rw->mem = g_try_malloc(size ? size : 1);
        if (!rw->mem) {
            g_free(rw);
            fuse_reply_err(req, ENOMEM);
            return;
        }
        memcpy(rw->mem, buf, size);
        rw->buf = rw->mem;
    }
    fuse_mount_spawn(req, fe->mount, fuse_co_write, rw);
}

/* --- fallocate, flush, fsync, lseek ------------------------------------------ */

typedef struct FuseFalloc {
    int mode;
    int64_t offset;
    int64_t length;
} FuseFalloc;

static void fuse_co_fallocate(fuse_req_t req, void *opaque)
{
    FuseFalloc *a = opaque;
    FuseExport *fe = fuse_mount_req_userdata(req);
    int64_t off = a->offset, length = a->length;
    int64_t len = bd_blk_co_getlength(fe->blk);
    int ret = 0;

    if (len < 0) {
        ret = len;
        goto out;
    }
    if (a->mode & FALLOC_FL_KEEP_SIZE) {
        length = MIN(length, len - off);
    }

    if (a->mode == 0) {
        /* Plain allocation: only growing can allocate anything. */
        if (off < len) {
            ret = -EOPNOTSUPP;
        } else {
            if (off > len) {
                ret = fuse_co_grow(fe, off, BD_PREALLOC_OFF);
            }
            if (ret == 0) {
                ret = fuse_co_grow(fe, off + length, BD_PREALLOC_FALLOC);
            }
        }
    } else if (a->mode & FALLOC_FL_PUNCH_HOLE) {
        if (!(a->mode & FALLOC_FL_KEEP_SIZE)) {
            ret = -EINVAL;
            goto out;
        }
        while (ret == 0 && length > 0) {
            int64_t n = MIN(length, FUSE_MAX_CHUNK);

            ret = bd_blk_co_pdiscard(fe->blk, off, n);
            off += n;
            length -= n;
        }
    } else if (a->mode & FALLOC_FL_ZERO_RANGE) {
        if (!(a->mode & FALLOC_FL_KEEP_SIZE) && off + length > len) {
            ret = fuse_co_grow(fe, off + length, BD_PREALLOC_OFF);
        }
        while (ret == 0 && length > 0) {
            int64_t n = MIN(length, FUSE_MAX_CHUNK);

            ret = bd_blk_co_pwrite_zeroes(fe->blk, off, n, 0);
            off += n;
            length -= n;
        }
    } else {
        ret = -EOPNOTSUPP;
    }
out:
    fuse_reply_err(req, ret < 0 ? -ret : 0);
    g_free(a);
}

static void fuse_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
                              off_t offset, off_t length,
                              struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    FuseFalloc *a;

    if (!fe->writable) {
        fuse_reply_err(req, EACCES);
        return;
    }
    a = g_new(FuseFalloc, 1);
    *a = (FuseFalloc) { .mode = mode, .offset = offset, .length = length };
    fuse_mount_spawn(req, fe->mount, fuse_co_fallocate, a);
}

static void fuse_co_flush(fuse_req_t req, void *opaque)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    int ret = bd_blk_co_flush(fe->blk);

    fuse_reply_err(req, ret < 0 ? -ret : 0);
}

static void fuse_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                          struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_mount_req_userdata(req);

    fuse_mount_spawn(req, fe->mount, fuse_co_flush, NULL);
}

/* close() of a descriptor flushes too, as with QEMU. */
static void fuse_op_flush(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    fuse_op_fsync(req, ino, 1, fi);
}

typedef struct FuseLseek {
    int64_t offset;
    int whence;
} FuseLseek;

static void fuse_co_lseek(fuse_req_t req, void *opaque)
{
    FuseLseek *a = opaque;
    FuseExport *fe = fuse_mount_req_userdata(req);
    int64_t off = a->offset;
    int64_t len = bd_blk_co_getlength(fe->blk);
    int64_t vis = fuse_visible_length(len);

    if (len < 0) {
        fuse_reply_err(req, -len);
        goto out;
    }
    for (;;) {
        int64_t pnum = 0;
        int ret;

        if (off >= len) {
            /* Past the data: the rest up to the visible end is a hole. */
            if (off > vis || a->whence == SEEK_DATA) {
                fuse_reply_err(req, ENXIO);
            } else {
                fuse_reply_lseek(req, off);
            }
            goto out;
        }
        ret = bd_blk_co_block_status(fe->blk, true, off, len - off, &pnum,
                                     NULL, NULL);
        if (ret < 0) {
            fuse_reply_err(req, -ret);
            goto out;
        }
        if (!!(ret & BD_BLOCK_DATA) == (a->whence == SEEK_DATA)) {
            fuse_reply_lseek(req, off);
            goto out;
        }
        if (pnum <= 0) {
            /* No progress: do not loop for ever. */
            fuse_reply_err(req, ENXIO);
            goto out;
        }
        off += pnum;
    }
out:
    g_free(a);
}

static void fuse_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off,
                          int whence, struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_mount_req_userdata(req);
    FuseLseek *a;

    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    a = g_new(FuseLseek, 1);
    *a = (FuseLseek) { .offset = off, .whence = whence };
    fuse_mount_spawn(req, fe->mount, fuse_co_lseek, a);
}

static const struct fuse_lowlevel_ops fuse_export_ops = {
    .init = fuse_op_init,
    .lookup = fuse_op_lookup,
    .getattr = fuse_op_getattr,
    .setattr = fuse_op_setattr,
    .open = fuse_op_open,
    .read = fuse_op_read,
    .write = fuse_op_write,
    .fallocate = fuse_op_fallocate,
    .flush = fuse_op_flush,
    .fsync = fuse_op_fsync,
    .lseek = fuse_op_lseek,
};

/* --- the export type ------------------------------------------------------ */

static bool fuse_export_create(BdExport *exp, JsonObject *opts, GError **errp)
{
    FuseExport *fe = bd_export_get_opaque(exp);
    const char *mountpoint = json_object_get_string_member(opts,
                                                           "mountpoint");
    const char *ao = json_object_get_string_member_with_default(
        opts, "allow-other", NULL);
    FuseAllowOther allow_other;
    BdAioContext *const *ctxs;
    BdAioContext *ctx;
    size_t nctx;

    fe->exp = exp;
    fe->blk = bd_export_get_blk(exp);
    fe->writable = bd_export_is_writable(exp);
    fe->growable = json_object_get_boolean_member_with_default(
        opts, "growable", false);
    bd_co_mutex_init(&fe->resize_lock);
    if (!fuse_allow_other_parse(ao, &allow_other)) {
        bd_error_setg(errp, "Invalid allow-other value '%s'", ao);
        return false;
    }

    /* Growing writes and truncation need RESIZE for the whole life. */
    if (fe->writable || fe->growable) {
        uint64_t perm, shared;

        bd_blk_get_perm(fe->blk, &perm, &shared);
        if (!bd_blk_set_perm(fe->blk, perm | BD_PERM_RESIZE, shared, errp)) {
            return false;
        }
    }

    fe->st_mode = S_IFREG | S_IRUSR | (fe->writable ? S_IWUSR : 0);
    fe->st_uid = getuid();
    fe->st_gid = getgid();

    nctx = bd_export_get_multithread_contexts(exp, &ctxs);
    if (nctx == 0) {
        ctx = bd_export_get_aio_context(exp);
        ctxs = &ctx;
        nctx = 1;
    }
    fe->mount = fuse_mount_new(mountpoint, allow_other, ctxs, nctx,
                               &fuse_export_ops, fe, errp);
    if (!fe->mount) {
        return false;
    }
    fe->allow_other = fuse_mount_allows_other(fe->mount);
    return true;
}

/* Main loop: the readers have stopped and the last request replied. */
static void fuse_export_drained(void *opaque)
{
    FuseExport *fe = opaque;

    bd_export_unref(fe->exp);
}

static void fuse_export_request_shutdown(BdExport *exp)
{
    FuseExport *fe = bd_export_get_opaque(exp);

    /*
     * No new requests; the ones running finish against the BlockBackend,
     * which stays until destroy(): hold the export until then.  The
     * unmount happens in destroy(), after the last reply.
     */
    if (!fuse_mount_shutdown(fe->mount, fuse_export_drained, fe)) {
        bd_export_ref(exp);
    }
}

static void fuse_export_destroy(BdExport *exp)
{
    FuseExport *fe = bd_export_get_opaque(exp);

    g_clear_pointer(&fe->mount, fuse_mount_free);
}

static const BdExportType fuse_export_type = {
    .struct_size = sizeof(BdExportType),
    .name = "fuse",
    .description = "a block node as a regular file, through FUSE",
    .instance_size = sizeof(FuseExport),
    .create = fuse_export_create,
    .request_shutdown = fuse_export_request_shutdown,
    .destroy = fuse_export_destroy,
    /* One /dev/fuse queue per iothread (see fuse-mount.h). */
    .supports_multithread = true,
};

static bool export_fuse_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_export_type(reg, &fuse_export_type, errp);
}

BD_PLUGIN(.name = "export-fuse",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "the FUSE export: a block node as a regular file",
          .license = "GPL-2.0-or-later",
          .schema = export_fuse_schema,
          .init = export_fuse_init);
