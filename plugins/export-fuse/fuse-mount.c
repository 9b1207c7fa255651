/*
 * export-fuse: the FUSE session of one export (see fuse-mount.h).
 */
#include "fuse-mount.h"

#include <errno.h>
#include <linux/fuse.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <blockd/blockd.h>

/* Requests read per fd-handler call before the loop gets a turn again. */
#define FUSE_RECEIVE_BATCH 16

/*
 * Receive buffers kept per queue after their requests finished, for the
 * next takeovers: without them every large write would cost a malloc()
 * and free() of libfuse's whole buffer (over 1 MiB), which glibc serves
 * by growing and trimming the heap, with page faults on every new page.
 * Enough for the requests a client usually keeps in flight, and a bound
 * on what an idle mount holds.
 */
#define FUSE_SPARE_BUFFERS 8

/* One /dev/fuse descriptor of a mount and the context that serves it. */
typedef struct FuseQueue {
    FuseMount *m;
    BdAioContext *ctx;
    int fd;                 /* the session's own for the first queue */
    /* The rest is used in ctx's thread only, once reading started. */
    bool reading;           /* fd handler installed */
    bool counted;           /* holds its share of m->in_flight */
    struct fuse_buf buf;    /* libfuse's receive buffer, reused */
    /* Buffers taken over by requests and given back, all of one size. */
    void *spare[FUSE_SPARE_BUFFERS];
    unsigned nspare;
} FuseQueue;

struct FuseMount {
    struct fuse_session *se;
    void *userdata;
    BdAioContext *main_ctx;
    char *mountpoint;       /* as given: for messages and unmounting */
    char *key;              /* canonical form, in fuse_mounts */
    bool allow_other;
    bool mounted;
    FuseQueue *queues;
    size_t nqueues;
    /*
     * Requests running plus queues still reading.  Atomic: the queues'
     * threads change it.  Reaches zero once only, after shutdown.
     */
    gint in_flight;
    void (*idle_cb)(void *opaque);
    void *idle_opaque;
};

typedef struct FuseCo {
    FuseMount *m;
    fuse_req_t req;
    FuseRequestFunc *fn;
    void *arg;
} FuseCo;

/*
 * Mount points in use by this process.  A stat() of one of them would wait
 * for this very thread to answer, so the check must happen before it.
 */
static GHashTable *fuse_mounts;

bool fuse_allow_other_parse(const char *str, FuseAllowOther *out)
{
    if (!str || !strcmp(str, "auto")) {
        *out = FUSE_ALLOW_OTHER_AUTO;
    } else if (!strcmp(str, "on")) {
        *out = FUSE_ALLOW_OTHER_ON;
    } else if (!strcmp(str, "off")) {
        *out = FUSE_ALLOW_OTHER_OFF;
    } else {
        return false;
    }
    return true;
}

/*
 * The directory resolved, the last component as given: "mp", "./mp" and
 * "/abs/dir/mp" name the same mount.  The file itself is not resolved (a
 * symlink is mounted over as a link, like QEMU does), and resolving the
 * directory never touches a mount of ours (those are files).
 */
static char *fuse_mount_key(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *real = realpath(dir, NULL);

    if (!real) {
        return g_strdup(path);
    }
    return g_build_filename(real, base, NULL);
}

static bool fuse_check_mountpoint(const char *path, GError **errp)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        int err = errno;

        if (err == ENOTCONN) {
            /*
             * A FUSE mount whose server is gone: a daemon that was killed
             * before it could unmount.  Nobody else can clean it up.
             */
            bd_error_setg(errp,
                          "Failed to stat '%s': %s (a FUSE export that was "
                          "not unmounted, e.g. of a daemon that was killed, "
                          "is still mounted there: remove it with "
                          "'fusermount3 -u -z %s')",
                          path, g_strerror(err), path);
        } else {
            bd_error_setg(errp,
                          "Failed to stat '%s': %s", path, g_strerror(err));
        }
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        bd_error_setg(errp, "'%s' is not a regular file", path);
        return false;
    }
    return true;
}

static void fuse_mount_idle_bh(void *opaque)
{
    FuseMount *m = opaque;
    void (*cb)(void *) = m->idle_cb;

    m->idle_cb = NULL;
    if (cb) {
        cb(m->idle_opaque);
    }
}

static void fuse_mount_dec(FuseMount *m)
{
    if (g_atomic_int_dec_and_test(&m->in_flight)) {
        /* Not from here: the callback may free what the caller uses. */
        bd_aio_bh_schedule_oneshot(m->main_ctx, fuse_mount_idle_bh, m);
    }
}

static void fuse_queue_stop_reading(FuseQueue *q)
{
    if (q->reading) {
        bd_aio_set_fd_handler(q->ctx, q->fd, NULL, NULL, NULL, NULL);
        q->reading = false;
    }
}

/* In the queue's thread: no more reading; drop the queue's count. */
static void fuse_queue_stop(FuseQueue *q)
{
    fuse_queue_stop_reading(q);
    if (q->counted) {
        q->counted = false;
        fuse_mount_dec(q->m);
    }
}

/* The main thread waits for a queue of another thread to stop. */
typedef struct FuseStopWait {
    FuseQueue *q;
    GMutex lock;
    GCond cond;
    bool done;
} FuseStopWait;

static void fuse_queue_stop_bh(void *opaque)
{
    FuseStopWait *w = opaque;

    fuse_queue_stop(w->q);
    g_mutex_lock(&w->lock);
    w->done = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

static void fuse_queue_read(void *opaque)
{
    FuseQueue *q = opaque;
    FuseMount *m = q->m;

    for (int i = 0; i < FUSE_RECEIVE_BATCH && q->reading; i++) {
        int ret;

        do {
            ret = fuse_session_receive_buf(m->se, &q->buf);
        } while (ret == -EINTR);

        if (fuse_session_exited(m->se)) {
            /*
             * Unmounted behind our back (fusermount3 -u) or shutting
             * down: nothing more to read.  The count stays until the
             * shutdown, which alone may bring it to zero.
             */
            fuse_queue_stop_reading(q);
            return;
        }
        if (ret <= 0) {
            /* -EAGAIN: drained; other errors: libfuse has logged them. */
            return;
        }
        fuse_session_process_buf(m->se, &q->buf);
    }
}

/*
 * With several queues libfuse still sees one descriptor, the session's:
 * these route its reads and replies to the descriptor of the queue whose
 * thread makes the call (a request is read, run and answered in one
 * thread).
 */
static FuseQueue *fuse_queue_of_thread(FuseMount *m)
{
    BdAioContext *ctx = bd_aio_current_context();

    for (size_t i = 0; i < m->nqueues; i++) {
        if (m->queues[i].ctx == ctx) {
            return &m->queues[i];
        }
    }
    return NULL;
}

static ssize_t fuse_io_read(int fd, void *buf, size_t len, void *userdata)
{
    FuseQueue *q = fuse_queue_of_thread(userdata);

    return read(q ? q->fd : fd, buf, len);
}

static ssize_t fuse_io_writev(int fd, struct iovec *iov, int count,
                              void *userdata)
{
    FuseQueue *q = fuse_queue_of_thread(userdata);

    return writev(q ? q->fd : fd, iov, count);
}

static const struct fuse_custom_io fuse_multi_queue_io = {
    .read = fuse_io_read,
    .writev = fuse_io_writev,
};

void *fuse_mount_take_request_buffer(FuseMount *m, const void *data,
                                     size_t size)
{
    FuseQueue *q = m->nqueues == 1 ? &m->queues[0] : fuse_queue_of_thread(m);
    char *mem = q ? q->buf.mem : NULL;

    if (!mem || (q->buf.flags & FUSE_BUF_IS_FD) ||
        (const char *)data < mem ||
        (const char *)data + size > mem + q->buf.size) {
        return NULL;
    }
    /*
     * A buffer given back earlier has the size libfuse allocates, since
     * libfuse allocated it too; without one, libfuse allocates anew.
     */
    q->buf.mem = q->nspare ? q->spare[--q->nspare] : NULL;
    return mem;
}

void fuse_mount_release_request_buffer(FuseMount *m, void *mem)
{
    FuseQueue *q = m->nqueues == 1 ? &m->queues[0] : fuse_queue_of_thread(m);

    if (q && q->nspare < FUSE_SPARE_BUFFERS) {
        q->spare[q->nspare++] = mem;
    } else {
        free(mem);
    }
}

void *fuse_mount_req_userdata(fuse_req_t req)
{
    FuseMount *m = fuse_req_userdata(req);

    return m->userdata;
}

static void fuse_co_entry(void *opaque)
{
    FuseCo *c = opaque;
    FuseMount *m = c->m;

    c->fn(c->req, c->arg);
    g_free(c);
    fuse_mount_dec(m);
}

void fuse_mount_spawn(fuse_req_t req, FuseMount *m, FuseRequestFunc *fn,
                      void *arg)
{
    FuseCo *c = g_new(FuseCo, 1);

    *c = (FuseCo) { .m = m, .req = req, .fn = fn, .arg = arg };
    g_atomic_int_inc(&m->in_flight);
    bd_aio_co_enter(bd_aio_current_context(),
                    bd_coroutine_create(fuse_co_entry, c));
}

static bool fuse_mount_try(FuseMount *m, const struct fuse_lowlevel_ops *ops,
                           bool allow_other, GError **errp)
{
    g_autofree char *opts = g_strdup_printf(
        "max_read=%d,default_permissions%s", FUSE_MOUNT_MAX_READ,
        allow_other ? ",allow_other" : "");
    char *argv[] = { (char *)"", (char *)"-o", opts, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);

    m->se = fuse_session_new(&args, ops, sizeof(*ops), m);
    /* libfuse may have copied the arguments into memory of its own. */
    fuse_opt_free_args(&args);
    if (!m->se) {
        bd_error_setg(errp, "Failed to set up FUSE session");
        return false;
    }
    if (fuse_session_mount(m->se, m->mountpoint) < 0) {
        bd_error_setg(errp, "Failed to mount FUSE session to export");
        fuse_session_destroy(m->se);
        m->se = NULL;
        return false;
    }
    m->mounted = true;
    m->allow_other = allow_other;
    return true;
}

/* The first queue uses the session's descriptor, the others clones. */
static bool fuse_mount_open_queues(FuseMount *m, GError **errp)
{
    int fd = fuse_session_fd(m->se);

    for (size_t i = 0; i < m->nqueues; i++) {
        FuseQueue *q = &m->queues[i];
        uint32_t master = fd;
        int fl;

        if (i > 0) {
            q->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
            if (q->fd < 0 || ioctl(q->fd, FUSE_DEV_IOC_CLONE, &master) < 0) {
                bd_error_setg(errp,
                              "Failed to clone the FUSE device for another "
                              "iothread: %s", g_strerror(errno));
                return false;
            }
        }
        /* Level-triggered handler: read until EAGAIN, never block. */
        fl = fcntl(q->fd, F_GETFL);
        if (fl < 0 || fcntl(q->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            bd_error_setg(errp,
                          "Failed to make the FUSE device non-blocking: %s",
                          g_strerror(errno));
            return false;
        }
    }
    if (m->nqueues > 1 &&
        fuse_session_custom_io(m->se, &fuse_multi_queue_io, fd) < 0) {
        bd_error_setg(errp, "Failed to set up FUSE I/O for several iothreads");
        return false;
    }
    return true;
}

FuseMount *fuse_mount_new(const char *mountpoint, FuseAllowOther allow_other,
                          BdAioContext *const *ctxs, size_t nctx,
                          const struct fuse_lowlevel_ops *ops,
                          void *userdata, GError **errp)
{
    g_autofree char *key = fuse_mount_key(mountpoint);
    FuseMount *m;
    bool ok;

    g_assert(nctx > 0);
    if (!fuse_mounts) {
        fuse_mounts = g_hash_table_new_full(g_str_hash, g_str_equal,
                                            g_free, NULL);
    }
    if (g_hash_table_contains(fuse_mounts, key)) {
        bd_error_setg(errp,
                      "There already is a FUSE export on '%s'", mountpoint);
        return NULL;
    }
    if (!fuse_check_mountpoint(mountpoint, errp)) {
        return NULL;
    }

    m = g_new0(FuseMount, 1);
    m->userdata = userdata;
    m->main_ctx = bd_aio_current_context();
    m->mountpoint = g_strdup(mountpoint);
    m->queues = g_new0(FuseQueue, nctx);
    for (size_t i = 0; i < nctx; i++) {
        size_t j;

        /* One thread listed twice serves the mount once. */
        for (j = 0; j < m->nqueues && m->queues[j].ctx != ctxs[i]; j++) {
            continue;
        }
        if (j == m->nqueues) {
            m->queues[m->nqueues++] = (FuseQueue) {
                .m = m, .ctx = ctxs[i], .fd = -1,
            };
        }
    }

    if (allow_other == FUSE_ALLOW_OTHER_AUTO) {
        ok = fuse_mount_try(m, ops, true, NULL) ||
             fuse_mount_try(m, ops, false, errp);
    } else {
        ok = fuse_mount_try(m, ops, allow_other == FUSE_ALLOW_OTHER_ON,
                            errp);
    }
    if (ok) {
        m->queues[0].fd = fuse_session_fd(m->se);
        ok = fuse_mount_open_queues(m, errp);
    }
    if (!ok) {
        fuse_mount_free(m);
        return NULL;
    }

    m->key = g_steal_pointer(&key);
    g_hash_table_add(fuse_mounts, g_strdup(m->key));
    /*
     * Each queue counts as in flight until the shutdown has stopped it in
     * its thread, so that the idle callback cannot run while a queue may
     * still be starting a request.
     */
    g_atomic_int_set(&m->in_flight, m->nqueues);
    for (size_t i = 0; i < m->nqueues; i++) {
        FuseQueue *q = &m->queues[i];

        q->reading = true;
        q->counted = true;
        bd_aio_set_fd_handler(q->ctx, q->fd, fuse_queue_read, NULL, NULL, q);
    }
    return m;
}

bool fuse_mount_allows_other(FuseMount *m)
{
    return m->allow_other;
}

bool fuse_mount_shutdown(FuseMount *m, void (*done)(void *opaque),
                         void *opaque)
{
    BdAioContext *here = bd_aio_current_context();

    m->idle_cb = done;
    m->idle_opaque = opaque;
    if (m->se) {
        fuse_session_exit(m->se);
    }
    if (m->key) {
        g_hash_table_remove(fuse_mounts, m->key);
        g_clear_pointer(&m->key, g_free);
    }
    /* Held while stopping, so that zero is seen here, not by another. */
    g_atomic_int_inc(&m->in_flight);
    for (size_t i = 0; i < m->nqueues; i++) {
        FuseQueue *q = &m->queues[i];
        FuseStopWait w = { .q = q };

        if (q->ctx == here) {
            fuse_queue_stop(q);
            continue;
        }
        /*
         * Stopping in the queue's own thread is the only way to know
         * that no fd handler is half-way through starting a request.
         * Waiting here cannot deadlock: an iothread never blocks on the
         * main thread (requests waiting for it yield).
         */
        g_mutex_init(&w.lock);
        g_cond_init(&w.cond);
        bd_aio_bh_schedule_oneshot(q->ctx, fuse_queue_stop_bh, &w);
        g_mutex_lock(&w.lock);
        while (!w.done) {
            g_cond_wait(&w.cond, &w.lock);
        }
        g_mutex_unlock(&w.lock);
        g_mutex_clear(&w.lock);
        g_cond_clear(&w.cond);
    }
    if (g_atomic_int_dec_and_test(&m->in_flight)) {
        m->idle_cb = NULL;
        return true;
    }
    return false;
}

void fuse_mount_free(FuseMount *m)
{
    if (!m) {
        return;
    }
    g_assert(g_atomic_int_get(&m->in_flight) == 0);
    if (m->key) {
        g_hash_table_remove(fuse_mounts, m->key);
    }
    for (size_t i = 0; i < m->nqueues; i++) {
        FuseQueue *q = &m->queues[i];

        /* The first queue's descriptor is the session's own. */
        if (i > 0 && q->fd >= 0) {
            close(q->fd);
        }
        free(q->buf.mem);
        while (q->nspare) {
            free(q->spare[--q->nspare]);
        }
    }
    if (m->se) {
        if (m->mounted) {
            /* Lazy (MNT_DETACH) for root; fusermount3 -u otherwise. */
            fuse_session_unmount(m->se);
        }
        fuse_session_destroy(m->se);
    }
    g_free(m->queues);
    g_free(m->key);
    g_free(m->mountpoint);
    g_free(m);
}
