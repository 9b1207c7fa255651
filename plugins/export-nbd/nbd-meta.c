/*
 * export-nbd: the "qemu:dirty-bitmap:NAME" metadata contexts.
 */
#include <string.h>

#include "nbd-meta.h"

void nbd_meta_bitmaps_clear(NbdMetaBitmaps *mb)
{
    g_clear_pointer(&mb->sel, g_free);
    mb->nr = 0;
    mb->count = 0;
}

/* Whether @q, relative to "qemu:dirty-bitmap:", selects bitmap @name. */
static bool query_selects(const char *q, const char *name, bool list)
{
    if (list && (strcmp(q, "qemu:") == 0 ||
                 strcmp(q, NBD_META_DIRTY_BITMAP_PREFIX) == 0)) {
        return true;
    }
    return g_str_has_prefix(q, NBD_META_DIRTY_BITMAP_PREFIX) &&
           strcmp(q + strlen(NBD_META_DIRTY_BITMAP_PREFIX), name) == 0;
}

void nbd_meta_select_bitmaps(const NbdExport *e, const NbdMetaRequest *req,
                             bool list, NbdMetaBitmaps *mb)
{
    mb->nr = e->nr_bitmaps;
    mb->count = 0;
    mb->sel = e->nr_bitmaps ? g_new0(bool, e->nr_bitmaps) : NULL;
    for (unsigned i = 0; i < e->nr_bitmaps; i++) {
        const char *name = bd_dirty_bitmap_name(e->bitmaps[i]);
        bool on = list && req->queries->len == 0;

        for (guint j = 0; !on && j < req->queries->len; j++) {
            on = query_selects(g_ptr_array_index(req->queries, j), name,
                               list);
        }
        mb->sel[i] = on;
        mb->count += on;
    }
}

char *nbd_meta_bitmap_context(const NbdExport *e, unsigned i)
{
    return g_strconcat(NBD_META_DIRTY_BITMAP_PREFIX,
                       bd_dirty_bitmap_name(e->bitmaps[i]), NULL);
}

void nbd_meta_bitmap_extents(BdDirtyBitmap *bm, uint64_t offset,
                             uint64_t len, unsigned max, GByteArray *out)
{
    uint64_t end = offset + len;
    unsigned count = 0;
    uint32_t last_len = 0, last_flags = 0;

    while (offset < end) {
        bool dirty = false;
        int64_t n = offset <= INT64_MAX ?
            bd_dirty_bitmap_extent(bm, (int64_t)offset,
                                   (int64_t)MIN(end - offset,
                                                (uint64_t)INT64_MAX),
                                   &dirty) : 0;
        uint32_t flags;

        if (n <= 0) {
            /* past the bitmap: clean to the end */
            n = (int64_t)MIN(end - offset, (uint64_t)INT64_MAX);
            dirty = false;
        }
        flags = dirty ? NBD_STATE_DIRTY : 0;
        while (n > 0) {
            uint32_t chunk;

            if (count && flags == last_flags && last_len < UINT32_MAX) {
                chunk = (uint32_t)MIN((uint64_t)n,
                                      (uint64_t)(UINT32_MAX - last_len));
                last_len += chunk;
                nbd_put32(out->data + out->len - 8, last_len);
            } else {
                uint8_t ext[8];

                if (count == max) {
                    return;
                }
                chunk = (uint32_t)MIN((uint64_t)n, (uint64_t)UINT32_MAX);
                nbd_put32(ext, chunk);
                nbd_put32(ext + 4, flags);
                g_byte_array_append(out, ext, 8);
                count++;
                last_len = chunk;
                last_flags = flags;
            }
            n -= chunk;
            offset += chunk;
        }
    }
}
