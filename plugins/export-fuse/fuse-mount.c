/*
 * export-fuse: the FUSE session of one export (see fuse-mount.h).
 */
#include "fuse-mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blockd/blockd.h>

/* Requests read per fd-handler call before the loop gets a turn again. */
#define FUSE_RECEIVE_BATCH 16

struct FuseMount {
    struct fuse_session *se;
    BdAioContext *ctx;
    char *mountpoint;       /* as given: for messages and unmounting */
    char *key;              /* canonical form, in fuse_mounts */
    bool allow_other;
    bool mounted;
    bool reading;           /* fd handler installed */
    struct fuse_buf buf;    /* libfuse's receive buffer, reused */
    /*
     * Requests running.  Atomic: with an iothread the requests run there,
     * while shutdown reads it from the main thread.
     */
    gint in_flight;
    BdAioBH *idle_bh;
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
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Failed to stat '%s': %s (a FUSE export that was "
                        "not unmounted, e.g. of a daemon that was killed, "
                        "is still mounted there: remove it with "
                        "'fusermount3 -u -z %s')",
                        path, g_strerror(err), path);
        } else {
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "Failed to stat '%s': %s", path, g_strerror(err));
        }
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "'%s' is not a regular file", path);
        return false;
    }
    return true;
}

static void fuse_mount_read(void *opaque)
{
    FuseMount *m = opaque;

    for (int i = 0; i < FUSE_RECEIVE_BATCH && m->reading; i++) {
        int ret;

        do {
            ret = fuse_session_receive_buf(m->se, &m->buf);
        } while (ret == -EINTR);

        if (fuse_session_exited(m->se)) {
            /* Unmounted behind our back (fusermount3 -u): nothing more. */
            fuse_mount_stop(m);
            return;
        }
        if (ret <= 0) {
            /* -EAGAIN: drained; other errors: libfuse has logged them. */
            return;
        }
        fuse_session_process_buf(m->se, &m->buf);
    }
}

static void fuse_mount_idle_bh(void *opaque)
{
    FuseMount *m = opaque;

    if (g_atomic_int_get(&m->in_flight) == 0) {
        void (*cb)(void *) = g_atomic_pointer_exchange(&m->idle_cb, NULL);

        if (cb) {
            cb(m->idle_opaque);
        }
    }
}

static void fuse_co_entry(void *opaque)
{
    FuseCo *c = opaque;
    FuseMount *m = c->m;

    c->fn(c->req, c->arg);
    g_free(c);
    if (g_atomic_int_dec_and_test(&m->in_flight) &&
        g_atomic_pointer_get(&m->idle_cb)) {
        /* Not from here: the callback may free what this coroutine uses. */
        bd_aio_bh_schedule(m->idle_bh);
    }
}

void fuse_mount_spawn(fuse_req_t req, FuseMount *m, FuseRequestFunc *fn,
                      void *arg)
{
    FuseCo *c = g_new(FuseCo, 1);

    *c = (FuseCo) { .m = m, .req = req, .fn = fn, .arg = arg };
    g_atomic_int_inc(&m->in_flight);
    bd_aio_co_enter(m->ctx, bd_coroutine_create(fuse_co_entry, c));
}

static bool fuse_mount_try(FuseMount *m, const struct fuse_lowlevel_ops *ops,
                           void *userdata, bool allow_other, GError **errp)
{
    g_autofree char *opts = g_strdup_printf(
        "max_read=%d,default_permissions%s", FUSE_MOUNT_MAX_READ,
        allow_other ? ",allow_other" : "");
    char *argv[] = { (char *)"", (char *)"-o", opts, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);

    m->se = fuse_session_new(&args, ops, sizeof(*ops), userdata);
    if (!m->se) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Failed to set up FUSE session");
        return false;
    }
    if (fuse_session_mount(m->se, m->mountpoint) < 0) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "Failed to mount FUSE session to export");
        fuse_session_destroy(m->se);
        m->se = NULL;
        return false;
    }
    m->mounted = true;
    m->allow_other = allow_other;
    return true;
}

FuseMount *fuse_mount_new(const char *mountpoint, FuseAllowOther allow_other,
                          BdAioContext *ctx,
                          const struct fuse_lowlevel_ops *ops,
                          void *userdata, GError **errp)
{
    g_autofree char *key = fuse_mount_key(mountpoint);
    FuseMount *m;
    bool ok;
    int fd, fl;

    if (!fuse_mounts) {
        fuse_mounts = g_hash_table_new_full(g_str_hash, g_str_equal,
                                            g_free, NULL);
    }
    if (g_hash_table_contains(fuse_mounts, key)) {
        g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                    "There already is a FUSE export on '%s'", mountpoint);
        return NULL;
    }
    if (!fuse_check_mountpoint(mountpoint, errp)) {
        return NULL;
    }

    m = g_new0(FuseMount, 1);
    m->ctx = ctx;
    m->mountpoint = g_strdup(mountpoint);
    m->idle_bh = bd_aio_bh_new(ctx, fuse_mount_idle_bh, m);

    if (allow_other == FUSE_ALLOW_OTHER_AUTO) {
        ok = fuse_mount_try(m, ops, userdata, true, NULL) ||
             fuse_mount_try(m, ops, userdata, false, errp);
    } else {
        ok = fuse_mount_try(m, ops, userdata,
                            allow_other == FUSE_ALLOW_OTHER_ON, errp);
    }
    if (!ok) {
        fuse_mount_free(m);
        return NULL;
    }

    /* Level-triggered handler: read until EAGAIN, never block the loop. */
    fd = fuse_session_fd(m->se);
    fl = fcntl(fd, F_GETFL);
    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }

    m->key = g_steal_pointer(&key);
    g_hash_table_add(fuse_mounts, g_strdup(m->key));
    m->reading = true;
    bd_aio_set_fd_handler(ctx, fd, fuse_mount_read, NULL, NULL, m);
    return m;
}

bool fuse_mount_allows_other(FuseMount *m)
{
    return m->allow_other;
}

unsigned fuse_mount_in_flight(FuseMount *m)
{
    return g_atomic_int_get(&m->in_flight);
}

void fuse_mount_set_idle_cb(FuseMount *m, void (*done)(void *opaque),
                            void *opaque)
{
    /* opaque first: whoever sees the callback also sees its argument */
    m->idle_opaque = opaque;
    g_atomic_pointer_set(&m->idle_cb, done);
    if (done && g_atomic_int_get(&m->in_flight) == 0) {
        bd_aio_bh_schedule(m->idle_bh);
    }
}

void fuse_mount_stop(FuseMount *m)
{
    if (m->reading) {
        bd_aio_set_fd_handler(m->ctx, fuse_session_fd(m->se),
                              NULL, NULL, NULL, NULL);
        m->reading = false;
    }
    if (m->se) {
        fuse_session_exit(m->se);
    }
    if (m->key) {
        g_hash_table_remove(fuse_mounts, m->key);
        g_clear_pointer(&m->key, g_free);
    }
}

void fuse_mount_free(FuseMount *m)
{
    if (!m) {
        return;
    }
    g_assert(g_atomic_int_get(&m->in_flight) == 0);
    fuse_mount_stop(m);
    if (m->se) {
        if (m->mounted) {
            /* Lazy (MNT_DETACH) for root; fusermount3 -u otherwise. */
            fuse_session_unmount(m->se);
        }
        fuse_session_destroy(m->se);
    }
    bd_aio_bh_delete(m->idle_bh);
    free(m->buf.mem);
    g_free(m->mountpoint);
    g_free(m);
}
