/*
 * Dirty bitmaps inside the core (the public part is
 * <blockd/dirty-bitmap.h>): creation on a node, the request layer's
 * marking, resizing with the node, and the operations behind the
 * block-dirty-bitmap-* commands.
 *
 * Locking: each bitmap's bits, size and enabled state are under its own
 * mutex, so requests in IOThreads mark while the main loop reads or
 * changes them; a node's list of bitmaps is under the node's
 * dirty_lock.  The list, names, busy and persistent flags change in the
 * main loop only.
 */
#ifndef BLOCKD_CORE_DIRTY_BITMAP_H
#define BLOCKD_CORE_DIRTY_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/block-chain.h>
#include <blockd/dirty-bitmap.h>

#include "block/block-int.h"

/* QEMU's longest bitmap name. */
#define BD_DIRTY_BITMAP_MAX_NAME 1023

/*
 * A bitmap of @size bytes with @granularity (a power of two >= 512),
 * attached to no node (unit tests; bd_dirty_bitmap_create() for nodes).
 * Enabled, not busy, one reference.
 */
BdDirtyBitmap *bd_dirty_bitmap_new(int64_t size, uint32_t granularity,
                                   const char *name);

/*
 * Create a bitmap on @node covering its length, newest first in its
 * list, with QEMU's errors ("Bitmap already exists: %s", "Bitmap name
 * too long: %s").  @name may be NULL (an anonymous bitmap for a job).
 * Borrowed: the node holds the reference.  Main loop.
 */
BdDirtyBitmap *bd_dirty_bitmap_create(BdNode *node, uint32_t granularity,
                                      const char *name, GError **errp);

/* Take @bm off its node and drop the node's reference.  Main loop. */
void bd_dirty_bitmap_release(BdDirtyBitmap *bm);

/* bd_node_default_bitmap_granularity(): <blockd/block-chain.h> */

/* ---- the node's side (block-graph.c, block-io.c) ---- */

/* Set up / tear down @node's bitmap list (at creation / freeing). */
void bd_node_dirty_bitmaps_init(BdNode *node);
void bd_node_dirty_bitmaps_release_all(BdNode *node);

void bd_node_set_dirty_slow(BdNode *node, int64_t offset, int64_t bytes);

/*
 * The request layer's hook: mark [@offset, @offset + @bytes) in every
 * enabled bitmap of @node.  Costs one atomic load when the node has
 * none.  Any thread.
 */
static inline void bd_node_set_dirty(BdNode *node, int64_t offset,
                                     int64_t bytes)
{
    if (G_UNLIKELY(__atomic_load_n(&node->dirty_bitmap_count,
                                   __ATOMIC_ACQUIRE)) && bytes > 0) {
        bd_node_set_dirty_slow(node, offset, bytes);
    }
}

/*
 * @node's length changed to @size bytes: every bitmap follows (bits past
 * the end are dropped, new ones are clean).  Node's context.
 */
void bd_node_dirty_bitmaps_truncate(BdNode *node, int64_t size);

/* @node's bitmaps as BlockDirtyInfo, newest first; NULL if none. */
JsonArray *bd_node_dirty_bitmaps_info(BdNode *node);

/* ---- the bitmap's operations ---- */

/* Mark / clear bytes [@offset, @offset + @bytes), clipped to the size. */
void bd_dirty_bitmap_set(BdDirtyBitmap *bm, int64_t offset, int64_t bytes);
void bd_dirty_bitmap_reset(BdDirtyBitmap *bm, int64_t offset, int64_t bytes);

/* Clear every bit. */
void bd_dirty_bitmap_clear(BdDirtyBitmap *bm);

/* Follow a new size (as bd_node_dirty_bitmaps_truncate() for one). */
void bd_dirty_bitmap_truncate(BdDirtyBitmap *bm, int64_t size);

/*
 * The first dirty (@dirty true) or clean byte in [@offset, @offset +
 * @bytes), at granule precision but never before @offset; -1 if none.
 */
int64_t bd_dirty_bitmap_next(BdDirtyBitmap *bm, bool dirty, int64_t offset,
                             int64_t bytes);

/* Dirty bytes as QEMU counts them: dirty granules times granularity. */
uint64_t bd_dirty_bitmap_count(BdDirtyBitmap *bm);

/*
 * dst |= src, with QEMU's checks: @dst and @src not busy, same size
 * ("Bitmaps are of different sizes ...").  Granularities may differ.
 * Main loop.
 */
bool bd_dirty_bitmap_merge(BdDirtyBitmap *dst, BdDirtyBitmap *src,
                           GError **errp);

/*
 * SHA-256 (lowercase hex, caller frees) of the bitmap as QEMU's
 * x-debug-block-dirty-bitmap-sha256 hashes it: one bit per granule in an
 * array of unsigned longs in host order, at least one long.
 */
char *bd_dirty_bitmap_sha256(BdDirtyBitmap *bm);

/* Register the block-dirty-bitmap-* commands (dirty-bitmap-qmp.c). */
void bd_dirty_bitmap_qmp_init(void);

#endif /* BLOCKD_CORE_DIRTY_BITMAP_H */
