/*
 * block-file: the file and host_device drivers, as QEMU's file-posix
 * defines them: an image file (or a block or character device) opened
 * with open(2), I/O through one of three engines (aio=threads, native,
 * io_uring), and QEMU's byte-range locks on the file.
 *
 * This file is the glue: options, open/close, limits, permissions
 * (locking) and AioContext moves.  The I/O callbacks are in file-io.c,
 * the engines in file-aio-*.c, the lock bytes in file-lock.c.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <blockd/blockd.h>

#include "block-file-schema.h"
#include "file-state.h"

/* --- options -------------------------------------------------------------- */

/* Can this descriptor take OFD locks?  (Linux has them since 3.15.) */
static bool have_ofd_locks(int fd)
{
    struct flock fl = {
        .l_whence = SEEK_SET, .l_start = 0, .l_len = 0, .l_type = F_RDLCK,
    };

    return fcntl(fd, F_OFD_GETLK, &fl) == 0 || errno != EINVAL;
}

static bool select_engine(FileState *s, const char *aio, unsigned open_flags,
                          GError **errp)
{
    FileAioMode mode;

    if (!strcmp(aio, "native")) {
        mode = FILE_AIO_NATIVE;
        if (!(open_flags & BD_OPEN_CACHE_DIRECT)) {
            bd_error_setg(errp, "aio=native was specified, but it requires "
                          "cache.direct=on, which was not specified.");
            return false;
        }
    } else if (!strcmp(aio, "io_uring")) {
        mode = FILE_AIO_IO_URING;
    } else {
        mode = FILE_AIO_THREADS;
    }
    s->engine = file_aio_engine(mode);
    if (!s->engine) {
        bd_error_setg(errp,
                      "aio=%s was specified, but is not supported in this "
                      "build.", aio);
        return false;
    }
    return true;
}

static bool file_open_common(BdNode *node, JsonObject *options,
                             unsigned open_flags, bool device,
                             GError **errp)
{
    FileState *s = bd_node_get_opaque(node);
    const char *filename = json_object_get_string_member(options, "filename");
    const char *locking = bd_json_get_str(options, "locking", "auto");
    int64_t max_batch = bd_json_get_int(options, "aio-max-batch", 0);
    bool rdwr = open_flags & BD_OPEN_RDWR;
    struct statfs sfs;
    struct stat st;

    s->fd = -1;
    s->reopen_fd = -1;
    if (json_object_has_member(options, "pr-manager")) {
        bd_error_setg(errp, "No persistent reservation manager with id '%s' "
                      "(blockd does not support pr-manager)",
                      json_object_get_string_member(options, "pr-manager"));
        return false;
    }
    if (!select_engine(s, bd_json_get_str(options, "aio", "threads"),
                       open_flags, errp)) {
        return false;
    }
    s->max_batch = max_batch > 0 ? MIN(max_batch, UINT32_MAX) : 0;
    s->drop_cache = bd_json_get_bool(options, "drop-cache", true);
    s->check_cache_dropped = bd_json_get_bool(options, "x-check-cache-dropped",
                                      false);

    /* Dynamic auto-read-only: read-write only once a writer comes. */
    s->dynamic_ro = rdwr && (open_flags & BD_OPEN_AUTO_READ_ONLY);
    if (s->dynamic_ro) {
        rdwr = false;
    }
    s->open_flags = (rdwr ? O_RDWR : O_RDONLY) | O_CLOEXEC |
                    ((open_flags & BD_OPEN_CACHE_DIRECT) ? O_DIRECT : 0);
    s->fd = open(filename, s->open_flags);
    if (s->fd < 0 && rdwr && (errno == EACCES || errno == EROFS ||
                              errno == EPERM)) {
        g_autofree char *msg = g_strdup_printf("Could not open '%s'",
                                               filename);
        int err = errno;

        /* auto-read-only: go on read-only; otherwise QEMU's message. */
        errno = err;
        if (!bd_node_apply_auto_read_only(node, msg, errp)) {
            return false;
        }
        s->open_flags = (s->open_flags & ~O_RDWR) | O_RDONLY;
        s->fd = open(filename, s->open_flags);
    }
    if (s->fd < 0) {
        bd_error_setg(errp,
                      "Could not open '%s': %s", filename, g_strerror(errno));
        return false;
    }
    if (fstat(s->fd, &st) < 0) {
        bd_error_setg(errp, "Could not stat file: %s", g_strerror(errno));
        goto fail;
    }
    if (!device && !S_ISREG(st.st_mode)) {
        bd_error_setg(errp, "'%s' driver requires '%s' to be a regular file",
                      bd_node_get_driver_name(node), filename);
        goto fail;
    }
    if (device && !S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        bd_error_setg(errp,
                      "'%s' driver requires '%s' to be either a character "
                      "or block device", bd_node_get_driver_name(node),
                      filename);
        goto fail;
    }
    s->in_memory = S_ISREG(st.st_mode) && fstatfs(s->fd, &sfs) == 0 &&
                   (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
    s->filename = g_strdup(filename);
    s->options = json_object_ref(options);
    s->is_device = device;
    s->is_blk = S_ISBLK(st.st_mode);
    s->has_discard = true;
    s->has_write_zeroes = true;
    s->has_fallocate = !device;
    s->perm = 0;
    s->shared = BD_PERM_ALL;

    if (!strcmp(locking, "off")) {
        s->use_lock = false;
    } else if (have_ofd_locks(s->fd)) {
        s->use_lock = true;
    } else if (!strcmp(locking, "on")) {
        bd_error_setg(errp, "File lock requested but OFD locking syscall is "
                      "unavailable");
        goto fail;
    }

    if (!file_probe_alignment(s, errp)) {
        goto fail;
    }
    s->aio = file_aio_open(s->engine, bd_node_get_aio_context(node),
                           s->max_batch, errp);
    if (!s->aio) {
        goto fail;
    }
    return true;

fail:
    close(s->fd);
    s->fd = -1;
    g_free(s->filename);
    s->filename = NULL;
    g_clear_pointer(&s->options, json_object_unref);
    return false;
}

static bool file_open(BdNode *node, JsonObject *options, unsigned open_flags,
                      GError **errp)
{
    return file_open_common(node, options, open_flags, false, errp);
}

static bool hdev_open(BdNode *node, JsonObject *options, unsigned open_flags,
                      GError **errp)
{
    return file_open_common(node, options, open_flags, true, errp);
}

static void file_close(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);

    file_aio_close(s->aio);
    s->aio = NULL;
    if (s->fd >= 0) {
        close(s->fd);       /* releases the OFD locks with it */
        s->fd = -1;
    }
    g_free(s->filename);
    s->filename = NULL;
    g_clear_pointer(&s->options, json_object_unref);
}

static bool file_refresh_limits(BdNode *node, BdBlockLimits *limits,
                                GError **errp)
{
    FileState *s = bd_node_get_opaque(node);
    long page = sysconf(_SC_PAGESIZE);

    limits->request_alignment = s->request_alignment;
    if (s->buf_align > 1) {
        limits->min_mem_alignment = s->buf_align;
        limits->opt_mem_alignment = MAX(s->buf_align, (uint32_t)page);
    }
    limits->supported_zero_flags = BD_REQ_MAY_UNMAP | BD_REQ_NO_FALLBACK;
    return true;
}

/* --- permissions and locks ------------------------------------------------ */

/* Permissions that need a read-write descriptor. */
#define WRITER_PERMS (BD_PERM_WRITE | BD_PERM_WRITE_UNCHANGED | BD_PERM_RESIZE)

/*
 * Dynamic auto-read-only: when users start or stop writing, open the
 * file again read-write or read-only (QEMU's raw_reconfigure_getfd());
 * the new descriptor replaces the old one in set_perm.  Not while a
 * blockdev-reopen has its own new descriptor prepared.
 */
static bool perm_prepare_fd(FileState *s, uint64_t perm, GError **errp)
{
    int want, fd;
    FileState probe;

    if (!s->dynamic_ro || s->reopen_fd >= 0) {
        return true;
    }
    want = (s->open_flags & ~O_ACCMODE) |
           ((perm & WRITER_PERMS) ? O_RDWR : O_RDONLY);
    if (want == s->open_flags) {
        return true;
    }
    fd = open(s->filename, want);
    if (fd < 0) {
        bd_error_setg(errp, "Could not open '%s': %s", s->filename,
                      g_strerror(errno));
        return false;
    }
    probe = *s;
    probe.fd = fd;
    probe.open_flags = want;
    if (!file_probe_alignment(&probe, errp)) {
        close(fd);
        return false;
    }
    s->reopen_fd = fd;
    memset(&s->reopen_locks, 0, sizeof(s->reopen_locks));
    s->perm_fd_pending = true;
    s->perm_fd_flags = want;
    return true;
}

static void perm_drop_fd(FileState *s)
{
    if (s->perm_fd_pending) {
        close(s->reopen_fd);
        s->reopen_fd = -1;
        s->perm_fd_pending = false;
    }
}

/*
 * As QEMU does: first take the bytes for the union of the old and new
 * permissions, then check others' bytes against the new ones; commit
 * releases what is no longer needed, abort goes back to the old set.
 */
static bool file_check_perm(BdNode *node, uint64_t perm, uint64_t shared,
                            GError **errp)
{
    FileState *s = bd_node_get_opaque(node);
    uint64_t mask = (1u << FILE_LOCK_NPERMS) - 1;

    if (!perm_prepare_fd(s, perm, errp)) {
        return false;
    }
    if (!s->use_lock) {
        return true;
    }
    if (!file_lock_apply(s->fd, &s->locks, (s->perm | perm) & mask,
                         (~s->shared | ~shared) & mask, false, errp)) {
        goto undo;
    }
    if (bd_node_get_open_flags(node) & BD_OPEN_FORCE_SHARE) {
        goto copy;
    }
    if (!file_lock_check(s->fd, perm & mask, shared | ~mask, errp)) {
        goto undo;
    }
copy:
    /*
     * A prepared reopen's descriptor takes the same bytes only now, after
     * the check: its shared locks would look like another holder's to
     * the check on the old descriptor.
     */
    if (s->reopen_fd >= 0 &&
        !file_lock_apply(s->reopen_fd, &s->reopen_locks,
                         (s->perm | perm) & mask,
                         (~s->shared | ~shared) & mask, false, errp)) {
        goto undo;
    }
    return true;
undo:
    file_lock_apply(s->fd, &s->locks, s->perm & mask, ~s->shared & mask,
                    true, NULL);
    if (s->reopen_fd >= 0) {
        file_lock_apply(s->reopen_fd, &s->reopen_locks, s->perm & mask,
                        ~s->shared & mask, true, NULL);
    }
    perm_drop_fd(s);
    return false;
}

static void file_set_perm(BdNode *node, uint64_t perm, uint64_t shared)
{
    FileState *s = bd_node_get_opaque(node);
    uint64_t mask = (1u << FILE_LOCK_NPERMS) - 1;

    s->perm = perm;
    s->shared = shared;
    if (s->use_lock) {
        /* Releasing a lock does not fail in a way we could act on. */
        file_lock_apply(s->fd, &s->locks, perm & mask, ~shared & mask, true,
                        NULL);
        if (s->reopen_fd >= 0) {
            file_lock_apply(s->reopen_fd, &s->reopen_locks, perm & mask,
                            ~shared & mask, true, NULL);
        }
    }
    if (s->perm_fd_pending) {
        /* As QEMU does: requests submitted from now on use the new fd. */
        close(s->fd);
        s->fd = s->reopen_fd;
        file_aio_fd_changed(s->aio);
        s->locks = s->reopen_locks;
        s->open_flags = s->perm_fd_flags;
        s->reopen_fd = -1;
        s->perm_fd_pending = false;
    }
}

static void file_abort_perm(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);
    uint64_t mask = (1u << FILE_LOCK_NPERMS) - 1;

    if (s->use_lock) {
        file_lock_apply(s->fd, &s->locks, s->perm & mask, ~s->shared & mask,
                        true, NULL);
        if (s->reopen_fd >= 0) {
            file_lock_apply(s->reopen_fd, &s->reopen_locks, s->perm & mask,
                            ~s->shared & mask, true, NULL);
        }
    }
    perm_drop_fd(s);
}

/* --- blockdev-reopen ----------------------------------------------------- */

/* What a prepared reopen keeps until commit or abort. */
typedef struct FileReopen {
    JsonObject *options;
    int open_flags;
    uint32_t request_alignment, buf_align;
    bool drop_cache, check_cache_dropped;
    bool dynamic_ro;
} FileReopen;

/* Options of the node itself, which the core checks. */
static bool is_common_option(const char *name)
{
    static const char *const common[] = {
        "driver", "node-name", "discard", "cache", "read-only",
        "auto-read-only", "force-share", "detect-zeroes",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(common); i++) {
        if (!strcmp(common[i], name)) {
            return true;
        }
    }
    return false;
}

/*
 * As QEMU's file driver: only drop-cache and x-check-cache-dropped may
 * change; the read-only and cache options take a new descriptor opened
 * with the new flags, which replaces the old one at commit.
 */
static bool file_reopen_prepare(BdNode *node, JsonObject *options,
                                void **state, GError **errp)
{
    FileState *s = bd_node_get_opaque(node);
    g_autoptr(GList) names = json_object_get_members(options);
    JsonObject *cache = json_object_has_member(options, "cache")
        ? json_object_get_object_member(options, "cache") : NULL;
    bool ro = bd_json_get_bool(options, "read-only", false);
    bool direct = cache && bd_json_get_bool(cache, "direct", false);
    FileState probe;
    FileReopen *r;
    int fd;

    for (GList *l = names; l; l = l->next) {
        const char *name = l->data;
        JsonNode *old = json_object_get_member(s->options, name);

        if (is_common_option(name) || !strcmp(name, "drop-cache") ||
            !strcmp(name, "x-check-cache-dropped")) {
            continue;
        }
        if (!old || !json_node_equal(old,
                                     json_object_get_member(options, name))) {
            bd_error_setg(errp, "Cannot change the option '%s'", name);
            return false;
        }
    }
    /* QEMU's "mutable" option: once given, it must be given again. */
    if (json_object_has_member(s->options, "drop-cache") &&
        !json_object_has_member(options, "drop-cache")) {
        bd_error_setg(errp,
                      "Option 'drop-cache' cannot be reset to its default "
                      "value");
        return false;
    }
    if (!direct && !strcmp(s->engine->name, "native")) {
        bd_error_setg(errp, "aio=native was specified, but it requires "
                      "cache.direct=on, which was not specified.");
        return false;
    }

    r = g_new0(FileReopen, 1);
    r->dynamic_ro = !ro && bd_json_get_bool(options, "auto-read-only", false);
    if (r->dynamic_ro && !(s->perm & WRITER_PERMS)) {
        ro = true;
    }
    r->open_flags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC |
                    (direct ? O_DIRECT : 0);
    fd = open(s->filename, r->open_flags);
    if (fd < 0) {
        bd_error_setg(errp, "Could not reopen file: %s", g_strerror(errno));
        g_free(r);
        return false;
    }
    probe = *s;
    probe.fd = fd;
    probe.open_flags = r->open_flags;
    if (!file_probe_alignment(&probe, errp)) {
        close(fd);
        g_free(r);
        return false;
    }
    r->request_alignment = probe.request_alignment;
    r->buf_align = probe.buf_align;
    r->drop_cache = bd_json_get_bool(options, "drop-cache", true);
    r->check_cache_dropped = bd_json_get_bool(options, "x-check-cache-dropped",
                                      false);
    r->options = json_object_ref(options);
    s->reopen_fd = fd;
    memset(&s->reopen_locks, 0, sizeof(s->reopen_locks));
    *state = r;
    return true;
}

static void file_reopen_commit(BdNode *node, void *state)
{
    FileState *s = bd_node_get_opaque(node);
    FileReopen *r = state;
    uint64_t mask = (1u << FILE_LOCK_NPERMS) - 1;

    if (s->use_lock) {
        /*
         * The new descriptor holds what the committed permissions need
         * before the old one goes (shared locks never conflict with each
         * other, so this only fails when the kernel runs out of locks).
         */
        g_autoptr(GError) err = NULL;

        if (!file_lock_apply(s->reopen_fd, &s->reopen_locks,
                             s->perm & mask, ~s->shared & mask, true,
                             &err)) {
            g_warning("%s: %s", s->filename, err->message);
        }
    }
    close(s->fd);
    s->fd = s->reopen_fd;
    file_aio_fd_changed(s->aio);
    s->locks = s->reopen_locks;
    s->reopen_fd = -1;
    s->open_flags = r->open_flags;
    s->request_alignment = r->request_alignment;
    s->buf_align = r->buf_align;
    s->drop_cache = r->drop_cache;
    s->check_cache_dropped = r->check_cache_dropped;
    s->dynamic_ro = r->dynamic_ro;
    json_object_unref(s->options);
    s->options = r->options;
    g_free(r);
}

static void file_reopen_abort(BdNode *node, void *state)
{
    FileState *s = bd_node_get_opaque(node);
    FileReopen *r = state;

    close(s->reopen_fd);        /* and its lock bytes */
    s->reopen_fd = -1;
    json_object_unref(r->options);
    g_free(r);
}

/* --- AioContext moves ----------------------------------------------------- */

static void file_detach_aio_context(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);

    file_aio_close(s->aio);
    s->aio = NULL;
}

static void file_attach_aio_context(BdNode *node, BdAioContext *new_ctx)
{
    FileState *s = bd_node_get_opaque(node);
    GError *err = NULL;

    s->aio = file_aio_open(s->engine, new_ctx, s->max_batch, &err);
    if (!s->aio) {
        /*
         * The kernel refused a new ring in this context (limits on
         * io_uring or AIO contexts); the thread pool always works.
         */
        g_warning("%s: %s; using aio=threads", s->filename, err->message);
        g_error_free(err);
        s->engine = &file_aio_threads;
        s->aio = file_aio_open(s->engine, new_ctx, s->max_batch, NULL);
    }
}

/* --- the drivers ---------------------------------------------------------- */

/* A file node is named by its path. */
static char *file_exact_filename(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);

    return g_strdup(s->filename);
}

/* What the file occupies on the host (holes do not count). */
static int64_t file_allocated_file_size(BdNode *node)
{
    FileState *s = bd_node_get_opaque(node);
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

/* Files keep no "in use" mark: never dirty. */
static int file_get_info(BdNode *node, bool *is_dirty)
{
    *is_dirty = false;
    return 0;
}

#define FILE_DRIVER_COMMON                                              \
    .struct_size = sizeof(BdBlockDriver),                               \
    .instance_size = sizeof(FileState),                                 \
    .flags = BD_DRIVER_PROTOCOL | BD_DRIVER_THREAD_SAFE,                \
    .close = file_close,                                                \
    .refresh_limits = file_refresh_limits,                              \
    .co_getlength = file_co_getlength,                                  \
    .co_preadv = file_co_preadv,                                        \
    .co_pwritev = file_co_pwritev,                                      \
    .co_pwrite_zeroes = file_co_pwrite_zeroes,                          \
    .co_pdiscard = file_co_pdiscard,                                    \
    .co_flush = file_co_flush,                                          \
    .co_pread_to_fd = file_co_pread_to_fd,                              \
    .co_block_status = file_co_block_status,                            \
    .co_truncate = file_co_truncate,                                    \
    .check_perm = file_check_perm,                                      \
    .set_perm = file_set_perm,                                          \
    .abort_perm = file_abort_perm,                                      \
    .detach_aio_context = file_detach_aio_context,                      \
    .attach_aio_context = file_attach_aio_context,                      \
    .reopen_prepare = file_reopen_prepare,                              \
    .reopen_commit = file_reopen_commit,                                \
    .reopen_abort = file_reopen_abort,                                  \
    .exact_filename = file_exact_filename,                              \
    .get_allocated_file_size = file_allocated_file_size,                \
    .get_info = file_get_info

static const BdBlockDriver file_driver = {
    FILE_DRIVER_COMMON,
    .name = "file",
    .description = "image files (aio=threads, native, io_uring)",
    .open = file_open,
    .co_create = file_co_create,
};

static const BdBlockDriver hdev_driver = {
    FILE_DRIVER_COMMON,
    .name = "host_device",
    .description = "host block and character devices",
    .open = hdev_open,
};

static bool block_file_init(BdRegistry *reg, GError **errp)
{
    return bd_registry_add_block_driver(reg, &file_driver, errp) &&
           bd_registry_add_block_driver(reg, &hdev_driver, errp);
}

BD_PLUGIN(.name = "block-file",
          .version = BLOCKD_PLUGIN_VERSION,
          .description = "file and host_device block drivers",
          .license = "GPL-2.0-or-later",
          .schema = block_file_schema,
          .init = block_file_init);
