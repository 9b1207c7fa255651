/*
 * export-fuse: a FUSE session on a regular file, served by an AioContext.
 *
 * This part knows nothing about block nodes: it checks the mount point,
 * mounts a libfuse low-level session on it, reads the kernel's requests
 * from the session's fd in an fd handler of the export's AioContext and
 * hands each one to libfuse, which calls the operations table given by
 * the caller.  Operations that wait start a coroutine with
 * fuse_mount_spawn(), so that many requests are in flight at once.  One
 * mount may be served by several threads, one /dev/fuse descriptor each.
 */
#ifndef EXPORT_FUSE_MOUNT_H
#define EXPORT_FUSE_MOUNT_H

#define FUSE_USE_VERSION 31

#include <stdbool.h>

#include <fuse_lowlevel.h>
#include <glib.h>

#include <blockd/aio.h>

typedef struct FuseMount FuseMount;

/*
 * The largest read the kernel may send (the max_read mount option, which
 * the operations' init() must also set in conn->max_read).  QEMU's value,
 * also what clients see in /proc/mounts.
 */
#define FUSE_MOUNT_MAX_READ (64 * 1024 * 1024)

/* Values of FuseExportAllowOther, in the schema's order. */
typedef enum FuseAllowOther {
    FUSE_ALLOW_OTHER_OFF,
    FUSE_ALLOW_OTHER_ON,
    FUSE_ALLOW_OTHER_AUTO,
} FuseAllowOther;

/*
 * Parse the schema's FuseExportAllowOther string (NULL: the default,
 * auto).  Returns false for an unknown value (the schema has checked it).
 */
bool fuse_allow_other_parse(const char *str, FuseAllowOther *out);

/*
 * Mount a session on @mountpoint, which must be an existing regular file
 * not already used by another export of this process, and serve it in
 * the @nctx contexts @ctxs (at least one): the first reads the session's
 * own /dev/fuse descriptor, each further one a clone of it
 * (FUSE_DEV_IOC_CLONE), so that the kernel hands requests to all of them;
 * a request runs and replies in the context that read it.  The operations
 * are @ops, and fuse_mount_req_userdata() returns @userdata.  With
 * FUSE_ALLOW_OTHER_AUTO, allow_other is tried first and dropped if the
 * mount fails.  Nothing is left mounted on failure.  Main thread.
 */
FuseMount *fuse_mount_new(const char *mountpoint, FuseAllowOther allow_other,
                          BdAioContext *const *ctxs, size_t nctx,
                          const struct fuse_lowlevel_ops *ops,
                          void *userdata, GError **errp);

/* The @userdata given to fuse_mount_new(), from an operation's @req. */
void *fuse_mount_req_userdata(fuse_req_t req);

/* Whether the mount was made with allow_other. */
bool fuse_mount_allows_other(FuseMount *m);

/*
 * Stop serving: no new request is read (the mount point may be used by a
 * new export at once), requests already started still run and reply.
 * Each context stops reading in its own thread, which this waits for.
 * Returns true when no request is left (@done is then never called),
 * else false: @done(@opaque) runs in the main loop, once, when the last
 * one has replied.  Called at most once, main thread.
 */
bool fuse_mount_shutdown(FuseMount *m, void (*done)(void *opaque),
                         void *opaque);

/*
 * Unmount and free @m: after fuse_mount_shutdown()'s @done, or when no
 * reader ever started.  NULL is a no-op.  Main thread.
 */
void fuse_mount_free(FuseMount *m);

/*
 * From an operation of @m: run fn(@req, @arg) in a new coroutine of the
 * calling thread's context (the one that read @req).  @fn must reply to @req exactly once and free @arg.
 * Anything @arg points into libfuse's request buffer must be copied
 * first: the buffer is reused once the operation returns.
 */
typedef void FuseRequestFunc(fuse_req_t req, void *arg);
void fuse_mount_spawn(fuse_req_t req, FuseMount *m, FuseRequestFunc *fn,
                      void *arg);

/*
 * From an operation of @m (in the thread that read the request, before
 * the operation returns): take over libfuse's receive buffer holding the
 * request, whose argument @data of @size bytes then stays valid after
 * the operation; the queue gets a fresh buffer for its next request.
 * Returns the buffer, to be given back with
 * fuse_mount_release_request_buffer(), or NULL when @data is not in it
 * (the caller then copies).
 */
void *fuse_mount_take_request_buffer(FuseMount *m, const void *data,
                                     size_t size);

/*
 * Give back a buffer returned by fuse_mount_take_request_buffer(), in the
 * thread that took it, once its request is done: the queue keeps a few
 * for its next takeovers and frees the rest.
 */
void fuse_mount_release_request_buffer(FuseMount *m, void *mem);

#endif /* EXPORT_FUSE_MOUNT_H */
