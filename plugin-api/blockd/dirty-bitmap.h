/*
 * blockd plugin ABI: dirty bitmaps.
 *
 * A dirty bitmap belongs to a node and records, one bit per granule of
 * @granularity bytes, which ranges of the node were written (or zeroed,
 * or discarded) while it was enabled.  The core marks every enabled
 * bitmap of a node in its request layer, so every writer is seen.  The
 * bitmaps are created and managed by the block-dirty-bitmap-* QMP
 * commands; plugins find them (an NBD export offers one as a metadata
 * context), hold them busy while they use them and read them.
 *
 * Lifetime: a bitmap lives while its node has it or someone holds a
 * reference.  A bitmap whose node went away reads as it was last.
 */
#ifndef BLOCKD_DIRTY_BITMAP_H
#define BLOCKD_DIRTY_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <blockd/block.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BdDirtyBitmap BdDirtyBitmap;

/*
 * The bitmap named @name on @node, or NULL if it has none.  Borrowed:
 * take a reference to keep it beyond the current main-loop callback.
 * Main loop.
 */
BdDirtyBitmap *bd_dirty_bitmap_find(BdNode *node, const char *name);

/*
 * The bitmap named @name on @node or, if @node has none, on the first
 * node below it that has one, following filters' filtered children and
 * backing children (QEMU's bdrv_filter_or_cow_bs() walk).  *@pnode (if
 * not NULL) is set to the node that holds it.  NULL if none.  Borrowed.
 * Main loop.
 */
BdDirtyBitmap *bd_dirty_bitmap_find_in_chain(BdNode *node, const char *name,
                                             BdNode **pnode);

/*
 * The bitmap named @name on the node named @node_name, with QEMU's
 * errors: "Node '%s' not found", "Dirty bitmap '%s' not found".
 * *@pnode (if not NULL) is set to the node.  Borrowed.  Main loop.
 */
BdDirtyBitmap *bd_dirty_bitmap_lookup(const char *node_name,
                                      const char *name, BdNode **pnode,
                                      GError **errp);

/* Take / drop a reference.  Any thread. */
void bd_dirty_bitmap_ref(BdDirtyBitmap *bm);
void bd_dirty_bitmap_unref(BdDirtyBitmap *bm);

/* The bitmap's name (NULL for an anonymous one).  Any thread. */
const char *bd_dirty_bitmap_name(const BdDirtyBitmap *bm);

/* Bytes per bit: a power of two from 512 to 2 GiB.  Any thread. */
uint32_t bd_dirty_bitmap_granularity(const BdDirtyBitmap *bm);

/* The number of bytes the bitmap covers (its node's length).  Any thread. */
int64_t bd_dirty_bitmap_size(BdDirtyBitmap *bm);

/* Whether writes are being recorded (not disabled).  Any thread. */
bool bd_dirty_bitmap_enabled(BdDirtyBitmap *bm);

/*
 * Whether an operation (an export, a job) holds the bitmap.  A busy
 * bitmap cannot be removed, cleared, enabled, disabled, merged into or
 * merged from.  Set and cleared by the holder.  Main loop.
 */
bool bd_dirty_bitmap_busy(const BdDirtyBitmap *bm);
void bd_dirty_bitmap_set_busy(BdDirtyBitmap *bm, bool busy);

/*
 * Checks of bd_dirty_bitmap_check():
 * @BD_DIRTY_BITMAP_CHECK_BUSY: refuse a busy bitmap ("Bitmap '%s' is
 *     currently in use by another operation and cannot be used").
 */
enum {
    BD_DIRTY_BITMAP_CHECK_BUSY = 1u << 0,
};

/*
 * Whether @bm may be used for what the @flags (BD_DIRTY_BITMAP_CHECK_*)
 * describe; false with QEMU's error otherwise.  Main loop.
 */
bool bd_dirty_bitmap_check(const BdDirtyBitmap *bm, unsigned flags,
                           GError **errp);

/*
 * The extent of equal state at @offset: sets *@dirty to the state of
 * the byte at @offset and returns how many bytes from @offset, at most
 * @bytes and never past the bitmap's size, share it (0 when @offset is
 * at or past the size or @bytes is 0).  Reads the live bitmap under its
 * lock; no allocation.  Any thread.
 */
int64_t bd_dirty_bitmap_extent(BdDirtyBitmap *bm, int64_t offset,
                               int64_t bytes, bool *dirty);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_DIRTY_BITMAP_H */
