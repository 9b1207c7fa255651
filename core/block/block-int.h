/*
 * The block graph inside block/: nodes, children, BlockBackends, the
 * permission model, drained sections and the request layer.  Private to
 * block/: the other folders use block/block.h.
 *
 * Graph changes (open, attach, detach, delete, permission updates) happen
 * in the main loop.  Requests run in coroutines of the node's AioContext:
 * the main context, or an IOThread's after bd_node_set_aio_context().
 */
#ifndef BLOCKD_CORE_BLOCK_INT_H
#define BLOCKD_CORE_BLOCK_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/block-backend.h>
#include <blockd/block-driver.h>

#include "aio/aio-context.h"
#include "aio/co-lock.h"
#include "block/block.h"

typedef struct BdTrackedRequest BdTrackedRequest;

typedef enum BdDetectZeroes {
    BD_DETECT_ZEROES_OFF,
    BD_DETECT_ZEROES_ON,
    BD_DETECT_ZEROES_UNMAP,
} BdDetectZeroes;

/* Counters of one node's requests (for query-blockstats). */
typedef struct BdBlockStats {
    uint64_t rd_bytes, wr_bytes, unmap_bytes;
    uint64_t rd_ops, wr_ops, flush_ops, unmap_ops, zero_ops;
    uint64_t failed_rd_ops, failed_wr_ops, failed_flush_ops,
             failed_unmap_ops;
    int64_t rd_total_ns, wr_total_ns, flush_total_ns, unmap_total_ns;
    int64_t wr_highest_offset;
} BdBlockStats;

/* A request in flight on a node; lives on the coroutine's stack. */
struct BdTrackedRequest {
    BdNode *node;
    int64_t offset;             /* range, widened to the node's alignment */
    int64_t bytes;              /* for serialising requests */
    bool serialising;
    BdCoroutine *co;
    BdCoQueue wait_queue;       /* requests waiting for this one */
    BdTrackedRequest *prev, *next;
};

struct BdChild {
    char *name;                 /* "file", "backing", "root", ... */
    BdChildRole role;
    BdNode *parent;             /* NULL for a BlockBackend's root */
    BdBlockBackend *blk;        /* the backend, for a root edge */
    BdNode *node;
    uint64_t perm, shared;
};

struct BdNode {
    char *node_name;
    bool auto_named;
    uint64_t id;                /* creation number, for the graph dump */
    const BdBlockDriver *drv;
    void *opaque;
    BdAioContext *ctx;
    JsonObject *options;        /* as given, for reopen and listings */

    unsigned open_flags;        /* BD_OPEN_* */
    bool read_only;
    BdDetectZeroes detect_zeroes;

    int refcnt;                 /* monitor + parents + backends */
    bool monitor_owned;         /* added by blockdev-add at the top */
    GPtrArray *children;        /* BdChild *, in attach order */
    GPtrArray *parents;         /* BdChild * pointing here, newest first */
    uint64_t perm, shared;      /* cumulative of the parents' edges */

    BdBlockLimits bl;
    int64_t total_bytes;        /* cached length */

    /*
     * requests, which may come from several AioContexts at once (a
     * multi-threaded export): once @multi_ctx is set, @reqs_lock
     * protects the list of tracked requests, @serialising_in_flight
     * (written under it, read without it by the fast path) and @stats;
     * it is held only for a few instructions and never across a yield.
     * Until a request comes from a thread other than @ctx's, only that
     * thread touches them and the lock is not taken (block-io.c).
     */
    bool multi_ctx;             /* sticky; atomic */
    GMutex reqs_lock;
    BdTrackedRequest *tracked;  /* list of requests in flight */
    unsigned serialising_in_flight;
    unsigned in_flight;         /* atomic: read by drains in the main loop */
    unsigned quiesce_counter;   /* atomic: read by requests in IOThreads */
    BdBlockStats stats;
    uint64_t write_threshold;   /* 0: none (block-threshold.c) */

    /* dirty bitmaps (dirty-bitmap.c) */
    GMutex dirty_lock;          /* guards the list for other threads */
    GPtrArray *dirty_bitmaps;   /* BdDirtyBitmap *, oldest first */
    unsigned dirty_bitmap_count; /* atomic: the list's length */
};

/* ---- graph (block-graph.c) ---- */

/*
 * Open a node with @drv directly (in-process drivers of tests and
 * benchmarks), named @node_name (NULL: generated), with @options holding
 * the common members and the driver's own.  Monitor-owned.  Main loop.
 */
BdNode *bd_node_open_driver(const BdBlockDriver *drv, const char *node_name,
                            JsonObject *options, GError **errp);

/*
 * Make @drv available by name to bd_node_open() before any plugin's
 * (in-process drivers of tests).  Main loop.
 */
void bd_block_register_test_driver(const BdBlockDriver *drv);

/* bd_node_find() is public: <blockd/block.h>. */

/* All nodes, in creation order (borrowed).  Main loop. */
GPtrArray *bd_node_all(void);

/* bd_node_ref() and bd_node_unref() are public: <blockd/block.h>. */

/* blockdev-del's checks and deletion.  Main loop. */
bool bd_node_delete_by_monitor(const char *node_name, GError **errp);

/*
 * Recompute the permissions of @node's subtree after its parents'
 * edges changed; on failure every edge is as before.  Main loop.
 */
bool bd_node_refresh_perms(BdNode *node, GError **errp);

/*
 * Attach a BlockBackend root edge (taking @perm, sharing @shared) or
 * change an edge's permissions, with the permission checks.  Main loop.
 */
BdChild *bd_child_attach(BdNode *parent, BdBlockBackend *blk, BdNode *node,
                         const char *name, BdChildRole role, uint64_t perm,
                         uint64_t shared, GError **errp);
bool bd_child_set_perm(BdChild *child, uint64_t perm, uint64_t shared,
                       GError **errp);
void bd_child_detach(BdChild *child);

/* QEMU's names of permission bits, joined with ", " (caller frees). */
char *bd_perm_names(uint64_t perm);

/*
 * Quiesce @node and its subtree: new requests from BlockBackends wait,
 * and this returns once no request is in flight in the subtree.  Nests.
 * Main loop.
 */
void bd_node_drained_begin(BdNode *node);
void bd_node_drained_end(BdNode *node);

/* ---- AioContexts of nodes (block-aio-move.c) ---- */

/* A node is being freed: it no longer counts as a user of its context. */
void bd_node_release_aio_context(BdNode *node);

/* Run @entry(@opaque) in a coroutine of the main context and wait. */
void bd_run_co(BdCoroutineEntry *entry, void *opaque);

/* ---- request layer (block-io.c): coroutine_fn, node's context ---- */

int bd_node_co_preadv(BdNode *node, int64_t offset, int64_t bytes,
                      BdIOVector *qiov, BdRequestFlags flags);
/* bd_blk_co_pread_to_fd() on @node (contract in <blockd/block-backend.h>). */
int64_t bd_node_co_pread_to_fd(BdNode *node, int64_t offset, int64_t bytes,
                               int out_fd, BdRequestFlags flags);
int bd_node_co_pwritev(BdNode *node, int64_t offset, int64_t bytes,
                       BdIOVector *qiov, BdRequestFlags flags);
int bd_node_co_pwrite_zeroes(BdNode *node, int64_t offset, int64_t bytes,
                             BdRequestFlags flags);
int bd_node_co_pdiscard(BdNode *node, int64_t offset, int64_t bytes);
int bd_node_co_flush(BdNode *node);
int bd_node_co_block_status(BdNode *node, bool want_zero, int64_t offset,
                            int64_t bytes, int64_t *pnum, int64_t *map,
                            BdNode **file);
int64_t bd_node_co_getlength(BdNode *node);
/*
 * coroutine_fn: block status through the backing chain, as QEMU's
 * bdrv_block_status_above(node, NULL): what a reader of @node gets.
 */
int bd_node_co_block_status_above(BdNode *node, bool want_zero,
                                  int64_t offset, int64_t bytes,
                                  int64_t *pnum, int64_t *map, BdNode **file);
/*
 * coroutine_fn: bd_blk_co_allocation_depth() on a node: the depth (0 for
 * unallocated) of the first *@pnum bytes from @offset.
 */
int bd_node_co_allocation_depth(BdNode *node, int64_t offset, int64_t bytes,
                                int64_t *pnum);
/* coroutine_fn: bd_blk_co_copy_on_read() on a node. */
int bd_node_co_copy_on_read(BdNode *node, int64_t offset, int64_t bytes);
int bd_node_co_truncate(BdNode *node, int64_t offset, bool exact,
                        BdPreallocMode prealloc, BdRequestFlags flags,
                        GError **errp);

/*
 * A length as the core caches and reports it: QEMU counts nodes in whole
 * 512-byte sectors, so a driver's unaligned length is rounded up (the
 * tail reads as zeroes).  @len >= 0.
 */
static inline int64_t bd_length_in_sectors(int64_t len)
{
    return (len + 511) & ~(int64_t)511;
}

/*
 * Recompute node->bl from its children's and the driver's limits (after
 * open, and after a reopen that may have changed the alignment).  Fails
 * when the driver fails or sets an invalid alignment.  Main loop.
 */
bool bd_node_refresh_limits(BdNode *node, GError **errp);

/* Refresh node->total_bytes from the driver (main loop, any context). */
int bd_node_refresh_total_bytes(BdNode *node);

/* ---- node descriptions (block-query-qmp.c) ---- */

/*
 * The file name QEMU 7.2 shows for @node (BlockDeviceInfo's "file",
 * ImageInfo's "filename"): the protocol's own name when the node can be
 * reopened from it alone ("null-co://", a file's path, or a format's
 * protocol child's name), otherwise "json:" followed by the options that
 * matter.  Caller frees.
 */
char *bd_node_filename(BdNode *node);

/* @node's BlockDeviceInfo; @flat leaves out backing images.  New ref. */
JsonObject *bd_node_device_info(BdNode *node, bool flat);

/* ---- write threshold (block-threshold.c) ---- */

/*
 * Arm @node's write threshold at @threshold bytes (0 disarms).  The first
 * write or zero-write reaching beyond it emits BLOCK_WRITE_THRESHOLD and
 * disarms it.
 */
void bd_node_set_write_threshold(BdNode *node, uint64_t threshold);

/*
 * The request layer's hook: called for every write and zero-write of
 * @node (whose threshold is set) with the range it covers, in the node's
 * context.  Emits the event and disarms once the range ends beyond the
 * threshold.
 */
void bd_node_write_threshold_check(BdNode *node, int64_t offset,
                                   int64_t bytes);

/* ---- BlockBackend (block-backend.c) ---- */

/* bd_blk_new() and the rest the other folders use: block/block.h. */

/*
 * Report a failed request of the backend's user as QEMU's
 * BLOCK_IO_ERROR event (device: the backend's name or "", the node
 * name, "read"/"write", action "report", reason strerror(@error); no
 * "nospace", as qemu-storage-daemon 7.2 whose backends never enable I/O
 * status).  Main loop.
 */
/*
 * A block job's handle (bd_block_job_blk_new()) is not a BlockBackend a
 * user sees: blockdev-del says the node is busy with the job instead.
 * Main loop.
 */
void bd_blk_set_job_type(BdBlockBackend *blk, const char *job_type);
const char *bd_blk_job_type(BdBlockBackend *blk);
/* Made by bd_block_job_blk_new(): not moved by bd_node_replace(), and
 * not held back by drained sections. */
void bd_blk_set_job_owned(BdBlockBackend *blk);
bool bd_blk_is_job_owned(BdBlockBackend *blk);

/*
 * QEMU's op blocker of a backing node ("Node 'x' is busy: node is used
 * as backing hd of 'y'"), which blocks blockdev-del and external
 * snapshots of it (not stream or commit).  Main loop.
 */
bool bd_node_check_backing_blocker(BdNode *node, GError **errp);

void bd_blk_report_io_error(BdBlockBackend *blk, bool is_read, int error);

/* The event data bd_blk_report_io_error() sends (a new object). */
JsonObject *bd_blk_io_error_data(BdBlockBackend *blk, bool is_read,
                                 int error);

/* Called by the graph when a backend's node is drained/undrained. */
void bd_blk_drained_end_all(BdNode *node);

#endif /* BLOCKD_CORE_BLOCK_INT_H */
