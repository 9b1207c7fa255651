/*
 * blockd plugin ABI: block drivers (formats, protocols and filters).
 *
 * A plugin registers a BdBlockDriver for each value of BlockdevDriver it
 * implements (a plugin may register several, e.g. null-co and null-aio).
 * Fields were added after the first three (struct_size, name,
 * description); a plugin built against headers without a field reads as
 * NULL/0 for it, and every callback says what NULL means.
 *
 * Contexts:
 * - "main loop": called in the main thread outside coroutines, with the
 *   node drained (no request in flight) unless said otherwise.
 * - "coroutine" (marked bd_coroutine_fn): called in a coroutine running
 *   in the node's AioContext (bd_node_get_aio_context()); the callback
 *   may yield (see <blockd/coroutine.h>, <blockd/aio.h>).  This holds for
 *   every driver that does not set BD_DRIVER_THREAD_SAFE: when an export
 *   serves the node from several IOThreads at once (multi-threaded
 *   exports), the core moves each request to the node's context before
 *   it calls the driver and back after, so such a driver never runs in
 *   two threads at once.  A driver that sets BD_DRIVER_THREAD_SAFE is
 *   called instead in the coroutine of whichever IOThread issued the
 *   request, concurrently from several threads: it guards its own state
 *   (locks, atomics, per-thread queues), and fd handlers, BHs and timers
 *   it sets up belong to the calling coroutine's context
 *   (bd_coroutine_get_aio_context()).  The request layer has already
 *   checked the request: the range is inside the node (except for
 *   writes to a growable protocol), aligned to the node's
 *   request_alignment, at most max_transfer long, the node is writable
 *   for writes, and only flags the driver announced are set.
 *
 * I/O callbacks return 0 on success and a negative errno on failure.
 */
#ifndef BLOCKD_BLOCK_DRIVER_H
#define BLOCKD_BLOCK_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/block.h>
#include <blockd/coroutine.h>
#include <blockd/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What kind of driver this is (BdBlockDriver.flags):
 * @BD_DRIVER_PROTOCOL: reaches storage itself (file, nbd, null-co); may
 *     have no children.
 * @BD_DRIVER_FORMAT: interprets an image held by its "file" child (raw,
 *     qcow2).
 * @BD_DRIVER_FILTER: passes requests to one child, changing only how
 *     (throttle, copy-on-read); the graph may be looked through it.
 * 0 reads as BD_DRIVER_PROTOCOL.
 */
#define BD_DRIVER_PROTOCOL 0x1u
#define BD_DRIVER_FORMAT   0x2u
#define BD_DRIVER_FILTER   0x4u
/*
 * Added in ABI 1.0 as a flag, so no descriptor grows:
 * @BD_DRIVER_THREAD_SAFE: the coroutine callbacks may run in several
 *     threads at once (see "Contexts" above).  Without it the core calls
 *     them only in the node's AioContext.
 */
#define BD_DRIVER_THREAD_SAFE 0x8u

/*
 * BdBlockLimits: the I/O limits of a node, filled by refresh_limits.  The
 * core allocates it, so new fields can be appended in later minors.
 * Before refresh_limits runs the core fills it with defaults: for a node
 * with a data child (format, filter) the child's memory alignments,
 * max_transfer and max_iov; otherwise min_mem_alignment 512,
 * opt_mem_alignment the page size, max_iov IOV_MAX; request_alignment 1;
 * all other fields 0 (meaning no limit / no preference / no flags).
 * All lengths are bytes.
 * @request_alignment: offsets and lengths of requests reaching the driver
 *     are multiples of this (a power of two); the request layer does
 *     read-modify-write for unaligned requests.
 * @min_mem_alignment: buffer addresses the driver can use directly.
 * @opt_mem_alignment: best buffer alignment (bd_node_try_blockalign()).
 * @max_transfer: longest read/write the driver accepts (0: no limit); the
 *     request layer splits longer ones.
 * @opt_transfer: preferred request size, for users that choose (0: none).
 * @pwrite_zeroes_alignment: best alignment of zero-writes (0:
 *     request_alignment); unaligned heads/tails are written as zeroed
 *     buffers.
 * @max_pwrite_zeroes: longest zero-write (0: no limit).
 * @pdiscard_alignment: discard granularity (0: request_alignment);
 *     unaligned parts of a discard are dropped.
 * @max_pdiscard: longest discard (0: no limit).
 * @max_iov: most buffers in one request's BdIOVector.
 * @supported_write_flags: the BD_REQ_* flags co_pwritev handles itself
 *     (only BD_REQ_FUA is meaningful).
 * @supported_zero_flags: the BD_REQ_* flags co_pwrite_zeroes handles
 *     (BD_REQ_FUA, BD_REQ_MAY_UNMAP, BD_REQ_NO_FALLBACK).
 */
typedef struct BdBlockLimits {
    uint32_t request_alignment;
    uint32_t min_mem_alignment;
    uint32_t opt_mem_alignment;
    uint32_t max_transfer;
    uint32_t opt_transfer;
    uint32_t pwrite_zeroes_alignment;
    int64_t max_pwrite_zeroes;
    uint32_t pdiscard_alignment;
    int64_t max_pdiscard;
    int max_iov;
    uint32_t supported_write_flags;
    uint32_t supported_zero_flags;
} BdBlockLimits;

/*
 * BdBlockDriver:
 * @struct_size: sizeof(BdBlockDriver).
 * @name: the driver name as BlockdevOptions' 'driver' spells it.
 * @description: one line for listings and help.
 *
 * @instance_size: bytes of per-node state (bd_node_get_opaque()), zeroed
 *     before open().  0: none.
 * @flags: BD_DRIVER_PROTOCOL, _FORMAT or _FILTER, with BD_DRIVER_THREAD_SAFE
 *     if the driver is.
 *
 * @open: main loop.  Open @node from @options: the whole BlockdevOptions
 *     object of the node, already validated against the schema (the
 *     driver's branch included) with defaults not filled in, so read
 *     optional members with defaults.  @open_flags are the node's
 *     BD_OPEN_* flags.  Children are opened with bd_node_open_child().
 *     Returns true, or false with @errp set; on failure the core detaches
 *     any child opened and frees the state without calling @close, so
 *     open() releases what else it acquired.  NULL: nothing to open (a
 *     driver of that kind can only be a test).
 * @close: main loop, drained.  Release what open() acquired (not the
 *     children nor the state: the core does that after).  NULL: nothing.
 * @refresh_limits: main loop.  Adjust @limits (pre-filled with defaults,
 *     see BdBlockLimits) after open and after the children change.  May
 *     set @errp and return false to fail the open.  NULL: keep defaults.
 *
 * @co_getlength: coroutine.  The node's length in bytes or a negative
 *     errno.  The core calls it after open and after truncate and caches
 *     the answer for bounds checks.  NULL: the length of the file child
 *     (or of a filter's child); -ENOMEDIUM without one.
 * @co_preadv: coroutine.  Read @bytes at @offset into @qiov (which holds
 *     exactly @bytes).  @flags is 0 today.  NULL: for filters, read from
 *     the filtered child; otherwise reads fail with -ENOTSUP.
 * @co_pwritev: coroutine.  Write @qiov's @bytes at @offset.  @flags may
 *     hold the announced supported_write_flags (BD_REQ_FUA).  NULL: for
 *     filters, write to the filtered child; otherwise -ENOTSUP.
 * @co_pwrite_zeroes: coroutine.  Make the range read as zeroes, cheaply.
 *     @flags: announced supported_zero_flags only (BD_REQ_MAY_UNMAP: may
 *     deallocate; BD_REQ_NO_FALLBACK: the caller asked the core not to
 *     fall back to writing zero buffers, return -ENOTSUP if it is not
 *     cheap).  Return -ENOTSUP to make the core write zeroed buffers with
 *     co_pwritev (unless NO_FALLBACK was requested).  NULL: as -ENOTSUP
 *     (filters: passed to the filtered child).
 * @co_pdiscard: coroutine.  Deallocate the range if possible (only
 *     called when the node has discard=unmap).  -ENOTSUP is reported to
 *     the caller as success, as discard is advisory.  NULL: a no-op
 *     (filters: passed to the filtered child).
 * @co_flush: coroutine.  Make every completed write durable.  The core
 *     then flushes the node's children itself, and skips this callback
 *     for cache.no-flush=on nodes.  NULL: nothing to flush on this node.
 * @co_block_status: coroutine.  Status of the range at @offset (at most
 *     @bytes, aligned to request_alignment): return BD_BLOCK_* bits and
 *     set *@pnum (> 0; the core clamps it) and, with BD_BLOCK_OFFSET_VALID,
 *     *@map and *@file (a node reachable through a child).  Return
 *     BD_BLOCK_RAW with *map and *file to let the core ask that node instead.
 *     @want_zero false allows a cheaper answer (DATA for everything).
 *     NULL: protocols answer DATA|OFFSET_VALID (map = offset, file = the
 *     node itself); filters and formats with a file child answer RAW
 *     through it.
 * @co_truncate: coroutine, main loop's context.  Resize to @offset bytes;
 *     @exact, @prealloc and @flags as bd_child_co_truncate().  Set @errp
 *     and return a negative errno on failure.  NULL: resizing fails with
 *     "Image format driver does not support resize".
 * @co_create: coroutine in the main loop (blockdev-create).  Create an
 *     image from @options, the driver's branch of BlockdevCreateOptions.
 *     Set @errp on failure.  NULL: the driver cannot create images.
 *
 * @child_perm: main loop.  The permissions the node needs on its child
 *     @child (NULL while the child is being attached) with role @role,
 *     given what the node's own users take (@perm) and share (@shared);
 *     set *@nperm and *@nshared.  NULL: bd_block_default_child_perm()
 *     (pass-through for filters, the storage defaults otherwise).
 * @check_perm: main loop.  The node's users are about to take @perm and
 *     share @shared in all; check that it is possible (a protocol driver
 *     takes its file locks here), or set @errp and return false.  Always
 *     followed by exactly one of @set_perm (commit) or @abort_perm.  NULL:
 *     always possible.
 * @set_perm: main loop.  Commit what the last @check_perm checked (e.g.
 *     release locks no longer needed).  NULL: nothing to do.
 * @abort_perm: main loop.  Undo the last @check_perm.  NULL: nothing.
 *
 * @detach_aio_context: main loop, drained.  Remove fd handlers, BHs and
 *     timers from the node's current context before it moves.  NULL:
 *     nothing registered.
 * @attach_aio_context: main loop, drained.  Register them again in
 *     @new_ctx.  NULL: nothing to register.
 *
 * @reopen_prepare: main loop, drained.  Check that @node can take the
 *     new @options (a whole BlockdevOptions object, as in open) and
 *     prepare the change without committing it; *@state may hold the
 *     driver's own data for commit/abort.  Set @errp and return false to
 *     refuse.  NULL: reopen refused for any change of driver options.
 * @reopen_commit: main loop.  Apply the prepared change.  NULL: nothing.
 * @reopen_abort: main loop.  Drop the prepared change.  NULL: nothing.
 *
 * Describing nodes (query-named-block-nodes, json: file names), as
 * QEMU 7.2 does:
 * @strong_options: NULL-terminated names of the driver's options that
 *     change what the node shows (QEMU's "strong" runtime options): when
 *     one is given, the node's file name is "json:{...}" with them.
 *     NULL: none.
 * @exact_filename: main loop.  The plain file name that reopens the node
 *     as it is ("null-co://", a path), newly allocated, or NULL when
 *     there is none.  NULL: formats use their protocol child's name when
 *     they have no strong option given; others have none.
 * @get_allocated_file_size: main loop or the node's AioContext.  Bytes
 *     the node occupies on the host, or a negative errno.  NULL:
 *     protocols -ENOTSUP; formats and filters the sum over their data
 *     children.
 * @get_info: main loop.  0 with *@is_dirty set when the driver keeps
 *     image information (whether the image was left in use), or a
 *     negative errno.  NULL: -ENOTSUP.
 *
 * @co_pread_to_fd: coroutine.  Zero-copy reads (bd_blk_co_pread_to_fd()):
 *     move up to @bytes at @offset of the node straight from the storage
 *     into the descriptor @out_fd (a non-blocking socket or pipe), inside
 *     the kernel.  It must not wait: neither for @out_fd (return -EAGAIN
 *     when it takes nothing) nor for the storage (return -ENOTSUP when
 *     the data is not at hand, e.g. not in the page cache).  @out_fd -1
 *     asks only whether a transfer of the whole range would be done now:
 *     0 yes, -ENOTSUP no.  Returns the bytes moved (1..@bytes: partial
 *     transfers are normal), -EAGAIN, -ENOTSUP (the caller reads the
 *     normal way instead; the range is untouched) or another negative
 *     errno (a read or write error).  The range is aligned and inside the
 *     node as for co_preadv; @flags is 0.  NULL: filters without
 *     co_preadv pass it to the filtered child, every other node answers
 *     -ENOTSUP.  A driver that transforms data (formats that map or
 *     decrypt, copy-on-read) leaves it NULL or forwards it only where the
 *     bytes are the child's as they are (raw).
 * @query_image_info: main loop.  Add the driver's own members to the
 *     node's ImageInfo @info, as QEMU 7.2 shows them for the format
 *     (cluster-size, backing-filename, full-backing-filename,
 *     backing-filename-format, format-specific, ...); the core has set
 *     filename, format, dirty-flag, actual-size and virtual-size, and adds
 *     backing-image itself.  NULL: nothing more.
 * @co_amend: coroutine in the main loop (x-blockdev-amend, an "amend"
 *     job).  Change the image of @node as @options (the driver's branch
 *     of BlockdevAmendOptions, validated, with its "driver") says;
 *     @force: go on where the driver would otherwise refuse for safety.
 *     Return 0, or a negative errno and set @errp (the job fails with
 *     that message).  NULL: "Driver does not support x-blockdev-amend".
 *
 * Persistent dirty bitmaps (appended): a driver that keeps bitmaps in its
 * image loads them at open (bd_dirty_bitmap_create_sized(), marked
 * persistent) and stores the persistent ones at close.
 * @can_store_new_dirty_bitmap: main loop.  Whether a new persistent
 *     bitmap @name of @granularity could be stored in the image (QEMU's
 *     checks and messages); false with @errp set otherwise.  NULL:
 *     block-dirty-bitmap-add refuses persistent bitmaps on the node
 *     ("Can't store persistent bitmaps to %s").
 * @remove_persistent_dirty_bitmap: main loop.  Remove the bitmap @name
 *     from the image (absent: success); the core releases the in-memory
 *     bitmap after.  NULL: nothing to remove.
 *
 * Internal snapshots (appended; blockdev-snapshot-internal-sync and
 * blockdev-snapshot-delete-internal-sync, the core makes QEMU's checks
 * and drains the node around create and delete):
 * @snapshot_list: main loop.  Set *@list to the image's snapshots as
 *     SnapshotInfo objects, oldest first; 0 or a negative errno.  NULL:
 *     the node has no snapshots ("Failed to get a snapshot list").
 * @snapshot_create: main loop, drained.  Take a snapshot named @name
 *     with the next free numeric id and the given times.  NULL: the
 *     format does not support internal snapshots.
 * @snapshot_delete: main loop, drained.  Delete the first snapshot with
 *     id @id (if not NULL) and name @name (if not NULL); the core has
 *     checked that it exists.
 *
 * @co_change_backing_file: coroutine in the main loop, drained.  Record
 *     @file (NULL: none) with the format @fmt (NULL: none) as the image's
 *     backing file, in the image (what block-stream, block-commit and
 *     change-backing-file finish with); the graph's backing edge is the
 *     core's business.  0 or a negative errno.  NULL: -ENOTSUP.
 *
 * @drained_begin: main loop, requests may be in flight.  The node enters
 *     a drained section (blockdev-del, reopen, a move to another
 *     IOThread...): the core now waits for its requests, so a driver that
 *     holds requests back on purpose (throttle) lets them go at once.
 *     Any thread may still be running the node's requests.  NULL: nothing.
 * @drained_end: main loop.  The drained section that @drained_begin
 *     announced is over.  NULL: nothing.
 */
struct BdBlockDriver {
    uint32_t struct_size;
    const char *name;
    const char *description;

    size_t instance_size;
    uint32_t flags;

    bool (*open)(BdNode *node, JsonObject *options, unsigned open_flags,
                 GError **errp);
    void (*close)(BdNode *node);
    bool (*refresh_limits)(BdNode *node, BdBlockLimits *limits,
                           GError **errp);

    bd_coroutine_fn
    int64_t (*co_getlength)(BdNode *node);
    bd_coroutine_fn
    int (*co_preadv)(BdNode *node, int64_t offset, int64_t bytes,
                     BdIOVector *qiov, BdRequestFlags flags);
    bd_coroutine_fn
    int (*co_pwritev)(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags);
    bd_coroutine_fn
    int (*co_pwrite_zeroes)(BdNode *node, int64_t offset, int64_t bytes,
                            BdRequestFlags flags);
    bd_coroutine_fn
    int (*co_pdiscard)(BdNode *node, int64_t offset, int64_t bytes);
    bd_coroutine_fn
    int (*co_flush)(BdNode *node);
    bd_coroutine_fn
    int (*co_block_status)(BdNode *node, bool want_zero, int64_t offset,
                           int64_t bytes, int64_t *pnum, int64_t *map,
                           BdNode **file);
    bd_coroutine_fn
    int (*co_truncate)(BdNode *node, int64_t offset, bool exact,
                       BdPreallocMode prealloc, BdRequestFlags flags,
                       GError **errp);
    bd_coroutine_fn
    int (*co_create)(JsonObject *options, GError **errp);

    void (*child_perm)(BdNode *node, BdChild *child, BdChildRole role,
                       uint64_t perm, uint64_t shared,
                       uint64_t *nperm, uint64_t *nshared);
    bool (*check_perm)(BdNode *node, uint64_t perm, uint64_t shared,
                       GError **errp);
    void (*set_perm)(BdNode *node, uint64_t perm, uint64_t shared);
    void (*abort_perm)(BdNode *node);

    void (*detach_aio_context)(BdNode *node);
    void (*attach_aio_context)(BdNode *node, BdAioContext *new_ctx);

    bool (*reopen_prepare)(BdNode *node, JsonObject *options, void **state,
                           GError **errp);
    void (*reopen_commit)(BdNode *node, void *state);
    void (*reopen_abort)(BdNode *node, void *state);

    const char *const *strong_options;
    char *(*exact_filename)(BdNode *node);
    int64_t (*get_allocated_file_size)(BdNode *node);
    int (*get_info)(BdNode *node, bool *is_dirty);
    bd_coroutine_fn
    int64_t (*co_pread_to_fd)(BdNode *node, int64_t offset, int64_t bytes,
                              int out_fd, BdRequestFlags flags);
    void (*query_image_info)(BdNode *node, JsonObject *info);
    bd_coroutine_fn
    int (*co_amend)(BdNode *node, JsonObject *options, bool force,
                    GError **errp);
    bool (*can_store_new_dirty_bitmap)(BdNode *node, const char *name,
                                       uint32_t granularity, GError **errp);
    bool (*remove_persistent_dirty_bitmap)(BdNode *node, const char *name,
                                           GError **errp);
    int (*snapshot_list)(BdNode *node, JsonArray **list);
    int (*snapshot_create)(BdNode *node, const char *name, int64_t date_sec,
                           int64_t date_nsec, int64_t vm_clock_nsec,
                           GError **errp);
    int (*snapshot_delete)(BdNode *node, const char *id, const char *name,
                           GError **errp);

    bd_coroutine_fn
    int (*co_change_backing_file)(BdNode *node, const char *file,
                                  const char *fmt);
    void (*drained_begin)(BdNode *node);
    void (*drained_end)(BdNode *node);
};

/*
 * Main loop.  The block driver @name, its plugin loaded if needed (for a
 * plugin that calls a driver's callbacks without a node: blockdev-create
 * calls @co_create).  NULL with a message naming @name or its plugin if
 * nothing provides it or the plugin fails to load.
 */
const BdBlockDriver *bd_block_driver_find(const char *name, GError **errp);

/*
 * The permissions a node whose own users take @perm and share @shared
 * should take (*@nperm) and share (*@nshared) on a child with @role,
 * decided as QEMU 7.2 does:
 * - FILTERED: consistent-read, write, write-unchanged and resize pass
 *   through as the users take and share them; everything else is shared;
 * - COW (backing): only consistent-read if the users take it; shares
 *   consistent-read and write-unchanged, plus write and resize when the
 *   users share write;
 * - METADATA (a format's file): as FILTERED, plus write and resize when
 *   the node is writable, plus consistent-read; never shares write or
 *   resize;
 * - DATA: as FILTERED, never shares resize, write-unchanged implies
 *   write, and write implies resize.
 * Drivers call it from child_perm to adjust the result (raw drops the
 * write and resize it does not need).  Main loop.
 */
void bd_block_default_child_perm(BdNode *node, BdChild *child,
                                 BdChildRole role, uint64_t perm,
                                 uint64_t shared, uint64_t *nperm,
                                 uint64_t *nshared);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_BLOCK_DRIVER_H */
