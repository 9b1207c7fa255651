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
    /*
     * Added for persistent bitmaps:
     * @BD_DIRTY_BITMAP_CHECK_RO: refuse a read-only bitmap (loaded from
     *     an image opened read-only): "Bitmap '%s' is readonly and cannot
     *     be modified".
     * @BD_DIRTY_BITMAP_CHECK_INCONSISTENT: refuse a bitmap an image had
     *     marked in use (not stored properly): "Bitmap '%s' is
     *     inconsistent and cannot be used".
     */
    BD_DIRTY_BITMAP_CHECK_RO = 1u << 1,
    BD_DIRTY_BITMAP_CHECK_INCONSISTENT = 1u << 2,
};
/* QEMU's BDRV_BITMAP_DEFAULT and BDRV_BITMAP_ALLOW_RO. */
#define BD_DIRTY_BITMAP_CHECK_DEFAULT (BD_DIRTY_BITMAP_CHECK_BUSY | \
                                       BD_DIRTY_BITMAP_CHECK_RO | \
                                       BD_DIRTY_BITMAP_CHECK_INCONSISTENT)
#define BD_DIRTY_BITMAP_CHECK_ALLOW_RO (BD_DIRTY_BITMAP_CHECK_BUSY | \
                                        BD_DIRTY_BITMAP_CHECK_INCONSISTENT)

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

/*
 * ---- Persistent bitmaps: what a format driver that stores bitmaps in
 * its image (qcow2) uses to load and store them. ----
 */

/*
 * Create the bitmap @name of @size bytes on @node, newest first in its
 * list, as a driver loading its image's bitmaps at open does (the node's
 * length is not known to the core yet; it follows the node's length
 * after).  Enabled, not persistent until marked.  Errors as
 * block-dirty-bitmap-add's ("Bitmap already exists: %s").  Borrowed: the
 * node holds the reference.  Main loop.
 */
BdDirtyBitmap *bd_dirty_bitmap_create_sized(BdNode *node, int64_t size,
                                            uint32_t granularity,
                                            const char *name, GError **errp);

/*
 * @node's bitmaps, newest first (the order QEMU lists and stores them
 * in), each with a reference: free with g_ptr_array_unref().  Main loop.
 */
GPtrArray *bd_node_get_dirty_bitmaps(BdNode *node);

/* Start / stop recording writes.  Any thread. */
void bd_dirty_bitmap_set_enabled(BdDirtyBitmap *bm, bool enabled);

/*
 * Whether the bitmap is kept in its node's image (persistent), was found
 * marked in use there (inconsistent: its bits are not to be trusted, it
 * can only be removed), or is read-only (loaded from an image opened
 * read-only: never stored back).  Main loop.
 */
bool bd_dirty_bitmap_persistent(const BdDirtyBitmap *bm);
void bd_dirty_bitmap_set_persistent(BdDirtyBitmap *bm, bool persistent);
bool bd_dirty_bitmap_inconsistent(const BdDirtyBitmap *bm);
/* Marks it inconsistent, and so also disabled and persistent. */
void bd_dirty_bitmap_set_inconsistent(BdDirtyBitmap *bm);
bool bd_dirty_bitmap_readonly(const BdDirtyBitmap *bm);
void bd_dirty_bitmap_set_readonly(BdDirtyBitmap *bm, bool readonly);

/*
 * The bitmap's bits as QEMU serializes them (one bit per granule, bit k
 * of byte j is granule 8j+k, little-endian words of 64 bits):
 * bd_dirty_bitmap_serialization_size() is the bytes of the granules of
 * [@offset, @offset + @bytes), rounded up to 8; @offset is a multiple of
 * 64 granules.  Serialize writes them into @buf; deserialize replaces the
 * granules with the ones in @buf; deserialize_ones marks them all.  Any
 * thread.
 */
uint64_t bd_dirty_bitmap_serialization_size(BdDirtyBitmap *bm,
                                            int64_t offset, int64_t bytes);
void bd_dirty_bitmap_serialize_part(BdDirtyBitmap *bm, uint8_t *buf,
                                    int64_t offset, int64_t bytes);
void bd_dirty_bitmap_deserialize_part(BdDirtyBitmap *bm, const uint8_t *buf,
                                      int64_t offset, int64_t bytes);
void bd_dirty_bitmap_deserialize_ones(BdDirtyBitmap *bm, int64_t offset,
                                      int64_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_DIRTY_BITMAP_H */
