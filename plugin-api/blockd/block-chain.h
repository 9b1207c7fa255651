/*
 * blockd plugin ABI: what block jobs that change a backing chain need
 * (block-stream, block-commit): a handle of their own on each node they
 * work on, copy-on-read, and the two halves of a chain change (the graph
 * edge, and the backing file name the image's header records).
 */
#ifndef BLOCKD_BLOCK_CHAIN_H
#define BLOCKD_BLOCK_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/block-backend.h>
#include <blockd/block.h>
#include <blockd/coroutine.h>
#include <blockd/dirty-bitmap.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Main loop.  A handle on @node for a job of type @job_type: it takes
 * the BD_PERM_* in @perm and shares only @shared, so while the job holds
 * it nobody else can take what the job does not share (e.g. write an
 * intermediate layer that the job will drop), and blockdev-del refuses
 * the node as busy with the job ("Node 'x' is busy: block device is in
 * use by block job: stream").  @job_type NULL: a handle as the
 * BlockBackends QEMU's jobs open themselves (commit's top and base), for
 * which blockdev-del says "Node x is in use".  NULL with QEMU's
 * permission conflict message in @errp when that is not possible.
 */
BdBlockBackend *bd_block_job_blk_new(BdNode *node, const char *job_type,
                                     uint64_t perm, uint64_t shared,
                                     GError **errp);

/*
 * Main loop.  QEMU's op blockers: false with "Node 'x' is busy: block
 * device is in use by block job: TYPE" when a job holds a handle on
 * @node, true otherwise.
 */
bool bd_block_job_check_node(BdNode *node, GError **errp);

/*
 * Main loop.  QEMU's bdrv_is_root_node(): no node uses @node, only
 * BlockBackends such as exports' or a job's own (@job_type NULL); a
 * job's hold on it (@job_type given) is a user as a node is.
 */
bool bd_node_is_root(BdNode *node);

/*
 * Main loop.  Walking a backing chain, as the chain jobs' checks do:
 * bd_node_backing_node() is the node below @node (its backing child's
 * node), or NULL; bd_node_file_is() says whether @filename names the
 * file of @node (as given, or the same file by its real path);
 * bd_node_find_backing_image() is QEMU's bdrv_find_backing_image(): the
 * first node below @top whose file @filename names, or NULL;
 * bd_node_chain_depth() is @node's depth in @top's chain (@top itself 1),
 * 0 if it is not in it; bd_node_find_overlay() is QEMU's
 * bdrv_find_overlay(): the node in @active's chain whose backing node is
 * @node, or NULL.
 */
BdNode *bd_node_backing_node(BdNode *node);
bool bd_node_file_is(BdNode *node, const char *filename);
BdNode *bd_node_find_backing_image(BdNode *top, const char *filename);
int bd_node_chain_depth(BdNode *top, BdNode *node);
BdNode *bd_node_find_overlay(BdNode *active, BdNode *node);

/* Main loop.  Release a handle from bd_block_job_blk_new(); NULL: no-op. */
void bd_block_job_blk_free(BdBlockBackend *blk);

/*
 * coroutine_fn, in the backend's AioContext.  Copy-on-read of @bytes at
 * @offset: what the backend's node does not define itself in that range
 * is read through it (from its backing chain) and written into it, so
 * that its content no longer depends on the layers below.  Serialised
 * against overlapping requests on the node (a write from an export is
 * neither lost nor overwritten).  Needs BD_PERM_WRITE or
 * BD_PERM_WRITE_UNCHANGED (-EPERM otherwise).  0 or a negative errno.
 */
bd_coroutine_fn
int bd_blk_co_copy_on_read(BdBlockBackend *blk, int64_t offset,
                           int64_t bytes);

/*
 * Main loop.  Make @backing (NULL: none) the backing node of @node, in
 * place of its current one, with the node drained meanwhile.  Nodes
 * that lose their last user go away.  Only the graph changes: the image
 * keeps its recorded backing file name until
 * bd_node_change_backing_file().  false with @errp set (nothing
 * changed) when @backing's permissions refuse the new edge.
 */
bool bd_node_set_backing(BdNode *node, BdNode *backing, GError **errp);

/*
 * Main loop.  Record @file (NULL: none) and its format @fmt (NULL: none)
 * as @node's backing file in its image (the driver's
 * co_change_backing_file).  false with @errp set when the driver cannot
 * ("Operation not supported" without the callback) or the write fails.
 */
bool bd_node_change_backing_file(BdNode *node, const char *file,
                                 const char *fmt, GError **errp);

/*
 * Main loop.  A drained section on @node and its subtree, for a job's
 * final switch: other users' requests wait (the job's own handles are
 * not held back); in flight ones are done when this returns.
 */
void bd_block_job_drained_begin(BdNode *node);
void bd_block_job_drained_end(BdNode *node);

/*
 * Main loop, outside coroutines.  Run @entry(@opaque) in a coroutine in
 * the main loop's context until it returns (the loop runs meanwhile),
 * e.g. a job's last copy inside its drained section.
 */
void bd_block_job_run_co(BdCoroutineEntry *entry, void *opaque);

/*
 * Main loop.  Put @to in @from's place: every user of @from (a node's
 * edge, an export's BlockBackend) uses @to instead, except the handles
 * of jobs and the nodes below @to (which would make a cycle).  false
 * with QEMU's permission conflict message (nothing changed) when @to
 * cannot take what those users take.  What a pivot (active commit,
 * mirror) and blockdev-snapshot do.
 */
bool bd_node_replace(BdNode *from, BdNode *to, GError **errp);

/*
 * Main loop.  QEMU's bdrv_get_default_bitmap_granularity(): @node's
 * cluster size clamped to 4 KiB..64 KiB, 64 KiB when its driver reports
 * none.  What block-dirty-bitmap-add and a mirror take when the user
 * gives no granularity.
 */
uint32_t bd_node_default_bitmap_granularity(BdNode *node);

/*
 * A job's anonymous dirty bitmap on @node with @granularity bytes per
 * bit (a power of two >= 512), recording every write to the node from
 * now on.  Main loop; NULL with @errp set on failure.  Freed with
 * bd_block_job_bitmap_free() (main loop).  Set, reset and count from
 * any thread; bd_dirty_bitmap_extent() walks it.
 */
BdDirtyBitmap *bd_block_job_bitmap_new(BdNode *node, uint32_t granularity,
                                       GError **errp);
void bd_block_job_bitmap_free(BdDirtyBitmap *bm);
void bd_block_job_bitmap_set(BdDirtyBitmap *bm, int64_t offset,
                             int64_t bytes);
void bd_block_job_bitmap_reset(BdDirtyBitmap *bm, int64_t offset,
                               int64_t bytes);
/* The number of dirty bytes. */
uint64_t bd_block_job_bitmap_count(BdDirtyBitmap *bm);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_BLOCK_CHAIN_H */
