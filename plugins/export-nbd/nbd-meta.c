/*
 * export-nbd: the metadata contexts' block status (NBD_CMD_BLOCK_STATUS).
 *
 * Each selected context answers with one chunk: its id and a list of
 * extents (length, flags) covering the request from its start.  The
 * contexts served here:
 * - base:allocation: NBD_STATE_HOLE / NBD_STATE_ZERO from the node's
 *   block status;
 * - qemu:allocation-depth: 0 where no layer of the chain defines the
 *   content, 1 where the exported node itself does, 2 and up for a
 *   backing layer (the core's bd_blk_co_allocation_depth());
 * - qemu:dirty-bitmap:NAME: NBD_STATE_DIRTY where the bitmap is dirty,
 *   read from the live bitmap (past its end: clean).
 * Without extended headers the extents are 32-bit (length, flags) pairs
 * (NBD_REPLY_TYPE_BLOCK_STATUS); with them a count then 64-bit pairs
 * (NBD_REPLY_TYPE_BLOCK_STATUS_EXT).
 */
#include <errno.h>

#include "nbd-int.h"
#include "nbd-meta.h"
#include "nbd-proto.h"

/* Most extents in one chunk: a payload of at most 1 MiB (QEMU's bound). */
#define NBD_MAX_EXTENTS       (1024 * 1024 / 8)
#define NBD_MAX_EXTENTS_EXT   (1024 * 1024 / 16)

typedef struct Extents {
    GByteArray *out;
    bool extended;
    unsigned count, max;
    uint64_t last_len;
    uint32_t last_flags;
} Extents;

/*
 * Append (@len, @flags), merged into the previous extent when the flags
 * are equal and the sum still fits the field.  False when the array is
 * full: the reply then ends early, which the protocol allows.
 */
static bool extents_add(Extents *x, uint64_t len, uint32_t flags)
{
    uint64_t limit = x->extended ? UINT64_MAX : UINT32_MAX;
    uint8_t ext[16];

    if (x->count && flags == x->last_flags && len <= limit - x->last_len) {
        x->last_len += len;
        if (x->extended) {
            nbd_put64(x->out->data + x->out->len - 16, x->last_len);
        } else {
            nbd_put32(x->out->data + x->out->len - 8, x->last_len);
        }
        return true;
    }
    if (x->count == x->max) {
        return false;
    }
    if (x->extended) {
        nbd_put64(ext, len);
        nbd_put64(ext + 8, flags);
    } else {
        nbd_put32(ext, len);
        nbd_put32(ext + 4, flags);
    }
    g_byte_array_append(x->out, ext, x->extended ? 16 : 8);
    x->count++;
    x->last_len = len;
    x->last_flags = flags;
    return true;
}

int nbd_meta_block_status(BdBlockBackend *blk, uint32_t context_id,
                          BdDirtyBitmap *bm, uint64_t offset, uint64_t len,
                          bool req_one, bool extended, GByteArray *out)
{
    Extents x = {
        .out = out,
        .extended = extended,
        .max = req_one ? 1 : extended ? NBD_MAX_EXTENTS_EXT : NBD_MAX_EXTENTS,
    };
    uint64_t end = offset + len;
    uint8_t head[8];

    g_byte_array_set_size(out, 0);
    nbd_put32(head, context_id);
    nbd_put32(head + 4, 0);     /* the extent count, filled in below */
    g_byte_array_append(out, head, extended ? 8 : 4);

    while (offset < end) {
        uint64_t left = end - offset;
        int64_t pnum = 0;
        uint32_t flags;
        int st;

        if (!extended) {
            /* one extent must fit in 32 bits */
            left = MIN(left, UINT32_MAX);
        }
        if (bm) {
            bool dirty = false;

            pnum = offset <= INT64_MAX ?
                bd_dirty_bitmap_extent(bm, (int64_t)offset,
                                       (int64_t)MIN(left, (uint64_t)INT64_MAX),
                                       &dirty) : 0;
            if (pnum <= 0) {
                /* past the bitmap's end: clean */
                pnum = (int64_t)MIN(left, (uint64_t)INT64_MAX);
                dirty = false;
            }
            st = 0;
            flags = dirty ? NBD_STATE_DIRTY : 0;
        } else if (context_id == NBD_META_ID_ALLOCATION_DEPTH) {
            st = bd_blk_co_allocation_depth(blk, offset, left, &pnum);
            flags = st;
        } else {
            st = bd_blk_co_block_status(blk, true, offset, left, &pnum,
                                        NULL, NULL);
            flags = (st & BD_BLOCK_DATA ? 0 : NBD_STATE_HOLE) |
                    (st & BD_BLOCK_ZERO ? NBD_STATE_ZERO : 0);
        }
        if (st < 0) {
            return st;
        }
        if (pnum <= 0) {
            break;
        }
        pnum = MIN((uint64_t)pnum, left);
        if (!extents_add(&x, pnum, flags)) {
            break;
        }
        offset += pnum;
    }
    if (extended) {
        nbd_put32(out->data + 4, x.count);
    }
    return 0;
}
